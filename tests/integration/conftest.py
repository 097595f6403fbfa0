"""Fixtures that run the real ringcast binary.

RINGCAST_BIN (required) names the server binary; RINGCAST_THREADS, when
set, is the --threads every server gets unless its test names one. Each
test gets its own server process started with `--port 0 --static <repo>/static` plus the flags
of its `@pytest.mark.server_args(...)` marker. On teardown the server gets
SIGTERM and must exit 0; its stderr is printed (shown by pytest on failure).

Every test also runs under a SIGALRM watchdog (RINGCAST_TEST_TIMEOUT seconds,
default 45, or `@pytest.mark.timeout_s(N)`) so that nothing can hang the suite.
"""

import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import pytest

HERE = pathlib.Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

REPO = HERE.parents[1]
STATIC_DIR = pathlib.Path(os.environ.get("RINGCAST_STATIC", str(REPO / "static")))
TEST_TIMEOUT = float(os.environ.get("RINGCAST_TEST_TIMEOUT", "45"))
START_TIMEOUT = 10.0

LISTEN_RE = re.compile(r"listening on (https?)://(\[[^\]]+\]|[^:/\s]+):(\d+)/")


def pytest_configure(config):
    config.addinivalue_line("markers", "server_args(*args): extra ringcast command-line flags")
    config.addinivalue_line("markers", "timeout_s(n): per-test watchdog in seconds")
    config.addinivalue_line("markers", "cluster: needs redis-server and haproxy; run once, not per "
                            "--threads (tests/meson.build)")


class WatchdogTimeout(BaseException):
    pass


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    m = item.get_closest_marker("timeout_s")
    limit = float(m.args[0]) if m else TEST_TIMEOUT

    def on_alarm(signum, frame):
        raise WatchdogTimeout("test exceeded the %.0fs watchdog" % limit)

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


class Server:
    """A running ringcast process."""

    def __init__(self, binary, extra, workdir=None, preexec_fn=None):
        self.binary = binary
        self.args = [binary, "--port", "0", "--static", str(STATIC_DIR)] + [str(a) for a in extra]
        # The whole suite runs once per edge count (tests/meson.build); a test
        # that names its own --threads keeps it.
        threads = os.environ.get("RINGCAST_THREADS")
        if threads and "--threads" not in self.args:
            self.args += ["--threads", threads]
        # A disconnect is a leave at once, as the tests of presence expect; the
        # grace a guest's reload gets is tested where it is named
        # (test_identity.py).
        if "--rejoin-grace" not in self.args:
            self.args += ["--rejoin-grace", "0"]
        # Run in a fresh directory: anything the server writes relative to its
        # working directory (e.g. a default data/ringcast.db) is per test and
        # never lands in the source tree. A test may pass its own (restarts).
        self.own_workdir = workdir is None
        self.workdir = workdir or tempfile.mkdtemp(prefix="ringcast-it-")
        self.lines = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self.host = None
        self.port = None
        self.scheme = "http"  # "https" when started with --tls-cert/--tls-key
        self.expect_exit = False  # set by tests that stop the server themselves
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, cwd=self.workdir,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     preexec_fn=preexec_fn)
        self._threads = [
            threading.Thread(target=self._drain, args=(self.proc.stderr, "stderr", True), daemon=True),
            threading.Thread(target=self._drain, args=(self.proc.stdout, "stdout", False), daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _drain(self, stream, label, look_for_listen):
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self._lock:
                self.lines.append("[%s] %s" % (label, line))
            if look_for_listen and not self._ready.is_set():
                m = LISTEN_RE.search(line)
                if m:
                    self.scheme = m.group(1)
                    self.host = m.group(2).strip("[]")
                    self.port = int(m.group(3))
                    self._ready.set()
        stream.close()

    def wait_ready(self, timeout=START_TIMEOUT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._ready.wait(0.05):
                return
            if self.proc.poll() is not None:
                time.sleep(0.1)  # let the drain threads catch the last lines
                raise RuntimeError("ringcast exited with %s before listening:\n%s"
                                   % (self.proc.returncode, self.output()))
        self.proc.kill()
        self.proc.wait()
        raise RuntimeError("ringcast printed no 'listening on http(s)://HOST:PORT/' line within %.0fs:\n%s"
                           % (timeout, self.output()))

    def output(self):
        with self._lock:
            return "\n".join(self.lines[-300:])

    @property
    def url(self):
        h = "[%s]" % self.host if ":" in self.host else self.host
        return "%s://%s:%d/" % (self.scheme, h, self.port)

    @property
    def ws_url(self):
        h = "[%s]" % self.host if ":" in self.host else self.host
        return "%s://%s:%d" % ("wss" if self.scheme == "https" else "ws", h, self.port)

    def alive(self):
        return self.proc.poll() is None

    def terminate(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def stop(self, timeout=5.0):
        """SIGTERM and wait; returns a list of problems (empty when clean).
        A second call (fixture teardown after a test stopped it) does nothing."""
        if getattr(self, "_stopped", False):
            return []
        self._stopped = True
        problems = []
        if self.proc.poll() is not None:
            if not self.expect_exit:
                problems.append("ringcast died during the test with exit status %s"
                                % self.proc.returncode)
        else:
            self.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                problems.append("ringcast did not exit within %.0fs of SIGTERM (killed)" % timeout)
            if not problems and self.proc.returncode != 0:
                problems.append("ringcast exited with status %s after SIGTERM (expected 0)"
                                % self.proc.returncode)
        for t in self._threads:
            t.join(2)
        if self.own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        return problems


def _binary():
    b = os.environ.get("RINGCAST_BIN")
    if not b:
        pytest.fail("RINGCAST_BIN is not set: run as "
                    "RINGCAST_BIN=/path/to/build/ringcast /usr/bin/python3 -m pytest tests/integration",
                    pytrace=False)
    if not (os.path.isfile(b) and os.access(b, os.X_OK)):
        pytest.fail("RINGCAST_BIN=%r is not an executable file" % b, pytrace=False)
    return b



@pytest.fixture
def server_factory():
    """start(*extra_flags, workdir=None, preexec_fn=None) -> Server, ready to
    accept connections. preexec_fn runs in the child before exec (e.g. to
    lower its open-file limit)."""
    servers = []

    def start(*extra, workdir=None, preexec_fn=None):
        s = Server(_binary(), extra, workdir=workdir, preexec_fn=preexec_fn)
        servers.append(s)
        s.wait_ready()
        return s

    yield start

    problems = []
    for s in servers:
        p = s.stop()
        print("---- ringcast %s stderr/stdout ----\n%s" % (" ".join(s.args[1:]), s.output()))
        if p:
            problems.append("; ".join(p) + "\n" + s.output())
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.fixture
def server(request, server_factory):
    args = []
    for m in request.node.iter_markers("server_args"):
        args += list(m.args)
    return server_factory(*args)


@pytest.fixture
def static_dir():
    return STATIC_DIR


@pytest.fixture
def tiny_fs():
    """A 400 KiB tmpfs mounted on a fresh directory; unmounted afterwards.
    Request it before server_factory so that the servers stop first. Fill it
    with rcutil.fill."""
    d = tempfile.mkdtemp(prefix="ringcast-it-tinyfs-")
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k,mode=0700", "tmpfs", d],
                       capture_output=True, text=True)
    if p.returncode != 0:
        os.rmdir(d)
        pytest.fail("cannot mount a 400 KiB tmpfs for the disk-full test (needs root or "
                    "CAP_SYS_ADMIN): mount exited %d: %s" % (p.returncode, p.stderr.strip()),
                    pytrace=False)
    try:
        yield d
    finally:
        r = subprocess.run(["umount", d], capture_output=True, text=True)
        if r.returncode != 0:
            subprocess.run(["umount", "-l", d], capture_output=True)
        os.rmdir(d)


# ---------------------------------------------------------------- cluster mode
# The processes are in cluster.py (imported here, not at the top: it imports
# this module). Cases using these fixtures carry `pytest.mark.cluster`.


def _require_tool(path, what):
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail("%s not installed (%s): scripts/dev installs it" % (what, path), pytrace=False)


@pytest.fixture
def redis_factory():
    """start(password=None) -> a cluster.RedisServer answering PING (free
    port, temporary directory). Killed and its directory removed at teardown."""
    import cluster
    _require_tool(cluster.REDIS_SERVER, "redis-server")
    servers = []

    def start(password=None):
        r = cluster.RedisServer(password=password)
        servers.append(r)
        return r.start()

    yield start
    for r in servers:
        print("---- redis-server :%d ----\n%s" % (r.port, r.output()))
        r.close()


@pytest.fixture
def redis_server(redis_factory):
    return redis_factory()


@pytest.fixture
def cluster_factory(redis_server):
    """start(n=3, redis=redis_server, extra=(), threads=1, url=None,
    ready=True) -> a cluster.Cluster of n nodes, each answering /readyz 200
    unless ready=False. At teardown every node gets SIGTERM and must exit 0
    (a node the test killed is excused)."""
    import cluster
    clusters = []

    def start(n=3, redis=None, extra=(), threads=1, url=None, ready=True):
        c = cluster.Cluster(_binary(), redis or redis_server, n=n, extra=extra, threads=threads, url=url)
        clusters.append(c)
        if ready:
            c.wait_ready()
        return c

    yield start
    problems = []
    for c in clusters:
        problems += c.stop()
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.fixture
def cluster(cluster_factory):
    """Three nodes on redis_server, ready."""
    return cluster_factory()


@pytest.fixture
def haproxy_factory():
    """start(nodes) -> a cluster.Haproxy running docs/cluster/haproxy.cfg in
    front of three nodes, each UP (its /readyz check passing). Stopped at
    teardown."""
    import cluster
    _require_tool(cluster.HAPROXY, "haproxy")
    procs = []

    def start(nodes, config=None):
        h = cluster.Haproxy(nodes, config or cluster.HAPROXY_CFG)
        procs.append(h)
        h.wait_status({"n%d" % (i + 1): "UP" for i in range(len(nodes))})
        return h

    yield start
    for h in procs:
        h.stop()
        print("---- haproxy ----\n%s" % h.output())

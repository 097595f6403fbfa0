"""Cluster harness: a real redis-server, N ringcast nodes on it (`--redis`) and
a real HAProxy in front of them, run with docs/cluster/haproxy.cfg verbatim.

No mock of Redis anywhere. Every process lives in a temporary directory,
every wait has a deadline, and the fixtures kill whatever is still running
at teardown, also when the test failed or the watchdog fired.

The fixtures themselves are in conftest.py (`redis_server`, `redis_factory`,
`cluster`, `cluster_factory`, `haproxy_factory`); they use these classes.
"""

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request

from conftest import REPO, Server
from rcutil import http_get, metrics

REDIS_SERVER = os.environ.get("RINGCAST_REDIS_SERVER", "/usr/bin/redis-server")
HAPROXY = os.environ.get("RINGCAST_HAPROXY", "/usr/sbin/haproxy")
HAPROXY_CFG = REPO / "docs" / "cluster" / "haproxy.cfg"

START_TIMEOUT = 10.0


def die_with_parent():
    """preexec_fn: the child gets SIGKILL when the test process dies, so a
    runner killed by its own timeout leaves no redis-server, node or HAProxy
    behind (PR_SET_PDEATHSIG)."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG


def free_port():
    """A port nothing listens on right now. Another process could take it
    before ours binds: small odds on a test machine, and the start then
    fails loudly rather than talking to the wrong server."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what, done, timeout, interval=0.02):
    """Call done() until it returns something true; return that. Fails the
    test with `what` when the deadline passes."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            v = done()
            if v:
                return v
        except (OSError, AssertionError) as e:  # URLError and TimeoutError are OSErrors
            last_exc = e
        if time.monotonic() > deadline:
            raise AssertionError("%s: not within %.1fs%s" % (
                what, timeout, " (last error: %r)" % (last_exc,) if last_exc else ""))
        time.sleep(interval)


class _Output:
    """Keeps the last lines a child writes to stdout and stderr."""

    def __init__(self, proc, label):
        self.lines = []
        self._lock = threading.Lock()
        self.threads = [threading.Thread(target=self._drain, args=(s, label), daemon=True)
                        for s in (proc.stdout, proc.stderr) if s is not None]
        for t in self.threads:
            t.start()

    def _drain(self, stream, label):
        for raw in iter(stream.readline, b""):
            with self._lock:
                self.lines.append("[%s] %s" % (label, raw.decode("utf-8", "replace").rstrip("\n")))
                del self.lines[:-300]
        stream.close()

    def text(self):
        with self._lock:
            return "\n".join(self.lines)


# ---------------------------------------------------------------- Redis


class RedisError(Exception):
    pass


def _resp_encode(args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode("utf-8")
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


class _RespReader:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RedisError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n).decode("utf-8", "replace")
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise RedisError("unexpected reply %r" % line)


def redis_command(port, *args, password=None, timeout=2.0):
    """One command on a fresh connection (RESP2, every read with a
    deadline); returns the reply, raises RedisError for an error reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        r = _RespReader(s)
        if password is not None:
            s.sendall(_resp_encode(["AUTH", password]))
            r.reply()
        s.sendall(_resp_encode(list(args)))
        return r.reply()


class RedisServer:
    """A redis-server on a free loopback port with its data in a temporary
    directory: append-only file on, fsync every second, no RDB snapshots.
    stop() is a clean SHUTDOWN, kill() a SIGKILL; start() again reuses the
    port and the directory, so a restart finds the same data."""

    def __init__(self, password=None):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="ringcast-redis-")
        self.password = password
        self.proc = None
        self.out = None
        self.logs = []  # output of earlier runs (restarts)

    @property
    def url(self):
        return "redis://127.0.0.1:%d" % self.port

    def start(self, timeout=START_TIMEOUT):
        assert not self.running(), "redis-server is already running"
        if self.out is not None:
            self.logs.append(self.out.text())
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", self.dir, "--appendonly", "yes", "--appendfsync", "everysec",
                "--save", "", "--daemonize", "no", "--logfile", ""]
        if self.password is not None:
            args += ["--requirepass", self.password]
        self.proc = subprocess.Popen(args, cwd=self.dir, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     preexec_fn=die_with_parent)
        self.out = _Output(self.proc, "redis")
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=START_TIMEOUT):
        """PING until PONG: listening and done loading the append-only file."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("redis-server exited with %s:\n%s" % (self.proc.returncode, self.output()))
            try:
                if self.command("PING", timeout=0.5) == "PONG":
                    return
            except (OSError, RedisError):
                pass  # not listening yet, or -LOADING
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not answer PING within %.0fs:\n%s"
                                   % (timeout, self.output()))
            time.sleep(0.02)

    def command(self, *args, timeout=2.0):
        return redis_command(self.port, *args, password=self.password, timeout=timeout)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=10.0):
        """A clean SHUTDOWN: the append-only file is written and fsynced
        before redis-server exits. Returns when the process is gone."""
        if not self.running():
            return
        try:
            self.command("SHUTDOWN", timeout=timeout)
        except (ConnectionError, OSError):
            pass  # the connection closes without a reply: that is success
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("redis-server did not exit within %.0fs of SHUTDOWN" % timeout)
        assert self.proc.returncode == 0, "redis-server SHUTDOWN exit status %s:\n%s" % (
            self.proc.returncode, self.output())

    def kill(self):
        """SIGKILL: what a crash of the redis process looks like."""
        if self.running():
            self.proc.kill()
            self.proc.wait()

    def restart(self, timeout=START_TIMEOUT):
        """Clean stop (if running) and start on the same port and data."""
        self.stop()
        return self.start(timeout)

    def keys(self, pattern="*"):
        """Every key, by SCAN."""
        out, cursor = [], "0"
        while True:
            cursor, batch = self.command("SCAN", cursor, "MATCH", pattern, "COUNT", 1000)
            out += batch
            if cursor == "0":
                return out

    def output(self):
        return "\n".join(self.logs + ([self.out.text()] if self.out else []))

    def close(self):
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------- ringcast nodes


def readyz(node, timeout=2.0):
    """GET /readyz on one node: the status code."""
    return http_get(node, "/readyz", timeout=timeout).status


def wait_readyz(node, status, timeout=10.0):
    wait_until("GET /readyz on %s answering %d" % (node.url, status),
               lambda: readyz(node) == status, timeout, interval=0.05)


def ws_opened(node):
    """Completed WebSocket handshakes so far on a node (/metrics)."""
    return metrics(node).get("ringcast_websockets_opened_total", 0)


class Cluster:
    """N ringcast nodes on one Redis. Each node is a conftest Server (port 0,
    its own temporary working directory, RINGCAST_BIN and RINGCAST_STATIC
    honoured) started with `--redis URL --threads T --rate-limit 0`, plus
    `extra`. Nodes are numbered from 0."""

    def __init__(self, binary, redis, n=3, extra=(), threads=1, url=None):
        self.redis = redis
        self.nodes = []
        self.url = url or redis.url
        for _ in range(n):
            self.add(binary, extra, threads)

    def add(self, binary, extra=(), threads=1):
        args = ["--redis", self.url, "--threads", str(threads), "--rate-limit", "0"] + list(extra)
        node = Server(binary, args, preexec_fn=die_with_parent)
        self.nodes.append(node)
        node.wait_ready()
        return node

    def __getitem__(self, i):
        return self.nodes[i]

    def __iter__(self):
        return iter(self.nodes)

    def __len__(self):
        return len(self.nodes)

    def wait_ready(self, timeout=10.0):
        """Every live node answers /readyz 200 (it reaches Redis)."""
        for node in self.nodes:
            if node.alive():
                wait_readyz(node, 200, timeout)

    def kill(self, i):
        """kill -9 one node; it is expected dead at teardown."""
        node = self.nodes[i]
        node.expect_exit = True
        node.proc.kill()
        node.proc.wait(5)
        return node

    def node_of_new_connection(self, open_fn, timeout=5.0):
        """Run open_fn() (which opens one WebSocket, e.g. through HAProxy) and
        tell which node took it, from each node's websockets_opened_total.
        Nothing else may open WebSockets meanwhile. Returns (index, result)."""
        before = [ws_opened(n) if n.alive() else None for n in self.nodes]
        result = open_fn()

        def moved():
            grew = [i for i, n in enumerate(self.nodes)
                    if n.alive() and ws_opened(n) > before[i]]
            return grew if len(grew) == 1 else None
        return wait_until("exactly one node counting the new WebSocket", moved, timeout)[0], result

    def stop(self):
        """SIGTERM every node; returns the problems (a node that died
        unexpectedly, or did not exit 0)."""
        problems = []
        for i, node in enumerate(self.nodes):
            p = node.stop()
            print("---- node %d (%s) ----\n%s" % (i, " ".join(node.args[1:]), node.output()))
            if p:
                problems.append("node %d: %s\n%s" % (i, "; ".join(p), node.output()))
        return problems


# ---------------------------------------------------------------- HAProxy


class Haproxy:
    """HAProxy 2.6 running docs/cluster/haproxy.cfg unchanged, addresses
    from the environment (RINGCAST_LB, RINGCAST_STATS, RINGCAST_NODE1..3).
    `host`/`port` are the balancer's, so rcutil.connect_ws(haproxy) opens a
    WebSocket through it."""

    def __init__(self, nodes, config=HAPROXY_CFG):
        assert len(nodes) == 3, "the configuration names three nodes"
        self.host = "127.0.0.1"
        self.port = free_port()
        self.stats_port = free_port()
        self.scheme = "http"
        self.config = str(config)
        env = dict(os.environ)
        env["RINGCAST_LB"] = "127.0.0.1:%d" % self.port
        env["RINGCAST_STATS"] = "127.0.0.1:%d" % self.stats_port
        for i, node in enumerate(nodes):
            env["RINGCAST_NODE%d" % (i + 1)] = "%s:%d" % (node.host, node.port)
        self.env = env
        self.proc = subprocess.Popen([HAPROXY, "-f", self.config, "-db"], env=env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, preexec_fn=die_with_parent)
        self.out = _Output(self.proc, "haproxy")

    @property
    def url(self):
        return "http://127.0.0.1:%d/" % self.port

    @property
    def ws_url(self):
        return "ws://127.0.0.1:%d" % self.port

    def stats(self):
        """{server name: status} for the ringcast backend, from the stats
        page's CSV (status is "UP", "DOWN", "UP 1/2", "no check", ...)."""
        # urllib: the stats page answers chunked, which rawws does not read
        with urllib.request.urlopen("http://127.0.0.1:%d/stats;csv" % self.stats_port,
                                    timeout=2) as r:
            rows = r.read().decode().splitlines()
        head = rows[0].lstrip("# ").split(",")
        px, sv, st = head.index("pxname"), head.index("svname"), head.index("status")
        out = {}
        for row in rows[1:]:
            f = row.split(",")
            if len(f) > st and f[px] == "ringcast" and f[sv] not in ("FRONTEND", "BACKEND"):
                out[f[sv]] = f[st]
        return out

    def wait_status(self, want, timeout=10.0):
        """Wait until stats() shows every server of `want` ({"n1": "UP"}) in
        that state."""
        def ok():
            if self.proc.poll() is not None:
                raise RuntimeError("haproxy exited with %s:\n%s" % (self.proc.returncode, self.output()))
            s = self.stats()
            return all(s.get(k) == v for k, v in want.items())
        try:
            wait_until("haproxy servers %r" % (want,), ok, timeout, interval=0.05)
        except AssertionError as e:
            raise AssertionError("%s; stats now %r\n%s" % (e, self._stats_or_error(), self.output()))

    def _stats_or_error(self):
        try:
            return self.stats()
        except Exception as e:  # only for the failure message
            return repr(e)

    def output(self):
        return self.out.text()

    def stop(self, timeout=5.0):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

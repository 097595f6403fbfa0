"""Running ringcast as a service: the systemd unit in packaging/systemd passes
`systemd-analyze verify` and scores well in `systemd-analyze security`; with
no --db the history lives in $STATE_DIRECTORY (what StateDirectory= sets), not
in the directory the server started from; an empty --static directory stops
the start with an error instead of serving 404 to everything."""

import os
import re
import shutil
import subprocess
import tempfile

import pytest

from conftest import REPO, STATIC_DIR, _binary
from rawws import RawWS

UNIT_TEMPLATE = REPO / "packaging" / "systemd" / "ringcast.service.in"


@pytest.fixture
def tmpdir_factory_():
    made = []

    def make(prefix):
        d = tempfile.mkdtemp(prefix="ringcast-it-svc-" + prefix)
        made.append(d)
        return d

    yield make
    for d in made:
        shutil.rmtree(d, ignore_errors=True)


def systemd_analyze():
    tool = shutil.which("systemd-analyze")
    assert tool, "systemd-analyze is missing (Debian: apt-get install systemd)"
    return tool


def unit_for(binary_dir, dest):
    """The unit as `meson install` writes it, ExecStart in binary_dir."""
    text = UNIT_TEMPLATE.read_text().replace("@BINDIR@", binary_dir)
    assert not re.search(r"@[A-Z_]+@", text), "a placeholder meson does not fill"
    path = os.path.join(dest, "ringcast.service")
    with open(path, "w") as f:
        f.write(text)
    return path


def analyze(*args):
    # verify loads the unit's dependencies from the host's unit path; it
    # needs no running systemd.
    return subprocess.run([systemd_analyze(), *args], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL, cwd="/")


# ------------------------------------------------------------- the unit file

def test_unit_file_passes_systemd_analyze_verify(tmpdir_factory_):
    d = tmpdir_factory_("unit-")
    p = analyze("verify", unit_for(os.path.dirname(os.path.abspath(_binary())), d))
    assert p.returncode == 0 and not p.stderr.strip(), p.stderr


def test_verify_catches_what_it_should(tmpdir_factory_):
    """The check above can fail: the same unit with its binary missing does."""
    d = tmpdir_factory_("unit-bad-")
    p = analyze("verify", unit_for("/nonexistent/ringcast-bin", d))
    assert p.returncode != 0 and "not executable" in p.stderr, p.stderr


def test_meson_writes_the_unit_for_its_bindir():
    """What `meson install` installs: the template with ExecStart in the
    build's <prefix>/<bindir> (RINGCAST_BIN is the build directory's binary)."""
    build = os.path.dirname(os.path.abspath(_binary()))
    assert os.path.isfile(os.path.join(build, "build.ninja")), "RINGCAST_BIN is not in a meson build dir"
    made = open(os.path.join(build, "ringcast.service")).read()
    m = re.search(r"^ExecStart=(/\S+)/ringcast \$RINGCAST_FLAGS$", made, re.M)
    assert m, made
    assert made == UNIT_TEMPLATE.read_text().replace("@BINDIR@", m.group(1))


def test_unit_file_sandbox_scores_ok(tmpdir_factory_):
    d = tmpdir_factory_("unit-score-")
    p = analyze("security", "--offline=yes", unit_for(os.path.dirname(os.path.abspath(_binary())), d))
    assert p.returncode == 0, p.stderr
    m = re.search(r"Overall exposure level for ringcast\.service: ([0-9.]+) (\w+)", p.stdout)
    assert m, p.stdout[-2000:]
    # systemd calls up to 1.9 "OK"; a network server cannot drop the network.
    assert float(m.group(1)) < 2.0, p.stdout


def test_unit_file_says_what_the_issue_asks():
    text = UNIT_TEMPLATE.read_text()
    for line in ("DynamicUser=yes", "StateDirectory=ringcast", "ProtectSystem=strict",
                 "NoNewPrivileges=yes", "CapabilityBoundingSet=\n"):
        assert line in text, line
    assert re.search(r"^LimitNOFILE=\d{5,}$", text, re.M), "LimitNOFILE below 10000"
    # io_uring is outside @system-service: a filter without it kills the server at start.
    assert re.search(r"^SystemCallFilter=@system-service .*io_uring_setup.*io_uring_enter"
                     r".*io_uring_register", text, re.M)


# ------------------------------------------------------- the state directory

def test_default_database_goes_to_the_state_directory(server_factory, monkeypatch,
                                                      tmpdir_factory_):
    state = tmpdir_factory_("state-")
    monkeypatch.setenv("STATE_DIRECTORY", state)  # what systemd sets for StateDirectory=
    first_cwd = tmpdir_factory_("cwd1-")
    first = server_factory(workdir=first_cwd)
    assert "history in %s/ringcast.db" % state in first.output(), first.output()
    with RawWS.connect(first.host, first.port) as ws:
        ws.welcome()
        ws.send_text("kept in the state directory")
        sent = ws.recv_type("message")  # the echo comes after the commit
    assert not first.stop()
    assert os.path.isfile(os.path.join(state, "ringcast.db"))
    assert not os.path.exists(os.path.join(first_cwd, "data")), os.listdir(first_cwd)

    # Started from elsewhere, it finds the same history.
    second = server_factory(workdir=tmpdir_factory_("cwd2-"))
    with RawWS.connect(second.host, second.port) as ws:
        ws.welcome()
        hist = ws.recv_type("history")
        assert (sent["id"], sent["text"]) in [(m["id"], m["text"]) for m in hist["messages"]], hist


def test_db_flag_wins_over_the_state_directory(server_factory, monkeypatch, tmpdir_factory_):
    state = tmpdir_factory_("state-")
    db = os.path.join(tmpdir_factory_("db-"), "chat.db")
    monkeypatch.setenv("STATE_DIRECTORY", state)
    s = server_factory("--db", db)
    assert "history in %s" % db in s.output(), s.output()
    assert not s.stop()
    assert os.path.isfile(db)
    assert not os.path.exists(os.path.join(state, "ringcast.db"))


def test_first_of_several_state_directories(server_factory, monkeypatch, tmpdir_factory_):
    a, b = tmpdir_factory_("state-a-"), tmpdir_factory_("state-b-")
    monkeypatch.setenv("STATE_DIRECTORY", a + ":" + b)  # StateDirectory=ringcast other
    s = server_factory()
    assert "history in %s/ringcast.db" % a in s.output(), s.output()


def run_exiting(*args, env_extra=None):
    env = dict(os.environ, **(env_extra or {}))
    env["ASAN_OPTIONS"] = ":".join(filter(None, [env.get("ASAN_OPTIONS", ""), "detect_leaks=1"]))
    cwd = tempfile.mkdtemp(prefix="ringcast-it-svc-exit-")
    try:
        return subprocess.run([_binary(), "--port", "0", *args], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=20,
                              stdin=subprocess.DEVNULL)
    finally:
        shutil.rmtree(cwd, ignore_errors=True)


def test_relative_state_directory_is_refused():
    p = run_exiting("--static", str(STATIC_DIR), env_extra={"STATE_DIRECTORY": "var/lib/x"})
    assert p.returncode == 2, p.stderr
    assert "STATE_DIRECTORY" in p.stderr and "--db" in p.stderr, p.stderr


# ----------------------------------------------------------- the static dir

@pytest.mark.parametrize("contents", [[], [".hidden"]], ids=["empty", "only-dotfiles"])
def test_static_dir_without_files_stops_the_start(contents, tmpdir_factory_):
    d = tmpdir_factory_("static-")
    for name in contents:
        with open(os.path.join(d, name), "w") as f:
            f.write("never served\n")
    p = run_exiting("--no-persist", "--static", d)
    assert "LeakSanitizer" not in p.stderr, p.stderr
    assert p.returncode == 1, p.stderr
    assert "no files to serve in" in p.stderr and "--static" in p.stderr, p.stderr
    assert "listening on" not in p.stderr


def test_static_dir_with_one_file_starts(server_factory, tmpdir_factory_):
    """The check above is about emptiness, not about the page's own files."""
    d = tmpdir_factory_("static-one-")
    with open(os.path.join(d, "hello.txt"), "w") as f:
        f.write("hello\n")
    s = server_factory("--no-persist", "--static", d)
    assert "(1 files)" in s.output(), s.output()

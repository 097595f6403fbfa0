"""Exit status when the server does not start: 2 for a bad command line, 1
when it cannot start (no page, no database, no TLS), 0 for --help/--version;
and nothing left allocated either way. Run against the AddressSanitizer
build, a leak makes LeakSanitizer change the exit status (or abort with
abort_on_error=1), so asserting the status catches it; a plain build
ignores ASAN_OPTIONS."""

import os
import shutil
import subprocess
import tempfile

import pytest

from conftest import STATIC_DIR, _binary

SECRET = "0123456789abcdef0123456789abcdef!"  # 33 bytes: long enough


def run(*args, timeout=20):
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = ":".join(filter(None, [env.get("ASAN_OPTIONS", ""), "detect_leaks=1"]))
    d = tempfile.mkdtemp(prefix="ringcast-it-exit-")
    try:
        return subprocess.run([_binary(), "--port", "0", "--static", str(STATIC_DIR)] + list(args),
                              cwd=d, env=env, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def assert_exit(p, status):
    assert "LeakSanitizer" not in p.stderr, p.stderr
    assert p.returncode == status, "exit %s, expected %s; stderr:\n%s" % (p.returncode, status, p.stderr)


@pytest.mark.parametrize("args", [
    ["--jwt-secret", "short"],
    ["--jwt-secret", SECRET, "--bogus"],
    ["--jwt-secret", SECRET, "--port", "x"],
    ["--jwt-secret", SECRET, "--fsync", "never"],
    ["--jwt-secret", SECRET, "unexpected"],
    ["--jwt-secret", SECRET, "--tls-cert", "only-the-cert.pem"],
    ["--jwt-secret", "short", "--jwt-secret", SECRET + "x", "--max-rooms", "0"],
    ["--bogus"],
    ["--port", "70000"],
], ids=["short-secret", "secret-then-unknown-flag", "secret-then-bad-port", "secret-then-bad-fsync",
        "secret-then-stray-argument", "secret-then-cert-without-key", "two-secrets-then-bad-flag",
        "unknown-flag", "bad-port"])
def test_bad_command_line_exits_2(args):
    p = run(*args)
    assert_exit(p, 2)
    assert p.stderr.strip(), "no message for a bad command line"


def test_bad_secret_file_exits_2():
    with tempfile.NamedTemporaryFile("w", suffix=".secret") as f:
        f.write("short\n")
        f.flush()
        assert_exit(run("--jwt-secret-file", f.name), 2)
        assert_exit(run("--jwt-secret-file", f.name, "--jwt-secret", SECRET, "--bogus"), 2)


@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_help_and_version_exit_0(flag):
    p = run("--jwt-secret", SECRET, flag)
    assert_exit(p, 0)
    assert p.stdout.strip()


@pytest.mark.parametrize("args", [
    ["--static", "/nonexistent/ringcast-static"],  # a second --static: the last one wins
    ["--db", "/proc/ringcast-nope/x.db"],
    ["--no-persist", "--tls-cert", "/nonexistent/cert.pem", "--tls-key", "/nonexistent/key.pem"],
], ids=["no-static-dir", "no-database", "no-tls-files"])
def test_start_failure_exits_1(args):
    assert_exit(run("--jwt-secret", SECRET, *args), 1)

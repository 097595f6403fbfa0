"""Logs an operator can use (README "Logs"): every line has an RFC 3339 UTC
timestamp with milliseconds and a level; `--log-format json` makes each line
one JSON object (ts, level, msg and the line's fields); `--verbose` logs each
connection's open (with its peer) and close (with its close code), refused
upgrades with why, and HTTP errors with status and path.

And /metrics on a listener of its own (`--metrics-listen ADDR:PORT`), or
nowhere (`--metrics-listen off`)."""

import json
import re
import socket
import time

import pytest

from rawws import OP_BINARY, HTTPConn, request, simple_request, upgrade_request
from rcutil import connect_ws, make_jwt, run_briefly

TS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
TEXT_LINE = re.compile(r"^(" + TS + r") (error|warn|info|debug) \S")
LEVELS = {"error", "warn", "info", "debug"}
SECRET = "s" * 40


def stderr_lines(server):
    with server._lock:
        lines = list(server.lines)
    return [l[len("[stderr] "):] for l in lines if l.startswith("[stderr] ")]


def wait_line(server, pred, timeout=5.0, what="a matching log line"):
    """The first stderr line for which pred holds, waiting up to timeout."""
    deadline = time.monotonic() + timeout
    while True:
        for line in stderr_lines(server):
            if pred(line):
                return line
        if time.monotonic() > deadline:
            raise AssertionError("no %s within %.1fs:\n%s" % (what, timeout, server.output()))
        time.sleep(0.02)


def stop_and_read(server):
    """SIGTERM, a clean exit, and every line it wrote (ending with 'stopped')."""
    assert server.stop() == [], server.output()
    lines = stderr_lines(server)
    assert lines and re.search(r'\bstopped\b', lines[-1]), "no final 'stopped' line:\n" + "\n".join(lines)
    return lines


def fields(line):
    """key=value pairs of a text line (values may be "quoted")."""
    return {m.group(1): m.group(2) if m.group(2) is not None else m.group(3)
            for m in re.finditer(r' ([a-z_]+)=(?:"((?:[^"\\]|\\.)*)"|(\S+))', line)}


def get(host, port, target, method="GET", host_header="localhost"):
    return request(host, port, simple_request(method, target, host_header=host_header),
                   head_request=method == "HEAD")


def open_and_close_websocket(server, code=4321):
    """A WebSocket that joins and closes with code; returns its local port."""
    ws = connect_ws(server)
    try:
        port = ws.sock.getsockname()[1]
        ws.welcome()
        ws.send_close(code)
        ws.expect_close(code, reply=False)
    finally:
        ws.close()
    return port


# ---------------------------------------------------------------- every line


@pytest.mark.server_args("--verbose")
def test_every_text_line_has_a_utc_millisecond_timestamp_and_a_level(server):
    before = time.time()
    open_and_close_websocket(server)
    assert get(server.host, server.port, "/no-such-page").status == 404
    lines = stop_and_read(server)
    assert len(lines) >= 5, lines
    for line in lines:
        m = TEXT_LINE.match(line)
        assert m, "log line without a timestamp and level: %r" % line
        ts = time.mktime(time.strptime(m.group(1)[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
        assert before - 60 < ts < time.time() + 60, "timestamp not UTC now: %r" % line
    assert {TEXT_LINE.match(l).group(2) for l in lines} >= {"info", "debug"}


@pytest.mark.server_args("--verbose", "--log-format", "json")
def test_json_format_is_one_object_a_line_with_ts_level_msg_and_fields(server):
    port = open_and_close_websocket(server)
    assert get(server.host, server.port, "/missing\"quote").status == 404
    lines = stop_and_read(server)
    objs = []
    for line in lines:
        obj = json.loads(line)  # each line alone
        assert isinstance(obj, dict), line
        assert re.fullmatch(TS, obj.get("ts", "")), line
        assert obj.get("level") in LEVELS, line
        assert isinstance(obj.get("msg"), str) and obj["msg"], line
        objs.append(obj)
    assert any(o["msg"].startswith("listening on http://") for o in objs)
    opened = [o for o in objs if o["msg"] == "connection open" and o.get("peer", "").endswith(":%d" % port)]
    assert len(opened) == 1, objs
    closed = [o for o in objs if o["msg"] == "connection closed" and o.get("conn") == opened[0]["conn"]]
    assert len(closed) == 1, objs
    assert closed[0]["code"] == 4321 and closed[0]["by"] == "client", closed
    errors = [o for o in objs if o["msg"] == "http error"]
    assert any(o["status"] == 404 and o["path"] == "/missing\"quote" for o in errors), errors


def test_bad_log_format_is_refused():
    p = run_briefly("--log-format", "xml")
    assert p.returncode == 2, p
    assert "--log-format" in p.stderr and "xml" in p.stderr, p.stderr
    assert "listening" not in p.stderr, p.stderr


# ---------------------------------------------------------------- --verbose


@pytest.mark.server_args("--verbose")
def test_verbose_logs_open_with_peer_and_close_with_code_and_who_closed(server):
    port = open_and_close_websocket(server, code=4321)
    opened = wait_line(server, lambda l: " connection open " in l and fields(l).get("peer", "").endswith(
        ":%d" % port), what="the connection's open line")
    conn = fields(opened)["conn"]
    closed = wait_line(server, lambda l: " connection closed " in l and fields(l).get("conn") == conn,
                       what="the connection's close line")
    f = fields(closed)
    assert (f["code"], f["by"], f["proto"]) == ("4321", "client", "websocket"), closed

    # the server closes first: a binary frame is 1003
    ws = connect_ws(server)
    try:
        port = ws.sock.getsockname()[1]
        ws.welcome()
        ws.send_frame(OP_BINARY, b"\x00")
        ws.expect_close(1003)
    finally:
        ws.close()
    conn = fields(wait_line(server, lambda l: " connection open " in l and fields(l).get("peer", "").endswith(
        ":%d" % port)))["conn"]
    closed = wait_line(server, lambda l: " connection closed " in l and fields(l).get("conn") == conn)
    assert (fields(closed)["code"], fields(closed)["by"]) == ("1003", "server"), closed


@pytest.mark.server_args("--verbose")
def test_verbose_logs_http_errors_with_status_and_path(server):
    assert get(server.host, server.port, "/nothing/here").status == 404
    line = wait_line(server, lambda l: " http error " in l and fields(l).get("path") == "/nothing/here")
    assert fields(line)["status"] == "404", line
    assert get(server.host, server.port, "/", method="POST").status == 405
    line = wait_line(server, lambda l: " http error " in l and fields(l).get("status") == "405")
    assert fields(line)["path"] == "/" and fields(line)["why"] == "method", line
    # a path with spaces and quotes stays one value of one line
    assert get(server.host, server.port, "/a%20b%22c").status == 404
    line = wait_line(server, lambda l: " http error " in l and "/a b" in l)
    assert fields(line)["path"] == '/a b\\"c' and fields(line)["status"] == "404", line
    # a target that does not decode (a control byte) is 400, logged without its path
    assert get(server.host, server.port, "/a%0A2026-01-01T00:00:00.000Z%20error%20forged").status == 400
    line = wait_line(server, lambda l: " http error " in l and fields(l).get("why") == "bad target")
    assert fields(line)["status"] == "400" and "path" not in fields(line), line
    assert not any("forged" in l for l in stderr_lines(server))


@pytest.mark.server_args("--verbose", "--jwt-secret", SECRET)
def test_verbose_logs_refused_upgrades_with_the_reason(server):
    def refused(headers=None, path="/"):
        with HTTPConn(server.host, server.port) as c:
            c.send(upgrade_request(server.host, server.port, path, headers=headers))
            return c.response()

    token = make_jwt(SECRET, {"sub": "u1", "name": "Ann", "exp": int(time.time()) + 600})
    cases = [
        # (request, status, why)
        (dict(headers=[("Origin", "http://evil.example")], path="/?token=" + token), 403, "origin"),
        (dict(path="/?room=" + "x" * 300 + "&token=" + token), 400, "bad request: room"),
        (dict(headers=[("Sec-WebSocket-Key", None)], path="/?token=" + token), 400, "bad request"),
    ]
    for req, status, why in cases:
        assert refused(**req).status == status, (req, status)
        line = wait_line(server, lambda l: " upgrade refused " in l and fields(l).get("why") == why,
                         what="an 'upgrade refused' line with why=%s" % why)
        assert fields(line)["status"] == str(status), line
    # a missing token is not refused at the upgrade (the page could not read
    # a 401): the WebSocket opens and closes with 4001, and the log says why
    assert refused(path="/").status == 101
    auth = wait_line(server, lambda l: " sign-in refused " in l and fields(l).get("why") == "auth",
                     what="a 'sign-in refused' line")
    assert fields(auth).get("detail") == "no token", auth
    # and an upgrade with a good token is not refused
    ws = connect_ws(server, "/?token=" + token)
    ws.welcome()
    ws.close()


@pytest.mark.server_args("--verbose", "--max-connections", "1")
def test_verbose_logs_connections_turned_away_and_why(server):
    held = socket.create_connection((server.host, server.port), timeout=5)
    try:
        wait_line(server, lambda l: " connection open " in l and fields(l).get("peer", "").endswith(
            ":%d" % held.getsockname()[1]), what="the held connection's open line")
        with HTTPConn(server.host, server.port) as c:
            port = c.sock.getsockname()[1]
            c.send(simple_request("GET", "/"))
            assert c.response().status == 503
        line = wait_line(server, lambda l: " connection refused " in l and fields(l).get("peer", "").endswith(
            ":%d" % port), what="the refused connection's line")
        assert fields(line)["why"] == "max-connections", line
    finally:
        held.close()


def test_without_verbose_connections_and_errors_are_not_logged(server):
    open_and_close_websocket(server)
    assert get(server.host, server.port, "/nope").status == 404
    lines = stop_and_read(server)  # everything logged before 'stopped'
    assert any("listening on" in l for l in lines)
    for l in lines:
        assert " debug " not in l and "connection open" not in l and "http error" not in l, l


# ---------------------------------------------------------------- /metrics apart


METRICS_URL = re.compile(r"url=http://(\[[^\]]+\]|[^:/\s]+):(\d+)/metrics")


def metrics_address(server):
    line = wait_line(server, lambda l: "--metrics-listen" in l and METRICS_URL.search(l),
                     what="the --metrics-listen line")
    m = METRICS_URL.search(line)
    return m.group(1).strip("[]"), int(m.group(2))


@pytest.mark.server_args("--metrics-listen", "127.0.0.1:0")
def test_metrics_listen_serves_metrics_there_and_not_on_the_chat_port(server):
    host, port = metrics_address(server)
    assert port != server.port
    ws = connect_ws(server)
    try:
        ws.welcome()
        deadline = time.monotonic() + 5
        while True:  # each edge publishes its counters every 100 ms
            r = get(host, port, "/metrics", host_header="127.0.0.1:%d" % port)
            assert r.status == 200, r
            assert r.header("Content-Type", "").startswith("text/plain; version=0.0.4"), r
            m = re.search(rb"^ringcast_websockets_opened_total (\d+)", r.body, re.M)
            assert m, r.body[:500]
            if int(m.group(1)) >= 1:
                break
            assert time.monotonic() < deadline, "the chat port's WebSocket never showed in /metrics"
            time.sleep(0.05)
    finally:
        ws.close()
    assert get(server.host, server.port, "/metrics").status == 404
    assert get(server.host, server.port, "/").status == 200  # the chat port still serves the page


@pytest.mark.server_args("--metrics-listen", "127.0.0.1:0")
def test_metrics_listener_serves_only_metrics_and_the_probes(server):
    host, port = metrics_address(server)
    assert get(host, port, "/healthz").status == 200
    assert get(host, port, "/readyz").status == 200
    assert get(host, port, "/metrics", method="HEAD").status == 200
    for path in ("/", "/index.html", "/app.js", "/ws", "/nope"):
        assert get(host, port, path).status == 404, path
    with HTTPConn(host, port) as c:
        c.send(upgrade_request(host, port, "/"))
        assert c.response().status == 404
    # a foreign Host on a loopback listener: the DNS-rebinding defence holds here too
    assert get(host, port, "/metrics", host_header="evil.example").status == 421


@pytest.mark.server_args("--metrics-listen", "127.0.0.1:0")
def test_metrics_listener_does_not_hold_up_shutdown(server):
    host, port = metrics_address(server)
    idle = socket.create_connection((host, port), timeout=5)  # an idle scrape connection
    try:
        assert get(host, port, "/healthz").status == 200  # the listener is serving
        t0 = time.monotonic()
        assert server.stop() == [], server.output()
        assert time.monotonic() - t0 < 2.5
    finally:
        idle.close()


@pytest.mark.server_args("--metrics-listen", "off")
def test_metrics_off_answers_404(server):
    wait_line(server, lambda l: "/metrics off" in l)
    assert get(server.host, server.port, "/healthz").status == 200
    assert get(server.host, server.port, "/metrics").status == 404


@pytest.mark.parametrize("value", ["nonsense", "127.0.0.1", "::1:9100", "127.0.0.1:70000", ":9100",
                                   "127.0.0.1:port"])
def test_bad_metrics_listen_is_refused(value):
    p = run_briefly("--metrics-listen", value)
    assert p.returncode == 2, (value, p.returncode, p.stderr)
    assert "--metrics-listen" in p.stderr, p.stderr
    assert "listening" not in p.stderr, p.stderr


def test_metrics_listen_on_a_taken_port_fails_to_start():
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        p = run_briefly("--metrics-listen", "127.0.0.1:%d" % taken.getsockname()[1])
    finally:
        taken.close()
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert "--metrics-listen" in p.stderr and "in use" in p.stderr, p.stderr
    assert "listening on" not in p.stderr, p.stderr

"""Connection lifecycle: abrupt disconnects, idle pings and timeouts, close
timeout, slow consumers, SIGTERM, slow request heads, many connections."""

import asyncio
import select
import signal
import socket
import struct
import time

import pytest
from rawws import (RawWS, HTTPConn, OP_PING, OP_PONG, OP_CLOSE, OP_TEXT, Closed, build_frame,
                   parse_frames, request, simple_request)
from wsutil import run, connect, join, recv_type, messages, close_all


# ---------------------------------------------------------------- abrupt disconnects


@pytest.mark.parametrize("how", ["fin", "rst"])
def test_abrupt_disconnect_does_not_disturb_others(server, how):
    a = RawWS.connect(server.host, server.port)
    b = RawWS.connect(server.host, server.port)
    c = RawWS.connect(server.host, server.port)
    with a, b, c:
        a.welcome()
        b.welcome()
        wc = c.welcome()
        a.send_text("before")
        for x in (a, b, c):
            assert x.recv_type("message")["text"] == "before"
        if how == "rst":
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.sock.close()  # RST, no close frame
        else:
            c.send_text("in flight")  # the others may or may not get it
            c.sock.shutdown(socket.SHUT_WR)  # FIN, no close frame
            c.expect_eof(3)  # the server must hang up on EOF
        for x in (a, b):
            lv = x.recv_type("leave", 3)
            assert lv["user"]["id"] == wc["id"] and lv["count"] == 2, lv
        a.send_text("after")
        for x in (a, b):  # "in flight" may come before or after the leave
            assert x.recv_type("message", pred=lambda m: m["text"] != "in flight")["text"] == "after"


def test_disconnect_mid_frame(server):
    a = RawWS.connect(server.host, server.port)
    c = RawWS.connect(server.host, server.port)
    with a, c:
        a.welcome()
        wc = c.welcome()
        c.send_raw(b"\x81\xfe\x01\x00abcd" + b"x" * 10)  # 256-byte frame, cut short
        time.sleep(0.05)
        c.sock.close()
        lv = a.recv_type("leave", 3)
        assert lv["user"]["id"] == wc["id"]
        a.send_text("alive")
        assert a.recv_type("message")["text"] == "alive"


def test_disconnect_during_handshake(server):
    s = socket.create_connection((server.host, server.port), timeout=3)
    s.sendall(b"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n")
    s.close()
    with RawWS.connect(server.host, server.port) as ws:
        ws.welcome()
        assert ws.is_open(2)


# ---------------------------------------------------------------- idle handling


def watch_idle(server, offsets, limit):
    """Connect raw clients at the given offsets (seconds), read everything and
    never answer. Returns per client: (first ping, close frame time, close
    code, EOF time), times in seconds since that client's own connect began."""
    t_base = time.monotonic()
    pending = sorted(offsets)
    clients = []   # [ws, t0, first_ping, close_at, code, eof_at]
    while time.monotonic() - t_base < limit:
        now = time.monotonic()
        if pending and now - t_base >= pending[0]:
            pending.pop(0)
            t0 = time.monotonic()
            clients.append([RawWS.connect(server.host, server.port), t0, None, None, None, None])
            continue
        live = [c for c in clients if c[5] is None]
        if not live and not pending:
            break
        ready = [c for c in live if c[0].reader.buf]
        if not ready:
            wait = 0.05 if not pending else max(0.0, min(0.05, t_base + pending[0] - now))
            r, _, _ = select.select([c[0].sock for c in live], [], [], wait)
            ready = [c for c in live if c[0].sock in r]
        for c in ready:
            ws, t0 = c[0], c[1]
            try:
                f = ws.recv_frame(timeout=2)
            except Closed:
                c[5] = time.monotonic() - t0
                continue
            if f.opcode == OP_PING and c[2] is None:
                c[2] = time.monotonic() - t0
            elif f.opcode == OP_CLOSE and c[3] is None:
                c[3], c[4] = time.monotonic() - t0, f.close_code
    for c in clients:
        c[0].close()
    return [tuple(c[2:]) for c in clients]


@pytest.mark.timeout_s(30)
@pytest.mark.server_args("--ping-interval", "1", "--idle-timeout", "3", "--close-timeout", "1")
def test_idle_client_pinged_then_dropped(server):
    # Four clients a quarter of a second apart, so that a server whose clock
    # has a coarse granularity cannot pass by luck of phase.
    results = watch_idle(server, [0, 0.25, 0.5, 0.75], limit=7.5)
    assert len(results) == 4
    problems = []
    for i, (ping, close_at, code, eof_at) in enumerate(results):
        where = "client %d: ping %s, close frame %s (code %s), EOF %s" % (
            i, ping and round(ping, 2), close_at and round(close_at, 2), code, eof_at and round(eof_at, 2))
        end = close_at if close_at is not None else eof_at
        if ping is None or ping > 2.5:
            problems.append("no ping within 2.5s (ping-interval 1); " + where)
        if end is None:
            problems.append("never closed (idle-timeout 3); " + where)
            continue
        if end < 2.9:
            problems.append("closed after less than idle-timeout 3s of silence; " + where)
        if end > 5.0:
            problems.append("closed too late (idle-timeout 3); " + where)
        if code not in (None, 1001):
            problems.append("close code not 1001; " + where)
        if eof_at is None or eof_at - end > 2.0:
            problems.append("TCP not closed after the close frame; " + where)
    assert not problems, "\n".join(problems)


@pytest.mark.server_args("--ping-interval", "1", "--idle-timeout", "3")
def test_client_answering_pings_stays_connected(server):
    async def main():
        ws, _ = await join(server)  # websockets answers pings automatically
        await asyncio.sleep(5)
        assert ws.open, "closed although it answered pings (code %s)" % ws.close_code
        await ws.send("still here")
        assert (await recv_type(ws, "message"))["text"] == "still here"
        await ws.close()
    run(main(), timeout=15)


@pytest.mark.server_args("--ping-interval", "1", "--idle-timeout", "3")
def test_raw_client_answering_pings_stays_connected(server):
    with RawWS.connect(server.host, server.port) as ws:
        ws.welcome()
        end = time.monotonic() + 5
        pongs_sent = 0
        while time.monotonic() < end:
            try:
                f = ws.recv_frame(deadline=min(end, time.monotonic() + 1.5))
            except TimeoutError:
                continue
            assert f.opcode != OP_CLOSE, "closed although it answered pings: %r" % f
            if f.opcode == OP_PING:
                ws.send_frame(OP_PONG, f.payload)
                pongs_sent += 1
        assert pongs_sent >= 2
        assert ws.is_open(2)


@pytest.mark.server_args("--close-timeout", "1")
def test_client_close_then_silence_tcp_closed(server):
    with RawWS.connect(server.host, server.port) as ws:
        ws.welcome()
        ws.send_close(1000)
        t0 = time.monotonic()
        # read nothing and send nothing more, then check the server hung up
        time.sleep(0.2)
        data = ws.expect_eof(2.5)
        assert time.monotonic() - t0 <= 2.8
        closes = [f for f in parse_frames(data) if f.opcode == OP_CLOSE]
        assert [f.close_code for f in closes] == [1000], "expected one close 1000 echo: %r" % data


@pytest.mark.server_args("--close-timeout", "1")
def test_server_close_unanswered_tcp_closed_within_close_timeout(server):
    with RawWS.connect(server.host, server.port) as ws:
        ws.welcome()
        ws.send_frame(OP_TEXT, b"\xff")  # 1007, initiated by the server
        t0 = time.monotonic()
        f = ws.recv_close(3)
        assert f.close_code == 1007
        ws.expect_eof(2.5)  # we never answer its close frame
        assert time.monotonic() - t0 <= 2.8


# ---------------------------------------------------------------- slow consumer


@pytest.mark.timeout_s(60)
@pytest.mark.server_args("--max-queue", "65536", "--close-timeout", "1")
@pytest.mark.server_args("--rate-limit", "0")  # flood control off: these send bursts
def test_slow_consumer_dropped_healthy_reader_unaffected(server):
    # Linux autotunes the server's SO_SNDBUF up to tcp_wmem[2] (4 MiB by
    # default) even when the peer's window is tiny, so the kernel alone can
    # absorb ~4 MiB for the slow client: flood with ~12 MiB. The flood is paced
    # by the healthy readers (a batch of 32 KiB, then wait until both the
    # sender and the healthy reader got it), so they are never more than half
    # of --max-queue behind and must never be dropped.
    N, SIZE, BATCH = 1536, 8192, 4
    slow = RawWS.connect(server.host, server.port, rcvbuf=4096)
    slow_id = slow.welcome()["id"]  # from now on it never reads

    async def main():
        sender, ws_s = await join(server)
        healthy, _ = await join(server)
        others, got, own = [], [], []
        for start in range(0, N, BATCH):
            for i in range(start, start + BATCH):
                await sender.send("%05d:" % i + "x" * (SIZE - 6))
            got += await messages(healthy, BATCH, timeout=10, skipped=others)
            own += await messages(sender, BATCH, timeout=10)
        assert [m["text"][:5] for m in got] == ["%05d" % i for i in range(N)]
        ids = [m["id"] for m in got]
        assert ids == list(range(ids[0], ids[0] + N))
        assert [m["id"] for m in own] == ids
        # the slow consumer was dropped: a leave event for it reached the others
        await sender.send("after flood")
        m = await recv_type(healthy, "message", skipped=others)
        assert m["text"] == "after flood"
        leaves = [e for e in others if e.get("type") == "leave"]
        assert [e["user"]["id"] for e in leaves] == [slow_id], others[-10:]
        await close_all(sender, healthy)

    try:
        run(main(), timeout=45)
        # now drain the slow client: it must end in EOF/RST, having received
        # much less than the flood
        try:
            data, reset = slow.reader.read_to_eof(timeout=5)
        except TimeoutError:
            pytest.fail("slow consumer still connected after the flood (max-queue 65536)")
        frames = parse_frames(data)
        got = [f for f in frames if f.opcode == OP_TEXT and f.json().get("type") == "message"]
        assert len(got) < N, "slow consumer received all %d messages: not dropped" % N
        closes = [f.close_code for f in frames if f.opcode == OP_CLOSE]
        assert closes in ([], [1008]), closes
        assert server.alive()
    finally:
        slow.close()


# ---------------------------------------------------------------- SIGTERM


def test_sigterm_closes_all_with_1001_and_exits_0(server):
    clients = [RawWS.connect(server.host, server.port) for _ in range(3)]
    try:
        for c in clients:
            c.welcome()
        server.expect_exit = True
        t0 = time.monotonic()
        server.terminate(signal.SIGTERM)
        for c in clients:
            c.expect_close(1001, timeout=2.5, eof_timeout=2.5)
        try:
            rc = server.proc.wait(max(0.1, 2.3 - (time.monotonic() - t0)))
        except Exception:
            pytest.fail("ringcast still running %.1fs after SIGTERM" % (time.monotonic() - t0))
        assert rc == 0
        assert time.monotonic() - t0 <= 2.3
    finally:
        for c in clients:
            c.close()


def test_sigint_exits_0(server):
    with RawWS.connect(server.host, server.port) as c:
        c.welcome()
        server.expect_exit = True
        server.terminate(signal.SIGINT)
        c.expect_close(1001, timeout=2.5)
        assert server.proc.wait(2.5) == 0


# ---------------------------------------------------------------- slow request head


@pytest.mark.server_args("--header-timeout", "1")
def test_slow_request_head_408(server):
    head = b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"a" * 200 + b"\r\n\r\n"
    with HTTPConn(server.host, server.port) as c:
        t0 = time.monotonic()
        for byte in head:
            try:
                c.send(bytes([byte]))
            except OSError:  # already closed by the server
                break
            r, _, _ = select.select([c.sock], [], [], 0.1)
            if r:
                break
            if time.monotonic() - t0 > 3.5:
                break
        try:
            data, _ = c.reader.read_to_eof(timeout=max(0.1, 3.0 - (time.monotonic() - t0)))
        except TimeoutError:
            pytest.fail("slow head not closed after %.1fs (header-timeout 1); received %r"
                        % (time.monotonic() - t0, bytes(c.reader.buf[:200])))
        elapsed = time.monotonic() - t0
        assert elapsed <= 2.8, "took %.2fs to time out the head (header-timeout 1)" % elapsed
        if data:
            assert data.startswith(b"HTTP/1.1 408"), data[:100]


@pytest.mark.server_args("--header-timeout", "2")
def test_header_timeout_not_early(server):
    # Five requests started 0.2 s apart, each head completed 1.4 s after it
    # began: well within --header-timeout 2, so every one must be served.
    conns, events = [], []
    t_base = time.monotonic()
    for k in range(5):
        events.append((k * 0.2, k, b"GET /style.css HTTP/1.1\r\n"))
        events.append((k * 0.2 + 1.4, k, b"Host: localhost\r\n\r\n"))
    events.sort()
    started = {}
    for at, k, data in events:
        delay = t_base + at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        if k not in started:
            conns.append(HTTPConn(server.host, server.port))
            started[k] = time.monotonic()
        try:
            conns[k].send(data)
        except OSError:
            pass  # already closed by the server: reported below
    problems = []
    for k, c in enumerate(conns):
        with c:
            try:
                r = c.response(timeout=3)
                if r.status != 200:
                    problems.append("request %d: %d %s" % (k, r.status, r.reason))
            except Exception as e:  # closed without an answer
                problems.append("request %d: %s: %s" % (k, type(e).__name__, e))
    assert not problems, ("heads completed after 1.4 s were cut although --header-timeout is 2:\n"
                          + "\n".join(problems))


@pytest.mark.server_args("--header-timeout", "1")
def test_header_timeout_spares_websockets(server):
    with RawWS.connect(server.host, server.port) as ws:
        ws.welcome()
        time.sleep(2)
        assert ws.is_open(2)


# ---------------------------------------------------------------- many connections


@pytest.mark.timeout_s(60)
def test_200_concurrent_connections_receive_broadcast(server):
    async def main():
        sem = asyncio.Semaphore(50)

        async def one():
            async with sem:
                # no join() here: rooms over 100 members get no join events
                ws = await connect(server)
                return ws, await recv_type(ws, "welcome", timeout=10)

        pairs = await asyncio.gather(*(one() for _ in range(200)))
        wss = [p[0] for p in pairs]
        assert len({p[1]["id"] for p in pairs}) == 200
        # a 201st member: exact count, users list cut to at most 100
        late = await connect(server)
        await recv_type(late, "welcome")
        p = await recv_type(late, "presence")
        assert p["count"] == 201, p["count"]
        assert 1 <= len(p["users"]) <= 100, len(p["users"])
        wss.append(late)
        await wss[0].send("to all 200")
        got = await asyncio.gather(*(recv_type(w, "message", timeout=15) for w in wss))
        assert all(m["text"] == "to all 200" for m in got)
        assert len({m["id"] for m in got}) == 1
        assert len(got) == 201
        await close_all(*wss)
    run(main(), timeout=50)


# ---------------------------------------------------------------- shutdown edge cases


@pytest.mark.server_args("--max-queue", "1048576")
def test_sigterm_exits_in_time_when_clients_never_answer_close(server):
    # default --close-timeout 5: shutdown must still finish within 2 s
    mute = [RawWS.connect(server.host, server.port) for _ in range(2)]
    stuck = RawWS.connect(server.host, server.port, rcvbuf=4096)
    try:
        for c in mute + [stuck]:
            c.welcome()
        # fill the stuck client's path (under --max-queue 1 MiB: it is not dropped)
        with RawWS.connect(server.host, server.port) as sender:
            sender.welcome()
            for i in range(30):  # under the default flood-control burst
                sender.send_text("%03d" % i + "y" * 16000)
            for i in range(30):
                sender.recv_type("message")
        # and HTTP connections: one idle keep-alive, one with half a head
        idle_http = HTTPConn(server.host, server.port)
        idle_http.send(simple_request("GET", "/style.css"))
        assert idle_http.response().status == 200
        half = HTTPConn(server.host, server.port)
        half.send(b"GET / HTTP/1.1\r\nHo")
        server.expect_exit = True
        t0 = time.monotonic()
        server.terminate(signal.SIGTERM)
        for c in mute:
            f = c.recv_close(2.5)  # read it, never answer
            assert f.close_code == 1001, f
        try:
            rc = server.proc.wait(max(0.1, 2.3 - (time.monotonic() - t0)))
        except Exception:
            pytest.fail("ringcast still running %.1fs after SIGTERM with clients that do not "
                        "answer the close" % (time.monotonic() - t0))
        assert rc == 0
    finally:
        for c in mute + [stuck]:
            c.close()


# ---------------------------------------------------------------- connection limit


@pytest.mark.server_args("--max-connections", "10")
def test_connection_slots_are_released(server):
    # 60 sequential connect/close cycles through 10 slots, with every kind of ending
    for i in range(60):
        ws = RawWS.connect(server.host, server.port)
        ws.welcome()
        kind = i % 3
        if kind == 0:
            ws.send_close(1000)
            ws.recv_close(2)
            ws.expect_eof(2)
        elif kind == 1:
            ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:
            ws.send_frame(OP_TEXT, b"\xff")
            ws.recv_close(2)
        ws.close()
    for i in range(30):
        with HTTPConn(server.host, server.port) as c:
            c.send(b"GET /style.css HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            assert c.response().status == 200
    # all slots must be free again: 10 simultaneous clients
    clients = []
    try:
        for i in range(10):
            c = None
            deadline = time.monotonic() + 3
            while c is None:
                try:
                    c = RawWS.connect(server.host, server.port, timeout=1)
                    c.welcome(timeout=1)
                except (AssertionError, OSError, Closed, TimeoutError):
                    if c is not None:
                        c.close()
                        c = None
                    if time.monotonic() > deadline:
                        pytest.fail("slot %d never became free (leaked connection slots?)" % i)
                    time.sleep(0.1)
            clients.append(c)
        clients[0].send_text("all ten")
        for c in clients:
            assert c.recv_type("message")["text"] == "all ten"
    finally:
        for c in clients:
            c.close()


@pytest.mark.server_args("--max-connections", "3")
def test_over_connection_limit_others_unaffected(server):
    clients = [RawWS.connect(server.host, server.port) for _ in range(3)]
    try:
        for c in clients:
            c.welcome()
        extra = []
        for _ in range(3):  # over the limit: refused, answered with an error, or left waiting
            try:
                s = socket.create_connection((server.host, server.port), timeout=1)
                s.sendall(b"GET /style.css HTTP/1.1\r\nHost: localhost\r\n\r\n")
                extra.append(s)
            except OSError:
                pass
        clients[0].send_text("still fine")
        for c in clients:
            assert c.recv_type("message")["text"] == "still fine"
        for s in extra:
            s.close()
        clients[2].send_close(1000)
        clients[2].recv_close(2)
        clients[2].close()
        time.sleep(0.2)
        with RawWS.connect(server.host, server.port, timeout=3) as late:
            late.welcome(timeout=3)
    finally:
        for c in clients:
            c.close()


# ---------------------------------------------------------------- memory under abuse


def rss_mib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def flood_without_reading(server, data, seconds):
    """Send data repeatedly from a client with a tiny receive buffer that
    never reads, for `seconds`; returns bytes sent."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect((server.host, server.port))
    s.setblocking(False)
    sent, end = 0, time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            try:
                sent += s.send(data)
            except BlockingIOError:
                select.select([], [s], [], 0.05)
            except OSError:
                break
    finally:
        s.close()
    return sent


@pytest.mark.server_args("--max-queue", "65536")
def test_ping_flood_without_reading_pongs_bounded(server):
    before = rss_mib(server.proc.pid)
    ws = RawWS.connect(server.host, server.port, rcvbuf=4096)
    ws.welcome()
    chunk = b"".join(build_frame(OP_PING, b"p" * 125) for _ in range(500))
    ws.sock.setblocking(False)
    end = time.monotonic() + 1.5
    while time.monotonic() < end:
        try:
            ws.sock.send(chunk)
        except BlockingIOError:
            select.select([], [ws.sock], [], 0.05)
        except OSError:
            break
    grown = rss_mib(server.proc.pid) - before
    ws.close()
    assert grown < 64, "server RSS grew by %.0f MiB under a pong-never-read ping flood" % grown
    assert request(server.host, server.port, simple_request("GET", "/style.css")).status == 200


@pytest.mark.server_args("--max-queue", "65536")
def test_pipelined_http_flood_without_reading_bounded(server):
    before = rss_mib(server.proc.pid)
    flood_without_reading(server, simple_request("GET", "/") * 500, 1.5)
    grown = rss_mib(server.proc.pid) - before
    assert grown < 64, "server RSS grew by %.0f MiB under unread pipelined requests" % grown
    assert request(server.host, server.port, simple_request("GET", "/style.css")).status == 200

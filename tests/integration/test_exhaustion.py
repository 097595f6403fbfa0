"""Resource exhaustion (README --max-connections, --max-per-ip, --max-queue, --ping-interval,
--idle-timeout): the connection limit answers 503 while the others keep
chatting; running out of file descriptors (EMFILE) pauses accepting without
hurting existing connections and recovers; silent clients are closed; 500
clients that never read cannot make the server's memory grow without bound
while healthy readers get every message."""

import os
import re
import resource
import socket
import threading
import time

import pytest

from rawws import RawWS, Closed, build_frame, OP_TEXT, OP_PING, OP_PONG, OP_CLOSE
from rcutil import poll_metrics, wait_metric_at_least, connect_ws, connect_seq, send_and_ack, metrics, rss_kib


def read_to_eof_or_timeout(sock, timeout):
    data, t0 = b"", time.monotonic()
    sock.settimeout(0.2)
    while time.monotonic() - t0 < timeout:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            return data, True
        if not chunk:
            return data, True
        data += chunk
    return data, False


# ---------------------------------------------------------------- --max-connections


@pytest.mark.server_args("--max-connections", "5")
def test_sixth_connection_503_first_five_keep_chatting(server):
    clients = [connect_ws(server) for _ in range(5)]
    try:
        ids = [connect_seq(c)["welcome"]["id"] for c in clients]
        for how in ("silent", "upgrade"):
            s = socket.create_connection((server.host, server.port), timeout=5)
            if how == "upgrade":
                s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
            data, closed = read_to_eof_or_timeout(s, 5)
            s.close()
            assert data.startswith(b"HTTP/1.1 503"), "6th connection (%s) got %r" % (how, data[:80])
            assert b" 101 " not in data
            assert closed, "the refused 6th connection was not closed"
        # the five are unaffected: messages both ways reach all five
        for sender, text in ((clients[0], "to all five"), (clients[4], "reply to all")):
            assert send_and_ack(sender, text)["type"] == "message"
            for c in clients:
                if c is not sender:
                    m = c.recv_type("message", pred=lambda e: e["text"] == text)
                    assert m["from"] in ids
        # a slot frees up when one leaves
        clients.pop().close()
        deadline = time.monotonic() + 3
        while True:
            try:
                late = connect_ws(server, timeout=2)
                break
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        clients.append(late)
        connect_seq(late)
        assert send_and_ack(late, "back in")["type"] == "message"
        # (the metrics request needs a slot too)
        clients.pop().close()
        assert wait_metric_at_least(server, "ringcast_connections_refused_total", 2) >= 2
    finally:
        for c in clients:
            c.close()


# ---------------------------------------------------------------- --max-per-ip


def get_from(server, source, timeout=5):
    """A GET / from a given loopback source address: (response bytes, closed)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((source, 0))
    s.connect((server.host, server.port))
    s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    try:
        return read_to_eof_or_timeout(s, timeout)
    finally:
        s.close()


@pytest.mark.server_args("--max-per-ip", "2")
def test_max_per_ip_third_from_one_address_503_others_unaffected(server):
    clients = [connect_ws(server) for _ in range(2)]  # both from 127.0.0.1
    try:
        for c in clients:
            connect_seq(c)
        data, closed = get_from(server, "127.0.0.1")
        assert data.startswith(b"HTTP/1.1 503"), "3rd connection from 127.0.0.1 got %r" % data[:80]
        assert closed
        data, _ = get_from(server, "127.0.0.2")
        assert data.startswith(b"HTTP/1.1 200"), "another address was refused: %r" % data[:80]
        # the two keep chatting
        assert send_and_ack(clients[0], "still here")["type"] == "message"
        clients[1].recv_type("message", pred=lambda e: e["text"] == "still here")
        # one leaves: 127.0.0.1 may connect again
        clients.pop().close()
        deadline = time.monotonic() + 3
        while True:
            data, _ = get_from(server, "127.0.0.1")
            if data.startswith(b"HTTP/1.1 200") or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert data.startswith(b"HTTP/1.1 200"), "127.0.0.1 still refused after one left: %r" % data[:80]
        m = poll_metrics(server, lambda m: m.get("ringcast_connections_refused_per_ip_total", 0) >= 1)
        assert m.get("ringcast_connections_refused_per_ip_total", 0) >= 1, m
        assert m.get("ringcast_connections_refused_total", 0) == 0
    finally:
        for c in clients:
            c.close()


# ---------------------------------------------------------------- EMFILE


NOFILE = 64


def low_nofile():
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))


def fill_until_emfile(server, limit=NOFILE + 20):
    """Open WebSocket connections until one gets no handshake answer within
    1 s (--plain-fds: sockets in the process's descriptor table). Returns
    the connected clients."""
    clients = []
    for _ in range(limit):
        try:
            c = RawWS.connect(server.host, server.port, "/", timeout=1)
        except (TimeoutError, OSError, Closed, AssertionError):
            break
        clients.append(c)
        connect_seq(c)
    else:
        raise AssertionError("%d connections accepted under a %d open-file limit" % (limit, NOFILE))
    return clients


def pause_lines(server):
    return [l for l in server.output().splitlines()
            if re.search(r"too many open files|emfile|pausing accept", l, re.I)]


@pytest.mark.timeout_s(30)
def test_emfile_existing_connections_work_and_accepts_resume(server_factory):
    server = server_factory("--max-connections", "1000", "--rate-limit", "0", "--plain-fds",
                            preexec_fn=low_nofile)
    clients = fill_until_emfile(server)
    try:
        assert 10 <= len(clients) < NOFILE, len(clients)
        # existing connections keep working, both ways
        first, last = clients[0], clients[-1]
        m = send_and_ack(first, "at the fd limit")
        assert m["type"] == "message", m
        assert last.recv_type("message", pred=lambda e: e["text"] == "at the fd limit")
        assert send_and_ack(last, "reply")["type"] == "message"
        assert first.is_open(1.0)
        assert pause_lines(server), "no log line about pausing accepts:\n" + server.output()[-2000:]
        # close some: new connections are accepted again
        for c in clients[:10]:
            c.close()
        del clients[:10]
        deadline = time.monotonic() + 5
        fresh = []
        while len(fresh) < 5:
            try:
                c = RawWS.connect(server.host, server.port, "/", timeout=1)
                fresh.append(c)
                connect_seq(c)
            except (TimeoutError, OSError, Closed, AssertionError) as e:
                if time.monotonic() > deadline:
                    pytest.fail("no new connection accepted after freeing 10 fds: %r" % e)
                time.sleep(0.1)
        clients += fresh
        m = send_and_ack(fresh[-1], "after recovery")
        assert m["type"] == "message"
        assert clients[0].recv_type("message", pred=lambda e: e["text"] == "after recovery")
        assert server.alive()
    finally:
        for c in clients:
            c.close()


@pytest.mark.timeout_s(30)
def test_emfile_logs_one_line_not_one_per_tick(server_factory):
    server = server_factory("--max-connections", "1000", "--plain-fds", preexec_fn=low_nofile)
    clients = fill_until_emfile(server)
    try:
        time.sleep(2.0)   # stay at the limit for a while with a connection waiting
        lines = pause_lines(server)
        assert len(lines) >= 1, "no log line about pausing accepts"
        assert len(lines) <= 2, "%d log lines about EMFILE in ~3 s at the limit (log flood): %r" % (
            len(lines), lines[:3])
    finally:
        for c in clients:
            c.close()


# ---------------------------------------------------------------- silent clients


@pytest.mark.timeout_s(20)
@pytest.mark.server_args("--ping-interval", "1", "--idle-timeout", "3", "--close-timeout", "1")
def test_silent_client_closed_answering_client_kept(server):
    silent = connect_ws(server, rcvbuf=4096)
    alive = connect_ws(server)
    try:
        connect_seq(alive)
        t0 = time.monotonic()
        # `alive` answers every ping; `silent` never writes (we only watch it)
        # (bytes that arrived with the 101 are already in the reader's buffer)
        pings, data, closed_at = 0, bytes(silent.reader.buf), None
        silent.sock.setblocking(False)
        while closed_at is None and time.monotonic() - t0 < 7.0:
            try:
                f = alive.recv_frame(0.1)
                if f.opcode == OP_PING:
                    pings += 1
                    alive.send_frame(OP_PONG, f.payload)
            except TimeoutError:
                pass
            try:
                chunk = silent.sock.recv(65536)
                if not chunk:
                    closed_at = time.monotonic() - t0
                data += chunk
            except BlockingIOError:
                pass
            except ConnectionResetError:
                closed_at = time.monotonic() - t0
        closed = closed_at is not None
        assert closed, "a client silent for 7 s (--idle-timeout 3, --close-timeout 1) is still connected"
        assert closed_at >= 2.5, "closed after %.1f s, before --idle-timeout 3" % closed_at
        from rawws import parse_frames
        frames = parse_frames(data)
        assert any(f.opcode == OP_PING for f in frames), "the silent client was never pinged"
        closes = [f.close_code for f in frames if f.opcode == OP_CLOSE]
        assert closes in ([1001], []), closes
        assert pings >= 1, "the answering client got no ping in %.1f s (--ping-interval 1)" % closed_at
        assert alive.is_open(1.0), "a client answering pings was closed"
        assert send_and_ack(alive, "still here")["type"] == "message"
    finally:
        silent.close()
        alive.close()


# ---------------------------------------------------------------- 500 clients that never read


N_SLOW = 500
N_MSG = 2000
MSG_BYTES = 1024
BATCH = 16
MAX_QUEUE = 65536


@pytest.mark.timeout_s(45)
@pytest.mark.server_args("--max-queue", str(MAX_QUEUE), "--rate-limit", "0", "--close-timeout", "1")
def test_500_non_readers_memory_bounded_healthy_readers_complete(server):
    """500 clients upgrade and never read (SO_RCVBUF 2 KiB); 2,000 broadcasts
    of 1 KiB are sent, paced so that the two healthy readers never fall more
    than 16 messages behind.

    RSS bound: each non-reader may hold at most --max-queue (64 KiB) of queued
    frames before it is dropped; allow twice that for allocator slack and
    partially sent buffers: 500 x 64 KiB x 2 = 62.5 MiB, plus 50 MiB for
    everything else that may legitimately grow during the run (SQLite page
    cache, the 1,000 recent messages kept in memory, connection slots, receive
    buffers, glibc arenas). A server that buffers the flood for every
    non-reader would need 500 x 2 MiB = 1 GiB."""
    pid = server.proc.pid
    baseline = rss_kib(pid)
    bound = baseline + N_SLOW * MAX_QUEUE * 2 // 1024 + 50 * 1024
    slow = []
    readers = []
    peak = [baseline]
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            try:
                peak[0] = max(peak[0], rss_kib(pid))
            except (OSError, AssertionError):
                return
            stop.wait(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    try:
        for _ in range(N_SLOW):
            slow.append(RawWS.connect(server.host, server.port, "/", rcvbuf=2048))
        readers = [connect_ws(server) for _ in range(2)]
        for r in readers:
            connect_seq(r)
        sender = connect_ws(server)
        readers.append(sender)
        connect_seq(sender)
        watcher.start()
        got = [[] for _ in readers]
        pad = "x" * (MSG_BYTES - 6)
        t0 = time.monotonic()
        for start in range(0, N_MSG, BATCH):
            sender.send_raw(b"".join(build_frame(OP_TEXT, ("%05d:" % i + pad).encode())
                                     for i in range(start, start + BATCH)))
            for k, r in enumerate(readers):
                n = 0
                while n < BATCH:
                    m = r.recv_json(10)
                    if m.get("type") == "message":
                        got[k].append(m)
                        n += 1
        flood_s = time.monotonic() - t0
        stop.set()
        watcher.join(2)
        for k, g in enumerate(got):
            assert [m["text"][:5] for m in g] == ["%05d" % i for i in range(N_MSG)], \
                "reader %d lost or reordered messages" % k
            assert [m["id"] for m in g] == list(range(1, N_MSG + 1)), "reader %d: ids not 1..%d" % (k, N_MSG)
        grown_mib = (peak[0] - baseline) / 1024
        assert peak[0] <= bound, "peak RSS %.1f MiB over the %.1f MiB bound (baseline %.1f MiB)" % (
            peak[0] / 1024, bound / 1024, baseline / 1024)
        closes = wait_metric_at_least(server, "ringcast_slow_consumer_closes_total", 400)
        mx = metrics(server)
        assert closes >= 400, "only %d of %d non-readers dropped as slow consumers" % (closes, N_SLOW)
        assert closes <= N_SLOW, "more slow-consumer closes (%d) than non-readers" % closes
        # their slots are released (close-timeout 1 s)
        deadline = time.monotonic() + 5
        while mx.get("ringcast_connections", 1e9) > 10 and time.monotonic() < deadline:
            time.sleep(0.2)
            mx = metrics(server)
        assert mx.get("ringcast_connections", 1e9) <= 10, \
            "%s connections still open after the non-readers were dropped" % mx.get("ringcast_connections")
        # the healthy ones were never dropped and the server still serves newcomers
        for r in readers:
            assert r.is_open(1.0)
        with connect_ws(server) as late:
            seq = connect_seq(late)
            assert seq["history"]["messages"][-1]["text"].startswith("%05d" % (N_MSG - 1))
        print("flood %.1fs, RSS baseline %.1f MiB, peak +%.1f MiB (bound +%.1f MiB), %d slow closes" % (
            flood_s, baseline / 1024, grown_mib, (bound - baseline) / 1024, closes))
    finally:
        stop.set()
        for c in slow + readers:
            c.close()


# ---------------------------------------------------------------- direct descriptors


@pytest.mark.timeout_s(40)
def test_three_edges_hold_more_connections_than_the_fd_limit_all_receiving(server_factory):
    """Each edge keeps its sockets in its ring's file table (direct
    descriptors), not the process's: with three edges under an open-file
    limit of 64, the server holds 120 connections, and every one of them
    gets a broadcast."""
    n = 120
    server = server_factory("--threads", "3", "--rate-limit", "0", "--max-connections", "1000",
                            preexec_fn=low_nofile)
    clients = []
    try:
        for _ in range(n):
            c = RawWS.connect(server.host, server.port, "/", timeout=5)
            clients.append(c)
            connect_seq(c)
        assert wait_metric_at_least(server, "ringcast_websockets_opened_total", n) == n
        m = metrics(server)
        on_edges = [m.get('ringcast_edge_connections{edge="%d"}' % i, 0) for i in range(3)]
        assert sum(on_edges) >= n and max(on_edges) < NOFILE, on_edges
        send_and_ack(clients[0], "to all %d" % n)
        for c in clients[1:]:
            assert c.recv_type("message", pred=lambda e: e["text"] == "to all %d" % n)
        # the process's own descriptor table stays small
        fds = len(os.listdir("/proc/%d/fd" % server.proc.pid))
        assert fds < NOFILE, fds
    finally:
        for c in clients:
            c.close()

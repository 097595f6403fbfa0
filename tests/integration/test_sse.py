"""The Server-Sent Events fallback (docs/protocol.md "Server-Sent Events
fallback"): GET /sse streams the events a WebSocket gets, after a session
event, messages of the first room with id: lines; POST /send?session=KEY
carries the commands, answered 202 (the rest on the stream) or at once with
the chat's error (400, 429) or 401/403/404/411/413; sign-in refusals,
shutdown and an expiring token are close events."""

import json
import os
import re
import threading
import time

import pytest

from rawws import HTTPConn, RawWS, build_frame, OP_TEXT
from rcutil import (connect_ws, connect_seq, send_and_ack, make_jwt, metrics, poll_metrics,
                    wait_metric_at_least)
from sseutil import SSE, post, post_request

KEY_RE = re.compile(r"^\d+-\d+-\d+-[0-9a-f]{32}$")


def open_stream(server, query="room=lobby", **kw):
    s = SSE(server, query, **kw)
    assert s.status == 200, s.headers
    seq = s.connect_seq()
    return s, seq


def message_events(s, n, timeout=5.0):
    """The next n message events, raw (with their id lines)."""
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < n:
        ev = s.raw_event(max(0.01, deadline - time.monotonic()))
        if ev["data"]["type"] == "message":
            out.append(ev)
    return out


def test_stream_head_session_and_connect_sequence(server):
    s = SSE(server, "room=lobby")
    assert s.status == 200
    assert s.header("Content-Type") == "text/event-stream"
    assert s.header("Cache-Control") == "no-store"
    assert s.header("Content-Length") is None
    seq = s.connect_seq()
    assert seq[0]["type"] == "session" and seq[0]["transport"] == "sse"
    assert KEY_RE.match(seq[0]["session"]), seq[0]
    # the same sequence a WebSocket gets, in the same order
    assert [e["type"] for e in seq[1:]] == ["welcome", "presence", "join", "history"]
    assert seq[1]["room"] == "lobby"
    s.close()


def test_session_keys_differ_per_stream(server):
    keys = {open_stream(server)[0].key for _ in range(3)}
    assert len(keys) == 3


def test_post_is_acknowledged_on_the_stream_with_an_id_line(server):
    s, seq = open_stream(server)
    me = seq[1]["id"]
    r, body = post(server, s.key, {"type": "message", "text": "hello"})
    assert r.status == 202 and body == {"ok": True}
    assert r.header("Content-Type") == "application/json"
    ev = message_events(s, 1)[0]
    assert ev["data"]["text"] == "hello" and ev["data"]["from"] == me
    assert ev["id"] == str(ev["data"]["id"])
    # plain text is a message to the current room, as on WebSocket
    r, _ = post(server, s.key, "plain words")
    assert r.status == 202
    ev = message_events(s, 1)[0]
    assert ev["data"]["text"] == "plain words" and ev["id"] == str(ev["data"]["id"])


def test_websocket_and_sse_chat_both_ways(server):
    s, _ = open_stream(server)
    ws = connect_ws(server, "/?room=lobby")
    connect_seq(ws)
    s.until(lambda d: d["type"] == "join")  # the WebSocket's arrival
    mine = send_and_ack(ws, "from ws")
    ev = message_events(s, 1)[0]
    assert ev["data"] == mine
    r, _ = post(server, s.key, {"type": "message", "text": "from sse"})
    assert r.status == 202
    got = ws.recv_type("message")
    assert got["text"] == "from sse"
    assert message_events(s, 1)[0]["data"] == got
    ws.close()


def test_a_broadcast_is_encoded_once_per_edge_not_per_stream(server):
    """Encode once per transport: 12 streams get one message, written as
    an event at most once on each edge (the metrics count both)."""
    streams = [open_stream(server)[0] for _ in range(12)]
    ws = connect_ws(server, "/?room=lobby")
    connect_seq(ws)
    for s in streams:
        s.until(lambda d: d["type"] == "join" and d["count"] == 13)
    # every event queued so far has been read: the counters settle on that
    sent = sum(s.received for s in streams)
    before = poll_metrics(server, lambda m: m.get("ringcast_sse_events_total") == sent)
    assert before["ringcast_sse_events_total"] == sent, (before["ringcast_sse_events_total"], sent)
    mine = send_and_ack(ws, "to every stream")
    for s in streams:
        assert message_events(s, 1)[0]["data"] == mine
    events = before["ringcast_sse_events_total"] + 12
    after = poll_metrics(server, lambda m: m["ringcast_sse_events_total"] >= events)
    assert after["ringcast_sse_events_total"] == events, after
    edges = int(os.environ.get("RINGCAST_THREADS") or os.cpu_count())
    encoded = after["ringcast_sse_events_encoded_total"] - before["ringcast_sse_events_encoded_total"]
    assert 1 <= encoded <= edges, (encoded, edges)
    ws.close()
    for s in streams:
        s.close()


def test_a_second_room_joined_by_post_has_no_id_lines(server):
    s, _ = open_stream(server)
    r, _ = post(server, s.key, {"type": "join", "room": "dev"})
    assert r.status == 202
    # the join's presence and history go on the stream, not in the answer
    evs = s.until(lambda d: d["type"] == "history" and d["room"] == "dev")
    assert [e["data"]["type"] for e in evs][:1] == ["presence"]
    ws = connect_ws(server, "/?room=dev")
    connect_seq(ws)
    send_and_ack(ws, "in dev")
    ev = message_events(s, 1)[0]
    assert ev["data"]["room"] == "dev" and ev["data"]["text"] == "in dev"
    assert ev["id"] is None
    r, _ = post(server, s.key, {"type": "message", "room": "lobby", "text": "in lobby"})
    assert r.status == 202
    ev = message_events(s, 1)[0]
    assert ev["data"]["room"] == "lobby" and ev["id"] == str(ev["data"]["id"])
    ws.close()


def test_every_command_works(server):
    s, seq = open_stream(server)
    for cmd, answer in [({"type": "nick", "name": "Ann"}, "nick"),
                        ({"type": "rooms"}, "rooms"),
                        ({"type": "history", "room": "lobby"}, "history"),
                        ({"type": "resume", "room": "lobby", "since": 0}, "resumed"),
                        ({"type": "leave", "room": "lobby"}, "leave")]:
        r, body = post(server, s.key, cmd)
        assert r.status == 202, (cmd, body)
        s.until(lambda d, a=answer: d["type"] == a)


@pytest.mark.server_args("--rate-limit", "0")
def test_since_replays_what_was_missed(server):
    ws = connect_ws(server, "/?room=lobby")
    connect_seq(ws)
    ids = [send_and_ack(ws, "m%d" % i)["id"] for i in range(5)]
    s, seq = open_stream(server, "room=lobby&since=%d" % ids[1])
    replay = [e for e in seq if e["type"] == "message"]
    assert [m["id"] for m in replay] == ids[2:]
    assert seq[-1]["type"] == "resumed" and seq[-1]["since"] == ids[1]
    ws.close()


@pytest.mark.server_args("--rate-limit", "0")
@pytest.mark.timeout_s(60)
def test_last_event_id_resumes_without_gap_or_duplicate(server):
    """An EventSource reconnecting by itself sends Last-Event-ID (and its
    original URL, here with ?since=0, which the header overrides) while
    another client keeps sending."""
    ws = connect_ws(server, "/?room=lobby")
    connect_seq(ws)
    s, _ = open_stream(server)
    stop = threading.Event()
    sent = []

    def keep_sending():
        i = 0
        while not stop.is_set() and i < 400:
            sent.append(send_and_ack(ws, "n%d" % i)["id"])
            i += 1

    t = threading.Thread(target=keep_sending, daemon=True)
    t.start()
    first = message_events(s, 20)
    last = int(first[-1]["id"])
    s.close()  # the stream drops mid-traffic
    s2 = SSE(server, "room=lobby&since=0", headers=[("Last-Event-ID", str(last))])
    assert s2.status == 200
    seq = s2.connect_seq(timeout=10)
    assert seq[-1]["type"] == "resumed" and seq[-1]["since"] == last
    got = [m["id"] for m in seq if m["type"] == "message"]
    later = message_events(s2, 20, timeout=10)
    stop.set()
    t.join(10)
    got += [e["data"]["id"] for e in later]
    assert all(e["id"] == str(e["data"]["id"]) for e in later)
    assert got == list(range(last + 1, last + 1 + len(got))), got[:30]
    ws.close()


def test_a_malformed_last_event_id_is_refused(server):
    s = SSE(server, "room=lobby", headers=[("Last-Event-ID", "12x")])
    assert s.status == 400


def test_bad_parameters_are_refused_as_for_an_upgrade(server):
    assert SSE(server, "room=no%20spaces").status == 400
    assert SSE(server, "room=lobby&since=-1").status == 400


def test_a_refused_command_is_the_posts_400_not_a_stream_event(server):
    s, _ = open_stream(server)
    ws = connect_ws(server, "/?room=lobby")
    connect_seq(ws)
    s.until(lambda d: d["type"] == "join")  # the WebSocket's arrival
    for bad in ['{"type":"message"', {"type": "message", "text": ""}, {"type": "nick", "name": ""},
                {"type": "message", "room": "nowhere", "text": "x"}, {"type": "bogus"}]:
        r, body = post(server, s.key, bad)
        assert r.status == 400, (bad, r)
        # exactly the error event a WebSocket gets for the same command
        ws.send_text(bad if isinstance(bad, str) else json.dumps(bad))
        assert body == ws.recv_type("error"), bad
    # the errors did not also go on the stream: the next event there is
    # the acknowledgement of a message sent after them
    r, _ = post(server, s.key, {"type": "message", "text": "after"})
    assert r.status == 202
    ev = s.raw_event()
    assert ev["data"]["type"] == "message" and ev["data"]["text"] == "after", ev
    ws.close()


def test_cid_is_echoed_in_a_400_and_on_the_acknowledgement(server):
    s, _ = open_stream(server)
    r, body = post(server, s.key, {"type": "message", "text": "", "cid": "c-1"})
    assert r.status == 400 and body["code"] == "empty" and body["cid"] == "c-1"
    r, _ = post(server, s.key, {"type": "message", "text": "ok", "cid": "c-2"})
    assert r.status == 202
    ev = message_events(s, 1)[0]
    assert list(ev["data"])[-1] == "cid" and ev["data"]["cid"] == "c-2"


@pytest.mark.server_args("--max-message", "100")
def test_post_statuses(server):
    s, _ = open_stream(server)
    k = s.key
    # no such session: unknown, malformed, a slot that is not a stream
    for key in ["0-0-0-" + "0" * 32, "nonsense", "", k[:-1] + ("0" if k[-1] != "0" else "1"),
                "9-" + k.split("-", 1)[1]]:
        r, body = post(server, key, "hi")
        assert r.status == 404 and body["error"] == "no_session", (key, r)
    # no Content-Length: 411
    r, body = post(server, k, b"", length=False)
    assert r.status == 411 and body["error"] == "length_required"
    # over --max-message: 413 (and the connection closes: the body is not read)
    r, body = post(server, k, "x" * 101)
    assert r.status == 413 and body["error"] == "too_large"
    r, _ = post(server, k, "x" * 100)
    assert r.status == 202
    # another site's page: 403, as an upgrade's Origin rule
    r, body = post(server, k, "hi", headers=[("Origin", "http://evil.example")])
    assert r.status == 403 and body["error"] == "origin"
    r, _ = post(server, k, "hi", headers=[("Origin", "http://localhost")])  # Host: localhost
    assert r.status == 202
    # not UTF-8
    r, body = post(server, k, b"\xff\xfe")
    assert r.status == 400 and body["code"] == "bad_text"
    # GET /send: 405; Transfer-Encoding: 501 as for every request
    with HTTPConn(server.host, server.port) as c:
        c.send(b"GET /send?session=" + k.encode() + b" HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert c.response().status == 405
    with HTTPConn(server.host, server.port) as c:
        c.send(b"POST /send?session=" + k.encode() +
               b" HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n")
        assert c.response().status == 501
    # counted on the edge that answered: each edge publishes within a tick
    want = {"404": 5, "403": 1, "202": 2, "413": 1, "411": 1, "405": 1}
    m = poll_metrics(server, lambda m: all(m.get('ringcast_sse_posts_total{status="%s"}' % k) == v
                                           for k, v in want.items()))
    assert {k: m['ringcast_sse_posts_total{status="%s"}' % k] for k in want} == want


def test_keep_alive_and_pipelined_posts_are_answered_in_order(server):
    s, _ = open_stream(server)
    with HTTPConn(server.host, server.port) as c:
        c.send(b"".join(post_request(s.key, {"type": "message", "text": "p%d" % i}) for i in range(5)) +
               post_request("nonsense", "x"))
        statuses = [c.response().status for _ in range(6)]
        assert statuses == [202] * 5 + [404]
        r, _ = post(server, s.key, "again", conn=c)  # still open
        assert r.status == 202
    texts = [e["data"]["text"] for e in message_events(s, 6)]
    assert texts == ["p0", "p1", "p2", "p3", "p4", "again"]


def test_a_closed_streams_session_is_gone(server):
    s, _ = open_stream(server)
    r, _ = post(server, s.key, "before")
    assert r.status == 202
    s.close()
    deadline = time.monotonic() + 5
    while True:
        r, body = post(server, s.key, "after")
        if r.status == 404:
            break
        assert r.status == 202 and time.monotonic() < deadline
        time.sleep(0.05)
    assert body["error"] == "no_session"


@pytest.mark.server_args("--rate-limit", "1:3")
def test_over_the_flood_limit_is_429_and_nothing_is_sent(server):
    s, _ = open_stream(server)
    answers = [post(server, s.key, {"type": "message", "text": "f%d" % i, "cid": "f%d" % i})
               for i in range(4)]
    assert [r.status for r, _ in answers[:3]] == [202, 202, 202]
    r, body = answers[3]
    assert r.status == 429 and r.header("Retry-After") == "1"
    assert body["type"] == "error" and body["code"] == "rate_limited"
    # the three went out, the fourth did not: the next event after them is
    # the next message that is accepted
    assert [e["data"]["text"] for e in message_events(s, 3)] == ["f0", "f1", "f2"]
    time.sleep(1.1)  # as Retry-After asks: the bucket refills with time, not with an event
    r, _ = post(server, s.key, "later")
    assert r.status == 202
    assert message_events(s, 1)[0]["data"]["text"] == "later"


@pytest.mark.server_args("--rate-limit", "1:2")
def test_flooding_on_through_refusals_ends_the_stream(server):
    """More refusals in a row than the burst: closed with 1008, as a
    WebSocket is, and the POST that did it is told the session is gone."""
    s, _ = open_stream(server)
    statuses = []
    while not statuses or statuses[-1] != 404:
        assert len(statuses) < 10, statuses
        statuses.append(post(server, s.key, "x")[0].status)
    assert statuses[:2] == [202, 202] and set(statuses[2:-1]) == {429}
    c = s.until(lambda d: d["type"] == "close")[-1]
    assert c["event"] == "close" and c["data"]["code"] == 1008


@pytest.mark.server_args("--threads", "2")
def test_a_post_landing_on_another_edge_is_handed_over(server):
    s, seq = open_stream(server)
    n = 24  # each a new connection: the kernel spreads them over both edges
    for i in range(n):
        r, body = post(server, s.key, {"type": "message", "text": "e%d" % i})
        assert r.status == 202, body
    assert [e["data"]["text"] for e in message_events(s, n)] == ["e%d" % i for i in range(n)]
    m = poll_metrics(server, lambda m: m.get('ringcast_sse_posts_total{status="202"}') == n)
    assert m['ringcast_sse_posts_total{status="202"}'] == n
    # 2^-23 that all 24 landed on the stream's own edge
    assert m["ringcast_sse_handoffs_total"] >= 1


def test_streams_are_counted_in_metrics(server):
    s, _ = open_stream(server)
    m = poll_metrics(server, lambda m: m.get("ringcast_sse_streams") == 1)
    assert m["ringcast_sse_streams"] == 1 and m["ringcast_connections"] >= 1
    assert m["ringcast_sse_events_total"] >= 5
    s.close()
    m = poll_metrics(server, lambda m: m.get("ringcast_sse_streams") == 0)
    assert m["ringcast_sse_streams"] == 0


@pytest.mark.server_args("--ping-interval", "1")
def test_keep_alive_comments(server):
    s, _ = open_stream(server)
    ev = s.raw_event(timeout=3, comments=True)
    assert ev["comment"] and ev["raw"] == b":\n\n"


def test_shutdown_sends_close_1001_and_ends_the_stream(server):
    s, _ = open_stream(server)
    server.expect_exit = True
    server.terminate()
    ev = s.raw_event(timeout=5)
    assert ev["event"] == "close" and ev["data"]["code"] == 1001, ev
    assert s.eof_within(5) is not None
    assert server.proc.wait(5) == 0


@pytest.mark.server_args("--max-queue", "262144", "--send-timeout", "1", "--rate-limit", "0")
@pytest.mark.timeout_s(60)
def test_a_slow_stream_is_dropped_without_disturbing_others(server):
    slow = SSE(server, "room=lobby", rcvbuf=4096)
    assert slow.status == 200
    slow.connect_seq()
    fast, _ = open_stream(server)
    ws = connect_ws(server, "/?room=lobby")
    connect_seq(ws)
    big = "x" * 30000
    n = 0
    deadline = time.monotonic() + 30
    while metrics(server).get("ringcast_slow_consumer_closes_total", 0) < 1:
        assert time.monotonic() < deadline, "the slow stream was never dropped"
        for _ in range(10):
            send_and_ack(ws, big)
            n += 1
        # the reading stream keeps up
        assert len(message_events(fast, 10, timeout=10)) == 10
    send_and_ack(ws, "still here")
    ev = message_events(fast, 1)[0]
    assert ev["data"]["text"] == "still here"
    ws.close()


SECRET = "correct horse battery staple 0123456789"


def token(**claims):
    c = {"sub": "42", "name": "Alice", "exp": int(time.time()) + 3600}
    c.update(claims)
    return make_jwt(SECRET, c)


def close_event(s):
    ev = s.raw_event(timeout=5)
    assert ev["event"] == "close" and ev["data"]["type"] == "close", ev
    return ev["data"]


@pytest.mark.server_args("--jwt-secret", SECRET)
def test_refused_sign_ins_are_close_events(server):
    for query, code, reason in [("room=lobby", 4001, "token missing"),
                                ("token=" + token(exp=int(time.time()) - 3600), 4002, "token expired"),
                                ("token=" + make_jwt("y" * 40, {"sub": "42"}), 4003, "token invalid")]:
        s = SSE(server, query)
        assert s.status == 200
        c = close_event(s)
        assert c["code"] == code and c["reason"].startswith(reason), c
        assert s.eof_within(5) is not None
    s, seq = open_stream(server, "token=" + token())
    assert seq[1]["signed_in"] is True and seq[1]["id"] == "42"


@pytest.mark.server_args("--jwt-secret", SECRET, "--jwt-leeway", "0")
@pytest.mark.timeout_s(30)
def test_a_sign_in_running_out_closes_4002_and_posts_get_401(server):
    s, _ = open_stream(server, "token=" + token(exp=int(time.time()) + 2))
    r, _ = post(server, s.key, "while valid")
    assert r.status == 202
    c = None
    while c is None:
        ev = s.raw_event(timeout=5)
        if ev["event"] == "close":
            c = ev["data"]
    assert c["code"] == 4002 and c["reason"] == "token expired"
    r, body = post(server, s.key, "too late")  # the stream is still draining: we keep our end open
    assert r.status == 401 and body["error"] == "token_expired"


@pytest.mark.server_args("--jwt-secret", SECRET, "--jwt-leeway", "0")
@pytest.mark.timeout_s(30)
def test_refresh_by_post_moves_the_end_of_the_session(server):
    s, _ = open_stream(server, "token=" + token(exp=int(time.time()) + 2))
    r, body = post(server, s.key, {"type": "refresh", "token": token(sub="43")})
    assert r.status == 400 and body["code"] == "bad_token"  # another user's token
    r, _ = post(server, s.key, {"type": "refresh", "token": token()})
    assert r.status == 202
    s.until(lambda d: d["type"] == "refreshed")
    # past the first token's end (a time, not an event, to wait for) the
    # session goes on: no close event came, and a message still comes back
    time.sleep(3.5)
    r, _ = post(server, s.key, "still signed in")
    assert r.status == 202
    ev = s.raw_event()
    assert ev["event"] is None and ev["data"]["text"] == "still signed in", ev


@pytest.mark.cluster
@pytest.mark.timeout_s(60)
def test_in_a_cluster_a_post_to_another_node_is_404(cluster_factory):
    """The session lives on the node holding the stream (docs/cluster.md:
    the balancer keeps /sse and /send on one node by a cookie)."""
    c = cluster_factory(n=2)
    a, b = c[0], c[1]
    s, _ = open_stream(a, "room=across")
    r, body = post(b, s.key, "to the wrong node")
    assert r.status == 404 and body["error"] == "no_session"
    ws = connect_ws(b, "/?room=across")
    connect_seq(ws)
    r, _ = post(a, s.key, "to the right node")
    assert r.status == 202
    assert ws.recv_type("message", timeout=10)["text"] == "to the right node"
    assert message_events(s, 1)[0]["data"]["text"] == "to the right node"
    ws.close()


def test_a_guest_token_brings_the_same_you_back_on_a_stream(server):
    """?guest= on a stream, as on an upgrade: a rename made by POST is kept by
    the token the stream then gets, and a new stream with it is the same person."""
    s, seq = open_stream(server)
    w = seq[1]
    assert w["type"] == "welcome" and w["guest"] and "resumed" not in w, w
    r, _ = post(server, s.key, {"type": "nick", "name": "Streamer"})
    assert r.status == 202
    renamed = s.until(lambda d: d["type"] == "guest")[-1]["data"]["guest"]
    s.close()
    again, seq = open_stream(server, "room=lobby&guest=" + renamed)
    w2 = seq[1]
    assert (w2["id"], w2["name"], w2.get("resumed")) == (w["id"], "Streamer", True), w2
    r, _ = post(server, again.key, {"type": "message", "text": "still me"})
    assert r.status == 202
    m = message_events(again, 1)[0]["data"]
    assert (m["from"], m["name"], m["text"]) == (w["id"], "Streamer", "still me"), m
    again.close()

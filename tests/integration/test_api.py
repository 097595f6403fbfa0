"""The server API for an application's backend (docs/protocol.md "Server API",
README --api-key-file): POST /api/publish, POST /api/disconnect and GET
/api/presence with `Authorization: Bearer KEY`. Members are real WebSocket
clients; the API is called over raw HTTP the way a backend would (no Origin).

Runs against one edge and two (the suite's RINGCAST_THREADS); the cases that
must cross edges name --threads 2 and first check from /metrics that the
kernel put clients on both edges."""
import json

import pytest

from rawws import HTTPConn, simple_request
from rcutil import connect_seq, connect_ws, make_jwt, poll_metrics, send_and_ack

KEY = "backend-key-0123456789abcdef"
SECRET = "correct horse battery staple 0123456789"


@pytest.fixture
def key_file(tmp_path):
    p = tmp_path / "api.key"
    p.write_text(KEY + "\n")
    return str(p)


@pytest.fixture
def api_server(server_factory, key_file):
    return server_factory("--api-key-file", key_file, "--rate-limit", "0")


def call(server, method, path, body=None, key=KEY, headers=None, raw_body=None):
    """One API request on a fresh connection: (status, JSON body or text, response)."""
    extra = list(headers or [])
    if key is not None:
        extra.append(("Authorization", "Bearer " + key))
    data = raw_body if raw_body is not None else (
        json.dumps(body).encode() if body is not None else b"")
    if method == "POST" and not data:
        extra.append(("Content-Length", "0"))
    with HTTPConn(server.host, server.port) as c:
        c.send(simple_request(method, path, extra=extra, body=data))
        r = c.response()
    text = r.body.decode("utf-8", "replace")
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = text
    return r.status, parsed, r


def publish(server, room, text, **kw):
    body = {"room": room, "text": text}
    if "name" in kw:
        body["name"] = kw.pop("name")
    return call(server, "POST", "/api/publish", body, **kw)


def member(server, room="lobby", token=None):
    path = "/?room=" + room + ("&token=" + token if token else "")
    ws = connect_ws(server, path)
    return ws, connect_seq(ws)


def spread_over_edges(server, clients):
    """Every client counted in /metrics, and some on each of the two edges."""
    def counts(m):
        return [m.get('ringcast_edge_connections{edge="%d"}' % i, 0) for i in range(2)]
    c = counts(poll_metrics(server, lambda m: sum(counts(m)) >= clients + 1))
    assert all(n > 0 for n in c), ("the kernel put every client on one edge", c)


# ---------------------------------------------------------------- no key file


def test_without_key_file_the_api_is_404(server):
    assert publish(server, "lobby", "hi")[0] == 404
    assert call(server, "GET", "/api/presence?room=lobby")[0] == 404
    assert call(server, "POST", "/api/disconnect", {"user": "1"})[0] == 404


def test_key_file_too_short_or_missing_stops_start(server_factory, tmp_path):
    from rcutil import run_briefly
    short = tmp_path / "short.key"
    short.write_text("tooshort\n")
    p = run_briefly("--api-key-file", str(short))
    assert p.returncode != 0 and "at least 16 bytes" in p.stderr, p
    p = run_briefly("--api-key-file", str(tmp_path / "absent.key"))
    assert p.returncode != 0 and "api-key-file" in p.stderr, p


# ---------------------------------------------------------------- publish


def test_publish_reaches_every_member_in_the_rooms_order(api_server):
    a, _ = member(api_server, "news")
    b, _ = member(api_server, "news")
    other, _ = member(api_server, "elsewhere")
    first = send_and_ack(a, "from a member")
    status, body, r = publish(api_server, "news", "system notice", name="Deploy Bot")
    assert status == 200, (status, body)
    assert r.header("Content-Type").startswith("application/json")
    assert body == {"id": first["id"] + 1, "room": "news"}
    for ws in (a, b):
        m = ws.recv_type("message", 5, pred=lambda m: m["text"] == "system notice")
        assert m["id"] == first["id"] + 1 and m["room"] == "news"
        assert m["from"] == "api" and m["name"] == "Deploy Bot"
    # without a name: "API"; the next id
    status, body, _ = publish(api_server, "news", "second")
    assert status == 200 and body["id"] == first["id"] + 2
    m = b.recv_type("message", 5, pred=lambda m: m["text"] == "second")
    assert m["from"] == "api" and m["name"] == "API"
    # a member of another room got neither, though it hears its own room
    send_and_ack(other, "mine")
    publish(api_server, "elsewhere", "for elsewhere")
    m = other.recv_type("message", 5)
    assert m["text"] == "for elsewhere", m


def test_publish_to_a_room_with_nobody_in_it_is_kept(api_server):
    status, body, _ = publish(api_server, "empty-room", "left for later")
    assert status == 200 and body["id"] == 1
    ws, seq = member(api_server, "empty-room")
    texts = [(m["id"], m["text"], m["from"]) for m in seq["history"]["messages"]]
    assert (1, "left for later", "api") in texts


@pytest.mark.parametrize("threads", ["1", "2"])
def test_published_message_is_in_history_after_a_restart(server_factory, key_file, tmp_path, threads):
    workdir = str(tmp_path / "data")
    import os
    os.mkdir(workdir)
    db = os.path.join(workdir, "chat.db")
    first = server_factory("--api-key-file", key_file, "--db", db, "--threads", threads,
                           workdir=workdir)
    status, body, _ = publish(first, "kept", "survives restarts", name="Bot")
    assert status == 200, body
    problems = first.stop()
    assert not problems, problems
    second = server_factory("--api-key-file", key_file, "--db", db, "--threads", threads,
                            workdir=workdir)
    ws, seq = member(second, "kept")
    got = [m for m in seq["history"]["messages"] if m["text"] == "survives restarts"]
    assert got and got[0]["id"] == body["id"] and got[0]["from"] == "api" and got[0]["name"] == "Bot"


# ---------------------------------------------------------------- the key


def test_missing_or_wrong_key_is_401_and_nothing_is_delivered(api_server):
    ws, _ = member(api_server, "guarded")
    last = send_and_ack(ws, "before")["id"]
    wrong = [
        dict(key=None),
        dict(key=KEY[:-1]),
        dict(key=KEY + "x"),
        dict(key="x" * len(KEY)),
        dict(key=""),
        dict(key=None, headers=[("Authorization", "Basic " + KEY)]),
        dict(key=None, headers=[("X-Api-Key", KEY)]),
        dict(key=None, headers=[("Authorization", "Bearer " + KEY), ("Authorization", "Bearer " + KEY)]),
    ]
    for kw in wrong:
        status, body, r = publish(api_server, "guarded", "must not arrive", **kw)
        assert status == 401, (kw, status, body)
        assert body["error"] == "unauthorized", body
        assert r.header("WWW-Authenticate") == "Bearer"
    assert call(api_server, "GET", "/api/presence?room=guarded", key="nope")[0] == 401
    assert call(api_server, "POST", "/api/disconnect", {"user": "1"}, key=None)[0] == 401
    # positive signal: an authorised publish arrives, and it is the first
    # one (no refused message took an id or reached the room)
    status, body, _ = publish(api_server, "guarded", "authorised")
    assert status == 200 and body["id"] == last + 1
    m = ws.recv_type("message", 5)
    assert m["text"] == "authorised" and m["id"] == last + 1


def test_the_api_ignores_origin_but_not_the_key(api_server):
    evil = [("Origin", "http://evil.example")]
    status, body, _ = publish(api_server, "lobby", "from a backend", headers=evil)
    assert status == 200, body
    status, body, _ = publish(api_server, "lobby", "no key", key=None, headers=evil)
    assert status == 401
    status, body, _ = publish(api_server, "lobby", "no key", key=None,
                              headers=[("Origin", "http://localhost")])
    assert status == 401


# ---------------------------------------------------------------- bad requests


def test_bad_json_and_missing_fields_are_400_with_a_json_error(api_server):
    ws, _ = member(api_server, "strict")
    last = send_and_ack(ws, "before")["id"]
    cases = [
        (b"{not json", "bad_json"),
        (b"[1,2]", "bad_json"),
        (b'{"room":"strict","room":"x","text":"dup"}', "bad_json"),
        (b'{"text":"no room"}', "bad_request"),
        (b'{"room":"strict"}', "bad_request"),
        (b'{"room":"strict","text":5}', "bad_request"),
        (b'{"room":"strict","text":"x","name":7}', "bad_request"),
        (b'{"room":"no spaces","text":"x"}', "bad_room"),
        (b'{"room":"strict","text":""}', "empty"),
        (b'{"room":"strict","text":"bell\\u0007"}', "bad_text"),
        (b'{"room":"strict","text":"nul\\u0000"}', "bad_text"),
        (b'{"room":"strict","text":"x","name":"   "}', "bad_name"),
        (b'{"room":"strict","text":"x","name":"' + b"n" * 40 + b'"}', "bad_name"),
    ]
    for raw, code in cases:
        status, body, r = call(api_server, "POST", "/api/publish", raw_body=raw)
        assert status == 400, (raw, status, body)
        assert isinstance(body, dict) and body["error"] == code and body["message"], (raw, body)
        assert r.header("Content-Type").startswith("application/json")
    for raw in (b"{}", b'{"user":5}', b'{"user":""}', b'{"user":"1","reason":3}', b"nope"):
        status, body, _ = call(api_server, "POST", "/api/disconnect", raw_body=raw)
        assert status == 400 and body["error"] in ("bad_request", "bad_json"), (raw, body)
    for q in ("", "?room=", "?room=a%20b", "?other=1"):
        status, body, _ = call(api_server, "GET", "/api/presence" + q)
        assert status == 400 and body["error"] == "bad_room", (q, body)
    status, body, r = call(api_server, "GET", "/api/publish")
    assert status == 405 and r.header("Allow") == "POST", body
    status, body, r = call(api_server, "POST", "/api/presence?room=strict", raw_body=b"{}")
    assert status == 405 and r.header("Allow") == "GET", body
    assert call(api_server, "GET", "/api/nothing-here")[0] == 404
    # none of them reached the room: the next one that is good is the first
    status, body, _ = publish(api_server, "strict", "good")
    assert status == 200 and body["id"] == last + 1
    assert ws.recv_type("message", 5)["text"] == "good"


def test_post_without_length_is_411_and_chunked_is_501(api_server):
    auth = ("Authorization", "Bearer " + KEY)
    with HTTPConn(api_server.host, api_server.port) as c:
        c.send(simple_request("POST", "/api/publish", extra=[auth]))
        r = c.response()
        assert r.status == 411, r
        # kept alive: the next request on it is answered
        c.send(simple_request("POST", "/api/publish", extra=[auth],
                              body=b'{"room":"lobby","text":"after 411"}'))
        assert c.response().status == 200
    with HTTPConn(api_server.host, api_server.port) as c:
        c.send(simple_request("POST", "/api/publish", extra=[auth, ("Transfer-Encoding", "chunked")])
               + b"5\r\nhello\r\n0\r\n\r\n")
        assert c.response().status == 501
        assert c.closed_within(5)


def test_over_max_message_is_413(server_factory, key_file):
    s = server_factory("--api-key-file", key_file, "--max-message", "1024")
    ws, _ = member(s, "big")
    last = send_and_ack(ws, "before")["id"]
    status, body, _ = publish(s, "big", "x" * 1025)
    assert status == 413 and body["error"] == "too_large", body
    # 1024 bytes of text are fine, in two-byte characters too
    status, body, _ = publish(s, "big", "é" * 512)
    assert status == 200 and body["id"] == last + 1, body
    assert ws.recv_type("message", 5)["text"] == "é" * 512
    # a body larger than the API reads is refused unread, and the connection closes
    huge = json.dumps({"room": "big", "text": "y" * 8000}).encode()
    with HTTPConn(s.host, s.port) as c:
        c.send(simple_request("POST", "/api/publish", extra=[("Authorization", "Bearer " + KEY)],
                              body=huge))
        r = c.response()
        assert r.status == 413 and json.loads(r.body)["error"] == "too_large"
        assert c.closed_within(5)
    status, body, _ = publish(s, "big", "after")
    assert status == 200 and body["id"] == last + 2
    assert ws.recv_type("message", 5)["text"] == "after"


def test_a_body_in_pieces_and_pipelined_requests_answer_in_order(api_server):
    ws, _ = member(api_server, "pipe")
    auth = ("Authorization", "Bearer " + KEY)
    reqs = b"".join(simple_request("POST", "/api/publish", extra=[auth],
                                   body=json.dumps({"room": "pipe", "text": "p%d" % i}).encode())
                    for i in range(5))
    reqs += simple_request("GET", "/api/presence?room=pipe", extra=[auth])
    with HTTPConn(api_server.host, api_server.port) as c:
        # trickled: heads and bodies split at every few bytes
        for i in range(0, len(reqs), 7):
            c.send(reqs[i:i + 7])
        ids = []
        for i in range(5):
            r = c.response()
            assert r.status == 200, r
            ids.append(json.loads(r.body)["id"])
        assert ids == list(range(ids[0], ids[0] + 5))
        r = c.response()
        assert r.status == 200 and json.loads(r.body)["count"] == 1
    got = [ws.recv_type("message", 5)["text"] for _ in range(5)]
    assert got == ["p%d" % i for i in range(5)]


# ---------------------------------------------------------------- disconnect


def signed(server, sub, name, room="lobby"):
    return member(server, room, make_jwt(SECRET, {"sub": sub, "name": name, "exp": 4102444800}))


def test_disconnect_closes_every_connection_of_the_user_with_4000(server_factory, key_file):
    s = server_factory("--api-key-file", key_file, "--jwt-secret", SECRET, "--threads", "2",
                       "--rate-limit", "0")
    # several connections of user 42, in different rooms and over both edges
    targets = [signed(s, "42", "Alice", room)[0] for room in ("lobby", "lobby", "dev", "ops")]
    bystanders = [signed(s, "7", "Bob")[0] for _ in range(6)]
    spread_over_edges(s, len(targets) + len(bystanders))
    status, body, _ = call(s, "POST", "/api/disconnect", {"user": "42", "reason": "banned: spam"})
    assert status == 200 and body == {"ok": True}, body
    for ws in targets:
        f = ws.expect_close(4000)
        assert f.close_reason == "banned: spam", f
    # the others stay: they still get what is published
    status, body, _ = publish(s, "lobby", "still here")
    assert status == 200
    for ws in bystanders:
        assert ws.recv_type("message", 5, pred=lambda m: m["text"] == "still here")


def test_disconnect_without_a_reason_and_of_nobody(server_factory, key_file):
    s = server_factory("--api-key-file", key_file, "--jwt-secret", SECRET)
    ws, _ = signed(s, "u-1", "Carol")
    long_reason = "é" * 100  # 200 bytes: cut to at most 123, on a character boundary
    assert call(s, "POST", "/api/disconnect", {"user": "nobody"})[0:2] == (200, {"ok": True})
    assert ws.is_open()
    assert call(s, "POST", "/api/disconnect", {"user": "u-1", "reason": long_reason})[0] == 200
    f = ws.expect_close(4000)
    assert f.close_reason == "é" * 61, f.close_reason


# ---------------------------------------------------------------- presence


def test_presence_lists_the_rooms_members_across_edges(server_factory, key_file):
    s = server_factory("--api-key-file", key_file, "--threads", "2", "--rate-limit", "0")
    clients = [member(s, "gather") for _ in range(10)]
    others = [member(s, "elsewhere") for _ in range(2)]
    spread_over_edges(s, len(clients) + len(others))
    status, body, _ = call(s, "GET", "/api/presence?room=gather")
    assert status == 200, body
    assert body["type"] == "presence" and body["room"] == "gather" and body["count"] == 10
    want = sorted(seq["welcome"]["id"] for _, seq in clients)
    assert sorted(u["id"] for u in body["users"]) == want
    assert all(u["name"].startswith("User ") for u in body["users"])
    # a member who leaves is gone from the list
    clients[0][0].close()
    def gone():
        st, b, _ = call(s, "GET", "/api/presence?room=gather")
        return b if b["count"] == 9 else None
    import time
    deadline = time.monotonic() + 5
    b = gone()
    while b is None and time.monotonic() < deadline:
        time.sleep(0.05)
        b = gone()
    assert b is not None and clients[0][1]["welcome"]["id"] not in [u["id"] for u in b["users"]]
    status, body, _ = call(s, "GET", "/api/presence?room=nobody-here")
    assert status == 200 and body["count"] == 0 and body["users"] == []


def test_presence_shows_signed_in_names(server_factory, key_file):
    s = server_factory("--api-key-file", key_file, "--jwt-secret", SECRET)
    kept = [signed(s, "42", "Alice", "team"), signed(s, "43", "Dan", "team")]  # open while asked
    status, body, _ = call(s, "GET", "/api/presence?room=team")
    assert status == 200
    assert sorted((u["id"], u["name"]) for u in body["users"]) == [("42", "Alice"), ("43", "Dan")]
    assert len(kept) == 2


# ---------------------------------------------------------------- cluster mode


@pytest.mark.cluster
@pytest.mark.timeout_s(60)
def test_cluster_publish_reaches_every_node_and_presence_lists_all(cluster_factory, key_file):
    c = cluster_factory(n=2, extra=("--api-key-file", key_file), threads=2)
    on0 = [member(c[0], "cl") for _ in range(2)]
    on1 = [member(c[1], "cl") for _ in range(2)]
    first = send_and_ack(on1[0][0], "from node 1")
    status, body, _ = publish(c[0], "cl", "to every node", name="Bot")
    assert status == 200 and body["id"] == first["id"] + 1, body
    for ws, _ in on0 + on1:
        m = ws.recv_type("message", 5, pred=lambda m: m["text"] == "to every node")
        assert m["id"] == body["id"] and m["from"] == "api" and m["name"] == "Bot"
    # presence from Redis: every node's members, asked of either node
    want = sorted(seq["welcome"]["id"] for _, seq in on0 + on1)
    for node in c:
        status, p, _ = call(node, "GET", "/api/presence?room=cl")
        assert status == 200 and p["count"] == 4, p
        assert sorted(u["id"] for u in p["users"]) == want
    # a room nobody on the publishing node is in: answered all the same
    status, body, _ = publish(c[0], "only-on-1", "across")
    assert status == 200 and body["id"] == 1, body

"""Chat behaviour seen by independent `websockets` clients: connect sequence,
broadcast including the sender, ordering, JSON escaping, errors, presence,
rooms."""

import asyncio
import json
import time

import pytest

from rawws import RawWS
from wsutil import run, connect, join, recv_json, recv_type, messages, barrier, close_all


# ---------------------------------------------------------------- connect sequence


async def connect_sequence(ws):
    """welcome, presence, own join (history events, if any, are allowed in between)."""
    seq = []
    while True:
        m = await recv_json(ws)
        if m.get("type") == "history":
            continue
        seq.append(m)
        if len(seq) == 3:
            return seq


def test_welcome_presence_join_sequence(server):
    async def main():
        clients, ids = [], []
        for i in range(3):
            ws = await connect(server)
            welcome, presence, join_ev = await connect_sequence(ws)
            assert welcome["type"] == "welcome", welcome
            assert presence["type"] == "presence", presence
            assert join_ev["type"] == "join", join_ev
            wid = welcome["id"]
            assert isinstance(wid, str) and wid, welcome
            assert welcome["name"] == "User %s" % wid, welcome
            assert welcome["room"] == "lobby", welcome
            assert presence["room"] == "lobby"
            assert presence["count"] == i + 1, presence
            users = {u["id"]: u["name"] for u in presence["users"]}
            assert len(presence["users"]) == i + 1, presence
            assert users.get(wid) == welcome["name"], presence
            for old_id in ids:
                assert users.get(old_id) == "User %s" % old_id, presence
            assert join_ev["room"] == "lobby"
            assert join_ev["user"] == {"id": wid, "name": welcome["name"]}, join_ev
            assert join_ev["count"] == i + 1, join_ev
            # every earlier client sees the new member join with the new count
            for old in clients:
                j = await recv_type(old, "join")
                assert j["user"]["id"] == wid and j["count"] == i + 1, j
            ids.append(wid)
            clients.append(ws)
        assert len(set(ids)) == 3, ids
        await close_all(*clients)
    run(main())


def test_ids_unique_across_reconnects(server):
    async def main():
        seen = set()
        for _ in range(10):
            ws, w = await join(server)
            assert w["id"] not in seen
            seen.add(w["id"])
            await ws.close()
    run(main())


# ---------------------------------------------------------------- broadcast


def test_broadcast_to_three_including_sender(server):
    async def main():
        (a, wa), (b, _), (c, _) = [await join(server) for _ in range(3)]
        before = time.time() * 1000
        await a.send("hello everyone")
        got = [await recv_type(x, "message") for x in (a, b, c)]
        after = time.time() * 1000
        assert got[0] == got[1] == got[2], got
        m = got[0]
        assert m["text"] == "hello everyone"
        assert m["from"] == wa["id"]
        assert m["name"] == wa["name"]
        assert m["room"] == "lobby"
        assert isinstance(m["id"], int)
        assert isinstance(m["ts"], int), m
        assert before - 3000 <= m["ts"] <= after + 3000, (before, m["ts"], after)
        await close_all(a, b, c)
    run(main())


def test_sender_copy_is_ack_and_ids_start_at_1(server):
    async def main():
        a, wa = await join(server)
        await a.send(json.dumps({"type": "message", "text": "first"}))
        m1 = await recv_type(a, "message")
        await a.send("second")
        m2 = await recv_type(a, "message")
        assert (m1["from"], m1["text"], m1["id"]) == (wa["id"], "first", 1), m1
        assert (m2["from"], m2["text"], m2["id"]) == (wa["id"], "second", 2), m2
        await a.close()
    run(main())


@pytest.mark.parametrize("sent,text", [
    (json.dumps({"type": "message", "text": "json hi"}), "json hi"),
    ("plain hi", "plain hi"),
    ("[1, 2, 3]", "[1, 2, 3]"),
    ('"just a string"', '"just a string"'),
    ("42", "42"),
    ("null", "null"),
    ("  spaced  ", "  spaced  "),
    ("}{", "}{"),
    (" \t\n" + json.dumps({"type": "message", "text": "ws-prefixed json"}), "ws-prefixed json"),
], ids=["json", "plain", "array", "string", "number", "null", "spaces", "brace-close-first",
        "whitespace-then-json"])
def test_json_and_plain_text_messages(server, sent, text):
    async def main():
        a, _ = await join(server)
        b, _ = await join(server)
        await a.send(sent)
        assert (await recv_type(b, "message"))["text"] == text
        assert (await recv_type(a, "message"))["text"] == text
        await close_all(a, b)
    run(main())


ESCAPE_TEXTS = [
    'he said "hi"',
    "back\\slash \\\\ \\u0041 \\n",
    "line1\nline2\r\nline3\ttab",
    "del \u007f and c1 \u0085 pass",
    "seps \u2028 and \u2029 here",
    "emoji 😀👍🏽 👨‍👩‍👧 flags 🇫🇷",
    "<img src=x onerror=alert(1)>",
    "</script><script>alert(1)</script>",
    "ünïcödé ✓ 中文 العربية",
    "{\"type\":\"message\"}",
    "\ufeffBOM",
]


@pytest.mark.parametrize("text", ESCAPE_TEXTS, ids=range(len(ESCAPE_TEXTS)))
def test_json_escaping_round_trip(server, text):
    async def main():
        a, _ = await join(server)
        b, _ = await join(server)
        sends = [json.dumps({"type": "message", "text": text}),
                 json.dumps({"type": "message", "text": text}, ensure_ascii=False)]
        if not text.lstrip(" \t\r\n").startswith("{"):
            sends.append(text)
        for s in sends:
            await a.send(s)
            raw = await asyncio.wait_for(b.recv(), 5)
            while json.loads(raw).get("type") != "message":
                raw = await asyncio.wait_for(b.recv(), 5)
            m = json.loads(raw)  # strict: raw control characters would fail here
            assert m["text"] == text, (s, raw)
            for ch in "\u0000\u0001\u001f\n\r\t":
                assert ch not in raw, "unescaped control character %r in %r" % (ch, raw)
        await close_all(a, b)
    run(main())


@pytest.mark.parametrize("text", ["ctl \u0001\u0002\u001f end", "nul \u0000 inside", "\u0001" * 10000,
                                  "esc \u001b[2J"], ids=["c0", "nul", "many", "esc"])
def test_control_characters_are_bad_text(server, text):
    # JSON escapes a control character as six bytes: refused, so one message
    # costs the room at most about twice its size. Nothing reaches b.
    async def main():
        a, _ = await join(server)
        b, _ = await join(server)
        await a.send(text)
        err = await recv_type(a, "error")
        assert err["code"] == "bad_text", err
        await a.send("after")  # the positive signal: this one does arrive
        skipped = []
        m = await recv_type(b, "message", skipped=skipped)
        assert m["text"] == "after" and not [e for e in skipped if e.get("type") == "message"]
        await close_all(a, b)
    run(main())


def test_big_output_from_escaped_quotes(server):
    # 10000 bytes in, 20000 out (each '"' escaped): the worst a text can
    # grow, and the server's own frames are not bound by --max-message.
    async def main():
        a, _ = await join(server)
        text = '"' * 10000
        await a.send(text)
        m = await recv_type(a, "message")
        assert m["text"] == text
        await a.close()
    run(main())


@pytest.mark.server_args("--rate-limit", "0")  # flood control off: these send bursts
def test_1000_messages_in_order_none_missing(server):
    async def main():
        a, wa = await join(server)
        b, _ = await join(server)
        for i in range(1000):
            await a.send("n=%d" % i)
        got = await messages(b, 1000, timeout=20)
        assert [m["text"] for m in got] == ["n=%d" % i for i in range(1000)]
        ids = [m["id"] for m in got]
        assert ids == list(range(ids[0], ids[0] + 1000)), "ids not consecutive"
        assert all(m["from"] == wa["id"] for m in got)
        own = await messages(a, 1000, timeout=20)
        assert [m["id"] for m in own] == ids
        await close_all(a, b)
    run(main(), timeout=40)


@pytest.mark.server_args("--rate-limit", "0")  # flood control off: these send bursts
def test_two_senders_same_total_order(server):
    async def main():
        a, wa = await join(server)
        b, wb = await join(server)
        c, _ = await join(server)

        async def send_all(ws, tag):
            for i in range(500):
                await ws.send("%s-%d" % (tag, i))
                if i % 10 == 0:
                    await asyncio.sleep(0)

        await asyncio.gather(send_all(a, "a"), send_all(b, "b"))
        seqs = await asyncio.gather(*(messages(x, 1000, timeout=20) for x in (a, b, c)))
        keys = [[(m["id"], m["from"], m["text"]) for m in s] for s in seqs]
        assert keys[0] == keys[1] == keys[2], "receivers disagree on the order"
        ids = [k[0] for k in keys[0]]
        assert ids == list(range(ids[0], ids[0] + 1000))
        for w, tag in ((wa, "a"), (wb, "b")):
            mine = [t for _, f, t in keys[0] if f == w["id"]]
            assert mine == ["%s-%d" % (tag, i) for i in range(500)]
        await close_all(a, b, c)
    run(main(), timeout=40)


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("sent,code", [
    ("{bad", "bad_json"),
    ("  {bad", "bad_json"),
    ('{"type":"message","text":"x"', "bad_json"),
    ('{"type":"message","text":"x"} trailing', "bad_json"),
    ('{"type":"nope"}', "unknown_type"),
    ('{"type":"message","text":5}', "bad_message"),
    ('{"type":"message","text":null}', "bad_message"),
    ('{"type":"message"}', "bad_message"),
    ('{"text":"no type"}', "bad_message"),
    ('{"type":5,"text":"x"}', "bad_message"),
    ('{"type":"message","text":""}', "empty"),
    ('{"type":"message","text":"a","text":"b"}', "bad_json"),
    ('{"type":"message","text":"hi","room":"elsewhere"}', "not_in_room"),
    ("", "empty"),
], ids=["bad_json", "ws-bad_json", "unterminated", "trailing", "unknown_type", "text-number",
        "text-null", "no-text", "no-type", "type-number", "empty-json", "duplicate-keys",
        "not-in-room", "empty-plain"])
def test_errors_keep_connection_usable(server, sent, code):
    async def main():
        a, _ = await join(server)
        b, _ = await join(server)
        await a.send(sent)
        err = await recv_json(a)
        while err.get("type") != "error":
            assert err.get("type") != "message", "bad input was broadcast: %r" % err
            err = await recv_json(a)
        assert err["code"] == code, err
        assert isinstance(err.get("message"), str) and err["message"], err
        # still usable
        await a.send("still works")
        assert (await recv_type(a, "message"))["text"] == "still works"
        # the other client saw no error and no message from the bad input
        seen = await barrier(b)
        assert [m for m in seen if m.get("type") in ("error",)] == []
        assert [m["text"] for m in seen if m.get("type") == "message"] == ["still works"]
        await close_all(a, b)
    run(main())


def test_message_naming_own_room_accepted(server):
    async def main():
        a, _ = await join(server, "/?room=dev")
        await a.send(json.dumps({"type": "message", "text": "explicit", "room": "dev"}))
        m = await recv_type(a, "message")
        assert m["text"] == "explicit" and m["room"] == "dev"
        await a.close()
    run(main())


# ---------------------------------------------------------------- presence and rooms


def test_join_and_leave_events_with_counts(server):
    async def main():
        a, wa = await join(server)
        b, wb = await join(server)
        j = await recv_type(a, "join")
        assert j["user"] == {"id": wb["id"], "name": wb["name"]} and j["count"] == 2, j
        c, wc = await join(server)
        assert (await recv_type(a, "join"))["count"] == 3
        assert (await recv_type(b, "join"))["user"]["id"] == wc["id"]
        await b.close()
        for x in (a, c):
            lv = await recv_type(x, "leave")
            assert lv["user"] == {"id": wb["id"], "name": wb["name"]}, lv
            assert lv["count"] == 2, lv
            assert lv["room"] == "lobby"
        await c.close()
        lv = await recv_type(a, "leave")
        assert lv["user"]["id"] == wc["id"] and lv["count"] == 1, lv
        await a.close()
    run(main())


def test_room_isolation(server):
    async def main():
        d1, wd = await join(server, "/?room=dev")
        assert wd["room"] == "dev"
        d2, _ = await join(server, "/ws?room=dev")
        lob, wl = await join(server)
        assert wl["room"] == "lobby"
        await d1.send("secret dev talk")
        m = await recv_type(d2, "message")
        assert m["text"] == "secret dev talk" and m["room"] == "dev"
        assert m["id"] == 1
        await recv_type(d1, "message")  # the server has handled it
        seen = await barrier(lob)
        assert not any(x.get("type") == "message" for x in seen), seen
        assert not any(x.get("room") == "dev" for x in seen), seen
        # per-room ids: the lobby's barrier message was the lobby's first
        await lob.send("lobby 2")
        assert (await recv_type(lob, "message"))["id"] == 2
        # and dev did not see the lobby's messages
        seen = await barrier(d2)
        assert not any(x.get("room") == "lobby" for x in seen), seen
        await close_all(d1, d2, lob)
    run(main())


def test_room_presence_counts_are_per_room(server):
    async def main():
        a, _ = await join(server)
        b, _ = await join(server)
        ws = await connect(server, "/?room=dev")
        w = await recv_type(ws, "welcome")
        p = await recv_type(ws, "presence")
        assert p["room"] == "dev" and p["count"] == 1, p
        assert [u["id"] for u in p["users"]] == [w["id"]]
        await close_all(a, b, ws)
    run(main())


# ---------------------------------------------------------------- JSON input edge cases


def next_reply_payload(ws):
    """Raw payload of the next `message` or `error` event (others skipped)."""
    while True:
        op, payload = ws.recv_message()
        if b'"type":"history"' in payload or b'"type":"join"' in payload:
            continue
        return payload


@pytest.mark.parametrize("raw,text", [
    ('{"type":"message","text":"\\ud83d\\ude00"}', "😀"),
    ('{"type":"message","text":"a\\/b\\u00e9z"}', "a/b\u00e9z"),
    ('{"type":"message","text":"\\"\\\\\\n\\r\\t"}', "\"\\\n\r\t"),
    ('{ "text" : "spaced keys" , "type" : "message" }', "spaced keys"),
    ('{"type":"message","text":"x","extra":{"a":[1,2.5e3,{"b":null}],"t":true}}', "x"),
], ids=["surrogate-pair", "escapes", "quote-backslash", "spaced-reordered", "extra-fields"])
def test_json_input_decoding(server, raw, text):
    with RawWS.connect(server.host, server.port) as ws:
        ws.welcome()
        ws.send_text(raw)
        payload = next_reply_payload(ws)
        m = json.loads(payload.decode("utf-8"))  # must be valid UTF-8 and JSON
        assert m.get("type") == "message", m
        assert m["text"] == text


@pytest.mark.parametrize("raw", [
    '{"type":"message","text":"\\ud800"}',
    '{"type":"message","text":"\\udc00x"}',
    '{"type":"message","text":"\\ud83dx"}',
], ids=["lone-high", "lone-low", "high-then-char"])
def test_lone_surrogate_escape_never_produces_invalid_utf8(server, raw):
    # Rejected, replaced (U+FFFD) or re-escaped as \\uXXXX: never forwarded
    # as raw CESU-8 bytes, which every client would have to close with 1007.
    with RawWS.connect(server.host, server.port) as ws:
        ws.welcome()
        ws.send_text(raw)
        payload = next_reply_payload(ws)
        try:
            m = json.loads(payload.decode("utf-8"))
        except UnicodeDecodeError:
            pytest.fail("server sent invalid UTF-8: %r" % payload)
        if m["type"] != "message":
            assert m["type"] == "error" and m["code"] in ("bad_json", "bad_message"), m
        assert ws.is_open(2)


@pytest.mark.parametrize("raw", [
    '{"type":"message","text":"a\x01b"}',
    '{"type":"message","text":"a\nb"}',
    '{"type":"message","text":"\\x41"}',
    '{"type":"message","text":"\\u12"}',
    "{'type':'message','text':'single'}",
    '{"type":"message","text":"x",}',
    '{"type":"message" "text":"x"}',
    '{"type":"message","text":"x"}}',
    '{"type":"message","text":"x","n":01}',
    '{"type":"message","text":"x","n":NaN}',
], ids=["raw-ctl", "raw-newline", "bad-escape", "short-u", "single-quotes", "trailing-comma",
        "missing-comma", "extra-brace", "leading-zero", "nan"])
def test_invalid_json_is_bad_json(server, raw):
    async def main():
        a, _ = await join(server)
        await a.send(raw)
        err = await recv_type(a, "error", skipped=[])
        assert err["code"] == "bad_json", (raw, err)
        await a.send("usable")
        assert (await recv_type(a, "message"))["text"] == "usable"
        await a.close()
    run(main())


@pytest.mark.parametrize("depth", [1000, 30000])
def test_deeply_nested_json_does_not_crash(server, depth):
    body = '{"type":"message","text":"deep","x":' + "[" * depth + "]" * depth + "}"
    with RawWS.connect(server.host, server.port) as ws:
        ws.welcome()
        ws.send_text(body)
        m = ws.recv_type(("message", "error"))
        assert m["type"] in ("message", "error"), m
        assert ws.is_open(2)
    assert server.alive()


def test_deeply_nested_unclosed_json_does_not_crash(server):
    with RawWS.connect(server.host, server.port) as ws:
        ws.welcome()
        ws.send_text("{" + '"a":{' * 10000)
        m = ws.recv_type(("message", "error"))
        assert m["type"] == "error" and m["code"] == "bad_json", m
        assert ws.is_open(2)


@pytest.mark.timeout_s(60)
@pytest.mark.server_args("--rate-limit", "0")  # flood control off: these send bursts
def test_twenty_senders_one_total_order(server):
    async def main():
        clients = [await join(server) for _ in range(20)]
        wss = [c[0] for c in clients]

        async def send_all(k, ws):
            for i in range(50):
                await ws.send("c%02d-%02d" % (k, i))
                if i % 5 == 0:
                    await asyncio.sleep(0)

        await asyncio.gather(*(send_all(k, ws) for k, ws in enumerate(wss)))
        seqs = await asyncio.gather(*(messages(ws, 1000, timeout=30) for ws in wss))
        keys = [[(m["id"], m["text"]) for m in s] for s in seqs]
        for k in range(1, 20):
            assert keys[k] == keys[0], "client %d disagrees on the order" % k
        ids = [i for i, _ in keys[0]]
        assert ids == list(range(ids[0], ids[0] + 1000))
        for k in range(20):
            mine = [t for _, t in keys[0] if t.startswith("c%02d-" % k)]
            assert mine == ["c%02d-%02d" % (k, i) for i in range(50)]
        await close_all(*wss)
    run(main(), timeout=50)


# ---------------------------------------------------------------- acknowledgements


@pytest.mark.parametrize("persist", [False, True], ids=["memory", "db"])
def test_message_cid_comes_back_in_the_senders_copy_alone(server_factory, tmp_path, persist):
    """The sender's copy of its message (its acknowledgement) carries the
    cid it chose, after the commit when persisting and through the
    sequencer with several edges; others never see it; an error carries it too."""
    server = server_factory(*(["--db", str(tmp_path / "chat.db")] if persist else []))

    async def main():
        a, _ = await join(server)
        b, _ = await join(server)
        for i in range(20):
            await a.send(json.dumps({"type": "message", "text": "m%d" % i, "cid": "c%d" % i}))
        own = await messages(a, 20)
        other = await messages(b, 20)
        assert [m["cid"] for m in own] == ["c%d" % i for i in range(20)]
        assert [m["id"] for m in own] == [m["id"] for m in other]
        assert all("cid" not in m for m in other), other
        await a.send(json.dumps({"type": "message", "text": "", "cid": "bad"}))
        err = await recv_type(a, "error")
        assert err["code"] == "empty" and err["cid"] == "bad", err
        await close_all(a, b)

    run(main())

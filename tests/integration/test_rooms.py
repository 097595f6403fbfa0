"""Rooms (docs/protocol.md "Rooms", "Big rooms", the join/leave/rooms commands):
isolation, several rooms per connection, the command errors, presence
snapshots with exact counts, join/leave events with counts, the >100-member
rule, and `?room=` in the upgrade URL."""

import time

import pytest

from rcutil import (connect_ws, connect_seq, join_seq, raw_barrier, recv_error, send_and_ack,
                    upgrade)
from wsutil import run, join, recv_type, barrier, close_all


def user_of(welcome):
    return {"id": welcome["id"], "name": welcome["name"]}


# ---------------------------------------------------------------- isolation


def test_message_in_dev_never_reaches_lobby_only_member(server):
    with connect_ws(server) as lobby_only, connect_ws(server, "/?room=dev") as dev:
        assert connect_seq(lobby_only)["welcome"]["room"] == "lobby"
        assert connect_seq(dev)["welcome"]["room"] == "dev"
        for i in range(5):
            m = send_and_ack(dev, "dev secret %d" % i)
            assert m["type"] == "message" and m["room"] == "dev", m
        # a JSON message naming the room explicitly, too
        m = send_and_ack(dev, "dev explicit", room="dev")
        assert m["room"] == "dev", m
        seen = raw_barrier(lobby_only)
        leaked = [e for e in seen if e.get("room") == "dev" or "dev" in str(e.get("text", ""))]
        assert not leaked, "lobby-only member received dev traffic: %r" % leaked


def test_library_clients_isolated_both_ways(server):
    async def main():
        d1, _ = await join(server, "/?room=dev")
        d2, _ = await join(server, "/ws?room=dev")
        lob, _ = await join(server)
        await d1.send("for dev only")
        m = await recv_type(d2, "message")
        assert (m["room"], m["text"]) == ("dev", "for dev only"), m
        await lob.send("for lobby only")
        seen_lobby = await barrier(lob)
        assert [e["text"] for e in seen_lobby if e.get("type") == "message"] == ["for lobby only"], \
            seen_lobby
        seen_dev = await barrier(d2)
        assert not [e for e in seen_dev if e.get("room") == "lobby"], seen_dev
        await close_all(d1, d2, lob)
    run(main())


def test_connection_in_two_rooms_gets_both(server):
    with connect_ws(server) as both, connect_ws(server) as lob, \
            connect_ws(server, "/?room=dev") as dev:
        connect_seq(both)
        connect_seq(lob)
        connect_seq(dev)
        join_seq(both, "dev")
        sent = []
        for i in range(3):
            sent.append(send_and_ack(lob, "L%d" % i))
            sent.append(send_and_ack(dev, "D%d" % i))
        got = []
        while len(got) < 6:
            m = both.recv_type("message", 5)
            got.append(m)
        assert [(m["room"], m["text"]) for m in got] == [(m["room"], m["text"]) for m in sent], got
        assert [m["room"] for m in got] == ["lobby", "dev"] * 3
        assert [m["id"] for m in got if m["room"] == "lobby"] == [1, 2, 3]
        assert [m["id"] for m in got if m["room"] == "dev"] == [1, 2, 3]
        # it can post to either room, and each goes only to that room's members
        send_and_ack(both, "to lobby", room="lobby")
        send_and_ack(both, "to dev", room="dev")
        assert lob.recv_type("message", pred=lambda m: m["text"].startswith("to "))["text"] == "to lobby"
        assert dev.recv_type("message", pred=lambda m: m["text"].startswith("to "))["text"] == "to dev"
        assert not [e for e in raw_barrier(lob) if e.get("type") == "message"]
        assert not [e for e in raw_barrier(dev) if e.get("type") == "message"]


# ---------------------------------------------------------------- join / leave / rooms commands


def test_join_command_sequence_and_events_to_others(server):
    with connect_ws(server, "/?room=dev") as a, connect_ws(server, "/?room=dev") as b, \
            connect_ws(server) as c:
        wa = connect_seq(a)["welcome"]
        wb = connect_seq(b)["welcome"]
        wc = connect_seq(c)["welcome"]
        a.recv_type("join", pred=lambda m: m["user"]["id"] == wb["id"])
        seq = join_seq(c, "dev")
        types = [e["type"] for e in seq["events"] if e.get("room") == "dev"]
        assert types == ["presence", "join", "history"], seq["events"]
        p = seq["presence"]
        assert p["count"] == 3, p
        assert sorted(p["users"], key=lambda u: u["id"]) == \
            sorted([user_of(wa), user_of(wb), user_of(wc)], key=lambda u: u["id"]), p
        assert seq["join"]["user"] == user_of(wc) and seq["join"]["count"] == 3, seq["join"]
        assert seq["history"]["messages"] == [] and seq["history"]["more"] is False
        for x in (a, b):
            j = x.recv_type("join", pred=lambda m: m["user"]["id"] == wc["id"])
            assert j == {"type": "join", "room": "dev", "user": user_of(wc), "count": 3}, j
        # the joined room became the current room: plain text goes to dev
        m = send_and_ack(c, "now in dev")
        assert m["room"] == "dev", m
        assert a.recv_type("message")["text"] == "now in dev"


def test_leave_command_events_and_effects(server):
    with connect_ws(server, "/?room=dev") as a, connect_ws(server) as c:
        wa = connect_seq(a)["welcome"]
        wc = connect_seq(c)["welcome"]
        join_seq(c, "dev")
        a.recv_type("join", pred=lambda m: m["user"]["id"] == wc["id"])
        c.send_json({"type": "leave", "room": "dev"})
        own = c.recv_type("leave")
        assert own == {"type": "leave", "room": "dev", "user": user_of(wc), "count": 1}, own
        lv = a.recv_type("leave")
        assert lv == {"type": "leave", "room": "dev", "user": user_of(wc), "count": 1}, lv
        # no longer a member: dev traffic stops, posting to dev is refused
        send_and_ack(a, "after leave")
        assert not [e for e in raw_barrier(c, room="lobby") if e.get("room") == "dev"]
        c.send_json({"type": "message", "room": "dev", "text": "sneak"})
        assert recv_error(c)["code"] == "not_in_room"
        assert not [e for e in raw_barrier(a) if e.get("text") == "sneak"]
        # the lobby membership is untouched
        assert send_and_ack(c, "still here", room="lobby")["room"] == "lobby"
        # a dev member that disconnects is announced with the new count
        assert wa["room"] == "dev"


def test_disconnect_from_two_rooms_announced_in_both(server):
    with connect_ws(server) as lob, connect_ws(server, "/?room=dev") as dev:
        connect_seq(lob)
        connect_seq(dev)
        two = connect_ws(server)
        w = connect_seq(two)["welcome"]
        join_seq(two, "dev")
        two.close()
        for x, room in ((lob, "lobby"), (dev, "dev")):
            lv = x.recv_type("leave")
            assert lv == {"type": "leave", "room": room, "user": user_of(w), "count": 1}, lv


def test_rooms_command(server):
    with connect_ws(server) as a, connect_ws(server, "/?room=dev") as b:
        connect_seq(a)
        connect_seq(b)
        join_seq(a, "dev")
        join_seq(a, "x.y-Z_9")
        a.send_json({"type": "rooms"})
        r = a.recv_type("rooms")
        assert r["joined"] == ["lobby", "dev", "x.y-Z_9"], r
        counts = {e["room"]: e["count"] for e in r["rooms"]}
        assert counts == {"lobby": 1, "dev": 2, "x.y-Z_9": 1}, r
        assert len(r["rooms"]) == 3, r
        # b sees the same room list but its own memberships
        b.send_json({"type": "rooms"})
        rb = b.recv_type("rooms")
        assert rb["joined"] == ["dev"], rb
        assert {e["room"]: e["count"] for e in rb["rooms"]} == counts, rb
        # a room nobody is in any more is not listed
        a.send_json({"type": "leave", "room": "x.y-Z_9"})
        a.recv_type("leave")
        a.send_json({"type": "rooms"})
        r = a.recv_type("rooms")
        assert r["joined"] == ["lobby", "dev"], r
        assert {e["room"]: e["count"] for e in r["rooms"]} == {"lobby": 1, "dev": 2}, r


@pytest.mark.parametrize("room", ["", "a b", "a" * 65, "caf\u00e9", "../etc", "a/b", "dev!", "lobby\n"])
def test_join_bad_room(server, room):
    with connect_ws(server) as a:
        connect_seq(a)
        a.send_json({"type": "join", "room": room})
        e = recv_error(a)
        assert e["code"] == "bad_room", e
        a.send_json({"type": "rooms"})
        assert a.recv_type("rooms")["joined"] == ["lobby"]


def test_join_64_char_room_ok(server):
    name = "Z9_.-" * 12 + "abcd"
    assert len(name) == 64
    with connect_ws(server) as a:
        connect_seq(a)
        seq = join_seq(a, name)
        assert seq["presence"]["count"] == 1


def test_room_names_are_case_sensitive(server):
    with connect_ws(server, "/?room=dev") as lower, connect_ws(server, "/?room=Dev") as upper:
        assert connect_seq(lower)["presence"]["count"] == 1
        p = connect_seq(upper)["presence"]
        assert p["room"] == "Dev" and p["count"] == 1, p
        send_and_ack(upper, "upper case room")
        assert not [e for e in raw_barrier(lower) if e.get("room") == "Dev"]


def test_already_joined(server):
    with connect_ws(server) as a:
        connect_seq(a)
        a.send_json({"type": "join", "room": "lobby"})
        assert recv_error(a)["code"] == "already_joined"
        join_seq(a, "dev")
        a.send_json({"type": "join", "room": "dev"})
        assert recv_error(a)["code"] == "already_joined"
        a.send_json({"type": "rooms"})
        r = a.recv_type("rooms")
        assert r["joined"] == ["lobby", "dev"], r
        assert {e["room"]: e["count"] for e in r["rooms"]} == {"lobby": 1, "dev": 1}, r


@pytest.mark.parametrize("cmd", [
    {"type": "leave", "room": "dev"},
    {"type": "message", "room": "dev", "text": "hi"},
    {"type": "history", "room": "dev"},
])
def test_not_in_room(server, cmd):
    with connect_ws(server, "/?room=dev") as member, connect_ws(server) as a:
        connect_seq(member)
        connect_seq(a)
        a.send_json(cmd)
        assert recv_error(a)["code"] == "not_in_room"
        # nothing happened in dev
        seen = raw_barrier(member)
        assert not [e for e in seen if e.get("type") in ("leave", "message")], seen


def test_too_many_rooms_at_17(server):
    with connect_ws(server) as a:
        connect_seq(a)
        for i in range(15):
            join_seq(a, "r%d" % i)
        a.send_json({"type": "rooms"})
        assert len(a.recv_type("rooms")["joined"]) == 16
        a.send_json({"type": "join", "room": "seventeenth"})
        e = recv_error(a)
        assert e["code"] == "too_many_rooms", e
        a.send_json({"type": "rooms"})
        r = a.recv_type("rooms")
        assert len(r["joined"]) == 16 and "seventeenth" not in r["joined"], r
        assert "seventeenth" not in [x["room"] for x in r["rooms"]], r
        # leaving one frees a place
        a.send_json({"type": "leave", "room": "r3"})
        a.recv_type("leave")
        seq = join_seq(a, "seventeenth")
        assert seq["presence"]["count"] == 1


def test_leave_all_rooms_then_no_room_then_join(server):
    with connect_ws(server) as a:
        connect_seq(a)
        a.send_json({"type": "leave", "room": "lobby"})
        assert a.recv_type("leave")["count"] == 0
        a.send_text("nowhere")
        assert recv_error(a)["code"] == "no_room"
        a.send_json({"type": "rooms"})
        assert a.recv_type("rooms")["joined"] == []
        join_seq(a, "lobby")
        assert send_and_ack(a, "back")["room"] == "lobby"


@pytest.mark.server_args("--max-rooms", "3")
def test_max_rooms_reached_too_many_rooms(server):
    with connect_ws(server) as a, connect_ws(server) as b:
        connect_seq(a)                 # lobby
        connect_seq(b)
        join_seq(a, "r1")
        join_seq(b, "r2")              # three rooms exist, all occupied
        a.send_json({"type": "join", "room": "r3"})
        e = recv_error(a)
        assert e["code"] == "too_many_rooms", e
        # an existing room can still be joined
        assert join_seq(a, "r2")["presence"]["count"] == 2


@pytest.mark.server_args("--max-rooms", "3")
def test_empty_rooms_do_not_count_against_max_rooms(server):
    # docs/protocol.md: "at most --max-rooms ... exist at once". Rooms that
    # nobody is in any more must not use the budget up for good (otherwise one
    # client cycling through room names blocks room creation for everyone
    # until a restart); their history stays in the database.
    with connect_ws(server) as a:
        connect_seq(a)                 # lobby
        join_seq(a, "r1")
        first = send_and_ack(a, "kept in r1", room="r1")
        join_seq(a, "r2")
        for r in ("r1", "r2"):
            a.send_json({"type": "leave", "room": r})
            a.recv_type("leave", pred=lambda m, r=r: m["room"] == r)
        a.send_json({"type": "rooms"})
        listed = [x["room"] for x in a.recv_type("rooms")["rooms"]]
        assert listed == ["lobby"], listed
        a.send_json({"type": "join", "room": "r3"})
        m = a.recv_type(("presence", "error"))
        assert m["type"] == "presence", \
            "join of a new room with only 1 of --max-rooms 3 rooms in use: %r" % m
        a.recv_type("history", pred=lambda h: h["room"] == "r3")
        a.send_json({"type": "leave", "room": "r3"})
        a.recv_type("leave")
        # r1 comes back with its history
        h = join_seq(a, "r1")["history"]
        assert [x["text"] for x in h["messages"]] == ["kept in r1"], h
        assert h["messages"][0]["id"] == first["id"]


# ---------------------------------------------------------------- presence


def test_presence_snapshot_exact_count_and_users(server):
    members = []
    try:
        expected = []
        for i in range(6):
            ws = connect_ws(server, "/?room=team")
            members.append(ws)
            seq = connect_seq(ws)
            expected.append(user_of(seq["welcome"]))
            p = seq["presence"]
            assert p["room"] == "team" and p["count"] == i + 1, p
            assert sorted(p["users"], key=lambda u: u["id"]) == \
                sorted(expected, key=lambda u: u["id"]), p
            assert seq["join"]["count"] == i + 1, seq["join"]
        # a rename is reflected in the next snapshot
        members[0].send_json({"type": "nick", "name": "Renamed"})
        members[0].recv_type("nick")
        expected[0]["name"] = "Renamed"
        members[1].close()
        gone = expected.pop(1)
        lv = members[0].recv_type("leave", pred=lambda m: m["user"]["id"] == gone["id"])
        assert lv["count"] == 5, lv
        with connect_ws(server) as late:
            w = connect_seq(late)["welcome"]
            seq = join_seq(late, "team")
            expected.append(user_of(w))
            assert seq["presence"]["count"] == 6, seq["presence"]
            assert sorted(seq["presence"]["users"], key=lambda u: u["id"]) == \
                sorted(expected, key=lambda u: u["id"]), seq["presence"]
    finally:
        for ws in members:
            ws.close()


@pytest.mark.timeout_s(40)
def test_big_room_no_join_leave_events_but_exact_presence(server):
    """102 members in one room. Joins up to 100 members are announced to an
    early member with exact counts; in a room over 100 members nobody gets
    join/leave events, but each newcomer's presence count is exact and its
    user list is capped at 100."""
    early = connect_ws(server, "/?room=big")
    clients = []
    try:
        we = connect_seq(early)["welcome"]
        ids = [we["id"]]
        for n in range(2, 103):
            ws = connect_ws(server, "/?room=big")
            clients.append(ws)
            seq = connect_seq(ws)
            ids.append(seq["welcome"]["id"])
            p = seq["presence"]
            assert p["count"] == n, "presence count for member %d: %r" % (n, p["count"])
            assert len(p["users"]) == min(n, 100), (n, len(p["users"]))
            if n <= 100:
                assert seq["join"] is not None and seq["join"]["count"] == n, seq["events"]
            if n == 102:
                assert seq["join"] is None, "own join event in a 102-member room: %r" % seq["join"]
        seen = raw_barrier(early, timeout=10)
        joins = [e for e in seen if e.get("type") == "join"]
        by_count = {j["count"]: j["user"]["id"] for j in joins}
        assert [j["count"] for j in joins if j["count"] <= 100] == list(range(2, 101)), \
            [j["count"] for j in joins]
        assert all(by_count[n] == ids[n - 1] for n in range(2, 101))
        assert ids[101] not in [j["user"]["id"] for j in joins], \
            "the 102nd member's join was announced in a room over 100 members: %r" % joins[-3:]
        assert not [j for j in joins if j["count"] > 101], joins[-3:]
        # the 102nd leaves abruptly: the room still has 101 > 100 members, no leave event
        clients[-1].close()
        # a newcomer (via the join command) sees the exact count without the one that left
        with connect_ws(server) as late:
            connect_seq(late)
            # the `rooms` command shows the count drop to 101 (the leave is processed)
            for _ in range(50):
                late.send_json({"type": "rooms"})
                counts = {e["room"]: e["count"] for e in late.recv_type("rooms")["rooms"]}
                if counts.get("big") == 101:
                    break
                time.sleep(0.05)
            assert counts.get("big") == 101, counts
            seq = join_seq(late, "big")
            assert seq["presence"]["count"] == 102, seq["presence"]
            assert len(seq["presence"]["users"]) == 100
            assert ids[101] not in [u["id"] for u in seq["presence"]["users"]]
            seen = raw_barrier(early, timeout=10)
            assert not [e for e in seen if e.get("type") in ("join", "leave")], \
                "join/leave events in a room of over 100 members: %r" % \
                [e for e in seen if e.get("type") in ("join", "leave")]
    finally:
        early.close()
        for ws in clients:
            ws.close()


# ---------------------------------------------------------------- ?room= in the URL


@pytest.mark.parametrize("path,room", [
    ("/?room=dev", "dev"),
    ("/ws?room=dev", "dev"),
    ("/ws?x=1&room=a.b-c_D9", "a.b-c_D9"),
    ("/", "lobby"),
    ("/ws", "lobby"),
])
def test_room_in_url(server, path, room):
    with connect_ws(server, path) as ws:
        seq = connect_seq(ws)
        assert seq["welcome"]["room"] == room, seq
        assert seq["presence"]["room"] == room and seq["join"]["room"] == room, seq
        assert seq["history"]["room"] == room
        assert send_and_ack(ws, "hello")["room"] == room
        ws.send_json({"type": "rooms"})
        assert ws.recv_type("rooms")["joined"] == [room]


@pytest.mark.parametrize("query", ["room=a%20b", "room=" + "x" * 65, "room=", "room=%C3%A9"])
def test_bad_room_in_url_400(server, query):
    r = upgrade(server, "/?" + query)
    assert r.status == 400, r

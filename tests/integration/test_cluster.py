"""Cluster mode (docs/cluster.md): three ringcast nodes on one real Redis
(`--redis`). The wire protocol is the one of docs/protocol.md; what changes is
that a room's members, ids, history and presence span the nodes:

* a message posted on any node reaches every member on every node exactly
  once, and every member sees the same id sequence (1, 2, 3, ... per room);
* history, paging and resume answer the same from any node;
* presence counts and names agree across nodes within a second, and member
  ids are unique across the cluster; nick changes reach everyone, once;
* every Redis key starts with `ringcast:`; `--redis-password-file` and a
  password in the URL sign in; `--history-max` bounds a room's stream;
* `--db` together with `--redis` is a bad command line (exit 2).

Failures (a node killed, Redis stopped) are in test_cluster_failures.py.
"""

import os
import time

import pytest

from rcutil import (connect_seq, connect_ws, drain, fetch_history, page_all_history, run_briefly,
                    send_and_ack, send_burst)
from test_resume import Streamer, abort, check_resume, read_until_id

pytestmark = pytest.mark.cluster

AGREE_S = 1.0  # "presence counts and names agree across nodes within a second"


def member(node, room, path_extra=""):
    """A client in `room` on `node`, its connect sequence read."""
    ws = connect_ws(node, "/?room=%s%s" % (room, path_extra))
    return ws, connect_seq(ws)


def collect_messages(ws, n, timeout, room=None):
    """The next n `message` events (of `room`, when given)."""
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < n:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError("got %d of %d messages within %.0fs; last %r"
                                 % (len(out), n, timeout, out[-3:]))
        m = ws.recv_type("message", remaining)
        if room is None or m.get("room") == room:
            out.append(m)
    return out


def view(m):
    """What every member must see alike of one message."""
    return (m["id"], m["from"], m["name"], m["text"], m["ts"])


# ---------------------------------------------------------------- start-up


@pytest.mark.parametrize("args", [
    ["--redis", "redis://127.0.0.1:1", "--db", "chat.db"],
    ["--db", "chat.db", "--redis", "redis://127.0.0.1:1"],
    ["--redis", "http://127.0.0.1:6379"],
    ["--redis", "redis://127.0.0.1:notaport"],
], ids=["redis-then-db", "db-then-redis", "not-a-redis-url", "bad-port"])
def test_bad_redis_command_line_exits_2(args):
    p = run_briefly(*args)
    assert p.returncode == 2, "exit %s, expected 2; stderr:\n%s" % (p.returncode, p.stderr)
    assert p.stderr.strip(), "no message for a bad command line"
    assert "unrecognized option" not in p.stderr, "--redis is not known: %s" % p.stderr
    if "--db" in args:
        assert "--db" in p.stderr and "--redis" in p.stderr, "the refusal should name both: %s" % p.stderr


# ---------------------------------------------------------------- delivery


@pytest.mark.timeout_s(60)
def test_every_member_on_every_node_gets_every_message_once_in_one_order(cluster):
    room = "everyone"
    members = [member(node, room) for node in cluster for _ in range(3)]
    ids = [seq["welcome"]["id"] for _, seq in members]
    assert len(set(ids)) == len(ids), "member ids repeat across nodes: %r" % ids
    per_client = 20
    # Everyone posts at once, interleaved: three nodes submit to Redis at
    # the same time, and one order must come out.
    for k in range(per_client):
        for i, (ws, _) in enumerate(members):
            ws.send_text("c%d-%02d" % (i, k))
    total = per_client * len(members)
    sequences = [collect_messages(ws, total, 30, room) for ws, _ in members]
    first = sequences[0]
    assert [m["id"] for m in first] == list(range(1, total + 1)), \
        "ids are not 1..%d: %r" % (total, [m["id"] for m in first][:20])
    assert sorted(m["text"] for m in first) == sorted(
        "c%d-%02d" % (i, k) for i in range(len(members)) for k in range(per_client))
    for i, s in enumerate(sequences[1:], 1):
        assert [view(m) for m in s] == [view(m) for m in first], \
            "member %d (node %d) saw another sequence than member 0" % (i, i // 3)
    # each sender's own messages keep the order it sent them in
    for i in range(len(members)):
        mine = [m["text"] for m in first if m["text"].startswith("c%d-" % i)]
        assert mine == sorted(mine), "member %d's messages reordered: %r" % (i, mine)
        assert {m["from"] for m in first if m["text"].startswith("c%d-" % i)} == {ids[i]}
    # and nothing comes twice: a duplicate would arrive after the last one
    for i, (ws, _) in enumerate(members):
        extra = [m for m in drain(ws, 0.5 if i == 0 else 0.05) if m.get("type") == "message"]
        assert not extra, "messages after the %d: %r" % (total, extra[:3])


def test_a_member_on_a_quiet_node_gets_the_first_message(cluster):
    """The first message of a room a node has never seen still reaches the
    node's member: it must be subscribed before its join is answered."""
    for i in range(len(cluster)):
        room = "fresh%d" % i
        listeners = [member(node, room)[0] for node in cluster]
        ack = send_and_ack(listeners[i], "first in %s" % room)
        assert (ack["type"], ack.get("id")) == ("message", 1), ack
        for j, ws in enumerate(listeners):
            if j != i:
                m = ws.recv_type("message", 5)
                assert (m["id"], m["text"]) == (1, "first in %s" % room), (j, m)


# ---------------------------------------------------------------- history, paging, resume


def test_history_and_paging_from_another_node(cluster):
    room = "paged"
    with connect_ws(cluster[0], "/?room=%s" % room) as poster:
        connect_seq(poster)
        acks = send_burst(poster, ["h%03d" % i for i in range(120)], room=room)
    assert [m["id"] for m in acks] == list(range(1, 121))

    # the join history on another node: the newest 50, oldest first
    ws, seq = member(cluster[1], room)
    h = seq["history"]
    assert [view(m) for m in h["messages"]] == [view(m) for m in acks[70:]], \
        [m["id"] for m in h["messages"]][:5]
    assert h["more"] is True
    ws.close()

    # paging back to the start on the third node
    with connect_ws(cluster[2], "/?room=%s" % room) as ws:
        connect_seq(ws)
        msgs, pages = page_all_history(ws, room, limit=25)
        assert [view(m) for m in msgs] == [view(m) for m in acks]
        assert [len(p["messages"]) for p in pages] == [25, 25, 25, 25, 20]
        assert [p["more"] for p in pages] == [True, True, True, True, False]
        page = fetch_history(ws, room, before=50, limit=10)
        assert [m["id"] for m in page["messages"]] == list(range(40, 50)) and page["more"] is True
        page = fetch_history(ws, room, before=2)
        assert [m["id"] for m in page["messages"]] == [1] and page["more"] is False
        page = fetch_history(ws, room, before=1)
        assert page["messages"] == [] and page["more"] is False


@pytest.mark.timeout_s(60)
def test_reconnect_mid_stream_to_another_node_every_id_once_in_order(cluster):
    """A receiver on node 1 drops mid-stream and resumes with `since` on node
    2 while node 0 keeps posting: every id once, in order."""
    receiver = connect_ws(cluster[1])
    connect_seq(receiver)
    streamer = Streamer(cluster[0], rate=150, seconds=3.0)
    streamer.start()
    before = [receiver.recv_type("message", 5) for _ in range(120)]
    abort(receiver)
    since = before[-1]["id"]
    # messages go by while nobody listens on node 1: wait until 40 more went out
    gone_at, deadline = streamer.sent, time.monotonic() + 5
    while streamer.sent < gone_at + 40:
        assert time.monotonic() < deadline, "the streamer stopped sending"
        time.sleep(0.01)
    assert not streamer.done_sending.is_set(), "the stream ended before the reconnect"
    with connect_ws(cluster[2], "/?room=lobby&since=%d" % since) as again:
        events = read_until_id(again, lambda: streamer.acks[-1]["id"]
                               if streamer.all_acked.is_set() and streamer.acks else None, timeout=20)
        by_id = streamer.finish()
        assert [e["type"] for e in events[:3]] == ["welcome", "presence", "join"], events[:3]
        replay, live = check_resume(before, events[3:], since, by_id, "lobby")
    assert len(replay) >= 20, "too little was missed to test anything: %d" % len(replay)
    assert len(live) >= 20, "the reconnect was not mid-stream: %d live" % len(live)


def test_resume_and_join_since_from_another_node(cluster):
    with connect_ws(cluster[0], "/?room=dev") as poster:
        connect_seq(poster)
        acks = send_burst(poster, ["d%02d" % i for i in range(30)], room="dev")
    with connect_ws(cluster[1]) as ws:
        connect_seq(ws)
        ws.send_json({"type": "resume", "room": "dev", "since": 4})
        events = []
        while not events or events[-1].get("type") != "resumed":
            events.append(ws.recv_json(5))
        assert [e["type"] for e in events[:2]] == ["presence", "join"], events[:2]
        assert [view(e) for e in events if e["type"] == "message"] == [view(m) for m in acks[4:]]
        assert events[-1] == {"type": "resumed", "room": "dev", "since": 4, "last": 30,
                              "complete": True}, events[-1]
    with connect_ws(cluster[2]) as ws:
        connect_seq(ws)
        ws.send_json({"type": "join", "room": "dev", "since": 25})
        events = []
        while not events or events[-1].get("type") != "resumed":
            events.append(ws.recv_json(5))
        assert [e["id"] for e in events if e["type"] == "message"] == list(range(26, 31))
        assert "history" not in [e["type"] for e in events]


# ---------------------------------------------------------------- presence and names


def wait_event(ws, type_, pred, deadline, what):
    try:
        return ws.recv_type(type_, max(0.01, deadline - time.monotonic()), pred=pred)
    except TimeoutError:
        raise AssertionError("%s: no %s event within %.1fs" % (what, type_, AGREE_S))


def converge(ws, seq, want_ids, deadline, what):
    """From a member's connect sequence on, follow join/leave events of its
    room until its view (ids, and the count of the last event) is want_ids."""
    room = seq["presence"]["room"]
    ids = {u["id"] for u in seq["presence"]["users"]}
    count = seq["presence"]["count"]
    for e in seq["events"]:
        if e.get("type") == "join" and e.get("room") == room:
            ids.add(e["user"]["id"])
            count = e["count"]
    while ids != want_ids or count != len(want_ids):
        e = wait_event(ws, ("join", "leave"), lambda m: m.get("room") == room, deadline,
                       "%s: knows %r (count %d), not %r" % (what, sorted(ids), count, sorted(want_ids)))
        (ids.add if e["type"] == "join" else ids.discard)(e["user"]["id"])
        count = e["count"]


def rooms_count(ws, room):
    ws.send_json({"type": "rooms"})
    r = ws.recv_type("rooms", 5)
    return {x["room"]: x["count"] for x in r["rooms"]}.get(room)


@pytest.mark.timeout_s(60)
def test_presence_counts_and_names_agree_across_nodes_within_a_second(cluster):
    room = "presence"
    members = []  # (ws, id, node index)
    first_name = None
    for k in range(6):
        ws, seq = member(cluster[k % 3], room)
        me = seq["welcome"]["id"]
        seen = time.monotonic()
        # the newcomer knows everyone who joined before it, from its snapshot
        # or, for one who joined a moment ago on another node, from the join
        # event that follows within a second
        converge(ws, seq, {i for _, i, _ in members} | {me}, seen + AGREE_S,
                 "newcomer %s on node %d" % (me, k % 3))
        # and everyone before it, on every node, hears of it within a second
        for other, oid, n in members:
            j = wait_event(other, "join", lambda m: m["user"]["id"] == me, seen + AGREE_S,
                           "member %s on node %d, join of %s" % (oid, n, me))
            assert j["count"] == k + 1 and j["room"] == room, j
            assert j["user"]["name"] == seq["welcome"]["name"], j
        members.append((ws, me, k % 3))
        first_name = first_name or seq["welcome"]["name"]

    # a rename reaches every node within a second, and the next snapshot has it
    renamer, rid, _ = members[0]
    renamer.send_json({"type": "nick", "name": "Alice"})
    done = time.monotonic()
    for ws, oid, n in members:
        e = wait_event(ws, "nick", lambda m: m["id"] == rid, done + AGREE_S,
                       "member %s on node %d, nick of %s" % (oid, n, rid))
        assert (e["name"], e["old"]) == ("Alice", first_name), e
    ws, seq = member(cluster[2], room)
    names = {u["id"]: u["name"] for u in seq["presence"]["users"]}
    assert names.get(rid) == "Alice", names
    ws.close()
    for other, _, _ in members:
        other.recv_type("leave", 5)  # the snapshot taker's own coming and going

    # a leave reaches every node within a second, with the new count
    gone, gid, _ = members.pop(4)
    gone.send_close(1000)
    gone.close()
    left = time.monotonic()
    for ws, oid, n in members:
        e = wait_event(ws, "leave", lambda m: m["user"]["id"] == gid, left + AGREE_S,
                       "member %s on node %d, leave of %s" % (oid, n, gid))
        assert e["count"] == 5, e
    # the room list agrees on every node
    for ws, oid, n in members[:3]:
        deadline = time.monotonic() + AGREE_S
        while rooms_count(ws, room) != 5:
            assert time.monotonic() < deadline, "node %d lists %s people in the room, not 5" % (
                n, rooms_count(ws, room))
            time.sleep(0.05)
    for ws, _, _ in members:
        ws.close()


def test_nick_reaches_members_on_other_nodes_once(cluster):
    renamer, rseq = member(cluster[0], "lobby")
    rid = rseq["welcome"]["id"]
    watchers = []
    for node in cluster[1], cluster[2]:
        ws, _ = member(node, "lobby")
        watchers.append(ws)
    # renamer and both watchers share two rooms: still one nick event each
    for ws in [renamer] + watchers:
        ws.send_json({"type": "join", "room": "dev"})
        ws.recv_type("history", 5, pred=lambda m: m["room"] == "dev")
    for ws in watchers:
        drain(ws, 0.3)
    renamer.send_json({"type": "nick", "name": "Zed"})
    mine = renamer.recv_type("nick", 5)
    assert (mine["id"], mine["name"]) == (rid, "Zed"), mine
    for ws in watchers:
        e = ws.recv_type("nick", 5)
        assert (e["id"], e["name"], e["old"]) == (rid, "Zed", rseq["welcome"]["name"]), e
        again = [m for m in drain(ws, 0.5) if m.get("type") == "nick"]
        assert not again, "the rename came more than once: %r" % again
    # a message after the rename carries the new name on every node
    send_and_ack(renamer, "hello from Zed", room="lobby")
    for ws in watchers:
        m = ws.recv_type("message", 5, pred=lambda m: m["text"] == "hello from Zed")
        assert (m["from"], m["name"]) == (rid, "Zed"), m


# ---------------------------------------------------------------- Redis itself


def test_every_redis_key_starts_with_ringcast(cluster, redis_server):
    a, _ = member(cluster[0], "k1")
    b, _ = member(cluster[1], "k2")
    send_and_ack(a, "one")
    send_and_ack(b, "two")
    b.send_json({"type": "nick", "name": "Bee"})
    b.recv_type("nick", 5)
    fetch_history(b, "k2")
    keys = redis_server.keys()
    assert keys, "nothing stored in Redis"
    assert all(k.startswith("ringcast:") for k in keys), sorted(k for k in keys if not k.startswith("ringcast:"))
    a.close()
    b.close()


def test_password_from_file_or_url(redis_factory, cluster_factory, tmp_path):
    password = "pw-" + os.urandom(8).hex()
    redis = redis_factory(password=password)
    good = tmp_path / "redis-password"
    good.write_text(password + "\n")
    # the file alone; the file over a wrong password in the URL; the URL alone
    n0 = cluster_factory(n=1, redis=redis, extra=["--redis-password-file", str(good)])[0]
    n1 = cluster_factory(n=1, redis=redis, url="redis://default:wrong@127.0.0.1:%d" % redis.port,
                         extra=["--redis-password-file", str(good)])[0]
    n2 = cluster_factory(n=1, redis=redis, url="redis://default:%s@127.0.0.1:%d/0" % (password, redis.port))[0]
    members = [member(n, "auth")[0] for n in (n0, n1, n2)]
    for i, ws in enumerate(members):
        ack = send_and_ack(ws, "from node %d" % i)
        assert ack["type"] == "message" and ack["id"] == i + 1, ack
    # each node reads the room's stream with its own password; once the
    # last message reached a member, its history has all three
    for ws in members[:2]:
        ws.recv_type("message", 5, pred=lambda m: m["id"] == 3)
    for ws in members:
        got = fetch_history(ws, "auth")["messages"]
        assert [m["text"] for m in got] == ["from node 0", "from node 1", "from node 2"]
        assert [m["id"] for m in got] == [1, 2, 3]
        ws.close()


def test_history_max_bounds_a_room_and_resume_says_incomplete(cluster_factory):
    c = cluster_factory(n=2, extra=["--history-max", "30"])
    with connect_ws(c[0], "/?room=short") as poster:
        connect_seq(poster)
        acks = send_burst(poster, ["m%03d" % i for i in range(300)], room="short")
    with connect_ws(c[1], "/?room=short") as ws:
        connect_seq(ws)
        msgs, _ = page_all_history(ws, "short", limit=200)
    ids = [m["id"] for m in msgs]
    assert ids == list(range(ids[0], 301)), "history is not the newest, contiguous: %r" % ids[:5]
    # the newest 30 are kept; the rest may linger a little (Redis trims a
    # stream by whole nodes of up to 100 entries with MAXLEN ~), no more
    assert 30 <= len(ids) <= 130, "kept %d messages with --history-max 30" % len(ids)
    assert [view(m) for m in msgs] == [view(m) for m in acks[-len(ids):]]
    with connect_ws(c[1], "/?room=short&since=0") as ws:
        seq = connect_seq(ws)
        assert [m["id"] for m in seq["replay"]] == ids
        assert seq["resumed"] == {"type": "resumed", "room": "short", "since": 0, "last": 300,
                                  "complete": False}, seq["resumed"]

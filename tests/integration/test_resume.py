"""Resuming without gaps (docs/protocol.md "Resuming without gaps"): a
receiver that drops mid-stream and reconnects with `since` ends with every id
exactly once, in order, with `resumed` between the replay and live traffic;
from memory and (with --history-memory 10) from SQLite; `join` with `since`;
the `resume` command; `complete:false` only when the server no longer holds
what was missed (--no-persist and memory let it go). A replay has no cap on
its length: test_bounded.py replays thousands of messages, megabytes of them."""

import socket
import struct
import select
import threading
import time

import pytest

from rcutil import connect_ws, connect_seq, join_seq, send_burst, recv_error, upgrade, drain


class Streamer(threading.Thread):
    """Sends `rate` messages a second for `seconds` to `room` from its own
    connection, reading its acknowledgements on a second thread."""

    def __init__(self, server, room="lobby", rate=200, seconds=3.0, prefix="s"):
        super().__init__(daemon=True)
        self.server, self.room, self.rate, self.seconds, self.prefix = server, room, rate, seconds, prefix
        self.ws = connect_ws(server, "/?room=%s" % room)
        connect_seq(self.ws)
        self.acks = []
        self.errors = []
        self.sent = 0
        self.done_sending = threading.Event()
        self.all_acked = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)

    def _readable(self, timeout):
        if self.ws.reader.buf:
            return True
        return bool(select.select([self.ws.reader.sock], [], [], timeout)[0])

    def _read(self):
        # The last ack may come back before the sender has counted its send
        # or said it is done: wait in short slices and look again, never in
        # one long read past the end.
        try:
            quiet_since = time.monotonic()
            while not (self.done_sending.is_set() and len(self.acks) >= self.sent):
                if not self._readable(0.1):
                    if time.monotonic() - quiet_since > 10:
                        raise TimeoutError("no frame for 10 s (%d acks of %d sent)"
                                           % (len(self.acks), self.sent))
                    continue
                m = self.ws.recv_json(10)
                quiet_since = time.monotonic()
                if m.get("type") == "message" and m.get("text", "").startswith(self.prefix):
                    self.acks.append(m)
                elif m.get("type") == "error":
                    self.errors.append(m)
        except Exception as e:  # reported by the test through .errors
            self.errors.append(repr(e))
        finally:
            self.all_acked.set()

    def run(self):
        self._reader.start()
        try:
            n = int(self.rate * self.seconds)
            t0 = time.monotonic()
            for i in range(n):
                delay = t0 + i / self.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                self.ws.send_text("%s%05d" % (self.prefix, i))
                self.sent += 1
        except Exception as e:
            self.errors.append(repr(e))
        finally:
            self.done_sending.set()

    def finish(self, timeout=15):
        self.join(timeout)
        assert self.all_acked.wait(timeout), "sender did not get all its acks"
        assert not self.errors, self.errors
        assert len(self.acks) == self.sent, (len(self.acks), self.sent)
        ids = [m["id"] for m in self.acks]
        assert ids == sorted(ids), "sender's acks out of order"
        self.ws.close()
        return {m["id"]: m for m in self.acks}


def abort(ws):
    """Drop the connection abruptly (RST, no close frame)."""
    ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    ws.close()


def read_until_id(ws, final_id_fn, timeout=15):
    """Read events until a `message` with the id final_id_fn() returns (None
    while unknown) has arrived. Returns every event."""
    events = []
    deadline = time.monotonic() + timeout
    while True:
        fid = final_id_fn()
        if fid is not None and any(e.get("type") == "message" and e["id"] == fid for e in events[-5:]):
            return events
        if fid is not None and any(e.get("type") == "message" and e["id"] >= fid for e in events):
            return events
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError("never received message id %s; last events %r" % (fid, events[-3:]))
        try:
            events.append(ws.recv_json(min(remaining, 1.0)))
        except TimeoutError:
            continue


def check_resume(before, events, since, by_id, room):
    """before: messages seen before the drop; events: everything after the
    reconnect's connect/join sequence started. Checks the guarantee."""
    msgs_before = [m["id"] for m in before]
    assert msgs_before == list(range(1, since + 1)), "first session not contiguous: %r" % msgs_before
    assert not [e for e in events if e.get("type") == "history" and e.get("room") == room], \
        "a history event was sent although `since` was given"
    resumed = [i for i, e in enumerate(events) if e.get("type") == "resumed" and e.get("room") == room]
    assert len(resumed) == 1, "expected exactly one resumed event, got %r" % [events[i] for i in resumed]
    r = events[resumed[0]]
    assert r["since"] == since and r["complete"] is True, r
    replay = [e["id"] for e in events[:resumed[0]] if e.get("type") == "message" and e["room"] == room]
    live = [e["id"] for e in events[resumed[0] + 1:] if e.get("type") == "message" and e["room"] == room]
    final = max(by_id)
    assert replay == list(range(since + 1, r["last"] + 1)), \
        "replay ids %s..%s (%d) do not cover since %d < id <= last %d" % (
            replay[:1], replay[-1:], len(replay), since, r["last"])
    assert live == list(range(r["last"] + 1, final + 1)), \
        "live ids after resumed: %r... expected %d..%d" % (live[:10], r["last"] + 1, final)
    everything = msgs_before + replay + live
    assert everything == list(range(1, final + 1)), "gap or duplicate in the ids"
    for e in before + [e for e in events if e.get("type") == "message"]:
        assert e["text"] == by_id[e["id"]]["text"], (e, by_id[e["id"]])
    return replay, live


def stream_drop_and_resume(server, gap=0.3, cut=150, rate=200, seconds=3.0):
    receiver = connect_ws(server)
    connect_seq(receiver)
    streamer = Streamer(server, rate=rate, seconds=seconds)
    streamer.start()
    before = []
    while len(before) < cut:
        m = receiver.recv_type("message", 5)
        before.append(m)
    abort(receiver)
    since = before[-1]["id"]
    time.sleep(gap)
    assert not streamer.done_sending.is_set(), "the stream ended before the reconnect"
    with connect_ws(server, "/?room=lobby&since=%d" % since) as again:
        events = read_until_id(again, lambda: streamer.acks[-1]["id"]
                               if streamer.all_acked.is_set() and streamer.acks else None,
                               timeout=seconds + 15)
        by_id = streamer.finish()
        head = [e["type"] for e in events[:3]]
        assert head == ["welcome", "presence", "join"], events[:3]
        return check_resume(before, events[3:], since, by_id, "lobby")


@pytest.mark.timeout_s(40)
@pytest.mark.server_args("--rate-limit", "0")
def test_reconnect_mid_stream_every_id_once_in_order(server):
    replay, live = stream_drop_and_resume(server)
    assert len(replay) >= 20, "too little was missed to test anything: %d" % len(replay)
    assert len(live) >= 20, "the reconnect was not mid-stream: %d live" % len(live)


@pytest.mark.timeout_s(40)
@pytest.mark.server_args("--rate-limit", "0", "--history-memory", "10")
def test_reconnect_mid_stream_replay_from_sqlite(server):
    replay, live = stream_drop_and_resume(server)
    assert len(replay) > 10, "the replay fit in --history-memory 10: %d" % len(replay)
    assert len(live) >= 20, "the reconnect was not mid-stream: %d live" % len(live)


@pytest.mark.timeout_s(40)
@pytest.mark.server_args("--rate-limit", "0", "--history-memory", "10", "--fsync", "always")
def test_reconnect_mid_stream_replay_from_sqlite_fsync_always(server):
    replay, live = stream_drop_and_resume(server, seconds=2.0, cut=100)
    assert len(replay) > 10, len(replay)


@pytest.mark.timeout_s(40)
@pytest.mark.server_args("--rate-limit", "0", "--history-memory", "10")
def test_join_with_since_for_second_room_mid_stream(server):
    with connect_ws(server) as rx:
        connect_seq(rx)
        join_seq(rx, "dev")
        streamer = Streamer(server, room="dev", seconds=2.0, prefix="d")
        streamer.start()
        before = []
        while len(before) < 100:
            m = rx.recv_type("message", 5)
            assert m["room"] == "dev"
            before.append(m)
        rx.send_json({"type": "leave", "room": "dev"})
        # anything already queued before the leave is still ours
        while True:
            m = rx.recv_type(("message", "leave"), 5)
            if m["type"] == "leave":
                break
            before.append(m)
        since = before[-1]["id"]
        time.sleep(0.3)
        assert not streamer.done_sending.is_set(), "the stream ended before the re-join"
        rx.send_json({"type": "join", "room": "dev", "since": since})
        events = read_until_id(rx, lambda: streamer.acks[-1]["id"]
                               if streamer.all_acked.is_set() and streamer.acks else None)
        by_id = streamer.finish()
        dev = [e for e in events if e.get("room") == "dev"]
        assert [e["type"] for e in dev[:2]] == ["presence", "join"], dev[:2]
        replay, live = check_resume(before, dev[2:], since, by_id, "dev")
        assert len(replay) > 10 and len(live) > 0, (len(replay), len(live))
        # the lobby was untouched
        assert not [e for e in events if e.get("room") == "lobby"], events[:5]


# ---------------------------------------------------------------- quiet-room resume details


def post(server, n, room="lobby"):
    with connect_ws(server, "/?room=%s" % room) as ws:
        connect_seq(ws)
        return send_burst(ws, ["p%03d" % i for i in range(n)])


@pytest.mark.server_args("--rate-limit", "0")
def test_since_in_url_replays_then_resumed(server):
    sent = post(server, 20)
    with connect_ws(server, "/?since=12") as ws:   # room defaults to the lobby
        seq = connect_seq(ws)
        assert seq["welcome"]["room"] == "lobby"
        assert seq["history"] is None, seq["events"]
        assert [m["id"] for m in seq["replay"]] == list(range(13, 21))
        assert [m["text"] for m in seq["replay"]] == [m["text"] for m in sent[12:]]
        assert seq["resumed"] == {"type": "resumed", "room": "lobby", "since": 12, "last": 20,
                                  "complete": True}, seq["resumed"]
        # then live
        post(server, 1)
        assert ws.recv_type("message")["id"] == 21


@pytest.mark.server_args("--rate-limit", "0")
def test_since_zero_and_since_in_the_future(server):
    post(server, 5)
    with connect_ws(server, "/?room=lobby&since=0") as ws:
        seq = connect_seq(ws)
        assert [m["id"] for m in seq["replay"]] == [1, 2, 3, 4, 5]
        assert (seq["resumed"]["since"], seq["resumed"]["last"]) == (0, 5)
    with connect_ws(server, "/?room=lobby&since=999") as ws:
        seq = connect_seq(ws)
        assert seq["replay"] == [], seq["replay"]
        assert seq["resumed"]["since"] == 999 and seq["resumed"]["complete"] is True, seq["resumed"]


@pytest.mark.server_args("--rate-limit", "0", "--no-persist", "--history-memory", "10")
def test_complete_false_only_when_history_is_not_held(server):
    sent = post(server, 30)
    # memory holds 21..30 and there is no database: 1..20 are gone
    with connect_ws(server, "/?since=0") as ws:
        seq = connect_seq(ws)
        assert [m["id"] for m in seq["replay"]] == list(range(21, 31)), [m["id"] for m in seq["replay"]]
        assert [m["text"] for m in seq["replay"]] == [m["text"] for m in sent[20:]]
        assert seq["resumed"] == {"type": "resumed", "room": "lobby", "since": 0, "last": 30,
                                  "complete": False}, seq["resumed"]
    # everything after 20 is held: complete
    with connect_ws(server, "/?since=20") as ws:
        seq = connect_seq(ws)
        assert [m["id"] for m in seq["replay"]] == list(range(21, 31))
        assert seq["resumed"]["complete"] is True, seq["resumed"]


@pytest.mark.parametrize("query", ["since=-1", "since=abc", "since=1.5", "since="])
def test_bad_since_in_url_400(server, query):
    r = upgrade(server, "/?room=lobby&" + query)
    assert r.status == 400, r


@pytest.mark.server_args("--rate-limit", "0", "--history-memory", "10")
def test_resume_command_joins_room_first(server):
    sent = post(server, 30, room="dev")
    with connect_ws(server) as ws:
        connect_seq(ws)
        ws.send_json({"type": "resume", "room": "dev", "since": 4})
        events = []
        while not events or events[-1].get("type") != "resumed":
            events.append(ws.recv_json(5))
        types = [e["type"] for e in events]
        assert types[:2] == ["presence", "join"], types
        assert [e["id"] for e in events if e["type"] == "message"] == list(range(5, 31))
        assert [e["text"] for e in events if e["type"] == "message"] == [m["text"] for m in sent[4:]]
        assert "history" not in types
        assert events[-1] == {"type": "resumed", "room": "dev", "since": 4, "last": 30,
                              "complete": True}, events[-1]
        ws.send_json({"type": "rooms"})
        assert ws.recv_type("rooms")["joined"] == ["lobby", "dev"]


@pytest.mark.server_args("--rate-limit", "0")
def test_resume_when_already_live_replays_only_what_came_before(server):
    post(server, 10)
    with connect_ws(server) as ws:
        seq = connect_seq(ws)                     # live in the lobby from id 10 on
        assert [m["id"] for m in seq["history"]["messages"]] == list(range(1, 11))
        post(server, 5)                           # 11..15 arrive live
        live = [ws.recv_type("message")["id"] for _ in range(5)]
        assert live == [11, 12, 13, 14, 15]
        ws.send_json({"type": "resume", "room": "lobby", "since": 3})
        events = []
        while not events or events[-1].get("type") != "resumed":
            events.append(ws.recv_json(5))
        replay = [e["id"] for e in events if e["type"] == "message"]
        assert replay == list(range(4, 11)), \
            "resume while live must replay only ids 4..10 (before it went live), got %r" % replay
        assert events[-1]["since"] == 3 and events[-1]["last"] == 10, events[-1]
        assert not [e for e in events if e["type"] in ("presence", "join", "history")], events
        # and live traffic continues without a duplicate
        post(server, 1)
        assert ws.recv_type("message")["id"] == 16


@pytest.mark.parametrize("cmd", [
    {"type": "resume", "room": "lobby"},
    {"type": "resume", "room": "lobby", "since": -5},
    {"type": "resume", "room": "lobby", "since": "3"},
    {"type": "resume", "room": "lobby", "since": 2.5},
    {"type": "join", "room": "dev", "since": -1},
])
def test_resume_bad_since(server, cmd):
    with connect_ws(server) as ws:
        connect_seq(ws)
        ws.send_json(cmd)
        assert recv_error(ws)["code"] == "bad_message"
        ws.send_json({"type": "rooms"})
        assert ws.recv_type("rooms")["joined"] == ["lobby"]


def test_resume_bad_room(server):
    with connect_ws(server) as ws:
        connect_seq(ws)
        ws.send_json({"type": "resume", "room": "no such/room", "since": 1})
        assert recv_error(ws)["code"] == "bad_room"


@pytest.mark.server_args("--rate-limit", "0", "--history-memory", "10")
def test_second_resume_during_db_replay_is_resume_in_progress(server):
    from rawws import build_frame, OP_TEXT
    import json as _json
    sent = post(server, 300, room="dev")
    with connect_ws(server) as ws:
        connect_seq(ws)
        resume = _json.dumps({"type": "resume", "room": "dev", "since": 0}).encode()
        during = _json.dumps({"type": "message", "room": "dev", "text": "during replay"}).encode()
        # both resumes and a message in one write: the first replay (from the
        # database: more than --history-memory) is still on its way
        ws.send_raw(build_frame(OP_TEXT, resume) + build_frame(OP_TEXT, resume) + build_frame(OP_TEXT, during))
        events = []
        while not (any(e.get("type") == "message" and e.get("text") == "during replay" for e in events)
                   and any(e.get("type") == "resumed" for e in events)):
            events.append(ws.recv_json(5))
        errors = [e for e in events if e["type"] == "error"]
        assert [e["code"] for e in errors] == ["resume_in_progress"], errors
        resumed = [i for i, e in enumerate(events) if e["type"] == "resumed"]
        assert len(resumed) == 1, [e for e in events if e["type"] != "message"]
        replay = [e for e in events[:resumed[0]] if e["type"] == "message"]
        after = [e for e in events[resumed[0] + 1:] if e["type"] == "message"]
        # "during replay" (id 301) is committed while the paced replay is on
        # its way: it ends the replay or comes live right after it, once
        assert [m["id"] for m in replay + after] == list(range(1, 302)), "replay not exactly once"
        assert [m["text"] for m in replay[:300]] == [m["text"] for m in sent]
        assert (replay + after)[300]["text"] == "during replay"
        assert events[resumed[0]]["last"] == replay[-1]["id"]


@pytest.mark.server_args("--rate-limit", "0", "--history-memory", "10")
def test_leave_during_db_replay_then_join_no_stale_replay(server):
    from rawws import build_frame, OP_TEXT
    import json as _json
    post(server, 300, room="dev")
    with connect_ws(server) as ws:
        connect_seq(ws)
        ws.send_raw(b"".join(build_frame(OP_TEXT, _json.dumps(c).encode()) for c in (
            {"type": "resume", "room": "dev", "since": 0},
            {"type": "leave", "room": "dev"},
            {"type": "join", "room": "dev"})))
        events = []
        while not any(e.get("type") == "history" and e.get("room") == "dev" for e in events):
            events.append(ws.recv_json(5))
        events += drain(ws, 0.5)
        types = [e["type"] for e in events if e.get("room") == "dev"]
        assert "resumed" not in types, "a replay finished for a membership that was left: %r" % types
        stale = [e["id"] for e in events if e["type"] == "message"]
        assert not stale, "%d replayed messages after the leave (ids %r...)" % (len(stale), stale[:5])
        h = [e for e in events if e["type"] == "history"][-1]
        assert [m["id"] for m in h["messages"]] == list(range(251, 301)), [m["id"] for m in h["messages"]][:3]

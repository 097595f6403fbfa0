"""Bounded output (README "Bounded output" / "Bounded amplification",
docs/protocol.md close code 1008, `bad_text`, `resumed`, `history`):

* a slow consumer is one that does not read: dropped (1008) when bytes wait
  and none are taken for --send-timeout, or over the hard ceiling
  --max-queue (16 MiB); a reading client is never dropped for being sent a
  lot at once, and a sender's own acknowledgements never count against it;
* chat text with control characters other than TAB/LF/CR is refused
  (`bad_text`), so one message costs the room at most ~2x its size;
* since/resume replays are paced, complete and unbounded in length;
* a `history` event holds at most ~256 KiB of messages (page back for more);
* the 101 precedes every frame, even for a client dropped in the pass that
  upgraded it.

Every wait has a deadline; an assertion that something did not happen comes
after a positive signal that it would have been seen."""

import json
import select
import shutil
import socket
import struct
import tempfile
import threading
import time

import pytest

from rawws import (RawWS, Closed, build_frame, parse_frames, upgrade_request, connect as raw_connect,
                   OP_TEXT, OP_CLOSE, OP_PING, OP_PONG)
from rcutil import connect_ws, connect_seq, metrics, rss_kib

KIB = 1024
MIB = 1024 * 1024
HISTORY_PAGE_BOUND = 300 * KIB   # "about 256 KiB of message JSON" plus the envelope


# ---------------------------------------------------------------- helpers


class Dropped(AssertionError):
    pass


class Collector(threading.Thread):
    """Reads every frame of one RawWS on its own thread: JSON events go to
    .events (with their payload sizes in .sizes), a close frame ends it
    (.close_code, .close_reason), so does EOF (.eof). Pings are answered."""

    def __init__(self, ws, name="client"):
        super().__init__(daemon=True)
        self.ws, self.name = ws, name
        self.events, self.sizes = [], []
        self.close_code = self.close_reason = None
        self.eof = False
        self.error = None
        self.done = threading.Event()
        self._stop_flag = threading.Event()
        self._cond = threading.Condition()

    def run(self):
        try:
            while not self._stop_flag.is_set():
                if not self.ws.reader.buf:
                    r, _, _ = select.select([self.ws.sock], [], [], 0.2)
                    if not r:
                        continue
                try:
                    f = self.ws.recv_frame(timeout=60)
                except Closed:
                    self.eof = True
                    break
                if f.opcode == OP_TEXT:
                    ev = json.loads(f.payload.decode("utf-8"))
                    with self._cond:
                        self.events.append(ev)
                        self.sizes.append(len(f.payload))
                        self._cond.notify_all()
                elif f.opcode == OP_CLOSE:
                    self.close_code = f.close_code
                    self.close_reason = f.payload[2:].decode("utf-8", "replace")
                    break
                elif f.opcode == OP_PING:
                    self.ws.send_frame(OP_PONG, f.payload)
        except Exception as e:  # reported by wait_for / check_open
            self.error = e
        finally:
            with self._cond:
                self.done.set()
                self._cond.notify_all()

    def ended(self):
        return "%s: %s" % (self.name, "closed with %s %r" % (self.close_code, self.close_reason)
                           if self.close_code is not None else "EOF" if self.eof
                           else "reader error %r" % (self.error,))

    def wait_for(self, pred, timeout, what="the event"):
        """Block until some event satisfies pred; returns its index."""
        deadline = time.monotonic() + timeout
        start = 0
        with self._cond:
            while True:
                for i in range(start, len(self.events)):
                    if pred(self.events[i]):
                        return i
                start = len(self.events)
                if self.done.is_set():
                    raise Dropped("%s before %s (after %d events, %d messages)" % (
                        self.ended(), what, len(self.events), len(self.messages())))
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError("%s: no %s within %.0f s (%d events, last %r)" % (
                        self.name, what, timeout, len(self.events),
                        [short(e) for e in self.events[-3:]]))
                self._cond.wait(min(remaining, 0.5))

    def wait_count(self, pred, n, timeout, what="messages"):
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                got = sum(1 for e in self.events if pred(e))
                if got >= n:
                    return
                if self.done.is_set():
                    raise Dropped("%s after %d of %d %s" % (self.ended(), got, n, what))
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError("%s: only %d of %d %s within %.0f s" % (
                        self.name, got, n, what, timeout))
                self._cond.wait(min(remaining, 0.5))

    def messages(self, room=None):
        with self._cond:
            return [e for e in self.events if e.get("type") == "message"
                    and (room is None or e.get("room") == room)]

    def snapshot(self):
        with self._cond:
            return list(self.events)

    def check_open(self):
        if self.done.is_set():
            raise Dropped(self.ended())

    def stop(self):
        self._stop_flag.set()
        if self.ident is not None:
            self.join(5)


def short(e):
    e = dict(e)
    if isinstance(e.get("text"), str) and len(e["text"]) > 40:
        e["text"] = e["text"][:20] + "...(%d)" % len(e["text"])
    if isinstance(e.get("messages"), list):
        e["messages"] = "[%d messages]" % len(e["messages"])
    return e


def text_of(prefix, i, size):
    head = "%s%06d:" % (prefix, i)
    return head + "x" * (size - len(head))


def frames(texts):
    return b"".join(build_frame(OP_TEXT, t.encode("utf-8") if isinstance(t, str) else t) for t in texts)


def post_many(server, room, n, size, prefix, batch=100):
    """n distinct texts of `size` bytes to `room` from one connection, in
    batches of one write each, every batch's acks awaited. Returns the acks."""
    acks = []
    with connect_ws(server, "/?room=%s" % room) as ws:
        connect_seq(ws)
        for start in range(0, n, batch):
            texts = [text_of(prefix, i, size) for i in range(start, min(n, start + batch))]
            ws.send_raw(frames(texts), strict=True)
            want = set(texts)
            got = 0
            deadline = time.monotonic() + 30
            while got < len(texts):
                m = ws.recv_json(max(0.01, deadline - time.monotonic()))
                if m.get("type") == "error":
                    raise AssertionError("posting answered with %r" % m)
                if m.get("type") == "message" and m.get("text") in want:
                    acks.append(m)
                    got += 1
    ids = [m["id"] for m in acks]
    assert ids == list(range(ids[0], ids[0] + n)), "posted ids not consecutive"
    return acks


class LiveSender(threading.Thread):
    """Posts `rate` messages a second of `size` bytes to `room` until
    finish(); its acks are read by a Collector on the same connection."""

    def __init__(self, server, room="lobby", rate=100, size=200, prefix="live"):
        super().__init__(daemon=True)
        self.rate, self.size, self.prefix = rate, size, prefix
        self.ws = connect_ws(server, "/?room=%s" % room)
        connect_seq(self.ws)
        self.acks = Collector(self.ws, "live sender")
        self.sent = 0
        self.send_error = None
        self._stop_flag = threading.Event()

    def is_ack(self, e):
        return e.get("type") == "message" and e.get("text", "").startswith(self.prefix)

    def run(self):
        t0 = time.monotonic()
        try:
            while not self._stop_flag.is_set():
                delay = t0 + self.sent / self.rate - time.monotonic()
                if delay > 0:
                    self._stop_flag.wait(delay)
                    continue
                self.ws.send_text(text_of(self.prefix, self.sent, self.size))
                self.sent += 1
        except Exception as e:
            self.send_error = e

    def begin(self, at_least=5):
        """Start, and return once `at_least` of its messages came back."""
        self.acks.start()
        self.start()
        self.acks.wait_count(self.is_ack, at_least, 10, "live acks")

    def stop(self):
        """Cleanup: stop sending and reading (idempotent)."""
        self._stop_flag.set()
        if self.ident is not None:
            self.join(5)
        self.acks.stop()
        self.ws.close()

    def finish(self, timeout=20):
        """Stop sending; wait for every ack; returns them (oldest first)."""
        self._stop_flag.set()
        self.join(5)
        assert self.send_error is None, self.send_error
        self.acks.wait_count(self.is_ack, self.sent, timeout, "live acks")
        acks = [e for e in self.acks.messages() if self.is_ack(e)]
        self.acks.stop()
        self.ws.close()
        ids = [m["id"] for m in acks]
        assert ids == sorted(ids) and len(set(ids)) == len(ids), "live acks out of order"
        return acks


def abort(ws):
    """Drop a connection abruptly (RST)."""
    ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    ws.close()


def check_replay_then_live(events, since, by_id, final_id, room="lobby", min_last=None):
    """events: everything a resuming connection received after its connect
    sequence started. Every id since < id <= final_id exactly once, in order:
    the replay, then `resumed` (complete), then live."""
    r_idx = [i for i, e in enumerate(events) if e.get("type") == "resumed" and e.get("room") == room]
    assert len(r_idx) == 1, "expected one resumed event, got %r" % [events[i] for i in r_idx]
    r = events[r_idx[0]]
    assert r["since"] == since and r["complete"] is True, r
    assert not [e for e in events if e.get("type") == "history" and e.get("room") == room], \
        "a history event although `since` was given"
    replay = [e for e in events[:r_idx[0]] if e.get("type") == "message" and e.get("room") == room]
    live = [e for e in events[r_idx[0] + 1:] if e.get("type") == "message" and e.get("room") == room]
    rids = [m["id"] for m in replay]
    assert rids == list(range(since + 1, r["last"] + 1)), \
        "replay ids %s..%s (%d) are not exactly since %d < id <= last %d" % (
            rids[:1], rids[-1:], len(rids), since, r["last"])
    if min_last is not None:
        assert r["last"] >= min_last, "resumed.last %d < %d: missed messages not replayed" % (
            r["last"], min_last)
    lids = [m["id"] for m in live]
    assert lids == list(range(r["last"] + 1, final_id + 1)), \
        "live ids after resumed %r... are not last+1 (%d)..%d" % (lids[:5], r["last"] + 1, final_id)
    for m in replay + live:
        want = by_id.get(m["id"])
        assert want is not None and m["text"] == want["text"], "id %d carries the wrong text" % m["id"]
    return replay, live


def resume_under_live_traffic(server, since, by_id, min_last, room="lobby", how="url", timeout=40):
    """Catch up on `room` from `since` while a LiveSender posts to it: with
    ?since= in the URL (how="url"), or from a connection in the lobby with a
    `join` carrying `since` ("join") or a `resume` command ("resume"). Reads
    the replay, `resumed` and some live traffic; checks it all. Returns
    (replay, live)."""
    live = LiveSender(server, room=room, rate=100)
    live.begin()
    if how == "url":
        ws = connect_ws(server, "/?room=%s&since=%d" % (room, since))
    else:
        ws = connect_ws(server)
        connect_seq(ws)
    c = Collector(ws, "resuming client")
    c.start()
    try:
        if how != "url":
            ws.send_json({"type": how, "room": room, "since": since})
        r = c.wait_for(lambda e: e.get("type") in ("resumed", "error"), timeout, "`resumed` after the replay")
        assert c.events[r]["type"] == "resumed", c.events[r]
        # some live traffic after the replay, then stop and collect up to the last ack
        n_before = len(c.messages())
        c.wait_count(lambda e: e.get("type") == "message", n_before + 20, 15, "live messages")
        acks = live.finish()
        final = acks[-1]["id"]
        c.wait_for(lambda e: e.get("type") == "message" and e["id"] == final, 15,
                   "the last live message (id %d)" % final)
        events = c.snapshot()
        if how == "url":
            assert [e["type"] for e in events[:3]] == ["welcome", "presence", "join"], \
                [short(e) for e in events[:3]]
            events = events[3:]
        else:
            events = [e for e in events if e.get("room") == room]
            assert [e["type"] for e in events[:2]] == ["presence", "join"], [short(e) for e in events[:2]]
            events = events[2:]
        all_by_id = dict(by_id)
        all_by_id.update({m["id"]: m for m in acks})
        return check_replay_then_live(events, since, all_by_id, final, room, min_last)
    finally:
        live.stop()
        c.stop()
        ws.close()


def sanitized(pid):
    """An AddressSanitizer build (RSS includes its quarantine of freed memory)."""
    with open("/proc/%d/maps" % pid) as f:
        return "libasan" in f.read()


class RssWatch(threading.Thread):
    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid = pid
        self.baseline = self.peak = rss_kib(pid)
        self._stop_flag = threading.Event()

    def run(self):
        while not self._stop_flag.is_set():
            try:
                self.peak = max(self.peak, rss_kib(self.pid))
            except (OSError, AssertionError):
                return
            self._stop_flag.wait(0.02)

    def stop(self):
        self._stop_flag.set()
        self.join(2)
        return (self.peak - self.baseline) / 1024.0


# ---------------------------------------------------------------- rule 2: amplification


@pytest.mark.timeout_s(40)
def test_control_character_texts_refused_nothing_amplified(server):
    """Rule 2: six 64 KiB texts of U+0001 (each would escape to ~384 KiB per
    member) sent in one write are each refused with `bad_text`; nothing is
    broadcast, no member is dropped; a normal message then reaches all."""
    members = [connect_ws(server) for _ in range(5)]
    cols = []
    for i, m in enumerate(members):
        connect_seq(m)
        cols.append(Collector(m, "member %d" % i))
    sender = connect_ws(server)
    connect_seq(sender)
    for c in cols:
        c.start()
    try:
        bad = "\u0001" * 65536
        sender.send_raw(frames([bad] * 6), strict=True)
        errors = []
        deadline = time.monotonic() + 15
        while len(errors) < 6:
            try:
                m = sender.recv_json(max(0.01, deadline - time.monotonic()))
            except (AssertionError, Closed) as e:
                raise Dropped("the sender was dropped after %d bad_text errors: %s" % (len(errors), e))
            assert m.get("type") != "message", "a control-character text was broadcast: %r" % short(m)
            if m.get("type") == "error":
                errors.append(m)
        assert [e["code"] for e in errors] == ["bad_text"] * 6, errors
        # positive signal: a normal message still goes through to everyone
        sender.send_text("after the refused ones")
        ack = sender.recv_type("message", 10)
        assert ack["text"] == "after the refused ones"
        for c in cols:
            c.wait_for(lambda e: e.get("type") == "message" and e.get("text") == "after the refused ones",
                       10, "the normal message")
            msgs = c.messages()
            assert [m["id"] for m in msgs] == [ack["id"]], \
                "%s received messages other than the normal one: %r" % (c.name, [short(m) for m in msgs])
            assert not [e for e in c.snapshot() if e.get("type") == "leave"], \
                "%s saw someone leave" % c.name
            c.check_open()
        assert sender.is_open(2.0)
    finally:
        for c in cols:
            c.stop()
        for m in members + [sender]:
            m.close()


@pytest.mark.parametrize("raw", [
    '{"type":"message","text":"a\\u0001b"}',
    '{"type":"message","text":"nul \\u0000 inside"}',
    '{"type":"message","text":"esc \\u001b[2J"}',
    '{"type":"message","room":"lobby","text":"\\u001f"}',
], ids=["u0001", "nul", "esc", "with-room"])
def test_control_characters_in_json_message_command_are_bad_text(server, raw):
    """Rule 2 for the `message` command: a JSON `\\u00XX` escape of a control
    character (other than TAB/LF/CR) in `text` is `bad_text`, nothing is
    broadcast; TAB/LF/CR escapes are accepted (positive signal)."""
    a, b = connect_ws(server), connect_ws(server)
    try:
        connect_seq(a)
        connect_seq(b)
        a.send_text(raw)
        e = a.recv_type(("error", "message"), 5)
        assert e["type"] == "error" and e["code"] == "bad_text", e
        a.send_text('{"type":"message","text":"tab\\there\\nlf\\rcr"}')
        got = b.recv_type("message", 5)
        assert got["text"] == "tab\there\nlf\rcr", "the first message b got was %r" % got
        assert a.recv_type("message", 5)["text"] == "tab\there\nlf\rcr"
    finally:
        a.close()
        b.close()


# ---------------------------------------------------------------- rule 1: readers are never dropped


@pytest.mark.timeout_s(60)
@pytest.mark.server_args("--rate-limit", "0")
def test_burst_of_large_escaped_messages_reaches_every_reader(server):
    """Rule 1: 40 texts of 65,536 '"' (each ~128 KiB once escaped, 5 MiB per
    member) written at once by a sender that reads nothing until all are
    written: the 5 reading members and the sender stay connected and each
    gets all 40, ids consecutive, texts intact."""
    N = 40
    text = '"' * 65536
    members = [connect_ws(server) for _ in range(5)]
    cols = []
    for i, m in enumerate(members):
        connect_seq(m)
        cols.append(Collector(m, "member %d" % i))
    sender = connect_ws(server)
    connect_seq(sender)
    for c in cols:
        c.start()
    try:
        sender.send_raw(frames([text] * N), strict=True)
        sc = Collector(sender, "sender")
        sc.start()
        cols.append(sc)
        for c in cols:
            c.wait_count(lambda e: e.get("type") == "message", N, 40, "messages of the burst")
        for c in cols:
            msgs = c.messages()
            ids = [m["id"] for m in msgs]
            assert ids == list(range(ids[0], ids[0] + N)), "%s: ids %r not consecutive" % (c.name, ids)
            assert all(m["text"] == text for m in msgs), "%s: a text arrived altered" % c.name
            assert max(c.sizes) >= 2 * 65536, "the frames were not escaped as expected"
        assert len({tuple(m["id"] for m in c.messages()) for c in cols}) == 1, "members disagree on ids"
        # still connected: one more message reaches everyone
        sender.send_text("still here")
        for c in cols:
            c.wait_for(lambda e: e.get("text") == "still here", 10, "the message after the burst")
            assert not [e for e in c.snapshot() if e.get("type") == "leave"], "%s saw a leave" % c.name
            c.check_open()
    finally:
        for c in cols:
            c.stop()
        for m in members + [sender]:
            m.close()


# ---------------------------------------------------------------- rule 3: paced, complete replays


@pytest.mark.timeout_s(60)
@pytest.mark.parametrize("extra", [[], ["--history-memory", "10"], ["--max-queue", "1048576"],
                                   ["--max-queue", "262144"]],
                         ids=["history-memory-default", "history-memory-10", "max-queue-1MiB",
                              "max-queue-256KiB"])
def test_resume_over_2000_missed_2kb_messages(server_factory, extra):
    """Rule 3: a client that missed 2,000 messages of 2,000 bytes (~4 MiB,
    over the old 1 MiB limit) resumes with ?since=N while others keep
    posting: every id N+1..N+2000 exactly once, in order, `resumed`
    complete:true, then live with no gap or duplicate. From memory and SQLite
    (default --history-memory 1000) and from SQLite only (10); and with a
    1 MiB or 256 KiB --max-queue, which only a replay paced below the
    ceiling fits under (a store batch sent whole on top of a fixed 256 KiB
    mark crossed 256 KiB)."""
    server = server_factory("--rate-limit", "0", *extra)
    a = connect_ws(server)
    connect_seq(a)
    first = post_many(server, "lobby", 5, 100, "first")
    seen = [a.recv_type("message", 5) for _ in range(5)]
    assert [m["id"] for m in seen] == [m["id"] for m in first]
    since = seen[-1]["id"]
    abort(a)
    missed = post_many(server, "lobby", 2000, 2000, "missed", batch=200)
    assert missed[0]["id"] == since + 1 and missed[-1]["id"] == since + 2000
    replay, live = resume_under_live_traffic(server, since, {m["id"]: m for m in missed},
                                             min_last=since + 2000)
    assert len(replay) >= 2000 and len(live) >= 20, (len(replay), len(live))


@pytest.mark.timeout_s(60)
@pytest.mark.parametrize("how", ["join", "resume"])
def test_join_or_resume_command_over_2000_missed_messages_from_sqlite(server_factory, how):
    """Rule 3 for the commands: from a connection in the lobby, `join` with
    `since` (or `resume`) of a room that got 2,000 messages of 2,000 bytes
    since (--history-memory 10: all from SQLite), while others post to it:
    every missed id once, in order, `resumed` complete:true, then live."""
    server = server_factory("--rate-limit", "0", "--history-memory", "10")
    first = post_many(server, "dev", 3, 100, "first")
    since = first[-1]["id"]
    missed = post_many(server, "dev", 2000, 2000, "missed", batch=200)
    replay, live = resume_under_live_traffic(server, since, {m["id"]: m for m in missed},
                                             min_last=since + 2000, room="dev", how=how)
    assert len(replay) >= 2000 and len(live) >= 20, (len(replay), len(live))


@pytest.fixture
def workdir():
    d = tempfile.mkdtemp(prefix="ringcast-it-bounded-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.mark.timeout_s(60)
def test_since_zero_replays_3000_from_the_store_after_restart(server_factory, workdir):
    """Rule 3: after a restart, ?since=0 on a room holding 3,000 messages of
    1 KB (~3.5 MiB) replays all 3,000 from SQLite in order, `resumed`
    complete:true, then live."""
    first = server_factory("--rate-limit", "0", workdir=workdir)
    stored = post_many(first, "lobby", 3000, 1000, "stored", batch=250)
    assert [m["id"] for m in stored] == list(range(1, 3001))
    assert not first.stop()
    second = server_factory("--rate-limit", "0", workdir=workdir)
    replay, live = resume_under_live_traffic(second, 0, {m["id"]: m for m in stored}, min_last=3000)
    assert len(replay) >= 3000 and len(live) >= 20, (len(replay), len(live))


# ---------------------------------------------------------------- rule 4: bounded history pages


def page_back(ws, room, before, limit, seen_sizes, timeout=10):
    """Page back with `history` from `before`; returns the messages (oldest
    first) and the pages. seen_sizes gets each page's payload size."""
    out, pages = [], []
    for _ in range(1000):
        ws.send_json({"type": "history", "room": room, "before": before, "limit": limit})
        deadline = time.monotonic() + timeout
        while True:
            op, payload = ws.recv_message(max(0.01, deadline - time.monotonic()))
            m = json.loads(payload)
            if m.get("type") == "error":
                raise AssertionError("history answered with %r" % m)
            if m.get("type") == "history" and m.get("room") == room:
                break
        seen_sizes.append(len(payload))
        pages.append(m)
        if m["more"]:
            assert m["messages"], "an empty page with more:true"
        if not m["messages"]:
            break
        out = m["messages"] + out
        before = m["messages"][0]["id"]
        if not m["more"]:
            break
    else:
        raise AssertionError("paging did not end")
    return out, pages


def recv_sized(ws, timeout=10):
    op, payload = ws.recv_message(timeout)
    return json.loads(payload), len(payload)


@pytest.mark.timeout_s(45)
@pytest.mark.server_args("--rate-limit", "0")
def test_join_room_of_24kb_messages_gets_bounded_first_page(server):
    """Rule 4: joining a room whose last 50 messages are 24 KB each (1.2 MiB
    of history) works: the first `history` event is at most ~256 KiB, holds
    the newest message, says more:true, and paging back with `before` yields
    all 60 messages exactly once, every page bounded."""
    sent = post_many(server, "big", 60, 24000, "big", batch=10)
    ws = connect_ws(server, "/?room=big")
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                m, size = recv_sized(ws, max(0.01, deadline - time.monotonic()))
            except (AssertionError, Closed) as e:
                raise Dropped("joining a room of 24 KB messages: %s" % e)
            if m.get("type") == "history":
                break
        assert size <= HISTORY_PAGE_BOUND, "first history event is %d bytes" % size
        ids = [x["id"] for x in m["messages"]]
        assert ids, "an empty first page"
        assert ids[-1] == sent[-1]["id"], "the first page lacks the newest message: %r" % ids
        assert ids == list(range(ids[0], ids[-1] + 1)), ids
        assert len(ids) < 50 and m["more"] is True, (len(ids), m["more"])
        sizes = []
        older, pages = page_back(ws, "big", ids[0], 50, sizes)
        got = older + m["messages"]
        assert [x["id"] for x in got] == [x["id"] for x in sent], "paging did not yield every id once"
        assert [x["text"] for x in got] == [x["text"] for x in sent]
        assert max(sizes) <= HISTORY_PAGE_BOUND, sizes
        assert pages[-1]["more"] is False
        assert ws.is_open(2.0)
    finally:
        ws.close()


@pytest.mark.timeout_s(45)
@pytest.mark.server_args("--rate-limit", "0")
def test_history_limit_200_of_6kb_messages_bounded_and_pageable(server):
    """Rule 4: `history` with limit 200 over 6 KB messages (1.2 MiB asked
    for) answers at most ~256 KiB, the newest, more:true, without a drop;
    paging back with `before` collects all 250 exactly once."""
    sent = post_many(server, "mid", 250, 6000, "mid", batch=25)
    ws = connect_ws(server)
    try:
        connect_seq(ws)
        ws.send_json({"type": "join", "room": "mid"})
        ws.recv_type("history", 10, pred=lambda m: m.get("room") == "mid")
        sizes = []
        try:
            got, pages = page_back(ws, "mid", 10 ** 9, 200, sizes)
        except (AssertionError, Closed) as e:
            raise Dropped("history limit 200 of 6 KB messages: %s" % e)
        assert pages[0]["messages"][-1]["id"] == sent[-1]["id"], "first page lacks the newest"
        assert pages[0]["more"] is True and len(pages[0]["messages"]) < 200
        assert max(sizes) <= HISTORY_PAGE_BOUND, sizes
        assert [x["id"] for x in got] == [x["id"] for x in sent]
        assert [x["text"] for x in got] == [x["text"] for x in sent]
        assert ws.is_open(2.0)
    finally:
        ws.close()


# ---------------------------------------------------------------- rule 5: the 101 first


@pytest.mark.timeout_s(60)
@pytest.mark.server_args("--max-queue", "65536", "--rate-limit", "0", "--close-timeout", "1",
                         "--no-persist")
def test_101_precedes_every_frame_when_dropped_in_the_upgrade_pass(server):
    """Rule 5: the lobby's newest message is 40,000 '"' (an 80 KB frame once
    escaped; a history page always holds the newest message), so joining it
    on a server with --max-queue 65536 overflows the ceiling in the very
    pass that upgraded the connection. 20 times over, the first bytes are
    `HTTP/1.1 101`, and then the connection is dropped (1008 or EOF)."""
    with connect_ws(server) as poster:
        connect_seq(poster)
        poster.send_text('"' * 40000)
        poster.recv_type("message", 10, pred=lambda m: len(m.get("text", "")) == 40000)
    for k in range(20):
        s = raw_connect(server.host, server.port, 5)
        try:
            s.sendall(upgrade_request(server.host, server.port, "/?room=lobby"))
            data, deadline, ended = b"", time.monotonic() + 10, False
            while time.monotonic() < deadline:
                r, _, _ = select.select([s], [], [], 0.2)
                if not r:
                    continue
                try:
                    chunk = s.recv(262144)
                except ConnectionResetError:
                    ended = True
                    break
                if not chunk:
                    ended = True
                    break
                data += chunk
            assert data, "connection %d: nothing received (not even the 101)" % k
            assert data.startswith(b"HTTP/1.1 101"), \
                "connection %d: first bytes are %r, not the 101" % (k, data[:40])
            head_end = data.find(b"\r\n\r\n")
            assert head_end > 0
            fr = parse_frames(data[head_end + 4:])
            closes = [f.close_code for f in fr if f.opcode == OP_CLOSE]
            texts = [f.json() for f in fr if f.opcode == OP_TEXT]
            assert closes in ([], [1008]), "connection %d closed with %r" % (k, closes)
            assert ended, "connection %d: not dropped within 10 s" % k
            assert not [t for t in texts if t.get("type") == "history"], \
                "connection %d: the oversized history page went out" % k
        finally:
            s.close()
    assert server.alive()


# ---------------------------------------------------------------- rule 1: non-readers still dropped


@pytest.mark.timeout_s(60)
@pytest.mark.server_args("--send-timeout", "2", "--rate-limit", "0", "--close-timeout", "1")
def test_client_that_stops_reading_is_dropped_reader_gets_everything(server):
    """Rule 1: with --send-timeout 2 and the default 16 MiB --max-queue, a
    client that stops reading (SO_RCVBUF 4 KiB) in a room that keeps getting
    messages is dropped as a slow consumer (others see its leave, the
    metric counts it) within a deadline; a healthy reader gets every message
    and the server's RSS stays bounded."""
    watch = RssWatch(server.proc.pid)
    silent = RawWS.connect(server.host, server.port, "/", rcvbuf=4096)
    silent_id = silent.welcome()["id"]   # from now on it never reads
    healthy = connect_ws(server)
    connect_seq(healthy)
    hc = Collector(healthy, "healthy reader")
    hc.start()
    live = LiveSender(server, rate=200, size=8000, prefix="flood")
    watch.start()
    try:
        t0 = time.monotonic()
        live.begin()
        hc.wait_for(lambda e: e.get("type") == "leave" and e["user"]["id"] == silent_id, 20,
                    "the non-reader's leave (dropped as a slow consumer)")
        dropped_after = time.monotonic() - t0
        n_at_drop = live.sent
        # all that was ever sent to it is far below the 16 MiB ceiling: the
        # stall (--send-timeout) dropped it
        assert n_at_drop * 8000 < 12 * MIB, n_at_drop
        # keep the room busy a little longer, then check the reader got all
        hc.wait_count(lambda e: e.get("type") == "message", len(hc.messages()) + 100, 10)
        acks = live.finish()
        final = acks[-1]["id"]
        hc.wait_for(lambda e: e.get("type") == "message" and e["id"] == final, 15, "the last message")
        ids = [m["id"] for m in hc.messages()]
        assert ids == list(range(acks[0]["id"], final + 1)), "the healthy reader missed or repeated ids"
        assert ids == [m["id"] for m in acks]
        hc.check_open()
        grown = watch.stop()
        mx = metrics(server)
        assert mx.get("ringcast_slow_consumer_closes_total", 0) >= 1, mx
        # bound: the non-reader's queue (at most --max-queue of shared frames,
        # counted twice for slack) plus 48 MiB for everything else. Not under
        # AddressSanitizer, whose quarantine keeps freed memory resident.
        assert sanitized(server.proc.pid) or grown <= 2 * 16 + 48, "server RSS grew by %.0f MiB" % grown
        data, _ = silent.reader.read_to_eof(timeout=10)
        closes = [f.close_code for f in parse_frames(data) if f.opcode == OP_CLOSE]
        assert closes in ([], [1008]), closes
        print("dropped after %.1f s, %d messages of 8 KB; RSS +%.1f MiB" % (dropped_after, n_at_drop, grown))
    finally:
        watch.stop()
        hc.stop()
        healthy.close()
        silent.close()


def messages(events):
    return [e for e in events if e.get("type") == "message"]


def read_slowly(slow, done, timeout, pause=0.1):
    """Read a RawWS slowly: up to 64 KiB, then a `pause` (pacing, not
    synchronisation), until done(events) or a close. Returns (events, how
    it was closed or None); the socket is left as it was found."""
    got, closed = [], None
    sock = slow.sock
    sock.setblocking(False)
    buf = bytearray(slow.reader.buf)
    slow.reader.buf.clear()
    deadline = time.monotonic() + timeout
    while not done(got) and time.monotonic() < deadline:
        taken = 0
        t_burst = time.monotonic()
        while taken < 64 * KIB and time.monotonic() - t_burst < 0.02:
            try:
                chunk = sock.recv(64 * KIB - taken)
            except BlockingIOError:
                select.select([sock], [], [], 0.005)
                continue
            except ConnectionResetError:
                closed = "reset"
                break
            if not chunk:
                closed = "EOF"
                break
            buf += chunk
            taken += len(chunk)
        while True:
            f, used = parse_one(buf)
            if f is None:
                break
            del buf[:used]
            op, payload = f
            if op == OP_CLOSE:
                closed = "close %d" % struct.unpack("!H", payload[:2])[0]
                break
            if op == OP_TEXT:
                got.append(json.loads(payload))
        if closed:
            break
        time.sleep(pause)
    sock.setblocking(True)
    slow.reader.buf[:] = buf
    return got, closed


@pytest.mark.timeout_s(60)
@pytest.mark.server_args("--send-timeout", "2", "--rate-limit", "0")
def test_slow_but_reading_client_is_not_dropped(server):
    """Rule 1: a client that reads slowly (at most 64 KiB every 100 ms through
    an 8 KiB SO_RCVBUF) while 8 MiB are broadcast to its room at once
    (--send-timeout 2) stays connected and receives everything. (8 MiB, not
    less: the kernel's socket buffers absorb ~4 MiB of it, so only more than
    that makes the server hold a backlog for the slow reader at all.)"""
    N = 128
    texts = [text_of("slow", i, 65536) for i in range(N)]
    slow = RawWS.connect(server.host, server.port, "/", rcvbuf=8192)
    slow.welcome()
    sender = connect_ws(server)
    connect_seq(sender)
    sc = Collector(sender, "sender")
    sc.start()
    try:
        sender.send_raw(frames(texts), strict=True)
        got, closed = read_slowly(slow, lambda got: len(messages(got)) >= N, 45)
        got = messages(got)
        assert closed is None, "the slow reader was dropped (%s) after %d of %d messages" % (
            closed, len(got), N)
        assert [m["text"] for m in got] == texts, "got %d of %d messages" % (len(got), N)
        ids = [m["id"] for m in got]
        assert ids == list(range(ids[0], ids[0] + N))
        sc.wait_count(lambda e: e.get("type") == "message", N, 10, "acks")
        sc.check_open()
        assert slow.is_open(2.0)
    finally:
        sc.stop()
        slow.close()
        sender.close()


@pytest.mark.timeout_s(90)
@pytest.mark.server_args("--max-queue", "262144", "--rate-limit", "0")
def test_slow_reader_catches_up_10mb_under_a_256kib_max_queue(server):
    """Rule 3 under a small ceiling: with --max-queue 256 KiB, a client that
    reads slowly (8 KiB SO_RCVBUF) resumes 5,000 missed messages of 2,000
    bytes, ~10 MB, most of them from SQLite. The kernel's buffers fill, the
    server holds a backlog, and the replay stays under the ceiling: no
    drop, every id once in order, `resumed` complete:true. (A fast reader
    never lets a backlog build, so only a slow one tests the pacing.)"""
    first = post_many(server, "lobby", 1, 100, "first")
    since = first[-1]["id"]
    missed = post_many(server, "lobby", 5000, 2000, "missed", batch=200)
    last = missed[-1]["id"]
    slow = RawWS.connect(server.host, server.port, "/?room=lobby&since=%d" % since, rcvbuf=8192)
    try:
        slow.welcome()
        got, closed = read_slowly(slow, lambda got: any(e.get("type") == "resumed" for e in got),
                                  60, pause=0.02)
        msgs = messages(got)
        assert closed is None, "the slow reader was dropped (%s) after %d of 5000 messages" % (
            closed, len(msgs))
        resumed = [e for e in got if e.get("type") == "resumed"]
        assert resumed and resumed[0]["complete"] is True and resumed[0]["last"] == last, resumed
        assert [m["id"] for m in msgs] == list(range(since + 1, last + 1)), \
            "replayed ids are not exactly %d..%d (got %d)" % (since + 1, last, len(msgs))
        assert [m["text"] for m in msgs] == [m["text"] for m in missed]
        assert slow.is_open(2.0)
    finally:
        slow.close()


def parse_one(buf):
    """One complete unmasked server frame from the front of buf: ((opcode,
    payload), bytes used) or (None, 0)."""
    if len(buf) < 2:
        return None, 0
    n, pos = buf[1] & 0x7F, 2
    if n == 126:
        if len(buf) < 4:
            return None, 0
        n, pos = struct.unpack("!H", bytes(buf[2:4]))[0], 4
    elif n == 127:
        if len(buf) < 10:
            return None, 0
        n, pos = struct.unpack("!Q", bytes(buf[2:10]))[0], 10
    if len(buf) < pos + n:
        return None, 0
    return (buf[0] & 0xF, bytes(buf[pos:pos + n])), pos + n


# ---------------------------------------------------------------- rule 1: acks never count


@pytest.mark.timeout_s(45)
@pytest.mark.server_args("--max-queue", "1048576", "--rate-limit", "0")
def test_own_acks_do_not_count_against_the_sender(server):
    """Rule 1: alone in a room with --max-queue 1 MiB, a sender with a 4 KiB
    SO_RCVBUF posts 128 texts of 64 KiB (8 MiB of acknowledgements: more than
    the kernel's socket buffers, ~4 MiB, can absorb, so they queue in the
    server) without reading, then reads: it gets all 128 acks in order and is
    not dropped."""
    N = 128
    texts = [text_of("own", i, 65536) for i in range(N)]
    ws = RawWS.connect(server.host, server.port, "/?room=solo", rcvbuf=4096)
    try:
        ws.welcome()
        ws.send_raw(frames(texts), strict=True)
        got = []
        deadline = time.monotonic() + 30
        while len(got) < N:
            try:
                m = ws.recv_json(max(0.01, deadline - time.monotonic()))
            except (AssertionError, Closed) as e:
                raise Dropped("the sender was dropped after %d of %d acks: %s" % (len(got), N, e))
            assert m.get("type") != "error", m
            if m.get("type") == "message":
                got.append(m)
        assert [m["text"] for m in got] == texts
        ids = [m["id"] for m in got]
        assert ids == list(range(ids[0], ids[0] + N))
        assert ws.is_open(2.0)
    finally:
        ws.close()

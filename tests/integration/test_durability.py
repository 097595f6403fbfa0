"""Durability (docs/protocol.md "Persistence"): a message is broadcast only
after its transaction committed, so `kill -9` mid-stream loses nothing
anybody saw and never lets an id be reused; the same with --fsync always; a
full disk makes each sender get `not_saved`, nobody receives the message, and
the server keeps working and recovers when space is freed."""

import os
import shutil
import signal
import tempfile
import threading
import time

import pytest

from rcutil import (connect_ws, connect_seq, join_seq, page_all_history, fetch_history,
                    raw_barrier, send_and_ack, send_burst, http_get, metrics, fill)


@pytest.fixture
def workdir():
    d = tempfile.mkdtemp(prefix="ringcast-it-durable-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


class Recorder(threading.Thread):
    """A client that records every message event until its connection ends."""

    def __init__(self, server):
        super().__init__(daemon=True)
        self.ws = connect_ws(server)
        self.welcome = connect_seq(self.ws)["welcome"]
        self.got = []
        self.ended = None

    def run(self):
        try:
            while True:
                m = self.ws.recv_json(20)
                if m.get("type") == "message":
                    self.got.append(m)
        except Exception as e:  # EOF/RST after the kill ends the recording
            self.ended = e
        finally:
            self.ws.close()


def key(m):
    return (m["id"], m["room"], m["from"], m["name"], m["text"], m["ts"])


def kill_mid_stream(server, total=1000, kill_after=400, window=64):
    """Three recorders listen while a sender keeps `window` messages in
    flight (as fast as the server acknowledges them). SIGKILL after
    `kill_after` acks. Returns (acks, recorders)."""
    recorders = [Recorder(server) for _ in range(3)]
    for r in recorders:
        r.start()
    sender = connect_ws(server)
    connect_seq(sender)
    acks = []
    sent = 0
    killed = False
    try:
        while sent < total and not killed:
            while sent < total and sent - len(acks) < window:
                sender.send_text("durable %04d" % sent)
                sent += 1
            m = sender.recv_type(("message", "error"), 5)
            assert m["type"] == "message", m
            acks.append(m)
            if len(acks) >= kill_after:
                server.proc.send_signal(signal.SIGKILL)
                killed = True
        # whatever acks were already on their way still count as seen
        try:
            while True:
                m = sender.recv_json(2)
                if m.get("type") == "message":
                    acks.append(m)
        except Exception:
            pass
    finally:
        sender.close()
    server.proc.wait(5)
    server.stop()  # reap; the kill -9 is on purpose
    for r in recorders:
        r.join(10)
        assert not r.is_alive(), "a recorder is still connected to a killed server"
    assert killed and len(acks) < total, "the stream finished before the kill (%d acks)" % len(acks)
    return acks, recorders


def check_after_restart(server, acks, recorders):
    seen = {}
    for m in acks + [m for r in recorders for m in r.got]:
        if m["id"] in seen:
            assert key(seen[m["id"]]) == key(m), "two different messages with id %d: %r %r" % (
                m["id"], seen[m["id"]], m)
        seen[m["id"]] = m
    assert len(seen) >= len(acks)
    for r in recorders:
        ids = [m["id"] for m in r.got]
        assert ids == sorted(set(ids)), "a recorder saw ids out of order or twice"
        assert len(r.got) >= len(acks) - 64, "a recorder fell far behind: %d vs %d acks" % (
            len(r.got), len(acks))
    with connect_ws(server) as ws:
        w = connect_seq(ws)["welcome"]
        history, _ = page_all_history(ws, "lobby", limit=200)
        hist = {m["id"]: m for m in history}
        assert [m["id"] for m in history] == sorted(hist), "history not in id order or duplicated"
        missing = [i for i in sorted(seen) if i not in hist]
        assert not missing, "%d messages that clients saw are gone after kill -9: ids %r" % (
            len(missing), missing[:20])
        changed = [(seen[i], hist[i]) for i in sorted(seen) if key(seen[i]) != key(hist[i])]
        assert not changed, "stored message differs from what clients saw: %r" % changed[:3]
        # a guest after the restart is not taken for an old author
        authors = {m["from"] for m in history}
        assert w["id"] not in authors, "new guest id %s reuses an old author's id" % w["id"]
        # new messages get ids above everything seen or stored: no id reused
        new = send_burst(ws, ["after restart %d" % i for i in range(3)])
        top = max(max(seen), max(hist))
        assert all(m["id"] > top for m in new), \
            "ids reused after kill -9: new %r, old max %d" % ([m["id"] for m in new], top)
        assert [m["id"] for m in new] == sorted(m["id"] for m in new)
        return len(seen), len(hist)


@pytest.mark.timeout_s(40)
def test_kill_9_mid_stream_loses_nothing_seen(server_factory, workdir):
    first = server_factory("--rate-limit", "0", workdir=workdir)
    acks, recorders = kill_mid_stream(first)
    second = server_factory("--rate-limit", "0", workdir=workdir)
    check_after_restart(second, acks, recorders)


@pytest.mark.timeout_s(40)
def test_kill_9_mid_stream_fsync_always(server_factory, workdir):
    db = os.path.join(workdir, "db", "always.db")
    first = server_factory("--rate-limit", "0", "--fsync", "always", "--db", db)
    acks, recorders = kill_mid_stream(first)
    second = server_factory("--rate-limit", "0", "--fsync", "always", "--db", db)
    check_after_restart(second, acks, recorders)


# ---------------------------------------------------------------- disk full
# (tiny_fs is in conftest.py, fill in rcutil.py: test_health.py fills one too)


BIG = 20000  # bytes of text per message: every commit needs new pages in the WAL


@pytest.mark.timeout_s(40)
def test_disk_full_not_saved_nobody_receives_server_survives(tiny_fs, server_factory):
    db = os.path.join(tiny_fs, "chat.db")
    server = server_factory("--rate-limit", "0", "--db", db)
    with connect_ws(server) as a, connect_ws(server) as b, connect_ws(server) as watcher:
        wa = connect_seq(a)["welcome"]
        connect_seq(b)
        connect_seq(watcher)
        ok = [send_and_ack(a, "before full %d " % i + "x" * 100) for i in range(3)]
        assert all(m["type"] == "message" for m in ok), ok
        last_ok = ok[-1]["id"]
        for _ in range(3):
            watcher.recv_type("message")
        time.sleep(0.3)  # let a timed checkpoint run
        filler = fill(tiny_fs)
        # both senders get not_saved for each of their messages
        refused = []
        for i in range(3):
            for who, ws in (("a", a), ("b", b)):
                text = "while full %s%d " % (who, i) + "y" * BIG
                ws.send_text(text)
                r = ws.recv_type(("message", "error"), 10,
                                 pred=lambda m: m["type"] == "error" or m["text"] == text)
                assert r["type"] == "error" and r["code"] == "not_saved", \
                    "message on a full disk: expected error not_saved, got %r" % (
                        {k: (v if k != "text" else v[:40]) for k, v in r.items()},)
                refused.append(text)
        # the server is up and everything that does not store a message works
        assert server.alive()
        assert http_get(server, "/").status == 200
        assert metrics(server)
        a.send_json({"type": "nick", "name": "Full"})
        assert a.recv_type("nick")["name"] == "Full"
        assert b.recv_type("nick")["name"] == "Full"
        a.send_json({"type": "rooms"})
        assert a.recv_type("rooms")["joined"] == ["lobby"]
        seq = join_seq(a, "side")
        assert seq["presence"]["count"] == 1
        h = fetch_history(a, "lobby")
        assert [m["text"] for m in h["messages"]] == [m["text"] for m in ok], \
            "history on a full disk holds other than the stored messages"
        with connect_ws(server) as late:
            seq = connect_seq(late)
            assert seq["welcome"]["id"] and seq["presence"]["count"] == 4
            assert [m["id"] for m in seq["history"]["messages"]] == [m["id"] for m in ok]
        assert a.is_open(1.0) and watcher.is_open(1.0)
        # free the space: messages go through again with higher ids
        os.unlink(filler)
        os.unlink(filler + "2")
        m = send_and_ack(a, "after space freed", room="lobby")
        assert m["type"] == "message", "still failing after space was freed: %r" % m
        assert m["id"] > last_ok, "id %d not above the last stored id %d" % (m["id"], last_ok)
        assert m["name"] == "Full" and m["from"] == wa["id"]
        # nobody ever received a refused message
        for ws in (watcher, b):
            seen = raw_barrier(ws, timeout=5)
            leaked = [e["text"][:30] for e in seen if e.get("type") == "message" and e["text"] in refused]
            assert not leaked, "refused messages were delivered: %r" % leaked
            assert [e["text"] for e in seen if e.get("type") == "message"
                    and not e["text"].startswith("barrier-")] == ["after space freed"], \
                [e.get("text", "")[:30] for e in seen if e.get("type") == "message"]
        # and none of them is in the history
        hist, _ = page_all_history(a, "lobby")
        assert not [x for x in hist if x["text"] in refused]
        ids = [x["id"] for x in hist]
        assert ids == sorted(set(ids))
    assert server.alive()


@pytest.mark.timeout_s(40)
def test_disk_full_fsync_always_then_recovers_across_restart(tiny_fs, server_factory):
    db = os.path.join(tiny_fs, "chat.db")
    server = server_factory("--rate-limit", "0", "--fsync", "always", "--db", db)
    with connect_ws(server) as a:
        connect_seq(a)
        ok = send_and_ack(a, "stored")
        assert ok["type"] == "message"
        time.sleep(0.3)
        filler = fill(tiny_fs)
        a.send_text("lost " + "z" * BIG)
        r = a.recv_type(("message", "error"), 10, pred=lambda m: m["type"] == "error" or
                        m["text"].startswith("lost"))
        assert r["type"] == "error" and r["code"] == "not_saved", r.get("code", r.get("type"))
        os.unlink(filler)
        os.unlink(filler + "2")
        after = send_and_ack(a, "stored again")
        assert after["type"] == "message" and after["id"] > ok["id"], after
    assert not server.stop()
    again = server_factory("--rate-limit", "0", "--db", db)
    with connect_ws(again) as ws:
        h = connect_seq(ws)["history"]
        assert [(m["id"], m["text"]) for m in h["messages"]] == \
            [(ok["id"], "stored"), (after["id"], "stored again")], h
        m = send_and_ack(ws, "third")
        assert m["id"] > after["id"]

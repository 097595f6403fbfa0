"""Flood control (docs/protocol.md "Flood control", README --rate-limit): a
per-connection token bucket, 20/s with bursts of 40 by default; a message over
the limit is dropped with `rate_limited`; more refusals in a row than the
burst size closes the connection with 1008; `--rate-limit R:B` and
`--rate-limit 0`."""

import math
import time

import pytest

from rawws import build_frame, OP_TEXT, OP_PING, OP_CLOSE, Closed
from rcutil import connect_ws, connect_seq, raw_barrier, drain


def burst(ws, texts):
    """All frames in one write."""
    ws.send_raw(b"".join(build_frame(OP_TEXT, t.encode()) for t in texts))


def collect(ws, n_expected, quiet=0.4, timeout=10):
    """Read replies (messages and errors) until n_expected arrived and then
    `quiet` seconds pass without more."""
    out = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            m = ws.recv_json(quiet if len(out) >= n_expected else max(0.05, deadline - time.monotonic()))
        except TimeoutError:
            if len(out) >= n_expected:
                return out
            continue
        if m.get("type") in ("message", "error"):
            out.append(m)
    raise AssertionError("only %d of %d replies: %r" % (len(out), n_expected, out[-3:]))


def frames_until_eof(ws, timeout=5):
    frames = []
    try:
        while True:
            frames.append(ws.recv_frame(timeout))
    except Closed:
        return frames, True
    except TimeoutError:
        return frames, False


def summarize(frames):
    msgs = [f.json() for f in frames if f.opcode == OP_TEXT]
    return ([m for m in msgs if m["type"] == "message"], [m for m in msgs if m["type"] == "error"],
            [f.close_code for f in frames if f.opcode == OP_CLOSE])


# ---------------------------------------------------------------- default 20:40


def test_default_burst_41st_rate_limited_not_broadcast(server):
    with connect_ws(server) as a, connect_ws(server) as b:
        connect_seq(a)
        connect_seq(b)
        texts = ["burst %02d" % i for i in range(41)]
        burst(a, texts)
        replies = collect(a, 41)
        msgs = [m for m in replies if m["type"] == "message"]
        errs = [m for m in replies if m["type"] == "error"]
        assert [m["text"] for m in msgs] == texts[:40], [m.get("text") for m in msgs][-3:]
        assert [e["code"] for e in errs] == ["rate_limited"], errs
        got = [b.recv_type("message")["text"] for _ in range(40)]
        assert got == texts[:40]
        seen = raw_barrier(b)   # b has its own bucket
        assert not [e for e in seen if e.get("text") == texts[40]], "the refused message was broadcast"
        assert a.is_open(1.0), "a single refusal closed the connection"


def test_allowed_again_after_waiting(server):
    with connect_ws(server) as a:
        connect_seq(a)
        t_burst = time.monotonic()
        burst(a, ["first %02d" % i for i in range(41)])
        r = collect(a, 41, quiet=0.05)
        t_refused = time.monotonic()
        assert [m["type"] for m in r].count("error") == 1
        time.sleep(1.0)
        t_second = time.monotonic()
        burst(a, ["second %02d" % i for i in range(40)])
        r = collect(a, 40)
        allowed = [m for m in r if m["type"] == "message"]
        refused = [m for m in r if m["type"] == "error"]
        # 20 tokens a second since the bucket ran dry (between t_burst and t_refused)
        lo = math.floor(20 * (t_second - t_refused)) - 1
        hi = math.ceil(20 * (t_second - t_burst)) + 1
        assert lo <= len(allowed) <= hi, "after %.2fs, %d allowed (expected %d..%d at 20/s)" % (
            t_second - t_refused, len(allowed), lo, hi)
        assert len(allowed) < 40 and refused and all(e["code"] == "rate_limited" for e in refused)
        assert [m["text"] for m in allowed] == ["second %02d" % i for i in range(len(allowed))], \
            "the allowed ones are not the first of the burst"


def test_commands_count_too(server):
    with connect_ws(server) as a:
        connect_seq(a)
        a.send_raw(b"".join(build_frame(OP_TEXT, b'{"type":"rooms"}') for _ in range(41)))
        replies = []
        while len(replies) < 41:
            m = a.recv_type(("rooms", "error"), 5)
            replies.append(m)
        assert [m["type"] for m in replies] == ["rooms"] * 40 + ["error"], \
            [m["type"] for m in replies][-3:]
        assert replies[-1]["code"] == "rate_limited"


def test_control_frames_count_too(server):
    # "counting every frame it sends": 45 pings drain the 40-token bucket, so
    # a chat message right after them is over the limit.
    with connect_ws(server) as a, connect_ws(server) as b:
        connect_seq(a)
        connect_seq(b)
        a.send_raw(b"".join(build_frame(OP_PING, b"p%d" % i) for i in range(45))
                   + build_frame(OP_TEXT, b"after 45 pings"))
        r = a.recv_type(("message", "error"), 5)
        assert r["type"] == "error" and r["code"] == "rate_limited", \
            "45 pings then a message: the message was accepted (%r); pings are not counted" % r


def test_buckets_are_per_connection(server):
    with connect_ws(server) as a, connect_ws(server) as b:
        connect_seq(a)
        connect_seq(b)
        burst(a, ["a%02d" % i for i in range(45)])
        burst(b, ["b%02d" % i for i in range(40)])
        rb = collect(b, 40 + 40)   # its own 40 and a's 40
        assert not [m for m in rb if m["type"] == "error"], rb
        assert sorted(m["text"] for m in rb if m["text"].startswith("b")) == ["b%02d" % i for i in range(40)]


def test_flooding_client_closed_1008(server):
    with connect_ws(server) as flooder, connect_ws(server) as b:
        wf = connect_seq(flooder)["welcome"]
        connect_seq(b)
        burst(flooder, ["flood %03d" % i for i in range(200)])
        frames, eof = frames_until_eof(flooder)
        msgs, errs, closes = summarize(frames)
        assert closes == [1008], "expected close 1008, got %r (%d messages, %d errors)" % (
            closes, len(msgs), len(errs))
        assert eof, "TCP not closed after the 1008"
        # its own copies may not have been committed before the close: at most 40
        assert [m["text"] for m in msgs] == ["flood %03d" % i for i in range(len(msgs))]
        assert len(msgs) <= 40, len(msgs)
        assert 40 <= len(errs) <= 41 and all(e["code"] == "rate_limited" for e in errs), len(errs)
        # the 40 allowed messages still reach the others (the leave may come
        # first: it is not persisted, the messages wait for their commit)
        got, left = [], False
        deadline = time.monotonic() + 5
        while (len(got) < 40 or not left) and time.monotonic() < deadline:
            m = b.recv_type(("message", "leave"), 5)
            if m["type"] == "leave":
                assert m["user"]["id"] == wf["id"]
                left = True
            else:
                got.append(m["text"])
        assert left, "no leave event for the closed flooder"
        assert got == ["flood %03d" % i for i in range(40)], got[-3:]
        assert not [m for m in drain(b, 0.3) if m.get("type") == "message"]
        assert server.alive()


def test_exactly_burst_refusals_in_a_row_not_closed(server):
    with connect_ws(server) as a:
        connect_seq(a)
        burst(a, ["x%02d" % i for i in range(80)])   # 40 allowed, 40 refused in a row
        r = collect(a, 80)
        assert sum(1 for m in r if m["type"] == "error") == 40
        assert a.is_open(1.0), "closed after exactly burst-size refusals (the limit is more than that)"


# ---------------------------------------------------------------- custom and off


@pytest.mark.server_args("--rate-limit", "5:5")
def test_custom_5_per_second_burst_5(server):
    with connect_ws(server) as a:
        connect_seq(a)
        burst(a, ["c%d" % i for i in range(6)])
        r = collect(a, 6)
        # (an error is immediate, an ack waits for the commit: order may differ)
        assert [m["text"] for m in r if m["type"] == "message"] == ["c%d" % i for i in range(5)], r
        assert [m["code"] for m in r if m["type"] == "error"] == ["rate_limited"], r
        time.sleep(1.0)   # about 5 tokens
        burst(a, ["d%d" % i for i in range(8)])
        r = collect(a, 8)
        allowed = sum(1 for m in r if m["type"] == "message")
        assert 4 <= allowed <= 6, "%d allowed a second later at 5/s" % allowed
    with connect_ws(server) as f:
        connect_seq(f)
        burst(f, ["e%d" % i for i in range(11)])     # 5 allowed + 6 refused in a row
        frames, eof = frames_until_eof(f)
        msgs, errs, closes = summarize(frames)
        assert (closes, eof) == ([1008], True), (len(msgs), len(errs), closes, eof)
        assert len(errs) in (5, 6) and len(msgs) <= 5, (len(msgs), len(errs))
    with connect_ws(server) as g:
        connect_seq(g)
        burst(g, ["g%d" % i for i in range(10)])     # 5 refused in a row: still open
        collect(g, 10)
        assert g.is_open(1.0)


@pytest.mark.server_args("--rate-limit", "5")
def test_rate_without_burst(server):
    # R without :B still limits: a 30-message burst does not all get through
    with connect_ws(server) as a, connect_ws(server) as b:
        connect_seq(a)
        connect_seq(b)
        burst(a, ["r%02d" % i for i in range(30)])
        frames, _ = frames_until_eof(a, timeout=1.0)
        msgs, errs, closes = summarize(frames)
        assert errs and all(e["code"] == "rate_limited" for e in errs), (len(msgs), errs[:2])
        got = [m["text"] for m in drain(b, 0.5) if m.get("type") == "message"]
        assert 1 <= len(got) < 30, "--rate-limit 5 let %d of a 30-message burst through" % len(got)
        assert got == ["r%02d" % i for i in range(len(got))]


@pytest.mark.server_args("--rate-limit", "0")
def test_rate_limit_0_unlimited(server):
    with connect_ws(server) as a, connect_ws(server) as b:
        connect_seq(a)
        connect_seq(b)
        texts = ["u%04d" % i for i in range(1000)]
        burst(a, texts)
        own = []
        while len(own) < 1000:
            m = a.recv_type(("message", "error"), 10)
            assert m["type"] == "message", m
            own.append(m)
        got = [b.recv_type("message", 10) for _ in range(1000)]
        assert [m["text"] for m in own] == texts
        assert [m["text"] for m in got] == texts
        assert [m["id"] for m in got] == list(range(1, 1001))
        assert a.is_open(1.0)

"""WebSocket framing (RFC 6455 section 5) from a raw client: data frames,
fragmentation, UTF-8, size limits, control frames and protocol violations.
After each violation the server must send the right close code and close TCP."""

import json
import time

import pytest

from rawws import (RawWS, OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG,
                   build_frame)


@pytest.fixture
def ws(server):
    c = RawWS.connect(server.host, server.port, "/ws")
    c.welcome()
    yield c
    c.close()


def own_message(ws, timeout=5):
    return ws.recv_type("message", timeout)


# ---------------------------------------------------------------- data frames


def test_text_frame_broadcast_back(ws):
    ws.send_text("hello raw")
    m = own_message(ws)
    assert m["text"] == "hello raw"


def test_binary_1003(ws):
    ws.send_frame(OP_BINARY, b"\x00\x01\x02")
    ws.expect_close(1003)


def test_binary_first_fragment_1003(ws):
    ws.send_frame(OP_BINARY, b"abc", fin=False)
    ws.expect_close(1003)


@pytest.mark.parametrize("payload", [
    b"\xff",
    b"abc\xfe",
    b"\xc3\x28",              # invalid at its 2nd byte
    b"\xe2\x28\xa1",          # invalid at its 2nd byte
    b"\xed\xa0\x80",          # UTF-16 surrogate
    b"\xc0\xaf",              # overlong '/'
    b"\xe0\x80\xaf",          # overlong
    b"\xf4\x90\x80\x80",      # above U+10FFFF
    b"\xf8\x88\x80\x80\x80",  # 5-byte form
    b"ok\xe2\x82",            # truncated at the end of the message
], ids=lambda b: b.hex())
def test_invalid_utf8_1007(ws, payload):
    ws.send_frame(OP_TEXT, payload)
    ws.expect_close(1007)


def test_invalid_utf8_split_across_fragments_1007(ws):
    ws.send_frame(OP_TEXT, b"ab\xe2\x82", fin=False)   # valid so far
    ws.send_frame(OP_CONT, b"\x28cd", fin=True)        # ...but 0x28 cannot continue it
    ws.expect_close(1007)


def test_invalid_utf8_truncated_across_fragments_1007(ws):
    ws.send_frame(OP_TEXT, b"ab\xf0\x9f", fin=False)
    ws.send_frame(OP_CONT, b"\x98", fin=True)          # message ends mid-character
    ws.expect_close(1007)


def test_invalid_utf8_fails_fast_in_first_fragment(ws):
    # The message is never finished: the server must not wait for its end,
    # the 2nd byte of \xc3\x28 already makes it invalid.
    ws.send_frame(OP_TEXT, b"hello \xc3\x28 world", fin=False)
    ws.expect_close(1007, timeout=3)


def test_valid_utf8_split_across_fragments(ws):
    euro = "€".encode()  # e2 82 ac
    ws.send_frame(OP_TEXT, b"x" + euro[:1], fin=False)
    ws.send_frame(OP_CONT, euro[1:2], fin=False)
    ws.send_frame(OP_CONT, euro[2:] + "y😀".encode(), fin=True)
    assert own_message(ws)["text"] == "x€y😀"


def test_utf8_state_kept_across_interleaved_control_frames(ws):
    smile = "😀".encode()  # f0 9f 98 80
    ws.send_frame(OP_TEXT, b"<" + smile[:2], fin=False)
    ws.send_frame(OP_PING, b"between")
    ws.send_frame(OP_CONT, smile[2:3], fin=False)
    ws.send_frame(OP_PONG, b"unsolicited")
    ws.send_frame(OP_CONT, smile[3:] + b">", fin=True)
    assert own_message(ws)["text"] == "<😀>"


def test_fragmented_with_empty_fragments(ws):
    ws.send_frame(OP_TEXT, b"", fin=False)
    ws.send_frame(OP_CONT, b"", fin=False)
    ws.send_frame(OP_CONT, b"hi", fin=False)
    ws.send_frame(OP_CONT, b"", fin=True)
    assert own_message(ws)["text"] == "hi"


@pytest.mark.server_args("--rate-limit", "0")  # flood control off: these send bursts
def test_several_frames_in_one_write(ws):
    data = b"".join(build_frame(OP_TEXT, ("m%d" % i).encode()) for i in range(20))
    ws.send_raw(data)
    got = [own_message(ws)["text"] for _ in range(20)]
    assert got == ["m%d" % i for i in range(20)]


def test_message_trickled_one_byte_at_a_time(ws):
    text = "trickle ✓ " + "x" * 130  # > 125 bytes: 16-bit length form
    ws.send_frame(OP_TEXT, text.encode(), pieces=1, delay=0.002)
    assert own_message(ws)["text"] == text


def test_fragmented_message_trickled(ws):
    ws.send_frame(OP_TEXT, "frag-".encode(), fin=False, pieces=1, delay=0.002)
    ws.send_frame(OP_PING, b"mid", pieces=1, delay=0.002)
    ws.send_frame(OP_CONT, "ment".encode(), fin=True, pieces=1, delay=0.002)
    pongs = []
    while True:
        op, payload = ws.recv_message(on_control=pongs.append)
        m = json.loads(payload)
        if m["type"] == "message":
            break
    assert m["text"] == "frag-ment"
    assert [p.payload for p in pongs if p.opcode == OP_PONG] == [b"mid"]


# ---------------------------------------------------------------- size limit


@pytest.mark.server_args("--max-message", "1024")
def test_exactly_max_message_accepted(ws):
    ws.send_text("a" * 1024)
    assert own_message(ws)["text"] == "a" * 1024


@pytest.mark.server_args("--max-message", "1024")
def test_over_max_message_1009(ws):
    ws.send_text("a" * 1025)
    ws.expect_close(1009)


@pytest.mark.server_args("--max-message", "1024")
def test_fragmented_over_max_message_1009(ws):
    ws.send_frame(OP_TEXT, b"a" * 600, fin=False)
    ws.send_frame(OP_CONT, b"a" * 600, fin=True)
    ws.expect_close(1009)


@pytest.mark.server_args("--max-message", "1024")
def test_fragmented_exactly_max_accepted(ws):
    ws.send_frame(OP_TEXT, b"b" * 512, fin=False)
    ws.send_frame(OP_CONT, b"b" * 512, fin=True)
    assert own_message(ws)["text"] == "b" * 1024


@pytest.mark.server_args("--max-message", "1024")
def test_declared_length_over_max_closed_without_payload(ws):
    # Only the header (declaring 10 MB) and a few bytes: the server must not
    # wait for (or buffer) the payload before closing with 1009.
    hdr = build_frame(OP_TEXT, b"a" * 16, length=10_000_000)
    ws.send_raw(hdr)
    ws.expect_close(1009, timeout=3)


def test_default_max_message_65536_64bit_length(ws):
    text = "z" * 65536  # needs the 64-bit length form
    ws.send_frame(OP_TEXT, text.encode(), length_form=64)
    m = own_message(ws, timeout=10)
    assert m["text"] == text


def test_default_max_message_65537_1009(ws):
    ws.send_text("z" * 65537)
    ws.expect_close(1009)


def test_64bit_length_with_msb_set(ws):
    hdr = bytearray(build_frame(OP_TEXT, b"", length=0, length_form=64))
    hdr[2] |= 0x80  # most significant bit of the 64-bit length must be 0
    ws.send_raw(bytes(hdr))
    ws.expect_close(1002, timeout=3)


# ---------------------------------------------------------------- violations → 1002


def test_unmasked_frame_1002(ws):
    ws.send_frame(OP_TEXT, b"not masked", mask=False)
    ws.expect_close(1002)


def test_unmasked_ping_1002(ws):
    ws.send_frame(OP_PING, b"x", mask=False)
    ws.expect_close(1002)


@pytest.mark.parametrize("rsv", [4, 2, 1], ids=["RSV1", "RSV2", "RSV3"])
def test_rsv_bits_1002(ws, rsv):
    ws.send_frame(OP_TEXT, b"hi", rsv=rsv)
    ws.expect_close(1002)


def test_rsv1_on_ping_1002(ws):
    ws.send_frame(OP_PING, b"hi", rsv=4)
    ws.expect_close(1002)


@pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF])
def test_reserved_opcode_1002(ws, opcode):
    ws.send_frame(opcode, b"x")
    ws.expect_close(1002)


def test_ping_126_bytes_1002(ws):
    ws.send_frame(OP_PING, b"p" * 126)
    ws.expect_close(1002)


def test_close_126_bytes_1002(ws):
    ws.send_frame(OP_CLOSE, b"\x03\xe8" + b"r" * 124)
    ws.expect_close(1002)


def test_fragmented_ping_1002(ws):
    ws.send_frame(OP_PING, b"abc", fin=False)
    ws.expect_close(1002)


def test_fragmented_pong_1002(ws):
    ws.send_frame(OP_PONG, b"abc", fin=False)
    ws.expect_close(1002)


def test_continuation_without_start_1002(ws):
    ws.send_frame(OP_CONT, b"orphan", fin=True)
    ws.expect_close(1002)


def test_continuation_after_finished_message_1002(ws):
    ws.send_frame(OP_TEXT, b"done", fin=True)
    ws.send_frame(OP_CONT, b"late", fin=True)
    ws.expect_close(1002)


def test_new_text_inside_fragmented_message_1002(ws):
    ws.send_frame(OP_TEXT, b"part1", fin=False)
    ws.send_frame(OP_TEXT, b"again", fin=True)
    ws.expect_close(1002)


def test_binary_inside_fragmented_text_1002(ws):
    ws.send_frame(OP_TEXT, b"part1", fin=False)
    ws.send_frame(OP_BINARY, b"again", fin=True)
    f = ws.recv_close()
    assert f.close_code == 1002, f


def test_violation_closes_tcp_without_waiting_for_reply(server):
    # default --close-timeout is 5 s: the server must not wait for our close
    with RawWS.connect(server.host, server.port) as ws:
        ws.welcome()
        ws.send_frame(OP_TEXT, b"x", rsv=4)
        t0 = time.monotonic()
        ws.expect_close(1002, reply=False, timeout=2, eof_timeout=1.5)
        assert time.monotonic() - t0 < 1.5


def test_violation_does_not_disturb_others(server):
    a = RawWS.connect(server.host, server.port)
    b = RawWS.connect(server.host, server.port)
    with a, b:
        a.welcome()
        b.welcome()
        b.send_frame(OP_TEXT, b"x", mask=False)
        b.expect_close(1002)
        a.send_text("still here")
        assert a.recv_type("message")["text"] == "still here"


# ---------------------------------------------------------------- ping / pong


@pytest.mark.parametrize("payload", [b"", b"hello", bytes(range(125)), b"\xff\x00\xfe"],
                         ids=["empty", "text", "125-bytes", "binary"])
def test_ping_pong_same_payload(ws, payload):
    ws.send_frame(OP_PING, payload)
    deadline = time.monotonic() + 3
    while True:
        f = ws.recv_frame(deadline=deadline)
        if f.opcode == OP_PONG:
            break
    assert f.payload == payload


def test_ping_trickled(ws):
    ws.send_frame(OP_PING, b"slow ping", pieces=1, delay=0.003)
    f = ws.recv_frame(3)
    while f.opcode != OP_PONG:
        f = ws.recv_frame(3)
    assert f.payload == b"slow ping"


@pytest.mark.server_args("--rate-limit", "0")  # flood control off: these send bursts
def test_many_pings_answered_in_order(ws):
    ws.send_raw(b"".join(build_frame(OP_PING, b"p%d" % i) for i in range(50)))
    got = []
    deadline = time.monotonic() + 5
    while len(got) < 50:
        f = ws.recv_frame(deadline=deadline)
        if f.opcode == OP_PONG:
            got.append(f.payload)
    assert got == [b"p%d" % i for i in range(50)]


def test_unsolicited_pong_ignored(ws):
    ws.send_frame(OP_PONG, b"unsolicited")
    ws.send_text("after pong")
    assert own_message(ws)["text"] == "after pong"


def test_ping_interleaved_in_fragmented_message(server):
    other = RawWS.connect(server.host, server.port)
    ws = RawWS.connect(server.host, server.port)
    with other, ws:
        other.welcome()
        ws.welcome()
        ws.send_frame(OP_TEXT, b"Hello, ", fin=False)
        ws.send_frame(OP_PING, b"in-between")
        ws.send_frame(OP_CONT, b"fragmented ", fin=False)
        ws.send_frame(OP_PONG, b"ignored")
        ws.send_frame(OP_CONT, b"world", fin=True)
        controls = []
        while True:
            op, payload = ws.recv_message(on_control=controls.append)
            m = json.loads(payload)
            if m["type"] == "message":
                break
        assert m["text"] == "Hello, fragmented world"
        assert [c.payload for c in controls if c.opcode == OP_PONG] == [b"in-between"]
        assert other.recv_type("message")["text"] == "Hello, fragmented world"


# ---------------------------------------------------------------- splits and buffer edges


@pytest.mark.parametrize("prefix", [0, 1, 2, 3])
def test_multibyte_chars_across_receive_buffers(ws, prefix):
    # 3-byte and 4-byte characters over ~12 KB: whatever the server's receive
    # chunk size, some characters straddle chunk boundaries.
    text = "a" * prefix + ("€" * 1500) + ("😀" * 1500)
    ws.send_text(text)
    assert own_message(ws, timeout=5)["text"] == text


@pytest.mark.server_args("--rate-limit", "0")  # flood control off: these send bursts
def test_random_splits_of_a_frame_stream(ws):
    import random
    rnd = random.Random(1234)
    texts = ["short", "ü" * 70, "x" * 300, "€" * 5000, "end"]
    stream = b"".join(build_frame(OP_TEXT, t.encode()) for t in texts)
    for trial in range(5):
        cuts = sorted(rnd.sample(range(1, len(stream)), 12))
        ws.send_raw(stream, pieces=cuts, delay=0.002)
        got = [own_message(ws)["text"] for _ in texts]
        assert got == texts, "trial %d cuts %r" % (trial, cuts)


@pytest.mark.server_args("--rate-limit", "0")  # flood control off: these send bursts
def test_many_tiny_fragments(ws):
    text = "fragmented into single bytes ✓"
    data = text.encode()
    frames = [build_frame(OP_TEXT, data[:1], fin=False)]
    frames += [build_frame(OP_CONT, data[i:i + 1], fin=False) for i in range(1, len(data) - 1)]
    frames.append(build_frame(OP_CONT, data[-1:], fin=True))
    ws.send_raw(b"".join(frames))
    assert own_message(ws)["text"] == text


def test_ping_inside_large_fragmented_message(ws):
    part = "y" * 20000
    ws.send_frame(OP_TEXT, part.encode(), fin=False)
    ws.send_frame(OP_PING, b"big")
    ws.send_frame(OP_CONT, part.encode(), fin=True)
    pongs = []
    while True:
        op, payload = ws.recv_message(on_control=pongs.append)
        m = json.loads(payload)
        if m["type"] == "message":
            break
    assert m["text"] == part * 2
    assert [p.payload for p in pongs if p.opcode == OP_PONG] == [b"big"]

"""permessage-deflate (RFC 7692): negotiation, compressed messages both
ways, and every way a compressed message can be wrong (docs/protocol.md,
"Compression")."""

import json

import pytest

from rawws import (RawWS, OP_CONT, OP_TEXT, OP_PING, deflate_message)
from rcutil import metrics, poll_metrics, run_briefly
from wsutil import connect, join, recv_type, run

OFFER = ("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits")
ANSWER = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"


def raw(server, offer=OFFER, path="/"):
    return RawWS.connect(server.host, server.port, path, headers=[offer] if offer else None)


def extensions(ws):
    return ws.response.header("Sec-WebSocket-Extensions")


def own_message(ws, text, timeout=5.0):
    """Our own message's event, as (event, payload length, compressed)."""
    while True:
        op, payload = ws.recv_message(timeout)
        m = json.loads(payload)
        if m.get("type") == "message" and m.get("text") == text:
            return m, len(payload), ws.last_compressed


def chat_text(n, tag="x"):
    """n bytes of text that compresses like chat does (words repeat)."""
    words = (tag + " the quick brown fox jumps over the lazy dog ") * (n // 40 + 1)
    return words[:n]


# ---------------------------------------------------------------- negotiation


def test_an_offer_gets_our_answer(server):
    with raw(server) as ws:
        assert extensions(ws) == ANSWER, ws.response
        assert ws.deflate
        ws.welcome()


def test_server_max_window_bits_is_answered_only_when_asked(server):
    with raw(server, ("Sec-WebSocket-Extensions", "permessage-deflate; server_max_window_bits=10")) as ws:
        assert extensions(ws) == ANSWER + "; server_max_window_bits=10"


def test_a_declined_offer_falls_to_the_next(server):
    offer = ("Sec-WebSocket-Extensions", "permessage-deflate; server_max_window_bits=7, permessage-deflate")
    with raw(server, offer) as ws:
        assert extensions(ws) == ANSWER


def test_offers_in_two_header_lines_read_as_one_list(server):
    with RawWS.connect(server.host, server.port, "/", headers=[
            ("Sec-WebSocket-Extensions", "permessage-deflate; x_unknown_param"),
            ("Sec-WebSocket-Extensions", "permessage-deflate; server_max_window_bits=12")]) as ws:
        assert extensions(ws) == ANSWER + "; server_max_window_bits=12"


def test_an_offer_we_cannot_honour_gets_no_extension(server):
    for offer in ("permessage-deflate; x_unknown_param", "permessage-deflate; server_max_window_bits=16",
                  "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
                  "permessage-deflate; client_max_window_bits=\"15"):  # malformed
        with raw(server, ("Sec-WebSocket-Extensions", offer)) as ws:
            assert extensions(ws) is None, (offer, ws.response)
            ws.welcome()  # and the connection works, uncompressed


@pytest.mark.server_args("--no-deflate")
def test_no_deflate_accepts_no_offer(server):
    async def main():
        ws = await connect(server)
        assert ws.extensions == []
        await ws.send(chat_text(2000))
        m = await recv_type(ws, "message")
        assert m["text"] == chat_text(2000)
        await ws.close()
    run(main())
    with raw(server) as ws:
        assert extensions(ws) is None


# ---------------------------------------------------------------- both ways


def test_python_client_compresses_both_ways(server):
    text = chat_text(4000)

    async def main():
        ws, _ = await join(server)
        assert [e.name for e in ws.extensions] == ["permessage-deflate"]
        await ws.send(text)
        m = await recv_type(ws, "message")
        assert m["text"] == text
        await ws.close()
    run(main())
    # it really went compressed: the server inflated our message and
    # compressed its event
    m = poll_metrics(server, lambda m: m.get("ringcast_ws_messages_inflated_total", 0) >= 1 and
                     m.get("ringcast_ws_deflate_sends_total", 0) >= 1)
    assert m.get("ringcast_ws_messages_inflated_total", 0) >= 1, m
    assert m.get("ringcast_ws_deflate_sends_total", 0) >= 1, m
    assert m["ringcast_ws_deflate_bytes_out_total"] < m["ringcast_ws_deflate_bytes_in_total"] / 3, m


def test_compressed_message_in_fragments(server):
    text = chat_text(3000)
    z = deflate_message(text)
    with raw(server) as ws:
        ws.welcome()
        third = len(z) // 3
        ws.send_frame(OP_TEXT, z[:third], fin=False, rsv=4)
        ws.send_frame(OP_PING, b"in between")
        ws.send_frame(OP_CONT, z[third:2 * third], fin=False)
        ws.send_frame(OP_CONT, z[2 * third:])
        m, _, compressed = own_message(ws, text)
        assert compressed


def test_the_rfc_hello_example_is_read(server):
    with raw(server) as ws:
        ws.welcome()
        ws.send_frame(OP_TEXT, bytes([0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]), rsv=4)
        m, length, compressed = own_message(ws, "Hello")
        assert not compressed and length < 256  # under the threshold: plain


def test_a_client_that_offers_nothing_gets_plain_frames(server):
    text = chat_text(5000)
    with raw(server, offer=None) as plain, raw(server) as sender:
        assert extensions(plain) is None
        plain.welcome()
        sender.welcome()
        sender.send_text(text)
        m, _, compressed = own_message(sender, text)
        assert compressed
        # RawWS refuses any RSV bit on a connection without the extension
        m, _, compressed = own_message(plain, text)
        assert not compressed


@pytest.mark.server_args("--deflate-threshold", "300", "--rate-limit", "0")
def test_threshold_boundary(server):
    """Payloads of exactly --deflate-threshold bytes go compressed, one byte
    fewer goes plain."""
    seen = {}
    with raw(server) as ws:
        ws.welcome()
        for n in range(120, 260):
            text = "t" * n
            ws.send_text(text)
            _, length, compressed = own_message(ws, text)
            seen[length] = compressed
    assert seen.get(299) is False and seen.get(300) is True, sorted(seen.items())[:5]
    for length, compressed in seen.items():
        assert compressed == (length >= 300), (length, compressed)


def test_window_asked_for_limits_what_goes_compressed(server):
    """server_max_window_bits=9: a message longer than 512 bytes could refer
    back further than the client's window, so it goes plain."""
    small, big = chat_text(300, "s"), chat_text(3000, "b")
    offer = ("Sec-WebSocket-Extensions", "permessage-deflate; server_max_window_bits=9")
    with raw(server, offer) as ws:
        ws.welcome()
        ws.send_text(small)
        _, length, compressed = own_message(ws, small)
        assert length <= 512 and compressed
        ws.send_text(big)
        _, length, compressed = own_message(ws, big)
        assert length > 512 and not compressed


def test_a_broadcast_reaches_deflate_and_plain_clients_alike(server):
    texts = [chat_text(1000 + 700 * i, str(i)) for i in range(3)]

    async def main():
        py, _ = await join(server)
        with raw(server) as z, raw(server, offer=None) as plain:
            z.welcome()
            plain.welcome()
            for t in texts:
                z.send_text(t)
            for t in texts:
                mz, _, cz = own_message(z, t)
                mp, _, cp = own_message(plain, t)
                mpy = await recv_type(py, "message", pred=lambda m: m["text"] == t)
                assert cz and not cp
                assert mz == mp == mpy
        await py.close()
    before = metrics(server)
    run(main())
    m = poll_metrics(server, lambda m: m["ringcast_ws_deflate_sends_total"] -
                     before["ringcast_ws_deflate_sends_total"] >= 6)
    sends = m["ringcast_ws_deflate_sends_total"] - before["ringcast_ws_deflate_sends_total"]
    frames = m["ringcast_ws_deflate_frames_total"] - before["ringcast_ws_deflate_frames_total"]
    assert sends >= 6, (sends, frames)
    # compressed once per edge per message, not once per recipient
    assert frames <= 3 * int(m["ringcast_edges"]), (sends, frames)


# one edge: the replay comes from the same remembered bufs the live messages went out in
@pytest.mark.server_args("--rate-limit", "0", "--threads", "1")
def test_a_replay_sends_the_same_compressed_frames(server):
    texts = [chat_text(2000, str(i)) for i in range(5)]
    # the sender stays: an empty room lets its recent history go (a replay
    # would then come from the database, in new bufs)
    with raw(server) as sender:
        sender.welcome()
        first = None
        for t in texts:
            sender.send_text(t)
            m, _, compressed = own_message(sender, t)
            assert compressed
            first = first or m["id"]
        built = poll_metrics(server, lambda m: m.get("ringcast_ws_deflate_frames_total", 0) >= 5)
        assert built["ringcast_ws_deflate_frames_total"] >= 5, built
        with raw(server, path="/?since=%d" % (first - 1)) as ws:
            for t in texts:
                m, _, compressed = own_message(ws, t)
                assert compressed
    after = poll_metrics(server, lambda m: m.get("ringcast_ws_deflate_sends_total", 0) >=
                         built["ringcast_ws_deflate_sends_total"] + 5)
    assert after["ringcast_ws_deflate_sends_total"] >= built["ringcast_ws_deflate_sends_total"] + 5, after
    # sent again, not compressed again
    assert after["ringcast_ws_deflate_frames_total"] == built["ringcast_ws_deflate_frames_total"], after


# ---------------------------------------------------------------- errors


def bystander_still_served(bystander, sender):
    """A bad connection disturbed no one: the others still talk."""
    assert bystander.is_open(2.0)
    sender.send_text("still here")
    own_message(bystander, "still here")


def expect_failure(server, send, code, offer=OFFER):
    with raw(server, offer=None) as bystander, raw(server) as sender, raw(server, offer) as bad:
        bystander.welcome()
        sender.welcome()
        bad.welcome()
        send(bad)
        bad.expect_close(code)
        bystander_still_served(bystander, sender)


def test_compressed_control_frame_is_1002(server):
    expect_failure(server, lambda ws: ws.send_frame(OP_PING, deflate_message("ping"), rsv=4), 1002)


def test_rsv1_on_a_continuation_is_1002(server):
    z = deflate_message(chat_text(500))

    def send(ws):
        ws.send_frame(OP_TEXT, z[:10], fin=False, rsv=4)
        ws.send_frame(OP_CONT, z[10:], rsv=4)
    expect_failure(server, send, 1002)


def test_rsv1_without_the_extension_is_1002(server):
    expect_failure(server, lambda ws: ws.send_frame(OP_TEXT, deflate_message("hi"), rsv=4), 1002, offer=None)


def test_bad_deflate_data_is_1007(server):
    expect_failure(server, lambda ws: ws.send_frame(OP_TEXT, b"\x07\x00 not deflate", rsv=4), 1007)


def test_inflated_text_that_is_not_utf8_is_1007(server):
    expect_failure(server, lambda ws: ws.send_frame(OP_TEXT, deflate_message(b"ok \xff\xfe"), rsv=4), 1007)


@pytest.mark.server_args("--max-message", "1000")
def test_a_small_message_inflating_past_max_message_is_1009(server):
    z = deflate_message("a" * 100000)
    assert len(z) < 1000
    expect_failure(server, lambda ws: ws.send_frame(OP_TEXT, z, rsv=4), 1009)


@pytest.mark.server_args("--max-message", "1000")
def test_a_message_inflating_to_exactly_max_message_is_read(server):
    text = "a" * 1000
    with raw(server) as ws:
        ws.welcome()
        ws.send_frame(OP_TEXT, deflate_message(text), rsv=4)
        own_message(ws, text)


# ---------------------------------------------------------------- flags


@pytest.mark.parametrize("value", ["abc", "-1", "1073741825"])
def test_a_bad_threshold_is_refused_at_start(value):
    p = run_briefly("--deflate-threshold", value)
    assert p.returncode == 2, p.stderr
    assert "deflate-threshold" in p.stderr, p.stderr


def test_help_names_the_flags():
    p = run_briefly("--help")
    assert p.returncode == 0
    assert "--deflate-threshold BYTES" in p.stdout and "--no-deflate" in p.stdout, p.stdout

"""Closing handshake (RFC 6455 sections 5.5.1, 7.4): echo of valid codes,
1002 for invalid codes / 1-byte payloads, 1007 for non-UTF-8 reasons, and the
server closing TCP after its close frame."""

import pytest

from rawws import RawWS, OP_CLOSE, OP_TEXT, build_frame, close_payload


@pytest.fixture
def ws(server):
    c = RawWS.connect(server.host, server.port, "/ws")
    c.welcome()
    yield c
    c.close()


def test_client_close_1000_echoed(ws):
    ws.send_close(1000, "bye")
    f = ws.recv_close(3)
    assert f.close_code == 1000, f
    ws.expect_eof(3)


@pytest.mark.parametrize("code", [1001, 1003, 1007, 1008, 1011, 3000, 3999, 4000, 4999])
def test_valid_codes_echoed(ws, code):
    ws.send_close(code, "reason")
    f = ws.recv_close(3)
    assert f.close_code == code, f
    ws.expect_eof(3)


def test_empty_close_answered(ws):
    ws.send_close()  # no payload: "no status received"
    f = ws.recv_close(3)
    assert f.close_code in (None, 1000), f   # 1005 must never be sent on the wire
    ws.expect_eof(3)


def test_close_with_max_reason_echoed(ws):
    ws.send_close(1000, "r" * 123)  # 125-byte payload, the control frame maximum
    assert ws.recv_close(3).close_code == 1000
    ws.expect_eof(3)


def test_close_trickled_byte_by_byte(ws):
    ws.send_close(1000, "slowly", pieces=1, delay=0.003)
    assert ws.recv_close(3).close_code == 1000
    ws.expect_eof(3)


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535])
def test_invalid_codes_1002(ws, code):
    ws.send_close(code)
    ws.expect_close(1002)


def test_one_byte_close_payload_1002(ws):
    ws.send_close(payload=b"\x03")
    ws.expect_close(1002)


@pytest.mark.parametrize("reason", [b"\xff", b"ok\xc3\x28", b"\xed\xa0\x80", b"trunc\xe2\x82"],
                         ids=lambda b: b.hex())
def test_close_reason_invalid_utf8_1007(ws, reason):
    ws.send_close(payload=close_payload(1000, reason))
    ws.expect_close(1007)


def test_close_reason_valid_utf8_ok(ws):
    ws.send_close(payload=close_payload(1000, "bye 👋 ü".encode()))
    assert ws.recv_close(3).close_code == 1000
    ws.expect_eof(3)


def test_close_during_fragmented_message(ws):
    # Control frames may be interleaved in a fragmented message: the close is
    # valid and must be echoed.
    ws.send_frame(OP_TEXT, b"unfinished", fin=False)
    ws.send_close(1000)
    assert ws.recv_close(3).close_code == 1000
    ws.expect_eof(3)


def test_data_after_close_not_broadcast(server):
    a = RawWS.connect(server.host, server.port)
    b = RawWS.connect(server.host, server.port)
    with a, b:
        a.welcome()
        b.welcome()
        # close then a text frame in the same write: the text must be ignored
        b.send_raw(b"".join([
            build_frame(OP_CLOSE, close_payload(1000)),
            build_frame(OP_TEXT, b"after-close"),
        ]))
        assert b.recv_close(3).close_code == 1000
        a.send_text("barrier")
        texts = []
        while True:
            m = a.recv_type("message")
            texts.append(m["text"])
            if m["text"] == "barrier":
                break
        assert "after-close" not in texts


def test_close_reported_as_leave_to_others(server):
    a = RawWS.connect(server.host, server.port)
    b = RawWS.connect(server.host, server.port)
    with a, b:
        a.welcome()
        wb = b.welcome()
        b.send_close(1000)
        b.recv_close(3)
        leave = a.recv_type("leave", 3)
        assert leave["user"]["id"] == wb["id"]
        assert leave["count"] == 1

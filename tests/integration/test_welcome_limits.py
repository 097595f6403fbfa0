"""The limits a client is told in `welcome` (docs/protocol.md "Server → client"):
`max_message` is --max-message, the very limit the server closes with 1009 over,
so the page can refuse a longer message itself and keep its text."""

import json

import pytest

from rawws import RawWS


def welcome_of(server, path="/ws"):
    ws = RawWS.connect(server.host, server.port, path)
    return ws, ws.welcome()


def message_frame(text):
    # What the page sends: {"type":"message","room":...,"text":...}.
    return json.dumps({"type": "message", "room": "lobby", "text": text},
                      ensure_ascii=False, separators=(",", ":"))


def test_welcome_tells_default_max_message(server):
    ws, w = welcome_of(server)
    try:
        assert w["max_message"] == 65536, w
    finally:
        ws.close()


@pytest.mark.server_args("--max-message", "2000")
def test_welcome_max_message_is_the_flag(server):
    ws, w = welcome_of(server, "/ws?room=dev")
    try:
        assert w["max_message"] == 2000, w
        assert isinstance(w["max_message"], int), w
    finally:
        ws.close()


@pytest.mark.server_args("--max-message", "2000")
def test_told_limit_is_the_enforced_limit(server):
    # A command frame of exactly max_message bytes is taken; one byte more closes 1009.
    at, w = welcome_of(server)
    limit = w["max_message"]
    over = None
    try:
        fill = "x" * (limit - len(message_frame("").encode()))
        assert len(message_frame(fill).encode()) == limit
        at.send_text(message_frame(fill))
        assert at.recv_type("message")["text"] == fill
        over, _ = welcome_of(server)
        over.send_text(message_frame(fill + "x"))
        over.expect_close(1009)
    finally:
        at.close()
        if over:
            over.close()


@pytest.mark.server_args("--threads", "2", "--max-message", "4096")
def test_every_edge_tells_the_same_limit(server):
    # Connections land on either edge thread: each one's chat is told the flag.
    seen = []
    for _ in range(6):
        ws, w = welcome_of(server)
        seen.append(w["max_message"])
        ws.close()
    assert seen == [4096] * 6, seen

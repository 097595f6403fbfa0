"""Names (docs/protocol.md "Names" and the `nick` command/event): trimming,
length in code points, refused characters, invisible-only names, the nick
event reaching each room mate exactly once, and later messages and presence
snapshots carrying the new name."""

import pytest

from rcutil import connect_ws, connect_seq, join_seq, raw_barrier, recv_error, send_and_ack


def nick(ws, name):
    """Send nick; returns the first nick or error event answering it."""
    ws.send_json({"type": "nick", "name": name})
    return ws.recv_type(("nick", "error"))


def current_name(ws):
    return send_and_ack(ws, "whoami-probe")["name"]


# ---------------------------------------------------------------- accepted names


@pytest.mark.parametrize("sent,stored", [
    ("alice", "alice"),
    ("  alice  ", "alice"),
    ("   spaced   name  ", "spaced   name"),
    ("x" * 32, "x" * 32),
    (" " + "y" * 32 + "  ", "y" * 32),                  # 34 before trimming, 32 after
    ("\u00e9" * 32, "\u00e9" * 32),                    # 32 code points, 64 bytes
    ("\U0001F600" * 32, "\U0001F600" * 32),            # 32 code points, 128 bytes
    ("a" + "\u0301" * 31, "a" + "\u0301" * 31),        # a visible letter with marks
    ("Zo\u00eb \u5f20\u4f1f", "Zo\u00eb \u5f20\u4f1f"),
    ("a\u200db", "a\u200db"),                          # zero-width joiner inside visible text
])
def test_name_accepted(server, sent, stored):
    with connect_ws(server) as a:
        w = connect_seq(a)["welcome"]
        ev = nick(a, sent)
        assert ev == {"type": "nick", "id": w["id"], "name": stored, "old": w["name"]}, ev
        assert current_name(a) == stored


# ---------------------------------------------------------------- refused names


BAD_NAMES = [
    ("empty", ""),
    ("spaces-only", "    "),
    ("33-ascii", "x" * 33),
    ("33-code-points-2-byte", "\u00e9" * 33),
    ("33-astral", "\U0001F600" * 33),
    ("33-with-marks", "a" + "\u0301" * 32),
    ("NUL", "a\x00b"),
    ("BEL", "a\x07b"),
    ("ESC", "a\x1bb"),
    ("LF-inside", "a\nb"),
    ("TAB-inside", "a\tb"),
    ("DEL", "a\x7fb"),
    ("C1-NEL", "a\x85b"),
    ("C1-CSI", "a\x9bb"),
    ("line-separator", "a\u2028b"),
    ("paragraph-separator", "a\u2029b"),
    ("RLO-override", "a\u202eb"),
    ("LRE-embedding", "a\u202ab"),
    ("PDF", "a\u202cb"),
    ("RLI-isolate", "a\u2067b"),
    ("PDI-isolate", "a\u2069b"),
    ("LRM-mark", "a\u200eb"),
    ("RLM-mark", "a\u200fb"),
    ("ALM-mark", "a\u061cb"),
    ("zero-width-space", "\u200b"),
    ("zero-width-mix", "\u200b\u200c\u200d\u2060\ufeff"),
    ("zero-width-padded", " \u200b \u200b "),
    ("hangul-filler", "\u3164"),
    ("hangul-choseong-filler", "\u115f"),
    ("halfwidth-hangul-filler", "\uffa0"),
    ("variation-selector-16", "\ufe0f"),
    ("variation-selector-256", "\U000E01EF"),
    ("combining-acute-only", "\u0301"),
    ("combining-marks-only", "\u0300\u0301\u0302"),
    ("soft-hyphen-only", "\u00ad"),
]


@pytest.mark.parametrize("name", [n for _, n in BAD_NAMES], ids=[i for i, _ in BAD_NAMES])
def test_name_refused(server, name):
    with connect_ws(server) as a, connect_ws(server) as b:
        w = connect_seq(a)["welcome"]
        connect_seq(b)
        ev = nick(a, name)
        assert ev["type"] == "error" and ev["code"] == "bad_name", \
            "nick %r: expected error bad_name, got %r" % (name, ev)
        # unchanged, and nobody was told about a rename
        assert current_name(a) == w["name"]
        seen = raw_barrier(b)
        assert not [e for e in seen if e.get("type") == "nick"], seen


# Names made only of combining marks (general category Mn/Me) outside the
# U+0300 block, and the Mongolian free variation selectors (Unicode property
# Variation_Selector), are invisible-only names the protocol refuses.
INVISIBLE_MARKS = [
    ("U+064B-arabic-fathatan", "\u064b"),
    ("U+0591-hebrew-accent", "\u0591"),
    ("U+3099-combining-kana-voiced-mark", "\u3099"),
    ("U+17B4-khmer-inherent-aq", "\u17b4"),
    ("U+0488-combining-enclosing", "\u0488"),
    ("U+180B-mongolian-variation-selector", "\u180b"),
]


@pytest.mark.parametrize("name", [n for _, n in INVISIBLE_MARKS], ids=[i for i, _ in INVISIBLE_MARKS])
def test_name_of_only_combining_marks_or_variation_selectors_refused(server, name):
    with connect_ws(server) as a:
        connect_seq(a)
        ev = nick(a, name)
        assert ev["type"] == "error" and ev.get("code") == "bad_name", \
            "a name made only of U+%04X (invisible) was accepted: %r" % (ord(name), ev)


@pytest.mark.parametrize("name", [42, None, ["alice"], {"n": "alice"}, True])
def test_non_string_name_refused(server, name):
    with connect_ws(server) as a:
        w = connect_seq(a)["welcome"]
        a.send_json({"type": "nick", "name": name})
        e = recv_error(a)
        assert e["code"] in ("bad_name", "bad_message"), e
        assert current_name(a) == w["name"]


# ---------------------------------------------------------------- the nick event


def test_nick_event_once_per_room_mate_even_sharing_two_rooms(server):
    with connect_ws(server) as a, connect_ws(server) as both, connect_ws(server) as lobby_only, \
            connect_ws(server, "/?room=dev") as dev_only, \
            connect_ws(server, "/?room=elsewhere") as stranger:
        wa = connect_seq(a)["welcome"]
        connect_seq(both)
        connect_seq(lobby_only)
        connect_seq(dev_only)
        connect_seq(stranger)
        join_seq(a, "dev")
        join_seq(both, "dev")
        ev = nick(a, "  Alice  ")
        expected = {"type": "nick", "id": wa["id"], "name": "Alice", "old": wa["name"]}
        assert ev == expected, ev
        for who, ws, n in (("sharer of two rooms", both, 1), ("lobby-only mate", lobby_only, 1),
                           ("dev-only mate", dev_only, 1), ("stranger", stranger, 0),
                           ("renamer itself", a, 0)):
            seen = raw_barrier(ws)
            nicks = [e for e in seen if e.get("type") == "nick"]
            assert nicks == [expected] * n, "%s got %d nick events (expected %d): %r" % (
                who, len(nicks), n, nicks)


def test_later_messages_and_presence_carry_new_name(server):
    with connect_ws(server) as a, connect_ws(server) as b:
        wa = connect_seq(a)["welcome"]
        connect_seq(b)
        m = send_and_ack(a, "before")
        assert m["name"] == wa["name"]
        assert b.recv_type("message")["name"] == wa["name"]
        assert nick(a, "Neo")["name"] == "Neo"
        b.recv_type("nick")
        m = send_and_ack(a, "after")
        assert (m["from"], m["name"]) == (wa["id"], "Neo"), m
        got = b.recv_type("message")
        assert (got["from"], got["name"], got["text"]) == (wa["id"], "Neo", "after"), got
        # messages to another room carry it too
        join_seq(a, "dev")
        assert send_and_ack(a, "in dev")["name"] == "Neo"
        # a newcomer's presence snapshot shows the new name
        with connect_ws(server) as c:
            p = connect_seq(c)["presence"]
            assert {"id": wa["id"], "name": "Neo"} in p["users"], p
        # a second rename: old is the previous new name
        ev = nick(a, "Trinity")
        assert ev == {"type": "nick", "id": wa["id"], "name": "Trinity", "old": "Neo"}, ev
        assert b.recv_type("nick") == ev


def test_rename_to_same_name_tells_only_you(server):
    with connect_ws(server) as a, connect_ws(server) as b:
        connect_seq(a)
        connect_seq(b)
        nick(a, "Same")
        b.recv_type("nick")
        ev = nick(a, " Same ")
        assert ev["type"] == "nick" and ev["name"] == "Same", ev
        seen = raw_barrier(b)
        assert not [e for e in seen if e.get("type") == "nick"], seen


def test_names_need_not_be_unique(server):
    with connect_ws(server) as a, connect_ws(server) as b:
        wa = connect_seq(a)["welcome"]
        wb = connect_seq(b)["welcome"]
        assert nick(a, "Twin")["name"] == "Twin"
        assert nick(b, "Twin")["name"] == "Twin"
        ma = send_and_ack(a, "from a")
        mb = send_and_ack(b, "from b")
        assert (ma["name"], mb["name"]) == ("Twin", "Twin")
        assert ma["from"] == wa["id"] and mb["from"] == wb["id"] and wa["id"] != wb["id"]

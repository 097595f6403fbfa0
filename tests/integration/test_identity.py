"""Who you are across connections (docs/protocol.md "Sign-in" and "Guests"):
a signed-in session's `refresh` and its end at the token's expiry (4002);
a guest's token in `welcome` bringing back its id and name on a reconnect,
refused (a new identity, never someone else's) when forged, altered or from
another process; and --rejoin-grace: a guest reconnecting within it is
neither a leave nor a join to the others, who hear the leave once it passes.
Every test runs with RINGCAST_THREADS=1 and =2 (a reconnect may land on the
other edge)."""

import base64
import json
import time

import pytest

from rcutil import connect_ws, connect_seq, http_get, make_jwt, recv_error, send_and_ack

SECRET = "a sign-in secret of at least 32 bytes, for tests"
SIGNED_IN = ("--jwt-secret", SECRET, "--jwt-leeway", "0")


def now():
    return int(time.time())


def token(sub="42", name="Alice", ttl=3600):
    return make_jwt(SECRET, {"sub": sub, "name": name, "exp": now() + ttl})


def recv_close(ws, timeout):
    """The server's close frame: (code, reason); answered, so it is clean."""
    f = ws.recv_close(timeout=timeout)
    ws.send_close(f.close_code)
    return f.close_code, f.close_reason


# ---------------------------------------------------------------- signed in: refresh and expiry


@pytest.mark.server_args(*SIGNED_IN)
def test_expiry_without_refresh_closes_4002(server):
    with connect_ws(server, "/?token=" + token(ttl=2)) as ws:
        connect_seq(ws)
        assert send_and_ack(ws, "before the end")["text"] == "before the end"
        start = time.monotonic()
        code, reason = recv_close(ws, timeout=6)
        assert (code, reason) == (4002, "token expired")
        assert time.monotonic() - start < 4, "closed long after exp"


@pytest.mark.server_args(*SIGNED_IN)
def test_refresh_extends_the_session(server):
    with connect_ws(server, "/?token=" + token(ttl=2)) as ws:
        connect_seq(ws)
        ws.send_json({"type": "refresh", "token": token(ttl=60)})
        assert ws.recv_type(("refreshed", "error"))["type"] == "refreshed"
        old_exp = now() + 2
        while time.time() < old_exp + 1.5:  # each ack says the session lives, past the old exp
            m = send_and_ack(ws, "still here")
            assert m["type"] == "message", m
            time.sleep(0.3)  # pacing, under the flood limit
        assert send_and_ack(ws, "after the old exp")["name"] == "Alice"


@pytest.mark.server_args(*SIGNED_IN)
def test_bad_refresh_is_an_error_and_the_session_ends_at_its_expiry(server):
    with connect_ws(server, "/?token=" + token(ttl=3)) as ws:
        connect_seq(ws)
        for bad, why in ((make_jwt("another secret" * 4, {"sub": "42", "exp": now() + 60}), "bad signature"),
                         (token(sub="43", name="Mallory", ttl=60), "token is for another user"),
                         (make_jwt(SECRET, {"sub": "42", "exp": now() - 5}), "token expired"),
                         ("not-a-token", "malformed token")):
            ws.send_json({"type": "refresh", "token": bad})
            e = recv_error(ws)
            assert (e["code"], e["message"]) == ("bad_token", why), e
            assert send_and_ack(ws, "kept")["name"] == "Alice"  # the session goes on
        ws.send_json({"type": "refresh"})
        assert recv_error(ws)["code"] == "bad_message"
        assert recv_close(ws, timeout=6) == (4002, "token expired")


@pytest.mark.server_args(*SIGNED_IN, "--login-url", "https://login.example.com/sso?app=chat")
def test_login_redirects_to_login_url(server):
    r = http_get(server, "/login")
    assert r.status == 302, r
    assert r.header("Location") == "https://login.example.com/sso?app=chat"


@pytest.mark.server_args(*SIGNED_IN)
def test_login_without_login_url_is_404(server):
    assert http_get(server, "/login").status == 404


# ---------------------------------------------------------------- guests: the token


def welcome_of(server, path="/"):
    with connect_ws(server, path) as ws:
        return connect_seq(ws)["welcome"]


def test_guest_token_brings_back_id_and_name(server):
    with connect_ws(server, "/") as ws:
        w = connect_seq(ws)["welcome"]
        assert w["signed_in"] is False and w["guest"], w
        ws.send_json({"type": "nick", "name": 'Zoë "the" \\ one'})
        assert ws.recv_type("nick")["name"] == 'Zoë "the" \\ one'
        renamed = ws.recv_type("guest")["guest"]  # the old token would bring back the old name
    assert "resumed" not in w
    again = welcome_of(server, "/?guest=" + renamed)
    assert (again["id"], again["name"], again["resumed"]) == (w["id"], 'Zoë "the" \\ one', True), again
    plain = welcome_of(server, "/?guest=" + w["guest"])
    assert (plain["id"], plain["name"]) == (w["id"], "User " + w["id"]), plain
    with connect_ws(server, "/?guest=" + renamed) as ws:
        connect_seq(ws)
        m = send_and_ack(ws, "mine")
        assert (m["from"], m["name"]) == (w["id"], 'Zoë "the" \\ one'), m


def b64(obj):
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def test_forged_or_altered_guest_token_gets_a_new_identity(server):
    victim = welcome_of(server)
    mine = welcome_of(server)
    h, p, s = mine["guest"].split(".")
    flipped = s[:-2] + ("A" if s[-2] != "A" else "B") + s[-1]
    forged = {
        "payload swapped to the victim's id": "%s.%s.%s" % (h, b64({"sub": "guest:" + victim["id"]}), s),
        "signature changed": "%s.%s.%s" % (h, p, flipped),
        "signed with a guessed key": make_jwt("x" * 32, {"sub": "guest:" + victim["id"]}),
        "unsigned": make_jwt("", {"sub": "guest:" + victim["id"]}, header={"alg": "none"}, sign=False),
        "garbage": "not-a-token",
    }
    seen = {victim["id"], mine["id"]}
    for what, t in forged.items():
        w = welcome_of(server, "/?guest=" + t)
        assert w["id"] not in seen, "%s: got id %s" % (what, w["id"])
        assert w["name"] == "User " + w["id"] and "resumed" not in w, (what, w)
        seen.add(w["id"])
    # the real one still works
    assert welcome_of(server, "/?guest=" + mine["guest"])["id"] == mine["id"]


def test_guest_token_of_another_process_is_refused(server_factory):
    first = server_factory("--no-persist")
    w = welcome_of(first)
    first.stop()
    second = server_factory("--no-persist")
    fresh = welcome_of(second)  # the counter starts over: the same id goes to someone new ...
    back = welcome_of(second, "/?guest=" + w["guest"])
    assert back["id"] != fresh["id"], "an old token took over a live id"  # ... never to the old token
    assert back["name"] == "User " + back["id"], back


@pytest.mark.server_args(*SIGNED_IN)
def test_no_guest_token_where_everyone_signs_in(server):
    with connect_ws(server, "/?token=" + token()) as ws:
        assert "guest" not in connect_seq(ws)["welcome"]


# ---------------------------------------------------------------- guests: no leave/join noise


def events_until(ws, pred, timeout):
    """Everything ws receives up to and including the first event pred accepts."""
    got = []
    deadline = time.monotonic() + timeout
    while True:
        m = ws.recv_json(max(0.01, deadline - time.monotonic()))
        got.append(m)
        if pred(m):
            return got


@pytest.mark.server_args("--rejoin-grace", "2")
def test_quick_reconnect_is_silent_and_the_grace_ends_in_a_leave(server):
    with connect_ws(server, "/") as watcher:
        connect_seq(watcher)
        guest = connect_ws(server, "/")
        w = connect_seq(guest)["welcome"]
        watcher.recv_type("join", pred=lambda m: m["user"]["id"] == w["id"])
        for _ in range(3):  # a reload is a close and a new connection
            guest.send_close(1001)
            guest.close()
            guest = connect_ws(server, "/?guest=" + w["guest"])
            seq = connect_seq(guest)
            assert seq["welcome"]["id"] == w["id"]
            assert w["id"] in [u["id"] for u in seq["presence"]["users"]]
            text = "back %f" % time.monotonic()
            send_and_ack(guest, text)
            # positive signal: the guest's message reaches the watcher ...
            got = events_until(watcher, lambda m: m.get("text") == text, timeout=5)
            # ... and nothing about it leaving or joining came before it
            noise = [m for m in got if m["type"] in ("join", "leave")]
            assert not noise, noise
            assert got[-1]["from"] == w["id"]
        guest.send_close(1000)
        guest.close()
        gone = time.monotonic()
        leave = watcher.recv_type("leave", timeout=6)
        assert leave["user"]["id"] == w["id"], leave
        assert time.monotonic() - gone > 1.5, "the leave came before the grace window ran out"


@pytest.mark.server_args("--rejoin-grace", "2")
def test_two_tabs_of_one_guest_leave_once_both_are_gone(server):
    with connect_ws(server, "/") as watcher:
        connect_seq(watcher)
        tab1 = connect_ws(server, "/")
        w = connect_seq(tab1)["welcome"]
        watcher.recv_type("join", pred=lambda m: m["user"]["id"] == w["id"])
        tab2 = connect_ws(server, "/?guest=" + w["guest"])
        assert connect_seq(tab2)["welcome"]["id"] == w["id"]
        tab1.send_close(1000)
        tab1.close()
        # tab2 is still there: past the grace, the guest has not left
        deadline = time.monotonic() + 3  # past the 2 s grace
        while time.monotonic() < deadline:
            send_and_ack(tab2, "tab2 ping")
            time.sleep(0.3)  # pacing, under the flood limit
        text = "tab2 after the grace"
        send_and_ack(tab2, text)
        got = events_until(watcher, lambda m: m.get("text") == text, timeout=5)
        assert not [m for m in got if m["type"] in ("join", "leave")], got
        tab2.send_close(1000)
        tab2.close()
        assert watcher.recv_type("leave", timeout=6)["user"]["id"] == w["id"]


@pytest.mark.server_args("--rejoin-grace", "0")
def test_rejoin_grace_zero_tells_the_leave_at_once(server):
    with connect_ws(server, "/") as watcher:
        connect_seq(watcher)
        with connect_ws(server, "/") as guest:
            w = connect_seq(guest)["welcome"]
            watcher.recv_type("join", pred=lambda m: m["user"]["id"] == w["id"])
            guest.send_close(1000)
        start = time.monotonic()
        assert watcher.recv_type("leave", timeout=3)["user"]["id"] == w["id"]
        assert time.monotonic() - start < 1.5


@pytest.mark.server_args("--rejoin-grace", "1")
def test_two_tabs_gone_together_make_one_leave(server):
    with connect_ws(server, "/") as watcher, connect_ws(server, "/") as other:
        connect_seq(watcher)
        connect_seq(other)
        tab1 = connect_ws(server, "/")
        w = connect_seq(tab1)["welcome"]
        tab2 = connect_ws(server, "/?guest=" + w["guest"])
        connect_seq(tab2)
        watcher.recv_type("join", pred=lambda m: m["user"]["id"] == w["id"])
        for tab in (tab1, tab2):
            tab.send_close(1000)
            tab.close()
        leave = watcher.recv_type("leave", timeout=5)
        assert leave["user"]["id"] == w["id"]
        # past both windows, a marker from someone else: a second leave would be before it
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            send_and_ack(other, "pacing")
            time.sleep(0.3)  # pacing, under the flood limit
        send_and_ack(other, "marker")
        got = events_until(watcher, lambda m: m.get("text") == "marker", timeout=5)
        assert [m for m in got if m["type"] in ("join", "leave")] == [], got

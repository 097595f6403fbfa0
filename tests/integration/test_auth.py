"""Sign-in (docs/protocol.md "Sign-in", README --jwt-secret/--jwt-secret-file):
HS256 JWTs made here with hmac/hashlib/base64, in `?token=` or the
`ringcast_token` cookie; a refused sign-in is a WebSocket closed at once with
4001 (no token), 4002 (expired) or 4003 (invalid) and a reason the page can
show; a valid one sets id,
name and signed_in; nick is name_locked; static files need no token; a
secret under 32 bytes stops the server from starting."""

import json
import os
import time

import pytest

from rawws import RawWS
from rcutil import (make_jwt, b64url, upgrade, connect_ws, connect_seq, send_and_ack, http_get,
                    recv_error, run_briefly)

SECRET = "correct horse battery staple 0123456789"   # 39 bytes
assert len(SECRET) >= 32
pytestmark = pytest.mark.server_args("--jwt-secret", SECRET)


def now():
    return int(time.time())


def token(claims=None, **kw):
    c = {"sub": "42", "name": "Alice", "exp": now() + 3600}
    if claims is not None:
        c = claims
    return make_jwt(SECRET, c, **kw)


MISSING, EXPIRED, INVALID = 4001, 4002, 4003


def status(server, path="/", headers=None):
    """'ok' when the session starts (welcome first), else the close code the
    sign-in was refused with (the reason checked against the code)."""
    with connect_ws(server, path, headers=headers) as ws:
        f = ws.recv_frame(timeout=5)
        if f.opcode != 0x8:
            assert f.json()["type"] == "welcome", f
            return "ok"
        code, reason = f.close_code, f.close_reason
        want = {MISSING: "token missing", EXPIRED: "token expired", INVALID: "token invalid"}
        assert code in want and reason.startswith(want[code]), (code, reason)
        ws.send_close(code)  # the server waits for ours: a clean close
        return code


# ---------------------------------------------------------------- refused: 4001-4003


def test_no_token_refused(server):
    for path in ("/", "/ws", "/?room=dev"):
        assert status(server, path) == MISSING, path
    assert status(server, "/?token=") == MISSING


def test_bad_signature_refused(server):
    good = token()
    h, p, s = good.split(".")
    forged_claims = b64url(json.dumps({"sub": "1", "name": "Admin", "exp": now() + 3600}))
    flipped = s[:-2] + ("A" if s[-2] != "A" else "B") + s[-1]
    cases = {
        "other secret": make_jwt("x" * 40, {"sub": "42", "name": "Alice", "exp": now() + 3600}),
        "payload swapped, old signature": "%s.%s.%s" % (h, forged_claims, s),
        "one signature character changed": "%s.%s.%s" % (h, p, flipped),
        "signature truncated": "%s.%s.%s" % (h, p, s[:-4]),
        "empty signature": "%s.%s." % (h, p),
        "secret as the signature": "%s.%s.%s" % (h, p, b64url(SECRET)),
    }
    for what, t in cases.items():
        assert status(server, "/?token=" + t) == INVALID, what
    assert status(server, "/?token=" + good) == "ok"


def test_expired_refused_and_leeway(server):
    assert status(server, "/?token=" + token({"sub": "1", "exp": now() - 120})) == EXPIRED
    assert status(server, "/?token=" + token({"sub": "1", "exp": now() - 3600})) == EXPIRED
    # 30 s leeway
    assert status(server, "/?token=" + token({"sub": "1", "exp": now() - 10})) == "ok"
    assert status(server, "/?token=" + token({"sub": "1", "nbf": now() + 120})) == INVALID
    assert status(server, "/?token=" + token({"sub": "1", "nbf": now() + 10})) == "ok"
    assert status(server, "/?token=" + token({"sub": "1", "nbf": now() - 10, "exp": now() + 60})) == "ok"


@pytest.mark.parametrize("header", [
    {"alg": "none", "typ": "JWT"},
    {"alg": "None"},
    {"alg": "hs256"},
    {"alg": "HS512"},
    {"alg": "RS256"},
    {"typ": "JWT"},
    {"alg": ["HS256"]},
])
def test_alg_other_than_hs256_refused(server, header):
    unsigned = make_jwt(SECRET, {"sub": "42", "exp": now() + 3600}, header=header, sign=False)
    signed = make_jwt(SECRET, {"sub": "42", "exp": now() + 3600}, header=header)
    assert status(server, "/?token=" + unsigned) == INVALID
    assert status(server, "/?token=" + signed) == INVALID, "alg %r with an HS256 signature accepted" % header


@pytest.mark.parametrize("shape", ["two-parts", "four-parts", "padded", "garbage", "not-json",
                                   "claims-array", "no-sub-no-name"])
def test_malformed_tokens_refused(server, shape):
    import hashlib
    import hmac
    good = token()
    h, p, s = good.split(".")

    def signed(header_b64, payload_b64):
        sig = hmac.new(SECRET.encode(), ("%s.%s" % (header_b64, payload_b64)).encode(), hashlib.sha256)
        return "%s.%s.%s" % (header_b64, payload_b64, b64url(sig.digest()))

    t = {
        "two-parts": "%s.%s" % (h, p),
        "four-parts": good + "." + s,
        "padded": good + "=",
        "garbage": "not-a-token",
        "not-json": signed(h, b64url("{not json")),
        "claims-array": signed(h, b64url("[1,2,3]")),
        "no-sub-no-name": token({"exp": now() + 3600}),
    }[shape]
    assert status(server, "/?token=" + t) == INVALID


def test_cookie_with_bad_token_refused(server):
    bad = make_jwt("y" * 40, {"sub": "42"})
    assert status(server, "/", [("Cookie", "ringcast_token=" + bad)]) == INVALID
    assert status(server, "/", [("Cookie", "other_token=" + token())]) == MISSING


# ---------------------------------------------------------------- accepted: 101


def test_valid_token_in_query(server):
    with connect_ws(server, "/?token=" + token()) as ws:
        seq = connect_seq(ws)
        w = seq["welcome"]
        assert w == {"type": "welcome", "id": "42", "name": "Alice", "room": "lobby",
                     "signed_in": True, "max_message": 65536}, w
        assert seq["presence"]["users"] == [{"id": "42", "name": "Alice"}]
        m = send_and_ack(ws, "signed message")
        assert (m["from"], m["name"]) == ("42", "Alice"), m


def test_valid_token_in_cookie(server):
    t = token({"sub": "u-7", "name": "Bob", "exp": now() + 60})
    for cookie in ("ringcast_token=" + t, "theme=dark; ringcast_token=" + t + "; lang=en"):
        with RawWS.connect(server.host, server.port, "/ws", headers=[("Cookie", cookie)]) as ws:
            w = connect_seq(ws)["welcome"]
            assert (w["id"], w["name"], w["signed_in"]) == ("u-7", "Bob", True), w


def test_token_with_room_and_two_users(server):
    with connect_ws(server, "/?room=dev&token=" + token()) as a, \
            connect_ws(server, "/?token=%s&room=dev" % token({"sub": "99", "name": "Carol"})) as b:
        wa = connect_seq(a)["welcome"]
        seq = connect_seq(b)
        assert wa["room"] == "dev" and seq["welcome"]["room"] == "dev"
        assert sorted(seq["presence"]["users"], key=lambda u: u["id"]) == \
            [{"id": "42", "name": "Alice"}, {"id": "99", "name": "Carol"}]
        send_and_ack(b, "hi alice")
        m = a.recv_type("message")
        assert (m["from"], m["name"], m["text"]) == ("99", "Carol", "hi alice"), m


def test_name_falls_back_to_sub_and_id_to_name(server):
    with connect_ws(server, "/?token=" + token({"sub": "only-sub"})) as ws:
        w = connect_seq(ws)["welcome"]
        assert (w["id"], w["name"], w["signed_in"]) == ("only-sub", "only-sub", True), w
    with connect_ws(server, "/?token=" + token({"name": "OnlyName"})) as ws:
        w = connect_seq(ws)["welcome"]
        assert (w["id"], w["name"], w["signed_in"]) == ("OnlyName", "OnlyName", True), w


def test_nick_is_name_locked(server):
    with connect_ws(server, "/?token=" + token()) as a, \
            connect_ws(server, "/?token=" + token({"sub": "7", "name": "Dan"})) as b:
        connect_seq(a)
        connect_seq(b)
        a.send_json({"type": "nick", "name": "Mallory"})
        e = recv_error(a)
        assert e["code"] == "name_locked", e
        m = send_and_ack(a, "still alice")
        assert m["name"] == "Alice", m
        got = b.recv_type(("nick", "message"))
        assert got["type"] == "message" and got["name"] == "Alice", got


def test_long_sub_is_the_id_not_truncated(server):
    # Two different subjects that share a 64-character prefix must not end up
    # with the same id: the id is "the token's sub" (docs/protocol.md), and a
    # client shows a message as its own when `from` is its id. (OpenID
    # Connect allows subs of up to 255 ASCII characters.)
    base = "https://idp.example.com/users/" + "0" * 40
    subs = [base + "-alice", base + "-mallory"]
    ids = []
    for sub in subs:
        t = token({"sub": sub, "name": "N", "exp": now() + 60})
        with connect_ws(server, "/?token=" + t) as ws:
            ids.append(connect_seq(ws)["welcome"]["id"])
    assert ids[0] != ids[1], "two different subs (%d chars) got the same id %r" % (len(subs[0]), ids[0])
    assert ids == subs, "welcome id is not the sub: %r" % ids
    # a very long sub: refused, or kept whole -- never cut short
    huge = "h" * 1000
    t = token({"sub": huge, "name": "N", "exp": now() + 60})
    if status(server, "/?token=" + t) == "ok":
        with connect_ws(server, "/?token=" + t) as ws:
            assert connect_seq(ws)["welcome"]["id"] == huge


def test_static_files_need_no_token(server, static_dir):
    for path, name in (("/", "index.html"), ("/app.js", "app.js"), ("/style.css", "style.css")):
        r = http_get(server, path)
        assert r.status == 200, (path, r)
        with open(os.path.join(str(static_dir), name), "rb") as f:
            assert r.body == f.read(), path
    assert http_get(server, "/metrics").status == 200


# ---------------------------------------------------------------- the secret


def test_short_secret_refused_at_start():
    for secret in ("short", "x" * 31):
        p = run_briefly("--jwt-secret", secret)
        assert p.returncode != 0, "server started with a %d-byte secret" % len(secret)
        assert "32" in p.stderr and "secret" in p.stderr.lower(), p.stderr
        assert "listening" not in p.stderr, p.stderr


def test_short_secret_file_refused_at_start(tmp_path):
    f = tmp_path / "secret"
    f.write_text("z" * 31 + "\n")  # the trailing newline is dropped: 31 bytes
    p = run_briefly("--jwt-secret-file", str(f))
    assert p.returncode != 0, "server started with a 31-byte secret file"
    assert "32" in p.stderr, p.stderr
    p = run_briefly("--jwt-secret-file", str(tmp_path / "missing"))
    assert p.returncode != 0 and "missing" in p.stderr, p.stderr


def test_secret_file_trailing_newline_dropped(server_factory, tmp_path):
    secret = "f" * 32
    f = tmp_path / "secret"
    f.write_text(secret + "\n")
    server = server_factory("--jwt-secret-file", str(f))
    t = make_jwt(secret, {"sub": "file-user", "exp": now() + 60})
    with connect_ws(server, "/?token=" + t) as ws:
        assert connect_seq(ws)["welcome"]["id"] == "file-user"
    assert status(server, "/?token=" + make_jwt(secret + "\n", {"sub": "x"})) == INVALID
    assert status(server, "/") == MISSING

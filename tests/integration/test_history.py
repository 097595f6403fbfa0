"""History (docs/protocol.md connect sequence item 4, the `history` command,
Persistence): the last 50 on join with `more`, paging back with before/limit
to the beginning, paging beyond --history-memory from SQLite, and history
surviving a restart (same working directory, or an explicit --db)."""

import os
import shutil
import tempfile

import pytest

from rcutil import (connect_ws, connect_seq, join_seq, fetch_history, page_all_history,
                    send_burst, recv_error)

N = 60


@pytest.fixture
def workdir():
    d = tempfile.mkdtemp(prefix="ringcast-it-history-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def post(server, n=N, room="lobby", prefix="msg"):
    """n messages from one client; returns their acks (oldest first)."""
    with connect_ws(server, "/?room=%s" % room) as ws:
        connect_seq(ws)
        acks = send_burst(ws, ["%s %03d" % (prefix, i) for i in range(n)])
    ids = [m["id"] for m in acks]
    assert ids == sorted(ids) and len(set(ids)) == n, ids
    return acks


def key(m):
    return (m["id"], m["room"], m["from"], m["name"], m["text"], m["ts"])


def check_connect_history(server, sent, room="lobby"):
    with connect_ws(server, "/?room=%s" % room) as ws:
        h = connect_seq(ws)["history"]
    assert h["room"] == room
    assert [key(m) for m in h["messages"]] == [key(m) for m in sent[-50:]], \
        "connect history: ids %r, expected %r" % ([m["id"] for m in h["messages"]],
                                                    [m["id"] for m in sent[-50:]])
    assert h["more"] is (len(sent) > 50), h["more"]
    for m in h["messages"]:
        assert m["type"] == "message", m


def check_paging(server, sent, room="lobby", limits=(7, 50, 200, 1)):
    with connect_ws(server, "/?room=%s" % room) as ws:
        connect_seq(ws)
        for limit in limits:
            got, pages = page_all_history(ws, room, limit=limit)
            assert [key(m) for m in got] == [key(m) for m in sent], \
                "paging with limit %d: ids %r" % (limit, [m["id"] for m in got])
            assert all(len(p["messages"]) <= limit for p in pages), [len(p["messages"]) for p in pages]
            assert all(p["more"] is True for p in pages[:-1]), [p["more"] for p in pages]
            assert pages[-1]["more"] is False, pages[-1]
            for p in pages:
                ids = [m["id"] for m in p["messages"]]
                assert ids == sorted(ids), "a page is not oldest first: %r" % ids


# ---------------------------------------------------------------- on join


@pytest.mark.server_args("--rate-limit", "0")
def test_last_50_on_connect_with_more_after_60(server):
    sent = post(server)
    assert [m["id"] for m in sent] == list(range(1, N + 1))
    check_connect_history(server, sent)


@pytest.mark.server_args("--rate-limit", "0")
def test_last_50_on_join_command(server):
    sent = post(server, room="dev")
    with connect_ws(server) as ws:
        connect_seq(ws)
        h = join_seq(ws, "dev")["history"]
    assert [key(m) for m in h["messages"]] == [key(m) for m in sent[-50:]]
    assert h["more"] is True


@pytest.mark.server_args("--rate-limit", "0")
def test_exactly_50_has_more_false_and_51_true(server):
    sent = post(server, n=50)
    check_connect_history(server, sent)
    sent += post(server, n=1, prefix="one more")
    check_connect_history(server, sent)


# ---------------------------------------------------------------- the history command


@pytest.mark.server_args("--rate-limit", "0")
def test_history_paging_back_to_the_beginning(server):
    sent = post(server)
    check_paging(server, sent)


@pytest.mark.server_args("--rate-limit", "0")
def test_history_before_and_limit_exact_pages(server):
    sent = post(server)
    with connect_ws(server) as ws:
        connect_seq(ws)
        h = fetch_history(ws, "lobby")
        assert [m["id"] for m in h["messages"]] == list(range(11, 61)) and h["more"] is True, h
        h = fetch_history(ws, "lobby", before=31, limit=10)
        assert [m["id"] for m in h["messages"]] == list(range(21, 31)) and h["more"] is True
        h = fetch_history(ws, "lobby", before=11, limit=10)
        assert [m["id"] for m in h["messages"]] == list(range(1, 11)) and h["more"] is False, h
        h = fetch_history(ws, "lobby", before=4, limit=50)
        assert [m["id"] for m in h["messages"]] == [1, 2, 3] and h["more"] is False, h
        h = fetch_history(ws, "lobby", before=1)
        assert h["messages"] == [] and h["more"] is False, h
        h = fetch_history(ws, "lobby", before=10 ** 9, limit=3)
        assert [m["id"] for m in h["messages"]] == [58, 59, 60] and h["more"] is True
        assert [key(m) for m in h["messages"]] == [key(m) for m in sent[-3:]]


@pytest.mark.server_args("--rate-limit", "0")
def test_history_limit_capped_at_200(server):
    sent = post(server, n=230)
    with connect_ws(server) as ws:
        connect_seq(ws)
        for limit in (200, 201, 1000):
            ws.send_json({"type": "history", "room": "lobby", "limit": limit})
            m = ws.recv_type(("history", "error"))
            if m["type"] == "error":
                assert limit > 200, m
                continue
            assert len(m["messages"]) <= 200, "limit %d returned %d messages" % (limit, len(m["messages"]))
            assert [x["id"] for x in m["messages"]] == [x["id"] for x in sent[-len(m["messages"]):]]
            assert m["more"] is True
        h = fetch_history(ws, "lobby", limit=200)
        assert [key(x) for x in h["messages"]] == [key(x) for x in sent[-200:]]


@pytest.mark.parametrize("cmd", [
    {"before": -1}, {"before": "10"}, {"before": 1.5}, {"limit": -1}, {"limit": "5"},
    {"limit": 2.5}, {"before": None}, {"limit": [5]},
])
def test_history_bad_arguments(server, cmd):
    with connect_ws(server) as ws:
        connect_seq(ws)
        c = {"type": "history", "room": "lobby"}
        c.update(cmd)
        ws.send_json(c)
        e = recv_error(ws)
        assert e["code"] == "bad_message", e
        # still usable
        assert fetch_history(ws, "lobby")["messages"] == []


@pytest.mark.server_args("--rate-limit", "0")
def test_history_of_other_room_and_empty_room(server):
    sent = post(server, n=5, room="dev")
    with connect_ws(server) as ws:
        connect_seq(ws)
        assert fetch_history(ws, "lobby") == {"type": "history", "room": "lobby",
                                              "messages": [], "more": False}
        join_seq(ws, "dev")
        h = fetch_history(ws, "dev")
        assert [key(m) for m in h["messages"]] == [key(m) for m in sent] and h["more"] is False


# ---------------------------------------------------------------- beyond memory: SQLite


@pytest.mark.server_args("--rate-limit", "0", "--history-memory", "10")
def test_paging_beyond_memory_comes_from_sqlite(server):
    sent = post(server)
    check_paging(server, sent, limits=(7, 50, 200, 3))
    # interleave with a second room so that ids per room stay independent
    sent_dev = post(server, n=25, room="dev")
    check_paging(server, sent_dev, room="dev", limits=(4, 200))
    check_paging(server, sent, limits=(11,))


@pytest.mark.server_args("--rate-limit", "0", "--history-memory", "10")
def test_connect_history_is_last_50_even_with_history_memory_10(server):
    # docs/protocol.md: on connect (and join) "the last 50 messages, oldest
    # first; more says older ones exist" -- not "at most --history-memory".
    sent = post(server)
    check_connect_history(server, sent)


@pytest.mark.server_args("--rate-limit", "0", "--history-memory", "10", "--fsync", "always")
def test_paging_beyond_memory_fsync_always(server):
    sent = post(server, n=35)
    check_paging(server, sent, limits=(6, 200))


# ---------------------------------------------------------------- across a restart


def test_history_survives_restart_same_workdir(server_factory, workdir):
    first = server_factory("--rate-limit", "0", "--history-memory", "20", workdir=workdir)
    sent = post(first)
    sent_dev = post(first, n=7, room="dev")
    assert not first.stop()
    second = server_factory("--rate-limit", "0", workdir=workdir)
    check_connect_history(second, sent)
    check_paging(second, sent, limits=(9, 200))
    check_paging(second, sent_dev, room="dev", limits=(200,))
    more = post(second, n=3, prefix="after restart")
    assert min(m["id"] for m in more) > max(m["id"] for m in sent), \
        "ids reused after a restart: %r" % [m["id"] for m in more]
    assert [m["id"] for m in more] == [61, 62, 63], [m["id"] for m in more]
    check_paging(second, sent + more, limits=(200,))


def test_history_survives_restart_explicit_db(server_factory, workdir):
    db = os.path.join(workdir, "nested", "dir", "chat.db")
    first = server_factory("--rate-limit", "0", "--db", db)  # its own temp working dir
    sent = post(first, n=12)
    assert not first.stop()
    assert os.path.exists(db), "--db %s was not created" % db
    second = server_factory("--rate-limit", "0", "--db", db)  # another temp working dir
    check_connect_history(second, sent)
    check_paging(second, sent, limits=(5,))
    more = post(second, n=1)
    assert more[0]["id"] == 13, more


def test_no_persist_forgets_on_restart(server_factory, workdir):
    first = server_factory("--no-persist", workdir=workdir)
    post(first, n=3)
    assert not first.stop()
    second = server_factory("--no-persist", workdir=workdir)
    with connect_ws(second) as ws:
        h = connect_seq(ws)["history"]
    assert h["messages"] == [] and h["more"] is False, h
    assert not os.path.exists(os.path.join(workdir, "data", "ringcast.db"))

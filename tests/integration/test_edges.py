"""Several edges (--threads 2): rings on threads of their own, each holding
its share of the connections, with one order per room (include/sequencer.h).

Clients are spread over the edges by the kernel (SO_REUSEPORT); each case
first checks, from /metrics, that both edges hold some of its clients, so
that what it asserts really crossed from one edge to the other."""
import pytest

from rcutil import connect_seq, connect_ws, metrics, poll_metrics, send_and_ack, wait_metric

CLIENTS = 24

pytestmark = pytest.mark.server_args("--threads", "2", "--rate-limit", "0")


def edge_counts(server, clients):
    """Connections per edge, once every one of clients shows (each edge's
    count is at most a tick old; the /metrics request itself is one more)."""
    def counts(m):
        return [m.get('ringcast_edge_connections{edge="%d"}' % i, 0) for i in range(2)]
    return counts(poll_metrics(server, lambda m: sum(counts(m)) >= clients + 1))


def open_clients(server, n, path="/"):
    clients = []
    for _ in range(n):
        ws = connect_ws(server, path)
        clients.append((ws, connect_seq(ws)))
    counts = edge_counts(server, n)
    assert all(c and c > 0 for c in counts), ("the kernel put every client on one edge", counts)
    return clients


def close_clients(clients):
    for ws, _ in clients:
        ws.close()


def test_two_edges_serve_and_say_so(server):
    assert metrics(server).get("ringcast_edges") == 2
    assert "2 edges (--threads)" in server.output()


def test_every_client_on_either_edge_sees_one_id_sequence(server):
    clients = open_clients(server, CLIENTS)
    try:
        # everyone sends one message, without waiting: the edges submit at
        # the same time, and one order must come out
        for i, (ws, _) in enumerate(clients):
            ws.send_text("m%d" % i)
        sequences = []
        for ws, _ in clients:
            got = []
            while len(got) < CLIENTS:
                m = ws.recv_type(("message",), 10)
                got.append((m["id"], m["text"]))
            sequences.append(got)
        first = sequences[0]
        assert [i for i, _ in first] == list(range(first[0][0], first[0][0] + CLIENTS))
        assert sorted(t for _, t in first) == sorted("m%d" % i for i in range(CLIENTS))
        for s in sequences[1:]:
            assert s == first, "two clients saw different orders"
        # counted once, not once per edge
        assert wait_metric(server, "ringcast_chat_messages_total", float(CLIENTS)) == CLIENTS
    finally:
        close_clients(clients)


def test_presence_join_nick_and_leave_cross_edges(server):
    clients = open_clients(server, CLIENTS)
    try:
        # a newcomer, whichever edge it lands on, finds everyone
        late = connect_ws(server)
        seq = connect_seq(late)
        assert seq["presence"]["count"] == CLIENTS + 1
        assert len(seq["presence"]["users"]) == CLIENTS + 1
        late_id = seq["welcome"]["id"]
        for ws, _ in clients:
            j = ws.recv_type(("join",), 5, pred=lambda m: m["user"]["id"] == late_id)
            assert j["count"] == CLIENTS + 1
        late.send_json({"type": "nick", "name": "Zed"})
        for ws, _ in clients:
            n = ws.recv_type(("nick",), 5, pred=lambda m: m["id"] == late_id)
            assert n["name"] == "Zed"
        # a message after the nick carries it, on every edge
        send_and_ack(late, "hello from Zed")
        for ws, _ in clients:
            m = ws.recv_type(("message",), 5, pred=lambda m: m["text"] == "hello from Zed")
            assert m["name"] == "Zed"
        late.close()
        for ws, _ in clients:
            left = ws.recv_type(("leave",), 5, pred=lambda m: m["user"]["id"] == late_id)
            assert left["count"] == CLIENTS
    finally:
        close_clients(clients)


@pytest.mark.server_args("--threads", "2", "--rate-limit", "0", "--history-memory", "5")
def test_replay_from_the_store_reaches_a_client_on_either_edge(server):
    clients = open_clients(server, 20)  # all on one edge: 2 in a million
    try:
        ws0 = clients[0][0]
        texts = ["h%d" % i for i in range(30)]
        for t in texts:
            send_and_ack(ws0, t)
        # more than memory holds: each replay is read from the store through
        # the sequencer and answered to the asking edge alone
        for _ in range(6):
            ws = connect_ws(server, "/?since=0")
            seq = connect_seq(ws)
            assert [m["text"] for m in seq["replay"]] == texts
            assert [m["id"] for m in seq["replay"]] == list(range(1, 31))
            assert seq["resumed"]["last"] == 30
            ws.close()
    finally:
        close_clients(clients)


@pytest.mark.server_args("--threads", "2", "--rate-limit", "0", "--max-rooms", "6")
def test_max_rooms_and_the_room_count_hold_for_all_edges_together(server):
    clients = []
    try:
        # six rooms, three clients each, on whichever edges the kernel picks
        for i in range(18):
            ws = connect_ws(server, "/?room=r%d" % (i % 6))
            clients.append((ws, connect_seq(ws)))
        counts = edge_counts(server, 18)
        assert all(c > 0 for c in counts), counts
        assert metrics(server).get("ringcast_rooms") == 6
        # a seventh room is refused on either edge; the six stay joinable
        for _ in range(6):
            ws = connect_ws(server, "/?room=seventh")
            seq = ws.recv_type(("error",), 5)
            assert seq["code"] == "too_many_rooms", seq
            ws.close()
        ws = connect_ws(server, "/?room=r3")
        assert connect_seq(ws)["presence"]["count"] == 4
        clients.append((ws, None))
    finally:
        close_clients(clients)

"""History across a restart. The server runs twice in the same working directory, so
it finds its default data/ringcast.db again."""

import tempfile
import shutil

import pytest

from rawws import RawWS


@pytest.fixture
def workdir():
    d = tempfile.mkdtemp(prefix="ringcast-it-persist-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_ids_and_history_survive_restart(server_factory, workdir):
    first = server_factory(workdir=workdir)
    with RawWS.connect(first.host, first.port) as ws:
        ws.welcome()
        sent = []
        for t in ("one", "two", "three"):
            ws.send_text(t)
            sent.append(ws.recv_type("message"))
        assert [m["text"] for m in sent] == ["one", "two", "three"]
    problems = first.stop()
    assert not problems, problems

    second = server_factory(workdir=workdir)
    with RawWS.connect(second.host, second.port) as ws:
        ws.welcome()
        hist = ws.recv_type("history")
        assert [(m["id"], m["text"]) for m in hist["messages"]][-3:] == \
            [(m["id"], m["text"]) for m in sent], hist
        ws.send_text("four")
        m = ws.recv_type("message")
        assert m["id"] > sent[-1]["id"], "message id reused after a restart: %r" % m

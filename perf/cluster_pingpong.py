#!/usr/bin/python3
"""perf/cluster_pingpong.py: the Redis hop's latency with nothing else running.

One sender posts a message, waits for its acknowledgement (its own copy) and
for a member on another node to get it, then sleeps 5 ms; 200 times. Once
with two nodes on a redis-server (--redis), once against one node alone
(--no-persist). Prints p50/p99 of both. Loopback only; stops by itself.

    /usr/bin/python3 perf/cluster_pingpong.py [--server build/ringcast] [-n 200]
"""
import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import tempfile
import time

import websockets


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, deadline_s=10.0):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("nothing listens on %d after %.0f s" % (port, deadline_s))


def wait_ready(port, deadline_s=10.0):
    """GET /readyz until 200: a node is in the cluster once it heartbeats."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        with socket.create_connection(("127.0.0.1", port), 1) as s:
            s.sendall(b"GET /readyz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            if s.recv(64).startswith(b"HTTP/1.1 200"):
                return
        time.sleep(0.05)
    raise SystemExit("node on %d not ready after %.0f s" % (port, deadline_s))


async def next_message(ws):
    while True:
        m = json.loads(await ws.recv())
        if m["type"] == "message":
            return m


async def measure(port_a, port_b, n):
    a = await websockets.connect("ws://127.0.0.1:%d/?room=pp" % port_a)
    b = await websockets.connect("ws://127.0.0.1:%d/?room=pp" % port_b)
    ack, other = [], []
    for i in range(n):
        t0 = time.perf_counter()
        await a.send("m%d" % i)
        await next_message(a)
        t1 = time.perf_counter()
        await next_message(b)
        t2 = time.perf_counter()
        ack.append((t1 - t0) * 1e3)
        other.append((t2 - t0) * 1e3)
        await asyncio.sleep(0.005)
    await a.close()
    await b.close()
    return ack, other


def pct(v):
    s = sorted(v)
    return "p50 %.3f ms p99 %.3f ms" % (statistics.median(s), s[min(len(s) - 1, int(len(s) * 0.99))])


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--server", default=os.path.join(here, "..", "build", "ringcast"))
    p.add_argument("-n", type=int, default=200)
    args = p.parse_args()
    procs = []
    tmp = tempfile.mkdtemp(prefix="ringcast-pingpong-")
    try:
        rport = free_port()
        procs.append(subprocess.Popen(["redis-server", "--port", str(rport), "--bind", "127.0.0.1",
                                       "--save", "", "--appendonly", "yes", "--dir", tmp],
                                      stdout=subprocess.DEVNULL))
        wait_port(rport)
        ports = [free_port() for _ in range(3)]
        common = [args.server, "--threads", "1", "--rate-limit", "0"]
        for port in ports[:2]:
            procs.append(subprocess.Popen(common + ["--port", str(port), "--redis",
                                                    "redis://127.0.0.1:%d" % rport],
                                          stderr=subprocess.DEVNULL))
        procs.append(subprocess.Popen(common + ["--port", str(ports[2]), "--no-persist"],
                                      stderr=subprocess.DEVNULL))
        for port in ports:
            wait_port(port)
            wait_ready(port)
        for name, (pa, pb) in (("two nodes on Redis", (ports[0], ports[1])),
                               ("one node alone", (ports[2], ports[2]))):
            ack, other = asyncio.run(measure(pa, pb, args.n))
            print("%-20s acknowledgement %s; the other member %s" % (name, pct(ack), pct(other)))
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)
        subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    main()

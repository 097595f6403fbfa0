#!/usr/bin/python3
"""perf/compression.py: permessage-deflate off against on, by message size.

For each chat text size and repeat it runs a fresh ringcast twice, once with
--no-deflate and once compressing everything (--deflate-threshold 0), in
alternating order so drift in the machine's load falls on both. Every client
offers permessage-deflate, as browsers do. Two measurements per run:

  live:    N clients in a room, one sender posts M messages (spaced out, so
           no queue builds up); bytes on the wire and server CPU per delivery
  replay:  J more clients join the room, which now holds at least 50
           messages: each gets the welcome, presence and a history event of
           the last 50; bytes and server CPU per join

Bytes are what the clients' sockets received (frame headers included,
TCP/IP headers not); CPU is the server's time on a CPU (all threads, schedstat),
server pinned to core 0, this script to core 1. The load generator
(perf/loadgen) does not speak permessage-deflate, hence this Python client,
which only counts bytes and parses nothing.

  /usr/bin/python3 perf/compression.py [--build build] [-n 200] [-j 50]
      [--sizes 64,1024,16384] [--repeats 3]

Loopback only; stops by itself; stops what it starts.
"""
import argparse
import base64
import os
import selectors
import shutil
import socket
import statistics
import struct
import sys
import tempfile
import time

import bench

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORDS = ("the room is quiet today did you see the new build it works on my machine ship it "
         "when ready lunch anyone coffee deploy failed again fixed now thanks great idea "
         "let's meet at three ok").split()


def chat_text(n, seed):
    out, x = [], seed
    while sum(len(w) + 1 for w in out) < n:
        x = (x * 1103515245 + 12345) & 0xFFFFFFFF
        out.append(WORDS[(x >> 16) % len(WORDS)])
    return " ".join(out)[:n]


def cpu_s(pid):
    """The server's time on a CPU, all its threads, in nanoseconds resolution
    (schedstat; /proc/PID/stat counts in 10 ms ticks, too coarse here)."""
    total = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                total += int(f.read().split()[0])
        except FileNotFoundError:
            pass  # a thread that just ended
    return total / 1e9


def text_frame(payload):
    key = os.urandom(4)
    n = len(payload)
    hdr = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else
                           bytes([0x80 | 126]) + struct.pack("!H", n) if n < 65536 else
                           bytes([0x80 | 127]) + struct.pack("!Q", n))
    masked = bytes(b ^ key[i & 3] for i, b in enumerate(payload))
    return hdr + key + masked


class Clients:
    """Raw WebSocket clients that offer permessage-deflate and count what
    they receive."""

    def __init__(self, port):
        self.port = port
        self.sel = selectors.DefaultSelector()
        self.socks = []
        self.received = 0
        self.compressed = 0  # clients whose 101 accepted the offer

    def open(self, n):
        new = []
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", self.port))
            key = base64.b64encode(os.urandom(16)).decode()
            s.sendall(("GET /?room=perf HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
                       "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
                       % key).encode())
            new.append(s)
        for s in new:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = s.recv(65536)
                if not chunk:
                    sys.exit("compression.py: the server closed a connection during the handshake")
                head += chunk
            if b"permessage-deflate" in head.split(b"\r\n\r\n", 1)[0]:
                self.compressed += 1
            self.received += len(head) - len(head.split(b"\r\n\r\n", 1)[0]) - 4
            s.setblocking(False)
            self.sel.register(s, selectors.EVENT_READ)
            self.socks.append(s)
        return new

    def drain(self, quiet=0.3, limit=60):
        """Read until nothing arrives for `quiet` seconds."""
        deadline = time.monotonic() + limit
        last = time.monotonic()
        while time.monotonic() - last < quiet:
            if time.monotonic() > deadline:
                sys.exit("compression.py: still receiving after %d s" % limit)
            for k, _ in self.sel.select(0.05):
                try:
                    data = k.fileobj.recv(1 << 20)
                except BlockingIOError:
                    continue
                if data:
                    self.received += len(data)
                    last = time.monotonic()

    def close(self):
        for s in self.socks:
            self.sel.unregister(s)
            s.close()
        self.socks = []


def one_run(a, size, deflate, workdir):
    flags = ["--no-persist", "--rate-limit", "0", "--threads", "1", "--max-message", "131072",
             "--static", os.path.join(ROOT, "static")]
    flags += ["--deflate-threshold", "0"] if deflate else ["--no-deflate"]
    proc, port = bench.start_server(a.server, workdir, flags)
    try:
        c = Clients(port)
        sender = c.open(1)[0]
        c.open(a.conns - 1)
        c.drain()
        r = {"size": size, "mode": "on" if deflate else "off", "negotiated": c.compressed}
        b0, t0 = c.received, cpu_s(proc.pid)
        for i in range(a.messages):
            sender.sendall(text_frame(chat_text(size, i + 1).encode()))
            time.sleep(a.gap)
        c.drain()
        deliveries = a.messages * a.conns
        r["live_bytes"] = (c.received - b0) / deliveries
        r["live_ns"] = (cpu_s(proc.pid) - t0) * 1e9 / deliveries
        b0, t0 = c.received, cpu_s(proc.pid)
        c.open(a.joins)
        c.drain()
        # what the room's members got of the joins (join events) counts too:
        # it is part of what a join costs
        r["join_bytes"] = (c.received - b0) / a.joins
        r["join_us"] = (cpu_s(proc.pid) - t0) * 1e6 / a.joins
        r["deflate_in"] = bench.metric(port, "ws_deflate_bytes_in_total")
        r["deflate_out"] = bench.metric(port, "ws_deflate_bytes_out_total")
        c.close()
    finally:
        bench.stop(proc)
    return r


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--build", default=os.path.join(ROOT, "build"))
    p.add_argument("-n", "--conns", type=int, default=200)
    p.add_argument("-j", "--joins", type=int, default=50)
    p.add_argument("-m", "--messages", type=int, default=100, help="at least 50: the replay's history")
    p.add_argument("--gap", type=float, default=0.01, help="seconds between two messages")
    p.add_argument("--sizes", default="64,1024,16384", help="chat text bytes, comma-separated")
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    a.server = os.path.join(a.build, "ringcast")
    if not shutil.which("taskset") or not os.path.exists(a.server):
        sys.exit("compression.py: taskset or %s not found" % a.server)
    os.sched_setaffinity(0, {1})
    sizes = [int(s) for s in a.sizes.split(",")]

    print("compression.py: %s, %d clients, %d messages, %d joins, %d repeats" % (
        time.strftime("%Y-%m-%d %H:%M"), a.conns, a.messages, a.joins, a.repeats), flush=True)
    runs = []
    workdir = tempfile.mkdtemp(prefix="ringcast-compression-")
    try:
        for size in sizes:
            for rep in range(a.repeats):
                for deflate in ((False, True) if rep % 2 == 0 else (True, False)):
                    r = one_run(a, size, deflate, workdir)
                    runs.append(r)
                    print("%6d B %-3s live %8.1f B %6.0f ns/delivery | join %9.0f B %6.0f us"
                          " | negotiated %d" % (size, r["mode"], r["live_bytes"], r["live_ns"],
                                                r["join_bytes"], r["join_us"], r["negotiated"]),
                          flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    med = lambda rs, k: statistics.median(r[k] for r in rs)
    print("\nmedians of %d; bytes and server CPU per delivery (live) and per join (replay of 50)"
          % a.repeats)
    print("  text | live B off      on  on/off | ns/del off    on  on/off |"
          " join B off        on  on/off | us/join off    on  on/off")
    for size in sizes:
        off = [r for r in runs if r["size"] == size and r["mode"] == "off"]
        on = [r for r in runs if r["size"] == size and r["mode"] == "on"]
        row = []
        for k in ("live_bytes", "live_ns", "join_bytes", "join_us"):
            o, n = med(off, k), med(on, k)
            row += [o, n, n / o if o else float("nan")]
        print("%6d | %10.0f %7.0f  %5.2f | %10.0f %5.0f  %5.2f | %10.0f %9.0f  %5.2f |"
              " %11.0f %5.0f  %5.2f" % tuple([size] + row))


if __name__ == "__main__":
    main()

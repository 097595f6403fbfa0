#!/usr/bin/python3
"""perf/hundred_k.py: one ringcast process, 100,000 WebSocket clients, all
receiving, and a broadcast to all of them every second for a minute.

  /usr/bin/python3 perf/hundred_k.py [--server build/ringcast] [--server-args "--threads 6"]
      [--clients 100000] [--processes N] [--duration 60] [--rate 1]

One loadgen process holds at most 19,000 clients (the open-file limit is
20,000 per process), so it starts N of them (default: as few as fit). Only
the first sends (--senders, at --rate messages/s in total); the others only
receive. They coordinate through files: each creates a ready file once its
clients are connected and settled, and when all have, this script samples
the server's RSS and creates the start file that all of them wait for, so
every client is in the room before the first message is sent and the
measured windows line up (within the loadgens' 10 ms polling).

It reports the connect time, delivery latency over every client (the
loadgens' histograms merged), the loss and order checks (missing, reordered,
server id gaps and mismatches, within each process and across them), the
server's RSS before, connected and at the end and the growth per
connection, and exits 1 if anything was lost, reordered or gapped, a client
was dropped or did not connect, or RSS grew more than --max-rss-per-conn
bytes per connection (idle connected RSS against RSS before connecting).

Smoke run against a one-ring server (which holds ~19,968 connections):

  /usr/bin/python3 perf/hundred_k.py --clients 4000 --processes 2 --duration 10

Loopback only; bounded in clients and time; stops what it starts.
"""
import argparse
import json
import math
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import bench

MAX_PER_PROCESS = 19000
SENDER_BASE_STEP = 1000  # sender ids of process i start at i * this


def split(clients, processes):
    """clients over processes as evenly as possible, the first ones one more."""
    q, r = divmod(clients, processes)
    return [q + (1 if i < r else 0) for i in range(processes)]


def loadgen_cmd(a, i, n, port, pid, tmp, cpus):
    sending = i == 0
    cmd = [a.loadgen, "--port", str(port), "-n", str(n),
           "-s", str(a.senders if sending else 0), "-r", str(a.rate if sending else 0),
           "--sender-base", str(i * SENDER_BASE_STEP), "-p", str(a.size),
           "-w", str(a.warmup), "-d", str(a.duration), "--drain", str(a.drain),
           "--settle", str(a.settle), "--connect-rate", str(a.connect_rate),
           "--connect-timeout", str(a.connect_timeout), "--src-addrs", "16",
           "--ready-file", os.path.join(tmp, "ready.%d" % i),
           "--start-file", os.path.join(tmp, "start"),
           "--json", os.path.join(tmp, "lg.%d.json" % i), "--label", "hundred_k-%d" % i]
    if cpus:
        cmd += ["--cpu", cpus[i % len(cpus)]]
    # One process samples the server's CPU: its numbers are whole-server.
    if sending:
        cmd += ["--server-pid", str(pid)]
    return cmd


def tail(path, lines=15):
    try:
        with open(path) as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return "(no log)\n"


def stop_all(procs):
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def wait_ready(procs, tmp, deadline):
    """Connected clients per process once every one is ready, or a reason why not."""
    ready = {}
    while len(ready) < len(procs):
        for i, p in enumerate(procs):
            path = os.path.join(tmp, "ready.%d" % i)
            if i not in ready and os.path.exists(path):
                with open(path) as f:
                    ready[i] = int(f.read().strip() or 0)
            elif i not in ready and p.poll() is not None:
                return None, "loadgen %d exited (%d) before it was ready:\n%s" % (
                    i, p.returncode, tail(os.path.join(tmp, "lg.%d.log" % i)))
        if time.monotonic() > deadline:
            return None, "not all loadgens connected in time (%d of %d ready)" % (len(ready), len(procs))
        time.sleep(0.05)
    return [ready[i] for i in range(len(procs))], None


def merged_quantiles(results, qs):
    """Percentiles over every process's window deliveries: their histograms
    added bucket by bucket (each bucket's upper edge, ≤ 1.6 % high)."""
    buckets = {}
    for r in results:
        for high, count in r.get("lat_all_hist", []):
            buckets[high] = buckets.get(high, 0) + count
    total = sum(buckets.values())
    out = []
    for q in qs:
        want, seen = max(1, math.ceil(q * total)), 0
        value = 0
        for high in sorted(buckets):
            seen += buckets[high]
            if seen >= want:
                value = high
                break
        out.append(value if total else 0)
    return out, total


def judge(a, results, connected, rss):
    """(numbers, failures): the combined verdict over all processes."""
    s = lambda k: sum(r[k] for r in results)
    n = {k: s(k) for k in ("missing", "out_of_order", "dups", "id_gaps", "id_skipped", "id_reorders",
                           "id_mismatch", "id_behind", "closed_by_server", "send_overflow",
                           "deliveries_per_s", "lat_all_count", "id_clients")}
    n["connected"] = sum(connected)
    # The window's ids, any process's view: every client of every process
    # must have seen all of them (a process reports the ids all its clients
    # saw, given no gaps: [id_first_max, id_last_min]).
    spans = [r for r in results if r["id_window_hi"]]
    n["id_lo"] = min((r["id_window_lo"] for r in spans), default=0)
    n["id_hi"] = max((r["id_window_hi"] for r in spans), default=0)
    n["id_cross"] = [i for i, r in enumerate(results)
                     if spans and not (r["id_first_max"] <= n["id_lo"] and r["id_last_min"] >= n["id_hi"])]
    (p50, p99, pmax), _ = merged_quantiles(results, [0.5, 0.99, 1.0])
    n.update(lat_p50_us=p50 / 1e3, lat_p99_us=p99 / 1e3, lat_max_us=pmax / 1e3)
    # Each process's window holds its own ids (the windows start within
    # ~10 ms of each other, so a message on the edge may fall in one and
    # not another): every client of it must have had each one once. Shown,
    # not judged: with several senders an id inside the range may belong
    # to a message sent just outside the window; the id checks decide.
    n["lat_all_expected"] = sum((r["id_window_hi"] - r["id_window_lo"] + 1) * r["id_clients"]
                                for r in spans)
    n["connect_s"] = max(r["connect_total_s"] for r in results)
    n["sent_window"] = results[0]["sent_window"]
    util = results[0]["server_cpu_util"]
    n["server_cpu_util"] = util
    n["server_cpu_ns_per_delivery"] = util * 1e9 / n["deliveries_per_s"] if n["deliveries_per_s"] else 0
    n.update(rss)
    per_conn = lambda kb: (kb - rss["rss_before_kb"]) * 1024 / n["connected"] if n["connected"] else 0
    n["rss_per_conn_bytes"] = per_conn(rss["rss_connected_kb"])
    n["rss_per_conn_end_bytes"] = per_conn(rss["rss_end_kb"])

    fail = []
    if n["connected"] < a.clients:
        fail.append("only %d of %d clients connected" % (n["connected"], a.clients))
    if n["id_clients"] < n["connected"]:
        fail.append("%d clients were not open from the window's start to the end"
                    % (n["connected"] - n["id_clients"]))
    if not n["sent_window"] or not spans:
        fail.append("no message was sent and seen in the window: nothing was checked")
    for k in ("missing", "id_behind", "id_mismatch", "id_gaps", "id_reorders", "out_of_order", "dups",
              "closed_by_server", "send_overflow"):
        if n[k]:
            fail.append("%s %d" % (k, n[k]))
    if n["id_cross"]:
        fail.append("loadgen processes %s did not all see ids %d..%d"
                    % (n["id_cross"], n["id_lo"], n["id_hi"]))
    if a.server_nofile and n["connected"] <= a.server_nofile:
        fail.append("%d connections do not exceed the server's open-file limit %d: nothing shown"
                    % (n["connected"], a.server_nofile))
    if a.server_nofile and n["server_fds"] >= a.server_nofile:
        fail.append("the server held %d descriptors under a limit of %d" % (n["server_fds"], a.server_nofile))
    if n["rss_per_conn_bytes"] > a.max_rss_per_conn:
        fail.append("server RSS grew %.0f B per connection (limit %d)"
                    % (n["rss_per_conn_bytes"], a.max_rss_per_conn))
    return n, fail


def report(a, counts, n, fail, t_ready):
    mb = lambda kb: kb / 1024
    print("hundred_k: %d clients in %d loadgen processes (%s), %d sender(s) at %g msg/s, %d B; "
          "warm-up %g s, window %g s" % (a.clients, len(counts), ", ".join(map(str, counts)),
                                          a.senders, a.rate, a.size, a.warmup, a.duration))
    print("  connect     %d/%d open; slowest process %.2f s (first connect to last handshake); "
          "all ready %.2f s after launch" % (n["connected"], a.clients, n["connect_s"], t_ready))
    print("  delivered   %d messages in the window, %.0f deliveries/s; %d of %d window deliveries "
          "timed over all clients" % (n["sent_window"], n["deliveries_per_s"], n["lat_all_count"],
                                      n["lat_all_expected"]))
    print("  latency     p50 %.2f ms  p99 %.2f ms  max %.2f ms  (all clients, histograms merged)"
          % (n["lat_p50_us"] / 1e3, n["lat_p99_us"] / 1e3, n["lat_max_us"] / 1e3))
    print("  loss/order  missing %d, behind %d, out-of-order %d, dups %d, closed-by-server %d"
          % (n["missing"], n["id_behind"], n["out_of_order"], n["dups"], n["closed_by_server"]))
    print("  server ids  window %d..%d over %d clients: id_gaps %d (%d ids skipped), id_reorders %d, "
          "id_mismatch %d, processes short of the window %d"
          % (n["id_lo"], n["id_hi"], n["id_clients"], n["id_gaps"], n["id_skipped"], n["id_reorders"],
             n["id_mismatch"], len(n["id_cross"])))
    print("  server      rss %.1f MB before, %.1f MB connected (%.0f B/conn), %.1f MB at end "
          "(%.0f B/conn); cpu %.0f %% of a core, %.0f ns/delivery"
          % (mb(n["rss_before_kb"]), mb(n["rss_connected_kb"]), n["rss_per_conn_bytes"],
             mb(n["rss_end_kb"]), n["rss_per_conn_end_bytes"], 100 * n["server_cpu_util"],
             n["server_cpu_ns_per_delivery"]))
    print("  descriptors the server held %d%s" % (n["server_fds"], " under a limit of %d (prlimit)"
          % a.server_nofile if a.server_nofile else ""))
    print("  verdict     %s" % ("PASS" if not fail else "FAIL: " + "; ".join(fail)), flush=True)


def main():
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--server", default=os.path.join(repo, "build", "ringcast"))
    p.add_argument("--server-args", default="", help="extra server flags, e.g. \"--threads 6\"")
    p.add_argument("--server-cpus", default="0", help="taskset list for the server; '' = not pinned")
    p.add_argument("--server-nofile", type=int, help="the server's open-file limit, set by prlimit: "
                   "with fewer than --clients, the run shows connections past it")
    p.add_argument("--loadgen", default=os.path.join(repo, "build", "perf", "loadgen"))
    p.add_argument("--loadgen-cpus", default="1", help="CPUs the loadgens are pinned to, round robin "
                   "(comma-separated); '' = not pinned")
    p.add_argument("--clients", type=int, default=100000)
    p.add_argument("--processes", type=int, default=0, help="loadgen processes (default: clients / 19000, "
                   "rounded up)")
    p.add_argument("--senders", type=int, default=1, help="sending clients, all in the first process")
    p.add_argument("--rate", type=float, default=1, help="messages/s from all senders together")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("-w", "--warmup", type=float, default=2)
    p.add_argument("-d", "--duration", type=float, default=60)
    p.add_argument("--drain", type=float, default=10, help="seconds the last messages get to arrive")
    p.add_argument("--settle", type=float, default=1)
    p.add_argument("--connect-rate", type=float, default=5000, help="per loadgen process")
    p.add_argument("--connect-timeout", type=float, default=120)
    p.add_argument("--max-rss-per-conn", type=int, default=400, help="bytes; fail above it")
    p.add_argument("--json", help="write the combined numbers here")
    a = p.parse_args()

    processes = a.processes or math.ceil(a.clients / MAX_PER_PROCESS)
    if not 1 <= a.clients <= 200000 or not 1 <= processes <= 32:
        sys.exit("hundred_k.py: 1..200000 clients in 1..32 processes")
    if math.ceil(a.clients / processes) > MAX_PER_PROCESS:
        sys.exit("hundred_k.py: %d clients need at least %d processes (%d per process at most)"
                 % (a.clients, math.ceil(a.clients / MAX_PER_PROCESS), MAX_PER_PROCESS))
    if a.rate < 1 or a.senders < 1 or not 0 < a.duration <= 3600:
        sys.exit("hundred_k.py: --rate >= 1 (a broadcast at least every second), --senders >= 1, "
                 "--duration 0..3600")
    for tool in [a.server, a.loadgen] + (["taskset"] if a.server_cpus else []):
        if not shutil.which(tool):
            sys.exit("hundred_k.py: %s not found (build with: meson setup build && ninja -C build)" % tool)
    counts = split(a.clients, processes)
    cpus = [c for c in a.loadgen_cpus.split(",") if c]

    tmp = tempfile.mkdtemp(prefix="ringcast-100k-")
    procs, logs = [], []
    try:
        srv, port = bench.start_server(a.server, tmp, ["--rate-limit", "0", "--no-persist"] +
                                       shlex.split(a.server_args), cpus=a.server_cpus or None,
                                       nofile=a.server_nofile)
        try:
            time.sleep(0.5)
            rss = {"rss_before_kb": bench.rss_kb(srv.pid)}
            t0 = time.monotonic()
            for i, n in enumerate(counts):
                log = open(os.path.join(tmp, "lg.%d.log" % i), "w")
                logs.append(log)
                procs.append(subprocess.Popen(loadgen_cmd(a, i, n, port, srv.pid, tmp, cpus),
                                              stdin=subprocess.DEVNULL, stdout=log, stderr=log))
            connected, why = wait_ready(procs, tmp, t0 + a.connect_timeout + a.settle + 30)
            if why:
                sys.exit("hundred_k.py: %s" % why)
            t_ready = time.monotonic() - t0
            rss["rss_connected_kb"] = bench.rss_kb(srv.pid)
            rss["server_fds"] = len(os.listdir("/proc/%d/fd" % srv.pid))
            if rss["rss_connected_kb"] is None or srv.poll() is not None:
                sys.exit("hundred_k.py: the server exited while the clients connected")
            print("hundred_k: %d clients connected in %.1f s; server RSS %.1f MB; sending for %g + %g s"
                  % (sum(connected), t_ready, rss["rss_connected_kb"] / 1024, a.warmup, a.duration),
                  flush=True)
            open(os.path.join(tmp, "start"), "w").close()
            end = time.monotonic() + a.warmup + a.duration + a.drain + 30
            for i, p in enumerate(procs):
                try:
                    p.wait(max(1, end - time.monotonic()))
                except subprocess.TimeoutExpired:
                    stop_all(procs)
                    sys.exit("hundred_k.py: loadgen %d did not finish in time:\n%s"
                             % (i, tail(os.path.join(tmp, "lg.%d.log" % i))))
            rss["rss_end_kb"] = bench.rss_kb(srv.pid)
            if srv.poll() is not None:
                sys.exit("hundred_k.py: the server exited (%d) during the run" % srv.returncode)
        finally:
            stop_all(procs)
            bench.stop(srv)
        results = []
        for i, p in enumerate(procs):
            path = os.path.join(tmp, "lg.%d.json" % i)
            # Exit 3: finished, but a check failed; the JSON says which.
            if p.returncode not in (0, 3) or not os.path.exists(path):
                sys.exit("hundred_k.py: loadgen %d failed (exit %d):\n%s"
                         % (i, p.returncode, tail(os.path.join(tmp, "lg.%d.log" % i))))
            with open(path) as f:
                results.append(json.load(f))
        n, fail = judge(a, results, connected, rss)
        report(a, counts, n, fail, t_ready)
        if a.json:
            with open(a.json, "w") as f:
                json.dump(dict(n, clients=a.clients, processes=processes, rate=a.rate,
                               duration=a.duration, server_args=a.server_args, failures=fail), f, indent=1)
        return 1 if fail else 0
    finally:
        for log in logs:
            log.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""perf/persist_cost.py: what the SQLite history and the durable
acknowledgement cost: CPU per delivery and delivery latency with persistence
off (--no-persist), on (the default: WAL, a commit reaches the disk within
100 ms) and --fsync always (every group commit fsynced before its messages
are broadcast).

For each point and repeat it runs a fresh ringcast (fresh database) in each
mode, the order rotating from repeat to repeat so that drift in the machine's
load falls on all three. Each run is one build/perf/loadgen run: N clients,
10 senders, 64-byte messages; the server's CPU (every thread, the SQLite
writer included) per delivery from /proc/PID. Latency is from the send
timestamp to receipt, so it includes the wait for the commit.

  /usr/bin/python3 perf/persist_cost.py [--build build] [-n 5000]
      [--deliveries 100000,300000] [--repeats 3] [-w 2] [-d 5]

Loopback only; stops by itself; stops what it starts.
"""
import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

import bench

MODES = (("off", ["--no-persist"]), ("on", []), ("fsync", ["--fsync", "always"]))


def one_run(a, deliveries, mode, flags):
    workdir = tempfile.mkdtemp(prefix="ringcast-persist-")  # a fresh database each run
    try:
        proc, port = bench.start_server(a.server, workdir, ["--rate-limit", "0"] + flags)
        try:
            r = bench.loadgen(a.loadgen, port, proc.pid, workdir,
                              ["-n", str(a.conns), "-s", "10", "--deliveries", str(deliveries),
                               "-w", str(a.warmup), "-d", str(a.duration), "--drain", "3"],
                              a.warmup + a.duration + 90)
        finally:
            bench.stop(proc)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    r["mode"] = mode
    r["point"] = deliveries
    return r


def fmt_run(r):
    return ("%8d/s %-5s %6.0f ns/delivery %9.0f delivered/s p50 %6.1f ms p99 %6.1f ms missing %d "
            "loadgen %.2f other %.2f" % (
                r["point"], r["mode"], r["server_cpu_ns_per_delivery"], r["deliveries_per_s"],
                r["lat_p50_us"] / 1e3, r["lat_p99_us"] / 1e3, r["missing"],
                r["loadgen_cpu_util"], r["other_cpu_util"]))


def table(runs, points):
    med = lambda rs, k: statistics.median(r[k] for r in rs)
    lines = ["offered/s  mode  | ns/delivery  x off | delivered/s | p50 ms  p99 ms | "
             "+p50 ms +p99 ms vs off | missing | loadgen | other", "-" * 118]
    for pt in points:
        off = [r for r in runs if r["point"] == pt and r["mode"] == "off"]
        for mode, _ in MODES:
            rs = [r for r in runs if r["point"] == pt and r["mode"] == mode]
            if not rs or not off:
                continue
            cpu = med(rs, "server_cpu_ns_per_delivery")
            p50, p99 = med(rs, "lat_p50_us") / 1e3, med(rs, "lat_p99_us") / 1e3
            lines.append("%9d  %-5s | %11.0f %6.2f | %11.0f | %6.1f %7.1f | %6.1f %7.1f        | %7d | %5.0f %% | %3.0f %%" % (
                pt, mode, cpu, cpu / med(off, "server_cpu_ns_per_delivery"), med(rs, "deliveries_per_s"),
                p50, p99, p50 - med(off, "lat_p50_us") / 1e3, p99 - med(off, "lat_p99_us") / 1e3,
                sum(r["missing"] for r in rs), 100 * max(r["loadgen_cpu_util"] for r in rs),
                100 * max(r["other_cpu_util"] for r in rs)))
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--build", default=os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "build"))
    p.add_argument("-n", "--conns", type=int, default=5000)
    p.add_argument("--deliveries", default="100000,300000", help="offered deliveries/s, comma-separated")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("-w", "--warmup", type=float, default=2)
    p.add_argument("-d", "--duration", type=float, default=5)
    a = p.parse_args()
    a.server = os.path.join(a.build, "ringcast")
    a.loadgen = os.path.join(a.build, "perf", "loadgen")
    for tool in ("taskset", a.server, a.loadgen):
        if not shutil.which(tool):
            sys.exit("persist_cost.py: %s not found" % tool)
    points = [int(x) for x in a.deliveries.split(",")]
    print("persist_cost.py: %s, %d clients, 10 senders, 64 B, warm-up %g s, window %g s, %d repeats" % (
        time.strftime("%Y-%m-%d %H:%M"), a.conns, a.warmup, a.duration, a.repeats), flush=True)
    runs = []
    for pt in points:
        for rep in range(a.repeats):
            k = rep % len(MODES)  # rotate the order: off-on-fsync, on-fsync-off, ...
            for mode, flags in MODES[k:] + MODES[:k]:
                r = one_run(a, pt, mode, flags)
                runs.append(r)
                print(fmt_run(r), flush=True)
    print("\nmedians of %d; off = --no-persist, on = default (--fsync interval), fsync = --fsync always;\n"
          "x off: CPU per delivery against off; loadgen, other: highest CPU use in any run (1 core = 100 %%)"
          % a.repeats)
    print(table(runs, points))


if __name__ == "__main__":
    main()

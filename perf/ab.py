#!/usr/bin/python3
"""perf/ab.py: two or more ringcast variants (binaries and flags) side by
side under identical load, in one invocation: server CPU per delivery (all
its threads), delivered rate, p50/p99 latency and missing messages, with
medians and the ratio of each variant to the first.

A variant is NAME=BINARY, optionally followed by server flags, and after
"--" by flags for its loadgen runs (the same server, another client: --sse):

  /usr/bin/python3 perf/ab.py --variant "old=/tmp/rc-old/build/ringcast" \\
      --variant "new=build/ringcast" [-n 5000] [--deliveries 100000,1000000] [--repeats 3]
  /usr/bin/python3 perf/ab.py --variant "ws=build/ringcast" --variant "sse=build/ringcast -- --sse"

For each point and repeat it runs a fresh server of each variant (fresh
working directory and database), the order rotating from repeat to repeat so
that drift in the machine's load falls on all of them. Each run is one
build/perf/loadgen run pinned to core 1 against the server pinned to core 0:
N clients, 10 senders, 64-byte messages. Flood control is off (--rate-limit 0)
unless a variant's flags say otherwise.

Loopback only; stops by itself; stops what it starts.
"""
import argparse
import os
import shlex
import shutil
import statistics
import sys
import tempfile
import time

import bench


def parse_variant(text):
    name, sep, rest = text.partition("=")
    words = shlex.split(rest)
    if not sep or not name or not words or words[0] == "--":
        sys.exit("ab.py: a variant is NAME=BINARY [FLAGS...] [-- LOADGEN FLAGS...], not %r" % text)
    cut = words.index("--") if "--" in words else len(words)
    return name, words[0], words[1:cut], words[cut + 1:]


def one_run(a, point, variant):
    name, binary, flags, lg_flags = variant
    workdir = tempfile.mkdtemp(prefix="ringcast-ab-")
    try:
        proc, port = bench.start_server(binary, workdir, ["--rate-limit", "0"] + flags,
                                        cpus=a.server_cpus or None)
        try:
            r = bench.loadgen(a.loadgen, port, proc.pid, workdir,
                              ["-n", str(a.conns), "-s", "10", "--deliveries", str(point),
                               "-w", str(a.warmup), "-d", str(a.duration), "--drain", "3"] + lg_flags,
                              a.warmup + a.duration + 90)
        finally:
            bench.stop(proc)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    r["variant"] = name
    r["point"] = point
    return r


def fmt_run(r):
    return ("%8d/s %-8s %6.0f ns/delivery %9.0f delivered/s p50 %6.1f ms p99 %6.1f ms missing %d "
            "loadgen %.2f other %.2f" % (
                r["point"], r["variant"], r["server_cpu_ns_per_delivery"], r["deliveries_per_s"],
                r["lat_p50_us"] / 1e3, r["lat_p99_us"] / 1e3, r["missing"],
                r["loadgen_cpu_util"], r["other_cpu_util"]))


def table(runs, points, names):
    def med(rs, k):
        return statistics.median(r[k] for r in rs)
    lines = ["offered/s  variant  | ns/delivery  x %-6s | delivered/s | p50 ms  p99 ms | missing | loadgen | other"
             % names[0], "-" * 104]
    for pt in points:
        base = [r for r in runs if r["point"] == pt and r["variant"] == names[0]]
        for name in names:
            rs = [r for r in runs if r["point"] == pt and r["variant"] == name]
            cpu = med(rs, "server_cpu_ns_per_delivery")
            lines.append("%9d  %-8s | %11.0f %8.2f | %11.0f | %6.1f %7.1f | %7d | %5.0f %% | %3.0f %%" % (
                pt, name, cpu, cpu / med(base, "server_cpu_ns_per_delivery"), med(rs, "deliveries_per_s"),
                med(rs, "lat_p50_us") / 1e3, med(rs, "lat_p99_us") / 1e3, sum(r["missing"] for r in rs),
                100 * max(r["loadgen_cpu_util"] for r in rs), 100 * max(r["other_cpu_util"] for r in rs)))
    return "\n".join(lines)


def main():
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--variant", action="append", required=True, help="NAME=BINARY [FLAGS...]; two or more")
    p.add_argument("--loadgen", default=os.path.join(repo, "build", "perf", "loadgen"))
    p.add_argument("-n", "--conns", type=int, default=5000)
    p.add_argument("--deliveries", default="100000,1000000", help="offered deliveries/s, comma-separated")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--server-cpus", default="0",
                   help="taskset list for the server (default 0; '' = not pinned, sharing the "
                        "loadgen's core)")
    p.add_argument("-w", "--warmup", type=float, default=2)
    p.add_argument("-d", "--duration", type=float, default=5)
    a = p.parse_args()
    variants = [parse_variant(v) for v in a.variant]
    names = [v[0] for v in variants]
    if len(variants) < 2 or len(set(names)) != len(names):
        sys.exit("ab.py: give two or more variants with different names")
    for tool in ["taskset", a.loadgen] + [v[1] for v in variants]:
        if not shutil.which(tool):
            sys.exit("ab.py: %s not found" % tool)
    points = [int(x) for x in a.deliveries.split(",")]
    print("ab.py: %s, %d clients, 10 senders, 64 B, warm-up %g s, window %g s, %d repeats; %s" % (
        time.strftime("%Y-%m-%d %H:%M"), a.conns, a.warmup, a.duration, a.repeats,
        "; ".join("%s = %s" % (v[0], " ".join([v[1]] + v[2] + (["--"] + v[3] if v[3] else [])))
                  for v in variants)), flush=True)
    runs = []
    for pt in points:
        for rep in range(a.repeats):
            k = rep % len(variants)  # rotate the order: A-B, B-A, ...
            for v in variants[k:] + variants[:k]:
                r = one_run(a, pt, v)
                runs.append(r)
                print(fmt_run(r), flush=True)
    print("\nmedians of %d; x %s: CPU per delivery against the first variant; loadgen, other: highest "
          "CPU use in any run (1 core = 100 %%)" % (a.repeats, names[0]))
    print(table(runs, points, names))


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""perf/send_zc.py: plain send against zero-copy send (--send-zc), by message size.

For each size and repeat it runs a fresh ringcast twice, once plain and once
with `--send-zc 1` (every send zero-copy), in alternating order (off, on, then
on, off, ...) so that drift in the machine's load falls on both. Each run is
one build/perf/loadgen run: N clients, one sender, R messages/s, server CPU
per delivery from /proc/PID. The server is pinned to core 0, loadgen to core 1.
Prints one line per run and a table of medians with the on/off ratio; the
server's /metrics gives how many zero-copy sends the kernel copied anyway
(loopback copies them all).

  /usr/bin/python3 perf/send_zc.py [--build build] [-n 1000] [--repeats 3]
      [--sizes 1024,16384,65536] [--rates 100,40,5] [-w 2] [-d 5] [--csv FILE]

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

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def one_run(a, size, rate, zc, workdir):
    flags = ["--no-persist", "--rate-limit", "0", "--max-message", "131072"]
    flags += ["--send-zc", "1"] if zc else []
    proc, port = bench.start_server(a.server, workdir, flags,
                                    "zero-copy send available" if zc else None)
    try:
        r = bench.loadgen(a.loadgen, port, proc.pid, workdir,
                          ["-n", str(a.conns), "-s", "1", "-r", str(rate), "-p", str(size),
                           "-w", str(a.warmup), "-d", str(a.duration), "--drain", "3"],
                          a.warmup + a.duration + 60)
        for key, name in (("zc_sends", "zerocopy_sends_total"), ("zc_copied", "zerocopy_copied_total"),
                          ("send_ops", "send_ops_total")):
            r[key] = bench.metric(port, name)
    finally:
        bench.stop(proc)
    r["mode"] = "on" if zc else "off"
    return r


def fmt_run(r):
    return ("%6d B %-3s %8.0f ns/delivery %9.0f delivered/s (offered %6.0f) p50 %7.0f us"
            " p99 %7.0f us missing %d loadgen %.2f other %.2f zc sends %d copied %d" % (
                r["size"], r["mode"], r["server_cpu_ns_per_delivery"], r["deliveries_per_s"],
                r["offered_deliveries"], r["lat_p50_us"], r["lat_p99_us"], r["missing"],
                r["loadgen_cpu_util"], r["other_cpu_util"], r["zc_sends"], r["zc_copied"]))


def pair_ratios(on, off):
    """on/off CPU per delivery of each repeat's two runs, which ran back to back."""
    cost = {(r["repeat"], r["mode"]): r["server_cpu_ns_per_delivery"] for r in on + off}
    reps = sorted({r["repeat"] for r in on} & {r["repeat"] for r in off})
    return [cost[(i, "on")] / cost[(i, "off")] for i in reps]


def table(runs, sizes):
    med = lambda rs, k: statistics.median(r[k] for r in rs)
    lines = ["  size  offered/s |  off ns/del  delivered/s  p50 ms  p99 ms |  on ns/del  delivered/s"
             "  p50 ms  p99 ms | on/off | pairs: median [range] | zc copied | loadgen | other",
             "-" * 154]
    for size in sizes:
        off = [r for r in runs if r["size"] == size and r["mode"] == "off"]
        on = [r for r in runs if r["size"] == size and r["mode"] == "on"]
        if not off or not on:
            continue
        o, n = med(off, "server_cpu_ns_per_delivery"), med(on, "server_cpu_ns_per_delivery")
        copied = sum(r["zc_copied"] for r in on)
        sends = sum(r["zc_sends"] for r in on)
        other = max(r["other_cpu_util"] for r in off + on)
        lg = max(r["loadgen_cpu_util"] for r in off + on)
        pr = pair_ratios(on, off)
        lines.append("%6s %10.0f | %11.0f %12.0f %7.1f %7.1f | %10.0f %12.0f %7.1f %7.1f | %6.2f |"
                     "  %4.2f [%4.2f-%4.2f]    | %3.0f %%    | %5.0f %% | %4.0f %%" % (
                         "%dK" % (size // 1024) if size % 1024 == 0 else size,
                         med(off + on, "offered_deliveries"),
                         o, med(off, "deliveries_per_s"), med(off, "lat_p50_us") / 1e3,
                         med(off, "lat_p99_us") / 1e3,
                         n, med(on, "deliveries_per_s"), med(on, "lat_p50_us") / 1e3,
                         med(on, "lat_p99_us") / 1e3,
                         n / o, statistics.median(pr), min(pr), max(pr), 100.0 * copied / sends if sends else 0, 100 * lg, 100 * other))
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--build", default=os.path.join(ROOT, "build"))
    p.add_argument("-n", "--conns", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--sizes", default="1024,16384,65536", help="payload bytes, comma-separated")
    p.add_argument("--rates", default="100,40,5",
                   help="messages/s from the one sender, one per size (default 100,40,5: "
                        "100k, 40k and 5k deliveries/s at 1000 clients, which the load "
                        "generator's one core can still receive)")
    p.add_argument("-w", "--warmup", type=float, default=2)
    p.add_argument("-d", "--duration", type=float, default=5)
    p.add_argument("--csv", help="also write every run here")
    a = p.parse_args()
    a.server = os.path.join(a.build, "ringcast")
    a.loadgen = os.path.join(a.build, "perf", "loadgen")
    sizes = [int(s) for s in a.sizes.split(",")]
    rates = [float(r) for r in a.rates.split(",")]
    if len(rates) != len(sizes):
        sys.exit("send_zc.py: give one rate per size")
    for tool in ("taskset", a.server, a.loadgen):
        if not shutil.which(tool):
            sys.exit("send_zc.py: %s not found" % tool)

    print("send_zc.py: %s, %d clients, 1 sender, warm-up %g s, window %g s, %d repeats" % (
        time.strftime("%Y-%m-%d %H:%M"), a.conns, a.warmup, a.duration, a.repeats), flush=True)
    runs = []
    workdir = tempfile.mkdtemp(prefix="ringcast-send-zc-")
    try:
        for size, rate in zip(sizes, rates):
            for rep in range(a.repeats):
                # off first on even repeats, on first on odd ones
                for zc in ((False, True) if rep % 2 == 0 else (True, False)):
                    r = one_run(a, size, rate, zc, workdir)
                    r["repeat"] = rep
                    runs.append(r)
                    print(fmt_run(r), flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    print("\nserver CPU per delivery, median of %d; on = --send-zc 1 (every send zero-copy);\n"
          "pairs: on/off of the two back-to-back runs of each repeat; loadgen, other: the\n"
          "highest CPU use in any run (1 core = 100 %%)" % a.repeats)
    print(table(runs, sizes))
    if a.csv:
        keys = sorted(runs[0])
        with open(a.csv, "w") as f:
            f.write(",".join(keys) + "\n")
            for r in runs:
                f.write(",".join(str(r[k]) for k in keys) + "\n")


if __name__ == "__main__":
    main()

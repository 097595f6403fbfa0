#!/usr/bin/python3
"""perf/edge_cost.py: where a message's CPU goes with several edges: each
thread of the server (rc-edge-N, rc-sequencer, rc-store) sampled from
/proc/PID/task over the measured window, divided by the messages and the
deliveries the server counted meanwhile (/metrics). This is the input of the
scaling model in perf/README.md: cost per delivery (the edges' fan-out),
cost per message on each edge (applying the sequencer's op: its frame, its
history slot), and the sequencer's cost per message (numbering, JSON,
hand-off to every edge).

  /usr/bin/python3 perf/edge_cost.py [--threads 2] [-n 50] [--deliveries 1000000] [-d 5]

One server pinned to core 0 (all its threads), one loadgen pinned to core 1,
10 senders, 64-byte messages, flood control off, history in memory
(--no-persist) unless --persist. Loopback only; stops by itself.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


def thread_cpu(pid):
    """{thread name: (CPU seconds, seconds waiting for a CPU) so far}, threads
    of one name added up; the wait is the scheduler's run-queue delay
    (/proc/.../schedstat), what a thread loses to others on its core."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                name = f.read().strip()
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                waited = int(f.read().split()[1]) / 1e9
        except OSError:
            continue
        if name.startswith("rc-edge") or name == "ringcast":
            group = "edges"  # edge 0 runs on the main thread
        elif name.startswith("iou-"):
            group = "io_uring workers"  # the kernel's io-wq threads, if any ran
        else:
            group = name
        cpu, wait = out.get(group, (0.0, 0.0))
        out[group] = (cpu + (int(fields[11]) + int(fields[12])) * TICK_S, wait + waited)
    return out


def main():
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--server", default=os.path.join(repo, "build", "ringcast"))
    p.add_argument("--loadgen", default=os.path.join(repo, "build", "perf", "loadgen"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("-n", "--conns", type=int, default=50)
    p.add_argument("--deliveries", type=int, default=1000000, help="offered deliveries/s")
    p.add_argument("-w", "--warmup", type=float, default=2)
    p.add_argument("-d", "--duration", type=float, default=5)
    p.add_argument("--persist", action="store_true", help="history in SQLite (default: in memory)")
    p.add_argument("--server-cpus", default="0", help="taskset list for the server ('' = not pinned)")
    a = p.parse_args()

    workdir = tempfile.mkdtemp(prefix="ringcast-edge-cost-")
    flags = ["--threads", str(a.threads)] + ([] if a.persist else ["--no-persist"])
    try:
        proc, port = bench.start_server(a.server, workdir, ["--rate-limit", "0"] + flags,
                                        cpus=a.server_cpus or None)
        try:
            lg = subprocess.Popen([a.loadgen, "--port", str(port), "--cpu", "1", "-q", "-n", str(a.conns),
                                   "-s", "10", "--deliveries", str(a.deliveries), "-w", str(a.warmup),
                                   "-d", str(a.duration), "--drain", "2"],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            # the window: after the connects and the warm-up, well inside the run
            deadline = time.monotonic() + 60
            while bench.metric(port, "websockets_opened_total") < a.conns:
                if time.monotonic() > deadline or lg.poll() is not None:
                    sys.exit("edge_cost.py: the clients did not connect")
                time.sleep(0.1)
            time.sleep(a.warmup + 0.5)
            cpu0, msg0, del0, t0 = (thread_cpu(proc.pid), bench.metric(port, "chat_messages_total"),
                                    bench.metric(port, "deliveries_total"), time.monotonic())
            time.sleep(a.duration - 1)
            cpu1, msg1, del1, t1 = (thread_cpu(proc.pid), bench.metric(port, "chat_messages_total"),
                                    bench.metric(port, "deliveries_total"), time.monotonic())
            lg.wait(a.duration + 30)
        finally:
            bench.stop(proc)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    msgs, dels, secs = msg1 - msg0, del1 - del0, t1 - t0
    print("edge_cost: --threads %d, %d clients, %.0f messages/s, %.0f deliveries/s over %.1f s"
          % (a.threads, a.conns, msgs / secs, dels / secs, secs))
    for name in sorted(cpu1):
        used = cpu1[name][0] - cpu0.get(name, (0.0, 0.0))[0]
        waited = cpu1[name][1] - cpu0.get(name, (0.0, 0.0))[1]
        print("  %-16s %5.1f %% of a core  %8.2f us/message  %7.1f ns/delivery  waited for a CPU %5.1f %%"
              % (name, 100 * used / secs, 1e6 * used / msgs if msgs else 0,
                 1e9 * used / dels if dels else 0, 100 * waited / secs))


if __name__ == "__main__":
    main()

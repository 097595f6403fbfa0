#!/usr/bin/python3
"""perf/cluster.py: one ringcast node alone against nodes sharing a room
through Redis (`--redis`), same clients and offered load, in one invocation:
server CPU per delivery on each node, Redis CPU per message and per
delivery, p50/p99 latency over every client, nothing missing.

  /usr/bin/python3 perf/cluster.py [-n 5000] [--deliveries 100000,1000000] [--repeats 3]
      [--configs single,cluster1,cluster2] [--redis-aof everysec|always|no] [--quick]

Configurations (all nodes `--threads 1 --rate-limit 0`):

  single    one node, `--no-persist`, no Redis;
  cluster1  one node `--redis redis://127.0.0.1:P` and one redis-server: the
            Redis hop alone;
  cluster2  two such nodes on one redis-server; half the clients on each.

The clients are the same in every configuration: two halves, each one
loadgen process holding the senders (half of --senders each) and one or
more holding the receivers. Sender processes have only their senders as
clients so that the receiver processes, which have no senders and so drain
the whole --drain, can judge every node's delivery of every message (a
sending loadgen stops draining once its own messages are in, and could
miss the other half's last ones). In `single` and `cluster1` both halves go
to the one node; in `cluster2` half 0 goes to node 0 and half 1 to node 1.

Each run starts fresh servers (and a fresh Redis in a temporary directory),
connects every client, then starts all loadgens together (ready/start
files), and samples /proc at the window's edges for every process it
started. Per repeat the configurations run in rotating order. Medians over
the repeats, ratios against `single` from the same invocation.

Loopback only; bounded in time; stops by itself and stops everything it
started (also on Ctrl-C or an error). Exit 0 ok, 1 a run failed, 3 a
correctness check failed: id gaps, reorders, duplicates, mismatch, a client
dropped, or a message that did not reach every client on every node (see
perf/README.md, "cluster.py").
"""
import argparse
import ctypes
import json
import math
import os
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

MAX_PER_PROCESS = 19000      # loadgen clients per process (open-file limit 20,000)
SENDER_BASE_STEP = 1000      # sender ids of loadgen process i start at i * this
TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")
CONFIGS = {  # name: (nodes, with Redis)
    "single": (1, False),
    "cluster1": (1, True),
    "cluster2": (2, True),
}

_procs = []  # every process started, stopped in one place (stop_all)


class RunFailed(Exception):
    """A run could not be done (a process did not start, exited, timed out)."""


def _die_with_parent():
    # If this script is killed outright, the kernel kills the children too
    # (PR_SET_PDEATHSIG survives taskset's execve).
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)


def spawn(cmd, log_path, cwd=None):
    log = open(log_path, "w")
    try:
        p = subprocess.Popen(cmd, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                             preexec_fn=_die_with_parent)
    finally:
        log.close()
    p.log_path = log_path
    _procs.append(p)
    return p


def stop(p, grace=3):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(grace)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    if p in _procs:
        _procs.remove(p)


def stop_all():
    for p in list(_procs):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in list(_procs):
        stop(p)


def tail(path, lines=15):
    try:
        with open(path) as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return "(no log)\n"


def pinned(cpus, cmd):
    return (["taskset", "-c", cpus] if cpus else []) + cmd


# ---------------------------------------------------------------- /proc

def cpu_sample(pid):
    """(utime+stime seconds, on-CPU seconds summed over its threads'
    schedstat) of a live process. The first is the usual number, exact to a
    10 ms tick; the second is exact to the nanosecond, which matters for
    Redis, whose few messages per window make a tick worth microseconds per
    message. Threads that exit during the window leave the second short."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = (int(fields[11]) + int(fields[12])) * TICK_S
    exact = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                exact += int(f.read().split()[0])
        except OSError:
            pass
    return ticks, exact / 1e9


def machine_busy_s():
    """Busy CPU seconds of the whole machine so far (/proc/stat, all cores)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) * TICK_S


def sample(pids):
    out = {"t": time.monotonic(), "busy": machine_busy_s(), "cpu": {}}
    for name, pid in pids.items():
        try:
            out["cpu"][name] = cpu_sample(pid)
        except OSError:
            raise RunFailed("%s (pid %d) exited during the run" % (name, pid))
    return out


# ---------------------------------------------------------------- Redis

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_call(port, *args, timeout=2.0):
    """One command in RESP, its reply as text (enough for PING, CONFIG
    RESETSTAT and INFO); raises OSError if Redis does not answer."""
    req = "*%d\r\n" % len(args) + "".join("$%d\r\n%s\r\n" % (len(a.encode()), a) for a in args)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(req.encode())
        buf = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                raise OSError("redis closed the connection")
            buf += chunk
            if buf[:1] in (b"+", b"-", b":") and buf.endswith(b"\r\n"):
                return buf.decode()
            if buf[:1] == b"$":
                head, _, rest = buf.partition(b"\r\n")
                if len(rest) >= int(head[1:]) + 2:
                    return rest[:int(head[1:])].decode()


def start_redis(a, workdir):
    """redis-server on a free loopback port, persistence as --redis-aof;
    returns (process, port)."""
    aof = ["--appendonly", "no"] if a.redis_aof == "no" else \
        ["--appendonly", "yes", "--appendfsync", a.redis_aof]
    for attempt in range(3):
        port = free_port()
        p = spawn(pinned(a.server_cpus, [a.redis_server, "--port", str(port), "--bind", "127.0.0.1",
                                          "--dir", workdir, "--save", "", "--daemonize", "no"] +
                         aof + shlex.split(a.redis_args)),
                  os.path.join(workdir, "redis.%d.log" % attempt))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and p.poll() is None:
            try:
                if redis_call(port, "PING").startswith("+PONG"):
                    return p, port
            except OSError:
                time.sleep(0.05)
        stop(p)
        if "Address already in use" not in tail(p.log_path):
            break
    raise RunFailed("redis-server did not start:\n%s" % tail(p.log_path))


def redis_commands(info):
    """{command: (calls, usec)} from INFO commandstats."""
    out = {}
    for m in re.finditer(r"^cmdstat_(\S+):calls=(\d+),usec=(\d+)", info, re.M):
        out[m.group(1)] = (int(m.group(2)), int(m.group(3)))
    return out


# ---------------------------------------------------------------- nodes

def start_node(a, workdir, i, flags):
    """A fresh ringcast on a free port; returns (process, port). A build
    without cluster mode rejects --redis: that is said plainly."""
    os.makedirs(workdir, exist_ok=True)
    cmd = pinned(a.server_cpus, [a.server, "--port", "0", "--threads", "1", "--rate-limit", "0"] +
                 flags + shlex.split(a.node_args))
    p = spawn(cmd, os.path.join(workdir, "node%d.log" % i), cwd=workdir)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with open(p.log_path) as f:
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)/", f.read())
        if m:
            return p, int(m.group(1))
        if p.poll() is not None:
            break
        time.sleep(0.05)
    stop(p)
    log = tail(p.log_path)
    if any(f.startswith("--redis") for f in flags) and re.search(r"unrecognized option.*--redis", log):
        raise RunFailed("%s has no cluster mode: it rejects --redis (%s). Build a ringcast with "
                        "`--redis URL`, or run only --configs single.\n%s" % (a.server, " ".join(cmd), log))
    raise RunFailed("node %d did not start (%s):\n%s" % (i, " ".join(cmd), log))


# ---------------------------------------------------------------- loadgens

def split(total, parts):
    q, r = divmod(total, parts)
    return [q + (1 if i < r else 0) for i in range(parts)]


def loadgen_plan(a):
    """The loadgen processes, the same in every configuration: two halves,
    each a sender process (its senders are all its clients) and receiver
    processes. Returns [(half, role, clients, senders)]."""
    plan = []
    for half, (n, s) in enumerate(zip(split(a.clients, 2), split(a.senders, 2))):
        plan.append((half, "send", s, s))
        for r in split(n - s, math.ceil((n - s) / MAX_PER_PROCESS)):
            plan.append((half, "recv", r, 0))
    return plan


def loadgen_cmd(a, k, proc_plan, port, msg_rate, tmp):
    half, role, n, s = proc_plan
    cpus = [c for c in a.loadgen_cpus.split(",") if c]
    cmd = [a.loadgen, "--port", str(port), "-n", str(n), "-s", str(s),
           "-r", "%.6f" % (msg_rate * s / a.senders if s else 0),
           "--sender-base", str(k * SENDER_BASE_STEP), "-p", str(a.size),
           "-w", str(a.warmup), "-d", str(a.duration), "--drain", str(a.drain),
           "--settle", "1", "--connect-rate", "5000", "--connect-timeout", "60", "--src-addrs", "16",
           "--ready-file", os.path.join(tmp, "ready.%d" % k), "--start-file", os.path.join(tmp, "start"),
           "--json", os.path.join(tmp, "lg.%d.json" % k), "--label", "cluster-%d-%s" % (half, role)]
    if cpus:
        cmd += ["--cpu", cpus[k % len(cpus)]]
    return cmd


def wait_ready(lgs, tmp, deadline):
    ready = set()
    while len(ready) < len(lgs):
        for k, p in enumerate(lgs):
            if k in ready:
                continue
            if os.path.exists(os.path.join(tmp, "ready.%d" % k)):
                ready.add(k)
            elif p.poll() is not None:
                raise RunFailed("loadgen %d exited (%d) before it was ready:\n%s"
                                % (k, p.returncode, tail(p.log_path)))
        if time.monotonic() > deadline:
            raise RunFailed("not all loadgens connected in time (%d of %d ready)" % (len(ready), len(lgs)))
        time.sleep(0.02)


def sleep_until(t):
    while True:
        left = t - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, 0.5))


# ---------------------------------------------------------------- one run

def one_run(a, config, point):
    nodes_n, with_redis = CONFIGS[config]
    tmp = tempfile.mkdtemp(prefix="ringcast-cluster-")
    try:
        pids, nodes, redis_port = {}, [], None
        if with_redis:
            redis, redis_port = start_redis(a, tmp)
            pids["redis"] = redis.pid
        for i in range(nodes_n):
            flags = ["--redis", "redis://127.0.0.1:%d" % redis_port] if with_redis else ["--no-persist"]
            p, port = start_node(a, os.path.join(tmp, "node%d" % i), i, flags)
            nodes.append((p, port))
            pids["node%d" % i] = p.pid
        plan = loadgen_plan(a)
        msg_rate = point / a.clients
        lgs = []
        for k, pp in enumerate(plan):
            node = pp[0] % nodes_n
            lgs.append(spawn(loadgen_cmd(a, k, pp, nodes[node][1], msg_rate, tmp),
                             os.path.join(tmp, "lg.%d.log" % k)))
            pids["lg%d" % k] = lgs[-1].pid
        wait_ready(lgs, tmp, time.monotonic() + 90)
        for name, pid in pids.items():
            if name.startswith(("node", "redis")) and not os.path.exists("/proc/%d" % pid):
                raise RunFailed("%s exited while the clients connected" % name)
        # Redis's CPU with every client connected and nothing sent: its
        # housekeeping and the nodes' idle traffic, subtracted to give the
        # cost of a message (it is a large share at a few hundred per second).
        idle = None
        if with_redis:
            i0 = sample({"redis": pids["redis"]})
            time.sleep(a.idle)
            i1 = sample({"redis": pids["redis"]})
            idle = (i1["cpu"]["redis"][1] - i0["cpu"]["redis"][1]) / (i1["t"] - i0["t"])

        # The loadgens see the start file within 10 ms and open their
        # windows warm-up seconds later; sample just inside that window.
        open(os.path.join(tmp, "start"), "w").close()
        t0 = time.monotonic()
        try:
            sleep_until(t0 + a.warmup + 0.01)
            if with_redis:
                redis_call(redis_port, "CONFIG", "RESETSTAT")
            s0 = sample(pids)
            sleep_until(t0 + a.warmup + a.duration + 0.01)
            s1 = sample(pids)
            cmdstats = redis_commands(redis_call(redis_port, "INFO", "commandstats")) if with_redis else {}
        except OSError as e:
            raise RunFailed("Redis stopped answering during the run (%s):\n%s" % (e, tail(redis.log_path)))

        end = time.monotonic() + a.drain + 30
        for k, p in enumerate(lgs):
            try:
                p.wait(max(1, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                raise RunFailed("loadgen %d did not finish in time:\n%s" % (k, tail(p.log_path)))
        for name, (p, _) in zip(("node0", "node1"), nodes):
            if p.poll() is not None:
                raise RunFailed("%s exited (%d) during the run:\n%s" % (name, p.returncode, tail(p.log_path)))
        results = []
        for k, p in enumerate(lgs):
            path = os.path.join(tmp, "lg.%d.json" % k)
            # Exit 3: finished, but a check failed; the JSON says which.
            if p.returncode not in (0, 3) or not os.path.exists(path):
                raise RunFailed("loadgen %d failed (exit %d):\n%s" % (k, p.returncode, tail(p.log_path)))
            with open(path) as f:
                r = json.load(f)
            r["exit"], r["half"], r["role"] = p.returncode, plan[k][0], plan[k][1]
            r["node"] = plan[k][0] % nodes_n
            results.append(r)
        return combine(a, config, point, nodes_n, results, s0, s1, cmdstats, idle)
    finally:
        stop_all()
        shutil.rmtree(tmp, ignore_errors=True)


def merged_quantiles(results, qs):
    """Percentiles over every process's window deliveries: their histograms
    added bucket by bucket (bucket's upper edge, ≤ 1.6 % high)."""
    buckets = {}
    for r in results:
        for high, count in r.get("lat_all_hist", []):
            buckets[high] = buckets.get(high, 0) + count
    total = sum(buckets.values())
    out = []
    for q in qs:
        want, seen, value = max(1, math.ceil(q * total)), 0, 0
        for high in sorted(buckets):
            seen += buckets[high]
            if seen >= want:
                value = high
                break
        out.append(value)
    return out


def combine(a, config, point, nodes_n, results, s0, s1, cmdstats, redis_idle):
    """One run's numbers and its failures, from the loadgens' JSON and the
    two /proc samples."""
    wall = s1["t"] - s0["t"]
    used = {k: s1["cpu"][k][0] - s0["cpu"][k][0] for k in s1["cpu"]}
    exact = {k: s1["cpu"][k][1] - s0["cpu"][k][1] for k in s1["cpu"]}
    sm = lambda key, rs=results: sum(r[key] for r in rs)
    msgs_per_s = sm("sent_rate")
    dels_per_s = sm("deliveries_per_s")
    x = {"config": config, "point": point, "wall_s": wall, "msgs_per_s": msgs_per_s,
         "deliveries_per_s": dels_per_s, "node_us_per_delivery": [], "node_cpu_util": []}
    for i in range(nodes_n):
        # a node's deliveries: every marked frame its clients received
        d = sm("deliveries_per_s", [r for r in results if r["node"] == i])
        x["node_cpu_util"].append(used["node%d" % i] / wall)
        x["node_us_per_delivery"].append(1e6 * used["node%d" % i] / (d * wall) if d else 0)
    nodes_cpu = sum(used["node%d" % i] for i in range(nodes_n))
    x["server_us_per_delivery"] = 1e6 * nodes_cpu / (dels_per_s * wall) if dels_per_s else 0
    x["server_us_per_message"] = 1e6 * nodes_cpu / (msgs_per_s * wall) if msgs_per_s else 0
    redis_cpu = exact.get("redis", 0.0)
    x["redis_cpu_util"] = redis_cpu / wall
    x["redis_cpu_util_ticks"] = used.get("redis", 0.0) / wall
    x["redis_us_per_message"] = 1e6 * redis_cpu / (msgs_per_s * wall) if msgs_per_s else 0
    x["redis_us_per_delivery"] = 1e6 * redis_cpu / (dels_per_s * wall) if dels_per_s else 0
    x["redis_idle_util"] = redis_idle or 0.0
    x["redis_net_us_per_message"] = 1e6 * (redis_cpu - x["redis_idle_util"] * wall) / (msgs_per_s * wall) \
        if msgs_per_s else 0
    x["total_us_per_delivery"] = x["server_us_per_delivery"] + x["redis_us_per_delivery"]
    window_msgs = msgs_per_s * wall
    x["redis_commands_per_message"] = {c: round(n / window_msgs, 2) for c, (n, _) in cmdstats.items()
                                       if window_msgs and not c.startswith(("config", "info"))}
    lg_cpu = sum(v for k, v in used.items() if k.startswith("lg"))
    x["loadgen_cpu_util"] = lg_cpu / wall
    x["other_cpu_util"] = max(0.0, (s1["busy"] - s0["busy"] - sum(used.values())) / wall)
    p50, p99 = merged_quantiles(results, [0.5, 0.99])
    x["lat_p50_ms"], x["lat_p99_ms"] = p50 / 1e6, p99 / 1e6

    # Every message sent in the window, by any sender, at every client.
    # The loadgens' windows open within ~10 ms of each other, not together,
    # so the count may be off by the messages of those edges: `slack`.
    # This is the check that sees a node missing another node's messages
    # (the loadgens' own `missing` covers only their own senders' messages
    # at their own clients; and separate nodes numbering separately would
    # give every client a gapless sequence of its own).
    sent = sm("sent_window")
    slack = msgs_per_s * 0.05 + 2
    x["expected_by_count"] = sent * sm("id_clients")
    x["received"] = sm("lat_all_count")
    # What the table shows: per process, its window's ids times its clients,
    # exact when the nodes share one sequence (checked below). An id at the
    # window's edge may belong to a message sent just outside it.
    spans = [r for r in results if r["id_window_hi"]]
    x["expected"] = sum((r["id_window_hi"] - r["id_window_lo"] + 1) * r["id_clients"] for r in spans)
    for k in ("missing", "id_behind", "id_gaps", "id_reorders", "id_mismatch", "dups", "out_of_order",
              "closed_by_server", "send_overflow", "connected"):
        x[k] = sm(k)
    # Across nodes: every client of a receiver process (which drained the
    # whole --drain) must have seen every window id that any client of any
    # node saw. A sender process may stop draining before the other half's
    # last messages arrive, so it is not judged on those.
    lo = min((r["id_window_lo"] for r in spans), default=0)
    hi = max((r["id_window_hi"] for r in spans), default=0)
    short = [r for r in results if r["role"] == "recv" and spans
             and not (r["id_first_max"] <= lo and r["id_last_min"] >= hi)]
    x["short_clients"] = sum(r["id_clients"] for r in short)
    x["id_window"] = [lo, hi]
    x["short_deliveries"] = max(0, x["expected_by_count"] - x["received"])

    fail = []
    if x["connected"] < a.clients:
        fail.append("only %d of %d clients connected" % (x["connected"], a.clients))
    if not spans or not x["received"]:
        fail.append("no message was sent and seen in the window: nothing was checked")
    for k in ("id_gaps", "id_reorders", "id_mismatch", "dups", "out_of_order", "closed_by_server"):
        if x[k]:
            fail.append("%s %d" % (k, x[k]))
    for r in results:
        if r["exit"] == 3 and not fail:
            fail.append("loadgen %s exited 3" % r["label"])
    if x["short_deliveries"] > slack * sm("id_clients"):
        fail.append("%d of %d deliveries of the window's messages did not arrive (beyond the %.0f "
                    "messages per client the window edges explain)"
                    % (x["short_deliveries"], x["expected_by_count"], slack))
    if spans and abs((hi - lo + 1) - sent) > slack:
        fail.append("the window's ids %d..%d are %d, but %d messages were sent: the nodes do not share "
                    "one sequence" % (lo, hi, hi - lo + 1, sent))
    if short:
        fail.append("%d clients on node(s) %s did not see every id %d..%d of the window"
                    % (x["short_clients"], sorted({r["node"] for r in short}), lo, hi))
    x["failures"] = fail
    x["loadgens"] = [{k: r[k] for k in r if k != "lat_all_hist"} for r in results]
    return x


# ---------------------------------------------------------------- report

def fmt_run(x):
    redis = ""
    if x["config"] != "single":
        cmds = " ".join("%s %.2f" % kv for kv in sorted(x["redis_commands_per_message"].items()))
        redis = " | redis %.1f %% (ticks %.1f %%, idle %.2f %%) %.1f us/msg, %.1f net of idle; per msg: %s" % (
            100 * x["redis_cpu_util"], 100 * x["redis_cpu_util_ticks"], 100 * x["redis_idle_util"],
            x["redis_us_per_message"], x["redis_net_us_per_message"], cmds or "-")
    return ("%8d/s %-8s nodes %s us/del (%s %% cpu) total %.3f | %7.0f msg/s %9.0f del/s | p50 %6.1f "
            "p99 %6.1f ms | recv %d/%d missing %d behind %d short %d | lg %.0f %% other %.0f %%%s%s" % (
                x["point"], x["config"], "/".join("%.3f" % v for v in x["node_us_per_delivery"]),
                "/".join("%.0f" % (100 * v) for v in x["node_cpu_util"]), x["server_us_per_delivery"],
                x["msgs_per_s"], x["deliveries_per_s"], x["lat_p50_ms"], x["lat_p99_ms"], x["received"],
                x["expected"], x["missing"], x["id_behind"], x["short_clients"],
                100 * x["loadgen_cpu_util"], 100 * x["other_cpu_util"], redis,
                "  ** FAIL: %s **" % "; ".join(x["failures"]) if x["failures"] else ""))


def medians(runs):
    med = lambda k: statistics.median(r[k] for r in runs)
    m = {k: med(k) for k in ("msgs_per_s", "deliveries_per_s", "server_us_per_delivery",
                             "server_us_per_message", "redis_us_per_message", "redis_us_per_delivery",
                             "redis_net_us_per_message", "redis_idle_util",
                             "total_us_per_delivery", "redis_cpu_util", "lat_p50_ms", "lat_p99_ms")}
    m["node_us_per_delivery"] = [statistics.median(r["node_us_per_delivery"][i] for r in runs)
                                 for i in range(len(runs[0]["node_us_per_delivery"]))]
    for k in ("received", "expected", "missing", "id_behind", "short_clients"):
        m[k] = sum(r[k] for r in runs)
    m["ids_ok"] = not any(r["failures"] for r in runs)
    m["loadgen_max"] = max(r["loadgen_cpu_util"] for r in runs)
    m["other_max"] = max(r["other_cpu_util"] for r in runs)
    return m


def table(meds, points, configs):
    lines = ["offered/s  config   | node us/delivery  nodes  x single | Redis us/msg  net  us/del  cpu | "
             "+Redis x single | delivered/s | p50 ms  p99 ms | received/expected      missing behind | ids  | "
             "loadgen other",
             "-" * 190]
    for pt in points:
        base = meds.get((pt, "single"))
        for c in configs:
            m = meds.get((pt, c))
            if not m:
                continue
            ratio = lambda k: "%6.2f" % (m[k] / base[k]) if base and base[k] else "     -"
            redis = "%12.1f %5.1f %6.3f %3.0f%%" % (
                m["redis_us_per_message"], m["redis_net_us_per_message"], m["redis_us_per_delivery"],
                100 * m["redis_cpu_util"]) if CONFIGS[c][1] else " " * 30
            lines.append("%9d  %-8s | %-13s %8.3f  %s | %s | %6.3f %s | %11.0f | %6.1f %7.1f | "
                         "%10d/%-10d  %7d %6d | %-4s | %5.0f%% %4.0f%%" % (
                             pt, c, "/".join("%.3f" % v for v in m["node_us_per_delivery"]),
                             m["server_us_per_delivery"], ratio("server_us_per_delivery"), redis,
                             m["total_us_per_delivery"], ratio("total_us_per_delivery"),
                             m["deliveries_per_s"], m["lat_p50_ms"], m["lat_p99_ms"], m["received"],
                             m["expected"], m["missing"], m["id_behind"] + m["short_clients"],
                             "ok" if m["ids_ok"] else "FAIL", 100 * m["loadgen_max"], 100 * m["other_max"]))
    return "\n".join(lines)


def redis_hop(meds, points):
    """What the Redis hop costs and adds against `single`, and how far N
    nodes go: Redis CPU per message (net of its idle) fitted as a + b N from
    cluster1 (N = 1) and cluster2 (N = 2) at the same message rate."""
    out = []
    for pt in points:
        s, c1, c2 = (meds.get((pt, c)) for c in ("single", "cluster1", "cluster2"))
        if not (c1 or c2):
            continue
        msgs = (s or c1 or c2)["msgs_per_s"]
        out.append("%d deliveries/s (%.0f messages/s):" % (pt, msgs))
        for name, c in (("cluster1", c1), ("cluster2", c2)):
            if s and c:
                out.append("  %-8s nodes %+.1f us of CPU per message (%.1f -> %.1f, all nodes), Redis %.1f "
                           "(%.1f net of idle); latency p50 %+.1f ms, p99 %+.1f ms against single"
                           % (name, c["server_us_per_message"] - s["server_us_per_message"],
                              s["server_us_per_message"], c["server_us_per_message"],
                              c["redis_us_per_message"], c["redis_net_us_per_message"],
                              c["lat_p50_ms"] - s["lat_p50_ms"], c["lat_p99_ms"] - s["lat_p99_ms"]))
        if not (c1 and c2):
            continue
        r1, r2 = c1["redis_net_us_per_message"], c2["redis_net_us_per_message"]
        b = r2 - r1
        a0 = r1 - b
        if b <= 0 or a0 <= 0:
            cost = max(r1, r2)
            out.append("  Redis net us/message %.1f (N=1) -> %.1f (N=2): no per-node growth above the noise; "
                       "flat at %.1f us, one Redis core holds %s messages/s whatever N"
                       % (r1, r2, cost, "%.0f" % (1e6 / cost) if cost > 0 else "unmeasurably many"))
            continue
        out.append("  Redis net us/message ~ %.1f + %.1f x N (from N = 1, 2); one Redis core holds "
                   "(messages/s):" % (a0, b))
        out.append("    " + "  ".join("N=%d %.0f" % (n, 1e6 / (a0 + b * n)) for n in (1, 2, 4, 8, 16, 32, 64)))
        if msgs:
            out.append("    at %.0f messages/s Redis's core is full at N = %.0f nodes" % (msgs, (1e6 / msgs - a0) / b))
    return "\n".join(out)


def interrupted(signum, frame):
    raise KeyboardInterrupt


def main():
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--server", default=os.path.join(repo, "build", "ringcast"))
    p.add_argument("--loadgen", default=os.path.join(repo, "build", "perf", "loadgen"))
    p.add_argument("--redis-server", default="/usr/bin/redis-server")
    p.add_argument("--redis-aof", choices=("everysec", "always", "no"), default="everysec",
                   help="Redis persistence: appendonly yes with this appendfsync, or no (RDB "
                        "snapshots are always off); default everysec, what users run")
    p.add_argument("--redis-args", default="", help="more redis-server flags")
    p.add_argument("--node-args", default="", help="more flags for every ringcast node")
    p.add_argument("--configs", default="single,cluster1,cluster2",
                   help="comma-separated, of: %s" % ", ".join(CONFIGS))
    p.add_argument("-n", "--clients", type=int, default=5000)
    p.add_argument("--deliveries", default="100000,1000000", help="offered deliveries/s, comma-separated")
    p.add_argument("-s", "--senders", type=int, default=10, help="half on each half of the clients")
    p.add_argument("-p", "--size", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("-w", "--warmup", type=float, default=2)
    p.add_argument("-d", "--duration", type=float, default=5)
    p.add_argument("--drain", type=float, default=3)
    p.add_argument("--idle", type=float, default=1,
                   help="seconds Redis's idle CPU is sampled before each run's load (subtracted: 'net')")
    p.add_argument("--server-cpus", default="0", help="taskset list for nodes and Redis ('' = not pinned)")
    p.add_argument("--loadgen-cpus", default="1", help="CPUs for the loadgens, round robin ('' = not pinned)")
    p.add_argument("--quick", action="store_true",
                   help="500 clients, 20k deliveries/s, 1 repeat, 1 s warm-up, 3 s window (for CI)")
    p.add_argument("--keep-going", action="store_true", help="finish every run after a failed check")
    p.add_argument("--json", help="write every run and the medians here")
    a = p.parse_args()
    if a.quick:
        a.clients, a.deliveries, a.repeats, a.warmup, a.duration, a.drain = 500, "20000", 1, 1, 3, 2
    configs = [c for c in a.configs.split(",") if c]
    points = [int(float(x)) for x in a.deliveries.split(",") if x]
    if not configs or any(c not in CONFIGS for c in configs) or len(set(configs)) != len(configs):
        sys.exit("cluster.py: --configs takes some of %s" % ", ".join(CONFIGS))
    if not 2 <= a.senders <= 200 or not a.senders * 2 < a.clients <= 100000 or not points \
            or not 1 <= a.repeats <= 20 or not 0 < a.duration <= 120 or not 0 <= a.warmup <= 60 \
            or not 0 <= a.drain <= 60 or not all(0 < pt <= 20000000 for pt in points):
        sys.exit("cluster.py: 2..200 senders, more than twice as many clients (at most 100,000), "
                 "offered 1..20M deliveries/s, 1..20 repeats, a window of at most 120 s")
    need = [a.server, a.loadgen] + ([a.redis_server] if any(CONFIGS[c][1] for c in configs) else []) + \
        (["taskset"] if a.server_cpus else [])
    for tool in need:
        if not shutil.which(tool):
            sys.exit("cluster.py: %s not found (build with: meson setup build && ninja -C build)" % tool)

    if any(CONFIGS[c][1] for c in configs) and "--redis" not in subprocess.run(
            [a.server, "--help"], capture_output=True, text=True, timeout=10).stdout:
        sys.exit("cluster.py: %s has no cluster mode (its --help has no --redis): build one that has, "
                 "or run --configs single" % a.server)
    # Ctrl-C, SIGTERM and SIGHUP end the script through the finally
    # that stops every process it started.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupted)
    plan = loadgen_plan(a)
    print("cluster.py: %s, %d clients (loadgens: %s), %d senders, %d B, warm-up %g s, window %g s, drain %g s, "
          "%d repeat(s); nodes --threads 1 --rate-limit 0 %s(single: --no-persist); Redis appendonly %s; servers on cpus %s, "
          "loadgens on %s" % (
              time.strftime("%Y-%m-%d %H:%M"), a.clients,
              " ".join("%d:%s%d" % (h, r, n) for h, r, n, _ in plan), a.senders, a.size, a.warmup,
              a.duration, a.drain, a.repeats, a.node_args,
              "no" if a.redis_aof == "no" else "yes, appendfsync " + a.redis_aof,
              a.server_cpus or "any", a.loadgen_cpus or "any"), flush=True)
    runs, failed = [], False
    status = 0
    try:
        for pt in points:
            for rep in range(a.repeats):
                k = rep % len(configs)  # rotate the order: A-B-C, B-C-A, ...
                for c in configs[k:] + configs[:k]:
                    x = one_run(a, c, pt)
                    x["repeat"] = rep
                    runs.append(x)
                    print(fmt_run(x), flush=True)
                    if x["failures"]:
                        failed = True
                        if not a.keep_going:
                            raise RunFailed("a correctness check failed (above); --keep-going runs on")
    except RunFailed as e:
        print("cluster.py: %s" % e, file=sys.stderr, flush=True)
        status = 3 if failed else 1
    except KeyboardInterrupt:
        print("cluster.py: interrupted; every process it started is stopped", file=sys.stderr)
        status = 130
    finally:
        stop_all()
    done = [(pt, c) for pt in points for c in configs
            if sum(1 for r in runs if r["point"] == pt and r["config"] == c) == a.repeats]
    meds = {key: medians([r for r in runs if (r["point"], r["config"]) == key]) for key in done}
    if meds:
        print("\nmedians of %d; us/delivery from /proc utime+stime of each node over the window; Redis from "
              "its threads' schedstat; x single: against single at the same offered load; p50/p99 over "
              "every client (all senders); missing: the senders' own clients; behind: clients short of the "
              "window's last id after the drain (any node); loadgen, other: highest CPU use (1 core = 100 %%)"
              % a.repeats)
        print(table(meds, points, [c for c in CONFIGS if c in configs]))
        hop = redis_hop(meds, points)
        if hop.strip():
            print("\nThe Redis hop\n" + hop)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"args": vars(a), "runs": runs,
                       "medians": [dict(m, point=k[0], config=k[1]) for k, m in meds.items()]}, f, indent=1)
    if failed:
        status = 3
    return status


if __name__ == "__main__":
    sys.exit(main())

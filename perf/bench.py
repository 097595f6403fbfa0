"""perf/bench.py: what the A/B scripts in perf/ share: start a fresh ringcast
pinned to core 0 in its own working directory, run one build/perf/loadgen
against it pinned to core 1, stop the server, read its /metrics.

Loopback only; every process started here is stopped here."""
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request


def start_server(binary, workdir, flags, must_log=None, cpus="0", nofile=None):
    """A fresh ringcast on a free port, pinned to cpus (a taskset list; None:
    not pinned), its open-file limit set to nofile by prlimit (None: as
    inherited); returns (process, port). Exits with the server's log if it
    does not start, or its log lacks must_log."""
    args = (["taskset", "-c", cpus] if cpus else []) + \
        (["prlimit", "--nofile=%d:%d" % (nofile, nofile), "--"] if nofile else []) + \
        [binary, "--port", "0"] + flags
    proc = subprocess.Popen(args, cwd=workdir, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 10
    log = ""
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        log += line
        m = re.search(r"listening on http://127\.0\.0\.1:(\d+)/", line)
        if m:
            if must_log and must_log not in log:
                stop(proc)
                sys.exit("%s: the server's log lacks %r:\n%s" % (sys.argv[0], must_log, log))
            # keep draining stderr so the server never blocks on a full pipe
            threading.Thread(target=proc.stderr.read, daemon=True).start()
            return proc, int(m.group(1))
        if not line and proc.poll() is not None:
            break
    stop(proc)
    sys.exit("%s: the server did not start (%s):\n%s" % (sys.argv[0], " ".join(args), log))


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def rss_kb(pid):
    """The process's resident memory (VmRSS), in KiB; None once it is gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def metric(port, name):
    text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5).read().decode()
    return int(float(re.search(r"^ringcast_%s (\S+)$" % name, text, re.M).group(1)))


def loadgen(binary, port, pid, workdir, args, max_s):
    """One loadgen run on core 1; returns its JSON result."""
    out = os.path.join(workdir, "run.json")
    cmd = [binary, "--port", str(port), "--cpu", "1", "--server-pid", str(pid),
           "--json", out, "-q"] + args
    lg = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT, text=True, timeout=max_s)
    if lg.returncode != 0 or not os.path.exists(out):
        sys.exit("%s: loadgen failed (%s):\n%s" % (sys.argv[0], " ".join(cmd), lg.stdout))
    with open(out) as f:
        r = json.load(f)
    os.unlink(out)
    return r

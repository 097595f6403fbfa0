#!/usr/bin/python3
"""perf/tls_cost.py: what TLS costs ringcast, plain and TLS side by side.

Starts the server twice (plain, then --tls-cert/--tls-key with a throwaway EC
certificate made by `openssl req`), connects N WebSocket clients (wss for the
TLS run) with python3-websockets, and measures:
  * server RSS per idle connection: (RSS with N connected - RSS before) / N
  * server CPU per delivery: a sender posts R messages/s for D seconds; every
    client receives them; server utime+stime from /proc / deliveries.
Python clients are slow receivers, so keep N*R modest (default 1000 x 20/s =
20k deliveries/s); the numbers are for comparing plain with TLS in the same
run, not for the headline figures (those are compare.sh's).

  /usr/bin/python3 perf/tls_cost.py [--server build/ringcast] [-n 1000] [-r 20] [-d 10]
Loopback only; stops by itself; kills what it starts.
"""
import argparse, asyncio, os, re, ssl, subprocess, sys, tempfile, time

import websockets

HZ = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / HZ


def rss_bytes(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def start(server, workdir, extra):
    proc = subprocess.Popen([server, "--port", "0", "--no-persist", "--rate-limit", "0", *extra],
                            cwd=workdir, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 10
    log = ""
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        log += line
        m = re.search(r"listening on (https?)://([^/\s]+)/", line)
        if m:
            return proc, m.group(1), m.group(2)
    proc.kill()
    raise RuntimeError("server did not start:\n" + log)


async def measure(scheme, hostport, pid, n, rate, duration, ctx):
    url = ("wss" if scheme == "https" else "ws") + f"://{hostport}/ws"
    before = rss_bytes(pid)
    clients = []
    for i in range(0, n, 100):
        clients += await asyncio.gather(*[websockets.connect(url, ssl=ctx, max_queue=None)
                                          for _ in range(min(100, n - i))])
    await asyncio.sleep(2)  # welcome/presence/join settle
    connected = rss_bytes(pid)
    received = [0]

    async def reader(ws):
        async for _ in ws:
            received[0] += 1

    readers = [asyncio.create_task(reader(ws)) for ws in clients]
    await asyncio.sleep(1)
    received[0] = 0
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    sent = 0
    while time.monotonic() - t0 < duration:
        await clients[0].send("tls-cost %d" % sent)
        sent += 1
        await asyncio.sleep(max(0.0, t0 + sent / rate - time.monotonic()))
    await asyncio.sleep(2)  # let the last deliveries land
    cpu = cpu_seconds(pid) - cpu0
    deliveries = received[0]
    for t in readers:
        t.cancel()
    await asyncio.gather(*[ws.close() for ws in clients], return_exceptions=True)
    return {"rss_per_conn": (connected - before) / n, "ns_per_delivery": cpu * 1e9 / max(1, deliveries),
            "deliveries": deliveries, "expected": sent * n}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--server", default="build/ringcast")
    ap.add_argument("-n", type=int, default=1000)
    ap.add_argument("-r", type=float, default=20.0)
    ap.add_argument("-d", type=float, default=10.0)
    a = ap.parse_args()
    if a.n > 5000:
        sys.exit("tls_cost: at most 5000 clients (one Python process, 20k open files)")
    server = os.path.abspath(a.server)
    with tempfile.TemporaryDirectory(prefix="ringcast-tls-cost-") as work:
        cert, key = os.path.join(work, "cert.pem"), os.path.join(work, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-days", "1", "-keyout", key, "-out", cert], check=True, capture_output=True)
        ctx = ssl.create_default_context(cafile=cert)
        results = {}
        for name, extra, c in (("plain", [], None), ("tls", ["--tls-cert", cert, "--tls-key", key], ctx)):
            proc, scheme, hostport = start(server, work, extra)
            try:
                results[name] = asyncio.run(asyncio.wait_for(
                    measure(scheme, hostport, proc.pid, a.n, a.r, a.d, c), a.d + 120))
            finally:
                proc.terminate()
                proc.wait(timeout=5)
        print(f"tls_cost: {a.n} clients, {a.r:g} msg/s for {a.d:g} s, {time.strftime('%Y-%m-%d %H:%M')}")
        print(f"{'':8} {'B/idle conn':>12} {'ns/delivery':>12} {'delivered':>12}")
        for name, r in results.items():
            print(f"{name:8} {r['rss_per_conn']:12.0f} {r['ns_per_delivery']:12.0f} "
                  f"{r['deliveries']:>7}/{r['expected']}")
        p, t = results["plain"], results["tls"]
        print(f"tls/plain: memory x{t['rss_per_conn'] / p['rss_per_conn']:.1f}, "
              f"cpu x{t['ns_per_delivery'] / p['ns_per_delivery']:.2f}")
        lost = [k for k, r in results.items() if r["deliveries"] < r["expected"]]
        if lost:
            sys.exit("tls_cost: deliveries missing in " + ", ".join(lost))


if __name__ == "__main__":
    main()

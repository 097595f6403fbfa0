#!/usr/bin/env bash
# perf/compare.sh: the kernel floor, ringcast and the reference servers in
# perf/peers/ (Node's ws; uWebSockets when UWS_SRC names a checkout), one
# after another under identical load, in one command.
#
#   perf/compare.sh [BUILD_DIR] [--quick] [--repeats N] [...]   (--help)
#
# For every point (connections N x offered deliveries/s) and every repeat:
# perf/floor, then a fresh ringcast, then each fresh peer server, each server
# pinned to core 0 and the load generator to core 1. Medians per point go to
# a table, a CSV and gnuplot plots in perf/results/<date>/.
#
# Needs: taskset (util-linux), ss (iproute2), timeout (coreutils), gnuplot
# for the plots (Debian: apt-get install gnuplot-nox); node + npm for the ws
# peer, a C/C++ compiler for the uWebSockets one. Without node the default
# leaves ws out (say so with --servers ringcast to silence the note).
# This script installs nothing system-wide; it says what is missing. It does
# run `npm ci` in a temporary copy of the ws peer and build the uWS peer in
# a temporary directory.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
INVOCATION="perf/compare.sh $*"
BUILD=build
QUICK=0
REPEATS=3
CONNS="1000 5000 10000"
RATES="100000 300000 1000000"
SENDERS=10
SIZE=64
WARMUP=2
DURATION=5
DRAIN=2
FLOOR_DURATION=3
SERVERS=""
PLOTS=1
WAIT_QUIET=0
OUT=""
REPLOT=""
WS_SRC=${WS_PEER_DIR:-$ROOT/perf/peers/ws}
UWS_SRC=${UWS_SRC:-}
# Every server the table and plots know, in the order they are shown.
SERVER_KINDS="ringcast ws uws"
# ringcast's flood control (20 msg/s per connection by default) would drop
# most of a benchmark sender's messages; the ws reference has none.
RINGCAST_ARGS=${RINGCAST_ARGS:---rate-limit 0}
SERVER_CPU=0
LOADGEN_CPU=1

usage() {
	cat <<EOF
usage: perf/compare.sh [BUILD_DIR] [options]
  BUILD_DIR          meson build dir with ringcast and perf/ (default: build)
  --quick            2 x 2 points, 1 repeat, short runs: under 2 minutes
  --repeats N        runs per point, medians reported (default 3)
  --conns "A B"      connection counts (default "$CONNS")
  --rates "A B"      offered deliveries/s (default "$RATES")
  --duration S       measured seconds per server run (default $DURATION)
  --warmup S         warm-up seconds per server run (default $WARMUP)
  --servers "A B"    which servers: ringcast, ws, uws (default: ringcast, ws
                     when node is installed, uws when UWS_SRC is set)
  --out DIR          results directory (default perf/results/<date>)
  --no-plots         skip gnuplot
  --wait-quiet S     before each point's runs, wait up to S seconds for other
                     processes to use under 15% of a core (default 0: don't)
  --replot DIR       redo the table and plots from DIR's runs-*.csv, run nothing
Environment: RINGCAST_ARGS (ringcast flags; default "--rate-limit 0", as flood
control would drop the benchmark's messages), WS_PEER_DIR (ws peer, default
perf/peers/ws), UWS_SRC (a uWebSockets checkout with its uSockets submodule:
adds the uws peer, built from perf/peers/uws), RINGCAST_BIN and PERF_BIN_DIR
(binaries from elsewhere than BUILD_DIR).
EOF
}

die() {
	echo "compare: $*" >&2
	exit 1
}

say() {
	echo "compare: $*" >&2
}

# --- flags -----------------------------------------------------------------

custom_points=0
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) QUICK=1 ;;
	--repeats) REPEATS=$2; shift ;;
	--conns) CONNS=$2; custom_points=1; shift ;;
	--rates) RATES=$2; custom_points=1; shift ;;
	--duration) DURATION=$2; shift ;;
	--warmup) WARMUP=$2; shift ;;
	--servers) SERVERS=$2; shift ;;
	--out) OUT=$2; shift ;;
	--no-plots) PLOTS=0 ;;
	--wait-quiet) WAIT_QUIET=$2; shift ;;
	--replot) REPLOT=$2; shift ;;
	-h|--help) usage; exit 0 ;;
	-*) usage >&2; die "unknown option $1" ;;
	*) BUILD=$1 ;;
	esac
	shift
done
if [ "$QUICK" = 1 ]; then
	[ "$custom_points" = 1 ] || { CONNS="1000 5000"; RATES="100000 1000000"; }
	REPEATS=1
	WARMUP=1
	DURATION=2
	DRAIN=1
	FLOOR_DURATION=1
fi
case "$REPEATS" in ''|*[!0-9]*|0) die "--repeats wants a positive number" ;; esac
case "$WAIT_QUIET" in ''|*[!0-9]*) die "--wait-quiet wants seconds" ;; esac
# The default: every contender this machine can run.
if [ -z "$SERVERS" ]; then
	SERVERS=ringcast
	if command -v node >/dev/null && command -v npm >/dev/null; then
		SERVERS="$SERVERS ws"
	else
		say "no node/npm: leaving the ws peer out (Debian: apt-get install nodejs npm)"
	fi
	[ -n "$UWS_SRC" ] && SERVERS="$SERVERS uws"
fi
for s in $SERVERS; do
	case "$s" in ringcast|ws|uws) ;; *) die "unknown server $s (ringcast, ws, uws)" ;; esac
done

# --- prerequisites -----------------------------------------------------------

check_prereqs() {
	case "$BUILD" in /*) ;; *) [ -d "$BUILD" ] || BUILD="$ROOT/$BUILD" ;; esac
	[ -d "$BUILD" ] || die "no build directory $BUILD (meson setup build && ninja -C build)"
	BUILD=$(cd "$BUILD" && pwd)
	LOADGEN=${PERF_BIN_DIR:-$BUILD/perf}/loadgen
	FLOOR=${PERF_BIN_DIR:-$BUILD/perf}/floor
	RINGCAST=${RINGCAST_BIN:-$BUILD/ringcast}
	[ -x "$LOADGEN" ] || die "missing $LOADGEN (is subdir('perf') in meson.build? ninja -C $BUILD)"
	[ -x "$FLOOR" ] || die "missing $FLOOR"
	for s in $SERVERS; do
		if [ "$s" = ringcast ]; then
			[ -x "$RINGCAST" ] || die "missing $RINGCAST (build it, or --servers ws)"
		fi
	done
	for tool in taskset ss timeout awk sort; do
		command -v "$tool" >/dev/null || die "missing $tool (Debian: util-linux, iproute2, coreutils, mawk)"
	done
	if [[ " $SERVERS " == *" ws "* ]]; then
		command -v node >/dev/null || die "missing node (Debian: apt-get install nodejs npm)"
		command -v npm >/dev/null || die "missing npm (Debian: apt-get install npm)"
		[ -f "$WS_SRC/server.js" ] || die "no ws peer at $WS_SRC (set WS_PEER_DIR)"
	fi
	if [[ " $SERVERS " == *" uws "* ]]; then
		[ -n "$UWS_SRC" ] || die "uws needs UWS_SRC=<a uWebSockets checkout> (git clone --recursive https://github.com/uNetworking/uWebSockets)"
		[ -f "$UWS_SRC/src/App.h" ] || die "UWS_SRC=$UWS_SRC is not a uWebSockets checkout (no src/App.h)"
		command -v "${CXX:-c++}" >/dev/null || die "missing a C++ compiler for uws (Debian: build-essential)"
	fi
	if [ "$PLOTS" = 1 ] && ! command -v gnuplot >/dev/null; then
		die "missing gnuplot (Debian: apt-get install gnuplot-nox), or pass --no-plots"
	fi
	[ "$(nproc)" -ge 2 ] || die "needs 2 CPUs: the server on one, the load generator on the other"
	for n in $CONNS; do
		[ "$n" -le 19000 ] || die "$n connections: one loadgen process stops at 19000"
	done
}

# Results go to a fresh dated directory (or --out, or --replot's).
setup_out() {
	[ -n "$OUT" ] || OUT="$ROOT/perf/results/$(date +%Y%m%d-%H%M%S)"
	mkdir -p "$OUT/logs" "$OUT/plotdata"
	OUT=$(cd "$OUT" && pwd)
	RUNS_SRV=$OUT/runs-servers.csv
	RUNS_FLOOR=$OUT/runs-floor.csv
	SUMMARY=$OUT/summary.csv
	TABLE=$OUT/table.txt
}

# --- cleanup: every process this script starts is stopped on exit ------------

TMP=$(mktemp -d /tmp/ringcast-compare.XXXXXX)
SERVER_PID=""
CHILD_PID=""

# Run a bounded tool in the background and wait for it, so a signal to this
# script is handled at once and the tool can be stopped by its pid
# (timeout(1) puts it in its own process group, out of reach of Ctrl-C).
run_bounded() {
	local log=$1 rc=0
	shift
	"$@" >"$log" 2>&1 &
	CHILD_PID=$!
	wait "$CHILD_PID" || rc=$?
	CHILD_PID=""
	return $rc
}

stop_server() {
	local pid=$SERVER_PID

	[ -n "$pid" ] || return 0
	SERVER_PID=""
	kill -TERM "$pid" 2>/dev/null || return 0
	# ringcast promises to exit within 2 s; node with a backlog may not.
	for _ in $(seq 30); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

cleanup() {
	if [ -n "$CHILD_PID" ]; then
		kill -TERM "$CHILD_PID" 2>/dev/null || true
		wait "$CHILD_PID" 2>/dev/null || true
	fi
	stop_server
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT TERM

# --- helpers -------------------------------------------------------------------

NEXT_PORT=$((4300 + RANDOM % 2000))
free_port() {
	while ss -Htan "sport = :$NEXT_PORT" | grep -q .; do
		NEXT_PORT=$((NEXT_PORT + 1))
	done
	PORT=$NEXT_PORT
	NEXT_PORT=$((NEXT_PORT + 1))
}

wait_listening() {
	local port=$1 pid=$2

	for _ in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || return 1
		ss -Htln "sport = :$port" | grep -q . && return 0
		sleep 0.1
	done
	return 1
}

# Share of both cores busy over one second, in percent of one core.
machine_busy() {
	local a b
	a=$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat)
	sleep 1
	b=$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat)
	echo "$a $b" | awk -v ncpu="$(nproc)" '{busy=$3-$1; idle=$4-$2; t=busy+idle; printf "%.0f", t ? 100*busy/t*ncpu : 0}'
}

# Other processes' CPU spoils the numbers: give them a bounded chance to end.
wait_quiet() {
	local waited=0 busy

	[ "$WAIT_QUIET" -gt 0 ] || return 0
	busy=$(machine_busy)
	while [ "$busy" -gt 15 ] && [ "$waited" -lt "$WAIT_QUIET" ]; do
		waited=$((waited + 3))
		sleep 2
		busy=$(machine_busy)
	done
	[ "$busy" -le 15 ] || say "machine still busy (${busy}% of a core) after ${WAIT_QUIET} s; going on"
}

start_server() {
	local kind=$1 log=$2

	free_port
	case "$kind" in
	ringcast)
		# In a fresh directory of its own: its default history database
		# (data/ringcast.db) starts empty and lands in our temporary dir.
		rm -rf "$TMP/rc" && mkdir -p "$TMP/rc"
		# shellcheck disable=SC2086
		# (Not in a systemd state directory, were this run under one.)
		(cd "$TMP/rc" && exec env -u STATE_DIRECTORY taskset -c "$SERVER_CPU" "$RINGCAST" --host 127.0.0.1 \
			--port "$PORT" $RINGCAST_ARGS) >"$log" 2>&1 &
		;;
	ws)
		(cd "$TMP/ws" && ENVELOPE=json HOST=127.0.0.1 PORT=$PORT \
			exec taskset -c "$SERVER_CPU" node server.js) >"$log" 2>&1 &
		;;
	uws)
		(HOST=127.0.0.1 PORT=$PORT exec taskset -c "$SERVER_CPU" "$TMP/uws/uws-broadcast") \
			>"$log" 2>&1 &
		;;
	esac
	SERVER_PID=$!
	if ! wait_listening "$PORT" "$SERVER_PID"; then
		tail -5 "$log" >&2 || true
		stop_server
		return 1
	fi
}

# One server run: fresh server, loadgen on the other core, server stopped.
run_server_point() {
	local kind=$1 n=$2 rate=$3 rep=$4
	local tag="$kind-n$n-r$rate-$rep" row csv="$TMP/one.csv" budget

	rm -f "$csv"
	if ! start_server "$kind" "$OUT/logs/$tag.server.log"; then
		say "$kind did not start listening (see logs/$tag.server.log)"
		return 0
	fi
	budget=$(awk -v n="$n" -v w="$WARMUP" -v d="$DURATION" -v dr="$DRAIN" \
		'BEGIN{printf "%d", n/2000 + 30 + 1 + w + d + dr + 10}')
	run_bounded "$OUT/logs/$tag.loadgen.txt" timeout -k 5 "$budget" \
		taskset -c "$LOADGEN_CPU" "$LOADGEN" --port "$PORT" \
		-n "$n" -s "$SENDERS" --deliveries "$rate" -p "$SIZE" -w "$WARMUP" \
		-d "$DURATION" --drain "$DRAIN" --settle 1 --connect-timeout 30 \
		--server-pid "$SERVER_PID" --label "$kind" --csv "$csv" ||
		say "loadgen exit $? for $tag"
	stop_server
	if [ -s "$csv" ]; then
		[ -s "$RUNS_SRV" ] || echo "server,n,offered,repeat,$(head -1 "$csv")" >"$RUNS_SRV"
		row=$(sed -n 2p "$csv")
		echo "$kind,$n,$rate,$rep,$row" >>"$RUNS_SRV"
		awk -F, -v k="$kind" 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
			{ printf "  %-11s %8.0f dlv/s %7.0f ns/dlv  p50 %7.0f us  p99 %8.0f us  missing %s  loadgen %.0f%%  other %.0f%%\n",
				k, $c["deliveries_per_s"], $c["server_cpu_ns_per_delivery"], $c["lat_p50_us"],
				$c["lat_p99_us"], $c["missing"], 100 * $c["loadgen_cpu_util"],
				100 * $c["other_cpu_util"] }' "$csv" >&2
	else
		say "no result for $tag (see logs/$tag.loadgen.txt)"
	fi
}

run_floor_point() {
	local n=$1 rate=$2 rep=$3
	local csv="$TMP/floor.csv" tag="floor-n$n-r$rate-$rep"

	rm -f "$csv"
	run_bounded "$OUT/logs/$tag.txt" timeout -k 5 $((FLOOR_DURATION * 2 + 60)) \
		"$FLOOR" -n "$n" -r "$rate" -d "$FLOOR_DURATION" -p "$SIZE" \
		--sender-cpu "$SERVER_CPU" --reader-cpu "$LOADGEN_CPU" --csv "$csv" ||
		say "floor exit $? for $tag"
	if [ -s "$csv" ]; then
		[ -s "$RUNS_FLOOR" ] || echo "n,offered,repeat,$(head -1 "$csv")" >"$RUNS_FLOOR"
		sed -n '2,$p' "$csv" | sed "s/^/$n,$rate,$rep,/" >>"$RUNS_FLOOR"
		sed -n '2,$p' "$csv" | awk -F, '{printf "  floor-%-5s %8.0f dlv/s  %7.0f ns/dlv\n", $2, $7, $8}' >&2
	fi
}

# --- the peers: ws in a writable copy, uws built from UWS_SRC -------------------

install_peers() {
	if [[ " $SERVERS " == *" uws "* ]]; then
		say "building the uws peer from $UWS_SRC into $TMP/uws"
		run_bounded "$OUT/logs/uws-build.log" timeout 600 "$ROOT/perf/peers/uws/build.sh" \
			"$UWS_SRC" "$TMP/uws" || die "building the uws peer failed (see $OUT/logs/uws-build.log)"
	fi
	if [[ " $SERVERS " == *" ws "* ]]; then
		say "installing the ws peer into $TMP/ws"
		mkdir -p "$TMP/ws"
		cp -r "$WS_SRC"/. "$TMP/ws/"
		rm -rf "$TMP/ws/node_modules"
		(cd "$TMP/ws" && timeout 180 npm ci --no-audit --no-fund --loglevel=error) >"$OUT/logs/npm-ci.log" 2>&1 ||
			die "npm ci for the ws peer failed (see $OUT/logs/npm-ci.log)"
	fi
}

# --- the runs -------------------------------------------------------------------

run_all() {
	local n rate rep s

	BUSY_BEFORE=$(machine_busy)
	if [ "$BUSY_BEFORE" -gt 15 ]; then
		say "WARNING: other processes are using ${BUSY_BEFORE}% of a core right now;"
		say "         the numbers will be noisy (see the 'other' column)."
	fi
	{
		echo "date: $(date -Is)"
		echo "host: $(uname -srm), $(nproc) cpus, $(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)"
		echo "command: $INVOCATION"
		echo "binaries: $RINGCAST $LOADGEN $FLOOR"
		echo "points: conns [$CONNS] x deliveries/s [$RATES], $SENDERS senders, $SIZE B, warm-up $WARMUP s, measured $DURATION s"
		echo "ringcast: $RINGCAST $RINGCAST_ARGS"
		[ -x "$RINGCAST" ] && echo "ringcast version: $("$RINGCAST" --version 2>&1 | head -1)"
		if [[ " $SERVERS " == *" ws "* ]]; then
			echo "ws: node $(node --version), ws $(cd "$TMP/ws" && node -p "require('ws/package.json').version")"
		fi
		if [[ " $SERVERS " == *" uws "* ]]; then
			echo "uws: $(tail -1 "$OUT/logs/uws-build.log")"
		fi
		echo "machine busy before: ${BUSY_BEFORE}% of a core"
	} >"$OUT/meta.txt"

	START=$SECONDS
	for n in $CONNS; do
		for rate in $RATES; do
			for rep in $(seq "$REPEATS"); do
				wait_quiet
			say "point: $n conns, $rate deliveries/s offered, run $rep/$REPEATS ($((SECONDS - START)) s elapsed)"
				run_floor_point "$n" "$rate" "$rep"
				for s in $SERVERS; do
					run_server_point "$s" "$n" "$rate" "$rep"
				done
			done
		done
	done
	echo "elapsed: $((SECONDS - START)) s" >>"$OUT/meta.txt"
}

# --- medians --------------------------------------------------------------------

# Median of each metric per (server, n, offered); columns found by name.
aggregate() {
	awk -F, '
	function median(s,   v, n, i, j, t) {
		n = split(s, v, " ")
		for (i = 2; i <= n; i++)
			for (j = i; j > 1 && v[j - 1] + 0 > v[j] + 0; j--) {
				t = v[j]; v[j] = v[j - 1]; v[j - 1] = t
			}
		if (n == 0) return ""
		return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
	}
	function add(key, name, val) { acc[key, name] = acc[key, name] " " val }
	FNR == 1 { for (i = 1; i <= NF; i++) col[FILENAME, $i] = i; next }
	FILENAME ~ /runs-servers/ {
		key = $1 SUBSEP $2 SUBSEP $3
		keys[key] = 1; runs[key]++
		add(key, "cpu", $col[FILENAME, "server_cpu_ns_per_delivery"])
		# A run that received none of its window messages has no latency.
		if ($col[FILENAME, "received"] > 0) {
			add(key, "p50", $col[FILENAME, "lat_p50_us"])
			add(key, "p99", $col[FILENAME, "lat_p99_us"])
		}
		add(key, "dps", $col[FILENAME, "deliveries_per_s"])
		add(key, "util", $col[FILENAME, "server_cpu_util"])
		add(key, "rss", $col[FILENAME, "rss_per_conn_bytes"])
		add(key, "other", $col[FILENAME, "other_cpu_util"])
		e = $col[FILENAME, "expected"]
		add(key, "miss", e > 0 ? 100 * $col[FILENAME, "missing"] / e : 0)
		lg = $col[FILENAME, "loadgen_cpu_util"]
		if (lg > lgmax[key]) lgmax[key] = lg
		sat[key] += $col[FILENAME, "loadgen_saturated"]
		next
	}
	FILENAME ~ /runs-floor/ {
		key = "floor-" $col[FILENAME, "method"] SUBSEP $1 SUBSEP $2
		keys[key] = 1; runs[key]++
		add(key, "cpu", $col[FILENAME, "sender_cpu_ns_per_delivery"])
		add(key, "dps", $col[FILENAME, "deliveries_per_s"])
		add(key, "util", $col[FILENAME, "sender_cpu_util"])
	}
	END {
		print "server,conns,offered,runs,cpu_ns_per_delivery,lat_p50_us,lat_p99_us,deliveries_per_s,server_cpu_util,rss_per_conn_bytes,missing_pct,other_cpu_util,loadgen_cpu_util_max,loadgen_saturated_runs"
		for (k in keys) {
			split(k, p, SUBSEP)
			printf "%s,%s,%s,%d,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s\n", p[1], p[2], p[3], runs[k],
				median(acc[k, "cpu"]), median(acc[k, "p50"]), median(acc[k, "p99"]),
				median(acc[k, "dps"]), median(acc[k, "util"]), median(acc[k, "rss"]),
				median(acc[k, "miss"]), median(acc[k, "other"]),
				(k in lgmax) ? lgmax[k] : "", (k in sat) ? sat[k] : ""
		}
	}' "$@" | { IFS= read -r h; echo "$h"; sort -t, -k2,2n -k3,3n -k1,1; }
}

summarize() {
	local files=()

	[ -s "$RUNS_SRV" ] && files+=("$RUNS_SRV")
	[ -s "$RUNS_FLOOR" ] && files+=("$RUNS_FLOOR")
	[ ${#files[@]} -gt 0 ] || die "no run produced a result; see $OUT/logs"
	aggregate "${files[@]}" >"$SUMMARY"
}

# --- the table --------------------------------------------------------------------

print_table() {
	# One row per server at each point, the floor first: as many servers as
	# ran, in the order of SERVER_KINDS.
	awk -F, -v reps="$REPEATS" -v kinds="$SERVER_KINDS" '
		NR == 1 { next }
		{
			k = $2 SUBSEP $3; pts[k] = 1
			cpu[$1, k] = $5; p50[$1, k] = $6; p99[$1, k] = $7; dps[$1, k] = $8
			rss[$1, k] = $10; miss[$1, k] = $11; other[$1, k] = $12; sat[$1, k] = $14
			seen[$1, k] = 1
		}
		function f(v, fmt) { return v == "" ? "-" : sprintf(fmt, v) }
		function ratio(a, b) { return (a == "" || b == "" || b + 0 == 0) ? "-" : sprintf("%.2f", a / b) }
		function lossy(m) { return m + 0 > 1 ? "*" : "" }
		function lat(v) { return v == "" ? "-" : v >= 10000 ? sprintf("%.0fms", v / 1000) : v >= 1000 ? sprintf("%.1fms", v / 1000) : sprintf("%.0fus", v) }
		END {
			nk = split(kinds, kind, " ")
			printf "CPU per delivery (ns, median of %d) and ratios; floor = min(write, io_uring)\n", reps
			printf "%6s %8s | %6s %6s | %-8s %8s %6s %6s | %15s | %8s | %8s | %6s\n",
				"conns", "offered", "write", "uring", "server", "ns/dlv", "xfloor", "xrc",
				"p50/p99", "achieved", "rss/conn", "other"
			for (k in pts) order[++np] = k
			for (i = 2; i <= np; i++)
				for (j = i; j > 1; j--) {
					split(order[j - 1], a, SUBSEP); split(order[j], b, SUBSEP)
					if (a[1] + 0 > b[1] + 0 || (a[1] == b[1] && a[2] + 0 > b[2] + 0)) {
						t = order[j]; order[j] = order[j - 1]; order[j - 1] = t
					} else break
				}
			for (i = 1; i <= np; i++) {
				k = order[i]; split(k, q, SUBSEP)
				fw = cpu["floor-write", k]; fu = cpu["floor-uring", k]
				fl = fw; if (fu != "" && (fl == "" || fu + 0 < fl + 0)) fl = fu
				first = 1
				for (x = 1; x <= nk; x++) {
					s = kind[x]
					if (!((s, k) in seen)) continue
					printf "%6s %8s | %6s %6s | %-8s %8s %6s %6s | %7s/%-7s | %8s | %8s | %6s%s\n",
						first ? q[1] : "", first ? sprintf("%.0fk", q[2] / 1000) : "",
						first ? f(fw, "%.0f") : "", first ? f(fu, "%.0f") : "",
						s, f(cpu[s, k], "%.0f"), ratio(cpu[s, k], fl), ratio(cpu[s, k], cpu["ringcast", k]),
						lat(p50[s, k]), lat(p99[s, k]) lossy(miss[s, k]),
						f(dps[s, k] / 1000, "%.0fk"), f(rss[s, k], "%.0f"),
						other[s, k] == "" ? "-" : sprintf("%.0f%%", 100 * other[s, k]),
						(sat[s, k] > 0) ? " LOADGEN-BOUND" : ""
					first = 0
				}
				if (first)
					printf "%6d %8s | %6s %6s | (no server result)\n", q[1], sprintf("%.0fk", q[2] / 1000),
						f(fw, "%.0f"), f(fu, "%.0f")
			}
			print ""
			print "xfloor: server CPU per delivery / floor. xrc: / ringcast'"'"'s (above 1: ringcast is cheaper)."
			print "achieved: deliveries/s received in the window (k = 1000). rss/conn in bytes."
			print "other: CPU (% of a core) used by processes other than server and loadgen during the window."
			print "*: over 1% of the window'"'"'s messages had not arrived by the end of the drain; the"
			print "   latency covers only those that did (see the missing lines below)."
			print "LOADGEN-BOUND: the load generator used over 85% of its core in some run."
			for (i = 1; i <= np; i++) {
				k = order[i]; split(k, q, SUBSEP)
				for (x = 1; x <= nk; x++) {
					s = kind[x]
					if ((s, k) in seen && miss[s, k] + 0 > 0.01)
						printf "missing at %d conns, %.0fk/s: %s %s%% of expected deliveries\n",
							q[1], q[2] / 1000, s, f(miss[s, k], "%.2f")
				}
			}
		}' "$SUMMARY" | tee "$TABLE"
}

# --- plots ------------------------------------------------------------------------

# The same look for a server in every plot.
style() {
	case "$1" in
	floor-write) echo 'lc rgb "#909090" dt 2 pt 1' ;;
	floor-uring) echo 'lc rgb "#404040" dt 3 pt 2' ;;
	ringcast) echo 'lc rgb "#0060c0" lw 2 pt 7' ;;
	ws) echo 'lc rgb "#d03020" lw 2 pt 5' ;;
	uws) echo 'lc rgb "#20a040" lw 2 pt 9' ;;
	esac
}

# One gnuplot panel per connection count, a line per server that has data.
panel_plots() {
	local col=$1 servers=$2 extra=$3 n s f sep line
	for n in $CONNS; do
		line="set title \"$n connections\"; plot $extra"
		sep=""
		[ -n "$extra" ] && sep=", "
		for s in $servers; do
			f="plotdata/$s-$n.dat"
			[ -s "$OUT/$f" ] || continue
			line="$line$sep\"$f\" using 1:$col with linespoints $(style "$s") title \"$s\""
			sep=", "
		done
		[ -n "$sep" ] && echo "$line"
	done
}

plot() {
	local s n f ncols
	# One data file per (server, conns): offered cpu p50 p99 achieved.
	for s in floor-write floor-uring $SERVER_KINDS; do
		for n in $CONNS; do
			f="$OUT/plotdata/$s-$n.dat"
			awk -F, -v s="$s" -v n="$n" 'NR > 1 && $1 == s && $2 == n {
				printf "%s %s %s %s %s\n", $3, $5, ($6 == "" ? "NaN" : $6),
					($7 == "" ? "NaN" : $7), $8 }' "$SUMMARY" | sort -n >"$f"
			[ -s "$f" ] || rm -f "$f"
		done
	done
	ncols=$(echo "$CONNS" | wc -w)
	{
		echo "# Generated by perf/compare.sh; re-run with: cd $OUT && gnuplot plots.gp"
		echo 'set logscale x; set format x "%.0s%c"; set xlabel "offered deliveries/s"'
		echo 'set grid; set key top left; set pointsize 1.2; set datafile missing "NaN"'
		for term in png svg; do
			if [ $term = png ]; then
				echo 'set terminal pngcairo size 1600,500 noenhanced font ",10"'
			else
				echo 'set terminal svg size 1600,500 noenhanced font "sans,10"'
			fi
			echo "set output \"cpu_per_delivery.$term\"; set logscale y; set ylabel \"server CPU ns per delivery\"; set key bottom left"
			echo "set multiplot layout 1,$ncols title \"Server CPU per delivery (median); floor = kernel alone, no WebSocket\""
			panel_plots 2 "floor-write floor-uring $SERVER_KINDS" ""
			echo "unset multiplot"
			echo "set output \"latency_p50.$term\"; set ylabel \"p50 latency (ms)\"; set key top left"
			echo "set multiplot layout 1,$ncols title \"Median delivery latency, send to receipt\""
			# shellcheck disable=SC2016 # gnuplot's $3, not the shell's
			panel_plots '($3/1000)' "$SERVER_KINDS" ""
			echo "unset multiplot"
			echo "set output \"latency_p99.$term\"; set ylabel \"p99 latency (ms)\""
			echo "set multiplot layout 1,$ncols title \"p99 delivery latency, send to receipt\""
			# shellcheck disable=SC2016
			panel_plots '($4/1000)' "$SERVER_KINDS" ""
			echo "unset multiplot"
			echo "set output \"achieved.$term\"; set ylabel \"achieved deliveries/s\""
			echo "set multiplot layout 1,$ncols title \"Achieved vs offered deliveries/s\""
			panel_plots 5 "floor-write floor-uring $SERVER_KINDS" 'x with lines dashtype 2 lc "gray" title "offered"'
			echo "unset multiplot; unset output"
		done
	} >"$OUT/plots.gp"
	(cd "$OUT" && timeout 60 gnuplot plots.gp) 2>"$OUT/logs/gnuplot.log" ||
		say "gnuplot failed (see $OUT/logs/gnuplot.log)"
}
# --- main ---------------------------------------------------------------------------

if [ -n "$REPLOT" ]; then
	# Table and plots again from an earlier run's CSVs (no runs).
	[ -s "$REPLOT/runs-servers.csv" ] || [ -s "$REPLOT/runs-floor.csv" ] ||
		die "no runs-*.csv in $REPLOT"
	OUT=$REPLOT
	setup_out
	CONNS=$(awk -F, 'FNR > 1 { print (FILENAME ~ /floor/) ? $1 : $2 }' \
		"$OUT"/runs-*.csv | sort -nu | tr '\n' ' ')
	REPEATS=$(awk -F, 'FNR > 1 && $NF != "" { r = (FILENAME ~ /floor/) ? $3 : $4; if (r > m) m = r } END { print m + 0 }' "$OUT"/runs-*.csv)
	START=$SECONDS
else
	check_prereqs
	setup_out
	: >"$RUNS_SRV"
	: >"$RUNS_FLOOR"
	install_peers
	run_all
fi
summarize
print_table
if [ "$PLOTS" = 1 ]; then
	command -v gnuplot >/dev/null || die "missing gnuplot (Debian: apt-get install gnuplot-nox)"
	plot
fi
say "done in $((SECONDS - START)) s: $OUT"
say "  table.txt summary.csv runs-*.csv meta.txt $( [ "$PLOTS" = 1 ] && echo '*.png *.svg' ) logs/"

/* loadgen.c: WebSocket broadcast load generator: flags, set-up, the report.
 *
 * The run itself is in lg_run.c; everything is on one io_uring in one
 * thread; see lg.h for the modules. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "lg.h"
#include "perf_util.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RING_SQ 4096
#define RING_BUFS 8192
#define RING_BUF_SIZE 4096

static void on_signal(int sig)
{
	(void)sig;
	lg_stop = 1;
}

static void usage(FILE *f)
{
	fprintf(f,
"usage: loadgen --port PORT [options]\n"
"  --host ADDR            server address, 127.0.0.0/8 only (127.0.0.1)\n"
"  --port PORT            server port (required)\n"
"  --path PATH            upgrade path (/)\n"
"      --sse              receivers read Server-Sent Events (GET /sse and the\n"
"                         path's ?query); the S senders stay WebSocket\n"
"  -n, --conns N          WebSocket clients, at most %u (1000)\n"
"  -s, --senders S        clients that also send (10)\n"
"      --sender-base B    first sender id, so several loadgen processes\n"
"                         against one server keep their senders apart (0)\n"
"  -r, --rate R           messages/s from all senders together (100)\n"
"      --deliveries D     or: offered deliveries/s; sets R = D / N\n"
"  -p, --size P           payload bytes (64)\n"
"  -w, --warmup W         seconds of sending before the measured window (2)\n"
"  -d, --duration D       measured window, seconds (10)\n"
"      --drain S          max seconds to wait for the window's messages (2)\n"
"      --settle S         seconds between all connected and sending (1)\n"
"      --connect-rate C   new connections per second, 0 = unlimited (5000)\n"
"      --connect-inflight K  connects+handshakes in flight (256)\n"
"      --connect-timeout S   give up connecting after S seconds (60)\n"
"      --src-addrs K      spread clients over 127.0.0.1..127.0.0.K (8)\n"
"      --batch-wait US    gather completions for up to US microseconds once\n"
"                         busy (kernel 6.12+ min-wait; 0 = off) (50)\n"
"      --server-pid PID   sample the server's CPU and RSS from /proc\n"
"      --cpu CPU          pin the load generator to CPU\n"
"      --ready-file F     once connected and settled, create F (several\n"
"                         processes: tells a coordinator this one is ready)\n"
"      --start-file F     then wait for F to exist before sending, at most\n"
"                         --connect-timeout more seconds\n"
"      --max-time S       hard cap on the whole run (sum of phases + 10)\n"
"      --json FILE        write the results as JSON\n"
"      --csv FILE         append the results as one CSV row (header if new)\n"
"      --label NAME       name of the server under test, for JSON/CSV\n"
"  -q, --quiet            no progress lines on stderr\n"
"exit status: 0 ok; 1 the run failed; 2 bad flags; 3 the run finished but a\n"
"correctness check failed (out-of-order, duplicate, server id gap, reorder\n"
"or mismatch; missing messages alone do not fail a run)\n",
		PERF_MAX_SOCKETS);
}

static int parse_flags(struct lg_config *c, int argc, char **argv)
{
	enum {
		F_HOST = 256, F_PORT, F_PATH, F_DELIVERIES, F_DRAIN, F_SETTLE, F_CRATE,
		F_CINFLIGHT, F_CTIMEOUT, F_SRC, F_PID, F_CPU, F_MAXTIME, F_JSON, F_CSV,
		F_LABEL, F_SBASE, F_BWAIT, F_READY, F_START, F_SSE,
	};
	static const struct option opts[] = {
		{ "host", required_argument, 0, F_HOST },
		{ "port", required_argument, 0, F_PORT },
		{ "path", required_argument, 0, F_PATH },
		{ "conns", required_argument, 0, 'n' },
		{ "senders", required_argument, 0, 's' },
		{ "sender-base", required_argument, 0, F_SBASE },
		{ "rate", required_argument, 0, 'r' },
		{ "deliveries", required_argument, 0, F_DELIVERIES },
		{ "size", required_argument, 0, 'p' },
		{ "warmup", required_argument, 0, 'w' },
		{ "duration", required_argument, 0, 'd' },
		{ "drain", required_argument, 0, F_DRAIN },
		{ "settle", required_argument, 0, F_SETTLE },
		{ "connect-rate", required_argument, 0, F_CRATE },
		{ "connect-inflight", required_argument, 0, F_CINFLIGHT },
		{ "connect-timeout", required_argument, 0, F_CTIMEOUT },
		{ "src-addrs", required_argument, 0, F_SRC },
		{ "batch-wait", required_argument, 0, F_BWAIT },
		{ "server-pid", required_argument, 0, F_PID },
		{ "cpu", required_argument, 0, F_CPU },
		{ "max-time", required_argument, 0, F_MAXTIME },
		{ "json", required_argument, 0, F_JSON },
		{ "csv", required_argument, 0, F_CSV },
		{ "label", required_argument, 0, F_LABEL },
		{ "ready-file", required_argument, 0, F_READY },
		{ "start-file", required_argument, 0, F_START },
		{ "sse", no_argument, 0, F_SSE },
		{ "quiet", no_argument, 0, 'q' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	double deliveries = -1, v;
	uint64_t u;
	int o;
	bool ok = true;

	snprintf(c->host_str, sizeof(c->host_str), "127.0.0.1");
	c->path = "/";
	c->conns = 1000;
	c->senders = 10;
	c->rate = 100;
	c->size = 64;
	c->warmup = 2;
	c->duration = 10;
	c->drain = 2;
	c->settle = 1;
	c->connect_rate = 5000;
	c->connect_inflight = 256;
	c->connect_timeout = 60;
	c->src_addrs = 8;
	c->batch_wait_us = 50;
	c->cpu = -1;

	while ((o = getopt_long(argc, argv, "n:s:r:p:w:d:qh", opts, NULL)) != -1) {
		switch (o) {
		case F_HOST:
			snprintf(c->host_str, sizeof(c->host_str), "%s", optarg);
			break;
		case F_PORT:
			ok = parse_uint(optarg, &u) && u > 0 && u < 65536;
			c->port = (uint16_t)u;
			break;
		case F_SSE:
			c->sse = true;
			break;
		case F_PATH:
			c->path = optarg;
			ok = optarg[0] == '/' && strlen(optarg) < 256 && !strpbrk(optarg, " \r\n");
			break;
		case 'n':
			ok = parse_uint(optarg, &u) && u > 0 && u <= PERF_MAX_SOCKETS;
			if (!ok)
				fprintf(stderr, "loadgen: --conns must be 1..%u: one process "
					"must stay under the 20,000 open-file limit; run several "
					"loadgen processes for more\n", PERF_MAX_SOCKETS);
			c->conns = (uint32_t)u;
			break;
		case 's':
			ok = parse_uint(optarg, &u) && u <= 100000;
			c->senders = (uint32_t)u;
			break;
		case F_SBASE:
			ok = parse_uint(optarg, &u) && u <= 1000000;
			c->sender_base = (uint32_t)u;
			break;
		case 'r':
			ok = parse_num(optarg, &v) && v >= 0 && v <= 1e7;
			c->rate = v;
			break;
		case F_DELIVERIES:
			ok = parse_num(optarg, &deliveries) && deliveries >= 0;
			break;
		case 'p':
			ok = parse_uint(optarg, &u) && u >= 1 && u <= 65536;
			c->size = (uint32_t)u;
			break;
		case 'w':
			ok = parse_num(optarg, &c->warmup) && c->warmup >= 0;
			break;
		case 'd':
			ok = parse_num(optarg, &c->duration) && c->duration > 0;
			break;
		case F_DRAIN:
			ok = parse_num(optarg, &c->drain) && c->drain >= 0;
			break;
		case F_SETTLE:
			ok = parse_num(optarg, &c->settle) && c->settle >= 0;
			break;
		case F_CRATE:
			ok = parse_num(optarg, &c->connect_rate) && c->connect_rate >= 0;
			break;
		case F_CINFLIGHT:
			ok = parse_uint(optarg, &u) && u >= 1 && u <= 4096;
			c->connect_inflight = (uint32_t)u;
			break;
		case F_CTIMEOUT:
			ok = parse_num(optarg, &c->connect_timeout) && c->connect_timeout > 0;
			break;
		case F_SRC:
			ok = parse_uint(optarg, &u) && u >= 1 && u <= 254;
			c->src_addrs = (uint32_t)u;
			break;
		case F_BWAIT:
			ok = parse_uint(optarg, &u) && u <= 10000;
			c->batch_wait_us = (uint32_t)u;
			break;
		case F_PID:
			ok = parse_uint(optarg, &u) && u > 0 && u < (1u << 22);
			c->server_pid = (int)u;
			break;
		case F_CPU:
			ok = parse_uint(optarg, &u) && u < 1024;
			c->cpu = (int)u;
			break;
		case F_MAXTIME:
			ok = parse_num(optarg, &c->max_time) && c->max_time > 0;
			break;
		case F_JSON:
			c->json_path = optarg;
			break;
		case F_CSV:
			c->csv_path = optarg;
			break;
		case F_LABEL:
			c->label = optarg;
			/* It goes into JSON and CSV unquoted-safe. */
			ok = strspn(optarg, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
					    "0123456789_.-+") == strlen(optarg);
			break;
		case F_READY:
			c->ready_file = optarg;
			ok = strlen(optarg) < 4000;
			break;
		case F_START:
			c->start_file = optarg;
			break;
		case 'q':
			c->quiet = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
		if (!ok) {
			fprintf(stderr, "loadgen: bad value '%s' (see --help)\n", optarg);
			return -1;
		}
	}
	if (optind < argc || !c->port) {
		usage(stderr);
		return -1;
	}
	if (!parse_loopback(c->host_str, &c->host)) {
		fprintf(stderr, "loadgen: refusing host %s: load goes to 127.0.0.0/8 only\n",
			c->host_str);
		return -1;
	}
	if (deliveries >= 0)
		c->rate = deliveries / c->conns;
	if (c->senders > c->conns)
		c->senders = c->conns;
	if (c->rate > 0 && !c->senders) {
		fprintf(stderr, "loadgen: a rate needs at least one sender\n");
		return -1;
	}
	if (!c->max_time)
		c->max_time = c->connect_timeout * (c->start_file ? 2 : 1) + c->settle +
			      c->warmup + c->duration + c->drain + 10;
	return 0;
}

int main(int argc, char **argv)
{
	static struct lg lg;
	struct lg_result r;
	uint64_t limit;
	int ret;

	memset(&r, 0, sizeof(r));
	if (parse_flags(&lg.cfg, argc, argv) < 0)
		return 2;
	/* The last line of defence against a wedged run: the kernel ends it. */
	alarm((unsigned)ceil(lg.cfg.max_time) + 5);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);
	if (pin_cpu(lg.cfg.cpu) < 0)
		fprintf(stderr, "loadgen: cannot pin to CPU %d\n", lg.cfg.cpu);

	limit = raise_fd_limit();
	if (lg.cfg.conns + 64 > limit) {
		fprintf(stderr, "loadgen: %u clients need %u descriptors, the limit is %llu\n",
			lg.cfg.conns, lg.cfg.conns + 64, (unsigned long long)limit);
		return 2;
	}
	lg.dst.sin_family = AF_INET;
	lg.dst.sin_port = htons(lg.cfg.port);
	lg.dst.sin_addr = lg.cfg.host;
	lg.mask_state = now_ns() | 1;
	lg.win_start = UINT64_MAX;
	lg.win_end = UINT64_MAX;
	hist_init(&lg.st.latency);
	hist_init(&lg.st.connect);
	hist_init(&lg.st.lat_all);
	lg.id_win = LG_ID_RANGE_EMPTY;
	lg.conns = calloc(lg.cfg.conns, sizeof(*lg.conns));
	if (!lg.conns)
		return 1;
	for (uint32_t i = 0; i < lg.cfg.conns; i++)
		lg.conns[i].fd = -1;
	ret = lg_ring_init(&lg, RING_SQ, RING_BUFS, RING_BUF_SIZE);
	if (ret < 0) {
		fprintf(stderr, "loadgen: io_uring setup failed: %s\n", strerror(-ret));
		return 1;
	}

	ret = lg_run(&lg, &r);
	if (ret < 0 && ret != -EINTR)
		fprintf(stderr, "loadgen: run failed: %s\n", strerror(-ret));
	if (lg.win_end != UINT64_MAX) {
		lg_report_compute(&lg, &r);
		lg_report_print(&lg, &r);
		if (lg.cfg.json_path && lg_report_json(&lg, &r, lg.cfg.json_path))
			fprintf(stderr, "loadgen: cannot write %s\n", lg.cfg.json_path);
		if (lg.cfg.csv_path && lg_report_csv(&lg, &r, lg.cfg.csv_path))
			fprintf(stderr, "loadgen: cannot write %s\n", lg.cfg.csv_path);
	}
	lg_ring_exit(&lg);
	lg_conns_close_all(&lg);
	if (ret < 0)
		return 1;
	return lg_report_failed(&lg, &r) ? 3 : 0;
}

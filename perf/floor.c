/* floor.c: what the kernel alone charges for a broadcast over loopback TCP.
 *
 * N connected TCP pairs on 127.0.0.x, a reader process draining the
 * receiving ends on the other core, and a sender that puts one message on
 * each of the N sockets per round, with plain write() and then with batched
 * io_uring sends. The sender's CPU per delivery is the floor a WebSocket
 * server doing the same fan-out cannot go below. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "floor.h"
#include "perf_util.h"

#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void usage(FILE *f)
{
	fprintf(f,
"usage: floor [options]\n"
"  -n, --conns N         TCP pairs, at most %u (1000)\n"
"  -r, --rate R          deliveries/s to pace at, 0 = flat out (100000)\n"
"  -d, --duration S      seconds per method (3)\n"
"  -p, --size P          message bytes (64)\n"
"  -m, --method M        write, uring or both (both)\n"
"      --batch B         io_uring SQEs per submit (64)\n"
"      --src-addrs K     spread over 127.0.0.1..127.0.0.K (8)\n"
"      --sender-cpu C    pin the sender (0)\n"
"      --reader-cpu C    pin the reader process (1)\n"
"      --csv FILE        append one row per method (header if new)\n"
"      --json FILE       write the results as JSON\n"
"      --label NAME      a name for the CSV rows (floor)\n",
		PERF_MAX_SOCKETS);
}

static int parse_flags(struct floor_cfg *c, int argc, char **argv)
{
	enum { F_BATCH = 256, F_SRC, F_SCPU, F_RCPU, F_CSV, F_JSON, F_LABEL };
	static const struct option opts[] = {
		{ "conns", required_argument, 0, 'n' },
		{ "rate", required_argument, 0, 'r' },
		{ "duration", required_argument, 0, 'd' },
		{ "size", required_argument, 0, 'p' },
		{ "method", required_argument, 0, 'm' },
		{ "batch", required_argument, 0, F_BATCH },
		{ "src-addrs", required_argument, 0, F_SRC },
		{ "sender-cpu", required_argument, 0, F_SCPU },
		{ "reader-cpu", required_argument, 0, F_RCPU },
		{ "csv", required_argument, 0, F_CSV },
		{ "json", required_argument, 0, F_JSON },
		{ "label", required_argument, 0, F_LABEL },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	uint64_t u;
	int o;
	bool ok = true;

	*c = (struct floor_cfg){
		.conns = 1000, .size = 64, .rate = 100000, .duration = 3, .batch = 64,
		.src_addrs = 8, .sender_cpu = 0, .reader_cpu = 1, .do_write = true,
		.do_uring = true, .label = "floor",
	};
	while ((o = getopt_long(argc, argv, "n:r:d:p:m:h", opts, NULL)) != -1) {
		switch (o) {
		case 'n':
			ok = parse_uint(optarg, &u) && u >= 1 && u <= PERF_MAX_SOCKETS;
			c->conns = (uint32_t)u;
			break;
		case 'r':
			ok = parse_num(optarg, &c->rate) && c->rate >= 0;
			break;
		case 'd':
			ok = parse_num(optarg, &c->duration) && c->duration > 0 && c->duration <= 600;
			break;
		case 'p':
			ok = parse_uint(optarg, &u) && u >= 1 && u <= 65536;
			c->size = (uint32_t)u;
			break;
		case 'm':
			c->do_write = !strcmp(optarg, "write") || !strcmp(optarg, "both");
			c->do_uring = !strcmp(optarg, "uring") || !strcmp(optarg, "both");
			ok = c->do_write || c->do_uring;
			break;
		case F_BATCH:
			ok = parse_uint(optarg, &u) && u >= 1 && u <= 1024;
			c->batch = (uint32_t)u;
			break;
		case F_SRC:
			ok = parse_uint(optarg, &u) && u >= 1 && u <= 254;
			c->src_addrs = (uint32_t)u;
			break;
		case F_SCPU:
			ok = parse_uint(optarg, &u) && u < 1024;
			c->sender_cpu = (int)u;
			break;
		case F_RCPU:
			ok = parse_uint(optarg, &u) && u < 1024;
			c->reader_cpu = (int)u;
			break;
		case F_CSV:
			c->csv_path = optarg;
			break;
		case F_JSON:
			c->json_path = optarg;
			break;
		case F_LABEL:
			c->label = optarg;
			ok = strspn(optarg, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
					    "0123456789_.-+") == strlen(optarg);
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
		if (!ok) {
			fprintf(stderr, "floor: bad value '%s' (see --help)\n", optarg);
			return -1;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return -1;
	}
	return 0;
}

static double per(uint64_t a, uint64_t b)
{
	return b ? (double)a / (double)b : 0;
}

static void print_row(const struct floor_result *r)
{
	printf("  %-6s %12llu %12.0f %14.1f %10.1f%% %14.1f %8llu\n", r->method,
	       (unsigned long long)r->deliveries, per(r->deliveries * NSEC_PER_SEC, r->wall_ns),
	       per(r->cpu_ns, r->deliveries), 100 * per(r->cpu_ns, r->wall_ns),
	       per(r->reader_cpu_ns, r->deliveries), (unsigned long long)r->errors);
}

static int write_csv(const struct floor_cfg *c, const struct floor_result *res, int n)
{
	struct stat sb;
	bool header = stat(c->csv_path, &sb) < 0 || sb.st_size == 0;
	FILE *f = fopen(c->csv_path, "a");

	if (!f)
		return -1;
	if (header)
		fprintf(f, "label,method,conns,size,offered_deliveries,deliveries,"
			   "deliveries_per_s,sender_cpu_ns_per_delivery,sender_cpu_util,"
			   "reader_cpu_ns_per_delivery,errors\n");
	for (int i = 0; i < n; i++) {
		const struct floor_result *r = &res[i];

		fprintf(f, "%s,%s,%u,%u,%.0f,%llu,%.0f,%.1f,%.4f,%.1f,%llu\n", c->label,
			r->method, c->conns, c->size, c->rate, (unsigned long long)r->deliveries,
			per(r->deliveries * NSEC_PER_SEC, r->wall_ns), per(r->cpu_ns, r->deliveries),
			per(r->cpu_ns, r->wall_ns), per(r->reader_cpu_ns, r->deliveries),
			(unsigned long long)r->errors);
	}
	return fclose(f);
}

static int write_json(const struct floor_cfg *c, const struct floor_result *res, int n)
{
	FILE *f = fopen(c->json_path, "w");

	if (!f)
		return -1;
	fprintf(f, "{\n  \"label\": \"%s\",\n  \"conns\": %u,\n  \"size\": %u,\n"
		   "  \"offered_deliveries\": %.0f,\n  \"methods\": [",
		c->label, c->conns, c->size, c->rate);
	for (int i = 0; i < n; i++) {
		const struct floor_result *r = &res[i];

		fprintf(f, "%s\n    {\"method\": \"%s\", \"deliveries\": %llu, "
			   "\"deliveries_per_s\": %.0f, \"sender_cpu_ns_per_delivery\": %.1f, "
			   "\"sender_cpu_util\": %.4f, \"reader_cpu_ns_per_delivery\": %.1f, "
			   "\"errors\": %llu}",
			i ? "," : "", r->method, (unsigned long long)r->deliveries,
			per(r->deliveries * NSEC_PER_SEC, r->wall_ns), per(r->cpu_ns, r->deliveries),
			per(r->cpu_ns, r->wall_ns), per(r->reader_cpu_ns, r->deliveries),
			(unsigned long long)r->errors);
	}
	fprintf(f, "\n  ]\n}\n");
	return fclose(f);
}

int main(int argc, char **argv)
{
	struct floor_cfg c;
	struct floor_pairs fp;
	struct floor_result res[2];
	struct floor_reader_report rep, prev = { 0, 0 };
	uint64_t sent_bytes = 0;
	int n = 0, ret;

	if (parse_flags(&c, argc, argv) < 0)
		return 2;
	if (c.conns + 64 > raise_fd_limit()) {
		fprintf(stderr, "floor: %u pairs need %u descriptors per process\n", c.conns,
			c.conns + 64);
		return 2;
	}
	/* Hard cap: both methods, setup and draining, generously. */
	alarm((unsigned)(2 * c.duration + 120));
	signal(SIGPIPE, SIG_IGN);
	pin_cpu(c.sender_cpu);

	ret = floor_pairs_open(&fp, &c);
	if (ret) {
		fprintf(stderr, "floor: setting up %u TCP pairs failed: %s\n", c.conns,
			strerror(-ret));
		floor_pairs_close(&fp);
		return 1;
	}
	memset(res, 0, sizeof(res));
	for (int m = 0; m < 2; m++) {
		struct floor_result *r = &res[n];

		if (m == 0 && !c.do_write)
			continue;
		if (m == 1 && !c.do_uring)
			continue;
		ret = m == 0 ? floor_send_write(&fp, &c, r) : floor_send_uring(&fp, &c, r);
		if (ret) {
			fprintf(stderr, "floor: %s failed: %s\n", m ? "uring" : "write",
				strerror(-ret));
			break;
		}
		/* The warm-up round was sent too; the reader must see it all. */
		sent_bytes += (r->deliveries + fp.n) * c.size;
		ret = floor_pairs_sync(&fp, sent_bytes, &rep);
		if (ret) {
			fprintf(stderr, "floor: reader did not report: %s\n", strerror(-ret));
			break;
		}
		if (rep.bytes < sent_bytes)
			fprintf(stderr, "floor: reader got %llu of %llu bytes\n",
				(unsigned long long)rep.bytes, (unsigned long long)sent_bytes);
		r->reader_cpu_ns = rep.cpu_ns - prev.cpu_ns;
		r->reader_bytes = rep.bytes - prev.bytes;
		prev = rep;
		n++;
	}
	floor_pairs_close(&fp);
	if (!n)
		return 1;

	printf("floor: %u loopback TCP pairs, %u B messages, %s, %.1f s per method\n",
	       c.conns, c.size, c.rate > 0 ? "paced" : "flat out", c.duration);
	if (c.rate > 0)
		printf("  offered %.0f deliveries/s (%.1f rounds/s of %u sends)\n", c.rate,
		       c.rate / c.conns, c.conns);
	printf("  %-6s %12s %12s %14s %11s %14s %8s\n", "method", "deliveries", "per second",
	       "sender ns/dlv", "sender cpu", "reader ns/dlv", "errors");
	for (int i = 0; i < n; i++)
		print_row(&res[i]);
	fflush(stdout);
	if (c.csv_path && write_csv(&c, res, n))
		fprintf(stderr, "floor: cannot write %s\n", c.csv_path);
	if (c.json_path && write_json(&c, res, n))
		fprintf(stderr, "floor: cannot write %s\n", c.json_path);
	return 0;
}

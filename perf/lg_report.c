/* lg_report.c: turn the counters into numbers, and print them three ways. */
#include "lg.h"
#include "perf_util.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* Above this share of one core, the load generator itself may be what
 * limits the run; the report says so rather than blaming the server. */
#define LG_BUSY_WARN 0.85

/* Other processes taking more than this share of a core during the window
 * make the numbers noisy (both cores are spoken for). */
#define LG_NOISE_WARN 0.10

/* The id check's verdict on every client that was open from the window's
 * start to the end (lg_id_cover); closed ones are counted elsewhere. */
static void compute_ids(const struct lg *lg, struct lg_result *r)
{
	r->id_clients = 0;
	r->id_mismatch = r->id_behind = 0;
	r->id_first_max = 0;
	r->id_last_min = UINT64_MAX;
	for (uint32_t i = 0; i < lg->cfg.conns; i++) {
		const struct lg_conn *c = &lg->conns[i];

		if (!c->in_window || c->state != CS_OPEN)
			continue;
		r->id_clients++;
		switch (lg_id_cover(&c->ids, lg->id_win)) {
		case COVER_OK:
			break;
		case COVER_MISMATCH:
			r->id_mismatch++;
			break;
		case COVER_BEHIND:
			r->id_behind++;
			break;
		}
		if (c->ids.next) {
			if (c->ids.first > r->id_first_max)
				r->id_first_max = c->ids.first;
			if (c->ids.next - 1 < r->id_last_min)
				r->id_last_min = c->ids.next - 1;
		} else {
			r->id_last_min = 0;
		}
	}
	if (r->id_last_min == UINT64_MAX)
		r->id_last_min = 0;
}

void lg_report_compute(const struct lg *lg, struct lg_result *r)
{
	const struct lg_stats *st = &lg->st;
	uint64_t delivered = st->marker_at_end - st->marker_at_start;

	r->connect_total_s = (double)st->connect_ns / 1e9;
	r->sent_rate = r->window_s > 0 ? (double)st->sent_window / r->window_s : 0;
	r->deliveries_per_s = r->window_s > 0 ? (double)delivered / r->window_s : 0;
	r->expected = st->sent_window * r->open_at_start;
	r->missing = r->expected > st->unique_measured ? r->expected - st->unique_measured : 0;
	r->server_cpu_ns_per_delivery = 0;
	r->server_cpu_util = 0;
	if (r->srv_start.ok && r->srv_end.ok) {
		double cpu = (double)(r->srv_end.cpu_ns - r->srv_start.cpu_ns);
		double wall = (double)(r->srv_end.t_ns - r->srv_start.t_ns);

		if (delivered)
			r->server_cpu_ns_per_delivery = cpu / (double)delivered;
		if (wall > 0)
			r->server_cpu_util = cpu / wall;
	}
	r->other_cpu_util = 0;
	if (r->srv_end.t_ns > r->srv_start.t_ns) {
		double wall = (double)(r->srv_end.t_ns - r->srv_start.t_ns);
		double busy = (double)(r->srv_end.sys_busy_ns - r->srv_start.sys_busy_ns) / wall;

		r->other_cpu_util = busy - r->server_cpu_util - r->own_cpu_util;
		if (r->other_cpu_util < 0)
			r->other_cpu_util = 0;
	}
	r->rss_per_conn_bytes = 0;
	if (r->srv_before.ok && r->srv_connected.ok && st->connected)
		r->rss_per_conn_bytes = ((double)r->srv_connected.rss_kb -
					 (double)r->srv_before.rss_kb) * 1024.0 /
					(double)st->connected;
	r->p50 = hist_quantile(&st->latency, 0.50);
	r->p90 = hist_quantile(&st->latency, 0.90);
	r->p99 = hist_quantile(&st->latency, 0.99);
	r->p999 = hist_quantile(&st->latency, 0.999);
	r->pmax = st->latency.count ? st->latency.max : 0;
	r->cp50 = hist_quantile(&st->connect, 0.50);
	r->cp99 = hist_quantile(&st->connect, 0.99);
	r->all_p50 = hist_quantile(&st->lat_all, 0.50);
	r->all_p99 = hist_quantile(&st->lat_all, 0.99);
	compute_ids(lg, r);
}

bool lg_report_failed(const struct lg *lg, const struct lg_result *r)
{
	const struct lg_stats *st = &lg->st;

	return st->late || st->dups || st->id_gaps || st->id_reorders || r->id_mismatch;
}

/* Nanoseconds as a short human string: 850ns, 12.3us, 4.56ms, 1.20s. */
static const char *dur(char *buf, size_t n, uint64_t ns)
{
	if (ns < 1000)
		snprintf(buf, n, "%lluns", (unsigned long long)ns);
	else if (ns < 1000000)
		snprintf(buf, n, "%.1fus", (double)ns / 1e3);
	else if (ns < NSEC_PER_SEC)
		snprintf(buf, n, "%.2fms", (double)ns / 1e6);
	else
		snprintf(buf, n, "%.2fs", (double)ns / 1e9);
	return buf;
}

void lg_report_print(const struct lg *lg, const struct lg_result *r)
{
	const struct lg_config *c = &lg->cfg;
	const struct lg_stats *st = &lg->st;
	char a[32], b[32], d[32], e[32], f[32];

	printf("loadgen -> %s:%u%s (%s)\n", c->host_str, c->port, c->path,
	       c->label ? c->label : "unlabelled");
	printf("  load        %u conns, %u senders, %.0f msg/s x %u B = %.0f deliveries/s offered; "
	       "warm-up %.1fs, measured %.2fs\n",
	       c->conns, lg->nsenders, c->rate, c->size, c->rate * r->open_at_start,
	       c->warmup, r->window_s);
	printf("  connect     %llu/%u open in %.2fs  p50 %s  p99 %s  failed %llu  handshake-failed %llu\n",
	       (unsigned long long)st->connected, c->conns, r->connect_total_s,
	       dur(a, sizeof(a), r->cp50), dur(b, sizeof(b), r->cp99),
	       (unsigned long long)st->connect_failed, (unsigned long long)st->handshake_failed);
	printf("  sent        %llu in window (%.1f msg/s of %.1f)  overflow %llu\n",
	       (unsigned long long)st->sent_window, r->sent_rate, c->rate,
	       (unsigned long long)st->send_overflow);
	printf("  delivered   %.0f/s in window; of %llu expected: %llu received, %llu missing, "
	       "%llu dup, %llu out-of-order\n",
	       r->deliveries_per_s, (unsigned long long)r->expected,
	       (unsigned long long)st->unique_measured, (unsigned long long)r->missing,
	       (unsigned long long)st->dups, (unsigned long long)st->late);
	printf("  latency     p50 %s  p90 %s  p99 %s  p99.9 %s  max %s\n",
	       dur(a, sizeof(a), r->p50), dur(b, sizeof(b), r->p90), dur(d, sizeof(d), r->p99),
	       dur(e, sizeof(e), r->p999), dur(f, sizeof(f), r->pmax));
	if (st->foreign)
		printf("  latency-all p50 %s  p99 %s  (%llu window deliveries, other processes' "
		       "senders included)\n", dur(a, sizeof(a), r->all_p50), dur(b, sizeof(b), r->all_p99),
		       (unsigned long long)st->lat_all.count);
	if (lg->id_win.lo <= lg->id_win.hi)
		printf("  server ids  window %llu..%llu; %u clients: %llu gaps (%llu ids skipped), "
		       "%llu reorders, %llu mismatch, %llu behind; all saw %llu..%llu\n",
		       (unsigned long long)lg->id_win.lo, (unsigned long long)lg->id_win.hi,
		       r->id_clients, (unsigned long long)st->id_gaps,
		       (unsigned long long)st->id_skipped, (unsigned long long)st->id_reorders,
		       (unsigned long long)r->id_mismatch, (unsigned long long)r->id_behind,
		       (unsigned long long)r->id_first_max, (unsigned long long)r->id_last_min);
	else
		printf("  server ids  none in the window (%llu message events with an id; "
		       "%llu gaps, %llu reorders)\n", (unsigned long long)st->id_events,
		       (unsigned long long)st->id_gaps, (unsigned long long)st->id_reorders);
	if (r->srv_start.ok)
		printf("  server      cpu %.1f%% of a core, %.0f ns/delivery; rss %.1f MB idle, "
		       "%.1f MB connected (%.0f B/conn), %.1f MB at end\n",
		       r->server_cpu_util * 100, r->server_cpu_ns_per_delivery,
		       (double)r->srv_before.rss_kb / 1024, (double)r->srv_connected.rss_kb / 1024,
		       r->rss_per_conn_bytes, (double)r->srv_end.rss_kb / 1024);
	printf("  loadgen     cpu %.1f%% of a core, %.1f completions per loop pass%s\n",
	       r->own_cpu_util * 100, st->passes ? (double)st->cqes / (double)st->passes : 0,
	       r->own_cpu_util > LG_BUSY_WARN ? "  ** WARNING: loadgen near saturation, "
						"it may be the bottleneck **" : "");
	printf("  machine     other processes used %.1f%% of a core%s\n",
	       r->other_cpu_util * 100,
	       r->other_cpu_util > LG_NOISE_WARN ? "  ** WARNING: machine not quiet, numbers are noisy **"
						  : "");
	printf("  other       closed-by-server %llu, close frames %llu, pings %llu, "
	       "non-marker frames %llu, skipped %llu, enobufs %llu, gaps %llu, foreign %llu\n",
	       (unsigned long long)st->closed_by_server, (unsigned long long)st->close_frames,
	       (unsigned long long)st->pings, (unsigned long long)st->other_frames,
	       (unsigned long long)st->skipped_frames, (unsigned long long)st->enobufs_rearms,
	       (unsigned long long)st->gaps, (unsigned long long)st->foreign);
	fflush(stdout);
}

/* The fields, once, for both JSON and CSV: name, printf format, value. */
#define LG_FIELDS(X)                                                                  \
	X("label", "%s", c->label ? c->label : "")                                    \
	X("conns", "%u", c->conns)                                                    \
	X("connected", "%llu", (unsigned long long)st->connected)                     \
	X("senders", "%u", lg->nsenders)                                              \
	X("rate_msgs", "%.3f", c->rate)                                               \
	X("offered_deliveries", "%.0f", c->rate * r->open_at_start)                  \
	X("size", "%u", c->size)                                                      \
	X("warmup_s", "%.3f", c->warmup)                                              \
	X("window_s", "%.3f", r->window_s)                                            \
	X("connect_total_s", "%.3f", r->connect_total_s)                              \
	X("connect_p50_us", "%.1f", (double)r->cp50 / 1e3)                            \
	X("connect_p99_us", "%.1f", (double)r->cp99 / 1e3)                            \
	X("sent_window", "%llu", (unsigned long long)st->sent_window)                 \
	X("sent_rate", "%.1f", r->sent_rate)                                          \
	X("deliveries_per_s", "%.0f", r->deliveries_per_s)                            \
	X("expected", "%llu", (unsigned long long)r->expected)                        \
	X("received", "%llu", (unsigned long long)st->unique_measured)                \
	X("missing", "%llu", (unsigned long long)r->missing)                          \
	X("dups", "%llu", (unsigned long long)st->dups)                               \
	X("out_of_order", "%llu", (unsigned long long)st->late)                       \
	X("lat_p50_us", "%.1f", (double)r->p50 / 1e3)                                 \
	X("lat_p90_us", "%.1f", (double)r->p90 / 1e3)                                 \
	X("lat_p99_us", "%.1f", (double)r->p99 / 1e3)                                 \
	X("lat_p999_us", "%.1f", (double)r->p999 / 1e3)                               \
	X("lat_max_us", "%.1f", (double)r->pmax / 1e3)                                \
	X("server_cpu_util", "%.4f", r->server_cpu_util)                              \
	X("server_cpu_ns_per_delivery", "%.1f", r->server_cpu_ns_per_delivery)        \
	X("server_rss_idle_kb", "%llu", (unsigned long long)r->srv_before.rss_kb)     \
	X("server_rss_connected_kb", "%llu", (unsigned long long)r->srv_connected.rss_kb) \
	X("server_rss_end_kb", "%llu", (unsigned long long)r->srv_end.rss_kb)         \
	X("rss_per_conn_bytes", "%.0f", r->rss_per_conn_bytes)                        \
	X("loadgen_cpu_util", "%.4f", r->own_cpu_util)                                \
	X("loadgen_saturated", "%d", r->own_cpu_util > LG_BUSY_WARN)                  \
	X("other_cpu_util", "%.4f", r->other_cpu_util)                                \
	X("foreign_deliveries", "%llu", (unsigned long long)st->foreign)               \
	X("closed_by_server", "%llu", (unsigned long long)st->closed_by_server)        \
	X("send_overflow", "%llu", (unsigned long long)st->send_overflow)              \
	X("id_events", "%llu", (unsigned long long)st->id_events)                     \
	X("id_gaps", "%llu", (unsigned long long)st->id_gaps)                         \
	X("id_skipped", "%llu", (unsigned long long)st->id_skipped)                   \
	X("id_reorders", "%llu", (unsigned long long)st->id_reorders)                 \
	X("id_mismatch", "%llu", (unsigned long long)r->id_mismatch)                  \
	X("id_behind", "%llu", (unsigned long long)r->id_behind)                      \
	X("id_clients", "%u", r->id_clients)                                          \
	X("id_window_lo", "%llu", (unsigned long long)(lg->id_win.lo <= lg->id_win.hi ? lg->id_win.lo : 0)) \
	X("id_window_hi", "%llu", (unsigned long long)lg->id_win.hi)                  \
	X("id_first_max", "%llu", (unsigned long long)r->id_first_max)                \
	X("id_last_min", "%llu", (unsigned long long)r->id_last_min)                  \
	X("lat_all_count", "%llu", (unsigned long long)st->lat_all.count)             \
	X("lat_all_p50_us", "%.1f", (double)r->all_p50 / 1e3)                         \
	X("lat_all_p99_us", "%.1f", (double)r->all_p99 / 1e3)                         \
	X("failed", "%d", lg_report_failed(lg, r))

int lg_report_json(const struct lg *lg, const struct lg_result *r, const char *path)
{
	const struct lg_config *c = &lg->cfg;
	const struct lg_stats *st = &lg->st;
	const char *sep = "";
	FILE *f = fopen(path, "w");

	if (!f)
		return -1;
	fputs("{", f);
#define X(name, fmt, val)                                                   \
	do {                                                                \
		fprintf(f, "%s\n  \"%s\": ", sep, name);                    \
		if (!strcmp(fmt, "%s"))                                     \
			fputc('"', f);                                      \
		fprintf(f, fmt, val);                                       \
		if (!strcmp(fmt, "%s"))                                     \
			fputc('"', f);                                      \
		sep = ",";                                                  \
	} while (0);
	LG_FIELDS(X)
#undef X
	/* The whole histogram (bucket's largest value in ns, count; non-empty
	 * buckets only), so that several processes' latencies can be merged
	 * into true percentiles rather than averaged ones. */
	fputs(",\n  \"lat_all_hist\": [", f);
	sep = "";
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		if (!st->lat_all.bucket[i])
			continue;
		fprintf(f, "%s[%llu,%llu]", sep, (unsigned long long)hist_bucket_high(i),
			(unsigned long long)st->lat_all.bucket[i]);
		sep = ",";
	}
	fputs("]\n}\n", f);
	return fclose(f);
}

int lg_report_csv(const struct lg *lg, const struct lg_result *r, const char *path)
{
	const struct lg_config *c = &lg->cfg;
	const struct lg_stats *st = &lg->st;
	struct stat sb;
	bool header = stat(path, &sb) < 0 || sb.st_size == 0;
	const char *sep = "";
	FILE *f = fopen(path, "a");

	if (!f)
		return -1;
	if (header) {
#define X(name, fmt, val) fprintf(f, "%s%s", sep, name); sep = ",";
		LG_FIELDS(X)
#undef X
		fputc('\n', f);
		sep = "";
	}
#define X(name, fmt, val) fprintf(f, "%s", sep); fprintf(f, fmt, val); sep = ",";
	LG_FIELDS(X)
#undef X
	fputc('\n', f);
	return fclose(f);
}

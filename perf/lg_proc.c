/* lg_proc.c: server CPU and RSS from /proc/PID/stat and /proc/PID/status.
 *
 * /proc/PID/stat's utime and stime cover the whole thread group, exited
 * threads included, which matters for Node (its GC and libuv threads).
 * They come in clock ticks (10 ms), but the kernel scales them from its
 * nanosecond runtime, so the sum over a multi-second window is exact to a
 * tick. */
#include "lg_proc.h"
#include "perf_util.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static bool read_cpu(int pid, uint64_t *ns)
{
	char path[64], buf[1024];
	unsigned long long ut, st;
	const char *p;
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "r");
	if (!f)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	/* The command name may hold spaces and parentheses: skip to the last ')'. */
	p = strrchr(buf, ')');
	if (!p)
		return false;
	/* After ')': state(3) ... utime is field 14, stime 15. */
	if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
		   &ut, &st) != 2)
		return false;
	*ns = (ut + st) * NSEC_PER_SEC / (uint64_t)sysconf(_SC_CLK_TCK);
	return true;
}

static bool read_rss(int pid, uint64_t *kb)
{
	char path[64], line[256];
	unsigned long long v;
	bool ok = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	f = fopen(path, "r");
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "VmRSS: %llu kB", &v) == 1) {
			*kb = v;
			ok = true;
			break;
		}
	}
	fclose(f);
	return ok;
}

/* /proc/stat's first line: user nice system idle iowait irq softirq steal. */
static bool read_sys_busy(uint64_t *ns)
{
	unsigned long long v[8] = { 0 };
	FILE *f = fopen("/proc/stat", "r");
	int n;

	if (!f)
		return false;
	n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
		   &v[3], &v[4], &v[5], &v[6], &v[7]);
	fclose(f);
	if (n < 4)
		return false;
	*ns = (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) * NSEC_PER_SEC /
	      (uint64_t)sysconf(_SC_CLK_TCK);
	return true;
}

struct proc_sample proc_sample(int pid)
{
	struct proc_sample s = { .t_ns = now_ns() };

	read_sys_busy(&s.sys_busy_ns);
	if (pid > 0)
		s.ok = read_cpu(pid, &s.cpu_ns) && read_rss(pid, &s.rss_kb);
	return s;
}

/* lg_proc.h: what the server process costs, read from /proc. */
#ifndef LG_PROC_H
#define LG_PROC_H

#include <stdbool.h>
#include <stdint.h>

struct proc_sample {
	bool ok;
	uint64_t cpu_ns;    /* utime + stime of every thread, live and exited */
	uint64_t rss_kb;    /* VmRSS */
	uint64_t sys_busy_ns; /* the whole machine's busy CPU time, all cores */
	uint64_t t_ns;      /* CLOCK_MONOTONIC when taken */
};

/* Sample pid (0: an empty, not-ok sample). The machine-wide busy time is
 * taken in any case: less the server and the load generator, it is what
 * other processes took, and a benchmark should say when that was much. */
struct proc_sample proc_sample(int pid);

#endif

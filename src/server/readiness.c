/* readiness.c: whether this node can serve (include/readiness.h). */
#include "readiness.h"

#include <stdio.h>

#include "log.h"

static const char *const part_name[READY_PARTS] = { "history store", "cluster" };
static const char *const part_failing[READY_PARTS] = { "history store failing", "cluster unreachable" };

void readiness_init(struct readiness *r)
{
	for (unsigned i = 0; i < READY_PARTS; i++)
		atomic_init(&r->why_not[i], NULL);
}

void readiness_start_not_ready(struct readiness *r, unsigned mask, const char *why)
{
	for (unsigned i = 0; i < READY_PARTS; i++)
		if (mask & (1u << i))
			atomic_store(&r->why_not[i], why);
}

bool readiness_set(struct readiness *r, unsigned mask, bool ok, const char *why)
{
	bool changed = false;
	for (unsigned i = 0; i < READY_PARTS; i++) {
		if (!(mask & (1u << i)))
			continue;
		const char *now = ok ? NULL : why ? why : part_failing[i];
		/* an exchange, so that of two threads racing to fail one part
		 * only one logs it */
		const char *was = atomic_exchange(&r->why_not[i], now);
		if ((was == NULL) == (now == NULL))
			continue;
		changed = true;
		if (now)
			log_error("not ready: %s", now);
		else
			log_info("ready again: the %s recovered", part_name[i]);
	}
	return changed;
}

bool readiness_check(const struct readiness *r, char *why, size_t why_len)
{
	bool ready = true;
	size_t len = 0;
	if (why && why_len)
		why[0] = '\0';
	for (unsigned i = 0; i < READY_PARTS; i++) {
		const char *reason = atomic_load(&r->why_not[i]);
		if (!reason)
			continue;
		if (why && len < why_len) {
			int n = snprintf(why + len, why_len - len, "%s%s", ready ? "" : "; ", reason);
			len += n > 0 ? (size_t)n : 0;
		}
		ready = false;
	}
	return ready;
}

/* rate_limit.c: token buckets in integer thousandths of a token. */
#include "rate_limit.h"

void bucket_init(struct token_bucket *b, const struct rate_config *cfg, uint64_t now_ms)
{
	b->milli_tokens = cfg->burst * 1000u;
	b->strikes = 0;
	b->last_ms = now_ms;
}

bool bucket_take(struct token_bucket *b, const struct rate_config *cfg, uint64_t now_ms)
{
	if (cfg->per_second == 0)
		return true;
	uint64_t cap = (uint64_t)cfg->burst * 1000u;
	if (now_ms > b->last_ms) {
		/* per_second tokens a second = per_second thousandths a millisecond */
		uint64_t refill = (now_ms - b->last_ms) * cfg->per_second;
		uint64_t tokens = b->milli_tokens + refill;
		b->milli_tokens = (uint32_t)(tokens > cap ? cap : tokens);
		b->last_ms = now_ms;
	}
	if (b->milli_tokens >= 1000) {
		b->milli_tokens -= 1000;
		b->strikes = 0;
		return true;
	}
	b->strikes++;
	return false;
}

/* rate_limit.h: a token bucket per connection, for flood control. */
#ifndef RINGCAST_RATE_LIMIT_H
#define RINGCAST_RATE_LIMIT_H

#include <stdbool.h>
#include <stdint.h>

struct rate_config {
	uint32_t per_second;  /* tokens added per second; 0 turns limiting off */
	uint32_t burst;       /* bucket size */
};

struct token_bucket {
	uint32_t milli_tokens; /* thousandths of a token, so slow rates refill smoothly */
	uint32_t strikes;      /* refusals since the last accepted message */
	uint64_t last_ms;
};

/* A full bucket at time now_ms. */
void bucket_init(struct token_bucket *b, const struct rate_config *cfg, uint64_t now_ms);

/* Take one token: true when allowed. A refusal counts a strike. */
bool bucket_take(struct token_bucket *b, const struct rate_config *cfg, uint64_t now_ms);

#endif

/* utf8.h: incremental UTF-8 validation (RFC 3629), failing as early as a
 * byte makes the sequence impossible to complete validly. */
#ifndef RINGCAST_UTF8_H
#define RINGCAST_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define UTF8_ACCEPT 0u  /* at a character boundary: valid so far and complete */
#define UTF8_REJECT 1u  /* invalid: cannot become valid */

/* Advance state over buf; returns the new state (UTF8_REJECT stays). */
uint32_t utf8_feed(uint32_t state, const uint8_t *buf, size_t len);

/* Whole buffer is valid, complete UTF-8. */
bool utf8_valid(const uint8_t *buf, size_t len);

#endif

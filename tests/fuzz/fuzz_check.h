/* fuzz_check.h: CHECK(cond) for the harnesses' invariants: a broken one
 * names itself and aborts, which libFuzzer reports as a crash with the
 * input that broke it. */
#ifndef RINGCAST_FUZZ_CHECK_H
#define RINGCAST_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                                 \
	do {                                                                        \
		if (!(cond)) {                                                      \
			fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, \
				__LINE__, #cond);                                   \
			abort();                                                    \
		}                                                                   \
	} while (0)

#endif

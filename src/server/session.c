/* session.c: the sessions' table, indexed by connection slot.
 *
 * Like the connection table it is allocated whole at start-up with calloc:
 * pages are faulted in only as slots are used. */
#include "session.h"

#include <stdlib.h>

#include "conn.h"
#include "log.h"

static struct session *table;

int session_init(uint32_t max_connections)
{
	table = calloc(max_connections, sizeof(*table));
	if (!table) {
		log_error("cannot allocate %u sessions", max_connections);
		return -1;
	}
	return 0;
}

void session_destroy(void)
{
	free(table);
	table = NULL;
}

void session_open(struct session *s)
{
	/* what the last connection in this slot left behind was released at
	 * its closing (ws_conn_closing) */
	*s = (struct session){ .proto = PROTO_HTTP };
}

struct session *session_of(const struct conn *c)
{
	return &table[c->slot];
}

struct conn *session_conn(const struct session *s)
{
	return conn_at((uint32_t)(s - table));
}

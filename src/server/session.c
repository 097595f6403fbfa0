/* session.c: what a new connection's session starts as.
 *
 * The sessions themselves live in the connection layer's slots, one table
 * per struct conns (session.h): nothing here is kept at file level. */
#include "session.h"

void session_open(struct session *s)
{
	/* what the last connection in this slot left behind was released at
	 * its closing (ws_conn_closing) */
	*s = (struct session){ .proto = PROTO_HTTP };
}

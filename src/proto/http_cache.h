/* http_cache.h: the two request headers that let a browser skip a download:
 * If-None-Match (its cached copy is still current: 304) and
 * Accept-Encoding (it can take the gzip copy). Pure functions over one
 * header value; nothing is allocated. */
#ifndef RINGCAST_HTTP_CACHE_H
#define RINGCAST_HTTP_CACHE_H

#include <stdbool.h>
#include <stddef.h>

/* Does an Accept-Encoding value allow gzip (RFC 9110 §12.5.3)? "gzip" or
 * "x-gzip" with a q above 0 does; so does "*" when gzip is not named.
 * "gzip;q=0" refuses it even with "*" present. A malformed q counts as 0:
 * in doubt the client gets the plain bytes, which it can always read. */
bool http_accepts_gzip(const char *value, size_t len);

/* Does an If-None-Match value match etag (a quoted entity tag, e.g.
 * "\"abc\"")? "*" matches anything; otherwise any tag in the comma list
 * that is equal to etag, with or without a W/ prefix (the weak comparison
 * RFC 9110 §13.1.2 asks of If-None-Match). */
bool http_etag_matches(const char *value, size_t len, const char *etag);

#endif

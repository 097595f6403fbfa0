/* tls.h: TLS 1.2 and later through OpenSSL memory BIOs: ciphertext in,
 * plaintext out and back, no sockets. The event loop moves the bytes; this
 * module never reads or writes a file descriptor, so it never blocks.
 *
 * Any call may leave ciphertext to send (handshake records, alerts, a
 * close_notify, an answer to a key update): after each batch of calls,
 * send what tls_output_pending reports. */
#ifndef RINGCAST_TLS_H
#define RINGCAST_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct tls_server;   /* one per process: certificate, key, settings */
struct tls_session;  /* one per connection */

/* Load cert (PEM chain) and key; TLS 1.2 minimum, ALPN "http/1.1",
 * SSL_MODE_RELEASE_BUFFERS so idle sessions hold no record buffers.
 * Returns NULL with a message on stderr. */
struct tls_server *tls_server_new(const char *cert_file, const char *key_file);
void tls_server_free(struct tls_server *srv);

/* Load cert and key again (a renewed certificate): new sessions get them,
 * sessions already made keep the ones they started with. From any thread,
 * while others make sessions. Returns 0, or -1 with a message on stderr,
 * and then srv keeps what it had. Blocking file reads: call it rarely. */
int tls_server_reload(struct tls_server *srv, const char *cert_file, const char *key_file);

/* NULL when out of memory. */
struct tls_session *tls_session_new(struct tls_server *srv);
void tls_session_free(struct tls_session *s);

/* Hand over ciphertext received from the peer (all of it is taken; the
 * caller's buffer can be reused at once). Drives the handshake. Returns 0,
 * or -1 when the session failed (bad handshake, alert): send what
 * tls_take_output has (the alert), then close. */
int tls_feed(struct tls_session *s, const uint8_t *data, size_t len);

/* Decrypted application bytes: up to cap into out. Returns the count, 0
 * when none are ready, -1 when the session is over: a fatal error, or the
 * peer's close_notify (already answered with ours). Call it after every
 * tls_feed until it returns 0; records wait undecrypted until then. */
ssize_t tls_read(struct tls_session *s, uint8_t *out, size_t cap);

/* Encrypt application bytes (all of them) into the output. Returns 0, or
 * -1 on a fatal error (or after tls_shutdown). Valid before the handshake
 * is done too: the bytes wait inside the session and are encrypted, in
 * order, by the tls_feed that completes it. */
int tls_write(struct tls_session *s, const uint8_t *data, size_t len);

/* Ciphertext waiting to be sent (handshake records, encrypted data, alerts). */
size_t tls_output_pending(const struct tls_session *s);
/* Move up to cap bytes of it into out; returns the count. */
size_t tls_take_output(struct tls_session *s, uint8_t *out, size_t cap);

/* True once the handshake has completed; stays true. */
bool tls_handshake_done(const struct tls_session *s);

/* Queue a close_notify alert (take it with tls_take_output); tls_read
 * still sees what the peer sends until its own close_notify. Before the
 * handshake is done there is nothing to protect an alert with: the
 * session just fails, and the caller closes. */
void tls_shutdown(struct tls_session *s);

#endif

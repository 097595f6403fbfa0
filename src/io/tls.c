/* tls.c: the server side of TLS through OpenSSL memory BIOs.
 *
 * Each session's SSL object reads ciphertext from one memory BIO and writes
 * ciphertext to another. The event loop fills the first (tls_feed) and
 * drains the second (tls_take_output); nothing here touches a descriptor,
 * so nothing blocks: an empty input BIO makes OpenSSL answer "want read",
 * and the session simply waits for the next tls_feed.
 *
 * Idle sessions are kept small. SSL_MODE_RELEASE_BUFFERS makes OpenSSL free
 * its record buffers between records, and a memory BIO that has just been
 * drained gives its buffer back too: a memory BIO never shrinks on its own,
 * so one 100 KiB write would otherwise stay allocated for the life of the
 * connection. The price is a few small allocations per flush, small next to
 * the cipher work and the send itself. */
#include "tls.h"

#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/buffer.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "log.h"

/* WebSocket starts as an HTTP/1.1 request, so that is the one protocol. */
#define TLS_ALPN_HTTP11 "http/1.1"

/* TLS 1.2 suites: forward secret and AEAD only, in OpenSSL's own order.
 * TLS 1.3 suites all are already; this list does not touch them. */
#define TLS_CIPHERS_TLS12 "ECDHE+AESGCM:ECDHE+CHACHA20"

/* Plaintext written during the handshake starts in a buffer this big. */
#define TLS_HELD_MIN 512

/* ctx is swapped by tls_server_reload while edges make sessions from it:
 * the lock covers reading the pointer and SSL_new's reference to it (one
 * uncontended lock per TLS accept). A session holds its ctx's reference
 * until SSL_free, so the old one lives on for the connections that use it
 * and goes with the last of them. */
struct tls_server {
	pthread_mutex_t lock;
	SSL_CTX *ctx;
};

struct tls_session {
	SSL *ssl;         /* owns both memory BIOs */
	uint8_t *held;    /* plaintext written before the handshake finished */
	size_t held_len, held_cap;
	bool handshaken;
	bool failed;      /* every call answers -1 from now on */
};

/* Print what failed and OpenSSL's reasons, oldest first: the oldest is
 * usually the root cause ("No such file or directory"), the later ones say
 * which layer gave up. */
static void tls_report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void tls_report(const char *fmt, ...)
{
	char what[512], reasons[768] = "";
	size_t len = 0;
	unsigned long e;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	while ((e = ERR_get_error()) != 0 && len + 2 < sizeof(reasons)) {
		char reason[256];
		ERR_error_string_n(e, reason, sizeof(reason));
		int n = snprintf(reasons + len, sizeof(reasons) - len, "%s%s", len ? "; " : "", reason);
		len += n > 0 ? (size_t)n : 0;
	}
	log_error("tls: %s%s%s", what, len ? ": " : "", reasons); /* one line, like every log line */
}

/* Pick "http/1.1" from the client's list. A client that offers ALPN but
 * not http/1.1 (say h2 only) gets a fatal no_application_protocol alert,
 * as RFC 7301 section 3.2 asks and as nginx does: it could not talk to us
 * anyway, and failing in the handshake says why. A client that offers no
 * ALPN never reaches this callback and is accepted. */
static int tls_alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
			   const unsigned char *in, unsigned int inlen, void *arg)
{
	const unsigned char *end = in + inlen;
	const size_t want = sizeof(TLS_ALPN_HTTP11) - 1;

	(void)ssl;
	(void)arg;
	/* OpenSSL has checked the list's framing already; bounds are
	 * checked again because this walks bytes the peer chose. */
	while (in < end) {
		size_t len = *in++;

		if (len > (size_t)(end - in))
			break;
		if (len == want && memcmp(in, TLS_ALPN_HTTP11, want) == 0) {
			*out = in;
			*outlen = (unsigned char)len;
			return SSL_TLSEXT_ERR_OK;
		}
		in += len;
	}
	return SSL_TLSEXT_ERR_ALERT_FATAL;
}

/* An encrypted key would make OpenSSL prompt on the terminal and hang
 * start-up; refusing to supply a passphrase turns it into an error. */
static int tls_no_passphrase(char *buf, int size, int rwflag, void *arg)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)arg;
	return -1;
}

static bool tls_ctx_settings(SSL_CTX *ctx)
{
	/* TLS 1.0 and 1.1 are deprecated (RFC 8996). */
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION))
		return false;
	if (!SSL_CTX_set_cipher_list(ctx, TLS_CIPHERS_TLS12))
		return false;
	/* Compression leaks secrets through lengths (CRIME). Renegotiation is
	 * nothing this server needs and a cheap way to make it burn CPU;
	 * OpenSSL 3 already refuses it from clients by default, this says so
	 * outright and does not depend on the default. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	/* No SSL_MODE_ENABLE_PARTIAL_WRITE: the output BIO is memory and never
	 * pushes back, so SSL_write either takes every byte or has failed for
	 * good, and callers never have to handle a partial write. */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	/* Session tickets carry the resumption state to the client, so the
	 * server keeps none: no cache growing with the number of clients. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_alpn_select_cb(ctx, tls_alpn_select, NULL);
	SSL_CTX_set_default_passwd_cb(ctx, tls_no_passphrase);
	return true;
}

static bool tls_ctx_load(SSL_CTX *ctx, const char *cert_file, const char *key_file)
{
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
		tls_report("cannot load the certificate chain from %s", cert_file);
		return false;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
		tls_report("cannot load the private key from %s", key_file);
		return false;
	}
	/* A key of the certificate's own type was checked against it just
	 * now; a key of another type (RSA for an EC certificate) lands in a
	 * slot of its own without complaint, and only this catches it. */
	if (SSL_CTX_check_private_key(ctx) != 1) {
		tls_report("the private key in %s does not match the certificate in %s",
			   key_file, cert_file);
		return false;
	}
	return true;
}

/* A context with the settings and the certificate, or NULL (logged). */
static SSL_CTX *tls_ctx_new(const char *cert_file, const char *key_file)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (!ctx || !tls_ctx_settings(ctx)) {
		tls_report("cannot set up a TLS server context");
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (!tls_ctx_load(ctx, cert_file, key_file)) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

struct tls_server *tls_server_new(const char *cert_file, const char *key_file)
{
	struct tls_server *srv = calloc(1, sizeof(*srv));

	if (!srv) {
		fputs("tls: out of memory\n", stderr);
		return NULL;
	}
	srv->ctx = tls_ctx_new(cert_file, key_file);
	if (!srv->ctx) {
		free(srv);
		return NULL;
	}
	pthread_mutex_init(&srv->lock, NULL);
	return srv;
}

int tls_server_reload(struct tls_server *srv, const char *cert_file, const char *key_file)
{
	SSL_CTX *ctx = tls_ctx_new(cert_file, key_file), *old;

	if (!ctx)
		return -1;
	pthread_mutex_lock(&srv->lock);
	old = srv->ctx;
	srv->ctx = ctx;
	pthread_mutex_unlock(&srv->lock);
	SSL_CTX_free(old); /* our reference; open sessions keep theirs */
	return 0;
}

void tls_server_free(struct tls_server *srv)
{
	if (!srv)
		return;
	SSL_CTX_free(srv->ctx);
	pthread_mutex_destroy(&srv->lock);
	free(srv);
}

struct tls_session *tls_session_new(struct tls_server *srv)
{
	struct tls_session *s = calloc(1, sizeof(*s));
	BIO *in = BIO_new(BIO_s_mem());
	BIO *out = BIO_new(BIO_s_mem());
	SSL *ssl;

	pthread_mutex_lock(&srv->lock);
	ssl = SSL_new(srv->ctx); /* takes a reference to the ctx */
	pthread_mutex_unlock(&srv->lock);

	if (!s || !ssl || !in || !out) {
		SSL_free(ssl);
		BIO_free(in);
		BIO_free(out);
		free(s);
		ERR_clear_error();
		return NULL;
	}
	s->ssl = ssl;
	/* An empty input BIO means "more is coming", never end of stream.
	 * -1 is the default already; the whole design rests on it. */
	BIO_set_mem_eof_return(in, -1);
	SSL_set_bio(s->ssl, in, out);
	SSL_set_accept_state(s->ssl);
	return s;
}

void tls_session_free(struct tls_session *s)
{
	if (!s)
		return;
	SSL_free(s->ssl);
	free(s->held);
	free(s);
}

static void tls_drop_held(struct tls_session *s)
{
	free(s->held);
	s->held = NULL;
	s->held_len = s->held_cap = 0;
}

/* The session is over: drop what waits and answer -1 from now on. An
 * alert OpenSSL wrote on the way out stays in the output BIO. */
static int tls_fail(struct tls_session *s)
{
	s->failed = true;
	tls_drop_held(s);
	ERR_clear_error();
	return -1;
}

/* Give a drained memory BIO's buffer back (see the top of the file). */
static void tls_bio_trim(BIO *b)
{
	BUF_MEM *bm, *empty;

	if (BIO_ctrl_pending(b) > 0 || BIO_get_mem_ptr(b, &bm) != 1 || bm->max == 0)
		return;
	empty = BUF_MEM_new();
	/* Without memory for the swap, keeping the old buffer is harmless. */
	if (empty)
		BIO_set_mem_buf(b, empty, BIO_CLOSE);
}

static int tls_encrypt(struct tls_session *s, const uint8_t *data, size_t len)
{
	size_t done;

	if (SSL_write_ex(s->ssl, data, len, &done) != 1)
		return tls_fail(s);
	return 0;
}

/* Keep plaintext until the handshake is done: encrypting it now is not
 * possible, and sending it in the clear is not an option. */
static int tls_hold(struct tls_session *s, const uint8_t *data, size_t len)
{
	if (len > s->held_cap - s->held_len) {
		size_t cap = s->held_cap ? s->held_cap : TLS_HELD_MIN;
		uint8_t *p;

		if (len > SIZE_MAX / 2 - s->held_len)
			return tls_fail(s);
		while (cap < s->held_len + len)
			cap *= 2;
		p = realloc(s->held, cap);
		if (!p)
			return tls_fail(s);
		s->held = p;
		s->held_cap = cap;
	}
	memcpy(s->held + s->held_len, data, len);
	s->held_len += len;
	return 0;
}

static int tls_handshake(struct tls_session *s)
{
	int r;

	/* SSL_get_error trusts the thread's error queue, so the queue must be
	 * empty before the call it judges; other libcrypto users (the JWT
	 * code) share that queue and may have left something in it. */
	ERR_clear_error();
	r = SSL_do_handshake(s->ssl);
	tls_bio_trim(SSL_get_rbio(s->ssl));
	if (r != 1) {
		if (SSL_get_error(s->ssl, r) == SSL_ERROR_WANT_READ)
			return 0;
		return tls_fail(s);
	}
	s->handshaken = true;
	if (s->held_len > 0) {
		r = tls_encrypt(s, s->held, s->held_len);
		tls_drop_held(s);
		return r;
	}
	return 0;
}

int tls_feed(struct tls_session *s, const uint8_t *data, size_t len)
{
	size_t put;

	if (s->failed)
		return -1;
	if (len > 0) {
		if (BIO_write_ex(SSL_get_rbio(s->ssl), data, len, &put) != 1 || put != len)
			return tls_fail(s);
	}
	/* After the handshake, records wait in the BIO until tls_read. */
	if (!s->handshaken)
		return tls_handshake(s);
	return 0;
}

ssize_t tls_read(struct tls_session *s, uint8_t *out, size_t cap)
{
	size_t got;

	if (s->failed)
		return -1;
	if (!s->handshaken || cap == 0)
		return 0;
	if (cap > SSIZE_MAX)
		cap = SSIZE_MAX;
	ERR_clear_error();
	if (SSL_read_ex(s->ssl, out, cap, &got) == 1)
		return (ssize_t)got;
	switch (SSL_get_error(s->ssl, 0)) {
	case SSL_ERROR_WANT_READ:
		tls_bio_trim(SSL_get_rbio(s->ssl));
		return 0;
	case SSL_ERROR_ZERO_RETURN:
		/* The peer's close_notify: answer with ours, then the session
		 * is over. Nothing more can arrive after it anyway. */
		SSL_shutdown(s->ssl);
		return tls_fail(s);
	default:
		return tls_fail(s);
	}
}

int tls_write(struct tls_session *s, const uint8_t *data, size_t len)
{
	if (s->failed)
		return -1;
	if (len == 0)
		return 0;
	if (!s->handshaken)
		return tls_hold(s, data, len);
	return tls_encrypt(s, data, len);
}

size_t tls_output_pending(const struct tls_session *s)
{
	return BIO_ctrl_pending(SSL_get_wbio(s->ssl));
}

size_t tls_take_output(struct tls_session *s, uint8_t *out, size_t cap)
{
	BIO *wbio = SSL_get_wbio(s->ssl);
	size_t got;

	if (BIO_read_ex(wbio, out, cap, &got) != 1)
		got = 0;
	tls_bio_trim(wbio);
	return got;
}

bool tls_handshake_done(const struct tls_session *s)
{
	return s->handshaken;
}

/* Before the handshake is done there are no keys to protect a
 * close_notify with, and nothing was said yet: the session just ends. */
void tls_shutdown(struct tls_session *s)
{
	if (s->failed)
		return;
	if (!s->handshaken || SSL_shutdown(s->ssl) < 0)
		tls_fail(s);
}

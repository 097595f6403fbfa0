/* test_tls.c: the TLS session against a real OpenSSL client, in memory.
 *
 * The setup makes a throwaway self-signed certificate with the openssl
 * command. Each case opens a server session and a client that verifies
 * that certificate and the name "localhost", then moves bytes between the
 * two: the client's records go to tls_feed, the server's come out of
 * tls_take_output. Every case runs three times, moving the bytes in 1-byte
 * pieces, 7-byte pieces and whole, each piece in a heap buffer of exactly
 * its size (so ASan sees a read past what was given), to show that the
 * session makes the same progress however the stream is cut. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "tls.h"

extern char **environ;

#define DATA_MAX (256 * 1024)
#define BIG (100 * 1024)

/* tls_read gets less room than a full record holds, so records come out
 * over several calls too. */
#define READ_CAP 1000

static size_t split_1 = 1;
static size_t split_7 = 7;
static size_t split_whole = SIZE_MAX;

static char dir[] = "/tmp/ringcast-tls-XXXXXX";
static char cert_path[PATH_MAX], key_path[PATH_MAX];
static char other_cert_path[PATH_MAX], other_key_path[PATH_MAX];
static char ed25519_key_path[PATH_MAX];
static char missing_path[PATH_MAX], stderr_path[PATH_MAX];
static struct tls_server *server;
static bool tool_missing; /* no openssl command to make certificates */

/* One server session and one client, and everything seen between them. */
struct pair {
	size_t split;
	struct tls_session *srv;
	SSL_CTX *cctx;
	SSL *cli;
	bool feed_failed;        /* some tls_feed returned -1 */
	bool read_failed;        /* some tls_read returned -1 */
	bool cli_failed;
	unsigned long cli_error; /* the first error the client queued */
	bool cli_closed;         /* the client read a close_notify */
	uint8_t srv_got[DATA_MAX];
	size_t srv_got_len;
	uint8_t cli_got[DATA_MAX];
	size_t cli_got_len;
	uint8_t wire[2 * DATA_MAX]; /* every byte the server sent */
	size_t wire_len;
};

static struct pair p;

struct client_opts {
	int min_version, max_version;
	const char *alpn;    /* wire format: length-prefixed names */
	const char *ciphers; /* TLS 1.2 suites the client offers */
};

static size_t min_size(size_t a, size_t b)
{
	return a < b ? a : b;
}

static int run_quiet(char *const argv[])
{
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int status;

	if (posix_spawn_file_actions_init(&fa) != 0)
		return -1;
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	status = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (status == ENOENT)
		tool_missing = true;
	if (status != 0 || waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static int make_cert(char *cert, char *key)
{
	char *argv[] = {
		"openssl", "req", "-x509", "-newkey", "ec",
		"-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
		"-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
		"-days", "1", "-keyout", key, "-out", cert, NULL,
	};

	return run_quiet(argv);
}

static int make_ed25519_key(char *key)
{
	char *argv[] = { "openssl", "genpkey", "-algorithm", "ed25519", "-out", key, NULL };

	return run_quiet(argv);
}

static void path_in_dir(char *out, const char *name)
{
	snprintf(out, PATH_MAX, "%s/%s", dir, name);
}

static int group_teardown(void **state)
{
	(void)state;
	tls_server_free(server);
	unlink(cert_path);
	unlink(key_path);
	unlink(other_cert_path);
	unlink(other_key_path);
	unlink(ed25519_key_path);
	unlink(stderr_path);
	return rmdir(dir);
}

static int group_setup(void **state)
{
	(void)state;
	if (!mkdtemp(dir))
		return -1;
	path_in_dir(cert_path, "cert.pem");
	path_in_dir(key_path, "key.pem");
	path_in_dir(other_cert_path, "other-cert.pem");
	path_in_dir(other_key_path, "other-key.pem");
	path_in_dir(ed25519_key_path, "ed25519-key.pem");
	path_in_dir(missing_path, "missing.pem");
	path_in_dir(stderr_path, "stderr.txt");
	if (make_cert(cert_path, key_path) != 0 ||
	    make_cert(other_cert_path, other_key_path) != 0 ||
	    make_ed25519_key(ed25519_key_path) != 0) {
		group_teardown(state);
		if (tool_missing) {
			/* 77 is meson's "skipped": a missing tool is not a
			 * failure of this module. */
			fputs("no openssl command: skipping\n", stderr);
			exit(77);
		}
		fputs("the openssl command failed to make a certificate\n", stderr);
		return -1;
	}
	server = tls_server_new(cert_path, key_path);
	if (!server) {
		group_teardown(state);
		return -1;
	}
	return 0;
}

static void client_new(const struct client_opts *o)
{
	p.cctx = SSL_CTX_new(TLS_client_method());
	assert_non_null(p.cctx);
	assert_int_equal(SSL_CTX_load_verify_locations(p.cctx, cert_path, NULL), 1);
	SSL_CTX_set_verify(p.cctx, SSL_VERIFY_PEER, NULL);
	if (o->min_version && o->min_version < TLS1_2_VERSION) {
		/* OpenSSL 3 signs TLS 1.0 and 1.1 handshakes with SHA-1 only
		 * at security level 0; without it the client would not even
		 * offer them. */
		SSL_CTX_set_security_level(p.cctx, 0);
		assert_int_equal(SSL_CTX_set_cipher_list(p.cctx, "DEFAULT:@SECLEVEL=0"), 1);
	}
	if (o->ciphers)
		assert_int_equal(SSL_CTX_set_cipher_list(p.cctx, o->ciphers), 1);
	if (o->min_version)
		assert_int_equal(SSL_CTX_set_min_proto_version(p.cctx, o->min_version), 1);
	if (o->max_version)
		assert_int_equal(SSL_CTX_set_max_proto_version(p.cctx, o->max_version), 1);
	if (o->alpn) /* returns 0 on success, unlike its neighbours */
		assert_int_equal(SSL_CTX_set_alpn_protos(p.cctx, (const unsigned char *)o->alpn,
							 strlen(o->alpn)), 0);
	p.cli = SSL_new(p.cctx);
	assert_non_null(p.cli);
	SSL_set_bio(p.cli, BIO_new(BIO_s_mem()), BIO_new(BIO_s_mem()));
	SSL_set_connect_state(p.cli);
	assert_int_equal(SSL_set_tlsext_host_name(p.cli, "localhost"), 1);
	assert_int_equal(SSL_set1_host(p.cli, "localhost"), 1);
}

static void pair_open(void **state, struct client_opts o)
{
	memset(&p, 0, sizeof(p));
	p.split = *(size_t *)*state;
	p.srv = tls_session_new(server);
	assert_non_null(p.srv);
	client_new(&o);
}

static void pair_close(void)
{
	tls_session_free(p.srv);
	SSL_free(p.cli);
	SSL_CTX_free(p.cctx);
	ERR_clear_error();
}

static void client_fail(void)
{
	if (!p.cli_failed)
		p.cli_error = ERR_peek_error();
	p.cli_failed = true;
	ERR_clear_error();
}

/* Let the client move on: its handshake, then whatever arrived. */
static void client_step(void)
{
	size_t n;
	int r;

	if (p.cli_failed || p.cli_closed)
		return;
	if (!SSL_is_init_finished(p.cli)) {
		r = SSL_do_handshake(p.cli);
		if (r != 1) {
			if (SSL_get_error(p.cli, r) != SSL_ERROR_WANT_READ)
				client_fail();
			return;
		}
	}
	for (;;) {
		assert_true(p.cli_got_len < DATA_MAX);
		if (SSL_read_ex(p.cli, p.cli_got + p.cli_got_len, DATA_MAX - p.cli_got_len, &n)) {
			p.cli_got_len += n;
			continue;
		}
		switch (SSL_get_error(p.cli, 0)) {
		case SSL_ERROR_WANT_READ:
			return;
		case SSL_ERROR_ZERO_RETURN:
			p.cli_closed = true;
			return;
		default:
			client_fail();
			return;
		}
	}
}

static void server_read(void)
{
	ssize_t n;

	do {
		assert_true(p.srv_got_len < DATA_MAX);
		n = tls_read(p.srv, p.srv_got + p.srv_got_len,
			     min_size(READ_CAP, DATA_MAX - p.srv_got_len));
		assert_true(n <= READ_CAP);
		if (n > 0)
			p.srv_got_len += (size_t)n;
	} while (n > 0);
	if (n < 0)
		p.read_failed = true;
}

/* Feed the server bytes in pieces of p.split, reading after each the way
 * the connection layer will. */
static void feed_server(const uint8_t *data, size_t len)
{
	while (len > 0) {
		size_t n = min_size(len, p.split);
		uint8_t *piece = malloc(n);

		assert_non_null(piece);
		memcpy(piece, data, n);
		if (tls_feed(p.srv, piece, n) < 0)
			p.feed_failed = true;
		free(piece);
		server_read();
		data += n;
		len -= n;
	}
}

static bool to_server(void)
{
	BIO *wire = SSL_get_wbio(p.cli);
	size_t len = BIO_ctrl_pending(wire);
	uint8_t *bytes;

	if (len == 0)
		return false;
	bytes = malloc(len);
	assert_non_null(bytes);
	assert_int_equal(BIO_read(wire, bytes, (int)len), (int)len);
	feed_server(bytes, len);
	free(bytes);
	return true;
}

static bool to_client(void)
{
	bool moved = false;
	size_t pending;

	while ((pending = tls_output_pending(p.srv)) > 0) {
		size_t n = min_size(pending, p.split);
		uint8_t *piece = malloc(n);

		assert_non_null(piece);
		assert_int_equal(tls_take_output(p.srv, piece, n), n);
		assert_int_equal(tls_output_pending(p.srv), pending - n);
		assert_true(p.wire_len + n <= sizeof(p.wire));
		memcpy(p.wire + p.wire_len, piece, n);
		p.wire_len += n;
		assert_int_equal(BIO_write(SSL_get_rbio(p.cli), piece, (int)n), (int)n);
		free(piece);
		client_step();
		moved = true;
	}
	return moved;
}

/* Move bytes both ways until neither side has anything more to say. */
static void pump(void)
{
	bool moved;

	client_step();
	do {
		moved = to_server();
		moved |= to_client();
	} while (moved);
}

static void handshake(void **state, struct client_opts o)
{
	pair_open(state, o);
	pump();
	assert_false(p.cli_failed);
	assert_false(p.feed_failed);
	assert_false(p.read_failed);
	assert_true(tls_handshake_done(p.srv));
	assert_true(SSL_is_init_finished(p.cli));
	/* The client checked the chain and the name "localhost". */
	assert_int_equal(SSL_get_verify_result(p.cli), X509_V_OK);
}

static void client_write(const void *data, size_t len)
{
	size_t n;

	assert_int_equal(SSL_write_ex(p.cli, data, len, &n), 1);
	assert_int_equal(n, len);
}

static void fill_pattern(uint8_t *buf, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(i * 31 + seed + (i >> 8));
}

static void expect_data_both_ways(void)
{
	client_write("hello server", 12);
	pump();
	assert_int_equal(p.srv_got_len, 12);
	assert_memory_equal(p.srv_got, "hello server", 12);
	assert_int_equal(tls_write(p.srv, (const uint8_t *)"hello client", 12), 0);
	pump();
	assert_int_equal(p.cli_got_len, 12);
	assert_memory_equal(p.cli_got, "hello client", 12);
}

static void test_handshake_completes_on_tls13(void **state)
{
	pair_open(state, (struct client_opts){ 0 });
	client_step();
	to_server();
	/* The ClientHello alone does not finish it: the client's Finished
	 * has not arrived yet. */
	assert_false(tls_handshake_done(p.srv));
	assert_true(tls_output_pending(p.srv) > 0);
	pump();
	assert_true(tls_handshake_done(p.srv));
	assert_false(p.cli_failed);
	assert_int_equal(SSL_version(p.cli), TLS1_3_VERSION);
	assert_int_equal(SSL_get_verify_result(p.cli), X509_V_OK);
	expect_data_both_ways();
	pair_close();
}

static void test_handshake_completes_on_tls12(void **state)
{
	handshake(state, (struct client_opts){ .max_version = TLS1_2_VERSION });
	assert_int_equal(SSL_version(p.cli), TLS1_2_VERSION);
	expect_data_both_ways();
	pair_close();
}

/* TLS 1.2 suites are limited to ECDHE with AEAD: a client offering only
 * CBC with SHA-1 finds nothing in common. */
static void test_tls12_suite_without_aead_is_refused(void **state)
{
	pair_open(state, (struct client_opts){ .max_version = TLS1_2_VERSION,
					       .ciphers = "ECDHE-ECDSA-AES128-SHA" });
	pump();
	assert_true(p.feed_failed);
	assert_true(p.cli_failed);
	assert_int_equal(ERR_GET_REASON(p.cli_error), SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE);
	pair_close();
}

static void test_tls12_suite_with_ecdhe_and_aead_is_accepted(void **state)
{
	handshake(state, (struct client_opts){ .max_version = TLS1_2_VERSION,
					       .ciphers = "ECDHE-ECDSA-CHACHA20-POLY1305" });
	assert_string_equal(SSL_get_cipher_name(p.cli), "ECDHE-ECDSA-CHACHA20-POLY1305");
	pair_close();
}

/* The client really offers version: the legacy version field of its
 * ClientHello (after a 5-byte record header and a 4-byte handshake
 * header) names it. Without this check a client that offered nothing
 * would pass for a refused one. */
static void expect_client_hello_version(int version)
{
	const uint8_t *hello;
	long len;

	client_step();
	len = BIO_get_mem_data(SSL_get_wbio(p.cli), (char **)&hello);
	assert_true(len > 11);
	assert_int_equal(hello[0], SSL3_RT_HANDSHAKE);
	assert_int_equal(hello[5], SSL3_MT_CLIENT_HELLO);
	assert_int_equal((hello[9] << 8) | hello[10], version);
}

/* A client that speaks nothing newer than version is refused with a
 * protocol_version alert, and the session stays dead. */
static void expect_version_refused(void **state, int version)
{
	uint8_t byte = 0;

	pair_open(state, (struct client_opts){ .min_version = version, .max_version = version });
	expect_client_hello_version(version);
	pump();
	assert_true(p.feed_failed);
	assert_false(tls_handshake_done(p.srv));
	assert_true(p.wire_len > 0);
	assert_true(p.cli_failed);
	assert_int_equal(ERR_GET_REASON(p.cli_error), SSL_R_TLSV1_ALERT_PROTOCOL_VERSION);
	assert_int_equal(tls_feed(p.srv, &byte, 1), -1);
	assert_int_equal(tls_read(p.srv, &byte, 1), -1);
	assert_int_equal(tls_write(p.srv, &byte, 1), -1);
	pair_close();
}

static void test_tls11_client_is_refused(void **state)
{
	expect_version_refused(state, TLS1_1_VERSION);
}

static void test_tls10_client_is_refused(void **state)
{
	expect_version_refused(state, TLS1_VERSION);
}

static void test_alpn_http11_is_chosen_when_offered(void **state)
{
	const unsigned char *proto;
	unsigned int len;

	handshake(state, (struct client_opts){ .alpn = "\x02h2\x08http/1.1" });
	SSL_get0_alpn_selected(p.cli, &proto, &len);
	assert_int_equal(len, 8);
	assert_memory_equal(proto, "http/1.1", 8);
	pair_close();
}

static void test_client_without_alpn_is_accepted(void **state)
{
	const unsigned char *proto;
	unsigned int len;

	handshake(state, (struct client_opts){ 0 });
	SSL_get0_alpn_selected(p.cli, &proto, &len);
	assert_int_equal(len, 0);
	expect_data_both_ways();
	pair_close();
}

static void expect_alpn_refused(void **state, const char *alpn)
{
	pair_open(state, (struct client_opts){ .alpn = alpn });
	pump();
	assert_true(p.feed_failed);
	assert_false(tls_handshake_done(p.srv));
	assert_true(p.cli_failed);
	assert_int_equal(ERR_GET_REASON(p.cli_error), SSL_R_TLSV1_ALERT_NO_APPLICATION_PROTOCOL);
	pair_close();
}

static void test_alpn_without_http11_is_refused(void **state)
{
	expect_alpn_refused(state, "\x02h2");
}

static void test_alpn_near_misses_are_refused(void **state)
{
	expect_alpn_refused(state, "\x07http/1.\x09http/1.10\x08HTTP/1.1");
}

static void test_100k_in_one_write_arrives_whole(void **state)
{
	static uint8_t big[BIG];

	handshake(state, (struct client_opts){ 0 });
	fill_pattern(big, sizeof(big), 1);
	assert_int_equal(tls_write(p.srv, big, sizeof(big)), 0);
	pump();
	assert_int_equal(p.cli_got_len, sizeof(big));
	assert_memory_equal(p.cli_got, big, sizeof(big));

	fill_pattern(big, sizeof(big), 2);
	client_write(big, sizeof(big));
	pump();
	assert_int_equal(p.srv_got_len, sizeof(big));
	assert_memory_equal(p.srv_got, big, sizeof(big));
	pair_close();
}

static void test_many_small_writes_arrive_in_order(void **state)
{
	static uint8_t sent[DATA_MAX];
	size_t sent_len = 0;

	handshake(state, (struct client_opts){ 0 });
	for (unsigned i = 0; i < 1000; i++) {
		size_t n = 1 + i % 40;

		fill_pattern(sent + sent_len, n, i);
		assert_int_equal(tls_write(p.srv, sent + sent_len, n), 0);
		sent_len += n;
		/* Take output now and then, not after every write. */
		if (i % 7 == 0)
			pump();
	}
	pump();
	assert_int_equal(p.cli_got_len, sent_len);
	assert_memory_equal(p.cli_got, sent, sent_len);
	pair_close();
}

static void test_write_before_handshake_arrives_after_it(void **state)
{
	static const char first[] = "written before any byte arrived";
	static uint8_t second[20000];
	static const char third[] = "written mid-handshake";
	size_t len = 0;

	pair_open(state, (struct client_opts){ 0 });
	assert_int_equal(tls_write(p.srv, (const uint8_t *)first, strlen(first)), 0);
	fill_pattern(second, sizeof(second), 3);
	assert_int_equal(tls_write(p.srv, second, sizeof(second)), 0);
	/* Nothing can be encrypted yet, and nothing goes out in the clear. */
	assert_int_equal(tls_output_pending(p.srv), 0);
	client_step();
	to_server();
	assert_false(tls_handshake_done(p.srv));
	assert_int_equal(tls_write(p.srv, (const uint8_t *)third, strlen(third)), 0);
	pump();
	assert_true(tls_handshake_done(p.srv));
	assert_false(p.cli_failed);

	assert_int_equal(p.cli_got_len, strlen(first) + sizeof(second) + strlen(third));
	assert_memory_equal(p.cli_got, first, strlen(first));
	len += strlen(first);
	assert_memory_equal(p.cli_got + len, second, sizeof(second));
	len += sizeof(second);
	assert_memory_equal(p.cli_got + len, third, strlen(third));
	assert_null(memmem(p.wire, p.wire_len, first, strlen(first)));
	assert_null(memmem(p.wire, p.wire_len, third, strlen(third)));
	pair_close();
}

/* Garbage fed to a fresh session fails it, and it stays failed. */
static void expect_garbage_refused(const void *bytes, size_t len)
{
	uint8_t byte = 0;

	feed_server(bytes, len);
	assert_true(p.feed_failed);
	assert_false(tls_handshake_done(p.srv));
	assert_int_equal(tls_feed(p.srv, &byte, 1), -1);
	assert_int_equal(tls_read(p.srv, &byte, 1), -1);
	assert_int_equal(tls_write(p.srv, &byte, 1), -1);
}

static void test_plain_http_is_refused(void **state)
{
	static const char req[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";

	pair_open(state, (struct client_opts){ 0 });
	expect_garbage_refused(req, strlen(req));
	pair_close();
}

static void test_record_longer_than_tls_allows_is_refused(void **state)
{
	/* A handshake record announcing 65535 bytes: refused on its header,
	 * before a single byte of the body has to be buffered, with a
	 * record_overflow alert. */
	static const uint8_t head[] = { 0x16, 0x03, 0x01, 0xff, 0xff };
	uint8_t alert[7];

	pair_open(state, (struct client_opts){ 0 });
	expect_garbage_refused(head, sizeof(head));
	assert_int_equal(tls_take_output(p.srv, alert, sizeof(alert)), sizeof(alert));
	assert_int_equal(alert[0], SSL3_RT_ALERT);
	assert_int_equal(alert[5], SSL3_AL_FATAL);
	assert_int_equal(alert[6], SSL_AD_RECORD_OVERFLOW);
	assert_int_equal(tls_output_pending(p.srv), 0);
	pair_close();
}

static void test_corrupt_record_after_handshake_fails_read(void **state)
{
	BIO *wire;
	uint8_t rec[64];
	int len;

	handshake(state, (struct client_opts){ 0 });
	client_write("tampered", 8);
	wire = SSL_get_wbio(p.cli);
	len = BIO_read(wire, rec, sizeof(rec));
	assert_true(len > 8);
	rec[len - 1] ^= 0x01;
	feed_server(rec, (size_t)len);
	/* tls_feed only stores records once the handshake is done; the read
	 * finds the bad tag and sends a bad_record_mac alert. */
	assert_false(p.feed_failed);
	assert_true(p.read_failed);
	assert_int_equal(p.srv_got_len, 0);
	assert_true(tls_output_pending(p.srv) > 0);
	pump();
	assert_true(p.cli_failed);
	assert_int_equal(ERR_GET_REASON(p.cli_error), SSL_R_SSLV3_ALERT_BAD_RECORD_MAC);
	pair_close();
}

/* A KeyUpdate is a record with no application bytes: tls_read must go
 * past it, and the server's answering KeyUpdate (OpenSSL sends it ahead
 * of the next data) must not upset the client. */
static void test_data_flows_after_client_key_update(void **state)
{
	handshake(state, (struct client_opts){ 0 });
	assert_int_equal(SSL_key_update(p.cli, SSL_KEY_UPDATE_REQUESTED), 1);
	expect_data_both_ways();
	assert_false(p.cli_failed);
	assert_false(p.read_failed);
	pair_close();
}

/* A renegotiating ClientHello gets a no_renegotiation alert. OpenSSL's
 * client then gives up with a fatal alert of its own, which ends the
 * session. */
static void test_renegotiation_is_refused(void **state)
{
	handshake(state, (struct client_opts){ .max_version = TLS1_2_VERSION });
	assert_int_equal(SSL_renegotiate(p.cli), 1);
	pump();
	assert_true(p.cli_failed);
	assert_int_equal(ERR_GET_REASON(p.cli_error), SSL_R_NO_RENEGOTIATION);
	assert_true(p.read_failed);
	pair_close();
}

static void test_shutdown_sends_close_notify(void **state)
{
	handshake(state, (struct client_opts){ 0 });
	assert_int_equal(tls_write(p.srv, (const uint8_t *)"bye", 3), 0);
	tls_shutdown(p.srv);
	pump();
	assert_int_equal(p.cli_got_len, 3);
	assert_true(p.cli_closed);
	assert_int_equal(SSL_get_error(p.cli, 0), SSL_ERROR_ZERO_RETURN);
	/* Nothing can follow a close_notify. */
	assert_int_equal(tls_write(p.srv, (const uint8_t *)"more", 4), -1);
	pair_close();
}

static void test_peer_close_notify_ends_session_and_is_answered(void **state)
{
	handshake(state, (struct client_opts){ 0 });
	client_write("last words", 10);
	assert_int_equal(SSL_shutdown(p.cli), 0);
	pump();
	assert_int_equal(p.srv_got_len, 10);
	assert_true(p.read_failed);
	assert_true(p.cli_closed);
	pair_close();
}

static void test_shutdown_during_handshake_ends_session(void **state)
{
	uint8_t byte = 0;

	pair_open(state, (struct client_opts){ 0 });
	assert_int_equal(tls_write(p.srv, (const uint8_t *)"never sent", 10), 0);
	client_step();
	to_server();
	tls_shutdown(p.srv);
	assert_int_equal(tls_feed(p.srv, &byte, 1), -1);
	assert_int_equal(tls_write(p.srv, &byte, 1), -1);
	pair_close();
}

/* tls_server_new with stderr captured: returns what it printed. */
static struct tls_server *server_new_quiet(const char *cert, const char *key,
					   char *msg, size_t cap)
{
	struct tls_server *srv;
	int saved = dup(2);
	int fd = open(stderr_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ssize_t n;

	assert_true(saved >= 0 && fd >= 0);
	fflush(stderr);
	assert_int_equal(dup2(fd, 2), 2);
	srv = tls_server_new(cert, key);
	fflush(stderr);
	assert_int_equal(dup2(saved, 2), 2);
	close(saved);
	n = pread(fd, msg, cap - 1, 0);
	close(fd);
	msg[n > 0 ? n : 0] = '\0';
	return srv;
}

static void expect_server_refused(const char *cert, const char *key, const char *named)
{
	char msg[4096];

	assert_null(server_new_quiet(cert, key, msg, sizeof(msg)));
	assert_non_null(strstr(msg, "tls: "));
	assert_non_null(strstr(msg, named));
}

static void test_server_new_refuses_missing_certificate(void **state)
{
	(void)state;
	expect_server_refused(missing_path, key_path, missing_path);
}

static void test_server_new_refuses_missing_key(void **state)
{
	(void)state;
	expect_server_refused(cert_path, missing_path, missing_path);
}

static void test_server_new_refuses_key_of_another_certificate(void **state)
{
	(void)state;
	expect_server_refused(cert_path, other_key_path, other_key_path);
}

static void test_server_new_refuses_key_of_another_type(void **state)
{
	(void)state;
	expect_server_refused(cert_path, ed25519_key_path, ed25519_key_path);
}

static void test_server_new_refuses_key_as_certificate(void **state)
{
	(void)state;
	expect_server_refused(key_path, key_path, key_path);
}

static void test_server_new_accepts_matching_pair_quietly(void **state)
{
	char msg[4096];
	struct tls_server *srv;

	(void)state;
	srv = server_new_quiet(other_cert_path, other_key_path, msg, sizeof(msg));
	assert_non_null(srv);
	assert_string_equal(msg, "");
	tls_server_free(srv);
}

/* Each case three times: bytes moved in 1-byte pieces, 7-byte pieces and
 * whole. */
#define SPLIT_TEST(f)                                        \
	{ #f " (1-byte pieces)", f, NULL, NULL, &split_1 }, \
	{ #f " (7-byte pieces)", f, NULL, NULL, &split_7 }, \
	{ #f " (whole)", f, NULL, NULL, &split_whole }

int main(void)
{
	const struct CMUnitTest tests[] = {
		SPLIT_TEST(test_handshake_completes_on_tls13),
		SPLIT_TEST(test_handshake_completes_on_tls12),
		SPLIT_TEST(test_tls12_suite_with_ecdhe_and_aead_is_accepted),
		SPLIT_TEST(test_tls12_suite_without_aead_is_refused),
		SPLIT_TEST(test_tls11_client_is_refused),
		SPLIT_TEST(test_tls10_client_is_refused),
		SPLIT_TEST(test_alpn_http11_is_chosen_when_offered),
		SPLIT_TEST(test_client_without_alpn_is_accepted),
		SPLIT_TEST(test_alpn_without_http11_is_refused),
		SPLIT_TEST(test_alpn_near_misses_are_refused),
		SPLIT_TEST(test_100k_in_one_write_arrives_whole),
		SPLIT_TEST(test_many_small_writes_arrive_in_order),
		SPLIT_TEST(test_write_before_handshake_arrives_after_it),
		SPLIT_TEST(test_plain_http_is_refused),
		SPLIT_TEST(test_record_longer_than_tls_allows_is_refused),
		SPLIT_TEST(test_corrupt_record_after_handshake_fails_read),
		SPLIT_TEST(test_data_flows_after_client_key_update),
		SPLIT_TEST(test_renegotiation_is_refused),
		SPLIT_TEST(test_shutdown_sends_close_notify),
		SPLIT_TEST(test_peer_close_notify_ends_session_and_is_answered),
		SPLIT_TEST(test_shutdown_during_handshake_ends_session),
		cmocka_unit_test(test_server_new_refuses_missing_certificate),
		cmocka_unit_test(test_server_new_refuses_missing_key),
		cmocka_unit_test(test_server_new_refuses_key_of_another_certificate),
		cmocka_unit_test(test_server_new_refuses_key_of_another_type),
		cmocka_unit_test(test_server_new_refuses_key_as_certificate),
		cmocka_unit_test(test_server_new_accepts_matching_pair_quietly),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

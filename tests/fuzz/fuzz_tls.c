/* fuzz_tls.c: libFuzzer harness for the server side of a TLS session.
 *
 * Arbitrary bytes go to a fresh session through tls_feed, in pieces, with
 * tls_read, tls_write and tls_take_output called between them the way the
 * connection layer calls them. Besides "no crash, no sanitizer report, no
 * leak" it checks what the connection layer relies on: counts never exceed
 * the room given, taking output lowers the pending count by exactly what
 * was taken, and a session that failed stays failed.
 *
 * The first input byte chooses how the rest is used. Its low six bits are
 * the piece size (0: whole). With its top bit set, the rest is XORed over
 * a real ClientHello (OpenSSL 3.0's client: TLS 1.3, SNI "localhost",
 * ALPN h2 and http/1.1), so an input of zeros is a valid hello and the
 * fuzzer starts deep in the handshake code instead of at the record
 * header. The certificate is made once, at start-up, in a temporary
 * directory that is removed as soon as the server has loaded it. */
#include <fcntl.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tls.h"

extern char **environ;

#define CHECK(cond)                                                                 \
	do {                                                                        \
		if (!(cond)) {                                                      \
			fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, \
				__LINE__, #cond);                                   \
			abort();                                                    \
		}                                                                   \
	} while (0)

#define OVERLAY_HELLO 0x80
#define PIECE_MASK 0x3f
#define INPUT_MAX 65536
#define READ_CAP 1000
#define OUT_CAP 777

static const uint8_t client_hello[] = {
	0x16, 0x03, 0x01, 0x01, 0x48, 0x01, 0x00, 0x01, 0x44, 0x03, 0x03, 0x32,
	0xb0, 0xd3, 0xdd, 0xc5, 0xd0, 0xec, 0x8f, 0xc3, 0x27, 0xa7, 0x50, 0x6b,
	0x0b, 0x70, 0xe5, 0x5b, 0xf0, 0xc2, 0x2b, 0xe4, 0x23, 0x84, 0x28, 0x62,
	0x26, 0x92, 0x0c, 0x19, 0x78, 0xae, 0xc7, 0x20, 0xdb, 0x73, 0x7a, 0x6b,
	0x44, 0x47, 0x08, 0x3b, 0x5e, 0x7d, 0xbf, 0xe2, 0xcd, 0x6e, 0x13, 0xdf,
	0xad, 0xce, 0x95, 0x60, 0x7e, 0x6c, 0x0a, 0x88, 0x04, 0xb5, 0xa3, 0x3a,
	0xeb, 0xe3, 0x3d, 0xf9, 0x00, 0x3e, 0x13, 0x02, 0x13, 0x03, 0x13, 0x01,
	0xc0, 0x2c, 0xc0, 0x30, 0x00, 0x9f, 0xcc, 0xa9, 0xcc, 0xa8, 0xcc, 0xaa,
	0xc0, 0x2b, 0xc0, 0x2f, 0x00, 0x9e, 0xc0, 0x24, 0xc0, 0x28, 0x00, 0x6b,
	0xc0, 0x23, 0xc0, 0x27, 0x00, 0x67, 0xc0, 0x0a, 0xc0, 0x14, 0x00, 0x39,
	0xc0, 0x09, 0xc0, 0x13, 0x00, 0x33, 0x00, 0x9d, 0x00, 0x9c, 0x00, 0x3d,
	0x00, 0x3c, 0x00, 0x35, 0x00, 0x2f, 0x00, 0xff, 0x01, 0x00, 0x00, 0xbd,
	0x00, 0x00, 0x00, 0x0e, 0x00, 0x0c, 0x00, 0x00, 0x09, 0x6c, 0x6f, 0x63,
	0x61, 0x6c, 0x68, 0x6f, 0x73, 0x74, 0x00, 0x0b, 0x00, 0x04, 0x03, 0x00,
	0x01, 0x02, 0x00, 0x0a, 0x00, 0x16, 0x00, 0x14, 0x00, 0x1d, 0x00, 0x17,
	0x00, 0x1e, 0x00, 0x19, 0x00, 0x18, 0x01, 0x00, 0x01, 0x01, 0x01, 0x02,
	0x01, 0x03, 0x01, 0x04, 0x00, 0x23, 0x00, 0x00, 0x00, 0x10, 0x00, 0x0e,
	0x00, 0x0c, 0x02, 0x68, 0x32, 0x08, 0x68, 0x74, 0x74, 0x70, 0x2f, 0x31,
	0x2e, 0x31, 0x00, 0x16, 0x00, 0x00, 0x00, 0x17, 0x00, 0x00, 0x00, 0x0d,
	0x00, 0x2a, 0x00, 0x28, 0x04, 0x03, 0x05, 0x03, 0x06, 0x03, 0x08, 0x07,
	0x08, 0x08, 0x08, 0x09, 0x08, 0x0a, 0x08, 0x0b, 0x08, 0x04, 0x08, 0x05,
	0x08, 0x06, 0x04, 0x01, 0x05, 0x01, 0x06, 0x01, 0x03, 0x03, 0x03, 0x01,
	0x03, 0x02, 0x04, 0x02, 0x05, 0x02, 0x06, 0x02, 0x00, 0x2b, 0x00, 0x09,
	0x08, 0x03, 0x04, 0x03, 0x03, 0x03, 0x02, 0x03, 0x01, 0x00, 0x2d, 0x00,
	0x02, 0x01, 0x01, 0x00, 0x33, 0x00, 0x26, 0x00, 0x24, 0x00, 0x1d, 0x00,
	0x20, 0x14, 0x13, 0xd6, 0xd6, 0x1d, 0xb3, 0x29, 0xe8, 0x93, 0x8e, 0x42,
	0x08, 0x7a, 0x6e, 0xe3, 0x23, 0x0b, 0xf8, 0x3f, 0xef, 0x5a, 0xe0, 0x56,
	0xd6, 0x19, 0x27, 0x36, 0x08, 0x3a, 0xcc, 0x1a, 0x22,
};

static struct tls_server *server;

static int make_cert(char *cert, char *key)
{
	char *argv[] = {
		"openssl", "req", "-x509", "-newkey", "ec",
		"-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
		"-subj", "/CN=localhost", "-days", "1",
		"-keyout", key, "-out", cert, NULL,
	};
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int status;

	if (posix_spawn_file_actions_init(&fa) != 0)
		return -1;
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	status = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (status != 0 || waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char dir[] = "/tmp/ringcast-fuzz-tls-XXXXXX";
	char cert[PATH_MAX], key[PATH_MAX];

	(void)argc;
	(void)argv;
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		abort();
	}
	snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
	snprintf(key, sizeof(key), "%s/key.pem", dir);
	if (make_cert(cert, key) == 0)
		server = tls_server_new(cert, key);
	unlink(cert);
	unlink(key);
	rmdir(dir);
	if (!server) {
		fputs("fuzz_tls: cannot make a certificate with the openssl command\n", stderr);
		abort();
	}
	return 0;
}

/* Drain the output in small bites, checking the count each time. */
static void take_all(struct tls_session *s)
{
	uint8_t out[OUT_CAP];
	size_t pending, n;

	while ((pending = tls_output_pending(s)) > 0) {
		n = tls_take_output(s, out, sizeof(out));
		CHECK(n > 0 && n <= sizeof(out) && n <= pending);
		CHECK(tls_output_pending(s) == pending - n);
	}
}

/* Read until nothing is ready; false once the session is over. */
static bool read_all(struct tls_session *s)
{
	uint8_t out[READ_CAP];
	ssize_t n;

	while ((n = tls_read(s, out, sizeof(out))) > 0)
		CHECK(n <= (ssize_t)sizeof(out));
	return n == 0;
}

static void feed_pieces(struct tls_session *s, const uint8_t *in, size_t len, size_t piece)
{
	bool over = false, done = false;

	while (len > 0) {
		size_t n = piece && piece < len ? piece : len;
		int r = tls_feed(s, in, n);

		CHECK(r == 0 || r == -1);
		CHECK(!over || r == -1);
		if (r < 0 || !read_all(s))
			over = true;
		CHECK(!done || tls_handshake_done(s));
		done = tls_handshake_done(s);
		/* Mid-handshake this is held inside the session. */
		CHECK(tls_write(s, (const uint8_t *)"x", 1) == (over ? -1 : 0));
		take_all(s);
		in += n;
		len -= n;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t in[INPUT_MAX];
	struct tls_session *s;
	size_t len, piece;

	if (size == 0 || size - 1 > INPUT_MAX)
		return 0;
	piece = data[0] & PIECE_MASK;
	len = size - 1;
	memcpy(in, data + 1, len);
	if (data[0] & OVERLAY_HELLO) {
		for (size_t i = 0; i < sizeof(client_hello); i++)
			in[i] = i < len ? in[i] ^ client_hello[i] : client_hello[i];
		if (len < sizeof(client_hello))
			len = sizeof(client_hello);
	}
	s = tls_session_new(server);
	CHECK(s != NULL);
	feed_pieces(s, in, len, piece);
	tls_shutdown(s);
	take_all(s);
	tls_session_free(s);
	return 0;
}

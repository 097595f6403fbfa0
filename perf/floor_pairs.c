/* floor_pairs.c: N loopback TCP connections and the process that drains them.
 *
 * The reader is forked before any socket exists, so each process holds only
 * its own N ends. It listens on 127.0.0.1, accepts, then reads everything
 * with epoll, pinned to the other core, until told to stop. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "floor.h"
#include "perf_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* Connect in chunks no larger than the accept backlog, and wait for the
 * reader to catch up between them: an overflowing backlog drops SYNs, and
 * a dropped SYN costs a one-second retransmit. */
#define CHUNK 1024

static int read_full(int fd, void *buf, size_t len, int timeout_ms)
{
	char *p = buf;

	while (len) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&pfd, 1, timeout_ms) <= 0)
			return -ETIMEDOUT;
		n = read(fd, p, len);
		if (n <= 0)
			return n < 0 ? -errno : -EPIPE;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int write_full(int fd, const void *buf, size_t len)
{
	return write(fd, buf, len) == (ssize_t)len ? 0 : -EPIPE;
}

/* Drain until the target is reached; idle waits are cheap (epoll sleeps). */
static void reader_drain(int ep, int ctl, uint64_t *bytes, uint64_t *target, bool *quit)
{
	static char buf[1 << 16];
	struct epoll_event evs[512];
	int n = epoll_wait(ep, evs, 512, 100);

	for (int i = 0; i < n; i++) {
		int fd = evs[i].data.fd;

		if (fd == ctl) {
			ssize_t r = read(ctl, target, sizeof(*target));

			if (r != sizeof(*target))
				*quit = true;
			continue;
		}
		for (;;) {
			ssize_t r = read(fd, buf, sizeof(buf));

			if (r <= 0)
				break;
			*bytes += (uint64_t)r;
			if (r < (ssize_t)sizeof(buf))
				break;
		}
	}
}

static void reader_main(const struct floor_cfg *c, int ctl, int back)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);
	struct epoll_event ev;
	uint64_t bytes = 0, target = 0, deadline = 0;
	int lfd, ep, one = 1;
	bool quit = false;
	uint32_t got = 0;
	uint16_t port;

	pin_cpu(c->reader_cpu);
	raise_fd_limit();
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(lfd, 4096) < 0 || getsockname(lfd, (struct sockaddr *)&sa, &sl) < 0)
		_exit(1);
	port = ntohs(sa.sin_port);
	write_full(back, &port, sizeof(port));

	ep = epoll_create1(EPOLL_CLOEXEC);
	ev.events = EPOLLIN;
	ev.data.fd = ctl;
	epoll_ctl(ep, EPOLL_CTL_ADD, ctl, &ev);
	while (got < c->conns) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0)
			_exit(1);
		socket_nodelay(fd);
		ev.events = EPOLLIN;
		ev.data.fd = fd;
		epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
		got++;
		if (got % CHUNK == 0 || got == c->conns)
			write_full(back, &got, sizeof(got));
	}
	close(lfd);

	while (!quit) {
		uint64_t old = target;

		reader_drain(ep, ctl, &bytes, &target, &quit);
		if (target != old)
			deadline = now_ns() + 10 * NSEC_PER_SEC;
		if (target && (bytes >= target || now_ns() > deadline)) {
			struct floor_reader_report rep = {
				.bytes = bytes,
				.cpu_ns = rusage_cpu_ns(RUSAGE_SELF),
			};

			write_full(back, &rep, sizeof(rep));
			target = 0;
		}
	}
	_exit(0);
}

int floor_pairs_open(struct floor_pairs *fp, const struct floor_cfg *c)
{
	struct sockaddr_in dst = { .sin_family = AF_INET };
	int to_reader[2], from_reader[2];
	uint16_t port;
	uint32_t acked = 0;
	int ret;

	memset(fp, 0, sizeof(*fp));
	fp->fds = calloc(c->conns, sizeof(int));
	if (!fp->fds || pipe2(to_reader, O_CLOEXEC) || pipe2(from_reader, O_CLOEXEC))
		return -ENOMEM;
	fp->reader = fork();
	if (fp->reader < 0)
		return -errno;
	if (!fp->reader) {
		close(to_reader[1]);
		close(from_reader[0]);
		/* Never outlive the sender, whatever happens to it. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		reader_main(c, to_reader[0], from_reader[1]);
	}
	close(to_reader[0]);
	close(from_reader[1]);
	fp->ctl = to_reader[1];
	fp->back = from_reader[0];

	ret = read_full(fp->back, &port, sizeof(port), 5000);
	if (ret)
		return ret;
	dst.sin_port = htons(port);
	dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (uint32_t i = 0; i < c->conns; i++) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (fd < 0)
			return -errno;
		fp->fds[fp->n++] = fd;
		socket_nodelay(fd);
		ret = socket_bind_source(fd, source_addr(i, c->src_addrs));
		if (ret)
			return ret;
		if (connect(fd, (struct sockaddr *)&dst, sizeof(dst)) < 0)
			return -errno;
		while (acked + CHUNK <= i + 1 || (i + 1 == c->conns && acked < c->conns)) {
			ret = read_full(fp->back, &acked, sizeof(acked), 10000);
			if (ret)
				return ret;
		}
	}
	return 0;
}

int floor_pairs_sync(struct floor_pairs *fp, uint64_t total, struct floor_reader_report *rep)
{
	int ret = write_full(fp->ctl, &total, sizeof(total));

	if (ret)
		return ret;
	return read_full(fp->back, rep, sizeof(*rep), 20000);
}

void floor_pairs_close(struct floor_pairs *fp)
{
	for (uint32_t i = 0; i < fp->n; i++)
		close(fp->fds[i]);
	free(fp->fds);
	fp->fds = NULL;
	if (fp->reader > 0) {
		close(fp->ctl);
		for (int i = 0; i < 50 && waitpid(fp->reader, NULL, WNOHANG) == 0; i++)
			usleep(100000);
		if (waitpid(fp->reader, NULL, WNOHANG) == 0) {
			kill(fp->reader, SIGKILL);
			waitpid(fp->reader, NULL, 0);
		}
		close(fp->back);
		fp->reader = 0;
	}
}

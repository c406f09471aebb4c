/* SPDX-License-Identifier: MIT */
/*
 * sm_relay_wire.c - framing of the XenAPI callback relay (see sm_relay.h), shared by ReplunSR
 * and replun-xapi-relay. Plain malloc: the relay does not link libreplun.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "sm_relay.h"

int64_t sm_relay_now_ms(void)
{
	struct timespec t;

	(void)clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Waits for @events on @fd until @deadline. 0, or -1 with errno. */
static int wire_wait(int fd, short events, int64_t deadline)
{
	struct pollfd p = { .fd = fd, .events = events };

	for (;;) {
		int64_t left = deadline - sm_relay_now_ms();
		int rc;

		if (left < 0)
			left = 0;
		rc = poll(&p, 1, left > 1000000 ? 1000000 : (int)left);
		if (rc > 0)
			return 0;
		if (rc == 0 && left == 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		if (rc < 0 && errno != EINTR)
			return -1;
	}
}

/* Writes all of @iov (modified) in as few sendmsg calls as the socket allows: a frame goes out
 * in one piece, so the reader wakes once, not once per field. */
static int wire_writev(int fd, struct iovec *iov, int n, int64_t deadline)
{
	while (n > 0) {
		struct msghdr m = { .msg_iov = iov, .msg_iovlen = (size_t)n };
		ssize_t w = sendmsg(fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (wire_wait(fd, POLLOUT, deadline) < 0)
				return -1;
			continue;
		}
		if (w < 0)
			return -1;
		while (n > 0 && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (char *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

static int wire_read(int fd, void *buf, size_t len, int64_t deadline)
{
	char *p = buf;

	while (len) {
		ssize_t n = recv(fd, p, len, MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (wire_wait(fd, POLLIN, deadline) < 0)
				return -1;
			continue;
		}
		if (n < 0)
			return -1;
		if (n == 0) {
			errno = ECONNRESET;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int sm_relay_send(int fd, uint32_t type, uint32_t status, unsigned n, const char *const *f,
                  const size_t *len, int64_t deadline)
{
	uint32_t hdr[4], lens[SM_RELAY_FIELDS];
	struct iovec iov[1 + 2 * SM_RELAY_FIELDS];
	unsigned i;

	if (n > SM_RELAY_FIELDS) {
		errno = EINVAL;
		return -1;
	}
	hdr[0] = SM_RELAY_MAGIC;
	hdr[1] = type;
	hdr[2] = status;
	hdr[3] = n;
	iov[0].iov_base = hdr;
	iov[0].iov_len = sizeof(hdr);
	for (i = 0; i < n; i++) {
		if (len[i] > SM_RELAY_FIELD_MAX) {
			errno = EMSGSIZE;
			return -1;
		}
		lens[i] = (uint32_t)len[i];
		iov[1 + 2 * i].iov_base = &lens[i];
		iov[1 + 2 * i].iov_len = sizeof(lens[i]);
		iov[2 + 2 * i].iov_base = (void *)f[i];
		iov[2 + 2 * i].iov_len = len[i];
	}
	return wire_writev(fd, iov, (int)(1 + 2 * n), deadline);
}

void sm_relay_frame_dispose(struct sm_relay_frame *fr)
{
	unsigned i;

	for (i = 0; i < SM_RELAY_FIELDS; i++) {
		free(fr->f[i]);
		fr->f[i] = NULL;
		fr->len[i] = 0;
	}
	fr->n = 0;
}

int sm_relay_recv(int fd, struct sm_relay_frame *fr, int64_t deadline)
{
	uint32_t hdr[4];
	unsigned i;

	memset(fr, 0, sizeof(*fr));
	if (wire_read(fd, hdr, sizeof(hdr), deadline) < 0)
		return -1;
	if (hdr[0] != SM_RELAY_MAGIC || hdr[3] > SM_RELAY_FIELDS) {
		errno = EPROTO;
		return -1;
	}
	fr->type = hdr[1];
	fr->status = hdr[2];
	for (i = 0; i < hdr[3]; i++) {
		uint32_t l;

		if (wire_read(fd, &l, sizeof(l), deadline) < 0)
			goto fail;
		if (l > SM_RELAY_FIELD_MAX) {
			errno = EPROTO;
			goto fail;
		}
		fr->f[i] = malloc((size_t)l + 1);
		if (!fr->f[i]) {
			errno = ENOMEM;
			goto fail;
		}
		fr->n = i + 1;
		fr->len[i] = l;
		if (wire_read(fd, fr->f[i], l, deadline) < 0)
			goto fail;
		fr->f[i][l] = '\0';
	}
	return 0;
fail:
	i = (unsigned)errno;
	sm_relay_frame_dispose(fr);
	errno = (int)i;
	return -1;
}

void sm_relay_identity(char *out, size_t len, const struct stat *st)
{
	(void)snprintf(out, len,
	               "replun-xapi-relay proto %d version %s file %llu:%llu:%lld:%lld.%09ld",
	               SM_RELAY_PROTO, REPLUN_SM_VERSION, (unsigned long long)st->st_dev,
	               (unsigned long long)st->st_ino, (long long)st->st_size,
	               (long long)st->st_mtim.tv_sec, (long)st->st_mtim.tv_nsec);
}

int sm_relay_dir(char *out, size_t len)
{
	const char *d = getenv("REPLUN_RUN_DIR");
	int n = snprintf(out, len, "%s/" SM_RELAY_SUBDIR, d && *d ? d : "/run/replun/sm");

	return n < 0 || (size_t)n >= len ? -1 : 0;
}

int sm_relay_dir_check(const char *dir, char *why, size_t len)
{
	struct stat st;

	if (lstat(dir, &st) < 0) {
		(void)snprintf(why, len, "%s: %s", dir, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		(void)snprintf(why, len, "%s is not a directory", dir);
		return -1;
	}
	if (st.st_uid != geteuid() || (st.st_mode & 077)) {
		(void)snprintf(why, len,
		               "%s has owner %u and mode %03o (want %u and no group/other "
		               "access)",
		               dir, (unsigned)st.st_uid, (unsigned)(st.st_mode & 0777),
		               (unsigned)geteuid());
		return -1;
	}
	return 0;
}

size_t sm_http_body_write(char *data, size_t size, size_t nmemb, void *body)
{
	struct sm_http_body *b = body;
	size_t n = size * nmemb;
	char *np;

	if (b->len + n > SM_RELAY_FIELD_MAX) {
		b->toobig = true;
		return 0;
	}
	np = realloc(b->p, b->len + n + 1);
	if (!np)
		return 0;
	b->p = np;
	memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = '\0';
	return n;
}

bool sm_http_header_safe(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20)
			return false;
	return true;
}

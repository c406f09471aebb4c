/* SPDX-License-Identifier: MIT */
/*
 * fence.c - write fences (replun/fence.h): registration of a LUN's writers (the records, one
 * per (LUN, writer), are kept by fence_record.c), and pause / resume of every writer of a group
 * around its snapshots, bounded by a watchdog process. Record format, stale rules and locking:
 * docs/internals/fence.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fence.h"
#include "fence_record.h"
#include "replun/fence.h"

extern char **environ;

#define FENCE_TAP_ARGS 8
#define FENCE_WHAT_MAX (RP_ID_MAX + RP_FENCE_WRITER_MAX + 32)

/* One paused writer. */
struct fence_ent {
	char what[FENCE_WHAT_MAX]; /* "device 'x'" or "device 'x' (writer 'w')", for messages */
	int kind;
	int fd;       /* RP_FENCE_PAUSE: the control connection */
	bool paused;  /* 'P' seen / tap-ctl pause succeeded */
	char pid[24]; /* RP_FENCE_TAPDISK: argv strings, ready before the fork */
	char minor[24];
	char *unpause[FENCE_TAP_ARGS];
};

struct fence_hold {
	struct fence_ent *e;
	size_t n, cap;
	int sv;         /* engine end of the socketpair to the watchdog */
	pid_t watchdog; /* 0: none */
	char tapctl[PATH_MAX];
	long timeout_ms;
	int64_t paused_ms;
};

static long fence_env_long(const char *name, long dflt)
{
	const char *s = getenv(name);
	char *end = NULL;
	long v;

	if (!s || !*s)
		return dflt;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v < 1 || v > 3600000)
		return dflt;
	return v;
}

static int64_t fence_mono_ms(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void fence_sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	(void)nanosleep(&ts, NULL);
}

int rp_fence_register_writer(struct rp_array *a, const char *id, const char *writer,
                             const struct rp_fence *f, struct rp_error *err)
{
	if (!a || !id)
		return rp_error_set(err, RP_EINVAL, "invalid argument");
	return fence_rec_register(a, id, writer, f, err);
}

int rp_fence_register(struct rp_array *a, const char *id, const struct rp_fence *f,
                      struct rp_error *err)
{
	char writer[RP_FENCE_WRITER_MAX];
	int rc = fence_rec_own_writer(writer, f, err);

	if (rc < 0)
		return rc;
	return rp_fence_register_writer(a, id, writer, f, err);
}

int rp_fence_unregister_writer(struct rp_array *a, const char *id, const char *writer,
                               struct rp_error *err)
{
	if (!a || !id)
		return rp_error_set(err, RP_EINVAL, "invalid argument");
	return fence_rec_unregister(a, id, writer, err);
}

int rp_fence_unregister(struct rp_array *a, const char *id, struct rp_error *err)
{
	if (!a || !id)
		return rp_error_set(err, RP_EINVAL, "invalid argument");
	return fence_rec_unregister_all(a, id, err);
}

/*
 * True when the snapshots of @devs are quick enough to take with their writers paused: O(1)
 * clones (reflink), or copies of at most $REPLUN_FENCE_COPY_MAX_MB (default FENCE_COPY_MAX_MB)
 * in all. Otherwise @why (may be NULL) says so.
 */
static bool fence_copy_ok(struct rp_array *a, const struct model_device *devs, size_t n, char *why,
                          size_t len)
{
	uint64_t total = 0, max;
	size_t i;

	if (a->drv->caps & ARRAY_CAP_REFLINK)
		return true;
	max = (uint64_t)fence_env_long("REPLUN_FENCE_COPY_MAX_MB", FENCE_COPY_MAX_MB) << 20;
	for (i = 0; i < n; i++)
		total += devs[i].size;
	if (total <= max)
		return true;
	if (why && len)
		(void)snprintf(why, len,
		               "array '%s' copies snapshots (no reflink) and the group holds %llu"
		               " MiB (> %llu MiB): its writers are not paused that long",
		               a->id, (unsigned long long)(total >> 20),
		               (unsigned long long)(max >> 20));
	return false;
}

/*
 * Why writer @r of device @dev cannot be paused from here (a live foreign writer, or a local
 * one without a fence) into @why; @live: how many live writers the device has.
 */
static void fence_why(char *why, size_t len, const char *dev, const struct fence_rec *r,
                      size_t live)
{
	char who[RP_FENCE_WRITER_MAX + 48] = "";

	if (live > 1)
		(void)snprintf(who, sizeof(who), " for writer '%s', one of its %zu writers",
		               r->writer, live);
	if (r->state == FENCE_FOREIGN)
		(void)snprintf(why, len,
		               "device '%s' is served by %s on host '%s'%s, which this host cannot"
		               " pause",
		               dev, r->f.server, r->host, who);
	else
		(void)snprintf(why, len,
		               "device '%s' is served by %s (pid %lld)%s, which has no write fence",
		               dev, r->f.server, (long long)r->f.pid, who);
}

size_t fence_unfenced(char *why, size_t len, struct rp_array *a, const struct model_device *devs,
                      size_t n)
{
	size_t i, j, count = 0, fenced = 0;

	if (why && len)
		why[0] = '\0';
	for (i = 0; i < n; i++) {
		struct fence_rec *r = NULL;
		size_t nr = 0, live;

		if (fence_rec_load_all(&r, &nr, a, devs[i].id, NULL) < 0)
			continue;
		live = fence_rec_classify_all(r, nr);
		for (j = 0; j < nr; j++) {
			if (r[j].state == FENCE_NO_WRITER)
				continue;
			if (r[j].state == FENCE_LOCAL && r[j].f.kind != RP_FENCE_NONE) {
				fenced++;
				continue;
			}
			if (count++ == 0 && why && len)
				fence_why(why, len, devs[i].id, &r[j], live);
		}
		if (live < nr)
			fence_rec_clean(a, devs[i].id);
		rp_free(r);
	}
	if (count == 0 && fenced > 0 && !fence_copy_ok(a, devs, n, why, len))
		count = fenced;
	return count;
}

size_t fence_group_unfenced(char *why, size_t len, struct rp_array *a, const char *group)
{
	struct model_device *mem = NULL;
	size_t n = 0, k = 0;

	if (why && len)
		why[0] = '\0';
	if (model_device_list(&mem, &n, a, group, NULL) == 0)
		k = fence_unfenced(why, len, a, mem, n);
	rp_free(mem);
	return k;
}

/* Path of @prog in $PATH into @out; false if none. */
static bool fence_which(char *out, size_t len, const char *prog)
{
	const char *path = getenv("PATH");

	if (!path)
		path = "/sbin:/usr/sbin:/bin:/usr/bin";
	while (*path) {
		size_t n = strcspn(path, ":");

		if (n > 0 && (size_t)snprintf(out, len, "%.*s/%s", (int)n, path, prog) < len &&
		    access(out, X_OK) == 0)
			return true;
		path += n;
		if (*path == ':')
			path++;
	}
	return false;
}

/*
 * Runs @exe @argv with stdio on /dev/null, at most @timeout_ms; its exit status or -1.
 * Async-signal-safe (the watchdog uses it too).
 */
static int fence_run(const char *exe, char *const argv[], long timeout_ms)
{
	int64_t end = fence_mono_ms() + timeout_ms;
	int status = 0;
	pid_t pid = fork();

	if (pid < 0)
		return -1;
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);

		if (null >= 0) {
			(void)dup2(null, 0);
			(void)dup2(null, 1);
			(void)dup2(null, 2);
		}
		(void)close_range(3, ~0U, 0);
		execve(exe, argv, environ);
		_exit(127);
	}
	for (;;) {
		pid_t w = waitpid(pid, &status, WNOHANG);

		if (w == pid)
			break;
		if ((w < 0 && errno != EINTR) || fence_mono_ms() >= end) {
			(void)kill(pid, SIGKILL);
			(void)waitpid(pid, NULL, 0);
			return -1;
		}
		fence_sleep_ms(2);
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/*
 * Resumes every entry of @h that may be paused (@all: every tapdisk, as the watchdog's copy of
 * @h predates the pauses); best effort, async-signal-safe.
 */
static void fence_resume_all(struct fence_hold *h, bool all, long timeout_ms)
{
	size_t i;

	for (i = 0; i < h->n; i++)
		if (h->e[i].kind == RP_FENCE_PAUSE && h->e[i].fd >= 0)
			(void)send(h->e[i].fd, "r", 1, MSG_NOSIGNAL);
	for (i = 0; i < h->n; i++)
		if (h->e[i].kind == RP_FENCE_TAPDISK && (all || h->e[i].paused))
			(void)fence_run(h->tapctl, h->e[i].unpause, timeout_ms);
}

static int fence_cmp_int(const void *x, const void *y)
{
	int a = *(const int *)x, b = *(const int *)y;

	return (a > b) - (a < b);
}

/*
 * The watchdog: waits for 'd' from the engine (answers 'k', exits) and otherwise, on EOF (the
 * engine died) or after @hold_ms, resumes every writer and answers 'T'.
 */
__attribute__((noreturn)) static void fence_watchdog(struct fence_hold *h, int sv, int *keep,
                                                     size_t n_keep, long hold_ms)
{
	int64_t end = fence_mono_ms() + hold_ms;
	unsigned lo = 3;
	size_t i;
	char c = 0;

	(void)setsid(); /* outlives a kill of the engine's process group */
	(void)signal(SIGTERM, SIG_IGN);
	(void)signal(SIGINT, SIG_IGN);
	(void)signal(SIGHUP, SIG_IGN);
	for (i = 0; i < n_keep; i++) { /* keep only what we use: no lock or database fds */
		if ((unsigned)keep[i] > lo)
			(void)close_range(lo, (unsigned)keep[i] - 1, 0);
		lo = (unsigned)keep[i] + 1;
	}
	(void)close_range(lo, ~0U, 0);
	for (;;) {
		struct pollfd p = { .fd = sv, .events = POLLIN };
		int64_t left = end - fence_mono_ms();
		int r;

		if (left <= 0)
			break;
		r = poll(&p, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0)
			break;
		if (r > 0 && read(sv, &c, 1) == 1 && c == 'd') {
			(void)send(sv, "k", 1, MSG_NOSIGNAL);
			_exit(0);
		}
		break; /* EOF or error: the engine is gone */
	}
	fence_resume_all(h, true, 30000);
	(void)send(sv, "T", 1, MSG_NOSIGNAL);
	_exit(0);
}

static int fence_start_watchdog(struct fence_hold *h, struct rp_error *err)
{
	long hold_ms = fence_env_long("REPLUN_FENCE_HOLD_MS", FENCE_HOLD_MS);
	int sv[2], *keep;
	size_t n_keep = 0, i;
	pid_t pid;

	keep = rp_calloc(h->n + 1, sizeof(*keep));
	if (!keep)
		return rp_error_set(err, RP_ERROR, "out of memory");
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		rp_free(keep);
		return rp_error_set_os(err, RP_ERROR, errno, "fence watchdog socketpair");
	}
	keep[n_keep++] = sv[1];
	for (i = 0; i < h->n; i++)
		if (h->e[i].fd >= 0)
			keep[n_keep++] = h->e[i].fd;
	qsort(keep, n_keep, sizeof(*keep), fence_cmp_int);
	pid = fork();
	if (pid == 0)
		fence_watchdog(h, sv[1], keep, n_keep, hold_ms);
	rp_free(keep);
	(void)close(sv[1]);
	if (pid < 0) {
		(void)close(sv[0]);
		return rp_error_set_os(err, RP_ERROR, errno, "fence watchdog fork");
	}
	h->sv = sv[0];
	h->watchdog = pid;
	return 0;
}

static void fence_hold_free(struct fence_hold *h)
{
	size_t i;

	if (!h)
		return;
	for (i = 0; i < h->n; i++)
		if (h->e[i].fd >= 0)
			(void)close(h->e[i].fd);
	if (h->sv >= 0)
		(void)close(h->sv);
	rp_free(h->e);
	rp_free(h);
}

/* Connects to a pause control socket: fd, or -1 with errno (ECONNREFUSED/ENOENT: gone). */
static int fence_connect(const char *path)
{
	struct sockaddr_un sa;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	rp_strlcpy(sa.sun_path, path, sizeof(sa.sun_path));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;

		(void)close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* A new zeroed entry at the end of @h (not yet counted in h->n), or NULL. */
static struct fence_ent *fence_hold_add(struct fence_hold *h)
{
	struct fence_ent *e;

	if (h->n == h->cap) {
		size_t cap = h->cap ? h->cap * 2 : 4;

		e = rp_realloc(h->e, cap * sizeof(*e));
		if (!e)
			return NULL;
		h->e = e;
		h->cap = cap;
	}
	e = &h->e[h->n];
	memset(e, 0, sizeof(*e));
	e->fd = -1;
	return e;
}

/* Adds every live writer of @d to @h; an error when one cannot be paused (nothing added). */
static int fence_collect(struct fence_hold *h, struct rp_array *a, const struct model_device *d,
                         struct rp_error *err)
{
	char why[RP_MSG_MAX];
	struct fence_rec *r = NULL;
	struct fence_ent *e;
	size_t nr = 0, live, i;
	int rc = fence_rec_load_all(&r, &nr, a, d->id, err);

	if (rc < 0)
		return rc;
	live = fence_rec_classify_all(r, nr);
	if (live < nr)
		fence_rec_clean(a, d->id);
	for (i = 0; i < nr; i++) {
		if (r[i].state == FENCE_FOREIGN ||
		    (r[i].state == FENCE_LOCAL && r[i].f.kind == RP_FENCE_NONE)) {
			fence_why(why, sizeof(why), d->id, &r[i], live);
			rc = rp_error_set(err, RP_ENOTSUPPORTED, "%s", why);
			goto out;
		}
	}
	for (i = 0; i < nr; i++) {
		if (r[i].state != FENCE_LOCAL)
			continue;
		e = fence_hold_add(h);
		if (!e) {
			rc = rp_error_set(err, RP_ERROR, "out of memory");
			goto out;
		}
		e->kind = r[i].f.kind;
		if (live > 1)
			(void)snprintf(e->what, sizeof(e->what), "device '%s' (writer '%s')", d->id,
			               r[i].writer);
		else
			(void)snprintf(e->what, sizeof(e->what), "device '%s'", d->id);
		if (r[i].f.kind == RP_FENCE_PAUSE) {
			e->fd = fence_connect(r[i].f.control);
			if (e->fd < 0) {
				if (errno == ECONNREFUSED || errno == ENOENT)
					continue; /* the server is gone: no writer */
				rc = rp_error_set_os(err, RP_EIO, errno,
				                     "%s: pause control socket '%s'", e->what,
				                     r[i].f.control);
				goto out;
			}
		} else {
			if (!h->tapctl[0] &&
			    !fence_which(h->tapctl, sizeof(h->tapctl), "tap-ctl")) {
				rc = rp_error_set(
				        err, RP_ENOTSUPPORTED,
				        "%s is served by tapdisk but tap-ctl is not in PATH",
				        e->what);
				goto out;
			}
			(void)snprintf(e->pid, sizeof(e->pid), "%lld", (long long)r[i].f.pid);
			(void)snprintf(e->minor, sizeof(e->minor), "%d", r[i].f.minor);
			e->unpause[0] = (char *)"tap-ctl";
			e->unpause[1] = (char *)"unpause";
			e->unpause[2] = (char *)"-p";
			e->unpause[3] = e->pid;
			e->unpause[4] = (char *)"-m";
			e->unpause[5] = e->minor;
			e->unpause[6] = NULL;
		}
		h->n++;
	}
out:
	rp_free(r);
	return rc;
}

/* Sends 'p' to every pause socket and waits for every 'P' until @end (monotonic ms). */
static int fence_pause_sockets(struct fence_hold *h, int64_t end, struct rp_error *err)
{
	struct pollfd *pf;
	size_t *idx, i, m = 0, left;
	int rc = 0;

	pf = rp_calloc(h->n, sizeof(*pf));
	idx = rp_calloc(h->n, sizeof(*idx));
	if (!pf || !idx) {
		rc = rp_error_set(err, RP_ERROR, "out of memory");
		goto out;
	}
	for (i = 0; i < h->n; i++) {
		struct fence_ent *e = &h->e[i];

		if (e->kind != RP_FENCE_PAUSE)
			continue;
		if (send(e->fd, "p", 1, MSG_NOSIGNAL) != 1) {
			rc = rp_error_set_os(err, RP_EIO, errno, "%s: pause request not sent",
			                     e->what);
			goto out;
		}
		pf[m].fd = e->fd;
		pf[m].events = POLLIN;
		idx[m++] = i;
	}
	left = m;
	while (left > 0) {
		int64_t wait = end - fence_mono_ms();
		int r;

		if (wait <= 0) {
			for (i = 0; i < m && h->e[idx[i]].paused; i++)
				;
			rc = rp_error_set(err, RP_ETIMEOUT,
			                  "%s: its writer did not pause within %ld ms"
			                  " (requests in flight)",
			                  h->e[idx[i < m ? i : 0]].what, h->timeout_ms);
			goto out;
		}
		r = poll(pf, m, (int)wait);
		if (r < 0 && errno != EINTR) {
			rc = rp_error_set_os(err, RP_EIO, errno, "poll of the pause sockets");
			goto out;
		}
		for (i = 0; r > 0 && i < m; i++) {
			struct fence_ent *e = &h->e[idx[i]];
			char c;

			if (!pf[i].revents)
				continue;
			if (read(e->fd, &c, 1) != 1) {
				rc = rp_error_set(err, RP_EIO,
				                  "%s: its server closed the pause control"
				                  " connection (server gone mid-pause?)",
				                  e->what);
				goto out;
			}
			if (c == 'P') {
				e->paused = true;
				pf[i].fd = -1; /* poll ignores it from now on */
				left--;
			}
		}
	}
out:
	rp_free(pf);
	rp_free(idx);
	return rc;
}

int fence_pause(struct fence_hold **out, struct rp_array *a, const struct model_device *devs,
                size_t n, struct rp_error *err)
{
	struct fence_hold *h;
	char why[RP_MSG_MAX];
	int64_t end;
	size_t i;
	int rc = 0;

	*out = NULL;
	h = rp_calloc(1, sizeof(*h));
	if (!h)
		return rp_error_set(err, RP_ERROR, "out of memory");
	h->sv = -1;
	h->timeout_ms = fence_env_long("REPLUN_FENCE_TIMEOUT_MS", FENCE_TIMEOUT_MS);
	h->cap = n ? n : 1; /* grows when a device has several writers */
	h->e = rp_calloc(h->cap, sizeof(*h->e));
	if (!h->e) {
		rp_free(h);
		return rp_error_set(err, RP_ERROR, "out of memory");
	}
	for (i = 0; rc == 0 && i < n; i++)
		rc = fence_collect(h, a, &devs[i], err);
	if (rc == 0 && h->n > 0 && !fence_copy_ok(a, devs, n, why, sizeof(why)))
		rc = rp_error_set(err, RP_ENOTSUPPORTED, "%s", why);
	if (rc < 0 || h->n == 0) {
		fence_hold_free(h);
		return rc;
	}
	rc = fence_start_watchdog(h, err);
	if (rc < 0) {
		fence_hold_free(h);
		return rc;
	}
	end = fence_mono_ms() + h->timeout_ms;
	rc = fence_pause_sockets(h, end, err);
	for (i = 0; rc == 0 && i < h->n; i++) {
		struct fence_ent *e = &h->e[i];
		char *argv[] = { (char *)"tap-ctl", (char *)"pause", (char *)"-p", e->pid,
			         (char *)"-m",      e->minor,        NULL };
		int64_t left = end - fence_mono_ms();
		int st;

		if (e->kind != RP_FENCE_TAPDISK)
			continue;
		st = left > 0 ? fence_run(h->tapctl, argv, (long)left) : -1;
		e->paused = true; /* unpause even after a failed or timed-out pause */
		if (st != 0)
			rc = rp_error_set(err, st < 0 ? RP_ETIMEOUT : RP_EIO,
			                  "%s: tap-ctl pause -p %s -m %s %s", e->what, e->pid,
			                  e->minor, st < 0 ? "did not finish in time" : "failed");
	}
	if (rc < 0) {
		(void)fence_resume(h, NULL);
		return rc;
	}
	h->paused_ms = fence_mono_ms();
	rp_log(RP_LOG_VERBOSE, "fence: %zu writer(s) paused", h->n);
	*out = h;
	return 0;
}

int fence_resume(struct fence_hold *h, struct rp_error *err)
{
	int64_t end;
	size_t i;
	char c = 0;
	int rc = 0;

	if (!h)
		return 0;
	if (h->watchdog > 0) {
		struct pollfd p = { .fd = h->sv, .events = POLLIN };

		(void)send(h->sv, "d", 1, MSG_NOSIGNAL);
		if (poll(&p, 1, 30000) <= 0 || read(h->sv, &c, 1) != 1)
			c = 0;
		if (c == 'T')
			rc = rp_error_set(err, RP_ETIMEOUT,
			                  "the fence watchdog resumed the writers after %ld ms"
			                  " (hold limit): the snapshots may not be write-order"
			                  " consistent",
			                  fence_env_long("REPLUN_FENCE_HOLD_MS", FENCE_HOLD_MS));
		else if (c != 'k')
			rc = rp_error_set(
			        err, RP_ERROR,
			        "the fence watchdog (pid %d) is gone: the writers may have"
			        " been resumed early",
			        (int)h->watchdog);
		while (waitpid(h->watchdog, NULL, 0) < 0 && errno == EINTR)
			;
	}
	fence_resume_all(h, false, h->timeout_ms);
	end = fence_mono_ms() + h->timeout_ms;
	for (i = 0; i < h->n; i++) {
		struct fence_ent *e = &h->e[i];

		if (e->kind != RP_FENCE_PAUSE)
			continue;
		/* wait for the 'R' (the filter answers in order), so writers run when we return */
		for (;;) {
			struct pollfd p = { .fd = e->fd, .events = POLLIN };
			int64_t left = end - fence_mono_ms();

			if (left <= 0 || poll(&p, 1, (int)left) <= 0 || read(e->fd, &c, 1) != 1) {
				if (e->paused)
					rc = rp_error_set(err, RP_EIO,
					                  "%s: no answer to the resume"
					                  " request",
					                  e->what);
				break;
			}
			if (c == 'R')
				break;
		}
	}
	if (h->paused_ms)
		rp_log(RP_LOG_VERBOSE, "fence: writers resumed after %lld ms",
		       (long long)(fence_mono_ms() - h->paused_ms));
	fence_hold_free(h);
	return rc;
}

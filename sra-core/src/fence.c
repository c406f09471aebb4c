/* SPDX-License-Identifier: MIT */
/*
 * fence.c - write fences (replun/fence.h): one record per (LUN, writer) under
 * <array root>/fences/<device id>@<writer, %XX-escaped> (first-format fences/<device id> read
 * as one writer), and pause / resume of every writer of a group around its snapshots, bounded
 * by a watchdog process. Record format, stale rules and locking: docs/internals/fence.md.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fence.h"
#include "replun/fence.h"

extern char **environ;

#define FENCE_HOST_MAX 256
#define FENCE_BOOT_MAX 40
#define FENCE_TAP_ARGS 8
#define FENCE_SEP '@'      /* <device id>@<writer>: never in a device id */
#define FENCE_FILE_MAX 250 /* longest record file name (NAME_MAX 255, less a margin) */
#define FENCE_LOCK ".lock" /* flock of every change under FENCE_DIR */
#define FENCE_WHAT_MAX (RP_ID_MAX + RP_FENCE_WRITER_MAX + 32)

enum fence_state {
	FENCE_NO_WRITER = 0, /* a stale record: its server is gone */
	FENCE_LOCAL = 1,     /* a live writer on this host */
	FENCE_FOREIGN = 2,   /* a writer registered by another host */
};

struct fence_rec {
	struct rp_fence f;
	char host[FENCE_HOST_MAX];
	char boot[FENCE_BOOT_MAX];
	unsigned long long start;         /* server's start time (clock ticks); 0: unknown */
	char writer[RP_FENCE_WRITER_MAX]; /* whose record */
	char file[FENCE_FILE_MAX + 8];    /* its file name under FENCE_DIR */
	bool legacy;                      /* first format: fences/<device id> */
	enum fence_state state;           /* set by fence_classify_all */
};

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

static const char *const fence_kinds[] = { "none", "pause", "tapdisk" };

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

static void fence_boot_id(char out[FENCE_BOOT_MAX])
{
	int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, out, FENCE_BOOT_MAX - 1) : -1;

	if (fd >= 0)
		(void)close(fd);
	if (n < 0)
		n = 0;
	out[n] = '\0';
	out[strcspn(out, "\n")] = '\0';
}

static void fence_host(char out[FENCE_HOST_MAX])
{
	if (gethostname(out, FENCE_HOST_MAX - 1) < 0)
		out[0] = '\0';
	out[FENCE_HOST_MAX - 1] = '\0';
}

static bool fence_text_ok(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

static int fence_check(const struct rp_fence *f, struct rp_error *err)
{
	if (!f)
		return rp_error_set(err, RP_EINVAL, "no fence given");
	if (f->kind < RP_FENCE_NONE || f->kind > RP_FENCE_TAPDISK)
		return rp_error_set(err, RP_EINVAL, "unknown fence kind %d", f->kind);
	if (f->pid <= 1 || f->pid > INT_MAX)
		return rp_error_set(err, RP_EINVAL, "fence: bad server pid %lld",
		                    (long long)f->pid);
	if (!memchr(f->server, '\0', sizeof(f->server)) || !f->server[0] ||
	    !fence_text_ok(f->server))
		return rp_error_set(err, RP_EINVAL, "fence: bad server name");
	if (f->kind == RP_FENCE_TAPDISK && f->minor < 0)
		return rp_error_set(err, RP_EINVAL, "fence: bad tapdisk minor %d", f->minor);
	if (f->kind == RP_FENCE_PAUSE) {
		if (!memchr(f->control, '\0', sizeof(f->control)))
			return rp_error_set(err, RP_EINVAL,
			                    "fence: control socket path longer than %d bytes",
			                    RP_FENCE_SOCK_MAX - 1);
		if (f->control[0] != '/' || !fence_text_ok(f->control))
			return rp_error_set(err, RP_EINVAL,
			                    "fence: control socket path '%s' is not absolute",
			                    f->control);
	}
	return 0;
}

static bool fence_plain(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == ':' || c == '-';
}

/* "<id>@<writer, %XX-escaped>" into @out (FENCE_FILE_MAX + 1 bytes); false when longer. */
static bool fence_file_name(char *out, const char *id, const char *writer)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = (size_t)snprintf(out, FENCE_FILE_MAX + 1, "%s%c", id, FENCE_SEP);

	for (; *writer && o <= FENCE_FILE_MAX; writer++) {
		unsigned char c = (unsigned char)*writer;

		if (fence_plain(c)) {
			out[o++] = (char)c;
			continue;
		}
		if (o + 3 > FENCE_FILE_MAX)
			return false;
		out[o++] = '%';
		out[o++] = hex[c >> 4];
		out[o++] = hex[c & 15];
	}
	if (o > FENCE_FILE_MAX)
		return false;
	out[o] = '\0';
	return true;
}

static int fence_hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The writer name of a record file name's writer part; false when malformed. */
static bool fence_unescape(char out[RP_FENCE_WRITER_MAX], const char *s)
{
	size_t o = 0;

	for (; *s; s++) {
		int c = (unsigned char)*s;

		if (c == '%') {
			int hi = fence_hex(s[1]), lo = hi >= 0 ? fence_hex(s[2]) : -1;

			if (lo < 0)
				return false;
			c = hi * 16 + lo;
			s += 2;
		}
		if (c < 0x20 || c == 0x7f || o + 1 >= RP_FENCE_WRITER_MAX)
			return false;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return o > 0;
}

static int fence_writer_check(char file[FENCE_FILE_MAX + 1], const char *id, const char *writer,
                              struct rp_error *err)
{
	if (!writer || !*writer)
		return rp_error_set(err, RP_EINVAL, "fence: writer name is empty");
	if (strlen(writer) >= RP_FENCE_WRITER_MAX || !fence_text_ok(writer))
		return rp_error_set(err, RP_EINVAL,
		                    "fence: writer name is longer than %d bytes or has control"
		                    " characters",
		                    RP_FENCE_WRITER_MAX - 1);
	if (!fence_file_name(file, id, writer))
		return rp_error_set(
		        err, RP_EINVAL,
		        "fence: writer name '%s' is too long once escaped for a file name", writer);
	return 0;
}

/* The writer name a fence gives itself: "<host>:<pid>" ("<host>:<pid>:<minor>": tapdisk). */
static void fence_self_writer(char out[RP_FENCE_WRITER_MAX], const char *host,
                              const struct rp_fence *f)
{
	if (f->kind == RP_FENCE_TAPDISK)
		(void)snprintf(out, RP_FENCE_WRITER_MAX, "%.64s:%lld:%d", host, (long long)f->pid,
		               f->minor);
	else
		(void)snprintf(out, RP_FENCE_WRITER_MAX, "%.64s:%lld", host, (long long)f->pid);
}

/*
 * State and start time (field 22 of /proc/<pid>/stat) of process @pid: 0, or -1 when it cannot
 * be read (no such process, or no /proc).
 */
static int fence_proc(int64_t pid, char *state, unsigned long long *start)
{
	char path[64], buf[1024], *p;
	int fd, i;
	ssize_t n;

	(void)snprintf(path, sizeof(path), "/proc/%lld/stat", (long long)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	(void)close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	p = strrchr(buf, ')'); /* the command name may hold spaces and ')' */
	if (!p || p[1] != ' ')
		return -1;
	p += 2;
	*state = *p;
	for (i = 3; i < 22 && p; i++) { /* p is at field i */
		p = strchr(p, ' ');
		if (p)
			p++;
	}
	if (!p)
		return -1;
	*start = strtoull(p, NULL, 10);
	return 0;
}

static enum fence_state fence_classify(const struct fence_rec *r)
{
	char host[FENCE_HOST_MAX], boot[FENCE_BOOT_MAX], state = 0;
	unsigned long long start = 0;

	fence_host(host);
	if (strcmp(host, r->host) != 0)
		return FENCE_FOREIGN;
	fence_boot_id(boot);
	if (strcmp(boot, r->boot) != 0)
		return FENCE_NO_WRITER; /* registered before a reboot */
	if (fence_proc(r->f.pid, &state, &start) == 0) {
		if (state == 'Z' || state == 'X')
			return FENCE_NO_WRITER; /* exited, not yet reaped */
		if (r->start && start != r->start)
			return FENCE_NO_WRITER; /* the pid was reused */
		return FENCE_LOCAL;
	}
	if (kill((pid_t)r->f.pid, 0) < 0 && errno == ESRCH)
		return FENCE_NO_WRITER;
	return FENCE_LOCAL;
}

/* Parses record file @path: 1 read, 0 none (ENOENT), < 0 unreadable or malformed (@err set). */
static int fence_parse(struct fence_rec *r, const char *path, struct rp_error *err)
{
	char line[512], kind[16] = "";
	FILE *fp;

	memset(r, 0, sizeof(*r));
	r->f.minor = -1;
	fp = fopen(path, "re");
	if (!fp) {
		if (errno == ENOENT)
			return 0;
		return rp_error_set_os(err, RP_EIO, errno, "fence record '%s'", path);
	}
	while (fgets(line, sizeof(line), fp)) {
		char *v = strchr(line, ' ');

		line[strcspn(line, "\n")] = '\0';
		if (!v)
			continue;
		*v++ = '\0';
		if (strcmp(line, "kind") == 0)
			rp_strlcpy(kind, v, sizeof(kind));
		else if (strcmp(line, "pid") == 0)
			r->f.pid = strtoll(v, NULL, 10);
		else if (strcmp(line, "start") == 0)
			r->start = strtoull(v, NULL, 10);
		else if (strcmp(line, "minor") == 0)
			r->f.minor = (int)strtol(v, NULL, 10);
		else if (strcmp(line, "server") == 0)
			rp_strlcpy(r->f.server, v, sizeof(r->f.server));
		else if (strcmp(line, "host") == 0)
			rp_strlcpy(r->host, v, sizeof(r->host));
		else if (strcmp(line, "boot") == 0)
			rp_strlcpy(r->boot, v, sizeof(r->boot));
		else if (strcmp(line, "control") == 0)
			rp_strlcpy(r->f.control, v, sizeof(r->f.control));
	}
	(void)fclose(fp);
	r->f.kind = -1;
	for (size_t k = 0; k < sizeof(fence_kinds) / sizeof(fence_kinds[0]); k++)
		if (strcmp(kind, fence_kinds[k]) == 0)
			r->f.kind = (int)k;
	if (fence_check(&r->f, NULL) < 0)
		return rp_error_set(err, RP_ECORRUPT, "fence record '%s' is malformed", path);
	return 1;
}

/*
 * Loads every record of LUN @id (both formats; a first-format record that a registration is
 * moving and that therefore also exists under its new name counts once) into *out (rp_free).
 * No record: 0 and *n = 0. < 0: unreadable or malformed (@err set).
 */
static int fence_load_all(struct fence_rec **out, size_t *n, struct rp_array *a, const char *id,
                          struct rp_error *err)
{
	char dir[PATH_MAX], path[PATH_MAX + FENCE_FILE_MAX + 8];
	size_t idlen, k = 0, cap = 0, i, j;
	struct fence_rec *v = NULL;
	struct dirent *de;
	DIR *d;
	int rc = rp_id_check(id, "device id", err);

	*out = NULL;
	*n = 0;
	if (rc < 0)
		return rc;
	rc = engine_path(dir, sizeof(dir), a, FENCE_DIR, err);
	if (rc < 0)
		return rc;
	d = opendir(dir);
	if (!d) {
		if (errno == ENOENT)
			return 0;
		return rp_error_set_os(err, RP_EIO, errno, "fence directory '%s'", dir);
	}
	idlen = strlen(id);
	while ((de = readdir(d)) != NULL) {
		const char *nm = de->d_name;
		struct fence_rec *r;

		if (strncmp(nm, id, idlen) != 0 || (nm[idlen] && nm[idlen] != FENCE_SEP) ||
		    strlen(nm) > FENCE_FILE_MAX)
			continue;
		if (k == cap) {
			struct fence_rec *nv = rp_realloc(v, (cap ? cap * 2 : 4) * sizeof(*v));

			if (!nv) {
				rc = rp_error_set(err, RP_ERROR, "out of memory");
				goto out;
			}
			v = nv;
			cap = cap ? cap * 2 : 4;
		}
		r = &v[k];
		(void)snprintf(path, sizeof(path), "%s/%s", dir, nm);
		rc = fence_parse(r, path, err);
		if (rc == 0)
			continue; /* removed meanwhile */
		if (rc < 0)
			goto out;
		rc = 0;
		rp_strlcpy(r->file, nm, sizeof(r->file));
		r->legacy = nm[idlen] == '\0';
		if (r->legacy) {
			fence_self_writer(r->writer, r->host, &r->f);
		} else if (!fence_unescape(r->writer, nm + idlen + 1)) {
			rc = rp_error_set(err, RP_ECORRUPT, "fence record '%s': bad writer name",
			                  path);
			goto out;
		}
		k++;
	}
	for (i = 0; i < k; i++) { /* a first-format record also under its new name: once */
		if (!v[i].legacy)
			continue;
		for (j = 0; j < k && (v[j].legacy || strcmp(v[j].writer, v[i].writer) != 0); j++)
			;
		if (j < k) {
			memmove(&v[i], &v[i + 1], (k - i - 1) * sizeof(*v));
			k--;
			i--;
		}
	}
out:
	(void)closedir(d);
	if (rc < 0) {
		rp_free(v);
		return rc;
	}
	*out = v;
	*n = k;
	return 0;
}

/* Sets ->state of @n records; returns how many are live (local or foreign). */
static size_t fence_classify_all(struct fence_rec *r, size_t n)
{
	size_t i, live = 0;

	for (i = 0; i < n; i++) {
		r[i].state = fence_classify(&r[i]);
		if (r[i].state != FENCE_NO_WRITER)
			live++;
	}
	return live;
}

/*
 * Takes the flock of FENCE_DIR (created when @create) into *fd; *fd = -1 and 0 when the
 * directory does not exist and !@create (then there is no record to change).
 */
static int fence_lock(int *fd, char dir[PATH_MAX], struct rp_array *a, bool create,
                      struct rp_error *err)
{
	char path[PATH_MAX + 16];
	int rc = engine_path(dir, PATH_MAX, a, FENCE_DIR, err);

	*fd = -1;
	if (rc < 0)
		return rc;
	if (create && mkdir(dir, 0700) < 0 && errno != EEXIST)
		return rp_error_set_os(err, RP_EIO, errno, "fence directory '%s'", dir);
	(void)snprintf(path, sizeof(path), "%s/" FENCE_LOCK, dir);
	*fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (*fd < 0) {
		if (errno == ENOENT && !create)
			return 0;
		return rp_error_set_os(err, RP_EIO, errno, "fence lock '%s'", path);
	}
	while (flock(*fd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			rc = rp_error_set_os(err, RP_EIO, errno, "fence lock '%s'", path);
			(void)close(*fd);
			*fd = -1;
			return rc;
		}
	}
	return 0;
}

static void fence_unlock(int fd)
{
	if (fd >= 0)
		(void)close(fd); /* releases the flock */
}

/* Removes the stale records of LUN @id except file @keep (may be NULL); holds the lock. */
static void fence_clean_locked(struct rp_array *a, const char *id, const char *dir,
                               const char *keep)
{
	char path[PATH_MAX + FENCE_FILE_MAX + 8];
	struct fence_rec *r = NULL;
	size_t n = 0, i;

	if (fence_load_all(&r, &n, a, id, NULL) < 0)
		return;
	(void)fence_classify_all(r, n);
	for (i = 0; i < n; i++) {
		if (r[i].state != FENCE_NO_WRITER || (keep && strcmp(r[i].file, keep) == 0))
			continue;
		(void)snprintf(path, sizeof(path), "%s/%s", dir, r[i].file);
		if (unlink(path) == 0)
			rp_log(RP_LOG_VERBOSE,
			       "fence: stale record of '%s' removed (writer '%s', %s pid %lld "
			       "gone)",
			       id, r[i].writer, r[i].f.server, (long long)r[i].f.pid);
	}
	rp_free(r);
}

/* Removes the stale records of LUN @id (best effort: a reader found some). */
static void fence_clean(struct rp_array *a, const char *id)
{
	char dir[PATH_MAX];
	int fd;

	if (fence_lock(&fd, dir, a, false, NULL) < 0 || fd < 0)
		return;
	fence_clean_locked(a, id, dir, NULL);
	fence_unlock(fd);
}

/* Writes record @r as @dir/@file (write + rename). */
static int fence_write(const char *dir, const char *file, const struct fence_rec *r,
                       struct rp_error *err)
{
	char path[PATH_MAX + FENCE_FILE_MAX + 8], tmp[PATH_MAX + 32];
	FILE *fp;
	int rc;

	(void)snprintf(path, sizeof(path), "%s/%s", dir, file);
	(void)snprintf(tmp, sizeof(tmp), "%s/.tmp.%d", dir, (int)getpid());
	fp = fopen(tmp, "we");
	if (!fp)
		return rp_error_set_os(err, RP_EIO, errno, "fence record '%s'", tmp);
	(void)fprintf(fp, "kind %s\npid %lld\nminor %d\nserver %s\nhost %s\nboot %s\n",
	              fence_kinds[r->f.kind], (long long)r->f.pid,
	              r->f.kind == RP_FENCE_TAPDISK ? r->f.minor : -1, r->f.server, r->host,
	              r->boot);
	if (r->start)
		(void)fprintf(fp, "start %llu\n", r->start);
	if (r->f.kind == RP_FENCE_PAUSE)
		(void)fprintf(fp, "control %s\n", r->f.control);
	if (ferror(fp) | (fclose(fp) != 0)) {
		rc = rp_error_set_os(err, RP_EIO, errno, "writing fence record '%s'", tmp);
		(void)unlink(tmp);
		return rc;
	}
	if (rename(tmp, path) < 0) {
		rc = rp_error_set_os(err, RP_EIO, errno, "fence record '%s'", path);
		(void)unlink(tmp);
		return rc;
	}
	return 0;
}

/*
 * The first-format record of LUN @id (fences/<id>), if any, becomes a record of its own writer
 * ("<host>:<pid>"): dropped when that is @writer (just registered) or stale, else written under
 * its new name and then removed (readers count it once meanwhile). Holds the lock. On failure
 * it stays where it is (still read as one writer).
 */
static int fence_upgrade_locked(const char *id, const char *dir, const char *writer,
                                struct rp_error *err)
{
	char path[PATH_MAX + FENCE_FILE_MAX + 8], file[FENCE_FILE_MAX + 1];
	struct fence_rec r;
	bool keep;
	int rc;

	(void)snprintf(path, sizeof(path), "%s/%s", dir, id);
	rc = fence_parse(&r, path, NULL);
	if (rc <= 0)
		return 0; /* none; a malformed one stays for readers to report */
	fence_self_writer(r.writer, r.host, &r.f);
	keep = strcmp(r.writer, writer) != 0 && fence_classify(&r) != FENCE_NO_WRITER;
	if (keep) {
		if (!fence_file_name(file, id, r.writer))
			return rp_error_set(err, RP_ECORRUPT,
			                    "fence record '%s': host name too long", path);
		rc = fence_write(dir, file, &r, err);
		if (rc < 0)
			return rc;
	}
	if (unlink(path) < 0 && errno != ENOENT)
		return rp_error_set_os(err, RP_EIO, errno, "fence record '%s'", path);
	rp_log(RP_LOG_VERBOSE, "fence: first-format record of '%s' (%s pid %lld) %s", id,
	       r.f.server, (long long)r.f.pid,
	       keep ? "moved to its writer's name" : "dropped (stale, or re-registered)");
	return 0;
}

int rp_fence_register_writer(struct rp_array *a, const char *id, const char *writer,
                             const struct rp_fence *f, struct rp_error *err)
{
	char dir[PATH_MAX], file[FENCE_FILE_MAX + 1];
	struct model_device d;
	struct fence_rec r;
	char state = 0;
	int rc, fd = -1;

	if (!a || !id)
		return rp_error_set(err, RP_EINVAL, "invalid argument");
	rc = rp_id_check(id, "device id", err);
	if (rc < 0)
		return rc;
	rc = fence_writer_check(file, id, writer, err);
	if (rc < 0)
		return rc;
	rc = fence_check(f, err);
	if (rc < 0)
		return rc;
	rc = model_device_load(&d, a, id, err);
	if (rc < 0)
		return rc;
	memset(&r, 0, sizeof(r));
	r.f = *f;
	fence_host(r.host);
	fence_boot_id(r.boot);
	if (fence_proc(f->pid, &state, &r.start) < 0)
		r.start = 0;
	rc = fence_lock(&fd, dir, a, true, err);
	if (rc < 0)
		return rc;
	rc = fence_write(dir, file, &r, err);
	if (rc == 0) {
		struct rp_error ue = { 0 };

		if (fence_upgrade_locked(id, dir, writer, &ue) < 0)
			rp_log(RP_LOG_WARNING,
			       "fence: %s (left as it is: still read as one writer)", ue.msg);
		fence_clean_locked(a, id, dir, file);
	}
	fence_unlock(fd);
	if (rc < 0)
		return rc;
	rp_log(RP_LOG_VERBOSE, "fence of '%s' registered for writer '%s': %s, %s pid %lld", id,
	       writer, fence_kinds[f->kind], f->server, (long long)f->pid);
	return 0;
}

int rp_fence_register(struct rp_array *a, const char *id, const struct rp_fence *f,
                      struct rp_error *err)
{
	char host[FENCE_HOST_MAX], writer[RP_FENCE_WRITER_MAX];
	int rc = fence_check(f, err);

	if (rc < 0)
		return rc;
	fence_host(host);
	fence_self_writer(writer, host, f);
	return rp_fence_register_writer(a, id, writer, f, err);
}

int rp_fence_unregister_writer(struct rp_array *a, const char *id, const char *writer,
                               struct rp_error *err)
{
	char dir[PATH_MAX], file[FENCE_FILE_MAX + 1], path[PATH_MAX + FENCE_FILE_MAX + 8];
	struct fence_rec r;
	int rc, fd = -1;

	if (!a || !id)
		return rp_error_set(err, RP_EINVAL, "invalid argument");
	rc = rp_id_check(id, "device id", err);
	if (rc < 0)
		return rc;
	rc = fence_writer_check(file, id, writer, err);
	if (rc < 0)
		return rc;
	rc = fence_lock(&fd, dir, a, false, err);
	if (rc < 0 || fd < 0)
		return rc;
	(void)snprintf(path, sizeof(path), "%s/%s", dir, file);
	if (unlink(path) < 0 && errno != ENOENT)
		rc = rp_error_set_os(err, RP_EIO, errno, "fence record '%s'", path);
	(void)snprintf(path, sizeof(path), "%s/%s", dir, id);
	if (rc == 0 && fence_parse(&r, path, NULL) == 1) { /* first format, same writer */
		fence_self_writer(r.writer, r.host, &r.f);
		if (strcmp(r.writer, writer) == 0 && unlink(path) < 0 && errno != ENOENT)
			rc = rp_error_set_os(err, RP_EIO, errno, "fence record '%s'", path);
	}
	if (rc == 0)
		fence_clean_locked(a, id, dir, NULL);
	fence_unlock(fd);
	return rc;
}

int rp_fence_unregister(struct rp_array *a, const char *id, struct rp_error *err)
{
	char dir[PATH_MAX], path[PATH_MAX + FENCE_FILE_MAX + 8];
	struct dirent *de;
	size_t idlen;
	DIR *d;
	int rc, fd = -1;

	if (!a || !id)
		return rp_error_set(err, RP_EINVAL, "invalid argument");
	rc = rp_id_check(id, "device id", err);
	if (rc < 0)
		return rc;
	rc = fence_lock(&fd, dir, a, false, err);
	if (rc < 0 || fd < 0)
		return rc;
	d = opendir(dir);
	if (!d) {
		rc = rp_error_set_os(err, RP_EIO, errno, "fence directory '%s'", dir);
		goto out;
	}
	idlen = strlen(id);
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, id, idlen) != 0 ||
		    (de->d_name[idlen] && de->d_name[idlen] != FENCE_SEP))
			continue;
		(void)snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (unlink(path) < 0 && errno != ENOENT && rc == 0)
			rc = rp_error_set_os(err, RP_EIO, errno, "fence record '%s'", path);
	}
	(void)closedir(d);
out:
	fence_unlock(fd);
	return rc;
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

		if (fence_load_all(&r, &nr, a, devs[i].id, NULL) < 0)
			continue;
		live = fence_classify_all(r, nr);
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
			fence_clean(a, devs[i].id);
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
	int rc = fence_load_all(&r, &nr, a, d->id, err);

	if (rc < 0)
		return rc;
	live = fence_classify_all(r, nr);
	if (live < nr)
		fence_clean(a, d->id);
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

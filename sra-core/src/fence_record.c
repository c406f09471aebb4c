/* SPDX-License-Identifier: MIT */
/*
 * fence_record.c - the store of write-fence records (fence_record.h): <array root>/fences/
 * <device id>@<writer, %XX-escaped>, one per (LUN, writer); the first-format fences/<device id>
 * is read as one writer and moved to its writer's name by the next registration. Every change
 * holds the flock of fences/.lock. Format, stale rules and locking: docs/internals/fence.md.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fence_record.h"

#define FENCE_SEP '@'      /* <device id>@<writer>: never in a device id */
#define FENCE_LOCK ".lock" /* flock of every change under FENCE_DIR */

static const char *const fence_rec_kinds[] = { "none", "pause", "tapdisk" };

static void fence_rec_boot_id(char out[FENCE_BOOT_MAX])
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

static void fence_rec_host(char out[FENCE_HOST_MAX])
{
	if (gethostname(out, FENCE_HOST_MAX - 1) < 0)
		out[0] = '\0';
	out[FENCE_HOST_MAX - 1] = '\0';
}

static bool fence_rec_text_ok(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

static int fence_rec_check(const struct rp_fence *f, struct rp_error *err)
{
	if (!f)
		return rp_error_set(err, RP_EINVAL, "no fence given");
	if (f->kind < RP_FENCE_NONE || f->kind > RP_FENCE_TAPDISK)
		return rp_error_set(err, RP_EINVAL, "unknown fence kind %d", f->kind);
	if (f->pid <= 1 || f->pid > INT_MAX)
		return rp_error_set(err, RP_EINVAL, "fence: bad server pid %lld",
		                    (long long)f->pid);
	if (!memchr(f->server, '\0', sizeof(f->server)) || !f->server[0] ||
	    !fence_rec_text_ok(f->server))
		return rp_error_set(err, RP_EINVAL, "fence: bad server name");
	if (f->kind == RP_FENCE_TAPDISK && f->minor < 0)
		return rp_error_set(err, RP_EINVAL, "fence: bad tapdisk minor %d", f->minor);
	if (f->kind == RP_FENCE_PAUSE) {
		if (!memchr(f->control, '\0', sizeof(f->control)))
			return rp_error_set(err, RP_EINVAL,
			                    "fence: control socket path longer than %d bytes",
			                    RP_FENCE_SOCK_MAX - 1);
		if (f->control[0] != '/' || !fence_rec_text_ok(f->control))
			return rp_error_set(err, RP_EINVAL,
			                    "fence: control socket path '%s' is not absolute",
			                    f->control);
	}
	return 0;
}

static bool fence_rec_plain(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == ':' || c == '-';
}

/* "<id>@<writer, %XX-escaped>" into @out (FENCE_FILE_MAX + 1 bytes); false when longer. */
static bool fence_rec_file_name(char *out, const char *id, const char *writer)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = (size_t)snprintf(out, FENCE_FILE_MAX + 1, "%s%c", id, FENCE_SEP);

	for (; *writer && o <= FENCE_FILE_MAX; writer++) {
		unsigned char c = (unsigned char)*writer;

		if (fence_rec_plain(c)) {
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

static int fence_rec_hex(char c)
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
static bool fence_rec_unescape(char out[RP_FENCE_WRITER_MAX], const char *s)
{
	size_t o = 0;

	for (; *s; s++) {
		int c = (unsigned char)*s;

		if (c == '%') {
			int hi = fence_rec_hex(s[1]), lo = hi >= 0 ? fence_rec_hex(s[2]) : -1;

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

static int fence_rec_writer_check(char file[FENCE_FILE_MAX + 1], const char *id, const char *writer,
                                  struct rp_error *err)
{
	if (!writer || !*writer)
		return rp_error_set(err, RP_EINVAL, "fence: writer name is empty");
	if (strlen(writer) >= RP_FENCE_WRITER_MAX || !fence_rec_text_ok(writer))
		return rp_error_set(err, RP_EINVAL,
		                    "fence: writer name is longer than %d bytes or has control"
		                    " characters",
		                    RP_FENCE_WRITER_MAX - 1);
	if (!fence_rec_file_name(file, id, writer))
		return rp_error_set(
		        err, RP_EINVAL,
		        "fence: writer name '%s' is too long once escaped for a file name", writer);
	return 0;
}

/* The writer name a fence gives itself: "<host>:<pid>" ("<host>:<pid>:<minor>": tapdisk). */
static void fence_rec_self_writer(char out[RP_FENCE_WRITER_MAX], const char *host,
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
static int fence_rec_proc(int64_t pid, char *state, unsigned long long *start)
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

static enum fence_state fence_rec_classify(const struct fence_rec *r)
{
	char host[FENCE_HOST_MAX], boot[FENCE_BOOT_MAX], state = 0;
	unsigned long long start = 0;

	fence_rec_host(host);
	if (strcmp(host, r->host) != 0)
		return FENCE_FOREIGN;
	fence_rec_boot_id(boot);
	if (strcmp(boot, r->boot) != 0)
		return FENCE_NO_WRITER; /* registered before a reboot */
	if (fence_rec_proc(r->f.pid, &state, &start) == 0) {
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
static int fence_rec_parse(struct fence_rec *r, const char *path, struct rp_error *err)
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
	for (size_t k = 0; k < sizeof(fence_rec_kinds) / sizeof(fence_rec_kinds[0]); k++)
		if (strcmp(kind, fence_rec_kinds[k]) == 0)
			r->f.kind = (int)k;
	if (fence_rec_check(&r->f, NULL) < 0)
		return rp_error_set(err, RP_ECORRUPT, "fence record '%s' is malformed", path);
	return 1;
}

int fence_rec_load_all(struct fence_rec **out, size_t *n, struct rp_array *a, const char *id,
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
		rc = fence_rec_parse(r, path, err);
		if (rc == 0)
			continue; /* removed meanwhile */
		if (rc < 0)
			goto out;
		rc = 0;
		rp_strlcpy(r->file, nm, sizeof(r->file));
		r->legacy = nm[idlen] == '\0';
		if (r->legacy) {
			fence_rec_self_writer(r->writer, r->host, &r->f);
		} else if (!fence_rec_unescape(r->writer, nm + idlen + 1)) {
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

size_t fence_rec_classify_all(struct fence_rec *r, size_t n)
{
	size_t i, live = 0;

	for (i = 0; i < n; i++) {
		r[i].state = fence_rec_classify(&r[i]);
		if (r[i].state != FENCE_NO_WRITER)
			live++;
	}
	return live;
}

/*
 * Takes the flock of FENCE_DIR (created when @create) into *fd; *fd = -1 and 0 when the
 * directory does not exist and !@create (then there is no record to change).
 */
static int fence_rec_lock(int *fd, char dir[PATH_MAX], struct rp_array *a, bool create,
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

static void fence_rec_unlock(int fd)
{
	if (fd >= 0)
		(void)close(fd); /* releases the flock */
}

/* Removes the stale records of LUN @id except file @keep (may be NULL); holds the lock. */
static void fence_rec_clean_locked(struct rp_array *a, const char *id, const char *dir,
                                   const char *keep)
{
	char path[PATH_MAX + FENCE_FILE_MAX + 8];
	struct fence_rec *r = NULL;
	size_t n = 0, i;

	if (fence_rec_load_all(&r, &n, a, id, NULL) < 0)
		return;
	(void)fence_rec_classify_all(r, n);
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

void fence_rec_clean(struct rp_array *a, const char *id)
{
	char dir[PATH_MAX];
	int fd;

	if (fence_rec_lock(&fd, dir, a, false, NULL) < 0 || fd < 0)
		return;
	fence_rec_clean_locked(a, id, dir, NULL);
	fence_rec_unlock(fd);
}

/* Writes record @r as @dir/@file (write + rename). */
static int fence_rec_write(const char *dir, const char *file, const struct fence_rec *r,
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
	              fence_rec_kinds[r->f.kind], (long long)r->f.pid,
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
static int fence_rec_upgrade_locked(const char *id, const char *dir, const char *writer,
                                    struct rp_error *err)
{
	char path[PATH_MAX + FENCE_FILE_MAX + 8], file[FENCE_FILE_MAX + 1];
	struct fence_rec r;
	bool keep;
	int rc;

	(void)snprintf(path, sizeof(path), "%s/%s", dir, id);
	rc = fence_rec_parse(&r, path, NULL);
	if (rc <= 0)
		return 0; /* none; a malformed one stays for readers to report */
	fence_rec_self_writer(r.writer, r.host, &r.f);
	keep = strcmp(r.writer, writer) != 0 && fence_rec_classify(&r) != FENCE_NO_WRITER;
	if (keep) {
		if (!fence_rec_file_name(file, id, r.writer))
			return rp_error_set(err, RP_ECORRUPT,
			                    "fence record '%s': host name too long", path);
		rc = fence_rec_write(dir, file, &r, err);
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

/* The device id and writer name of a register or unregister call; @file gets the record's. */
static int fence_rec_args(char file[FENCE_FILE_MAX + 1], const char *id, const char *writer,
                          struct rp_error *err)
{
	int rc = rp_id_check(id, "device id", err);

	return rc < 0 ? rc : fence_rec_writer_check(file, id, writer, err);
}

int fence_rec_register(struct rp_array *a, const char *id, const char *writer,
                       const struct rp_fence *f, struct rp_error *err)
{
	char dir[PATH_MAX], file[FENCE_FILE_MAX + 1];
	struct model_device d;
	struct fence_rec r;
	char state = 0;
	int rc, fd = -1;

	rc = fence_rec_args(file, id, writer, err);
	if (rc < 0)
		return rc;
	rc = fence_rec_check(f, err);
	if (rc < 0)
		return rc;
	rc = model_device_load(&d, a, id, err);
	if (rc < 0)
		return rc;
	memset(&r, 0, sizeof(r));
	r.f = *f;
	fence_rec_host(r.host);
	fence_rec_boot_id(r.boot);
	if (fence_rec_proc(f->pid, &state, &r.start) < 0)
		r.start = 0;
	rc = fence_rec_lock(&fd, dir, a, true, err);
	if (rc < 0)
		return rc;
	rc = fence_rec_write(dir, file, &r, err);
	if (rc == 0) {
		struct rp_error ue = { 0 };

		if (fence_rec_upgrade_locked(id, dir, writer, &ue) < 0)
			rp_log(RP_LOG_WARNING,
			       "fence: %s (left as it is: still read as one writer)", ue.msg);
		fence_rec_clean_locked(a, id, dir, file);
	}
	fence_rec_unlock(fd);
	if (rc < 0)
		return rc;
	rp_log(RP_LOG_VERBOSE, "fence of '%s' registered for writer '%s': %s, %s pid %lld", id,
	       writer, fence_rec_kinds[f->kind], f->server, (long long)f->pid);
	return 0;
}

int fence_rec_own_writer(char out[RP_FENCE_WRITER_MAX], const struct rp_fence *f,
                         struct rp_error *err)
{
	char host[FENCE_HOST_MAX];
	int rc = fence_rec_check(f, err);

	if (rc < 0)
		return rc;
	fence_rec_host(host);
	fence_rec_self_writer(out, host, f);
	return 0;
}

int fence_rec_unregister(struct rp_array *a, const char *id, const char *writer,
                         struct rp_error *err)
{
	char dir[PATH_MAX], file[FENCE_FILE_MAX + 1], path[PATH_MAX + FENCE_FILE_MAX + 8];
	struct fence_rec r;
	int rc, fd = -1;

	rc = fence_rec_args(file, id, writer, err);
	if (rc < 0)
		return rc;
	rc = fence_rec_lock(&fd, dir, a, false, err);
	if (rc < 0 || fd < 0)
		return rc;
	(void)snprintf(path, sizeof(path), "%s/%s", dir, file);
	if (unlink(path) < 0 && errno != ENOENT)
		rc = rp_error_set_os(err, RP_EIO, errno, "fence record '%s'", path);
	(void)snprintf(path, sizeof(path), "%s/%s", dir, id);
	if (rc == 0 && fence_rec_parse(&r, path, NULL) == 1) { /* first format, same writer */
		fence_rec_self_writer(r.writer, r.host, &r.f);
		if (strcmp(r.writer, writer) == 0 && unlink(path) < 0 && errno != ENOENT)
			rc = rp_error_set_os(err, RP_EIO, errno, "fence record '%s'", path);
	}
	if (rc == 0)
		fence_rec_clean_locked(a, id, dir, NULL);
	fence_rec_unlock(fd);
	return rc;
}

int fence_rec_unregister_all(struct rp_array *a, const char *id, struct rp_error *err)
{
	char dir[PATH_MAX], path[PATH_MAX + FENCE_FILE_MAX + 8];
	struct dirent *de;
	size_t idlen;
	DIR *d;
	int rc, fd = -1;

	rc = rp_id_check(id, "device id", err);
	if (rc < 0)
		return rc;
	rc = fence_rec_lock(&fd, dir, a, false, err);
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
	fence_rec_unlock(fd);
	return rc;
}
/* SPDX-License-Identifier: MIT */
/*
 * sm_lock.c - sm's host-local locks: POSIX fcntl write locks on files
 * /var/lock/sm/<namespace>/<name> ($REPLUN_LOCK_DIR overrides the base for tests).
 * One fd per lock file per process: closing any fd of a file drops POSIX locks.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sm.h"

static const char *lock_base(void)
{
	const char *d = getenv("REPLUN_LOCK_DIR");

	return d && *d ? d : "/var/lock/sm";
}

static bool lock_name_ok(const char *s)
{
	size_t i, n = strlen(s);

	if (n == 0 || n > 100 || s[0] == '.')
		return false;
	for (i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.'))
			return false;
	}
	return true;
}

static long lock_timeout_ms(void)
{
	const char *s = getenv("REPLUN_LOCK_TIMEOUT");
	char *end = NULL;
	unsigned long v;

	if (!s || !*s)
		return 300000;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v > 86400)
		return 300000;
	return (long)v * 1000;
}

int sm_lock_acquire(struct sm_lock *l, const char *ns, const char *name, struct sm_fault *f)
{
	char dir[400];
	struct flock fl;
	long waited = 0, step = 1, limit = lock_timeout_ms();

	if (!lock_name_ok(ns) || !lock_name_ok(name))
		return sm_fault_set(f, SM_LOCK_ERR, "bad lock name '%s/%s'", ns, name);
	if (snprintf(dir, sizeof(dir), "%s/%s", lock_base(), ns) >= (int)sizeof(dir) ||
	    snprintf(l->path, sizeof(l->path), "%s/%s", dir, name) >= (int)sizeof(l->path))
		return sm_fault_set(f, SM_LOCK_ERR, "lock path too long");
	if ((mkdir(lock_base(), 0755) < 0 && errno != EEXIST) ||
	    (mkdir(dir, 0755) < 0 && errno != EEXIST))
		return sm_fault_set(f, SM_LOCK_ERR, "mkdir '%s': %s", dir, strerror(errno));
	l->fd = open(l->path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (l->fd < 0)
		return sm_fault_set(f, SM_LOCK_ERR, "open '%s': %s", l->path, strerror(errno));
	for (;;) {
		struct timespec ts;

		memset(&fl, 0, sizeof(fl));
		fl.l_type = F_WRLCK;
		fl.l_whence = SEEK_SET;
		if (fcntl(l->fd, F_SETLK, &fl) == 0)
			return 0;
		if (errno != EACCES && errno != EAGAIN && errno != EINTR)
			break;
		if (waited >= limit) {
			errno = ETIMEDOUT;
			break;
		}
		ts.tv_sec = step / 1000;
		ts.tv_nsec = (step % 1000) * 1000000L;
		(void)nanosleep(&ts, NULL);
		waited += step;
		step = step < 64 ? step * 2 : 64;
	}
	sm_fault_set(f, SM_LOCK_ERR, "lock '%s': %s", l->path, strerror(errno));
	(void)close(l->fd);
	l->fd = -1;
	return -1;
}

void sm_lock_release(struct sm_lock *l)
{
	if (l->fd >= 0)
		(void)close(l->fd); /* drops the fcntl lock */
	l->fd = -1;
}

void sm_lock_remove_ns(const char *ns)
{
	char dir[400], path[700];
	DIR *d;
	struct dirent *e;

	if (!lock_name_ok(ns) || snprintf(dir, sizeof(dir), "%s/%s", lock_base(), ns) >= 400)
		return;
	d = opendir(dir);
	if (!d)
		return;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		if (snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) < (int)sizeof(path))
			(void)unlink(path);
	}
	(void)closedir(d);
	(void)rmdir(dir);
}

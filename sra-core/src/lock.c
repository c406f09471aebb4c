/* SPDX-License-Identifier: MIT */
/* lock.c - advisory open-file-description locks under <array root>/locks/. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lock.h"

static int lock_open(struct rp_array *a, const char *name, int *out, struct rp_error *err)
{
	char rel[RP_ID_MAX + 32], path[PATH_MAX];
	int fd, rc;

	rc = rp_id_check(name, "lock name", err);
	if (rc < 0)
		return rc;
	(void)snprintf(rel, sizeof(rel), ENGINE_LOCK_DIR "/%s.lock", name);
	rc = engine_path(path, sizeof(path), a, rel, err);
	if (rc < 0)
		return rc;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 && errno == ENOENT) {
		/* The locks directory may be missing (an array made by an older build). */
		char dir[PATH_MAX];

		rc = engine_path(dir, sizeof(dir), a, ENGINE_LOCK_DIR, err);
		if (rc < 0)
			return rc;
		if (mkdir(dir, 0700) < 0 && errno != EEXIST)
			return rp_error_set_os(err, RP_EIO, errno, "lock directory '%s'", dir);
		fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	}
	if (fd < 0)
		return rp_error_set_os(err, RP_EIO, errno, "lock file '%s'", path);
	*out = fd;
	return 0;
}

static int lock_setlk(int fd)
{
	struct flock fl;

	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	return fcntl(fd, F_OFD_SETLK, &fl);
}

int lock_try(struct rp_array *a, const char *name, int *fd, bool *got, struct rp_error *err)
{
	int lfd = -1, rc;

	*fd = -1;
	*got = false;
	rc = lock_open(a, name, &lfd, err);
	if (rc < 0)
		return rc;
	if (lock_setlk(lfd) == 0) {
		*fd = lfd;
		*got = true;
		return 0;
	}
	rc = errno;
	(void)close(lfd);
	if (rc == EAGAIN || rc == EACCES)
		return 0;
	return rp_error_set_os(err, RP_EIO, rc, "lock '%s'", name);
}

int lock_group_timeout(struct rp_array *a, const char *id, int timeout_ms, int *fd,
                       struct rp_error *err)
{
	struct timespec nap = { 0, 10 * 1000 * 1000 };
	int64_t deadline;
	int lfd = -1, rc;

	rc = rp_id_check(id, "group or device id", err);
	if (rc < 0)
		return rc;
	if (timeout_ms <= 0)
		timeout_ms = a->busy_timeout_ms > 0 ? a->busy_timeout_ms : ENGINE_BUSY_TIMEOUT_MS;
	rc = lock_open(a, id, &lfd, err);
	if (rc < 0)
		return rc;
	deadline = rp_now_ms() + timeout_ms;
	for (;;) {
		if (lock_setlk(lfd) == 0)
			break;
		if (errno != EAGAIN && errno != EACCES) {
			rc = rp_error_set_os(err, RP_EIO, errno, "lock '%s'", id);
			goto fail;
		}
		if (rp_now_ms() >= deadline) {
			rc = rp_error_set(err, RP_ETIMEOUT,
			                  "'%s' is locked by another command (waited %d ms)", id,
			                  timeout_ms);
			goto fail;
		}
		(void)nanosleep(&nap, NULL);
	}
	*fd = lfd;
	return 0;
fail:
	(void)close(lfd);
	return rc;
}

int lock_group(struct rp_array *a, const char *id, int *fd, struct rp_error *err)
{
	return lock_group_timeout(a, id, 0, fd, err);
}

void unlock(int fd)
{
	if (fd >= 0)
		(void)close(fd); /* closing the last descriptor releases an OFD lock */
}

void lock_remove(struct rp_array *a, const char *name)
{
	char rel[RP_ID_MAX + 32], path[PATH_MAX];

	(void)snprintf(rel, sizeof(rel), ENGINE_LOCK_DIR "/%s.lock", name);
	if (engine_path(path, sizeof(path), a, rel, NULL) == 0)
		(void)unlink(path);
}

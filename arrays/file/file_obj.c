/* SPDX-License-Identifier: MIT */
/*
 * file_obj.c - objects of the file array: sparse image files <root>/data/<obj>.img created with
 * ftruncate; delete, grow, stat, rename (atomic replace), read-only marking (mode 0444) and the
 * listing of every object (the images in <root>/data).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "file.h"

int file_obj_create(struct array *a, const char *obj, uint64_t size, struct rp_error *err)
{
	struct file_array *fa = file_priv(a);
	char name[FILE_NAME_MAX];
	int rc, fd;

	rc = file_name(name, sizeof(name), obj, FILE_IMG_SUFFIX, err);
	if (rc < 0)
		return rc;
	if (size > (uint64_t)INT64_MAX)
		return rp_error_set(err, RP_EINVAL, "object size %llu is too large",
		                    (unsigned long long)size);
	fd = openat(fa->data_fd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0) {
		if (errno == EEXIST)
			return rp_error_set(err, RP_EEXISTS, "object '%s' already exists", obj);
		return rp_error_set_os(err, file_errno_code(errno), errno, "create of object '%s'",
		                       obj);
	}
	file_csum_drop(a, obj); /* a stale map of an earlier object of that name */
	if (ftruncate(fd, (off_t)size) < 0) {
		rc = rp_error_set_os(err, file_errno_code(errno), errno,
		                     "cannot size object '%s' to %llu bytes", obj,
		                     (unsigned long long)size);
		(void)close(fd);
		(void)unlinkat(fa->data_fd, name, 0);
		return rc;
	}
	(void)close(fd);
	return 0;
}

int file_obj_delete(struct array *a, const char *obj, struct rp_error *err)
{
	struct file_array *fa = file_priv(a);
	char name[FILE_NAME_MAX];
	int rc;

	rc = file_name(name, sizeof(name), obj, FILE_IMG_SUFFIX, err);
	if (rc < 0)
		return rc;
	if (unlinkat(fa->data_fd, name, 0) < 0 && errno != ENOENT)
		return rp_error_set_os(err, file_errno_code(errno), errno, "delete of object '%s'",
		                       obj);
	file_csum_drop(a, obj);
	return 0;
}

int file_obj_resize(struct array *a, const char *obj, uint64_t size, struct rp_error *err)
{
	struct stat st;
	int rc, fd = -1;

	if (size > (uint64_t)INT64_MAX)
		return rp_error_set(err, RP_EINVAL, "object size %llu is too large",
		                    (unsigned long long)size);
	rc = file_obj_open(&fd, a, obj, O_WRONLY, err);
	if (rc < 0)
		return rc;
	if (fstat(fd, &st) < 0) {
		rc = rp_error_set_os(err, file_errno_code(errno), errno, "stat of object '%s'",
		                     obj);
		goto out;
	}
	if (size < (uint64_t)st.st_size) {
		rc = rp_error_set(err, RP_EINVAL,
		                  "object '%s' cannot shrink from %lld to %llu bytes", obj,
		                  (long long)st.st_size, (unsigned long long)size);
		goto out;
	}
	if (size == (uint64_t)st.st_size)
		goto out;
	file_csum_drop(a, obj);
	if (ftruncate(fd, (off_t)size) < 0)
		rc = rp_error_set_os(err, file_errno_code(errno), errno,
		                     "cannot grow object '%s' to %llu bytes", obj,
		                     (unsigned long long)size);
out:
	(void)close(fd);
	return rc;
}

int file_obj_stat(struct array_obj_stat *out, struct array *a, const char *obj,
                  struct rp_error *err)
{
	struct file_array *fa = file_priv(a);
	char name[FILE_NAME_MAX];
	struct stat st;
	int rc;

	rc = file_name(name, sizeof(name), obj, FILE_IMG_SUFFIX, err);
	if (rc < 0)
		return rc;
	if (fstatat(fa->data_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			return rp_error_set(err, RP_ENOTFOUND, "object '%s' not found", obj);
		return rp_error_set_os(err, file_errno_code(errno), errno, "stat of object '%s'",
		                       obj);
	}
	if (!S_ISREG(st.st_mode))
		return rp_error_set(err, RP_ECORRUPT, "object '%s' is not a regular file", obj);
	out->size = (uint64_t)st.st_size;
	out->allocated = (uint64_t)st.st_blocks * 512u;
	out->read_only = (st.st_mode & 0222) == 0;
	return 0;
}

int file_obj_exists(bool *out, struct array *a, const char *obj, struct rp_error *err)
{
	struct file_array *fa = file_priv(a);
	char name[FILE_NAME_MAX];
	struct stat st;
	int rc;

	rc = file_name(name, sizeof(name), obj, FILE_IMG_SUFFIX, err);
	if (rc < 0)
		return rc;
	if (fstatat(fa->data_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno != ENOENT)
			return rp_error_set_os(err, file_errno_code(errno), errno,
			                       "stat of object '%s'", obj);
		*out = false;
		return 0;
	}
	*out = true;
	return 0;
}

/*
 * The image is renamed with rename(2), which replaces @dst atomically. The checksum map
 * follows it; its header names the image inode and mtime, so a map left beside the wrong image
 * by a crash between the two renames is recognised as stale and never used.
 */
int file_obj_rename(struct array *a, const char *src, const char *dst, struct rp_error *err)
{
	struct file_array *fa = file_priv(a);
	char s_img[FILE_NAME_MAX], d_img[FILE_NAME_MAX];
	char s_sum[FILE_NAME_MAX], d_sum[FILE_NAME_MAX];
	int rc;

	rc = file_name(s_img, sizeof(s_img), src, FILE_IMG_SUFFIX, err);
	if (rc == 0)
		rc = file_name(d_img, sizeof(d_img), dst, FILE_IMG_SUFFIX, err);
	if (rc == 0)
		rc = file_name(s_sum, sizeof(s_sum), src, FILE_CSUM_SUFFIX, err);
	if (rc == 0)
		rc = file_name(d_sum, sizeof(d_sum), dst, FILE_CSUM_SUFFIX, err);
	if (rc < 0)
		return rc;
	if (faccessat(fa->data_fd, s_img, F_OK, AT_SYMLINK_NOFOLLOW) < 0)
		return rp_error_set(err, RP_ENOTFOUND, "object '%s' not found", src);
	if (renameat(fa->data_fd, s_img, fa->data_fd, d_img) < 0) {
		if (errno == ENOENT)
			return rp_error_set(err, RP_ENOTFOUND, "object '%s' not found", src);
		return rp_error_set_os(err, file_errno_code(errno), errno,
		                       "rename of object '%s' to '%s'", src, dst);
	}
	if (renameat(fa->data_fd, s_sum, fa->data_fd, d_sum) < 0)
		(void)unlinkat(fa->data_fd, d_sum, 0); /* src had no map: dst's old one is stale */
	return 0;
}

int file_obj_set_readonly(struct array *a, const char *obj, bool ro, struct rp_error *err)
{
	struct file_array *fa = file_priv(a);
	char name[FILE_NAME_MAX];
	int rc;

	rc = file_name(name, sizeof(name), obj, FILE_IMG_SUFFIX, err);
	if (rc < 0)
		return rc;
	if (fchmodat(fa->data_fd, name, ro ? 0444 : 0644, 0) < 0) {
		if (errno == ENOENT)
			return rp_error_set(err, RP_ENOTFOUND, "object '%s' not found", obj);
		return rp_error_set_os(err, file_errno_code(errno), errno,
		                       "cannot change access of object '%s'", obj);
	}
	return 0;
}

int file_obj_path(char *buf, size_t len, struct array *a, const char *obj, struct rp_error *err)
{
	int rc = array_obj_name_check(obj, err);
	int n;

	if (rc < 0)
		return rc;
	n = snprintf(buf, len, "%s/%s/%s%s", a->root, FILE_DATA_DIR, obj, FILE_IMG_SUFFIX);
	if (n < 0 || (size_t)n >= len)
		return rp_error_set(err, RP_EINVAL, "path of object '%s' does not fit", obj);
	return 0;
}

int file_obj_list(struct array *a, array_obj_cb cb, void *payload, struct rp_error *err)
{
	struct file_array *fa = file_priv(a);
	const size_t sfx = sizeof(FILE_IMG_SUFFIX) - 1;
	struct dirent *de;
	DIR *d;
	int fd, rc = 0;

	fd = openat(fa->data_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || !(d = fdopendir(fd))) {
		rc = rp_error_set_os(err, file_errno_code(errno), errno,
		                     "listing of the objects of '%s'", a->root);
		if (fd >= 0)
			(void)close(fd);
		return rc;
	}
	while (rc == 0 && (de = readdir(d)) != NULL) {
		char obj[FILE_NAME_MAX];
		size_t l = strlen(de->d_name);

		/* images only (not checksum maps or temporary files), with a valid object name */
		if (l <= sfx || l - sfx >= sizeof(obj) ||
		    strcmp(de->d_name + l - sfx, FILE_IMG_SUFFIX) != 0)
			continue;
		memcpy(obj, de->d_name, l - sfx);
		obj[l - sfx] = '\0';
		if (array_obj_name_check(obj, NULL) < 0)
			continue;
		rc = cb(obj, payload);
	}
	(void)closedir(d);
	return rc;
}

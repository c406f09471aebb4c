/* SPDX-License-Identifier: MIT */
/*
 * file.c - the embedded file array: ops table, create/open/close/stat and the helpers the
 * other file_*.c modules share (errno mapping, object file names).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "file.h"

int file_errno_code(int e)
{
	switch (e) {
	case ENOENT:
		return RP_ENOTFOUND;
	case EEXIST:
		return RP_EEXISTS;
	case ENOSPC:
	case EDQUOT:
	case EFBIG:
		return RP_ENOSPACE;
	case EACCES:
	case EPERM:
	case EROFS:
		return RP_EPERM;
	case EBUSY:
	case ETXTBSY:
		return RP_EBUSY;
	case EINVAL:
	case ENAMETOOLONG:
		return RP_EINVAL;
	case EOPNOTSUPP:
	case ENOTTY:
	case EXDEV:
		return RP_ENOTSUPPORTED;
	case EIO:
		return RP_EIO;
	default:
		return RP_ERROR;
	}
}

int file_name(char *buf, size_t len, const char *obj, const char *suffix, struct rp_error *err)
{
	int rc = array_obj_name_check(obj, err);
	int n;

	if (rc < 0)
		return rc;
	n = snprintf(buf, len, "%s%s", obj, suffix);
	if (n < 0 || (size_t)n >= len)
		return rp_error_set(err, RP_EINVAL, "object name '%s' is too long", obj);
	return 0;
}

int file_obj_open(int *fd, struct array *a, const char *obj, int flags, struct rp_error *err)
{
	struct file_array *fa = file_priv(a);
	char name[FILE_NAME_MAX];
	int rc, f;

	rc = file_name(name, sizeof(name), obj, FILE_IMG_SUFFIX, err);
	if (rc < 0)
		return rc;
	f = openat(fa->data_fd, name, flags | O_CLOEXEC | O_NOFOLLOW);
	if (f < 0) {
		if (errno == ENOENT)
			return rp_error_set(err, RP_ENOTFOUND, "object '%s' not found", obj);
		return rp_error_set_os(err, file_errno_code(errno), errno, "open of object '%s'",
		                       obj);
	}
	*fd = f;
	return 0;
}

void file_csum_drop(struct array *a, const char *obj)
{
	char name[FILE_NAME_MAX];

	if (file_name(name, sizeof(name), obj, FILE_CSUM_SUFFIX, NULL) < 0)
		return;
	(void)unlinkat(file_priv(a)->data_fd, name, 0);
}

static int file_create(const char *root, struct rp_error *err)
{
	char path[RP_URI_MAX + 16];
	int n;

	if (root[0] != '/')
		return rp_error_set(err, RP_EINVAL, "array root '%s' is not an absolute path",
		                    root);
	n = snprintf(path, sizeof(path), "%s/%s", root, FILE_DATA_DIR);
	if (n < 0 || (size_t)n >= sizeof(path))
		return rp_error_set(err, RP_EINVAL, "array root is too long");
	if (mkdir(root, 0755) < 0 && errno != EEXIST)
		return rp_error_set_os(err, file_errno_code(errno), errno,
		                       "cannot create array directory '%s'", root);
	if (mkdir(path, 0755) < 0) {
		if (errno == EEXIST)
			return rp_error_set(err, RP_EEXISTS, "'%s' already holds a file array",
			                    root);
		return rp_error_set_os(err, file_errno_code(errno), errno, "cannot create '%s'",
		                       path);
	}
	return 0;
}

static bool file_is_mount_point(int root_fd)
{
	struct stat self, parent;

	if (fstat(root_fd, &self) < 0 || fstatat(root_fd, "..", &parent, 0) < 0)
		return false;
	/* Different device, or the same inode (the root directory "/" itself). */
	return self.st_dev != parent.st_dev || self.st_ino == parent.st_ino;
}

static int file_open(struct array *a, const char *root, const struct rp_open_opts *opts,
                     struct rp_error *err)
{
	struct file_array *fa = file_priv(a);

	fa->root_fd = -1;
	fa->data_fd = -1;
	fa->inited = true;
	if (root[0] != '/')
		return rp_error_set(err, RP_EINVAL, "array root '%s' is not an absolute path",
		                    root);
	fa->root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fa->root_fd < 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			return rp_error_set(err, RP_ENOTFOUND, "no array directory at '%s'", root);
		return rp_error_set_os(err, file_errno_code(errno), errno, "cannot open '%s'",
		                       root);
	}
	fa->data_fd = openat(fa->root_fd, FILE_DATA_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fa->data_fd < 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			return rp_error_set(err, RP_ENOTFOUND, "'%s' is not a file array (no %s/)",
			                    root, FILE_DATA_DIR);
		return rp_error_set_os(err, file_errno_code(errno), errno, "cannot open '%s/%s'",
		                       root, FILE_DATA_DIR);
	}
	fa->mount_point = file_is_mount_point(fa->root_fd);
	fa->caps = ARRAY_CAP_LOCAL_PATH;
	if (file_reflink_probe(fa->data_fd))
		fa->caps |= ARRAY_CAP_REFLINK | ARRAY_CAP_EXTENT_DIFF;
	if (file_freeze_possible(a))
		fa->caps |= ARRAY_CAP_FREEZE;
	a->caps = fa->caps;
	return 0;
}

static void file_close(struct array *a)
{
	struct file_array *fa = file_priv(a);

	/* A zeroed state (open() never ran) holds no descriptors. */
	if (!fa || !fa->inited)
		return;
	if (fa->frozen)
		(void)file_thaw(a, NULL); /* never leave a frozen filesystem behind */
	if (fa->data_fd >= 0)
		(void)close(fa->data_fd);
	if (fa->root_fd >= 0)
		(void)close(fa->root_fd);
	fa->data_fd = -1;
	fa->root_fd = -1;
	fa->inited = false;
}

static const char *file_fs_name(unsigned long type)
{
	switch (type) {
	case 0x58465342UL:
		return "xfs";
	case 0x9123683eUL:
		return "btrfs";
	case 0xef53UL:
		return "ext4";
	case 0x01021994UL:
		return "tmpfs";
	case 0x794c7630UL:
		return "overlayfs";
	case 0x6969UL:
		return "nfs";
	case 0x2fc12fc1UL:
		return "zfs";
	case 0xf2f52010UL:
		return "f2fs";
	case 0x65735546UL:
		return "fuse";
	case 0xff534d42UL:
		return "cifs";
	case 0x858458f6UL:
		return "ramfs";
	default:
		return NULL;
	}
}

static int file_stat(struct array_stat *out, struct array *a, struct rp_error *err)
{
	struct file_array *fa = file_priv(a);
	struct statvfs vfs;
	struct statfs sfs;
	const char *name;

	if (fstatvfs(fa->data_fd, &vfs) < 0 || fstatfs(fa->data_fd, &sfs) < 0)
		return rp_error_set_os(err, file_errno_code(errno), errno, "statfs of '%s'",
		                       a->root);
	memset(out, 0, sizeof(*out));
	out->capacity = (uint64_t)vfs.f_blocks * vfs.f_frsize;
	out->free = (uint64_t)vfs.f_bavail * vfs.f_frsize;
	name = file_fs_name((unsigned long)sfs.f_type);
	if (name)
		(void)rp_strlcpy(out->fs_type, name, sizeof(out->fs_type));
	else
		(void)snprintf(out->fs_type, sizeof(out->fs_type), "unknown-0x%lx",
		               (unsigned long)sfs.f_type);
	out->caps = fa->caps;
	return 0;
}

const struct array_ops array_file_ops = {
	.version = ARRAY_OPS_VERSION,
	.name = "file",
	.priv_size = sizeof(struct file_array),
	.create = file_create,
	.open = file_open,
	.close = file_close,
	.stat = file_stat,
	.obj_create = file_obj_create,
	.obj_delete = file_obj_delete,
	.obj_resize = file_obj_resize,
	.obj_stat = file_obj_stat,
	.obj_exists = file_obj_exists,
	.obj_rename = file_obj_rename,
	.obj_set_readonly = file_obj_set_readonly,
	.obj_path = file_obj_path,
	.clone = file_clone,
	.changed_extents = file_changed_extents,
	.read = file_read,
	.write = file_write,
	.punch = file_punch,
	.flush = file_flush,
	.checksum = file_checksum,
	.freeze = file_freeze,
	.thaw = file_thaw,
};

/* SPDX-License-Identifier: MIT */
/*
 * file.c - the embedded file array: ops table, create/open/close/stat and the helpers the
 * other file_*.c modules share (errno mapping, object file names).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
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

/*
 * The reflink probe (two O_TMPFILE inodes, a 4 KiB write, FICLONE, two inode frees: two
 * filesystem transactions per array open) is cached in data/FILE_CAPS_NAME. The cache names
 * the filesystem (statfs f_type and f_fsid, st_dev of data/) and itself (inode number and
 * birth time, which a copy, a restore from backup or a recreated filesystem cannot keep); any
 * difference, a missing, torn or foreign file, or a filesystem without birth times means
 * probing again. It is written without fsync (losing it only costs a probe) and renamed into
 * place (readers see all of it or none); an inconclusive probe is not cached (file_caps_probe).
 * A wrong "reflink=1" could not lose data anyway:
 * file_clone falls back to copying when FICLONE fails.
 */
#define FILE_CAPS_NAME ".caps"
#define FILE_CAPS_MAGIC "replun-file-caps 1"
#define FILE_CAPS_MAX 256

struct file_caps_id {
	unsigned long fs_type;
	int fsid[2];
	uint64_t dev;
	uint64_t ino;
	int64_t btime_s;
	uint32_t btime_ns;
};

static int file_caps_fs_id(struct file_caps_id *id, int data_fd)
{
	struct statfs sfs;
	struct stat st;

	memset(id, 0, sizeof(*id));
	if (fstatfs(data_fd, &sfs) < 0 || fstat(data_fd, &st) < 0)
		return -1;
	id->fs_type = (unsigned long)sfs.f_type;
	memcpy(id->fsid, &sfs.f_fsid, sizeof(id->fsid));
	id->dev = (uint64_t)st.st_dev;
	return 0;
}

/* Inode number and birth time of @fd; -1 when the filesystem does not report a birth time. */
static int file_caps_file_id(struct file_caps_id *id, int fd)
{
	struct statx sx;

	if (statx(fd, "", AT_EMPTY_PATH, STATX_INO | STATX_BTIME, &sx) < 0 ||
	    !(sx.stx_mask & STATX_BTIME) || !(sx.stx_mask & STATX_INO))
		return -1;
	id->ino = sx.stx_ino;
	id->btime_s = sx.stx_btime.tv_sec;
	id->btime_ns = sx.stx_btime.tv_nsec;
	return 0;
}

static int file_caps_format(char *buf, size_t len, const struct file_caps_id *id, bool reflink)
{
	int n = snprintf(buf, len,
	                 FILE_CAPS_MAGIC "\nfs_type=%lx\nfsid=%x:%x\ndev=%" PRIu64 "\nino=%" PRIu64
	                                 "\nbtime=%" PRId64 ".%09" PRIu32 "\nreflink=%d\n",
	                 id->fs_type, (unsigned)id->fsid[0], (unsigned)id->fsid[1], id->dev,
	                 id->ino, id->btime_s, id->btime_ns, reflink ? 1 : 0);

	return n < 0 || (size_t)n >= len ? -1 : n;
}

/* 1/0: the cached reflink answer for this filesystem; -1: no valid cache (probe). */
static int file_caps_load(int data_fd)
{
	char buf[FILE_CAPS_MAX], want[FILE_CAPS_MAX];
	struct file_caps_id id;
	ssize_t n;
	int fd, r, rc = -1;

	if (file_caps_fs_id(&id, data_fd) < 0)
		return -1;
	fd = openat(data_fd, FILE_CAPS_NAME, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -1;
	if (file_caps_file_id(&id, fd) < 0)
		goto out;
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	if (n <= 0)
		goto out;
	buf[n] = '\0';
	/* The file must be exactly what this filesystem and this inode would have written. */
	for (r = 0; r <= 1; r++) {
		if (file_caps_format(want, sizeof(want), &id, r != 0) >= 0 &&
		    strcmp(buf, want) == 0)
			rc = r;
	}
out:
	(void)close(fd);
	return rc;
}

/* Records @reflink for this filesystem; best effort (a cache: failures only mean probing). */
static void file_caps_store(int data_fd, bool reflink)
{
	char buf[FILE_CAPS_MAX], tmp[64];
	struct file_caps_id id;
	int fd, n;

	if (file_caps_fs_id(&id, data_fd) < 0)
		return;
	(void)snprintf(tmp, sizeof(tmp), FILE_CAPS_NAME ".%ld.tmp", (long)getpid());
	fd = openat(data_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return;
	n = file_caps_file_id(&id, fd) < 0 ? -1 : file_caps_format(buf, sizeof(buf), &id, reflink);
	if (n < 0 || file_pwrite_full(fd, buf, (size_t)n, 0) < 0) {
		(void)close(fd);
		(void)unlinkat(data_fd, tmp, 0);
		return;
	}
	(void)close(fd);
	if (renameat(data_fd, tmp, data_fd, FILE_CAPS_NAME) < 0)
		(void)unlinkat(data_fd, tmp, 0);
}

/*
 * The probe itself, with a third answer: 1 FICLONE works in data/, 0 the filesystem refuses it
 * (the errors file_clone also takes for "not supported"), -1 it could not tell (no space for
 * the probe block, no O_TMPFILE, ...). Only 1 and 0 are cached: a full filesystem must not be
 * remembered as one without reflinks.
 */
static int file_caps_probe(int data_fd)
{
	char block[FILE_BLOCK];
	int src, dst = -1, rc = -1;

	src = openat(data_fd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (src < 0)
		return -1;
	dst = openat(data_fd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (dst < 0)
		goto out;
	memset(block, 0x5a, sizeof(block));
	if (file_pwrite_full(src, block, sizeof(block), 0) < 0)
		goto out;
	if (ioctl(dst, FICLONE, src) == 0)
		rc = 1;
	else if (errno == EOPNOTSUPP || errno == EXDEV || errno == EINVAL || errno == ENOTTY)
		rc = 0;
out:
	if (dst >= 0)
		(void)close(dst);
	(void)close(src);
	return rc;
}

static int file_open(struct array *a, const char *root, const struct rp_open_opts *opts,
                     struct rp_error *err)
{
	struct file_array *fa = file_priv(a);
	struct statfs sfs;
	int reflink;

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
	reflink = file_caps_load(fa->data_fd);
	if (reflink < 0) {
		reflink = file_caps_probe(fa->data_fd);
		if (reflink >= 0)
			file_caps_store(fa->data_fd, reflink != 0);
	}
	if (reflink > 0)
		fa->caps |= ARRAY_CAP_REFLINK | ARRAY_CAP_EXTENT_DIFF;
	/* the proof of file_origin.c rests on how xfs locks, writes back and remaps */
	fa->origin_reads = reflink > 0 && fstatfs(fa->data_fd, &sfs) == 0 &&
	                   (unsigned long)sfs.f_type == FILE_XFS_MAGIC;
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
	case FILE_XFS_MAGIC:
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
	.obj_list = file_obj_list,
	.clone = file_clone,
	.changed_extents = file_changed_extents,
	.read = file_read,
	.write = file_write,
	.punch = file_punch,
	.flush = file_flush,
	.checksum = file_checksum,
	.freeze = file_freeze,
	.thaw = file_thaw,
	.read_uncached = file_read_uncached,
	.clone_from = file_clone_from,
	.read_snapshot = file_read_snapshot,
	.origin_done = file_origin_done,
	.copy_ranges = file_copy_ranges,
	.refresh = file_refresh,
};

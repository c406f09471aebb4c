/* SPDX-License-Identifier: MIT */
/*
 * file_ranges.c - ->copy_ranges of the file array: many ranges from one object into another
 * with one open of each. On a reflink filesystem a block-aligned range is shared
 * (FICLONERANGE: the destination's blocks are remapped to the source's, no data is read or
 * written and nothing is left dirty); anything else is copied with pread/pwrite.
 *
 * Why sharing: the data mover's in-place apply writes an incremental's scattered ranges into a
 * live target object that shares every block with its recovery point. Written, each 4 KiB
 * range is a copy-on-write allocation at write-back and a remap when it completes; for the
 * 2,621 ranges of the 1 % benchmark that fsync took 150-200 ms on xfs, against 60-65 ms for
 * remapping the same ranges from the packed stage (docs/benchmarks.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "file.h"

/* Copies @len bytes at @src_off of @sfd to @dst_off of @dfd through @buf (@bufsz bytes). */
static int ranges_copy(int sfd, int dfd, const struct array_remap *r, char *buf, size_t bufsz,
                       const char *src, const char *dst, struct rp_error *err)
{
	uint64_t pos = 0;

	while (pos < r->len) {
		size_t k = r->len - pos < bufsz ? (size_t)(r->len - pos) : bufsz;

		if (file_pread_full(sfd, buf, k, r->src_off + pos) < 0)
			return rp_error_set_os(err,
			                       errno == ENODATA ? RP_EIO : file_errno_code(errno),
			                       errno, "read of object '%s' at %llu", src,
			                       (unsigned long long)(r->src_off + pos));
		if (file_pwrite_full(dfd, buf, k, r->dst_off + pos) < 0)
			return rp_error_set_os(err, file_errno_code(errno), errno,
			                       "write of object '%s' at %llu", dst,
			                       (unsigned long long)(r->dst_off + pos));
		pos += k;
	}
	return 0;
}

/*
 * FICLONERANGE of one range: 0 when shared, 1 when it cannot be shared (the caller copies it;
 * *@no_reflink is set when no range of these objects can be), or an error.
 */
static int ranges_share(int sfd, int dfd, const struct array_remap *r, bool *no_reflink,
                        const char *dst, struct rp_error *err)
{
	struct file_clone_range fcr = {
		.src_fd = sfd,
		.src_offset = r->src_off,
		.src_length = r->len,
		.dest_offset = r->dst_off,
	};

	if (ioctl(dfd, FICLONERANGE, &fcr) == 0)
		return 0;
	switch (errno) {
	case EINVAL: /* alignment (a block larger than 4 KiB), or this range only */
		return 1;
	case EOPNOTSUPP:
	case ENOTTY:
	case EXDEV:
		*no_reflink = true;
		return 1;
	default:
		return rp_error_set_os(err, file_errno_code(errno), errno,
		                       "sharing blocks into object '%s' at %llu", dst,
		                       (unsigned long long)r->dst_off);
	}
}

int file_copy_ranges(struct array *a, const char *src, const char *dst, const struct array_remap *r,
                     size_t n, uint64_t *shared, struct rp_error *err)
{
	bool no_reflink = !(file_priv(a)->caps & ARRAY_CAP_REFLINK);
	uint64_t done_shared = 0, longest = 0;
	char *buf = NULL;
	size_t bufsz = 0, i;
	int sfd = -1, dfd = -1, rc;

	if (shared)
		*shared = 0;
	if (strcmp(src, dst) == 0)
		return rp_error_set(err, RP_EINVAL, "cannot copy ranges of object '%s' into itself",
		                    src);
	rc = file_obj_open(&sfd, a, src, O_RDONLY, err);
	if (rc < 0)
		return rc;
	rc = file_obj_open(&dfd, a, dst, O_WRONLY, err);
	if (rc < 0)
		goto out;
	/* every range checked before anything changes; @dst writable even when there are none */
	rc = file_io_range(dfd, dst, 0, 0, true, err);
	for (i = 0; rc == 0 && i < n; i++) {
		rc = file_io_range(sfd, src, r[i].src_off, r[i].len, false, err);
		if (rc == 0)
			rc = file_io_range(dfd, dst, r[i].dst_off, r[i].len, true, err);
		if (r[i].len > longest)
			longest = r[i].len;
	}
	if (rc < 0 || n == 0)
		goto out;
	file_csum_drop(a, dst); /* written: its map no longer describes it */
	for (i = 0; rc == 0 && i < n; i++) {
		if (r[i].len == 0)
			continue;
		if (!no_reflink && (r[i].src_off | r[i].dst_off | r[i].len) % FILE_BLOCK == 0) {
			rc = ranges_share(sfd, dfd, &r[i], &no_reflink, dst, err);
			if (rc == 0) {
				done_shared += r[i].len;
				continue;
			}
			if (rc < 0)
				break;
		}
		if (!buf) {
			bufsz = longest < FILE_IO_BUF ? (size_t)longest : FILE_IO_BUF;
			buf = rp_malloc(bufsz);
			if (!buf) {
				rc = rp_error_set(err, RP_ERROR, "out of memory");
				break;
			}
		}
		rc = ranges_copy(sfd, dfd, &r[i], buf, bufsz, src, dst, err);
	}
out:
	if (shared)
		*shared = done_shared;
	rp_free(buf);
	if (dfd >= 0)
		(void)close(dfd);
	if (sfd >= 0)
		(void)close(sfd);
	return rc;
}

/* SPDX-License-Identifier: MIT */
/*
 * file_io.c - data path of the file array: pread/pwrite of whole ranges (O_DIRECT reads that
 * bypass the page cache for the data mover), hole punching, fsync and the XXH128 content
 * checksum. One open per call: with the 1-4 MiB buffers the data mover
 * uses an open+close costs well under 1% (see docs/internals/file-array.md), and no cached
 * descriptor can outlive a rename done by another process.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "file.h"

/* Writes of at least this size start their write-back at once (see file_write). */
#define FILE_WRITEBACK_MIN (1u << 20)

/*
 * O_DIRECT wants the offset, the length and the buffer aligned to the device's logical block
 * size; 4 KiB is a multiple of every common one (512 or 4096 bytes).
 */
#define FILE_DIRECT_ALIGN 4096u

int file_pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	char *p = buf;

	while (len > 0) {
		ssize_t n = pread(fd, p, len, (off_t)off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0) {
			errno = ENODATA;
			return -1;
		}
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int file_pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0) {
			errno = EIO;
			return -1;
		}
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int file_io_range(int fd, const char *obj, uint64_t off, uint64_t len, bool need_writable,
                  struct rp_error *err)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return rp_error_set_os(err, file_errno_code(errno), errno, "stat of object '%s'",
		                       obj);
	if (need_writable && (st.st_mode & 0222) == 0)
		return rp_error_set(err, RP_EPERM, "object '%s' is read-only", obj);
	if (off > (uint64_t)st.st_size || len > (uint64_t)st.st_size - off)
		return rp_error_set(err, RP_EINVAL,
		                    "range %llu+%llu is beyond the end of object '%s' (%lld bytes)",
		                    (unsigned long long)off, (unsigned long long)len, obj,
		                    (long long)st.st_size);
	return 0;
}

int file_read(struct array *a, const char *obj, uint64_t off, void *buf, size_t len,
              struct rp_error *err)
{
	int rc, fd = -1;

	rc = file_obj_open(&fd, a, obj, O_RDONLY, err);
	if (rc < 0)
		return rc;
	rc = file_io_range(fd, obj, off, len, false, err);
	if (rc == 0 && file_pread_full(fd, buf, len, off) < 0)
		rc = rp_error_set_os(err, errno == ENODATA ? RP_EIO : file_errno_code(errno), errno,
		                     "read of object '%s' at %llu", obj, (unsigned long long)off);
	(void)close(fd);
	return rc;
}

/*
 * Direct (O_DIRECT) read of [@off, @off + @len), all aligned; returns 1 when the filesystem or
 * device refuses direct I/O for it (EINVAL: no O_DIRECT support, or a larger alignment), so the
 * caller reads it through the page cache instead.
 */
static int io_read_direct(struct array *a, const char *obj, uint64_t off, char *buf, size_t len,
                          struct rp_error *err)
{
	struct rp_error e;
	int rc, fd = -1;

	rp_error_clear(&e);
	rc = file_obj_open(&fd, a, obj, O_RDONLY | O_DIRECT, &e);
	if (rc < 0) {
		if (e.os_errno == EINVAL)
			return 1;
		return rp_error_set_os(err, rc, e.os_errno, "%s", e.msg);
	}
	rc = file_io_range(fd, obj, off, len, false, err);
	if (rc == 0 && file_pread_full(fd, buf, len, off) < 0) {
		if (errno == EINVAL)
			rc = 1;
		else
			rc = rp_error_set_os(
			        err, errno == ENODATA ? RP_EIO : file_errno_code(errno), errno,
			        "read of object '%s' at %llu", obj, (unsigned long long)off);
	}
	(void)close(fd);
	return rc;
}

/*
 * Read that leaves the page cache alone: the aligned middle of the range goes straight from the
 * device into @buf (O_DIRECT), the unaligned head and tail (and everything, when @buf is not
 * aligned like @off or the filesystem refuses direct I/O) through file_read. Correct whatever
 * is cached: a direct read writes back dirty cached pages of its range first.
 */
int file_read_uncached(struct array *a, const char *obj, uint64_t off, void *buf, size_t len,
                       struct rp_error *err)
{
	char *p = buf;
	uint64_t head = (off + FILE_DIRECT_ALIGN - 1) / FILE_DIRECT_ALIGN * FILE_DIRECT_ALIGN;
	uint64_t tail = (off + len) / FILE_DIRECT_ALIGN * FILE_DIRECT_ALIGN;
	int rc;

	if (off + len < off)
		return rp_error_set(err, RP_EINVAL, "range %llu+%zu of object '%s' overflows",
		                    (unsigned long long)off, len, obj);
	if (tail <= head || ((uintptr_t)p + (head - off)) % FILE_DIRECT_ALIGN != 0)
		return file_read(a, obj, off, buf, len, err);
	rc = io_read_direct(a, obj, head, p + (head - off), (size_t)(tail - head), err);
	if (rc < 0)
		return rc;
	if (rc > 0)
		return file_read(a, obj, off, buf, len, err);
	if (head > off) {
		rc = file_read(a, obj, off, p, (size_t)(head - off), err);
		if (rc < 0)
			return rc;
	}
	if (off + len > tail)
		rc = file_read(a, obj, tail, p + (tail - off), (size_t)(off + len - tail), err);
	return rc;
}

int file_write(struct array *a, const char *obj, uint64_t off, const void *buf, size_t len,
               struct rp_error *err)
{
	int rc, fd = -1;

	rc = file_obj_open(&fd, a, obj, O_WRONLY, err);
	if (rc < 0)
		return rc;
	rc = file_io_range(fd, obj, off, len, true, err);
	if (rc < 0)
		goto out;
	file_csum_drop(a, obj); /* the object is live now: its map no longer describes it */
	if (file_pwrite_full(fd, buf, len, off) < 0) {
		rc = rp_error_set_os(err, file_errno_code(errno), errno,
		                     "write of object '%s' at %llu", obj, (unsigned long long)off);
		goto out;
	}
	/*
	 * Without reflink, large writes (the data mover's 4 MiB chunks) start their write-back
	 * now, so the final ->flush does not find a whole LUN of dirty pages to write at once.
	 * Only a hint: an I/O error still surfaces at that flush's fsync. Not on reflink arrays:
	 * there the hint made the writer do the filesystem's allocation and submission itself,
	 * and a 1 GiB copy by the mover on xfs took 0.6-0.7 s instead of 0.38-0.39 s (the engine's
	 * background flusher starts the write-back there; docs/benchmarks.md).
	 */
	if (len >= FILE_WRITEBACK_MIN && !(file_priv(a)->caps & ARRAY_CAP_REFLINK))
		(void)sync_file_range(fd, (off_t)off, (off_t)len, SYNC_FILE_RANGE_WRITE);
out:
	(void)close(fd);
	return rc;
}

int file_punch(struct array *a, const char *obj, uint64_t off, uint64_t len, struct rp_error *err)
{
	int rc, fd = -1;

	rc = file_obj_open(&fd, a, obj, O_WRONLY, err);
	if (rc < 0)
		return rc;
	rc = file_io_range(fd, obj, off, len, true, err);
	if (rc < 0 || len == 0)
		goto out;
	file_csum_drop(a, obj);
	if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) < 0)
		rc = rp_error_set_os(err, file_errno_code(errno), errno,
		                     "punch of object '%s' at %llu+%llu", obj,
		                     (unsigned long long)off, (unsigned long long)len);
out:
	(void)close(fd);
	return rc;
}

int file_flush(struct array *a, const char *obj, struct rp_error *err)
{
	int rc, fd = -1;

	rc = file_obj_open(&fd, a, obj, O_RDONLY, err);
	if (rc < 0)
		return rc;
	if (fsync(fd) < 0)
		rc = rp_error_set_os(err, file_errno_code(errno), errno, "fsync of object '%s'",
		                     obj);
	(void)close(fd);
	return rc;
}

/* Feeds @len zero bytes into the hash without reading (holes). */
static void hash_zeros(XXH3_state_t *st, const void *zeros, size_t zlen, uint64_t len)
{
	while (len > 0) {
		size_t n = len < zlen ? (size_t)len : zlen;

		(void)XXH3_128bits_update(st, zeros, n);
		len -= n;
	}
}

/*
 * XXH128 of the whole content, streamed in FILE_HASH_BUF pieces. Holes (SEEK_HOLE) are hashed
 * as zeros from memory, so a sparse 100 GiB LUN costs hashing time, not reading time.
 */
int file_checksum(char out[40], struct array *a, const char *obj, struct rp_error *err)
{
	XXH3_state_t *st = NULL;
	XXH128_hash_t h;
	char *buf = NULL, *zeros = NULL;
	struct stat sb;
	uint64_t pos = 0, size;
	int rc, fd = -1;

	rc = file_obj_open(&fd, a, obj, O_RDONLY, err);
	if (rc < 0)
		return rc;
	if (fstat(fd, &sb) < 0) {
		rc = rp_error_set_os(err, file_errno_code(errno), errno, "stat of object '%s'",
		                     obj);
		goto out;
	}
	size = (uint64_t)sb.st_size;
	buf = rp_malloc(FILE_HASH_BUF);
	zeros = rp_calloc(1, FILE_HASH_BUF);
	st = XXH3_createState();
	if (!buf || !zeros || !st) {
		rc = rp_error_set(err, RP_ERROR, "out of memory");
		goto out;
	}
	(void)XXH3_128bits_reset(st);
	while (pos < size) {
		off_t data = lseek(fd, (off_t)pos, SEEK_DATA);
		off_t hole;
		uint64_t end;

		if (data < 0) {
			if (errno != ENXIO) {
				rc = rp_error_set_os(err, file_errno_code(errno), errno,
				                     "SEEK_DATA in object '%s'", obj);
				goto out;
			}
			data = (off_t)size; /* only a hole up to the end */
		}
		hash_zeros(st, zeros, FILE_HASH_BUF, (uint64_t)data - pos);
		pos = (uint64_t)data;
		if (pos >= size)
			break;
		hole = lseek(fd, (off_t)pos, SEEK_HOLE);
		end = hole < 0 ? size : (uint64_t)hole;
		if (end > size)
			end = size;
		while (pos < end) {
			size_t n = end - pos < FILE_HASH_BUF ? (size_t)(end - pos) : FILE_HASH_BUF;

			if (file_pread_full(fd, buf, n, pos) < 0) {
				rc = rp_error_set_os(err, RP_EIO, errno,
				                     "read of object '%s' at %llu", obj,
				                     (unsigned long long)pos);
				goto out;
			}
			(void)XXH3_128bits_update(st, buf, n);
			pos += n;
		}
	}
	h = XXH3_128bits_digest(st);
	(void)snprintf(out, 40, "%016llx%016llx", (unsigned long long)h.high64,
	               (unsigned long long)h.low64);
out:
	if (st)
		(void)XXH3_freeState(st);
	rp_free(zeros);
	rp_free(buf);
	(void)close(fd);
	return rc;
}

/* SPDX-License-Identifier: MIT */
/*
 * file_clone.c - point-in-time copies of objects: FICLONE (reflink, O(extents)) where the
 * array's filesystem has it, else a sparse-aware copy that also writes the block checksum map
 * <obj>.csum used by changed_extents on non-reflink filesystems.
 *
 * Checksum map file: struct csum_hdr, then nblocks little-endian u64 sums, one per 4 KiB block
 * (the last block zero-padded). A block that reads as zeros (hole or zero data) has sum 0, so
 * maps of sparse objects are sparse files. The header names the image it describes (inode,
 * size, mtime) and the boot it was written in; a map that does not match its image, or comes
 * from an earlier boot, is stale and ignored (recomputed from the data). The boot check is what
 * lets a copy skip fsync: unflushed blocks can only be lost by a crash, i.e. in another boot.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "file.h"

#define CSUM_MAGIC "RPCSUM\0\1"
#define CSUM_VERSION 2u

struct csum_hdr {
	char magic[8];
	uint32_t version;
	uint32_t block;
	uint64_t size;
	uint64_t ino;
	int64_t mtime_sec;
	int64_t mtime_nsec;
	uint64_t nblocks;
	char boot_id[40]; /* /proc/sys/kernel/random/boot_id, NUL-terminated */
};

static uint64_t csum_zero_hash;

/* The current boot's id; "" if unknown (then maps never validate: always recomputed). */
static void csum_boot_id(char out[40])
{
	ssize_t n;
	int fd;

	memset(out, 0, 40);
	fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	n = read(fd, out, 39);
	(void)close(fd);
	if (n <= 0) {
		memset(out, 0, 40);
		return;
	}
	out[n] = '\0';
	if (n > 0 && out[n - 1] == '\n')
		out[n - 1] = '\0';
}

uint64_t file_zero_block_hash(void)
{
	if (csum_zero_hash == 0) {
		static const char zero[FILE_BLOCK];

		csum_zero_hash = XXH3_64bits(zero, sizeof(zero));
	}
	return csum_zero_hash;
}

/* Sum of one block: 0 for a zero block, never 0 otherwise. */
static uint64_t csum_block(const void *p, size_t len)
{
	static const char zero[FILE_BLOCK];
	uint64_t h;

	if (len < FILE_BLOCK) {
		char tmp[FILE_BLOCK];

		memcpy(tmp, p, len);
		memset(tmp + len, 0, FILE_BLOCK - len);
		h = XXH3_64bits(tmp, FILE_BLOCK);
	} else {
		h = XXH3_64bits(p, FILE_BLOCK);
	}
	if (h == file_zero_block_hash() && memcmp(p, zero, len) == 0)
		return 0;
	return h == 0 ? 1 : h;
}

static uint64_t csum_nblocks(uint64_t size)
{
	return (size + FILE_BLOCK - 1) / FILE_BLOCK;
}

void file_csum_map_dispose(struct file_csum_map *m)
{
	if (!m)
		return;
	rp_freep(&m->sums);
	rp_freep(&m->dirty);
	m->size = 0;
	m->nblocks = 0;
	m->nchunks = 0;
}

int file_csum_map_init(struct file_csum_map *m, uint64_t size)
{
	m->size = size;
	m->nblocks = csum_nblocks(size);
	m->nchunks = (m->nblocks + FILE_CSUM_CHUNK - 1) / FILE_CSUM_CHUNK;
	/* calloc: the untouched (zero) parts of a big sparse map cost no memory. */
	m->sums = rp_calloc(m->nblocks ? m->nblocks : 1, sizeof(uint64_t));
	m->dirty = rp_calloc(m->nchunks ? m->nchunks : 1, 1);
	if (!m->sums || !m->dirty) {
		file_csum_map_dispose(m);
		return -1;
	}
	return 0;
}

static int walk_write(int dst, const void *p, size_t len, uint64_t off, const char *obj,
                      struct rp_error *err)
{
	if (file_pwrite_full(dst, p, len, off) < 0)
		return rp_error_set_os(err, file_errno_code(errno), errno,
		                       "write of the copy of '%s'", obj);
	return 0;
}

/*
 * Reads every data range of @src in [@from, @to) (holes are skipped: their sums stay 0), fills
 * the map's sums and, when @dst >= 0, writes the non-zero blocks to @dst at the same offsets;
 * with @old (the map of what @dst holds already, same size), only those whose sum differs.
 * @from and @to are block-aligned (or @to is the object size). *@written adds the bytes written.
 */
static int csum_walk_range(int src, int dst, struct file_csum_map *m,
                           const struct file_csum_map *old, uint64_t from, uint64_t to,
                           const char *obj, uint64_t *written, struct rp_error *err)
{
	uint64_t size = to;
	char *buf = NULL;
	uint64_t pos = from;
	int rc = 0;

	buf = rp_malloc(FILE_IO_BUF);
	if (!buf)
		return rp_error_set(err, RP_ERROR, "out of memory");
	while (pos < size) {
		off_t data = lseek(src, (off_t)pos, SEEK_DATA);
		off_t hole;
		uint64_t end;

		if (data < 0) {
			if (errno == ENXIO)
				break;
			rc = rp_error_set_os(err, file_errno_code(errno), errno,
			                     "SEEK_DATA in object '%s'", obj);
			goto out;
		}
		hole = lseek(src, data, SEEK_HOLE);
		end = hole < 0 ? size : (uint64_t)hole;
		if (end > size)
			end = size;
		/* Whole blocks; a block shared with the previous range is not read again. */
		if ((uint64_t)data / FILE_BLOCK * FILE_BLOCK > pos)
			pos = (uint64_t)data / FILE_BLOCK * FILE_BLOCK;
		end = (end + FILE_BLOCK - 1) / FILE_BLOCK * FILE_BLOCK;
		if (end > size)
			end = size;
		while (pos < end) {
			size_t n = end - pos < FILE_IO_BUF ? (size_t)(end - pos) : FILE_IO_BUF;
			size_t off, run_start = 0;
			bool in_run = false;

			if (file_pread_full(src, buf, n, pos) < 0) {
				rc = rp_error_set_os(err, RP_EIO, errno,
				                     "read of object '%s' at %llu", obj,
				                     (unsigned long long)pos);
				goto out;
			}
			for (off = 0; off < n; off += FILE_BLOCK) {
				size_t bl = n - off < FILE_BLOCK ? n - off : FILE_BLOCK;
				uint64_t s = csum_block(buf + off, bl);
				bool want;

				m->sums[(pos + off) / FILE_BLOCK] = s;
				if (s != 0)
					m->dirty[(pos + off) / FILE_BLOCK / FILE_CSUM_CHUNK] = 1;
				if (dst < 0)
					continue;
				want = s != 0 && (!old || old->sums[(pos + off) / FILE_BLOCK] != s);
				if (want && !in_run) {
					in_run = true;
					run_start = off;
				} else if (!want && in_run) {
					in_run = false;
					rc = walk_write(dst, buf + run_start, off - run_start,
					                pos + run_start, obj, err);
					*written += off - run_start;
					if (rc < 0)
						goto out;
				}
			}
			if (in_run) {
				rc = walk_write(dst, buf + run_start, n - run_start,
				                pos + run_start, obj, err);
				*written += n - run_start;
				if (rc < 0)
					goto out;
			}
			/*
			 * The copy is flushed by its caller before a row names it: start the
			 * write-back now so that flush finds little left (only a hint; an I/O
			 * error surfaces at the flush).
			 */
			if (dst >= 0)
				(void)sync_file_range(dst, (off_t)pos, (off_t)n,
				                      SYNC_FILE_RANGE_WRITE);
			pos += n;
		}
	}
out:
	rp_free(buf);
	return rc;
}

/* The second half of a parallel walk (csum_walk). */
struct csum_half {
	int src, dst;
	struct file_csum_map *m;
	const struct file_csum_map *old;
	uint64_t from, to, written;
	const char *obj;
	struct rp_error err;
	int rc;
};

static void *csum_half_main(void *arg)
{
	struct csum_half *h = arg;

	rp_error_clear(&h->err);
	h->rc = csum_walk_range(h->src, h->dst, h->m, h->old, h->from, h->to, h->obj, &h->written,
	                        &h->err);
	return NULL;
}

/*
 * csum_walk_range over the whole object. From 1 GiB on, the two halves (split at a map chunk
 * boundary, so the threads never touch the same `dirty` byte) run in two threads: a copy is
 * bound by one core's copying into the page cache (read, hash, write), and two cores take a
 * 1 GiB copy from ~265 to ~175 ms here (medians of 5). Both threads use the same descriptors:
 * pread/pwrite carry their offsets, and lseek(SEEK_DATA/SEEK_HOLE) returns its result (the
 * shared file position it also sets is never read).
 */
static int csum_walk(int src, int dst, struct file_csum_map *m, const struct file_csum_map *old,
                     const char *obj, uint64_t *written, struct rp_error *err)
{
	const uint64_t chunk = (uint64_t)FILE_CSUM_CHUNK * FILE_BLOCK;
	struct csum_half h;
	pthread_t th;
	uint64_t mid = m->size / 2 / chunk * chunk, w = 0;
	int rc;

	if (!written)
		written = &w;
	if (mid == 0)
		return csum_walk_range(src, dst, m, old, 0, m->size, obj, written, err);
	(void)file_zero_block_hash(); /* initialised before the threads share it */
	memset(&h, 0, sizeof(h));
	h.src = src;
	h.dst = dst;
	h.m = m;
	h.old = old;
	h.from = mid;
	h.to = m->size;
	h.obj = obj;
	if (pthread_create(&th, NULL, csum_half_main, &h) != 0)
		return csum_walk_range(src, dst, m, old, 0, m->size, obj, written, err);
	rc = csum_walk_range(src, dst, m, old, 0, mid, obj, written, err);
	(void)pthread_join(th, NULL);
	*written += h.written;
	if (rc == 0 && h.rc < 0)
		rc = rp_error_set(err, h.rc, "%s", h.err.msg);
	return rc;
}

static int csum_map_write(struct array *a, const char *obj, int img_fd,
                          const struct file_csum_map *m, struct rp_error *err)
{
	struct file_array *fa = file_priv(a);
	char name[FILE_NAME_MAX], tmp[FILE_NAME_MAX];
	struct csum_hdr hdr;
	struct stat st;
	uint64_t c;
	int rc, fd = -1;

	rc = file_name(name, sizeof(name), obj, FILE_CSUM_SUFFIX, err);
	if (rc == 0)
		rc = file_name(tmp, sizeof(tmp), obj, FILE_CSUM_SUFFIX ".tmp", err);
	if (rc < 0)
		return rc;
	if (fstat(img_fd, &st) < 0)
		return rp_error_set_os(err, file_errno_code(errno), errno, "stat of object '%s'",
		                       obj);
	memset(&hdr, 0, sizeof(hdr));
	memcpy(hdr.magic, CSUM_MAGIC, sizeof(hdr.magic));
	hdr.version = CSUM_VERSION;
	hdr.block = FILE_BLOCK;
	hdr.size = m->size;
	hdr.ino = (uint64_t)st.st_ino;
	hdr.mtime_sec = (int64_t)st.st_mtim.tv_sec;
	hdr.mtime_nsec = (int64_t)st.st_mtim.tv_nsec;
	hdr.nblocks = m->nblocks;
	csum_boot_id(hdr.boot_id);

	fd = openat(fa->data_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return rp_error_set_os(err, file_errno_code(errno), errno,
		                       "cannot write the checksum map of '%s'", obj);
	if (ftruncate(fd, (off_t)(sizeof(hdr) + m->nblocks * sizeof(uint64_t))) < 0 ||
	    file_pwrite_full(fd, &hdr, sizeof(hdr), 0) < 0)
		goto os_err;
	/* Chunks of all-zero sums (holes) stay holes in the map file. */
	for (c = 0; c < m->nchunks; c++) {
		uint64_t i = c * FILE_CSUM_CHUNK;
		uint64_t n = m->nblocks - i < FILE_CSUM_CHUNK ? m->nblocks - i : FILE_CSUM_CHUNK;

		if (!m->dirty[c])
			continue;
		if (file_pwrite_full(fd, m->sums + i, n * sizeof(uint64_t),
		                     sizeof(hdr) + i * sizeof(uint64_t)) < 0)
			goto os_err;
	}
	if (close(fd) < 0) {
		fd = -1;
		goto os_err;
	}
	fd = -1;
	if (renameat(fa->data_fd, tmp, fa->data_fd, name) < 0)
		goto os_err;
	return 0;
os_err:
	rc = rp_error_set_os(err, file_errno_code(errno), errno,
	                     "cannot write the checksum map of '%s'", obj);
	if (fd >= 0)
		(void)close(fd);
	(void)unlinkat(fa->data_fd, tmp, 0);
	return rc;
}

/* Loads the stored map of @obj if it matches the image open as @img_fd; 1 = loaded, 0 = none. */
static int csum_map_load(struct file_csum_map *out, struct array *a, const char *obj, int img_fd)
{
	struct file_array *fa = file_priv(a);
	char name[FILE_NAME_MAX];
	struct file_csum_map m = { 0 };
	struct csum_hdr hdr;
	struct stat st, ms;
	char boot[40];
	uint64_t pos, end;
	int fd = -1, ok = 0;

	if (file_name(name, sizeof(name), obj, FILE_CSUM_SUFFIX, NULL) < 0)
		return 0;
	fd = openat(fa->data_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return 0;
	if (fstat(img_fd, &st) < 0 || fstat(fd, &ms) < 0 ||
	    file_pread_full(fd, &hdr, sizeof(hdr), 0) < 0)
		goto out;
	if (memcmp(hdr.magic, CSUM_MAGIC, sizeof(hdr.magic)) != 0 || hdr.version != CSUM_VERSION ||
	    hdr.block != FILE_BLOCK || hdr.size != (uint64_t)st.st_size ||
	    hdr.ino != (uint64_t)st.st_ino || hdr.mtime_sec != (int64_t)st.st_mtim.tv_sec ||
	    hdr.mtime_nsec != (int64_t)st.st_mtim.tv_nsec ||
	    hdr.nblocks != csum_nblocks(hdr.size) || hdr.boot_id[39] != '\0' ||
	    (uint64_t)ms.st_size != sizeof(hdr) + hdr.nblocks * sizeof(uint64_t))
		goto out;
	csum_boot_id(boot);
	if (!boot[0] || strcmp(boot, hdr.boot_id) != 0)
		goto out; /* written before a reboot: its blocks may not have reached the disk */
	pos = sizeof(hdr);
	end = sizeof(hdr) + hdr.nblocks * sizeof(uint64_t);
	if (file_csum_map_init(&m, hdr.size) < 0)
		goto out;
	/* Only the data ranges of the map file: its holes are runs of zero sums. */
	while (pos < end) {
		off_t data = lseek(fd, (off_t)pos, SEEK_DATA), hole;
		uint64_t from, to, i;

		if (data < 0)
			break; /* ENXIO: holes to the end */
		hole = lseek(fd, data, SEEK_HOLE);
		from = (uint64_t)data < sizeof(hdr) ? sizeof(hdr) : (uint64_t)data;
		to = hole < 0 || (uint64_t)hole > end ? end : (uint64_t)hole;
		from = from / sizeof(uint64_t) * sizeof(uint64_t);
		to = (to + sizeof(uint64_t) - 1) / sizeof(uint64_t) * sizeof(uint64_t);
		if (to > end)
			to = end;
		if (to > from) {
			if (file_pread_full(fd, (char *)m.sums + (from - sizeof(hdr)), to - from,
			                    from) < 0)
				goto out;
			for (i = (from - sizeof(hdr)) / sizeof(uint64_t) / FILE_CSUM_CHUNK;
			     i <= (to - sizeof(hdr) - 1) / sizeof(uint64_t) / FILE_CSUM_CHUNK; i++)
				m.dirty[i] = 1;
		}
		pos = to > (uint64_t)data ? to : (uint64_t)data + 1;
	}
	*out = m;
	m = (struct file_csum_map){ 0 }; /* now owned by @out */
	ok = 1;
out:
	file_csum_map_dispose(&m);
	(void)close(fd);
	return ok;
}

int file_csum_map_get(struct file_csum_map *out, struct array *a, const char *obj,
                      struct rp_error *err)
{
	struct file_csum_map m = { 0 };
	struct stat st;
	int rc, fd = -1;

	rc = file_obj_open(&fd, a, obj, O_RDONLY, err);
	if (rc < 0)
		return rc;
	if (csum_map_load(out, a, obj, fd) == 1)
		goto out;
	if (fstat(fd, &st) < 0) {
		rc = rp_error_set_os(err, file_errno_code(errno), errno, "stat of object '%s'",
		                     obj);
		goto out;
	}
	if (file_csum_map_init(&m, (uint64_t)st.st_size) < 0) {
		rc = rp_error_set(err, RP_ERROR, "out of memory");
		goto out;
	}
	rc = csum_walk(fd, -1, &m, NULL, obj, NULL, err);
	if (rc < 0) {
		file_csum_map_dispose(&m);
		goto out;
	}
	*out = m;
out:
	(void)close(fd);
	return rc;
}

bool file_reflink_probe(int data_fd)
{
	char block[FILE_BLOCK];
	int src, dst;
	bool ok = false;

	src = openat(data_fd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (src < 0)
		return false;
	dst = openat(data_fd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (dst < 0)
		goto out;
	memset(block, 0x5a, sizeof(block));
	if (file_pwrite_full(src, block, sizeof(block), 0) == 0 && ioctl(dst, FICLONE, src) == 0)
		ok = true;
	(void)close(dst);
out:
	(void)close(src);
	return ok;
}

/* Sparse-aware copy of @src_fd into the empty @dst_fd, writing the checksum map of @dst. */
static int clone_copy(struct array *a, const char *src, int src_fd, const char *dst, int dst_fd,
                      struct rp_error *err)
{
	struct file_csum_map m = { 0 };
	struct stat st;
	int rc;

	if (fstat(src_fd, &st) < 0)
		return rp_error_set_os(err, file_errno_code(errno), errno, "stat of object '%s'",
		                       src);
	if (file_csum_map_init(&m, (uint64_t)st.st_size) < 0)
		return rp_error_set(err, RP_ERROR, "out of memory");
	if (ftruncate(dst_fd, st.st_size) < 0) {
		rc = rp_error_set_os(err, file_errno_code(errno), errno, "cannot size object '%s'",
		                     dst);
		goto out;
	}
	rc = csum_walk(src_fd, dst_fd, &m, NULL, src, NULL, err);
	if (rc < 0)
		goto out;
	/*
	 * No fsync of the map: it records the boot (see the top of the file). The copy's data is
	 * made durable by the caller (model_obj_persist) before any row names it.
	 */
	rc = csum_map_write(a, dst, dst_fd, &m, err);
out:
	file_csum_map_dispose(&m);
	return rc;
}

/*
 * FICLONE of @src_fd into @dst_fd: 0 when done, 1 when the filesystem cannot for this file
 * (e.g. an inline extent: the caller copies instead), or an error (ENOSPC, EIO).
 */
static int clone_reflink(int dst_fd, int src_fd, const char *src, const char *dst,
                         struct rp_error *err)
{
	if (ioctl(dst_fd, FICLONE, src_fd) == 0)
		return 0;
	if (errno == EOPNOTSUPP || errno == EXDEV || errno == EINVAL || errno == ENOTTY)
		return 1;
	return rp_error_set_os(err, file_errno_code(errno), errno, "reflink of object '%s' to '%s'",
	                       src, dst);
}

/* Creates the new image file @dname of object @dst (must not exist) for a clone's data. */
static int clone_dst_create(int *fd, struct file_array *fa, const char *dname, const char *dst,
                            struct rp_error *err)
{
	*fd = openat(fa->data_fd, dname, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (*fd >= 0)
		return 0;
	if (errno == EEXIST)
		return rp_error_set(err, RP_EEXISTS, "object '%s' already exists", dst);
	return rp_error_set_os(err, file_errno_code(errno), errno, "create of object '%s'", dst);
}

int file_clone(struct array *a, const char *src, const char *dst, struct rp_error *err)
{
	struct file_array *fa = file_priv(a);
	char dname[FILE_NAME_MAX];
	int rc, src_fd = -1, dst_fd = -1;

	rc = file_name(dname, sizeof(dname), dst, FILE_IMG_SUFFIX, err);
	if (rc < 0)
		return rc;
	rc = file_obj_open(&src_fd, a, src, O_RDONLY, err);
	if (rc < 0)
		return rc;
	rc = clone_dst_create(&dst_fd, fa, dname, dst, err);
	if (rc < 0)
		goto out;
	file_csum_drop(a, dst);
	if (fa->caps & ARRAY_CAP_REFLINK) {
		rc = clone_reflink(dst_fd, src_fd, src, dst, err);
		if (rc == 0)
			goto out;
		if (rc < 0)
			goto err_unlink;
	}
	rc = clone_copy(a, src, src_fd, dst, dst_fd, err);
	if (rc < 0)
		goto err_unlink;
	goto out;

err_unlink:
	(void)unlinkat(fa->data_fd, dname, 0);
	file_csum_drop(a, dst);
out:
	if (dst_fd >= 0)
		(void)close(dst_fd);
	(void)close(src_fd);
	return rc;
}

/* Punches the blocks of @fd that read as zeros in @m but not in @old (the map of what it held). */
static int refresh_punch(int fd, const struct file_csum_map *m, const struct file_csum_map *old,
                         const char *obj, struct rp_error *err)
{
	uint64_t b = 0, run = 0;
	bool in_run = false;

	while (b <= m->nblocks) {
		/* a chunk that held only zeros has nothing to punch */
		bool held = b < m->nblocks && old->dirty[b / FILE_CSUM_CHUNK];
		bool want = held && m->sums[b] == 0 && old->sums[b] != 0;

		if (want && !in_run) {
			in_run = true;
			run = b;
		} else if (!want && in_run) {
			uint64_t end = b * FILE_BLOCK < m->size ? b * FILE_BLOCK : m->size;

			in_run = false;
			if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			              (off_t)(run * FILE_BLOCK),
			              (off_t)(end - run * FILE_BLOCK)) < 0)
				return rp_error_set_os(err, file_errno_code(errno), errno,
				                       "punch in object '%s'", obj);
		}
		if (b < m->nblocks && !held) {
			b = (b / FILE_CSUM_CHUNK + 1) * FILE_CSUM_CHUNK;
			if (b > m->nblocks)
				b = m->nblocks;
		} else {
			b++;
		}
	}
	return 0;
}

/*
 * ->refresh: makes the existing object @dst what ->clone(@src) into a new object would make.
 * Without reflink, when @dst has a valid checksum map (it is an earlier copy made by this
 * driver and not written since) and the same size, @src is read and hashed as for a copy but
 * only the blocks whose sum differs from @dst's are written, and blocks that now read as zeros
 * are punched; the map is rewritten for the new contents. Otherwise @dst is emptied and copied
 * in full (with reflink: FICLONE). Decisions come from the one read of @src, so a @src being
 * written meanwhile gives the same kind of copy as ->clone. *@written: bytes written (may be
 * NULL).
 */
int file_refresh(struct array *a, const char *src, const char *dst, uint64_t *written,
                 struct rp_error *err)
{
	struct file_array *fa = file_priv(a);
	struct file_csum_map old = { 0 }, m = { 0 };
	struct stat ss, ds;
	bool have_old = false;
	uint64_t w = 0;
	int rc, src_fd = -1, dst_fd = -1;

	if (written)
		*written = 0;
	if (strcmp(src, dst) == 0)
		return rp_error_set(err, RP_EINVAL, "cannot refresh object '%s' from itself", src);
	rc = file_obj_open(&src_fd, a, src, O_RDONLY, err);
	if (rc < 0)
		return rc;
	rc = file_obj_open(&dst_fd, a, dst, O_RDWR, err);
	if (rc < 0)
		goto out;
	if (fstat(src_fd, &ss) < 0 || fstat(dst_fd, &ds) < 0) {
		rc = rp_error_set_os(err, file_errno_code(errno), errno, "stat of object '%s'",
		                     dst);
		goto out;
	}
	have_old = !(fa->caps & ARRAY_CAP_REFLINK) && ss.st_size == ds.st_size &&
	           csum_map_load(&old, a, dst, dst_fd) == 1;
	file_csum_drop(a, dst); /* from here on the map would not describe it */
	if (!have_old && ftruncate(dst_fd, 0) < 0)
		goto os_err;
	if (fa->caps & ARRAY_CAP_REFLINK) {
		rc = clone_reflink(dst_fd, src_fd, src, dst, err);
		if (rc <= 0)
			goto out;
	}
	if (ftruncate(dst_fd, ss.st_size) < 0)
		goto os_err;
	if (file_csum_map_init(&m, (uint64_t)ss.st_size) < 0) {
		rc = rp_error_set(err, RP_ERROR, "out of memory");
		goto out;
	}
	rc = csum_walk(src_fd, dst_fd, &m, have_old ? &old : NULL, src, &w, err);
	if (rc == 0 && have_old)
		rc = refresh_punch(dst_fd, &m, &old, dst, err);
	if (rc == 0)
		rc = csum_map_write(a, dst, dst_fd, &m, err);
	goto out;
os_err:
	rc = rp_error_set_os(err, file_errno_code(errno), errno, "cannot size object '%s'", dst);
out:
	if (written)
		*written = w;
	file_csum_map_dispose(&m);
	file_csum_map_dispose(&old);
	if (dst_fd >= 0)
		(void)close(dst_fd);
	(void)close(src_fd);
	return rc;
}

/*
 * ->clone_from: reflink of @src of array @src_a into new object @dst of @a, when both arrays
 * are file arrays with reflink on one filesystem (the same st_dev). O(extents): the blocks are
 * shared copy-on-write, so @dst is a point-in-time copy like a local clone. RP_ENOTSUPPORTED,
 * with nothing created, otherwise; the caller then copies the data itself.
 */
int file_clone_from(struct array *a, const char *dst, struct array *src_a, const char *src,
                    struct rp_error *err)
{
	struct file_array *fa = file_priv(a);
	char dname[FILE_NAME_MAX];
	struct stat ss, ds;
	int rc, src_fd = -1, dst_fd = -1;

	if (src_a->ops != a->ops || !(fa->caps & ARRAY_CAP_REFLINK) ||
	    !(file_priv(src_a)->caps & ARRAY_CAP_REFLINK))
		return rp_error_set(
		        err, RP_ENOTSUPPORTED,
		        "object '%s' cannot be shared: not two file arrays with reflink", src);
	rc = file_name(dname, sizeof(dname), dst, FILE_IMG_SUFFIX, err);
	if (rc < 0)
		return rc;
	rc = file_obj_open(&src_fd, src_a, src, O_RDONLY, err);
	if (rc < 0)
		return rc;
	if (fstat(src_fd, &ss) < 0 || fstat(fa->data_fd, &ds) < 0) {
		rc = rp_error_set_os(err, file_errno_code(errno), errno, "stat of object '%s'",
		                     src);
		goto out;
	}
	if (ss.st_dev != ds.st_dev) {
		rc = rp_error_set(err, RP_ENOTSUPPORTED,
		                  "object '%s' cannot be shared: the arrays are on different "
		                  "filesystems",
		                  src);
		goto out;
	}
	rc = clone_dst_create(&dst_fd, fa, dname, dst, err);
	if (rc < 0)
		goto out;
	file_csum_drop(a, dst);
	if (ioctl(dst_fd, FICLONE, src_fd) == 0)
		goto out;
	if (errno == EOPNOTSUPP || errno == EXDEV || errno == EINVAL || errno == ENOTTY)
		rc = rp_error_set_os(err, RP_ENOTSUPPORTED, errno,
		                     "object '%s' cannot be shared with array '%s'", src, a->root);
	else
		rc = rp_error_set_os(err, file_errno_code(errno), errno,
		                     "reflink of object '%s' to '%s'", src, dst);
	(void)unlinkat(fa->data_fd, dname, 0);
out:
	if (dst_fd >= 0)
		(void)close(dst_fd);
	(void)close(src_fd);
	return rc;
}

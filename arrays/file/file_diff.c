/* SPDX-License-Identifier: MIT */
/*
 * file_diff.c - changed_extents of the file array. No base: the allocated ranges of the object
 * (SEEK_DATA/SEEK_HOLE). Reflink arrays: compare the FIEMAP extent maps of base and object (a
 * range whose physical mapping is the same on both sides is shared, hence unchanged; no data is
 * read). Other arrays: compare per-4 KiB-block checksum maps (file_clone.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "file.h"

#define FIEMAP_BATCH 1024u

/* Coalesces adjacent ranges with the same zero flag before handing them to the caller. */
struct emitter {
	array_extent_cb cb;
	void *payload;
	struct array_extent pending;
	bool have;
	int stop; /* the callback's non-zero return */
};

static int emit_flush(struct emitter *e)
{
	if (e->have && e->stop == 0) {
		e->stop = e->cb(&e->pending, e->payload);
		e->have = false;
	}
	return e->stop;
}

static int emit(struct emitter *e, uint64_t off, uint64_t len, bool zero)
{
	if (len == 0)
		return 0;
	if (e->have && e->pending.zero == zero && e->pending.offset + e->pending.length == off) {
		e->pending.length += len;
		return 0;
	}
	if (emit_flush(e) != 0)
		return e->stop;
	e->pending.offset = off;
	e->pending.length = len;
	e->pending.zero = zero;
	e->have = true;
	return 0;
}

/* Final flush; maps the callback's stop value to the walk's result. */
static int emit_finish(struct emitter *e, struct rp_error *err)
{
	(void)emit_flush(e);
	if (e->stop < 0)
		return rp_error_set(err, e->stop,
		                    "changed-extent walk stopped by its consumer (%s)",
		                    rp_code_name(e->stop));
	return 0;
}

/* base == NULL: every allocated range. */
static int diff_allocated(struct array *a, const char *obj, struct emitter *e, struct rp_error *err)
{
	struct stat st;
	uint64_t pos = 0, size;
	int rc, fd = -1;

	rc = file_obj_open(&fd, a, obj, O_RDONLY, err);
	if (rc < 0)
		return rc;
	if (fstat(fd, &st) < 0) {
		rc = rp_error_set_os(err, file_errno_code(errno), errno, "stat of object '%s'",
		                     obj);
		goto out;
	}
	size = (uint64_t)st.st_size;
	while (pos < size && e->stop == 0) {
		off_t data = lseek(fd, (off_t)pos, SEEK_DATA);
		off_t hole;
		uint64_t end;

		if (data < 0) {
			if (errno == ENXIO)
				break;
			rc = rp_error_set_os(err, file_errno_code(errno), errno,
			                     "SEEK_DATA in object '%s'", obj);
			goto out;
		}
		hole = lseek(fd, data, SEEK_HOLE);
		end = hole < 0 ? size : (uint64_t)hole;
		if (end > size)
			end = size;
		if ((uint64_t)data >= end)
			break;
		(void)emit(e, (uint64_t)data, end - (uint64_t)data, false);
		pos = end;
	}
	rc = emit_finish(e, err);
out:
	(void)close(fd);
	return rc;
}

void file_fmap_dispose(struct file_fmap *m)
{
	rp_freep(&m->ext);
	m->n = m->cap = 0;
}

int file_fmap_get(struct file_fmap *m, int fd, const char *obj, uint64_t start, uint64_t len,
                  bool sync, struct rp_error *err)
{
	struct fiemap *fm = NULL;
	uint64_t end = len > FIEMAP_MAX_OFFSET - start ? FIEMAP_MAX_OFFSET : start + len;
	/* a short range holds few extents (at most one per 512-byte block, plus a partial one) */
	uint32_t batch = len / 512 + 2 < FIEMAP_BATCH ? (uint32_t)(len / 512 + 2) : FIEMAP_BATCH;
	bool last = false;
	int rc = 0;

	fm = rp_calloc(1, sizeof(*fm) + batch * sizeof(struct fiemap_extent));
	if (!fm)
		return rp_error_set(err, RP_ERROR, "out of memory");
	while (!last && start < end) {
		uint32_t i;

		memset(fm, 0, sizeof(*fm));
		fm->fm_start = start;
		fm->fm_length = end - start;
		fm->fm_flags = sync ? FIEMAP_FLAG_SYNC : 0;
		fm->fm_extent_count = batch;
		sync = false;
		if (ioctl(fd, FS_IOC_FIEMAP, fm) < 0) {
			rc = rp_error_set_os(err, file_errno_code(errno), errno,
			                     "FIEMAP of object '%s'", obj);
			goto out;
		}
		if (fm->fm_mapped_extents == 0)
			break;
		if (m->n + fm->fm_mapped_extents > m->cap) {
			size_t cap = m->cap ? m->cap * 2 : batch;
			struct fiemap_extent *p;

			while (cap < m->n + fm->fm_mapped_extents)
				cap *= 2;
			p = rp_realloc(m->ext, cap * sizeof(*p));
			if (!p) {
				rc = rp_error_set(err, RP_ERROR, "out of memory");
				goto out;
			}
			m->ext = p;
			m->cap = cap;
		}
		for (i = 0; i < fm->fm_mapped_extents; i++) {
			const struct fiemap_extent *x = &fm->fm_extents[i];

			m->ext[m->n++] = *x;
			if (x->fe_flags & FIEMAP_EXTENT_LAST)
				last = true;
		}
		start = fm->fm_extents[fm->fm_mapped_extents - 1].fe_logical +
		        fm->fm_extents[fm->fm_mapped_extents - 1].fe_length;
	}
out:
	rp_free(fm);
	return rc;
}

/* What one side looks like over a segment: no data (hole/unwritten) or data at a mapping. */
struct side {
	const struct fiemap_extent *x; /* NULL: hole */
};

static bool ext_reads_zero(const struct fiemap_extent *x)
{
	return !x || (x->fe_flags & FIEMAP_EXTENT_UNWRITTEN);
}

static bool ext_opaque(const struct fiemap_extent *x)
{
	return x->fe_flags &
	       (FIEMAP_EXTENT_UNKNOWN | FIEMAP_EXTENT_DELALLOC | FIEMAP_EXTENT_DATA_INLINE |
	        FIEMAP_EXTENT_DATA_TAIL | FIEMAP_EXTENT_NOT_ALIGNED);
}

/* Same data on both sides over the overlap: same physical placement (shared by a reflink). */
static bool ext_same(const struct fiemap_extent *b, const struct fiemap_extent *o)
{
	if (ext_opaque(b) || ext_opaque(o))
		return false;
	if ((b->fe_flags | o->fe_flags) & FIEMAP_EXTENT_ENCODED) /* compressed: whole extents */
		return (b->fe_flags & o->fe_flags & FIEMAP_EXTENT_ENCODED) &&
		       b->fe_logical == o->fe_logical && b->fe_physical == o->fe_physical &&
		       b->fe_length == o->fe_length;
	return b->fe_physical - b->fe_logical == o->fe_physical - o->fe_logical;
}

/*
 * Sweeps both maps over [0, size of obj). At @pos each side is inside an extent or in a hole;
 * the segment runs to the next boundary of either side.
 */
static int diff_fiemap(const struct file_fmap *bm, const struct file_fmap *om, uint64_t bsize,
                       uint64_t osize, struct emitter *e)
{
	size_t ib = 0, io = 0;
	uint64_t pos = 0;

	while (pos < osize && e->stop == 0) {
		const struct fiemap_extent *bx = NULL, *ox = NULL;
		uint64_t end = osize, bound;
		bool changed, zero;

		while (ib < bm->n && bm->ext[ib].fe_logical + bm->ext[ib].fe_length <= pos)
			ib++;
		while (io < om->n && om->ext[io].fe_logical + om->ext[io].fe_length <= pos)
			io++;
		if (ib < bm->n) {
			bound = bm->ext[ib].fe_logical;
			if (bound <= pos) {
				bx = &bm->ext[ib];
				bound = bx->fe_logical + bx->fe_length;
			}
			if (bound < end)
				end = bound;
		}
		if (io < om->n) {
			bound = om->ext[io].fe_logical;
			if (bound <= pos) {
				ox = &om->ext[io];
				bound = ox->fe_logical + ox->fe_length;
			}
			if (bound < end)
				end = bound;
		}
		if (bx && pos >= bsize)
			bx = NULL; /* beyond the base's end it reads as zeros */
		if (pos < bsize && end > bsize)
			end = bsize;
		zero = ext_reads_zero(ox);
		if (zero)
			changed = !ext_reads_zero(bx);
		else
			changed = !bx || ext_reads_zero(bx) || !ext_same(bx, ox);
		if (changed)
			(void)emit(e, pos, end - pos, zero);
		pos = end;
	}
	return e->stop;
}

static int diff_reflink(struct array *a, const char *base, const char *obj, struct emitter *e,
                        struct rp_error *err)
{
	struct file_fmap bm = { 0 }, om = { 0 };
	struct stat bst, ost;
	int rc, bfd = -1, ofd = -1;

	rc = file_obj_open(&bfd, a, base, O_RDONLY, err);
	if (rc < 0)
		return rc;
	rc = file_obj_open(&ofd, a, obj, O_RDONLY, err);
	if (rc < 0)
		goto out;
	if (fstat(bfd, &bst) < 0 || fstat(ofd, &ost) < 0) {
		rc = rp_error_set_os(err, file_errno_code(errno), errno,
		                     "stat of objects '%s', '%s'", base, obj);
		goto out;
	}
	rc = file_fmap_get(&bm, bfd, base, 0, FIEMAP_MAX_OFFSET, true, err);
	if (rc == 0)
		rc = file_fmap_get(&om, ofd, obj, 0, FIEMAP_MAX_OFFSET, true, err);
	if (rc < 0)
		goto out;
	(void)diff_fiemap(&bm, &om, (uint64_t)bst.st_size, (uint64_t)ost.st_size, e);
	rc = emit_finish(e, err);
out:
	file_fmap_dispose(&bm);
	file_fmap_dispose(&om);
	if (ofd >= 0)
		(void)close(ofd);
	(void)close(bfd);
	return rc;
}

static int diff_csum(struct array *a, const char *base, const char *obj, struct emitter *e,
                     struct rp_error *err)
{
	struct file_csum_map bm = { 0 }, om = { 0 };
	uint64_t i;
	int rc;

	rc = file_csum_map_get(&bm, a, base, err);
	if (rc < 0)
		return rc;
	rc = file_csum_map_get(&om, a, obj, err);
	if (rc < 0)
		goto out;
	for (i = 0; i < om.nblocks && e->stop == 0; i++) {
		uint64_t c = i / FILE_CSUM_CHUNK, b;

		/* A chunk that is all zeros on both sides has nothing to compare. */
		if (i % FILE_CSUM_CHUNK == 0 && !om.dirty[c] && (c >= bm.nchunks || !bm.dirty[c])) {
			i += FILE_CSUM_CHUNK - 1;
			continue;
		}
		b = i < bm.nblocks ? bm.sums[i] : 0;
		uint64_t off = i * FILE_BLOCK;
		uint64_t len = om.size - off < FILE_BLOCK ? om.size - off : FILE_BLOCK;

		/* Blocks past the base's end compare with zeros, as a grown base reads. */
		if (b != om.sums[i])
			(void)emit(e, off, len, om.sums[i] == 0);
	}
	rc = emit_finish(e, err);
out:
	file_csum_map_dispose(&bm);
	file_csum_map_dispose(&om);
	return rc;
}

int file_changed_extents(struct array *a, const char *base, const char *obj, array_extent_cb cb,
                         void *payload, struct rp_error *err)
{
	struct emitter e = { .cb = cb, .payload = payload };
	int rc;

	if (!cb)
		return rp_error_set(err, RP_EINVAL, "changed_extents needs a callback");
	rc = array_obj_name_check(obj, err);
	if (rc < 0)
		return rc;
	if (!base)
		return diff_allocated(a, obj, &e, err);
	rc = array_obj_name_check(base, err);
	if (rc < 0)
		return rc;
	if (file_priv(a)->caps & ARRAY_CAP_EXTENT_DIFF)
		return diff_reflink(a, base, obj, &e, err);
	return diff_csum(a, base, obj, &e, err);
}

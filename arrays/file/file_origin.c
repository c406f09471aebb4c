/* SPDX-License-Identifier: MIT */
/*
 * file_origin.c - ->read_snapshot of the file array: a snapshot's data copied from the page
 * cache of the live object it was cloned from (its origin) where that is provably the same
 * data, else read from the snapshot itself (->read_uncached).
 *
 * Why a range copied from the origin is the snapshot's data (xfs with reflink; nowhere else):
 * - The clone made every block of the origin a block of the snapshot too. A block shared by a
 *   reflink is never written in place: a write to the origin goes to a new block, and the
 *   origin's mapping moves there when the write is written back. The snapshot keeps the old
 *   block, which cannot be freed and reused while the snapshot holds it.
 * - The range is first copied from the origin's cached pages (buffered pread).
 * - Then FIEMAP with FIEMAP_FLAG_SYNC maps the range. xfs runs it under the inode's IO lock
 *   held shared, so no buffered write is half done (they hold it exclusively from before
 *   their copy into a page until the page is dirty); it writes back every dirty page (pages
 *   written through a shared mapping are marked dirty before the store lands) and waits for
 *   the write-back, whose end moves the mapping to the new blocks.
 * - If every byte of the range still maps to the snapshot's own block at the same offset,
 *   nothing written since the clone reached the copied pages. A direct-I/O write still in
 *   flight writes a new block and leaves the old one (and its cached page) as it was.
 * - Independently, the origin's ctime must still be older than the snapshot's birth
 *   (origin_unchanged_since): a second proof, which also covers a failed write-back.
 * Holes and unwritten or delayed extents never qualify: a hole can come back after a write and
 * a punch, so it proves nothing. Any difference marks the origin written (sticky: the check's
 * write-back is not repeated against a busy LUN) and the range is read from the snapshot. Only
 * pages already cached are used (mincore), so a cold origin costs no read of it and its cache
 * stays as it was (after ORIGIN_COLD_MAX such ranges in a row it is not tried again).
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "file.h"

/*
 * After this many ranges in a row whose origin pages were not all cached, the origin is not
 * tried again in that copy: on a LUN nobody caches (a VM writing with direct I/O) each try
 * costs two opens and a mincore for nothing, ~20 us per 4 KiB range of an incremental.
 */
#define ORIGIN_COLD_MAX 64u

/* FIEMAP flags that do not change what a mapping means for the data. */
#define ORIGIN_PLAIN_FLAGS (FIEMAP_EXTENT_LAST | FIEMAP_EXTENT_SHARED | FIEMAP_EXTENT_MERGED)

/* The extent of @m that holds @pos, searching from *@i on; NULL in a hole. */
static const struct fiemap_extent *origin_ext_at(const struct file_fmap *m, size_t *i, uint64_t pos)
{
	while (*i < m->n && m->ext[*i].fe_logical + m->ext[*i].fe_length <= pos)
		(*i)++;
	if (*i < m->n && m->ext[*i].fe_logical <= pos &&
	    (m->ext[*i].fe_flags & ~ORIGIN_PLAIN_FLAGS) == 0)
		return &m->ext[*i];
	return NULL;
}

/*
 * Does every byte of [@off, @off + @len) map to written data of @s, and, with @o, to the same
 * block in @o? @o NULL: only the first half (the snapshot side can qualify at all).
 */
static bool origin_same_blocks(const struct file_fmap *s, const struct file_fmap *o, uint64_t off,
                               uint64_t len)
{
	size_t is = 0, io = 0;
	uint64_t pos = off, end = off + len;

	while (pos < end) {
		const struct fiemap_extent *x = origin_ext_at(s, &is, pos), *y = NULL;
		uint64_t next;

		if (!x)
			return false;
		next = x->fe_logical + x->fe_length;
		if (o) {
			y = origin_ext_at(o, &io, pos);
			if (!y || x->fe_physical - x->fe_logical != y->fe_physical - y->fe_logical)
				return false;
			if (y->fe_logical + y->fe_length < next)
				next = y->fe_logical + y->fe_length;
		}
		pos = next;
	}
	return true;
}

/* Is every page of [@off, @off + @len) of @fd in the page cache? (No I/O, no page faults.) */
static bool origin_cached(int fd, uint64_t off, size_t len)
{
	long pg = sysconf(_SC_PAGESIZE);
	uint64_t start;
	size_t span, npages, k;
	unsigned char *vec = NULL;
	void *map;
	bool all = false;

	if (pg <= 0)
		return false;
	start = off / (uint64_t)pg * (uint64_t)pg;
	span = (size_t)(off + len - start);
	npages = (span + (size_t)pg - 1) / (size_t)pg;
	map = mmap(NULL, span, PROT_READ, MAP_SHARED, fd, (off_t)start);
	if (map == MAP_FAILED)
		return false;
	vec = rp_malloc(npages);
	if (vec && mincore(map, span, vec) == 0) {
		for (k = 0; k < npages && (vec[k] & 1); k++)
			;
		all = k == npages;
	}
	rp_free(vec);
	(void)munmap(map, span);
	return all;
}

/*
 * Was @ofd (the origin) changed since @sfd (its snapshot) was created? Every write (buffered,
 * mapped at its first store after a write-back, direct) updates the ctime before its data
 * lands, and timestamps handed out never go backwards, so a ctime strictly before the
 * snapshot's birth proves no write began since the clone. This also covers what the extent map
 * cannot: a copy-on-write write-back that failed leaves the old mapping under a page holding
 * the new data. Without a birth time (or on any error) nothing is proven.
 */
static bool origin_unchanged_since(int ofd, int sfd)
{
	struct statx o, s;

	if (statx(ofd, "", AT_EMPTY_PATH, STATX_CTIME, &o) < 0 ||
	    statx(sfd, "", AT_EMPTY_PATH, STATX_BTIME, &s) < 0 || !(o.stx_mask & STATX_CTIME) ||
	    !(s.stx_mask & STATX_BTIME))
		return false;
	return o.stx_ctime.tv_sec < s.stx_btime.tv_sec ||
	       (o.stx_ctime.tv_sec == s.stx_btime.tv_sec &&
	        o.stx_ctime.tv_nsec < s.stx_btime.tv_nsec);
}

int file_read_snapshot(struct array *a, const char *snap, struct array_origin *origin, uint64_t off,
                       void *buf, size_t len, struct rp_error *err)
{
	struct file_fmap sm = { 0 }, om = { 0 };
	struct stat st;
	int rc, sfd = -1, ofd = -1;

	if (origin && origin->obj) {
		rc = array_obj_name_check(origin->obj, err);
		if (rc < 0)
			return rc;
	}
	if (!origin || !origin->obj || origin->written || origin->cold >= ORIGIN_COLD_MAX ||
	    !file_priv(a)->origin_reads || len == 0 || off + len < off)
		return file_read_uncached(a, snap, off, buf, len, err);
	rc = file_obj_open(&sfd, a, snap, O_RDONLY, err);
	if (rc < 0)
		return rc;
	rc = file_io_range(sfd, snap, off, len, false, err);
	if (rc < 0)
		goto out;
	if (file_obj_open(&ofd, a, origin->obj, O_RDONLY, NULL) < 0 || fstat(ofd, &st) < 0 ||
	    (uint64_t)st.st_size < off + len) {
		origin->written = true; /* gone or shorter: it no longer holds the snapshot */
		goto snapshot;
	}
	if (!origin_cached(ofd, off, len)) {
		origin->cold++;
		goto snapshot;
	}
	origin->cold = 0;
	rc = file_fmap_get(&sm, sfd, snap, off, len, false, err);
	if (rc < 0)
		goto out;
	if (!origin_same_blocks(&sm, NULL, off, len))
		goto snapshot; /* a hole or unwritten range in the snapshot: proves nothing */
	if (file_pread_full(ofd, buf, len, off) < 0 ||
	    file_fmap_get(&om, ofd, origin->obj, off, len, true, NULL) < 0 ||
	    !origin_same_blocks(&sm, &om, off, len) || !origin_unchanged_since(ofd, sfd)) {
		origin->written = true;
		goto snapshot;
	}
	origin->bytes += len;
	goto out;
snapshot:
	rc = file_read_uncached(a, snap, off, buf, len, err);
out:
	file_fmap_dispose(&om);
	file_fmap_dispose(&sm);
	if (ofd >= 0)
		(void)close(ofd);
	(void)close(sfd);
	return rc;
}

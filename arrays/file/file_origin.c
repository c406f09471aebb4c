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
 *
 * An incremental copy reads thousands of 4 KiB ranges, so what does not change between them
 * is kept for the copy in @origin->priv (struct origin_keep, freed by ->origin_done): both
 * objects open, the snapshot's size and birth, the origin mapped once for mincore, the extent
 * map buffers. Holding the origin open proves as much as opening it by name each time: the
 * proof is about the blocks the open file maps, whatever name it has by then.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
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

/* What one copy keeps across its ->read_snapshot calls (@origin->priv). */
struct origin_keep {
	char *snap, *obj; /* the names it was opened for */
	int sfd, ofd;     /* the snapshot; the origin, or -1 when it could not be opened */
	uint64_t ssize;   /* the snapshot's size (snapshots do not change) */
	struct statx_timestamp birth; /* the snapshot's; valid with @has_birth */
	bool has_birth;
	unsigned char *map; /* the origin mapped (never touched: for mincore), or NULL */
	size_t map_len;
	unsigned char *vec; /* mincore's answer, @vec_len pages */
	size_t vec_len;
	struct file_fmap sm, om; /* extent map buffers, refilled by each call */
};

static void origin_keep_free(struct origin_keep *k)
{
	if (!k)
		return;
	if (k->map)
		(void)munmap(k->map, k->map_len);
	if (k->ofd >= 0)
		(void)close(k->ofd);
	if (k->sfd >= 0)
		(void)close(k->sfd);
	file_fmap_dispose(&k->sm);
	file_fmap_dispose(&k->om);
	rp_free(k->vec);
	rp_free(k->snap);
	rp_free(k->obj);
	rp_free(k);
}

void file_origin_done(struct array *a, struct array_origin *origin)
{
	(void)a;
	if (!origin)
		return;
	origin_keep_free(origin->priv);
	origin->priv = NULL;
}

/*
 * The kept state of @origin for snapshot @snap, opened on first use (or when the names
 * changed). The snapshot must open; an origin that does not is recorded as such (ofd -1).
 */
static int origin_keep_get(struct origin_keep **out, struct array *a, const char *snap,
                           struct array_origin *origin, struct rp_error *err)
{
	struct origin_keep *k = origin->priv;
	struct stat st;
	struct statx sx;
	int rc;

	if (k && strcmp(k->snap, snap) == 0 && strcmp(k->obj, origin->obj) == 0) {
		*out = k;
		return 0;
	}
	file_origin_done(a, origin);
	k = rp_calloc(1, sizeof(*k));
	if (!k)
		return rp_error_set(err, RP_ERROR, "out of memory");
	k->sfd = k->ofd = -1;
	k->snap = rp_strdup(snap);
	k->obj = rp_strdup(origin->obj);
	if (!k->snap || !k->obj) {
		rc = rp_error_set(err, RP_ERROR, "out of memory");
		goto fail;
	}
	rc = file_obj_open(&k->sfd, a, snap, O_RDONLY, err);
	if (rc < 0)
		goto fail;
	if (fstat(k->sfd, &st) < 0) {
		rc = rp_error_set_os(err, file_errno_code(errno), errno, "stat of object '%s'",
		                     snap);
		goto fail;
	}
	k->ssize = (uint64_t)st.st_size;
	if (statx(k->sfd, "", AT_EMPTY_PATH, STATX_BTIME, &sx) == 0 &&
	    (sx.stx_mask & STATX_BTIME)) {
		k->birth = sx.stx_btime;
		k->has_birth = true;
	}
	if (file_obj_open(&k->ofd, a, origin->obj, O_RDONLY, NULL) == 0 && k->ssize > 0 &&
	    k->ssize <= SIZE_MAX) {
		void *m = mmap(NULL, (size_t)k->ssize, PROT_READ, MAP_SHARED, k->ofd, 0);

		if (m != MAP_FAILED) {
			k->map = m;
			k->map_len = (size_t)k->ssize;
		}
	}
	origin->priv = k;
	*out = k;
	return 0;
fail:
	origin_keep_free(k);
	return rc;
}

/* Is every page of [@off, @off + @len) of the origin in the page cache? (No I/O, no faults.) */
static bool origin_cached(struct origin_keep *k, uint64_t off, size_t len)
{
	long pg = sysconf(_SC_PAGESIZE);
	uint64_t start;
	size_t span, npages, i;

	if (pg <= 0 || !k->map || off + len > k->map_len)
		return false;
	start = off / (uint64_t)pg * (uint64_t)pg;
	span = (size_t)(off + len - start);
	npages = (span + (size_t)pg - 1) / (size_t)pg;
	if (npages > k->vec_len) {
		unsigned char *v = rp_realloc(k->vec, npages);

		if (!v)
			return false;
		k->vec = v;
		k->vec_len = npages;
	}
	if (mincore(k->map + start, span, k->vec) < 0)
		return false;
	for (i = 0; i < npages; i++)
		if (!(k->vec[i] & 1))
			return false;
	return true;
}

/*
 * Was @ofd (the origin) changed since the snapshot was created? Every write (buffered,
 * mapped at its first store after a write-back, direct) updates the ctime before its data
 * lands, and timestamps handed out never go backwards, so a ctime strictly before the
 * snapshot's birth proves no write began since the clone. This also covers what the extent map
 * cannot: a copy-on-write write-back that failed leaves the old mapping under a page holding
 * the new data. Without a birth time (or on any error) nothing is proven.
 */
static bool origin_unchanged_since(const struct origin_keep *k)
{
	struct statx o;

	if (!k->has_birth || statx(k->ofd, "", AT_EMPTY_PATH, STATX_CTIME, &o) < 0 ||
	    !(o.stx_mask & STATX_CTIME))
		return false;
	return o.stx_ctime.tv_sec < k->birth.tv_sec ||
	       (o.stx_ctime.tv_sec == k->birth.tv_sec && o.stx_ctime.tv_nsec < k->birth.tv_nsec);
}

int file_read_snapshot(struct array *a, const char *snap, struct array_origin *origin, uint64_t off,
                       void *buf, size_t len, struct rp_error *err)
{
	struct origin_keep *k = NULL;
	struct stat st;
	int rc;

	if (origin && origin->obj) {
		rc = array_obj_name_check(origin->obj, err);
		if (rc < 0)
			return rc;
	}
	if (!origin || !origin->obj || origin->written || origin->cold >= ORIGIN_COLD_MAX ||
	    !file_priv(a)->origin_reads || len == 0 || off + len < off)
		return file_read_uncached(a, snap, off, buf, len, err);
	rc = origin_keep_get(&k, a, snap, origin, err);
	if (rc < 0)
		return rc;
	if (off > k->ssize || len > k->ssize - off)
		return rp_error_set(err, RP_EINVAL,
		                    "range %llu+%llu is beyond the end of object '%s' (%llu bytes)",
		                    (unsigned long long)off, (unsigned long long)len, snap,
		                    (unsigned long long)k->ssize);
	if (k->ofd < 0 || fstat(k->ofd, &st) < 0 || (uint64_t)st.st_size < off + len) {
		origin->written = true; /* gone or shorter: it no longer holds the snapshot */
		goto snapshot;
	}
	if (!origin_cached(k, off, len)) {
		origin->cold++;
		goto snapshot;
	}
	origin->cold = 0;
	k->sm.n = k->om.n = 0;
	rc = file_fmap_get(&k->sm, k->sfd, snap, off, len, false, err);
	if (rc < 0)
		return rc;
	if (!origin_same_blocks(&k->sm, NULL, off, len))
		goto snapshot; /* a hole or unwritten range in the snapshot: proves nothing */
	if (file_pread_full(k->ofd, buf, len, off) < 0 ||
	    file_fmap_get(&k->om, k->ofd, origin->obj, off, len, true, NULL) < 0 ||
	    !origin_same_blocks(&k->sm, &k->om, off, len) || !origin_unchanged_since(k)) {
		origin->written = true;
		goto snapshot;
	}
	origin->bytes += len;
	return 0;
snapshot:
	return file_read_uncached(a, snap, off, buf, len, err);
}

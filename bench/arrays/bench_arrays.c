/* SPDX-License-Identifier: MIT */
/*
 * bench_arrays.c - file array benchmarks on one directory: snapshot (clone) time of 1/10/100 GiB
 * LUNs, full sync of 1 GiB vs cp, incremental sync after 1% of 4 KiB blocks changed vs rsync.
 * Prints markdown tables. "Sync" here is the driver-level data mover (see mover_* below).
 */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "array_ops.h"
#include "bench_common.h"

#define REPS 5
#define SNAP_REPS 5

static struct array *src_arr, *dst_arr;

static void obj_path(char *buf, size_t len, struct array *a, const char *obj)
{
	struct rp_error e = { 0 };

	if (a->ops->obj_path(buf, len, a, obj, &e) != 0)
		die("obj_path", &e);
}

static void warm_obj(struct array *a, const char *obj)
{
	char p[2048];

	obj_path(p, sizeof(p), a, obj);
	warm_path(p);
}

static void obj_delete(struct array *a, const char *obj)
{
	struct rp_error e = { 0 };

	if (a->ops->obj_delete(a, obj, &e) != 0)
		die("obj_delete", &e);
}

static void obj_create(struct array *a, const char *obj, uint64_t size)
{
	struct rp_error e = { 0 };

	if (a->ops->obj_create(a, obj, size, &e) != 0)
		die("obj_create", &e);
}

static void obj_write(struct array *a, const char *obj, uint64_t off, const void *buf, size_t len)
{
	struct rp_error e = { 0 };

	if (a->ops->write(a, obj, off, buf, len, &e) != 0)
		die("write", &e);
}

static void obj_flush(struct array *a, const char *obj)
{
	struct rp_error e = { 0 };

	if (a->ops->flush(a, obj, &e) != 0)
		die("flush", &e);
}

static void obj_clone(struct array *a, const char *src, const char *dst)
{
	struct rp_error e = { 0 };

	if (a->ops->clone(a, src, dst, &e) != 0)
		die("clone", &e);
}

static void obj_sum(char out[40], struct array *a, const char *obj)
{
	struct rp_error e = { 0 };

	if (a->ops->checksum(out, a, obj, &e) != 0)
		die("checksum", &e);
}

/* ------------------------------------------------------------------------------------------ */
/* The driver-level data mover: what a sync does with the driver interface.                    */

struct mover {
	struct array *from, *to;
	const char *from_obj, *to_obj;
	uint64_t bytes;  /* data bytes read and written */
	uint64_t zeroed; /* bytes applied as punches */
	unsigned extents;
};

static int mover_cb(const struct array_extent *ext, void *payload)
{
	struct mover *m = payload;
	struct rp_error e = { 0 };
	uint64_t off = ext->offset, end = ext->offset + ext->length;

	m->extents++;
	if (ext->zero) {
		if (m->to->ops->punch(m->to, m->to_obj, off, ext->length, &e) != 0)
			die("punch", &e);
		m->zeroed += ext->length;
		return 0;
	}
	while (off < end) {
		size_t n = end - off < MOVE_BUF ? (size_t)(end - off) : MOVE_BUF;

		if (m->from->ops->read(m->from, m->from_obj, off, iobuf, n, &e) != 0)
			die("read", &e);
		if (m->to->ops->write(m->to, m->to_obj, off, iobuf, n, &e) != 0)
			die("write", &e);
		off += n;
		m->bytes += n;
	}
	return 0;
}

static void mover_run(struct mover *m, const char *base)
{
	struct rp_error e = { 0 };

	if (m->from->ops->changed_extents(m->from, base, m->from_obj, mover_cb, m, &e) != 0)
		die("changed_extents", &e);
}

/* ------------------------------------------------------------------------------------------ */

/* Counts reported ranges. */
static int count_cb(const struct array_extent *ext, void *payload)
{
	(void)ext;
	(*(unsigned *)payload)++;
	return 0;
}

static void bench_snapshots(void)
{
	static const struct {
		uint64_t size, data, chunk;
	} cases[] = { { 1 * GIB, 256 * MIB, MIB },
		      { 10 * GIB, 512 * MIB, MIB },
		      { 100 * GIB, 1 * GIB, MIB },
		      { 100 * GIB, 1 * GIB, 4 * MIB } };
	size_t c;

	printf("\n#### Snapshot (clone) of a LUN — %s\n\n", label);
	printf("| LUN size | data written, evenly spread | allocated ranges | clone median "
	       "(min–max) of %d | per 1000 ranges |\n",
	       SNAP_REPS);
	printf("|---|---|---|---|---|\n");
	for (c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		uint64_t chunks = cases[c].data / cases[c].chunk, stride = cases[c].size / chunks,
		         i;
		double t[SNAP_REPS], lo, hi, med;
		char path[2048], cmd_out[64];
		unsigned nranges;
		int r;

		obj_create(src_arr, "lun-snapbench", cases[c].size);
		for (i = 0; i < chunks; i++) {
			fill_random(iobuf, cases[c].chunk);
			obj_write(src_arr, "lun-snapbench", i * stride, iobuf, cases[c].chunk);
		}
		obj_flush(src_arr, "lun-snapbench");
		obj_path(path, sizeof(path), src_arr, "lun-snapbench");
		warm_path(path);
		for (r = 0; r < SNAP_REPS; r++) {
			double t0;

			warm_path(path);
			settle();
			t0 = now_ms();

			obj_clone(src_arr, "lun-snapbench", "snap-snapbench");
			t[r] = now_ms() - t0;
			obj_delete(src_arr, "snap-snapbench");
			unsettle();
		}
		med = median(t, SNAP_REPS);
		lo = t[0];
		hi = t[SNAP_REPS - 1];
		{
			struct rp_error e = { 0 };

			nranges = 0;
			if (src_arr->ops->changed_extents(src_arr, NULL, "lun-snapbench", count_cb,
			                                  &nranges, &e) != 0)
				die("changed_extents", &e);
		}
		(void)snprintf(cmd_out, sizeof(cmd_out), "%llu MiB in %llu × %llu MiB",
		               (unsigned long long)(cases[c].data / MIB),
		               (unsigned long long)chunks,
		               (unsigned long long)(cases[c].chunk / MIB));
		printf("| %llu GiB | %s | %u data ranges | **%.2f ms** (%.2f–%.2f) | %.1f ms |\n",
		       (unsigned long long)(cases[c].size / GIB), cmd_out, nranges, med, lo, hi,
		       nranges ? med * 1000.0 / nranges : 0.0);
		fflush(stdout);
		obj_delete(src_arr, "lun-snapbench");
	}
}

/* 1 GiB LUN of random data in the source array ("lun-sync"). */
static void make_sync_source(void)
{
	uint64_t off;

	obj_create(src_arr, "lun-sync", GIB);
	for (off = 0; off < GIB; off += MOVE_BUF) {
		fill_random(iobuf, MOVE_BUF);
		obj_write(src_arr, "lun-sync", off, iobuf, MOVE_BUF);
	}
	obj_flush(src_arr, "lun-sync");
}

/* The mover: a new target LUN, every allocated range copied, then fsync. */
static double full_mover(const char *src, uint64_t *moved, bool verify)
{
	struct mover m = { src_arr, dst_arr, "lun-sync", "lun-full", 0, 0, 0 };
	char s1[40], s2[40];
	double t0, t;

	warm_path(src);
	settle();
	t0 = now_ms();
	obj_create(dst_arr, "lun-full", GIB);
	mover_run(&m, NULL);
	obj_flush(dst_arr, "lun-full");
	t = now_ms() - t0;
	*moved = m.bytes;
	if (verify) {
		obj_sum(s1, src_arr, "lun-sync");
		obj_sum(s2, dst_arr, "lun-full");
		if (strcmp(s1, s2) != 0) {
			fprintf(stderr, "full sync: checksum mismatch\n");
			exit(1);
		}
	}
	obj_delete(dst_arr, "lun-full");
	unsettle();
	return t;
}

/* cp of the same file on the same disk, also fsynced. */
static double full_cp(const char *src, const char *dst)
{
	warm_path(src);
	return cp_round(src, dst);
}

static void bench_full(void)
{
	double tm[REPS], tc[REPS];
	char src[2048], dst[2048];
	uint64_t moved = 0;
	int r;

	obj_path(src, sizeof(src), src_arr, "lun-sync");
	(void)snprintf(dst, sizeof(dst), "%s/cp-dst.img", dir);
	/* Round -1 warms both paths up and is not counted; the order alternates per round. */
	for (r = -1; r < REPS; r++) {
		int k;

		for (k = 0; k < 2; k++) {
			double t = (k + r) % 2 == 0 ? full_mover(src, &moved, r == 0)
			                            : full_cp(src, dst);

			if (r < 0)
				continue;
			if ((k + r) % 2 == 0)
				tm[r] = t;
			else
				tc[r] = t;
		}
	}
	printf("\n#### Full sync of a 1 GiB LUN (random data) vs cp — %s\n\n", label);
	printf("| method | median of %d (all runs) | MB/s | bytes moved (%% of LUN) |\n", REPS);
	printf("|---|---|---|---|\n");
	{
		double mm = median_of(tm, REPS), mc = median_of(tc, REPS);
		char rb[128];

		printf("| replun mover (changed_extents(NULL) + read/write 4 MiB + fsync) | **%.0f "
		       "ms** "
		       "(%s) | %.0f | %llu (%.1f%%) |\n",
		       mm, runs(rb, sizeof(rb), tm, REPS), GIB / 1e6 / (mm / 1e3),
		       (unsigned long long)moved, 100.0 * (double)moved / GIB);
		printf("| `cp --reflink=never` + fsync | **%.0f ms** (%s) | %.0f | "
		       "%llu "
		       "(100%%) |\n",
		       mc, runs(rb, sizeof(rb), tc, REPS), GIB / 1e6 / (mc / 1e3),
		       (unsigned long long)GIB);
		printf("\nmover speed = **%.0f%%** of cp (target ≥ 90%%)\n", 100.0 * mc / mm);
	}
}

struct inc_result {
	double snap, stage, apply_staged, apply_inplace, commit;
	double staged, inplace; /* totals */
	uint64_t moved;
	unsigned extents;
};

/*
 * One incremental sync as the engine does it on top of the driver: snapshot the source LUN,
 * diff it against the base snapshot and move the changed ranges, then make the new snapshot
 * the base. Two ways of applying on the target are timed on two target LUNs holding the same
 * data: (a) into a staging clone of the target LUN, fsync, rename over it (a readable copy
 * stays until the end); (b) straight into the target LUN, fsync (what rsync --inplace does).
 * The snapshot and the commit (drop old base, rename new snapshot) count in both totals.
 */
static void incremental_once(struct inc_result *res)
{
	struct mover ms = { src_arr, dst_arr, "snap-new", "stage-lun", 0, 0, 0 };
	struct mover mi = { src_arr, dst_arr, "snap-new", "lun-inplace", 0, 0, 0 };
	struct rp_error e = { 0 };
	double t0 = now_ms(), t;

	obj_clone(src_arr, "lun-sync", "snap-new");
	res->snap = now_ms() - t0;

	t = now_ms();
	obj_clone(dst_arr, "lun-dst", "stage-lun");
	res->stage = now_ms() - t;
	t = now_ms();
	mover_run(&ms, "snap-base");
	obj_flush(dst_arr, "stage-lun");
	if (dst_arr->ops->obj_rename(dst_arr, "stage-lun", "lun-dst", &e) != 0)
		die("rename", &e);
	res->apply_staged = now_ms() - t; /* diff + moves + fsync + rename */

	unsettle();
	warm_obj(src_arr, "snap-new");
	warm_obj(src_arr, "snap-base");
	warm_obj(dst_arr, "lun-inplace");
	settle();
	t = now_ms();
	mover_run(&mi, "snap-base");
	obj_flush(dst_arr, "lun-inplace");
	res->apply_inplace = now_ms() - t;

	t = now_ms();
	obj_delete(src_arr, "snap-base");
	if (src_arr->ops->obj_rename(src_arr, "snap-new", "snap-base", &e) != 0)
		die("rename", &e);
	res->commit = now_ms() - t;
	unsettle();
	res->staged = res->snap + res->stage + res->apply_staged + res->commit;
	res->inplace = res->snap + res->apply_inplace + res->commit;
	res->moved = ms.bytes + ms.zeroed;
	res->extents = ms.extents;
	if (mi.bytes != ms.bytes) {
		fprintf(stderr, "incremental sync: the two passes moved different amounts\n");
		exit(1);
	}
}

static void check_same(struct array *a, const char *x, struct array *b, const char *y)
{
	char s1[40], s2[40];

	obj_sum(s1, a, x);
	obj_sum(s2, b, y);
	if (strcmp(s1, s2) != 0) {
		fprintf(stderr, "incremental sync: '%s' and '%s' differ\n", x, y);
		exit(1);
	}
}

static void bench_incremental(void)
{
	struct inc_result res[REPS];
	const uint64_t nblocks = GIB / BLK, nchange = nblocks / 100;
	char rs_src[2048], rs_dst[2048], base_path[2048], rb[128];
	double ts[REPS], ti[REPS], rs[REPS], diffs[REPS], mts, mti, mr;
	uint64_t moved_max = 0, sent_max = 0;
	unsigned char *touched = malloc(nblocks);
	int r, mid = 0;

	if (!touched)
		die("malloc", NULL);
	/* Initial state: both targets = source, base snapshot on the source. */
	{
		struct mover m1 = { src_arr, dst_arr, "lun-sync", "lun-dst", 0, 0, 0 };
		struct mover m2 = { src_arr, dst_arr, "lun-sync", "lun-inplace", 0, 0, 0 };

		obj_create(dst_arr, "lun-dst", GIB);
		obj_create(dst_arr, "lun-inplace", GIB);
		mover_run(&m1, NULL);
		mover_run(&m2, NULL);
		obj_flush(dst_arr, "lun-dst");
		obj_flush(dst_arr, "lun-inplace");
		obj_clone(src_arr, "lun-sync", "snap-base");
	}
	(void)snprintf(rs_dst, sizeof(rs_dst), "%s/rsync-dst.img", dir);
	for (r = 0; r < REPS; r++) {
		uint64_t i, sent = 0;
		unsigned cnt = 0;
		double t0;

		/* 1% of the 4 KiB blocks rewritten with new random data. */
		memset(touched, 0, nblocks);
		for (i = 0; i < nchange; i++) {
			uint64_t b = pick_new_block(touched, nblocks);

			fill_random(iobuf, BLK);
			obj_write(src_arr, "lun-sync", b * BLK, iobuf, BLK);
		}
		obj_flush(src_arr, "lun-sync");
		/* rsync's destination starts as the base content (independent copy, untimed). */
		obj_path(base_path, sizeof(base_path), src_arr, "snap-base");
		copy_synced(base_path, rs_dst);
		/* Diff alone, for the breakdown: a separate snapshot, not counted in the sync. */
		obj_clone(src_arr, "lun-sync", "snap-probe");
		t0 = now_ms();
		{
			struct rp_error e = { 0 };

			if (src_arr->ops->changed_extents(src_arr, "snap-base", "snap-probe",
			                                  count_cb, &cnt, &e) != 0)
				die("changed_extents", &e);
		}
		diffs[r] = now_ms() - t0;
		obj_delete(src_arr, "snap-probe");

		/* Warm every file either side reads, then the replun incremental sync. */
		warm_obj(src_arr, "lun-sync");
		warm_obj(src_arr, "snap-base");
		warm_obj(dst_arr, "lun-dst");
		warm_obj(dst_arr, "lun-inplace");
		settle();
		incremental_once(&res[r]);
		check_same(src_arr, "snap-base", dst_arr, "lun-dst");
		check_same(src_arr, "snap-base", dst_arr, "lun-inplace");

		/* rsync of the same change: source = the new snapshot's content (and its result
		 * checked against it). */
		obj_path(rs_src, sizeof(rs_src), src_arr, "snap-base");
		rs[r] = rsync_round(rs_src, rs_dst, &sent);
		if (sent > sent_max)
			sent_max = sent;
		if (res[r].moved > moved_max)
			moved_max = res[r].moved;
		ts[r] = res[r].staged;
		ti[r] = res[r].inplace;
	}
	(void)unlink(rs_dst);
	obj_delete(src_arr, "snap-base");
	obj_delete(dst_arr, "lun-dst");
	obj_delete(dst_arr, "lun-inplace");

	mts = median_of(ts, REPS);
	mti = median_of(ti, REPS);
	mr = median_of(rs, REPS);
	for (r = 0; r < REPS; r++)
		if (ts[r] == mts)
			mid = r;
	printf("\n#### Incremental sync of a 1 GiB LUN after 1%% of its 4 KiB blocks changed "
	       "(%llu random blocks) vs rsync — %s\n\n",
	       (unsigned long long)nchange, label);
	printf("| method | median of %d (all runs) | vs rsync | bytes moved, max (%% of LUN) |\n",
	       REPS);
	printf("|---|---|---|---|\n");
	printf("| replun mover, staged: snapshot + diff + clone target to stage + apply + fsync + "
	       "rename + commit | **%.0f ms** (%s) | %.1f× | %llu (%.2f%%) |\n",
	       mts, runs(rb, sizeof(rb), ts, REPS), mr / mts, (unsigned long long)moved_max,
	       100.0 * (double)moved_max / GIB);
	printf("| replun mover, in place: snapshot + diff + apply + fsync + commit | **%.0f ms** "
	       "(%s) "
	       "| %.1f× | same |\n",
	       mti, runs(rb, sizeof(rb), ti, REPS), mr / mti);
	printf("| `rsync --inplace --no-whole-file --ignore-times` + fsync | **%.0f ms** (%s) | 1× "
	       "| %llu sent "
	       "(%.2f%%) |\n",
	       mr, runs(rb, sizeof(rb), rs, REPS), (unsigned long long)sent_max,
	       100.0 * (double)sent_max / GIB);
	printf("\nBreakdown of the median staged run: snapshot %.1f ms, stage clone %.1f ms, "
	       "diff+apply+fsync+rename %.1f ms (%u extents), commit (drop old base, rename) %.1f "
	       "ms; in-place apply+fsync %.1f ms; diff alone (median) %.1f ms.\n",
	       res[mid].snap, res[mid].stage, res[mid].apply_staged, res[mid].extents,
	       res[mid].commit, res[mid].apply_inplace, median_of(diffs, REPS));
	free(touched);
}

static void open_arrays(void)
{
	char a[1100], b[1100];
	struct rp_error e = { 0 };

	(void)snprintf(a, sizeof(a), "%s/site-a", dir);
	(void)snprintf(b, sizeof(b), "%s/site-b", dir);
	if (array_create("file", a, &e) != 0 || array_create("file", b, &e) != 0)
		die("array_create", &e);
	if (array_open(&src_arr, "file", a, NULL, &e) != 0 ||
	    array_open(&dst_arr, "file", b, NULL, &e) != 0)
		die("array_open", &e);
}

static void close_arrays(void)
{
	char cmd[2300];

	array_close(src_arr);
	array_close(dst_arr);
	(void)snprintf(cmd, sizeof(cmd), "rm -rf '%s/site-a' '%s/site-b'", dir, dir);
	if (system(cmd) != 0)
		fprintf(stderr, "bench_arrays: cleanup of %s failed\n", dir);
}

int main(int argc, char **argv)
{
	struct array_stat st;
	struct rp_error e = { 0 };
	const char *what = bench_init(argc, argv, "bench_arrays", "snap|full|inc|all");

	open_arrays();
	if (src_arr->ops->stat(&st, src_arr, &e) != 0)
		die("stat", &e);
	printf("\n### %s: %s, reflink %s, %s\n", label, st.fs_type,
	       (st.caps & ARRAY_CAP_REFLINK) ? "yes (FICLONE + FIEMAP diff)"
	                                     : "no (sparse copy + checksum-map diff)",
	       dir);
	if (!strcmp(what, "all") || !strcmp(what, "snap"))
		bench_snapshots();
	if (!strcmp(what, "all") || !strcmp(what, "full") || !strcmp(what, "inc"))
		make_sync_source();
	if (!strcmp(what, "all") || !strcmp(what, "full"))
		bench_full();
	if (!strcmp(what, "all") || !strcmp(what, "inc"))
		bench_incremental();
	close_arrays();
	free(iobuf);
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * bench_sync.c - the engine's sync (rp_sync_start, foreground) between two file arrays on one
 * directory: full sync of a 1 GiB LUN vs cp, incremental sync after 1% of its 4 KiB blocks
 * changed vs rsync --inplace --no-whole-file. Prints markdown tables.
 */
#include <fcntl.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "bench_common.h"
#include "replun/replun.h"

#define FULL_REPS 3
#define INC_REPS 5

static struct rp_array *arr_a, *arr_b;
/* Full syncs share blocks between the arrays (both in DIR) unless REPLUN_SYNC_NO_SHARE is set. */
static bool shared;

static void check(int rc, const char *what, const struct rp_error *err)
{
	if (rc != 0)
		die(what, err);
}

static void lun_path(char *buf, size_t len, struct rp_array *a, const char *id)
{
	struct rp_error e = { 0 };

	check(rp_lun_path(buf, len, a, id, &e), "rp_lun_path", &e);
}

/* Writes @len bytes of random data at 4 MiB granularity through the image file. */
static void fill_lun(const char *path)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	uint64_t off;

	if (fd < 0)
		die(path, NULL);
	for (off = 0; off < GIB; off += MOVE_BUF) {
		fill_random(iobuf, MOVE_BUF);
		if (pwrite(fd, iobuf, MOVE_BUF, (off_t)off) != (ssize_t)MOVE_BUF)
			die(path, NULL);
	}
	if (fsync(fd) < 0)
		die(path, NULL);
	close(fd);
}

/* One foreground sync of device @id (on A); returns ms, writes the finished session. */
static double sync_once(const char *id, struct rp_sync_session *s)
{
	const char *devs[] = { id };
	struct rp_request req = { .devices = devs, .n_devices = 1 };
	struct rp_sync_opts opts = { .foreground = true };
	struct rp_result *res = NULL;
	struct rp_error e = { 0 };
	double t0 = now_ms(), t;

	check(rp_sync_start(&res, arr_a, &req, &opts, &e), "rp_sync_start", &e);
	t = now_ms() - t0;
	if (!res || res->n < 1 || res->items[0].code != 0) {
		fprintf(stderr, "bench_sync: sync item failed: %s\n",
		        res && res->n ? res->items[0].msg : "(no item)");
		exit(1);
	}
	check(rp_sync_get(s, arr_a, res->items[0].session, &e), "rp_sync_get", &e);
	if (s->status != RP_SYNC_COMPLETE) {
		fprintf(stderr, "bench_sync: session %s not complete: %s\n", s->id, s->error);
		exit(1);
	}
	rp_result_free(res);
	return t;
}

/* Number of extents of the file at @path (FIEMAP count only), -1 if unknown. */
static long extent_count(const char *path)
{
	struct fiemap fm;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	long n = -1;

	if (fd < 0)
		return -1;
	memset(&fm, 0, sizeof(fm));
	fm.fm_length = FIEMAP_MAX_OFFSET;
	if (ioctl(fd, FS_IOC_FIEMAP, &fm) == 0)
		n = (long)fm.fm_mapped_extents;
	close(fd);
	return n;
}

static void check_equal(const char *src_id, const char *tgt_id)
{
	char s1[40], s2[40];
	struct rp_error e = { 0 };

	check(rp_lun_checksum(s1, arr_a, src_id, &e), "rp_lun_checksum", &e);
	check(rp_lun_checksum(s2, arr_b, tgt_id, &e), "rp_lun_checksum", &e);
	if (strcmp(s1, s2) != 0) {
		fprintf(stderr, "bench_sync: source and target differ after sync\n");
		exit(1);
	}
}

static void new_lun(struct rp_device *dev, const char *name)
{
	struct rp_lun_create_opts o = { .replicate = true };
	struct rp_error e = { 0 };
	char path[4200];

	check(rp_lun_create(dev, arr_a, name, GIB, &o, &e), "rp_lun_create", &e);
	lun_path(path, sizeof(path), arr_a, dev->id);
	fill_lun(path);
}

static void bench_full(void)
{
	double te[FULL_REPS], tc[FULL_REPS], tmp[FULL_REPS], me, mc;
	uint64_t moved = 0;
	char rb[128], cpdst[1200];
	int r;

	(void)snprintf(cpdst, sizeof(cpdst), "%s/cp-dst.img", dir);
	for (r = -1; r < FULL_REPS; r++) {
		struct rp_device dev;
		struct rp_sync_session s;
		struct rp_error e = { 0 };
		char name[32], src[4200];
		int k;

		(void)snprintf(name, sizeof(name), "full%d", r + 1);
		new_lun(&dev, name);
		lun_path(src, sizeof(src), arr_a, dev.id);
		for (k = 0; k < 2; k++) {
			double t;

			warm_path(src);
			if ((k + r + 2) % 2 == 0) {
				settle();
				t = sync_once(dev.id, &s);
				unsettle();
				moved = s.bytes_transferred;
				check_equal(dev.id, dev.peer_device);
				if (r >= 0)
					te[r] = t;
			} else {
				t = cp_round(src, cpdst);
				if (r >= 0)
					tc[r] = t;
			}
		}
		check(rp_lun_delete(arr_a, dev.id, &e), "rp_lun_delete", &e);
	}
	memcpy(tmp, te, sizeof(tmp));
	me = median(tmp, FULL_REPS);
	memcpy(tmp, tc, sizeof(tmp));
	mc = median(tmp, FULL_REPS);
	printf("\n#### Engine full sync of a 1 GiB LUN (random data) vs cp — %s\n\n", label);
	printf("| method | median of %d (all runs) | MB/s | bytes moved (%% of LUN) |\n",
	       FULL_REPS);
	printf("|---|---|---|---|\n");
	printf("| `rp_sync_start` (foreground): snapshot, plan, %s into a "
	       "staging "
	       "object, fsync, rename, recovery point | **%.0f ms** (%s) | %.0f | %llu (%.1f%%) "
	       "|\n",
	       shared ? "share the snapshot's blocks (reflink, one filesystem)"
	              : "copy allocated ranges",
	       me, runs(rb, sizeof(rb), te, FULL_REPS), GIB / 1e6 / (me / 1e3),
	       (unsigned long long)moved, 100.0 * (double)moved / GIB);
	printf("| `cp --reflink=never` + fsync | **%.0f ms** (%s) | %.0f | %llu (100%%) |\n", mc,
	       runs(rb, sizeof(rb), tc, FULL_REPS), GIB / 1e6 / (mc / 1e3),
	       (unsigned long long)GIB);
	printf("\nengine full sync speed = **%.0f%%** of cp (target ≥ 90%%)\n", 100.0 * mc / me);
}

static void bench_incremental(void)
{
	const uint64_t nblocks = GIB / BLK, nchange = nblocks / 100;
	double te[INC_REPS], tr[INC_REPS], tmp[INC_REPS], me, mr;
	uint64_t moved = 0, sent_max = 0;
	unsigned char *touched = malloc(nblocks);
	char src[4200], tgt[4200], rsdst[1200], rb[128];
	struct rp_device dev;
	struct rp_sync_session s;
	struct rp_error e = { 0 };
	int r, fd;

	if (!touched)
		die("malloc", NULL);
	new_lun(&dev, "inc");
	(void)sync_once(dev.id, &s); /* initial full sync, untimed */
	lun_path(src, sizeof(src), arr_a, dev.id);
	lun_path(tgt, sizeof(tgt), arr_b, dev.peer_device);
	(void)snprintf(rsdst, sizeof(rsdst), "%s/rsync-dst.img", dir);
	for (r = 0; r < INC_REPS; r++) {
		uint64_t i, sent = 0;

		/* rsync's destination = the target's current content (the base), untimed. */
		copy_synced(tgt, rsdst);
		/* 1% of the 4 KiB blocks rewritten through the image file, like a VM would. */
		fd = open(src, O_WRONLY | O_CLOEXEC);
		if (fd < 0)
			die(src, NULL);
		memset(touched, 0, nblocks);
		for (i = 0; i < nchange; i++) {
			uint64_t b = pick_new_block(touched, nblocks);

			fill_random(iobuf, BLK);
			if (pwrite(fd, iobuf, BLK, (off_t)(b * BLK)) != (ssize_t)BLK)
				die(src, NULL);
		}
		if (fsync(fd) < 0)
			die(src, NULL);
		close(fd);

		warm_path(src);
		warm_path(tgt);
		settle();
		te[r] = sync_once(dev.id, &s);
		unsettle();
		moved = s.bytes_transferred > moved ? s.bytes_transferred : moved;
		if (s.full) {
			fprintf(stderr,
			        "bench_sync: expected an incremental sync, got a full one\n");
			exit(1);
		}
		check_equal(dev.id, dev.peer_device);
		if (getenv("BENCH_SYNC_LOG"))
			fprintf(stderr,
			        "bench_sync: round %d: %.0f ms, extents: source %ld, target %ld\n",
			        r + 1, te[r], extent_count(src), extent_count(tgt));

		tr[r] = rsync_round(src, rsdst, &sent);
		if (sent > sent_max)
			sent_max = sent;
	}
	(void)unlink(rsdst);
	check(rp_lun_delete(arr_a, dev.id, &e), "rp_lun_delete", &e);
	memcpy(tmp, te, sizeof(tmp));
	me = median(tmp, INC_REPS);
	memcpy(tmp, tr, sizeof(tmp));
	mr = median(tmp, INC_REPS);
	printf("\n#### Engine incremental sync of a 1 GiB LUN after 1%% of its 4 KiB blocks "
	       "changed "
	       "(%llu random blocks) vs rsync — %s\n\n",
	       (unsigned long long)nchange, label);
	printf("| method | median of %d (all runs) | vs rsync | bytes moved, max (%% of LUN) |\n",
	       INC_REPS);
	printf("|---|---|---|---|\n");
	printf("| `rp_sync_start` (foreground) | **%.0f ms** (%s) | %.1f× | %llu (%.2f%%) |\n", me,
	       runs(rb, sizeof(rb), te, INC_REPS), mr / me, (unsigned long long)moved,
	       100.0 * (double)moved / GIB);
	printf("| `rsync --inplace --no-whole-file --ignore-times` + fsync | **%.0f ms** (%s) | 1× "
	       "| "
	       "%llu sent (%.2f%%) |\n",
	       mr, runs(rb, sizeof(rb), tr, INC_REPS), (unsigned long long)sent_max,
	       100.0 * (double)sent_max / GIB);
	free(touched);
}

int main(int argc, char **argv)
{
	struct rp_error e = { 0 };
	struct rp_array_info info;
	char a[1100], b[1100], cmd[2400];
	const char *what = bench_init(argc, argv, "bench_sync", "full|inc|all");

	scratch_mib = 3584; /* a sync on a plain directory makes three 1 GiB copies */
	/* BENCH_SYNC_LOG=verbose: the engine's phase times on stderr. */
	if (getenv("BENCH_SYNC_LOG") && rp_log_level_parse(getenv("BENCH_SYNC_LOG")) >= 0)
		rp_log_set_sink(rp_log_sink_stderr,
		                (enum rp_log_level)rp_log_level_parse(getenv("BENCH_SYNC_LOG")),
		                NULL);
	(void)snprintf(a, sizeof(a), "%s/eng-a", dir);
	(void)snprintf(b, sizeof(b), "%s/eng-b", dir);
	check(rp_array_init(a, "benchA", NULL, &e), "rp_array_init", &e);
	check(rp_array_init(b, "benchB", NULL, &e), "rp_array_init", &e);
	check(rp_array_open(&arr_a, a, NULL, &e), "rp_array_open", &e);
	check(rp_array_open(&arr_b, b, NULL, &e), "rp_array_open", &e);
	check(rp_array_pair(arr_a, arr_b, &e), "rp_array_pair", &e);
	check(rp_array_info(&info, arr_a, &e), "rp_array_info", &e);
	shared = info.reflink &&
	         !(getenv("REPLUN_SYNC_NO_SHARE") && *getenv("REPLUN_SYNC_NO_SHARE"));
	printf("\n### %s: engine sync (`rp_sync_start`, foreground) on %s, reflink %s\n", label,
	       info.fs_type, info.reflink ? "yes" : "no");
	if (!strcmp(what, "all") || !strcmp(what, "full"))
		bench_full();
	if (!strcmp(what, "all") || !strcmp(what, "inc"))
		bench_incremental();
	rp_array_close(arr_a);
	rp_array_close(arr_b);
	(void)snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s'", a, b);
	if (system(cmd) != 0)
		fprintf(stderr, "bench_sync: cleanup failed\n");
	free(iobuf);
	return 0;
}

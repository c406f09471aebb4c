/* SPDX-License-Identifier: MIT */
/*
 * test_core_sync.c - incremental sync into a plain directory (no reflink) applies the changed
 * ranges in place with an undo object: the worker killed mid-apply is resumed and ends equal,
 * or a failover meanwhile rolls the target back to its recovery point. A full sync writes the
 * target's recovery point from the mover's buffers (rpcopy object) instead of copying the new
 * live object: the recovery point equals the data, and a worker killed mid-copy resumes.
 * Run again on a loop-mounted xfs (REPLUN_TEST_DIR, tests/arrays/run_fs.sh): there a full sync
 * between two arrays of one filesystem shares the snapshot's blocks (->clone_from), and with
 * REPLUN_SYNC_NO_SHARE the mover copies, killable mid-copy: from the LUN's cached pages where
 * they provably hold the snapshot's data (->read_snapshot), else direct reads of the snapshot.
 */
#include <fcntl.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cmocka.h>

#include "engine.h"
#include "model.h"
#include "recovery.h"
#include "replun/replun.h"
#include "sync.h"

#define MIB (1024ull * 1024ull)
#define LUN_SIZE (16 * MIB)
#define BLOCK 4096u

struct fx {
	char dir[512];
	struct rp_array *a, *b;
	struct rp_device dev; /* on A; dev.peer_device is its target on B */
};

static uint64_t rng_state = 0x2545f4914f6cdd1dull;

static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* Writes random data (or zeros) at @off through the LUN's image file, like a VM would. */
static void write_lun(struct fx *f, uint64_t off, size_t len, bool zero)
{
	char path[4200], *buf = malloc(len);
	struct rp_error e = { 0 };
	size_t i;
	int fd;

	assert_non_null(buf);
	for (i = 0; i < len; i += 8) {
		uint64_t v = zero ? 0 : rng();

		memcpy(buf + i, &v, len - i < 8 ? len - i : 8);
	}
	assert_int_equal(rp_lun_path(path, sizeof(path), f->a, f->dev.id, &e), 0);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, buf, len, (off_t)off), (ssize_t)len);
	assert_int_equal(fsync(fd), 0);
	close(fd);
	free(buf);
}

static void csum(char out[40], struct rp_array *a, const char *id)
{
	struct rp_error e = { 0 };

	assert_int_equal(rp_lun_checksum(out, a, id, &e), 0);
}

/* Checksum of the object of the newest recovery point of target device @dev on @a. */
static void rp_obj_csum(char out[40], struct rp_array *a, const char *dev)
{
	struct model_snapshot *list = NULL;
	struct rp_error e = { 0 };
	size_t n = 0, i, newest = 0;

	assert_int_equal(model_snapshot_list(&list, &n, a, dev, NULL, "rp", &e), 0);
	assert_true(n >= 1);
	for (i = 1; i < n; i++)
		if (list[i].recovery_point_ms > list[newest].recovery_point_ms)
			newest = i;
	assert_int_equal(a->drv->ops->checksum(out, a->drv, list[newest].obj, &e), 0);
	rp_free(list);
}

/* The source LUN and its target hold the same data. */
static void assert_target_equal(struct fx *f)
{
	char ca[40], cb[40];

	csum(ca, f->a, f->dev.id);
	csum(cb, f->b, f->dev.peer_device);
	assert_string_equal(ca, cb);
}

/* ... and the target's newest recovery point holds it too. */
static void assert_target_and_rp_equal(struct fx *f)
{
	char ca[40], cb[40], crp[40];

	csum(ca, f->a, f->dev.id);
	csum(cb, f->b, f->dev.peer_device);
	rp_obj_csum(crp, f->b, f->dev.peer_device);
	assert_string_equal(ca, cb);
	assert_string_equal(crp, cb);
}

/* Starts a sync of the device; returns the session id. */
static void start(struct fx *f, bool foreground, char sid[RP_ID_MAX])
{
	const char *devs[] = { f->dev.id };
	struct rp_request req = { .devices = devs, .n_devices = 1 };
	struct rp_sync_opts o = { .foreground = foreground };
	struct rp_result *r = NULL;
	struct rp_error e = { 0 };

	assert_int_equal(rp_sync_start(&r, f->a, &req, &o, &e), 0);
	assert_non_null(r);
	assert_int_equal(r->items[0].code, 0);
	snprintf(sid, RP_ID_MAX, "%s", r->items[0].session);
	rp_result_free(r);
}

/* Starts a detached sync whose worker _exits at crash point @point; waits for its death. */
static void start_until_crash(struct fx *f, const char *point, char sid[RP_ID_MAX])
{
	struct rp_error e = { 0 };
	int64_t pid = 0;
	int i;

	setenv(SYNC_ENV_CRASH, point, 1);
	start(f, false, sid);
	unsetenv(SYNC_ENV_CRASH);
	assert_int_equal(sync_worker_pid(&pid, f->b, sid, &e), 0);
	assert_true(pid > 0);
	for (i = 0; i < 1000 && kill((pid_t)pid, 0) == 0; i++)
		usleep(10000);
	assert_true(kill((pid_t)pid, 0) != 0);
}

/* rp_sync_wait on session @sid (resuming a dead worker): complete, @full or not, all equal. */
static void wait_complete(struct fx *f, const char *sid, bool full)
{
	struct rp_sync_session s;
	struct rp_error e = { 0 };

	assert_int_equal(rp_sync_wait(&s, f->a, sid, 60000, NULL, NULL, &e), 0);
	assert_int_equal(s.status, RP_SYNC_COMPLETE);
	assert_int_equal(s.full, full);
	assert_target_and_rp_equal(f);
}

static void sync_fg(struct fx *f, bool expect_full)
{
	struct rp_sync_session s;
	struct rp_error e = { 0 };
	char sid[RP_ID_MAX];

	start(f, true, sid);
	assert_int_equal(rp_sync_get(&s, f->a, sid, &e), 0);
	assert_int_equal(s.status, RP_SYNC_COMPLETE);
	assert_int_equal(s.full, expect_full);
}

static bool obj_exists(struct rp_array *a, const char *obj)
{
	struct rp_error e = { 0 };
	bool ex = false;

	assert_int_equal(a->drv->ops->obj_exists(&ex, a->drv, obj, &e), 0);
	return ex;
}

static int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct rp_lun_create_opts o = { .replicate = true };
	struct rp_error e = { 0 };
	char a[600], b[600];
	const char *tmp = getenv("REPLUN_TEST_DIR");

	if (!tmp || !*tmp)
		tmp = getenv("TMPDIR");
	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "%s/replun-sync-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	assert_non_null(mkdtemp(f->dir));
	snprintf(a, sizeof(a), "%s/a", f->dir);
	snprintf(b, sizeof(b), "%s/b", f->dir);
	assert_int_equal(rp_array_init(a, "siteA", NULL, &e), 0);
	assert_int_equal(rp_array_init(b, "siteB", NULL, &e), 0);
	assert_int_equal(rp_array_open(&f->a, a, NULL, &e), 0);
	assert_int_equal(rp_array_open(&f->b, b, NULL, &e), 0);
	assert_int_equal(rp_array_pair(f->a, f->b, &e), 0);
	assert_int_equal(rp_lun_create(&f->dev, f->a, "vol", LUN_SIZE, &o, &e), 0);
	write_lun(f, 0, LUN_SIZE, false);
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;
	char cmd[700];

	rp_array_close(f->a);
	rp_array_close(f->b);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cleanup of %s failed\n", f->dir);
	free(f);
	return 0;
}

/* Full sync, one incremental, then changes (64 random blocks and a zeroed 1 MiB range). */
static void prepare(struct fx *f, char before[40])
{
	int i;

	printf("# full sync, then an incremental one (in place)\n");
	sync_fg(f, true);
	write_lun(f, 4 * MIB, 64 * 1024, false);
	sync_fg(f, false);
	csum(before, f->b, f->dev.peer_device);
	{
		char ca[40];

		csum(ca, f->a, f->dev.id);
		assert_string_equal(ca, before);
	}
	for (i = 0; i < 64; i++)
		write_lun(f, (rng() % (LUN_SIZE / BLOCK)) * BLOCK, BLOCK, false);
	write_lun(f, 8 * MIB, MIB, true);
}

/*
 * Starts a detached sync whose worker dies after 10 in-place writes; waits for its death. The
 * undo object names the target's base (header only) or, with @data_undo, holds the old data.
 */
static void crash_mid_apply(struct fx *f, char sid[RP_ID_MAX], char before[40], bool data_undo)
{
	struct rp_error e = { 0 };
	struct array_obj_stat st;
	char undo[ARRAY_OBJ_MAX], now[40];

	printf("# kill the worker after 10 of its in-place writes into the target (%s undo)\n",
	       data_undo ? "data" : "by-reference");
	if (data_undo)
		setenv(SYNC_ENV_UNDO_DATA, "1", 1);
	start_until_crash(f, "apply:10", sid);
	unsetenv(SYNC_ENV_UNDO_DATA);
	snprintf(undo, sizeof(undo), "undo-%s-%s", sid, f->dev.peer_device);
	printf("#   undo object '%s' is there and the target is half-applied\n", undo);
	assert_true(obj_exists(f->b, undo));
	assert_int_equal(f->b->drv->ops->obj_stat(&st, f->b->drv, undo, &e), 0);
	printf("#   undo object: %llu bytes\n", (unsigned long long)st.size);
	if (data_undo)
		assert_true(st.size > 4096 + 64 * 4096); /* the header, then the old data */
	else
		assert_int_equal(st.size, 4096); /* the header only: ranges and the base's name */
	csum(now, f->b, f->dev.peer_device);
	assert_string_not_equal(now, before);
}

static void test_inplace__kill_mid_apply_resumes(void **state)
{
	struct fx *f = *state;
	struct rp_sync_session s;
	struct rp_error e = { 0 };
	char sid[RP_ID_MAX], before[40], obj[ARRAY_OBJ_MAX];

	prepare(f, before);
	crash_mid_apply(f, sid, before, false);
	printf("# rp_sync_wait resumes the session: it re-applies and ends equal\n");
	assert_int_equal(rp_sync_wait(&s, f->a, sid, 60000, NULL, NULL, &e), 0);
	assert_int_equal(s.status, RP_SYNC_COMPLETE);
	assert_false(s.full);
	assert_target_equal(f);
	snprintf(obj, sizeof(obj), "undo-%s-%s", sid, f->dev.peer_device);
	assert_false(obj_exists(f->b, obj));
	snprintf(obj, sizeof(obj), "stage-%s-%s", sid, f->dev.peer_device);
	assert_false(obj_exists(f->b, obj));
	printf("# the next incremental sync still ends equal\n");
	write_lun(f, 0, 2 * BLOCK, false);
	sync_fg(f, false);
	assert_target_equal(f);
}

/* Overwrites the magic of undo object @undo on B (a corrupt undo: its ranges cannot be used). */
static void corrupt_undo(struct fx *f, const char *undo)
{
	struct rp_error e = { 0 };
	char path[4200];
	int fd;

	assert_int_equal(f->b->drv->ops->obj_path(path, sizeof(path), f->b->drv, undo, &e), 0);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "XXXXXXXX", 8, 0), 8);
	assert_int_equal(fsync(fd), 0);
	close(fd);
}

/* Fails the device over at B: done, the target holds @before again, session @sid failed. */
static void failover_rolled_back(struct fx *f, const char *sid, const char *before)
{
	const char *devs[1] = { f->dev.peer_device };
	struct rp_request req = { .devices = devs, .n_devices = 1 };
	struct rp_result *r = NULL;
	struct rp_sync_session s;
	struct rp_error e = { 0 };
	char cb[40];

	assert_int_equal(rp_failover(&r, f->b, &req, &e), 0);
	assert_non_null(r);
	assert_int_equal(r->items[0].code, 0);
	rp_result_free(r);
	csum(cb, f->b, f->dev.peer_device);
	assert_string_equal(cb, before);
	assert_int_equal(rp_sync_get(&s, f->b, sid, &e), 0);
	assert_int_equal(s.status, RP_SYNC_FAILED);
	printf("#   session failed: %s\n", s.error);
}

/*
 * Kills a sync mid-apply, then fails over at the target: the target ends as before the sync.
 * @corrupt: the undo object is made unusable first, so the rollback falls back to restoring
 * the whole target from its base.
 */
static void failover_after_crash(struct fx *f, bool data_undo, bool corrupt)
{
	char sid[RP_ID_MAX], before[40], obj[ARRAY_OBJ_MAX];

	prepare(f, before);
	crash_mid_apply(f, sid, before, data_undo);
	if (corrupt) {
		snprintf(obj, sizeof(obj), "undo-%s-%s", sid, f->dev.peer_device);
		printf("# its undo object is corrupt: the rollback restores the target whole from "
		       "its base\n");
		corrupt_undo(f, obj);
	}
	printf("# failover at the target instead: the half-applied target is rolled back\n");
	failover_rolled_back(f, sid, before);
	snprintf(obj, sizeof(obj), "undo-%s-%s", sid, f->dev.peer_device);
	assert_false(obj_exists(f->b, obj));
}

static void test_inplace__failover_after_crash_rolls_back(void **state)
{
	failover_after_crash(*state, false, false);
}

/* The same when the undo cannot be used: the target is restored whole from its base. */
static void test_inplace__failover_after_crash_corrupt_undo(void **state)
{
	failover_after_crash(*state, false, true);
}

/* The same with an undo object that holds the old data (drivers without ->copy_ranges). */
static void test_inplace__failover_after_crash_data_undo(void **state)
{
	failover_after_crash(*state, true, false);
}

/* No stage, rpcopy or undo object of session @sid is left on the target. */
static void assert_no_work_objs(struct fx *f, const char *sid)
{
	static const char *const kinds[] = { "stage", "rpcopy", "undo" };
	char obj[ARRAY_OBJ_MAX];
	size_t k;

	for (k = 0; k < 3; k++) {
		snprintf(obj, sizeof(obj), "%s-%s-%s", kinds[k], sid, f->dev.peer_device);
		assert_false(obj_exists(f->b, obj));
	}
}

/* ------------------------------------------------------------------------------------------ */
/* Recycled recovery points (no reflink): the pruned one's object is the next one's            */

/* The data of one recovery point, by its time. */
struct rp_data {
	int64_t ms;
	char sum[40];
};

#define RP_DATA_MAX 16

static bool no_reflink(struct fx *f)
{
	return !(f->b->drv->caps & ARRAY_CAP_REFLINK);
}

/* Incremental sync in the foreground, then records the new recovery point's data in @d. */
static void sync_record(struct fx *f, struct rp_data *d, size_t *n)
{
	struct model_device td;
	struct rp_error e = { 0 };

	sync_fg(f, false);
	assert_true(*n < RP_DATA_MAX);
	assert_int_equal(model_device_load(&td, f->b, f->dev.peer_device, &e), 0);
	d[*n].ms = td.recovery_point_ms;
	csum(d[*n].sum, f->a, f->dev.id);
	(*n)++;
	assert_target_and_rp_equal(f);
}

/* Every recovery point the target keeps holds exactly the data it had when it was made. */
static void assert_rps_hold_their_data(struct fx *f, const struct rp_data *d, size_t nd)
{
	struct model_snapshot *list = NULL;
	struct rp_error e = { 0 };
	size_t n = 0, i, j;
	char sum[40];

	assert_int_equal(model_snapshot_list(&list, &n, f->b, f->dev.peer_device, NULL, "rp", &e),
	                 0);
	assert_int_equal(n, 3); /* the default retention */
	for (i = 0; i < n; i++) {
		for (j = 0; j < nd && d[j].ms != list[i].recovery_point_ms; j++)
			;
		assert_true(j < nd);
		assert_int_equal(f->b->drv->ops->checksum(sum, f->b->drv, list[i].obj, &e), 0);
		assert_string_equal(sum, d[j].sum);
	}
	rp_free(list);
}

/* The spare of device @dev on @a: its object into @obj; false when it has none. */
static bool spare_in(struct rp_array *a, const char *dev, char obj[ARRAY_OBJ_MAX])
{
	struct model_snapshot sp;
	char id[RP_ID_MAX];

	snprintf(id, sizeof(id), "spare-%s", dev);
	if (model_snapshot_load(&sp, a, id, NULL) < 0)
		return false;
	assert_string_equal(sp.kind, "spare");
	snprintf(obj, ARRAY_OBJ_MAX, "%s", sp.obj);
	return true;
}

/* The target device's spare on B. */
static bool spare_of(struct fx *f, char obj[ARRAY_OBJ_MAX])
{
	return spare_in(f->b, f->dev.peer_device, obj);
}

static ino_t obj_ino(struct rp_array *a, const char *obj)
{
	struct rp_error e = { 0 };
	struct stat st;
	char path[4200];

	assert_int_equal(a->drv->ops->obj_path(path, sizeof(path), a->drv, obj, &e), 0);
	assert_int_equal(stat(path, &st), 0);
	return st.st_ino;
}

/* Inode of the object of the target's newest recovery point. */
static ino_t newest_rp_ino(struct fx *f)
{
	struct model_device td;
	struct model_snapshot s;
	struct rp_error e = { 0 };

	assert_int_equal(model_device_load(&td, f->b, f->dev.peer_device, &e), 0);
	assert_int_equal(model_snapshot_load(&s, f->b, td.base_snapshot, &e), 0);
	return obj_ino(f->b, s.obj);
}

static int64_t delta_rows(struct fx *f)
{
	int64_t n = -1;

	assert_int_equal(meta_query_int(&n, f->b->db, NULL,
	                                "SELECT count(*) FROM rp_deltas WHERE device = ?", "t",
	                                f->dev.peer_device),
	                 0);
	return n;
}

/* 64 random blocks, and every other round a zeroed 64 KiB range. */
static void change_lun(struct fx *f, int round)
{
	int i;

	for (i = 0; i < 64; i++)
		write_lun(f, (rng() % (LUN_SIZE / BLOCK)) * BLOCK, BLOCK, false);
	if (round % 2)
		write_lun(f, (rng() % (LUN_SIZE / (64 * 1024))) * 64 * 1024, 64 * 1024, true);
}

/* Full sync, then incrementals until the target has a spare (4th recovery point). */
static void recycle_prepare(struct fx *f, struct rp_data *d, size_t *nd)
{
	char obj[ARRAY_OBJ_MAX];
	int round;

	sync_fg(f, true);
	for (round = 1; round <= 3; round++) {
		assert_false(spare_of(f, obj));
		change_lun(f, round);
		sync_record(f, d, nd);
	}
}

static void test_recycle__recovery_points_hold_their_data(void **state)
{
	struct fx *f = *state;
	struct rp_data d[RP_DATA_MAX];
	char obj[ARRAY_OBJ_MAX];
	size_t nd = 0;
	int round;

	if (!no_reflink(f)) {
		printf("# reflink: recovery points are clones; no spare, no deltas are kept\n");
		sync_fg(f, true);
		for (round = 1; round <= 5; round++) {
			change_lun(f, round);
			sync_record(f, d, &nd);
		}
		assert_false(spare_of(f, obj));
		assert_int_equal(delta_rows(f), 0);
		assert_rps_hold_their_data(f, d, nd);
		return;
	}
	printf("# a full sync and 3 incrementals: the 4th recovery point prunes the 1st, kept as "
	       "the spare\n");
	recycle_prepare(f, d, &nd);
	assert_true(spare_of(f, obj));
	assert_int_equal(delta_rows(f), 3);
	for (round = 4; round <= 9; round++) {
		ino_t spare_ino;

		assert_true(spare_of(f, obj));
		spare_ino = obj_ino(f->b, obj);
		change_lun(f, round);
		sync_record(f, d, &nd);
		printf("#   round %d: the new recovery point is the former spare's object\n",
		       round);
		assert_true(newest_rp_ino(f) == spare_ino);
		assert_rps_hold_their_data(f, d, nd);
		assert_int_equal(delta_rows(f), 3);
	}
	printf("# deltas lost (the chain is broken): a full copy of the recovery point, still "
	       "equal\n");
	{
		ino_t spare_ino;

		assert_true(spare_of(f, obj));
		spare_ino = obj_ino(f->b, obj);
		assert_int_equal(meta_run(NULL, f->b->db, NULL, "DELETE FROM rp_deltas", ""), 0);
		change_lun(f, 10);
		sync_record(f, d, &nd);
		assert_true(newest_rp_ino(f) != spare_ino);
		assert_rps_hold_their_data(f, d, nd);
		assert_true(spare_of(f, obj));
	}
	printf("# failover at the target drops the spare and the deltas\n");
	{
		const char *devs[1] = { f->dev.peer_device };
		struct rp_request req = { .devices = devs, .n_devices = 1 };
		struct rp_result *r = NULL;
		struct rp_error e = { 0 };
		char path[4200];

		assert_true(spare_of(f, obj));
		assert_int_equal(f->b->drv->ops->obj_path(path, sizeof(path), f->b->drv, obj, &e),
		                 0);
		assert_int_equal(rp_failover(&r, f->b, &req, &e), 0);
		assert_int_equal(r->items[0].code, 0);
		rp_result_free(r);
		assert_false(spare_of(f, obj));
		assert_int_equal(delta_rows(f), 0);
		assert_true(access(path, F_OK) != 0);
	}
}

static void test_recycle__kill_after_recycle_resumes(void **state)
{
	struct fx *f = *state;
	struct rp_data d[RP_DATA_MAX];
	struct rp_sync_session s;
	struct rp_error e = { 0 };
	char sid[RP_ID_MAX], obj[ARRAY_OBJ_MAX], spare[ARRAY_OBJ_MAX];
	size_t nd = 0;

	if (!no_reflink(f)) {
		printf("# reflink: no spare here (see test_recycle__recovery_points_hold_their_"
		       "data)\n");
		return;
	}
	recycle_prepare(f, d, &nd);
	assert_true(spare_of(f, spare));
	printf("# kill the worker once the spare is renamed and brought up to date\n");
	change_lun(f, 4);
	start_until_crash(f, "recycle", sid);
	snprintf(obj, sizeof(obj), "rpcopy-%s-%s", sid, f->dev.peer_device);
	assert_true(obj_exists(f->b, obj));
	assert_false(obj_exists(f->b, spare));
	printf("# rp_sync_wait resumes: the recovery point is a full copy, every point equal\n");
	assert_int_equal(rp_sync_wait(&s, f->a, sid, 60000, NULL, NULL, &e), 0);
	assert_int_equal(s.status, RP_SYNC_COMPLETE);
	assert_target_and_rp_equal(f);
	{
		struct model_device td;

		assert_int_equal(model_device_load(&td, f->b, f->dev.peer_device, &e), 0);
		d[nd].ms = td.recovery_point_ms;
		csum(d[nd].sum, f->a, f->dev.id);
		nd++;
	}
	assert_rps_hold_their_data(f, d, nd);
	assert_false(obj_exists(f->b, obj));
	printf("# a new spare (the pruned point's object) is kept and used by the next sync\n");
	assert_true(spare_of(f, spare));
	assert_true(obj_exists(f->b, spare));
	{
		ino_t ino = obj_ino(f->b, spare);

		change_lun(f, 5);
		sync_record(f, d, &nd);
		assert_true(newest_rp_ino(f) == ino);
		assert_rps_hold_their_data(f, d, nd);
	}
}

/* The source device's spare on A. */
static bool src_spare_of(struct fx *f, char obj[ARRAY_OBJ_MAX])
{
	return spare_in(f->a, f->dev.id, obj);
}

/* Inode of the object of the source device's base snapshot, which must hold @sum's data. */
static ino_t src_base_ino(struct fx *f, const char *sum)
{
	struct model_device d;
	struct model_snapshot s;
	struct rp_error e = { 0 };
	char got[40];

	assert_int_equal(model_device_load(&d, f->a, f->dev.id, &e), 0);
	assert_int_equal(model_snapshot_load(&s, f->a, d.base_snapshot, &e), 0);
	assert_int_equal(f->a->drv->ops->checksum(got, f->a->drv, s.obj, &e), 0);
	assert_string_equal(got, sum);
	return obj_ino(f->a, s.obj);
}

static void test_refresh__source_snapshot_reuses_old_base(void **state)
{
	struct fx *f = *state;
	struct rp_data d[RP_DATA_MAX];
	char obj[ARRAY_OBJ_MAX];
	size_t nd = 0;
	int round;

	sync_fg(f, true);
	change_lun(f, 1);
	sync_record(f, d, &nd);
	if (f->a->drv->caps & ARRAY_CAP_REFLINK) {
		printf("# reflink: the source snapshot is a clone; no spare is kept\n");
		assert_false(src_spare_of(f, obj));
		return;
	}
	printf("# after an incremental the old base is the source's spare\n");
	for (round = 2; round <= 5; round++) {
		ino_t spare_ino;

		assert_true(src_spare_of(f, obj));
		spare_ino = obj_ino(f->a, obj);
		change_lun(f, round);
		sync_record(f, d, &nd);
		printf("#   round %d: the new base is the former spare's object, data equal\n",
		       round);
		assert_true(src_base_ino(f, d[nd - 1].sum) == spare_ino);
	}
	printf("# the spare written behind the engine's back (its map no longer matches): "
	       "rewritten in full, still equal\n");
	{
		struct rp_error e = { 0 };
		char junk[BLOCK];

		assert_true(src_spare_of(f, obj));
		memset(junk, 0x5a, sizeof(junk));
		assert_int_equal(f->a->drv->ops->write(f->a->drv, obj, 0, junk, BLOCK, &e), 0);
		change_lun(f, 6);
		sync_record(f, d, &nd);
		(void)src_base_ino(f, d[nd - 1].sum);
	}
	assert_rps_hold_their_data(f, d, nd);
}

/* Is object @obj of @a named by a snapshot row (or a device's live object)? */
static bool obj_named(struct rp_array *a, const char *obj)
{
	struct model_snapshot *list = NULL;
	struct model_device *devs = NULL;
	struct rp_error e = { 0 };
	size_t n = 0, nd = 0, i;
	bool named = false;

	assert_int_equal(model_snapshot_list(&list, &n, a, NULL, NULL, NULL, &e), 0);
	for (i = 0; i < n; i++)
		named = named || strcmp(list[i].obj, obj) == 0;
	assert_int_equal(model_device_list(&devs, &nd, a, NULL, &e), 0);
	for (i = 0; i < nd; i++)
		named = named || strcmp(devs[i].obj, obj) == 0;
	rp_free(devs);
	rp_free(list);
	return named;
}

/*
 * Starts a detached sync whose worker dies once its source snapshot is made and durable, before
 * the plan is recorded (SYNC_ENV_CRASH "snapshot"); returns the in-flight snapshot row's id and
 * object, which exist.
 */
static void kill_after_snapshot(struct fx *f, char sid[RP_ID_MAX], char id[RP_ID_MAX],
                                char obj[ARRAY_OBJ_MAX])
{
	struct model_snapshot *list = NULL;
	struct sync_row r;
	struct rp_error e = { 0 };
	size_t n = 0;

	start_until_crash(f, "snapshot", sid);
	/* (not rp_sync_get: it would resume the session, whose worker would replace the row) */
	assert_int_equal(sync_row_load(&r, f->b, sid, &e), 0);
	assert_int_equal(r.status, RP_SYNC_IN_PROGRESS);
	assert_null(r.plan);
	sync_row_dispose(&r);
	assert_int_equal(
	        model_snapshot_list(&list, &n, f->a, f->dev.id, NULL, RECOVERY_KIND_SYNC, &e), 0);
	assert_int_equal(n, 1); /* the intent was recorded before the snapshot was made */
	snprintf(id, RP_ID_MAX, "%s", list[0].id);
	snprintf(obj, ARRAY_OBJ_MAX, "%s", list[0].obj);
	rp_free(list);
	assert_true(obj_exists(f->a, obj));
}

static void test_plan__kill_after_snapshot_leaves_nothing(void **state)
{
	struct fx *f = *state;
	struct model_snapshot row;
	char sid[RP_ID_MAX], id[RP_ID_MAX], obj[ARRAY_OBJ_MAX], spare[ARRAY_OBJ_MAX];
	int round;

	printf("# a first sync whose worker dies with its source snapshot made, no plan yet\n");
	kill_after_snapshot(f, sid, id, obj);
	printf("# rp_sync_wait resumes it: a new snapshot; the dead worker's row and object go\n");
	wait_complete(f, sid, true);
	assert_int_equal(model_snapshot_load(&row, f->a, id, NULL), RP_ENOTFOUND);
	assert_false(obj_exists(f->a, obj));
	for (round = 1; round <= 2; round++) {
		change_lun(f, round);
		printf("# incremental %d: the same (without reflink the snapshot refreshes the "
		       "source's spare)\n",
		       round);
		kill_after_snapshot(f, sid, id, obj);
		assert_int_equal(src_spare_of(f, spare) && strcmp(spare, obj) == 0,
		                 !(f->a->drv->caps & ARRAY_CAP_REFLINK) && round == 2);
		wait_complete(f, sid, false);
		assert_int_equal(model_snapshot_load(&row, f->a, id, NULL), RP_ENOTFOUND);
		/* gone, or (a refreshed spare) named again: by the new base */
		assert_true(!obj_exists(f->a, obj) || obj_named(f->a, obj));
	}
}

static void test_finish__kill_after_recovery_point_then_failover(void **state)
{
	struct fx *f = *state;
	struct sync_row row;
	struct rp_error e = { 0 };
	char sid[RP_ID_MAX], before[40], rpid[RP_ID_MAX], obj[ARRAY_OBJ_MAX];
	long long ms = 0;

	prepare(f, before);
	printf("# an incremental whose worker dies with its recovery point made, no row yet\n");
	start_until_crash(f, "recovery-point", sid);
	assert_int_equal(sync_row_load(&row, f->b, sid, &e), 0);
	assert_non_null(row.plan);
	assert_int_equal(sscanf(row.plan, "rp %*s %lld", &ms), 1);
	sync_row_dispose(&row);
	snprintf(rpid, sizeof(rpid), "rp-%s-%lld", f->dev.peer_device, ms);
	model_snapshot_obj(obj, rpid);
	assert_true(obj_exists(f->b, obj));
	assert_false(obj_named(f->b, obj));
	printf("# failover at the target: rolled back, and the unnamed recovery point deleted\n");
	failover_rolled_back(f, sid, before);
	assert_false(obj_exists(f->b, obj));
}

static void test_usage__by_holder(void **state)
{
	struct fx *f = *state;
	struct rp_array_usage ua, ub;
	struct rp_data d[RP_DATA_MAX];
	struct rp_error e = { 0 };
	size_t nd = 0;
	bool spares = !(f->a->drv->caps & ARRAY_CAP_REFLINK);

	printf("# after a full and two incremental syncs: what each side's objects hold\n");
	sync_fg(f, true);
	change_lun(f, 1);
	sync_record(f, d, &nd);
	change_lun(f, 2);
	sync_record(f, d, &nd);
	assert_int_equal(rp_array_usage(&ua, NULL, f->a, &e), 0);
	assert_int_equal(rp_array_usage(&ub, NULL, f->b, &e), 0);
	printf("#   A: LUNs %llu, bases %llu, spares %llu; B: LUNs %llu, recovery points %llu\n",
	       (unsigned long long)ua.luns, (unsigned long long)ua.bases,
	       (unsigned long long)ua.spares, (unsigned long long)ub.luns,
	       (unsigned long long)ub.recovery_points);
	assert_true(ua.listed && ub.listed);
	assert_true(ua.luns >= LUN_SIZE / 2 && ua.bases >= LUN_SIZE / 2);
	assert_int_equal(ua.spares > 0, spares); /* the old base, kept for the next snapshot */
	assert_int_equal(ua.recovery_points + ua.unreferenced + ua.work, 0);
	/* the target's base shares its newest recovery point's object: counted there */
	assert_true(ub.luns >= LUN_SIZE / 2 && ub.recovery_points >= 3 * (LUN_SIZE / 2));
	assert_int_equal(ub.bases + ub.unreferenced + ub.work, 0);
}

static void test_full__rp_written_by_mover(void **state)
{
	struct fx *f = *state;
	struct rp_sync_session s;
	struct rp_error e = { 0 };
	char sid[RP_ID_MAX];

	printf("# full sync: the recovery point equals the data (the mover's copy without "
	       "reflink)\n");
	write_lun(f, 2 * MIB, MIB, true); /* zeros inside the data */
	start(f, true, sid);
	assert_int_equal(rp_sync_get(&s, f->a, sid, &e), 0);
	assert_int_equal(s.status, RP_SYNC_COMPLETE);
	assert_true(s.full);
	assert_target_and_rp_equal(f);
	assert_no_work_objs(f, sid);
	printf("# an incremental sync from that recovery point ends equal too\n");
	write_lun(f, 5 * MIB, 3 * BLOCK, false);
	sync_fg(f, false);
	assert_target_and_rp_equal(f);
}

static bool reflink(const struct fx *f)
{
	return (f->a->drv->caps & ARRAY_CAP_REFLINK) && (f->b->drv->caps & ARRAY_CAP_REFLINK);
}

/*
 * Starts a detached, throttled full sync and SIGKILLs its worker once its copy has data: the
 * rpcopy object without reflink; with reflink the stage (a throttled sync never shares blocks;
 * REPLUN_SYNC_NO_SHARE is set too, for this worker only: the one that resumes it shares).
 */
static void kill_mid_full_copy(struct fx *f, char sid[RP_ID_MAX])
{
	struct array_obj_stat st;
	struct rp_error e = { 0 };
	char obj[ARRAY_OBJ_MAX];
	int64_t pid = 0;
	int i;

	printf("# kill -9 the worker of a full sync in the middle of its copy\n");
	setenv(SYNC_ENV_THROTTLE, "50", 1); /* 50 ms per MiB: 0.8 s for the 16 MiB LUN */
	if (reflink(f))
		setenv(SYNC_ENV_NO_SHARE, "1", 1);
	start(f, false, sid);
	unsetenv(SYNC_ENV_THROTTLE);
	unsetenv(SYNC_ENV_NO_SHARE);
	assert_int_equal(sync_worker_pid(&pid, f->b, sid, &e), 0);
	assert_true(pid > 0);
	snprintf(obj, sizeof(obj), "%s-%s-%s", reflink(f) ? "stage" : "rpcopy", sid,
	         f->dev.peer_device);
	for (i = 0; i < 1000; i++) {
		memset(&st, 0, sizeof(st));
		if (obj_exists(f->b, obj) &&
		    f->b->drv->ops->obj_stat(&st, f->b->drv, obj, &e) == 0 && st.allocated >= MIB)
			break;
		usleep(5000);
	}
	assert_true(st.allocated >= MIB);
	assert_true(st.allocated < LUN_SIZE);
	assert_int_equal(kill((pid_t)pid, SIGKILL), 0);
	for (i = 0; i < 1000 && kill((pid_t)pid, 0) == 0; i++)
		usleep(10000);
	printf("#   killed with %llu bytes of its copy written\n",
	       (unsigned long long)st.allocated);
}

static void test_full__kill_mid_copy_resumes(void **state)
{
	struct fx *f = *state;
	char sid[RP_ID_MAX];

	kill_mid_full_copy(f, sid);
	printf("# rp_sync_wait resumes it: target and recovery point end equal to the source\n");
	wait_complete(f, sid, true);
	assert_no_work_objs(f, sid);
}

static void test_full__failover_after_kill_drops_copies(void **state)
{
	struct fx *f = *state;
	const char *devs[1];
	struct rp_request req = { .devices = devs, .n_devices = 1 };
	struct rp_result *r = NULL;
	struct rp_sync_session s;
	struct rp_error e = { 0 };
	char sid[RP_ID_MAX];

	kill_mid_full_copy(f, sid);
	printf("# failover at the target instead: the session fails, its copies are deleted\n");
	devs[0] = f->dev.peer_device;
	assert_int_equal(rp_failover(&r, f->b, &req, &e), 0);
	assert_non_null(r);
	assert_int_equal(r->items[0].code, 0);
	rp_result_free(r);
	assert_int_equal(rp_sync_get(&s, f->b, sid, &e), 0);
	assert_int_equal(s.status, RP_SYNC_FAILED);
	assert_no_work_objs(f, sid);
}

/* Physical address of the first extent of device @id's live object on @a (FIEMAP). */
static uint64_t first_physical(struct rp_array *a, const char *id)
{
	struct fiemap *fm = calloc(1, sizeof(*fm) + sizeof(struct fiemap_extent));
	struct rp_error e = { 0 };
	char path[4200];
	uint64_t phys;
	int fd;

	assert_non_null(fm);
	assert_int_equal(rp_lun_path(path, sizeof(path), a, id, &e), 0);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	fm->fm_length = FIEMAP_MAX_OFFSET;
	fm->fm_flags = FIEMAP_FLAG_SYNC;
	fm->fm_extent_count = 1;
	assert_int_equal(ioctl(fd, FS_IOC_FIEMAP, fm), 0);
	close(fd);
	assert_int_equal(fm->fm_mapped_extents, 1);
	phys = fm->fm_extents[0].fe_physical;
	free(fm);
	return phys;
}

/* Log sink of full_sync_equal: counts verbose lines containing the payload's needle. */
struct log_watch {
	const char *needle;
	int hits;
	char line[1024]; /* the last line that matched */
};

static void log_watch_fn(enum rp_log_level level, const char *msg, void *payload)
{
	struct log_watch *w = payload;

	(void)level;
	if (strstr(msg, w->needle)) {
		w->hits++;
		(void)snprintf(w->line, sizeof(w->line), "%s", msg);
	}
}

/*
 * One foreground full sync: target and recovery point equal the source, all data bytes counted,
 * and the mover logged @how once (which path the data took); that line goes to @line if given.
 */
static void full_sync_equal(struct fx *f, const char *how, char line[1024])
{
	struct log_watch w = { how, 0, "" };
	struct rp_sync_session s;
	struct rp_error e = { 0 };
	char sid[RP_ID_MAX];

	rp_log_set_sink(log_watch_fn, RP_LOG_VERBOSE, &w);
	start(f, true, sid);
	rp_log_set_sink(NULL, RP_LOG_VERBOSE, NULL);
	assert_int_equal(w.hits, 1);
	if (line)
		memcpy(line, w.line, sizeof(w.line));
	assert_int_equal(rp_sync_get(&s, f->a, sid, &e), 0);
	assert_int_equal(s.status, RP_SYNC_COMPLETE);
	assert_true(s.full);
	assert_int_equal(s.bytes_transferred, LUN_SIZE - MIB); /* a 1 MiB hole is not data */
	assert_target_and_rp_equal(f);
	assert_no_work_objs(f, sid);
}

static void punch_lun(struct fx *f, uint64_t off, uint64_t len)
{
	struct rp_error e = { 0 };
	char path[4200];
	int fd;

	assert_int_equal(rp_lun_path(path, sizeof(path), f->a, f->dev.id, &e), 0);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(
	        fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len),
	        0);
	assert_int_equal(fsync(fd), 0);
	close(fd);
}

static void test_full__shared_on_one_fs(void **state)
{
	struct fx *f = *state;

	if (!reflink(f)) {
		printf("# no reflink here: nothing to share\n");
		skip();
	}
	printf("# full sync between two arrays of one xfs: the target shares the source's "
	       "blocks\n");
	punch_lun(f, 3 * MIB, MIB);
	full_sync_equal(f, "stage shares the snapshot's blocks", NULL);
	assert_true(first_physical(f->a, f->dev.id) == first_physical(f->b, f->dev.peer_device));
	printf("# the next (incremental) sync after a write to the source ends equal\n");
	write_lun(f, 5 * MIB, 3 * BLOCK, false);
	sync_fg(f, false);
	assert_target_equal(f);
}

/* Is the source array on xfs with reflink, where the mover may read the LUN's cached pages? */
static bool origin_reads(const struct fx *f)
{
	struct statfs sfs;

	return reflink(f) && statfs(f->dir, &sfs) == 0 && (unsigned long)sfs.f_type == 0x58465342UL;
}

/*
 * A full sync by the mover between two arrays of one reflink filesystem (REPLUN_SYNC_NO_SHARE);
 * @no_origin also sets REPLUN_SYNC_NO_ORIGIN. Returns the mover's log line.
 */
static void mover_full_sync(struct fx *f, bool no_origin, char line[1024])
{
	punch_lun(f, 3 * MIB, MIB);
	/* the LUN's last change ticks before the snapshot's birth: its pages can be proven */
	(void)usleep(30000);
	setenv(SYNC_ENV_NO_SHARE, "1", 1);
	if (no_origin)
		setenv(SYNC_ENV_NO_ORIGIN, "1", 1);
	full_sync_equal(f, no_origin ? "reader (uncached)" : "reader (origin", line);
	unsetenv(SYNC_ENV_NO_ORIGIN);
	unsetenv(SYNC_ENV_NO_SHARE);
	printf("# %s\n", strstr(line, "reader ("));
	assert_true(first_physical(f->a, f->dev.id) != first_physical(f->b, f->dev.peer_device));
}

static void test_full__mover_on_one_fs(void **state)
{
	struct fx *f = *state;
	char line[1024];

	if (!reflink(f)) {
		printf("# no reflink here: the mover runs in every other test\n");
		skip();
	}
	printf("# REPLUN_SYNC_NO_SHARE: the mover copies the data, from the LUN's cached pages "
	       "where they provably hold the snapshot's data (xfs), else read directly from the "
	       "snapshot\n");
	mover_full_sync(f, false, line);
	{
		unsigned long long mib = 0;
		const char *p = strstr(line, "reader (origin; ");

		assert_non_null(p);
		assert_int_equal(sscanf(p,
		                        "reader (origin; %llu MiB from the live LUN's cached pages",
		                        &mib),
		                 1);
		/* xfs proves the LUN's pages are the snapshot's; elsewhere they are never used */
		if (origin_reads(f))
			assert_true(mib > 0);
		else
			assert_int_equal(mib, 0);
	}
}

static void test_full__mover_snapshot_only(void **state)
{
	struct fx *f = *state;
	char line[1024];

	if (!reflink(f)) {
		printf("# no reflink here: the mover runs in every other test\n");
		skip();
	}
	printf("# REPLUN_SYNC_NO_SHARE and REPLUN_SYNC_NO_ORIGIN: the mover reads only the "
	       "snapshot (direct reads)\n");
	mover_full_sync(f, true, line);
	assert_non_null(strstr(line, "reader (uncached)"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_inplace__kill_mid_apply_resumes, fx_setup,
		                                fx_teardown),
		cmocka_unit_test_setup_teardown(test_inplace__failover_after_crash_corrupt_undo,
		                                fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_inplace__failover_after_crash_data_undo,
		                                fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_inplace__failover_after_crash_rolls_back,
		                                fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_recycle__recovery_points_hold_their_data,
		                                fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_recycle__kill_after_recycle_resumes, fx_setup,
		                                fx_teardown),
		cmocka_unit_test_setup_teardown(test_refresh__source_snapshot_reuses_old_base,
		                                fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_plan__kill_after_snapshot_leaves_nothing,
		                                fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(
		        test_finish__kill_after_recovery_point_then_failover, fx_setup,
		        fx_teardown),
		cmocka_unit_test_setup_teardown(test_usage__by_holder, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_full__rp_written_by_mover, fx_setup,
		                                fx_teardown),
		cmocka_unit_test_setup_teardown(test_full__kill_mid_copy_resumes, fx_setup,
		                                fx_teardown),
		cmocka_unit_test_setup_teardown(test_full__failover_after_kill_drops_copies,
		                                fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_full__shared_on_one_fs, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_full__mover_on_one_fs, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_full__mover_snapshot_only, fx_setup,
		                                fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: MIT */
/*
 * test_core_replication.c - sync sessions and replication workflows end to end on two real file
 * arrays (site A, site B): full and incremental sync, detached workers, kill -9 and resume,
 * test failover, planned migration, disaster order, reverse, restore, partial success.
 * Usage: test_core_replication [plain|xfs]  (xfs: loop-mounted xfs with reflink, root only;
 * exits 77 with a reason when that is not possible).
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "replun/fence.h"
#include "replun/replun.h"
#include "engine.h"
#include "model.h"
#include "sync.h"

#define MIB (1024ull * 1024ull)
#define LUN_SIZE (16 * MIB)
#define BLOCK 4096u

static char g_base[512];     /* where fixtures live: a temp dir or the xfs mount */
static char g_loop_dir[512]; /* xfs: temp dir holding the image and the mount point */
static const char *g_mode = "plain";

struct fx {
	char dir[600];
	char path_a[700];
	char path_b[700];
	char path_a_moved[700];
	struct rp_array *a;
	struct rp_array *b;
	char lun1[RP_ID_MAX]; /* in group g1 on A */
	char lun2[RP_ID_MAX];
	char key1[RP_ID_MAX]; /* their targets on B */
	char key2[RP_ID_MAX];
	char solo[RP_ID_MAX]; /* standalone replicated LUN on A */
	char solo_key[RP_ID_MAX];
};

/* ------------------------------------------------------------------------------------------ */
/* Helpers                                                                                     */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static void fill(unsigned char *buf, size_t len)
{
	size_t i;

	for (i = 0; i + 8 <= len; i += 8) {
		uint64_t v = rng();

		memcpy(buf + i, &v, 8);
	}
}

/* Writes @len random bytes at @off of LUN (or snapshot) @id of @a through its image file. */
static void write_lun(struct rp_array *a, const char *id, uint64_t off, size_t len)
{
	struct rp_error err;
	char path[4096];
	unsigned char *buf;
	int fd;

	rp_error_clear(&err);
	assert_int_equal(rp_lun_path(path, sizeof(path), a, id, &err), 0);
	buf = malloc(len);
	assert_non_null(buf);
	fill(buf, len);
	fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, buf, len, (off_t)off), (ssize_t)len);
	assert_int_equal(fsync(fd), 0);
	close(fd);
	free(buf);
}

static void csum(char out[40], struct rp_array *a, const char *id)
{
	struct rp_error err;

	rp_error_clear(&err);
	if (rp_lun_checksum(out, a, id, &err) != 0)
		fail_msg("checksum of '%s': %s", id, err.msg);
}

static bool has_warning(const struct rp_item *it, int code)
{
	size_t i;

	for (i = 0; i < it->n_warnings; i++)
		if (it->warnings[i].code == code)
			return true;
	return false;
}

static const struct rp_item *find_item(const struct rp_result *r, const char *id)
{
	size_t i;

	for (i = 0; i < r->n; i++)
		if (strcmp(r->items[i].id, id) == 0)
			return &r->items[i];
	fail_msg("no item '%s' in result", id);
	return NULL;
}

static void assert_all_ok(const struct rp_result *r)
{
	size_t i;

	for (i = 0; i < r->n; i++)
		if (r->items[i].code != 0)
			fail_msg("item '%s': %s (%s)", r->items[i].id, r->items[i].msg,
			         rp_code_name(r->items[i].code));
}

static void assert_all_warn(const struct rp_result *r, int code)
{
	size_t i;

	for (i = 0; i < r->n; i++)
		if (!has_warning(&r->items[i], code))
			fail_msg("item '%s' lacks warning %d", r->items[i].id, code);
}

typedef int (*wf_fn)(struct rp_result **, struct rp_array *, const struct rp_request *,
                     struct rp_error *);

/* Runs @fn on group @gid (may be NULL) and device @dev (may be NULL) of @a. */
static struct rp_result *run_wf(wf_fn fn, struct rp_array *a, const char *gid, const char *dev)
{
	const char *groups[1] = { gid }, *devs[1] = { dev };
	struct rp_request req;
	struct rp_result *r = NULL;
	struct rp_error err;

	memset(&req, 0, sizeof(req));
	if (gid) {
		req.groups = groups;
		req.n_groups = 1;
	}
	if (dev) {
		req.devices = devs;
		req.n_devices = 1;
	}
	rp_error_clear(&err);
	if (fn(&r, a, &req, &err) != 0)
		fail_msg("workflow: %s", err.msg);
	return r;
}

/* Syncs group @gid or device @dev at @a (foreground unless @detached) and waits. */
static void sync_now(struct rp_sync_session *s, struct rp_array *a, const char *gid,
                     const char *dev, bool detached)
{
	const char *groups[1] = { gid }, *devs[1] = { dev };
	struct rp_sync_opts opts = { .foreground = !detached };
	struct rp_request req;
	struct rp_result *r = NULL;
	struct rp_error err;
	char sid[RP_ID_MAX];

	memset(&req, 0, sizeof(req));
	if (gid) {
		req.groups = groups;
		req.n_groups = 1;
	} else {
		req.devices = devs;
		req.n_devices = 1;
	}
	rp_error_clear(&err);
	assert_int_equal(rp_sync_start(&r, a, &req, &opts, &err), 0);
	assert_true(r->n >= 1);
	assert_all_ok(r);
	snprintf(sid, sizeof(sid), "%s", r->items[0].session);
	assert_true(sid[0] != '\0');
	rp_result_free(r);
	rp_error_clear(&err);
	if (rp_sync_wait(s, a, sid, 120000, NULL, NULL, &err) != 0)
		fail_msg("sync wait: %s", err.msg);
	if (s->status != RP_SYNC_COMPLETE)
		fail_msg("sync '%s' %s: %s", sid, rp_sync_status_name(s->status), s->error);
}

static void verify_equal(struct rp_array *a, struct rp_array *b, const char *gid)
{
	struct rp_verify_item *items = NULL;
	struct rp_error err;
	bool eq = false;
	size_t n = 0, i;

	rp_error_clear(&err);
	assert_int_equal(rp_verify(&items, &n, &eq, a, b, gid, &err), 0);
	for (i = 0; i < n; i++)
		if (!items[i].equal)
			fail_msg("verify '%s'/'%s': %s", items[i].device_a, items[i].device_b,
			         items[i].msg);
	assert_true(n > 0);
	assert_true(eq);
	rp_free(items);
}

static void dev_state(struct rp_array *a, const char *id, enum rp_dev_state want, bool ro)
{
	struct rp_device d;
	struct rp_error err;

	rp_error_clear(&err);
	assert_int_equal(rp_lun_get(&d, a, id, &err), 0);
	if (d.state != want || d.read_only != ro)
		fail_msg("'%s' is %s%s, expected %s%s", id, rp_dev_state_name(d.state),
		         d.read_only ? " ro" : " rw", rp_dev_state_name(want), ro ? " ro" : " rw");
}

/* Number of snapshots of @kind held for device @dev on @a. */
static size_t snap_count(struct rp_array *a, const char *dev, const char *kind)
{
	struct model_snapshot *list = NULL;
	size_t n = 0;

	assert_int_equal(model_snapshot_list(&list, &n, a, dev, NULL, kind, NULL), 0);
	rp_free(list);
	return n;
}

/* ------------------------------------------------------------------------------------------ */
/* Fixture: arrays A and B, paired; group g1 with two replicated LUNs; one standalone LUN.    */

static int fx_setup(void **state)
{
	struct rp_lun_create_opts go = { .group = "g1", .replicate = true };
	struct rp_lun_create_opts so = { .replicate = true };
	struct rp_device d;
	struct rp_error err;
	struct fx *f;

	f = calloc(1, sizeof(*f));
	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "%s/repl.XXXXXX", g_base);
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path_a, sizeof(f->path_a), "%s/siteA", f->dir);
	snprintf(f->path_b, sizeof(f->path_b), "%s/siteB", f->dir);
	snprintf(f->path_a_moved, sizeof(f->path_a_moved), "%s/siteA.away", f->dir);
	rp_error_clear(&err);
	if (rp_array_init(f->path_a, "siteA", NULL, &err) ||
	    rp_array_init(f->path_b, "siteB", NULL, &err) ||
	    rp_array_open(&f->a, f->path_a, NULL, &err) ||
	    rp_array_open(&f->b, f->path_b, NULL, &err) || rp_array_pair(f->a, f->b, &err))
		goto fail;
	if (rp_lun_create(&d, f->a, "vdi-one", LUN_SIZE, &go, &err))
		goto fail;
	snprintf(f->lun1, sizeof(f->lun1), "%s", d.id);
	snprintf(f->key1, sizeof(f->key1), "%s", d.peer_device);
	if (rp_lun_create(&d, f->a, "vdi-two", LUN_SIZE, &go, &err))
		goto fail;
	snprintf(f->lun2, sizeof(f->lun2), "%s", d.id);
	snprintf(f->key2, sizeof(f->key2), "%s", d.peer_device);
	if (rp_lun_create(&d, f->a, "solo", LUN_SIZE, &so, &err))
		goto fail;
	snprintf(f->solo, sizeof(f->solo), "%s", d.id);
	snprintf(f->solo_key, sizeof(f->solo_key), "%s", d.peer_device);
	if (!f->key1[0] || !f->key2[0] || !f->solo_key[0]) {
		fprintf(stderr, "replicated LUNs have no target keys\n");
		return -1;
	}
	*state = f;
	return 0;
fail:
	fprintf(stderr, "fixture: %s\n", err.msg);
	return -1;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;
	char cmd[1024];
	pid_t pid;
	int st;

	if (!f)
		return 0;
	rp_array_close(f->a);
	rp_array_close(f->b);
	/* reap nothing: workers are not our children; give stragglers a moment */
	while ((pid = waitpid(-1, &st, WNOHANG)) > 0)
		;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", f->dir);
	free(f);
	return 0;
}

/* Puts data in both grouped LUNs and the standalone one and syncs everything once. */
static void seed_and_sync(struct fx *f)
{
	struct rp_sync_session s;

	write_lun(f->a, f->lun1, 0, 2 * MIB);
	write_lun(f->a, f->lun1, 8 * MIB, 1 * MIB);
	write_lun(f->a, f->lun2, 4 * MIB, 3 * MIB);
	write_lun(f->a, f->solo, 0, 1 * MIB);
	sync_now(&s, f->a, "g1", NULL, false);
	sync_now(&s, f->a, NULL, f->solo, false);
}

/* ------------------------------------------------------------------------------------------ */
/* Sync                                                                                        */

static void test_sync__full_then_incremental(void **state)
{
	struct fx *f = *state;
	struct rp_sync_session s;
	char ca[40], cb[40];
	uint64_t changed = 0;
	int i;

	printf("# full sync of group g1 moves exactly the allocated data (6 MiB)\n");
	write_lun(f->a, f->lun1, 0, 2 * MIB);
	write_lun(f->a, f->lun1, 8 * MIB, 1 * MIB);
	write_lun(f->a, f->lun2, 4 * MIB, 3 * MIB);
	rp_lun_meta_set(f->a, f->lun1, "vdi_uuid", "1111-2222", NULL);
	rp_group_meta_set(f->a, "g1", "sr_name", "my SR", NULL);
	sync_now(&s, f->a, "g1", NULL, false);
	assert_true(s.full);
	assert_int_equal(s.bytes_transferred, 6 * MIB);
	assert_int_equal(s.progress, 100);
	assert_true(s.recovery_point[0] != '\0');
	verify_equal(f->a, f->b, "g1");
	csum(ca, f->a, f->lun1);
	csum(cb, f->b, f->key1);
	assert_string_equal(ca, cb);

	printf("# metadata replicated with the data\n");
	{
		char *v = NULL;

		assert_int_equal(rp_lun_meta_get(&v, f->b, f->key1, "vdi_uuid", NULL), 0);
		assert_string_equal(v, "1111-2222");
		rp_free(v);
		assert_int_equal(rp_group_meta_get(&v, f->b, "g1", "sr_name", NULL), 0);
		assert_string_equal(v, "my SR");
		rp_free(v);
	}

	printf("# incremental after 1%% of 4 KiB blocks changed moves <= 3%% of the LUN\n");
	for (i = 0; i < (int)(LUN_SIZE / BLOCK / 100); i++) {
		uint64_t blk = rng() % (LUN_SIZE / BLOCK);

		write_lun(f->a, f->lun1, blk * BLOCK, BLOCK);
		changed += BLOCK;
	}
	sync_now(&s, f->a, "g1", NULL, false);
	assert_false(s.full);
	printf("#   changed %llu bytes, moved %llu bytes\n", (unsigned long long)changed,
	       (unsigned long long)s.bytes_transferred);
	assert_true(s.bytes_transferred > 0);
	assert_true(s.bytes_transferred <= changed);
	assert_true(s.bytes_transferred <= LUN_SIZE * 3 / 100);
	verify_equal(f->a, f->b, "g1");
	csum(ca, f->a, f->lun1);
	csum(cb, f->b, f->key1);
	assert_string_equal(ca, cb);

	printf("# nothing changed: an incremental moves nothing\n");
	sync_now(&s, f->a, "g1", NULL, false);
	assert_int_equal(s.bytes_transferred, 0);

	printf("# recovery points listed newest first, retention respected\n");
	{
		struct rp_recovery_point *rps = NULL;
		size_t n = 0;

		assert_int_equal(rp_recovery_points(&rps, &n, f->b, "g1", NULL, NULL), 0);
		assert_true(n >= 1 && n <= 3);
		assert_string_equal(rps[0].id, s.recovery_point);
		rp_free(rps);
	}
}

static void test_sync__detached_from_either_end(void **state)
{
	struct fx *f = *state;
	struct rp_sync_session s, s2;
	struct rp_error err;

	printf("# detached worker, started at the target (pull side)\n");
	write_lun(f->a, f->solo, 0, 4 * MIB);
	sync_now(&s, f->b, NULL, f->solo_key, true);
	assert_int_equal(s.bytes_transferred, 4 * MIB);
	assert_string_equal(s.source_array, "siteA");
	assert_string_equal(s.target_array, "siteB");

	printf("# the same session is visible from the source side\n");
	rp_error_clear(&err);
	assert_int_equal(rp_sync_get(&s2, f->a, s.id, &err), 0);
	assert_int_equal(s2.status, RP_SYNC_COMPLETE);
	assert_int_equal(s2.bytes_transferred, 4 * MIB);
	assert_int_equal(rp_sync_latest(&s2, f->a, NULL, f->solo, &err), 0);
	assert_string_equal(s2.id, s.id);
	assert_int_equal(rp_sync_latest(&s2, f->b, NULL, f->solo_key, &err), 0);
	assert_string_equal(s2.id, s.id);
	sync_now(&s2, f->b, "g1", NULL, true); /* every pair synced: verify all of them */
	verify_equal(f->a, f->b, NULL);
	printf("# the latest session of a grouped device is its group's\n");
	{
		struct rp_sync_session s3;

		assert_int_equal(rp_sync_latest(&s3, f->b, NULL, f->key1, &err), 0);
		assert_string_equal(s3.id, s2.id);
		assert_string_equal(s3.group, "g1");
	}

	printf("# unknown session id -> RP_ENOTFOUND\n");
	rp_error_clear(&err);
	assert_int_equal(rp_sync_get(&s2, f->a, "sync-1-abcd", &err), RP_ENOTFOUND);
	assert_true(err.msg[0] != '\0');
}

static void test_sync__second_start_reports_running(void **state)
{
	struct fx *f = *state;
	const char *groups[1] = { "g1" };
	struct rp_request req = { .groups = groups, .n_groups = 1 };
	struct rp_result *r1 = NULL, *r2 = NULL;
	struct rp_sync_session s;
	struct rp_error err;

	printf("# a second start while one runs -> RP_WARN_SYNC_RUNNING with its id\n");
	write_lun(f->a, f->lun1, 0, 8 * MIB);
	setenv(SYNC_ENV_THROTTLE, "40", 1);
	rp_error_clear(&err);
	assert_int_equal(rp_sync_start(&r1, f->a, &req, NULL, &err), 0);
	assert_all_ok(r1);
	assert_int_equal(rp_sync_start(&r2, f->a, &req, NULL, &err), 0);
	assert_all_ok(r2);
	assert_true(has_warning(&r2->items[0], RP_WARN_SYNC_RUNNING));
	assert_string_equal(r2->items[0].session, r1->items[0].session);
	printf("# no datapath serves the group: nothing to pause, no consistency warning\n");
	assert_false(has_warning(&r1->items[0], RP_WARN_NO_FREEZE));
	setenv(SYNC_ENV_THROTTLE, "0", 1);
	assert_int_equal(rp_sync_wait(&s, f->b, r1->items[0].session, 120000, NULL, NULL, &err), 0);
	assert_int_equal(s.status, RP_SYNC_COMPLETE);
	unsetenv(SYNC_ENV_THROTTLE);
	rp_result_free(r1);
	rp_result_free(r2);
	verify_equal(f->a, f->b, "g1");
}

static void test_sync__unpausable_writer_warns(void **state)
{
	struct fx *f = *state;
	const char *groups[1] = { "g1" };
	struct rp_request req = { .groups = groups, .n_groups = 1 };
	struct rp_fence fence = { .kind = RP_FENCE_NONE, .server = "qemu-nbd" };
	struct rp_result *r = NULL;
	struct rp_sync_session s;
	struct rp_error err;

	printf("# a live writer that cannot be paused on lun2 -> RP_WARN_NO_FREEZE naming it\n");
	fence.pid = (int64_t)getpid();
	rp_error_clear(&err);
	assert_int_equal(rp_fence_register(f->a, f->lun2, &fence, &err), 0);
	write_lun(f->a, f->lun1, 0, 1 * MIB);
	assert_int_equal(rp_sync_start(&r, f->a, &req, NULL, &err), 0);
	assert_all_ok(r);
	assert_true(has_warning(&r->items[0], RP_WARN_NO_FREEZE));
	for (size_t w = 0; w < r->items[0].n_warnings; w++)
		if (r->items[0].warnings[w].code == RP_WARN_NO_FREEZE)
			assert_non_null(strstr(r->items[0].warnings[w].msg, f->lun2));
	assert_int_equal(rp_sync_wait(&s, f->b, r->items[0].session, 120000, NULL, NULL, &err), 0);
	assert_int_equal(s.status, RP_SYNC_COMPLETE);
	rp_result_free(r);
	printf("# unregistered: the next sync does not warn\n");
	assert_int_equal(rp_fence_unregister(f->a, f->lun2, &err), 0);
	r = NULL;
	assert_int_equal(rp_sync_start(&r, f->a, &req, NULL, &err), 0);
	assert_all_ok(r);
	assert_false(has_warning(&r->items[0], RP_WARN_NO_FREEZE));
	assert_int_equal(rp_sync_wait(&s, f->b, r->items[0].session, 120000, NULL, NULL, &err), 0);
	rp_result_free(r);
	verify_equal(f->a, f->b, "g1");
}

static void test_sync__kill9_worker_resumes(void **state)
{
	struct fx *f = *state;
	const char *groups[1] = { "g1" };
	struct rp_request req = { .groups = groups, .n_groups = 1 };
	struct rp_result *r = NULL;
	struct rp_sync_session s;
	struct rp_error err;
	char sid[RP_ID_MAX];
	int64_t pid = 0;
	int i;

	printf("# kill -9 the worker mid-sync; rp_sync_get restarts it; data ends equal\n");
	write_lun(f->a, f->lun1, 0, 12 * MIB);
	write_lun(f->a, f->lun2, 0, 12 * MIB);
	setenv(SYNC_ENV_THROTTLE, "50", 1);
	rp_error_clear(&err);
	assert_int_equal(rp_sync_start(&r, f->a, &req, NULL, &err), 0);
	assert_all_ok(r);
	snprintf(sid, sizeof(sid), "%s", r->items[0].session);
	rp_result_free(r);
	for (i = 0; i < 400; i++) {
		assert_int_equal(rp_sync_get(&s, f->a, sid, &err), 0);
		if (s.bytes_transferred >= 2 * MIB)
			break;
		usleep(25000);
	}
	assert_int_equal(s.status, RP_SYNC_IN_PROGRESS);
	assert_true(s.bytes_transferred >= 2 * MIB);
	printf("#   progress %d%%, %llu bytes, eta %lld s before the kill\n", s.progress,
	       (unsigned long long)s.bytes_transferred, (long long)s.eta_seconds);
	assert_int_equal(sync_worker_pid(&pid, f->b, sid, &err), 0);
	assert_true(pid > 0);
	assert_int_equal(kill((pid_t)pid, SIGKILL), 0);
	for (i = 0; i < 200 && kill((pid_t)pid, 0) == 0; i++)
		usleep(10000);
	setenv(SYNC_ENV_THROTTLE, "0", 1);
	assert_int_equal(rp_sync_wait(&s, f->a, sid, 120000, NULL, NULL, &err), 0);
	unsetenv(SYNC_ENV_THROTTLE);
	assert_int_equal(s.status, RP_SYNC_COMPLETE);
	{
		int64_t pid2 = 0;

		assert_int_equal(sync_worker_pid(&pid2, f->b, sid, &err), 0);
		assert_true(pid2 != pid);
	}
	verify_equal(f->a, f->b, "g1");
	{
		char ca[40], cb[40];

		csum(ca, f->a, f->lun2);
		csum(cb, f->b, f->key2);
		assert_string_equal(ca, cb);
	}
}

static void test_sync__creates_missing_target(void **state)
{
	struct fx *f = *state;
	struct rp_sync_session s;
	struct rp_device d;
	struct rp_error err;
	char ca[40], cb[40];

	seed_and_sync(f);
	printf("# a group member whose target is gone gets a new target at the next sync\n");
	rp_error_clear(&err);
	assert_int_equal(model_device_destroy(f->b, f->key2, &err), 0);
	assert_int_equal(model_device_set_state(f->a, f->lun2, RP_DEV_SOURCE, -1, "", "", &err), 0);
	write_lun(f->a, f->lun2, 0, 64 * 1024);
	sync_now(&s, f->a, "g1", NULL, false);
	assert_int_equal(rp_lun_get(&d, f->a, f->lun2, &err), 0);
	assert_true(d.peer_device[0] != '\0');
	assert_string_not_equal(d.peer_device, f->key2);
	printf("#   new target '%s'\n", d.peer_device);
	{
		struct rp_device t;

		assert_int_equal(rp_lun_get(&t, f->b, d.peer_device, &err), 0);
		assert_string_equal(t.name, "vdi-two");
		assert_string_equal(t.group, "g1");
		assert_int_equal(t.state, RP_DEV_TARGET);
		assert_true(t.read_only);
		assert_string_equal(t.peer_device, f->lun2);
	}
	csum(ca, f->a, f->lun2);
	csum(cb, f->b, d.peer_device);
	assert_string_equal(ca, cb);
	verify_equal(f->a, f->b, "g1");
}

struct start_arg {
	const char *path;
	char session[RP_ID_MAX];
	int rc;
	bool running_warning;
};

static void *start_thread(void *p)
{
	struct start_arg *sa = p;
	const char *groups[1] = { "g1" };
	struct rp_request req = { .groups = groups, .n_groups = 1 };
	struct rp_array *a = NULL;
	struct rp_result *r = NULL;
	struct rp_error err;

	rp_error_clear(&err);
	sa->rc = rp_array_open(&a, sa->path, NULL, &err);
	if (sa->rc == 0)
		sa->rc = rp_sync_start(&r, a, &req, NULL, &err);
	if (sa->rc == 0) {
		sa->rc = r->items[0].code;
		snprintf(sa->session, sizeof(sa->session), "%s", r->items[0].session);
		sa->running_warning = has_warning(&r->items[0], RP_WARN_SYNC_RUNNING);
	}
	rp_result_free(r);
	rp_array_close(a);
	return NULL;
}

static void test_sync__concurrent_starts_make_one_session(void **state)
{
	struct fx *f = *state;
	struct start_arg sa[2];
	struct rp_sync_session s;
	pthread_t th[2];
	int i;

	printf("# two commands start a sync of g1 at the same time (one at each site): one "
	       "session\n");
	write_lun(f->a, f->lun1, 0, 8 * MIB);
	setenv(SYNC_ENV_THROTTLE, "30", 1);
	memset(sa, 0, sizeof(sa));
	sa[0].path = f->path_a;
	sa[1].path = f->path_b;
	for (i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&th[i], NULL, start_thread, &sa[i]), 0);
	for (i = 0; i < 2; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	setenv(SYNC_ENV_THROTTLE, "0", 1);
	assert_int_equal(sa[0].rc, 0);
	assert_int_equal(sa[1].rc, 0);
	assert_string_equal(sa[0].session, sa[1].session);
	assert_true(sa[0].running_warning != sa[1].running_warning);
	assert_int_equal(rp_sync_wait(&s, f->a, sa[0].session, 120000, NULL, NULL, NULL), 0);
	unsetenv(SYNC_ENV_THROTTLE);
	assert_int_equal(s.status, RP_SYNC_COMPLETE);
	verify_equal(f->a, f->b, "g1");
}

static void test_sync__grown_lun(void **state)
{
	struct fx *f = *state;
	struct rp_sync_session s;
	struct rp_device d;
	struct rp_error err;
	char ca[40], cb[40];

	seed_and_sync(f);
	printf("# a grown source LUN: the incremental carries the new size and the new data\n");
	rp_error_clear(&err);
	if (rp_lun_resize(f->a, f->lun1, 2 * LUN_SIZE, &err) != 0)
		fail_msg("resize: %s", err.msg);
	write_lun(f->a, f->lun1, LUN_SIZE + MIB, MIB);
	sync_now(&s, f->a, "g1", NULL, false);
	assert_false(s.full);
	assert_true(s.bytes_transferred >= MIB && s.bytes_transferred <= 2 * MIB);
	assert_int_equal(rp_lun_get(&d, f->b, f->key1, &err), 0);
	assert_int_equal(d.size, 2 * LUN_SIZE);
	csum(ca, f->a, f->lun1);
	csum(cb, f->b, f->key1);
	assert_string_equal(ca, cb);
	verify_equal(f->a, f->b, "g1");
}

/* ------------------------------------------------------------------------------------------ */
/* Test failover                                                                               */

static void test_test_failover__copy_and_replication_untouched(void **state)
{
	struct fx *f = *state;
	struct rp_result *r;
	struct rp_sync_session s;
	char before[40], after[40], tc[40], snap1[RP_ID_MAX];
	const struct rp_item *it;

	seed_and_sync(f);
	printf("# checkTestFailoverStart on the target group passes\n");
	r = run_wf(rp_check_test_failover, f->b, "g1", NULL);
	assert_all_ok(r);
	rp_result_free(r);

	csum(before, f->b, f->key1);
	printf("# testFailoverStart: writable copy with its own WWN per device\n");
	r = run_wf(rp_test_failover_start, f->b, "g1", NULL);
	assert_all_ok(r);
	assert_int_equal(r->n, 3);
	it = find_item(r, f->key1);
	assert_true(it->snapshot[0] && it->snapshot_wwn[0]);
	assert_string_not_equal(it->snapshot_wwn, it->wwn);
	assert_true(it->recovery_point[0]);
	snprintf(snap1, sizeof(snap1), "%s", it->snapshot);
	rp_result_free(r);
	csum(tc, f->b, snap1);
	assert_string_equal(tc, before);
	write_lun(f->b, snap1, 0, MIB);
	csum(tc, f->b, snap1);
	assert_string_not_equal(tc, before);
	csum(after, f->b, f->key1);
	assert_string_equal(after, before);
	dev_state(f->b, f->key1, RP_DEV_TARGET, true);

	printf("# checkTestFailoverStart while the test runs -> RP_EBUSY\n");
	r = run_wf(rp_check_test_failover, f->b, NULL, f->key1);
	assert_int_equal(r->items[0].code, RP_EBUSY);
	rp_result_free(r);

	printf("# a second start while the test runs -> RP_EBUSY\n");
	r = run_wf(rp_test_failover_start, f->b, "g1", NULL);
	assert_int_equal(r->items[0].code, RP_EBUSY);
	rp_result_free(r);

	printf("# replication keeps going during the test\n");
	write_lun(f->a, f->lun1, MIB, MIB);
	sync_now(&s, f->a, "g1", NULL, false);
	assert_int_equal(s.bytes_transferred, MIB);
	verify_equal(f->a, f->b, "g1");
	csum(tc, f->b, snap1);
	assert_string_not_equal(tc, before); /* the test copy is independent */

	printf("# testFailoverStop deletes the copies; repeating it warns ALREADY_DONE\n");
	r = run_wf(rp_test_failover_stop, f->b, "g1", NULL);
	assert_all_ok(r);
	rp_result_free(r);
	{
		struct rp_error err;

		rp_error_clear(&err);
		assert_int_equal(rp_lun_checksum(tc, f->b, snap1, &err), RP_ENOTFOUND);
	}
	r = run_wf(rp_test_failover_stop, f->b, "g1", NULL);
	assert_all_ok(r);
	assert_all_warn(r, RP_WARN_ALREADY_DONE);
	rp_result_free(r);

	printf("# test failover of a standalone device, twice\n");
	r = run_wf(rp_test_failover_start, f->b, NULL, f->solo_key);
	assert_all_ok(r);
	rp_result_free(r);
	r = run_wf(rp_test_failover_start, f->b, NULL, f->solo_key);
	assert_int_equal(r->items[0].code, RP_EBUSY);
	rp_result_free(r);
	r = run_wf(rp_test_failover_stop, f->b, NULL, f->solo_key);
	assert_all_ok(r);
	rp_result_free(r);
}

static void test_test_failover__wrong_state(void **state)
{
	struct fx *f = *state;
	struct rp_result *r;

	printf("# before the first sync: no recovery point -> RP_ESTATE\n");
	r = run_wf(rp_test_failover_start, f->b, "g1", NULL);
	assert_int_equal(r->items[0].code, RP_ESTATE);
	assert_true(r->items[0].msg[0] != '\0');
	rp_result_free(r);
	printf("# on the source array -> RP_ESTATE per device\n");
	r = run_wf(rp_check_test_failover, f->a, NULL, f->lun1);
	assert_int_equal(r->items[0].code, RP_ESTATE);
	rp_result_free(r);
}

/* ------------------------------------------------------------------------------------------ */
/* Planned migration, reverse, failback                                                        */

/* Spare objects kept for device @dev of @a (docs/internals/sync.md "Spare objects"). */
static int64_t spare_rows(struct rp_array *a, const char *dev)
{
	int64_t n = -1;

	assert_int_equal(meta_query_int(&n, a->db, NULL,
	                                "SELECT COUNT(*) FROM snapshots WHERE kind = 'spare'"
	                                " AND device = ?",
	                                "t", dev),
	                 0);
	return n;
}

static void test_migration__prepare_sync_failover_reverse(void **state)
{
	struct fx *f = *state;
	struct rp_result *r;
	struct rp_sync_session s;
	const struct rp_item *it;
	char ca[40], cb[40];

	seed_and_sync(f);
	printf("# prepareFailover at A: snapshot, demoted, read-only; repeat = ALREADY_DONE\n");
	r = run_wf(rp_prepare_failover, f->a, "g1", NULL);
	assert_all_ok(r);
	assert_int_equal(r->n, 3);
	it = find_item(r, f->lun1);
	assert_true(it->snapshot[0]);
	assert_string_equal(it->state, "demoted-source");
	rp_result_free(r);
	dev_state(f->a, f->lun1, RP_DEV_DEMOTED_SOURCE, true);
	assert_int_equal(snap_count(f->a, f->lun1, "prefailover"), 1);
	r = run_wf(rp_prepare_failover, f->a, "g1", NULL);
	assert_all_ok(r);
	assert_all_warn(r, RP_WARN_ALREADY_DONE);
	assert_true(find_item(r, f->lun1)->snapshot[0]);
	rp_result_free(r);
	assert_int_equal(snap_count(f->a, f->lun1, "prefailover"), 1);
	dev_state(f->a, f->lun1, RP_DEV_DEMOTED_SOURCE, true);

	printf("# syncOnce from the demoted source still works\n");
	sync_now(&s, f->a, "g1", NULL, false);
	verify_equal(f->a, f->b, "g1");
	/* without reflink the old base is kept as the source's spare */
	assert_int_equal(spare_rows(f->a, f->lun1), (f->a->drv->caps & ARRAY_CAP_REFLINK) ? 0 : 1);

	printf("# checkFailover then failover at B: revert snapshot, promoted read-write\n");
	r = run_wf(rp_check_failover, f->b, "g1", NULL);
	assert_all_ok(r);
	rp_result_free(r);
	r = run_wf(rp_failover, f->b, "g1", NULL);
	assert_all_ok(r);
	it = find_item(r, f->key1);
	assert_string_equal(it->new_id, f->key1);
	assert_true(it->snapshot[0]);
	rp_result_free(r);
	dev_state(f->b, f->key1, RP_DEV_PROMOTED_TARGET, false);
	csum(cb, f->b, f->key1);
	r = run_wf(rp_failover, f->b, "g1", NULL);
	assert_all_ok(r);
	assert_all_warn(r, RP_WARN_ALREADY_DONE);
	assert_string_equal(find_item(r, f->key1)->new_id, f->key1);
	assert_true(find_item(r, f->key1)->snapshot[0]);
	rp_result_free(r);
	assert_int_equal(snap_count(f->b, f->key1, "revert"), 1);
	csum(ca, f->b, f->key1);
	assert_string_equal(ca, cb);

	printf("# sync is refused while the target is promoted\n");
	{
		const char *groups[1] = { "g1" };
		struct rp_request req = { .groups = groups, .n_groups = 1 };
		struct rp_sync_opts o = { .foreground = true };

		assert_int_equal(rp_sync_start(&r, f->a, &req, &o, NULL), 0);
		assert_int_equal(r->items[0].code, RP_ESTATE);
		rp_result_free(r);
	}

	printf("# work at B: 1 MiB written after failover\n");
	write_lun(f->b, f->key1, 5 * MIB, MIB);

	printf("# prepareReverse at A, reverse at B; repeat = ALREADY_DONE\n");
	r = run_wf(rp_prepare_reverse, f->a, "g1", NULL);
	assert_all_ok(r);
	rp_result_free(r);
	r = run_wf(rp_reverse, f->b, "g1", NULL);
	assert_all_ok(r);
	assert_string_equal(find_item(r, f->key1)->new_id, f->lun1);
	assert_false(has_warning(find_item(r, f->key1), RP_WARN_TAIL_KEPT));
	rp_result_free(r);
	dev_state(f->b, f->key1, RP_DEV_SOURCE, false);
	dev_state(f->a, f->lun1, RP_DEV_TARGET, true);
	printf("#   A's LUN is a target now: its spare (an old source base) is gone\n");
	assert_int_equal(spare_rows(f->a, f->lun1), 0);
	r = run_wf(rp_reverse, f->b, "g1", NULL);
	assert_all_ok(r);
	assert_all_warn(r, RP_WARN_ALREADY_DONE);
	rp_result_free(r);

	printf("# the reverse sync B->A moves only what B wrote (1 MiB)\n");
	sync_now(&s, f->b, "g1", NULL, false);
	assert_false(s.full);
	assert_string_equal(s.source_array, "siteB");
	printf("#   moved %llu bytes\n", (unsigned long long)s.bytes_transferred);
	assert_int_equal(s.bytes_transferred, MIB);
	verify_equal(f->b, f->a, "g1");
	csum(ca, f->a, f->lun1);
	csum(cb, f->b, f->key1);
	assert_string_equal(ca, cb);

	printf("# failback: prepareFailover at B, failover at A, reverse at A\n");
	r = run_wf(rp_prepare_failover, f->b, "g1", NULL);
	assert_all_ok(r);
	rp_result_free(r);
	sync_now(&s, f->b, "g1", NULL, false);
	assert_int_equal(s.bytes_transferred, 0);
	r = run_wf(rp_failover, f->a, "g1", NULL);
	assert_all_ok(r);
	rp_result_free(r);
	r = run_wf(rp_reverse, f->a, "g1", NULL);
	assert_all_ok(r);
	rp_result_free(r);
	dev_state(f->a, f->lun1, RP_DEV_SOURCE, false);
	dev_state(f->b, f->key1, RP_DEV_TARGET, true);
	write_lun(f->a, f->lun2, 0, 64 * 1024);
	sync_now(&s, f->a, "g1", NULL, false);
	assert_int_equal(s.bytes_transferred, 64 * 1024);
	verify_equal(f->a, f->b, "g1");
}

static void test_failover__aborts_incoming_sync(void **state)
{
	struct fx *f = *state;
	const char *groups[1] = { "g1" };
	struct rp_request req = { .groups = groups, .n_groups = 1 };
	struct rp_result *r = NULL;
	struct rp_sync_session s;
	struct rp_error err;
	char sid[RP_ID_MAX], before[40], after[40], stage[ARRAY_OBJ_MAX];
	bool exists = true;
	int i;

	seed_and_sync(f);
	csum(before, f->b, f->key1);
	printf("# failover at B while a sync into B is moving data: sync fails, data intact\n");
	write_lun(f->a, f->lun1, 0, 12 * MIB);
	setenv(SYNC_ENV_THROTTLE, "50", 1);
	rp_error_clear(&err);
	assert_int_equal(rp_sync_start(&r, f->a, &req, NULL, &err), 0);
	assert_all_ok(r);
	snprintf(sid, sizeof(sid), "%s", r->items[0].session);
	rp_result_free(r);
	for (i = 0; i < 400; i++) {
		assert_int_equal(rp_sync_get(&s, f->b, sid, &err), 0);
		if (s.bytes_transferred >= MIB)
			break;
		usleep(25000);
	}
	assert_int_equal(s.status, RP_SYNC_IN_PROGRESS);
	r = run_wf(rp_failover, f->b, "g1", NULL);
	assert_all_ok(r);
	rp_result_free(r);
	unsetenv(SYNC_ENV_THROTTLE);
	assert_int_equal(rp_sync_wait(&s, f->a, sid, 60000, NULL, NULL, &err), 0);
	assert_int_equal(s.status, RP_SYNC_FAILED);
	printf("#   session failed: %s\n", s.error);
	assert_non_null(strstr(s.error, "failover"));
	csum(after, f->b, f->key1);
	assert_string_equal(after, before);
	dev_state(f->b, f->key1, RP_DEV_PROMOTED_TARGET, false);
	snprintf(stage, sizeof(stage), "stage-%s-%s", sid, f->key1);
	printf("# the worker removes its staging objects and in-flight snapshots\n");
	for (i = 0; i < 200; i++) {
		struct rp_array *b = f->b;

		/* the worker may still be unwinding */
		assert_int_equal(b->drv->ops->obj_exists(&exists, b->drv, stage, &err), 0);
		if (!exists && snap_count(f->a, f->lun1, "sync") == 0)
			break;
		usleep(20000);
	}
	assert_false(exists);
	assert_int_equal(snap_count(f->a, f->lun1, "sync"), 0);
}

/* ------------------------------------------------------------------------------------------ */
/* Disaster order and restore                                                                  */

static void test_disaster__failover_peer_down_then_prepare(void **state)
{
	struct fx *f = *state;
	struct rp_result *r;
	struct rp_sync_session s;
	const struct rp_item *it;
	struct rp_error err;
	char c_tail[40], c_base[40];

	seed_and_sync(f);
	printf("# unreplicated writes at A, then site A disappears\n");
	write_lun(f->a, f->lun1, 10 * MIB, MIB);
	csum(c_tail, f->a, f->lun1);
	rp_array_close(f->a);
	f->a = NULL;
	assert_int_equal(rename(f->path_a, f->path_a_moved), 0);

	printf("# test failover start/stop at B works with the peer unreachable\n");
	r = run_wf(rp_test_failover_start, f->b, "g1", f->solo_key);
	assert_all_ok(r);
	assert_int_equal(r->n, 4);
	rp_result_free(r);
	r = run_wf(rp_test_failover_stop, f->b, "g1", f->solo_key);
	assert_all_ok(r);
	rp_result_free(r);
	assert_int_equal(snap_count(f->b, f->key1, "test"), 0);
	printf("# failover at B works with the peer unreachable (group and standalone)\n");
	r = run_wf(rp_failover, f->b, "g1", NULL);
	assert_all_ok(r);
	rp_result_free(r);
	r = run_wf(rp_failover, f->b, NULL, f->solo_key);
	assert_all_ok(r);
	rp_result_free(r);
	dev_state(f->b, f->key1, RP_DEV_PROMOTED_TARGET, false);
	csum(c_base, f->b, f->key1);
	printf("# reverse needs the peer: RP_EUNREACHABLE per item\n");
	r = run_wf(rp_reverse, f->b, "g1", NULL);
	assert_int_equal(r->items[0].code, RP_EUNREACHABLE);
	rp_result_free(r);

	printf("# site A returns; prepareFailover succeeds with UNUSUAL_ORDER\n");
	assert_int_equal(rename(f->path_a_moved, f->path_a), 0);
	rp_error_clear(&err);
	assert_int_equal(rp_array_open(&f->a, f->path_a, NULL, &err), 0);
	r = run_wf(rp_prepare_failover, f->a, "g1", NULL);
	assert_all_ok(r);
	assert_true(has_warning(find_item(r, f->lun1), RP_WARN_UNUSUAL_ORDER));
	rp_result_free(r);

	printf("# reverse at B keeps A's unreplicated writes as a tail snapshot\n");
	r = run_wf(rp_reverse, f->b, "g1", NULL);
	assert_all_ok(r);
	it = find_item(r, f->key1);
	assert_true(has_warning(it, RP_WARN_TAIL_KEPT));
	assert_false(has_warning(find_item(r, f->key2), RP_WARN_TAIL_KEPT));
	rp_result_free(r);
	{
		char c_now[40];

		csum(c_now, f->a, f->lun1); /* rolled back to the base == B's data */
		assert_string_equal(c_now, c_base);
		assert_string_not_equal(c_now, c_tail);
	}
	sync_now(&s, f->b, "g1", NULL, false);
	assert_int_equal(s.bytes_transferred, 0);
	verify_equal(f->b, f->a, "g1");

	printf("# standalone device: reverse without prepareFailover, then sync B->A\n");
	r = run_wf(rp_prepare_reverse, f->a, NULL, f->solo);
	assert_all_ok(r);
	assert_true(has_warning(&r->items[0], RP_WARN_UNUSUAL_ORDER));
	rp_result_free(r);
	write_lun(f->b, f->solo_key, 2 * MIB, 128 * 1024);
	r = run_wf(rp_reverse, f->b, NULL, f->solo_key);
	assert_all_ok(r);
	assert_string_equal(r->items[0].new_id, f->solo);
	rp_result_free(r);
	dev_state(f->a, f->solo, RP_DEV_TARGET, true);
	sync_now(&s, f->b, NULL, f->solo_key, true);
	assert_int_equal(s.bytes_transferred, 128 * 1024);
	{
		char x[40], y[40];

		csum(x, f->a, f->solo);
		csum(y, f->b, f->solo_key);
		assert_string_equal(x, y);
	}
}

static void test_restore__discards_promoted_changes(void **state)
{
	struct fx *f = *state;
	struct rp_result *r;
	struct rp_sync_session s;
	char c_rp[40], c_now[40];

	printf("# RPO of 1 s: a failover 1.2 s after the last sync warns RP_WARN_STALE_RP\n");
	assert_int_equal(rp_group_set_policy(f->a, "g1", 1, 3, NULL), 0);
	seed_and_sync(f);
	csum(c_rp, f->b, f->key1);
	usleep(1200 * 1000);
	printf("# failover at B, writes at B, then restore at A discards them\n");
	r = run_wf(rp_failover, f->b, "g1", NULL);
	assert_all_ok(r);
	assert_true(has_warning(find_item(r, f->key1), RP_WARN_STALE_RP));
	rp_result_free(r);
	write_lun(f->b, f->key1, 0, 2 * MIB);
	csum(c_now, f->b, f->key1);
	assert_string_not_equal(c_now, c_rp);
	r = run_wf(rp_prepare_restore, f->b, "g1", NULL);
	assert_all_ok(r);
	rp_result_free(r);
	r = run_wf(rp_restore, f->a, "g1", NULL);
	assert_all_ok(r);
	rp_result_free(r);
	csum(c_now, f->b, f->key1);
	assert_string_equal(c_now, c_rp);
	dev_state(f->b, f->key1, RP_DEV_TARGET, true);
	dev_state(f->a, f->lun1, RP_DEV_SOURCE, false);
	r = run_wf(rp_restore, f->a, "g1", NULL);
	assert_all_ok(r);
	assert_all_warn(r, RP_WARN_ALREADY_DONE);
	rp_result_free(r);

	printf("# the next sync is incremental: only A's new writes move\n");
	write_lun(f->a, f->lun2, MIB, 256 * 1024);
	sync_now(&s, f->a, "g1", NULL, false);
	assert_false(s.full);
	assert_int_equal(s.bytes_transferred, 256 * 1024);
	verify_equal(f->a, f->b, "g1");

	printf("# restore of a standalone device after prepareFailover only\n");
	r = run_wf(rp_prepare_failover, f->a, NULL, f->solo);
	assert_all_ok(r);
	rp_result_free(r);
	r = run_wf(rp_restore, f->a, NULL, f->solo);
	assert_all_ok(r);
	assert_false(has_warning(&r->items[0], RP_WARN_ALREADY_DONE));
	rp_result_free(r);
	dev_state(f->a, f->solo, RP_DEV_SOURCE, false);
}

/* ------------------------------------------------------------------------------------------ */
/* Partial success, wrong state, filters                                                       */

static void test_partial__one_bad_device(void **state)
{
	struct fx *f = *state;
	const char *devs[3] = { f->solo_key, "siteB-999999", "../etc" };
	struct rp_request req = { .devices = devs, .n_devices = 3 };
	struct rp_result *r = NULL;
	struct rp_error err;

	seed_and_sync(f);
	printf("# failover of one good and two bad device ids: good one promoted, others fail\n");
	rp_error_clear(&err);
	assert_int_equal(rp_failover(&r, f->b, &req, &err), 0);
	assert_int_equal(r->n, 3);
	assert_int_equal(r->items[0].code, 0);
	assert_int_equal(r->items[1].code, RP_ENOTFOUND);
	assert_true(r->items[1].msg[0] != '\0');
	assert_true(r->items[2].code < 0);
	rp_result_free(r);
	dev_state(f->b, f->solo_key, RP_DEV_PROMOTED_TARGET, false);

	printf("# unknown group -> group item RP_ENOTFOUND\n");
	r = run_wf(rp_failover, f->b, "nosuchgroup", NULL);
	assert_int_equal(r->items[0].code, RP_ENOTFOUND);
	rp_result_free(r);
}

static void test_wrong_state__each_workflow(void **state)
{
	struct fx *f = *state;
	struct rp_result *r;

	seed_and_sync(f);
	printf("# failover on the source array -> RP_ESTATE, nothing changes\n");
	r = run_wf(rp_failover, f->a, "g1", NULL);
	assert_int_equal(r->items[0].code, RP_ESTATE);
	rp_result_free(r);
	dev_state(f->a, f->lun1, RP_DEV_SOURCE, false);
	printf("# prepareFailover on a target -> RP_ESTATE\n");
	r = run_wf(rp_prepare_failover, f->b, NULL, f->key1);
	assert_int_equal(r->items[0].code, RP_ESTATE);
	rp_result_free(r);
	dev_state(f->b, f->key1, RP_DEV_TARGET, true);
	printf("# reverse before failover -> RP_ESTATE\n");
	r = run_wf(rp_reverse, f->b, "g1", NULL);
	assert_int_equal(r->items[0].code, RP_ESTATE);
	rp_result_free(r);
	printf("# restore on the target side -> RP_ESTATE\n");
	r = run_wf(rp_restore, f->b, "g1", NULL);
	assert_int_equal(r->items[0].code, RP_ESTATE);
	rp_result_free(r);
	printf("# prepareRestore on a non-promoted target -> ALREADY_DONE (target already)\n");
	r = run_wf(rp_prepare_restore, f->b, "g1", NULL);
	assert_all_ok(r);
	for (size_t i = 0; i < r->n; i++)
		if (!r->items[i].is_group)
			assert_true(has_warning(&r->items[i], RP_WARN_ALREADY_DONE));
	rp_result_free(r);
	printf("# reverse / restore / their prepares of one member of a group -> RP_EINVAL\n");
	r = run_wf(rp_reverse, f->b, NULL, f->key1);
	assert_int_equal(r->items[0].code, RP_EINVAL);
	assert_non_null(strstr(r->items[0].msg, "g1"));
	rp_result_free(r);
	r = run_wf(rp_prepare_reverse, f->b, NULL, f->key1);
	assert_int_equal(r->items[0].code, RP_EINVAL);
	rp_result_free(r);
	r = run_wf(rp_restore, f->a, NULL, f->lun1);
	assert_int_equal(r->items[0].code, RP_EINVAL);
	rp_result_free(r);
	r = run_wf(rp_prepare_restore, f->b, NULL, f->key1);
	assert_int_equal(r->items[0].code, RP_EINVAL);
	rp_result_free(r);
	dev_state(f->a, f->lun1, RP_DEV_SOURCE, false);
	dev_state(f->b, f->key1, RP_DEV_TARGET, true);
}

static void test_filter__name_prefix(void **state)
{
	struct fx *f = *state;
	const char *devs[2] = { f->key1, f->solo_key };
	struct rp_request req = { .devices = devs, .n_devices = 2, .name_filter = "vdi-" };
	struct rp_result *r = NULL;

	seed_and_sync(f);
	printf("# name filter 'vdi-': solo skipped with RP_WARN_FILTERED, untouched\n");
	assert_int_equal(rp_failover(&r, f->b, &req, NULL), 0);
	assert_int_equal(r->n, 2);
	assert_int_equal(r->items[0].code, 0);
	assert_true(has_warning(&r->items[1], RP_WARN_FILTERED));
	rp_result_free(r);
	dev_state(f->b, f->solo_key, RP_DEV_TARGET, true);
	dev_state(f->b, f->key1, RP_DEV_PROMOTED_TARGET, false);
}

/* ------------------------------------------------------------------------------------------ */
/* LUNs made at the recovery site after failover: reverse adopts them, restore leaves them    */

static int64_t count_rows(struct rp_array *a, const char *sql)
{
	int64_t n = -1;

	assert_int_equal(meta_query_int(&n, a->db, NULL, sql, ""), 0);
	return n;
}

/* Fails over g1 at B and makes LUN "new-at-b" (2 MiB of data) in the failed-over group. */
static void failover_and_new_lun(struct fx *f, char nid[RP_ID_MAX])
{
	struct rp_lun_create_opts o = { .group = "g1" };
	struct rp_result *r;
	struct rp_device d;
	struct rp_error err;

	r = run_wf(rp_failover, f->b, "g1", NULL);
	assert_all_ok(r);
	rp_result_free(r);
	rp_error_clear(&err);
	if (rp_lun_create(&d, f->b, "new-at-b", 4 * MIB, &o, &err) != 0)
		fail_msg("lun create at B: %s", err.msg);
	snprintf(nid, RP_ID_MAX, "%s", d.id);
	dev_state(f->b, nid, RP_DEV_LOCAL, false);
	write_lun(f->b, nid, 0, 2 * MIB);
}

/* The id and image path the next LUN made on @a will get. */
static void next_lun_path(char *path, size_t len, struct fx *f, struct rp_array *a,
                          const char *root)
{
	char id[RP_ID_MAX];
	int64_t seq = 0;

	assert_int_equal(meta_txn_begin(a->db, NULL), 0);
	assert_int_equal(meta_next_seq(&seq, a->db, NULL), 0);
	meta_txn_rollback(a->db);
	assert_int_equal(model_device_id(id, a->id, seq, NULL), 0);
	snprintf(path, len, "%s/data/lun-%s.img", root, id);
	(void)f;
}

/* States of everything the reverse could have touched, to show that nothing changed. */
struct world {
	char c_lun1[40], c_key1[40], c_new[40];
	int64_t devs_a, devs_b, snaps_a, intents_a, intents_b;
};

static void world_get(struct world *w, struct fx *f, const char *nid)
{
	csum(w->c_lun1, f->a, f->lun1);
	csum(w->c_key1, f->b, f->key1);
	csum(w->c_new, f->b, nid);
	w->devs_a = count_rows(f->a, "SELECT COUNT(*) FROM devices");
	w->devs_b = count_rows(f->b, "SELECT COUNT(*) FROM devices");
	w->snaps_a = count_rows(f->a, "SELECT COUNT(*) FROM snapshots");
	w->intents_a = count_rows(f->a, "SELECT COUNT(*) FROM intents");
	w->intents_b = count_rows(f->b, "SELECT COUNT(*) FROM intents");
}

static void assert_unchanged(struct fx *f, const char *nid, const struct world *before,
                             enum rp_dev_state a_state, bool a_ro)
{
	struct world now;
	struct rp_group g;

	world_get(&now, f, nid);
	assert_string_equal(now.c_lun1, before->c_lun1);
	assert_string_equal(now.c_key1, before->c_key1);
	assert_string_equal(now.c_new, before->c_new);
	assert_int_equal(now.devs_a, before->devs_a);
	assert_int_equal(now.devs_b, before->devs_b);
	assert_int_equal(now.snaps_a, before->snaps_a);
	assert_int_equal(now.intents_a, 0);
	assert_int_equal(now.intents_b, 0);
	dev_state(f->b, f->key1, RP_DEV_PROMOTED_TARGET, false);
	dev_state(f->b, f->key2, RP_DEV_PROMOTED_TARGET, false);
	dev_state(f->b, nid, RP_DEV_LOCAL, false);
	dev_state(f->a, f->lun1, a_state, a_ro);
	dev_state(f->a, f->lun2, a_state, a_ro);
	assert_int_equal(rp_group_get(&g, f->b, "g1", NULL), 0);
	assert_int_equal(g.role, RP_GROUP_PROMOTED_TARGET);
	assert_int_equal(rp_group_get(&g, f->a, "g1", NULL), 0);
	assert_int_equal(g.role,
	                 a_state == RP_DEV_SOURCE ? RP_GROUP_SOURCE : RP_GROUP_DEMOTED_SOURCE);
}

/* Reverse at B succeeded for g1 with adopted LUN @nid: states, then a sync brings it to A. */
static void check_reversed_with_new(struct fx *f, const char *nid, uint64_t b_wrote)
{
	struct rp_sync_session s;
	struct rp_device n, t;
	char cn[40], ct[40];

	assert_int_equal(rp_lun_get(&n, f->b, nid, NULL), 0);
	assert_int_equal(n.state, RP_DEV_SOURCE);
	assert_string_equal(n.peer_array, "siteA");
	assert_int_equal(rp_lun_get(&t, f->a, n.peer_device, NULL), 0);
	printf("#   '%s' adopted: target '%s' on A (%s, %s)\n", nid, t.id,
	       rp_dev_state_name(t.state), t.read_only ? "ro" : "rw");
	assert_int_equal(t.state, RP_DEV_TARGET);
	assert_true(t.read_only);
	assert_string_equal(t.name, "new-at-b");
	assert_string_equal(t.group, "g1");
	assert_string_equal(t.peer_device, nid);
	dev_state(f->b, f->key1, RP_DEV_SOURCE, false);
	dev_state(f->a, f->lun1, RP_DEV_TARGET, true);
	dev_state(f->a, f->lun2, RP_DEV_TARGET, true);

	printf("# sync B->A: the adopted LUN is copied in full, the others incrementally\n");
	sync_now(&s, f->b, "g1", NULL, false);
	printf("#   moved %llu bytes\n", (unsigned long long)s.bytes_transferred);
	assert_int_equal(s.bytes_transferred, 2 * MIB + b_wrote);
	verify_equal(f->b, f->a, "g1");
	csum(cn, f->b, nid);
	csum(ct, f->a, t.id);
	assert_string_equal(cn, ct);
}

static void test_reverse__adopts_lun_made_after_failover(void **state)
{
	struct fx *f = *state;
	struct rp_result *r;
	const struct rp_item *it;
	char nid[RP_ID_MAX];
	struct rp_device n;

	seed_and_sync(f);
	printf("# failover at B, a LUN made in the failed-over group at B (local), B writes\n");
	failover_and_new_lun(f, nid);
	write_lun(f->b, f->key1, 3 * MIB, MIB);
	printf("# repeated failover and checkFailover accept the new LUN (ALREADY_DONE)\n");
	r = run_wf(rp_failover, f->b, "g1", NULL);
	assert_all_ok(r);
	assert_true(has_warning(find_item(r, nid), RP_WARN_ALREADY_DONE));
	rp_result_free(r);
	r = run_wf(rp_check_failover, f->b, "g1", NULL);
	assert_all_ok(r);
	rp_result_free(r);

	printf("# reverse at B: every member becomes a source, the new LUN gets a target at A\n");
	r = run_wf(rp_reverse, f->b, "g1", NULL);
	assert_all_ok(r);
	assert_int_equal(r->n, 4);
	it = find_item(r, nid);
	assert_string_equal(it->state, "source");
	assert_true(it->new_id[0] != '\0');
	assert_string_equal(find_item(r, f->key1)->new_id, f->lun1);
	rp_result_free(r);
	check_reversed_with_new(f, nid, MIB);
	assert_int_equal(count_rows(f->a, "SELECT COUNT(*) FROM intents"), 0);
	assert_int_equal(count_rows(f->b, "SELECT COUNT(*) FROM intents"), 0);

	printf("# repeat: ALREADY_DONE on every item, nothing made twice\n");
	r = run_wf(rp_reverse, f->b, "g1", NULL);
	assert_all_ok(r);
	assert_all_warn(r, RP_WARN_ALREADY_DONE);
	assert_int_equal(rp_lun_get(&n, f->b, nid, NULL), 0);
	assert_string_equal(find_item(r, nid)->new_id, n.peer_device);
	rp_result_free(r);
	assert_int_equal(count_rows(f->a, "SELECT COUNT(*) FROM devices WHERE grp = 'g1'"), 3);
}

static void test_reverse__all_or_nothing(void **state)
{
	struct fx *f = *state;
	struct rp_result *r;
	struct world before;
	char nid[RP_ID_MAX], block[1200];
	size_t i;

	seed_and_sync(f);
	printf("# A keeps writing after the sync (not demoted), then failover at B + new LUN\n");
	write_lun(f->a, f->lun1, 6 * MIB, MIB);
	failover_and_new_lun(f, nid);
	write_lun(f->b, f->key1, 3 * MIB, MIB);
	printf("# A has a LUN of the same name: reverse fails (RP_EEXISTS), nothing changed\n");
	{
		struct rp_device other;

		assert_int_equal(rp_lun_create(&other, f->a, "new-at-b", MIB, NULL, NULL), 0);
		world_get(&before, f, nid);
		r = run_wf(rp_reverse, f->b, "g1", NULL);
		printf("#   group: %s\n", r->items[0].msg);
		for (i = 0; i < r->n; i++)
			assert_int_equal(r->items[i].code, RP_EEXISTS);
		rp_result_free(r);
		assert_unchanged(f, nid, &before, RP_DEV_SOURCE, false);
		assert_int_equal(rp_lun_delete(f->a, other.id, NULL), 0);
	}
	world_get(&before, f, nid);

	printf("# the target of the new LUN cannot be made at A: reverse fails, nothing changed\n");
	next_lun_path(block, sizeof(block), f, f->a, f->path_a);
	assert_int_equal(mkdir(block, 0755), 0);
	r = run_wf(rp_reverse, f->b, "g1", NULL);
	printf("#   group: %s\n", r->items[0].msg);
	for (i = 0; i < r->n; i++)
		assert_true(r->items[i].code < 0);
	rp_result_free(r);
	assert_int_equal(rmdir(block), 0);
	assert_unchanged(f, nid, &before, RP_DEV_SOURCE, false);
	assert_int_equal(snap_count(f->a, f->lun1, "tail"), 0);

	printf("# the adoption works but staging lun1's base at A fails: adoption undone too\n");
	snprintf(block, sizeof(block), "%s/data/stage-rev-%s.img", f->path_a, f->lun1);
	assert_int_equal(mkdir(block, 0755), 0);
	r = run_wf(rp_reverse, f->b, "g1", NULL);
	printf("#   group: %s\n", r->items[0].msg);
	for (i = 0; i < r->n; i++)
		assert_true(r->items[i].code < 0);
	rp_result_free(r);
	assert_int_equal(rmdir(block), 0);
	assert_unchanged(f, nid, &before, RP_DEV_SOURCE, false);
	assert_int_equal(snap_count(f->a, f->lun1, "tail"), 0);

	printf("# with the obstacles gone the same reverse succeeds (A's late writes kept)\n");
	r = run_wf(rp_reverse, f->b, "g1", NULL);
	assert_all_ok(r);
	assert_true(has_warning(find_item(r, f->key1), RP_WARN_TAIL_KEPT));
	rp_result_free(r);
	assert_int_equal(snap_count(f->a, f->lun1, "tail"), 1);
	check_reversed_with_new(f, nid, MIB);
}

/*
 * Runs workflow @fn at B on @req (NULL: group g1) in a child that dies at @point; reopens both
 * arrays after.
 */
static void wf_crash_at(struct fx *f, wf_fn fn, const struct rp_request *req, const char *name,
                        const char *point)
{
	pid_t pid;
	int st;

	rp_array_close(f->a);
	rp_array_close(f->b);
	f->a = f->b = NULL;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		const char *groups[1] = { "g1" };
		struct rp_request g1 = { .groups = groups, .n_groups = 1 };
		struct rp_array *b = NULL;
		struct rp_result *r = NULL;

		setenv("REPLUN_TEST_CRASH_AT", point, 1);
		if (rp_array_open(&b, f->path_b, NULL, NULL) != 0)
			_exit(2);
		(void)fn(&r, b, req ? req : &g1, NULL);
		_exit(3); /* the crash point was not reached */
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 86);
	printf("#   %s died at '%s'; reopening the arrays recovers\n", name, point);
	assert_int_equal(rp_array_open(&f->b, f->path_b, NULL, NULL), 0);
	assert_int_equal(rp_array_open(&f->a, f->path_a, NULL, NULL), 0);
}

static void reverse_crash_at(struct fx *f, const char *point)
{
	wf_crash_at(f, rp_reverse, NULL, "reverse", point);
}

/* Objects in @a's data directory (file array) that no snapshot or device row names. */
static int64_t unnamed_objs(struct rp_array *a, const char *root)
{
	char dir[800];
	struct dirent *de;
	int64_t n = 0;
	DIR *d;

	snprintf(dir, sizeof(dir), "%s/data", root);
	d = opendir(dir);
	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		size_t l = strlen(de->d_name);
		char obj[ARRAY_OBJ_MAX], sql[600];

		if (l <= 4 || strcmp(de->d_name + l - 4, ".img") != 0 || l - 4 >= sizeof(obj))
			continue;
		memcpy(obj, de->d_name, l - 4);
		obj[l - 4] = '\0';
		snprintf(sql, sizeof(sql),
		         "SELECT (SELECT COUNT(*) FROM snapshots WHERE obj = '%s') +"
		         " (SELECT COUNT(*) FROM devices WHERE obj = '%s')",
		         obj, obj);
		if (count_rows(a, sql) == 0) {
			printf("#   unnamed object '%s'\n", obj);
			n++;
		}
	}
	closedir(d);
	return n;
}

static void test_failover__crash_after_snapshot_leaves_nothing(void **state)
{
	struct fx *f = *state;
	struct rp_result *r;

	seed_and_sync(f);
	assert_int_equal(unnamed_objs(f->b, f->path_b), 0);
	printf("# failover of g1 at B dies once its first snapshot is made, before its row\n");
	wf_crash_at(f, rp_failover, NULL, "failover", "snapshot-made");
	assert_int_equal(count_rows(f->b, "SELECT COUNT(*) FROM intents"), 0);
	assert_int_equal(unnamed_objs(f->b, f->path_b), 0);
	printf("# failover again: done, the data as synced\n");
	r = run_wf(rp_failover, f->b, "g1", NULL);
	assert_all_ok(r);
	rp_result_free(r);
	dev_state(f->b, f->key1, RP_DEV_PROMOTED_TARGET, false);
	assert_int_equal(unnamed_objs(f->b, f->path_b), 0);
	{
		char ca[40], cb[40];

		csum(ca, f->a, f->lun1);
		csum(cb, f->b, f->key1);
		assert_string_equal(ca, cb);
	}
}

static void test_failover__crash_rolling_back_leaves_nothing(void **state)
{
	struct fx *f = *state;
	struct rp_sync_session s1, s2;
	const char *devs[1] = { f->key1 }, *rps[1];
	struct rp_request req = { .devices = devs, .n_devices = 1, .device_recovery_points = rps };
	struct rp_result *r;
	char c1[40], cb[40];

	write_lun(f->a, f->lun1, 0, 2 * MIB);
	sync_now(&s1, f->a, "g1", NULL, false);
	csum(c1, f->a, f->lun1);
	write_lun(f->a, f->lun1, 0, MIB);
	sync_now(&s2, f->a, "g1", NULL, false);
	rps[0] = s1.recovery_point;
	printf("# failover of a LUN at B to its older point dies with the old data staged\n");
	wf_crash_at(f, rp_failover, &req, "failover", "rollback-staged");
	assert_int_equal(count_rows(f->b, "SELECT COUNT(*) FROM intents"), 0);
	assert_int_equal(unnamed_objs(f->b, f->path_b), 0);
	printf("# failover to that point again: done, the LUN holds the older point's data\n");
	assert_int_equal(rp_failover(&r, f->b, &req, NULL), 0);
	assert_all_ok(r);
	rp_result_free(r);
	dev_state(f->b, f->key1, RP_DEV_PROMOTED_TARGET, false);
	csum(cb, f->b, f->key1);
	assert_string_equal(cb, c1);
	assert_int_equal(unnamed_objs(f->b, f->path_b), 0);
}

static void test_reverse__crash_rolled_back_or_finished(void **state)
{
	struct fx *f = *state;
	struct rp_result *r;
	struct world before;
	char nid[RP_ID_MAX];

	seed_and_sync(f);
	write_lun(f->a, f->lun1, 6 * MIB, MIB);
	failover_and_new_lun(f, nid);
	write_lun(f->b, f->key1, 3 * MIB, MIB);
	world_get(&before, f, nid);
	printf("# crash after the prepare phase (target made, base staged): rolled back\n");
	reverse_crash_at(f, "reverse-prepared");
	before.snaps_a++; /* the tail snapshot of A's late writes is kept, never deleted */
	assert_unchanged(f, nid, &before, RP_DEV_SOURCE, false);
	{
		char stage[ARRAY_OBJ_MAX];
		bool exists = true;

		snprintf(stage, sizeof(stage), "stage-rev-%s", f->lun1);
		assert_int_equal(f->a->drv->ops->obj_exists(&exists, f->a->drv, stage, NULL), 0);
		assert_false(exists);
	}

	printf("# crash while switching the states: finished at the next open\n");
	reverse_crash_at(f, "reverse-switching");
	assert_int_equal(count_rows(f->b, "SELECT COUNT(*) FROM intents"), 0);
	r = run_wf(rp_reverse, f->b, "g1", NULL);
	assert_all_ok(r);
	assert_all_warn(r, RP_WARN_ALREADY_DONE);
	rp_result_free(r);
	check_reversed_with_new(f, nid, MIB);
}

static void test_restore__lun_made_after_failover_left_out(void **state)
{
	struct fx *f = *state;
	struct rp_result *r;
	struct rp_sync_session s;
	struct rp_device n;
	char nid[RP_ID_MAX], c_new[40], c_now[40];

	seed_and_sync(f);
	failover_and_new_lun(f, nid);
	csum(c_new, f->b, nid);
	printf("# prepareRestore at B accepts the new LUN with a warning\n");
	r = run_wf(rp_prepare_restore, f->b, "g1", NULL);
	assert_all_ok(r);
	assert_true(has_warning(find_item(r, nid), RP_WARN_TAIL_KEPT));
	rp_result_free(r);
	printf("# restore at A: the group is A's again; the new LUN stays at B, standalone\n");
	r = run_wf(rp_restore, f->a, "g1", NULL);
	assert_all_ok(r);
	assert_true(has_warning(&r->items[0], RP_WARN_TAIL_KEPT));
	printf("#   %s\n", r->items[0].warnings[0].msg);
	rp_result_free(r);
	assert_int_equal(rp_lun_get(&n, f->b, nid, NULL), 0);
	assert_int_equal(n.state, RP_DEV_LOCAL);
	assert_false(n.read_only);
	assert_string_equal(n.group, "");
	csum(c_now, f->b, nid);
	assert_string_equal(c_now, c_new);
	dev_state(f->b, f->key1, RP_DEV_TARGET, true);
	assert_int_equal(count_rows(f->b, "SELECT COUNT(*) FROM devices WHERE grp = 'g1'"), 2);
	r = run_wf(rp_restore, f->a, "g1", NULL);
	assert_all_ok(r);
	assert_all_warn(r, RP_WARN_ALREADY_DONE);
	rp_result_free(r);
	printf("# the group replicates and fails over again as before\n");
	write_lun(f->a, f->lun2, 0, 256 * 1024);
	sync_now(&s, f->a, "g1", NULL, false);
	assert_int_equal(s.bytes_transferred, 256 * 1024);
	verify_equal(f->a, f->b, "g1");
	r = run_wf(rp_failover, f->b, "g1", NULL);
	assert_all_ok(r);
	assert_int_equal(r->n, 3);
	rp_result_free(r);
}

/* ------------------------------------------------------------------------------------------ */
/* Pending targets: a replicated LUN whose target the next sync makes (target_at_sync)        */

/* Makes a LUN of g1 on A (4 MiB) with its target left to the next sync; 1 MiB of data. */
static void pending_lun(struct fx *f, const char *name, char id[RP_ID_MAX])
{
	struct rp_lun_create_opts o = { .group = "g1", .target_at_sync = true };
	struct rp_device d;
	struct rp_error err;

	rp_error_clear(&err);
	if (rp_lun_create(&d, f->a, name, 4 * MIB, &o, &err) != 0)
		fail_msg("pending lun create: %s", err.msg);
	assert_int_equal(d.state, RP_DEV_SOURCE);
	assert_true(d.target_pending);
	assert_string_equal(d.peer_array, "siteB");
	assert_string_equal(d.peer_device, "");
	snprintf(id, RP_ID_MAX, "%s", d.id);
	write_lun(f->a, id, 0, MIB);
}

static int64_t count_named(struct rp_array *a, const char *name)
{
	int64_t n = -1;

	assert_int_equal(meta_query_int(&n, a->db, NULL,
	                                "SELECT COUNT(*) FROM devices WHERE name = ?", "t", name),
	                 0);
	return n;
}

static void test_pending__peer_untouched_then_sync_makes_target(void **state)
{
	struct fx *f = *state;
	struct rp_lun_create_opts eager = { .group = "g1" };
	struct rp_lun_copy_opts co = { .name = "late-snap", .target_at_sync = true };
	struct rp_sync_session s;
	struct rp_device d, t, *list = NULL;
	struct rp_error err;
	char late[RP_ID_MAX], snap[RP_ID_MAX], moved_b[800], ca[40], cb[40];
	int64_t intents_b;
	size_t n = 0, i;
	bool seen = false;

	seed_and_sync(f);
	printf("# site B's array is unreachable: only target_at_sync can add to g1\n");
	snprintf(moved_b, sizeof(moved_b), "%s.away", f->path_b);
	rp_array_close(f->a); /* drop A's cached peer handle */
	rp_array_close(f->b);
	f->b = NULL;
	assert_int_equal(rename(f->path_b, moved_b), 0);
	rp_error_clear(&err);
	assert_int_equal(rp_array_open(&f->a, f->path_a, NULL, &err), 0);
	assert_int_equal(rp_lun_create(&d, f->a, "eager", 4 * MIB, &eager, &err), RP_EUNREACHABLE);
	pending_lun(f, "late", late);
	rp_error_clear(&err);
	assert_int_equal(rp_lun_snapshot_ex(&d, f->a, late, &co, &err), 0);
	assert_true(d.target_pending);
	snprintf(snap, sizeof(snap), "%s", d.id);
	printf("# resize, rename, metadata of a pending LUN touch no peer\n");
	assert_int_equal(rp_lun_resize(f->a, late, 8 * MIB, &err), 0);
	assert_int_equal(rp_lun_rename(f->a, late, "late-renamed", &err), 0);
	assert_int_equal(rp_lun_meta_set(f->a, late, "vdi.name_label", "late disk", &err), 0);
	write_lun(f->a, late, 6 * MIB, MIB);
	assert_int_equal(rename(moved_b, f->path_b), 0);
	assert_int_equal(rp_array_open(&f->b, f->path_b, NULL, &err), 0);
	assert_int_equal(count_named(f->b, "late-renamed"), 0);
	assert_int_equal(count_named(f->b, "late-snap"), 0);
	intents_b = count_rows(f->b, "SELECT COUNT(*) FROM intents");
	assert_int_equal(intents_b, 0);

	printf("# lun list reports the pending state\n");
	assert_int_equal(rp_lun_list(&list, &n, f->a, "g1", &err), 0);
	for (i = 0; i < n; i++) {
		if (strcmp(list[i].id, late) == 0) {
			seen = true;
			assert_true(list[i].target_pending);
			assert_int_equal(list[i].size, 8 * MIB);
		} else if (strcmp(list[i].id, snap) != 0) {
			assert_false(list[i].target_pending);
		}
	}
	assert_true(seen);
	rp_free(list);

	printf("# verify names the members with no copy on B yet and fails\n");
	{
		struct rp_verify_item *items = NULL;
		bool eq = true, late_seen = false;

		assert_int_equal(rp_verify(&items, &n, &eq, f->a, f->b, "g1", &err), 0);
		assert_false(eq);
		for (i = 0; i < n; i++) {
			if (strcmp(items[i].device_a, late) != 0)
				continue;
			late_seen = true;
			assert_false(items[i].equal);
			assert_string_equal(items[i].device_b, "");
			assert_non_null(strstr(items[i].msg, "made by the next sync"));
		}
		assert_true(late_seen);
		rp_free(items);
	}

	printf("# the next group sync makes both targets and copies them in full\n");
	sync_now(&s, f->a, "g1", NULL, false);
	assert_true(s.full);
	assert_int_equal(rp_lun_get(&d, f->a, late, &err), 0);
	assert_false(d.target_pending);
	assert_true(d.peer_device[0] != '\0');
	assert_int_equal(rp_lun_get(&t, f->b, d.peer_device, &err), 0);
	assert_int_equal(t.state, RP_DEV_TARGET);
	assert_true(t.read_only);
	assert_string_equal(t.name, "late-renamed");
	assert_string_equal(t.group, "g1");
	assert_string_equal(t.peer_device, late);
	assert_int_equal(t.size, 8 * MIB);
	{
		char *v = NULL;

		assert_int_equal(rp_lun_meta_get(&v, f->b, t.id, "vdi.name_label", &err), 0);
		assert_string_equal(v, "late disk");
		rp_free(v);
	}
	csum(ca, f->a, late);
	csum(cb, f->b, t.id);
	assert_string_equal(ca, cb);
	assert_int_equal(count_named(f->b, "late-snap"), 1);
	verify_equal(f->a, f->b, "g1");
	printf("# the following sync is incremental\n");
	write_lun(f->a, late, 0, 64 * 1024);
	sync_now(&s, f->a, "g1", NULL, false);
	assert_false(s.full);
	assert_int_equal(s.bytes_transferred, 64 * 1024);

	printf("# deleting a pending LUN needs no peer\n");
	pending_lun(f, "short-lived", snap);
	assert_int_equal(rp_lun_delete(f->a, snap, &err), 0);
	assert_int_equal(count_rows(f->a, "SELECT COUNT(*) FROM intents"), 0);
	assert_int_equal(count_named(f->b, "short-lived"), 0);
}

static void test_pending__standalone_device_sync(void **state)
{
	struct fx *f = *state;
	struct rp_lun_create_opts o = { .replicate = true, .target_at_sync = true };
	struct rp_sync_session s;
	struct rp_device d;
	struct rp_error err;
	char ca[40], cb[40];

	rp_error_clear(&err);
	assert_int_equal(rp_lun_create(&d, f->a, "solo-late", 4 * MIB, &o, &err), 0);
	assert_true(d.target_pending);
	write_lun(f->a, d.id, MIB, MIB);
	printf("# sync --device of a pending standalone LUN makes its target\n");
	sync_now(&s, f->a, NULL, d.id, true);
	assert_true(s.full);
	assert_int_equal(rp_lun_get(&d, f->a, d.id, &err), 0);
	assert_false(d.target_pending);
	csum(ca, f->a, d.id);
	csum(cb, f->b, d.peer_device);
	assert_string_equal(ca, cb);
}

static void test_pending__sync_after_crash_reuses_target(void **state)
{
	struct fx *f = *state;
	struct model_device src, t;
	struct rp_sync_session s;
	struct rp_device d;
	struct rp_error err;
	char late[RP_ID_MAX];

	pending_lun(f, "late", late);
	printf("# a sync died after making the target, before linking the source\n");
	rp_error_clear(&err);
	assert_int_equal(model_device_load(&src, f->a, late, &err), 0);
	assert_int_equal(model_group_load(&(struct model_group){ 0 }, f->b, "g1", &err), 0);
	assert_int_equal(lun_target_create(&t, f->b, "siteA", &src, &err), 0);
	assert_int_equal(count_named(f->b, "late"), 1);
	assert_int_equal(rp_lun_get(&d, f->a, late, &err), 0);
	assert_true(d.target_pending);
	printf("# the next sync finds it by its link and uses it\n");
	sync_now(&s, f->a, "g1", NULL, false);
	assert_int_equal(rp_lun_get(&d, f->a, late, &err), 0);
	assert_string_equal(d.peer_device, t.id);
	assert_int_equal(count_named(f->b, "late"), 1);
	verify_equal(f->a, f->b, "g1");
	printf("# a name taken on B fails the sync with the name, nothing half made\n");
	{
		struct rp_lun_create_opts lo = { 0 };
		const char *groups[1] = { "g1" };
		struct rp_request req = { .groups = groups, .n_groups = 1 };
		struct rp_sync_opts so = { .foreground = true };
		struct rp_result *r = NULL;
		char taken[RP_ID_MAX];
		int64_t devs_b;

		pending_lun(f, "clash", taken);
		assert_int_equal(rp_lun_create(&d, f->b, "clash", MIB, &lo, &err), 0);
		devs_b = count_rows(f->b, "SELECT COUNT(*) FROM devices");
		assert_int_equal(rp_sync_start(&r, f->a, &req, &so, &err), 0);
		printf("#   %s\n", r->items[0].msg);
		assert_int_equal(r->items[0].code, RP_EEXISTS);
		assert_non_null(strstr(r->items[0].msg, "clash"));
		rp_result_free(r);
		assert_int_equal(count_rows(f->b, "SELECT COUNT(*) FROM devices"), devs_b);
		assert_int_equal(count_rows(f->b, "SELECT COUNT(*) FROM intents"), 0);
		assert_int_equal(rp_lun_get(&d, f->a, taken, &err), 0);
		assert_true(d.target_pending);
	}
}

/*
 * Disaster: g1 has two synced members and one pending member at A; A goes down; failover at B;
 * A returns; reverse at B. The pending member never reached B: it leaves g1 at A, kept with
 * its data as a local LUN, and the group item names it. Then B->A syncs the rest.
 */
static void test_pending__reverse_detaches_at_old_source(void **state)
{
	struct fx *f = *state;
	struct rp_result *r;
	struct rp_sync_session s;
	struct rp_device d;
	struct rp_group g;
	struct rp_error err;
	char late[RP_ID_MAX], c_late[40], c_now[40];
	bool named = false;
	size_t i;

	seed_and_sync(f);
	pending_lun(f, "late", late);
	csum(c_late, f->a, late);
	printf("# site A disappears; test failover and failover at B see only the synced "
	       "members\n");
	rp_array_close(f->a);
	f->a = NULL;
	assert_int_equal(rename(f->path_a, f->path_a_moved), 0);
	r = run_wf(rp_test_failover_start, f->b, "g1", NULL);
	assert_all_ok(r);
	assert_int_equal(r->n, 3);
	rp_result_free(r);
	r = run_wf(rp_test_failover_stop, f->b, "g1", NULL);
	assert_all_ok(r);
	rp_result_free(r);
	r = run_wf(rp_failover, f->b, "g1", NULL);
	assert_all_ok(r);
	assert_int_equal(r->n, 3);
	rp_result_free(r);
	write_lun(f->b, f->key1, 0, 128 * 1024);

	printf("# site A returns; crash in reverse right after the detach: finished at reopen\n");
	assert_int_equal(rename(f->path_a_moved, f->path_a), 0);
	rp_error_clear(&err);
	assert_int_equal(rp_array_open(&f->a, f->path_a, NULL, &err), 0);
	reverse_crash_at(f, "reverse-detached");
	dev_state(f->a, late, RP_DEV_LOCAL, false);
	assert_int_equal(count_rows(f->b, "SELECT COUNT(*) FROM intents"), 0);
	assert_int_equal(rp_group_get(&g, f->b, "g1", &err), 0);
	assert_int_equal(g.role, RP_GROUP_SOURCE);

	printf("# the same from scratch, without the crash: the warning names the LUN\n");
	fx_teardown(state);
	assert_int_equal(fx_setup(state), 0);
	f = *state;
	seed_and_sync(f);
	pending_lun(f, "late", late);
	csum(c_late, f->a, late);
	rp_array_close(f->a);
	f->a = NULL;
	assert_int_equal(rename(f->path_a, f->path_a_moved), 0);
	r = run_wf(rp_failover, f->b, "g1", NULL);
	assert_all_ok(r);
	rp_result_free(r);
	write_lun(f->b, f->key1, 0, 128 * 1024);
	assert_int_equal(rename(f->path_a_moved, f->path_a), 0);
	assert_int_equal(rp_array_open(&f->a, f->path_a, NULL, &err), 0);
	printf("# prepareReverse at A warns what reverse will do with the pending member\n");
	r = run_wf(rp_prepare_reverse, f->a, "g1", NULL);
	assert_all_ok(r);
	assert_true(has_warning(find_item(r, late), RP_WARN_TAIL_KEPT));
	assert_false(has_warning(find_item(r, late), RP_WARN_UNUSUAL_ORDER));
	rp_result_free(r);
	dev_state(f->a, late, RP_DEV_SOURCE, false);
	r = run_wf(rp_reverse, f->b, "g1", NULL);
	assert_all_ok(r);
	for (i = 0; i < r->items[0].n_warnings; i++)
		if (r->items[0].warnings[i].code == RP_WARN_TAIL_KEPT &&
		    strstr(r->items[0].warnings[i].msg, late)) {
			named = true;
			printf("#   %s\n", r->items[0].warnings[i].msg);
		}
	assert_true(named);
	rp_result_free(r);
	assert_int_equal(rp_lun_get(&d, f->a, late, &err), 0);
	assert_int_equal(d.state, RP_DEV_LOCAL);
	assert_false(d.read_only);
	assert_false(d.target_pending);
	assert_string_equal(d.group, "");
	assert_string_equal(d.peer_array, "");
	csum(c_now, f->a, late);
	assert_string_equal(c_now, c_late);
	dev_state(f->a, f->lun1, RP_DEV_TARGET, true);
	dev_state(f->a, f->lun2, RP_DEV_TARGET, true);
	assert_int_equal(rp_group_get(&g, f->a, "g1", &err), 0);
	assert_int_equal(g.role, RP_GROUP_TARGET);
	assert_int_equal(g.n_devices, 2);
	r = run_wf(rp_reverse, f->b, "g1", NULL);
	assert_all_ok(r);
	assert_all_warn(r, RP_WARN_ALREADY_DONE);
	rp_result_free(r);
	printf("# sync B->A carries only what B wrote since failover\n");
	sync_now(&s, f->b, "g1", NULL, false);
	assert_int_equal(s.bytes_transferred, 128 * 1024);
	verify_equal(f->b, f->a, "g1");
	csum(c_now, f->a, late);
	assert_string_equal(c_now, c_late);
}

/* Restore after a planned failover: a pending member at A does not stop it; next sync makes it. */
static void test_pending__restore_keeps_pending_member(void **state)
{
	struct fx *f = *state;
	struct rp_result *r;
	struct rp_sync_session s;
	struct rp_device d;
	struct rp_error err;
	char late[RP_ID_MAX], ca[40], cb[40];

	seed_and_sync(f);
	pending_lun(f, "late", late);
	printf("# prepareFailover at A demotes the pending member too; failover at B\n");
	r = run_wf(rp_prepare_failover, f->a, "g1", NULL);
	assert_all_ok(r);
	rp_result_free(r);
	dev_state(f->a, late, RP_DEV_DEMOTED_SOURCE, true);
	r = run_wf(rp_failover, f->b, "g1", NULL);
	assert_all_ok(r);
	rp_result_free(r);
	write_lun(f->b, f->key2, 0, 256 * 1024);
	r = run_wf(rp_prepare_restore, f->b, "g1", NULL);
	assert_all_ok(r);
	rp_result_free(r);
	printf("# restore at A: the pending member is a source again, still pending\n");
	r = run_wf(rp_restore, f->a, "g1", NULL);
	assert_all_ok(r);
	assert_false(has_warning(find_item(r, late), RP_WARN_ALREADY_DONE));
	rp_result_free(r);
	rp_error_clear(&err);
	assert_int_equal(rp_lun_get(&d, f->a, late, &err), 0);
	assert_int_equal(d.state, RP_DEV_SOURCE);
	assert_false(d.read_only);
	assert_true(d.target_pending);
	r = run_wf(rp_restore, f->a, "g1", NULL);
	assert_all_ok(r);
	assert_all_warn(r, RP_WARN_ALREADY_DONE);
	rp_result_free(r);
	printf("# the next sync makes its target\n");
	sync_now(&s, f->a, "g1", NULL, false);
	assert_int_equal(rp_lun_get(&d, f->a, late, &err), 0);
	assert_false(d.target_pending);
	csum(ca, f->a, late);
	csum(cb, f->b, d.peer_device);
	assert_string_equal(ca, cb);
	verify_equal(f->a, f->b, "g1");
}

/* ------------------------------------------------------------------------------------------ */
/* Duplicate request items                                                                     */

static void test_request__duplicates_answered_once(void **state)
{
	struct fx *f = *state;
	char solo_name[RP_NAME_MAX] = "solo";
	const char *groups[2] = { "g1", "g1" };
	const char *devs[5] = { f->key1, f->solo_key, f->key2, solo_name, f->solo_key };
	struct rp_request req = {
		.groups = groups, .n_groups = 2, .devices = devs, .n_devices = 5
	};
	struct rp_result *r = NULL;
	const wf_fn fns[] = { rp_check_test_failover, rp_test_failover_start, rp_test_failover_stop,
		              rp_check_failover, rp_failover };
	const char *names[] = { "checkTestFailover", "testFailoverStart", "testFailoverStop",
		                "checkFailover", "failover" };
	size_t i;

	seed_and_sync(f);
	printf("# g1 twice, its members alone, solo by id twice and by name: 4 items each\n");
	for (i = 0; i < sizeof(fns) / sizeof(fns[0]); i++) {
		assert_int_equal(fns[i](&r, f->b, &req, NULL), 0);
		printf("#   %s: %zu items\n", names[i], r->n);
		assert_all_ok(r);
		assert_int_equal(r->n, 4);
		assert_true(r->items[0].is_group);
		assert_string_equal(r->items[0].id, "g1");
		assert_string_equal(r->items[1].group, "g1");
		assert_string_equal(r->items[2].group, "g1");
		assert_string_equal(r->items[3].id, f->solo_key);
		rp_result_free(r);
		r = NULL;
	}
	printf("# reverse at B and prepareReverse at A: the same\n");
	devs[0] = f->lun1;
	devs[1] = f->solo;
	devs[2] = f->lun2;
	devs[4] = f->solo;
	assert_int_equal(rp_prepare_reverse(&r, f->a, &req, NULL), 0);
	assert_int_equal(r->n, 4);
	rp_result_free(r);
	devs[0] = f->key1;
	devs[1] = f->solo_key;
	devs[2] = f->key2;
	devs[4] = f->solo_key;
	assert_int_equal(rp_reverse(&r, f->b, &req, NULL), 0);
	assert_all_ok(r);
	assert_int_equal(r->n, 4);
	rp_result_free(r);
	printf("# sync at B (now the source): one session per group/device, 4 items\n");
	{
		struct rp_sync_opts o = { .foreground = true };

		assert_int_equal(rp_sync_start(&r, f->b, &req, &o, NULL), 0);
		assert_all_ok(r);
		assert_int_equal(r->n, 4);
		rp_result_free(r);
	}
	printf("# an unknown id listed twice is answered once\n");
	{
		const char *bad[2] = { "siteB-999999", "siteB-999999" };
		struct rp_request rb = { .devices = bad, .n_devices = 2 };

		assert_int_equal(rp_failover(&r, f->b, &rb, NULL), 0);
		assert_int_equal(r->n, 1);
		assert_int_equal(r->items[0].code, RP_ENOTFOUND);
		rp_result_free(r);
	}
}

/* ------------------------------------------------------------------------------------------ */
/* Peer unreachable                                                                            */

static void test_unreachable__reverse_and_restore_change_nothing(void **state)
{
	struct fx *f = *state;
	struct rp_result *r;
	struct world before;
	char nid[RP_ID_MAX], path_b_moved[800];
	size_t i;

	seed_and_sync(f);
	printf("# prepareFailover at A with B gone works (the peer is optional)\n");
	rp_array_close(f->b);
	f->b = NULL;
	snprintf(path_b_moved, sizeof(path_b_moved), "%s.away", f->path_b);
	assert_int_equal(rename(f->path_b, path_b_moved), 0);
	r = run_wf(rp_prepare_failover, f->a, "g1", NULL);
	assert_all_ok(r);
	rp_result_free(r);
	printf("# restore at A with B gone: RP_EUNREACHABLE on every item, A stays demoted\n");
	r = run_wf(rp_restore, f->a, "g1", f->solo);
	assert_int_equal(r->n, 4);
	for (i = 0; i < r->n; i++)
		assert_int_equal(r->items[i].code, RP_EUNREACHABLE);
	rp_result_free(r);
	dev_state(f->a, f->lun1, RP_DEV_DEMOTED_SOURCE, true);
	dev_state(f->a, f->solo, RP_DEV_SOURCE, false);
	assert_int_equal(rename(path_b_moved, f->path_b), 0);
	assert_int_equal(rp_array_open(&f->b, f->path_b, NULL, NULL), 0);

	printf("# failover at B, new LUN at B; then A goes away\n");
	failover_and_new_lun(f, nid);
	r = run_wf(rp_failover, f->b, NULL, f->solo_key);
	assert_all_ok(r);
	rp_result_free(r);
	world_get(&before, f, nid);
	rp_array_close(f->a);
	f->a = NULL;
	assert_int_equal(rename(f->path_a, f->path_a_moved), 0);
	printf("# reverse at B with A gone: RP_EUNREACHABLE on every item (group, members,"
	       " standalone)\n");
	r = run_wf(rp_reverse, f->b, "g1", f->solo_key);
	assert_int_equal(r->n, 5);
	printf("#   %s\n", r->items[0].msg);
	for (i = 0; i < r->n; i++) {
		if (r->items[i].code != RP_EUNREACHABLE)
			fail_msg("item '%s': %d %s", r->items[i].id, r->items[i].code,
			         r->items[i].msg);
	}
	rp_result_free(r);
	printf("# checkFailover and prepareRestore at B work without A\n");
	r = run_wf(rp_check_failover, f->b, "g1", NULL);
	assert_all_ok(r);
	rp_result_free(r);
	r = run_wf(rp_prepare_restore, f->b, "g1", NULL);
	assert_all_ok(r);
	rp_result_free(r);
	assert_int_equal(rename(f->path_a_moved, f->path_a), 0);
	assert_int_equal(rp_array_open(&f->a, f->path_a, NULL, NULL), 0);
	assert_unchanged(f, nid, &before, RP_DEV_DEMOTED_SOURCE, true);
	dev_state(f->b, f->solo_key, RP_DEV_PROMOTED_TARGET, false);
	printf("# A is back: reverse succeeds\n");
	r = run_wf(rp_reverse, f->b, "g1", f->solo_key);
	assert_all_ok(r);
	rp_result_free(r);
	check_reversed_with_new(f, nid, 0);
}

/* ------------------------------------------------------------------------------------------ */

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

static int xfs_setup(void)
{
	const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";

	if (geteuid() != 0) {
		printf("SKIP: xfs mode needs root (loop mount)\n");
		return 77;
	}
	snprintf(g_loop_dir, sizeof(g_loop_dir), "%s/replxfs.XXXXXX", tmp);
	if (!mkdtemp(g_loop_dir))
		return 1;
	if (sh("truncate -s 1G '%s/img' && mkfs.xfs -q -m reflink=1 '%s/img' >/dev/null 2>&1 &&"
	       " mkdir '%s/mnt' && mount -o loop '%s/img' '%s/mnt'",
	       g_loop_dir, g_loop_dir, g_loop_dir, g_loop_dir, g_loop_dir) != 0) {
		printf("SKIP: cannot make a loop-mounted xfs (no loop devices or xfsprogs?)\n");
		(void)sh("rm -rf '%s'", g_loop_dir);
		return 77;
	}
	snprintf(g_base, sizeof(g_base), "%s/mnt", g_loop_dir);
	return 0;
}

static void xfs_teardown(void)
{
	if (!g_loop_dir[0])
		return;
	if (sh("umount '%s/mnt'", g_loop_dir) != 0)
		(void)sh("umount -l '%s/mnt'", g_loop_dir);
	(void)sh("rm -rf '%s'", g_loop_dir);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_sync__full_then_incremental, fx_setup,
		                                fx_teardown),
		cmocka_unit_test_setup_teardown(test_sync__detached_from_either_end, fx_setup,
		                                fx_teardown),
		cmocka_unit_test_setup_teardown(test_sync__second_start_reports_running, fx_setup,
		                                fx_teardown),
		cmocka_unit_test_setup_teardown(test_sync__unpausable_writer_warns, fx_setup,
		                                fx_teardown),
		cmocka_unit_test_setup_teardown(test_sync__concurrent_starts_make_one_session,
		                                fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_sync__grown_lun, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_sync__creates_missing_target, fx_setup,
		                                fx_teardown),
		cmocka_unit_test_setup_teardown(test_sync__kill9_worker_resumes, fx_setup,
		                                fx_teardown),
		cmocka_unit_test_setup_teardown(test_test_failover__copy_and_replication_untouched,
		                                fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_test_failover__wrong_state, fx_setup,
		                                fx_teardown),
		cmocka_unit_test_setup_teardown(test_migration__prepare_sync_failover_reverse,
		                                fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_failover__aborts_incoming_sync, fx_setup,
		                                fx_teardown),
		cmocka_unit_test_setup_teardown(test_disaster__failover_peer_down_then_prepare,
		                                fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_restore__discards_promoted_changes, fx_setup,
		                                fx_teardown),
		cmocka_unit_test_setup_teardown(test_partial__one_bad_device, fx_setup,
		                                fx_teardown),
		cmocka_unit_test_setup_teardown(test_wrong_state__each_workflow, fx_setup,
		                                fx_teardown),
		cmocka_unit_test_setup_teardown(test_filter__name_prefix, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_reverse__adopts_lun_made_after_failover,
		                                fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_reverse__all_or_nothing, fx_setup,
		                                fx_teardown),
		cmocka_unit_test_setup_teardown(test_failover__crash_after_snapshot_leaves_nothing,
		                                fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_failover__crash_rolling_back_leaves_nothing,
		                                fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_reverse__crash_rolled_back_or_finished,
		                                fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_restore__lun_made_after_failover_left_out,
		                                fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_request__duplicates_answered_once, fx_setup,
		                                fx_teardown),
		cmocka_unit_test_setup_teardown(
		        test_unreachable__reverse_and_restore_change_nothing, fx_setup,
		        fx_teardown),
		cmocka_unit_test_setup_teardown(test_pending__peer_untouched_then_sync_makes_target,
		                                fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_pending__standalone_device_sync, fx_setup,
		                                fx_teardown),
		cmocka_unit_test_setup_teardown(test_pending__sync_after_crash_reuses_target,
		                                fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_pending__reverse_detaches_at_old_source,
		                                fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_pending__restore_keeps_pending_member,
		                                fx_setup, fx_teardown),
	};
	const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	int rc;

	if (argc > 1)
		g_mode = argv[1];
	if (strcmp(g_mode, "xfs") == 0) {
		rc = xfs_setup();
		if (rc != 0)
			return rc;
	} else {
		snprintf(g_base, sizeof(g_base), "%s", tmp);
	}
	printf("# replication tests on %s (%s)\n", g_base, g_mode);
	rc = cmocka_run_group_tests_name(strcmp(g_mode, "xfs") == 0 ? "core.replication.xfs"
	                                                            : "core.replication",
	                                 tests, NULL, NULL);
	xfs_teardown();
	return rc;
}

/* SPDX-License-Identifier: MIT */
/* test_lun.c - rp_lun_*: create (local, grouped, replicated), get, list, delete, resize,
 * snapshot, clone, rename, path, LUN metadata and presentation; failures change nothing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers.h"
#include "lock.h"

#define MiB (1024ull * 1024ull)

static void test_lun__create_local(void **state)
{
	struct fx *f = *state;
	struct rp_error err = { 0 };
	struct rp_device d1, d2, g;
	struct rp_array *again = NULL;

	assert_int_equal(rp_lun_create(&d1, f->a, "vm disk 1", 16 * MiB, NULL, &err), 0);
	assert_string_equal(d1.id, "siteA-000001");
	assert_string_equal(d1.name, "vm disk 1");
	assert_true(d1.size == 16 * MiB);
	assert_int_equal(d1.state, RP_DEV_LOCAL);
	assert_false(d1.read_only);
	assert_string_equal(d1.group, "");
	assert_string_equal(d1.peer_device, "");
	assert_int_equal(strlen(d1.wwn), 36);
	assert_true(strncmp(d1.wwn, "naa.6", 5) == 0);
	assert_true(d1.created_ms > 0);
	assert_true(fake_array_obj_exists(f->a->root, "lun-siteA-000001"));
	assert_int_equal(rp_lun_create(&d2, f->a, "vm disk 2", 1, NULL, &err), 0);
	assert_string_equal(d2.id, "siteA-000002");
	assert_string_not_equal(d1.wwn, d2.wwn);
	/* The WWN is stable across re-opening the array. */
	assert_int_equal(rp_array_open(&again, f->a_path, NULL, &err), 0);
	assert_int_equal(rp_lun_get(&g, again, d1.id, &err), 0);
	assert_string_equal(g.wwn, d1.wwn);
	rp_array_close(again);
	/* And the same on two arrays with the same seq differ (array id is in the WWN). */
	assert_int_equal(rp_lun_create(&g, f->b, "other", MiB, NULL, &err), 0);
	assert_string_equal(g.id, "siteB-000001");
	assert_string_not_equal(g.wwn, d1.wwn);
}

static void test_lun__create_bad_input_changes_nothing(void **state)
{
	struct fx *f = *state;
	struct rp_lun_create_opts o = { 0 };
	struct rp_error err = { 0 };
	struct rp_device d;
	char longname[300];

	assert_error(rp_lun_create(&d, f->a, "x", 0, NULL, &err), err, RP_EINVAL);
	rp_error_clear(&err);
	assert_error(rp_lun_create(&d, f->a, "", MiB, NULL, &err), err, RP_EINVAL);
	rp_error_clear(&err);
	assert_error(rp_lun_create(&d, f->a, NULL, MiB, NULL, &err), err, RP_EINVAL);
	rp_error_clear(&err);
	assert_error(rp_lun_create(&d, f->a, "bad\nname", MiB, NULL, &err), err, RP_EINVAL);
	rp_error_clear(&err);
	memset(longname, 'n', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_error(rp_lun_create(&d, f->a, longname, MiB, NULL, &err), err, RP_EINVAL);
	rp_error_clear(&err);
	o.group = "../etc";
	assert_error(rp_lun_create(&d, f->a, "x", MiB, &o, &err), err, RP_EINVAL);
	rp_error_clear(&err);
	o.group = "g";
	o.peer = "no/such";
	o.replicate = true;
	assert_error(rp_lun_create(&d, f->a, "x", MiB, &o, &err), err, RP_EINVAL);
	rp_error_clear(&err);
	o.peer = "siteZ";
	assert_error(rp_lun_create(&d, f->a, "x", MiB, &o, &err), err, RP_ENOTFOUND);
	rp_error_clear(&err);
	assert_error(rp_lun_create(&d, f->a, "x", UINT64_MAX, NULL, &err), err, RP_EINVAL);
	rp_error_clear(&err);
	fake_array_fail("obj_create", 1, RP_ENOSPACE);
	assert_error(rp_lun_create(&d, f->a, "x", MiB, NULL, &err), err, RP_ENOSPACE);
	/* Nothing changed on either array. */
	assert_int_equal(count_rows(f->a, "devices"), 0);
	assert_int_equal(count_rows(f->a, "groups"), 0);
	assert_int_equal(count_rows(f->a, "intents"), 0);
	assert_int_equal(count_rows(f->b, "devices"), 0);
	assert_int_equal(fake_array_obj_count(f->a->root), 0);
	assert_int_equal(fake_array_obj_count(f->b->root), 0);
}

static void test_lun__get_and_list(void **state)
{
	struct fx *f = *state;
	struct rp_lun_create_opts o = { .group = "g1" };
	struct rp_error err = { 0 };
	struct rp_device d, *v = NULL;
	size_t n = 0;

	assert_int_equal(rp_lun_create(NULL, f->a, "alpha", MiB, &o, &err), 0);
	assert_int_equal(rp_lun_create(NULL, f->a, "beta", 2 * MiB, NULL, &err), 0);
	/* Names are unique in an array. */
	assert_error(rp_lun_create(NULL, f->a, "beta", 3 * MiB, &o, &err), err, RP_EEXISTS);
	assert_string_equal(err.msg, "LUN name 'beta' is already in use by 'siteA-000002'");
	rp_error_clear(&err);
	assert_int_equal(count_rows(f->a, "intents"), 0);
	assert_int_equal(rp_lun_create(NULL, f->a, "beta2", 3 * MiB, &o, &err), 0);
	assert_int_equal(rp_lun_get(&d, f->a, "siteA-000002", &err), 0);
	assert_string_equal(d.name, "beta");
	assert_int_equal(rp_lun_get(&d, f->a, "alpha", &err), 0);
	assert_string_equal(d.id, "siteA-000001");
	assert_string_equal(d.group, "g1");
	/* Two LUNs named beta (a database from before names were unique): ambiguous. */
	assert_int_equal(meta_exec(f->a->db,
	                           "UPDATE devices SET name = 'beta' WHERE id = "
	                           "'siteA-000003'",
	                           &err),
	                 0);
	assert_error(rp_lun_get(&d, f->a, "beta", &err), err, RP_EINVAL);
	rp_error_clear(&err);
	assert_error(rp_lun_get(&d, f->a, "siteA-000099", &err), err, RP_ENOTFOUND);
	rp_error_clear(&err);
	assert_error(rp_lun_get(&d, f->a, "..", &err), err, RP_ENOTFOUND);
	rp_error_clear(&err);
	assert_error(rp_lun_get(&d, f->a, "", &err), err, RP_EINVAL);
	rp_error_clear(&err);
	assert_int_equal(rp_lun_list(&v, &n, f->a, NULL, &err), 0);
	assert_int_equal(n, 3);
	assert_string_equal(v[0].id, "siteA-000001");
	assert_string_equal(v[2].id, "siteA-000003");
	rp_free(v);
	v = NULL;
	assert_int_equal(rp_lun_list(&v, &n, f->a, "g1", &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[1].name, "beta");
	rp_free(v);
	v = NULL;
	assert_error(rp_lun_list(&v, &n, f->a, "nogroup", &err), err, RP_ENOTFOUND);
	assert_null(v);
}

static void test_lun__allocated_and_test_snapshot(void **state)
{
	struct fx *f = *state;
	struct rp_error err = { 0 };
	struct model_snapshot s;
	struct rp_device d;
	char buf[4096];

	assert_int_equal(rp_lun_create(&d, f->a, "data", 4 * MiB, NULL, &err), 0);
	assert_true(d.allocated == 0);
	memset(buf, 0xab, sizeof(buf));
	assert_int_equal(
	        f->a->drv->ops->write(f->a->drv, "lun-siteA-000001", MiB, buf, sizeof(buf), &err),
	        0);
	assert_int_equal(rp_lun_get(&d, f->a, d.id, &err), 0);
	assert_true(d.allocated > 0);
	assert_string_equal(d.test_snapshot, "");
	memset(&s, 0, sizeof(s));
	(void)snprintf(s.id, sizeof(s.id), "test-%s-1", d.id);
	(void)snprintf(s.device, sizeof(s.device), "%s", d.id);
	(void)snprintf(s.kind, sizeof(s.kind), "test");
	model_snapshot_obj(s.obj, s.id);
	wwn_snapshot(s.wwn, f->a->id, s.id);
	s.created_ms = 1;
	assert_int_equal(model_snapshot_insert(f->a, &s, &err), 0);
	assert_int_equal(rp_lun_get(&d, f->a, d.id, &err), 0);
	assert_string_equal(d.test_snapshot, s.id);
	assert_string_equal(d.test_snapshot_wwn, s.wwn);
	/* While a test runs the LUN cannot be deleted. */
	assert_error(rp_lun_delete(f->a, d.id, &err), err, RP_EBUSY);
	assert_int_equal(count_rows(f->a, "devices"), 1);
}

static void test_lun__replicated_create(void **state)
{
	struct fx *f = *state;
	struct rp_lun_create_opts o = { .group = "sr1", .replicate = true };
	struct rp_error err = { 0 };
	struct rp_device s, t, s2, t2;
	struct rp_group ga, gb;

	assert_int_equal(rp_lun_create(&s, f->a, "disk", 8 * MiB, &o, &err), 0);
	assert_int_equal(s.state, RP_DEV_SOURCE);
	assert_string_equal(s.peer_array, "siteB");
	assert_string_equal(s.peer_device, "siteB-000001");
	assert_int_equal(rp_lun_get(&t, f->b, s.peer_device, &err), 0);
	assert_int_equal(t.state, RP_DEV_TARGET);
	assert_true(t.read_only);
	assert_string_equal(t.name, "disk");
	assert_true(t.size == s.size);
	assert_string_equal(t.group, "sr1");
	assert_string_equal(t.peer_array, "siteA");
	assert_string_equal(t.peer_device, s.id);
	assert_string_not_equal(t.wwn, s.wwn);
	assert_true(fake_array_obj_exists(f->b->root, "lun-siteB-000001"));
	assert_int_equal(rp_group_get(&ga, f->a, "sr1", &err), 0);
	assert_int_equal(ga.role, RP_GROUP_SOURCE);
	assert_string_equal(ga.peer_array, "siteB");
	assert_int_equal(ga.n_devices, 1);
	assert_int_equal(rp_group_get(&gb, f->b, "sr1", &err), 0);
	assert_int_equal(gb.role, RP_GROUP_TARGET);
	assert_string_equal(gb.peer_array, "siteA");
	/* A new LUN of a replicating group replicates without asking. */
	o.replicate = false;
	assert_int_equal(rp_lun_create(&s2, f->a, "disk2", MiB, &o, &err), 0);
	assert_int_equal(s2.state, RP_DEV_SOURCE);
	assert_int_equal(rp_lun_get(&t2, f->b, s2.peer_device, &err), 0);
	assert_string_equal(t2.peer_device, s2.id);
	/* No intents are left behind. */
	assert_int_equal(count_rows(f->a, "intents"), 0);
	assert_int_equal(count_rows(f->b, "intents"), 0);
	/* LUNs cannot be added to the target group at B. */
	assert_error(rp_lun_create(&t2, f->b, "x", MiB, &o, &err), err, RP_ESTATE);
	assert_int_equal(count_rows(f->b, "devices"), 2);
	/* Standalone replicated LUN. */
	{
		struct rp_lun_create_opts so = { .replicate = true };

		assert_int_equal(rp_lun_create(&s, f->a, "solo", MiB, &so, &err), 0);
		assert_int_equal(s.state, RP_DEV_SOURCE);
		assert_string_equal(s.group, "");
		assert_int_equal(rp_lun_get(&t, f->b, s.peer_device, &err), 0);
		assert_string_equal(t.group, "");
	}
}

static void test_lun__replicate_refusals(void **state)
{
	struct fx *f = *state;
	struct rp_lun_create_opts o = { .group = "loc" };
	struct rp_error err = { 0 };
	struct rp_device d;
	struct rp_array *c = NULL;
	char cpath[PATH_MAX + 16];

	/* A local group with local LUNs does not take a replicated one. */
	assert_int_equal(rp_lun_create(&d, f->a, "l1", MiB, &o, &err), 0);
	o.replicate = true;
	assert_error(rp_lun_create(&d, f->a, "r1", MiB, &o, &err), err, RP_ESTATE);
	assert_int_equal(count_rows(f->a, "devices"), 1);
	assert_int_equal(count_rows(f->b, "devices"), 0);
	/* An array without peers cannot replicate. */
	(void)snprintf(cpath, sizeof(cpath), "%s/siteC", f->dir);
	assert_int_equal(engine_array_init(cpath, "fake", "siteC", NULL, &err), 0);
	assert_int_equal(rp_array_open(&c, cpath, NULL, &err), 0);
	o.group = NULL;
	rp_error_clear(&err);
	assert_error(rp_lun_create(&d, c, "r", MiB, &o, &err), err, RP_ENOTFOUND);
	assert_int_equal(count_rows(c, "devices"), 0);
	rp_array_close(c);
}

static void test_lun__delete(void **state)
{
	struct fx *f = *state;
	struct rp_lun_create_opts o = { .group = "sr", .replicate = true };
	struct rp_error err = { 0 };
	struct rp_device s, t, l;

	assert_int_equal(rp_lun_create(&s, f->a, "src", MiB, &o, &err), 0);
	assert_int_equal(rp_lun_create(&l, f->a, "local", MiB, NULL, &err), 0);
	assert_int_equal(rp_lun_meta_set(f->a, l.id, "k", "v", &err), 0);
	/* Bad and unknown ids. */
	assert_error(rp_lun_delete(f->a, "..", &err), err, RP_EINVAL);
	rp_error_clear(&err);
	assert_error(rp_lun_delete(f->a, "siteA-000077", &err), err, RP_ENOTFOUND);
	rp_error_clear(&err);
	/* A target is deleted through its source only. */
	assert_error(rp_lun_delete(f->b, s.peer_device, &err), err, RP_ESTATE);
	rp_error_clear(&err);
	/* Presented read-write: busy; read-only presentation does not block. */
	assert_int_equal(rp_lun_present(f->a, l.id, "host1", true, &err), 0);
	assert_error(rp_lun_delete(f->a, l.id, &err), err, RP_EBUSY);
	rp_error_clear(&err);
	assert_int_equal(rp_lun_present(f->a, l.id, "host1", false, &err), 0);
	/* A sync session in progress for the group: busy. */
	assert_int_equal(
	        meta_run(NULL, f->a->db, &err,
	                 "INSERT INTO sync_sessions(id, grp, status) VALUES('s1', 'sr', 0)", ""),
	        0);
	assert_error(rp_lun_delete(f->a, s.id, &err), err, RP_EBUSY);
	rp_error_clear(&err);
	assert_int_equal(meta_run(NULL, f->a->db, &err,
	                          "UPDATE sync_sessions SET status = 1 WHERE id = 's1'", ""),
	                 0);
	assert_int_equal(count_rows(f->a, "devices"), 2);
	/* Now both go; the source takes its target along. */
	assert_int_equal(rp_lun_delete(f->a, l.id, &err), 0);
	assert_int_equal(count_rows(f->a, "lun_meta"), 0);
	assert_int_equal(count_rows(f->a, "presentations"), 0);
	assert_false(fake_array_obj_exists(f->a->root, "lun-siteA-000002"));
	assert_int_equal(rp_lun_delete(f->a, s.id, &err), 0);
	assert_error(rp_lun_get(&t, f->b, s.peer_device, &err), err, RP_ENOTFOUND);
	assert_int_equal(count_rows(f->a, "devices"), 0);
	assert_int_equal(count_rows(f->b, "devices"), 0);
	assert_int_equal(count_rows(f->a, "intents"), 0);
	assert_int_equal(fake_array_obj_count(f->a->root), 0);
	assert_int_equal(fake_array_obj_count(f->b->root), 0);
	/* Deleting again: not found. */
	rp_error_clear(&err);
	assert_error(rp_lun_delete(f->a, s.id, &err), err, RP_ENOTFOUND);
}

static void test_lun__delete_removes_snapshots(void **state)
{
	struct fx *f = *state;
	struct rp_error err = { 0 };
	struct model_snapshot s;
	struct rp_device d;

	assert_int_equal(rp_lun_create(&d, f->a, "d", MiB, NULL, &err), 0);
	memset(&s, 0, sizeof(s));
	(void)snprintf(s.id, sizeof(s.id), "rp-%s-5", d.id);
	(void)snprintf(s.device, sizeof(s.device), "%s", d.id);
	(void)snprintf(s.kind, sizeof(s.kind), "rp");
	model_snapshot_obj(s.obj, s.id);
	s.created_ms = 5;
	assert_int_equal(f->a->drv->ops->clone(f->a->drv, "lun-siteA-000001", s.obj, &err), 0);
	assert_int_equal(model_snapshot_insert(f->a, &s, &err), 0);
	assert_int_equal(fake_array_obj_count(f->a->root), 2);
	assert_int_equal(rp_lun_delete(f->a, d.id, &err), 0);
	assert_int_equal(count_rows(f->a, "snapshots"), 0);
	assert_int_equal(fake_array_obj_count(f->a->root), 0);
}

static void test_lun__resize(void **state)
{
	struct fx *f = *state;
	struct rp_lun_create_opts o = { .replicate = true };
	struct rp_error err = { 0 };
	struct rp_device s, t;

	assert_int_equal(rp_lun_create(&s, f->a, "r", 2 * MiB, &o, &err), 0);
	assert_int_equal(rp_lun_resize(f->a, s.id, 4 * MiB, &err), 0);
	assert_int_equal(rp_lun_get(&s, f->a, s.id, &err), 0);
	assert_true(s.size == 4 * MiB);
	assert_int_equal(rp_lun_get(&t, f->b, s.peer_device, &err), 0);
	assert_true(t.size == 4 * MiB);
	/* Same size: nothing to do. */
	assert_int_equal(rp_lun_resize(f->a, s.id, 4 * MiB, &err), 0);
	assert_error(rp_lun_resize(f->a, s.id, MiB, &err), err, RP_EINVAL);
	rp_error_clear(&err);
	assert_error(rp_lun_resize(f->a, s.id, 0, &err), err, RP_EINVAL);
	rp_error_clear(&err);
	assert_error(rp_lun_resize(f->b, t.id, 8 * MiB, &err), err, RP_ESTATE);
	rp_error_clear(&err);
	assert_error(rp_lun_resize(f->a, "nope-1", 8 * MiB, &err), err, RP_ENOTFOUND);
	rp_error_clear(&err);
	/* The driver fails: the recorded size stays. */
	fake_array_fail("obj_resize", 2, RP_EIO);
	assert_error(rp_lun_resize(f->a, s.id, 8 * MiB, &err), err, RP_EIO);
	assert_int_equal(rp_lun_get(&s, f->a, s.id, &err), 0);
	assert_true(s.size == 4 * MiB);
}

static void test_lun__snapshot_and_clone(void **state)
{
	struct fx *f = *state;
	struct rp_lun_create_opts o = { .group = "sr", .replicate = true };
	struct rp_error err = { 0 };
	struct rp_device s, snap, clone, t;
	char buf[512], back[512];

	assert_int_equal(rp_lun_create(&s, f->a, "base", MiB, &o, &err), 0);
	memset(buf, 0x5a, sizeof(buf));
	assert_int_equal(
	        f->a->drv->ops->write(f->a->drv, "lun-siteA-000001", 0, buf, sizeof(buf), &err), 0);
	assert_int_equal(rp_lun_snapshot(&snap, f->a, s.id, "base snap", &err), 0);
	assert_true(snap.read_only);
	assert_string_equal(snap.snapshot_of, s.id);
	assert_string_equal(snap.group, "sr");
	assert_int_equal(snap.state, RP_DEV_SOURCE);
	assert_true(snap.size == s.size);
	/* Its data is the source's. */
	assert_int_equal(
	        f->a->drv->ops->read(f->a->drv, "lun-siteA-000002", 0, back, sizeof(back), &err),
	        0);
	assert_memory_equal(buf, back, sizeof(buf));
	/* The replicating group got a target for it on B, empty until the next sync. */
	assert_int_equal(rp_lun_get(&t, f->b, snap.peer_device, &err), 0);
	assert_int_equal(t.state, RP_DEV_TARGET);
	assert_true(t.allocated == 0);
	assert_int_equal(rp_lun_clone(&clone, f->a, s.id, NULL, &err), 0);
	assert_false(clone.read_only);
	/* Default names of copies are unique: "<source> clone <new id>". */
	assert_string_equal(clone.name, "base clone siteA-000003");
	assert_string_equal(clone.snapshot_of, s.id);
	/* Refusals. */
	assert_error(rp_lun_snapshot(&snap, f->b, t.id, "x", &err), err, RP_ESTATE);
	rp_error_clear(&err);
	assert_error(rp_lun_snapshot(&snap, f->a, "siteA-000099", "x", &err), err, RP_ENOTFOUND);
	rp_error_clear(&err);
	assert_error(rp_lun_clone(&snap, f->a, "..", "x", &err), err, RP_EINVAL);
	rp_error_clear(&err);
	fake_array_fail("clone", 1, RP_EIO);
	assert_error(rp_lun_clone(&snap, f->a, s.id, "x", &err), err, RP_EIO);
	assert_int_equal(count_rows(f->a, "devices"), 3);
	assert_int_equal(count_rows(f->b, "devices"), 3);
	assert_int_equal(count_rows(f->a, "intents"), 0);
}

static void test_lun__rename_and_path(void **state)
{
	struct fx *f = *state;
	struct rp_lun_create_opts o = { .replicate = true };
	struct rp_error err = { 0 };
	struct rp_device s, t;
	char path[PATH_MAX];

	assert_int_equal(rp_lun_create(&s, f->a, "old", MiB, &o, &err), 0);
	assert_int_equal(rp_lun_rename(f->a, s.id, "new name", &err), 0);
	assert_int_equal(rp_lun_get(&s, f->a, s.id, &err), 0);
	assert_string_equal(s.name, "new name");
	assert_int_equal(rp_lun_get(&t, f->b, s.peer_device, &err), 0);
	assert_string_equal(t.name, "new name");
	assert_error(rp_lun_rename(f->a, s.id, "", &err), err, RP_EINVAL);
	rp_error_clear(&err);
	assert_error(rp_lun_rename(f->b, t.id, "x", &err), err, RP_ESTATE);
	rp_error_clear(&err);
	assert_error(rp_lun_rename(f->a, "siteA-000042", "x", &err), err, RP_ENOTFOUND);
	rp_error_clear(&err);
	/* The fake driver has no local paths. */
	assert_error(rp_lun_path(path, sizeof(path), f->a, s.id, &err), err, RP_ENOTSUPPORTED);
	rp_error_clear(&err);
	assert_error(rp_lun_path(path, sizeof(path), f->a, "../x", &err), err, RP_EINVAL);
	rp_error_clear(&err);
	assert_error(rp_lun_path(path, sizeof(path), f->a, "siteA-000042", &err), err,
	             RP_ENOTFOUND);
}

struct collect {
	int n;
	char keys[8][32];
	int stop_at;
};

static int collect_cb(const char *key, const char *value, void *payload)
{
	struct collect *c = payload;

	(void)value;
	if (c->n < 8)
		(void)snprintf(c->keys[c->n], sizeof(c->keys[0]), "%s", key);
	c->n++;
	return c->stop_at && c->n == c->stop_at ? 7 : 0;
}

static void test_lun__metadata(void **state)
{
	struct fx *f = *state;
	struct rp_error err = { 0 };
	struct collect c = { 0 };
	struct rp_device d;
	char key[130], *big, *v = NULL;
	const char *keys[] = { "uuid", "name-label", "gone" };
	const char *vals[] = { "1234", "My VDI", NULL };

	assert_int_equal(rp_lun_create(&d, f->a, "m", MiB, NULL, &err), 0);
	assert_int_equal(rp_lun_meta_set(f->a, d.id, "gone", "soon", &err), 0);
	assert_int_equal(rp_lun_meta_set_many(f->a, d.id, keys, vals, 3, &err), 0);
	assert_int_equal(rp_lun_meta_get(&v, f->a, d.id, "name-label", &err), 0);
	assert_string_equal(v, "My VDI");
	rp_freep(&v);
	assert_error(rp_lun_meta_get(&v, f->a, d.id, "gone", &err), err, RP_ENOTFOUND);
	rp_error_clear(&err);
	assert_int_equal(rp_lun_meta_set(f->a, d.id, "uuid", "5678", &err), 0);
	assert_int_equal(rp_lun_meta_get(&v, f->a, d.id, "uuid", &err), 0);
	assert_string_equal(v, "5678");
	rp_freep(&v);
	/* foreach in key order, and a non-zero callback return stops and is returned. */
	assert_int_equal(rp_lun_meta_foreach(f->a, d.id, collect_cb, &c, &err), 0);
	assert_int_equal(c.n, 2);
	assert_string_equal(c.keys[0], "name-label");
	assert_string_equal(c.keys[1], "uuid");
	memset(&c, 0, sizeof(c));
	c.stop_at = 1;
	assert_int_equal(rp_lun_meta_foreach(f->a, d.id, collect_cb, &c, &err), 7);
	assert_int_equal(c.n, 1);
	/* Delete is idempotent. */
	assert_int_equal(rp_lun_meta_del(f->a, d.id, "uuid", &err), 0);
	assert_int_equal(rp_lun_meta_del(f->a, d.id, "uuid", &err), 0);
	/* Limits: key 1..127 printable, value <= 64 KiB. */
	memset(key, 'k', 127);
	key[127] = '\0';
	assert_int_equal(rp_lun_meta_set(f->a, d.id, key, "ok", &err), 0);
	key[127] = 'k';
	key[128] = '\0';
	assert_error(rp_lun_meta_set(f->a, d.id, key, "no", &err), err, RP_EINVAL);
	rp_error_clear(&err);
	assert_error(rp_lun_meta_set(f->a, d.id, "", "no", &err), err, RP_EINVAL);
	rp_error_clear(&err);
	assert_error(rp_lun_meta_set(f->a, d.id, "new\nline", "no", &err), err, RP_EINVAL);
	rp_error_clear(&err);
	assert_error(rp_lun_meta_set(f->a, d.id, "k", NULL, &err), err, RP_EINVAL);
	rp_error_clear(&err);
	big = malloc(64 * 1024 + 2);
	assert_non_null(big);
	memset(big, 'v', 64 * 1024 + 1);
	big[64 * 1024] = '\0';
	assert_int_equal(rp_lun_meta_set(f->a, d.id, "big", big, &err), 0);
	big[64 * 1024] = 'v';
	big[64 * 1024 + 1] = '\0';
	assert_error(rp_lun_meta_set(f->a, d.id, "big", big, &err), err, RP_EINVAL);
	rp_error_clear(&err);
	/* set_many with one bad value changes nothing at all. */
	{
		const char *k2[] = { "a", "big" };
		const char *v2[] = { "1", big };

		assert_error(rp_lun_meta_set_many(f->a, d.id, k2, v2, 2, &err), err, RP_EINVAL);
		rp_error_clear(&err);
		assert_error(rp_lun_meta_get(&v, f->a, d.id, "a", &err), err, RP_ENOTFOUND);
		rp_error_clear(&err);
	}
	free(big);
	assert_int_equal(rp_lun_meta_get(&v, f->a, d.id, "big", &err), 0);
	assert_int_equal(strlen(v), 64 * 1024);
	rp_freep(&v);
	/* Unknown LUN. */
	assert_error(rp_lun_meta_set(f->a, "siteA-000009", "k", "v", &err), err, RP_ENOTFOUND);
	rp_error_clear(&err);
	assert_error(rp_lun_meta_get(&v, f->a, "..", "k", &err), err, RP_EINVAL);
}

static void test_lun__presentation(void **state)
{
	struct fx *f = *state;
	struct rp_error err = { 0 };
	struct rp_device d, snap;

	assert_int_equal(rp_lun_create(&d, f->a, "p", MiB, NULL, &err), 0);
	assert_int_equal(rp_lun_present(f->a, d.id, "host1", true, &err), 0);
	/* Idempotent for the same host. */
	assert_int_equal(rp_lun_present(f->a, d.id, "host1", true, &err), 0);
	/* One writer: nobody else, not even read-only. */
	assert_error(rp_lun_present(f->a, d.id, "host2", false, &err), err, RP_EBUSY);
	rp_error_clear(&err);
	assert_error(rp_lun_present(f->a, d.id, "host2", true, &err), err, RP_EBUSY);
	rp_error_clear(&err);
	assert_int_equal(rp_lun_unpresent(f->a, d.id, "host1", &err), 0);
	assert_int_equal(rp_lun_unpresent(f->a, d.id, "host1", &err), 0);
	/* Several readers, then no writer while they are there. */
	assert_int_equal(rp_lun_present(f->a, d.id, "host2", false, &err), 0);
	assert_int_equal(rp_lun_present(f->a, d.id, "host3", false, &err), 0);
	assert_error(rp_lun_present(f->a, d.id, "host3", true, &err), err, RP_EBUSY);
	rp_error_clear(&err);
	assert_int_equal(count_rows(f->a, "presentations"), 2);
	/* Read-only LUN: no write access. */
	assert_int_equal(rp_lun_snapshot(&snap, f->a, d.id, "s", &err), 0);
	assert_error(rp_lun_present(f->a, snap.id, "host1", true, &err), err, RP_EPERM);
	rp_error_clear(&err);
	assert_int_equal(rp_lun_present(f->a, snap.id, "host1", false, &err), 0);
	assert_error(rp_lun_present(f->a, "siteA-000050", "h", false, &err), err, RP_ENOTFOUND);
	rp_error_clear(&err);
	assert_error(rp_lun_present(f->a, d.id, "", false, &err), err, RP_EINVAL);
}

static void test_lun__file_driver(void **state)
{
	struct fx *f = *state;
	struct rp_lun_create_opts o = { .group = "sr", .replicate = true };
	struct rp_error err = { 0 };
	struct rp_device s, t, c;
	char path[PATH_MAX], tpath[PATH_MAX];
	struct stat st;

	assert_int_equal(rp_lun_create(&s, f->a, "file lun", 8 * MiB, &o, &err), 0);
	assert_int_equal(rp_lun_path(path, sizeof(path), f->a, s.id, &err), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_true((uint64_t)st.st_size == 8 * MiB);
	assert_int_equal(rp_lun_get(&t, f->b, s.peer_device, &err), 0);
	assert_int_equal(rp_lun_path(tpath, sizeof(tpath), f->b, t.id, &err), 0);
	assert_int_equal(stat(tpath, &st), 0);
	assert_int_equal(rp_lun_resize(f->a, s.id, 16 * MiB, &err), 0);
	assert_int_equal(stat(tpath, &st), 0);
	assert_true((uint64_t)st.st_size == 16 * MiB);
	assert_int_equal(rp_lun_clone(&c, f->a, s.id, "copy", &err), 0);
	assert_int_equal(rp_lun_delete(f->a, c.id, &err), 0);
	assert_int_equal(rp_lun_delete(f->a, s.id, &err), 0);
	assert_int_equal(stat(path, &st), -1);
	assert_int_equal(stat(tpath, &st), -1);
	assert_int_equal(count_rows(f->b, "devices"), 0);
}

static void test_lun__group_locked_is_busy(void **state)
{
	struct fx *f = *state;
	struct rp_open_opts oo = { .busy_timeout_ms = 200 };
	struct rp_lun_create_opts o = { .group = "held" };
	struct rp_error err = { 0 };
	struct rp_array *h = NULL;
	struct rp_device d;
	int fd = -1;

	/* Another command holds the group (a workflow or a sync's planning step). */
	assert_int_equal(lock_group(f->a, "held", &fd, &err), 0);
	assert_int_equal(rp_array_open(&h, f->a_path, &oo, &err), 0);
	assert_error(rp_lun_create(&d, h, "x", MiB, &o, &err), err, RP_EBUSY);
	assert_int_equal(count_rows(f->a, "devices"), 0);
	assert_int_equal(count_rows(f->a, "groups"), 0);
	/* Other groups and standalone LUNs are not held up. */
	assert_int_equal(rp_lun_create(&d, h, "y", MiB, NULL, &err), 0);
	unlock(fd);
	assert_int_equal(rp_lun_create(&d, h, "x", MiB, &o, &err), 0);
	assert_string_equal(d.group, "held");
	rp_array_close(h);
}

/* LUN names are unique per array, have no control characters and no '/'. */
static void test_lun__names_unique(void **state)
{
	struct fx *f = *state;
	struct rp_lun_create_opts o = { .group = "g" };
	struct rp_error err = { 0 };
	struct rp_device d, e, s1, s2, c1;

	assert_int_equal(rp_lun_create(&d, f->a, "disk", MiB, &o, &err), 0);
	assert_int_equal(rp_lun_create(&e, f->a, "other", MiB, NULL, &err), 0);
	/* Taken, in the same group or not. */
	assert_error(rp_lun_create(NULL, f->a, "disk", MiB, &o, &err), err, RP_EEXISTS);
	assert_string_equal(err.msg, "LUN name 'disk' is already in use by 'siteA-000001'");
	rp_error_clear(&err);
	assert_error(rp_lun_create(NULL, f->a, "disk", MiB, NULL, &err), err, RP_EEXISTS);
	rp_error_clear(&err);
	assert_error(rp_lun_snapshot(NULL, f->a, d.id, "other", &err), err, RP_EEXISTS);
	assert_string_equal(err.msg, "LUN name 'other' is already in use by 'siteA-000002'");
	rp_error_clear(&err);
	assert_error(rp_lun_clone(NULL, f->a, d.id, "disk", &err), err, RP_EEXISTS);
	rp_error_clear(&err);
	/* Bad names. */
	assert_error(rp_lun_create(NULL, f->a, "a/b", MiB, NULL, &err), err, RP_EINVAL);
	rp_error_clear(&err);
	assert_error(rp_lun_create(NULL, f->a, "a\tb", MiB, NULL, &err), err, RP_EINVAL);
	rp_error_clear(&err);
	assert_error(rp_lun_clone(NULL, f->a, d.id, "x/y", &err), err, RP_EINVAL);
	rp_error_clear(&err);
	/* Nothing of the refused calls is left. */
	assert_int_equal(count_rows(f->a, "devices"), 2);
	assert_int_equal(count_rows(f->a, "intents"), 0);
	if (strcmp(f->driver, "fake") == 0)
		assert_int_equal(fake_array_obj_count(f->a_path), 2);
	/* Default names of copies are unique. */
	assert_int_equal(rp_lun_snapshot(&s1, f->a, d.id, NULL, &err), 0);
	assert_int_equal(rp_lun_snapshot(&s2, f->a, d.id, NULL, &err), 0);
	assert_int_equal(rp_lun_clone(&c1, f->a, d.id, NULL, &err), 0);
	assert_string_equal(s1.name, "disk snapshot siteA-000003");
	assert_string_equal(s2.name, "disk snapshot siteA-000004");
	assert_string_equal(c1.name, "disk clone siteA-000005");
	/* A copy of a copy keeps it unique too. */
	assert_int_equal(rp_lun_clone(&c1, f->a, s1.id, NULL, &err), 0);
	assert_string_equal(c1.name, "disk snapshot siteA-000003 clone siteA-000006");
	/* Rename: to a taken name refused, to its own name a no-op, bad names refused. */
	assert_error(rp_lun_rename(f->a, e.id, "disk", &err), err, RP_EEXISTS);
	rp_error_clear(&err);
	assert_error(rp_lun_rename(f->a, e.id, "d/isk", &err), err, RP_EINVAL);
	rp_error_clear(&err);
	assert_int_equal(rp_lun_rename(f->a, e.id, "other", &err), 0);
	assert_int_equal(rp_lun_rename(f->a, e.id, "renamed", &err), 0);
	assert_int_equal(rp_lun_get(&e, f->a, e.id, &err), 0);
	assert_string_equal(e.name, "renamed");
	/* The old name is free again. */
	assert_int_equal(rp_lun_create(NULL, f->a, "other", MiB, NULL, &err), 0);
}

/* A target carries its source's name on the peer: a LUN of that name there is a collision. */
static void test_lun__names_on_peer(void **state)
{
	struct fx *f = *state;
	struct rp_lun_create_opts r = { .group = "sr", .replicate = true };
	struct rp_error err = { 0 };
	struct rp_device s, t, local_b, snap;

	assert_int_equal(rp_lun_create(&local_b, f->b, "taken-at-b", MiB, NULL, &err), 0);
	assert_int_equal(rp_lun_create(&s, f->a, "vm1", MiB, &r, &err), 0);
	assert_int_equal(rp_lun_get(&t, f->b, s.peer_device, &err), 0);
	assert_string_equal(t.name, "vm1");
	/* The target's name is taken on B (and the source's on A). */
	assert_error(rp_lun_create(NULL, f->b, "vm1", MiB, NULL, &err), err, RP_EEXISTS);
	rp_error_clear(&err);
	assert_error(rp_lun_create(NULL, f->a, "taken-at-b", MiB, &r, &err), err, RP_EEXISTS);
	assert_string_equal(err.msg, "LUN name 'taken-at-b' is already in use by 'siteB-000001' on "
	                             "peer array 'siteB'");
	rp_error_clear(&err);
	assert_int_equal(count_rows(f->a, "devices"), 1);
	assert_int_equal(count_rows(f->b, "devices"), 2);
	assert_int_equal(count_rows(f->a, "intents"), 0);
	assert_int_equal(count_rows(f->b, "intents"), 0);
	/* A local LUN of that name on A is fine: it has no target. */
	assert_int_equal(rp_lun_create(NULL, f->a, "taken-at-b", MiB, NULL, &err), 0);
	/* A snapshot in the replicating group: its default name is free on both arrays. */
	assert_int_equal(rp_lun_snapshot(&snap, f->a, s.id, NULL, &err), 0);
	assert_int_equal(rp_lun_get(&t, f->b, snap.peer_device, &err), 0);
	assert_string_equal(t.name, snap.name);
	/* Rename of a source: refused when the name is taken on the peer, the target follows. */
	assert_error(rp_lun_rename(f->a, s.id, "taken-at-b", &err), err, RP_EEXISTS);
	rp_error_clear(&err);
	assert_int_equal(rp_lun_get(&t, f->a, s.id, &err), 0);
	assert_string_equal(t.name, "vm1");
	assert_int_equal(rp_lun_rename(f->a, s.id, "vm1-new", &err), 0);
	assert_int_equal(rp_lun_get(&t, f->b, s.peer_device, &err), 0);
	assert_string_equal(t.name, "vm1-new");
}

/* Initial metadata is committed with the LUN; bad metadata creates nothing. */
static void test_lun__create_with_metadata(void **state)
{
	struct fx *f = *state;
	const char *keys[] = { "vdi_uuid", "name_label", "skipped" };
	const char *vals[] = { "0b5c-uuid", "my disk", NULL };
	const char *bad_keys[] = { "ok", "" };
	const char *bad_vals[] = { "v", "w" };
	struct rp_lun_create_opts o = { .group = "sr",
		                        .replicate = true,
		                        .meta_keys = keys,
		                        .meta_values = vals,
		                        .n_meta = 3 };
	struct rp_lun_copy_opts c = { .meta_keys = keys, .meta_values = vals, .n_meta = 2 };
	struct rp_error err = { 0 };
	struct rp_device d, snap, clone;
	char *v = NULL;

	assert_int_equal(rp_lun_create(&d, f->a, "vdi", MiB, &o, &err), 0);
	assert_int_equal(rp_lun_meta_get(&v, f->a, d.id, "name_label", &err), 0);
	assert_string_equal(v, "my disk");
	rp_free(v);
	v = NULL;
	assert_int_equal(rp_lun_meta_get(&v, f->a, d.id, "vdi_uuid", &err), 0);
	assert_string_equal(v, "0b5c-uuid");
	rp_free(v);
	v = NULL;
	assert_error(rp_lun_meta_get(&v, f->a, d.id, "skipped", &err), err, RP_ENOTFOUND);
	rp_error_clear(&err);
	assert_int_equal(count_rows(f->a, "lun_meta"), 2);
	/* Both objects were made durable before the rows named them. */
	assert_true(fake_array_calls("flush") >= 2);
	/* Copies get the metadata given, not the source's. */
	vals[0] = "snap-uuid";
	c.name = "vdi-snap";
	assert_int_equal(rp_lun_snapshot_ex(&snap, f->a, d.id, &c, &err), 0);
	assert_true(snap.read_only);
	assert_string_equal(snap.snapshot_of, d.id);
	assert_int_equal(rp_lun_meta_get(&v, f->a, snap.id, "vdi_uuid", &err), 0);
	assert_string_equal(v, "snap-uuid");
	rp_free(v);
	v = NULL;
	c.name = NULL;
	c.n_meta = 0;
	assert_int_equal(rp_lun_clone_ex(&clone, f->a, d.id, &c, &err), 0);
	assert_false(clone.read_only);
	assert_error(rp_lun_meta_get(&v, f->a, clone.id, "vdi_uuid", &err), err, RP_ENOTFOUND);
	rp_error_clear(&err);
	assert_int_equal(rp_lun_clone_ex(&clone, f->a, d.id, NULL, &err), 0);
	assert_int_equal(count_rows(f->a, "lun_meta"), 4);
	/* Bad metadata: refused before anything is made. */
	o.meta_keys = bad_keys;
	o.meta_values = bad_vals;
	o.n_meta = 2;
	assert_error(rp_lun_create(NULL, f->a, "bad", MiB, &o, &err), err, RP_EINVAL);
	rp_error_clear(&err);
	o.meta_keys = NULL;
	assert_error(rp_lun_create(NULL, f->a, "bad", MiB, &o, &err), err, RP_EINVAL);
	rp_error_clear(&err);
	c.meta_keys = bad_keys;
	c.meta_values = bad_vals;
	c.n_meta = 2;
	assert_error(rp_lun_snapshot_ex(NULL, f->a, d.id, &c, &err), err, RP_EINVAL);
	rp_error_clear(&err);
	assert_int_equal(count_rows(f->a, "devices"), 4);
	assert_int_equal(count_rows(f->b, "devices"), 4);
	/* A failure at the peer rolls everything back, metadata included. */
	o.meta_keys = keys;
	o.meta_values = vals;
	o.n_meta = 2;
	fake_array_fail("obj_create", 2, RP_EIO);
	assert_error(rp_lun_create(NULL, f->a, "fails", MiB, &o, &err), err, RP_EIO);
	rp_error_clear(&err);
	assert_int_equal(count_rows(f->a, "devices"), 4);
	assert_int_equal(count_rows(f->b, "devices"), 4);
	assert_int_equal(count_rows(f->a, "lun_meta"), 4);
	assert_int_equal(count_rows(f->a, "intents"), 0);
	assert_int_equal(count_rows(f->b, "intents"), 0);
	assert_int_equal(fake_array_obj_count(f->a_path), 4);
	assert_int_equal(fake_array_obj_count(f->b_path), 4);
	/* A failure making the object durable too. */
	fake_array_fail("flush", 1, RP_EIO);
	assert_error(rp_lun_create(NULL, f->a, "fails", MiB, &o, &err), err, RP_EIO);
	rp_error_clear(&err);
	assert_int_equal(count_rows(f->a, "devices"), 4);
	assert_int_equal(count_rows(f->b, "devices"), 4);
	assert_int_equal(count_rows(f->a, "intents"), 0);
	assert_int_equal(count_rows(f->b, "intents"), 0);
	assert_int_equal(fake_array_obj_count(f->a_path), 4);
	assert_int_equal(fake_array_obj_count(f->b_path), 4);
}

/* rp_lun_presentations lists who has a LUN; rp_lun_unpresent_all takes it from everybody. */
static void test_lun__presentations_list(void **state)
{
	struct fx *f = *state;
	struct rp_presentation *p = NULL;
	struct rp_error err = { 0 };
	struct rp_device d, other;
	size_t n = 99;

	assert_int_equal(rp_lun_create(&d, f->a, "p", MiB, NULL, &err), 0);
	assert_int_equal(rp_lun_create(&other, f->a, "q", MiB, NULL, &err), 0);
	assert_int_equal(rp_lun_presentations(&p, &n, f->a, d.id, &err), 0);
	assert_int_equal(n, 0);
	rp_free(p);
	p = NULL;
	assert_int_equal(rp_lun_present(f->a, d.id, "host-b", false, &err), 0);
	assert_int_equal(rp_lun_present(f->a, d.id, "host-a", false, &err), 0);
	assert_int_equal(rp_lun_present(f->a, other.id, "host-w", true, &err), 0);
	assert_int_equal(rp_lun_presentations(&p, &n, f->a, d.id, &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(p[0].host, "host-a");
	assert_false(p[0].rw);
	assert_string_equal(p[1].host, "host-b");
	rp_free(p);
	p = NULL;
	assert_int_equal(rp_lun_presentations(&p, &n, f->a, other.id, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(p[0].host, "host-w");
	assert_true(p[0].rw);
	rp_free(p);
	p = NULL;
	/* Forced take-over: the dead writer's presentation goes, the other LUN's stay. */
	assert_int_equal(rp_lun_unpresent_all(f->a, other.id, &err), 0);
	assert_int_equal(rp_lun_unpresent_all(f->a, other.id, &err), 0);
	assert_int_equal(count_rows(f->a, "presentations"), 2);
	assert_int_equal(rp_lun_present(f->a, other.id, "host-new", true, &err), 0);
	assert_int_equal(rp_lun_unpresent_all(f->a, d.id, &err), 0);
	assert_int_equal(count_rows(f->a, "presentations"), 1);
	/* Errors. */
	assert_error(rp_lun_presentations(&p, &n, f->a, "siteA-000099", &err), err, RP_ENOTFOUND);
	rp_error_clear(&err);
	assert_error(rp_lun_presentations(NULL, &n, f->a, d.id, &err), err, RP_EINVAL);
	rp_error_clear(&err);
	assert_error(rp_lun_presentations(&p, &n, f->a, "../x", &err), err, RP_EINVAL);
	rp_error_clear(&err);
	assert_error(rp_lun_unpresent_all(f->a, "siteA-000099", &err), err, RP_ENOTFOUND);
	rp_error_clear(&err);
	assert_error(rp_lun_unpresent_all(NULL, d.id, &err), err, RP_EINVAL);
}

int model_lun_tests(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_lun__create_local, fx_setup_fake, fx_teardown),
		cmocka_unit_test_setup_teardown(test_lun__create_bad_input_changes_nothing,
		                                fx_setup_fake, fx_teardown),
		cmocka_unit_test_setup_teardown(test_lun__get_and_list, fx_setup_fake, fx_teardown),
		cmocka_unit_test_setup_teardown(test_lun__allocated_and_test_snapshot,
		                                fx_setup_fake, fx_teardown),
		cmocka_unit_test_setup_teardown(test_lun__replicated_create, fx_setup_fake,
		                                fx_teardown),
		cmocka_unit_test_setup_teardown(test_lun__replicate_refusals, fx_setup_fake,
		                                fx_teardown),
		cmocka_unit_test_setup_teardown(test_lun__delete, fx_setup_fake, fx_teardown),
		cmocka_unit_test_setup_teardown(test_lun__delete_removes_snapshots, fx_setup_fake,
		                                fx_teardown),
		cmocka_unit_test_setup_teardown(test_lun__resize, fx_setup_fake, fx_teardown),
		cmocka_unit_test_setup_teardown(test_lun__snapshot_and_clone, fx_setup_fake,
		                                fx_teardown),
		cmocka_unit_test_setup_teardown(test_lun__rename_and_path, fx_setup_fake,
		                                fx_teardown),
		cmocka_unit_test_setup_teardown(test_lun__metadata, fx_setup_fake, fx_teardown),
		cmocka_unit_test_setup_teardown(test_lun__presentation, fx_setup_fake, fx_teardown),
		cmocka_unit_test_setup_teardown(test_lun__group_locked_is_busy, fx_setup_fake,
		                                fx_teardown),
		cmocka_unit_test_setup_teardown(test_lun__file_driver, fx_setup_file, fx_teardown),
		cmocka_unit_test_setup_teardown(test_lun__names_unique, fx_setup_fake, fx_teardown),
		cmocka_unit_test_setup_teardown(test_lun__names_on_peer, fx_setup_fake,
		                                fx_teardown),
		cmocka_unit_test_setup_teardown(test_lun__create_with_metadata, fx_setup_fake,
		                                fx_teardown),
		cmocka_unit_test_setup_teardown(test_lun__presentations_list, fx_setup_fake,
		                                fx_teardown),
		cmocka_unit_test_setup_teardown(test_lun__names_unique, fx_setup_file, fx_teardown),
	};

	return cmocka_run_group_tests_name("core.model.lun", tests, NULL, NULL);
}

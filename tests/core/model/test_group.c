/* SPDX-License-Identifier: MIT */
/* test_group.c - rp_group_*: create, get, list, delete, policy, metadata, usage. */
#include <stdio.h>
#include <string.h>

#include "helpers.h"

#define MiB (1024ull * 1024ull)

static void test_group__create_get_list(void **state)
{
	struct fx *f = *state;
	struct rp_error err = { 0 };
	struct rp_group g, *v = NULL;
	size_t n = 0;

	assert_int_equal(rp_group_create(&g, f->a, "sr-1", "My SR", &err), 0);
	assert_string_equal(g.id, "sr-1");
	assert_string_equal(g.name, "My SR");
	assert_int_equal(g.role, RP_GROUP_LOCAL);
	assert_int_equal(g.retention, 3);
	assert_int_equal(rp_group_create(NULL, f->a, "a-first", NULL, &err), 0);
	/* Duplicate: refused, nothing changed. */
	assert_error(rp_group_create(&g, f->a, "sr-1", "Other", &err), err, RP_EEXISTS);
	rp_error_clear(&err);
	assert_int_equal(rp_group_get(&g, f->a, "sr-1", &err), 0);
	assert_string_equal(g.name, "My SR");
	assert_error(rp_group_create(&g, f->a, "../g", NULL, &err), err, RP_EINVAL);
	rp_error_clear(&err);
	assert_error(rp_group_create(&g, f->a, "g", "bad\x01name", &err), err, RP_EINVAL);
	rp_error_clear(&err);
	assert_error(rp_group_get(&g, f->a, "missing", &err), err, RP_ENOTFOUND);
	rp_error_clear(&err);
	assert_int_equal(rp_group_list(&v, &n, f->a, &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].id, "a-first");
	assert_string_equal(v[0].name, "a-first");
	assert_string_equal(v[1].id, "sr-1");
	rp_free(v);
	assert_string_equal(rp_group_role_name(RP_GROUP_PROMOTED_TARGET), "promoted-target");
	assert_string_equal(rp_dev_state_name(RP_DEV_DEMOTED_SOURCE), "demoted-source");
	assert_string_equal(rp_dev_state_name((enum rp_dev_state)99), "unknown");
}

static void test_group__delete(void **state)
{
	struct fx *f = *state;
	struct rp_lun_create_opts o = { .group = "g" };
	struct rp_error err = { 0 };
	struct rp_device d;

	assert_int_equal(rp_lun_create(&d, f->a, "x", MiB, &o, &err), 0);
	assert_int_equal(rp_group_meta_set(f->a, "g", "sr-name", "SR", &err), 0);
	/* Not empty: busy, nothing changed. */
	assert_error(rp_group_delete(f->a, "g", &err), err, RP_EBUSY);
	rp_error_clear(&err);
	assert_int_equal(count_rows(f->a, "groups"), 1);
	assert_int_equal(rp_lun_delete(f->a, d.id, &err), 0);
	assert_int_equal(rp_group_delete(f->a, "g", &err), 0);
	assert_int_equal(count_rows(f->a, "groups"), 0);
	assert_int_equal(count_rows(f->a, "group_meta"), 0);
	/* Idempotent. */
	assert_int_equal(rp_group_delete(f->a, "g", &err), 0);
	assert_error(rp_group_delete(f->a, "..", &err), err, RP_EINVAL);
}

static void test_group__policy_both_sides(void **state)
{
	struct fx *f = *state;
	struct rp_lun_create_opts o = { .group = "rg", .replicate = true };
	struct rp_error err = { 0 };
	struct rp_group g;

	assert_int_equal(rp_lun_create(NULL, f->a, "x", MiB, &o, &err), 0);
	assert_int_equal(rp_group_set_policy(f->a, "rg", 900, 5, &err), 0);
	assert_int_equal(rp_group_get(&g, f->a, "rg", &err), 0);
	assert_int_equal(g.rpo_seconds, 900);
	assert_int_equal(g.retention, 5);
	assert_int_equal(rp_group_get(&g, f->b, "rg", &err), 0);
	assert_int_equal(g.rpo_seconds, 900);
	assert_int_equal(g.retention, 5);
	assert_error(rp_group_set_policy(f->a, "rg", 900, 0, &err), err, RP_EINVAL);
	rp_error_clear(&err);
	assert_error(rp_group_set_policy(f->a, "nope", 1, 1, &err), err, RP_ENOTFOUND);
}

static int count_cb(const char *key, const char *value, void *payload)
{
	(void)key;
	(void)value;
	(*(int *)payload)++;
	return 0;
}

static void test_group__meta_and_usage(void **state)
{
	struct fx *f = *state;
	struct rp_lun_create_opts o = { .group = "u" };
	struct rp_error err = { 0 };
	uint64_t virt = 0, phys = 0;
	char *v = NULL, buf[4096];
	int n = 0;

	assert_int_equal(rp_lun_create(NULL, f->a, "x", 2 * MiB, &o, &err), 0);
	assert_int_equal(rp_lun_create(NULL, f->a, "y", 3 * MiB, &o, &err), 0);
	assert_int_equal(rp_group_meta_set(f->a, "u", "name-label", "SR one", &err), 0);
	assert_int_equal(rp_group_meta_get(&v, f->a, "u", "name-label", &err), 0);
	assert_string_equal(v, "SR one");
	rp_freep(&v);
	assert_int_equal(rp_group_meta_foreach(f->a, "u", count_cb, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_error(rp_group_meta_get(&v, f->a, "u", "none", &err), err, RP_ENOTFOUND);
	rp_error_clear(&err);
	assert_error(rp_group_meta_set(f->a, "nogroup", "k", "v", &err), err, RP_ENOTFOUND);
	rp_error_clear(&err);
	assert_error(rp_group_meta_set(f->a, "u", "", "v", &err), err, RP_EINVAL);
	rp_error_clear(&err);
	memset(buf, 1, sizeof(buf));
	assert_int_equal(
	        f->a->drv->ops->write(f->a->drv, "lun-siteA-000002", 0, buf, sizeof(buf), &err), 0);
	assert_int_equal(rp_group_usage(&virt, &phys, f->a, "u", &err), 0);
	assert_true(virt == 5 * MiB);
	assert_true(phys > 0 && phys <= virt);
	assert_error(rp_group_usage(&virt, &phys, f->a, "nogroup", &err), err, RP_ENOTFOUND);
}

static void test_group__model_accessors(void **state)
{
	struct fx *f = *state;
	struct rp_lun_create_opts o = { .group = "acc", .replicate = true };
	struct rp_error err = { 0 };
	struct model_device d, byp, *list = NULL;
	struct model_kv kv[2] = { { "k1", "v1" }, { "k2", "v2" } }, *got = NULL;
	struct rp_device s;
	struct rp_peer *peers = NULL;
	size_t n = 0;

	assert_int_equal(rp_lun_create(&s, f->a, "x", MiB, &o, &err), 0);
	assert_int_equal(model_device_load(&d, f->a, s.id, &err), 0);
	assert_string_equal(d.obj, "lun-siteA-000001");
	assert_int_equal(d.seq, 1);
	/* set_state in its own transaction. */
	assert_int_equal(
	        model_device_set_state(f->a, s.id, RP_DEV_DEMOTED_SOURCE, 1, NULL, NULL, &err), 0);
	assert_int_equal(model_device_load(&d, f->a, s.id, &err), 0);
	assert_int_equal(d.state, RP_DEV_DEMOTED_SOURCE);
	assert_true(d.read_only);
	assert_string_equal(d.peer_device, "siteB-000001");
	/* ... and inside the caller's, rolled back with it. */
	assert_int_equal(meta_txn_begin(f->a->db, &err), 0);
	assert_int_equal(model_device_set_state(f->a, s.id, RP_DEV_SOURCE, 0, "", "", &err), 0);
	meta_txn_rollback(f->a->db);
	assert_int_equal(model_device_load(&d, f->a, s.id, &err), 0);
	assert_int_equal(d.state, RP_DEV_DEMOTED_SOURCE);
	assert_int_equal(model_device_by_peer(&byp, f->b, "siteA", s.id, &err), 0);
	assert_string_equal(byp.id, "siteB-000001");
	assert_int_equal(model_device_list(&list, &n, f->a, "", &err), 0);
	assert_int_equal(n, 0);
	rp_free(list);
	assert_int_equal(model_device_list(&list, &n, f->a, "acc", &err), 0);
	assert_int_equal(n, 1);
	rp_free(list);
	/* Bulk metadata copy, as a sync does. */
	assert_int_equal(model_kv_replace_all(f->b, MODEL_LUN_META, byp.id, kv, 2, &err), 0);
	assert_int_equal(model_kv_list(&got, &n, f->b, MODEL_LUN_META, byp.id, &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(got[1].key, "k2");
	assert_string_equal(got[1].value, "v2");
	model_kv_free(got, n);
	assert_int_equal(model_kv_replace_all(f->b, MODEL_LUN_META, byp.id, kv, 1, &err), 0);
	assert_int_equal(count_rows(f->b, "lun_meta"), 1);
	assert_int_equal(model_peer_list(&peers, &n, f->a, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(peers[0].array_id, "siteB");
	rp_free(peers);
	/* Destroy takes rows and objects. */
	assert_int_equal(model_device_destroy(f->b, byp.id, &err), 0);
	assert_int_equal(count_rows(f->b, "lun_meta"), 0);
	assert_int_equal(count_rows(f->b, "devices"), 0);
	assert_int_equal(fake_array_obj_count(f->b->root), 0);
	assert_int_equal(model_device_destroy(f->b, byp.id, &err), 0);
}

static void test_group__snapshot_rows_and_rp_fields(void **state)
{
	struct fx *f = *state;
	struct rp_error err = { 0 };
	struct model_snapshot s, *v = NULL;
	struct model_device md;
	struct rp_device d;
	size_t n = 0;
	int i;

	assert_int_equal(rp_lun_create(&d, f->a, "x", 1024 * 1024, NULL, &err), 0);
	for (i = 0; i < 3; i++) {
		memset(&s, 0, sizeof(s));
		(void)snprintf(s.id, sizeof(s.id), "%s-%s-%d", i == 1 ? "base" : "rp", d.id, i);
		(void)snprintf(s.device, sizeof(s.device), "%s", d.id);
		(void)snprintf(s.kind, sizeof(s.kind), "%s", i == 1 ? "base" : "rp");
		model_snapshot_obj(s.obj, s.id);
		(void)snprintf(s.recovery_point, sizeof(s.recovery_point), "rp-%d", i);
		s.recovery_point_ms = 1000 + i;
		s.created_ms = 100 + i;
		assert_int_equal(model_snapshot_insert(f->a, &s, &err), 0);
	}
	/* Duplicate id refused. */
	assert_error(model_snapshot_insert(f->a, &s, &err), err, RP_EEXISTS);
	rp_error_clear(&err);
	/* Newest first, filtered by kind. */
	assert_int_equal(model_snapshot_list(&v, &n, f->a, d.id, NULL, "rp", &err), 0);
	assert_int_equal(n, 2);
	assert_true(v[0].created_ms == 102);
	assert_string_equal(v[0].recovery_point, "rp-2");
	assert_string_equal(v[1].obj, "snap-rp-siteA-000001-0");
	rp_free(v);
	v = NULL;
	assert_int_equal(model_snapshot_list(&v, &n, f->a, NULL, NULL, NULL, &err), 0);
	assert_int_equal(n, 3);
	rp_free(v);
	v = NULL;
	assert_int_equal(model_snapshot_load(&s, f->a, "base-siteA-000001-1", &err), 0);
	assert_string_equal(s.kind, "base");
	assert_int_equal(model_snapshot_delete(f->a, s.id, &err), 0);
	assert_int_equal(model_snapshot_delete(f->a, s.id, &err), 0);
	assert_error(model_snapshot_load(&s, f->a, "base-siteA-000001-1", &err), err, RP_ENOTFOUND);
	rp_error_clear(&err);
	/* Recovery point fields of a device row reach the public struct. */
	assert_int_equal(model_device_load(&md, f->a, d.id, &err), 0);
	(void)snprintf(md.recovery_point, sizeof(md.recovery_point), "rp-1700000000000-abcd");
	md.recovery_point_ms = 1700000000000;
	(void)snprintf(md.base_snapshot, sizeof(md.base_snapshot), "rp-%s-2", d.id);
	assert_int_equal(model_device_store(f->a, &md, &err), 0);
	assert_int_equal(rp_lun_get(&d, f->a, d.id, &err), 0);
	assert_string_equal(d.recovery_point, "rp-1700000000000-abcd");
	assert_true(d.recovery_point_ms == 1700000000000);
	assert_int_equal(model_device_load(&md, f->a, d.id, &err), 0);
	assert_string_equal(md.base_snapshot, "rp-siteA-000001-2");
	/* A new identity from the same sequence, inside a transaction only. */
	{
		struct model_device nd;

		assert_error(model_device_alloc(&nd, f->a, &err), err, RP_ERROR);
		rp_error_clear(&err);
		assert_int_equal(meta_txn_begin(f->a->db, &err), 0);
		assert_int_equal(model_device_alloc(&nd, f->a, &err), 0);
		assert_string_equal(nd.id, "siteA-000002");
		assert_string_equal(nd.obj, "lun-siteA-000002");
		assert_int_equal(strncmp(nd.wwn, "naa.6", 5), 0);
		(void)snprintf(nd.name, sizeof(nd.name), "new");
		nd.size = 1;
		nd.state = RP_DEV_TARGET;
		assert_int_equal(model_device_insert(f->a, &nd, &err), 0);
		assert_error(model_device_insert(f->a, &nd, &err), err, RP_EEXISTS);
		rp_error_clear(&err);
		assert_int_equal(meta_txn_commit(f->a->db, &err), 0);
		assert_int_equal(count_rows(f->a, "devices"), 2);
	}
	/* Storing an unknown row is refused. */
	(void)snprintf(md.id, sizeof(md.id), "siteA-000777");
	assert_error(model_device_store(f->a, &md, &err), err, RP_ENOTFOUND);
}

int model_group_tests(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_group__create_get_list, fx_setup_fake,
		                                fx_teardown),
		cmocka_unit_test_setup_teardown(test_group__delete, fx_setup_fake, fx_teardown),
		cmocka_unit_test_setup_teardown(test_group__policy_both_sides, fx_setup_fake,
		                                fx_teardown),
		cmocka_unit_test_setup_teardown(test_group__meta_and_usage, fx_setup_fake,
		                                fx_teardown),
		cmocka_unit_test_setup_teardown(test_group__model_accessors, fx_setup_fake,
		                                fx_teardown),
		cmocka_unit_test_setup_teardown(test_group__snapshot_rows_and_rp_fields,
		                                fx_setup_fake, fx_teardown),
	};

	return cmocka_run_group_tests_name("core.model.group", tests, NULL, NULL);
}

/* SPDX-License-Identifier: MIT */
/* test_space.c - space reservations: capacity, expiry, release, listing. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "helpers.h"

#define MiB (1024ull * 1024ull)

static void test_space__reserve_release(void **state)
{
	struct fx *f = *state;
	struct rp_error err = { 0 };
	struct rp_reservation r1, r2, *v = NULL;
	struct rp_array_info info;
	size_t n = 0;

	fake_array_set_space(10000, 1000);
	assert_int_equal(rp_space_reserve(&r1, f->a, "srm", 600, 0, &err), 0);
	assert_true(r1.token[0] != '\0');
	assert_string_equal(r1.owner, "srm");
	assert_true(r1.expires_ms == 0);
	/* 1000 free, 600 held: 500 more does not fit, 400 does. */
	assert_error(rp_space_reserve(&r2, f->a, "xapi", 500, 0, &err), err, RP_ENOSPACE);
	rp_error_clear(&err);
	assert_int_equal(rp_space_reserve(&r2, f->a, NULL, 400, 3600, &err), 0);
	assert_true(r2.expires_ms > rp_now_ms());
	assert_int_equal(rp_array_info(&info, f->a, &err), 0);
	assert_true(info.reserved == 1000);
	assert_int_equal(rp_space_list(&v, &n, f->a, &err), 0);
	assert_int_equal(n, 2);
	rp_free(v);
	assert_int_equal(rp_space_release(f->a, r1.token, &err), 0);
	assert_int_equal(rp_space_release(f->a, r1.token, &err), 0); /* idempotent */
	assert_int_equal(rp_space_reserve(&r1, f->a, "srm", 600, 0, &err), 0);
	/* Bad input. */
	assert_error(rp_space_reserve(&r1, f->a, "srm", 0, 0, &err), err, RP_EINVAL);
	rp_error_clear(&err);
	assert_error(rp_space_release(f->a, "../x", &err), err, RP_EINVAL);
	rp_error_clear(&err);
	assert_error(rp_space_reserve(&r1, f->a, "bad\nowner", 1, 0, &err), err, RP_EINVAL);
}

static void test_space__expiry(void **state)
{
	struct fx *f = *state;
	struct rp_error err = { 0 };
	struct rp_reservation r, *v = NULL;
	struct rp_array_info info;
	size_t n = 0;
	struct timespec nap = { 1, 100 * 1000 * 1000 };

	fake_array_set_space(10000, 1000);
	assert_int_equal(rp_space_reserve(&r, f->a, "short", 900, 1, &err), 0);
	assert_error(rp_space_reserve(&r, f->a, "other", 200, 0, &err), err, RP_ENOSPACE);
	rp_error_clear(&err);
	(void)nanosleep(&nap, NULL);
	/* Expired: it no longer counts anywhere. */
	assert_int_equal(rp_array_info(&info, f->a, &err), 0);
	assert_true(info.reserved == 0);
	assert_int_equal(rp_space_list(&v, &n, f->a, &err), 0);
	assert_int_equal(n, 0);
	rp_free(v);
	assert_int_equal(rp_space_reserve(&r, f->a, "other", 1000, 0, &err), 0);
	assert_int_equal(count_rows(f->a, "reservations"), 1);
}

/* rp_array_usage: each object counted once by what holds it; bad input; a driver that lists. */
static void test_space__usage(void **state)
{
	struct fx *f = *state;
	struct rp_error err = { 0 };
	struct rp_array_usage u;
	struct rp_object_usage *unref = NULL;
	struct rp_device d, s;
	struct array_obj_stat st;
	bool file = strcmp(f->driver, "file") == 0;
	char buf[4096];

	printf("# %s driver: a LUN with 1 MiB written and a snapshot of it\n", f->driver);
	assert_int_equal(rp_lun_create(&d, f->a, "vol", 16 * MiB, NULL, &err), 0);
	memset(buf, 0x5a, sizeof(buf));
	for (size_t off = 0; off < MiB; off += sizeof(buf))
		assert_int_equal(f->a->drv->ops->write(f->a->drv, "lun-siteA-000001", off, buf,
		                                       sizeof(buf), &err),
		                 0);
	assert_int_equal(rp_lun_snapshot(&s, f->a, d.id, NULL, &err), 0);
	assert_int_equal(f->a->drv->ops->obj_stat(&st, f->a->drv, "lun-siteA-000001", &err), 0);
	assert_int_equal(rp_array_usage(&u, &unref, f->a, &err), 0);
	assert_null(unref);
	/* the snapshot is a LUN (a device row) too: two LUN objects */
	assert_true(u.luns >= 2 * st.allocated);
	assert_int_equal(u.n_objects, 2);
	assert_int_equal(u.recovery_points + u.bases + u.spares + u.snapshots + u.work, 0);
	assert_int_equal(u.unreferenced, 0);
	assert_int_equal(u.listed, file);
	if (file) {
		struct model_intent in = MODEL_INTENT_INIT;

		printf("# an object no row names is unreferenced, by name; one an intent names is "
		       "in progress\n");
		assert_int_equal(f->a->drv->ops->obj_create(f->a->drv, "left-behind", MiB, &err),
		                 0);
		assert_int_equal(
		        f->a->drv->ops->write(f->a->drv, "left-behind", 0, buf, sizeof(buf), &err),
		        0);
		assert_int_equal(f->a->drv->ops->obj_create(f->a->drv, "being-made", MiB, &err), 0);
		assert_int_equal(
		        f->a->drv->ops->write(f->a->drv, "being-made", 0, buf, sizeof(buf), &err),
		        0);
		assert_int_equal(
		        model_intent_add(&in, f->a, "obj_delete", "obj=being-made\n", &err), 0);
		assert_int_equal(rp_array_usage(&u, &unref, f->a, &err), 0);
		assert_int_equal(u.n_objects, 4);
		assert_int_equal(u.n_unreferenced, 1);
		assert_non_null(unref);
		assert_string_equal(unref[0].obj, "left-behind");
		assert_true(unref[0].allocated >= sizeof(buf));
		assert_int_equal(u.unreferenced, unref[0].allocated);
		assert_true(u.work >= sizeof(buf));
		rp_free(unref);
		unref = NULL;
		assert_int_equal(model_intent_delete(&in, f->a, &err), 0);
		model_intent_release(&in, f->a);
		assert_int_equal(rp_array_usage(&u, NULL, f->a, &err), 0); /* names not wanted */
		assert_int_equal(u.n_unreferenced, 2);
		assert_int_equal(u.work, 0);
	}
	printf("# bad input\n");
	assert_error(rp_array_usage(NULL, NULL, f->a, &err), err, RP_EINVAL);
	rp_error_clear(&err);
	assert_error(rp_array_usage(&u, NULL, NULL, &err), err, RP_EINVAL);
}

int model_space_tests(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_space__reserve_release, fx_setup_fake,
		                                fx_teardown),
		cmocka_unit_test_setup_teardown(test_space__expiry, fx_setup_fake, fx_teardown),
		cmocka_unit_test_setup_teardown(test_space__usage, fx_setup_fake, fx_teardown),
		cmocka_unit_test_setup_teardown(test_space__usage, fx_setup_file, fx_teardown),
	};

	return cmocka_run_group_tests_name("core.model.space", tests, NULL, NULL);
}

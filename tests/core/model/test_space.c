/* SPDX-License-Identifier: MIT */
/* test_space.c - space reservations: capacity, expiry, release, listing. */
#include <string.h>
#include <time.h>

#include "helpers.h"

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

int model_space_tests(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_space__reserve_release, fx_setup_fake,
		                                fx_teardown),
		cmocka_unit_test_setup_teardown(test_space__expiry, fx_setup_fake, fx_teardown),
	};

	return cmocka_run_group_tests_name("core.model.space", tests, NULL, NULL);
}

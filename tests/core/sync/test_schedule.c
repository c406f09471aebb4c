/* SPDX-License-Identifier: MIT */
/*
 * test_schedule.c - schedule_is_due: when a group with an RPO is due for its next sync.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "schedule.h"

static void never_synced_is_due(void **state)
{
	int64_t left = -1;

	(void)state;
	assert_true(schedule_is_due(5000, 0, 60, &left));
	assert_int_equal(left, 0);
}

static void before_rpo_not_due(void **state)
{
	int64_t left = -1;

	(void)state;
	/* started at 10 s, rpo 60 s: at 10.001 s, 59.999 s left, rounded up */
	assert_false(schedule_is_due(10001, 10000, 60, &left));
	assert_int_equal(left, 60);
	assert_false(schedule_is_due(69000, 10000, 60, &left));
	assert_int_equal(left, 1);
	assert_false(schedule_is_due(69999, 10000, 60, &left));
	assert_int_equal(left, 1);
	/* a start in the future (clock stepped back) is not due either */
	assert_false(schedule_is_due(9000, 10000, 1, &left));
	assert_int_equal(left, 2);
}

static void at_and_after_rpo_due(void **state)
{
	int64_t left = -1;

	(void)state;
	assert_true(schedule_is_due(70000, 10000, 60, &left));
	assert_int_equal(left, 0);
	assert_true(schedule_is_due(1000000, 10000, 60, NULL));
}

static void large_rpo_no_overflow(void **state)
{
	int64_t left = -1;

	(void)state;
	assert_false(schedule_is_due(1000, 1000, UINT32_MAX, &left));
	assert_int_equal(left, (int64_t)UINT32_MAX);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(never_synced_is_due),
		cmocka_unit_test(before_rpo_not_due),
		cmocka_unit_test(at_and_after_rpo_due),
		cmocka_unit_test(large_rpo_no_overflow),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

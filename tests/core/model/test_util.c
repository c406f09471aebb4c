/* SPDX-License-Identifier: MIT */
/* test_util.c - rp_size_parse, rp_id_check, rp_error (first message wins). */
#include <string.h>

#include "helpers.h"

static void test_util__size_parse_units(void **state)
{
	struct rp_error err = { 0 };
	uint64_t v = 0;

	(void)state;
	assert_int_equal(rp_size_parse(&v, "1073741824", &err), 0);
	assert_true(v == 1073741824ull);
	assert_int_equal(rp_size_parse(&v, "512K", &err), 0);
	assert_true(v == 512ull * 1024);
	assert_int_equal(rp_size_parse(&v, "10M", &err), 0);
	assert_true(v == 10ull << 20);
	assert_int_equal(rp_size_parse(&v, "1G", &err), 0);
	assert_true(v == 1ull << 30);
	assert_int_equal(rp_size_parse(&v, "2T", &err), 0);
	assert_true(v == 2ull << 40);
	assert_int_equal(rp_size_parse(&v, "4GiB", &err), 0);
	assert_true(v == 4ull << 30);
	assert_int_equal(rp_size_parse(&v, "3gb", &err), 0);
	assert_true(v == 3ull << 30);
	assert_int_equal(err.code, 0);
}

static void test_util__size_parse_rejects(void **state)
{
	static const char *const bad[] = { "",
		                           "-1",
		                           "abc",
		                           "10X",
		                           "1.5G",
		                           " 1G",
		                           "1G ",
		                           "G",
		                           "99999999999999999999999",
		                           "17179869184T" };
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct rp_error err = { 0 };
		uint64_t v = 42;

		assert_error(rp_size_parse(&v, bad[i], &err), err, RP_EINVAL);
		assert_true(v == 42); /* output untouched on failure */
	}
	{
		struct rp_error err = { 0 };
		uint64_t v = 0;

		assert_error(rp_size_parse(&v, NULL, &err), err, RP_EINVAL);
	}
}

static void test_util__id_check(void **state)
{
	static const char *const good[] = { "a", "siteA", "grp_1", "x.y", "a:b-c", "A0" };
	static const char *const bad[] = { "",        "..", "a..b",   "../etc", "/abs",  "a/b",
		                           ".hidden", "-x", "sp ace", "tab\t",  "quote'" };
	char longid[80];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_int_equal(rp_id_check(good[i], "id", NULL), 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct rp_error err = { 0 };

		assert_error(rp_id_check(bad[i], "group id", &err), err, RP_EINVAL);
		assert_non_null(strstr(err.msg, "group id"));
	}
	memset(longid, 'a', sizeof(longid) - 1);
	longid[sizeof(longid) - 1] = '\0';
	{
		struct rp_error err = { 0 };

		assert_error(rp_id_check(longid, "id", &err), err, RP_EINVAL);
		assert_error(rp_id_check(NULL, "id", &err), err, RP_EINVAL);
	}
}

static void test_util__error_first_wins(void **state)
{
	struct rp_error err = { 0 };

	(void)state;
	assert_int_equal(rp_error_set(&err, RP_ENOTFOUND, "LUN '%s' not found", "x"), RP_ENOTFOUND);
	/* A later, more generic error must not mask the first one. */
	assert_int_equal(rp_error_set(&err, RP_ERROR, "something else"), RP_ERROR);
	assert_int_equal(err.code, RP_ENOTFOUND);
	assert_string_equal(err.msg, "LUN 'x' not found");
	rp_error_clear(&err);
	assert_int_equal(err.code, 0);
	assert_string_equal(err.msg, "");
	assert_int_equal(rp_error_set_os(&err, RP_EIO, 2, "open '%s'", "f"), RP_EIO);
	assert_int_equal(err.os_errno, 2);
	assert_non_null(strstr(err.msg, "open 'f': "));
	/* NULL error is allowed and still returns the code. */
	assert_int_equal(rp_error_set(NULL, RP_EBUSY, "busy"), RP_EBUSY);
	assert_string_equal(rp_code_name(RP_ENOTFOUND), "not found");
}

int model_util_tests(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_util__size_parse_units),
		cmocka_unit_test(test_util__size_parse_rejects),
		cmocka_unit_test(test_util__id_check),
		cmocka_unit_test(test_util__error_first_wins),
	};

	return cmocka_run_group_tests_name("core.model.util", tests, NULL, NULL);
}

/* SPDX-License-Identifier: MIT */
/* helpers.h - fixtures of the model tests: temp dirs, fake and file arrays, assertions. */
#ifndef REPLUN_TEST_MODEL_HELPERS_H
#define REPLUN_TEST_MODEL_HELPERS_H

#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "engine.h"
#include "fake_array.h"
#include "meta.h"
#include "model.h"
#include "replun/replun.h"

/* Two arrays (site A "siteA" and site B "siteB") in a fresh temp dir, paired. */
struct fx {
	char dir[PATH_MAX];
	char a_path[PATH_MAX];
	char b_path[PATH_MAX];
	struct rp_array *a;
	struct rp_array *b;
	const char *driver;
};

/* Makes a temp dir "<TMPDIR>/replun-model-XXXXXX" into @out (asserts). */
void tmpdir_make(char *out, size_t len);
/* rm -rf @path (only below TMPDIR). */
void tmpdir_remove(const char *path);
/* Setups for cmocka: state is a struct fx. "fake" driver, or the real "file" driver. */
int fx_setup_fake(void **state);
int fx_setup_file(void **state);
int fx_teardown(void **state);

/* Asserts that @rc is @code and the error carries that code and a message. */
#define assert_error(rc, err, want)                                                                \
	do {                                                                                       \
		assert_int_equal((rc), (want));                                                    \
		assert_int_equal((err).code, (want));                                              \
		assert_true((err).msg[0] != '\0');                                                 \
	} while (0)

/* Counts rows of a table in @a's database (for "nothing changed" checks). */
int64_t count_rows(struct rp_array *a, const char *table);

/* Test groups, one per file. */
int model_util_tests(void);
int model_meta_tests(void);
int model_array_tests(void);
int model_lun_tests(void);
int model_group_tests(void);
int model_space_tests(void);
int model_crash_tests(void);
int model_concurrent_tests(void);
int model_persist_tests(void);

#endif

/* SPDX-License-Identifier: MIT */
/* helpers.c - fixtures of the model tests. */
#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"

void tmpdir_make(char *out, size_t len)
{
	const char *t = getenv("TMPDIR");
	int n;

	n = snprintf(out, len, "%s/replun-model-XXXXXX", t && *t ? t : "/tmp");
	assert_true(n > 0 && (size_t)n < len);
	assert_non_null(mkdtemp(out));
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path) < 0 ? 0 : 0;
}

void tmpdir_remove(const char *path)
{
	if (!path || !*path || !strstr(path, "/replun-model-"))
		return;
	(void)nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static int fx_setup(void **state, const char *driver)
{
	struct rp_error err = { 0 };
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->driver = driver;
	fake_array_reset();
	fake_array_register();
	tmpdir_make(f->dir, sizeof(f->dir));
	(void)snprintf(f->a_path, sizeof(f->a_path), "%s/siteA", f->dir);
	(void)snprintf(f->b_path, sizeof(f->b_path), "%s/siteB", f->dir);
	assert_int_equal(engine_array_init(f->a_path, driver, "siteA", "Site A", &err), 0);
	assert_int_equal(engine_array_init(f->b_path, driver, "siteB", NULL, &err), 0);
	assert_int_equal(rp_array_open(&f->a, f->a_path, NULL, &err), 0);
	assert_int_equal(rp_array_open(&f->b, f->b_path, NULL, &err), 0);
	assert_int_equal(rp_array_pair(f->a, f->b, &err), 0);
	*state = f;
	return 0;
}

int fx_setup_fake(void **state)
{
	return fx_setup(state, "fake");
}

int fx_setup_file(void **state)
{
	return fx_setup(state, "file");
}

int fx_teardown(void **state)
{
	struct fx *f = *state;

	if (!f)
		return 0;
	rp_array_close(f->a);
	rp_array_close(f->b);
	tmpdir_remove(f->dir);
	fake_array_reset();
	free(f);
	*state = NULL;
	return 0;
}

int64_t count_rows(struct rp_array *a, const char *table)
{
	char sql[128];
	int64_t n = -1;

	(void)snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM %s", table);
	assert_int_equal(meta_query_int(&n, a->db, NULL, sql, ""), 0);
	return n;
}

/* SPDX-License-Identifier: MIT */
/*
 * test_persist.c - model_objs_persist: every object flushed, each distinct directory fsynced
 * once (counted through a --wrap of fsync), errors named; model_obj_persist is the n = 1 case.
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers.h"

int __real_fsync(int fd);
int __wrap_fsync(int fd);

static int fsync_files, fsync_dirs;

/* Counts fsyncs of directories and of regular files made by the model and the drivers. */
int __wrap_fsync(int fd)
{
	struct stat st;

	if (fstat(fd, &st) == 0) {
		if (S_ISDIR(st.st_mode))
			fsync_dirs++;
		else if (S_ISREG(st.st_mode))
			fsync_files++;
	}
	return __real_fsync(fd);
}

static void make_objs(struct fx *f, char objs[3][ARRAY_OBJ_MAX])
{
	struct rp_error err = { 0 };
	int i;

	for (i = 0; i < 3; i++) {
		(void)snprintf(objs[i], ARRAY_OBJ_MAX, "persist-%d", i);
		assert_int_equal(model_obj_create(f->a, objs[i], 1 << 20, &err), 0);
	}
}

static void test_persist__one_dir_fsync_per_group(void **state)
{
	struct fx *f = *state;
	struct rp_error err = { 0 };
	char objs[3][ARRAY_OBJ_MAX];
	const char *list[4];

	make_objs(f, objs);
	list[0] = objs[0];
	list[1] = objs[1];
	list[2] = objs[2];
	list[3] = objs[0]; /* twice: flushed twice, its directory still synced once */
	fsync_files = fsync_dirs = 0;
	assert_int_equal(model_objs_persist(f->a, list, 4, &err), 0);
	assert_int_equal(fsync_files, 4);
	assert_int_equal(fsync_dirs, 1);
	/* one object: its file and its directory (model_obj_persist, as before) */
	fsync_files = fsync_dirs = 0;
	assert_int_equal(model_obj_persist(f->a, objs[1], &err), 0);
	assert_int_equal(fsync_files, 1);
	assert_int_equal(fsync_dirs, 1);
	/* nothing to persist: no fsync at all */
	fsync_files = fsync_dirs = 0;
	assert_int_equal(model_objs_persist(f->a, list, 0, &err), 0);
	assert_int_equal(fsync_files + fsync_dirs, 0);
}

static void test_persist__missing_object_is_named(void **state)
{
	struct fx *f = *state;
	struct rp_error err = { 0 };
	char objs[3][ARRAY_OBJ_MAX];
	const char *list[3];
	int rc;

	make_objs(f, objs);
	list[0] = objs[0];
	list[1] = "persist-missing";
	list[2] = objs[2];
	fsync_files = fsync_dirs = 0;
	rc = model_objs_persist(f->a, list, 3, &err);
	assert_true(rc < 0);
	assert_int_equal(err.code, rc);
	assert_non_null(strstr(err.msg, "persist-missing"));
	/* stops at the first failure: no directory is synced for a batch that failed */
	assert_int_equal(fsync_dirs, 0);
}

int model_persist_tests(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_persist__one_dir_fsync_per_group,
		                                fx_setup_file, fx_teardown),
		cmocka_unit_test_setup_teardown(test_persist__missing_object_is_named,
		                                fx_setup_file, fx_teardown),
	};

	return cmocka_run_group_tests_name("core.model.persist", tests, NULL, NULL);
}

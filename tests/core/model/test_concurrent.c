/* SPDX-License-Identifier: MIT */
/*
 * test_concurrent.c - several processes create LUNs in one array at once (real file driver,
 * real SQLite in WAL mode): every LUN gets a distinct id and sequence, nothing is lost; racing
 * creates of one name leave exactly one LUN (and one target) per name, nothing else.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

#define N_PROCS 4
#define N_EACH 8

static void test_concurrent__creators(void **state)
{
	struct fx *f = *state;
	struct rp_error err = { 0 };
	struct rp_device *v = NULL;
	pid_t pids[N_PROCS];
	size_t n = 0, i, j;
	int status;

	rp_array_close(f->a);
	rp_array_close(f->b);
	f->a = f->b = NULL;
	for (i = 0; i < N_PROCS; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			struct rp_array *a = NULL;
			struct rp_error e = { 0 };
			char name[64];
			int k;

			if (rp_array_open(&a, f->a_path, NULL, &e) < 0)
				_exit(2);
			for (k = 0; k < N_EACH; k++) {
				/* Half the LUNs replicate (two arrays touched), in one group. */
				struct rp_lun_create_opts o = { .group = "shared",
					                        .replicate = (k % 2) == 1 };

				if (k % 2 == 0)
					o.group = "local";
				(void)snprintf(name, sizeof(name), "p%zu-lun%d", i, k);
				if (rp_lun_create(NULL, a, name, 1024 * 1024, &o, &e) < 0) {
					(void)fprintf(stderr, "child %zu: %s\n", i, e.msg);
					_exit(3);
				}
			}
			rp_array_close(a);
			_exit(0);
		}
	}
	for (i = 0; i < N_PROCS; i++) {
		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	assert_int_equal(rp_array_open(&f->a, f->a_path, NULL, &err), 0);
	assert_int_equal(rp_array_open(&f->b, f->b_path, NULL, &err), 0);
	assert_int_equal(rp_lun_list(&v, &n, f->a, NULL, &err), 0);
	assert_int_equal(n, N_PROCS * N_EACH);
	for (i = 0; i < n; i++) {
		char path[PATH_MAX];
		struct stat st;

		/* Ids are sorted and distinct; each has its image file. */
		for (j = i + 1; j < n; j++)
			assert_string_not_equal(v[i].id, v[j].id);
		assert_int_equal(rp_lun_path(path, sizeof(path), f->a, v[i].id, &err), 0);
		assert_int_equal(stat(path, &st), 0);
		if (v[i].state == RP_DEV_SOURCE) {
			struct rp_device t;

			assert_int_equal(rp_lun_get(&t, f->b, v[i].peer_device, &err), 0);
			assert_string_equal(t.peer_device, v[i].id);
			assert_string_equal(t.name, v[i].name);
		}
	}
	rp_free(v);
	assert_int_equal(count_rows(f->b, "devices"), N_PROCS * N_EACH / 2);
	assert_int_equal(count_rows(f->a, "intents"), 0);
	assert_int_equal(count_rows(f->b, "intents"), 0);
	{
		int64_t maxseq = 0;

		assert_int_equal(
		        meta_query_int(&maxseq, f->a->db, &err, "SELECT MAX(seq) FROM devices", ""),
		        0);
		assert_int_equal(maxseq, N_PROCS * N_EACH);
	}
}

/* Counts the image files ("*.img") in <root>/data. */
static int count_images(const char *root)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *d;
	int n = 0;

	(void)snprintf(path, sizeof(path), "%s/data", root);
	d = opendir(path);
	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		size_t l = strlen(de->d_name);

		if (l > 4 && strcmp(de->d_name + l - 4, ".img") == 0)
			n++;
	}
	(void)closedir(d);
	return n;
}

static void test_concurrent__same_name(void **state)
{
	struct fx *f = *state;
	struct rp_error err = { 0 };
	struct rp_device *v = NULL;
	pid_t pids[N_PROCS];
	size_t n = 0, i, j;
	int status, won = 0;

	rp_array_close(f->a);
	rp_array_close(f->b);
	f->a = f->b = NULL;
	for (i = 0; i < N_PROCS; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			struct rp_lun_create_opts o = { .replicate = true };
			struct rp_array *a = NULL;
			struct rp_error e = { 0 };
			char name[64];
			int k, wins = 0;

			if (rp_array_open(&a, f->a_path, NULL, &e) < 0)
				_exit(100);
			/* Standalone LUNs: no group lock, the names race for real. */
			for (k = 0; k < N_EACH; k++) {
				(void)snprintf(name, sizeof(name), "dup-%d", k);
				rp_error_clear(&e);
				if (rp_lun_create(NULL, a, name, 1024 * 1024, &o, &e) == 0)
					wins++;
				else if (e.code != RP_EEXISTS) {
					(void)fprintf(stderr, "child %zu: %s\n", i, e.msg);
					_exit(101);
				}
			}
			rp_array_close(a);
			_exit(wins);
		}
	}
	for (i = 0; i < N_PROCS; i++) {
		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		assert_true(WIFEXITED(status));
		assert_true(WEXITSTATUS(status) <= N_EACH);
		won += WEXITSTATUS(status);
	}
	assert_int_equal(won, N_EACH);
	assert_int_equal(rp_array_open(&f->a, f->a_path, NULL, &err), 0);
	assert_int_equal(rp_array_open(&f->b, f->b_path, NULL, &err), 0);
	assert_int_equal(rp_lun_list(&v, &n, f->a, NULL, &err), 0);
	assert_int_equal(n, N_EACH);
	for (i = 0; i < n; i++) {
		struct rp_device t;

		for (j = i + 1; j < n; j++)
			assert_string_not_equal(v[i].name, v[j].name);
		assert_int_equal(rp_lun_get(&t, f->b, v[i].peer_device, &err), 0);
		assert_string_equal(t.name, v[i].name);
	}
	rp_free(v);
	assert_int_equal(count_rows(f->b, "devices"), N_EACH);
	assert_int_equal(count_rows(f->a, "intents"), 0);
	assert_int_equal(count_rows(f->b, "intents"), 0);
	/* The losers' objects are gone on both arrays. */
	assert_int_equal(count_images(f->a_path), N_EACH);
	assert_int_equal(count_images(f->b_path), N_EACH);
}

int model_concurrent_tests(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_concurrent__creators, fx_setup_file,
		                                fx_teardown),
		cmocka_unit_test_setup_teardown(test_concurrent__same_name, fx_setup_file,
		                                fx_teardown),
	};

	return cmocka_run_group_tests_name("core.model.concurrent", tests, NULL, NULL);
}

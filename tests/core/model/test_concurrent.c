/* SPDX-License-Identifier: MIT */
/*
 * test_concurrent.c - several processes create LUNs in one array at once (real file driver,
 * real SQLite in WAL mode): every LUN gets a distinct id and sequence, nothing is lost.
 */
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

int model_concurrent_tests(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_concurrent__creators, fx_setup_file,
		                                fx_teardown),
	};

	return cmocka_run_group_tests_name("core.model.concurrent", tests, NULL, NULL);
}

/* SPDX-License-Identifier: MIT */
/*
 * bench_lun.c - latency of the engine's LUN operations as the SMAPI plugin uses them:
 * rp_lun_create (replicated: source + target on the peer), rp_lun_snapshot and rp_lun_clone of
 * a 100 GiB sparse LUN, each with the VDI metadata written in the same call. Prints a table:
 * the operation alone on open arrays, and open + operation + close (what one SMAPI call, one
 * process, pays for its array work), and the open handles alone. Each operation runs eagerly
 * (the target made on the peer in the call) and with target_at_sync (the target left to the
 * next sync, as ReplunSR does: the peer is not opened).
 * Usage: bench_lun DIR [RUNS] [LABEL] [PART]   (DIR: an empty directory; two arrays are made
 * in it; PART "ops", "calls" or "open" runs only the operations on open arrays, only the
 * open + operation + close calls, or only the open handles, for profiling)
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "replun/replun.h"

#define GIB (1024ull * 1024 * 1024)
#define N_META 6

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void check(int rc, const char *what, const struct rp_error *err)
{
	if (rc == 0)
		return;
	fprintf(stderr, "bench_lun: %s: %s\n", what, err && err->msg[0] ? err->msg : "failed");
	exit(1);
}

static int cmp_double(const void *x, const void *y)
{
	double a = *(const double *)x, b = *(const double *)y;

	return a < b ? -1 : a > b;
}

static void stats(const char *op, const char *label, double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	printf("| %s | %s | %d | %.2f | %.2f | %.2f | %.2f |\n", label, op, n, v[n / 2], v[0],
	       v[(n * 9) / 10], v[n - 1]);
}

static const char *const meta_keys[N_META] = { "vdi_uuid", "name_label", "name_description",
	                                       "vdi_type", "read_only",  "sm_config" };
static const char *const meta_values[N_META] = { "4f8a0c3e-6f0e-4a56-9a53-3c1d2e7b9f10",
	                                         "bench disk",
	                                         "a VDI of the benchmark",
	                                         "user",
	                                         "false",
	                                         "{}" };

/* In mode 1 every operation opens the array first and closes it after, like one SMAPI call. */
#define REOPEN()                                                                                   \
	do {                                                                                       \
		if (mode == 1)                                                                     \
			check(rp_array_open(&a, pa, NULL, &e), "open A", &e);                      \
	} while (0)
#define CLOSE()                                                                                    \
	do {                                                                                       \
		if (mode == 1) {                                                                   \
			rp_array_close(a);                                                         \
			a = NULL;                                                                  \
		}                                                                                  \
	} while (0)

int main(int argc, char **argv)
{
	char pa[4096], pb[4096], name[64];
	const char *label;
	struct rp_array *a = NULL, *b = NULL;
	struct rp_device src, d;
	struct rp_error e = { 0 };
	double *t_create, *t_snap, *t_clone, t0;
	const char *part;
	int runs, i;

	if (argc < 2) {
		fprintf(stderr, "usage: bench_lun DIR [RUNS] [LABEL] [ops|calls|open]\n");
		return 2;
	}
	runs = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 31;
	if (runs < 1 || runs > 10000)
		runs = 31;
	label = argc > 3 ? argv[3] : argv[1];
	part = argc > 4 ? argv[4] : "";
	(void)snprintf(pa, sizeof(pa), "%s/site-a", argv[1]);
	(void)snprintf(pb, sizeof(pb), "%s/site-b", argv[1]);
	check(rp_array_init(pa, "siteA", NULL, &e), "init A", &e);
	check(rp_array_init(pb, "siteB", NULL, &e), "init B", &e);
	check(rp_array_open(&a, pa, NULL, &e), "open A", &e);
	check(rp_array_open(&b, pb, NULL, &e), "open B", &e);
	check(rp_array_pair(a, b, &e), "pair", &e);
	rp_array_close(b);

	t_create = calloc((size_t)runs, sizeof(double));
	t_snap = calloc((size_t)runs, sizeof(double));
	t_clone = calloc((size_t)runs, sizeof(double));
	if (!t_create || !t_snap || !t_clone)
		return 1;
	{
		struct rp_lun_create_opts o = { .group = "sr1", .replicate = true };

		check(rp_lun_create(&src, a, "base", 100 * GIB, &o, &e), "create base", &e);
	}
	printf("| array | operation (100 GiB, replicated, 6 metadata keys) | runs | median ms |"
	       " min | p90 | max |\n");
	printf("|---|---|---:|---:|---:|---:|---:|\n");
	for (int k = 0; k < 4; k++) {
		int mode = k / 2;
		bool defer = k % 2 == 1;
		char op[96];

		if ((mode == 0 && part[0] && strcmp(part, "ops") != 0) ||
		    (mode == 1 && part[0] && strcmp(part, "calls") != 0))
			continue;
		if (mode == 1 && a) {
			rp_array_close(a); /* mode 1 starts from a closed array */
			a = NULL;
		}
		for (i = 0; i < runs; i++) {
			struct rp_lun_create_opts o = { .group = "sr1",
				                        .replicate = true,
				                        .target_at_sync = defer,
				                        .meta_keys = meta_keys,
				                        .meta_values = meta_values,
				                        .n_meta = N_META };
			struct rp_lun_copy_opts c = { .target_at_sync = defer,
				                      .meta_keys = meta_keys,
				                      .meta_values = meta_values,
				                      .n_meta = N_META };

			(void)snprintf(name, sizeof(name), "vdi-%d-%d", k, i);
			t0 = now_ms();
			REOPEN();
			check(rp_lun_create(&d, a, name, 100 * GIB, &o, &e), "create", &e);
			CLOSE();
			t_create[i] = now_ms() - t0;
			(void)snprintf(name, sizeof(name), "snap-%d-%d", k, i);
			c.name = name;
			t0 = now_ms();
			REOPEN();
			check(rp_lun_snapshot_ex(&d, a, src.id, &c, &e), "snapshot", &e);
			CLOSE();
			t_snap[i] = now_ms() - t0;
			(void)snprintf(name, sizeof(name), "clone-%d-%d", k, i);
			t0 = now_ms();
			REOPEN();
			check(rp_lun_clone_ex(&d, a, src.id, &c, &e), "clone", &e);
			CLOSE();
			t_clone[i] = now_ms() - t0;
		}
		(void)snprintf(op, sizeof(op), "%srp_lun_create%s%s", mode ? "open + " : "",
		               mode ? " + close" : "", defer ? " (target at sync)" : "");
		stats(op, label, t_create, runs);
		(void)snprintf(op, sizeof(op), "%srp_lun_snapshot_ex%s%s", mode ? "open + " : "",
		               mode ? " + close" : "", defer ? " (target at sync)" : "");
		stats(op, label, t_snap, runs);
		(void)snprintf(op, sizeof(op), "%srp_lun_clone_ex%s%s", mode ? "open + " : "",
		               mode ? " + close" : "", defer ? " (target at sync)" : "");
		stats(op, label, t_clone, runs);
	}
	/* The open handles alone: the array, then the array and its peer (replicated calls). */
	rp_array_close(a);
	a = NULL;
	for (i = 0; i < runs && (!part[0] || strcmp(part, "open") == 0); i++) {
		t0 = now_ms();
		check(rp_array_open(&a, pa, NULL, &e), "open A", &e);
		rp_array_close(a);
		t_create[i] = now_ms() - t0;
		t0 = now_ms();
		check(rp_array_open(&a, pa, NULL, &e), "open A", &e);
		check(rp_array_open_peer(&b, a, NULL, &e), "open peer", &e);
		rp_array_close(b);
		rp_array_close(a);
		t_snap[i] = now_ms() - t0;
	}
	a = NULL;
	if (!part[0] || strcmp(part, "open") == 0) {
		stats("rp_array_open + close", label, t_create, runs);
		stats("rp_array_open + rp_array_open_peer + close both", label, t_snap, runs);
	}
	free(t_create);
	free(t_snap);
	free(t_clone);
	return 0;
}

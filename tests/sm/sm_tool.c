/* SPDX-License-Identifier: MIT */
/*
 * sm_tool.c - test helper for tests/sm: prepares and inspects arrays through libreplun's public
 * API (init, pair, LUN list/path/metadata, sync, present), so the tests need no other front end.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "replun/replun.h"

static int fail(const char *what, const struct rp_error *err)
{
	fprintf(stderr, "sm_tool: %s: %s\n", what, err->msg);
	return 1;
}

static int cmd_luns(struct rp_array *a, const char *group)
{
	struct rp_error err = { 0 };
	struct rp_device *d = NULL;
	size_t n = 0, i;

	if (rp_lun_list(&d, &n, a, group, &err) < 0)
		return fail("lun list", &err);
	for (i = 0; i < n; i++)
		printf("%s %s %llu %llu %s %d %s %d\n", d[i].id, d[i].name,
		       (unsigned long long)d[i].size, (unsigned long long)d[i].allocated,
		       rp_dev_state_name(d[i].state), d[i].read_only,
		       d[i].snapshot_of[0] ? d[i].snapshot_of : "-", d[i].target_pending);
	rp_free(d);
	return 0;
}

static double now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/*
 * bench URI GROUP LUN RUNS: the array work of vdi_create/snapshot/clone/attach alone, each run
 * opening and closing the array as a plugin process does; prints "<op> <median ms>".
 */
static int cmd_bench(const char *uri, const char *group, const char *lun, int runs)
{
	static const char *const ops[] = { "vdi_create", "vdi_snapshot", "vdi_clone",
		                           "vdi_attach" };
	struct rp_error err = { 0 };
	double t[256];
	size_t o;
	int i;

	if (runs < 1 || runs > 256)
		return 2;
	for (o = 0; o < sizeof(ops) / sizeof(ops[0]); o++) {
		for (i = 0; i < runs; i++) {
			struct rp_array *a = NULL;
			/* the VDI record ReplunSR writes with the LUN (9 keys), in the same commit
			 */
			static const char *const mk[] = {
				"vdi.uuid",        "vdi.name_label",    "vdi.name_description",
				"vdi.type",        "vdi.read_only",     "vdi.is_a_snapshot",
				"vdi.snapshot_of", "vdi.snapshot_time", "vdi.sr_uuid"
			};
			static const char *const mv[] = { "00000000-0000-4000-8000-000000000001",
				                          "bench",
				                          "",
				                          "user",
				                          "false",
				                          "false",
				                          "",
				                          "19700101T00:00:00Z",
				                          "00000000-0000-4000-8000-000000000002" };
			/* as ReplunSR: the target is made by the group's next sync */
			struct rp_lun_create_opts co = { .group = group,
				                         .replicate = true,
				                         .target_at_sync = true,
				                         .meta_keys = mk,
				                         .meta_values = mv,
				                         .n_meta = 9 };
			struct rp_device d;
			char name[64], path[4096];
			double t0 = now_ms();
			int rc;

			(void)snprintf(name, sizeof(name), "bench-%zu-%d-%ld", o, i,
			               (long)getpid());
			rc = rp_array_open(&a, uri, NULL, &err);
			struct rp_lun_copy_opts cp = { .name = name,
				                       .target_at_sync = true,
				                       .meta_keys = mk,
				                       .meta_values = mv,
				                       .n_meta = 9 };

			if (rc == 0 && o == 0)
				rc = rp_lun_create(&d, a, name, 100ull << 30, &co, &err);
			else if (rc == 0 && o == 1 && (rc = rp_lun_get(&d, a, lun, &err)) == 0)
				rc = rp_lun_snapshot_ex(&d, a, d.id, &cp, &err);
			else if (rc == 0 && o == 2 && (rc = rp_lun_get(&d, a, lun, &err)) == 0)
				rc = rp_lun_clone_ex(&d, a, d.id, &cp, &err);
			else if (rc == 0 && o == 3 && (rc = rp_lun_get(&d, a, lun, &err)) == 0)
				rc = rp_lun_path(path, sizeof(path), a, d.id, &err);
			rp_array_close(a);
			t[i] = now_ms() - t0;
			if (rc < 0)
				return fail(ops[o], &err);
		}
		qsort(t, (size_t)runs, sizeof(t[0]), cmp_double);
		printf("%s %.3f\n", ops[o], t[runs / 2]);
	}
	return 0;
}

static int meta_cb(const char *key, const char *value, void *payload)
{
	printf("%s=%s\n", key, value);
	return 0;
}

int main(int argc, char **argv)
{
	struct rp_error err = { 0 };
	struct rp_array *a = NULL, *b = NULL;
	struct rp_device dev;
	char buf[4096];
	int rc = 1;

	if (argc < 3) {
		fprintf(stderr,
		        "usage: sm_tool init PATH ID | pair A B | luns A GROUP | path A LUN |"
		        " meta A LUN | sync A GROUP | failover A GROUP | reverse A GROUP |"
		        " present A LUN HOST rw|ro | group A ID | mklun A GROUP NAME | rmlun A LUN "
		        "|"
		        " bench A GROUP LUN RUNS\n");
		return 2;
	}
	if (strcmp(argv[1], "bench") == 0 && argc == 6)
		return cmd_bench(argv[2], argv[3], argv[4], (int)strtol(argv[5], NULL, 10));
	if (strcmp(argv[1], "init") == 0 && argc == 4)
		return rp_array_init(argv[2], argv[3], NULL, &err) < 0 ? fail("init", &err) : 0;
	if (rp_array_open(&a, argv[2], NULL, &err) < 0)
		return fail("open", &err);
	if (strcmp(argv[1], "pair") == 0 && argc == 4) {
		if (rp_array_open(&b, argv[3], NULL, &err) < 0 || rp_array_pair(a, b, &err) < 0)
			rc = fail("pair", &err);
		else
			rc = 0;
	} else if (strcmp(argv[1], "luns") == 0 && argc == 4) {
		rc = cmd_luns(a, argv[3]);
	} else if (strcmp(argv[1], "path") == 0 && argc == 4) {
		if (rp_lun_get(&dev, a, argv[3], &err) < 0 ||
		    rp_lun_path(buf, sizeof(buf), a, dev.id, &err) < 0)
			rc = fail("path", &err);
		else
			rc = printf("%s\n", buf) < 0;
	} else if (strcmp(argv[1], "meta") == 0 && argc == 4) {
		if (rp_lun_get(&dev, a, argv[3], &err) < 0 ||
		    rp_lun_meta_foreach(a, dev.id, meta_cb, NULL, &err) < 0)
			rc = fail("meta", &err);
		else
			rc = 0;
	} else if (strcmp(argv[1], "group") == 0 && argc == 4) {
		struct rp_group g;

		if (rp_group_get(&g, a, argv[3], &err) < 0) {
			rc = fail("group", &err);
		} else {
			printf("%s %s %s %u\n", g.id, g.name, rp_group_role_name(g.role),
			       g.rpo_seconds);
			rc = rp_group_meta_foreach(a, g.id, meta_cb, NULL, &err) < 0;
		}
	} else if (strcmp(argv[1], "mklun") == 0 && argc == 5) {
		struct rp_lun_create_opts o = { .group = argv[3] };

		rc = rp_lun_create(&dev, a, argv[4], 1ull << 20, &o, &err) < 0 ? fail("mklun", &err)
		                                                               : 0;
		if (rc == 0)
			printf("%s\n", dev.id);
	} else if (strcmp(argv[1], "rmlun") == 0 && argc == 4) {
		rc = rp_lun_get(&dev, a, argv[3], &err) < 0 || rp_lun_delete(a, dev.id, &err) < 0
		             ? fail("rmlun", &err)
		             : 0;
	} else if (strcmp(argv[1], "present") == 0 && argc == 6) {
		if (rp_lun_get(&dev, a, argv[3], &err) < 0 ||
		    rp_lun_present(a, dev.id, argv[4], strcmp(argv[5], "rw") == 0, &err) < 0)
			rc = fail("present", &err);
		else
			rc = 0;
	} else if (strcmp(argv[1], "unpresent") == 0 && argc == 5) {
		if (rp_lun_get(&dev, a, argv[3], &err) < 0 ||
		    rp_lun_unpresent(a, dev.id, argv[4], &err) < 0)
			rc = fail("unpresent", &err);
		else
			rc = 0;
	} else if ((strcmp(argv[1], "failover") == 0 || strcmp(argv[1], "reverse") == 0) &&
	           argc == 4) {
		const char *groups[1] = { argv[3] };
		struct rp_request req = { .groups = groups, .n_groups = 1 };
		struct rp_result *r = NULL;
		size_t i;
		int wrc = strcmp(argv[1], "failover") == 0 ? rp_failover(&r, a, &req, &err)
		                                           : rp_reverse(&r, a, &req, &err);

		if (wrc < 0) {
			rc = fail(argv[1], &err);
		} else {
			rc = 0;
			for (i = 0; i < r->n; i++) {
				if (r->items[i].code) {
					fprintf(stderr, "sm_tool: %s %s: %s\n", argv[1],
					        r->items[i].id, r->items[i].msg);
					rc = 1;
				}
			}
			rp_result_free(r);
		}
	} else if (strcmp(argv[1], "sync") == 0 && argc == 4) {
		const char *groups[1] = { argv[3] };
		struct rp_request req = { .groups = groups, .n_groups = 1 };
		struct rp_sync_opts o = { .foreground = true };
		struct rp_result *r = NULL;
		size_t i;

		if (rp_sync_start(&r, a, &req, &o, &err) < 0) {
			rc = fail("sync", &err);
		} else {
			rc = 0;
			for (i = 0; i < r->n; i++) {
				if (r->items[i].code) {
					fprintf(stderr, "sm_tool: sync %s: %s\n", r->items[i].id,
					        r->items[i].msg);
					rc = 1;
				}
			}
			rp_result_free(r);
		}
	} else {
		fprintf(stderr, "sm_tool: bad command\n");
		rc = 2;
	}
	rp_array_close(b);
	rp_array_close(a);
	return rc;
}

/* SPDX-License-Identifier: MIT */
/*
 * sm_tool.c - test helper for tests/sm: prepares and inspects arrays through libreplun's public
 * API (init, pair, LUN list/path/metadata, sync, present), so the tests need no other front end.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
		printf("%s %s %llu %llu %s %d %s\n", d[i].id, d[i].name,
		       (unsigned long long)d[i].size, (unsigned long long)d[i].allocated,
		       rp_dev_state_name(d[i].state), d[i].read_only,
		       d[i].snapshot_of[0] ? d[i].snapshot_of : "-");
	rp_free(d);
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
		        " present A LUN HOST rw|ro | group A ID\n");
		return 2;
	}
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
	} else if (strcmp(argv[1], "present") == 0 && argc == 6) {
		if (rp_lun_get(&dev, a, argv[3], &err) < 0 ||
		    rp_lun_present(a, dev.id, argv[4], strcmp(argv[5], "rw") == 0, &err) < 0)
			rc = fail("present", &err);
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

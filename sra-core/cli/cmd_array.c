/* SPDX-License-Identifier: MIT */
/* cmd_array.c - `replun array init|pair|info` and `replun group list|create|delete`. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cmd_array_init(struct cli_args *a)
{
	struct rp_error err = { 0 };
	const char *id = cli_opt(a, "id");
	const char *name = cli_opt(a, "name");
	char path[RP_URI_MAX];
	int rc;

	if (!id)
		return cli_usage("array init: missing '--id ID'");
	rc = cli_array_path(path, sizeof(path), a->pos[0]);
	if (rc)
		return rc;
	if (strncmp(path, "file://", 7) == 0)
		memmove(path, path + 7, strlen(path + 7) + 1);
	if (rp_id_check(id, "array id", &err) < 0)
		return cli_fail(&err);
	if (name && (!*name || strlen(name) >= RP_NAME_MAX))
		return cli_usage("array init: name must be 1-%d characters", RP_NAME_MAX - 1);
	if (rp_array_init(path, id, name, &err) < 0)
		return cli_fail(&err);
	(void)printf("%s\n", id);
	return CLI_EXIT_OK;
}

int cmd_array_pair(struct cli_args *a)
{
	struct rp_error err = { 0 };
	struct rp_array *x = NULL, *y = NULL;
	int rc;

	rc = cli_open(&x, a->pos[0]);
	if (rc)
		goto out;
	rc = cli_open(&y, a->pos[1]);
	if (rc)
		goto out;
	if (rp_array_pair(x, y, &err) < 0) {
		rc = cli_fail(&err);
		goto out;
	}
	(void)printf("paired %s <-> %s\n", rp_array_id(x), rp_array_id(y));
out:
	rp_array_close(y);
	rp_array_close(x);
	return rc;
}

/* The "usage" object of `array info --json`. */
static struct json_object *usage_json(const struct rp_array_usage *u,
                                      const struct rp_object_usage *unref)
{
	struct json_object *o = json_object_new_object(), *list = json_object_new_array();
	size_t i;

	cli_json_int(o, "luns", (int64_t)u->luns);
	cli_json_int(o, "recovery_points", (int64_t)u->recovery_points);
	cli_json_int(o, "bases", (int64_t)u->bases);
	cli_json_int(o, "spares", (int64_t)u->spares);
	cli_json_int(o, "snapshots", (int64_t)u->snapshots);
	cli_json_int(o, "in_progress", (int64_t)u->work);
	cli_json_int(o, "unreferenced", (int64_t)u->unreferenced);
	cli_json_int(o, "objects", (int64_t)u->n_objects);
	cli_json_bool(o, "listed", u->listed);
	for (i = 0; unref && i < u->n_unreferenced; i++) {
		struct json_object *x = json_object_new_object();

		cli_json_str(x, "object", unref[i].obj);
		cli_json_int(x, "allocated", (int64_t)unref[i].allocated);
		(void)json_object_array_add(list, x);
	}
	(void)json_object_object_add(o, "unreferenced_objects", list);
	return o;
}

static void usage_print(const struct rp_array_usage *u, const struct rp_object_usage *unref,
                        bool reflink)
{
	char l[32], r[32], b[32], s[32], n[32], w[32], x[32];
	size_t i;

	cli_fmt_size(l, sizeof(l), u->luns);
	cli_fmt_size(r, sizeof(r), u->recovery_points);
	cli_fmt_size(b, sizeof(b), u->bases);
	cli_fmt_size(s, sizeof(s), u->spares);
	cli_fmt_size(n, sizeof(n), u->snapshots);
	cli_fmt_size(w, sizeof(w), u->work);
	cli_fmt_size(x, sizeof(x), u->unreferenced);
	(void)printf("allocated:   LUNs %s, recovery points %s, bases %s, spares %s,\n"
	             "             snapshots %s, in progress %s, unreferenced %s (%zu objects%s)\n",
	             l, r, b, s, n, u->listed ? w : "unknown", u->listed ? x : "unknown",
	             u->n_objects, reflink ? "; shared blocks count in each" : "");
	for (i = 0; unref && i < u->n_unreferenced; i++) {
		cli_fmt_size(x, sizeof(x), unref[i].allocated);
		(void)printf("%s %s (%s)\n", i == 0 ? "unreferenced:" : "             ",
		             unref[i].obj, x);
	}
}

int cmd_array_info(struct cli_args *a)
{
	struct rp_error err = { 0 };
	struct rp_array *x = NULL;
	struct rp_array_info *info = NULL;
	struct rp_array_usage u;
	struct rp_object_usage *unref = NULL;
	char cap[32], fr[32], res[32];
	size_t i;
	int rc;

	rc = cli_open(&x, a->pos[0]);
	if (rc)
		return rc;
	info = rp_calloc(1, sizeof(*info));
	if (!info) {
		rc = cli_failf(CLI_EXIT_ERROR, "out of memory");
		goto out;
	}
	if (rp_array_info(info, x, &err) < 0 || rp_array_usage(&u, &unref, x, &err) < 0) {
		rc = cli_fail(&err);
		goto out;
	}
	if (cli_flag(a, "json")) {
		struct json_object *o = json_object_new_object();
		struct json_object *peers = json_object_new_array();

		cli_json_str(o, "id", info->id);
		cli_json_str(o, "name", info->name);
		cli_json_str(o, "vendor", info->vendor);
		cli_json_str(o, "model", info->model);
		cli_json_str(o, "driver", info->driver);
		cli_json_str(o, "uri", info->uri);
		cli_json_str(o, "fs_type", info->fs_type);
		cli_json_bool(o, "reflink", info->reflink);
		cli_json_int(o, "capacity", (int64_t)info->capacity);
		cli_json_int(o, "free", (int64_t)info->free);
		cli_json_int(o, "reserved", (int64_t)info->reserved);
		for (i = 0; i < info->n_peers && i < RP_MAX_PEERS; i++) {
			struct json_object *p = json_object_new_object();

			cli_json_str(p, "id", info->peers[i].array_id);
			cli_json_str(p, "uri", info->peers[i].uri);
			(void)json_object_array_add(peers, p);
		}
		(void)json_object_object_add(o, "peers", peers);
		(void)json_object_object_add(o, "usage", usage_json(&u, unref));
		cli_json_print(o);
		goto out;
	}
	cli_fmt_size(cap, sizeof(cap), info->capacity);
	cli_fmt_size(fr, sizeof(fr), info->free);
	cli_fmt_size(res, sizeof(res), info->reserved);
	(void)printf("id:          %s\n"
	             "name:        %s\n"
	             "vendor:      %s\n"
	             "model:       %s\n"
	             "driver:      %s\n"
	             "uri:         %s\n"
	             "filesystem:  %s (%s)\n"
	             "capacity:    %s (free %s, reserved %s)\n",
	             info->id, info->name, info->vendor, info->model, info->driver, info->uri,
	             info->fs_type[0] ? info->fs_type : "unknown",
	             info->reflink ? "reflink: O(1) snapshots and clones" : "no reflink", cap, fr,
	             res);
	if (info->n_peers == 0)
		(void)printf("peers:       none\n");
	for (i = 0; i < info->n_peers && i < RP_MAX_PEERS; i++)
		(void)printf("%s %s %s\n", i == 0 ? "peers:      " : "            ",
		             info->peers[i].array_id, info->peers[i].uri);
	usage_print(&u, unref, info->reflink);
out:
	rp_free(unref);
	rp_free(info);
	rp_array_close(x);
	return rc;
}

int cmd_group_list(struct cli_args *a)
{
	static const char *const head[] = { "ID",   "NAME", "ROLE",      "DEVICES",
		                            "PEER", "RPO",  "RETENTION", "RECOVERY POINT" };
	struct rp_error err = { 0 };
	struct rp_array *x = NULL;
	struct rp_group *g = NULL;
	struct cli_table *t = NULL;
	size_t n = 0, i;
	int rc;

	rc = cli_open(&x, a->pos[0]);
	if (rc)
		return rc;
	if (rp_group_list(&g, &n, x, &err) < 0) {
		rc = cli_fail(&err);
		goto out;
	}
	if (cli_flag(a, "json")) {
		struct json_object *arr = json_object_new_array();

		for (i = 0; i < n; i++) {
			struct json_object *o = json_object_new_object();
			char tm[RP_TIME_MAX];

			cli_json_str(o, "id", g[i].id);
			cli_json_str(o, "name", g[i].name);
			cli_json_str(o, "role", rp_group_role_name(g[i].role));
			cli_json_int(o, "devices", (int64_t)g[i].n_devices);
			cli_json_str(o, "peer_array", g[i].peer_array);
			cli_json_int(o, "rpo_seconds", g[i].rpo_seconds);
			cli_json_int(o, "retention", g[i].retention);
			cli_json_str(o, "recovery_point", g[i].recovery_point);
			cli_fmt_time(tm, sizeof(tm), g[i].recovery_point_ms);
			cli_json_str(o, "recovery_point_time",
			             g[i].recovery_point_ms > 0 ? tm : NULL);
			cli_json_str(o, "test_snapshot", g[i].test_snapshot);
			(void)json_object_array_add(arr, o);
		}
		cli_json_print(arr);
		goto out;
	}
	t = cli_table_new(8, head);
	for (i = 0; i < n; i++) {
		char nd[24], rpo[24], ret[24], rp[RP_ID_MAX + RP_TIME_MAX + 4], tm[RP_TIME_MAX];
		const char *row[8];

		(void)snprintf(nd, sizeof(nd), "%zu", g[i].n_devices);
		(void)snprintf(rpo, sizeof(rpo), g[i].rpo_seconds ? "%us" : "manual",
		               g[i].rpo_seconds);
		(void)snprintf(ret, sizeof(ret), "%u", g[i].retention);
		cli_fmt_time(tm, sizeof(tm), g[i].recovery_point_ms);
		(void)snprintf(rp, sizeof(rp), "%s%s%s%s", g[i].recovery_point,
		               g[i].recovery_point[0] ? " (" : "", g[i].recovery_point[0] ? tm : "",
		               g[i].recovery_point[0] ? ")" : "");
		row[0] = g[i].id;
		row[1] = g[i].name;
		row[2] = rp_group_role_name(g[i].role);
		row[3] = nd;
		row[4] = g[i].peer_array;
		row[5] = rpo;
		row[6] = ret;
		row[7] = rp;
		(void)cli_table_add(t, row);
	}
	cli_table_print(t, stdout);
out:
	cli_table_free(t);
	rp_free(g);
	rp_array_close(x);
	return rc;
}

/* Checks the group argument (PATH GROUP ...) and opens the array; 0 or an exit code. */
static int open_for_group(struct rp_array **x, const struct cli_args *a)
{
	struct rp_error err = { 0 };

	if (rp_id_check(a->pos[1], "group id", &err) < 0)
		return cli_fail(&err);
	return cli_open(x, a->pos[0]);
}

int cmd_group_create(struct cli_args *a)
{
	struct rp_error err = { 0 };
	struct rp_array *x = NULL;
	struct rp_group g;
	int rc;

	rc = open_for_group(&x, a);
	if (rc)
		return rc;
	if (rp_group_create(&g, x, a->pos[1], cli_opt(a, "name"), &err) < 0)
		rc = cli_fail(&err);
	else
		(void)printf("%s\n", g.id);
	rp_array_close(x);
	return rc;
}

/* A number of 0..4294967295 for --rpo / --retention; 0 or an exit code. */
static int group_u32(uint32_t *out, const char *s, const char *what)
{
	char *end = NULL;
	unsigned long long v;

	if (!s)
		return 0;
	v = strtoull(s, &end, 10);
	if (!*s || *end || s[0] == '-' || v > UINT32_MAX)
		return cli_usage("%s '%.64s' is not a whole number", what, s);
	*out = (uint32_t)v;
	return 0;
}

int cmd_group_policy(struct cli_args *a)
{
	struct rp_error err = { 0 };
	struct rp_array *x = NULL;
	struct rp_group g;
	const char *rpo = cli_opt(a, "rpo"), *ret = cli_opt(a, "retention");
	uint32_t rpo_s, keep;
	int rc;

	rc = open_for_group(&x, a);
	if (rc)
		return rc;
	if (rp_group_get(&g, x, a->pos[1], &err) < 0) {
		rc = cli_fail(&err);
		goto out;
	}
	rpo_s = g.rpo_seconds;
	keep = g.retention;
	rc = group_u32(&rpo_s, rpo, "rpo");
	if (!rc)
		rc = group_u32(&keep, ret, "retention");
	if (rc)
		goto out;
	if ((rpo || ret) && rp_group_set_policy(x, g.id, rpo_s, keep, &err) < 0) {
		rc = cli_fail(&err);
		goto out;
	}
	if (cli_flag(a, "json")) {
		struct json_object *o = json_object_new_object();

		cli_json_str(o, "group", g.id);
		cli_json_int(o, "rpo_seconds", rpo_s);
		cli_json_int(o, "retention", keep);
		cli_json_print(o);
	} else {
		(void)printf("group %s: rpo %us, retention %u\n", g.id, (unsigned)rpo_s,
		             (unsigned)keep);
	}
out:
	rp_array_close(x);
	return rc;
}

int cmd_group_delete(struct cli_args *a)
{
	struct rp_error err = { 0 };
	struct rp_array *x = NULL;
	int rc;

	rc = open_for_group(&x, a);
	if (rc)
		return rc;
	if (rp_group_delete(x, a->pos[1], &err) < 0)
		rc = cli_fail(&err);
	rp_array_close(x);
	return rc;
}

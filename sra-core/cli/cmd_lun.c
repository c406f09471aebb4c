/* SPDX-License-Identifier: MIT */
/* cmd_lun.c - `replun lun create|list|delete|resize|snapshot|clone|path|meta|checksum|
 * present|presented|unpresent`. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

/* Device ids and names come from outside: bounded, no path tricks. */
static int check_dev(const char *id)
{
	if (!*id || strlen(id) >= RP_NAME_MAX)
		return cli_usage("device id '%.64s' must be 1-%d characters", id, RP_NAME_MAX - 1);
	if (strstr(id, "..") || strchr(id, '/'))
		return cli_usage("device id '%.64s' must not contain '..' or '/'", id);
	return 0;
}

/* Checks the device argument (PATH DEVICE ...) and opens the array; 0 or an exit code. */
static int open_for_dev(struct rp_array **x, const struct cli_args *a)
{
	int rc = check_dev(a->pos[1]);

	return rc ? rc : cli_open(x, a->pos[0]);
}

/* LUN names are free text for the engine; the CLI refuses what would break its own output. */
static int check_name(const char *name)
{
	const unsigned char *p;

	if (!*name || strlen(name) >= RP_NAME_MAX)
		return cli_usage("lun name must be 1-%d characters", RP_NAME_MAX - 1);
	for (p = (const unsigned char *)name; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return cli_usage("lun name must not contain control characters");
	if (strchr(name, '/'))
		return cli_usage("lun name must not contain '/'");
	return 0;
}

static int parse_size(uint64_t *out, const char *s)
{
	struct rp_error err = { 0 };

	if (rp_size_parse(out, s, &err) < 0)
		return cli_fail(&err);
	if (*out == 0)
		return cli_usage("size '%s' must be greater than 0", s);
	return 0;
}

static void print_device_json_or_id(const struct cli_args *a, const struct rp_device *d)
{
	if (cli_flag(a, "json"))
		cli_json_print(cli_json_device(d));
	else
		(void)printf("%s\n", d->id);
}

int cmd_lun_create(struct cli_args *a)
{
	struct rp_lun_create_opts o = { 0 };
	struct rp_error err = { 0 };
	struct rp_array *x = NULL;
	struct rp_device d;
	uint64_t size = 0;
	int rc;

	rc = check_name(a->pos[1]);
	if (rc)
		return rc;
	rc = parse_size(&size, a->pos[2]);
	if (rc)
		return rc;
	o.group = cli_opt(a, "group");
	/* --target-at-sync asks for replication with the target made by the next sync */
	o.target_at_sync = cli_flag(a, "target-at-sync");
	o.replicate = cli_flag(a, "replicate") || o.target_at_sync;
	o.peer = cli_opt(a, "peer");
	if (o.group && rp_id_check(o.group, "group id", &err) < 0)
		return cli_fail(&err);
	if (o.peer && rp_id_check(o.peer, "peer array id", &err) < 0)
		return cli_fail(&err);
	rc = cli_open(&x, a->pos[0]);
	if (rc)
		return rc;
	memset(&d, 0, sizeof(d));
	if (rp_lun_create(&d, x, a->pos[1], size, &o, &err) < 0)
		rc = cli_fail(&err);
	else
		print_device_json_or_id(a, &d);
	rp_array_close(x);
	return rc;
}

static void peer_cell(char *buf, size_t len, const struct rp_device *d)
{
	if (d->target_pending)
		(void)snprintf(buf, len, "%s/(next sync)", d->peer_array);
	else if (d->peer_array[0])
		(void)snprintf(buf, len, "%s/%s", d->peer_array, d->peer_device);
	else
		(void)snprintf(buf, len, "-");
}

int cmd_lun_list(struct cli_args *a)
{
	static const char *const head[] = { "ID",    "NAME", "SIZE", "STATE",
		                            "GROUP", "WWN",  "PEER", "RECOVERY POINT" };
	struct rp_error err = { 0 };
	struct rp_array *x = NULL;
	struct rp_device *d = NULL;
	struct cli_table *t = NULL;
	const char *group = cli_opt(a, "group");
	size_t n = 0, i;
	int rc;

	if (group && rp_id_check(group, "group id", &err) < 0)
		return cli_fail(&err);
	rc = cli_open(&x, a->pos[0]);
	if (rc)
		return rc;
	if (group) {
		struct rp_group g;

		if (rp_group_get(&g, x, group, &err) < 0) {
			rc = cli_fail(&err);
			goto out;
		}
	}
	if (rp_lun_list(&d, &n, x, group, &err) < 0) {
		rc = cli_fail(&err);
		goto out;
	}
	if (cli_flag(a, "json")) {
		struct json_object *arr = json_object_new_array();

		for (i = 0; i < n; i++)
			(void)json_object_array_add(arr, cli_json_device(&d[i]));
		cli_json_print(arr);
		goto out;
	}
	t = cli_table_new(8, head);
	for (i = 0; i < n; i++) {
		char size[32], state[64], peer[2 * RP_ID_MAX + 2], rp[RP_ID_MAX + RP_TIME_MAX + 4];
		char tm[RP_TIME_MAX];
		const char *row[8];

		cli_fmt_size(size, sizeof(size), d[i].size);
		(void)snprintf(state, sizeof(state), "%s%s", rp_dev_state_name(d[i].state),
		               d[i].read_only && d[i].state != RP_DEV_TARGET &&
		                               d[i].state != RP_DEV_DEMOTED_SOURCE
		                       ? " (ro)"
		                       : "");
		peer_cell(peer, sizeof(peer), &d[i]);
		cli_fmt_time(tm, sizeof(tm), d[i].recovery_point_ms);
		(void)snprintf(rp, sizeof(rp), "%s", d[i].recovery_point_ms > 0 ? tm : "");
		row[0] = d[i].id;
		row[1] = d[i].name;
		row[2] = size;
		row[3] = state;
		row[4] = d[i].group;
		row[5] = d[i].wwn;
		row[6] = peer;
		row[7] = rp;
		(void)cli_table_add(t, row);
	}
	cli_table_print(t, stdout);
out:
	cli_table_free(t);
	rp_free(d);
	rp_array_close(x);
	return rc;
}

int cmd_lun_delete(struct cli_args *a)
{
	struct rp_error err = { 0 };
	struct rp_array *x = NULL;
	int rc;

	rc = open_for_dev(&x, a);
	if (rc)
		return rc;
	if (rp_lun_delete(x, a->pos[1], &err) < 0)
		rc = cli_fail(&err);
	rp_array_close(x);
	return rc;
}

int cmd_lun_resize(struct cli_args *a)
{
	struct rp_error err = { 0 };
	struct rp_array *x = NULL;
	uint64_t size = 0;
	int rc;

	rc = check_dev(a->pos[1]);
	if (rc)
		return rc;
	rc = parse_size(&size, a->pos[2]);
	if (rc)
		return rc;
	rc = cli_open(&x, a->pos[0]);
	if (rc)
		return rc;
	if (rp_lun_resize(x, a->pos[1], size, &err) < 0)
		rc = cli_fail(&err);
	rp_array_close(x);
	return rc;
}

static int snap_or_clone(struct cli_args *a, bool clone)
{
	struct rp_lun_copy_opts o = { 0 };
	struct rp_error err = { 0 };
	struct rp_array *x = NULL;
	struct rp_device d;
	const char *name = a->n_pos > 2 ? a->pos[2] : NULL;
	int rc;

	rc = check_dev(a->pos[1]);
	if (rc)
		return rc;
	if (name) {
		rc = check_name(name);
		if (rc)
			return rc;
	}
	rc = cli_open(&x, a->pos[0]);
	if (rc)
		return rc;
	memset(&d, 0, sizeof(d));
	o.name = name;
	o.target_at_sync = cli_flag(a, "target-at-sync");
	if (clone)
		rc = rp_lun_clone_ex(&d, x, a->pos[1], &o, &err);
	else
		rc = rp_lun_snapshot_ex(&d, x, a->pos[1], &o, &err);
	if (rc < 0)
		rc = cli_fail(&err);
	else
		print_device_json_or_id(a, &d);
	rp_array_close(x);
	return rc;
}

int cmd_lun_snapshot(struct cli_args *a)
{
	return snap_or_clone(a, false);
}

int cmd_lun_clone(struct cli_args *a)
{
	return snap_or_clone(a, true);
}

int cmd_lun_path(struct cli_args *a)
{
	struct rp_error err = { 0 };
	struct rp_array *x = NULL;
	char path[RP_URI_MAX];
	int rc;

	rc = open_for_dev(&x, a);
	if (rc)
		return rc;
	if (rp_lun_path(path, sizeof(path), x, a->pos[1], &err) < 0)
		rc = cli_fail(&err);
	else
		(void)printf("%s\n", path);
	rp_array_close(x);
	return rc;
}

int cmd_lun_checksum(struct cli_args *a)
{
	struct rp_error err = { 0 };
	struct rp_array *x = NULL;
	char sum[40];
	int rc;

	rc = open_for_dev(&x, a);
	if (rc)
		return rc;
	if (rp_lun_checksum(sum, x, a->pos[1], &err) < 0)
		rc = cli_fail(&err);
	else
		(void)printf("%s\n", sum);
	rp_array_close(x);
	return rc;
}

struct meta_list {
	bool json;
	struct json_object *obj;
};

static int meta_print(const char *key, const char *value, void *payload)
{
	struct meta_list *m = payload;

	if (m->json)
		(void)json_object_object_add(m->obj, key, json_object_new_string(value));
	else
		(void)printf("%s=%s\n", key, value);
	return 0;
}

int cmd_lun_meta(struct cli_args *a)
{
	struct rp_error err = { 0 };
	struct rp_array *x = NULL;
	struct meta_list m = { 0 };
	const char *key = a->n_pos > 2 ? a->pos[2] : NULL;
	const char *val = a->n_pos > 3 ? a->pos[3] : NULL;
	bool del = cli_flag(a, "delete");
	char *got = NULL;
	struct rp_device d;
	int rc;

	rc = check_dev(a->pos[1]);
	if (rc)
		return rc;
	if (del && (!key || val))
		return cli_usage("lun meta: --delete takes exactly one KEY");
	if (key && (!*key || strlen(key) > 127))
		return cli_usage("metadata key must be 1-127 characters");
	if (val && strlen(val) > 65536)
		return cli_usage("metadata value is longer than 64 KiB");
	rc = cli_open(&x, a->pos[0]);
	if (rc)
		return rc;
	/* A missing LUN is "not found" whatever the metadata call says. */
	if (rp_lun_get(&d, x, a->pos[1], &err) < 0) {
		rc = cli_fail(&err);
		goto out;
	}
	if (del) {
		if (rp_lun_meta_del(x, d.id, key, &err) < 0)
			rc = cli_fail(&err);
	} else if (val) {
		if (rp_lun_meta_set(x, d.id, key, val, &err) < 0)
			rc = cli_fail(&err);
	} else if (key) {
		if (rp_lun_meta_get(&got, x, d.id, key, &err) < 0) {
			rc = cli_fail(&err);
		} else if (cli_flag(a, "json")) {
			struct json_object *o = json_object_new_object();

			(void)json_object_object_add(o, key, json_object_new_string(got));
			cli_json_print(o);
		} else {
			(void)printf("%s\n", got);
		}
	} else {
		m.json = cli_flag(a, "json");
		if (m.json)
			m.obj = json_object_new_object();
		if (rp_lun_meta_foreach(x, d.id, meta_print, &m, &err) < 0)
			rc = cli_fail(&err);
		else if (m.json) {
			cli_json_print(m.obj);
			m.obj = NULL;
		}
	}
out:
	if (m.obj)
		(void)json_object_put(m.obj);
	rp_free(got);
	rp_array_close(x);
	return rc;
}

static int check_host(const char *host)
{
	const unsigned char *p;

	if (!host || !*host || strlen(host) >= RP_NAME_MAX)
		return cli_usage("host must be 1-%d characters", RP_NAME_MAX - 1);
	for (p = (const unsigned char *)host; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return cli_usage("host must not contain control characters");
	return 0;
}

int cmd_lun_present(struct cli_args *a)
{
	struct rp_error err = { 0 };
	struct rp_array *x = NULL;
	int rc;

	rc = check_dev(a->pos[1]);
	if (rc)
		return rc;
	rc = check_host(cli_opt(a, "host"));
	if (rc)
		return rc;
	if (cli_flag(a, "rw") && cli_flag(a, "shared"))
		return cli_usage("lun present: give at most one of --rw and --shared");
	rc = cli_open(&x, a->pos[0]);
	if (rc)
		return rc;
	if (cli_flag(a, "shared"))
		rc = rp_lun_present_shared(x, a->pos[1], cli_opt(a, "host"), &err);
	else
		rc = rp_lun_present(x, a->pos[1], cli_opt(a, "host"), cli_flag(a, "rw"), &err);
	if (rc < 0)
		rc = cli_fail(&err);
	rp_array_close(x);
	return rc;
}

int cmd_lun_presented(struct cli_args *a)
{
	static const char *const head[] = { "HOST", "ACCESS" };
	struct rp_presentation *p = NULL;
	struct rp_error err = { 0 };
	struct rp_array *x = NULL;
	struct cli_table *t = NULL;
	size_t n = 0, i;
	int rc;

	rc = open_for_dev(&x, a);
	if (rc)
		return rc;
	if (rp_lun_presentations(&p, &n, x, a->pos[1], &err) < 0) {
		rc = cli_fail(&err);
		goto out;
	}
	if (cli_flag(a, "json")) {
		struct json_object *arr = json_object_new_array();

		for (i = 0; i < n; i++) {
			struct json_object *o = json_object_new_object();

			cli_json_str(o, "host", p[i].host);
			cli_json_bool(o, "rw", p[i].rw);
			cli_json_bool(o, "shared", p[i].shared);
			(void)json_object_array_add(arr, o);
		}
		cli_json_print(arr);
		goto out;
	}
	t = cli_table_new(2, head);
	for (i = 0; i < n; i++) {
		const char *row[2] = { p[i].host, p[i].shared ? "rw-shared"
			                          : p[i].rw   ? "rw"
			                                      : "ro" };

		(void)cli_table_add(t, row);
	}
	cli_table_print(t, stdout);
out:
	cli_table_free(t);
	rp_free(p);
	rp_array_close(x);
	return rc;
}

int cmd_lun_unpresent(struct cli_args *a)
{
	struct rp_error err = { 0 };
	struct rp_array *x = NULL;
	const char *host = cli_opt(a, "host");
	bool all = cli_flag(a, "all");
	int rc;

	rc = check_dev(a->pos[1]);
	if (rc)
		return rc;
	if ((host != NULL) == all)
		return cli_usage("lun unpresent: give exactly one of --host H or --all");
	if (host) {
		rc = check_host(host);
		if (rc)
			return rc;
	}
	rc = cli_open(&x, a->pos[0]);
	if (rc)
		return rc;
	if (all)
		rc = rp_lun_unpresent_all(x, a->pos[1], &err);
	else
		rc = rp_lun_unpresent(x, a->pos[1], host, &err);
	if (rc < 0)
		rc = cli_fail(&err);
	rp_array_close(x);
	return rc;
}

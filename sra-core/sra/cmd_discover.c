/* SPDX-License-Identifier: MIT */
/*
 * cmd_discover.c - discovery and read-only queries: discoverArrays, discoverDevices,
 * queryReplicationSettings, queryDeviceDetails and queryRecoveryPoints. One list call per
 * array (never one call per device), so discovery stays fast with many devices.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sra.h"

static bool name_ok(const struct sra_ctx *ctx, const char *name)
{
	const char *f = ctx->conn.name_filter;

	return !f || strncmp(name, f, strlen(f)) == 0;
}

int sra_cmd_discover_arrays(struct sra_ctx *ctx)
{
	struct rp_open_opts opts = { 0 };
	xmlNodePtr arrays, warnings = NULL;
	size_t i, k, n_ok = 0;

	if (sra_conn_parse(ctx) < 0) {
		sra_fail(ctx, SRA_E_CONNECTION, "Connections", NULL,
		         "the request has no usable <Connections> block with an array address");
		return 0;
	}
	opts.username = ctx->conn.username;
	opts.password = ctx->conn.password;
	arrays = sra_el(ctx, ctx->resp_root, "Arrays");
	sra_log(RP_LOG_INFO, "Commence: discovery of arrays at %zu address(es)", ctx->conn.n_uris);
	for (i = 0; i < ctx->conn.n_uris; i++) {
		struct rp_error err = { 0 };
		struct rp_array_info info;
		struct rp_array *a = NULL;
		xmlNodePtr arr, m, sw, peers;

		if (rp_array_open(&a, ctx->conn.uris[i], &opts, &err) < 0 ||
		    rp_array_info(&info, a, &err) < 0) {
			rp_array_close(a);
			if (ctx->conn.n_uris == 1) {
				sra_fail_rp(ctx, &err, ctx->conn.uris[i], NULL);
				return 0;
			}
			if (!warnings)
				warnings = sra_el(ctx, ctx->resp_root, "Warnings");
			sra_put_warning(ctx, warnings, SRA_W_OTHER, ctx->conn.uris[i], err.msg);
			sra_log(RP_LOG_WARNING, "array at '%s' skipped: %s", ctx->conn.uris[i],
			        err.msg);
			continue;
		}
		rp_array_close(a);
		n_ok++;
		if (!info.n_peers) {
			sra_log(RP_LOG_WARNING,
			        "array [%s] at '%s' has no peer array: not reported (pair it with "
			        "'replun array pair')",
			        info.id, info.uri);
			continue;
		}
		arr = sra_el(ctx, arrays, "Array");
		sra_set_attr(arr, "id", info.id);
		(void)sra_el_text(ctx, arr, "Name", info.name[0] ? info.name : info.id);
		m = sra_el(ctx, arr, "Model");
		(void)sra_el_text(ctx, m, "Name", info.model[0] ? info.model : "replun file array");
		(void)sra_el_text(ctx, m, "Vendor", info.vendor[0] ? info.vendor : "replun");
		sw = sra_el(ctx, arr, "ReplicationSoftware");
		(void)sra_el_text(ctx, sw, "Name", "replun");
		(void)sra_el_text(ctx, sw, "Version", rp_version());
		peers = sra_el(ctx, arr, "PeerArrays");
		for (k = 0; k < info.n_peers; k++) {
			sra_set_attr(sra_el(ctx, peers, "PeerArray"), "id", info.peers[k].array_id);
			sra_log(RP_LOG_VERBOSE, "array [%s] (%s, %s, %s) replicates with peer [%s]",
			        info.id, info.name, info.model, info.uri, info.peers[k].array_id);
		}
	}
	/* Warnings must follow Arrays: move the container to the end. */
	if (warnings) {
		xmlUnlinkNode(warnings);
		(void)xmlAddChild(ctx->resp_root, warnings);
	}
	sra_log(RP_LOG_INFO, "Complete: discovery of arrays: %zu array(s) opened", n_ok);
	return 0;
}

/* ---- discoverDevices ---- */

static int cmp_dev_group(const void *x, const void *y)
{
	const struct rp_device *a = *(const struct rp_device *const *)x;
	const struct rp_device *b = *(const struct rp_device *const *)y;
	int c = strcmp(a->group, b->group);

	return c ? c : strcmp(a->id, b->id);
}

static int cmp_group(const void *x, const void *y)
{
	return strcmp(((const struct rp_group *)x)->id, ((const struct rp_group *)y)->id);
}

static void put_identity(struct sra_ctx *ctx, xmlNodePtr parent, const char *wwn)
{
	char buf[RP_WWN_MAX * 2];

	if (!wwn || !*wwn)
		return;
	sra_wwn_format(buf, sizeof(buf), wwn);
	(void)sra_el_text(ctx, sra_el(ctx, parent, "Identity"), "Wwn", buf);
}

static void put_recovery_point(struct sra_ctx *ctx, xmlNodePtr parent, const char *id, int64_t ms)
{
	xmlNodePtr rp = sra_el(ctx, parent, "RecoveryPoint");
	char ts[RP_TIME_MAX];

	sra_set_attr(rp, "id", id && *id ? id : "latest");
	rp_time_format(ts, ms > 0 ? ms : rp_now_ms());
	(void)sra_el_text(ctx, rp, "Time", ts);
}

static bool dev_is_source(const struct rp_device *d)
{
	return d->state == RP_DEV_SOURCE || d->state == RP_DEV_DEMOTED_SOURCE;
}

static void put_source_device(struct sra_ctx *ctx, xmlNodePtr parent, const struct rp_device *d)
{
	xmlNodePtr n = sra_el(ctx, parent, "SourceDevice");

	sra_set_attr(n, "id", d->id);
	sra_set_attr(n, "state", d->state == RP_DEV_SOURCE ? "read-write" : "read-only");
	if (d->name[0])
		(void)sra_el_text(ctx, n, "Name", d->name);
	sra_set_attr(sra_el(ctx, n, "TargetDevice"), "key", d->peer_device);
	/* A demoted source is not visible to any host: no identity (spec). */
	if (d->state == RP_DEV_SOURCE)
		put_identity(ctx, n, d->wwn);
}

static void put_target_device(struct sra_ctx *ctx, xmlNodePtr parent, const struct rp_device *d,
                              bool in_group)
{
	xmlNodePtr n = sra_el(ctx, parent, "TargetDevice");

	sra_set_attr(n, "key", d->id);
	if (d->state == RP_DEV_PROMOTED_TARGET) {
		sra_set_attr(n, "id", d->id);
		sra_set_attr(n, "state", "read-write");
	}
	if (d->name[0])
		(void)sra_el_text(ctx, n, "Name", d->name);
	if (d->state == RP_DEV_PROMOTED_TARGET)
		put_identity(ctx, n, d->wwn);
	if (!in_group && d->state == RP_DEV_TARGET && d->test_snapshot[0]) {
		xmlNodePtr s = sra_el(ctx, n, "Snapshot");

		sra_set_attr(s, "id", d->test_snapshot);
		put_identity(ctx, s, d->test_snapshot_wwn);
		/* the copy's own point: a sync during the test does not change it */
		put_recovery_point(ctx, s, d->test_recovery_point, d->test_recovery_point_ms);
	}
}

struct disco {
	xmlNodePtr cgs, tgs, srcs, tgts;
	size_t n_groups, n_devices, n_excluded;
};

static xmlNodePtr lazy(struct sra_ctx *ctx, xmlNodePtr *slot, xmlNodePtr parent, const char *name)
{
	if (!*slot)
		*slot = sra_el(ctx, parent, name);
	return *slot;
}

static void put_group(struct sra_ctx *ctx, xmlNodePtr rd, struct disco *dc,
                      const struct rp_group *g, struct rp_device **devs, size_t n)
{
	xmlNodePtr gn, list;
	size_t i;

	if (g->role == RP_GROUP_SOURCE || g->role == RP_GROUP_DEMOTED_SOURCE) {
		gn = sra_el(ctx, lazy(ctx, &dc->cgs, rd, "ConsistencyGroups"), "ConsistencyGroup");
		sra_set_attr(gn, "id", g->id);
		sra_set_attr(gn, "state", g->role == RP_GROUP_SOURCE ? "read-write" : "read-only");
		if (g->name[0])
			(void)sra_el_text(ctx, gn, "Name", g->name);
		sra_set_attr(sra_el(ctx, gn, "TargetGroup"), "key", g->id);
		list = sra_el(ctx, gn, "SourceDevices");
		for (i = 0; i < n; i++)
			put_source_device(ctx, list, devs[i]);
	} else {
		gn = sra_el(ctx, lazy(ctx, &dc->tgs, rd, "TargetGroups"), "TargetGroup");
		sra_set_attr(gn, "key", g->id);
		if (g->role == RP_GROUP_PROMOTED_TARGET) {
			sra_set_attr(gn, "id", g->id);
			sra_set_attr(gn, "state", "read-write");
		}
		if (g->name[0])
			(void)sra_el_text(ctx, gn, "Name", g->name);
		list = sra_el(ctx, gn, "TargetDevices");
		for (i = 0; i < n; i++)
			put_target_device(ctx, list, devs[i], true);
		if (g->role == RP_GROUP_TARGET && g->test_snapshot[0]) {
			xmlNodePtr s = sra_el(ctx, gn, "Snapshot");
			xmlNodePtr sl = sra_el(ctx, s, "TargetDevices");

			sra_set_attr(s, "id", g->test_snapshot);
			for (i = 0; i < n; i++) {
				xmlNodePtr td = sra_el(ctx, sl, "TargetDevice");
				xmlNodePtr ds = sra_el(ctx, td, "Snapshot");

				sra_set_attr(td, "key", devs[i]->id);
				sra_set_attr(ds, "id", devs[i]->test_snapshot);
				put_identity(ctx, ds, devs[i]->test_snapshot_wwn);
			}
			put_recovery_point(ctx, s, g->test_recovery_point,
			                   g->test_recovery_point_ms);
		}
	}
	dc->n_groups++;
	dc->n_devices += n;
	sra_log(RP_LOG_VERBOSE, "group [%s] \"%s\" role [%s] with %zu device(s)%s%s", g->id,
	        g->name, rp_group_role_name(g->role), n, g->test_snapshot[0] ? ", test copy " : "",
	        g->test_snapshot);
}

/* Keeps the devices of the pair and of the filter; logs why the others are left out. */
static bool dev_reported(struct sra_ctx *ctx, struct disco *dc, const struct rp_device *d,
                         const char *peer)
{
	if (d->state == RP_DEV_LOCAL) {
		sra_log(RP_LOG_TRIVIA, "device [%s] \"%s\" excluded: not replicated", d->id,
		        d->name);
		dc->n_excluded++;
		return false;
	}
	if (strcmp(d->peer_array, peer) != 0) {
		sra_log(RP_LOG_VERBOSE,
		        "device [%s] \"%s\" excluded: replicates with array [%s], "
		        "not [%s]",
		        d->id, d->name, d->peer_array, peer);
		dc->n_excluded++;
		return false;
	}
	if (d->target_pending) {
		/* a source without its target yet: nothing SRM could fail over until the next
		 * sync makes it (then it is reported with its key) */
		sra_log(RP_LOG_VERBOSE,
		        "device [%s] \"%s\" excluded: its replication target on array [%s] is "
		        "made by the next sync",
		        d->id, d->name, d->peer_array);
		dc->n_excluded++;
		return false;
	}
	if (!name_ok(ctx, d->name)) {
		sra_log(RP_LOG_VERBOSE,
		        "device [%s] \"%s\" excluded: name does not start with "
		        "volumeNameFilter '%s'",
		        d->id, d->name, ctx->conn.name_filter);
		dc->n_excluded++;
		return false;
	}
	return true;
}

int sra_cmd_discover_devices(struct sra_ctx *ctx)
{
	xmlNodePtr p = sra_child(ctx->cmd, "DiscoverDevicesParameters");
	char *array_id = sra_child_text(p, "ArrayId");
	char *peer = sra_child_text(p, "PeerArrayId");
	struct rp_error err = { 0 };
	struct rp_array *a = NULL;
	struct rp_device *devs = NULL, **idx = NULL;
	struct rp_group *groups = NULL;
	size_t n_devs = 0, n_groups = 0, i, j, kept = 0, first;
	struct disco dc = { 0 };
	xmlNodePtr rd;
	int64_t t0 = rp_now_ms();

	if (!p) {
		sra_fail(ctx, SRA_E_MISSING, "DiscoverDevicesParameters", NULL,
		         "the request has no <DiscoverDevicesParameters>");
		goto out;
	}
	if (!peer || rp_id_check(peer, "peer array id", &err) < 0) {
		sra_fail(ctx, peer ? SRA_E_BAD_ID : SRA_E_MISSING, peer ? peer : "PeerArrayId",
		         array_id, peer ? err.msg : "the request has no <PeerArrayId>");
		goto out;
	}
	if (sra_open_array(&a, ctx, array_id) < 0)
		goto out;
	sra_log(RP_LOG_INFO,
	        "Commence: discovery of devices on array [%s] replicated with peer array [%s], "
	        "volumeNameFilter %s%s%s",
	        array_id, peer, ctx->conn.name_filter ? "'" : "",
	        ctx->conn.name_filter ? ctx->conn.name_filter : "not set",
	        ctx->conn.name_filter ? "'" : "");
	if (rp_lun_list(&devs, &n_devs, a, NULL, &err) < 0 ||
	    rp_group_list(&groups, &n_groups, a, &err) < 0) {
		sra_fail_rp(ctx, &err, array_id, array_id);
		goto out;
	}
	idx = rp_calloc(n_devs ? n_devs : 1, sizeof(*idx));
	if (!idx) {
		sra_fail(ctx, SRA_E_FAILED, array_id, array_id, "out of memory");
		goto out;
	}
	for (i = 0; i < n_devs; i++)
		if (dev_reported(ctx, &dc, &devs[i], peer))
			idx[kept++] = &devs[i];
	qsort(idx, kept, sizeof(*idx), cmp_dev_group);
	qsort(groups, n_groups, sizeof(*groups), cmp_group);
	rd = sra_el(ctx, ctx->resp_root, "ReplicatedDevices");
	/* Containers must appear in schema order: create them up front, drop the empty ones. */
	dc.cgs = sra_el(ctx, rd, "ConsistencyGroups");
	dc.tgs = sra_el(ctx, rd, "TargetGroups");
	/* Standalone devices sort first (empty group id), the groups' members after them. */
	for (first = 0; first < kept && !idx[first]->group[0]; first++)
		;
	for (i = first; i < kept; i = j) {
		struct rp_group key, *g;

		for (j = i; j < kept && strcmp(idx[j]->group, idx[i]->group) == 0; j++)
			;
		memset(&key, 0, sizeof(key));
		(void)rp_strlcpy(key.id, idx[i]->group, sizeof(key.id));
		g = bsearch(&key, groups, n_groups, sizeof(*groups), cmp_group);
		if (!g) {
			sra_log(RP_LOG_WARNING, "group [%s] of device [%s] is unknown: excluded",
			        idx[i]->group, idx[i]->id);
			continue;
		}
		if (g->role == RP_GROUP_LOCAL || strcmp(g->peer_array, peer) != 0) {
			sra_log(RP_LOG_VERBOSE, "group [%s] excluded: role [%s], peer [%s]", g->id,
			        rp_group_role_name(g->role), g->peer_array);
			continue;
		}
		put_group(ctx, rd, &dc, g, idx + i, j - i);
	}
	for (i = 0; i < first; i++) {
		if (dev_is_source(idx[i]))
			put_source_device(ctx, lazy(ctx, &dc.srcs, rd, "SourceDevices"), idx[i]);
		dc.n_devices++;
	}
	for (i = 0; i < first; i++)
		if (!dev_is_source(idx[i]))
			put_target_device(ctx, lazy(ctx, &dc.tgts, rd, "TargetDevices"), idx[i],
			                  false);
	if (!dc.cgs->children) {
		xmlUnlinkNode(dc.cgs);
		xmlFreeNode(dc.cgs);
	}
	if (!dc.tgs->children) {
		xmlUnlinkNode(dc.tgs);
		xmlFreeNode(dc.tgs);
	}
	sra_log(RP_LOG_INFO,
	        "Complete: discovery of devices on array [%s] with peer [%s] is COMPLETE: %zu "
	        "group(s), %zu device(s) reported, %zu excluded, %lld ms",
	        array_id, peer, dc.n_groups, dc.n_devices, dc.n_excluded,
	        (long long)(rp_now_ms() - t0));
out:
	rp_free(idx);
	rp_free(devs);
	rp_free(groups);
	rp_array_close(a);
	rp_free(array_id);
	rp_free(peer);
	return 0;
}

/* ---- queryReplicationSettings ---- */

static void put_settings(struct sra_ctx *ctx, xmlNodePtr parent, const struct rp_group *g)
{
	xmlNodePtr s = sra_el(ctx, parent, "ReplicationSettings");
	char buf[32];

	if (!g)
		return; /* standalone device: the schedule is the caller's (manual) */
	(void)snprintf(buf, sizeof(buf), "%u", g->rpo_seconds);
	(void)xmlNewTextChild(s, ctx->rpns, BAD_CAST "RpoSeconds", BAD_CAST buf);
	(void)snprintf(buf, sizeof(buf), "%u", g->retention);
	(void)xmlNewTextChild(s, ctx->rpns, BAD_CAST "Retention", BAD_CAST buf);
}

static void settings_item(struct sra_ctx *ctx, struct rp_array *a, xmlNodePtr list, const char *el,
                          const char *attr, const char *id, bool group, const char *array_id)
{
	xmlNodePtr n = sra_el(ctx, list, el);
	struct rp_error err = { 0 };
	struct rp_group g;
	struct rp_device d;

	sra_set_attr(n, attr, id);
	if (rp_id_check(id, group ? "group id" : "device id", &err) < 0) {
		sra_put_error(ctx, n, SRA_E_BAD_ID, id, array_id, err.msg);
		return;
	}
	if (group) {
		if (rp_group_get(&g, a, id, &err) < 0) {
			sra_put_error(ctx, n, sra_code_for_error(err.code), id, array_id, err.msg);
			return;
		}
		put_settings(ctx, n, &g);
		sra_log(RP_LOG_VERBOSE, "group [%s]: replication settings rpo %u s, retention %u",
		        id, g.rpo_seconds, g.retention);
		return;
	}
	if (rp_lun_get(&d, a, id, &err) < 0) {
		sra_put_error(ctx, n, sra_code_for_error(err.code), id, array_id, err.msg);
		return;
	}
	if (!name_ok(ctx, d.name)) {
		sra_put_error(ctx, n, SRA_E_FILTERED, id, array_id, ctx->conn.name_filter);
		return;
	}
	if (d.group[0] && rp_group_get(&g, a, d.group, &err) == 0) {
		put_settings(ctx, n, &g);
		sra_log(RP_LOG_VERBOSE,
		        "device [%s]: settings of its group [%s]: rpo %u s, "
		        "retention %u",
		        id, g.id, g.rpo_seconds, g.retention);
	} else {
		put_settings(ctx, n, NULL);
		sra_log(RP_LOG_VERBOSE, "device [%s]: standalone, replicated on demand", id);
	}
}

int sra_cmd_query_replication_settings(struct sra_ctx *ctx)
{
	static const struct {
		const char *container, *el, *attr;
		bool group;
	} kinds[] = {
		{ "ConsistencyGroups", "ConsistencyGroup", "id", true },
		{ "SourceDevices", "SourceDevice", "id", false },
		{ "TargetGroups", "TargetGroup", "key", true },
		{ "TargetDevices", "TargetDevice", "key", false },
	};
	xmlNodePtr p = sra_child(ctx->cmd, "QueryReplicationSettingsParameters");
	char *array_id = sra_child_text(p, "ArrayId");
	struct rp_array *a = NULL;
	xmlNodePtr res;
	size_t k, i;

	if (!p) {
		sra_fail(ctx, SRA_E_MISSING, "QueryReplicationSettingsParameters", NULL,
		         "the request has no parameters");
		goto out;
	}
	if (sra_open_array(&a, ctx, array_id) < 0)
		goto out;
	sra_log(RP_LOG_INFO, "Commence: query of replication settings on array [%s]", array_id);
	res = sra_el(ctx, ctx->resp_root, "ReplicationSettings");
	for (k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
		struct sra_list l;
		xmlNodePtr list;

		if (sra_collect(&l, p, kinds[k].container, kinds[k].el, kinds[k].attr) < 0) {
			sra_list_free(&l);
			sra_fail(ctx, SRA_E_TOO_LARGE, kinds[k].container, array_id,
			         "too many items");
			goto out;
		}
		if (l.n) {
			list = sra_el(ctx, res, kinds[k].container);
			for (i = 0; i < l.n; i++)
				settings_item(ctx, a, list, kinds[k].el, kinds[k].attr, l.ids[i],
				              kinds[k].group, array_id);
		}
		sra_list_free(&l);
	}
	sra_log(RP_LOG_INFO, "Complete: query of replication settings on array [%s]", array_id);
out:
	rp_array_close(a);
	rp_free(array_id);
	return 0;
}

/* ---- queryDeviceDetails ---- */

static void prop(struct sra_ctx *ctx, xmlNodePtr props, const char *name, const char *value)
{
	xmlNodePtr n = sra_el(ctx, props, "CustomProperty");

	sra_set_attr(n, "name", name);
	sra_set_attr(n, "value", value ? value : "");
}

int sra_cmd_query_device_details(struct sra_ctx *ctx)
{
	xmlNodePtr p = sra_child(ctx->cmd, "QueryDeviceDetailsParameters");
	char *array_id = sra_child_text(p, "ArrayId");
	struct rp_array *a = NULL;
	struct sra_list l = { 0 };
	xmlNodePtr list;
	size_t i;

	if (!p) {
		sra_fail(ctx, SRA_E_MISSING, "QueryDeviceDetailsParameters", NULL,
		         "the request has no parameters");
		goto out;
	}
	if (sra_open_array(&a, ctx, array_id) < 0)
		goto out;
	if (sra_collect(&l, p, "Devices", "Device", "id") < 0) {
		sra_fail(ctx, SRA_E_TOO_LARGE, "Devices", array_id, "too many devices");
		goto out;
	}
	sra_log(RP_LOG_INFO, "Commence: details of %zu device(s) on array [%s]", l.n, array_id);
	list = sra_el(ctx, sra_el(ctx, ctx->resp_root, "DeviceDetails"), "Devices");
	for (i = 0; i < l.n; i++) {
		xmlNodePtr n = sra_el(ctx, list, "Device"), props;
		struct rp_error err = { 0 };
		struct rp_device d;
		char buf[RP_TIME_MAX + 32];

		sra_set_attr(n, "id", l.ids[i]);
		if (rp_id_check(l.ids[i], "device id", &err) < 0) {
			sra_put_error(ctx, n, SRA_E_BAD_ID, l.ids[i], array_id, err.msg);
			continue;
		}
		if (rp_lun_get(&d, a, l.ids[i], &err) < 0) {
			sra_put_error(ctx, n, sra_code_for_error(err.code), l.ids[i], array_id,
			              err.msg);
			continue;
		}
		if (!name_ok(ctx, d.name)) {
			sra_put_error(ctx, n, SRA_E_FILTERED, l.ids[i], array_id,
			              ctx->conn.name_filter);
			continue;
		}
		props = sra_el(ctx, n, "CustomProperties");
		prop(ctx, props, "name", d.name);
		prop(ctx, props, "state", rp_dev_state_name(d.state));
		(void)snprintf(buf, sizeof(buf), "%llu", (unsigned long long)d.size);
		prop(ctx, props, "size", buf);
		(void)snprintf(buf, sizeof(buf), "%llu", (unsigned long long)d.allocated);
		prop(ctx, props, "allocated", buf);
		prop(ctx, props, "wwn", d.wwn);
		prop(ctx, props, "group", d.group);
		prop(ctx, props, "peerArray", d.peer_array);
		prop(ctx, props, "peerDevice", d.peer_device);
		prop(ctx, props, "recoveryPoint", d.recovery_point);
		buf[0] = '\0';
		if (d.recovery_point_ms > 0)
			rp_time_format(buf, d.recovery_point_ms);
		prop(ctx, props, "recoveryPointTime", buf);
		sra_log(RP_LOG_VERBOSE, "device [%s] \"%s\": state [%s], size %llu, group [%s]",
		        d.id, d.name, rp_dev_state_name(d.state), (unsigned long long)d.size,
		        d.group);
	}
	sra_log(RP_LOG_INFO, "Complete: details of %zu device(s) on array [%s]", l.n, array_id);
out:
	sra_list_free(&l);
	rp_array_close(a);
	rp_free(array_id);
	return 0;
}

/* ---- queryRecoveryPoints ---- */

static void points_item(struct sra_ctx *ctx, struct rp_array *a, xmlNodePtr list, const char *el,
                        const char *id, bool group, const char *array_id)
{
	xmlNodePtr n = sra_el(ctx, list, el), rps;
	struct rp_error err = { 0 };
	struct rp_recovery_point *pts = NULL;
	struct rp_device d;
	size_t np = 0, i;

	sra_set_attr(n, "key", id);
	if (rp_id_check(id, group ? "group key" : "device key", &err) < 0) {
		sra_put_error(ctx, n, SRA_E_BAD_ID, id, array_id, err.msg);
		return;
	}
	if (!group) {
		if (rp_lun_get(&d, a, id, &err) < 0) {
			sra_put_error(ctx, n, sra_code_for_error(err.code), id, array_id, err.msg);
			return;
		}
		if (!name_ok(ctx, d.name)) {
			sra_put_error(ctx, n, SRA_E_FILTERED, id, array_id, ctx->conn.name_filter);
			return;
		}
	}
	if (rp_recovery_points(&pts, &np, a, group ? id : NULL, group ? NULL : id, &err) < 0) {
		sra_put_error(ctx, n, sra_code_for_error(err.code), id, array_id, err.msg);
		return;
	}
	if (!np) {
		sra_put_error(ctx, n, SRA_E_NO_RECOVERY_POINT, id, array_id,
		              "no replication has completed yet");
		rp_free(pts);
		return;
	}
	rps = sra_el(ctx, n, "RecoveryPoints");
	for (i = 0; i < np; i++) {
		xmlNodePtr rp = sra_el(ctx, rps, "RecoveryPoint");
		char ts[RP_TIME_MAX];

		sra_set_attr(rp, "id", pts[i].id);
		rp_time_format(ts, pts[i].time_ms);
		(void)sra_el_text(ctx, rp, "Time", ts);
	}
	sra_log(RP_LOG_VERBOSE, "%s [%s]: %zu recovery point(s), newest [%s]",
	        group ? "group" : "device", id, np, pts[0].id);
	rp_free(pts);
}

int sra_cmd_query_recovery_points(struct sra_ctx *ctx)
{
	xmlNodePtr p = sra_child(ctx->cmd, "QueryRecoveryPointsParameters");
	char *array_id = sra_child_text(p, "ArrayId");
	struct rp_array *a = NULL;
	struct sra_list lg = { 0 }, ld = { 0 };
	xmlNodePtr res, list;
	size_t i;

	if (!p) {
		sra_fail(ctx, SRA_E_MISSING, "QueryRecoveryPointsParameters", NULL,
		         "the request has no parameters");
		goto out;
	}
	if (sra_open_array(&a, ctx, array_id) < 0)
		goto out;
	if (sra_collect(&lg, p, "TargetGroups", "TargetGroup", "key") < 0 ||
	    sra_collect(&ld, p, "TargetDevices", "TargetDevice", "key") < 0) {
		sra_fail(ctx, SRA_E_TOO_LARGE, "TargetDevices", array_id, "too many items");
		goto out;
	}
	sra_log(RP_LOG_INFO,
	        "Commence: recovery points of %zu group(s) and %zu device(s) on "
	        "array [%s]",
	        lg.n, ld.n, array_id);
	res = sra_el(ctx, ctx->resp_root, "QueryRecoveryPointsResults");
	if (lg.n) {
		list = sra_el(ctx, res, "TargetGroups");
		for (i = 0; i < lg.n; i++)
			points_item(ctx, a, list, "TargetGroup", lg.ids[i], true, array_id);
	}
	if (ld.n) {
		list = sra_el(ctx, res, "TargetDevices");
		for (i = 0; i < ld.n; i++)
			points_item(ctx, a, list, "TargetDevice", ld.ids[i], false, array_id);
	}
	sra_log(RP_LOG_INFO, "Complete: recovery points on array [%s]", array_id);
out:
	sra_list_free(&lg);
	sra_list_free(&ld);
	rp_array_close(a);
	rp_free(array_id);
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * cmd_workflow.c - the per-device commands (checks, test failover, prepare/failover, reverse,
 * restore, syncOnce, querySyncStatus). Each is one libreplun call; this file only turns the
 * request into a struct rp_request and the struct rp_result back into the spec's per-group and
 * per-device Success / Warnings / Error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sra.h"

enum shape {
	SH_SUCCESS,    /* <Success/> */
	SH_TEST_START, /* <Snapshot> with identity and recovery point */
	SH_FAILOVER,   /* key + id + state, identity and recovery point */
};

struct wf {
	const char *cmd, *params, *results;
	const char *gl, *ge, *ga; /* group container, element, id attribute */
	const char *dl, *de, *da; /* device container, element, id attribute */
	rp_workflow_fn fn;
	enum shape shape;
	bool settings;    /* carries <ReplicationSettings> hints to apply */
	const char *what; /* step name for the commence/complete log pair */
};

#define TGT "TargetGroups", "TargetGroup", "key", "TargetDevices", "TargetDevice", "key"
#define SRC "ConsistencyGroups", "ConsistencyGroup", "id", "SourceDevices", "SourceDevice", "id"
#define DEV "ConsistencyGroups", "ConsistencyGroup", "id", "Devices", "Device", "id"

static const struct wf wfs[] = {
	{ "checkTestFailoverStart", "CheckTestFailoverStartParameters",
	  "CheckTestFailoverStartResults", TGT, rp_check_test_failover, SH_SUCCESS, false,
	  "Readiness check for test failover of targets" },
	{ "testFailoverStart", "TestFailoverStartParameters", "TestFailoverStartResults", TGT,
	  rp_test_failover_start, SH_TEST_START, false,
	  "Temporary snapshot copies (replication untouched) of targets" },
	{ "testFailoverStop", "TestFailoverStopParameters", "TestFailoverStopResults", TGT,
	  rp_test_failover_stop, SH_SUCCESS, false,
	  "Masking and destruction of the temporary snapshot copies of targets" },
	{ "checkFailover", "CheckFailoverParameters", "CheckFailoverResults", TGT,
	  rp_check_failover, SH_SUCCESS, false, "Readiness check for failover of targets" },
	{ "prepareFailover", "PrepareFailoverParameters", "PrepareFailoverResults", SRC,
	  rp_prepare_failover, SH_SUCCESS, false,
	  "Pre-failover snapshot and demotion to read-only of source devices" },
	{ "failover", "FailoverParameters", "FailoverResults", TGT, rp_failover, SH_FAILOVER, false,
	  "Suspension of replication, revert snapshot and promotion to read-write of targets" },
	{ "prepareReverseReplication", "PrepareReverseReplicationParameters",
	  "PrepareReverseReplicationResults", DEV, rp_prepare_reverse, SH_SUCCESS, true,
	  "Preparation of the original sources to become replication targets" },
	{ "reverseReplication", "ReverseReplicationParameters", "ReverseReplicationResults", DEV,
	  rp_reverse, SH_SUCCESS, true,
	  "Replication reversal (promoted devices become sources, old sources their targets)" },
	{ "prepareRestoreReplication", "PrepareRestoreReplicationParameters",
	  "PrepareRestoreReplicationResults", DEV, rp_prepare_restore, SH_SUCCESS, true,
	  "Preparation of the promoted targets to be rolled back" },
	{ "restoreReplication", "RestoreReplicationParameters", "RestoreReplicationResults", DEV,
	  rp_restore, SH_SUCCESS, true,
	  "Restore of replication (targets rolled back to the base, sources read-write)" },
};

/* ---- results of several engine calls, looked up by id ---- */

struct results {
	struct rp_result **r;
	size_t n;
};

static const struct rp_item *find_item(const struct results *rs, bool group, const char *id)
{
	const struct rp_item *any = NULL;
	size_t i, k;

	for (i = 0; i < rs->n; i++)
		for (k = 0; k < rs->r[i]->n; k++) {
			const struct rp_item *it = &rs->r[i]->items[k];

			if (it->is_group != group || strcmp(it->id, id) != 0)
				continue;
			if (group || !it->group[0])
				return it;
			if (!any)
				any = it;
		}
	return any;
}

static void results_free(struct results *rs)
{
	size_t i;

	for (i = 0; i < rs->n; i++)
		rp_result_free(rs->r[i]);
	rp_free(rs->r);
	memset(rs, 0, sizeof(*rs));
}

static int results_add(struct results *rs, struct rp_result *r)
{
	struct rp_result **grown = rp_realloc(rs->r, (rs->n + 1) * sizeof(*grown));

	if (!grown)
		return -1;
	rs->r = grown;
	rs->r[rs->n++] = r;
	return 0;
}

/* An item counts as done when the engine says so and the name filter did not skip it. */
static bool item_filtered(const struct rp_item *it)
{
	size_t i;

	for (i = 0; i < it->n_warnings && i < RP_MAX_WARNINGS; i++)
		if (it->warnings[i].code == RP_WARN_FILTERED)
			return true;
	return false;
}

static bool item_ok(const struct rp_item *it)
{
	return it && it->code == 0 && !item_filtered(it);
}

static void put_item_error(struct sra_ctx *ctx, xmlNodePtr n, const struct rp_item *it,
                           const char *array_id)
{
	if (item_filtered(it))
		sra_put_error(ctx, n, SRA_E_FILTERED, it->id, array_id,
		              ctx->conn.name_filter ? ctx->conn.name_filter : "");
	else
		sra_put_error(ctx, n, sra_code_for_error(it->code), it->id, array_id,
		              it->msg[0] ? it->msg : rp_code_name(it->code));
}

static void put_item_warnings(struct sra_ctx *ctx, xmlNodePtr parent, xmlNodePtr *warnings,
                              const struct rp_item *it)
{
	size_t i;

	for (i = 0; i < it->n_warnings && i < RP_MAX_WARNINGS; i++) {
		int code = sra_code_for_warning(it->warnings[i].code);

		if (!code)
			continue;
		if (!*warnings)
			*warnings = sra_el(ctx, parent, "Warnings");
		sra_put_warning(ctx, *warnings, code, it->id, it->warnings[i].msg);
		sra_log(RP_LOG_WARNING, "WARNING: [%s]: %s", it->id, it->warnings[i].msg);
	}
}

static void put_identity(struct sra_ctx *ctx, xmlNodePtr parent, const char *wwn)
{
	char buf[RP_WWN_MAX * 2];

	if (!wwn || !*wwn)
		return;
	sra_wwn_format(buf, sizeof(buf), wwn);
	(void)sra_el_text(ctx, sra_el(ctx, parent, "Identity"), "Wwn", buf);
}

static void put_rp(struct sra_ctx *ctx, xmlNodePtr parent, const struct rp_item *it)
{
	xmlNodePtr rp = sra_el(ctx, parent, "RecoveryPoint");
	char ts[RP_TIME_MAX];

	sra_set_attr(rp, "id", it->recovery_point[0] ? it->recovery_point : "latest");
	rp_time_format(ts, it->recovery_point_ms > 0 ? it->recovery_point_ms : rp_now_ms());
	(void)sra_el_text(ctx, rp, "Time", ts);
}

static void log_item(const struct wf *w, const struct rp_item *it, const char *array_id)
{
	char ts[RP_TIME_MAX] = "";

	if (!item_ok(it)) {
		sra_log(RP_LOG_ERROR, "%s of %s [%s] on array [%s] FAILED: %s: %s", w->cmd,
		        it->is_group ? "group" : "device", it->id, array_id, rp_code_name(it->code),
		        item_filtered(it) ? "excluded by volumeNameFilter" : it->msg);
		return;
	}
	if (it->recovery_point_ms > 0)
		rp_time_format(ts, it->recovery_point_ms);
	sra_log(RP_LOG_VERBOSE,
	        "-> %s [%s]%s%s%s \"%s\" on array [%s]: state [%s]%s%s%s%s%s%s%s%s%s%s%s%s",
	        it->is_group ? "group" : "device", it->id, it->group[0] ? " (group [" : "",
	        it->group, it->group[0] ? "])" : "", it->name, array_id,
	        it->state[0] ? it->state : "unchanged", it->new_id[0] ? ", id [" : "", it->new_id,
	        it->new_id[0] ? "]" : "", it->snapshot[0] ? ", snapshot [" : "", it->snapshot,
	        it->snapshot[0] ? "]" : "", it->recovery_point[0] ? ", recovery point [" : "",
	        it->recovery_point, it->recovery_point[0] ? "] at " : "", ts,
	        it->wwn[0] ? ", wwn " : "", it->wwn);
}

/* ---- replication settings hints (reverse / restore) ---- */

static char *settings_value(xmlNodePtr settings, const char *name)
{
	xmlNodePtr c;

	for (c = settings ? settings->children : NULL; c; c = c->next)
		if (c->type == XML_ELEMENT_NODE && strcmp((const char *)c->name, name) == 0)
			return sra_text(c);
	return NULL;
}

static bool parse_u32(const char *s, uint32_t *out)
{
	char *end = NULL;
	unsigned long v;

	if (!s || !*s || *s == '-')
		return false;
	v = strtoul(s, &end, 10);
	if (*end || v > UINT32_MAX)
		return false;
	*out = (uint32_t)v;
	return true;
}

/* Applies a group's <ReplicationSettings> hint after reverse/restore; warns when it cannot. */
static void apply_settings(struct sra_ctx *ctx, struct rp_array *a, const struct wf *w,
                           xmlNodePtr item_node, xmlNodePtr n, xmlNodePtr *warnings,
                           const char *gid)
{
	xmlNodePtr s = sra_child(item_node, "ReplicationSettings");
	char *rpo_s, *ret_s;
	uint32_t rpo = 0, ret = 0;
	struct rp_error err = { 0 };
	struct rp_group g;

	if (!s) {
		sra_log(RP_LOG_VERBOSE,
		        "group [%s]: no replication settings passed; the group "
		        "keeps its schedule",
		        gid);
		return;
	}
	rpo_s = settings_value(s, "RpoSeconds");
	ret_s = settings_value(s, "Retention");
	if (!parse_u32(rpo_s, &rpo) || !parse_u32(ret_s, &ret)) {
		if (!*warnings)
			*warnings = sra_el(ctx, n, "Warnings");
		sra_put_warning(ctx, *warnings, SRA_W_SETTINGS, gid,
		                "the replication settings passed are not valid");
		sra_log(RP_LOG_WARNING,
		        "WARNING: group [%s]: replication settings not valid "
		        "(rpo '%s', retention '%s'): replication is not fully set up",
		        gid, rpo_s ? rpo_s : "", ret_s ? ret_s : "");
		goto out;
	}
	if (strncmp(w->cmd, "prepare", 7) == 0) {
		sra_log(RP_LOG_VERBOSE,
		        "group [%s]: replication settings rpo %u s, retention %u "
		        "will be applied by the reverse/restore command",
		        gid, rpo, ret);
		goto out;
	}
	if (rp_group_get(&g, a, gid, &err) == 0 && g.rpo_seconds == rpo && g.retention == ret) {
		sra_log(RP_LOG_VERBOSE,
		        "group [%s]: replication settings rpo %u s, retention %u "
		        "already in place",
		        gid, rpo, ret);
		goto out;
	}
	rp_error_clear(&err);
	if (rp_group_set_policy(a, gid, rpo, ret, &err) < 0) {
		if (!*warnings)
			*warnings = sra_el(ctx, n, "Warnings");
		sra_put_warning(ctx, *warnings, SRA_W_SETTINGS, gid, err.msg);
		sra_log(RP_LOG_WARNING, "WARNING: group [%s]: replication settings not applied: %s",
		        gid, err.msg);
		goto out;
	}
	sra_log(RP_LOG_VERBOSE, "group [%s]: replication settings applied: rpo %u s, retention %u",
	        gid, rpo, ret);
out:
	rp_free(rpo_s);
	rp_free(ret_s);
}

/* ---- one item of the response ---- */

struct wctx {
	struct sra_ctx *ctx;
	const struct wf *w;
	struct rp_array *a;
	const char *array_id;
	const struct results *rs;
};

static void put_group_result(struct wctx *wc, xmlNodePtr list, const char *id, xmlNodePtr req,
                             const char *pre_error, int pre_code)
{
	struct sra_ctx *ctx = wc->ctx;
	const struct wf *w = wc->w;
	xmlNodePtr n = sra_el(ctx, list, w->ge), warnings = NULL, body;
	const struct rp_item *it = pre_error ? NULL : find_item(wc->rs, true, id);
	const struct rp_item *bad = NULL;
	size_t i, k;

	sra_set_attr(n, w->ga, id);
	if (pre_error) {
		sra_put_error(ctx, n, pre_code, id, wc->array_id, pre_error);
		sra_log(RP_LOG_ERROR, "%s of group [%s] FAILED: %s", w->cmd, id, pre_error);
		return;
	}
	if (!it) {
		sra_put_error(ctx, n, SRA_E_FAILED, id, wc->array_id, "no result from the engine");
		return;
	}
	log_item(w, it, wc->array_id);
	/* A group succeeds only if every member did: one group, one outcome. */
	for (i = 0; i < wc->rs->n && item_ok(it) && !bad; i++)
		for (k = 0; k < wc->rs->r[i]->n; k++) {
			const struct rp_item *d = &wc->rs->r[i]->items[k];

			if (!d->is_group && strcmp(d->group, id) == 0) {
				log_item(w, d, wc->array_id);
				if (!item_ok(d) && !bad)
					bad = d;
			}
		}
	if (!item_ok(it)) {
		put_item_error(ctx, n, it, wc->array_id);
		return;
	}
	if (bad) {
		put_item_error(ctx, n, bad, wc->array_id);
		return;
	}
	switch (w->shape) {
	case SH_SUCCESS:
		(void)sra_el(ctx, n, "Success");
		break;
	case SH_TEST_START:
		body = sra_el(ctx, n, "Snapshot");
		sra_set_attr(body, "id", it->snapshot[0] ? it->snapshot : id);
		put_rp(ctx, body, it);
		body = sra_el(ctx, body, "TargetDevices");
		for (i = 0; i < wc->rs->n; i++)
			for (k = 0; k < wc->rs->r[i]->n; k++) {
				const struct rp_item *d = &wc->rs->r[i]->items[k];
				xmlNodePtr td, s;

				if (d->is_group || strcmp(d->group, id) != 0)
					continue;
				td = sra_el(ctx, body, "TargetDevice");
				sra_set_attr(td, "key", d->id);
				s = sra_el(ctx, td, "Snapshot");
				sra_set_attr(s, "id", d->snapshot);
				put_identity(ctx, s, d->snapshot_wwn);
			}
		break;
	case SH_FAILOVER:
		sra_set_attr(n, "id", it->new_id[0] ? it->new_id : id);
		sra_set_attr(n, "state", "read-write");
		put_rp(ctx, n, it);
		body = sra_el(ctx, n, "TargetDevices");
		for (i = 0; i < wc->rs->n; i++)
			for (k = 0; k < wc->rs->r[i]->n; k++) {
				const struct rp_item *d = &wc->rs->r[i]->items[k];
				xmlNodePtr td;

				if (d->is_group || strcmp(d->group, id) != 0)
					continue;
				td = sra_el(ctx, body, "TargetDevice");
				sra_set_attr(td, "key", d->id);
				sra_set_attr(td, "id", d->new_id[0] ? d->new_id : d->id);
				sra_set_attr(td, "state", "read-write");
				put_identity(ctx, td, d->wwn);
			}
		break;
	}
	put_item_warnings(ctx, n, &warnings, it);
	for (i = 0; i < wc->rs->n; i++)
		for (k = 0; k < wc->rs->r[i]->n; k++) {
			const struct rp_item *d = &wc->rs->r[i]->items[k];

			if (!d->is_group && strcmp(d->group, id) == 0)
				put_item_warnings(ctx, n, &warnings, d);
		}
	if (w->settings)
		apply_settings(ctx, wc->a, w, req, n, &warnings, id);
}

static void put_device_result(struct wctx *wc, xmlNodePtr list, const char *id,
                              const char *pre_error, int pre_code)
{
	struct sra_ctx *ctx = wc->ctx;
	const struct wf *w = wc->w;
	xmlNodePtr n = sra_el(ctx, list, w->de), warnings = NULL, s;
	const struct rp_item *it = pre_error ? NULL : find_item(wc->rs, false, id);

	sra_set_attr(n, w->da, id);
	if (pre_error) {
		sra_put_error(ctx, n, pre_code, id, wc->array_id, pre_error);
		sra_log(RP_LOG_ERROR, "%s of device [%s] FAILED: %s", w->cmd, id, pre_error);
		return;
	}
	if (!it) {
		sra_put_error(ctx, n, SRA_E_FAILED, id, wc->array_id, "no result from the engine");
		return;
	}
	log_item(w, it, wc->array_id);
	if (!item_ok(it)) {
		put_item_error(ctx, n, it, wc->array_id);
		return;
	}
	switch (w->shape) {
	case SH_SUCCESS:
		(void)sra_el(ctx, n, "Success");
		break;
	case SH_TEST_START:
		s = sra_el(ctx, n, "Snapshot");
		sra_set_attr(s, "id", it->snapshot);
		put_identity(ctx, s, it->snapshot_wwn);
		put_rp(ctx, s, it);
		break;
	case SH_FAILOVER:
		sra_set_attr(n, "id", it->new_id[0] ? it->new_id : id);
		sra_set_attr(n, "state", "read-write");
		put_identity(ctx, n, it->wwn);
		put_rp(ctx, n, it);
		break;
	}
	put_item_warnings(ctx, n, &warnings, it);
}

/* ---- request side ---- */

struct item_in {
	const char *id;
	xmlNodePtr node;
	const char *pre_error; /* answered without asking the engine */
	int pre_code;
	char msg[RP_MSG_MAX];
	char *rp; /* recovery point requested (RecoveryPoint id), NULL = the latest */
};

static void check_ids(struct item_in *in, size_t n, const char *what)
{
	size_t i;

	for (i = 0; i < n; i++) {
		struct rp_error err = { 0 };

		if (rp_id_check(in[i].id, what, &err) < 0) {
			(void)rp_strlcpy(in[i].msg, err.msg, sizeof(in[i].msg));
			in[i].pre_error = in[i].msg;
			in[i].pre_code = SRA_E_BAD_ID;
		}
	}
}

/*
 * The RecoveryPoint an item names (testFailoverStart, failover): "latest" or none = the latest;
 * another id is passed to the engine, after checking here that the array holds it (so that an
 * unknown or expired point is answered with the recovery point error, not "not found").
 */
static void check_recovery_point(struct rp_array *a, const char *array_id, struct item_in *in,
                                 bool group)
{
	xmlNodePtr rpn = sra_child(in->node, "RecoveryPoint");
	struct rp_recovery_point *pts = NULL;
	struct rp_error err = { 0 };
	size_t n = 0, i;
	char *want;

	if (in->pre_error || !rpn)
		return;
	want = sra_attr_get(rpn, "id");
	if (!want || !*want || strcmp(want, "latest") == 0) {
		rp_free(want);
		return;
	}
	in->rp = want;
	if (rp_id_check(want, "recovery point id", &err) < 0) {
		(void)rp_strlcpy(in->msg, err.msg, sizeof(in->msg));
		in->pre_error = in->msg;
		in->pre_code = SRA_E_BAD_ID;
		return;
	}
	/* an unknown group or device is the engine's to answer */
	if (rp_recovery_points(&pts, &n, a, group ? in->id : NULL, group ? NULL : in->id, &err) < 0)
		return;
	for (i = 0; i < n; i++)
		if (strcmp(pts[i].id, want) == 0)
			break;
	if (i == n) {
		(void)snprintf(
		        in->msg, sizeof(in->msg),
		        "recovery point '%s' is not held on array '%s' (unknown, or expired by"
		        " the retention policy; queryRecoveryPoints lists %zu point(s))",
		        want, array_id ? array_id : "", n);
		in->pre_error = in->msg;
		in->pre_code = SRA_E_NO_RECOVERY_POINT;
	}
	rp_free(pts);
}

static void log_objects(const char *prefix, const struct wf *w, const struct item_in *gi, size_t ng,
                        const struct item_in *di, size_t nd, const char *array_id)
{
	size_t i, len = 0, cap = 64;
	char *buf = rp_malloc(cap);

	if (!buf)
		return;
	buf[0] = '\0';
	for (i = 0; i < ng + nd; i++) {
		const char *id = i < ng ? gi[i].id : di[i - ng].id;
		size_t need = strlen(id) + 4;

		if (len + need + 1 > cap) {
			char *grown;

			while (len + need + 1 > cap)
				cap *= 2;
			grown = rp_realloc(buf, cap);
			if (!grown)
				break;
			buf = grown;
		}
		len += (size_t)snprintf(buf + len, cap - len, "%s%s", i ? ", " : "", id);
	}
	sra_log(RP_LOG_INFO, "%s: %s [%s] on array [%s] for %s request", prefix, w->what, buf,
	        array_id, w->cmd);
	rp_free(buf);
}

int sra_cmd_workflow(struct sra_ctx *ctx)
{
	const struct wf *w = NULL;
	xmlNodePtr p;
	char *array_id = NULL, *peer = NULL;
	struct rp_array *a = NULL;
	struct sra_list lg = { 0 }, ld = { 0 };
	struct item_in *gi = NULL, *di = NULL;
	const char **ids = NULL, **rps = NULL;
	struct results rs = { 0 };
	struct rp_error err = { 0 }, first_err = { 0 };
	size_t i, n_valid = 0, chunk, done, n_calls_failed = 0, n_calls = 0;
	xmlNodePtr res, list;
	struct wctx wc;
	int64_t t0 = rp_now_ms();

	for (i = 0; i < sizeof(wfs) / sizeof(wfs[0]); i++)
		if (strcmp(wfs[i].cmd, ctx->name) == 0)
			w = &wfs[i];
	if (!w) {
		sra_fail(ctx, SRA_E_NOT_SUPPORTED_CMD, ctx->name, NULL, "command not supported");
		return 0;
	}
	p = sra_child(ctx->cmd, w->params);
	if (!p) {
		sra_fail(ctx, SRA_E_MISSING, w->params, NULL, "the request has no parameters");
		return 0;
	}
	array_id = sra_child_text(p, "ArrayId");
	peer = sra_child_text(p, "PeerArrayId");
	if (peer && rp_id_check(peer, "peer array id", &err) < 0) {
		sra_fail(ctx, SRA_E_BAD_ID, peer, array_id, err.msg);
		goto out;
	}
	if (sra_open_array(&a, ctx, array_id) < 0)
		goto out;
	if (sra_collect(&lg, p, w->gl, w->ge, w->ga) < 0 ||
	    sra_collect(&ld, p, w->dl, w->de, w->da) < 0) {
		sra_fail(ctx, SRA_E_TOO_LARGE, w->params, array_id, "too many groups or devices");
		goto out;
	}
	gi = rp_calloc(lg.n + 1, sizeof(*gi));
	di = rp_calloc(ld.n + 1, sizeof(*di));
	ids = rp_calloc(lg.n + ld.n + 1, sizeof(*ids));
	rps = rp_calloc(lg.n + ld.n + 1, sizeof(*rps));
	if (!gi || !di || !ids || !rps) {
		sra_fail(ctx, SRA_E_FAILED, w->cmd, array_id, "out of memory");
		goto out;
	}
	for (i = 0; i < lg.n; i++) {
		gi[i].id = lg.ids[i];
		gi[i].node = lg.nodes[i];
	}
	for (i = 0; i < ld.n; i++) {
		di[i].id = ld.ids[i];
		di[i].node = ld.nodes[i];
	}
	check_ids(gi, lg.n, "group id");
	check_ids(di, ld.n, "device id");
	if (w->shape != SH_SUCCESS) {
		for (i = 0; i < lg.n; i++)
			check_recovery_point(a, array_id, &gi[i], true);
		for (i = 0; i < ld.n; i++)
			check_recovery_point(a, array_id, &di[i], false);
	}
	log_objects("Commence", w, gi, lg.n, di, ld.n, array_id);
	if (ctx->conn.name_filter)
		sra_log(RP_LOG_VERBOSE, "volumeNameFilter '%s' applies", ctx->conn.name_filter);
	sra_progress(ctx, 0);

	/* Groups first, then devices. */
	for (i = 0; i < lg.n; i++)
		if (!gi[i].pre_error) {
			rps[n_valid] = gi[i].rp;
			ids[n_valid++] = gi[i].id;
		}
	{
		size_t n_groups = n_valid;

		for (i = 0; i < ld.n; i++)
			if (!di[i].pre_error) {
				rps[n_valid] = di[i].rp;
				ids[n_valid++] = di[i].id;
			}
		/*
		 * A device may also be a member of a requested group: the engine answers it once,
		 * inside its group, only when both are in the same call. So a request naming groups
		 * and devices is one call; otherwise up to ten calls report progress.
		 */
		chunk = (n_groups && n_valid > n_groups) ? n_valid : n_valid / 10 + 1;
		for (done = 0; done < n_valid; done += chunk) {
			size_t end = done + chunk < n_valid ? done + chunk : n_valid;
			struct rp_request req = { 0 };
			struct rp_result *r = NULL;

			req.groups = ids + done;
			req.n_groups =
			        done < n_groups ? (end < n_groups ? end : n_groups) - done : 0;
			req.devices = ids + (done > n_groups ? done : n_groups);
			req.n_devices =
			        end > n_groups ? end - (done > n_groups ? done : n_groups) : 0;
			req.group_recovery_points = rps + done;
			req.device_recovery_points = rps + (done > n_groups ? done : n_groups);
			req.name_filter = ctx->conn.name_filter;
			req.peer = peer;
			rp_error_clear(&err);
			n_calls++;
			if (w->fn(&r, a, &req, &err) < 0) {
				size_t k;

				n_calls_failed++;
				if (!first_err.code)
					first_err = err;
				sra_log(RP_LOG_ERROR, "%s: engine call failed: %s", w->cmd,
				        err.msg);
				/* Answer the items of this call with its error. */
				for (k = done; k < end; k++) {
					struct item_in *in = NULL;
					size_t m;

					for (m = 0; m < lg.n && !in; m++)
						if (gi[m].id == ids[k])
							in = &gi[m];
					for (m = 0; m < ld.n && !in; m++)
						if (di[m].id == ids[k])
							in = &di[m];
					if (in) {
						(void)rp_strlcpy(in->msg, err.msg, sizeof(in->msg));
						in->pre_error = in->msg;
						in->pre_code = sra_code_for_error(err.code);
					}
				}
				continue;
			}
			if (results_add(&rs, r) < 0) {
				rp_result_free(r);
				sra_fail(ctx, SRA_E_FAILED, w->cmd, array_id, "out of memory");
				goto out;
			}
			sra_progress(ctx, (int)(end * 100 / n_valid));
		}
	}
	if (n_calls && n_calls == n_calls_failed && lg.n + ld.n == n_valid) {
		/* Nothing could be answered. */
		sra_fail_rp(ctx, &first_err, array_id, array_id);
		goto out;
	}

	res = sra_el(ctx, ctx->resp_root, w->results);
	wc.ctx = ctx;
	wc.w = w;
	wc.a = a;
	wc.array_id = array_id;
	wc.rs = &rs;
	if (lg.n) {
		list = sra_el(ctx, res, w->gl);
		for (i = 0; i < lg.n; i++)
			put_group_result(&wc, list, gi[i].id, gi[i].node, gi[i].pre_error,
			                 gi[i].pre_code);
	}
	if (ld.n) {
		list = sra_el(ctx, res, w->dl);
		for (i = 0; i < ld.n; i++)
			put_device_result(&wc, list, di[i].id, di[i].pre_error, di[i].pre_code);
	}
	sra_progress(ctx, 100);
	log_objects("Complete", w, gi, lg.n, di, ld.n, array_id);
	sra_log(RP_LOG_INFO, "%s is now COMPLETE for %zu group(s) and %zu device(s) in %lld ms",
	        w->cmd, lg.n, ld.n, (long long)(rp_now_ms() - t0));
out:
	results_free(&rs);
	rp_free(ids);
	rp_free(rps);
	for (i = 0; gi && i < lg.n; i++)
		rp_free(gi[i].rp);
	for (i = 0; di && i < ld.n; i++)
		rp_free(di[i].rp);
	rp_free(gi);
	rp_free(di);
	sra_list_free(&lg);
	sra_list_free(&ld);
	rp_array_close(a);
	rp_free(array_id);
	rp_free(peer);
	return 0;
}

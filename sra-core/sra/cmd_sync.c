/* SPDX-License-Identifier: MIT */
/*
 * cmd_sync.c - syncOnce (starts one session per group/device and returns at once; a running
 * session is reported with warning 500) and querySyncStatus (progress and remaining time).
 * A session whose group snapshot could not pause the writers carries warning 2005 in both.
 * Both accept source-side (ConsistencyGroups/SourceDevices) and target-side
 * (TargetGroups/TargetDevices) requests.
 */
#include <stdio.h>
#include <string.h>

#include "sra.h"

static const struct kind {
	const char *container, *el, *attr;
	bool group;
} kinds[] = {
	{ "ConsistencyGroups", "ConsistencyGroup", "id", true },
	{ "SourceDevices", "SourceDevice", "id", false },
	{ "TargetGroups", "TargetGroup", "key", true },
	{ "TargetDevices", "TargetDevice", "key", false },
};
#define N_KINDS (sizeof(kinds) / sizeof(kinds[0]))

static void put_session(struct sra_ctx *ctx, xmlNodePtr n, const struct rp_sync_session *s)
{
	xmlNodePtr ds = sra_el(ctx, n, "DeviceSync");
	char buf[32];

	sra_set_attr(ds, "id", s->id);
	sra_set_attr(ds, "status", rp_sync_status_name(s->status));
	(void)snprintf(buf, sizeof(buf), "%d",
	               s->status == RP_SYNC_COMPLETE ? 100
	               : s->progress < 0             ? 0
	                                             : s->progress);
	(void)sra_el_text(ctx, ds, "Progress", buf);
	if (s->status == RP_SYNC_IN_PROGRESS && s->eta_seconds >= 0) {
		(void)snprintf(buf, sizeof(buf), "%lld", (long long)s->eta_seconds);
		(void)sra_el_text(ctx, ds, "RemainingTimeEstimate", buf);
	}
}

/*
 * The session's own warning (its recovery point is not write-order consistent: the worker could
 * not pause the group's writers) under @n's <Warnings>, unless @it (the syncOnce item, may be
 * NULL) already reported a warning with that code.
 */
static void put_session_warning(struct sra_ctx *ctx, xmlNodePtr n, const char *id,
                                const struct rp_sync_session *s, const struct rp_item *it)
{
	xmlNodePtr w;
	size_t m;
	int code;

	if (!s->warning_code)
		return;
	for (m = 0; it && m < it->n_warnings && m < RP_MAX_WARNINGS; m++)
		if (it->warnings[m].code == s->warning_code)
			return;
	code = sra_code_for_warning(s->warning_code);
	if (!code)
		return;
	w = sra_child(n, "Warnings");
	if (!w)
		w = sra_el(ctx, n, "Warnings");
	sra_put_warning(ctx, w, code, id, s->warning);
	sra_log(RP_LOG_WARNING, "WARNING: [%s]: session [%s]: %s", id, s->id, s->warning);
}

static void log_session(const char *what, const char *id, const struct rp_sync_session *s)
{
	char ts[RP_TIME_MAX] = "";

	if (s->recovery_point_ms > 0)
		rp_time_format(ts, s->recovery_point_ms);
	sra_log(RP_LOG_VERBOSE,
	        "-> %s [%s]: session [%s] %s -> %s, method [asynchronous, %s], status [%s], "
	        "progress %d%%, %llu of %llu bytes moved, remaining %lld s, recovery point "
	        "[%s]%s%s",
	        what, id, s->id, s->source_array, s->target_array,
	        s->full ? "full copy" : "incremental", rp_sync_status_name(s->status), s->progress,
	        (unsigned long long)s->bytes_transferred, (unsigned long long)s->bytes_total,
	        (long long)s->eta_seconds, s->recovery_point, ts[0] ? " at " : "", ts);
	if (s->status == RP_SYNC_COMPLETE)
		sra_log(RP_LOG_VERBOSE, "-> replica of [%s] is current as of recovery point [%s]",
		        id, s->recovery_point);
}

static bool name_ok(struct sra_ctx *ctx, struct rp_array *a, const char *id, bool group)
{
	struct rp_device d;

	if (!ctx->conn.name_filter || group)
		return true;
	if (rp_lun_get(&d, a, id, NULL) < 0)
		return true; /* the engine answers "not found" */
	return strncmp(d.name, ctx->conn.name_filter, strlen(ctx->conn.name_filter)) == 0;
}

static int sync_common(struct sra_ctx *ctx, bool start)
{
	const char *params = start ? "SyncOnceParameters" : "QuerySyncStatusParameters";
	xmlNodePtr p = sra_child(ctx->cmd, params), res;
	char *array_id = NULL, *peer = NULL;
	struct rp_array *a = NULL;
	struct sra_list l[N_KINDS];
	struct rp_error err = { 0 };
	size_t k, i, total = 0;

	memset(l, 0, sizeof(l));
	if (!p) {
		sra_fail(ctx, SRA_E_MISSING, params, NULL, "the request has no parameters");
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
	for (k = 0; k < N_KINDS; k++) {
		if (sra_collect(&l[k], p, kinds[k].container, kinds[k].el, kinds[k].attr) < 0) {
			sra_fail(ctx, SRA_E_TOO_LARGE, params, array_id, "too many items");
			goto out;
		}
		total += l[k].n;
	}
	sra_log(RP_LOG_INFO, "Commence: %s for %zu group(s)/device(s) on array [%s] with peer [%s]",
	        start ? "Replica creation (syncOnce)" : "Replication status query", total, array_id,
	        peer ? peer : "default");
	res = sra_el(ctx, ctx->resp_root, start ? "SyncOnceResults" : "QuerySyncStatusResults");
	for (k = 0; k < N_KINDS; k++) {
		xmlNodePtr list;

		if (!l[k].n)
			continue;
		list = sra_el(ctx, res, kinds[k].container);
		for (i = 0; i < l[k].n; i++) {
			const char *id = l[k].ids[i];
			xmlNodePtr n = sra_el(ctx, list, kinds[k].el);
			struct rp_sync_session s;
			char *sync_id = NULL;

			sra_set_attr(n, kinds[k].attr, id);
			rp_error_clear(&err);
			if (rp_id_check(id, kinds[k].group ? "group id" : "device id", &err) < 0) {
				sra_put_error(ctx, n, SRA_E_BAD_ID, id, array_id, err.msg);
				continue;
			}
			if (!name_ok(ctx, a, id, kinds[k].group)) {
				sra_put_error(ctx, n, SRA_E_FILTERED, id, array_id,
				              ctx->conn.name_filter);
				sra_log(RP_LOG_VERBOSE,
				        "device [%s] skipped: volumeNameFilter '%s'", id,
				        ctx->conn.name_filter);
				continue;
			}
			if (start) {
				const char *one[1] = { id };
				struct rp_request req = { 0 };
				struct rp_result *r = NULL;
				const struct rp_item *it = NULL;
				size_t m;

				if (kinds[k].group) {
					req.groups = one;
					req.n_groups = 1;
				} else {
					req.devices = one;
					req.n_devices = 1;
				}
				req.name_filter = ctx->conn.name_filter;
				req.peer = peer;
				if (rp_sync_start(&r, a, &req, NULL, &err) < 0) {
					sra_put_error(ctx, n, sra_code_for_error(err.code), id,
					              array_id, err.msg);
					sra_log(RP_LOG_ERROR, "syncOnce of [%s] FAILED: %s", id,
					        err.msg);
					continue;
				}
				for (m = 0; m < r->n && !it; m++)
					if (r->items[m].is_group == kinds[k].group &&
					    strcmp(r->items[m].id, id) == 0)
						it = &r->items[m];
				if (!it || it->code != 0 || !it->session[0]) {
					sra_put_error(
					        ctx, n,
					        it ? sra_code_for_error(it->code) : SRA_E_FAILED,
					        id, array_id,
					        it && it->msg[0] ? it->msg : "no session started");
					sra_log(RP_LOG_ERROR, "syncOnce of [%s] FAILED: %s", id,
					        it ? it->msg : "no session started");
					rp_result_free(r);
					continue;
				}
				sync_id = rp_strdup(it->session);
				if (rp_sync_get(&s, a, it->session, &err) < 0) {
					sra_put_error(ctx, n, sra_code_for_error(err.code), id,
					              array_id, err.msg);
					rp_result_free(r);
					rp_free(sync_id);
					continue;
				}
				if (s.status == RP_SYNC_FAILED) {
					sra_put_error(ctx, n, SRA_E_SYNC_FAILED, id, array_id,
					              s.error[0] ? s.error : "the session failed");
					log_session(kinds[k].group ? "group" : "device", id, &s);
					rp_result_free(r);
					rp_free(sync_id);
					continue;
				}
				put_session(ctx, n, &s);
				for (m = 0; m < it->n_warnings && m < RP_MAX_WARNINGS; m++) {
					int code = sra_code_for_warning(it->warnings[m].code);
					xmlNodePtr w = sra_child(n, "Warnings");

					if (!code)
						continue;
					if (!w)
						w = sra_el(ctx, n, "Warnings");
					sra_put_warning(ctx, w, code, id, it->warnings[m].msg);
					sra_log(RP_LOG_WARNING,
					        "WARNING: [%s]: %s (session [%s] is monitored "
					        "instead)",
					        id, it->warnings[m].msg, s.id);
				}
				put_session_warning(ctx, n, id, &s, it);
				log_session(kinds[k].group ? "group" : "device", id, &s);
				if (it->snapshot[0])
					sra_log(RP_LOG_VERBOSE,
					        "-> failsafe snapshot [%s] is kept at the "
					        "destination "
					        "until the session completes",
					        it->snapshot);
				rp_result_free(r);
			} else {
				sync_id = sra_attr_get(l[k].nodes[i], "syncId");
				if (sync_id && *sync_id &&
				    rp_id_check(sync_id, "sync session id", &err) < 0) {
					sra_put_error(ctx, n, SRA_E_BAD_ID, sync_id, array_id,
					              err.msg);
					rp_free(sync_id);
					continue;
				}
				if (sync_id && *sync_id)
					(void)rp_sync_get(&s, a, sync_id, &err);
				else
					(void)rp_sync_latest(&s, a, kinds[k].group ? id : NULL,
					                     kinds[k].group ? NULL : id, &err);
				if (err.code) {
					sra_put_error(ctx, n, sra_code_for_error(err.code), id,
					              array_id, err.msg);
					sra_log(RP_LOG_ERROR, "querySyncStatus of [%s] FAILED: %s",
					        id, err.msg);
					rp_free(sync_id);
					continue;
				}
				if (strcmp(kinds[k].group ? s.group : s.device, id) != 0) {
					char msg[RP_MSG_MAX];

					(void)snprintf(msg, sizeof(msg),
					               "session '%s' does not replicate '%s'", s.id,
					               id);
					sra_put_error(ctx, n, SRA_E_NOT_FOUND, id, array_id, msg);
					sra_log(RP_LOG_ERROR, "querySyncStatus: %s", msg);
					rp_free(sync_id);
					continue;
				}
				log_session(kinds[k].group ? "group" : "device", id, &s);
				if (s.status == RP_SYNC_FAILED) {
					sra_put_error(ctx, n, SRA_E_SYNC_FAILED, id, array_id,
					              s.error[0] ? s.error : "the session failed");
				} else {
					put_session(ctx, n, &s);
					put_session_warning(ctx, n, id, &s, NULL);
				}
			}
			rp_free(sync_id);
		}
	}
	sra_log(RP_LOG_INFO, "Complete: %s on array [%s] is COMPLETE",
	        start ? "Replica creation (syncOnce)" : "Replication status query", array_id);
out:
	for (k = 0; k < N_KINDS; k++)
		sra_list_free(&l[k]);
	rp_array_close(a);
	rp_free(array_id);
	rp_free(peer);
	return 0;
}

int sra_cmd_sync_once(struct sra_ctx *ctx)
{
	return sync_common(ctx, true);
}

int sra_cmd_query_sync_status(struct sra_ctx *ctx)
{
	return sync_common(ctx, false);
}

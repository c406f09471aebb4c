/* SPDX-License-Identifier: MIT */
/*
 * schedule.c - the RPO schedule: one pass over the array's source groups, starting a sync for
 * each group whose last session started at least its RPO ago (rp_sync_due). Something periodic
 * (the replun-sync@.timer unit, `replun sync PATH --due`) runs the passes.
 */
#include <string.h>

#include "engine.h"
#include "replun/workflow.h"
#include "schedule.h"

bool schedule_is_due(int64_t now_ms, int64_t last_started_ms, uint32_t rpo_seconds, int64_t *left_s)
{
	int64_t due_ms, left_ms;

	if (left_s)
		*left_s = 0;
	if (last_started_ms <= 0)
		return true;
	due_ms = last_started_ms + (int64_t)rpo_seconds * 1000;
	if (now_ms >= due_ms)
		return true;
	left_ms = due_ms - now_ms;
	if (left_s)
		*left_s = (left_ms + 999) / 1000;
	return false;
}

const char *rp_due_status_name(enum rp_due_status s)
{
	switch (s) {
	case RP_DUE_STARTED:
		return "started";
	case RP_DUE_NOT_DUE:
		return "not-due";
	case RP_DUE_RUNNING:
		return "running";
	case RP_DUE_FAILED:
		return "failed";
	}
	return "unknown";
}

static void schedule_fail(struct rp_sync_due_item *it, int code, const char *msg)
{
	it->status = RP_DUE_FAILED;
	it->code = code ? code : RP_ERROR;
	(void)rp_strlcpy(it->msg, msg && msg[0] ? msg : rp_code_name(it->code), sizeof(it->msg));
}

/* Starts the group's sync; the item says what came of it. */
static void schedule_start(struct rp_sync_due_item *it, struct rp_array *a,
                           const struct rp_sync_opts *opts)
{
	const char *groups[1] = { it->group };
	struct rp_request req;
	struct rp_result *r = NULL;
	struct rp_error e = { 0 };
	size_t i;

	memset(&req, 0, sizeof(req));
	req.groups = groups;
	req.n_groups = 1;
	if (rp_sync_start(&r, a, &req, opts, &e) < 0) {
		schedule_fail(it, e.code, e.msg);
		return;
	}
	for (i = 0; i < r->n; i++) {
		const struct rp_item *x = &r->items[i];
		size_t w;

		if (!x->is_group || strcmp(x->id, it->group) != 0)
			continue;
		if (x->code) {
			schedule_fail(it, x->code, x->msg);
			goto out;
		}
		(void)rp_strlcpy(it->session, x->session, sizeof(it->session));
		it->status = RP_DUE_STARTED;
		/* started by someone else between our look and our start */
		for (w = 0; w < x->n_warnings && w < RP_MAX_WARNINGS; w++)
			if (x->warnings[w].code == RP_WARN_SYNC_RUNNING)
				it->status = RP_DUE_RUNNING;
		goto out;
	}
	schedule_fail(it, RP_ERROR, "the sync start did not answer for the group");
out:
	rp_result_free(r);
}

/* Looks at one source group with an RPO and starts its sync when due. */
static void schedule_group(struct rp_sync_due_item *it, struct rp_array *a,
                           const struct rp_group *g, const struct rp_sync_opts *opts)
{
	struct rp_sync_session s;
	struct rp_error e = { 0 };
	int rc;

	(void)rp_strlcpy(it->group, g->id, sizeof(it->group));
	it->rpo_seconds = g->rpo_seconds;
	rc = rp_sync_latest(&s, a, g->id, NULL, &e);
	if (rc < 0 && rc != RP_ENOTFOUND) {
		schedule_fail(it, e.code, e.msg);
		return;
	}
	if (rc == 0) {
		it->last_started_ms = s.started_ms;
		if (s.status == RP_SYNC_IN_PROGRESS) {
			it->status = RP_DUE_RUNNING;
			(void)rp_strlcpy(it->session, s.id, sizeof(it->session));
			return;
		}
	}
	if (!schedule_is_due(rp_now_ms(), it->last_started_ms, g->rpo_seconds, &it->seconds_left)) {
		it->status = RP_DUE_NOT_DUE;
		return;
	}
	schedule_start(it, a, opts);
}

int rp_sync_due(struct rp_sync_due_item **out, size_t *n, struct rp_array *a,
                const struct rp_sync_opts *opts, struct rp_error *err)
{
	struct rp_group *groups = NULL;
	struct rp_sync_due_item *items = NULL;
	size_t ng = 0, i, k = 0;
	int rc;

	if (!out || !n || !a)
		return rp_error_set(err, RP_EINVAL, "rp_sync_due: missing argument");
	*out = NULL;
	*n = 0;
	rc = rp_group_list(&groups, &ng, a, err);
	if (rc < 0)
		return rc;
	items = rp_calloc(ng ? ng : 1, sizeof(*items));
	if (!items) {
		rc = rp_error_set(err, RP_ERROR, "out of memory");
		goto out;
	}
	for (i = 0; i < ng; i++) {
		if (groups[i].role != RP_GROUP_SOURCE || groups[i].rpo_seconds == 0)
			continue;
		schedule_group(&items[k++], a, &groups[i], opts);
	}
	*out = items;
	*n = k;
	items = NULL;
	rc = 0;
out:
	rp_free(items);
	rp_free(groups);
	return rc;
}

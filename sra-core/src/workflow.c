/* SPDX-License-Identifier: MIT */
/*
 * workflow.c - the replication workflows (checks, test failover, prepare failover, failover,
 * prepare/reverse, prepare/restore) over one runner that answers per group and per device,
 * keeps going after a failing item, locks each group (and its peer's, when both arrays change)
 * and turns repeats into RP_WARN_ALREADY_DONE. Contract: docs/internals/workflows.md.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fence.h"
#include "lock.h"
#include "model.h"
#include "recovery.h"
#include "sync.h"

/* ------------------------------------------------------------------------------------------ */
/* Results                                                                                     */

void rp_result_free(struct rp_result *r)
{
	if (!r)
		return;
	rp_free(r->items);
	rp_free(r);
}

int workflow_result_add(struct rp_result *res, size_t *cap, struct rp_item **out)
{
	struct rp_item *tmp;

	if (res->n == *cap) {
		size_t nc = *cap ? *cap * 2 : 8;

		tmp = rp_realloc(res->items, nc * sizeof(*tmp));
		if (!tmp)
			return RP_ERROR;
		res->items = tmp;
		*cap = nc;
	}
	memset(&res->items[res->n], 0, sizeof(res->items[res->n]));
	*out = &res->items[res->n++];
	return 0;
}

void workflow_item_warn(struct rp_item *it, int code, const char *fmt, ...)
{
	va_list ap;

	if (it->n_warnings >= RP_MAX_WARNINGS)
		return;
	it->warnings[it->n_warnings].code = code;
	va_start(ap, fmt);
	(void)vsnprintf(it->warnings[it->n_warnings].msg, RP_MSG_MAX, fmt, ap);
	va_end(ap);
	it->n_warnings++;
}

void workflow_item_fail(struct rp_item *it, const struct rp_error *e, int rc)
{
	if (it->code)
		return;
	it->code = e && e->code ? e->code : rc;
	rp_strlcpy(it->msg, e && e->msg[0] ? e->msg : rp_code_name(it->code), sizeof(it->msg));
}

bool workflow_name_matches(const char *filter, const char *name)
{
	return !filter || !filter[0] || strncmp(name, filter, strlen(filter)) == 0;
}

bool workflow_request_dup_group(const struct rp_request *req, size_t i)
{
	const char *gi = req->groups[i] ? req->groups[i] : "";
	size_t j;

	for (j = 0; j < i; j++)
		if (strcmp(req->groups[j] ? req->groups[j] : "", gi) == 0)
			return true;
	return false;
}

bool workflow_request_dup_device(struct rp_array *a, const struct rp_request *req, size_t i)
{
	const char *di = req->devices[i] ? req->devices[i] : "";
	struct model_device d, o;
	size_t j;

	for (j = 0; j < i; j++)
		if (strcmp(req->devices[j] ? req->devices[j] : "", di) == 0)
			return true;
	/* unknown ids are answered (with their error) once per spelling */
	if (model_device_find(&d, a, di, NULL) < 0)
		return false;
	if (d.group[0])
		for (j = 0; j < req->n_groups; j++)
			if (req->groups[j] && strcmp(req->groups[j], d.group) == 0)
				return true; /* answered inside its group */
	for (j = 0; j < i; j++)
		if (req->devices[j] && model_device_find(&o, a, req->devices[j], NULL) == 0 &&
		    strcmp(o.id, d.id) == 0)
			return true; /* the same device by id and by name */
	return false;
}

static bool item_has_warning(const struct rp_item *it, int code)
{
	size_t i;

	for (i = 0; i < it->n_warnings; i++)
		if (it->warnings[i].code == code)
			return true;
	return false;
}

/* ------------------------------------------------------------------------------------------ */
/* The runner                                                                                  */

struct wf;

struct wf_ops {
	const char *name;
	/* The workflow changes the peer too: open it first (unreachable = item error) and lock
	 * the peer's group/device as well. */
	bool needs_peer;
	/* Before the members of a group (may be NULL). Failing fails the group and its members. */
	int (*group_pre)(struct wf *w, struct model_group *g, struct rp_item *git,
	                 struct rp_error *e);
	/* One device (member of w->g, or standalone when w->g is NULL). */
	int (*dev)(struct wf *w, struct model_device *d, struct rp_item *it, struct rp_error *e);
	/* After the members, only when all succeeded; @all_done: every member was a repeat. */
	int (*group_post)(struct wf *w, struct model_group *g, struct rp_item *git, bool all_done,
	                  struct rp_error *e);
	/* After the group, always (may be NULL): frees what group_pre kept in the wf. */
	void (*group_done)(struct wf *w);
	/* The workflow sets the direction of replication: a member of a group is refused when
	 * asked alone (a group replicates one way; SRM names the group). Failover and
	 * prepareFailover stay per device: SRM allows partial failovers. */
	bool whole_groups;
};

struct rev_plan;

struct wf {
	struct rp_array *a;
	const struct rp_request *req;
	const struct wf_ops *ops;
	struct rp_array *peers[RP_MAX_PEERS];
	size_t n_peers;
	struct rp_array *peer; /* peer of the current item (needs_peer), else NULL */
	struct model_group *g; /* group of the current item, NULL for standalone devices */
	struct rev_plan *rev;  /* reverse of a group: the plan made by its group_pre */
	int64_t now;
	/* Recovery point named for the current item (NULL = the latest) and its time once found
	 * (group_pre of the workflows that use it). */
	const char *rp_want;
	int64_t rp_want_ms;
	bool keep_rp;             /* group_post filled the group item's recovery point itself */
	struct fence_hold *fence; /* writers paused by group_pre (prepareFailover), or NULL */
	/* prepareFailover: members whose live object group_pre cloned (to "fence-<id>") while
	 * their writers were paused; each dev step makes its snapshot from that clone. */
	char (*pre)[RP_ID_MAX];
	size_t n_pre;
};

/* Opens (once per call) the peer @id; NULL with @e set when unreachable. */
static struct rp_array *wf_peer(struct wf *w, const char *id, struct rp_error *e)
{
	size_t i;

	if (!id || !id[0]) {
		(void)rp_error_set(e, RP_ESTATE, "no replication peer recorded");
		return NULL;
	}
	for (i = 0; i < w->n_peers; i++)
		if (strcmp(w->peers[i]->id, id) == 0)
			return w->peers[i];
	if (w->n_peers == RP_MAX_PEERS) {
		(void)rp_error_set(e, RP_ERROR, "too many peers");
		return NULL;
	}
	if (recovery_open_peer(&w->peers[w->n_peers], w->a, id, e) < 0)
		return NULL;
	return w->peers[w->n_peers++];
}

/* Records recovery point @rp (taken at @ms) on item @it. */
static void item_point(struct rp_item *it, const char *rp, int64_t ms)
{
	rp_strlcpy(it->recovery_point, rp, sizeof(it->recovery_point));
	it->recovery_point_ms = ms;
}

static void wf_fill_dev(struct rp_item *it, const struct model_device *d)
{
	rp_strlcpy(it->name, d->name, sizeof(it->name));
	rp_strlcpy(it->wwn, d->wwn, sizeof(it->wwn));
	item_point(it, d->recovery_point, d->recovery_point_ms);
	rp_strlcpy(it->state, rp_dev_state_name(d->state), sizeof(it->state));
}

static int wf_group(struct wf *w, struct rp_result *res, size_t *cap, const char *gid)
{
	struct model_device *mem = NULL;
	struct model_group g;
	struct rp_error e;
	struct rp_item *git;
	size_t n = 0, i, gidx, first, matched = 0, n_done = 0, n_fail = 0;
	int fa = -1, fb = -1, rc;

	if (workflow_result_add(res, cap, &git) < 0)
		return RP_ERROR;
	gidx = res->n - 1;
	git->is_group = true;
	rp_strlcpy(git->id, gid, sizeof(git->id));
	rp_error_clear(&e);
	rc = rp_id_check(gid, "group id", &e);
	if (rc == 0)
		rc = model_group_load(&g, w->a, gid, &e);
	if (rc == 0)
		rc = model_device_list(&mem, &n, w->a, gid, &e);
	if (rc < 0) {
		workflow_item_fail(git, &e, rc);
		return 0;
	}
	rp_strlcpy(git->state, rp_group_role_name(g.role), sizeof(git->state));
	item_point(git, g.recovery_point, g.recovery_point_ms);
	rp_strlcpy(git->name, g.name, sizeof(git->name));
	for (i = 0; i < n; i++)
		if (workflow_name_matches(w->req->name_filter, mem[i].name))
			matched++;
	if (w->req->name_filter && w->req->name_filter[0] && matched == 0) {
		workflow_item_warn(git, RP_WARN_FILTERED, "no device of group '%s' matches '%s'",
		                   gid, w->req->name_filter);
		goto out;
	}
	/* one item per (matching) member, answered below */
	first = res->n;
	for (i = 0; i < n; i++) {
		struct rp_item *dit;

		if (!workflow_name_matches(w->req->name_filter, mem[i].name))
			continue;
		if (workflow_result_add(res, cap, &dit) < 0) {
			rp_free(mem);
			return RP_ERROR;
		}
		rp_strlcpy(dit->id, mem[i].id, sizeof(dit->id));
		rp_strlcpy(dit->group, gid, sizeof(dit->group));
		wf_fill_dev(dit, &mem[i]);
	}
	git = &res->items[gidx];

	w->g = &g;
	w->peer = NULL;
	w->keep_rp = false;
	if (w->ops->needs_peer) {
		w->peer = wf_peer(w, g.peer_array, &e);
		if (!w->peer) {
			rc = e.code ? e.code : RP_EUNREACHABLE;
			goto fail_all;
		}
	}
	rc = recovery_lock_pair(w->a, gid, &fa, w->peer, gid, &fb, &e);
	if (rc < 0)
		goto fail_all;
	/* reload under the lock */
	rc = model_group_load(&g, w->a, gid, &e);
	if (rc < 0)
		goto fail_all;
	if (w->ops->group_pre) {
		rc = w->ops->group_pre(w, &g, git, &e);
		if (rc < 0)
			goto fail_all;
	}
	for (i = 0; i < n; i++) {
		struct model_device d;
		struct rp_item tmp, *dit = NULL;
		size_t k;

		for (k = first; k < res->n; k++)
			if (strcmp(res->items[k].id, mem[i].id) == 0)
				dit = &res->items[k];
		if (!dit) {
			/* filtered out of the answer, but the group moves as one */
			memset(&tmp, 0, sizeof(tmp));
			dit = &tmp;
		}
		rp_error_clear(&e);
		rc = model_device_load(&d, w->a, mem[i].id, &e);
		if (rc == 0)
			rc = w->ops->dev(w, &d, dit, &e);
		if (rc < 0) {
			workflow_item_fail(dit, &e, rc);
			n_fail++;
			if (!git->code) {
				git->code = dit->code;
				(void)snprintf(git->msg, sizeof(git->msg), "device '%s': %s", d.id,
				               dit->msg);
			}
		} else if (item_has_warning(dit, RP_WARN_ALREADY_DONE)) {
			n_done++;
		}
	}
	if (n_fail == 0 && w->ops->group_post) {
		rp_error_clear(&e);
		rc = w->ops->group_post(w, &g, git, n_done == n, &e);
		if (rc < 0)
			workflow_item_fail(git, &e, rc);
	}
	if (model_group_load(&g, w->a, gid, NULL) == 0) {
		rp_strlcpy(git->state, rp_group_role_name(g.role), sizeof(git->state));
		if (!w->keep_rp || git->code) {
			item_point(git, g.recovery_point, g.recovery_point_ms);
		}
	}
	goto out;
fail_all:
	workflow_item_fail(git, &e, rc);
	for (i = first; i < res->n; i++)
		workflow_item_fail(&res->items[i], &e, rc);
out:
	if (w->ops->group_done)
		w->ops->group_done(w);
	unlock(fa);
	unlock(fb);
	w->g = NULL;
	w->peer = NULL;
	rp_free(mem);
	return 0;
}

static int wf_device(struct wf *w, struct rp_result *res, size_t *cap, const char *id)
{
	struct model_device d;
	struct rp_error e;
	struct rp_item *it;
	const char *lock_a, *lock_b;
	int fa = -1, fb = -1, rc;

	if (workflow_result_add(res, cap, &it) < 0)
		return RP_ERROR;
	rp_strlcpy(it->id, id, sizeof(it->id));
	rp_error_clear(&e);
	rc = model_device_find(&d, w->a, id, &e);
	if (rc < 0) {
		workflow_item_fail(it, &e, rc);
		return 0;
	}
	wf_fill_dev(it, &d);
	if (!workflow_name_matches(w->req->name_filter, d.name)) {
		workflow_item_warn(it, RP_WARN_FILTERED, "device '%s' does not match '%s'", d.id,
		                   w->req->name_filter);
		return 0;
	}
	if (w->ops->whole_groups && d.group[0]) {
		rp_error_set(&e, RP_EINVAL,
		             "device '%s' belongs to consistency group '%s': %s it with its group",
		             d.id, d.group, w->ops->name);
		workflow_item_fail(it, &e, RP_EINVAL);
		return 0;
	}
	w->g = NULL;
	w->peer = NULL;
	if (w->ops->needs_peer) {
		w->peer = wf_peer(w, d.peer_array, &e);
		if (!w->peer) {
			workflow_item_fail(it, &e, e.code ? e.code : RP_EUNREACHABLE);
			return 0;
		}
	}
	/* a grouped device requested alone still serializes with its group */
	lock_a = d.group[0] ? d.group : d.id;
	lock_b = d.group[0] ? d.group : d.peer_device;
	rc = recovery_lock_pair(w->a, lock_a, &fa, w->peer, lock_b[0] ? lock_b : lock_a, &fb, &e);
	if (rc == 0)
		rc = model_device_load(&d, w->a, d.id, &e);
	if (rc == 0)
		rc = w->ops->dev(w, &d, it, &e);
	if (rc < 0)
		workflow_item_fail(it, &e, rc);
	unlock(fa);
	unlock(fb);
	w->peer = NULL;
	return 0;
}

/* Entry @i of a request's recovery point array; NULL for "the latest". */
static const char *wf_point(const char *const *points, size_t i)
{
	if (!points || !points[i] || !points[i][0])
		return NULL;
	return points[i];
}

static int wf_run(struct rp_result **out, struct rp_array *a, const struct rp_request *req,
                  const struct wf_ops *ops, struct rp_error *err)
{
	struct rp_result *res;
	struct wf w;
	size_t cap = 0, i;
	int rc = 0;

	if (!out || !a || !req)
		return rp_error_set(err, RP_EINVAL, "invalid argument");
	if ((req->n_groups && !req->groups) || (req->n_devices && !req->devices))
		return rp_error_set(err, RP_EINVAL, "invalid request");
	res = rp_calloc(1, sizeof(*res));
	if (!res)
		return rp_error_set(err, RP_ERROR, "out of memory");
	memset(&w, 0, sizeof(w));
	w.a = a;
	w.req = req;
	w.ops = ops;
	w.now = rp_now_ms();
	rp_log(RP_LOG_VERBOSE, "%s on array '%s': %zu group(s), %zu device(s)", ops->name, a->id,
	       req->n_groups, req->n_devices);
	for (i = 0; rc == 0 && i < req->n_groups; i++)
		if (!workflow_request_dup_group(req, i)) {
			w.rp_want = wf_point(req->group_recovery_points, i);
			w.rp_want_ms = 0;
			rc = wf_group(&w, res, &cap, req->groups[i] ? req->groups[i] : "");
		}
	for (i = 0; rc == 0 && i < req->n_devices; i++)
		if (!workflow_request_dup_device(a, req, i)) {
			w.rp_want = wf_point(req->device_recovery_points, i);
			w.rp_want_ms = 0;
			rc = wf_device(&w, res, &cap, req->devices[i] ? req->devices[i] : "");
		}
	for (i = 0; i < w.n_peers; i++)
		rp_array_close(w.peers[i]);
	if (rc < 0) {
		rp_result_free(res);
		return rp_error_set(err, RP_ERROR, "out of memory");
	}
	for (i = 0; i < res->n; i++) {
		const struct rp_item *it = &res->items[i];

		if (it->code)
			rp_log(RP_LOG_WARNING, "%s: %s '%s': %s", ops->name,
			       it->is_group ? "group" : "device", it->id, it->msg);
	}
	*out = res;
	return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Shared device steps                                                                         */

/* Sets state/access of @d on @a (row and object) and mirrors it into @d. */
/* Is @state a role syncs read from (a source's spare is its old base), not write into? */
static bool dev_state_sends(int state)
{
	return state != RP_DEV_TARGET;
}

static int dev_set(struct rp_array *a, struct model_device *d, int state, bool ro,
                   const char *peer_array, const char *peer_device, struct rp_error *e)
{
	int rc;

	rc = recovery_drv_set_readonly(a, d->obj, ro, e);
	if (rc < 0)
		return rc;
	rc = model_device_set_state(a, d->id, state, ro ? 1 : 0, peer_array, peer_device, e);
	if (rc < 0)
		return rc;
	/* a spare serves one side of a sync: a source's old base is no target's recovery point */
	if (dev_state_sends(d->state) != dev_state_sends(state))
		sync_spare_drop(a, d->id);
	if (ro)
		(void)meta_run(NULL, a->db, NULL,
		               "UPDATE presentations SET rw = 0 WHERE device = ?", "t", d->id);
	d->state = state;
	d->read_only = ro;
	if (peer_array)
		rp_strlcpy(d->peer_array, peer_array, sizeof(d->peer_array));
	if (peer_device)
		rp_strlcpy(d->peer_device, peer_device, sizeof(d->peer_device));
	return 0;
}

static int group_set_role(struct rp_array *a, const char *gid, int role, const char *peer_array,
                          struct rp_error *e)
{
	struct model_group g;
	int rc;

	rc = model_group_load(&g, a, gid, e);
	if (rc < 0)
		return rc;
	if (g.role == role && (!peer_array || strcmp(g.peer_array, peer_array) == 0))
		return 0;
	g.role = role;
	if (peer_array)
		rp_strlcpy(g.peer_array, peer_array, sizeof(g.peer_array));
	return model_group_store(a, &g, e);
}

static void latest_snapshot_into(struct rp_item *it, struct rp_array *a, const char *dev,
                                 const char *kind)
{
	struct model_snapshot s;

	if (recovery_snapshot_find(&s, a, dev, kind, NULL, NULL) == 0)
		rp_strlcpy(it->snapshot, s.id, sizeof(it->snapshot));
}

static int need_state(const struct model_device *d, int want, const char *what, struct rp_error *e)
{
	if (d->state == want)
		return 0;
	return rp_error_set(e, RP_ESTATE, "device '%s' is %s, not %s%s", d->id,
	                    rp_dev_state_name(d->state), rp_dev_state_name(want), what);
}

/* RP_WARN_STALE_RP when the recovery point is older than the group's RPO (0 = no RPO). */
static void warn_stale(struct wf *w, struct rp_item *it, const struct model_device *d,
                       int64_t rp_ms)
{
	struct model_group g;
	uint32_t rpo = 0;

	if (w->g)
		rpo = w->g->rpo;
	else if (d->group[0] && model_group_load(&g, w->a, d->group, NULL) == 0)
		rpo = g.rpo;
	if (rpo == 0 || rp_ms <= 0 || w->now - rp_ms <= (int64_t)rpo * 1000)
		return;
	workflow_item_warn(it, RP_WARN_STALE_RP,
	                   "recovery point of '%s' is %lld s old, older than the RPO of %u s",
	                   d->id, (long long)((w->now - rp_ms) / 1000), rpo);
}

/* ------------------------------------------------------------------------------------------ */
/* Recovery point selection                                                                    */

static int point_not_held(struct wf *w, const char *what, const char *id, struct rp_error *e)
{
	return rp_error_set(e, RP_ENOTFOUND,
	                    "recovery point '%s' of %s '%s' is not held on array '%s' (unknown,"
	                    " or expired by the retention policy; queryRecoveryPoints lists"
	                    " the points held)",
	                    w->rp_want, what, id, w->a->id);
}

/*
 * The 'rp' snapshot of @d to use: the one of the recovery point named in the request
 * (w->rp_want), else the device's latest. A named point not held: RP_ENOTFOUND.
 */
static int wf_rp_snapshot(struct model_snapshot *out, struct wf *w, const struct model_device *d,
                          struct rp_error *e)
{
	int rc;

	if (!w->rp_want)
		return recovery_snapshot_find(out, w->a, d->id, RECOVERY_KIND_RP, d->recovery_point,
		                              e);
	rc = rp_id_check(w->rp_want, "recovery point id", e);
	if (rc < 0)
		return rc;
	if (recovery_snapshot_find(out, w->a, d->id, RECOVERY_KIND_RP, w->rp_want, NULL) == 0)
		return 0;
	return point_not_held(w, "device", d->id, e);
}

/* A group's named recovery point must be held for the group; sets w->rp_want_ms. */
static int wf_group_point(struct wf *w, const struct model_group *g, struct rp_error *e)
{
	struct rp_recovery_point *pts = NULL;
	size_t n = 0, i;
	int rc;

	if (!w->rp_want)
		return 0;
	rc = rp_id_check(w->rp_want, "recovery point id", e);
	if (rc < 0)
		return rc;
	rc = rp_recovery_points(&pts, &n, w->a, g->id, NULL, e);
	if (rc < 0)
		return rc;
	rc = RP_ENOTFOUND;
	for (i = 0; i < n; i++)
		if (strcmp(pts[i].id, w->rp_want) == 0) {
			w->rp_want_ms = pts[i].time_ms;
			rc = 0;
		}
	rp_free(pts);
	if (rc < 0)
		return point_not_held(w, "group", g->id, e);
	return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Test failover                                                                               */

static int check_target_ready(const struct model_device *d, struct rp_error *e)
{
	if (d->state == RP_DEV_PROMOTED_TARGET)
		return rp_error_set(e, RP_ESTATE, "device '%s' was failed over already", d->id);
	if (d->state != RP_DEV_TARGET)
		return rp_error_set(e, RP_ESTATE, "device '%s' is %s, not a replication target",
		                    d->id, rp_dev_state_name(d->state));
	if (!d->recovery_point[0])
		return rp_error_set(e, RP_ESTATE,
		                    "device '%s' has no recovery point yet: the"
		                    " initial sync has not completed",
		                    d->id);
	return 0;
}

static int check_test_dev(struct wf *w, struct model_device *d, struct rp_item *it,
                          struct rp_error *e)
{
	struct model_snapshot s, t;
	int rc;

	rc = check_target_ready(d, e);
	if (rc < 0)
		return rc;
	rc = wf_rp_snapshot(&s, w, d, e);
	if (rc < 0)
		return rc;
	item_point(it, s.recovery_point, s.recovery_point_ms);
	if (recovery_snapshot_find(&t, w->a, d->id, RECOVERY_KIND_TEST, NULL, NULL) == 0)
		return rp_error_set(e, RP_EBUSY, "a test failover of '%s' is running ('%s')", d->id,
		                    t.id);
	/* room: without reflinks the test copy takes as much space as the data it copies */
	if (!(w->a->drv->caps & ARRAY_CAP_REFLINK) && w->a->drv->ops->stat &&
	    w->a->drv->ops->obj_stat) {
		struct array_stat as;
		struct array_obj_stat os;

		if (w->a->drv->ops->stat(&as, w->a->drv, NULL) == 0 &&
		    w->a->drv->ops->obj_stat(&os, w->a->drv, s.obj, NULL) == 0 &&
		    os.allocated > as.free)
			return rp_error_set(
			        e, RP_ENOSPACE,
			        "a test copy of '%s' needs %llu bytes, array '%s' has %llu"
			        " free",
			        d->id, (unsigned long long)os.allocated, w->a->id,
			        (unsigned long long)as.free);
	}
	return 0;
}

static int check_test_group(struct wf *w, struct model_group *g, struct rp_item *git,
                            struct rp_error *e)
{
	if (g->role != RP_GROUP_TARGET)
		return rp_error_set(e, RP_ESTATE, "group '%s' is %s, not a replication target",
		                    g->id, rp_group_role_name(g->role));
	if (!g->recovery_point[0])
		return rp_error_set(e, RP_ESTATE, "group '%s' has no recovery point yet", g->id);
	if (g->test_snapshot[0])
		return rp_error_set(e, RP_EBUSY, "a test failover of group '%s' is running", g->id);
	return wf_group_point(w, g, e);
}

static int test_start_dev(struct wf *w, struct model_device *d, struct rp_item *it,
                          struct rp_error *e)
{
	struct model_snapshot rp, t;
	int rc;

	if (recovery_snapshot_find(&t, w->a, d->id, RECOVERY_KIND_TEST, NULL, NULL) == 0)
		return rp_error_set(e, RP_EBUSY,
		                    "a test failover of '%s' is already running ('%s')", d->id,
		                    t.id);
	rc = check_target_ready(d, e);
	if (rc < 0)
		return rc;
	rc = wf_rp_snapshot(&rp, w, d, e);
	if (rc < 0)
		return rc;
	rc = recovery_snapshot_take_from(&t, w->a, d, rp.obj, RECOVERY_KIND_TEST, rp.recovery_point,
	                                 rp.recovery_point_ms, e);
	if (rc < 0)
		return rc;
	(void)recovery_drv_set_readonly(w->a, t.obj, false, NULL);
	rp_strlcpy(it->snapshot, t.id, sizeof(it->snapshot));
	rp_strlcpy(it->snapshot_wwn, t.wwn, sizeof(it->snapshot_wwn));
	item_point(it, rp.recovery_point, rp.recovery_point_ms);
	warn_stale(w, it, d, rp.recovery_point_ms);
	rp_log(RP_LOG_INFO, "test failover of '%s': copy '%s' of recovery point '%s'", d->id, t.id,
	       rp.recovery_point);
	return 0;
}

static int test_start_group_pre(struct wf *w, struct model_group *g, struct rp_item *git,
                                struct rp_error *e)
{
	return check_test_group(w, g, git, e);
}

static int test_start_group_post(struct wf *w, struct model_group *g, struct rp_item *git,
                                 bool all_done, struct rp_error *e)
{
	(void)snprintf(g->test_snapshot, sizeof(g->test_snapshot), "test-%s-%lld", g->id,
	               (long long)w->now);
	rp_strlcpy(git->snapshot, g->test_snapshot, sizeof(git->snapshot));
	item_point(git, w->rp_want ? w->rp_want : g->recovery_point,
	           w->rp_want ? w->rp_want_ms : g->recovery_point_ms);
	w->keep_rp = true;
	return model_group_store(w->a, g, e);
}

static int test_stop_dev(struct wf *w, struct model_device *d, struct rp_item *it,
                         struct rp_error *e)
{
	struct model_snapshot *list = NULL;
	size_t n = 0, i;
	int rc;

	rc = model_snapshot_list(&list, &n, w->a, d->id, NULL, RECOVERY_KIND_TEST, e);
	if (rc < 0)
		return rc;
	for (i = 0; i < n && rc == 0; i++) {
		(void)meta_run(NULL, w->a->db, NULL, "DELETE FROM presentations WHERE device = ?",
		               "t", list[i].id);
		rc = recovery_snapshot_delete(w->a, list[i].id, e);
		if (rc == 0)
			rp_strlcpy(it->snapshot, list[i].id, sizeof(it->snapshot));
	}
	rp_free(list);
	if (rc == 0 && n == 0)
		workflow_item_warn(it, RP_WARN_ALREADY_DONE, "no test failover of '%s' is running",
		                   d->id);
	return rc;
}

static int test_stop_group_post(struct wf *w, struct model_group *g, struct rp_item *git,
                                bool all_done, struct rp_error *e)
{
	if (!g->test_snapshot[0]) {
		if (all_done)
			workflow_item_warn(git, RP_WARN_ALREADY_DONE,
			                   "no test failover of group '%s' is running", g->id);
		return 0;
	}
	rp_strlcpy(git->snapshot, g->test_snapshot, sizeof(git->snapshot));
	g->test_snapshot[0] = '\0';
	return model_group_store(w->a, g, e);
}

static const struct wf_ops wf_check_test = {
	.name = "checkTestFailoverStart",
	.group_pre = check_test_group,
	.dev = check_test_dev,
};
static const struct wf_ops wf_test_start = {
	.name = "testFailoverStart",
	.group_pre = test_start_group_pre,
	.dev = test_start_dev,
	.group_post = test_start_group_post,
};
static const struct wf_ops wf_test_stop = {
	.name = "testFailoverStop",
	.dev = test_stop_dev,
	.group_post = test_stop_group_post,
};

int rp_check_test_failover(struct rp_result **out, struct rp_array *a, const struct rp_request *req,
                           struct rp_error *err)
{
	return wf_run(out, a, req, &wf_check_test, err);
}

int rp_test_failover_start(struct rp_result **out, struct rp_array *a, const struct rp_request *req,
                           struct rp_error *err)
{
	return wf_run(out, a, req, &wf_test_start, err);
}

int rp_test_failover_stop(struct rp_result **out, struct rp_array *a, const struct rp_request *req,
                          struct rp_error *err)
{
	return wf_run(out, a, req, &wf_test_stop, err);
}

/* ------------------------------------------------------------------------------------------ */
/* Failover                                                                                    */

/* A LUN made in a failed-over group (local: not replicated until reverse adopts it). */
static bool made_after_failover(const struct wf *w, const struct model_device *d)
{
	return w->g && w->g->role == RP_GROUP_PROMOTED_TARGET && d->state == RP_DEV_LOCAL;
}

static int check_failover_dev(struct wf *w, struct model_device *d, struct rp_item *it,
                              struct rp_error *e)
{
	struct model_snapshot s;
	int rc;

	if (d->state == RP_DEV_PROMOTED_TARGET || made_after_failover(w, d)) {
		workflow_item_warn(it, RP_WARN_ALREADY_DONE, "device '%s' was failed over already",
		                   d->id);
		return 0;
	}
	rc = check_target_ready(d, e);
	if (rc < 0 || !w->rp_want)
		return rc;
	rc = wf_rp_snapshot(&s, w, d, e);
	if (rc < 0)
		return rc;
	item_point(it, s.recovery_point, s.recovery_point_ms);
	return 0;
}

static int check_failover_group(struct wf *w, struct model_group *g, struct rp_item *git,
                                struct rp_error *e)
{
	if (g->role == RP_GROUP_PROMOTED_TARGET)
		return 0;
	if (g->role == RP_GROUP_TARGET)
		return wf_group_point(w, g, e);
	return rp_error_set(e, RP_ESTATE, "group '%s' is %s, not a replication target", g->id,
	                    rp_group_role_name(g->role));
}

static int failover_dev(struct wf *w, struct model_device *d, struct rp_item *it,
                        struct rp_error *e)
{
	struct model_snapshot s, at;
	bool older = false;
	int rc;

	if (d->state == RP_DEV_PROMOTED_TARGET) {
		workflow_item_warn(it, RP_WARN_ALREADY_DONE, "device '%s' was failed over already",
		                   d->id);
		rp_strlcpy(it->new_id, d->id, sizeof(it->new_id));
		latest_snapshot_into(it, w->a, d->id, RECOVERY_KIND_REVERT);
		return 0;
	}
	if (made_after_failover(w, d)) {
		workflow_item_warn(it, RP_WARN_ALREADY_DONE,
		                   "'%s' was made on array '%s' after failover", d->id, w->a->id);
		rp_strlcpy(it->new_id, d->id, sizeof(it->new_id));
		return 0;
	}
	rc = need_state(d, RP_DEV_TARGET, " (only replication targets fail over)", e);
	if (rc < 0)
		return rc;
	if (w->rp_want && strcmp(w->rp_want, d->recovery_point) != 0) {
		/* an older point: its snapshot must be held before anything changes */
		rc = wf_rp_snapshot(&at, w, d, e);
		if (rc < 0)
			return rc;
		older = true;
	}
	if (!w->g) {
		rc = sync_abort_incoming(w->a, NULL, d->id, "aborted by failover", e);
		if (rc < 0)
			return rc;
	}
	/* revert point first: the replica as it was before anyone wrote to it (with an older
	 * point requested, this keeps the newer replicated data) */
	rc = recovery_snapshot_take(&s, w->a, d, RECOVERY_KIND_REVERT, d->recovery_point,
	                            d->recovery_point_ms, e);
	if (rc < 0)
		return rc;
	if (older) {
		/* the live data becomes a copy of the point (atomic rename of a full copy) */
		rc = recovery_rollback(w->a, d, at.obj, "failover", e);
		if (rc < 0)
			return rc;
		rp_strlcpy(d->recovery_point, at.recovery_point, sizeof(d->recovery_point));
		d->recovery_point_ms = at.recovery_point_ms;
		rc = model_device_store(w->a, d, e);
		if (rc < 0)
			return rc;
		rp_log(RP_LOG_INFO,
		       "failover: '%s' set to recovery point '%s'; the newer data is in '%s'",
		       d->id, at.recovery_point, s.id);
	}
	item_point(it, d->recovery_point, d->recovery_point_ms);
	rc = dev_set(w->a, d, RP_DEV_PROMOTED_TARGET, false, NULL, NULL, e);
	if (rc < 0)
		return rc;
	rp_strlcpy(it->new_id, d->id, sizeof(it->new_id));
	rp_strlcpy(it->snapshot, s.id, sizeof(it->snapshot));
	rp_strlcpy(it->state, rp_dev_state_name(d->state), sizeof(it->state));
	warn_stale(w, it, d, d->recovery_point_ms);
	rp_log(RP_LOG_INFO, "failover: '%s' promoted read-write (revert snapshot '%s')", d->id,
	       s.id);
	return 0;
}

static int failover_group_pre(struct wf *w, struct model_group *g, struct rp_item *git,
                              struct rp_error *e)
{
	int rc;

	rc = check_failover_group(w, g, git, e);
	if (rc < 0)
		return rc;
	if (w->rp_want && g->role == RP_GROUP_TARGET) {
		/* every target member must hold the point before any member changes */
		struct model_device *mem = NULL;
		struct model_snapshot s;
		size_t n = 0, i;

		rc = model_device_list(&mem, &n, w->a, g->id, e);
		for (i = 0; rc == 0 && i < n; i++)
			if (mem[i].state == RP_DEV_TARGET)
				rc = wf_rp_snapshot(&s, w, &mem[i], e);
		rp_free(mem);
		if (rc < 0)
			return rc;
	}
	return sync_abort_incoming(w->a, g->id, NULL, "aborted by failover", e);
}

static int failover_group_post(struct wf *w, struct model_group *g, struct rp_item *git,
                               bool all_done, struct rp_error *e)
{
	struct model_group cur;
	int rc;

	if (g->role == RP_GROUP_PROMOTED_TARGET) {
		if (all_done)
			workflow_item_warn(git, RP_WARN_ALREADY_DONE,
			                   "group '%s' was failed over already", g->id);
		rp_strlcpy(git->new_id, g->id, sizeof(git->new_id));
		return 0;
	}
	rp_strlcpy(git->new_id, g->id, sizeof(git->new_id));
	rc = model_group_load(&cur, w->a, g->id, e);
	if (rc < 0)
		return rc;
	if (w->rp_want) {
		/* the group's data is now at the requested point */
		rp_strlcpy(cur.recovery_point, w->rp_want, sizeof(cur.recovery_point));
		cur.recovery_point_ms = w->rp_want_ms;
	}
	cur.role = RP_GROUP_PROMOTED_TARGET;
	return model_group_store(w->a, &cur, e);
}

/* Object holding the point-in-time clone of device @id taken under the group's fence. */
static void wf_fence_obj(char out[ARRAY_OBJ_MAX], const char *id)
{
	(void)snprintf(out, ARRAY_OBJ_MAX, "fence-%s", id);
}

static int prepare_failover_dev(struct wf *w, struct model_device *d, struct rp_item *it,
                                struct rp_error *e)
{
	struct model_snapshot s;
	struct rp_array *peer;
	struct rp_error pe;
	char obj[ARRAY_OBJ_MAX];
	size_t i;
	int rc;

	if (d->state == RP_DEV_DEMOTED_SOURCE) {
		workflow_item_warn(it, RP_WARN_ALREADY_DONE, "device '%s' is demoted already",
		                   d->id);
		latest_snapshot_into(it, w->a, d->id, RECOVERY_KIND_PREFAILOVER);
		return 0;
	}
	rc = need_state(d, RP_DEV_SOURCE, " (only replication sources are demoted)", e);
	if (rc < 0)
		return rc;
	for (i = 0; i < w->n_pre && strcmp(w->pre[i], d->id) != 0; i++)
		;
	if (i < w->n_pre) { /* cloned under the group's fence */
		wf_fence_obj(obj, d->id);
		rc = recovery_snapshot_take_from(&s, w->a, d, obj, RECOVERY_KIND_PREFAILOVER,
		                                 d->recovery_point, d->recovery_point_ms, e);
		if (rc == 0) {
			(void)recovery_drv_delete(w->a, obj, NULL);
			w->pre[i][0] = '\0';
		}
	} else {
		rc = recovery_snapshot_take(&s, w->a, d, RECOVERY_KIND_PREFAILOVER,
		                            d->recovery_point, d->recovery_point_ms, e);
	}
	if (rc < 0)
		return rc;
	rc = dev_set(w->a, d, RP_DEV_DEMOTED_SOURCE, true, NULL, NULL, e);
	if (rc < 0)
		return rc;
	rp_strlcpy(it->snapshot, s.id, sizeof(it->snapshot));
	rp_strlcpy(it->state, rp_dev_state_name(d->state), sizeof(it->state));
	/* disaster order: the peer may have promoted its target already (peer optional) */
	rp_error_clear(&pe);
	peer = d->peer_array[0] ? wf_peer(w, d->peer_array, &pe) : NULL;
	if (peer && d->peer_device[0]) {
		struct model_device t;

		if (model_device_load(&t, peer, d->peer_device, NULL) == 0 &&
		    t.state == RP_DEV_PROMOTED_TARGET)
			workflow_item_warn(
			        it, RP_WARN_UNUSUAL_ORDER,
			        "'%s' on array '%s' was failed over before '%s' was demoted", t.id,
			        peer->id, d->id);
	}
	rp_log(RP_LOG_INFO, "prepareFailover: '%s' demoted read-only (snapshot '%s')", d->id, s.id);
	return 0;
}

static void prepare_failover_unfence(struct wf *w, struct rp_item *git)
{
	struct rp_error fe;

	rp_error_clear(&fe);
	if (fence_resume(w->fence, &fe) < 0) {
		if (git)
			workflow_item_warn(git, RP_WARN_NO_FREEZE, "group snapshot: %s", fe.msg);
		rp_log(RP_LOG_WARNING, "prepareFailover: %s", fe.msg);
	}
	w->fence = NULL;
}

/* Deletes the clones of group_pre not made into snapshots (dev step failed or not run). */
static void prepare_failover_drop_pre(struct wf *w)
{
	char obj[ARRAY_OBJ_MAX];
	size_t i;

	for (i = 0; i < w->n_pre; i++) {
		if (!w->pre[i][0])
			continue;
		wf_fence_obj(obj, w->pre[i]);
		(void)recovery_drv_delete(w->a, obj, NULL);
	}
	rp_free(w->pre);
	w->pre = NULL;
	w->n_pre = 0;
}

/*
 * The members' 'prefailover' snapshots are one write-order consistent point: the writers of
 * every member (registered write fences, replun/fence.h) are paused, every source member's
 * live object is cloned ("fence-<id>", O(1) with reflink), and the writers resume at once;
 * each dev step then makes its snapshot from that clone (metadata commits happen with the
 * writers running). Writers that cannot be paused, or a failed clone, leave the group item a
 * warning naming the device and why; the snapshots are then taken one by one as before.
 */
static void prepare_failover_fence(struct wf *w, struct model_group *g, struct rp_item *git)
{
	struct model_device *mem = NULL;
	char obj[ARRAY_OBJ_MAX];
	struct rp_error fe;
	size_t n = 0, i;

	rp_error_clear(&fe);
	if (model_device_list(&mem, &n, w->a, g->id, &fe) < 0 || n < 2 ||
	    fence_pause(&w->fence, w->a, mem, n, &fe) < 0 || !w->fence)
		goto out;
	w->pre = rp_calloc(n, sizeof(*w->pre));
	if (!w->pre) {
		rp_error_set(&fe, RP_ERROR, "out of memory");
		goto out;
	}
	for (i = 0; i < n; i++) {
		if (mem[i].state != RP_DEV_SOURCE)
			continue;
		wf_fence_obj(obj, mem[i].id);
		(void)recovery_drv_delete(w->a, obj, NULL); /* left by a crash */
		if (recovery_drv_clone(w->a, mem[i].obj, obj, &fe) < 0)
			break;
		rp_strlcpy(w->pre[w->n_pre++], mem[i].id, RP_ID_MAX);
	}
out:
	prepare_failover_unfence(w, git);
	if (fe.code) {
		prepare_failover_drop_pre(w);
		workflow_item_warn(git, RP_WARN_NO_FREEZE,
		                   "group '%s' is snapshotted without pausing its writers: %s",
		                   g->id, fe.msg);
	}
	rp_free(mem);
}

static int prepare_failover_group_pre(struct wf *w, struct model_group *g, struct rp_item *git,
                                      struct rp_error *e)
{
	if (g->role == RP_GROUP_SOURCE) {
		prepare_failover_fence(w, g, git);
		return 0;
	}
	if (g->role == RP_GROUP_DEMOTED_SOURCE)
		return 0;
	return rp_error_set(e, RP_ESTATE, "group '%s' is %s, not a replication source", g->id,
	                    rp_group_role_name(g->role));
}

static void prepare_failover_group_done(struct wf *w)
{
	prepare_failover_unfence(w, NULL);
	prepare_failover_drop_pre(w);
}

static int prepare_failover_group_post(struct wf *w, struct model_group *g, struct rp_item *git,
                                       bool all_done, struct rp_error *e)
{
	if (g->role == RP_GROUP_DEMOTED_SOURCE) {
		if (all_done)
			workflow_item_warn(git, RP_WARN_ALREADY_DONE,
			                   "group '%s' is demoted already", g->id);
		return 0;
	}
	return group_set_role(w->a, g->id, RP_GROUP_DEMOTED_SOURCE, NULL, e);
}

static const struct wf_ops wf_check_failover = {
	.name = "checkFailover",
	.group_pre = check_failover_group,
	.dev = check_failover_dev,
};
static const struct wf_ops wf_failover = {
	.name = "failover",
	.group_pre = failover_group_pre,
	.dev = failover_dev,
	.group_post = failover_group_post,
};
static const struct wf_ops wf_prepare_failover = {
	.name = "prepareFailover",
	.group_pre = prepare_failover_group_pre,
	.dev = prepare_failover_dev,
	.group_post = prepare_failover_group_post,
	.group_done = prepare_failover_group_done,
};

int rp_check_failover(struct rp_result **out, struct rp_array *a, const struct rp_request *req,
                      struct rp_error *err)
{
	return wf_run(out, a, req, &wf_check_failover, err);
}

int rp_failover(struct rp_result **out, struct rp_array *a, const struct rp_request *req,
                struct rp_error *err)
{
	return wf_run(out, a, req, &wf_failover, err);
}

int rp_prepare_failover(struct rp_result **out, struct rp_array *a, const struct rp_request *req,
                        struct rp_error *err)
{
	return wf_run(out, a, req, &wf_prepare_failover, err);
}

/* ------------------------------------------------------------------------------------------ */
/* Reverse: the promoted side becomes the source, the old source its target (rolled back).    */

static int prepare_reverse_dev(struct wf *w, struct model_device *d, struct rp_item *it,
                               struct rp_error *e)
{
	if (d->state == RP_DEV_TARGET) {
		workflow_item_warn(it, RP_WARN_ALREADY_DONE,
		                   "'%s' is a replication target already (reversed)", d->id);
		return 0;
	}
	if (lun_target_pending(d)) {
		workflow_item_warn(it, RP_WARN_TAIL_KEPT,
		                   "'%s' never reached array '%s' (its target was to be made by the"
		                   " next sync): reverse takes it out of group '%s' and keeps it"
		                   " here with its data as a standalone local LUN",
		                   d->id, d->peer_array, d->group[0] ? d->group : "-");
		return 0;
	}
	if (d->state == RP_DEV_SOURCE) {
		workflow_item_warn(it, RP_WARN_UNUSUAL_ORDER,
		                   "'%s' was not demoted (prepareFailover not run): it will be"
		                   " rolled back to the last recovery point by reverse",
		                   d->id);
		return 0;
	}
	return need_state(d, RP_DEV_DEMOTED_SOURCE, "", e);
}

static int prepare_reverse_group(struct wf *w, struct model_group *g, struct rp_item *git,
                                 struct rp_error *e)
{
	if (g->role == RP_GROUP_DEMOTED_SOURCE || g->role == RP_GROUP_SOURCE ||
	    g->role == RP_GROUP_TARGET)
		return 0;
	return rp_error_set(e, RP_ESTATE, "group '%s' is %s", g->id, rp_group_role_name(g->role));
}

/*
 * Makes old source @x on @a a target of @peer_dev at @peer_id: keep what it gained since the
 * base as a tail snapshot, roll it back to the base, read-only.
 */
static int demote_to_target(struct rp_array *a, struct model_device *x, const char *peer_id,
                            const char *peer_dev, struct rp_item *it, struct rp_error *e)
{
	struct model_snapshot base, tail;
	bool differs = true;
	int rc;

	if (x->base_snapshot[0] && model_snapshot_load(&base, a, x->base_snapshot, NULL) == 0) {
		rc = recovery_differs(&differs, a, base.obj, x->obj, e);
		if (rc < 0)
			return rc;
		if (differs) {
			rc = recovery_snapshot_take(&tail, a, x, RECOVERY_KIND_TAIL,
			                            base.recovery_point, base.recovery_point_ms, e);
			if (rc < 0)
				return rc;
			workflow_item_warn(
			        it, RP_WARN_TAIL_KEPT,
			        "writes to '%s' on array '%s' after recovery point '%s' kept"
			        " as snapshot '%s'",
			        x->id, a->id, base.recovery_point, tail.id);
			rc = recovery_rollback(a, x, base.obj, "rev", e);
			if (rc < 0)
				return rc;
		}
	} else {
		/* no common base: the next sync is a full copy; keep the data as a tail anyway */
		rc = recovery_snapshot_take(&tail, a, x, RECOVERY_KIND_TAIL, NULL, 0, e);
		if (rc < 0)
			return rc;
		workflow_item_warn(it, RP_WARN_TAIL_KEPT,
		                   "'%s' on array '%s' has no common base: its data is kept as"
		                   " snapshot '%s' and the next sync is a full copy",
		                   x->id, a->id, tail.id);
	}
	return dev_set(a, x, RP_DEV_TARGET, true, peer_id, peer_dev, e);
}

static int reverse_dev(struct wf *w, struct model_device *d, struct rp_item *it, struct rp_error *e)
{
	struct model_device x;
	int rc;

	if (d->state != RP_DEV_PROMOTED_TARGET && d->state != RP_DEV_SOURCE)
		return rp_error_set(e, RP_ESTATE,
		                    "device '%s' is %s: only a failed-over device can"
		                    " reverse replication",
		                    d->id, rp_dev_state_name(d->state));
	if (!d->peer_device[0])
		return rp_error_set(e, RP_ESTATE, "device '%s' has no replication peer", d->id);
	rc = model_device_load(&x, w->peer, d->peer_device, e);
	if (rc < 0)
		return rc;
	if (d->state == RP_DEV_SOURCE) {
		if (x.state == RP_DEV_TARGET && strcmp(x.peer_device, d->id) == 0) {
			workflow_item_warn(it, RP_WARN_ALREADY_DONE,
			                   "replication of '%s' already goes to '%s' on array '%s'",
			                   d->id, x.id, w->peer->id);
			rp_strlcpy(it->new_id, x.id, sizeof(it->new_id));
			return 0;
		}
		return rp_error_set(e, RP_ESTATE,
		                    "device '%s' is a source already but '%s' on"
		                    " array '%s' is %s",
		                    d->id, x.id, w->peer->id, rp_dev_state_name(x.state));
	}
	if (x.state == RP_DEV_SOURCE || x.state == RP_DEV_DEMOTED_SOURCE) {
		rc = demote_to_target(w->peer, &x, w->a->id, d->id, it, e);
		if (rc < 0)
			return rc;
	} else if (x.state != RP_DEV_TARGET) {
		return rp_error_set(e, RP_ESTATE,
		                    "'%s' on array '%s' is %s: cannot become a target", x.id,
		                    w->peer->id, rp_dev_state_name(x.state));
	}
	rc = dev_set(w->a, d, RP_DEV_SOURCE, false, w->peer->id, x.id, e);
	if (rc < 0)
		return rc;
	rp_strlcpy(it->new_id, x.id, sizeof(it->new_id));
	rp_strlcpy(it->state, rp_dev_state_name(d->state), sizeof(it->state));
	rp_log(RP_LOG_INFO, "reverse: '%s' replicates to '%s' on array '%s'", d->id, x.id,
	       w->peer->id);
	return 0;
}

/*
 * Reverse of a group is all or nothing. group_pre plans every member before anything changes:
 *   REV_DONE     source here, its target at the peer linked back (a repeat)
 *   REV_FINISH   promoted here, the peer's device a target already (a crashed earlier run)
 *   REV_REVERSE  promoted here, the peer's device the old source: demoted to a target
 *   REV_ADOPT    a LUN made here after failover (local): a new target is made at the peer
 * then prepares what can still be undone (adopted targets at the peer, tail snapshots, staging
 * copies of the bases) and only then switches states and roles. An intent "reverse_group"
 * records the run: a crash while preparing is rolled back, a crash while switching is finished
 * (reverse_recover, at the next open of the array).
 * Members of the group at the peer whose target was still pending (target_at_sync, never
 * synced) have nothing here to replicate back from: the switch first detaches them from the
 * group at the peer, where they stay standalone local LUNs with their data (rev_detach; the
 * group item gets a warning naming each). Nothing to undo for them in the prepare phase.
 */
enum rev_action { REV_DONE, REV_FINISH, REV_REVERSE, REV_ADOPT };

struct rev_member {
	struct model_device d; /* local member */
	struct model_device x; /* its device at the peer (found, or made by adoption) */
	int action;
	bool created;              /* x made by this run (adoption) */
	char tail[RP_ID_MAX];      /* tail snapshot at the peer made by this run */
	char tail_rp[RP_ID_MAX];   /* recovery point of the base it was compared with */
	char stage[ARRAY_OBJ_MAX]; /* staging copy of x's base at the peer, "" = none */
};

struct rev_plan {
	struct rev_member *m;
	size_t n;
	/* members of the group at the peer with a pending target: detached by the switch */
	struct model_device *detach;
	size_t n_detach;
	bool done; /* every member and both roles reversed already */
};

#define REV_OP "reverse_group"

static void rev_group_done(struct wf *w)
{
	if (!w->rev)
		return;
	rp_free(w->rev->m);
	rp_free(w->rev->detach);
	rp_free(w->rev);
	w->rev = NULL;
}

/* The intent payload: group, peer, phase and what the prepare phase made at the peer. */
static int rev_intent_write(struct model_intent *in, struct wf *w, const char *gid,
                            const struct rev_plan *p, const char *phase, bool add,
                            struct rp_error *e)
{
	size_t len = 256 + p->n * (2 * RP_ID_MAX + ARRAY_OBJ_MAX + 32) +
	             p->n_detach * (RP_ID_MAX + 16),
	       off, i;
	char *buf;
	int rc;

	buf = rp_malloc(len);
	if (!buf)
		return rp_error_set(e, RP_ERROR, "out of memory");
	off = (size_t)snprintf(buf, len, "group=%s\npeer=%s\nphase=%s\n", gid, w->peer->id, phase);
	for (i = 0; i < p->n && off < len; i++) {
		const struct rev_member *m = &p->m[i];

		if (m->created)
			off += (size_t)snprintf(buf + off, len - off, "adopt=%s %s\n", m->d.id,
			                        m->x.id);
		if (m->stage[0] && off < len)
			off += (size_t)snprintf(buf + off, len - off, "stage=%s\n", m->stage);
	}
	/* informational: the switch detaches these (a finished repeat finds them detached) */
	for (i = 0; i < p->n_detach && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "detach=%s\n", p->detach[i].id);
	rc = add ? model_intent_add(in, w->a, REV_OP, buf, e)
	         : model_intent_update(in, w->a, buf, e);
	rp_free(buf);
	return rc;
}

/* Plans member @d (see enum rev_action); nothing changes. */
static int rev_plan_member(struct wf *w, struct rev_member *m, struct rp_error *e)
{
	struct model_device *d = &m->d;
	struct rp_error e2;
	int rc;

	switch (d->state) {
	case RP_DEV_PROMOTED_TARGET:
	case RP_DEV_SOURCE:
		if (!d->peer_device[0] || strcmp(d->peer_array, w->peer->id) != 0)
			return rp_error_set(e, RP_ESTATE,
			                    "device '%s' has no replication peer on array '%s'",
			                    d->id, w->peer->id);
		rc = model_device_load(&m->x, w->peer, d->peer_device, e);
		if (rc < 0)
			return rc;
		if (m->x.state == RP_DEV_TARGET && strcmp(m->x.peer_array, w->a->id) == 0 &&
		    strcmp(m->x.peer_device, d->id) == 0) {
			m->action = d->state == RP_DEV_SOURCE ? REV_DONE : REV_FINISH;
			return 0;
		}
		if (d->state == RP_DEV_PROMOTED_TARGET &&
		    (m->x.state == RP_DEV_SOURCE || m->x.state == RP_DEV_DEMOTED_SOURCE)) {
			m->action = REV_REVERSE;
			return 0;
		}
		if (d->state == RP_DEV_SOURCE)
			return rp_error_set(e, RP_ESTATE,
			                    "device '%s' is a source already but '%s' on"
			                    " array '%s' is %s",
			                    d->id, m->x.id, w->peer->id,
			                    rp_dev_state_name(m->x.state));
		return rp_error_set(e, RP_ESTATE,
		                    "'%s' on array '%s' is %s: it cannot become the target of '%s'",
		                    m->x.id, w->peer->id, rp_dev_state_name(m->x.state), d->id);
	case RP_DEV_LOCAL:
		/* made here after failover: adopted (a target left by a crashed run is reused) */
		m->action = REV_ADOPT;
		rp_error_clear(&e2);
		rc = model_device_by_peer(&m->x, w->peer, w->a->id, d->id, &e2);
		if (rc == RP_ENOTFOUND) {
			int64_t taken = 0;

			memset(&m->x, 0, sizeof(m->x));
			/* LUN names are unique per array: the target takes the same name */
			rc = meta_query_int(&taken, w->peer->db, e,
			                    "SELECT COUNT(*) FROM devices WHERE name = ?", "t",
			                    d->name);
			if (rc < 0)
				return rc;
			if (taken > 0)
				return rp_error_set(
				        e, RP_EEXISTS,
				        "device '%s' (made after failover): LUN name '%s'"
				        " is already in use on array '%s'; rename one of"
				        " them and reverse again",
				        d->id, d->name, w->peer->id);
			return 0;
		}
		if (rc < 0)
			return rp_error_set(e, rc, "%s", e2.msg);
		if (m->x.state != RP_DEV_TARGET)
			return rp_error_set(e, RP_ESTATE,
			                    "'%s' on array '%s' claims to replicate '%s' but is %s",
			                    m->x.id, w->peer->id, d->id,
			                    rp_dev_state_name(m->x.state));
		return 0;
	default:
		return rp_error_set(e, RP_ESTATE,
		                    "device '%s' is %s: only failed-over devices and LUNs made"
		                    " after failover can reverse replication",
		                    d->id, rp_dev_state_name(d->state));
	}
}

/*
 * Adoption: target of local member m->d at the peer, same name and size, empty, read-only,
 * state target, in the group, linked to m->d (m->d itself is linked at commit). The peer's
 * own "lun_create" intent removes a half-made object after a crash; @in learns the id first.
 */
static int rev_adopt_create(struct wf *w, const char *gid, struct rev_plan *p, struct rev_member *m,
                            struct model_intent *in, struct rp_error *e)
{
	struct model_intent pin = MODEL_INTENT_INIT;
	struct rp_array *peer = w->peer;
	struct model_device t;
	char payload[2 * ARRAY_OBJ_MAX + 32];
	bool obj_made = false;
	int rc;

	rc = meta_txn_begin(peer->db, e);
	if (rc < 0)
		return rc;
	rc = model_device_alloc(&t, peer, e);
	if (rc == 0) {
		(void)snprintf(payload, sizeof(payload), "device=%s\nobj=%s\n", t.id, t.obj);
		rc = model_intent_add(&pin, peer, "lun_create", payload, e);
	}
	if (rc == 0)
		rc = meta_txn_commit(peer->db, e);
	else
		meta_txn_rollback(peer->db);
	if (rc < 0)
		goto out;
	m->x = t;
	m->created = true;
	rc = rev_intent_write(in, w, gid, p, "prepare", false, e);
	if (rc < 0)
		goto undo;
	rc = model_obj_create(peer, t.obj, m->d.size, e);
	if (rc < 0)
		goto undo;
	obj_made = true;
	rp_strlcpy(t.name, m->d.name, sizeof(t.name));
	rp_strlcpy(t.group, gid, sizeof(t.group));
	t.size = m->d.size;
	t.state = RP_DEV_TARGET;
	t.read_only = true;
	rp_strlcpy(t.peer_array, w->a->id, sizeof(t.peer_array));
	rp_strlcpy(t.peer_device, m->d.id, sizeof(t.peer_device));
	rc = meta_txn_begin(peer->db, e);
	if (rc < 0)
		goto undo;
	rc = model_device_insert(peer, &t, e);
	if (rc == 0)
		rc = model_intent_delete(&pin, peer, e);
	if (rc == 0)
		rc = meta_txn_commit(peer->db, e);
	else
		meta_txn_rollback(peer->db);
	if (rc < 0)
		goto undo;
	(void)recovery_drv_set_readonly(peer, t.obj, true, NULL);
	m->x = t;
	rp_log(RP_LOG_INFO, "reverse: '%s' adopted, target '%s' made on array '%s'", m->d.id, t.id,
	       peer->id);
	goto out;
undo:
	if (!obj_made || model_obj_delete(peer, t.obj, NULL) == 0)
		(void)model_intent_delete(&pin, peer, NULL);
	m->created = false;
out:
	model_intent_release(&pin, peer);
	return rc;
}

/* Keeps what old source m->x gained since its base (tail) and stages the base to roll back. */
static int rev_prepare_reverse(struct wf *w, const char *gid, struct rev_plan *p,
                               struct rev_member *m, struct model_intent *in, struct rp_error *e)
{
	struct model_snapshot base, tail;
	bool differs = true, has_base;
	int rc;

	has_base = m->x.base_snapshot[0] &&
	           model_snapshot_load(&base, w->peer, m->x.base_snapshot, NULL) == 0;
	if (has_base) {
		rc = recovery_differs(&differs, w->peer, base.obj, m->x.obj, e);
		if (rc < 0)
			return rc;
		if (!differs)
			return 0;
	}
	rc = recovery_snapshot_take(&tail, w->peer, &m->x, RECOVERY_KIND_TAIL,
	                            has_base ? base.recovery_point : NULL,
	                            has_base ? base.recovery_point_ms : 0, e);
	if (rc < 0)
		return rc;
	rp_strlcpy(m->tail, tail.id, sizeof(m->tail));
	if (has_base)
		rp_strlcpy(m->tail_rp, base.recovery_point, sizeof(m->tail_rp));
	if (!has_base)
		return 0; /* no common base: the data stays, the next sync is a full copy */
	(void)snprintf(m->stage, sizeof(m->stage), "stage-rev-%s", m->x.id);
	rc = rev_intent_write(in, w, gid, p, "prepare", false, e);
	if (rc == 0)
		rc = recovery_stage(m->stage, w->peer, &m->x, base.obj, "rev", e);
	if (rc < 0)
		m->stage[0] = '\0';
	return rc;
}

/* Lists the members of group @gid at the peer whose target is pending (see rev_detach). */
static int rev_plan_detach(struct wf *w, const char *gid, struct rev_plan *p, struct rp_error *e)
{
	struct model_device *pm = NULL;
	size_t pn = 0, i;
	int rc;

	rc = model_device_list(&pm, &pn, w->peer, gid, e);
	if (rc < 0)
		return rc;
	p->detach = rp_calloc(pn ? pn : 1, sizeof(*p->detach));
	if (!p->detach) {
		rp_free(pm);
		return rp_error_set(e, RP_ERROR, "out of memory");
	}
	for (i = 0; i < pn; i++)
		if (lun_target_pending(&pm[i]))
			p->detach[p->n_detach++] = pm[i];
	rp_free(pm);
	return 0;
}

/* Undoes the prepare phase. Returns < 0 when something could not be undone. */
static int rev_undo(struct wf *w, struct rev_plan *p)
{
	size_t i;
	int rc = 0;

	for (i = 0; i < p->n; i++) {
		struct rev_member *m = &p->m[i];

		if (m->stage[0])
			(void)recovery_drv_delete(w->peer, m->stage, NULL);
		m->stage[0] = '\0';
		if (m->tail[0] && recovery_snapshot_delete(w->peer, m->tail, NULL) < 0)
			rc = RP_ERROR;
		m->tail[0] = '\0';
		if (m->created && model_device_destroy(w->peer, m->x.id, NULL) < 0)
			rc = RP_ERROR;
		m->created = false;
	}
	return rc;
}

/*
 * Member @x of group @gid at the peer never reached us (pending target): it leaves the group
 * and stays at the peer as a standalone local LUN, data, metadata and access untouched. One
 * row update; a repeat finds it detached already.
 */
static int rev_detach(struct wf *w, const char *gid, const struct model_device *x,
                      struct rp_error *e)
{
	struct model_device t;
	int rc;

	rc = model_device_load(&t, w->peer, x->id, e);
	if (rc == RP_ENOTFOUND) {
		rp_error_clear(e);
		return 0; /* deleted meanwhile: nothing to keep */
	}
	if (rc < 0)
		return rc;
	if (strcmp(t.group, gid) != 0 || !lun_target_pending(&t))
		return 0;
	t.group[0] = '\0';
	t.state = RP_DEV_LOCAL;
	t.peer_array[0] = '\0';
	t.peer_device[0] = '\0';
	rc = model_device_store(w->peer, &t, e);
	if (rc < 0)
		return rc;
	rp_log(RP_LOG_WARNING,
	       "reverse: '%s' ('%s') on array '%s' never reached array '%s' (its target was"
	       " pending): detached from group '%s', kept as a standalone local LUN",
	       t.id, t.name, w->peer->id, w->a->id, gid);
	return 0;
}

/* The switch: staged bases renamed into place, states and roles. */
static int rev_commit(struct wf *w, struct model_group *g, struct rev_plan *p, struct rp_error *e)
{
	size_t i;
	int rc;

	for (i = 0; i < p->n_detach; i++) {
		rc = rev_detach(w, g->id, &p->detach[i], e);
		if (rc < 0)
			return rc;
		recovery_crash_point("reverse-detached");
	}

	for (i = 0; i < p->n; i++) {
		struct rev_member *m = &p->m[i];

		switch (m->action) {
		case REV_REVERSE:
			if (m->stage[0]) {
				rc = recovery_stage_apply(w->peer, &m->x, m->stage, e);
				if (rc < 0)
					return rc;
				m->stage[0] = '\0';
			}
			rc = dev_set(w->peer, &m->x, RP_DEV_TARGET, true, w->a->id, m->d.id, e);
			if (rc < 0)
				return rc;
			/* fall through */
		case REV_FINISH:
			rc = dev_set(w->a, &m->d, RP_DEV_SOURCE, false, w->peer->id, m->x.id, e);
			recovery_crash_point("reverse-switching");
			break;
		case REV_ADOPT:
			if (m->x.state != RP_DEV_TARGET || !m->x.read_only) {
				rc = dev_set(w->peer, &m->x, RP_DEV_TARGET, true, w->a->id, m->d.id,
				             e);
				if (rc < 0)
					return rc;
			}
			rc = dev_set(w->a, &m->d, RP_DEV_SOURCE, m->d.read_only, w->peer->id,
			             m->x.id, e);
			break;
		default:
			rc = 0;
			break;
		}
		if (rc < 0)
			return rc;
	}
	rc = group_set_role(w->peer, g->id, RP_GROUP_TARGET, w->a->id, e);
	if (rc < 0)
		return rc;
	return group_set_role(w->a, g->id, RP_GROUP_SOURCE, w->peer->id, e);
}

/* Prefixes error @e with what was being done: "<what>: <message>". */
static void rev_context(struct rp_error *e, int rc, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static void rev_context(struct rp_error *e, int rc, const char *fmt, ...)
{
	char what[RP_MSG_MAX];
	struct rp_error e2;
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	e2 = *e;
	rp_error_clear(e);
	(void)rp_error_set(e, e2.code ? e2.code : rc, "%s: %s", what, e2.msg);
}

static int reverse_group_pre(struct wf *w, struct model_group *g, struct rp_item *git,
                             struct rp_error *e)
{
	struct model_intent in = MODEL_INTENT_INIT;
	struct model_device *mem = NULL;
	struct model_group pg;
	struct rev_plan *p;
	size_t n = 0, i;
	int rc;

	if (g->role != RP_GROUP_PROMOTED_TARGET && g->role != RP_GROUP_SOURCE)
		return rp_error_set(e, RP_ESTATE,
		                    "group '%s' is %s: only a failed-over group can reverse"
		                    " replication",
		                    g->id, rp_group_role_name(g->role));
	rc = model_group_load(&pg, w->peer, g->id, e);
	if (rc < 0)
		return rc;
	if (g->role == RP_GROUP_SOURCE &&
	    (pg.role != RP_GROUP_TARGET || strcmp(pg.peer_array, w->a->id) != 0))
		return rp_error_set(e, RP_ESTATE,
		                    "group '%s' is a source but on array '%s' it is %s", g->id,
		                    w->peer->id, rp_group_role_name(pg.role));
	if (g->role == RP_GROUP_PROMOTED_TARGET && pg.role != RP_GROUP_SOURCE &&
	    pg.role != RP_GROUP_DEMOTED_SOURCE &&
	    !(pg.role == RP_GROUP_TARGET && strcmp(pg.peer_array, w->a->id) == 0))
		return rp_error_set(e, RP_ESTATE,
		                    "group '%s' on array '%s' is %s: it cannot become a target",
		                    g->id, w->peer->id, rp_group_role_name(pg.role));
	rc = model_device_list(&mem, &n, w->a, g->id, e);
	if (rc < 0)
		return rc;
	p = rp_calloc(1, sizeof(*p));
	if (p)
		p->m = rp_calloc(n ? n : 1, sizeof(*p->m));
	if (!p || !p->m) {
		rp_free(p);
		rp_free(mem);
		return rp_error_set(e, RP_ERROR, "out of memory");
	}
	w->rev = p;
	p->n = n;
	p->done = g->role == RP_GROUP_SOURCE;
	/* 1. plan and check every member: nothing changes yet */
	for (i = 0; i < n; i++) {
		p->m[i].d = mem[i];
		rc = rev_plan_member(w, &p->m[i], e);
		if (rc < 0)
			goto out;
		if (p->m[i].action != REV_DONE)
			p->done = false;
	}
	rc = rev_plan_detach(w, g->id, p, e);
	if (rc < 0)
		goto out;
	if (p->n_detach > 0)
		p->done = false;
	if (p->done)
		goto out;
	/* 2. prepare what can be undone */
	rc = rev_intent_write(&in, w, g->id, p, "prepare", true, e);
	if (rc < 0)
		goto out;
	for (i = 0; rc == 0 && i < n; i++)
		if (p->m[i].action == REV_ADOPT && !p->m[i].x.id[0]) {
			rc = rev_adopt_create(w, g->id, p, &p->m[i], &in, e);
			if (rc < 0)
				rev_context(e, rc,
				            "device '%s' (made after failover): its target on"
				            " array '%s' could not be made",
				            p->m[i].d.id, w->peer->id);
		}
	for (i = 0; rc == 0 && i < n; i++)
		if (p->m[i].action == REV_REVERSE) {
			rc = rev_prepare_reverse(w, g->id, p, &p->m[i], &in, e);
			if (rc < 0)
				rev_context(e, rc,
				            "device '%s': '%s' on array '%s' could not be"
				            " rolled back to its base",
				            p->m[i].d.id, p->m[i].x.id, w->peer->id);
		}
	if (rc == 0) {
		recovery_crash_point("reverse-prepared");
		/* 3. switch; from here on a crash is finished, not rolled back */
		rc = rev_intent_write(&in, w, g->id, p, "commit", false, e);
	}
	if (rc < 0) {
		size_t len = strlen(e->msg);
		bool undone = rev_undo(w, p) == 0;

		if (undone)
			(void)model_intent_delete(&in, w->a, NULL);
		if (len < sizeof(e->msg))
			(void)snprintf(e->msg + len, sizeof(e->msg) - len, "; %s",
			               undone ? "nothing was changed"
			                      : "what was prepared is removed at the next open");
		goto out;
	}
	rc = rev_commit(w, g, p, e);
	if (rc < 0) {
		struct rp_error e2;

		/* the intent stays: the next open of the array (or a repeat) finishes it */
		e2 = *e;
		rp_error_clear(e);
		(void)rp_error_set(
		        e, e2.code ? e2.code : rc,
		        "reverse of group '%s' stopped half-way (repeat it to finish): %s", g->id,
		        e2.msg);
		goto out;
	}
	(void)model_intent_delete(&in, w->a, NULL);
	for (i = 0; i < p->n_detach; i++)
		if (git->n_warnings + 1 < RP_MAX_WARNINGS)
			workflow_item_warn(
			        git, RP_WARN_TAIL_KEPT,
			        "'%s' ('%s') on array '%s' never reached array '%s' (its target was"
			        " to be made by the next sync): it left group '%s' and is kept"
			        " there with its data as a standalone local LUN",
			        p->detach[i].id, p->detach[i].name, w->peer->id, w->a->id, g->id);
out:
	model_intent_release(&in, w->a);
	rp_free(mem);
	return rc;
}

/* Member items of a reversed group, from the plan. */
static int reverse_member_item(struct wf *w, struct model_device *d, struct rp_item *it,
                               struct rp_error *e)
{
	size_t i;

	for (i = 0; i < w->rev->n; i++) {
		const struct rev_member *m = &w->rev->m[i];

		if (strcmp(m->d.id, d->id) != 0)
			continue;
		rp_strlcpy(it->new_id, m->x.id, sizeof(it->new_id));
		rp_strlcpy(it->state, rp_dev_state_name(d->state), sizeof(it->state));
		if (m->action == REV_DONE)
			workflow_item_warn(it, RP_WARN_ALREADY_DONE,
			                   "replication of '%s' already goes to '%s' on array '%s'",
			                   d->id, m->x.id, w->peer->id);
		if (m->tail[0] && m->tail_rp[0])
			workflow_item_warn(it, RP_WARN_TAIL_KEPT,
			                   "writes to '%s' on array '%s' after recovery point '%s'"
			                   " kept as snapshot '%s'",
			                   m->x.id, w->peer->id, m->tail_rp, m->tail);
		else if (m->tail[0])
			workflow_item_warn(it, RP_WARN_TAIL_KEPT,
			                   "'%s' on array '%s' has no common base: its data is kept"
			                   " as snapshot '%s' and the next sync is a full copy",
			                   m->x.id, w->peer->id, m->tail);
		if (m->action != REV_DONE)
			rp_log(RP_LOG_INFO, "reverse: '%s' replicates to '%s' on array '%s'%s",
			       d->id, m->x.id, w->peer->id,
			       m->action == REV_ADOPT ? " (adopted: the next sync copies it all)"
			                              : "");
		return 0;
	}
	return rp_error_set(e, RP_ESTATE, "device '%s' joined group '%s' during the reverse", d->id,
	                    w->g ? w->g->id : "");
}

static int reverse_any_dev(struct wf *w, struct model_device *d, struct rp_item *it,
                           struct rp_error *e)
{
	if (w->g && w->rev)
		return reverse_member_item(w, d, it, e);
	return reverse_dev(w, d, it, e);
}

static int reverse_group_post(struct wf *w, struct model_group *g, struct rp_item *git,
                              bool all_done, struct rp_error *e)
{
	if (w->rev && w->rev->done && all_done)
		workflow_item_warn(git, RP_WARN_ALREADY_DONE,
		                   "replication of group '%s' already goes to array '%s'", g->id,
		                   w->peer->id);
	rp_strlcpy(git->new_id, g->id, sizeof(git->new_id));
	return 0;
}

/* Intent handler: a crash while preparing is rolled back, a crash while switching finished. */
static int reverse_recover(struct rp_array *a, const char *payload, struct rp_error *err)
{
	char gid[RP_ID_MAX], peer_id[RP_ID_MAX], phase[16];
	struct rp_array *peer = NULL;
	const char *line, *nl = NULL;
	int fa = -1, fb = -1, rc;

	(void)model_payload_get(gid, sizeof(gid), payload, "group");
	(void)model_payload_get(peer_id, sizeof(peer_id), payload, "peer");
	(void)model_payload_get(phase, sizeof(phase), payload, "phase");
	if (!gid[0] || !peer_id[0])
		return 0; /* nothing recorded yet: nothing was done */
	if (strcmp(phase, "commit") == 0) {
		const char *groups[1] = { gid };
		struct rp_request req = { .groups = groups, .n_groups = 1, .peer = peer_id };
		struct rp_result *res = NULL;

		rc = rp_reverse(&res, a, &req, err);
		if (rc == 0 && res->n > 0 && res->items[0].code)
			rc = rp_error_set(err, res->items[0].code, "%s", res->items[0].msg);
		rp_result_free(res);
		return rc;
	}
	rc = recovery_open_peer(&peer, a, peer_id, err);
	if (rc < 0)
		return rc;
	rc = recovery_lock_pair(a, gid, &fa, peer, gid, &fb, err);
	for (line = payload; rc == 0 && line && *line; line = nl ? nl + 1 : NULL) {
		char buf[2 * RP_ID_MAX + ARRAY_OBJ_MAX], ld[RP_ID_MAX], pd[RP_ID_MAX];
		size_t len;
		struct model_device x, d;

		nl = strchr(line, '\n');
		len = nl ? (size_t)(nl - line) : strlen(line);
		if (len >= sizeof(buf))
			continue;
		memcpy(buf, line, len);
		buf[len] = '\0';
		if (strncmp(buf, "stage=", 6) == 0) {
			(void)recovery_drv_delete(peer, buf + 6, NULL);
		} else if (strncmp(buf, "adopt=", 6) == 0) {
			char *sp = strchr(buf + 6, ' ');

			if (!sp)
				continue;
			*sp = '\0';
			rp_strlcpy(ld, buf + 6, sizeof(ld));
			rp_strlcpy(pd, sp + 1, sizeof(pd));
			/* only a target still unknown to its local LUN is ours to remove */
			if (model_device_load(&x, peer, pd, NULL) == 0 &&
			    strcmp(x.peer_array, a->id) == 0 && strcmp(x.peer_device, ld) == 0 &&
			    x.state == RP_DEV_TARGET &&
			    !(model_device_load(&d, a, ld, NULL) == 0 &&
			      strcmp(d.peer_device, pd) == 0))
				rc = model_device_destroy(peer, pd, err);
		}
	}
	unlock(fa);
	unlock(fb);
	rp_array_close(peer);
	return rc;
}

__attribute__((constructor)) static void workflow_register_recovery(void)
{
	(void)model_recover_register(REV_OP, reverse_recover);
}

static const struct wf_ops wf_prepare_reverse = {
	.name = "prepareReverseReplication",
	.whole_groups = true,
	.group_pre = prepare_reverse_group,
	.dev = prepare_reverse_dev,
};
static const struct wf_ops wf_reverse = {
	.name = "reverseReplication",
	.whole_groups = true,
	.needs_peer = true,
	.group_pre = reverse_group_pre,
	.dev = reverse_any_dev,
	.group_post = reverse_group_post,
	.group_done = rev_group_done,
};

int rp_prepare_reverse(struct rp_result **out, struct rp_array *a, const struct rp_request *req,
                       struct rp_error *err)
{
	return wf_run(out, a, req, &wf_prepare_reverse, err);
}

int rp_reverse(struct rp_result **out, struct rp_array *a, const struct rp_request *req,
               struct rp_error *err)
{
	return wf_run(out, a, req, &wf_reverse, err);
}

/* ------------------------------------------------------------------------------------------ */
/* Restore: back to the original direction, discarding what the promoted side wrote.         */

static int prepare_restore_dev(struct wf *w, struct model_device *d, struct rp_item *it,
                               struct rp_error *e)
{
	if (d->state == RP_DEV_TARGET) {
		workflow_item_warn(it, RP_WARN_ALREADY_DONE, "'%s' is a replication target already",
		                   d->id);
		return 0;
	}
	if (made_after_failover(w, d)) {
		workflow_item_warn(it, RP_WARN_TAIL_KEPT,
		                   "'%s' was made on array '%s' after failover: restore leaves it"
		                   " out of group '%s' as a standalone local LUN",
		                   d->id, w->a->id, w->g->id);
		return 0;
	}
	return need_state(d, RP_DEV_PROMOTED_TARGET, "", e);
}

static int prepare_restore_group(struct wf *w, struct model_group *g, struct rp_item *git,
                                 struct rp_error *e)
{
	if (g->role == RP_GROUP_PROMOTED_TARGET || g->role == RP_GROUP_TARGET)
		return 0;
	return rp_error_set(e, RP_ESTATE, "group '%s' is %s", g->id, rp_group_role_name(g->role));
}

static int restore_dev(struct wf *w, struct model_device *d, struct rp_item *it, struct rp_error *e)
{
	struct model_device t;
	int rc;

	if (d->state != RP_DEV_SOURCE && d->state != RP_DEV_DEMOTED_SOURCE)
		return rp_error_set(e, RP_ESTATE,
		                    "device '%s' is %s: restore runs on the original"
		                    " sources",
		                    d->id, rp_dev_state_name(d->state));
	if (lun_target_pending(d)) {
		/* never reached the peer: nothing there to discard; the next sync makes it */
		if (d->state == RP_DEV_SOURCE && !d->read_only) {
			workflow_item_warn(it, RP_WARN_ALREADY_DONE,
			                   "'%s' replicates to array '%s' already; its target is"
			                   " made by the next sync",
			                   d->id, d->peer_array);
			return 0;
		}
		rc = dev_set(w->a, d, RP_DEV_SOURCE, false, NULL, NULL, e);
		if (rc < 0)
			return rc;
		rp_strlcpy(it->state, rp_dev_state_name(d->state), sizeof(it->state));
		rp_log(RP_LOG_INFO,
		       "restore: '%s' is a source again; its target on array '%s' is made by the"
		       " next sync",
		       d->id, d->peer_array);
		return 0;
	}
	if (!d->peer_device[0])
		return rp_error_set(e, RP_ESTATE, "device '%s' has no replication peer", d->id);
	rc = model_device_load(&t, w->peer, d->peer_device, e);
	if (rc < 0)
		return rc;
	if (d->state == RP_DEV_SOURCE && !d->read_only && t.state == RP_DEV_TARGET) {
		workflow_item_warn(it, RP_WARN_ALREADY_DONE,
		                   "replication of '%s' to '%s' on array '%s' is in place already",
		                   d->id, t.id, w->peer->id);
		return 0;
	}
	if (t.state == RP_DEV_PROMOTED_TARGET) {
		struct model_snapshot base;

		/* discard what the promoted side wrote: back to the shared base */
		if (t.base_snapshot[0] &&
		    model_snapshot_load(&base, w->peer, t.base_snapshot, NULL) == 0) {
			rc = recovery_rollback(w->peer, &t, base.obj, "res", e);
			if (rc < 0)
				return rc;
		}
		rc = dev_set(w->peer, &t, RP_DEV_TARGET, true, w->a->id, d->id, e);
		if (rc < 0)
			return rc;
	} else if (t.state != RP_DEV_TARGET) {
		return rp_error_set(e, RP_ESTATE,
		                    "'%s' on array '%s' is %s: replication was reversed;"
		                    " restore is not possible",
		                    t.id, w->peer->id, rp_dev_state_name(t.state));
	}
	rc = dev_set(w->a, d, RP_DEV_SOURCE, false, NULL, NULL, e);
	if (rc < 0)
		return rc;
	rp_strlcpy(it->new_id, t.id, sizeof(it->new_id));
	rp_strlcpy(it->state, rp_dev_state_name(d->state), sizeof(it->state));
	rp_log(RP_LOG_INFO, "restore: '%s' replicates to '%s' on array '%s' again", d->id, t.id,
	       w->peer->id);
	return 0;
}

static int restore_group_pre(struct wf *w, struct model_group *g, struct rp_item *git,
                             struct rp_error *e)
{
	if (g->role == RP_GROUP_SOURCE || g->role == RP_GROUP_DEMOTED_SOURCE)
		return 0;
	return rp_error_set(e, RP_ESTATE, "group '%s' is %s: restore runs on the original sources",
	                    g->id, rp_group_role_name(g->role));
}

/*
 * LUNs made at the peer in the failed-over group (local there) are not part of what restore
 * brings back: they leave the group and stay at the peer as standalone local LUNs (their data
 * is kept, never deleted). Returns how many were detached.
 */
static int restore_detach_new(size_t *out, struct wf *w, const struct model_group *g,
                              struct rp_item *git, struct rp_error *e)
{
	struct model_device *mem = NULL;
	size_t n = 0, i;
	int rc;

	*out = 0;
	rc = model_device_list(&mem, &n, w->peer, g->id, e);
	if (rc < 0)
		return rc;
	for (i = 0; i < n && rc == 0; i++) {
		struct model_device t = mem[i];

		if (t.state != RP_DEV_LOCAL)
			continue;
		t.group[0] = '\0';
		rc = model_device_store(w->peer, &t, e);
		if (rc < 0)
			break;
		(*out)++;
		rp_log(RP_LOG_INFO,
		       "restore: '%s' ('%s'), made on array '%s' after failover, left"
		       " group '%s' as a standalone local LUN",
		       t.id, t.name, w->peer->id, g->id);
		if (git->n_warnings + 1 < RP_MAX_WARNINGS)
			workflow_item_warn(
			        git, RP_WARN_TAIL_KEPT,
			        "'%s' ('%s'), made on array '%s' after failover, is not"
			        " part of group '%s' any more: kept there as a standalone"
			        " local LUN",
			        t.id, t.name, w->peer->id, g->id);
	}
	rp_free(mem);
	return rc;
}

static int restore_group_post(struct wf *w, struct model_group *g, struct rp_item *git,
                              bool all_done, struct rp_error *e)
{
	size_t detached = 0;
	int rc;

	rc = restore_detach_new(&detached, w, g, git, e);
	if (rc < 0)
		return rc;
	if (all_done && g->role == RP_GROUP_SOURCE && detached == 0) {
		workflow_item_warn(git, RP_WARN_ALREADY_DONE,
		                   "replication of group '%s' is in place already", g->id);
		return 0;
	}
	rc = group_set_role(w->peer, g->id, RP_GROUP_TARGET, w->a->id, e);
	if (rc < 0)
		return rc;
	return group_set_role(w->a, g->id, RP_GROUP_SOURCE, w->peer->id, e);
}

static const struct wf_ops wf_prepare_restore = {
	.name = "prepareRestoreReplication",
	.whole_groups = true,
	.group_pre = prepare_restore_group,
	.dev = prepare_restore_dev,
};
static const struct wf_ops wf_restore = {
	.name = "restoreReplication",
	.whole_groups = true,
	.needs_peer = true,
	.group_pre = restore_group_pre,
	.dev = restore_dev,
	.group_post = restore_group_post,
};

int rp_prepare_restore(struct rp_result **out, struct rp_array *a, const struct rp_request *req,
                       struct rp_error *err)
{
	return wf_run(out, a, req, &wf_prepare_restore, err);
}

int rp_restore(struct rp_result **out, struct rp_array *a, const struct rp_request *req,
               struct rp_error *err)
{
	return wf_run(out, a, req, &wf_restore, err);
}

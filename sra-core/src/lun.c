/* SPDX-License-Identifier: MIT */
/*
 * lun.c - public rp_lun_*: create (with its replication target on the peer), look up, list,
 * delete, resize, snapshot, clone, rename, path; per-LUN metadata; presentation.
 * Multi-step changes record an intent first (model_intent_add) so a crash is rolled back by
 * the next command that opens the array (model_recover).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lock.h"
#include "model.h"

#define LUN_LOCK_TIMEOUT_MS 5000

const char *rp_dev_state_name(enum rp_dev_state s)
{
	switch (s) {
	case RP_DEV_LOCAL:
		return "local";
	case RP_DEV_SOURCE:
		return "source";
	case RP_DEV_TARGET:
		return "target";
	case RP_DEV_DEMOTED_SOURCE:
		return "demoted-source";
	case RP_DEV_PROMOTED_TARGET:
		return "promoted-target";
	}
	return "unknown";
}

static int lun_arg(struct rp_array *a, const char *id, struct rp_error *err)
{
	if (!a)
		return rp_error_set(err, RP_EINVAL, "invalid argument: 'a'");
	return rp_id_check(id, "LUN id", err);
}

/* Fills the derived fields of a public device: allocated, test snapshot. */
static void lun_fill(struct rp_device *out, struct rp_array *a, const struct model_device *d)
{
	struct model_snapshot *snaps = NULL;
	struct array_obj_stat st;
	struct rp_error e = { 0 };
	size_t n = 0;

	model_device_to_public(out, d);
	memset(&st, 0, sizeof(st));
	if (model_obj_stat(&st, a, d->obj, &e) == 0)
		out->allocated = st.allocated;
	else
		rp_log(RP_LOG_VERBOSE, "LUN '%s': %s", d->id, e.msg);
	rp_error_clear(&e);
	if (model_snapshot_list(&snaps, &n, a, d->id, NULL, "test", &e) == 0 && n > 0) {
		(void)rp_strlcpy(out->test_snapshot, snaps[0].id, sizeof(out->test_snapshot));
		(void)rp_strlcpy(out->test_snapshot_wwn, snaps[0].wwn,
		                 sizeof(out->test_snapshot_wwn));
	}
	rp_free(snaps);
}

/* ------------------------------------------------------------------------------------------ */
/* Create                                                                                      */

struct lun_plan {
	const char *name;
	uint64_t size;
	const char *group;       /* NULL/"" standalone */
	bool replicate;          /* resolved: a target is made on the peer */
	char peer[RP_ID_MAX];    /* resolved peer id when replicating */
	const char *clone_src;   /* driver object to clone, NULL = new empty object */
	bool read_only;          /* snapshots */
	const char *snapshot_of; /* snapshots and clones */
};

/* Writes the payload of a lun_create intent. */
static void lun_payload(char *buf, size_t len, const char *device, const char *obj,
                        const char *group, const char *peer, const char *peer_device,
                        const char *peer_obj, bool peer_group_new)
{
	(void)snprintf(buf, len,
	               "device=%s\nobj=%s\ngroup=%s\npeer=%s\npeer_device=%s\npeer_obj=%s\n"
	               "peer_group_new=%d\n",
	               device, obj, group ? group : "", peer ? peer : "",
	               peer_device ? peer_device : "", peer_obj ? peer_obj : "",
	               peer_group_new ? 1 : 0);
}

int lun_create_rollback(struct rp_array *a, const char *payload, struct rp_error *err)
{
	char device[RP_ID_MAX], obj[ARRAY_OBJ_MAX], group[RP_ID_MAX], peer_id[RP_ID_MAX];
	char peer_device[RP_ID_MAX], peer_obj[ARRAY_OBJ_MAX], flag[8];
	struct rp_array *peer = NULL;
	struct model_device d;
	struct rp_error e = { 0 };
	int rc;

	(void)model_payload_get(device, sizeof(device), payload, "device");
	(void)model_payload_get(obj, sizeof(obj), payload, "obj");
	(void)model_payload_get(group, sizeof(group), payload, "group");
	(void)model_payload_get(peer_id, sizeof(peer_id), payload, "peer");
	(void)model_payload_get(peer_device, sizeof(peer_device), payload, "peer_device");
	(void)model_payload_get(peer_obj, sizeof(peer_obj), payload, "peer_obj");
	(void)model_payload_get(flag, sizeof(flag), payload, "peer_group_new");

	/* Committed after all (the intent is deleted in that same transaction, so this is only a
	 * safety net): nothing to roll back. */
	if (device[0]) {
		rc = model_device_load(&d, a, device, &e);
		if (rc == 0)
			return 0;
		if (rc != RP_ENOTFOUND) /* cannot tell (busy database): keep the intent */
			return rp_error_set(err, rc, "%s", e.msg);
		rp_error_clear(&e);
	}
	/* The peer half first: when the peer is down the intent stays for a later try. */
	if (peer_id[0] && (peer_device[0] || peer_obj[0])) {
		rc = rp_array_open_peer(&peer, a, peer_id, err);
		if (rc < 0)
			return rc;
		rc = peer_device[0] ? model_device_load(&d, peer, peer_device, &e) : RP_ENOTFOUND;
		if (rc == 0 && strcmp(d.peer_array, a->id) == 0 &&
		    strcmp(d.peer_device, device) == 0) {
			rc = model_device_destroy(peer, peer_device, err);
		} else if (rc == RP_ENOTFOUND && peer_obj[0]) {
			rc = model_obj_delete(peer, peer_obj, err);
		} else if (rc < 0 && rc != RP_ENOTFOUND) {
			rc = rp_error_set(err, rc, "%s", e.msg);
		} else {
			rc = 0; /* the id is someone else's now: nothing of ours there */
		}
		if (rc == 0 && group[0] && strcmp(flag, "1") == 0) {
			struct model_group g;
			size_t n = 1;

			/* Only if still empty: check and delete in one transaction. */
			rp_error_clear(&e);
			rc = meta_txn_begin(peer->db, err);
			if (rc == 0 && model_group_load(&g, peer, group, &e) == 0 &&
			    g.role == RP_GROUP_TARGET &&
			    model_group_count_devices(&n, peer, group, &e) == 0 && n == 0)
				rc = model_group_delete_row(peer, group, err);
			if (rc == 0)
				rc = meta_txn_commit(peer->db, err);
			else
				meta_txn_rollback(peer->db);
		}
		rp_array_close(peer);
		if (rc < 0)
			return rc;
	}
	if (obj[0])
		return model_obj_delete(a, obj, err);
	return 0;
}

/* Decides replication and the peer from the group and the options. */
static int lun_plan_resolve(struct lun_plan *p, struct rp_array *a, const char *peer_opt,
                            struct rp_error *err)
{
	struct model_group g;
	struct rp_peer peer;
	size_t n = 0;
	int rc;

	if (p->group && *p->group) {
		rc = model_group_load(&g, a, p->group, err);
		if (rc == 0) {
			switch (g.role) {
			case RP_GROUP_TARGET:
			case RP_GROUP_DEMOTED_SOURCE:
				return rp_error_set(err, RP_ESTATE,
				                    "group '%s' is a replication %s on array '%s': "
				                    "add LUNs at its source",
				                    g.id, rp_group_role_name(g.role), a->id);
			case RP_GROUP_SOURCE:
				if (peer_opt && *peer_opt && strcmp(peer_opt, g.peer_array) != 0)
					return rp_error_set(
					        err, RP_EINVAL,
					        "group '%s' replicates to array '%s', not "
					        "'%s'",
					        g.id, g.peer_array, peer_opt);
				p->replicate = true;
				(void)rp_strlcpy(p->peer, g.peer_array, sizeof(p->peer));
				return 0;
			case RP_GROUP_PROMOTED_TARGET:
				if (p->replicate)
					return rp_error_set(
					        err, RP_ESTATE,
					        "group '%s' is failed over on array '%s': "
					        "reverse it before adding replicated LUNs",
					        g.id, a->id);
				return 0;
			default:
				if (!p->replicate)
					return 0;
				rc = model_group_count_devices(&n, a, g.id, err);
				if (rc < 0)
					return rc;
				if (n > 0)
					return rp_error_set(
					        err, RP_ESTATE,
					        "group '%s' holds LUNs that do not replicate: "
					        "a replicated LUN cannot join it",
					        g.id);
				break;
			}
		} else if (rc != RP_ENOTFOUND) {
			return rc;
		} else {
			rp_error_clear(err);
		}
	}
	if (!p->replicate)
		return 0;
	rc = model_peer_get(&peer, a, peer_opt, err);
	if (rc < 0)
		return rc;
	(void)rp_strlcpy(p->peer, peer.array_id, sizeof(p->peer));
	return 0;
}

/* Checks that the peer can take the target group (absent, or a target of @a). *is_new. */
static int lun_peer_group_check(bool *is_new, struct rp_array *peer, struct rp_array *a,
                                const char *group, struct rp_error *err)
{
	struct model_group g;
	int rc;

	*is_new = false;
	if (!group || !*group)
		return 0;
	rc = model_group_load(&g, peer, group, err);
	if (rc == RP_ENOTFOUND) {
		rp_error_clear(err);
		*is_new = true;
		return 0;
	}
	if (rc < 0)
		return rc;
	if (g.role != RP_GROUP_TARGET || strcmp(g.peer_array, a->id) != 0)
		return rp_error_set(err, RP_ESTATE,
		                    "group '%s' on peer array '%s' is %s, not a target of '%s'",
		                    group, peer->id, rp_group_role_name(g.role), a->id);
	return 0;
}

/*
 * The peer half of a replicated create: target device T on @peer, empty, read-only, state
 * target. @tid and @tobj are set as soon as they are allocated (for the caller's intent).
 */
static int lun_create_peer(struct rp_array *peer, struct rp_array *a, const struct lun_plan *p,
                           const char *source_id, const char *name, struct model_intent *lin,
                           const char *lobj, bool peer_group_new, char tid[RP_ID_MAX],
                           char tobj[ARRAY_OBJ_MAX], struct rp_error *err)
{
	struct model_intent pin = MODEL_INTENT_INIT;
	char payload[1024];
	struct model_device t;
	struct model_group g;
	int64_t seq = 0;
	int rc;

	memset(&t, 0, sizeof(t));
	rc = meta_txn_begin(peer->db, err);
	if (rc < 0)
		return rc;
	rc = meta_next_seq(&seq, peer->db, err);
	if (rc == 0)
		rc = model_device_id(t.id, peer->id, seq, err);
	if (rc < 0) {
		meta_txn_rollback(peer->db);
		return rc;
	}
	model_device_obj(t.obj, t.id);
	lun_payload(payload, sizeof(payload), t.id, t.obj, NULL, NULL, NULL, NULL, false);
	rc = model_intent_add(&pin, peer, "lun_create", payload, err);
	if (rc < 0) {
		meta_txn_rollback(peer->db);
		return rc;
	}
	rc = meta_txn_commit(peer->db, err);
	if (rc < 0)
		goto out;
	/* Tell our own intent where the target lives before it exists. */
	(void)rp_strlcpy(tid, t.id, RP_ID_MAX);
	(void)rp_strlcpy(tobj, t.obj, ARRAY_OBJ_MAX);
	lun_payload(payload, sizeof(payload), source_id, lobj, p->group, p->peer, t.id, t.obj,
	            peer_group_new);
	rc = model_intent_update(lin, a, payload, err);
	if (rc < 0)
		goto undo;
	rc = model_obj_create(peer, t.obj, p->size, err);
	if (rc < 0)
		goto undo;
	t.seq = seq;
	(void)rp_strlcpy(t.name, name, sizeof(t.name));
	wwn_device(t.wwn, peer->id, seq);
	(void)rp_strlcpy(t.group, p->group ? p->group : "", sizeof(t.group));
	t.size = p->size;
	t.state = RP_DEV_TARGET;
	t.read_only = true;
	(void)rp_strlcpy(t.peer_array, a->id, sizeof(t.peer_array));
	(void)rp_strlcpy(t.peer_device, source_id, sizeof(t.peer_device));
	t.created_ms = rp_now_ms();
	rc = meta_txn_begin(peer->db, err);
	if (rc < 0)
		goto undo;
	if (p->group && *p->group) {
		rc = model_group_load(&g, peer, p->group, err);
		if (rc == RP_ENOTFOUND) {
			rp_error_clear(err);
			memset(&g, 0, sizeof(g));
			(void)rp_strlcpy(g.id, p->group, sizeof(g.id));
			(void)rp_strlcpy(g.name, p->group, sizeof(g.name));
			g.role = RP_GROUP_TARGET;
			(void)rp_strlcpy(g.peer_array, a->id, sizeof(g.peer_array));
			g.retention = 3;
			g.created_ms = t.created_ms;
			rc = model_group_insert(peer, &g, err);
		} else if (rc == 0 && (g.role != RP_GROUP_TARGET || strcmp(g.peer_array, a->id))) {
			rc = rp_error_set(err, RP_ESTATE,
			                  "group '%s' on peer array '%s' is not a "
			                  "target of '%s'",
			                  g.id, peer->id, a->id);
		}
	}
	if (rc == 0)
		rc = model_device_insert(peer, &t, err);
	if (rc == 0)
		rc = model_intent_delete(&pin, peer, err);
	if (rc < 0) {
		meta_txn_rollback(peer->db);
		goto undo;
	}
	rc = meta_txn_commit(peer->db, err);
	if (rc < 0)
		goto undo;
	goto out;
undo:
	/* The object (if made) goes; the peer intent is then done. */
	if (model_obj_delete(peer, t.obj, NULL) == 0)
		(void)model_intent_delete(&pin, peer, NULL);
out:
	model_intent_release(&pin, peer);
	return rc;
}

static int lun_create_common(struct rp_device *out, struct rp_array *a, const struct lun_plan *p,
                             struct rp_error *err)
{
	struct model_intent in = MODEL_INTENT_INIT;
	struct rp_array *peer = NULL;
	struct model_device d;
	struct model_group g;
	char payload[1024], tid[RP_ID_MAX] = "", tobj[ARRAY_OBJ_MAX] = "";
	bool peer_group_new = false;
	int64_t seq = 0;
	int lfd = -1, rc;

	memset(&d, 0, sizeof(d));
	/* Workflows and syncs of the group take the same lock: they never see half a member. */
	if (p->group && *p->group) {
		struct rp_error e = { 0 };

		rc = lock_group(a, p->group, &lfd, &e);
		if (rc < 0)
			return rp_error_set(err, rc == RP_ETIMEOUT ? RP_EBUSY : rc, "%s", e.msg);
	}
	if (p->replicate) {
		rc = rp_array_open_peer(&peer, a, p->peer, err);
		if (rc < 0)
			goto out;
		rc = lun_peer_group_check(&peer_group_new, peer, a, p->group, err);
		if (rc < 0)
			goto out;
	}
	/* 1. Allocate the id and record the intent. */
	rc = meta_txn_begin(a->db, err);
	if (rc < 0)
		goto out;
	rc = meta_next_seq(&seq, a->db, err);
	if (rc == 0)
		rc = model_device_id(d.id, a->id, seq, err);
	if (rc < 0) {
		meta_txn_rollback(a->db);
		goto out;
	}
	model_device_obj(d.obj, d.id);
	lun_payload(payload, sizeof(payload), d.id, d.obj, p->group, p->replicate ? p->peer : NULL,
	            NULL, NULL, peer_group_new);
	rc = model_intent_add(&in, a, "lun_create", payload, err);
	if (rc < 0) {
		meta_txn_rollback(a->db);
		goto out;
	}
	rc = meta_txn_commit(a->db, err);
	if (rc < 0)
		goto out;
	/* 2. The local data object. */
	rc = p->clone_src ? model_obj_clone(a, p->clone_src, d.obj, err)
	                  : model_obj_create(a, d.obj, p->size, err);
	if (rc < 0)
		goto rollback;
	/* 3. The target on the peer. */
	if (p->replicate) {
		rc = lun_create_peer(peer, a, p, d.id, p->name, &in, d.obj, peer_group_new, tid,
		                     tobj, err);
		if (rc < 0)
			goto rollback;
	}
	/* 4. Commit the device (and its group) and drop the intent in one transaction. */
	d.seq = seq;
	(void)rp_strlcpy(d.name, p->name, sizeof(d.name));
	wwn_device(d.wwn, a->id, seq);
	(void)rp_strlcpy(d.group, p->group ? p->group : "", sizeof(d.group));
	d.size = p->size;
	d.state = p->replicate ? RP_DEV_SOURCE : RP_DEV_LOCAL;
	d.read_only = p->read_only;
	if (p->replicate) {
		(void)rp_strlcpy(d.peer_array, p->peer, sizeof(d.peer_array));
		(void)rp_strlcpy(d.peer_device, tid, sizeof(d.peer_device));
	}
	(void)rp_strlcpy(d.snapshot_of, p->snapshot_of ? p->snapshot_of : "",
	                 sizeof(d.snapshot_of));
	d.created_ms = rp_now_ms();
	rc = meta_txn_begin(a->db, err);
	if (rc < 0)
		goto rollback;
	if (d.group[0]) {
		rc = model_group_load(&g, a, d.group, err);
		if (rc == RP_ENOTFOUND) {
			rp_error_clear(err);
			memset(&g, 0, sizeof(g));
			(void)rp_strlcpy(g.id, d.group, sizeof(g.id));
			(void)rp_strlcpy(g.name, d.group, sizeof(g.name));
			g.role = p->replicate ? RP_GROUP_SOURCE : RP_GROUP_LOCAL;
			(void)rp_strlcpy(g.peer_array, p->replicate ? p->peer : "",
			                 sizeof(g.peer_array));
			g.retention = 3;
			g.created_ms = d.created_ms;
			rc = model_group_insert(a, &g, err);
		} else if (rc == 0) {
			/* Re-check under the write lock: another command may have changed it. */
			if (p->replicate && g.role == RP_GROUP_LOCAL) {
				g.role = RP_GROUP_SOURCE;
				(void)rp_strlcpy(g.peer_array, p->peer, sizeof(g.peer_array));
				rc = model_group_store(a, &g, err);
			} else if (p->replicate != (g.role == RP_GROUP_SOURCE) &&
			           !(g.role == RP_GROUP_PROMOTED_TARGET && !p->replicate)) {
				rc = rp_error_set(err, RP_ESTATE,
				                  "group '%s' changed role to %s meanwhile", g.id,
				                  rp_group_role_name(g.role));
			}
		}
	}
	if (rc == 0)
		rc = model_device_insert(a, &d, err);
	if (rc == 0)
		rc = model_intent_delete(&in, a, err);
	if (rc < 0) {
		meta_txn_rollback(a->db);
		goto rollback;
	}
	rc = meta_txn_commit(a->db, err);
	if (rc < 0)
		goto rollback;
	rp_log(RP_LOG_INFO, "array '%s': LUN '%s' ('%s', %" PRIu64 " bytes) created%s%s", a->id,
	       d.id, d.name, d.size, p->replicate ? ", target " : "", p->replicate ? tid : "");
	if (out)
		lun_fill(out, a, &d);
	goto out;
rollback:
	/* Undo what exists, then drop the intent; if undo fails the intent stays for recovery. */
	{
		struct rp_error e = { 0 };

		lun_payload(payload, sizeof(payload), d.id, d.obj, p->group,
		            p->replicate ? p->peer : NULL, tid, tobj, peer_group_new);
		if (lun_create_rollback(a, payload, &e) == 0)
			(void)model_intent_delete(&in, a, NULL);
		else
			rp_log(RP_LOG_WARNING, "array '%s': rollback of LUN '%s' postponed: %s",
			       a->id, d.id, e.msg);
	}
out:
	model_intent_release(&in, a);
	rp_array_close(peer);
	unlock(lfd);
	return rc;
}

int rp_lun_create(struct rp_device *out, struct rp_array *a, const char *name, uint64_t size,
                  const struct rp_lun_create_opts *opts, struct rp_error *err)
{
	struct lun_plan p;
	int rc;

	if (!a)
		return rp_error_set(err, RP_EINVAL, "invalid argument: 'a'");
	rc = model_name_check(name, "LUN name", err);
	if (rc < 0)
		return rc;
	if (size == 0)
		return rp_error_set(err, RP_EINVAL, "LUN size must be larger than 0");
	if (size > (uint64_t)INT64_MAX)
		return rp_error_set(err, RP_EINVAL, "LUN size %" PRIu64 " is too large", size);
	if (opts && opts->group && *opts->group) {
		rc = rp_id_check(opts->group, "group id", err);
		if (rc < 0)
			return rc;
	}
	if (opts && opts->peer && *opts->peer) {
		rc = rp_id_check(opts->peer, "peer array id", err);
		if (rc < 0)
			return rc;
	}
	memset(&p, 0, sizeof(p));
	p.name = name;
	p.size = size;
	p.group = opts && opts->group && *opts->group ? opts->group : NULL;
	p.replicate = opts && opts->replicate;
	rc = lun_plan_resolve(&p, a, opts ? opts->peer : NULL, err);
	if (rc < 0)
		return rc;
	return lun_create_common(out, a, &p, err);
}

/* Snapshot or clone of LUN @id: a new LUN in the same group holding a copy of its data. */
static int lun_copy(struct rp_device *out, struct rp_array *a, const char *id, const char *name,
                    bool snapshot, struct rp_error *err)
{
	struct model_device src;
	struct lun_plan p;
	int rc;

	rc = lun_arg(a, id, err);
	if (rc < 0)
		return rc;
	if (name) {
		rc = model_name_check(name, "LUN name", err);
		if (rc < 0)
			return rc;
	}
	rc = model_device_load(&src, a, id, err);
	if (rc < 0)
		return rc;
	if (src.state == RP_DEV_TARGET)
		return rp_error_set(err, RP_ESTATE,
		                    "LUN '%s' is a replication target: use a test failover for a "
		                    "copy",
		                    id);
	memset(&p, 0, sizeof(p));
	p.name = name ? name : src.name;
	p.size = src.size;
	p.group = src.group[0] ? src.group : NULL;
	p.clone_src = src.obj;
	p.read_only = snapshot;
	p.snapshot_of = src.id;
	rc = lun_plan_resolve(&p, a, NULL, err);
	if (rc < 0)
		return rc;
	return lun_create_common(out, a, &p, err);
}

int rp_lun_snapshot(struct rp_device *out, struct rp_array *a, const char *id, const char *name,
                    struct rp_error *err)
{
	return lun_copy(out, a, id, name, true, err);
}

int rp_lun_clone(struct rp_device *out, struct rp_array *a, const char *id, const char *name,
                 struct rp_error *err)
{
	return lun_copy(out, a, id, name, false, err);
}

/* ------------------------------------------------------------------------------------------ */
/* Read                                                                                        */

int rp_lun_get(struct rp_device *out, struct rp_array *a, const char *id, struct rp_error *err)
{
	struct model_device d;
	int rc;

	if (!a || !out)
		return rp_error_set(err, RP_EINVAL, "invalid argument: 'a' or 'out'");
	rc = model_device_find(&d, a, id, err);
	if (rc < 0)
		return rc;
	lun_fill(out, a, &d);
	return 0;
}

int rp_lun_list(struct rp_device **out, size_t *n, struct rp_array *a, const char *group,
                struct rp_error *err)
{
	struct model_device *rows = NULL;
	struct rp_device *v = NULL;
	struct model_group g;
	size_t cnt = 0, i;
	int rc;

	if (!a || !out || !n)
		return rp_error_set(err, RP_EINVAL, "invalid argument: 'a', 'out' or 'n'");
	if (group) {
		rc = model_group_load(&g, a, group, err);
		if (rc < 0)
			return rc;
	}
	rc = model_device_list(&rows, &cnt, a, group, err);
	if (rc < 0)
		return rc;
	v = rp_calloc(cnt ? cnt : 1, sizeof(*v));
	if (!v) {
		rp_free(rows);
		return rp_error_set(err, RP_ERROR, "out of memory");
	}
	for (i = 0; i < cnt; i++)
		lun_fill(&v[i], a, &rows[i]);
	rp_free(rows);
	*out = v;
	*n = cnt;
	return 0;
}

int rp_lun_path(char *buf, size_t len, struct rp_array *a, const char *id, struct rp_error *err)
{
	struct model_device d;
	struct model_snapshot s;
	struct rp_error e = { 0 };
	const char *obj;
	int rc;

	rc = lun_arg(a, id, err);
	if (rc < 0)
		return rc;
	if (!buf || len == 0)
		return rp_error_set(err, RP_EINVAL, "invalid argument: 'buf'");
	rc = model_device_load(&d, a, id, &e);
	if (rc == 0) {
		obj = d.obj;
	} else if (rc == RP_ENOTFOUND) {
		rc = model_snapshot_load(&s, a, id, NULL);
		if (rc < 0 || strcmp(s.kind, "test") != 0)
			return rp_error_set(err, RP_ENOTFOUND, "%s", e.msg);
		obj = s.obj;
	} else {
		return rp_error_set(err, rc, "%s", e.msg);
	}
	if (!a->drv->ops->obj_path)
		return rp_error_set(err, RP_ENOTSUPPORTED,
		                    "array driver '%s' has no local paths for LUNs", a->driver);
	return a->drv->ops->obj_path(buf, len, a->drv, obj, err);
}

/* ------------------------------------------------------------------------------------------ */
/* Delete, resize, rename                                                                      */

static int lun_lock(struct rp_array *a, const struct model_device *d, int *fd, struct rp_error *err)
{
	struct rp_error e = { 0 };
	int rc;

	rc = lock_group_timeout(a, d->group[0] ? d->group : d->id, LUN_LOCK_TIMEOUT_MS, fd, &e);
	if (rc == RP_ETIMEOUT)
		return rp_error_set(err, RP_EBUSY, "LUN '%s' is busy: %s", d->id, e.msg);
	if (rc < 0)
		return rp_error_set(err, rc, "%s", e.msg);
	return 0;
}

int lun_peer_target_delete(struct rp_array *a, const char *payload, struct rp_error *err)
{
	char device[RP_ID_MAX], peer_id[RP_ID_MAX], peer_device[RP_ID_MAX];
	struct rp_array *peer = NULL;
	struct model_device d, t;
	struct rp_error e = { 0 };
	int rc;

	(void)model_payload_get(device, sizeof(device), payload, "device");
	(void)model_payload_get(peer_id, sizeof(peer_id), payload, "peer");
	(void)model_payload_get(peer_device, sizeof(peer_device), payload, "peer_device");
	if (!device[0] || !peer_id[0] || !peer_device[0])
		return 0; /* nothing we can act on */
	/* The source is still there (its delete never committed): keep the target. */
	rc = model_device_load(&d, a, device, &e);
	if (rc == 0)
		return 0;
	if (rc != RP_ENOTFOUND) /* cannot tell (busy database): keep the intent */
		return rp_error_set(err, rc, "%s", e.msg);
	rc = rp_array_open_peer(&peer, a, peer_id, err);
	if (rc == RP_ENOTFOUND)
		return 0; /* unpaired meanwhile */
	if (rc < 0)
		return rc;
	rp_error_clear(&e);
	rc = model_device_load(&t, peer, peer_device, &e);
	if (rc == 0 && t.state == RP_DEV_TARGET && strcmp(t.peer_device, device) == 0 &&
	    strcmp(t.peer_array, a->id) == 0)
		rc = model_device_destroy(peer, t.id, err);
	else if (rc == RP_ENOTFOUND || rc == 0)
		rc = 0; /* gone, or not ours any more (failed over, reused): leave it */
	else
		rc = rp_error_set(err, rc, "%s", e.msg);
	rp_array_close(peer);
	return rc;
}

int rp_lun_delete(struct rp_array *a, const char *id, struct rp_error *err)
{
	struct model_intent in = MODEL_INTENT_INIT;
	struct model_device d;
	struct model_group g;
	struct rp_error e = { 0 };
	char payload[256];
	int64_t n = 0;
	bool busy = false;
	int fd = -1, rc;

	rc = lun_arg(a, id, err);
	if (rc < 0)
		return rc;
	rc = model_device_load(&d, a, id, err);
	if (rc < 0)
		return rc;
	if (d.state == RP_DEV_TARGET)
		return rp_error_set(err, RP_ESTATE,
		                    "LUN '%s' is a replication target: delete its source '%s' on "
		                    "array '%s'",
		                    id, d.peer_device, d.peer_array);
	rc = lun_lock(a, &d, &fd, err);
	if (rc < 0)
		return rc;
	rc = meta_query_int(&n, a->db, err,
	                    "SELECT COUNT(*) FROM presentations WHERE device = ? AND rw != 0", "t",
	                    id);
	if (rc < 0)
		goto out;
	if (n > 0) {
		rc = rp_error_set(err, RP_EBUSY, "LUN '%s' is presented read-write", id);
		goto out;
	}
	rc = meta_query_int(&n, a->db, err,
	                    "SELECT COUNT(*) FROM snapshots WHERE device = ? AND kind = 'test'",
	                    "t", id);
	if (rc < 0)
		goto out;
	if (n == 0 && d.group[0] && model_group_load(&g, a, d.group, NULL) == 0 &&
	    g.test_snapshot[0])
		n = 1;
	if (n > 0) {
		rc = rp_error_set(err, RP_EBUSY, "a test failover is running on LUN '%s'", id);
		goto out;
	}
	rc = model_sync_running(&busy, a, id, d.group, err);
	if (rc < 0)
		goto out;
	if (busy) {
		rc = rp_error_set(err, RP_EBUSY, "a sync session is in progress for LUN '%s'", id);
		goto out;
	}
	/* A source takes its target along. The intent makes sure it happens even after a crash
	 * or while the peer is down: the next open of this array retries. */
	if (d.state == RP_DEV_SOURCE && d.peer_array[0] && d.peer_device[0]) {
		(void)snprintf(payload, sizeof(payload), "device=%s\npeer=%s\npeer_device=%s\n", id,
		               d.peer_array, d.peer_device);
		rc = model_intent_add(&in, a, "peer_target_delete", payload, err);
		if (rc < 0)
			goto out;
	}
	rc = model_device_destroy(a, id, err);
	if (rc < 0) {
		(void)model_intent_delete(&in, a, NULL);
		goto out;
	}
	rp_log(RP_LOG_INFO, "array '%s': LUN '%s' deleted", a->id, id);
	if (in.id > 0) {
		if (lun_peer_target_delete(a, payload, &e) == 0)
			(void)model_intent_delete(&in, a, NULL);
		else
			rp_log(RP_LOG_WARNING,
			       "LUN '%s': target '%s' on array '%s' not deleted yet (will retry): "
			       "%s",
			       id, d.peer_device, d.peer_array, e.msg);
	}
out:
	model_intent_release(&in, a);
	unlock(fd);
	return rc;
}

int rp_lun_resize(struct rp_array *a, const char *id, uint64_t size, struct rp_error *err)
{
	struct rp_array *peer = NULL;
	struct model_device d, t;
	int fd = -1, rc;

	rc = lun_arg(a, id, err);
	if (rc < 0)
		return rc;
	if (size == 0 || size > (uint64_t)INT64_MAX)
		return rp_error_set(err, RP_EINVAL, "LUN size %" PRIu64 " is not valid", size);
	rc = model_device_load(&d, a, id, err);
	if (rc < 0)
		return rc;
	if (size < d.size)
		return rp_error_set(err, RP_EINVAL,
		                    "LUN '%s' cannot shrink from %" PRIu64 " to %" PRIu64 " bytes",
		                    id, d.size, size);
	if (size == d.size)
		return 0;
	if (d.state == RP_DEV_TARGET || d.state == RP_DEV_DEMOTED_SOURCE)
		return rp_error_set(err, RP_ESTATE, "LUN '%s' is %s: resize it at its source", id,
		                    rp_dev_state_name(d.state));
	rc = lun_lock(a, &d, &fd, err);
	if (rc < 0)
		return rc;
	/* The target first: a target larger than its source is harmless, the reverse is not. */
	if (d.state == RP_DEV_SOURCE && d.peer_array[0] && d.peer_device[0]) {
		rc = rp_array_open_peer(&peer, a, d.peer_array, err);
		if (rc < 0)
			goto out;
		rc = model_device_load(&t, peer, d.peer_device, err);
		if (rc < 0)
			goto out;
		if (t.size < size) {
			rc = model_obj_resize(peer, t.obj, size, err);
			if (rc < 0)
				goto out;
			t.size = size;
			rc = model_device_store(peer, &t, err);
			if (rc < 0)
				goto out;
		}
	}
	rc = model_obj_resize(a, d.obj, size, err);
	if (rc < 0)
		goto out;
	rc = meta_run(NULL, a->db, err, "UPDATE devices SET size = ? WHERE id = ?", "ut", size, id);
	if (rc == 0)
		rp_log(RP_LOG_INFO, "array '%s': LUN '%s' resized to %" PRIu64 " bytes", a->id, id,
		       size);
out:
	rp_array_close(peer);
	unlock(fd);
	return rc;
}

int rp_lun_rename(struct rp_array *a, const char *id, const char *name, struct rp_error *err)
{
	struct rp_array *peer = NULL;
	struct model_device d, t;
	struct rp_error e = { 0 };
	int changes = 0, rc;

	rc = lun_arg(a, id, err);
	if (rc < 0)
		return rc;
	rc = model_name_check(name, "LUN name", err);
	if (rc < 0)
		return rc;
	rc = model_device_load(&d, a, id, err);
	if (rc < 0)
		return rc;
	if (d.state == RP_DEV_TARGET)
		return rp_error_set(err, RP_ESTATE,
		                    "LUN '%s' is a replication target: rename its "
		                    "source",
		                    id);
	rc = meta_run(&changes, a->db, err, "UPDATE devices SET name = ? WHERE id = ?", "tt", name,
	              id);
	if (rc < 0)
		return rc;
	if (d.state == RP_DEV_SOURCE && d.peer_array[0] && d.peer_device[0]) {
		if (rp_array_open_peer(&peer, a, d.peer_array, &e) == 0 &&
		    model_device_load(&t, peer, d.peer_device, &e) == 0 &&
		    strcmp(t.peer_device, id) == 0)
			(void)meta_run(NULL, peer->db, &e,
			               "UPDATE devices SET name = ? WHERE id = ?", "tt", name,
			               t.id);
		if (e.code)
			rp_log(RP_LOG_WARNING, "LUN '%s': target not renamed: %s", id, e.msg);
		rp_array_close(peer);
	}
	return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Per-LUN metadata                                                                            */

static int lun_exists(struct rp_array *a, const char *id, struct rp_error *err)
{
	struct model_device d;
	int rc;

	rc = lun_arg(a, id, err);
	if (rc < 0)
		return rc;
	return model_device_load(&d, a, id, err);
}

int rp_lun_meta_set(struct rp_array *a, const char *id, const char *key, const char *value,
                    struct rp_error *err)
{
	int rc;

	rc = lun_exists(a, id, err);
	if (rc < 0)
		return rc;
	if (!value)
		return rp_error_set(err, RP_EINVAL, "metadata value of '%.127s' is missing",
		                    key ? key : "");
	rc = model_kv_check(key, value, err);
	if (rc < 0)
		return rc;
	return meta_run(NULL, a->db, err,
	                "INSERT INTO lun_meta(device, key, value) VALUES(?, ?, ?)"
	                " ON CONFLICT(device, key) DO UPDATE SET value = excluded.value",
	                "ttt", id, key, value);
}

int rp_lun_meta_get(char **out, struct rp_array *a, const char *id, const char *key,
                    struct rp_error *err)
{
	sqlite3_stmt *st = NULL;
	const unsigned char *v;
	char *copy;
	int rc;

	if (!out)
		return rp_error_set(err, RP_EINVAL, "invalid argument: 'out'");
	rc = lun_exists(a, id, err);
	if (rc < 0)
		return rc;
	rc = model_kv_check(key, NULL, err);
	if (rc < 0)
		return rc;
	rc = meta_prepare(&st, a->db, err,
	                  "SELECT value FROM lun_meta WHERE device = ? AND key = ?", "tt", id, key);
	if (rc < 0)
		return rc;
	rc = meta_step(st, a->db, err);
	if (rc == 0) {
		rc = rp_error_set(err, RP_ENOTFOUND, "LUN '%s' has no metadata '%s'", id, key);
	} else if (rc == 1) {
		v = sqlite3_column_text(st, 0);
		copy = rp_strdup(v ? (const char *)v : "");
		if (!copy) {
			rc = rp_error_set(err, RP_ERROR, "out of memory");
		} else {
			*out = copy;
			rc = 0;
		}
	}
	sqlite3_finalize(st);
	return rc;
}

int rp_lun_meta_del(struct rp_array *a, const char *id, const char *key, struct rp_error *err)
{
	int rc;

	rc = lun_exists(a, id, err);
	if (rc < 0)
		return rc;
	rc = model_kv_check(key, NULL, err);
	if (rc < 0)
		return rc;
	return meta_run(NULL, a->db, err, "DELETE FROM lun_meta WHERE device = ? AND key = ?", "tt",
	                id, key);
}

int rp_lun_meta_foreach(struct rp_array *a, const char *id, rp_meta_cb cb, void *payload,
                        struct rp_error *err)
{
	struct model_kv *kv = NULL;
	size_t n = 0, i;
	int rc;

	if (!cb)
		return rp_error_set(err, RP_EINVAL, "invalid argument: 'cb'");
	rc = lun_exists(a, id, err);
	if (rc < 0)
		return rc;
	rc = model_kv_list(&kv, &n, a, MODEL_LUN_META, id, err);
	if (rc < 0)
		return rc;
	for (i = 0; i < n; i++) {
		rc = cb(kv[i].key, kv[i].value, payload);
		if (rc != 0)
			break;
	}
	model_kv_free(kv, n);
	return rc;
}

int rp_lun_meta_set_many(struct rp_array *a, const char *id, const char *const *keys,
                         const char *const *values, size_t n, struct rp_error *err)
{
	size_t i;
	int rc;

	rc = lun_exists(a, id, err);
	if (rc < 0)
		return rc;
	if (n > 0 && (!keys || !values))
		return rp_error_set(err, RP_EINVAL, "invalid argument: 'keys' or 'values'");
	for (i = 0; i < n; i++) {
		rc = model_kv_check(keys[i], values[i], err);
		if (rc < 0)
			return rc;
	}
	rc = meta_txn_begin(a->db, err);
	if (rc < 0)
		return rc;
	for (i = 0; rc == 0 && i < n; i++) {
		if (values[i])
			rc = meta_run(
			        NULL, a->db, err,
			        "INSERT INTO lun_meta(device, key, value) VALUES(?, ?, ?)"
			        " ON CONFLICT(device, key) DO UPDATE SET value = excluded.value",
			        "ttt", id, keys[i], values[i]);
		else
			rc = meta_run(NULL, a->db, err,
			              "DELETE FROM lun_meta WHERE device = ? AND key = ?", "tt", id,
			              keys[i]);
	}
	if (rc < 0) {
		meta_txn_rollback(a->db);
		return rc;
	}
	return meta_txn_commit(a->db, err);
}

/* ------------------------------------------------------------------------------------------ */
/* Presentation                                                                                */

int rp_lun_present(struct rp_array *a, const char *id, const char *host, bool rw,
                   struct rp_error *err)
{
	struct model_device d;
	int64_t others_rw = 0, others = 0;
	int rc;

	rc = lun_arg(a, id, err);
	if (rc < 0)
		return rc;
	rc = model_name_check(host, "host", err);
	if (rc < 0)
		return rc;
	rc = meta_txn_begin(a->db, err);
	if (rc < 0)
		return rc;
	rc = model_device_load(&d, a, id, err);
	if (rc < 0)
		goto fail;
	if (rw && d.read_only) {
		rc = rp_error_set(err, RP_EPERM, "LUN '%s' is read-only (%s)", id,
		                  rp_dev_state_name(d.state));
		goto fail;
	}
	rc = meta_query_int(&others_rw, a->db, err,
	                    "SELECT COUNT(*) FROM presentations WHERE device = ? AND host != ?"
	                    " AND rw != 0",
	                    "tt", id, host);
	if (rc == 0)
		rc = meta_query_int(&others, a->db, err,
		                    "SELECT COUNT(*) FROM presentations WHERE device = ? AND"
		                    " host != ?",
		                    "tt", id, host);
	if (rc < 0)
		goto fail;
	if (others_rw > 0) {
		rc = rp_error_set(err, RP_EBUSY, "LUN '%s' is presented read-write to another host",
		                  id);
		goto fail;
	}
	if (rw && others > 0) {
		rc = rp_error_set(err, RP_EBUSY,
		                  "LUN '%s' is presented to another host: read-write access needs "
		                  "it alone",
		                  id);
		goto fail;
	}
	rc = meta_run(NULL, a->db, err,
	              "INSERT INTO presentations(device, host, rw) VALUES(?, ?, ?)"
	              " ON CONFLICT(device, host) DO UPDATE SET rw = excluded.rw",
	              "ttb", id, host, rw ? 1 : 0);
	if (rc < 0)
		goto fail;
	return meta_txn_commit(a->db, err);
fail:
	meta_txn_rollback(a->db);
	return rc;
}

int rp_lun_unpresent(struct rp_array *a, const char *id, const char *host, struct rp_error *err)
{
	int rc;

	rc = lun_exists(a, id, err);
	if (rc < 0)
		return rc;
	rc = model_name_check(host, "host", err);
	if (rc < 0)
		return rc;
	return meta_run(NULL, a->db, err, "DELETE FROM presentations WHERE device = ? AND host = ?",
	                "tt", id, host);
}

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

/* A replication source whose target the next sync makes (rp_lun_create_opts.target_at_sync). */
bool lun_target_pending(const struct model_device *d)
{
	return (d->state == RP_DEV_SOURCE || d->state == RP_DEV_DEMOTED_SOURCE) &&
	       d->peer_array[0] && !d->peer_device[0];
}

/*
 * Fills the derived fields of a public device: allocated, and the running test copy @test
 * (the device's newest 'test' snapshot, NULL when no test runs).
 */
static void lun_fill(struct rp_device *out, struct rp_array *a, const struct model_device *d,
                     const struct model_snapshot *test)
{
	struct array_obj_stat st;
	struct rp_error e = { 0 };

	model_device_to_public(out, d);
	memset(&st, 0, sizeof(st));
	if (model_obj_stat(&st, a, d->obj, &e) == 0)
		out->allocated = st.allocated;
	else
		rp_log(RP_LOG_VERBOSE, "LUN '%s': %s", d->id, e.msg);
	if (test) {
		(void)rp_strlcpy(out->test_snapshot, test->id, sizeof(out->test_snapshot));
		(void)rp_strlcpy(out->test_snapshot_wwn, test->wwn, sizeof(out->test_snapshot_wwn));
		(void)rp_strlcpy(out->test_recovery_point, test->recovery_point,
		                 sizeof(out->test_recovery_point));
		out->test_recovery_point_ms = test->recovery_point_ms;
	}
	out->target_pending = lun_target_pending(d);
}

/* lun_fill for one device: looks its test copy up. */
static void lun_fill_one(struct rp_device *out, struct rp_array *a, const struct model_device *d)
{
	struct model_snapshot *snaps = NULL;
	size_t n = 0;

	if (model_snapshot_list(&snaps, &n, a, d->id, NULL, "test", NULL) < 0)
		n = 0;
	lun_fill(out, a, d, n > 0 ? &snaps[0] : NULL);
	rp_free(snaps);
}

/* Test copies by device, then newest first (as model_snapshot_list orders them). */
static int test_snap_cmp(const void *x, const void *y)
{
	const struct model_snapshot *s = x, *t = y;
	int c = strcmp(s->device, t->device);

	if (c)
		return c;
	if (s->created_ms != t->created_ms)
		return s->created_ms > t->created_ms ? -1 : 1;
	return -strcmp(s->id, t->id);
}

/* The newest test copy of @device in @v (sorted by test_snap_cmp), NULL if none. */
static const struct model_snapshot *test_snap_find(const struct model_snapshot *v, size_t n,
                                                   const char *device)
{
	size_t lo = 0, hi = n;

	while (lo < hi) { /* first entry whose device is >= @device */
		size_t mid = lo + (hi - lo) / 2;

		if (strcmp(v[mid].device, device) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && strcmp(v[lo].device, device) == 0 ? &v[lo] : NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Create                                                                                      */

struct lun_plan {
	const char *name;             /* NULL: "<default_base> snapshot|clone <new id>" */
	const char *default_base;     /* source name for the default name of copies */
	const char *const *meta_keys; /* initial metadata (NULL values skipped) */
	const char *const *meta_values;
	size_t n_meta;
	uint64_t size;
	const char *group;       /* NULL/"" standalone */
	bool replicate;          /* resolved: the LUN replicates to p->peer */
	bool target_at_sync;     /* the target is made by the next sync, not now */
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
		rc = engine_peer(&peer, a, peer_id, err);
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

/* Refuses names with control characters (model_name_check) or '/'. */
static int lun_name_check(const char *name, struct rp_error *err)
{
	int rc;

	rc = model_name_check(name, "LUN name", err);
	if (rc < 0)
		return rc;
	if (strchr(name, '/'))
		return rp_error_set(err, RP_EINVAL, "LUN name '%s' contains '/'", name);
	return 0;
}

/*
 * RP_EEXISTS when a LUN of @a other than @self (NULL: none) is named @name. @peer_of: the
 * array @a is the peer of (for the message), or NULL.
 */
static int lun_name_free(struct rp_array *a, const char *name, const char *self,
                         const char *peer_of, struct rp_error *err)
{
	sqlite3_stmt *st = NULL;
	char other[RP_ID_MAX];
	int rc;

	rc = meta_prepare_cached(
	        &st, a->db, err,
	        "SELECT id FROM devices WHERE name = ?1 AND (?2 IS NULL OR id != ?2)"
	        " ORDER BY id LIMIT 1",
	        "tt", name, self);
	if (rc < 0)
		return rc;
	rc = meta_step(st, a->db, err);
	if (rc == 1) {
		meta_col_text(other, sizeof(other), st, 0);
		if (peer_of)
			rc = rp_error_set(
			        err, RP_EEXISTS,
			        "LUN name '%s' is already in use by '%s' on peer array '%s'", name,
			        other, a->id);
		else
			rc = rp_error_set(err, RP_EEXISTS,
			                  "LUN name '%s' is already in use by '%s'", name, other);
	}
	meta_release(st);
	return rc;
}

/* Validates initial metadata (NULL values are skipped). */
static int lun_meta_check(const char *const *keys, const char *const *values, size_t n,
                          struct rp_error *err)
{
	size_t i;
	int rc;

	if (n > 0 && (!keys || !values))
		return rp_error_set(err, RP_EINVAL,
		                    "invalid argument: 'meta_keys' or 'meta_values'");
	for (i = 0; i < n; i++) {
		if (!values[i])
			continue;
		rc = model_kv_check(keys[i], values[i], err);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* Writes the initial metadata of @id (inside the caller's transaction). */
static int lun_meta_write(struct rp_array *a, const char *id, const struct lun_plan *p,
                          struct rp_error *err)
{
	sqlite3_stmt *st = NULL;
	size_t i;
	int rc = 0;

	/* One statement, prepared once, stepped once per key (a VDI record is 6 keys). */
	for (i = 0; i < p->n_meta; i++) {
		if (!p->meta_values[i])
			continue;
		if (!st) {
			rc = meta_prepare(&st, a->db, err,
			                  "INSERT INTO lun_meta(device, key, value) VALUES(?, ?, ?)"
			                  " ON CONFLICT(device, key) DO UPDATE SET value = "
			                  "excluded.value",
			                  "ttt", id, p->meta_keys[i], p->meta_values[i]);
			if (rc < 0)
				return rc;
		} else {
			(void)sqlite3_reset(st);
			rc = sqlite3_bind_text(st, 2, p->meta_keys[i], -1, SQLITE_TRANSIENT);
			if (rc == SQLITE_OK)
				rc = sqlite3_bind_text(st, 3, p->meta_values[i], -1,
				                       SQLITE_TRANSIENT);
			if (rc != SQLITE_OK) {
				rc = meta_error(err, a->db, rc, "bind");
				break;
			}
		}
		rc = meta_step(st, a->db, err);
		if (rc < 0)
			break;
	}
	sqlite3_finalize(st);
	return rc < 0 ? rc : 0;
}

/* Creates group @group (role @role, peer @peer_array) on @a unless it exists (in the caller's
 * transaction); *g receives the row. */
static int lun_group_ensure(struct model_group *g, bool *created, struct rp_array *a,
                            const char *group, int role, const char *peer_array, int64_t now,
                            struct rp_error *err)
{
	int rc;

	*created = false;
	rc = model_group_load(g, a, group, err);
	if (rc != RP_ENOTFOUND)
		return rc;
	rp_error_clear(err);
	memset(g, 0, sizeof(*g));
	(void)rp_strlcpy(g->id, group, sizeof(g->id));
	(void)rp_strlcpy(g->name, group, sizeof(g->name));
	g->role = role;
	(void)rp_strlcpy(g->peer_array, peer_array ? peer_array : "", sizeof(g->peer_array));
	g->retention = 3;
	g->created_ms = now;
	*created = true;
	return model_group_insert(a, g, err);
}

/*
 * Step 1 of a replicated create: allocates the target's identity on @peer and records the
 * peer's own lun_create intent (so the peer's object is rolled back by the peer's recovery),
 * in one transaction.
 */
static int lun_peer_reserve(struct model_device *t, struct model_intent *pin, struct rp_array *peer,
                            struct rp_error *err)
{
	char payload[1024];
	int64_t seq = 0;
	int rc;

	memset(t, 0, sizeof(*t));
	rc = meta_txn_begin(peer->db, err);
	if (rc < 0)
		return rc;
	rc = meta_next_seq(&seq, peer->db, err);
	if (rc == 0)
		rc = model_device_id(t->id, peer->id, seq, err);
	if (rc == 0) {
		t->seq = seq;
		model_device_obj(t->obj, t->id);
		lun_payload(payload, sizeof(payload), t->id, t->obj, NULL, NULL, NULL, NULL, false);
		rc = model_intent_add(pin, peer, "lun_create", payload, err);
	}
	if (rc < 0) {
		meta_txn_rollback(peer->db);
		return rc;
	}
	return meta_txn_commit(peer->db, err);
}

/* Step 4 of a replicated create: the target's rows (group if new, device) on @peer, and the
 * peer's intent deleted, in one transaction. */
static int lun_peer_commit(struct rp_array *peer, struct rp_array *a, const struct lun_plan *p,
                           struct model_device *t, const char *name, const char *source_id,
                           struct model_intent *pin, struct rp_error *err)
{
	struct model_group g;
	bool created = false;
	int rc;

	(void)rp_strlcpy(t->name, name, sizeof(t->name));
	wwn_device(t->wwn, peer->id, t->seq);
	(void)rp_strlcpy(t->group, p->group ? p->group : "", sizeof(t->group));
	t->size = p->size;
	t->state = RP_DEV_TARGET;
	t->read_only = true;
	(void)rp_strlcpy(t->peer_array, a->id, sizeof(t->peer_array));
	(void)rp_strlcpy(t->peer_device, source_id, sizeof(t->peer_device));
	t->created_ms = rp_now_ms();
	rc = meta_txn_begin(peer->db, err);
	if (rc < 0)
		return rc;
	rc = lun_name_free(peer, name, NULL, a->id, err);
	if (rc == 0 && p->group) {
		rc = lun_group_ensure(&g, &created, peer, p->group, RP_GROUP_TARGET, a->id,
		                      t->created_ms, err);
		if (rc == 0 && (g.role != RP_GROUP_TARGET || strcmp(g.peer_array, a->id) != 0))
			rc = rp_error_set(err, RP_ESTATE,
			                  "group '%s' on peer array '%s' is not a target of '%s'",
			                  g.id, peer->id, a->id);
	}
	if (rc == 0)
		rc = model_device_insert(peer, t, err);
	if (rc == 0)
		rc = model_intent_delete(pin, peer, err);
	if (rc < 0) {
		meta_txn_rollback(peer->db);
		return rc;
	}
	return meta_txn_commit(peer->db, err);
}

/*
 * Creates a LUN (empty, or a copy of p->clone_src) and, when replicating, its target on the
 * peer. Transactions (each one fsync of that array's WAL), in this order:
 *   1. peer: target id + peer intent          2. local: device id + local intent (knows both)
 *   3. objects made and made durable (model_obj_persist), no transaction
 *   4. peer: target rows, peer intent deleted 5. local: group, device, metadata, intent deleted
 * A crash after 1 is rolled back by the peer's recovery (its object), after 2..4 by ours (the
 * target row if committed, both objects); after 5 the LUN exists. See model.md.
 * With p->target_at_sync a replicated LUN skips 1, 4 and the peer's object: two local commits,
 * and the LUN is a source with an empty peer_device until the next sync (lun_target_create).
 */
static int lun_create_common(struct rp_device *out, struct rp_array *a, const struct lun_plan *p,
                             struct rp_error *err)
{
	struct model_intent in = MODEL_INTENT_INIT, pin = MODEL_INTENT_INIT;
	struct rp_array *peer = NULL;
	struct model_device d, t;
	struct model_group g;
	char payload[1024];
	bool peer_group_new = false, created = false, local_intent = false;
	/* the target is made here (else by the next sync: steps 1 and 4 and the peer's object
	 * are skipped and the peer is never opened) */
	bool eager = p->replicate && !p->target_at_sync;
	int64_t seq = 0;
	int lfd = -1, rc;

	memset(&d, 0, sizeof(d));
	memset(&t, 0, sizeof(t));
	/* Workflows and syncs of the group take the same lock: they never see half a member. */
	if (p->group) {
		struct rp_error e = { 0 };

		rc = lock_group(a, p->group, &lfd, &e);
		if (rc < 0)
			return rp_error_set(err, rc == RP_ETIMEOUT ? RP_EBUSY : rc, "%s", e.msg);
	}
	if (p->name) {
		rc = lun_name_free(a, p->name, NULL, NULL, err);
		if (rc < 0)
			goto out;
	}
	if (eager) {
		rc = engine_peer(&peer, a, p->peer, err);
		if (rc < 0)
			goto out;
		rc = lun_peer_group_check(&peer_group_new, peer, a, p->group, err);
		if (rc == 0 && p->name)
			rc = lun_name_free(peer, p->name, NULL, a->id, err);
		if (rc < 0)
			goto out;
		/* 1. The target's identity and the peer's intent. */
		rc = lun_peer_reserve(&t, &pin, peer, err);
		if (rc < 0)
			goto out;
	}
	/* 2. Our id and intent (naming the target, so our recovery can undo it too). */
	rc = meta_txn_begin(a->db, err);
	if (rc < 0)
		goto rollback;
	rc = meta_next_seq(&seq, a->db, err);
	if (rc == 0)
		rc = model_device_id(d.id, a->id, seq, err);
	if (rc == 0) {
		model_device_obj(d.obj, d.id);
		lun_payload(payload, sizeof(payload), d.id, d.obj, p->group, eager ? p->peer : NULL,
		            t.id, t.obj, peer_group_new);
		rc = model_intent_add(&in, a, "lun_create", payload, err);
	}
	if (rc < 0) {
		meta_txn_rollback(a->db);
		goto rollback;
	}
	rc = meta_txn_commit(a->db, err);
	if (rc < 0)
		goto rollback;
	local_intent = true;
	d.seq = seq;
	if (p->name)
		(void)rp_strlcpy(d.name, p->name, sizeof(d.name));
	else
		(void)snprintf(d.name, sizeof(d.name), "%.200s %s %s", p->default_base,
		               p->read_only ? "snapshot" : "clone", d.id);
	/* 3. The data objects, durable before any row names them. Both are made before either
	 * is synced: where both arrays share a filesystem, the first fsync's log force carries
	 * the second object's creation too, and the second fsync finds little left to do. */
	rc = p->clone_src ? model_obj_clone(a, p->clone_src, d.obj, err)
	                  : model_obj_create(a, d.obj, p->size, err);
	if (rc == 0 && eager)
		rc = model_obj_create(peer, t.obj, p->size, err);
	if (rc == 0)
		rc = model_obj_persist(a, d.obj, err);
	if (rc == 0 && eager)
		rc = model_obj_persist(peer, t.obj, err);
	if (rc < 0)
		goto rollback;
	/* 4. The target's rows. */
	if (eager) {
		rc = lun_peer_commit(peer, a, p, &t, d.name, d.id, &pin, err);
		if (rc < 0)
			goto rollback;
	}
	/* 5. The device, its group and metadata; the intent goes in the same transaction. */
	wwn_device(d.wwn, a->id, seq);
	(void)rp_strlcpy(d.group, p->group ? p->group : "", sizeof(d.group));
	d.size = p->size;
	d.state = p->replicate ? RP_DEV_SOURCE : RP_DEV_LOCAL;
	d.read_only = p->read_only;
	if (p->replicate) {
		/* t.id is "" when the target is left to the next sync (pending target) */
		(void)rp_strlcpy(d.peer_array, p->peer, sizeof(d.peer_array));
		(void)rp_strlcpy(d.peer_device, t.id, sizeof(d.peer_device));
	}
	(void)rp_strlcpy(d.snapshot_of, p->snapshot_of ? p->snapshot_of : "",
	                 sizeof(d.snapshot_of));
	d.created_ms = rp_now_ms();
	rc = meta_txn_begin(a->db, err);
	if (rc < 0)
		goto rollback;
	rc = lun_name_free(a, d.name, NULL, NULL, err);
	if (rc == 0 && d.group[0]) {
		rc = lun_group_ensure(&g, &created, a, d.group,
		                      p->replicate ? RP_GROUP_SOURCE : RP_GROUP_LOCAL,
		                      p->replicate ? p->peer : "", d.created_ms, err);
		if (rc == 0 && !created) {
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
		rc = lun_meta_write(a, d.id, p, err);
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
	       d.id, d.name, d.size,
	       eager          ? ", target "
	       : p->replicate ? ", target made by the next sync"
	                      : "",
	       eager ? t.id : "");
	if (out)
		lun_fill_one(out, a, &d);
	goto out;
rollback:
	/* Undo what exists, then drop the intents; if undo fails they stay for recovery. */
	{
		struct rp_error e = { 0 };

		if (local_intent) {
			if (lun_create_rollback(a, payload, &e) == 0) {
				(void)model_intent_delete(&in, a, NULL);
				if (peer)
					(void)model_intent_delete(&pin, peer, NULL);
			} else {
				rp_log(RP_LOG_WARNING,
				       "array '%s': rollback of LUN '%s' postponed: %s", a->id,
				       d.id, e.msg);
			}
		} else if (peer && pin.id > 0) {
			/* Only the target's identity exists: nothing was made on the peer yet. */
			if (model_obj_delete(peer, t.obj, &e) == 0)
				(void)model_intent_delete(&pin, peer, NULL);
		}
	}
out:
	model_intent_release(&in, a);
	if (peer)
		model_intent_release(&pin, peer);
	unlock(lfd);
	return rc;
}

int lun_target_create(struct model_device *out, struct rp_array *tgt, const char *src_array,
                      const struct model_device *d, struct rp_error *err)
{
	struct model_intent pin = MODEL_INTENT_INIT;
	struct model_device t;
	struct model_group g;
	struct rp_error e = { 0 };
	char payload[1024]; /* as lun_create_common's */
	bool obj_made = false;
	int rc;

	/* A target a crashed earlier sync made before it could link @d: reuse it. */
	rc = model_device_by_peer(&t, tgt, src_array, d->id, &e);
	if (rc == 0) {
		if (t.state != RP_DEV_TARGET)
			return rp_error_set(err, RP_ESTATE,
			                    "'%s' on array '%s' claims to replicate '%s' but is %s",
			                    t.id, tgt->id, d->id, rp_dev_state_name(t.state));
		*out = t;
		return 0;
	}
	if (rc != RP_ENOTFOUND)
		return rp_error_set(err, rc, "%s", e.msg);
	/* 1. The identity and the target array's own intent (removes a half-made object). */
	rc = meta_txn_begin(tgt->db, err);
	if (rc < 0)
		return rc;
	rc = lun_name_free(tgt, d->name, NULL, src_array, err);
	if (rc == 0)
		rc = model_device_alloc(&t, tgt, err);
	if (rc == 0) {
		lun_payload(payload, sizeof(payload), t.id, t.obj, NULL, NULL, NULL, NULL, false);
		rc = model_intent_add(&pin, tgt, "lun_create", payload, err);
	}
	if (rc == 0)
		rc = meta_txn_commit(tgt->db, err);
	else
		meta_txn_rollback(tgt->db);
	if (rc < 0)
		goto out;
	/* 2. The empty object, durable before a row names it. */
	rc = model_obj_create(tgt, t.obj, d->size, err);
	if (rc == 0) {
		obj_made = true;
		rc = model_obj_persist(tgt, t.obj, err);
	}
	if (rc < 0)
		goto undo;
	/* 3. The row (in the group, which the sync made a target of @src_array), intent gone. */
	(void)rp_strlcpy(t.name, d->name, sizeof(t.name));
	(void)rp_strlcpy(t.group, d->group, sizeof(t.group));
	t.size = d->size;
	t.state = RP_DEV_TARGET;
	t.read_only = true;
	(void)rp_strlcpy(t.peer_array, src_array, sizeof(t.peer_array));
	(void)rp_strlcpy(t.peer_device, d->id, sizeof(t.peer_device));
	rc = meta_txn_begin(tgt->db, err);
	if (rc < 0)
		goto undo;
	if (t.group[0]) {
		rc = model_group_load(&g, tgt, t.group, err);
		if (rc == 0 && (g.role != RP_GROUP_TARGET || strcmp(g.peer_array, src_array) != 0))
			rc = rp_error_set(err, RP_ESTATE,
			                  "group '%s' on array '%s' is %s, not a target of '%s'",
			                  g.id, tgt->id, rp_group_role_name(g.role), src_array);
	}
	if (rc == 0)
		rc = lun_name_free(tgt, t.name, NULL, src_array, err);
	if (rc == 0)
		rc = model_device_insert(tgt, &t, err);
	if (rc == 0)
		rc = model_intent_delete(&pin, tgt, err);
	if (rc == 0)
		rc = meta_txn_commit(tgt->db, err);
	else
		meta_txn_rollback(tgt->db);
	if (rc < 0)
		goto undo;
	rp_log(RP_LOG_INFO, "array '%s': target '%s' made for '%s' of array '%s'", tgt->id, t.id,
	       d->id, src_array);
	*out = t;
	goto out;
undo:
	/* if the object cannot be removed now the intent stays: recovery removes it */
	if (!obj_made || model_obj_delete(tgt, t.obj, NULL) == 0)
		(void)model_intent_delete(&pin, tgt, NULL);
out:
	model_intent_release(&pin, tgt);
	return rc;
}

int rp_lun_create(struct rp_device *out, struct rp_array *a, const char *name, uint64_t size,
                  const struct rp_lun_create_opts *opts, struct rp_error *err)
{
	struct lun_plan p;
	int rc;

	if (!a)
		return rp_error_set(err, RP_EINVAL, "invalid argument: 'a'");
	rc = lun_name_check(name, err);
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
	if (opts) {
		rc = lun_meta_check(opts->meta_keys, opts->meta_values, opts->n_meta, err);
		if (rc < 0)
			return rc;
	}
	memset(&p, 0, sizeof(p));
	p.name = name;
	p.size = size;
	p.group = opts && opts->group && *opts->group ? opts->group : NULL;
	p.replicate = opts && opts->replicate;
	p.target_at_sync = opts && opts->target_at_sync;
	if (opts) {
		p.meta_keys = opts->meta_keys;
		p.meta_values = opts->meta_values;
		p.n_meta = opts->n_meta;
	}
	rc = lun_plan_resolve(&p, a, opts ? opts->peer : NULL, err);
	if (rc < 0)
		return rc;
	return lun_create_common(out, a, &p, err);
}

/* Snapshot or clone of LUN @id: a new LUN in the same group holding a copy of its data. */
static int lun_copy(struct rp_device *out, struct rp_array *a, const char *id,
                    const struct rp_lun_copy_opts *opts, bool snapshot, struct rp_error *err)
{
	struct model_device src;
	struct lun_plan p;
	const char *name = opts ? opts->name : NULL;
	int rc;

	rc = lun_arg(a, id, err);
	if (rc < 0)
		return rc;
	if (name) {
		rc = lun_name_check(name, err);
		if (rc < 0)
			return rc;
	}
	if (opts) {
		rc = lun_meta_check(opts->meta_keys, opts->meta_values, opts->n_meta, err);
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
	p.name = name;
	p.default_base = src.name;
	p.size = src.size;
	p.group = src.group[0] ? src.group : NULL;
	p.clone_src = src.obj;
	p.read_only = snapshot;
	p.snapshot_of = src.id;
	if (opts) {
		p.target_at_sync = opts->target_at_sync;
		p.meta_keys = opts->meta_keys;
		p.meta_values = opts->meta_values;
		p.n_meta = opts->n_meta;
	}
	rc = lun_plan_resolve(&p, a, NULL, err);
	if (rc < 0)
		return rc;
	return lun_create_common(out, a, &p, err);
}

int rp_lun_snapshot(struct rp_device *out, struct rp_array *a, const char *id, const char *name,
                    struct rp_error *err)
{
	struct rp_lun_copy_opts o = { .name = name };

	return lun_copy(out, a, id, &o, true, err);
}

int rp_lun_clone(struct rp_device *out, struct rp_array *a, const char *id, const char *name,
                 struct rp_error *err)
{
	struct rp_lun_copy_opts o = { .name = name };

	return lun_copy(out, a, id, &o, false, err);
}

int rp_lun_snapshot_ex(struct rp_device *out, struct rp_array *a, const char *id,
                       const struct rp_lun_copy_opts *opts, struct rp_error *err)
{
	return lun_copy(out, a, id, opts, true, err);
}

int rp_lun_clone_ex(struct rp_device *out, struct rp_array *a, const char *id,
                    const struct rp_lun_copy_opts *opts, struct rp_error *err)
{
	return lun_copy(out, a, id, opts, false, err);
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
	lun_fill_one(out, a, &d);
	return 0;
}

int rp_lun_list(struct rp_device **out, size_t *n, struct rp_array *a, const char *group,
                struct rp_error *err)
{
	struct model_device *rows = NULL;
	struct model_snapshot *tests = NULL;
	struct rp_device *v = NULL;
	struct model_group g;
	size_t cnt = 0, i, n_tests = 0;
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
	/* one query for every test copy instead of one per device */
	rc = model_snapshot_list(&tests, &n_tests, a, NULL, NULL, "test", err);
	if (rc < 0) {
		rp_free(rows);
		rp_free(v);
		return rc;
	}
	if (n_tests > 1)
		qsort(tests, n_tests, sizeof(*tests), test_snap_cmp);
	for (i = 0; i < cnt; i++)
		lun_fill(&v[i], a, &rows[i], test_snap_find(tests, n_tests, rows[i].id));
	rp_free(tests);
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
	rc = engine_peer(&peer, a, peer_id, err);
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
		rc = engine_peer(&peer, a, d.peer_array, err);
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
	unlock(fd);
	return rc;
}

int rp_lun_rename(struct rp_array *a, const char *id, const char *name, struct rp_error *err)
{
	struct rp_array *peer = NULL;
	struct model_device d, t;
	struct rp_error e = { 0 };
	bool has_target = false;
	int changes = 0, rc;

	rc = lun_arg(a, id, err);
	if (rc < 0)
		return rc;
	rc = lun_name_check(name, err);
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
	if (strcmp(d.name, name) == 0)
		return 0;
	/* The target carries its source's name: the name must be free on the peer too. When the
	 * peer is down the source is renamed alone (warning); the next rename retries. */
	if (d.state == RP_DEV_SOURCE && d.peer_array[0] && d.peer_device[0]) {
		if (engine_peer(&peer, a, d.peer_array, &e) == 0 &&
		    model_device_load(&t, peer, d.peer_device, &e) == 0 &&
		    strcmp(t.peer_device, id) == 0) {
			has_target = true;
			rc = lun_name_free(peer, name, t.id, a->id, err);
			if (rc < 0)
				return rc;
		}
	}
	rc = meta_txn_begin(a->db, err);
	if (rc < 0)
		return rc;
	rc = lun_name_free(a, name, id, NULL, err);
	if (rc == 0)
		rc = meta_run(&changes, a->db, err, "UPDATE devices SET name = ? WHERE id = ?",
		              "tt", name, id);
	if (rc < 0) {
		meta_txn_rollback(a->db);
		return rc;
	}
	rc = meta_txn_commit(a->db, err);
	if (rc < 0)
		return rc;
	if (has_target)
		(void)meta_run(NULL, peer->db, &e, "UPDATE devices SET name = ? WHERE id = ?", "tt",
		               name, t.id);
	if (e.code)
		rp_log(RP_LOG_WARNING, "LUN '%s': target not renamed: %s", id, e.msg);
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
	return model_kv_set(a, MODEL_LUN_META, id, key, value, err);
}

int rp_lun_meta_get(char **out, struct rp_array *a, const char *id, const char *key,
                    struct rp_error *err)
{
	int rc;

	if (!out)
		return rp_error_set(err, RP_EINVAL, "invalid argument: 'out'");
	rc = lun_exists(a, id, err);
	if (rc < 0)
		return rc;
	return model_kv_get(out, a, MODEL_LUN_META, id, key, err);
}

int rp_lun_meta_del(struct rp_array *a, const char *id, const char *key, struct rp_error *err)
{
	int rc;

	rc = lun_exists(a, id, err);
	if (rc < 0)
		return rc;
	return model_kv_set(a, MODEL_LUN_META, id, key, NULL, err);
}

int rp_lun_meta_foreach(struct rp_array *a, const char *id, rp_meta_cb cb, void *payload,
                        struct rp_error *err)
{
	int rc;

	if (!cb)
		return rp_error_set(err, RP_EINVAL, "invalid argument: 'cb'");
	rc = lun_exists(a, id, err);
	if (rc < 0)
		return rc;
	return model_kv_foreach(a, MODEL_LUN_META, id, cb, payload, err);
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
	for (i = 0; rc == 0 && i < n; i++)
		rc = model_kv_set(a, MODEL_LUN_META, id, keys[i], values[i], err);
	if (rc < 0) {
		meta_txn_rollback(a->db);
		return rc;
	}
	return meta_txn_commit(a->db, err);
}

/* ------------------------------------------------------------------------------------------ */
/* Presentation                                                                                */

/* Stored in presentations.rw: how a host has the LUN. */
enum lun_access {
	LUN_RO = 0,
	LUN_RW = 1,        /* the only host with it */
	LUN_RW_SHARED = 2, /* one of several writers that coordinate (HA statefile) */
};

/*
 * Access rules, checked against the other hosts' presentations in one transaction: an
 * exclusive writer is alone; a reader shares only with readers; a shared writer only with
 * shared writers.
 */
static int lun_present(struct rp_array *a, const char *id, const char *host, enum lun_access acc,
                       struct rp_error *err)
{
	struct model_device d;
	int64_t others = 0, others_acc = 0;
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
	if (acc != LUN_RO && d.read_only) {
		rc = rp_error_set(err, RP_EPERM, "LUN '%s' is read-only (%s)", id,
		                  rp_dev_state_name(d.state));
		goto fail;
	}
	rc = meta_query_int(&others, a->db, err,
	                    "SELECT COUNT(*) FROM presentations WHERE device = ? AND host != ?",
	                    "tt", id, host);
	if (rc == 0)
		rc = meta_query_int(&others_acc, a->db, err,
		                    "SELECT COUNT(*) FROM presentations WHERE device = ? AND"
		                    " host != ? AND rw = ?",
		                    "tti", id, host, (int64_t)acc);
	if (rc < 0)
		goto fail;
	if (others > 0 && (acc == LUN_RW || others_acc < others)) {
		static const char *const why[] = {
			[LUN_RO] = "presented read-write to another host",
			[LUN_RW] = "presented to another host: read-write access needs it alone",
			[LUN_RW_SHARED] = "presented to another host other than as a shared writer",
		};

		rc = rp_error_set(err, RP_EBUSY, "LUN '%s' is %s", id, why[acc]);
		goto fail;
	}
	rc = meta_run(NULL, a->db, err,
	              "INSERT INTO presentations(device, host, rw) VALUES(?, ?, ?)"
	              " ON CONFLICT(device, host) DO UPDATE SET rw = excluded.rw",
	              "tti", id, host, (int64_t)acc);
	if (rc < 0)
		goto fail;
	return meta_txn_commit(a->db, err);
fail:
	meta_txn_rollback(a->db);
	return rc;
}

int rp_lun_present(struct rp_array *a, const char *id, const char *host, bool rw,
                   struct rp_error *err)
{
	return lun_present(a, id, host, rw ? LUN_RW : LUN_RO, err);
}

int rp_lun_present_shared(struct rp_array *a, const char *id, const char *host,
                          struct rp_error *err)
{
	return lun_present(a, id, host, LUN_RW_SHARED, err);
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

int rp_lun_presentations(struct rp_presentation **out, size_t *n, struct rp_array *a,
                         const char *id, struct rp_error *err)
{
	struct rp_presentation *v = NULL, *nv;
	sqlite3_stmt *st = NULL;
	size_t cnt = 0, cap = 0;
	int rc;

	if (!out || !n)
		return rp_error_set(err, RP_EINVAL, "invalid argument: 'out' or 'n'");
	*out = NULL;
	*n = 0;
	rc = lun_exists(a, id, err);
	if (rc < 0)
		return rc;
	rc = meta_prepare(&st, a->db, err,
	                  "SELECT host, rw FROM presentations WHERE device = ? ORDER BY host", "t",
	                  id);
	if (rc < 0)
		return rc;
	while ((rc = meta_step(st, a->db, err)) == 1) {
		if (cnt == cap) {
			cap = cap ? cap * 2 : 4;
			nv = rp_realloc(v, cap * sizeof(*v));
			if (!nv) {
				rc = rp_error_set(err, RP_ERROR, "out of memory");
				break;
			}
			v = nv;
		}
		memset(&v[cnt], 0, sizeof(v[cnt]));
		meta_col_text(v[cnt].host, sizeof(v[cnt].host), st, 0);
		v[cnt].rw = sqlite3_column_int(st, 1) != LUN_RO;
		v[cnt].shared = sqlite3_column_int(st, 1) == LUN_RW_SHARED;
		cnt++;
	}
	sqlite3_finalize(st);
	if (rc < 0) {
		rp_free(v);
		return rc;
	}
	*out = v;
	*n = cnt;
	return 0;
}

int rp_lun_unpresent_all(struct rp_array *a, const char *id, struct rp_error *err)
{
	int changes = 0, rc;

	rc = lun_exists(a, id, err);
	if (rc < 0)
		return rc;
	rc = meta_run(&changes, a->db, err, "DELETE FROM presentations WHERE device = ?", "t", id);
	if (rc == 0 && changes > 0)
		rp_log(RP_LOG_INFO, "array '%s': LUN '%s' unpresented from %d host%s", a->id, id,
		       changes, changes == 1 ? "" : "s");
	return rc;
}

/* SPDX-License-Identifier: MIT */
/* group.c - public rp_group_*: consistency groups, their policy, metadata and usage. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "lock.h"
#include "model.h"

const char *rp_group_role_name(enum rp_group_role r)
{
	switch (r) {
	case RP_GROUP_LOCAL:
		return "local";
	case RP_GROUP_SOURCE:
		return "source";
	case RP_GROUP_TARGET:
		return "target";
	case RP_GROUP_DEMOTED_SOURCE:
		return "demoted-source";
	case RP_GROUP_PROMOTED_TARGET:
		return "promoted-target";
	}
	return "unknown";
}

static int group_arg(struct rp_array *a, const char *id, struct rp_error *err)
{
	if (!a)
		return rp_error_set(err, RP_EINVAL, "invalid argument: 'a'");
	return rp_id_check(id, "group id", err);
}

static int group_fill(struct rp_group *out, struct rp_array *a, const struct model_group *g,
                      struct rp_error *err)
{
	size_t n = 0;
	int rc;

	rc = model_group_count_devices(&n, a, g->id, err);
	if (rc < 0)
		return rc;
	model_group_to_public(out, g);
	out->n_devices = n;
	if (g->test_snapshot[0]) {
		/* the recovery point of the running test's copies (their newest) */
		struct model_snapshot *snaps = NULL;
		size_t ns = 0;

		if (model_snapshot_list(&snaps, &ns, a, NULL, g->id, "test", NULL) == 0 && ns > 0) {
			(void)rp_strlcpy(out->test_recovery_point, snaps[0].recovery_point,
			                 sizeof(out->test_recovery_point));
			out->test_recovery_point_ms = snaps[0].recovery_point_ms;
		}
		rp_free(snaps);
	}
	return 0;
}

int rp_group_create(struct rp_group *out, struct rp_array *a, const char *id, const char *name,
                    struct rp_error *err)
{
	struct model_group g;
	int rc;

	rc = group_arg(a, id, err);
	if (rc < 0)
		return rc;
	if (name) {
		rc = model_name_check(name, "group name", err);
		if (rc < 0)
			return rc;
	}
	memset(&g, 0, sizeof(g));
	(void)rp_strlcpy(g.id, id, sizeof(g.id));
	(void)rp_strlcpy(g.name, name ? name : id, sizeof(g.name));
	g.role = RP_GROUP_LOCAL;
	g.retention = 3;
	g.created_ms = rp_now_ms();
	rc = meta_txn_begin(a->db, err);
	if (rc < 0)
		return rc;
	rc = model_group_insert(a, &g, err);
	if (rc < 0) {
		meta_txn_rollback(a->db);
		return rc;
	}
	rc = meta_txn_commit(a->db, err);
	if (rc < 0)
		return rc;
	if (out) {
		model_group_to_public(out, &g);
		out->n_devices = 0;
	}
	return 0;
}

int rp_group_get(struct rp_group *out, struct rp_array *a, const char *id, struct rp_error *err)
{
	struct model_group g;
	int rc;

	rc = group_arg(a, id, err);
	if (rc < 0)
		return rc;
	if (!out)
		return rp_error_set(err, RP_EINVAL, "invalid argument: 'out'");
	rc = model_group_load(&g, a, id, err);
	if (rc < 0)
		return rc;
	return group_fill(out, a, &g, err);
}

int rp_group_list(struct rp_group **out, size_t *n, struct rp_array *a, struct rp_error *err)
{
	struct model_group *rows = NULL;
	struct rp_group *v = NULL;
	size_t cnt = 0, i;
	int rc;

	if (!a || !out || !n)
		return rp_error_set(err, RP_EINVAL, "invalid argument: 'a', 'out' or 'n'");
	rc = model_group_list(&rows, &cnt, a, err);
	if (rc < 0)
		return rc;
	v = rp_calloc(cnt ? cnt : 1, sizeof(*v));
	if (!v) {
		rp_free(rows);
		return rp_error_set(err, RP_ERROR, "out of memory");
	}
	for (i = 0; i < cnt; i++) {
		rc = group_fill(&v[i], a, &rows[i], err);
		if (rc < 0) {
			rp_free(rows);
			rp_free(v);
			return rc;
		}
	}
	rp_free(rows);
	*out = v;
	*n = cnt;
	return 0;
}

int rp_group_delete(struct rp_array *a, const char *id, struct rp_error *err)
{
	struct model_group g;
	size_t n = 0;
	bool busy = false;
	int rc;

	rc = group_arg(a, id, err);
	if (rc < 0)
		return rc;
	rc = meta_txn_begin(a->db, err);
	if (rc < 0)
		return rc;
	rc = model_group_load(&g, a, id, err);
	if (rc == RP_ENOTFOUND) {
		rp_error_clear(err);
		meta_txn_rollback(a->db);
		return 0;
	}
	if (rc < 0)
		goto fail;
	rc = model_group_count_devices(&n, a, id, err);
	if (rc < 0)
		goto fail;
	if (n > 0) {
		rc = rp_error_set(err, RP_EBUSY, "group '%s' still holds %zu LUN%s", id, n,
		                  n == 1 ? "" : "s");
		goto fail;
	}
	rc = model_sync_running(&busy, a, NULL, id, err);
	if (rc < 0)
		goto fail;
	if (busy || g.test_snapshot[0]) {
		rc = rp_error_set(err, RP_EBUSY, "group '%s' has a %s in progress", id,
		                  busy ? "sync session" : "test failover");
		goto fail;
	}
	rc = model_group_delete_row(a, id, err);
	if (rc < 0)
		goto fail;
	return meta_txn_commit(a->db, err);
fail:
	meta_txn_rollback(a->db);
	return rc;
}

/* Applies @fn's change to group @id on @a in one transaction. */
static int group_set_policy_one(struct rp_array *a, const char *id, uint32_t rpo,
                                uint32_t retention, struct rp_error *err)
{
	struct model_group g;
	int rc;

	rc = meta_txn_begin(a->db, err);
	if (rc < 0)
		return rc;
	rc = model_group_load(&g, a, id, err);
	if (rc == 0) {
		g.rpo = rpo;
		g.retention = retention;
		rc = model_group_store(a, &g, err);
	}
	if (rc < 0) {
		meta_txn_rollback(a->db);
		return rc;
	}
	return meta_txn_commit(a->db, err);
}

int rp_group_set_policy(struct rp_array *a, const char *id, uint32_t rpo_seconds,
                        uint32_t retention, struct rp_error *err)
{
	struct rp_array *peer = NULL;
	struct model_group g;
	struct rp_error e = { 0 };
	int rc;

	rc = group_arg(a, id, err);
	if (rc < 0)
		return rc;
	if (retention == 0)
		return rp_error_set(err, RP_EINVAL,
		                    "retention must keep at least 1 recovery point");
	rc = group_set_policy_one(a, id, rpo_seconds, retention, err);
	if (rc < 0)
		return rc;
	/* Kept on both sides: the peer's copy is updated when it can be reached. */
	if (model_group_load(&g, a, id, NULL) == 0 && g.peer_array[0]) {
		if (rp_array_open_peer(&peer, a, g.peer_array, &e) == 0)
			(void)group_set_policy_one(peer, id, rpo_seconds, retention, &e);
		if (e.code && e.code != RP_ENOTFOUND)
			rp_log(RP_LOG_WARNING, "group '%s': policy not copied to array '%s': %s",
			       id, g.peer_array, e.msg);
		rp_array_close(peer);
	}
	return 0;
}

static int group_exists(struct rp_array *a, const char *id, struct rp_error *err)
{
	struct model_group g;
	int rc;

	rc = group_arg(a, id, err);
	if (rc < 0)
		return rc;
	return model_group_load(&g, a, id, err);
}

int rp_group_meta_set(struct rp_array *a, const char *id, const char *key, const char *value,
                      struct rp_error *err)
{
	int rc;

	rc = group_exists(a, id, err);
	if (rc < 0)
		return rc;
	if (!value)
		return rp_error_set(err, RP_EINVAL, "metadata value of '%.127s' is missing",
		                    key ? key : "");
	return model_kv_set(a, MODEL_GROUP_META, id, key, value, err);
}

int rp_group_meta_get(char **out, struct rp_array *a, const char *id, const char *key,
                      struct rp_error *err)
{
	int rc;

	if (!out)
		return rp_error_set(err, RP_EINVAL, "invalid argument: 'out'");
	rc = group_exists(a, id, err);
	if (rc < 0)
		return rc;
	return model_kv_get(out, a, MODEL_GROUP_META, id, key, err);
}

int rp_group_meta_foreach(struct rp_array *a, const char *id, rp_meta_cb cb, void *payload,
                          struct rp_error *err)
{
	int rc;

	if (!cb)
		return rp_error_set(err, RP_EINVAL, "invalid argument: 'cb'");
	rc = group_exists(a, id, err);
	if (rc < 0)
		return rc;
	return model_kv_foreach(a, MODEL_GROUP_META, id, cb, payload, err);
}

int rp_group_usage(uint64_t *virtual_size, uint64_t *physical, struct rp_array *a, const char *id,
                   struct rp_error *err)
{
	struct model_device *rows = NULL;
	struct array_obj_stat st;
	uint64_t v = 0, p = 0;
	size_t n = 0, i;
	int rc;

	rc = group_exists(a, id, err);
	if (rc < 0)
		return rc;
	rc = model_device_list(&rows, &n, a, id, err);
	if (rc < 0)
		return rc;
	for (i = 0; i < n; i++) {
		v += rows[i].size;
		memset(&st, 0, sizeof(st));
		rc = model_obj_stat(&st, a, rows[i].obj, err);
		if (rc < 0)
			goto out;
		p += st.allocated;
	}
	if (virtual_size)
		*virtual_size = v;
	if (physical)
		*physical = p;
	rc = 0;
out:
	rp_free(rows);
	return rc;
}

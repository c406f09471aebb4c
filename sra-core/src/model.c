/* SPDX-License-Identifier: MIT */
/*
 * model.c - rows of the metadata database and their accessors (devices, groups, snapshots,
 * peers, metadata key/values), intents and crash recovery. Shared by both engine halves.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lock.h"
#include "model.h"

/* Empty strings are stored as NULL. */
static const char *nz(const char *s)
{
	return s && *s ? s : NULL;
}

static int oom(struct rp_error *err)
{
	return rp_error_set(err, RP_ERROR, "out of memory");
}

/*
 * Fills the element at @elem (a struct model_device, model_group, ...) from @st's current row;
 * 0, or -1 when out of memory (what it allocated stays in @elem for the list's free).
 */
typedef int (*row_fn)(void *elem, sqlite3_stmt *st);

/*
 * Runs a cached query expecting at most one row and fills @out from it through @from_row.
 * RP_ENOTFOUND without a message when there is no row.
 */
static int row_query_one(void *out, row_fn from_row, struct rp_array *a, struct rp_error *err,
                         const char *sql, const char *types, const char *p1, const char *p2)
{
	sqlite3_stmt *st = NULL;
	int rc;

	rc = meta_prepare_cached(&st, a->db, err, sql, types, p1, p2);
	if (rc < 0)
		return rc;
	rc = meta_step(st, a->db, err);
	if (rc == 1)
		rc = from_row(out, st) < 0 ? oom(err) : 0;
	else if (rc == 0)
		rc = RP_ENOTFOUND;
	meta_release(st);
	return rc;
}

/*
 * Steps @st (from meta_prepare) to its end, filling one @size-byte element a row through
 * @from_row into an array of @first_cap elements that doubles when full; finalizes @st. On
 * success *out is the array (NULL without rows) and *n its length; on error neither is set and
 * the rows are freed with @free_rows (NULL: rp_free of the array alone).
 */
static int rows_collect(void **out, size_t *n, sqlite3_stmt *st, struct rp_array *a, size_t size,
                        size_t first_cap, row_fn from_row, void (*free_rows)(void *, size_t),
                        struct rp_error *err)
{
	char *v = NULL, *nv;
	size_t cnt = 0, cap = 0;
	int rc;

	while ((rc = meta_step(st, a->db, err)) == 1) {
		if (cnt == cap) {
			cap = cap ? cap * 2 : first_cap;
			nv = rp_realloc(v, cap * size);
			if (!nv) {
				rc = oom(err);
				goto fail;
			}
			v = nv;
		}
		if (from_row(v + cnt++ * size, st) < 0) {
			rc = oom(err);
			goto fail;
		}
	}
	if (rc < 0)
		goto fail;
	sqlite3_finalize(st);
	*out = v;
	*n = cnt;
	return 0;
fail:
	sqlite3_finalize(st);
	if (free_rows)
		free_rows(v, cnt);
	else
		rp_free(v);
	return rc;
}

int model_txn_begin(struct rp_array *a, bool *own, struct rp_error *err)
{
	int rc;

	*own = false;
	if (!sqlite3_get_autocommit(a->db))
		return 0;
	rc = meta_txn_begin(a->db, err);
	if (rc < 0)
		return rc;
	*own = true;
	return 0;
}

int model_txn_end(struct rp_array *a, bool own, int rc, struct rp_error *err)
{
	if (!own)
		return rc;
	if (rc < 0) {
		meta_txn_rollback(a->db);
		return rc;
	}
	return meta_txn_commit(a->db, err);
}

/* ------------------------------------------------------------------------------------------ */

int model_device_id(char out[RP_ID_MAX], const char *array_id, int64_t seq, struct rp_error *err)
{
	int n = snprintf(out, RP_ID_MAX, "%s-%06" PRId64, array_id, seq);

	if (n < 0 || n >= RP_ID_MAX)
		return rp_error_set(err, RP_EINVAL, "device id for array '%s' is too long",
		                    array_id);
	return 0;
}

void model_device_obj(char out[ARRAY_OBJ_MAX], const char *device_id)
{
	(void)snprintf(out, ARRAY_OBJ_MAX, "lun-%s", device_id);
}

void model_snapshot_obj(char out[ARRAY_OBJ_MAX], const char *snapshot_id)
{
	(void)snprintf(out, ARRAY_OBJ_MAX, "snap-%s", snapshot_id);
}

int model_name_check(const char *name, const char *what, struct rp_error *err)
{
	size_t i, len;

	if (!name || !*name)
		return rp_error_set(err, RP_EINVAL, "%s is empty", what);
	len = strlen(name);
	if (len >= RP_NAME_MAX)
		return rp_error_set(err, RP_EINVAL, "%s is longer than %d bytes", what,
		                    RP_NAME_MAX - 1);
	for (i = 0; i < len; i++)
		if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
			return rp_error_set(err, RP_EINVAL, "%s has a control character", what);
	return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Devices                                                                                     */

#define DEV_COLS                                                                                   \
	"id, seq, name, obj, wwn, grp, size, state, read_only, peer_array, peer_device,"           \
	" snapshot_of, created_ms, recovery_point, recovery_point_ms, base_snapshot"

static int dev_from_row(void *elem, sqlite3_stmt *st)
{
	struct model_device *d = elem;

	memset(d, 0, sizeof(*d));
	meta_col_text(d->id, sizeof(d->id), st, 0);
	d->seq = sqlite3_column_int64(st, 1);
	meta_col_text(d->name, sizeof(d->name), st, 2);
	meta_col_text(d->obj, sizeof(d->obj), st, 3);
	meta_col_text(d->wwn, sizeof(d->wwn), st, 4);
	meta_col_text(d->group, sizeof(d->group), st, 5);
	d->size = (uint64_t)sqlite3_column_int64(st, 6);
	d->state = sqlite3_column_int(st, 7);
	d->read_only = sqlite3_column_int(st, 8) != 0;
	meta_col_text(d->peer_array, sizeof(d->peer_array), st, 9);
	meta_col_text(d->peer_device, sizeof(d->peer_device), st, 10);
	meta_col_text(d->snapshot_of, sizeof(d->snapshot_of), st, 11);
	d->created_ms = sqlite3_column_int64(st, 12);
	meta_col_text(d->recovery_point, sizeof(d->recovery_point), st, 13);
	d->recovery_point_ms = sqlite3_column_int64(st, 14);
	meta_col_text(d->base_snapshot, sizeof(d->base_snapshot), st, 15);
	return 0;
}

int model_device_load(struct model_device *out, struct rp_array *a, const char *id,
                      struct rp_error *err)
{
	int rc;

	rc = rp_id_check(id, "device id", err);
	if (rc < 0)
		return rc;
	rc = row_query_one(out, dev_from_row, a, err,
	                   "SELECT " DEV_COLS " FROM devices WHERE id = ?", "t", id, NULL);
	if (rc == RP_ENOTFOUND)
		return rp_error_set(err, RP_ENOTFOUND, "LUN '%s' not found on array '%s'", id,
		                    a->id);
	return rc;
}

int model_device_find(struct model_device *out, struct rp_array *a, const char *id_or_name,
                      struct rp_error *err)
{
	sqlite3_stmt *st = NULL;
	struct model_device d;
	int rc, found = 0;

	if (!id_or_name || !*id_or_name)
		return rp_error_set(err, RP_EINVAL, "LUN id is empty");
	if (rp_id_check(id_or_name, "device id", NULL) == 0) {
		rc = row_query_one(out, dev_from_row, a, err,
		                   "SELECT " DEV_COLS " FROM devices WHERE id = ?", "t", id_or_name,
		                   NULL);
		if (rc != RP_ENOTFOUND)
			return rc;
	}
	if (strlen(id_or_name) >= RP_NAME_MAX)
		return rp_error_set(err, RP_EINVAL, "LUN name is longer than %d bytes",
		                    RP_NAME_MAX - 1);
	rc = meta_prepare(&st, a->db, err,
	                  "SELECT " DEV_COLS " FROM devices WHERE name = ?"
	                  " ORDER BY id LIMIT 2",
	                  "t", id_or_name);
	if (rc < 0)
		return rc;
	while ((rc = meta_step(st, a->db, err)) == 1) {
		if (found++ == 0)
			dev_from_row(&d, st);
	}
	sqlite3_finalize(st);
	if (rc < 0)
		return rc;
	if (found == 0)
		return rp_error_set(err, RP_ENOTFOUND, "LUN '%.200s' not found on array '%s'",
		                    id_or_name, a->id);
	if (found > 1)
		return rp_error_set(err, RP_EINVAL,
		                    "LUN name '%.200s' is not unique on array '%s': use its id",
		                    id_or_name, a->id);
	*out = d;
	return 0;
}

int model_device_alloc(struct model_device *d, struct rp_array *a, struct rp_error *err)
{
	int64_t seq = 0;
	int rc;

	rc = meta_next_seq(&seq, a->db, err);
	if (rc < 0)
		return rc;
	memset(d, 0, sizeof(*d));
	rc = model_device_id(d->id, a->id, seq, err);
	if (rc < 0)
		return rc;
	d->seq = seq;
	model_device_obj(d->obj, d->id);
	wwn_device(d->wwn, a->id, seq);
	d->created_ms = rp_now_ms();
	return 0;
}

int model_device_insert(struct rp_array *a, const struct model_device *d, struct rp_error *err)
{
	int64_t n = 0;
	int rc;

	rc = meta_query_int(&n, a->db, err, "SELECT COUNT(*) FROM devices WHERE id = ?", "t",
	                    d->id);
	if (rc < 0)
		return rc;
	if (n > 0)
		return rp_error_set(err, RP_EEXISTS, "LUN '%s' already exists on array '%s'", d->id,
		                    a->id);
	return meta_run(NULL, a->db, err,
	                "INSERT INTO devices(" DEV_COLS ") VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
	                " ?, ?, ?, ?, ?)",
	                "tittttubbtttitit", d->id, d->seq, d->name, d->obj, d->wwn, nz(d->group),
	                d->size, d->state, (int)d->read_only, nz(d->peer_array), nz(d->peer_device),
	                nz(d->snapshot_of), d->created_ms, nz(d->recovery_point),
	                d->recovery_point_ms, nz(d->base_snapshot));
}

int model_device_store(struct rp_array *a, const struct model_device *d, struct rp_error *err)
{
	int changes = 0, rc;

	rc = meta_run(&changes, a->db, err,
	              "UPDATE devices SET seq = ?, name = ?, obj = ?, wwn = ?, grp = ?, size = ?,"
	              " state = ?, read_only = ?, peer_array = ?, peer_device = ?,"
	              " snapshot_of = ?, created_ms = ?, recovery_point = ?,"
	              " recovery_point_ms = ?, base_snapshot = ? WHERE id = ?",
	              "ittttubbtttititt", d->seq, d->name, d->obj, d->wwn, nz(d->group), d->size,
	              d->state, (int)d->read_only, nz(d->peer_array), nz(d->peer_device),
	              nz(d->snapshot_of), d->created_ms, nz(d->recovery_point),
	              d->recovery_point_ms, nz(d->base_snapshot), d->id);
	if (rc < 0)
		return rc;
	if (changes == 0)
		return rp_error_set(err, RP_ENOTFOUND, "LUN '%s' not found on array '%s'", d->id,
		                    a->id);
	return 0;
}

int model_device_set_state(struct rp_array *a, const char *id, int state, int read_only,
                           const char *peer_array, const char *peer_device, struct rp_error *err)
{
	struct model_device d;
	bool own = false;
	int rc;

	rc = model_txn_begin(a, &own, err);
	if (rc < 0)
		return rc;
	rc = model_device_load(&d, a, id, err);
	if (rc < 0)
		goto out;
	d.state = state;
	if (read_only >= 0)
		d.read_only = read_only != 0;
	if (peer_array)
		(void)rp_strlcpy(d.peer_array, peer_array, sizeof(d.peer_array));
	if (peer_device)
		(void)rp_strlcpy(d.peer_device, peer_device, sizeof(d.peer_device));
	rc = model_device_store(a, &d, err);
out:
	return model_txn_end(a, own, rc, err);
}

int model_device_list(struct model_device **out, size_t *n, struct rp_array *a, const char *group,
                      struct rp_error *err)
{
	sqlite3_stmt *st = NULL;
	void *v = NULL;
	int rc;

	if (!group)
		rc = meta_prepare(&st, a->db, err, "SELECT " DEV_COLS " FROM devices ORDER BY id",
		                  "");
	else if (!*group)
		rc = meta_prepare(&st, a->db, err,
		                  "SELECT " DEV_COLS " FROM devices WHERE grp IS NULL OR grp = ''"
		                  " ORDER BY id",
		                  "");
	else
		rc = meta_prepare(&st, a->db, err,
		                  "SELECT " DEV_COLS " FROM devices WHERE grp = ? ORDER BY id", "t",
		                  group);
	if (rc < 0)
		return rc;
	rc = rows_collect(&v, n, st, a, sizeof(**out), 16, dev_from_row, NULL, err);
	if (rc == 0)
		*out = v;
	return rc;
}

int model_device_by_peer(struct model_device *out, struct rp_array *a, const char *peer_array,
                         const char *peer_device, struct rp_error *err)
{
	int rc;

	rc = row_query_one(out, dev_from_row, a, err,
	                   "SELECT " DEV_COLS " FROM devices WHERE peer_array = ? AND"
	                   " peer_device = ? ORDER BY id LIMIT 1",
	                   "tt", peer_array, peer_device);
	if (rc == RP_ENOTFOUND)
		return rp_error_set(err, RP_ENOTFOUND,
		                    "no LUN on array '%s' pairs with '%s' on array '%s'", a->id,
		                    peer_device, peer_array);
	return rc;
}

static int payload_append(char **buf, size_t *len, size_t *cap, const char *key, const char *val,
                          struct rp_error *err)
{
	size_t need = strlen(key) + strlen(val) + 3;
	char *nb;

	if (*len + need > *cap) {
		size_t ncap = (*cap ? *cap * 2 : 256) + need;

		nb = rp_realloc(*buf, ncap);
		if (!nb)
			return oom(err);
		*buf = nb;
		*cap = ncap;
	}
	*len += (size_t)snprintf(*buf + *len, *cap - *len, "%s=%s\n", key, val);
	return 0;
}

/* Deletes every "obj=" line of @payload through the driver (absent objects are fine). */
static int model_obj_delete_payload(struct rp_array *a, const char *payload, struct rp_error *err)
{
	const char *p = payload, *nl;
	char obj[ARRAY_OBJ_MAX];
	int rc = 0, r;

	for (; p && *p; p = nl ? nl + 1 : NULL) {
		size_t l;

		nl = strchr(p, '\n');
		l = nl ? (size_t)(nl - p) : strlen(p);
		if (l <= 4 || strncmp(p, "obj=", 4) != 0 || l - 4 >= sizeof(obj))
			continue;
		memcpy(obj, p + 4, l - 4);
		obj[l - 4] = '\0';
		r = model_obj_delete(a, obj, err);
		if (r < 0 && rc == 0)
			rc = r;
	}
	return rc;
}

int model_device_destroy(struct rp_array *a, const char *id, struct rp_error *err)
{
	struct model_intent in = MODEL_INTENT_INIT;
	struct model_snapshot *snaps = NULL;
	struct model_device d;
	char *payload = NULL;
	size_t i, nsnaps = 0, len = 0, cap = 0;
	int rc;

	if (!sqlite3_get_autocommit(a->db))
		return rp_error_set(err, RP_ERROR, "LUN destroy inside a transaction");
	rc = meta_txn_begin(a->db, err);
	if (rc < 0)
		return rc;
	rc = model_device_load(&d, a, id, err);
	if (rc == RP_ENOTFOUND) {
		rp_error_clear(err);
		meta_txn_rollback(a->db);
		return 0;
	}
	if (rc < 0)
		goto fail;
	rc = model_snapshot_list(&snaps, &nsnaps, a, id, NULL, NULL, err);
	if (rc < 0)
		goto fail;
	rc = payload_append(&payload, &len, &cap, "device", d.id, err);
	if (rc < 0)
		goto fail;
	rc = payload_append(&payload, &len, &cap, "obj", d.obj, err);
	for (i = 0; rc == 0 && i < nsnaps; i++)
		rc = payload_append(&payload, &len, &cap, "obj", snaps[i].obj, err);
	if (rc < 0)
		goto fail;
	rc = model_intent_add(&in, a, "obj_delete", payload, err);
	if (rc < 0)
		goto fail;
	rc = meta_run(NULL, a->db, err, "DELETE FROM snapshots WHERE device = ?", "t", id);
	if (rc == 0)
		rc = meta_run(NULL, a->db, err, "DELETE FROM rp_deltas WHERE device = ?", "t", id);
	if (rc == 0)
		rc = meta_run(NULL, a->db, err, "DELETE FROM lun_meta WHERE device = ?", "t", id);
	if (rc == 0)
		rc = meta_run(NULL, a->db, err, "DELETE FROM presentations WHERE device = ?", "t",
		              id);
	if (rc == 0)
		rc = meta_run(NULL, a->db, err, "DELETE FROM devices WHERE id = ?", "t", id);
	if (rc < 0)
		goto fail;
	rc = meta_txn_commit(a->db, err);
	if (rc < 0)
		goto out;
	/*
	 * Rows are gone: the device is deleted. Now the objects; when that fails (or we crash)
	 * the intent stays and model_recover finishes the job at a later open.
	 */
	{
		struct rp_error e = { 0 };

		if (model_obj_delete_payload(a, payload, &e) == 0)
			(void)model_intent_delete(&in, a, NULL);
		else
			rp_log(RP_LOG_WARNING,
			       "array '%s': data of deleted LUN '%s' not removed yet: %s", a->id,
			       id, e.msg);
	}
	rc = 0;
	goto out;
fail:
	meta_txn_rollback(a->db);
out:
	model_intent_release(&in, a);
	rp_free(snaps);
	rp_free(payload);
	return rc;
}

void model_device_to_public(struct rp_device *out, const struct model_device *d)
{
	memset(out, 0, sizeof(*out));
	(void)rp_strlcpy(out->id, d->id, sizeof(out->id));
	(void)rp_strlcpy(out->name, d->name, sizeof(out->name));
	(void)rp_strlcpy(out->wwn, d->wwn, sizeof(out->wwn));
	(void)rp_strlcpy(out->group, d->group, sizeof(out->group));
	out->size = d->size;
	out->state = (enum rp_dev_state)d->state;
	out->read_only = d->read_only;
	(void)rp_strlcpy(out->peer_array, d->peer_array, sizeof(out->peer_array));
	(void)rp_strlcpy(out->peer_device, d->peer_device, sizeof(out->peer_device));
	(void)rp_strlcpy(out->snapshot_of, d->snapshot_of, sizeof(out->snapshot_of));
	out->created_ms = d->created_ms;
	(void)rp_strlcpy(out->recovery_point, d->recovery_point, sizeof(out->recovery_point));
	out->recovery_point_ms = d->recovery_point_ms;
}

/* ------------------------------------------------------------------------------------------ */
/* Groups                                                                                      */

#define GRP_COLS                                                                                   \
	"id, name, role, peer_array, rpo, retention, recovery_point, recovery_point_ms,"           \
	" test_snapshot, created_ms"

static int grp_from_row(void *elem, sqlite3_stmt *st)
{
	struct model_group *g = elem;

	memset(g, 0, sizeof(*g));
	meta_col_text(g->id, sizeof(g->id), st, 0);
	meta_col_text(g->name, sizeof(g->name), st, 1);
	g->role = sqlite3_column_int(st, 2);
	meta_col_text(g->peer_array, sizeof(g->peer_array), st, 3);
	g->rpo = (uint32_t)sqlite3_column_int64(st, 4);
	g->retention = (uint32_t)sqlite3_column_int64(st, 5);
	meta_col_text(g->recovery_point, sizeof(g->recovery_point), st, 6);
	g->recovery_point_ms = sqlite3_column_int64(st, 7);
	meta_col_text(g->test_snapshot, sizeof(g->test_snapshot), st, 8);
	g->created_ms = sqlite3_column_int64(st, 9);
	return 0;
}

int model_group_load(struct model_group *out, struct rp_array *a, const char *id,
                     struct rp_error *err)
{
	int rc;

	rc = rp_id_check(id, "group id", err);
	if (rc < 0)
		return rc;
	rc = row_query_one(out, grp_from_row, a, err,
	                   "SELECT " GRP_COLS " FROM groups WHERE id = ?", "t", id, NULL);
	if (rc == RP_ENOTFOUND)
		return rp_error_set(err, RP_ENOTFOUND, "group '%s' not found on array '%s'", id,
		                    a->id);
	return rc;
}

int model_group_insert(struct rp_array *a, const struct model_group *g, struct rp_error *err)
{
	int64_t n = 0;
	int rc;

	rc = meta_query_int(&n, a->db, err, "SELECT COUNT(*) FROM groups WHERE id = ?", "t", g->id);
	if (rc < 0)
		return rc;
	if (n > 0)
		return rp_error_set(err, RP_EEXISTS, "group '%s' already exists on array '%s'",
		                    g->id, a->id);
	return meta_run(NULL, a->db, err,
	                "INSERT INTO groups(" GRP_COLS ") VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
	                "ttbtiititi", g->id, g->name, g->role, nz(g->peer_array), (int64_t)g->rpo,
	                (int64_t)g->retention, nz(g->recovery_point), g->recovery_point_ms,
	                nz(g->test_snapshot), g->created_ms);
}

int model_group_store(struct rp_array *a, const struct model_group *g, struct rp_error *err)
{
	int changes = 0, rc;

	rc = meta_run(&changes, a->db, err,
	              "UPDATE groups SET name = ?, role = ?, peer_array = ?, rpo = ?,"
	              " retention = ?, recovery_point = ?, recovery_point_ms = ?,"
	              " test_snapshot = ?, created_ms = ? WHERE id = ?",
	              "tbtiititit", g->name, g->role, nz(g->peer_array), (int64_t)g->rpo,
	              (int64_t)g->retention, nz(g->recovery_point), g->recovery_point_ms,
	              nz(g->test_snapshot), g->created_ms, g->id);
	if (rc < 0)
		return rc;
	if (changes == 0)
		return rp_error_set(err, RP_ENOTFOUND, "group '%s' not found on array '%s'", g->id,
		                    a->id);
	return 0;
}

int model_group_list(struct model_group **out, size_t *n, struct rp_array *a, struct rp_error *err)
{
	sqlite3_stmt *st = NULL;
	void *v = NULL;
	int rc;

	rc = meta_prepare(&st, a->db, err, "SELECT " GRP_COLS " FROM groups ORDER BY id", "");
	if (rc < 0)
		return rc;
	rc = rows_collect(&v, n, st, a, sizeof(**out), 8, grp_from_row, NULL, err);
	if (rc == 0)
		*out = v;
	return rc;
}

int model_group_count_devices(size_t *out, struct rp_array *a, const char *id, struct rp_error *err)
{
	int64_t n = 0;
	int rc;

	rc = meta_query_int(&n, a->db, err, "SELECT COUNT(*) FROM devices WHERE grp = ?", "t", id);
	if (rc < 0)
		return rc;
	*out = (size_t)n;
	return 0;
}

int model_group_delete_row(struct rp_array *a, const char *id, struct rp_error *err)
{
	bool own = false;
	int rc;

	rc = model_txn_begin(a, &own, err);
	if (rc < 0)
		return rc;
	rc = meta_run(NULL, a->db, err, "DELETE FROM group_meta WHERE grp = ?", "t", id);
	if (rc == 0)
		rc = meta_run(NULL, a->db, err, "DELETE FROM groups WHERE id = ?", "t", id);
	return model_txn_end(a, own, rc, err);
}

void model_group_to_public(struct rp_group *out, const struct model_group *g)
{
	memset(out, 0, sizeof(*out));
	(void)rp_strlcpy(out->id, g->id, sizeof(out->id));
	(void)rp_strlcpy(out->name, g->name, sizeof(out->name));
	out->role = (enum rp_group_role)g->role;
	(void)rp_strlcpy(out->peer_array, g->peer_array, sizeof(out->peer_array));
	out->rpo_seconds = g->rpo;
	out->retention = g->retention;
	(void)rp_strlcpy(out->recovery_point, g->recovery_point, sizeof(out->recovery_point));
	out->recovery_point_ms = g->recovery_point_ms;
	(void)rp_strlcpy(out->test_snapshot, g->test_snapshot, sizeof(out->test_snapshot));
}

/* ------------------------------------------------------------------------------------------ */
/* Snapshots                                                                                   */

#define SNAP_COLS "id, device, grp, kind, obj, wwn, recovery_point, recovery_point_ms, created_ms"

static int snap_from_row(void *elem, sqlite3_stmt *st)
{
	struct model_snapshot *s = elem;

	memset(s, 0, sizeof(*s));
	meta_col_text(s->id, sizeof(s->id), st, 0);
	meta_col_text(s->device, sizeof(s->device), st, 1);
	meta_col_text(s->group, sizeof(s->group), st, 2);
	meta_col_text(s->kind, sizeof(s->kind), st, 3);
	meta_col_text(s->obj, sizeof(s->obj), st, 4);
	meta_col_text(s->wwn, sizeof(s->wwn), st, 5);
	meta_col_text(s->recovery_point, sizeof(s->recovery_point), st, 6);
	s->recovery_point_ms = sqlite3_column_int64(st, 7);
	s->created_ms = sqlite3_column_int64(st, 8);
	return 0;
}

int model_snapshot_insert(struct rp_array *a, const struct model_snapshot *s, struct rp_error *err)
{
	int64_t n = 0;
	int rc;

	rc = rp_id_check(s->id, "snapshot id", err);
	if (rc < 0)
		return rc;
	rc = meta_query_int(&n, a->db, err, "SELECT COUNT(*) FROM snapshots WHERE id = ?", "t",
	                    s->id);
	if (rc < 0)
		return rc;
	if (n > 0)
		return rp_error_set(err, RP_EEXISTS, "snapshot '%s' already exists on array '%s'",
		                    s->id, a->id);
	return meta_run(NULL, a->db, err,
	                "INSERT INTO snapshots(" SNAP_COLS ") VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)",
	                "tttttttii", s->id, s->device, nz(s->group), s->kind, s->obj, nz(s->wwn),
	                nz(s->recovery_point), s->recovery_point_ms, s->created_ms);
}

int model_snapshot_delete(struct rp_array *a, const char *id, struct rp_error *err)
{
	return meta_run(NULL, a->db, err, "DELETE FROM snapshots WHERE id = ?", "t", id);
}

int model_snapshot_load(struct model_snapshot *out, struct rp_array *a, const char *id,
                        struct rp_error *err)
{
	sqlite3_stmt *st = NULL;
	int rc;

	rc = rp_id_check(id, "snapshot id", err);
	if (rc < 0)
		return rc;
	rc = meta_prepare(&st, a->db, err, "SELECT " SNAP_COLS " FROM snapshots WHERE id = ?", "t",
	                  id);
	if (rc < 0)
		return rc;
	rc = meta_step(st, a->db, err);
	if (rc == 1) {
		snap_from_row(out, st);
		rc = 0;
	} else if (rc == 0) {
		rc = rp_error_set(err, RP_ENOTFOUND, "snapshot '%s' not found on array '%s'", id,
		                  a->id);
	}
	sqlite3_finalize(st);
	return rc;
}

int model_snapshot_list(struct model_snapshot **out, size_t *n, struct rp_array *a,
                        const char *device, const char *group, const char *kind,
                        struct rp_error *err)
{
	sqlite3_stmt *st = NULL;
	void *v = NULL;
	char sql[256];
	int rc;

	/* Only the filters given appear as "col = ?" so that SQLite uses the index on
	 * (device, kind): "(?1 IS NULL OR device = ?1)" made every lookup a full scan. */
	(void)snprintf(sql, sizeof(sql),
	               "SELECT " SNAP_COLS " FROM snapshots WHERE %s AND %s AND %s"
	               " ORDER BY created_ms DESC, id DESC",
	               device ? "device = ?1" : "?1 IS NULL", group ? "grp = ?2" : "?2 IS NULL",
	               kind ? "kind = ?3" : "?3 IS NULL");
	rc = meta_prepare(&st, a->db, err, sql, "ttt", device, group, kind);
	if (rc < 0)
		return rc;
	rc = rows_collect(&v, n, st, a, sizeof(**out), 8, snap_from_row, NULL, err);
	if (rc == 0)
		*out = v;
	return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Peers                                                                                       */

static int peer_from_row(void *elem, sqlite3_stmt *st)
{
	struct rp_peer *p = elem;

	meta_col_text(p->array_id, sizeof(p->array_id), st, 0);
	meta_col_text(p->uri, sizeof(p->uri), st, 1);
	return 0;
}

int model_peer_list(struct rp_peer **out, size_t *n, struct rp_array *a, struct rp_error *err)
{
	sqlite3_stmt *st = NULL;
	void *v = NULL;
	int rc;

	rc = meta_prepare(&st, a->db, err, "SELECT array_id, uri FROM peers ORDER BY array_id", "");
	if (rc < 0)
		return rc;
	rc = rows_collect(&v, n, st, a, sizeof(**out), 4, peer_from_row, NULL, err);
	if (rc == 0)
		*out = v;
	return rc;
}

int model_peer_get(struct rp_peer *out, struct rp_array *a, const char *id, struct rp_error *err)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (id && *id) {
		rc = rp_id_check(id, "peer array id", err);
		if (rc < 0)
			return rc;
	}
	rc = meta_prepare(&st, a->db, err,
	                  "SELECT array_id, uri FROM peers WHERE ?1 IS NULL OR array_id = ?1"
	                  " ORDER BY array_id LIMIT 1",
	                  "t", nz(id));
	if (rc < 0)
		return rc;
	rc = meta_step(st, a->db, err);
	if (rc == 1) {
		rc = peer_from_row(out, st);
	} else if (rc == 0) {
		rc = nz(id) ? rp_error_set(err, RP_ENOTFOUND, "array '%s' has no peer '%s'", a->id,
		                           id)
		            : rp_error_set(err, RP_ENOTFOUND, "array '%s' has no peer array",
		                           a->id);
	}
	sqlite3_finalize(st);
	return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Metadata key/values                                                                         */

int model_kv_check(const char *key, const char *value, struct rp_error *err)
{
	size_t i, len;

	if (!key || !*key)
		return rp_error_set(err, RP_EINVAL, "metadata key is empty");
	len = strlen(key);
	if (len > MODEL_META_KEY_MAX)
		return rp_error_set(err, RP_EINVAL, "metadata key is longer than %d characters",
		                    MODEL_META_KEY_MAX);
	for (i = 0; i < len; i++)
		if (!isprint((unsigned char)key[i]))
			return rp_error_set(err, RP_EINVAL,
			                    "metadata key has a character that is not printable");
	if (value && strlen(value) > MODEL_META_VALUE_MAX)
		return rp_error_set(err, RP_EINVAL,
		                    "metadata value of '%s' is larger than %d bytes", key,
		                    MODEL_META_VALUE_MAX);
	return 0;
}

static const char *kv_sql_list(enum model_meta_table t)
{
	return t == MODEL_LUN_META ? "SELECT key, value FROM lun_meta WHERE device = ? ORDER BY key"
	                           : "SELECT key, value FROM group_meta WHERE grp = ? ORDER BY key";
}

static int kv_from_row(void *elem, sqlite3_stmt *st)
{
	struct model_kv *kv = elem;
	const unsigned char *k = sqlite3_column_text(st, 0);
	const unsigned char *val = sqlite3_column_text(st, 1);

	kv->key = rp_strdup(k ? (const char *)k : "");
	kv->value = rp_strdup(val ? (const char *)val : "");
	return kv->key && kv->value ? 0 : -1;
}

static void kv_free_rows(void *v, size_t n)
{
	model_kv_free(v, n);
}

int model_kv_list(struct model_kv **out, size_t *n, struct rp_array *a, enum model_meta_table table,
                  const char *owner, struct rp_error *err)
{
	sqlite3_stmt *st = NULL;
	void *v = NULL;
	int rc;

	rc = meta_prepare(&st, a->db, err, kv_sql_list(table), "t", owner);
	if (rc < 0)
		return rc;
	rc = rows_collect(&v, n, st, a, sizeof(**out), 8, kv_from_row, kv_free_rows, err);
	if (rc == 0)
		*out = v;
	return rc;
}

int model_kv_replace_all(struct rp_array *a, enum model_meta_table table, const char *owner,
                         const struct model_kv *kv, size_t n, struct rp_error *err)
{
	bool own = false;
	size_t i;
	int rc;

	for (i = 0; i < n; i++) {
		rc = model_kv_check(kv[i].key, kv[i].value, err);
		if (rc < 0)
			return rc;
	}
	rc = model_txn_begin(a, &own, err);
	if (rc < 0)
		return rc;
	rc = meta_run(NULL, a->db, err,
	              table == MODEL_LUN_META ? "DELETE FROM lun_meta WHERE device = ?"
	                                      : "DELETE FROM group_meta WHERE grp = ?",
	              "t", owner);
	for (i = 0; rc == 0 && i < n; i++)
		rc = meta_run(NULL, a->db, err,
		              table == MODEL_LUN_META
		                      ? "INSERT OR REPLACE INTO lun_meta(device, key, value)"
		                        " VALUES(?, ?, ?)"
		                      : "INSERT OR REPLACE INTO group_meta(grp, key, value)"
		                        " VALUES(?, ?, ?)",
		              "ttt", owner, kv[i].key, kv[i].value ? kv[i].value : "");
	return model_txn_end(a, own, rc, err);
}

int model_kv_set(struct rp_array *a, enum model_meta_table table, const char *owner,
                 const char *key, const char *value, struct rp_error *err)
{
	int rc;

	rc = model_kv_check(key, value, err);
	if (rc < 0)
		return rc;
	if (!value)
		return meta_run(NULL, a->db, err,
		                table == MODEL_LUN_META
		                        ? "DELETE FROM lun_meta WHERE device = ? AND key = ?"
		                        : "DELETE FROM group_meta WHERE grp = ? AND key = ?",
		                "tt", owner, key);
	return meta_run(NULL, a->db, err,
	                table == MODEL_LUN_META
	                        ? "INSERT INTO lun_meta(device, key, value) VALUES(?, ?, ?)"
	                          " ON CONFLICT(device, key) DO UPDATE SET value = excluded.value"
	                        : "INSERT INTO group_meta(grp, key, value) VALUES(?, ?, ?)"
	                          " ON CONFLICT(grp, key) DO UPDATE SET value = excluded.value",
	                "ttt", owner, key, value);
}

int model_kv_get(char **out, struct rp_array *a, enum model_meta_table table, const char *owner,
                 const char *key, struct rp_error *err)
{
	sqlite3_stmt *st = NULL;
	const unsigned char *v;
	char *copy;
	int rc;

	rc = model_kv_check(key, NULL, err);
	if (rc < 0)
		return rc;
	rc = meta_prepare(&st, a->db, err,
	                  table == MODEL_LUN_META
	                          ? "SELECT value FROM lun_meta WHERE device = ? AND key = ?"
	                          : "SELECT value FROM group_meta WHERE grp = ? AND key = ?",
	                  "tt", owner, key);
	if (rc < 0)
		return rc;
	rc = meta_step(st, a->db, err);
	if (rc == 0) {
		rc = rp_error_set(err, RP_ENOTFOUND, "%s '%s' has no metadata '%s'",
		                  table == MODEL_LUN_META ? "LUN" : "group", owner, key);
	} else if (rc == 1) {
		v = sqlite3_column_text(st, 0);
		copy = rp_strdup(v ? (const char *)v : "");
		if (!copy) {
			rc = oom(err);
		} else {
			*out = copy;
			rc = 0;
		}
	}
	sqlite3_finalize(st);
	return rc;
}

int model_kv_foreach(struct rp_array *a, enum model_meta_table table, const char *owner,
                     rp_meta_cb cb, void *payload, struct rp_error *err)
{
	struct model_kv *kv = NULL;
	size_t n = 0, i;
	int rc;

	rc = model_kv_list(&kv, &n, a, table, owner, err);
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

void model_kv_free(struct model_kv *kv, size_t n)
{
	size_t i;

	if (!kv)
		return;
	for (i = 0; i < n; i++) {
		rp_free(kv[i].key);
		rp_free(kv[i].value);
	}
	rp_free(kv);
}

/* ------------------------------------------------------------------------------------------ */
/* Intents and recovery                                                                        */

int model_payload_get(char *buf, size_t len, const char *payload, const char *key)
{
	size_t kl = strlen(key);
	const char *p = payload, *nl;

	if (len)
		buf[0] = '\0';
	for (; p && *p; p = nl ? nl + 1 : NULL) {
		size_t l;

		nl = strchr(p, '\n');
		l = nl ? (size_t)(nl - p) : strlen(p);
		if (l > kl && strncmp(p, key, kl) == 0 && p[kl] == '=') {
			size_t vl = l - kl - 1;

			if (vl >= len)
				vl = len - 1;
			memcpy(buf, p + kl + 1, vl);
			buf[vl] = '\0';
			return 0;
		}
	}
	return RP_ENOTFOUND;
}

static int intent_lock_name(char *buf, size_t len, const char *owner)
{
	int n = snprintf(buf, len, "intent-%s", owner);

	return n < 0 || (size_t)n >= len ? -1 : 0;
}

int model_intent_add(struct model_intent *out, struct rp_array *a, const char *op,
                     const char *payload, struct rp_error *err)
{
	char lname[RP_ID_MAX], *full = NULL;
	bool got = false, own = false;
	size_t len;
	int rc;

	out->id = 0;
	out->lock_fd = -1;
	static unsigned counter;

	(void)snprintf(out->owner, sizeof(out->owner), "%d-%" PRId64 "-%u", (int)getpid(),
	               rp_now_ms(), __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED));
	if (intent_lock_name(lname, sizeof(lname), out->owner) < 0)
		return rp_error_set(err, RP_ERROR, "intent owner too long");
	rc = lock_try(a, lname, &out->lock_fd, &got, err);
	if (rc < 0)
		return rc;
	if (!got)
		return rp_error_set(err, RP_EBUSY, "intent lock '%s' is held", lname);
	len = strlen(out->owner) + strlen(payload ? payload : "") + 16;
	full = rp_malloc(len);
	if (!full) {
		rc = oom(err);
		goto fail;
	}
	(void)snprintf(full, len, "owner=%s\n%s", out->owner, payload ? payload : "");
	rc = model_txn_begin(a, &own, err);
	if (rc < 0)
		goto fail;
	rc = meta_run(NULL, a->db, err,
	              "INSERT INTO intents(op, payload, created_ms) VALUES(?, ?, ?)", "tti", op,
	              full, rp_now_ms());
	if (rc == 0)
		out->id = sqlite3_last_insert_rowid(a->db);
	rc = model_txn_end(a, own, rc, err);
	if (rc < 0)
		goto fail;
	rp_free(full);
	return 0;
fail:
	rp_free(full);
	model_intent_release(out, a);
	return rc;
}

int model_intent_update(struct model_intent *in, struct rp_array *a, const char *payload,
                        struct rp_error *err)
{
	char *full;
	size_t len;
	int rc;

	len = strlen(in->owner) + strlen(payload ? payload : "") + 16;
	full = rp_malloc(len);
	if (!full)
		return oom(err);
	(void)snprintf(full, len, "owner=%s\n%s", in->owner, payload ? payload : "");
	rc = meta_run(NULL, a->db, err, "UPDATE intents SET payload = ? WHERE id = ?", "ti", full,
	              in->id);
	rp_free(full);
	return rc;
}

int model_intent_delete(struct model_intent *in, struct rp_array *a, struct rp_error *err)
{
	if (in->id <= 0)
		return 0;
	return meta_run(NULL, a->db, err, "DELETE FROM intents WHERE id = ?", "i", in->id);
}

void model_intent_release(struct model_intent *in, struct rp_array *a)
{
	char lname[RP_ID_MAX];

	if (in->lock_fd < 0)
		return;
	if (intent_lock_name(lname, sizeof(lname), in->owner) == 0)
		lock_remove(a, lname);
	unlock(in->lock_fd);
	in->lock_fd = -1;
}

#define MODEL_MAX_HANDLERS 16

static struct {
	char op[32];
	model_recover_fn fn;
} model_handlers[MODEL_MAX_HANDLERS];
static size_t model_n_handlers;

int model_recover_register(const char *op, model_recover_fn fn)
{
	size_t i;

	for (i = 0; i < model_n_handlers; i++)
		if (strcmp(model_handlers[i].op, op) == 0) {
			model_handlers[i].fn = fn;
			return 0;
		}
	if (model_n_handlers == MODEL_MAX_HANDLERS || strlen(op) >= sizeof(model_handlers[0].op))
		return RP_EINVAL;
	(void)rp_strlcpy(model_handlers[model_n_handlers].op, op, sizeof(model_handlers[0].op));
	model_handlers[model_n_handlers].fn = fn;
	model_n_handlers++;
	return 0;
}

static model_recover_fn model_handler(const char *op)
{
	size_t i;

	if (strcmp(op, "lun_create") == 0)
		return lun_create_rollback;
	if (strcmp(op, "peer_target_delete") == 0)
		return lun_peer_target_delete;
	if (strcmp(op, "obj_delete") == 0)
		return model_obj_delete_payload;
	for (i = 0; i < model_n_handlers; i++)
		if (strcmp(model_handlers[i].op, op) == 0)
			return model_handlers[i].fn;
	return NULL;
}

struct model_pending {
	int64_t id;
	char op[32];
	char *payload;
};

int model_recover(struct rp_array *a, struct rp_error *err)
{
	struct model_pending *v = NULL, *nv;
	sqlite3_stmt *st = NULL;
	size_t cnt = 0, cap = 0, i;
	int rc;

	rc = meta_prepare(&st, a->db, err, "SELECT id, op, payload FROM intents ORDER BY id", "");
	if (rc < 0)
		return rc;
	while ((rc = meta_step(st, a->db, err)) == 1) {
		const unsigned char *p = sqlite3_column_text(st, 2);

		if (cnt == cap) {
			cap = cap ? cap * 2 : 4;
			nv = rp_realloc(v, cap * sizeof(*v));
			if (!nv) {
				rc = oom(err);
				break;
			}
			v = nv;
		}
		v[cnt].id = sqlite3_column_int64(st, 0);
		meta_col_text(v[cnt].op, sizeof(v[cnt].op), st, 1);
		v[cnt].payload = rp_strdup(p ? (const char *)p : "");
		if (!v[cnt].payload) {
			rc = oom(err);
			break;
		}
		cnt++;
	}
	sqlite3_finalize(st);
	if (rc < 0)
		goto out;
	rc = 0;
	for (i = 0; i < cnt; i++) {
		char owner[RP_ID_MAX], lname[RP_ID_MAX];
		struct rp_error e = { 0 };
		model_recover_fn fn;
		int64_t still = 0;
		bool got = false;
		int fd = -1, r;

		if (model_payload_get(owner, sizeof(owner), v[i].payload, "owner") < 0 ||
		    intent_lock_name(lname, sizeof(lname), owner) < 0)
			continue;
		r = lock_try(a, lname, &fd, &got, &e);
		if (r < 0 || !got)
			continue; /* its owner is alive (or the lock is unusable): leave it */
		r = meta_query_int(&still, a->db, &e, "SELECT COUNT(*) FROM intents WHERE id = ?",
		                   "i", v[i].id);
		if (r < 0 || still == 0) {
			unlock(fd);
			continue;
		}
		fn = model_handler(v[i].op);
		if (!fn) {
			rp_log(RP_LOG_WARNING,
			       "array '%s': no recovery for intent %" PRId64 " ('%s')", a->id,
			       v[i].id, v[i].op);
			unlock(fd);
			continue;
		}
		rp_log(RP_LOG_INFO, "array '%s': recovering abandoned '%s' (intent %" PRId64 ")",
		       a->id, v[i].op, v[i].id);
		r = fn(a, v[i].payload, &e);
		if (r == 0)
			r = meta_run(NULL, a->db, &e, "DELETE FROM intents WHERE id = ?", "i",
			             v[i].id);
		if (r < 0) {
			rp_log(RP_LOG_WARNING, "array '%s': recovery of intent %" PRId64 ": %s",
			       a->id, v[i].id, e.msg);
			unlock(fd);
			continue;
		}
		lock_remove(a, lname);
		unlock(fd);
	}
out:
	for (i = 0; i < cnt; i++)
		rp_free(v[i].payload);
	rp_free(v);
	return rc;
}

int model_sync_running(bool *out, struct rp_array *a, const char *device, const char *group,
                       struct rp_error *err)
{
	int64_t n = 0;
	int rc;

	rc = meta_query_int(&n, a->db, err,
	                    "SELECT COUNT(*) FROM sync_sessions WHERE status = 0 AND"
	                    " ((?1 IS NOT NULL AND device = ?1) OR (?2 IS NOT NULL AND grp = ?2))",
	                    "tt", nz(device), nz(group));
	if (rc < 0)
		return rc;
	*out = n > 0;
	return 0;
}

int model_open_peer(struct rp_array **out, struct rp_array *a, const char *peer_id,
                    struct rp_error *err)
{
	return rp_array_open_peer(out, a, peer_id, err);
}

static int model_nosupp(struct rp_array *a, const char *what, struct rp_error *err)
{
	return rp_error_set(err, RP_ENOTSUPPORTED, "array driver '%s' cannot %s", a->driver, what);
}

int model_obj_create(struct rp_array *a, const char *obj, uint64_t size, struct rp_error *err)
{
	if (!a->drv->ops->obj_create)
		return model_nosupp(a, "create objects", err);
	return a->drv->ops->obj_create(a->drv, obj, size, err);
}

int model_obj_delete(struct rp_array *a, const char *obj, struct rp_error *err)
{
	if (!a->drv->ops->obj_delete)
		return model_nosupp(a, "delete objects", err);
	return a->drv->ops->obj_delete(a->drv, obj, err);
}

int model_obj_resize(struct rp_array *a, const char *obj, uint64_t size, struct rp_error *err)
{
	if (!a->drv->ops->obj_resize)
		return model_nosupp(a, "resize objects", err);
	return a->drv->ops->obj_resize(a->drv, obj, size, err);
}

int model_obj_stat(struct array_obj_stat *out, struct rp_array *a, const char *obj,
                   struct rp_error *err)
{
	if (!a->drv->ops->obj_stat)
		return model_nosupp(a, "stat objects", err);
	return a->drv->ops->obj_stat(out, a->drv, obj, err);
}

/* fsync of directory @dir (its entries: names created, renamed or removed in it). */
static int model_dir_sync(const char *dir, struct rp_error *err)
{
	int rc = 0, fd;

	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return rp_error_set_os(err, RP_EIO, errno, "open of directory '%s'", dir);
	if (fsync(fd) < 0)
		rc = rp_error_set_os(err, RP_EIO, errno, "fsync of directory '%s'", dir);
	(void)close(fd);
	return rc;
}

int model_objs_persist(struct rp_array *a, const char *const *objs, size_t n, struct rp_error *err)
{
	char path[PATH_MAX], **dirs = NULL, *slash;
	size_t n_dirs = 0, i, j;
	int rc = 0;

	/* every object's data first, then each distinct directory once */
	for (i = 0; a->drv->ops->flush && i < n; i++) {
		rc = a->drv->ops->flush(a->drv, objs[i], err);
		if (rc < 0)
			return rc;
	}
	if (!a->drv->ops->obj_path || n == 0)
		return 0;
	dirs = rp_calloc(n, sizeof(*dirs));
	if (!dirs)
		return rp_error_set(err, RP_ERROR, "out of memory");
	for (i = 0; i < n; i++) {
		rc = a->drv->ops->obj_path(path, sizeof(path), a->drv, objs[i], err);
		if (rc < 0)
			goto out;
		slash = strrchr(path, '/');
		if (!slash || slash == path)
			continue;
		*slash = '\0';
		for (j = 0; j < n_dirs && strcmp(dirs[j], path) != 0; j++)
			;
		if (j < n_dirs)
			continue; /* that directory is synced already */
		dirs[n_dirs] = rp_strdup(path);
		if (!dirs[n_dirs]) {
			rc = rp_error_set(err, RP_ERROR, "out of memory");
			goto out;
		}
		n_dirs++;
	}
	for (j = 0; j < n_dirs; j++) {
		rc = model_dir_sync(dirs[j], err);
		if (rc < 0)
			goto out;
	}
out:
	for (j = 0; j < n_dirs; j++)
		rp_free(dirs[j]);
	rp_free(dirs);
	return rc;
}

int model_obj_persist(struct rp_array *a, const char *obj, struct rp_error *err)
{
	return model_objs_persist(a, &obj, 1, err);
}

int model_obj_clone(struct rp_array *a, const char *src, const char *dst, struct rp_error *err)
{
	if (!a->drv->ops->clone)
		return model_nosupp(a, "clone objects", err);
	return a->drv->ops->clone(a->drv, src, dst, err);
}

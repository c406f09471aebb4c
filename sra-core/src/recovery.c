/* SPDX-License-Identifier: MIT */
/*
 * recovery.c - snapshot bookkeeping for replication (take, find, delete, roll back), ids, and
 * rp_recovery_points. Rows go through model.h; objects through the driver vtable.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "lock.h"
#include "recovery.h"
#include "replun/workflow.h"

void recovery_rand_hex(char out[5])
{
	unsigned char r[2] = { 0, 0 };
	static unsigned counter;

	if (getrandom(r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r)) {
		counter += 0x9e37u;
		r[0] = (unsigned char)(counter ^ (unsigned)rp_now_ms());
		r[1] = (unsigned char)((counter >> 8) ^ ((unsigned)rp_now_ms() >> 8));
	}
	(void)snprintf(out, 5, "%02x%02x", r[0], r[1]);
}

void recovery_point_id(char out[RP_ID_MAX], int64_t ms)
{
	char hex[5];

	recovery_rand_hex(hex);
	(void)snprintf(out, RP_ID_MAX, "rp-%lld-%s", (long long)ms, hex);
}

void recovery_session_id(char out[RP_ID_MAX], int64_t ms)
{
	char hex[5];

	recovery_rand_hex(hex);
	(void)snprintf(out, RP_ID_MAX, "sync-%lld-%s", (long long)ms, hex);
}

/* ------------------------------------------------------------------------------------------ */
/* Driver wrappers                                                                             */

int recovery_drv_clone(struct rp_array *a, const char *src, const char *dst, struct rp_error *err)
{
	if (!a->drv->ops->clone)
		return rp_error_set(err, RP_ENOTSUPPORTED, "array '%s' cannot clone", a->id);
	return a->drv->ops->clone(a->drv, src, dst, err);
}

int recovery_drv_delete(struct rp_array *a, const char *obj, struct rp_error *err)
{
	if (!a->drv->ops->obj_delete)
		return rp_error_set(err, RP_ENOTSUPPORTED, "array '%s' cannot delete objects",
		                    a->id);
	return a->drv->ops->obj_delete(a->drv, obj, err);
}

int recovery_drv_exists(bool *out, struct rp_array *a, const char *obj, struct rp_error *err)
{
	if (!a->drv->ops->obj_exists)
		return rp_error_set(err, RP_ENOTSUPPORTED, "array '%s' cannot look up objects",
		                    a->id);
	return a->drv->ops->obj_exists(out, a->drv, obj, err);
}

int recovery_drv_set_readonly(struct rp_array *a, const char *obj, bool ro, struct rp_error *err)
{
	if (!a->drv->ops->obj_set_readonly)
		return 0; /* access is then enforced by the metadata only */
	return a->drv->ops->obj_set_readonly(a->drv, obj, ro, err);
}

int recovery_drv_checksum(char out[40], struct rp_array *a, const char *obj, struct rp_error *err)
{
	if (!a->drv->ops->checksum)
		return rp_error_set(err, RP_ENOTSUPPORTED, "array '%s' cannot checksum", a->id);
	return a->drv->ops->checksum(out, a->drv, obj, err);
}

int recovery_open_peer(struct rp_array **out, struct rp_array *a, const char *peer_id,
                       struct rp_error *err)
{
	return model_open_peer(out, a, peer_id, err);
}

/* ------------------------------------------------------------------------------------------ */
/* Snapshots                                                                                   */

static int snap_id_unique(char out[RP_ID_MAX], struct rp_array *a, const char *kind,
                          const char *device, struct rp_error *err)
{
	struct model_snapshot s;
	struct rp_error e2;
	int64_t ms = rp_now_ms();
	int i, rc;

	for (i = 0; i < 1000; i++, ms++) {
		rc = snprintf(out, RP_ID_MAX, "%s-%s-%lld", kind, device, (long long)ms);
		if (rc < 0 || rc >= RP_ID_MAX)
			return rp_error_set(err, RP_EINVAL, "snapshot id of '%s' too long", device);
		rp_error_clear(&e2);
		rc = model_snapshot_load(&s, a, out, &e2);
		if (rc == RP_ENOTFOUND)
			return 0;
		if (rc < 0)
			return rp_error_set(err, rc, "%s", e2.msg);
	}
	return rp_error_set(err, RP_EEXISTS, "no free snapshot id for '%s'", device);
}

int recovery_snapshot_take_from(struct model_snapshot *out, struct rp_array *a,
                                const struct model_device *d, const char *src_obj, const char *kind,
                                const char *rp, int64_t rp_ms, struct rp_error *err)
{
	struct model_intent in = MODEL_INTENT_INIT;
	struct model_snapshot s;
	char payload[ARRAY_OBJ_MAX + 8];
	bool own = false;
	int rc;

	memset(&s, 0, sizeof(s));
	rc = snap_id_unique(s.id, a, kind, d->id, err);
	if (rc < 0)
		return rc;
	rp_strlcpy(s.device, d->id, sizeof(s.device));
	rp_strlcpy(s.group, d->group, sizeof(s.group));
	rp_strlcpy(s.kind, kind, sizeof(s.kind));
	model_snapshot_obj(s.obj, s.id);
	wwn_snapshot(s.wwn, a->id, s.id);
	if (rp)
		rp_strlcpy(s.recovery_point, rp, sizeof(s.recovery_point));
	s.recovery_point_ms = rp_ms;
	s.created_ms = rp_now_ms();

	/*
	 * Intent first: until the row that names the object commits (with the intent's delete),
	 * an "obj_delete" intent names it, so a crash in between leaves the object to
	 * model_recover (the next open) instead of behind.
	 */
	(void)snprintf(payload, sizeof(payload), "obj=%s\n", s.obj);
	rc = model_intent_add(&in, a, "obj_delete", payload, err);
	if (rc < 0)
		return rc;
	rc = recovery_drv_clone(a, src_obj, s.obj, err);
	/* durable (data, name) before the row that names it commits */
	if (rc == 0)
		rc = model_obj_persist(a, s.obj, err);
	if (rc == 0) {
		recovery_crash_point("snapshot-made");
		rc = model_txn_begin(a, &own, err);
		if (rc == 0) {
			rc = model_snapshot_insert(a, &s, err);
			if (rc == 0)
				rc = model_intent_delete(&in, a, err);
			rc = model_txn_end(a, own, rc, err);
		}
	}
	if (rc < 0) {
		(void)recovery_drv_delete(a, s.obj, NULL);
		(void)model_intent_delete(&in, a, NULL);
	}
	model_intent_release(&in, a);
	if (rc < 0)
		return rc;
	if (out)
		*out = s;
	return 0;
}

int recovery_snapshot_take(struct model_snapshot *out, struct rp_array *a,
                           const struct model_device *d, const char *kind, const char *rp,
                           int64_t rp_ms, struct rp_error *err)
{
	return recovery_snapshot_take_from(out, a, d, d->obj, kind, rp, rp_ms, err);
}

void recovery_obj_gc(struct rp_array *a, const char *obj)
{
	int64_t n = 0;
	int rc;

	if (!obj || !obj[0])
		return;
	rc = meta_query_int(&n, a->db, NULL,
	                    "SELECT (SELECT count(*) FROM snapshots WHERE obj = ?1) +"
	                    " (SELECT count(*) FROM devices WHERE obj = ?1)",
	                    "t", obj);
	if (rc < 0 || n > 0)
		return;
	(void)recovery_drv_delete(a, obj, NULL);
}

int recovery_snapshot_delete(struct rp_array *a, const char *id, struct rp_error *err)
{
	struct model_snapshot s;
	struct rp_error e2;
	int rc;

	rp_error_clear(&e2);
	rc = model_snapshot_load(&s, a, id, &e2);
	if (rc == RP_ENOTFOUND)
		return 0;
	if (rc < 0)
		return rp_error_set(err, rc, "%s", e2.msg);
	rc = model_snapshot_delete(a, id, err);
	if (rc < 0)
		return rc;
	recovery_obj_gc(a, s.obj);
	return 0;
}

int recovery_snapshot_find(struct model_snapshot *out, struct rp_array *a, const char *device,
                           const char *kind, const char *rp, struct rp_error *err)
{
	struct model_snapshot *list = NULL;
	size_t n = 0, i;
	int rc;

	rc = model_snapshot_list(&list, &n, a, device, NULL, kind, err);
	if (rc < 0)
		return rc;
	rc = RP_ENOTFOUND;
	for (i = 0; i < n; i++) {
		if (rp && strcmp(list[i].recovery_point, rp) != 0)
			continue;
		*out = list[i];
		rc = 0;
		break;
	}
	rp_free(list);
	if (rc == RP_ENOTFOUND)
		return rp_error_set(err, RP_ENOTFOUND, "no %s snapshot of '%s'%s%s",
		                    kind ? kind : "", device, rp ? " at " : "", rp ? rp : "");
	return 0;
}

void recovery_crash_point(const char *point)
{
	const char *v = getenv("REPLUN_TEST_CRASH_AT");

	if (v && strcmp(v, point) == 0)
		_exit(86);
}

/* "stage-<tag>-<device id>" into @stage. */
static int stage_name(char stage[ARRAY_OBJ_MAX], const struct model_device *d, const char *tag,
                      struct rp_error *err)
{
	int rc = snprintf(stage, ARRAY_OBJ_MAX, "stage-%s-%s", tag, d->id);

	if (rc < 0 || rc >= ARRAY_OBJ_MAX)
		return rp_error_set(err, RP_EINVAL, "staging name for '%s' too long", d->id);
	return 0;
}

int recovery_stage(char stage[ARRAY_OBJ_MAX], struct rp_array *a, const struct model_device *d,
                   const char *src_obj, const char *tag, struct rp_error *err)
{
	int rc;

	rc = stage_name(stage, d, tag, err);
	if (rc < 0)
		return rc;
	if (!a->drv->ops->obj_rename)
		return rp_error_set(err, RP_ENOTSUPPORTED, "array '%s' cannot rename objects",
		                    a->id);
	(void)recovery_drv_delete(a, stage, NULL);
	rc = recovery_drv_clone(a, src_obj, stage, err);
	if (rc < 0)
		goto fail;
	if (a->drv->ops->flush) {
		rc = a->drv->ops->flush(a->drv, stage, err);
		if (rc < 0)
			goto fail;
	}
	return 0;
fail:
	(void)recovery_drv_delete(a, stage, NULL);
	return rc;
}

int recovery_stage_apply(struct rp_array *a, const struct model_device *d, const char *stage,
                         struct rp_error *err)
{
	int rc;

	rc = a->drv->ops->obj_rename(a->drv, stage, d->obj, err);
	if (rc < 0)
		(void)recovery_drv_delete(a, stage, NULL);
	return rc;
}

int recovery_rollback(struct rp_array *a, const struct model_device *d, const char *src_obj,
                      const char *tag, struct rp_error *err)
{
	struct model_intent in = MODEL_INTENT_INIT;
	char stage[ARRAY_OBJ_MAX], payload[ARRAY_OBJ_MAX + 8];
	int rc;

	/*
	 * An "obj_delete" intent names the staging object until its rename: a crash in between
	 * leaves it to the next open's model_recover (after the rename the name is free again).
	 */
	rc = stage_name(stage, d, tag, err);
	if (rc < 0)
		return rc;
	(void)snprintf(payload, sizeof(payload), "obj=%s\n", stage);
	rc = model_intent_add(&in, a, "obj_delete", payload, err);
	if (rc < 0)
		return rc;
	rc = recovery_stage(stage, a, d, src_obj, tag, err);
	if (rc == 0) {
		recovery_crash_point("rollback-staged");
		rc = recovery_stage_apply(a, d, stage, err);
	}
	(void)model_intent_delete(&in, a, NULL);
	model_intent_release(&in, a);
	return rc;
}

static int differs_cb(const struct array_extent *ext, void *payload)
{
	(void)ext;
	*(bool *)payload = true;
	return 1; /* one is enough */
}

int recovery_differs(bool *out, struct rp_array *a, const char *base, const char *obj,
                     struct rp_error *err)
{
	bool any = false;
	int rc;

	if (!a->drv->ops->changed_extents)
		return rp_error_set(err, RP_ENOTSUPPORTED, "array '%s' cannot diff objects", a->id);
	rc = a->drv->ops->changed_extents(a->drv, base, obj, differs_cb, &any, err);
	if (rc < 0)
		return rc;
	*out = any;
	return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Locks                                                                                       */

int recovery_lock_pair(struct rp_array *a, const char *id_a, int *fa, struct rp_array *b,
                       const char *id_b, int *fb, struct rp_error *err)
{
	int rc;

	*fa = -1;
	*fb = -1;
	if (!b) {
		return lock_group(a, id_a, fa, err);
	}
	if (strcmp(a->id, b->id) <= 0) {
		rc = lock_group(a, id_a, fa, err);
		if (rc < 0)
			return rc;
		rc = lock_group(b, id_b, fb, err);
	} else {
		rc = lock_group(b, id_b, fb, err);
		if (rc < 0)
			return rc;
		rc = lock_group(a, id_a, fa, err);
	}
	if (rc < 0) {
		unlock(*fa);
		unlock(*fb);
		*fa = -1;
		*fb = -1;
	}
	return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* rp_recovery_points                                                                          */

int rp_recovery_points(struct rp_recovery_point **out, size_t *n, struct rp_array *a,
                       const char *group, const char *device, struct rp_error *err)
{
	struct rp_recovery_point *res = NULL, *tmp;
	sqlite3_stmt *st = NULL;
	size_t cnt = 0, cap = 0;
	int rc;

	if (!out || !n || !a)
		return rp_error_set(err, RP_EINVAL, "invalid argument");
	if ((!group || !group[0]) && (!device || !device[0]))
		return rp_error_set(err, RP_EINVAL, "a group or a device is needed");
	if (group && group[0]) {
		struct model_group g;

		rc = model_group_load(&g, a, group, err);
		if (rc < 0)
			return rc;
		rc = meta_prepare(&st, a->db, err,
		                  "SELECT recovery_point, max(recovery_point_ms) FROM snapshots"
		                  " WHERE grp = ? AND kind = 'rp' AND recovery_point IS NOT NULL"
		                  " GROUP BY recovery_point ORDER BY 2 DESC, 1 DESC",
		                  "t", group);
	} else {
		struct model_device d;

		rc = model_device_find(&d, a, device, err);
		if (rc < 0)
			return rc;
		rc = meta_prepare(&st, a->db, err,
		                  "SELECT recovery_point, max(recovery_point_ms) FROM snapshots"
		                  " WHERE device = ? AND kind = 'rp' AND recovery_point IS NOT NULL"
		                  " GROUP BY recovery_point ORDER BY 2 DESC, 1 DESC",
		                  "t", d.id);
	}
	if (rc < 0)
		return rc;
	for (;;) {
		rc = meta_step(st, a->db, err);
		if (rc < 0)
			goto fail;
		if (rc == 0)
			break;
		if (cnt == cap) {
			cap = cap ? cap * 2 : 8;
			tmp = rp_realloc(res, cap * sizeof(*res));
			if (!tmp) {
				rc = rp_error_set(err, RP_ERROR, "out of memory");
				goto fail;
			}
			res = tmp;
		}
		memset(&res[cnt], 0, sizeof(res[cnt]));
		meta_col_text(res[cnt].id, sizeof(res[cnt].id), st, 0);
		res[cnt].time_ms = sqlite3_column_int64(st, 1);
		if (group)
			rp_strlcpy(res[cnt].group, group, sizeof(res[cnt].group));
		if (device)
			rp_strlcpy(res[cnt].device, device, sizeof(res[cnt].device));
		cnt++;
	}
	sqlite3_finalize(st);
	*out = res;
	*n = cnt;
	return 0;
fail:
	sqlite3_finalize(st);
	rp_free(res);
	return rc;
}

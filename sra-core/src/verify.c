/* SPDX-License-Identifier: MIT */
/*
 * verify.c - rp_verify (XXH128 of every replicated pair at the last common recovery point:
 * the source's base snapshot against the target's recovery-point snapshot) and
 * rp_lun_checksum.
 */
#include <stdio.h>
#include <string.h>

#include "model.h"
#include "recovery.h"

static bool is_source_state(int s)
{
	return s == RP_DEV_SOURCE || s == RP_DEV_DEMOTED_SOURCE;
}

/*
 * Object holding the data of recovery point @rp on device @dev of @a: its "rp" snapshot,
 * else its "base" snapshot with that recovery point.
 */
static int rp_object(char obj[ARRAY_OBJ_MAX], struct rp_array *a, const char *dev, const char *rp,
                     struct rp_error *err)
{
	struct model_snapshot s;

	if (recovery_snapshot_find(&s, a, dev, RECOVERY_KIND_RP, rp, NULL) == 0 ||
	    recovery_snapshot_find(&s, a, dev, RECOVERY_KIND_BASE, rp, NULL) == 0) {
		rp_strlcpy(obj, s.obj, ARRAY_OBJ_MAX);
		return 0;
	}
	return rp_error_set(err, RP_ENOTFOUND,
	                    "'%s' on array '%s' holds no copy of recovery"
	                    " point '%s'",
	                    dev, a->id, rp);
}

static void verify_pair(struct rp_verify_item *it, struct rp_array *a, const struct model_device *d,
                        struct rp_array *b)
{
	struct model_device e, *s, *t;
	struct model_snapshot base;
	struct rp_array *sa, *ta;
	char sobj[ARRAY_OBJ_MAX], tobj[ARRAY_OBJ_MAX];
	struct rp_error err;

	rp_error_clear(&err);
	rp_strlcpy(it->device_a, d->id, sizeof(it->device_a));
	rp_strlcpy(it->device_b, d->peer_device, sizeof(it->device_b));
	if (model_device_load(&e, b, d->peer_device, &err) < 0)
		goto fail;
	/* the source side's base names the recovery point; promoted pairs compare bases */
	if (is_source_state(e.state) && !is_source_state(d->state)) {
		s = &e;
		sa = b;
		t = (struct model_device *)d;
		ta = a;
	} else {
		s = (struct model_device *)d;
		sa = a;
		t = &e;
		ta = b;
	}
	if (!s->base_snapshot[0]) {
		(void)rp_error_set(&err, RP_ENOTFOUND, "'%s' was never synced", s->id);
		goto fail;
	}
	if (model_snapshot_load(&base, sa, s->base_snapshot, &err) < 0)
		goto fail;
	rp_strlcpy(it->recovery_point, base.recovery_point, sizeof(it->recovery_point));
	rp_strlcpy(sobj, base.obj, sizeof(sobj));
	if (rp_object(tobj, ta, t->id, base.recovery_point, &err) < 0)
		goto fail;
	if (recovery_drv_checksum(sa == a ? it->checksum_a : it->checksum_b, sa, sobj, &err) < 0 ||
	    recovery_drv_checksum(ta == a ? it->checksum_a : it->checksum_b, ta, tobj, &err) < 0)
		goto fail;
	it->equal = strcmp(it->checksum_a, it->checksum_b) == 0;
	if (!it->equal)
		(void)snprintf(it->msg, sizeof(it->msg), "data differs at recovery point '%s'",
		               it->recovery_point);
	return;
fail:
	it->equal = false;
	rp_strlcpy(it->msg, err.msg[0] ? err.msg : "cannot compare", sizeof(it->msg));
}

int rp_verify(struct rp_verify_item **out, size_t *n, bool *all_equal, struct rp_array *a,
              struct rp_array *b, const char *group, struct rp_error *err)
{
	struct model_device *devs = NULL;
	struct rp_verify_item *items = NULL;
	size_t nd = 0, cnt = 0, i;
	bool eq = true;
	int rc;

	if (!out || !n || !all_equal || !a || !b)
		return rp_error_set(err, RP_EINVAL, "invalid argument");
	if (group && group[0]) {
		struct model_group g;

		rc = model_group_load(&g, a, group, err);
		if (rc < 0)
			return rc;
	}
	rc = model_device_list(&devs, &nd, a, group && group[0] ? group : NULL, err);
	if (rc < 0)
		return rc;
	items = rp_calloc(nd ? nd : 1, sizeof(*items));
	if (!items) {
		rp_free(devs);
		return rp_error_set(err, RP_ERROR, "out of memory");
	}
	for (i = 0; i < nd; i++) {
		if (strcmp(devs[i].peer_array, b->id) != 0 || devs[i].state == RP_DEV_LOCAL)
			continue;
		if (!devs[i].peer_device[0]) {
			/* a pending target (target_at_sync): replicated, but no copy on @b yet */
			if (!is_source_state(devs[i].state))
				continue;
			rp_strlcpy(items[cnt].device_a, devs[i].id, sizeof(items[cnt].device_a));
			(void)snprintf(items[cnt].msg, sizeof(items[cnt].msg),
			               "'%s' has no copy on array '%s' yet: its target is made by"
			               " the next sync",
			               devs[i].id, b->id);
			eq = false;
			cnt++;
			continue;
		}
		verify_pair(&items[cnt], a, &devs[i], b);
		if (!items[cnt].equal)
			eq = false;
		cnt++;
	}
	rp_free(devs);
	*out = items;
	*n = cnt;
	*all_equal = eq;
	return 0;
}

int rp_lun_checksum(char out[40], struct rp_array *a, const char *id, struct rp_error *err)
{
	struct model_device d;
	struct model_snapshot s;
	struct rp_error e2;
	int rc;

	if (!out || !a || !id)
		return rp_error_set(err, RP_EINVAL, "invalid argument");
	rp_error_clear(&e2);
	rc = model_device_find(&d, a, id, &e2);
	if (rc == 0)
		return recovery_drv_checksum(out, a, d.obj, err);
	if (rc != RP_ENOTFOUND && rc != RP_EINVAL)
		return rp_error_set(err, rc, "%s", e2.msg);
	rc = model_snapshot_load(&s, a, id, NULL);
	if (rc == 0)
		return recovery_drv_checksum(out, a, s.obj, err);
	return rp_error_set(err, RP_ENOTFOUND, "no device or snapshot '%s' on array '%s'", id,
	                    a->id);
}

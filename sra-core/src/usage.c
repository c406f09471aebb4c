/* SPDX-License-Identifier: MIT */
/*
 * usage.c - rp_array_usage: the allocated storage of an array's objects by what holds them
 * (LUNs, recovery points, bases, spares, other snapshots, work in progress) and the objects
 * nothing names any more (left behind by a crash or an older version).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

/* What holds an object, in the order an object named twice is counted under. */
enum usage_kind { USAGE_LUN, USAGE_RP, USAGE_BASE, USAGE_SPARE, USAGE_SNAP };

struct usage_name {
	char *obj;
	int kind;
};

struct usage_ctx {
	struct rp_array *a;
	struct rp_array_usage *out;
	struct usage_name *named; /* sorted by name, one entry per name */
	size_t n_named;
	char **work; /* prefixes of in-progress sessions' objects, then names in intents */
	size_t n_work, n_prefix;
	struct rp_object_usage *unref;
	size_t n_unref;
	struct rp_error *err;
};

_Static_assert(RP_OBJ_MAX >= ARRAY_OBJ_MAX, "RP_OBJ_MAX holds every object name");

static int usage_oom(struct usage_ctx *c)
{
	return rp_error_set(c->err, RP_ERROR, "out of memory");
}

static int usage_push(char ***v, size_t *n, const char *s)
{
	char **nv = rp_realloc(*v, (*n + 1) * sizeof(**v));

	if (!nv)
		return RP_ERROR;
	*v = nv;
	nv[*n] = rp_strdup(s);
	if (!nv[*n])
		return RP_ERROR;
	(*n)++;
	return 0;
}

static void usage_strv_free(char **v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		rp_free(v[i]);
	rp_free(v);
}

static int usage_name_cmp_obj(const void *x, const void *y)
{
	return strcmp(((const struct usage_name *)x)->obj, ((const struct usage_name *)y)->obj);
}

static int usage_name_cmp(const void *x, const void *y)
{
	const struct usage_name *a = x, *b = y;
	int c = strcmp(a->obj, b->obj);

	return c ? c : a->kind - b->kind;
}

/* Every object a row names, with what holds it (the first kind when several rows do). */
static int usage_load_named(struct usage_ctx *c)
{
	sqlite3_stmt *st = NULL;
	size_t cap = 0, i, k;
	int rc;

	rc = meta_prepare(&st, c->a->db, c->err,
	                  "SELECT obj, 0 FROM devices WHERE obj != '' UNION ALL"
	                  " SELECT obj, CASE kind WHEN 'rp' THEN 1 WHEN 'base' THEN 2"
	                  " WHEN 'spare' THEN 3 ELSE 4 END FROM snapshots WHERE obj != ''",
	                  "");
	if (rc < 0)
		return rc;
	while ((rc = meta_step(st, c->a->db, c->err)) == 1) {
		const unsigned char *obj = sqlite3_column_text(st, 0);

		if (c->n_named == cap) {
			struct usage_name *nv;

			cap = cap ? cap * 2 : 64;
			nv = rp_realloc(c->named, cap * sizeof(*nv));
			if (!nv) {
				rc = usage_oom(c);
				break;
			}
			c->named = nv;
		}
		c->named[c->n_named].kind = sqlite3_column_int(st, 1);
		c->named[c->n_named].obj = rp_strdup(obj ? (const char *)obj : "");
		if (!c->named[c->n_named].obj) {
			rc = usage_oom(c);
			break;
		}
		c->n_named++;
	}
	sqlite3_finalize(st);
	if (rc < 0)
		return rc;
	if (c->n_named > 1)
		qsort(c->named, c->n_named, sizeof(*c->named), usage_name_cmp);
	for (i = 0, k = 0; i < c->n_named; i++) {
		if (k > 0 && strcmp(c->named[k - 1].obj, c->named[i].obj) == 0) {
			rp_free(c->named[i].obj); /* sorted: the earlier entry has the first kind */
			continue;
		}
		c->named[k++] = c->named[i];
	}
	c->n_named = k;
	return 0;
}

/*
 * What operations in progress are making: the objects of this array's sync sessions in
 * progress ("<kind>-<session>-<device>", by prefix) and every value of a pending intent's
 * payload (the objects a half-done operation will name or delete).
 */
static int usage_load_work(struct usage_ctx *c)
{
	static const char *const kinds[] = { "stage", "rpcopy", "undo" };
	sqlite3_stmt *st = NULL;
	char prefix[RP_ID_MAX + 16];
	size_t k;
	int rc;

	rc = meta_prepare(&st, c->a->db, c->err, "SELECT id FROM sync_sessions WHERE status = 0",
	                  "");
	if (rc < 0)
		return rc;
	while ((rc = meta_step(st, c->a->db, c->err)) == 1) {
		const unsigned char *id = sqlite3_column_text(st, 0);

		for (k = 0; rc == 1 && k < sizeof(kinds) / sizeof(kinds[0]); k++) {
			(void)snprintf(prefix, sizeof(prefix), "%s-%s-", kinds[k],
			               id ? (const char *)id : "");
			if (usage_push(&c->work, &c->n_work, prefix) < 0)
				rc = usage_oom(c);
		}
		if (rc < 0)
			break;
	}
	sqlite3_finalize(st);
	if (rc < 0)
		return rc;
	c->n_prefix = c->n_work;
	rc = meta_prepare(&st, c->a->db, c->err, "SELECT payload FROM intents", "");
	if (rc < 0)
		return rc;
	while ((rc = meta_step(st, c->a->db, c->err)) == 1) {
		const char *p = (const char *)sqlite3_column_text(st, 0), *nl, *eq;

		for (; rc == 1 && p && *p; p = nl ? nl + 1 : NULL) {
			char val[ARRAY_OBJ_MAX];
			size_t l;

			nl = strchr(p, '\n');
			eq = memchr(p, '=', nl ? (size_t)(nl - p) : strlen(p));
			if (!eq)
				continue;
			l = (nl ? (size_t)(nl - eq) : strlen(eq)) - 1;
			if (l == 0 || l >= sizeof(val))
				continue;
			memcpy(val, eq + 1, l);
			val[l] = '\0';
			if (usage_push(&c->work, &c->n_work, val) < 0)
				rc = usage_oom(c);
		}
		if (rc < 0)
			break;
	}
	sqlite3_finalize(st);
	return rc < 0 ? rc : 0;
}

static bool usage_is_work(const struct usage_ctx *c, const char *obj)
{
	size_t i;

	for (i = 0; i < c->n_work; i++)
		if (i < c->n_prefix ? strncmp(obj, c->work[i], strlen(c->work[i])) == 0
		                    : strcmp(obj, c->work[i]) == 0)
			return true;
	return false;
}

/* Adds object @obj's allocated bytes under what holds it. An object gone meanwhile: skipped. */
static int usage_add(const char *obj, void *payload)
{
	struct usage_ctx *c = payload;
	struct rp_array_usage *u = c->out;
	struct usage_name key = { (char *)obj, 0 }, *hit;
	struct array_obj_stat st;
	struct rp_error e;
	int rc;

	rp_error_clear(&e);
	memset(&st, 0, sizeof(st));
	rc = c->a->drv->ops->obj_stat(&st, c->a->drv, obj, &e);
	if (rc == RP_ENOTFOUND)
		return 0;
	if (rc < 0)
		return rp_error_set(c->err, rc, "%s", e.msg);
	u->n_objects++;
	hit = c->n_named
	              ? bsearch(&key, c->named, c->n_named, sizeof(*c->named), usage_name_cmp_obj)
	              : NULL;
	if (hit) {
		uint64_t *slot[] = { &u->luns, &u->recovery_points, &u->bases, &u->spares,
			             &u->snapshots };

		*slot[hit->kind >= 0 && hit->kind <= USAGE_SNAP ? hit->kind : USAGE_SNAP] +=
		        st.allocated;
		return 0;
	}
	if (usage_is_work(c, obj)) {
		u->work += st.allocated;
		return 0;
	}
	u->unreferenced += st.allocated;
	u->n_unreferenced++;
	{
		struct rp_object_usage *nv = rp_realloc(c->unref, (c->n_unref + 1) * sizeof(*nv));

		if (!nv)
			return usage_oom(c);
		c->unref = nv;
		rp_strlcpy(nv[c->n_unref].obj, obj, sizeof(nv[c->n_unref].obj));
		nv[c->n_unref].allocated = st.allocated;
		c->n_unref++;
	}
	return 0;
}

int rp_array_usage(struct rp_array_usage *out, struct rp_object_usage **unreferenced,
                   struct rp_array *a, struct rp_error *err)
{
	struct usage_ctx c;
	size_t i;
	int rc;

	if (!out || !a)
		return rp_error_set(err, RP_EINVAL, "invalid argument: 'out' or 'a'");
	if (unreferenced)
		*unreferenced = NULL;
	memset(out, 0, sizeof(*out));
	memset(&c, 0, sizeof(c));
	c.a = a;
	c.out = out;
	c.err = err;
	if (!a->drv->ops->obj_stat)
		return rp_error_set(err, RP_ENOTSUPPORTED, "array driver '%s' cannot report space",
		                    a->driver);
	rc = usage_load_named(&c);
	if (rc == 0)
		rc = usage_load_work(&c);
	if (rc < 0)
		goto out;
	if (a->drv->ops->obj_list) {
		out->listed = true;
		rc = a->drv->ops->obj_list(a->drv, usage_add, &c, err);
	} else {
		for (i = 0; rc == 0 && i < c.n_named; i++)
			rc = usage_add(c.named[i].obj, &c);
	}
	if (rc == 0 && unreferenced) {
		*unreferenced = c.unref;
		c.unref = NULL;
	}
out:
	for (i = 0; i < c.n_named; i++)
		rp_free(c.named[i].obj);
	rp_free(c.named);
	usage_strv_free(c.work, c.n_work);
	rp_free(c.unref);
	if (rc < 0)
		memset(out, 0, sizeof(*out));
	return rc;
}

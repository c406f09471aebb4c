/* SPDX-License-Identifier: MIT */
/*
 * space.c - space reservations (SRM 2.2): capacity held for test copies or new LUNs against
 * the array's free space minus live reservations. Expired reservations never count and are
 * purged whenever reservations are read or written.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model.h"

#define SPACE_LIVE "(expires_ms IS NULL OR expires_ms = 0 OR expires_ms > ?)"

static int space_purge(struct rp_array *a, int64_t now, struct rp_error *err)
{
	return meta_run(NULL, a->db, err,
	                "DELETE FROM reservations WHERE expires_ms IS NOT NULL AND expires_ms != 0"
	                " AND expires_ms <= ?",
	                "i", now);
}

int rp_space_reserve(struct rp_reservation *out, struct rp_array *a, const char *owner,
                     uint64_t size, uint32_t lifetime_s, struct rp_error *err)
{
	static unsigned counter;
	struct rp_reservation r;
	struct array_stat st;
	int64_t now = rp_now_ms(), reserved = 0;
	int rc;

	if (!a)
		return rp_error_set(err, RP_EINVAL, "invalid argument: 'a'");
	if (size == 0 || size > (uint64_t)INT64_MAX)
		return rp_error_set(err, RP_EINVAL, "reservation size %" PRIu64 " is not valid",
		                    size);
	if (owner && *owner) {
		rc = model_name_check(owner, "reservation owner", err);
		if (rc < 0)
			return rc;
	}
	if (!a->drv->ops->stat)
		return rp_error_set(err, RP_ENOTSUPPORTED, "array driver '%s' cannot report space",
		                    a->driver);
	memset(&st, 0, sizeof(st));
	rc = a->drv->ops->stat(&st, a->drv, err);
	if (rc < 0)
		return rc;
	memset(&r, 0, sizeof(r));
	(void)snprintf(r.token, sizeof(r.token), "rsv-%" PRId64 "-%d-%u", now, (int)getpid(),
	               __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED));
	(void)rp_strlcpy(r.owner, owner ? owner : "", sizeof(r.owner));
	r.size = size;
	r.expires_ms = lifetime_s ? now + (int64_t)lifetime_s * 1000 : 0;
	rc = meta_txn_begin(a->db, err);
	if (rc < 0)
		return rc;
	rc = space_purge(a, now, err);
	if (rc == 0)
		rc = meta_query_int(
		        &reserved, a->db, err,
		        "SELECT COALESCE(SUM(size), 0) FROM reservations WHERE " SPACE_LIVE, "i",
		        now);
	if (rc < 0)
		goto fail;
	if ((uint64_t)reserved > st.free || size > st.free - (uint64_t)reserved) {
		rc = rp_error_set(err, RP_ENOSPACE,
		                  "cannot reserve %" PRIu64 " bytes on array '%s': %" PRIu64
		                  " free, %" PRId64 " already reserved",
		                  size, a->id, st.free, reserved);
		goto fail;
	}
	rc = meta_run(NULL, a->db, err,
	              "INSERT INTO reservations(token, owner, size, expires_ms) VALUES(?, ?, ?, ?)",
	              "ttui", r.token, r.owner, r.size, r.expires_ms);
	if (rc < 0)
		goto fail;
	rc = meta_txn_commit(a->db, err);
	if (rc < 0)
		return rc;
	if (out)
		*out = r;
	return 0;
fail:
	meta_txn_rollback(a->db);
	return rc;
}

int rp_space_release(struct rp_array *a, const char *token, struct rp_error *err)
{
	int rc;

	if (!a)
		return rp_error_set(err, RP_EINVAL, "invalid argument: 'a'");
	rc = rp_id_check(token, "reservation token", err);
	if (rc < 0)
		return rc;
	return meta_run(NULL, a->db, err, "DELETE FROM reservations WHERE token = ?", "t", token);
}

int rp_space_list(struct rp_reservation **out, size_t *n, struct rp_array *a, struct rp_error *err)
{
	struct rp_reservation *v = NULL, *nv;
	sqlite3_stmt *st = NULL;
	size_t cnt = 0, cap = 0;
	int64_t now = rp_now_ms();
	int rc;

	if (!a || !out || !n)
		return rp_error_set(err, RP_EINVAL, "invalid argument: 'a', 'out' or 'n'");
	/* Purging is housekeeping: a busy database must not fail a read. */
	(void)space_purge(a, now, NULL);
	rc = meta_prepare(
	        &st, a->db, err,
	        "SELECT token, owner, size, expires_ms FROM reservations WHERE " SPACE_LIVE
	        " ORDER BY token",
	        "i", now);
	if (rc < 0)
		return rc;
	while ((rc = meta_step(st, a->db, err)) == 1) {
		if (cnt == cap) {
			cap = cap ? cap * 2 : 8;
			nv = rp_realloc(v, cap * sizeof(*v));
			if (!nv) {
				rc = rp_error_set(err, RP_ERROR, "out of memory");
				goto fail;
			}
			v = nv;
		}
		memset(&v[cnt], 0, sizeof(v[cnt]));
		meta_col_text(v[cnt].token, sizeof(v[cnt].token), st, 0);
		meta_col_text(v[cnt].owner, sizeof(v[cnt].owner), st, 1);
		v[cnt].size = (uint64_t)sqlite3_column_int64(st, 2);
		v[cnt].expires_ms = sqlite3_column_int64(st, 3);
		cnt++;
	}
	if (rc < 0)
		goto fail;
	sqlite3_finalize(st);
	if (!v) {
		v = rp_calloc(1, sizeof(*v));
		if (!v)
			return rp_error_set(err, RP_ERROR, "out of memory");
	}
	*out = v;
	*n = cnt;
	return 0;
fail:
	sqlite3_finalize(st);
	rp_free(v);
	return rc;
}

/* SPDX-License-Identifier: MIT */
/*
 * sync.c - sync sessions: start (one session per group or standalone device), the detached
 * worker (fork, setsid, fork, exec of a fresh image that opens its own databases), the data
 * mover (source snapshot -> changed extents -> full: staging object + atomic rename;
 * incremental: packed staging object + undo object + in-place apply under the target's lock),
 * completion on both arrays, and resume of sessions whose worker died.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "fence.h"
#include "lock.h"
#include "model.h"
#include "recovery.h"
#include "sync.h"

extern char **environ;

#define SYNC_BUF (4u << 20)
#define SYNC_THROTTLED_BUF (1u << 20)
#define SYNC_UPDATE_BYTES (64ull << 20)
#define SYNC_UPDATE_MS 250

/* Monotonic clock in microseconds, for the mover's phase times (verbose log). */
static int64_t sync_now_us(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ------------------------------------------------------------------------------------------ */
/* Rows                                                                                        */

#define SYNC_COLS                                                                                  \
	"id, grp, device, source_array, target_array, status, progress, bytes_total,"              \
	" bytes_done, started_ms, finished_ms, recovery_point, recovery_point_ms, full, error,"    \
	" worker_pid, worker_start, heartbeat_ms, plan, warning_code, warning"

static int sync_row_read(struct sync_row *r, sqlite3_stmt *st)
{
	const unsigned char *plan;

	memset(r, 0, sizeof(*r));
	meta_col_text(r->id, sizeof(r->id), st, 0);
	meta_col_text(r->group, sizeof(r->group), st, 1);
	meta_col_text(r->device, sizeof(r->device), st, 2);
	meta_col_text(r->source_array, sizeof(r->source_array), st, 3);
	meta_col_text(r->target_array, sizeof(r->target_array), st, 4);
	r->status = sqlite3_column_int(st, 5);
	r->progress = sqlite3_column_int(st, 6);
	r->bytes_total = (uint64_t)sqlite3_column_int64(st, 7);
	r->bytes_done = (uint64_t)sqlite3_column_int64(st, 8);
	r->started_ms = sqlite3_column_int64(st, 9);
	r->finished_ms = sqlite3_column_int64(st, 10);
	meta_col_text(r->recovery_point, sizeof(r->recovery_point), st, 11);
	r->recovery_point_ms = sqlite3_column_int64(st, 12);
	r->full = sqlite3_column_int(st, 13) != 0;
	meta_col_text(r->error, sizeof(r->error), st, 14);
	r->worker_pid = sqlite3_column_int64(st, 15);
	meta_col_text(r->worker_start, sizeof(r->worker_start), st, 16);
	r->heartbeat_ms = sqlite3_column_int64(st, 17);
	r->warning_code = sqlite3_column_int(st, 19);
	meta_col_text(r->warning, sizeof(r->warning), st, 20);
	plan = sqlite3_column_text(st, 18);
	if (plan) {
		r->plan = rp_strdup((const char *)plan);
		if (!r->plan)
			return RP_ERROR;
	}
	return 0;
}

void sync_row_dispose(struct sync_row *r)
{
	if (r)
		rp_freep(&r->plan);
}

int sync_row_load(struct sync_row *out, struct rp_array *a, const char *id, struct rp_error *err)
{
	sqlite3_stmt *st = NULL;
	int rc;

	rc = meta_prepare(&st, a->db, err, "SELECT " SYNC_COLS " FROM sync_sessions WHERE id = ?",
	                  "t", id);
	if (rc < 0)
		return rc;
	rc = meta_step(st, a->db, err);
	if (rc == 0)
		rc = rp_error_set(err, RP_ENOTFOUND, "sync session '%s' not found on array '%s'",
		                  id, a->id);
	else if (rc == 1) {
		rc = sync_row_read(out, st);
		if (rc < 0)
			rc = rp_error_set(err, RP_ERROR, "out of memory");
	}
	sqlite3_finalize(st);
	return rc;
}

/* Finished sessions kept per group / standalone device (older ones are pruned at insert). */
#define SYNC_KEEP_FINISHED 20

static int sync_row_insert(struct rp_array *a, const struct sync_row *r, struct rp_error *err)
{
	if (r->group[0])
		(void)meta_run(
		        NULL, a->db, NULL,
		        "DELETE FROM sync_sessions WHERE grp = ?1 AND status != 0 AND id NOT IN"
		        " (SELECT id FROM sync_sessions WHERE grp = ?1 ORDER BY started_ms DESC,"
		        " id DESC LIMIT ?2)",
		        "ti", r->group, (int64_t)SYNC_KEEP_FINISHED);
	else if (r->device[0])
		(void)meta_run(NULL, a->db, NULL,
		               "DELETE FROM sync_sessions WHERE device = ?1 AND grp IS NULL AND"
		               " status != 0 AND id NOT IN (SELECT id FROM sync_sessions WHERE"
		               " device = ?1 ORDER BY started_ms DESC, id DESC LIMIT ?2)",
		               "ti", r->device, (int64_t)SYNC_KEEP_FINISHED);
	return meta_run(NULL, a->db, err,
	                "INSERT INTO sync_sessions(id, grp, device, source_array, target_array,"
	                " status, progress, bytes_total, bytes_done, started_ms, finished_ms,"
	                " full, heartbeat_ms, error) VALUES(?,?,?,?,?,0,0,0,0,?,0,0,?,NULL)",
	                "tttttii", r->id, r->group[0] ? r->group : NULL,
	                r->device[0] ? r->device : NULL, r->source_array, r->target_array,
	                r->started_ms, r->heartbeat_ms);
}

/* Latest session of @group / @device (local ids) on @a. RP_ENOTFOUND (no message). */
static int sync_row_latest(struct sync_row *out, struct rp_array *a, const char *group,
                           const char *device, bool running_only, struct rp_error *err)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (group && group[0])
		rc = meta_prepare(&st, a->db, err,
		                  "SELECT " SYNC_COLS " FROM sync_sessions WHERE grp = ?"
		                  " AND (?2 = 0 OR status = 0) ORDER BY started_ms DESC, id DESC"
		                  " LIMIT 1",
		                  "tb", group, (int)running_only);
	else
		rc = meta_prepare(&st, a->db, err,
		                  "SELECT " SYNC_COLS " FROM sync_sessions WHERE device = ?"
		                  " AND (?2 = 0 OR status = 0) ORDER BY started_ms DESC, id DESC"
		                  " LIMIT 1",
		                  "tb", device, (int)running_only);
	if (rc < 0)
		return rc;
	rc = meta_step(st, a->db, err);
	if (rc == 0)
		rc = RP_ENOTFOUND;
	else if (rc == 1) {
		rc = sync_row_read(out, st);
		if (rc < 0)
			rc = rp_error_set(err, RP_ERROR, "out of memory");
	}
	sqlite3_finalize(st);
	return rc;
}

int sync_worker_pid(int64_t *out, struct rp_array *a, const char *id, struct rp_error *err)
{
	struct sync_row r;
	int rc;

	rc = sync_row_load(&r, a, id, err);
	if (rc < 0)
		return rc;
	*out = r.worker_pid;
	sync_row_dispose(&r);
	return 0;
}

/* Marks session @id failed on @a if still in progress. */
static void sync_mark_failed(struct rp_array *a, const char *id, const char *why)
{
	(void)meta_run(NULL, a->db, NULL,
	               "UPDATE sync_sessions SET status = 2, error = ?, finished_ms = ?,"
	               " heartbeat_ms = ?2 WHERE id = ? AND status = 0",
	               "tit", why, rp_now_ms(), id);
}

/* ------------------------------------------------------------------------------------------ */
/* Worker liveness                                                                             */

/* Start time (field 22 of /proc/<pid>/stat) of @pid, "" if gone; *zombie if state Z/X. */
static void proc_start_time(char out[32], pid_t pid, bool *zombie)
{
	char path[64], buf[1024], *p;
	ssize_t n;
	int fd, field;

	out[0] = '\0';
	*zombie = false;
	(void)snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	n = read(fd, buf, sizeof(buf) - 1);
	(void)close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	/* comm may hold spaces and parentheses: fields start after the last ')' */
	p = strrchr(buf, ')');
	if (!p)
		return;
	p++;
	/* field 3 (state) is the first word after ") " */
	field = 3;
	while (*p == ' ')
		p++;
	while (*p) {
		char *w = p;
		size_t len;

		while (*p && *p != ' ')
			p++;
		len = (size_t)(p - w);
		if (field == 3 && len > 0 && (w[0] == 'Z' || w[0] == 'X'))
			*zombie = true;
		if (field == 22) {
			if (len >= 32)
				len = 31;
			memcpy(out, w, len);
			out[len] = '\0';
			return;
		}
		while (*p == ' ')
			p++;
		field++;
	}
}

static bool sync_worker_alive(const struct sync_row *r)
{
	char start[32];
	bool zombie;

	if (r->worker_pid <= 0)
		return rp_now_ms() - r->heartbeat_ms < SYNC_START_GRACE_MS;
	proc_start_time(start, (pid_t)r->worker_pid, &zombie);
	if (!start[0] || zombie)
		return false;
	if (r->worker_start[0] && strcmp(start, r->worker_start) != 0)
		return false; /* pid reused by another process */
	return true;
}

static void sync_record_worker(struct rp_array *a, const char *id, pid_t pid)
{
	char start[32];
	bool zombie;

	proc_start_time(start, pid, &zombie);
	(void)meta_run(NULL, a->db, NULL,
	               "UPDATE sync_sessions SET worker_pid = ?, worker_start = ?, heartbeat_ms = ?"
	               " WHERE id = ? AND status = 0",
	               "itit", (int64_t)pid, start, rp_now_ms(), id);
}

/* ------------------------------------------------------------------------------------------ */
/* Plan: what a session moves. Recorded before any data moves so a restart redoes the same.   */

struct sync_dev {
	char src[RP_ID_MAX];      /* source device id */
	char tgt[RP_ID_MAX];      /* target device id */
	char snap[RP_ID_MAX];     /* new source snapshot id ("base-<src>-<rp ms>") */
	char src_base[RP_ID_MAX]; /* source base snapshot id, "" = full sync */
	char tgt_base[RP_ID_MAX]; /* target base snapshot id, "" = full sync */
	uint64_t size;
	/* filled while running */
	char snap_obj[ARRAY_OBJ_MAX];
	char src_base_obj[ARRAY_OBJ_MAX];
	char tgt_base_obj[ARRAY_OBJ_MAX];
	char stage[ARRAY_OBJ_MAX];
	struct array_extent *ext;
	size_t n_ext, cap_ext;
	/*
	 * In-place apply (incremental sync, see sync_pick_inplace): the stage holds
	 * only the changed data, packed; the finish saves the old contents of exactly the changed
	 * ranges of the live target object into an undo object, then writes them in place.
	 */
	bool inplace;
	bool undo_done; /* plan line "undo <tgt>": the undo object is complete, apply may run */
	char lun_obj[ARRAY_OBJ_MAX];
	char undo[ARRAY_OBJ_MAX];
	uint64_t stage_len;
	/*
	 * Full copy on an array without reflink (sync_use_rpcopy): the mover writes every range
	 * twice, into the stage (the new live object) and into this object, which the finish
	 * renames into the recovery point instead of copying the live object once more.
	 * "" = not used (the recovery point is a ->clone of the live object).
	 */
	char rpcopy[ARRAY_OBJ_MAX];
	bool spare_used; /* rpcopy is the device's spare brought up to date (sync_recycle_rp) */
	/*
	 * Reflink source array: the source LUN's live object, which the snapshot was cloned from;
	 * the mover may take the snapshot's data from its cached pages (sync_from_origin).
	 * "" = not known.
	 */
	char origin_obj[ARRAY_OBJ_MAX];
};

struct sync_plan {
	char rp[RP_ID_MAX];
	int64_t rp_ms;
	size_t n;
	struct sync_dev *dev;
};

static void sync_plan_dispose(struct sync_plan *p)
{
	size_t i;

	for (i = 0; i < p->n; i++)
		rp_free(p->dev[i].ext);
	rp_freep(&p->dev);
	p->n = 0;
}

static int sync_plan_add(struct sync_plan *p, struct sync_dev **out)
{
	struct sync_dev *tmp;

	tmp = rp_realloc(p->dev, (p->n + 1) * sizeof(*tmp));
	if (!tmp)
		return RP_ERROR;
	p->dev = tmp;
	memset(&p->dev[p->n], 0, sizeof(p->dev[p->n]));
	*out = &p->dev[p->n++];
	return 0;
}

static int sync_plan_format(char **out, const struct sync_plan *p)
{
	size_t cap = 128 + p->n * (6 * RP_ID_MAX + 32), len = 0, i;
	char *s;
	int n;

	s = rp_malloc(cap);
	if (!s)
		return RP_ERROR;
	n = snprintf(s, cap, "rp %s %lld\n", p->rp, (long long)p->rp_ms);
	len = (size_t)n;
	for (i = 0; i < p->n; i++) {
		const struct sync_dev *d = &p->dev[i];

		n = snprintf(s + len, cap - len, "dev %s %s %s %s %s %" PRIu64 "\n", d->src, d->tgt,
		             d->snap, d->src_base[0] ? d->src_base : "-",
		             d->tgt_base[0] ? d->tgt_base : "-", d->size);
		if (n < 0 || (size_t)n >= cap - len) {
			rp_free(s);
			return RP_ERROR;
		}
		len += (size_t)n;
	}
	*out = s;
	return 0;
}

static int plan_word(char *dst, size_t len, char **cur)
{
	char *p = *cur, *start;
	size_t n;

	while (*p == ' ')
		p++;
	start = p;
	while (*p && *p != ' ' && *p != '\n')
		p++;
	n = (size_t)(p - start);
	if (n == 0 || n >= len)
		return -1;
	memcpy(dst, start, n);
	dst[n] = '\0';
	*cur = p;
	return 0;
}

static int sync_plan_parse(struct sync_plan *p, const char *text, struct rp_error *err)
{
	char *copy, *line, *next, word[RP_ID_MAX], num[32];
	char *end;
	int rc = 0;

	memset(p, 0, sizeof(*p));
	copy = rp_strdup(text);
	if (!copy)
		return rp_error_set(err, RP_ERROR, "out of memory");
	for (line = copy; line && *line; line = next) {
		char *cur = line;

		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		if (plan_word(word, sizeof(word), &cur) < 0)
			continue;
		if (strcmp(word, "rp") == 0) {
			if (plan_word(p->rp, sizeof(p->rp), &cur) < 0 ||
			    plan_word(num, sizeof(num), &cur) < 0)
				goto bad;
			errno = 0;
			p->rp_ms = strtoll(num, &end, 10);
			if (errno || *end)
				goto bad;
		} else if (strcmp(word, "dev") == 0) {
			struct sync_dev *d;

			if (sync_plan_add(p, &d) < 0) {
				rc = rp_error_set(err, RP_ERROR, "out of memory");
				goto out;
			}
			if (plan_word(d->src, sizeof(d->src), &cur) < 0 ||
			    plan_word(d->tgt, sizeof(d->tgt), &cur) < 0 ||
			    plan_word(d->snap, sizeof(d->snap), &cur) < 0 ||
			    plan_word(d->src_base, sizeof(d->src_base), &cur) < 0 ||
			    plan_word(d->tgt_base, sizeof(d->tgt_base), &cur) < 0 ||
			    plan_word(num, sizeof(num), &cur) < 0)
				goto bad;
			if (strcmp(d->src_base, "-") == 0)
				d->src_base[0] = '\0';
			if (strcmp(d->tgt_base, "-") == 0)
				d->tgt_base[0] = '\0';
			errno = 0;
			d->size = strtoull(num, &end, 10);
			if (errno || *end)
				goto bad;
		} else if (strcmp(word, "undo") == 0) {
			size_t k;

			if (plan_word(word, sizeof(word), &cur) < 0)
				goto bad;
			for (k = 0; k < p->n; k++)
				if (strcmp(p->dev[k].tgt, word) == 0)
					p->dev[k].undo_done = true;
		} else {
			goto bad;
		}
	}
	if (!p->rp[0])
		goto bad;
	goto out;
bad:
	rc = rp_error_set(err, RP_ECORRUPT, "sync plan is corrupt");
out:
	rp_free(copy);
	if (rc < 0)
		sync_plan_dispose(p);
	return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* The running session                                                                         */

struct sync_ctx {
	struct rp_array *src;
	struct rp_array *tgt;
	struct sync_row row; /* target's row */
	struct sync_plan plan;
	char lock_src[RP_ID_MAX]; /* group id or source device id */
	char lock_tgt[RP_ID_MAX]; /* group id or target device id */
	uint64_t total;
	uint64_t done;
	uint64_t last_update_bytes;
	int64_t last_update_ms;
	unsigned updates;  /* progress rows written (sync_progress) */
	int64_t update_us; /* time spent writing them */
	unsigned throttle_ms;
	bool aborted;
};

/* Writes progress to both rows; detects an abort (target row no longer in progress). */
static int sync_progress(struct sync_ctx *c, bool force, struct rp_error *err)
{
	int64_t now = rp_now_ms(), t0;
	int changes = 0, progress, rc, rc2;

	if (!force && c->done - c->last_update_bytes < SYNC_UPDATE_BYTES &&
	    now - c->last_update_ms < SYNC_UPDATE_MS)
		return 0;
	c->last_update_bytes = c->done;
	c->last_update_ms = now;
	t0 = sync_now_us();
	progress = c->total ? (int)(c->done * 100 / c->total) : 0;
	if (progress > 99)
		progress = 99;
	/*
	 * A progress row only informs (ETA, liveness): losing it at a power failure is harmless,
	 * so its commit does not sync the WAL (16 synced commits per GiB cost ~0.3 s of a 0.5 s
	 * copy on xfs, docs/benchmarks.md). The next model commit syncs it anyway.
	 */
	rc = meta_durable(c->tgt->db, false, err);
	if (rc == 0)
		rc = meta_run(
		        &changes, c->tgt->db, err,
		        "UPDATE sync_sessions SET bytes_total = ?, bytes_done = ?, progress = ?,"
		        " heartbeat_ms = ? WHERE id = ? AND status = 0",
		        "uubit", c->total, c->done, progress, now, c->row.id);
	rc2 = meta_durable(c->tgt->db, true, rc < 0 ? NULL : err);
	if (rc == 0)
		rc = rc2;
	if (rc < 0)
		return rc;
	if (changes == 0) {
		c->aborted = true;
		return rp_error_set(err, RP_EBUSY, "sync session '%s' was aborted", c->row.id);
	}
	if (meta_durable(c->src->db, false, NULL) == 0) {
		(void)meta_run(NULL, c->src->db, NULL,
		               "UPDATE sync_sessions SET bytes_total = ?, bytes_done = ?,"
		               " progress = ?, heartbeat_ms = ? WHERE id = ? AND status = 0",
		               "uubit", c->total, c->done, progress, now, c->row.id);
		rc = meta_durable(c->src->db, true, err);
		if (rc < 0)
			return rc;
	}
	c->updates++;
	c->update_us += sync_now_us() - t0;
	return 0;
}

/* Makes sure target group @gid exists on @tgt as a target of @src. */
static int sync_ensure_target_group(struct rp_array *src, struct rp_array *tgt,
                                    const struct model_group *sg, struct rp_error *err)
{
	struct model_group g;
	struct rp_group pub;
	struct rp_error e2;
	int rc;

	rp_error_clear(&e2);
	rc = model_group_load(&g, tgt, sg->id, &e2);
	if (rc == RP_ENOTFOUND) {
		rc = rp_group_create(&pub, tgt, sg->id, sg->name, err);
		if (rc < 0 && rc != RP_EEXISTS)
			return rc;
		rc = model_group_load(&g, tgt, sg->id, err);
		if (rc < 0)
			return rc;
	} else if (rc < 0) {
		return rp_error_set(err, rc, "%s", e2.msg);
	}
	if (g.role == RP_GROUP_TARGET && strcmp(g.peer_array, src->id) == 0)
		return 0;
	if (g.role == RP_GROUP_PROMOTED_TARGET || g.role == RP_GROUP_SOURCE ||
	    g.role == RP_GROUP_DEMOTED_SOURCE)
		return rp_error_set(err, RP_ESTATE,
		                    "group '%s' on array '%s' is %s, not a replication target",
		                    g.id, tgt->id, rp_group_role_name(g.role));
	g.role = RP_GROUP_TARGET;
	rp_strlcpy(g.peer_array, src->id, sizeof(g.peer_array));
	g.rpo = sg->rpo;
	g.retention = sg->retention;
	return model_group_store(tgt, &g, err);
}

/*
 * Finds or creates the target device of source device @d on @tgt. On creation (a pending
 * target, rp_lun_create_opts.target_at_sync, or a member that never had one) the target is
 * made crash-safe by lun_target_create, then the source is linked to it and becomes a
 * replication source; a crash in between is finished by the next sync (found by its link).
 */
static int sync_ensure_target_dev(struct model_device *out, struct rp_array *src,
                                  struct rp_array *tgt, struct model_device *d,
                                  struct rp_error *err)
{
	struct rp_error e2;
	int rc;

	if (d->peer_device[0] && strcmp(d->peer_array, tgt->id) == 0) {
		rp_error_clear(&e2);
		rc = model_device_load(out, tgt, d->peer_device, &e2);
		if (rc == 0)
			goto check;
		if (rc != RP_ENOTFOUND)
			return rp_error_set(err, rc, "%s", e2.msg);
	}
	rc = lun_target_create(out, tgt, src->id, d, err);
	if (rc < 0)
		return rc;
	(void)recovery_drv_set_readonly(tgt, out->obj, true, NULL);
	rc = model_device_set_state(src, d->id, d->state == RP_DEV_LOCAL ? RP_DEV_SOURCE : d->state,
	                            -1, tgt->id, out->id, err);
	if (rc < 0)
		return rc;
	if (d->state == RP_DEV_LOCAL)
		d->state = RP_DEV_SOURCE;
	rp_strlcpy(d->peer_array, tgt->id, sizeof(d->peer_array));
	rp_strlcpy(d->peer_device, out->id, sizeof(d->peer_device));
	rp_log(RP_LOG_INFO, "created target '%s' on array '%s' for '%s'", out->id, tgt->id, d->id);
check:
	if (out->state != RP_DEV_TARGET)
		return rp_error_set(err, RP_ESTATE, "device '%s' on array '%s' is %s, not a target",
		                    out->id, tgt->id, rp_dev_state_name(out->state));
	return 0;
}

/* Deletes leftover in-flight ("sync") snapshots of source device @dev. */
static void sync_drop_inflight(struct rp_array *src, const char *dev)
{
	struct model_snapshot *list = NULL;
	size_t n = 0, i;

	if (model_snapshot_list(&list, &n, src, dev, NULL, RECOVERY_KIND_SYNC, NULL) < 0)
		return;
	for (i = 0; i < n; i++)
		(void)recovery_snapshot_delete(src, list[i].id, NULL);
	rp_free(list);
}

/* Decides full vs incremental for one device: both bases exist and share a recovery point. */
static void sync_pick_bases(struct sync_dev *sd, struct rp_array *src, struct rp_array *tgt,
                            const struct model_device *d, const struct model_device *t)
{
	struct model_snapshot sb, tb;
	bool ok;

	sd->src_base[0] = sd->tgt_base[0] = '\0';
	if (!d->base_snapshot[0] || !t->base_snapshot[0])
		return;
	if (model_snapshot_load(&sb, src, d->base_snapshot, NULL) < 0 ||
	    model_snapshot_load(&tb, tgt, t->base_snapshot, NULL) < 0)
		return;
	if (!sb.recovery_point[0] || strcmp(sb.recovery_point, tb.recovery_point) != 0)
		return;
	if (recovery_drv_exists(&ok, src, sb.obj, NULL) < 0 || !ok)
		return;
	if (recovery_drv_exists(&ok, tgt, tb.obj, NULL) < 0 || !ok)
		return;
	rp_strlcpy(sd->src_base, sb.id, sizeof(sd->src_base));
	rp_strlcpy(sd->tgt_base, tb.id, sizeof(sd->tgt_base));
}

/*
 * model_objs_persist of @n object names laid out @stride bytes apart from @first (a field of
 * an array of structs, or an array of names).
 */
static int sync_objs_persist(struct rp_array *a, const char *first, size_t stride, size_t n,
                             struct rp_error *err)
{
	const char **objs;
	size_t i;
	int rc;

	if (n == 0)
		return 0;
	objs = rp_calloc(n, sizeof(*objs));
	if (!objs)
		return rp_error_set(err, RP_ERROR, "out of memory");
	for (i = 0; i < n; i++)
		objs[i] = first + i * stride;
	rc = model_objs_persist(a, objs, n, err);
	rp_free(objs);
	return rc;
}

static int gc_add(char ***gc, size_t *n_gc, const char *obj)
{
	char **tmp;

	tmp = rp_realloc(*gc, (*n_gc + 1) * sizeof(char *));
	if (!tmp)
		return RP_ERROR;
	*gc = tmp;
	(*gc)[*n_gc] = rp_strdup(obj);
	if (!(*gc)[*n_gc])
		return RP_ERROR;
	(*n_gc)++;
	return 0;
}

static void gc_run(struct rp_array *a, char **gc, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		recovery_obj_gc(a, gc[i]);
		rp_free(gc[i]);
	}
	rp_free(gc);
}

/*
 * Spares (arrays without reflink; docs/internals/sync.md "Spare objects"): the object a sync
 * would delete -- the recovery point it prunes on the target, the old base on the source -- is
 * kept as the device's spare (a snapshots row of kind SYNC_SPARE_KIND, id "spare-<device>",
 * never listed as a recovery point) and reused by the next sync instead of a full copy:
 * - target: each in-place sync records the ranges it changed (rp_deltas: the new recovery
 *   point's object, the previous one's, the ranges); the next one brings the spare up to date
 *   from the live object over the ranges changed since the spare's point (sync_recycle_rp);
 * - source: the next snapshot is a ->refresh of the spare from the LUN, which reads the LUN
 *   once and writes only the blocks whose checksums differ (sync_make_plan).
 */
#define SYNC_SPARE_KIND "spare"
#define SYNC_CHAIN_MAX 64 /* recovery points walked back to find the spare's */

static void sync_spare_id(char out[RP_ID_MAX], const char *dev)
{
	(void)snprintf(out, RP_ID_MAX, "spare-%s", dev);
}

static bool sync_spare_wanted(const struct rp_array *tgt)
{
	const struct array_ops *o = tgt->drv->ops;

	return !(tgt->drv->caps & ARRAY_CAP_REFLINK) && o->copy_ranges && o->obj_rename;
}

/*
 * On a source without reflink the dropped base is kept as the device's spare too: the next
 * sync's snapshot refreshes it (->refresh: only the blocks that changed are written) instead
 * of copying the LUN into a new object, and the old base is not deleted.
 */
static bool sync_src_spare_wanted(const struct rp_array *src)
{
	return !(src->drv->caps & ARRAY_CAP_REFLINK) && src->drv->ops->refresh;
}

/* Rows (snapshots or devices) naming object @obj; -1 on error. */
static int64_t sync_obj_refs(struct rp_array *a, const char *obj)
{
	int64_t n = 0;

	if (meta_query_int(&n, a->db, NULL,
	                   "SELECT (SELECT count(*) FROM snapshots WHERE obj = ?1) +"
	                   " (SELECT count(*) FROM devices WHERE obj = ?1)",
	                   "t", obj) < 0)
		return -1;
	return n;
}

/*
 * Makes the object of snapshot @rp (a recovery point or a base of a device, just deleted in the
 * caller's transaction) the device's spare, replacing the previous spare, whose object goes to
 * @gc. *@kept stays false when another row still names the object (it is not ours to change).
 */
static int sync_spare_keep(bool *kept, struct rp_array *tgt, const struct model_snapshot *rp,
                           char ***gc, size_t *n_gc, struct rp_error *err)
{
	struct model_snapshot sp;
	int64_t refs = sync_obj_refs(tgt, rp->obj);
	int rc;

	*kept = false;
	if (refs != 0)
		return 0;
	memset(&sp, 0, sizeof(sp));
	sync_spare_id(sp.id, rp->device);
	if (model_snapshot_load(&sp, tgt, sp.id, NULL) == 0) {
		rc = model_snapshot_delete(tgt, sp.id, err);
		if (rc < 0)
			return rc;
		if (gc_add(gc, n_gc, sp.obj) < 0)
			return rp_error_set(err, RP_ERROR, "out of memory");
	}
	sp = *rp;
	sync_spare_id(sp.id, rp->device);
	rp_strlcpy(sp.kind, SYNC_SPARE_KIND, sizeof(sp.kind));
	wwn_snapshot(sp.wwn, tgt->id, sp.id);
	rc = model_snapshot_insert(tgt, &sp, err);
	if (rc == 0)
		*kept = true;
	return rc;
}

/*
 * Notes why the session's group snapshot is not write-order consistent: logged at once (the
 * worker's log goes to syslog), and the first reason kept in @w for the session rows.
 */
__attribute__((format(printf, 3, 4))) static void
sync_warn(struct rp_warning *w, const struct sync_ctx *c, const char *fmt, ...)
{
	char msg[RP_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	rp_log(RP_LOG_WARNING, "sync session '%s': %s", c->row.id, msg);
	if (w->code)
		return; /* the first reason wins */
	w->code = RP_WARN_NO_FREEZE;
	rp_strlcpy(w->msg, msg, sizeof(w->msg));
}

/* Tests only: the worker _exits (9) here when SYNC_ENV_CRASH is @point, as a crash would. */
static void sync_die_at(const char *point)
{
	const char *v = getenv(SYNC_ENV_CRASH);

	if (v && strcmp(v, point) == 0)
		_exit(9);
}

/*
 * Before the pause: will device @d's snapshot be a ->refresh of its spare
 * (sync_src_spare_wanted: a source without reflink, a spare no other row names)? Then
 * @sd->snap_obj names the spare's object. The refresh itself (sync_snap_refresh) runs under
 * the source's lock and the writers' pause like the clone it replaces; an error of it fails the
 * plan (the spare keeps its row; its object no longer has a map, so the next refresh rewrites
 * it in full).
 */
static bool sync_spare_usable(struct sync_ctx *c, const struct model_device *d, struct sync_dev *sd)
{
	struct model_snapshot sp;
	char id[RP_ID_MAX];

	if (!sync_src_spare_wanted(c->src))
		return false;
	sync_spare_id(id, d->id);
	if (model_snapshot_load(&sp, c->src, id, NULL) < 0 ||
	    strcmp(sp.kind, SYNC_SPARE_KIND) != 0 || sync_obj_refs(c->src, sp.obj) != 1)
		return false;
	rp_strlcpy(sd->snap_obj, sp.obj, sizeof(sd->snap_obj));
	return true;
}

/* Under the pause: device @d's snapshot, its spare brought up to date (->refresh). */
static int sync_snap_refresh(struct sync_ctx *c, const struct model_device *d,
                             const struct sync_dev *sd, struct rp_error *err)
{
	uint64_t written = 0;
	int64_t t0 = rp_now_ms();
	int rc;

	rc = c->src->drv->ops->refresh(c->src->drv, d->obj, sd->snap_obj, &written, err);
	if (rc < 0)
		return rc;
	rp_log(RP_LOG_VERBOSE,
	       "sync session '%s': snapshot of '%s' refreshed from its spare: %llu KiB written,"
	       " %lld ms",
	       c->row.id, d->id, (unsigned long long)(written >> 10),
	       (long long)(rp_now_ms() - t0));
	return 0;
}

/*
 * The in-flight snapshot rows of plan @p (one per device of @members), in one transaction,
 * before their objects are made: the intent. A worker that dies before its plan is recorded
 * leaves rows, which the next plan's sync_drop_inflight deletes with their objects, never an
 * object nothing names.
 */
static int sync_snap_rows_insert(struct sync_ctx *c, const struct model_device *members,
                                 const struct sync_plan *p, struct rp_error *err)
{
	size_t i;
	int rc;

	rc = meta_txn_begin(c->src->db, err);
	if (rc < 0)
		return rc;
	for (i = 0; i < p->n; i++) {
		struct model_snapshot s;

		memset(&s, 0, sizeof(s));
		rp_strlcpy(s.id, p->dev[i].snap, sizeof(s.id));
		rp_strlcpy(s.device, members[i].id, sizeof(s.device));
		rp_strlcpy(s.group, members[i].group, sizeof(s.group));
		rp_strlcpy(s.kind, RECOVERY_KIND_SYNC, sizeof(s.kind));
		rp_strlcpy(s.obj, p->dev[i].snap_obj, sizeof(s.obj));
		wwn_snapshot(s.wwn, c->src->id, s.id);
		rp_strlcpy(s.recovery_point, p->rp, sizeof(s.recovery_point));
		s.recovery_point_ms = p->rp_ms;
		s.created_ms = rp_now_ms();
		rc = model_snapshot_insert(c->src, &s, err);
		if (rc < 0) {
			meta_txn_rollback(c->src->db);
			return rc;
		}
	}
	return meta_txn_commit(c->src->db, err);
}

static int sync_make_plan(struct sync_ctx *c, struct rp_error *err)
{
	struct model_device *members = NULL, one, t;
	struct model_group sg;
	struct fence_hold *fh = NULL;
	struct rp_error fe;
	struct rp_warning warn;
	struct sync_plan *p = &c->plan;
	size_t n = 0, i;
	char *text = NULL;
	bool full = false, *adopted = NULL;
	int lfd = -1, rc;

	memset(p, 0, sizeof(*p));
	memset(&warn, 0, sizeof(warn));
	rc = lock_group(c->src, c->lock_src, &lfd, err);
	if (rc < 0)
		return rc;
	if (c->row.group[0]) {
		rc = model_group_load(&sg, c->src, c->row.group, err);
		if (rc < 0)
			goto out;
		if (sg.role != RP_GROUP_SOURCE && sg.role != RP_GROUP_DEMOTED_SOURCE) {
			rc = rp_error_set(err, RP_ESTATE,
			                  "group '%s' on array '%s' is %s, not a source", sg.id,
			                  c->src->id, rp_group_role_name(sg.role));
			goto out;
		}
		rc = sync_ensure_target_group(c->src, c->tgt, &sg, err);
		if (rc < 0)
			goto out;
		rc = model_device_list(&members, &n, c->src, c->row.group, err);
		if (rc < 0)
			goto out;
	} else {
		struct sync_row srow;

		/* the source row holds the source device id */
		rc = sync_row_load(&srow, c->src, c->row.id, err);
		if (rc < 0)
			goto out;
		rc = model_device_load(&one, c->src, srow.device, err);
		sync_row_dispose(&srow);
		if (rc < 0)
			goto out;
		members = rp_malloc(sizeof(*members));
		if (!members) {
			rc = rp_error_set(err, RP_ERROR, "out of memory");
			goto out;
		}
		members[0] = one;
		n = 1;
	}

	adopted = rp_calloc(n ? n : 1, sizeof(*adopted));
	if (!adopted) {
		rc = rp_error_set(err, RP_ERROR, "out of memory");
		goto out;
	}
	p->rp_ms = rp_now_ms();
	recovery_point_id(p->rp, p->rp_ms);
	for (i = 0; i < n; i++) {
		struct model_device *d = &members[i];
		struct sync_dev *sd;

		if (d->state != RP_DEV_SOURCE && d->state != RP_DEV_DEMOTED_SOURCE &&
		    d->state != RP_DEV_LOCAL) {
			rc = rp_error_set(err, RP_ESTATE,
			                  "device '%s' on array '%s' is %s, not a source", d->id,
			                  c->src->id, rp_dev_state_name(d->state));
			goto out;
		}
		if (d->state == RP_DEV_LOCAL && !c->row.group[0]) {
			rc = rp_error_set(err, RP_ESTATE, "device '%s' is not replicated", d->id);
			goto out;
		}
		rc = sync_ensure_target_dev(&t, c->src, c->tgt, d, err);
		if (rc < 0)
			goto out;
		sync_drop_inflight(c->src, d->id);
		if (sync_plan_add(p, &sd) < 0) {
			rc = rp_error_set(err, RP_ERROR, "out of memory");
			goto out;
		}
		rp_strlcpy(sd->src, d->id, sizeof(sd->src));
		rp_strlcpy(sd->tgt, t.id, sizeof(sd->tgt));
		(void)snprintf(sd->snap, sizeof(sd->snap), "base-%s-%lld", d->id,
		               (long long)p->rp_ms);
		sd->size = d->size;
		sync_pick_bases(sd, c->src, c->tgt, d, &t);
		if (!sd->src_base[0])
			full = true;
	}

	for (i = 0; i < p->n; i++) {
		adopted[i] = sync_spare_usable(c, &members[i], &p->dev[i]);
		if (!adopted[i])
			model_snapshot_obj(p->dev[i].snap_obj, p->dev[i].snap);
	}
	rc = sync_snap_rows_insert(c, members, p, err);
	if (rc < 0)
		goto undo;

	/*
	 * The clones are one write-order consistent point: the writers of every device (the
	 * write fences their datapaths registered, fence.h) are paused around them and resumed
	 * right after, also on error. The array filesystem is not frozen: FICLONE blocks on a
	 * frozen filesystem (it needs a write). Writers that cannot be paused (no fence, a
	 * writer that appeared after rp_sync_start looked, a pause or resume that failed): the
	 * clones are taken anyway, and the reason is logged and recorded on the session with
	 * the plan (RP_WARN_NO_FREEZE), so whoever polls the session learns it.
	 */
	rp_error_clear(&fe);
	if (p->n > 1 && fence_pause(&fh, c->src, members, p->n, &fe) < 0)
		sync_warn(&warn, c,
		          "group '%s' was snapshotted without pausing its writers: the recovery"
		          " point is not write-order consistent: %s",
		          c->row.group, fe.msg);
	for (i = 0; i < p->n; i++) {
		if (adopted[i]) {
			rc = sync_snap_refresh(c, &members[i], &p->dev[i], err);
			if (rc < 0)
				break;
			continue;
		}
		(void)recovery_drv_delete(c->src, p->dev[i].snap_obj, NULL);
		rc = recovery_drv_clone(c->src, members[i].obj, p->dev[i].snap_obj, err);
		if (rc < 0)
			break;
	}
	rp_error_clear(&fe);
	if (fence_resume(fh, &fe) < 0)
		sync_warn(&warn, c, "group '%s': %s", c->row.group, fe.msg);
	/*
	 * Durable before the plan names them (a resumed session copies from them, also after a
	 * power loss): every file flushed, then their directory once, after the writers run again.
	 * On reflink arrays that is a log force; a copy on a plain directory is written back here.
	 */
	if (rc == 0)
		rc = sync_objs_persist(c->src, p->n ? p->dev[0].snap_obj : NULL,
		                       sizeof(struct sync_dev), p->n, err);
	if (rc < 0)
		goto undo;

	sync_die_at("snapshot"); /* the snapshots made, the plan not recorded */

	/*
	 * A spare that became a snapshot loses its spare row (its snapshot row names it already),
	 * then the plan is recorded (target row first: it is authoritative).
	 */
	rc = meta_txn_begin(c->src->db, err);
	if (rc < 0)
		goto undo;
	for (i = 0; i < p->n && rc == 0; i++) {
		char spare_id[RP_ID_MAX];

		if (!adopted[i])
			continue;
		sync_spare_id(spare_id, members[i].id);
		rc = model_snapshot_delete(c->src, spare_id, err);
	}
	if (rc < 0) {
		meta_txn_rollback(c->src->db);
		goto undo;
	}
	rc = meta_txn_commit(c->src->db, err);
	if (rc < 0)
		goto undo;
	if (sync_plan_format(&text, p) < 0) {
		rc = rp_error_set(err, RP_ERROR, "out of memory");
		goto undo;
	}
	{
		int changes = 0;

		rc = meta_run(
		        &changes, c->tgt->db, err,
		        "UPDATE sync_sessions SET plan = ?, recovery_point = ?,"
		        " recovery_point_ms = ?, full = ?, heartbeat_ms = ?, warning_code = ?,"
		        " warning = ? WHERE id = ? AND status = 0",
		        "ttibiitt", text, p->rp, p->rp_ms, (int)full, rp_now_ms(),
		        (int64_t)warn.code, warn.code ? warn.msg : NULL, c->row.id);
		if (rc == 0 && changes == 0) {
			c->aborted = true;
			rc = rp_error_set(err, RP_EBUSY, "sync session '%s' was aborted",
			                  c->row.id);
		}
		if (rc < 0)
			goto undo;
	}
	(void)meta_run(NULL, c->src->db, NULL,
	               "UPDATE sync_sessions SET plan = ?, recovery_point = ?,"
	               " recovery_point_ms = ?, full = ?, warning_code = ?, warning = ?"
	               " WHERE id = ?",
	               "ttibitt", text, p->rp, p->rp_ms, (int)full, (int64_t)warn.code,
	               warn.code ? warn.msg : NULL, c->row.id);
	c->row.full = full;
	c->row.warning_code = warn.code;
	rp_strlcpy(c->row.warning, warn.msg, sizeof(c->row.warning));
	goto out;
undo:
	for (i = 0; i < p->n; i++)
		(void)recovery_snapshot_delete(c->src, p->dev[i].snap, NULL);
	for (i = 0; i < p->n; i++)
		recovery_obj_gc(c->src, p->dev[i].snap_obj);
	sync_plan_dispose(p);
out:
	rp_free(adopted);
	rp_free(text);
	rp_free(members);
	unlock(lfd);
	return rc;
}

static int sync_ext_cb(const struct array_extent *ext, void *payload)
{
	struct sync_dev *d = payload;
	struct array_extent *tmp;

	if (d->n_ext > 0) {
		struct array_extent *last = &d->ext[d->n_ext - 1];

		/* merge adjacent ranges of the same kind: fewer, larger transfers */
		if (last->zero == ext->zero && last->offset + last->length == ext->offset) {
			last->length += ext->length;
			return 0;
		}
	}
	if (d->n_ext == d->cap_ext) {
		size_t cap = d->cap_ext ? d->cap_ext * 2 : 64;

		tmp = rp_realloc(d->ext, cap * sizeof(*tmp));
		if (!tmp)
			return -1;
		d->ext = tmp;
		d->cap_ext = cap;
	}
	d->ext[d->n_ext++] = *ext;
	return 0;
}

/*
 * In-place apply for @d? For an incremental sync when the live target object, its base and the
 * source all have the same size. Without reflink a staging clone of the base is a full copy;
 * with reflink its copy-on-write writes and the clone of the fragmented result cost more than
 * the undo object (docs/benchmarks.md). The live object of a target equals its base (the workflows
 * roll a target back to its base whenever it becomes one), so applying the changed extents to
 * it gives the new recovery point. A plan that recorded an undo object forces it (the live
 * object may hold part of the new data already).
 */
static int sync_pick_inplace(struct sync_ctx *c, struct sync_dev *d, struct rp_error *err)
{
	const struct array_ops *to = c->tgt->drv->ops;
	struct model_device td;
	struct array_obj_stat ls, bs;
	int rc;

	d->inplace = false;
	if (!d->tgt_base[0] && !d->undo_done)
		return 0;
	if (!to->obj_stat || !to->read || !to->write || !to->punch || !to->obj_set_readonly)
		return 0;
	rc = model_device_load(&td, c->tgt, d->tgt, err);
	if (rc < 0)
		return rc;
	rp_strlcpy(d->lun_obj, td.obj, sizeof(d->lun_obj));
	if (d->undo_done) {
		d->inplace = true;
		return 0;
	}
	if (to->obj_stat(&ls, c->tgt->drv, td.obj, NULL) < 0 ||
	    to->obj_stat(&bs, c->tgt->drv, d->tgt_base_obj, NULL) < 0)
		return 0;
	d->inplace = ls.size == d->size && bs.size == d->size;
	return 0;
}

/* Resolves objects of the plan and collects the changed extents of every device. */
static int sync_collect(struct sync_ctx *c, struct rp_error *err)
{
	size_t i, j;
	int rc;

	c->total = 0;
	for (i = 0; i < c->plan.n; i++) {
		struct sync_dev *d = &c->plan.dev[i];
		struct model_snapshot s;

		rc = model_snapshot_load(&s, c->src, d->snap, err);
		if (rc < 0)
			return rc;
		rp_strlcpy(d->snap_obj, s.obj, sizeof(d->snap_obj));
		if (d->src_base[0]) {
			struct model_snapshot b, tb;
			struct rp_error e2;

			rp_error_clear(&e2);
			if (model_snapshot_load(&b, c->src, d->src_base, &e2) == 0 &&
			    model_snapshot_load(&tb, c->tgt, d->tgt_base, &e2) == 0) {
				rp_strlcpy(d->src_base_obj, b.obj, sizeof(d->src_base_obj));
				rp_strlcpy(d->tgt_base_obj, tb.obj, sizeof(d->tgt_base_obj));
			} else {
				/* a base vanished (deleted by hand?): fall back to a full copy */
				d->src_base[0] = d->tgt_base[0] = '\0';
			}
		}
		d->origin_obj[0] = '\0';
		if (c->src->drv->caps & ARRAY_CAP_REFLINK) {
			struct model_device sd;

			/* best effort: without it the mover reads the snapshot */
			if (model_device_load(&sd, c->src, d->src, NULL) == 0)
				rp_strlcpy(d->origin_obj, sd.obj, sizeof(d->origin_obj));
		}
		(void)snprintf(d->stage, sizeof(d->stage), "stage-%s-%s", c->row.id, d->tgt);
		(void)snprintf(d->undo, sizeof(d->undo), "undo-%s-%s", c->row.id, d->tgt);
		rc = sync_pick_inplace(c, d, err);
		if (rc < 0)
			return rc;
		if (!c->src->drv->ops->changed_extents)
			return rp_error_set(err, RP_ENOTSUPPORTED, "array '%s' cannot list extents",
			                    c->src->id);
		d->n_ext = 0;
		rc = c->src->drv->ops->changed_extents(c->src->drv,
		                                       d->src_base[0] ? d->src_base_obj : NULL,
		                                       d->snap_obj, sync_ext_cb, d, err);
		if (rc < 0)
			return rc;
		if (rc > 0)
			return rp_error_set(err, RP_ERROR, "out of memory");
		for (j = 0; j < d->n_ext; j++)
			if (!d->ext[j].zero)
				c->total += d->ext[j].length;
	}
	return 0;
}

/*
 * Read-ahead pipeline: a reader thread fills SYNC_SLOTS buffers from the source snapshot while
 * the calling thread writes them to the target, so reading and writing overlap. Only the
 * calling thread touches the databases. The two drivers are separate handles.
 */
#define SYNC_SLOTS 4

enum { SLOT_FREE = 0, SLOT_FULL = 1, SLOT_END = 2 };

/* Small ranges share one buffer (fewer hand-offs between the threads). */
#define SYNC_PIECES 256

struct sync_slot {
	char *buf;
	size_t n;                  /* pieces in buf, back to back */
	uint64_t off[SYNC_PIECES]; /* where piece k goes */
	size_t len[SYNC_PIECES];
	int state;
};

struct sync_pipe {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct sync_slot slot[SYNC_SLOTS];
	size_t bufsz;
	bool stop;
	int rc;
	struct rp_error err;
	struct array *src;
	const struct sync_dev *d;
	/* ->read, or ->read_uncached for a snapshot whose pages are cold (sync_read_uncached) */
	int (*read)(struct array *a, const char *obj, uint64_t off, void *buf, size_t len,
	            struct rp_error *err);
	/* ->read_snapshot instead (@read unused), the live LUN as the origin (sync_from_origin) */
	bool from_origin;
	struct array_origin origin;
	int64_t read_us;  /* reader: time in ->read */
	int64_t stall_us; /* reader: time waiting for a free buffer */
};

/* Waits for slot @i to be free (or stop); returns false on stop. */
static bool pipe_wait_free(struct sync_pipe *p, size_t i)
{
	int64_t t0 = sync_now_us();
	bool ok;

	pthread_mutex_lock(&p->mu);
	while (p->slot[i].state != SLOT_FREE && !p->stop)
		pthread_cond_wait(&p->cv, &p->mu);
	ok = !p->stop;
	pthread_mutex_unlock(&p->mu);
	p->stall_us += sync_now_us() - t0;
	return ok;
}

static void pipe_publish(struct sync_pipe *p, size_t i, int state)
{
	pthread_mutex_lock(&p->mu);
	p->slot[i].state = state;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

static void *sync_reader(void *arg)
{
	struct sync_pipe *p = arg;
	const struct sync_dev *d = p->d;
	struct sync_slot *sl = NULL;
	size_t i = 0, used = 0, j;
	int64_t t0;
	int rc = 0;

	for (j = 0; rc == 0 && j < d->n_ext; j++) {
		const struct array_extent *e = &d->ext[j];
		uint64_t off = e->offset, end = e->offset + e->length;

		if (end > d->size)
			end = d->size;
		if (e->zero)
			continue;
		while (rc == 0 && off < end) {
			size_t n;

			if (sl && (used == p->bufsz || sl->n == SYNC_PIECES)) {
				pipe_publish(p, i, SLOT_FULL);
				i = (i + 1) % SYNC_SLOTS;
				sl = NULL;
			}
			if (!sl) {
				if (!pipe_wait_free(p, i))
					return NULL;
				sl = &p->slot[i];
				sl->n = 0;
				used = 0;
			}
			n = (size_t)(end - off < p->bufsz - used ? end - off : p->bufsz - used);
			t0 = sync_now_us();
			if (p->from_origin)
				rc = p->src->ops->read_snapshot(p->src, d->snap_obj, &p->origin,
				                                off, sl->buf + used, n, &p->err);
			else
				rc = p->read(p->src, d->snap_obj, off, sl->buf + used, n, &p->err);
			p->read_us += sync_now_us() - t0;
			if (rc < 0)
				break;
			sl->off[sl->n] = off;
			sl->len[sl->n] = n;
			sl->n++;
			used += n;
			off += n;
		}
	}
	if (sl && rc == 0 && sl->n > 0) {
		pipe_publish(p, i, SLOT_FULL);
		i = (i + 1) % SYNC_SLOTS;
	} else if (sl) {
		sl->n = 0; /* nothing (valid) in it: reuse it for the end mark */
		goto end;
	}
	if (!pipe_wait_free(p, i))
		return NULL;
end:
	p->rc = rc;
	pipe_publish(p, i, SLOT_END);
	return NULL;
}

/*
 * Background flusher of a full copy: every SYNC_FLUSH_BYTES written it calls ->flush on the
 * staging object, so write-back overlaps the copy and the final flush has little left to do.
 * Its first error fails the move (a later flush on a new descriptor might not see it again).
 */
#define SYNC_FLUSH_BYTES (64ull << 20)

struct sync_flusher {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint64_t pending;
	bool stop;
	int rc;
	struct rp_error err;
	struct array *drv;
	const char *obj;
	int64_t flush_us; /* time in ->flush */
};

static void *sync_flusher_main(void *arg)
{
	struct sync_flusher *f = arg;

	pthread_mutex_lock(&f->mu);
	for (;;) {
		struct rp_error e;
		int64_t t0;
		int rc;

		while (!f->stop && f->pending < SYNC_FLUSH_BYTES)
			pthread_cond_wait(&f->cv, &f->mu);
		if (f->stop)
			break;
		f->pending = 0;
		pthread_mutex_unlock(&f->mu);
		rp_error_clear(&e);
		t0 = sync_now_us();
		rc = f->drv->ops->flush(f->drv, f->obj, &e);
		t0 = sync_now_us() - t0;
		pthread_mutex_lock(&f->mu);
		f->flush_us += t0;
		if (rc < 0 && f->rc == 0) {
			f->rc = rc;
			f->err = e;
		}
	}
	pthread_mutex_unlock(&f->mu);
	return NULL;
}

static void sync_flusher_add(struct sync_flusher *f, uint64_t n)
{
	pthread_mutex_lock(&f->mu);
	f->pending += n;
	if (f->pending >= SYNC_FLUSH_BYTES)
		pthread_cond_signal(&f->cv);
	pthread_mutex_unlock(&f->mu);
}

/*
 * A full copy into an empty stage on an array without reflink: there ->clone of the new live
 * object into the recovery point would read and write the whole LUN once more, so the mover
 * writes the recovery point's copy itself from the same buffers (one read, two writes).
 */
static bool sync_use_rpcopy(const struct sync_ctx *c, const struct sync_dev *d)
{
	return !d->inplace && !d->tgt_base[0] && !(c->tgt->drv->caps & ARRAY_CAP_REFLINK) &&
	       c->tgt->drv->ops->obj_rename;
}

/*
 * The recovery point's copy is flushed before its row commits, like the stage: it is written
 * in pieces at or above the file array's write-back threshold (1 MiB) so its write-back starts
 * during the copy instead of all at the end.
 */
#define SYNC_RPCOPY_PIECE (4u << 20)

static int sync_rpcopy_write(struct sync_ctx *c, struct sync_dev *d, uint64_t off, const char *buf,
                             size_t len, struct rp_error *err)
{
	const struct array_ops *to = c->tgt->drv->ops;
	size_t pos = 0;
	int rc = 0;

	while (rc == 0 && pos < len) {
		size_t n = len - pos < SYNC_RPCOPY_PIECE ? len - pos : SYNC_RPCOPY_PIECE;

		rc = to->write(c->tgt->drv, d->rpcopy, off + pos, buf + pos, n, err);
		pos += n;
	}
	return rc;
}

/*
 * Read the source snapshot of @d around the page cache? On a reflink array the snapshot is a
 * fresh clone: a different inode from the live LUN, so none of its pages are cached (the LUN's
 * are) and reading it through the cache first allocates and fills a page cache copy of
 * everything sent, read once and never again. A direct read goes from the device into the
 * mover's buffers (docs/benchmarks.md, "Full sync of a 1 GiB LUN"). Only for full copies:
 * an incremental reads scattered small ranges, where the cache's read-ahead may help. Without
 * reflink the snapshot is a copy just written, so its pages are in the cache: read them there.
 * Used when the mover does not read through ->read_snapshot (sync_from_origin), whose own
 * fallback for ranges it cannot take from the LUN is a direct read, incrementals included.
 */
static bool sync_read_uncached(const struct sync_ctx *c, const struct sync_dev *d)
{
	return c->src->drv->ops->read_uncached && (c->src->drv->caps & ARRAY_CAP_REFLINK) &&
	       !d->src_base[0] && !d->inplace;
}

/*
 * Take the snapshot's data from the live LUN's cached pages where the driver proves them equal
 * to the snapshot's (->read_snapshot; file array on xfs), reading the snapshot directly
 * elsewhere? A fresh reflink snapshot is cold while the LUN is often warm (a full copy of a LUN
 * in use; an incremental's ranges were just written): reading the snapshot goes to the device,
 * copying the LUN's pages does not (docs/internals/sync.md "Reading the source snapshot"). Not
 * with REPLUN_SYNC_NO_ORIGIN.
 */
static bool sync_from_origin(const struct sync_ctx *c, const struct sync_dev *d)
{
	return (c->src->drv->caps & ARRAY_CAP_REFLINK) && c->src->drv->ops->read_snapshot &&
	       d->origin_obj[0] && !(getenv(SYNC_ENV_NO_ORIGIN) && *getenv(SYNC_ENV_NO_ORIGIN));
}

/*
 * Full copy between two arrays that can share blocks (->clone_from: file arrays with reflink on
 * one filesystem): the stage becomes a copy-on-write clone of the source snapshot, O(extents),
 * and no data is read or written. The stage holds exactly the snapshot's data, as if moved.
 * Sets *@shared; RP_ENOTSUPPORTED from the driver (different filesystems, ...) is not an error:
 * the caller moves the data. Not with REPLUN_SYNC_NO_SHARE or REPLUN_SYNC_THROTTLE_MS.
 */
static int sync_share_stage(struct sync_ctx *c, struct sync_dev *d, bool *shared,
                            struct rp_error *err)
{
	const struct array_ops *to = c->tgt->drv->ops;
	struct rp_error e;
	int rc;

	*shared = false;
	/* a throttled sync (tests) wants data moving slowly, which a shared stage never does */
	if (d->tgt_base[0] || d->inplace || d->rpcopy[0] || !to->clone_from ||
	    c->src->drv->ops != to || c->throttle_ms ||
	    (getenv(SYNC_ENV_NO_SHARE) && *getenv(SYNC_ENV_NO_SHARE)))
		return 0;
	rp_error_clear(&e);
	rc = to->clone_from(c->tgt->drv, d->stage, c->src->drv, d->snap_obj, &e);
	if (rc == RP_ENOTSUPPORTED) {
		rp_log(RP_LOG_VERBOSE, "sync session '%s': %s; moving the data", c->row.id, e.msg);
		return 0;
	}
	if (rc < 0)
		return rp_error_set_os(err, rc, e.os_errno, "%s", e.msg);
	*shared = true;
	return 0;
}

static int sync_move_dev(struct sync_ctx *c, struct sync_dev *d, char **bufs, size_t bufsz,
                         struct rp_error *err)
{
	const struct array_ops *so = c->src->drv->ops, *to = c->tgt->drv->ops;
	struct array_obj_stat st;
	struct sync_pipe p;
	struct sync_flusher fl;
	pthread_t reader, flusher;
	bool flushing = false, shared = false;
	char origin_note[96];
	uint64_t spos = 0;
	int64_t t0, t_start = sync_now_us(), t_pipe = 0, wait_us = 0, write_us = 0, final_us = 0;
	int64_t update_us0 = c->update_us;
	unsigned updates0 = c->updates;
	size_t i, j;
	int rc;

	if (!so->read || !to->write || !to->punch || !to->obj_create || !to->obj_stat)
		return rp_error_set(err, RP_ENOTSUPPORTED, "array cannot move data");
	(void)recovery_drv_delete(c->tgt, d->stage, NULL);
	d->rpcopy[0] = '\0';
	if (sync_use_rpcopy(c, d)) {
		(void)snprintf(d->rpcopy, sizeof(d->rpcopy), "rpcopy-%s-%s", c->row.id, d->tgt);
		(void)recovery_drv_delete(c->tgt, d->rpcopy, NULL);
		rc = to->obj_create(c->tgt->drv, d->rpcopy, d->size, err);
		if (rc < 0) {
			d->rpcopy[0] = '\0';
			return rc;
		}
	}
	if (d->inplace) {
		/* only the changed data, packed in extent order: the finish scatters it */
		d->stage_len = 0;
		for (j = 0; j < d->n_ext; j++) {
			const struct array_extent *e = &d->ext[j];

			if (!e->zero && e->offset < d->size)
				d->stage_len +=
				        (e->offset + e->length > d->size ? d->size
				                                         : e->offset + e->length) -
				        e->offset;
		}
		rc = to->obj_create(c->tgt->drv, d->stage, d->stage_len ? d->stage_len : 1, err);
		if (rc < 0)
			return rc;
		goto pipeline;
	}
	if (d->tgt_base[0]) {
		rc = recovery_drv_clone(c->tgt, d->tgt_base_obj, d->stage, err);
	} else {
		rc = sync_share_stage(c, d, &shared, err);
		if (rc == 0 && !shared)
			rc = to->obj_create(c->tgt->drv, d->stage, d->size, err);
	}
	if (rc < 0)
		return rc;
	rc = to->obj_stat(&st, c->tgt->drv, d->stage, err);
	if (rc < 0)
		return rc;
	if (st.read_only)
		(void)recovery_drv_set_readonly(c->tgt, d->stage, false, NULL);
	if (st.size != d->size) {
		if (!to->obj_resize)
			return rp_error_set(err, RP_ENOTSUPPORTED, "array '%s' cannot resize",
			                    c->tgt->id);
		rc = to->obj_resize(c->tgt->drv, d->stage, d->size, err);
		if (rc < 0)
			return rc;
	}
	if (shared) {
		/* the stage is the snapshot's data already: count it as sent */
		for (j = 0; j < d->n_ext; j++)
			if (!d->ext[j].zero && d->ext[j].offset < d->size)
				c->done += (d->ext[j].offset + d->ext[j].length > d->size
				                    ? d->size
				                    : d->ext[j].offset + d->ext[j].length) -
				           d->ext[j].offset;
		rc = to->flush ? to->flush(c->tgt->drv, d->stage, err) : 0;
		rp_log(RP_LOG_VERBOSE,
		       "sync session '%s': move of '%s': stage shares the snapshot's blocks "
		       "(->clone_from), %lld ms",
		       c->row.id, d->src, (long long)(sync_now_us() - t_start) / 1000);
		return rc < 0 ? rc : sync_progress(c, false, err);
	}
	/* zero ranges: punched, no data crosses */
	for (j = 0; j < d->n_ext; j++) {
		const struct array_extent *e = &d->ext[j];
		uint64_t end = e->offset + e->length > d->size ? d->size : e->offset + e->length;

		if (!e->zero || e->offset >= end)
			continue;
		rc = to->punch(c->tgt->drv, d->stage, e->offset, end - e->offset, err);
		if (rc < 0)
			return rc;
	}

pipeline:
	t_pipe = sync_now_us();
	memset(&p, 0, sizeof(p));
	pthread_mutex_init(&p.mu, NULL);
	pthread_cond_init(&p.cv, NULL);
	for (i = 0; i < SYNC_SLOTS; i++)
		p.slot[i].buf = bufs[i];
	p.bufsz = bufsz;
	p.src = c->src->drv;
	p.d = d;
	p.read = sync_read_uncached(c, d) ? so->read_uncached : so->read;
	p.from_origin = sync_from_origin(c, d);
	p.origin.obj = d->origin_obj;
	memset(&fl, 0, sizeof(fl));
	pthread_mutex_init(&fl.mu, NULL);
	pthread_cond_init(&fl.cv, NULL);
	fl.drv = c->tgt->drv;
	fl.obj = d->stage;
	if (!d->inplace && to->flush && !c->throttle_ms)
		flushing = pthread_create(&flusher, NULL, sync_flusher_main, &fl) == 0;
	if (pthread_create(&reader, NULL, sync_reader, &p) != 0) {
		rc = rp_error_set(err, RP_ERROR, "cannot start the reader thread");
		goto out_destroy;
	}
	for (i = 0;; i = (i + 1) % SYNC_SLOTS) {
		struct sync_slot *sl = &p.slot[i];
		int state;

		t0 = sync_now_us();
		pthread_mutex_lock(&p.mu);
		while (sl->state == SLOT_FREE)
			pthread_cond_wait(&p.cv, &p.mu);
		state = sl->state;
		pthread_mutex_unlock(&p.mu);
		wait_us += sync_now_us() - t0;
		if (state == SLOT_END) {
			rc = p.rc;
			if (rc < 0)
				(void)rp_error_set(err, rc, "%s", p.err.msg);
			break;
		}
		t0 = sync_now_us();
		if (d->inplace) {
			size_t k, pos = 0;

			for (k = 0; k < sl->n; k++)
				pos += sl->len[k];
			rc = to->write(c->tgt->drv, d->stage, spos, sl->buf, pos, err);
			if (rc == 0) {
				spos += pos;
				c->done += pos;
			}
		} else {
			size_t k, pos = 0;

			for (k = 0; rc == 0 && k < sl->n; k++) {
				rc = to->write(c->tgt->drv, d->stage, sl->off[k], sl->buf + pos,
				               sl->len[k], err);
				if (rc == 0 && d->rpcopy[0])
					rc = sync_rpcopy_write(c, d, sl->off[k], sl->buf + pos,
					                       sl->len[k], err);
				pos += sl->len[k];
				if (rc == 0)
					c->done += sl->len[k];
			}
			if (flushing)
				sync_flusher_add(&fl, pos);
		}
		write_us += sync_now_us() - t0;
		if (rc < 0)
			break;
		pipe_publish(&p, i, SLOT_FREE);
		if (c->throttle_ms) {
			struct timespec ts = { c->throttle_ms / 1000,
				               (long)(c->throttle_ms % 1000) * 1000000L };

			(void)nanosleep(&ts, NULL);
		}
		rc = sync_progress(c, false, err);
		if (rc < 0)
			break;
	}
	pthread_mutex_lock(&p.mu);
	p.stop = true;
	pthread_cond_broadcast(&p.cv);
	pthread_mutex_unlock(&p.mu);
	(void)pthread_join(reader, NULL);
	if (p.from_origin && so->origin_done)
		so->origin_done(p.src, &p.origin);
out_destroy:
	if (flushing) {
		pthread_mutex_lock(&fl.mu);
		fl.stop = true;
		pthread_cond_signal(&fl.cv);
		pthread_mutex_unlock(&fl.mu);
		(void)pthread_join(flusher, NULL);
		if (rc == 0 && fl.rc < 0)
			rc = rp_error_set(err, fl.rc, "%s", fl.err.msg);
	}
	pthread_cond_destroy(&fl.cv);
	pthread_mutex_destroy(&fl.mu);
	pthread_cond_destroy(&p.cv);
	pthread_mutex_destroy(&p.mu);
	if (rc < 0)
		return rc;
	if (to->flush) {
		t0 = sync_now_us();
		rc = to->flush(c->tgt->drv, d->stage, err);
		final_us = sync_now_us() - t0;
		if (rc < 0)
			return rc;
	}
	origin_note[0] = '\0';
	if (p.from_origin)
		(void)snprintf(origin_note, sizeof(origin_note),
		               "; %llu MiB from the live LUN's cached pages%s",
		               (unsigned long long)(p.origin.bytes >> 20),
		               p.origin.written ? ", then the LUN was seen written" : "");
	rp_log(RP_LOG_VERBOSE,
	       "sync session '%s': move of '%s': setup %lld ms; "
	       "reader (%s%s): read %lld ms, waited %lld ms for buffers; "
	       "writer: write %lld ms, waited %lld ms for data; "
	       "background flushes %lld ms; final flush %lld ms; progress rows %u (%lld ms); "
	       "total %lld ms",
	       c->row.id, d->src, (long long)(t_pipe - t_start) / 1000,
	       p.from_origin        ? "origin"
	       : p.read == so->read ? "cached"
	                            : "uncached",
	       origin_note, (long long)p.read_us / 1000, (long long)p.stall_us / 1000,
	       (long long)write_us / 1000, (long long)wait_us / 1000, (long long)fl.flush_us / 1000,
	       (long long)final_us / 1000, c->updates - updates0,
	       (long long)(c->update_us - update_us0) / 1000,
	       (long long)(sync_now_us() - t_start) / 1000);
	return 0;
}

/* Alignment of the mover's buffers: direct reads (->read_uncached) need the block size. */
#define SYNC_BUF_ALIGN 4096u

static int sync_move(struct sync_ctx *c, struct rp_error *err)
{
	size_t bufsz = c->throttle_ms ? SYNC_THROTTLED_BUF : SYNC_BUF, i;
	char *raw[SYNC_SLOTS] = { NULL }, *bufs[SYNC_SLOTS] = { NULL };
	int rc = 0;

	for (i = 0; i < SYNC_SLOTS; i++) {
		raw[i] = rp_malloc(bufsz + SYNC_BUF_ALIGN);
		if (!raw[i]) {
			rc = rp_error_set(err, RP_ERROR, "out of memory");
			goto out;
		}
		bufs[i] = raw[i] +
		          (SYNC_BUF_ALIGN - (uintptr_t)raw[i] % SYNC_BUF_ALIGN) % SYNC_BUF_ALIGN;
	}
	c->done = 0;
	rc = sync_progress(c, true, err);
	for (i = 0; rc == 0 && i < c->plan.n; i++)
		rc = sync_move_dev(c, &c->plan.dev[i], bufs, bufsz, err);
	if (rc == 0)
		rc = sync_progress(c, true, err);
out:
	for (i = 0; i < SYNC_SLOTS; i++)
		rp_free(raw[i]);
	return rc;
}

/*
 * Retention of recovery points on the target: newest @keep "rp" snapshots of a device stay.
 * With @spare the newest pruned one's object becomes the device's spare instead of garbage.
 */
static int sync_prune(struct rp_array *tgt, const char *dev, uint32_t keep, bool spare, char ***gc,
                      size_t *n_gc, struct rp_error *err)
{
	struct model_snapshot *list = NULL;
	size_t n = 0, i;
	int rc;

	if (keep < 1)
		keep = 1;
	rc = model_snapshot_list(&list, &n, tgt, dev, NULL, RECOVERY_KIND_RP, err);
	if (rc < 0)
		return rc;
	for (i = keep; i < n; i++) {
		bool kept = false;

		rc = model_snapshot_delete(tgt, list[i].id, err);
		if (rc == 0 && spare && i == keep)
			rc = sync_spare_keep(&kept, tgt, &list[i], gc, n_gc, err);
		if (rc < 0)
			break;
		if (!kept && gc_add(gc, n_gc, list[i].obj) < 0) {
			rc = rp_error_set(err, RP_ERROR, "out of memory");
			break;
		}
	}
	rp_free(list);
	return rc < 0 ? rc : 0;
}

/*
 * Deletes every "base" row of @dev except @keep, collecting their objects. With @spare the
 * newest one's object becomes the device's spare instead (the source's next snapshot is a
 * ->refresh of it, see sync_make_plan).
 */
static int sync_drop_old_bases(struct rp_array *a, const char *dev, const char *keep, bool spare,
                               char ***gc, size_t *n_gc, struct rp_error *err)
{
	struct model_snapshot *list = NULL;
	size_t n = 0, i;
	int rc;

	rc = model_snapshot_list(&list, &n, a, dev, NULL, RECOVERY_KIND_BASE, err);
	if (rc < 0)
		return rc;
	for (i = 0; i < n; i++) {
		bool kept = false;

		if (strcmp(list[i].id, keep) == 0)
			continue;
		rc = model_snapshot_delete(a, list[i].id, err);
		if (rc == 0 && spare) {
			rc = sync_spare_keep(&kept, a, &list[i], gc, n_gc, err);
			spare = false; /* the newest only */
		}
		if (rc < 0)
			break;
		if (!kept && gc_add(gc, n_gc, list[i].obj) < 0) {
			rc = rp_error_set(err, RP_ERROR, "out of memory");
			break;
		}
	}
	rp_free(list);
	return rc < 0 ? rc : 0;
}

static int sync_copy_meta(struct rp_array *src, const char *sid, struct rp_array *tgt,
                          const char *tid, enum model_meta_table table, struct rp_error *err)
{
	struct model_kv *kv = NULL;
	size_t n = 0;
	int rc;

	rc = model_kv_list(&kv, &n, src, table, sid, err);
	if (rc < 0)
		return rc;
	rc = model_kv_replace_all(tgt, table, tid, kv, n, err);
	model_kv_free(kv, n);
	return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* In-place apply with an undo object (incremental sync)                                       */

/*
 * Undo object "undo-<session>-<tgt dev>", two kinds:
 * - with data (SYNC_UNDO_MAGIC): a header rounded up to 4 KiB (magic, number of ranges, object
 *   size, then offset/length pairs, host byte order), then the old contents of those ranges,
 *   packed in order;
 * - by reference (SYNC_UNDO_REF_MAGIC), when the target array has ->copy_ranges: the header
 *   names the target's base object (UNDO_REF_NAME bytes, NUL-padded, before the pairs) and
 *   nothing follows. The old contents are that object's: a target's live object equals its
 *   base when an apply starts (sync_pick_inplace), and the base stays until the session
 *   commits or is rolled back. Writing it costs no read of the live object, no data write and
 *   no data flush.
 */
#define SYNC_UNDO_MAGIC "RPUNDO01"
#define SYNC_UNDO_REF_MAGIC "RPUNDOR1"
#define UNDO_REF_NAME 136

struct undo_hdr {
	char magic[8];
	uint64_t n;
	uint64_t size;
};

static uint64_t undo_hdr_len(uint64_t n, bool ref)
{
	return (sizeof(struct undo_hdr) + (ref ? UNDO_REF_NAME : 0) + n * 16 + 4095) / 4096 * 4096;
}

/* Tests only (SYNC_ENV_CRASH "apply:N"): the worker _exits after N in-place writes. */
static long sync_crash_writes = -1;

static void sync_crash_point(void)
{
	if (sync_crash_writes >= 0 && sync_crash_writes-- == 0)
		_exit(9);
}

static bool buf_is_zero(const char *p, size_t n)
{
	return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/*
 * Reads the ranges @ext (clipped to @size) of @from, packed from @from_off on, and writes each
 * to its place in @to (zero pieces are punched when @punch_zero). Reads in @bufsz pieces.
 */
static int sync_scatter(struct rp_array *a, const char *from, uint64_t from_off,
                        const struct array_extent *ext, size_t n, uint64_t size, bool punch_zero,
                        const char *to, char *buf, size_t bufsz, struct rp_error *err)
{
	const struct array_ops *o = a->drv->ops;
	uint64_t spos = from_off, avail = 0, bpos = 0, total = 0;
	size_t j;
	int rc = 0;

	for (j = 0; j < n; j++)
		if (!ext[j].zero && ext[j].offset < size)
			total += (ext[j].offset + ext[j].length > size
			                  ? size
			                  : ext[j].offset + ext[j].length) -
			         ext[j].offset;
	for (j = 0; rc == 0 && j < n; j++) {
		uint64_t off = ext[j].offset,
		         end = off + ext[j].length > size ? size : off + ext[j].length;

		if (ext[j].zero)
			continue;
		while (rc == 0 && off < end) {
			size_t k;

			if (bpos == avail) {
				avail = total - (spos - from_off) < bufsz
				                ? total - (spos - from_off)
				                : bufsz;
				if (avail == 0)
					return rp_error_set(err, RP_ECORRUPT,
					                    "object '%s' is short", from);
				rc = o->read(a->drv, from, spos, buf, (size_t)avail, err);
				if (rc < 0)
					return rc;
				spos += avail;
				bpos = 0;
			}
			k = (size_t)(end - off < avail - bpos ? end - off : avail - bpos);
			if (punch_zero && buf_is_zero(buf + bpos, k))
				rc = o->punch(a->drv, to, off, k, err);
			else
				rc = o->write(a->drv, to, off, buf + bpos, k, err);
			if (!punch_zero)
				sync_crash_point();
			bpos += k;
			off += k;
		}
	}
	return rc;
}

/*
 * ->copy_ranges of the ranges @ext (clipped to @size; zero ranges skipped) from @from into
 * @to: packed from @from_off on in @from when @packed, else at the same offsets. *@shared
 * adds the bytes the driver shared instead of copying.
 */
static int sync_copy_ranges(struct rp_array *a, const char *from, uint64_t from_off, bool packed,
                            const struct array_extent *ext, size_t n, uint64_t size, const char *to,
                            uint64_t *shared, struct rp_error *err)
{
	struct array_remap *r;
	uint64_t pos = from_off, sh = 0;
	size_t j, m = 0, step, i;
	int rc = 0;

	r = rp_calloc(n ? n : 1, sizeof(*r));
	if (!r)
		return rp_error_set(err, RP_ERROR, "out of memory");
	for (j = 0; j < n; j++) {
		uint64_t end =
		        ext[j].offset + ext[j].length > size ? size : ext[j].offset + ext[j].length;

		if (ext[j].zero || ext[j].offset >= end)
			continue;
		r[m].src_off = packed ? pos : ext[j].offset;
		r[m].dst_off = ext[j].offset;
		r[m].len = end - ext[j].offset;
		pos += r[m].len;
		m++;
	}
	/* one call for all ranges; one per range when a test wants to die after N of them */
	step = sync_crash_writes >= 0 ? 1 : (m ? m : 1);
	for (i = 0; rc == 0 && i < m; i += step) {
		size_t k = m - i < step ? m - i : step;

		rc = a->drv->ops->copy_ranges(a->drv, from, to, r + i, k, &sh, err);
		*shared += sh;
		if (rc == 0 && step == 1)
			sync_crash_point();
	}
	rp_free(r);
	return rc;
}

/* Is the undo object of @d a reference to the target's base (see SYNC_UNDO_REF_MAGIC)? */
static bool sync_undo_by_ref(const struct rp_array *a, const struct sync_dev *d)
{
	return a->drv->ops->copy_ranges && d->tgt_base_obj[0] &&
	       strlen(d->tgt_base_obj) < UNDO_REF_NAME &&
	       !(getenv(SYNC_ENV_UNDO_DATA) && *getenv(SYNC_ENV_UNDO_DATA));
}

/*
 * Writes the undo object of @d: the changed ranges and either the current contents of each
 * range of the live object, or the name of the target's base object that holds them.
 */
static int sync_undo_write(struct rp_array *a, struct sync_dev *d, char *buf, size_t bufsz,
                           struct rp_error *err)
{
	const struct array_ops *o = a->drv->ops;
	bool ref = sync_undo_by_ref(a, d);
	struct undo_hdr *h;
	uint64_t *pairs, hlen, data = 0, pos, used = 0;
	size_t j, n = 0;
	int rc;

	for (j = 0; j < d->n_ext; j++)
		if (d->ext[j].offset < d->size)
			n++;
	hlen = undo_hdr_len(n, ref);
	h = rp_calloc(1, (size_t)hlen);
	if (!h)
		return rp_error_set(err, RP_ERROR, "out of memory");
	memcpy(h->magic, ref ? SYNC_UNDO_REF_MAGIC : SYNC_UNDO_MAGIC, sizeof(h->magic));
	h->n = n;
	h->size = d->size;
	if (ref)
		rp_strlcpy((char *)(h + 1), d->tgt_base_obj, UNDO_REF_NAME);
	pairs = (uint64_t *)((char *)(h + 1) + (ref ? UNDO_REF_NAME : 0));
	n = 0;
	for (j = 0; j < d->n_ext; j++) {
		const struct array_extent *e = &d->ext[j];
		uint64_t end = e->offset + e->length > d->size ? d->size : e->offset + e->length;

		if (e->offset >= d->size)
			continue;
		pairs[2 * n] = e->offset;
		pairs[2 * n + 1] = end - e->offset;
		data += end - e->offset;
		n++;
	}
	if (ref)
		data = 0;
	(void)recovery_drv_delete(a, d->undo, NULL);
	rc = o->obj_create(a->drv, d->undo, hlen + data, err);
	if (rc == 0)
		rc = o->write(a->drv, d->undo, 0, h, (size_t)hlen, err);
	pos = hlen;
	for (j = 0; rc == 0 && !ref && j < n; j++) {
		uint64_t off = pairs[2 * j], end = off + pairs[2 * j + 1];

		while (rc == 0 && off < end) {
			size_t k = (size_t)(end - off < bufsz - used ? end - off : bufsz - used);

			rc = o->read(a->drv, d->lun_obj, off, buf + used, k, err);
			used += k;
			off += k;
			if (rc == 0 && used == bufsz) {
				rc = o->write(a->drv, d->undo, pos, buf, (size_t)used, err);
				pos += used;
				used = 0;
			}
		}
	}
	if (rc == 0 && used > 0)
		rc = o->write(a->drv, d->undo, pos, buf, (size_t)used, err);
	if (rc == 0 && o->flush)
		rc = o->flush(a->drv, d->undo, err);
	rp_free(h);
	return rc;
}

/*
 * Puts the old contents that undo object @undo saved or names back into @lun (read-only
 * again): the saved data written back (zero pieces punched), or the named base object's
 * ranges copied back (->copy_ranges: shared again on reflink arrays).
 */
static int sync_undo_restore(struct rp_array *a, const char *lun, const char *undo,
                             struct rp_error *err)
{
	const struct array_ops *o = a->drv->ops;
	struct array_obj_stat st, bs;
	struct undo_hdr h;
	struct array_extent *ext = NULL;
	struct rp_error e;
	char base[UNDO_REF_NAME];
	uint64_t *pairs = NULL, hlen, data = 0, i, shared = 0;
	char *buf = NULL;
	bool ref;
	int rc;

	rc = o->obj_stat(&st, a->drv, undo, err);
	if (rc < 0)
		return rc;
	if (st.size < sizeof(h) + UNDO_REF_NAME)
		return rp_error_set(err, RP_ECORRUPT, "undo object '%s' is corrupt", undo);
	rc = o->read(a->drv, undo, 0, &h, sizeof(h), err);
	if (rc < 0)
		return rc;
	ref = memcmp(h.magic, SYNC_UNDO_REF_MAGIC, sizeof(h.magic)) == 0;
	if ((!ref && memcmp(h.magic, SYNC_UNDO_MAGIC, sizeof(h.magic)) != 0) ||
	    h.n > (st.size / 16) || undo_hdr_len(h.n, ref) > st.size)
		return rp_error_set(err, RP_ECORRUPT, "undo object '%s' is corrupt", undo);
	hlen = undo_hdr_len(h.n, ref);
	if (ref) {
		rc = o->read(a->drv, undo, sizeof(h), base, sizeof(base), err);
		if (rc < 0)
			return rc;
		if (memchr(base, '\0', sizeof(base)) == NULL || !o->copy_ranges)
			return rp_error_set(err, RP_ECORRUPT, "undo object '%s' is corrupt", undo);
		rp_error_clear(&e);
		rc = o->obj_stat(&bs, a->drv, base, &e);
		if (rc < 0)
			return rp_error_set_os(err, rc, e.os_errno,
			                       "undo object '%s' names base object '%s': %s", undo,
			                       base, e.msg);
		if (bs.size < h.size)
			return rp_error_set(err, RP_ECORRUPT,
			                    "base object '%s' of undo object '%s' is short", base,
			                    undo);
	}
	pairs = rp_malloc(h.n ? (size_t)h.n * 16 : 16);
	ext = rp_calloc(h.n ? (size_t)h.n : 1, sizeof(*ext));
	buf = ref ? NULL : rp_malloc(SYNC_BUF);
	if (!pairs || !ext || (!ref && !buf)) {
		rc = rp_error_set(err, RP_ERROR, "out of memory");
		goto out;
	}
	if (h.n)
		rc = o->read(a->drv, undo, sizeof(h) + (ref ? UNDO_REF_NAME : 0), pairs,
		             (size_t)h.n * 16, err);
	if (rc < 0)
		goto out;
	for (i = 0; i < h.n; i++) {
		ext[i].offset = pairs[2 * i];
		ext[i].length = pairs[2 * i + 1];
		ext[i].zero = false;
		if (ext[i].offset > h.size || ext[i].length > h.size - ext[i].offset) {
			rc = rp_error_set(err, RP_ECORRUPT, "undo object '%s' is corrupt", undo);
			goto out;
		}
		data += ext[i].length;
	}
	if (hlen + (ref ? 0 : data) != st.size) {
		rc = rp_error_set(err, RP_ECORRUPT, "undo object '%s' is incomplete", undo);
		goto out;
	}
	rc = recovery_drv_set_readonly(a, lun, false, err);
	if (rc == 0 && ref)
		rc = sync_copy_ranges(a, base, 0, false, ext, (size_t)h.n, h.size, lun, &shared,
		                      err);
	else if (rc == 0)
		rc = sync_scatter(a, undo, hlen, ext, (size_t)h.n, h.size, true, lun, buf, SYNC_BUF,
		                  err);
	if (rc == 0 && o->flush)
		rc = o->flush(a->drv, lun, err);
	(void)recovery_drv_set_readonly(a, lun, true, NULL);
out:
	rp_free(buf);
	rp_free(ext);
	rp_free(pairs);
	return rc;
}

/*
 * The fallback of a rollback whose undo cannot be applied (corrupt, its base unreadable): the
 * target's live object @td replaced whole by a copy of its base @b (what it held before the
 * sync began: a target's live data equals its base between syncs), read-only again.
 */
static int sync_rollback_whole(struct rp_array *a, const struct model_device *td,
                               struct model_snapshot *b, struct rp_error *err)
{
	int rc;

	if (!td->base_snapshot[0])
		return rp_error_set(err, RP_ENOTFOUND, "'%s' has no base", td->id);
	rc = model_snapshot_load(b, a, td->base_snapshot, err);
	if (rc == 0)
		rc = recovery_rollback(a, td, b->obj, "undo", err);
	if (rc == 0)
		rc = recovery_drv_set_readonly(a, td->obj, true, err);
	return rc;
}

/*
 * Rolls target device @tgt_dev of session @sid back to what it was before an interrupted
 * in-place apply, if an undo object exists, and removes it: from the undo, else whole from the
 * device's base (sync_rollback_whole). If both fail, the device loses its base (the next sync
 * is a full copy through a staging object and a rename, which rewrites every byte). The caller
 * holds the target's lock.
 */
static void sync_rollback_dev(struct rp_array *a, const char *sid, const char *tgt_dev)
{
	char undo[ARRAY_OBJ_MAX];
	struct model_device td;
	struct model_snapshot b;
	struct rp_error e, e2;
	bool exists = false, loaded;

	(void)snprintf(undo, sizeof(undo), "undo-%s-%s", sid, tgt_dev);
	if (recovery_drv_exists(&exists, a, undo, NULL) < 0 || !exists)
		return;
	rp_error_clear(&e);
	rp_error_clear(&e2);
	loaded = model_device_load(&td, a, tgt_dev, &e) == 0;
	if (loaded && td.state != RP_DEV_TARGET) {
		/* promoted meanwhile (failover aborts sessions first, so this is not expected):
		 * never write old data over a LUN that may be in use */
		rp_log(RP_LOG_WARNING, "sync session '%s': '%s' is %s, not rolled back", sid,
		       tgt_dev, rp_dev_state_name(td.state));
	} else if (loaded && sync_undo_restore(a, td.obj, undo, &e) == 0) {
		rp_log(RP_LOG_INFO, "sync session '%s': '%s' rolled back to its recovery point",
		       sid, tgt_dev);
	} else if (loaded && sync_rollback_whole(a, &td, &b, &e2) == 0) {
		rp_log(RP_LOG_WARNING,
		       "sync session '%s': cannot roll '%s' back range by range (%s); restored it"
		       " whole from its base '%s'",
		       sid, tgt_dev, e.msg, b.id);
	} else {
		rp_log(RP_LOG_ERROR,
		       "sync session '%s': cannot roll '%s' back (%s%s%s); its data is partly that"
		       " of the aborted sync, its next sync is a full copy",
		       sid, tgt_dev, e.msg, e2.msg[0] ? "; whole: " : "", e2.msg);
		if (model_device_load(&td, a, tgt_dev, NULL) == 0) {
			td.base_snapshot[0] = '\0';
			(void)model_device_store(a, &td, NULL);
		}
	}
	(void)recovery_drv_delete(a, undo, NULL);
}

/* Same for every device of the plan text @plan. */
static void sync_rollback_plan(struct rp_array *a, const char *sid, const char *plan)
{
	struct sync_plan p;
	size_t i;

	if (!plan || sync_plan_parse(&p, plan, NULL) < 0)
		return;
	for (i = 0; i < p.n; i++)
		sync_rollback_dev(a, sid, p.dev[i].tgt);
	sync_plan_dispose(&p);
}

/*
 * Applies the staged data of every in-place device to its live object (under the target's
 * lock): first the undo objects, recorded in the plan ("undo <tgt>") once complete, then the
 * changed ranges: ->copy_ranges from the packed stage where the driver has it (shared, not
 * written, on reflink arrays; *@shared counts those bytes), else ->write per range. A
 * restarted worker finds the record and re-applies (same data, idempotent) without writing
 * the undo objects again.
 */
static int sync_apply_inplace(struct sync_ctx *c, bool *applying, uint64_t *shared,
                              struct rp_error *err)
{
	const struct array_ops *o = c->tgt->drv->ops;
	struct sync_plan *p = &c->plan;
	char *buf = NULL, *marks = NULL;
	size_t i, j, len = 0;
	int rc = 0;

	for (i = 0; i < p->n; i++)
		if (p->dev[i].inplace)
			break;
	if (i == p->n)
		return 0;
	buf = rp_malloc(SYNC_BUF);
	marks = rp_malloc(p->n * (RP_ID_MAX + 8) + 1);
	if (!buf || !marks) {
		rc = rp_error_set(err, RP_ERROR, "out of memory");
		goto out;
	}
	marks[0] = '\0';
	{
		const char *crash = getenv(SYNC_ENV_CRASH);

		if (crash && strncmp(crash, "apply:", 6) == 0)
			sync_crash_writes = strtol(crash + 6, NULL, 10);
	}
	for (i = 0; rc == 0 && i < p->n; i++) {
		struct sync_dev *d = &p->dev[i];

		if (!d->inplace || d->undo_done)
			continue;
		rc = sync_undo_write(c->tgt, d, buf, SYNC_BUF, err);
		if (rc == 0)
			len += (size_t)snprintf(marks + len, RP_ID_MAX + 8, "undo %s\n", d->tgt);
	}
	if (rc == 0 && len > 0) {
		int changes = 0;

		rc = meta_run(
		        &changes, c->tgt->db, err,
		        "UPDATE sync_sessions SET plan = plan || ? WHERE id = ? AND status = 0",
		        "tt", marks, c->row.id);
		if (rc == 0 && changes == 0) {
			c->aborted = true;
			rc = rp_error_set(err, RP_EBUSY, "sync session '%s' was aborted",
			                  c->row.id);
		}
		if (rc == 0)
			for (i = 0; i < p->n; i++)
				if (p->dev[i].inplace)
					p->dev[i].undo_done = true;
	}
	if (rc < 0)
		goto out;
	*applying = true;
	for (i = 0; rc == 0 && i < p->n; i++) {
		struct sync_dev *d = &p->dev[i];

		if (!d->inplace)
			continue;
		rc = recovery_drv_set_readonly(c->tgt, d->lun_obj, false, err);
		if (rc == 0 && o->copy_ranges)
			rc = sync_copy_ranges(c->tgt, d->stage, 0, true, d->ext, d->n_ext, d->size,
			                      d->lun_obj, shared, err);
		else if (rc == 0)
			rc = sync_scatter(c->tgt, d->stage, 0, d->ext, d->n_ext, d->size, false,
			                  d->lun_obj, buf, SYNC_BUF, err);
		for (j = 0; rc == 0 && j < d->n_ext; j++) {
			const struct array_extent *e = &d->ext[j];
			uint64_t end =
			        e->offset + e->length > d->size ? d->size : e->offset + e->length;

			if (e->zero && e->offset < end)
				rc = o->punch(c->tgt->drv, d->lun_obj, e->offset, end - e->offset,
				              err);
		}
		if (rc == 0 && o->flush)
			rc = o->flush(c->tgt->drv, d->lun_obj, err);
	}
out:
	rp_free(marks);
	rp_free(buf);
	return rc;
}

/* Appends @n ranges (as data ranges) to *@ext. */
static int ext_append(struct array_extent **ext, size_t *n, size_t *cap,
                      const struct array_extent *add, size_t n_add)
{
	size_t i;

	if (*n + n_add > *cap) {
		size_t c = (*n + n_add) * 2;
		struct array_extent *tmp = rp_realloc(*ext, c * sizeof(**ext));

		if (!tmp)
			return RP_ERROR;
		*ext = tmp;
		*cap = c;
	}
	for (i = 0; i < n_add; i++) {
		(*ext)[*n] = add[i];
		(*ext)[(*n)++].zero = false;
	}
	return 0;
}

static int ext_cmp(const void *x, const void *y)
{
	const struct array_extent *a = x, *b = y;

	return a->offset < b->offset ? -1 : a->offset > b->offset;
}

/* Sorts @ext and merges overlapping or touching ranges; returns the new count. */
static size_t ext_merge(struct array_extent *ext, size_t n)
{
	size_t i, m = 0;

	if (n == 0)
		return 0;
	qsort(ext, n, sizeof(*ext), ext_cmp);
	for (i = 1; i < n; i++) {
		struct array_extent *last = &ext[m];

		if (ext[i].offset <= last->offset + last->length) {
			uint64_t end = ext[i].offset + ext[i].length;

			if (end > last->offset + last->length)
				last->length = end - last->offset;
		} else {
			ext[++m] = ext[i];
		}
	}
	return m + 1;
}

/*
 * The ranges in which recovery point object @obj of @dev differs from the one before it
 * (rp_deltas), appended to *@ext; the earlier object's name into @prev. RP_ENOTFOUND when no
 * in-place sync recorded them.
 */
static int sync_delta_load(struct array_extent **ext, size_t *n, size_t *cap,
                           char prev[ARRAY_OBJ_MAX], struct rp_array *a, const char *dev,
                           const char *obj)
{
	sqlite3_stmt *st = NULL;
	const unsigned char *pairs;
	size_t len, i;
	int rc;

	rc = meta_prepare(&st, a->db, NULL,
	                  "SELECT prev_obj, ranges FROM rp_deltas WHERE obj = ? AND device = ?",
	                  "tt", obj, dev);
	if (rc < 0)
		return rc;
	rc = meta_step(st, a->db, NULL);
	if (rc != 1) {
		sqlite3_finalize(st);
		return rc < 0 ? rc : RP_ENOTFOUND;
	}
	meta_col_text(prev, ARRAY_OBJ_MAX, st, 0);
	pairs = sqlite3_column_blob(st, 1);
	len = (size_t)sqlite3_column_bytes(st, 1);
	if (len % 16 != 0 || (len > 0 && !pairs)) {
		sqlite3_finalize(st);
		return RP_ECORRUPT;
	}
	for (i = 0; rc >= 0 && i < len / 16; i++) {
		struct array_extent e = { .zero = false };

		/* a blob need not be aligned for uint64_t */
		memcpy(&e.offset, pairs + 16 * i, 8);
		memcpy(&e.length, pairs + 16 * i + 8, 8);
		rc = ext_append(ext, n, cap, &e, 1);
	}
	sqlite3_finalize(st);
	return rc < 0 ? rc : 0;
}

/* Records, in the caller's transaction, the ranges @d changed to make recovery point @rp_obj. */
static int sync_delta_store(struct rp_array *a, const struct sync_dev *d, const char *rp_obj,
                            struct rp_error *err)
{
	uint64_t *pairs;
	size_t j, n = 0;
	int rc;

	pairs = rp_malloc(d->n_ext ? d->n_ext * 16 : 16);
	if (!pairs)
		return rp_error_set(err, RP_ERROR, "out of memory");
	for (j = 0; j < d->n_ext; j++) {
		uint64_t end = d->ext[j].offset + d->ext[j].length;

		if (d->ext[j].offset >= d->size)
			continue;
		pairs[2 * n] = d->ext[j].offset;
		pairs[2 * n + 1] = (end > d->size ? d->size : end) - d->ext[j].offset;
		n++;
	}
	rc = meta_run(NULL, a->db, err,
	              "INSERT OR REPLACE INTO rp_deltas(obj, device, prev_obj, ranges)"
	              " VALUES (?, ?, ?, ?)",
	              "tttB", rp_obj, d->tgt, d->tgt_base_obj, (const void *)pairs, n * 16);
	rp_free(pairs);
	return rc;
}

/*
 * Before the recovery-point step of in-place device @d on a target without reflink: if the
 * device has a spare whose point the recorded deltas lead back to from the current base, the
 * spare (renamed to the session's rpcopy object, a work object dropped on failure) gets the
 * live object's contents of every range changed since, and becomes the new recovery point's
 * object (d->rpcopy) instead of a full copy of the live object. Anything missing or failing
 * only means the full copy; never an error of the session.
 */
static void sync_recycle_rp(struct sync_ctx *c, struct sync_dev *d)
{
	struct rp_array *a = c->tgt;
	const struct array_ops *o = a->drv->ops;
	struct model_snapshot sp;
	struct array_obj_stat st;
	struct array_extent *ext = NULL;
	size_t n = 0, cap = 0, merged = 0, j;
	char cur[ARRAY_OBJ_MAX], prev[ARRAY_OBJ_MAX], id[RP_ID_MAX], rpcopy[ARRAY_OBJ_MAX];
	uint64_t shared = 0, bytes = 0;
	int64_t t0 = rp_now_ms();
	struct rp_error e;
	int steps, rc;
	bool found = false;

	if (!d->inplace || !sync_spare_wanted(a) || !d->tgt_base_obj[0] || d->rpcopy[0])
		return;
	(void)snprintf(rpcopy, sizeof(rpcopy), "rpcopy-%s-%s", c->row.id, d->tgt);
	(void)recovery_drv_delete(a, rpcopy, NULL); /* an earlier worker's: not trusted */
	sync_spare_id(id, d->tgt);
	if (model_snapshot_load(&sp, a, id, NULL) < 0 || strcmp(sp.kind, SYNC_SPARE_KIND) != 0 ||
	    sync_obj_refs(a, sp.obj) != 1 || o->obj_stat(&st, a->drv, sp.obj, NULL) < 0 ||
	    st.size != d->size)
		return;
	if (ext_append(&ext, &n, &cap, d->ext, d->n_ext) < 0)
		goto out;
	rp_strlcpy(cur, d->tgt_base_obj, sizeof(cur));
	for (steps = 0; steps < SYNC_CHAIN_MAX; steps++) {
		if (strcmp(cur, sp.obj) == 0) {
			found = true;
			break;
		}
		if (sync_delta_load(&ext, &n, &cap, prev, a, d->tgt, cur) < 0)
			break;
		rp_strlcpy(cur, prev, sizeof(cur));
	}
	if (!found)
		goto out;
	merged = ext_merge(ext, n);
	rp_error_clear(&e);
	rc = o->obj_rename(a->drv, sp.obj, rpcopy, &e);
	if (rc == 0)
		rc = sync_copy_ranges(a, d->lun_obj, 0, false, ext, merged, d->size, rpcopy,
		                      &shared, &e);
	if (rc < 0) {
		rp_log(RP_LOG_WARNING,
		       "sync session '%s': spare of '%s' not usable (%s); a full copy instead",
		       c->row.id, d->tgt, e.msg);
		(void)recovery_drv_delete(a, rpcopy, NULL);
		goto out;
	}
	sync_die_at("recycle"); /* the spare renamed and up to date, nothing committed */
	for (j = 0; j < merged; j++)
		bytes += ext[j].length;
	rp_strlcpy(d->rpcopy, rpcopy, sizeof(d->rpcopy));
	d->spare_used = true;
	rp_log(RP_LOG_VERBOSE,
	       "sync session '%s': recovery point of '%s' from its spare: %zu ranges, %llu KiB"
	       " copied from the live object, %lld ms",
	       c->row.id, d->tgt, merged, (unsigned long long)(bytes >> 10),
	       (long long)(rp_now_ms() - t0));
out:
	rp_free(ext);
}

void sync_spare_drop(struct rp_array *a, const char *dev)
{
	struct model_snapshot sp;
	char id[RP_ID_MAX];

	sync_spare_id(id, dev);
	(void)meta_run(NULL, a->db, NULL, "DELETE FROM rp_deltas WHERE device = ?", "t", dev);
	if (model_snapshot_load(&sp, a, id, NULL) < 0)
		return;
	if (model_snapshot_delete(a, id, NULL) == 0)
		recovery_obj_gc(a, sp.obj);
}

/* Applies the staged data on the target and records the recovery point there. */
static int sync_finish_target(struct sync_ctx *c, struct rp_error *err)
{
	struct sync_plan *p = &c->plan;
	struct model_device *tdev = NULL;
	char **gc = NULL, (*rp_obj)[ARRAY_OBJ_MAX] = NULL;
	size_t n_gc = 0, i;
	uint32_t retention = 3;
	bool in_txn = false, applying = false;
	int64_t t_apply = 0, t_rp = 0, t_txn = 0;
	uint64_t shared = 0;
	bool spare = sync_spare_wanted(c->tgt);
	int lfd = -1, rc;

	tdev = rp_calloc(p->n ? p->n : 1, sizeof(*tdev));
	rp_obj = rp_calloc(p->n ? p->n : 1, sizeof(*rp_obj));
	if (!tdev || !rp_obj) {
		rp_free(tdev);
		rp_free(rp_obj);
		return rp_error_set(err, RP_ERROR, "out of memory");
	}
	rc = lock_group(c->tgt, c->lock_tgt, &lfd, err);
	if (rc < 0)
		goto out;
	/* still ours? (failover at the target aborts incoming sessions) */
	rc = sync_progress(c, true, err);
	if (rc < 0)
		goto out;
	for (i = 0; i < p->n; i++) {
		rc = model_device_load(&tdev[i], c->tgt, p->dev[i].tgt, err);
		if (rc < 0)
			goto out;
		if (tdev[i].state != RP_DEV_TARGET) {
			rc = rp_error_set(err, RP_ESTATE,
			                  "device '%s' on array '%s' is %s, not a target",
			                  tdev[i].id, c->tgt->id, rp_dev_state_name(tdev[i].state));
			goto out;
		}
	}
	if (c->row.group[0]) {
		struct model_group g;

		if (model_group_load(&g, c->src, c->row.group, NULL) == 0)
			retention = g.retention;
	}
	/* In place (no reflink): undo objects, then the changed ranges into the live objects. */
	t_apply = rp_now_ms();
	rc = sync_apply_inplace(c, &applying, &shared, err);
	if (rc < 0)
		goto out;
	t_rp = rp_now_ms();
	for (i = 0; i < p->n; i++)
		sync_recycle_rp(c, &p->dev[i]);
	/* Atomic switch of each other device, then every device's recovery-point snapshot. */
	for (i = 0; i < p->n; i++) {
		struct sync_dev *d = &p->dev[i];
		char rpid[RP_ID_MAX], *obj = rp_obj[i];

		if (!c->tgt->drv->ops->obj_rename) {
			rc = rp_error_set(err, RP_ENOTSUPPORTED, "array '%s' cannot rename",
			                  c->tgt->id);
			goto out;
		}
		if (!d->inplace)
			rc = c->tgt->drv->ops->obj_rename(c->tgt->drv, d->stage, tdev[i].obj, err);
		if (rc < 0)
			goto out;
		(void)recovery_drv_set_readonly(c->tgt, tdev[i].obj, true, NULL);
		(void)snprintf(rpid, sizeof(rpid), "rp-%s-%lld", d->tgt, (long long)p->rp_ms);
		model_snapshot_obj(obj, rpid);
		(void)recovery_drv_delete(c->tgt, obj, NULL);
		if (d->rpcopy[0])
			rc = c->tgt->drv->ops->obj_rename(c->tgt->drv, d->rpcopy, obj, err);
		else
			rc = recovery_drv_clone(c->tgt, tdev[i].obj, obj, err);
		if (rc < 0)
			goto out;
	}
	/*
	 * Every recovery point's data, and the names of the switched live objects and of the
	 * recovery points, durable before the rows naming them commit: each file flushed, then
	 * their directory once (not once per device).
	 */
	rc = sync_objs_persist(c->tgt, p->n ? rp_obj[0] : NULL, sizeof(*rp_obj), p->n, err);
	if (rc < 0)
		goto out;
	sync_die_at("recovery-point"); /* the recovery points made, no row names them yet */

	t_txn = rp_now_ms();
	rc = meta_txn_begin(c->tgt->db, err);
	if (rc < 0)
		goto out;
	in_txn = true;
	for (i = 0; i < p->n; i++) {
		struct sync_dev *d = &p->dev[i];
		struct model_snapshot s;
		struct model_device sd;

		memset(&s, 0, sizeof(s));
		(void)snprintf(s.id, sizeof(s.id), "rp-%s-%lld", d->tgt, (long long)p->rp_ms);
		model_snapshot_obj(s.obj, s.id);
		rp_strlcpy(s.device, d->tgt, sizeof(s.device));
		rp_strlcpy(s.group, c->row.group, sizeof(s.group));
		rp_strlcpy(s.kind, RECOVERY_KIND_RP, sizeof(s.kind));
		wwn_snapshot(s.wwn, c->tgt->id, s.id);
		rp_strlcpy(s.recovery_point, p->rp, sizeof(s.recovery_point));
		s.recovery_point_ms = p->rp_ms;
		s.created_ms = rp_now_ms();
		(void)model_snapshot_delete(c->tgt, s.id, NULL);
		rc = model_snapshot_insert(c->tgt, &s, err);
		if (rc < 0)
			goto out;
		/* the target's base shares the object of its newest recovery point */
		(void)snprintf(s.id, sizeof(s.id), "base-%s-%lld", d->tgt, (long long)p->rp_ms);
		rp_strlcpy(s.kind, RECOVERY_KIND_BASE, sizeof(s.kind));
		wwn_snapshot(s.wwn, c->tgt->id, s.id);
		(void)model_snapshot_delete(c->tgt, s.id, NULL);
		rc = model_snapshot_insert(c->tgt, &s, err);
		if (rc < 0)
			goto out;
		rc = sync_drop_old_bases(c->tgt, d->tgt, s.id, false, &gc, &n_gc, err);
		if (rc < 0)
			goto out;
		if (spare && d->inplace && d->tgt_base_obj[0]) {
			rc = sync_delta_store(c->tgt, d, s.obj, err);
			if (rc < 0)
				goto out;
		}
		if (d->spare_used) {
			/* its object is the new recovery point's now */
			char spare_id[RP_ID_MAX];

			sync_spare_id(spare_id, d->tgt);
			rc = model_snapshot_delete(c->tgt, spare_id, err);
			if (rc < 0)
				goto out;
		}
		rc = sync_prune(c->tgt, d->tgt, retention, spare, &gc, &n_gc, err);
		if (rc == 0 && spare)
			rc = meta_run(
			        NULL, c->tgt->db, err,
			        "DELETE FROM rp_deltas WHERE device = ?1 AND obj NOT IN"
			        " (SELECT obj FROM snapshots WHERE device = ?1 AND kind = 'rp')",
			        "t", d->tgt);
		if (rc < 0)
			goto out;
		rc = sync_copy_meta(c->src, d->src, c->tgt, d->tgt, MODEL_LUN_META, err);
		if (rc < 0)
			goto out;
		rc = model_device_load(&tdev[i], c->tgt, d->tgt, err);
		if (rc < 0)
			goto out;
		if (model_device_load(&sd, c->src, d->src, NULL) == 0)
			rp_strlcpy(tdev[i].name, sd.name, sizeof(tdev[i].name));
		tdev[i].size = d->size;
		rp_strlcpy(tdev[i].recovery_point, p->rp, sizeof(tdev[i].recovery_point));
		tdev[i].recovery_point_ms = p->rp_ms;
		rp_strlcpy(tdev[i].base_snapshot, s.id, sizeof(tdev[i].base_snapshot));
		rc = model_device_store(c->tgt, &tdev[i], err);
		if (rc < 0)
			goto out;
	}
	if (c->row.group[0]) {
		struct model_group g, sg;

		rc = model_group_load(&g, c->tgt, c->row.group, err);
		if (rc < 0)
			goto out;
		rp_strlcpy(g.recovery_point, p->rp, sizeof(g.recovery_point));
		g.recovery_point_ms = p->rp_ms;
		if (model_group_load(&sg, c->src, c->row.group, NULL) == 0) {
			g.rpo = sg.rpo;
			g.retention = sg.retention;
			rp_strlcpy(g.name, sg.name, sizeof(g.name));
		}
		rc = model_group_store(c->tgt, &g, err);
		if (rc < 0)
			goto out;
		rc = sync_copy_meta(c->src, c->row.group, c->tgt, c->row.group, MODEL_GROUP_META,
		                    err);
		if (rc < 0)
			goto out;
	}
	rc = meta_run(NULL, c->tgt->db, err,
	              "UPDATE sync_sessions SET status = 1, progress = 100, bytes_total = ?,"
	              " bytes_done = ?, finished_ms = ?, heartbeat_ms = ?3, error = NULL"
	              " WHERE id = ?",
	              "uuit", c->total, c->done, rp_now_ms(), c->row.id);
	if (rc < 0)
		goto out;
	rc = meta_txn_commit(c->tgt->db, err);
	if (rc < 0)
		goto out;
	in_txn = false;
	for (i = 0; i < p->n; i++) {
		if (!p->dev[i].inplace)
			continue;
		(void)recovery_drv_delete(c->tgt, p->dev[i].undo, NULL);
		(void)recovery_drv_delete(c->tgt, p->dev[i].stage, NULL);
	}
out:
	if (in_txn)
		meta_txn_rollback(c->tgt->db);
	if (rc < 0 && lfd >= 0) {
		/* not committed: live objects written in place go back to the old recovery point */
		for (i = 0; i < p->n; i++)
			if (p->dev[i].inplace)
				sync_rollback_dev(c->tgt, c->row.id, p->dev[i].tgt);
	}
	(void)applying;
	unlock(lfd);
	if (rc == 0)
		rp_log(RP_LOG_VERBOSE,
		       "sync session '%s': target: in-place apply %lld ms (%llu KiB shared from the"
		       " stage), switch + recovery-point clones %lld ms, commit %lld ms",
		       c->row.id, (long long)(t_rp - t_apply), (unsigned long long)(shared >> 10),
		       (long long)(t_txn - t_rp), (long long)(rp_now_ms() - t_txn));
	gc_run(c->tgt, gc, n_gc);
	rp_free(tdev);
	rp_free(rp_obj);
	return rc;
}

/* Source side of a completed session: the new snapshot becomes the base. Idempotent. */
static int sync_finalize_source(struct rp_array *src, const struct sync_row *trow,
                                const struct sync_plan *p, const char *lock_id,
                                struct rp_error *err)
{
	char **gc = NULL;
	size_t n_gc = 0, i;
	bool in_txn = false;
	int lfd = -1, rc;

	rc = lock_group(src, lock_id, &lfd, err);
	if (rc < 0)
		return rc;
	rc = meta_txn_begin(src->db, err);
	if (rc < 0)
		goto out;
	in_txn = true;
	for (i = 0; i < p->n; i++) {
		const struct sync_dev *d = &p->dev[i];
		struct model_device dev;
		struct rp_error e2;

		rp_error_clear(&e2);
		rc = model_device_load(&dev, src, d->src, &e2);
		if (rc == RP_ENOTFOUND)
			continue; /* deleted meanwhile */
		if (rc < 0) {
			rc = rp_error_set(err, rc, "%s", e2.msg);
			goto out;
		}
		rc = meta_run(NULL, src->db, err,
		              "UPDATE snapshots SET kind = 'base' WHERE id = ? AND kind = 'sync'",
		              "t", d->snap);
		if (rc < 0)
			goto out;
		rc = sync_drop_old_bases(src, d->src, d->snap, sync_src_spare_wanted(src), &gc,
		                         &n_gc, err);
		if (rc < 0)
			goto out;
		rp_strlcpy(dev.base_snapshot, d->snap, sizeof(dev.base_snapshot));
		rp_strlcpy(dev.recovery_point, p->rp, sizeof(dev.recovery_point));
		dev.recovery_point_ms = p->rp_ms;
		rc = model_device_store(src, &dev, err);
		if (rc < 0)
			goto out;
	}
	if (trow->group[0]) {
		struct model_group g;

		if (model_group_load(&g, src, trow->group, NULL) == 0) {
			rp_strlcpy(g.recovery_point, p->rp, sizeof(g.recovery_point));
			g.recovery_point_ms = p->rp_ms;
			rc = model_group_store(src, &g, err);
			if (rc < 0)
				goto out;
		}
	}
	rc = meta_run(NULL, src->db, err,
	              "UPDATE sync_sessions SET status = 1, progress = 100, bytes_total = ?,"
	              " bytes_done = ?, finished_ms = ?, heartbeat_ms = ?, error = NULL,"
	              " recovery_point = ?, recovery_point_ms = ?, full = ? WHERE id = ?",
	              "uuiitibt", trow->bytes_total, trow->bytes_done, trow->finished_ms,
	              rp_now_ms(), p->rp, p->rp_ms, (int)trow->full, trow->id);
	if (rc < 0)
		goto out;
	rc = meta_txn_commit(src->db, err);
	if (rc < 0)
		goto out;
	in_txn = false;
out:
	if (in_txn)
		meta_txn_rollback(src->db);
	unlock(lfd);
	gc_run(src, gc, n_gc);
	return rc;
}

/*
 * Deletes the work objects of session @sid for target device @tgt_dev: stage, recovery-point
 * copy and undo object. Callers roll an in-place apply back first (the undo object is needed).
 */
static void sync_drop_work_objs(struct rp_array *tgt, const char *sid, const char *tgt_dev,
                                int64_t rp_ms)
{
	static const char *const kinds[] = { "stage", "rpcopy", "undo" };
	char obj[ARRAY_OBJ_MAX], rpid[RP_ID_MAX];
	size_t k;

	for (k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
		(void)snprintf(obj, sizeof(obj), "%s-%s-%s", kinds[k], sid, tgt_dev);
		(void)recovery_drv_delete(tgt, obj, NULL);
	}
	/* the recovery point's object, made before its row: gone unless a row names it */
	(void)snprintf(rpid, sizeof(rpid), "rp-%s-%lld", tgt_dev, (long long)rp_ms);
	model_snapshot_obj(obj, rpid);
	recovery_obj_gc(tgt, obj);
}

/* After a completed session: work objects a dead worker left on the target. */
static void sync_drop_leftovers(struct rp_array *tgt, const char *sid, const struct sync_plan *p)
{
	size_t i;

	for (i = 0; i < p->n; i++)
		sync_drop_work_objs(tgt, sid, p->dev[i].tgt, p->rp_ms);
}

/* Deletes source snapshot @id only while it is still an in-flight ("sync") snapshot. */
static void sync_drop_snap_if_inflight(struct rp_array *src, const char *id)
{
	struct model_snapshot s;

	if (model_snapshot_load(&s, src, id, NULL) == 0 && strcmp(s.kind, RECOVERY_KIND_SYNC) == 0)
		(void)recovery_snapshot_delete(src, id, NULL);
}

/* A session that cannot finish: mark it failed on both sides and remove what it made. */
static void sync_fail(struct sync_ctx *c, const char *why)
{
	size_t i;
	int lfd = -1;

	/* a restarted worker may fail before its finish: undo what an earlier one applied */
	if (lock_group(c->tgt, c->lock_tgt, &lfd, NULL) == 0) {
		for (i = 0; i < c->plan.n; i++)
			sync_rollback_dev(c->tgt, c->row.id, c->plan.dev[i].tgt);
	}
	sync_mark_failed(c->tgt, c->row.id, why);
	unlock(lfd);
	sync_mark_failed(c->src, c->row.id, why);
	for (i = 0; i < c->plan.n; i++) {
		sync_drop_work_objs(c->tgt, c->row.id, c->plan.dev[i].tgt, c->plan.rp_ms);
		sync_drop_snap_if_inflight(c->src, c->plan.dev[i].snap);
	}
	rp_log(RP_LOG_ERROR, "sync session '%s' failed: %s", c->row.id, why);
}

static void sync_lock_ids(struct sync_ctx *c, const struct sync_row *srow)
{
	if (c->row.group[0]) {
		rp_strlcpy(c->lock_src, c->row.group, sizeof(c->lock_src));
		rp_strlcpy(c->lock_tgt, c->row.group, sizeof(c->lock_tgt));
	} else {
		rp_strlcpy(c->lock_src, srow->device, sizeof(c->lock_src));
		rp_strlcpy(c->lock_tgt, c->row.device, sizeof(c->lock_tgt));
	}
}

int sync_session_run(struct rp_array *src, struct rp_array *tgt, const char *id,
                     struct rp_error *err)
{
	struct sync_ctx c;
	struct sync_row srow;
	struct rp_error e;
	const char *thr;
	bool have_srow = false;
	int64_t t0, t1, t2, t3;
	int rc;

	memset(&c, 0, sizeof(c));
	memset(&srow, 0, sizeof(srow));
	rp_error_clear(&e);
	c.src = src;
	c.tgt = tgt;
	thr = getenv(SYNC_ENV_THROTTLE);
	if (thr && *thr) {
		char *end;
		unsigned long v = strtoul(thr, &end, 10);

		if (*end == '\0' && v < 60000)
			c.throttle_ms = (unsigned)v;
	}
	rc = sync_row_load(&c.row, tgt, id, err);
	if (rc < 0)
		return rc;
	rc = sync_row_load(&srow, src, id, err);
	if (rc < 0)
		goto out;
	have_srow = true;
	sync_lock_ids(&c, &srow);

	if (c.row.status == RP_SYNC_COMPLETE) {
		/* the target finished; make sure the source side did too */
		if (srow.status == RP_SYNC_IN_PROGRESS && c.row.plan) {
			rc = sync_plan_parse(&c.plan, c.row.plan, err);
			if (rc == 0)
				rc = sync_finalize_source(src, &c.row, &c.plan, c.lock_src, err);
			if (rc == 0)
				sync_drop_leftovers(tgt, id, &c.plan);
		}
		goto out;
	}
	if (c.row.status != RP_SYNC_IN_PROGRESS)
		goto out;

	t0 = rp_now_ms();
	if (c.row.plan) {
		rc = sync_plan_parse(&c.plan, c.row.plan, &e);
	} else {
		rc = sync_make_plan(&c, &e);
	}
	t1 = rp_now_ms();
	if (rc == 0)
		rc = sync_collect(&c, &e);
	t2 = rp_now_ms();
	if (rc == 0)
		rc = sync_move(&c, &e);
	t3 = rp_now_ms();
	if (rc == 0)
		rc = sync_finish_target(&c, &e);
	rp_log(RP_LOG_VERBOSE,
	       "sync session '%s': plan %lld ms, extents %lld ms, move %lld ms, apply %lld ms", id,
	       (long long)(t1 - t0), (long long)(t2 - t1), (long long)(t3 - t2),
	       (long long)(rp_now_ms() - t3));
	if (rc < 0) {
		sync_fail(&c, e.msg[0] ? e.msg : rp_code_name(rc));
		(void)rp_error_set(err, rc, "%s", e.msg);
		goto out;
	}
	/* the target row is complete now: reload it for the totals */
	sync_row_dispose(&c.row);
	rc = sync_row_load(&c.row, tgt, id, err);
	if (rc < 0)
		goto out;
	t3 = rp_now_ms();
	rc = sync_finalize_source(src, &c.row, &c.plan, c.lock_src, err);
	rp_log(RP_LOG_VERBOSE, "sync session '%s': source finish %lld ms", id,
	       (long long)(rp_now_ms() - t3));
	if (rc == 0)
		rp_log(RP_LOG_INFO,
		       "sync session '%s' complete: %" PRIu64 " bytes moved, recovery point '%s'",
		       id, c.done, c.plan.rp);
out:
	sync_plan_dispose(&c.plan);
	sync_row_dispose(&c.row);
	if (have_srow)
		sync_row_dispose(&srow);
	return rc;
}

int sync_abort_incoming(struct rp_array *a, const char *group, const char *device, const char *why,
                        struct rp_error *err)
{
	struct sync_row r;
	struct sync_plan p;
	size_t i;
	int rc;

	for (;;) {
		rc = sync_row_latest(&r, a, group, device, true, err);
		if (rc == RP_ENOTFOUND)
			return 0;
		if (rc < 0)
			return rc;
		if (strcmp(r.target_array, a->id) != 0) {
			sync_row_dispose(&r);
			return 0; /* outgoing, not ours to stop */
		}
		/* the caller (failover) holds the lock: an in-place apply cannot be running */
		sync_rollback_plan(a, r.id, r.plan);
		rc = meta_run(NULL, a->db, err,
		              "UPDATE sync_sessions SET status = 2, error = ?, finished_ms = ?,"
		              " heartbeat_ms = ?2 WHERE id = ? AND status = 0",
		              "tit", why, rp_now_ms(), r.id);
		if (rc < 0) {
			sync_row_dispose(&r);
			return rc;
		}
		if (r.plan && sync_plan_parse(&p, r.plan, NULL) == 0) {
			for (i = 0; i < p.n; i++)
				sync_drop_work_objs(a, r.id, p.dev[i].tgt, p.rp_ms);
			sync_plan_dispose(&p);
		}
		rp_log(RP_LOG_WARNING, "sync session '%s' aborted: %s", r.id, why);
		sync_row_dispose(&r);
	}
}

/* ------------------------------------------------------------------------------------------ */
/* The detached worker                                                                         */

static void sync_worker_main(void)
{
	const char *sid = getenv(SYNC_ENV_SESSION), *su = getenv(SYNC_ENV_SOURCE),
	           *tu = getenv(SYNC_ENV_TARGET);
	char id[RP_ID_MAX], suri[RP_URI_MAX], turi[RP_URI_MAX];
	struct rp_array *src = NULL, *tgt = NULL;
	struct rp_error err;
	int rc = 1;

	rp_error_clear(&err);
	if (!sid || !su || !tu || rp_strlcpy(id, sid, sizeof(id)) < 0 ||
	    rp_strlcpy(suri, su, sizeof(suri)) < 0 || rp_strlcpy(turi, tu, sizeof(turi)) < 0)
		_exit(2);
	(void)unsetenv(SYNC_ENV_SESSION);
	(void)unsetenv(SYNC_ENV_SOURCE);
	(void)unsetenv(SYNC_ENV_TARGET);
	/* no front end here: warnings (e.g. a group snapshot whose writers could not be paused,
	 * with the device and why) go to syslog instead of nowhere */
	openlog("replun-sync", LOG_PID, LOG_DAEMON);
	rp_log_set_sink(rp_log_sink_syslog, RP_LOG_WARNING, NULL);
	if (rp_array_open(&tgt, turi, NULL, &err) < 0)
		goto out;
	if (rp_array_open(&src, suri, NULL, &err) < 0) {
		sync_mark_failed(tgt, id, err.msg);
		goto out;
	}
	sync_record_worker(tgt, id, getpid());
	sync_record_worker(src, id, getpid());
	rc = sync_session_run(src, tgt, id, &err) < 0 ? 1 : 0;
out:
	rp_array_close(src);
	rp_array_close(tgt);
	_exit(rc);
}

/* Any program linking libreplun becomes the worker when started with SYNC_ENV_SESSION. */
__attribute__((constructor)) static void sync_worker_ctor(void)
{
	if (getenv(SYNC_ENV_SESSION))
		sync_worker_main();
}

/*
 * Starts a detached worker for session @id: fork, setsid, fork again (so the worker is not our
 * child and survives us), close every inherited descriptor, exec a fresh image (no SQLite or
 * driver state crosses the fork). The grandchild's pid comes back through a pipe and is
 * recorded on both rows before we return.
 */
static char *env_entry(const char *key, const char *value)
{
	size_t len = strlen(key) + strlen(value) + 2;
	char *s = rp_malloc(len);

	if (s)
		(void)snprintf(s, len, "%s=%s", key, value);
	return s;
}

static bool env_is_ours(const char *entry)
{
	static const char *const keys[] = { SYNC_ENV_SESSION "=", SYNC_ENV_SOURCE "=",
		                            SYNC_ENV_TARGET "=" };
	size_t i;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (strncmp(entry, keys[i], strlen(keys[i])) == 0)
			return true;
	return false;
}

static int sync_spawn(struct rp_array *src, struct rp_array *tgt, const char *id,
                      struct rp_error *err)
{
	char *const argv[] = { (char *)"replun-sync-worker", NULL };
	char *mine[3] = { NULL, NULL, NULL }, **envp = NULL, exe[PATH_MAX];
	const char *exe_env = getenv(SYNC_ENV_EXE);
	int pfd[2] = { -1, -1 }, status, rc = 0;
	size_t n_env = 0, k = 0, i;
	pid_t child, gpid = -1;
	ssize_t n;

	/* Everything the children need is prepared here: after fork() they only make
	 * async-signal-safe calls (the host process may have other threads). */
	if (rp_strlcpy(exe, exe_env && *exe_env ? exe_env : "/proc/self/exe", sizeof(exe)) < 0)
		return rp_error_set(err, RP_EINVAL, "%s is too long", SYNC_ENV_EXE);
	mine[0] = env_entry(SYNC_ENV_SESSION, id);
	mine[1] = env_entry(SYNC_ENV_SOURCE, src->uri);
	mine[2] = env_entry(SYNC_ENV_TARGET, tgt->uri);
	while (environ && environ[n_env])
		n_env++;
	envp = rp_calloc(n_env + 4, sizeof(char *));
	if (!mine[0] || !mine[1] || !mine[2] || !envp) {
		rc = rp_error_set(err, RP_ERROR, "out of memory");
		goto out;
	}
	for (i = 0; i < n_env; i++)
		if (!env_is_ours(environ[i]))
			envp[k++] = environ[i];
	for (i = 0; i < 3; i++)
		envp[k++] = mine[i];
	envp[k] = NULL;

	if (pipe2(pfd, O_CLOEXEC) < 0) {
		rc = rp_error_set_os(err, RP_ERROR, errno, "pipe");
		goto out;
	}
	child = fork();
	if (child < 0) {
		rc = rp_error_set_os(err, RP_ERROR, errno, "fork");
		(void)close(pfd[0]);
		(void)close(pfd[1]);
		goto out;
	}
	if (child == 0) {
		pid_t g;

		(void)setsid();
		g = fork();
		if (g == 0) {
			int fd = open("/dev/null", O_RDWR);

			if (fd >= 0) {
				(void)dup2(fd, 0);
				(void)dup2(fd, 1);
				(void)dup2(fd, 2);
			}
			(void)close_range(3, ~0U, 0);
			(void)execve(exe, argv, envp);
			_exit(127);
		}
		if (g > 0)
			(void)!write(pfd[1], &g, sizeof(g));
		_exit(g > 0 ? 0 : 1);
	}
	(void)close(pfd[1]);
	n = read(pfd[0], &gpid, sizeof(gpid));
	(void)close(pfd[0]);
	while (waitpid(child, &status, 0) < 0 && errno == EINTR)
		;
	if (n != (ssize_t)sizeof(gpid) || gpid <= 0) {
		rc = rp_error_set(err, RP_ERROR, "could not start the sync worker");
		goto out;
	}
	sync_record_worker(tgt, id, gpid);
	sync_record_worker(src, id, gpid);
out:
	for (i = 0; i < 3; i++)
		rp_free(mine[i]);
	rp_free(envp);
	return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Resume                                                                                      */

/*
 * Claims a dead session (compare-and-swap on its worker fields, so only one caller restarts it)
 * and starts a new worker, or marks it failed after too many deaths.
 */
static int sync_resume(struct rp_array *src, struct rp_array *tgt, const struct sync_row *r,
                       struct rp_error *err)
{
	unsigned long resumes = 0;
	char note[RP_MSG_MAX];
	int changes = 0, rc;

	if (strncmp(r->error, "resumed ", 8) == 0)
		resumes = strtoul(r->error + 8, NULL, 10);
	if (resumes >= SYNC_MAX_RESUMES) {
		struct sync_plan p;
		size_t i;

		int lfd = -1;

		if (lock_group(tgt, r->group[0] ? r->group : r->device, &lfd, NULL) == 0)
			sync_rollback_plan(tgt, r->id, r->plan);
		sync_mark_failed(tgt, r->id, "the sync worker died too many times");
		unlock(lfd);
		sync_mark_failed(src, r->id, "the sync worker died too many times");
		/* what the dead workers left: staging objects and in-flight snapshots */
		if (r->plan && sync_plan_parse(&p, r->plan, NULL) == 0) {
			for (i = 0; i < p.n; i++) {
				sync_drop_work_objs(tgt, r->id, p.dev[i].tgt, p.rp_ms);
				sync_drop_snap_if_inflight(src, p.dev[i].snap);
			}
			sync_plan_dispose(&p);
		}
		return 0;
	}
	(void)snprintf(note, sizeof(note), "resumed %lu", resumes + 1);
	rc = meta_run(&changes, tgt->db, err,
	              "UPDATE sync_sessions SET worker_pid = NULL, worker_start = NULL,"
	              " heartbeat_ms = ?, error = ? WHERE id = ? AND status = 0"
	              " AND IFNULL(worker_pid, 0) = ? AND IFNULL(worker_start, '') = ?",
	              "ittit", rp_now_ms(), note, r->id, r->worker_pid, r->worker_start);
	if (rc < 0)
		return rc;
	if (changes == 0)
		return 0; /* someone else resumed it */
	rp_log(RP_LOG_WARNING, "sync session '%s': worker %lld died, restarting it", r->id,
	       (long long)r->worker_pid);
	return sync_spawn(src, tgt, r->id, err);
}

/* ------------------------------------------------------------------------------------------ */
/* Public: status                                                                              */

const char *rp_sync_status_name(enum rp_sync_status s)
{
	switch (s) {
	case RP_SYNC_IN_PROGRESS:
		return "inProgress";
	case RP_SYNC_COMPLETE:
		return "complete";
	case RP_SYNC_FAILED:
		return "failed";
	}
	return "unknown";
}

static void sync_to_public(struct rp_sync_session *out, const struct sync_row *r)
{
	memset(out, 0, sizeof(*out));
	rp_strlcpy(out->id, r->id, sizeof(out->id));
	rp_strlcpy(out->group, r->group, sizeof(out->group));
	rp_strlcpy(out->device, r->device, sizeof(out->device));
	rp_strlcpy(out->source_array, r->source_array, sizeof(out->source_array));
	rp_strlcpy(out->target_array, r->target_array, sizeof(out->target_array));
	out->status = (enum rp_sync_status)r->status;
	out->progress = r->status == RP_SYNC_COMPLETE ? 100 : r->progress;
	out->bytes_total = r->bytes_total;
	out->bytes_transferred = r->bytes_done;
	out->started_ms = r->started_ms;
	out->finished_ms = r->finished_ms;
	rp_strlcpy(out->recovery_point, r->recovery_point, sizeof(out->recovery_point));
	out->recovery_point_ms = r->recovery_point_ms;
	out->full = r->full;
	if (r->status == RP_SYNC_FAILED)
		rp_strlcpy(out->error, r->error, sizeof(out->error));
	if (r->warning_code) {
		out->warning_code = r->warning_code;
		rp_strlcpy(out->warning, r->warning, sizeof(out->warning));
	}
	if (r->status == RP_SYNC_COMPLETE) {
		out->eta_seconds = 0;
	} else if (r->status == RP_SYNC_IN_PROGRESS && r->bytes_done > 0 &&
	           r->heartbeat_ms > r->started_ms && r->bytes_total >= r->bytes_done) {
		double rate = (double)r->bytes_done / (double)(r->heartbeat_ms - r->started_ms);

		out->eta_seconds =
		        (int64_t)((double)(r->bytes_total - r->bytes_done) / rate / 1000.0) + 1;
	} else {
		out->eta_seconds = -1;
	}
}

/*
 * The authoritative (target) row of local session @lr and handles of both arrays; opens the
 * peer when needed (*peer then owned by the caller).
 */
static int sync_sides(struct rp_array **src, struct rp_array **tgt, struct rp_array **peer,
                      struct rp_array *a, const struct sync_row *lr, struct rp_error *err)
{
	const char *other;
	int rc;

	*peer = NULL;
	other = strcmp(lr->target_array, a->id) == 0 ? lr->source_array : lr->target_array;
	rc = recovery_open_peer(peer, a, other, err);
	if (rc < 0)
		return rc;
	if (strcmp(lr->target_array, a->id) == 0) {
		*tgt = a;
		*src = *peer;
	} else {
		*src = a;
		*tgt = *peer;
	}
	return 0;
}

/*
 * Loads session @id as seen from @a, resuming a dead worker and finishing a half-done source.
 * "complete" is reported only once both arrays recorded the new base, so a caller that goes on
 * (prepareFailover, reverse, the next sync) always finds the same base on both sides.
 */
static int sync_get_row(struct sync_row *out, struct rp_array *a, const char *id,
                        struct rp_error *err)
{
	struct rp_array *src = NULL, *tgt = NULL, *peer = NULL;
	struct sync_row lr, tr, sr;
	struct rp_error pe;
	bool have_sr = false;
	int rc;

	memset(&tr, 0, sizeof(tr));
	memset(&sr, 0, sizeof(sr));
	rc = sync_row_load(&lr, a, id, err);
	if (rc < 0)
		return rc;
	rp_error_clear(&pe);
	if (sync_sides(&src, &tgt, &peer, a, &lr, &pe) < 0) {
		/* peer unreachable: answer from our own row */
		*out = lr;
		return 0;
	}
	rc = sync_row_load(&tr, tgt, id, err);
	if (rc == 0)
		rc = sync_row_load(&sr, src, id, err);
	if (rc < 0)
		goto out;
	have_sr = true;
	if (tr.status == RP_SYNC_IN_PROGRESS && !sync_worker_alive(&tr)) {
		rc = sync_resume(src, tgt, &tr, err);
		if (rc < 0)
			goto out;
	} else if (tr.status == RP_SYNC_COMPLETE && sr.status == RP_SYNC_IN_PROGRESS &&
	           !sync_worker_alive(&sr)) {
		/* the worker died between the two commits: finish the source side here */
		(void)sync_session_run(src, tgt, id, NULL);
	} else if (tr.status == RP_SYNC_FAILED && sr.status == RP_SYNC_IN_PROGRESS) {
		sync_mark_failed(src, id, tr.error);
	}
	sync_row_dispose(&tr);
	sync_row_dispose(&sr);
	have_sr = false;
	rc = sync_row_load(&tr, tgt, id, err);
	if (rc == 0)
		rc = sync_row_load(&sr, src, id, err);
	if (rc < 0)
		goto out;
	have_sr = true;
	if (tr.status == RP_SYNC_COMPLETE && sr.status == RP_SYNC_IN_PROGRESS) {
		/* data applied, the source is recording its new base right now */
		tr.status = RP_SYNC_IN_PROGRESS;
		tr.progress = 99;
		tr.finished_ms = 0;
	}
	*out = tr;
	memset(&tr, 0, sizeof(tr));
	/* report the local device id */
	rp_strlcpy(out->device, lr.device, sizeof(out->device));
out:
	sync_row_dispose(&lr);
	sync_row_dispose(&tr);
	if (have_sr)
		sync_row_dispose(&sr);
	rp_array_close(peer);
	return rc;
}

int rp_sync_get(struct rp_sync_session *out, struct rp_array *a, const char *session_id,
                struct rp_error *err)
{
	struct sync_row r;
	int rc;

	if (!out || !a || !session_id)
		return rp_error_set(err, RP_EINVAL, "invalid argument");
	rc = rp_id_check(session_id, "sync session id", err);
	if (rc < 0)
		return rc;
	rc = sync_get_row(&r, a, session_id, err);
	if (rc < 0)
		return rc;
	sync_to_public(out, &r);
	sync_row_dispose(&r);
	return 0;
}

int rp_sync_latest(struct rp_sync_session *out, struct rp_array *a, const char *group,
                   const char *device, struct rp_error *err)
{
	struct model_device d;
	struct sync_row r;
	char id[RP_ID_MAX];
	int rc;

	if (!out || !a || ((!group || !group[0]) && (!device || !device[0])))
		return rp_error_set(err, RP_EINVAL, "a group or a device is needed");
	if (device && device[0] && (!group || !group[0])) {
		rc = model_device_find(&d, a, device, err);
		if (rc < 0)
			return rc;
		device = d.id;
		if (d.group[0])
			group = d.group; /* a grouped device syncs with its group */
	}
	rc = sync_row_latest(&r, a, group, device, false, err);
	if (rc == RP_ENOTFOUND)
		return rp_error_set(err, RP_ENOTFOUND, "'%s' was never synced",
		                    group && group[0] ? group : device);
	if (rc < 0)
		return rc;
	rp_strlcpy(id, r.id, sizeof(id));
	sync_row_dispose(&r);
	return rp_sync_get(out, a, id, err);
}

int rp_sync_wait(struct rp_sync_session *out, struct rp_array *a, const char *session_id,
                 int64_t timeout_ms, rp_progress_fn cb, void *payload, struct rp_error *err)
{
	struct rp_sync_session s;
	int64_t deadline = timeout_ms > 0 ? rp_now_ms() + timeout_ms : 0;
	struct timespec nap = { 0, 100 * 1000 * 1000 };
	int rc;

	for (;;) {
		rc = rp_sync_get(&s, a, session_id, err);
		if (rc < 0)
			return rc;
		if (cb)
			cb(&s, payload);
		if (s.status != RP_SYNC_IN_PROGRESS)
			break;
		if (deadline && rp_now_ms() >= deadline) {
			if (out)
				*out = s;
			return rp_error_set(err, RP_ETIMEOUT, "sync session '%s' still running",
			                    session_id);
		}
		(void)nanosleep(&nap, NULL);
	}
	if (out)
		*out = s;
	return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Public: start                                                                               */

struct sync_peers {
	struct rp_array *h[RP_MAX_PEERS];
	size_t n;
};

static int peers_get(struct rp_array **out, struct sync_peers *ps, struct rp_array *a,
                     const char *id, struct rp_error *err)
{
	size_t i;
	int rc;

	for (i = 0; i < ps->n; i++)
		if (!id || !id[0] || strcmp(ps->h[i]->id, id) == 0) {
			*out = ps->h[i];
			return 0;
		}
	if (ps->n == RP_MAX_PEERS)
		return rp_error_set(err, RP_ERROR, "too many peers");
	rc = recovery_open_peer(&ps->h[ps->n], a, id && id[0] ? id : NULL, err);
	if (rc < 0)
		return rc;
	*out = ps->h[ps->n++];
	return 0;
}

static void peers_close(struct sync_peers *ps)
{
	size_t i;

	for (i = 0; i < ps->n; i++)
		rp_array_close(ps->h[i]);
	ps->n = 0;
}

/*
 * Starts (or reports the running) session for one group (@gid) or one standalone device
 * (@did, local id) of @a. Fills @it.
 */
static int sync_start_one(struct rp_item *it, struct rp_array *a, struct sync_peers *ps,
                          const char *gid, const char *did, const struct rp_sync_opts *opts,
                          const char *want_peer, struct rp_error *err)
{
	struct rp_array *src = NULL, *tgt = NULL, *peer = NULL;
	char why[RP_MSG_MAX];
	struct sync_row r, run;
	char sdev[RP_ID_MAX] = "", tdev[RP_ID_MAX] = "";
	const char *lock_id;
	int lfd = -1, rc;
	bool local_is_src;
	size_t n_members = 1;

	memset(&r, 0, sizeof(r));
	memset(&run, 0, sizeof(run));
	if (gid) {
		struct model_group g;

		rc = model_group_load(&g, a, gid, err);
		if (rc < 0)
			return rc;
		if (g.role == RP_GROUP_SOURCE || g.role == RP_GROUP_DEMOTED_SOURCE)
			local_is_src = true;
		else if (g.role == RP_GROUP_TARGET)
			local_is_src = false;
		else
			return rp_error_set(err, RP_ESTATE, "group '%s' is %s: nothing to sync",
			                    gid, rp_group_role_name(g.role));
		rc = peers_get(&peer, ps, a, g.peer_array[0] ? g.peer_array : want_peer, err);
		if (rc < 0)
			return rc;
		(void)model_group_count_devices(&n_members, a, gid, NULL);
	} else {
		struct model_device d;

		rc = model_device_load(&d, a, did, err);
		if (rc < 0)
			return rc;
		if (d.state == RP_DEV_SOURCE || d.state == RP_DEV_DEMOTED_SOURCE)
			local_is_src = true;
		else if (d.state == RP_DEV_TARGET)
			local_is_src = false;
		else
			return rp_error_set(err, RP_ESTATE, "device '%s' is %s: nothing to sync",
			                    did, rp_dev_state_name(d.state));
		if (!d.peer_array[0] || (!d.peer_device[0] && !local_is_src))
			return rp_error_set(err, RP_ESTATE, "device '%s' has no replication peer",
			                    did);
		rc = peers_get(&peer, ps, a, d.peer_array, err);
		if (rc < 0)
			return rc;
		if (local_is_src && !d.peer_device[0]) {
			struct model_device t;

			/* pending target (target_at_sync): this sync makes it, then copies all */
			rc = lock_group(a, d.id, &lfd, err);
			if (rc == 0)
				rc = model_device_load(&d, a, did, err);
			if (rc == 0 && !d.peer_device[0])
				rc = sync_ensure_target_dev(&t, a, peer, &d, err);
			unlock(lfd);
			lfd = -1;
			if (rc < 0)
				return rc;
		}
		if (local_is_src) {
			rp_strlcpy(sdev, d.id, sizeof(sdev));
			rp_strlcpy(tdev, d.peer_device, sizeof(tdev));
		} else {
			struct model_device s;

			rp_strlcpy(tdev, d.id, sizeof(tdev));
			rp_strlcpy(sdev, d.peer_device, sizeof(sdev));
			rc = model_device_load(&s, peer, sdev, err);
			if (rc < 0)
				return rc;
			if (s.state != RP_DEV_SOURCE && s.state != RP_DEV_DEMOTED_SOURCE)
				return rp_error_set(err, RP_ESTATE,
				                    "device '%s' on array '%s' is %s, not a source",
				                    s.id, peer->id, rp_dev_state_name(s.state));
		}
	}
	src = local_is_src ? a : peer;
	tgt = local_is_src ? peer : a;
	if (gid) {
		struct model_group pg;
		struct rp_error e2;

		rp_error_clear(&e2);
		if (model_group_load(&pg, tgt, gid, &e2) == 0 && pg.role != RP_GROUP_TARGET &&
		    pg.role != RP_GROUP_LOCAL)
			return rp_error_set(err, RP_ESTATE, "group '%s' on array '%s' is %s", gid,
			                    tgt->id, rp_group_role_name(pg.role));
		if (!local_is_src) {
			if (model_group_load(&pg, src, gid, err) < 0)
				return err ? err->code : RP_ERROR;
			if (pg.role != RP_GROUP_SOURCE && pg.role != RP_GROUP_DEMOTED_SOURCE)
				return rp_error_set(err, RP_ESTATE,
				                    "group '%s' on array '%s' is %s, not a source",
				                    gid, src->id, rp_group_role_name(pg.role));
		}
	} else {
		struct model_device t;

		rc = model_device_load(&t, tgt, tdev, err);
		if (rc < 0)
			return rc;
		if (t.state != RP_DEV_TARGET)
			return rp_error_set(err, RP_ESTATE,
			                    "device '%s' on array '%s' is %s, not a target", t.id,
			                    tgt->id, rp_dev_state_name(t.state));
	}

	lock_id = gid ? gid : tdev;
	rc = lock_group(tgt, lock_id, &lfd, err);
	if (rc < 0)
		return rc;
	rc = sync_row_latest(&run, tgt, gid, gid ? NULL : tdev, true, err);
	if (rc == 0) {
		/* one is running (or its worker died: restart it) */
		unlock(lfd);
		lfd = -1;
		if (!sync_worker_alive(&run)) {
			rc = sync_resume(src, tgt, &run, err);
			if (rc < 0)
				goto out;
		}
		rp_strlcpy(it->session, run.id, sizeof(it->session));
		workflow_item_warn(it, RP_WARN_SYNC_RUNNING,
		                   "sync session '%s' is already in progress", run.id);
		rc = 0;
		goto out;
	}
	if (rc != RP_ENOTFOUND)
		goto out;

	r.started_ms = rp_now_ms();
	r.heartbeat_ms = r.started_ms;
	recovery_session_id(r.id, r.started_ms);
	rp_strlcpy(r.source_array, src->id, sizeof(r.source_array));
	rp_strlcpy(r.target_array, tgt->id, sizeof(r.target_array));
	if (gid)
		rp_strlcpy(r.group, gid, sizeof(r.group));
	rp_strlcpy(r.device, tdev, sizeof(r.device));
	rc = sync_row_insert(tgt, &r, err);
	if (rc < 0)
		goto out;
	rp_strlcpy(r.device, sdev, sizeof(r.device));
	rc = sync_row_insert(src, &r, err);
	if (rc < 0) {
		sync_mark_failed(tgt, r.id, err ? err->msg : "source unavailable");
		goto out;
	}
	unlock(lfd);
	lfd = -1;
	rp_strlcpy(it->session, r.id, sizeof(it->session));
	if (gid && n_members > 1 && fence_group_unfenced(why, sizeof(why), src, gid) > 0)
		workflow_item_warn(it, RP_WARN_NO_FREEZE,
		                   "group '%s' is snapshotted without pausing all its writers: %s",
		                   gid, why);
	rp_log(RP_LOG_INFO, "sync session '%s' started: %s '%s' from '%s' to '%s'", r.id,
	       gid ? "group" : "device", gid ? gid : sdev, src->id, tgt->id);
	if (opts && opts->foreground) {
		struct rp_error we;

		rp_error_clear(&we);
		sync_record_worker(tgt, r.id, getpid());
		sync_record_worker(src, r.id, getpid());
		rc = sync_session_run(src, tgt, r.id, &we);
		if (rc < 0) {
			workflow_item_fail(it, &we, rc);
			rc = 0;
		}
	} else {
		rc = sync_spawn(src, tgt, r.id, err);
		if (rc < 0)
			sync_mark_failed(tgt, r.id, err ? err->msg : "could not start the worker");
	}
out:
	unlock(lfd);
	sync_row_dispose(&run);
	return rc;
}

/*
 * Fills the recovery point and session fields of an item from its session, and its warning
 * when the session already recorded one (a foreground run, a session found running) that the
 * item does not carry yet.
 */
static void sync_item_fill(struct rp_item *it, struct rp_array *a)
{
	struct sync_row r;
	size_t i;
	bool have = false;

	if (!it->session[0] || sync_row_load(&r, a, it->session, NULL) < 0)
		return;
	for (i = 0; i < it->n_warnings && i < RP_MAX_WARNINGS; i++)
		if (it->warnings[i].code == r.warning_code)
			have = true;
	if (r.warning_code && !have)
		workflow_item_warn(it, r.warning_code, "%s", r.warning);
	rp_strlcpy(it->recovery_point, r.recovery_point, sizeof(it->recovery_point));
	it->recovery_point_ms = r.recovery_point_ms;
	rp_strlcpy(it->state, rp_sync_status_name((enum rp_sync_status)r.status),
	           sizeof(it->state));
	sync_row_dispose(&r);
}

int rp_sync_start(struct rp_result **out, struct rp_array *a, const struct rp_request *req,
                  const struct rp_sync_opts *opts, struct rp_error *err)
{
	struct rp_result *res = NULL;
	struct sync_peers ps;
	size_t cap = 0, i, j;
	int rc = 0;

	if (!out || !a || !req)
		return rp_error_set(err, RP_EINVAL, "invalid argument");
	memset(&ps, 0, sizeof(ps));
	res = rp_calloc(1, sizeof(*res));
	if (!res)
		return rp_error_set(err, RP_ERROR, "out of memory");
	for (i = 0; i < req->n_groups; i++) {
		struct model_device *mem = NULL;
		struct rp_item *git;
		struct rp_error e;
		size_t n = 0, gidx, matched = 0;

		if (workflow_request_dup_group(req, i))
			continue; /* answered once (workflow.c) */
		if (workflow_result_add(res, &cap, &git) < 0)
			goto oom;
		gidx = res->n - 1;
		git->is_group = true;
		rp_strlcpy(git->id, req->groups[i], sizeof(git->id));
		rp_error_clear(&e);
		rc = rp_id_check(req->groups[i], "group id", &e);
		if (rc == 0)
			rc = model_device_list(&mem, &n, a, req->groups[i], &e);
		if (rc < 0) {
			workflow_item_fail(git, &e, rc);
			continue;
		}
		for (j = 0; j < n; j++)
			if (workflow_name_matches(req->name_filter, mem[j].name))
				matched++;
		if (req->name_filter && req->name_filter[0] && matched == 0) {
			workflow_item_warn(git, RP_WARN_FILTERED,
			                   "no device of group '%s' matches '%s'", req->groups[i],
			                   req->name_filter);
			rp_free(mem);
			continue;
		}
		rc = sync_start_one(git, a, &ps, req->groups[i], NULL, opts, req->peer, &e);
		if (rc < 0)
			workflow_item_fail(git, &e, rc);
		sync_item_fill(git, a);
		for (j = 0; j < n; j++) {
			struct rp_item *dit;

			if (!workflow_name_matches(req->name_filter, mem[j].name))
				continue;
			if (workflow_result_add(res, &cap, &dit) < 0) {
				rp_free(mem);
				goto oom;
			}
			git = &res->items[gidx];
			rp_strlcpy(dit->id, mem[j].id, sizeof(dit->id));
			rp_strlcpy(dit->group, req->groups[i], sizeof(dit->group));
			rp_strlcpy(dit->name, mem[j].name, sizeof(dit->name));
			rp_strlcpy(dit->wwn, mem[j].wwn, sizeof(dit->wwn));
			rp_strlcpy(dit->session, git->session, sizeof(dit->session));
			rp_strlcpy(dit->recovery_point, git->recovery_point,
			           sizeof(dit->recovery_point));
			dit->recovery_point_ms = git->recovery_point_ms;
			dit->code = git->code;
			rp_strlcpy(dit->msg, git->msg, sizeof(dit->msg));
		}
		rp_free(mem);
	}
	for (i = 0; i < req->n_devices; i++) {
		struct model_device d;
		struct rp_item *dit;
		struct rp_error e;

		if (workflow_request_dup_device(a, req, i))
			continue; /* answered once, inside its group when that is listed
			             (workflow.c) */
		if (workflow_result_add(res, &cap, &dit) < 0)
			goto oom;
		rp_strlcpy(dit->id, req->devices[i], sizeof(dit->id));
		rp_error_clear(&e);
		rc = model_device_find(&d, a, req->devices[i], &e);
		if (rc < 0) {
			workflow_item_fail(dit, &e, rc);
			continue;
		}
		rp_strlcpy(dit->name, d.name, sizeof(dit->name));
		rp_strlcpy(dit->wwn, d.wwn, sizeof(dit->wwn));
		if (!workflow_name_matches(req->name_filter, d.name)) {
			workflow_item_warn(dit, RP_WARN_FILTERED, "device '%s' does not match '%s'",
			                   d.id, req->name_filter);
			continue;
		}
		if (d.group[0]) {
			/* a member of a consistency group syncs with its whole group */
			rp_strlcpy(dit->group, d.group, sizeof(dit->group));
			rc = sync_start_one(dit, a, &ps, d.group, NULL, opts, req->peer, &e);
		} else {
			rc = sync_start_one(dit, a, &ps, NULL, d.id, opts, req->peer, &e);
		}
		if (rc < 0)
			workflow_item_fail(dit, &e, rc);
		sync_item_fill(dit, a);
	}
	peers_close(&ps);
	*out = res;
	return 0;
oom:
	peers_close(&ps);
	rp_result_free(res);
	return rp_error_set(err, RP_ERROR, "out of memory");
}

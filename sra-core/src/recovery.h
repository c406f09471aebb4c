/* SPDX-License-Identifier: MIT */
/*
 * recovery.h - snapshot bookkeeping of the replication half of the engine: taking, finding and
 * deleting snapshots (rows + driver objects), rolling a device back to a snapshot, ids, and the
 * small driver wrappers that sync.c, workflow.c and verify.c share. See docs/internals/sync.md.
 */
#ifndef REPLUN_RECOVERY_H
#define REPLUN_RECOVERY_H

#include <stdbool.h>
#include <stdint.h>

#include "engine.h"
#include "model.h"
#include "replun/workflow.h"

/* Snapshot kinds (snapshots.kind). "sync" marks a source snapshot of a sync in flight: it
 * becomes "base" when the sync completes and is deleted when the sync fails. */
#define RECOVERY_KIND_BASE "base"
#define RECOVERY_KIND_RP "rp"
#define RECOVERY_KIND_TEST "test"
#define RECOVERY_KIND_PREFAILOVER "prefailover"
#define RECOVERY_KIND_REVERT "revert"
#define RECOVERY_KIND_TAIL "tail"
#define RECOVERY_KIND_SYNC "sync"

/* "rp-<ms>-<4 hex>" (same id on both arrays of a pair). */
void recovery_point_id(char out[RP_ID_MAX], int64_t ms);
/* "sync-<ms>-<4 hex>". */
void recovery_session_id(char out[RP_ID_MAX], int64_t ms);
/* Four random hex digits. */
void recovery_rand_hex(char out[5]);

/*
 * Takes a snapshot of device @d's live data: clones d->obj into "snap-<id>" with
 * id "<kind>-<device id>-<ms>" (made unique), and inserts the row (in the caller's
 * transaction if one is open). @rp/@rp_ms may be NULL/0. Writes the row to @out (may be NULL).
 * If the row insert fails the object is deleted again.
 */
int recovery_snapshot_take(struct model_snapshot *out, struct rp_array *a,
                           const struct model_device *d, const char *kind, const char *rp,
                           int64_t rp_ms, struct rp_error *err);
/* Same, but clones object @src_obj (e.g. another snapshot) instead of the live data. */
int recovery_snapshot_take_from(struct model_snapshot *out, struct rp_array *a,
                                const struct model_device *d, const char *src_obj, const char *kind,
                                const char *rp, int64_t rp_ms, struct rp_error *err);

/*
 * Deletes snapshot row @id and then its object, unless another row still refers to the same
 * object (a target's base and its newest recovery point share one object). Absent: success.
 * Must not run inside a caller's transaction (the object goes after the commit).
 */
int recovery_snapshot_delete(struct rp_array *a, const char *id, struct rp_error *err);
/* Deletes object @obj if no snapshot row and no device refers to it (after a commit). */
void recovery_obj_gc(struct rp_array *a, const char *obj);

/* Newest snapshot of @device of @kind (NULL = any) with recovery point @rp (NULL = any). */
int recovery_snapshot_find(struct model_snapshot *out, struct rp_array *a, const char *device,
                           const char *kind, const char *rp, struct rp_error *err);

/*
 * Replaces the live data of @d by a copy of object @src_obj: clone into a staging object, then
 * atomic rename over d->obj (readers always see old or new data, never a mix). The staging
 * object is named "stage-<tag>-<device id>"; an "obj_delete" intent names it until the rename,
 * so a crash in between leaves it to the next open's recovery.
 */
int recovery_rollback(struct rp_array *a, const struct model_device *d, const char *src_obj,
                      const char *tag, struct rp_error *err);

/*
 * The two halves of recovery_rollback, for workflows that must prepare every device before
 * changing any: recovery_stage clones @src_obj into "stage-<tag>-<device id>" (written to
 * @stage) and flushes it; recovery_stage_apply renames it over d->obj (atomic). A failed
 * apply deletes the staging object; an unused one is deleted with recovery_drv_delete.
 */
int recovery_stage(char stage[ARRAY_OBJ_MAX], struct rp_array *a, const struct model_device *d,
                   const char *src_obj, const char *tag, struct rp_error *err);
int recovery_stage_apply(struct rp_array *a, const struct model_device *d, const char *stage,
                         struct rp_error *err);

/*
 * Whether object @obj differs from @base (driver changed_extents: any changed range). On
 * reflink arrays rewriting identical data counts as a difference.
 */
int recovery_differs(bool *out, struct rp_array *a, const char *base, const char *obj,
                     struct rp_error *err);

/* Tests only: REPLUN_TEST_CRASH_AT=<point> ends the process there (exit 86), as a crash would. */
void recovery_crash_point(const char *point);

/* Driver wrappers: check the optional slot, set RP_ENOTSUPPORTED with a message. */
int recovery_drv_clone(struct rp_array *a, const char *src, const char *dst, struct rp_error *err);
int recovery_drv_delete(struct rp_array *a, const char *obj, struct rp_error *err);
int recovery_drv_exists(bool *out, struct rp_array *a, const char *obj, struct rp_error *err);
int recovery_drv_set_readonly(struct rp_array *a, const char *obj, bool ro, struct rp_error *err);
int recovery_drv_checksum(char out[40], struct rp_array *a, const char *obj, struct rp_error *err);

/* Opens the peer @peer_id (NULL = first) of @a; thin wrapper kept for one log line. */
int recovery_open_peer(struct rp_array **out, struct rp_array *a, const char *peer_id,
                       struct rp_error *err);

/*
 * Locks group/device ids on two arrays in a fixed order (by array id) so that commands at both
 * sites never deadlock. @b may be NULL. *fa / *fb receive the lock fds (-1 when not taken).
 */
int recovery_lock_pair(struct rp_array *a, const char *id_a, int *fa, struct rp_array *b,
                       const char *id_b, int *fb, struct rp_error *err);

/* ------------------------------------------------------------------------------------------ */
/* Results (workflow.c)                                                                        */

/* Appends a zeroed item to @res (@cap tracks the allocation). RP_ERROR when out of memory. */
int workflow_result_add(struct rp_result *res, size_t *cap, struct rp_item **out);
/* Adds a warning to @it (up to RP_MAX_WARNINGS; more are dropped). */
void workflow_item_warn(struct rp_item *it, int code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
/* Records error @e (or @rc with its generic name) in @it. */
void workflow_item_fail(struct rp_item *it, const struct rp_error *e, int rc);
/*
 * Duplicates in a request, answered once: group @i listed before; device @i listed before (by
 * id or name) or a member of a listed group (answered inside the group's item).
 */
bool workflow_request_dup_group(const struct rp_request *req, size_t i);
bool workflow_request_dup_device(struct rp_array *a, const struct rp_request *req, size_t i);
/* Whether @name passes the request's name filter (prefix; NULL/"" = everything). */
bool workflow_name_matches(const char *filter, const char *name);

#endif

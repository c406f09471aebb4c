/* SPDX-License-Identifier: MIT */
/*
 * model.h - internal rows of the metadata (devices, groups, snapshots, peers, metadata
 * key/values, intents) and their accessors, shared by the model (array/lun/group/space) and
 * the replication side (sync, workflows). Contract: docs/internals/model.md.
 *
 * Transactions: every accessor that writes runs inside the caller's transaction when one is
 * open on a->db (meta_txn_begin), else in its own. Readers never open one.
 */
#ifndef REPLUN_MODEL_H
#define REPLUN_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "array_ops.h"
#include "engine.h"
#include "meta.h"

/* One row of `devices`. Empty strings stand for NULL columns. */
struct model_device {
	char id[RP_ID_MAX];
	int64_t seq;
	char name[RP_NAME_MAX];
	char obj[ARRAY_OBJ_MAX]; /* driver object holding the live data: "lun-<id>" */
	char wwn[RP_WWN_MAX];
	char group[RP_ID_MAX];
	uint64_t size;
	int state; /* enum rp_dev_state */
	bool read_only;
	char peer_array[RP_ID_MAX];
	char peer_device[RP_ID_MAX];
	char snapshot_of[RP_ID_MAX];
	int64_t created_ms;
	char recovery_point[RP_ID_MAX];
	int64_t recovery_point_ms;
	char base_snapshot[RP_ID_MAX]; /* snapshots.id of the last common base with the peer */
};

/* One row of `groups`. */
struct model_group {
	char id[RP_ID_MAX];
	char name[RP_NAME_MAX];
	int role; /* enum rp_group_role */
	char peer_array[RP_ID_MAX];
	uint32_t rpo;
	uint32_t retention;
	char recovery_point[RP_ID_MAX];
	int64_t recovery_point_ms;
	char test_snapshot[RP_ID_MAX];
	int64_t created_ms;
};

/* One row of `snapshots`. kind: "base" | "rp" | "test" | "prefailover" | "revert" | "tail". */
struct model_snapshot {
	char id[RP_ID_MAX];
	char device[RP_ID_MAX];
	char group[RP_ID_MAX];
	char kind[16];
	char obj[ARRAY_OBJ_MAX];
	char wwn[RP_WWN_MAX];
	char recovery_point[RP_ID_MAX];
	int64_t recovery_point_ms;
	int64_t created_ms;
};

/* A metadata key/value (lun_meta or group_meta), both strings owned by the array holding it. */
struct model_kv {
	char *key;
	char *value;
};

enum model_meta_table {
	MODEL_LUN_META = 0,   /* lun_meta, owner = device id */
	MODEL_GROUP_META = 1, /* group_meta, owner = group id */
};

/* Limits of LUN/group metadata (array.h). */
#define MODEL_META_KEY_MAX 127
#define MODEL_META_VALUE_MAX (64 * 1024)

/* ------------------------------------------------------------------------------------------ */
/* Transactions                                                                                */

/*
 * Begins a transaction unless one is already open on a->db; *own tells whether this call
 * opened it. Pair with model_txn_end(a, own, rc, err): commits when own and rc == 0, rolls
 * back when own and rc < 0, and returns the final code.
 */
int model_txn_begin(struct rp_array *a, bool *own, struct rp_error *err);
int model_txn_end(struct rp_array *a, bool own, int rc, struct rp_error *err);

/* ------------------------------------------------------------------------------------------ */
/* Ids, names, WWNs                                                                            */

/* "<array id>-<6 digit seq>" (more digits past 999999). RP_EINVAL if it does not fit. */
int model_device_id(char out[RP_ID_MAX], const char *array_id, int64_t seq, struct rp_error *err);
/* Driver object of a device: "lun-<device id>". */
void model_device_obj(char out[ARRAY_OBJ_MAX], const char *device_id);
/* Driver object of a snapshot: "snap-<snapshot id>". */
void model_snapshot_obj(char out[ARRAY_OBJ_MAX], const char *snapshot_id);
/* "naa.6" + 31 hex digits of XXH128(array id, seq). Stable. */
void wwn_device(char out[RP_WWN_MAX], const char *array_id, int64_t seq);
/* "naa.6" + 31 hex digits of XXH128(array id, snapshot id). Stable. */
void wwn_snapshot(char out[RP_WWN_MAX], const char *array_id, const char *snapshot_id);
/* Checks a user-visible name: 1..255 bytes, no control characters. */
int model_name_check(const char *name, const char *what, struct rp_error *err);

/* ------------------------------------------------------------------------------------------ */
/* Devices                                                                                     */

/* Loads the row of device @id. RP_ENOTFOUND (message set) if absent; RP_EINVAL for bad ids. */
int model_device_load(struct model_device *out, struct rp_array *a, const char *id,
                      struct rp_error *err);
/* As model_device_load, falling back to a unique name when @id_or_name is not a device id
 * (RP_EINVAL when the name is ambiguous). */
int model_device_find(struct model_device *out, struct rp_array *a, const char *id_or_name,
                      struct rp_error *err);
/*
 * Allocates a new device identity on @a inside the caller's transaction (RP_ERROR outside
 * one): zeroes @d and fills seq, id, obj, wwn and created_ms. The caller fills the rest and
 * inserts the row (model_device_insert) in the same transaction.
 */
int model_device_alloc(struct model_device *d, struct rp_array *a, struct rp_error *err);
/* Inserts a new row (RP_EEXISTS if the id exists). */
int model_device_insert(struct rp_array *a, const struct model_device *d, struct rp_error *err);
/* Rewrites every column of the existing row d->id (RP_ENOTFOUND if absent). */
int model_device_store(struct rp_array *a, const struct model_device *d, struct rp_error *err);
/*
 * Sets state, read_only and peer fields of device @id in one transaction (or the caller's).
 * @read_only < 0 keeps it; @peer_array / @peer_device NULL keep, "" clears. RP_ENOTFOUND.
 */
int model_device_set_state(struct rp_array *a, const char *id, int state, int read_only,
                           const char *peer_array, const char *peer_device, struct rp_error *err);
/*
 * Lists rows sorted by id: @group NULL = all, "" = standalone devices only, else one group.
 * *out owned by the caller (rp_free); *out may be NULL when *n == 0.
 */
int model_device_list(struct model_device **out, size_t *n, struct rp_array *a, const char *group,
                      struct rp_error *err);
/* Finds the device whose peer_array/peer_device are @peer_array/@peer_device. RP_ENOTFOUND. */
int model_device_by_peer(struct model_device *out, struct rp_array *a, const char *peer_array,
                         const char *peer_device, struct rp_error *err);
/*
 * Removes device @id entirely from this array, no questions asked (no busy checks, no peer):
 * its rows (devices, lun_meta, presentations, snapshots) in one transaction, then its driver
 * objects (live data and snapshots) through an "obj_delete" intent so a crash in between
 * still ends with the objects gone. Returns 0 once the rows are committed, even when an
 * object could not be deleted yet (logged; model_recover retries). Absent device: success.
 * Must NOT run inside a caller's transaction (RP_ERROR): objects are deleted after the commit.
 */
int model_device_destroy(struct rp_array *a, const char *id, struct rp_error *err);

/* Converts a row to the public struct (allocated = 0, test snapshot and rp left to caller). */
void model_device_to_public(struct rp_device *out, const struct model_device *d);

/* ------------------------------------------------------------------------------------------ */
/* Groups                                                                                      */

int model_group_load(struct model_group *out, struct rp_array *a, const char *id,
                     struct rp_error *err);
/* RP_EEXISTS if the id exists. */
int model_group_insert(struct rp_array *a, const struct model_group *g, struct rp_error *err);
/* Rewrites every column of existing group g->id (RP_ENOTFOUND if absent). */
int model_group_store(struct rp_array *a, const struct model_group *g, struct rp_error *err);
/* Sorted by id; *out owned by the caller (rp_free). */
int model_group_list(struct model_group **out, size_t *n, struct rp_array *a, struct rp_error *err);
int model_group_count_devices(size_t *out, struct rp_array *a, const char *id,
                              struct rp_error *err);
/* Deletes the group row and its group_meta (no checks). Absent: success. */
int model_group_delete_row(struct rp_array *a, const char *id, struct rp_error *err);
void model_group_to_public(struct rp_group *out, const struct model_group *g);

/* ------------------------------------------------------------------------------------------ */
/* Snapshots (rows only: the caller makes and deletes the driver objects)                     */

int model_snapshot_insert(struct rp_array *a, const struct model_snapshot *s, struct rp_error *err);
/* Absent: success. */
int model_snapshot_delete(struct rp_array *a, const char *id, struct rp_error *err);
int model_snapshot_load(struct model_snapshot *out, struct rp_array *a, const char *id,
                        struct rp_error *err);
/*
 * Lists snapshot rows filtered by @device, @group and @kind (each NULL = any), newest first
 * (created_ms DESC, id DESC). *out owned by the caller (rp_free).
 */
int model_snapshot_list(struct model_snapshot **out, size_t *n, struct rp_array *a,
                        const char *device, const char *group, const char *kind,
                        struct rp_error *err);

/* ------------------------------------------------------------------------------------------ */
/* Peers                                                                                       */

/* Sorted by array id; *out owned by the caller (rp_free). */
int model_peer_list(struct rp_peer **out, size_t *n, struct rp_array *a, struct rp_error *err);
/* Peer @id, or the first one (by id) when @id is NULL. RP_ENOTFOUND. */
int model_peer_get(struct rp_peer *out, struct rp_array *a, const char *id, struct rp_error *err);

/* ------------------------------------------------------------------------------------------ */
/* Metadata key/values in bulk (to copy them to the peer at sync)                             */

/* Checks a key (1..127 printable ASCII) and a value (<= 64 KiB). */
int model_kv_check(const char *key, const char *value, struct rp_error *err);
/* All pairs of @owner in key order; *out owned by the caller (model_kv_free). */
int model_kv_list(struct model_kv **out, size_t *n, struct rp_array *a, enum model_meta_table table,
                  const char *owner, struct rp_error *err);
/* Replaces all pairs of @owner by @kv[0..n) in one transaction (or the caller's). */
int model_kv_replace_all(struct rp_array *a, enum model_meta_table table, const char *owner,
                         const struct model_kv *kv, size_t n, struct rp_error *err);
/* Sets one pair of @owner (value NULL deletes it); checks key and value. No existence check of
 * @owner: callers check it. */
int model_kv_set(struct rp_array *a, enum model_meta_table table, const char *owner,
                 const char *key, const char *value, struct rp_error *err);
/* The value of @key; *out owned by the caller (rp_free). RP_ENOTFOUND if absent. */
int model_kv_get(char **out, struct rp_array *a, enum model_meta_table table, const char *owner,
                 const char *key, struct rp_error *err);
/* Calls @cb for every pair in key order; a non-zero return from @cb stops and is returned. */
int model_kv_foreach(struct rp_array *a, enum model_meta_table table, const char *owner,
                     rp_meta_cb cb, void *payload, struct rp_error *err);
/* Accepts NULL. */
void model_kv_free(struct model_kv *kv, size_t n);

/* ------------------------------------------------------------------------------------------ */
/* Intents: record the intent, act, then delete the intent in the commit of the result.       */

/*
 * A live intent. While its owner runs it holds an OFD lock on locks/intent-<owner>.lock;
 * model_recover() treats an intent whose lock it can take as abandoned (owner died) and
 * finishes or rolls it back.
 */
struct model_intent {
	int64_t id;
	int lock_fd;
	char owner[RP_ID_MAX];
};
#define MODEL_INTENT_INIT                                                                          \
	{                                                                                          \
		0, -1, ""                                                                          \
	}

/*
 * Records intent @op with @payload ("key=value" lines; model_payload_get reads them) in the
 * caller's transaction or its own. "owner=<token>" is prepended by this call.
 */
int model_intent_add(struct model_intent *out, struct rp_array *a, const char *op,
                     const char *payload, struct rp_error *err);
/* Rewrites the payload of a live intent (owner line kept). */
int model_intent_update(struct model_intent *in, struct rp_array *a, const char *payload,
                        struct rp_error *err);
/* Deletes the row (caller's transaction or own). */
int model_intent_delete(struct model_intent *in, struct rp_array *a, struct rp_error *err);
/* Releases the lock and removes its file; call after the delete is committed. Idempotent. */
void model_intent_release(struct model_intent *in, struct rp_array *a);

/* Reads "key=value" line @key of @payload into @buf ("" and RP_ENOTFOUND if absent). */
int model_payload_get(char *buf, size_t len, const char *payload, const char *key);

/*
 * Handler that finishes or rolls back an abandoned intent of op @op. Returns 0 when done
 * (the intent row is then deleted) or < 0 to keep it for a later try.
 */
typedef int (*model_recover_fn)(struct rp_array *a, const char *payload, struct rp_error *err);
/* Registers a handler (e.g. from a constructor); up to 16 ops. Built in: "lun_create",
 * "peer_target_delete", "obj_delete" (payload lines "obj=<name>": deletes each object). */
int model_recover_register(const char *op, model_recover_fn fn);
/* Finishes or rolls back every abandoned intent. rp_array_open calls it. Errors are logged. */
int model_recover(struct rp_array *a, struct rp_error *err);

/* ------------------------------------------------------------------------------------------ */
/* Helpers of the model (used by lun.c, group.c, array.c)                                     */

/* *out = whether a sync session of @device or of @group (each may be NULL/"") is in progress. */
int model_sync_running(bool *out, struct rp_array *a, const char *device, const char *group,
                       struct rp_error *err);
/* Driver calls with the optional-slot check (RP_ENOTSUPPORTED when the driver lacks one). */
int model_obj_create(struct rp_array *a, const char *obj, uint64_t size, struct rp_error *err);
/* Absent objects are fine. */
int model_obj_delete(struct rp_array *a, const char *obj, struct rp_error *err);
int model_obj_resize(struct rp_array *a, const char *obj, uint64_t size, struct rp_error *err);
int model_obj_stat(struct array_obj_stat *out, struct rp_array *a, const char *obj,
                   struct rp_error *err);
int model_obj_clone(struct rp_array *a, const char *src, const char *dst, struct rp_error *err);
/*
 * Makes a new object durable before a commit refers to it: the driver's flush (fsync: size,
 * reflinked extents, copied data) and, when the driver has local paths, an fsync of the
 * directory holding it (its name). Drivers without either slot need nothing.
 */
int model_obj_persist(struct rp_array *a, const char *obj, struct rp_error *err);
/*
 * model_obj_persist of @n objects with one directory fsync per distinct directory: flushes
 * every object, then fsyncs each directory holding one once (a group's snapshots live in one
 * directory: N+1 fsyncs instead of 2N). Same guarantee for each object as model_obj_persist
 * when it returns 0; on failure some may be durable, none is promised.
 */
int model_objs_persist(struct rp_array *a, const char *const *objs, size_t n, struct rp_error *err);

/* Intent handler of op "peer_target_delete" (lun.c): deletes the target of a deleted source
 * on the peer (payload: device, peer, peer_device). Fails (intent kept) while unreachable. */
int lun_peer_target_delete(struct rp_array *a, const char *payload, struct rp_error *err);
/* Opens the peer @peer_id (NULL = first) of @a: rp_array_open_peer (RP_ENOTFOUND, RP_EUNREACHABLE).
 */
int model_open_peer(struct rp_array **out, struct rp_array *a, const char *peer_id,
                    struct rp_error *err);
/* Intent handler of op "lun_create" (lun.c): rolls back a half-made LUN (and its target). */
int lun_create_rollback(struct rp_array *a, const char *payload, struct rp_error *err);
/* True for a replication source whose target the next sync makes (lun.c, target_at_sync). */
bool lun_target_pending(const struct model_device *d);
/*
 * Makes the target of source device @d (of array @src_array) on @tgt for a sync (lun.c): an
 * empty LUN of @d's name and size in @d's group (a target group of @src_array on @tgt when @d
 * is grouped), state target, read-only, linked back to @d; or the one a crashed earlier call
 * left (found by its link). A "lun_create" intent on @tgt removes a half-made object after a
 * crash. The caller links @d to out->id. RP_EEXISTS when @d's name is taken on @tgt.
 */
int lun_target_create(struct model_device *out, struct rp_array *tgt, const char *src_array,
                      const struct model_device *d, struct rp_error *err);

#endif

/* SPDX-License-Identifier: MIT */
/*
 * replun/array.h - arrays, peers, consistency groups, devices (LUNs), per-LUN metadata,
 * presentation and space reservations. Everything here is protocol-free; front ends translate.
 */
#ifndef REPLUN_ARRAY_H
#define REPLUN_ARRAY_H

#include <stdbool.h>
#include <stdint.h>

#include "replun/common.h"

#ifdef __cplusplus
extern "C" {
#endif

struct rp_array; /* an open array: its driver plus its metadata database */

#define RP_MAX_PEERS 8

/* Options for opening an array. Secrets are only held in memory and never logged. */
struct rp_open_opts {
	const char *username; /* remote arrays; NULL for the file array */
	const char *password;
	int busy_timeout_ms; /* SQLite busy timeout; 0 = default (30 s) */
};

struct rp_peer {
	char array_id[RP_ID_MAX];
	char uri[RP_URI_MAX];
};

struct rp_array_info {
	char id[RP_ID_MAX];
	char name[RP_NAME_MAX];
	char vendor[RP_NAME_MAX]; /* "replun" */
	char model[RP_NAME_MAX];  /* "replun file array" */
	char driver[RP_ID_MAX];   /* "file" */
	char uri[RP_URI_MAX];     /* canonical URI: file:///abs/path */
	char fs_type[RP_ID_MAX];  /* "xfs", "btrfs", "ext4", ... */
	bool reflink;             /* O(1) snapshots and clones available */
	uint64_t capacity;        /* bytes */
	uint64_t free;            /* bytes, before reservations */
	uint64_t reserved;        /* bytes held by live space reservations */
	size_t n_peers;
	struct rp_peer peers[RP_MAX_PEERS];
};

/*
 * Creates a new file array at @path (a directory, created if missing, must be empty or absent).
 * @id follows rp_id_check; @name may be NULL (defaults to @id).
 * Errors: RP_EEXISTS (already an array), RP_EINVAL, RP_EIO.
 */
RP_EXTERN int rp_array_init(const char *path, const char *id, const char *name,
                            struct rp_error *err);

/*
 * Opens the array at @uri: "file:///abs/path" or an absolute path. @opts may be NULL.
 * Paths containing ".." components are refused (RP_EINVAL); a missing array is RP_ENOTFOUND.
 * The result belongs to the caller; free with rp_array_close. Thread-compatible, not
 * thread-safe: use one handle per thread.
 */
RP_EXTERN int rp_array_open(struct rp_array **out, const char *uri, const struct rp_open_opts *opts,
                            struct rp_error *err);
/* Accepts NULL. */
RP_EXTERN void rp_array_close(struct rp_array *a);

RP_EXTERN int rp_array_info(struct rp_array_info *out, struct rp_array *a, struct rp_error *err);

#define RP_OBJ_MAX 129 /* an array object's name, with its NUL */

/*
 * Allocated storage of an array's objects by what holds them (rp_array_usage), in bytes. An
 * object several rows name counts once, under the first of: LUN, recovery point, base, spare,
 * snapshot. On a reflink filesystem blocks shared by several objects count in each.
 */
struct rp_array_usage {
	uint64_t luns;            /* live LUN images */
	uint64_t recovery_points; /* a target's recovery points (its base shares the newest) */
	uint64_t bases;           /* a source's bases: the data of the last sync */
	uint64_t spares;          /* spares the next sync reuses (arrays without reflink) */
	uint64_t snapshots;       /* test, revert, prefailover, tail and in-flight sync snapshots */
	uint64_t work;            /* objects of operations in progress: sync sessions, intents */
	uint64_t unreferenced;    /* objects nothing names: left behind by a crash */
	size_t n_objects;         /* objects counted */
	size_t n_unreferenced;
	bool listed; /* the driver lists its objects; else work and unreferenced are unknown (0) */
};

/* One object and its allocated bytes. */
struct rp_object_usage {
	char obj[RP_OBJ_MAX];
	uint64_t allocated;
};

/*
 * Fills @out. With @unreferenced (may be NULL): *@unreferenced = the n_unreferenced objects
 * nothing names (NULL when none; rp_free). An object made or deleted meanwhile may be counted
 * or not, and one being made right now may show as unreferenced for that moment.
 */
RP_EXTERN int rp_array_usage(struct rp_array_usage *out, struct rp_object_usage **unreferenced,
                             struct rp_array *a, struct rp_error *err);
/* Borrowed; valid while @a is open. */
RP_EXTERN const char *rp_array_id(const struct rp_array *a);
RP_EXTERN const char *rp_array_uri(const struct rp_array *a);

/*
 * Pairs two arrays both ways (each records the other as a peer). Idempotent.
 * Errors: RP_EINVAL (same array), RP_EUNREACHABLE.
 */
RP_EXTERN int rp_array_pair(struct rp_array *a, struct rp_array *b, struct rp_error *err);

/*
 * Opens the peer array with id @peer_id (or the only/first peer when NULL).
 * Errors: RP_ENOTFOUND (no such peer), RP_EUNREACHABLE (peer recorded but cannot be opened).
 */
RP_EXTERN int rp_array_open_peer(struct rp_array **out, struct rp_array *a, const char *peer_id,
                                 struct rp_error *err);

/* ------------------------------------------------------------------------------------------ */
/* Devices (LUNs)                                                                             */

enum rp_dev_state {
	RP_DEV_LOCAL = 0,           /* not replicated */
	RP_DEV_SOURCE = 1,          /* read-write, replicating out */
	RP_DEV_TARGET = 2,          /* read-only replica, addressed by its key */
	RP_DEV_DEMOTED_SOURCE = 3,  /* read-only after prepare_failover */
	RP_DEV_PROMOTED_TARGET = 4, /* read-write after failover */
};
/* "local", "source", "target", "demoted-source", "promoted-target". */
RP_EXTERN const char *rp_dev_state_name(enum rp_dev_state s);

struct rp_device {
	char id[RP_ID_MAX]; /* the array's own id; a target's SRA key is its id */
	char name[RP_NAME_MAX];
	char wwn[RP_WWN_MAX];  /* "naa.6..." stable, derived from array and LUN ids */
	char group[RP_ID_MAX]; /* consistency group id, "" if standalone */
	uint64_t size;         /* bytes */
	uint64_t allocated;    /* bytes of storage really used */
	enum rp_dev_state state;
	bool read_only;              /* current access */
	char peer_array[RP_ID_MAX];  /* replication peer array id, "" if local */
	char peer_device[RP_ID_MAX]; /* source: the target's key (its id on the peer); target:
	                                the source's id on the peer */
	char snapshot_of[RP_ID_MAX]; /* LUN snapshots/clones: the LUN it was taken from */
	int64_t created_ms;
	/* The test-failover copy of a target while a test runs, else empty strings. */
	char test_snapshot[RP_ID_MAX];
	char test_snapshot_wwn[RP_WWN_MAX];
	/* Last recovery point of this device (completed sync), "" / 0 if none yet. */
	char recovery_point[RP_ID_MAX];
	int64_t recovery_point_ms;
	/* While a test failover runs: the recovery point the test copy was made of (syncs during
	 * the test do not change it), else "" / 0. */
	char test_recovery_point[RP_ID_MAX];
	int64_t test_recovery_point_ms;
	/* A replication source (peer_array set) whose target does not exist yet: it was created
	 * with target_at_sync and its group (or, standalone, the device) has not synced since.
	 * peer_device is "" meanwhile; the next sync makes the target and copies all of it. */
	bool target_pending;
};

/* Options for rp_lun_create. */
struct rp_lun_create_opts {
	const char *group; /* consistency group, created on first use; NULL = standalone */
	bool replicate;    /* also create the target on the peer array */
	const char *peer;  /* peer array id when there are several; NULL = first peer */
	/*
	 * Only for a LUN that replicates (replicate, or a new member of a replicating group):
	 * its target is made by the next sync instead of now ("pending target", see
	 * rp_device.target_pending). The LUN is a replication source of the peer at once, but
	 * the peer array is not opened: the call costs one array's commits and succeeds while
	 * the peer is down. The next sync of its group (or of the device, standalone) makes the
	 * target (same name and size, on the peer, in the group) and copies all of it. Until
	 * then the LUN has no replica: a failover at the peer cannot bring it back, and a
	 * reverse run at the peer detaches it from the group (kept here, with its data, as a
	 * standalone local LUN; see docs/internals/workflows.md). Ignored when the LUN does not
	 * replicate. The name is checked on the peer only by that sync (RP_EEXISTS there).
	 */
	bool target_at_sync;
	/* Initial LUN metadata (as rp_lun_meta_set_many, NULL values skipped), written in the
	 * same transaction as the new LUN: n_meta == 0 for none. */
	const char *const *meta_keys;
	const char *const *meta_values;
	size_t n_meta;
};

/*
 * Creates a LUN of @size bytes named @name. Writes the new device to @out (may be NULL).
 * A group that replicates forces replication of its new members.
 * Errors: RP_EINVAL (size 0, bad name), RP_ENOSPACE, RP_EUNREACHABLE (replicate, peer down,
 * unless target_at_sync).
 */
RP_EXTERN int rp_lun_create(struct rp_device *out, struct rp_array *a, const char *name,
                            uint64_t size, const struct rp_lun_create_opts *opts,
                            struct rp_error *err);

/* Looks a device up by id (or by name when @id is not an id). RP_ENOTFOUND. */
RP_EXTERN int rp_lun_get(struct rp_device *out, struct rp_array *a, const char *id,
                         struct rp_error *err);

/*
 * Lists devices, optionally of one group (NULL = all). *out is an array of *n devices owned by
 * the caller (free with rp_free). Sorted by id.
 */
RP_EXTERN int rp_lun_list(struct rp_device **out, size_t *n, struct rp_array *a, const char *group,
                          struct rp_error *err);

/*
 * Deletes a LUN and its internal snapshots. A replication source also deletes its target on
 * the peer when reachable (else the target is left and reported in a log warning).
 * Errors: RP_ENOTFOUND, RP_EBUSY (presented read-write, test running, sync running).
 */
RP_EXTERN int rp_lun_delete(struct rp_array *a, const char *id, struct rp_error *err);

/* Grows a LUN to @size (shrinking is RP_EINVAL). Replicated: the target grows too. */
RP_EXTERN int rp_lun_resize(struct rp_array *a, const char *id, uint64_t size,
                            struct rp_error *err);

/*
 * Takes a LUN-level snapshot: a new read-only LUN in the same group (so it replicates), sharing
 * data with @id (O(1) on reflink filesystems). snapshot_of is set.
 */
RP_EXTERN int rp_lun_snapshot(struct rp_device *out, struct rp_array *a, const char *id,
                              const char *name, struct rp_error *err);

/* As rp_lun_snapshot but the new LUN is writable. */
RP_EXTERN int rp_lun_clone(struct rp_device *out, struct rp_array *a, const char *id,
                           const char *name, struct rp_error *err);

/* Options for rp_lun_snapshot_ex / rp_lun_clone_ex. */
struct rp_lun_copy_opts {
	const char *name; /* NULL: "<source name> snapshot|clone <new id>" */
	/* In a replicating group: the copy's target is made by the next sync, as
	 * rp_lun_create_opts.target_at_sync (the peer is not opened). */
	bool target_at_sync;
	/* Initial LUN metadata of the copy, as in struct rp_lun_create_opts (not copied from the
	 * source). */
	const char *const *meta_keys;
	const char *const *meta_values;
	size_t n_meta;
};

/*
 * rp_lun_snapshot / rp_lun_clone with options (@opts may be NULL): the new LUN and its
 * metadata are committed together. LUN names are unique per array: RP_EEXISTS when taken.
 */
RP_EXTERN int rp_lun_snapshot_ex(struct rp_device *out, struct rp_array *a, const char *id,
                                 const struct rp_lun_copy_opts *opts, struct rp_error *err);
RP_EXTERN int rp_lun_clone_ex(struct rp_device *out, struct rp_array *a, const char *id,
                              const struct rp_lun_copy_opts *opts, struct rp_error *err);

/*
 * Renames a LUN (name only; ids never change). Names are unique per array (RP_EEXISTS), have
 * no control characters and no '/'. A source's target on the peer is renamed too.
 */
RP_EXTERN int rp_lun_rename(struct rp_array *a, const char *id, const char *name,
                            struct rp_error *err);

/*
 * Writes the path of the data (image file) of LUN @id into @buf (file array only; other
 * drivers: RP_ENOTSUPPORTED). For a target under test, @id may also be its test snapshot id.
 */
RP_EXTERN int rp_lun_path(char *buf, size_t len, struct rp_array *a, const char *id,
                          struct rp_error *err);

/* ------------------------------------------------------------------------------------------ */
/* Per-LUN metadata: key/value strings stored with the LUN; replicated with its data at every */
/* sync and carried through failover. Keys: 1..127 printable chars; values up to 64 KiB.      */

RP_EXTERN int rp_lun_meta_set(struct rp_array *a, const char *id, const char *key,
                              const char *value, struct rp_error *err);
/* *out is owned by the caller (rp_free). RP_ENOTFOUND if the key is absent. */
RP_EXTERN int rp_lun_meta_get(char **out, struct rp_array *a, const char *id, const char *key,
                              struct rp_error *err);
RP_EXTERN int rp_lun_meta_del(struct rp_array *a, const char *id, const char *key,
                              struct rp_error *err);
typedef int (*rp_meta_cb)(const char *key, const char *value, void *payload);
/* Calls @cb for every key in key order; a non-zero return from @cb stops and is returned. */
RP_EXTERN int rp_lun_meta_foreach(struct rp_array *a, const char *id, rp_meta_cb cb, void *payload,
                                  struct rp_error *err);
/* Sets several keys of one LUN in one transaction (keys[i] = values[i]; NULL value deletes). */
RP_EXTERN int rp_lun_meta_set_many(struct rp_array *a, const char *id, const char *const *keys,
                                   const char *const *values, size_t n, struct rp_error *err);

/* ------------------------------------------------------------------------------------------ */
/* Presentation (who has a LUN attached). One read-write host at a time, or shared writers.    */

/*
 * Presents LUN @id to @host (any string naming an initiator/host). @rw asks for write access.
 * Idempotent for the same host (a later call changes its access). Errors: RP_EBUSY (another
 * host has it read-write, or rw asked while another host has it), RP_EPERM (rw on a read-only
 * device).
 */
RP_EXTERN int rp_lun_present(struct rp_array *a, const char *id, const char *host, bool rw,
                             struct rp_error *err);
/*
 * Presents LUN @id read-write to @host as one of several writers that coordinate among
 * themselves (an HA statefile every host of a pool writes its own slot of). Shared writers
 * coexist only with shared writers: RP_EBUSY when another host has the LUN read-only or
 * exclusively read-write; an exclusive rp_lun_present(rw) is refused while any shared writer
 * remains. RP_EPERM on a read-only device.
 */
RP_EXTERN int rp_lun_present_shared(struct rp_array *a, const char *id, const char *host,
                                    struct rp_error *err);
/* Idempotent: unpresenting a LUN not presented to @host succeeds. */
RP_EXTERN int rp_lun_unpresent(struct rp_array *a, const char *id, const char *host,
                               struct rp_error *err);

struct rp_presentation {
	char host[RP_NAME_MAX];
	bool rw;
	bool shared; /* rw as one of several shared writers (rp_lun_present_shared) */
};
/*
 * Lists the hosts LUN @id is presented to, sorted by host. *out is owned by the caller
 * (rp_free; may be NULL when *n == 0). RP_ENOTFOUND for an unknown LUN.
 */
RP_EXTERN int rp_lun_presentations(struct rp_presentation **out, size_t *n, struct rp_array *a,
                                   const char *id, struct rp_error *err);
/*
 * Removes every presentation of LUN @id in one transaction (forced take-over once the hosts
 * are known to be dead). Idempotent.
 */
RP_EXTERN int rp_lun_unpresent_all(struct rp_array *a, const char *id, struct rp_error *err);

/* ------------------------------------------------------------------------------------------ */
/* Consistency groups                                                                          */

enum rp_group_role {
	RP_GROUP_LOCAL = 0,
	RP_GROUP_SOURCE = 1,
	RP_GROUP_TARGET = 2,
	RP_GROUP_DEMOTED_SOURCE = 3,
	RP_GROUP_PROMOTED_TARGET = 4,
};
RP_EXTERN const char *rp_group_role_name(enum rp_group_role r);

struct rp_group {
	char id[RP_ID_MAX]; /* same id on both arrays of a pair; a target group's key is its id */
	char name[RP_NAME_MAX];
	enum rp_group_role role;
	char peer_array[RP_ID_MAX];
	size_t n_devices;
	uint32_t rpo_seconds;           /* replication schedule, 0 = manual */
	uint32_t retention;             /* recovery points kept on the target */
	char recovery_point[RP_ID_MAX]; /* last completed group sync */
	int64_t recovery_point_ms;
	char test_snapshot[RP_ID_MAX]; /* set while a test failover runs on the group */
	/* While a test failover runs: the recovery point of the test copies, else "" / 0. */
	char test_recovery_point[RP_ID_MAX];
	int64_t test_recovery_point_ms;
};

RP_EXTERN int rp_group_create(struct rp_group *out, struct rp_array *a, const char *id,
                              const char *name, struct rp_error *err);
RP_EXTERN int rp_group_get(struct rp_group *out, struct rp_array *a, const char *id,
                           struct rp_error *err);
/* *out owned by the caller (rp_free). Sorted by id. */
RP_EXTERN int rp_group_list(struct rp_group **out, size_t *n, struct rp_array *a,
                            struct rp_error *err);
/* Only an empty group can be deleted (RP_EBUSY otherwise). Idempotent (absent is success). */
RP_EXTERN int rp_group_delete(struct rp_array *a, const char *id, struct rp_error *err);
/* Replication settings, kept on both sides and passed back through reverse and restore. */
RP_EXTERN int rp_group_set_policy(struct rp_array *a, const char *id, uint32_t rpo_seconds,
                                  uint32_t retention, struct rp_error *err);
/* Group-level metadata (e.g. the SR's name); replicated like LUN metadata. */
RP_EXTERN int rp_group_meta_set(struct rp_array *a, const char *id, const char *key,
                                const char *value, struct rp_error *err);
RP_EXTERN int rp_group_meta_get(char **out, struct rp_array *a, const char *id, const char *key,
                                struct rp_error *err);
RP_EXTERN int rp_group_meta_foreach(struct rp_array *a, const char *id, rp_meta_cb cb,
                                    void *payload, struct rp_error *err);
/* Bytes: sum of LUN sizes (virtual) and of allocated storage (physical) in the group. */
RP_EXTERN int rp_group_usage(uint64_t *virtual_size, uint64_t *physical, struct rp_array *a,
                             const char *id, struct rp_error *err);

/* ------------------------------------------------------------------------------------------ */
/* Space reservations (SRM 2.2 concepts): guarantee capacity for test copies or new LUNs.     */

struct rp_reservation {
	char token[RP_ID_MAX];
	char owner[RP_NAME_MAX];
	uint64_t size;
	int64_t expires_ms; /* 0 = no expiry */
};

/* Reserves @size bytes for @lifetime_s seconds (0 = until released). RP_ENOSPACE. */
RP_EXTERN int rp_space_reserve(struct rp_reservation *out, struct rp_array *a, const char *owner,
                               uint64_t size, uint32_t lifetime_s, struct rp_error *err);
/* Idempotent. */
RP_EXTERN int rp_space_release(struct rp_array *a, const char *token, struct rp_error *err);
RP_EXTERN int rp_space_list(struct rp_reservation **out, size_t *n, struct rp_array *a,
                            struct rp_error *err);

#ifdef __cplusplus
}
#endif
#endif

/* SPDX-License-Identifier: MIT */
/*
 * replun/workflow.h - the replication workflows (test failover, prepare failover, failover,
 * reverse, restore), sync sessions, recovery points and verification. Each workflow answers
 * per group and per device: one failing item never stops the others, and repeating a finished
 * workflow succeeds with a warning and changes nothing.
 */
#ifndef REPLUN_WORKFLOW_H
#define REPLUN_WORKFLOW_H

#include <stdbool.h>
#include <stdint.h>

#include "replun/array.h"
#include "replun/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * What a workflow works on: groups and standalone devices, by the ids of the array the workflow
 * runs on (for targets that is their key). Devices of a listed group are answered inside the
 * group's item. @name_filter, if set, skips devices whose names do not start with it (and
 * groups none of whose devices match); skipped items are answered with warning
 * RP_WARN_FILTERED.
 */
struct rp_request {
	const char *const *groups;
	size_t n_groups;
	const char *const *devices;
	size_t n_devices;
	const char *name_filter;
	const char *peer; /* peer array id when the array has several; NULL = the first */
	/*
	 * Recovery point per group / per device, parallel to @groups / @devices (the array itself
	 * may be NULL; an entry NULL or "" = the latest). Used by the test failover and failover
	 * calls (and their checks): the test copy is made of that point, failover promotes the
	 * target at that point (its newer data kept in the 'revert' snapshot). A point not held
	 * on the array (unknown, or expired by retention) fails that item with RP_ENOTFOUND.
	 */
	const char *const *group_recovery_points;
	const char *const *device_recovery_points;
};

/* Warning codes (positive, stable); the message says more. */
enum rp_warn {
	RP_WARN_ALREADY_DONE = 1,  /* repeated command: nothing changed */
	RP_WARN_UNUSUAL_ORDER = 2, /* e.g. prepare_failover after failover (disaster order) */
	RP_WARN_PEER_DOWN = 3,     /* the peer could not be reached; local part done */
	RP_WARN_SYNC_RUNNING = 4,  /* a sync session is already in progress (returned) */
	RP_WARN_NO_FREEZE = 5,     /* group snapshot taken without freezing the filesystem */
	RP_WARN_FILTERED = 6,      /* skipped by the name filter */
	RP_WARN_TAIL_KEPT = 7,     /* unreplicated writes kept as a snapshot, not destroyed */
	RP_WARN_STALE_RP = 8,      /* recovery point older than the group's RPO */
};

#define RP_MAX_WARNINGS 4

struct rp_warning {
	int code; /* enum rp_warn */
	char msg[RP_MSG_MAX];
};

/* Outcome for one group or one device. */
struct rp_item {
	bool is_group;
	char id[RP_ID_MAX];    /* as requested */
	char group[RP_ID_MAX]; /* device inside a group: the group's id; else "" */
	int code;              /* 0 = success, else enum rp_code */
	char msg[RP_MSG_MAX];  /* error message when code != 0 */
	size_t n_warnings;
	struct rp_warning warnings[RP_MAX_WARNINGS];
	/* Filled by the workflows that produce them; "" / 0 otherwise. */
	char new_id[RP_ID_MAX];   /* failover: the promoted device id; reverse: new key */
	char state[RP_ID_MAX];    /* resulting state name (rp_dev_state_name/rp_group_role_name) */
	char snapshot[RP_ID_MAX]; /* test copy (testFailoverStart) or revert snapshot */
	char snapshot_wwn[RP_WWN_MAX]; /* WWN of the test copy */
	char recovery_point[RP_ID_MAX];
	int64_t recovery_point_ms;
	char session[RP_ID_MAX]; /* sync_start: the session id */
	char wwn[RP_WWN_MAX];
	char name[RP_NAME_MAX];
};

struct rp_result {
	size_t n;
	struct rp_item *items; /* groups first (in request order), then their devices, then
	                          standalone devices (in request order) */
};

/* Accepts NULL. */
RP_EXTERN void rp_result_free(struct rp_result *r);

/*
 * Every workflow: writes a new result to *out (caller frees with rp_result_free) and returns 0
 * when it could answer for every item (items may still carry errors); returns < 0 with @err set
 * only when nothing could be answered (array unreadable, bad request).
 */
typedef int (*rp_workflow_fn)(struct rp_result **out, struct rp_array *a,
                              const struct rp_request *req, struct rp_error *err);

/* Run at the recovery site, on targets. Checks only: initial sync complete, healthy, room. */
RP_EXTERN int rp_check_test_failover(struct rp_result **out, struct rp_array *a,
                                     const struct rp_request *req, struct rp_error *err);
/* Writable copy of each target's last recovery point (or of the point the request names);
 * replication untouched. A second start while a test runs is an error (RP_EBUSY). */
RP_EXTERN int rp_test_failover_start(struct rp_result **out, struct rp_array *a,
                                     const struct rp_request *req, struct rp_error *err);
/* Deletes the test copies. Idempotent. */
RP_EXTERN int rp_test_failover_stop(struct rp_result **out, struct rp_array *a,
                                    const struct rp_request *req, struct rp_error *err);
/* Run at the recovery site, on targets. */
RP_EXTERN int rp_check_failover(struct rp_result **out, struct rp_array *a,
                                const struct rp_request *req, struct rp_error *err);
/* Run at the protected site, on sources: snapshot, then demote to read-only. Idempotent;
 * succeeds with RP_WARN_UNUSUAL_ORDER after a failover at the peer. */
RP_EXTERN int rp_prepare_failover(struct rp_result **out, struct rp_array *a,
                                  const struct rp_request *req, struct rp_error *err);
/* Run at the recovery site, on targets: snapshot (revert point), stop incoming sync, promote
 * read-write. Works with the peer unreachable. Idempotent. With an older recovery point named
 * in the request, the live data is set to that point after the revert snapshot (which keeps
 * the newer data) is taken. */
RP_EXTERN int rp_failover(struct rp_result **out, struct rp_array *a, const struct rp_request *req,
                          struct rp_error *err);
/* Run at the original protected site on demoted sources: checks they may become targets. */
RP_EXTERN int rp_prepare_reverse(struct rp_result **out, struct rp_array *a,
                                 const struct rp_request *req, struct rp_error *err);
/* Run at the recovery site on promoted devices: they become sources and the old sources become
 * their targets, rolled back to the shared base (unreplicated tail kept as a snapshot). The
 * follow-up sync sends only changes made since failover. Idempotent. */
RP_EXTERN int rp_reverse(struct rp_result **out, struct rp_array *a, const struct rp_request *req,
                         struct rp_error *err);
/* Run at the recovery site on promoted devices: checks they may be rolled back. */
RP_EXTERN int rp_prepare_restore(struct rp_result **out, struct rp_array *a,
                                 const struct rp_request *req, struct rp_error *err);
/* Run at the original protected site on (demoted) sources: the promoted targets at the peer are
 * rolled back to the shared base (their changes since failover discarded) and become targets
 * again; the sources become writable. Idempotent. */
RP_EXTERN int rp_restore(struct rp_result **out, struct rp_array *a, const struct rp_request *req,
                         struct rp_error *err);

/* ------------------------------------------------------------------------------------------ */
/* Sync sessions                                                                               */

enum rp_sync_status {
	RP_SYNC_IN_PROGRESS = 0,
	RP_SYNC_COMPLETE = 1,
	RP_SYNC_FAILED = 2,
};
/* "inProgress", "complete", "failed" (the SRA spelling). */
RP_EXTERN const char *rp_sync_status_name(enum rp_sync_status s);

struct rp_sync_session {
	char id[RP_ID_MAX];
	char group[RP_ID_MAX];  /* group synced, "" for a standalone device */
	char device[RP_ID_MAX]; /* standalone device synced, "" for a group */
	char source_array[RP_ID_MAX];
	char target_array[RP_ID_MAX];
	enum rp_sync_status status;
	int progress;               /* 0..100 */
	uint64_t bytes_total;       /* bytes to move (changed data) */
	uint64_t bytes_transferred; /* bytes moved so far */
	int64_t started_ms;
	int64_t finished_ms;            /* 0 while in progress */
	int64_t eta_seconds;            /* remaining-time estimate, -1 unknown */
	char recovery_point[RP_ID_MAX]; /* the point being made / made */
	int64_t recovery_point_ms;
	bool full;              /* a full (initial) sync, not incremental */
	char error[RP_MSG_MAX]; /* when failed */
	/*
	 * Set once the worker took the group's snapshots when they could not be taken with all
	 * writers paused (a writer without a usable write fence, a pause or resume that failed):
	 * the recovery point is crash consistent per device but NOT write-order consistent across
	 * the group. warning_code is RP_WARN_NO_FREEZE then, 0 (and warning "") otherwise.
	 */
	int warning_code; /* enum rp_warn */
	char warning[RP_MSG_MAX];
};

struct rp_sync_opts {
	bool foreground; /* run in the calling process instead of a detached worker */
};

/*
 * Starts one sync session per requested group/standalone device and returns at once (the data
 * moves in a detached worker that survives the caller). Works at either end: the source and the
 * target are found from the devices' states. An item whose session is already running is
 * answered with RP_WARN_SYNC_RUNNING and that session's id. A group item carries
 * RP_WARN_NO_FREEZE when a member's writer has no usable write fence now, or when its session
 * already recorded that warning (rp_sync_session.warning: a foreground run, a running session);
 * a detached worker records it later, so poll the session for the final word.
 */
RP_EXTERN int rp_sync_start(struct rp_result **out, struct rp_array *a,
                            const struct rp_request *req, const struct rp_sync_opts *opts,
                            struct rp_error *err);

/*
 * The RPO schedule, one pass (run it periodically, e.g. by the replun-sync@.timer unit). For
 * every group this array replicates from (role source) with an RPO > 0: when no session of the
 * group is running and its last session started at least rpo_seconds ago (or it was never
 * synced), a sync is started as rp_sync_start does (detached unless @opts says foreground).
 * Targets, promoted and demoted groups, local groups, groups with RPO 0 and standalone devices
 * are not scheduled (and not listed). *out (caller frees with rp_free) gets one item per group
 * considered, sorted by id; one group failing never stops the others. Returns 0 when it could
 * answer for every group, < 0 with @err only when the array's groups cannot be read.
 */
enum rp_due_status {
	RP_DUE_STARTED = 0, /* a session was started: .session */
	RP_DUE_NOT_DUE = 1, /* the last session is younger than the RPO: .seconds_left */
	RP_DUE_RUNNING = 2, /* a session is in progress: .session */
	RP_DUE_FAILED = 3,  /* could not be checked or started: .code, .msg */
};
/* "started", "not-due", "running", "failed". */
RP_EXTERN const char *rp_due_status_name(enum rp_due_status s);

struct rp_sync_due_item {
	char group[RP_ID_MAX];
	uint32_t rpo_seconds;
	enum rp_due_status status;
	char session[RP_ID_MAX]; /* started / running: the session; "" otherwise */
	int64_t last_started_ms; /* start of the group's last session before this pass, 0 never */
	int64_t seconds_left;    /* not due: seconds until due; 0 otherwise */
	int code;                /* failed: enum rp_code; 0 otherwise */
	char msg[RP_MSG_MAX];    /* failed: why */
};
RP_EXTERN int rp_sync_due(struct rp_sync_due_item **out, size_t *n, struct rp_array *a,
                          const struct rp_sync_opts *opts, struct rp_error *err);

/* Session by id. A session whose worker died is resumed (restarted) before answering. */
RP_EXTERN int rp_sync_get(struct rp_sync_session *out, struct rp_array *a, const char *session_id,
                          struct rp_error *err);
/* Latest session of a group or standalone device (RP_ENOTFOUND if never synced). */
RP_EXTERN int rp_sync_latest(struct rp_sync_session *out, struct rp_array *a, const char *group,
                             const char *device, struct rp_error *err);

typedef void (*rp_progress_fn)(const struct rp_sync_session *s, void *payload);
/* Waits until the session ends (@timeout_ms 0 = forever), calling @cb (may be NULL) on every
 * poll. Writes the final session to @out. RP_ETIMEOUT. */
RP_EXTERN int rp_sync_wait(struct rp_sync_session *out, struct rp_array *a, const char *session_id,
                           int64_t timeout_ms, rp_progress_fn cb, void *payload,
                           struct rp_error *err);

/* ------------------------------------------------------------------------------------------ */
/* Recovery points and verification                                                           */

struct rp_recovery_point {
	char id[RP_ID_MAX];
	int64_t time_ms;
	char group[RP_ID_MAX];
	char device[RP_ID_MAX];
};
/* Recovery points held on this array for a group or a device (newest first). */
RP_EXTERN int rp_recovery_points(struct rp_recovery_point **out, size_t *n, struct rp_array *a,
                                 const char *group, const char *device, struct rp_error *err);

struct rp_verify_item {
	char device_a[RP_ID_MAX];
	char device_b[RP_ID_MAX];
	char recovery_point[RP_ID_MAX];
	bool equal;
	char checksum_a[40]; /* XXH128 hex */
	char checksum_b[40];
	char msg[RP_MSG_MAX];
};
/*
 * Compares the data of every replicated device pair (of @group, or all) at the last recovery
 * point on both sides. *out owned by the caller (rp_free). Returns 0 when it could compare;
 * *all_equal tells the verdict.
 */
RP_EXTERN int rp_verify(struct rp_verify_item **out, size_t *n, bool *all_equal, struct rp_array *a,
                        struct rp_array *b, const char *group, struct rp_error *err);

/* XXH128 of a LUN's current data (or of a test snapshot), hex, for tests and tools. */
RP_EXTERN int rp_lun_checksum(char out[40], struct rp_array *a, const char *id,
                              struct rp_error *err);

#ifdef __cplusplus
}
#endif
#endif

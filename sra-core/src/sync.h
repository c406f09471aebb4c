/* SPDX-License-Identifier: MIT */
/*
 * sync.h - sync sessions (rows of sync_sessions on both arrays), the detached worker, the data
 * mover and resume after a dead worker. Contract: docs/internals/sync.md.
 */
#ifndef REPLUN_SYNC_H
#define REPLUN_SYNC_H

#include <stdbool.h>
#include <stdint.h>

#include "engine.h"
#include "replun/workflow.h"

/* Environment of a worker process (set by the spawner, read by a library constructor). */
#define SYNC_ENV_SESSION "REPLUN_SYNC_WORKER"
#define SYNC_ENV_SOURCE "REPLUN_SYNC_SOURCE"
#define SYNC_ENV_TARGET "REPLUN_SYNC_TARGET"
/* Executable to run the worker in (default /proc/self/exe: any program linking libreplun). */
#define SYNC_ENV_EXE "REPLUN_SYNC_WORKER_EXE"
/*
 * Tests only: sleep this many ms after each 1 MiB moved (to kill a worker mid-way). A throttled
 * full copy never shares blocks between the arrays (SYNC_ENV_NO_SHARE): the mover runs.
 */
#define SYNC_ENV_THROTTLE "REPLUN_SYNC_THROTTLE_MS"
/*
 * Tests only: "apply:N" makes the worker _exit(9) after N writes of an in-place apply;
 * "recycle" right after it brought a spare recovery-point object up to date (before commit).
 */
#define SYNC_ENV_CRASH "REPLUN_SYNC_CRASH_AT"
/*
 * Tests and benchmarks only: set (non-empty) = a full copy never shares blocks between the two
 * arrays (->clone_from), so the data mover runs even when both arrays are on one filesystem.
 */
#define SYNC_ENV_NO_SHARE "REPLUN_SYNC_NO_SHARE"
/*
 * Tests and benchmarks only: set (non-empty) = a full copy reads every range from the source
 * snapshot, never from the live LUN's cached pages (->read_snapshot).
 */
#define SYNC_ENV_NO_ORIGIN "REPLUN_SYNC_NO_ORIGIN"
/*
 * Tests only: set (non-empty) = an in-place apply saves the old contents in its undo object
 * instead of naming the target's base object (the path of drivers without ->copy_ranges).
 */
#define SYNC_ENV_UNDO_DATA "REPLUN_SYNC_UNDO_DATA"

/* A worker that recorded no pid is considered dead after this long without a heartbeat. */
#define SYNC_START_GRACE_MS 30000
/* A session whose worker died this many times is marked failed instead of resumed again. */
#define SYNC_MAX_RESUMES 5

/* One row of sync_sessions. */
struct sync_row {
	char id[RP_ID_MAX];
	char group[RP_ID_MAX];
	char device[RP_ID_MAX];
	char source_array[RP_ID_MAX];
	char target_array[RP_ID_MAX];
	int status; /* enum rp_sync_status */
	int progress;
	uint64_t bytes_total;
	uint64_t bytes_done;
	int64_t started_ms;
	int64_t finished_ms;
	char recovery_point[RP_ID_MAX];
	int64_t recovery_point_ms;
	bool full;
	char error[RP_MSG_MAX];
	int64_t worker_pid;
	char worker_start[32];
	int64_t heartbeat_ms;
	char *plan; /* owned; NULL until the worker recorded it */
	/* Recorded with the plan: why the recovery point is not write-order consistent. */
	int warning_code; /* enum rp_warn, 0 = none */
	char warning[RP_MSG_MAX];
};

/* Loads session @id of array @a. RP_ENOTFOUND. Dispose with sync_row_dispose. */
int sync_row_load(struct sync_row *out, struct rp_array *a, const char *id, struct rp_error *err);
void sync_row_dispose(struct sync_row *r);

/* The worker pid recorded for session @id on @a (0 if none). For tests and tools. */
int sync_worker_pid(int64_t *out, struct rp_array *a, const char *id, struct rp_error *err);

/*
 * Drops the spare object of device @dev of @a and the ranges recorded for it
 * (docs/internals/sync.md "Spare objects"): failover calls it when the device stops being a
 * target, and every change between a target and a sending role (reverse, restore), so a spare
 * of the old role is not held (nor taken for the new one's). Best effort.
 */
void sync_spare_drop(struct rp_array *a, const char *dev);

/*
 * Marks every in-progress session arriving at @a for @group (or target device @device) failed
 * with @why and deletes its staging objects (failover calls it on the target). The worker
 * notices at its next progress update and cleans up the source side.
 */
int sync_abort_incoming(struct rp_array *a, const char *group, const char *device, const char *why,
                        struct rp_error *err);

/* The worker body: runs (or resumes) session @id from @src to @tgt in this process. */
int sync_session_run(struct rp_array *src, struct rp_array *tgt, const char *id,
                     struct rp_error *err);

#endif

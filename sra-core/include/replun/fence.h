/* SPDX-License-Identifier: MIT */
/*
 * replun/fence.h - write fences: how a datapath that serves a LUN lets the engine quiesce its
 * writers around a group snapshot (write-order consistent recovery points). A datapath
 * registers one fence per LUN it serves read-write and unregisters it when it stops serving.
 * The engine pauses every fence of a group's LUNs, takes the group's snapshots, and resumes
 * them (always, also on error; a watchdog process resumes them if the engine dies or holds
 * them too long). See docs/internals/fence.md.
 */
#ifndef REPLUN_FENCE_H
#define REPLUN_FENCE_H

#include <stdbool.h>
#include <stdint.h>

#include "replun/array.h"
#include "replun/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Longest pause control socket path, NUL included (sizeof(sockaddr_un.sun_path)). */
#define RP_FENCE_SOCK_MAX 108

enum rp_fence_kind {
	RP_FENCE_NONE = 0,    /* a writer that cannot be paused (e.g. qemu-nbd): snapshots warn */
	RP_FENCE_PAUSE = 1,   /* nbdkit pause filter: 'p'/'r' on the control socket */
	RP_FENCE_TAPDISK = 2, /* tapdisk: tap-ctl pause/unpause -p <pid> -m <minor> */
};

struct rp_fence {
	int kind;                        /* enum rp_fence_kind */
	int64_t pid;                     /* the serving process; gone = stale (no writer) */
	int minor;                       /* RP_FENCE_TAPDISK: the tapdisk minor; else ignored */
	char control[RP_FENCE_SOCK_MAX]; /* RP_FENCE_PAUSE: absolute control socket path */
	char server[RP_ID_MAX];          /* what serves, for messages ("nbdkit", "qemu-nbd") */
};

/*
 * Registers (replaces) the fence of LUN @id on this host: a small runtime record under the
 * array root (not a metadata commit; a record whose server is gone, or from before a reboot,
 * counts as no writer). RP_EINVAL for a bad kind, pid, minor, control path (relative, too long,
 * control characters) or server name; RP_ENOTFOUND for an unknown LUN. Nothing changes on
 * failure.
 */
RP_EXTERN int rp_fence_register(struct rp_array *a, const char *id, const struct rp_fence *f,
                                struct rp_error *err);
/* Removes the fence of LUN @id; idempotent (no record is success). */
RP_EXTERN int rp_fence_unregister(struct rp_array *a, const char *id, struct rp_error *err);

#ifdef __cplusplus
}
#endif

#endif

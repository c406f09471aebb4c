/* SPDX-License-Identifier: MIT */
/*
 * replun/fence.h - write fences: how a datapath that serves a LUN lets the engine quiesce its
 * writers around a group snapshot (write-order consistent recovery points). Every writer of a
 * LUN (one datapath server; several when hosts share the LUN, rp_lun_present_shared) registers
 * its own fence and unregisters it when it stops serving. The engine pauses every writer of a
 * group's LUNs, takes the group's snapshots, and resumes them (always, also on error; a
 * watchdog process resumes them if the engine dies or holds them too long). See
 * docs/internals/fence.md.
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

/* Longest writer name, NUL included. */
#define RP_FENCE_WRITER_MAX 128

/*
 * Registers (adds, or replaces the earlier record of the same writer) the fence of writer
 * @writer of LUN @id on this host: a small runtime record under the array root (not a metadata
 * commit). @writer names who serves the LUN, stable from register to unregister and unique
 * among the LUN's writers (ReplunSR: the XAPI host ref the LUN is presented to); printable,
 * shorter than RP_FENCE_WRITER_MAX. Records of other writers of the LUN stay; those whose server
 * is gone (pid gone or reused, or registered before a reboot) count as no writer and are
 * removed. RP_EINVAL for a bad kind, pid, minor, control path (relative, too long, control
 * characters), server or writer name; RP_ENOTFOUND for an unknown LUN. Nothing changes on
 * failure.
 */
RP_EXTERN int rp_fence_register_writer(struct rp_array *a, const char *id, const char *writer,
                                       const struct rp_fence *f, struct rp_error *err);
/*
 * rp_fence_register_writer with the writer named by the fence itself: "<host name>:<pid>"
 * ("<host name>:<pid>:<minor>" for a tapdisk), i.e. one record per serving process.
 */
RP_EXTERN int rp_fence_register(struct rp_array *a, const char *id, const struct rp_fence *f,
                                struct rp_error *err);
/*
 * Removes the record of writer @writer of LUN @id (and stale records of the LUN); the other
 * writers' records stay. Idempotent (no record is success).
 */
RP_EXTERN int rp_fence_unregister_writer(struct rp_array *a, const char *id, const char *writer,
                                         struct rp_error *err);
/* Removes the records of every writer of LUN @id; idempotent (no record is success). */
RP_EXTERN int rp_fence_unregister(struct rp_array *a, const char *id, struct rp_error *err);

#ifdef __cplusplus
}
#endif

#endif

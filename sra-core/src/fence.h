/* SPDX-License-Identifier: MIT */
/*
 * fence.h - the engine's side of write fences (replun/fence.h): find the writers of a group's
 * devices, pause them around the group's snapshots, resume them. Internal to libreplun.
 */
#ifndef REPLUN_FENCE_INTERNAL_H
#define REPLUN_FENCE_INTERNAL_H

#include <stddef.h>

#include "engine.h"
#include "model.h"

/* Directory of fence records inside an array's root directory. */
#define FENCE_DIR "fences"
/* Defaults: wait for a pause to take effect / hold the writers paused at most (watchdog). */
#define FENCE_TIMEOUT_MS 5000
#define FENCE_HOLD_MS 15000
/* Arrays without reflink copy snapshots: groups larger than this (MiB) are not paused. */
#define FENCE_COPY_MAX_MB 256

struct fence_hold;

/*
 * Writers among @devs that no fence can pause from here: a datapath without a fence
 * (qemu-nbd), or one served on another host; or every fenced writer when the array copies
 * snapshots (no reflink) and the group is larger than $REPLUN_FENCE_COPY_MAX_MB. Returns how
 * many; @why (may be NULL) gets "device '<id>' is served by <server> (pid N), which has no
 * write fence" (or the size reason) for the first.
 */
size_t fence_unfenced(char *why, size_t len, struct rp_array *a, const struct model_device *devs,
                      size_t n);

/* fence_unfenced over the members of group @group of @a (0 when they cannot be listed). */
size_t fence_group_unfenced(char *why, size_t len, struct rp_array *a, const char *group);

/*
 * Pauses every live writer of @devs (in parallel, each bounded by $REPLUN_FENCE_TIMEOUT_MS,
 * default FENCE_TIMEOUT_MS) and returns the hold in *out (NULL when no device has a live
 * writer). A watchdog process resumes them if this process dies or holds them longer than
 * $REPLUN_FENCE_HOLD_MS (default FENCE_HOLD_MS). On failure nothing stays paused and @err
 * names the device and why (RP_ENOTSUPPORTED: a writer without a fence, or a group too large to
 * copy while paused; RP_ETIMEOUT; RP_EIO).
 */
int fence_pause(struct fence_hold **out, struct rp_array *a, const struct model_device *devs,
                size_t n, struct rp_error *err);

/*
 * Resumes and frees @h (NULL: nothing). Always resumes everything it can; returns < 0 with
 * @err set when a resume failed or the watchdog had resumed the writers before this call
 * (then the snapshots taken under the hold may not be write-order consistent).
 */
int fence_resume(struct fence_hold *h, struct rp_error *err);

#endif

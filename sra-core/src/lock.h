/* SPDX-License-Identifier: MIT */
/*
 * lock.h - advisory locks on files under <array root>/locks/: one per group or standalone
 * device (workflows and sync never race on one group) and one per in-flight intent.
 * Open-file-description locks (F_OFD_SETLK): they conflict between processes AND between two
 * handles of one process, and vanish when the holder dies.
 */
#ifndef REPLUN_LOCK_H
#define REPLUN_LOCK_H

#include <stdbool.h>

#include "engine.h"

/*
 * Takes the write lock on <root>/locks/<id>.lock, waiting at most @timeout_ms
 * (0 = the array's busy timeout). *fd receives the lock (release with unlock()).
 * Errors: RP_EINVAL (bad id), RP_ETIMEOUT, RP_EIO.
 */
int lock_group_timeout(struct rp_array *a, const char *id, int timeout_ms, int *fd,
                       struct rp_error *err);
/* lock_group_timeout with the array's busy timeout. */
int lock_group(struct rp_array *a, const char *id, int *fd, struct rp_error *err);
/*
 * Tries once. *got says whether the lock was taken (then *fd holds it, else *fd = -1).
 * @name is a file name under locks/ without ".lock".
 */
int lock_try(struct rp_array *a, const char *name, int *fd, bool *got, struct rp_error *err);
/* Releases and closes; accepts -1. */
void unlock(int fd);
/* Removes the lock file <root>/locks/<name>.lock (only by its holder, after unlock). */
void lock_remove(struct rp_array *a, const char *name);

#endif

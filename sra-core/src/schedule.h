/* SPDX-License-Identifier: MIT */
/*
 * schedule.h - the RPO schedule: which source groups are due for a sync (rp_sync_due).
 */
#ifndef REPLUN_SCHEDULE_H
#define REPLUN_SCHEDULE_H

#include <stdbool.h>
#include <stdint.h>

/*
 * Whether a group with RPO @rpo_seconds (> 0) whose last session started at @last_started_ms
 * (0 = never synced) is due at @now_ms. When not due, *left_s (may be NULL) receives the whole
 * seconds until it is (rounded up, at least 1); 0 when due.
 */
bool schedule_is_due(int64_t now_ms, int64_t last_started_ms, uint32_t rpo_seconds,
                     int64_t *left_s);

#endif

/* SPDX-License-Identifier: MIT */
/*
 * fence_record.h - the store of write-fence records (replun/fence.h): one file per (LUN,
 * writer) under <array root>/FENCE_DIR, its name and escaping, reading both formats, telling
 * live writers from stale records and removing those under the directory's lock. fence.c
 * builds the public API and pause/resume on it. Format and rules: docs/internals/fence.md.
 */
#ifndef REPLUN_FENCE_RECORD_H
#define REPLUN_FENCE_RECORD_H

#include <stdbool.h>
#include <stddef.h>

#include "engine.h"
#include "fence.h"
#include "replun/fence.h"

#define FENCE_HOST_MAX 256
#define FENCE_BOOT_MAX 40
#define FENCE_FILE_MAX 250 /* longest record file name (NAME_MAX 255, less a margin) */

enum fence_state {
	FENCE_NO_WRITER = 0, /* a stale record: its server is gone */
	FENCE_LOCAL = 1,     /* a live writer on this host */
	FENCE_FOREIGN = 2,   /* a writer registered by another host */
};

struct fence_rec {
	struct rp_fence f;
	char host[FENCE_HOST_MAX];
	char boot[FENCE_BOOT_MAX];
	unsigned long long start;         /* server's start time (clock ticks); 0: unknown */
	char writer[RP_FENCE_WRITER_MAX]; /* whose record */
	char file[FENCE_FILE_MAX + 8];    /* its file name under FENCE_DIR */
	bool legacy;                      /* first format: fences/<device id> */
	enum fence_state state;           /* set by fence_rec_classify_all */
};

/*
 * Loads every record of LUN @id (both formats; a first-format record that a registration is
 * moving and that therefore also exists under its new name counts once) into *out (rp_free).
 * No record: 0 and *n = 0. < 0: unreadable or malformed (@err set).
 */
int fence_rec_load_all(struct fence_rec **out, size_t *n, struct rp_array *a, const char *id,
                       struct rp_error *err);

/* Sets ->state of @n records; returns how many are live (local or foreign). */
size_t fence_rec_classify_all(struct fence_rec *r, size_t n);

/* Removes the stale records of LUN @id under the lock (best effort: a reader found some). */
void fence_rec_clean(struct rp_array *a, const char *id);

/*
 * The writer name fence @f gives itself on this host into @out: "<host>:<pid>"
 * ("<host>:<pid>:<minor>": tapdisk). RP_EINVAL when @f is not a valid fence.
 */
int fence_rec_own_writer(char out[RP_FENCE_WRITER_MAX], const struct rp_fence *f,
                         struct rp_error *err);

/*
 * Writes the record of (@id, @writer) for fence @f (LUN @id must exist), moves or drops a
 * first-format record of @id and removes @id's stale records, all under the lock.
 */
int fence_rec_register(struct rp_array *a, const char *id, const char *writer,
                       const struct rp_fence *f, struct rp_error *err);

/* Removes the record of (@id, @writer) (and a first-format one of that writer) under the lock. */
int fence_rec_unregister(struct rp_array *a, const char *id, const char *writer,
                         struct rp_error *err);

/* Removes every record of LUN @id, both formats, under the lock. */
int fence_rec_unregister_all(struct rp_array *a, const char *id, struct rp_error *err);

#endif

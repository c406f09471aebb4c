/* SPDX-License-Identifier: MIT */
/*
 * engine.h - the open array as both halves of the engine see it (model and replication):
 * its driver, its metadata database, where it lives. Internal to libreplun.
 */
#ifndef REPLUN_ENGINE_H
#define REPLUN_ENGINE_H

#include <limits.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "array_ops.h"
#include "replun/array.h"
#include "replun/common.h"

/* File name of the metadata database inside an array's root directory. */
#define ENGINE_META_FILE "metadata.db"
/* Directory of lock files inside an array's root directory. */
#define ENGINE_LOCK_DIR "locks"
/* Longest array id: a device id "<array id>-<6 digits>" and the snapshot ids derived from it
 * ("<kind>-<device id>-<ms>") must still fit in RP_ID_MAX. */
#define ENGINE_ARRAY_ID_MAX 24
/* Default SQLite busy timeout. */
#define ENGINE_BUSY_TIMEOUT_MS 30000

struct rp_array {
	struct array *drv; /* the driver handle; owned */
	sqlite3 *db;       /* the metadata database; owned */
	char id[RP_ID_MAX];
	char name[RP_NAME_MAX];
	char driver[RP_ID_MAX]; /* driver name as recorded in meta.driver */
	char root[PATH_MAX];    /* absolute, canonical directory of the array */
	char uri[RP_URI_MAX];   /* "file://" + root */
	/* Credentials copied from rp_open_opts (NULL if none); never logged, zeroed on close. */
	char *username;
	char *password;
	int busy_timeout_ms;
	/* The peer last opened by engine_peer (borrowed by callers, closed with this array). */
	struct rp_array *peer_cache;
};

/*
 * Path of a file inside the array root ("<root>/<rel>") into @buf. RP_EINVAL if too long.
 */
int engine_path(char *buf, size_t len, const struct rp_array *a, const char *rel,
                struct rp_error *err);

/*
 * Borrows an open handle of peer @peer_id (NULL: the first peer) of @a: opened on first use
 * (rp_array_open_peer, same errors) and kept until @a is closed, so several operations of one
 * process do not reopen (and re-recover) the peer each time. Do not close it.
 */
int engine_peer(struct rp_array **out, struct rp_array *a, const char *peer_id,
                struct rp_error *err);

/*
 * Creates an array at @root with driver @driver (array_driver_find). rp_array_init calls it
 * with "file"; tests call it with a fake driver. Same errors as rp_array_init.
 */
int engine_array_init(const char *root, const char *driver, const char *id, const char *name,
                      struct rp_error *err);

/*
 * Converts a URI ("file:///abs" or "/abs") to a canonical absolute directory path in @buf
 * (no "..", no trailing '/', symlinks resolved when @must_exist). RP_EINVAL for relative paths,
 * ".." components or other schemes; RP_ENOTFOUND when @must_exist and the path is missing.
 */
int engine_uri_to_path(char *buf, size_t len, const char *uri, bool must_exist,
                       struct rp_error *err);

/*
 * Driver lookup of the engine: the test driver registered with engine__register_driver (if
 * its name matches), else array_driver_find. engine_drv_open/create mirror array_open/create.
 */
const struct array_ops *engine_driver_find(const char *name);
int engine_drv_open(struct array **out, const char *driver, const char *root,
                    const struct rp_open_opts *opts, struct rp_error *err);
int engine_drv_create(const char *driver, const char *root, struct rp_error *err);
/* Test hook: makes @ops (NULL: none) known to the engine under ops->name. Not thread-safe. */
void engine__register_driver(const struct array_ops *ops);

#endif

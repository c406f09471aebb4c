/* SPDX-License-Identifier: MIT */
/*
 * meta.h - the SQLite metadata database of an array: open (WAL, busy timeout, foreign keys),
 * numbered schema migrations, transactions and small statement helpers. See docs/internals/meta.md.
 */
#ifndef REPLUN_META_H
#define REPLUN_META_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "replun/common.h"

/* The schema version this build writes (the number of migration steps). */
int meta_schema_latest(void);

/*
 * Opens (@create: creates) the database file @path, sets WAL, the busy timeout
 * (@busy_timeout_ms, 0 = 30 s), foreign keys, and runs pending migrations.
 * RP_ENOTFOUND if !@create and the file is missing; RP_ECORRUPT if the file is not a database
 * or has a newer schema than this build knows. *out belongs to the caller (meta_close).
 */
int meta_open(sqlite3 **out, const char *path, bool create, int busy_timeout_ms,
              struct rp_error *err);
/* Accepts NULL. */
void meta_close(sqlite3 *db);

/* Runs every migration step above meta.schema_version, each in its own transaction. */
int meta_migrate(sqlite3 *db, struct rp_error *err);
/*
 * Tests only: runs the migration steps up to schema @version (<= meta_schema_latest()), to
 * make a database as an older build left it. RP_EINVAL for an unknown version.
 */
int meta__migrate_to(sqlite3 *db, int version, struct rp_error *err);
/* Current meta.schema_version (0 for an empty database). */
int meta_schema_version(int *out, sqlite3 *db, struct rp_error *err);

/*
 * Sets @err from the last SQLite error of @db (@rc is the failing result code): SQLITE_BUSY
 * and SQLITE_LOCKED map to RP_EBUSY, SQLITE_CORRUPT/NOTADB to RP_ECORRUPT, SQLITE_FULL to
 * RP_ENOSPACE, the rest to RP_EIO. Returns the code.
 */
int meta_error(struct rp_error *err, sqlite3 *db, int rc, const char *what);

/* BEGIN IMMEDIATE (takes the write lock now, waiting up to the busy timeout). */
int meta_txn_begin(sqlite3 *db, struct rp_error *err);
int meta_txn_commit(sqlite3 *db, struct rp_error *err);
/* Rolls back if a transaction is open; never fails (errors are logged). */
void meta_txn_rollback(sqlite3 *db);

/* Runs @sql (one or more statements, no parameters). */
int meta_exec(sqlite3 *db, const char *sql, struct rp_error *err);

/*
 * Prepares @sql and binds parameters described by @types, one character per parameter:
 *   't' const char * (NULL binds NULL)     'i' int64_t        'u' uint64_t (stored as int64)
 *   'b' int (bool/int/enum)                'n' NULL (no argument consumed)
 *   'B' blob: const void *, then size_t length (two arguments, one parameter)
 * *out belongs to the caller (sqlite3_finalize).
 */
int meta_prepare(sqlite3_stmt **out, sqlite3 *db, struct rp_error *err, const char *sql,
                 const char *types, ...);
/*
 * Like meta_prepare, from the connection's statement cache (meta.md "Statement cache"):
 * release the statement with meta_release (never sqlite3_finalize), before any other call
 * could want the same statement. For short reads done within one function.
 */
int meta_prepare_cached(sqlite3_stmt **out, sqlite3 *db, struct rp_error *err, const char *sql,
                        const char *types, ...);
/* Resets a cached statement for its next use (finalizes any other). Accepts NULL. */
void meta_release(sqlite3_stmt *st);
/*
 * Durable commits on (the default, synchronous = FULL) or off (NORMAL: a commit skips its WAL
 * sync; the next durable commit syncs it with everything before). Off only around rows whose
 * loss at a power failure is harmless (sync progress and heartbeats), never a model change.
 */
int meta_durable(sqlite3 *db, bool on, struct rp_error *err);
/*
 * Prepares, binds, steps to completion, releases (cached, see meta.md).
 * *changes (may be NULL) = rows changed.
 */
int meta_run(int *changes, sqlite3 *db, struct rp_error *err, const char *sql, const char *types,
             ...);
/* Steps @st: 1 = a row is ready, 0 = done, < 0 = error (set). */
int meta_step(sqlite3_stmt *st, sqlite3 *db, struct rp_error *err);
/*
 * Runs a query whose answer is one integer (first column of the first row).
 * RP_ENOTFOUND (no message set) when there is no row; NULL reads as 0.
 */
int meta_query_int(int64_t *out, sqlite3 *db, struct rp_error *err, const char *sql,
                   const char *types, ...);
/* Copies column @col of the current row into @buf (empty string for NULL). */
void meta_col_text(char *buf, size_t len, sqlite3_stmt *st, int col);

/* meta table. meta_get: *out owned by the caller; RP_ENOTFOUND (message set) if absent. */
int meta_get(char **out, sqlite3 *db, const char *key, struct rp_error *err);
int meta_set(sqlite3 *db, const char *key, const char *value, struct rp_error *err);

/* Allocates the next device sequence number (1, 2, ...). Must run inside a transaction. */
int meta_next_seq(int64_t *out, sqlite3 *db, struct rp_error *err);

#endif

/* SPDX-License-Identifier: MIT */
/*
 * meta.c - the SQLite metadata database of an array: open with WAL and a busy timeout, the
 * numbered migration list (schema_version in the meta table), transactions, bind helpers.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "meta.h"

/*
 * Migration steps. Step N (1-based) brings the schema from version N-1 to N. Steps are never
 * edited once released; new columns or tables get a new step appended at the end.
 */
static const char *const meta_migrations[] = {
	/* 1: the initial schema (docs/internals/meta.md). */
	"CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);"
	"CREATE TABLE peers(array_id TEXT PRIMARY KEY, uri TEXT NOT NULL);"
	"CREATE TABLE groups(id TEXT PRIMARY KEY, name TEXT NOT NULL, role INTEGER NOT NULL,"
	" peer_array TEXT, rpo INTEGER DEFAULT 0, retention INTEGER DEFAULT 3,"
	" recovery_point TEXT, recovery_point_ms INTEGER, test_snapshot TEXT,"
	" created_ms INTEGER);"
	"CREATE TABLE devices(id TEXT PRIMARY KEY, seq INTEGER UNIQUE NOT NULL,"
	" name TEXT NOT NULL, obj TEXT NOT NULL, wwn TEXT NOT NULL, grp TEXT,"
	" size INTEGER NOT NULL, state INTEGER NOT NULL, read_only INTEGER NOT NULL DEFAULT 0,"
	" peer_array TEXT, peer_device TEXT, snapshot_of TEXT, created_ms INTEGER,"
	" recovery_point TEXT, recovery_point_ms INTEGER, base_snapshot TEXT);"
	"CREATE INDEX devices_grp ON devices(grp);"
	"CREATE INDEX devices_name ON devices(name);"
	"CREATE TABLE lun_meta(device TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,"
	" PRIMARY KEY(device, key));"
	"CREATE TABLE group_meta(grp TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,"
	" PRIMARY KEY(grp, key));"
	"CREATE TABLE snapshots(id TEXT PRIMARY KEY, device TEXT NOT NULL, grp TEXT,"
	" kind TEXT NOT NULL, obj TEXT NOT NULL, wwn TEXT, recovery_point TEXT,"
	" recovery_point_ms INTEGER, created_ms INTEGER NOT NULL);"
	"CREATE INDEX snapshots_device ON snapshots(device, kind);"
	"CREATE TABLE presentations(device TEXT NOT NULL, host TEXT NOT NULL,"
	" rw INTEGER NOT NULL, PRIMARY KEY(device, host));"
	"CREATE TABLE reservations(token TEXT PRIMARY KEY, owner TEXT, size INTEGER NOT NULL,"
	" expires_ms INTEGER);"
	"CREATE TABLE sync_sessions(id TEXT PRIMARY KEY, grp TEXT, device TEXT,"
	" source_array TEXT, target_array TEXT, status INTEGER NOT NULL,"
	" progress INTEGER DEFAULT 0, bytes_total INTEGER DEFAULT 0,"
	" bytes_done INTEGER DEFAULT 0, started_ms INTEGER, finished_ms INTEGER,"
	" recovery_point TEXT, recovery_point_ms INTEGER, full INTEGER DEFAULT 0, error TEXT,"
	" worker_pid INTEGER, worker_start TEXT, heartbeat_ms INTEGER, plan TEXT);"
	"CREATE TABLE intents(id INTEGER PRIMARY KEY AUTOINCREMENT, op TEXT NOT NULL,"
	" payload TEXT NOT NULL, created_ms INTEGER NOT NULL);",
	/* 2: a sync session's warning (docs/internals/sync.md "Warnings"): the recovery point
	 * it made is not write-order consistent (its writers could not be paused). */
	"ALTER TABLE sync_sessions ADD COLUMN warning_code INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE sync_sessions ADD COLUMN warning TEXT;",
	/* 3: the ranges each in-place sync changed on a target without reflink, per recovery
	 * point, so a pruned recovery point's object can be brought up to date instead of a new
	 * full copy (docs/internals/sync.md "Spare objects"). */
	"CREATE TABLE rp_deltas(obj TEXT PRIMARY KEY, device TEXT NOT NULL,"
	" prev_obj TEXT NOT NULL, ranges BLOB NOT NULL);"
	"CREATE INDEX rp_deltas_device ON rp_deltas(device);",
	/* Append new steps here (engine-replication may add its own, see meta.md). */
};

#define META_N_MIGRATIONS ((int)(sizeof(meta_migrations) / sizeof(meta_migrations[0])))

int meta_schema_latest(void)
{
	return META_N_MIGRATIONS;
}

int meta_error(struct rp_error *err, sqlite3 *db, int rc, const char *what)
{
	int code;
	const char *msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);

	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		code = RP_EBUSY;
		break;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		code = RP_ECORRUPT;
		break;
	case SQLITE_FULL:
		code = RP_ENOSPACE;
		break;
	case SQLITE_NOMEM:
		code = RP_ERROR;
		break;
	default:
		code = RP_EIO;
		break;
	}
	return rp_error_set(err, code, "metadata %s: %s", what ? what : "access", msg);
}

int meta_exec(sqlite3 *db, const char *sql, struct rp_error *err)
{
	int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);

	if (rc != SQLITE_OK)
		return meta_error(err, db, rc, "statement");
	return 0;
}

int meta_txn_begin(sqlite3 *db, struct rp_error *err)
{
	int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);

	if (rc != SQLITE_OK)
		return meta_error(err, db, rc, "begin");
	return 0;
}

int meta_txn_commit(sqlite3 *db, struct rp_error *err)
{
	int rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);

	if (rc != SQLITE_OK) {
		(void)meta_error(err, db, rc, "commit");
		meta_txn_rollback(db);
		return err ? err->code : RP_EIO;
	}
	return 0;
}

void meta_txn_rollback(sqlite3 *db)
{
	int rc;

	if (!db || sqlite3_get_autocommit(db))
		return;
	rc = sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		rp_log(RP_LOG_WARNING, "metadata rollback: %s", sqlite3_errmsg(db));
}

static int meta_vbind(sqlite3_stmt *st, sqlite3 *db, struct rp_error *err, const char *types,
                      va_list ap)
{
	int idx = 1, rc = SQLITE_OK;
	const char *t;

	/* A mismatch is a programming error; catch it before reading the variable arguments. */
	if ((int)strlen(types ? types : "") != sqlite3_bind_parameter_count(st))
		return rp_error_set(err, RP_ERROR, "metadata bind: %d parameters, %zu types",
		                    sqlite3_bind_parameter_count(st), strlen(types ? types : ""));
	for (t = types ? types : ""; *t; t++, idx++) {
		switch (*t) {
		case 't': {
			const char *s = va_arg(ap, const char *);

			rc = s ? sqlite3_bind_text(st, idx, s, -1, SQLITE_TRANSIENT)
			       : sqlite3_bind_null(st, idx);
			break;
		}
		case 'i':
			rc = sqlite3_bind_int64(st, idx, (sqlite3_int64)va_arg(ap, int64_t));
			break;
		case 'u':
			rc = sqlite3_bind_int64(st, idx, (sqlite3_int64)va_arg(ap, uint64_t));
			break;
		case 'b':
			rc = sqlite3_bind_int(st, idx, va_arg(ap, int));
			break;
		case 'n':
			rc = sqlite3_bind_null(st, idx);
			break;
		case 'B': {
			const void *p = va_arg(ap, const void *);
			size_t len = va_arg(ap, size_t);

			rc = len > INT_MAX ? SQLITE_TOOBIG
			                   : sqlite3_bind_blob(st, idx, p ? p : "", (int)len,
			                                       SQLITE_TRANSIENT);
			break;
		}
		default:
			return rp_error_set(err, RP_ERROR, "metadata bind: bad type '%c'", *t);
		}
		if (rc != SQLITE_OK)
			return meta_error(err, db, rc, "bind");
	}
	return 0;
}

static int meta_vprepare(sqlite3_stmt **out, sqlite3 *db, struct rp_error *err, const char *sql,
                         const char *types, va_list ap)
{
	sqlite3_stmt *st = NULL;
	int rc;

	rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK) {
		sqlite3_finalize(st);
		return meta_error(err, db, rc, "prepare");
	}
	rc = meta_vbind(st, db, err, types, ap);
	if (rc < 0) {
		sqlite3_finalize(st);
		return rc;
	}
	*out = st;
	return 0;
}

int meta_prepare(sqlite3_stmt **out, sqlite3 *db, struct rp_error *err, const char *sql,
                 const char *types, ...)
{
	va_list ap;
	int rc;

	va_start(ap, types);
	rc = meta_vprepare(out, db, err, sql, types, ap);
	va_end(ap);
	return rc;
}

int meta_step(sqlite3_stmt *st, sqlite3 *db, struct rp_error *err)
{
	int rc = sqlite3_step(st);

	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	return meta_error(err, db, rc, "step");
}

/*
 * Statement cache of meta_run and meta_query_int (which run a statement to its end inside the
 * call): their statements stay prepared on the connection, reset, and are found again by
 * their text. The text is prefixed with META_CACHE_TAG so that the lookup (over the
 * connection's own statement list, sqlite3_next_stmt) never takes a statement some caller
 * prepared with meta_prepare and still owns. No global state: a connection's cache lives and
 * dies with it (meta_close finalizes the tagged statements), so threads using different
 * connections never share anything.
 */
#define META_CACHE_TAG "/* replun cached */ "
#define META_CACHE_MAX 64
#define META_CACHE_SQL_MAX 2048

static bool meta_cached_sql(const char *s)
{
	return s && strncmp(s, META_CACHE_TAG, sizeof(META_CACHE_TAG) - 1) == 0;
}

/* A reset (not running) cached statement of @db whose text is @tagged, else NULL. */
static sqlite3_stmt *meta_cache_find(sqlite3 *db, const char *tagged, int *count)
{
	sqlite3_stmt *st = NULL;

	*count = 0;
	while ((st = sqlite3_next_stmt(db, st)) != NULL) {
		const char *s = sqlite3_sql(st);

		if (!meta_cached_sql(s))
			continue;
		(*count)++;
		if (!sqlite3_stmt_busy(st) && strcmp(s, tagged) == 0)
			return st;
	}
	return NULL;
}

/* Finalizes one idle cached statement of @db (the cache is full). */
static void meta_cache_evict(sqlite3 *db)
{
	sqlite3_stmt *st = NULL;

	while ((st = sqlite3_next_stmt(db, st)) != NULL) {
		if (meta_cached_sql(sqlite3_sql(st)) && !sqlite3_stmt_busy(st)) {
			sqlite3_finalize(st);
			return;
		}
	}
}

static void meta_cache_release(sqlite3_stmt *st);

/* Like meta_vprepare, from the cache when possible; release with meta_cache_release. */
static int meta_vprepare_cached(sqlite3_stmt **out, sqlite3 *db, struct rp_error *err,
                                const char *sql, const char *types, va_list ap)
{
	char tagged[META_CACHE_SQL_MAX];
	sqlite3_stmt *st;
	int n, count = 0, rc;

	n = snprintf(tagged, sizeof(tagged), META_CACHE_TAG "%s", sql);
	if (n < 0 || (size_t)n >= sizeof(tagged))
		return meta_vprepare(out, db, err, sql, types, ap); /* too long: not cached */
	st = meta_cache_find(db, tagged, &count);
	if (!st) {
		if (count >= META_CACHE_MAX)
			meta_cache_evict(db);
		rc = sqlite3_prepare_v2(db, tagged, -1, &st, NULL);
		if (rc != SQLITE_OK) {
			sqlite3_finalize(st);
			return meta_error(err, db, rc, "prepare");
		}
	}
	rc = meta_vbind(st, db, err, types, ap);
	if (rc < 0) {
		meta_cache_release(st);
		return rc;
	}
	*out = st;
	return 0;
}

/* Resets a cached statement for the next call, finalizes any other. */
static void meta_cache_release(sqlite3_stmt *st)
{
	if (!st)
		return;
	if (meta_cached_sql(sqlite3_sql(st)))
		(void)sqlite3_reset(st); /* kept for the next call; its error was reported */
	else
		sqlite3_finalize(st);
}

int meta_prepare_cached(sqlite3_stmt **out, sqlite3 *db, struct rp_error *err, const char *sql,
                        const char *types, ...)
{
	va_list ap;
	int rc;

	va_start(ap, types);
	rc = meta_vprepare_cached(out, db, err, sql, types, ap);
	va_end(ap);
	return rc;
}

void meta_release(sqlite3_stmt *st)
{
	meta_cache_release(st);
}

int meta_durable(sqlite3 *db, bool on, struct rp_error *err)
{
	return meta_exec(db, on ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL", err);
}

int meta_run(int *changes, sqlite3 *db, struct rp_error *err, const char *sql, const char *types,
             ...)
{
	sqlite3_stmt *st = NULL;
	va_list ap;
	int rc;

	va_start(ap, types);
	rc = meta_vprepare_cached(&st, db, err, sql, types, ap);
	va_end(ap);
	if (rc < 0)
		return rc;
	do {
		rc = meta_step(st, db, err);
	} while (rc == 1);
	if (rc == 0 && changes)
		*changes = sqlite3_changes(db);
	meta_cache_release(st);
	return rc;
}

int meta_query_int(int64_t *out, sqlite3 *db, struct rp_error *err, const char *sql,
                   const char *types, ...)
{
	sqlite3_stmt *st = NULL;
	va_list ap;
	int rc;

	va_start(ap, types);
	rc = meta_vprepare_cached(&st, db, err, sql, types, ap);
	va_end(ap);
	if (rc < 0)
		return rc;
	rc = meta_step(st, db, err);
	if (rc == 1) {
		*out = sqlite3_column_int64(st, 0);
		rc = 0;
	} else if (rc == 0) {
		rc = RP_ENOTFOUND;
	}
	meta_cache_release(st);
	return rc;
}

void meta_col_text(char *buf, size_t len, sqlite3_stmt *st, int col)
{
	const unsigned char *s = sqlite3_column_text(st, col);

	(void)rp_strlcpy(buf, s ? (const char *)s : "", len);
}

int meta_get(char **out, sqlite3 *db, const char *key, struct rp_error *err)
{
	sqlite3_stmt *st = NULL;
	const unsigned char *v;
	char *copy;
	int rc;

	rc = meta_prepare(&st, db, err, "SELECT value FROM meta WHERE key = ?", "t", key);
	if (rc < 0)
		return rc;
	rc = meta_step(st, db, err);
	if (rc < 0)
		goto out;
	if (rc == 0) {
		rc = rp_error_set(err, RP_ENOTFOUND, "metadata key '%s' not set", key);
		goto out;
	}
	v = sqlite3_column_text(st, 0);
	copy = rp_strdup(v ? (const char *)v : "");
	if (!copy) {
		rc = rp_error_set(err, RP_ERROR, "out of memory");
		goto out;
	}
	*out = copy;
	rc = 0;
out:
	sqlite3_finalize(st);
	return rc;
}

int meta_set(sqlite3 *db, const char *key, const char *value, struct rp_error *err)
{
	return meta_run(NULL, db, err,
	                "INSERT INTO meta(key, value) VALUES(?, ?)"
	                " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
	                "tt", key, value);
}

int meta_next_seq(int64_t *out, sqlite3 *db, struct rp_error *err)
{
	int64_t seq = 1;
	char buf[32];
	int rc;

	if (sqlite3_get_autocommit(db))
		return rp_error_set(err, RP_ERROR, "sequence allocated outside a transaction");
	rc = meta_query_int(&seq, db, err,
	                    "SELECT CAST(value AS INTEGER) FROM meta"
	                    " WHERE key = 'next_seq'",
	                    "");
	if (rc == RP_ENOTFOUND)
		seq = 1;
	else if (rc < 0)
		return rc;
	if (seq < 1)
		seq = 1;
	/* Never hand out a number a device row already has (a hand-edited or old database). */
	{
		int64_t max = 0;

		rc = meta_query_int(&max, db, err, "SELECT COALESCE(MAX(seq), 0) FROM devices", "");
		if (rc < 0)
			return rc;
		if (max >= seq)
			seq = max + 1;
	}
	(void)snprintf(buf, sizeof(buf), "%" PRId64, seq + 1);
	rc = meta_set(db, "next_seq", buf, err);
	if (rc < 0)
		return rc;
	*out = seq;
	return 0;
}

int meta_schema_version(int *out, sqlite3 *db, struct rp_error *err)
{
	int64_t v = 0;
	int rc;

	rc = meta_query_int(&v, db, err,
	                    "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND"
	                    " name = 'meta'",
	                    "");
	if (rc < 0)
		return rc;
	if (v == 0) {
		*out = 0;
		return 0;
	}
	rc = meta_query_int(&v, db, err,
	                    "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'schema_version'",
	                    "");
	if (rc == RP_ENOTFOUND) {
		*out = 0;
		return 0;
	}
	if (rc < 0)
		return rc;
	if (v < 0 || v > INT32_MAX)
		return rp_error_set(err, RP_ECORRUPT,
		                    "metadata schema version %" PRId64 " is not valid", v);
	*out = (int)v;
	return 0;
}

/* True when meta.schema_version is this build's (one statement; false on any error). */
static bool meta_schema_current(sqlite3 *db)
{
	sqlite3_stmt *st = NULL;
	bool ok = false;

	if (sqlite3_prepare_v2(
	            db, "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'schema_version'", -1,
	            &st, NULL) != SQLITE_OK) {
		sqlite3_finalize(st);
		return false;
	}
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) == SQLITE_INTEGER &&
	    sqlite3_column_int64(st, 0) == META_N_MIGRATIONS)
		ok = true;
	sqlite3_finalize(st);
	return ok;
}

/* Runs the steps above meta.schema_version up to version @upto (<= META_N_MIGRATIONS). */
static int meta_migrate_upto(sqlite3 *db, int upto, struct rp_error *err)
{
	char buf[16];
	int version = 0, rc;

	rc = meta_schema_version(&version, db, err);
	if (rc < 0)
		return rc;
	if (version == upto)
		return 0;
	for (;;) {
		rc = meta_txn_begin(db, err);
		if (rc < 0)
			return rc;
		/* Read the version inside the write transaction: another process may migrate too.
		 */
		rc = meta_schema_version(&version, db, err);
		if (rc < 0)
			goto fail;
		if (version > META_N_MIGRATIONS) {
			rc = rp_error_set(err, RP_ECORRUPT,
			                  "metadata schema version %d is newer than this replun "
			                  "(knows %d)",
			                  version, META_N_MIGRATIONS);
			goto fail;
		}
		if (version >= upto) {
			meta_txn_rollback(db);
			return 0;
		}
		rc = meta_exec(db, meta_migrations[version], err);
		if (rc < 0)
			goto fail;
		(void)snprintf(buf, sizeof(buf), "%d", version + 1);
		rc = meta_set(db, "schema_version", buf, err);
		if (rc < 0)
			goto fail;
		rc = meta_txn_commit(db, err);
		if (rc < 0)
			return rc;
		rp_log(RP_LOG_VERBOSE, "metadata schema migrated to version %d", version + 1);
	}
fail:
	meta_txn_rollback(db);
	return rc;
}

int meta_migrate(sqlite3 *db, struct rp_error *err)
{
	/* Fast path, every open of an up-to-date database: one read, no write lock. Anything
	 * else (no meta table yet, no row, another version, an error) takes the full check. */
	if (meta_schema_current(db))
		return 0;
	return meta_migrate_upto(db, META_N_MIGRATIONS, err);
}

int meta__migrate_to(sqlite3 *db, int version, struct rp_error *err)
{
	if (version < 0 || version > META_N_MIGRATIONS)
		return rp_error_set(err, RP_EINVAL, "no schema version %d (this build knows %d)",
		                    version, META_N_MIGRATIONS);
	return meta_migrate_upto(db, version, err);
}

int meta_open(sqlite3 **out, const char *path, bool create, int busy_timeout_ms,
              struct rp_error *err)
{
	sqlite3 *db = NULL;
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
	int rc;

	if (!create && access(path, F_OK) != 0)
		return rp_error_set_os(err, errno == ENOENT ? RP_ENOTFOUND : RP_EIO, errno,
		                       "metadata '%s'", path);
	if (create)
		flags |= SQLITE_OPEN_CREATE;
	rc = sqlite3_open_v2(path, &db, flags, NULL);
	if (rc != SQLITE_OK) {
		rc = meta_error(err, db, rc, "open");
		goto fail;
	}
	(void)sqlite3_extended_result_codes(db, 1);
	rc = sqlite3_busy_timeout(db, busy_timeout_ms > 0 ? busy_timeout_ms : 30000);
	if (rc != SQLITE_OK) {
		rc = meta_error(err, db, rc, "busy timeout");
		goto fail;
	}
	/* Closing the last connection would checkpoint and delete the WAL (two fsyncs, then a
	 * directory fsync and a header sync when the next command recreates it): keep it; SQLite
	 * checkpoints automatically every 1000 pages and the next opener reads the WAL. */
	rc = sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, (int *)NULL);
	if (rc != SQLITE_OK) {
		rc = meta_error(err, db, rc, "configuration");
		goto fail;
	}
	rc = meta_exec(db, "PRAGMA journal_mode = WAL", err);
	if (rc < 0)
		goto fail;
	/* A short WAL: the first opener after a close rebuilds its index by reading all of it
	 * (1000 pages, 4 MB, cost ~1 ms per open); 128 pages keep that small and checkpoint
	 * (two fsyncs) about every 15 model commits. */
	rc = meta_exec(db, "PRAGMA wal_autocheckpoint = 128", err);
	if (rc < 0)
		goto fail;
	/* FULL, not NORMAL: every commit of the model is a point that must be durable before the
	 * next outside effect (an object, the other array's commit, the caller's answer); see
	 * docs/internals/meta.md "Durability". Set explicitly so a build default cannot change it.
	 */
	rc = meta_exec(db, "PRAGMA synchronous = FULL", err);
	if (rc < 0)
		goto fail;
	rc = meta_exec(db, "PRAGMA foreign_keys = ON", err);
	if (rc < 0)
		goto fail;
	rc = meta_migrate(db, err);
	if (rc < 0)
		goto fail;
	*out = db;
	return 0;
fail:
	meta_close(db); /* also finalizes the statements meta_migrate cached */
	return rc;
}

void meta_close(sqlite3 *db)
{
	sqlite3_stmt *st = NULL, *next;

	if (!db)
		return;
	/* The statement cache's own statements (others belong to their callers). */
	for (st = sqlite3_next_stmt(db, NULL); st; st = next) {
		next = sqlite3_next_stmt(db, st);
		if (meta_cached_sql(sqlite3_sql(st)))
			sqlite3_finalize(st);
	}
	if (sqlite3_close_v2(db) != SQLITE_OK)
		rp_log(RP_LOG_WARNING, "metadata close: %s", sqlite3_errmsg(db));
}

/* SPDX-License-Identifier: MIT */
/* test_meta.c - the metadata database: migrations, WAL, transactions, sequences, errors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"

struct mfx {
	char dir[PATH_MAX];
	char db[PATH_MAX + 32];
};

static int mfx_setup(void **state)
{
	struct mfx *m = calloc(1, sizeof(*m));

	assert_non_null(m);
	tmpdir_make(m->dir, sizeof(m->dir));
	(void)snprintf(m->db, sizeof(m->db), "%s/metadata.db", m->dir);
	*state = m;
	return 0;
}

static int mfx_teardown(void **state)
{
	struct mfx *m = *state;

	tmpdir_remove(m->dir);
	free(m);
	return 0;
}

static void test_meta__migrate_from_empty(void **state)
{
	struct mfx *m = *state;
	struct rp_error err = { 0 };
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int version = -1;
	int64_t n = 0;
	char *mode = NULL;

	assert_int_equal(meta_open(&db, m->db, true, 0, &err), 0);
	assert_int_equal(meta_schema_version(&version, db, &err), 0);
	assert_int_equal(version, meta_schema_latest());
	assert_true(version >= 1);
	/* Every table of schema v1 is there. */
	assert_int_equal(meta_query_int(&n, db, &err,
	                                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'"
	                                " AND name IN ('meta', 'peers', 'groups', 'devices',"
	                                " 'lun_meta', 'group_meta', 'snapshots', 'presentations',"
	                                " 'reservations', 'sync_sessions', 'intents')",
	                                ""),
	                 0);
	assert_int_equal(n, 11);
	/* WAL and foreign keys are on. */
	assert_int_equal(meta_prepare(&st, db, &err, "PRAGMA journal_mode", ""), 0);
	assert_int_equal(meta_step(st, db, &err), 1);
	mode = strdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	assert_string_equal(mode, "wal");
	free(mode);
	assert_int_equal(meta_query_int(&n, db, &err, "PRAGMA foreign_keys", ""), 0);
	assert_int_equal(n, 1);
	meta_close(db);

	/* Re-opening runs no migration again and keeps the version. */
	db = NULL;
	assert_int_equal(meta_open(&db, m->db, false, 0, &err), 0);
	assert_int_equal(meta_schema_version(&version, db, &err), 0);
	assert_int_equal(version, meta_schema_latest());
	meta_close(db);
}

static void test_meta__refuses_newer_schema(void **state)
{
	struct mfx *m = *state;
	struct rp_error err = { 0 };
	sqlite3 *db = NULL;
	char v[16];

	assert_int_equal(meta_open(&db, m->db, true, 0, &err), 0);
	(void)snprintf(v, sizeof(v), "%d", meta_schema_latest() + 1);
	assert_int_equal(meta_set(db, "schema_version", v, &err), 0);
	meta_close(db);
	db = NULL;
	assert_error(meta_open(&db, m->db, false, 0, &err), err, RP_ECORRUPT);
	assert_null(db);
	assert_non_null(strstr(err.msg, "newer"));
}

/*
 * A database from an older build (here: schema 0, a meta table and nothing else, with the
 * version row as text or absent) is migrated by the full check the open falls back to when its
 * one-statement fast path does not see this build's version.
 */
static void test_meta__migrates_older_schema(void **state)
{
	static const char *const old_dbs[] = {
		"CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT);"
		"INSERT INTO meta VALUES('schema_version', '0');",
		"CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT);",
	};
	struct mfx *m = *state;
	struct rp_error err = { 0 };
	sqlite3 *db = NULL;
	int version = -1;
	int64_t n = 0;
	size_t i;

	for (i = 0; i < sizeof(old_dbs) / sizeof(old_dbs[0]); i++) {
		(void)unlink(m->db);
		assert_int_equal(sqlite3_open(m->db, &db), SQLITE_OK);
		assert_int_equal(sqlite3_exec(db, old_dbs[i], NULL, NULL, NULL), SQLITE_OK);
		assert_int_equal(sqlite3_close(db), SQLITE_OK);
		db = NULL;
		assert_int_equal(meta_open(&db, m->db, false, 0, &err), 0);
		assert_int_equal(meta_schema_version(&version, db, &err), 0);
		assert_int_equal(version, meta_schema_latest());
		assert_int_equal(meta_query_int(&n, db, &err,
		                                "SELECT COUNT(*) FROM sqlite_master WHERE type ="
		                                " 'table' AND name IN ('devices', 'intents')",
		                                ""),
		                 0);
		assert_int_equal(n, 2);
		meta_close(db);
		db = NULL;
		/* The next open takes the fast path and changes nothing. */
		assert_int_equal(meta_open(&db, m->db, false, 0, &err), 0);
		assert_int_equal(meta_schema_version(&version, db, &err), 0);
		assert_int_equal(version, meta_schema_latest());
		meta_close(db);
		db = NULL;
	}
}

/*
 * Schema 2 adds the sync session's warning: a database left at schema 1 by an older build, with
 * a finished session, opens migrated; the old row reads as "no warning" and can take one.
 */
static void test_meta__migrates_v1_sync_sessions(void **state)
{
	struct mfx *m = *state;
	struct rp_error err = { 0 };
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int version = -1;
	int64_t n = -1;

	assert_int_equal(sqlite3_open(m->db, &db), SQLITE_OK);
	assert_int_equal(meta__migrate_to(db, 1, &err), 0);
	assert_int_equal(meta_schema_version(&version, db, &err), 0);
	assert_int_equal(version, 1);
	assert_int_equal(meta_query_int(&n, db, &err,
	                                "SELECT COUNT(*) FROM pragma_table_info('sync_sessions')"
	                                " WHERE name IN ('warning_code', 'warning')",
	                                ""),
	                 0);
	assert_int_equal(n, 0);
	assert_int_equal(meta_run(NULL, db, &err,
	                          "INSERT INTO sync_sessions(id, grp, status, started_ms,"
	                          " finished_ms, plan) VALUES('s1', 'g', 1, 10, 20, 'rp x 1')",
	                          ""),
	                 0);
	assert_int_equal(meta__migrate_to(db, meta_schema_latest() + 1, &err), RP_EINVAL);
	meta_close(db);
	db = NULL;

	assert_int_equal(meta_open(&db, m->db, false, 0, &err), 0);
	assert_int_equal(meta_schema_version(&version, db, &err), 0);
	assert_int_equal(version, meta_schema_latest());
	assert_true(version >= 2);
	assert_int_equal(sqlite3_prepare_v2(db,
	                                    "SELECT warning_code, warning, plan FROM sync_sessions"
	                                    " WHERE id = 's1'",
	                                    -1, &st, NULL),
	                 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 0);
	assert_int_equal(sqlite3_column_type(st, 1), SQLITE_NULL);
	assert_string_equal((const char *)sqlite3_column_text(st, 2), "rp x 1");
	sqlite3_finalize(st);
	assert_int_equal(meta_run(NULL, db, &err,
	                          "UPDATE sync_sessions SET warning_code = 5, warning = 'w'"
	                          " WHERE id = 's1'",
	                          ""),
	                 0);
	assert_int_equal(meta_query_int(&n, db, &err,
	                                "SELECT warning_code FROM sync_sessions WHERE id = 's1'",
	                                ""),
	                 0);
	assert_int_equal(n, 5);
	meta_close(db);
}

static int stmt_count(sqlite3 *db)
{
	sqlite3_stmt *st = NULL;
	int n = 0;

	while ((st = sqlite3_next_stmt(db, st)) != NULL)
		n++;
	return n;
}

/*
 * meta_run / meta_query_int keep their statements prepared on the connection and find them
 * again by text: same answers as fresh statements, no growth on repeats, bounded, errors
 * leave the statement usable, and statements a caller holds are never taken.
 */
static void test_meta__statement_cache(void **state)
{
	struct mfx *m = *state;
	struct rp_error err = { 0 };
	sqlite3 *db = NULL;
	sqlite3_stmt *held = NULL;
	char sql[64];
	int64_t v = 0;
	int i, n, changes = -1;

	assert_int_equal(meta_open(&db, m->db, true, 0, &err), 0);
	assert_int_equal(meta_query_int(&v, db, &err, "SELECT ? + 1", "i", (int64_t)1), 0);
	assert_int_equal(v, 2);
	n = stmt_count(db);
	for (i = 0; i < 10; i++) {
		assert_int_equal(meta_query_int(&v, db, &err, "SELECT ? + 1", "i", (int64_t)i), 0);
		assert_int_equal(v, i + 1);
	}
	assert_int_equal(stmt_count(db), n);
	/* One buffer, different texts: different statements, each with its own answer. */
	for (i = 0; i < 100; i++) {
		(void)snprintf(sql, sizeof(sql), "SELECT %d", i);
		assert_int_equal(meta_query_int(&v, db, &err, sql, ""), 0);
		assert_int_equal(v, i);
	}
	assert_true(stmt_count(db) <= 64);
	/* A failing statement reports its error and works again next time. */
	assert_int_equal(meta_run(NULL, db, &err, "CREATE TABLE t(k TEXT PRIMARY KEY)", ""), 0);
	assert_int_equal(meta_run(&changes, db, &err, "INSERT INTO t(k) VALUES(?)", "t", "a"), 0);
	assert_int_equal(changes, 1);
	assert_error(meta_run(NULL, db, &err, "INSERT INTO t(k) VALUES(?)", "t", "a"), err, RP_EIO);
	rp_error_clear(&err);
	assert_int_equal(meta_run(&changes, db, &err, "INSERT INTO t(k) VALUES(?)", "t", "b"), 0);
	assert_int_equal(changes, 1);
	/* A statement a caller prepared and is stepping is not the cache's. */
	assert_int_equal(meta_prepare(&held, db, &err, "SELECT k FROM t ORDER BY k", ""), 0);
	assert_int_equal(meta_step(held, db, &err), 1);
	assert_int_equal(meta_query_int(&v, db, &err, "SELECT COUNT(*) FROM t", ""), 0);
	assert_int_equal(v, 2);
	assert_string_equal((const char *)sqlite3_column_text(held, 0), "a");
	assert_int_equal(meta_step(held, db, &err), 1);
	assert_string_equal((const char *)sqlite3_column_text(held, 0), "b");
	sqlite3_finalize(held);
	/* A transaction rolled back sees the cached statements' writes undone. */
	assert_int_equal(meta_txn_begin(db, &err), 0);
	assert_int_equal(meta_run(NULL, db, &err, "INSERT INTO t(k) VALUES(?)", "t", "c"), 0);
	meta_txn_rollback(db);
	assert_int_equal(meta_query_int(&v, db, &err, "SELECT COUNT(*) FROM t", ""), 0);
	assert_int_equal(v, 2);
	/* Closing finalizes the cache (ASan reports a leak otherwise). */
	meta_close(db);
}

static void test_meta__missing_and_garbage(void **state)
{
	struct mfx *m = *state;
	struct rp_error err = { 0 };
	sqlite3 *db = NULL;
	FILE *f;

	assert_error(meta_open(&db, m->db, false, 0, &err), err, RP_ENOTFOUND);
	f = fopen(m->db, "w");
	assert_non_null(f);
	assert_true(fputs("this is not a database, just text that is long enough to be read as a "
	                  "header by sqlite when it opens the file..........................",
	                  f) >= 0);
	assert_int_equal(fclose(f), 0);
	rp_error_clear(&err);
	assert_error(meta_open(&db, m->db, false, 0, &err), err, RP_ECORRUPT);
	assert_null(db);
}

static void test_meta__txn_and_seq(void **state)
{
	struct mfx *m = *state;
	struct rp_error err = { 0 };
	sqlite3 *db = NULL;
	int64_t s1 = 0, s2 = 0, s3 = 0;
	char *v = NULL;

	assert_int_equal(meta_open(&db, m->db, true, 0, &err), 0);
	/* Outside a transaction a sequence is refused. */
	assert_error(meta_next_seq(&s1, db, &err), err, RP_ERROR);
	rp_error_clear(&err);
	assert_int_equal(meta_txn_begin(db, &err), 0);
	assert_int_equal(meta_next_seq(&s1, db, &err), 0);
	assert_int_equal(meta_next_seq(&s2, db, &err), 0);
	assert_int_equal(meta_txn_commit(db, &err), 0);
	assert_true(s1 >= 1);
	assert_int_equal(s2, s1 + 1);
	/* A rolled-back allocation is handed out again: nothing was used. */
	assert_int_equal(meta_txn_begin(db, &err), 0);
	assert_int_equal(meta_next_seq(&s3, db, &err), 0);
	assert_int_equal(meta_set(db, "name", "rolled back", &err), 0);
	meta_txn_rollback(db);
	assert_error(meta_get(&v, db, "name", &err), err, RP_ENOTFOUND);
	rp_error_clear(&err);
	assert_int_equal(meta_txn_begin(db, &err), 0);
	assert_int_equal(meta_next_seq(&s3, db, &err), 0);
	assert_int_equal(meta_txn_commit(db, &err), 0);
	assert_int_equal(s3, s2 + 1);
	/* meta_set/get round trip and overwrite. */
	assert_int_equal(meta_set(db, "k", "one", &err), 0);
	assert_int_equal(meta_set(db, "k", "two", &err), 0);
	assert_int_equal(meta_get(&v, db, "k", &err), 0);
	assert_string_equal(v, "two");
	rp_free(v);
	/* Rollback with no transaction open is harmless. */
	meta_txn_rollback(db);
	meta_close(db);
}

/* meta_durable switches commits between synced (FULL, the default) and unsynced (NORMAL). */
static void test_meta__durable(void **state)
{
	struct mfx *m = *state;
	struct rp_error err = { 0 };
	sqlite3 *db = NULL, *db2 = NULL;
	int64_t sync = -1;
	char *v = NULL;

	assert_int_equal(meta_open(&db, m->db, true, 0, &err), 0);
	assert_int_equal(meta_query_int(&sync, db, &err, "PRAGMA synchronous", ""), 0);
	assert_int_equal(sync, 2); /* FULL */
	assert_int_equal(meta_durable(db, false, &err), 0);
	assert_int_equal(meta_query_int(&sync, db, &err, "PRAGMA synchronous", ""), 0);
	assert_int_equal(sync, 1); /* NORMAL */
	/* an unsynced commit is still a commit: another connection sees it at once */
	assert_int_equal(meta_set(db, "progress", "42", &err), 0);
	assert_int_equal(meta_open(&db2, m->db, false, 0, &err), 0);
	assert_int_equal(meta_get(&v, db2, "progress", &err), 0);
	assert_string_equal(v, "42");
	rp_free(v);
	assert_int_equal(meta_durable(db, true, &err), 0);
	assert_int_equal(meta_query_int(&sync, db, &err, "PRAGMA synchronous", ""), 0);
	assert_int_equal(sync, 2);
	/* per connection: the other one never changed */
	assert_int_equal(meta_query_int(&sync, db2, &err, "PRAGMA synchronous", ""), 0);
	assert_int_equal(sync, 2);
	meta_close(db2);
	meta_close(db);
}

static void test_meta__busy_is_ebusy(void **state)
{
	struct mfx *m = *state;
	struct rp_error err = { 0 };
	sqlite3 *db1 = NULL, *db2 = NULL;

	assert_int_equal(meta_open(&db1, m->db, true, 0, &err), 0);
	assert_int_equal(meta_open(&db2, m->db, false, 100, &err), 0);
	assert_int_equal(meta_txn_begin(db1, &err), 0);
	/* The second writer waits for its 100 ms busy timeout, then gets RP_EBUSY. */
	assert_error(meta_txn_begin(db2, &err), err, RP_EBUSY);
	meta_txn_rollback(db1);
	rp_error_clear(&err);
	assert_int_equal(meta_txn_begin(db2, &err), 0);
	assert_int_equal(meta_txn_commit(db2, &err), 0);
	meta_close(db1);
	meta_close(db2);
}

static void test_meta__bind_helpers(void **state)
{
	struct mfx *m = *state;
	struct rp_error err = { 0 };
	sqlite3 *db = NULL;
	int64_t n = 0;
	int changes = -1;

	assert_int_equal(meta_open(&db, m->db, true, 0, &err), 0);
	assert_int_equal(meta_run(&changes, db, &err,
	                          "INSERT INTO reservations(token, owner, size, expires_ms)"
	                          " VALUES(?, ?, ?, ?)",
	                          "ttun", "t1", NULL, (uint64_t)5),
	                 0);
	assert_int_equal(changes, 1);
	assert_int_equal(meta_query_int(&n, db, &err,
	                                "SELECT size FROM reservations WHERE owner IS NULL AND"
	                                " expires_ms IS NULL",
	                                ""),
	                 0);
	assert_int_equal(n, 5);
	assert_int_equal(meta_query_int(&n, db, NULL,
	                                "SELECT size FROM reservations WHERE"
	                                " token = 'none'",
	                                ""),
	                 RP_ENOTFOUND);
	/* SQL errors carry a message. */
	assert_error(meta_run(NULL, db, &err, "SELECT * FROM no_such_table", ""), err, RP_EIO);
	rp_error_clear(&err);
	assert_error(meta_run(NULL, db, &err, "SELECT ?", "x", 1), err, RP_ERROR);
	meta_close(db);
}

int model_meta_tests(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_meta__migrate_from_empty, mfx_setup,
		                                mfx_teardown),
		cmocka_unit_test_setup_teardown(test_meta__refuses_newer_schema, mfx_setup,
		                                mfx_teardown),
		cmocka_unit_test_setup_teardown(test_meta__migrates_older_schema, mfx_setup,
		                                mfx_teardown),
		cmocka_unit_test_setup_teardown(test_meta__migrates_v1_sync_sessions, mfx_setup,
		                                mfx_teardown),
		cmocka_unit_test_setup_teardown(test_meta__statement_cache, mfx_setup,
		                                mfx_teardown),
		cmocka_unit_test_setup_teardown(test_meta__missing_and_garbage, mfx_setup,
		                                mfx_teardown),
		cmocka_unit_test_setup_teardown(test_meta__txn_and_seq, mfx_setup, mfx_teardown),
		cmocka_unit_test_setup_teardown(test_meta__durable, mfx_setup, mfx_teardown),
		cmocka_unit_test_setup_teardown(test_meta__busy_is_ebusy, mfx_setup, mfx_teardown),
		cmocka_unit_test_setup_teardown(test_meta__bind_helpers, mfx_setup, mfx_teardown),
	};

	return cmocka_run_group_tests_name("core.model.meta", tests, NULL, NULL);
}

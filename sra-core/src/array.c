/* SPDX-License-Identifier: MIT */
/*
 * array.c - public rp_array_*: create, open and close arrays (driver + metadata database),
 * array information, pairing, opening a peer.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine.h"
#include "meta.h"
#include "model.h"

static const struct array_ops *engine_test_ops;

void engine__register_driver(const struct array_ops *ops)
{
	engine_test_ops = ops;
}

const struct array_ops *engine_driver_find(const char *name)
{
	if (name && engine_test_ops && strcmp(engine_test_ops->name, name) == 0)
		return engine_test_ops;
	return array_driver_find(name);
}

int engine_drv_create(const char *driver, const char *root, struct rp_error *err)
{
	const struct array_ops *ops = engine_driver_find(driver);

	if (ops && ops == engine_test_ops) {
		if (!ops->create)
			return rp_error_set(err, RP_ENOTSUPPORTED,
			                    "driver '%s' cannot create arrays", driver);
		return ops->create(root, err);
	}
	return array_create(driver, root, err);
}

int engine_drv_open(struct array **out, const char *driver, const char *root,
                    const struct rp_open_opts *opts, struct rp_error *err)
{
	const struct array_ops *ops = engine_driver_find(driver);
	struct array *a = NULL;
	int rc;

	if (!ops || ops != engine_test_ops)
		return array_open(out, driver, root, opts, err);
	a = rp_calloc(1, sizeof(*a));
	if (!a)
		return rp_error_set(err, RP_ERROR, "out of memory");
	a->ops = ops;
	(void)rp_strlcpy(a->root, root, sizeof(a->root));
	if (ops->priv_size) {
		a->priv = rp_calloc(1, ops->priv_size);
		if (!a->priv) {
			rp_free(a);
			return rp_error_set(err, RP_ERROR, "out of memory");
		}
	}
	rc = ops->open(a, root, opts, err);
	if (rc < 0) {
		ops->close(a);
		rp_free(a->priv);
		rp_free(a);
		return rc;
	}
	*out = a;
	return 0;
}

int engine_path(char *buf, size_t len, const struct rp_array *a, const char *rel,
                struct rp_error *err)
{
	int n = snprintf(buf, len, "%s/%s", a->root, rel);

	if (n < 0 || (size_t)n >= len)
		return rp_error_set(err, RP_EINVAL, "path under '%s' is too long", a->root);
	return 0;
}

int engine_uri_to_path(char *buf, size_t len, const char *uri, bool must_exist,
                       struct rp_error *err)
{
	char norm[PATH_MAX], resolved[PATH_MAX];
	const char *p, *seg;
	size_t o = 0;

	if (!uri || !*uri)
		return rp_error_set(err, RP_EINVAL, "array path is empty");
	if (strlen(uri) >= RP_URI_MAX)
		return rp_error_set(err, RP_EINVAL, "array path is too long");
	p = uri;
	if (strncmp(p, "file://", 7) == 0)
		p += 7;
	else if (strstr(p, "://"))
		return rp_error_set(err, RP_EINVAL,
		                    "array URI '%.200s' is not supported (use "
		                    "file:///abs/path or an absolute path)",
		                    uri);
	if (p[0] != '/')
		return rp_error_set(err, RP_EINVAL,
		                    "array path '%.200s' is not absolute (use file:///abs/path or "
		                    "/abs/path)",
		                    uri);
	/* Normalise: collapse '/' runs, drop "." components, refuse "..". */
	norm[o] = '\0';
	for (seg = p; *seg;) {
		size_t l;

		while (*seg == '/')
			seg++;
		if (!*seg)
			break;
		l = strcspn(seg, "/");
		if (l == 2 && seg[0] == '.' && seg[1] == '.')
			return rp_error_set(err, RP_EINVAL, "array path '%.200s' contains '..'",
			                    uri);
		if (!(l == 1 && seg[0] == '.')) {
			if (o + 1 + l + 1 > sizeof(norm))
				return rp_error_set(err, RP_EINVAL, "array path is too long");
			norm[o++] = '/';
			memcpy(norm + o, seg, l);
			o += l;
			norm[o] = '\0';
		}
		seg += l;
	}
	if (o == 0)
		return rp_error_set(err, RP_EINVAL, "array path '/' is not allowed");
	if (must_exist) {
		if (!realpath(norm, resolved)) {
			if (errno == ENOENT || errno == ENOTDIR)
				return rp_error_set(err, RP_ENOTFOUND,
				                    "no replun array at '%.200s'", uri);
			return rp_error_set_os(err, RP_EIO, errno, "array path '%.200s'", uri);
		}
		if (rp_strlcpy(buf, resolved, len) < 0)
			return rp_error_set(err, RP_EINVAL, "array path is too long");
		return 0;
	}
	if (rp_strlcpy(buf, norm, len) < 0)
		return rp_error_set(err, RP_EINVAL, "array path is too long");
	return 0;
}

static int array_dir_state(const char *root, bool *exists, bool *empty, struct rp_error *err)
{
	struct dirent *de;
	DIR *d;

	*exists = false;
	*empty = true;
	d = opendir(root);
	if (!d) {
		if (errno == ENOENT)
			return 0;
		if (errno == ENOTDIR)
			return rp_error_set(err, RP_EINVAL, "'%s' is not a directory", root);
		return rp_error_set_os(err, RP_EIO, errno, "directory '%s'", root);
	}
	*exists = true;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
		    strcmp(de->d_name, "lost+found") == 0)
			continue;
		*empty = false;
		break;
	}
	(void)closedir(d);
	return 0;
}

/* After a failed init: removes the empty directories it made (rmdir never removes data). */
static void array_init_cleanup(const char *root, bool root_existed)
{
	char sub[PATH_MAX + 260];
	struct dirent *de;
	DIR *d;

	d = opendir(root);
	if (!d)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
		    strcmp(de->d_name, "lost+found") == 0)
			continue;
		(void)snprintf(sub, sizeof(sub), "%s/%s", root, de->d_name);
		(void)rmdir(sub);
	}
	(void)closedir(d);
	if (!root_existed)
		(void)rmdir(root);
}

int engine_array_init(const char *path, const char *driver, const char *id, const char *name,
                      struct rp_error *err)
{
	char root[PATH_MAX], dbpath[PATH_MAX + 32], tmppath[PATH_MAX + 32], lockdir[PATH_MAX + 16];
	char buf[32];
	bool exists = false, empty = true;
	sqlite3 *db = NULL;
	int rc;

	rc = rp_id_check(id, "array id", err);
	if (rc < 0)
		return rc;
	if (strlen(id) > ENGINE_ARRAY_ID_MAX)
		return rp_error_set(err, RP_EINVAL, "array id '%s' is longer than %d characters",
		                    id, ENGINE_ARRAY_ID_MAX);
	if (name) {
		rc = model_name_check(name, "array name", err);
		if (rc < 0)
			return rc;
	}
	if (!engine_driver_find(driver))
		return rp_error_set(err, RP_ENOTSUPPORTED, "array driver '%s' is not known",
		                    driver);
	rc = engine_uri_to_path(root, sizeof(root), path, false, err);
	if (rc < 0)
		return rc;
	(void)snprintf(dbpath, sizeof(dbpath), "%s/" ENGINE_META_FILE, root);
	(void)snprintf(tmppath, sizeof(tmppath), "%s/" ENGINE_META_FILE ".init", root);
	(void)snprintf(lockdir, sizeof(lockdir), "%s/" ENGINE_LOCK_DIR, root);
	if (access(dbpath, F_OK) == 0)
		return rp_error_set(err, RP_EEXISTS, "'%s' is already a replun array", root);
	rc = array_dir_state(root, &exists, &empty, err);
	if (rc < 0)
		return rc;
	if (exists && !empty)
		return rp_error_set(err, RP_EEXISTS, "directory '%s' is not empty", root);
	rc = engine_drv_create(driver, root, err);
	if (rc < 0)
		goto fail;
	if (mkdir(lockdir, 0700) < 0 && errno != EEXIST) {
		rc = rp_error_set_os(err, RP_EIO, errno, "directory '%s'", lockdir);
		goto fail;
	}
	/* Build the database under a temporary name so a crash never leaves a half array. */
	(void)unlink(tmppath);
	rc = meta_open(&db, tmppath, true, 0, err);
	if (rc < 0)
		goto fail;
	rc = meta_txn_begin(db, err);
	if (rc < 0)
		goto fail;
	(void)snprintf(buf, sizeof(buf), "%" PRId64, rp_now_ms());
	rc = meta_set(db, "array_id", id, err);
	if (rc == 0)
		rc = meta_set(db, "name", name ? name : id, err);
	if (rc == 0)
		rc = meta_set(db, "driver", driver, err);
	if (rc == 0)
		rc = meta_set(db, "created_ms", buf, err);
	if (rc == 0)
		rc = meta_set(db, "next_seq", "1", err);
	if (rc < 0) {
		meta_txn_rollback(db);
		goto fail;
	}
	rc = meta_txn_commit(db, err);
	if (rc < 0)
		goto fail;
	/* Back to a rollback journal for the rename (no -wal file tied to the temp name). */
	rc = meta_exec(db, "PRAGMA journal_mode = DELETE", err);
	if (rc < 0)
		goto fail;
	meta_close(db);
	db = NULL;
	if (rename(tmppath, dbpath) < 0) {
		rc = rp_error_set_os(err, RP_EIO, errno, "metadata '%s'", dbpath);
		goto fail;
	}
	rp_log(RP_LOG_INFO, "array '%s' created at '%s' (driver %s)", id, root, driver);
	return 0;
fail:
	meta_close(db);
	(void)unlink(tmppath);
	(void)snprintf(tmppath, sizeof(tmppath), "%s/" ENGINE_META_FILE ".init-wal", root);
	(void)unlink(tmppath);
	(void)snprintf(tmppath, sizeof(tmppath), "%s/" ENGINE_META_FILE ".init-shm", root);
	(void)unlink(tmppath);
	array_init_cleanup(root, exists);
	return rc;
}

int rp_array_init(const char *path, const char *id, const char *name, struct rp_error *err)
{
	return engine_array_init(path, "file", id, name, err);
}

void rp_array_close(struct rp_array *a)
{
	if (!a)
		return;
	rp_array_close(a->peer_cache);
	if (a->drv)
		array_close(a->drv);
	meta_close(a->db);
	if (a->password) {
		explicit_bzero(a->password, strlen(a->password));
		rp_free(a->password);
	}
	rp_free(a->username);
	rp_free(a);
}

/* Reads array_id, name and driver from the meta table in one statement. */
static int array_identity_load(struct rp_array *a, struct rp_error *err)
{
	static const char *const keys[] = { "array_id", "name", "driver" };
	char *const dst[] = { a->id, a->name, a->driver };
	const size_t len[] = { sizeof(a->id), sizeof(a->name), sizeof(a->driver) };
	bool seen[3] = { false, false, false };
	sqlite3_stmt *st = NULL;
	size_t i;
	int rc;

	rc = meta_prepare(&st, a->db, err,
	                  "SELECT key, value FROM meta WHERE key IN ('array_id', 'name', 'driver')",
	                  "");
	if (rc < 0)
		return rc;
	while ((rc = meta_step(st, a->db, err)) == 1) {
		const char *k = (const char *)sqlite3_column_text(st, 0);

		for (i = 0; k && i < 3; i++) {
			if (strcmp(k, keys[i]) == 0) {
				meta_col_text(dst[i], len[i], st, 1);
				seen[i] = true;
			}
		}
	}
	sqlite3_finalize(st);
	if (rc < 0)
		return rc;
	for (i = 0; i < 3; i++) {
		if (!seen[i])
			return rp_error_set(err, RP_ENOTFOUND, "metadata key '%s' not set",
			                    keys[i]);
	}
	return 0;
}

int rp_array_open(struct rp_array **out, const char *uri, const struct rp_open_opts *opts,
                  struct rp_error *err)
{
	char dbpath[PATH_MAX + 32];
	struct rp_array *a = NULL;
	int rc;

	if (!out)
		return rp_error_set(err, RP_EINVAL, "invalid argument: 'out'");
	a = rp_calloc(1, sizeof(*a));
	if (!a)
		return rp_error_set(err, RP_ERROR, "out of memory");
	rc = engine_uri_to_path(a->root, sizeof(a->root), uri, true, err);
	if (rc < 0)
		goto fail;
	if (strlen(a->root) + 8 > sizeof(a->uri)) {
		rc = rp_error_set(err, RP_EINVAL, "array path is too long");
		goto fail;
	}
	memcpy(a->uri, "file://", 7);
	memcpy(a->uri + 7, a->root, strlen(a->root) + 1);
	a->busy_timeout_ms =
	        opts && opts->busy_timeout_ms > 0 ? opts->busy_timeout_ms : ENGINE_BUSY_TIMEOUT_MS;
	if (opts && opts->username) {
		a->username = rp_strdup(opts->username);
		if (!a->username) {
			rc = rp_error_set(err, RP_ERROR, "out of memory");
			goto fail;
		}
	}
	if (opts && opts->password) {
		a->password = rp_strdup(opts->password);
		if (!a->password) {
			rc = rp_error_set(err, RP_ERROR, "out of memory");
			goto fail;
		}
	}
	(void)snprintf(dbpath, sizeof(dbpath), "%s/" ENGINE_META_FILE, a->root);
	rc = meta_open(&a->db, dbpath, false, a->busy_timeout_ms, err);
	if (rc == RP_ENOTFOUND)
		rc = rp_error_set(err, RP_ENOTFOUND, "no replun array at '%.200s'", uri);
	if (rc < 0)
		goto fail;
	rc = array_identity_load(a, err);
	if (rc < 0)
		goto fail;
	rc = engine_drv_open(&a->drv, a->driver, a->root, opts, err);
	if (rc < 0)
		goto fail;
	{
		struct rp_error rerr = { 0 };

		if (model_recover(a, &rerr) < 0)
			rp_log(RP_LOG_WARNING, "array '%s': recovery: %s", a->id, rerr.msg);
	}
	*out = a;
	return 0;
fail:
	rp_array_close(a);
	return rc;
}

const char *rp_array_id(const struct rp_array *a)
{
	return a ? a->id : "";
}

const char *rp_array_uri(const struct rp_array *a)
{
	return a ? a->uri : "";
}

int rp_array_info(struct rp_array_info *out, struct rp_array *a, struct rp_error *err)
{
	struct rp_array_info info;
	struct array_stat st;
	struct rp_peer *peers = NULL;
	size_t npeers = 0, i;
	int64_t reserved = 0;
	int rc;

	if (!out || !a)
		return rp_error_set(err, RP_EINVAL, "invalid argument: 'out' or 'a'");
	memset(&info, 0, sizeof(info));
	memset(&st, 0, sizeof(st));
	(void)rp_strlcpy(info.id, a->id, sizeof(info.id));
	(void)rp_strlcpy(info.name, a->name, sizeof(info.name));
	(void)rp_strlcpy(info.vendor, "replun", sizeof(info.vendor));
	(void)snprintf(info.model, sizeof(info.model), "replun %s array", a->driver);
	(void)rp_strlcpy(info.driver, a->driver, sizeof(info.driver));
	(void)rp_strlcpy(info.uri, a->uri, sizeof(info.uri));
	if (!a->drv->ops->stat)
		return rp_error_set(err, RP_ENOTSUPPORTED, "driver '%s' cannot report capacity",
		                    a->driver);
	rc = a->drv->ops->stat(&st, a->drv, err);
	if (rc < 0)
		return rc;
	info.capacity = st.capacity;
	info.free = st.free;
	(void)rp_strlcpy(info.fs_type, st.fs_type, sizeof(info.fs_type));
	info.reflink = (st.caps & ARRAY_CAP_REFLINK) != 0;
	rc = meta_query_int(&reserved, a->db, err,
	                    "SELECT COALESCE(SUM(size), 0) FROM reservations WHERE expires_ms IS"
	                    " NULL OR expires_ms = 0 OR expires_ms > ?",
	                    "i", rp_now_ms());
	if (rc < 0)
		return rc;
	info.reserved = (uint64_t)reserved;
	rc = model_peer_list(&peers, &npeers, a, err);
	if (rc < 0)
		return rc;
	for (i = 0; i < npeers && i < RP_MAX_PEERS; i++)
		info.peers[i] = peers[i];
	info.n_peers = i;
	rp_free(peers);
	*out = info;
	return 0;
}

/* Records @peer_id at @uri as a peer of @a. *added: a new row was written. */
static int array_add_peer(bool *added, struct rp_array *a, const char *peer_id, const char *uri,
                          struct rp_error *err)
{
	int64_t n = 0, same = 0;
	int rc;

	*added = false;
	rc = meta_txn_begin(a->db, err);
	if (rc < 0)
		return rc;
	rc = meta_query_int(&same, a->db, err, "SELECT COUNT(*) FROM peers WHERE array_id = ?", "t",
	                    peer_id);
	if (rc < 0)
		goto fail;
	if (same == 0) {
		rc = meta_query_int(&n, a->db, err, "SELECT COUNT(*) FROM peers", "");
		if (rc < 0)
			goto fail;
		if (n >= RP_MAX_PEERS) {
			rc = rp_error_set(err, RP_EINVAL, "array '%s' already has %d peers", a->id,
			                  RP_MAX_PEERS);
			goto fail;
		}
		*added = true;
	}
	rc = meta_run(NULL, a->db, err,
	              "INSERT INTO peers(array_id, uri) VALUES(?, ?)"
	              " ON CONFLICT(array_id) DO UPDATE SET uri = excluded.uri",
	              "tt", peer_id, uri);
	if (rc < 0)
		goto fail;
	return meta_txn_commit(a->db, err);
fail:
	meta_txn_rollback(a->db);
	*added = false;
	return rc;
}

int rp_array_pair(struct rp_array *a, struct rp_array *b, struct rp_error *err)
{
	bool added_a = false, added_b = false;
	int rc;

	if (!a || !b)
		return rp_error_set(err, RP_EINVAL, "invalid argument: 'a' or 'b'");
	if (strcmp(a->id, b->id) == 0 || strcmp(a->root, b->root) == 0)
		return rp_error_set(err, RP_EINVAL, "cannot pair array '%s' with itself", a->id);
	rc = array_add_peer(&added_a, a, b->id, b->uri, err);
	if (rc < 0)
		return rc;
	rc = array_add_peer(&added_b, b, a->id, a->uri, err);
	if (rc < 0) {
		if (added_a)
			(void)meta_run(NULL, a->db, NULL, "DELETE FROM peers WHERE array_id = ?",
			               "t", b->id);
		return rc;
	}
	rp_log(RP_LOG_INFO, "arrays '%s' and '%s' paired", a->id, b->id);
	return 0;
}

int rp_array_open_peer(struct rp_array **out, struct rp_array *a, const char *peer_id,
                       struct rp_error *err)
{
	struct rp_open_opts opts = { a ? a->username : NULL, a ? a->password : NULL,
		                     a ? a->busy_timeout_ms : 0 };
	struct rp_error perr = { 0 };
	struct rp_array *p = NULL;
	struct rp_peer peer;
	int rc;

	if (!out || !a)
		return rp_error_set(err, RP_EINVAL, "invalid argument: 'out' or 'a'");
	rc = model_peer_get(&peer, a, peer_id, err);
	if (rc < 0)
		return rc;
	rc = rp_array_open(&p, peer.uri, &opts, &perr);
	if (rc < 0)
		return rp_error_set(err, RP_EUNREACHABLE, "peer array '%s' is unreachable: %s",
		                    peer.array_id, perr.msg);
	if (strcmp(p->id, peer.array_id) != 0) {
		rc = rp_error_set(err, RP_EUNREACHABLE,
		                  "peer array '%s' is unreachable: '%.200s' holds array '%s'",
		                  peer.array_id, peer.uri, p->id);
		rp_array_close(p);
		return rc;
	}
	*out = p;
	return 0;
}

int engine_peer(struct rp_array **out, struct rp_array *a, const char *peer_id,
                struct rp_error *err)
{
	struct rp_array *p = NULL;
	int rc;

	if (!out || !a)
		return rp_error_set(err, RP_EINVAL, "invalid argument: 'out' or 'a'");
	if (a->peer_cache && (!peer_id || strcmp(a->peer_cache->id, peer_id) == 0)) {
		*out = a->peer_cache;
		return 0;
	}
	rc = rp_array_open_peer(&p, a, peer_id, err);
	if (rc < 0)
		return rc;
	rp_array_close(a->peer_cache);
	a->peer_cache = p;
	*out = p;
	return 0;
}

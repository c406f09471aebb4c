/* SPDX-License-Identifier: MIT */
/* test_array.c - rp_array_*: init, open (paths, URIs, refusals), info, pairing, peers. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers.h"

static int dfx_setup(void **state)
{
	char *dir = calloc(1, PATH_MAX);

	assert_non_null(dir);
	fake_array_reset();
	fake_array_register();
	tmpdir_make(dir, PATH_MAX);
	*state = dir;
	return 0;
}

static int dfx_teardown(void **state)
{
	tmpdir_remove(*state);
	free(*state);
	fake_array_reset();
	return 0;
}

static void test_array__init_open_file_driver(void **state)
{
	const char *dir = *state;
	char path[PATH_MAX + 16], uri[PATH_MAX + 32], dbl[PATH_MAX + 32];
	struct rp_error err = { 0 };
	struct rp_array_info info;
	struct rp_array *a = NULL;

	(void)snprintf(path, sizeof(path), "%s/arr", dir);
	assert_int_equal(rp_array_init(path, "siteA", "Site A", &err), 0);
	/* Plain absolute path. */
	assert_int_equal(rp_array_open(&a, path, NULL, &err), 0);
	assert_string_equal(rp_array_id(a), "siteA");
	(void)snprintf(uri, sizeof(uri), "file://%s", path);
	assert_int_equal(rp_array_info(&info, a, &err), 0);
	assert_string_equal(info.id, "siteA");
	assert_string_equal(info.name, "Site A");
	assert_string_equal(info.driver, "file");
	assert_string_equal(info.vendor, "replun");
	assert_true(info.capacity > 0);
	assert_true(info.free <= info.capacity);
	assert_true(info.fs_type[0] != '\0');
	assert_int_equal(info.reserved, 0);
	assert_int_equal(info.n_peers, 0);
	assert_true(strncmp(rp_array_uri(a), "file:///", 8) == 0);
	rp_array_close(a);
	a = NULL;
	/* file:// URI, with a doubled slash and a "." component: same array. */
	(void)snprintf(dbl, sizeof(dbl), "file://%s//./", path);
	assert_int_equal(rp_array_open(&a, dbl, NULL, &err), 0);
	assert_string_equal(rp_array_id(a), "siteA");
	rp_array_close(a);
	a = NULL;
	assert_int_equal(rp_array_open(&a, uri, NULL, &err), 0);
	rp_array_close(a);
	/* Initialising again is refused and changes nothing. */
	assert_error(rp_array_init(path, "other", NULL, &err), err, RP_EEXISTS);
	a = NULL;
	assert_int_equal(rp_array_open(&a, path, NULL, &err), 0);
	assert_string_equal(rp_array_id(a), "siteA");
	rp_array_close(a);
}

/* Reads data/.caps of the array at @path into @buf ("" when absent). */
static void caps_read(const char *path, char *buf, size_t len)
{
	char name[PATH_MAX + 32];
	ssize_t n;
	int fd;

	(void)snprintf(name, sizeof(name), "%s/data/.caps", path);
	buf[0] = '\0';
	fd = open(name, O_RDONLY);
	if (fd < 0)
		return;
	n = read(fd, buf, len - 1);
	assert_true(n >= 0);
	buf[n] = '\0';
	(void)close(fd);
}

/* Rewrites data/.caps in place (same inode, same birth time) with @text. */
static void caps_rewrite(const char *path, const char *text)
{
	char name[PATH_MAX + 32];
	int fd;

	(void)snprintf(name, sizeof(name), "%s/data/.caps", path);
	fd = open(name, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	(void)close(fd);
}

/* Replaces the first "@key=<value>" line of @buf by "@key=@value" (in place, fits). */
static void caps_edit(char *buf, size_t len, const char *key, const char *value)
{
	char out[512], *p, *eol;
	int n;

	p = strstr(buf, key);
	assert_non_null(p);
	eol = strchr(p, '\n');
	assert_non_null(eol);
	n = snprintf(out, sizeof(out), "%.*s%s=%s%s", (int)(p - buf), buf, key, value, eol);
	assert_true(n > 0 && (size_t)n < len);
	memcpy(buf, out, (size_t)n + 1);
}

static bool open_reflink(const char *path)
{
	struct rp_error err = { 0 };
	struct rp_array_info info;
	struct rp_array *a = NULL;

	assert_int_equal(rp_array_open(&a, path, NULL, &err), 0);
	assert_int_equal(rp_array_info(&info, a, &err), 0);
	rp_array_close(a);
	return info.reflink;
}

/*
 * The file driver caches its reflink probe in data/.caps: used while the filesystem and the
 * cache inode are the same, probed again (and rewritten) when the cache is missing, torn,
 * from another filesystem or a copy.
 */
static void test_array__caps_cache(void **state)
{
	const char *dir = *state;
	char path[PATH_MAX + 16], first[512], buf[512], tmp[PATH_MAX + 32], name[PATH_MAX + 32];
	struct rp_error err = { 0 };
	bool real;
	FILE *f;

	(void)snprintf(path, sizeof(path), "%s/arr", dir);
	assert_int_equal(rp_array_init(path, "siteA", NULL, &err), 0);
	real = open_reflink(path); /* probes and writes the cache */
	caps_read(path, first, sizeof(first));
	if (!first[0]) {
		/* No birth times on this filesystem: the driver probes at every open. */
		assert_true(open_reflink(path) == real);
		print_message("caps cache: no birth time on TMPDIR's filesystem, not cached\n");
		return;
	}
	assert_true(strncmp(first, "replun-file-caps 1\n", 19) == 0);
	assert_non_null(strstr(first, real ? "reflink=1\n" : "reflink=0\n"));
	/* Same filesystem, same inode: the cached answer is used (flipped here to see it). */
	(void)snprintf(buf, sizeof(buf), "%s", first);
	caps_edit(buf, sizeof(buf), "reflink", real ? "0" : "1");
	caps_rewrite(path, buf);
	assert_true(open_reflink(path) == !real);
	/* Another filesystem (fsid differs): probed again, cache rewritten. */
	caps_edit(buf, sizeof(buf), "fsid", "1234:5678");
	caps_rewrite(path, buf);
	assert_true(open_reflink(path) == real);
	caps_read(path, buf, sizeof(buf));
	assert_null(strstr(buf, "fsid=1234:5678"));
	assert_non_null(strstr(buf, real ? "reflink=1\n" : "reflink=0\n"));
	assert_true(open_reflink(path) == real); /* and the new cache is used */
	/* Another device number. */
	caps_edit(buf, sizeof(buf), "reflink", real ? "0" : "1");
	caps_edit(buf, sizeof(buf), "dev", "4242");
	caps_rewrite(path, buf);
	assert_true(open_reflink(path) == real);
	/* The probe file deleted: probed again, recreated. */
	(void)snprintf(name, sizeof(name), "%s/data/.caps", path);
	assert_int_equal(unlink(name), 0);
	assert_true(open_reflink(path) == real);
	caps_read(path, buf, sizeof(buf));
	assert_true(strncmp(buf, "replun-file-caps 1\n", 19) == 0);
	/* A copy (restore from backup, another inode) of a flipped cache: not trusted. */
	(void)snprintf(buf, sizeof(buf), "%s", first);
	caps_read(path, buf, sizeof(buf));
	caps_edit(buf, sizeof(buf), "reflink", real ? "0" : "1");
	(void)snprintf(tmp, sizeof(tmp), "%s/data/.caps.copy", path);
	f = fopen(tmp, "w");
	assert_non_null(f);
	assert_int_equal(fputs(buf, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(rename(tmp, name), 0);
	assert_true(open_reflink(path) == real);
	/* Torn or foreign content. */
	caps_rewrite(path, "replun-file-caps 1\nfs_ty");
	assert_true(open_reflink(path) == real);
	caps_rewrite(path, "garbage\n");
	assert_true(open_reflink(path) == real);
	caps_rewrite(path, "");
	assert_true(open_reflink(path) == real);
	caps_read(path, buf, sizeof(buf));
	assert_true(strncmp(buf, "replun-file-caps 1\n", 19) == 0);
	/* A cache that is a symlink is not followed (probed, replaced by a file). */
	assert_int_equal(unlink(name), 0);
	assert_int_equal(symlink("/etc/hostname", name), 0);
	assert_true(open_reflink(path) == real);
	caps_read(path, buf, sizeof(buf));
	assert_true(strncmp(buf, "replun-file-caps 1\n", 19) == 0);
}

/* The driver alone (no database): its reflink capability after open. */
static bool drv_reflink(const char *path)
{
	struct rp_error err = { 0 };
	struct array *drv = NULL;
	bool r;

	assert_int_equal(array_open(&drv, "file", path, NULL, &err), 0);
	r = (drv->caps & ARRAY_CAP_REFLINK) != 0;
	array_close(drv);
	return r;
}

/*
 * A probe that cannot conclude (here: its 4 KiB block refused by RLIMIT_FSIZE, as on a full
 * filesystem) reports no reflink for that open and is not cached; the next open probes again.
 */
static void test_array__caps_probe_inconclusive(void **state)
{
	const char *dir = *state;
	char path[PATH_MAX + 16], name[PATH_MAX + 32], buf[512];
	struct rp_error err = { 0 };
	struct rlimit old, lim;
	bool real;

	(void)snprintf(path, sizeof(path), "%s/arr", dir);
	assert_int_equal(rp_array_init(path, "siteA", NULL, &err), 0);
	real = drv_reflink(path);
	caps_read(path, buf, sizeof(buf));
	if (!buf[0]) {
		print_message("caps cache: no birth time on TMPDIR's filesystem, not cached\n");
		return;
	}
	(void)snprintf(name, sizeof(name), "%s/data/.caps", path);
	assert_int_equal(unlink(name), 0);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 1024;
	assert_true(signal(SIGXFSZ, SIG_IGN) != SIG_ERR);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	assert_false(drv_reflink(path));
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	(void)signal(SIGXFSZ, SIG_DFL);
	caps_read(path, buf, sizeof(buf));
	assert_string_equal(buf, ""); /* nothing remembered */
	assert_true(drv_reflink(path) == real);
	caps_read(path, buf, sizeof(buf));
	assert_non_null(strstr(buf, real ? "reflink=1\n" : "reflink=0\n"));
}

static void test_array__open_refusals(void **state)
{
	const char *dir = *state;
	char path[PATH_MAX + 64];
	struct rp_error err = { 0 };
	struct rp_array *a = NULL;

	assert_error(rp_array_open(&a, "relative/path", NULL, &err), err, RP_EINVAL);
	rp_error_clear(&err);
	(void)snprintf(path, sizeof(path), "%s/../x", dir);
	assert_error(rp_array_open(&a, path, NULL, &err), err, RP_EINVAL);
	assert_non_null(strstr(err.msg, ".."));
	rp_error_clear(&err);
	(void)snprintf(path, sizeof(path), "file://%s/a/../b", dir);
	assert_error(rp_array_open(&a, path, NULL, &err), err, RP_EINVAL);
	rp_error_clear(&err);
	assert_error(rp_array_open(&a, "https://host/array", NULL, &err), err, RP_EINVAL);
	rp_error_clear(&err);
	assert_error(rp_array_open(&a, "", NULL, &err), err, RP_EINVAL);
	rp_error_clear(&err);
	(void)snprintf(path, sizeof(path), "%s/missing", dir);
	assert_error(rp_array_open(&a, path, NULL, &err), err, RP_ENOTFOUND);
	assert_non_null(strstr(err.msg, "no replun array at"));
	rp_error_clear(&err);
	/* An existing directory that is not an array. */
	assert_error(rp_array_open(&a, dir, NULL, &err), err, RP_ENOTFOUND);
	assert_null(a);
}

static void test_array__init_refusals(void **state)
{
	const char *dir = *state;
	char path[PATH_MAX + 64], file[PATH_MAX + 80];
	struct rp_error err = { 0 };
	FILE *f;

	(void)snprintf(path, sizeof(path), "%s/x", dir);
	assert_error(rp_array_init(path, "bad id", NULL, &err), err, RP_EINVAL);
	rp_error_clear(&err);
	assert_error(rp_array_init(path, "..", NULL, &err), err, RP_EINVAL);
	rp_error_clear(&err);
	assert_error(rp_array_init(path, "an-array-id-longer-than-24", NULL, &err), err, RP_EINVAL);
	rp_error_clear(&err);
	assert_error(rp_array_init("rel", "ok", NULL, &err), err, RP_EINVAL);
	rp_error_clear(&err);
	(void)snprintf(file, sizeof(file), "%s/../y", dir);
	assert_error(rp_array_init(file, "ok", NULL, &err), err, RP_EINVAL);
	/* Nothing was created by the refusals. */
	assert_int_equal(access(path, F_OK), -1);
	/* A non-empty directory is refused. */
	assert_int_equal(mkdir(path, 0755), 0);
	(void)snprintf(file, sizeof(file), "%s/data.txt", path);
	f = fopen(file, "w");
	assert_non_null(f);
	assert_int_equal(fclose(f), 0);
	rp_error_clear(&err);
	assert_error(rp_array_init(path, "ok", NULL, &err), err, RP_EEXISTS);
	rp_error_clear(&err);
	assert_error(engine_array_init(path, "nosuchdriver", "ok", NULL, &err), err,
	             RP_ENOTSUPPORTED);
	/* The driver fails to create its layout: nothing is left behind. */
	(void)snprintf(path, sizeof(path), "%s/failing", dir);
	fake_array_fail("create", 1, RP_EIO);
	rp_error_clear(&err);
	assert_error(engine_array_init(path, "fake", "ok", NULL, &err), err, RP_EIO);
	assert_int_equal(access(path, F_OK), -1);
	/* And the same path initialises fine afterwards. */
	assert_int_equal(engine_array_init(path, "fake", "ok", NULL, &err), 0);
}

static void test_array__pair_and_peers(void **state)
{
	struct fx *f = *state;
	struct rp_error err = { 0 };
	struct rp_array_info info;
	struct rp_array *p = NULL;

	assert_int_equal(rp_array_info(&info, f->a, &err), 0);
	assert_int_equal(info.n_peers, 1);
	assert_string_equal(info.peers[0].array_id, "siteB");
	assert_string_equal(info.peers[0].uri, rp_array_uri(f->b));
	assert_int_equal(rp_array_info(&info, f->b, &err), 0);
	assert_int_equal(info.n_peers, 1);
	assert_string_equal(info.peers[0].array_id, "siteA");
	/* Idempotent. */
	assert_int_equal(rp_array_pair(f->a, f->b, &err), 0);
	assert_int_equal(rp_array_pair(f->b, f->a, &err), 0);
	assert_int_equal(count_rows(f->a, "peers"), 1);
	assert_int_equal(count_rows(f->b, "peers"), 1);
	/* With itself: refused. */
	assert_error(rp_array_pair(f->a, f->a, &err), err, RP_EINVAL);
	/* Open the peer by id and as the first peer. */
	assert_int_equal(rp_array_open_peer(&p, f->a, "siteB", &err), 0);
	assert_string_equal(rp_array_id(p), "siteB");
	rp_array_close(p);
	p = NULL;
	assert_int_equal(rp_array_open_peer(&p, f->a, NULL, &err), 0);
	assert_string_equal(rp_array_id(p), "siteB");
	rp_array_close(p);
	p = NULL;
	rp_error_clear(&err);
	assert_error(rp_array_open_peer(&p, f->a, "siteC", &err), err, RP_ENOTFOUND);
	rp_error_clear(&err);
	assert_error(rp_array_open_peer(&p, f->a, "../x", &err), err, RP_EINVAL);
	/* The peer's directory vanishes: unreachable. */
	{
		char gone[PATH_MAX + 16];

		(void)snprintf(gone, sizeof(gone), "%s.gone", f->b_path);
		assert_int_equal(rename(f->b_path, gone), 0);
	}
	rp_error_clear(&err);
	assert_error(rp_array_open_peer(&p, f->a, "siteB", &err), err, RP_EUNREACHABLE);
	assert_null(p);
}

static void test_array__info_fake_reports_driver(void **state)
{
	struct fx *f = *state;
	struct rp_error err = { 0 };
	struct rp_array_info info;

	fake_array_set_space(1000, 600);
	assert_int_equal(rp_array_info(&info, f->a, &err), 0);
	assert_true(info.capacity == 1000);
	assert_true(info.free == 600);
	assert_string_equal(info.fs_type, "fake");
	assert_true(info.reflink);
	assert_string_equal(info.name, "Site A");
	fake_array_fail("stat", 1, RP_EIO);
	assert_error(rp_array_info(&info, f->a, &err), err, RP_EIO);
}

int model_array_tests(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_array__init_open_file_driver, dfx_setup,
		                                dfx_teardown),
		cmocka_unit_test_setup_teardown(test_array__open_refusals, dfx_setup, dfx_teardown),
		cmocka_unit_test_setup_teardown(test_array__caps_cache, dfx_setup, dfx_teardown),
		cmocka_unit_test_setup_teardown(test_array__caps_probe_inconclusive, dfx_setup,
		                                dfx_teardown),
		cmocka_unit_test_setup_teardown(test_array__init_refusals, dfx_setup, dfx_teardown),
		cmocka_unit_test_setup_teardown(test_array__pair_and_peers, fx_setup_fake,
		                                fx_teardown),
		cmocka_unit_test_setup_teardown(test_array__info_fake_reports_driver, fx_setup_fake,
		                                fx_teardown),
	};

	return cmocka_run_group_tests_name("core.model.array", tests, NULL, NULL);
}

/* SPDX-License-Identifier: MIT */
/*
 * test_file.c - the file array driver through struct array_ops. Runs on the directory named by
 * REPLUN_TEST_DIR (a loop-mounted xfs/btrfs from run_fs.sh) or a fresh temp dir (plain fs).
 * REPLUN_TEST_EXPECT_REFLINK=0|1 and REPLUN_TEST_EXPECT_FREEZE=0|1 state what the fs must show.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>
#include <xxhash.h>

#include <cmocka.h>

#include "array_ops.h"

#define MIB (1024u * 1024u)
#define BLK 4096u

static char base_dir[512]; /* where arrays are made */
static bool base_is_mount; /* REPLUN_TEST_MOUNT=1: arrays are made at base_dir itself */
static bool made_base;

struct fx {
	char root[600];
	struct array *a;
	struct rp_error err;
};

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static void fill_random(void *buf, size_t len)
{
	uint64_t *p = buf;
	size_t i;

	for (i = 0; i < len / 8; i++)
		p[i] = rng();
}

static int rm_rf_data(const char *root)
{
	char cmd[1400];

	/* Test-owned temp paths only; quoted. */
	(void)snprintf(cmd, sizeof(cmd), "rm -rf '%s/data'", root);
	return system(cmd);
}

static int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	int rc;

	assert_non_null(f);
	if (base_is_mount) {
		(void)snprintf(f->root, sizeof(f->root), "%s", base_dir);
	} else {
		(void)snprintf(f->root, sizeof(f->root), "%s/arr-XXXXXX", base_dir);
		assert_non_null(mkdtemp(f->root));
	}
	rc = array_create("file", f->root, &f->err);
	assert_int_equal(rc, 0);
	rc = array_open(&f->a, "file", f->root, NULL, &f->err);
	if (rc != 0)
		fprintf(stderr, "open: %s\n", f->err.msg);
	assert_int_equal(rc, 0);
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;

	array_close(f->a);
	(void)rm_rf_data(f->root);
	if (!base_is_mount)
		(void)rmdir(f->root);
	free(f);
	return 0;
}

/* Shorthands over the vtable. */
#define OPS(f) ((f)->a->ops)
#define E(f) (rp_error_clear(&(f)->err), &(f)->err)

static bool env_flag(const char *name, bool *out)
{
	const char *v = getenv(name);

	if (!v || !*v)
		return false;
	*out = strcmp(v, "1") == 0;
	return true;
}

static void test_file__name_check(void **state)
{
	static const char *bad[] = { "", "a/b", "..", "a..b", ".", "x y", "lun\n", "é", "/abs" };
	char longname[200];
	struct rp_error err;
	struct fx *f = *state;
	size_t i;

	(void)state;
	printf("checking object names: bad ones rejected, good ones accepted\n");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		rp_error_clear(&err);
		assert_int_equal(array_obj_name_check(bad[i], &err), RP_EINVAL);
		assert_true(err.msg[0] != '\0');
	}
	assert_int_equal(array_obj_name_check(NULL, NULL), RP_EINVAL);
	memset(longname, 'a', sizeof(longname));
	longname[129] = '\0';
	assert_int_equal(array_obj_name_check(longname, NULL), RP_EINVAL);
	longname[128] = '\0';
	assert_int_equal(array_obj_name_check(longname, NULL), 0);
	assert_int_equal(array_obj_name_check("lun-siteA-000001", NULL), 0);
	assert_int_equal(array_obj_name_check("stage-sync-1-ab12-siteA-000001", NULL), 0);
	assert_int_equal(array_obj_name_check("a.b_c-D9", NULL), 0);
	/* Through the driver: nothing is created under a bad name. */
	assert_int_equal(OPS(f)->obj_create(f->a, "../escape", MIB, E(f)), RP_EINVAL);
	assert_int_equal(OPS(f)->obj_create(f->a, "a/b", MIB, E(f)), RP_EINVAL);
	assert_int_equal(OPS(f)->clone(f->a, "x", "..", E(f)), RP_EINVAL);
}

static void test_file__open_errors(void **state)
{
	struct array *a = NULL;
	struct rp_error err;
	char path[700];
	struct fx *f = *state;

	printf("checking array open/create errors\n");
	rp_error_clear(&err);
	assert_int_equal(array_open(&a, "nosuch", f->root, NULL, &err), RP_EINVAL);
	assert_null(a);
	(void)snprintf(path, sizeof(path), "%s/does-not-exist", f->root);
	rp_error_clear(&err);
	assert_int_equal(array_open(&a, "file", path, NULL, &err), RP_ENOTFOUND);
	assert_true(err.msg[0] != '\0');
	rp_error_clear(&err);
	assert_int_equal(array_open(&a, "file", "relative/path", NULL, &err), RP_EINVAL);
	rp_error_clear(&err);
	assert_int_equal(array_create("file", f->root, &err), RP_EEXISTS);
	assert_non_null(array_driver_find("file"));
	assert_null(array_driver_find("nope"));
	array_close(NULL);
}

static void test_file__create_delete_resize(void **state)
{
	struct fx *f = *state;
	struct array_obj_stat st;
	char path[1024];
	struct stat sb;
	bool ex = true;

	printf("checking create/stat/exists/resize/delete of an object\n");
	assert_int_equal(OPS(f)->obj_exists(&ex, f->a, "lun-1", E(f)), 0);
	assert_false(ex);
	assert_int_equal(OPS(f)->obj_create(f->a, "lun-1", 64 * MIB, E(f)), 0);
	assert_int_equal(OPS(f)->obj_exists(&ex, f->a, "lun-1", E(f)), 0);
	assert_true(ex);
	assert_int_equal(OPS(f)->obj_stat(&st, f->a, "lun-1", E(f)), 0);
	assert_int_equal(st.size, 64 * MIB);
	assert_true(st.allocated < MIB); /* sparse */
	assert_false(st.read_only);
	assert_int_equal(OPS(f)->obj_path(path, sizeof(path), f->a, "lun-1", E(f)), 0);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_size, 64 * MIB);

	assert_int_equal(OPS(f)->obj_create(f->a, "lun-1", MIB, E(f)), RP_EEXISTS);
	assert_int_equal(OPS(f)->obj_resize(f->a, "lun-1", 128 * MIB, E(f)), 0);
	assert_int_equal(OPS(f)->obj_stat(&st, f->a, "lun-1", E(f)), 0);
	assert_int_equal(st.size, 128 * MIB);
	assert_int_equal(OPS(f)->obj_resize(f->a, "lun-1", MIB, E(f)), RP_EINVAL);
	assert_true(f->err.msg[0] != '\0');
	assert_int_equal(OPS(f)->obj_resize(f->a, "lun-1", 128 * MIB, E(f)), 0); /* same: no-op */

	assert_int_equal(OPS(f)->obj_set_readonly(f->a, "lun-1", true, E(f)), 0);
	assert_int_equal(OPS(f)->obj_stat(&st, f->a, "lun-1", E(f)), 0);
	assert_true(st.read_only);
	assert_int_equal(OPS(f)->obj_set_readonly(f->a, "lun-1", false, E(f)), 0);
	assert_int_equal(OPS(f)->obj_stat(&st, f->a, "lun-1", E(f)), 0);
	assert_false(st.read_only);

	assert_int_equal(OPS(f)->obj_delete(f->a, "lun-1", E(f)), 0);
	assert_int_equal(OPS(f)->obj_exists(&ex, f->a, "lun-1", E(f)), 0);
	assert_false(ex);
	assert_int_equal(stat(path, &sb), -1);
	assert_int_equal(OPS(f)->obj_delete(f->a, "lun-1", E(f)), 0); /* absent is fine */
}

static void test_file__missing_objects(void **state)
{
	struct fx *f = *state;
	struct array_obj_stat st;
	char buf[BLK], sum[40];

	printf("checking every object operation on a missing object answers 'not found'\n");
	assert_int_equal(OPS(f)->obj_stat(&st, f->a, "ghost", E(f)), RP_ENOTFOUND);
	assert_non_null(strstr(f->err.msg, "'ghost'"));
	assert_int_equal(OPS(f)->obj_resize(f->a, "ghost", MIB, E(f)), RP_ENOTFOUND);
	assert_int_equal(OPS(f)->obj_rename(f->a, "ghost", "other", E(f)), RP_ENOTFOUND);
	assert_int_equal(OPS(f)->obj_set_readonly(f->a, "ghost", true, E(f)), RP_ENOTFOUND);
	assert_int_equal(OPS(f)->clone(f->a, "ghost", "copy", E(f)), RP_ENOTFOUND);
	assert_int_equal(OPS(f)->read(f->a, "ghost", 0, buf, sizeof(buf), E(f)), RP_ENOTFOUND);
	assert_int_equal(OPS(f)->write(f->a, "ghost", 0, buf, sizeof(buf), E(f)), RP_ENOTFOUND);
	assert_int_equal(OPS(f)->punch(f->a, "ghost", 0, BLK, E(f)), RP_ENOTFOUND);
	assert_int_equal(OPS(f)->flush(f->a, "ghost", E(f)), RP_ENOTFOUND);
	assert_int_equal(OPS(f)->checksum(sum, f->a, "ghost", E(f)), RP_ENOTFOUND);
	assert_int_equal(OPS(f)->obj_create(f->a, "real", MIB, E(f)), 0);
	assert_int_equal(OPS(f)->changed_extents(f->a, "ghost", "real", NULL, NULL, E(f)),
	                 RP_EINVAL); /* no callback */
	assert_int_equal(OPS(f)->clone(f->a, "real", "real", E(f)), RP_EEXISTS);
	{
		bool ex = true;

		/* A failed clone leaves nothing behind. */
		assert_int_equal(OPS(f)->clone(f->a, "ghost", "copy", E(f)), RP_ENOTFOUND);
		assert_int_equal(OPS(f)->obj_exists(&ex, f->a, "copy", E(f)), 0);
		assert_false(ex);
	}
}

static void test_file__io_and_readonly(void **state)
{
	struct fx *f = *state;
	char *w = malloc(MIB), *r = malloc(MIB);

	printf("checking write/read round trip, range checks and read-only objects\n");
	assert_non_null(w);
	assert_non_null(r);
	fill_random(w, MIB);
	assert_int_equal(OPS(f)->obj_create(f->a, "lun", 8 * MIB, E(f)), 0);
	assert_int_equal(OPS(f)->write(f->a, "lun", 3 * MIB, w, MIB, E(f)), 0);
	assert_int_equal(OPS(f)->read(f->a, "lun", 3 * MIB, r, MIB, E(f)), 0);
	assert_memory_equal(w, r, MIB);
	assert_int_equal(OPS(f)->read(f->a, "lun", 0, r, BLK, E(f)), 0);
	assert_true(r[0] == 0 && r[BLK - 1] == 0);
	/* Past the end: an error, and the object does not grow. */
	assert_int_equal(OPS(f)->write(f->a, "lun", 8 * MIB - BLK, w, 2 * BLK, E(f)), RP_EINVAL);
	assert_int_equal(OPS(f)->read(f->a, "lun", 8 * MIB, r, 1, E(f)), RP_EINVAL);
	{
		struct array_obj_stat st;

		assert_int_equal(OPS(f)->obj_stat(&st, f->a, "lun", E(f)), 0);
		assert_int_equal(st.size, 8 * MIB);
	}
	assert_int_equal(OPS(f)->flush(f->a, "lun", E(f)), 0);
	assert_int_equal(OPS(f)->obj_set_readonly(f->a, "lun", true, E(f)), 0);
	assert_int_equal(OPS(f)->write(f->a, "lun", 0, w, BLK, E(f)), RP_EPERM);
	assert_int_equal(OPS(f)->punch(f->a, "lun", 0, BLK, E(f)), RP_EPERM);
	assert_int_equal(OPS(f)->read(f->a, "lun", 3 * MIB, r, MIB, E(f)), 0);
	assert_memory_equal(w, r, MIB);
	assert_int_equal(OPS(f)->obj_set_readonly(f->a, "lun", false, E(f)), 0);
	assert_int_equal(OPS(f)->write(f->a, "lun", 0, w, BLK, E(f)), 0);
	free(w);
	free(r);
}

static void test_file__punch(void **state)
{
	struct fx *f = *state;
	struct array_obj_stat before, after;
	char *w = malloc(4 * MIB), *r = malloc(MIB);
	size_t i;

	printf("checking punch deallocates and reads back zeros\n");
	fill_random(w, 4 * MIB);
	assert_int_equal(OPS(f)->obj_create(f->a, "lun", 4 * MIB, E(f)), 0);
	assert_int_equal(OPS(f)->write(f->a, "lun", 0, w, 4 * MIB, E(f)), 0);
	assert_int_equal(OPS(f)->flush(f->a, "lun", E(f)), 0);
	assert_int_equal(OPS(f)->obj_stat(&before, f->a, "lun", E(f)), 0);
	assert_int_equal(OPS(f)->punch(f->a, "lun", MIB, MIB, E(f)), 0);
	assert_int_equal(OPS(f)->obj_stat(&after, f->a, "lun", E(f)), 0);
	assert_true(after.allocated + MIB <= before.allocated);
	assert_int_equal(after.size, 4 * MIB);
	assert_int_equal(OPS(f)->read(f->a, "lun", MIB, r, MIB, E(f)), 0);
	for (i = 0; i < MIB; i++)
		assert_int_equal(r[i], 0);
	assert_int_equal(OPS(f)->read(f->a, "lun", 2 * MIB, r, MIB, E(f)), 0);
	assert_memory_equal(r, w + 2 * MIB, MIB);
	assert_int_equal(OPS(f)->punch(f->a, "lun", 3 * MIB, 2 * MIB, E(f)), RP_EINVAL);
	free(w);
	free(r);
}

static void hex128(char out[40], const void *buf, size_t len)
{
	XXH128_hash_t h = XXH3_128bits(buf, len);

	(void)snprintf(out, 40, "%016llx%016llx", (unsigned long long)h.high64,
	               (unsigned long long)h.low64);
}

static void test_file__checksum(void **state)
{
	struct fx *f = *state;
	size_t len = 3 * MIB + 5 * BLK;
	char *img = calloc(1, len);
	char sum[40], want[40];

	printf("checking checksum = XXH128 of the content (sparse and with data)\n");
	assert_int_equal(OPS(f)->obj_create(f->a, "lun", len, E(f)), 0);
	assert_int_equal(OPS(f)->checksum(sum, f->a, "lun", E(f)), 0);
	hex128(want, img, len);
	assert_int_equal(strlen(sum), 32);
	assert_string_equal(sum, want);
	fill_random(img + MIB + BLK, MIB);
	fill_random(img + len - 2 * BLK, 2 * BLK);
	assert_int_equal(OPS(f)->write(f->a, "lun", MIB + BLK, img + MIB + BLK, MIB, E(f)), 0);
	assert_int_equal(
	        OPS(f)->write(f->a, "lun", len - 2 * BLK, img + len - 2 * BLK, 2 * BLK, E(f)), 0);
	assert_int_equal(OPS(f)->checksum(sum, f->a, "lun", E(f)), 0);
	hex128(want, img, len);
	assert_string_equal(sum, want);
	free(img);
}

static void test_file__clone_independence(void **state)
{
	struct fx *f = *state;
	char *w = malloc(2 * MIB);
	char s0[40], s1[40], c[40];

	printf("checking a clone keeps its point-in-time content and both sides stay "
	       "independent\n");
	fill_random(w, 2 * MIB);
	assert_int_equal(OPS(f)->obj_create(f->a, "lun", 16 * MIB + 3 * BLK, E(f)), 0);
	assert_int_equal(OPS(f)->write(f->a, "lun", 4 * MIB, w, 2 * MIB, E(f)), 0);
	assert_int_equal(OPS(f)->write(f->a, "lun", 16 * MIB, w, 3 * BLK, E(f)), 0);
	assert_int_equal(OPS(f)->checksum(s0, f->a, "lun", E(f)), 0);
	assert_int_equal(OPS(f)->clone(f->a, "lun", "snap", E(f)), 0);
	assert_int_equal(OPS(f)->checksum(c, f->a, "snap", E(f)), 0);
	assert_string_equal(c, s0);
	fill_random(w, 2 * MIB);
	assert_int_equal(OPS(f)->write(f->a, "lun", 5 * MIB, w, MIB, E(f)), 0);
	assert_int_equal(OPS(f)->write(f->a, "lun", 0, w, BLK, E(f)), 0);
	assert_int_equal(OPS(f)->checksum(s1, f->a, "lun", E(f)), 0);
	assert_string_not_equal(s1, s0);
	assert_int_equal(OPS(f)->checksum(c, f->a, "snap", E(f)), 0);
	assert_string_equal(c, s0); /* the clone did not change */
	assert_int_equal(OPS(f)->write(f->a, "snap", 8 * MIB, w, MIB, E(f)), 0);
	assert_int_equal(OPS(f)->checksum(c, f->a, "lun", E(f)), 0);
	assert_string_equal(c, s1); /* nor did the source */
	{
		struct array_obj_stat st;

		assert_int_equal(OPS(f)->obj_stat(&st, f->a, "snap", E(f)), 0);
		assert_int_equal(st.size, 16 * MIB + 3 * BLK);
	}
	free(w);
}

/* ->read_uncached of [@off, @off + @len) into @buf equals @want (the object's content there). */
static void check_uncached(struct fx *f, uint64_t off, size_t len, char *buf, const char *want)
{
	memset(buf, 0xa5, len);
	assert_int_equal(OPS(f)->read_uncached(f->a, "lun", off, buf, len, E(f)), 0);
	assert_memory_equal(buf, want + off, len);
}

static void test_file__read_uncached(void **state)
{
	struct fx *f = *state;
	const size_t size = 6 * MIB + 3 * BLK + 100; /* the end is not block-aligned */
	char *img = calloc(1, size), *buf = aligned_alloc(BLK, 8 * MIB);

	printf("checking ->read_uncached (O_DIRECT where aligned) returns what ->read does\n");
	assert_non_null(img);
	assert_non_null(buf);
	assert_non_null(OPS(f)->read_uncached);
	assert_int_equal(OPS(f)->obj_create(f->a, "lun", size, E(f)), 0);
	fill_random(img + MIB, 2 * MIB);
	fill_random(img + 6 * MIB + BLK, size - 6 * MIB - BLK); /* to the unaligned end */
	assert_int_equal(OPS(f)->write(f->a, "lun", MIB, img + MIB, 2 * MIB, E(f)), 0);
	assert_int_equal(OPS(f)->write(f->a, "lun", 6 * MIB + BLK, img + 6 * MIB + BLK,
	                               size - 6 * MIB - BLK, E(f)),
	                 0);
	assert_int_equal(OPS(f)->flush(f->a, "lun", E(f)), 0);
	printf("# aligned, the whole object (hole, data, unaligned tail), inside one block\n");
	check_uncached(f, 0, 4 * MIB, buf, img);
	check_uncached(f, 0, size, buf, img);
	check_uncached(f, MIB + 100, 50, buf, img);
	printf("# unaligned head and tail, a buffer not aligned like the offset\n");
	check_uncached(f, MIB - 300, 2 * MIB + 777, buf + (BLK - 300), img);
	check_uncached(f, 2 * BLK, MIB, buf + 1, img);
	check_uncached(f, size - 3 * BLK - 7, 3 * BLK + 7, buf + (BLK - 7), img);
	printf("# data written (still cached, dirty) is what a direct read returns\n");
	fill_random(img + 2 * MIB, MIB);
	assert_int_equal(OPS(f)->write(f->a, "lun", 2 * MIB, img + 2 * MIB, MIB, E(f)), 0);
	check_uncached(f, 0, 4 * MIB, buf, img);
	printf("# errors: past the end, missing object\n");
	assert_int_equal(OPS(f)->read_uncached(f->a, "lun", size - BLK, buf, 2 * BLK, E(f)),
	                 RP_EINVAL);
	assert_true(f->err.msg[0] != '\0');
	assert_int_equal(OPS(f)->read_uncached(f->a, "nope", 0, buf, BLK, E(f)), RP_ENOTFOUND);
	assert_true(f->err.msg[0] != '\0');
	free(buf);
	free(img);
}

/* Is @root on xfs with reflinks: where ->read_snapshot may take data from the origin? */
static bool origin_reads_expected(struct fx *f)
{
	struct statfs sfs;

	return (f->a->caps & ARRAY_CAP_REFLINK) && statfs(f->root, &sfs) == 0 &&
	       (unsigned long)sfs.f_type == 0x58465342UL;
}

/* Local path of object @obj, opened with @flags. */
static int obj_open(struct fx *f, const char *obj, int flags)
{
	char path[1024];
	int fd;

	assert_int_equal(OPS(f)->obj_path(path, sizeof(path), f->a, obj, E(f)), 0);
	fd = open(path, flags);
	assert_true(fd >= 0);
	return fd;
}

/* Reads all of @obj through the page cache (so its pages are cached, as a warm LUN's are). */
static void warm(struct fx *f, const char *obj, size_t size, char *buf)
{
	assert_int_equal(OPS(f)->read(f->a, obj, 0, buf, size, E(f)), 0);
}

/*
 * Ends the copy @o served (->origin_done: the driver may keep the objects open across the
 * calls of one copy) and makes it a fresh origin @obj.
 */
static void origin_reset(struct fx *f, struct array_origin *o, const char *obj)
{
	if (OPS(f)->origin_done)
		OPS(f)->origin_done(f->a, o);
	memset(o, 0, sizeof(*o));
	o->obj = obj;
}

/* ->read_snapshot of [@off, @off + @len) of "snap" with origin @o equals @want there. */
static void check_snapread(struct fx *f, struct array_origin *o, uint64_t off, size_t len,
                           char *buf, const char *want)
{
	memset(buf, 0xa5, len);
	assert_int_equal(OPS(f)->read_snapshot(f->a, "snap", o, off, buf, len, E(f)), 0);
	assert_memory_equal(buf, want + off, len);
}

/* Drops clean cached pages of @obj (written back first) and says whether they went. */
static bool drop_cache(struct fx *f, const char *obj, size_t size)
{
	int fd = obj_open(f, obj, O_RDONLY);
	unsigned char *vec = malloc(size / BLK + 1);
	void *map;
	size_t k;
	bool gone = true;

	assert_non_null(vec);
	assert_int_equal(fdatasync(fd), 0);
	assert_int_equal(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
	map = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	assert_true(map != MAP_FAILED);
	assert_int_equal(mincore(map, size, vec), 0);
	for (k = 0; k < (size + BLK - 1) / BLK; k++)
		if (vec[k] & 1)
			gone = false;
	(void)munmap(map, size);
	(void)close(fd);
	free(vec);
	return gone;
}

/*
 * A fresh "snap" of "lun" (whose content is @img), with "lun" cached again. The LUN's last
 * change is made a few clock ticks older than the snapshot first: a ctime in the snapshot's
 * own tick does not prove the LUN unchanged since (file_origin.c, origin_unchanged_since).
 */
static void resnap(struct fx *f, size_t size, char *buf)
{
	(void)usleep(30000);
	(void)OPS(f)->obj_delete(f->a, "snap", NULL);
	assert_int_equal(OPS(f)->clone(f->a, "lun", "snap", E(f)), 0);
	warm(f, "lun", size, buf);
}

/* ->obj_list's callback: records the names in a string ("name;" each); stops at "stop". */
static int list_cb(const char *obj, void *payload)
{
	char *acc = payload;

	if (strcmp(obj, "stop") == 0)
		return 42;
	strcat(acc, obj);
	strcat(acc, ";");
	return 0;
}

static void test_file__obj_list(void **state)
{
	struct fx *f = *state;
	char acc[512] = "", path[1024];
	int fd;

	printf("checking ->obj_list lists every object by name, and nothing else\n");
	assert_non_null(OPS(f)->obj_list);
	assert_int_equal(OPS(f)->obj_list(f->a, list_cb, acc, E(f)), 0);
	assert_string_equal(acc, "");
	assert_int_equal(OPS(f)->obj_create(f->a, "one", MIB, E(f)), 0);
	assert_int_equal(OPS(f)->obj_create(f->a, "two", MIB, E(f)), 0);
	assert_int_equal(OPS(f)->clone(f->a, "one", "three", E(f)), 0); /* a map beside it */
	/* files that are no objects: a stray file, a bad object name */
	snprintf(path, sizeof(path), "%s/data/notes.txt", f->root);
	fd = open(path, O_CREAT | O_WRONLY, 0644);
	assert_true(fd >= 0);
	close(fd);
	snprintf(path, sizeof(path), "%s/data/bad name.img", f->root);
	fd = open(path, O_CREAT | O_WRONLY, 0644);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(OPS(f)->obj_list(f->a, list_cb, acc, E(f)), 0);
	assert_int_equal(strlen(acc), strlen("one;two;three;"));
	assert_non_null(strstr(acc, "one;"));
	assert_non_null(strstr(acc, "two;"));
	assert_non_null(strstr(acc, "three;"));
	printf("# a callback's non-zero answer stops the listing and is returned\n");
	assert_int_equal(OPS(f)->obj_create(f->a, "stop", MIB, E(f)), 0);
	acc[0] = '\0';
	assert_int_equal(OPS(f)->obj_list(f->a, list_cb, acc, E(f)), 42);
	for (const char *o = "one\0two\0three\0stop\0"; *o; o += strlen(o) + 1)
		assert_int_equal(OPS(f)->obj_delete(f->a, o, E(f)), 0);
	(void)unlink(path);
	snprintf(path, sizeof(path), "%s/data/notes.txt", f->root);
	(void)unlink(path);
}

static void test_file__read_snapshot(void **state)
{
	struct fx *f = *state;
	const size_t size = 8 * MIB;
	char *img = malloc(size), *buf = aligned_alloc(BLK, size), *blk = aligned_alloc(BLK, BLK);
	struct array_origin o = { 0 };
	bool xfs = origin_reads_expected(f);
	size_t k;
	int fd;

	printf("checking ->read_snapshot returns the snapshot's data whatever the origin does "
	       "(origin reads expected: %s)\n",
	       xfs ? "yes, xfs with reflink" : "no");
	assert_non_null(img);
	assert_non_null(buf);
	assert_non_null(blk);
	assert_non_null(OPS(f)->read_snapshot);
	fill_random(img, size);
	assert_int_equal(OPS(f)->obj_create(f->a, "lun", size, E(f)), 0);
	assert_int_equal(OPS(f)->write(f->a, "lun", 0, img, size, E(f)), 0);
	assert_int_equal(OPS(f)->flush(f->a, "lun", E(f)), 0);
	resnap(f, size, buf);

	printf("# an untouched, cached origin: all of it comes from the origin's pages\n");
	origin_reset(f, &o, "lun");
	check_snapread(f, &o, 0, size, buf, img);
	check_snapread(f, &o, MIB + 100, 3 * BLK + 7, buf + 1, img); /* unaligned */
	assert_false(o.written);
	assert_int_equal(o.bytes, xfs ? size + 3 * BLK + 7 : 0);

	printf("# a change of the origin's ctime alone (chmod) since the snapshot: not proven "
	       "unchanged, the snapshot is read\n");
	resnap(f, size, buf);
	{
		char path[1024];
		struct stat sb;

		assert_int_equal(OPS(f)->obj_path(path, sizeof(path), f->a, "lun", E(f)), 0);
		assert_int_equal(stat(path, &sb), 0);
		assert_int_equal(chmod(path, sb.st_mode & 07777), 0); /* same mode, new ctime */
		origin_reset(f, &o, "lun");
		check_snapread(f, &o, 0, MIB, buf, img);
		assert_int_equal(o.bytes, 0);
		assert_int_equal(o.written, xfs);
	}
	resnap(f, size, buf);

	printf("# no origin: the snapshot is read\n");
	check_snapread(f, NULL, 0, size, buf, img);
	origin_reset(f, &o, NULL);
	check_snapread(f, &o, 0, size, buf, img);
	assert_int_equal(o.bytes, 0);

	printf("# a cold origin is not read (nor its cache filled)\n");
	if (drop_cache(f, "lun", size)) {
		origin_reset(f, &o, "lun");
		check_snapread(f, &o, 0, 4 * MIB, buf, img);
		assert_int_equal(o.bytes, 0);
		assert_false(o.written);
		assert_true(drop_cache(f, "lun", size)); /* still nothing cached */
		printf("# after 64 cold ranges in a row the origin is not tried again\n");
		for (k = 0; k < 64; k++)
			check_snapread(f, &o, k * BLK, BLK, buf, img);
		warm(f, "lun", size, buf);
		check_snapread(f, &o, 0, MIB, buf, img);
		assert_int_equal(o.bytes, 0);
		assert_false(o.written);
	} else {
		printf("# (the kernel kept the clean pages cached: part skipped)\n");
	}

	printf("# a buffered write after the snapshot, still dirty: the snapshot's data, and the "
	       "origin is not tried again\n");
	warm(f, "lun", size, buf);
	fill_random(blk, BLK);
	assert_int_equal(OPS(f)->write(f->a, "lun", MIB + 2 * BLK, blk, BLK, E(f)), 0);
	origin_reset(f, &o, "lun");
	check_snapread(f, &o, 0, 4 * MIB, buf, img);
	assert_int_equal(o.written, xfs);
	check_snapread(f, &o, 4 * MIB, 4 * MIB, buf, img); /* untouched, but not tried */
	assert_int_equal(o.bytes, 0);
	memcpy(img + MIB + 2 * BLK, blk, BLK); /* the LUN's content from here on */

	printf("# a store through a shared mapping (never written back by us)\n");
	resnap(f, size, buf);
	fd = obj_open(f, "lun", O_RDWR);
	{
		char *map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

		assert_true(map != MAP_FAILED);
		origin_reset(f, &o, "lun");
		check_snapread(f, &o, 2 * MIB, MIB, buf, img); /* before the store: origin */
		assert_false(o.written);
		assert_int_equal(o.bytes, xfs ? MIB : 0);
		map[2 * MIB + 5000] ^= 0x5a;
		check_snapread(f, &o, 2 * MIB, MIB, buf, img);
		assert_int_equal(o.written, xfs);
		img[2 * MIB + 5000] ^= 0x5a;
		(void)munmap(map, size);
	}
	(void)close(fd);

	printf("# a direct (O_DIRECT) write after the snapshot\n");
	resnap(f, size, buf);
	fd = obj_open(f, "lun", O_WRONLY | O_DIRECT);
	fill_random(blk, BLK);
	assert_int_equal(pwrite(fd, blk, BLK, 5 * MIB), BLK);
	(void)close(fd);
	warm(f, "lun", size, buf);
	origin_reset(f, &o, "lun");
	check_snapread(f, &o, 4 * MIB, 2 * MIB, buf, img);
	assert_int_equal(o.written, xfs);
	memcpy(img + 5 * MIB, blk, BLK);

	printf("# one copy keeps both objects open: the origin renamed mid-copy (its ctime moves) "
	       "is not trusted again; a second snapshot through the same origin is opened anew\n");
	resnap(f, size, buf);
	origin_reset(f, &o, "lun");
	check_snapread(f, &o, 0, MIB, buf, img);
	assert_int_equal(OPS(f)->obj_rename(f->a, "lun", "lun-moved", E(f)), 0);
	check_snapread(f, &o, MIB, MIB, buf, img);
	assert_int_equal(o.bytes, xfs ? MIB : 0);
	assert_int_equal(o.written, xfs);
	o.written = false;
	assert_int_equal(OPS(f)->obj_rename(f->a, "lun-moved", "lun", E(f)), 0);
	fill_random(blk, BLK); /* "snap2" differs from "snap" there */
	assert_int_equal(OPS(f)->write(f->a, "lun", 2 * MIB, blk, BLK, E(f)), 0);
	assert_int_equal(OPS(f)->flush(f->a, "lun", E(f)), 0);
	memcpy(img + 2 * MIB, blk, BLK);
	(void)usleep(30000);
	(void)OPS(f)->obj_delete(f->a, "snap2", NULL);
	assert_int_equal(OPS(f)->clone(f->a, "lun", "snap2", E(f)), 0);
	warm(f, "lun", size, buf);
	memset(buf, 0xa5, MIB);
	assert_int_equal(OPS(f)->read_snapshot(f->a, "snap2", &o, 2 * MIB, buf, MIB, E(f)), 0);
	assert_memory_equal(buf, img + 2 * MIB, MIB);
	assert_int_equal(o.bytes, xfs ? 2 * MIB : 0);
	assert_int_equal(OPS(f)->obj_delete(f->a, "snap2", E(f)), 0);
	origin_reset(f, &o, "lun");
	origin_reset(f, &o, "lun"); /* ending an origin never used is harmless */

	printf("# a punched hole and a shorter origin\n");
	resnap(f, size, buf);
	assert_int_equal(OPS(f)->punch(f->a, "lun", 6 * MIB, BLK, E(f)), 0);
	warm(f, "lun", size, buf); /* the punch dropped the range's pages */
	origin_reset(f, &o, "lun");
	check_snapread(f, &o, 6 * MIB, MIB, buf, img);
	assert_int_equal(o.written, xfs);
	memset(img + 6 * MIB, 0, BLK);
	resnap(f, size, buf);
	fd = obj_open(f, "lun", O_WRONLY); /* objects never shrink through the driver */
	assert_int_equal(ftruncate(fd, 4 * MIB), 0);
	(void)close(fd);
	origin_reset(f, &o, "lun");
	check_snapread(f, &o, 4 * MIB, 4 * MIB, buf, img); /* past the origin's new end */
	assert_int_equal(o.written, xfs);
	origin_reset(f, &o, "lun");
	check_snapread(f, &o, 0, MIB, buf, img); /* below it: blocks kept, but its ctime moved */
	assert_int_equal(o.bytes, 0);
	assert_int_equal(o.written, xfs);

	printf("# errors: missing snapshot, bad origin name, range past the end; a missing "
	       "origin is read around\n");
	origin_reset(f, &o, "lun");
	assert_int_equal(OPS(f)->read_snapshot(f->a, "nope", &o, 0, buf, BLK, E(f)), RP_ENOTFOUND);
	assert_true(f->err.msg[0] != '\0');
	o.obj = "../lun";
	assert_int_equal(OPS(f)->read_snapshot(f->a, "snap", &o, 0, buf, BLK, E(f)), RP_EINVAL);
	assert_true(f->err.msg[0] != '\0');
	o.obj = "lun";
	assert_int_equal(OPS(f)->read_snapshot(f->a, "snap", &o, size - BLK, buf, 2 * BLK, E(f)),
	                 RP_EINVAL);
	assert_true(f->err.msg[0] != '\0');
	o.obj = "gone";
	check_snapread(f, &o, 0, MIB, buf, img);
	assert_int_equal(o.written, xfs);
	origin_reset(f, &o, NULL);
	free(blk);
	free(buf);
	free(img);
}

/* The writer of test_file__read_snapshot_race: random 4 KiB writes into "lun" three ways. */
struct race {
	const char *path;
	size_t size;
	unsigned pause_us; /* between two writes */
	volatile bool stop;
	unsigned long writes;
};

static void *race_writer(void *arg)
{
	struct race *r = arg;
	int fd = open(r->path, O_RDWR), dfd = open(r->path, O_RDWR | O_DIRECT);
	char *map = mmap(NULL, r->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	char *blk = aligned_alloc(BLK, BLK);
	uint64_t x = 0x2545f4914f6cdd1dull;

	if (fd < 0 || dfd < 0 || map == MAP_FAILED || !blk)
		abort();
	while (!r->stop) {
		uint64_t off;
		size_t k;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		off = (x % (r->size / BLK)) * BLK;
		for (k = 0; k < BLK; k += 8)
			memcpy(blk + k, &x, 8);
		switch (r->writes % 3) {
		case 0:
			if (pwrite(fd, blk, BLK, (off_t)off) != BLK)
				abort();
			break;
		case 1:
			memcpy(map + off, blk, BLK);
			break;
		default:
			if (pwrite(dfd, blk, BLK, (off_t)off) != BLK)
				abort();
		}
		r->writes++;
		usleep(r->pause_us);
	}
	(void)munmap(map, r->size);
	(void)close(dfd);
	(void)close(fd);
	free(blk);
	return NULL;
}

/*
 * @rounds fresh snapshots of "lun" while a writer writes it every @pause_us; a random chunk of
 * each is read with ->read_snapshot and compared with the snapshot read around the cache.
 */
static void race_rounds(struct fx *f, const char *path, size_t size, unsigned pause_us,
                        unsigned long rounds)
{
	const size_t chunk = MIB;
	char *got = aligned_alloc(BLK, chunk), *want = aligned_alloc(BLK, chunk),
	     *warmbuf = malloc(size);
	struct race r = { .path = path, .size = size, .pause_us = pause_us };
	unsigned long from_origin = 0, i;
	pthread_t th;

	assert_non_null(got);
	assert_non_null(want);
	assert_non_null(warmbuf);
	assert_int_equal(pthread_create(&th, NULL, race_writer, &r), 0);
	for (i = 0; i < rounds; i++) {
		struct array_origin o = { .obj = "lun" };
		uint64_t off = (rng() % (size / chunk)) * chunk;

		(void)OPS(f)->obj_delete(f->a, "snap", NULL);
		assert_int_equal(OPS(f)->clone(f->a, "lun", "snap", E(f)), 0);
		warm(f, "lun", size, warmbuf);
		assert_int_equal(OPS(f)->read_snapshot(f->a, "snap", &o, off, got, chunk, E(f)), 0);
		assert_int_equal(OPS(f)->read_uncached(f->a, "snap", off, want, chunk, E(f)), 0);
		assert_memory_equal(got, want, chunk);
		from_origin += o.bytes ? 1 : 0;
		origin_reset(f, &o, NULL);
	}
	r.stop = true;
	(void)pthread_join(th, NULL);
	printf("# a write every %u us: %lu rounds, %lu writes meanwhile; %lu chunks came from the "
	       "origin, %lu from the snapshot, all equal to the snapshot\n",
	       pause_us, rounds, r.writes, from_origin, rounds - from_origin);
	if (!origin_reads_expected(f))
		assert_int_equal(from_origin, 0);
	free(warmbuf);
	free(want);
	free(got);
}

static void test_file__read_snapshot_race(void **state)
{
	struct fx *f = *state;
	const size_t size = 16 * MIB;
	char *img = malloc(size);
	char path[1024];

	printf("checking ->read_snapshot under a writer that keeps writing the origin (buffered, "
	       "mapped and direct 4 KiB writes): every chunk equals the snapshot's\n");
	assert_non_null(img);
	fill_random(img, size);
	assert_int_equal(OPS(f)->obj_create(f->a, "lun", size, E(f)), 0);
	assert_int_equal(OPS(f)->write(f->a, "lun", 0, img, size, E(f)), 0);
	assert_int_equal(OPS(f)->flush(f->a, "lun", E(f)), 0);
	assert_int_equal(OPS(f)->obj_path(path, sizeof(path), f->a, "lun", E(f)), 0);
	race_rounds(f, path, size, 1000, 300);
	race_rounds(f, path, size, 150, 300);
	free(img);
}

/* A second file array "peer" at @dir/<name> (made and opened). */
static void open_peer(struct fx *f, const char *dir, char root[600], struct array **out)
{
	(void)snprintf(root, 600, "%s/peer-XXXXXX", dir);
	assert_non_null(mkdtemp(root));
	assert_int_equal(array_create("file", root, E(f)), 0);
	assert_int_equal(array_open(out, "file", root, NULL, E(f)), 0);
}

static void close_peer(struct array *p, const char *root)
{
	array_close(p);
	(void)rm_rf_data(root);
	(void)rmdir(root);
}

static void test_file__clone_from(void **state)
{
	struct fx *f = *state;
	const char *tmp = getenv("TMPDIR");
	struct array *peer = NULL, *other = NULL;
	struct array_obj_stat st;
	char proot[600], oroot[600], s0[40], c[40];
	char *w = malloc(2 * MIB);
	bool ex = true;

	printf("checking ->clone_from shares an object with another array on the same fs\n");
	assert_non_null(w);
	assert_non_null(OPS(f)->clone_from);
	fill_random(w, 2 * MIB);
	assert_int_equal(OPS(f)->obj_create(f->a, "snap", 8 * MIB + BLK, E(f)), 0);
	assert_int_equal(OPS(f)->write(f->a, "snap", MIB, w, 2 * MIB, E(f)), 0);
	assert_int_equal(OPS(f)->write(f->a, "snap", 8 * MIB, w, BLK, E(f)), 0);
	assert_int_equal(OPS(f)->checksum(s0, f->a, "snap", E(f)), 0);
	open_peer(f, base_dir, proot, &peer);
	if (!(f->a->caps & ARRAY_CAP_REFLINK)) {
		printf("# no reflink here: RP_ENOTSUPPORTED, nothing created\n");
		assert_int_equal(OPS(f)->clone_from(peer, "stage", f->a, "snap", E(f)),
		                 RP_ENOTSUPPORTED);
		assert_true(f->err.msg[0] != '\0');
		assert_int_equal(OPS(f)->obj_exists(&ex, peer, "stage", E(f)), 0);
		assert_false(ex);
		goto out;
	}
	assert_int_equal(OPS(f)->clone_from(peer, "stage", f->a, "nope", E(f)), RP_ENOTFOUND);
	assert_int_equal(OPS(f)->clone_from(peer, "stage", f->a, "snap", E(f)), 0);
	assert_int_equal(OPS(f)->checksum(c, peer, "stage", E(f)), 0);
	assert_string_equal(c, s0);
	assert_int_equal(OPS(f)->obj_stat(&st, peer, "stage", E(f)), 0);
	assert_int_equal(st.size, 8 * MIB + BLK);
	assert_int_equal(OPS(f)->clone_from(peer, "stage", f->a, "snap", E(f)), RP_EEXISTS);
	printf("# both sides stay independent\n");
	fill_random(w, 2 * MIB);
	assert_int_equal(OPS(f)->write(peer, "stage", 0, w, MIB, E(f)), 0);
	assert_int_equal(OPS(f)->checksum(c, f->a, "snap", E(f)), 0);
	assert_string_equal(c, s0);
	assert_int_equal(OPS(f)->write(f->a, "snap", 2 * MIB, w, MIB, E(f)), 0);
	assert_int_equal(OPS(f)->checksum(c, peer, "stage", E(f)), 0);
	assert_string_not_equal(c, s0);
	assert_int_equal(OPS(f)->read(peer, "stage", 0, w + MIB, MIB, E(f)), 0);
	assert_memory_equal(w, w + MIB, MIB);
	printf("# an array on another filesystem ($TMPDIR): RP_ENOTSUPPORTED, nothing created\n");
	open_peer(f, tmp && *tmp ? tmp : "/tmp", oroot, &other);
	assert_int_equal(OPS(f)->clone_from(other, "stage", f->a, "snap", E(f)), RP_ENOTSUPPORTED);
	assert_true(f->err.msg[0] != '\0');
	assert_int_equal(OPS(f)->obj_exists(&ex, other, "stage", E(f)), 0);
	assert_false(ex);
	close_peer(other, oroot);
out:
	close_peer(peer, proot);
	free(w);
}

/* FIEMAP of @obj at @off: true when the block there is shared with another file. */
static bool block_shared(struct fx *f, const char *obj, uint64_t off)
{
	struct fiemap *fm = calloc(1, sizeof(*fm) + sizeof(struct fiemap_extent));
	char path[1024];
	bool shared;
	int fd;

	assert_non_null(fm);
	assert_int_equal(OPS(f)->obj_path(path, sizeof(path), f->a, obj, E(f)), 0);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	fm->fm_start = off;
	fm->fm_length = BLK;
	fm->fm_flags = FIEMAP_FLAG_SYNC;
	fm->fm_extent_count = 1;
	assert_int_equal(ioctl(fd, FS_IOC_FIEMAP, fm), 0);
	shared = fm->fm_mapped_extents == 1 && (fm->fm_extents[0].fe_flags & FIEMAP_EXTENT_SHARED);
	(void)close(fd);
	free(fm);
	return shared;
}

static void test_file__copy_ranges(void **state)
{
	struct fx *f = *state;
	const size_t size = 8 * MIB;
	char *src = malloc(size), *dst = malloc(size), *got = malloc(size);
	struct array_remap r[] = {
		{ 0, 5 * MIB, BLK },                 /* aligned: shared on reflink */
		{ 3 * BLK, 7 * MIB + BLK, 2 * BLK }, /* aligned */
		{ 100, 6 * MIB + 7, 1000 },          /* unaligned: copied */
		{ 2 * MIB, MIB, 64 * 1024 },         /* a hole of src: reads as zeros after */
		{ 9 * BLK, 4 * BLK, 0 },             /* empty */
		{ 20 * BLK, 5 * MIB, BLK },          /* same place as the first: the later wins */
		{ 4 * MIB, 4 * MIB, MIB },           /* one large aligned range */
	};
	const size_t n = sizeof(r) / sizeof(r[0]);
	struct array_remap bad;
	uint64_t shared = 1, want_shared = 0;
	bool reflink = (f->a->caps & ARRAY_CAP_REFLINK) != 0;
	char sum[40], sum2[40];
	size_t i;

	printf("checking ->copy_ranges copies ranges in order (%s), and bad input changes "
	       "nothing\n",
	       reflink ? "aligned ones shared" : "all copied");
	assert_non_null(src);
	assert_non_null(dst);
	assert_non_null(got);
	assert_non_null(OPS(f)->copy_ranges);
	fill_random(src, size);
	memset(src + 2 * MIB, 0, MIB); /* left as a hole below */
	fill_random(dst, size);
	assert_int_equal(OPS(f)->obj_create(f->a, "src", size, E(f)), 0);
	assert_int_equal(OPS(f)->write(f->a, "src", 0, src, 2 * MIB, E(f)), 0);
	assert_int_equal(OPS(f)->write(f->a, "src", 3 * MIB, src + 3 * MIB, 5 * MIB, E(f)), 0);
	assert_int_equal(OPS(f)->obj_create(f->a, "dst", size, E(f)), 0);
	assert_int_equal(OPS(f)->write(f->a, "dst", 0, dst, size, E(f)), 0);
	for (i = 0; i < n; i++) {
		memcpy(dst + r[i].dst_off, src + r[i].src_off, (size_t)r[i].len);
		if (reflink && (r[i].src_off | r[i].dst_off | r[i].len) % BLK == 0)
			want_shared += r[i].len;
	}
	assert_int_equal(OPS(f)->copy_ranges(f->a, "src", "dst", r, n, &shared, E(f)), 0);
	assert_int_equal(shared, want_shared);
	assert_int_equal(OPS(f)->flush(f->a, "dst", E(f)), 0);
	assert_int_equal(OPS(f)->read(f->a, "dst", 0, got, size, E(f)), 0);
	assert_memory_equal(got, dst, size);
	if (reflink) {
		printf("# the aligned ranges share the source's blocks (FIEMAP)\n");
		assert_true(block_shared(f, "dst", 7 * MIB + BLK));
		assert_true(block_shared(f, "dst", 4 * MIB + 8 * BLK));
		assert_false(block_shared(f, "dst", 6 * MIB + 32 * BLK));
	}
	printf("# both objects stay independent\n");
	fill_random(got, MIB);
	assert_int_equal(OPS(f)->write(f->a, "src", 4 * MIB, got, MIB, E(f)), 0);
	assert_int_equal(OPS(f)->write(f->a, "dst", 0, got, BLK, E(f)), 0);
	memcpy(dst, got, BLK);
	assert_int_equal(OPS(f)->read(f->a, "dst", 0, got, size, E(f)), 0);
	assert_memory_equal(got, dst, size);
	assert_int_equal(OPS(f)->read(f->a, "src", 0, got, BLK, E(f)), 0);
	assert_memory_equal(got, src, BLK);

	printf("# bad input: an error, and the destination is unchanged\n");
	assert_int_equal(OPS(f)->checksum(sum, f->a, "dst", E(f)), 0);
	assert_int_equal(OPS(f)->copy_ranges(f->a, "nope", "dst", r, n, NULL, E(f)), RP_ENOTFOUND);
	assert_int_equal(OPS(f)->copy_ranges(f->a, "src", "nope", r, n, NULL, E(f)), RP_ENOTFOUND);
	assert_int_equal(OPS(f)->copy_ranges(f->a, "dst", "dst", r, n, NULL, E(f)), RP_EINVAL);
	assert_int_equal(OPS(f)->copy_ranges(f->a, "src", "../dst", r, n, NULL, E(f)), RP_EINVAL);
	/* the last range reaches past the end of the source: nothing before it is done either */
	bad = (struct array_remap){ size - BLK, 0, 2 * BLK };
	{
		struct array_remap two[2] = { r[0], bad };

		assert_int_equal(OPS(f)->copy_ranges(f->a, "src", "dst", two, 2, NULL, E(f)),
		                 RP_EINVAL);
		assert_non_null(strstr(f->err.msg, "beyond the end"));
		two[1] = (struct array_remap){ 0, size, BLK };
		assert_int_equal(OPS(f)->copy_ranges(f->a, "src", "dst", two, 2, NULL, E(f)),
		                 RP_EINVAL);
		two[1] = (struct array_remap){ 0, BLK, UINT64_MAX };
		assert_int_equal(OPS(f)->copy_ranges(f->a, "src", "dst", two, 2, NULL, E(f)),
		                 RP_EINVAL);
	}
	assert_int_equal(OPS(f)->obj_set_readonly(f->a, "dst", true, E(f)), 0);
	assert_int_equal(OPS(f)->copy_ranges(f->a, "src", "dst", r, n, NULL, E(f)), RP_EPERM);
	assert_int_equal(OPS(f)->checksum(sum2, f->a, "dst", E(f)), 0);
	assert_string_equal(sum2, sum);
	assert_int_equal(OPS(f)->copy_ranges(f->a, "src", "dst", r, 0, &shared, E(f)), RP_EPERM);
	assert_int_equal(OPS(f)->obj_set_readonly(f->a, "dst", false, E(f)), 0);
	assert_int_equal(OPS(f)->copy_ranges(f->a, "src", "dst", r, 0, &shared, E(f)), 0);
	assert_int_equal(shared, 0);
	free(src);
	free(dst);
	free(got);
}

static void test_file__reflink_detection(void **state)
{
	struct fx *f = *state;
	struct array_stat st;
	struct statfs sfs;
	bool expect;

	assert_int_equal(OPS(f)->stat(&st, f->a, E(f)), 0);
	printf("array on %s: caps reflink=%d extent-diff=%d freeze=%d local-path=%d\n", st.fs_type,
	       !!(st.caps & ARRAY_CAP_REFLINK), !!(st.caps & ARRAY_CAP_EXTENT_DIFF),
	       !!(st.caps & ARRAY_CAP_FREEZE), !!(st.caps & ARRAY_CAP_LOCAL_PATH));
	assert_true(st.capacity > 0);
	assert_true(st.free <= st.capacity);
	assert_true(st.fs_type[0] != '\0');
	assert_true(st.caps & ARRAY_CAP_LOCAL_PATH);
	assert_int_equal(st.caps, f->a->caps);
	if (!env_flag("REPLUN_TEST_EXPECT_REFLINK", &expect)) {
		/* Plain run: known non-reflink filesystems must say so. */
		assert_int_equal(statfs(f->root, &sfs), 0);
		if (sfs.f_type == 0xef53 || sfs.f_type == 0x01021994)
			expect = false;
		else {
			printf("fs '%s': no reflink expectation given, detection not asserted\n",
			       st.fs_type);
			return;
		}
	}
	printf("checking reflink detection is %s\n", expect ? "true" : "false");
	assert_int_equal(!!(st.caps & ARRAY_CAP_REFLINK), expect);
	assert_int_equal(!!(st.caps & ARRAY_CAP_EXTENT_DIFF), expect);
}

/* Collects reported ranges as a per-block bitmap (and zero flags). */
struct collect {
	uint64_t nblocks;
	unsigned char *changed; /* 1 = data, 2 = zero */
	uint64_t last_end;
	unsigned calls;
};

static int collect_cb(const struct array_extent *ext, void *payload)
{
	struct collect *c = payload;
	uint64_t b;

	assert_true(ext->offset >= c->last_end); /* ascending, not overlapping */
	assert_true(ext->length > 0);
	c->last_end = ext->offset + ext->length;
	for (b = ext->offset / BLK; b * BLK < ext->offset + ext->length; b++) {
		assert_true(b < c->nblocks);
		c->changed[b] = ext->zero ? 2 : 1;
	}
	c->calls++;
	return 0;
}

static void run_diff(struct fx *f, const char *base, const char *obj, struct collect *c,
                     uint64_t size)
{
	int rc;

	memset(c, 0, sizeof(*c));
	c->nblocks = (size + BLK - 1) / BLK;
	c->changed = calloc(c->nblocks, 1);
	assert_non_null(c->changed);
	rc = OPS(f)->changed_extents(f->a, base, obj, collect_cb, c, E(f));
	if (rc != 0)
		fprintf(stderr, "changed_extents: %s\n", f->err.msg);
	assert_int_equal(rc, 0);
}

static void test_file__changed_extents_exact(void **state)
{
	struct fx *f = *state;
	const uint64_t size = 64 * MIB, nblocks = size / BLK;
	const unsigned nchange = 97;
	unsigned char *want = calloc(nblocks, 1);
	char *w = malloc(4 * MIB), blk[BLK];
	struct collect c;
	uint64_t i, off;
	unsigned n = 0;

	printf("checking changed_extents reports exactly the %u rewritten 4 KiB blocks (%s)\n",
	       nchange, (f->a->caps & ARRAY_CAP_EXTENT_DIFF) ? "FIEMAP" : "checksum maps");
	assert_int_equal(OPS(f)->obj_create(f->a, "lun", size, E(f)), 0);
	/* Data in 4 MiB runs every 8 MiB: holes between. */
	for (off = 0; off < size; off += 8 * MIB) {
		fill_random(w, 4 * MIB);
		assert_int_equal(OPS(f)->write(f->a, "lun", off, w, 4 * MIB, E(f)), 0);
	}
	assert_int_equal(OPS(f)->flush(f->a, "lun", E(f)), 0);
	assert_int_equal(OPS(f)->clone(f->a, "lun", "base", E(f)), 0);
	assert_int_equal(OPS(f)->obj_set_readonly(f->a, "base", true, E(f)), 0);

	/* Unchanged: nothing reported. */
	run_diff(f, "base", "lun", &c, size);
	assert_int_equal(c.calls, 0);
	free(c.changed);

	while (n < nchange) {
		uint64_t b = rng() % nblocks;

		if (want[b])
			continue;
		want[b] = 1;
		n++;
		fill_random(blk, BLK);
		assert_int_equal(OPS(f)->write(f->a, "lun", b * BLK, blk, BLK, E(f)), 0);
	}
	assert_int_equal(OPS(f)->flush(f->a, "lun", E(f)), 0);

	/* Live object against its base (obj map computed by reading on non-reflink). */
	run_diff(f, "base", "lun", &c, size);
	for (i = 0; i < nblocks; i++) {
		if (c.changed[i] != want[i])
			fprintf(stderr, "block %llu: reported %d, want %d\n", (unsigned long long)i,
			        c.changed[i], want[i]);
		assert_int_equal(c.changed[i], want[i]);
	}
	free(c.changed);

	/* Snapshot against base: both sides with maps (non-reflink) / both FIEMAP. */
	assert_int_equal(OPS(f)->clone(f->a, "lun", "snap2", E(f)), 0);
	run_diff(f, "base", "snap2", &c, size);
	assert_memory_equal(c.changed, want, nblocks);
	free(c.changed);

	/* Base NULL: the allocated ranges, every data block of the object, never zero. */
	run_diff(f, NULL, "snap2", &c, size);
	for (off = 0; off < size; off += 8 * MIB)
		for (i = off / BLK; i < (off + 4 * MIB) / BLK; i++)
			assert_int_equal(c.changed[i], 1);
	for (i = 0; i < nblocks; i++)
		assert_true(c.changed[i] == (want[i] || (i * BLK) % (8 * MIB) < 4 * MIB ? 1 : 0));
	free(c.changed);
	free(want);
	free(w);
}

/* @obj and @other have the same content (XXH128 of each). */
static void assert_same(struct fx *f, const char *obj, const char *other)
{
	char a[40], b[40];

	assert_int_equal(OPS(f)->checksum(a, f->a, obj, E(f)), 0);
	assert_int_equal(OPS(f)->checksum(b, f->a, other, E(f)), 0);
	assert_string_equal(a, b);
}

static void test_file__refresh(void **state)
{
	struct fx *f = *state;
	const uint64_t size = 8 * MIB + 1000; /* an unaligned tail block */
	bool reflink = (f->a->caps & ARRAY_CAP_REFLINK) != 0;
	char *w = malloc(2 * MIB), *zero = calloc(1, 64 * 1024);
	uint64_t written = 1, want;
	struct collect c;
	int i;

	printf("checking ->refresh makes an old copy equal to its source again (%s)\n",
	       reflink ? "reflink: FICLONE" : "only changed blocks written");
	assert_non_null(w);
	assert_non_null(zero);
	assert_non_null(OPS(f)->refresh);
	assert_int_equal(OPS(f)->obj_create(f->a, "lun", size, E(f)), 0);
	fill_random(w, 2 * MIB);
	assert_int_equal(OPS(f)->write(f->a, "lun", 0, w, 2 * MIB, E(f)), 0);
	assert_int_equal(OPS(f)->write(f->a, "lun", 4 * MIB, w, 2 * MIB, E(f)), 0);
	assert_int_equal(OPS(f)->write(f->a, "lun", 8 * MIB, w, 1000, E(f)), 0);
	assert_int_equal(OPS(f)->clone(f->a, "lun", "snap", E(f)), 0);

	printf("# unchanged: nothing written\n");
	assert_int_equal(OPS(f)->refresh(f->a, "lun", "snap", &written, E(f)), 0);
	assert_int_equal(written, 0);
	assert_same(f, "lun", "snap");

	printf("# 5 blocks rewritten, 64 KiB zeroed, 1 MiB punched, 1 MiB written into a hole, "
	       "the tail changed\n");
	fill_random(w, 2 * MIB);
	for (i = 0; i < 5; i++)
		assert_int_equal(OPS(f)->write(f->a, "lun", (uint64_t)(7 + 40 * i) * BLK,
		                               w + i * BLK, BLK, E(f)),
		                 0);
	assert_int_equal(OPS(f)->write(f->a, "lun", MIB, zero, 64 * 1024, E(f)), 0);
	assert_int_equal(OPS(f)->punch(f->a, "lun", 4 * MIB, MIB, E(f)), 0);
	assert_int_equal(OPS(f)->write(f->a, "lun", 2 * MIB, w + MIB, MIB, E(f)), 0);
	assert_int_equal(OPS(f)->write(f->a, "lun", 8 * MIB, w + 5 * BLK, 1000, E(f)), 0);
	assert_int_equal(OPS(f)->refresh(f->a, "lun", "snap", &written, E(f)), 0);
	assert_same(f, "lun", "snap");
	want = reflink ? 0 : 5 * BLK + MIB + 1000;
	assert_int_equal(written, want);

	printf("# the map it wrote describes the new contents: no difference to a fresh clone\n");
	assert_int_equal(OPS(f)->clone(f->a, "lun", "snap2", E(f)), 0);
	run_diff(f, "snap", "snap2", &c, size);
	assert_int_equal(c.calls, 0);
	free(c.changed);

	printf("# the source is independent of it afterwards\n");
	fill_random(w, BLK);
	assert_int_equal(OPS(f)->write(f->a, "lun", 0, w, BLK, E(f)), 0);
	assert_same(f, "snap", "snap2");

	printf("# the copy was written since (its map is dropped): copied in full, still equal\n");
	assert_int_equal(OPS(f)->write(f->a, "snap", 3 * MIB, w, BLK, E(f)), 0);
	assert_int_equal(OPS(f)->refresh(f->a, "lun", "snap", &written, E(f)), 0);
	assert_same(f, "lun", "snap");
	if (!reflink)
		assert_true(written >= 3 * MIB); /* every data block of the source */

	printf("# a source of another size: copied in full at the new size\n");
	assert_int_equal(OPS(f)->obj_resize(f->a, "lun", size + 3 * MIB, E(f)), 0);
	assert_int_equal(OPS(f)->write(f->a, "lun", size + MIB, w, BLK, E(f)), 0);
	assert_int_equal(OPS(f)->refresh(f->a, "lun", "snap", &written, E(f)), 0);
	assert_same(f, "lun", "snap");
	{
		struct array_obj_stat st;

		assert_int_equal(OPS(f)->obj_stat(&st, f->a, "snap", E(f)), 0);
		assert_int_equal(st.size, size + 3 * MIB);
	}

	printf("# bad input: an error, nothing changed\n");
	assert_int_equal(OPS(f)->refresh(f->a, "lun", "lun", NULL, E(f)), RP_EINVAL);
	assert_int_equal(OPS(f)->refresh(f->a, "nope", "snap", NULL, E(f)), RP_ENOTFOUND);
	assert_int_equal(OPS(f)->refresh(f->a, "lun", "nope", NULL, E(f)), RP_ENOTFOUND);
	assert_int_equal(OPS(f)->refresh(f->a, "lun", "../snap", NULL, E(f)), RP_EINVAL);
	{
		bool ex = true;

		assert_int_equal(OPS(f)->obj_exists(&ex, f->a, "nope", E(f)), 0);
		assert_false(ex);
	}
	assert_same(f, "lun", "snap");
	free(zero);
	free(w);
}

static void test_file__holes_reported_zero(void **state)
{
	struct fx *f = *state;
	char *w = malloc(2 * MIB);
	struct collect c;
	uint64_t i;

	printf("checking a range punched since the base is reported as zero=true\n");
	fill_random(w, 2 * MIB);
	assert_int_equal(OPS(f)->obj_create(f->a, "lun", 8 * MIB, E(f)), 0);
	assert_int_equal(OPS(f)->write(f->a, "lun", 2 * MIB, w, 2 * MIB, E(f)), 0);
	assert_int_equal(OPS(f)->clone(f->a, "lun", "base", E(f)), 0);
	assert_int_equal(OPS(f)->punch(f->a, "lun", 2 * MIB + 64 * 1024, 256 * 1024, E(f)), 0);
	assert_int_equal(OPS(f)->write(f->a, "lun", 6 * MIB, w, BLK, E(f)), 0);
	run_diff(f, "base", "lun", &c, 8 * MIB);
	for (i = 0; i < 8 * MIB / BLK; i++) {
		uint64_t off = i * BLK;
		int want = 0;

		if (off >= 2 * MIB + 64 * 1024 && off < 2 * MIB + 320 * 1024)
			want = 2;
		if (off == 6 * MIB)
			want = 1;
		assert_int_equal(c.changed[i], want);
	}
	free(c.changed);
	free(w);
}

static int stop_cb(const struct array_extent *ext, void *payload)
{
	unsigned *n = payload;

	(*n)++;
	return RP_EBUSY;
}

static void test_file__callback_stops_walk(void **state)
{
	struct fx *f = *state;
	char blk[BLK];
	unsigned n = 0;
	int rc;

	printf("checking a callback's error stops the walk and is returned\n");
	fill_random(blk, BLK);
	assert_int_equal(OPS(f)->obj_create(f->a, "lun", MIB, E(f)), 0);
	assert_int_equal(OPS(f)->write(f->a, "lun", 0, blk, BLK, E(f)), 0);
	assert_int_equal(OPS(f)->write(f->a, "lun", 8 * BLK, blk, BLK, E(f)), 0);
	rc = OPS(f)->changed_extents(f->a, NULL, "lun", stop_cb, &n, E(f));
	assert_int_equal(rc, RP_EBUSY);
	assert_int_equal(n, 1);
	assert_true(f->err.msg[0] != '\0');
}

static void test_file__rename_replaces(void **state)
{
	struct fx *f = *state;
	char a[BLK], b[BLK], r[BLK], path[1200];
	bool ex = true;

	printf("checking rename replaces the destination atomically and moves the map\n");
	fill_random(a, BLK);
	fill_random(b, BLK);
	assert_int_equal(OPS(f)->obj_create(f->a, "src", MIB, E(f)), 0);
	assert_int_equal(OPS(f)->obj_create(f->a, "dst", MIB, E(f)), 0);
	assert_int_equal(OPS(f)->write(f->a, "src", 0, a, BLK, E(f)), 0);
	assert_int_equal(OPS(f)->write(f->a, "dst", 0, b, BLK, E(f)), 0);
	assert_int_equal(OPS(f)->clone(f->a, "src", "stage", E(f)), 0);
	(void)snprintf(path, sizeof(path), "%s/data/stage.csum", f->root);
	/* Non-reflink clones carry a checksum map; reflink clones do not. */
	assert_int_equal(access(path, F_OK) == 0, !(f->a->caps & ARRAY_CAP_REFLINK));
	assert_int_equal(OPS(f)->obj_rename(f->a, "stage", "dst", E(f)), 0);
	assert_int_equal(OPS(f)->obj_exists(&ex, f->a, "stage", E(f)), 0);
	assert_false(ex);
	assert_int_equal(access(path, F_OK), -1);
	(void)snprintf(path, sizeof(path), "%s/data/dst.csum", f->root);
	assert_int_equal(access(path, F_OK) == 0, !(f->a->caps & ARRAY_CAP_REFLINK));
	assert_int_equal(OPS(f)->read(f->a, "dst", 0, r, BLK, E(f)), 0);
	assert_memory_equal(r, a, BLK);
	/* A write makes it live: the map goes. */
	assert_int_equal(OPS(f)->write(f->a, "dst", BLK, b, BLK, E(f)), 0);
	assert_int_equal(access(path, F_OK), -1);
}

static void test_file__stale_map_ignored(void **state)
{
	struct fx *f = *state;
	char blk[BLK], path[1200], csum[1200];
	struct collect c;
	uint64_t i;
	int fd;

	printf("checking a snapshot changed behind the driver's back, or a map from another boot, "
	       "never yields a wrong diff\n");
	fill_random(blk, BLK);
	assert_int_equal(OPS(f)->obj_create(f->a, "lun", 4 * MIB, E(f)), 0);
	assert_int_equal(OPS(f)->write(f->a, "lun", 0, blk, BLK, E(f)), 0);
	assert_int_equal(OPS(f)->clone(f->a, "lun", "snap", E(f)), 0);
	/* An external writer (a VM through the path) changes block 5 of the snapshot. */
	assert_int_equal(OPS(f)->obj_path(path, sizeof(path), f->a, "snap", E(f)), 0);
	fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, blk, BLK, 5 * BLK), BLK);
	close(fd);
	run_diff(f, "snap", "lun", &c, 4 * MIB);
	for (i = 0; i < 4 * MIB / BLK; i++)
		assert_int_equal(c.changed[i], i == 5 ? 2 : 0); /* lun reads zeros there */
	free(c.changed);

	/* A map written in another boot (its sums garbled too) must be ignored. */
	assert_int_equal(OPS(f)->clone(f->a, "lun", "snap2", E(f)), 0);
	(void)snprintf(csum, sizeof(csum), "%s/data/snap2.csum", f->root);
	fd = open(csum, O_RDWR);
	if (fd < 0) {
		assert_true(f->a->caps & ARRAY_CAP_REFLINK); /* reflink clones have no map */
		return;
	}
	memset(blk, 0x77, sizeof(blk));
	assert_int_equal(pwrite(fd, blk, 8, 56), 8);     /* boot id in the header */
	assert_int_equal(pwrite(fd, blk, 256, 96), 256); /* and the first 32 sums */
	close(fd);
	run_diff(f, "snap2", "lun", &c, 4 * MIB);
	assert_int_equal(c.calls, 0);
	free(c.changed);
}

static void test_file__sparse_large_diff(void **state)
{
	struct fx *f = *state;
	const uint64_t size = 2 * 1024 * MIB + BLK, nblocks = (size + BLK - 1) / BLK;
	const uint64_t at[] = { 0, 1024 * MIB + BLK, 1536 * MIB + 2 * BLK, size - BLK };
	char blk[BLK];
	struct collect c;
	size_t k;
	uint64_t i;

	printf("checking diffs of a 2 GiB sparse object across checksum-map chunks\n");
	assert_int_equal(OPS(f)->obj_create(f->a, "lun", size, E(f)), 0);
	fill_random(blk, BLK);
	assert_int_equal(OPS(f)->write(f->a, "lun", at[0], blk, BLK, E(f)), 0);
	assert_int_equal(OPS(f)->write(f->a, "lun", at[2], blk, BLK, E(f)), 0);
	assert_int_equal(OPS(f)->clone(f->a, "lun", "base", E(f)), 0);
	for (k = 1; k < 4; k++) {
		fill_random(blk, BLK);
		assert_int_equal(OPS(f)->write(f->a, "lun", at[k], blk, BLK, E(f)), 0);
	}
	assert_int_equal(OPS(f)->punch(f->a, "lun", at[0], BLK, E(f)), 0);
	assert_int_equal(OPS(f)->clone(f->a, "lun", "snap", E(f)), 0);
	for (k = 0; k < 2; k++) {
		run_diff(f, "base", k ? "snap" : "lun", &c, size);
		for (i = 0; i < nblocks; i++) {
			int want = 0;

			if (i == at[0] / BLK)
				want = 2;
			else if (i == at[1] / BLK || i == at[2] / BLK || i == at[3] / BLK)
				want = 1;
			assert_int_equal(c.changed[i], want);
		}
		free(c.changed);
	}
}

static void test_file__large_copy_halves(void **state)
{
	struct fx *f = *state;
	/* From 1 GiB on a copy runs in two threads, split at 512 MiB (file_clone.c). */
	const uint64_t size = 1024 * MIB + 3 * BLK + 100, mid = 512 * MIB;
	const uint64_t at[] = { 0, mid - 8 * BLK, mid + 5 * BLK, 1000 * MIB, size - 100 };
	char *w = malloc(64 * 1024), sa[40], sb[40];
	struct collect c;
	uint64_t i;
	size_t k;

	printf("checking a copy of a sparse 1 GiB object done in two halves: same data, exact "
	       "diffs on both sides of the split\n");
	assert_non_null(w);
	assert_int_equal(OPS(f)->obj_create(f->a, "lun", size, E(f)), 0);
	fill_random(w, 64 * 1024);
	assert_int_equal(OPS(f)->write(f->a, "lun", at[0], w, 64 * 1024, E(f)), 0);
	assert_int_equal(OPS(f)->write(f->a, "lun", at[1], w, 16 * BLK, E(f)), 0); /* across */
	assert_int_equal(OPS(f)->write(f->a, "lun", at[3], w, BLK, E(f)), 0);
	assert_int_equal(OPS(f)->write(f->a, "lun", at[4], w, 100, E(f)), 0); /* partial block */
	assert_int_equal(OPS(f)->clone(f->a, "lun", "snap", E(f)), 0);
	assert_int_equal(OPS(f)->checksum(sa, f->a, "lun", E(f)), 0);
	assert_int_equal(OPS(f)->checksum(sb, f->a, "snap", E(f)), 0);
	assert_string_equal(sa, sb);
	run_diff(f, "snap", "lun", &c, size);
	assert_int_equal(c.calls, 0);
	free(c.changed);
	/* one block changed in each half, right next to the split */
	fill_random(w, BLK);
	assert_int_equal(OPS(f)->write(f->a, "lun", mid - BLK, w, BLK, E(f)), 0);
	assert_int_equal(OPS(f)->write(f->a, "lun", at[2], w, BLK, E(f)), 0);
	assert_int_equal(OPS(f)->clone(f->a, "lun", "snap2", E(f)), 0);
	for (k = 0; k < 2; k++) {
		run_diff(f, "snap", k ? "snap2" : "lun", &c, size);
		for (i = 0; i < c.nblocks; i++)
			assert_int_equal(c.changed[i],
			                 i == (mid - BLK) / BLK || i == at[2] / BLK ? 1 : 0);
		free(c.changed);
	}
	assert_int_equal(OPS(f)->checksum(sa, f->a, "lun", E(f)), 0);
	assert_int_equal(OPS(f)->checksum(sb, f->a, "snap2", E(f)), 0);
	assert_string_equal(sa, sb);
	free(w);
}

static void test_file__many_extents(void **state)
{
	struct fx *f = *state;
	const uint64_t size = 32 * MIB, nblocks = size / BLK;
	char *w = malloc(4 * MIB);
	struct collect c;
	uint64_t i, off;

	printf("checking a diff over more extents than one FIEMAP batch (every other block of "
	       "16 MiB rewritten: 2048 ranges)\n");
	assert_int_equal(OPS(f)->obj_create(f->a, "lun", size, E(f)), 0);
	for (off = 0; off < size; off += 4 * MIB) {
		fill_random(w, 4 * MIB);
		assert_int_equal(OPS(f)->write(f->a, "lun", off, w, 4 * MIB, E(f)), 0);
	}
	assert_int_equal(OPS(f)->clone(f->a, "lun", "base", E(f)), 0);
	for (i = 0; i < 16 * MIB / BLK; i += 2) {
		fill_random(w, BLK);
		assert_int_equal(OPS(f)->write(f->a, "lun", i * BLK, w, BLK, E(f)), 0);
	}
	run_diff(f, "base", "lun", &c, size);
	assert_int_equal(c.calls, 2048); /* alternate blocks: nothing to coalesce */
	for (i = 0; i < nblocks; i++)
		assert_int_equal(c.changed[i], i < 16 * MIB / BLK && i % 2 == 0 ? 1 : 0);
	free(c.changed);
	free(w);
}

static void test_file__freeze(void **state)
{
	struct fx *f = *state;
	bool expect = false;
	char blk[BLK];
	int rc;

	(void)env_flag("REPLUN_TEST_EXPECT_FREEZE", &expect);
	assert_int_equal(OPS(f)->obj_create(f->a, "lun", MIB, E(f)), 0);
	rc = OPS(f)->freeze(f->a, E(f));
	if (!expect) {
		printf("checking freeze is refused on a non-mount-point root (or non-root)\n");
		assert_int_equal(rc, RP_ENOTSUPPORTED);
		assert_true(f->err.msg[0] != '\0');
		assert_false(f->a->caps & ARRAY_CAP_FREEZE);
		assert_int_equal(OPS(f)->thaw(f->a, E(f)), 0);
		return;
	}
	printf("checking freeze then thaw of the mounted array filesystem\n");
	assert_true(f->a->caps & ARRAY_CAP_FREEZE);
	assert_int_equal(rc, 0);
	assert_int_equal(OPS(f)->freeze(f->a, E(f)), RP_EBUSY); /* already frozen by us */
	assert_int_equal(OPS(f)->thaw(f->a, E(f)), 0);
	assert_int_equal(OPS(f)->thaw(f->a, E(f)), 0); /* idempotent */
	fill_random(blk, BLK);
	assert_int_equal(OPS(f)->write(f->a, "lun", 0, blk, BLK, E(f)), 0);
	assert_int_equal(OPS(f)->flush(f->a, "lun", E(f)), 0);
	/* Closing a frozen array thaws it. */
	assert_int_equal(OPS(f)->freeze(f->a, E(f)), 0);
	array_close(f->a);
	f->a = NULL;
	assert_int_equal(array_open(&f->a, "file", f->root, NULL, E(f)), 0);
	assert_int_equal(OPS(f)->write(f->a, "lun", BLK, blk, BLK, E(f)), 0);
	assert_int_equal(OPS(f)->flush(f->a, "lun", E(f)), 0);
}

static int group_setup(void **state)
{
	const char *dir = getenv("REPLUN_TEST_DIR");
	const char *tmp = getenv("TMPDIR");
	const char *m = getenv("REPLUN_TEST_MOUNT");

	(void)state;
	if (dir && *dir) {
		(void)snprintf(base_dir, sizeof(base_dir), "%s", dir);
		base_is_mount = m && strcmp(m, "1") == 0;
	} else {
		(void)snprintf(base_dir, sizeof(base_dir), "%s/replun-arrays-XXXXXX",
		               tmp && *tmp ? tmp : "/tmp");
		if (!mkdtemp(base_dir))
			return -1;
		made_base = true;
	}
	printf("arrays under %s%s\n", base_dir, base_is_mount ? " (mount point)" : "");
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	if (made_base)
		(void)rmdir(base_dir);
	return 0;
}

#define T(name) cmocka_unit_test_setup_teardown(name, fx_setup, fx_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_file__name_check),
		T(test_file__open_errors),
		T(test_file__create_delete_resize),
		T(test_file__missing_objects),
		T(test_file__io_and_readonly),
		T(test_file__punch),
		T(test_file__checksum),
		T(test_file__clone_independence),
		T(test_file__read_uncached),
		T(test_file__obj_list),
		T(test_file__read_snapshot),
		T(test_file__read_snapshot_race),
		T(test_file__clone_from),
		T(test_file__copy_ranges),
		T(test_file__reflink_detection),
		T(test_file__changed_extents_exact),
		T(test_file__refresh),
		T(test_file__holes_reported_zero),
		T(test_file__callback_stops_walk),
		T(test_file__rename_replaces),
		T(test_file__stale_map_ignored),
		T(test_file__sparse_large_diff),
		T(test_file__large_copy_halves),
		T(test_file__many_extents),
		T(test_file__freeze),
	};

	setvbuf(stdout, NULL, _IOLBF, 0);
	return cmocka_run_group_tests_name("arrays.file", tests, group_setup, group_teardown);
}

/* SPDX-License-Identifier: MIT */
/*
 * drill.c - `replun drill`: a disaster-recovery drill on two embedded file arrays. Writes a
 * deterministic pattern into the LUN images, runs every workflow in order and checks the data
 * after each step against a model of what the drill wrote, then prints a report.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "cli.h"

#define DRILL_BLOCK (64 * 1024)
#define DRILL_GROUP "drill"
#define DRILL_MAX_LUNS 16
#define DRILL_SYNC_TIMEOUT_MS (10 * 60 * 1000)

enum { SIDE_A = 0, SIDE_B = 1 };

struct drill_step {
	const char *name;
	bool run;
	bool ok;    /* the step's commands all succeeded */
	int verify; /* 1 ok, 0 mismatch, -1 not checked */
	int64_t duration_ms;
	uint64_t bytes;
	int64_t rpo_ms; /* -1 not applicable */
	int64_t rto_ms;
	char verify_msg[160];
	char note[256];
};

struct drill {
	char dir[RP_URI_MAX - 64];
	char path[2][RP_URI_MAX];
	char down[RP_URI_MAX]; /* site A's directory while it is "unreachable" */
	bool made_dir, a_down, dir_ready;
	struct rp_array *arr[2];
	const char *group_ptr;
	unsigned n_luns;
	uint64_t size;
	uint64_t nblocks;
	char names[DRILL_MAX_LUNS][RP_NAME_MAX];
	/* The model: for each LUN and block, the generation of the pattern last written there
	 * (0 = never written, reads as zeros). cur is the production data now. */
	uint8_t *cur[DRILL_MAX_LUNS];
	uint8_t *saved[DRILL_MAX_LUNS];
	uint8_t *tail[DRILL_MAX_LUNS]; /* site A's data with its unreplicated writes */
	uint8_t *buf;
	char fs_type[RP_ID_MAX];
	bool reflink;
	struct drill_step *step; /* the step running */
	char err[512];
	char label[64]; /* "  [2/8] initial sync" while a step runs */
	int64_t last_write_ms;
};

static volatile sig_atomic_t drill_stop;

static void drill_on_signal(int sig)
{
	drill_stop = sig;
}

static int drill_fail(struct drill *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int drill_fail(struct drill *d, const char *fmt, ...)
{
	va_list ap;

	if (d->err[0])
		return -1;
	va_start(ap, fmt);
	(void)vsnprintf(d->err, sizeof(d->err), fmt, ap);
	va_end(ap);
	return -1;
}

static const char *site(int side)
{
	return side == SIDE_A ? "site A" : "site B";
}

static void note(struct drill *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void note(struct drill *d, const char *fmt, ...)
{
	size_t off = strlen(d->step->note);
	va_list ap;

	if (off >= sizeof(d->step->note) - 4)
		return;
	if (off)
		off += (size_t)snprintf(d->step->note + off, sizeof(d->step->note) - off, "; ");
	va_start(ap, fmt);
	(void)vsnprintf(d->step->note + off, sizeof(d->step->note) - off, fmt, ap);
	va_end(ap);
}

/* ---------------------------------------------------------------------------------------- */
/* The data pattern and its checksums                                                        */

static void fill_block(uint8_t *buf, unsigned lun, unsigned gen, uint64_t blk)
{
	uint64_t x = (blk + 1) * 0x9E3779B97F4A7C15ULL ^ ((uint64_t)gen << 48) ^
	             ((uint64_t)(lun + 1) << 40) ^ 0xD1B54A32D192ED03ULL;
	size_t i;

	x |= 1;
	for (i = 0; i < DRILL_BLOCK / 8; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(buf + i * 8, &x, 8);
	}
}

static bool all_zero(const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i += 8) {
		uint64_t w;

		memcpy(&w, p + i, 8);
		if (w)
			return false;
	}
	return true;
}

static void hash_hex(char out[40], XXH3_state_t *st, uint64_t size)
{
	XXH128_hash_t h;

	(void)XXH3_128bits_update(st, &size, sizeof(size));
	h = XXH3_128bits_digest(st);
	(void)snprintf(out, 40, "%016llx%016llx", (unsigned long long)h.high64,
	               (unsigned long long)h.low64);
}

/* Checksum of what the model says a LUN holds: every non-zero block with its index. */
static int model_sum(struct drill *d, char out[40], unsigned lun, const uint8_t *gen)
{
	XXH3_state_t *st = XXH3_createState();
	uint64_t b;

	if (!st)
		return drill_fail(d, "out of memory");
	(void)XXH3_128bits_reset(st);
	for (b = 0; b < d->nblocks; b++) {
		if (!gen[b])
			continue;
		fill_block(d->buf, lun, gen[b], b);
		(void)XXH3_128bits_update(st, &b, sizeof(b));
		(void)XXH3_128bits_update(st, d->buf, DRILL_BLOCK);
	}
	hash_hex(out, st, d->size);
	(void)XXH3_freeState(st);
	return 0;
}

/* The same checksum over an image file; holes and zero blocks are skipped alike. */
static int file_sum(struct drill *d, char out[40], const char *path)
{
	XXH3_state_t *st = NULL;
	struct stat sb;
	off_t off = 0;
	int fd, rc = -1;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return drill_fail(d, "cannot open '%s': %s", path, strerror(errno));
	if (fstat(fd, &sb) < 0) {
		(void)drill_fail(d, "cannot stat '%s': %s", path, strerror(errno));
		goto out;
	}
	st = XXH3_createState();
	if (!st) {
		(void)drill_fail(d, "out of memory");
		goto out;
	}
	(void)XXH3_128bits_reset(st);
	while (off < sb.st_size) {
		off_t data = lseek(fd, off, SEEK_DATA);
		uint64_t b;
		ssize_t n;

		if (data < 0 && errno == ENXIO)
			break;
		if (data < 0)
			data = off; /* SEEK_DATA unsupported: read everything */
		off = data - data % DRILL_BLOCK;
		n = pread(fd, d->buf, DRILL_BLOCK, off);
		if (n < 0) {
			(void)drill_fail(d, "cannot read '%s': %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		if ((size_t)n < DRILL_BLOCK)
			memset(d->buf + n, 0, DRILL_BLOCK - (size_t)n);
		if (!all_zero(d->buf, DRILL_BLOCK)) {
			b = (uint64_t)off / DRILL_BLOCK;
			(void)XXH3_128bits_update(st, &b, sizeof(b));
			(void)XXH3_128bits_update(st, d->buf, DRILL_BLOCK);
		}
		off += DRILL_BLOCK;
	}
	hash_hex(out, st, (uint64_t)sb.st_size);
	rc = 0;
out:
	if (st)
		(void)XXH3_freeState(st);
	(void)close(fd);
	return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Engine helpers                                                                            */

static struct rp_request group_req(struct drill *d)
{
	struct rp_request r;

	memset(&r, 0, sizeof(r));
	d->group_ptr = DRILL_GROUP;
	r.groups = &d->group_ptr;
	r.n_groups = 1;
	return r;
}

/* Finds the id of the drill LUN named @name on one side (ids are opaque: never derived). */
static int lun_by_name(struct drill *d, int side, const char *name, struct rp_device *out)
{
	struct rp_error err = { 0 };
	struct rp_device *list = NULL;
	size_t n = 0, i;
	int rc = -1;

	if (rp_lun_list(&list, &n, d->arr[side], DRILL_GROUP, &err) < 0)
		return drill_fail(d, "listing LUNs at %s: %s", site(side), err.msg);
	for (i = 0; i < n; i++)
		if (strcmp(list[i].name, name) == 0 && !list[i].snapshot_of[0]) {
			*out = list[i];
			rc = 0;
			break;
		}
	rp_free(list);
	if (rc < 0)
		return drill_fail(d, "LUN '%s' is missing at %s", name, site(side));
	return 0;
}

static int lun_file(struct drill *d, int side, unsigned lun, char *path, size_t len)
{
	struct rp_error err = { 0 };
	struct rp_device dev;

	if (lun_by_name(d, side, d->names[lun], &dev) < 0)
		return -1;
	if (rp_lun_path(path, len, d->arr[side], dev.id, &err) < 0)
		return drill_fail(d, "path of LUN '%s' at %s: %s", d->names[lun], site(side),
		                  err.msg);
	return 0;
}

/* Runs a workflow on the drill group; every item must succeed (warnings are noted). */
static int workflow(struct drill *d, int side, rp_workflow_fn fn, const char *what,
                    struct rp_result **keep)
{
	struct rp_error err = { 0 };
	struct rp_result *r = NULL;
	struct rp_request req = group_req(d);
	size_t i, w;
	int rc = 0;

	if (fn(&r, d->arr[side], &req, &err) < 0)
		return drill_fail(d, "%s at %s: %s", what, site(side), err.msg);
	for (i = 0; i < r->n; i++) {
		const struct rp_item *it = &r->items[i];

		if (it->code) {
			rc = drill_fail(d, "%s at %s: %s '%s': %s", what, site(side),
			                it->is_group ? "group" : "device", it->id,
			                it->msg[0] ? it->msg : rp_code_name(it->code));
			break;
		}
		if (it->is_group)
			for (w = 0; w < it->n_warnings && w < RP_MAX_WARNINGS; w++)
				note(d, "%s: %s", what, it->warnings[w].msg);
	}
	if (keep && rc == 0)
		*keep = r;
	else
		rp_result_free(r);
	return rc;
}

static int sync_group(struct drill *d, int side)
{
	struct rp_error err = { 0 };
	struct rp_result *r = NULL;
	struct rp_request req = group_req(d);
	struct rp_sync_session s;
	struct cli_progress p;
	char sid[RP_ID_MAX] = "";
	size_t i;
	int rc = -1;

	if (rp_sync_start(&r, d->arr[side], &req, NULL, &err) < 0)
		return drill_fail(d, "sync at %s: %s", site(side), err.msg);
	for (i = 0; i < r->n; i++) {
		if (r->items[i].code) {
			(void)drill_fail(d, "sync at %s: %s", site(side),
			                 r->items[i].msg[0] ? r->items[i].msg
			                                    : rp_code_name(r->items[i].code));
			goto out;
		}
		if (!sid[0] && r->items[i].session[0])
			(void)rp_strlcpy(sid, r->items[i].session, sizeof(sid));
	}
	if (!sid[0]) {
		(void)drill_fail(d, "sync at %s: no session was started", site(side));
		goto out;
	}
	cli_progress_init(&p, d->label);
	memset(&s, 0, sizeof(s));
	rc = rp_sync_wait(&s, d->arr[side], sid, DRILL_SYNC_TIMEOUT_MS, cli_progress_cb, &p, &err);
	cli_progress_done(&p);
	if (rc < 0) {
		(void)drill_fail(d, "waiting for sync '%s' at %s: %s", sid, site(side), err.msg);
		goto out;
	}
	if (s.status != RP_SYNC_COMPLETE) {
		rc = drill_fail(d, "sync '%s' from %s %s: %s", sid, site(side),
		                rp_sync_status_name(s.status), s.error[0] ? s.error : "no reason");
		goto out;
	}
	d->step->bytes += s.bytes_transferred;
	rc = 0;
out:
	rp_result_free(r);
	return rc;
}

/* Writes generation @gen: the first one covers every 4th block and the last block; later
 * ones change a few scattered blocks. Updates the model. */
static int write_gen(struct drill *d, int side, unsigned gen)
{
	char path[RP_URI_MAX];
	uint64_t k, count, b;
	unsigned lun;
	int fd;

	for (lun = 0; lun < d->n_luns; lun++) {
		uint64_t x = 0x2545F4914F6CDD1DULL * (gen + 1) + lun;

		if (lun_file(d, side, lun, path, sizeof(path)) < 0)
			return -1;
		fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd < 0)
			return drill_fail(d, "cannot open '%s' for writing: %s", path,
			                  strerror(errno));
		count = gen == 1 ? (d->nblocks + 3) / 4 + 1
		                 : (d->nblocks / 64 ? d->nblocks / 64 : 1);
		for (k = 0; k < count; k++) {
			if (gen == 1) {
				b = k * 4 < d->nblocks ? k * 4 : d->nblocks - 1;
			} else {
				x ^= x << 13;
				x ^= x >> 7;
				x ^= x << 17;
				b = x % d->nblocks;
			}
			fill_block(d->buf, lun, gen, b);
			if (pwrite(fd, d->buf, DRILL_BLOCK, (off_t)(b * DRILL_BLOCK)) !=
			    DRILL_BLOCK) {
				(void)drill_fail(d, "cannot write '%s': %s", path, strerror(errno));
				(void)close(fd);
				return -1;
			}
			d->cur[lun][b] = (uint8_t)gen;
		}
		if (fdatasync(fd) < 0 || close(fd) < 0)
			return drill_fail(d, "cannot write '%s': %s", path, strerror(errno));
	}
	d->last_write_ms = rp_now_ms();
	return 0;
}

static void copy_model(struct drill *d, uint8_t **dst, uint8_t *const *src)
{
	unsigned lun;

	for (lun = 0; lun < d->n_luns; lun++)
		memcpy(dst[lun], src[lun], d->nblocks);
}

static void save_model(struct drill *d)
{
	copy_model(d, d->saved, d->cur);
}

/* Checks every LUN image on @side (its test copies when @test) against @model. */
static int check_side(struct drill *d, int side, uint8_t **model, const char *what)
{
	char want[40], got[40], path[RP_URI_MAX];
	unsigned lun, bad = 0;

	for (lun = 0; lun < d->n_luns; lun++) {
		if (lun_file(d, side, lun, path, sizeof(path)) < 0)
			return -1;
		if (model_sum(d, want, lun, model[lun]) < 0 || file_sum(d, got, path) < 0)
			return -1;
		if (strcmp(want, got) != 0) {
			if (!bad)
				(void)snprintf(
				        d->step->verify_msg, sizeof(d->step->verify_msg),
				        "%s: LUN '%.64s' at %s differs from what the drill wrote",
				        what, d->names[lun], site(side));
			bad++;
		}
	}
	if (bad)
		d->step->verify = 0;
	else if (d->step->verify < 0)
		d->step->verify = 1;
	return 0;
}

/* The engine's own comparison of both sides at their last recovery point. */
static int check_pair(struct drill *d, int from)
{
	struct rp_error err = { 0 };
	struct rp_verify_item *v = NULL;
	bool equal = false;
	size_t n = 0;

	if (rp_verify(&v, &n, &equal, d->arr[from], d->arr[!from], DRILL_GROUP, &err) < 0)
		return drill_fail(d, "verify %s against %s: %s", site(from), site(!from), err.msg);
	rp_free(v);
	if (!equal || n != d->n_luns) {
		if (d->step->verify != 0)
			(void)snprintf(d->step->verify_msg, sizeof(d->step->verify_msg),
			               "rp_verify: %zu of %u pairs compared, %s", n, d->n_luns,
			               equal ? "equal" : "DIFFERENT");
		d->step->verify = 0;
	} else if (d->step->verify < 0) {
		d->step->verify = 1;
	}
	return 0;
}

static int64_t group_rp_ms(struct drill *d, int side)
{
	struct rp_error err = { 0 };
	struct rp_group g;

	if (rp_group_get(&g, d->arr[side], DRILL_GROUP, &err) < 0)
		return 0;
	return g.recovery_point_ms;
}

/* Failover at @side with RPO (age of the data the recovery site holds) and RTO (command start
 * until every device is read-write and its image opens for writing). */
static int timed_failover(struct drill *d, int side)
{
	int64_t rp_ms = group_rp_ms(d, side);
	int64_t t0 = rp_now_ms();
	char path[RP_URI_MAX];
	struct rp_device dev;
	unsigned lun;
	int fd;

	if (workflow(d, side, rp_failover, "failover", NULL) < 0)
		return -1;
	for (lun = 0; lun < d->n_luns; lun++) {
		if (lun_by_name(d, side, d->names[lun], &dev) < 0)
			return -1;
		if (dev.read_only)
			return drill_fail(d, "LUN '%s' at %s is still read-only after failover",
			                  d->names[lun], site(side));
		if (lun_file(d, side, lun, path, sizeof(path)) < 0)
			return -1;
		fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd < 0)
			return drill_fail(d, "LUN '%s' at %s cannot be opened for writing: %s",
			                  d->names[lun], site(side), strerror(errno));
		(void)close(fd);
	}
	d->step->rto_ms = rp_now_ms() - t0;
	d->step->rpo_ms = rp_ms > 0 ? t0 - rp_ms : -1;
	return 0;
}

static int reopen(struct drill *d, int side)
{
	struct rp_error err = { 0 };

	rp_array_close(d->arr[side]);
	d->arr[side] = NULL;
	if (rp_array_open(&d->arr[side], d->path[side], NULL, &err) < 0)
		return drill_fail(d, "opening %s: %s", site(side), err.msg);
	return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* The steps                                                                                 */

static int step_setup(struct drill *d)
{
	static const char *const ids[2] = { "site-a", "site-b" };
	static const char *const labels[2] = { "Site A (protected)", "Site B (recovery)" };
	struct rp_lun_create_opts o = { 0 };
	struct rp_array_info *info = NULL;
	struct rp_error err = { 0 };
	char sz[32];
	unsigned lun;
	int side, rc = -1;

	for (side = 0; side < 2; side++) {
		if (rp_array_init(d->path[side], ids[side], labels[side], &err) < 0)
			return drill_fail(d, "creating %s in '%s': %s", site(side), d->path[side],
			                  err.msg);
		if (rp_array_open(&d->arr[side], d->path[side], NULL, &err) < 0)
			return drill_fail(d, "opening %s: %s", site(side), err.msg);
	}
	if (rp_array_pair(d->arr[SIDE_A], d->arr[SIDE_B], &err) < 0)
		return drill_fail(d, "pairing the sites: %s", err.msg);
	info = rp_calloc(1, sizeof(*info));
	if (!info)
		return drill_fail(d, "out of memory");
	if (rp_array_info(info, d->arr[SIDE_A], &err) < 0) {
		(void)drill_fail(d, "array info: %s", err.msg);
		goto out;
	}
	(void)rp_strlcpy(d->fs_type, info->fs_type[0] ? info->fs_type : "unknown",
	                 sizeof(d->fs_type));
	d->reflink = info->reflink;
	o.group = DRILL_GROUP;
	o.replicate = true;
	for (lun = 0; lun < d->n_luns; lun++) {
		struct rp_device dev;

		(void)snprintf(d->names[lun], sizeof(d->names[lun]), "drill-lun-%u", lun + 1);
		if (rp_lun_create(&dev, d->arr[SIDE_A], d->names[lun], d->size, &o, &err) < 0) {
			(void)drill_fail(d, "creating LUN '%s': %s", d->names[lun], err.msg);
			goto out;
		}
		if (dev.state != RP_DEV_SOURCE || !dev.peer_device[0]) {
			(void)drill_fail(d,
			                 "LUN '%s' was created as %s, not as a replication source",
			                 d->names[lun], rp_dev_state_name(dev.state));
			goto out;
		}
	}
	if (write_gen(d, SIDE_A, 1) < 0)
		goto out;
	if (check_side(d, SIDE_A, d->cur, "after writing") < 0)
		goto out;
	cli_fmt_size(sz, sizeof(sz), d->size);
	note(d, "%u LUNs x %s in group '%s', data written at site A", d->n_luns, sz, DRILL_GROUP);
	rc = 0;
out:
	rp_free(info);
	return rc;
}

static int step_initial_sync(struct drill *d)
{
	if (sync_group(d, SIDE_A) < 0)
		return -1;
	save_model(d);
	if (check_side(d, SIDE_B, d->cur, "after the initial sync") < 0)
		return -1;
	return check_pair(d, SIDE_A);
}

static int step_test_failover(struct drill *d)
{
	struct rp_result *r = NULL;
	char path[RP_URI_MAX], want[40], got[40];
	int64_t rp_ms, t0;
	unsigned lun, found = 0;
	size_t i;
	int rc = -1;

	/* New writes at A that are not synced: the test copy must show the recovery point. */
	if (write_gen(d, SIDE_A, 2) < 0)
		return -1;
	rp_ms = group_rp_ms(d, SIDE_B);
	t0 = rp_now_ms();
	if (workflow(d, SIDE_B, rp_test_failover_start, "test failover start", &r) < 0)
		return -1;
	d->step->rto_ms = rp_now_ms() - t0;
	d->step->rpo_ms = rp_ms > 0 ? t0 - rp_ms : -1;
	for (i = 0; i < r->n; i++) {
		const struct rp_item *it = &r->items[i];
		struct rp_device dev;
		struct rp_error err = { 0 };
		int fd;

		if (it->is_group || !it->snapshot[0])
			continue;
		if (rp_lun_get(&dev, d->arr[SIDE_B], it->id, &err) < 0) {
			(void)drill_fail(d, "device '%s' at site B: %s", it->id, err.msg);
			goto stop;
		}
		for (lun = 0; lun < d->n_luns; lun++)
			if (strcmp(dev.name, d->names[lun]) == 0)
				break;
		if (lun == d->n_luns)
			continue;
		err.code = 0;
		if (rp_lun_path(path, sizeof(path), d->arr[SIDE_B], it->snapshot, &err) < 0) {
			(void)drill_fail(d, "path of test copy '%s': %s", it->snapshot, err.msg);
			goto stop;
		}
		if (model_sum(d, want, lun, d->saved[lun]) < 0 || file_sum(d, got, path) < 0)
			goto stop;
		if (strcmp(want, got) != 0) {
			d->step->verify = 0;
			(void)snprintf(d->step->verify_msg, sizeof(d->step->verify_msg),
			               "test copy of '%.64s' differs from the recovery point",
			               d->names[lun]);
		}
		/* The copy is writable and independent of the replica. */
		fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd < 0) {
			(void)drill_fail(d, "test copy '%s' is not writable: %s", it->snapshot,
			                 strerror(errno));
			goto stop;
		}
		fill_block(d->buf, lun, 250, 0);
		if (pwrite(fd, d->buf, DRILL_BLOCK, 0) != DRILL_BLOCK) {
			(void)drill_fail(d, "cannot write the test copy '%s': %s", it->snapshot,
			                 strerror(errno));
			(void)close(fd);
			goto stop;
		}
		(void)close(fd);
		found++;
	}
	if (found != d->n_luns) {
		(void)drill_fail(d, "test failover made %u test copies for %u LUNs", found,
		                 d->n_luns);
		goto stop;
	}
	note(d, "%u test copies checked and written to", found);
	rc = 0;
stop:
	rp_result_free(r);
	if (workflow(d, SIDE_B, rp_test_failover_stop, "test failover stop", NULL) < 0)
		return -1;
	if (rc < 0)
		return -1;
	/* The replica still holds the recovery point, untouched by the test. */
	if (check_side(d, SIDE_B, d->saved, "after the test") < 0)
		return -1;
	if (d->step->verify > 0)
		(void)snprintf(d->step->verify_msg, sizeof(d->step->verify_msg), "test copies");
	return check_pair(d, SIDE_A);
}

static int step_planned_migration(struct drill *d)
{
	if (sync_group(d, SIDE_A) < 0)
		return -1;
	if (workflow(d, SIDE_A, rp_prepare_failover, "prepare-failover", NULL) < 0)
		return -1;
	if (sync_group(d, SIDE_A) < 0)
		return -1;
	if (timed_failover(d, SIDE_B) < 0)
		return -1;
	save_model(d);
	note(d, "no data lost");
	if (check_side(d, SIDE_B, d->cur, "after failover") < 0)
		return -1;
	return check_pair(d, SIDE_A);
}

static int step_reprotect(struct drill *d)
{
	/* Production now runs at B: these writes are what the reverse sync must carry. */
	if (write_gen(d, SIDE_B, 3) < 0)
		return -1;
	if (workflow(d, SIDE_B, rp_reverse, "reverse", NULL) < 0)
		return -1;
	if (sync_group(d, SIDE_B) < 0)
		return -1;
	save_model(d);
	note(d, "B is the source; only changes made since the failover were sent to A");
	if (check_side(d, SIDE_A, d->cur, "after reverse") < 0)
		return -1;
	return check_pair(d, SIDE_B);
}

static int step_failback(struct drill *d)
{
	if (write_gen(d, SIDE_B, 4) < 0)
		return -1;
	if (workflow(d, SIDE_B, rp_prepare_failover, "prepare-failover", NULL) < 0)
		return -1;
	if (sync_group(d, SIDE_B) < 0)
		return -1;
	if (timed_failover(d, SIDE_A) < 0)
		return -1;
	if (check_side(d, SIDE_A, d->cur, "after failback") < 0)
		return -1;
	if (write_gen(d, SIDE_A, 5) < 0)
		return -1;
	if (workflow(d, SIDE_A, rp_reverse, "reverse", NULL) < 0)
		return -1;
	if (sync_group(d, SIDE_A) < 0)
		return -1;
	save_model(d);
	note(d, "A is the source again, replicating to B");
	if (check_side(d, SIDE_B, d->cur, "after reverse") < 0)
		return -1;
	return check_pair(d, SIDE_A);
}

static int step_disaster(struct drill *d)
{
	if (write_gen(d, SIDE_A, 6) < 0)
		return -1;
	if (sync_group(d, SIDE_A) < 0)
		return -1;
	save_model(d);                   /* what B holds from now on */
	if (write_gen(d, SIDE_A, 7) < 0) /* never replicated */
		return -1;
	copy_model(d, d->tail, d->cur);
	/* Site A goes away. */
	rp_array_close(d->arr[SIDE_A]);
	d->arr[SIDE_A] = NULL;
	if (rename(d->path[SIDE_A], d->down) < 0)
		return drill_fail(d, "cannot take site A down (rename '%s'): %s", d->path[SIDE_A],
		                  strerror(errno));
	d->a_down = true;
	if (timed_failover(d, SIDE_B) < 0)
		return -1;
	if (check_side(d, SIDE_B, d->saved, "after disaster failover") < 0)
		return -1;
	{
		uint64_t lost = 0, b;
		unsigned lun;
		char sz[32];

		for (lun = 0; lun < d->n_luns; lun++)
			for (b = 0; b < d->nblocks; b++)
				lost += d->tail[lun][b] != d->saved[lun][b];
		cli_fmt_size(sz, sizeof(sz), lost * DRILL_BLOCK);
		note(d,
		     "site A unreachable; %s written after the last sync not at B (as expected), "
		     "still at A",
		     sz);
	}
	/* B runs production for a while: restore will discard these writes. */
	copy_model(d, d->cur, d->saved);
	if (write_gen(d, SIDE_B, 8) < 0)
		return -1;
	/* Site A comes back and is demoted (disaster order: after the failover). */
	if (rename(d->down, d->path[SIDE_A]) < 0)
		return drill_fail(d, "cannot bring site A back: %s", strerror(errno));
	d->a_down = false;
	if (reopen(d, SIDE_A) < 0)
		return -1;
	if (workflow(d, SIDE_A, rp_prepare_failover, "prepare-failover", NULL) < 0)
		return -1;
	/* Nothing written at A is destroyed by the disaster. */
	return check_side(d, SIDE_A, d->tail, "site A after it came back");
}

static int step_restore(struct drill *d)
{
	/* A's data, with its unreplicated tail, is the production data again. */
	copy_model(d, d->cur, d->tail);
	if (workflow(d, SIDE_A, rp_restore, "restore", NULL) < 0)
		return -1;
	if (sync_group(d, SIDE_A) < 0)
		return -1;
	if (check_side(d, SIDE_A, d->cur, "site A after restore") < 0)
		return -1;
	if (check_side(d, SIDE_B, d->cur, "site B after restore") < 0)
		return -1;
	note(d, "changes made at B since the failover discarded");
	return check_pair(d, SIDE_A);
}

/* ---------------------------------------------------------------------------------------- */
/* Driver, report, cleanup                                                                   */

static const struct {
	const char *name;
	int (*fn)(struct drill *d);
} steps[] = {
	{ "setup", step_setup },
	{ "initial sync", step_initial_sync },
	{ "test failover", step_test_failover },
	{ "planned migration", step_planned_migration },
	{ "reprotect", step_reprotect },
	{ "failback", step_failback },
	{ "disaster failover", step_disaster },
	{ "restore", step_restore },
};

#define N_STEPS (sizeof(steps) / sizeof(steps[0]))

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	(void)remove(path);
	return 0;
}

static void rm_tree(const char *path)
{
	struct stat sb;

	if (lstat(path, &sb) < 0)
		return;
	(void)nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static const char *verify_word(const struct drill_step *s)
{
	if (!s->run)
		return "not run";
	if (s->verify < 0)
		return s->ok ? "-" : "-";
	return s->verify ? "ok" : "MISMATCH";
}

static void print_report(struct drill *d, struct drill_step *st, size_t n, bool pass,
                         int64_t total_ms, bool keep)
{
	static const char *const head[] = { "STEP",   "RESULT", "DURATION", "BYTES MOVED",
		                            "VERIFY", "RPO",    "RTO",      "NOTES" };
	struct cli_table *t = cli_table_new(8, head);
	char tot[32];
	size_t i;

	(void)printf("\n");
	for (i = 0; i < n; i++) {
		char dur[32], bytes[32], rpo[32], rto[32], ver[200];
		const char *row[8];

		cli_fmt_ms(dur, sizeof(dur), st[i].run ? st[i].duration_ms : -1);
		if (st[i].run && st[i].bytes)
			cli_fmt_size(bytes, sizeof(bytes), st[i].bytes);
		else
			(void)snprintf(bytes, sizeof(bytes), "-");
		cli_fmt_ms(rpo, sizeof(rpo), st[i].rpo_ms);
		cli_fmt_ms(rto, sizeof(rto), st[i].rto_ms);
		(void)snprintf(ver, sizeof(ver), "%s", verify_word(&st[i]));
		row[0] = st[i].name;
		row[1] = !st[i].run ? "skipped" : st[i].ok ? "ok" : "FAILED";
		row[2] = dur;
		row[3] = bytes;
		row[4] = ver;
		row[5] = rpo;
		row[6] = rto;
		row[7] = !st[i].run          ? ""
		         : !st[i].ok         ? d->err
		         : st[i].verify == 0 ? st[i].verify_msg
		                             : st[i].note;
		(void)cli_table_add(t, row);
	}
	cli_table_print(t, stdout);
	cli_table_free(t);
	cli_fmt_ms(tot, sizeof(tot), total_ms);
	(void)printf("\nfilesystem: %s (%s)\n", d->fs_type,
	             d->reflink ? "reflink: snapshots and clones are O(1), changed extents from "
	                          "extent maps"
	                        : "no reflink: snapshots are sparse copies, changes found by "
	                          "checksums");
	(void)printf("RPO = age of the data the recovery site held at failover; RTO = failover "
	             "start until every LUN is read-write.\n");
	if (keep)
		(void)printf("arrays kept in %s (site-a, site-b)\n", d->dir);
	(void)printf("drill %s in %s\n", pass ? "PASSED: every step verified" : "FAILED", tot);
}

static void json_report(struct drill *d, struct drill_step *st, size_t n, bool pass,
                        int64_t total_ms, bool keep)
{
	struct json_object *o = json_object_new_object();
	struct json_object *arr = json_object_new_array();
	size_t i;

	cli_json_bool(o, "passed", pass);
	cli_json_str(o, "dir", keep ? d->dir : NULL);
	cli_json_str(o, "fs_type", d->fs_type);
	cli_json_bool(o, "reflink", d->reflink);
	cli_json_int(o, "luns", d->n_luns);
	cli_json_int(o, "lun_size", (int64_t)d->size);
	cli_json_int(o, "duration_ms", total_ms);
	cli_json_str(o, "error", d->err);
	for (i = 0; i < n; i++) {
		struct json_object *s = json_object_new_object();

		cli_json_str(s, "step", st[i].name);
		cli_json_str(s, "result", !st[i].run ? "skipped" : st[i].ok ? "ok" : "failed");
		cli_json_int(s, "duration_ms", st[i].run ? st[i].duration_ms : 0);
		cli_json_int(s, "bytes_moved", (int64_t)st[i].bytes);
		if (st[i].verify < 0)
			(void)json_object_object_add(s, "verified", NULL);
		else
			cli_json_bool(s, "verified", st[i].verify == 1);
		cli_json_str(s, "verify_detail", st[i].verify_msg);
		if (st[i].rpo_ms >= 0)
			cli_json_int(s, "rpo_ms", st[i].rpo_ms);
		else
			(void)json_object_object_add(s, "rpo_ms", NULL);
		if (st[i].rto_ms >= 0)
			cli_json_int(s, "rto_ms", st[i].rto_ms);
		else
			(void)json_object_object_add(s, "rto_ms", NULL);
		cli_json_str(s, "notes", st[i].note);
		(void)json_object_array_add(arr, s);
	}
	(void)json_object_object_add(o, "steps", arr);
	cli_json_print(o);
}

static int parse_drill_opts(struct drill *d, const struct cli_args *a)
{
	const char *sz = cli_opt(a, "size"), *nl = cli_opt(a, "luns");
	struct rp_error err = { 0 };

	d->size = 64ULL << 20;
	d->n_luns = 3;
	if (sz) {
		if (rp_size_parse(&d->size, sz, &err) < 0)
			return cli_fail(&err);
		if (d->size < (1ULL << 20) || d->size % DRILL_BLOCK || d->size > (64ULL << 30))
			return cli_usage("drill: --size must be 1M..64G and a multiple of 64K");
	}
	if (nl) {
		char *end = NULL;
		unsigned long v = strtoul(nl, &end, 10);

		if (!*nl || *end || nl[0] == '-' || v < 1 || v > DRILL_MAX_LUNS)
			return cli_usage("drill: --luns must be a number from 1 to %d",
			                 DRILL_MAX_LUNS);
		d->n_luns = (unsigned)v;
	}
	d->nblocks = d->size / DRILL_BLOCK;
	return 0;
}

static int prepare_dir(struct drill *d, const char *dir)
{
	const char *tmp = getenv("TMPDIR");
	char abs[RP_URI_MAX];
	int rc;

	if (dir) {
		rc = cli_array_path(abs, sizeof(abs), dir);
		if (rc)
			return rc;
		if (strncmp(abs, "file://", 7) == 0)
			return cli_usage("drill: --dir takes a directory, not a URI");
		if (mkdir(abs, 0755) == 0)
			d->made_dir = true;
		else if (errno != EEXIST)
			return cli_failf(CLI_EXIT_ERROR, "cannot create '%s': %s", abs,
			                 strerror(errno));
		(void)rp_strlcpy(d->dir, abs, sizeof(d->dir));
	} else {
		if (!tmp || !*tmp || strlen(tmp) > 1024)
			tmp = "/tmp";
		(void)snprintf(d->dir, sizeof(d->dir), "%s/replun-drill-XXXXXX", tmp);
		if (!mkdtemp(d->dir))
			return cli_failf(CLI_EXIT_ERROR, "cannot create a directory in '%s': %s",
			                 tmp, strerror(errno));
		d->made_dir = true;
	}
	(void)snprintf(d->path[SIDE_A], sizeof(d->path[SIDE_A]), "%s/site-a", d->dir);
	(void)snprintf(d->path[SIDE_B], sizeof(d->path[SIDE_B]), "%s/site-b", d->dir);
	(void)snprintf(d->down, sizeof(d->down), "%s/site-a.down", d->dir);
	if (access(d->path[SIDE_A], F_OK) == 0 || access(d->path[SIDE_B], F_OK) == 0 ||
	    access(d->down, F_OK) == 0)
		return cli_failf(CLI_EXIT_STATE,
		                 "drill: '%s' already holds a drill (site-a, "
		                 "site-b or site-a.down); use another --dir",
		                 d->dir);
	d->dir_ready = true;
	return 0;
}

int cmd_drill(struct cli_args *a)
{
	struct drill_step st[N_STEPS];
	struct drill *d = NULL;
	bool json = cli_flag(a, "json"), keep = cli_flag(a, "keep"), pass = true;
	struct sigaction sa, old_int, old_term, old_pipe;
	bool live_tty;
	FILE *live;
	int64_t t_all;
	size_t i;
	unsigned lun;
	int rc = CLI_EXIT_OK;

	d = rp_calloc(1, sizeof(*d));
	if (!d)
		return cli_failf(CLI_EXIT_ERROR, "out of memory");
	rc = parse_drill_opts(d, a);
	if (rc)
		goto out_free;
	d->buf = rp_malloc(DRILL_BLOCK);
	if (!d->buf) {
		rc = cli_failf(CLI_EXIT_ERROR, "out of memory");
		goto out_free;
	}
	for (lun = 0; lun < d->n_luns; lun++) {
		d->cur[lun] = rp_calloc(1, d->nblocks);
		d->saved[lun] = rp_calloc(1, d->nblocks);
		d->tail[lun] = rp_calloc(1, d->nblocks);
		if (!d->cur[lun] || !d->saved[lun] || !d->tail[lun]) {
			rc = cli_failf(CLI_EXIT_ERROR, "out of memory");
			goto out_free;
		}
	}
	rc = prepare_dir(d, cli_opt(a, "dir"));
	if (rc)
		goto out_dir;
	/* Ctrl-C or SIGTERM ends the drill after the running step, still cleaning up. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = drill_on_signal;
	(void)sigemptyset(&sa.sa_mask);
	(void)sigaction(SIGINT, &sa, &old_int);
	(void)sigaction(SIGTERM, &sa, &old_term);
	/* A closed pipe on stdout must not kill the drill before it cleans up. */
	sa.sa_handler = SIG_IGN;
	(void)sigaction(SIGPIPE, &sa, &old_pipe);
	live = json ? stderr : stdout;
	live_tty = isatty(fileno(live)) == 1;
	(void)fprintf(live, "replun drill: two embedded file arrays in %s\n", d->dir);
	memset(st, 0, sizeof(st));
	t_all = rp_now_ms();
	for (i = 0; i < N_STEPS; i++) {
		int64_t t0;

		st[i].name = steps[i].name;
		st[i].verify = -1;
		st[i].rpo_ms = -1;
		st[i].rto_ms = -1;
		if (i > 0 && !st[i - 1].ok)
			continue;
		if (drill_stop) {
			(void)drill_fail(d, "interrupted by signal %d", (int)drill_stop);
			st[i].run = true;
			pass = false;
			continue;
		}
		d->step = &st[i];
		st[i].run = true;
		(void)snprintf(d->label, sizeof(d->label), "  [%zu/%zu] %-18s", i + 1, N_STEPS,
		               st[i].name);
		if (live_tty) {
			(void)fprintf(live, "%s", d->label);
			(void)fflush(live);
		}
		t0 = rp_now_ms();
		st[i].ok = steps[i].fn(d) == 0;
		st[i].duration_ms = rp_now_ms() - t0;
		(void)fprintf(live, "%s%s ", live_tty ? "\r" : "", d->label);
		if (!st[i].ok) {
			pass = false;
			(void)fprintf(live, "FAILED: %s\n", d->err);
		} else if (st[i].verify == 0) {
			pass = false;
			(void)fprintf(live, "VERIFY FAILED: %s\n", st[i].verify_msg);
		} else {
			char dur[32];

			cli_fmt_ms(dur, sizeof(dur), st[i].duration_ms);
			(void)fprintf(live, "ok (%s%s)\n", dur,
			              st[i].verify > 0 ? ", data verified" : "");
		}
	}
	if (json)
		json_report(d, st, N_STEPS, pass, rp_now_ms() - t_all, keep);
	else
		print_report(d, st, N_STEPS, pass, rp_now_ms() - t_all, keep);
	rc = CLI_EXIT_OK;
	for (i = 0; i < N_STEPS; i++) {
		if (st[i].run && !st[i].ok) {
			rc = CLI_EXIT_ERROR;
			break;
		}
		if (st[i].run && st[i].verify == 0)
			rc = CLI_EXIT_VERIFY;
	}
	if (rc != CLI_EXIT_OK)
		(void)cli_failf(0, "drill failed: %s",
		                d->err[0] ? d->err : "data verification failed");
	(void)sigaction(SIGINT, &old_int, NULL);
	(void)sigaction(SIGTERM, &old_term, NULL);
	(void)sigaction(SIGPIPE, &old_pipe, NULL);
out_dir:
	rp_array_close(d->arr[SIDE_A]);
	rp_array_close(d->arr[SIDE_B]);
	d->arr[SIDE_A] = d->arr[SIDE_B] = NULL;
	if (d->a_down)
		(void)rename(d->down, d->path[SIDE_A]);
	if (!keep && d->dir_ready) {
		rm_tree(d->path[SIDE_A]);
		rm_tree(d->path[SIDE_B]);
		rm_tree(d->down);
		if (d->made_dir)
			(void)rmdir(d->dir);
	}
out_free:
	for (lun = 0; lun < DRILL_MAX_LUNS; lun++) {
		rp_free(d->cur[lun]);
		rp_free(d->saved[lun]);
		rp_free(d->tail[lun]);
	}
	rp_free(d->buf);
	rp_free(d);
	return rc;
}

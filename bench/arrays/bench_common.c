/* SPDX-License-Identifier: MIT */
/* bench_common.c - helpers shared by the array benchmarks (see bench_common.h). */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_common.h"

extern char **environ;

const char *prog = "bench";
const char *label = "?";
char dir[1024];
char *iobuf;

/*
 * Parses "NAME DIR LABEL [PART]" into dir and label, allocates iobuf (filled with 0x5a) and
 * line-buffers stdout. Returns PART, "all" when absent; a short command line prints the usage
 * (@parts: the parts, e.g. "full|inc|all") and exits 2.
 */
const char *bench_init(int argc, char **argv, const char *name, const char *parts)
{
	prog = name;
	if (argc < 3) {
		fprintf(stderr, "usage: %s DIR LABEL [%s]\n", name, parts);
		exit(2);
	}
	(void)snprintf(dir, sizeof(dir), "%s", argv[1]);
	label = argv[2];
	iobuf = aligned_alloc(4096, MOVE_BUF);
	if (!iobuf)
		die("alloc", NULL);
	memset(iobuf, 0x5a, MOVE_BUF);
	setvbuf(stdout, NULL, _IOLBF, 0);
	return argc > 3 ? argv[3] : "all";
}

double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

void die(const char *what, const struct rp_error *err)
{
	fprintf(stderr, "%s: %s: %s\n", prog, what, err ? err->msg : strerror(errno));
	exit(1);
}

static uint64_t rng_state = 0x243f6a8885a308d3ull;

uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

void fill_random(void *buf, size_t len)
{
	uint64_t *p = buf;
	size_t i;

	for (i = 0; i < len / 8; i++)
		p[i] = rng();
}

/* A random block below @nblocks that @touched does not mark yet, marked now: the blocks of a
 * "1% changed" round, each written once. */
uint64_t pick_new_block(unsigned char *touched, uint64_t nblocks)
{
	uint64_t b;

	do
		b = rng() % nblocks;
	while (touched[b]);
	touched[b] = 1;
	return b;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The median of @v without reordering it. */
double median_of(const double *v, int n)
{
	double tmp[64];

	if (n < 1 || n > (int)(sizeof(tmp) / sizeof(tmp[0]))) {
		fprintf(stderr, "%s: median of %d values\n", prog, n);
		exit(1);
	}
	memcpy(tmp, v, (size_t)n * sizeof(*v));
	return median(tmp, n);
}

/* "a/b/c" of all runs, in run order. */
const char *runs(char *buf, size_t len, const double *v, int n)
{
	size_t used = 0;
	int i;

	buf[0] = '\0';
	for (i = 0; i < n && used < len; i++) {
		int k = snprintf(buf + used, len - used, "%s%.0f", i ? "/" : "", v[i]);

		if (k < 0)
			break;
		used += (size_t)k;
	}
	return buf;
}

/* Runs argv, returns its wall time in ms; exits on failure. */
double run_cmd(char *const argv[])
{
	pid_t pid;
	int status;
	double t0 = now_ms();

	if (posix_spawnp(&pid, argv[0], NULL, NULL, argv, environ) != 0)
		die(argv[0], NULL);
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "%s: '%s' failed\n", prog, argv[0]);
		exit(1);
	}
	return now_ms() - t0;
}

void fsync_path(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || fsync(fd) < 0)
		die(path, NULL);
	close(fd);
}

/*
 * Fair page cache. This VM reports freed memory to the host (free page reporting, 2 s delay),
 * so memory that stayed free for a while is "cold": the first write into it runs at ~400 MB/s
 * instead of GB/s (research/replication.md section 3, the first-touch effect), and whichever
 * side of a comparison happens to get cold pages loses. So right before every timed step a
 * scratch file of scratch_mib MiB (at least what the step allocates, double on a loop
 * device, whose backing file is cached too) is written (4 MiB writes, like the movers: same folio
 * sizes) on the same filesystem and deleted: the step's new page cache then comes from
 * just-touched, just-freed memory. Also: everything is written back (sync) and deletions settle
 * first; on a disk mounted with `discard` a deleted 1 GiB file otherwise stalls the next fsync.
 */
unsigned scratch_mib = 2560;

void settle(void)
{
	char path[1100];
	uint64_t i;
	int fd;

	(void)snprintf(path, sizeof(path), "%s/scratch.tmp", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		die(path, NULL);
	for (i = 0; i < scratch_mib / 4; i++) {
		ssize_t n = pwrite(fd, iobuf, MOVE_BUF, (off_t)(i * MOVE_BUF));

		if (n == (ssize_t)MOVE_BUF)
			continue;
		/*
		 * Out of space (xfs may still be freeing what the previous step deleted): the
		 * step gets less recycled memory, which is only a fairness aid; say so and go on
		 * rather than lose the benchmark. Any other error is fatal.
		 */
		if (n >= 0 || errno == ENOSPC) {
			fprintf(stderr, "%s: settle: scratch file full after %llu of %u MiB%s\n",
			        prog,
			        (unsigned long long)(i * (MOVE_BUF >> 20) +
			                             (n > 0 ? (uint64_t)n >> 20 : 0)),
			        scratch_mib, n >= 0 ? "" : " (no space)");
			break;
		}
		die(path, NULL);
	}
	(void)unlink(path);
	close(fd);
	sync();
	usleep(100 * 1000);
}

/* After a timed step: nothing to do (kept for symmetry of the call sites). */
void unsettle(void)
{
}

/* Reads a file fully (page cache warm-up) through plain read(2). */
void warm_path(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		die(path, NULL);
	while ((n = read(fd, iobuf, MOVE_BUF)) > 0)
		;
	close(fd);
}

/* An independent copy of @src at @dst (cp --reflink=never, then fsync), untimed. */
void copy_synced(const char *src, const char *dst)
{
	char *cp[] = { "cp", "--reflink=never", (char *)src, (char *)dst, NULL };

	(void)unlink(dst);
	(void)run_cmd(cp);
	fsync_path(dst);
}

/*
 * The cp side of a full-sync comparison: cp --reflink=never of @src to a new @dst + fsync,
 * timed between settle() and unsettle(); @dst is deleted after. Warming @src is the caller's.
 */
double cp_round(const char *src, const char *dst)
{
	char *cp[] = { "cp", "--reflink=never", (char *)src, (char *)dst, NULL };
	double t0, t;

	(void)unlink(dst);
	settle();
	t0 = now_ms();
	(void)run_cmd(cp);
	fsync_path(dst);
	t = now_ms() - t0;
	(void)unlink(dst);
	unsettle();
	return t;
}

uint64_t rsync_sent_bytes(const char *out)
{
	const char *p = strstr(out, "Total bytes sent: ");
	char digits[32];
	size_t n = 0;

	if (!p)
		return 0;
	for (p += strlen("Total bytes sent: "); *p && n + 1 < sizeof(digits); p++) {
		if (*p >= '0' && *p <= '9')
			digits[n++] = *p;
		else if (*p != ',')
			break;
	}
	digits[n] = '\0';
	return strtoull(digits, NULL, 10);
}

/* rsync with --stats into a pipe; returns wall time, parses the bytes sent. */
double run_rsync(const char *src, const char *dst, uint64_t *sent)
{
	char cmd[4400], out[8192];
	FILE *p;
	size_t n;
	double t0 = now_ms();

	(void)snprintf(cmd, sizeof(cmd),
	               "rsync --inplace --no-whole-file --ignore-times --stats '%s' '%s'", src,
	               dst);
	p = popen(cmd, "r");
	if (!p)
		die("popen rsync", NULL);
	n = fread(out, 1, sizeof(out) - 1, p);
	out[n] = '\0';
	if (pclose(p) != 0) {
		fprintf(stderr, "rsync failed:\n%s\n", out);
		exit(1);
	}
	*sent = rsync_sent_bytes(out);
	return now_ms() - t0;
}

/*
 * The rsync side of an incremental-sync comparison: @src and @dst warmed, then rsync of @src
 * onto @dst + fsync timed between settle() and unsettle(); then cmp checks that @dst equals
 * @src (untimed, exits on a difference). Returns ms, *sent the bytes rsync sent.
 */
double rsync_round(const char *src, const char *dst, uint64_t *sent)
{
	char *cmp[] = { "cmp", "-s", (char *)src, (char *)dst, NULL };
	double t0, t;

	warm_path(src);
	warm_path(dst);
	settle();
	t0 = now_ms();
	(void)run_rsync(src, dst, sent);
	fsync_path(dst);
	t = now_ms() - t0;
	unsettle();
	(void)run_cmd(cmp);
	return t;
}

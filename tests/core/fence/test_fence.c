/* SPDX-License-Identifier: MIT */
/*
 * test_fence.c - write fences (fence.c): registration input checks, stale records, pause and
 * resume against a stand-in pause-filter control socket (answers, stays silent, dies
 * mid-pause), the watchdog (engine killed while holding; hold limit), unfenced writers, the
 * tap-ctl mapping through a stand-in tap-ctl that records its arguments, and several writers
 * of one LUN (records per writer, unregister of one, stale cleanup, first-format records; two
 * real nbdkit pause-filter servers on one LUN paused together, one qemu-nbd beside them).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "fence.h"
#include "model.h"
#include "pause_server.h"
#include "replun/replun.h"

struct fx {
	char dir[256];
	struct rp_array *a;
	struct model_device dev[2];
};

static void sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	(void)nanosleep(&ts, NULL);
}

/* Waits up to @ms for the server log to become @want. */
static bool srv_wait_log(const struct pause_server *s, const char *want, long ms)
{
	char got[64];

	for (; ms > 0; ms -= 10) {
		pause_server_log(got, sizeof(got), s);
		if (strcmp(got, want) == 0)
			return true;
		sleep_ms(10);
	}
	return false;
}

/* The fence a test server of @kind registers (tapdisk minor 3). */
static struct rp_fence fence_of(int kind, int64_t pid, const char *control)
{
	struct rp_fence fc;

	memset(&fc, 0, sizeof(fc));
	fc.kind = kind;
	fc.pid = pid;
	fc.minor = 3;
	(void)snprintf(fc.server, sizeof(fc.server), "%s",
	               kind == RP_FENCE_PAUSE ? "nbdkit"
	               : kind                 ? "tapdisk"
	                                      : "qemu-nbd");
	if (control)
		(void)snprintf(fc.control, sizeof(fc.control), "%s", control);
	return fc;
}

static void reg(struct fx *f, int i, int kind, int64_t pid, const char *control)
{
	struct rp_error err = { 0 };
	struct rp_fence fc = fence_of(kind, pid, control);

	assert_int_equal(rp_fence_register(f->a, f->dev[i].id, &fc, &err), 0);
}

static pid_t dead_pid(void)
{
	pid_t p = fork();

	if (p == 0)
		_exit(0);
	(void)waitpid(p, NULL, 0);
	return p;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct rp_error err = { 0 };
	struct rp_group g;
	char root[300];
	int i;

	assert_non_null(f);
	(void)snprintf(f->dir, sizeof(f->dir), "/tmp/rp-fence-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	(void)snprintf(root, sizeof(root), "%s/a", f->dir);
	assert_int_equal(rp_array_init(root, "fa", "fence", &err), 0);
	assert_int_equal(rp_array_open(&f->a, root, NULL, &err), 0);
	assert_int_equal(rp_group_create(&g, f->a, "g", "g", &err), 0);
	for (i = 0; i < 2; i++) {
		struct rp_lun_create_opts o;
		struct rp_device d;
		char name[16];

		memset(&o, 0, sizeof(o));
		o.group = "g";
		(void)snprintf(name, sizeof(name), "l%d", i);
		assert_int_equal(rp_lun_create(&d, f->a, name, 1 << 20, &o, &err), 0);
		assert_int_equal(model_device_load(&f->dev[i], f->a, d.id, &err), 0);
	}
	unsetenv("REPLUN_FENCE_TIMEOUT_MS");
	unsetenv("REPLUN_FENCE_HOLD_MS");
	unsetenv("REPLUN_FENCE_COPY_MAX_MB");
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[300];

	rp_array_close(f->a);
	(void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	(void)system(cmd);
	free(f);
	return 0;
}

/* Record files of device @i (first format "<id>" and "<id>@<writer>"). */
static int count_records(struct fx *f, int i)
{
	char path[400];
	struct dirent *de;
	size_t len = strlen(f->dev[i].id);
	int n = 0;
	DIR *d;

	(void)snprintf(path, sizeof(path), "%s/a/" FENCE_DIR, f->dir);
	d = opendir(path);
	if (!d)
		return 0;
	while ((de = readdir(d)) != NULL)
		if (strncmp(de->d_name, f->dev[i].id, len) == 0 &&
		    (de->d_name[len] == '\0' || de->d_name[len] == '@'))
			n++;
	(void)closedir(d);
	return n;
}

/* True when writer @w (plain characters: its file name is "<id>@<w>") has a record. */
static bool has_record(struct fx *f, int i, const char *w)
{
	char path[600];
	struct stat st;

	(void)snprintf(path, sizeof(path), "%s/a/" FENCE_DIR "/%s@%s", f->dir, f->dev[i].id, w);
	return stat(path, &st) == 0;
}

static bool no_records(struct fx *f)
{
	return count_records(f, 0) == 0 && count_records(f, 1) == 0;
}

static void test_register_bad_input(void **state)
{
	struct fx *f = *state;
	struct rp_error err = { 0 };
	struct rp_fence fc;

	memset(&fc, 0, sizeof(fc));
	fc.kind = RP_FENCE_PAUSE;
	fc.pid = getpid();
	(void)snprintf(fc.server, sizeof(fc.server), "nbdkit");
	(void)snprintf(fc.control, sizeof(fc.control), "relative.ctl");
	assert_int_equal(rp_fence_register(f->a, f->dev[0].id, &fc, &err), RP_EINVAL);
	assert_non_null(strstr(err.msg, "not absolute"));
	rp_error_clear(&err);
	memset(fc.control, 'x', sizeof(fc.control)); /* no NUL: longer than a sun_path */
	fc.control[0] = '/';
	assert_int_equal(rp_fence_register(f->a, f->dev[0].id, &fc, &err), RP_EINVAL);
	assert_non_null(strstr(err.msg, "longer than"));
	(void)snprintf(fc.control, sizeof(fc.control), "/tmp/a\nkind none");
	assert_int_equal(rp_fence_register(f->a, f->dev[0].id, &fc, NULL), RP_EINVAL);
	(void)snprintf(fc.control, sizeof(fc.control), "/tmp/ok.ctl");
	fc.kind = 7;
	assert_int_equal(rp_fence_register(f->a, f->dev[0].id, &fc, NULL), RP_EINVAL);
	fc.kind = RP_FENCE_TAPDISK;
	fc.minor = -1;
	assert_int_equal(rp_fence_register(f->a, f->dev[0].id, &fc, NULL), RP_EINVAL);
	fc.kind = RP_FENCE_PAUSE;
	fc.pid = 1;
	assert_int_equal(rp_fence_register(f->a, f->dev[0].id, &fc, NULL), RP_EINVAL);
	fc.pid = getpid();
	fc.server[0] = '\0';
	assert_int_equal(rp_fence_register(f->a, f->dev[0].id, &fc, NULL), RP_EINVAL);
	(void)snprintf(fc.server, sizeof(fc.server), "nbdkit");
	assert_int_equal(rp_fence_register(f->a, "../x", &fc, NULL), RP_EINVAL);
	rp_error_clear(&err);
	assert_int_equal(rp_fence_register(f->a, "fa-999999", &fc, &err), RP_ENOTFOUND);
	assert_int_equal(rp_fence_register(f->a, f->dev[0].id, NULL, NULL), RP_EINVAL);
	assert_true(no_records(f)); /* nothing changed */
	/* unregister: idempotent, bad id refused */
	assert_int_equal(rp_fence_unregister(f->a, f->dev[0].id, NULL), 0);
	assert_int_equal(rp_fence_unregister(f->a, "..", NULL), RP_EINVAL);
}

static void test_stale_and_unfenced(void **state)
{
	struct fx *f = *state;
	struct fence_hold *h = (struct fence_hold *)1;
	struct rp_error err = { 0 };
	char why[RP_MSG_MAX];

	/* nothing registered: no writer */
	assert_int_equal(fence_unfenced(why, sizeof(why), f->a, f->dev, 2), 0);
	assert_int_equal(fence_pause(&h, f->a, f->dev, 2, &err), 0);
	assert_null(h);
	/* stale: servers gone (a dead pid; a live pid whose control socket has no listener) */
	reg(f, 0, RP_FENCE_PAUSE, dead_pid(), "/tmp/none.ctl");
	reg(f, 1, RP_FENCE_NONE, dead_pid(), NULL);
	assert_int_equal(fence_unfenced(why, sizeof(why), f->a, f->dev, 2), 0);
	reg(f, 0, RP_FENCE_PAUSE, getpid(), "/tmp/rp-fence-no-such.ctl");
	assert_int_equal(fence_pause(&h, f->a, f->dev, 2, &err), 0);
	assert_null(h);
	/* a live writer without a fence: named, and pausing refuses */
	reg(f, 1, RP_FENCE_NONE, getpid(), NULL);
	assert_int_equal(fence_unfenced(why, sizeof(why), f->a, f->dev, 2), 1);
	assert_non_null(strstr(why, f->dev[1].id));
	assert_non_null(strstr(why, "qemu-nbd"));
	assert_int_equal(fence_group_unfenced(NULL, 0, f->a, "g"), 1);
	assert_int_equal(fence_pause(&h, f->a, f->dev, 2, &err), RP_ENOTSUPPORTED);
	assert_non_null(strstr(err.msg, "no write fence"));
	assert_int_equal(rp_fence_unregister(f->a, f->dev[0].id, NULL), 0);
	assert_int_equal(rp_fence_unregister(f->a, f->dev[1].id, NULL), 0);
	assert_true(no_records(f));
}

static void test_pause_resume(void **state)
{
	struct fx *f = *state;
	struct fence_hold *h = NULL;
	struct rp_error err = { 0 };
	struct pause_server s0, s1;
	char got[64];

	pause_server_start(&s0, f->dir, "s0", PAUSE_SERVER_OK);
	pause_server_start(&s1, f->dir, "s1", PAUSE_SERVER_OK);
	reg(f, 0, RP_FENCE_PAUSE, s0.pid, s0.sock);
	reg(f, 1, RP_FENCE_PAUSE, s1.pid, s1.sock);
	assert_int_equal(fence_unfenced(NULL, 0, f->a, f->dev, 2), 0);
	assert_int_equal(fence_pause(&h, f->a, f->dev, 2, &err), 0);
	assert_non_null(h);
	pause_server_log(got, sizeof(got), &s0);
	assert_string_equal(got, "p");
	assert_int_equal(fence_resume(h, &err), 0);
	assert_true(srv_wait_log(&s0, "pr", 2000));
	assert_true(srv_wait_log(&s1, "pr", 2000));
	assert_int_equal(fence_resume(NULL, &err), 0);
	pause_server_stop(&s0);
	pause_server_stop(&s1);
}

static void test_pause_timeout(void **state)
{
	struct fx *f = *state;
	struct fence_hold *h = NULL;
	struct rp_error err = { 0 };
	struct pause_server s0, s1;

	setenv("REPLUN_FENCE_TIMEOUT_MS", "300", 1);
	pause_server_start(&s0, f->dir, "t0", PAUSE_SERVER_OK);
	pause_server_start(&s1, f->dir, "t1", PAUSE_SERVER_SILENT);
	reg(f, 0, RP_FENCE_PAUSE, s0.pid, s0.sock);
	reg(f, 1, RP_FENCE_PAUSE, s1.pid, s1.sock);
	assert_int_equal(fence_pause(&h, f->a, f->dev, 2, &err), RP_ETIMEOUT);
	assert_null(h);
	assert_non_null(strstr(err.msg, f->dev[1].id));
	assert_non_null(strstr(err.msg, "did not pause"));
	/* nothing stays paused: both got their resume */
	assert_true(srv_wait_log(&s0, "pr", 2000));
	assert_true(srv_wait_log(&s1, "pr", 2000));
	pause_server_stop(&s0);
	pause_server_stop(&s1);
	unsetenv("REPLUN_FENCE_TIMEOUT_MS");
}

static void test_server_dies_mid_pause(void **state)
{
	struct fx *f = *state;
	struct fence_hold *h = NULL;
	struct rp_error err = { 0 };
	struct pause_server s0, s1;

	pause_server_start(&s0, f->dir, "d0", PAUSE_SERVER_OK);
	pause_server_start(&s1, f->dir, "d1", PAUSE_SERVER_DIE);
	reg(f, 0, RP_FENCE_PAUSE, s0.pid, s0.sock);
	reg(f, 1, RP_FENCE_PAUSE, s1.pid, s1.sock);
	assert_int_equal(fence_pause(&h, f->a, f->dev, 2, &err), RP_EIO);
	assert_null(h);
	assert_non_null(strstr(err.msg, "closed the pause control connection"));
	assert_true(srv_wait_log(&s0, "pr", 2000));
	pause_server_stop(&s0);
	pause_server_stop(&s1);
}

static void test_watchdog_engine_dies(void **state)
{
	struct fx *f = *state;
	struct pause_server s0, s1;
	int status = 0;
	pid_t engine;

	pause_server_start(&s0, f->dir, "w0", PAUSE_SERVER_OK);
	pause_server_start(&s1, f->dir, "w1", PAUSE_SERVER_OK);
	reg(f, 0, RP_FENCE_PAUSE, s0.pid, s0.sock);
	reg(f, 1, RP_FENCE_PAUSE, s1.pid, s1.sock);
	engine = fork();
	assert_true(engine >= 0);
	if (engine == 0) {
		struct fence_hold *h = NULL;

		if (fence_pause(&h, f->a, f->dev, 2, NULL) < 0 || !h)
			_exit(1);
		(void)kill(getpid(), SIGKILL); /* dies holding the writers */
		_exit(2);
	}
	assert_int_equal(waitpid(engine, &status, 0), engine);
	assert_true(WIFSIGNALED(status));
	/* the watchdog saw the engine's end of the socketpair close and resumed both */
	assert_true(srv_wait_log(&s0, "pr", 3000));
	assert_true(srv_wait_log(&s1, "pr", 3000));
	pause_server_stop(&s0);
	pause_server_stop(&s1);
}

static void test_watchdog_hold_limit(void **state)
{
	struct fx *f = *state;
	struct fence_hold *h = NULL;
	struct rp_error err = { 0 };
	struct pause_server s0, s1;

	setenv("REPLUN_FENCE_HOLD_MS", "300", 1);
	pause_server_start(&s0, f->dir, "h0", PAUSE_SERVER_OK);
	pause_server_start(&s1, f->dir, "h1", PAUSE_SERVER_OK);
	reg(f, 0, RP_FENCE_PAUSE, s0.pid, s0.sock);
	reg(f, 1, RP_FENCE_PAUSE, s1.pid, s1.sock);
	assert_int_equal(fence_pause(&h, f->a, f->dev, 2, &err), 0);
	assert_non_null(h);
	/* a hung engine: the watchdog resumes at the hold limit, without us */
	assert_true(srv_wait_log(&s0, "pr", 3000));
	assert_true(srv_wait_log(&s1, "pr", 3000));
	assert_int_equal(fence_resume(h, &err), RP_ETIMEOUT);
	assert_non_null(strstr(err.msg, "may not be write-order consistent"));
	pause_server_stop(&s0);
	pause_server_stop(&s1);
	unsetenv("REPLUN_FENCE_HOLD_MS");
}

static void test_copy_too_large(void **state)
{
	struct fx *f = *state;
	struct fence_hold *h = NULL;
	struct rp_error err = { 0 };
	char why[RP_MSG_MAX];
	struct pause_server s0, s1;

	if (f->a->drv->caps & ARRAY_CAP_REFLINK) {
		skip(); /* O(1) clones: no size limit */
		return;
	}
	pause_server_start(&s0, f->dir, "c0", PAUSE_SERVER_OK);
	pause_server_start(&s1, f->dir, "c1", PAUSE_SERVER_OK);
	reg(f, 0, RP_FENCE_PAUSE, s0.pid, s0.sock);
	reg(f, 1, RP_FENCE_PAUSE, s1.pid, s1.sock);
	setenv("REPLUN_FENCE_COPY_MAX_MB", "1", 1); /* the group holds 2 MiB */
	assert_int_equal(fence_unfenced(why, sizeof(why), f->a, f->dev, 2), 2);
	assert_non_null(strstr(why, "copies snapshots"));
	assert_int_equal(fence_pause(&h, f->a, f->dev, 2, &err), RP_ENOTSUPPORTED);
	assert_null(h);
	assert_non_null(strstr(err.msg, "no reflink"));
	pause_server_log(why, sizeof(why), &s0);
	assert_string_equal(why, ""); /* never paused */
	setenv("REPLUN_FENCE_COPY_MAX_MB", "2", 1);
	assert_int_equal(fence_unfenced(NULL, 0, f->a, f->dev, 2), 0);
	assert_int_equal(fence_pause(&h, f->a, f->dev, 2, &err), 0);
	assert_int_equal(fence_resume(h, &err), 0);
	unsetenv("REPLUN_FENCE_COPY_MAX_MB");
	pause_server_stop(&s0);
	pause_server_stop(&s1);
}

static void test_tapdisk(void **state)
{
	struct fx *f = *state;
	struct fence_hold *h = NULL;
	struct rp_error err = { 0 };
	char bin[300], script[400], calls[400], path[800], got[512] = "";
	const char *old = getenv("PATH");
	char *saved = old ? strdup(old) : NULL;
	int status = 0, i;
	pid_t engine;
	FILE *fp;
	size_t n;

	(void)snprintf(bin, sizeof(bin), "%s/bin", f->dir);
	(void)snprintf(script, sizeof(script), "%s/tap-ctl", bin);
	(void)snprintf(calls, sizeof(calls), "%s/tap-ctl.calls", f->dir);
	assert_int_equal(mkdir(bin, 0755), 0);
	fp = fopen(script, "w");
	assert_non_null(fp);
	(void)fprintf(fp, "#!/bin/sh\necho \"$*\" >> '%s'\n", calls);
	(void)fclose(fp);
	assert_int_equal(chmod(script, 0755), 0);
	(void)snprintf(path, sizeof(path), "%s:%s", bin, old ? old : "/usr/bin:/bin");
	setenv("PATH", path, 1);
	reg(f, 0, RP_FENCE_TAPDISK, getpid(), NULL);
	reg(f, 1, RP_FENCE_TAPDISK, getpid(), NULL);
	assert_int_equal(fence_pause(&h, f->a, f->dev, 2, &err), 0);
	assert_non_null(h);
	assert_int_equal(fence_resume(h, &err), 0);
	fp = fopen(calls, "r");
	assert_non_null(fp);
	n = fread(got, 1, sizeof(got) - 1, fp);
	got[n] = '\0';
	(void)fclose(fp);
	(void)snprintf(
	        path, sizeof(path),
	        "pause -p %d -m 3\npause -p %d -m 3\nunpause -p %d -m 3\nunpause -p %d -m 3\n",
	        (int)getpid(), (int)getpid(), (int)getpid(), (int)getpid());
	assert_string_equal(got, path);
	/* tap-ctl failing: the pause fails naming the device, and the writers are unpaused */
	fp = fopen(script, "w");
	assert_non_null(fp);
	(void)fprintf(fp, "#!/bin/sh\necho \"$*\" >> '%s'\n[ \"$1\" = unpause ]\n", calls);
	(void)fclose(fp);
	(void)unlink(calls);
	assert_int_equal(fence_pause(&h, f->a, f->dev, 2, &err), RP_EIO);
	assert_non_null(strstr(err.msg, "tap-ctl pause"));
	fp = fopen(calls, "r");
	assert_non_null(fp);
	n = fread(got, 1, sizeof(got) - 1, fp);
	got[n] = '\0';
	(void)fclose(fp);
	assert_non_null(strstr(got, "unpause -p"));
	/* the engine killed while holding two tapdisks: the watchdog unpauses both */
	fp = fopen(script, "w");
	assert_non_null(fp);
	(void)fprintf(fp, "#!/bin/sh\necho \"$1\" >> '%s'\n", calls);
	(void)fclose(fp);
	(void)unlink(calls);
	engine = fork();
	assert_true(engine >= 0);
	if (engine == 0) {
		if (fence_pause(&h, f->a, f->dev, 2, NULL) < 0 || !h)
			_exit(1);
		(void)kill(getpid(), SIGKILL);
		_exit(2);
	}
	assert_int_equal(waitpid(engine, &status, 0), engine);
	assert_true(WIFSIGNALED(status));
	for (n = 0, i = 0; i < 300 && strcmp(got, "pause\npause\nunpause\nunpause\n") != 0; i++) {
		sleep_ms(10);
		fp = fopen(calls, "r");
		if (!fp)
			continue;
		n = fread(got, 1, sizeof(got) - 1, fp);
		got[n] = '\0';
		(void)fclose(fp);
	}
	assert_string_equal(got, "pause\npause\nunpause\nunpause\n");
	if (saved)
		setenv("PATH", saved, 1);
	free(saved);
	assert_int_equal(rp_fence_unregister(f->a, f->dev[0].id, NULL), 0);
	assert_int_equal(rp_fence_unregister(f->a, f->dev[1].id, NULL), 0);
}

static int regw(struct fx *f, int i, const char *writer, int kind, int64_t pid, const char *control,
                struct rp_error *err)
{
	struct rp_fence fc = fence_of(kind, pid, control);

	return rp_fence_register_writer(f->a, f->dev[i].id, writer, &fc, err);
}

/* Replaces the value of @key in the record file @file of the fences directory. */
static void edit_record(struct fx *f, const char *file, const char *key, const char *value)
{
	char path[600], buf[2048], out[2048] = "", *line, *save = NULL;
	FILE *fp;
	size_t n;

	(void)snprintf(path, sizeof(path), "%s/a/" FENCE_DIR "/%s", f->dir, file);
	fp = fopen(path, "r");
	assert_non_null(fp);
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	buf[n] = '\0';
	(void)fclose(fp);
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		size_t k = strlen(key);

		if (strncmp(line, key, k) == 0 && line[k] == ' ')
			(void)snprintf(out + strlen(out), sizeof(out) - strlen(out), "%s %s\n", key,
			               value);
		else
			(void)snprintf(out + strlen(out), sizeof(out) - strlen(out), "%s\n", line);
	}
	fp = fopen(path, "w");
	assert_non_null(fp);
	(void)fputs(out, fp);
	(void)fclose(fp);
}

static void test_writers(void **state)
{
	struct fx *f = *state;
	struct fence_hold *h = NULL;
	struct rp_error err = { 0 };
	char got[64], longw[RP_FENCE_WRITER_MAX];
	struct pause_server s0, s1, s2;

	/* writer names: empty, control characters, too long (also once escaped) refused */
	assert_int_equal(regw(f, 0, "", RP_FENCE_NONE, getpid(), NULL, &err), RP_EINVAL);
	assert_int_equal(regw(f, 0, NULL, RP_FENCE_NONE, getpid(), NULL, NULL), RP_EINVAL);
	assert_int_equal(regw(f, 0, "h\n1", RP_FENCE_NONE, getpid(), NULL, NULL), RP_EINVAL);
	memset(longw, '/', sizeof(longw) - 1); /* 127 bytes, 381 escaped */
	longw[sizeof(longw) - 1] = '\0';
	rp_error_clear(&err);
	assert_int_equal(regw(f, 0, longw, RP_FENCE_NONE, getpid(), NULL, &err), RP_EINVAL);
	assert_non_null(strstr(err.msg, "too long"));
	assert_int_equal(rp_fence_unregister_writer(f->a, f->dev[0].id, "", NULL), RP_EINVAL);
	assert_true(no_records(f));

	/* two writers of device 0 (hosts sharing it), one of device 1: each has its record */
	pause_server_start(&s0, f->dir, "m0", PAUSE_SERVER_OK);
	pause_server_start(&s1, f->dir, "m1", PAUSE_SERVER_OK);
	pause_server_start(&s2, f->dir, "m2", PAUSE_SERVER_OK);
	assert_int_equal(regw(f, 0, "OpaqueRef:host-a", RP_FENCE_PAUSE, s0.pid, s0.sock, &err), 0);
	assert_int_equal(regw(f, 0, "OpaqueRef:host-b", RP_FENCE_PAUSE, s1.pid, s1.sock, &err), 0);
	assert_int_equal(regw(f, 1, "OpaqueRef:host-a", RP_FENCE_PAUSE, s2.pid, s2.sock, &err), 0);
	assert_int_equal(count_records(f, 0), 2);
	assert_true(has_record(f, 0, "OpaqueRef:host-a") && has_record(f, 0, "OpaqueRef:host-b"));
	/* the same writer again: replaces its record */
	assert_int_equal(regw(f, 0, "OpaqueRef:host-b", RP_FENCE_PAUSE, s1.pid, s1.sock, &err), 0);
	assert_int_equal(count_records(f, 0), 2);
	/* a writer name with characters outside the plain set is escaped, and round-trips */
	assert_int_equal(regw(f, 1, "host:x/y z@w", RP_FENCE_PAUSE, s2.pid, s2.sock, &err), 0);
	assert_true(has_record(f, 1, "host:x%2fy%20z%40w"));
	assert_int_equal(rp_fence_unregister_writer(f->a, f->dev[1].id, "host:x/y z@w", &err), 0);
	assert_int_equal(count_records(f, 1), 1);

	/* pause: every writer of every device, resume: all */
	assert_int_equal(fence_unfenced(NULL, 0, f->a, f->dev, 2), 0);
	assert_int_equal(fence_pause(&h, f->a, f->dev, 2, &err), 0);
	assert_non_null(h);
	pause_server_log(got, sizeof(got), &s0);
	assert_string_equal(got, "p");
	pause_server_log(got, sizeof(got), &s1);
	assert_string_equal(got, "p");
	pause_server_log(got, sizeof(got), &s2);
	assert_string_equal(got, "p");
	assert_int_equal(fence_resume(h, &err), 0);
	assert_true(srv_wait_log(&s0, "pr", 2000));
	assert_true(srv_wait_log(&s1, "pr", 2000));
	assert_true(srv_wait_log(&s2, "pr", 2000));

	/* one host stops serving: its record goes, the other host's stays and is paused */
	assert_int_equal(rp_fence_unregister_writer(f->a, f->dev[0].id, "OpaqueRef:host-a", &err),
	                 0);
	assert_int_equal(rp_fence_unregister_writer(f->a, f->dev[0].id, "OpaqueRef:host-a", &err),
	                 0); /* idempotent */
	assert_int_equal(count_records(f, 0), 1);
	assert_true(has_record(f, 0, "OpaqueRef:host-b"));
	assert_int_equal(fence_pause(&h, f->a, f->dev, 2, &err), 0);
	assert_int_equal(fence_resume(h, &err), 0);
	assert_true(srv_wait_log(&s1, "prpr", 2000));
	assert_true(srv_wait_log(&s2, "prpr", 2000));
	pause_server_log(got, sizeof(got), &s0);
	assert_string_equal(got, "pr"); /* no longer a writer: not paused again */

	/* a writer without a fence among several: unfenced names it, pausing refuses */
	assert_int_equal(regw(f, 0, "OpaqueRef:host-c", RP_FENCE_NONE, getpid(), NULL, &err), 0);
	assert_int_equal(fence_unfenced(got, sizeof(got), f->a, f->dev, 2), 1);
	{
		char why[RP_MSG_MAX];

		assert_int_equal(fence_unfenced(why, sizeof(why), f->a, f->dev, 2), 1);
		assert_non_null(strstr(why, f->dev[0].id));
		assert_non_null(strstr(why, "OpaqueRef:host-c"));
		assert_non_null(strstr(why, "no write fence"));
		assert_non_null(strstr(why, "one of its 2 writers"));
	}
	assert_int_equal(fence_group_unfenced(NULL, 0, f->a, "g"), 1);
	rp_error_clear(&err);
	assert_int_equal(fence_pause(&h, f->a, f->dev, 2, &err), RP_ENOTSUPPORTED);
	assert_null(h);
	assert_non_null(strstr(err.msg, "OpaqueRef:host-c"));
	assert_true(srv_wait_log(&s1, "prpr", 100)); /* nothing was paused */
	/* rp_fence_unregister: every writer of the LUN */
	assert_int_equal(rp_fence_unregister(f->a, f->dev[0].id, &err), 0);
	assert_int_equal(count_records(f, 0), 0);
	assert_int_equal(count_records(f, 1), 1);
	assert_int_equal(rp_fence_unregister(f->a, f->dev[1].id, &err), 0);
	assert_true(no_records(f));
	pause_server_stop(&s0);
	pause_server_stop(&s1);
	pause_server_stop(&s2);
}

static void test_writers_stale(void **state)
{
	struct fx *f = *state;
	struct fence_hold *h = NULL;
	struct rp_error err = { 0 };
	char file[300], val[64];
	pid_t child;

	/* a writer's server exits: its record is no writer, and the next reader removes it */
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		pause();
		_exit(0);
	}
	assert_int_equal(regw(f, 0, "w-child", RP_FENCE_NONE, child, NULL, &err), 0);
	assert_int_equal(regw(f, 0, "w-self", RP_FENCE_NONE, getpid(), NULL, &err), 0);
	assert_int_equal(fence_unfenced(NULL, 0, f->a, f->dev, 2), 2);
	(void)kill(child, SIGKILL);
	(void)waitpid(child, NULL, 0);
	assert_int_equal(fence_unfenced(NULL, 0, f->a, f->dev, 2), 1);
	assert_false(has_record(f, 0, "w-child"));
	assert_true(has_record(f, 0, "w-self"));

	/* a pid reused by another process (its start time differs): stale, removed */
	(void)snprintf(file, sizeof(file), "%s@w-self", f->dev[0].id);
	edit_record(f, file, "start", "1");
	assert_int_equal(fence_unfenced(NULL, 0, f->a, f->dev, 2), 0);
	assert_false(has_record(f, 0, "w-self"));

	/* registered before a reboot (another boot id): stale, removed by a pause */
	assert_int_equal(regw(f, 1, "w-boot", RP_FENCE_NONE, getpid(), NULL, &err), 0);
	(void)snprintf(file, sizeof(file), "%s@w-boot", f->dev[1].id);
	edit_record(f, file, "boot", "00000000-0000-0000-0000-000000000000");
	assert_int_equal(fence_pause(&h, f->a, f->dev, 2, &err), 0);
	assert_null(h);
	assert_false(has_record(f, 1, "w-boot"));

	/* a registration removes the LUN's other stale records (a dead pid), keeps its own */
	assert_int_equal(regw(f, 1, "w-dead", RP_FENCE_NONE, dead_pid(), NULL, &err), 0);
	assert_true(has_record(f, 1, "w-dead"));
	assert_int_equal(regw(f, 1, "w-live", RP_FENCE_NONE, getpid(), NULL, &err), 0);
	assert_false(has_record(f, 1, "w-dead"));
	assert_true(has_record(f, 1, "w-live"));
	/* a record from another host is not judged stale here: it stays, and warns */
	(void)snprintf(file, sizeof(file), "%s@w-live", f->dev[1].id);
	edit_record(f, file, "host", "some-other-host");
	edit_record(f, file, "pid", "999999999");
	assert_int_equal(fence_unfenced(val, sizeof(val), f->a, f->dev, 2), 1);
	assert_true(has_record(f, 1, "w-live"));
	assert_int_equal(rp_fence_unregister_writer(f->a, f->dev[1].id, "w-live", &err), 0);
	assert_true(no_records(f));
}

/* Writes a first-format record (one per LUN: fences/<id>) as the previous version did. */
static void write_old_record(struct fx *f, int i, const char *kind, int64_t pid,
                             const char *control)
{
	char path[600], host[256] = "", boot[64] = "";
	FILE *fp;
	int fd;
	ssize_t n;

	(void)gethostname(host, sizeof(host) - 1);
	fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY);
	assert_true(fd >= 0);
	n = read(fd, boot, sizeof(boot) - 1);
	(void)close(fd);
	boot[n > 0 ? n : 0] = '\0';
	boot[strcspn(boot, "\n")] = '\0';
	(void)snprintf(path, sizeof(path), "%s/a/" FENCE_DIR, f->dir);
	(void)mkdir(path, 0700);
	(void)snprintf(path, sizeof(path), "%s/a/" FENCE_DIR "/%s", f->dir, f->dev[i].id);
	fp = fopen(path, "w");
	assert_non_null(fp);
	(void)fprintf(fp, "kind %s\npid %lld\nminor -1\nserver %s\nhost %s\nboot %s\n", kind,
	              (long long)pid, strcmp(kind, "pause") == 0 ? "nbdkit" : "qemu-nbd", host,
	              boot);
	if (control)
		(void)fprintf(fp, "control %s\n", control);
	(void)fclose(fp);
}

static void test_old_format(void **state)
{
	struct fx *f = *state;
	struct fence_hold *h = NULL;
	struct rp_error err = { 0 };
	char why[RP_MSG_MAX], host[256] = "", self[300], got[64];
	struct pause_server s0, s1;

	(void)gethostname(host, sizeof(host) - 1);
	(void)snprintf(self, sizeof(self), "%s:%d", host, (int)getpid());
	/* an old record is one writer: a live qemu-nbd warns, a pause fence is paused */
	write_old_record(f, 0, "none", getpid(), NULL);
	assert_int_equal(fence_unfenced(why, sizeof(why), f->a, f->dev, 2), 1);
	assert_non_null(strstr(why, f->dev[0].id));
	pause_server_start(&s0, f->dir, "o0", PAUSE_SERVER_OK);
	pause_server_start(&s1, f->dir, "o1", PAUSE_SERVER_OK);
	write_old_record(f, 1, "pause", s1.pid, s1.sock);
	assert_int_equal(fence_unfenced(NULL, 0, f->a, f->dev + 1, 1), 0);
	assert_int_equal(fence_pause(&h, f->a, f->dev + 1, 1, &err), 0);
	assert_non_null(h);
	assert_int_equal(fence_resume(h, &err), 0);
	assert_true(srv_wait_log(&s1, "pr", 2000));

	/* another writer registers: the old record moves to its own writer's name, both count */
	assert_int_equal(regw(f, 0, "OpaqueRef:host-b", RP_FENCE_PAUSE, s0.pid, s0.sock, &err), 0);
	assert_int_equal(count_records(f, 0), 2);
	(void)snprintf(why, sizeof(why), "%s/a/" FENCE_DIR "/%s", f->dir, f->dev[0].id);
	assert_int_equal(access(why, F_OK), -1); /* no first-format file left */
	assert_int_equal(fence_unfenced(why, sizeof(why), f->a, f->dev, 1), 1);
	assert_non_null(strstr(why, "qemu-nbd"));
	/* rp_fence_register keys by the fence itself: the same process replaces that record */
	assert_int_equal(regw(f, 0, self, RP_FENCE_NONE, getpid(), NULL, &err), 0);
	assert_int_equal(count_records(f, 0), 2);
	assert_int_equal(rp_fence_unregister_writer(f->a, f->dev[0].id, self, &err), 0);
	assert_int_equal(fence_unfenced(NULL, 0, f->a, f->dev, 1), 0);
	assert_int_equal(count_records(f, 0), 1);

	/* the old record's own writer unregisters it by that name (before any move) */
	assert_int_equal(count_records(f, 1), 1);
	(void)snprintf(self, sizeof(self), "%s:%d", host, (int)s1.pid);
	assert_int_equal(rp_fence_unregister_writer(f->a, f->dev[1].id, "someone-else", &err), 0);
	assert_int_equal(count_records(f, 1), 1);
	assert_int_equal(rp_fence_unregister_writer(f->a, f->dev[1].id, self, &err), 0);
	assert_int_equal(count_records(f, 1), 0);
	/* a stale old record is dropped by the next registration */
	write_old_record(f, 1, "none", dead_pid(), NULL);
	assert_int_equal(regw(f, 1, "w", RP_FENCE_PAUSE, s1.pid, s1.sock, &err), 0);
	assert_int_equal(count_records(f, 1), 1);
	assert_true(has_record(f, 1, "w"));
	pause_server_log(got, sizeof(got), &s0);
	assert_string_equal(got, "");
	assert_int_equal(rp_fence_unregister(f->a, f->dev[0].id, &err), 0);
	assert_int_equal(rp_fence_unregister(f->a, f->dev[1].id, &err), 0);
	assert_true(no_records(f));
	pause_server_stop(&s0);
	pause_server_stop(&s1);
}

/* ---- real servers: nbdkit with the pause filter, qemu-nbd, a qemu-io client --------------- */

static bool in_path(const char *prog)
{
	char cmd[200];

	(void)snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", prog);
	return system(cmd) == 0;
}

static pid_t pidfile_pid(const char *path)
{
	char buf[32] = "";
	FILE *fp = fopen(path, "r");

	if (!fp)
		return 0;
	if (!fgets(buf, sizeof(buf), fp))
		buf[0] = '\0';
	(void)fclose(fp);
	return (pid_t)atoi(buf);
}

/* Starts a daemonized NBD server of @image on @f->dir/<name>.sock; its pid. */
static pid_t server_start(struct fx *f, const char *name, const char *image, bool nbdkit)
{
	char cmd[2048], sock[200], pidf[200];

	(void)snprintf(sock, sizeof(sock), "%s/%s.sock", f->dir, name);
	(void)snprintf(pidf, sizeof(pidf), "%s/%s.pid", f->dir, name);
	if (nbdkit)
		(void)snprintf(cmd, sizeof(cmd),
		               "nbdkit --unix '%s' --pidfile '%s' --filter=pause file '%s'"
		               " pause-control='%s.ctl' >'%s/%s.log' 2>&1",
		               sock, pidf, image, sock, f->dir, name);
	else
		(void)snprintf(cmd, sizeof(cmd),
		               "qemu-nbd --fork --persistent --shared=4 --format=raw"
		               " --socket='%s' --pid-file='%s' '%s' >'%s/%s.log' 2>&1",
		               sock, pidf, image, f->dir, name);
	assert_int_equal(system(cmd), 0);
	for (int i = 0; i < 500 && pidfile_pid(pidf) <= 0; i++)
		sleep_ms(10);
	assert_true(pidfile_pid(pidf) > 1);
	return pidfile_pid(pidf);
}

/* Starts "qemu-io write -P @pattern @off 4k" through server <name>; the client's pid. */
static pid_t client_write(struct fx *f, const char *name, int pattern, long off)
{
	char uri[300], cmd[100];
	pid_t p;

	(void)snprintf(uri, sizeof(uri), "nbd+unix:///?socket=%s/%s.sock", f->dir, name);
	(void)snprintf(cmd, sizeof(cmd), "write -P %d %ld 4k", pattern, off);
	p = fork();
	assert_true(p >= 0);
	if (p == 0) {
		int null = open("/dev/null", O_RDWR);

		(void)dup2(null, 1);
		(void)dup2(null, 2);
		execlp("qemu-io", "qemu-io", "-f", "raw", "-c", cmd, uri, (char *)NULL);
		_exit(127);
	}
	return p;
}

/* True when @p exits (status 0) within @ms. */
static bool done_within(pid_t p, long ms)
{
	int status = 0;

	for (; ms > 0; ms -= 10) {
		pid_t w = waitpid(p, &status, WNOHANG);

		if (w == p)
			return WIFEXITED(status) && WEXITSTATUS(status) == 0;
		sleep_ms(10);
	}
	return false;
}

static unsigned char byte_at(const char *image, long off)
{
	unsigned char c = 0;
	int fd = open(image, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &c, 1, off), 1);
	(void)close(fd);
	return c;
}

static void test_real_servers(void **state)
{
	struct fx *f = *state;
	struct fence_hold *h = NULL;
	struct rp_error err = { 0 };
	char image[1024], ctl[3][200], why[RP_MSG_MAX];
	pid_t srv[3], c0, c1;
	int i;

	if (!in_path("nbdkit") || !in_path("qemu-io") || !in_path("qemu-nbd")) {
		skip();
		return;
	}
	assert_int_equal(rp_lun_path(image, sizeof(image), f->a, f->dev[0].id, &err), 0);
	/* two hosts write LUN 0 at once (a shared HA statefile), each through its own nbdkit */
	srv[0] = server_start(f, "na", image, true);
	srv[1] = server_start(f, "nb", image, true);
	for (i = 0; i < 2; i++)
		(void)snprintf(ctl[i], sizeof(ctl[i]), "%s/n%c.sock.ctl", f->dir, "ab"[i]);
	assert_int_equal(regw(f, 0, "OpaqueRef:host-a", RP_FENCE_PAUSE, srv[0], ctl[0], &err), 0);
	assert_int_equal(regw(f, 0, "OpaqueRef:host-b", RP_FENCE_PAUSE, srv[1], ctl[1], &err), 0);
	assert_true(done_within(client_write(f, "na", 1, 0), 10000)); /* both serve */
	assert_true(done_within(client_write(f, "nb", 2, 4096), 10000));

	/* the group's writers paused: a write through either server waits for the resume */
	assert_int_equal(fence_pause(&h, f->a, f->dev, 2, &err), 0);
	assert_non_null(h);
	c0 = client_write(f, "na", 0x5a, 0);
	c1 = client_write(f, "nb", 0x5b, 4096);
	assert_false(done_within(c0, 500));
	assert_false(done_within(c1, 10));
	assert_int_equal(byte_at(image, 0), 1);
	assert_int_equal(byte_at(image, 4096), 2);
	assert_int_equal(fence_resume(h, &err), 0);
	assert_true(done_within(c0, 10000));
	assert_true(done_within(c1, 10000));
	assert_int_equal(byte_at(image, 0), 0x5a);
	assert_int_equal(byte_at(image, 4096), 0x5b);

	/* host a stops serving: host b's writer is still paused, a's server is not */
	assert_int_equal(rp_fence_unregister_writer(f->a, f->dev[0].id, "OpaqueRef:host-a", &err),
	                 0);
	assert_int_equal(fence_pause(&h, f->a, f->dev, 2, &err), 0);
	assert_non_null(h);
	c0 = client_write(f, "na", 0x6a, 0);
	c1 = client_write(f, "nb", 0x6b, 4096);
	assert_true(done_within(c0, 10000));
	assert_false(done_within(c1, 300));
	assert_int_equal(fence_resume(h, &err), 0);
	assert_true(done_within(c1, 10000));
	assert_int_equal(byte_at(image, 4096), 0x6b);

	/* a qemu-nbd writer beside it (no fence): the snapshot warns naming it; nothing paused */
	srv[2] = server_start(f, "q", image, false);
	assert_int_equal(regw(f, 0, "OpaqueRef:host-c", RP_FENCE_NONE, srv[2], NULL, &err), 0);
	assert_int_equal(fence_unfenced(why, sizeof(why), f->a, f->dev, 2), 1);
	assert_non_null(strstr(why, "qemu-nbd"));
	assert_non_null(strstr(why, "OpaqueRef:host-c"));
	assert_int_equal(fence_pause(&h, f->a, f->dev, 2, &err), RP_ENOTSUPPORTED);
	assert_null(h);
	assert_true(done_within(client_write(f, "nb", 0x7b, 4096), 10000));
	assert_true(done_within(client_write(f, "q", 0x7c, 8192), 10000));

	/* both servers gone: their records are stale (no writer) and removed */
	(void)kill(srv[1], SIGTERM);
	(void)kill(srv[2], SIGTERM);
	for (i = 0; i < 500 && (kill(srv[1], 0) == 0 || kill(srv[2], 0) == 0); i++)
		sleep_ms(10);
	assert_int_equal(fence_unfenced(NULL, 0, f->a, f->dev, 2), 0);
	assert_int_equal(fence_pause(&h, f->a, f->dev, 2, &err), 0);
	assert_null(h);
	assert_int_equal(count_records(f, 0), 0);
	(void)kill(srv[0], SIGTERM);
	for (i = 0; i < 500 && kill(srv[0], 0) == 0; i++)
		sleep_ms(10);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_register_bad_input, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale_and_unfenced, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pause_resume, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pause_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_dies_mid_pause, setup, teardown),
		cmocka_unit_test_setup_teardown(test_watchdog_engine_dies, setup, teardown),
		cmocka_unit_test_setup_teardown(test_watchdog_hold_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_copy_too_large, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tapdisk, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writers_stale, setup, teardown),
		cmocka_unit_test_setup_teardown(test_old_format, setup, teardown),
		cmocka_unit_test_setup_teardown(test_real_servers, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: MIT */
/*
 * test_fence.c - write fences (fence.c): registration input checks, stale records, pause and
 * resume against a stand-in pause-filter control socket (answers, stays silent, dies
 * mid-pause), the watchdog (engine killed while holding; hold limit), unfenced writers, and the
 * tap-ctl mapping through a stand-in tap-ctl that records its arguments.
 */
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
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "fence.h"
#include "model.h"
#include "replun/replun.h"

struct fx {
	char dir[256];
	struct rp_array *a;
	struct model_device dev[2];
};

/* Stand-in pause filter: how it answers. */
enum srv_mode {
	SRV_OK = 0,     /* 'p' -> 'P', 'r' -> 'R' */
	SRV_SILENT = 1, /* 'p' never answered ("requests in flight"), 'r' -> 'R' */
	SRV_DIE = 2,    /* exits on 'p' (server killed mid-pause) */
};

struct srv {
	pid_t pid;
	char sock[108];
	char log[300];
};

static void sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	(void)nanosleep(&ts, NULL);
}

/* Forks a control socket server at @f->dir/<name>.ctl recording every byte it gets. */
static void srv_start(struct srv *s, struct fx *f, const char *name, enum srv_mode mode)
{
	struct sockaddr_un sa;
	int lfd, ready[2];
	char c;

	(void)snprintf(s->sock, sizeof(s->sock), "%s/%s.ctl", f->dir, name);
	(void)snprintf(s->log, sizeof(s->log), "%s/%s.log", f->dir, name);
	(void)unlink(s->sock);
	assert_int_equal(pipe(ready), 0);
	s->pid = fork();
	assert_true(s->pid >= 0);
	if (s->pid == 0) {
		int fd, logfd = open(s->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		lfd = socket(AF_UNIX, SOCK_STREAM, 0);
		memset(&sa, 0, sizeof(sa));
		sa.sun_family = AF_UNIX;
		(void)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", s->sock);
		if (logfd < 0 || lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
		    listen(lfd, 4) < 0)
			_exit(1);
		(void)write(ready[1], "y", 1);
		for (;;) {
			fd = accept(lfd, NULL, NULL);
			if (fd < 0)
				_exit(1);
			while (read(fd, &c, 1) == 1) {
				(void)write(logfd, &c, 1);
				if (c == 'p' && mode == SRV_DIE)
					_exit(0);
				if (c == 'p' && mode == SRV_OK)
					(void)write(fd, "P", 1);
				if (c == 'r')
					(void)write(fd, "R", 1);
			}
			(void)close(fd);
		}
	}
	(void)close(ready[1]);
	assert_int_equal(read(ready[0], &c, 1), 1);
	(void)close(ready[0]);
}

static void srv_stop(struct srv *s)
{
	if (s->pid > 0) {
		(void)kill(s->pid, SIGKILL);
		(void)waitpid(s->pid, NULL, 0);
	}
	s->pid = 0;
}

/* What the server received so far. */
static void srv_log(char *out, size_t len, const struct srv *s)
{
	int fd = open(s->log, O_RDONLY);
	ssize_t n = fd >= 0 ? read(fd, out, len - 1) : 0;

	if (fd >= 0)
		(void)close(fd);
	out[n > 0 ? n : 0] = '\0';
}

/* Waits up to @ms for the server log to become @want. */
static bool srv_wait_log(const struct srv *s, const char *want, long ms)
{
	char got[64];

	for (; ms > 0; ms -= 10) {
		srv_log(got, sizeof(got), s);
		if (strcmp(got, want) == 0)
			return true;
		sleep_ms(10);
	}
	return false;
}

static void reg(struct fx *f, int i, int kind, int64_t pid, const char *control)
{
	struct rp_error err = { 0 };
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

static bool no_records(struct fx *f)
{
	char path[400];
	struct stat st;
	int i;

	for (i = 0; i < 2; i++) {
		(void)snprintf(path, sizeof(path), "%s/a/" FENCE_DIR "/%s", f->dir, f->dev[i].id);
		if (stat(path, &st) == 0)
			return false;
	}
	return true;
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
	struct srv s0, s1;
	char got[64];

	srv_start(&s0, f, "s0", SRV_OK);
	srv_start(&s1, f, "s1", SRV_OK);
	reg(f, 0, RP_FENCE_PAUSE, s0.pid, s0.sock);
	reg(f, 1, RP_FENCE_PAUSE, s1.pid, s1.sock);
	assert_int_equal(fence_unfenced(NULL, 0, f->a, f->dev, 2), 0);
	assert_int_equal(fence_pause(&h, f->a, f->dev, 2, &err), 0);
	assert_non_null(h);
	srv_log(got, sizeof(got), &s0);
	assert_string_equal(got, "p");
	assert_int_equal(fence_resume(h, &err), 0);
	assert_true(srv_wait_log(&s0, "pr", 2000));
	assert_true(srv_wait_log(&s1, "pr", 2000));
	assert_int_equal(fence_resume(NULL, &err), 0);
	srv_stop(&s0);
	srv_stop(&s1);
}

static void test_pause_timeout(void **state)
{
	struct fx *f = *state;
	struct fence_hold *h = NULL;
	struct rp_error err = { 0 };
	struct srv s0, s1;

	setenv("REPLUN_FENCE_TIMEOUT_MS", "300", 1);
	srv_start(&s0, f, "t0", SRV_OK);
	srv_start(&s1, f, "t1", SRV_SILENT);
	reg(f, 0, RP_FENCE_PAUSE, s0.pid, s0.sock);
	reg(f, 1, RP_FENCE_PAUSE, s1.pid, s1.sock);
	assert_int_equal(fence_pause(&h, f->a, f->dev, 2, &err), RP_ETIMEOUT);
	assert_null(h);
	assert_non_null(strstr(err.msg, f->dev[1].id));
	assert_non_null(strstr(err.msg, "did not pause"));
	/* nothing stays paused: both got their resume */
	assert_true(srv_wait_log(&s0, "pr", 2000));
	assert_true(srv_wait_log(&s1, "pr", 2000));
	srv_stop(&s0);
	srv_stop(&s1);
	unsetenv("REPLUN_FENCE_TIMEOUT_MS");
}

static void test_server_dies_mid_pause(void **state)
{
	struct fx *f = *state;
	struct fence_hold *h = NULL;
	struct rp_error err = { 0 };
	struct srv s0, s1;

	srv_start(&s0, f, "d0", SRV_OK);
	srv_start(&s1, f, "d1", SRV_DIE);
	reg(f, 0, RP_FENCE_PAUSE, s0.pid, s0.sock);
	reg(f, 1, RP_FENCE_PAUSE, s1.pid, s1.sock);
	assert_int_equal(fence_pause(&h, f->a, f->dev, 2, &err), RP_EIO);
	assert_null(h);
	assert_non_null(strstr(err.msg, "closed the pause control connection"));
	assert_true(srv_wait_log(&s0, "pr", 2000));
	srv_stop(&s0);
	srv_stop(&s1);
}

static void test_watchdog_engine_dies(void **state)
{
	struct fx *f = *state;
	struct srv s0, s1;
	int status = 0;
	pid_t engine;

	srv_start(&s0, f, "w0", SRV_OK);
	srv_start(&s1, f, "w1", SRV_OK);
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
	srv_stop(&s0);
	srv_stop(&s1);
}

static void test_watchdog_hold_limit(void **state)
{
	struct fx *f = *state;
	struct fence_hold *h = NULL;
	struct rp_error err = { 0 };
	struct srv s0, s1;

	setenv("REPLUN_FENCE_HOLD_MS", "300", 1);
	srv_start(&s0, f, "h0", SRV_OK);
	srv_start(&s1, f, "h1", SRV_OK);
	reg(f, 0, RP_FENCE_PAUSE, s0.pid, s0.sock);
	reg(f, 1, RP_FENCE_PAUSE, s1.pid, s1.sock);
	assert_int_equal(fence_pause(&h, f->a, f->dev, 2, &err), 0);
	assert_non_null(h);
	/* a hung engine: the watchdog resumes at the hold limit, without us */
	assert_true(srv_wait_log(&s0, "pr", 3000));
	assert_true(srv_wait_log(&s1, "pr", 3000));
	assert_int_equal(fence_resume(h, &err), RP_ETIMEOUT);
	assert_non_null(strstr(err.msg, "may not be write-order consistent"));
	srv_stop(&s0);
	srv_stop(&s1);
	unsetenv("REPLUN_FENCE_HOLD_MS");
}

static void test_copy_too_large(void **state)
{
	struct fx *f = *state;
	struct fence_hold *h = NULL;
	struct rp_error err = { 0 };
	char why[RP_MSG_MAX];
	struct srv s0, s1;

	if (f->a->drv->caps & ARRAY_CAP_REFLINK) {
		skip(); /* O(1) clones: no size limit */
		return;
	}
	srv_start(&s0, f, "c0", SRV_OK);
	srv_start(&s1, f, "c1", SRV_OK);
	reg(f, 0, RP_FENCE_PAUSE, s0.pid, s0.sock);
	reg(f, 1, RP_FENCE_PAUSE, s1.pid, s1.sock);
	setenv("REPLUN_FENCE_COPY_MAX_MB", "1", 1); /* the group holds 2 MiB */
	assert_int_equal(fence_unfenced(why, sizeof(why), f->a, f->dev, 2), 2);
	assert_non_null(strstr(why, "copies snapshots"));
	assert_int_equal(fence_pause(&h, f->a, f->dev, 2, &err), RP_ENOTSUPPORTED);
	assert_null(h);
	assert_non_null(strstr(err.msg, "no reflink"));
	srv_log(why, sizeof(why), &s0);
	assert_string_equal(why, ""); /* never paused */
	setenv("REPLUN_FENCE_COPY_MAX_MB", "2", 1);
	assert_int_equal(fence_unfenced(NULL, 0, f->a, f->dev, 2), 0);
	assert_int_equal(fence_pause(&h, f->a, f->dev, 2, &err), 0);
	assert_int_equal(fence_resume(h, &err), 0);
	unsetenv("REPLUN_FENCE_COPY_MAX_MB");
	srv_stop(&s0);
	srv_stop(&s1);
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
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

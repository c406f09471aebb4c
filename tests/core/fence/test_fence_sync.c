/* SPDX-License-Identifier: MIT */
/*
 * test_fence_sync.c - a sync whose group snapshot could not pause the writers says so on the
 * session: a pause fence whose control socket answers wrongly, or a writer without a fence,
 * registered after the session started (rp_sync_start saw no writer), make the detached worker
 * record RP_WARN_NO_FREEZE on both session rows and rp_sync_get/rp_sync_latest report it; a
 * foreground run carries it on the start item and logs it; a clean sync carries none.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "engine.h"
#include "lock.h"
#include "model.h"
#include "pause_server.h"
#include "replun/replun.h"
#include "sync.h"

struct fx {
	char dir[256];
	struct rp_array *a, *b;
	struct rp_device dev[2]; /* group "g" on A, replicated to B */
	struct pause_server srv; /* stand-in pause filter answering wrongly; pid 0 = none */
};

/* Warnings logged by this process (the foreground run). */
static char logged[4096];

static void log_sink(enum rp_log_level level, const char *msg, void *payload)
{
	size_t n = strlen(logged);

	(void)payload;
	if (level == RP_LOG_WARNING && n + strlen(msg) + 2 < sizeof(logged))
		(void)snprintf(logged + n, sizeof(logged) - n, "%s\n", msg);
}

static void reg(struct fx *f, int i, int kind)
{
	struct rp_error err = { 0 };
	struct rp_fence fc;

	memset(&fc, 0, sizeof(fc));
	fc.kind = kind;
	if (kind == RP_FENCE_PAUSE) {
		if (f->srv.pid <= 0)
			pause_server_start(&f->srv, f->dir, "wrong", PAUSE_SERVER_WRONG);
		fc.pid = f->srv.pid;
		(void)snprintf(fc.control, sizeof(fc.control), "%s", f->srv.sock);
		(void)snprintf(fc.server, sizeof(fc.server), "nbdkit");
	} else {
		fc.pid = getpid(); /* a live writer that cannot be paused */
		(void)snprintf(fc.server, sizeof(fc.server), "qemu-nbd");
	}
	assert_int_equal(rp_fence_register(f->a, f->dev[i].id, &fc, &err), 0);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct rp_lun_create_opts o = { .group = "g", .replicate = true };
	struct rp_error err = { 0 };
	char pa[300], pb[300];
	int i;

	assert_non_null(f);
	(void)snprintf(f->dir, sizeof(f->dir), "/tmp/rp-fsync-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	(void)snprintf(pa, sizeof(pa), "%s/a", f->dir);
	(void)snprintf(pb, sizeof(pb), "%s/b", f->dir);
	assert_int_equal(rp_array_init(pa, "siteA", NULL, &err), 0);
	assert_int_equal(rp_array_init(pb, "siteB", NULL, &err), 0);
	assert_int_equal(rp_array_open(&f->a, pa, NULL, &err), 0);
	assert_int_equal(rp_array_open(&f->b, pb, NULL, &err), 0);
	assert_int_equal(rp_array_pair(f->a, f->b, &err), 0);
	for (i = 0; i < 2; i++) {
		char name[16];

		(void)snprintf(name, sizeof(name), "vol%d", i);
		assert_int_equal(rp_lun_create(&f->dev[i], f->a, name, 1 << 20, &o, &err), 0);
	}
	unsetenv("REPLUN_FENCE_TIMEOUT_MS");
	logged[0] = '\0';
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[300];

	rp_log_set_sink(NULL, RP_LOG_ERROR, NULL);
	pause_server_stop(&f->srv);
	rp_array_close(f->a);
	rp_array_close(f->b);
	(void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	(void)system(cmd);
	free(f);
	return 0;
}

/* Starts a sync of group "g" at A; *item_warn = the start item's RP_WARN_NO_FREEZE, if any. */
static void start(struct fx *f, bool foreground, char sid[RP_ID_MAX], char *item_warn, size_t len)
{
	const char *groups[] = { "g" };
	struct rp_request req = { .groups = groups, .n_groups = 1 };
	struct rp_sync_opts o = { .foreground = foreground };
	struct rp_result *r = NULL;
	struct rp_error e = { 0 };
	size_t i;

	assert_int_equal(rp_sync_start(&r, f->a, &req, &o, &e), 0);
	assert_non_null(r);
	assert_true(r->n >= 1);
	assert_true(r->items[0].is_group);
	assert_int_equal(r->items[0].code, 0);
	(void)snprintf(sid, RP_ID_MAX, "%s", r->items[0].session);
	item_warn[0] = '\0';
	for (i = 0; i < r->items[0].n_warnings; i++)
		if (r->items[0].warnings[i].code == RP_WARN_NO_FREEZE)
			(void)snprintf(item_warn, len, "%s", r->items[0].warnings[i].msg);
	rp_result_free(r);
}

static void wait_done(struct fx *f, const char *sid, struct rp_sync_session *s)
{
	struct rp_error e = { 0 };

	assert_int_equal(rp_sync_wait(s, f->a, sid, 60000, NULL, NULL, &e), 0);
	if (s->status != RP_SYNC_COMPLETE)
		printf("# session %s: %s\n", sid, s->error);
	assert_int_equal(s->status, RP_SYNC_COMPLETE);
}

/* Both rows, rp_sync_get at either end and rp_sync_latest carry @want (NULL: no warning). */
static void assert_session_warning(struct fx *f, const char *sid, const char *want)
{
	struct rp_array *arrays[2] = { f->a, f->b };
	struct rp_sync_session s;
	struct rp_error e = { 0 };
	struct sync_row row;
	int i;

	for (i = 0; i < 2; i++) {
		assert_int_equal(sync_row_load(&row, arrays[i], sid, &e), 0);
		if (want) {
			assert_int_equal(row.warning_code, RP_WARN_NO_FREEZE);
			assert_non_null(strstr(row.warning, want));
		} else {
			assert_int_equal(row.warning_code, 0);
			assert_string_equal(row.warning, "");
		}
		sync_row_dispose(&row);
		assert_int_equal(rp_sync_get(&s, arrays[i], sid, &e), 0);
		if (want) {
			assert_int_equal(s.warning_code, RP_WARN_NO_FREEZE);
			assert_non_null(strstr(s.warning, want));
			assert_non_null(strstr(s.warning, "not write-order consistent"));
		} else {
			assert_int_equal(s.warning_code, 0);
			assert_string_equal(s.warning, "");
		}
	}
	assert_int_equal(rp_sync_latest(&s, f->a, "g", NULL, &e), 0);
	assert_string_equal(s.id, sid);
	assert_int_equal(s.warning_code, want ? RP_WARN_NO_FREEZE : 0);
}

static void test_fence_sync__clean_sync_has_no_warning(void **state)
{
	struct fx *f = *state;
	struct rp_sync_session s;
	char sid[RP_ID_MAX], iw[RP_MSG_MAX];

	start(f, false, sid, iw, sizeof(iw));
	assert_string_equal(iw, "");
	wait_done(f, sid, &s);
	assert_session_warning(f, sid, NULL);
}

/*
 * A writer registered after the session started: the test holds the source group's lock, so
 * the detached worker cannot snapshot before the fence is there; rp_sync_start saw no writer
 * and did not warn.
 */
static void writer_after_start(struct fx *f, int kind, const char *want)
{
	struct rp_sync_session s;
	struct rp_error e = { 0 };
	char sid[RP_ID_MAX], iw[RP_MSG_MAX];
	int lfd = -1;

	if (kind == RP_FENCE_PAUSE)
		/* before the lock: a forked child would hold it too */
		pause_server_start(&f->srv, f->dir, "wrong", PAUSE_SERVER_WRONG);
	assert_int_equal(lock_group(f->a, "g", &lfd, &e), 0);
	start(f, false, sid, iw, sizeof(iw));
	assert_string_equal(iw, ""); /* nothing to warn about yet */
	reg(f, 1, kind);
	unlock(lfd);
	wait_done(f, sid, &s);
	assert_session_warning(f, sid, want);
	assert_non_null(strstr(s.warning, f->dev[1].id));
	/* the next sync, the writer gone: a clean session again */
	assert_int_equal(rp_fence_unregister(f->a, f->dev[1].id, &e), 0);
	start(f, false, sid, iw, sizeof(iw));
	wait_done(f, sid, &s);
	assert_session_warning(f, sid, NULL);
}

static void test_fence_sync__pause_answered_wrongly(void **state)
{
	writer_after_start(*state, RP_FENCE_PAUSE, "closed the pause control connection");
}

static void test_fence_sync__unfenced_writer_appears(void **state)
{
	writer_after_start(*state, RP_FENCE_NONE, "which has no write fence");
}

/* Foreground: the start item carries the session's warning, and the log line stays. */
static void test_fence_sync__foreground_item_and_log(void **state)
{
	struct fx *f = *state;
	struct rp_sync_session s;
	struct rp_error e = { 0 };
	char sid[RP_ID_MAX], iw[RP_MSG_MAX];

	reg(f, 0, RP_FENCE_PAUSE); /* a pause fence: rp_sync_start cannot see it will fail */
	rp_log_set_sink(log_sink, RP_LOG_WARNING, NULL);
	start(f, true, sid, iw, sizeof(iw));
	assert_non_null(strstr(iw, "closed the pause control connection"));
	assert_non_null(strstr(iw, f->dev[0].id));
	assert_non_null(strstr(logged, sid));
	assert_non_null(strstr(logged, "closed the pause control connection"));
	assert_int_equal(rp_sync_get(&s, f->b, sid, &e), 0);
	assert_int_equal(s.status, RP_SYNC_COMPLETE);
	assert_session_warning(f, sid, "closed the pause control connection");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_fence_sync__clean_sync_has_no_warning, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_fence_sync__pause_answered_wrongly, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_fence_sync__unfenced_writer_appears, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_fence_sync__foreground_item_and_log, setup,
		                                teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

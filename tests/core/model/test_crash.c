/* SPDX-License-Identifier: MIT */
/*
 * test_crash.c - crash safety of multi-step LUN creation: a failure or a process death at any
 * driver step leaves nothing half-created once the next command opens the array.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "lock.h"

#define MiB (1024ull * 1024ull)

static void assert_clean(struct fx *f, int64_t devices_a, int64_t devices_b)
{
	assert_int_equal(count_rows(f->a, "devices"), devices_a);
	assert_int_equal(count_rows(f->b, "devices"), devices_b);
	assert_int_equal(count_rows(f->a, "intents"), 0);
	assert_int_equal(count_rows(f->b, "intents"), 0);
}

/* The peer's obj_create fails: the local object, the peer group and every row go away. */
static void test_crash__peer_create_fails(void **state)
{
	struct fx *f = *state;
	struct rp_lun_create_opts o = { .group = "sr", .replicate = true };
	struct rp_error err = { 0 };
	struct rp_device d;

	fake_array_fail("obj_create", 2, RP_ENOSPACE);
	assert_error(rp_lun_create(&d, f->a, "disk", MiB, &o, &err), err, RP_ENOSPACE);
	assert_clean(f, 0, 0);
	assert_int_equal(count_rows(f->a, "groups"), 0);
	assert_int_equal(count_rows(f->b, "groups"), 0);
	assert_int_equal(fake_array_obj_count(f->a->root), 0);
	assert_int_equal(fake_array_obj_count(f->b->root), 0);
	/* The next create works and gets fresh ids (the failed ones are never reused). */
	assert_int_equal(rp_lun_create(&d, f->a, "disk", MiB, &o, &err), 0);
	assert_string_equal(d.id, "siteA-000002");
	assert_string_equal(d.peer_device, "siteB-000002");
	assert_clean(f, 1, 1);
	assert_int_equal(fake_array_obj_count(f->b->root), 1);
}

/* The peer is unreachable: nothing is made anywhere, no lock or descriptor is left. */
static void test_crash__peer_unreachable(void **state)
{
	struct fx *f = *state;
	struct rp_lun_create_opts o = { .replicate = true };
	struct rp_error err = { 0 };
	struct rp_device d;
	bool got = false;
	int fd = -1;

	fake_array_fail("open", 1, RP_EIO);
	assert_error(rp_lun_create(&d, f->a, "disk", MiB, &o, &err), err, RP_EUNREACHABLE);
	o.group = "grp";
	fake_array_fail("open", 1, RP_EIO);
	rp_error_clear(&err);
	assert_error(rp_lun_create(&d, f->a, "disk", MiB, &o, &err), err, RP_EUNREACHABLE);
	assert_clean(f, 0, 0);
	assert_int_equal(fake_array_obj_count(f->a->root), 0);
	/* The group lock was released (a leaked descriptor would still hold it). */
	assert_int_equal(lock_try(f->a, "grp", &fd, &got, &err), 0);
	assert_true(got);
	unlock(fd);
}

/* The group existed on the peer already: a failed create leaves it there. */
static void test_crash__existing_peer_group_kept(void **state)
{
	struct fx *f = *state;
	struct rp_lun_create_opts o = { .group = "sr", .replicate = true };
	struct rp_error err = { 0 };
	struct rp_device d;

	assert_int_equal(rp_lun_create(&d, f->a, "one", MiB, &o, &err), 0);
	fake_array_fail("obj_create", 2, RP_EIO);
	assert_error(rp_lun_create(&d, f->a, "two", MiB, &o, &err), err, RP_EIO);
	assert_clean(f, 1, 1);
	assert_int_equal(count_rows(f->b, "groups"), 1);
	assert_int_equal(fake_array_obj_count(f->a->root), 1);
	assert_int_equal(fake_array_obj_count(f->b->root), 1);
}

/* Runs a replicated create in a child that dies at the @nth call of @op. */
static void crash_child(struct fx *f, const char *op, unsigned nth)
{
	pid_t pid;
	int status = 0;

	/* SQLite connections must not cross fork(): close ours, reopen after. */
	rp_array_close(f->a);
	rp_array_close(f->b);
	f->a = f->b = NULL;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct rp_lun_create_opts o = { .group = "sr", .replicate = true };
		struct rp_array *a = NULL;

		if (rp_array_open(&a, f->a_path, NULL, NULL) < 0)
			_exit(2);
		fake_array_crash(op, nth, 77);
		(void)rp_lun_create(NULL, a, "doomed", MiB, &o, NULL);
		_exit(3); /* should have crashed */
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 77);
}

/* Counts intents in the database of the array at @root without opening the array (which would
 * recover them). */
static int64_t raw_intents(const char *root)
{
	struct rp_error err = { 0 };
	char db[PATH_MAX + 32];
	sqlite3 *raw = NULL;
	int64_t n = -1;

	(void)snprintf(db, sizeof(db), "%s/metadata.db", root);
	assert_int_equal(meta_open(&raw, db, false, 0, &err), 0);
	assert_int_equal(meta_query_int(&n, raw, &err, "SELECT COUNT(*) FROM intents", ""), 0);
	meta_close(raw);
	return n;
}

static void test_crash__child_dies_at_local_create(void **state)
{
	struct fx *f = *state;
	struct rp_error err = { 0 };

	crash_child(f, "obj_create", 1);
	/* The target's identity was reserved on B first (its own intent), then A's intent. */
	assert_int_equal(raw_intents(f->a_path), 1);
	assert_int_equal(raw_intents(f->b_path), 1);
	/* The next command that opens A rolls it back. */
	assert_int_equal(rp_array_open(&f->a, f->a_path, NULL, &err), 0);
	assert_int_equal(rp_array_open(&f->b, f->b_path, NULL, &err), 0);
	assert_clean(f, 0, 0);
	assert_int_equal(count_rows(f->a, "groups"), 0);
}

static void test_crash__child_dies_at_peer_create(void **state)
{
	struct fx *f = *state;
	struct rp_error err = { 0 };

	crash_child(f, "obj_create", 2);
	/* Both arrays hold an abandoned intent now. */
	assert_int_equal(raw_intents(f->a_path), 1);
	assert_int_equal(raw_intents(f->b_path), 1);
	/* The next command on A finishes the job on both sides. */
	assert_int_equal(rp_array_open(&f->a, f->a_path, NULL, &err), 0);
	assert_int_equal(raw_intents(f->b_path), 0);
	assert_int_equal(rp_array_open(&f->b, f->b_path, NULL, &err), 0);
	assert_clean(f, 0, 0);
	assert_int_equal(count_rows(f->b, "groups"), 0);
	/* And the array works normally afterwards. */
	{
		struct rp_lun_create_opts o = { .group = "sr", .replicate = true };
		struct rp_device d;

		assert_int_equal(rp_lun_create(&d, f->a, "after", MiB, &o, &err), 0);
		assert_clean(f, 1, 1);
	}
}

/* With the real file driver: an orphan image and an abandoned intent are cleaned up. */
static void test_crash__file_orphan_removed(void **state)
{
	struct fx *f = *state;
	struct model_intent in = MODEL_INTENT_INIT;
	struct rp_error err = { 0 };
	char path[PATH_MAX];
	struct rp_array *other = NULL;
	struct stat st;

	assert_int_equal(f->a->drv->ops->obj_create(f->a->drv, "lun-siteA-000009", MiB, &err), 0);
	assert_int_equal(
	        f->a->drv->ops->obj_path(path, sizeof(path), f->a->drv, "lun-siteA-000009", &err),
	        0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(model_intent_add(&in, f->a, "lun_create",
	                                  "device=siteA-000009\nobj=lun-siteA-000009\n", &err),
	                 0);
	/* While its owner lives (holds the lock) nobody touches it, even from another handle. */
	assert_int_equal(rp_array_open(&other, f->a_path, NULL, &err), 0);
	rp_array_close(other);
	other = NULL;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(count_rows(f->a, "intents"), 1);
	/* The owner "dies" (drops its lock without finishing): the next open rolls it back. */
	unlock(in.lock_fd);
	in.lock_fd = -1;
	assert_int_equal(rp_array_open(&other, f->a_path, NULL, &err), 0);
	rp_array_close(other);
	assert_int_equal(stat(path, &st), -1);
	assert_int_equal(count_rows(f->a, "intents"), 0);
}

/* The child dies making the target's object durable (after both intents and both objects). */
static void test_crash__child_dies_at_peer_flush(void **state)
{
	struct fx *f = *state;
	struct rp_error err = { 0 };

	crash_child(f, "flush", 2);
	assert_int_equal(raw_intents(f->a_path), 1);
	assert_int_equal(raw_intents(f->b_path), 1);
	/* (The fake driver's objects lived in the child; the intents and rows are what count.) */
	assert_int_equal(rp_array_open(&f->a, f->a_path, NULL, &err), 0);
	assert_int_equal(rp_array_open(&f->b, f->b_path, NULL, &err), 0);
	assert_clean(f, 0, 0);
	assert_int_equal(count_rows(f->a, "groups"), 0);
	assert_int_equal(count_rows(f->b, "groups"), 0);
}

/*
 * The window between the peer's commit (target row, peer intent gone) and ours: rebuilt by
 * hand from a finished create (our row removed, our intent put back as a dead owner left it).
 * The next open of A removes the target, the peer group it made, and our object.
 */
static void test_crash__target_committed_source_not(void **state)
{
	struct fx *f = *state;
	struct rp_lun_create_opts o = { .group = "sr", .replicate = true };
	struct rp_error err = { 0 };
	struct rp_device s, t;
	char payload[1024], obj[ARRAY_OBJ_MAX], tobj[ARRAY_OBJ_MAX];

	assert_int_equal(rp_lun_create(&s, f->a, "vm", MiB, &o, &err), 0);
	model_device_obj(obj, s.id);
	model_device_obj(tobj, s.peer_device);
	(void)snprintf(payload, sizeof(payload),
	               "owner=999999-1-1\ndevice=%s\nobj=%s\ngroup=sr\npeer=siteB\npeer_device=%s\n"
	               "peer_obj=%s\npeer_group_new=1\n",
	               s.id, obj, s.peer_device, tobj);
	assert_int_equal(
	        meta_run(NULL, f->a->db, &err, "DELETE FROM devices WHERE id = ?", "t", s.id), 0);
	assert_int_equal(meta_run(NULL, f->a->db, &err, "DELETE FROM groups", ""), 0);
	assert_int_equal(
	        meta_run(NULL, f->a->db, &err,
	                 "INSERT INTO intents(op, payload, created_ms) VALUES('lun_create',"
	                 " ?, 1)",
	                 "t", payload),
	        0);
	rp_array_close(f->a);
	f->a = NULL;
	assert_int_equal(rp_array_open(&f->a, f->a_path, NULL, &err), 0);
	assert_clean(f, 0, 0);
	assert_error(rp_lun_get(&t, f->b, s.peer_device, &err), err, RP_ENOTFOUND);
	assert_int_equal(count_rows(f->b, "groups"), 0);
	assert_int_equal(fake_array_obj_count(f->a_path), 0);
	assert_int_equal(fake_array_obj_count(f->b_path), 0);
}

/* Deleting a source while the peer is down: the target goes as soon as the peer is back. */
static void test_crash__delete_source_peer_down(void **state)
{
	struct fx *f = *state;
	struct rp_lun_create_opts o = { .replicate = true };
	struct rp_error err = { 0 };
	struct rp_array *again = NULL;
	struct rp_device s, t;

	assert_int_equal(rp_lun_create(&s, f->a, "d", MiB, &o, &err), 0);
	/* A fresh handle of A (the create's handle keeps its peer open). */
	rp_array_close(f->a);
	f->a = NULL;
	assert_int_equal(rp_array_open(&f->a, f->a_path, NULL, &err), 0);
	fake_array_fail("open", 1, RP_EIO);
	assert_int_equal(rp_lun_delete(f->a, s.id, &err), 0);
	assert_int_equal(count_rows(f->a, "devices"), 0);
	assert_int_equal(rp_lun_get(&t, f->b, s.peer_device, &err), 0);
	assert_int_equal(count_rows(f->a, "intents"), 1);
	/* The next command on A finishes the delete at B. */
	assert_int_equal(rp_array_open(&again, f->a_path, NULL, &err), 0);
	rp_array_close(again);
	assert_int_equal(count_rows(f->a, "intents"), 0);
	assert_error(rp_lun_get(&t, f->b, s.peer_device, &err), err, RP_ENOTFOUND);
	assert_int_equal(fake_array_obj_count(f->b->root), 0);
}

/* The driver cannot delete the data: the LUN is gone anyway and the data goes later. */
static void test_crash__delete_data_later(void **state)
{
	struct fx *f = *state;
	struct rp_error err = { 0 };
	struct rp_array *again = NULL;
	struct rp_device d;

	assert_int_equal(rp_lun_create(&d, f->a, "d", MiB, NULL, &err), 0);
	fake_array_fail("obj_delete", 1, RP_EIO);
	assert_int_equal(rp_lun_delete(f->a, d.id, &err), 0);
	assert_int_equal(count_rows(f->a, "devices"), 0);
	assert_int_equal(count_rows(f->a, "intents"), 1);
	assert_true(fake_array_obj_exists(f->a->root, "lun-siteA-000001"));
	assert_int_equal(rp_array_open(&again, f->a_path, NULL, &err), 0);
	rp_array_close(again);
	assert_int_equal(count_rows(f->a, "intents"), 0);
	assert_false(fake_array_obj_exists(f->a->root, "lun-siteA-000001"));
}

int model_crash_tests(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_crash__peer_create_fails, fx_setup_fake,
		                                fx_teardown),
		cmocka_unit_test_setup_teardown(test_crash__peer_unreachable, fx_setup_fake,
		                                fx_teardown),
		cmocka_unit_test_setup_teardown(test_crash__existing_peer_group_kept, fx_setup_fake,
		                                fx_teardown),
		cmocka_unit_test_setup_teardown(test_crash__child_dies_at_local_create,
		                                fx_setup_fake, fx_teardown),
		cmocka_unit_test_setup_teardown(test_crash__child_dies_at_peer_create,
		                                fx_setup_fake, fx_teardown),
		cmocka_unit_test_setup_teardown(test_crash__child_dies_at_peer_flush, fx_setup_fake,
		                                fx_teardown),
		cmocka_unit_test_setup_teardown(test_crash__target_committed_source_not,
		                                fx_setup_fake, fx_teardown),
		cmocka_unit_test_setup_teardown(test_crash__delete_source_peer_down, fx_setup_fake,
		                                fx_teardown),
		cmocka_unit_test_setup_teardown(test_crash__delete_data_later, fx_setup_fake,
		                                fx_teardown),
		cmocka_unit_test_setup_teardown(test_crash__file_orphan_removed, fx_setup_file,
		                                fx_teardown),
	};

	return cmocka_run_group_tests_name("core.model.crash", tests, NULL, NULL);
}

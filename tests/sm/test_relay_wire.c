/* SPDX-License-Identifier: MIT */
/*
 * test_relay_wire.c - cmocka unit tests of the XenAPI callback relay's wire code
 * (sm-plugin/sm_relay_wire.c): frames round-trip, bad magic / field count / length are
 * refused, EOF and timeouts are reported, the identity follows the binary file, and the
 * socket directory check refuses links, other owners and group/other access.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "sm_relay.h"

static void pair(int sv[2])
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
}

static void test_sm_relay_wire__round_trip(void **state)
{
	const char *f[3] = { "/var/lib/xcp/xapi", "", "<methodCall/>" };
	size_t len[3] = { strlen(f[0]), 0, strlen(f[2]) };
	struct sm_relay_frame fr;
	int sv[2];

	pair(sv);
	assert_int_equal(sm_relay_send(sv[0], SM_RELAY_REQ, 7, 3, f, len, sm_relay_now_ms() + 1000),
	                 0);
	assert_int_equal(sm_relay_recv(sv[1], &fr, sm_relay_now_ms() + 1000), 0);
	assert_int_equal(fr.type, SM_RELAY_REQ);
	assert_int_equal(fr.status, 7);
	assert_int_equal(fr.n, 3);
	assert_string_equal(fr.f[0], "/var/lib/xcp/xapi");
	assert_int_equal(fr.len[1], 0);
	assert_string_equal(fr.f[1], "");
	assert_string_equal(fr.f[2], "<methodCall/>");
	sm_relay_frame_dispose(&fr);
	/* a frame without fields */
	assert_int_equal(
	        sm_relay_send(sv[1], SM_RELAY_ACK, 0, 0, NULL, NULL, sm_relay_now_ms() + 1000), 0);
	assert_int_equal(sm_relay_recv(sv[0], &fr, sm_relay_now_ms() + 1000), 0);
	assert_int_equal(fr.type, SM_RELAY_ACK);
	assert_int_equal(fr.n, 0);
	sm_relay_frame_dispose(&fr);
	close(sv[0]);
	close(sv[1]);
}

static void test_sm_relay_wire__refuses_bad_frames(void **state)
{
	struct sm_relay_frame fr;
	uint32_t bad_magic[4] = { 0x12345678u, SM_RELAY_ACK, 0, 0 };
	uint32_t many[4] = { SM_RELAY_MAGIC, SM_RELAY_REQ, 0, SM_RELAY_FIELDS + 1 };
	uint32_t huge[5] = { SM_RELAY_MAGIC, SM_RELAY_REQ, 0, 1, SM_RELAY_FIELD_MAX + 1 };
	uint32_t cut[6] = { SM_RELAY_MAGIC, SM_RELAY_REQ, 0, 1, 100, 0 };
	int sv[2];

	pair(sv);
	assert_int_equal(write(sv[0], bad_magic, sizeof(bad_magic)), sizeof(bad_magic));
	assert_int_equal(sm_relay_recv(sv[1], &fr, sm_relay_now_ms() + 1000), -1);
	assert_int_equal(errno, EPROTO);
	assert_int_equal(write(sv[0], many, sizeof(many)), sizeof(many));
	assert_int_equal(sm_relay_recv(sv[1], &fr, sm_relay_now_ms() + 1000), -1);
	assert_int_equal(errno, EPROTO);
	assert_int_equal(write(sv[0], huge, sizeof(huge)), sizeof(huge));
	assert_int_equal(sm_relay_recv(sv[1], &fr, sm_relay_now_ms() + 1000), -1);
	assert_int_equal(errno, EPROTO);
	assert_null(fr.f[0]);
	/* a field shorter than announced, then EOF: ECONNRESET, nothing leaked */
	assert_int_equal(write(sv[0], cut, sizeof(cut)), sizeof(cut));
	close(sv[0]);
	assert_int_equal(sm_relay_recv(sv[1], &fr, sm_relay_now_ms() + 1000), -1);
	assert_int_equal(errno, ECONNRESET);
	assert_null(fr.f[0]);
	close(sv[1]);
}

static void test_sm_relay_wire__times_out(void **state)
{
	const char *f[1] = { "x" };
	size_t len[1] = { SM_RELAY_FIELD_MAX + 1 };
	struct sm_relay_frame fr;
	int64_t t0;
	int sv[2];

	pair(sv);
	t0 = sm_relay_now_ms();
	assert_int_equal(sm_relay_recv(sv[1], &fr, t0 + 100), -1);
	assert_int_equal(errno, ETIMEDOUT);
	assert_true(sm_relay_now_ms() - t0 >= 100);
	/* oversized fields are not sent */
	assert_int_equal(sm_relay_send(sv[0], SM_RELAY_REQ, 0, 1, f, len, t0 + 1000), -1);
	assert_int_equal(errno, EMSGSIZE);
	close(sv[0]);
	close(sv[1]);
}

static void test_sm_relay_wire__identity_follows_the_file(void **state)
{
	char path[] = "/tmp/relay-id.XXXXXX", a[512], b[512], c[512];
	struct stat st;
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	sm_relay_identity(a, sizeof(a), &st);
	sm_relay_identity(b, sizeof(b), &st);
	assert_string_equal(a, b);
	assert_non_null(strstr(a, REPLUN_SM_VERSION));
	assert_int_equal(write(fd, "x", 1), 1);
	assert_int_equal(fstat(fd, &st), 0);
	sm_relay_identity(c, sizeof(c), &st);
	assert_string_not_equal(a, c);
	close(fd);
	unlink(path);
}

static void test_sm_relay_wire__dir_check(void **state)
{
	char base[] = "/tmp/relay-dir.XXXXXX", dir[256], link[256], why[512];

	assert_non_null(mkdtemp(base));
	(void)snprintf(dir, sizeof(dir), "%s/d", base);
	(void)snprintf(link, sizeof(link), "%s/l", base);
	assert_int_equal(sm_relay_dir_check(dir, why, sizeof(why)), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(chmod(dir, 0700), 0);
	assert_int_equal(sm_relay_dir_check(dir, why, sizeof(why)), 0);
	assert_int_equal(chmod(dir, 0750), 0);
	assert_int_equal(sm_relay_dir_check(dir, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "mode 750"));
	assert_int_equal(chmod(dir, 0700), 0);
	assert_int_equal(symlink(dir, link), 0);
	assert_int_equal(sm_relay_dir_check(link, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "not a directory"));
	if (geteuid() == 0) {
		assert_int_equal(chown(dir, 65534, (gid_t)-1), 0);
		assert_int_equal(sm_relay_dir_check(dir, why, sizeof(why)), -1);
		assert_non_null(strstr(why, "owner 65534"));
	}
	unlink(link);
	rmdir(dir);
	rmdir(base);
}

static void test_sm_relay_wire__http_body_and_headers(void **state)
{
	struct sm_http_body b = { 0 };
	char big[4096];

	(void)state;
	printf("# the answer body grows chunk by chunk and stays NUL-terminated\n");
	assert_int_equal(sm_http_body_write((char *)"<methodResponse>", 1, 16, &b), 16);
	assert_int_equal(sm_http_body_write((char *)"</methodResponse>", 17, 1, &b), 17);
	assert_int_equal(b.len, 33);
	assert_string_equal(b.p, "<methodResponse></methodResponse>");
	assert_false(b.toobig);
	printf("# past SM_RELAY_FIELD_MAX the transfer stops (0 written), nothing appended\n");
	memset(big, 'x', sizeof(big));
	b.len = SM_RELAY_FIELD_MAX - 100;
	assert_int_equal(sm_http_body_write(big, 1, sizeof(big), &b), 0);
	assert_true(b.toobig);
	assert_int_equal(b.len, SM_RELAY_FIELD_MAX - 100);
	free(b.p);
	printf("# header values: printable passes, CR/LF/TAB and other controls do not\n");
	assert_true(sm_http_header_safe("OpaqueRef:2b7a1c1e-task"));
	assert_true(sm_http_header_safe(""));
	assert_false(sm_http_header_safe("a\r\nX-Injected: 1"));
	assert_false(sm_http_header_safe("a\tb"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sm_relay_wire__round_trip),
		cmocka_unit_test(test_sm_relay_wire__refuses_bad_frames),
		cmocka_unit_test(test_sm_relay_wire__times_out),
		cmocka_unit_test(test_sm_relay_wire__identity_follows_the_file),
		cmocka_unit_test(test_sm_relay_wire__dir_check),
		cmocka_unit_test(test_sm_relay_wire__http_body_and_headers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

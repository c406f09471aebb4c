/* SPDX-License-Identifier: MIT */
/*
 * test_sm_unit.c - cmocka unit tests of ReplunSR's protocol half (sm-plugin/replun_sm_proto):
 * call parsing in both dialects and its bounds, faults, printing, helpers, fcntl locks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "sm.h"

/* XAPI's own serialisation of a vdi_create (research smapi.md 1.4), one line, <value/>. */
static const char xapi_vdi_create[] =
        "<methodCall><methodName>vdi_create</methodName><params><param><value><struct>"
        "<member><name>host_ref</name><value>OpaqueRef:6d9f</value></member>"
        "<member><name>command</name><value>vdi_create</value></member>"
        "<member><name>args</name><value><array><data><value>10737418240</value>"
        "<value>data &amp; disk</value><value/><value/><value>false</value>"
        "<value>19700101T00:00:00Z</value><value/><value>false</value></data></array></value>"
        "</member><member><name>device_config</name><value><struct><member><name>SRmaster"
        "</name><value>true</value></member><member><name>array</name><value>file:///srv/a"
        "</value></member><member><name>password</name><value>Sup3rSecret</value></member>"
        "</struct></value></member>"
        "<member><name>session_ref</name><value>OpaqueRef:c62e</value></member>"
        "<member><name>sr_ref</name><value>OpaqueRef:88cb</value></member>"
        "<member><name>vdi_type</name><value>user</value></member>"
        "<member><name>sr_uuid</name><value>976e0ed5-2901-47b0-8962-ad6e76d6b55a</value>"
        "</member><member><name>vdi_sm_config</name><value><struct/></value></member>"
        "<member><name>subtask_of</name><value>DummyRef:|3b1f|VDI.create</value></member>"
        "</struct></value></param></params></methodCall>";

/* What Python's xmlrpc.client.dumps writes (static-vdis re-dumping a config). */
static const char python_detach[] =
        "<?xml version='1.0'?>\n<methodCall>\n<methodName>vdi_detach_from_config</methodName>\n"
        "<params>\n<param>\n<value><struct>\n<member>\n<name>command</name>\n"
        "<value><string>vdi_detach_from_config</string></value>\n</member>\n<member>\n"
        "<name>device_config</name>\n<value><struct>\n<member>\n<name>array</name>\n"
        "<value><string>/srv/a</string></value>\n</member>\n</struct></value>\n</member>\n"
        "<member>\n<name>sr_uuid</name>\n<value><string>976e0ed5-2901-47b0-8962-ad6e76d6b55a"
        "</string></value>\n</member>\n<member>\n<name>vdi_uuid</name>\n<value><string>"
        "e25e1317-260a-4714-b7af-0ef32a87b1b1</string></value>\n</member>\n<member>\n"
        "<name>persistent</name>\n<value><boolean>1</boolean></value>\n</member>\n"
        "</struct></value>\n</param>\n</params>\n</methodCall>\n";

static void test_sm_parse__xapi_dialect(void **state)
{
	struct sm_call c;
	struct sm_fault f = { 0 };

	assert_int_equal(sm_call_parse(&c, xapi_vdi_create, strlen(xapi_vdi_create), &f), 0);
	assert_string_equal(c.method, "vdi_create");
	assert_string_equal(c.command, "vdi_create");
	assert_string_equal(c.host_ref, "OpaqueRef:6d9f");
	assert_string_equal(c.session_ref, "OpaqueRef:c62e");
	assert_string_equal(c.sr_uuid, "976e0ed5-2901-47b0-8962-ad6e76d6b55a");
	assert_string_equal(c.vdi_type, "user");
	assert_int_equal(c.n_args, 8);
	assert_string_equal(c.args[0], "10737418240");
	assert_string_equal(c.args[1], "data & disk");
	assert_string_equal(c.args[2], ""); /* <value/> */
	assert_string_equal(c.args[5], "19700101T00:00:00Z");
	assert_int_equal(c.device_config.n, 3);
	assert_string_equal(c.device_config.kv[0].key, "SRmaster"); /* document order kept */
	assert_string_equal(sm_map_get(&c.device_config, "array"), "file:///srv/a");
	assert_int_equal(c.vdi_sm_config.n, 0);
	assert_null(c.vdi_uuid);
	sm_call_dispose(&c);
}

static void test_sm_parse__python_dialect(void **state)
{
	struct sm_call c;
	struct sm_fault f = { 0 };

	assert_int_equal(sm_call_parse(&c, python_detach, strlen(python_detach), &f), 0);
	assert_string_equal(c.method, "vdi_detach_from_config");
	assert_string_equal(c.vdi_uuid, "e25e1317-260a-4714-b7af-0ef32a87b1b1");
	assert_string_equal(sm_map_get(&c.device_config, "array"), "/srv/a");
	assert_null(c.session_ref);
	assert_int_equal(c.n_args, 0);
	sm_call_dispose(&c);
}

static void test_sm_parse__log_line_masks_secrets(void **state)
{
	struct sm_call c;
	struct sm_fault f = { 0 };

	assert_int_equal(sm_call_parse(&c, xapi_vdi_create, strlen(xapi_vdi_create), &f), 0);
	assert_non_null(c.log_line);
	assert_null(strstr(c.log_line, "Sup3rSecret"));
	assert_null(strstr(c.log_line, "OpaqueRef:c62e"));
	assert_non_null(strstr(c.log_line, "'password': '******'"));
	assert_non_null(strstr(c.log_line, "'session_ref': '******'"));
	assert_non_null(strstr(c.log_line, "vdi_create {'host_ref': 'OpaqueRef:6d9f'"));
	sm_call_dispose(&c);
}

static void expect_bad(const char *doc, const char *needle)
{
	struct sm_call c;
	struct sm_fault f = { 0 };

	if (sm_call_parse(&c, doc, strlen(doc), &f) != -1)
		fail_msg("parsed: %s", doc);
	assert_int_equal(f.code, SM_BAD_REQUEST);
	assert_non_null(strstr(f.msg, "Failed to parse the request [opterr="));
	if (needle && !strstr(f.msg, needle))
		fail_msg("'%s' does not mention '%s'", f.msg, needle);
	sm_call_dispose(&c);
}

static void test_sm_parse__malformed(void **state)
{
	char big[4096];
	size_t o;
	int i;

	expect_bad("", NULL);
	expect_bad("<methodCall><methodName>x</methodName>", NULL);
	expect_bad("<methodCall><methodName>x</methodName><params/></methodCall>", "one parameter");
	expect_bad("<methodCall><methodName>x</methodName><params><param><value>s</value></param>"
	           "</params></methodCall>",
	           "not a struct");
	expect_bad("<methodCall><methodName>x</methodName><params><param><value><struct><member>"
	           "<name>args</name><value>s</value></member></struct></value></param></params>"
	           "</methodCall>",
	           "args");
	expect_bad("<methodCall><methodName>x</methodName><params><param><value><struct><member>"
	           "<name>command</name><value>y</value></member></struct></value></param>"
	           "</params></methodCall>",
	           "differs");
	expect_bad("<methodCall><methodName>x</methodName><params><param><value><struct><member>"
	           "<name>device_config</name><value><struct><member><name>k</name><value><array>"
	           "<data/></array></value></member></struct></value></member></struct></value>"
	           "</param></params></methodCall>",
	           "device_config");
	/* more args than SM_ARGS_MAX */
	o = (size_t)snprintf(big, sizeof(big),
	                     "<methodCall><methodName>x</methodName><params>"
	                     "<param><value><struct><member><name>args</name>"
	                     "<value><array><data>");
	for (i = 0; i < SM_ARGS_MAX + 1; i++)
		o += (size_t)snprintf(big + o, sizeof(big) - o, "<value>%d</value>", i);
	(void)snprintf(big + o, sizeof(big) - o,
	               "</data></array></value></member></struct></value></param></params>"
	               "</methodCall>");
	expect_bad(big, "too many");
}

static void test_sm_fault__format(void **state)
{
	struct sm_fault f = { 0 };
	struct rp_error err = { 0 };

	assert_int_equal(sm_fault_set(&f, SM_VDI_CREATE, "backend said %d", 28), -1);
	assert_string_equal(f.msg, "VDI Creation failed [opterr=backend said 28]");
	sm_fault_set(&f, SM_GENERAL, "later");
	assert_int_equal(f.code, SM_VDI_CREATE); /* the first fault wins */
	memset(&f, 0, sizeof(f));
	sm_fault_set(&f, SM_UNIMPLEMENTED, NULL);
	assert_string_equal(f.msg, "The requested method is not supported/implemented");
	memset(&f, 0, sizeof(f));
	rp_error_set(&err, RP_EBUSY, "LUN 'x' presented to 'h'");
	sm_fault_from_rp(&f, SM_VDI_DELETE, &err);
	assert_int_equal(f.code, SM_VDI_IN_USE);
	memset(&f, 0, sizeof(f));
	rp_error_clear(&err);
	rp_error_set(&err, RP_ENOSPACE, "full");
	sm_fault_from_rp(&f, SM_VDI_CREATE, &err);
	assert_int_equal(f.code, SM_SR_NO_SPACE);
	assert_string_equal(sm_code_desc(12345), "General backend error");
}

static char *print_to_string(int (*fn)(FILE *, const void *), const void *arg)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&buf, &len);

	assert_non_null(fp);
	assert_int_equal(fn(fp, arg), 0);
	fclose(fp);
	return buf;
}

static int print_nil(FILE *fp, const void *arg)
{
	struct sm_fault f = { 0 };
	xmlrpc_value *v = sm_val_nil(&f);
	int rc = sm_print_response(fp, v);

	xmlrpc_DECREF(v);
	return rc;
}

static int print_fault(FILE *fp, const void *arg)
{
	return sm_print_fault(fp, arg);
}

static void test_sm_print__nil_and_fault(void **state)
{
	struct sm_fault f = { 0 };
	char *s = print_to_string(print_nil, NULL);

	assert_non_null(strstr(s, "<methodResponse>"));
	assert_non_null(strstr(s, "<value><nil/></value>"));
	free(s);
	sm_fault_set(&f, SM_VDI_MISSING, "no LUN for '%s'", "a&b");
	s = print_to_string(print_fault, &f);
	assert_non_null(strstr(s, "<fault>"));
	assert_non_null(strstr(s, "<i4>144</i4>"));
	assert_non_null(strstr(s, "VDI could not be found [opterr=no LUN for 'a&amp;b']"));
	free(s);
}

static void test_sm_struct__build_and_read(void **state)
{
	struct sm_fault f = { 0 };
	xmlrpc_value *st = sm_val_struct(&f);
	char *s;

	assert_non_null(st);
	assert_int_equal(sm_struct_str(st, "location", "loc", &f), 0);
	assert_int_equal(sm_struct_bool(st, "o_direct", true, &f), 0);
	s = sm_struct_get_str(st, "location");
	assert_string_equal(s, "loc");
	rp_free(s);
	assert_null(sm_struct_get_str(st, "o_direct")); /* not a string */
	assert_null(sm_struct_get_str(st, "absent"));
	xmlrpc_DECREF(st);
}

static void test_sm_util__uuid_size_escape(void **state)
{
	char u[SM_UUID_LEN + 1], out[32] = "";
	struct sm_fault f = { 0 };
	uint64_t v = 0;

	assert_int_equal(sm_uuid_new(u), 0);
	assert_true(sm_uuid_valid(u));
	assert_int_equal(u[14], '4');
	assert_false(sm_uuid_valid("e25e1317-260a-4714-b7af-0ef32a87b1b"));
	assert_false(sm_uuid_valid("e25e1317x260a-4714-b7af-0ef32a87b1b1"));
	assert_false(sm_uuid_valid(NULL));
	assert_int_equal(sm_u64_parse(&v, "10737418240", "size", &f), 0);
	assert_true(v == 10737418240ull);
	assert_int_equal(sm_u64_parse(&v, "-1", "size", &f), -1);
	assert_int_equal(f.code, SM_INVALID_ARG);
	f.code = 0;
	assert_int_equal(sm_u64_parse(&v, "12a", "size", &f), -1);
	f.code = 0;
	assert_int_equal(sm_u64_parse(&v, "99999999999999999999999", "size", &f), -1);
	f.code = 0;
	assert_int_equal(sm_u64_parse(&v, "", "size", &f), -1);
	assert_true(sm_bool("true") && sm_bool("1") && !sm_bool("false") && !sm_bool(NULL));
	assert_int_equal(sm_xml_escape(out, sizeof(out), "a<b>&\"c\x01"), 0);
	assert_string_equal(out, "a&lt;b&gt;&amp;&quot;c");
	assert_int_equal(sm_xml_escape(out, sizeof(out), "&&&&&&&&&&&&"), -1);
	assert_true(sm_log_key_secret("password") && sm_log_key_secret("chappassword") &&
	            sm_log_key_secret("cifs_secret") && !sm_log_key_secret("username"));
}

static void test_sm_lock__excludes_other_processes(void **state)
{
	char dir[] = "/tmp/sm-unit-lock.XXXXXX";
	struct sm_lock l = SM_LOCK_INIT, bad = SM_LOCK_INIT;
	struct sm_fault f = { 0 };
	int status = 0;
	pid_t pid;

	assert_non_null(mkdtemp(dir));
	setenv("REPLUN_LOCK_DIR", dir, 1);
	setenv("REPLUN_LOCK_TIMEOUT", "0", 1);
	assert_int_equal(sm_lock_acquire(&l, "976e0ed5-2901-47b0-8962-ad6e76d6b55a", "sr", &f), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct sm_lock c = SM_LOCK_INIT;
		struct sm_fault cf = { 0 };

		/* held by the parent: refused at once with LockErr */
		if (sm_lock_acquire(&c, "976e0ed5-2901-47b0-8962-ad6e76d6b55a", "sr", &cf) == 0 ||
		    cf.code != SM_LOCK_ERR)
			_exit(1);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	sm_lock_release(&l);
	pid = fork();
	if (pid == 0) {
		struct sm_lock c = SM_LOCK_INIT;
		struct sm_fault cf = { 0 };

		_exit(sm_lock_acquire(&c, "976e0ed5-2901-47b0-8962-ad6e76d6b55a", "sr", &cf) == 0
		              ? 0
		              : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0); /* free once released */
	assert_int_equal(sm_lock_acquire(&bad, "../etc", "sr", &f), -1);
	assert_int_equal(f.code, SM_LOCK_ERR);
	sm_lock_remove_ns("976e0ed5-2901-47b0-8962-ad6e76d6b55a");
	assert_int_equal(rmdir(dir), 0); /* the namespace went, nothing else was left */
	unsetenv("REPLUN_LOCK_DIR");
	unsetenv("REPLUN_LOCK_TIMEOUT");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sm_parse__xapi_dialect),
		cmocka_unit_test(test_sm_parse__python_dialect),
		cmocka_unit_test(test_sm_parse__log_line_masks_secrets),
		cmocka_unit_test(test_sm_parse__malformed),
		cmocka_unit_test(test_sm_fault__format),
		cmocka_unit_test(test_sm_print__nil_and_fault),
		cmocka_unit_test(test_sm_struct__build_and_read),
		cmocka_unit_test(test_sm_util__uuid_size_escape),
		cmocka_unit_test(test_sm_lock__excludes_other_processes),
	};

	return cmocka_run_group_tests_name("sm", tests, NULL, NULL);
}

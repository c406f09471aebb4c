/* SPDX-License-Identifier: MIT */
/*
 * sm_xapi.c - calls back into XAPI as sm does: XenAPI XML-RPC over HTTP POST on the local Unix
 * socket, with the session_ref XAPI passed in the call (the SM-only setters need it).
 * Transport: the warm replun-xapi-relay when there is one (sm_relay.c), else libcurl in this
 * process (CURLOPT_UNIX_SOCKET_PATH); bodies built and parsed with xmlrpc-c here either way.
 */
#include <stdlib.h>
#include <string.h>

#include "sm.h"
#include "sm_relay.h"

struct sm_xapi {
	CURL *curl;
	struct curl_slist *headers;
	char *session;
	char socket[256];
	char subtask[500]; /* Subtask-of header value, "" = none */
	char errbuf[CURL_ERROR_SIZE];
};

/* The in-process transport: libcurl, loaded now if the prefetch has not done it. */
static int xapi_curl_setup(struct sm_xapi *x, struct sm_fault *f)
{
	char hdr[600];

	if (x->curl)
		return 0;
	if (sm_curl_ready(f) < 0)
		return -1;
	x->curl = sm_curl.easy_init();
	if (!x->curl)
		return sm_fault_set(f, SM_API_SESSION, "cannot set up the XenAPI client");
	x->headers = sm_curl.slist_append(x->headers, "Content-Type: text/xml");
	x->headers = sm_curl.slist_append(x->headers, "Expect:");
	if (x->subtask[0]) {
		(void)snprintf(hdr, sizeof(hdr), "Subtask-of: %s", x->subtask);
		x->headers = sm_curl.slist_append(x->headers, hdr);
	}
	if (!x->headers)
		return sm_fault_set(f, SM_GENERAL, "out of memory");
	(void)sm_curl.easy_setopt(x->curl, CURLOPT_UNIX_SOCKET_PATH, x->socket);
	(void)sm_curl.easy_setopt(x->curl, CURLOPT_URL, "http://localhost/");
	(void)sm_curl.easy_setopt(x->curl, CURLOPT_HTTPHEADER, x->headers);
	(void)sm_curl.easy_setopt(x->curl, CURLOPT_USERAGENT, "ReplunSR/" REPLUN_SM_VERSION);
	(void)sm_curl.easy_setopt(x->curl, CURLOPT_ERRORBUFFER, x->errbuf);
	(void)sm_curl.easy_setopt(x->curl, CURLOPT_CONNECTTIMEOUT, 10L);
	(void)sm_curl.easy_setopt(x->curl, CURLOPT_TIMEOUT, 600L);
	(void)sm_curl.easy_setopt(x->curl, CURLOPT_NOSIGNAL, 1L);
	(void)sm_curl.easy_setopt(x->curl, CURLOPT_WRITEFUNCTION, sm_http_body_write);
	return 0;
}

int sm_xapi_open(struct sm_xapi **out, const char *session_ref, const char *subtask_of,
                 struct sm_fault *f)
{
	struct sm_xapi *x = NULL;
	const char *sock = getenv("REPLUN_XAPI_SOCKET");

	if (!session_ref || !*session_ref)
		return sm_fault_set(f, SM_API_SESSION, "the call carries no session_ref");
	x = rp_calloc(1, sizeof(*x));
	if (!x)
		return sm_fault_set(f, SM_GENERAL, "out of memory");
	if (rp_strlcpy(x->socket, sock && *sock ? sock : "/var/lib/xcp/xapi", sizeof(x->socket)) <
	    0) {
		sm_fault_set(f, SM_API_SESSION, "XAPI socket path too long");
		goto fail;
	}
	if (subtask_of && *subtask_of && sm_http_header_safe(subtask_of) &&
	    strlen(subtask_of) < 500)
		rp_strlcpy(x->subtask, subtask_of, sizeof(x->subtask));
	x->session = rp_strdup(session_ref);
	if (!x->session) {
		sm_fault_set(f, SM_GENERAL, "out of memory");
		goto fail;
	}
	/* a warm relay makes libcurl unnecessary in this process */
	if (sm_relay_open() < 0 && xapi_curl_setup(x, f) < 0)
		goto fail;
	*out = x;
	return 0;
fail:
	sm_xapi_close(x);
	return -1;
}

void sm_xapi_close(struct sm_xapi *x)
{
	if (!x)
		return;
	if (x->curl)
		sm_curl.easy_cleanup(x->curl);
	if (x->headers)
		sm_curl.slist_free_all(x->headers);
	rp_free(x->session);
	rp_free(x);
}

/* Renders ErrorDescription ["CODE", "p1", ...] as "CODE, p1, ..." into @buf. */
static void describe_failure(char *buf, size_t len, xmlrpc_env *env, xmlrpc_value *res)
{
	xmlrpc_value *ed = NULL;
	int i, n;

	rp_strlcpy(buf, "unknown failure", len);
	xmlrpc_struct_find_value(env, res, "ErrorDescription", &ed);
	if (env->fault_occurred || !ed || xmlrpc_value_type(ed) != XMLRPC_TYPE_ARRAY)
		goto out;
	buf[0] = '\0';
	n = xmlrpc_array_size(env, ed);
	for (i = 0; i < n && !env->fault_occurred; i++) {
		xmlrpc_value *item = NULL;
		const char *s = NULL;
		size_t o = strlen(buf);

		xmlrpc_array_read_item(env, ed, (unsigned)i, &item);
		if (env->fault_occurred)
			break;
		if (xmlrpc_value_type(item) == XMLRPC_TYPE_STRING)
			xmlrpc_read_string(env, item, &s);
		(void)snprintf(buf + o, len - o, "%s%s", i ? ", " : "", s ? s : "?");
		free((void *)s);
		xmlrpc_DECREF(item);
	}
out:
	if (ed)
		xmlrpc_DECREF(ed);
	xmlrpc_env_clean(env);
	xmlrpc_env_init(env);
}

/* POSTs @req with libcurl in this process (no relay). */
static int xapi_perform(struct sm_xapi *x, long *http, struct sm_http_body *b, const char *method,
                        xmlrpc_mem_block *req, struct sm_fault *f)
{
	CURLcode cc;

	if (xapi_curl_setup(x, f) < 0)
		return -1;
	(void)sm_curl.easy_setopt(x->curl, CURLOPT_POSTFIELDS, xmlrpc_mem_block_contents(req));
	(void)sm_curl.easy_setopt(x->curl, CURLOPT_POSTFIELDSIZE, (long)xmlrpc_mem_block_size(req));
	(void)sm_curl.easy_setopt(x->curl, CURLOPT_WRITEDATA, b);
	x->errbuf[0] = '\0';
	cc = sm_curl.easy_perform(x->curl);
	if (cc != CURLE_OK)
		return sm_fault_set(
		        f, SM_API_SESSION, "%s via '%s': %s", method, x->socket,
		        b->toobig ? "answer too large"
		                  : (x->errbuf[0] ? x->errbuf : sm_curl.easy_strerror(cc)));
	(void)sm_curl.easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, http);
	return 0;
}

int sm_xapi_call(struct sm_xapi *x, xmlrpc_value **out, const char *method, xmlrpc_value *params,
                 struct sm_fault *f)
{
	xmlrpc_env env;
	xmlrpc_value *all = NULL, *sess = NULL, *res = NULL, *val = NULL;
	xmlrpc_mem_block *req = NULL;
	struct sm_http_body b = { 0 };
	const char *fstr = NULL;
	char *status = NULL;
	char detail[600];
	int fcode = 0, i, n, rc = -1;
	long http = 0;

	xmlrpc_env_init(&env);
	all = xmlrpc_array_new(&env);
	sess = xmlrpc_string_new(&env, x->session);
	xmlrpc_array_append_item(&env, all, sess);
	n = params ? xmlrpc_array_size(&env, params) : 0;
	for (i = 0; i < n && !env.fault_occurred; i++) {
		xmlrpc_value *p = NULL;

		xmlrpc_array_read_item(&env, params, (unsigned)i, &p);
		if (env.fault_occurred)
			break;
		xmlrpc_array_append_item(&env, all, p);
		xmlrpc_DECREF(p);
	}
	req = xmlrpc_mem_block_new(&env, 0);
	if (!env.fault_occurred)
		xmlrpc_serialize_call(&env, req, method, all);
	if (env.fault_occurred) {
		sm_fault_set(f, SM_GENERAL, "building %s: %s", method, env.fault_string);
		goto out;
	}
	rc = sm_relay_post(x->socket, x->subtask, xmlrpc_mem_block_contents(req),
	                   xmlrpc_mem_block_size(req), method, &http, &b.p, &b.len, f);
	if (rc < 0)
		goto out;
	if (rc > 0 && xapi_perform(x, &http, &b, method, req, f) < 0) {
		rc = -1;
		goto out;
	}
	rc = -1;
	if (http != 200 || !b.p) {
		sm_fault_set(f, SM_API_SESSION, "%s: HTTP status %ld", method, http);
		goto out;
	}
	xmlrpc_limit_set(XMLRPC_XML_SIZE_LIMIT_ID, SM_XML_MAX);
	xmlrpc_parse_response2(&env, b.p, b.len, &res, &fcode, &fstr);
	if (env.fault_occurred) {
		sm_fault_set(f, SM_API_FAILURE, "%s: bad answer: %s", method, env.fault_string);
		goto out;
	}
	if (fstr) {
		sm_fault_set(f, SM_API_FAILURE, "%s: fault %d: %s", method, fcode, fstr);
		goto out;
	}
	status = sm_struct_get_str(res, "Status");
	if (!status || strcmp(status, "Success") != 0) {
		describe_failure(detail, sizeof(detail), &env, res);
		sm_fault_set(f, SM_API_FAILURE, "%s: %s", method, detail);
		goto out;
	}
	xmlrpc_struct_find_value(&env, res, "Value", &val);
	if (env.fault_occurred) {
		sm_fault_set(f, SM_API_FAILURE, "%s: bad answer", method);
		goto out;
	}
	if (out) {
		if (!val) {
			sm_fault_set(f, SM_API_FAILURE, "%s: answer has no Value", method);
			goto out;
		}
		*out = val;
		val = NULL;
	}
	rc = 0;
out:
	if (val)
		xmlrpc_DECREF(val);
	if (res)
		xmlrpc_DECREF(res);
	if (sess)
		xmlrpc_DECREF(sess);
	if (all)
		xmlrpc_DECREF(all);
	if (req)
		xmlrpc_mem_block_free(req);
	free((void *)fstr);
	rp_free(status);
	rp_free(b.p);
	xmlrpc_env_clean(&env);
	return rc;
}

/* Appends helpers: each consumes nothing; errors surface through env. */
static void add_str(xmlrpc_env *env, xmlrpc_value *a, const char *s)
{
	xmlrpc_value *v = xmlrpc_string_new(env, s ? s : "");

	if (!env->fault_occurred) {
		xmlrpc_array_append_item(env, a, v);
		xmlrpc_DECREF(v);
	}
}

static void add_bool(xmlrpc_env *env, xmlrpc_value *a, bool b)
{
	xmlrpc_value *v = xmlrpc_bool_new(env, b);

	if (!env->fault_occurred) {
		xmlrpc_array_append_item(env, a, v);
		xmlrpc_DECREF(v);
	}
}

static void add_u64(xmlrpc_env *env, xmlrpc_value *a, uint64_t n)
{
	char buf[32];

	(void)snprintf(buf, sizeof(buf), "%llu", (unsigned long long)n);
	add_str(env, a, buf);
}

static void add_map(xmlrpc_env *env, xmlrpc_value *a, const struct sm_map *m)
{
	xmlrpc_value *st = xmlrpc_struct_new(env);
	size_t i;

	for (i = 0; m && i < m->n && !env->fault_occurred; i++) {
		xmlrpc_value *v = xmlrpc_string_new(env, m->kv[i].value);

		if (env->fault_occurred)
			break;
		xmlrpc_struct_set_value(env, st, m->kv[i].key, v);
		xmlrpc_DECREF(v);
	}
	if (!env->fault_occurred)
		xmlrpc_array_append_item(env, a, st);
	if (st)
		xmlrpc_DECREF(st);
}

/* XAPI's dateTime is "YYYYMMDDTHH:MM:SSZ"; xmlrpc-c wants it without the zone. */
static void add_time(xmlrpc_env *env, xmlrpc_value *a, const char *t)
{
	char buf[32];
	xmlrpc_value *v;

	rp_strlcpy(buf, t && strlen(t) >= 17 ? t : "19700101T00:00:00Z", sizeof(buf));
	if (strlen(buf) == 18 && buf[17] == 'Z')
		buf[17] = '\0';
	v = xmlrpc_datetime_new_str(env, buf);
	if (env->fault_occurred) {
		xmlrpc_env_clean(env);
		xmlrpc_env_init(env);
		v = xmlrpc_datetime_new_str(env, "19700101T00:00:00");
	}
	if (!env->fault_occurred) {
		xmlrpc_array_append_item(env, a, v);
		xmlrpc_DECREF(v);
	}
}

int sm_xapi_call_strs(struct sm_xapi *x, xmlrpc_value **out, const char *method,
                      const char *const *args, size_t n, struct sm_fault *f)
{
	xmlrpc_env env;
	xmlrpc_value *p;
	size_t i;
	int rc = -1;

	xmlrpc_env_init(&env);
	p = xmlrpc_array_new(&env);
	for (i = 0; i < n && !env.fault_occurred; i++)
		add_str(&env, p, args[i]);
	if (!env.fault_occurred)
		rc = sm_xapi_call(x, out, method, p, f);
	else
		sm_fault_set(f, SM_GENERAL, "building %s: %s", method, env.fault_string);
	if (p)
		xmlrpc_DECREF(p);
	xmlrpc_env_clean(&env);
	return rc;
}

int sm_xapi_get_str(struct sm_xapi *x, const char *method, const char *arg, char **out,
                    struct sm_fault *f)
{
	xmlrpc_env env;
	xmlrpc_value *v = NULL;
	const char *s = NULL;
	int rc = -1;

	*out = NULL;
	if (sm_xapi_call_strs(x, &v, method, &arg, 1, f) < 0)
		return -1;
	xmlrpc_env_init(&env);
	if (xmlrpc_value_type(v) == XMLRPC_TYPE_STRING)
		xmlrpc_read_string(&env, v, &s);
	if (!s || env.fault_occurred)
		sm_fault_set(f, SM_API_FAILURE, "%s: answer is not a string", method);
	else if (!(*out = rp_strdup(s)))
		sm_fault_set(f, SM_GENERAL, "out of memory");
	else
		rc = 0;
	free((void *)s);
	xmlrpc_DECREF(v);
	xmlrpc_env_clean(&env);
	return rc;
}

/*
 * After a failed VDI.db_introduce: whether XAPI already has the record it would have made (the
 * same uuid, SR and location). 0 with *ref (owned by the caller) when it does, -1 otherwise.
 */
static int vdi_already_introduced(struct sm_xapi *x, char **ref, const struct sm_vdi_rec *v)
{
	struct sm_fault lf = { 0 };
	char *sr = NULL, *loc = NULL;
	int rc = -1;

	if (sm_xapi_get_str(x, "VDI.get_by_uuid", v->uuid, ref, &lf) < 0)
		return -1;
	if (sm_xapi_get_str(x, "VDI.get_SR", *ref, &sr, &lf) == 0 && strcmp(sr, v->sr_ref) == 0 &&
	    sm_xapi_get_str(x, "VDI.get_location", *ref, &loc, &lf) == 0 &&
	    strcmp(loc, v->location) == 0)
		rc = 0;
	rp_free(sr);
	rp_free(loc);
	if (rc < 0) {
		rp_free(*ref);
		*ref = NULL;
	}
	return rc;
}

int sm_xapi_vdi_introduce(struct sm_xapi *x, char **vdi_ref, const struct sm_vdi_rec *v,
                          struct sm_fault *f)
{
	xmlrpc_env env;
	xmlrpc_value *p, *res = NULL;
	int rc = -1;

	xmlrpc_env_init(&env);
	p = xmlrpc_array_new(&env);
	add_str(&env, p, v->uuid);
	add_str(&env, p, v->name_label);
	add_str(&env, p, v->name_description);
	add_str(&env, p, v->sr_ref);
	add_str(&env, p, v->type ? v->type : "user");
	add_bool(&env, p, false); /* sharable */
	add_bool(&env, p, v->read_only);
	add_map(&env, p, NULL); /* other_config */
	add_str(&env, p, v->location);
	add_map(&env, p, NULL); /* xenstore_data */
	add_map(&env, p, v->sm_config);
	add_bool(&env, p, true); /* managed */
	add_u64(&env, p, v->virtual_size);
	add_u64(&env, p, v->physical_utilisation);
	add_str(&env, p, "OpaqueRef:NULL"); /* metadata_of_pool */
	add_bool(&env, p, v->is_a_snapshot);
	add_time(&env, p, v->snapshot_time);
	add_str(&env, p, v->snapshot_of && *v->snapshot_of ? v->snapshot_of : "OpaqueRef:NULL");
	add_bool(&env, p, false); /* cbt_enabled */
	if (env.fault_occurred) {
		sm_fault_set(f, SM_GENERAL, "building VDI.db_introduce: %s", env.fault_string);
		goto out;
	}
	if (sm_xapi_call(x, &res, "VDI.db_introduce", p, f) < 0) {
		char *known = NULL;

		/* e.g. a retry after a relay lost mid-call: the first post may have landed */
		if (vdi_already_introduced(x, &known, v) < 0)
			goto out;
		sm_log("VDI.db_introduce of '%s' failed (%s), but XAPI has the record: kept",
		       v->uuid, f->msg);
		f->code = 0;
		f->msg[0] = '\0';
		if (vdi_ref)
			*vdi_ref = known;
		else
			rp_free(known);
		rc = 0;
		goto out;
	}
	if (vdi_ref) {
		const char *s = NULL;

		if (xmlrpc_value_type(res) == XMLRPC_TYPE_STRING)
			xmlrpc_read_string(&env, res, &s);
		*vdi_ref = rp_strdup(s ? s : "");
		free((void *)s);
	}
	rc = 0;
out:
	if (res)
		xmlrpc_DECREF(res);
	if (p)
		xmlrpc_DECREF(p);
	xmlrpc_env_clean(&env);
	return rc;
}

int sm_xapi_vdi_forget(struct sm_xapi *x, const char *vdi_ref, struct sm_fault *f)
{
	return sm_xapi_call_strs(x, NULL, "VDI.db_forget", &vdi_ref, 1, f);
}

int sm_xapi_set_int(struct sm_xapi *x, const char *method, const char *ref, uint64_t value,
                    struct sm_fault *f)
{
	char buf[32];

	(void)snprintf(buf, sizeof(buf), "%llu", (unsigned long long)value);
	return sm_xapi_set_str(x, method, ref, buf, f);
}

int sm_xapi_set_str(struct sm_xapi *x, const char *method, const char *ref, const char *value,
                    struct sm_fault *f)
{
	const char *args[2] = { ref, value };

	return sm_xapi_call_strs(x, NULL, method, args, 2, f);
}

/* SPDX-License-Identifier: MIT */
/*
 * sm_xmlrpc.c - the wire: parses XAPI's methodCall (XAPI's one-line dialect and Python's) into
 * struct sm_call, prints the methodResponse or fault, builds values, names sm's fault codes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sm.h"

static const struct {
	int code;
	const char *desc;
} sm_codes[] = {
	{ SM_INVALID_ARG, "Invalid argument" },
	{ SM_SR_IN_USE, "The SR device is currently in use" },
	{ SM_VDI_IN_USE, "The VDI is currently in use" },
	{ SM_LOCK_ERR, "The lock/unlock request failed" },
	{ SM_UNIMPLEMENTED, "The requested method is not supported/implemented" },
	{ SM_SR_NOT_EMPTY, "The SR is not empty" },
	{ SM_SR_SCAN, "The SR scan failed" },
	{ SM_SR_EXISTS, "The SR already exists" },
	{ SM_VDI_EXISTS, "The VDI already exists" },
	{ SM_SR_NO_SPACE, "There is insufficient space" },
	{ SM_VDI_UNAVAILABLE, "The VDI is not available" },
	{ SM_SR_UNAVAILABLE, "The SR is not available" },
	{ SM_VDI_LOAD, "Failed to load VDI" },
	{ SM_VDI_CREATE, "VDI Creation failed" },
	{ SM_VDI_SIZE, "VDI Invalid size" },
	{ SM_VDI_DELETE, "Failed to mark VDI hidden" },
	{ SM_VDI_CLONE, "Failed to clone VDI" },
	{ SM_VDI_SNAPSHOT, "Failed to snapshot VDI" },
	{ SM_VDI_RESIZE, "VDI resize failed" },
	{ SM_CONFIG_PARAMS_MISSING, "Not all required parameters specified." },
	{ SM_BAD_REQUEST, "Failed to parse the request" },
	{ SM_VDI_MISSING, "VDI could not be found" },
	{ SM_API_SESSION, "Failed to initialize XMLRPC connection" },
	{ SM_API_FAILURE, "A Failure occurred accessing an API object" },
	{ SM_GENERAL, "General backend error" },
	{ SM_TAPDISK_FAILED, "tapdisk experienced an error" },
};

const char *sm_code_desc(int code)
{
	size_t i;

	for (i = 0; i < sizeof(sm_codes) / sizeof(sm_codes[0]); i++)
		if (sm_codes[i].code == code)
			return sm_codes[i].desc;
	return "General backend error";
}

int sm_fault_set(struct sm_fault *f, int code, const char *fmt, ...)
{
	char detail[768];
	va_list ap;

	if (!f || f->code != 0)
		return -1;
	f->code = code;
	if (!fmt) {
		(void)snprintf(f->msg, sizeof(f->msg), "%s", sm_code_desc(code));
		return -1;
	}
	va_start(ap, fmt);
	(void)vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	(void)snprintf(f->msg, sizeof(f->msg), "%s [opterr=%s]", sm_code_desc(code), detail);
	return -1;
}

int sm_fault_from_rp(struct sm_fault *f, int code, const struct rp_error *err)
{
	int c = code;

	switch (err->code) {
	case RP_EBUSY:
		c = code == SM_SR_SCAN ? code : SM_VDI_IN_USE;
		break;
	case RP_ENOSPACE:
		c = SM_SR_NO_SPACE;
		break;
	case RP_EEXISTS:
		c = code == SM_VDI_CREATE ? SM_VDI_EXISTS : code;
		break;
	default:
		break;
	}
	return sm_fault_set(f, c, "%s", err->msg[0] ? err->msg : rp_code_name(err->code));
}

/* ------------------------------------------------------------------------------------------ */
/* Maps                                                                                        */

const char *sm_map_get(const struct sm_map *m, const char *key)
{
	size_t i;

	for (i = 0; i < m->n; i++)
		if (strcmp(m->kv[i].key, key) == 0)
			return m->kv[i].value;
	return NULL;
}

void sm_map_dispose(struct sm_map *m)
{
	size_t i;

	for (i = 0; i < m->n; i++) {
		rp_free(m->kv[i].key);
		rp_free(m->kv[i].value);
	}
	rp_freep(&m->kv);
	m->n = 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Parsing                                                                                     */

/* Copies a scalar as a string: strings as they are, booleans "true"/"false", ints decimal. */
static int val_to_str(char **out, xmlrpc_env *env, xmlrpc_value *v, const char *what,
                      struct sm_fault *f)
{
	const char *s = NULL;
	size_t len = 0;
	char buf[32];

	switch (xmlrpc_value_type(v)) {
	case XMLRPC_TYPE_STRING:
		xmlrpc_read_string_lp(env, v, &len, &s);
		if (env->fault_occurred)
			return sm_fault_set(f, SM_BAD_REQUEST, "%s: %s", what, env->fault_string);
		if (len > SM_STR_MAX || memchr(s, '\0', len)) {
			free((void *)s);
			return sm_fault_set(f, SM_BAD_REQUEST, "%s: string too long or holds NUL",
			                    what);
		}
		*out = rp_strdup(s);
		free((void *)s);
		break;
	case XMLRPC_TYPE_BOOL: {
		xmlrpc_bool b = 0;

		xmlrpc_read_bool(env, v, &b);
		*out = rp_strdup(b ? "true" : "false");
		break;
	}
	case XMLRPC_TYPE_INT: {
		int i = 0;

		xmlrpc_read_int(env, v, &i);
		(void)snprintf(buf, sizeof(buf), "%d", i);
		*out = rp_strdup(buf);
		break;
	}
	case XMLRPC_TYPE_I8: {
		xmlrpc_int64 i = 0;

		xmlrpc_read_i8(env, v, &i);
		(void)snprintf(buf, sizeof(buf), "%lld", (long long)i);
		*out = rp_strdup(buf);
		break;
	}
	default:
		return sm_fault_set(f, SM_BAD_REQUEST, "%s: expected a string", what);
	}
	if (env->fault_occurred)
		return sm_fault_set(f, SM_BAD_REQUEST, "%s: %s", what, env->fault_string);
	if (!*out)
		return sm_fault_set(f, SM_GENERAL, "out of memory");
	return 0;
}

static int parse_map(struct sm_map *m, xmlrpc_env *env, xmlrpc_value *v, const char *what,
                     struct sm_fault *f)
{
	int i, n;

	if (xmlrpc_value_type(v) != XMLRPC_TYPE_STRUCT)
		return sm_fault_set(f, SM_BAD_REQUEST, "%s: expected a struct", what);
	n = xmlrpc_struct_size(env, v);
	if (env->fault_occurred || n < 0 || n > SM_MAP_MAX)
		return sm_fault_set(f, SM_BAD_REQUEST, "%s: too many members", what);
	if (n == 0)
		return 0;
	m->kv = rp_calloc((size_t)n, sizeof(*m->kv));
	if (!m->kv)
		return sm_fault_set(f, SM_GENERAL, "out of memory");
	for (i = 0; i < n; i++) {
		xmlrpc_value *k = NULL, *val = NULL;
		int rc;

		xmlrpc_struct_read_member(env, v, (unsigned)i, &k, &val);
		if (env->fault_occurred)
			return sm_fault_set(f, SM_BAD_REQUEST, "%s: %s", what, env->fault_string);
		rc = val_to_str(&m->kv[m->n].key, env, k, what, f);
		if (rc == 0)
			rc = val_to_str(&m->kv[m->n].value, env, val, what, f);
		m->n++;
		xmlrpc_DECREF(k);
		xmlrpc_DECREF(val);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static const struct {
	const char *name;
	size_t off;
} call_strings[] = {
	{ "command", offsetof(struct sm_call, command) },
	{ "host_ref", offsetof(struct sm_call, host_ref) },
	{ "session_ref", offsetof(struct sm_call, session_ref) },
	{ "sr_ref", offsetof(struct sm_call, sr_ref) },
	{ "sr_uuid", offsetof(struct sm_call, sr_uuid) },
	{ "vdi_ref", offsetof(struct sm_call, vdi_ref) },
	{ "vdi_location", offsetof(struct sm_call, vdi_location) },
	{ "vdi_uuid", offsetof(struct sm_call, vdi_uuid) },
	{ "vdi_type", offsetof(struct sm_call, vdi_type) },
	{ "new_uuid", offsetof(struct sm_call, new_uuid) },
	{ "subtask_of", offsetof(struct sm_call, subtask_of) },
	{ "vdi_on_boot", offsetof(struct sm_call, vdi_on_boot) },
	{ "vdi_allow_caching", offsetof(struct sm_call, vdi_allow_caching) },
	{ "local_cache_sr", offsetof(struct sm_call, local_cache_sr) },
};

static const struct {
	const char *name;
	size_t off;
} call_maps[] = {
	{ "device_config", offsetof(struct sm_call, device_config) },
	{ "sr_sm_config", offsetof(struct sm_call, sr_sm_config) },
	{ "vdi_sm_config", offsetof(struct sm_call, vdi_sm_config) },
	{ "driver_params", offsetof(struct sm_call, driver_params) },
};

static int parse_args(struct sm_call *c, xmlrpc_env *env, xmlrpc_value *v, struct sm_fault *f)
{
	int i, n;

	if (xmlrpc_value_type(v) != XMLRPC_TYPE_ARRAY)
		return sm_fault_set(f, SM_BAD_REQUEST, "args: expected an array");
	n = xmlrpc_array_size(env, v);
	if (env->fault_occurred || n < 0 || n > SM_ARGS_MAX)
		return sm_fault_set(f, SM_BAD_REQUEST, "args: too many values");
	for (i = 0; i < n; i++) {
		xmlrpc_value *a = NULL;
		int rc;

		xmlrpc_array_read_item(env, v, (unsigned)i, &a);
		if (env->fault_occurred)
			return sm_fault_set(f, SM_BAD_REQUEST, "args: %s", env->fault_string);
		rc = val_to_str(&c->args[c->n_args], env, a, "args", f);
		xmlrpc_DECREF(a);
		if (rc < 0)
			return rc;
		c->n_args++;
	}
	return 0;
}

static int parse_member(struct sm_call *c, xmlrpc_env *env, const char *name, xmlrpc_value *v,
                        struct sm_fault *f)
{
	size_t i;

	if (strcmp(name, "args") == 0)
		return parse_args(c, env, v, f);
	for (i = 0; i < sizeof(call_maps) / sizeof(call_maps[0]); i++) {
		if (strcmp(name, call_maps[i].name) == 0) {
			struct sm_map *m = (struct sm_map *)((char *)c + call_maps[i].off);

			if (m->n)
				return sm_fault_set(f, SM_BAD_REQUEST, "member '%s' repeated",
				                    name);
			return parse_map(m, env, v, name, f);
		}
	}
	for (i = 0; i < sizeof(call_strings) / sizeof(call_strings[0]); i++) {
		if (strcmp(name, call_strings[i].name) == 0) {
			char **dst = (char **)((char *)c + call_strings[i].off);

			if (*dst)
				return sm_fault_set(f, SM_BAD_REQUEST, "member '%s' repeated",
				                    name);
			return val_to_str(dst, env, v, name, f);
		}
	}
	return 0; /* members we do not know are tolerated (newer XAPI, private keys) */
}

/* ------------------------------------------------------------------------------------------ */
/* Rendering the call for SMlog with secrets masked                                            */

struct sbuf {
	char *p;
	size_t len, cap;
	bool full;
};

static void sb_add(struct sbuf *b, const char *s, size_t n)
{
	if (b->full)
		return;
	if (b->len + n + 4 > b->cap) {
		n = b->cap > b->len + 4 ? b->cap - b->len - 4 : 0;
		b->full = true;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	if (b->full) {
		memcpy(b->p + b->len, "...", 3);
		b->len += 3;
	}
	b->p[b->len] = '\0';
}

static void sb_str(struct sbuf *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

/* Quoted, with control characters shown as '?' so a record stays on one line. */
static void sb_quoted(struct sbuf *b, const char *s, size_t n)
{
	size_t i;

	sb_add(b, "'", 1);
	for (i = 0; i < n; i++) {
		char ch = (unsigned char)s[i] < 0x20 ? '?' : s[i];

		sb_add(b, &ch, 1);
	}
	sb_add(b, "'", 1);
}

static void render(struct sbuf *b, xmlrpc_env *env, xmlrpc_value *v, int depth)
{
	int i, n;

	if (depth > 8) {
		sb_str(b, "...");
		return;
	}
	switch (xmlrpc_value_type(v)) {
	case XMLRPC_TYPE_STRING: {
		const char *s = NULL;
		size_t len = 0;

		xmlrpc_read_string_lp(env, v, &len, &s);
		if (env->fault_occurred) {
			xmlrpc_env_clean(env);
			xmlrpc_env_init(env);
			sb_str(b, "?");
			return;
		}
		sb_quoted(b, s, len);
		free((void *)s);
		return;
	}
	case XMLRPC_TYPE_ARRAY:
		n = xmlrpc_array_size(env, v);
		sb_str(b, "[");
		for (i = 0; i < n && !env->fault_occurred; i++) {
			xmlrpc_value *a = NULL;

			xmlrpc_array_read_item(env, v, (unsigned)i, &a);
			if (env->fault_occurred)
				break;
			if (i)
				sb_str(b, ", ");
			render(b, env, a, depth + 1);
			xmlrpc_DECREF(a);
		}
		sb_str(b, "]");
		return;
	case XMLRPC_TYPE_STRUCT:
		n = xmlrpc_struct_size(env, v);
		sb_str(b, "{");
		for (i = 0; i < n && !env->fault_occurred; i++) {
			xmlrpc_value *k = NULL, *val = NULL;
			const char *key = NULL;

			xmlrpc_struct_read_member(env, v, (unsigned)i, &k, &val);
			if (env->fault_occurred)
				break;
			xmlrpc_read_string(env, k, &key);
			if (i)
				sb_str(b, ", ");
			if (env->fault_occurred || !key) {
				sb_str(b, "?");
			} else {
				sb_quoted(b, key, strlen(key));
				sb_str(b, ": ");
				/* session refs and secrets are never logged (sm hides them too) */
				if (strcmp(key, "session_ref") == 0 || sm_log_key_secret(key))
					sb_str(b, "'******'");
				else
					render(b, env, val, depth + 1);
			}
			free((void *)key);
			xmlrpc_DECREF(k);
			xmlrpc_DECREF(val);
		}
		sb_str(b, "}");
		return;
	case XMLRPC_TYPE_BOOL: {
		xmlrpc_bool x = 0;

		xmlrpc_read_bool(env, v, &x);
		sb_str(b, x ? "True" : "False");
		return;
	}
	case XMLRPC_TYPE_NIL:
		sb_str(b, "None");
		return;
	default: {
		char num[32];
		int x = 0;

		if (xmlrpc_value_type(v) == XMLRPC_TYPE_INT) {
			xmlrpc_read_int(env, v, &x);
			(void)snprintf(num, sizeof(num), "%d", x);
			sb_str(b, num);
		} else {
			sb_str(b, "<value>");
		}
		return;
	}
	}
}

int sm_call_parse(struct sm_call *c, const char *xml, size_t len, struct sm_fault *f)
{
	xmlrpc_env env;
	xmlrpc_value *params = NULL, *st = NULL;
	const char *method = NULL;
	struct sbuf b = { 0 };
	int rc = -1, i, n;

	memset(c, 0, sizeof(*c));
	xmlrpc_env_init(&env);
	if (len > SM_XML_MAX) {
		sm_fault_set(f, SM_BAD_REQUEST, "request of %zu bytes is over the limit", len);
		goto out;
	}
	xmlrpc_limit_set(XMLRPC_XML_SIZE_LIMIT_ID, SM_XML_MAX);
	xmlrpc_parse_call(&env, xml, len, &method, &params);
	if (env.fault_occurred) {
		sm_fault_set(f, SM_BAD_REQUEST, "%s", env.fault_string);
		goto out;
	}
	if (strlen(method) == 0 || strlen(method) > 64) {
		sm_fault_set(f, SM_BAD_REQUEST, "bad methodName");
		goto out;
	}
	c->method = rp_strdup(method);
	if (!c->method) {
		sm_fault_set(f, SM_GENERAL, "out of memory");
		goto out;
	}
	if (xmlrpc_array_size(&env, params) != 1) {
		sm_fault_set(f, SM_BAD_REQUEST, "expected one parameter (a struct), got %d",
		             xmlrpc_array_size(&env, params));
		goto out;
	}
	xmlrpc_array_read_item(&env, params, 0, &st);
	if (env.fault_occurred || xmlrpc_value_type(st) != XMLRPC_TYPE_STRUCT) {
		sm_fault_set(f, SM_BAD_REQUEST, "the parameter is not a struct");
		goto out;
	}
	n = xmlrpc_struct_size(&env, st);
	for (i = 0; i < n; i++) {
		xmlrpc_value *k = NULL, *v = NULL;
		const char *name = NULL;
		int r;

		xmlrpc_struct_read_member(&env, st, (unsigned)i, &k, &v);
		if (env.fault_occurred) {
			sm_fault_set(f, SM_BAD_REQUEST, "%s", env.fault_string);
			goto out;
		}
		xmlrpc_read_string(&env, k, &name);
		r = env.fault_occurred ? sm_fault_set(f, SM_BAD_REQUEST, "bad member name")
		                       : parse_member(c, &env, name, v, f);
		free((void *)name);
		xmlrpc_DECREF(k);
		xmlrpc_DECREF(v);
		if (r < 0)
			goto out;
	}
	if (c->command && strcmp(c->command, c->method) != 0) {
		sm_fault_set(f, SM_BAD_REQUEST, "command '%s' differs from methodName '%s'",
		             c->command, c->method);
		goto out;
	}
	b.cap = 8192;
	b.p = rp_malloc(b.cap);
	if (b.p) {
		b.p[0] = '\0';
		sb_str(&b, c->method);
		sb_str(&b, " ");
		render(&b, &env, st, 0);
		c->log_line = b.p;
	}
	rc = 0;
out:
	if (st)
		xmlrpc_DECREF(st);
	if (params)
		xmlrpc_DECREF(params);
	free((void *)method);
	xmlrpc_env_clean(&env);
	return rc;
}

void sm_call_dispose(struct sm_call *c)
{
	size_t i;

	for (i = 0; i < sizeof(call_strings) / sizeof(call_strings[0]); i++)
		rp_freep((char *)c + call_strings[i].off);
	for (i = 0; i < sizeof(call_maps) / sizeof(call_maps[0]); i++)
		sm_map_dispose((struct sm_map *)((char *)c + call_maps[i].off));
	for (i = 0; i < c->n_args; i++)
		rp_freep(&c->args[i]);
	c->n_args = 0;
	rp_freep(&c->method);
	rp_freep(&c->log_line);
}

/* ------------------------------------------------------------------------------------------ */
/* Printing                                                                                    */

static int print_block(FILE *out, xmlrpc_mem_block *mb)
{
	size_t n = xmlrpc_mem_block_size(mb);

	if (fwrite(xmlrpc_mem_block_contents(mb), 1, n, out) != n || fflush(out) != 0)
		return -1;
	return 0;
}

int sm_print_response(FILE *out, xmlrpc_value *result)
{
	xmlrpc_env env;
	xmlrpc_mem_block *mb;
	int rc = -1;

	xmlrpc_env_init(&env);
	mb = xmlrpc_mem_block_new(&env, 0);
	if (!env.fault_occurred)
		xmlrpc_serialize_response(&env, mb, result);
	if (!env.fault_occurred)
		rc = print_block(out, mb);
	if (mb)
		xmlrpc_mem_block_free(mb);
	xmlrpc_env_clean(&env);
	return rc;
}

int sm_print_fault(FILE *out, const struct sm_fault *f)
{
	xmlrpc_env env, fault;
	xmlrpc_mem_block *mb;
	int rc = -1;

	xmlrpc_env_init(&env);
	xmlrpc_env_init(&fault);
	xmlrpc_env_set_fault(&fault, f->code ? f->code : SM_GENERAL,
	                     f->msg[0] ? f->msg : sm_code_desc(SM_GENERAL));
	mb = xmlrpc_mem_block_new(&env, 0);
	if (!env.fault_occurred)
		xmlrpc_serialize_fault(&env, mb, &fault);
	if (!env.fault_occurred)
		rc = print_block(out, mb);
	if (mb)
		xmlrpc_mem_block_free(mb);
	xmlrpc_env_clean(&fault);
	xmlrpc_env_clean(&env);
	return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Builders                                                                                    */

static xmlrpc_value *checked(xmlrpc_env *env, xmlrpc_value *v, struct sm_fault *f)
{
	if (env->fault_occurred) {
		sm_fault_set(f, SM_GENERAL, "xml-rpc: %s", env->fault_string);
		if (v)
			xmlrpc_DECREF(v);
		v = NULL;
	}
	xmlrpc_env_clean(env);
	return v;
}

xmlrpc_value *sm_val_nil(struct sm_fault *f)
{
	xmlrpc_env env;

	xmlrpc_env_init(&env);
	return checked(&env, xmlrpc_nil_new(&env), f);
}

xmlrpc_value *sm_val_string(const char *s, struct sm_fault *f)
{
	xmlrpc_env env;

	xmlrpc_env_init(&env);
	return checked(&env, xmlrpc_string_new(&env, s ? s : ""), f);
}

xmlrpc_value *sm_val_struct(struct sm_fault *f)
{
	xmlrpc_env env;

	xmlrpc_env_init(&env);
	return checked(&env, xmlrpc_struct_new(&env), f);
}

int sm_struct_take(xmlrpc_value *st, const char *key, xmlrpc_value *val, struct sm_fault *f)
{
	xmlrpc_env env;
	int rc = 0;

	if (!val)
		return -1;
	xmlrpc_env_init(&env);
	xmlrpc_struct_set_value(&env, st, key, val);
	if (env.fault_occurred)
		rc = sm_fault_set(f, SM_GENERAL, "xml-rpc: %s", env.fault_string);
	xmlrpc_DECREF(val);
	xmlrpc_env_clean(&env);
	return rc;
}

int sm_struct_str(xmlrpc_value *st, const char *key, const char *val, struct sm_fault *f)
{
	return sm_struct_take(st, key, sm_val_string(val, f), f);
}

int sm_struct_bool(xmlrpc_value *st, const char *key, bool val, struct sm_fault *f)
{
	xmlrpc_env env;

	xmlrpc_env_init(&env);
	return sm_struct_take(st, key, checked(&env, xmlrpc_bool_new(&env, val), f), f);
}

char *sm_struct_get_str(xmlrpc_value *st, const char *key)
{
	xmlrpc_env env;
	xmlrpc_value *v = NULL;
	const char *s = NULL;
	char *res = NULL;

	xmlrpc_env_init(&env);
	if (xmlrpc_value_type(st) != XMLRPC_TYPE_STRUCT)
		goto out;
	xmlrpc_struct_find_value(&env, st, key, &v);
	if (env.fault_occurred || !v || xmlrpc_value_type(v) != XMLRPC_TYPE_STRING)
		goto out;
	xmlrpc_read_string(&env, v, &s);
	if (!env.fault_occurred && s)
		res = rp_strdup(s);
out:
	free((void *)s);
	if (v)
		xmlrpc_DECREF(v);
	xmlrpc_env_clean(&env);
	return res;
}

int sm_xml_escape(char *out, size_t len, const char *s)
{
	size_t o = strlen(out);

	for (; *s; s++) {
		const char *rep = NULL;
		char one[2] = { *s, '\0' };
		size_t n;

		switch (*s) {
		case '&':
			rep = "&amp;";
			break;
		case '<':
			rep = "&lt;";
			break;
		case '>':
			rep = "&gt;";
			break;
		case '"':
			rep = "&quot;";
			break;
		default:
			rep = (unsigned char)*s < 0x20 && *s != '\t' && *s != '\n' ? "" : one;
		}
		n = strlen(rep);
		if (o + n + 1 > len)
			return -1;
		memcpy(out + o, rep, n);
		o += n;
		out[o] = '\0';
	}
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * sm.h - internals of ReplunSR, the SMAPIv1 plugin: the parsed call, faults with sm's numeric
 * codes, the per-call context and the command handlers. Protocol only; storage is libreplun's.
 */
#ifndef REPLUN_SM_H
#define REPLUN_SM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <xmlrpc-c/base.h>

#include "replun/replun.h"

/* Bounds on everything that comes from argv or from XAPI. */
#define SM_XML_MAX (16u * 1024u * 1024u) /* a methodCall or a callback response */
#define SM_STR_MAX (64u * 1024u)         /* one string member */
#define SM_ARGS_MAX 32                   /* members of "args" */
#define SM_MAP_MAX 256                   /* members of a string->string struct */
#define SM_UUID_LEN 36

/* sm's fault codes (XE_SR_ERRORCODES.xml) used by ReplunSR. */
enum sm_code {
	SM_INVALID_ARG = 1,
	SM_SR_IN_USE = 16,
	SM_VDI_IN_USE = 24,
	SM_LOCK_ERR = 37,
	SM_UNIMPLEMENTED = 38,
	SM_SR_NOT_EMPTY = 39,
	SM_SR_SCAN = 40,
	SM_SR_EXISTS = 42,
	SM_VDI_EXISTS = 43,
	SM_SR_NO_SPACE = 44,
	SM_VDI_UNAVAILABLE = 46,
	SM_SR_UNAVAILABLE = 47,
	SM_VDI_LOAD = 65,
	SM_VDI_CREATE = 78,
	SM_VDI_SIZE = 79,
	SM_VDI_DELETE = 80,
	SM_VDI_CLONE = 81,
	SM_VDI_SNAPSHOT = 82,
	SM_VDI_RESIZE = 110,
	SM_CONFIG_PARAMS_MISSING = 115,
	SM_BAD_REQUEST = 143,
	SM_VDI_MISSING = 144,
	SM_API_SESSION = 150,
	SM_API_FAILURE = 153,
	SM_GENERAL = 202,
	SM_TAPDISK_FAILED = 453,
};

/* A fault: code and "<description> [opterr=<detail>]". The first one set wins. */
struct sm_fault {
	int code;
	char msg[1024];
};

/* sm's description of @code ("General backend error" for codes it does not know). */
const char *sm_code_desc(int code);
/* Sets @f (unless already set) to @code with opterr from @fmt (NULL: no opterr). Returns -1. */
int sm_fault_set(struct sm_fault *f, int code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
/* Maps an engine error to @code, or to a more precise sm code (VDIInUse, SRNoSpace...). */
int sm_fault_from_rp(struct sm_fault *f, int code, const struct rp_error *err);

/* A string->string struct in document order. */
struct sm_kv {
	char *key;
	char *value;
};
struct sm_map {
	size_t n;
	struct sm_kv *kv;
};
/* Value of @key or NULL. */
const char *sm_map_get(const struct sm_map *m, const char *key);
void sm_map_dispose(struct sm_map *m);

/* The SMAPIv1 call, as XAPI (or static-vdis, or a Python tool) sends it. NULL = absent. */
struct sm_call {
	char *method;
	char *command;
	char *host_ref;
	char *session_ref;
	char *sr_ref;
	char *sr_uuid;
	char *vdi_ref;
	char *vdi_location;
	char *vdi_uuid;
	char *vdi_type;
	char *new_uuid;
	char *subtask_of;
	char *vdi_on_boot;
	char *vdi_allow_caching;
	char *local_cache_sr;
	size_t n_args;
	char *args[SM_ARGS_MAX];
	struct sm_map device_config;
	struct sm_map sr_sm_config;
	struct sm_map vdi_sm_config;
	struct sm_map driver_params;
	char *log_line; /* the call rendered for SMlog, secrets masked */
};

/*
 * Parses a methodCall document (both dialects) into @c. Faults 143 (BadRequest) on anything
 * malformed or over the bounds. @c is disposed with sm_call_dispose even on failure.
 */
int sm_call_parse(struct sm_call *c, const char *xml, size_t len, struct sm_fault *f);
void sm_call_dispose(struct sm_call *c);

/* Prints the methodResponse for @result (owned by the caller) / for @f, to @out. */
int sm_print_response(FILE *out, xmlrpc_value *result);
int sm_print_fault(FILE *out, const struct sm_fault *f);

/* Value builders; each returns NULL (with @f set) on failure. New references. */
xmlrpc_value *sm_val_nil(struct sm_fault *f);
xmlrpc_value *sm_val_string(const char *s, struct sm_fault *f);
xmlrpc_value *sm_val_struct(struct sm_fault *f);
/* Adds a member; strings/bools copied. Return 0 or -1 with @f set. */
int sm_struct_str(xmlrpc_value *st, const char *key, const char *val, struct sm_fault *f);
int sm_struct_bool(xmlrpc_value *st, const char *key, bool val, struct sm_fault *f);
/* Adds @val and drops the caller's reference to it (even on failure). */
int sm_struct_take(xmlrpc_value *st, const char *key, xmlrpc_value *val, struct sm_fault *f);
/* Reads a string member (NULL if absent or not a string). Result owned by the caller. */
char *sm_struct_get_str(xmlrpc_value *st, const char *key);
/* Appends @s to @out with XML escaping (for documents inside strings, e.g. sr_probe). */
int sm_xml_escape(char *out, size_t len, const char *s);

/* Logging: syslog ident "SM", facility local2, "[pid] " prefix; one record per line. */
void sm_log_open(void);
/* With $REPLUN_SM_TIMING set: "ReplunSR timing: <ms since start> <what>" on stderr (profiling;
 * nothing otherwise). */
void sm_phase(const char *what);
void sm_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void sm_log_close(void);
/* True for device_config keys whose values are never logged (password, *secret, ...). */
bool sm_log_key_secret(const char *key);

/* fcntl write locks under $REPLUN_LOCK_DIR (default /var/lock/sm)/<ns>/<name>. */
struct sm_lock {
	int fd;
	char path[512];
};
#define SM_LOCK_INIT                                                                               \
	{                                                                                          \
		.fd = -1, .path = ""                                                               \
	}
/* Waits up to $REPLUN_LOCK_TIMEOUT seconds (default 300). Fault 37 (LockErr) on failure. */
int sm_lock_acquire(struct sm_lock *l, const char *ns, const char *name, struct sm_fault *f);
void sm_lock_release(struct sm_lock *l);
/* Removes the lock namespace @ns (sr_delete). Best effort. */
void sm_lock_remove_ns(const char *ns);

/* libcurl, loaded on first use (see sm_curl.c). */
#include <curl/curl.h>
struct sm_curl {
	bool ready;
	CURLcode (*global_init)(long flags);
	CURL *(*easy_init)(void);
	CURLcode (*easy_setopt)(CURL *c, CURLoption opt, ...);
	CURLcode (*easy_perform)(CURL *c);
	CURLcode (*easy_getinfo)(CURL *c, CURLINFO info, ...);
	void (*easy_cleanup)(CURL *c);
	const char *(*easy_strerror)(CURLcode code);
	struct curl_slist *(*slist_append)(struct curl_slist *l, const char *s);
	void (*slist_free_all)(struct curl_slist *l);
};
extern struct sm_curl sm_curl;
/* Loads libcurl if needed; fault 150 when it cannot be loaded. */
int sm_curl_ready(struct sm_fault *f);
/* Starts loading libcurl in a thread (for calls that will call back), so the load overlaps
 * the array work; sm_curl_ready or sm_curl_join wait for it. */
void sm_curl_prefetch(void);
void sm_curl_join(void);

/*
 * The XenAPI callback relay (sm_relay.c): sm_relay_open connects to a warm replun-xapi-relay
 * (0) or returns -1 (the caller then uses libcurl itself) and, when a new relay may help,
 * sm_relay_finish starts one for later calls.
 * sm_relay_post returns 0 with the HTTP answer (*resp owned by the caller), -1 with @f set
 * when the relay could not reach XAPI, 1 when the relay is unusable (do the call in-process).
 */
int sm_relay_open(void);
int sm_relay_post(const char *socket, const char *subtask, const char *body, size_t len,
                  const char *method, long *http, char **resp, size_t *resp_len,
                  struct sm_fault *f);
void sm_relay_close(void);
/* Starts a relay if this call found none usable (once its answer is out). */
void sm_relay_finish(void);

/* The XenAPI client: XML-RPC over HTTP on $REPLUN_XAPI_SOCKET (default /var/lib/xcp/xapi). */
struct sm_xapi;
int sm_xapi_open(struct sm_xapi **out, const char *session_ref, const char *subtask_of,
                 struct sm_fault *f);
void sm_xapi_close(struct sm_xapi *x);
/*
 * Calls @method(session_ref, params...) (@params: an array, borrowed; NULL = none) and writes
 * the Value of a {Status: Success} answer to *out (new reference; @out may be NULL).
 * Faults: 150 (APISession) when XAPI cannot be reached, 153 (APIFailure) on a Failure answer.
 */
int sm_xapi_call(struct sm_xapi *x, xmlrpc_value **out, const char *method, xmlrpc_value *params,
                 struct sm_fault *f);
/* sm_xapi_call with @n string arguments after the session (refs, uuids, decimal int64s). */
int sm_xapi_call_strs(struct sm_xapi *x, xmlrpc_value **out, const char *method,
                      const char *const *args, size_t n, struct sm_fault *f);
/* @method(session, @arg) whose Value is a string (a ref, a field): *out owned by the caller
 * (rp_free). Fault 153 (APIFailure) when the Value is not a string. */
int sm_xapi_get_str(struct sm_xapi *x, const char *method, const char *arg, char **out,
                    struct sm_fault *f);

/* A VDI as XAPI's VDI.db_introduce wants it. */
struct sm_vdi_rec {
	const char *uuid;
	const char *name_label;
	const char *name_description;
	const char *sr_ref;
	const char *type;
	bool read_only;
	const char *location;
	const struct sm_map *sm_config;
	uint64_t virtual_size;
	uint64_t physical_utilisation;
	bool is_a_snapshot;
	const char *snapshot_time; /* "YYYYMMDDTHH:MM:SSZ" */
	const char *snapshot_of;   /* a VDI ref or NULL */
};
/* VDI.db_introduce; *vdi_ref (may be NULL) receives the new ref, owned by the caller. */
int sm_xapi_vdi_introduce(struct sm_xapi *x, char **vdi_ref, const struct sm_vdi_rec *v,
                          struct sm_fault *f);
int sm_xapi_vdi_forget(struct sm_xapi *x, const char *vdi_ref, struct sm_fault *f);
/* Class.method(session, ref, "<decimal>") for the int64 setters. */
int sm_xapi_set_int(struct sm_xapi *x, const char *method, const char *ref, uint64_t value,
                    struct sm_fault *f);

/* Class.method(session, ref, "<string>") for ref/string setters (VDI.set_snapshot_of). */
int sm_xapi_set_str(struct sm_xapi *x, const char *method, const char *ref, const char *value,
                    struct sm_fault *f);

/* Per-call context shared by the handlers. */
struct sm_ctx {
	struct sm_call *call;
	struct rp_array *array; /* opened by sm_ctx_open_array */
	struct rp_array *peer;  /* opened when device_config has peer and a handler asks */
	struct sm_xapi *xapi;   /* opened by sm_ctx_xapi */
	const char *host;       /* host identity for presentation: host_ref or "host:<name>" */
	char host_buf[300];
	uint32_t rpo;
	bool has_rpo;
	bool prefetch_curl; /* the command calls back: load libcurl once the array is open */
};

/* Validates device_config (array, peer, rpo) and opens the array. Faults 115/1/47. */
int sm_ctx_open_array(struct sm_ctx *ctx, struct sm_fault *f);
/* Opens the peer array when device_config names one (no-op otherwise). */
int sm_ctx_open_peer(struct sm_ctx *ctx, struct sm_fault *f);
/* The XenAPI client for this call's session (fault 150 without a session_ref). */
int sm_ctx_xapi(struct sm_ctx *ctx, struct sm_xapi **out, struct sm_fault *f);
void sm_ctx_dispose(struct sm_ctx *ctx);

/* Small helpers. */
int sm_uuid_new(char out[SM_UUID_LEN + 1]);
bool sm_uuid_valid(const char *s);
/* Parses a decimal byte count ("10737418240"); fault 1 naming @what. */
int sm_u64_parse(uint64_t *out, const char *s, const char *what, struct sm_fault *f);
/* "YYYYMMDDTHH:MM:SSZ" of now (UTC). */
void sm_time_now(char out[32]);
/* "true"/"1" -> true; anything else false. */
bool sm_bool(const char *s);

/* Handler signature: *out receives the result value (new reference) on success. */
typedef int (*sm_handler)(struct sm_ctx *ctx, xmlrpc_value **out, struct sm_fault *f);

int sm_sr_get_driver_info(struct sm_ctx *ctx, xmlrpc_value **out, struct sm_fault *f);
int sm_sr_create(struct sm_ctx *ctx, xmlrpc_value **out, struct sm_fault *f);
int sm_sr_delete(struct sm_ctx *ctx, xmlrpc_value **out, struct sm_fault *f);
int sm_sr_attach(struct sm_ctx *ctx, xmlrpc_value **out, struct sm_fault *f);
int sm_sr_detach(struct sm_ctx *ctx, xmlrpc_value **out, struct sm_fault *f);
int sm_sr_scan(struct sm_ctx *ctx, xmlrpc_value **out, struct sm_fault *f);
int sm_sr_update(struct sm_ctx *ctx, xmlrpc_value **out, struct sm_fault *f);
int sm_sr_probe(struct sm_ctx *ctx, xmlrpc_value **out, struct sm_fault *f);

int sm_vdi_create(struct sm_ctx *ctx, xmlrpc_value **out, struct sm_fault *f);
int sm_vdi_delete(struct sm_ctx *ctx, xmlrpc_value **out, struct sm_fault *f);
int sm_vdi_update(struct sm_ctx *ctx, xmlrpc_value **out, struct sm_fault *f);
int sm_vdi_introduce(struct sm_ctx *ctx, xmlrpc_value **out, struct sm_fault *f);
int sm_vdi_snapshot(struct sm_ctx *ctx, xmlrpc_value **out, struct sm_fault *f);
int sm_vdi_clone(struct sm_ctx *ctx, xmlrpc_value **out, struct sm_fault *f);
int sm_vdi_resize(struct sm_ctx *ctx, xmlrpc_value **out, struct sm_fault *f);
int sm_vdi_epoch(struct sm_ctx *ctx, xmlrpc_value **out, struct sm_fault *f);

int sm_vdi_attach(struct sm_ctx *ctx, xmlrpc_value **out, struct sm_fault *f);
int sm_vdi_detach(struct sm_ctx *ctx, xmlrpc_value **out, struct sm_fault *f);
int sm_vdi_activate(struct sm_ctx *ctx, xmlrpc_value **out, struct sm_fault *f);
int sm_vdi_deactivate(struct sm_ctx *ctx, xmlrpc_value **out, struct sm_fault *f);
int sm_vdi_generate_config(struct sm_ctx *ctx, xmlrpc_value **out, struct sm_fault *f);
int sm_vdi_attach_from_config(struct sm_ctx *ctx, xmlrpc_value **out, struct sm_fault *f);
int sm_vdi_detach_from_config(struct sm_ctx *ctx, xmlrpc_value **out, struct sm_fault *f);

/* VDI metadata stored with each LUN (replicates with it). Keys: SM_META_* below. */
#define SM_META_PREFIX "vdi."
#define SM_META_SMCONFIG "vdi.sm_config."
/* Loads the metadata of LUN @lun into @m (keys as stored). Fault @code on failure. */
int sm_meta_load(struct sm_map *m, struct rp_array *a, const char *lun, int code,
                 struct sm_fault *f);
/* VDI.db_introduce for LUN @dev with metadata @meta in the call's SR; *ref owned by caller. */
int sm_vdi_introduce_lun(struct sm_ctx *ctx, char **ref, const struct rp_device *dev,
                         const struct sm_map *meta, const char *uuid, struct sm_fault *f);

/* Shared by sm_vdi.c and sm_datapath.c: the LUN of the call's VDI (by location, else uuid). */
int sm_vdi_lun(struct sm_ctx *ctx, struct rp_device *dev, struct sm_fault *f);
/* True when the datapath of this SR has a VDI active on this host (sr_detach refuses). */
bool sm_datapath_sr_busy(const char *sr_uuid);

#endif

/* SPDX-License-Identifier: MIT */
/*
 * sra.h - internals of replun-sra, the SRA v2 front end: request context, response helpers,
 * logging, the error/warning tables and the command handlers. Protocol only: every rule of the
 * workflows lives in libreplun.
 */
#ifndef REPLUN_SRA_H
#define REPLUN_SRA_H

#include <stdbool.h>
#include <stddef.h>

#include <libxml/tree.h>

#include "replun/replun.h"

#define SRA_NS "http://www.vmware.com/srm/sra/v2"
/* Our own namespace: error placeholders and the content of <ReplicationSettings>. */
#define SRA_RP_NS "urn:replun:sra:v2"
#define SRA_RP_PREFIX "rp"

#define SRA_NAME "replun SRA"
#define SRA_VENDOR "replun project"
/* Stable across every version of the adapter (SRM identifies the SRA by it). */
#define SRA_UUID "5d1c2a7e-8f43-4b6a-9a0e-7e52c1f0a3b9"
#define SRA_HELP_URL "https://replun.org/docs/sra.html"
#ifndef SRA_VERSION
#define SRA_VERSION "0.1.0"
#endif

#define SRA_MAX_REQUEST ((size_t)16 << 20) /* bytes read from stdin at most */
#define SRA_MAX_TEXT 4096                  /* longest text value we accept from a request */

/* Error codes: < 1000 predefined by SRM, >= 1000 ours (see strings.c for the definitions). */
enum sra_err {
	SRA_E_NOT_SUPPORTED_CMD = 100,
	SRA_E_LOCALE = 101,
	SRA_W_SYNC_RUNNING = 500,

	SRA_E_FAILED = 1000,
	SRA_E_NOT_FOUND = 1001,
	SRA_E_EXISTS = 1002,
	SRA_E_BUSY = 1003,
	SRA_E_INVALID = 1004,
	SRA_E_UNSUPPORTED = 1005,
	SRA_E_NO_SPACE = 1006,
	SRA_E_TIMEOUT = 1007,
	SRA_E_STATE = 1008,
	SRA_E_UNREACHABLE = 1009,
	SRA_E_IO = 1010,
	SRA_E_CORRUPT = 1011,
	SRA_E_PERM = 1012,
	SRA_E_SYNC_FAILED = 1013,
	SRA_E_FILTERED = 1014,
	SRA_E_BAD_XML = 1020,
	SRA_E_NAMESPACE = 1021,
	SRA_E_MISSING = 1022,
	SRA_E_TOO_LARGE = 1023,
	SRA_E_UNKNOWN_ARRAY = 1024,
	SRA_E_CONNECTION = 1025,
	SRA_E_BAD_ID = 1026,
	SRA_E_NO_RECOVERY_POINT = 1027,

	SRA_W_ALREADY_DONE = 2001,
	SRA_W_UNUSUAL_ORDER = 2002,
	SRA_W_PEER_DOWN = 2003,
	SRA_W_NO_FREEZE = 2005,
	SRA_W_TAIL_KEPT = 2007,
	SRA_W_STALE_RP = 2008,
	SRA_W_SETTINGS = 2009,
	SRA_W_OTHER = 2010,
};

struct sra_conn {
	char **uris; /* one or more array URIs from <Address> (whitespace/';' separated) */
	size_t n_uris;
	char *username;
	char *password; /* never logged, never written */
	char *name_filter;
};

struct sra_ctx {
	/* request */
	xmlDocPtr req;
	xmlNodePtr cmd; /* <Command> */
	char *name;
	char *output_file;
	char *status_file;
	char *log_dir;
	struct sra_conn conn;
	/* response */
	xmlDocPtr resp;
	xmlNodePtr resp_root;
	xmlNsPtr ns;
	xmlNsPtr rpns;
	bool whole_error; /* the response is a whole-response <Error> */
};

/* ---- logging (log.c) ---- */
void sra_log_init(int level);
/* Opens <dir>/replun-sra.log (append); may be called after the first messages. */
void sra_log_open_dir(const char *dir);
void sra_log_set_level(int level);
void sra_log(enum rp_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sra_log_close(void);
/* Logs the request indented, every <Password> (and password attribute) replaced. */
void sra_log_request(xmlDocPtr req);
/* rp_log sink: engine messages go to the same places. */
void sra_log_sink(enum rp_log_level level, const char *msg, void *payload);

/* ---- request helpers (request.c) ---- */
/* First element child of @parent with local name @name in the SRA namespace, or NULL. */
xmlNodePtr sra_child(xmlNodePtr parent, const char *name);
/* Next element sibling after @n with the same local name, or NULL. */
xmlNodePtr sra_next(xmlNodePtr n);
/* Trimmed text of child @name (owned by caller, rp_free), NULL if absent or too long. */
char *sra_child_text(xmlNodePtr parent, const char *name);
/* Trimmed text of @n (rp_free), NULL when longer than SRA_MAX_TEXT. */
char *sra_text(xmlNodePtr n);
/* Attribute value (rp_free) or NULL. */
char *sra_attr_get(xmlNodePtr n, const char *name);
/* Parses <Connections> of the request into ctx->conn. 0 or -1 (no connection given). */
int sra_conn_parse(struct sra_ctx *ctx);
void sra_conn_free(struct sra_conn *c);
/*
 * Opens the array with id @array_id among the connection's URIs. On failure writes a
 * whole-response error and returns -1.
 */
int sra_open_array(struct rp_array **out, struct sra_ctx *ctx, const char *array_id);

/* The ids (attribute @attr) of <container>/<el> children of @params, in request order. */
struct sra_list {
	char **ids;
	xmlNodePtr *nodes;
	size_t n;
};
#define SRA_MAX_ITEMS 100000
int sra_collect(struct sra_list *out, xmlNodePtr params, const char *container, const char *el,
                const char *attr);
void sra_list_free(struct sra_list *l);
/* "NAA.6..." -> "60:0A:..." as the spec's <Wwn> shows; @out of RP_WWN_MAX * 2. */
void sra_wwn_format(char *out, size_t len, const char *wwn);

/* ---- response helpers (response.c) ---- */
int sra_resp_init(struct sra_ctx *ctx);
xmlNodePtr sra_el(struct sra_ctx *ctx, xmlNodePtr parent, const char *name);
xmlNodePtr sra_el_text(struct sra_ctx *ctx, xmlNodePtr parent, const char *name, const char *text);
void sra_set_attr(xmlNodePtr n, const char *name, const char *value);
/* Appends <Error code=..> with the placeholders of that code under @parent. */
void sra_put_error(struct sra_ctx *ctx, xmlNodePtr parent, int code, const char *object,
                   const char *array_id, const char *message);
/* Appends <Warning code=..> under @warnings (created by the caller). */
void sra_put_warning(struct sra_ctx *ctx, xmlNodePtr warnings, int code, const char *object,
                     const char *message);
/* Replaces the response body with one whole-response <Error>. */
void sra_fail(struct sra_ctx *ctx, int code, const char *object, const char *array_id,
              const char *message);
/* As sra_fail from an engine error. */
void sra_fail_rp(struct sra_ctx *ctx, const struct rp_error *err, const char *object,
                 const char *array_id);
/* Writes the response atomically (temp file + fsync + rename). 0 or -1. */
int sra_resp_write(struct sra_ctx *ctx);
void sra_resp_free(struct sra_ctx *ctx);
/* Appends a <ProgressUpdate> document to the StatusFile (if any). */
void sra_progress(struct sra_ctx *ctx, int percent);
/* Writes a whole-response error to @path without a context (request unusable). */
int sra_write_error_file(const char *path, int code, const char *message);

/* ---- strings, error/warning definitions and the one rp -> SRA mapping table (strings.c) ---- */
enum sra_locale { SRA_L_EN = 0, SRA_L_DE, SRA_L_FR, SRA_L_JA, SRA_L_ZH, SRA_N_LOCALES };
struct sra_def {
	int code;
	bool warning;
	const char *placeholders; /* comma-separated names filled from the error's child tags */
	const char *desc[SRA_N_LOCALES];
	const char *fix[SRA_N_LOCALES];
};
struct sra_string {
	const char *id;
	const char *text[SRA_N_LOCALES];
};
extern const struct sra_def sra_defs[];
extern const size_t sra_n_defs;
extern const struct sra_string sra_strings[];
extern const size_t sra_n_strings;
extern const char *const sra_locale_ids[SRA_N_LOCALES];
const struct sra_def *sra_def_find(int code);
const char *sra_string_en(const char *id);
/* enum rp_code -> SRA error code. */
int sra_code_for_error(int rp_code);
/* enum rp_warn -> SRA warning code (0 for RP_WARN_FILTERED: that one is an error to SRM). */
int sra_code_for_warning(int rp_warn);
/* -1 if unsupported. */
int sra_locale_parse(const char *tag);

/* ---- command handlers ---- */
int sra_cmd_query_info(struct sra_ctx *ctx);
int sra_cmd_query_strings(struct sra_ctx *ctx);
int sra_cmd_query_error_definitions(struct sra_ctx *ctx);
int sra_cmd_query_capabilities(struct sra_ctx *ctx);
int sra_cmd_query_connection_parameters(struct sra_ctx *ctx);
int sra_cmd_discover_arrays(struct sra_ctx *ctx);
int sra_cmd_discover_devices(struct sra_ctx *ctx);
int sra_cmd_query_replication_settings(struct sra_ctx *ctx);
int sra_cmd_query_device_details(struct sra_ctx *ctx);
int sra_cmd_query_recovery_points(struct sra_ctx *ctx);
int sra_cmd_workflow(struct sra_ctx *ctx); /* every per-device workflow, by ctx->name */
int sra_cmd_sync_once(struct sra_ctx *ctx);
int sra_cmd_query_sync_status(struct sra_ctx *ctx);

/* Custom properties reported by queryDeviceDetails (name, label stringId). */
struct sra_prop {
	const char *name;
	const char *string_id;
};
extern const struct sra_prop sra_props[];
extern const size_t sra_n_props;

/* The command table: name, handler, advertised execution location (NULL = none). */
struct sra_cmd {
	const char *name;
	int (*fn)(struct sra_ctx *ctx);
	const char *location;
};
extern const struct sra_cmd sra_cmds[];
extern const size_t sra_n_cmds;

#endif

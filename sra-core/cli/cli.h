/* SPDX-License-Identifier: MIT */
/*
 * cli.h - the replun command: command table entry, parsed arguments, exit codes and the output
 * helpers (tables, JSON, sizes, progress bar) shared by the command files. Front end only.
 */
#ifndef REPLUN_CLI_H
#define REPLUN_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <json-c/json.h>

#include "replun/replun.h"

/* Exit codes: a small documented set (see `replun --help` and docs/cli.md). */
enum cli_exit {
	CLI_EXIT_OK = 0,
	CLI_EXIT_ERROR = 1,    /* runtime error (I/O, peer unreachable, anything else) */
	CLI_EXIT_USAGE = 2,    /* bad usage or invalid argument (syntax, size, id, path) */
	CLI_EXIT_NOTFOUND = 3, /* array, LUN, group, session or recovery point not found */
	CLI_EXIT_STATE = 4,    /* wrong state, busy, already exists, not permitted */
	CLI_EXIT_VERIFY = 5,   /* verify found a difference (also the drill) */
};

#define CLI_MAX_POS 8
#define CLI_MAX_VALS 32
#define CLI_MAX_OPTS 8

/* One option a command accepts, besides --help and --verbose which all accept. */
struct cli_optspec {
	const char *name; /* long name without "--" */
	bool has_arg;
	bool multi; /* may be given several times */
};

struct cli_args;

/* The command table entry: `replun NAME ...` runs fn. */
struct cli_cmd {
	const char *name; /* one or two words: "sync", "lun create" */
	int (*fn)(struct cli_args *a);
	const char *help; /* full help: usage lines, description, options */
	const char *summary;
	const struct cli_optspec *opts; /* terminated by { NULL } */
	size_t min_pos, max_pos;
};

struct cli_optval {
	size_t count;
	const char *vals[CLI_MAX_VALS];
};

struct cli_args {
	const struct cli_cmd *cmd;
	const char *pos[CLI_MAX_POS];
	size_t n_pos;
	struct cli_optval opts[CLI_MAX_OPTS]; /* parallel to cmd->opts */
	bool verbose;
};

/* Argument access. cli_opt returns the last value (or "" for a flag), NULL when absent. */
const char *cli_opt(const struct cli_args *a, const char *name);
bool cli_flag(const struct cli_args *a, const char *name);
const char *const *cli_opt_all(const struct cli_args *a, const char *name, size_t *n);

/* Errors: print one line "replun: <message>" on stderr and return the exit code. */
int cli_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int cli_fail(const struct rp_error *err);
int cli_failf(int exit_code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int cli_exit_code(int rp_code);
void cli_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Turns a PATH argument into an absolute path or file:// URI in @out. Refuses ".." components
 * (usage error, already printed). Returns 0 or an exit code.
 */
int cli_array_path(char *out, size_t len, const char *path);
/* cli_array_path + rp_array_open; prints the error and returns its exit code on failure. */
int cli_open(struct rp_array **out, const char *path);

/* Formatting. */
void cli_fmt_size(char *buf, size_t len, uint64_t bytes); /* "64.0 MiB" */
void cli_fmt_ms(char *buf, size_t len, int64_t ms);       /* "12 ms", "1.25 s", "2m03s" */
void cli_fmt_time(char *buf, size_t len, int64_t ms);     /* xsd:dateTime or "-" */

/* A human table: rows of strings, columns padded to the widest cell. */
struct cli_table;
struct cli_table *cli_table_new(size_t ncols, const char *const *head);
/* Adds one row of ncols cells (copied; NULL prints "-"). Returns -1 on OOM. */
int cli_table_add(struct cli_table *t, const char *const *cells);
void cli_table_print(const struct cli_table *t, FILE *f);
void cli_table_free(struct cli_table *t);

/* JSON output: prints @obj pretty on stdout and drops the reference. */
void cli_json_print(struct json_object *obj);
/* Adds a string (NULL/"" becomes null when @empty_null) or numbers to an object. */
void cli_json_str(struct json_object *o, const char *key, const char *val);
void cli_json_int(struct json_object *o, const char *key, int64_t val);
void cli_json_bool(struct json_object *o, const char *key, bool val);

struct json_object *cli_json_device(const struct rp_device *d);
struct json_object *cli_json_session(const struct rp_sync_session *s);
struct json_object *cli_json_item(const struct rp_item *it);

/* Progress bar for rp_sync_wait; draws on stderr only when stderr is a TTY. */
struct cli_progress {
	bool tty;
	const char *label;
	int64_t start_ms;
	int64_t last_ms;
	uint64_t last_bytes;
	double rate; /* bytes per second, smoothed */
	int drawn;   /* width of the last line drawn */
};
void cli_progress_init(struct cli_progress *p, const char *label);
void cli_progress_cb(const struct rp_sync_session *s, void *payload);
void cli_progress_done(struct cli_progress *p);

/* Verbose logging to stderr (-v). */
void cli_set_verbose(bool on);

/* Commands (one function per table entry). */
int cmd_array_init(struct cli_args *a);
int cmd_array_pair(struct cli_args *a);
int cmd_array_info(struct cli_args *a);
int cmd_group_list(struct cli_args *a);
int cmd_group_create(struct cli_args *a);
int cmd_group_delete(struct cli_args *a);
int cmd_group_policy(struct cli_args *a);
int cmd_lun_create(struct cli_args *a);
int cmd_lun_list(struct cli_args *a);
int cmd_lun_delete(struct cli_args *a);
int cmd_lun_resize(struct cli_args *a);
int cmd_lun_snapshot(struct cli_args *a);
int cmd_lun_clone(struct cli_args *a);
int cmd_lun_path(struct cli_args *a);
int cmd_lun_meta(struct cli_args *a);
int cmd_lun_checksum(struct cli_args *a);
int cmd_lun_present(struct cli_args *a);
int cmd_lun_presented(struct cli_args *a);
int cmd_lun_unpresent(struct cli_args *a);
int cmd_sync(struct cli_args *a);
int cmd_sync_status(struct cli_args *a);
int cmd_tfo_start(struct cli_args *a);
int cmd_tfo_stop(struct cli_args *a);
int cmd_check_tfo(struct cli_args *a);
int cmd_check_failover(struct cli_args *a);
int cmd_prepare_failover(struct cli_args *a);
int cmd_failover(struct cli_args *a);
int cmd_prepare_reverse(struct cli_args *a);
int cmd_reverse(struct cli_args *a);
int cmd_prepare_restore(struct cli_args *a);
int cmd_restore(struct cli_args *a);
int cmd_recovery_points(struct cli_args *a);
int cmd_verify(struct cli_args *a);
int cmd_drill(struct cli_args *a);

#endif

/* SPDX-License-Identifier: MIT */
/*
 * replun/common.h - errors, allocation, logging and limits shared by every part of libreplun.
 * The library never prints: it reports through struct rp_error and the log sink a front end sets.
 */
#ifndef REPLUN_COMMON_H
#define REPLUN_COMMON_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RP_EXTERN __attribute__((visibility("default")))

/* Limits of identifiers and strings kept in fixed buffers (include the NUL). */
#define RP_ID_MAX 64    /* array, device, group, snapshot, session ids */
#define RP_NAME_MAX 256 /* user-visible names */
#define RP_WWN_MAX 48   /* "naa.6" + 32 hex digits */
#define RP_URI_MAX 4096
#define RP_MSG_MAX 256
#define RP_TIME_MAX 40 /* xsd:dateTime "2026-11-24T08:53:48.123Z" */

/*
 * Error codes: stable, negative, never reused. Front ends map them in one table each
 * (SM fault codes, SRA <Error> codes, CLI exit codes).
 */
enum rp_code {
	RP_OK = 0,
	RP_ERROR = -1,         /* generic failure, see message */
	RP_ENOTFOUND = -2,     /* array, device, group, snapshot, session unknown */
	RP_EEXISTS = -3,       /* object already exists */
	RP_EBUSY = -4,         /* in use: sync running, test running, locked, presented */
	RP_EINVAL = -5,        /* bad input (ids, sizes, paths, arguments) */
	RP_ENOTSUPPORTED = -6, /* the array or driver cannot do this */
	RP_ENOSPACE = -7,      /* not enough capacity */
	RP_EPASSTHROUGH = -8,  /* driver: let the core use its generic path */
	RP_ETIMEOUT = -9,      /* waited too long */
	RP_ESTATE = -10,       /* object in the wrong state for the operation */
	RP_EUNREACHABLE = -11, /* the peer array cannot be reached */
	RP_EIO = -12,          /* I/O error on the array */
	RP_ECORRUPT = -13,     /* metadata or data failed a check */
	RP_EPERM = -14,        /* not allowed (read-only device, credentials) */
};

/*
 * An error travels in caller-owned storage. The first message set wins; later calls of
 * rp_error_set on an already set error change nothing. Never holds a password.
 */
struct rp_error {
	int code;     /* enum rp_code */
	int os_errno; /* errno at the failure, 0 if none */
	char msg[RP_MSG_MAX];
};

/* Clears @err (may be NULL). */
RP_EXTERN void rp_error_clear(struct rp_error *err);

/*
 * Sets @err (may be NULL) unless it already holds an error; returns @code so callers can
 * write `return rp_error_set(err, RP_EINVAL, "size '%s' is not a number", s);`.
 */
RP_EXTERN int rp_error_set(struct rp_error *err, int code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* As rp_error_set, appending ": strerror(os_errno)" and recording os_errno. */
RP_EXTERN int rp_error_set_os(struct rp_error *err, int code, int os_errno, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

/* Short stable name of a code ("not found", "busy", ...). Never NULL. */
RP_EXTERN const char *rp_code_name(int code);

/* Allocation: the only allocator of libreplun; returns NULL on failure (no abort). */
RP_EXTERN void *rp_malloc(size_t n);
RP_EXTERN void *rp_calloc(size_t nmemb, size_t size);
RP_EXTERN void *rp_realloc(void *p, size_t n);
RP_EXTERN char *rp_strdup(const char *s);
RP_EXTERN void rp_free(void *p);
/* Frees *pp and sets it to NULL; pp is a pointer to any pointer. */
RP_EXTERN void rp_freep(void *pp);

/* Copies @src into @dst of size @n, always NUL-terminated. Returns -1 if truncated. */
RP_EXTERN int rp_strlcpy(char *dst, const char *src, size_t n);

/*
 * Logging. Five levels as in the SRA spec. The library logs through one process-wide sink set
 * by the front end; with no sink set nothing is printed.
 */
enum rp_log_level {
	RP_LOG_TRIVIA = 0,
	RP_LOG_VERBOSE = 1,
	RP_LOG_INFO = 2,
	RP_LOG_WARNING = 3,
	RP_LOG_ERROR = 4,
};

typedef void (*rp_log_fn)(enum rp_log_level level, const char *msg, void *payload);

/* Sets the sink and the minimum level passed to it. @fn NULL turns logging off. */
RP_EXTERN void rp_log_set_sink(rp_log_fn fn, enum rp_log_level min_level, void *payload);
RP_EXTERN void rp_log(enum rp_log_level level, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
RP_EXTERN void rp_logv(enum rp_log_level level, const char *fmt, va_list ap)
        __attribute__((format(printf, 2, 0)));
/* Parses "trivia|verbose|info|warning|error" (case-insensitive); -1 if unknown. */
RP_EXTERN int rp_log_level_parse(const char *s);
RP_EXTERN const char *rp_log_level_name(enum rp_log_level level);

/* Ready-made sinks. payload: for the file sink a FILE *; for syslog the ident is set by caller. */
RP_EXTERN void rp_log_sink_stderr(enum rp_log_level level, const char *msg, void *payload);
RP_EXTERN void rp_log_sink_file(enum rp_log_level level, const char *msg, void *payload);
RP_EXTERN void rp_log_sink_syslog(enum rp_log_level level, const char *msg, void *payload);

/* Time helpers: now in ms since the epoch; xsd:dateTime (UTC, ms) into @buf. */
RP_EXTERN int64_t rp_now_ms(void);
RP_EXTERN void rp_time_format(char buf[RP_TIME_MAX], int64_t ms);

/*
 * Parses a size "1073741824", "512K", "10M", "1G", "2T" (binary units, optional trailing
 * "B"/"iB"). Rejects negatives, garbage and overflow with RP_EINVAL.
 */
RP_EXTERN int rp_size_parse(uint64_t *out, const char *s, struct rp_error *err);

/*
 * Checks an identifier given from outside (device, group, snapshot, array ids): 1..63 chars of
 * [A-Za-z0-9._:-], not starting with '.' or '-'; so never "..", "/", spaces or control chars.
 */
RP_EXTERN int rp_id_check(const char *id, const char *what, struct rp_error *err);

RP_EXTERN const char *rp_version(void);

#ifdef __cplusplus
}
#endif
#endif

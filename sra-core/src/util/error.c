/* SPDX-License-Identifier: MIT */
/* error.c - struct rp_error: first message wins, codes never masked. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "replun/common.h"

void rp_error_clear(struct rp_error *err)
{
	if (!err)
		return;
	err->code = 0;
	err->os_errno = 0;
	err->msg[0] = '\0';
}

static int err_vset(struct rp_error *err, int code, int os_errno, const char *fmt, va_list ap)
        __attribute__((format(printf, 4, 0)));

static int err_vset(struct rp_error *err, int code, int os_errno, const char *fmt, va_list ap)
{
	size_t len;

	if (!err || err->code != 0)
		return code;
	err->code = code;
	err->os_errno = os_errno;
	(void)vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	if (os_errno) {
		len = strlen(err->msg);
		(void)snprintf(err->msg + len, sizeof(err->msg) - len, ": %s", strerror(os_errno));
	}
	return code;
}

int rp_error_set(struct rp_error *err, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)err_vset(err, code, 0, fmt, ap);
	va_end(ap);
	return code;
}

int rp_error_set_os(struct rp_error *err, int code, int os_errno, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)err_vset(err, code, os_errno, fmt, ap);
	va_end(ap);
	return code;
}

const char *rp_code_name(int code)
{
	switch (code) {
	case RP_OK:
		return "ok";
	case RP_ERROR:
		return "error";
	case RP_ENOTFOUND:
		return "not found";
	case RP_EEXISTS:
		return "already exists";
	case RP_EBUSY:
		return "busy";
	case RP_EINVAL:
		return "invalid argument";
	case RP_ENOTSUPPORTED:
		return "not supported";
	case RP_ENOSPACE:
		return "no space";
	case RP_EPASSTHROUGH:
		return "passthrough";
	case RP_ETIMEOUT:
		return "timed out";
	case RP_ESTATE:
		return "wrong state";
	case RP_EUNREACHABLE:
		return "unreachable";
	case RP_EIO:
		return "I/O error";
	case RP_ECORRUPT:
		return "corrupt";
	case RP_EPERM:
		return "not permitted";
	default:
		return "unknown error";
	}
}

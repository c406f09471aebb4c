/* SPDX-License-Identifier: MIT */
/*
 * sm_log.c - SMlog-style logging: syslog ident "SM", facility local2, "[pid] " prefix, one
 * record per line (as sm's util.SMlog). $REPLUN_SM_LOG, if set, also appends lines to a file.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "sm.h"

static FILE *sm_log_file;
static int sm_timing = -1; /* -1: $REPLUN_SM_TIMING not read yet */
static struct timespec sm_t0;

void sm_phase(const char *what)
{
	struct timespec t;

	if (sm_timing < 0) {
		const char *e = getenv("REPLUN_SM_TIMING");

		sm_timing = e && *e;
		(void)clock_gettime(CLOCK_MONOTONIC, &sm_t0);
	}
	if (!sm_timing)
		return;
	(void)clock_gettime(CLOCK_MONOTONIC, &t);
	(void)fprintf(stderr, "ReplunSR timing: %8.3f ms %s\n",
	              (double)(t.tv_sec - sm_t0.tv_sec) * 1e3 +
	                      (double)(t.tv_nsec - sm_t0.tv_nsec) / 1e6,
	              what);
}

bool sm_log_key_secret(const char *key)
{
	size_t n = strlen(key);

	if (strcasestr(key, "password") || strcasestr(key, "passwd"))
		return true;
	return n >= 6 && strcasecmp(key + n - 6, "secret") == 0;
}

static void sm_log_line(const char *line, size_t n)
{
	syslog(LOG_INFO, "[%d] %.*s", (int)getpid(), (int)n, line);
	if (sm_log_file) {
		(void)fprintf(sm_log_file, "SM: [%d] %.*s\n", (int)getpid(), (int)n, line);
		(void)fflush(sm_log_file);
	}
}

static void sm_log_text(const char *text)
{
	const char *p = text, *nl;

	do {
		nl = strchr(p, '\n');
		sm_log_line(p, nl ? (size_t)(nl - p) : strlen(p));
		p = nl ? nl + 1 : NULL;
	} while (p && *p);
}

static void sm_log_sink(enum rp_log_level level, const char *msg, void *payload)
{
	sm_log("replun %s: %s", rp_log_level_name(level), msg);
}

void sm_log_open(void)
{
	const char *path = getenv("REPLUN_SM_LOG");

	openlog("SM", 0, LOG_LOCAL2);
	if (path && *path)
		sm_log_file = fopen(path, "ae");
	rp_log_set_sink(sm_log_sink, RP_LOG_INFO, NULL);
}

void sm_log(const char *fmt, ...)
{
	char buf[8192 + 512];
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	sm_log_text(buf);
}

void sm_log_close(void)
{
	rp_log_set_sink(NULL, RP_LOG_ERROR, NULL);
	if (sm_log_file)
		(void)fclose(sm_log_file);
	sm_log_file = NULL;
	closelog();
}

/* SPDX-License-Identifier: MIT */
/* log.c - the process-wide log sink set by a front end, and three ready sinks. */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <sys/time.h>
#include <time.h>

#include "replun/common.h"

static rp_log_fn log_fn;
static void *log_payload;
static enum rp_log_level log_min = RP_LOG_INFO;

static const char *const log_names[] = { "trivia", "verbose", "info", "warning", "error" };

void rp_log_set_sink(rp_log_fn fn, enum rp_log_level min_level, void *payload)
{
	log_fn = fn;
	log_min = min_level;
	log_payload = payload;
}

void rp_logv(enum rp_log_level level, const char *fmt, va_list ap)
{
	char msg[2048];

	if (!log_fn || level < log_min)
		return;
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	log_fn(level, msg, log_payload);
}

void rp_log(enum rp_log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	rp_logv(level, fmt, ap);
	va_end(ap);
}

int rp_log_level_parse(const char *s)
{
	size_t i;

	if (!s)
		return -1;
	for (i = 0; i < sizeof(log_names) / sizeof(log_names[0]); i++)
		if (strcasecmp(s, log_names[i]) == 0)
			return (int)i;
	return -1;
}

const char *rp_log_level_name(enum rp_log_level level)
{
	if ((int)level < 0 || (size_t)level >= sizeof(log_names) / sizeof(log_names[0]))
		return "unknown";
	return log_names[level];
}

int64_t rp_now_ms(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void rp_time_format(char buf[RP_TIME_MAX], int64_t ms)
{
	time_t secs = (time_t)(ms / 1000);
	struct tm tm;

	char date[32];

	(void)gmtime_r(&secs, &tm);
	(void)strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
	(void)snprintf(buf, RP_TIME_MAX, "%.24s.%03dZ", date, (int)(ms % 1000));
}

void rp_log_sink_stderr(enum rp_log_level level, const char *msg, void *payload)
{
	(void)payload;
	(void)fprintf(stderr, "replun: %s: %s\n", rp_log_level_name(level), msg);
}

void rp_log_sink_file(enum rp_log_level level, const char *msg, void *payload)
{
	FILE *f = payload;
	char ts[RP_TIME_MAX];

	if (!f)
		return;
	rp_time_format(ts, rp_now_ms());
	(void)fprintf(f, "%s [%s] %s\n", ts, rp_log_level_name(level), msg);
	(void)fflush(f);
}

void rp_log_sink_syslog(enum rp_log_level level, const char *msg, void *payload)
{
	static const int prio[] = { LOG_DEBUG, LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR };

	(void)payload;
	syslog(prio[level <= RP_LOG_ERROR ? level : RP_LOG_ERROR], "%s", msg);
}

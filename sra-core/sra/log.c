/* SPDX-License-Identifier: MIT */
/*
 * log.c - SRA logging (spec Appendix A): every line carries a UTC timestamp, the process id and
 * the level; lines go to stdout and to <LogDirectory>/replun-sra.log at the requested level.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libxml/tree.h>

#include "sra.h"

static int log_level = RP_LOG_VERBOSE;
static FILE *log_file;

void sra_log_init(int level)
{
	log_level = level;
}

void sra_log_set_level(int level)
{
	log_level = level;
}

void sra_log_open_dir(const char *dir)
{
	char path[RP_URI_MAX];
	int fd;

	if (!dir || !*dir || log_file)
		return;
	if (mkdir(dir, 0750) < 0 && errno != EEXIST) {
		sra_log(RP_LOG_WARNING, "cannot create log directory '%s': %s", dir,
		        strerror(errno));
		return;
	}
	if (snprintf(path, sizeof(path), "%s/replun-sra.log", dir) >= (int)sizeof(path)) {
		sra_log(RP_LOG_WARNING, "log directory path '%s' is too long", dir);
		return;
	}
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0) {
		sra_log(RP_LOG_WARNING, "cannot open log file '%s': %s", path, strerror(errno));
		return;
	}
	log_file = fdopen(fd, "a");
	if (!log_file)
		(void)close(fd);
}

void sra_log_close(void)
{
	if (log_file)
		(void)fclose(log_file);
	log_file = NULL;
}

static void log_line(enum rp_log_level level, const char *msg)
{
	char ts[RP_TIME_MAX];
	const char *p = msg;

	if ((int)level < log_level)
		return;
	rp_time_format(ts, rp_now_ms());
	/* One header per physical line so multi-line messages (the request) stay attributable. */
	for (;;) {
		const char *nl = strchr(p, '\n');
		int len = nl ? (int)(nl - p) : (int)strlen(p);

		(void)printf("--> %s [%d] [%s] %.*s\n", ts, (int)getpid(), rp_log_level_name(level),
		             len, p);
		if (log_file)
			(void)fprintf(log_file, "%s [%d] [%s] %.*s\n", ts, (int)getpid(),
			              rp_log_level_name(level), len, p);
		if (!nl || !nl[1])
			break;
		p = nl + 1;
	}
	(void)fflush(stdout);
	if (log_file)
		(void)fflush(log_file);
}

void sra_log(enum rp_log_level level, const char *fmt, ...)
{
	va_list ap;
	char small[1024];
	char *msg = NULL;
	int rc;

	if ((int)level < log_level)
		return;
	va_start(ap, fmt);
	rc = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (rc < 0)
		return;
	if ((size_t)rc < sizeof(small)) {
		log_line(level, small);
		return;
	}
	msg = rp_malloc((size_t)rc + 1);
	if (!msg) {
		log_line(level, small);
		return;
	}
	va_start(ap, fmt);
	(void)vsnprintf(msg, (size_t)rc + 1, fmt, ap);
	va_end(ap);
	log_line(level, msg);
	rp_free(msg);
}

void sra_log_sink(enum rp_log_level level, const char *msg, void *payload)
{
	(void)payload;
	log_line(level, msg);
}

static void mask_passwords(xmlNodePtr n)
{
	for (; n; n = n->next) {
		xmlAttrPtr a;

		if (n->type != XML_ELEMENT_NODE)
			continue;
		for (a = n->properties; a; a = a->next)
			if (a->name && strcasestr((const char *)a->name, "password"))
				(void)xmlSetProp(n, a->name, BAD_CAST "***");
		if (strcasestr((const char *)n->name, "password")) {
			xmlNodeSetContent(n, BAD_CAST "***");
			continue;
		}
		mask_passwords(n->children);
	}
}

void sra_log_request(xmlDocPtr req)
{
	xmlDocPtr copy;
	xmlChar *buf = NULL;
	int len = 0;

	if (RP_LOG_VERBOSE < log_level || !req)
		return;
	copy = xmlCopyDoc(req, 1);
	if (!copy)
		return;
	mask_passwords(xmlDocGetRootElement(copy));
	xmlDocDumpFormatMemoryEnc(copy, &buf, &len, "UTF-8", 1);
	if (buf) {
		sra_log(RP_LOG_VERBOSE, "Incoming request (passwords replaced):\n%s", (char *)buf);
		xmlFree(buf);
	}
	xmlFreeDoc(copy);
}

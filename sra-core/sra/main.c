/* SPDX-License-Identifier: MIT */
/*
 * main.c - replun-sra: reads one SRA v2 request from stdin (bounded, no network, no DTD, no
 * entities), checks the namespace, dispatches on <Name> and writes the response atomically to
 * <OutputFile>. Exits 0 whenever a response could be written.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <libxml/parser.h>

#include "sra.h"

const struct sra_cmd sra_cmds[] = {
	{ "queryInfo", sra_cmd_query_info, NULL },
	{ "queryStrings", sra_cmd_query_strings, NULL },
	{ "queryErrorDefinitions", sra_cmd_query_error_definitions, NULL },
	{ "queryCapabilities", sra_cmd_query_capabilities, NULL },
	{ "queryConnectionParameters", sra_cmd_query_connection_parameters, NULL },
	{ "discoverArrays", sra_cmd_discover_arrays, NULL },
	{ "discoverDevices", sra_cmd_discover_devices, NULL },
	{ "queryReplicationSettings", sra_cmd_query_replication_settings, NULL },
	{ "queryDeviceDetails", sra_cmd_query_device_details, NULL },
	{ "queryRecoveryPoints", sra_cmd_query_recovery_points, NULL },
	{ "syncOnce", sra_cmd_sync_once, "source" },
	{ "querySyncStatus", sra_cmd_query_sync_status, NULL },
	{ "checkTestFailoverStart", sra_cmd_workflow, NULL },
	{ "testFailoverStart", sra_cmd_workflow, NULL },
	{ "testFailoverStop", sra_cmd_workflow, NULL },
	{ "checkFailover", sra_cmd_workflow, NULL },
	{ "prepareFailover", sra_cmd_workflow, NULL },
	{ "failover", sra_cmd_workflow, NULL },
	{ "prepareReverseReplication", sra_cmd_workflow, NULL },
	{ "reverseReplication", sra_cmd_workflow, "source" },
	{ "prepareRestoreReplication", sra_cmd_workflow, NULL },
	{ "restoreReplication", sra_cmd_workflow, "source" },
};
const size_t sra_n_cmds = sizeof(sra_cmds) / sizeof(sra_cmds[0]);

/* Reads stdin: at most SRA_MAX_REQUEST + 1 bytes are kept, the rest is drained (bounded). */
static char *read_stdin(size_t *len, bool *too_large)
{
	size_t cap = 64 * 1024, n = 0;
	char *buf = rp_malloc(cap + 1);
	char sink[65536];
	uint64_t drained = 0;

	*too_large = false;
	if (!buf)
		return NULL;
	for (;;) {
		ssize_t r;

		if (n == cap) {
			char *grown;

			if (cap > SRA_MAX_REQUEST) {
				*too_large = true;
				break;
			}
			cap *= 2;
			if (cap > SRA_MAX_REQUEST + 1)
				cap = SRA_MAX_REQUEST + 1;
			grown = rp_realloc(buf, cap + 1);
			if (!grown) {
				rp_free(buf);
				return NULL;
			}
			buf = grown;
		}
		r = read(STDIN_FILENO, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	if (*too_large) {
		/* Let the writer finish instead of failing on a closed pipe; stop after 1 GiB. */
		for (;;) {
			ssize_t r = read(STDIN_FILENO, sink, sizeof(sink));

			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0 || (drained += (uint64_t)r) > ((uint64_t)1 << 30))
				break;
		}
		n = SRA_MAX_REQUEST;
	}
	buf[n] = '\0';
	*len = n;
	return buf;
}

/*
 * Finds <OutputFile> in a request that cannot be used (malformed, refused or oversized) by a
 * recovering parse, so it can still be answered with an <Error>. Nothing else is read from it.
 */
static char *salvage_output_file(const char *buf, size_t len)
{
	xmlDocPtr doc;
	xmlNodePtr root, c;
	char *out = NULL;

	doc = xmlReadMemory(buf, (int)len, NULL, NULL,
	                    XML_PARSE_RECOVER | XML_PARSE_NONET | XML_PARSE_NOERROR |
	                            XML_PARSE_NOWARNING);
	if (!doc)
		return NULL;
	root = xmlDocGetRootElement(doc);
	for (c = root ? root->children : NULL; c && !out; c = c->next) {
		xmlChar *s;

		if (c->type != XML_ELEMENT_NODE || strcmp((const char *)c->name, "OutputFile") != 0)
			continue;
		s = xmlNodeGetContent(c);
		if (s && *s && xmlStrlen(s) < RP_URI_MAX)
			out = rp_strdup((const char *)s);
		xmlFree(s);
	}
	xmlFreeDoc(doc);
	return out;
}

/*
 * Last resort when even a recovering parse gives up (e.g. on an entity bomb): a lexical scan for
 * <OutputFile>text</OutputFile> (any prefix) whose text holds no markup and no entity other
 * than the five predefined ones.
 */
static char *scan_output_file(const char *buf, size_t len)
{
	const char *p = buf, *end = buf + len;

	while ((p = memmem(p, (size_t)(end - p), "OutputFile>", 11)) != NULL) {
		const char *open = p, *text = p + 11, *close;
		char *out, *o;
		size_t n;

		p = text;
		while (open > buf && open[-1] != '<' && open[-1] != '/' && open[-1] != '>' &&
		       (isalnum((unsigned char)open[-1]) || open[-1] == ':' || open[-1] == '_'))
			open--;
		if (open == buf || open[-1] != '<')
			continue;
		close = memchr(text, '<', (size_t)(end - text));
		if (!close || close[1] != '/')
			continue;
		n = (size_t)(close - text);
		if (!n || n >= RP_URI_MAX)
			continue;
		out = rp_malloc(n + 1);
		if (!out)
			return NULL;
		for (o = out; text < close;) {
			static const struct {
				const char *ent;
				char c;
			} ents[] = { { "&amp;", '&' },
				     { "&lt;", '<' },
				     { "&gt;", '>' },
				     { "&quot;", '"' },
				     { "&apos;", '\'' } };
			size_t k;

			if (*text != '&') {
				*o++ = *text++;
				continue;
			}
			for (k = 0; k < sizeof(ents) / sizeof(ents[0]); k++)
				if (strncmp(text, ents[k].ent, strlen(ents[k].ent)) == 0)
					break;
			if (k == sizeof(ents) / sizeof(ents[0])) {
				rp_free(out);
				return NULL;
			}
			*o++ = ents[k].c;
			text += strlen(ents[k].ent);
		}
		*o = '\0';
		return out;
	}
	return NULL;
}

static bool has_doctype(const char *buf, size_t len)
{
	return memmem(buf, len, "<!DOCTYPE", 9) || memmem(buf, len, "<!ENTITY", 8);
}

static int answer_unusable(const char *buf, size_t len, int code, const char *message)
{
	char *out = salvage_output_file(buf, len);
	int rc = -1;

	if (!out)
		out = scan_output_file(buf, len);

	sra_log(RP_LOG_ERROR, "request refused: %s", message);
	if (out) {
		rc = sra_write_error_file(out, code, message);
		if (rc == 0)
			sra_log(RP_LOG_INFO, "error %d written to '%s'", code, out);
	} else {
		sra_log(RP_LOG_ERROR, "no <OutputFile> found in the request: no response written");
	}
	rp_free(out);
	return rc;
}

static void ctx_free(struct sra_ctx *ctx)
{
	sra_resp_free(ctx);
	if (ctx->req)
		xmlFreeDoc(ctx->req);
	rp_free(ctx->name);
	rp_free(ctx->output_file);
	rp_free(ctx->status_file);
	rp_free(ctx->log_dir);
	sra_conn_free(&ctx->conn);
}

static int dispatch(struct sra_ctx *ctx)
{
	size_t i;

	for (i = 0; i < sra_n_cmds; i++)
		if (strcmp(sra_cmds[i].name, ctx->name) == 0)
			return sra_cmds[i].fn(ctx);
	sra_fail(ctx, SRA_E_NOT_SUPPORTED_CMD, ctx->name, NULL, "command not supported");
	return 0;
}

static int run(const char *buf, size_t len)
{
	struct sra_ctx ctx;
	xmlNodePtr root;
	char *level_s = NULL;
	int level, rc = -1;
	int64_t t0 = rp_now_ms();

	memset(&ctx, 0, sizeof(ctx));
	if (has_doctype(buf, len))
		return answer_unusable(
		        buf, len, SRA_E_BAD_XML,
		        "a DOCTYPE or ENTITY declaration is not allowed in a request");
	ctx.req = xmlReadMemory(buf, (int)len, NULL, NULL,
	                        XML_PARSE_NONET | XML_PARSE_NOBLANKS | XML_PARSE_NOERROR |
	                                XML_PARSE_NOWARNING | XML_PARSE_NOCDATA);
	if (!ctx.req) {
		const xmlError *e = xmlGetLastError();
		char msg[RP_MSG_MAX];

		(void)snprintf(msg, sizeof(msg), "the request is not well-formed XML: line %d: %s",
		               e ? e->line : 0, e && e->message ? e->message : "parse error");
		msg[strcspn(msg, "\n")] = '\0';
		return answer_unusable(buf, len, SRA_E_BAD_XML, msg);
	}
	root = xmlDocGetRootElement(ctx.req);
	if (ctx.req->intSubset || ctx.req->extSubset || !root) {
		xmlFreeDoc(ctx.req);
		return answer_unusable(buf, len, SRA_E_BAD_XML, "a DOCTYPE is not allowed");
	}
	if (strcmp((const char *)root->name, "Command") != 0 || !root->ns ||
	    strcmp((const char *)root->ns->href, SRA_NS) != 0) {
		xmlFreeDoc(ctx.req);
		return answer_unusable(buf, len, SRA_E_NAMESPACE,
		                       "the root element must be <Command> in namespace '" SRA_NS
		                       "'");
	}
	ctx.cmd = root;
	ctx.output_file = sra_child_text(root, "OutputFile");
	ctx.status_file = sra_child_text(root, "StatusFile");
	ctx.log_dir = sra_child_text(root, "LogDirectory");
	ctx.name = sra_child_text(root, "Name");
	level_s = sra_child_text(root, "LogLevel");
	level = rp_log_level_parse(level_s);
	sra_log_set_level(level < 0 ? RP_LOG_VERBOSE : level);
	sra_log_open_dir(ctx.log_dir);
	rp_log_set_sink(sra_log_sink, level < 0 ? RP_LOG_VERBOSE : (enum rp_log_level)level, NULL);
	sra_log(RP_LOG_INFO, "%s version %s (libreplun %s, built %s %s), pid %d", SRA_NAME,
	        SRA_VERSION, rp_version(), __DATE__, __TIME__, (int)getpid());
	if (level < 0)
		sra_log(RP_LOG_WARNING, "unknown LogLevel '%s', using 'verbose'",
		        level_s ? level_s : "");
	sra_log_request(ctx.req);
	if (!ctx.output_file || !*ctx.output_file) {
		sra_log(RP_LOG_ERROR,
		        "the request has no <OutputFile>: no response can be written");
		goto out;
	}
	if (sra_resp_init(&ctx) < 0) {
		sra_log(RP_LOG_ERROR, "out of memory building the response");
		goto out;
	}
	if (!ctx.name || !*ctx.name) {
		sra_fail(&ctx, SRA_E_MISSING, "Name", NULL, "the request has no command <Name>");
	} else {
		sra_log(RP_LOG_INFO, "Commence: command [%s]", ctx.name);
		(void)dispatch(&ctx);
	}
	rc = sra_resp_write(&ctx);
	if (rc == 0)
		sra_log(RP_LOG_INFO, "Complete: command [%s] %s in %lld ms, response in '%s'",
		        ctx.name ? ctx.name : "", ctx.whole_error ? "FAILED" : "answered",
		        (long long)(rp_now_ms() - t0), ctx.output_file);
out:
	rp_free(level_s);
	ctx_free(&ctx);
	return rc;
}

int main(int argc, char **argv)
{
	size_t len = 0;
	bool too_large = false;
	char *buf;
	int rc;

	(void)argc;
	(void)argv;
	LIBXML_TEST_VERSION;
	sra_log_init(RP_LOG_VERBOSE);
	buf = read_stdin(&len, &too_large);
	if (!buf) {
		sra_log(RP_LOG_ERROR, "cannot read the request from stdin");
		return 1;
	}
	if (too_large) {
		char msg[RP_MSG_MAX];

		(void)snprintf(msg, sizeof(msg), "the request is larger than %zu bytes",
		               SRA_MAX_REQUEST);
		rc = answer_unusable(buf, len, SRA_E_TOO_LARGE, msg);
	} else {
		rc = run(buf, len);
	}
	rp_free(buf);
	rp_log_set_sink(NULL, RP_LOG_ERROR, NULL);
	sra_log_close();
	xmlCleanupParser();
	return rc == 0 ? 0 : 1;
}

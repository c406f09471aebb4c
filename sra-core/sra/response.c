/* SPDX-License-Identifier: MIT */
/*
 * response.c - building the <Response> document, errors and warnings with their placeholders,
 * the atomic write into OutputFile and <ProgressUpdate> appends to StatusFile.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "sra.h"

int sra_resp_init(struct sra_ctx *ctx)
{
	ctx->resp = xmlNewDoc(BAD_CAST "1.0");
	if (!ctx->resp)
		return -1;
	ctx->resp_root = xmlNewDocNode(ctx->resp, NULL, BAD_CAST "Response", NULL);
	if (!ctx->resp_root)
		return -1;
	(void)xmlDocSetRootElement(ctx->resp, ctx->resp_root);
	ctx->ns = xmlNewNs(ctx->resp_root, BAD_CAST SRA_NS, NULL);
	ctx->rpns = xmlNewNs(ctx->resp_root, BAD_CAST SRA_RP_NS, BAD_CAST SRA_RP_PREFIX);
	if (!ctx->ns || !ctx->rpns)
		return -1;
	xmlSetNs(ctx->resp_root, ctx->ns);
	return 0;
}

void sra_resp_free(struct sra_ctx *ctx)
{
	if (ctx->resp)
		xmlFreeDoc(ctx->resp);
	ctx->resp = NULL;
	ctx->resp_root = NULL;
}

xmlNodePtr sra_el(struct sra_ctx *ctx, xmlNodePtr parent, const char *name)
{
	return xmlNewChild(parent, ctx->ns, BAD_CAST name, NULL);
}

xmlNodePtr sra_el_text(struct sra_ctx *ctx, xmlNodePtr parent, const char *name, const char *text)
{
	return xmlNewTextChild(parent, ctx->ns, BAD_CAST name, BAD_CAST(text ? text : ""));
}

void sra_set_attr(xmlNodePtr n, const char *name, const char *value)
{
	if (n && value)
		(void)xmlSetProp(n, BAD_CAST name, BAD_CAST value);
}

static void put_fault(struct sra_ctx *ctx, xmlNodePtr n, int code, const char *object,
                      const char *array_id, const char *message)
{
	char buf[16];

	(void)snprintf(buf, sizeof(buf), "%d", code);
	sra_set_attr(n, "code", buf);
	/* Placeholders: the predefined SRM codes use SRM's names, ours live in our namespace. */
	if (code == SRA_E_NOT_SUPPORTED_CMD) {
		(void)xmlNewTextChild(n, ctx->ns, BAD_CAST "Command",
		                      BAD_CAST(object ? object : ""));
		return;
	}
	if (code == SRA_E_LOCALE) {
		(void)xmlNewTextChild(n, ctx->ns, BAD_CAST "Locale",
		                      BAD_CAST(object ? object : ""));
		return;
	}
	if (code == SRA_W_SYNC_RUNNING) {
		(void)xmlNewTextChild(n, ctx->ns, BAD_CAST "Device",
		                      BAD_CAST(object ? object : ""));
		return;
	}
	if (object)
		(void)xmlNewTextChild(n, ctx->rpns, BAD_CAST "Object", BAD_CAST object);
	if (array_id)
		(void)xmlNewTextChild(n, ctx->rpns, BAD_CAST "ArrayId", BAD_CAST array_id);
	(void)xmlNewTextChild(n, ctx->rpns, BAD_CAST "Message", BAD_CAST(message ? message : ""));
}

void sra_put_error(struct sra_ctx *ctx, xmlNodePtr parent, int code, const char *object,
                   const char *array_id, const char *message)
{
	xmlNodePtr e = sra_el(ctx, parent, "Error");

	put_fault(ctx, e, code, object, array_id, message);
}

void sra_put_warning(struct sra_ctx *ctx, xmlNodePtr warnings, int code, const char *object,
                     const char *message)
{
	xmlNodePtr w = sra_el(ctx, warnings, "Warning");

	put_fault(ctx, w, code, object, NULL, message);
}

void sra_fail(struct sra_ctx *ctx, int code, const char *object, const char *array_id,
              const char *message)
{
	xmlNodePtr c, next;

	if (ctx->whole_error)
		return; /* the first error wins */
	for (c = ctx->resp_root->children; c; c = next) {
		next = c->next;
		xmlUnlinkNode(c);
		xmlFreeNode(c);
	}
	sra_put_error(ctx, ctx->resp_root, code, object, array_id, message);
	ctx->whole_error = true;
	sra_log(RP_LOG_ERROR, "%s failed: error %d: %s%s%s%s", ctx->name ? ctx->name : "command",
	        code, object ? "[" : "", object ? object : "", object ? "] " : "",
	        message ? message : "");
}

void sra_fail_rp(struct sra_ctx *ctx, const struct rp_error *err, const char *object,
                 const char *array_id)
{
	sra_fail(ctx, sra_code_for_error(err->code), object, array_id,
	         err->msg[0] ? err->msg : rp_code_name(err->code));
}

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int write_atomic(const char *path, const void *buf, size_t len)
{
	char tmp[RP_URI_MAX];
	int fd;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp-%d", path, (int)getpid()) >= (int)sizeof(tmp)) {
		sra_log(RP_LOG_ERROR, "output file path '%s' is too long", path);
		return -1;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		sra_log(RP_LOG_ERROR, "cannot create '%s': %s", tmp, strerror(errno));
		return -1;
	}
	if (write_all(fd, buf, len) < 0 || fsync(fd) < 0) {
		sra_log(RP_LOG_ERROR, "cannot write '%s': %s", tmp, strerror(errno));
		(void)close(fd);
		(void)unlink(tmp);
		return -1;
	}
	if (close(fd) < 0 || rename(tmp, path) < 0) {
		sra_log(RP_LOG_ERROR, "cannot move response into '%s': %s", path, strerror(errno));
		(void)unlink(tmp);
		return -1;
	}
	return 0;
}

int sra_resp_write(struct sra_ctx *ctx)
{
	xmlChar *buf = NULL;
	int len = 0;
	int rc;

	if (!ctx->output_file)
		return -1;
	xmlDocDumpFormatMemoryEnc(ctx->resp, &buf, &len, "UTF-8", 1);
	if (!buf)
		return -1;
	rc = write_atomic(ctx->output_file, buf, (size_t)len);
	if (rc == 0)
		sra_log(RP_LOG_TRIVIA, "response written to '%s' (%d bytes):\n%s", ctx->output_file,
		        len, (char *)buf);
	xmlFree(buf);
	return rc;
}

int sra_write_error_file(const char *path, int code, const char *message)
{
	struct sra_ctx ctx;
	int rc;

	memset(&ctx, 0, sizeof(ctx));
	ctx.output_file = (char *)path;
	if (sra_resp_init(&ctx) < 0) {
		sra_resp_free(&ctx);
		return -1;
	}
	sra_fail(&ctx, code, NULL, NULL, message);
	rc = sra_resp_write(&ctx);
	sra_resp_free(&ctx);
	return rc;
}

void sra_progress(struct sra_ctx *ctx, int percent)
{
	char buf[256];
	int fd, n;

	if (!ctx->status_file || !*ctx->status_file)
		return;
	if (percent < 0)
		percent = 0;
	if (percent > 100)
		percent = 100;
	n = snprintf(buf, sizeof(buf),
	             "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	             "<ProgressUpdate xmlns=\"" SRA_NS "\">%d</ProgressUpdate>\n",
	             percent);
	fd = open(ctx->status_file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		sra_log(RP_LOG_WARNING, "cannot append to status file '%s': %s", ctx->status_file,
		        strerror(errno));
		return;
	}
	if (write_all(fd, buf, (size_t)n) < 0)
		sra_log(RP_LOG_WARNING, "cannot append to status file '%s': %s", ctx->status_file,
		        strerror(errno));
	(void)close(fd);
	sra_log(RP_LOG_TRIVIA, "progress %d%%", percent);
}

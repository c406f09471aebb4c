/* SPDX-License-Identifier: MIT */
/*
 * request.c - reading the parsed request: namespaced children, bounded text values, the
 * <Connections> block (array URIs, credentials, volumeNameFilter) and opening the local array.
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "sra.h"

static bool in_sra_ns(xmlNodePtr n)
{
	return n->ns && n->ns->href && strcmp((const char *)n->ns->href, SRA_NS) == 0;
}

xmlNodePtr sra_child(xmlNodePtr parent, const char *name)
{
	xmlNodePtr c;

	if (!parent)
		return NULL;
	for (c = parent->children; c; c = c->next)
		if (c->type == XML_ELEMENT_NODE && in_sra_ns(c) &&
		    strcmp((const char *)c->name, name) == 0)
			return c;
	return NULL;
}

xmlNodePtr sra_next(xmlNodePtr n)
{
	xmlNodePtr c;

	for (c = n->next; c; c = c->next)
		if (c->type == XML_ELEMENT_NODE && in_sra_ns(c) &&
		    strcmp((const char *)c->name, (const char *)n->name) == 0)
			return c;
	return NULL;
}

static char *trim_dup(const char *s)
{
	size_t len;
	char *out;

	while (*s && isspace((unsigned char)*s))
		s++;
	len = strlen(s);
	while (len > 0 && isspace((unsigned char)s[len - 1]))
		len--;
	if (len > SRA_MAX_TEXT)
		return NULL;
	out = rp_malloc(len + 1);
	if (!out)
		return NULL;
	memcpy(out, s, len);
	out[len] = '\0';
	return out;
}

char *sra_text(xmlNodePtr n)
{
	xmlChar *c;
	char *out;

	if (!n)
		return NULL;
	c = xmlNodeGetContent(n);
	if (!c)
		return rp_strdup("");
	out = trim_dup((const char *)c);
	xmlFree(c);
	return out;
}

char *sra_child_text(xmlNodePtr parent, const char *name)
{
	return sra_text(sra_child(parent, name));
}

char *sra_attr_get(xmlNodePtr n, const char *name)
{
	xmlChar *v;
	char *out;

	if (!n)
		return NULL;
	v = xmlGetProp(n, BAD_CAST name);
	if (!v)
		return NULL;
	out = trim_dup((const char *)v);
	xmlFree(v);
	return out;
}

void sra_conn_free(struct sra_conn *c)
{
	size_t i;

	for (i = 0; i < c->n_uris; i++)
		rp_free(c->uris[i]);
	rp_free(c->uris);
	if (c->password) {
		/* Do not leave the secret in freed memory. */
		memset(c->password, 0, strlen(c->password));
		rp_free(c->password);
	}
	rp_free(c->username);
	rp_free(c->name_filter);
	memset(c, 0, sizeof(*c));
}

static int conn_add_uris(struct sra_conn *c, const char *list)
{
	const char *p = list;

	while (*p) {
		size_t len;
		char **grown;

		while (*p && (isspace((unsigned char)*p) || *p == ';' || *p == ','))
			p++;
		len = 0;
		while (p[len] && !isspace((unsigned char)p[len]) && p[len] != ';' && p[len] != ',')
			len++;
		if (!len)
			break;
		if (c->n_uris >= 16)
			return -1;
		grown = rp_realloc(c->uris, (c->n_uris + 1) * sizeof(*grown));
		if (!grown)
			return -1;
		c->uris = grown;
		c->uris[c->n_uris] = rp_malloc(len + 1);
		if (!c->uris[c->n_uris])
			return -1;
		memcpy(c->uris[c->n_uris], p, len);
		c->uris[c->n_uris][len] = '\0';
		c->n_uris++;
		p += len;
	}
	return 0;
}

int sra_conn_parse(struct sra_ctx *ctx)
{
	xmlNodePtr conns = sra_child(ctx->cmd, "Connections");
	xmlNodePtr conn, addrs, addr, opq, o;
	struct sra_conn *c = &ctx->conn;

	/* Some SRM examples write a single <Connection> directly under <Command>. */
	conn = conns ? sra_child(conns, "Connection") : sra_child(ctx->cmd, "Connection");
	if (!conn)
		return -1;
	addrs = sra_child(conn, "Addresses");
	for (addr = sra_child(addrs, "Address"); addr; addr = sra_next(addr)) {
		char *v = sra_text(addr);

		if (!v || conn_add_uris(c, v) < 0) {
			rp_free(v);
			return -1;
		}
		rp_free(v);
	}
	c->username = sra_child_text(conn, "Username");
	c->password = sra_child_text(conn, "Password");
	if (c->username && !*c->username)
		rp_freep(&c->username);
	if (c->password && !*c->password)
		rp_freep(&c->password);
	/* The spec spells the container "Opagues"; accept the plain spelling too. */
	opq = sra_child(conn, "Opagues");
	if (!opq)
		opq = sra_child(conn, "Opaques");
	for (o = sra_child(opq, "Opaque"); o; o = sra_next(o)) {
		char *id = sra_attr_get(o, "id");

		if (id && strcmp(id, "volumeNameFilter") == 0) {
			rp_free(c->name_filter);
			c->name_filter = sra_text(o);
			if (c->name_filter && !*c->name_filter)
				rp_freep(&c->name_filter);
		}
		rp_free(id);
	}
	return c->n_uris ? 0 : -1;
}

int sra_open_array(struct rp_array **out, struct sra_ctx *ctx, const char *array_id)
{
	struct rp_open_opts opts = { 0 };
	struct rp_error err = { 0 };
	struct rp_error first = { 0 };
	size_t i;

	if (!array_id) {
		sra_fail(ctx, SRA_E_MISSING, "ArrayId", NULL, "the request has no <ArrayId>");
		return -1;
	}
	if (rp_id_check(array_id, "array id", &err) < 0) {
		sra_fail(ctx, SRA_E_BAD_ID, array_id, NULL, err.msg);
		return -1;
	}
	if (sra_conn_parse(ctx) < 0) {
		sra_fail(ctx, SRA_E_CONNECTION, "Connections", array_id,
		         "the request has no usable <Connections> block with an array address");
		return -1;
	}
	opts.username = ctx->conn.username;
	opts.password = ctx->conn.password;
	for (i = 0; i < ctx->conn.n_uris; i++) {
		struct rp_array *a = NULL;

		rp_error_clear(&err);
		if (rp_array_open(&a, ctx->conn.uris[i], &opts, &err) < 0) {
			sra_log(RP_LOG_WARNING, "cannot open array at '%s': %s", ctx->conn.uris[i],
			        err.msg);
			if (!first.code)
				first = err;
			continue;
		}
		if (strcmp(rp_array_id(a), array_id) == 0) {
			sra_log(RP_LOG_VERBOSE, "array [%s] opened at '%s'", array_id,
			        ctx->conn.uris[i]);
			*out = a;
			return 0;
		}
		sra_log(RP_LOG_TRIVIA, "array at '%s' is [%s], not [%s]", ctx->conn.uris[i],
		        rp_array_id(a), array_id);
		rp_array_close(a);
	}
	if (first.code && ctx->conn.n_uris == 1) {
		sra_fail_rp(ctx, &first, ctx->conn.uris[0], array_id);
		return -1;
	}
	sra_fail(ctx, SRA_E_UNKNOWN_ARRAY, array_id, array_id,
	         "no array with this id is reachable through the connection's addresses");
	return -1;
}

int sra_collect(struct sra_list *out, xmlNodePtr params, const char *container, const char *el,
                const char *attr)
{
	xmlNodePtr c = sra_child(params, container);
	xmlNodePtr n;
	size_t count = 0, i = 0;

	memset(out, 0, sizeof(*out));
	for (n = sra_child(c, el); n; n = sra_next(n))
		count++;
	if (!count)
		return 0;
	if (count > SRA_MAX_ITEMS)
		return -1;
	out->ids = rp_calloc(count, sizeof(*out->ids));
	out->nodes = rp_calloc(count, sizeof(*out->nodes));
	if (!out->ids || !out->nodes)
		return -1;
	for (n = sra_child(c, el); n; n = sra_next(n)) {
		char *v = sra_attr_get(n, attr);

		out->ids[i] = v ? v : rp_strdup("");
		if (!out->ids[i])
			return -1;
		out->nodes[i] = n;
		out->n = ++i;
	}
	return 0;
}

void sra_list_free(struct sra_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		rp_free(l->ids[i]);
	rp_free(l->ids);
	rp_free(l->nodes);
	memset(l, 0, sizeof(*l));
}

void sra_wwn_format(char *out, size_t len, const char *wwn)
{
	const char *p = wwn;
	size_t o = 0, digits = 0;

	if (strncasecmp(p, "naa.", 4) == 0)
		p += 4;
	for (; *p && o + 4 < len; p++) {
		if (!isxdigit((unsigned char)*p))
			continue;
		if (digits && digits % 2 == 0)
			out[o++] = ':';
		out[o++] = (char)toupper((unsigned char)*p);
		digits++;
	}
	out[o] = '\0';
}

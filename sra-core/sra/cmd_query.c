/* SPDX-License-Identifier: MIT */
/*
 * cmd_query.c - the commands that describe the adapter itself: queryInfo, queryStrings,
 * queryErrorDefinitions, queryCapabilities and queryConnectionParameters.
 */
#include <stdio.h>
#include <string.h>

#include "sra.h"

static xmlNodePtr localized(struct sra_ctx *ctx, xmlNodePtr parent, const char *el, const char *id)
{
	xmlNodePtr n = sra_el_text(ctx, parent, el, sra_string_en(id));

	sra_set_attr(n, "stringId", id);
	return n;
}

int sra_cmd_query_info(struct sra_ctx *ctx)
{
	xmlNodePtr info = sra_el(ctx, ctx->resp_root, "AdapterInfo");

	localized(ctx, info, "Name", "AdapterName");
	(void)sra_el_text(ctx, info, "Version", SRA_VERSION);
	localized(ctx, info, "Vendor", "AdapterVendor");
	(void)sra_el_text(ctx, info, "Uuid", SRA_UUID);
	(void)sra_el_text(ctx, info, "HelpUrl", SRA_HELP_URL);
	sra_log(RP_LOG_VERBOSE, "adapter [%s] version [%s] uuid [%s]", SRA_NAME, SRA_VERSION,
	        SRA_UUID);
	return 0;
}

int sra_cmd_query_strings(struct sra_ctx *ctx)
{
	xmlNodePtr p = sra_child(ctx->cmd, "QueryStringsParameters");
	char *locale = sra_child_text(p, "Locale");
	xmlNodePtr strings;
	char id[32];
	size_t i;
	int l = sra_locale_parse(locale);

	if (l < 0) {
		sra_fail(ctx, SRA_E_LOCALE, locale ? locale : "", NULL, "locale not supported");
		rp_free(locale);
		return 0;
	}
	strings = sra_el(ctx, ctx->resp_root, "Strings");
	sra_set_attr(strings, "locale", locale);
	for (i = 0; i < sra_n_strings; i++) {
		xmlNodePtr s = sra_el_text(ctx, strings, "String", sra_strings[i].text[l]);

		sra_set_attr(s, "id", sra_strings[i].id);
	}
	for (i = 0; i < sra_n_defs; i++) {
		xmlNodePtr s;

		(void)snprintf(id, sizeof(id), "Description%d", sra_defs[i].code);
		s = sra_el_text(ctx, strings, "String", sra_defs[i].desc[l]);
		sra_set_attr(s, "id", id);
		(void)snprintf(id, sizeof(id), "FixHint%d", sra_defs[i].code);
		s = sra_el_text(ctx, strings, "String", sra_defs[i].fix[l]);
		sra_set_attr(s, "id", id);
	}
	sra_log(RP_LOG_VERBOSE, "%zu strings for locale [%s] (%s)", sra_n_strings + 2 * sra_n_defs,
	        locale, sra_locale_ids[l]);
	rp_free(locale);
	return 0;
}

int sra_cmd_query_error_definitions(struct sra_ctx *ctx)
{
	xmlNodePtr errs = sra_el(ctx, ctx->resp_root, "ErrorDefinitions");
	xmlNodePtr warns = sra_el(ctx, ctx->resp_root, "WarningDefinitions");
	char buf[32];
	size_t i;

	for (i = 0; i < sra_n_defs; i++) {
		const struct sra_def *d = &sra_defs[i];
		xmlNodePtr def, n;

		def = sra_el(ctx, d->warning ? warns : errs,
		             d->warning ? "WarningDefinition" : "ErrorDefinition");
		(void)snprintf(buf, sizeof(buf), "%d", d->code);
		sra_set_attr(def, "code", buf);
		n = sra_el_text(ctx, def, "Description", d->desc[SRA_L_EN]);
		(void)snprintf(buf, sizeof(buf), "Description%d", d->code);
		sra_set_attr(n, "stringId", buf);
		n = sra_el_text(ctx, def, "FixHint", d->fix[SRA_L_EN]);
		(void)snprintf(buf, sizeof(buf), "FixHint%d", d->code);
		sra_set_attr(n, "stringId", buf);
	}
	sra_log(RP_LOG_VERBOSE, "%zu error and warning definitions", sra_n_defs);
	return 0;
}

int sra_cmd_query_capabilities(struct sra_ctx *ctx)
{
	xmlNodePtr caps = sra_el(ctx, ctx->resp_root, "AdapterCapabilities");
	xmlNodePtr sw, model, feat, protos, cmds;
	size_t i;
	int l;

	sw = sra_el(ctx, sra_el(ctx, caps, "ReplicationSoftwares"), "ReplicationSoftware");
	(void)sra_el_text(ctx, sw, "Name", "replun");
	(void)sra_el_text(ctx, sw, "Version", rp_version());
	model = sra_el(ctx, sra_el(ctx, caps, "ArrayModels"), "ArrayModel");
	(void)sra_el_text(ctx, model, "Name", "replun file array");
	localized(ctx, model, "Vendor", "ArrayVendor");
	feat = sra_el(ctx, caps, "Features");
	/* One connection may name several array URIs: discoverArrays reports each. */
	(void)sra_el(ctx, feat, "MultiArrayDiscovery");
	(void)sra_el(ctx, feat, "ConsistencyGroups");
	(void)sra_el_text(ctx, feat, "DeviceIdentification", "wwn");
	protos = sra_el(ctx, feat, "Protocols");
	(void)sra_el_text(ctx, protos, "Protocol", "iSCSI");
	cmds = sra_el(ctx, caps, "Commands");
	for (i = 0; i < sra_n_cmds; i++) {
		xmlNodePtr c = sra_el(ctx, cmds, "Command");

		sra_set_attr(c, "name", sra_cmds[i].name);
		if (strcmp(sra_cmds[i].name, "queryStrings") == 0) {
			xmlNodePtr locs = sra_el(ctx, c, "Locales");

			for (l = 0; l < SRA_N_LOCALES; l++)
				sra_set_attr(sra_el(ctx, locs, "Locale"), "id", sra_locale_ids[l]);
		}
		if (sra_cmds[i].location)
			(void)sra_el_text(ctx, c, "ExecutionLocation", sra_cmds[i].location);
		if (strcmp(sra_cmds[i].name, "queryDeviceDetails") == 0) {
			xmlNodePtr props = sra_el(ctx, c, "CustomProperties");
			size_t k;

			for (k = 0; k < sra_n_props; k++) {
				xmlNodePtr p = localized(ctx, props, "CustomProperty",
				                         sra_props[k].string_id);

				sra_set_attr(p, "name", sra_props[k].name);
			}
		}
	}
	sra_log(RP_LOG_VERBOSE, "%zu commands advertised", sra_n_cmds);
	return 0;
}

static void titled(struct sra_ctx *ctx, xmlNodePtr n, const char *title, const char *hint)
{
	localized(ctx, n, "Title", title);
	localized(ctx, n, "Hint", hint);
}

int sra_cmd_query_connection_parameters(struct sra_ctx *ctx)
{
	xmlNodePtr params = sra_el(ctx, ctx->resp_root, "AdapterConnectionParameters");
	xmlNodePtr conn, addr, n, opq;

	conn = sra_el(ctx, params, "Connection");
	sra_set_attr(conn, "id", "replun");
	titled(ctx, conn, "ConnTitle", "ConnHint");
	addr = sra_el(ctx, sra_el(ctx, conn, "Addresses"), "Address");
	sra_set_attr(addr, "id", "arrayUri");
	titled(ctx, addr, "AddressTitle", "AddressHint");
	n = sra_el(ctx, conn, "Username");
	titled(ctx, n, "UsernameTitle", "UsernameHint");
	n = sra_el(ctx, conn, "Password");
	titled(ctx, n, "PasswordTitle", "PasswordHint");
	opq = sra_el(ctx, sra_el(ctx, conn, "Opagues"), "Opaque");
	sra_set_attr(opq, "id", "volumeNameFilter");
	sra_set_attr(opq, "optional", "true");
	titled(ctx, opq, "VolumeNameFilterTitle", "VolumeNameFilterHint");
	sra_log(RP_LOG_VERBOSE, "connection [replun]: address [arrayUri], username, password, "
	                        "opaque [volumeNameFilter]");
	return 0;
}

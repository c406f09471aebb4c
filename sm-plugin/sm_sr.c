/* SPDX-License-Identifier: MIT */
/*
 * sm_sr.c - SR commands. One SR is one consistency group whose id is the SR uuid, on the array
 * device_config:array, replicated to device_config:peer. The group's metadata holds the SR's
 * name so it replicates; sr_scan rebuilds XAPI's VDI records from the LUNs and their metadata.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sm.h"

#define SM_GMETA_TYPE "sm.type"
#define SM_GMETA_UUID "sm.sr_uuid"
#define SM_GMETA_NAME "sm.name_label"
#define SM_GMETA_DESC "sm.name_description"

int sm_sr_get_driver_info(struct sm_ctx *ctx, xmlrpc_value **out, struct sm_fault *f)
{
	static const char *const caps[] = {
		"SR_CREATE",      "SR_DELETE",  "SR_ATTACH",           "SR_DETACH",
		"SR_SCAN",        "SR_PROBE",   "SR_UPDATE",           "VDI_CREATE",
		"VDI_DELETE",     "VDI_ATTACH", "VDI_DETACH",          "VDI_ACTIVATE",
		"VDI_DEACTIVATE", "VDI_CLONE",  "VDI_SNAPSHOT",        "VDI_RESIZE",
		"VDI_INTRODUCE",  "VDI_UPDATE", "VDI_GENERATE_CONFIG", "THIN_PROVISIONING",
		"LARGE_VDI",
	};
	static const char *const conf[][2] = {
		{ "array",
		  "URI of the local replun array, e.g. file:///srv/replun/siteA (required)" },
		{ "peer", "URI of the replica array; absent: the SR is not replicated (optional)" },
		{ "rpo", "seconds between scheduled syncs to the peer (optional)" },
		{ "username", "user name for a remote array (optional)" },
		{ "password", "password for a remote array (optional, never logged)" },
	};
	xmlrpc_env env;
	xmlrpc_value *st = sm_val_struct(f), *a = NULL, *c = NULL;
	size_t i;
	int rc = -1;

	xmlrpc_env_init(&env);
	if (!st)
		goto out;
	if (sm_struct_str(st, "name", "Replun", f) < 0 ||
	    sm_struct_str(
	            st, "description",
	            "replun: replicated LUN-per-VDI storage (every VDI a LUN of a consistency "
	            "group replicated to a peer array)",
	            f) < 0 ||
	    sm_struct_str(st, "vendor", "replun", f) < 0 ||
	    sm_struct_str(st, "copyright", "(C) 2026 the replun authors, MIT licence", f) < 0 ||
	    sm_struct_str(st, "driver_version", REPLUN_SM_VERSION, f) < 0 ||
	    sm_struct_str(st, "required_api_version", "1.0", f) < 0)
		goto out;
	a = xmlrpc_array_new(&env);
	for (i = 0; i < sizeof(caps) / sizeof(caps[0]) && !env.fault_occurred; i++) {
		xmlrpc_value *s = xmlrpc_string_new(&env, caps[i]);

		if (env.fault_occurred)
			break;
		xmlrpc_array_append_item(&env, a, s);
		xmlrpc_DECREF(s);
	}
	c = xmlrpc_array_new(&env);
	for (i = 0; i < sizeof(conf) / sizeof(conf[0]) && !env.fault_occurred; i++) {
		xmlrpc_value *e = sm_val_struct(f);

		if (!e || sm_struct_str(e, "key", conf[i][0], f) < 0 ||
		    sm_struct_str(e, "description", conf[i][1], f) < 0) {
			if (e)
				xmlrpc_DECREF(e);
			goto out;
		}
		xmlrpc_array_append_item(&env, c, e);
		xmlrpc_DECREF(e);
	}
	if (env.fault_occurred) {
		sm_fault_set(f, SM_GENERAL, "xml-rpc: %s", env.fault_string);
		goto out;
	}
	rc = sm_struct_take(st, "capabilities", a, f);
	a = NULL;
	if (rc == 0)
		rc = sm_struct_take(st, "configuration", c, f);
	c = NULL;
	if (rc < 0)
		goto out;
	*out = st;
	st = NULL;
out:
	if (a)
		xmlrpc_DECREF(a);
	if (c)
		xmlrpc_DECREF(c);
	if (st)
		xmlrpc_DECREF(st);
	xmlrpc_env_clean(&env);
	return rc;
}

/* Name and description of the SR from XAPI (SR.get_record); "" when unavailable. */
static void sr_names(struct sm_ctx *ctx, char **name, char **desc)
{
	struct sm_fault f = { 0 };
	struct sm_xapi *x = NULL;
	xmlrpc_value *rec = NULL;
	const char *sr_ref = ctx->call->sr_ref;

	*name = *desc = NULL;
	if (!sr_ref || sm_ctx_xapi(ctx, &x, &f) < 0 ||
	    sm_xapi_call_strs(x, &rec, "SR.get_record", &sr_ref, 1, &f) < 0)
		goto out;
	*name = sm_struct_get_str(rec, "name_label");
	*desc = sm_struct_get_str(rec, "name_description");
out:
	if (f.code)
		sm_log("warning: SR name not read from XAPI: %s", f.msg);
	if (rec)
		xmlrpc_DECREF(rec);
}

/* Applies device_config:rpo to the group, keeping its retention. */
static int sr_apply_rpo(struct sm_ctx *ctx, const struct rp_group *g, struct sm_fault *f)
{
	struct rp_error err = { 0 };
	int rc;

	if (!ctx->has_rpo || g->rpo_seconds == ctx->rpo)
		return 0;
	rc = rp_group_set_policy(ctx->array, g->id, ctx->rpo, g->retention, &err);
	if (rc < 0)
		return sm_fault_from_rp(f, SM_GENERAL, &err);
	return 0;
}

/* The SR's group on the local array; SRUnavailable when it is not there. */
static int sr_group(struct sm_ctx *ctx, struct rp_group *g, struct sm_fault *f)
{
	struct rp_error err = { 0 };
	int rc;

	if (sm_ctx_open_array(ctx, f) < 0)
		return -1;
	rc = rp_group_get(g, ctx->array, ctx->call->sr_uuid, &err);
	if (rc == RP_ENOTFOUND)
		return sm_fault_set(f, SM_SR_UNAVAILABLE,
		                    "no consistency group '%s' on array '%s' (sr_create it first)",
		                    ctx->call->sr_uuid, rp_array_id(ctx->array));
	if (rc < 0)
		return sm_fault_from_rp(f, SM_SR_UNAVAILABLE, &err);
	return 0;
}

int sm_sr_create(struct sm_ctx *ctx, xmlrpc_value **out, struct sm_fault *f)
{
	const char *id = ctx->call->sr_uuid;
	struct rp_error err = { 0 };
	struct rp_group g = { 0 };
	struct rp_device *devs = NULL;
	size_t n = 0;
	char *name = NULL, *desc = NULL;
	char gname[RP_NAME_MAX];
	int rc;

	if (sm_ctx_open_array(ctx, f) < 0 || sm_ctx_open_peer(ctx, f) < 0)
		return -1;
	if (ctx->peer && rp_array_pair(ctx->array, ctx->peer, &err) < 0)
		return sm_fault_from_rp(f, SM_SR_UNAVAILABLE, &err);
	rc = rp_group_get(&g, ctx->array, id, &err);
	if (rc == 0) {
		/* a group left by an interrupted sr_create is reused; one holding LUNs is not */
		rc = rp_lun_list(&devs, &n, ctx->array, id, &err);
		rp_free(devs);
		if (rc < 0)
			return sm_fault_from_rp(f, SM_SR_UNAVAILABLE, &err);
		if (n > 0)
			return sm_fault_set(f, SM_SR_EXISTS,
			                    "consistency group '%s' already holds %zu LUNs", id, n);
	} else if (rc != RP_ENOTFOUND) {
		return sm_fault_from_rp(f, SM_SR_UNAVAILABLE, &err);
	}
	sr_names(ctx, &name, &desc);
	rp_strlcpy(gname, name && *name ? name : id, sizeof(gname));
	rp_error_clear(&err);
	if (rc == RP_ENOTFOUND && rp_group_create(&g, ctx->array, id, gname, &err) < 0) {
		rc = sm_fault_from_rp(f, SM_GENERAL, &err);
		goto out;
	}
	rc = -1;
	if (sr_apply_rpo(ctx, &g, f) < 0)
		goto out;
	if (rp_group_meta_set(ctx->array, id, SM_GMETA_TYPE, "replun", &err) < 0 ||
	    rp_group_meta_set(ctx->array, id, SM_GMETA_UUID, id, &err) < 0 ||
	    rp_group_meta_set(ctx->array, id, SM_GMETA_NAME, name ? name : "", &err) < 0 ||
	    rp_group_meta_set(ctx->array, id, SM_GMETA_DESC, desc ? desc : "", &err) < 0) {
		sm_fault_from_rp(f, SM_GENERAL, &err);
		goto out;
	}
	sm_log("sr_create: group '%s' on array '%s'%s%s", id, rp_array_id(ctx->array),
	       ctx->peer ? " replicated to " : "", ctx->peer ? rp_array_id(ctx->peer) : "");
	*out = sm_val_nil(f);
	rc = *out ? 0 : -1;
out:
	rp_free(name);
	rp_free(desc);
	return rc;
}

int sm_sr_delete(struct sm_ctx *ctx, xmlrpc_value **out, struct sm_fault *f)
{
	const char *id = ctx->call->sr_uuid;
	struct rp_error err = { 0 };
	struct rp_group g;
	struct rp_device *devs = NULL;
	size_t n = 0;
	int rc;

	if (sm_ctx_open_array(ctx, f) < 0)
		return -1;
	rc = rp_group_get(&g, ctx->array, id, &err);
	if (rc == RP_ENOTFOUND)
		goto done; /* idempotent */
	if (rc < 0)
		return sm_fault_from_rp(f, SM_SR_UNAVAILABLE, &err);
	if (rp_lun_list(&devs, &n, ctx->array, id, &err) < 0)
		return sm_fault_from_rp(f, SM_SR_UNAVAILABLE, &err);
	rp_free(devs);
	if (n > 0)
		return sm_fault_set(f, SM_SR_NOT_EMPTY, "consistency group '%s' holds %zu LUNs", id,
		                    n);
	if (rp_group_delete(ctx->array, id, &err) < 0)
		return sm_fault_from_rp(f, SM_GENERAL, &err);
	/* the replica group on the peer goes too when reachable and empty */
	rp_error_clear(&err);
	if (sm_map_get(&ctx->call->device_config, "peer")) {
		struct sm_fault pf = { 0 };

		if (sm_ctx_open_peer(ctx, &pf) < 0)
			sm_log("warning: sr_delete: peer not reached: %s", pf.msg);
		else if (rp_group_delete(ctx->peer, id, &err) < 0)
			sm_log("warning: sr_delete: group '%s' kept on peer: %s", id, err.msg);
	}
done:
	sm_lock_remove_ns(id);
	*out = sm_val_nil(f);
	return *out ? 0 : -1;
}

int sm_sr_attach(struct sm_ctx *ctx, xmlrpc_value **out, struct sm_fault *f)
{
	struct rp_group g;

	if (sr_group(ctx, &g, f) < 0 || sr_apply_rpo(ctx, &g, f) < 0)
		return -1;
	*out = sm_val_nil(f);
	return *out ? 0 : -1;
}

int sm_sr_detach(struct sm_ctx *ctx, xmlrpc_value **out, struct sm_fault *f)
{
	if (sm_datapath_sr_busy(ctx->call->sr_uuid))
		return sm_fault_set(f, SM_SR_IN_USE,
		                    "VDIs of SR '%s' are still active on this host",
		                    ctx->call->sr_uuid);
	*out = sm_val_nil(f);
	return *out ? 0 : -1;
}

/* SR.set_physical_size / set_physical_utilisation / set_virtual_allocation. */
static int sr_stats(struct sm_ctx *ctx, struct sm_fault *f)
{
	struct rp_array_info info;
	struct rp_error err = { 0 };
	struct sm_xapi *x = NULL;
	uint64_t virt = 0, phys = 0;
	const char *ref = ctx->call->sr_ref;

	if (!ref || !*ref)
		return sm_fault_set(f, SM_BAD_REQUEST, "sr_ref missing");
	if (rp_array_info(&info, ctx->array, &err) < 0 ||
	    rp_group_usage(&virt, &phys, ctx->array, ctx->call->sr_uuid, &err) < 0)
		return sm_fault_from_rp(f, SM_SR_UNAVAILABLE, &err);
	if (sm_ctx_xapi(ctx, &x, f) < 0 ||
	    sm_xapi_set_int(x, "SR.set_physical_size", ref, info.capacity, f) < 0 ||
	    sm_xapi_set_int(x, "SR.set_physical_utilisation", ref,
	                    info.capacity > info.free ? info.capacity - info.free : 0, f) < 0 ||
	    sm_xapi_set_int(x, "SR.set_virtual_allocation", ref, virt, f) < 0)
		return -1;
	return 0;
}

/* Keeps the SR's name in the group metadata (it replicates; sr_probe shows it) in line. */
static void sr_sync_names(struct sm_ctx *ctx)
{
	const char *id = ctx->call->sr_uuid;
	struct rp_error err = { 0 };
	char *name = NULL, *desc = NULL, *old_name = NULL, *old_desc = NULL;

	sr_names(ctx, &name, &desc);
	if (!name || !desc)
		goto out;
	(void)rp_group_meta_get(&old_name, ctx->array, id, SM_GMETA_NAME, &err);
	rp_error_clear(&err);
	(void)rp_group_meta_get(&old_desc, ctx->array, id, SM_GMETA_DESC, &err);
	rp_error_clear(&err);
	if ((!old_name || strcmp(old_name, name) != 0) &&
	    rp_group_meta_set(ctx->array, id, SM_GMETA_NAME, name, &err) < 0)
		sm_log("warning: SR name not stored: %s", err.msg);
	rp_error_clear(&err);
	if ((!old_desc || strcmp(old_desc, desc) != 0) &&
	    rp_group_meta_set(ctx->array, id, SM_GMETA_DESC, desc, &err) < 0)
		sm_log("warning: SR description not stored: %s", err.msg);
out:
	rp_free(name);
	rp_free(desc);
	rp_free(old_name);
	rp_free(old_desc);
}

int sm_sr_update(struct sm_ctx *ctx, xmlrpc_value **out, struct sm_fault *f)
{
	struct rp_group g;

	if (sr_group(ctx, &g, f) < 0 || sr_stats(ctx, f) < 0)
		return -1;
	/* only where the group is written: a target follows its source at each sync */
	if (g.role != RP_GROUP_TARGET && g.role != RP_GROUP_DEMOTED_SOURCE)
		sr_sync_names(ctx);
	*out = sm_val_nil(f);
	return *out ? 0 : -1;
}

/* ------------------------------------------------------------------------------------------ */
/* sr_scan                                                                                     */

struct xapi_vdi {
	char *ref;
	char *uuid;
	char *location;
	uint64_t virtual_size;
	uint64_t physical_utilisation;
	bool seen;
};

static uint64_t rec_u64(xmlrpc_value *rec, const char *key)
{
	char *s = sm_struct_get_str(rec, key);
	uint64_t v = s ? strtoull(s, NULL, 10) : 0;

	rp_free(s);
	return v;
}

/* XAPI's VDIs of this SR: VDI.get_all_records_where('field "SR" = "<sr_ref>"'). */
static int xapi_vdis(struct sm_ctx *ctx, struct xapi_vdi **out, size_t *n, struct sm_fault *f)
{
	struct sm_xapi *x = NULL;
	xmlrpc_env env;
	xmlrpc_value *p = NULL, *q = NULL, *res = NULL;
	struct xapi_vdi *v = NULL;
	char expr[300];
	int i, cnt, rc = -1;

	*out = NULL;
	*n = 0;
	xmlrpc_env_init(&env);
	if (!ctx->call->sr_ref || strchr(ctx->call->sr_ref, '"'))
		return sm_fault_set(f, SM_BAD_REQUEST, "sr_ref missing or bad");
	if (sm_ctx_xapi(ctx, &x, f) < 0)
		goto out;
	(void)snprintf(expr, sizeof(expr), "field \"SR\" = \"%s\"", ctx->call->sr_ref);
	p = xmlrpc_array_new(&env);
	q = xmlrpc_string_new(&env, expr);
	xmlrpc_array_append_item(&env, p, q);
	if (env.fault_occurred) {
		sm_fault_set(f, SM_GENERAL, "xml-rpc: %s", env.fault_string);
		goto out;
	}
	if (sm_xapi_call(x, &res, "VDI.get_all_records_where", p, f) < 0)
		goto out;
	if (xmlrpc_value_type(res) != XMLRPC_TYPE_STRUCT) {
		sm_fault_set(f, SM_API_FAILURE, "VDI.get_all_records_where: not a map");
		goto out;
	}
	cnt = xmlrpc_struct_size(&env, res);
	v = rp_calloc((size_t)cnt + 1, sizeof(*v));
	if (!v) {
		sm_fault_set(f, SM_GENERAL, "out of memory");
		goto out;
	}
	for (i = 0; i < cnt; i++) {
		xmlrpc_value *k = NULL, *rec = NULL;
		const char *ref = NULL;

		xmlrpc_struct_read_member(&env, res, (unsigned)i, &k, &rec);
		if (env.fault_occurred)
			break;
		xmlrpc_read_string(&env, k, &ref);
		if (!env.fault_occurred) {
			v[*n].ref = rp_strdup(ref);
			v[*n].uuid = sm_struct_get_str(rec, "uuid");
			v[*n].location = sm_struct_get_str(rec, "location");
			v[*n].virtual_size = rec_u64(rec, "virtual_size");
			v[*n].physical_utilisation = rec_u64(rec, "physical_utilisation");
			(*n)++;
		}
		free((void *)ref);
		xmlrpc_DECREF(k);
		xmlrpc_DECREF(rec);
	}
	if (env.fault_occurred) {
		sm_fault_set(f, SM_API_FAILURE, "VDI records: %s", env.fault_string);
		goto out;
	}
	*out = v;
	v = NULL;
	rc = 0;
out:
	if (v) {
		for (i = 0; i < (int)*n; i++) {
			rp_free(v[i].ref);
			rp_free(v[i].uuid);
			rp_free(v[i].location);
		}
		rp_free(v);
		*n = 0;
	}
	if (res)
		xmlrpc_DECREF(res);
	if (q)
		xmlrpc_DECREF(q);
	if (p)
		xmlrpc_DECREF(p);
	xmlrpc_env_clean(&env);
	return rc;
}

int sm_sr_scan(struct sm_ctx *ctx, xmlrpc_value **out, struct sm_fault *f)
{
	struct rp_error err = { 0 };
	struct rp_group g;
	struct rp_device *devs = NULL;
	struct xapi_vdi *xv = NULL;
	struct sm_xapi *x = NULL;
	struct introduced {
		char *ref;
		char *uuid;
		char *snapshot_of;
	} *nv = NULL;
	size_t n = 0, nx = 0, nn = 0, i, j;
	unsigned introduced = 0, forgotten = 0, failed = 0;
	char first_err[512] = "";
	int rc = -1;

	/* the array must be read; a failure here never looks like an empty SR */
	if (sm_ctx_open_array(ctx, f) < 0) {
		f->code = SM_SR_SCAN;
		return -1;
	}
	if (rp_group_get(&g, ctx->array, ctx->call->sr_uuid, &err) < 0)
		return sm_fault_set(f, SM_SR_SCAN,
		                    "consistency group '%s' unreadable on array '%s': %s",
		                    ctx->call->sr_uuid, rp_array_id(ctx->array), err.msg);
	if (rp_lun_list(&devs, &n, ctx->array, ctx->call->sr_uuid, &err) < 0)
		return sm_fault_set(f, SM_SR_SCAN, "LUNs of '%s' unreadable: %s",
		                    ctx->call->sr_uuid, err.msg);
	if (sm_ctx_xapi(ctx, &x, f) < 0 || xapi_vdis(ctx, &xv, &nx, f) < 0)
		goto out;
	nv = rp_calloc(n + 1, sizeof(*nv));
	if (!nv) {
		sm_fault_set(f, SM_GENERAL, "out of memory");
		goto out;
	}
	for (i = 0; i < n; i++) {
		struct sm_map meta = { 0 };
		struct sm_fault lf = { 0 };
		struct xapi_vdi *known = NULL;
		const char *uuid;

		for (j = 0; j < nx; j++)
			if (xv[j].location && strcmp(xv[j].location, devs[i].name) == 0)
				known = &xv[j];
		if (known) {
			known->seen = true;
			if (known->virtual_size != devs[i].size &&
			    sm_xapi_set_int(x, "VDI.set_virtual_size", known->ref, devs[i].size,
			                    &lf) < 0)
				failed++;
			if (lf.code == 0 && known->physical_utilisation != devs[i].allocated &&
			    sm_xapi_set_int(x, "VDI.set_physical_utilisation", known->ref,
			                    devs[i].allocated, &lf) < 0)
				failed++;
		} else if (sm_meta_load(&meta, ctx->array, devs[i].id, SM_SR_SCAN, &lf) == 0) {
			const char *so = sm_map_get(&meta, "vdi.snapshot_of");

			uuid = sm_map_get(&meta, "vdi.uuid");
			uuid = uuid && *uuid ? uuid : devs[i].name;
			if (sm_vdi_introduce_lun(ctx, &nv[nn].ref, &devs[i], &meta, uuid, &lf) <
			    0) {
				failed++;
			} else {
				nv[nn].uuid = rp_strdup(uuid);
				nv[nn].snapshot_of =
				        so && *so && sm_bool(sm_map_get(&meta, "vdi.is_a_snapshot"))
				                ? rp_strdup(so)
				                : NULL;
				nn++;
				introduced++;
			}
		} else {
			failed++;
		}
		if (lf.code && !first_err[0])
			rp_strlcpy(first_err, lf.msg, sizeof(first_err));
		sm_map_dispose(&meta);
	}
	/* snapshots brought back keep their link to the VDI they were taken from */
	for (i = 0; i < nn; i++) {
		struct sm_fault lf = { 0 };
		const char *src = NULL;

		if (!nv[i].snapshot_of)
			continue;
		for (j = 0; j < nx && !src; j++)
			if (xv[j].uuid && strcmp(xv[j].uuid, nv[i].snapshot_of) == 0)
				src = xv[j].ref;
		for (j = 0; j < nn && !src; j++)
			if (nv[j].uuid && strcmp(nv[j].uuid, nv[i].snapshot_of) == 0)
				src = nv[j].ref;
		if (src && sm_xapi_set_str(x, "VDI.set_snapshot_of", nv[i].ref, src, &lf) < 0) {
			failed++;
			if (!first_err[0])
				rp_strlcpy(first_err, lf.msg, sizeof(first_err));
		}
	}
	for (j = 0; j < nx; j++) {
		struct sm_fault lf = { 0 };

		if (xv[j].seen)
			continue;
		sm_log("sr_scan: VDI '%s' (location '%s') is gone from the array: forgetting it",
		       xv[j].uuid ? xv[j].uuid : "?", xv[j].location ? xv[j].location : "");
		if (sm_xapi_vdi_forget(x, xv[j].ref, &lf) < 0) {
			failed++;
			if (!first_err[0])
				rp_strlcpy(first_err, lf.msg, sizeof(first_err));
		} else {
			forgotten++;
		}
	}
	sm_log("sr_scan: %zu LUNs, %zu VDIs known to XAPI, %u introduced, %u forgotten, %u failed",
	       n, nx, introduced, forgotten, failed);
	if (failed) {
		sm_fault_set(f, SM_SR_SCAN, "%u VDI updates failed, first: %s", failed, first_err);
		goto out;
	}
	if (sr_stats(ctx, f) < 0)
		goto out;
	*out = sm_val_nil(f);
	rc = *out ? 0 : -1;
out:
	for (i = 0; nv && i < nn; i++) {
		rp_free(nv[i].ref);
		rp_free(nv[i].uuid);
		rp_free(nv[i].snapshot_of);
	}
	rp_free(nv);
	for (j = 0; j < nx; j++) {
		rp_free(xv[j].ref);
		rp_free(xv[j].uuid);
		rp_free(xv[j].location);
	}
	rp_free(xv);
	rp_free(devs);
	return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* sr_probe                                                                                    */

struct probe_meta {
	char *name;
	char *desc;
	bool ours;
};

static int probe_meta_cb(const char *key, const char *value, void *payload)
{
	struct probe_meta *pm = payload;

	if (strcmp(key, SM_GMETA_NAME) == 0 && !pm->name)
		pm->name = rp_strdup(value);
	else if (strcmp(key, SM_GMETA_DESC) == 0 && !pm->desc)
		pm->desc = rp_strdup(value);
	else if (strcmp(key, SM_GMETA_TYPE) == 0 && strcmp(value, "replun") == 0)
		pm->ours = true;
	return 0;
}

/* Appends @s to the document: raw, or XML-escaped. -1 when full. */
static int doc_raw(char *doc, size_t len, const char *s)
{
	size_t o = strlen(doc), n = strlen(s);

	if (o + n + 1 > len)
		return -1;
	memcpy(doc + o, s, n + 1);
	return 0;
}

static int doc_elem(char *doc, size_t len, const char *tag, const char *text)
{
	char t[64];

	(void)snprintf(t, sizeof(t), "\t\t<%s>", tag);
	if (doc_raw(doc, len, t) < 0 || sm_xml_escape(doc, len, text) < 0)
		return -1;
	(void)snprintf(t, sizeof(t), "</%s>\n", tag);
	return doc_raw(doc, len, t);
}

static int probe_add(char *doc, size_t len, struct rp_array *a, const struct rp_group *g,
                     struct sm_fault *f)
{
	struct probe_meta pm = { 0 };
	struct rp_error err = { 0 };
	uint64_t virt = 0, phys = 0;
	char num[32], key[RP_ID_MAX + 16];
	int rc = 0;

	(void)rp_group_meta_foreach(a, g->id, probe_meta_cb, &pm, &err);
	if (!pm.ours && !sm_uuid_valid(g->id))
		goto out; /* not an SR */
	(void)snprintf(key, sizeof(key), "<UUID>%s<", g->id);
	if (strstr(doc, key))
		goto out; /* already listed from the other array */
	(void)rp_group_usage(&virt, &phys, a, g->id, &err);
	(void)snprintf(num, sizeof(num), "%llu", (unsigned long long)virt);
	if (doc_raw(doc, len, "\t<SR>\n") < 0 || doc_elem(doc, len, "UUID", g->id) < 0 ||
	    doc_elem(doc, len, "name_label", pm.name ? pm.name : "") < 0 ||
	    doc_elem(doc, len, "name_description", pm.desc ? pm.desc : "") < 0 ||
	    doc_elem(doc, len, "size", num) < 0 ||
	    doc_elem(doc, len, "array", rp_array_id(a)) < 0 ||
	    doc_elem(doc, len, "role", rp_group_role_name(g->role)) < 0 ||
	    doc_raw(doc, len, "\t</SR>\n") < 0)
		rc = sm_fault_set(f, SM_GENERAL, "probe answer too large");
out:
	rp_free(pm.name);
	rp_free(pm.desc);
	return rc;
}

static int probe_array(char *doc, size_t len, struct rp_array *a, struct sm_fault *f)
{
	struct rp_error err = { 0 };
	struct rp_group *gs = NULL;
	size_t n = 0, i;
	int rc = 0;

	if (rp_group_list(&gs, &n, a, &err) < 0)
		return sm_fault_from_rp(f, SM_SR_UNAVAILABLE, &err);
	for (i = 0; i < n && rc == 0; i++)
		rc = probe_add(doc, len, a, &gs[i], f);
	rp_free(gs);
	return rc;
}

int sm_sr_probe(struct sm_ctx *ctx, xmlrpc_value **out, struct sm_fault *f)
{
	const size_t len = 1024 * 1024;
	char *doc = NULL;
	int rc = -1;

	if (sm_ctx_open_array(ctx, f) < 0)
		return -1;
	doc = rp_malloc(len);
	if (!doc)
		return sm_fault_set(f, SM_GENERAL, "out of memory");
	rp_strlcpy(doc, "<?xml version=\"1.0\" ?>\n<SRlist>\n", len);
	if (probe_array(doc, len, ctx->array, f) < 0)
		goto out;
	if (sm_map_get(&ctx->call->device_config, "peer")) {
		struct sm_fault pf = { 0 };

		if (sm_ctx_open_peer(ctx, &pf) < 0)
			sm_log("warning: sr_probe: peer not reached: %s", pf.msg);
		else if (probe_array(doc, len, ctx->peer, f) < 0)
			goto out;
	}
	if (doc_raw(doc, len, "</SRlist>\n") < 0) {
		sm_fault_set(f, SM_GENERAL, "probe answer too large");
		goto out;
	}
	*out = sm_val_string(doc, f);
	rc = *out ? 0 : -1;
out:
	rp_free(doc);
	return rc;
}

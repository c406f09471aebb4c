/* SPDX-License-Identifier: MIT */
/*
 * sm_main.c - ReplunSR entry point: argv[1] is XAPI's methodCall, stdout gets exactly one
 * methodResponse, the exit status is always 0. Dispatch table, locking, per-call context.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sm.h"

enum {
	SM_NEEDS_SR = 1 << 0,   /* sr_uuid is required */
	SM_LOCK_SR = 1 << 1,    /* hold /var/lock/sm/<sr_uuid>/sr for the whole command */
	SM_NEEDS_VDI = 1 << 2,  /* vdi_location or vdi_uuid is required */
	SM_LOCK_VDI = 1 << 3,   /* hold /var/lock/sm/<vdi>/vdi for the whole command */
	SM_CALLS_BACK = 1 << 4, /* calls XAPI back on success: libcurl is loaded up front */
};

static const struct sm_cmd {
	const char *name;
	sm_handler fn;
	unsigned flags;
} sm_cmds[] = {
	{ "sr_get_driver_info", sm_sr_get_driver_info, 0 },
	{ "sr_create", sm_sr_create, SM_NEEDS_SR | SM_LOCK_SR },
	{ "sr_delete", sm_sr_delete, SM_NEEDS_SR | SM_LOCK_SR },
	{ "sr_attach", sm_sr_attach, SM_NEEDS_SR | SM_LOCK_SR },
	{ "sr_detach", sm_sr_detach, SM_NEEDS_SR | SM_LOCK_SR },
	{ "sr_scan", sm_sr_scan, SM_NEEDS_SR | SM_LOCK_SR },
	{ "sr_update", sm_sr_update, SM_NEEDS_SR | SM_LOCK_SR },
	{ "sr_probe", sm_sr_probe, 0 },
	{ "vdi_create", sm_vdi_create, SM_NEEDS_SR | SM_LOCK_SR | SM_CALLS_BACK },
	{ "vdi_delete", sm_vdi_delete, SM_NEEDS_SR | SM_LOCK_SR | SM_NEEDS_VDI },
	{ "vdi_update", sm_vdi_update, SM_NEEDS_SR | SM_NEEDS_VDI | SM_LOCK_VDI },
	{ "vdi_introduce", sm_vdi_introduce, SM_NEEDS_SR | SM_LOCK_SR | SM_CALLS_BACK },
	{ "vdi_snapshot", sm_vdi_snapshot,
	  SM_NEEDS_SR | SM_LOCK_SR | SM_NEEDS_VDI | SM_CALLS_BACK },
	{ "vdi_clone", sm_vdi_clone, SM_NEEDS_SR | SM_LOCK_SR | SM_NEEDS_VDI | SM_CALLS_BACK },
	{ "vdi_resize", sm_vdi_resize, SM_NEEDS_SR | SM_LOCK_SR | SM_NEEDS_VDI },
	{ "vdi_attach", sm_vdi_attach, SM_NEEDS_SR | SM_NEEDS_VDI | SM_LOCK_VDI },
	{ "vdi_detach", sm_vdi_detach, SM_NEEDS_SR | SM_NEEDS_VDI | SM_LOCK_VDI },
	{ "vdi_activate", sm_vdi_activate, SM_NEEDS_SR | SM_NEEDS_VDI | SM_LOCK_VDI },
	{ "vdi_deactivate", sm_vdi_deactivate, SM_NEEDS_SR | SM_NEEDS_VDI | SM_LOCK_VDI },
	{ "vdi_generate_config", sm_vdi_generate_config, SM_NEEDS_SR | SM_NEEDS_VDI },
	{ "vdi_attach_from_config", sm_vdi_attach_from_config,
	  SM_NEEDS_SR | SM_NEEDS_VDI | SM_LOCK_VDI },
	{ "vdi_detach_from_config", sm_vdi_detach_from_config,
	  SM_NEEDS_SR | SM_NEEDS_VDI | SM_LOCK_VDI },
	{ "vdi_epoch_begin", sm_vdi_epoch, SM_NEEDS_SR | SM_NEEDS_VDI },
	{ "vdi_epoch_end", sm_vdi_epoch, SM_NEEDS_SR | SM_NEEDS_VDI },
};

static const struct sm_cmd *sm_cmd_find(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(sm_cmds) / sizeof(sm_cmds[0]); i++)
		if (strcmp(sm_cmds[i].name, name) == 0)
			return &sm_cmds[i];
	return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Per-call context                                                                            */

static int rpo_parse(struct sm_ctx *ctx, const char *s, struct sm_fault *f)
{
	char *end = NULL;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (!*s || *s == '-' || errno || *end || v == 0 || v > 31536000)
		return sm_fault_set(f, SM_INVALID_ARG,
		                    "device_config 'rpo' must be seconds between 1 and 31536000, "
		                    "not '%s'",
		                    s);
	ctx->rpo = (uint32_t)v;
	ctx->has_rpo = true;
	return 0;
}

static int open_uri(struct rp_array **out, struct sm_ctx *ctx, const char *key, const char *uri,
                    struct sm_fault *f)
{
	const struct sm_map *dc = &ctx->call->device_config;
	struct rp_open_opts opts = { 0 };
	struct rp_error err = { 0 };
	int rc;

	opts.username = sm_map_get(dc, "username");
	opts.password = sm_map_get(dc, "password");
	rc = rp_array_open(out, uri, &opts, &err);
	if (rc == 0)
		return 0;
	if (rc == RP_EINVAL)
		return sm_fault_set(f, SM_INVALID_ARG, "device_config '%s': %s", key, err.msg);
	return sm_fault_set(f, SM_SR_UNAVAILABLE, "device_config '%s': %s", key,
	                    err.msg[0] ? err.msg : rp_code_name(rc));
}

int sm_ctx_open_array(struct sm_ctx *ctx, struct sm_fault *f)
{
	const struct sm_map *dc = &ctx->call->device_config;
	const char *uri = sm_map_get(dc, "array"), *rpo = sm_map_get(dc, "rpo");
	const char *peer = sm_map_get(dc, "peer");

	if (ctx->array)
		return 0;
	if (!uri || !*uri)
		return sm_fault_set(f, SM_CONFIG_PARAMS_MISSING,
		                    "device_config key 'array' is missing (the URI of the local "
		                    "array, e.g. file:///srv/siteA)");
	if (peer && !*peer)
		return sm_fault_set(f, SM_INVALID_ARG, "device_config 'peer' is empty");
	if (rpo && *rpo && rpo_parse(ctx, rpo, f) < 0)
		return -1;
	if (open_uri(&ctx->array, ctx, "array", uri, f) < 0)
		return -1;
	sm_phase("array opened");
	/* a command that calls back uses the warm relay; without one, libcurl loads in a thread
	 * (not earlier: the loader and the array's open contend, while the storage work that
	 * follows mostly waits for the disk) */
	if (ctx->prefetch_curl && sm_relay_open() < 0)
		sm_curl_prefetch();
	sm_phase("relay connected or libcurl prefetch started");
	return 0;
}

int sm_ctx_open_peer(struct sm_ctx *ctx, struct sm_fault *f)
{
	const char *uri = sm_map_get(&ctx->call->device_config, "peer");

	if (ctx->peer || !uri || !*uri)
		return 0;
	return open_uri(&ctx->peer, ctx, "peer", uri, f);
}

int sm_ctx_xapi(struct sm_ctx *ctx, struct sm_xapi **out, struct sm_fault *f)
{
	if (!ctx->xapi) {
		if (sm_xapi_open(&ctx->xapi, ctx->call->session_ref, ctx->call->subtask_of, f) < 0)
			return -1;
		sm_phase("xapi client ready (relay or libcurl)");
	}
	*out = ctx->xapi;
	return 0;
}

void sm_ctx_dispose(struct sm_ctx *ctx)
{
	rp_array_close(ctx->peer);
	rp_array_close(ctx->array);
	sm_xapi_close(ctx->xapi);
	ctx->peer = ctx->array = NULL;
	ctx->xapi = NULL;
}

static const char *vdi_key(const struct sm_call *c)
{
	if (c->vdi_location && *c->vdi_location)
		return c->vdi_location;
	return c->vdi_uuid;
}

/* ------------------------------------------------------------------------------------------ */

static int run(struct sm_call *call, const char *xml, xmlrpc_value **result, struct sm_fault *f)
{
	struct sm_ctx ctx = { 0 };
	struct sm_lock sr_lock = SM_LOCK_INIT, vdi_lock = SM_LOCK_INIT;
	const struct sm_cmd *cmd;
	struct rp_error err = { 0 };
	char host[256];
	int rc = -1;

	if (sm_call_parse(call, xml, strlen(xml), f) < 0)
		return -1;
	sm_phase("call parsed");
	sm_log("%s", call->log_line ? call->log_line : call->method);
	sm_phase("call logged");
	cmd = sm_cmd_find(call->method);
	if (!cmd)
		return sm_fault_set(f, SM_UNIMPLEMENTED, "ReplunSR does not implement '%s'",
		                    call->method);
	if ((cmd->flags & SM_NEEDS_SR) && !sm_uuid_valid(call->sr_uuid))
		return sm_fault_set(f, call->sr_uuid ? SM_INVALID_ARG : SM_BAD_REQUEST,
		                    "sr_uuid '%s' is %s", call->sr_uuid ? call->sr_uuid : "",
		                    call->sr_uuid ? "not a uuid" : "missing");
	if (cmd->flags & SM_NEEDS_VDI) {
		const char *k = vdi_key(call);

		if (!k || !*k)
			return sm_fault_set(f, SM_BAD_REQUEST, "vdi_location and vdi_uuid missing");
		if (rp_id_check(k, "vdi_location", &err) < 0)
			return sm_fault_set(f, SM_INVALID_ARG, "%s", err.msg);
	}
	ctx.call = call;
	ctx.prefetch_curl = (cmd->flags & SM_CALLS_BACK) && call->session_ref && *call->session_ref;
	if (call->host_ref && *call->host_ref) {
		ctx.host = call->host_ref;
	} else {
		if (gethostname(host, sizeof(host) - 1) < 0)
			rp_strlcpy(host, "localhost", sizeof(host));
		host[sizeof(host) - 1] = '\0';
		(void)snprintf(ctx.host_buf, sizeof(ctx.host_buf), "host:%s", host);
		ctx.host = ctx.host_buf;
	}
	if ((cmd->flags & SM_LOCK_SR) && sm_lock_acquire(&sr_lock, call->sr_uuid, "sr", f) < 0)
		goto out;
	if ((cmd->flags & SM_LOCK_VDI) && sm_lock_acquire(&vdi_lock, vdi_key(call), "vdi", f) < 0)
		goto out;
	sm_phase("locked");
	rc = cmd->fn(&ctx, result, f);
	sm_phase("command done");
	if (rc == 0 && !*result)
		rc = sm_fault_set(f, SM_GENERAL, "'%s' returned no value", call->method);
out:
	sm_curl_join(); /* no exit while the loader runs */
	sm_ctx_dispose(&ctx);
	sm_relay_close();
	sm_lock_release(&vdi_lock);
	sm_lock_release(&sr_lock);
	sm_phase("closed, unlocked");
	return rc;
}

int main(int argc, char **argv)
{
	struct sm_call call = { 0 };
	struct sm_fault f = { 0 };
	xmlrpc_value *result = NULL;
	int64_t t0 = rp_now_ms();
	int rc;

	sm_phase("main");
	sm_log_open();
	sm_phase("log opened");
	if (argc != 2) {
		rc = sm_fault_set(&f, SM_BAD_REQUEST,
		                  "expected one argument (the XML-RPC call), got %d", argc - 1);
	} else {
		rc = run(&call, argv[1], &result, &f);
	}
	if (rc == 0) {
		if (sm_print_response(stdout, result) < 0)
			sm_log("cannot write the response");
		else
			sm_log("%s done in %lld ms", call.method ? call.method : "?",
			       (long long)(rp_now_ms() - t0));
	} else {
		if (!f.code)
			sm_fault_set(&f, SM_GENERAL, "unknown failure");
		sm_log("Raising exception [%d, %s]", f.code, f.msg);
		(void)sm_print_fault(stdout, &f);
	}
	(void)fflush(stdout);
	sm_relay_finish();
	if (result)
		xmlrpc_DECREF(result);
	sm_call_dispose(&call);
	sm_log_close();
	sm_phase("exit");
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * sm_vdi.c - VDI commands. One VDI is one LUN of the SR's group whose name is the VDI's
 * location (its uuid when ReplunSR made it). VDI metadata (uuid, names, type, read-only,
 * snapshot-of, snapshot time, sm-config) lives with the LUN and replicates with it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sm.h"

#define SM_SIZE_ALIGN (1024ull * 1024ull) /* VDIs are whole MiB */

static const char *call_vdi_key(const struct sm_call *c)
{
	if (c->vdi_location && *c->vdi_location)
		return c->vdi_location;
	return c->vdi_uuid;
}

/* ------------------------------------------------------------------------------------------ */
/* Metadata                                                                                    */

static int meta_cb(const char *key, const char *value, void *payload)
{
	struct sm_map *m = payload;
	struct sm_kv *kv;

	if (m->n >= 4 * SM_MAP_MAX)
		return 0;
	kv = rp_realloc(m->kv, (m->n + 1) * sizeof(*kv));
	if (!kv)
		return RP_ERROR;
	m->kv = kv;
	kv[m->n].key = rp_strdup(key);
	kv[m->n].value = rp_strdup(value);
	m->n++;
	if (!kv[m->n - 1].key || !kv[m->n - 1].value)
		return RP_ERROR;
	return 0;
}

int sm_meta_load(struct sm_map *m, struct rp_array *a, const char *lun, int code,
                 struct sm_fault *f)
{
	struct rp_error err = { 0 };

	if (rp_lun_meta_foreach(a, lun, meta_cb, m, &err) < 0) {
		if (!err.code)
			rp_error_set(&err, RP_ERROR, "out of memory");
		return sm_fault_from_rp(f, code, &err);
	}
	return 0;
}

/* What ReplunSR keeps about a VDI with its LUN. */
struct vdi_meta {
	const char *uuid;
	const char *name_label;
	const char *name_description;
	const char *type;
	bool read_only;
	bool is_a_snapshot;
	const char *snapshot_of; /* uuid of the VDI it was taken from, "" if none */
	const char *snapshot_time;
	const char *sr_uuid;
	const struct sm_map *sm_config; /* NULL: leave as is */
};

/* The metadata records of a VDI as parallel key/value arrays (the engine's form). */
struct meta_rec {
	const char *keys[12 + SM_MAP_MAX], *vals[12 + SM_MAP_MAX];
	char *owned[SM_MAP_MAX];
	size_t n, no;
	struct sm_kv kv[12 + SM_MAP_MAX]; /* the same as an sm_map (borrowed strings) */
};

static void meta_rec_dispose(struct meta_rec *r)
{
	size_t i;

	for (i = 0; i < r->no; i++)
		rp_free(r->owned[i]);
	r->no = r->n = 0;
}

static int meta_build(struct meta_rec *r, const struct vdi_meta *vm, struct sm_fault *f)
{
	size_t i;

	r->n = r->no = 0;
#define PUT(k, v)                                                                                  \
	do {                                                                                       \
		r->keys[r->n] = (k);                                                               \
		r->vals[r->n] = (v);                                                               \
		r->n++;                                                                            \
	} while (0)
	PUT("vdi.uuid", vm->uuid);
	PUT("vdi.name_label", vm->name_label ? vm->name_label : "");
	PUT("vdi.name_description", vm->name_description ? vm->name_description : "");
	PUT("vdi.type", vm->type && *vm->type ? vm->type : "user");
	PUT("vdi.read_only", vm->read_only ? "true" : "false");
	PUT("vdi.is_a_snapshot", vm->is_a_snapshot ? "true" : "false");
	PUT("vdi.snapshot_of", vm->snapshot_of ? vm->snapshot_of : "");
	PUT("vdi.snapshot_time", vm->snapshot_time ? vm->snapshot_time : "19700101T00:00:00Z");
	PUT("vdi.sr_uuid", vm->sr_uuid);
#undef PUT
	for (i = 0; vm->sm_config && i < vm->sm_config->n && i < SM_MAP_MAX; i++) {
		size_t klen = strlen(SM_META_SMCONFIG) + strlen(vm->sm_config->kv[i].key) + 1;

		if (klen > 127) { /* the array's key limit */
			sm_log("warning: sm_config key '%.40s...' too long to keep with the LUN",
			       vm->sm_config->kv[i].key);
			continue;
		}
		r->owned[r->no] = rp_malloc(klen);
		if (!r->owned[r->no]) {
			meta_rec_dispose(r);
			return sm_fault_set(f, SM_GENERAL, "out of memory");
		}
		(void)snprintf(r->owned[r->no], klen, "%s%s", SM_META_SMCONFIG,
		               vm->sm_config->kv[i].key);
		r->keys[r->n] = r->owned[r->no++];
		r->vals[r->n++] = vm->sm_config->kv[i].value;
	}
	return 0;
}

/* @r as a map (what sm_meta_load would read back from a LUN holding only @r). */
static struct sm_map meta_rec_map(struct meta_rec *r)
{
	struct sm_map m;
	size_t i;

	for (i = 0; i < r->n; i++) {
		r->kv[i].key = (char *)r->keys[i];
		r->kv[i].value = (char *)r->vals[i];
	}
	m.n = r->n;
	m.kv = r->kv;
	return m;
}

static int meta_store(struct rp_array *a, const char *lun, const struct vdi_meta *vm, int code,
                      struct sm_fault *f)
{
	struct meta_rec r;
	struct rp_error err = { 0 };
	int rc;

	if (meta_build(&r, vm, f) < 0)
		return -1;
	rc = rp_lun_meta_set_many(a, lun, r.keys, r.vals, r.n, &err);
	meta_rec_dispose(&r);
	if (rc < 0)
		return sm_fault_from_rp(f, code, &err);
	return 0;
}

/* sm_config entries kept in @meta ("vdi.sm_config.<key>") into @out (borrowed strings). */
static int meta_sm_config(struct sm_map *out, const struct sm_map *meta)
{
	size_t i, plen = strlen(SM_META_SMCONFIG);

	out->n = 0;
	out->kv = rp_calloc(meta->n + 3, sizeof(*out->kv));
	if (!out->kv)
		return -1;
	for (i = 0; i < meta->n; i++) {
		if (strncmp(meta->kv[i].key, SM_META_SMCONFIG, plen) != 0)
			continue;
		out->kv[out->n].key = meta->kv[i].key + plen;
		out->kv[out->n].value = meta->kv[i].value;
		out->n++;
	}
	return 0;
}

static const char *meta_str(const struct sm_map *meta, const char *key, const char *dflt)
{
	const char *v = meta ? sm_map_get(meta, key) : NULL;

	return v ? v : dflt;
}

int sm_vdi_introduce_lun(struct sm_ctx *ctx, char **ref, const struct rp_device *dev,
                         const struct sm_map *meta, const char *uuid, struct sm_fault *f)
{
	struct sm_xapi *x = NULL;
	struct sm_map smc = { 0 };
	struct sm_vdi_rec r = { 0 };
	int rc;

	if (sm_ctx_xapi(ctx, &x, f) < 0)
		return -1;
	if (meta_sm_config(&smc, meta) < 0)
		return sm_fault_set(f, SM_GENERAL, "out of memory");
	/* where the VDI lives on this array; not stored, it differs between the sites */
	smc.kv[smc.n].key = (char *)"replun_lun";
	smc.kv[smc.n++].value = (char *)dev->id;
	smc.kv[smc.n].key = (char *)"replun_wwn";
	smc.kv[smc.n++].value = (char *)dev->wwn;
	r.uuid = uuid;
	r.name_label = meta_str(meta, "vdi.name_label", dev->name);
	r.name_description = meta_str(meta, "vdi.name_description", "");
	r.sr_ref = ctx->call->sr_ref;
	r.type = meta_str(meta, "vdi.type", "user");
	r.read_only = dev->read_only || sm_bool(meta_str(meta, "vdi.read_only", "false"));
	r.location = dev->name;
	r.sm_config = &smc;
	r.virtual_size = dev->size;
	r.physical_utilisation = dev->allocated;
	r.is_a_snapshot = sm_bool(meta_str(meta, "vdi.is_a_snapshot", "false"));
	r.snapshot_time = meta_str(meta, "vdi.snapshot_time", "19700101T00:00:00Z");
	r.snapshot_of = NULL; /* a ref XAPI knows; the source's uuid stays in the metadata */
	rc = sm_xapi_vdi_introduce(x, ref, &r, f);
	rp_free(smc.kv); /* strings borrowed */
	return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Lookup                                                                                      */

static bool lun_matches(const struct rp_device *d, const char *sr, const char *key)
{
	return strcmp(d->group, sr) == 0 && strcmp(d->name, key) == 0;
}

/*
 * The LUN named @key in the SR's group. RP_ENOTFOUND in @err when there is none. LUN names are
 * unique per array, so one lookup answers; only when @key is also another LUN's id (the engine
 * looks ids up first) are the group's LUNs listed to find the one named @key.
 */
static int lun_by_name(struct rp_device *dev, struct sm_ctx *ctx, const char *key,
                       struct rp_error *err)
{
	struct rp_device *devs = NULL;
	size_t n = 0, i;
	int rc;

	rc = rp_lun_get(dev, ctx->array, key, err);
	if (rc < 0 && rc != RP_ENOTFOUND)
		return rc;
	if (rc == 0 && lun_matches(dev, ctx->call->sr_uuid, key))
		return 0;
	rp_error_clear(err);
	if (rc == RP_ENOTFOUND || strcmp(dev->name, key) == 0) /* none, or in another group */
		return rp_error_set(err, RP_ENOTFOUND, "no LUN named '%s' in group '%s'", key,
		                    ctx->call->sr_uuid);
	rc = rp_lun_list(&devs, &n, ctx->array, ctx->call->sr_uuid, err);
	if (rc < 0)
		return rc;
	rc = rp_error_set(err, RP_ENOTFOUND, "no LUN named '%s' in group '%s'", key,
	                  ctx->call->sr_uuid);
	for (i = 0; i < n; i++) {
		if (lun_matches(&devs[i], ctx->call->sr_uuid, key)) {
			*dev = devs[i];
			rp_error_clear(err);
			rc = 0;
			break;
		}
	}
	rp_free(devs);
	return rc;
}

int sm_vdi_lun(struct sm_ctx *ctx, struct rp_device *dev, struct sm_fault *f)
{
	struct rp_error err = { 0 };
	const char *key = call_vdi_key(ctx->call);
	int rc;

	if (sm_ctx_open_array(ctx, f) < 0)
		return -1;
	rc = lun_by_name(dev, ctx, key, &err);
	if (rc == RP_ENOTFOUND)
		return sm_fault_set(f, SM_VDI_MISSING,
		                    "no LUN for VDI '%s' in SR '%s' on array '%s'", key,
		                    ctx->call->sr_uuid, rp_array_id(ctx->array));
	if (rc < 0)
		return sm_fault_from_rp(f, SM_VDI_UNAVAILABLE, &err);
	return 0;
}

static int size_round(uint64_t *size, const char *s, int code, struct sm_fault *f)
{
	uint64_t v;

	if (sm_u64_parse(&v, s, "size", f) < 0) {
		f->code = SM_VDI_SIZE;
		return -1;
	}
	if (v == 0 || v > UINT64_MAX - SM_SIZE_ALIGN)
		return sm_fault_set(f, SM_VDI_SIZE, "size '%s' out of range", s);
	*size = (v + SM_SIZE_ALIGN - 1) / SM_SIZE_ALIGN * SM_SIZE_ALIGN;
	return 0;
}

static int vdi_info(xmlrpc_value **out, const char *uuid, const char *location, struct sm_fault *f)
{
	xmlrpc_value *st = sm_val_struct(f);

	if (!st)
		return -1;
	if (sm_struct_str(st, "location", location, f) < 0 ||
	    sm_struct_str(st, "uuid", uuid, f) < 0) {
		xmlrpc_DECREF(st);
		return -1;
	}
	*out = st;
	return 0;
}

/*
 * Options for LUNs of this SR: in the group (which must exist: sr_create made it), replicated
 * when device_config names a peer and the group sends (after a failover the group is promoted
 * and replicates again only after reverse). The target of a new VDI's LUN is made by the
 * group's next sync (target_at_sync), as a protection group's new volumes appear at the DR
 * site with the next replication: the peer array is not touched, so VDIs can be made while
 * the DR site is down. vdi_snapshot and vdi_clone do the same (vdi_copy).
 */
static int lun_opts(struct sm_ctx *ctx, struct rp_lun_create_opts *o, struct sm_fault *f)
{
	struct rp_group g;
	struct rp_error err = { 0 };

	memset(o, 0, sizeof(*o));
	o->group = ctx->call->sr_uuid;
	if (rp_group_get(&g, ctx->array, o->group, &err) < 0)
		return sm_fault_set(f, SM_SR_UNAVAILABLE, "consistency group '%s': %s", o->group,
		                    err.msg);
	o->replicate = sm_map_get(&ctx->call->device_config, "peer") &&
	               (g.role == RP_GROUP_LOCAL || g.role == RP_GROUP_SOURCE);
	o->target_at_sync = true;
	return 0;
}

static void rollback_lun(struct sm_ctx *ctx, const char *id)
{
	struct rp_error err = { 0 };

	if (rp_lun_delete(ctx->array, id, &err) < 0)
		sm_log("warning: LUN '%s' left behind: %s", id, err.msg);
	else
		sm_log("rolled back: LUN '%s' deleted", id);
}

/* ------------------------------------------------------------------------------------------ */

int sm_vdi_create(struct sm_ctx *ctx, xmlrpc_value **out, struct sm_fault *f)
{
	struct sm_call *c = ctx->call;
	struct rp_error err = { 0 };
	struct rp_lun_create_opts o;
	struct rp_device dev;
	struct vdi_meta vm = { 0 };
	struct meta_rec mr;
	struct sm_map meta;
	char uuid[SM_UUID_LEN + 1];
	uint64_t size;
	char *ref = NULL;
	int rc;

	if (c->n_args < 1)
		return sm_fault_set(f, SM_BAD_REQUEST, "vdi_create needs args [virtual_size, ...]");
	if (size_round(&size, c->args[0], SM_VDI_CREATE, f) < 0)
		return -1;
	if (c->vdi_uuid && *c->vdi_uuid) { /* the pool metadata VDI has a deterministic uuid */
		if (!sm_uuid_valid(c->vdi_uuid))
			return sm_fault_set(f, SM_INVALID_ARG, "vdi_uuid '%s' is not a uuid",
			                    c->vdi_uuid);
		rp_strlcpy(uuid, c->vdi_uuid, sizeof(uuid));
	} else if (sm_uuid_new(uuid) < 0) {
		return sm_fault_set(f, SM_VDI_CREATE, "no random numbers for a uuid");
	}
	/* no LUN without a session to introduce it with (libcurl loads meanwhile: sm_main.c) */
	if (!c->session_ref || !*c->session_ref)
		return sm_fault_set(f, SM_API_SESSION, "the call carries no session_ref");
	if (sm_ctx_open_array(ctx, f) < 0)
		return -1;
	if (lun_opts(ctx, &o, f) < 0)
		return -1;
	sm_phase("group read");
	vm.uuid = uuid;
	vm.name_label = c->n_args > 1 ? c->args[1] : "";
	vm.name_description = c->n_args > 2 ? c->args[2] : "";
	vm.type = c->vdi_type;
	vm.is_a_snapshot = c->n_args > 4 && sm_bool(c->args[4]);
	vm.snapshot_time = c->n_args > 5 && *c->args[5] ? c->args[5] : NULL;
	vm.snapshot_of = c->n_args > 6 ? c->args[6] : "";
	vm.read_only = c->n_args > 7 && sm_bool(c->args[7]);
	vm.sr_uuid = c->sr_uuid;
	vm.sm_config = &c->vdi_sm_config;
	if (meta_build(&mr, &vm, f) < 0)
		return -1;
	/* the LUN and the VDI's metadata are one commit; names are unique per array, so the name
	 * (the VDI's key) cannot end up on a second LUN */
	o.meta_keys = mr.keys;
	o.meta_values = mr.vals;
	o.n_meta = mr.n;
	if (rp_lun_create(&dev, ctx->array, uuid, size, &o, &err) < 0) {
		meta_rec_dispose(&mr);
		if (err.code == RP_EEXISTS)
			return sm_fault_set(f, SM_VDI_EXISTS, "VDI '%s' exists: %s", uuid, err.msg);
		return sm_fault_from_rp(f, SM_VDI_CREATE, &err);
	}
	sm_phase("LUN created");
	meta = meta_rec_map(&mr);
	rc = sm_vdi_introduce_lun(ctx, &ref, &dev, &meta, uuid, f);
	sm_phase("VDI.db_introduce answered");
	meta_rec_dispose(&mr);
	if (rc < 0) {
		rollback_lun(ctx, dev.id);
		return -1;
	}
	sm_log("vdi_create: VDI %s = LUN '%s' (%llu bytes) in group '%s'%s", uuid, dev.id,
	       (unsigned long long)dev.size, c->sr_uuid,
	       o.replicate ? ", replicated (target made by the next sync)" : "");
	rp_free(ref);
	return vdi_info(out, uuid, dev.name, f);
}

int sm_vdi_delete(struct sm_ctx *ctx, xmlrpc_value **out, struct sm_fault *f)
{
	struct sm_call *c = ctx->call;
	struct rp_error err = { 0 };
	struct rp_device dev;
	struct sm_fault lf = { 0 };
	struct sm_xapi *x = NULL;

	if (sm_vdi_lun(ctx, &dev, &lf) < 0) {
		if (lf.code != SM_VDI_MISSING) {
			*f = lf;
			return -1;
		}
		sm_log("vdi_delete: no LUN for '%s': already deleted", call_vdi_key(c));
	} else if (rp_lun_delete(ctx->array, dev.id, &err) < 0) {
		return sm_fault_from_rp(f, SM_VDI_DELETE, &err);
	}
	memset(&lf, 0, sizeof(lf));
	if (c->vdi_ref && *c->vdi_ref && c->session_ref &&
	    (sm_ctx_xapi(ctx, &x, &lf) < 0 || sm_xapi_vdi_forget(x, c->vdi_ref, &lf) < 0))
		sm_log("warning: vdi_delete: %s", lf.msg);
	*out = sm_val_nil(f);
	return *out ? 0 : -1;
}

/* Snapshot (read-only) or clone (writable) of the call's VDI. */
static int vdi_copy(struct sm_ctx *ctx, xmlrpc_value **out, bool snapshot, struct sm_fault *f)
{
	struct sm_call *c = ctx->call;
	const int code = snapshot ? SM_VDI_SNAPSHOT : SM_VDI_CLONE;
	struct rp_error err = { 0 };
	struct rp_lun_copy_opts o = { 0 };
	struct rp_device src, dev;
	struct sm_map meta = { 0 }, smc = { 0 }, nm;
	struct vdi_meta vm = { 0 };
	struct meta_rec mr;
	char uuid[SM_UUID_LEN + 1], now[32];
	int rc = -1;

	if (sm_vdi_lun(ctx, &src, f) < 0)
		return -1;
	if (sm_uuid_new(uuid) < 0)
		return sm_fault_set(f, code, "no random numbers for a uuid");
	if (sm_meta_load(&meta, ctx->array, src.id, code, f) < 0)
		return -1;
	sm_phase("source LUN and metadata read");
	if (meta_sm_config(&smc, &meta) < 0) {
		sm_map_dispose(&meta);
		return sm_fault_set(f, SM_GENERAL, "out of memory");
	}
	sm_time_now(now);
	vm.uuid = uuid;
	vm.name_label = meta_str(&meta, "vdi.name_label", src.name);
	vm.name_description = meta_str(&meta, "vdi.name_description", "");
	vm.type = meta_str(&meta, "vdi.type", "user");
	vm.read_only = snapshot;
	vm.is_a_snapshot = snapshot;
	vm.snapshot_of = snapshot ? meta_str(&meta, "vdi.uuid", c->vdi_uuid) : "";
	vm.snapshot_time = snapshot ? now : NULL;
	vm.sr_uuid = c->sr_uuid;
	vm.sm_config = &smc;
	if (meta_build(&mr, &vm, f) < 0)
		goto out;
	/* named by the new VDI's uuid (not the engine's default copy name), with its metadata in
	 * the same commit */
	o.name = uuid;
	o.target_at_sync = true; /* as lun_opts: the next sync of the SR's group makes its target */
	o.meta_keys = mr.keys;
	o.meta_values = mr.vals;
	o.n_meta = mr.n;
	rc = snapshot ? rp_lun_snapshot_ex(&dev, ctx->array, src.id, &o, &err)
	              : rp_lun_clone_ex(&dev, ctx->array, src.id, &o, &err);
	if (rc < 0) {
		rc = sm_fault_from_rp(f, err.code == RP_EEXISTS ? SM_VDI_EXISTS : code, &err);
		goto out_rec;
	}
	sm_phase(snapshot ? "LUN snapshot taken" : "LUN cloned");
	nm = meta_rec_map(&mr);
	rc = sm_vdi_introduce_lun(ctx, NULL, &dev, &nm, uuid, f);
	sm_phase("VDI.db_introduce answered");
	if (rc < 0) {
		rollback_lun(ctx, dev.id);
		goto out_rec;
	}
	sm_log("%s: VDI %s = LUN '%s' from LUN '%s'", snapshot ? "vdi_snapshot" : "vdi_clone", uuid,
	       dev.id, src.id);
	rc = vdi_info(out, uuid, dev.name, f);
out_rec:
	meta_rec_dispose(&mr);
out:
	rp_free(smc.kv); /* strings borrowed from meta */
	sm_map_dispose(&meta);
	return rc;
}

int sm_vdi_snapshot(struct sm_ctx *ctx, xmlrpc_value **out, struct sm_fault *f)
{
	return vdi_copy(ctx, out, true, f);
}

int sm_vdi_clone(struct sm_ctx *ctx, xmlrpc_value **out, struct sm_fault *f)
{
	return vdi_copy(ctx, out, false, f);
}

int sm_vdi_resize(struct sm_ctx *ctx, xmlrpc_value **out, struct sm_fault *f)
{
	struct sm_call *c = ctx->call;
	struct rp_error err = { 0 };
	struct rp_device dev;
	struct sm_xapi *x = NULL;
	uint64_t size;

	if (c->n_args < 1)
		return sm_fault_set(f, SM_BAD_REQUEST, "vdi_resize needs args [new_size]");
	if (size_round(&size, c->args[0], SM_VDI_RESIZE, f) < 0 || sm_vdi_lun(ctx, &dev, f) < 0)
		return -1;
	if (size < dev.size)
		return sm_fault_set(f, SM_VDI_RESIZE,
		                    "shrinking VDI '%s' from %llu to %llu bytes "
		                    "is not supported",
		                    dev.name, (unsigned long long)dev.size,
		                    (unsigned long long)size);
	if (size > dev.size && rp_lun_resize(ctx->array, dev.id, size, &err) < 0)
		return sm_fault_from_rp(f, SM_VDI_RESIZE, &err);
	if (rp_lun_get(&dev, ctx->array, dev.id, &err) < 0)
		return sm_fault_from_rp(f, SM_VDI_RESIZE, &err);
	if (c->vdi_ref && *c->vdi_ref) {
		if (sm_ctx_xapi(ctx, &x, f) < 0 ||
		    sm_xapi_set_int(x, "VDI.set_virtual_size", c->vdi_ref, dev.size, f) < 0 ||
		    sm_xapi_set_int(x, "VDI.set_physical_utilisation", c->vdi_ref, dev.allocated,
		                    f) < 0)
			return -1;
	}
	sm_log("vdi_resize: LUN '%s' now %llu bytes", dev.id, (unsigned long long)dev.size);
	return vdi_info(out, c->vdi_uuid && *c->vdi_uuid ? c->vdi_uuid : dev.name, dev.name, f);
}

/* Keeps the replicated metadata in line with XAPI's record (names change in XAPI). */
int sm_vdi_update(struct sm_ctx *ctx, xmlrpc_value **out, struct sm_fault *f)
{
	struct sm_call *c = ctx->call;
	struct rp_error err = { 0 };
	struct rp_device dev;
	struct sm_xapi *x = NULL;
	xmlrpc_value *rec = NULL;
	char *name = NULL, *desc = NULL;
	const char *keys[2] = { "vdi.name_label", "vdi.name_description" };
	const char *vals[2], *vdi_ref = c->vdi_ref;
	int rc = -1;

	if (sm_vdi_lun(ctx, &dev, f) < 0)
		goto out;
	if (!c->vdi_ref || !*c->vdi_ref || !c->session_ref) {
		rc = 0; /* nothing to read the record with: the metadata stays */
		goto done;
	}
	if (sm_ctx_xapi(ctx, &x, f) < 0 ||
	    sm_xapi_call_strs(x, &rec, "VDI.get_record", &vdi_ref, 1, f) < 0)
		goto out;
	name = sm_struct_get_str(rec, "name_label");
	desc = sm_struct_get_str(rec, "name_description");
	vals[0] = name;
	vals[1] = desc;
	if (name && desc && rp_lun_meta_set_many(ctx->array, dev.id, keys, vals, 2, &err) < 0) {
		sm_fault_from_rp(f, SM_VDI_LOAD, &err);
		goto out;
	}
done:
	*out = sm_val_nil(f);
	rc = *out ? 0 : -1;
out:
	rp_free(name);
	rp_free(desc);
	if (rec)
		xmlrpc_DECREF(rec);
	return rc;
}

int sm_vdi_introduce(struct sm_ctx *ctx, xmlrpc_value **out, struct sm_fault *f)
{
	struct sm_call *c = ctx->call;
	struct rp_device dev;
	struct sm_map meta = { 0 }, smc = { 0 };
	struct vdi_meta vm = { 0 };
	size_t i;
	int rc = -1;

	struct rp_error err = { 0 };

	if (!c->vdi_location || !*c->vdi_location)
		return sm_fault_set(f, SM_CONFIG_PARAMS_MISSING,
		                    "vdi_introduce needs vdi_location (the LUN's name)");
	if (rp_id_check(c->vdi_location, "vdi_location", &err) < 0)
		return sm_fault_set(f, SM_INVALID_ARG, "%s", err.msg);
	if (!sm_uuid_valid(c->new_uuid))
		return sm_fault_set(f, SM_INVALID_ARG, "new_uuid '%s' is not a uuid",
		                    c->new_uuid ? c->new_uuid : "");
	if (sm_vdi_lun(ctx, &dev, f) < 0) {
		if (f->code == SM_VDI_MISSING)
			f->code = SM_VDI_UNAVAILABLE; /* XAPI's VDI_MISSING wants a VDI ref */
		return -1;
	}
	if (sm_meta_load(&meta, ctx->array, dev.id, SM_VDI_LOAD, f) < 0)
		return -1;
	if (meta_sm_config(&smc, &meta) < 0) {
		sm_fault_set(f, SM_GENERAL, "out of memory");
		goto out;
	}
	/* the introduced uuid and sm_config become the VDI's; the rest is kept */
	for (i = 0; i < c->vdi_sm_config.n && smc.n < meta.n + 3; i++) {
		size_t j;

		for (j = 0; j < smc.n; j++)
			if (strcmp(smc.kv[j].key, c->vdi_sm_config.kv[i].key) == 0)
				break;
		if (j == smc.n) {
			if (j >= meta.n + 3)
				break;
			smc.n++;
		}
		smc.kv[j] = c->vdi_sm_config.kv[i];
	}
	vm.uuid = c->new_uuid;
	vm.name_label = meta_str(&meta, "vdi.name_label", dev.name);
	vm.name_description = meta_str(&meta, "vdi.name_description", "");
	vm.type = meta_str(&meta, "vdi.type", "user");
	vm.read_only = sm_bool(meta_str(&meta, "vdi.read_only", "false"));
	vm.is_a_snapshot = sm_bool(meta_str(&meta, "vdi.is_a_snapshot", "false"));
	vm.snapshot_of = meta_str(&meta, "vdi.snapshot_of", "");
	vm.snapshot_time = meta_str(&meta, "vdi.snapshot_time", NULL);
	vm.sr_uuid = c->sr_uuid;
	vm.sm_config = &smc;
	if (meta_store(ctx->array, dev.id, &vm, SM_VDI_LOAD, f) < 0)
		goto out;
	rp_freep(&smc.kv);
	sm_map_dispose(&meta);
	if (sm_meta_load(&meta, ctx->array, dev.id, SM_VDI_LOAD, f) < 0 ||
	    sm_vdi_introduce_lun(ctx, NULL, &dev, &meta, c->new_uuid, f) < 0)
		goto out;
	rc = vdi_info(out, c->new_uuid, dev.name, f);
out:
	rp_freep(&smc.kv);
	sm_map_dispose(&meta);
	return rc;
}

int sm_vdi_epoch(struct sm_ctx *ctx, xmlrpc_value **out, struct sm_fault *f)
{
	/* VDI_RESET_ON_BOOT is not offered: epochs need no work (vdi_on_boot is persist) */
	*out = sm_val_nil(f);
	return *out ? 0 : -1;
}

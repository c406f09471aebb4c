/* SPDX-License-Identifier: MIT */
/*
 * array_ops.h - the interface between the engine (sra-core) and array drivers. A driver owns
 * bytes and array-side objects; it knows nothing of groups, states, SRM or XAPI. Objects
 * (volumes) live in one flat namespace per array and are named by the engine: names are
 * [A-Za-z0-9._-]{1,128}, never "..", never "/". A LUN, a snapshot and a staging copy are all
 * objects; only the engine knows which is which.
 *
 * Internal to libreplun (not installed).
 */
#ifndef REPLUN_ARRAY_OPS_H
#define REPLUN_ARRAY_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "replun/array.h"
#include "replun/common.h"

#define ARRAY_OPS_VERSION 1
#define ARRAY_OBJ_MAX 129

/* Capability flags (array_ops.caps and the result of ->probe). */
#define ARRAY_CAP_REFLINK (1u << 0)     /* clone is O(1) (FICLONE) */
#define ARRAY_CAP_EXTENT_DIFF (1u << 1) /* changed_extents without reading data */
#define ARRAY_CAP_FREEZE (1u << 2)      /* freeze/thaw of the whole array */
#define ARRAY_CAP_LOCAL_PATH (1u << 3)  /* objects have local file paths */

struct array;

/* One contiguous range of an object. */
struct array_extent {
	uint64_t offset;
	uint64_t length;
	bool zero; /* the range reads as zeros (hole): apply as punch, send no data */
};

/* Called for each changed range, in ascending offset order; non-zero return stops the walk. */
typedef int (*array_extent_cb)(const struct array_extent *ext, void *payload);
/* ->obj_list's callback: one object's name; non-zero stops the listing (and is returned). */
typedef int (*array_obj_cb)(const char *obj, void *payload);

struct array_stat {
	uint64_t capacity;
	uint64_t free;
	char fs_type[RP_ID_MAX];
	unsigned caps; /* ARRAY_CAP_* really available on this array */
};

struct array_obj_stat {
	uint64_t size;
	uint64_t allocated;
	bool read_only;
};

/*
 * The live origin of a snapshot for ->read_snapshot, across the calls of one copy: the object
 * the snapshot was cloned from, and what the driver learned of it.
 */
struct array_origin {
	const char *obj; /* the snapshot's origin (the live LUN), or NULL: read the snapshot */
	bool written;    /* out, sticky: the origin was seen written since; it is not tried again */
	unsigned cold;  /* driver's: ranges in a row whose pages were not cached (it may give up) */
	uint64_t bytes; /* out, summed: bytes that came from the origin's cached pages */
	void *priv;     /* driver's: what it keeps open across the calls; ->origin_done frees it */
};

/* One range of ->copy_ranges: @len bytes at @src_off of the source go to @dst_off. */
struct array_remap {
	uint64_t src_off;
	uint64_t dst_off;
	uint64_t len;
};

/*
 * The driver vtable. Every function returns 0 or a negative enum rp_code with @err set.
 * Slots marked optional may be NULL; the core then answers RP_ENOTSUPPORTED or uses a generic
 * path built from read/write.
 */
struct array_ops {
	int version; /* ARRAY_OPS_VERSION */
	const char *name;
	size_t priv_size; /* bytes of driver state the core allocates in struct array */

	/* Lifecycle. @root is the driver-specific location (file: the array directory). */
	int (*create)(const char *root, struct rp_error *err); /* make a new empty array */
	int (*open)(struct array *a, const char *root, const struct rp_open_opts *opts,
	            struct rp_error *err);
	void (*close)(struct array *a); /* mandatory; must accept a half-opened array */
	int (*stat)(struct array_stat *out, struct array *a, struct rp_error *err);

	/* Objects. */
	int (*obj_create)(struct array *a, const char *obj, uint64_t size, struct rp_error *err);
	int (*obj_delete)(struct array *a, const char *obj, struct rp_error *err); /* absent ok */
	int (*obj_resize)(struct array *a, const char *obj, uint64_t size, struct rp_error *err);
	int (*obj_stat)(struct array_obj_stat *out, struct array *a, const char *obj,
	                struct rp_error *err);
	int (*obj_exists)(bool *out, struct array *a, const char *obj, struct rp_error *err);
	/* Atomically replaces @dst (if present) by @src; @src is gone afterwards. */
	int (*obj_rename)(struct array *a, const char *src, const char *dst, struct rp_error *err);
	int (*obj_set_readonly)(struct array *a, const char *obj, bool ro, struct rp_error *err);
	/* Local path of an object (optional: drivers with ARRAY_CAP_LOCAL_PATH). */
	int (*obj_path)(char *buf, size_t len, struct array *a, const char *obj,
	                struct rp_error *err);
	/*
	 * Optional: calls @cb with the name of every object (in no order) until @cb returns
	 * non-zero, which is returned. For space accounting and leak checks: an object being
	 * created or deleted meanwhile may be listed or not.
	 */
	int (*obj_list)(struct array *a, array_obj_cb cb, void *payload, struct rp_error *err);

	/*
	 * Point-in-time copy of @src into new object @dst (which must not exist): reflink where
	 * possible, else a sparse-aware copy. Used for snapshots, clones and staging copies.
	 * The result is independent of @src from then on.
	 */
	int (*clone)(struct array *a, const char *src, const char *dst, struct rp_error *err);

	/*
	 * Ranges where @obj differs from @base (an earlier clone of the same lineage), ascending.
	 * @base NULL: every allocated range of @obj (for a full sync; holes are skipped).
	 * Reflink arrays compare extent maps (FIEMAP) without reading data; others compare
	 * per-block checksum maps kept beside snapshots.
	 */
	int (*changed_extents)(struct array *a, const char *base, const char *obj,
	                       array_extent_cb cb, void *payload, struct rp_error *err);

	/* Data. Short reads/writes are errors. */
	int (*read)(struct array *a, const char *obj, uint64_t off, void *buf, size_t len,
	            struct rp_error *err);
	int (*write)(struct array *a, const char *obj, uint64_t off, const void *buf, size_t len,
	             struct rp_error *err);
	int (*punch)(struct array *a, const char *obj, uint64_t off, uint64_t len,
	             struct rp_error *err); /* make a range read as zeros, deallocated */
	int (*flush)(struct array *a, const char *obj, struct rp_error *err); /* fsync */
	/* XXH128 of the object's whole content as 32 hex chars (+NUL). */
	int (*checksum)(char out[40], struct array *a, const char *obj, struct rp_error *err);

	/* Optional: freeze writes on the whole array (for group-consistent snapshots). */
	int (*freeze)(struct array *a, struct rp_error *err);
	int (*thaw)(struct array *a, struct rp_error *err);

	/*
	 * Optional: ->read that neither uses nor fills the host's page cache where the driver can
	 * (file array: O_DIRECT), for data read once whose pages are cold anyway, such as a fresh
	 * reflink snapshot read by the data mover. Same contract as ->read for any @off, @len and
	 * @buf; it is only direct where they are aligned (file array: 4 KiB, @buf too).
	 */
	int (*read_uncached)(struct array *a, const char *obj, uint64_t off, void *buf, size_t len,
	                     struct rp_error *err);

	/*
	 * Optional: ->read_uncached of snapshot @snap that may copy a range from the host's page
	 * cache of @origin->obj instead, where the driver can prove that range of the origin still
	 * holds exactly the snapshot's data (file array on xfs: the origin's pages are cached and,
	 * after the read, its extent map, written back under the inode lock, still maps the
	 * snapshot's own blocks; docs/internals/sync.md "Reading the source snapshot"). The
	 * origin may be written meanwhile; what lands in @buf is always the snapshot's data.
	 */
	int (*read_snapshot)(struct array *a, const char *snap, struct array_origin *origin,
	                     uint64_t off, void *buf, size_t len, struct rp_error *err);

	/*
	 * Optional (mandatory with a ->read_snapshot that sets @origin->priv): ends the copy
	 * @origin served, releasing what the driver kept for it (open files); @origin may be
	 * used again afterwards as a new one. Accepts an origin never used.
	 */
	void (*origin_done)(struct array *a, struct array_origin *origin);

	/*
	 * Optional: point-in-time copy of object @src of array @src_a into new object @dst (which
	 * must not exist) of @a in O(extents), sharing the blocks copy-on-write, when both arrays
	 * can (file array: both file arrays with reflink on one filesystem). RP_ENOTSUPPORTED with
	 * nothing created when they cannot: the caller then moves the data with ->read/->write.
	 */
	int (*clone_from)(struct array *a, const char *dst, struct array *src_a, const char *src,
	                  struct rp_error *err);

	/*
	 * Optional: makes each range @r[i] of object @dst equal to that range of object @src
	 * (both of @a, not the same object), in order: the result of ->read from @src and
	 * ->write to @dst, range by range, with the same checks (every range inside both
	 * objects, @dst writable). Where the driver can, the blocks are shared copy-on-write
	 * instead of copied (file array with reflink: FICLONERANGE for ranges aligned to the
	 * filesystem's block; holes of @src stay holes), so no data passes through memory and
	 * nothing is left for write-back. Durable after ->flush of @dst, like a write.
	 * @shared (out, may be NULL): bytes shared rather than copied. On an error some ranges
	 * may be done, as with a failed write.
	 */
	int (*copy_ranges)(struct array *a, const char *src, const char *dst,
	                   const struct array_remap *r, size_t n, uint64_t *shared,
	                   struct rp_error *err);

	/*
	 * Optional: makes existing object @dst (not @src, not in use) what ->clone(@src) into a
	 * new object would make, point in time included, writing only what differs where the
	 * driver can tell (file array without reflink: @dst's checksum map, when it is an
	 * unchanged earlier copy of the same size; else a full copy). For an old snapshot that
	 * would be deleted anyway, at the cost of reading @src once. @written (out, may be NULL):
	 * bytes written. On an error @dst holds no consistent copy (delete or refresh it again).
	 */
	int (*refresh)(struct array *a, const char *src, const char *dst, uint64_t *written,
	               struct rp_error *err);
};

/* An open array as the core sees it: driver, its private state, where it lives. */
struct array {
	const struct array_ops *ops;
	char root[RP_URI_MAX];
	unsigned caps;
	void *priv; /* priv_size bytes, zeroed, owned by the core */
};

/* Driver registry: name -> ops ("file"). NULL if unknown. */
const struct array_ops *array_driver_find(const char *name);

/*
 * Core helpers around the vtable (arrays/array.c): open by driver name, close, and inline-ish
 * wrappers that check optional slots and set RP_ENOTSUPPORTED messages.
 */
int array_open(struct array **out, const char *driver, const char *root,
               const struct rp_open_opts *opts, struct rp_error *err);
void array_close(struct array *a);
int array_create(const char *driver, const char *root, struct rp_error *err);
/* Checks an object name (see top of file). */
int array_obj_name_check(const char *obj, struct rp_error *err);

extern const struct array_ops array_file_ops;

#endif

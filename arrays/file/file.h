/* SPDX-License-Identifier: MIT */
/*
 * file.h - internals shared by the modules of the embedded file array (arrays/file/file_*.c).
 * Layout of an array: <root>/data/<obj>.img (sparse image), <root>/data/<obj>.csum (block
 * checksum map of a non-reflink copy, see file_clone.c).
 */
#ifndef REPLUN_ARRAYS_FILE_H
#define REPLUN_ARRAYS_FILE_H

#include <stdbool.h>
#include <stdint.h>
#include <linux/fiemap.h>
#include <sys/stat.h>

#include "array_ops.h"

#define FILE_DATA_DIR "data"
#define FILE_IMG_SUFFIX ".img"
#define FILE_CSUM_SUFFIX ".csum"
/* Enough for "<obj>" + the longest suffix + ".tmp" + NUL. */
#define FILE_NAME_MAX (ARRAY_OBJ_MAX + 32)

#define FILE_XFS_MAGIC 0x58465342UL /* statfs f_type */

#define FILE_BLOCK 4096u         /* checksum map granularity */
#define FILE_IO_BUF (4u << 20)   /* copy buffer */
#define FILE_HASH_BUF (1u << 20) /* checksum streaming buffer */

/* Driver state, allocated zeroed by the core (priv_size). */
struct file_array {
	bool inited;      /* open() ran: the fds below are valid or -1 */
	int root_fd;      /* O_DIRECTORY of the root */
	int data_fd;      /* O_DIRECTORY of <root>/data */
	bool mount_point; /* root is the top of its filesystem */
	bool frozen;
	unsigned caps;
	/* ->read_snapshot may take a snapshot's data from its origin's cache (xfs with reflink) */
	bool origin_reads;
};

static inline struct file_array *file_priv(struct array *a)
{
	return (struct file_array *)a->priv;
}

/* file.c */
int file_errno_code(int e);
/* "<obj><suffix>" into @buf, after checking the object name. */
int file_name(char *buf, size_t len, const char *obj, const char *suffix, struct rp_error *err);
/* openat() of an object's image; RP_ENOTFOUND when absent. */
int file_obj_open(int *fd, struct array *a, const char *obj, int flags, struct rp_error *err);
/* Removes the checksum map of @obj (absent is fine). */
void file_csum_drop(struct array *a, const char *obj);

/* file_obj.c */
int file_obj_create(struct array *a, const char *obj, uint64_t size, struct rp_error *err);
int file_obj_delete(struct array *a, const char *obj, struct rp_error *err);
int file_obj_resize(struct array *a, const char *obj, uint64_t size, struct rp_error *err);
int file_obj_stat(struct array_obj_stat *out, struct array *a, const char *obj,
                  struct rp_error *err);
int file_obj_exists(bool *out, struct array *a, const char *obj, struct rp_error *err);
int file_obj_rename(struct array *a, const char *src, const char *dst, struct rp_error *err);
int file_obj_set_readonly(struct array *a, const char *obj, bool ro, struct rp_error *err);
int file_obj_path(char *buf, size_t len, struct array *a, const char *obj, struct rp_error *err);
int file_obj_list(struct array *a, array_obj_cb cb, void *payload, struct rp_error *err);

/* file_clone.c */
int file_clone(struct array *a, const char *src, const char *dst, struct rp_error *err);
/* ->clone_from: reflink from another file array on the same filesystem, else RP_ENOTSUPPORTED. */
int file_clone_from(struct array *a, const char *dst, struct array *src_a, const char *src,
                    struct rp_error *err);
/* ->refresh: rewrite only the blocks whose checksum differs from @dst's map. */
int file_refresh(struct array *a, const char *src, const char *dst, uint64_t *written,
                 struct rp_error *err);
/* Probes FICLONE in the data directory; true when reflinks work there. */
bool file_reflink_probe(int data_fd);

/* Checksum maps (file_clone.c): one XXH3-64 per FILE_BLOCK, holes hash as a zero block. */
#define FILE_CSUM_CHUNK (1u << 17) /* sums per chunk: 1 MiB of map, 512 MiB of object */
struct file_csum_map {
	uint64_t size;
	uint64_t nblocks;
	uint64_t *sums;
	/* Per chunk of FILE_CSUM_CHUNK sums: 0 = all sums are 0 (zero/hole), so sparse objects
	 * cost neither map I/O nor comparisons for their holes. */
	unsigned char *dirty;
	uint64_t nchunks;
};
/* Allocates an all-zero map for @size bytes. */
int file_csum_map_init(struct file_csum_map *m, uint64_t size);
uint64_t file_zero_block_hash(void);
/* Loads a valid (matching the image) map of @obj or computes one by reading it. */
int file_csum_map_get(struct file_csum_map *out, struct array *a, const char *obj,
                      struct rp_error *err);
void file_csum_map_dispose(struct file_csum_map *m);

/* file_diff.c */
/* An extent map as FIEMAP returns it. */
struct file_fmap {
	struct fiemap_extent *ext;
	size_t n, cap;
};
/*
 * Appends the extents of @fd that overlap [@start, @start + @len) to @m, in batches; @sync asks
 * the first FIEMAP to write back dirty pages first (FIEMAP_FLAG_SYNC).
 */
int file_fmap_get(struct file_fmap *m, int fd, const char *obj, uint64_t start, uint64_t len,
                  bool sync, struct rp_error *err);
void file_fmap_dispose(struct file_fmap *m);
int file_changed_extents(struct array *a, const char *base, const char *obj, array_extent_cb cb,
                         void *payload, struct rp_error *err);

/* file_io.c */
int file_read(struct array *a, const char *obj, uint64_t off, void *buf, size_t len,
              struct rp_error *err);
/* ->read_uncached: O_DIRECT for the 4 KiB-aligned part, file_read for the rest. */
int file_read_uncached(struct array *a, const char *obj, uint64_t off, void *buf, size_t len,
                       struct rp_error *err);
/* Range check of @off + @len against @fd's size (and its mode when @need_writable). */
int file_io_range(int fd, const char *obj, uint64_t off, uint64_t len, bool need_writable,
                  struct rp_error *err);
int file_write(struct array *a, const char *obj, uint64_t off, const void *buf, size_t len,
               struct rp_error *err);
int file_punch(struct array *a, const char *obj, uint64_t off, uint64_t len, struct rp_error *err);
int file_flush(struct array *a, const char *obj, struct rp_error *err);
int file_checksum(char out[40], struct array *a, const char *obj, struct rp_error *err);
/* Full-length pread/pwrite loops; errno-style failure returns -1. */
int file_pread_full(int fd, void *buf, size_t len, uint64_t off);
int file_pwrite_full(int fd, const void *buf, size_t len, uint64_t off);

/* file_ranges.c */
/* ->copy_ranges: FICLONERANGE for aligned ranges on reflink filesystems, else pread/pwrite. */
int file_copy_ranges(struct array *a, const char *src, const char *dst, const struct array_remap *r,
                     size_t n, uint64_t *shared, struct rp_error *err);

/* file_origin.c */
/* ->read_snapshot: the snapshot's data, from its origin's cached pages where provably equal. */
int file_read_snapshot(struct array *a, const char *snap, struct array_origin *origin, uint64_t off,
                       void *buf, size_t len, struct rp_error *err);
/* ->origin_done: closes what ->read_snapshot kept open for one copy. */
void file_origin_done(struct array *a, struct array_origin *origin);

/* file_freeze.c */
int file_freeze(struct array *a, struct rp_error *err);
int file_thaw(struct array *a, struct rp_error *err);
bool file_freeze_possible(struct array *a);

#endif

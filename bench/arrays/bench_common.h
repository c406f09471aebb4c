/* SPDX-License-Identifier: MIT */
/* bench_common.h - helpers shared by the array benchmarks: command line, timing, random data,
 * fair page cache (settle), external commands (cp, rsync) and the rounds timed with them. */
#ifndef REPLUN_BENCH_COMMON_H
#define REPLUN_BENCH_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "replun/common.h"

#define KIB 1024ull
#define MIB (1024ull * 1024)
#define GIB (1024ull * 1024 * 1024)
#define BLK 4096ull
#define MOVE_BUF (4 * MIB)

extern const char *prog;     /* the program's name, for messages */
extern const char *label;    /* what the tables call the directory */
extern char dir[1024];       /* the benchmark's working directory */
extern char *iobuf;          /* MOVE_BUF bytes, 4 KiB aligned */
extern unsigned scratch_mib; /* hot memory handed to each timed step (settle) */

const char *bench_init(int argc, char **argv, const char *name, const char *parts);
double now_ms(void);
void die(const char *what, const struct rp_error *err) __attribute__((noreturn));
uint64_t rng(void);
void fill_random(void *buf, size_t len);
uint64_t pick_new_block(unsigned char *touched, uint64_t nblocks);
double median(double *v, int n);
double median_of(const double *v, int n);
const char *runs(char *buf, size_t len, const double *v, int n);
double run_cmd(char *const argv[]);
void fsync_path(const char *path);
void settle(void);
void unsettle(void);
void warm_path(const char *path);
void copy_synced(const char *src, const char *dst);
double cp_round(const char *src, const char *dst);
uint64_t rsync_sent_bytes(const char *out);
double run_rsync(const char *src, const char *dst, uint64_t *sent);
double rsync_round(const char *src, const char *dst, uint64_t *sent);

#endif

/* SPDX-License-Identifier: MIT */
/*
 * bench_sra_setup.c - builds the SRA benchmark's pair of embedded arrays through libreplun (not
 * through thousands of CLI calls): DIR/A and DIR/B paired, N_GROUPED replicated LUNs in groups
 * of 100 plus N_SOLO replicated standalone LUNs, the standalone ones synced once. Writes the
 * standalone targets' keys (their ids at B) to DIR/solo-keys.txt, one per line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "replun/replun.h"

static int die(const char *what, const struct rp_error *err)
{
	fprintf(stderr, "bench_sra_setup: %s: %s\n", what, err->msg);
	return 1;
}

static unsigned long arg_count(const char *s)
{
	char *end = NULL;
	unsigned long v = strtoul(s, &end, 10);

	if (!*s || *end || v > 1000000)
		return (unsigned long)-1;
	return v;
}

int main(int argc, char **argv)
{
	char pa[RP_URI_MAX], pb[RP_URI_MAX], name[64], group[32];
	struct rp_array *a = NULL, *b = NULL;
	struct rp_error err = { 0 };
	struct rp_lun_create_opts opts = { 0 };
	struct rp_sync_opts sopts = { .foreground = true };
	struct rp_request req = { 0 };
	struct rp_result *res = NULL;
	const char **solo = NULL;
	unsigned long n_grouped, n_solo, i;
	FILE *keys = NULL;
	int64_t t0;
	int rc = 1;

	if (argc != 4 || (n_grouped = arg_count(argv[2])) == (unsigned long)-1 ||
	    (n_solo = arg_count(argv[3])) == (unsigned long)-1) {
		fprintf(stderr, "usage: bench_sra_setup DIR N_GROUPED N_SOLO\n");
		return 2;
	}
	(void)snprintf(pa, sizeof(pa), "%s/A", argv[1]);
	(void)snprintf(pb, sizeof(pb), "%s/B", argv[1]);
	t0 = rp_now_ms();
	if (rp_array_init(pa, "benchA", NULL, &err) < 0 ||
	    rp_array_init(pb, "benchB", NULL, &err) < 0)
		return die("array init", &err);
	if (rp_array_open(&a, pa, NULL, &err) < 0 || rp_array_open(&b, pb, NULL, &err) < 0 ||
	    rp_array_pair(a, b, &err) < 0) {
		rc = die("array open/pair", &err);
		goto out;
	}
	opts.replicate = true;
	for (i = 0; i < n_grouped; i++) {
		(void)snprintf(group, sizeof(group), "g%04lu", i / 100);
		(void)snprintf(name, sizeof(name), "vol-%s-%05lu", group, i);
		opts.group = group;
		if (rp_lun_create(NULL, a, name, 1 << 20, &opts, &err) < 0) {
			rc = die("lun create", &err);
			goto out;
		}
	}
	solo = rp_calloc(n_solo + 1, sizeof(*solo));
	(void)snprintf(name, sizeof(name), "%s/solo-keys.txt", argv[1]);
	keys = fopen(name, "w");
	if (!solo || !keys) {
		fprintf(stderr, "bench_sra_setup: out of memory or cannot write %s\n", name);
		goto out;
	}
	opts.group = NULL;
	for (i = 0; i < n_solo; i++) {
		struct rp_device d;

		(void)snprintf(name, sizeof(name), "solo-%05lu", i);
		if (rp_lun_create(&d, a, name, 1 << 20, &opts, &err) < 0) {
			rc = die("lun create", &err);
			goto out;
		}
		solo[i] = rp_strdup(d.id);
		fprintf(keys, "%s\n", d.peer_device);
	}
	req.devices = solo;
	req.n_devices = n_solo;
	if (n_solo && rp_sync_start(&res, a, &req, &sopts, &err) < 0) {
		rc = die("sync", &err);
		goto out;
	}
	for (i = 0; res && i < res->n; i++)
		if (res->items[i].code) {
			fprintf(stderr, "bench_sra_setup: sync of '%s': %s\n", res->items[i].id,
			        res->items[i].msg);
			goto out;
		}
	printf("setup: %lu grouped + %lu standalone replicated LUNs in %lld ms\n", n_grouped,
	       n_solo, (long long)(rp_now_ms() - t0));
	rc = 0;
out:
	rp_result_free(res);
	if (keys)
		fclose(keys);
	for (i = 0; solo && i < n_solo; i++)
		rp_free((void *)solo[i]);
	rp_free(solo);
	rp_array_close(a);
	rp_array_close(b);
	return rc;
}

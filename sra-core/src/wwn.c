/* SPDX-License-Identifier: MIT */
/*
 * wwn.c - stable NAA-style WWNs: "naa.6" + 31 hex digits of XXH128 over the array id and the
 * device sequence number (devices) or the snapshot id (snapshots).
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <xxhash.h>

#include "model.h"

static void wwn_from_key(char out[RP_WWN_MAX], const char *key, size_t len)
{
	XXH128_hash_t h = XXH3_128bits(key, len);
	char hex[33];

	(void)snprintf(hex, sizeof(hex), "%016" PRIx64 "%016" PRIx64, (uint64_t)h.high64,
	               (uint64_t)h.low64);
	hex[31] = '\0';
	(void)snprintf(out, RP_WWN_MAX, "naa.6%s", hex);
}

void wwn_device(char out[RP_WWN_MAX], const char *array_id, int64_t seq)
{
	char key[RP_ID_MAX + 32];
	int n = snprintf(key, sizeof(key), "replun-device\n%s\n%" PRId64, array_id, seq);

	wwn_from_key(out, key, (size_t)(n > 0 ? n : 0));
}

void wwn_snapshot(char out[RP_WWN_MAX], const char *array_id, const char *snapshot_id)
{
	char key[2 * RP_ID_MAX + 32];
	int n = snprintf(key, sizeof(key), "replun-snapshot\n%s\n%s", array_id, snapshot_id);

	wwn_from_key(out, key, (size_t)(n > 0 ? n : 0));
}

/* SPDX-License-Identifier: MIT */
/* sm_util.c - small helpers of ReplunSR: uuids, sizes, XAPI time stamps, booleans. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "sm.h"

int sm_uuid_new(char out[SM_UUID_LEN + 1])
{
	unsigned char b[16];
	size_t got = 0;

	while (got < sizeof(b)) {
		ssize_t n = getrandom(b + got, sizeof(b) - got, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	(void)snprintf(out, SM_UUID_LEN + 1,
	               "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
	               b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
	               b[13], b[14], b[15]);
	return 0;
}

bool sm_uuid_valid(const char *s)
{
	size_t i;

	if (!s || strlen(s) != SM_UUID_LEN)
		return false;
	for (i = 0; i < SM_UUID_LEN; i++) {
		char c = s[i];

		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (c != '-')
				return false;
		} else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
		             (c >= 'A' && c <= 'F'))) {
			return false;
		}
	}
	return true;
}

int sm_u64_parse(uint64_t *out, const char *s, const char *what, struct sm_fault *f)
{
	char *end = NULL;
	unsigned long long v;

	if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
		return sm_fault_set(f, SM_INVALID_ARG, "%s '%s' is not a byte count", what,
		                    s ? s : "");
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end)
		return sm_fault_set(f, SM_INVALID_ARG, "%s '%s' is not a byte count", what, s);
	*out = v;
	return 0;
}

void sm_time_now(char out[32])
{
	time_t t = time(NULL);
	struct tm tm;

	(void)gmtime_r(&t, &tm);
	(void)strftime(out, 32, "%Y%m%dT%H:%M:%SZ", &tm);
}

bool sm_bool(const char *s)
{
	return s && (strcmp(s, "true") == 0 || strcmp(s, "1") == 0 || strcmp(s, "True") == 0);
}

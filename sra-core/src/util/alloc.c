/* SPDX-License-Identifier: MIT */
/*
 * alloc.c - the one allocator of libreplun. With RP_FAIL_AT=N in the environment the Nth
 * allocation fails (torture tests of error paths).
 */
#include <stdlib.h>
#include <string.h>

#include "replun/common.h"

static long alloc_fail_at = -1; /* -1: not read yet; 0: never fail */
static long alloc_count;

static int alloc_should_fail(void)
{
	const char *s;

	if (alloc_fail_at < 0) {
		s = getenv("RP_FAIL_AT");
		alloc_fail_at = s ? strtol(s, NULL, 10) : 0;
		if (alloc_fail_at < 0)
			alloc_fail_at = 0;
	}
	if (alloc_fail_at == 0)
		return 0;
	return ++alloc_count == alloc_fail_at;
}

void *rp_malloc(size_t n)
{
	if (alloc_should_fail())
		return NULL;
	return malloc(n ? n : 1);
}

void *rp_calloc(size_t nmemb, size_t size)
{
	if (alloc_should_fail())
		return NULL;
	return calloc(nmemb ? nmemb : 1, size ? size : 1);
}

void *rp_realloc(void *p, size_t n)
{
	if (alloc_should_fail())
		return NULL;
	return realloc(p, n ? n : 1);
}

char *rp_strdup(const char *s)
{
	size_t n;
	char *p;

	if (!s)
		return NULL;
	n = strlen(s) + 1;
	p = rp_malloc(n);
	if (p)
		memcpy(p, s, n);
	return p;
}

void rp_free(void *p)
{
	free(p);
}

void rp_freep(void *pp)
{
	void **p = pp;

	if (!p)
		return;
	free(*p);
	*p = NULL;
}

int rp_strlcpy(char *dst, const char *src, size_t n)
{
	size_t len;

	if (n == 0)
		return -1;
	if (!src)
		src = "";
	len = strlen(src);
	if (len >= n) {
		memcpy(dst, src, n - 1);
		dst[n - 1] = '\0';
		return -1;
	}
	memcpy(dst, src, len + 1);
	return 0;
}

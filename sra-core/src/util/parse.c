/* SPDX-License-Identifier: MIT */
/* parse.c - sizes and identifiers given from outside. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "replun/common.h"

#define REPLUN_VERSION_STRING "0.1.0"

const char *rp_version(void)
{
	return REPLUN_VERSION_STRING;
}

int rp_size_parse(uint64_t *out, const char *s, struct rp_error *err)
{
	unsigned long long v;
	unsigned shift = 0;
	char *end = NULL;

	if (!s || !*s || !isdigit((unsigned char)s[0]))
		return rp_error_set(err, RP_EINVAL, "size '%s' is not a number", s ? s : "");
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno == ERANGE)
		return rp_error_set(err, RP_EINVAL, "size '%s' is too large", s);
	switch (toupper((unsigned char)*end)) {
	case '\0':
		break;
	case 'K':
		shift = 10;
		end++;
		break;
	case 'M':
		shift = 20;
		end++;
		break;
	case 'G':
		shift = 30;
		end++;
		break;
	case 'T':
		shift = 40;
		end++;
		break;
	case 'B':
		break;
	default:
		return rp_error_set(err, RP_EINVAL, "size '%s' is not a number", s);
	}
	if (shift && (*end == 'i' || *end == 'I'))
		end++;
	if (*end == 'B' || *end == 'b')
		end++;
	if (*end != '\0')
		return rp_error_set(err, RP_EINVAL, "size '%s' is not a number", s);
	if (shift && v > (UINT64_MAX >> shift))
		return rp_error_set(err, RP_EINVAL, "size '%s' is too large", s);
	*out = (uint64_t)v << shift;
	return 0;
}

int rp_id_check(const char *id, const char *what, struct rp_error *err)
{
	size_t i, len;

	if (!what)
		what = "id";
	if (!id || !*id)
		return rp_error_set(err, RP_EINVAL, "%s is empty", what);
	len = strlen(id);
	if (len >= RP_ID_MAX)
		return rp_error_set(err, RP_EINVAL, "%s is longer than %d characters", what,
		                    RP_ID_MAX - 1);
	if (id[0] == '.' || id[0] == '-')
		return rp_error_set(err, RP_EINVAL, "%s '%.63s' must not start with '%c'", what, id,
		                    id[0]);
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)id[i];

		if (!(isalnum(c) || c == '.' || c == '_' || c == ':' || c == '-'))
			return rp_error_set(err, RP_EINVAL,
			                    "%s has a character that is not allowed (only "
			                    "letters, digits, '.', '_', ':' and '-')",
			                    what);
	}
	if (strstr(id, ".."))
		return rp_error_set(err, RP_EINVAL, "%s '%s' must not contain '..'", what, id);
	return 0;
}

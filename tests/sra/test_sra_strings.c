/* SPDX-License-Identifier: MIT */
/*
 * test_sra_strings.c - unit tests of the SRA front end's tables and pure helpers: every code the
 * mapping tables can emit is defined, every translation keeps the English placeholders, locale
 * tags, WWN formatting.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sra.h"

/* The set of "{Name}" placeholders of @s, as a sorted, comma-joined string. */
static void placeholders(char *out, size_t len, const char *s)
{
	char names[16][32];
	size_t n = 0, i, j;

	out[0] = '\0';
	while ((s = strchr(s, '{')) != NULL && n < 16) {
		const char *e = strchr(s, '}');

		assert_non_null(e);
		assert_true((size_t)(e - s) < sizeof(names[0]));
		memcpy(names[n], s + 1, (size_t)(e - s - 1));
		names[n][e - s - 1] = '\0';
		n++;
		s = e + 1;
	}
	for (i = 0; i < n; i++)
		for (j = i + 1; j < n; j++)
			if (strcmp(names[j], names[i]) < 0) {
				char t[32];

				memcpy(t, names[i], sizeof(t));
				memcpy(names[i], names[j], sizeof(t));
				memcpy(names[j], t, sizeof(t));
			}
	for (i = 0; i < n; i++)
		if (!i || strcmp(names[i], names[i - 1]) != 0) {
			strncat(out, names[i], len - strlen(out) - 1);
			strncat(out, ",", len - strlen(out) - 1);
		}
}

static void test_sra_strings__every_mapped_code_is_defined(void **state)
{
	static const int rp_codes[] = { RP_ERROR,    RP_ENOTFOUND,    RP_EEXISTS,
		                        RP_EBUSY,    RP_EINVAL,       RP_ENOTSUPPORTED,
		                        RP_ENOSPACE, RP_EPASSTHROUGH, RP_ETIMEOUT,
		                        RP_ESTATE,   RP_EUNREACHABLE, RP_EIO,
		                        RP_ECORRUPT, RP_EPERM,        -999 };
	size_t i;
	int w;

	(void)state;
	for (i = 0; i < sizeof(rp_codes) / sizeof(rp_codes[0]); i++) {
		const struct sra_def *d = sra_def_find(sra_code_for_error(rp_codes[i]));

		assert_non_null(d);
		assert_false(d->warning);
		assert_true(d->code >= 1000);
	}
	for (w = RP_WARN_ALREADY_DONE; w <= RP_WARN_STALE_RP + 1; w++) {
		int code = sra_code_for_warning(w);

		if (w == RP_WARN_FILTERED) {
			assert_int_equal(code, 0);
			continue;
		}
		if (code == SRA_W_SYNC_RUNNING)
			continue; /* SRM's own predefined warning */
		assert_non_null(sra_def_find(code));
		assert_true(sra_def_find(code)->warning);
	}
	assert_non_null(sra_def_find(SRA_E_FILTERED));
}

static void test_sra_strings__translations_keep_placeholders(void **state)
{
	char en[256], other[256];
	size_t i;
	int l;

	(void)state;
	for (i = 0; i < sra_n_defs; i++) {
		const struct sra_def *d = &sra_defs[i];

		for (l = 0; l < SRA_N_LOCALES; l++) {
			assert_non_null(d->desc[l]);
			assert_non_null(d->fix[l]);
			assert_true(d->desc[l][0] && d->fix[l][0]);
		}
		placeholders(en, sizeof(en), d->desc[SRA_L_EN]);
		for (l = 1; l < SRA_N_LOCALES; l++) {
			placeholders(other, sizeof(other), d->desc[l]);
			assert_string_equal(en, other);
		}
		placeholders(en, sizeof(en), d->fix[SRA_L_EN]);
		for (l = 1; l < SRA_N_LOCALES; l++) {
			placeholders(other, sizeof(other), d->fix[l]);
			assert_string_equal(en, other);
		}
	}
	for (i = 0; i < sra_n_strings; i++)
		for (l = 0; l < SRA_N_LOCALES; l++)
			assert_true(sra_strings[i].text[l] && sra_strings[i].text[l][0]);
	for (i = 0; i < sra_n_props; i++)
		assert_string_not_equal(sra_string_en(sra_props[i].string_id),
		                        sra_props[i].string_id);
}

static void test_sra_strings__codes_are_unique(void **state)
{
	size_t i, j;

	(void)state;
	for (i = 0; i < sra_n_defs; i++)
		for (j = i + 1; j < sra_n_defs; j++)
			assert_int_not_equal(sra_defs[i].code, sra_defs[j].code);
	for (i = 0; i < sra_n_strings; i++)
		for (j = i + 1; j < sra_n_strings; j++)
			assert_string_not_equal(sra_strings[i].id, sra_strings[j].id);
}

static void test_sra_strings__locales(void **state)
{
	(void)state;
	assert_int_equal(sra_locale_parse("en"), SRA_L_EN);
	assert_int_equal(sra_locale_parse("DE"), SRA_L_DE);
	assert_int_equal(sra_locale_parse("de-DE"), SRA_L_DE);
	assert_int_equal(sra_locale_parse("fr_CA"), SRA_L_FR);
	assert_int_equal(sra_locale_parse("ja-JP"), SRA_L_JA);
	assert_int_equal(sra_locale_parse("zh-CN"), SRA_L_ZH);
	assert_int_equal(sra_locale_parse("zh"), SRA_L_ZH);
	assert_int_equal(sra_locale_parse("ko"), -1);
	assert_int_equal(sra_locale_parse("english"), -1);
	assert_int_equal(sra_locale_parse(""), -1);
	assert_int_equal(sra_locale_parse(NULL), -1);
}

static void test_sra_strings__wwn_format(void **state)
{
	char buf[RP_WWN_MAX * 2];

	(void)state;
	sra_wwn_format(buf, sizeof(buf), "naa.6aa86533c201181875fca01607990859");
	assert_string_equal(buf, "6A:A8:65:33:C2:01:18:18:75:FC:A0:16:07:99:08:59");
	sra_wwn_format(buf, sizeof(buf), "60:0a:0b");
	assert_string_equal(buf, "60:0A:0B");
	sra_wwn_format(buf, 8, "naa.6aa86533c2");
	assert_true(strlen(buf) < 8);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sra_strings__every_mapped_code_is_defined),
		cmocka_unit_test(test_sra_strings__translations_keep_placeholders),
		cmocka_unit_test(test_sra_strings__codes_are_unique),
		cmocka_unit_test(test_sra_strings__locales),
		cmocka_unit_test(test_sra_strings__wwn_format),
	};

	return cmocka_run_group_tests_name("sra.unit", tests, NULL, NULL);
}

/* SPDX-License-Identifier: MIT */
/* main.c - runs every group of the model tests (core.model). */
#include <stdio.h>

#include "helpers.h"

int main(void)
{
	int failed = 0;

	failed += model_util_tests();
	failed += model_meta_tests();
	failed += model_array_tests();
	failed += model_lun_tests();
	failed += model_group_tests();
	failed += model_space_tests();
	failed += model_crash_tests();
	failed += model_concurrent_tests();
	failed += model_persist_tests();
	printf("core.model: %d failed test(s)\n", failed);
	return failed ? 1 : 0;
}

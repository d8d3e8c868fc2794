/*
 * unit.h: the CUnit harness every tests/unit program shares.
 *
 * A program lists its cases in a NULL-terminated table and calls unit_main(); it runs them in
 * CUnit's verbose basic mode (the summary CI reads) and exits 1 if any assertion or case
 * failed, 0 otherwise. A program that cannot run here calls unit_skip(), which prints why and
 * exits 77 (automake's skip).
 */
#ifndef VMSHIM_UNIT_H
#define VMSHIM_UNIT_H

#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>

struct unit_case {
	const char *name;
	void (*fn)(void);
};

static inline int
unit_main(const char *suite_name, const struct unit_case *cases)
{
	CU_pSuite suite;
	unsigned failed;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	suite = CU_add_suite(suite_name, NULL, NULL);
	if (suite == NULL)
		return 2;
	for (; cases->name != NULL; cases++)
		if (CU_add_test(suite, cases->name, cases->fn) == NULL)
			return 2;
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	return failed ? 1 : 0;
}

static inline void __attribute__((noreturn)) unit_skip(const char *why)
{
	printf("SKIP: %s\n", why);
	exit(77);
}

#endif

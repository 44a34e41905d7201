/*
 * The integration test runner: every tests/integration/check_<name>.c contributes
 * `Suite *<name>_suite(void)`; the Makefile lists them in integ_suites.h.
 * Fork mode stays on, so a crash in one test is a failure, not the end of
 * the run. Exit status is non-zero when anything failed.
 */
#include <check.h>
#include <stdlib.h>

#define SUITE(name) Suite *name##_suite(void);
#include "integ_suites.h"
#undef SUITE

int main(void)
{
    SRunner *sr = srunner_create(NULL);
#define SUITE(name) srunner_add_suite(sr, name##_suite());
#include "integ_suites.h"
#undef SUITE
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/*
 * check_backoff: reconnect delays (server/backoff.c): the doubling ceiling
 * and its cap, full jitter over [0, ceiling] from the caller's random value,
 * reset on success, and the degenerate bases and caps.
 */
#include <check.h>
#include <stdint.h>

#include "backoff.h"

START_TEST(ceiling_doubles_to_cap)
{
    static const uint32_t want[] = { 100, 200, 400, 800, 1600, 3200, 6400, 10000, 10000, 10000 };
    struct backoff b;
    backoff_init(&b, 100, 10000);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        ck_assert_uint_eq(backoff_ceiling(&b), want[i]);
        /* the largest random value reduces to the ceiling itself */
        ck_assert_uint_eq(backoff_next(&b, want[i]), want[i]);
    }
    /* attempt stopped growing at the cap */
    ck_assert_uint_eq(b.attempt, 7);
}
END_TEST

START_TEST(jitter_covers_zero_to_ceiling)
{
    struct backoff b;
    backoff_init(&b, 50, 1000);
    ck_assert_uint_eq(backoff_next(&b, 0), 0);          /* ceiling 50 */
    ck_assert_uint_eq(backoff_next(&b, 101), 0);        /* ceiling 100: 101 % 101 */
    ck_assert_uint_eq(backoff_next(&b, 201 + 7), 7);    /* ceiling 200 */
    ck_assert_uint_eq(backoff_next(&b, UINT64_MAX), (uint32_t)(UINT64_MAX % 401));
}
END_TEST

START_TEST(jitter_is_spread)
{
    /* A fixed LCG stands in for getrandom(): every delay is within the
     * ceiling and the mean is near half of it (full jitter, not equal jitter). */
    struct backoff b;
    uint64_t x = 88172645463325252ull, sum = 0;
    uint32_t max = 0;
    backoff_init(&b, 1000, 1000);
    for (int i = 0; i < 10000; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        uint32_t d = backoff_next(&b, x >> 11);
        ck_assert_uint_le(d, 1000);
        sum += d;
        max = d > max ? d : max;
    }
    ck_assert_uint_ge(sum / 10000, 450);
    ck_assert_uint_le(sum / 10000, 550);
    ck_assert_uint_ge(max, 990);
}
END_TEST

START_TEST(reset_on_success)
{
    struct backoff b;
    backoff_init(&b, 10, 5000);
    for (int i = 0; i < 5; i++)
        backoff_next(&b, 1);
    ck_assert_uint_eq(backoff_ceiling(&b), 320);
    backoff_reset(&b);
    ck_assert_uint_eq(backoff_ceiling(&b), 10);
    ck_assert_uint_eq(backoff_next(&b, 10), 10);
    ck_assert_uint_eq(backoff_ceiling(&b), 20);
}
END_TEST

START_TEST(degenerate_base_and_cap)
{
    struct backoff b;
    backoff_init(&b, 0, 1000);              /* base 0: always retry at once */
    for (int i = 0; i < 100; i++)
        ck_assert_uint_eq(backoff_next(&b, 12345), 0);
    ck_assert_uint_eq(b.attempt, 0);

    backoff_init(&b, 500, 200);             /* cap below base: the cap wins */
    ck_assert_uint_eq(backoff_ceiling(&b), 200);
    ck_assert_uint_eq(backoff_next(&b, 200), 200);

    backoff_init(&b, 1, UINT32_MAX);        /* 32 doublings without overflow */
    for (int i = 0; i < 40; i++)
        backoff_next(&b, 0);
    ck_assert_uint_eq(backoff_ceiling(&b), UINT32_MAX);
    ck_assert_uint_eq(backoff_next(&b, UINT32_MAX), UINT32_MAX);
    ck_assert_uint_eq(b.attempt, 32);
}
END_TEST

Suite *backoff_suite(void)
{
    Suite *s = suite_create("backoff");
    TCase *tc = tcase_create("backoff");
    tcase_add_test(tc, ceiling_doubles_to_cap);
    tcase_add_test(tc, jitter_covers_zero_to_ceiling);
    tcase_add_test(tc, jitter_is_spread);
    tcase_add_test(tc, reset_on_success);
    tcase_add_test(tc, degenerate_base_and_cap);
    suite_add_tcase(s, tc);
    return s;
}

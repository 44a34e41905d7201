/*
 * check_rate: the rate_limit token bucket (server/rate.c): burst then the
 * steady rate, fractional refill, the cap, the abuse window, and the wrap
 * of the 32-bit millisecond clock.
 */
#include <check.h>
#include <stdint.h>

#include "rate.h"

START_TEST(burst_then_rate)
{
    struct rate_bucket b;
    uint64_t t = 5000;
    rate_init(&b, 3, t);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(rate_take(&b, 2, 3, t), RATE_OK);
    ck_assert_int_eq(rate_take(&b, 2, 3, t), RATE_REFUSED);
    /* 2 per second: one token every 500 ms, refilled in thousandths. */
    ck_assert_int_eq(rate_take(&b, 2, 3, t + 499), RATE_REFUSED);
    ck_assert_int_eq(rate_take(&b, 2, 3, t + 500), RATE_OK);
    ck_assert_int_eq(rate_take(&b, 2, 3, t + 500), RATE_REFUSED);
    /* A long pause refills to the burst, never beyond it. */
    t += 100000;
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(rate_take(&b, 2, 3, t), RATE_OK);
    ck_assert_int_eq(rate_take(&b, 2, 3, t), RATE_REFUSED);
}
END_TEST

START_TEST(steady_sender_never_refused)
{
    struct rate_bucket b;
    rate_init(&b, 1, 0);
    /* Exactly at the rate (5/s) forever: always allowed. */
    for (uint64_t t = 0; t < 60000; t += 200)
        ck_assert_int_eq(rate_take(&b, 5, 1, t), RATE_OK);
}
END_TEST

START_TEST(abuse_after_four_bursts_of_refusals)
{
    struct rate_bucket b;
    uint64_t t = 1000000;
    rate_init(&b, 2, t);
    ck_assert_int_eq(rate_take(&b, 1, 2, t), RATE_OK);
    ck_assert_int_eq(rate_take(&b, 1, 2, t), RATE_OK);
    /* 4 x burst = 8 refusals are tolerated in one window, the 9th is abuse. */
    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(rate_take(&b, 1, 2, t), RATE_REFUSED);
    ck_assert_int_eq(rate_take(&b, 1, 2, t), RATE_ABUSE);
    /* A new window forgives. */
    rate_init(&b, 2, t);
    b.tokens = 0;
    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(rate_take(&b, 0, 2, t), RATE_REFUSED);
    t += RATE_ABUSE_WINDOW_S * 1000;
    ck_assert_int_eq(rate_take(&b, 0, 2, t), RATE_REFUSED);
    for (int i = 0; i < 7; i++)
        ck_assert_int_eq(rate_take(&b, 0, 2, t), RATE_REFUSED);
    ck_assert_int_eq(rate_take(&b, 0, 2, t), RATE_ABUSE);
}
END_TEST

START_TEST(clock_wrap)
{
    struct rate_bucket b;
    uint64_t t = (1ull << 32) - 100;     /* 100 ms before the 32-bit clock wraps */
    rate_init(&b, 1, t);
    ck_assert_int_eq(rate_take(&b, 10, 1, t), RATE_OK);
    ck_assert_int_eq(rate_take(&b, 10, 1, t), RATE_REFUSED);
    /* 200 ms later, across the wrap: two tokens earned, one kept (burst 1). */
    ck_assert_int_eq(rate_take(&b, 10, 1, t + 200), RATE_OK);
    ck_assert_int_eq(rate_take(&b, 10, 1, t + 200), RATE_REFUSED);
}
END_TEST

Suite *rate_suite(void)
{
    Suite *s = suite_create("rate");
    TCase *tc = tcase_create("bucket");
    tcase_add_test(tc, burst_then_rate);
    tcase_add_test(tc, steady_sender_never_refused);
    tcase_add_test(tc, abuse_after_four_bursts_of_refusals);
    tcase_add_test(tc, clock_wrap);
    suite_add_tcase(s, tc);
    return s;
}

/*
 * check_ip_limit: the per-address connection table (shared/ip_limit.c):
 * the limit itself, give-back, a random workload checked against a plain
 * reference count per address (deletions by backward shift must keep
 * every other address reachable), the fill bound and reset.
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ip_limit.h"

static struct ip_limit *t;

static void setup(void)
{
    t = malloc(sizeof *t);
    ck_assert_ptr_nonnull(t);
    ip_limit_init(t, 0x1234567890abcdefull);
}

static void teardown(void)
{
    free(t);
}

/* Address number N: IPv4-mapped for even N, a documentation IPv6 for odd. */
static void addr_of(uint32_t n, uint8_t a[16])
{
    memset(a, 0, 16);
    if (n % 2 == 0) {
        a[10] = a[11] = 0xff;
        a[12] = 10;
        a[13] = (uint8_t)(n >> 16);
        a[14] = (uint8_t)(n >> 8);
        a[15] = (uint8_t)n;
    } else {
        a[0] = 0x20;
        a[1] = 0x01;
        a[2] = 0x0d;
        a[3] = 0xb8;
        memcpy(a + 12, &n, 4);
    }
}

START_TEST(limit_per_address)
{
    uint8_t a[16], b[16];
    addr_of(1, a);
    addr_of(2, b);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(ip_limit_take(t, a, 3), 1);
    ck_assert_int_eq(ip_limit_take(t, a, 3), 0);
    ck_assert_uint_eq(ip_limit_count(t, a), 3);
    /* Another address is not affected. */
    ck_assert_int_eq(ip_limit_take(t, b, 3), 1);
    ck_assert_uint_eq(ip_limit_count(t, b), 1);
    /* One given back lets one more in. */
    ip_limit_give(t, a);
    ck_assert_int_eq(ip_limit_take(t, a, 3), 1);
    ck_assert_int_eq(ip_limit_take(t, a, 3), 0);
    /* max 0: no limit. */
    for (int i = 0; i < 1000; i++)
        ck_assert_int_eq(ip_limit_take(t, b, 0), 1);
    ck_assert_uint_eq(ip_limit_count(t, b), 1001);
    ck_assert_uint_eq(t->used, 2);
    for (int i = 0; i < 3; i++)
        ip_limit_give(t, a);
    ck_assert_uint_eq(ip_limit_count(t, a), 0);
    ck_assert_uint_eq(t->used, 1);
    /* Giving back what was never taken changes nothing. */
    ip_limit_give(t, a);
    ck_assert_uint_eq(ip_limit_count(t, a), 0);
    ck_assert_uint_eq(t->used, 1);
}
END_TEST

static uint32_t rnd(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return (uint32_t)(*x >> 16);
}

START_TEST(random_against_reference)
{
    enum { N = 40000, OPS = 600000 };
    uint32_t *ref = calloc(N, sizeof *ref);
    ck_assert_ptr_nonnull(ref);
    uint64_t x = 88172645463325252ull;
    uint8_t a[16];
    uint32_t used = 0;
    for (int op = 0; op < OPS; op++) {
        uint32_t n = rnd(&x) % N;
        addr_of(n, a);
        if (rnd(&x) % 3 != 0) {
            int rc = ip_limit_take(t, a, 4);
            ck_assert_int_eq(rc, ref[n] < 4 ? 1 : 0);
            if (rc == 1)
                used += ref[n]++ == 0;
        } else {
            ip_limit_give(t, a);
            if (ref[n] > 0)
                used -= --ref[n] == 0;
        }
        if (op % 1000 == 0) {
            uint32_t k = rnd(&x) % N;
            addr_of(k, a);
            ck_assert_uint_eq(ip_limit_count(t, a), ref[k]);
        }
    }
    ck_assert_uint_eq(t->used, used);
    for (uint32_t n = 0; n < N; n++) {
        addr_of(n, a);
        ck_assert_msg(ip_limit_count(t, a) == ref[n], "address %u: %u, want %u", n,
                      ip_limit_count(t, a), ref[n]);
    }
    /* Give everything back: the table is empty again. */
    for (uint32_t n = 0; n < N; n++) {
        addr_of(n, a);
        while (ref[n]-- > 0)
            ip_limit_give(t, a);
    }
    ck_assert_uint_eq(t->used, 0);
    for (uint32_t i = 0; i < IP_LIMIT_SLOTS; i++)
        ck_assert_uint_eq(t->slot[i].count, 0);
    free(ref);
}
END_TEST

START_TEST(fill_bound_and_reset)
{
    uint8_t a[16];
    for (uint32_t n = 0; n < IP_LIMIT_FILL; n++) {
        addr_of(n, a);
        ck_assert_int_eq(ip_limit_take(t, a, 1), 1);
    }
    addr_of(IP_LIMIT_FILL, a);
    ck_assert_int_eq(ip_limit_take(t, a, 1), -ENOSPC);
    /* Known addresses are still counted (and refused at the limit). */
    addr_of(7, a);
    ck_assert_int_eq(ip_limit_take(t, a, 1), 0);
    ck_assert_int_eq(ip_limit_take(t, a, 2), 1);
    uint32_t epoch = t->epoch;
    ip_limit_reset(t);
    ck_assert_uint_eq(t->epoch, epoch + 1);
    ck_assert_uint_eq(t->used, 0);
    ck_assert_uint_eq(ip_limit_count(t, a), 0);
    addr_of(IP_LIMIT_FILL, a);
    ck_assert_int_eq(ip_limit_take(t, a, 1), 1);
}
END_TEST

START_TEST(seed_changes_layout)
{
    /* The same addresses land in different slots under another seed. */
    struct ip_limit *u = malloc(sizeof *u);
    ck_assert_ptr_nonnull(u);
    ip_limit_init(u, 42);
    uint8_t a[16];
    for (uint32_t n = 0; n < 64; n++) {
        addr_of(n, a);
        ck_assert_int_eq(ip_limit_take(t, a, 0), 1);
        ck_assert_int_eq(ip_limit_take(u, a, 0), 1);
    }
    int differ = 0;
    for (uint32_t i = 0; i < IP_LIMIT_SLOTS; i++)
        differ += (t->slot[i].count != 0) != (u->slot[i].count != 0);
    ck_assert_int_gt(differ, 0);
    free(u);
}
END_TEST

START_TEST(publish_budget)
{
    uint8_t a[16], b[16];
    addr_of(10, a);
    addr_of(11, b);
    const uint64_t rate = 1000;                 /* bytes/s: 4000 of burst */
    /* Not counted (no connection): not limited. */
    ck_assert_int_eq(ip_limit_charge(t, a, 1 << 20, rate, 1000), 1);
    ck_assert_int_eq(ip_limit_take(t, a, 0), 1);
    ck_assert_int_eq(ip_limit_take(t, b, 0), 1);
    ck_assert_int_eq(ip_limit_charge(t, a, 3000, rate, 1000), 1);
    ck_assert_int_eq(ip_limit_charge(t, a, 1000, rate, 1000), 1);
    ck_assert_int_eq(ip_limit_charge(t, a, 1, rate, 1000), 0);
    /* Another address has its own budget. */
    ck_assert_int_eq(ip_limit_charge(t, b, 4000, rate, 1000), 1);
    /* Refill at the rate: 500 ms earn 500 bytes. */
    ck_assert_int_eq(ip_limit_charge(t, a, 501, rate, 1500), 0);
    ck_assert_int_eq(ip_limit_charge(t, a, 500, rate, 1500), 1);
    /* Never above the burst, however long the pause. */
    ck_assert_int_eq(ip_limit_charge(t, a, 4001, rate, 1000000), 0);
    ck_assert_int_eq(ip_limit_charge(t, a, 4000, rate, 1000000), 1);
    /* A reading older than the last charge (another worker's stale clock)
     * earns nothing and never refills. */
    ck_assert_int_eq(ip_limit_charge(t, b, 1, rate, 500), 0);
    ck_assert_int_eq(ip_limit_charge(t, b, 1, rate, 999), 0);
    ck_assert_int_eq(ip_limit_charge(t, b, 1, rate, 1001), 1);
    /* rate 0: no limit. */
    ck_assert_int_eq(ip_limit_charge(t, a, 1 << 30, 0, 1000000), 1);
}
END_TEST

START_TEST(reconnecting_keeps_the_debt)
{
    uint8_t a[16];
    addr_of(20, a);
    const uint64_t rate = 1000;
    ck_assert_int_eq(ip_limit_take(t, a, 0), 1);
    ck_assert_int_eq(ip_limit_charge(t, a, 4000, rate, 5000), 1);
    ip_limit_give(t, a);
    /* Closing the last connection does not wipe what it spent. */
    ck_assert_uint_eq(t->used, 1);
    ck_assert_uint_eq(ip_limit_sweep(t, rate, 5000), 0);
    ck_assert_int_eq(ip_limit_take(t, a, 0), 1);
    ck_assert_int_eq(ip_limit_charge(t, a, 1, rate, 5000), 0);
    ip_limit_give(t, a);
    /* Once refilled (4 s at this rate) the sweep frees the slot. */
    ck_assert_uint_eq(ip_limit_sweep(t, rate, 8999), 0);
    ck_assert_uint_eq(ip_limit_sweep(t, rate, 9000), 1);
    ck_assert_uint_eq(t->used, 0);
    ck_assert_int_eq(ip_limit_take(t, a, 0), 1);
    ck_assert_int_eq(ip_limit_charge(t, a, 4000, rate, 9000), 1);
}
END_TEST

START_TEST(sweep_keeps_chains_reachable)
{
    /* Many lingering and live addresses mixed: sweeping some keeps every
     * other one findable with its count. */
    enum { N = 30000 };
    uint8_t a[16];
    for (uint32_t n = 0; n < N; n++) {
        addr_of(n, a);
        ck_assert_int_eq(ip_limit_take(t, a, 0), 1);
        if (n % 3 == 0)
            ck_assert_int_eq(ip_limit_charge(t, a, 10, 1000, 1000 + n % 7), 1);
        if (n % 2 == 0)
            ip_limit_give(t, a);    /* a third linger (even, multiple of 3) */
    }
    ck_assert_uint_eq(ip_limit_sweep(t, 1000, 2000), (N + 5) / 6);
    for (uint32_t n = 0; n < N; n++) {
        addr_of(n, a);
        ck_assert_uint_eq(ip_limit_count(t, a), n % 2 == 0 ? 0 : 1);
    }
    ck_assert_uint_eq(t->used, N / 2);
}
END_TEST

Suite *ip_limit_suite(void)
{
    Suite *s = suite_create("ip_limit");
    TCase *tc = tcase_create("table");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, limit_per_address);
    tcase_add_test(tc, random_against_reference);
    tcase_add_test(tc, fill_bound_and_reset);
    tcase_add_test(tc, seed_changes_layout);
    tcase_add_test(tc, publish_budget);
    tcase_add_test(tc, reconnecting_keeps_the_debt);
    tcase_add_test(tc, sweep_keeps_chains_reachable);
    suite_add_tcase(s, tc);
    return s;
}

/*
 * check_real_ip: the client address behind trusted proxies
 * (server/real_ip.c). X-Forwarded-For values are placed flush against a
 * guard page, since the walk reads them right to left; hostile values
 * (huge, no commas, endless trusted hops) must end at the documented answer.
 */
#include <arpa/inet.h>
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cidr.h"
#include "guard.h"
#include "real_ip.h"

static void addr(uint8_t out[16], const char *text)
{
    ck_assert_int_eq(cidr_parse_addr(text, strlen(text), out), 0);
}

static struct cidr_list trusted;

static void setup(void)
{
    static const char list[] = "10.0.0.0/8 ::1 fd00::/8";
    char err[64];
    ck_assert_int_eq(cidr_parse_list(&trusted, list, sizeof list - 1, err, sizeof err), 3);
}

struct vec {
    const char *peer, *xff, *xri;   /* NULL: header absent */
    const char *want;
};

static const struct vec vecs[] = {
    /* an untrusted peer is the client, whatever it sends */
    { "1.2.3.4", "5.6.7.8", "7.7.7.7", "1.2.3.4" },
    { "2001:db8::1", "10.0.0.1", NULL, "2001:db8::1" },
    /* trusted peer: from the right, skipping trusted hops */
    { "10.0.0.1", "5.6.7.8", NULL, "5.6.7.8" },
    { "10.0.0.1", "5.6.7.8, 10.0.0.2", NULL, "5.6.7.8" },
    { "10.0.0.1", "1.1.1.1, 5.6.7.8, 10.0.0.2", NULL, "5.6.7.8" },
    { "10.0.0.1", "1.1.1.1,5.6.7.8,10.0.0.2,fd00::5", NULL, "5.6.7.8" },
    { "::1", " 2001:db8::7 ,\t::1 ", NULL, "2001:db8::7" },
    { "::ffff:10.0.0.1", "5.6.7.8", NULL, "5.6.7.8" },
    /* all trusted: the leftmost */
    { "10.0.0.1", "10.0.0.3, 10.0.0.2", NULL, "10.0.0.3" },
    { "10.0.0.1", "::1", NULL, "::1" },
    /* malformed entries stop the walk at the last good address */
    { "10.0.0.1", "garbage, 10.0.0.2", NULL, "10.0.0.2" },
    { "10.0.0.1", "5.6.7.8, garbage", NULL, "10.0.0.1" },
    { "10.0.0.1", "5.6.7.8,,10.0.0.2", NULL, "10.0.0.2" },
    { "10.0.0.1", "5.6.7.8, ", NULL, "10.0.0.1" },
    { "10.0.0.1", ",5.6.7.8", NULL, "5.6.7.8" },
    { "10.0.0.1", ", 10.0.0.9", NULL, "10.0.0.9" },
    { "10.0.0.1", "5.6.7.8:1234", NULL, "10.0.0.1" },
    { "10.0.0.1", "[2001:db8::1]", NULL, "10.0.0.1" },
    { "10.0.0.1", "unknown, 10.0.0.2", NULL, "10.0.0.2" },
    { "10.0.0.1", "5.6.7.8 10.0.0.2", NULL, "10.0.0.1" },
    { "10.0.0.1", "1.2.3.4/8", NULL, "10.0.0.1" },
    { "10.0.0.1", "fe80::1%eth0", NULL, "10.0.0.1" },
    /* X-Forwarded-For wins over X-Real-IP, even when it says nothing useful */
    { "10.0.0.1", "5.6.7.8", "7.7.7.7", "5.6.7.8" },
    { "10.0.0.1", "bogus", "7.7.7.7", "10.0.0.1" },
    /* no X-Forwarded-For entry at all: X-Real-IP */
    { "10.0.0.1", NULL, "7.7.7.7", "7.7.7.7" },
    { "10.0.0.1", "", "7.7.7.7", "7.7.7.7" },
    { "10.0.0.1", " \t ", " 2001:db8::9 ", "2001:db8::9" },
    { "10.0.0.1", NULL, "bogus", "10.0.0.1" },
    { "10.0.0.1", NULL, "7.7.7.7, 8.8.8.8", "10.0.0.1" },
    { "10.0.0.1", NULL, "", "10.0.0.1" },
    { "10.0.0.1", NULL, NULL, "10.0.0.1" },
    { "10.0.0.1", NULL, "10.9.9.9", "10.9.9.9" },
};

START_TEST(vectors)
{
    const struct vec *v = &vecs[_i];
    uint8_t peer[16], want[16], out[16];
    addr(peer, v->peer);
    addr(want, v->want);
    const char *xff = v->xff != NULL ? guard_copy(v->xff, strlen(v->xff)) : NULL;
    real_ip(out, peer, &trusted, xff, v->xff ? strlen(v->xff) : 0, v->xri,
            v->xri ? strlen(v->xri) : 0);
    char got[64];
    inet_ntop(AF_INET6, out, got, sizeof got);
    ck_assert_msg(memcmp(out, want, 16) == 0, "vector %d: got %s, want %s", _i, got, v->want);
    /* out may alias peer */
    real_ip(peer, peer, &trusted, xff, v->xff ? strlen(v->xff) : 0, v->xri,
            v->xri ? strlen(v->xri) : 0);
    ck_assert_mem_eq(peer, want, 16);
}
END_TEST

/* More trusted hops than REAL_IP_MAX_HOPS: the walk stops at the limit. */
START_TEST(hop_limit)
{
    char xff[1024];
    size_t w = (size_t)snprintf(xff, sizeof xff, "9.9.9.9");
    for (int k = 40; k >= 1; k--)
        w += (size_t)snprintf(xff + w, sizeof xff - w, ", 10.0.0.%d", k);
    uint8_t peer[16], out[16], want[16];
    addr(peer, "10.0.0.254");
    real_ip(out, peer, &trusted, guard_copy(xff, w), w, NULL, 0);
    char last[32];
    snprintf(last, sizeof last, "10.0.0.%d", REAL_IP_MAX_HOPS);
    addr(want, last);
    ck_assert_mem_eq(out, want, 16);
    /* within the limit the untrusted entry is reached */
    w = (size_t)snprintf(xff, sizeof xff, "9.9.9.9");
    for (int k = REAL_IP_MAX_HOPS - 1; k >= 1; k--)
        w += (size_t)snprintf(xff + w, sizeof xff - w, ",10.0.0.%d", k);
    real_ip(out, peer, &trusted, guard_copy(xff, w), w, NULL, 0);
    addr(want, "9.9.9.9");
    ck_assert_mem_eq(out, want, 16);
}
END_TEST

/* Hostile sizes: a megabyte without a comma, or of spaces, or of trusted hops. */
START_TEST(hostile)
{
    size_t len = 1 << 20;
    char *big = malloc(len);
    ck_assert_ptr_nonnull(big);
    uint8_t peer[16], out[16], want[16];
    addr(peer, "10.0.0.1");

    memset(big, '1', len);
    real_ip(out, peer, &trusted, guard_copy(big, len), len, "7.7.7.7", 7);
    ck_assert_mem_eq(out, peer, 16);

    /* a good address with some OWS; then with more than an entry can hold */
    memset(big, ' ', 200);
    memcpy(big + 190, "5.6.7.8", 7);
    real_ip(out, peer, &trusted, guard_copy(big + 180, 20), 20, NULL, 0);
    addr(want, "5.6.7.8");
    ck_assert_mem_eq(out, want, 16);
    memcpy(big + 200, "5.6.7.8", 7);
    real_ip(out, peer, &trusted, guard_copy(big, 207), 207, NULL, 0);
    ck_assert_mem_eq(out, peer, 16);
    memcpy(big, "5.6.7.8", 7);
    memset(big + 7, ' ', 200);
    real_ip(out, peer, &trusted, guard_copy(big, 207), 207, NULL, 0);
    ck_assert_mem_eq(out, peer, 16);

    /* only spaces: as good as absent, X-Real-IP decides */
    memset(big, ' ', len);
    real_ip(out, peer, &trusted, guard_copy(big, len), len, "7.7.7.7", 7);
    ck_assert_mem_eq(out, peer, 16);   /* too long to be blank: a bad entry */
    real_ip(out, peer, &trusted, guard_copy(big, 40), 40, "7.7.7.7", 7);
    addr(want, "7.7.7.7");
    ck_assert_mem_eq(out, want, 16);

    size_t w = 0;
    for (int k = 0; k < 100000; k++) {      /* 900 kB of trusted hops */
        memcpy(big + w, "10.0.0.9,", 9);
        w += 9;
    }
    memcpy(big + w, "10.0.0.8", 8);
    w += 8;
    real_ip(out, peer, &trusted, guard_copy(big, w), w, NULL, 0);
    addr(want, "10.0.0.9");
    ck_assert_mem_eq(out, want, 16);
    free(big);
}
END_TEST

START_TEST(nothing_trusted)
{
    struct cidr_list none = { .n = 0 };
    uint8_t peer[16], out[16];
    addr(peer, "10.0.0.1");
    real_ip(out, peer, &none, "5.6.7.8", 7, "7.7.7.7", 7);
    ck_assert_mem_eq(out, peer, 16);
}
END_TEST

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

Suite *real_ip_suite(void)
{
    Suite *s = suite_create("real_ip");
    TCase *tc = tcase_create("walk");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_loop_test(tc, vectors, 0, N(vecs));
    tcase_add_test(tc, hop_limit);
    tcase_add_test(tc, hostile);
    tcase_add_test(tc, nothing_trusted);
    suite_add_tcase(s, tc);
    return s;
}

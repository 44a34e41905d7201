/*
 * check_cidr: allow-list parsing and matching (server/cidr.c). Lists are
 * parsed from copies flush against a guard page; matches are checked
 * against a bit-by-bit reference over random rules and addresses, and
 * IPv4 rules against IPv4-mapped addresses.
 */
#include <arpa/inet.h>
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cidr.h"
#include "guard.h"

#define S(lit) lit, sizeof(lit) - 1

/* An address in the 16-byte form, for expectations (inet_pton, IPv4 mapped). */
static void addr(uint8_t out[16], const char *text)
{
    if (strchr(text, ':') != NULL) {
        ck_assert_int_eq(inet_pton(AF_INET6, text, out), 1);
    } else {
        memset(out, 0, 10);
        out[10] = out[11] = 0xFF;
        ck_assert_int_eq(inet_pton(AF_INET, text, out + 12), 1);
    }
}

static int parse(struct cidr_list *l, const char *s, char *err, size_t errlen)
{
    size_t n = strlen(s);
    const char *in = guard_copy(s, n);
    return cidr_parse_list(l, in, n, err, errlen);
}

struct entry { const char *addr; int prefix; };

struct good {
    const char *in;
    int n;
    struct entry e[5];
};

static const struct good goods[] = {
    { "127.0.0.1/32 ::1/128 10.0.0.0/8 fd00::/8", 4,
      { { "127.0.0.1", 128 }, { "::1", 128 }, { "10.0.0.0", 104 }, { "fd00::", 8 } } },
    { "1.2.3.4", 1, { { "1.2.3.4", 128 } } },
    { "::1", 1, { { "::1", 128 } } },
    { "10.1.2.3/8", 1, { { "10.0.0.0", 104 } } },
    { "192.168.255.255/17", 1, { { "192.168.128.0", 113 } } },
    { "fd12:3456:789a::1/20", 1, { { "fd12:3000::", 20 } } },
    { "0.0.0.0/0 ::/0", 2, { { "0.0.0.0", 96 }, { "::", 0 } } },
    { "255.255.255.255/0", 1, { { "0.0.0.0", 96 } } },
    { "\t 1.2.3.4 \n ::1\r\n\v\f", 2, { { "1.2.3.4", 128 }, { "::1", 128 } } },
    { "::ffff:1.2.3.4/120", 1, { { "1.2.3.0", 120 } } },
    { "2001:db8::/32 2001:DB8:0:0:0:0:0:1/127", 2, { { "2001:db8::", 32 }, { "2001:db8::", 127 } } },
    { "1.2.3.4/31", 1, { { "1.2.3.4", 127 } } },
    { "1.2.3.5/31", 1, { { "1.2.3.4", 127 } } },
};

START_TEST(parse_good)
{
    const struct good *g = &goods[_i];
    struct cidr_list l;
    char err[128];
    ck_assert_int_eq(parse(&l, g->in, err, sizeof err), g->n);
    ck_assert_int_eq(l.n, g->n);
    for (int k = 0; k < g->n; k++) {
        uint8_t want[16];
        addr(want, g->e[k].addr);
        ck_assert_int_eq(l.e[k].prefix, g->e[k].prefix);
        ck_assert_mem_eq(l.e[k].addr, want, 16);
    }
}
END_TEST

struct bad { const char *in; int rc; const char *err; };

static const struct bad bads[] = {
    { "", -EINVAL, "no address" },
    { " \t\n", -EINVAL, "no address" },
    { "1.2.3.4/33", -EINVAL, "over 32 in \"1.2.3.4/33\"" },
    { "::/129", -EINVAL, "over 128 in \"::/129\"" },
    { "1.2.3.4/", -EINVAL, "invalid prefix" },
    { "1.2.3.4/-1", -EINVAL, "invalid prefix" },
    { "1.2.3.4/+8", -EINVAL, "invalid prefix" },
    { "1.2.3.4/08", -EINVAL, "invalid prefix" },
    { "1.2.3.4/1000", -EINVAL, "invalid prefix" },
    { "1.2.3.4/8/8", -EINVAL, "invalid prefix" },
    { "1.2.3.4/ 8", -EINVAL, "invalid prefix" },
    { "1.2.3", -EINVAL, "invalid address \"1.2.3\"" },
    { "1.2.3.4.5", -EINVAL, "invalid address" },
    { "256.0.0.1", -EINVAL, "invalid address" },
    { "/8", -EINVAL, "invalid address" },
    { "fe80::1%eth0", -EINVAL, "invalid address" },
    { "[::1]", -EINVAL, "invalid address" },
    { "::1/12a", -EINVAL, "invalid prefix" },
    { "1.2.3.4:80", -EINVAL, "invalid address" },
    { "1.2.3.4,5.6.7.8", -EINVAL, "invalid address" },
    { "abc", -EINVAL, "invalid address \"abc\"" },
    { "::1 1.2.3.4 bogus 5.6.7.8", -EINVAL, "\"bogus\"" },
    { "1:2:3:4:5:6:7:8:9", -EINVAL, "invalid address" },
    { "1::2::3", -EINVAL, "invalid address" },
    { "0x7f.0.0.1", -EINVAL, "invalid address" },
    { "1.2.3.4\x01", -EINVAL, "\"1.2.3.4?\"" },
    { "1111:2222:3333:4444:5555:6666:7777:8888:9999:aaaa:bbbb", -EINVAL, "..." },
};

START_TEST(parse_bad)
{
    const struct bad *b = &bads[_i];
    struct cidr_list l;
    char err[128] = "";
    ck_assert_int_eq(parse(&l, b->in, err, sizeof err), b->rc);
    ck_assert_msg(strstr(err, b->err) != NULL, "vector %d: \"%s\"", _i, err);
    for (const char *p = err; *p; p++)
        ck_assert(*p >= 0x20 && *p < 0x7F);
}
END_TEST

/* A NUL inside the value is not the end of it. */
START_TEST(parse_embedded_nul)
{
    struct cidr_list l;
    char err[64];
    ck_assert_int_eq(cidr_parse_list(&l, S("1.2.3.4\0 5.6.7.8"), err, sizeof err), -EINVAL);
    uint8_t a[16];
    ck_assert_int_eq(cidr_parse_addr(S("1.2.3.4\0"), a), -EINVAL);
    ck_assert_int_eq(cidr_parse_addr(S("1.2.3.4"), a), 0);
    ck_assert_int_eq(cidr_parse_addr("1.2.3.4", 0, a), -EINVAL);
}
END_TEST

START_TEST(list_capacity)
{
    char buf[2048];
    size_t w = 0;
    for (int k = 0; k < CIDR_MAX; k++)
        w += (size_t)snprintf(buf + w, sizeof buf - w, "10.0.%d.0/24 ", k);
    struct cidr_list l;
    char err[64];
    ck_assert_int_eq(parse(&l, buf, err, sizeof err), CIDR_MAX);
    snprintf(buf + w, sizeof buf - w, "::1");
    ck_assert_int_eq(parse(&l, buf, err, sizeof err), -ENOSPC);
    ck_assert_ptr_nonnull(strstr(err, "more than 64"));
}
END_TEST

START_TEST(error_buffer)
{
    struct cidr_list l;
    char err[8];
    memset(err, 'x', sizeof err);
    ck_assert_int_eq(parse(&l, "bogus-address", err, sizeof err), -EINVAL);
    ck_assert_uint_eq(strlen(err), sizeof err - 1);         /* cut, terminated */
    char one = 'x';
    ck_assert_int_eq(parse(&l, "bogus", &one, 0), -EINVAL); /* nothing written */
    ck_assert_int_eq(one, 'x');
}
END_TEST

struct m { const char *list, *addr; int want; };

static const struct m matches[] = {
    { "10.0.0.0/8", "10.255.1.2", 1 },
    { "10.0.0.0/8", "11.0.0.0", 0 },
    { "10.0.0.0/8", "::ffff:10.1.1.1", 1 },
    { "10.0.0.0/8", "::10.1.1.1", 0 },                    /* IPv4-compatible is not mapped */
    { "10.0.0.0/8", "a00::", 0 },
    { "0.0.0.0/0", "1.2.3.4", 1 },
    { "0.0.0.0/0", "::1", 0 },
    { "::/0", "1.2.3.4", 1 },
    { "::/0", "2001:db8::1", 1 },
    { "::ffff:0:0/96", "8.8.8.8", 1 },
    { "127.0.0.1", "127.0.0.1", 1 },
    { "127.0.0.1", "127.0.0.2", 0 },
    { "::1", "::1", 1 },
    { "::1", "127.0.0.1", 0 },
    { "fd00::/8", "fdff:ffff::1", 1 },
    { "fd00::/8", "fe00::", 0 },
    { "fd00::/8", "fc00::", 0 },
    { "192.168.1.128/25", "192.168.1.200", 1 },
    { "192.168.1.128/25", "192.168.1.127", 0 },
    { "1.2.3.4/31", "1.2.3.5", 1 },
    { "1.2.3.4/31", "1.2.3.6", 0 },
    { "2001:db8::/127", "2001:db8::1", 1 },
    { "2001:db8::/127", "2001:db8::2", 0 },
    { "1.1.1.1 2.2.2.2 ::2", "2.2.2.2", 1 },
    { "1.1.1.1 2.2.2.2 ::2", "::2", 1 },
    { "1.1.1.1 2.2.2.2 ::2", "3.3.3.3", 0 },
};

START_TEST(match_vectors)
{
    const struct m *v = &matches[_i];
    struct cidr_list l;
    char err[64];
    ck_assert_int_gt(parse(&l, v->list, err, sizeof err), 0);
    uint8_t a[16];
    addr(a, v->addr);
    ck_assert_msg(cidr_match(&l, a) == v->want, "%s in %s", v->addr, v->list);
}
END_TEST

START_TEST(match_empty_list)
{
    struct cidr_list l = { .n = 0 };
    uint8_t a[16] = { 0 };
    ck_assert_int_eq(cidr_match(&l, a), 0);
}
END_TEST

static uint64_t rng = 0xD1B54A32D192ED03ull;

static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

static int bit(const uint8_t *a, int i)
{
    return a[i / 8] >> (7 - i % 8) & 1;
}

/* Random IPv6 rules in text, random addresses near them, against bit compare. */
START_TEST(match_random)
{
    for (int iter = 0; iter < 3000; iter++) {
        uint8_t net[16], a[16];
        for (int k = 0; k < 16; k++)
            net[k] = (uint8_t)rnd();
        int prefix = (int)(rnd() % 129);
        memcpy(a, net, 16);
        int flip = (int)(rnd() % 129);          /* 128: no flip */
        if (flip < 128)
            a[flip / 8] ^= (uint8_t)(0x80 >> (flip % 8));
        char text[64];
        inet_ntop(AF_INET6, net, text, sizeof text);
        size_t n = strlen(text);
        snprintf(text + n, sizeof text - n, "/%d", prefix);
        struct cidr_list l;
        char err[64];
        ck_assert_int_eq(parse(&l, text, err, sizeof err), 1);
        int want = 1;
        for (int i = 0; i < prefix; i++)
            if (bit(a, i) != bit(net, i))
                want = 0;
        ck_assert_msg(cidr_match(&l, a) == want, "%s flip %d", text, flip);
        for (int i = prefix; i < 128; i++)
            ck_assert_int_eq(bit(l.e[0].addr, i), 0);   /* host bits masked */
    }
}
END_TEST

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

Suite *cidr_suite(void)
{
    Suite *s = suite_create("cidr");
    TCase *tc = tcase_create("parse");
    tcase_add_loop_test(tc, parse_good, 0, N(goods));
    tcase_add_loop_test(tc, parse_bad, 0, N(bads));
    tcase_add_test(tc, parse_embedded_nul);
    tcase_add_test(tc, list_capacity);
    tcase_add_test(tc, error_buffer);
    suite_add_tcase(s, tc);

    tc = tcase_create("match");
    tcase_add_loop_test(tc, match_vectors, 0, N(matches));
    tcase_add_test(tc, match_empty_list);
    tcase_add_test(tc, match_random);
    suite_add_tcase(s, tc);
    return s;
}

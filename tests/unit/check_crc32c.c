/*
 * check_crc32c: CRC-32C (shared/crc32c.c) against the RFC 3720 B.4 test
 * vectors and the "123456789" check value, against a bit-at-a-time model
 * of the polynomial over random data, incremental updates equal to the
 * one-shot CRC at every split, and inputs against a guard page at every
 * alignment (the slice-by-8 loop must not read past len).
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "guard.h"

/* RFC 3720 B.4: the CRC bytes are listed as sent, least significant first. */
static const unsigned char iscsi_read_pdu[48] = {
    0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00,
    0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18, 0x28, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
};

struct vec {
    const char *name;
    unsigned char data[48];
    size_t len;
    uint32_t crc;
};

static struct vec vecs[6];

static void vecs_init(void)
{
    struct vec *v = vecs;
    v->name = "32 zero bytes";
    memset(v->data, 0x00, 32);
    v->len = 32;
    v->crc = 0x8A9136AAu;
    v++;
    v->name = "32 0xff bytes";
    memset(v->data, 0xff, 32);
    v->len = 32;
    v->crc = 0x62A8AB43u;
    v++;
    v->name = "0..31 ascending";
    for (int i = 0; i < 32; i++)
        v->data[i] = (unsigned char)i;
    v->len = 32;
    v->crc = 0x46DD794Eu;
    v++;
    v->name = "31..0 descending";
    for (int i = 0; i < 32; i++)
        v->data[i] = (unsigned char)(31 - i);
    v->len = 32;
    v->crc = 0x113FDB5Cu;
    v++;
    v->name = "iSCSI read PDU";
    memcpy(v->data, iscsi_read_pdu, sizeof iscsi_read_pdu);
    v->len = sizeof iscsi_read_pdu;
    v->crc = 0xD9963A56u;
    v++;
    v->name = "123456789";
    memcpy(v->data, "123456789", 9);
    v->len = 9;
    v->crc = 0xE3069283u;
}

#define NVEC (sizeof vecs / sizeof vecs[0])

/* The definition, one bit at a time: the model the tables must agree with. */
static uint32_t crc_bitwise(const unsigned char *p, size_t len)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < len; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c & 1u) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    }
    return ~c;
}

START_TEST(rfc3720_vectors)
{
    vecs_init();
    const struct vec *v = &vecs[_i];
    ck_assert_msg(crc32c(v->data, v->len) == v->crc, "%s: got %08x want %08x", v->name,
                  crc32c(v->data, v->len), v->crc);
    ck_assert_uint_eq(crc_bitwise(v->data, v->len), v->crc);
    const void *g = guard_copy(v->data, v->len);
    ck_assert_uint_eq(crc32c(g, v->len), v->crc);
}
END_TEST

START_TEST(every_split)
{
    vecs_init();
    const struct vec *v = &vecs[_i];
    for (size_t k = 0; k <= v->len; k++) {
        uint32_t c = crc32c_update(crc32c(v->data, k), v->data + k, v->len - k);
        ck_assert_msg(c == v->crc, "%s split at %zu: %08x", v->name, k, c);
        for (size_t m = k; m <= v->len; m++) {
            c = crc32c_update(crc32c(v->data, k), v->data + k, m - k);
            c = crc32c_update(c, v->data + m, v->len - m);
            ck_assert_msg(c == v->crc, "%s splits %zu,%zu: %08x", v->name, k, m, c);
        }
    }
    uint32_t c = 0;
    for (size_t i = 0; i < v->len; i++)
        c = crc32c_update(c, v->data + i, 1);
    ck_assert_uint_eq(c, v->crc);
}
END_TEST

START_TEST(empty_input)
{
    ck_assert_uint_eq(crc32c("", 0), 0);
    ck_assert_uint_eq(crc32c_update(0x12345678u, NULL, 0), 0x12345678u);
}
END_TEST

/* Random lengths at every alignment, flush against the guard page. */
START_TEST(random_against_model)
{
    unsigned seed = 12345;
    unsigned char buf[1031];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (unsigned char)(rand_r(&seed) >> 7);
    for (size_t len = 0; len <= 300; len++) {
        for (size_t off = 0; off < 8; off++) {
            const unsigned char *g = guard_copy(buf + off, len);
            uint32_t want = crc_bitwise(buf + off, len);
            ck_assert_uint_eq(crc32c(g, len), want);
            size_t cut = len ? (size_t)rand_r(&seed) % (len + 1) : 0;
            ck_assert_uint_eq(crc32c_update(crc32c(g, cut), g + cut, len - cut), want);
        }
    }
    ck_assert_uint_eq(crc32c(buf, sizeof buf), crc_bitwise(buf, sizeof buf));
}
END_TEST

/* A megabyte in uneven pieces equals the one-shot CRC and the model. */
START_TEST(large_in_pieces)
{
    size_t len = 1u << 20;
    unsigned char *p = malloc(len);
    ck_assert_ptr_nonnull(p);
    unsigned seed = 7;
    for (size_t i = 0; i < len; i++)
        p[i] = (unsigned char)rand_r(&seed);
    uint32_t whole = crc32c(p, len), c = 0;
    for (size_t at = 0, step = 1; at < len; step = step * 3 % 4099 + 1) {
        size_t n = step < len - at ? step : len - at;
        c = crc32c_update(c, p + at, n);
        at += n;
    }
    ck_assert_uint_eq(c, whole);
    ck_assert_uint_eq(whole, crc_bitwise(p, len));
    free(p);
}
END_TEST

Suite *crc32c_suite(void)
{
    Suite *s = suite_create("crc32c");
    TCase *tc = tcase_create("vectors");
    tcase_add_loop_test(tc, rfc3720_vectors, 0, (int)NVEC);
    tcase_add_loop_test(tc, every_split, 0, (int)NVEC);
    tcase_add_test(tc, empty_input);
    suite_add_tcase(s, tc);

    tc = tcase_create("model");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, random_against_model);
    tcase_add_test(tc, large_in_pieces);
    suite_add_tcase(s, tc);
    return s;
}

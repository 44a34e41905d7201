/*
 * check_b64url: unpadded base64url (server/b64url.c). RFC 4648 §10 vectors
 * and RFC 7515 Appendix C, both ways, with outputs flush against a guard
 * page; every character outside the URL alphabet in every position; the
 * canonical-bits rule for all 64 final characters; random round trips
 * checked against OpenSSL's standard-alphabet encoder as an independent
 * reference.
 */
#include <check.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <string.h>

#include "b64url.h"
#include "guard.h"

#define S(lit) lit, sizeof(lit) - 1

struct vec {
    const char *bin; size_t bin_len;
    const char *txt; size_t txt_len;
};

static const struct vec vecs[] = {
    /* RFC 4648 §10, padding removed */
    { S(""), S("") },
    { S("f"), S("Zg") },
    { S("fo"), S("Zm8") },
    { S("foo"), S("Zm9v") },
    { S("foob"), S("Zm9vYg") },
    { S("fooba"), S("Zm9vYmE") },
    { S("foobar"), S("Zm9vYmFy") },
    /* the two characters that differ from base64: '+' -> '-', '/' -> '_' */
    { S("\xFB\xFF"), S("-_8") },
    { S("\xFF\xFF\xFF"), S("____") },
    { S("\xF8\x3E\xFF"), S("-D7_") },
    { S("\0"), S("AA") },
    { S("\0\0\0"), S("AAAA") },
    /* RFC 7515 Appendix C */
    { S("\x03\xEC\xFF\xE0\xC1"), S("A-z_4ME") },
};

START_TEST(encode_vectors)
{
    const struct vec *v = &vecs[_i];
    ck_assert_uint_eq(B64URL_ENCODED_LEN(v->bin_len), v->txt_len);
    char zero[16] = { 0 };
    char *dst = guard_copy(zero, v->txt_len);
    ck_assert_int_eq(b64url_encode(dst, v->txt_len, v->bin, v->bin_len), (ssize_t)v->txt_len);
    ck_assert_mem_eq(dst, v->txt, v->txt_len);
    if (v->txt_len > 0) {
        dst = guard_copy(zero, v->txt_len - 1);
        ck_assert_int_eq(b64url_encode(dst, v->txt_len - 1, v->bin, v->bin_len), -ENOSPC);
    }
}
END_TEST

START_TEST(decode_vectors)
{
    const struct vec *v = &vecs[_i];
    char txt[16], out[16];
    memcpy(txt, v->txt, v->txt_len);
    ck_assert_uint_eq(B64URL_DECODED_MAX(v->txt_len), v->bin_len);
    /* The input against the guard: over-reads fault. */
    const char *in = guard_copy(txt, v->txt_len);
    ck_assert_int_eq(b64url_decode(out, v->bin_len, in, v->txt_len), (ssize_t)v->bin_len);
    ck_assert_mem_eq(out, v->bin, v->bin_len);
    ck_assert_int_eq(b64url_decode(out, sizeof out, in, v->txt_len), (ssize_t)v->bin_len);
    if (v->bin_len > 0) {
        memset(out, 0x5A, sizeof out);
        ck_assert_int_eq(b64url_decode(out, v->bin_len - 1, in, v->txt_len), -ENOSPC);
        for (size_t k = 0; k < sizeof out; k++)
            ck_assert_int_eq(out[k], 0x5A);     /* nothing written */
    }
}
END_TEST

static int in_alphabet(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_';
}

/* Every byte outside the alphabet, at every position of a 4- and a 3-char text. */
START_TEST(reject_foreign_chars)
{
    int c = _i;
    if (in_alphabet(c))
        return;
    static const char *base[] = { "Zm9v", "Zm8", "Zm9vYmFy" };
    for (size_t b = 0; b < 3; b++) {
        size_t n = strlen(base[b]);
        for (size_t pos = 0; pos < n; pos++) {
            char txt[16], out[16];
            memcpy(txt, base[b], n);
            txt[pos] = (char)c;
            const char *in = guard_copy(txt, n);
            ck_assert_msg(b64url_decode(out, sizeof out, in, n) == -EINVAL,
                          "byte 0x%02x at %zu of %s accepted", c, pos, base[b]);
            /* a bad text is -EINVAL even when it would not fit */
            ck_assert_int_eq(b64url_decode(out, 0, in, n), -EINVAL);
        }
    }
}
END_TEST

static const char *bad[] = {
    "Zg==", "Zm8=", "Zg=", "Zm9v====", "=", "==", "Zm9v=", "Z", "Zm9vY", "Zm9vYmFyZ",
    "Zm+v", "Zm/v", "Zm9 v", " Zm9v", "Zm9v ", "Zm9v\n", "Zh", "Zm9", "-_9", "AB", "AAB",
};

START_TEST(reject_vectors)
{
    const char *t = bad[_i];
    char out[16];
    size_t n = strlen(t);
    const char *in = guard_copy(t, n);
    ck_assert_msg(b64url_decode(out, sizeof out, in, n) == -EINVAL, "\"%s\" accepted", t);
}
END_TEST

/*
 * The last character of a 2- or 3-character group: of its six bits only the
 * top two (resp. four) carry data; exactly the 4 (resp. 16) whose other
 * bits are zero are accepted, and they decode to what they encode.
 */
START_TEST(canonical_tail)
{
    static const char alpha[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    int len = _i;               /* 2 or 3 */
    int unused = len == 2 ? 4 : 2;
    int accepted = 0;
    for (int v = 0; v < 64; v++) {
        char txt[4] = { 'Q', 'U', 'F', 0 };
        txt[len - 1] = alpha[v];
        unsigned char out[4];
        ssize_t n = b64url_decode(out, sizeof out, txt, (size_t)len);
        if ((v & ((1 << unused) - 1)) == 0) {
            ck_assert_int_eq(n, len - 1);
            char back[4];
            ck_assert_int_eq(b64url_encode(back, sizeof back, out, (size_t)n), len);
            ck_assert_mem_eq(back, txt, (size_t)len);
            accepted++;
        } else {
            ck_assert_msg(n == -EINVAL, "non-canonical %.*s accepted", len, txt);
        }
    }
    ck_assert_int_eq(accepted, 64 >> unused);
}
END_TEST

static uint64_t rng = 0x9E3779B97F4A7C15ull;

static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

/* OpenSSL's padded standard base64, turned into unpadded base64url. */
static size_t reference(char *dst, const unsigned char *src, size_t len)
{
    int n = EVP_EncodeBlock((unsigned char *)dst, src, (int)len);
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        char c = dst[i];
        if (c == '=')
            break;
        dst[k++] = c == '+' ? '-' : c == '/' ? '_' : c;
    }
    return k;
}

START_TEST(round_trip_random)
{
    unsigned char bin[300], back[300];
    char txt[512], ref[512];
    for (int iter = 0; iter < 3000; iter++) {
        size_t len = rnd() % sizeof bin;
        for (size_t k = 0; k < len; k++)
            bin[k] = (unsigned char)rnd();
        ssize_t n = b64url_encode(txt, sizeof txt, bin, len);
        ck_assert_int_eq(n, (ssize_t)B64URL_ENCODED_LEN(len));
        size_t rl = reference(ref, bin, len);
        ck_assert_uint_eq(rl, (size_t)n);
        ck_assert_mem_eq(txt, ref, rl);
        ck_assert_uint_eq(B64URL_DECODED_MAX((size_t)n), len);
        ck_assert_int_eq(b64url_decode(back, len, txt, (size_t)n), (ssize_t)len);
        ck_assert_mem_eq(back, bin, len);
    }
}
END_TEST

/* Every length: 4k+1 is never valid, every other length of 'A's is. */
START_TEST(lengths)
{
    char txt[64];
    unsigned char out[64];
    memset(txt, 'A', sizeof txt);
    for (size_t len = 0; len < sizeof txt; len++) {
        ssize_t n = b64url_decode(out, sizeof out, txt, len);
        if (len % 4 == 1)
            ck_assert_int_eq(n, -EINVAL);
        else
            ck_assert_int_eq(n, (ssize_t)(len * 3 / 4));
    }
}
END_TEST

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

Suite *b64url_suite(void)
{
    Suite *s = suite_create("b64url");
    TCase *tc = tcase_create("vectors");
    tcase_add_loop_test(tc, encode_vectors, 0, N(vecs));
    tcase_add_loop_test(tc, decode_vectors, 0, N(vecs));
    tcase_add_test(tc, lengths);
    suite_add_tcase(s, tc);

    tc = tcase_create("strict");
    tcase_add_loop_test(tc, reject_foreign_chars, 0, 256);
    tcase_add_loop_test(tc, reject_vectors, 0, N(bad));
    tcase_add_loop_test(tc, canonical_tail, 2, 4);
    suite_add_tcase(s, tc);

    tc = tcase_create("round_trip");
    tcase_add_test(tc, round_trip_random);
    suite_add_tcase(s, tc);
    return s;
}

/*
 * check_utf8: the incremental validator against RFC 3629 vectors.
 *
 * Every vector is fed whole, one byte at a time and split at every position,
 * each chunk placed against a guard page; the offending index and the
 * completeness at the end must be the same for all feeds. A second,
 * independently written decoder (code-point intervals instead of a DFA) is
 * compared with utf8_validate() over every 1-3 byte sequence and a wide
 * sample of 4-byte ones.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "guard.h"
#include "utf8.h"

#define NONE SIZE_MAX

struct uvec {
    const char *name;
    const char *s;
    size_t len;
    size_t bad;       /* index of the first offending byte, or NONE */
    int complete;     /* no bad byte and ends on a code point boundary */
};

#define OK(n, s)        { n, s, sizeof(s) - 1, NONE, 1 }
#define TRUNC(n, s)     { n, s, sizeof(s) - 1, NONE, 0 }
#define BAD(n, s, at)   { n, s, sizeof(s) - 1, at, 0 }

static const struct uvec vectors[] = {
    OK("empty", ""),
    OK("ascii", "Hello, world"),
    OK("nul", "a\0b"),
    OK("U+007F", "\x7f"),
    OK("U+0080", "\xc2\x80"),
    OK("U+07FF", "\xdf\xbf"),
    OK("U+0800", "\xe0\xa0\x80"),
    OK("U+D7FF", "\xed\x9f\xbf"),
    OK("U+E000", "\xee\x80\x80"),
    OK("U+FFFD", "\xef\xbf\xbd"),
    OK("U+FFFE noncharacter", "\xef\xbf\xbe"),
    OK("U+FFFF", "\xef\xbf\xbf"),
    OK("U+10000", "\xf0\x90\x80\x80"),
    OK("U+10FFFF", "\xf4\x8f\xbf\xbf"),
    OK("kosme", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"),
    OK("mixed", "a\xc3\xa9" "b\xe2\x82\xac\xf0\x9f\x98\x80z"),
    OK("long ascii then 2-byte", "abcdefghijklmnopqrstuvwxyz\xc3\xa9"),

    /* RFC 6455 §8.1 fail-fast: ED A0 can never start a valid sequence. */
    BAD("kosme + surrogate", "\xce\xba\xe1\xbd\xb9\xce\xbc\xce\xb5\xed\xa0\x80", 10),

    BAD("overlong C0 80", "\xc0\x80", 0),
    BAD("overlong C0 AF", "\xc0\xaf", 0),
    BAD("overlong C1 BF", "\xc1\xbf", 0),
    BAD("overlong E0 80 80", "\xe0\x80\x80", 1),
    BAD("overlong E0 80 AF", "\xe0\x80\xaf", 1),
    BAD("overlong E0 9F BF", "\xe0\x9f\xbf", 1),
    BAD("overlong F0 80 80 80", "\xf0\x80\x80\x80", 1),
    BAD("overlong F0 8F BF BF", "\xf0\x8f\xbf\xbf", 1),

    BAD("surrogate D800", "\xed\xa0\x80", 1),
    BAD("surrogate DBFF", "\xed\xaf\xbf", 1),
    BAD("surrogate DC00", "\xed\xb0\x80", 1),
    BAD("surrogate DFFF", "\xed\xbf\xbf", 1),
    BAD("surrogate pair", "\xed\xa0\x80\xed\xb0\x80", 1),
    BAD("truncated surrogate", "a\xed\xa0", 2),

    BAD("U+110000", "\xf4\x90\x80\x80", 1),
    BAD("F4 BF", "\xf4\xbf\xbf\xbf", 1),
    BAD("F5", "\xf5\x80\x80\x80", 0),
    BAD("F7", "\xf7\xbf\xbf\xbf", 0),
    BAD("F8 5-byte form", "\xf8\x88\x80\x80\x80", 0),
    BAD("FC 6-byte form", "\xfc\x84\x80\x80\x80\x80", 0),
    BAD("FE", "\xfe", 0),
    BAD("FF inside ascii", "ab\xff" "cd", 2),

    TRUNC("truncated 2 of 2", "\xc2"),
    TRUNC("truncated 2 of 3", "\xe0\xa0"),
    TRUNC("truncated 1 of 3", "\xe1"),
    TRUNC("truncated 3 of 4", "\xf0\x90\x80"),
    TRUNC("truncated F4 8F BF", "\xf4\x8f\xbf"),
    TRUNC("ascii then truncated", "abc\xe2\x82"),
    BAD("truncated then ascii", "\xc2\x41", 1),
    BAD("truncated 3 then ascii", "\xe1\x80\x41", 2),
    BAD("truncated 4 then ascii", "\xf0\x90\x80\x41", 3),
    BAD("truncated then lead", "\xc2\xc2\x80", 1),
    BAD("truncated 3 then lead", "\xe2\x82\xe2\x82\xac", 2),

    BAD("lone 80", "\x80", 0),
    BAD("lone BF", "\xbf", 0),
    BAD("stray after ascii", "a\x80", 1),
    BAD("extra continuation 2", "\xc2\x80\x80", 2),
    BAD("extra continuation 3", "\xe2\x82\xac\xac", 3),
    BAD("continuation after 4", "\xf0\x9f\x98\x80\x80", 4),
    BAD("bad after word skip", "abcdefghijklmnop\xc3\x28", 17),
};

#define NVEC (sizeof vectors / sizeof vectors[0])

struct result {
    size_t bad;
    int complete;
};

/*
 * Validate s[0..len) in chunks ending at cuts[0..ncuts) (ascending, inside
 * the input), each chunk copied against the guard page.
 */
static struct result feed(const uint8_t *s, size_t len, const size_t *cuts, size_t ncuts)
{
    struct result r = { NONE, 0 };
    uint32_t st = UTF8_ACCEPT;
    size_t off = 0;

    for (size_t c = 0; c <= ncuts; c++) {
        size_t end = c < ncuts ? cuts[c] : len;
        size_t n = end - off;
        const uint8_t *g = guard_copy(s + off, n);
        size_t k = utf8_validate(&st, g, n);
        if (r.bad != NONE) {
            /* Rejection is sticky: later chunks are not examined. */
            ck_assert_uint_eq(k, 0);
            ck_assert_uint_eq(st, UTF8_REJECT);
        } else if (k != n) {
            ck_assert_uint_lt(k, n);
            ck_assert_uint_eq(st, UTF8_REJECT);
            r.bad = off + k;
        }
        off = end;
    }
    r.complete = r.bad == NONE && utf8_complete(st);
    return r;
}

static void expect(const struct uvec *v, struct result r, const char *how, size_t split)
{
    ck_assert_msg(r.bad == v->bad && r.complete == v->complete,
                  "%s (%s, split %zu): bad %zu complete %d, want bad %zu complete %d",
                  v->name, how, split, r.bad, r.complete, v->bad, v->complete);
}

START_TEST(vector_whole)
{
    const struct uvec *v = &vectors[_i];
    expect(v, feed((const uint8_t *)v->s, v->len, NULL, 0), "whole", 0);
    ck_assert_int_eq(utf8_valid(guard_copy(v->s, v->len), v->len), v->complete);
}
END_TEST

START_TEST(vector_bytewise)
{
    const struct uvec *v = &vectors[_i];
    size_t cuts[64];
    ck_assert_uint_le(v->len, 64);
    for (size_t i = 1; i < v->len; i++)
        cuts[i - 1] = i;
    expect(v, feed((const uint8_t *)v->s, v->len, cuts, v->len ? v->len - 1 : 0),
           "bytewise", 0);
}
END_TEST

START_TEST(vector_splits)
{
    const struct uvec *v = &vectors[_i];
    for (size_t k = 1; k < v->len; k++)
        expect(v, feed((const uint8_t *)v->s, v->len, &k, 1), "split", k);
}
END_TEST

/* The offending index is found wherever it lies relative to the word skip. */
START_TEST(fast_path_positions)
{
    size_t pos = (size_t)_i;
    uint8_t buf[64];

    for (size_t len = pos + 1; len <= sizeof buf; len++) {
        uint32_t st;
        memset(buf, 'a', len);

        buf[pos] = 0x80;
        st = UTF8_ACCEPT;
        ck_assert_uint_eq(utf8_validate(&st, guard_copy(buf, len), len), pos);

        buf[pos] = 0xC3;        /* truncated 2-byte sequence */
        st = UTF8_ACCEPT;
        size_t k = utf8_validate(&st, guard_copy(buf, len), len);
        if (pos == len - 1) {
            ck_assert_uint_eq(k, len);
            ck_assert(!utf8_complete(st));
        } else {
            ck_assert_uint_eq(k, pos + 1);     /* the 'a' after C3 */
        }

        if (pos + 2 <= len) {
            buf[pos + 1] = 0xA9;
            st = UTF8_ACCEPT;
            ck_assert_uint_eq(utf8_validate(&st, guard_copy(buf, len), len), len);
            ck_assert(utf8_complete(st));
        }
    }
}
END_TEST

START_TEST(state_carried_across_calls)
{
    uint32_t st = UTF8_ACCEPT;
    ck_assert_uint_eq(utf8_validate(&st, (const uint8_t *)"ab\xe2", 3), 3);
    ck_assert(!utf8_complete(st));
    ck_assert_uint_eq(utf8_validate(&st, (const uint8_t *)"", 0), 0);
    ck_assert(!utf8_complete(st));
    ck_assert_uint_eq(utf8_validate(&st, (const uint8_t *)"\x82", 1), 1);
    ck_assert(!utf8_complete(st));
    ck_assert_uint_eq(utf8_validate(&st, (const uint8_t *)"\xac" "cd", 3), 3);
    ck_assert(utf8_complete(st));
}
END_TEST

START_TEST(reject_is_sticky)
{
    uint32_t st = UTF8_ACCEPT;
    ck_assert_uint_eq(utf8_validate(&st, (const uint8_t *)"ok\xff", 3), 2);
    ck_assert_uint_eq(st, UTF8_REJECT);
    ck_assert_uint_eq(utf8_validate(&st, (const uint8_t *)"fine", 4), 0);
    ck_assert_uint_eq(st, UTF8_REJECT);
    ck_assert_uint_eq(utf8_validate(&st, (const uint8_t *)"", 0), 0);
    ck_assert(!utf8_complete(st));
}
END_TEST

START_TEST(valid_whole_buffer)
{
    ck_assert(utf8_valid(NULL, 0));
    ck_assert(utf8_valid((const uint8_t *)"\xe2\x82\xac", 3));
    ck_assert(!utf8_valid((const uint8_t *)"\xe2\x82", 2));
    ck_assert(!utf8_valid((const uint8_t *)"\xe2\x82\xac\x80", 4));
}
END_TEST

/* ---- reference decoder: the set of code points a prefix can still reach */

static int reachable(uint32_t lo, uint32_t hi, uint32_t min_cp)
{
    if (lo < min_cp)
        lo = min_cp;            /* below min_cp would be overlong */
    if (hi > 0x10FFFF)
        hi = 0x10FFFF;
    if (lo > hi)
        return 0;
    return !(lo >= 0xD800 && hi <= 0xDFFF);
}

static struct result reference(const uint8_t *s, size_t n)
{
    struct result r = { NONE, 0 };
    size_t i = 0;

    while (i < n) {
        uint8_t b = s[i];
        size_t more;
        uint32_t cp, min_cp;
        if (b < 0x80) {
            i++;
            continue;
        }
        if ((b & 0xE0) == 0xC0) {
            more = 1; cp = b & 0x1F; min_cp = 0x80;
        } else if ((b & 0xF0) == 0xE0) {
            more = 2; cp = b & 0x0F; min_cp = 0x800;
        } else if ((b & 0xF8) == 0xF0) {
            more = 3; cp = b & 0x07; min_cp = 0x10000;
        } else {
            r.bad = i;
            return r;
        }
        for (size_t k = 0; k <= more; k++) {
            if (k > 0) {
                if (i + k >= n)
                    return r;           /* truncated: no bad byte, incomplete */
                if ((s[i + k] & 0xC0) != 0x80) {
                    r.bad = i + k;
                    return r;
                }
                cp = cp << 6 | (s[i + k] & 0x3F);
            }
            unsigned bits = 6 * (unsigned)(more - k);
            uint32_t lo = cp << bits, hi = lo | ((UINT32_C(1) << bits) - 1);
            if (!reachable(lo, hi, min_cp)) {
                r.bad = i + k;
                return r;
            }
        }
        i += more + 1;
    }
    r.complete = 1;
    return r;
}

/*
 * Plain comparisons here: every ck_assert costs Check a write to its
 * results channel, and this runs a few million times.
 */
static void compare_with_reference(const uint8_t *s, size_t n)
{
    struct result want = reference(s, n);
    uint32_t st = UTF8_ACCEPT;
    size_t k = utf8_validate(&st, s, n);
    struct result got = { k == n ? NONE : k, k == n && utf8_complete(st) };
    /* And one byte at a time, as fragments would arrive. */
    uint32_t st1 = UTF8_ACCEPT;
    size_t bad1 = NONE;
    for (size_t i = 0; i < n && bad1 == NONE; i++)
        if (utf8_validate(&st1, s + i, 1) != 1)
            bad1 = i;
    int complete1 = bad1 == NONE && utf8_complete(st1);
    if (got.bad != want.bad || got.complete != want.complete ||
        bad1 != want.bad || complete1 != want.complete)
        ck_abort_msg("%02x %02x %02x %02x (n=%zu): whole %zu/%d bytewise %zu/%d want %zu/%d",
                     s[0], n > 1 ? s[1] : 0, n > 2 ? s[2] : 0, n > 3 ? s[3] : 0, n,
                     got.bad, got.complete, bad1, complete1, want.bad, want.complete);
}

static const uint8_t interesting[] = {
    0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC2, 0xDF,
    0xE0, 0xED, 0xF0, 0xF4, 0xF5, 0xFF
};
#define NINT (sizeof interesting)

/* Every 1- and 2-byte sequence, and every 3-byte one whose last byte is interesting. */
START_TEST(reference_short)
{
    uint8_t s[3];
    for (unsigned a = 0; a < 256; a++) {
        s[0] = (uint8_t)a;
        compare_with_reference(s, 1);
        for (unsigned b = 0; b < 256; b++) {
            s[1] = (uint8_t)b;
            compare_with_reference(s, 2);
            for (size_t c = 0; c < NINT; c++) {
                s[2] = interesting[c];
                compare_with_reference(s, 3);
            }
        }
    }
}
END_TEST

/* 4-byte leads (and the invalid F5..F7) with every second byte. */
START_TEST(reference_four)
{
    uint8_t s[4];
    for (unsigned a = 0xF0; a <= 0xF7; a++) {
        s[0] = (uint8_t)a;
        for (unsigned b = 0; b < 256; b++) {
            s[1] = (uint8_t)b;
            for (size_t c = 0; c < NINT; c++) {
                s[2] = interesting[c];
                for (size_t d = 0; d < NINT; d++) {
                    s[3] = interesting[d];
                    compare_with_reference(s, 4);
                }
            }
        }
    }
}
END_TEST

/* The third byte of every 3-byte lead, exhaustively, after a valid second. */
START_TEST(reference_three_exhaustive_tail)
{
    uint8_t s[3];
    for (unsigned a = 0xE0; a <= 0xEF; a++) {
        s[0] = (uint8_t)a;
        for (unsigned b = 0x80; b <= 0xBF; b++) {
            s[1] = (uint8_t)b;
            for (unsigned c = 0; c < 256; c++) {
                s[2] = (uint8_t)c;
                compare_with_reference(s, 3);
            }
        }
    }
}
END_TEST

Suite *utf8_suite(void)
{
    Suite *s = suite_create("utf8");
    TCase *tc;

    tc = tcase_create("vectors");
    tcase_add_loop_test(tc, vector_whole, 0, (int)NVEC);
    tcase_add_loop_test(tc, vector_bytewise, 0, (int)NVEC);
    tcase_add_loop_test(tc, vector_splits, 0, (int)NVEC);
    suite_add_tcase(s, tc);

    tc = tcase_create("fast_path");
    tcase_add_loop_test(tc, fast_path_positions, 0, 64);
    suite_add_tcase(s, tc);

    tc = tcase_create("state");
    tcase_add_test(tc, state_carried_across_calls);
    tcase_add_test(tc, reject_is_sticky);
    tcase_add_test(tc, valid_whole_buffer);
    suite_add_tcase(s, tc);

    tc = tcase_create("reference");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, reference_short);
    tcase_add_test(tc, reference_four);
    tcase_add_test(tc, reference_three_exhaustive_tail);
    suite_add_tcase(s, tc);

    return s;
}

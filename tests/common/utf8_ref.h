/*
 * utf8_ref: a textbook UTF-8 reference (decode by formula, then check the
 * value for overlongs, surrogates and range) used to compute expected
 * results independently of the code under test. Shared by the JSON unit
 * suite and the JSON fuzz target.
 */
#ifndef WSM_TEST_UTF8_REF_H
#define WSM_TEST_UTF8_REF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* 1 if s[0..n) is exactly one well-formed code point. */
static inline int ref_valid(const unsigned char *s, size_t n)
{
    static const uint32_t min_cp[] = { 0, 0, 0x80, 0x800, 0x10000 };
    size_t need;
    uint32_t cp;
    if (s[0] < 0x80)
        return n == 1;
    if ((s[0] & 0xE0) == 0xC0)
        need = 2, cp = s[0] & 0x1Fu;
    else if ((s[0] & 0xF0) == 0xE0)
        need = 3, cp = s[0] & 0x0Fu;
    else if ((s[0] & 0xF8) == 0xF0)
        need = 4, cp = s[0] & 0x07u;
    else
        return 0;
    if (n != need)
        return 0;
    for (size_t k = 1; k < n; k++) {
        if ((s[k] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (s[k] & 0x3Fu);
    }
    return cp >= min_cp[n] && cp <= 0x10FFFF && (cp < 0xD800 || cp > 0xDFFF);
}

/* Can s[0..m) be completed into a well-formed sequence (a maximal subpart)? */
static inline int ref_prefix_ok(const unsigned char *s, size_t m)
{
    for (size_t n = m + 1; n <= 4; n++)
        for (unsigned second = 0x80; second <= 0xBF; second++) {
            unsigned char t[4] = { s[0], (unsigned char)second, 0x80, 0x80 };
            memcpy(t, s, m);
            if (ref_valid(t, n))
                return 1;
        }
    return 0;
}

/*
 * What a writer that replaces each maximal subpart of ill-formed UTF-8 with
 * U+FFFD (Unicode §3.9) makes of s[0..len): into out (3 x len bytes at
 * most). *was_valid, when not NULL, says whether nothing was replaced.
 */
static inline size_t ref_substitute(unsigned char *out, const unsigned char *s,
                                    size_t len, int *was_valid)
{
    size_t o = 0, i = 0;
    if (was_valid != NULL)
        *was_valid = 1;
    while (i < len) {
        size_t take = 0;
        for (size_t n = 1; n <= 4 && i + n <= len; n++)
            if (ref_valid(s + i, n))
                take = n;
        if (take > 0) {
            memcpy(out + o, s + i, take);
            o += take;
            i += take;
            continue;
        }
        if (was_valid != NULL)
            *was_valid = 0;
        size_t m = 1;
        if (ref_prefix_ok(s + i, 1))
            while (m < 3 && i + m < len && ref_prefix_ok(s + i, m + 1))
                m++;
        memcpy(out + o, "\xEF\xBF\xBD", 3);
        o += 3;
        i += m;
    }
    return o;
}

#endif

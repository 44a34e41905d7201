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

#endif

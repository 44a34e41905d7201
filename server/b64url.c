/*
 * b64url: unpadded base64url (RFC 4648 §5) both ways. Each group of four
 * characters carries 24 bits, most significant first (§4); a final group of
 * two or three characters carries one or two bytes, and its leftover low
 * bits (4 or 2) must be zero, which is what makes decoding canonical.
 */
#include "b64url.h"

#include <limits.h>
#include <stdint.h>

static const char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* The 6-bit value of a base64url character, or -1 (also for '+', '/', '='). */
static int value(unsigned char ch)
{
    if (ch >= 'A' && ch <= 'Z') return ch - 'A';
    if (ch >= 'a' && ch <= 'z') return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9') return ch - '0' + 52;
    if (ch == '-') return 62;
    if (ch == '_') return 63;
    return -1;
}

ssize_t b64url_encode(char *dst, size_t cap, const void *src, size_t len)
{
    const unsigned char *s = src;
    if (len > ((size_t)SSIZE_MAX / 4) * 3 || B64URL_ENCODED_LEN(len) > cap)
        return -ENOSPC;
    size_t w = 0, i = 0;
    for (; len - i >= 3; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        dst[w++] = alphabet[v >> 18];
        dst[w++] = alphabet[v >> 12 & 63];
        dst[w++] = alphabet[v >> 6 & 63];
        dst[w++] = alphabet[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)s[i] << 16;
        dst[w++] = alphabet[v >> 18];
        dst[w++] = alphabet[v >> 12 & 63];
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8;
        dst[w++] = alphabet[v >> 18];
        dst[w++] = alphabet[v >> 12 & 63];
        dst[w++] = alphabet[v >> 6 & 63];
    }
    return (ssize_t)w;
}

ssize_t b64url_decode(void *dst, size_t cap, const char *src, size_t len)
{
    const unsigned char *s = (const unsigned char *)src;
    unsigned char *d = dst;
    size_t tail = len % 4;
    if (tail == 1 || len > (size_t)SSIZE_MAX)
        return -EINVAL;
    /* Check the whole text first: a bad text is -EINVAL whatever its
     * length, and nothing is written unless all of it decodes. */
    for (size_t i = 0; i < len; i++)
        if (value(s[i]) < 0)
            return -EINVAL;
    /* A short group's unused bits: 4 after two characters, 2 after three. */
    if ((tail == 2 && (value(s[len - 1]) & 15) != 0) ||
        (tail == 3 && (value(s[len - 1]) & 3) != 0))
        return -EINVAL;
    if (B64URL_DECODED_MAX(len) > cap)
        return -ENOSPC;
    size_t w = 0;
    for (size_t i = 0; i < len; i += 4) {
        size_t n = len - i < 4 ? len - i : 4;
        uint32_t v = 0;
        for (size_t k = 0; k < 4; k++)
            v = v << 6 | (uint32_t)(k < n ? value(s[i + k]) : 0);
        d[w++] = (unsigned char)(v >> 16);
        if (n >= 3)
            d[w++] = (unsigned char)(v >> 8);
        if (n == 4)
            d[w++] = (unsigned char)v;
    }
    return (ssize_t)w;
}

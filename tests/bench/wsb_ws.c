/*
 * wsb_ws: the pure client-side RFC 6455 codec: the opening handshake
 * request and response check (§4.1, §4.2.2), frame header decode and the
 * structural rules a client enforces on server frames (§5.1-§5.5), masked
 * frame encode (§5.2, §5.3) and strict UTF-8 for text (§8.1).
 *
 * No I/O, no allocation, no state beyond the arguments, so wsb_net.c can
 * call it on any TCP split. Decoders return >0 bytes used, 0 "need more",
 * negative for malformed input.
 */
#include <string.h>
#include <strings.h>

#include "wsb.h"

#define HEAD_MAX (16 * 1024)          /* bound on the 101 response head */

int wsb_ws_request(char *dst, size_t cap, const char *path,
                   const char *host, const char *key)
{
    int n = snprintf(dst, cap,
                     "GET %s HTTP/1.1\r\n"
                     "Host: %s\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n"
                     "User-Agent: wsbench\r\n\r\n",
                     path, host, key);
    return n > 0 && (size_t)n < cap ? n : -1;
}

/* Case-insensitive search for token tok in a comma list value. */
static int has_token(const char *v, size_t vn, const char *tok)
{
    size_t tn = strlen(tok);
    for (size_t i = 0; i + tn <= vn; i++) {
        if (strncasecmp(v + i, tok, tn) == 0 &&
            (i == 0 || v[i - 1] == ',' || v[i - 1] == ' ') &&
            (i + tn == vn || v[i + tn] == ',' || v[i + tn] == ' '))
            return 1;
    }
    return 0;
}

#define SEEN_UPGRADE    1
#define SEEN_CONNECTION 2
#define SEEN_ACCEPT     4
#define SEEN_BAD        16            /* a header that must fail us */
#define SEEN_BAD_ACCEPT 32

/* Classify one header line of the 101 response into *seen bits. */
static void check_header(const char *line, size_t n, const char *accept,
                         int *seen)
{
    const char *colon = memchr(line, ':', n);
    if (!colon) {
        *seen |= SEEN_BAD;
        return;
    }
    size_t kn = (size_t)(colon - line);
    const char *v = colon + 1;
    size_t vn = n - kn - 1;
    while (vn && (*v == ' ' || *v == '\t')) { v++; vn--; }
    while (vn && (v[vn - 1] == ' ' || v[vn - 1] == '\t')) vn--;

    if (kn == 7 && strncasecmp(line, "Upgrade", 7) == 0)
        *seen |= vn == 9 && strncasecmp(v, "websocket", 9) == 0
                     ? SEEN_UPGRADE : SEEN_BAD;
    else if (kn == 10 && strncasecmp(line, "Connection", 10) == 0)
        *seen |= has_token(v, vn, "upgrade") ? SEEN_CONNECTION : SEEN_BAD;
    else if (kn == 20 && strncasecmp(line, "Sec-WebSocket-Accept", 20) == 0)
        *seen |= vn == 28 && memcmp(v, accept, 28) == 0 ? SEEN_ACCEPT
                                                        : SEEN_BAD_ACCEPT;
    else if (kn == 24 &&
             strncasecmp(line, "Sec-WebSocket-Extensions", 24) == 0)
        *seen |= SEEN_BAD;   /* we offered none: §4.1 says fail */
}

static int status_of(const char *buf, size_t head)
{
    if (head < 13 || memcmp(buf, "HTTP/1.1 ", 9) != 0)
        return 0;
    int s = 0;
    for (int i = 9; i < 12; i++) {
        if (buf[i] < '0' || buf[i] > '9')
            return 0;
        s = s * 10 + (buf[i] - '0');
    }
    return s;
}

ssize_t wsb_ws_response(const char *buf, size_t n, const char *key,
                        int *status)
{
    *status = 0;
    const char *end = memmem(buf, n, "\r\n\r\n", 4);
    if (!end)
        return n > HEAD_MAX ? -WSB_FAIL_STATUS : 0;
    size_t head = (size_t)(end - buf) + 4;
    *status = status_of(buf, head);
    if (*status != 101)
        return -WSB_FAIL_STATUS;
    char accept[29];
    wsb_accept_key(key, accept);
    int seen = 0;
    const char *line = (const char *)memchr(buf, '\n', head) + 1;
    while (line < end + 2) {
        const char *eol = memchr(line, '\r', (size_t)(end + 2 - line));
        if (!eol || eol == line)
            break;
        check_header(line, (size_t)(eol - line), accept, &seen);
        line = eol + 2;
    }
    if (!(seen & SEEN_ACCEPT) || (seen & SEEN_BAD_ACCEPT))
        return -WSB_FAIL_ACCEPT;
    if (!(seen & SEEN_UPGRADE) || !(seen & SEEN_CONNECTION) ||
        (seen & SEEN_BAD))
        return -WSB_FAIL_STATUS;
    return (ssize_t)head;
}

ssize_t wsb_ws_frame_head(const uint8_t *p, size_t n, struct wsb_frame *f)
{
    if (n < 2)
        return 0;
    f->fin = p[0] >> 7;
    f->rsv = (p[0] >> 4) & 7;
    f->opcode = p[0] & 15;
    f->masked = p[1] >> 7;
    uint64_t len = p[1] & 127;
    size_t h = 2;
    if (len == 126) {
        if (n < 4)
            return 0;
        len = (uint64_t)p[2] << 8 | p[3];
        h = 4;
        if (len < 126)
            return -1;                 /* §5.2: minimal encoding */
    } else if (len == 127) {
        if (n < 10)
            return 0;
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | p[2 + i];
        h = 10;
        if (len >> 63 || len <= 0xFFFF)
            return -1;                 /* MSB must be 0; minimal form */
    }
    if (f->masked)
        h += 4;
    if (n < h)
        return 0;
    f->len = len;
    return (ssize_t)h;
}

int wsb_ws_frame_valid(int msg_op, const struct wsb_frame *f)
{
    if (f->rsv || f->masked)   /* no extension; §5.1: servers never mask */
        return 0;
    switch (f->opcode) {
    case WSB_OP_CONT:
        return msg_op != 0;
    case WSB_OP_TEXT:
    case WSB_OP_BINARY:
        return msg_op == 0;    /* §5.4: no new message inside another */
    case WSB_OP_CLOSE:
    case WSB_OP_PING:
    case WSB_OP_PONG:
        return f->fin && f->len <= 125;   /* §5.5 */
    default:
        return 0;
    }
}

size_t wsb_ws_frame_build(char *dst, int opcode, const void *p, size_t n,
                          const uint8_t key[4])
{
    uint8_t *d = (uint8_t *)dst;
    size_t h = 0;
    d[h++] = (uint8_t)(0x80 | opcode);
    if (n < 126) {
        d[h++] = (uint8_t)(0x80 | n);
    } else if (n <= 0xFFFF) {
        d[h++] = 0x80 | 126;
        d[h++] = (uint8_t)(n >> 8);
        d[h++] = (uint8_t)n;
    } else {
        d[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            d[h++] = (uint8_t)((uint64_t)n >> (8 * i));
    }
    memcpy(d + h, key, 4);
    h += 4;
    const uint8_t *s = p;
    for (size_t i = 0; i < n; i++)
        d[h + i] = s[i] ^ key[i & 3];
    return h + n;
}

int wsb_ws_utf8_ok(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        /* ASCII runs (nearly all JSON) eight bytes at a time. */
        while (i + 8 <= n) {
            uint64_t word;
            memcpy(&word, s + i, 8);
            if (word & 0x8080808080808080ull)
                break;
            i += 8;
        }
        if (i >= n)
            break;
        uint8_t b = s[i];
        if (b < 0x80) {
            i++;
            continue;
        }
        int need;
        uint32_t cp, min;
        if ((b & 0xE0) == 0xC0)      { need = 1; cp = b & 0x1F; min = 0x80; }
        else if ((b & 0xF0) == 0xE0) { need = 2; cp = b & 0x0F; min = 0x800; }
        else if ((b & 0xF8) == 0xF0) { need = 3; cp = b & 0x07; min = 0x10000; }
        else return 0;
        if (i + (size_t)need >= n)
            return 0;
        for (int k = 1; k <= need; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        /* Overlong forms, UTF-16 surrogates and past U+10FFFF are invalid. */
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += (size_t)need + 1;
    }
    return 1;
}

/*
 * json: a strict reader for one flat object and a string-body writer
 * (RFC 8259). Pure: no allocation, no I/O, no logging.
 *
 * The reader is a single pass over a complete buffer (not incremental);
 * strings are decoded in place behind the read cursor, which is safe
 * because no escape is shorter than the UTF-8 it decodes to. It never
 * reads outside buf[0..len). The writer replaces invalid UTF-8 with U+FFFD
 * per "maximal subpart" (Unicode 15 §3.9, as the WHATWG decoder does): one
 * U+FFFD for each longest prefix of a well-formed sequence, or for each
 * byte that cannot start one.
 */
#include "json.h"

#include <stdint.h>
#include <string.h>

#include "ascii.h"

/*
 * Length of the well-formed UTF-8 sequence at s[0..len) (1..4), or 0 when
 * it is ill-formed; then *bad is the length of its maximal subpart (>= 1).
 * Second-byte ranges per RFC 3629 §4 exclude overlongs, surrogates and
 * code points above U+10FFFF.
 */
static size_t utf8_seq(const unsigned char *s, size_t len, size_t *bad)
{
    unsigned char c = s[0];
    size_t n;
    unsigned char lo = 0x80, hi = 0xBF;
    *bad = 1;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else {
        return 0;               /* 0x80..0xC1, 0xF5..0xFF */
    }
    for (size_t i = 1; i < n; i++) {
        if (i >= len || s[i] < lo || s[i] > hi) {
            *bad = i;
            return 0;
        }
        lo = 0x80;
        hi = 0xBF;
    }
    return n;
}

/* ---- reader ---------------------------------------------------------- */

struct cursor {
    const char *buf;
    size_t len;
    size_t i;
};

static void skip_ws(struct cursor *c)
{
    while (c->i < c->len) {
        char ch = c->buf[c->i];
        if (ch != ' ' && ch != '\t' && ch != '\n' && ch != '\r')
            break;
        c->i++;
    }
}

/* Four hex digits after "\u" at c->i; advances past them. -1 if not hex. */
static long read_hex4(struct cursor *c)
{
    if (c->len - c->i < 4)
        return -1;
    long v = 0;
    for (int k = 0; k < 4; k++) {
        int d = ascii_hex_value(c->buf[c->i + (size_t)k]);
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    c->i += 4;
    return v;
}

static size_t put_utf8(char *w, unsigned long cp)
{
    if (cp < 0x80) {
        w[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        w[0] = (char)(0xC0 | (cp >> 6));
        w[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        w[0] = (char)(0xE0 | (cp >> 12));
        w[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        w[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    w[0] = (char)(0xF0 | (cp >> 18));
    w[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    w[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    w[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/*
 * The escape after a backslash (c->i just past it), decoded to *w.
 * Returns bytes written, or 0 on a bad escape or lone surrogate.
 */
static size_t read_escape(struct cursor *c, char *w)
{
    if (c->i >= c->len)
        return 0;
    char e = c->buf[c->i++];
    switch (e) {
    case '"':  *w = '"';  return 1;
    case '\\': *w = '\\'; return 1;
    case '/':  *w = '/';  return 1;
    case 'b':  *w = '\b'; return 1;
    case 'f':  *w = '\f'; return 1;
    case 'n':  *w = '\n'; return 1;
    case 'r':  *w = '\r'; return 1;
    case 't':  *w = '\t'; return 1;
    case 'u':  break;
    default:   return 0;
    }
    long cp = read_hex4(c);
    if (cp < 0 || (cp >= 0xDC00 && cp <= 0xDFFF))
        return 0;
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        /* RFC 8259 §7: a high surrogate must be followed by "\u" + low. */
        if (c->len - c->i < 2 || c->buf[c->i] != '\\' ||
            c->buf[c->i + 1] != 'u')
            return 0;
        c->i += 2;
        long low = read_hex4(c);
        if (low < 0xDC00 || low > 0xDFFF)
            return 0;
        cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
    }
    return put_utf8(w, (unsigned long)cp);
}

/*
 * A string whose opening quote is at c->i, decoded to dst[0..cap), or only
 * checked when dst is NULL; *out_len is its decoded length. dst may be the
 * string's own bytes (in place): the writer never passes the reader, as no
 * escape is shorter than what it decodes to. 0, -1 if malformed, -2 if it
 * decodes to more than cap bytes (the cursor is then left inside it).
 */
static int read_string(struct cursor *c, char *dst, size_t cap, size_t *out_len)
{
    if (c->i >= c->len || c->buf[c->i] != '"')
        return -1;
    c->i++;
    size_t w = 0;
    while (c->i < c->len) {
        unsigned char ch = (unsigned char)c->buf[c->i];
        char tmp[4];
        const char *src;
        size_t n;
        if (ch == '"') {
            c->i++;
            *out_len = w;
            return 0;
        }
        if (ch == '\\') {
            c->i++;
            n = read_escape(c, tmp);
            if (n == 0)
                return -1;
            src = tmp;
        } else if (ch < 0x20) {
            return -1;          /* RFC 8259 §7: controls must be escaped */
        } else {
            size_t bad;
            n = utf8_seq((const unsigned char *)c->buf + c->i, c->len - c->i, &bad);
            if (n == 0)
                return -1;
            src = c->buf + c->i;
            c->i += n;
        }
        if (dst != NULL) {
            if (cap - w < n)
                return -2;
            memmove(dst + w, src, n);
        }
        w += n;
    }
    return -1;                  /* unterminated */
}

/* read_string() decoding in place; MBUF is the writable alias of c->buf. */
static int read_string_in_place(struct cursor *c, char *mbuf, const char **out,
                                size_t *out_len)
{
    if (c->i >= c->len || c->buf[c->i] != '"')
        return -1;
    char *dst = mbuf + c->i + 1;
    *out = dst;
    return read_string(c, dst, SIZE_MAX, out_len);
}

static int is_digit(struct cursor *c)
{
    return c->i < c->len && c->buf[c->i] >= '0' && c->buf[c->i] <= '9';
}

/* RFC 8259 §6: -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)? */
static int read_number(struct cursor *c)
{
    if (c->i < c->len && c->buf[c->i] == '-')
        c->i++;
    if (!is_digit(c))
        return -1;
    if (c->buf[c->i++] != '0')
        while (is_digit(c))
            c->i++;
    if (c->i < c->len && c->buf[c->i] == '.') {
        c->i++;
        if (!is_digit(c))
            return -1;
        while (is_digit(c))
            c->i++;
    }
    if (c->i < c->len && (c->buf[c->i] == 'e' || c->buf[c->i] == 'E')) {
        c->i++;
        if (c->i < c->len && (c->buf[c->i] == '+' || c->buf[c->i] == '-'))
            c->i++;
        if (!is_digit(c))
            return -1;
        while (is_digit(c))
            c->i++;
    }
    return 0;
}

static int read_literal(struct cursor *c, const char *word)
{
    size_t n = strlen(word);
    if (c->len - c->i < n || memcmp(c->buf + c->i, word, n) != 0)
        return -1;
    c->i += n;
    return 0;
}

static int read_array(struct cursor *c);

/*
 * One value at c->i into *f. Strings are decoded in place into MBUF (the
 * writable alias of c->buf), or only checked when MBUF is NULL (inside an
 * array, whose raw text must stay intact for json_array_next()). With
 * ARRAYS, a flat array of scalars is a value too. 0, or -1 if malformed or
 * nested deeper than allowed.
 */
static int read_value(struct cursor *c, char *mbuf, int arrays, struct json_field *f)
{
    if (c->i >= c->len)
        return -1;
    size_t start = c->i;
    int rc;
    switch (c->buf[c->i]) {
    case '"':
        f->type = JSON_STRING;
        if (mbuf != NULL)
            return read_string_in_place(c, mbuf, &f->val, &f->val_len);
        rc = read_string(c, NULL, 0, &f->val_len);
        break;
    case '[':
        if (!arrays)
            return -1;
        f->type = JSON_ARRAY;
        rc = read_array(c);
        break;
    case 't':
        f->type = JSON_TRUE;
        rc = read_literal(c, "true");
        break;
    case 'f':
        f->type = JSON_FALSE;
        rc = read_literal(c, "false");
        break;
    case 'n':
        f->type = JSON_NULL;
        rc = read_literal(c, "null");
        break;
    default:                    /* '{' lands here too: never nested */
        f->type = JSON_NUMBER;
        rc = read_number(c);
        break;
    }
    f->val = c->buf + start;
    f->val_len = c->i - start;
    return rc;
}

/* A flat array of scalars at c->i ('['), only checked. 0, or -1. */
static int read_array(struct cursor *c)
{
    c->i++;
    skip_ws(c);
    if (c->i < c->len && c->buf[c->i] == ']') {
        c->i++;
        return 0;
    }
    for (;;) {
        struct json_field scratch;
        if (read_value(c, NULL, 0, &scratch) != 0)
            return -1;
        skip_ws(c);
        if (c->i >= c->len)
            return -1;
        char sep = c->buf[c->i++];
        if (sep == ']')
            return 0;
        if (sep != ',')
            return -1;
        skip_ws(c);
    }
}

static int is_duplicate(const struct json_field *fields, int n,
                        const struct json_field *f)
{
    for (int k = 0; k < n; k++)
        if (fields[k].key_len == f->key_len &&
            memcmp(fields[k].key, f->key, f->key_len) == 0)
            return 1;
    return 0;
}

int json_parse_object_ex(char *buf, size_t len, struct json_field *fields, int max,
                         unsigned flags)
{
    struct cursor c = { buf, len, 0 };
    int n = 0;                  /* fields seen, stored or not */
    if (max < 0)
        max = 0;
    skip_ws(&c);
    if (c.i >= c.len || c.buf[c.i] != '{')
        return -1;
    c.i++;
    skip_ws(&c);
    if (c.i < c.len && c.buf[c.i] == '}') {
        c.i++;
    } else {
        for (;;) {
            /* Past max, keep checking the syntax in a scratch field so
             * malformed text is still -1; duplicates are only detected
             * among the stored fields then. */
            struct json_field scratch;
            struct json_field *f = n < max ? &fields[n] : &scratch;
            if (read_string_in_place(&c, buf, &f->key, &f->key_len) != 0)
                return -1;
            if (is_duplicate(fields, n < max ? n : max, f))
                return -1;
            skip_ws(&c);
            if (c.i >= c.len || c.buf[c.i] != ':')
                return -1;
            c.i++;
            skip_ws(&c);
            if (read_value(&c, buf, (flags & JSON_ARRAYS) != 0, f) != 0)
                return -1;
            n++;
            skip_ws(&c);
            if (c.i >= c.len)
                return -1;
            char sep = c.buf[c.i++];
            if (sep == '}')
                break;
            if (sep != ',')
                return -1;
            skip_ws(&c);
        }
    }
    skip_ws(&c);
    if (c.i != c.len)
        return -1;              /* trailing garbage */
    return n > max ? -2 : n;
}

int json_parse_object(char *buf, size_t len, struct json_field *fields, int max)
{
    return json_parse_object_ex(buf, len, fields, max, 0);
}

const struct json_field *json_get(const struct json_field *fields, int n,
                                  const char *key)
{
    size_t klen = strlen(key);
    for (int k = 0; k < n; k++)
        if (fields[k].key_len == klen && memcmp(fields[k].key, key, klen) == 0)
            return &fields[k];
    return NULL;
}

void json_array_begin(struct json_array_iter *it, const struct json_field *f)
{
    it->text = f->val;
    it->len = f->val_len;
    it->i = 1;                  /* past '[' */
    it->n = 0;
}

int json_array_next(struct json_array_iter *it, char *dst, size_t cap, size_t *len,
                    int *type)
{
    struct cursor c = { it->text, it->len, it->i };
    skip_ws(&c);
    if (c.i >= c.len)
        return -1;
    if (c.buf[c.i] == ']')
        return 0;               /* it->i stays: later calls answer 0 too */
    if (it->n > 0) {
        if (c.buf[c.i] != ',')
            return -1;
        c.i++;
        skip_ws(&c);
    }
    if (c.i < c.len && c.buf[c.i] == '"') {
        *type = JSON_STRING;
        int rc = read_string(&c, dst, cap, len);
        if (rc != 0)
            return rc;
    } else {
        struct json_field v;
        if (read_value(&c, NULL, 0, &v) != 0)
            return -1;
        if (v.val_len > cap)
            return -2;
        memcpy(dst, v.val, v.val_len);
        *len = v.val_len;
        *type = v.type;
    }
    it->i = c.i;
    it->n++;
    return 1;
}

/* ---- writer ---------------------------------------------------------- */

/*
 * The one escaping loop behind both writer functions: with dst == NULL it
 * only counts, so the two can never disagree on the length.
 */
static size_t escape(char *dst, const char *src, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)src;
    size_t out = 0;
    size_t i = 0;
    while (i < len) {
        unsigned char ch = s[i];
        char tmp[6];
        const char *rep = tmp;
        size_t rlen, adv = 1;
        if (ch == '"' || ch == '\\') {
            tmp[0] = '\\';
            tmp[1] = (char)ch;
            rlen = 2;
        } else if (ch < 0x20) {
            char sh = ch == '\n' ? 'n' : ch == '\r' ? 'r' : ch == '\t' ? 't'
                    : ch == '\b' ? 'b' : ch == '\f' ? 'f' : 0;
            tmp[0] = '\\';
            if (sh != 0) {
                tmp[1] = sh;
                rlen = 2;
            } else {
                memcpy(tmp + 1, "u00", 3);
                tmp[4] = hex[ch >> 4];
                tmp[5] = hex[ch & 0xF];
                rlen = 6;
            }
        } else if (ch < 0x80) {
            rep = (const char *)s + i;
            rlen = 1;
        } else {
            size_t bad;
            size_t n = utf8_seq(s + i, len - i, &bad);
            if (n == 0) {
                rep = "\xEF\xBF\xBD";       /* U+FFFD */
                rlen = 3;
                adv = bad;
            } else if (n == 3 && ch == 0xE2 && s[i + 1] == 0x80 &&
                       (s[i + 2] == 0xA8 || s[i + 2] == 0xA9)) {
                /* U+2028/U+2029 are line terminators in JavaScript
                 * string literals before ES2019; escape them. */
                rep = s[i + 2] == 0xA8 ? "\\u2028" : "\\u2029";
                rlen = 6;
                adv = 3;
            } else {
                rep = (const char *)s + i;
                rlen = n;
                adv = n;
            }
        }
        if (dst != NULL)
            memcpy(dst + out, rep, rlen);
        out += rlen;
        i += adv;
    }
    return out;
}

size_t json_escaped_len(const char *s, size_t len)
{
    return escape(NULL, s, len);
}

size_t json_escape(char *dst, const char *s, size_t len)
{
    return escape(dst, s, len);
}

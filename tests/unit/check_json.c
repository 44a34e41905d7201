/*
 * check_json: the flat-object reader and the string writer (server/json.c).
 * Every reader vector is fed whole from a copy flush against a PROT_NONE
 * page (guard.h), so an over-read faults; every proper prefix of a valid
 * vector must be rejected the same way. Writer outputs are compared byte
 * for byte and fed back through the reader; invalid UTF-8 is checked
 * against a small reference built on textbook decoding, not on json.c.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guard.h"
#include "json.h"
#include "utf8_ref.h"

#define S(lit) lit, sizeof(lit) - 1

struct fexp {
    const char *key; size_t key_len;
    const char *val; size_t val_len;
    int type;
};

struct valid_vec {
    const char *in; size_t len;
    int n;
    struct fexp f[8];
};

#define STR JSON_STRING
#define NUM JSON_NUMBER

static const struct valid_vec valid[] = {
    { S("{}"), 0, { { 0 } } },
    { S(" \t\r\n{ \n } \r\n"), 0, { { 0 } } },
    { S("{\"type\":\"message\",\"text\":\"hi\"}"), 2,
      { { S("type"), S("message"), STR }, { S("text"), S("hi"), STR } } },
    { S("{\"a\":1,\"b\":-0.5e+10,\"c\":true,\"d\":false,\"e\":null}"), 5,
      { { S("a"), S("1"), NUM }, { S("b"), S("-0.5e+10"), NUM },
        { S("c"), S("true"), JSON_TRUE }, { S("d"), S("false"), JSON_FALSE },
        { S("e"), S("null"), JSON_NULL } } },
    { S("{\"s\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"}"), 1,
      { { S("s"), S("\"\\/\b\f\n\r\t"), STR } } },
    { S("{\"u\":\"\\u0041\\u00e9\\u20AC\\uD83D\\uDE00\\uffff\"}"), 1,
      { { S("u"), S("A\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\xEF\xBF\xBF"), STR } } },
    { S("{\"z\":\"a\\u0000b\"}"), 1, { { S("z"), S("a\0b"), STR } } },
    { S("{\"p\":\"\\uD800\\uDC00\\uDBFF\\uDFFF\\ud834\\udd1e\"}"), 1,
      { { S("p"), S("\xF0\x90\x80\x80\xF4\x8F\xBF\xBF\xF0\x9D\x84\x9E"), STR } } },
    { S("{\"b\":\"\\u0080\\u07FF\\u0800\\u001F\\u002F\\uFFFD\"}"), 1,
      { { S("b"), S("\xC2\x80\xDF\xBF\xE0\xA0\x80\x1F/\xEF\xBF\xBD"), STR } } },
    { S("{\"k\":\"h\xC3\xA9llo \xE2\x82\xAC \xF0\x9D\x84\x9E \x7F\"}"), 1,
      { { S("k"), S("h\xC3\xA9llo \xE2\x82\xAC \xF0\x9D\x84\x9E \x7F"), STR } } },
    { S("{\"\\u0074ype\":\"x\",\"\xC3\xA9\":1}"), 2,
      { { S("type"), S("x"), STR }, { S("\xC3\xA9"), S("1"), NUM } } },
    { S("{\"a\":0,\"b\":-0,\"c\":0.0,\"d\":1E5,\"e\":1e-5,"
        "\"f\":123456789012345678901234567890,\"g\":-12.5E+3}"), 7,
      { { S("a"), S("0"), NUM }, { S("b"), S("-0"), NUM },
        { S("c"), S("0.0"), NUM }, { S("d"), S("1E5"), NUM },
        { S("e"), S("1e-5"), NUM },
        { S("f"), S("123456789012345678901234567890"), NUM },
        { S("g"), S("-12.5E+3"), NUM } } },
    { S("{\"\":\"\"}"), 1, { { S(""), S(""), STR } } },
    { S("{ \"a\" : 1 ,\n\"b\"\t:\r\"x\" }"), 2,
      { { S("a"), S("1"), NUM }, { S("b"), S("x"), STR } } },
    { S("{\"1\":1,\"2\":2,\"3\":3,\"4\":4,\"5\":5,\"6\":6,\"7\":7,\"8\":8}"), 8,
      { { S("1"), S("1"), NUM }, { S("2"), S("2"), NUM }, { S("3"), S("3"), NUM },
        { S("4"), S("4"), NUM }, { S("5"), S("5"), NUM }, { S("6"), S("6"), NUM },
        { S("7"), S("7"), NUM }, { S("8"), S("8"), NUM } } },
    { S("{\"a\":1,\"ab\":2,\"b\":\"a\"}"), 3,
      { { S("a"), S("1"), NUM }, { S("ab"), S("2"), NUM }, { S("b"), S("a"), STR } } },
    { S("{\"url\":\"http://x/y\",\"n\":-1}"), 2,
      { { S("url"), S("http://x/y"), STR }, { S("n"), S("-1"), NUM } } },
};

static void check_fields(const struct valid_vec *v, const char *buf,
                         const struct json_field *f, int n)
{
    ck_assert_int_eq(n, v->n);
    for (int k = 0; k < n; k++) {
        const struct fexp *e = &v->f[k];
        ck_assert_uint_eq(f[k].key_len, e->key_len);
        ck_assert_mem_eq(f[k].key, e->key, e->key_len);
        ck_assert_uint_eq(f[k].val_len, e->val_len);
        ck_assert_mem_eq(f[k].val, e->val, e->val_len);
        ck_assert_int_eq(f[k].type, e->type);
        /* Decoded in place: every pointer lies inside the input. */
        ck_assert(f[k].key >= buf && f[k].key + f[k].key_len <= buf + v->len);
        ck_assert(f[k].val >= buf && f[k].val + f[k].val_len <= buf + v->len);
    }
}

START_TEST(parse_valid)
{
    const struct valid_vec *v = &valid[_i];
    char *buf = guard_copy(v->in, v->len);
    struct json_field f[JSON_MAX_FIELDS];
    int n = json_parse_object(buf, v->len, f, JSON_MAX_FIELDS);
    check_fields(v, buf, f, n);
}
END_TEST

/* Each proper prefix up to the closing brace is rejected; after it, only
 * whitespace follows and the result is unchanged. */
START_TEST(parse_prefixes)
{
    const struct valid_vec *v = &valid[_i];
    size_t close = v->len;
    while (v->in[close - 1] != '}')
        close--;
    for (size_t k = 0; k <= v->len; k++) {
        char *buf = guard_copy(v->in, k);
        struct json_field f[JSON_MAX_FIELDS];
        int n = json_parse_object(buf, k, f, JSON_MAX_FIELDS);
        if (k < close)
            ck_assert_msg(n == -1, "prefix %zu of vector %d gave %d", k, _i, n);
        else
            ck_assert_int_eq(n, v->n);
    }
}
END_TEST

struct bad_vec {
    const char *in; size_t len;
};

static const struct bad_vec invalid[] = {
    /* not an object */
    { S("") }, { S("   ") }, { S("[]") }, { S("\"a\"") }, { S("1") },
    { S("null") }, { S("\xEF\xBB\xBF{}") },
    /* truncated or missing punctuation */
    { S("{") }, { S("}") }, { S("{\"a\"") }, { S("{\"a\":") }, { S("{\"a\":1") },
    { S("{\"a\" 1}") }, { S("{\"a\":1 \"b\":2}") }, { S("{\"a\"::1}") },
    { S("{\"a\":1,}") }, { S("{,}") }, { S("{,\"a\":1}") }, { S("{\"a\":1,,\"b\":2}") },
    { S("{\"a\":}") }, { S("{\"a\",\"b\"}") }, { S("{\"a\":1;\"b\":2}") },
    /* trailing garbage */
    { S("{\"a\":1}x") }, { S("{\"a\":1}{}") }, { S("{}}") }, { S("{} 1") },
    { S("{\"a\":1}\0") },
    /* keys */
    { S("{a:1}") }, { S("{'a':1}") }, { S("{1:1}") }, { S("{null:1}") },
    /* duplicates, also after decoding */
    { S("{\"a\":1,\"a\":2}") }, { S("{\"a\":1,\"\\u0061\":2}") },
    { S("{\"type\":\"x\",\"text\":\"y\",\"type\":\"z\"}") },
    /* nesting */
    { S("{\"a\":{}}") }, { S("{\"a\":[]}") }, { S("{\"a\":[1]}") },
    { S("{\"a\":{\"b\":1}}") },
    /* escapes */
    { S("{\"a\":\"\\x\"}") }, { S("{\"a\":\"\\u12\"}") }, { S("{\"a\":\"\\u12G4\"}") },
    { S("{\"a\":\"\\\"}") }, { S("{\"a\":\"\\U0041\"}") }, { S("{\"a\":\"\\'\"}") },
    { S("{\"a\":\"\\0\"}") }, { S("{\"a\":\"\\") }, { S("{\"a\":\"\\u") },
    { S("{\"\\q\":1}") },
    /* lone or broken surrogates */
    { S("{\"a\":\"\\uD800\"}") }, { S("{\"a\":\"\\uDC00\"}") },
    { S("{\"a\":\"\\uDFFF\\uD800\"}") }, { S("{\"a\":\"\\uD800\\u0041\"}") },
    { S("{\"a\":\"\\uD800x\"}") }, { S("{\"a\":\"\\uD800\\uD800\"}") },
    { S("{\"a\":\"\\uDBFF\\n\"}") }, { S("{\"a\":\"\\uD83D") },
    { S("{\"a\":\"\\uD83D\\") }, { S("{\"a\":\"\\uD83D\\uDE0\"}") },
    /* raw control characters */
    { S("{\"a\":\"\n\"}") }, { S("{\"a\":\"\t\"}") }, { S("{\"a\":\"\x01\"}") },
    { S("{\"a\":\"\x1F\"}") }, { S("{\"a\":\"x\0y\"}") }, { S("{\"\n\":1}") },
    /* invalid UTF-8 */
    { S("{\"a\":\"\xC0\xAF\"}") }, { S("{\"a\":\"\xE0\x80\xAF\"}") },
    { S("{\"a\":\"\xED\xA0\x80\"}") }, { S("{\"a\":\"\xF4\x90\x80\x80\"}") },
    { S("{\"a\":\"\xFF\"}") }, { S("{\"a\":\"\x80\"}") }, { S("{\"a\":\"\xE2\x82\"}") },
    { S("{\"a\":\"\xC3\"}") }, { S("{\"a\":\"\xF0\x9F\x98\"}") },
    { S("{\"a\":\"\xF8\x88\x80\x80\x80\"}") }, { S("{\"\xC1\xBF\":1}") },
    { S("{\"a\":\"\xC3") },
    /* numbers */
    { S("{\"a\":01}") }, { S("{\"a\":-01}") }, { S("{\"a\":00}") }, { S("{\"a\":1.}") },
    { S("{\"a\":.5}") }, { S("{\"a\":+1}") }, { S("{\"a\":-}") }, { S("{\"a\":1e}") },
    { S("{\"a\":1e+}") }, { S("{\"a\":0x10}") }, { S("{\"a\":NaN}") },
    { S("{\"a\":Infinity}") }, { S("{\"a\":-Infinity}") }, { S("{\"a\":1.e5}") },
    { S("{\"a\":1 2}") }, { S("{\"a\":- 1}") }, { S("{\"a\":1.5.5}") },
    { S("{\"a\":1E+-5}") },
    /* literals */
    { S("{\"a\":tru}") }, { S("{\"a\":True}") }, { S("{\"a\":nul}") },
    { S("{\"a\":falsey}") }, { S("{\"a\":nulll}") }, { S("{\"a\":t}") },
    /* other value syntax */
    { S("{\"a\":'x'}") }, { S("{\"a\":undefined}") }, { S("{\"a\":\"x\"\"y\"}") },
};

START_TEST(parse_invalid)
{
    const struct bad_vec *v = &invalid[_i];
    char *buf = guard_copy(v->in, v->len);
    struct json_field f[JSON_MAX_FIELDS];
    ck_assert_msg(json_parse_object(buf, v->len, f, JSON_MAX_FIELDS) == -1,
                  "invalid vector %d accepted", _i);
}
END_TEST

static int parse_lit(const char *lit, size_t len, int max)
{
    struct json_field f[16];
    char *buf = guard_copy(lit, len);
    return json_parse_object(buf, len, f, max);
}

START_TEST(too_many_fields)
{
    const char nine[] = "{\"1\":1,\"2\":2,\"3\":3,\"4\":4,\"5\":5,\"6\":6,"
                        "\"7\":7,\"8\":8,\"9\":9}";
    ck_assert_int_eq(parse_lit(S(nine), JSON_MAX_FIELDS), -2);
    ck_assert_int_eq(parse_lit(S(nine), 9), 9);
    ck_assert_int_eq(parse_lit(S("{\"a\":1,\"b\":2,\"c\":3}"), 2), -2);
    ck_assert_int_eq(parse_lit(S("{\"a\":1}"), 0), -2);
    ck_assert_int_eq(parse_lit(S("{}"), 0), 0);
    ck_assert_int_eq(parse_lit(S("{}"), -1), 0);
    /* Malformed text stays -1 even past the limit. */
    ck_assert_int_eq(parse_lit(S("{\"a\":1,\"b\":2,\"c\":3}x"), 2), -1);
    ck_assert_int_eq(parse_lit(S("{\"a\":1,\"b\":2,\"c\":[]}"), 2), -1);
    ck_assert_int_eq(parse_lit(S("{\"a\":1,\"b\":2,\"c\":\"\\uD800\"}"), 2), -1);
    ck_assert_int_eq(parse_lit(S("{\"a\":1,\"b\":2,\"a\":3}"), 2), -1);
}
END_TEST

START_TEST(get_field)
{
    char buf[] = "{\"type\":\"message\",\"text\":\"a\\\"b\",\"n\":5}";
    struct json_field f[JSON_MAX_FIELDS];
    int n = json_parse_object(buf, strlen(buf), f, JSON_MAX_FIELDS);
    ck_assert_int_eq(n, 3);
    const struct json_field *t = json_get(f, n, "text");
    ck_assert_ptr_nonnull(t);
    ck_assert_uint_eq(t->val_len, 3);
    ck_assert_mem_eq(t->val, "a\"b", 3);
    ck_assert_ptr_eq(json_get(f, n, "type"), &f[0]);
    ck_assert_ptr_eq(json_get(f, n, "n"), &f[2]);
    ck_assert_ptr_null(json_get(f, n, "typ"));
    ck_assert_ptr_null(json_get(f, n, "types"));
    ck_assert_ptr_null(json_get(f, n, ""));
    ck_assert_ptr_null(json_get(f, 0, "type"));
    ck_assert_ptr_null(json_get(f, -1, "type"));
}
END_TEST

/* ---- writer ----------------------------------------------------------- */

struct esc_vec {
    const char *in; size_t in_len;
    const char *out; size_t out_len;
};

#define FFFD "\xEF\xBF\xBD"

static const struct esc_vec escapes[] = {
    { S(""), S("") },
    { S("hello, world"), S("hello, world") },
    { S("\""), S("\\\"") },
    { S("\\"), S("\\\\") },
    { S("a\"b\\c/d"), S("a\\\"b\\\\c/d") },
    { S("\x7F"), S("\x7F") },
    { S("\0"), S("\\u0000") },
    { S("line\nnext\r\n"), S("line\\nnext\\r\\n") },
    { S("\xE2\x80\xA8"), S("\\u2028") },
    { S("\xE2\x80\xA9"), S("\\u2029") },
    { S("x\xE2\x80\xA8y\xE2\x80\xA9z"), S("x\\u2028y\\u2029z") },
    { S("\xE2\x80\xA7\xE2\x80\xAA"), S("\xE2\x80\xA7\xE2\x80\xAA") },
    { S("h\xC3\xA9 \xF0\x9F\x98\x80 \xEF\xBF\xBF"), S("h\xC3\xA9 \xF0\x9F\x98\x80 \xEF\xBF\xBF") },
    /* invalid UTF-8, one U+FFFD per maximal subpart */
    { S("\x80"), S(FFFD) },
    { S("\xBF\x80"), S(FFFD FFFD) },
    { S("\xC0\xAF"), S(FFFD FFFD) },
    { S("\xC1\x81"), S(FFFD FFFD) },
    { S("\xE0\x80\xAF"), S(FFFD FFFD FFFD) },
    { S("\xE2\x82"), S(FFFD) },
    { S("\xE2\x82x"), S(FFFD "x") },
    { S("\xF0\x9F\x98" "A"), S(FFFD "A") },
    { S("\xF0\x9F\x98"), S(FFFD) },
    { S("\xED\xA0\x80"), S(FFFD FFFD FFFD) },
    { S("\xED\x9F\xBF"), S("\xED\x9F\xBF") },
    { S("\xF4\x90\x80\x80"), S(FFFD FFFD FFFD FFFD) },
    { S("\xF4\x8F\xBF\xBF"), S("\xF4\x8F\xBF\xBF") },
    { S("\xF5\xFF\xFE"), S(FFFD FFFD FFFD) },
    { S("\xC3\""), S(FFFD "\\\"") },
    { S("\xE2\x80\n"), S(FFFD "\\n") },
    /* Unicode 15 §3.9, table 3-8 */
    { S("\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64"),
      S("a" FFFD FFFD FFFD "b" FFFD "c" FFFD FFFD "d") },
};

START_TEST(escape_vectors)
{
    const struct esc_vec *v = &escapes[_i];
    ck_assert_uint_eq(json_escaped_len(v->in, v->in_len), v->out_len);
    /* Output flush against the guard page: one byte too many faults. */
    char zero[64] = { 0 };
    char *dst = guard_copy(zero, v->out_len);
    ck_assert_uint_eq(json_escape(dst, v->in, v->in_len), v->out_len);
    ck_assert_mem_eq(dst, v->out, v->out_len);
}
END_TEST

START_TEST(escape_controls)
{
    unsigned char c = (unsigned char)_i;
    char want[8];
    switch (c) {
    case '\b': strcpy(want, "\\b"); break;
    case '\f': strcpy(want, "\\f"); break;
    case '\n': strcpy(want, "\\n"); break;
    case '\r': strcpy(want, "\\r"); break;
    case '\t': strcpy(want, "\\t"); break;
    default:   snprintf(want, sizeof want, "\\u%04x", c); break;
    }
    char in[3] = { 'a', (char)c, 'b' };
    char out[16];
    size_t n = json_escape(out, in, 3);
    ck_assert_uint_eq(n, strlen(want) + 2);
    ck_assert_uint_eq(json_escaped_len(in, 3), n);
    ck_assert_int_eq(out[0], 'a');
    ck_assert_mem_eq(out + 1, want, strlen(want));
    ck_assert_int_eq(out[n - 1], 'b');
}
END_TEST

/* Escape s[0..len), wrap it as {"k":"..."}, parse it back. */
static const struct json_field *round_trip(const char *s, size_t len)
{
    static char wrapped[1 << 16];
    static struct json_field f[JSON_MAX_FIELDS];
    size_t el = json_escaped_len(s, len);
    ck_assert_uint_le(el + 8, sizeof wrapped);
    memcpy(wrapped, "{\"k\":\"", 6);
    ck_assert_uint_eq(json_escape(wrapped + 6, s, len), el);
    memcpy(wrapped + 6 + el, "\"}", 2);
    char *buf = guard_copy(wrapped, el + 8);
    int n = json_parse_object(buf, el + 8, f, JSON_MAX_FIELDS);
    ck_assert_int_eq(n, 1);
    ck_assert_uint_eq(f[0].key_len, 1);
    ck_assert_int_eq(f[0].key[0], 'k');
    ck_assert_int_eq(f[0].type, JSON_STRING);
    return &f[0];
}

START_TEST(round_trip_vectors)
{
    const struct esc_vec *v = &escapes[_i];
    const struct json_field *f = round_trip(v->in, v->in_len);
    /* Decoding the escapes gives the input with U+FFFD substituted. */
    char want[256];
    size_t wl = 0;
    for (size_t k = 0; k < v->out_len; k++) {
        if (v->out[k] == '\\') {
            const char *p = v->out + k + 1;
            if (*p == 'u') {
                unsigned cp = (unsigned)strtoul((char[5]){ p[1], p[2], p[3], p[4], 0 },
                                                NULL, 16);
                if (cp < 0x80) {
                    want[wl++] = (char)cp;
                } else {               /* only U+2028/2029 come out as \u */
                    want[wl++] = (char)0xE2;
                    want[wl++] = (char)0x80;
                    want[wl++] = (char)(0x80 | (cp & 0x3F));
                }
                k += 5;
            } else {
                want[wl++] = *p == 'n' ? '\n' : *p == 'r' ? '\r' : *p == 't' ? '\t'
                           : *p == 'b' ? '\b' : *p == 'f' ? '\f' : *p;
                k += 1;
            }
        } else {
            want[wl++] = v->out[k];
        }
    }
    ck_assert_uint_eq(f->val_len, wl);
    ck_assert_mem_eq(f->val, want, wl);
}
END_TEST

START_TEST(round_trip_bytes)
{
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        const struct json_field *f = round_trip(&c, 1);
        if (b < 0x80) {
            ck_assert_uint_eq(f->val_len, 1);
            ck_assert_int_eq(f->val[0], c);
        } else {
            ck_assert_uint_eq(f->val_len, 3);
            ck_assert_mem_eq(f->val, FFFD, 3);
        }
    }
}
END_TEST

static uint64_t rng = 0x243F6A8885A308D3ull;

static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

static size_t encode_cp(char *w, uint32_t cp)
{
    if (cp < 0x80) {
        w[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        w[0] = (char)(0xC0 | cp >> 6);
        w[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        w[0] = (char)(0xE0 | cp >> 12);
        w[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        w[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    w[0] = (char)(0xF0 | cp >> 18);
    w[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    w[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    w[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

START_TEST(round_trip_random_utf8)
{
    static const uint32_t top[] = { 0x20, 0x80, 0x800, 0x10000, 0x110000 };
    char s[4096];
    for (int iter = 0; iter < 2000; iter++) {
        size_t len = 0;
        int count = (int)(rnd() % 200);
        for (int k = 0; k < count; k++) {
            uint32_t cp = rnd() % top[rnd() % 5];
            if (cp >= 0xD800 && cp <= 0xDFFF)
                cp = 0x2028 + (cp & 1);
            len += encode_cp(s + len, cp);
        }
        const struct json_field *f = round_trip(s, len);
        ck_assert_uint_eq(f->val_len, len);
        ck_assert_mem_eq(f->val, s, len);
    }
}
END_TEST

START_TEST(round_trip_random_bytes)
{
    unsigned char s[512];
    char want[2048];
    for (int iter = 0; iter < 5000; iter++) {
        size_t len = rnd() % sizeof s;
        for (size_t k = 0; k < len; k++) {
            uint32_t r = rnd();
            /* Bias towards bytes that build (broken) sequences. */
            s[k] = (unsigned char)(r % 3 == 0 ? 0x80 + (r >> 8) % 0x40
                                 : r % 3 == 1 ? 0xC0 + (r >> 8) % 0x40
                                              : r >> 8);
        }
        size_t wl = ref_substitute((unsigned char *)want, s, len, NULL);
        const struct json_field *f = round_trip((const char *)s, len);
        ck_assert_uint_eq(f->val_len, wl);
        ck_assert_mem_eq(f->val, want, wl);
    }
}
END_TEST

/* ---- arrays (JSON_ARRAYS) --------------------------------------------- */

struct arr_elem {
    int type;
    const char *val; size_t val_len;
};

struct arr_vec {
    const char *in; size_t len;
    const char *raw; size_t raw_len;            /* the array field's text */
    int n;
    struct arr_elem e[6];
};

static const struct arr_vec arrays[] = {
    { S("{\"r\":[]}"), S("[]"), 0, { { 0 } } },
    { S("{\"r\":[ \n ]}"), S("[ \n ]"), 0, { { 0 } } },
    { S("{\"r\":[\"a\"]}"), S("[\"a\"]"), 1, { { STR, S("a") } } },
    { S("{\"r\":[\"lobby\",\"dev\"],\"x\":1}"), S("[\"lobby\",\"dev\"]"), 2,
      { { STR, S("lobby") }, { STR, S("dev") } } },
    { S("{\"r\" : [ \"a\\\"b\" , \"\\u00e9\\n\" ,\"\" ] }"),
      S("[ \"a\\\"b\" , \"\\u00e9\\n\" ,\"\" ]"), 3,
      { { STR, S("a\"b") }, { STR, S("\xC3\xA9\n") }, { STR, S("") } } },
    { S("{\"r\":[1,-2.5e3,true,false,null,\"s\"]}"),
      S("[1,-2.5e3,true,false,null,\"s\"]"), 6,
      { { NUM, S("1") }, { NUM, S("-2.5e3") }, { JSON_TRUE, S("true") },
        { JSON_FALSE, S("false") }, { JSON_NULL, S("null") }, { STR, S("s") } } },
    { S("{\"r\":[\"\\uD83D\\uDE00\"]}"), S("[\"\\uD83D\\uDE00\"]"), 1,
      { { STR, S("\xF0\x9F\x98\x80") } } },
};

static void check_array(const struct arr_vec *v, const struct json_field *f)
{
    ck_assert_int_eq(f->type, JSON_ARRAY);
    ck_assert_uint_eq(f->val_len, v->raw_len);
    ck_assert_mem_eq(f->val, v->raw, v->raw_len);
    /* Twice: iterating does not consume or change the text. */
    for (int pass = 0; pass < 2; pass++) {
        struct json_array_iter it;
        json_array_begin(&it, f);
        for (int k = 0; k < v->n; k++) {
            char out[64];
            size_t len = 999;
            int type = -1;
            ck_assert_int_eq(json_array_next(&it, out, sizeof out, &len, &type), 1);
            ck_assert_int_eq(type, v->e[k].type);
            ck_assert_uint_eq(len, v->e[k].val_len);
            ck_assert_mem_eq(out, v->e[k].val, len);
        }
        char out[64];
        size_t len;
        int type;
        ck_assert_int_eq(json_array_next(&it, out, sizeof out, &len, &type), 0);
        ck_assert_int_eq(json_array_next(&it, out, sizeof out, &len, &type), 0);
    }
}

START_TEST(array_valid)
{
    const struct arr_vec *v = &arrays[_i];
    char *buf = guard_copy(v->in, v->len);
    struct json_field f[JSON_MAX_FIELDS];
    int n = json_parse_object_ex(buf, v->len, f, JSON_MAX_FIELDS, JSON_ARRAYS);
    ck_assert_int_ge(n, 1);
    const struct json_field *r = json_get(f, n, "r");
    ck_assert_ptr_nonnull(r);
    check_array(v, r);
    /* Without the flag the same text is rejected, as before. */
    buf = guard_copy(v->in, v->len);
    ck_assert_int_eq(json_parse_object(buf, v->len, f, JSON_MAX_FIELDS), -1);
}
END_TEST

START_TEST(array_prefixes)
{
    const struct arr_vec *v = &arrays[_i];
    for (size_t k = 0; k < v->len; k++) {
        char *buf = guard_copy(v->in, k);
        struct json_field f[JSON_MAX_FIELDS];
        ck_assert_msg(json_parse_object_ex(buf, k, f, JSON_MAX_FIELDS, JSON_ARRAYS) == -1,
                      "prefix %zu of array vector %d accepted", k, _i);
    }
}
END_TEST

/* The iterator decodes into a bounded buffer: exactly cap fits, one less is -2. */
START_TEST(array_capacity)
{
    const struct arr_vec *v = &arrays[_i];
    char buf[128];              /* not guarded: the guard page goes to dst */
    ck_assert_uint_le(v->len, sizeof buf);
    memcpy(buf, v->in, v->len);
    struct json_field f[JSON_MAX_FIELDS];
    int n = json_parse_object_ex(buf, v->len, f, JSON_MAX_FIELDS, JSON_ARRAYS);
    const struct json_field *r = json_get(f, n, "r");
    ck_assert_ptr_nonnull(r);
    for (int k = 0; k < v->n; k++) {
        size_t want = v->e[k].val_len;
        for (int tight = 0; tight < 2; tight++) {
            struct json_array_iter it;
            json_array_begin(&it, r);
            char out[64];
            size_t len;
            int type;
            for (int j = 0; j < k; j++)
                ck_assert_int_eq(json_array_next(&it, out, sizeof out, &len, &type), 1);
            if (tight && want == 0)
                continue;
            size_t cap = tight ? want - 1 : want;
            char *dst = guard_copy(out, cap);   /* a write past cap faults */
            ck_assert_int_eq(json_array_next(&it, dst, cap, &len, &type), (tight ? -2 : 1));
            if (!tight)
                ck_assert_mem_eq(dst, v->e[k].val, want);
        }
    }
}
END_TEST

static const struct bad_vec bad_arrays[] = {
    { S("{\"r\":[}") }, { S("{\"r\":[\"a\"}") }, { S("{\"r\":[\"a\",]}") },
    { S("{\"r\":[,\"a\"]}") }, { S("{\"r\":[\"a\" \"b\"]}") }, { S("{\"r\":[\"a\";\"b\"]}") },
    { S("{\"r\":[[]]}") }, { S("{\"r\":[\"a\",[\"b\"]]}") }, { S("{\"r\":[{}]}") },
    { S("{\"r\":[{\"a\":1}]}") }, { S("{\"r\":[\"\\uD800\"]}") }, { S("{\"r\":[\"\xC3\"]}") },
    { S("{\"r\":[\"\n\"]}") }, { S("{\"r\":[01]}") }, { S("{\"r\":[tru]}") },
    { S("{\"r\":[]]}") }, { S("{\"r\":[]x}") }, { S("[\"a\"]") }, { S("{\"r\":]}") },
    { S("{\"r\":[],\"r\":[]}") }, { S("{\"r\":[\"a\\x\"]}") },
};

START_TEST(array_invalid)
{
    const struct bad_vec *v = &bad_arrays[_i];
    char *buf = guard_copy(v->in, v->len);
    struct json_field f[JSON_MAX_FIELDS];
    ck_assert_msg(json_parse_object_ex(buf, v->len, f, JSON_MAX_FIELDS, JSON_ARRAYS) == -1,
                  "bad array vector %d accepted", _i);
}
END_TEST

/* The iterator stays inside its text when handed something unchecked. */
START_TEST(array_iter_unchecked)
{
    static const char *texts[] = { "[", "[\"a", "[\"a\",", "[1 2]", "[\"a\"\"b\"]", "[[1]]",
                                   "[\"\\u12", "[nul" };
    for (size_t k = 0; k < sizeof texts / sizeof texts[0]; k++) {
        size_t tl = strlen(texts[k]);
        struct json_field f = { .key = "r", .key_len = 1, .type = JSON_ARRAY };
        f.val = guard_copy(texts[k], tl);
        f.val_len = tl;
        struct json_array_iter it;
        json_array_begin(&it, &f);
        char out[16];
        size_t len;
        int type, rc, steps = 0;
        while ((rc = json_array_next(&it, out, sizeof out, &len, &type)) == 1)
            ck_assert_int_lt(++steps, 4);
        ck_assert_msg(rc == -1, "unchecked text %zu gave %d", k, rc);
    }
}
END_TEST

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

Suite *json_suite(void)
{
    Suite *s = suite_create("json");
    TCase *tc = tcase_create("reader");
    tcase_add_loop_test(tc, parse_valid, 0, N(valid));
    tcase_add_loop_test(tc, parse_prefixes, 0, N(valid));
    tcase_add_loop_test(tc, parse_invalid, 0, N(invalid));
    tcase_add_test(tc, too_many_fields);
    tcase_add_test(tc, get_field);
    suite_add_tcase(s, tc);

    tc = tcase_create("writer");
    tcase_add_loop_test(tc, escape_vectors, 0, N(escapes));
    tcase_add_loop_test(tc, escape_controls, 0, 32);
    suite_add_tcase(s, tc);

    tc = tcase_create("arrays");
    tcase_add_loop_test(tc, array_valid, 0, N(arrays));
    tcase_add_loop_test(tc, array_prefixes, 0, N(arrays));
    tcase_add_loop_test(tc, array_capacity, 0, N(arrays));
    tcase_add_loop_test(tc, array_invalid, 0, N(bad_arrays));
    tcase_add_test(tc, array_iter_unchecked);
    suite_add_tcase(s, tc);

    tc = tcase_create("round_trip");
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, round_trip_vectors, 0, N(escapes));
    tcase_add_test(tc, round_trip_bytes);
    tcase_add_test(tc, round_trip_random_utf8);
    tcase_add_test(tc, round_trip_random_bytes);
    suite_add_tcase(s, tc);
    return s;
}

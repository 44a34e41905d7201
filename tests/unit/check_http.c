/*
 * check_http: the request head parser and the response helpers.
 *
 * Every parser vector goes through three feeds — whole, one byte at a time,
 * and split at every point (prefix first, then the whole buffer with
 * prev_len) — each input copied flush against a guard page, and the three
 * results (return value, and every slice as an offset into the buffer) must
 * match before the vector's own expectations are checked.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guard.h"
#include "http.h"
#include "http_norm.h"

#define MAX_HEAD 8192

static ssize_t parse_at(const char *data, size_t len, size_t prev, size_t max,
                        struct http_request *req, struct norm *n)
{
    const char *b = guard_copy(data, len);
    memset(req, 0xa5, sizeof *req);   /* stale fields must not leak through */
    ssize_t rc = http_parse_request(b, len, prev, max, req);
    normalize(b, rc, req, n);
    return rc;
}

static void assert_same(const struct norm *a, const struct norm *b,
                        const char *feed, size_t k)
{
    ck_assert_msg(a->rc == b->rc, "%s feed at %zu: rc %zd, whole gave %zd",
                  feed, k, b->rc, a->rc);
    ck_assert_msg(memcmp(a, b, sizeof *a) == 0, "%s feed at %zu: slices differ", feed, k);
}

/*
 * Run the three feeds over data[0..len) and return the whole-buffer result;
 * on return req points into the guard buffer holding the whole input.
 */
static ssize_t parse3(const char *data, size_t len, size_t max, struct http_request *req)
{
    static struct norm whole, got;

    /* one byte at a time, prev_len = bytes given before */
    parse_at(data, len, 0, max, req, &whole);
    for (size_t k = 1; k <= len; k++) {
        ssize_t rc = parse_at(data, k, k - 1, max, req, &got);
        if (rc != 0 || k == len) {
            assert_same(&whole, &got, "byte", k);
            break;
        }
    }
    /* every split point: a prefix, then the rest */
    for (size_t k = 1; k < len; k++) {
        ssize_t rc = parse_at(data, k, 0, max, req, &got);
        if (rc == 0)
            parse_at(data, len, k, max, req, &got);
        assert_same(&whole, &got, "split", k);
    }
    if (len == 0) {
        parse_at(data, 0, 0, max, req, &got);
        assert_same(&whole, &got, "empty", 0);
    }
    return parse_at(data, len, 0, max, req, &got);
}

/* ---- valid requests ---------------------------------------------------- */

struct valid_vec {
    const char *name;
    const char *raw;
    size_t len;             /* 0: strlen(raw) */
    size_t tail;            /* bytes after the head */
    const char *method, *target;
    int minor;
    size_t nh;
    const char *hdr[8][2];
};

static const struct valid_vec valid[] = {
    { "minimal", "GET / HTTP/1.1\r\n\r\n", 0, 0, "GET", "/", 1, 0, { { 0 } } },
    { "rfc6455_1_2",
      "GET /chat HTTP/1.1\r\n"
      "Host: server.example.com\r\n"
      "Upgrade: websocket\r\n"
      "Connection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
      "Origin: http://example.com\r\n"
      "Sec-WebSocket-Protocol: chat, superchat\r\n"
      "Sec-WebSocket-Version: 13\r\n\r\n", 0, 0, "GET", "/chat", 1, 7,
      { { "Host", "server.example.com" }, { "Upgrade", "websocket" },
        { "Connection", "Upgrade" }, { "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==" },
        { "Origin", "http://example.com" }, { "Sec-WebSocket-Protocol", "chat, superchat" },
        { "Sec-WebSocket-Version", "13" } } },
    { "http10", "GET /index.html HTTP/1.0\r\n\r\n", 0, 0, "GET", "/index.html", 0, 0, { { 0 } } },
    { "minor9", "GET / HTTP/1.9\r\nHost: a\r\n\r\n", 0, 0, "GET", "/", 9, 1, { { "Host", "a" } } },
    { "ows_trimmed", "GET / HTTP/1.1\r\nA:  \t x y \t \r\nB:z\r\nC:\r\nD: \t \r\n\r\n",
      0, 0, "GET", "/", 1, 4, { { "A", "x y" }, { "B", "z" }, { "C", "" }, { "D", "" } } },
    { "lf_only", "GET /x HTTP/1.1\nHost: h\n\n", 0, 0, "GET", "/x", 1, 1, { { "Host", "h" } } },
    { "mixed_eol", "GET /x HTTP/1.1\r\nHost: h\n\r\n", 0, 0, "GET", "/x", 1, 1, { { "Host", "h" } } },
    { "leading_empty_lines", "\r\n\n\r\n\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", 0, 0,
      "GET", "/", 1, 1, { { "Host", "h" } } },
    { "pipelined_frame", "GET /chat HTTP/1.1\r\nHost: h\r\n\r\n"
      "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", 0, 11, "GET", "/chat", 1, 1,
      { { "Host", "h" } } },
    { "pipelined_garbage", "GET / HTTP/1.1\r\n\r\n\0\r\r\x01 bad", 26, 8, "GET", "/", 1, 0, { { 0 } } },
    { "pipelined_request", "GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\n\r\n",
      0, 19, "GET", "/a", 1, 1, { { "Host", "h" } } },
    { "options_star", "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", 0, 0, "OPTIONS", "*", 1, 1,
      { { "Host", "h" } } },
    { "absolute_form", "GET http://example.com/chat?x=1 HTTP/1.1\r\nHost: example.com\r\n\r\n",
      0, 0, "GET", "http://example.com/chat?x=1", 1, 1, { { "Host", "example.com" } } },
    { "absolute_https_no_path", "GET HTTPS://example.com HTTP/1.1\r\n\r\n", 0, 0,
      "GET", "HTTPS://example.com", 1, 0, { { 0 } } },
    { "obs_text_value", "GET / HTTP/1.1\r\nX-Name: caf\xc3\xa9\r\n\r\n", 0, 0, "GET", "/", 1, 1,
      { { "X-Name", "caf\xc3\xa9" } } },
    { "tab_inside_value", "GET / HTTP/1.1\r\nX: a\tb\r\n\r\n", 0, 0, "GET", "/", 1, 1,
      { { "X", "a\tb" } } },
    { "query_target", "GET /chat/lobby?nick=al%20ice&since=4 HTTP/1.1\r\n\r\n", 0, 0,
      "GET", "/chat/lobby?nick=al%20ice&since=4", 1, 0, { { 0 } } },
    { "duplicate_names", "GET / HTTP/1.1\r\nX: 1\r\nx: 2\r\n\r\n", 0, 0, "GET", "/", 1, 2,
      { { "X", "1" }, { "x", "2" } } },
    { "token_method", "M-SEARCH /q HTTP/1.1\r\n\r\n", 0, 0, "M-SEARCH", "/q", 1, 0, { { 0 } } },
    { "colon_in_value", "GET / HTTP/1.1\r\nHost: example.com:8080\r\n\r\n", 0, 0, "GET", "/", 1, 1,
      { { "Host", "example.com:8080" } } },
    { "tchar_name", "GET / HTTP/1.1\r\n!#$%&'*+-.^_`|~09azAZ: v\r\n\r\n", 0, 0, "GET", "/", 1, 1,
      { { "!#$%&'*+-.^_`|~09azAZ", "v" } } },
};

static void assert_slice(const char *s, size_t n, const char *want, const char *what,
                         const char *vec)
{
    ck_assert_msg(n == strlen(want) && memcmp(s, want, n) == 0,
                  "%s: %s is \"%.*s\", want \"%s\"", vec, what, (int)n, s, want);
}

START_TEST(valid_requests)
{
    const struct valid_vec *v = &valid[_i];
    size_t len = v->len != 0 ? v->len : strlen(v->raw);
    struct http_request req;

    ssize_t rc = parse3(v->raw, len, MAX_HEAD, &req);
    ck_assert_msg(rc == (ssize_t)(len - v->tail), "%s: rc %zd, want %zu", v->name, rc,
                  len - v->tail);
    assert_slice(req.method, req.method_len, v->method, "method", v->name);
    assert_slice(req.target, req.target_len, v->target, "target", v->name);
    ck_assert_int_eq(req.minor_version, v->minor);
    ck_assert_uint_eq(req.num_headers, v->nh);
    for (size_t i = 0; i < v->nh; i++) {
        assert_slice(req.headers[i].name, req.headers[i].name_len, v->hdr[i][0], "name", v->name);
        assert_slice(req.headers[i].value, req.headers[i].value_len, v->hdr[i][1], "value", v->name);
    }
}
END_TEST

/* Any strict prefix of a valid head is "need more", never an error. */
START_TEST(valid_prefixes_need_more)
{
    const struct valid_vec *v = &valid[_i];
    size_t len = v->len != 0 ? v->len : strlen(v->raw);
    struct http_request req;
    for (size_t k = 0; k < len - v->tail; k++) {
        const char *b = guard_copy(v->raw, k);
        ssize_t rc = http_parse_request(b, k, 0, MAX_HEAD, &req);
        ck_assert_msg(rc == 0, "%s: prefix %zu gave %zd", v->name, k, rc);
    }
}
END_TEST

/* ---- outcomes other than success --------------------------------------- */

struct bad_vec {
    const char *name;
    const char *raw;
    size_t len;             /* 0: strlen(raw) */
    ssize_t want;
};

static const struct bad_vec bad[] = {
    { "empty_method", " / HTTP/1.1\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST },
    { "bad_method_char", "G(T / HTTP/1.1\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST },
    { "method_only", "GET\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST },
    { "missing_version", "GET /\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST },
    { "missing_target", "GET  HTTP/1.1\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST },
    { "double_space", "GET  / HTTP/1.1\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST },
    { "tab_separator", "GET\t/ HTTP/1.1\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST },
    { "http_2_0", "GET / HTTP/2.0\r\n\r\n", 0, HTTP_ERR_VERSION },
    { "http_0_9", "GET / HTTP/0.9\r\n\r\n", 0, HTTP_ERR_VERSION },
    { "http_3_1_headers", "GET / HTTP/3.1\r\nHost: h\r\n\r\n", 0, HTTP_ERR_VERSION },
    { "version_lowercase", "GET / http/1.1\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST },
    { "version_two_digits", "GET / HTTP/1.10\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST },
    { "version_no_minor", "GET / HTTP/1\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST },
    { "version_trailing_sp", "GET / HTTP/1.1 \r\n\r\n", 0, HTTP_ERR_BAD_REQUEST },
    { "version_garbage", "GET / FOO/1.1\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST },
    { "version_letters", "GET / HTTP/a.b\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST },
    { "target_relative", "GET chat HTTP/1.1\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST },
    { "star_not_options", "GET * HTTP/1.1\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST },
    { "authority_form", "CONNECT example.com:443 HTTP/1.1\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST },
    { "absolute_no_host", "GET http:///x HTTP/1.1\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST },
    { "other_scheme", "GET ftp://h/x HTTP/1.1\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST },
    { "target_obs_text", "GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST },
    { "target_nul", "GET /\0 HTTP/1.1\r\n\r\n", 19, HTTP_ERR_BAD_REQUEST },
    { "bad_header_name", "GET / HTTP/1.1\r\nX(Y: 1\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST },
    { "nonascii_name", "GET / HTTP/1.1\r\nX\xc3\xa9: a\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST },
    { "space_before_colon", "GET / HTTP/1.1\r\nHost : h\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST },
    { "empty_name", "GET / HTTP/1.1\r\n: v\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST },
    { "no_colon", "GET / HTTP/1.1\r\nHost h\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST },
    { "obs_fold", "GET / HTTP/1.1\r\nX: a\r\n  b\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST },
    { "obs_fold_tab", "GET / HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST },
    { "ws_before_first_field", "GET / HTTP/1.1\r\n Host: h\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST },
    { "ctl_in_value", "GET / HTTP/1.1\r\nX: a\x01" "b\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST },
    { "del_in_value", "GET / HTTP/1.1\r\nX: a\x7f" "b\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST },
    { "esc_in_value", "GET / HTTP/1.1\r\nX: \x1b[0m\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST },
    { "nul_in_value", "GET / HTTP/1.1\r\nX: a\0b\r\n\r\n", 26, HTTP_ERR_BAD_REQUEST },
    { "nul_in_name", "GET / HTTP/1.1\r\nX\0: b\r\n\r\n", 25, HTTP_ERR_BAD_REQUEST },
    { "bare_cr_in_value", "GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST },
    { "bare_cr_before_crlf", "GET / HTTP/1.1\r\nX: a\r\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST },
    { "bare_cr_request_line", "GET / HTTP/1.1\r\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST },
    { "cr_cr_lf_terminator", "GET / HTTP/1.1\r\nX: a\r\n\r\r\n", 0, HTTP_ERR_BAD_REQUEST },
    { "leading_bare_cr", "\rGET / HTTP/1.1\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST },
    { "five_leading_lines", "\r\n\r\n\n\r\n\r\nGET / HTTP/1.1\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST },
    /* rejected before the head is complete: the scan fails fast */
    { "ctl_incomplete", "GET / HTTP/1.1\r\nX: \x01", 0, HTTP_ERR_BAD_REQUEST },
    { "bare_cr_incomplete", "GET /\rX", 0, HTTP_ERR_BAD_REQUEST },
    /* incomplete heads */
    { "empty", "", 0, 0 },
    { "one_header_open", "GET / HTTP/1.1\r\nHost: h\r\n", 0, 0 },
    { "ends_in_cr", "GET / HTTP/1.1\r\n\r", 0, 0 },
    { "leading_lines_only", "\r\n\r\n\r", 0, 0 },
    { "request_line_open", "GET /chat HTTP/1.1", 0, 0 },
};

START_TEST(bad_requests)
{
    const struct bad_vec *v = &bad[_i];
    size_t len = v->len != 0 ? v->len : strlen(v->raw);
    struct http_request req;
    ssize_t rc = parse3(v->raw, len, MAX_HEAD, &req);
    ck_assert_msg(rc == v->want, "%s: rc %zd, want %zd", v->name, rc, v->want);
}
END_TEST

/* ---- limits ------------------------------------------------------------ */

/* "GET / HTTP/1.1\r\n" + n lines "H<i>: v\r\n" + "\r\n" into buf. */
static size_t many_headers(char *buf, size_t cap, int n)
{
    size_t len = (size_t)snprintf(buf, cap, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(buf + len, cap - len, "H%d: v%d\r\n", i, i);
    len += (size_t)snprintf(buf + len, cap - len, "\r\n");
    ck_assert_uint_lt(len, cap);
    return len;
}

START_TEST(hundred_headers_ok)
{
    static char buf[4096];
    struct http_request req;
    size_t len = many_headers(buf, sizeof buf, HTTP_MAX_HEADERS);
    ck_assert_int_eq(parse3(buf, len, MAX_HEAD, &req), (ssize_t)len);
    ck_assert_uint_eq(req.num_headers, HTTP_MAX_HEADERS);
    assert_slice(req.headers[99].name, req.headers[99].name_len, "H99", "name", "100");
    assert_slice(req.headers[99].value, req.headers[99].value_len, "v99", "value", "100");
}
END_TEST

START_TEST(hundred_one_headers_rejected)
{
    static char buf[4096];
    struct http_request req;
    size_t len = many_headers(buf, sizeof buf, HTTP_MAX_HEADERS + 1);
    ssize_t rc = parse3(buf, len, MAX_HEAD, &req);
    ck_assert_int_eq(rc, HTTP_ERR_TOO_MANY_HDRS);
    ck_assert_int_eq(http_error_status(rc), 431);
}
END_TEST

/* A head of exactly n bytes (n >= 24): one header padded to fit. */
static size_t head_of(char *buf, size_t n)
{
    static const char pre[] = "GET / HTTP/1.1\r\nX: ";
    size_t pad = n - (sizeof pre - 1) - 4;
    memcpy(buf, pre, sizeof pre - 1);
    memset(buf + sizeof pre - 1, 'a', pad);
    memcpy(buf + n - 4, "\r\n\r\n", 4);
    return n;
}

START_TEST(head_exactly_max)
{
    static char buf[512];
    struct http_request req;
    size_t n = head_of(buf, 300);
    ck_assert_int_eq(parse3(buf, n, 300, &req), 300);
    ck_assert_uint_eq(req.headers[0].value_len, 300 - 23);
}
END_TEST

START_TEST(head_one_over_max)
{
    static char buf[512];
    struct http_request req;
    size_t n = head_of(buf, 301);
    ssize_t rc = parse3(buf, n, 300, &req);
    ck_assert_int_eq(rc, HTTP_ERR_HEAD_TOO_BIG);
    ck_assert_int_eq(http_error_status(rc), 431);
}
END_TEST

/* Pipelined bytes may take len past max_head; only the head is bounded. */
START_TEST(head_at_max_with_tail)
{
    static char buf[512];
    struct http_request req;
    size_t n = head_of(buf, 300);
    memset(buf + n, 'z', 100);
    ck_assert_int_eq(parse3(buf, n + 100, 300, &req), 300);
}
END_TEST

START_TEST(huge_uri)
{
    static char buf[MAX_HEAD + 2048];
    struct http_request req;
    memcpy(buf, "GET /", 5);
    memset(buf + 5, 'u', sizeof buf - 5);
    /* incomplete, and complete with the rest of the head past max_head */
    ck_assert_int_eq(parse3(buf, MAX_HEAD + 100, MAX_HEAD, &req), HTTP_ERR_URI_TOO_LONG);
    memcpy(buf + sizeof buf - 15, " HTTP/1.1\r\n\r\n", 13);
    ssize_t rc = parse3(buf, sizeof buf - 2, MAX_HEAD, &req);
    ck_assert_int_eq(rc, HTTP_ERR_URI_TOO_LONG);
    ck_assert_int_eq(http_error_status(rc), 414);
}
END_TEST

struct limit_vec {
    const char *name;
    const char *prefix;     /* then 'x' up to len */
    size_t len, max;
    ssize_t want;
};

static const struct limit_vec limits[] = {
    /* the request line ended, so the target is not what overflowed */
    { "long_header_line", "GET / HTTP/1.1\r\nX: ", 400, 256, HTTP_ERR_HEAD_TOO_BIG },
    { "long_method", "GET", 400, 256, HTTP_ERR_HEAD_TOO_BIG },
    { "long_version", "GET / HTTP/1.1", 400, 256, HTTP_ERR_HEAD_TOO_BIG },
    { "uri_exactly_fills", "GET /", 257, 256, HTTP_ERR_URI_TOO_LONG },
    { "bad_method_long_uri", "G T /", 400, 256, HTTP_ERR_HEAD_TOO_BIG },
    { "one_target_byte_at_limit", "GET /", 256, 255, HTTP_ERR_URI_TOO_LONG },
    { "within_limit", "GET /", 256, 256, 0 },
    { "max_head_zero", "G", 1, 0, HTTP_ERR_HEAD_TOO_BIG },
    { "max_head_zero_empty", "", 0, 0, 0 },
};

START_TEST(limit_vectors)
{
    const struct limit_vec *v = &limits[_i];
    static char buf[1024];
    struct http_request req;
    size_t pl = strlen(v->prefix);
    memcpy(buf, v->prefix, pl);
    if (v->len > pl)
        memset(buf + pl, 'x', v->len - pl);
    ssize_t rc = parse3(buf, v->len, v->max, &req);
    ck_assert_msg(rc == v->want, "%s: rc %zd, want %zd", v->name, rc, v->want);
}
END_TEST

/* Overflowing right at the SP after a huge method: no target yet, so 431. */
START_TEST(sp_at_limit)
{
    static char buf[300];
    struct http_request req;
    memset(buf, 'G', sizeof buf);
    buf[255] = ' ';
    ck_assert_int_eq(parse3(buf, sizeof buf, 256, &req), HTTP_ERR_HEAD_TOO_BIG);
}
END_TEST

/* A control byte found before the overflow is still a 400. */
START_TEST(ctl_before_overflow)
{
    static char buf[400];
    struct http_request req;
    memcpy(buf, "GET /", 5);
    memset(buf + 5, 'u', sizeof buf - 5);
    buf[100] = '\x02';
    ck_assert_int_eq(parse3(buf, sizeof buf, 256, &req), HTTP_ERR_BAD_REQUEST);
}
END_TEST

/* ---- resuming ----------------------------------------------------------- */

/* Bytes below prev_len were scanned already and are not looked at again:
 * a control byte there (which a fresh call rejects) goes unseen. */
START_TEST(resume_does_not_rescan)
{
    static const char raw[] = "GET / HTTP/1.1\r\nX: \x01";
    size_t len = sizeof raw - 1;
    struct http_request req;
    const char *b = guard_copy(raw, len);
    ck_assert_int_eq(http_parse_request(b, len, 0, MAX_HEAD, &req), HTTP_ERR_BAD_REQUEST);
    ck_assert_int_eq(http_parse_request(b, len, len, MAX_HEAD, &req), 0);
}
END_TEST

/* The blank line split as CR | LF CR | LF across three calls. */
START_TEST(resume_across_terminator)
{
    static const char raw[] = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
    size_t len = sizeof raw - 1;
    struct http_request req;
    const char *b;
    b = guard_copy(raw, len - 3);
    ck_assert_int_eq(http_parse_request(b, len - 3, 0, MAX_HEAD, &req), 0);
    b = guard_copy(raw, len - 1);
    ck_assert_int_eq(http_parse_request(b, len - 1, len - 3, MAX_HEAD, &req), 0);
    b = guard_copy(raw, len);
    ck_assert_int_eq(http_parse_request(b, len, len - 1, MAX_HEAD, &req), (ssize_t)len);
    assert_slice(req.headers[0].value, req.headers[0].value_len, "h", "value", "resume");
}
END_TEST

/* A prev_len larger than len cannot be a previous length: start over. */
START_TEST(resume_prev_beyond_len)
{
    static const char raw[] = "GET / HTTP/1.1\r\n\r\n";
    size_t len = sizeof raw - 1;
    struct http_request req;
    const char *b = guard_copy(raw, len);
    ck_assert_int_eq(http_parse_request(b, len, len + 50, MAX_HEAD, &req), (ssize_t)len);
}
END_TEST

/* ---- helpers ------------------------------------------------------------ */

struct token_vec {
    const char *value, *token;
    int want;
};

static const struct token_vec tokens[] = {
    { "keep-alive, Upgrade", "upgrade", 1 },
    { "Upgrade,foo", "upgrade", 1 },
    { "upgradefoo", "upgrade", 0 },
    { "upgrad", "upgrade", 0 },
    { "foo, upgrade2", "upgrade", 0 },
    { "up grade", "upgrade", 0 },
    { "keep-alive", "upgrade", 0 },
    { "", "upgrade", 0 },
    { " , ,upgrade , ", "upgrade", 1 },
    { "\tUPGRADE\t", "upgrade", 1 },
    { "a,,b,  websocket", "websocket", 1 },
    { "websocket", "websocket", 1 },
    { ",", "upgrade", 0 },
};

START_TEST(has_token)
{
    const struct token_vec *v = &tokens[_i];
    const char *b = guard_copy(v->value, strlen(v->value));
    ck_assert_msg(http_has_token(b, strlen(v->value), v->token) == v->want,
                  "\"%s\" has \"%s\": want %d", v->value, v->token, v->want);
}
END_TEST

START_TEST(slice_ieq)
{
    ck_assert_int_eq(http_slice_ieq("Host", 4, "host"), 1);
    ck_assert_int_eq(http_slice_ieq("HOST", 4, "HoSt"), 1);
    ck_assert_int_eq(http_slice_ieq("Hos", 3, "host"), 0);
    ck_assert_int_eq(http_slice_ieq("Hostx", 5, "host"), 0);
    ck_assert_int_eq(http_slice_ieq("Hostx", 4, "host"), 1);
    ck_assert_int_eq(http_slice_ieq("", 0, ""), 1);
    /* '[' and '{' differ by 0x20 but are not letters */
    ck_assert_int_eq(http_slice_ieq("a[", 2, "a{"), 0);
    ck_assert_int_eq(http_slice_ieq("@", 1, "`"), 0);
}
END_TEST

START_TEST(find_and_count)
{
    static const char raw[] = "GET / HTTP/1.1\r\nHost: a\r\nX-Dup: 1\r\nx-dup: 2\r\nX-DUP: 3\r\n\r\n";
    struct http_request req;
    const char *b = guard_copy(raw, sizeof raw - 1);
    ck_assert_int_eq(http_parse_request(b, sizeof raw - 1, 0, MAX_HEAD, &req),
                     (ssize_t)(sizeof raw - 1));
    const struct http_header *h = http_find_header(&req, "x-dup");
    ck_assert_ptr_nonnull(h);
    assert_slice(h->value, h->value_len, "1", "first x-dup", "find");
    h = http_find_header(&req, "HOST");
    ck_assert_ptr_nonnull(h);
    assert_slice(h->value, h->value_len, "a", "host", "find");
    ck_assert_ptr_null(http_find_header(&req, "Hos"));
    ck_assert_ptr_null(http_find_header(&req, "Origin"));
    ck_assert_uint_eq(http_count_header(&req, "X-Dup"), 3);
    ck_assert_uint_eq(http_count_header(&req, "host"), 1);
    ck_assert_uint_eq(http_count_header(&req, "Origin"), 0);
}
END_TEST

START_TEST(error_status_map)
{
    ck_assert_int_eq(http_error_status(HTTP_ERR_BAD_REQUEST), 400);
    ck_assert_int_eq(http_error_status(HTTP_ERR_HEAD_TOO_BIG), 431);
    ck_assert_int_eq(http_error_status(HTTP_ERR_TOO_MANY_HDRS), 431);
    ck_assert_int_eq(http_error_status(HTTP_ERR_URI_TOO_LONG), 414);
    ck_assert_int_eq(http_error_status(HTTP_ERR_VERSION), 505);
    ck_assert_int_eq(http_error_status(-99), 500);
}
END_TEST

START_TEST(reasons)
{
    ck_assert_str_eq(http_reason(101), "Switching Protocols");
    ck_assert_str_eq(http_reason(200), "OK");
    ck_assert_str_eq(http_reason(400), "Bad Request");
    ck_assert_str_eq(http_reason(403), "Forbidden");
    ck_assert_str_eq(http_reason(404), "Not Found");
    ck_assert_str_eq(http_reason(405), "Method Not Allowed");
    ck_assert_str_eq(http_reason(414), "URI Too Long");
    ck_assert_str_eq(http_reason(426), "Upgrade Required");
    ck_assert_str_eq(http_reason(431), "Request Header Fields Too Large");
    ck_assert_str_eq(http_reason(505), "HTTP Version Not Supported");
    ck_assert_str_eq(http_reason(799), "Unknown");
}
END_TEST

/* The head every handler's response goes out with. */
START_TEST(response_head_text)
{
    static const char keep[] =
        "HTTP/1.1 200 OK\r\n"
        "Server: wschat\r\n"
        "Content-Type: application/json\r\n"
        "Content-Length: 1234567\r\n"
        "Connection: keep-alive\r\n"
        "Cache-Control: no-store\r\n"
        "\r\n";
    static const char closing[] =
        "HTTP/1.1 304 Not Modified\r\n"
        "Server: wschat\r\n"
        "Content-Type: text/css; charset=utf-8\r\n"
        "Content-Length: 0\r\n"
        "Connection: close\r\n"
        "\r\n";
    char buf[512];
    ssize_t n = http_response_head(buf, sizeof buf, 200, "application/json", 1234567, 1,
                                   "Cache-Control: no-store\r\n");
    ck_assert_int_eq(n, (ssize_t)sizeof keep - 1);
    ck_assert_mem_eq(buf, keep, (size_t)n);
    n = http_response_head(buf, sizeof buf, 304, "text/css; charset=utf-8", 0, 0, NULL);
    ck_assert_int_eq(n, (ssize_t)sizeof closing - 1);
    ck_assert_mem_eq(buf, closing, (size_t)n);
    /* The same with "" for no extra headers. */
    ck_assert_int_eq(http_response_head(buf, sizeof buf, 304, "text/css; charset=utf-8", 0, 0,
                                        ""), n);
    for (size_t cap = 0; cap < (size_t)n; cap++) {
        /* Written flush against a PROT_NONE page: one byte past CAP faults. */
        char *g = guard_copy(buf, cap);
        ck_assert_int_eq(http_response_head(g, cap, 304, "text/css; charset=utf-8", 0, 0, NULL),
                         -ENOSPC);
    }
}
END_TEST

START_TEST(response_init_is_empty)
{
    struct http_response r;
    memset(&r, 0x55, sizeof r);
    http_response_init(&r);
    ck_assert_int_eq(r.status, 0);
    ck_assert_ptr_null(r.body);
    ck_assert_ptr_null(r.owned);
    ck_assert_uint_eq(r.length, 0);
    ck_assert_str_eq(r.headers, "");
    ck_assert_str_eq(r.ctype, "text/plain; charset=utf-8");
}
END_TEST

START_TEST(error_response_text)
{
    static const char want[] =
        "HTTP/1.1 404 Not Found\r\n"
        "Server: wschat\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Length: 14\r\n"
        "Connection: close\r\n"
        "\r\n"
        "404 Not Found\n";
    char buf[256];
    ssize_t n = http_error_response(buf, sizeof buf, 404, NULL);
    ck_assert_int_eq(n, (ssize_t)sizeof want - 1);
    ck_assert_mem_eq(buf, want, n);
}
END_TEST

START_TEST(error_response_extra)
{
    static const char want[] =
        "HTTP/1.1 426 Upgrade Required\r\n"
        "Server: wschat\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Length: 21\r\n"
        "Connection: close\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        "\r\n"
        "426 Upgrade Required\n";
    char buf[256];
    ssize_t n = http_error_response(buf, sizeof buf, 426, "Sec-WebSocket-Version: 13\r\n");
    ck_assert_int_eq(n, (ssize_t)sizeof want - 1);
    ck_assert_mem_eq(buf, want, n);
}
END_TEST

/* Content-Length must match the body for every status we answer with. */
START_TEST(error_response_lengths)
{
    static const int codes[] = { 400, 403, 404, 405, 414, 426, 431, 500, 505, 299 };
    char buf[512];
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        ssize_t n = http_error_response(buf, sizeof buf, codes[i], "Allow: GET\r\n");
        ck_assert_int_gt(n, 0);
        buf[n] = '\0';
        const char *body = strstr(buf, "\r\n\r\n");
        ck_assert_ptr_nonnull(body);
        body += 4;
        const char *cl = strstr(buf, "Content-Length: ");
        ck_assert_ptr_nonnull(cl);
        ck_assert_int_eq(atoi(cl + 16), (int)strlen(body));
        ck_assert_int_eq(atoi(body), codes[i]);
    }
}
END_TEST

START_TEST(error_response_cap)
{
    char buf[256];
    ssize_t n = http_error_response(buf, sizeof buf, 400, NULL);
    ck_assert_int_gt(n, 0);
    /* Exact fit, and one byte short at every length: -ENOSPC, never a cut head. */
    char *exact = guard_copy(buf, (size_t)n);
    ck_assert_int_eq(http_error_response(exact, (size_t)n, 400, NULL), n);
    ck_assert_mem_eq(exact, buf, (size_t)n);
    for (ssize_t cap = 0; cap < n; cap++)
        ck_assert_int_eq(http_error_response(buf, (size_t)cap, 400, NULL), -ENOSPC);
}
END_TEST

Suite *http_suite(void)
{
    Suite *s = suite_create("http");
    TCase *tc;

    tc = tcase_create("valid");
    tcase_add_loop_test(tc, valid_requests, 0, sizeof valid / sizeof valid[0]);
    tcase_add_loop_test(tc, valid_prefixes_need_more, 0, sizeof valid / sizeof valid[0]);
    suite_add_tcase(s, tc);

    tc = tcase_create("reject");
    tcase_add_loop_test(tc, bad_requests, 0, sizeof bad / sizeof bad[0]);
    suite_add_tcase(s, tc);

    tc = tcase_create("limits");
    tcase_add_test(tc, hundred_headers_ok);
    tcase_add_test(tc, hundred_one_headers_rejected);
    tcase_add_test(tc, head_exactly_max);
    tcase_add_test(tc, head_one_over_max);
    tcase_add_test(tc, head_at_max_with_tail);
    tcase_add_test(tc, huge_uri);
    tcase_add_loop_test(tc, limit_vectors, 0, sizeof limits / sizeof limits[0]);
    tcase_add_test(tc, sp_at_limit);
    tcase_add_test(tc, ctl_before_overflow);
    tcase_set_timeout(tc, 30);
    suite_add_tcase(s, tc);

    tc = tcase_create("resume");
    tcase_add_test(tc, resume_does_not_rescan);
    tcase_add_test(tc, resume_across_terminator);
    tcase_add_test(tc, resume_prev_beyond_len);
    suite_add_tcase(s, tc);

    tc = tcase_create("helpers");
    tcase_add_loop_test(tc, has_token, 0, sizeof tokens / sizeof tokens[0]);
    tcase_add_test(tc, slice_ieq);
    tcase_add_test(tc, find_and_count);
    tcase_add_test(tc, error_status_map);
    tcase_add_test(tc, reasons);
    tcase_add_test(tc, error_response_text);
    tcase_add_test(tc, error_response_extra);
    tcase_add_test(tc, error_response_lengths);
    tcase_add_test(tc, error_response_cap);
    tcase_add_test(tc, response_head_text);
    tcase_add_test(tc, response_init_is_empty);
    suite_add_tcase(s, tc);

    return s;
}

/*
 * check_ws_handshake: RFC 6455 §4.2 upgrade validation, the accept key and
 * the 101 response. Requests are raw text run through http_parse_request()
 * (placed against a guard page), so the checks see what a worker would.
 */
#include <check.h>
#include <string.h>

#include "guard.h"
#include "http.h"
#include "ws_handshake.h"

#define GET   "GET /chat HTTP/1.1\r\n"
#define HOST  "Host: server.example.com\r\n"
#define UPG   "Upgrade: websocket\r\n"
#define CONN  "Connection: Upgrade\r\n"
#define KEY   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
#define VER   "Sec-WebSocket-Version: 13\r\n"
#define RFC_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

static const char allowed[][256] = { "http://example.com", "https://chat.example.org" };
static const struct ws_origins no_list = { NULL, 0 };
static const struct ws_origins some = { allowed, 2 };

struct hs_vec {
    const char *name;
    const char *raw;
    const struct ws_origins *origins;
    int want;
};

static const struct hs_vec vecs[] = {
    { "minimal", GET HOST UPG CONN KEY VER "\r\n", &no_list, 0 },
    { "rfc6455_1_2", GET HOST UPG CONN KEY "Origin: http://example.com\r\n"
      "Sec-WebSocket-Protocol: chat, superchat\r\n" VER "\r\n", &no_list, 0 },
    { "null_origins", GET HOST UPG CONN KEY VER "\r\n", NULL, 0 },
    { "order_shuffled", GET VER KEY CONN UPG HOST "\r\n", &no_list, 0 },
    /* method */
    { "post", "POST /chat HTTP/1.1\r\n" HOST UPG CONN KEY VER "\r\n", &no_list, 405 },
    { "get_lowercase", "get /chat HTTP/1.1\r\n" HOST UPG CONN KEY VER "\r\n", &no_list, 405 },
    { "head", "HEAD /chat HTTP/1.1\r\n" HOST UPG CONN KEY VER "\r\n", &no_list, 405 },
    { "post_everything_wrong", "POST /chat HTTP/1.0\r\n\r\n", &some, 405 },
    /* version */
    { "http10", "GET /chat HTTP/1.0\r\n" HOST UPG CONN KEY VER "\r\n", &no_list, 400 },
    { "http12", "GET /chat HTTP/1.2\r\n" HOST UPG CONN KEY VER "\r\n", &no_list, 0 },
    /* Host */
    { "no_host", GET UPG CONN KEY VER "\r\n", &no_list, 400 },
    { "two_hosts", GET HOST HOST UPG CONN KEY VER "\r\n", &no_list, 400 },
    { "host_lowercase_name", GET "host: a\r\n" UPG CONN KEY VER "\r\n", &no_list, 0 },
    /* Upgrade */
    { "no_upgrade", GET HOST CONN KEY VER "\r\n", &no_list, 400 },
    { "upgrade_mixed_case", GET HOST "Upgrade: WebSocket\r\n" CONN KEY VER "\r\n", &no_list, 0 },
    { "upgrade_list", GET HOST "Upgrade: h2c, websocket\r\n" CONN KEY VER "\r\n", &no_list, 0 },
    { "upgrade_websocketx", GET HOST "Upgrade: websocketx\r\n" CONN KEY VER "\r\n", &no_list, 400 },
    { "upgrade_h2c", GET HOST "Upgrade: h2c\r\n" CONN KEY VER "\r\n", &no_list, 400 },
    /* Connection */
    { "no_connection", GET HOST UPG KEY VER "\r\n", &no_list, 400 },
    { "conn_keepalive_upgrade", GET HOST UPG "Connection: keep-alive, Upgrade\r\n" KEY VER "\r\n",
      &no_list, 0 },
    { "conn_upgrade_foo", GET HOST UPG "Connection: Upgrade,foo\r\n" KEY VER "\r\n", &no_list, 0 },
    { "conn_upgradefoo", GET HOST UPG "Connection: upgradefoo\r\n" KEY VER "\r\n", &no_list, 400 },
    { "conn_keepalive", GET HOST UPG "Connection: keep-alive\r\n" KEY VER "\r\n", &no_list, 400 },
    { "conn_two_fields", GET HOST UPG "Connection: keep-alive\r\nConnection: upgrade\r\n" KEY VER
      "\r\n", &no_list, 0 },
    /* Sec-WebSocket-Version */
    { "version_8", GET HOST UPG CONN KEY "Sec-WebSocket-Version: 8\r\n\r\n", &no_list, 426 },
    { "version_missing", GET HOST UPG CONN KEY "\r\n", &no_list, 426 },
    { "version_013", GET HOST UPG CONN KEY "Sec-WebSocket-Version: 013\r\n\r\n", &no_list, 426 },
    { "version_list", GET HOST UPG CONN KEY "Sec-WebSocket-Version: 13, 8\r\n\r\n", &no_list, 426 },
    { "version_twice", GET HOST UPG CONN KEY VER VER "\r\n", &no_list, 426 },
    { "version_ows", GET HOST UPG CONN KEY "Sec-WebSocket-Version:  13 \r\n\r\n", &no_list, 0 },
    { "version_before_key", GET HOST UPG CONN "Sec-WebSocket-Version: 8\r\n"
      "Sec-WebSocket-Key: short\r\n\r\n", &no_list, 426 },
    /* Sec-WebSocket-Key */
    { "key_missing", GET HOST UPG CONN VER "\r\n", &no_list, 400 },
    { "key_twice", GET HOST UPG CONN KEY KEY VER "\r\n", &no_list, 400 },
    { "key_15_bytes", GET HOST UPG CONN "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAA\r\n" VER "\r\n",
      &no_list, 400 },
    { "key_17_bytes", GET HOST UPG CONN "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAA=\r\n" VER "\r\n",
      &no_list, 400 },
    { "key_18_bytes", GET HOST UPG CONN "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAAA\r\n" VER "\r\n",
      &no_list, 400 },
    { "key_urlsafe", GET HOST UPG CONN "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j-Q==\r\n" VER "\r\n",
      &no_list, 400 },
    { "key_underscore", GET HOST UPG CONN "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j_Q==\r\n" VER
      "\r\n", &no_list, 400 },
    { "key_pad_inside", GET HOST UPG CONN "Sec-WebSocket-Key: dGhl=HNhbXBsZSBub25jZQ==\r\n" VER
      "\r\n", &no_list, 400 },
    { "key_space_inside", GET HOST UPG CONN "Sec-WebSocket-Key: dGhlIHNhbXBs ZSBub25jZQ=\r\n" VER
      "\r\n", &no_list, 400 },
    { "key_empty", GET HOST UPG CONN "Sec-WebSocket-Key:\r\n" VER "\r\n", &no_list, 400 },
    { "key_other_16", GET HOST UPG CONN "Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==\r\n" VER "\r\n",
      &no_list, 0 },
    /* Origin */
    { "origin_allowed", GET HOST UPG CONN KEY VER "Origin: http://example.com\r\n\r\n", &some, 0 },
    { "origin_case", GET HOST UPG CONN KEY VER "Origin: HTTP://EXAMPLE.COM\r\n\r\n", &some, 0 },
    { "origin_second", GET HOST UPG CONN KEY VER "Origin: https://chat.example.org\r\n\r\n", &some, 0 },
    { "origin_denied", GET HOST UPG CONN KEY VER "Origin: http://evil.example\r\n\r\n", &some, 403 },
    { "origin_suffix", GET HOST UPG CONN KEY VER "Origin: http://example.com.evil\r\n\r\n", &some,
      403 },
    { "origin_prefix", GET HOST UPG CONN KEY VER "Origin: http://example.co\r\n\r\n", &some, 403 },
    { "origin_missing", GET HOST UPG CONN KEY VER "\r\n", &some, 403 },
    { "origin_twice", GET HOST UPG CONN KEY VER "Origin: http://example.com\r\n"
      "Origin: http://example.com\r\n\r\n", &some, 403 },
    { "origin_any_when_empty", GET HOST UPG CONN KEY VER "Origin: http://evil.example\r\n\r\n",
      &no_list, 0 },
    { "bad_key_beats_origin", GET HOST UPG CONN VER "Origin: http://evil.example\r\n\r\n", &some, 400 },
};

static void parse(const char *raw, struct http_request *req)
{
    size_t len = strlen(raw);
    const char *b = guard_copy(raw, len);
    ssize_t rc = http_parse_request(b, len, 0, 8192, req);
    ck_assert_msg(rc == (ssize_t)len, "vector does not parse: %zd", rc);
}

START_TEST(check_vectors)
{
    const struct hs_vec *v = &vecs[_i];
    struct http_request req;
    char accept[WS_ACCEPT_LEN + 1];

    parse(v->raw, &req);
    memset(accept, '#', sizeof accept);
    int st = ws_handshake_check(&req, v->origins, accept);
    ck_assert_msg(st == v->want, "%s: status %d, want %d", v->name, st, v->want);
    if (st == 0) {
        const struct http_header *k = http_find_header(&req, "Sec-WebSocket-Key");
        char want[WS_ACCEPT_LEN + 1];
        ws_accept_key(k->value, k->value_len, want);
        ck_assert_str_eq(accept, want);
    } else {
        /* on failure accept is not written */
        ck_assert_int_eq(accept[0], '#');
    }
}
END_TEST

START_TEST(rfc_example_accept)
{
    struct http_request req;
    char accept[WS_ACCEPT_LEN + 1];
    parse(GET HOST UPG CONN KEY VER "\r\n", &req);
    ck_assert_int_eq(ws_handshake_check(&req, &no_list, accept), 0);
    ck_assert_str_eq(accept, RFC_ACCEPT);
}
END_TEST

struct accept_vec {
    const char *key;
    size_t repeat;          /* key is one character repeated this often */
    const char *accept;
};

/* Expected values from `printf %s "$key$GUID" | openssl sha1 -binary | base64`. */
static const struct accept_vec accepts[] = {
    { "dGhlIHNhbXBsZSBub25jZQ==", 0, RFC_ACCEPT },
    { "x3JJHMbDL1EzLkh9GBhXDw==", 0, "HSmrc0sMlYUkAGmm5OPpG2HaGWk=" },
    { "AQIDBAUGBwgJCgsMDQ4PEA==", 0, "C/0nmHhBztSRGR1CwL6Tf4ZjwpY=" },
    { "", 0, "Kfh9QIsMVZcl6xEPYxPHzW8SZ8w=" },
    { "k", 128, "LcijRWdSv8weHsk1E7Dug2wMBbg=" },
    { "k", 129, "GwNZsIvApWzhz529DTMMTypVTu4=" },
    { "k", 200, "HXr7Nbki1tHdEVpq+a7G7IV4VJU=" },
};

START_TEST(accept_key)
{
    const struct accept_vec *v = &accepts[_i];
    static char key[256];
    size_t len;
    if (v->repeat != 0) {
        memset(key, v->key[0], v->repeat);
        len = v->repeat;
    } else {
        len = strlen(v->key);
        memcpy(key, v->key, len);
    }
    const char *b = guard_copy(key, len);
    char out[WS_ACCEPT_LEN + 1];
    memset(out, '#', sizeof out);
    ws_accept_key(b, len, out);
    ck_assert_uint_eq(strlen(out), WS_ACCEPT_LEN);
    ck_assert_str_eq(out, v->accept);
}
END_TEST

START_TEST(response_text)
{
    static const char want[] =
        "HTTP/1.1 101 Switching Protocols\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        "Sec-WebSocket-Accept: " RFC_ACCEPT "\r\n"
        "\r\n";
    char buf[256];
    size_t n = ws_handshake_response(buf, sizeof buf, RFC_ACCEPT);
    ck_assert_uint_eq(n, sizeof want - 1);
    ck_assert_mem_eq(buf, want, n);
}
END_TEST

START_TEST(response_cap)
{
    static const size_t n = 129;    /* length of the response above */
    char buf[256];
    ck_assert_uint_eq(ws_handshake_response(buf, sizeof buf, RFC_ACCEPT), n);
    char *exact = guard_copy(buf, n);
    memset(exact, 0, n);
    ck_assert_uint_eq(ws_handshake_response(exact, n, RFC_ACCEPT), n);
    ck_assert_mem_eq(exact, buf, n);
    ck_assert_uint_eq(ws_handshake_response(buf, n - 1, RFC_ACCEPT), 0);
    ck_assert_uint_eq(ws_handshake_response(buf, 0, RFC_ACCEPT), 0);
}
END_TEST

/* The whole round: parse, check, respond, as the worker will. */
START_TEST(round_trip)
{
    struct http_request req;
    char accept[WS_ACCEPT_LEN + 1], out[256];
    parse(GET HOST UPG "Connection: keep-alive, Upgrade\r\n"
          "Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n" VER
          "Origin: https://chat.example.org\r\n\r\n", &req);
    ck_assert_int_eq(ws_handshake_check(&req, &some, accept), 0);
    size_t n = ws_handshake_response(out, sizeof out, accept);
    ck_assert_uint_gt(n, 0);
    out[n] = '\0';
    ck_assert_ptr_nonnull(strstr(out, "\r\nSec-WebSocket-Accept: HSmrc0sMlYUkAGmm5OPpG2HaGWk=\r\n\r\n"));
}
END_TEST

Suite *ws_handshake_suite(void)
{
    Suite *s = suite_create("ws_handshake");
    TCase *tc;

    tc = tcase_create("check");
    tcase_add_loop_test(tc, check_vectors, 0, sizeof vecs / sizeof vecs[0]);
    tcase_add_test(tc, rfc_example_accept);
    suite_add_tcase(s, tc);

    tc = tcase_create("accept");
    tcase_add_loop_test(tc, accept_key, 0, sizeof accepts / sizeof accepts[0]);
    suite_add_tcase(s, tc);

    tc = tcase_create("response");
    tcase_add_test(tc, response_text);
    tcase_add_test(tc, response_cap);
    tcase_add_test(tc, round_trip);
    suite_add_tcase(s, tc);

    return s;
}

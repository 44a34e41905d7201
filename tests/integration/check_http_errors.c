/*
 * http_errors: the HTTP side of wsmaster before any WebSocket frame: status
 * codes for malformed or refused requests (400, 403, 404, 405, 426, 431,
 * 505), each error carrying "Connection: close" and followed by the server
 * closing; requests and handshakes trickled one byte at a time; and the
 * handshake timeout closing connections that never finish their head.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define HOST "Host: 127.0.0.1\r\n"
#define UPGRADE "Upgrade: websocket\r\nConnection: Upgrade\r\n"
#define GOOD_KEY "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"

/* Send REQ (LEN bytes) on a fresh connection; read the head into R. */
static int request(const struct server *s, struct client *c, const void *req, size_t len,
                   struct httpc_resp *r, int trickle_us)
{
    ck_assert_msg(cli_connect(c, s->port) == 0, "connect: %s", strerror(errno));
    c->trickle_us = trickle_us;
    int sr = cli_send(c, req, len);
    c->trickle_us = 0;
    /* the server may answer and close before reading everything we sent */
    int st = httpc_read_head(c, r, 5000);
    ck_assert_msg(st > 0 || sr == 0, "send failed (%s) and no response", strerror(errno));
    return st;
}

/* An error response: the status, Connection: close, then the server closes. */
static void expect_error(const struct server *s, const void *req, size_t len, int want,
                         int trickle_us, const char *what)
{
    struct client c;
    struct httpc_resp r;
    int st = request(s, &c, req, len, &r, trickle_us);
    ck_assert_msg(st == want, "%s: status %d, want %d\n%s", what, st, want, r.head);
    char v[256];
    ck_assert_msg(httpc_header(&r, "Connection", v, sizeof v) && strcasestr(v, "close"),
                  "%s: %d without Connection: close\n%s", what, st, r.head);
    ck_assert_msg(cli_expect_closed(&c, 2000), "%s: server kept the connection open after %d",
                  what, st);
    cli_close(&c);
}

/* ---- fixed requests ----------------------------------------------------------- */

static const struct {
    const char *name, *req;
    int status;
} errors[] = {
    { "garbage request line", "GARBAGE\r\n\r\n", 400 },
    { "header without colon", "GET / HTTP/1.1\r\n" HOST "NoColonHere\r\n\r\n", 400 },
    { "space in target", "GET /a b HTTP/1.1\r\n" HOST "\r\n", 400 },
    { "HTTP/2.0", "GET / HTTP/2.0\r\n" HOST "\r\n", 505 },
    { "POST /echo", "POST /echo HTTP/1.1\r\n" HOST "Content-Length: 0\r\n\r\n", 405 },
    { "PUT /echo upgrade", "PUT /echo HTTP/1.1\r\n" HOST UPGRADE GOOD_KEY
      "Sec-WebSocket-Version: 13\r\n\r\n", 405 },
    { "upgrade without key", "GET /echo HTTP/1.1\r\n" HOST UPGRADE
      "Sec-WebSocket-Version: 13\r\n\r\n", 400 },
    { "upgrade with short key", "GET /echo HTTP/1.1\r\n" HOST UPGRADE
      "Sec-WebSocket-Key: abc\r\nSec-WebSocket-Version: 13\r\n\r\n", 400 },
    { "upgrade with 15-byte key", "GET /echo HTTP/1.1\r\n" HOST UPGRADE
      "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAA\r\nSec-WebSocket-Version: 13\r\n\r\n", 400 },
    { "upgrade with non-base64 key", "GET /echo HTTP/1.1\r\n" HOST UPGRADE
      "Sec-WebSocket-Key: !!!!!!!!!!!!!!!!!!!!!!==\r\nSec-WebSocket-Version: 13\r\n\r\n", 400 },
};

START_TEST(error_status)
{
    struct server s;
    srv_start(&s, "workers 1");
    expect_error(&s, errors[_i].req, strlen(errors[_i].req), errors[_i].status, 0,
                 errors[_i].name);
    /* the same request trickled one byte at a time gets the same answer */
    expect_error(&s, errors[_i].req, strlen(errors[_i].req), errors[_i].status, 500,
                 errors[_i].name);
    srv_stop(&s);
}
END_TEST

START_TEST(version_8_gets_426)
{
    struct server s;
    srv_start(&s, "workers 1");
    const char *req = "GET /echo HTTP/1.1\r\n" HOST UPGRADE GOOD_KEY
                      "Sec-WebSocket-Version: 8\r\n\r\n";
    struct client c;
    struct httpc_resp r;
    int st = request(&s, &c, req, strlen(req), &r, 0);
    ck_assert_msg(st == 426, "version 8: status %d\n%s", st, r.head);
    char v[64];
    ck_assert_msg(httpc_header(&r, "Sec-WebSocket-Version", v, sizeof v) && strcmp(v, "13") == 0,
                  "426 without Sec-WebSocket-Version: 13\n%s", r.head);
    ck_assert(cli_expect_closed(&c, 2000));
    cli_close(&c);
    expect_error(&s, req, strlen(req), 426, 0, "version 8");
    srv_stop(&s);
}
END_TEST

START_TEST(root_and_unknown_path)
{
    struct server s;
    srv_start(&s, "workers 1");
    struct httpc_resp r;
    int st = httpc_get_status(s.port, "GET / HTTP/1.1\r\n" HOST "\r\n", &r);
    ck_assert_msg(st >= 200 && st <= 599, "GET /: %d", st);
    st = httpc_get_status(s.port, "GET /no/such/file.html HTTP/1.1\r\n" HOST "\r\n", &r);
    ck_assert_msg(st == 404, "unknown path: %d\n%s", st, r.head);
    st = httpc_get_status(s.port, "GET /../../etc/passwd HTTP/1.1\r\n" HOST "\r\n", &r);
    ck_assert_msg(st == 400 || st == 403 || st == 404, "path escape: %d\n%s", st, r.head);

    /* trickled one byte at a time */
    struct client c;
    const char *req = "GET /no-such-file HTTP/1.1\r\n" HOST "\r\n";
    st = request(&s, &c, req, strlen(req), &r, 1000);
    ck_assert_msg(st == 404, "trickled request: %d", st);
    cli_close(&c);
    srv_stop(&s);
}
END_TEST

/* ---- size limits ---------------------------------------------------------------- */

START_TEST(head_too_large_431)
{
    struct server s;
    srv_start(&s, "workers 1\nmax_request_head 8k");
    size_t big = 9000;
    char *req = malloc(big + 256);
    int n = snprintf(req, 256, "GET / HTTP/1.1\r\n" HOST "X-Big: ");
    memset(req + n, 'a', big);
    memcpy(req + n + big, "\r\n\r\n", 4);
    expect_error(&s, req, (size_t)n + big + 4, 431, 0, "9000-byte header");
    free(req);

    /* a head just under the limit is fine */
    req = malloc(8192);
    n = snprintf(req, 256, "GET /no-such-file HTTP/1.1\r\n" HOST "X-Big: ");
    size_t fill = 8192 - (size_t)n - 4 - 64;
    memset(req + n, 'b', fill);
    memcpy(req + n + fill, "\r\n\r\n", 4);
    struct client c;
    struct httpc_resp r;
    int st = request(&s, &c, req, (size_t)n + fill + 4, &r, 0);
    ck_assert_msg(st == 404, "head of %zu bytes: %d", (size_t)n + fill + 4, st);
    cli_close(&c);
    free(req);
    srv_stop(&s);
}
END_TEST

START_TEST(too_many_headers_431)
{
    struct server s;
    srv_start(&s, "workers 1");
    char req[4096];
    size_t off = (size_t)snprintf(req, sizeof req, "GET / HTTP/1.1\r\n" HOST);
    for (int i = 0; i < 101; i++)   /* 102 with Host */
        off += (size_t)snprintf(req + off, sizeof req - off, "X-H%d: v\r\n", i);
    off += (size_t)snprintf(req + off, sizeof req - off, "\r\n");
    ck_assert(off < sizeof req);
    expect_error(&s, req, off, 431, 0, "102 headers");

    /* 100 headers (Host + 99) pass */
    off = (size_t)snprintf(req, sizeof req, "GET /no-such-file HTTP/1.1\r\n" HOST);
    for (int i = 0; i < 99; i++)
        off += (size_t)snprintf(req + off, sizeof req - off, "X-H%d: v\r\n", i);
    off += (size_t)snprintf(req + off, sizeof req - off, "\r\n");
    struct client c;
    struct httpc_resp r;
    int st = request(&s, &c, req, off, &r, 0);
    ck_assert_msg(st == 404, "100 headers: %d", st);
    cli_close(&c);
    srv_stop(&s);
}
END_TEST

/* ---- origins --------------------------------------------------------------------- */

START_TEST(origin_checked)
{
    struct server s;
    srv_start(&s, "workers 1\norigins http://good.example http://other.example:8080");
    struct client c;
    ck_assert_int_eq(cli_connect(&c, s.port), 0);
    int st = wsc_handshake(&c, "/echo", "Origin: http://evil.example\r\n", NULL, 0);
    ck_assert_msg(st == 403, "disallowed origin: %d", st);
    ck_assert(cli_expect_closed(&c, 2000));
    cli_close(&c);

    const char *req = "GET /echo HTTP/1.1\r\n" HOST UPGRADE GOOD_KEY
                      "Sec-WebSocket-Version: 13\r\nOrigin: http://good.example.evil\r\n\r\n";
    expect_error(&s, req, strlen(req), 403, 0, "origin with a suffix");

    ck_assert_int_eq(cli_connect(&c, s.port), 0);
    st = wsc_handshake(&c, "/echo", "Origin: http://other.example:8080\r\n", NULL, 0);
    ck_assert_msg(st == 101, "allowed origin: %d", st);
    wsc_echo_check(&c, WS_OP_TEXT, "ok", 2);
    cli_close(&c);
    srv_stop(&s);
}
END_TEST

/* ---- trickled handshake ------------------------------------------------------------ */

START_TEST(handshake_one_byte_at_a_time)
{
    struct server s;
    srv_start(&s, "workers 1");
    struct client c;
    ck_assert_int_eq(cli_connect(&c, s.port), 0);
    c.trickle_us = 1000;
    int st = wsc_handshake(&c, "/echo", NULL, NULL, 0);
    ck_assert_msg(st == 101, "trickled handshake: %d", st);
    /* and a frame trickled the same way */
    ck_assert_int_eq(wsc_send(&c, WS_FIN | WS_OP_TEXT, "slow", 4), 0);
    c.trickle_us = 0;
    struct wsc_msg m;
    ck_assert_int_eq(wsc_recv(&c, &m, 5000), 1);
    ck_assert(m.opcode == WS_OP_TEXT && m.len == 4 && memcmp(m.data, "slow", 4) == 0);
    wsc_msg_free(&m);
    cli_close(&c);
    srv_stop(&s);
}
END_TEST

/* ---- handshake timeout ------------------------------------------------------------- */

START_TEST(handshake_timeout_silent)
{
    struct server s;
    srv_start(&s, "workers 1\nhandshake_timeout 1s");
    struct client c;
    ck_assert_int_eq(cli_connect(&c, s.port), 0);
    int64_t t0 = it_now_ms();
    ck_assert_msg(cli_expect_closed(&c, 3000), "silent connection still open after 3 s");
    int64_t took = it_now_ms() - t0;
    ck_assert_msg(took >= 500, "closed after %lld ms, before the 1 s timeout", (long long)took);
    cli_close(&c);

    /* a partial head does not reset the clock */
    ck_assert_int_eq(cli_connect(&c, s.port), 0);
    t0 = it_now_ms();
    ck_assert_int_eq(cli_sendstr(&c, "GET / HTTP/1.1\r\n"), 0);
    int closed = 0;
    for (int i = 0; i < 15 && !closed; i++) {
        if (cli_sendstr(&c, "X-Slow: y\r\n") < 0)
            break;
        closed = cli_expect_closed(&c, 200);
    }
    if (!closed)
        closed = cli_expect_closed(&c, 200);
    took = it_now_ms() - t0;
    ck_assert_msg(closed && took <= 3000, "trickling head kept open for %lld ms",
                  (long long)took);
    cli_close(&c);

    /* an established WebSocket is no longer under the handshake clock */
    wsc_open(&c, s.port);
    it_sleep_ms(1500);
    wsc_echo_check(&c, WS_OP_TEXT, "alive", 5);
    cli_close(&c);
    srv_stop(&s);
}
END_TEST

Suite *http_errors_suite(void)
{
    Suite *s = suite_create("http_errors");
    TCase *tc = tcase_create("status");
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, error_status, 0, (int)(sizeof errors / sizeof errors[0]));
    tcase_add_test(tc, version_8_gets_426);
    tcase_add_test(tc, root_and_unknown_path);
    tcase_add_test(tc, head_too_large_431);
    tcase_add_test(tc, too_many_headers_431);
    tcase_add_test(tc, origin_checked);
    suite_add_tcase(s, tc);

    tc = tcase_create("timing");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, handshake_one_byte_at_a_time);
    tcase_add_test(tc, handshake_timeout_silent);
    suite_add_tcase(s, tc);
    return s;
}

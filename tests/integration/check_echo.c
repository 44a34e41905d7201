/*
 * echo: RFC 6455 end to end against /echo (issue 3). Message sizes across
 * every length form, whole and fragmented with pings between fragments,
 * pipelining, many clients, a client vanishing mid-frame, every 1002 rule
 * (§5.2, §5.4, §5.5), UTF-8 with fail-fast 1007 (§8.1), 1009, the close
 * handshake and close-code validity (§5.5.1, §7.4), pings and the idle
 * ping/drop. The client is harness.c's own codec, never the server's.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define ECHO_CONF "workers 2\nmax_message 16m\nmax_send_queue 64m"

/* Close expected after a violation: CODE, nothing echoed first, then TCP close. */
static void expect_fail(struct client *c, int code, const char *what)
{
    int skipped = 0;
    int got = wsc_read_close(c, 3000, &skipped, NULL, 0);
    ck_assert_msg(got == code, "%s: close %d, want %d", what, got, code);
    ck_assert_msg(skipped == 0, "%s: %d frame(s) before the close", what, skipped);
    ck_assert_msg(cli_expect_closed(c, 3000), "%s: TCP still open after close %d", what, code);
}

/* ---- sizes, whole and fragmented --------------------------------------------- */

static const size_t sizes[] = { 0, 1, 125, 126, 65535, 65536, 1u << 20, 16u << 20 };

/*
 * Send P as fragments of FRAG bytes (FRAG 0: two empty-edged variants are
 * handled by the caller), a ping after each of the first 16 non-final
 * fragments; expect the pongs (at least the newest, in order) and the
 * message back whole as one frame.
 */
static void echo_fragmented(struct client *c, int opcode, const uint8_t *p, size_t len,
                            size_t frag, int empty_edges)
{
    uint8_t *b = NULL;
    size_t n = 0, cap = 0;
    int pings = 0;
    if (empty_edges) {
        wsc_frame_append(&b, &n, &cap, opcode, "", 0);
        wsc_frame_append(&b, &n, &cap, WS_OP_CONT, p, len);
        wsc_frame_append(&b, &n, &cap, WS_FIN | WS_OP_PING, "edge", 4);
        pings = 1;
        wsc_frame_append(&b, &n, &cap, WS_FIN | WS_OP_CONT, "", 0);
    } else {
        size_t nfr = len == 0 ? 2 : (len + frag - 1) / frag;
        for (size_t i = 0; i < nfr; i++) {
            size_t at = i * frag < len ? i * frag : len;
            size_t k = len - at < frag ? len - at : frag;
            int fin = i == nfr - 1 ? WS_FIN : 0;
            wsc_frame_append(&b, &n, &cap, fin | (i == 0 ? opcode : WS_OP_CONT), p + at, k);
            if (!fin && pings < 16) {
                char ping[16];
                int pl = snprintf(ping, sizeof ping, "ping-%d", pings++);
                wsc_frame_append(&b, &n, &cap, WS_FIN | WS_OP_PING, ping, (size_t)pl);
            }
        }
    }
    ck_assert_msg(cli_send(c, b, n) == 0, "send: %s", strerror(errno));
    free(b);

    int next_pong = 0, got_data = 0;
    int64_t end = it_now_ms() + 10000 + (int64_t)(len >> 20) * 1000;
    while (!got_data || next_pong < pings) {
        struct wsc_msg m;
        int64_t left = end - it_now_ms();
        int r = wsc_recv(c, &m, left > 0 ? (int)left : 0);
        ck_assert_msg(r == 1, "fragmented %zu/%zu: %s (pongs %d/%d, data %d)", len, frag,
                      r == 0 ? "closed" : "timeout", next_pong, pings, got_data);
        if (m.opcode == WS_OP_PONG) {
            /* the server may skip pongs for older pings (§5.5.3), not reorder */
            int idx = -1;
            if (empty_edges)
                idx = (m.len == 4 && memcmp(m.data, "edge", 4) == 0) ? 0 : -1;
            else if (m.len > 5 && memcmp(m.data, "ping-", 5) == 0)
                idx = atoi((char *)m.data + 5);
            ck_assert_msg(idx >= next_pong && idx < pings, "unexpected pong \"%s\"", m.data);
            next_pong = idx + 1;
        } else if (m.opcode == WS_OP_PING) {
            wsc_send(c, WS_FIN | WS_OP_PONG, m.data, m.len);
        } else {
            ck_assert_msg(!got_data, "two data frames for one message");
            ck_assert_msg(m.opcode == opcode, "echo opcode %d, want %d (close code %d?)",
                          m.opcode, opcode, m.len >= 2 ? m.data[0] << 8 | m.data[1] : -1);
            ck_assert_msg(m.fin, "echo is fragmented");
            ck_assert_msg(m.len == len, "echo of %zu bytes (fragments of %zu): %zu", len,
                          frag, m.len);
            ck_assert_msg(len == 0 || memcmp(m.data, p, len) == 0,
                          "echo of %zu bytes (fragments of %zu) differs", len, frag);
            got_data = 1;
        }
        wsc_msg_free(&m);
    }
}

START_TEST(echo_sizes)
{
    struct server s;
    srv_start(&s, ECHO_CONF);
    struct client c;
    wsc_open(&c, s.port);
    size_t len = sizes[_i];
    static const size_t frags[] = { 1, 3, 125, 126, 4099, 65536, (1u << 20) + 1 };
    for (int op = WS_OP_TEXT; op <= WS_OP_BIN; op++) {
        uint8_t *p = op == WS_OP_TEXT ? it_make_text(len) : it_make_binary(len, (uint32_t)len + 7);
        wsc_echo_check(&c, op, p, len);
        for (size_t f = 0; f < sizeof frags / sizeof frags[0]; f++)
            if (frags[f] < len && len / frags[f] <= 2048)
                echo_fragmented(&c, op, p, len, frags[f], 0);
        if (len >= 2)
            echo_fragmented(&c, op, p, len, (len + 1) / 2, 0);
        if (len == 0)
            echo_fragmented(&c, op, p, len, 1, 0);
        if (len <= 65536)
            echo_fragmented(&c, op, p, len, 0, 1);
        free(p);
    }
    wsc_send_close(&c, 1000, NULL, 0);
    ck_assert_int_eq(wsc_read_close(&c, 3000, NULL, NULL, 0), 1000);
    cli_close(&c);
    srv_stop(&s);
}
END_TEST

/* ---- pipelining and many clients ----------------------------------------------- */

START_TEST(pipelined_1000)
{
    struct server s;
    srv_start(&s, ECHO_CONF);
    struct client c;
    wsc_open(&c, s.port);
    uint8_t *b = NULL;
    size_t n = 0, cap = 0;
    char msg[1024];
    for (int i = 0; i < 1000; i++) {
        size_t pl = (size_t)snprintf(msg, sizeof msg, "%04d:", i);
        size_t extra = (size_t)(i * 37) % 700;
        memset(msg + pl, 'a' + i % 26, extra);
        wsc_frame_append(&b, &n, &cap, WS_FIN | (i % 3 ? WS_OP_TEXT : WS_OP_BIN), msg,
                         pl + extra);
    }
    ck_assert_int_eq(cli_send(&c, b, n), 0);
    free(b);
    for (int i = 0; i < 1000; i++) {
        struct wsc_msg m;
        int r = wsc_recv(&c, &m, 10000);
        ck_assert_msg(r == 1, "message %d of 1000: %s", i, r == 0 ? "closed" : "timeout");
        size_t pl = (size_t)snprintf(msg, sizeof msg, "%04d:", i);
        size_t extra = (size_t)(i * 37) % 700;
        memset(msg + pl, 'a' + i % 26, extra);
        ck_assert_msg(m.opcode == (i % 3 ? WS_OP_TEXT : WS_OP_BIN) && m.fin
                      && m.len == pl + extra && memcmp(m.data, msg, m.len) == 0,
                      "message %d came back as \"%.10s\" (%zu bytes)", i, m.data, m.len);
        wsc_msg_free(&m);
    }
    cli_close(&c);
    srv_stop(&s);
}
END_TEST

START_TEST(hundred_clients)
{
    struct server s;
    srv_start(&s, ECHO_CONF);
    enum { N = 100 };
    static struct client cs[N];
    char msg[N][64];
    for (int i = 0; i < N; i++)
        wsc_open(&cs[i], s.port);
    for (int i = 0; i < N; i++) {
        uint32_t r;
        it_random(&r, sizeof r);
        snprintf(msg[i], sizeof msg[i], "client %03d says %08x", i, r);
        ck_assert_int_eq(wsc_send(&cs[i], WS_FIN | WS_OP_TEXT, msg[i], strlen(msg[i])), 0);
    }
    for (int i = N - 1; i >= 0; i--) {
        struct wsc_msg m;
        ck_assert_msg(wsc_recv(&cs[i], &m, 10000) == 1, "client %d got nothing", i);
        ck_assert_msg(m.opcode == WS_OP_TEXT && m.len == strlen(msg[i])
                      && memcmp(m.data, msg[i], m.len) == 0,
                      "client %d got \"%s\", want \"%s\"", i, m.data, msg[i]);
        wsc_msg_free(&m);
    }
    for (int i = 0; i < N; i++)
        cli_close(&cs[i]);
    srv_stop(&s);
}
END_TEST

START_TEST(vanishing_client_mid_frame)
{
    struct server s;
    srv_start(&s, "workers 1");     /* one worker: everyone shares its loop */
    struct client a, b;
    wsc_open(&a, s.port);
    wsc_echo_check(&a, WS_OP_TEXT, "first", 5);

    /* half a frame, then FIN */
    wsc_open(&b, s.port);
    uint8_t *pay = it_make_binary(1000, 3);
    size_t fl;
    uint8_t *f = wsc_frame_build(WS_FIN | WS_OP_BIN, pay, 1000, &fl);
    ck_assert_int_eq(cli_send(&b, f, 8 + 100), 0);
    cli_close(&b);
    /* half a header, then RST */
    wsc_open(&b, s.port);
    ck_assert_int_eq(cli_send(&b, f, 1), 0);
    cli_abort(&b);
    /* half a fragmented message, then RST */
    wsc_open(&b, s.port);
    wsc_send(&b, WS_OP_TEXT, "part", 4);
    cli_abort(&b);
    /* half a handshake request, then FIN */
    ck_assert_int_eq(cli_connect(&b, s.port), 0);
    ck_assert_int_eq(cli_sendstr(&b, "GET /echo HTTP/1.1\r\nHost: 127"), 0);
    cli_close(&b);
    free(f);

    for (int i = 0; i < 5; i++)
        wsc_echo_check(&a, WS_OP_BIN, pay, 1000);
    wsc_open(&b, s.port);
    wsc_echo_check(&b, WS_OP_TEXT, "newcomer", 8);
    cli_close(&b);
    cli_close(&a);
    free(pay);
    srv_stop(&s);
}
END_TEST

/* ---- 1002 ---------------------------------------------------------------------------- */

static const char *const proto_cases[] = {
    "unmasked text", "RSV1", "RSV2", "RSV3",
    "opcode 3", "opcode 4", "opcode 5", "opcode 6", "opcode 7",
    "opcode 0xB", "opcode 0xC", "opcode 0xD", "opcode 0xE", "opcode 0xF",
    "ping of 126 bytes", "close of 126 bytes", "fragmented ping",
    "continuation without start", "text inside a fragmented message",
    "binary inside a fragmented message", "continuation after a final frame",
    "64-bit length with the top bit", "unmasked ping", "RSV1 on a ping",
};

START_TEST(protocol_error_1002)
{
    struct server s;
    srv_start(&s, ECHO_CONF);
    struct client c;
    wsc_open(&c, s.port);
    uint8_t big[126];
    memset(big, 'x', sizeof big);
    uint8_t *b = NULL;
    size_t n = 0, cap = 0;
    int i = _i;
    if (i == 0)
        wsc_frame_append(&b, &n, &cap, WS_FIN | WS_OP_TEXT | WS_NOMASK, "hello", 5);
    else if (i <= 3)
        wsc_frame_append(&b, &n, &cap, WS_FIN | (WS_RSV1 >> (i - 1)) | WS_OP_TEXT, "x", 1);
    else if (i <= 8)
        wsc_frame_append(&b, &n, &cap, WS_FIN | (i - 1), "x", 1);
    else if (i <= 13)
        wsc_frame_append(&b, &n, &cap, WS_FIN | (0xB + i - 9), "x", 1);
    else if (i == 14)
        wsc_frame_append(&b, &n, &cap, WS_FIN | WS_OP_PING, big, 126);
    else if (i == 15) {
        big[0] = 0x03;  /* code 1000 */
        big[1] = 0xE8;
        wsc_frame_append(&b, &n, &cap, WS_FIN | WS_OP_CLOSE, big, 126);
    } else if (i == 16)
        wsc_frame_append(&b, &n, &cap, WS_OP_PING, "x", 1);
    else if (i == 17)
        wsc_frame_append(&b, &n, &cap, WS_FIN | WS_OP_CONT, "x", 1);
    else if (i == 18 || i == 19) {
        wsc_frame_append(&b, &n, &cap, WS_OP_TEXT, "a", 1);
        wsc_frame_append(&b, &n, &cap, WS_FIN | (i == 18 ? WS_OP_TEXT : WS_OP_BIN), "b", 1);
    } else if (i == 20) {
        wsc_frame_append(&b, &n, &cap, WS_FIN | WS_OP_TEXT, "a", 1);
        wsc_frame_append(&b, &n, &cap, WS_FIN | WS_OP_CONT, "b", 1);
    } else if (i == 22)
        wsc_frame_append(&b, &n, &cap, WS_FIN | WS_OP_PING | WS_NOMASK, "x", 1);
    else if (i == 23)
        wsc_frame_append(&b, &n, &cap, WS_FIN | WS_RSV1 | WS_OP_PING, "x", 1);

    if (i == 21)
        ck_assert_int_eq(wsc_send_header(&c, WS_FIN | WS_OP_BIN, 1ull << 63, 1), 0);
    else
        ck_assert_msg(cli_send(&c, b, n) == 0, "send: %s", strerror(errno));
    free(b);

    if (i == 20) {  /* the complete "a" is echoed before the error */
        struct wsc_msg m;
        ck_assert_int_eq(wsc_recv(&c, &m, 3000), 1);
        ck_assert(m.opcode == WS_OP_TEXT && m.len == 1 && m.data[0] == 'a');
        wsc_msg_free(&m);
    }
    expect_fail(&c, 1002, proto_cases[i]);
    cli_close(&c);

    /* the server is unharmed */
    wsc_open(&c, s.port);
    wsc_echo_check(&c, WS_OP_TEXT, "next", 4);
    cli_close(&c);
    srv_stop(&s);
}
END_TEST

/* ---- UTF-8 ---------------------------------------------------------------------------- */

static const struct { const char *bytes; size_t len; } bad_utf8[] = {
    { "\xff", 1 }, { "abc\xfe", 4 }, { "\xc0\xaf", 2 }, { "\xe0\x80\xaf", 3 },
    { "\xed\xa0\x80", 3 }, { "\xed\xbf\xbf", 3 }, { "\xf4\x90\x80\x80", 4 },
    { "\xf8\x88\x80\x80\x80", 5 }, { "\x80", 1 }, { "hello\xe2\x82", 7 },
    { "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xce", 12 }, { "a\xc3", 2 },
    { "\xf0\x9f\x98", 3 },
};

START_TEST(invalid_utf8_1007)
{
    struct server s;
    srv_start(&s, ECHO_CONF);
    struct client c;
    wsc_open(&c, s.port);
    ck_assert_int_eq(wsc_send(&c, WS_FIN | WS_OP_TEXT, bad_utf8[_i].bytes, bad_utf8[_i].len), 0);
    expect_fail(&c, 1007, "invalid UTF-8 text");
    cli_close(&c);

    /* the same bytes split into one-byte fragments */
    wsc_open(&c, s.port);
    uint8_t *b = NULL;
    size_t n = 0, cap = 0;
    for (size_t k = 0; k < bad_utf8[_i].len; k++)
        wsc_frame_append(&b, &n, &cap, (k == bad_utf8[_i].len - 1 ? WS_FIN : 0)
                         | (k == 0 ? WS_OP_TEXT : WS_OP_CONT), bad_utf8[_i].bytes + k, 1);
    ck_assert_int_eq(cli_send(&c, b, n), 0);
    free(b);
    expect_fail(&c, 1007, "invalid UTF-8 in one-byte fragments");
    cli_close(&c);
    srv_stop(&s);
}
END_TEST

/* a byte that no continuation can repair; sent without FIN, nothing after */
static const struct { const char *bytes; size_t len; } failfast[] = {
    { "abc\xff", 4 }, { "abc\xc0", 4 }, { "abc\xc1", 4 }, { "abc\xed\xa0", 5 },
    { "abc\xf4\x90", 5 }, { "abc\xe0\x80", 5 }, { "abc\xf5", 4 }, { "abc\x80", 4 },
};

START_TEST(utf8_fail_fast)
{
    struct server s;
    srv_start(&s, ECHO_CONF);
    struct client c;
    wsc_open(&c, s.port);
    ck_assert_int_eq(wsc_send(&c, WS_OP_TEXT, failfast[_i].bytes, failfast[_i].len), 0);
    expect_fail(&c, 1007, "bad byte in a first fragment");
    cli_close(&c);

    /* inside a single frame whose payload has not all arrived */
    wsc_open(&c, s.port);
    uint8_t pay[1000];
    memset(pay, 'a', sizeof pay);
    memcpy(pay + 10, failfast[_i].bytes, failfast[_i].len);
    size_t fl;
    uint8_t *f = wsc_frame_build(WS_FIN | WS_OP_TEXT, pay, sizeof pay, &fl);
    ck_assert_int_eq(cli_send(&c, f, 8 + 10 + failfast[_i].len + 5), 0);
    free(f);
    expect_fail(&c, 1007, "bad byte in a partly sent frame");
    cli_close(&c);
    srv_stop(&s);
}
END_TEST

START_TEST(utf8_split_across_fragments)
{
    struct server s;
    srv_start(&s, ECHO_CONF);
    struct client c;
    wsc_open(&c, s.port);
    const char *txt = "a\xe2\x82\xac" "b\xf0\x9f\x98\x80" "c\xc3\xa9\xed\x9f\xbf\xf4\x8f\xbf\xbf";
    size_t len = strlen(txt);
    /* every byte its own fragment, with an empty fragment between each */
    uint8_t *b = NULL;
    size_t n = 0, cap = 0;
    for (size_t k = 0; k < len; k++) {
        wsc_frame_append(&b, &n, &cap, k == 0 ? WS_OP_TEXT : WS_OP_CONT, txt + k, 1);
        wsc_frame_append(&b, &n, &cap, (k == len - 1 ? WS_FIN : 0) | WS_OP_CONT, "", 0);
    }
    ck_assert_int_eq(cli_send(&c, b, n), 0);
    free(b);
    struct wsc_msg m;
    ck_assert_int_eq(wsc_recv(&c, &m, 5000), 1);
    ck_assert_msg(m.opcode == WS_OP_TEXT && m.fin && m.len == len && memcmp(m.data, txt, len) == 0,
                  "split UTF-8 came back as %zu bytes op %d", m.len, m.opcode);
    wsc_msg_free(&m);
    /* every split point of a two-fragment message */
    for (size_t at = 1; at < len; at++) {
        b = NULL;
        n = cap = 0;
        wsc_frame_append(&b, &n, &cap, WS_OP_TEXT, txt, at);
        wsc_frame_append(&b, &n, &cap, WS_FIN | WS_OP_CONT, txt + at, len - at);
        ck_assert_int_eq(cli_send(&c, b, n), 0);
        free(b);
        ck_assert_int_eq(wsc_recv(&c, &m, 5000), 1);
        ck_assert_msg(m.len == len && memcmp(m.data, txt, len) == 0, "split at %zu", at);
        wsc_msg_free(&m);
    }
    cli_close(&c);
    srv_stop(&s);
}
END_TEST

/* ---- 1009 ------------------------------------------------------------------------------ */

START_TEST(too_big_1009)
{
    struct server s;
    srv_start(&s, "workers 1\nmax_message 64k");
    struct client c;

    /* exactly max_message passes, whole and in two fragments */
    wsc_open(&c, s.port);
    uint8_t *p = it_make_binary(65537, 9);
    wsc_echo_check(&c, WS_OP_BIN, p, 65536);
    echo_fragmented(&c, WS_OP_BIN, p, 65536, 40000, 0);
    cli_close(&c);

    /* one byte more, announced in the header only: 1009 before any payload */
    wsc_open(&c, s.port);
    ck_assert_int_eq(wsc_send_header(&c, WS_FIN | WS_OP_BIN, 65537, 0), 0);
    expect_fail(&c, 1009, "header announcing max_message + 1");
    cli_close(&c);

    wsc_open(&c, s.port);
    ck_assert_int_eq(wsc_send_header(&c, WS_FIN | WS_OP_TEXT, 1ull << 40, 1), 0);
    expect_fail(&c, 1009, "header announcing 1 TiB");
    cli_close(&c);

    /* fragments adding up to max_message + 1 */
    wsc_open(&c, s.port);
    uint8_t *b = NULL;
    size_t n = 0, cap = 0;
    wsc_frame_append(&b, &n, &cap, WS_OP_BIN, p, 40000);
    wsc_frame_append(&b, &n, &cap, WS_FIN | WS_OP_CONT, p + 40000, 25537);
    cli_send(&c, b, n);     /* the server may close before reading it all */
    free(b);
    expect_fail(&c, 1009, "fragments adding up to max_message + 1");
    cli_close(&c);
    free(p);
    srv_stop(&s);
}
END_TEST

/* ---- close handshake ---------------------------------------------------------------- */

static const int good_codes[] = { 1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011,
                                  1012, 1013, 1014, 3000, 3999, 4000, 4999 };

START_TEST(close_valid_code_echoed)
{
    struct server s;
    srv_start(&s, ECHO_CONF);
    struct client c;
    wsc_open(&c, s.port);
    int code = good_codes[_i];
    ck_assert_int_eq(wsc_send_close(&c, code, "bye \xe2\x82\xac", 7), 0);
    int got = wsc_read_close(&c, 3000, NULL, NULL, 0);
    ck_assert_msg(got == code, "close %d answered with %d", code, got);
    ck_assert_msg(cli_expect_closed(&c, 3000), "server did not close TCP after close %d", code);
    cli_close(&c);
    srv_stop(&s);
}
END_TEST

static const int bad_codes[] = { 0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000,
                                 2999, 5000, 65535 };

START_TEST(close_invalid_code_1002)
{
    struct server s;
    srv_start(&s, ECHO_CONF);
    struct client c;
    wsc_open(&c, s.port);
    ck_assert_int_eq(wsc_send_close(&c, bad_codes[_i], NULL, 0), 0);
    char what[64];
    snprintf(what, sizeof what, "close code %d", bad_codes[_i]);
    expect_fail(&c, 1002, what);
    cli_close(&c);
    srv_stop(&s);
}
END_TEST

START_TEST(close_payload_rules)
{
    struct server s;
    srv_start(&s, ECHO_CONF);
    struct client c;

    /* empty payload: the reply is a close, empty or 1000 */
    wsc_open(&c, s.port);
    ck_assert_int_eq(wsc_send_close(&c, -1, NULL, 0), 0);
    int got = wsc_read_close(&c, 3000, NULL, NULL, 0);
    ck_assert_msg(got == 0 || got == 1000, "empty close answered with %d", got);
    ck_assert(cli_expect_closed(&c, 3000));
    cli_close(&c);

    /* a 125-byte close: code + 123 bytes of reason */
    wsc_open(&c, s.port);
    char reason[124];
    memset(reason, 'r', 123);
    reason[123] = '\0';
    ck_assert_int_eq(wsc_send_close(&c, 1000, reason, 123), 0);
    char back[128];
    ck_assert_int_eq(wsc_read_close(&c, 3000, NULL, back, sizeof back), 1000);
    ck_assert(cli_expect_closed(&c, 3000));
    cli_close(&c);

    /* one byte of payload */
    wsc_open(&c, s.port);
    ck_assert_int_eq(wsc_send(&c, WS_FIN | WS_OP_CLOSE, "\x03", 1), 0);
    expect_fail(&c, 1002, "1-byte close payload");
    cli_close(&c);

    /* reason not UTF-8 */
    wsc_open(&c, s.port);
    ck_assert_int_eq(wsc_send_close(&c, 1000, "ok\xff\xfe", 4), 0);
    expect_fail(&c, 1007, "close reason not UTF-8");
    cli_close(&c);

    /* whatever follows a close is ignored */
    wsc_open(&c, s.port);
    uint8_t *b = NULL;
    size_t n = 0, cap = 0;
    wsc_frame_append(&b, &n, &cap, WS_FIN | WS_OP_CLOSE, "\x03\xe8", 2);
    wsc_frame_append(&b, &n, &cap, WS_FIN | WS_OP_TEXT, "ignored", 7);
    wsc_frame_append(&b, &n, &cap, WS_FIN | WS_OP_PING, "ignored", 7);
    ck_assert_int_eq(cli_send(&c, b, n), 0);
    free(b);
    int skipped = 0;
    got = wsc_read_close(&c, 3000, &skipped, NULL, 0);
    ck_assert_int_eq(got, 1000);
    ck_assert_msg(skipped == 0, "%d frame(s) before the close reply", skipped);
    struct wsc_msg m;
    int r = wsc_recv(&c, &m, 3000);
    ck_assert_msg(r == 0, "frame (op %d) or no TCP close after the close reply", m.opcode);
    cli_close(&c);

    /* close in the middle of a fragmented message is answered normally */
    wsc_open(&c, s.port);
    wsc_send(&c, WS_OP_TEXT, "half", 4);
    wsc_send_close(&c, 1000, NULL, 0);
    ck_assert_int_eq(wsc_read_close(&c, 3000, &skipped, NULL, 0), 1000);
    ck_assert_int_eq(skipped, 0);
    ck_assert(cli_expect_closed(&c, 3000));
    cli_close(&c);
    srv_stop(&s);
}
END_TEST

/* ---- pings, pipelined handshake, idle ----------------------------------------------------- */

START_TEST(ping_pong)
{
    struct server s;
    srv_start(&s, ECHO_CONF);
    struct client c;
    wsc_open(&c, s.port);
    uint8_t p[125];
    it_random(p, sizeof p);
    size_t lens[] = { 125, 0, 1, 124 };
    for (size_t i = 0; i < 4; i++) {
        ck_assert_int_eq(wsc_send(&c, WS_FIN | WS_OP_PING, p, lens[i]), 0);
        struct wsc_msg m;
        ck_assert_int_eq(wsc_recv(&c, &m, 3000), 1);
        ck_assert_msg(m.opcode == WS_OP_PONG && m.len == lens[i]
                      && (lens[i] == 0 || memcmp(m.data, p, lens[i]) == 0),
                      "ping of %zu bytes: op %d, %zu bytes back", lens[i], m.opcode, m.len);
        wsc_msg_free(&m);
    }
    /* an unsolicited pong is ignored */
    ck_assert_int_eq(wsc_send(&c, WS_FIN | WS_OP_PONG, "u", 1), 0);
    wsc_echo_check(&c, WS_OP_TEXT, "after pong", 10);
    cli_close(&c);
    srv_stop(&s);
}
END_TEST

START_TEST(frames_with_handshake)
{
    struct server s;
    srv_start(&s, ECHO_CONF);
    struct client c;
    ck_assert_int_eq(cli_connect(&c, s.port), 0);
    uint8_t *b = NULL, *bin = it_make_binary(300, 5);
    size_t n = 0, cap = 0;
    wsc_frame_append(&b, &n, &cap, WS_FIN | WS_OP_TEXT, "one", 3);
    wsc_frame_append(&b, &n, &cap, WS_FIN | WS_OP_PING, "p", 1);
    wsc_frame_append(&b, &n, &cap, WS_OP_BIN, bin, 100);
    wsc_frame_append(&b, &n, &cap, WS_FIN | WS_OP_CONT, bin + 100, 200);
    int st = wsc_handshake(&c, "/echo", NULL, b, n);
    free(b);
    ck_assert_int_eq(st, 101);
    struct wsc_msg m;
    ck_assert_int_eq(wsc_recv(&c, &m, 3000), 1);
    ck_assert_msg(m.opcode == WS_OP_TEXT && m.len == 3 && memcmp(m.data, "one", 3) == 0,
                  "first frame op %d len %zu", m.opcode, m.len);
    wsc_msg_free(&m);
    ck_assert_int_eq(wsc_recv(&c, &m, 3000), 1);
    ck_assert_msg(m.opcode == WS_OP_PONG && m.len == 1 && m.data[0] == 'p', "second: op %d",
                  m.opcode);
    wsc_msg_free(&m);
    ck_assert_int_eq(wsc_recv(&c, &m, 3000), 1);
    ck_assert(m.opcode == WS_OP_BIN && m.fin && m.len == 300 && memcmp(m.data, bin, 300) == 0);
    wsc_msg_free(&m);
    free(bin);
    cli_close(&c);
    srv_stop(&s);
}
END_TEST

/* Drain ready frames: pongs to pings when ANSWER; counts pings; 0 once closed. */
static int pump(struct client *c, int answer, int *pings)
{
    for (;;) {
        struct wsc_msg m;
        int r = wsc_recv(c, &m, 0);
        if (r == 0)
            return 0;
        if (r < 0)
            return 1;
        if (m.opcode == WS_OP_PING) {
            (*pings)++;
            if (answer)
                wsc_send(c, WS_FIN | WS_OP_PONG, m.data, m.len);
        }
        wsc_msg_free(&m);
    }
}

START_TEST(idle_ping_and_drop)
{
    struct server s;
    srv_start(&s, "workers 1\nidle_timeout 2s");
    struct client a, b;
    wsc_open(&a, s.port);
    wsc_open(&b, s.port);
    int64_t t0 = it_now_ms(), b_closed = 0;
    int a_pings = 0, b_pings = 0, a_open = 1;
    while (it_now_ms() < t0 + 4500) {
        a_open = pump(&a, 1, &a_pings);
        ck_assert_msg(a_open, "client answering pings dropped after %lld ms",
                      (long long)(it_now_ms() - t0));
        if (!b_closed && !pump(&b, 0, &b_pings))
            b_closed = it_now_ms() - t0;
        it_sleep_ms(20);
    }
    ck_assert_msg(b_closed > 0, "silent client still connected after 4.5 s (idle_timeout 2s)");
    ck_assert_msg(b_closed >= 900, "silent client dropped after %lld ms", (long long)b_closed);
    ck_assert_msg(b_pings >= 1, "silent client was never pinged before the drop");
    ck_assert_msg(a_pings >= 1, "answering client was never pinged");
    wsc_echo_check(&a, WS_OP_TEXT, "still here", 10);
    cli_close(&a);
    cli_close(&b);
    srv_stop(&s);
}
END_TEST

Suite *echo_suite(void)
{
    Suite *s = suite_create("echo");
    TCase *tc = tcase_create("messages");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, echo_sizes, 0, (int)(sizeof sizes / sizeof sizes[0]));
    tcase_add_test(tc, pipelined_1000);
    tcase_add_test(tc, hundred_clients);
    tcase_add_test(tc, vanishing_client_mid_frame);
    tcase_add_test(tc, frames_with_handshake);
    tcase_add_test(tc, ping_pong);
    suite_add_tcase(s, tc);

    tc = tcase_create("protocol_errors");
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, protocol_error_1002, 0,
                        (int)(sizeof proto_cases / sizeof proto_cases[0]));
    tcase_add_test(tc, too_big_1009);
    suite_add_tcase(s, tc);

    tc = tcase_create("utf8");
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, invalid_utf8_1007, 0, (int)(sizeof bad_utf8 / sizeof bad_utf8[0]));
    tcase_add_loop_test(tc, utf8_fail_fast, 0, (int)(sizeof failfast / sizeof failfast[0]));
    tcase_add_test(tc, utf8_split_across_fragments);
    suite_add_tcase(s, tc);

    tc = tcase_create("close");
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, close_valid_code_echoed, 0,
                        (int)(sizeof good_codes / sizeof good_codes[0]));
    tcase_add_loop_test(tc, close_invalid_code_1002, 0,
                        (int)(sizeof bad_codes / sizeof bad_codes[0]));
    tcase_add_test(tc, close_payload_rules);
    suite_add_tcase(s, tc);

    tc = tcase_create("idle");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, idle_ping_and_drop);
    suite_add_tcase(s, tc);
    return s;
}

/*
 * proxy: real_ip_from and stats_allow against the real wsmaster, with this
 * test playing the proxy on 127.0.0.1: its X-Forwarded-For / X-Real-IP
 * lines name the clients (documentation addresses, never contacted).
 *
 * With 127.0.0.1 in real_ip_from, max_connections_per_ip counts each
 * forwarded client apart and not the proxy (nothing is counted at accept:
 * idle connections of the proxy get no 503), the 503 comes after the head,
 * a count is given back on close and moves with a keep-alive connection's
 * next client, and a handed-over WebSocket keeps its client across a
 * reload. /stats and /metrics answer only stats_allow clients (403
 * otherwise). Without real_ip_from the same headers change nothing.
 */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define A "203.0.113.1"
#define B "203.0.113.2"

/* Header lines naming client FOR (NULL: none) the way nginx does. */
static const char *xff(char *buf, size_t cap, const char *for_)
{
    if (for_ == NULL)
        return NULL;
    snprintf(buf, cap, "X-Forwarded-For: %s\r\n", for_);
    return buf;
}

/*
 * Connect and upgrade on /echo with EXTRA header lines. Returns the status;
 * C stays open on 101, is checked closed (after Retry-After) on 503.
 */
static int open_with(struct client *c, int port, const char *extra)
{
    ck_assert_msg(cli_connect(c, port) == 0, "connect: %s", strerror(errno));
    int st = wsc_handshake(c, "/echo", extra, NULL, 0);
    if (st == 101)
        return st;
    cli_close(c);
    return st;
}

static int open_for(struct client *c, int port, const char *for_)
{
    char h[256];
    return open_with(c, port, xff(h, sizeof h, for_));
}

/* Like open_for, retrying a 503 until TIMEOUT_MS (a count given back late). */
static int open_for_within(struct client *c, int port, const char *for_, int timeout_ms)
{
    int64_t end = it_now_ms() + timeout_ms;
    for (;;) {
        int st = open_for(c, port, for_);
        if (st != 503 || it_now_ms() >= end)
            return st;
        it_sleep_ms(20);
    }
}

/* The upgrade for FOR_ is refused with 503 and Retry-After after its head. */
static void expect_503_for(int port, const char *for_, const char *why)
{
    struct client c;
    struct httpc_resp r;
    char req[512], v[32];
    ck_assert_int_eq(cli_connect(&c, port), 0);
    snprintf(req, sizeof req, "GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
             "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n%s%s%s\r\n",
             for_ ? "X-Forwarded-For: " : "", for_ ? for_ : "", for_ ? "\r\n" : "");
    ck_assert_int_eq(cli_sendstr(&c, req), 0);
    int st = httpc_read_head(&c, &r, 3000);
    ck_assert_msg(st == 503, "%s: status %d, want 503", why, st);
    ck_assert_msg(httpc_header(&r, "Retry-After", v, sizeof v) != NULL && atoi(v) > 0,
                  "%s: 503 without Retry-After", why);
    ck_assert_msg(cli_expect_closed(&c, 3000), "%s: the refused connection stays open", why);
    cli_close(&c);
}

/* GET PATH with EXTRA header lines on a new connection: the status. */
static int get_status(int port, const char *path, const char *extra)
{
    char req[512];
    struct httpc_resp r;
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%s\r\n",
             path, extra ? extra : "");
    return httpc_get_status(port, req, &r);
}

static int get_for(int port, const char *path, const char *for_)
{
    char h[256];
    return get_status(port, path, xff(h, sizeof h, for_));
}

/* ---- max_connections_per_ip behind a trusted proxy ------------------------ */

START_TEST(forwarded_clients_count_apart)
{
    struct server s;
    srv_start(&s, "workers 2\nreal_ip_from 127.0.0.1/32\nmax_connections_per_ip 2");
    enum { IDLE = 5 };
    struct client idle[IDLE], a[2], b, n[2], x[2], extra;
    struct httpc_resp r;

    /* The proxy's own connections are not counted at accept: no 503 before a head. */
    for (int i = 0; i < IDLE; i++)
        ck_assert_int_eq(cli_connect(&idle[i], s.port), 0);
    ck_assert_msg(httpc_read_head(&idle[IDLE - 1], &r, 300) == -2,
                  "an idle connection of a trusted proxy was answered %d", r.status);

    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(open_for(&a[i], s.port, A), 101);
    expect_503_for(s.port, A, "third connection of " A);
    /* Its nearest hop is the proxy itself (trusted, skipped): still B. */
    ck_assert_int_eq(open_for(&b, s.port, B ", 127.0.0.1"), 101);
    /* No forwarding header: the proxy is the client, counted like any. */
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(open_for(&n[i], s.port, NULL), 101);
    expect_503_for(s.port, NULL, "third connection naming no client");
    /* X-Real-IP when there is no X-Forwarded-For. */
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(open_with(&x[i], s.port, "X-Real-IP: 192.0.2.5\r\n"), 101);
    ck_assert_int_eq(open_with(&extra, s.port, "X-Real-IP: 192.0.2.5\r\n"), 503);
    /* Two X-Forwarded-For lines are one list: the right end decides. */
    ck_assert_int_eq(open_with(&extra, s.port, "X-Forwarded-For: 192.0.2.99\r\n"
                               "X-Forwarded-For: " A "\r\n"), 503);
    ck_assert_int_eq(open_with(&extra, s.port, "X-Forwarded-For: " A "\r\n"
                               "X-Forwarded-For: 192.0.2.99\r\n"), 101);
    cli_close(&extra);

    for (int i = 0; i < 2; i++)
        wsc_echo_check(&a[i], WS_OP_TEXT, "still here", 10);
    ck_assert(it_file_count2(s.log, "client " A " over max_connections_per_ip", "503") >= 1);

    /* A closed connection gives its client's count back. */
    cli_close(&a[1]);
    ck_assert_int_eq(open_for_within(&a[1], s.port, A, 2000), 101);
    expect_503_for(s.port, A, "third connection of " A " after the reopen");

    for (int i = 0; i < IDLE; i++)
        cli_close(&idle[i]);
    for (int i = 0; i < 2; i++) {
        cli_close(&a[i]);
        cli_close(&n[i]);
        cli_close(&x[i]);
    }
    cli_close(&b);
    srv_stop(&s);
}
END_TEST

/* HEAD / for FOR_ on the open connection C: the status (keep-alive). */
static int head_on(struct client *c, const char *for_)
{
    char req[256];
    struct httpc_resp r;
    snprintf(req, sizeof req, "HEAD / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: %s\r\n\r\n", for_);
    ck_assert_int_eq(cli_sendstr(c, req), 0);
    return httpc_read_head(c, &r, 3000);
}

START_TEST(keepalive_moves_to_next_client)
{
    struct server s;
    srv_start(&s, "workers 1\nreal_ip_from 127.0.0.1/32\nmax_connections_per_ip 1");
    struct client k, c;
    ck_assert_int_eq(cli_connect(&k, s.port), 0);
    ck_assert_int_eq(head_on(&k, A), 200);
    ck_assert_int_eq(open_for(&c, s.port, A), 503);       /* K is A's one connection */
    ck_assert_int_eq(head_on(&k, A), 200);                /* the same client again */
    ck_assert_int_eq(head_on(&k, B), 200);                /* K now serves B */
    ck_assert_int_eq(open_for(&c, s.port, A), 101);
    cli_close(&c);
    ck_assert_int_eq(open_for(&c, s.port, B), 503);
    cli_close(&k);
    ck_assert_int_eq(open_for_within(&c, s.port, B, 2000), 101);
    cli_close(&c);
    srv_stop(&s);
}
END_TEST

/* A WebSocket handed over at reload keeps counting for its forwarded client. */
START_TEST(reload_keeps_forwarded_client)
{
    struct server s;
    const char *conf = "workers 2\nreal_ip_from 127.0.0.1/32\nmax_connections_per_ip 1";
    srv_start(&s, conf);
    ck_assert(srv_wait_worker_count(&s, 2, 3000));
    pid_t old[SRV_MAX_WORKERS];
    int nold = srv_workers(&s, old, SRV_MAX_WORKERS);
    struct client a, c;
    ck_assert_int_eq(open_for(&a, s.port, A), 101);
    wsc_echo_check(&a, WS_OP_TEXT, "before", 6);

    srv_write_config(&s, conf);
    ck_assert_int_eq(kill(s.pid, SIGHUP), 0);
    int gone = WAIT_FOR(!it_proc_alive(old[0]) && (nold < 2 || !it_proc_alive(old[1])),
                        s.shutdown_ms + 1000);
    ck_assert_msg(gone, "old workers alive after worker_shutdown_timeout + 1 s");
    ck_assert(WAIT_FOR(it_file_count(s.log, "handed to new workers") >= 1, 2000));
    wsc_echo_check(&a, WS_OP_TEXT, "after", 5);           /* the same connection */
    expect_503_for(s.port, A, A " after the reload");
    ck_assert_int_eq(open_for(&c, s.port, B), 101);
    cli_close(&c);
    cli_close(&a);
    ck_assert_int_eq(open_for_within(&a, s.port, A, 2000), 101);
    cli_close(&a);
    srv_stop(&s);
}
END_TEST

/* ---- stats_allow ------------------------------------------------------------ */

START_TEST(stats_allow_default_is_this_host)
{
    struct server s;
    srv_start(&s, "workers 1\nreal_ip_from 127.0.0.1/32");
    ck_assert_int_eq(get_for(s.port, "/stats", "198.51.100.9"), 403);
    ck_assert_int_eq(get_for(s.port, "/metrics", "198.51.100.9"), 403);
    ck_assert_int_eq(get_for(s.port, "/metrics", "2001:db8::9"), 403);
    ck_assert_int_eq(get_for(s.port, "/stats", NULL), 200);
    ck_assert_int_eq(get_for(s.port, "/stats", "127.0.0.1"), 200);
    ck_assert_int_eq(get_for(s.port, "/metrics", "::1"), 200);
    /* Other paths are not stats_allow's business. */
    ck_assert_int_eq(get_for(s.port, "/", "198.51.100.9"), 200);
    ck_assert(it_file_count2(s.log, "/stats refused to 198.51.100.9", "stats_allow") >= 1);
    srv_stop(&s);
}
END_TEST

START_TEST(stats_allow_list)
{
    struct server s;
    srv_start(&s, "workers 1\nreal_ip_from 127.0.0.1/32\nstats_allow 198.51.100.0/24");
    ck_assert_int_eq(get_for(s.port, "/stats", "198.51.100.9"), 200);
    ck_assert_int_eq(get_for(s.port, "/metrics", "198.51.100.200"), 200);
    ck_assert_int_eq(get_for(s.port, "/stats", "198.51.101.1"), 403);
    ck_assert_int_eq(get_for(s.port, "/metrics", NULL), 403);  /* 127.0.0.1 not listed */
    srv_stop(&s);

    srv_start(&s, "workers 1\nstats_allow none");
    ck_assert_int_eq(get_for(s.port, "/stats", NULL), 403);
    ck_assert_int_eq(get_for(s.port, "/metrics", NULL), 403);
    srv_stop(&s);
}
END_TEST

/* ---- an untrusted peer's headers ------------------------------------------- */

START_TEST(untrusted_headers_ignored)
{
    struct server s;
    srv_start(&s, "workers 2\nmax_connections_per_ip 2");
    struct client a, b, c;
    /* A connection of the start-up probe may still be counted for a moment. */
    ck_assert_int_eq(open_for_within(&a, s.port, A, 2000), 101);
    ck_assert_int_eq(open_for_within(&b, s.port, B, 2000), 101);
    /* Every one of them is 127.0.0.1, whatever it claims: the third is refused. */
    ck_assert_int_eq(open_for(&c, s.port, "192.0.2.77"), 503);
    ck_assert_int_eq(open_with(&c, s.port, "X-Real-IP: 192.0.2.78\r\n"), 503);
    cli_close(&b);
    /* Claiming to be this host from elsewhere gains nothing either. */
    ck_assert_int_eq(open_for_within(&b, s.port, "127.0.0.1", 2000), 101);
    cli_close(&a);
    cli_close(&b);
    srv_stop(&s);

    /* stats_allow sees the TCP peer: a forged outside address changes nothing. */
    srv_start(&s, "workers 1");
    ck_assert_int_eq(get_for(s.port, "/stats", "198.51.100.9"), 200);
    ck_assert_int_eq(get_status(s.port, "/metrics", "X-Real-IP: 198.51.100.9\r\n"), 200);
    srv_stop(&s);
    /* A proxy list that leaves out the peer trusts nothing it says. */
    srv_start(&s, "workers 1\nreal_ip_from 10.0.0.0/8 ::1/128");
    ck_assert_int_eq(get_for(s.port, "/stats", "198.51.100.9"), 200);
    srv_stop(&s);
}
END_TEST

Suite *proxy_suite(void)
{
    Suite *s = suite_create("proxy");
    TCase *tc = tcase_create("real_ip_from");
    tcase_add_test(tc, forwarded_clients_count_apart);
    tcase_add_test(tc, keepalive_moves_to_next_client);
    tcase_add_test(tc, reload_keeps_forwarded_client);
    tcase_set_timeout(tc, 30);
    suite_add_tcase(s, tc);

    tc = tcase_create("stats_allow");
    tcase_add_test(tc, stats_allow_default_is_this_host);
    tcase_add_test(tc, stats_allow_list);
    tcase_add_test(tc, untrusted_headers_ignored);
    tcase_set_timeout(tc, 30);
    suite_add_tcase(s, tc);
    return s;
}

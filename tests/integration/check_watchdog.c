/*
 * watchdog: a worker that stops running its loop (SIGSTOP stands in for a
 * hang) is killed by the master after worker_watchdog and replaced, while
 * the members of the other worker keep chatting without waiting for it;
 * "off" leaves a stopped worker alone. The real wsmaster, two workers.
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static int next_text(struct client *c, const char *needle, int timeout_ms)
{
    int64_t end = it_now_ms() + timeout_ms;
    for (;;) {
        int left = (int)(end - it_now_ms());
        struct wsc_msg m;
        if (left <= 0 || wsc_recv(c, &m, left) != 1)
            return 0;
        int hit = m.opcode == WS_OP_TEXT && strstr((char *)m.data, needle) != NULL;
        wsc_msg_free(&m);
        if (hit)
            return 1;
    }
}

static void member(struct client *c, int port)
{
    ck_assert_int_eq(cli_connect(c, port), 0);
    ck_assert_int_eq(wsc_handshake(c, "/chat/wd", NULL, NULL, 0), 101);
    ck_assert(next_text(c, "\"type\":\"history_end\"", 5000));
}

static int has_pid(const pid_t *pids, int n, pid_t pid)
{
    for (int i = 0; i < n; i++)
        if (pids[i] == pid)
            return 1;
    return 0;
}

START_TEST(stalled_worker_replaced)
{
    struct server s;
    /* One connection per worker: the two members land on different workers. */
    srv_start(&s, "workers 2\nmax_connections 1\nworker_watchdog 2s\nrate_limit 0\n");
    snprintf(s.alert_ok, sizeof s.alert_ok, "worker_watchdog");
    ck_assert_int_eq(srv_wait_worker_count(&s, 2, 5000), 1);
    struct client a, b;
    member(&a, s.port);
    member(&b, s.port);
    pid_t w[4];
    ck_assert_int_eq(srv_workers(&s, w, 4), 2);
    ck_assert_int_eq(kill(w[0], SIGSTOP), 0);
    int64_t stopped = it_now_ms();

    /* Whoever is on the live worker keeps publishing and hearing itself at once. */
    struct client *live = NULL, *frozen = NULL;
    const char *msg = "{\"type\":\"message\",\"text\":\"tick\"}";
    ck_assert_int_eq(wsc_send(&a, WS_FIN | WS_OP_TEXT, msg, strlen(msg)), 0);
    ck_assert_int_eq(wsc_send(&b, WS_FIN | WS_OP_TEXT, msg, strlen(msg)), 0);
    int got_a = next_text(&a, "\"text\":\"tick\"", 1000);
    int got_b = next_text(&b, "\"text\":\"tick\"", got_a ? 300 : 1000);
    ck_assert_msg(got_a + got_b >= 1, "nobody was served while one worker was stopped");
    live = got_a ? &a : &b;
    frozen = got_a ? &b : &a;
    for (int k = 0; k < 5; k++) {
        int64_t t0 = it_now_ms();
        ck_assert_int_eq(wsc_send(live, WS_FIN | WS_OP_TEXT, msg, strlen(msg)), 0);
        ck_assert_msg(next_text(live, "\"text\":\"tick\"", 3000), "publish %d not answered", k);
        ck_assert_int_le(it_now_ms() - t0, 1000);
        it_sleep_ms(200);
    }
    /* The stopped worker is gone within the watchdog (2 s) and a check's second. */
    int64_t end = stopped + 6000;
    pid_t now[4];
    int n = 0;
    while (it_now_ms() < end) {
        n = srv_workers(&s, now, 4);
        if (n == 2 && !has_pid(now, n, w[0]))
            break;
        it_sleep_ms(50);
    }
    ck_assert_msg(n == 2 && !has_pid(now, n, w[0]), "stopped worker %d not replaced",
                  (int)w[0]);
    ck_assert_int_ge(it_now_ms() - stopped, 1500);      /* not before its time */
    ck_assert_int_ge(it_file_count(s.log, "worker_watchdog"), 1);
    /* Its member lost the connection, and can come back. */
    ck_assert_int_eq(cli_expect_closed(frozen, 3000), 1);
    cli_close(frozen);
    struct client c;
    member(&c, s.port);
    cli_close(&c);
    cli_close(live);
    srv_stop(&s);
}
END_TEST

START_TEST(watchdog_off)
{
    struct server s;
    srv_start(&s, "workers 2\nworker_watchdog off\n");
    ck_assert_int_eq(srv_wait_worker_count(&s, 2, 5000), 1);
    pid_t w[4];
    ck_assert_int_eq(srv_workers(&s, w, 4), 2);
    ck_assert_int_eq(kill(w[0], SIGSTOP), 0);
    it_sleep_ms(2500);
    ck_assert(it_proc_alive(w[0]));
    ck_assert_int_eq(it_file_count(s.log, "worker_watchdog"), 0);
    ck_assert_int_eq(kill(w[0], SIGCONT), 0);
    srv_stop(&s);
}
END_TEST

Suite *watchdog_suite(void)
{
    Suite *s = suite_create("watchdog");
    TCase *tc = tcase_create("watchdog");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, stalled_worker_replaced);
    tcase_add_test(tc, watchdog_off);
    suite_add_tcase(s, tc);
    return s;
}

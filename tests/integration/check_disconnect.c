/*
 * disconnect: POST /api/disconnect against the real wsmaster with two
 * workers. Members of one token user on both workers (checked through
 * /proc) are all closed with 1008 "disconnected" and counted in the answer;
 * other users and guests stay and keep receiving; a request pipelined
 * behind the call is answered after it; a stopped worker delays the answer
 * only until the wait runs out, which the answer says; bad calls get
 * 400/405/401.
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "jwt.h"

#define TOKEN_KEY "a-disconnect-test-key-of-more-than-32-bytes"
#define APIKEY    "api-key-for-the-disconnect-tests"
#define AUTH      "Authorization: Bearer " APIKEY "\r\n"

static char key_path[64], api_path[64];

static void write_secret(char *path, const char *tmpl, const char *text)
{
    strcpy(path, tmpl);
    int fd = mkstemp(path);     /* mode 0600 */
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

/* MAXCONN: max_connections of each worker (a full worker leaves new
 * connections to the other, which is how members get onto both). */
static void start(struct server *s, int maxconn)
{
    write_secret(key_path, "/tmp/wschat-dc-key-XXXXXX", TOKEN_KEY "\n");
    write_secret(api_path, "/tmp/wschat-dc-api-XXXXXX", APIKEY "\n");
    char extra[512];
    snprintf(extra, sizeof extra, "workers 2\nmax_connections %d\nauth optional\n"
             "auth_secret_file %s\napi_key_file %s\nrate_limit 0\nworker_watchdog off\n",
             maxconn, key_path, api_path);
    srv_start(s, extra);
    ck_assert(srv_wait_worker_count(s, 2, 5000));
}

static void stop(struct server *s)
{
    srv_stop(s);
    unlink(key_path);
    unlink(api_path);
}

/* A member of USER (NULL: a guest) in room dc, welcomed and past its history. */
static void join(struct client *c, int port, const char *user)
{
    char path[2048] = "/chat/dc";
    if (user != NULL) {
        char claims[256], tok[1024];
        snprintf(claims, sizeof claims, "{\"sub\":\"%s\",\"exp\":%ld}", user,
                 (long)time(NULL) + 3600);
        static const char hdr[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
        ck_assert_int_gt(jwt_sign_hs256(tok, sizeof tok, hdr, sizeof hdr - 1, claims,
                                        strlen(claims), (const uint8_t *)TOKEN_KEY,
                                        strlen(TOKEN_KEY)), 0);
        snprintf(path, sizeof path, "/chat/dc?token=%s", tok);
    }
    ck_assert_int_eq(cli_connect(c, port), 0);
    ck_assert_int_eq(wsc_handshake(c, path, NULL, NULL, 0), 101);
    int64_t end = it_now_ms() + 5000;
    for (;;) {
        struct wsc_msg m;
        ck_assert(wsc_recv(c, &m, (int)(end - it_now_ms())) == 1);
        int done = strstr((char *)m.data, "\"type\":\"history_end\"") != NULL;
        wsc_msg_free(&m);
        if (done)
            return;
    }
}

static void disconnect_req(char *req, size_t cap, const char *body, const char *auth)
{
    snprintf(req, cap, "POST /api/disconnect HTTP/1.1\r\nHost: x\r\n%s"
             "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s", auth,
             strlen(body), body);
}

/* A message from FROM arrives at C (its own echo included). */
static void hears(struct client *c, const char *text)
{
    int64_t end = it_now_ms() + 5000;
    for (;;) {
        struct wsc_msg m;
        ck_assert_msg(wsc_recv(c, &m, (int)(end - it_now_ms())) == 1, "no \"%s\"", text);
        int hit = strstr((char *)m.data, text) != NULL;
        wsc_msg_free(&m);
        if (hit)
            return;
    }
}

START_TEST(closes_a_user_on_every_worker)
{
    struct server s;
    start(&s, 4);
    pid_t wk[2];
    ck_assert_int_eq(srv_workers(&s, wk, 2), 2);
    /* Five of alice's members: four at most fit on one worker. */
    struct client alice[5];
    int na = 5, on[2] = { 0, 0 };
    for (int i = 0; i < na; i++) {
        join(&alice[i], s.port, "alice");
        pid_t o = srv_conn_owner(&alice[i], s.port, wk, 2);
        ck_assert_int_ne(o, -1);
        on[o == wk[1]]++;
    }
    ck_assert_msg(on[0] > 0 && on[1] > 0, "alice's members all on one worker");
    struct client bob, guest;
    join(&bob, s.port, "bob");
    join(&guest, s.port, NULL);

    /* The call, with a second request pipelined behind it in the same write. */
    struct client api;
    ck_assert_int_eq(cli_connect(&api, s.port), 0);
    static char req[4096], out[8192];
    disconnect_req(req, sizeof req, "{\"user\":\"alice\"}", AUTH);
    strcat(req, "GET /api/rooms HTTP/1.1\r\nHost: x\r\n" AUTH "\r\n");
    ck_assert_int_eq(cli_sendstr(&api, req), 0);
    ck_assert_int_eq(httpc_read_response(&api, out, sizeof out, 5000), 200);
    char want[32];
    snprintf(want, sizeof want, "{\"closed\":%d}", na);
    ck_assert_str_eq(out, want);
    ck_assert_int_eq(httpc_read_response(&api, out, sizeof out, 5000), 200);
    ck_assert_msg(strstr(out, "\"rooms\":[") != NULL, "%s", out);

    for (int i = 0; i < na; i++) {
        char reason[128];
        ck_assert_int_eq(wsc_read_close(&alice[i], 5000, NULL, reason, sizeof reason), 1008);
        ck_assert_str_eq(reason, "disconnected");
        cli_close(&alice[i]);
    }
    /* Everyone else is still there and hears the room. */
    const char *msg = "{\"type\":\"message\",\"text\":\"still here\"}";
    ck_assert_int_eq(wsc_send(&guest, WS_FIN | WS_OP_TEXT, msg, strlen(msg)), 0);
    hears(&bob, "still here");
    hears(&guest, "still here");

    /* Nobody left to close: 0, on the same keep-alive connection. */
    disconnect_req(req, sizeof req, "{\"user\":\"alice\"}", AUTH);
    ck_assert_int_eq(cli_sendstr(&api, req), 0);
    ck_assert_int_eq(httpc_read_response(&api, out, sizeof out, 5000), 200);
    ck_assert_str_eq(out, "{\"closed\":0}");
    /* A guest has no user: the empty name matches nobody and is refused. */
    disconnect_req(req, sizeof req, "{\"user\":\"\"}", AUTH);
    ck_assert_int_eq(cli_sendstr(&api, req), 0);
    ck_assert_int_eq(httpc_read_response(&api, out, sizeof out, 5000), 400);
    cli_close(&api);
    cli_close(&bob);
    cli_close(&guest);
    stop(&s);
}
END_TEST

START_TEST(refuses_bad_calls)
{
    struct server s;
    start(&s, 100);
    static char req[4096], out[4096];
    static const char *const bad[] = {
        "not json", "{}", "{\"user\":5}", "{\"user\":null}",
        "{\"user\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}", /* 65 */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct client c;
        ck_assert_int_eq(cli_connect(&c, s.port), 0);
        disconnect_req(req, sizeof req, bad[i], AUTH);
        ck_assert_int_eq(cli_sendstr(&c, req), 0);
        ck_assert_msg(httpc_read_response(&c, out, sizeof out, 5000) == 400, "%s", bad[i]);
        cli_close(&c);
    }
    struct client c;
    ck_assert_int_eq(cli_connect(&c, s.port), 0);
    disconnect_req(req, sizeof req, "{\"user\":\"alice\"}", "");
    ck_assert_int_eq(cli_sendstr(&c, req), 0);
    ck_assert_int_eq(httpc_read_response(&c, out, sizeof out, 5000), 401);
    cli_close(&c);
    ck_assert_int_eq(cli_connect(&c, s.port), 0);
    ck_assert_int_eq(cli_sendstr(&c, "GET /api/disconnect HTTP/1.1\r\nHost: x\r\n" AUTH "\r\n"), 0);
    ck_assert_int_eq(httpc_read_response(&c, out, sizeof out, 5000), 405);
    cli_close(&c);
    stop(&s);
}
END_TEST

START_TEST(a_stopped_worker_delays_only_until_the_wait_ends)
{
    struct server s;
    start(&s, 2);
    pid_t wk[2];
    ck_assert_int_eq(srv_workers(&s, wk, 2), 2);
    /* Three of carol's members: one worker is full with two, the other has one. */
    struct client carol[3];
    int n = 3, on[2] = { 0, 0 };
    for (int i = 0; i < n; i++) {
        join(&carol[i], s.port, "carol");
        on[srv_conn_owner(&carol[i], s.port, wk, 2) == wk[1]]++;
    }
    ck_assert_msg(on[0] > 0 && on[1] > 0, "carol's members all on one worker");
    int full = on[1] == 2, open = !full;
    /* Stop the full one: the API call can only go to the other. */
    ck_assert_int_eq(kill(wk[full], SIGSTOP), 0);
    struct client api;
    ck_assert_int_eq(cli_connect(&api, s.port), 0);
    static char req[4096], out[4096];
    disconnect_req(req, sizeof req, "{\"user\":\"carol\"}", AUTH);
    int64_t t0 = it_now_ms();
    ck_assert_int_eq(cli_sendstr(&api, req), 0);
    ck_assert_int_eq(httpc_read_response(&api, out, sizeof out, 6000), 200);
    int64_t waited = it_now_ms() - t0;
    char want[64];
    ck_assert_int_eq(srv_conn_owner(&api, s.port, wk, 2), wk[open]);
    snprintf(want, sizeof want, "{\"closed\":%d,\"complete\":false}", on[open]);
    ck_assert_str_eq(out, want);
    ck_assert_msg(waited >= 1500 && waited < 4000, "answered after %lld ms", (long long)waited);
    /* The stopped worker, once it runs again, still closes its own: the
     * request stays posted after the answer. */
    ck_assert_int_eq(kill(wk[full], SIGCONT), 0);
    for (int i = 0; i < n; i++) {
        char reason[128];
        ck_assert_int_eq(wsc_read_close(&carol[i], 5000, NULL, reason, sizeof reason), 1008);
        ck_assert_str_eq(reason, "disconnected");
        cli_close(&carol[i]);
    }
    cli_close(&api);
    stop(&s);
}
END_TEST

Suite *disconnect_suite(void)
{
    Suite *s = suite_create("disconnect");
    TCase *tc = tcase_create("api");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, closes_a_user_on_every_worker);
    tcase_add_test(tc, refuses_bad_calls);
    tcase_add_test(tc, a_stopped_worker_delays_only_until_the_wait_ends);
    suite_add_tcase(s, tc);
    return s;
}

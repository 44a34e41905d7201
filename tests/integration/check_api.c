/*
 * api: the backend API against the real wsmaster: GET /api/rooms, GET
 * /api/history and POST /api/publish with a bearer key from api_key_file,
 * 401 without it or with another, 403 from outside api_allow, 404 when no
 * key is configured, 400 for bad parameters; history in id order, paged
 * by since, with the very objects the WebSocket sends; publish reaches the
 * room like a member's message, with bodies split across writes, on a
 * keep-alive connection, and 400/405/411/413 for what it cannot take.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define APIKEY "api-key-for-the-integration-tests"

static char key_path[64];

static void start(struct server *s, const char *more)
{
    strcpy(key_path, "/tmp/wschat-api-key-XXXXXX");
    int fd = mkstemp(key_path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, APIKEY "\n", strlen(APIKEY) + 1), (ssize_t)strlen(APIKEY) + 1);
    close(fd);
    char extra[512];
    snprintf(extra, sizeof extra, "api_key_file %s\nrate_limit 0\n%s", key_path,
             more != NULL ? more : "");
    srv_start(s, extra);
}

static void stop(struct server *s)
{
    srv_stop(s);
    unlink(key_path);
}

#define AUTH "Authorization: Bearer " APIKEY "\r\n"

/*
 * Send REQ on C in two writes split at SPLIT (0: one write) and read one
 * response; status, body into OUT.
 */
static int exchange(struct client *c, const char *req, size_t split, char *out, size_t cap)
{
    size_t n = strlen(req);
    if (split > 0 && split < n) {
        ck_assert_int_eq(cli_send(c, req, split), 0);
        it_sleep_ms(50);
        ck_assert_int_eq(cli_send(c, req + split, n - split), 0);
    } else {
        ck_assert_int_eq(cli_send(c, req, n), 0);
    }
    return httpc_read_response(c, out, cap, 5000);
}

/* GET TARGET with AUTH (a header line or "") on a new connection; status, body into OUT. */
static int get(int port, const char *target, const char *auth, char *out, size_t cap)
{
    struct client c;
    ck_assert_int_eq(cli_connect(&c, port), 0);
    char req[1024];
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\n%sConnection: close\r\n\r\n",
             target, auth);
    int st = exchange(&c, req, 0, out, cap);
    cli_close(&c);
    return st;
}

static void post_req(char *req, size_t cap, const char *body, const char *extra)
{
    snprintf(req, cap, "POST /api/publish HTTP/1.1\r\nHost: x\r\n" AUTH
             "Content-Type: application/json\r\nContent-Length: %zu\r\n%s\r\n%s",
             strlen(body), extra, body);
}

static void say(struct client *c, const char *text)
{
    char buf[256];
    int n = snprintf(buf, sizeof buf, "{\"type\":\"message\",\"text\":\"%s\"}", text);
    ck_assert_int_eq(wsc_send(c, WS_FIN | WS_OP_TEXT, buf, (size_t)n), 0);
    int64_t end = it_now_ms() + 5000;
    for (;;) {      /* its own echo: published */
        struct wsc_msg m;
        ck_assert(wsc_recv(c, &m, (int)(end - it_now_ms())) == 1);
        int hit = strstr((char *)m.data, text) != NULL;
        wsc_msg_free(&m);
        if (hit)
            return;
    }
}

START_TEST(rooms_and_history)
{
    struct server s;
    start(&s, NULL);
    struct client a;
    ck_assert_int_eq(cli_connect(&a, s.port), 0);
    ck_assert_int_eq(wsc_handshake(&a, "/chat/api1?nick=ann", NULL, NULL, 0), 101);
    char m[16];
    for (int i = 0; i < 5; i++) {
        snprintf(m, sizeof m, "m%d", i);
        say(&a, m);
    }
    static char body[65536];
    ck_assert_int_eq(get(s.port, "/api/rooms", AUTH, body, sizeof body), 200);
    ck_assert_msg(strstr(body, "{\"rooms\":[") == body &&
                  strstr(body, "{\"room\":\"api1\",\"online\":1,\"last_id\":"), "%s", body);

    ck_assert_int_eq(get(s.port, "/api/history?room=api1&limit=2", AUTH, body, sizeof body), 200);
    ck_assert_msg(strstr(body, "{\"room\":\"api1\",\"messages\":[{\"type\":\"message\",\"id\":") ==
                  body, "%s", body);
    char *m0 = strstr(body, "\"text\":\"m0\""), *m1 = strstr(body, "\"text\":\"m1\"");
    ck_assert_msg(m0 && m1 && m0 < m1 && !strstr(body, "\"m2\""), "%s", body);
    ck_assert_msg(strstr(body, "\"nick\":\"ann\"") && strstr(body, "],\"gap\":false}"), "%s", body);
    /* Page on from m1's id. */
    char *last = NULL;
    for (char *p = strstr(body, "\"id\":"); p != NULL; p = strstr(p + 1, "\"id\":"))
        last = p;
    ck_assert_ptr_nonnull(last);
    unsigned long long id1 = strtoull(last + 5, NULL, 10);
    char target[128];
    snprintf(target, sizeof target, "/api/history?room=api1&since=%llu", id1);
    ck_assert_int_eq(get(s.port, target, AUTH, body, sizeof body), 200);
    ck_assert_msg(!strstr(body, "\"m1\"") && strstr(body, "\"m2\"") && strstr(body, "\"m4\""),
                  "%s", body);
    /* An unknown room has nothing, and no gap. */
    ck_assert_int_eq(get(s.port, "/api/history?room=nobody", AUTH, body, sizeof body), 200);
    ck_assert_str_eq(body, "{\"room\":\"nobody\",\"messages\":[],\"gap\":false}");
    /* Bad parameters. */
    ck_assert_int_eq(get(s.port, "/api/history", AUTH, body, sizeof body), 400);
    ck_assert_int_eq(get(s.port, "/api/history?room=a%20b", AUTH, body, sizeof body), 400);
    ck_assert_int_eq(get(s.port, "/api/history?room=api1&limit=0", AUTH, body, sizeof body), 400);
    ck_assert_int_eq(get(s.port, "/api/history?room=api1&since=x", AUTH, body, sizeof body), 400);
    ck_assert_int_eq(get(s.port, "/api/nothing", AUTH, body, sizeof body), 404);
    cli_close(&a);
    stop(&s);
}
END_TEST

START_TEST(key_and_address_checks)
{
    struct server s;
    start(&s, NULL);
    static char body[4096];
    ck_assert_int_eq(get(s.port, "/api/rooms", "", body, sizeof body), 401);
    ck_assert_int_eq(get(s.port, "/api/rooms", "Authorization: Bearer wrong-key-wrong-key-wrong\r\n",
                         body, sizeof body), 401);
    ck_assert_int_eq(get(s.port, "/api/rooms", "Authorization: Bearer " APIKEY "x\r\n", body,
                         sizeof body), 401);
    ck_assert_int_eq(get(s.port, "/api/rooms", "Authorization: Basic " APIKEY "\r\n", body,
                         sizeof body), 401);
    ck_assert_int_eq(get(s.port, "/api/rooms", AUTH, body, sizeof body), 200);
    stop(&s);

    start(&s, "api_allow 10.0.0.0/8\n");
    ck_assert_int_eq(get(s.port, "/api/rooms", AUTH, body, sizeof body), 403);
    stop(&s);

    srv_start(&s, NULL);        /* no api_key_file: no API */
    ck_assert_int_eq(get(s.port, "/api/rooms", AUTH, body, sizeof body), 404);
    srv_stop(&s);
}
END_TEST

START_TEST(publish)
{
    struct server s;
    start(&s, "max_api_body 1k\n");
    struct client m;
    ck_assert_int_eq(cli_connect(&m, s.port), 0);
    ck_assert_int_eq(wsc_handshake(&m, "/chat/pub1", NULL, NULL, 0), 101);
    struct client api;
    ck_assert_int_eq(cli_connect(&api, s.port), 0);
    static char req[8192], out[8192];
    /* Keep-alive: several calls on one connection, one of them split inside its body. */
    post_req(req, sizeof req, "{\"room\":\"pub1\",\"text\":\"from the backend\"}", "");
    ck_assert_int_eq(exchange(&api, req, strlen(req) - 10, out, sizeof out), 200);
    ck_assert_msg(strncmp(out, "{\"id\":", 6) == 0, "%s", out);
    unsigned long long id = strtoull(out + 6, NULL, 10);
    ck_assert_uint_gt(id, 0);
    post_req(req, sizeof req, "{\"room\":\"pub1\",\"text\":\"second\",\"nick\":\"bot\"}", "");
    ck_assert_int_eq(exchange(&api, req, 0, out, sizeof out), 200);
    unsigned long long id2 = strtoull(out + 6, NULL, 10);
    ck_assert_uint_gt(id2, id);
    /* The member sees both, as any message, with user "api". */
    char want[128];
    snprintf(want, sizeof want, "\"id\":%llu,", id);
    int64_t end = it_now_ms() + 5000;
    int seen = 0;
    while (seen < 2 && it_now_ms() < end) {
        struct wsc_msg msg;
        if (wsc_recv(&m, &msg, 1000) != 1)
            break;
        const char *t = (const char *)msg.data;
        if (strstr(t, "\"text\":\"from the backend\"")) {
            ck_assert_msg(strstr(t, want) && strstr(t, "\"nick\":\"system\"") &&
                          strstr(t, "\"user\":\"api\""), "%s", t);
            seen++;
        } else if (strstr(t, "\"text\":\"second\"")) {
            ck_assert_msg(seen == 1 && strstr(t, "\"nick\":\"bot\""), "%s", t);
            seen++;
        }
        wsc_msg_free(&msg);
    }
    ck_assert_int_eq(seen, 2);
    snprintf(req, sizeof req, "GET /api/history?room=pub1 HTTP/1.1\r\nHost: x\r\n" AUTH "\r\n");
    ck_assert_int_eq(exchange(&api, req, 0, out, sizeof out), 200);
    ck_assert_msg(strstr(out, "from the backend") && strstr(out, "second"), "%s", out);
    cli_close(&api);

    /* Refusals: each on a fresh connection (an error closes it). */
    static const char *const bad[] = {
        "not json", "{\"room\":\"pub1\"}", "{\"room\":\"bad room\",\"text\":\"x\"}",
        "{\"room\":\"pub1\",\"text\":\"\"}", "{\"room\":\"pub1\",\"text\":5}",
        "{\"room\":\"pub1\",\"text\":\"x\",\"nick\":\" \"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(cli_connect(&api, s.port), 0);
        post_req(req, sizeof req, bad[i], "");
        ck_assert_msg(exchange(&api, req, 0, out, sizeof out) == 400, "%s", bad[i]);
        cli_close(&api);
    }
    char big[2048];
    memset(big, 'a', sizeof big);
    big[sizeof big - 1] = '\0';
    ck_assert_int_eq(cli_connect(&api, s.port), 0);
    post_req(req, sizeof req, big, "");
    ck_assert_int_eq(exchange(&api, req, 200, out, sizeof out), 413);    /* over max_api_body */
    cli_close(&api);
    ck_assert_int_eq(cli_connect(&api, s.port), 0);
    snprintf(req, sizeof req, "POST /api/publish HTTP/1.1\r\nHost: x\r\n" AUTH
             "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
    ck_assert_int_eq(exchange(&api, req, 0, out, sizeof out), 411);
    cli_close(&api);
    ck_assert_int_eq(cli_connect(&api, s.port), 0);
    snprintf(req, sizeof req, "GET /api/publish HTTP/1.1\r\nHost: x\r\n" AUTH "\r\n");
    ck_assert_int_eq(exchange(&api, req, 0, out, sizeof out), 405);
    cli_close(&api);
    /* Without the key the body is never looked at. */
    ck_assert_int_eq(cli_connect(&api, s.port), 0);
    snprintf(req, sizeof req, "POST /api/publish HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}");
    ck_assert_int_eq(exchange(&api, req, 0, out, sizeof out), 401);
    cli_close(&api);
    cli_close(&m);
    stop(&s);
}
END_TEST

Suite *api_suite(void)
{
    Suite *s = suite_create("api");
    TCase *tc = tcase_create("read");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, rooms_and_history);
    tcase_add_test(tc, key_and_address_checks);
    tcase_add_test(tc, publish);
    suite_add_tcase(s, tc);
    return s;
}

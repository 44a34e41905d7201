/*
 * auth: connection tokens against the real wsmaster (auth, auth_secret_file,
 * auth_leeway). Tokens are minted here with the server's own signer over a
 * key file the test writes (mode 0600), and refused ones are checked at the
 * HTTP level: 401 with WWW-Authenticate and no upgrade for a missing (when
 * required), malformed, forged, alg-none or expired token; 403 for a room
 * the token does not list. An accepted member is named by its token, its
 * events carry "user", its nick is locked, and the connection is closed
 * with 1008 "token expired" once exp + auth_leeway has passed. Guests of
 * "optional" carry no "user".
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "jwt.h"

#define KEY "an-integration-test-key-of-more-than-32-bytes"

static char key_path[64];

static void write_key(void)
{
    strcpy(key_path, "/tmp/wschat-auth-key-XXXXXX");
    int fd = mkstemp(key_path);     /* mode 0600 */
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, KEY "\n", strlen(KEY) + 1), (ssize_t)strlen(KEY) + 1);
    close(fd);
}

static void start(struct server *s, const char *mode, const char *more)
{
    write_key();
    char extra[1024];
    snprintf(extra, sizeof extra, "auth %s\nauth_secret_file %s\n%s", mode, key_path,
             more != NULL ? more : "");
    srv_start(s, extra);
}

static void stop(struct server *s)
{
    srv_stop(s);
    unlink(key_path);
}

/* A token with CLAIMS (JSON) under HEADER, signed with KEY_BYTES. */
static void mint(char *out, size_t cap, const char *header, const char *claims,
                 const char *key_bytes)
{
    ssize_t n = jwt_sign_hs256(out, cap, header, strlen(header), claims, strlen(claims),
                               (const uint8_t *)key_bytes, strlen(key_bytes));
    ck_assert_int_gt(n, 0);
}

#define HS256 "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"

static void claims_for(char *out, size_t cap, const char *sub, const char *name, long exp_in,
                       const char *rooms)
{
    long exp = (long)time(NULL) + exp_in;
    int n = snprintf(out, cap, "{\"sub\":\"%s\",\"exp\":%ld", sub, exp);
    if (name != NULL)
        n += snprintf(out + n, cap - (size_t)n, ",\"name\":\"%s\"", name);
    if (rooms != NULL)
        n += snprintf(out + n, cap - (size_t)n, ",\"rooms\":%s", rooms);
    snprintf(out + n, cap - (size_t)n, "}");
}

/* Upgrade status for PATH (a query included); the head is read whole. */
static int status_of(int port, const char *path, char *www, size_t wcap)
{
    struct client c;
    ck_assert_int_eq(cli_connect(&c, port), 0);
    char req[6144];
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
             "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
             "Sec-WebSocket-Version: 13\r\n\r\n", path);
    ck_assert_int_eq(cli_sendstr(&c, req), 0);
    struct httpc_resp r;
    ck_assert_int_gt(httpc_read_head(&c, &r, 5000), 0);
    if (www != NULL && httpc_header(&r, "WWW-Authenticate", www, wcap) == NULL)
        www[0] = '\0';
    cli_close(&c);
    return r.status;
}

/* Next text frame holding NEEDLE (others skipped), within 5 s; its text in OUT. */
static void expect_text(struct client *c, const char *needle, char *out, size_t cap)
{
    int64_t end = it_now_ms() + 5000;
    for (;;) {
        struct wsc_msg m;
        int left = (int)(end - it_now_ms());
        ck_assert_msg(left > 0 && wsc_recv(c, &m, left) == 1, "no frame with %s", needle);
        int hit = m.opcode == WS_OP_TEXT && strstr((char *)m.data, needle) != NULL;
        if (hit && out != NULL)
            snprintf(out, cap, "%s", (char *)m.data);
        wsc_msg_free(&m);
        if (hit)
            return;
    }
}

static void join(struct client *c, int port, const char *path, char *welcome, size_t cap)
{
    ck_assert_int_eq(cli_connect(c, port), 0);
    ck_assert_int_eq(wsc_handshake(c, path, NULL, NULL, 0), 101);
    expect_text(c, "\"type\":\"welcome\"", welcome, cap);
    expect_text(c, "\"type\":\"history_end\"", NULL, 0);
}

START_TEST(required_refuses_bad_tokens)
{
    struct server s;
    start(&s, "required", NULL);
    char tok[2048], claims[512], path[2300], www[128];

    ck_assert_int_eq(status_of(s.port, "/chat", www, sizeof www), 401);
    ck_assert_str_eq(www, "Bearer");
    ck_assert_int_eq(status_of(s.port, "/chat?token=", NULL, 0), 401);
    ck_assert_int_eq(status_of(s.port, "/chat?token=not.a.token", NULL, 0), 401);

    claims_for(claims, sizeof claims, "u1", NULL, 600, NULL);
    mint(tok, sizeof tok, HS256, claims, "another-key-that-is-also-32-bytes-long!!");
    snprintf(path, sizeof path, "/chat?token=%s", tok);
    ck_assert_int_eq(status_of(s.port, path, NULL, 0), 401);       /* forged */

    mint(tok, sizeof tok, "{\"alg\":\"none\"}", claims, KEY);
    snprintf(path, sizeof path, "/chat?token=%s", tok);
    ck_assert_int_eq(status_of(s.port, path, NULL, 0), 401);       /* alg none */

    claims_for(claims, sizeof claims, "u1", NULL, -31, NULL);       /* past the 30 s leeway */
    mint(tok, sizeof tok, HS256, claims, KEY);
    snprintf(path, sizeof path, "/chat?token=%s", tok);
    ck_assert_int_eq(status_of(s.port, path, NULL, 0), 401);
    claims_for(claims, sizeof claims, "u1", NULL, -20, NULL);       /* within it */
    mint(tok, sizeof tok, HS256, claims, KEY);
    snprintf(path, sizeof path, "/chat?token=%s", tok);
    ck_assert_int_eq(status_of(s.port, path, NULL, 0), 101);

    claims_for(claims, sizeof claims, "u1", NULL, 600, "[\"alpha\",\"beta\"]");
    mint(tok, sizeof tok, HS256, claims, KEY);
    snprintf(path, sizeof path, "/chat/gamma?token=%s", tok);
    ck_assert_int_eq(status_of(s.port, path, NULL, 0), 403);
    snprintf(path, sizeof path, "/chat?token=%s", tok);            /* the lobby is a room too */
    ck_assert_int_eq(status_of(s.port, path, NULL, 0), 403);
    snprintf(path, sizeof path, "/chat/beta?token=%s", tok);
    ck_assert_int_eq(status_of(s.port, path, NULL, 0), 101);
    /* A flipped signature character. */
    size_t n = strlen(tok);
    tok[n - 2] = tok[n - 2] == 'A' ? 'B' : 'A';
    snprintf(path, sizeof path, "/chat/beta?token=%s", tok);
    ck_assert_int_eq(status_of(s.port, path, NULL, 0), 401);
    /* /echo knows nothing of tokens. */
    ck_assert_int_eq(status_of(s.port, "/echo", NULL, 0), 101);
    stop(&s);
}
END_TEST

START_TEST(token_names_the_member)
{
    struct server s;
    start(&s, "required", NULL);
    char tok[2048], claims[512], path[2300], text[2048];
    claims_for(claims, sizeof claims, "user-42", "Alice", 600, NULL);
    mint(tok, sizeof tok, HS256, claims, KEY);
    /* ?nick= does not override the token's name. */
    snprintf(path, sizeof path, "/chat/room1?nick=Mallory&token=%s", tok);
    struct client a, b;
    join(&a, s.port, path, text, sizeof text);
    ck_assert_msg(strstr(text, "\"nick\":\"Alice\"") && strstr(text, "\"user\":\"user-42\""),
                  "welcome: %s", text);
    claims_for(claims, sizeof claims, "user-43", NULL, 600, NULL);  /* name defaults to sub */
    mint(tok, sizeof tok, HS256, claims, KEY);
    snprintf(path, sizeof path, "/chat/room1?token=%s", tok);
    join(&b, s.port, path, text, sizeof text);
    ck_assert_msg(strstr(text, "\"nick\":\"user-43\""), "welcome: %s", text);

    const char *msg = "{\"type\":\"message\",\"text\":\"hello\"}";
    ck_assert_int_eq(wsc_send(&a, WS_FIN | WS_OP_TEXT, msg, strlen(msg)), 0);
    expect_text(&b, "\"text\":\"hello\"", text, sizeof text);
    ck_assert_msg(strstr(text, "\"user\":\"user-42\"") && strstr(text, "\"nick\":\"Alice\""),
                  "message: %s", text);

    const char *nick = "{\"type\":\"nick\",\"nick\":\"Eve\"}";
    ck_assert_int_eq(wsc_send(&a, WS_FIN | WS_OP_TEXT, nick, strlen(nick)), 0);
    expect_text(&a, "\"code\":\"nick_locked\"", NULL, 0);
    /* A later message still carries the token's name. */
    ck_assert_int_eq(wsc_send(&a, WS_FIN | WS_OP_TEXT, msg, strlen(msg)), 0);
    expect_text(&b, "\"text\":\"hello\"", text, sizeof text);
    ck_assert_msg(strstr(text, "\"nick\":\"Alice\""), "message: %s", text);
    cli_close(&a);
    cli_close(&b);
    stop(&s);
}
END_TEST

/*
 * README's "Deploying" token example, run as it is printed (python3, the
 * standard library only) in a folder with secrets/auth.key: its token joins
 * the room it names, as the user it names, and no other room.
 */
START_TEST(readme_token_example)
{
    const char *root = getenv("WSCHAT_ROOT");
    char path[4096];
    snprintf(path, sizeof path, "%s/README.md", root != NULL ? root : ".");
    char *readme = it_file_read(path, NULL);
    ck_assert_ptr_nonnull(readme);
    const char *mark = strstr(readme, "<!-- token-example -->\n```python\n");
    ck_assert_msg(mark != NULL, "no token example in %s", path);
    const char *code = strchr(strchr(mark, '\n') + 1, '\n') + 1;
    const char *end = strstr(code, "\n```\n");
    ck_assert_ptr_nonnull(end);

    char dir[] = "/tmp/wschat-readme-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char file[128];
    snprintf(file, sizeof file, "%s/mint.py", dir);
    FILE *f = fopen(file, "w");
    ck_assert_ptr_nonnull(f);
    fwrite(code, 1, (size_t)(end - code) + 1, f);
    fclose(f);
    snprintf(file, sizeof file, "%s/secrets", dir);
    ck_assert_int_eq(mkdir(file, 0700), 0);
    snprintf(file, sizeof file, "%s/secrets/auth.key", dir);
    f = fopen(file, "w");
    ck_assert_ptr_nonnull(f);
    fputs(KEY "\n", f);
    fclose(f);
    chmod(file, 0600);

    char cmd[256], tok[2048] = "";
    snprintf(cmd, sizeof cmd, "cd %s && python3 mint.py", dir);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    ck_assert_ptr_nonnull(fgets(tok, sizeof tok, p));
    ck_assert_int_eq(pclose(p), 0);
    tok[strcspn(tok, "\n")] = '\0';

    struct server s;
    start(&s, "required", NULL);
    char url[2300], text[2048];
    snprintf(url, sizeof url, "/chat/lobby?token=%s", tok);
    struct client a;
    join(&a, s.port, url, text, sizeof text);
    ck_assert_msg(strstr(text, "\"user\":\"alice\"") && strstr(text, "\"nick\":\"Alice\""),
                  "welcome: %s", text);
    cli_close(&a);
    snprintf(url, sizeof url, "/chat/elsewhere?token=%s", tok);
    ck_assert_int_eq(status_of(s.port, url, NULL, 0), 403);
    stop(&s);
    unlink(file);
    snprintf(file, sizeof file, "%s/secrets", dir);
    rmdir(file);
    snprintf(file, sizeof file, "%s/mint.py", dir);
    unlink(file);
    rmdir(dir);
    free(readme);
}
END_TEST

START_TEST(optional_guests_and_bad_tokens)
{
    struct server s;
    start(&s, "optional", NULL);
    char tok[2048], claims[512], path[2300], text[2048];
    struct client g;
    join(&g, s.port, "/chat?nick=guest1", text, sizeof text);
    ck_assert_msg(strstr(text, "\"nick\":\"guest1\"") && !strstr(text, "\"user\""),
                  "guest welcome: %s", text);
    const char *msg = "{\"type\":\"message\",\"text\":\"hi\"}";
    ck_assert_int_eq(wsc_send(&g, WS_FIN | WS_OP_TEXT, msg, strlen(msg)), 0);
    expect_text(&g, "\"text\":\"hi\"", text, sizeof text);
    ck_assert_msg(!strstr(text, "\"user\""), "guest message: %s", text);
    /* A token that does not verify is refused, not taken for a guest. */
    ck_assert_int_eq(status_of(s.port, "/chat?token=x.y.z", NULL, 0), 401);
    claims_for(claims, sizeof claims, "u7", "Bob", 600, NULL);
    mint(tok, sizeof tok, HS256, claims, KEY);
    snprintf(path, sizeof path, "/chat?token=%s", tok);
    struct client u;
    join(&u, s.port, path, text, sizeof text);
    ck_assert_msg(strstr(text, "\"user\":\"u7\""), "welcome: %s", text);
    cli_close(&g);
    cli_close(&u);
    stop(&s);
}
END_TEST

START_TEST(expiry_closes_with_1008)
{
    struct server s;
    start(&s, "required", "auth_leeway 0s\n");
    char tok[2048], claims[512], path[2300], reason[128];
    claims_for(claims, sizeof claims, "short-lived", NULL, 2, NULL);
    mint(tok, sizeof tok, HS256, claims, KEY);
    snprintf(path, sizeof path, "/chat?token=%s", tok);
    struct client c;
    join(&c, s.port, path, NULL, 0);
    int64_t t0 = it_now_ms();
    int code = wsc_read_close(&c, 6000, NULL, reason, sizeof reason);
    ck_assert_int_eq(code, 1008);
    ck_assert_str_eq(reason, "token expired");
    /* Not before exp (2 s after minting, at second granularity). */
    ck_assert_int_ge(it_now_ms() - t0, 500);
    cli_close(&c);
    stop(&s);
}
END_TEST

START_TEST(off_ignores_tokens)
{
    struct server s;
    srv_start(&s, NULL);
    char text[2048];
    struct client c;
    join(&c, s.port, "/chat?nick=plain&token=whatever", text, sizeof text);
    ck_assert_msg(strstr(text, "\"nick\":\"plain\"") && !strstr(text, "\"user\""), "%s", text);
    cli_close(&c);
    srv_stop(&s);
}
END_TEST

Suite *auth_suite(void)
{
    Suite *s = suite_create("auth");
    TCase *tc = tcase_create("tokens");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, required_refuses_bad_tokens);
    tcase_add_test(tc, token_names_the_member);
    tcase_add_test(tc, readme_token_example);
    tcase_add_test(tc, optional_guests_and_bad_tokens);
    tcase_add_test(tc, expiry_closes_with_1008);
    tcase_add_test(tc, off_ignores_tokens);
    suite_add_tcase(s, tc);
    return s;
}

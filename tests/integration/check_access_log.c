/*
 * access_log against the real wsmaster: one line per HTTP request (a
 * static file, /stats, a 404, a 401 and a malformed head before any
 * upgrade) and one per ended WebSocket session (a chat member named by its
 * token's sub, a guest, an echo session closed with 4001, one dropped
 * without a close: 1006), with exact byte counts where the client can know
 * them, no query string (tokens) ever written, the client a trusted proxy
 * names as the address, and every line one clean line whatever the client
 * sent. Then rotation: SIGUSR1 to the master
 * makes every worker write to a fresh file at the path (checked through
 * /proc/PID/fd), and a path that cannot be reopened keeps the old file. A
 * reload moves idle sessions to the new generation, which logs them once,
 * with their whole duration and bytes, to the new generation's path.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
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
    strcpy(key_path, "/tmp/wschat-alog-key-XXXXXX");
    int fd = mkstemp(key_path);     /* mode 0600 */
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, KEY "\n", strlen(KEY) + 1), (ssize_t)strlen(KEY) + 1);
    close(fd);
}

/* A token for SUB (a JSON string body, escapes allowed), valid for 10 minutes. */
static void mint(char *out, size_t cap, const char *sub)
{
    static const char hdr[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    char claims[256];
    snprintf(claims, sizeof claims, "{\"sub\":\"%s\",\"exp\":%ld}", sub, (long)time(NULL) + 600);
    ssize_t n = jwt_sign_hs256(out, cap, hdr, strlen(hdr), claims, strlen(claims),
                               (const uint8_t *)KEY, strlen(KEY));
    ck_assert_int_gt(n, 0);
}

static void start(struct server *s, const char *more)
{
    write_key();
    char extra[1024];
    snprintf(extra, sizeof extra, "access_log access.log\nauth optional\nauth_secret_file %s\n%s",
             key_path, more != NULL ? more : "");
    srv_start(s, extra);
}

static void stop(struct server *s)
{
    srv_stop(s);
    unlink(key_path);
}

static void path_in(const struct server *s, const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", s->dir, name);
}

/* ---- reading the log ---- */

struct aline {
    char addr[64], user[512], time[64], method[128], path[2048];
    unsigned status;
    unsigned long long in, out, ms;
};

/* Parse one line (without its '\n'); 1 when it has the documented shape. */
static int parse_line(const char *l, struct aline *a)
{
    int end = 0;
    memset(a, 0, sizeof *a);
    if (sscanf(l, "%63s - %511s [%63[^]]] \"%127s %2047[^\"]\" %u %llu %llu %llu%n", a->addr,
               a->user, a->time, a->method, a->path, &a->status, &a->in, &a->out, &a->ms,
               &end) != 9 || l[end] != '\0')
        return 0;
    /* [03/Dec/2026:14:30:00 +0000] */
    int d, y, hh, mm, ss, off;
    char mon[4], sign;
    return sscanf(a->time, "%2d/%3s/%4d:%2d:%2d:%2d %c%4d", &d, mon, &y, &hh, &mm, &ss, &sign,
                  &off) == 8 && strlen(a->time) == 26 && (sign == '+' || sign == '-');
}

/*
 * The lines of PATH, each checked for shape and cleanliness (printable
 * ASCII, two quotes); up to MAX into OUT. Returns how many.
 */
static int read_lines(const char *path, struct aline *out, int max)
{
    size_t len = 0;
    char *text = it_file_read(path, &len);
    if (text == NULL)
        return 0;
    int n = 0;
    char *p = text;
    while (p < text + len) {
        char *nl = memchr(p, '\n', (size_t)(text + len - p));
        ck_assert_msg(nl != NULL, "a line without its newline in %s", path);
        *nl = '\0';
        int quotes = 0;
        for (char *q = p; q < nl; q++) {
            ck_assert_msg((unsigned char)*q >= 0x20 && (unsigned char)*q < 0x7f,
                          "byte 0x%02x in line \"%s\"", (unsigned char)*q, p);
            quotes += *q == '"';
        }
        ck_assert_msg(quotes == 2, "%d quotes in \"%s\"", quotes, p);
        struct aline a;
        ck_assert_msg(parse_line(p, &a), "malformed line \"%s\"", p);
        if (n < max)
            out[n] = a;
        n++;
        p = nl + 1;
    }
    free(text);
    return n;
}

static int count_lines(const char *path)
{
    static struct aline tmp[1];
    return read_lines(path, tmp, 0);
}

/* The only line of PATH with METHOD and PATH_FIELD; fails unless exactly one. */
static struct aline find_one(const char *file, const char *method, const char *path)
{
    static struct aline all[256];
    int n = read_lines(file, all, 256), hits = 0;
    struct aline hit;
    memset(&hit, 0, sizeof hit);
    for (int i = 0; i < n && i < 256; i++)
        if (strcmp(all[i].method, method) == 0 && strcmp(all[i].path, path) == 0) {
            hit = all[i];
            hits++;
        }
    ck_assert_msg(hits == 1, "%d lines for \"%s %s\" in %s", hits, method, path, file);
    return hit;
}

static int has_line(const char *file, const char *method, const char *path)
{
    static struct aline all[256];
    int n = read_lines(file, all, 256);
    for (int i = 0; i < n && i < 256; i++)
        if (strcmp(all[i].method, method) == 0 && strcmp(all[i].path, path) == 0)
            return 1;
    return 0;
}

/* ---- clients ---- */

/* REQ on a fresh connection (it asks to close), the whole answer read: its status and bytes. */
static int http_exchange(int port, const char *req, size_t *got)
{
    struct client c;
    ck_assert_int_eq(cli_connect(&c, port), 0);
    ck_assert_int_eq(cli_sendstr(&c, req), 0);
    int64_t end = it_now_ms() + 5000;
    size_t total = 0;
    for (;;) {
        ssize_t n = cli_fill(&c, (int)(end - it_now_ms()));
        ck_assert_msg(n >= 0, "no end of the answer to %s", req);
        if (n == 0)
            break;
        total += (size_t)n;
    }
    int status = -1;
    if (c.len >= 12 && memcmp(c.rx, "HTTP/1.1 ", 9) == 0)
        status = atoi((const char *)c.rx + 9);
    cli_close(&c);
    *got = total;
    return status;
}

/* The upgrade for PATH by hand, so that both heads' sizes are known. */
static void upgrade(struct client *c, int port, const char *path, size_t *req_len,
                    size_t *head_len)
{
    char req[4096];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n", path);
    ck_assert(n > 0 && (size_t)n < sizeof req);
    ck_assert_int_eq(cli_connect(c, port), 0);
    ck_assert_int_eq(cli_sendstr(c, req), 0);
    struct httpc_resp r;
    ck_assert_int_eq(httpc_read_head(c, &r, 5000), 101);
    *req_len = (size_t)n;
    *head_len = r.head_len;
}

/* Send one masked frame; its size on the wire. */
static size_t send_frame(struct client *c, int bits, const void *p, size_t len)
{
    size_t n;
    uint8_t *f = wsc_frame_build(bits, p, len, &n);
    ck_assert_int_eq(cli_send(c, f, n), 0);
    free(f);
    return n;
}

/* Frames until one holding NEEDLE (5 s); adds every frame's wire size to *bytes. */
static void expect_text(struct client *c, const char *needle, size_t *bytes)
{
    int64_t end = it_now_ms() + 5000;
    for (;;) {
        struct wsc_msg m;
        int left = (int)(end - it_now_ms());
        ck_assert_msg(left > 0 && wsc_recv(c, &m, left) == 1, "no frame with %s", needle);
        if (bytes != NULL)
            *bytes += 2 + m.len + (m.len >= 126 ? (m.len > 65535 ? 8 : 2) : 0);
        int hit = m.opcode == WS_OP_TEXT && strstr((char *)m.data, needle) != NULL;
        wsc_msg_free(&m);
        if (hit)
            return;
    }
}

/* A chat member of PATH, past its history. */
static void join(struct client *c, int port, const char *path)
{
    ck_assert_int_eq(cli_connect(c, port), 0);
    ck_assert_int_eq(wsc_handshake(c, path, NULL, NULL, 0), 101);
    expect_text(c, "\"type\":\"history_end\"", NULL);
}

/* Close with CODE and wait for the server's reply and its FIN. */
static void close_with(struct client *c, int code)
{
    ck_assert_int_eq(wsc_send_close(c, code, NULL, 0), 0);
    ck_assert_int_eq(wsc_read_close(c, 5000, NULL, NULL, 0), code);
    ck_assert(cli_expect_closed(c, 3000));
    cli_close(c);
}

/* ---- tests ---- */

#define GET(path) "GET " path " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"

START_TEST(http_lines)
{
    struct server s;
    start(&s, NULL);
    char log[PATH_MAX + 16];
    path_in(&s, "access.log", log, sizeof log);
    ck_assert(it_file_exists(log));
    struct stat st;
    ck_assert_int_eq(stat(log, &st), 0);
    ck_assert_int_eq(st.st_mode & 0600, 0600);     /* 0640, less the umask */
    ck_assert_int_eq(st.st_mode & 0037, 0);

    static const char get[] = "GET /index.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    static const char stats[] = "GET /stats?secret=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    static const char missing[] = "GET /no/such/file.txt HTTP/1.1\r\nHost: x\r\n"
        "Connection: close\r\n\r\n";
    static const char bad_token[] = "GET /chat/r1?token=not.a.token HTTP/1.1\r\nHost: x\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n";
    static const char garbage[] = "BLAH\x01 / HTTP/1.1\r\n\r\n";
    static const char hostile[] = "GET /x\"y\\z%0a HTTP/1.1\r\nHost: x\r\n"
        "Connection: close\r\n\r\n";
    size_t got_get, got_stats, got_404, got_401, got_400, got_hostile;
    ck_assert_int_eq(http_exchange(s.port, get, &got_get), 200);
    ck_assert_int_eq(http_exchange(s.port, stats, &got_stats), 200);
    ck_assert_int_eq(http_exchange(s.port, missing, &got_404), 404);
    ck_assert_int_eq(http_exchange(s.port, bad_token, &got_401), 401);
    ck_assert_int_eq(http_exchange(s.port, garbage, &got_400), 400);
    ck_assert_int_eq(http_exchange(s.port, hostile, &got_hostile), 404);

    ck_assert(WAIT_FOR(count_lines(log) >= 6, 3000));
    struct aline a = find_one(log, "GET", "/index.html");
    ck_assert_str_eq(a.addr, "127.0.0.1");
    ck_assert_str_eq(a.user, "-");
    ck_assert_uint_eq(a.status, 200);
    ck_assert_uint_eq(a.in, sizeof get - 1);
    ck_assert_uint_eq(a.out, got_get);
    ck_assert_uint_lt(a.ms, 5000);

    a = find_one(log, "GET", "/stats");         /* the query is never written */
    ck_assert_uint_eq(a.status, 200);
    ck_assert_uint_eq(a.in, sizeof stats - 1);
    ck_assert_uint_eq(a.out, got_stats);

    a = find_one(log, "GET", "/no/such/file.txt");
    ck_assert_uint_eq(a.status, 404);
    ck_assert_uint_eq(a.in, sizeof missing - 1);
    ck_assert_uint_eq(a.out, got_404);

    a = find_one(log, "GET", "/chat/r1");       /* refused before the upgrade */
    ck_assert_uint_eq(a.status, 401);
    ck_assert_uint_eq(a.out, got_401);

    a = find_one(log, "-", "-");                /* no request line to name */
    ck_assert_uint_eq(a.status, 400);
    ck_assert_uint_eq(a.in, sizeof garbage - 1);
    ck_assert_uint_eq(a.out, got_400);

    a = find_one(log, "GET", "/x\\x22y\\x5cz%0a");     /* quote and backslash escaped */
    ck_assert_uint_eq(a.status, 404);
    ck_assert_uint_eq(a.out, got_hostile);
    char *text = it_file_read(log, NULL);
    ck_assert_ptr_null(strstr(text, "secret"));
    ck_assert_ptr_null(strstr(text, "not.a.token"));
    free(text);
    stop(&s);
}
END_TEST

START_TEST(session_lines)
{
    struct server s;
    start(&s, NULL);
    char log[PATH_MAX + 16], tok[1024], path[1200];
    path_in(&s, "access.log", log, sizeof log);

    /* A member named by its token (a sub a client could use to forge a line). */
    mint(tok, sizeof tok, "alice\\\" 200 1 1 1 x");
    snprintf(path, sizeof path, "/chat/room1?token=%s", tok);
    struct client member, guest, echo, dropped;
    join(&member, s.port, path);
    join(&guest, s.port, "/chat?nick=g");
    close_with(&member, 1000);
    close_with(&guest, 1001);

    /* Echo, with every byte counted. */
    size_t req_len, head_len, in, out;
    upgrade(&echo, s.port, "/echo", &req_len, &head_len);
    in = req_len + send_frame(&echo, WS_FIN | WS_OP_TEXT, "hello", 5);
    out = head_len;
    expect_text(&echo, "hello", &out);
    in += send_frame(&echo, WS_FIN | WS_OP_CLOSE, "\x0f\xa1", 2);     /* 4001 */
    ck_assert_int_eq(wsc_read_close(&echo, 5000, NULL, NULL, 0), 4001);
    out += 4;
    ck_assert(cli_expect_closed(&echo, 3000));
    cli_close(&echo);

    ck_assert(WAIT_FOR(count_lines(log) >= 3, 3000));
    struct aline a = find_one(log, "WS", "/chat/room1");
    ck_assert_str_eq(a.user, "alice\\x22\\x20200\\x201\\x201\\x201\\x20x");
    ck_assert_uint_eq(a.status, 1000);
    ck_assert_uint_gt(a.in, strlen(path));
    ck_assert_uint_gt(a.out, 100);
    a = find_one(log, "WS", "/chat/lobby");
    ck_assert_str_eq(a.user, "-");
    ck_assert_uint_eq(a.status, 1001);
    a = find_one(log, "WS", "/echo");
    ck_assert_uint_eq(a.status, 4001);
    ck_assert_uint_eq(a.in, in);
    ck_assert_uint_eq(a.out, out);

    /* Gone without a close frame: 1006. */
    wsc_open(&dropped, s.port);
    wsc_echo_check(&dropped, WS_OP_TEXT, "x", 1);
    cli_abort(&dropped);
    ck_assert(WAIT_FOR(count_lines(log) >= 4, 3000));
    struct aline all[8];
    int n = read_lines(log, all, 8), drops = 0;
    for (int i = 0; i < n && i < 8; i++)
        drops += strcmp(all[i].path, "/echo") == 0 && all[i].status == 1006;
    ck_assert_int_eq(drops, 1);
    ck_assert_int_eq(n, 4);
    char *text = it_file_read(log, NULL);
    ck_assert_ptr_null(strstr(text, tok));
    free(text);
    stop(&s);
}
END_TEST

/* Behind a trusted proxy the line names the client its headers give, for requests and sessions. */
START_TEST(forwarded_client)
{
    struct server s;
    start(&s, "real_ip_from 127.0.0.1/32");
    char log[PATH_MAX + 16];
    path_in(&s, "access.log", log, sizeof log);
    size_t got;
    ck_assert_int_eq(http_exchange(s.port, "GET /fwd HTTP/1.1\r\nHost: x\r\n"
                                   "X-Forwarded-For: 198.51.100.7, 127.0.0.1\r\n"
                                   "Connection: close\r\n\r\n", &got), 404);
    struct client c;
    ck_assert_int_eq(cli_connect(&c, s.port), 0);
    ck_assert_int_eq(wsc_handshake(&c, "/echo", "X-Real-IP: 2001:db8::9\r\n", NULL, 0), 101);
    wsc_echo_check(&c, WS_OP_TEXT, "hi", 2);
    close_with(&c, 1000);
    ck_assert(WAIT_FOR(count_lines(log) >= 2, 3000));
    ck_assert_str_eq(find_one(log, "GET", "/fwd").addr, "198.51.100.7");
    ck_assert_str_eq(find_one(log, "WS", "/echo").addr, "2001:db8::9");
    stop(&s);
}
END_TEST

/* 1 when PID holds an fd on WANT and none on NOT. */
static int fds_on(pid_t pid, const char *want, const char *not)
{
    char dir[64], link[PATH_MAX + 64], target[PATH_MAX + 64];
    snprintf(dir, sizeof dir, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    int have = 0, bad = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        snprintf(link, sizeof link, "%s/%s", dir, e->d_name);
        ssize_t n = readlink(link, target, sizeof target - 1);
        if (n <= 0)
            continue;
        target[n] = '\0';
        have |= strcmp(target, want) == 0;
        bad |= strcmp(target, not) == 0;
    }
    closedir(d);
    return have && !bad;
}

static int workers_on(const struct server *s, const char *want, const char *not)
{
    pid_t w[SRV_MAX_WORKERS];
    int n = srv_workers(s, w, SRV_MAX_WORKERS);
    for (int i = 0; i < n; i++)
        if (!fds_on(w[i], want, not))
            return 0;
    return n > 0;
}

START_TEST(sigusr1_reopens)
{
    struct server s;
    start(&s, "workers 2");
    ck_assert(srv_wait_worker_count(&s, 2, 3000));
    char log[PATH_MAX + 16], moved[PATH_MAX + 16];
    path_in(&s, "access.log", log, sizeof log);
    path_in(&s, "access.log.1", moved, sizeof moved);
    ck_assert(WAIT_FOR(workers_on(&s, log, moved), 3000));
    size_t got;
    ck_assert_int_eq(http_exchange(s.port, GET("/before"), &got), 404);
    ck_assert(WAIT_FOR(count_lines(log) == 1, 3000));

    ck_assert_int_eq(rename(log, moved), 0);
    ck_assert(workers_on(&s, moved, log));     /* still writing the renamed file */
    ck_assert_int_eq(kill(s.pid, SIGUSR1), 0);
    ck_assert_msg(WAIT_FOR(workers_on(&s, log, moved), 3000),
                  "a worker still writes %s after SIGUSR1", moved);
    for (int i = 0; i < 6; i++)
        ck_assert_int_eq(http_exchange(s.port, GET("/after"), &got), 404);
    ck_assert(WAIT_FOR(count_lines(log) == 6, 3000));
    ck_assert_int_eq(count_lines(moved), 1);
    ck_assert(has_line(moved, "GET", "/before") && !has_line(log, "GET", "/before"));

    /* A path that cannot be reopened: logged, and the file in use stays in use. */
    char moved2[PATH_MAX + 16];
    path_in(&s, "access.log.2", moved2, sizeof moved2);
    ck_assert_int_eq(rename(log, moved2), 0);
    ck_assert_int_eq(mkdir(log, 0700), 0);
    ck_assert_int_eq(kill(s.pid, SIGUSR1), 0);
    ck_assert_msg(WAIT_FOR(it_file_count(s.log, "reopening access_log") >= 2, 3000),
                  "no error logged for the failed reopen");
    ck_assert(it_file_count(s.log, "[error]") >= 2);
    ck_assert(workers_on(&s, moved2, log));
    ck_assert_int_eq(http_exchange(s.port, GET("/kept"), &got), 404);
    ck_assert(WAIT_FOR(count_lines(moved2) == 7, 3000));
    ck_assert(has_line(moved2, "GET", "/kept"));
    rmdir(log);
    stop(&s);
}
END_TEST

START_TEST(reload_logs_moved_sessions_once)
{
    struct server s;
    start(&s, "workers 2");
    ck_assert(srv_wait_worker_count(&s, 2, 3000));
    char log[PATH_MAX + 16], log2[PATH_MAX + 16], tok[1024], path[1200];
    path_in(&s, "access.log", log, sizeof log);
    path_in(&s, "access2.log", log2, sizeof log2);

    size_t req_len, head_len, in, out;
    struct client echo, member;
    upgrade(&echo, s.port, "/echo", &req_len, &head_len);
    in = req_len + send_frame(&echo, WS_FIN | WS_OP_TEXT, "before", 6);
    out = head_len;
    expect_text(&echo, "before", &out);
    mint(tok, sizeof tok, "bob");
    snprintf(path, sizeof path, "/chat/moving?token=%s", tok);
    join(&member, s.port, path);
    int64_t t0 = it_now_ms();
    it_sleep_ms(500);       /* a stretch the old workers served, for the duration */

    char extra[1024];
    snprintf(extra, sizeof extra, "access_log access2.log\nauth optional\nauth_secret_file %s\n"
             "workers 2", key_path);
    pid_t old[SRV_MAX_WORKERS];
    int nold = srv_workers(&s, old, SRV_MAX_WORKERS);
    srv_write_config(&s, extra);
    ck_assert_int_eq(kill(s.pid, SIGHUP), 0);
    ck_assert(WAIT_FOR(it_file_count(s.log, "handed to new workers") >= nold, s.shutdown_ms + 2000));
    int64_t moved_at = it_now_ms();
    it_sleep_ms(300);

    /* The same connections, now on new workers. */
    in += send_frame(&echo, WS_FIN | WS_OP_TEXT, "after", 5);
    expect_text(&echo, "after", &out);
    in += send_frame(&echo, WS_FIN | WS_OP_CLOSE, "\x03\xe8", 2);     /* 1000 */
    ck_assert_int_eq(wsc_read_close(&echo, 5000, NULL, NULL, 0), 1000);
    out += 4;
    ck_assert(cli_expect_closed(&echo, 3000));
    cli_close(&echo);
    close_with(&member, 1000);

    ck_assert(WAIT_FOR(count_lines(log2) >= 2, 3000));
    struct aline a = find_one(log2, "WS", "/echo");
    ck_assert_uint_eq(a.status, 1000);
    ck_assert_uint_eq(a.in, in);
    ck_assert_uint_eq(a.out, out);
    /* The session's whole life: begun before t0, ended after the hand-over. */
    ck_assert_uint_ge(a.ms + 2, (unsigned long long)(moved_at - t0));
    a = find_one(log2, "WS", "/chat/moving");
    ck_assert_str_eq(a.user, "bob");
    ck_assert_uint_eq(a.status, 1000);
    /* Nothing at the hand-over in the old generation's file. */
    ck_assert(!has_line(log, "WS", "/echo") && !has_line(log, "WS", "/chat/moving"));
    stop(&s);
}
END_TEST

START_TEST(unopenable_path_is_a_config_error)
{
    struct server s;
    srv_init(&s, "access_log no/such/dir/access.log");
    int line = it_file_line_of(s.conf, "access_log");
    ck_assert_int_gt(line, 0);
    const char *args[] = { "-t", "-c", s.conf, NULL };
    ck_assert_int_eq(srv_run_sync(&s, args), 1);
    char where[PATH_MAX + 40];
    snprintf(where, sizeof where, "%s:%d: \"access_log\"", s.conf, line);
    ck_assert_msg(it_file_count(s.err, where) == 1, "stderr lacks \"%s\"", where);
    ck_assert_int_eq(it_file_count(s.err, "No such file or directory"), 1);
    srv_stop(&s);
}
END_TEST

Suite *access_log_suite(void)
{
    Suite *s = suite_create("access_log");
    TCase *tc = tcase_create("lines");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, http_lines);
    tcase_add_test(tc, session_lines);
    tcase_add_test(tc, forwarded_client);
    tcase_add_test(tc, sigusr1_reopens);
    tcase_add_test(tc, reload_logs_moved_sessions_once);
    tcase_add_test(tc, unopenable_path_is_a_config_error);
    suite_add_tcase(s, tc);
    return s;
}

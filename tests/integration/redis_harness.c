/*
 * redis_harness: see redis_harness.h. Process control first (port, dir,
 * spawn with a parent-death signal, bounded waits), then the RESP2 client.
 * Written from the RESP specification alone; nothing of server/ is used.
 */
#include "redis_harness.h"
#include "harness.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define RDS_START_MS   5000
#define RDS_PORT_TRIES 5
#define RESP_DEPTH     8

static int left(int64_t end)
{
    int64_t r = end - it_now_ms();
    return r < 0 ? 0 : (int)r;
}

/* ---- process ------------------------------------------------------------- */

int rds_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_msg(fd >= 0, "socket: %s", strerror(errno));
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = 0,
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t sl = sizeof sa;
    ck_assert_msg(bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0, "bind: %s", strerror(errno));
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

static const char *redis_bin(void)
{
    const char *b = getenv("WSCHAT_REDIS");
    return b != NULL && *b != '\0' ? b : "redis-server";
}

static void spawn(struct redis_srv *r)
{
    char port[16];
    snprintf(port, sizeof port, "%d", r->port);
    const char *argv[32];
    int n = 0;
    argv[n++] = redis_bin();
    argv[n++] = "--port";         argv[n++] = port;
    argv[n++] = "--bind";         argv[n++] = "127.0.0.1";
    argv[n++] = "--dir";          argv[n++] = r->dir;
    argv[n++] = "--logfile";      argv[n++] = r->log;
    argv[n++] = "--daemonize";    argv[n++] = "no";
    argv[n++] = "--save";         argv[n++] = "";
    argv[n++] = "--appendonly";   argv[n++] = r->persist ? "yes" : "no";
    if (r->persist) {
        argv[n++] = "--appendfsync"; argv[n++] = "always";
    }
    if (r->pass[0] != '\0') {
        argv[n++] = "--requirepass"; argv[n++] = r->pass;
    }
    argv[n] = NULL;

    pid_t parent = getpid();
    pid_t pid = fork();
    ck_assert_msg(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        /* Whatever ends the test process ends its Redis: a failed assert
         * exits the forked test at once, before any cleanup could run. */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
            _exit(126);
        int in = open("/dev/null", O_RDONLY);
        int out = open(r->out, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (in < 0 || out < 0)
            _exit(126);
        dup2(in, 0);
        dup2(out, 1);
        dup2(out, 2);
        if (close_range(3, ~0U, 0) < 0)
            for (int fd = 3; fd < 1024; fd++)
                close(fd);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    r->pid = pid;
    r->running = 1;
    r->starts++;
}

static int reap(struct redis_srv *r, int timeout_ms)
{
    if (!r->running)
        return 1;
    int64_t end = it_now_ms() + timeout_ms;
    for (;;) {
        if (waitpid(r->pid, &r->status, WNOHANG) == r->pid) {
            r->running = 0;
            return 1;
        }
        if (it_now_ms() >= end)
            return 0;
        it_sleep_ms(5);
    }
}

/* With a password: PING is refused with -NOAUTH once Redis serves. */
static int answers_noauth(const struct redis_srv *r)
{
    char out[128];
    const char *argv[] = { "PING" };
    return r->pass[0] != '\0' && rds_cmd(r->port, 200, out, sizeof out, 1, argv) == '-' &&
           strncmp(out, "-NOAUTH", 7) == 0;
}

/* 1 once it answers PONG (or NOAUTH), 0 if it exited first, -1 on timeout. */
static int wait_ready(struct redis_srv *r)
{
    int64_t end = it_now_ms() + RDS_START_MS;
    while (it_now_ms() < end) {
        if (reap(r, 0))
            return 0;
        /* -LOADING while it reads its append-only file: keep asking */
        if (rds_ping(r->port, 200) || answers_noauth(r))
            return 1;
        it_sleep_ms(10);
    }
    return -1;
}

static int port_in_use(const struct redis_srv *r)
{
    return it_file_count(r->log, "Address already in use") > 0 ||
           it_file_count(r->out, "Address already in use") > 0;
}

static void start_or_fail(struct redis_srv *r, int may_move)
{
    for (int attempt = 0; attempt < RDS_PORT_TRIES; attempt++) {
        spawn(r);
        int ok = wait_ready(r);
        if (ok == 1)
            return;
        if (ok == 0 && may_move && port_in_use(r)) {
            /* someone took the port between our probe and Redis' bind */
            r->port = rds_free_port();
            continue;
        }
        rds_dump(r, 20);
        if (r->running) {
            kill(r->pid, SIGKILL);
            reap(r, 2000);
        }
        ck_abort_msg("redis-server did not come up on port %d: %s (status 0x%x); files in %s",
                     r->port, ok == 0 ? "it exited" : "no PONG within 5 s", r->status, r->dir);
    }
    ck_abort_msg("redis-server: no free port after %d tries", RDS_PORT_TRIES);
}

void rds_start(struct redis_srv *r, int persist)
{
    rds_start_auth(r, persist, "");
}

void rds_start_auth(struct redis_srv *r, int persist, const char *pass)
{
    memset(r, 0, sizeof *r);
    ck_assert(strlen(pass) < sizeof r->pass);
    strcpy(r->pass, pass);
    snprintf(r->dir, sizeof r->dir, "/tmp/wschat-it-rds-XXXXXX");
    ck_assert_msg(mkdtemp(r->dir) != NULL, "mkdtemp: %s", strerror(errno));
    snprintf(r->log, sizeof r->log, "%s/redis.log", r->dir);
    snprintf(r->out, sizeof r->out, "%s/redis.out", r->dir);
    r->persist = persist;
    r->port = rds_free_port();
    start_or_fail(r, 1);
}

void rds_restart(struct redis_srv *r)
{
    ck_assert_msg(!r->running, "rds_restart: redis-server %d still runs", (int)r->pid);
    start_or_fail(r, 0);
}

void rds_kill(struct redis_srv *r, int sig)
{
    ck_assert_msg(r->running, "rds_kill: redis-server is not running");
    ck_assert_int_eq(kill(r->pid, sig), 0);
    ck_assert_msg(reap(r, 10000), "redis-server %d did not exit within 10 s of signal %d",
                  (int)r->pid, sig);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st; (void)flag; (void)ftw;
    return remove(path);
}

void rds_destroy(struct redis_srv *r)
{
    if (r->dir[0] == '\0')
        return;
    if (r->running) {
        kill(r->pid, SIGTERM);
        if (!reap(r, 5000)) {
            kill(r->pid, SIGKILL);
            reap(r, 2000);
        }
    }
    if (getenv("WSCHAT_IT_KEEP") == NULL)
        nftw(r->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    r->dir[0] = '\0';
}

void rds_dump(const struct redis_srv *r, int n)
{
    const char *files[] = { r->log, r->out };
    for (size_t f = 0; f < 2; f++) {
        size_t len;
        char *text = it_file_read(files[f], &len);
        if (text == NULL)
            continue;
        size_t i = len;
        int lines = 0;
        while (i > 0 && lines <= n)
            if (text[--i] == '\n' && i + 1 < len)
                lines++;
        fprintf(stderr, "---- redis-server %s, last lines:\n%s\n", files[f],
                text + i + (lines > n));
        free(text);
    }
}

/* ---- RESP2 client -------------------------------------------------------- */

/* Offset just past the CRLF ending the line at B[0..n), or 0 if incomplete. */
static size_t line_end(const char *b, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++)
        if (b[i] == '\r' && b[i + 1] == '\n')
            return i + 2;
    return 0;
}

static void put(char *out, size_t cap, size_t *w, const char *s, size_t len)
{
    size_t room = *w < cap ? cap - 1 - *w : 0;
    size_t k = len < room ? len : room;
    memcpy(out + *w, s, k);
    *w += k;
}

static int parse_int(const char *s, size_t len, long long *v)
{
    char tmp[32];
    if (len == 0 || len >= sizeof tmp)
        return -1;
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    char *end;
    errno = 0;
    *v = strtoll(tmp, &end, 10);
    return errno == 0 && *end == '\0' ? 0 : -1;
}

/*
 * One reply at B[0..n): bytes consumed (>0), 0 when incomplete, -1 when
 * malformed. Rendered into OUT at *W (see rds_cmd).
 */
static ssize_t parse_reply(const char *b, size_t n, char *out, size_t cap, size_t *w, int depth)
{
    if (n == 0)
        return 0;
    size_t le = line_end(b, n);
    if (le == 0)
        return 0;
    const char *body = b + 1;
    size_t blen = le - 3;
    long long v;
    switch (b[0]) {
    case '+':
    case ':':
        put(out, cap, w, body, blen);
        return (ssize_t)le;
    case '-':
        put(out, cap, w, "-", 1);
        put(out, cap, w, body, blen);
        return (ssize_t)le;
    case '$':
        if (parse_int(body, blen, &v) < 0 || v < -1 || v > (512LL << 20))
            return -1;
        if (v == -1) {
            put(out, cap, w, "(nil)", 5);
            return (ssize_t)le;
        }
        if (n < le + (size_t)v + 2)
            return 0;
        if (b[le + (size_t)v] != '\r' || b[le + (size_t)v + 1] != '\n')
            return -1;
        put(out, cap, w, b + le, (size_t)v);
        return (ssize_t)(le + (size_t)v + 2);
    case '*': {
        if (parse_int(body, blen, &v) < 0 || v < -1 || v > 1000000 || depth >= RESP_DEPTH)
            return -1;
        size_t off = le;
        for (long long i = 0; i < v; i++) {
            ssize_t k = parse_reply(b + off, n - off, out, cap, w, depth + 1);
            if (k <= 0)
                return k;
            off += (size_t)k;
            put(out, cap, w, "\n", 1);
        }
        return (ssize_t)off;
    }
    default:
        return -1;
    }
}

static int send_all(int fd, const char *buf, size_t len, int64_t end)
{
    size_t sent = 0;
    while (sent < len) {
        ssize_t k = send(fd, buf + sent, len - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (k > 0) {
            sent += (size_t)k;
            continue;
        }
        if (k < 0 && errno != EAGAIN && errno != EINTR)
            return -1;
        struct pollfd pfd = { fd, POLLOUT, 0 };
        if (left(end) == 0 || poll(&pfd, 1, left(end)) < 0)
            return -1;
    }
    return 0;
}

int rds_cmd(int port, int timeout_ms, char *out, size_t cap, int argc, const char *const *argv)
{
    int64_t end = it_now_ms() + timeout_ms;
    if (cap > 0)
        out[0] = '\0';
    size_t qcap = 64, qlen = 0;
    for (int i = 0; i < argc; i++)
        qcap += strlen(argv[i]) + 32;
    char *q = malloc(qcap);
    qlen += (size_t)snprintf(q + qlen, qcap - qlen, "*%d\r\n", argc);
    for (int i = 0; i < argc; i++) {
        size_t al = strlen(argv[i]);
        qlen += (size_t)snprintf(q + qlen, qcap - qlen, "$%zu\r\n", al);
        memcpy(q + qlen, argv[i], al);
        qlen += al;
        memcpy(q + qlen, "\r\n", 2);
        qlen += 2;
    }

    struct client c;
    int type = -1;
    if (cli_connect(&c, port) < 0) {
        free(q);
        return -1;
    }
    if (send_all(c.fd, q, qlen, end) == 0) {
        for (;;) {
            size_t w = 0;
            ssize_t k = parse_reply(c.rx ? (const char *)c.rx + c.off : "", cli_pending(&c),
                                    out, cap, &w, 0);
            if (cap > 0)
                out[w < cap ? w : cap - 1] = '\0';
            if (k > 0) {
                type = (unsigned char)c.rx[c.off];
                break;
            }
            if (k < 0 || left(end) == 0 || cli_fill(&c, left(end)) <= 0)
                break;
        }
    }
    cli_close(&c);
    free(q);
    return type;
}

int rds_ping(int port, int timeout_ms)
{
    char out[64];
    const char *argv[] = { "PING" };
    return rds_cmd(port, timeout_ms, out, sizeof out, 1, argv) == '+' && strcmp(out, "PONG") == 0;
}

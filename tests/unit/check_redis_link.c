/*
 * check_redis_link: the cluster bridge's Redis connection
 * (server/redis_link.c) against a fake Redis run by the test itself.
 *
 * The fake listens on 127.0.0.1 port 0 and accepts in the test; the test
 * then drives the link (poll + redis_link_io) and the fake's socket
 * alternately, so no threads are needed and every step is bounded. Time
 * is the test's own clock, passed to the link, so deadlines are exact.
 * Covered: what is sent first (AUTH with and without a user, SELECT) and
 * that their replies stay inside the link; pipelined replies in order
 * with their tag and arg; a reply split at every byte boundary or sent one
 * byte at a time delivered once and whole; several replies in one write;
 * what takes the link down (an AUTH or SELECT error, a reply to no
 * command, a protocol error, Redis closing, the reply deadline, a connect
 * to a closed port), each with its reason; -ENOSPC and -ENOTCONN.
 */
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "redis_link.h"
#include "redis_url.h"

#define NOW 1000000u                /* the tests' clock when time does not matter */
#define LONG_TIMEOUT 60000u
#define STEPS 2000                  /* bound of every wait, in 1-ms polls */

/* ---- what the callback saw ------------------------------------------------ */

struct seen {
    int n;                          /* replies */
    int tag[512];
    uint64_t arg[512];
    char text[512][160];            /* each reply's tokens, rendered */
};

static struct seen seen;

static void render(char *out, size_t cap, const struct resp_event *tok, size_t ntok)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < ntok && o + 1 < cap; i++) {
        const struct resp_event *t = &tok[i];
        int k;
        if (t->kind == RESP_EV_BEGIN)
            k = snprintf(out + o, cap - o, "%c%lld[", t->type, (long long)t->integer);
        else if (t->type == RESP_INTEGER)
            k = snprintf(out + o, cap - o, ":%lld", (long long)t->integer);
        else if (t->type == RESP_NULL)
            k = snprintf(out + o, cap - o, "_");
        else
            k = snprintf(out + o, cap - o, "%c%zu:%.*s", t->type, t->len, (int)t->len, t->data);
        o += (size_t)k < cap - o ? (size_t)k : cap - o - 1;
        for (unsigned c = 0; c < t->closes && o + 1 < cap; c++)
            out[o++] = ']';
        if (o + 1 < cap && !(t->kind == RESP_EV_BEGIN && t->closes == 0))
            out[o++] = ' ';
        out[o] = '\0';
    }
}

static int down_on_tag = -1;          /* the callback takes the link down on this tag */
static int requeue_on_tag = -1;       /* ... or queues another command */

static void on_reply(void *ctx, struct redis_link *l, int tag, uint64_t arg,
                     const struct resp_event *tok, size_t ntok)
{
    struct seen *s = ctx;
    ck_assert_int_lt(s->n, 512);
    s->tag[s->n] = tag;
    s->arg[s->n] = arg;
    render(s->text[s->n], sizeof s->text[0], tok, ntok);
    s->n++;
    if (tag == down_on_tag)
        redis_link_down(l, "the owner gave up");
    if (tag == requeue_on_tag) {
        const char *argv[1] = { "AGAIN" };
        size_t lens[1] = { 5 };
        ck_assert_int_eq(redis_link_command(l, 1, argv, lens, tag + 1, 0, 0, NOW), 0);
    }
}

/* ---- the fake Redis -------------------------------------------------------- */

struct fake {
    int lfd, fd;
    unsigned port;
    char in[65536];                 /* what the link sent */
    size_t in_len;
};

static struct fake fk;
static struct redis_link lk;
static struct redis_url url;

static void fake_listen(struct fake *f)
{
    memset(f, 0, sizeof *f);
    f->fd = -1;
    f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(f->lfd, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    ck_assert_int_eq(bind(f->lfd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(f->lfd, 8), 0);
    socklen_t al = sizeof a;
    ck_assert_int_eq(getsockname(f->lfd, (struct sockaddr *)&a, &al), 0);
    f->port = ntohs(a.sin_port);
}

static void fake_accept(struct fake *f)
{
    struct pollfd p = { .fd = f->lfd, .events = POLLIN };
    ck_assert_int_eq(poll(&p, 1, 2000), 1);
    f->fd = accept4(f->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    ck_assert_int_ge(f->fd, 0);
    /* Each small write goes out at once (no Nagle wait for a delayed ACK). */
    int one = 1;
    ck_assert_int_eq(setsockopt(f->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one), 0);
}

static void fake_send(struct fake *f, const void *d, size_t n)
{
    ck_assert_int_eq(send(f->fd, d, n, MSG_NOSIGNAL), (ssize_t)n);
}

static void fake_say(struct fake *f, const char *s)
{
    fake_send(f, s, strlen(s));
}

static void fake_close(struct fake *f)
{
    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
}

/* Take whatever the link has sent so far (non-blocking). */
static void fake_drain(struct fake *f)
{
    for (;;) {
        ssize_t n = recv(f->fd, f->in + f->in_len, sizeof f->in - f->in_len, 0);
        if (n <= 0)
            return;
        f->in_len += (size_t)n;
    }
}

/* ---- driving the link ------------------------------------------------------ */

/* One poll of up to MS ms on the link's socket, then redis_link_io(). */
static int step(struct redis_link *l, uint64_t now, int ms)
{
    struct pollfd p = { .fd = l->fd, .events = redis_link_events(l) };
    int n = poll(&p, 1, ms);
    ck_assert_int_ge(n, 0);
    return redis_link_io(l, n > 0 ? p.revents : 0, now);
}

/* Drive the link and the fake until the fake has received N bytes. */
static void fake_expect(struct fake *f, struct redis_link *l, const void *want, size_t n)
{
    for (int i = 0; i < STEPS && f->in_len < n; i++) {
        step(l, NOW, 1);
        fake_drain(f);
    }
    ck_assert_msg(f->in_len >= n, "the fake got %zu bytes of %zu", f->in_len, n);
    ck_assert_uint_eq(f->in_len, n);
    ck_assert_mem_eq(f->in, want, n);
    f->in_len = 0;
}

static void fake_expect_str(struct fake *f, struct redis_link *l, const char *want)
{
    fake_expect(f, l, want, strlen(want));
}

/* Drive the link until the callback has seen N replies or the link is down. */
static void wait_replies(struct redis_link *l, int n)
{
    for (int i = 0; i < STEPS && seen.n < n && l->state != REDIS_LINK_DOWN; i++)
        step(l, NOW, 1);
    ck_assert_msg(seen.n == n, "%d replies, not %d (link %d: %s)", seen.n, n, l->state,
                  l->reason);
}

/* Drive the link until it is down; its reason must hold WANT. */
static void wait_down(struct redis_link *l, const char *want)
{
    for (int i = 0; i < STEPS && l->state != REDIS_LINK_DOWN; i++)
        step(l, NOW, 1);
    ck_assert_int_eq(l->state, REDIS_LINK_DOWN);
    ck_assert_msg(strstr(l->reason, want) != NULL, "reason \"%s\" lacks \"%s\"", l->reason, want);
    ck_assert_int_eq(l->fd, -1);
    ck_assert_int_eq(redis_link_events(l), 0);
    ck_assert_uint_eq(redis_link_pending(l), 0);
    ck_assert_uint_eq(redis_link_next_deadline(l), UINT64_MAX);
}

/* Drive the link until its input buffer holds N unparsed bytes. */
static void wait_buffered(struct redis_link *l, size_t n)
{
    for (int i = 0; i < STEPS && l->in_len < n && l->state != REDIS_LINK_DOWN; i++)
        step(l, NOW, 1);
    ck_assert_int_eq(l->state, REDIS_LINK_UP);
    ck_assert_uint_eq(l->in_len, n);
}

static void parse_url(const char *fmt)
{
    char text[256];
    snprintf(text, sizeof text, fmt, fk.port);
    const char *why = NULL;
    ck_assert_msg(redis_url_parse(&url, text, strlen(text), &why) == 0, "%s: %s", text, why);
}

/* Listen, start the link to URL_FMT (with %u for the port), accept it. */
static void open_link(const char *url_fmt, size_t out_cap, size_t in_cap, size_t tok_cap,
                      uint64_t timeout_ms)
{
    memset(&seen, 0, sizeof seen);
    fake_listen(&fk);
    parse_url(url_fmt);
    ck_assert_int_eq(redis_link_init(&lk, "test", out_cap, in_cap, tok_cap, timeout_ms,
                                     on_reply, &seen), 0);
    ck_assert_int_eq(redis_link_connect(&lk, &url, NOW), 0);
    ck_assert_int_ne(lk.state, REDIS_LINK_DOWN);
    fake_accept(&fk);
}

static void close_all(void)
{
    redis_link_fini(&lk);
    fake_close(&fk);
    if (fk.lfd > 0)
        close(fk.lfd);
    fk.lfd = -1;
}

static int command(const char *a0, const char *a1, int tag, uint64_t arg)
{
    const char *argv[2] = { a0, a1 };
    size_t lens[2] = { strlen(a0), a1 ? strlen(a1) : 0 };
    return redis_link_command(&lk, a1 ? 2 : 1, argv, lens, tag, arg, 0, NOW);
}

/* ---- what is sent first ----------------------------------------------------- */

START_TEST(auth_and_select_first)
{
    open_link("redis://:pw@127.0.0.1:%u/3", 4096, 4096, 64, LONG_TIMEOUT);
    /* Queued while connecting: it goes after AUTH and SELECT. */
    ck_assert_int_eq(command("PING", NULL, 5, 77), 0);
    ck_assert_uint_eq(redis_link_pending(&lk), 3);
    fake_expect_str(&fk, &lk, "*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n"
                                "*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n"
                                "*1\r\n$4\r\nPING\r\n");
    ck_assert_int_eq(lk.state, REDIS_LINK_UP);
    fake_say(&fk, "+OK\r\n+OK\r\n+PONG\r\n");
    wait_replies(&lk, 1);
    ck_assert_int_eq(seen.tag[0], 5);
    ck_assert_uint_eq(seen.arg[0], 77);
    ck_assert_str_eq(seen.text[0], "+4:PONG ");
    ck_assert_uint_eq(redis_link_pending(&lk), 0);
    ck_assert_int_eq(lk.state, REDIS_LINK_UP);
    close_all();
}
END_TEST

START_TEST(auth_with_user)
{
    /* A %00 in the password is sent: the length counts it. */
    open_link("redis://bob:a%%00b@127.0.0.1:%u", 4096, 4096, 64, LONG_TIMEOUT);
    ck_assert_uint_eq(redis_link_pending(&lk), 1);
    static const char want[] = "*3\r\n$4\r\nAUTH\r\n$3\r\nbob\r\n$3\r\na\0b\r\n";
    fake_expect(&fk, &lk, want, sizeof want - 1);
    ck_assert_int_eq(command("GET", "k", 1, 2), 0);
    fake_expect_str(&fk, &lk, "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
    fake_say(&fk, "+OK\r\n$1\r\nv\r\n");
    wait_replies(&lk, 1);
    ck_assert_str_eq(seen.text[0], "$1:v ");
    ck_assert_int_eq(seen.tag[0], 1);
    ck_assert_uint_eq(seen.arg[0], 2);
    close_all();
}
END_TEST

START_TEST(nothing_first_without_auth_or_db)
{
    open_link("redis://127.0.0.1:%u/0", 4096, 4096, 64, LONG_TIMEOUT);
    ck_assert_uint_eq(redis_link_pending(&lk), 0);
    ck_assert_int_eq(command("PING", NULL, 0, 0), 0);
    fake_expect_str(&fk, &lk, "*1\r\n$4\r\nPING\r\n");
    fake_say(&fk, "+PONG\r\n");
    wait_replies(&lk, 1);
    ck_assert_int_eq(seen.tag[0], 0);
    close_all();
}
END_TEST

START_TEST(auth_error_takes_it_down)
{
    open_link("redis://:wrong@127.0.0.1:%u/2", 4096, 4096, 64, LONG_TIMEOUT);
    ck_assert_int_eq(command("PING", NULL, 1, 0), 0);
    fake_expect_str(&fk, &lk, "*2\r\n$4\r\nAUTH\r\n$5\r\nwrong\r\n"
                                "*2\r\n$6\r\nSELECT\r\n$1\r\n2\r\n*1\r\n$4\r\nPING\r\n");
    fake_say(&fk, "-WRONGPASS invalid username-password pair\r\n+OK\r\n+PONG\r\n");
    wait_down(&lk, "AUTH refused: WRONGPASS invalid");
    ck_assert_int_eq(seen.n, 0);
    close_all();
}
END_TEST

START_TEST(select_error_takes_it_down)
{
    open_link("redis://127.0.0.1:%u/9", 4096, 4096, 64, LONG_TIMEOUT);
    fake_expect_str(&fk, &lk, "*2\r\n$6\r\nSELECT\r\n$1\r\n9\r\n");
    fake_say(&fk, "-ERR DB index is out of range\r\n");
    wait_down(&lk, "SELECT refused: ERR DB index");
    ck_assert_int_eq(seen.n, 0);
    close_all();
}
END_TEST

/* ---- replies ------------------------------------------------------------------ */

START_TEST(pipelined_in_order)
{
    open_link("redis://127.0.0.1:%u", 1 << 16, 4096, 64, LONG_TIMEOUT);
    static char want[1 << 16];
    size_t wl = 0;
    for (int i = 0; i < 100; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        ck_assert_int_eq(command("GET", key, i, (uint64_t)i * 1000 + 7), 0);
        wl += (size_t)snprintf(want + wl, sizeof want - wl, "*2\r\n$3\r\nGET\r\n$%zu\r\n%s\r\n",
                               strlen(key), key);
    }
    ck_assert_uint_eq(redis_link_pending(&lk), 100);
    fake_expect(&fk, &lk, want, wl);
    /* Replies of every kind, each written alone. */
    for (int i = 0; i < 100; i++) {
        char r[64];
        switch (i % 4) {
        case 0: snprintf(r, sizeof r, ":%d\r\n", i); break;
        case 1: snprintf(r, sizeof r, "$2\r\n%02d\r\n", i); break;
        case 2: snprintf(r, sizeof r, "*2\r\n+a\r\n$-1\r\n"); break;
        default: snprintf(r, sizeof r, "-ERR no %d\r\n", i); break;
        }
        fake_say(&fk, r);
    }
    wait_replies(&lk, 100);
    for (int i = 0; i < 100; i++) {
        char w[64];
        switch (i % 4) {
        case 0: snprintf(w, sizeof w, ":%d ", i); break;
        case 1: snprintf(w, sizeof w, "$2:%02d ", i); break;
        case 2: snprintf(w, sizeof w, "*2[+1:a _] "); break;
        default: snprintf(w, sizeof w, "-%zu:ERR no %d ", strlen("ERR no ") + (i > 9 ? 2 : 1), i);
        }
        ck_assert_int_eq(seen.tag[i], i);
        ck_assert_uint_eq(seen.arg[i], (uint64_t)i * 1000 + 7);
        ck_assert_str_eq(seen.text[i], w);
    }
    ck_assert_uint_eq(redis_link_pending(&lk), 0);
    close_all();
}
END_TEST

START_TEST(several_replies_in_one_write)
{
    open_link("redis://127.0.0.1:%u", 4096, 4096, 64, LONG_TIMEOUT);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(command("PING", NULL, 10 + i, (uint64_t)i), 0);
    fake_expect_str(&fk, &lk, "*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPING\r\n");
    fake_say(&fk, "+PONG\r\n*1\r\n:5\r\n$3\r\nend\r\n");
    wait_replies(&lk, 3);
    ck_assert_str_eq(seen.text[0], "+4:PONG ");
    ck_assert_str_eq(seen.text[1], "*1[:5] ");
    ck_assert_str_eq(seen.text[2], "$3:end ");
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(seen.tag[i], 10 + i);
        ck_assert_uint_eq(seen.arg[i], (uint64_t)i);
    }
    close_all();
}
END_TEST

/* A reply of nested aggregates, bulks with CRLF inside, nulls and an error. */
static const char split_reply[] =
    "*4\r\n$5\r\nhe\r\no\r\n:-42\r\n*2\r\n%1\r\n+k\r\n$0\r\n\r\n*-1\r\n"
    "-ERR inner\r\n";
static const char split_want[] = "*4[$5:he\r\no :-42 *2[%1[+1:k $0:] _] -9:ERR inner] ";

/* Sent in two writes split at K, the second only once the link holds the first. */
START_TEST(reply_split_everywhere)
{
    open_link("redis://127.0.0.1:%u", 4096, 4096, 64, LONG_TIMEOUT);
    size_t n = sizeof split_reply - 1;
    for (size_t k = 0; k <= n; k++) {
        ck_assert_int_eq(command("X", NULL, (int)k, k * 3), 0);
        fake_expect_str(&fk, &lk, "*1\r\n$1\r\nX\r\n");
        if (k > 0 && k < n) {
            fake_send(&fk, split_reply, k);
            wait_buffered(&lk, k);
            ck_assert_int_eq(seen.n, (int)k);
        }
        fake_send(&fk, split_reply + (k < n ? k : 0), k < n ? n - k : n);
        wait_replies(&lk, (int)k + 1);
        ck_assert_int_eq(seen.tag[k], (int)k);
        ck_assert_uint_eq(seen.arg[k], k * 3);
        ck_assert_str_eq(seen.text[k], split_want);
        ck_assert_uint_eq(lk.in_len, 0);
    }
    close_all();
}
END_TEST

/* One byte per write: delivered once, whole, after the last byte. */
START_TEST(reply_one_byte_at_a_time)
{
    open_link("redis://127.0.0.1:%u", 4096, 4096, 64, LONG_TIMEOUT);
    size_t n = sizeof split_reply - 1;
    ck_assert_int_eq(command("X", NULL, 1, 2), 0);
    ck_assert_int_eq(command("Y", NULL, 3, 4), 0);
    fake_expect_str(&fk, &lk, "*1\r\n$1\r\nX\r\n*1\r\n$1\r\nY\r\n");
    for (int rep = 0; rep < 2; rep++) {
        for (size_t i = 0; i + 1 < n; i++) {
            fake_send(&fk, split_reply + i, 1);
            wait_buffered(&lk, i + 1);
            ck_assert_int_eq(seen.n, rep);
        }
        fake_send(&fk, split_reply + n - 1, 1);
        wait_replies(&lk, rep + 1);
        ck_assert_str_eq(seen.text[rep], split_want);
    }
    ck_assert_int_eq(seen.tag[0], 1);
    ck_assert_uint_eq(seen.arg[0], 2);
    ck_assert_int_eq(seen.tag[1], 3);
    ck_assert_uint_eq(seen.arg[1], 4);
    close_all();
}
END_TEST

/* The callback may queue the next command, or take the link down mid-buffer. */
START_TEST(callback_acts_on_the_link)
{
    open_link("redis://127.0.0.1:%u", 4096, 4096, 64, LONG_TIMEOUT);
    requeue_on_tag = 1;
    ck_assert_int_eq(command("PING", NULL, 1, 0), 0);
    fake_expect_str(&fk, &lk, "*1\r\n$4\r\nPING\r\n");
    fake_say(&fk, "+PONG\r\n");
    wait_replies(&lk, 1);
    fake_expect_str(&fk, &lk, "*1\r\n$5\r\nAGAIN\r\n");
    fake_say(&fk, "+AGAIN\r\n");
    wait_replies(&lk, 2);
    ck_assert_int_eq(seen.tag[1], 2);
    requeue_on_tag = -1;

    down_on_tag = 4;
    for (int t = 3; t <= 5; t++)
        ck_assert_int_eq(command("PING", NULL, t, 0), 0);
    fake_expect_str(&fk, &lk, "*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPING\r\n");
    fake_say(&fk, "+A\r\n+B\r\n+C\r\n");
    wait_down(&lk, "the owner gave up");
    /* The reply after the one that took it down is not delivered. */
    ck_assert_int_eq(seen.n, 4);
    ck_assert_int_eq(seen.tag[3], 4);
    down_on_tag = -1;
    close_all();
}
END_TEST

/*
 * A command larger than the socket takes at once: the rest goes out on
 * later writes, and a command queued meanwhile (which moves the unsent
 * bytes to the front of the buffer) follows it intact.
 */
START_TEST(partial_writes_keep_order)
{
    static char big[600000], big2[300000], got[1 << 20];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)('A' + i % 23);
    for (size_t i = 0; i < sizeof big2; i++)
        big2[i] = (char)('a' + i % 19);
    memset(&seen, 0, sizeof seen);
    fake_listen(&fk);
    int small = 4096;
    ck_assert_int_eq(setsockopt(fk.lfd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
    parse_url("redis://127.0.0.1:%u");
    ck_assert_int_eq(redis_link_init(&lk, "test", 800000, 4096, 64, LONG_TIMEOUT, on_reply,
                                     &seen), 0);
    ck_assert_int_eq(redis_link_connect(&lk, &url, NOW), 0);
    ck_assert_int_eq(setsockopt(lk.fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
    fake_accept(&fk);
    const char *argv[2] = { "SET", big };
    size_t lens[2] = { 3, sizeof big };
    ck_assert_int_eq(redis_link_command(&lk, 2, argv, lens, 1, 0, 0, NOW), 0);
    /* The fake reads slowly until half of it is out. */
    size_t got_len = 0;
    for (int i = 0; i < 20000 && lk.out_sent < 300000; i++) {
        step(&lk, NOW, 0);
        ssize_t n = recv(fk.fd, got + got_len, 4096, 0);
        if (n > 0)
            got_len += (size_t)n;
        else
            step(&lk, NOW, 1);
    }
    ck_assert_msg(lk.out_sent >= 300000 && lk.out_sent < lk.out_len, "sent %zu of %zu",
                  lk.out_sent, lk.out_len);
    /* 600 k + 300 k > the buffer: fits only once the sent bytes are dropped. */
    ck_assert_uint_gt(lk.out_len + sizeof big2 + 25, lk.out_cap);
    argv[1] = big2;
    lens[1] = sizeof big2;
    ck_assert_int_eq(redis_link_command(&lk, 2, argv, lens, 2, 0, 0, NOW), 0);
    ck_assert_uint_eq(lk.out_sent, 0);
    static const char h1[] = "*2\r\n$3\r\nSET\r\n$600000\r\n", h2[] = "*2\r\n$3\r\nSET\r\n$300000\r\n";
    size_t want = (sizeof h1 - 1) + sizeof big + 2 + (sizeof h2 - 1) + sizeof big2 + 2;
    for (int i = 0; i < 20000 && got_len < want; i++) {
        step(&lk, NOW, 0);
        ssize_t n = recv(fk.fd, got + got_len, sizeof got - got_len, 0);
        if (n > 0)
            got_len += (size_t)n;
        else
            step(&lk, NOW, 1);
    }
    ck_assert_uint_eq(got_len, want);
    size_t o = 0;
    ck_assert_mem_eq(got + o, h1, sizeof h1 - 1);
    o += sizeof h1 - 1;
    ck_assert_int_eq(memcmp(got + o, big, sizeof big), 0);
    o += sizeof big;
    ck_assert_mem_eq(got + o, "\r\n", 2);
    o += 2;
    ck_assert_mem_eq(got + o, h2, sizeof h2 - 1);
    o += sizeof h2 - 1;
    ck_assert_int_eq(memcmp(got + o, big2, sizeof big2), 0);
    ck_assert_int_eq(lk.state, REDIS_LINK_UP);
    fake_say(&fk, "+OK\r\n+OK\r\n");
    wait_replies(&lk, 2);
    close_all();
}
END_TEST

/* ---- what takes the link down ------------------------------------------------- */

START_TEST(reply_to_no_command)
{
    open_link("redis://127.0.0.1:%u", 4096, 4096, 64, LONG_TIMEOUT);
    ck_assert_int_eq(command("PING", NULL, 1, 0), 0);
    fake_expect_str(&fk, &lk, "*1\r\n$4\r\nPING\r\n");
    fake_say(&fk, "+PONG\r\n+EXTRA\r\n");
    wait_down(&lk, "a reply to no command");
    ck_assert_int_eq(seen.n, 1);
    close_all();
}
END_TEST

START_TEST(protocol_error)
{
    open_link("redis://127.0.0.1:%u", 4096, 4096, 64, LONG_TIMEOUT);
    ck_assert_int_eq(command("PING", NULL, 1, 0), 0);
    ck_assert_int_eq(command("PING", NULL, 2, 0), 0);
    fake_expect_str(&fk, &lk, "*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPING\r\n");
    fake_say(&fk, "+PONG\r\n?what\r\n");
    wait_down(&lk, "protocol error");
    ck_assert_int_eq(seen.n, 1);
    close_all();
}
END_TEST

START_TEST(redis_closes)
{
    open_link("redis://127.0.0.1:%u", 4096, 4096, 64, LONG_TIMEOUT);
    ck_assert_int_eq(command("PING", NULL, 1, 0), 0);
    fake_expect_str(&fk, &lk, "*1\r\n$4\r\nPING\r\n");
    /* Half a reply, then the connection ends. */
    fake_say(&fk, "$10\r\nhal");
    wait_buffered(&lk, 8);
    fake_close(&fk);
    wait_down(&lk, "Redis closed the connection");
    ck_assert_int_eq(seen.n, 0);

    /* Idle, nothing pending: the close is noticed all the same. */
    ck_assert_int_eq(redis_link_connect(&lk, &url, NOW), 0);
    fake_accept(&fk);
    for (int i = 0; i < 20 && lk.state != REDIS_LINK_UP; i++)
        step(&lk, NOW, 1);
    ck_assert_int_eq(lk.state, REDIS_LINK_UP);
    ck_assert_str_eq(lk.reason, "");
    fake_close(&fk);
    wait_down(&lk, "Redis closed the connection");
    close_all();
}
END_TEST

START_TEST(reply_deadline)
{
    open_link("redis://127.0.0.1:%u", 4096, 4096, 64, 1000);
    const uint64_t t0 = NOW;
    ck_assert_uint_eq(redis_link_next_deadline(&lk), t0 + 1000);     /* connecting */
    ck_assert_int_eq(command("PING", NULL, 1, 0), 0);
    fake_expect_str(&fk, &lk, "*1\r\n$4\r\nPING\r\n");
    ck_assert_int_eq(lk.state, REDIS_LINK_UP);
    ck_assert_uint_eq(redis_link_next_deadline(&lk), t0 + 1000);
    /* A second command with a blocking read's extra wait: due later. */
    const char *argv[1] = { "BLOCK" };
    size_t lens[1] = { 5 };
    ck_assert_int_eq(redis_link_command(&lk, 1, argv, lens, 2, 0, 5000, t0 + 100), 0);
    ck_assert_uint_eq(redis_link_next_deadline(&lk), t0 + 1000);
    ck_assert_int_eq(step(&lk, t0 + 999, 1), REDIS_LINK_UP);
    /* The first reply in time: the deadline is the second command's now. */
    fake_expect_str(&fk, &lk, "*1\r\n$5\r\nBLOCK\r\n");
    fake_say(&fk, "+PONG\r\n");
    for (int i = 0; i < STEPS && seen.n < 1; i++)
        ck_assert_int_eq(step(&lk, t0 + 999, 1), REDIS_LINK_UP);
    ck_assert_int_eq(seen.n, 1);
    ck_assert_uint_eq(redis_link_next_deadline(&lk), t0 + 100 + 1000 + 5000);
    ck_assert_int_eq(step(&lk, t0 + 6099, 0), REDIS_LINK_UP);
    /* The server stays silent: down at the deadline. */
    ck_assert_int_eq(step(&lk, t0 + 6100, 0), REDIS_LINK_DOWN);
    ck_assert_str_eq(lk.reason, "no reply within cluster_timeout");
    ck_assert_uint_eq(redis_link_pending(&lk), 0);
    ck_assert_int_eq(seen.n, 1);
    close_all();
}
END_TEST

START_TEST(connect_deadline)
{
    open_link("redis://127.0.0.1:%u", 4096, 4096, 64, 500);
    ck_assert_int_eq(lk.state, REDIS_LINK_CONNECTING);
    /* No poll result seen yet: only the clock moves. */
    ck_assert_int_eq(redis_link_io(&lk, 0, NOW + 499), REDIS_LINK_CONNECTING);
    ck_assert_int_eq(redis_link_io(&lk, 0, NOW + 500), REDIS_LINK_DOWN);
    ck_assert_str_eq(lk.reason, "connect timed out");
    ck_assert_int_eq(command("PING", NULL, 1, 0), -ENOTCONN);
    close_all();
}
END_TEST

START_TEST(connect_refused)
{
    memset(&seen, 0, sizeof seen);
    /* A port that was just free: nobody listens there. */
    fake_listen(&fk);
    parse_url("redis://127.0.0.1:%u");
    close(fk.lfd);
    fk.lfd = -1;
    ck_assert_int_eq(redis_link_init(&lk, "test", 4096, 4096, 64, LONG_TIMEOUT, on_reply,
                                     &seen), 0);
    int rc = redis_link_connect(&lk, &url, NOW);
    if (rc < 0) {
        ck_assert_int_eq(rc, -ECONNREFUSED);
        ck_assert_int_eq(lk.state, REDIS_LINK_DOWN);
    }
    wait_down(&lk, "connect(): ");
    ck_assert_msg(strstr(lk.reason, strerror(ECONNREFUSED)) != NULL, "%s", lk.reason);
    redis_link_fini(&lk);
}
END_TEST

START_TEST(reply_too_large)
{
    open_link("redis://127.0.0.1:%u", 4096, 4096, 64, LONG_TIMEOUT);
    ck_assert_int_eq(command("GET", "big", 1, 0), 0);
    fake_expect_str(&fk, &lk, "*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n");
    fake_say(&fk, "$100000\r\n");
    wait_down(&lk, "protocol error");
    close_all();

    /* Many small tokens: more than the link takes in one reply. */
    open_link("redis://127.0.0.1:%u", 4096, 4096, 4, LONG_TIMEOUT);
    ck_assert_int_eq(command("LRANGE", "l", 1, 0), 0);
    fake_expect_str(&fk, &lk, "*2\r\n$6\r\nLRANGE\r\n$1\r\nl\r\n");
    fake_say(&fk, "*3\r\n:1\r\n:2\r\n:3\r\n");      /* four tokens: fits */
    wait_replies(&lk, 1);
    ck_assert_str_eq(seen.text[0], "*3[:1 :2 :3] ");
    ck_assert_int_eq(command("LRANGE", "l", 2, 0), 0);
    fake_expect_str(&fk, &lk, "*2\r\n$6\r\nLRANGE\r\n$1\r\nl\r\n");
    fake_say(&fk, "*4\r\n:1\r\n:2\r\n:3\r\n:4\r\n");
    wait_down(&lk, "more tokens");
    ck_assert_int_eq(seen.n, 1);
    close_all();
}
END_TEST

START_TEST(socket_error_event)
{
    open_link("redis://127.0.0.1:%u", 4096, 4096, 64, LONG_TIMEOUT);
    for (int i = 0; i < 20 && lk.state != REDIS_LINK_UP; i++)
        step(&lk, NOW, 1);
    ck_assert_int_eq(lk.state, REDIS_LINK_UP);
    /* POLLERR or POLLHUP with nothing to read: the connection is gone. */
    ck_assert_int_eq(redis_link_io(&lk, POLLERR, NOW), REDIS_LINK_DOWN);
    ck_assert_str_eq(lk.reason, "the connection failed");
    close_all();
}
END_TEST

/* Many small tokens: a reply that cannot fit the input buffer. */
START_TEST(reply_larger_than_input)
{
    open_link("redis://127.0.0.1:%u", 4096, 4096, 1 << 16, LONG_TIMEOUT);
    size_t cap = lk.in_cap, count = cap / 4 + 10;
    ck_assert_uint_lt(count, 1 << 16);
    ck_assert_int_eq(command("LRANGE", "l", 1, 0), 0);
    fake_expect_str(&fk, &lk, "*2\r\n$6\r\nLRANGE\r\n$1\r\nl\r\n");
    char head[32];
    fake_send(&fk, head, (size_t)snprintf(head, sizeof head, "*%zu\r\n", count));
    static char body[1 << 20];
    for (size_t i = 0; i < count; i++)
        memcpy(body + 4 * i, ":1\r\n", 4);
    size_t off = 0;
    for (int i = 0; i < STEPS && lk.state != REDIS_LINK_DOWN; i++) {
        if (off < 4 * count) {
            ssize_t n = send(fk.fd, body + off, 4 * count - off, MSG_NOSIGNAL);
            if (n > 0)
                off += (size_t)n;
        }
        step(&lk, NOW, 1);
    }
    wait_down(&lk, "a reply larger than the bridge's input buffer");
    ck_assert_int_eq(seen.n, 0);
    close_all();
}
END_TEST

/* Connecting again while up starts afresh: nothing pending, AUTH first again. */
START_TEST(reconnect_while_up)
{
    open_link("redis://:pw@127.0.0.1:%u", 4096, 4096, 64, LONG_TIMEOUT);
    ck_assert_int_eq(command("PING", NULL, 1, 0), 0);
    fake_expect_str(&fk, &lk, "*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n*1\r\n$4\r\nPING\r\n");
    fake_say(&fk, "+OK\r\n$3\r\nhal");
    wait_buffered(&lk, 7);
    int old = fk.fd;
    ck_assert_int_eq(redis_link_connect(&lk, &url, NOW), 0);
    ck_assert_uint_eq(redis_link_pending(&lk), 1);      /* the new AUTH only */
    ck_assert_uint_eq(lk.in_len, 0);
    fake_accept(&fk);
    fake_expect_str(&fk, &lk, "*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n");
    /* The old connection was closed. */
    char c;
    for (int i = 0; i < 100 && recv(old, &c, 1, 0) < 0; i++)
        usleep(1000);
    ck_assert_int_eq(recv(old, &c, 1, 0), 0);
    close(old);
    fake_say(&fk, "+OK\r\n");
    ck_assert_int_eq(command("PING", NULL, 2, 0), 0);
    fake_expect_str(&fk, &lk, "*1\r\n$4\r\nPING\r\n");
    fake_say(&fk, "+PONG\r\n");
    wait_replies(&lk, 1);
    ck_assert_int_eq(seen.tag[0], 2);
    close_all();
}
END_TEST

/* ---- queue limits ----------------------------------------------------------------- */

START_TEST(output_full)
{
    open_link("redis://127.0.0.1:%u", 256, 4096, 64, LONG_TIMEOUT);
    /* Nothing is flushed while connecting (no redis_link_io): the buffer fills. */
    static char arg[300];
    memset(arg, 'a', sizeof arg - 1);
    ck_assert_int_eq(command("SET", arg, 1, 0), -ENOSPC);         /* larger than it all */
    ck_assert_uint_eq(redis_link_pending(&lk), 0);
    int ok = 0;
    arg[40] = '\0';
    while (command("SET", arg, ok, 0) == 0)
        ok++;
    /* Each is "*2\r\n$3\r\nSET\r\n$40\r\n" and 40 + 2 bytes: 60. */
    ck_assert_int_eq(ok, 256 / 60);
    ck_assert_uint_eq(redis_link_pending(&lk), (unsigned)ok);
    ck_assert_int_eq(command("SET", arg, 99, 0), -ENOSPC);
    ck_assert_uint_eq(redis_link_pending(&lk), (unsigned)ok);
    /* Once written, there is room again; nothing refused was sent. */
    static char want[4096];
    size_t wl = 0;
    for (int i = 0; i < ok; i++)
        wl += (size_t)snprintf(want + wl, sizeof want - wl, "*2\r\n$3\r\nSET\r\n$40\r\n%s\r\n", arg);
    fake_expect(&fk, &lk, want, wl);
    ck_assert_int_eq(command("SET", arg, 7, 0), 0);
    fake_expect(&fk, &lk, want, wl / (size_t)ok);
    close_all();
}
END_TEST

START_TEST(reply_queue_full)
{
    open_link("redis://127.0.0.1:%u", 1 << 16, 4096, 64, LONG_TIMEOUT);
    for (int i = 0; i < REDIS_LINK_QUEUE; i++)
        ck_assert_int_eq(command("PING", NULL, i, 0), 0);
    ck_assert_int_eq(command("PING", NULL, -1, 0), -ENOSPC);
    ck_assert_uint_eq(redis_link_pending(&lk), REDIS_LINK_QUEUE);
    /* Replies free the queue: one more is taken, and all come in order. */
    static char rep[REDIS_LINK_QUEUE * 8];
    size_t rl = 0;
    for (int i = 0; i < REDIS_LINK_QUEUE; i++)
        rl += (size_t)snprintf(rep + rl, sizeof rep - rl, "+OK\r\n");
    for (int i = 0; i < STEPS && fk.in_len < (size_t)REDIS_LINK_QUEUE * 14; i++) {
        step(&lk, NOW, 1);
        fake_drain(&fk);
    }
    ck_assert_uint_eq(fk.in_len, (size_t)REDIS_LINK_QUEUE * 14);
    fk.in_len = 0;
    fake_send(&fk, rep, rl);
    wait_replies(&lk, REDIS_LINK_QUEUE);
    for (int i = 0; i < REDIS_LINK_QUEUE; i++)
        ck_assert_int_eq(seen.tag[i], i);
    ck_assert_int_eq(command("PING", NULL, 0, 0), 0);
    close_all();
}
END_TEST

START_TEST(down_refuses_commands)
{
    memset(&seen, 0, sizeof seen);
    ck_assert_int_eq(redis_link_init(&lk, "test", 4096, 4096, 64, 1000, on_reply, &seen), 0);
    ck_assert_int_eq(lk.state, REDIS_LINK_DOWN);
    ck_assert_int_eq(lk.fd, -1);
    ck_assert_int_eq(command("PING", NULL, 1, 0), -ENOTCONN);
    ck_assert_int_eq(redis_link_events(&lk), 0);
    ck_assert_uint_eq(redis_link_next_deadline(&lk), UINT64_MAX);
    ck_assert_int_eq(redis_link_io(&lk, 0, NOW), REDIS_LINK_DOWN);
    /* Down by the owner, with and without a reason. */
    redis_link_down(&lk, "owner's reason");
    ck_assert_str_eq(lk.reason, "owner's reason");
    redis_link_down(&lk, NULL);
    ck_assert_str_eq(lk.reason, "owner's reason");
    redis_link_fini(&lk);
    redis_link_fini(&lk);         /* twice is harmless */
}
END_TEST

Suite *redis_link_suite(void)
{
    Suite *s = suite_create("redis_link");
    TCase *tc = tcase_create("first");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, auth_and_select_first);
    tcase_add_test(tc, auth_with_user);
    tcase_add_test(tc, nothing_first_without_auth_or_db);
    tcase_add_test(tc, auth_error_takes_it_down);
    tcase_add_test(tc, select_error_takes_it_down);
    suite_add_tcase(s, tc);

    tc = tcase_create("replies");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, pipelined_in_order);
    tcase_add_test(tc, several_replies_in_one_write);
    tcase_add_test(tc, reply_split_everywhere);
    tcase_add_test(tc, reply_one_byte_at_a_time);
    tcase_add_test(tc, callback_acts_on_the_link);
    tcase_add_test(tc, partial_writes_keep_order);
    suite_add_tcase(s, tc);

    tc = tcase_create("down");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, reply_to_no_command);
    tcase_add_test(tc, protocol_error);
    tcase_add_test(tc, redis_closes);
    tcase_add_test(tc, reply_deadline);
    tcase_add_test(tc, connect_deadline);
    tcase_add_test(tc, connect_refused);
    tcase_add_test(tc, reply_too_large);
    tcase_add_test(tc, socket_error_event);
    tcase_add_test(tc, reply_larger_than_input);
    tcase_add_test(tc, reconnect_while_up);
    suite_add_tcase(s, tc);

    tc = tcase_create("limits");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, output_full);
    tcase_add_test(tc, reply_queue_full);
    tcase_add_test(tc, down_refuses_commands);
    suite_add_tcase(s, tc);
    return s;
}

/*
 * handoff: reload hand-over of busy WebSockets, seen from the clients.
 * Every connection here is in the middle of something when SIGHUP comes:
 * half a frame sent (header and part of the payload, or part of a
 * header), a fragmented message open, echoes queued in the server because
 * the client stopped reading, a chat member behind its room's traffic
 * with half a message of its own sent. After the old workers are gone
 * (they leave only once every connection they held was adopted), each
 * client finishes what it was doing and must get exactly what it would
 * have got without the reload: no close, every byte, once, in order.
 * The load test runs 50 chat publishers and 50 echo clients that are
 * always mid-message through 10 reloads a second apart. /stats must count
 * the hand-overs and no failure; one test makes the new worker refuse
 * (max_connections) to see the 1012 close and its count.
 */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

/* ---- server helpers ----------------------------------------------------- */

static int none_alive(const pid_t *p, int n)
{
    for (int i = 0; i < n; i++)
        if (it_proc_alive(p[i]))
            return 0;
    return 1;
}

/* SIGHUP and wait until every worker of before is gone and N new ones run. */
static void reload_and_wait(struct server *s, int n)
{
    pid_t old[SRV_MAX_WORKERS];
    int nold = srv_workers(s, old, SRV_MAX_WORKERS);
    ck_assert_int_eq(kill(s->pid, SIGHUP), 0);
    ck_assert_msg(WAIT_FOR(none_alive(old, nold), s->shutdown_ms + 3000),
                  "old workers alive after worker_shutdown_timeout + 3 s");
    ck_assert_msg(srv_wait_worker_count(s, n, 3000), "want %d workers after the reload", n);
}

/* A number from the "total" object of GET /stats (it comes after the workers'). */
static long long stats_total(int port, const char *name)
{
    struct client c;
    ck_assert_int_eq(cli_connect(&c, port), 0);
    ck_assert_int_eq(cli_sendstr(&c, "GET /stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
                     0);
    struct httpc_resp r;
    ck_assert_int_eq(httpc_read_head(&c, &r, 5000), 200);
    int64_t end = it_now_ms() + 5000;
    while (it_now_ms() < end && cli_fill(&c, (int)(end - it_now_ms())) > 0)
        ;
    size_t n = cli_pending(&c);
    char *body = malloc(n + 1);
    memcpy(body, c.rx + c.off, n);
    body[n] = '\0';
    cli_close(&c);
    const char *total = strstr(body, "\"total\":{");
    ck_assert_msg(total != NULL, "/stats has no total");
    char key[64];
    snprintf(key, sizeof key, "\"%s\":", name);
    const char *at = strstr(total, key);
    ck_assert_msg(at != NULL, "/stats total has no %s", key);
    long long v = strtoll(at + strlen(key), NULL, 10);
    free(body);
    return v;
}

/* ---- client helpers ----------------------------------------------------- */

/* Receive one frame; it must be a data frame (no close, no EOF). */
static void recv_data(struct client *c, struct wsc_msg *m, const char *who)
{
    for (;;) {
        int rc = wsc_recv(c, m, 5000);
        ck_assert_msg(rc == 1, "%s: %s", who, rc == 0 ? "connection closed" : "timeout");
        ck_assert_msg(m->opcode != WS_OP_CLOSE, "%s: closed with %d", who,
                      m->len >= 2 ? m->data[0] << 8 | m->data[1] : -1);
        if (m->opcode != WS_OP_PING && m->opcode != WS_OP_PONG)
            return;
        wsc_msg_free(m);
    }
}

static void expect_echo(struct client *c, int opcode, const uint8_t *p, size_t len,
                        const char *who)
{
    struct wsc_msg m;
    recv_data(c, &m, who);
    ck_assert_msg(m.fin && m.opcode == opcode, "%s: opcode %d fin %d", who, m.opcode, m.fin);
    ck_assert_msg(m.len == len && memcmp(m.data, p, len) == 0,
                  "%s: echo of %zu bytes differs (got %zu)", who, len, m.len);
    wsc_msg_free(&m);
}

/*
 * Send BUF[0..len) preceded by a ping, in one write, and wait for the
 * pong: the server has then read the ping, and with it (one loopback
 * segment, one read) everything after it.
 */
static void send_after_ping(struct client *c, const uint8_t *buf, size_t len)
{
    uint8_t *all = NULL;
    size_t n = 0, cap = 0;
    wsc_frame_append(&all, &n, &cap, WS_FIN | WS_OP_PING, "mark", 4);
    all = realloc(all, n + len);
    memcpy(all + n, buf, len);
    ck_assert_int_eq(cli_send(c, all, n + len), 0);
    free(all);
    for (;;) {
        struct wsc_msg m;
        ck_assert_msg(wsc_recv(c, &m, 5000) == 1, "no pong");
        int op = m.opcode;
        ck_assert_msg(op == WS_OP_PONG, "opcode %d before the pong", op);
        wsc_msg_free(&m);
        return;
    }
}

/* ---- (a) one busy connection at a time ---------------------------------- */

/*
 * Three echo clients, each stopped inside a message: A after the header and
 * 1001 payload bytes of a 3000-byte text frame (inside a code point), B after
 * 3 bytes of a header, C after the first fragment of a fragmented text
 * message. Reload; A and B finish their frames, C sends its second fragment;
 * reload again; C sends the last one. Every echo is whole and nobody is closed.
 */
START_TEST(echo_mid_frame_crosses_reload)
{
    struct server s;
    srv_start(&s, "workers 2");
    ck_assert(srv_wait_worker_count(&s, 2, 3000));
    struct client a, b, c;
    wsc_open(&a, s.port);
    wsc_open(&b, s.port);
    wsc_open(&c, s.port);

    uint8_t *text = it_make_text(3000);
    size_t alen;
    uint8_t *afr = wsc_frame_build(WS_FIN | WS_OP_TEXT, text, 3000, &alen);
    size_t pcut = 1000;
    while ((text[pcut] & 0xC0) != 0x80)     /* inside a code point */
        pcut++;
    size_t acut = 8 + pcut;                 /* 2 + 2 (length) + 4 (key), then payload */
    send_after_ping(&a, afr, acut);

    uint8_t *bin = it_make_binary(200, 7);
    size_t blen;
    uint8_t *bfr = wsc_frame_build(WS_FIN | WS_OP_BIN, bin, 200, &blen);
    send_after_ping(&b, bfr, 3);

    uint8_t *ctext = it_make_text(1500);
    size_t c1len, c2len, c3len;
    uint8_t *c1 = wsc_frame_build(WS_OP_TEXT, ctext, 501, &c1len);          /* cut mid code point */
    uint8_t *c2 = wsc_frame_build(WS_OP_CONT, ctext + 501, 600, &c2len);
    uint8_t *c3 = wsc_frame_build(WS_FIN | WS_OP_CONT, ctext + 1101, 399, &c3len);
    send_after_ping(&c, c1, c1len);

    reload_and_wait(&s, 2);
    ck_assert_int_eq(cli_send(&a, afr + acut, alen - acut), 0);
    expect_echo(&a, WS_OP_TEXT, text, 3000, "A (half a frame)");
    ck_assert_int_eq(cli_send(&b, bfr + 3, blen - 3), 0);
    expect_echo(&b, WS_OP_BIN, bin, 200, "B (part of a header)");
    send_after_ping(&c, c2, c2len);

    reload_and_wait(&s, 2);
    ck_assert_int_eq(cli_send(&c, c3, c3len), 0);
    expect_echo(&c, WS_OP_TEXT, ctext, 1500, "C (fragmented)");
    /* And each goes on as a plain connection. */
    wsc_echo_check(&a, WS_OP_TEXT, "again", 5);
    wsc_echo_check(&b, WS_OP_BIN, "again", 5);
    wsc_echo_check(&c, WS_OP_TEXT, "again", 5);

    ck_assert_int_ge(stats_total(s.port, "handoffs"), 6);
    ck_assert_int_eq(stats_total(s.port, "handoff_failures"), 0);
    free(text), free(afr), free(bin), free(bfr), free(ctext), free(c1), free(c2), free(c3);
    cli_close(&a), cli_close(&b), cli_close(&c);
    srv_stop(&s);
}
END_TEST

#define Q_MSG   16384

static void q_payload(uint8_t *p, uint32_t k)
{
    for (size_t i = 0; i < Q_MSG; i++)
        p[i] = (uint8_t)(k * 31 + i * 7);
    memcpy(p, &k, sizeof k);
}

/*
 * A client that writes echo requests without reading: the server queues
 * replies up to max_send_queue, then stops reading, its input held; the
 * client writes until its socket takes nothing more. Reload; then the
 * client reads: every echo, in order, nothing missing or doubled.
 */
START_TEST(echo_queued_output_crosses_reload)
{
    struct server s;
    srv_start(&s, "workers 2\nmax_send_queue 64k");
    ck_assert(srv_wait_worker_count(&s, 2, 3000));
    struct client c;
    wsc_open(&c, s.port);
    uint8_t *payload = malloc(Q_MSG);
    uint8_t *frame = NULL;
    size_t flen = 0, fsent = 0;
    uint32_t sent = 0;
    int stalled = 0;
    /* Write (never read) until nothing is taken for half a second. */
    while (!stalled && sent < 8192) {
        if (fsent == flen) {
            free(frame);
            q_payload(payload, sent);
            frame = wsc_frame_build(WS_FIN | WS_OP_BIN, payload, Q_MSG, &flen);
            fsent = 0;
            sent++;
        }
        ssize_t n = send(c.fd, frame + fsent, flen - fsent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            fsent += (size_t)n;
            continue;
        }
        ck_assert_msg(n < 0 && errno == EAGAIN, "send: %s", strerror(errno));
        struct pollfd pfd = { c.fd, POLLOUT, 0 };
        stalled = poll(&pfd, 1, 500) == 0;
    }
    ck_assert_msg(stalled, "the server kept reading %u messages", sent);

    reload_and_wait(&s, 2);

    /* Finish the frame under way, read every echo. */
    uint32_t got = 0;
    int64_t end = it_now_ms() + 15000;
    while (got < sent) {
        ck_assert_msg(it_now_ms() < end, "only %u of %u echoes", got, sent);
        if (fsent < flen) {
            ssize_t n = send(c.fd, frame + fsent, flen - fsent, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n > 0)
                fsent += (size_t)n;
        }
        struct wsc_msg m;
        int rc = wsc_recv(&c, &m, fsent < flen ? 20 : 5000);
        if (rc < 0)
            continue;
        ck_assert_msg(rc == 1 && m.opcode == WS_OP_BIN && m.len == Q_MSG,
                      "echo %u: rc %d opcode %d len %zu", got, rc, m.opcode, m.len);
        uint32_t k;
        memcpy(&k, m.data, sizeof k);
        ck_assert_msg(k == got, "echo %u carries message %u", got, k);
        q_payload(payload, k);
        ck_assert_msg(memcmp(m.data, payload, Q_MSG) == 0, "echo %u differs", k);
        wsc_msg_free(&m);
        got++;
    }
    wsc_echo_check(&c, WS_OP_TEXT, "after", 5);
    ck_assert_int_eq(stats_total(s.port, "handoff_failures"), 0);
    free(frame);
    free(payload);
    cli_close(&c);
    srv_stop(&s);
}
END_TEST

/* ---- chat ---------------------------------------------------------------- */

/*
 * A chat event's "id" and "text" (our texts are plain ASCII; a run of '~'
 * pads some and is cut off here); 0 when not a message.
 */
static int chat_message(const struct wsc_msg *m, uint64_t *id, char *text, size_t cap)
{
    const char *d = (const char *)m->data;
    if (m->opcode != WS_OP_TEXT || strncmp(d, "{\"type\":\"message\"", 17) != 0)
        return 0;
    const char *i = strstr(d, "\"id\":"), *t = strstr(d, "\"text\":\"");
    ck_assert_msg(i != NULL && t != NULL, "message without id or text: %s", d);
    *id = strtoull(i + 5, NULL, 10);
    t += 8;
    size_t n = strcspn(t, "\"~");
    ck_assert_uint_lt(n, cap);
    memcpy(text, t, n);
    text[n] = '\0';
    return 1;
}

/* A chat client on PATH; RCVBUF > 0: with a receive buffer that small. */
static void chat_open(struct client *c, int port, const char *path, int rcvbuf)
{
    ck_assert_int_eq(cli_connect_rcvbuf(c, port, rcvbuf), 0);
    ck_assert_int_eq(wsc_handshake(c, path, NULL, NULL, 0), 101);
}

static void chat_send(struct client *c, const char *text)
{
    char buf[256];
    int n = snprintf(buf, sizeof buf, "{\"type\":\"message\",\"text\":\"%s\"}", text);
    ck_assert_int_eq(wsc_send(c, WS_FIN | WS_OP_TEXT, buf, (size_t)n), 0);
}

/* Read C's events until its message TEXT arrives; returns how many messages came. */
static int chat_until(struct client *c, const char *text, int timeout_ms)
{
    int64_t end = it_now_ms() + timeout_ms;
    for (int count = 0;;) {
        struct wsc_msg m;
        int rc = wsc_recv(c, &m, (int)(end - it_now_ms() > 0 ? end - it_now_ms() : 0));
        ck_assert_msg(rc == 1, "no \"%s\" (%d)", text, rc);
        ck_assert_msg(m.opcode != WS_OP_CLOSE, "closed waiting for \"%s\"", text);
        uint64_t id;
        char t[128];
        int is = chat_message(&m, &id, t, sizeof t);
        wsc_msg_free(&m);
        count += is;
        if (is && strcmp(t, text) == 0)
            return count;
    }
}

/* Read C's events until one of type TYPE (a chat member is live after "history_end"). */
static void chat_until_type(struct client *c, const char *type)
{
    char want[64];
    snprintf(want, sizeof want, "{\"type\":\"%s\"", type);
    for (;;) {
        struct wsc_msg m;
        ck_assert_msg(wsc_recv(c, &m, 5000) == 1, "no %s event", type);
        int hit = m.opcode == WS_OP_TEXT && strncmp((char *)m.data, want, strlen(want)) == 0;
        wsc_msg_free(&m);
        if (hit)
            return;
    }
}

#define CH_N     2000
#define CH_PAD   3500           /* 7 MB in all: more than the kernel buffers take */
#define CH_AFTER 100

/*
 * A member that reads nothing while another publishes CH_N messages (its
 * receive buffer made small; past what the kernel's buffers take, they
 * wait in the server: stream bytes, one frame possibly half written), and
 * that has sent half of a message of its own. Reload; it finishes its
 * message and reads: every message once, in id order, its own among those
 * published after.
 */
START_TEST(chat_backlog_crosses_reload)
{
    struct server s;
    srv_start(&s, "workers 2\nrate_limit 0\nmax_send_queue 64m");
    ck_assert(srv_wait_worker_count(&s, 2, 3000));
    struct client slow, pub;
    chat_open(&slow, s.port, "/chat/q?nick=slow", 4096);
    chat_until_type(&slow, "history_end");
    chat_open(&pub, s.port, "/chat/q?nick=pub", 0);
    chat_until_type(&pub, "history_end");

    static const char own[] = "{\"type\":\"message\",\"text\":\"slow-final\"}";
    size_t olen;
    uint8_t *ofr = wsc_frame_build(WS_FIN | WS_OP_TEXT, own, sizeof own - 1, &olen);
    ck_assert_int_eq(cli_send(&slow, ofr, 10), 0);     /* header and 4 payload bytes */

    size_t cap = 0, len = 0;
    uint8_t *all = NULL;
    char *body = malloc(CH_PAD + 96);
    for (int k = 0; k < CH_N; k++) {
        int n = snprintf(body, 96, "{\"type\":\"message\",\"text\":\"m-%d", k);
        memset(body + n, '~', CH_PAD);
        memcpy(body + n + CH_PAD, "\"}", 2);
        wsc_frame_append(&all, &len, &cap, WS_FIN | WS_OP_TEXT, body, (size_t)n + CH_PAD + 2);
    }
    free(body);
    ck_assert_int_eq(cli_send_t(&pub, all, len, 10000), 0);
    free(all);
    char last[32];
    snprintf(last, sizeof last, "m-%d", CH_N - 1);
    ck_assert_int_eq(chat_until(&pub, last, 10000), CH_N);  /* all in, in the old workers */

    reload_and_wait(&s, 2);
    for (int k = 0; k < CH_AFTER; k++) {
        char t[32];
        snprintf(t, sizeof t, "after-%d", k);
        chat_send(&pub, t);
    }
    ck_assert_int_eq(cli_send(&slow, ofr + 10, olen - 10), 0);

    /* Everything, once, in order: m-0.., then after-0.. with slow-final among them. */
    int next_m = 0, next_after = 0, own_seen = 0;
    uint64_t last_id = 0;
    int64_t end = it_now_ms() + 15000;
    while (next_after < CH_AFTER || !own_seen) {
        struct wsc_msg m;
        int rc = wsc_recv(&slow, &m, (int)(end - it_now_ms() > 0 ? end - it_now_ms() : 0));
        ck_assert_msg(rc == 1, "slow member: %s after m-%d, after-%d", rc ? "timeout" : "closed",
                      next_m, next_after);
        ck_assert_msg(m.opcode != WS_OP_CLOSE, "slow member closed");
        uint64_t id;
        char t[128];
        if (chat_message(&m, &id, t, sizeof t)) {
            ck_assert_msg(id > last_id, "id %llu after %llu (%s)", (unsigned long long)id,
                          (unsigned long long)last_id, t);
            last_id = id;
            char want[32];
            if (next_m < CH_N) {
                snprintf(want, sizeof want, "m-%d", next_m++);
                ck_assert_msg(strcmp(t, want) == 0, "got %s, want %s", t, want);
            } else if (strcmp(t, "slow-final") == 0) {
                ck_assert_msg(!own_seen, "slow-final twice");
                own_seen = 1;
            } else {
                snprintf(want, sizeof want, "after-%d", next_after++);
                ck_assert_msg(strcmp(t, want) == 0, "got %s, want %s", t, want);
            }
        }
        wsc_msg_free(&m);
    }
    ck_assert_int_eq(stats_total(s.port, "handoff_failures"), 0);
    free(ofr);
    cli_close(&slow);
    cli_close(&pub);
    srv_stop(&s);
}
END_TEST

/*
 * The new generation cannot take a connection (max_connections 1 and two
 * clients on one worker: the second is refused): that client gets 1012
 * after all it was sent, the other one moves, and /stats counts one
 * failure.
 */
START_TEST(refused_closes_with_1012)
{
    struct server s;
    srv_start(&s, "workers 1\nmax_connections 2");
    ck_assert(srv_wait_worker_count(&s, 1, 3000));
    struct client c[2];
    for (int i = 0; i < 2; i++) {
        wsc_open(&c[i], s.port);
        wsc_echo_check(&c[i], WS_OP_TEXT, "before", 6);
    }
    srv_write_config(&s, "workers 1\nmax_connections 1");
    reload_and_wait(&s, 1);
    /*
     * The old worker is gone: what it sent before it left (the refused
     * one's close frame) is in that client's socket already.
     */
    int closed = -1, moved = -1;
    for (int i = 0; i < 2; i++) {
        struct wsc_msg m;
        if (wsc_recv(&c[i], &m, 0) != 1) {
            moved = i;
            continue;
        }
        ck_assert_msg(m.opcode == WS_OP_CLOSE && m.len >= 2 &&
                      (m.data[0] << 8 | m.data[1]) == 1012, "refused client: opcode %d", m.opcode);
        wsc_msg_free(&m);
        closed = i;
    }
    ck_assert_msg(closed >= 0 && moved >= 0, "want one closed and one moved");
    wsc_echo_check(&c[moved], WS_OP_TEXT, "still here", 10);
    /* The new worker's one connection frees up for /stats. */
    cli_close(&c[0]), cli_close(&c[1]);
    ck_assert_int_eq(stats_total(s.port, "handoff_failures"), 1);
    ck_assert_int_eq(stats_total(s.port, "handoffs"), 1);
    srv_stop(&s);
}
END_TEST

/* ---- (b) under load ----------------------------------------------------- */

#define L_CHAT      50
#define L_ECHO      50
#define L_LAZY      5           /* chat members that read in bursts, with a small buffer */
#define L_TICK_MS   20
#define L_PUB_EVERY 8           /* ticks between a publisher's messages */
#define L_HUPS      10
#define L_HUP_MS    1000
#define L_RUN_MS    ((L_HUPS + 1) * L_HUP_MS)
#define L_AHEAD     2           /* echo messages sent before their echo came */

struct lclient {
    struct client c;
    int idx;
    /* chat */
    int pub_seq;                /* messages published */
    uint8_t *half;              /* a frame's second half still to send */
    size_t half_len;
    int expect[L_CHAT];         /* next seq from each publisher */
    uint64_t last_id;
    /* echo */
    int k_send, k_recv, step;   /* step: 2 * the fragment under way (0, 2, 4) */
    uint8_t *frame;             /* the fragment frame being sent */
    size_t frame_len, frame_cut;
};

static struct lclient lc[L_CHAT + L_ECHO];

static size_t echo_len(int idx, int k) { return 300 + (size_t)((idx * 37 + k * 101) % 1700); }

/* Message K of echo client IDX: text for odd clients (code points cut by fragments), else binary. */
static uint8_t *echo_msg(int idx, int k, size_t *len)
{
    *len = echo_len(idx, k);
    return idx % 2 ? it_make_text(*len) : it_make_binary(*len, (uint32_t)(idx * 1000 + k + 1));
}

/* One tick of echo client L: half of one of the three fragments of its current message. */
static void echo_step(struct lclient *l, int sending)
{
    if (l->frame == NULL) {
        if (!sending || l->k_send - l->k_recv >= L_AHEAD)
            return;
        size_t len;
        uint8_t *msg = echo_msg(l->idx, l->k_send, &len);
        int f = l->step / 2;
        size_t a = len / 3, b = 2 * len / 3;
        size_t from = f == 0 ? 0 : f == 1 ? a : b, to = f == 0 ? a : f == 1 ? b : len;
        int bits = (f == 0 ? (l->idx % 2 ? WS_OP_TEXT : WS_OP_BIN) : WS_OP_CONT) |
                   (f == 2 ? WS_FIN : 0);
        l->frame = wsc_frame_build(bits, msg + from, to - from, &l->frame_len);
        l->frame_cut = (l->frame_len + 5) / 2;      /* inside the payload */
        free(msg);
        ck_assert_int_eq(cli_send(&l->c, l->frame, l->frame_cut), 0);
        return;
    }
    ck_assert_int_eq(cli_send(&l->c, l->frame + l->frame_cut, l->frame_len - l->frame_cut), 0);
    free(l->frame);
    l->frame = NULL;
    l->step += 2;       /* the next fragment */
    if (l->step == 6) {
        l->step = 0;
        l->k_send++;
    }
}

static void echo_recv(struct lclient *l, const struct wsc_msg *m)
{
    size_t len;
    uint8_t *want = echo_msg(l->idx, l->k_recv, &len);
    ck_assert_msg(m->opcode == (l->idx % 2 ? WS_OP_TEXT : WS_OP_BIN) && m->fin &&
                  m->len == len && memcmp(m->data, want, len) == 0,
                  "echo client %d: message %d wrong (%zu bytes, want %zu)", l->idx, l->k_recv,
                  m->len, len);
    free(want);
    l->k_recv++;
}

/* Publisher L: every L_PUB_EVERY ticks a message, its frame sent in two halves. */
static void chat_step(struct lclient *l, int tick, int sending)
{
    if (l->half != NULL) {
        ck_assert_int_eq(cli_send(&l->c, l->half, l->half_len), 0);
        free(l->half);
        l->half = NULL;
        return;
    }
    if (!sending || (tick + l->idx) % L_PUB_EVERY != 0)
        return;
    char body[96];
    int n = snprintf(body, sizeof body, "{\"type\":\"message\",\"text\":\"c%d-%d\"}", l->idx,
                     l->pub_seq++);
    size_t flen;
    uint8_t *fr = wsc_frame_build(WS_FIN | WS_OP_TEXT, body, (size_t)n, &flen);
    size_t cut = 6 + (size_t)n / 2;
    ck_assert_int_eq(cli_send(&l->c, fr, cut), 0);
    l->half_len = flen - cut;
    l->half = malloc(l->half_len);
    memcpy(l->half, fr + cut, l->half_len);
    free(fr);
}

static void chat_recv(struct lclient *l, const struct wsc_msg *m)
{
    uint64_t id;
    char t[128];
    if (!chat_message(m, &id, t, sizeof t))
        return;
    int p, seq;
    ck_assert_msg(sscanf(t, "c%d-%d", &p, &seq) == 2 && p >= 0 && p < L_CHAT, "text %s", t);
    ck_assert_msg(id > l->last_id, "member %d: id %llu after %llu", l->idx,
                  (unsigned long long)id, (unsigned long long)l->last_id);
    l->last_id = id;
    ck_assert_msg(seq == l->expect[p], "member %d: c%d-%d, want c%d-%d (%s)", l->idx, p, seq,
                  p, l->expect[p], seq < l->expect[p] ? "doubled" : "lost or reordered");
    l->expect[p]++;
}

/* Everything that arrived for L. */
static void load_read(struct lclient *l, int chat)
{
    for (;;) {
        struct wsc_msg m;
        int rc = wsc_recv(&l->c, &m, 0);
        ck_assert_msg(rc != 0, "%s client %d: connection closed", chat ? "chat" : "echo", l->idx);
        if (rc < 0)
            return;
        ck_assert_msg(m.opcode != WS_OP_CLOSE, "%s client %d: closed with %d",
                      chat ? "chat" : "echo", l->idx,
                      m.len >= 2 ? m.data[0] << 8 | m.data[1] : -1);
        if (m.opcode == WS_OP_TEXT || m.opcode == WS_OP_BIN) {
            if (chat)
                chat_recv(l, &m);
            else
                echo_recv(l, &m);
        }
        wsc_msg_free(&m);
    }
}

static int load_done(void)
{
    for (int i = 0; i < L_CHAT; i++)
        for (int p = 0; p < L_CHAT; p++)
            if (lc[i].expect[p] != lc[p].pub_seq || lc[p].half != NULL)
                return 0;
    for (int i = L_CHAT; i < L_CHAT + L_ECHO; i++)
        if (lc[i].k_recv != lc[i].k_send || lc[i].frame != NULL || lc[i].step != 0)
            return 0;
    return 1;
}

/*
 * 50 chat members publishing (each frame in two halves a tick apart, 5 of
 * them reading in bursts through a small buffer) and 50 echo clients
 * always inside a fragmented message (each fragment in two halves), through
 * 10 reloads a second apart. Then everyone finishes: every member has
 * every publisher's messages once and in order, every echo client every
 * echo, nobody was closed, and /stats counts no failure.
 */
START_TEST(load_ten_reloads)
{
    struct server s;
    srv_start(&s, "workers 2\nrate_limit 0\nworker_shutdown_timeout 5s");
    ck_assert(srv_wait_worker_count(&s, 2, 3000));
    memset(lc, 0, sizeof lc);
    for (int i = 0; i < L_CHAT; i++) {
        lc[i].idx = i;
        char path[64];
        snprintf(path, sizeof path, "/chat/load?nick=m%d", i);
        chat_open(&lc[i].c, s.port, path, i < L_LAZY ? 8192 : 0);
        chat_until_type(&lc[i].c, "history_end");
    }
    for (int i = L_CHAT; i < L_CHAT + L_ECHO; i++) {
        lc[i].idx = i - L_CHAT;
        wsc_open(&lc[i].c, s.port);
    }
    struct pollfd pfd[L_CHAT + L_ECHO];
    int64_t t0 = it_now_ms(), next_tick = t0, next_hup = t0 + L_HUP_MS;
    int hups = 0, tick = 0;
    int64_t end = t0 + L_RUN_MS + 8000;
    for (;;) {
        int64_t now = it_now_ms();
        ck_assert_msg(now < end, "load not finished: %d reloads", hups);
        int sending = now - t0 < L_RUN_MS;
        if (hups < L_HUPS && now >= next_hup) {
            ck_assert_int_eq(kill(s.pid, SIGHUP), 0);
            hups++;
            next_hup += L_HUP_MS;
        }
        if (now >= next_tick) {
            for (int i = 0; i < L_CHAT; i++)
                chat_step(&lc[i], tick, sending);
            for (int i = L_CHAT; i < L_CHAT + L_ECHO; i++)
                echo_step(&lc[i], sending || lc[i].step != 0);
            tick++;
            next_tick += L_TICK_MS;
        }
        if (!sending && hups == L_HUPS && load_done())
            break;
        int lazy_pause = sending && (tick / 25) % 2 == 1;
        for (int i = 0; i < L_CHAT + L_ECHO; i++) {
            pfd[i].fd = lc[i].c.fd;
            pfd[i].events = i < L_LAZY && lazy_pause ? 0 : POLLIN;
            pfd[i].revents = 0;
            /* Bytes a send() read while it waited are parsed here too. */
            if (pfd[i].events && cli_pending(&lc[i].c) > 0)
                load_read(&lc[i], i < L_CHAT);
        }
        int wait = (int)(next_tick - it_now_ms());
        poll(pfd, L_CHAT + L_ECHO, wait > 0 ? wait : 0);
        for (int i = 0; i < L_CHAT + L_ECHO; i++)
            if (pfd[i].revents)
                load_read(&lc[i], i < L_CHAT);
    }
    long long moved = stats_total(s.port, "handoffs");
    long long failed = stats_total(s.port, "handoff_failures");
    int published = 0, echoed = 0;
    for (int i = 0; i < L_CHAT; i++)
        published += lc[i].pub_seq;
    for (int i = L_CHAT; i < L_CHAT + L_ECHO; i++)
        echoed += lc[i].k_recv;
    fprintf(stderr, "handoff load: %d reloads, %lld hand-overs, %lld failed, %d messages "
            "published (each to %d members), %d echoes, %lld ms\n", hups, moved, failed,
            published, L_CHAT, echoed, (long long)(it_now_ms() - t0));
    ck_assert_int_eq(failed, 0);
    ck_assert_int_ge(moved, (long long)L_HUPS * (L_CHAT + L_ECHO));
    for (int i = 0; i < L_CHAT + L_ECHO; i++)
        cli_close(&lc[i].c);
    srv_stop(&s);
}
END_TEST

Suite *handoff_suite(void)
{
    Suite *s = suite_create("handoff");
    TCase *tc = tcase_create("busy");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, echo_mid_frame_crosses_reload);
    tcase_add_test(tc, echo_queued_output_crosses_reload);
    tcase_add_test(tc, chat_backlog_crosses_reload);
    tcase_add_test(tc, refused_closes_with_1012);
    suite_add_tcase(s, tc);

    tc = tcase_create("load");
    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, load_ten_reloads);
    suite_add_tcase(s, tc);
    return s;
}

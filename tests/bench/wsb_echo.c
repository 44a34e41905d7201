/*
 * wsb_echo: C connections to /echo, each in a closed loop: send one
 * B-byte message, wait for it to come back, compare every byte, send the
 * next. Reports round trips/s and round-trip latency.
 *
 * The payload of (connection, sequence) is generated, not stored: the
 * same function regenerates it to compare the echo, so a swapped, stale or
 * corrupted echo is caught without keeping a copy per connection.
 */
#include <stdlib.h>
#include <string.h>

#include "wsb.h"

struct echoer {
    uint64_t seq;          /* sequence of the message in flight */
    uint64_t t_sent;       /* 0 = nothing in flight */
};

struct echo {
    const struct wsb_opts *o;
    struct wsb_loop *l;
    struct wsb_conn *conns;
    struct echoer *e;
    int       n, sending, op;
    char     *buf;         /* one generated payload */
    uint64_t  round_trips, mismatches, wrong_opcode, drops, outstanding;
    double    loop_cpu;    /* generator CPU during the closed loop */
    struct wsb_hist rtt;
};

/* Bytes derived from (id, seq) by a small LCG; ASCII letters for text. */
static void payload_gen(char *dst, size_t n, uint32_t id, uint64_t seq,
                        int text)
{
    uint64_t x = (seq + 1) * 0x9E3779B97F4A7C15ull ^ ((uint64_t)id << 32);
    for (size_t i = 0; i < n; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        uint8_t b = (uint8_t)(x >> 56);
        dst[i] = text ? (char)('a' + b % 26) : (char)b;
    }
}

static void echo_send(struct echo *s, struct wsb_conn *c)
{
    struct echoer *e = &s->e[c->id];
    payload_gen(s->buf, s->o->bytes, c->id, e->seq, s->o->text);
    e->t_sent = wsb_now_ns();
    s->outstanding++;
    /* A failed send may already have ended c, and on_done undid this. */
    if (wsb_conn_send(s->l, c, s->op, s->buf, s->o->bytes) < 0 && e->t_sent) {
        e->t_sent = 0;
        s->outstanding--;
    }
}

static void on_message(struct wsb_conn *c, int op, const char *p, size_t n,
                       void *ud)
{
    struct echo *s = ud;
    struct echoer *e = &s->e[c->id];
    if (!e->t_sent) {
        s->mismatches++;       /* nothing was asked: an unsolicited frame */
        return;
    }
    uint64_t now = wsb_loop_rx_ns(s->l);
    if (op != s->op)
        s->wrong_opcode++;
    payload_gen(s->buf, s->o->bytes, c->id, e->seq, s->o->text);
    if (n != s->o->bytes || memcmp(p, s->buf, n) != 0)
        s->mismatches++;
    wsb_hist_add(&s->rtt, now - e->t_sent);
    s->round_trips++;
    s->outstanding--;
    e->t_sent = 0;
    e->seq++;
    if (s->sending)
        echo_send(s, c);
}

static void on_done(struct wsb_conn *c, void *ud)
{
    struct echo *s = ud;
    if (!c->was_open)
        return;
    if (s->e[c->id].t_sent) {
        s->outstanding--;
        s->e[c->id].t_sent = 0;
    }
    if (s->sending || !c->initiated)
        s->drops++;
}

static const char *echo_path(int i, void *ud)
{
    (void)i;
    (void)ud;
    return "/echo";
}

/* Closed loop for the duration, then wait (bounded) for the last echoes. */
static int echo_loop(struct echo *s, double *active_s)
{
    double cpu0 = wsb_cpu_s();
    s->sending = 1;
    uint64_t t0 = wsb_now_ns();
    for (int i = 0; i < s->n; i++)
        if (s->conns[i].state == WSB_ST_OPEN)
            echo_send(s, &s->conns[i]);
    uint64_t end = t0 + (uint64_t)(s->o->duration * 1e9);
    while (wsb_now_ns() < end && !wsb_deadline_passed())
        if (wsb_loop_poll(s->l, 20) < 0)
            return -1;
    s->sending = 0;
    *active_s = (double)(wsb_now_ns() - t0) / 1e9;
    s->loop_cpu = wsb_cpu_s() - cpu0;
    uint64_t limit = wsb_now_ns() + (uint64_t)(s->o->drain * 1e9);
    while (s->outstanding > 0 && wsb_now_ns() < limit &&
           !wsb_deadline_passed())
        if (wsb_loop_poll(s->l, 20) < 0)
            return -1;
    return 0;
}

static void echo_report(struct echo *s, const struct wsb_open_result *r,
                        double active)
{
    FILE *h = wsb_human();
    double rps = active > 0 ? (double)s->round_trips / active : 0;
    fprintf(h, "  open            %d/%d in %.2f s\n", r->opened, s->n,
            r->seconds);
    for (int i = 1; i < WSB_FAIL_COUNT; i++)
        if (r->fail[i])
            fprintf(h, "  open failures   %s: %llu\n", wsb_fail_name(i),
                    (unsigned long long)r->fail[i]);
    fprintf(h, "  round trips     %llu in %.2f s = %.0f/s\n",
            (unsigned long long)s->round_trips, active, rps);
    fprintf(h, "  latency ms      p50 %.3f  p99 %.3f  p99.9 %.3f  max %.3f\n",
            wsb_hist_quantile(&s->rtt, 0.5) / 1e6,
            wsb_hist_quantile(&s->rtt, 0.99) / 1e6,
            wsb_hist_quantile(&s->rtt, 0.999) / 1e6,
            (s->rtt.count ? s->rtt.max : 0) / 1e6);
    fprintf(h, "  errors          mismatches %llu, wrong opcode %llu, "
            "dropped %llu, unanswered %llu\n",
            (unsigned long long)s->mismatches,
            (unsigned long long)s->wrong_opcode,
            (unsigned long long)s->drops,
            (unsigned long long)s->outstanding);
    wsb_json_int("conns", s->n);
    wsb_json_int("bytes", (int64_t)s->o->bytes);
    wsb_json_str("opcode", s->o->text ? "text" : "binary");
    wsb_json_int("opened", r->opened);
    wsb_json_int("open_failed", r->failed);
    wsb_json_int("round_trips", (int64_t)s->round_trips);
    wsb_json_num("round_trips_per_s", rps);
    wsb_json_hist_ms("latency", &s->rtt);
    wsb_json_int("mismatches", (int64_t)s->mismatches);
    wsb_json_int("wrong_opcode", (int64_t)s->wrong_opcode);
    wsb_json_int("drops", (int64_t)s->drops);
    wsb_json_int("unanswered", (int64_t)s->outstanding);
    wsb_report_cpu("loop", "generator_loop", active, s->loop_cpu);
}

int wsb_echo_run(const struct wsb_opts *o)
{
    struct echo s;
    memset(&s, 0, sizeof s);
    s.o = o;
    s.n = o->conns;
    s.op = o->text ? WSB_OP_TEXT : WSB_OP_BINARY;
    s.conns = calloc((size_t)s.n, sizeof *s.conns);
    s.e = calloc((size_t)s.n, sizeof *s.e);
    s.buf = malloc(o->bytes + 1);
    wsb_hist_init(&s.rtt);
    struct wsb_handlers hd = { NULL, on_message, on_done };
    if (!s.conns || !s.e || !s.buf || !(s.l = wsb_loop_create(o, &hd, &s))) {
        fprintf(stderr, "wsbench: out of memory\n");
        free(s.conns); free(s.e); free(s.buf);
        return 2;
    }
    fprintf(wsb_human(), "echo: %d connections, %zu-byte %s messages, "
            "%.1f s closed loop\n", s.n, o->bytes,
            o->text ? "text" : "binary", o->duration);
    double cpu0 = wsb_cpu_s(), active = 0;
    uint64_t w0 = wsb_now_ns();
    struct wsb_open_result r = { 0 };
    wsb_open_all(s.l, s.conns, s.n, echo_path, &s, &r);
    int rc = 2;
    if (r.opened > 0 && echo_loop(&s, &active) == 0) {
        echo_report(&s, &r, active);
        rc = r.failed || s.mismatches || s.wrong_opcode || s.drops ||
             s.outstanding || s.round_trips == 0 ? 1 : 0;
    } else {
        fprintf(wsb_human(), "  could not run: no connection opened (%s: "
                "%llu)\n", wsb_fail_name(WSB_FAIL_REFUSED),
                (unsigned long long)r.fail[WSB_FAIL_REFUSED]);
    }
    wsb_close_all(s.l, s.conns, s.n);
    wsb_report_cpu("total", "generator", (double)(wsb_now_ns() - w0) / 1e9,
                   wsb_cpu_s() - cpu0);
    wsb_json_int("pass", rc == 0);
    fprintf(wsb_human(), "  result          %s\n", rc == 0 ? "PASS" : "FAIL");
    wsb_loop_destroy(s.l);
    free(s.conns); free(s.e); free(s.buf);
    return rc;
}

/*
 * wsb_conns: how many connections the server takes, how fast, and what an
 * idle one costs it.
 *
 * Open N connections to /echo (handshakes/s over the open phase, failures
 * by reason), hold them idle, then read the server's memory: the sum of
 * VmRSS (and Pss) over the master and its children, at N minus before the
 * first connect, divided by N. Last, one short echo on every connection
 * proves they were all still alive, so a server that silently dropped
 * idle connections cannot report a flattering figure.
 *
 * `join` is the same with chat members: N connections join one room
 * (/chat/ROOM?nick=mI, the server's own history_size), so joins/s and the
 * memory of an idle member compare with /echo's in the same run. It counts
 * the frames members receive while the room fills (the join cost the
 * server makes every member pay) and, instead of an echo (which would be a
 * message to N members), checks every member got its history_end.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wsb.h"

struct conns {
    const struct wsb_opts *o;
    struct wsb_loop *l;
    struct wsb_conn *c;
    int       n;
    uint64_t  drops, echoed, bad_echo;
    uint8_t  *answered;
    int       chat;                 /* the join scenario */
    uint64_t  frames;               /* join: text frames received by members */
};

static void on_message(struct wsb_conn *c, int op, const char *p, size_t n,
                       void *ud)
{
    struct conns *s = ud;
    if (s->chat) {
        static const char end[] = "\"type\":\"history_end\"";
        s->frames++;
        if (op == WSB_OP_TEXT && !s->answered[c->id] && n >= sizeof end - 1 &&
            memmem(p, n, end, sizeof end - 1) != NULL) {
            s->answered[c->id] = 1;
            s->echoed++;
        }
        return;
    }
    if (op == WSB_OP_TEXT && n == 5 && memcmp(p, "alive", 5) == 0 &&
        !s->answered[c->id]) {
        s->answered[c->id] = 1;
        s->echoed++;
    } else {
        s->bad_echo++;
    }
}

static void on_done(struct wsb_conn *c, void *ud)
{
    struct conns *s = ud;
    /* Anything but our own close at the end is the server dropping an
     * open connection (or a protocol error). */
    if (c->was_open && !c->initiated)
        s->drops++;
}

static const char *conns_path(int i, void *ud)
{
    const struct conns *s = ud;
    if (!s->chat)
        return "/echo";
    /* Used at once by wsb_conn_start, so one buffer serves every call. */
    static char path[96];
    snprintf(path, sizeof path, "/chat/%s?nick=m%d",
             s->o->room[0] ? s->o->room : "benchjoin", i);
    return path;
}

static int idle_for(struct conns *s, double seconds)
{
    uint64_t end = wsb_now_ns() + (uint64_t)(seconds * 1e9);
    while (wsb_now_ns() < end && !wsb_deadline_passed())
        if (wsb_loop_poll(s->l, 50) < 0)
            return -1;
    return 0;
}

/* One echo per open connection; returns how many should answer. */
static uint64_t probe_alive(struct conns *s)
{
    uint64_t asked = 0;
    for (int i = 0; i < s->n; i++)
        if (s->c[i].state == WSB_ST_OPEN &&
            wsb_conn_send(s->l, &s->c[i], WSB_OP_TEXT, "alive", 5) == 0)
            asked++;
    uint64_t limit = wsb_now_ns() + (uint64_t)(s->o->connect_timeout * 1e9);
    while (s->echoed < asked && wsb_now_ns() < limit &&
           !wsb_deadline_passed())
        if (wsb_loop_poll(s->l, 20) < 0)
            break;
    return asked;
}

static void report_open(const struct wsb_open_result *r, int n,
                        const struct wsb_hist *hs)
{
    FILE *h = wsb_human();
    double rate = r->seconds > 0 ? r->opened / r->seconds : 0;
    fprintf(h, "  open            %d/%d in %.2f s = %.0f handshakes/s\n",
            r->opened, n, r->seconds, rate);
    fprintf(h, "  handshake ms    p50 %.2f  p99 %.2f  max %.2f\n",
            wsb_hist_quantile(hs, 0.5) / 1e6,
            wsb_hist_quantile(hs, 0.99) / 1e6,
            (hs->count ? hs->max : 0) / 1e6);
    fprintf(h, "  failures        %d", r->failed);
    for (int i = 1; i < WSB_FAIL_COUNT; i++)
        if (r->fail[i])
            fprintf(h, "  %s %llu", wsb_fail_name(i),
                    (unsigned long long)r->fail[i]);
    fputc('\n', h);
    wsb_json_int("conns", n);
    wsb_json_int("opened", r->opened);
    wsb_json_num("open_seconds", r->seconds);
    wsb_json_num("handshakes_per_s", rate);
    wsb_json_hist_ms("handshake", hs);
    wsb_json_open("failures");
    wsb_json_int("total", r->failed);
    for (int i = 1; i < WSB_FAIL_COUNT; i++)
        wsb_json_int(wsb_fail_name(i), (int64_t)r->fail[i]);
    wsb_json_close();
}

static void report_memory(int have, const struct wsb_server_usage *u0,
                          const struct wsb_server_usage *u1, int opened)
{
    FILE *h = wsb_human();
    if (!have || opened <= 0) {
        fprintf(h, "  server memory   unknown (give --server-pid or "
                "--pid-file)\n");
        wsb_json_int("server_known", 0);
        return;
    }
    double rss = ((double)u1->rss_kb - (double)u0->rss_kb) * 1024 / opened;
    double pss = ((double)u1->pss_kb - (double)u0->pss_kb) * 1024 / opened;
    fprintf(h, "  server RSS      %llu kB -> %llu kB over %d processes\n",
            (unsigned long long)u0->rss_kb, (unsigned long long)u1->rss_kb,
            u1->nproc);
    fprintf(h, "  per idle conn   %.0f bytes RSS, %.0f bytes PSS\n", rss, pss);
    wsb_json_int("server_known", 1);
    wsb_json_int("server_processes", u1->nproc);
    wsb_json_int("rss_before_kb", (int64_t)u0->rss_kb);
    wsb_json_int("rss_after_kb", (int64_t)u1->rss_kb);
    wsb_json_num("rss_per_conn_bytes", rss);
    wsb_json_num("pss_per_conn_bytes", pss);
    double data = ((double)u1->data_kb - (double)u0->data_kb) * 1024 / opened;
    fprintf(wsb_human(), "  without code    %.0f bytes RSS per idle conn (anon + shmem: "
            "file-backed code pages, faulted in once, left out)\n", data);
    wsb_json_num("mem_per_conn_bytes", data);
}

static int conns_measure(struct conns *s)
{
    pid_t spid = wsb_server_pid(s->o);
    struct wsb_server_usage u0, u1;
    int have = wsb_server_usage(spid, &u0) == 0;
    struct wsb_hist hs;
    wsb_hist_init(&hs);
    struct wsb_open_result r = { .hs = &hs };
    double cpu0 = wsb_cpu_s();
    wsb_open_all(s->l, s->c, s->n, conns_path, s, &r);
    double open_cpu = wsb_cpu_s() - cpu0;
    report_open(&r, s->n, &hs);
    wsb_report_cpu("open", "generator_open", r.seconds, open_cpu);
    if (r.opened == 0)
        return 2;
    if (idle_for(s, s->o->hold) < 0)
        return 2;
    have = have && wsb_server_usage(spid, &u1) == 0;
    report_memory(have, &u0, &u1, r.opened);
    uint64_t asked = s->chat ? (uint64_t)r.opened : probe_alive(s);
    if (s->chat) {
        double per = r.opened > 0 ? (double)s->frames / r.opened : 0;
        fprintf(wsb_human(), "  frames          %llu received by %d members while joining "
                "and idle = %.1f per member\n", (unsigned long long)s->frames, r.opened, per);
        wsb_json_int("frames", (int64_t)s->frames);
        wsb_json_num("frames_per_member", per);
    }
    const struct wsb_loop_stats *ls = wsb_loop_stats(s->l);
    FILE *h = wsb_human();
    fprintf(h, "  still alive     %llu/%d %s after %.1f s "
            "idle; %llu dropped after opening (%llu protocol errors)\n",
            (unsigned long long)s->echoed, r.opened,
            s->chat ? "got their history_end" : "answered an echo", s->o->hold,
            (unsigned long long)s->drops,
            (unsigned long long)ls->protocol_errors);
    wsb_json_int("protocol_errors", (int64_t)ls->protocol_errors);
    wsb_json_int("alive", (int64_t)s->echoed);
    wsb_json_int("dropped", (int64_t)s->drops);
    wsb_json_int("bad_echo", (int64_t)s->bad_echo);
    return r.failed || s->drops || s->bad_echo || s->echoed < asked ||
           asked < (uint64_t)r.opened ? 1 : 0;
}

int wsb_conns_run(const struct wsb_opts *o)
{
    struct conns s;
    memset(&s, 0, sizeof s);
    s.o = o;
    s.n = o->conns;
    s.chat = strcmp(o->scenario, "join") == 0;
    s.c = calloc((size_t)s.n, sizeof *s.c);
    s.answered = calloc((size_t)s.n, 1);
    struct wsb_handlers hd = { NULL, on_message, on_done };
    if (!s.c || !s.answered || !(s.l = wsb_loop_create(o, &hd, &s))) {
        fprintf(stderr, "wsbench: out of memory\n");
        free(s.c); free(s.answered);
        return 2;
    }
    fprintf(wsb_human(), "%s: %d idle %s, held %.1f s\n", o->scenario, s.n,
            s.chat ? "members of one chat room" : "connections to /echo", o->hold);
    double cpu0 = wsb_cpu_s();
    uint64_t w0 = wsb_now_ns();
    int rc = conns_measure(&s);
    uint64_t c0 = wsb_now_ns();
    wsb_close_all(s.l, s.c, s.n);
    double close_s = (double)(wsb_now_ns() - c0) / 1e9;
    fprintf(wsb_human(), "  closed all      in %.2f s (%llu close timeouts)\n",
            close_s, (unsigned long long)wsb_loop_stats(s.l)->close_timeouts);
    wsb_json_num("close_seconds", close_s);
    wsb_json_int("close_timeouts",
                 (int64_t)wsb_loop_stats(s.l)->close_timeouts);
    wsb_report_cpu("total", "generator", (double)(wsb_now_ns() - w0) / 1e9,
                   wsb_cpu_s() - cpu0);
    wsb_json_int("pass", rc == 0);
    fprintf(wsb_human(), "  result          %s\n", rc == 0 ? "PASS" : "FAIL");
    wsb_loop_destroy(s.l);
    free(s.c); free(s.answered);
    return rc;
}

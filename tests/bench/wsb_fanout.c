/*
 * wsb_fanout: S members of one room, P of them publishing at R msg/s in
 * total (open loop, paced by a timerfd), every member checked for every
 * message: exactly once, per-publisher order, one global id order.
 *
 * Each message text starts with a token "~b:<run>:<step>:<pub>:<seq>:<ns>~"
 * (run = a random nonce, so a token from another run can never pass for
 * ours; ns = intended send time since the run began) padded with 'x' to B
 * bytes; the server wraps it in its JSON envelope and we find the token
 * anywhere in the frame. Message k of a step goes to publisher k % P as
 * its sequence k / P, so (member, k) indexes one bit of a per-step bitmap:
 * a set bit seen again is a duplicate, an unset bit never seen is a loss.
 * Latency is measured from the intended send time, so a stalled generator
 * or a server that pushes back on publishers shows up instead of hiding
 * (no coordinated omission); the worst publish lag is reported beside it.
 * --ramp repeats the step on the same connections, doubling R (or
 * multiplying it by --ramp-factor) until a step loses a message or its
 * p99 passes --slo-ms.
 *
 * With --ports (several nodes of one cluster), member i connects to node
 * i % N, so members and the first P members that publish are spread
 * evenly; the checks are the same (one global id order across nodes), and
 * each step also reports per node, and for publisher and member on the
 * same node or on different ones, the deliveries and latency. Server CPU
 * is summed over every --pid-files master; --extra-pid (redis-server)
 * gets its own CPU figure.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wsb.h"

#define MAX_BITMAP_BYTES (512u * 1024 * 1024)
#define MAX_STEPS        30
#define TOKEN_MAX        96      /* "~b:" and five numbers, generously */

struct member {
    uint8_t  welcomed, ready, first_seen, dropped;
    uint64_t last_id;
};

struct step {
    double   rate, wall_s, cpu_s, srv_cpu_s, deliv_per_s, max_lag_ms;
    uint64_t planned, sent, send_fail, expected, received, dups;
    uint64_t reorders, id_reorders, late, bad_tokens, drops, errors;
    uint64_t foreign;          /* tokens of another run */
    int      members, pass, lat_ok;
    int      cut;              /* the global deadline ended it early */
    struct wsb_hist lat;
    /* Several nodes (--ports) only: figures per node, and for publisher
     * and member on one node (pair[0]) or on two (pair[1]). */
    struct node_fig {
        int      members;
        uint64_t received;
        double   p50_ms, p99_ms;
    } node[WSB_MAX_PORTS], pair[2];
    int      have_extra;       /* --extra-pid was sampled both times */
    double   extra_cpu_s;
};

struct fanout {
    const struct wsb_opts *o;
    struct wsb_loop *l;
    struct wsb_conn *conns;
    struct member *m;
    int      S, P, nready;
    int     *pub;              /* conn index of each publisher */
    uint32_t *last_seq;        /* S*P: last sequence + 1 seen, 0 = none */
    uint8_t  *bits;            /* S*K bits for the current step */
    uint64_t  K;               /* messages planned in the current step */
    uint64_t  epoch;           /* token timestamps count from here */
    uint32_t  run;             /* nonce in every token of this run */
    int       step_no, in_step;
    uint64_t  welcome_errors;
    uint16_t  first_drop_code;
    struct step *cur;
    int       N;               /* nodes: connection i is on node i % N */
    struct wsb_hist *node_lat; /* N histograms, then same- and cross-node */
    char     *text;            /* B bytes of message being built */
    size_t    text_len;
    char      path[128];
};

/* ---- receiving ---------------------------------------------------------- */

/* Decimal at *p up to a delimiter; advances *p past the delimiter. */
static int parse_u64(const char **p, const char *end, char delim,
                     uint64_t *out)
{
    const char *s = *p;
    uint64_t v = 0;
    if (s >= end || *s < '0' || *s > '9')
        return -1;
    while (s < end && *s >= '0' && *s <= '9') {
        v = v * 10 + (uint64_t)(*s - '0');
        s++;
    }
    if (s >= end || *s != delim)
        return -1;
    *out = v;
    *p = s + 1;
    return 0;
}

/* Token "~b:R:S:P:Q:T~" in p[0..n); 1 found and valid, 0 absent, -1 bad. */
static int token_find(const char *p, size_t n, uint64_t v[5])
{
    /* memchr is vectorised: cheaper than memmem on every delivered frame. */
    const char *t = p, *stop = p + n;
    for (;;) {
        t = memchr(t, '~', (size_t)(stop - t));
        if (t == NULL || stop - t < 3)
            return 0;
        if (t[1] == 'b' && t[2] == ':')
            break;
        t++;
    }
    const char *s = t + 3, *end = p + n;
    if (parse_u64(&s, end, ':', &v[0]) || parse_u64(&s, end, ':', &v[1]) ||
        parse_u64(&s, end, ':', &v[2]) || parse_u64(&s, end, ':', &v[3]) ||
        parse_u64(&s, end, '~', &v[4]))
        return -1;
    return 1;
}

static int has_type(const char *p, size_t n, const char *type)
{
    char pat[48];
    int k = snprintf(pat, sizeof pat, "\"type\":\"%s\"", type);
    return memmem(p, n, pat, (size_t)k) != NULL;
}

/* The server's global id, when the frame carries one; 0 otherwise. */
static uint64_t frame_id(const char *p, size_t n)
{
    const char *s = memmem(p, n, "\"id\":", 5);
    uint64_t id = 0;
    if (!s)
        return 0;
    s += 5;
    while (s < p + n && *s >= '0' && *s <= '9')
        id = id * 10 + (uint64_t)(*s++ - '0');
    return id;
}

/* Before history_end: welcome first, history ignored (§ chat protocol). */
static void member_joining(struct fanout *f, struct member *m,
                           const char *p, size_t n)
{
    if (!m->first_seen) {
        m->first_seen = 1;
        m->welcomed = (uint8_t)has_type(p, n, "welcome");
        if (!m->welcomed)
            f->welcome_errors++;
    }
    if (has_type(p, n, "history_end")) {
        m->ready = 1;
        f->nready++;
    }
}

/* v: run, step, publisher, sequence, intended send time (token order). */
static void count_delivery(struct fanout *f, int mi, const uint64_t v[5],
                           uint64_t id)
{
    struct step *st = f->cur;
    struct member *m = &f->m[mi];
    uint64_t pubi = v[2], seq = v[3];
    uint64_t k = seq * (uint64_t)f->P + pubi;
    if (pubi >= (uint64_t)f->P || k >= f->K) {
        st->bad_tokens++;
        return;
    }
    uint64_t bit = (uint64_t)mi * f->K + k;
    uint8_t mask = (uint8_t)(1u << (bit & 7));
    if (f->bits[bit >> 3] & mask) {
        st->dups++;
        return;
    }
    f->bits[bit >> 3] |= mask;
    /* One global order (design: the id is the ring sequence): ids only
     * grow for each member. */
    if (id) {
        if (id <= m->last_id)
            st->id_reorders++;
        else
            m->last_id = id;
    }
    st->received++;
    uint32_t *last = &f->last_seq[(size_t)mi * f->P + pubi];
    if (seq + 1 <= *last)
        st->reorders++;
    else
        *last = (uint32_t)(seq + 1);
    uint64_t now = wsb_loop_rx_ns(f->l), sent = f->epoch + v[4];
    uint64_t lat = now > sent ? now - sent : 0;
    wsb_hist_add(&st->lat, lat);
    if (f->N > 1) {
        int node = mi % f->N, pnode = f->pub[pubi] % f->N;
        st->node[node].received++;
        wsb_hist_add(&f->node_lat[node], lat);
        st->pair[node != pnode].received++;
        wsb_hist_add(&f->node_lat[f->N + (node != pnode)], lat);
    }
}

static void on_message(struct wsb_conn *c, int op, const char *p, size_t n,
                       void *ud)
{
    struct fanout *f = ud;
    struct member *m = &f->m[c->id];
    if (op != WSB_OP_TEXT)
        return;
    if (!m->ready) {
        member_joining(f, m, p, n);
        return;
    }
    uint64_t v[5];
    int t = token_find(p, n, v);
    if (t == 0) {
        /* Presence events and the like; a rejected publish explains loss. */
        if (f->cur && has_type(p, n, "error"))
            f->cur->errors++;
        return;
    }
    if (!f->cur)
        return;
    if (t < 0) {
        f->cur->bad_tokens++;
        return;
    }
    if (v[0] != f->run) {
        f->cur->foreign++;     /* another run's message leaked in */
        return;
    }
    if (v[1] != (uint64_t)f->step_no || !f->in_step) {
        f->cur->late++;        /* a previous step's straggler */
        return;
    }
    count_delivery(f, (int)c->id, v, frame_id(p, n));
}

static void on_done(struct wsb_conn *c, void *ud)
{
    struct fanout *f = ud;
    struct member *m = &f->m[c->id];
    if (!m->ready || m->dropped || !f->in_step)
        return;
    m->dropped = 1;
    if (f->cur)
        f->cur->drops++;
    if (!f->first_drop_code)
        f->first_drop_code = c->close_code ? c->close_code : 1006;
}

/* ---- setup -------------------------------------------------------------- */

static const char *member_path(int i, void *ud)
{
    struct fanout *f = ud;
    snprintf(f->path, sizeof f->path, "/chat/%s?nick=b%d", f->o->room, i);
    return f->path;
}

static int wait_ready(struct fanout *f, int opened)
{
    uint64_t limit = wsb_now_ns() + (uint64_t)(f->o->connect_timeout * 1e9);
    while (f->nready < opened && wsb_now_ns() < limit &&
           !wsb_deadline_passed())
        if (wsb_loop_poll(f->l, 20) < 0)
            return -1;
    return 0;
}

/* First P ready members publish: a member that never opened can't. */
static int pick_publishers(struct fanout *f)
{
    int p = 0;
    for (int i = 0; i < f->S && p < f->P; i++)
        if (f->m[i].ready && f->conns[i].state == WSB_ST_OPEN)
            f->pub[p++] = i;
    return p;
}

/* Several nodes: how members and publishers landed on them. */
static void nodes_line(const struct fanout *f)
{
    FILE *h = wsb_human();
    wsb_json_array("node_setup");
    fprintf(h, "  nodes          ");
    for (int k = 0; k < f->N; k++) {
        int mem = 0, pubs = 0;
        for (int i = k; i < f->S; i += f->N)
            mem += f->m[i].ready;
        for (int p = 0; p < f->P; p++)
            pubs += f->pub[p] % f->N == k;
        fprintf(h, " port %u: %d members, %d publishers%s", f->o->ports[k],
                mem, pubs, k + 1 < f->N ? ";" : "\n");
        wsb_json_open(NULL);
        wsb_json_int("node_port", f->o->ports[k]);
        wsb_json_int("node_ready", mem);
        wsb_json_int("node_publishers", pubs);
        wsb_json_close();
    }
    wsb_json_array_end();
}

/* ---- one step ----------------------------------------------------------- */

static void publish(struct fanout *f, uint64_t k, uint64_t intended)
{
    int pubi = (int)(k % (uint64_t)f->P);
    struct wsb_conn *c = &f->conns[f->pub[pubi]];
    int len = snprintf(f->text, f->text_len + TOKEN_MAX,
                       "~b:%u:%d:%d:%llu:%llu~", f->run, f->step_no, pubi,
                       (unsigned long long)(k / f->P),
                       (unsigned long long)(intended - f->epoch));
    size_t n = (size_t)len < f->text_len ? f->text_len : (size_t)len;
    memset(f->text + len, 'x', n - (size_t)len);
    if (wsb_conn_send(f->l, c, WSB_OP_TEXT, f->text, n) < 0)
        f->cur->send_fail++;
    else
        f->cur->sent++;
}

static int step_members(struct fanout *f, struct step *st)
{
    int n = 0;
    for (int i = 0; i < f->S; i++)
        if (f->m[i].ready && !f->m[i].dropped &&
            f->conns[i].state == WSB_ST_OPEN) {
            n++;
            st->node[i % f->N].members++;
        }
    return n;
}

/* Open-loop send phase: message k is due at t0 + k/R, sent when due. */
static int send_phase(struct fanout *f, struct step *st, uint64_t t0)
{
    double interval = 1e9 / st->rate;
    uint64_t k = 0, max_lag = 0;
    /* With every member gone there is nothing left to measure. */
    while (k < st->planned && !wsb_deadline_passed() &&
           st->drops < (uint64_t)st->members) {
        uint64_t now = wsb_now_ns();
        while (k < st->planned) {
            uint64_t due = t0 + (uint64_t)((double)k * interval);
            if (due > now)
                break;
            if (now - due > max_lag)
                max_lag = now - due;
            publish(f, k++, due);
        }
        if (k < st->planned)
            wsb_loop_arm(f->l, t0 + (uint64_t)((double)k * interval));
        if (wsb_loop_poll(f->l, 100) < 0)
            return -1;
    }
    wsb_loop_arm(f->l, 0);
    st->max_lag_ms = (double)max_lag / 1e6;
    return 0;
}

static int drain_phase(struct fanout *f, struct step *st, uint64_t *last_rx)
{
    uint64_t limit = wsb_now_ns() + (uint64_t)(f->o->drain * 1e9);
    uint64_t seen = st->received;
    *last_rx = wsb_now_ns();
    while (st->received < st->expected && wsb_now_ns() < limit &&
           st->drops < (uint64_t)st->members && !wsb_deadline_passed()) {
        if (wsb_loop_poll(f->l, 20) < 0)
            return -1;
        if (st->received != seen) {
            seen = st->received;
            *last_rx = wsb_now_ns();
        }
    }
    if (st->received == st->expected)
        *last_rx = wsb_now_ns();
    return 0;
}

static int step_bitmap(struct fanout *f, uint64_t planned)
{
    uint64_t bytes = ((uint64_t)f->S * planned + 7) / 8;
    if (bytes > MAX_BITMAP_BYTES)
        return -1;
    free(f->bits);
    f->bits = calloc(1, bytes ? bytes : 1);
    f->K = planned;
    memset(f->last_seq, 0, (size_t)f->S * f->P * sizeof *f->last_seq);
    return f->bits ? 0 : -1;
}

/* Quantiles of the per-node histograms into the step, once it ended. */
static void node_figures(struct fanout *f, struct step *st)
{
    for (int i = 0; i < f->N + 2 && f->N > 1; i++) {
        struct node_fig *nf = i < f->N ? &st->node[i] : &st->pair[i - f->N];
        nf->p50_ms = wsb_hist_quantile(&f->node_lat[i], 0.5) / 1e6;
        nf->p99_ms = wsb_hist_quantile(&f->node_lat[i], 0.99) / 1e6;
    }
}

static int run_step(struct fanout *f, struct step *st, const pid_t *spid,
                    int nspid)
{
    st->planned = (uint64_t)(st->rate * f->o->duration + 0.5);
    if (st->planned == 0)
        st->planned = 1;
    if (step_bitmap(f, st->planned) < 0)
        return -1;
    wsb_hist_init(&st->lat);
    for (int i = 0; i < f->N + 2 && f->N > 1; i++)
        wsb_hist_init(&f->node_lat[i]);
    f->cur = st;
    st->members = step_members(f, st);
    struct wsb_server_usage u0, u1, x0, x1;
    int have_srv = wsb_servers_usage(spid, nspid, &u0) == 0;
    int have_x = f->o->extra_pid > 0 &&
                 wsb_server_usage(f->o->extra_pid, &x0) == 0;
    double cpu0 = wsb_cpu_s();
    uint64_t t0 = wsb_now_ns() + 1000000, last_rx;
    f->in_step = 1;
    if (send_phase(f, st, t0) < 0)
        return -1;
    st->expected = (uint64_t)st->members * st->sent;
    if (drain_phase(f, st, &last_rx) < 0)
        return -1;
    f->in_step = 0;
    st->wall_s = (double)(wsb_now_ns() - t0) / 1e9;
    st->cpu_s = wsb_cpu_s() - cpu0;
    if (have_srv && wsb_servers_usage(spid, nspid, &u1) == 0)
        st->srv_cpu_s = u1.cpu_s - u0.cpu_s;
    if (have_x && wsb_server_usage(f->o->extra_pid, &x1) == 0) {
        st->have_extra = 1;
        st->extra_cpu_s = x1.cpu_s - x0.cpu_s;
    }
    node_figures(f, st);
    double active = (double)(last_rx - t0) / 1e9;
    st->deliv_per_s = active > 0 ? (double)st->received / active : 0;
    uint64_t lost = st->expected > st->received ? st->expected - st->received
                                                : 0;
    st->cut = wsb_deadline_passed();
    st->pass = !st->cut && lost == 0 && st->dups == 0 && st->reorders == 0 &&
               st->id_reorders == 0 && st->send_fail == 0 &&
               st->drops == 0 && st->bad_tokens == 0 && st->foreign == 0;
    st->lat_ok = wsb_hist_quantile(&st->lat, 0.99) <= f->o->slo_ms * 1e6;
    return 0;
}

/* ---- report ------------------------------------------------------------- */

static void step_row(FILE *h, const struct step *st, int i)
{
    uint64_t lost = st->expected > st->received ? st->expected - st->received
                                                : 0;
    fprintf(h, "  %4d %8.0f %8llu %10llu %7llu %5llu %5llu %10.0f %7.2f "
            "%7.2f %8.2f %8.2f %5.0f%% %5.0f%%  %s\n", i + 1, st->rate,
            (unsigned long long)st->sent, (unsigned long long)st->received,
            (unsigned long long)lost, (unsigned long long)st->dups,
            (unsigned long long)(st->reorders + st->id_reorders),
            st->deliv_per_s, wsb_hist_quantile(&st->lat, 0.5) / 1e6,
            wsb_hist_quantile(&st->lat, 0.99) / 1e6,
            wsb_hist_quantile(&st->lat, 0.999) / 1e6,
            (st->lat.count ? st->lat.max : 0) / 1e6,
            st->wall_s > 0 ? 100 * st->cpu_s / st->wall_s : 0,
            st->wall_s > 0 ? 100 * st->srv_cpu_s / st->wall_s : 0,
            st->cut ? "cut" : !st->pass ? "FAIL" : st->lat_ok ? "ok" : "slow");
}

/* Keys apart from the step's own (run-bench.sh reads the last "members"
 * or "received" of a report as the step's). */
static void node_json(const char *key, const struct node_fig *nf)
{
    wsb_json_open(key);
    if (nf->members)
        wsb_json_int("node_members", nf->members);
    wsb_json_int("node_received", (int64_t)nf->received);
    wsb_json_num("node_p50_ms", nf->p50_ms);
    wsb_json_num("node_p99_ms", nf->p99_ms);
    wsb_json_close();
}

static void step_json(const struct step *st, int nodes)
{
    uint64_t lost = st->expected > st->received ? st->expected - st->received
                                                : 0;
    wsb_json_open(NULL);
    wsb_json_num("rate", st->rate);
    wsb_json_int("members", st->members);
    wsb_json_int("sent", (int64_t)st->sent);
    wsb_json_int("send_failures", (int64_t)st->send_fail);
    wsb_json_int("expected", (int64_t)st->expected);
    wsb_json_int("received", (int64_t)st->received);
    wsb_json_int("lost", (int64_t)lost);
    wsb_json_int("duplicates", (int64_t)st->dups);
    wsb_json_int("reorders", (int64_t)st->reorders);
    wsb_json_int("id_reorders", (int64_t)st->id_reorders);
    wsb_json_int("late", (int64_t)st->late);
    wsb_json_int("bad_tokens", (int64_t)st->bad_tokens);
    wsb_json_int("foreign_tokens", (int64_t)st->foreign);
    wsb_json_int("member_drops", (int64_t)st->drops);
    wsb_json_int("server_errors", (int64_t)st->errors);
    wsb_json_num("deliveries_per_s", st->deliv_per_s);
    wsb_json_num("max_publish_lag_ms", st->max_lag_ms);
    wsb_json_hist_ms("latency", &st->lat);
    wsb_json_num("generator_cpu_fraction",
                 st->wall_s > 0 ? st->cpu_s / st->wall_s : 0);
    wsb_json_num("server_cpu_s", st->srv_cpu_s);
    wsb_json_num("wall_s", st->wall_s);
    if (st->have_extra)
        wsb_json_num("extra_cpu_s", st->extra_cpu_s);
    if (nodes > 1) {
        wsb_json_array("nodes");
        for (int i = 0; i < nodes; i++)
            node_json(NULL, &st->node[i]);
        wsb_json_array_end();
        node_json("same_node", &st->pair[0]);
        node_json("cross_node", &st->pair[1]);
    }
    wsb_json_int("pass", st->pass);
    wsb_json_int("latency_ok", st->lat_ok);
    wsb_json_int("cut_by_deadline", st->cut);
    wsb_json_close();
}

static void step_header(FILE *h)
{
    fprintf(h, "  step   rate/s     sent deliveries    lost   dup  "
            "reord  deliv/s   p50ms   p99ms  p99.9ms    maxms   gen   srv"
            "  result\n");
}

/* Several nodes: each step's figures per node and per pair of nodes. */
static void report_nodes(const struct fanout *f, const struct step *steps,
                         int n)
{
    FILE *h = wsb_human();
    fprintf(h, "  per node (member i on node i %% %d; same/cross: publisher "
            "and member on one node or two)\n", f->N);
    fprintf(h, "  step  node  port  members deliveries   p50ms   p99ms\n");
    for (int i = 0; i < n; i++) {
        const struct step *st = &steps[i];
        for (int k = 0; k < f->N + 2; k++) {
            const struct node_fig *nf = k < f->N ? &st->node[k]
                                                 : &st->pair[k - f->N];
            char name[16], port[8], mem[16];
            if (k < f->N) {
                snprintf(name, sizeof name, "%d", k + 1);
                snprintf(port, sizeof port, "%u", f->o->ports[k]);
                snprintf(mem, sizeof mem, "%d", nf->members);
            } else {
                snprintf(name, sizeof name, "%s", k == f->N ? "same" : "cross");
                snprintf(port, sizeof port, "-");
                snprintf(mem, sizeof mem, "-");
            }
            fprintf(h, "  %4d %5s %5s %8s %10llu %7.2f %7.2f\n", i + 1, name,
                    port, mem, (unsigned long long)nf->received, nf->p50_ms,
                    nf->p99_ms);
        }
    }
}

/* The table rows were printed as the steps ended; JSON and notes here. */
static void report_steps(struct fanout *f, const struct step *steps, int n)
{
    FILE *h = wsb_human();
    wsb_json_array("steps");
    for (int i = 0; i < n; i++)
        step_json(&steps[i], f->N);
    wsb_json_array_end();
    if (f->N > 1)
        report_nodes(f, steps, n);
    for (int i = 0; i < n; i++)
        if (steps[i].wall_s > 0 && steps[i].cpu_s / steps[i].wall_s > 0.9)
            fprintf(h, "  note: step %d used %.0f%% of a core in wsbench: "
                    "its figures are bounded by the generator\n", i + 1,
                    100 * steps[i].cpu_s / steps[i].wall_s);
    for (int i = 0; i < n; i++)
        if (steps[i].max_lag_ms > 50)
            fprintf(h, "  note: step %d publish lag up to %.1f ms: the "
                    "generator fell behind its schedule\n", i + 1,
                    steps[i].max_lag_ms);
    for (int i = 0; i < n; i++)
        if (steps[i].send_fail)
            fprintf(h, "  note: step %d could not send %llu messages "
                    "(publisher connection gone)\n", i + 1,
                    (unsigned long long)steps[i].send_fail);
    for (int i = 0; i < n; i++)
        if (steps[i].errors)
            fprintf(h, "  note: step %d got %llu {\"type\":\"error\"} "
                    "frames from the server\n", i + 1,
                    (unsigned long long)steps[i].errors);
    if (f->first_drop_code)
        fprintf(h, "  note: members dropped by the server, first close "
                "code %u\n", f->first_drop_code);
    for (int i = 0; i < n; i++)
        if (steps[i].have_extra && steps[i].wall_s > 0)
            fprintf(h, "  step %d: pid %d (--extra-pid) used %.0f%% of a "
                    "core\n", i + 1, (int)f->o->extra_pid,
                    100 * steps[i].extra_cpu_s / steps[i].wall_s);
}

/* Why the run ended: the first failing step's defect, or its limits. */
static const char *stop_reason(const struct step *st, int ramp)
{
    if (st->dups || st->reorders || st->id_reorders || st->bad_tokens ||
        st->foreign)
        return "defect";
    if (st->cut)
        return "deadline";
    if (st->drops)
        return "drops";
    if (st->expected > st->received || st->send_fail)
        return "loss";
    if (ramp && !st->lat_ok)
        return "slow";
    return ramp ? "max_steps" : "none";
}

static void report_best(const struct step *steps, int n, int ramp)
{
    int best = -1, stop = n - 1;
    for (int i = 0; i < n; i++) {
        if (!steps[i].pass || (ramp && !steps[i].lat_ok)) {
            stop = i;
            break;
        }
        best = i;
    }
    const char *why = stop_reason(&steps[stop], ramp);
    FILE *h = wsb_human();
    if (best >= 0)
        fprintf(h, "  %s %.0f msg/s = %.0f deliveries/s, p99 %.2f ms\n",
                ramp ? "highest passing rate:" : "passed at",
                steps[best].rate, steps[best].deliv_per_s,
                wsb_hist_quantile(&steps[best].lat, 0.99) / 1e6);
    else
        fprintf(h, "  no step passed\n");
    if (ramp)
        fprintf(h, "  ramp stopped    at %.0f msg/s: %s\n", steps[stop].rate,
                why);
    wsb_json_num("best_rate", best >= 0 ? steps[best].rate : 0);
    wsb_json_num("best_deliveries_per_s",
                 best >= 0 ? steps[best].deliv_per_s : 0);
    wsb_json_num("best_p99_ms", best >= 0 ?
                 wsb_hist_quantile(&steps[best].lat, 0.99) / 1e6 : 0);
    wsb_json_num("best_p50_ms", best >= 0 ?
                 wsb_hist_quantile(&steps[best].lat, 0.5) / 1e6 : 0);
    /* Server CPU (master and its children: workers, journal) in cores. */
    wsb_json_num("best_server_cpu", best >= 0 && steps[best].wall_s > 0 ?
                 steps[best].srv_cpu_s / steps[best].wall_s : 0);
    if (best >= 0 && steps[best].have_extra && steps[best].wall_s > 0)
        wsb_json_num("best_extra_cpu",
                     steps[best].extra_cpu_s / steps[best].wall_s);
    wsb_json_num("stop_rate", steps[stop].rate);
    wsb_json_str("stop_reason", why);
}

/* ---- driver ------------------------------------------------------------- */

static int fanout_alloc(struct fanout *f, const struct wsb_opts *o)
{
    f->o = o;
    f->S = o->members;
    f->P = o->publishers;
    f->conns = calloc((size_t)f->S, sizeof *f->conns);
    f->m = calloc((size_t)f->S, sizeof *f->m);
    f->pub = calloc((size_t)f->P, sizeof *f->pub);
    f->last_seq = calloc((size_t)f->S * f->P, sizeof *f->last_seq);
    f->text_len = o->bytes;
    f->text = malloc(o->bytes + TOKEN_MAX);
    f->N = o->nports > 1 ? o->nports : 1;
    if (f->N > 1 &&
        !(f->node_lat = calloc((size_t)f->N + 2, sizeof *f->node_lat)))
        return -1;
    return f->conns && f->m && f->pub && f->last_seq && f->text ? 0 : -1;
}

static void fanout_free(struct fanout *f)
{
    wsb_loop_destroy(f->l);
    free(f->conns); free(f->m); free(f->pub); free(f->last_seq);
    free(f->bits); free(f->text); free(f->node_lat);
}

static int run_steps(struct fanout *f, struct step *steps, int *nsteps)
{
    const struct wsb_opts *o = f->o;
    pid_t spid[WSB_MAX_PORTS + 1];
    int nspid = wsb_server_pids(o, spid, WSB_MAX_PORTS + 1);
    int max = o->ramp ? (o->max_steps < MAX_STEPS ? o->max_steps : MAX_STEPS)
                      : 1;
    double rate = o->rate;
    *nsteps = 0;
    step_header(wsb_human());
    for (int i = 0; i < max && !wsb_deadline_passed();
         i++, rate *= o->ramp_factor) {
        struct step *st = &steps[i];
        memset(st, 0, sizeof *st);
        st->rate = rate;
        f->step_no = i + 1;
        if (run_step(f, st, spid, nspid) < 0)
            return -1;
        *nsteps = i + 1;
        step_row(wsb_human(), st, i);
        fflush(wsb_human());
        if (!st->pass || !st->lat_ok || st->members == 0)
            break;
    }
    return 0;
}

static int fanout_open(struct fanout *f, struct wsb_open_result *r)
{
    struct wsb_hist hs;
    wsb_hist_init(&hs);
    r->hs = &hs;
    wsb_open_all(f->l, f->conns, f->S, member_path, f, r);
    r->hs = NULL;
    FILE *h = wsb_human();
    fprintf(h, "  open            %d/%d in %.2f s (%.0f handshakes/s), "
            "handshake p99 %.2f ms\n", r->opened, f->S, r->seconds,
            r->seconds > 0 ? r->opened / r->seconds : 0,
            wsb_hist_quantile(&hs, 0.99) / 1e6);
    for (int i = 1; i < WSB_FAIL_COUNT; i++)
        if (r->fail[i])
            fprintf(h, "  open failures   %s: %llu\n", wsb_fail_name(i),
                    (unsigned long long)r->fail[i]);
    if (wait_ready(f, r->opened) < 0)
        return -1;
    fprintf(h, "  ready           %d members got history_end%s\n",
            f->nready, f->welcome_errors ? " (some without welcome first)"
                                         : "");
    wsb_json_open("open");
    wsb_json_int("opened", r->opened);
    wsb_json_int("failed", r->failed);
    for (int i = 1; i < WSB_FAIL_COUNT; i++)
        wsb_json_int(wsb_fail_name(i), (int64_t)r->fail[i]);
    wsb_json_num("seconds", r->seconds);
    wsb_json_int("ready", f->nready);
    wsb_json_int("welcome_errors", (int64_t)f->welcome_errors);
    wsb_json_hist_ms("handshake", &hs);
    wsb_json_close();
    return 0;
}

/*
 * Pass/fail for --check. Without --ramp any defect fails. A ramp is meant
 * to end in loss or slowness, so there only the defects that no load
 * excuses fail it: duplicates, order violations, garbled tokens.
 */
static int fanout_verdict(const struct fanout *f,
                          const struct wsb_open_result *r,
                          const struct step *steps, int n)
{
    if (r->failed || f->nready < r->opened || f->welcome_errors)
        return 1;
    if (!f->o->ramp)
        return steps[0].pass ? 0 : 1;
    for (int i = 0; i < n; i++)
        if (steps[i].dups || steps[i].reorders || steps[i].id_reorders ||
            steps[i].bad_tokens || steps[i].foreign)
            return 1;
    return 0;
}

int wsb_fanout_run(const struct wsb_opts *o)
{
    struct wsb_opts oo = *o;
    if (!oo.room[0]) {
        uint32_t rnd;
        wsb_random(&rnd, sizeof rnd);
        snprintf(oo.room, sizeof oo.room, "bench%d-%08x", (int)getpid(), rnd);
    }
    struct fanout f;
    memset(&f, 0, sizeof f);
    static struct step steps[MAX_STEPS];
    struct wsb_handlers hd = { NULL, on_message, on_done };
    if (fanout_alloc(&f, &oo) < 0 || !(f.l = wsb_loop_create(&oo, &hd, &f))) {
        fprintf(stderr, "wsbench: out of memory\n");
        fanout_free(&f);
        return 2;
    }
    FILE *h = wsb_human();
    char how[32] = "";
    if (oo.ramp && oo.ramp_factor == 2)
        snprintf(how, sizeof how, " doubling");
    else if (oo.ramp)
        snprintf(how, sizeof how, " times %.3g per step", oo.ramp_factor);
    fprintf(h, "fanout: %d members, %d publishers, %zu-byte messages, "
            "%.0f msg/s%s, %.1f s steps, room %s\n", f.S, f.P, oo.bytes,
            oo.rate, how, oo.duration, oo.room);
    wsb_json_str("room", oo.room);
    wsb_json_int("members", f.S);
    wsb_json_int("publishers", f.P);
    wsb_json_int("bytes", (int64_t)oo.bytes);
    wsb_json_num("duration", oo.duration);
    wsb_json_int("ramp", oo.ramp);
    wsb_json_num("ramp_factor", oo.ramp_factor);
    double cpu0 = wsb_cpu_s();
    uint64_t w0 = wsb_now_ns();
    f.epoch = w0;
    wsb_random(&f.run, sizeof f.run);
    struct wsb_open_result r;
    int nsteps = 0, rc = 2;
    if (fanout_open(&f, &r) == 0 && f.nready > 0) {
        f.P = pick_publishers(&f);
        if (f.N > 1)
            nodes_line(&f);
        if (f.P > 0 && run_steps(&f, steps, &nsteps) == 0 && nsteps > 0) {
            report_steps(&f, steps, nsteps);
            report_best(steps, nsteps, oo.ramp);
            rc = fanout_verdict(&f, &r, steps, nsteps);
        }
    }
    if (rc == 2)
        fprintf(h, "  could not run: %d members ready, %d publishers\n",
                f.nready, f.P);
    wsb_close_all(f.l, f.conns, f.S);
    wsb_report_cpu("total", "generator", (double)(wsb_now_ns() - w0) / 1e9,
                   wsb_cpu_s() - cpu0);
    wsb_json_int("pass", rc == 0);
    fprintf(h, "  result          %s\n", rc == 0 ? "PASS" : "FAIL");
    fanout_free(&f);
    return rc;
}

/*
 * worker_loop: the event loop of one worker process (see worker_loop.h).
 *
 * Readiness is level-triggered: each ready connection gets one read() per
 * pass into the shared receive buffer, so a flood on one socket cannot starve
 * the others. EPOLLOUT is armed only while output is pending. Listen sockets
 * use EPOLLEXCLUSIVE so a new connection wakes one worker, not all.
 * Signals arrive through a signalfd: SIGTERM = stop now, SIGQUIT = graceful
 * stop (1001), SIGUSR2 = retire after a reload (1012), SIGUSR1 = reopen logs.
 */
#include "worker_loop.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "cidr.h"
#include "conn.h"
#include "disconnect.h"
#include "endpoints.h"
#include "handoff.h"
#include "http.h"
#include "http_conn.h"
#include "log.h"
#include "notify.h"
#include "worker.h"
#include "ws_conn.h"

static int start_accepting(struct worker *w);

#define RBUF_SIZE     (256u * 1024u)
#define MAX_EVENTS    512
#define ACCEPT_BATCH  64
#define TICK_MS       250

/* ---- timers ---- */

static void sweep_timers(struct worker *w)
{
    for (int list = 0; list < TIMER_NLISTS; list++) {
        struct conn *c;
        while ((c = w->timers[list].head) != NULL && c->deadline_ms <= w->now_ms) {
            worker_timer_clear(w, c);
            if (list == TIMER_IDLE && !(c->flags & CONN_F_PING_SENT)) {
                /* Silent for idle_timeout/2: ask for a sign of life. */
                ws_conn_ping(w, c);
                if (c->state != CONN_DEAD)
                    worker_timer_set(w, c, TIMER_IDLE, w->cfg->idle_timeout_ms / 2);
                continue;
            }
            STAT_ADD(w, timeouts, 1);
            log_at(LOG_LVL_DEBUG, 0, "conn %u: %s timeout", c->id,
                   list == TIMER_HANDSHAKE ? "handshake" : list == TIMER_IDLE ? "idle" : "close");
            worker_close_now(w, c);
        }
    }
}

/* ---- closing ---- */

/*
 * End of a pass: the endpoints of what closed during it let go (a chat
 * member leaves its room here, never inside the flush or broadcast that
 * closed it), then the structs return to the table. 1 if anything was
 * released: what the endpoints published meanwhile (leave events) is then
 * delivered in the same pass by running pass_end again.
 */
static int release_closed(struct worker *w)
{
    int freed = w->close_list != NULL;
    while (w->close_list != NULL) {
        struct conn *c = w->close_list;
        w->close_list = c->next_free;
        ws_conn_release(w, c);
        conn_release(&w->conns, c);
    }
    /* A slot is free again: resume accepting if max_connections had stopped us. */
    if (freed && !w->accepting && !w->stopping && w->conns.used < w->conns.cap)
        start_accepting(w);
    return freed;
}

/* EPOLLEXCLUSIVE: a new connection wakes one worker, not all. 0 or -1. */
static int start_accepting(struct worker *w)
{
    for (int i = 0; i < w->ctx.nlisten; i++) {
        struct epoll_event ev = { .events = EPOLLIN | EPOLLEXCLUSIVE,
                                  .data.u64 = TAG_LISTEN0 + (uint64_t)i };
        if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->ctx.listen_fds[i], &ev) < 0) {
            log_write(LOG_LVL_ALERT, errno, "epoll_ctl(ADD, listen %d) failed", i);
            return -1;
        }
    }
    w->accepting = 1;
    return 0;
}

static void stop_accepting(struct worker *w)
{
    if (!w->accepting)
        return;
    for (int i = 0; i < w->ctx.nlisten; i++)
        epoll_ctl(w->epfd, EPOLL_CTL_DEL, w->ctx.listen_fds[i], NULL);
    w->accepting = 0;
}

/* ---- input ---- */

/*
 * Hand rbuf[0..len) to C's protocol; the first PREV bytes are what the HTTP
 * parser already scanned for the end of a head.
 */
static void dispatch_input(struct worker *w, struct conn *c, size_t len, size_t prev)
{
    c->flags &= (uint8_t)~CONN_F_INPUT_HELD;    /* set again if it is still held */
    switch (c->state) {
    case CONN_HTTP:
        http_conn_input(w, c, w->rbuf, len, prev);
        break;
    case CONN_WS:
    case CONN_WS_CLOSING:
        ws_conn_input(w, c, w->rbuf, len);
        break;
    case CONN_LINGER:
        conn_in_clear(c);   /* discard: we only wait for the FIN */
        break;
    default:
        break;
    }
}

/*
 * C stopped parsing input because its answers were not being read
 * (CONN_F_INPUT_HELD). Once they drain, parse what it kept, and go on
 * while writes complete at once: no other event would come for it.
 */
static void resume_held(struct worker *w, struct conn *c)
{
    while ((c->flags & CONN_F_INPUT_HELD) && c->state != CONN_DEAD && !c->api_wait &&
           !(c->flags & CONN_F_WANT_WRITE) && conn_out_pending(c) <= w->cfg->max_send_queue) {
        size_t len = c->in_len;
        memcpy(w->rbuf, c->in, len);
        dispatch_input(w, c, len, 0);
        worker_flush(w, c);
    }
}

/* Act on other workers' disconnect requests; answer our settled calls. */
static void finish_disconnects(struct worker *w)
{
    struct disconnect_done done[DISCONNECT_WAITS];
    int n = disconnect_poll(w, done, DISCONNECT_WAITS);
    for (int i = 0; i < n; i++)
        http_conn_disconnect_done(w, &done[i]);
}

static void on_readable(struct worker *w, struct conn *c)
{
    size_t keep = c->in_len;
    if (keep >= w->rbuf_cap && c->api_wait) {
        /* Parked with a whole buffer of pipelined requests, and the peer hung up. */
        worker_close_now(w, c);
        return;
    }
    if (keep >= w->rbuf_cap) {
        /* Held input fills the whole buffer: parse it instead of reading (a
         * read of 0 bytes would look like the peer's EOF). Reads are on, so
         * the output is under budget: this consumes some, or holds again
         * and the flush pauses reads. */
        memcpy(w->rbuf, c->in, keep);
        dispatch_input(w, c, keep, 0);
        if (c->state != CONN_DEAD)
            worker_flush(w, c);
        return;
    }
    if (keep > 0)
        memcpy(w->rbuf, c->in, keep);
    ssize_t n;
    do {
        n = read(c->fd, w->rbuf + keep, w->rbuf_cap - keep);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno == EAGAIN)
            return;
        log_at(LOG_LVL_INFO, errno, "conn %u: read() failed", c->id);
        worker_close_now(w, c);
        return;
    }
    if (n == 0) {
        /* The peer is gone (or, lingering, finished): nothing more to do. */
        log_at(LOG_LVL_DEBUG, 0, "conn %u: peer closed", c->id);
        worker_close_now(w, c);
        return;
    }
    STAT_ADD(w, bytes_in, n);
    struct access_conn *a = worker_alog(w, c);
    if (a != NULL) {
        if (a->start_ms == 0)
            a->start_ms = w->now_ms;    /* a request's time runs from its first byte */
        a->bytes_in += (uint64_t)n;
    }
    if ((c->state == CONN_WS || c->state == CONN_WS_CLOSING) && c->tlist == TIMER_IDLE + 1) {
        c->flags &= (uint8_t)~CONN_F_PING_SENT;
        worker_timer_set(w, c, TIMER_IDLE, w->cfg->idle_timeout_ms / 2);
    }
    /* Held input was scanned already only as far as the parser got: rescan it. */
    dispatch_input(w, c, keep + (size_t)n, (c->flags & CONN_F_INPUT_HELD) ? 0 : keep);
    if (c->state != CONN_DEAD)
        worker_flush(w, c);
}

static void shed_connection(struct worker *w, int lfd)
{
    /* Out of fds: free the spare, accept and drop one, keep the spare again. */
    if (w->reserve_fd >= 0) {
        close(w->reserve_fd);
        int fd = accept(lfd, NULL, NULL);
        if (fd >= 0)
            close(fd);
        w->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    }
    STAT_ADD(w, rejects_limit, 1);
}

/*
 * C's address already holds max_connections_per_ip connections: answer 503
 * without reading its request (HTTP allows a server to answer early) and
 * linger-close, so the client sees the status, not a reset.
 */
static void refuse_over_ip_limit(struct worker *w, struct conn *c)
{
    static const char extra[] = "Retry-After: 10\r\n";
    char buf[512];
    ssize_t n = http_error_response(buf, sizeof buf, 503, extra);
    STAT_ADD(w, rejects_limit, 1);
    log_at(LOG_LVL_INFO, 0, "conn %u: over max_connections_per_ip (%u): answering 503", c->id,
           w->cfg->max_connections_per_ip);
    if (n < 0 || conn_out_append(&w->conns, c, buf, (size_t)n) < 0) {
        worker_close_now(w, c);
        return;
    }
    worker_access_request(w, c, NULL, 0, NULL, 0, 503, 0, (uint64_t)n);
    worker_linger(w, c);
}

static void on_acceptable(struct worker *w, int idx)
{
    int lfd = w->ctx.listen_fds[idx];
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        if (w->conns.used >= w->conns.cap) {
            /* max_connections: leave the backlog to the other workers. */
            stop_accepting(w);
            log_at(LOG_LVL_WARN, 0, "max_connections (%u) reached", w->conns.cap);
            return;
        }
        struct sockaddr_storage ss;
        socklen_t sslen = sizeof ss;
        int fd = accept4(lfd, (struct sockaddr *)&ss, &sslen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EAGAIN)
                return;
            if (errno == EMFILE || errno == ENFILE) {
                log_at(LOG_LVL_WARN, errno, "accept4() failed");
                shed_connection(w, lfd);
                return;
            }
            log_write(LOG_LVL_ALERT, errno, "accept4() failed");
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct conn *c = worker_register(w, fd);
        if (c == NULL)
            continue;
        STAT_ADD(w, conns_accepted, 1);
        worker_timer_set(w, c, TIMER_HANDSHAKE, w->cfg->handshake_timeout_ms);
        worker_addr_of((const struct sockaddr *)&ss, c->peer);
        if (cidr_match(&w->cfg->real_ip_from, c->peer))
            c->via = CONN_VIA_PROXY;    /* counted for its client, once a head names it */
        else if (!worker_ip_take(w, c, w->cfg->max_connections_per_ip))
            refuse_over_ip_limit(w, c);
    }
}

/* ---- stopping ---- */

static void begin_stop(struct worker *w, uint16_t code)
{
    if (w->stopping)
        return;
    w->stopping = code;
    stop_accepting(w);
    for (int i = 0; i < w->ctx.nlisten; i++)
        close(w->ctx.listen_fds[i]);
    w->stop_deadline_ms = w->now_ms + w->cfg->shutdown_timeout_ms;
    uint32_t before = w->conns.used, moved = 0;
    for (uint32_t i = 0; i < w->conns.fresh; i++) {
        struct conn *c = &w->conns.conns[i];
        if (c->state == CONN_WS) {
            /* On reload, a WebSocket moves to a new worker unseen, busy or not. */
            if (code == WS_CLOSE_SERVICE_RESTART) {
                int rc = handoff_send(w, c);
                moved += rc == 0;
                w->handoff_waiting += rc == -EBUSY;
                if (rc != -EAGAIN)
                    continue;
            }
            ws_conn_close(w, c, code, code == WS_CLOSE_SERVICE_RESTART ?
                          "server reloading" : "server stopping");
        } else if (c->state == CONN_HTTP && (c->flags & CONN_F_SERVED) && c->in_len == 0) {
            /*
             * Idle between keep-alive requests: nothing in flight. A fresh
             * connection is left alone even with nothing read yet: its
             * request may be in the socket buffer, and closing now would
             * reset it. It gets its answer (with Connection: close).
             */
            worker_close_now(w, c);
        }
    }
    log_write(LOG_LVL_NOTICE, 0, "stopping: %u of %u connections handed to new workers, "
              "%u waiting for room in a channel, the rest closed with %u or closing", moved, before,
              w->handoff_waiting, code);
}

static int handle_signals(struct worker *w)
{
    struct signalfd_siginfo si;
    while (read(w->sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
        switch (si.ssi_signo) {
        case SIGTERM:
        case SIGINT:
            return 1;
        case SIGQUIT:
            begin_stop(w, WS_CLOSE_GOING_AWAY);
            break;
        case SIGUSR2:
            begin_stop(w, WS_CLOSE_SERVICE_RESTART);
            break;
        case SIGUSR1:
            if (log_reopen() < 0)
                log_write(LOG_LVL_ALERT, errno, "reopening the log failed");
            worker_access_reopen(w);
            break;
        default:
            break;
        }
    }
    return 0;
}

static void stop_now(struct worker *w)
{
    /* Fast stop: one best-effort close frame each, no waiting. */
    for (uint32_t i = 0; i < w->conns.fresh; i++) {
        struct conn *c = &w->conns.conns[i];
        if (c->state == CONN_HANDOFF || (c->state == CONN_WS && w->handoff_waiting > 0))
            handoff_expire(w, c);
        if (c->state == CONN_WS)
            ws_conn_fail(w, c, WS_CLOSE_GOING_AWAY, "server stopping");
        if (c->state != CONN_FREE && c->state != CONN_DEAD)
            worker_close_now(w, c);
    }
    release_closed(w);
}

/* ---- setup ---- */

static int add_fd(struct worker *w, int fd, uint32_t events, uint64_t tag)
{
    struct epoll_event ev = { .events = events, .data.u64 = tag };
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        log_write(LOG_LVL_ALERT, errno, "epoll_ctl(ADD, %d) failed", fd);
        return -1;
    }
    return 0;
}

static int worker_setup(struct worker *w, const struct worker_ctx *ctx)
{
    memset(w, 0, sizeof *w);
    w->ctx = *ctx;
    w->cfg = ctx->cfg;
    w->reserve_fd = -1;
    w->alog_fd = -1;
    w->now_ms = worker_clock_ms();
    w->stats = &ctx->seg->slots[ctx->slot].counters;
    w->wakefd = ctx->eventfds[ctx->slot];

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGQUIT);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGUSR2);
    sigaddset(&set, SIGHUP);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0 ||
        (w->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) < 0) {
        log_write(LOG_LVL_ALERT, errno, "signalfd() failed");
        return -1;
    }
    w->rbuf_cap = RBUF_SIZE;
    /* A whole request must fit: its head and, for the API, its body. */
    if (w->rbuf_cap < w->cfg->max_request_head + w->cfg->max_api_body + 4096)
        w->rbuf_cap = w->cfg->max_request_head + w->cfg->max_api_body + 4096;
    w->rbuf = malloc(w->rbuf_cap);
    if (w->rbuf == NULL || conn_table_init(&w->conns, (uint32_t)w->cfg->max_connections) < 0 ||
        worker_access_open(w) < 0) {
        log_write(LOG_LVL_ALERT, errno, "allocating the connection table failed");
        return -1;
    }
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    w->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (w->epfd < 0 || w->timerfd < 0) {
        log_write(LOG_LVL_ALERT, errno, "epoll_create1()/timerfd_create() failed");
        return -1;
    }
    struct itimerspec its = { .it_interval = { 0, TICK_MS * 1000000L },
                              .it_value = { 0, TICK_MS * 1000000L } };
    timerfd_settime(w->timerfd, 0, &its, NULL);
    w->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (add_fd(w, w->sigfd, EPOLLIN, TAG_SIGNAL) < 0 ||
        add_fd(w, w->timerfd, EPOLLIN, TAG_TIMER) < 0 ||
        add_fd(w, w->wakefd, EPOLLIN, TAG_WAKE) < 0 ||
        add_fd(w, ctx->handoff[ctx->slot][0], EPOLLIN, TAG_HANDOFF) < 0)
        return -1;
    if (start_accepting(w) < 0)
        return -1;
    if (endpoints_init(w) < 0)
        return -1;
    disconnect_init(w);
    return 0;
}

void worker_loop_run(const struct worker_ctx *ctx)
{
    static struct worker worker;
    struct worker *w = &worker;
    log_set_worker(ctx->slot);
    if (worker_setup(w, ctx) < 0)
        exit(2);
    log_write(LOG_LVL_NOTICE, 0, "worker started");

    struct epoll_event events[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(w->epfd, events, MAX_EVENTS, -1);
        if (n < 0 && errno != EINTR) {
            log_write(LOG_LVL_ALERT, errno, "epoll_wait() failed");
            exit(1);
        }
        w->now_ms = worker_clock_ms();
        /* Alive and looping: what the master's watchdog checks (a tick wakes us 4 times a second). */
        __atomic_store_n(&w->ctx.seg->slots[w->ctx.slot].heartbeat_ms, w->now_ms, __ATOMIC_RELAXED);
        for (int i = 0; i < n; i++) {
            uint64_t tag = events[i].data.u64;
            if (tag >= CONN_TAG_BASE) {
                struct conn *c = &w->conns.conns[tag - CONN_TAG_BASE];
                /* In flight to a new worker since this batch was fetched: not ours to read. */
                if (c->state == CONN_DEAD || c->state == CONN_FREE || c->state == CONN_HANDOFF)
                    continue;
                if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                    on_readable(w, c);
                if (c->state != CONN_DEAD && (events[i].events & EPOLLOUT))
                    worker_flush(w, c);
                resume_held(w, c);
            } else if (tag == TAG_SIGNAL) {
                if (handle_signals(w)) {
                    stop_now(w);
                    exit(0);
                }
            } else if (tag == TAG_TIMER) {
                uint64_t ticks;
                if (read(w->timerfd, &ticks, sizeof ticks) < 0) { /* spurious */ }
                sweep_timers(w);
                ws_conn_sweep_messages(w);
                worker_ip_recount(w);
            } else if (tag == TAG_WAKE) {
                notify_ack(w->ctx.seg, w->ctx.eventfds, w->ctx.slot);
                endpoints_wake(w);
            } else if (tag == TAG_HANDOFF) {
                handoff_receive(w);
            } else if (!w->stopping) {
                on_acceptable(w, (int)(tag - TAG_LISTEN0));
            }
        }
        finish_disconnects(w);
        /*
         * Retiring with nothing left: a connection handed to us just before
         * the new generation existed may still wait in our channel. Adopt
         * (and pass on) what is there before leaving.
         */
        if (w->stopping && w->conns.used == 0)
            handoff_receive(w);
        if (w->handoff_waiting > 0)
            handoff_retry(w);
        do
            endpoints_pass_end(w);
        while (release_closed(w));
        if (w->stopping && (w->conns.used == 0 || w->now_ms >= w->stop_deadline_ms)) {
            if (w->conns.used > 0)
                log_write(LOG_LVL_NOTICE, 0, "shutdown timeout: dropping %u connections",
                          w->conns.used);
            stop_now(w);
            log_write(LOG_LVL_NOTICE, 0, "worker exiting");
            exit(0);
        }
    }
}

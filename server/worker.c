/*
 * worker: the event loop of one worker process (see worker.h).
 *
 * Readiness is level-triggered: each ready connection gets one read() per
 * pass into the shared receive buffer, so a flood on one socket cannot starve
 * the others. EPOLLOUT is armed only while output is pending. Listen sockets
 * use EPOLLEXCLUSIVE so a new connection wakes one worker, not all.
 * Signals arrive through a signalfd: SIGTERM = stop now, SIGQUIT = graceful
 * stop (1001), SIGUSR2 = retire after a reload (1012), SIGUSR1 = reopen logs.
 */
#include "worker.h"

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

#include "chat.h"
#include "handoff.h"
#include "http_conn.h"
#include "log.h"
#include "ws_conn.h"

/* epoll data tags below CONN_TAG_BASE are special fds, the rest conn ids. */
enum { TAG_SIGNAL, TAG_TIMER, TAG_WAKE, TAG_HANDOFF, TAG_LISTEN0, CONN_TAG_BASE = TAG_LISTEN0 + CONFIG_MAX_LISTEN };

static int start_accepting(struct worker *w);

#define RBUF_SIZE     (256u * 1024u)
#define MAX_EVENTS    512
#define ACCEPT_BATCH  64
#define TICK_MS       250

static uint64_t conn_tag(const struct conn *c)
{
    return CONN_TAG_BASE + (uint64_t)c->id;
}

struct conn *worker_register(struct worker *w, int fd)
{
    struct conn *c = conn_alloc(&w->conns, fd);
    if (c == NULL) {
        log_write(LOG_LVL_WARN, 0, "max_connections (%u) reached: dropping a connection",
                  w->conns.cap);
        close(fd);
        return NULL;
    }
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = conn_tag(c) };
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        log_write(LOG_LVL_ALERT, errno, "epoll_ctl(ADD, %d) failed", fd);
        close(fd);
        conn_release(&w->conns, c);
        return NULL;
    }
    STAT_ADD(w, conns_current, 1);
    return c;
}

uint64_t worker_clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- timers: one FIFO per timeout kind, so each stays sorted ---- */

void worker_timer_clear(struct worker *w, struct conn *c)
{
    if (c->tlist == 0)
        return;
    struct timer_fifo *f = &w->timers[c->tlist - 1];
    if (c->tprev) c->tprev->tnext = c->tnext; else f->head = c->tnext;
    if (c->tnext) c->tnext->tprev = c->tprev; else f->tail = c->tprev;
    c->tprev = c->tnext = NULL;
    c->tlist = 0;
}

void worker_timer_set(struct worker *w, struct conn *c, int list, uint64_t after_ms)
{
    worker_timer_clear(w, c);
    struct timer_fifo *f = &w->timers[list];
    c->deadline_ms = w->now_ms + after_ms;
    c->tlist = (uint8_t)(list + 1);
    c->tprev = f->tail;
    c->tnext = NULL;
    if (f->tail) f->tail->tnext = c; else f->head = c;
    f->tail = c;
}

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

void worker_close_now(struct worker *w, struct conn *c)
{
    if (c->state == CONN_DEAD || c->state == CONN_FREE)
        return;
    worker_timer_clear(w, c);
    if (c->member != NULL)
        chat_leave(w, c);
    if (c->state == CONN_WS || c->state == CONN_WS_CLOSING ||
        (c->state == CONN_LINGER && c->endpoint != CONN_EP_NONE))
        STAT_SUB(w, ws_current, 1);
    STAT_SUB(w, conns_current, 1);
    /*
     * close() also removes the fd from the epoll set, as nothing else refers
     * to the socket; handoff.c, whose socket lives on in flight, deletes it
     * from the set before calling this.
     */
    close(c->fd);
    c->fd = -1;
    c->state = CONN_DEAD;
    c->next_free = w->close_list;
    w->close_list = c;
}

static void release_closed(struct worker *w)
{
    int freed = w->close_list != NULL;
    while (w->close_list != NULL) {
        struct conn *c = w->close_list;
        w->close_list = c->next_free;
        conn_release(&w->conns, c);
    }
    /* A slot is free again: resume accepting if max_connections had stopped us. */
    if (freed && !w->accepting && !w->stopping && w->conns.used < w->conns.cap)
        start_accepting(w);
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

void worker_linger(struct worker *w, struct conn *c)
{
    if (c->state == CONN_DEAD)
        return;
    /* A WebSocket keeps its endpoint while lingering, so ws_current stays balanced. */
    if (c->state != CONN_WS && c->state != CONN_WS_CLOSING)
        c->endpoint = CONN_EP_NONE;
    c->state = CONN_LINGER;
    conn_in_clear(c);
    conn_msg_clear(c);
    worker_timer_set(w, c, TIMER_CLOSE, w->cfg->close_timeout_ms);
    worker_flush(w, c);
}

/* ---- output ---- */

/*
 * Make the epoll mask match the connection: EPOLLOUT while output is
 * pending; EPOLLIN dropped while private output (an echo reply, say) is
 * over max_send_queue, so a peer that sends without reading is slowed by
 * TCP instead of growing our buffer. Chat members are bounded by 1013.
 */
static void update_events(struct worker *w, struct conn *c, int pending)
{
    int paused = c->member == NULL && conn_out_pending(c) > w->cfg->max_send_queue;
    uint8_t want = (uint8_t)((pending ? CONN_F_WANT_WRITE : 0) | (paused ? CONN_F_READ_PAUSED : 0));
    if ((c->flags & (CONN_F_WANT_WRITE | CONN_F_READ_PAUSED)) == want)
        return;
    struct epoll_event ev = { .events = (paused ? 0 : EPOLLIN) | (pending ? EPOLLOUT : 0),
                              .data.u64 = conn_tag(c) };
    if (epoll_ctl(w->epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0) {
        log_write(LOG_LVL_ALERT, errno, "epoll_ctl(MOD, %d) failed", c->fd);
        worker_close_now(w, c);
        return;
    }
    c->flags = (uint8_t)((c->flags & ~(CONN_F_WANT_WRITE | CONN_F_READ_PAUSED)) | want);
}

void worker_flush(struct worker *w, struct conn *c)
{
    if (c->state == CONN_DEAD)
        return;
    for (;;) {
        struct iovec iov[6];
        int n = 0;
        if (c->member != NULL) {
            n = chat_stream_iov(w, c, iov, 6);
        } else if (conn_out_pending(c) > 0) {
            iov[0].iov_base = c->out + c->out_off;
            iov[0].iov_len = conn_out_pending(c);
            n = 1;
        }
        if (n == 0)
            break;
        ssize_t wr = writev(c->fd, iov, n);
        if (wr < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                update_events(w, c, 1);
                return;
            }
            log_at(LOG_LVL_INFO, errno, "conn %u: writev() failed", c->id);
            worker_close_now(w, c);
            return;
        }
        STAT_ADD(w, bytes_out, wr);
        if (c->member != NULL)
            chat_stream_consumed(w, c, (size_t)wr);
        else
            conn_out_consume(&w->conns, c, (size_t)wr);
    }
    update_events(w, c, 0);
    if (c->state == CONN_LINGER && !(c->flags & CONN_F_WR_SHUT)) {
        /* Everything is out: send our FIN, then wait for the peer's. */
        shutdown(c->fd, SHUT_WR);
        c->flags |= CONN_F_WR_SHUT;
    }
}

/* ---- input ---- */

static void on_readable(struct worker *w, struct conn *c)
{
    size_t keep = c->in_len;
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
    size_t len = keep + (size_t)n;
    switch (c->state) {
    case CONN_HTTP:
        http_conn_input(w, c, w->rbuf, len, keep);
        break;
    case CONN_WS:
    case CONN_WS_CLOSING:
        if (c->tlist == TIMER_IDLE + 1) {
            c->flags &= (uint8_t)~CONN_F_PING_SENT;
            worker_timer_set(w, c, TIMER_IDLE, w->cfg->idle_timeout_ms / 2);
        }
        ws_conn_input(w, c, w->rbuf, len);
        break;
    case CONN_LINGER:
        conn_in_clear(c);   /* discard: we only wait for the FIN */
        break;
    default:
        break;
    }
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
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
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
            /* On reload, an idle WebSocket moves to a new worker unseen. */
            if (code == WS_CLOSE_SERVICE_RESTART && handoff_send(w, c) == 0) {
                moved++;
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
              "the rest closed with %u", moved, before, code);
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
    if (w->rbuf_cap < w->cfg->max_request_head + 4096)
        w->rbuf_cap = w->cfg->max_request_head + 4096;
    w->rbuf = malloc(w->rbuf_cap);
    if (w->rbuf == NULL || conn_table_init(&w->conns, (uint32_t)w->cfg->max_connections) < 0) {
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
    if (chat_worker_init(w) < 0)
        return -1;
    return 0;
}

void worker_run(const struct worker_ctx *ctx)
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
        for (int i = 0; i < n; i++) {
            uint64_t tag = events[i].data.u64;
            if (tag >= CONN_TAG_BASE) {
                struct conn *c = &w->conns.conns[tag - CONN_TAG_BASE];
                if (c->state == CONN_DEAD || c->state == CONN_FREE)
                    continue;
                if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                    on_readable(w, c);
                if (c->state != CONN_DEAD && (events[i].events & EPOLLOUT))
                    worker_flush(w, c);
            } else if (tag == TAG_SIGNAL) {
                if (handle_signals(w)) {
                    stop_now(w);
                    exit(0);
                }
            } else if (tag == TAG_TIMER) {
                uint64_t ticks;
                if (read(w->timerfd, &ticks, sizeof ticks) < 0) { /* spurious */ }
                sweep_timers(w);
            } else if (tag == TAG_WAKE) {
                chat_on_wake(w);
            } else if (tag == TAG_HANDOFF) {
                handoff_receive(w);
            } else if (!w->stopping) {
                on_acceptable(w, (int)(tag - TAG_LISTEN0));
            }
        }
        chat_flush_dirty(w);
        release_closed(w);
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

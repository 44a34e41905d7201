/*
 * worker: the services a worker process offers the protocol modules (see
 * worker.h): registering sockets, timers, writing output, closing. The
 * loop that drives them is worker_loop.c.
 */
#include "worker.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

#include "ip_limit.h"
#include "lock.h"
#include "log.h"
#include "shm.h"
#include "stream.h"

/* Enough for the rest of a frame, private output and a wrapped stream, twice over. */
#define FLUSH_IOV 6

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
    if (w->alog != NULL)
        memset(&w->alog[c->id], 0, sizeof w->alog[c->id]);
    return c;
}

/* ---- connections per client address ---- */

void worker_addr_of(const struct sockaddr *sa, uint8_t out[16])
{
    memset(out, 0, 16);     /* all zeros: every unknown peer shares one count */
    if (sa->sa_family == AF_INET6) {
        memcpy(out, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
    } else if (sa->sa_family == AF_INET) {
        out[10] = out[11] = 0xff;
        memcpy(out + 12, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
    }
}

void worker_peer_of(int fd, uint8_t out[16])
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0)
        ss.ss_family = AF_UNSPEC;
    worker_addr_of((const struct sockaddr *)&ss, out);
}

/* The table lock; 0, or < 0 (logged) when the lock is lost for good. */
static int ip_lock(struct worker *w)
{
    int lk = lock_acquire(&w->ctx.seg->ip_lock);
    if (lk < 0)
        log_write(LOG_LVL_ALERT, -lk, "ip_limit lock_acquire() failed");
    return lk < 0 ? lk : 0;
}

/* With the lock held: catch up with a reset (recount everything). */
static void ip_sync(struct worker *w)
{
    struct ip_limit *t = &w->ctx.seg->ips;
    if (w->ip_epoch == t->epoch)
        return;
    w->ip_epoch = t->epoch;
    for (uint32_t i = 0; i < w->conns.fresh; i++) {
        struct conn *c = &w->conns.conns[i];
        if ((c->flags & CONN_F_IP_COUNTED) && c->state != CONN_DEAD &&
            c->state != CONN_FREE && ip_limit_take(t, c->peer, 0) != 1)
            c->flags &= (uint8_t)~CONN_F_IP_COUNTED;
    }
}

int worker_ip_take(struct worker *w, struct conn *c, uint32_t max)
{
    /* Neither per-address limit is on: nothing to count (a reload that
     * turns one on counts the connections accepted from then on). */
    if (w->cfg->max_connections_per_ip == 0 && w->cfg->ip_publish_rate == 0)
        return 1;
    if (ip_lock(w) < 0)
        return 1;
    ip_sync(w);
    int rc = ip_limit_take(&w->ctx.seg->ips, c->peer, max);
    lock_release(&w->ctx.seg->ip_lock);
    if (rc == 1)
        c->flags |= CONN_F_IP_COUNTED;
    return rc != 0;
}

void worker_ip_recount(struct worker *w)
{
    int sweep = w->now_ms - w->ip_swept_ms >= 1000;
    if ((!sweep && __atomic_load_n(&w->ctx.seg->ips.epoch, __ATOMIC_RELAXED) == w->ip_epoch) ||
        ip_lock(w) < 0)
        return;
    ip_sync(w);
    if (sweep) {
        w->ip_swept_ms = w->now_ms;
        ip_limit_sweep(&w->ctx.seg->ips, w->cfg->ip_publish_rate, w->now_ms);
    }
    lock_release(&w->ctx.seg->ip_lock);
}

int worker_ip_charge(struct worker *w, struct conn *c, size_t bytes)
{
    if (w->cfg->ip_publish_rate == 0 || !(c->flags & CONN_F_IP_COUNTED) || ip_lock(w) < 0)
        return 1;
    ip_sync(w);
    int ok = !(c->flags & CONN_F_IP_COUNTED) ||
             ip_limit_charge(&w->ctx.seg->ips, c->peer, bytes, w->cfg->ip_publish_rate,
                             w->now_ms);
    lock_release(&w->ctx.seg->ip_lock);
    return ok;
}

static void ip_give(struct worker *w, struct conn *c)
{
    if (!(c->flags & CONN_F_IP_COUNTED))
        return;
    c->flags &= (uint8_t)~CONN_F_IP_COUNTED;
    if (ip_lock(w) < 0)
        return;
    /* After a reset C is no longer in the table: the sync counts the others
     * in again (C's flag is already clear) and there is nothing to give. */
    int stale = w->ip_epoch != w->ctx.seg->ips.epoch;
    ip_sync(w);
    if (!stale)
        ip_limit_give(&w->ctx.seg->ips, c->peer);
    lock_release(&w->ctx.seg->ip_lock);
}

int worker_ip_retake(struct worker *w, struct conn *c, const uint8_t addr[16], uint32_t max)
{
    if ((c->flags & CONN_F_IP_COUNTED) && memcmp(c->peer, addr, 16) == 0)
        return 1;
    ip_give(w, c);
    memcpy(c->peer, addr, 16);
    return worker_ip_take(w, c, max);
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

/* ---- closing ---- */

void worker_close_now(struct worker *w, struct conn *c)
{
    if (c->state == CONN_DEAD || c->state == CONN_FREE)
        return;
    worker_timer_clear(w, c);
    ip_give(w, c);
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

void worker_linger(struct worker *w, struct conn *c)
{
    if (c->state == CONN_DEAD)
        return;
    c->state = CONN_LINGER;
    conn_in_clear(c);
    conn_msg_clear(&w->conns, c);
    worker_timer_set(w, c, TIMER_CLOSE, w->cfg->close_timeout_ms);
    worker_flush(w, c);
}

/*
 * Make the epoll mask match the connection: EPOLLOUT while output is
 * pending; EPOLLIN dropped while private output (echo replies, pongs,
 * errors, HTTP responses) is over max_send_queue, so a peer that sends
 * without reading is slowed by TCP instead of growing our buffer, and while
 * an HTTP request waits parked on other workers (disconnect.h). What a
 * chat member lags behind its room's stream is bounded by 1013 instead.
 */
static void update_events(struct worker *w, struct conn *c, int pending)
{
    int paused = conn_out_pending(c) > w->cfg->max_send_queue || c->api_wait;
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
    if (c->state == CONN_DEAD || c->state == CONN_HANDOFF)
        return;
    for (;;) {
        struct iovec iov[FLUSH_IOV];
        int n = 0;
        if (c->cursor != NULL) {
            n = stream_iov(c->cursor, c->out + c->out_off, conn_out_pending(c), iov, FLUSH_IOV);
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
        if (w->alog != NULL)
            w->alog[c->id].bytes_out += (uint64_t)wr;
        size_t priv = c->cursor != NULL
                      ? stream_consumed(c->cursor, conn_out_pending(c), (size_t)wr) : (size_t)wr;
        conn_out_consume(&w->conns, c, priv);
    }
    update_events(w, c, 0);
    if (c->state == CONN_LINGER && !(c->flags & CONN_F_WR_SHUT)) {
        /* Everything is out: send our FIN, then wait for the peer's. */
        shutdown(c->fd, SHUT_WR);
        c->flags |= CONN_F_WR_SHUT;
    }
}

/* ---- access log ---- */

int worker_access_open(struct worker *w)
{
    w->alog_fd = -1;
    if (w->cfg->access_log[0] == '\0')
        return 0;
    w->alog = calloc(w->conns.cap, sizeof *w->alog);
    if (w->alog == NULL)
        return -1;
    int fd = access_log_open(w->cfg->access_log);
    if (fd < 0)
        log_write(LOG_LVL_ERR, -fd, "opening access_log \"%s\" failed", w->cfg->access_log);
    else
        w->alog_fd = fd;
    return 0;
}

void worker_access_reopen(struct worker *w)
{
    if (w->alog == NULL)
        return;
    int rc = access_log_reopen(&w->alog_fd, w->cfg->access_log);
    if (rc < 0)
        log_write(LOG_LVL_ERR, -rc, "reopening access_log \"%s\" failed%s",
                  w->cfg->access_log, w->alog_fd >= 0 ? "; still writing the old file" : "");
}

/* The wall clock and its UTC offset, looked up once per second. */
static void wall_clock(int64_t *unix_s, int32_t *off_s)
{
    static int64_t cached_s = -1;
    static int32_t cached_off;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if ((int64_t)ts.tv_sec != cached_s) {
        struct tm tm;
        time_t t = ts.tv_sec;
        cached_off = localtime_r(&t, &tm) != NULL ? (int32_t)tm.tm_gmtoff : 0;
        cached_s = (int64_t)ts.tv_sec;
    }
    *unix_s = cached_s;
    *off_s = cached_off;
}

static void access_write(struct worker *w, struct access_entry *e, uint64_t start_ms)
{
    char line[ACCESS_LINE_MAX];
    if (w->alog_fd < 0)
        return;
    wall_clock(&e->unix_s, &e->utc_offset_s);
    e->duration_ms = start_ms != 0 && w->now_ms > start_ms ? w->now_ms - start_ms : 0;
    ssize_t n = access_log_format(line, sizeof line, e);
    int rc = n < 0 ? (int)n : access_log_write(w->alog_fd, line, (size_t)n);
    if (rc < 0)
        log_at(LOG_LVL_WARN, -rc, "writing access_log \"%s\" failed", w->cfg->access_log);
}

void worker_access_request(struct worker *w, struct conn *c, const char *method,
                           size_t method_len, const char *path, size_t path_len, int status,
                           uint64_t in, uint64_t out)
{
    struct access_conn *a = worker_alog(w, c);
    if (a == NULL)
        return;
    struct access_entry e = {
        .addr = c->peer, .method = method, .method_len = method_len,
        .path = path, .path_len = path_len, .status = (unsigned)status,
        .bytes_in = in, .bytes_out = out,
    };
    access_write(w, &e, a->start_ms);
    a->start_ms = 0;
}

static void copy_name(char *dst, uint8_t *dst_len, size_t cap, const char *s, size_t len)
{
    if (len > cap)
        len = cap;
    memcpy(dst, s, len);
    *dst_len = (uint8_t)len;
}

void worker_access_session_begin(struct worker *w, struct conn *c, const char *path,
                                 size_t path_len, uint64_t in)
{
    struct access_conn *a = worker_alog(w, c);
    if (a == NULL)
        return;
    if (a->start_ms == 0)
        a->start_ms = w->now_ms;
    a->bytes_in = in;
    a->bytes_out = 0;
    a->code = 0;
    a->done = 0;
    a->user_len = 0;
    copy_name(a->path, &a->path_len, sizeof a->path, path, path_len);
}

void worker_access_session_name(struct worker *w, struct conn *c, const char *path,
                                size_t path_len, const char *user, size_t user_len)
{
    _Static_assert(sizeof ((struct access_conn *)0)->user < 256 &&
                   sizeof ((struct access_conn *)0)->path < 256, "lengths fit in uint8_t");
    struct access_conn *a = worker_alog(w, c);
    if (a == NULL)
        return;
    if (path != NULL)
        copy_name(a->path, &a->path_len, sizeof a->path, path, path_len);
    a->user_len = 0;
    if (user != NULL)
        copy_name(a->user, &a->user_len, sizeof a->user, user, user_len);
}

void worker_access_session_end(struct worker *w, struct conn *c)
{
    struct access_conn *a = worker_alog(w, c);
    if (a == NULL || a->done)
        return;
    /* No close frame either way: 1006, as RFC 6455 §7.1.5 names it. */
    struct access_entry e = {
        .addr = c->peer, .user = a->user, .user_len = a->user_len,
        .method = "WS", .method_len = 2, .path = a->path, .path_len = a->path_len,
        .status = a->code != 0 ? a->code : 1006,
        .bytes_in = a->bytes_in, .bytes_out = a->bytes_out,
    };
    access_write(w, &e, a->start_ms);
    a->done = 1;    /* one line per session, whoever calls again */
}

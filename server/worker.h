/*
 * worker: the state of one worker process and the services it offers the
 * protocol modules above it (http_conn, ws_conn, the endpoints): sockets
 * registered in epoll, timers, writing a connection's output, closing.
 *
 * A worker owns the connection table, the per-worker receive buffer (every
 * read lands there; connections keep only unconsumed tails), three timer
 * lists (handshake, idle, closing; each FIFO, so sorted by deadline), and the
 * wake-up eventfd of its shm slot. worker_loop.c runs the event loop that
 * drives it; nothing here knows which protocol a connection speaks.
 */
#ifndef WSM_WORKER_H
#define WSM_WORKER_H

#include <stddef.h>
#include <stdint.h>
#include "access_log.h"
#include "config.h"
#include "conn.h"
#include "shm.h"

struct sockaddr;

struct worker_ctx {
    const struct config *cfg;
    int slot;                   /* shm slot, 0..SHM_MAX_SLOTS-1 */
    uint32_t generation;
    const int *listen_fds;
    int nlisten;
    struct shm_segment *seg;
    const int *eventfds;        /* one per shm slot, created by the master */
    int (*handoff)[2];          /* per shm slot: [0] to receive connections, [1] to send */
    int journal_efd;            /* the history journal's wake-up eventfd, -1: none */
    int cluster_efd;            /* the cluster bridge's wake-up eventfd, -1: none */
};

enum timer_list { TIMER_HANDSHAKE, TIMER_IDLE, TIMER_CLOSE, TIMER_NLISTS };

struct timer_fifo { struct conn *head, *tail; };

/* epoll data tags below CONN_TAG_BASE are the loop's own fds, the rest conn ids. */
enum { TAG_SIGNAL, TAG_TIMER, TAG_WAKE, TAG_HANDOFF, TAG_LISTEN0,
       CONN_TAG_BASE = TAG_LISTEN0 + CONFIG_MAX_LISTEN };

static inline uint64_t conn_tag(const struct conn *c)
{
    return CONN_TAG_BASE + (uint64_t)c->id;
}

struct worker {
    struct worker_ctx ctx;
    const struct config *cfg;
    int epfd;
    int sigfd;
    int timerfd;
    int wakefd;                 /* this slot's eventfd */
    int reserve_fd;             /* spare fd, given up to shed a connection on EMFILE */
    int accepting;              /* listen fds registered in epoll */
    int stopping;               /* 0, or the close code being sent to everyone */
    uint32_t handoff_waiting;   /* retiring: WebSockets put off until a channel has room */
    uint64_t stop_deadline_ms;
    uint64_t now_ms;            /* monotonic, refreshed once per loop pass */
    struct conn_table conns;
    struct conn *close_list;    /* closed this pass; released after it */
    struct timer_fifo timers[TIMER_NLISTS];
    uint8_t *rbuf;              /* receive buffer shared by all connections */
    size_t rbuf_cap;
    struct shm_counters *stats; /* this worker's counters in shm */
    uint32_t ip_epoch;          /* ip_limit epoch this worker's counts belong to */
    uint64_t ip_swept_ms;       /* last ip_limit_sweep() */
    struct access_conn *alog;   /* by conn id while access_log is on, else NULL */
    int alog_fd;                /* the access log, -1 when off or not open */
};

/*
 * Take FD (a connected, nonblocking socket) as a new connection: table
 * entry, epoll registration (readable), counted. NULL when that fails, with
 * FD closed and the reason logged.
 */
struct conn *worker_register(struct worker *w, int fd);

/*
 * The 16-byte address form (IPv4 as ::ffff:a.b.c.d) of SA, an AF_INET or
 * AF_INET6 socket address, into OUT; all zeros for any other family.
 */
void worker_addr_of(const struct sockaddr *sa, uint8_t out[16]);
/* The same for FD's TCP peer (getpeername); all zeros when that fails. */
void worker_peer_of(int fd, uint8_t out[16]);

/*
 * Count C (registered, c->peer set) against its address in the
 * server-wide ip_limit table: 1 when it may stay, 0 when its address
 * already holds MAX connections (0: no limit, only count; a handed-over
 * connection). An address the full table cannot take is let in uncounted.
 */
int  worker_ip_take(struct worker *w, struct conn *c, uint32_t max);
/*
 * C came through a trusted proxy and its request names client ADDR: make
 * ADDR C's peer and count C against it instead of what it was counted
 * against (nothing before its first request). 1 when it may stay (also
 * when already counted for ADDR), 0 when ADDR holds MAX connections: C then
 * counts for no one.
 */
int  worker_ip_retake(struct worker *w, struct conn *c, const uint8_t addr[16], uint32_t max);
/*
 * From the worker's tick: after the master reset the table (a worker
 * died), count every connection in again; once a second, free the slots of
 * gone addresses whose publish budget has refilled.
 */
void worker_ip_recount(struct worker *w);
/*
 * Charge BYTES that C is about to publish to its address's ip_publish_rate
 * budget (every worker's connections from that address share it). 1 when
 * they fit, 0 when the address is over its rate.
 */
int  worker_ip_charge(struct worker *w, struct conn *c, size_t bytes);

/* Monotonic milliseconds. */
uint64_t worker_clock_ms(void);

/* Put C on timer list L with deadline now + after_ms (removing it from any other). */
void worker_timer_set(struct worker *w, struct conn *c, int list, uint64_t after_ms);
void worker_timer_clear(struct worker *w, struct conn *c);

/*
 * Write what C has pending (private output, and the stream of its cursor
 * if it has one, in the order stream_iov() gives); arms EPOLLOUT on EAGAIN;
 * may close C.
 */
void worker_flush(struct worker *w, struct conn *c);

/*
 * Close the socket now and queue C for release after this loop pass: the
 * struct stays valid (state CONN_DEAD) until then, and its endpoint is told
 * at release, never in the middle of whatever called this.
 */
void worker_close_now(struct worker *w, struct conn *c);

/*
 * Stop reading requests/frames: flush what is queued, then half-close and
 * wait (bounded by close_timeout) for the peer's FIN before closing, so the
 * last bytes are not destroyed by a reset.
 */
void worker_linger(struct worker *w, struct conn *c);

/* ---- access log (access_log.h): nothing is kept or written while it is off ---- */

/* C's access log bookkeeping, or NULL when the access log is off. */
static inline struct access_conn *worker_alog(const struct worker *w, const struct conn *c)
{
    return w->alog != NULL ? &w->alog[c->id] : NULL;
}

/* The first close code C's session sent or received is the one its line shows. */
static inline void worker_access_code(const struct worker *w, const struct conn *c, uint16_t code)
{
    struct access_conn *a = worker_alog(w, c);
    if (a != NULL && a->code == 0)
        a->code = code;
}

/*
 * Worker start: the bookkeeping array and the file of cfg->access_log.
 * 0, or -1 (ENOMEM) when the array cannot be had; a file that does not
 * open is logged and retried at the next reopen.
 */
int  worker_access_open(struct worker *w);
/* SIGUSR1: reopen the access log; on failure (logged) the old file stays in use. */
void worker_access_reopen(struct worker *w);
/*
 * One HTTP request of C answered with STATUS: IN bytes of request, OUT
 * queued in answer. METHOD/PATH are NULL when no request line was read (a
 * malformed head, a refusal at accept). The next request's clock starts
 * at its first byte.
 */
void worker_access_request(struct worker *w, struct conn *c, const char *method,
                           size_t method_len, const char *path, size_t path_len, int status,
                           uint64_t in, uint64_t out);
/*
 * C's upgrade request (PATH, IN bytes with what came after it) starts a
 * WebSocket session; what it reads and writes from now on is the session's.
 */
void worker_access_session_begin(struct worker *w, struct conn *c, const char *path,
                                 size_t path_len, uint64_t in);
/* Name C's session: PATH (NULL: keep it) and its USER (NULL: a guest). */
void worker_access_session_name(struct worker *w, struct conn *c, const char *path,
                                size_t path_len, const char *user, size_t user_len);
/* C's session ends (its release): its line, unless it moved to another worker. */
void worker_access_session_end(struct worker *w, struct conn *c);

/* Relaxed counter bump on this worker's shm counters. */
#define STAT_ADD(w, field, n) __atomic_fetch_add(&(w)->stats->field, (uint64_t)(n), __ATOMIC_RELAXED)
#define STAT_SUB(w, field, n) __atomic_fetch_sub(&(w)->stats->field, (uint64_t)(n), __ATOMIC_RELAXED)

#endif

/*
 * conn: the connection object and its buffers.
 *
 * A worker preallocates max_connections structs and hands them out from a
 * free list. A connection owns at most three heap buffers, each allocated
 * only while needed: `in` (unconsumed input: a partial request head, frame
 * header or control frame), `msg` (a fragmented or partially received
 * message being reassembled) and `out` (bytes not yet written). An idle
 * WebSocket connection owns none of them. Closing is deferred:
 * worker_close_now() closes the socket, marks the connection CONN_DEAD and
 * puts it on the worker's close list; the struct is released (and its
 * endpoint told) after the event loop pass, never in the middle of a
 * broadcast or a flush.
 */
#ifndef WSM_CONN_H
#define WSM_CONN_H

#include <stddef.h>
#include <stdint.h>
#include "ws_frame.h"

enum conn_state {
    CONN_FREE = 0,
    CONN_HTTP,          /* reading a request head */
    CONN_WS,            /* WebSocket open */
    CONN_WS_CLOSING,    /* we sent a close frame; waiting for the peer's */
    CONN_LINGER,        /* nothing more to read: flush `out`, then close */
    CONN_HANDOFF,       /* sent to a new worker at reload, awaiting its answer:
                           out of epoll, on no timer, no I/O (handoff.c) */
    CONN_DEAD           /* on the close list, freed after this loop pass */
};

/* Flags */
#define CONN_F_WANT_WRITE  0x01     /* EPOLLOUT registered */
#define CONN_F_CLOSE_SENT  0x02     /* our close frame is queued */
#define CONN_F_PING_SENT   0x04     /* idle ping outstanding */
#define CONN_F_SERVED      0x08     /* HTTP: at least one response sent (keep-alive) */
#define CONN_F_WR_SHUT     0x10     /* shutdown(SHUT_WR) done while lingering */
#define CONN_F_READ_PAUSED 0x20     /* EPOLLIN dropped: the peer is not reading our output */
#define CONN_F_INPUT_HELD  0x40     /* `in` holds requests/frames not parsed yet: our
                                       output was over budget; resumed once it drains */
#define CONN_F_IP_COUNTED  0x80     /* counted in the shm ip_limit table (give back on close) */

/*
 * Whether `peer` is the TCP peer or the client a proxy forwarded for. A peer
 * in real_ip_from is not counted at accept: its connection counts for the
 * client its request head names (X-Forwarded-For / X-Real-IP).
 */
enum conn_via {
    CONN_VIA_DIRECT = 0,    /* peer = TCP peer, not a trusted proxy */
    CONN_VIA_PROXY,         /* peer = a trusted proxy; no request head read yet */
    CONN_VIA_FORWARDED      /* peer = the client the proxy's last request named */
};

struct ws_endpoint;
struct stream_cursor;

struct conn {
    int      fd;
    uint8_t  state;             /* enum conn_state */
    uint8_t  flags;
    uint8_t  tlist;             /* timer list + 1, 0 = on none */
    uint8_t  via;               /* enum conn_via: who `peer` is */
    uint8_t  body_wait;         /* `in` holds a whole head and part of its body */
    uint8_t  api_wait;          /* parked on an API call that other workers answer
                                   (disconnect.h): its slot + 1, 0 = none */
    uint32_t id;                /* index in the worker's table */
    uint64_t deadline_ms;       /* handshake/idle/close deadline (monotonic) */
    struct conn *tprev, *tnext; /* timer list, ordered by deadline */
    uint8_t *in;  uint32_t in_len,  in_cap;
    uint8_t *out; uint32_t out_off, out_len, out_cap;
    uint8_t *msg; uint64_t msg_len, msg_cap;
    uint32_t msg_since_s;       /* monotonic seconds when the open message began */
    uint32_t handoff_seq;       /* CONN_HANDOFF: the number the answer must name */
    uint8_t  peer[16];          /* client address, IPv4 as ::ffff:a.b.c.d: the TCP
                                   peer, or the client a trusted proxy named */
    struct ws_parser parser;
    const struct ws_endpoint *ep; /* set from the upgrade until release, else NULL */
    struct stream_cursor *cursor; /* NULL, or the stream this connection
                                     receives (a chat member's room; the
                                     endpoint embeds the cursor in its own
                                     per-connection state): worker_flush()
                                     interleaves it with private output */
    struct conn *next_free;     /* free list / close list link */
};

struct conn_table {
    struct conn *conns;
    uint32_t     cap;
    uint32_t     used;
    uint32_t     fresh;         /* conns[fresh..cap) have never been used */
    struct conn *free_list;
    uint8_t     *spare;         /* one cached output buffer (see conn_out_release) */
    uint64_t     msg_bytes;     /* capacity of every reassembly buffer, summed */
    uint32_t     msg_open;      /* connections with a fragmented message begun */
    uint32_t     spare_cap;
};

/* Allocate CAP connection structs. 0 or -1 (ENOMEM). */
int  conn_table_init(struct conn_table *t, uint32_t cap);
void conn_table_fini(struct conn_table *t);

/* A zeroed connection for FD, or NULL when the table is full. */
struct conn *conn_alloc(struct conn_table *t, int fd);
/* Free buffers and return C to the free list (the fd is the caller's to close). */
void conn_release(struct conn_table *t, struct conn *c);

/* Append to the pending output. 0, or -1 when memory ran out. */
int  conn_out_append(struct conn_table *t, struct conn *c, const void *p, size_t n);
/* Reserve n bytes at the end of pending output and return where to write them. */
uint8_t *conn_out_reserve(struct conn_table *t, struct conn *c, size_t n);
/*
 * Insert p[0..n) into the pending output AT bytes after its first unwritten
 * byte (0 = in front of everything still to write). 0, or -1 (ENOMEM).
 */
int  conn_out_insert(struct conn_table *t, struct conn *c, size_t at, const void *p, size_t n);
/* Bytes of private output still to write. */
static inline size_t conn_out_pending(const struct conn *c) { return c->out_len - c->out_off; }
/* Mark n bytes written; drops the buffer (to the table's spare) once empty. */
void conn_out_consume(struct conn_table *t, struct conn *c, size_t n);

/* Keep data[0..n) as the unconsumed input tail. 0 or -1 (ENOMEM). */
int  conn_in_keep(struct conn *c, const uint8_t *data, size_t n);
void conn_in_clear(struct conn *c);

/*
 * Append to the message being reassembled (capacity doubles), counted in
 * the table's msg_bytes. 0, -ENOSPC when that would take msg_bytes over
 * BUDGET, or -ENOMEM.
 */
int  conn_msg_append(struct conn_table *t, struct conn *c, const uint8_t *p, size_t n,
                     uint64_t budget);
void conn_msg_clear(struct conn_table *t, struct conn *c);

#endif

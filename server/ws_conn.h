/*
 * ws_conn: a connection after the 101 response, and the life of the
 * WebSocket endpoint it belongs to. Runs the frame parser over input,
 * reassembles messages, answers pings, runs the close handshake (RFC 6455
 * §5.5.1, §7) and hands complete messages to the endpoint.
 *
 * An endpoint (/echo in echo.c, /chat in chat.c) is a struct ws_endpoint of
 * hooks, listed once in endpoints.c. ws_conn calls them at the right moments
 * and does the bookkeeping every endpoint shares: opening counts ws_current,
 * release uncounts it; the endpoint is told `close` when our close frame is
 * queued (nothing of its own may follow it) and again when the connection
 * is released (whichever comes first does the work: hooks are idempotent).
 */
#ifndef WSM_WS_CONN_H
#define WSM_WS_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "result.h"
#include "ws_frame.h"

struct worker;
struct conn;

/* Room for what an endpoint passes on with a connection at reload. */
#define WS_HANDOFF_MAX 512

struct ws_endpoint {
    const char *name;           /* "echo": logs */
    const char *path;           /* "/echo": the request path that routes here */
    int subpaths;               /* 1: PATH "/" <sub> routes here too */
    /*
     * Before the 101: 0 when the sub-path is served to a request with
     * QUERY (SUB is NULL for PATH itself), else the HTTP status refusing it
     * (404 no such room, 401/403 a token). NULL: every request is served.
     */
    int (*check)(struct worker *w, const char *sub, size_t sub_len, const char *query,
                 size_t query_len);
    /* Per worker, before the loop runs (NULL: nothing). 0 or < 0: the worker cannot start. */
    int (*init)(struct worker *w);
    /*
     * The 101 is queued on C: start serving it (welcome, history...). 0, or
     * < 0 when C could not be served (C has been failed or closed).
     */
    int (*open)(struct worker *w, struct conn *c, const char *sub, size_t sub_len,
                const char *query, size_t query_len);
    /* A complete text or binary message. */
    void (*message)(struct worker *w, struct conn *c, int opcode, const uint8_t *data,
                    size_t len);
    /* Stop delivering to C and let go of its state (NULL: nothing). Idempotent. */
    void (*close)(struct worker *w, struct conn *c);
    /*
     * Reload: may C move to a new worker now? If so, describe it into
     * REC[0..cap) and let go of it here without a trace; returns the record's
     * length (>= 0), or < 0 when C must stay (it gets 1012 and resumes).
     * NULL: the endpoint's connections never move.
     */
    ssize_t (*handoff_take)(struct worker *w, struct conn *c, void *rec, size_t cap);
    /*
     * The adopting side, before it takes C: is REC[0..len) a record
     * handoff_take could have written (every field in range)? 0, or < 0:
     * C is refused and stays with its sender (NULL: any record is).
     */
    int (*handoff_check)(struct worker *w, const void *rec, size_t len);
    /*
     * The adopting side of handoff_take, once C is ours (NULL: nothing to
     * restore). It may queue output but not write it. 0, or < 0 (C failed).
     */
    int (*handoff_adopt)(struct worker *w, struct conn *c, const void *rec, size_t len);
    /*
     * A record from handoff_take that no worker will adopt (the channel was
     * full, or the receiver could not take the socket): undo what the record
     * still holds on to (NULL: nothing). Either side may call it.
     */
    void (*handoff_abort)(struct worker *w, const void *rec, size_t len);
    /* 1 when C is a connection of USER (a token's sub), for POST
     * /api/disconnect. NULL: the endpoint has no users. */
    int (*of_user)(const struct conn *c, const char *user, size_t len);
    /* Another worker published (the slot's eventfd fired). NULL: not interested. */
    void (*wake)(struct worker *w);
    /* End of each loop pass, before closed connections are released. NULL: nothing. */
    void (*pass_end)(struct worker *w);
};

/*
 * The 101 for C's upgrade is queued: switch C to the WebSocket state on EP
 * and open it there. 0, or < 0 when the endpoint refused (C is closing).
 * A stopping worker instead starts the close handshake at once with its
 * stop code (the client reconnects to a live worker).
 */
int  ws_conn_open(struct worker *w, struct conn *c, const struct ws_endpoint *ep,
                  const char *sub, size_t sub_len, const char *query, size_t query_len);

/*
 * Adopting worker: C is a WebSocket of EP handed over with its decoder
 * state PARSER (buffers already restored) and the endpoint's REC. 0 or < 0
 * (C failed).
 */
int  ws_conn_adopt(struct worker *w, struct conn *c, const struct ws_endpoint *ep,
                   const struct ws_parser *parser, const void *rec, size_t len);

/* Retiring worker: 1 with *age_s set when C's open message has its clock running, else 0. */
int  ws_conn_msg_age(const struct worker *w, const struct conn *c, uint32_t *age_s);
/* Adopting worker: C's reassembled data is restored; its clock started AGE_S seconds ago. */
void ws_conn_msg_age_set(struct worker *w, struct conn *c, uint32_t age_s);

/* The worker releases C (closed): tell its endpoint, uncount it. */
void ws_conn_release(struct worker *w, struct conn *c);

/* Parse DATA[0..len) (in the receive buffer); keeps a partial frame as tail. */
void ws_conn_input(struct worker *w, struct conn *c, uint8_t *data, size_t len);

/* Queue one unfragmented frame in C's private output. 0, or -ENOMEM (C closed). */
int  ws_conn_send(struct worker *w, struct conn *c, int opcode,
                  const void *payload, size_t len);

/*
 * Start the closing handshake with CODE: queue the close frame and wait
 * (close_timeout) for the peer's close. Data received meanwhile is ignored.
 */
void ws_conn_close(struct worker *w, struct conn *c, uint16_t code, const char *reason);

/* Fail the connection (§7.1.7): send a close with CODE, then linger-close. */
void ws_conn_fail(struct worker *w, struct conn *c, uint16_t code, const char *reason);

/* Idle keep-alive: send a ping (the worker drops the peer if no data follows). */
void ws_conn_ping(struct worker *w, struct conn *c);

/*
 * Fail with 1008 every connection whose fragmented message is older than
 * message_timeout, whether or not it still sends anything (from the
 * worker's tick; costs nothing while no message is open).
 */
void ws_conn_sweep_messages(struct worker *w);

#endif

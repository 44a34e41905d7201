/*
 * ws_conn: WebSocket connection behaviour on top of the pure codec, and
 * the endpoint hooks' call sites (see ws_conn.h).
 *
 * A message that arrives whole in one read is used in place (no copy);
 * only a fragmented or partially received message is reassembled in the
 * connection's msg buffer, bounded by max_message (the parser fails it with
 * 1009 at the header that would exceed it).
 */
#include "ws_conn.h"

#include <errno.h>
#include <string.h>

#include "conn.h"
#include "log.h"
#include "worker.h"
#include "ws_frame.h"

/* A fragmented message open longer than message_timeout (pings do not extend it). */
static int message_overdue(const struct worker *w, const struct conn *c)
{
    return c->msg_since_s != 0 &&
           (uint64_t)(w->now_ms / 1000 + 1 - c->msg_since_s) * 1000 > w->cfg->message_timeout_ms;
}

/* Common to a fresh upgrade and an adopted connection. */
static void begin(struct worker *w, struct conn *c, const struct ws_endpoint *ep)
{
    c->state = CONN_WS;
    c->ep = ep;
    STAT_ADD(w, ws_current, 1);
    ws_parser_init(&c->parser, w->cfg->max_message, 1);
    worker_timer_set(w, c, TIMER_IDLE, w->cfg->idle_timeout_ms / 2);
}

int ws_conn_open(struct worker *w, struct conn *c, const struct ws_endpoint *ep,
                 const char *sub, size_t sub_len, const char *query, size_t query_len)
{
    begin(w, c, ep);
    if (w->stopping) {
        /* Accepted just before we stopped: send it on to the new workers. */
        ws_conn_close(w, c, (uint16_t)w->stopping, "server restarting");
        return 0;
    }
    return ep->open != NULL ? ep->open(w, c, sub, sub_len, query, query_len) : 0;
}

int ws_conn_adopt(struct worker *w, struct conn *c, const struct ws_endpoint *ep,
                  const struct ws_parser *parser, const void *rec, size_t len)
{
    begin(w, c, ep);
    c->parser = *parser;
    return ep->handoff_adopt != NULL ? ep->handoff_adopt(w, c, rec, len) : 0;
}

int ws_conn_msg_age(const struct worker *w, const struct conn *c, uint32_t *age_s)
{
    *age_s = 0;
    if (c->msg_since_s == 0)
        return 0;
    uint64_t now_s = w->now_ms / 1000 + 1;
    *age_s = now_s > c->msg_since_s ? (uint32_t)(now_s - c->msg_since_s) : 0;
    return 1;
}

void ws_conn_msg_age_set(struct worker *w, struct conn *c, uint32_t age_s)
{
    uint64_t now_s = w->now_ms / 1000 + 1;     /* never 0, as in reassemble() */
    c->msg_since_s = now_s > age_s ? (uint32_t)(now_s - age_s) : 1;
    w->conns.msg_open++;
}

void ws_conn_release(struct worker *w, struct conn *c)
{
    if (c->ep == NULL)
        return;
    if (c->ep->close != NULL)
        c->ep->close(w, c);
    worker_access_session_end(w, c);
    STAT_SUB(w, ws_current, 1);
    c->ep = NULL;
}

int ws_conn_send(struct worker *w, struct conn *c, int opcode, const void *payload, size_t len)
{
    size_t hlen = ws_frame_header_size(len);
    uint8_t *dst = conn_out_reserve(&w->conns, c, hlen + len);
    if (dst == NULL) {
        log_write(LOG_LVL_ALERT, 0, "conn %u: out of memory queueing %zu bytes", c->id, len);
        worker_close_now(w, c);
        return -ENOMEM;
    }
    ws_frame_header_encode(dst, opcode, 1, len);
    if (len > 0)
        memcpy(dst + hlen, payload, len);
    return 0;
}

static int send_close(struct worker *w, struct conn *c, uint16_t code, const char *reason)
{
    uint8_t payload[WS_CONTROL_MAX];
    size_t n = 0;
    /* 1005 means "no code was given": answer with an empty close as well. */
    if (code != WS_CLOSE_NO_STATUS)
        n = ws_close_payload_encode(payload, code, reason ? reason : "");
    /* Nothing may follow our close frame (§5.5.1): the endpoint lets go first. */
    if (c->ep->close != NULL)
        c->ep->close(w, c);
    c->flags |= CONN_F_CLOSE_SENT;
    worker_access_code(w, c, code);
    return ws_conn_send(w, c, WS_OP_CLOSE, payload, n);
}

void ws_conn_close(struct worker *w, struct conn *c, uint16_t code, const char *reason)
{
    if (c->state != CONN_WS)
        return;
    if (send_close(w, c, code, reason) < 0)
        return;
    c->state = CONN_WS_CLOSING;
    conn_msg_clear(&w->conns, c);
    worker_timer_set(w, c, TIMER_CLOSE, w->cfg->close_timeout_ms);
    worker_flush(w, c);
}

void ws_conn_fail(struct worker *w, struct conn *c, uint16_t code, const char *reason)
{
    if (c->state == CONN_DEAD || c->state == CONN_LINGER || c->state == CONN_HANDOFF)
        return;
    log_at(LOG_LVL_INFO, 0, "conn %u: failing the connection with %u (%s)", c->id, code, reason);
    if (code == WS_CLOSE_PROTOCOL_ERROR || code == WS_CLOSE_INVALID_DATA || code == WS_CLOSE_TOO_BIG)
        STAT_ADD(w, closes_protocol, 1);
    if (!(c->flags & CONN_F_CLOSE_SENT) && send_close(w, c, code, reason) < 0)
        return;
    worker_linger(w, c);
}

void ws_conn_sweep_messages(struct worker *w)
{
    for (uint32_t i = 0; w->conns.msg_open > 0 && i < w->conns.fresh; i++) {
        struct conn *c = &w->conns.conns[i];
        if (c->state == CONN_WS && message_overdue(w, c))
            ws_conn_fail(w, c, WS_CLOSE_POLICY, "message not finished in time");
    }
}

void ws_conn_ping(struct worker *w, struct conn *c)
{
    if (c->state != CONN_WS)
        return;
    if (message_overdue(w, c)) {
        ws_conn_fail(w, c, WS_CLOSE_POLICY, "message not finished in time");
        return;
    }
    c->flags |= CONN_F_PING_SENT;
    if (ws_conn_send(w, c, WS_OP_PING, "wschat", 6) == 0)
        worker_flush(w, c);
}

static void on_message(struct worker *w, struct conn *c, int opcode, uint8_t *data, size_t len)
{
    STAT_ADD(w, msgs_in, 1);
    if (c->state != CONN_WS)
        return;     /* after our close, data is ignored (§5.5.1) */
    c->ep->message(w, c, opcode, data, len);
}

static void on_close_frame(struct worker *w, struct conn *c, uint8_t *data, size_t len)
{
    uint16_t code;
    const uint8_t *reason;
    size_t reason_len;
    int rc = ws_close_parse(data, len, &code, &reason, &reason_len);
    if (rc < 0) {
        ws_conn_fail(w, c, (uint16_t)-rc, rc == -WS_CLOSE_INVALID_DATA ?
                     "close reason is not UTF-8" : "invalid close frame");
        return;
    }
    worker_access_code(w, c, code);
    if (c->state == CONN_WS) {
        /* Echo the peer's code (§5.5.1), then let it see our FIN. */
        if (send_close(w, c, code, "") < 0)
            return;
    }
    worker_linger(w, c);
}

static void on_control(struct worker *w, struct conn *c, int opcode, uint8_t *data, size_t len)
{
    switch (opcode) {
    case WS_OP_PING:
        if (c->state == CONN_WS)
            ws_conn_send(w, c, WS_OP_PONG, data, len);
        break;
    case WS_OP_PONG:
        break;      /* any input already counted as a sign of life */
    case WS_OP_CLOSE:
        on_close_frame(w, c, data, len);
        break;
    default:
        break;
    }
}

/* Add a chunk of an unfinished message to C's reassembly buffer. 0, or < 0 with C failed. */
static int reassemble(struct worker *w, struct conn *c, const uint8_t *data, size_t len)
{
    if (c->msg_since_s == 0) {
        /* +1: a worker clock in its first second must not read as "none". */
        c->msg_since_s = (uint32_t)(w->now_ms / 1000) + 1;
        w->conns.msg_open++;
    }
    int rc = conn_msg_append(&w->conns, c, data, len, w->cfg->max_reassembly_memory);
    if (rc == -ENOSPC) {
        log_at(LOG_LVL_WARN, 0, "conn %u: max_reassembly_memory reached", c->id);
        ws_conn_fail(w, c, WS_CLOSE_TOO_BIG, "server reassembly memory full");
    } else if (rc < 0) {
        ws_conn_fail(w, c, WS_CLOSE_INTERNAL, "out of memory");
    }
    return rc;
}

void ws_conn_input(struct worker *w, struct conn *c, uint8_t *data, size_t len)
{
    size_t off = 0;
    if (c->state == CONN_WS && message_overdue(w, c)) {
        ws_conn_fail(w, c, WS_CLOSE_POLICY, "message not finished in time");
        return;
    }
    while (off < len && (c->state == CONN_WS || c->state == CONN_WS_CLOSING)) {
        if (conn_out_pending(c) > w->cfg->max_send_queue) {
            /* Our answers are not being read: parse the rest once they drain. */
            c->flags |= CONN_F_INPUT_HELD;
            break;
        }
        struct ws_event ev;
        ssize_t n = ws_parse(&c->parser, data + off, len - off, &ev);
        if (n == 0)
            break;
        if (n < 0) {
            ws_conn_fail(w, c, (uint16_t)-n,
                         n == -WS_CLOSE_INVALID_DATA ? "invalid UTF-8" :
                         n == -WS_CLOSE_TOO_BIG ? "message too big" : "protocol error");
            return;
        }
        off += (size_t)n;
        if (ev.type == WS_EV_CONTROL) {
            on_control(w, c, ev.opcode, ev.data, ev.len);
        } else if (ev.type == WS_EV_DATA) {
            if (c->state != CONN_WS)
                continue;
            if (ev.msg_end && c->msg_len == 0) {
                on_message(w, c, ev.opcode, ev.data, ev.len);
            } else {
                if (reassemble(w, c, ev.data, ev.len) < 0)
                    return;
                if (ev.msg_end) {
                    on_message(w, c, ev.opcode, c->msg, c->msg_len);
                    conn_msg_clear(&w->conns, c);
                }
            }
        }
    }
    if (c->state == CONN_WS || c->state == CONN_WS_CLOSING) {
        if (conn_in_keep(c, data + off, len - off) < 0)
            ws_conn_fail(w, c, WS_CLOSE_INTERNAL, "out of memory");
    }
}

/*
 * http_conn: the HTTP side of a connection (see http_conn.h).
 *
 * Routing: /echo and /chat[/room] are WebSocket endpoints (anything else
 * there is answered with the handshake's status); /stats and /metrics are
 * stats.c's; every other GET/HEAD goes to the static file handler. Plain
 * HTTP connections are kept alive between requests (pipelining included);
 * error responses close the connection after they are sent.
 *
 * A connection from a proxy in real_ip_from is nobody's until its request
 * head names the client (X-Forwarded-For, X-Real-IP): it was not counted
 * at accept, and is counted here against that client's
 * max_connections_per_ip (503 with Retry-After past it, like a direct
 * client at accept). /stats and /metrics answer only stats_allow clients.
 */
#include "http_conn.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "api.h"
#include "cidr.h"
#include "conn.h"
#include "disconnect.h"
#include "endpoints.h"
#include "http.h"
#include "log.h"
#include "real_ip.h"
#include "static_files.h"
#include "stats.h"
#include "worker.h"
#include "ws_conn.h"
#include "ws_handshake.h"

/* The request being answered, as its access log line names it. */
struct req_note {
    const char *method;         /* NULL: no request line could be read */
    size_t      method_len;
    const char *path;           /* the target's path: never its query (tokens) */
    size_t      path_len;
    uint64_t    in;             /* bytes of the request, head and body */
};

static const struct req_note no_request = { NULL, 0, NULL, 0, 0 };

/* Queue a complete error response with STATUS and linger-close. */
static void answer_error(struct worker *w, struct conn *c, const struct req_note *rn,
                         int status, const char *extra)
{
    char buf[1024];
    ssize_t n = http_error_response(buf, sizeof buf, status, extra);
    log_at(LOG_LVL_INFO, 0, "conn %u: answering %d", c->id, status);
    int queued = n >= 0 && conn_out_append(&w->conns, c, buf, (size_t)n) == 0;
    worker_access_request(w, c, rn->method, rn->method_len, rn->path, rn->path_len, status,
                          rn->in, queued ? (uint64_t)n : 0);
    if (!queued) {
        worker_close_now(w, c);
        return;
    }
    worker_linger(w, c);
}

/* ADDR (16 bytes, IPv4 mapped) as text, for log lines. */
static const char *addr_text(const uint8_t a[16], char *buf, size_t cap)
{
    static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
    int v4 = memcmp(a, mapped, sizeof mapped) == 0;
    if (inet_ntop(v4 ? AF_INET : AF_INET6, v4 ? a + 12 : a, buf, (socklen_t)cap) == NULL)
        snprintf(buf, cap, "?");
    return buf;
}

/*
 * Room for X-Forwarded-For lines joined. real_ip() walks at most
 * REAL_IP_MAX_HOPS entries of at most CIDR_ADDR_MAX + 16 bytes (its scan
 * bound) from the right, so it stops before it could reach a cut.
 */
#define XFF_JOIN_MAX 2048
_Static_assert(XFF_JOIN_MAX > REAL_IP_MAX_HOPS * (CIDR_ADDR_MAX + 16 + 1),
               "a joined X-Forwarded-For holds all real_ip() may read");

/*
 * X-Forwarded-For as one value: the line itself when there is one, else
 * every non-empty line joined with "," (RFC 9110 §5.3) into BUF[0..cap),
 * filled from the right, since real_ip() reads only the right end (the
 * nearest proxies). A line that does not fit loses its leftmost entries up
 * to a comma, and the comma kept in front (an empty entry) stops the walk
 * there: no address is ever made of a cut one. NULL when absent.
 */
static const char *xff_value(const struct http_request *req, char *buf, size_t cap,
                             size_t *len)
{
    size_t lines = http_count_header(req, "X-Forwarded-For");
    *len = 0;
    if (lines == 0)
        return NULL;
    if (lines == 1) {
        const struct http_header *h = http_find_header(req, "X-Forwarded-For");
        *len = h->value_len;
        return h->value;
    }
    size_t start = cap;     /* buf[start..cap) holds the lines joined so far; start > 0 */
    for (size_t i = req->num_headers; i-- > 0;) {
        const struct http_header *h = &req->headers[i];
        if (h->value_len == 0 || !http_slice_ieq(h->name, h->name_len, "X-Forwarded-For"))
            continue;
        size_t sep = start < cap;
        if (h->value_len + sep < start) {
            if (sep)
                buf[--start] = ',';
            start -= h->value_len;
            memcpy(buf + start, h->value, h->value_len);
            continue;
        }
        /* It does not fit: keep the entries of its right end that do. */
        if (sep)
            buf[--start] = ',';
        const char *tail = h->value + h->value_len - start;
        const char *comma = memchr(tail, ',', start);
        if (comma != NULL) {
            size_t keep = (size_t)(h->value + h->value_len - comma);
            memcpy(buf + start - keep, comma, keep);
            start -= keep;
        } else if (!sep) {
            buf[--start] = ',';
        }
        break;
    }
    *len = cap - start;
    return buf + start;
}

/*
 * C's TCP peer is in real_ip_from: C now serves the client REQ names (by
 * real_ip()) and counts against that address instead (moving the count
 * when a keep-alive connection's next request names another client).
 * 1 to go on; 0 when that client is over max_connections_per_ip (503 with
 * Retry-After queued, as a direct client gets at accept).
 */
static int forwarded_client(struct worker *w, struct conn *c, const struct http_request *req,
                            const struct req_note *rn)
{
    uint8_t proxy[16], client[16];
    char xff[XFF_JOIN_MAX];
    size_t xff_len, xri_len = 0;
    if (c->via == CONN_VIA_PROXY)
        memcpy(proxy, c->peer, 16);
    else
        worker_peer_of(c->fd, proxy);   /* peer holds the previous request's client */
    const char *xffp = xff_value(req, xff, sizeof xff, &xff_len);
    const char *xri = NULL;
    if (http_count_header(req, "X-Real-IP") == 1) {    /* two would be a guess */
        const struct http_header *h = http_find_header(req, "X-Real-IP");
        xri = h->value;
        xri_len = h->value_len;
    }
    real_ip(client, proxy, &w->cfg->real_ip_from, xffp, xff_len, xri, xri_len);
    c->via = CONN_VIA_FORWARDED;
    char a[INET6_ADDRSTRLEN], b[INET6_ADDRSTRLEN];
    log_at(LOG_LVL_DEBUG, 0, "conn %u: client %s via %s", c->id,
           addr_text(client, a, sizeof a), addr_text(proxy, b, sizeof b));
    if (worker_ip_retake(w, c, client, w->cfg->max_connections_per_ip))
        return 1;
    STAT_ADD(w, rejects_limit, 1);
    log_at(LOG_LVL_INFO, 0, "conn %u: client %s over max_connections_per_ip (%u): "
           "answering 503", c->id, addr_text(client, a, sizeof a),
           w->cfg->max_connections_per_ip);
    answer_error(w, c, rn, 503, "Retry-After: 10\r\n");
    return 0;
}

/*
 * Queue RESP's head and, unless HEAD_ONLY, its body; free what it owns.
 * 0, or -ENOMEM / -ENOSPC with C closed.
 */
static int answer(struct worker *w, struct conn *c, const struct req_note *rn,
                  struct http_response *resp, int head_only, int keep)
{
    char head[HTTP_RESPONSE_HEADERS_MAX + 512];
    ssize_t n = http_response_head(head, sizeof head, resp->status, resp->ctype,
                                   resp->length, keep, resp->headers);
    int rc = n < 0 ? (int)n : conn_out_append(&w->conns, c, head, (size_t)n);
    uint64_t out = rc == 0 ? (uint64_t)n : 0;
    if (rc == 0 && !head_only && resp->body != NULL && resp->length > 0) {
        rc = conn_out_append(&w->conns, c, resp->body, resp->length);
        out += rc == 0 ? resp->length : 0;
    }
    worker_access_request(w, c, rn->method, rn->method_len, rn->path, rn->path_len,
                          resp->status, rn->in, out);
    free(resp->owned);
    resp->owned = NULL;
    if (rc < 0) {
        worker_close_now(w, c);
        return rc;
    }
    return 0;
}

/* Path part of the request-target, and its query (after '?', may be empty). */
static void split_target(const struct http_request *req, const char **path, size_t *path_len,
                         const char **query, size_t *query_len)
{
    const char *t = req->target, *end = req->target + req->target_len;
    /* Absolute-form (RFC 9112 §3.2.2): route on the path after the authority. */
    if (*t != '/' && *t != '*') {
        const char *auth = memchr(t, ':', req->target_len);
        auth = auth ? auth + 3 : end;
        const char *slash = auth < end ? memchr(auth, '/', (size_t)(end - auth)) : NULL;
        t = slash ? slash : end;
    }
    const char *q = memchr(t, '?', (size_t)(end - t));
    *path = t;
    *path_len = q ? (size_t)(q - t) : (size_t)(end - t);
    *query = q ? q + 1 : end;
    *query_len = q ? (size_t)(end - q - 1) : 0;
}

/*
 * 1 when REQ carries a body, or body framing that cannot be trusted: any
 * Transfer-Encoding, more than one Content-Length (a proxy that honours the
 * last one would see the "body" as a second request: RFC 9112 §6.3 says
 * reject), or one that is not exactly "0". No route here takes a body.
 */
static int has_body(const struct http_request *req)
{
    size_t ncl = http_count_header(req, "Content-Length");
    if (http_find_header(req, "Transfer-Encoding") != NULL || ncl > 1)
        return 1;
    const struct http_header *cl = http_find_header(req, "Content-Length");
    return cl != NULL && !(cl->value_len == 1 && cl->value[0] == '0');
}

static int wants_keepalive(const struct http_request *req)
{
    const struct http_header *h = http_find_header(req, "Connection");
    if (h != NULL && http_has_token(h->value, h->value_len, "close"))
        return 0;
    if (req->minor_version == 0)
        return h != NULL && http_has_token(h->value, h->value_len, "keep-alive");
    return 1;
}

/*
 * Upgrade to EP (SUB: the path after the endpoint's, NULL for its own);
 * REST bytes came after the request. Returns 1 when the connection is now
 * a WebSocket, 0 when an error response was queued or C was closed.
 */
static int upgrade(struct worker *w, struct conn *c, const struct http_request *req,
                   const struct req_note *rn, size_t rest, const struct ws_endpoint *ep,
                   const char *sub, size_t sub_len, const char *query, size_t query_len)
{
    struct ws_origins origins = { w->cfg->origins, w->cfg->norigins };
    char accept[WS_ACCEPT_LEN + 1];
    char head[256];
    int status = ep->check != NULL ? ep->check(w, sub, sub_len, query, query_len) : 0;
    if (status != 0) {
        /* No such resource, or not for this client: not a failed handshake. */
        answer_error(w, c, rn, status, status == 401 ? "WWW-Authenticate: Bearer\r\n"
                                       : status == 503 ? "Retry-After: 1\r\n" : NULL);
        return 0;
    }
    status = ws_handshake_check(req, &origins, accept);
    if (status == 0 && has_body(req))
        status = 400;
    if (status != 0) {
        STAT_ADD(w, handshakes_failed, 1);
        answer_error(w, c, rn, status, status == 426 ? "Sec-WebSocket-Version: 13\r\n" : NULL);
        return 0;
    }
    size_t n = ws_handshake_response(head, sizeof head, accept);
    if (conn_out_append(&w->conns, c, head, n) < 0) {
        worker_close_now(w, c);
        return 0;
    }
    STAT_ADD(w, handshakes_ok, 1);
    /* From here on the connection's bytes and time are the session's (one line at its end). */
    worker_access_session_begin(w, c, rn->path, rn->path_len, rn->in + rest);
    return ws_conn_open(w, c, ep, sub, sub_len, query, query_len) == 0 && c->state == CONN_WS;
}

/* Handle one complete request. Returns 1 to keep reading requests. */
/*
 * The body an /api/ request announces: its length (0: none), or -STATUS:
 * 411 for Transfer-Encoding (only Content-Length bodies are read), 400 for
 * a bad or repeated Content-Length, 413 over max_api_body. Other paths
 * read no body (dispatch() refuses one).
 */
static long api_body_len(struct worker *w, const struct http_request *req)
{
    const char *path, *query;
    size_t path_len, query_len;
    split_target(req, &path, &path_len, &query, &query_len);
    if (!api_route(path, path_len))
        return 0;
    if (http_find_header(req, "Transfer-Encoding") != NULL)
        return -411;
    const struct http_header *cl = http_find_header(req, "Content-Length");
    if (cl == NULL)
        return 0;
    if (http_count_header(req, "Content-Length") != 1 || cl->value_len == 0 || cl->value_len > 9)
        return cl->value_len > 9 ? -413 : -400;
    long n = 0;
    for (size_t i = 0; i < cl->value_len; i++) {
        if (cl->value[i] < '0' || cl->value[i] > '9')
            return -400;
        n = n * 10 + (cl->value[i] - '0');
    }
    return (uint64_t)n > w->cfg->max_api_body ? -413 : n;
}

static int dispatch(struct worker *w, struct conn *c, const struct http_request *req,
                    const struct req_note *rn, const uint8_t *body, size_t body_len,
                    uint8_t *rest, size_t rest_len)
{
    const char *path, *query;
    size_t path_len, query_len;
    if (c->via != CONN_VIA_DIRECT && !forwarded_client(w, c, req, rn))
        return 0;
    split_target(req, &path, &path_len, &query, &query_len);

    const char *sub;
    size_t sub_len;
    const struct ws_endpoint *ep = endpoints_route(path, path_len, &sub, &sub_len);
    if (ep != NULL) {
        if (upgrade(w, c, req, rn, rest_len, ep, sub, sub_len, query, query_len))
            ws_conn_input(w, c, rest, rest_len);
        return 0;
    }

    STAT_ADD(w, http_requests, 1);
    if (api_route(path, path_len)) {
        struct http_response resp;
        struct api_call call;
        int keep = wants_keepalive(req) && !w->stopping;
        int rc = api_serve(w, req, c->peer, path, path_len, query, query_len, body, body_len,
                           &resp, &call);
        if (rc == API_DISCONNECT) {
            rc = disconnect_start(w, c, call.user, call.user_len, keep, rn->in);
            if (rc == 0) {
                /* Parked: what follows waits for the answer (reads paused). */
                if (conn_in_keep(c, rest, rest_len) < 0)
                    worker_close_now(w, c);
                else if (rest_len > 0)
                    c->flags |= CONN_F_INPUT_HELD;
                return 0;
            }
        }
        if (rc < 0) {
            answer_error(w, c, rn, -rc, -rc == 401 ? "WWW-Authenticate: Bearer\r\n"
                                  : -rc == 405 ? "Allow: GET, POST\r\n" : NULL);
            return 0;
        }
        if (answer(w, c, rn, &resp, 0, keep) < 0)
            return 0;
        if (!keep) {
            worker_linger(w, c);
            return 0;
        }
        return 1;
    }
    int head_only = http_slice_ieq(req->method, req->method_len, "HEAD");
    if (!head_only && !http_slice_ieq(req->method, req->method_len, "GET")) {
        answer_error(w, c, rn, 405, "Allow: GET, HEAD\r\n");
        return 0;
    }
    if (has_body(req) || body_len > 0) {
        answer_error(w, c, rn, 400, NULL);
        return 0;
    }
    int keep = wants_keepalive(req) && !w->stopping;
    int stats = stats_route(path, path_len);
    if (stats && !cidr_match(&w->cfg->stats_allow, c->peer)) {
        char a[INET6_ADDRSTRLEN];
        log_at(LOG_LVL_INFO, 0, "conn %u: %.*s refused to %s (not in stats_allow)", c->id,
               (int)path_len, path, addr_text(c->peer, a, sizeof a));
        answer_error(w, c, rn, 403, NULL);
        return 0;
    }
    struct http_response resp;
    int rc = stats
           ? stats_serve(w->ctx.seg, path, path_len, &resp)
           : static_files_serve(w->cfg->web_root, req, path, path_len, head_only, &resp);
    if (rc < 0) {
        answer_error(w, c, rn, -rc, -rc == 405 ? "Allow: GET, HEAD\r\n" : NULL);
        return 0;
    }
    if (answer(w, c, rn, &resp, head_only, keep) < 0)
        return 0;
    if (!keep) {
        worker_linger(w, c);
        return 0;
    }
    return 1;
}

void http_conn_input(struct worker *w, struct conn *c, uint8_t *data, size_t len, size_t prev_len)
{
    size_t off = 0;
    if (c->api_wait) {
        /* The answer to an earlier request is not out yet: keep the rest for after it. */
        if (conn_in_keep(c, data, len) < 0)
            answer_error(w, c, &no_request, 500, NULL);
        else if (len > 0)
            c->flags |= CONN_F_INPUT_HELD;
        return;
    }
    /* A kept head waiting for its body was scanned whole: parse it again from its start. */
    if (c->body_wait)
        prev_len = 0;
    c->body_wait = 0;
    while (c->state == CONN_HTTP && off < len) {
        /* Pipelined requests wait while the answers already queued exceed
         * the send budget: the worker_loop parses the rest once they drain. */
        if (conn_out_pending(c) > w->cfg->max_send_queue) {
            c->flags |= CONN_F_INPUT_HELD;
            break;
        }
        struct http_request req;
        ssize_t n = http_parse_request((const char *)data + off, len - off, prev_len,
                                       w->cfg->max_request_head, &req);
        if (n == 0)
            break;
        if (n < 0) {
            /* No request line to name: the line says "- -" and what was read. */
            struct req_note bad = no_request;
            bad.in = len - off;
            answer_error(w, c, &bad, http_error_status(n), NULL);
            return;
        }
        long body = api_body_len(w, &req);
        const char *path, *query;
        size_t path_len, query_len;
        split_target(&req, &path, &path_len, &query, &query_len);
        struct req_note note = { req.method, req.method_len, path, path_len, (uint64_t)n };
        if (body < 0) {
            answer_error(w, c, &note, (int)-body, NULL);
            return;
        }
        /*
         * A body not all here yet: keep the head with it and wait (the
         * handshake_timeout that bounds a head bounds the whole request).
         */
        if (len - off - (size_t)n < (size_t)body) {
            c->body_wait = 1;
            break;
        }
        const uint8_t *body_at = data + off + n;
        off += (size_t)n + (size_t)body;
        prev_len = 0;
        note.in += (uint64_t)body;
        if (!dispatch(w, c, &req, &note, body_at, (size_t)body, data + off, len - off))
            return;     /* upgraded (rest consumed by ws) or closing */
        c->flags |= CONN_F_SERVED;
        /* Keep-alive: the next request gets a fresh handshake_timeout. */
        worker_timer_set(w, c, TIMER_HANDSHAKE, w->cfg->handshake_timeout_ms);
    }
    if (c->state == CONN_HTTP && conn_in_keep(c, data + off, len - off) < 0)
        answer_error(w, c, &no_request, 500, NULL);
}

void http_conn_disconnect_done(struct worker *w, const struct disconnect_done *d)
{
    struct conn *c = d->c;
    const struct req_note rn = { "POST", 4, "/api/disconnect", 15, d->req_bytes };
    struct http_response resp;
    if (api_disconnect_answer(d->closed, d->complete, &resp) < 0) {
        answer_error(w, c, &rn, 500, NULL);
        return;
    }
    if (answer(w, c, &rn, &resp, 0, d->keep) < 0)
        return;
    if (!d->keep) {
        worker_linger(w, c);
        return;
    }
    c->flags |= CONN_F_SERVED;
    worker_timer_set(w, c, TIMER_HANDSHAKE, w->cfg->handshake_timeout_ms);
    /* Requests that came in behind the call: their turn now. */
    size_t len = c->in_len;
    c->flags &= (uint8_t)~CONN_F_INPUT_HELD;
    if (len > 0) {
        memcpy(w->rbuf, c->in, len);
        http_conn_input(w, c, w->rbuf, len, 0);
    }
    worker_flush(w, c);
}

/*
 * api: the backend HTTP API under /api/: GET /api/rooms, GET /api/history
 * and POST /api/publish. Off (404) unless api_key_file is set; every request
 * needs "Authorization: Bearer <key>" (compared in constant time, 401
 * otherwise) from an address in api_allow (403 otherwise).
 *
 * /api/rooms: {"rooms":[{"room":…,"online":N,"last_id":K},…]}, every room
 * the room table holds with members or messages.
 * /api/history?room=R&since=K&limit=N: {"room":R,"messages":[…],"gap":B},
 * the oldest N (default 100, at most 1000) messages of R with an id above
 * K (default 0: from the oldest kept), in id order, each the very object
 * the WebSocket sends;
 * gap is true when messages of R after K are no longer kept (or, for a
 * room whose table entry was reclaimed while its messages were still in
 * the ring, may not be found). A caller pages forward by passing the last
 * id as the next since.
 *
 * /api/publish: a JSON body {"room":R,"text":T,"nick":N} (nick optional,
 * default "system") → {"id":K}: the message reaches R's members like a
 * member's, in the same global order and into history, with "user":"api".
 *
 * /api/disconnect: a JSON body {"user":U} → {"closed":N}: every
 * connection of the token user U, on every worker, is closed with 1008
 * "disconnected". Its answer waits for the other workers (disconnect.h):
 * api_serve only checks the call and names the user.
 *
 * It knows no connection: it fills a struct http_response, or returns
 * API_DISCONNECT with *CALL filled for the caller to start, or -STATUS;
 * the caller has read the body (Content-Length, max_api_body).
 */
#ifndef WSM_API_H
#define WSM_API_H

#include <stddef.h>
#include <stdint.h>

#include "result.h"

struct http_request;
struct http_response;
struct worker;

#define API_DISCONNECT 1

/* What a call the caller carries out names (API_DISCONNECT). */
struct api_call {
    const char *user;           /* into a buffer of api.c, valid until the next call */
    size_t user_len;
};

/* 1 when PATH[0..len) is under /api/. */
int api_route(const char *path, size_t len);

/*
 * Answer REQ (routed by api_route, BODY[0..body_len) read) from client
 * address PEER. 0 with RESP filled, API_DISCONNECT with CALL filled, or
 * -STATUS (404, 401, 403, 405, 400, 413, 500).
 */
int api_serve(struct worker *w, const struct http_request *req, const uint8_t peer[16],
              const char *path, size_t path_len, const char *query, size_t query_len,
              const uint8_t *body, size_t body_len, struct http_response *resp,
              struct api_call *call);

/* The answer to a disconnect call: {"closed":N} (complete: every worker acted). */
int api_disconnect_answer(uint32_t closed, int complete, struct http_response *resp);

#endif

/*
 * ws_handshake: the server's opening handshake (RFC 6455 §4.2).
 *
 * Validates a parsed upgrade request (§4.2.1) and builds the 101 response
 * with Sec-WebSocket-Accept = base64(SHA-1(key + GUID)) (§4.2.2, libcrypto).
 * No extension or subprotocol is ever negotiated. Pure apart from the hash:
 * no I/O, no allocation, no logging; routing (which path) is the caller's.
 */
#ifndef WSM_WS_HANDSHAKE_H
#define WSM_WS_HANDSHAKE_H

#include <stddef.h>
#include "http.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_ACCEPT_LEN 28        /* base64 of a 20-byte SHA-1 */

struct ws_origins {
    const char (*list)[256];    /* allowed Origin values, exact, case-insensitive */
    int count;                  /* 0 = any origin (and none) accepted */
};

/*
 * Check REQ as a WebSocket upgrade: method GET (else 405), HTTP/1.1 or later
 * (else 400), Host present once, Upgrade has token "websocket", Connection has
 * token "upgrade", Sec-WebSocket-Key present once and the base64 of exactly
 * 16 bytes (else 400); Sec-WebSocket-Version 13 (else 426: the caller adds
 * "Sec-WebSocket-Version: 13"); Origin allowed when the list is not empty
 * (else 403). Returns 0 and fills accept (WS_ACCEPT_LEN chars + NUL), or the
 * HTTP status to answer with.
 */
int ws_handshake_check(const struct http_request *req,
                       const struct ws_origins *origins,
                       char accept[WS_ACCEPT_LEN + 1]);

/* base64(SHA-1(key + WS_GUID)) into out (WS_ACCEPT_LEN chars + NUL). */
void ws_accept_key(const char *key, size_t key_len, char out[WS_ACCEPT_LEN + 1]);

/* The 101 Switching Protocols response head. Returns its length, 0 if cap is short. */
size_t ws_handshake_response(char *dst, size_t cap, const char accept[WS_ACCEPT_LEN + 1]);

#endif

/*
 * http_conn: a connection in the HTTP state. Accumulates the request head
 * (any split), routes it (/echo, /chat, static files), answers errors with
 * their precise status, and upgrades WebSocket requests, handing any bytes
 * pipelined after the head to the WebSocket layer.
 */
#ifndef WSM_HTTP_CONN_H
#define WSM_HTTP_CONN_H

#include <stddef.h>
#include <stdint.h>

struct worker;
struct conn;

/*
 * DATA[0..len) is the kept tail (prev_len bytes) followed by newly read
 * bytes, in the worker's receive buffer. Consumes what it can and keeps the
 * rest as the connection's tail.
 */
void http_conn_input(struct worker *w, struct conn *c, uint8_t *data, size_t len,
                     size_t prev_len);

struct disconnect_done;

/* Answer the disconnect call C was parked on, then serve what came in behind it. */
void http_conn_disconnect_done(struct worker *w, const struct disconnect_done *d);

#endif

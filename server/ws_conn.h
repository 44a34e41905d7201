/*
 * ws_conn: a connection after the 101 response. Runs the frame parser over
 * input, reassembles messages, answers pings, runs the close handshake
 * (RFC 6455 §5.5.1, §7) and hands complete messages to the endpoint: /echo
 * here, /chat in chat.c.
 */
#ifndef WSM_WS_CONN_H
#define WSM_WS_CONN_H

#include <stddef.h>
#include <stdint.h>

struct worker;
struct conn;

/* Switch C to the WebSocket state for ENDPOINT (enum conn_endpoint). */
void ws_conn_open(struct worker *w, struct conn *c, int endpoint);

/* Parse DATA[0..len) (in the receive buffer); keeps a partial frame as tail. */
void ws_conn_input(struct worker *w, struct conn *c, uint8_t *data, size_t len);

/* Queue one unfragmented frame in C's private output. 0, or -1 (closed C). */
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

#endif

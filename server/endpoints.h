/*
 * endpoints: the one table of WebSocket endpoints (struct ws_endpoint, in
 * ws_conn.h). Routing, hand-over records and the worker's per-pass hooks
 * all go through it, so a new endpoint is one row in endpoints.c plus the
 * file that defines it.
 */
#ifndef WSM_ENDPOINTS_H
#define WSM_ENDPOINTS_H

#include <stddef.h>

struct worker;
struct ws_endpoint;

/*
 * The endpoint serving request path PATH[0..len), with *sub set to the
 * part after "<endpoint path>/" (possibly empty), or to NULL for the
 * endpoint's path itself. NULL when the path is no endpoint's.
 */
const struct ws_endpoint *endpoints_route(const char *path, size_t len,
                                          const char **sub, size_t *sub_len);

/* Position of EP in the table (what a hand-over record names), and back (NULL if out of range). */
unsigned endpoints_index(const struct ws_endpoint *ep);
const struct ws_endpoint *endpoints_at(unsigned idx);
/* How many endpoints the table has. */
unsigned endpoints_count(void);

/* Every endpoint's init hook, in table order. 0, or the first failure (< 0). */
int  endpoints_init(struct worker *w);
/* Every endpoint's wake hook (the slot's eventfd fired). */
void endpoints_wake(struct worker *w);
/* Every endpoint's pass_end hook. */
void endpoints_pass_end(struct worker *w);

#endif

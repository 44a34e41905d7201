/*
 * echo: the RFC 6455 echo endpoint at /echo. Every complete message comes
 * back with the same opcode and payload as one frame. It keeps no state of
 * its own, so its connections always move at reload with an empty record
 * of theirs (what ws_conn and the connection hold travels in handoff.c's).
 * A row of endpoints.c.
 */
#include <errno.h>

#include "ws_conn.h"

static void echo_message(struct worker *w, struct conn *c, int opcode, const uint8_t *data,
                         size_t len)
{
    /* A failure has closed C already (out of memory): nothing else to do. */
    (void)ws_conn_send(w, c, opcode, data, len);
}

static ssize_t echo_handoff_take(struct worker *w, struct conn *c, void *rec, size_t cap)
{
    (void)w, (void)c, (void)rec, (void)cap;
    return 0;
}

/* An echo connection has nothing of its own to carry. */
static int echo_handoff_check(struct worker *w, const void *rec, size_t len)
{
    (void)w, (void)rec;
    return len == 0 ? 0 : -EINVAL;
}

const struct ws_endpoint echo_endpoint = {
    .name = "echo",
    .path = "/echo",
    .message = echo_message,
    .handoff_take = echo_handoff_take,
    .handoff_check = echo_handoff_check,
};

/*
 * chat_limits: see chat_limits.h.
 */
#include "chat_limits.h"

#include "chat_proto.h"
#include "conn.h"
#include "log.h"
#include "rate.h"
#include "worker.h"
#include "ws_conn.h"

/* The rate_limited error event to C (C may be closed by a failed send). */
static void refuse(struct worker *w, struct conn *c, const char *reason)
{
    char buf[256];
    ssize_t n = chat_proto_error(buf, sizeof buf, "rate_limited", reason);
    if (n > 0)
        ws_conn_send(w, c, WS_OP_TEXT, buf, (size_t)n);
}

int chat_limit_rate(struct worker *w, struct conn *c, struct rate_bucket *b)
{
    const struct config *cfg = w->cfg;
    if (cfg->rate_limit == 0)
        return 1;
    switch (rate_take(b, cfg->rate_limit, cfg->rate_limit_burst, w->now_ms)) {
    case RATE_OK:
        return 1;
    case RATE_ABUSE:
        log_at(LOG_LVL_WARN, 0, "conn %u: over rate_limit for %u s: closing with 1008",
               c->id, RATE_ABUSE_WINDOW_S);
        ws_conn_close(w, c, WS_CLOSE_POLICY, "rate limit exceeded");
        return 0;
    default:
        refuse(w, c, "too many messages; slow down");
        return 0;
    }
}

int chat_limit_address(struct worker *w, struct conn *c, size_t bytes)
{
    if (worker_ip_charge(w, c, bytes))
        return 1;
    refuse(w, c, "your address is publishing faster than the server allows");
    return 0;
}

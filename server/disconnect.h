/*
 * disconnect: POST /api/disconnect across workers. The worker that takes
 * the call closes its own connections of the user, posts a request in the
 * shm kick table (kick_table.h) naming every other live worker and wakes
 * them; each closes its connections of that user at its next wake and
 * adds them to the request's count. The API call is answered once every
 * live worker has acted (a worker that dies meanwhile is not waited for),
 * or after DISCONNECT_WAIT_MS with what was counted by then and
 * "complete":false; the request then stays posted DISCONNECT_KEEP_MS more,
 * so a worker that was stopped or busy still closes its connections.
 *
 * The HTTP connection waits parked (conn->api_wait) with its input held
 * and its reads paused, so a pipelined request behind the call is answered
 * after it, in order.
 */
#ifndef WSM_DISCONNECT_H
#define WSM_DISCONNECT_H

#include <stddef.h>
#include <stdint.h>

#include "result.h"

#define DISCONNECT_WAIT_MS 2000
#define DISCONNECT_KEEP_MS 60000
#define DISCONNECT_WAITS   8       /* parked calls per worker (node-wide: KICK_REQS) */

struct worker;
struct conn;

/* Per worker, before the loop runs: forget requests a dead worker of this slot left. */
void disconnect_init(struct worker *w);

/*
 * Close this worker's connections of USER, tell the others, and park C
 * until they have. 0: C is parked (its answer comes from disconnect_poll);
 * -503 when too many calls are outstanding; -500 when the lock failed.
 * KEEP: whether C stays open after its answer; REQ_BYTES: the request's
 * size, for the access log line written with the answer.
 */
int disconnect_start(struct worker *w, struct conn *c, const char *user, size_t len, int keep,
                     uint64_t req_bytes);

struct disconnect_done {
    struct conn *c;
    uint32_t closed;            /* connections closed, every worker */
    int complete;               /* 0: the wait ran out before every worker acted */
    int keep;
    uint64_t req_bytes;
};

/*
 * On a wake or a tick: act on other workers' requests, then return the
 * parked calls that are settled (at most MAX into OUT; the caller answers
 * them). A parked connection that went away meanwhile is dropped here.
 */
int disconnect_poll(struct worker *w, struct disconnect_done *out, int max);

#endif

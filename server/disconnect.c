/* disconnect: see disconnect.h. */
#include "disconnect.h"

#include <string.h>

#include "chat_publish.h"
#include "conn.h"
#include "kick_table.h"
#include "lock.h"
#include "log.h"
#include "notify.h"
#include "shm.h"
#include "worker.h"
#include "ws_conn.h"
#include "ws_frame.h"

struct wait {
    struct conn *c;             /* NULL: answered (or free: idx < 0) */
    int idx;                    /* its request in the kick table, -1: free */
    uint64_t seq;
    uint64_t deadline_ms;
    uint32_t closed_here;
    int keep;
    uint64_t req_bytes;
};

static struct wait waits[DISCONNECT_WAITS];
static int nwaits;              /* entries in use, answered or not */
static int nparked;             /* entries whose call is not answered yet */
static uint64_t kept_checked_ms;
static uint64_t seen;           /* the last request of the table looked at */

void disconnect_init(struct worker *w)
{
    struct shm_segment *seg = w->ctx.seg;
    for (int i = 0; i < DISCONNECT_WAITS; i++)
        waits[i].idx = -1;
    /* Requests posted before this worker started are not for it. */
    seen = kick_last_seq(&seg->kicks);
    if (chat_publish_lock(seg) < 0)
        return;
    kick_free_origin(&seg->kicks, w->ctx.slot);
    lock_release(&seg->lock);
}

/* Close this worker's WebSocket connections of USER with 1008; how many. */
static uint32_t close_user(struct worker *w, const char *user, size_t len)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < w->conns.fresh; i++) {
        struct conn *c = &w->conns.conns[i];
        if (c->state != CONN_WS || c->ep == NULL || c->ep->of_user == NULL ||
            !c->ep->of_user(c, user, len))
            continue;
        ws_conn_close(w, c, WS_CLOSE_POLICY, "disconnected");
        n++;
    }
    if (n > 0)
        log_write(LOG_LVL_INFO, 0, "disconnect: %u connections of user \"%.*s\" closed", n,
                  (int)len, user);
    return n;
}

static void live_slots(const struct shm_segment *seg, int except, struct kick_slots *out)
{
    memset(out, 0, sizeof *out);
    for (int s = 0; s < SHM_MAX_SLOTS; s++)
        if (s != except && __atomic_load_n(&seg->slots[s].pid, __ATOMIC_ACQUIRE) != 0)
            kick_slots_add(out, s);
}

int disconnect_start(struct worker *w, struct conn *c, const char *user, size_t len, int keep,
                     uint64_t req_bytes)
{
    struct shm_segment *seg = w->ctx.seg;
    int at = -1;
    for (int i = 0; i < DISCONNECT_WAITS && at < 0; i++)
        if (waits[i].idx < 0)
            at = i;
    if (at < 0)
        return -503;
    uint32_t here = close_user(w, user, len);
    struct kick_slots who;
    live_slots(seg, w->ctx.slot, &who);
    if (chat_publish_lock(seg) < 0)
        return -500;
    uint64_t seq;
    int idx = kick_post(&seg->kicks, w->ctx.slot, &who, user, len, &seq);
    lock_release(&seg->lock);
    if (idx < 0)
        return idx == -EBUSY ? -503 : -500;
    notify_all_except(seg, w->ctx.eventfds, w->ctx.slot);
    waits[at] = (struct wait){ .c = c, .idx = idx, .seq = seq, .closed_here = here, .keep = keep,
                               .req_bytes = req_bytes,
                               .deadline_ms = w->now_ms + DISCONNECT_WAIT_MS };
    nwaits++;
    nparked++;
    c->api_wait = (uint8_t)(at + 1);
    return 0;
}

/* Act on the requests other workers posted since the last look. */
static void act_on_requests(struct worker *w)
{
    struct shm_segment *seg = w->ctx.seg;
    struct kick_req r;
    int idx;
    while ((idx = kick_next(&seg->kicks, w->ctx.slot, &seen, &r)) >= 0) {
        uint32_t n = close_user(w, r.user, r.user_len);
        if (chat_publish_lock(seg) < 0)
            return;
        kick_ack(&seg->kicks, idx, r.seq, w->ctx.slot, n);
        lock_release(&seg->lock);
        notify_slot(seg, w->ctx.eventfds, r.origin);
    }
}

int disconnect_poll(struct worker *w, struct disconnect_done *out, int max)
{
    struct shm_segment *seg = w->ctx.seg;
    if (kick_last_seq(&seg->kicks) != seen)
        act_on_requests(w);
    /* Answered requests kept for a stopped worker are looked at 4 times a second. */
    if (nwaits == 0 || (nparked == 0 && w->now_ms < kept_checked_ms + 250))
        return 0;
    kept_checked_ms = w->now_ms;
    struct kick_slots live;
    live_slots(seg, -1, &live);
    if (chat_publish_lock(seg) < 0)
        return 0;
    int n = 0;
    for (int i = 0; i < DISCONNECT_WAITS && n < max; i++) {
        struct wait *wt = &waits[i];
        if (wt->idx < 0)
            continue;
        uint32_t closed = 0;
        int settled = kick_settled(&seg->kicks, wt->idx, wt->seq, &live, &closed);
        if (wt->c != NULL) {
            struct conn *c = wt->c;
            int gone = c->api_wait != i + 1 || c->state != CONN_HTTP;
            if (!gone && settled == 0 && w->now_ms < wt->deadline_ms)
                continue;
            if (!gone) {
                c->api_wait = 0;
                out[n++] = (struct disconnect_done){ .c = c, .closed = wt->closed_here + closed,
                                                     .complete = settled == 1, .keep = wt->keep,
                                                     .req_bytes = wt->req_bytes };
            }
            wt->c = NULL;
            nparked--;
        }
        /*
         * Answered (or its caller left) while a worker has not acted yet (it
         * is stopped, or busy): the request stays posted for it a while.
         */
        if (settled != 0 || w->now_ms >= wt->deadline_ms + DISCONNECT_KEEP_MS) {
            kick_free(&seg->kicks, wt->idx, wt->seq);
            wt->idx = -1;
            nwaits--;
        }
    }
    lock_release(&seg->lock);
    return n;
}

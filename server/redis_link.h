/*
 * redis_link: one non-blocking connection to Redis, for the cluster bridge.
 *
 * Commands are pipelined: each is appended to the output at once with a
 * tag the owner chooses, and the replies, which Redis sends in order, come
 * back to the owner's callback with the same tag, each as the complete
 * token list of resp.h (values point into the input buffer, valid during
 * the call). The link says AUTH and SELECT first when the URL asks for
 * them. Every reply has a deadline: a reply later than that, an error on
 * the socket or a protocol error takes the link down with a reason; the
 * owner then starts again (connect() with its back-off) and re-sends what
 * it still needs. Nothing here blocks but the name lookup of a host that
 * is not a numeric address.
 */
#ifndef WSM_REDIS_LINK_H
#define WSM_REDIS_LINK_H

#include <stddef.h>
#include <stdint.h>

#include "redis_url.h"
#include "resp.h"

enum redis_link_state { REDIS_LINK_DOWN = 0, REDIS_LINK_CONNECTING, REDIS_LINK_UP };

#define REDIS_LINK_QUEUE 256        /* replies outstanding at most */
#define REDIS_LINK_REASON_MAX 160

struct redis_link;
/* A reply to the command queued with TAG and ARG: NTOK tokens (an error reply is one token). */
typedef void (*redis_reply_fn)(void *ctx, struct redis_link *l, int tag, uint64_t arg,
                               const struct resp_event *tok, size_t ntok);

struct redis_pending { int tag; uint64_t arg; uint64_t deadline_ms; };

struct redis_link {
    const char *name;           /* for the log: "publish", "stream" */
    int fd;                     /* -1 when down */
    int state;                  /* enum redis_link_state */
    uint64_t deadline_ms;       /* connecting: give up at this time */
    uint64_t timeout_ms;        /* connect and reply deadline */
    struct resp_limits lim;
    char *out;                  /* bytes to write, out[sent..len) still unsent */
    size_t out_len, out_sent, out_cap;
    char *in;                   /* bytes read, not yet a complete reply */
    size_t in_len, in_cap;
    struct resp_event *tok;     /* one reply's tokens */
    size_t tok_cap;
    struct redis_pending q[REDIS_LINK_QUEUE];
    unsigned q_head, q_len;
    redis_reply_fn on_reply;
    void *ctx;
    char reason[REDIS_LINK_REASON_MAX];     /* why it went down last */
};

/*
 * Buffers for commands up to OUT_CAP bytes queued at once, replies up to
 * IN_CAP bytes with at most TOK_CAP tokens. 0 or -ENOMEM.
 */
int redis_link_init(struct redis_link *l, const char *name, size_t out_cap, size_t in_cap,
                    size_t tok_cap, uint64_t timeout_ms, redis_reply_fn fn, void *ctx);
void redis_link_fini(struct redis_link *l);

/*
 * Start connecting to U (any earlier connection is closed first); AUTH and
 * SELECT are queued ahead of anything else. 0, or -errno with l->reason
 * set (the link stays down).
 */
int redis_link_connect(struct redis_link *l, const struct redis_url *u, uint64_t now_ms);

/* Close it (REASON, may be NULL, for the owner's log) and forget every pending reply. */
void redis_link_down(struct redis_link *l, const char *reason);

/*
 * Queue command argv[0..argc) (lens[i] bytes each) whose reply goes to the
 * callback with TAG and ARG, due within the link's timeout plus EXTRA_MS
 * (a blocking read's own wait). 0; -ENOSPC when the output or the reply
 * queue is full (nothing queued); -ENOTCONN when the link is down.
 */
int redis_link_command(struct redis_link *l, size_t argc, const char *const *argv,
                       const size_t *lens, int tag, uint64_t arg, uint64_t extra_ms,
                       uint64_t now_ms);

/* Replies still to come. */
unsigned redis_link_pending(const struct redis_link *l);

/* The poll events the link waits for (0 when down). */
short redis_link_events(const struct redis_link *l);

/*
 * After poll: go on connecting, write, read and hand every complete reply
 * to the callback; then check the deadlines. Returns the state after it
 * (REDIS_LINK_DOWN with l->reason when it failed).
 */
int redis_link_io(struct redis_link *l, short revents, uint64_t now_ms);

/* The earliest deadline the owner's poll must wake for, UINT64_MAX for none. */
uint64_t redis_link_next_deadline(const struct redis_link *l);

#endif

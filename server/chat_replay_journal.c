/* chat_replay_journal: see chat_replay_journal.h. */
#include "chat_replay_journal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "journal_dir.h"
#include "journal_gate.h"
#include "worker.h"

struct chat_replay_journal {
    struct journal_reader *rd;
    uint64_t upto;              /* the newest id to send */
    uint64_t after;             /* the newest id sent (or skipped past) */
    uint64_t waiting_ms;        /* since when the journal has not reached upto, 0: it has */
    uint8_t  room_len;
    char     room[32];
};

static int open_now;            /* this worker's journal replays under way */

int chat_replay_journal_open(const char *dir, const char *room, size_t room_len,
                             uint64_t since, uint64_t upto, struct chat_replay_journal **out,
                             uint64_t *missing_hi)
{
    *out = NULL;
    if (room_len == 0 || room_len > sizeof ((struct chat_replay_journal *)0)->room)
        return -EINVAL;
    if (open_now >= JOURNAL_REPLAYS_MAX)
        return -EBUSY;
    struct chat_replay_journal *jr = calloc(1, sizeof *jr);
    if (jr == NULL)
        return -ENOMEM;
    int rc = journal_reader_open(dir, since, JOURNAL_FRAME_MAX, &jr->rd);
    if (rc < 0) {
        free(jr);
        return rc;
    }
    /* Segments are deleted oldest first: ids below the oldest one's are gone. */
    uint64_t first = journal_reader_first_id(jr->rd);
    if (first == 0 || first > upto) {
        journal_reader_close(jr->rd);
        free(jr);
        return -ENOENT;
    }
    *missing_hi = first > since + 1 ? first - 1 : since;
    jr->upto = upto;
    jr->after = *missing_hi;
    jr->room_len = (uint8_t)room_len;
    memcpy(jr->room, room, room_len);
    open_now++;
    *out = jr;
    return 0;
}

static int step(struct chat_replay_journal *jr, struct worker *w, struct conn *c,
                size_t budget, uint64_t *lost_lo, uint64_t *lost_hi)
{
    size_t scanned = 0;
    while (conn_out_pending(c) < budget) {
        if (scanned >= JOURNAL_SCAN_STEP)
            return 0;       /* the rest at the next pass */
        struct journal_record rec;
        int rc = journal_reader_next(jr->rd, &rec);
        if (rc == -EBADMSG)
            continue;       /* a damaged part of an older segment: the reader goes on past it */
        if (rc < 0) {
            *lost_lo = jr->after + 1;
            *lost_hi = jr->upto;
            return -EIO;
        }
        if (rc == 0 && jr->after < jr->upto) {
            /*
             * Not written yet: the journal process follows the ring, and
             * a record past upto (a message, or the mark it writes every
             * second) comes soon. Past JOURNAL_WAIT_MS, what it lacks is a
             * gap.
             */
            if (jr->waiting_ms == 0)
                jr->waiting_ms = w->now_ms;
            if (w->now_ms - jr->waiting_ms < JOURNAL_WAIT_MS)
                return 0;
            *lost_lo = jr->after + 1;
            *lost_hi = jr->upto;
            return -EIO;
        }
        if (rc == 0 || rec.id > jr->upto)
            return 1;       /* the ring has the rest */
        jr->waiting_ms = 0;
        scanned += journal_record_size(&rec);
        if (rec.id <= jr->after)
            continue;
        jr->after = rec.id;
        if (rec.kind != JOURNAL_MESSAGE || rec.room_len != jr->room_len ||
            memcmp(rec.room, jr->room, jr->room_len) != 0)
            continue;
        if (conn_out_append(&w->conns, c, rec.frame, rec.frame_len) < 0)
            return -ENOMEM;
    }
    return 0;
}

int chat_replay_journal_step(struct chat_replay_journal *jr, struct worker *w, struct conn *c,
                             size_t budget, uint64_t *after, uint64_t *lost_lo, uint64_t *lost_hi)
{
    int rc = step(jr, w, c, budget, lost_lo, lost_hi);
    /* Every id up to jr->after was sent, or is another room's. */
    if (jr->after > *after)
        *after = rc == -EIO ? jr->upto : jr->after;
    return rc;
}

void chat_replay_journal_close(struct chat_replay_journal *jr)
{
    if (jr == NULL)
        return;
    journal_reader_close(jr->rd);
    free(jr);
    open_now--;
}

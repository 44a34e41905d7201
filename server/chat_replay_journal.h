/*
 * chat_replay_journal: the part of a joiner's history that the ring no
 * longer holds, read back from the history journal's segments (journal.h).
 *
 * A member that resumes with ?since= older than the ring gets, in id
 * order, the room's journaled messages after since up to the newest id the
 * ring has lost, then the ring's part as before (chat_replay.c), so a
 * client away for an hour in a busy room misses nothing that is kept. A
 * gap event is sent only for ids the journal no longer keeps either
 * (history_keep).
 *
 * Reading is bounded like any replay: frames go to the connection's output
 * while it is under the replay budget, and each step reads at most
 * JOURNAL_SCAN_STEP bytes of records (other rooms' included), so a long
 * scan is spread over loop passes instead of stalling the worker. At most
 * JOURNAL_REPLAYS_MAX members of a worker read the journal at once; one
 * more gets the gap event as without a journal and resumes from the ring.
 */
#ifndef WSM_CHAT_REPLAY_JOURNAL_H
#define WSM_CHAT_REPLAY_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#include "result.h"

#define JOURNAL_REPLAYS_MAX 8
#define JOURNAL_SCAN_STEP   (1u << 20)
#define JOURNAL_WAIT_MS     3000    /* for the journal to catch up with the ring */

struct conn;
struct worker;
struct chat_replay_journal;

/*
 * Begin reading ROOM's messages with ids in (SINCE, UPTO] from the journal
 * in DIR. 0 with *OUT, and *MISSING_HI set to the newest id of that range
 * the journal does not keep (SINCE when it keeps them all): the caller
 * sends a gap for (SINCE, *MISSING_HI] first. -EBUSY when
 * JOURNAL_REPLAYS_MAX are under way, -ENOENT when the journal keeps
 * nothing of the range, else -errno: the caller sends the gap as before.
 */
int chat_replay_journal_open(const char *dir, const char *room, size_t room_len,
                             uint64_t since, uint64_t upto, struct chat_replay_journal **out,
                             uint64_t *missing_hi);

/*
 * Copy the next messages into C's output until it holds BUDGET bytes;
 * *AFTER moves to the newest id this member no longer needs (sent, another
 * room's, or covered by the gap the caller sends for -EIO): where a
 * hand-over resumes.
 * 1 when the range is done (or the journal ends), 0 to be called again,
 * -ENOMEM, or -EIO (the journal could not be read, or has not caught up
 * within JOURNAL_WAIT_MS: the ids from *LOST_LO to *LOST_HI were not sent,
 * the caller sends a gap for them).
 */
int chat_replay_journal_step(struct chat_replay_journal *jr, struct worker *w, struct conn *c,
                             size_t budget, uint64_t *after, uint64_t *lost_lo,
                             uint64_t *lost_hi);

void chat_replay_journal_close(struct chat_replay_journal *jr);

#endif

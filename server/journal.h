/*
 * journal: the history journal (history_file), so a full restart loses no
 * room's history.
 *
 * A journal process, forked by the master next to the workers, follows the
 * message ring as a reader and appends every chat message to segment files
 * (journal_dir.h), so no worker ever waits on the disk. It syncs per
 * history_fsync: `always` after every batch, publishing the durable id in
 * shm, up to which workers deliver (nothing reaches anyone before it is on
 * disk); `everysec` once a second; `no` never (the kernel decides). Every
 * second it also records the newest id the ring has given out (presence
 * events are not journaled but take ids), so ids after a restart continue
 * above every id a client saw. On SIGTERM/SIGQUIT (sent by the master once
 * the workers are gone) it writes and syncs everything, then exits.
 *
 * At start the master reads the newest segments back into the ring with
 * their ids and times (journal_restore), before any worker runs: joins and
 * ?since= resumes are served as before the restart.
 *
 * Write failures (disk full, EIO) are logged at alert once per episode and
 * retried every second; meanwhile the ring is not read further (what it
 * holds waits), and under `always` new messages are refused as unavailable.
 */
#ifndef WSM_JOURNAL_H
#define WSM_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#include "result.h"

struct config;
struct shm_segment;

/* The journal process's name (/proc/PID/comm), beside the workers' "wsmaster". */
#define JOURNAL_COMM "wsmaster-jrnl"


/*
 * Master, before any worker: cut a torn tail (logged at warn), then put the
 * journal's newest messages back into SEG's ring, numbering on from
 * CLOCK_ID or above every id the journal saw, whichever is higher. 0, or
 * -errno with a message in ERR (an unreadable or incompatible journal).
 */
int journal_restore(const struct config *cfg, struct shm_segment *seg, uint64_t clock_id,
                    char *err, size_t errlen);

/* `wsmaster -t`: 0 when the journal's folder can be created and written, else -errno + ERR
 * (it creates nothing). */
int journal_check(const struct config *cfg, char *err, size_t errlen);

/* The journal process (forked by the master, signals blocked; EVENTFDS: the
 * workers', WAKEFD: its own): never returns. */
void journal_run(const struct config *cfg, struct shm_segment *seg, const int *eventfds,
                 int wakefd) __attribute__((noreturn));


#endif

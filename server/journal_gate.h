/*
 * journal_gate: what workers ask of the history journal (journal.h), which
 * runs in its own process and shares its state through the shm segment
 * (struct shm_journal): wake it after a commit, how far delivery may go
 * under history_fsync always, and whether new messages must be refused.
 */
#ifndef WSM_JOURNAL_GATE_H
#define WSM_JOURNAL_GATE_H

#include <stdint.h>

struct shm_segment;

/*
 * The largest frame a journal record may carry, fixed so that a journal
 * written under one ring_size reads under another: a chat event is at
 * most max_text (1 MiB) escaped six times over, plus its JSON.
 */
#define JOURNAL_FRAME_MAX (16u * 1024 * 1024)

/* A publisher committed an event: wake the journal process (EFD: its eventfd, -1: none). */
void journal_notify(struct shm_segment *seg, int efd);

/* Under history_fsync always: the newest id workers may deliver, else UINT64_MAX. */
uint64_t journal_deliverable(const struct shm_segment *seg);

/* 1 when new messages must be refused (always, and the journal cannot write). */
int journal_refuses(const struct shm_segment *seg);

#endif

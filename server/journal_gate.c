/* journal_gate: see journal_gate.h. */
#include "journal_gate.h"

#include <unistd.h>

#include "shm.h"

void journal_notify(struct shm_segment *seg, int efd)
{
    if (efd < 0 || __atomic_exchange_n(&seg->journal.wake_pending, 1u, __ATOMIC_SEQ_CST) != 0)
        return;
    uint64_t one = 1;
    ssize_t rc = write(efd, &one, sizeof one);
    (void)rc;       /* EAGAIN: the counter is saturated, a wake is pending anyway */
}

uint64_t journal_deliverable(const struct shm_segment *seg)
{
    if (!seg->journal.always)
        return UINT64_MAX;
    return __atomic_load_n(&seg->journal.durable_id, __ATOMIC_ACQUIRE);
}

int journal_refuses(const struct shm_segment *seg)
{
    return seg->journal.always && __atomic_load_n(&seg->journal.failing, __ATOMIC_RELAXED);
}

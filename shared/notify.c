/* notify: see notify.h. */
#include "notify.h"

#include <stdint.h>
#include <unistd.h>

void notify_slot(struct shm_segment *seg, const int *eventfds, int s)
{
    if (s < 0 || s >= SHM_MAX_SLOTS || __atomic_load_n(&seg->slots[s].pid, __ATOMIC_RELAXED) == 0)
        return;
    if (__atomic_exchange_n(&seg->slots[s].wake_pending, 1u, __ATOMIC_SEQ_CST) == 0) {
        uint64_t one = 1;
        /* EAGAIN only when the counter is saturated: a wake is pending anyway. */
        ssize_t rc = write(eventfds[s], &one, sizeof one);
        (void)rc;
    }
}

void notify_all_except(struct shm_segment *seg, const int *eventfds, int self)
{
    for (int s = 0; s < SHM_MAX_SLOTS; s++)
        if (s != self)
            notify_slot(seg, eventfds, s);
}

void notify_ack(struct shm_segment *seg, const int *eventfds, int self)
{
    uint64_t v;
    ssize_t rc = read(eventfds[self], &v, sizeof v);
    (void)rc;
    __atomic_store_n(&seg->slots[self].wake_pending, 0u, __ATOMIC_SEQ_CST);
}

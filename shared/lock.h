/*
 * lock: the cross-process publish lock living in shared memory.
 *
 * A robust, process-shared pthread mutex: when a holder dies (SIGKILL at any
 * instant), the next locker gets the lock at once with LOCK_RECOVERED so it
 * can repair what the dead holder left half-done. Nothing here logs.
 */
#ifndef WSM_LOCK_H
#define WSM_LOCK_H

#include <pthread.h>

#include "result.h"

struct shm_lock {
    pthread_mutex_t mutex;
};

enum { LOCK_OK = 0, LOCK_RECOVERED = 1 };

/* Initialise in shared memory (once, by the creator). 0 or -errno. */
int  lock_init(struct shm_lock *l);
void lock_fini(struct shm_lock *l);
/*
 * Take the lock. LOCK_OK, or LOCK_RECOVERED when the previous holder died
 * holding it (the lock is now ours and marked consistent again);
 * -errno on an unrecoverable error (-ENOTRECOVERABLE...).
 */
int  lock_acquire(struct shm_lock *l);
void lock_release(struct shm_lock *l);

#endif

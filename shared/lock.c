/*
 * lock: the publish lock in the shm segment, a robust process-shared pthread
 * mutex. The kernel walks a dying thread's robust list and marks any mutex it
 * still held as owner-dead, so a worker killed inside the critical section
 * never wedges the room: the next locker gets EOWNERDEAD, marks the mutex
 * consistent and reports LOCK_RECOVERED. The data the lock protects (the
 * ring) is designed so that any half-done update is harmless; see ring.h.
 */
#include "lock.h"

#include <errno.h>

int lock_init(struct shm_lock *l)
{
    pthread_mutexattr_t attr;
    int rc = pthread_mutexattr_init(&attr);
    if (rc != 0)
        return -rc;
    rc = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    if (rc == 0)
        rc = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    if (rc == 0)
        rc = pthread_mutex_init(&l->mutex, &attr);
    pthread_mutexattr_destroy(&attr);
    return -rc;
}

void lock_fini(struct shm_lock *l)
{
    pthread_mutex_destroy(&l->mutex);
}

int lock_acquire(struct shm_lock *l)
{
    int rc = pthread_mutex_lock(&l->mutex);
    if (rc == 0)
        return LOCK_OK;
    if (rc == EOWNERDEAD) {
        /*
         * We own the mutex now, but it stays unusable for everyone unless
         * we mark it consistent before unlocking (POSIX: otherwise it
         * becomes ENOTRECOVERABLE).
         */
        rc = pthread_mutex_consistent(&l->mutex);
        if (rc == 0)
            return LOCK_RECOVERED;
        pthread_mutex_unlock(&l->mutex);
    }
    return -rc;
}

void lock_release(struct shm_lock *l)
{
    pthread_mutex_unlock(&l->mutex);
}

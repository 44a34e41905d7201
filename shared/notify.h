/*
 * notify: cross-process wake-ups for the chat ring.
 *
 * Each worker slot has an eventfd (created by the master before any fork,
 * so every worker holds every slot's fd) and a wake_pending flag in shm.
 * A publisher writes the eventfd only on the flag's 0→1 transition, so a
 * burst of messages costs one write and one wake-up per worker, not one per
 * message. Ordering: the publisher commits the entry before the exchange and
 * the woken worker clears the flag before reading the ring head (both
 * sequentially consistent), so no message can be missed.
 */
#ifndef WSM_NOTIFY_H
#define WSM_NOTIFY_H

#include "shm.h"

/* Wake every live worker slot except SELF. */
void notify_all_except(struct shm_segment *seg, const int *eventfds, int self);

/* Wake the worker in SLOT (if live). */
void notify_slot(struct shm_segment *seg, const int *eventfds, int slot);

/* In the woken worker: consume the eventfd and re-arm the flag. */
void notify_ack(struct shm_segment *seg, const int *eventfds, int self);

#endif

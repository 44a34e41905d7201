/*
 * cluster_gate: what workers ask of the cluster bridge (cluster.h), which
 * runs in its own process and shares its state through the shm segment
 * (struct shm_cluster): whether /chat may be served yet, whether a publish
 * can be taken, putting it into the outbox, and waking the bridge.
 *
 * An outbox entry is a ring entry (ring.h) of the event's kind and room
 * whose bytes are the type's length (one byte), the type, then the body
 * that follows an event's id and ts (chat_proto_*_body): the bridge gives
 * it the cluster's id and time and every node frames it alike.
 */
#ifndef WSM_CLUSTER_GATE_H
#define WSM_CLUSTER_GATE_H

#include <stddef.h>
#include <stdint.h>

struct shm_segment;
struct ring_entry;

/* 1 in cluster mode: publishes go through the outbox, not into the ring. */
int cluster_gate_on(const struct shm_segment *seg);

/* 1 when /chat may be served: not cluster mode, or the node has loaded the stream once. */
int cluster_gate_ready(const struct shm_segment *seg);

/*
 * The caller holds seg->lock. Queue event TYPE (BODY after its id and ts)
 * of KIND for ROOM. 0 when queued; -EAGAIN while the link to Redis is down
 * or the outbox holds as much as it can (refused, nothing queued);
 * -EMSGSIZE when it is larger than an outbox entry may be.
 */
int cluster_gate_queue(struct shm_segment *seg, int kind, const char *room, size_t room_len,
                       const char *type, const char *body, size_t body_len);

/*
 * 1 when the bridge has read everything the stream held by a read sent at
 * or after FROM_MS (worker clock): no id the stream had then is still to
 * come.
 */
int cluster_gate_read_all_since(const struct shm_segment *seg, uint64_t from_ms);

/* After a queue: wake the bridge (EFD: its eventfd). */
void cluster_gate_notify(struct shm_segment *seg, int efd);

/*
 * The bridge: split outbox entry bytes BUF[0..len) into type and body.
 * 0, or -EINVAL for bytes no worker wrote.
 */
int cluster_gate_split(const uint8_t *buf, size_t len, const char **type, size_t *type_len,
                       const char **body, size_t *body_len);

#endif

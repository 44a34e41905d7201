/*
 * cluster: rooms shared by every node configured with one Redis and one
 * cluster_prefix (README "Scaling out").
 *
 * One bridge process per node (forked by the master beside the workers,
 * like the history journal, which cluster mode does not run) owns the
 * node's two connections to Redis; no worker ever talks to Redis. Workers
 * queue every publish in the shm outbox (cluster_gate.h). The bridge sends
 * the outbox in batches, one Lua script call each, that number the events
 * from one cluster-wide counter and append them to one stream
 * (<prefix>:log, capped by MAXLEN ~ to a ring's worth), skipping what an
 * earlier try of the same batch already appended (so a batch re-sent after
 * a lost reply lands once). Its other connection reads the stream in order
 * (XREAD BLOCK) into the node's ring with the cluster's ids and times, and
 * wakes the workers, which deliver as they deliver local events. So every
 * node delivers every room in the stream's one order, a sender's own copy
 * included, and a fresh node loads the stream's tail before it serves
 * /chat. Ids skipped by the stream (trimmed past a node that fell behind,
 * or lost by a Redis restarted without its data) become a gap entry that
 * every member sees as a gap event.
 *
 * Presence: every presence_interval the bridge writes its node's counts
 * per room to Redis and reads the sum of the other live nodes' counts
 * into the room table (room_table_set_remote), so counts are cluster-wide.
 */
#ifndef WSM_CLUSTER_H
#define WSM_CLUSTER_H

#include <stdint.h>

#include "result.h"

struct config;
struct shm_segment;

/* The bridge's name (/proc/PID/comm), beside the workers' "wsmaster". */
#define CLUSTER_COMM "wsmaster-redis"

/* Bytes of outbox a node with CFG needs: several of its largest events. */
uint64_t cluster_outbox_bytes(const struct config *cfg);

/* Master, before any fork: mark SEG as a cluster node's. */
void cluster_prepare(const struct config *cfg, struct shm_segment *seg);

/* The bridge process (forked by the master, signals blocked; EVENTFDS: the
 * workers', WAKEFD: its own): never returns. */
void cluster_run(const struct config *cfg, struct shm_segment *seg, const int *eventfds,
                 int wakefd) __attribute__((noreturn));

#endif

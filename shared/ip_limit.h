/*
 * ip_limit: connections per client address, counted across every worker of
 * the server, for max_connections_per_ip.
 *
 * An open-addressing table (linear probing, deletion by backward shift, so
 * no tombstones pile up) of address -> open connections, living in shared
 * memory. Pure: the caller holds the segment's ip lock around every call.
 * Addresses are 16 bytes (IPv4 as ::ffff:a.b.c.d). The probe hash is keyed
 * with a random seed chosen at start, so a client choosing many addresses
 * (an IPv6 /64 holds 2^64) cannot aim them all at one probe chain.
 *
 * Each address also has a byte budget for what it publishes into the
 * shared ring (ip_publish_rate), so one client, however many connections
 * and rooms it uses, cannot push the other rooms' history out faster than
 * that rate allows.
 *
 * A worker that dies cannot give back what it took. The master then resets
 * the table (a new epoch) and every live worker counts its connections in
 * again; until each has, the limit is looser, never stricter.
 */
#ifndef WSM_IP_LIMIT_H
#define WSM_IP_LIMIT_H

#include <stdint.h>

#include "result.h"

#define IP_LIMIT_SLOTS 65536u       /* a power of two */
#define IP_LIMIT_FILL  (IP_LIMIT_SLOTS / 4 * 3)

struct ip_limit_slot {
    uint8_t  addr[16];
    uint32_t count;                 /* 0 = free slot */
    uint32_t pad;
    uint64_t pub_tokens;            /* publish budget left, bytes */
    uint64_t pub_ms;                /* monotonic ms of its last refill; 0 = owes nothing */
};

#define IP_PUBLISH_BURST_S 4        /* the publish budget holds this many seconds' worth */

struct ip_limit {
    uint64_t seed;
    uint32_t epoch;                 /* bumped by every reset */
    uint32_t used;                  /* slots in use (counting, or owing budget) */
    struct ip_limit_slot slot[IP_LIMIT_SLOTS];
};

/* Empty table keyed with SEED (epoch 0). */
void ip_limit_init(struct ip_limit *t, uint64_t seed);
/* Empty it and start a new epoch (the seed stays). */
void ip_limit_reset(struct ip_limit *t);

/*
 * Count one more connection from ADDR when it has fewer than MAX (0: no
 * limit). 1 counted; 0 refused, ADDR is at MAX; -ENOSPC the table is too
 * full to take a new address (not counted: the caller lets it in uncounted).
 */
int ip_limit_take(struct ip_limit *t, const uint8_t addr[16], uint32_t max);
/* One connection from ADDR (counted by ip_limit_take) ended. */
void ip_limit_give(struct ip_limit *t, const uint8_t addr[16]);
/*
 * Charge BYTES published by ADDR at NOW_MS (monotonic ms, any process)
 * against RATE bytes per second, IP_PUBLISH_BURST_S seconds deep. 1 when
 * they fit (and were taken), 0 when over budget. An address not in the
 * table (uncounted) is not limited.
 */
int ip_limit_charge(struct ip_limit *t, const uint8_t addr[16], uint64_t bytes, uint64_t rate,
                    uint64_t now_ms);

/*
 * Free the slots of addresses with no connection left whose publish budget
 * has refilled by NOW_MS (all of them when RATE is 0). Their count.
 */
uint32_t ip_limit_sweep(struct ip_limit *t, uint64_t rate, uint64_t now_ms);

/* Connections counted for ADDR. */
uint32_t ip_limit_count(const struct ip_limit *t, const uint8_t addr[16]);

#endif

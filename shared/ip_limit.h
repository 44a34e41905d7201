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
};

struct ip_limit {
    uint64_t seed;
    uint32_t epoch;                 /* bumped by every reset */
    uint32_t used;                  /* slots with count > 0 */
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
/* Connections counted for ADDR. */
uint32_t ip_limit_count(const struct ip_limit *t, const uint8_t addr[16]);

#endif

/*
 * chat_limits: the two fair-use checks a chat input passes before it is
 * published, and their answers to the client: rate_limit per member
 * (rate.c's bucket) and ip_publish_rate per client address (the shm
 * ip_limit table, through worker_ip_charge()).
 */
#ifndef WSM_CHAT_LIMITS_H
#define WSM_CHAT_LIMITS_H

#include <stddef.h>

struct conn;
struct rate_bucket;
struct worker;

/*
 * One more input from C against its bucket B: 1 when it may go on; 0 when
 * it was refused (rate_limited sent, or C closed with 1008 for refusing to
 * slow down).
 */
int chat_limit_rate(struct worker *w, struct conn *c, struct rate_bucket *b);

/*
 * BYTES more into the ring from C's address: 1 when they fit its budget;
 * 0 with rate_limited sent (the member stays; its address, over all its
 * connections and rooms, is publishing too fast).
 */
int chat_limit_address(struct worker *w, struct conn *c, size_t bytes);

#endif

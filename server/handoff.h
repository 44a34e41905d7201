/*
 * handoff: on reload, a retiring worker passes its idle WebSocket
 * connections to the workers of the new generation instead of closing them:
 * the socket itself goes over the slot's SOCK_SEQPACKET pair (SCM_RIGHTS)
 * with one small record: the endpoint's index in endpoints.c and what the
 * endpoint's handoff_take hook wrote (for chat the member's identity, room
 * and the id up to which it has been served). The client sees nothing.
 * Only a connection with nothing half-sent or half-received, whose endpoint
 * agrees, qualifies; the caller closes the others with 1012 and they
 * resume by id.
 */
#ifndef WSM_HANDOFF_H
#define WSM_HANDOFF_H

struct worker;
struct conn;

/*
 * Retiring worker: pass C to a worker of the newest generation. 0 when C is
 * gone from here (handed over), -EAGAIN when it stays (not idle, no new
 * worker, its endpoint said no, or the channel is full): the caller closes
 * it with 1012.
 */
int  handoff_send(struct worker *w, struct conn *c);

/* Adopting worker: take every connection waiting on this slot's channel. */
void handoff_receive(struct worker *w);

#endif

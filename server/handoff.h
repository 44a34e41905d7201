/*
 * handoff: on reload, a retiring worker passes every WebSocket connection
 * it holds in the open state to a worker of the new generation, busy ones
 * included, so that no client sees a break and no byte is lost, doubled or
 * reordered.
 *
 * What travels (handoff_record.h has the layout): one SOCK_SEQPACKET
 * datagram on the target slot's channel holding a fixed, versioned record
 * (the frame decoder's state: a data frame under way with its bytes left,
 * FIN, mask key and key offset; the open message's opcode and announced
 * length, with its UTF-8 validator state; the message's age; the client
 * address; the endpoint's own bytes, for chat the member's identity, room
 * and resume point), and with SCM_RIGHTS the socket plus, when the
 * connection has bytes in flight, a sealed memfd: the input read but not
 * parsed, the data of the open message reassembled so far, and the output
 * not yet written (the rest of a frame cut by a partial write, then whole
 * frames). Everything is bounded as on a live connection (max_message,
 * max_send_queue plus the one reply or frame that may cross it, the
 * receive buffer for the input); the adopter checks every field and the
 * body against its own limits before it takes the connection.
 *
 * Why one datagram and a memfd, not a sequence of datagrams: a datagram
 * with its descriptors is delivered whole or not at all, so there is no
 * half-received sequence to resynchronise after a receiver died and none
 * to untangle when several retiring workers send to one channel at once;
 * descriptors in flight are the kernel's, released with whoever holds
 * them, so nothing leaks whichever side dies.
 *
 * Who owns the connection: the sender, until the adopter answers. It keeps
 * its copy of the socket and of every buffer, out of its epoll set and
 * silent (CONN_HANDOFF). The adopter restores the state, answers ACK, and
 * only then runs the endpoint and touches the socket; the sender then
 * drops its copy. A NACK (the adopter is full, its limits are lower, the
 * record is invalid) gives the connection back to the sender, which
 * writes out what was queued and closes with 1012 (service restart): the
 * client resumes by id. That, a hand-over that cannot be sent (no new
 * worker, channel full or broken) and one never answered by the sender's
 * shutdown deadline (the adopter died holding it) are the failures,
 * counted server-wide in handoff_failures; handoffs counts the adopted.
 * An adopter that is itself retiring passes the connection on.
 */
#ifndef WSM_HANDOFF_H
#define WSM_HANDOFF_H

struct worker;
struct conn;

/*
 * Retiring worker: pass C (CONN_WS) to a worker of the newest generation.
 * 0 when C is in flight (CONN_HANDOFF: the answer decides); -EBUSY when
 * every new worker's channel is full for now: C stays open and served
 * here, the caller counts it in w->handoff_waiting for handoff_retry();
 * -EAGAIN when it stays here and the caller closes it with 1012 (counted
 * as a failure unless reload_handoff is off); -EPIPE when C is no longer
 * open (its endpoint closed it, e.g. a chat member over max_send_queue
 * gets 1013).
 */
int  handoff_send(struct worker *w, struct conn *c);

/*
 * Retiring worker, each loop pass while w->handoff_waiting: try again the
 * connections put off by -EBUSY (every CONN_WS one left); sets the count.
 */
void handoff_retry(struct worker *w);

/*
 * Every message waiting on this slot's channel: connections handed to us
 * (adopted, or refused with a NACK) and answers about ours.
 */
void handoff_receive(struct worker *w);

/*
 * The shutdown deadline came for C, in flight without an answer
 * (CONN_HANDOFF), or still waiting for room in a channel (CONN_WS):
 * best-effort 1012 from here and, if it was in flight, the socket cut for
 * whoever might still hold a copy. Counted as a failure. The caller
 * closes C.
 */
void handoff_expire(struct worker *w, struct conn *c);

#endif

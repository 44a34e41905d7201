/*
 * ring: a byte ring of variable-length entries in shared memory, one writer
 * at a time (under the shm lock), any number of lock-free readers.
 *
 * Positions are 64-bit byte offsets that only grow (never wrap); the data
 * index is pos % capacity. Entries are 8-byte aligned and never straddle the
 * end of the data area (a pad entry, or a gap smaller than an entry header,
 * fills the rest). Invariants: tail <= head, head - tail <= capacity; every
 * entry in [tail, head) is complete.
 *
 * Publishing: ring_reserve() first moves `tail` past every entry the new one
 * will overwrite (release store, fenced before the data writes), then returns
 * where to write; ring_commit() writes the entry header and moves `head`
 * (release). A writer killed between the two leaves head untouched, so the
 * half-written entry is never visible; the next writer simply reserves again.
 *
 * Reading: ring_read() copies one entry out and then re-reads `tail`; if the
 * tail passed the entry during the copy, the copy may be torn and
 * RING_LAPPED is returned instead (seqlock-style validation).
 *
 * This header is part of the cross-process ABI: fixed-width fields only.
 */
#ifndef WSM_RING_H
#define WSM_RING_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define RING_ROOM_MAX 32

#define RING_NO_POS UINT64_MAX

/* GAP (cluster mode): ids up to this entry's that this node will never have. */
enum ring_kind { RING_KIND_PAD = 0, RING_KIND_MESSAGE = 1, RING_KIND_PRESENCE = 2,
                 RING_KIND_GAP = 3 };

/*
 * Entry header as stored; the frame bytes follow it. 80 bytes.
 *
 * Message entries of one room are chained both ways, so a join finds its
 * room's history in O(history) whatever the other rooms publish: prev_pos /
 * prev_id name the room's previous message (set by the publisher at
 * commit), next_pos the next one (written into this header once, by the
 * publisher of that next message, while this entry is still in the ring).
 * A position may since have been overwritten: a reader checks that the
 * entry found there is still the one named (its id), never trusts it.
 */
struct ring_entry {
    uint64_t id;                    /* global sequence number, from 1 */
    int64_t  ts_ms;                 /* unix time in ms, set by the publisher */
    uint64_t prev_pos;              /* previous message of the room, RING_NO_POS */
    uint64_t prev_id;               /* its id, 0 with RING_NO_POS */
    uint32_t len;                   /* frame bytes that follow */
    uint8_t  kind;                  /* enum ring_kind */
    uint8_t  room_len;
    uint8_t  pad[2];
    char     room[RING_ROOM_MAX];   /* not NUL-terminated when room_len == 32 */
    uint64_t next_pos;              /* next message of the room, RING_NO_POS until
                                       there is one (atomic: written after commit) */
};
_Static_assert(sizeof(struct ring_entry) == 80, "ring_entry is ABI");

/* Ring control block, embedded in the shm segment. */
struct ring {
    uint64_t capacity;              /* bytes in data[], multiple of 8 */
    uint64_t next_id;               /* id the next commit gets (writer only) */
    uint64_t first_id;              /* id of the first entry this ring ever held (set once) */
    _Alignas(64) uint64_t head;     /* end of the committed entries (atomic) */
    _Alignas(64) uint64_t tail;     /* start of the oldest complete entry (atomic) */
    _Alignas(64) uint64_t last_id;  /* id of the newest committed entry (atomic), 0 if none */
    _Alignas(64) unsigned char data[];
};

enum { RING_EMPTY = -1, RING_LAPPED = -2, RING_TOO_SMALL = -3 };

/* Initialise a ring over mem[0..bytes) (bytes >= sizeof(struct ring) + 4096). */
struct ring *ring_init(void *mem, size_t bytes);

/* The largest frame one entry may carry (capacity / 4, so history survives). */
uint64_t ring_max_entry(const struct ring *r);

/*
 * Writer, holding the shm lock. Reserve room for a LEN-byte frame: tail moves
 * past whatever it overwrites. Returns where to write the frame, or NULL if
 * len > ring_max_entry(); *AT (may be NULL) receives the position the entry
 * will have. Nothing is visible to readers until ring_commit().
 */
void *ring_reserve(struct ring *r, uint32_t len, uint64_t *at);

/*
 * Before any publish (the creator only): number entries from FIRST instead
 * of 1. Readers see it through ring_first_id().
 */
void ring_start_ids(struct ring *r, uint64_t first);
/*
 * Writer: the next commit gets id NEXT (>= ring_next_id). Two rings that
 * share one sequence of ids (the history ring and the presence ring) hand
 * it to each other this way, under the same lock.
 */
void ring_continue_ids(struct ring *r, uint64_t next);
uint64_t ring_first_id(const struct ring *r);

/* Writer: ring_next_id() is the id the next commit will carry. */
uint64_t ring_next_id(const struct ring *r);

/*
 * Writer: publish the reserved entry with this header (id is assigned here
 * from next_id and returned; ts_ms/kind/room/len/prev_pos/prev_id taken
 * from META; next_pos starts as RING_NO_POS).
 */
uint64_t ring_commit(struct ring *r, const struct ring_entry *meta);

/*
 * Writer, between reserving the entry at NEXT and committing it: point the
 * committed entry at PREV (the same room's previous message, id PREV_ID)
 * at NEXT. Before the commit, so a reader that sees the new entry also
 * sees the link. Nothing happens when PREV has been overwritten. A reader
 * that follows a link checks what it finds (a writer may die before its
 * commit, and the next one reuses the position for another entry).
 */
void ring_link(struct ring *r, uint64_t prev, uint64_t prev_id, uint64_t next);

/* Readers: acquire loads of the positions and the newest id. */
uint64_t ring_head(const struct ring *r);
uint64_t ring_tail(const struct ring *r);
uint64_t ring_last_id(const struct ring *r);

/*
 * Copy the entry at *pos (its header into *meta, its frame into dst of cap
 * bytes) and advance *pos past it (pad entries are skipped silently).
 * Returns the frame length (>= 0), RING_EMPTY when *pos == head,
 * RING_LAPPED when the entry at *pos was overwritten (before or during the
 * copy; *pos unchanged: resume from ring_tail()), RING_TOO_SMALL when cap
 * cannot hold the frame (*pos unchanged).
 */
ssize_t ring_read(const struct ring *r, uint64_t *pos, struct ring_entry *meta,
                  void *dst, size_t cap);

/*
 * Like ring_read() but returns only the header (no frame copy) and advances
 * *pos; used to scan for ids and rooms. Same results, never RING_TOO_SMALL.
 */
ssize_t ring_peek(const struct ring *r, uint64_t *pos, struct ring_entry *meta);

#endif

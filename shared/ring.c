/*
 * ring: the shm message ring (see ring.h for the contract and invariants).
 *
 * An entry is an 80-byte header plus its frame rounded up to 8 bytes. It
 * never straddles the end of data[]: when the room left before the end is
 * too short, the writer skips to the next lap. A skipped remainder of at
 * least one header is covered by a PAD entry (len = remainder - header);
 * a remainder shorter than a header holds no entry at all, and both sides
 * skip it by arithmetic alone. Writers hold the shm lock; readers take no
 * lock and validate every copy by re-reading `tail` afterwards.
 */
#include "ring.h"

#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <string.h>

#define HDR ((uint64_t)sizeof(struct ring_entry))

static inline uint64_t align8(uint64_t n)
{
    return (n + 7) & ~(uint64_t)7;
}

static inline uint64_t load_relaxed(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static inline uint64_t load_acquire(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

/* Bytes from POS to the end of data[] (always > 0, a multiple of 8). */
static inline uint64_t room_to_end(const struct ring *r, uint64_t pos)
{
    return r->capacity - pos % r->capacity;
}

/*
 * Where an entry of NEED bytes starts when the writer is at HEAD: at HEAD,
 * or at the start of the next lap when it would not fit before the end.
 */
static uint64_t place(const struct ring *r, uint64_t head, uint64_t need)
{
    uint64_t room = room_to_end(r, head);
    return room >= need ? head : head + room;
}

/*
 * Writer only: bytes the entry at POS occupies, POS being an entry boundary
 * in [tail, head). Those headers are complete and nobody else writes them,
 * so no validation is needed here.
 */
static uint64_t writer_span(const struct ring *r, uint64_t pos)
{
    uint64_t room = room_to_end(r, pos);
    if (room < HDR)
        return room;
    const struct ring_entry *e =
        (const struct ring_entry *)(r->data + pos % r->capacity);
    return HDR + align8(e->len);
}

struct ring *ring_init(void *mem, size_t bytes)
{
    if (mem == NULL || (uintptr_t)mem % _Alignof(struct ring) != 0 ||
        bytes < sizeof(struct ring) + 4096) {
        errno = EINVAL;
        return NULL;
    }
    struct ring *r = mem;
    memset(r, 0, sizeof *r);
    r->capacity = (uint64_t)(bytes - sizeof *r) & ~(uint64_t)7;
    r->next_id = 1;
    r->first_id = 1;
    return r;
}

uint64_t ring_max_entry(const struct ring *r)
{
    /* Rounded down to 8 so that header + aligned frame <= capacity / 4. */
    return ((r->capacity / 4) & ~(uint64_t)7) - HDR;
}

void *ring_reserve(struct ring *r, uint32_t len, uint64_t *at)
{
    if (len > ring_max_entry(r))
        return NULL;
    uint64_t need = HDR + align8(len);
    uint64_t head = load_relaxed(&r->head);   /* only writers store it */
    uint64_t start = place(r, head, need);
    uint64_t end = start + need;

    /*
     * Writing [head, end) overwrites what lived at [head - cap, end - cap),
     * so the tail must reach end - cap. Since need <= cap / 4, the walk
     * always stops at or before head.
     */
    uint64_t tail = load_relaxed(&r->tail);
    uint64_t t = tail;
    while (end - t > r->capacity && t < head)
        t += writer_span(r, t);
    if (t > head)
        t = head;
    if (t != tail) {
        __atomic_store_n(&r->tail, t, __ATOMIC_RELEASE);
        /*
         * The tail store must be visible before any byte of the region we
         * are about to overwrite (pad, header, frame): a reader that copied
         * one of those bytes pairs its acquire fence with this fence and is
         * then guaranteed to see the new tail and reject its copy.
         */
        __atomic_thread_fence(__ATOMIC_RELEASE);
    }
    if (at != NULL)
        *at = start;
    return r->data + start % r->capacity + HDR;
}

void ring_start_ids(struct ring *r, uint64_t first)
{
    r->next_id = first;
    r->first_id = first;
}

void ring_continue_ids(struct ring *r, uint64_t next)
{
    if (next > r->next_id)
        r->next_id = next;
}

uint64_t ring_first_id(const struct ring *r)
{
    return r->first_id;
}

uint64_t ring_next_id(const struct ring *r)
{
    return r->next_id;
}

/*
 * META->len must be the len given to ring_reserve(): the placement (and so
 * the pad) is recomputed from head and len rather than remembered, because
 * nothing in the shared ABI holds a pending reservation.
 */
uint64_t ring_commit(struct ring *r, const struct ring_entry *meta)
{
    assert(meta->len <= ring_max_entry(r));
    assert(meta->kind != RING_KIND_PAD);
    uint64_t cap = r->capacity;
    uint64_t need = HDR + align8(meta->len);
    uint64_t head = load_relaxed(&r->head);
    /* Same placement as ring_reserve() computed, since head has not moved. */
    uint64_t start = place(r, head, need);

    if (start - head >= HDR) {
        struct ring_entry *pad = (struct ring_entry *)(r->data + head % cap);
        memset(pad, 0, HDR);
        pad->kind = RING_KIND_PAD;
        pad->len = (uint32_t)(start - head - HDR);
    }

    uint64_t id = r->next_id;
    struct ring_entry *e = (struct ring_entry *)(r->data + start % cap);
    uint8_t room_len = meta->room_len < RING_ROOM_MAX ? meta->room_len
                                                      : RING_ROOM_MAX;
    memset(e, 0, HDR);
    e->id = id;
    e->ts_ms = meta->ts_ms;
    e->len = meta->len;
    e->kind = meta->kind;
    e->room_len = room_len;
    e->prev_pos = meta->prev_pos;
    e->prev_id = meta->prev_id;
    e->next_pos = RING_NO_POS;
    memcpy(e->room, meta->room, room_len);
    /*
     * Bump next_id before publishing: a writer killed between the two
     * leaves a gap in the ids, never a duplicate.
     */
    r->next_id = id + 1;

    /*
     * Release: the pad, header and frame stores happen-before any reader
     * acquire-load that sees the new head. last_id goes second, so a reader
     * that acquires last_id == id also sees a head covering entry id.
     */
    __atomic_store_n(&r->head, start + need, __ATOMIC_RELEASE);
    __atomic_store_n(&r->last_id, id, __ATOMIC_RELEASE);
    return id;
}

void ring_link(struct ring *r, uint64_t prev, uint64_t prev_id, uint64_t next)
{
    /* Under the writer's lock only this writer moves the tail, so this check holds. */
    if (prev == RING_NO_POS || prev < load_relaxed(&r->tail) || prev >= load_relaxed(&r->head))
        return;
    struct ring_entry *e = (struct ring_entry *)(r->data + prev % r->capacity);
    if (e->id != prev_id || e->kind == RING_KIND_PAD)
        return;
    __atomic_store_n(&e->next_pos, next, __ATOMIC_RELAXED);
}

uint64_t ring_head(const struct ring *r)
{
    return load_acquire(&r->head);
}

uint64_t ring_tail(const struct ring *r)
{
    return load_acquire(&r->tail);
}

uint64_t ring_last_id(const struct ring *r)
{
    return load_acquire(&r->last_id);
}

/*
 * True when nothing copied from the entry at POS can have been overwritten:
 * a writer moves tail past POS before its first store into that entry.
 */
static int copy_intact(const struct ring *r, uint64_t pos)
{
    /*
     * Acquire fence: orders every load of the copy before the tail load
     * below (the seqlock read-side pattern). Pairs with the release fence
     * in ring_reserve().
     */
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    return load_relaxed(&r->tail) <= pos;
}

/* ring_read() and ring_peek(): DST == NULL means header only. */
static ssize_t read_entry(const struct ring *r, uint64_t *pos,
                          struct ring_entry *meta, void *dst, size_t cap)
{
    uint64_t p = *pos;
    for (;;) {
        /* Acquire head: entries below it are complete and visible. */
        uint64_t head = load_acquire(&r->head);
        if (p >= head)
            return RING_EMPTY;
        if (p < load_acquire(&r->tail))
            return RING_LAPPED;

        uint64_t room = room_to_end(r, p);
        if (room < HDR) {           /* remainder too short for any entry */
            p += room;
            continue;
        }
        const unsigned char *src = r->data + p % r->capacity;
        struct ring_entry e;
        /* next_pos is the one field written after commit: load it atomically. */
        memcpy(&e, src, offsetof(struct ring_entry, next_pos));
        e.next_pos = __atomic_load_n(&((const struct ring_entry *)src)->next_pos,
                                     __ATOMIC_RELAXED);

        /*
         * The header may be torn by a racing writer: check that its len
         * keeps the entry inside data[] before touching any frame byte.
         */
        uint64_t span = HDR + align8(e.len);
        int sane = span <= room && (e.kind != RING_KIND_PAD || span == room);
        if (!sane || e.kind == RING_KIND_PAD) {
            if (!copy_intact(r, p) || !sane)
                return RING_LAPPED;    /* !sane while intact: corruption */
            p += room;
            continue;
        }
        if (dst != NULL) {
            if (e.len > cap)
                return copy_intact(r, p) ? RING_TOO_SMALL : RING_LAPPED;
            if (e.len > 0)
                memcpy(dst, src + HDR, e.len);
        }
        if (!copy_intact(r, p))
            return RING_LAPPED;
        *meta = e;
        *pos = p + span;
        return (ssize_t)e.len;
    }
}

ssize_t ring_read(const struct ring *r, uint64_t *pos, struct ring_entry *meta,
                  void *dst, size_t cap)
{
    /* A non-NULL dummy keeps cap == 0 reads of empty frames working. */
    static unsigned char none;
    return read_entry(r, pos, meta, dst != NULL ? dst : &none, dst ? cap : 0);
}

ssize_t ring_peek(const struct ring *r, uint64_t *pos, struct ring_entry *meta)
{
    return read_entry(r, pos, meta, NULL, 0);
}

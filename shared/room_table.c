/*
 * room_table: see room_table.h.
 *
 * Layout after the header: the buckets (a power of two, at least cap, of
 * entry indexes chained through hnext) then the entries. Entries are handed
 * out in order until cap is reached; after that a new name takes an empty
 * entry found by the clock hand, which is unlinked from its old bucket and
 * renamed. Counts are int32 read with atomic loads by lock-free readers
 * (welcome counts, presence ticks); every write happens under the lock.
 */
#include "room_table.h"

#include <string.h>

#include "siphash.h"

/* How far the hand looks for an empty room whose messages are all gone
 * before it settles for the first empty room it passed. */
#define RECLAIM_LOOK 64u

static uint32_t *buckets(struct room_table *t)
{
    return (uint32_t *)(t + 1);
}

static const uint32_t *cbuckets(const struct room_table *t)
{
    return (const uint32_t *)(t + 1);
}

static size_t nbuckets_for(uint32_t cap)
{
    size_t n = 1;
    while (n < cap)
        n <<= 1;
    return n;
}

static size_t entries_off(uint32_t cap)
{
    size_t off = sizeof(struct room_table) + nbuckets_for(cap) * sizeof(uint32_t);
    return (off + 63) & ~(size_t)63;
}

static struct room_entry *entries(struct room_table *t)
{
    return (struct room_entry *)((char *)t + entries_off(t->cap));
}

static const struct room_entry *centries(const struct room_table *t)
{
    return (const struct room_entry *)((const char *)t + entries_off(t->cap));
}

size_t room_table_size(uint32_t cap)
{
    return entries_off(cap) + (size_t)cap * sizeof(struct room_entry);
}

void room_table_init(struct room_table *t, uint32_t cap, uint64_t k0, uint64_t k1)
{
    memset(t, 0, sizeof *t);
    t->k0 = k0;
    t->k1 = k1;
    t->cap = cap;
    t->mask = (uint32_t)nbuckets_for(cap) - 1;
    memset(buckets(t), 0xff, (size_t)(t->mask + 1) * sizeof(uint32_t));  /* ROOM_NONE */
    memset(entries(t), 0, (size_t)cap * sizeof(struct room_entry));
}

static uint32_t bucket_of(const struct room_table *t, const char *name, size_t len)
{
    return (uint32_t)siphash24(t->k0, t->k1, name, len) & t->mask;
}

static int entry_is(const struct room_entry *e, const char *name, size_t len)
{
    return e->name_len == len && memcmp(e->name, name, len) == 0;
}

int room_table_find(const struct room_table *t, const char *name, size_t len)
{
    if (len == 0 || len > RING_ROOM_MAX)
        return -ENOENT;
    const struct room_entry *ent = centries(t);
    for (uint32_t i = cbuckets(t)[bucket_of(t, name, len)]; i != ROOM_NONE; i = ent[i].hnext)
        if (entry_is(&ent[i], name, len))
            return (int)i;
    return -ENOENT;
}

static int load_online(const struct room_entry *e)
{
    return __atomic_load_n(&e->online, __ATOMIC_RELAXED);
}

static void store_online(struct room_entry *e, int n)
{
    __atomic_store_n(&e->online, n, __ATOMIC_RELAXED);
}

/* Take entry I out of its bucket's chain. */
static void unlink_entry(struct room_table *t, uint32_t i)
{
    struct room_entry *ent = entries(t);
    uint32_t *link = &buckets(t)[bucket_of(t, ent[i].name, ent[i].name_len)];
    while (*link != i)
        link = &ent[*link].hnext;
    *link = ent[i].hnext;
}

/*
 * An entry for a new name: a never-used one while there are any, else an
 * empty room's, preferring one whose messages the ring no longer holds.
 * ROOM_NONE when every room has members.
 */
static uint32_t take_entry(struct room_table *t, uint64_t tail)
{
    if (t->used < t->cap)
        return t->used++;
    if (t->reclaim_held)
        return ROOM_NONE;
    struct room_entry *ent = entries(t);
    uint32_t first_empty = ROOM_NONE;
    for (uint32_t looked = 0; looked < t->cap; looked++) {
        uint32_t i = t->hand;
        t->hand = t->hand + 1 == t->cap ? 0 : t->hand + 1;
        if (load_online(&ent[i]) != 0)
            continue;
        int gone = ent[i].last_id == 0 || ent[i].last_pos < tail;
        if (gone) {
            first_empty = i;
            break;
        }
        if (first_empty == ROOM_NONE)
            first_empty = i;
        if (looked >= RECLAIM_LOOK)
            break;
    }
    if (first_empty == ROOM_NONE)
        return ROOM_NONE;
    struct room_entry *e = &ent[first_empty];
    if (e->last_id != 0 && e->last_pos >= tail && e->last_pos + 1 > t->horizon)
        t->horizon = e->last_pos + 1;   /* its messages outlive its entry */
    unlink_entry(t, first_empty);
    t->reclaimed++;
    return first_empty;
}

static void set_occupied(struct room_table *t, uint32_t n)
{
    __atomic_store_n(&t->occupied, n, __ATOMIC_RELAXED);
}

static void add_members(struct room_table *t, struct room_entry *e, int n)
{
    int before = load_online(e);
    if (before == 0 && n > 0)
        set_occupied(t, t->occupied + 1);
    store_online(e, before + n);
}

int room_table_join(struct room_table *t, const char *name, size_t len, int n, uint64_t tail)
{
    if (len == 0 || len > RING_ROOM_MAX || n < 0)
        return -EINVAL;
    struct room_entry *ent = entries(t);
    int found = room_table_find(t, name, len);
    if (found >= 0) {
        add_members(t, &ent[found], n);
        return found;
    }
    uint32_t i = take_entry(t, tail);
    if (i == ROOM_NONE)
        return -ENOSPC;
    struct room_entry *e = &ent[i];
    memset(e, 0, sizeof *e);
    memcpy(e->name, name, len);
    e->name_len = (uint8_t)len;
    e->last_pos = RING_NO_POS;
    /* Messages of this very name may survive from an entry reclaimed earlier. */
    e->unsure_below = t->horizon > tail ? t->horizon : 0;
    uint32_t *head = &buckets(t)[bucket_of(t, name, len)];
    e->hnext = *head;
    *head = i;
    add_members(t, e, n);
    return (int)i;
}

void room_table_leave(struct room_table *t, uint32_t idx)
{
    if (idx >= t->cap)
        return;
    struct room_entry *e = &entries(t)[idx];
    int before = load_online(e);
    if (before <= 0)
        return;     /* a reset already zeroed it */
    if (before == 1)
        set_occupied(t, t->occupied - 1);
    store_online(e, before - 1);
}

int room_table_online(const struct room_table *t, uint32_t idx)
{
    if (idx >= t->cap)
        return 0;
    const struct room_entry *e = &centries(t)[idx];
    return load_online(e) + __atomic_load_n(&e->remote, __ATOMIC_RELAXED);
}

int room_table_local(const struct room_table *t, uint32_t idx)
{
    return idx < t->cap ? load_online(&centries(t)[idx]) : 0;
}

void room_table_set_remote(struct room_table *t, uint32_t idx, int n)
{
    if (idx < t->cap)
        __atomic_store_n(&entries(t)[idx].remote, n < 0 ? 0 : n, __ATOMIC_RELAXED);
}

uint32_t room_table_used(const struct room_table *t)
{
    return __atomic_load_n(&t->used, __ATOMIC_RELAXED);
}

const struct room_entry *room_table_entry(const struct room_table *t, uint32_t idx)
{
    return idx < t->cap ? &centries(t)[idx] : NULL;
}

int room_table_is(const struct room_table *t, uint32_t idx, const char *name, size_t len)
{
    return idx < t->cap && entry_is(&centries(t)[idx], name, len);
}

void room_table_note_message(struct room_table *t, uint32_t idx, uint64_t pos, uint64_t id)
{
    if (idx >= t->cap)
        return;
    struct room_entry *e = &entries(t)[idx];
    e->last_pos = pos;
    e->last_id = id;
}

void room_table_note_unchained(struct room_table *t, uint64_t pos)
{
    if (pos + 1 > t->horizon)
        t->horizon = pos + 1;
}

int room_table_chain_complete(const struct room_table *t, uint32_t idx, uint64_t tail)
{
    if (idx >= t->cap)
        return 0;
    uint64_t below = centries(t)[idx].unsure_below;
    return below == 0 || below <= tail;
}

void room_table_request_reset(struct room_table *t)
{
    __atomic_fetch_add(&t->reset_asked, 1, __ATOMIC_RELEASE);
}

uint32_t room_table_settle(struct room_table *t)
{
    uint32_t asked = __atomic_load_n(&t->reset_asked, __ATOMIC_ACQUIRE);
    if (asked != t->reset_done) {
        struct room_entry *ent = entries(t);
        for (uint32_t i = 0; i < t->used; i++)
            store_online(&ent[i], 0);
        set_occupied(t, 0);
        __atomic_store_n(&t->reset_done, asked, __ATOMIC_RELAXED);
        __atomic_store_n(&t->epoch, t->epoch + 1, __ATOMIC_RELEASE);
    }
    return t->epoch;
}

int room_table_behind(const struct room_table *t, uint32_t epoch)
{
    return __atomic_load_n(&t->reset_asked, __ATOMIC_ACQUIRE) !=
               __atomic_load_n(&t->reset_done, __ATOMIC_RELAXED) ||
           __atomic_load_n(&t->epoch, __ATOMIC_ACQUIRE) != epoch;
}

void room_table_hold_reclaim(struct room_table *t, int hold)
{
    t->reclaim_held = hold != 0;
}

uint32_t room_table_occupied(const struct room_table *t)
{
    return __atomic_load_n(&t->occupied, __ATOMIC_RELAXED);
}

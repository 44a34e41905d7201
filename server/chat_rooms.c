/*
 * chat_rooms: see chat_rooms.h. A chained hash that doubles when it holds
 * more rooms than buckets; a worker with one room pays for 16 pointers.
 */
#include "chat_rooms.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "room_table.h"
#include "siphash.h"

#define BUCKETS_MIN 16u

static uint32_t bucket_of(const struct chat_rooms *rs, const char *name, size_t len)
{
    return (uint32_t)siphash24(rs->k0, rs->k1, name, len) & rs->mask;
}

int chat_rooms_init(struct chat_rooms *rs)
{
    memset(rs, 0, sizeof *rs);
    uint64_t key[2] = { 0, 0 };
    if (getrandom(key, sizeof key, 0) != (ssize_t)sizeof key)
        key[0] = (uint64_t)(uintptr_t)rs ^ 0x9e3779b97f4a7c15ull;
    rs->k0 = key[0];
    rs->k1 = key[1];
    rs->bucket = calloc(BUCKETS_MIN, sizeof *rs->bucket);
    if (rs->bucket == NULL)
        return -ENOMEM;
    rs->mask = BUCKETS_MIN - 1;
    return 0;
}

void chat_rooms_fini(struct chat_rooms *rs)
{
    while (rs->all != NULL)
        chat_rooms_free(rs, rs->all);
    free(rs->bucket);
    rs->bucket = NULL;
}

struct local_room *chat_rooms_find(const struct chat_rooms *rs, const char *name, size_t len)
{
    for (struct local_room *lr = rs->bucket[bucket_of(rs, name, len)]; lr != NULL; lr = lr->hnext)
        if (lr->name_len == len && memcmp(lr->name, name, len) == 0)
            return lr;
    return NULL;
}

/* Twice the buckets; on no memory the chains just grow longer. */
static void grow(struct chat_rooms *rs)
{
    uint32_t n = (rs->mask + 1) * 2;
    struct local_room **b = calloc(n, sizeof *b);
    if (b == NULL)
        return;
    free(rs->bucket);
    rs->bucket = b;
    rs->mask = n - 1;
    for (struct local_room *lr = rs->all; lr != NULL; lr = lr->next) {
        uint32_t i = bucket_of(rs, lr->name, lr->name_len);
        lr->hnext = b[i];
        b[i] = lr;
    }
}

struct local_room *chat_rooms_get(struct chat_rooms *rs, const char *name, size_t len,
                                  uint64_t stream_min)
{
    if (len == 0 || len > RING_ROOM_MAX)
        return NULL;
    struct local_room *lr = chat_rooms_find(rs, name, len);
    if (lr != NULL)
        return lr;
    lr = calloc(1, sizeof *lr);
    if (lr == NULL)
        return NULL;
    if (stream_init(&lr->stream, stream_min) < 0) {
        free(lr);
        return NULL;
    }
    memcpy(lr->name, name, len);
    lr->name_len = (uint8_t)len;
    lr->idx = ROOM_NONE;
    lr->presence_sent = -1;
    if (rs->count >= rs->mask + 1)
        grow(rs);
    uint32_t i = bucket_of(rs, name, len);
    lr->hnext = rs->bucket[i];
    rs->bucket[i] = lr;
    lr->next = rs->all;
    if (rs->all != NULL)
        rs->all->prev = lr;
    rs->all = lr;
    rs->count++;
    return lr;
}

void chat_rooms_free(struct chat_rooms *rs, struct local_room *lr)
{
    struct local_room **link = &rs->bucket[bucket_of(rs, lr->name, lr->name_len)];
    while (*link != lr)
        link = &(*link)->hnext;
    *link = lr->hnext;
    if (lr->prev != NULL)
        lr->prev->next = lr->next;
    else
        rs->all = lr->next;
    if (lr->next != NULL)
        lr->next->prev = lr->prev;
    rs->count--;
    stream_fini(&lr->stream);
    free(lr);
}

uint32_t chat_room_members(const struct local_room *lr)
{
    return lr->stream.ncursors + lr->replaying;
}

/* Count LR's members into T; ROOM_NONE when it has none or T is full. */
static void place(struct chat_rooms *rs, struct local_room *lr, struct room_table *t,
                  uint64_t tail)
{
    uint32_t n = chat_room_members(lr);
    int idx = n > 0 ? room_table_join(t, lr->name, lr->name_len, (int)n, tail) : -ENOENT;
    lr->idx = idx >= 0 ? (uint32_t)idx : ROOM_NONE;
    rs->unplaced += n > 0 && idx < 0;
}

void chat_rooms_sync(struct chat_rooms *rs, struct room_table *t, uint64_t tail)
{
    uint32_t epoch = room_table_settle(t);
    if (epoch == rs->epoch && rs->unplaced == 0)
        return;
    int all = epoch != rs->epoch;
    rs->epoch = epoch;
    rs->unplaced = 0;
    for (struct local_room *lr = rs->all; lr != NULL; lr = lr->next)
        if (all || lr->idx == ROOM_NONE)
            place(rs, lr, t, tail);
}

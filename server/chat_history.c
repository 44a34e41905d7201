/*
 * chat_history: see chat_history.h. Each slot keeps a circular array of
 * (position, id) for the last per_room messages, oldest overwritten first.
 */
#include "chat_history.h"

#include <stdlib.h>
#include <string.h>

struct hist_item { uint64_t pos, id; };

struct hist_slot {
    char     name[RING_ROOM_MAX];
    uint8_t  name_len;
    uint8_t  complete;      /* holds every message of the room the ring may hold */
    uint32_t count;         /* items stored, <= per_room */
    uint32_t next;          /* where the next item goes */
    struct hist_item item[];
};

void chat_history_init(struct chat_history *h, uint32_t per_room)
{
    memset(h, 0, sizeof *h);
    h->per_room = per_room;
}

void chat_history_fini(struct chat_history *h)
{
    for (int i = 0; i < SHM_MAX_ROOMS; i++)
        free(h->rooms[i]);
    memset(h->rooms, 0, sizeof h->rooms);
}

void chat_history_note(struct chat_history *h, const struct ring_entry *e, uint64_t pos)
{
    if (h->per_room == 0 || e->kind != RING_KIND_MESSAGE || e->room_slot >= SHM_MAX_ROOMS)
        return;
    struct hist_slot *s = h->rooms[e->room_slot];
    if (s == NULL) {
        s = calloc(1, sizeof *s + h->per_room * sizeof s->item[0]);
        if (s == NULL)
            return;     /* no index: selects for this slot fall back to a scan */
        /* Created by the first message this worker saw in the slot since it started. */
        s->complete = 1;
        h->rooms[e->room_slot] = s;
    }
    if (s->name_len != e->room_len || memcmp(s->name, e->room, e->room_len) != 0) {
        /*
         * The slot now belongs to another room. Older messages of this name
         * may sit in the ring under the slot's previous life, so the fresh
         * index is not complete unless it is the slot's very first name.
         */
        s->complete = s->name_len == 0 && s->count == 0 ? s->complete : 0;
        memcpy(s->name, e->room, e->room_len);
        s->name_len = e->room_len;
        s->count = 0;
        s->next = 0;
    }
    if (s->count == h->per_room)
        s->complete = 0;    /* the oldest is about to be forgotten */
    else
        s->count++;
    s->item[s->next].pos = pos;
    s->item[s->next].id = e->id;
    s->next = (s->next + 1) % h->per_room;
}

long chat_history_select(const struct chat_history *h, int slot, const char *name,
                         size_t len, int have_since, uint64_t since, uint64_t *out)
{
    if (h->per_room == 0)
        return have_since ? -1 : 0;
    if (slot < 0 || slot >= SHM_MAX_ROOMS)
        return -1;
    const struct hist_slot *s = h->rooms[slot];
    if (s == NULL || s->name_len != len || memcmp(s->name, name, len) != 0)
        return -1;
    uint32_t first = (s->next + h->per_room - s->count) % h->per_room;
    const struct hist_item *oldest = &s->item[first];
    if (have_since) {
        /* Every message after `since` is here if the oldest one kept is at most since + 1. */
        if (!s->complete && (s->count == 0 || oldest->id > since + 1))
            return -1;
    } else if (!s->complete && s->count < h->per_room) {
        return -1;
    }
    long n = 0;
    for (uint32_t k = 0; k < s->count; k++) {
        const struct hist_item *it = &s->item[(first + k) % h->per_room];
        if (!have_since || it->id > since)
            out[n++] = it->pos;
    }
    return n;
}

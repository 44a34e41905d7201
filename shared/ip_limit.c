/*
 * ip_limit: see ip_limit.h.
 */
#include "ip_limit.h"

#include <string.h>

void ip_limit_init(struct ip_limit *t, uint64_t seed)
{
    memset(t, 0, sizeof *t);
    t->seed = seed;
}

void ip_limit_reset(struct ip_limit *t)
{
    memset(t->slot, 0, sizeof t->slot);
    t->used = 0;
    t->epoch++;
}

/* Keyed mix of the 16 bytes (splitmix64 finaliser over two words). */
static uint32_t home_of(const struct ip_limit *t, const uint8_t addr[16])
{
    uint64_t a, b;
    memcpy(&a, addr, 8);
    memcpy(&b, addr + 8, 8);
    uint64_t h = t->seed ^ a;
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
    h ^= b;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
    h ^= h >> 31;
    return (uint32_t)h & (IP_LIMIT_SLOTS - 1);
}

/* The slot holding ADDR, or else the free slot that ends its probe chain. */
static uint32_t find(const struct ip_limit *t, const uint8_t addr[16])
{
    uint32_t i = home_of(t, addr);
    while (t->slot[i].count != 0 && memcmp(t->slot[i].addr, addr, 16) != 0)
        i = (i + 1) & (IP_LIMIT_SLOTS - 1);
    return i;
}

int ip_limit_take(struct ip_limit *t, const uint8_t addr[16], uint32_t max)
{
    uint32_t i = find(t, addr);
    struct ip_limit_slot *s = &t->slot[i];
    if (s->count == 0) {
        /* The fill bound keeps probe chains short and one slot always free. */
        if (t->used >= IP_LIMIT_FILL)
            return -ENOSPC;
        memcpy(s->addr, addr, 16);
        t->used++;
    } else if (max != 0 && s->count >= max) {
        return 0;
    }
    s->count++;
    return 1;
}

uint32_t ip_limit_count(const struct ip_limit *t, const uint8_t addr[16])
{
    return t->slot[find(t, addr)].count;
}

void ip_limit_give(struct ip_limit *t, const uint8_t addr[16])
{
    uint32_t i = find(t, addr);
    if (t->slot[i].count == 0 || --t->slot[i].count != 0)
        return;
    t->used--;
    /*
     * Backward shift: pull later members of the chain into the hole, so
     * every remaining address stays reachable from its home slot.
     */
    for (uint32_t j = (i + 1) & (IP_LIMIT_SLOTS - 1); t->slot[j].count != 0;
         j = (j + 1) & (IP_LIMIT_SLOTS - 1)) {
        uint32_t home = home_of(t, t->slot[j].addr);
        /* J may move to I unless its home lies cyclically in (I, J]. */
        int stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (stays)
            continue;
        t->slot[i] = t->slot[j];
        t->slot[j].count = 0;
        i = j;
    }
}

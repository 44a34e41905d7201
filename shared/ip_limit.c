/*
 * ip_limit: see ip_limit.h.
 *
 * A slot is in use while it counts connections or while its address still
 * owes publish budget (pub_ms != 0): an address whose last connection
 * closes keeps its spent budget until it has refilled, so closing and
 * reconnecting buys nothing. ip_limit_sweep() frees those lingering slots.
 */
#include "ip_limit.h"

#include <string.h>

#define MASK (IP_LIMIT_SLOTS - 1)

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

static int in_use(const struct ip_limit_slot *s)
{
    return s->count != 0 || s->pub_ms != 0;
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
    return (uint32_t)h & MASK;
}

/* The slot holding ADDR, or else the free slot that ends its probe chain. */
static uint32_t find(const struct ip_limit *t, const uint8_t addr[16])
{
    uint32_t i = home_of(t, addr);
    while (in_use(&t->slot[i]) && memcmp(t->slot[i].addr, addr, 16) != 0)
        i = (i + 1) & MASK;
    return i;
}

/*
 * Free slot I: pull later members of its chain into the hole (backward
 * shift), so every remaining address stays reachable from its home slot.
 */
static void remove_at(struct ip_limit *t, uint32_t i)
{
    memset(&t->slot[i], 0, sizeof t->slot[i]);
    t->used--;
    for (uint32_t j = (i + 1) & MASK; in_use(&t->slot[j]); j = (j + 1) & MASK) {
        uint32_t home = home_of(t, t->slot[j].addr);
        /* J may move to I unless its home lies cyclically in (I, J]. */
        int stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (stays)
            continue;
        t->slot[i] = t->slot[j];
        memset(&t->slot[j], 0, sizeof t->slot[j]);
        i = j;
    }
}

int ip_limit_take(struct ip_limit *t, const uint8_t addr[16], uint32_t max)
{
    uint32_t i = find(t, addr);
    struct ip_limit_slot *s = &t->slot[i];
    if (!in_use(s)) {
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
    struct ip_limit_slot *s = &t->slot[i];
    if (s->count == 0 || --s->count != 0)
        return;
    if (s->pub_ms == 0)
        remove_at(t, i);
}

/* S's budget refilled up to NOW_MS (RATE bytes/s, capped at the burst). */
static uint64_t refilled(const struct ip_limit_slot *s, uint64_t rate, uint64_t now_ms)
{
    uint64_t full = rate * IP_PUBLISH_BURST_S;
    if (s->pub_ms == 0)
        return full;
    /* Workers' clocks are read once per loop pass: another worker may
     * have charged "later" than this reading. Earn nothing, never refill. */
    if (now_ms <= s->pub_ms)
        return s->pub_tokens < full ? s->pub_tokens : full;
    uint64_t earned = (now_ms - s->pub_ms) * rate / 1000;
    return full - s->pub_tokens < earned ? full : s->pub_tokens + earned;
}

int ip_limit_charge(struct ip_limit *t, const uint8_t addr[16], uint64_t bytes, uint64_t rate,
                    uint64_t now_ms)
{
    struct ip_limit_slot *s = &t->slot[find(t, addr)];
    if (s->count == 0 || rate == 0)
        return 1;
    s->pub_tokens = refilled(s, rate, now_ms);
    /* Stamp 0 means "owes nothing": a clock reading of 0 counts as 1. */
    if (now_ms > s->pub_ms)
        s->pub_ms = now_ms;
    if (s->pub_ms == 0)
        s->pub_ms = 1;
    if (bytes > s->pub_tokens)
        return 0;
    s->pub_tokens -= bytes;
    return 1;
}

uint32_t ip_limit_sweep(struct ip_limit *t, uint64_t rate, uint64_t now_ms)
{
    uint32_t freed = 0;
    for (uint32_t i = 0; i < IP_LIMIT_SLOTS; i++) {
        /* A removal shifts a later slot into I: look at I again. */
        while (t->slot[i].count == 0 && t->slot[i].pub_ms != 0 &&
               (rate == 0 || refilled(&t->slot[i], rate, now_ms) >= rate * IP_PUBLISH_BURST_S)) {
            remove_at(t, i);
            freed++;
        }
    }
    return freed;
}

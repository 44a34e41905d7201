/*
 * check_room_table: the shared room table (shared/room_table.c) over heap
 * memory: join/find/leave and the occupied count, name bounds, capacity and
 * reclaiming by the clock hand (which prefers rooms whose history the ring
 * has dropped, and raises the horizon when it cannot), count resets by
 * epoch, a random workload against a plain reference model with a small
 * table so entries are reclaimed all the time, and the size of tables from
 * 1 entry to ROOM_TABLE_MAX. Every table sits in front of a guard zone
 * that must stay untouched.
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "room_table.h"

#define GUARD 256

static struct room_table *t;
static size_t t_bytes;

static unsigned char guard_byte(size_t k)
{
    return (unsigned char)(0x5A ^ (k * 31));
}

/* A table of CAP entries in 64-aligned heap memory full of junk first. */
static struct room_table *make_table(uint32_t cap)
{
    t_bytes = room_table_size(cap);
    size_t alloc = (t_bytes + GUARD + 63) & ~(size_t)63;
    unsigned char *mem = aligned_alloc(64, alloc);
    ck_assert_ptr_nonnull(mem);
    memset(mem, 0xA5, t_bytes);
    for (size_t k = 0; k < GUARD; k++)
        mem[t_bytes + k] = guard_byte(k);
    t = (struct room_table *)mem;
    room_table_init(t, cap, 0x0706050403020100ull, 0x0f0e0d0c0b0a0908ull);
    return t;
}

static void free_table(void)
{
    const unsigned char *mem = (const unsigned char *)t;
    for (size_t k = 0; k < GUARD; k++)
        ck_assert_uint_eq(mem[t_bytes + k], guard_byte(k));
    free(t);
    t = NULL;
}

static int join(const char *name, int n, uint64_t tail)
{
    return room_table_join(t, name, strlen(name), n, tail);
}

static int find(const char *name)
{
    return room_table_find(t, name, strlen(name));
}

/* ---- basics ------------------------------------------------------------ */

START_TEST(join_find_leave)
{
    make_table(16);
    ck_assert_int_eq(find("lobby"), -ENOENT);
    ck_assert_uint_eq(room_table_occupied(t), 0);
    int a = join("lobby", 1, 0);
    ck_assert_int_ge(a, 0);
    ck_assert_int_lt(a, 16);
    ck_assert_int_eq(find("lobby"), a);
    ck_assert_int_eq(room_table_online(t, (uint32_t)a), 1);
    ck_assert_uint_eq(room_table_occupied(t), 1);
    ck_assert_int_eq(join("lobby", 2, 0), a);
    ck_assert_int_eq(room_table_online(t, (uint32_t)a), 3);
    ck_assert_uint_eq(room_table_occupied(t), 1);

    int b = join("dev", 1, 0);
    ck_assert_int_ge(b, 0);
    ck_assert_int_ne(b, a);
    ck_assert_uint_eq(room_table_occupied(t), 2);
    ck_assert(room_table_is(t, (uint32_t)a, "lobby", 5));
    ck_assert(!room_table_is(t, (uint32_t)a, "dev", 3));
    ck_assert(!room_table_is(t, (uint32_t)a, "lobb", 4));
    const struct room_entry *e = room_table_entry(t, (uint32_t)b);
    ck_assert_ptr_nonnull(e);
    ck_assert_uint_eq(e->name_len, 3);
    ck_assert_mem_eq(e->name, "dev", 3);
    ck_assert_uint_eq(e->last_pos, RING_NO_POS);
    ck_assert_uint_eq(e->last_id, 0);

    for (int k = 0; k < 3; k++)
        room_table_leave(t, (uint32_t)a);
    ck_assert_int_eq(room_table_online(t, (uint32_t)a), 0);
    ck_assert_uint_eq(room_table_occupied(t), 1);
    /* A leave past zero (counts were reset meanwhile) changes nothing. */
    room_table_leave(t, (uint32_t)a);
    ck_assert_int_eq(room_table_online(t, (uint32_t)a), 0);
    ck_assert_uint_eq(room_table_occupied(t), 1);
    /* An empty room stays in the table under its name. */
    ck_assert_int_eq(find("lobby"), a);
    ck_assert_int_eq(join("lobby", 1, 0), a);
    ck_assert_uint_eq(room_table_occupied(t), 2);

    /* Out-of-range indexes are harmless. */
    ck_assert_ptr_null(room_table_entry(t, 16));
    ck_assert_ptr_null(room_table_entry(t, ROOM_NONE));
    ck_assert_int_eq(room_table_online(t, 16), 0);
    ck_assert(!room_table_is(t, 16, "lobby", 5));
    ck_assert_int_eq(room_table_chain_complete(t, 16, 0), 0);
    room_table_leave(t, ROOM_NONE);
    room_table_note_message(t, 16, 1, 1);
    ck_assert_uint_eq(room_table_occupied(t), 2);
    ck_assert_int_eq(join("x", -1, 0), -EINVAL);
    ck_assert_int_eq(find("x"), -ENOENT);
    free_table();
}
END_TEST

START_TEST(name_bounds)
{
    make_table(16);
    char name[40];
    memset(name, 'n', sizeof name);
    int one = room_table_join(t, name, 1, 1, 0);
    int full = room_table_join(t, name, RING_ROOM_MAX, 1, 0);
    ck_assert_int_ge(one, 0);
    ck_assert_int_ge(full, 0);
    ck_assert_int_ne(one, full);
    ck_assert_int_eq(room_table_join(t, name, 0, 1, 0), -EINVAL);
    ck_assert_int_eq(room_table_join(t, name, RING_ROOM_MAX + 1, 1, 0), -EINVAL);
    ck_assert_int_eq(room_table_find(t, name, 0), -ENOENT);
    /* 33 bytes whose first 32 are a room's name are not that room. */
    ck_assert_int_eq(room_table_find(t, name, RING_ROOM_MAX + 1), -ENOENT);
    ck_assert_int_eq(room_table_find(t, name, 1), one);
    ck_assert_int_eq(room_table_find(t, name, RING_ROOM_MAX), full);
    ck_assert_int_eq(room_table_find(t, name, RING_ROOM_MAX - 1), -ENOENT);
    ck_assert_uint_eq(room_table_entry(t, (uint32_t)full)->name_len, RING_ROOM_MAX);
    ck_assert_mem_eq(room_table_entry(t, (uint32_t)full)->name, name, RING_ROOM_MAX);
    ck_assert_uint_eq(room_table_occupied(t), 2);

    /* Prefixes, extensions and embedded NULs are other rooms. */
    int lobby = join("lobby", 1, 0);
    int lobb = join("lobb", 1, 0);
    int lobby2 = join("lobby2", 1, 0);
    int nul = room_table_join(t, "lobby\0x", 7, 1, 0);
    ck_assert_int_ge(lobby, 0);
    ck_assert_int_ge(lobb, 0);
    ck_assert_int_ge(lobby2, 0);
    ck_assert_int_ge(nul, 0);
    ck_assert_int_ne(lobby, lobb);
    ck_assert_int_ne(lobby, lobby2);
    ck_assert_int_ne(lobb, lobby2);
    ck_assert_int_ne(nul, lobby);
    ck_assert_int_ne(nul, lobby2);
    ck_assert_int_eq(find("lobby"), lobby);
    ck_assert_int_eq(find("lobb"), lobb);
    ck_assert_int_eq(find("lobby2"), lobby2);
    ck_assert_int_eq(room_table_find(t, "lobby\0x", 7), nul);
    ck_assert_int_eq(find("Lobby"), -ENOENT);
    ck_assert_int_eq(find("lob"), -ENOENT);
    ck_assert_uint_eq(room_table_occupied(t), 6);
    free_table();
}
END_TEST

START_TEST(zero_join_makes_entry_only)
{
    make_table(4);
    int a = join("quiet", 0, 0);
    ck_assert_int_ge(a, 0);
    ck_assert_int_eq(find("quiet"), a);
    ck_assert_int_eq(room_table_online(t, (uint32_t)a), 0);
    ck_assert_uint_eq(room_table_occupied(t), 0);
    ck_assert_int_eq(join("quiet", 0, 0), a);
    ck_assert_uint_eq(room_table_occupied(t), 0);
    ck_assert_int_eq(join("quiet", 1, 0), a);
    ck_assert_int_eq(room_table_online(t, (uint32_t)a), 1);
    ck_assert_uint_eq(room_table_occupied(t), 1);
    free_table();
}
END_TEST

START_TEST(note_message_sets_head)
{
    make_table(4);
    int a = join("lobby", 1, 0);
    int b = join("dev", 1, 0);
    room_table_note_message(t, (uint32_t)a, 4096, 17);
    ck_assert_uint_eq(room_table_entry(t, (uint32_t)a)->last_pos, 4096);
    ck_assert_uint_eq(room_table_entry(t, (uint32_t)a)->last_id, 17);
    room_table_note_message(t, (uint32_t)a, 8192, 18);
    ck_assert_uint_eq(room_table_entry(t, (uint32_t)a)->last_pos, 8192);
    ck_assert_uint_eq(room_table_entry(t, (uint32_t)a)->last_id, 18);
    /* The other room is untouched. */
    ck_assert_uint_eq(room_table_entry(t, (uint32_t)b)->last_pos, RING_NO_POS);
    ck_assert_uint_eq(room_table_entry(t, (uint32_t)b)->last_id, 0);
    ck_assert_int_eq(room_table_online(t, (uint32_t)a), 1);
    ck_assert(room_table_is(t, (uint32_t)a, "lobby", 5));
    free_table();
}
END_TEST

/* ---- capacity and reclaiming -------------------------------------------- */

static void name_of(char *buf, size_t len, int k)
{
    snprintf(buf, len, "room-%d", k);
}

START_TEST(full_then_reclaim)
{
    enum { CAP = 8 };
    make_table(CAP);
    char name[16];
    int idx[CAP];
    for (int k = 0; k < CAP; k++) {
        name_of(name, sizeof name, k);
        idx[k] = join(name, 1, 0);
        ck_assert_int_ge(idx[k], 0);
        ck_assert_int_lt(idx[k], CAP);
        for (int j = 0; j < k; j++)
            ck_assert_int_ne(idx[j], idx[k]);
    }
    ck_assert_uint_eq(room_table_occupied(t), CAP);
    ck_assert_int_eq(join("newcomer", 1, 0), -ENOSPC);
    ck_assert_int_eq(join("newcomer", 0, 0), -ENOSPC);
    ck_assert_int_eq(find("newcomer"), -ENOENT);
    /* Existing rooms still take members. */
    ck_assert_int_eq(join("room-3", 2, 0), idx[3]);
    ck_assert_int_eq(room_table_online(t, (uint32_t)idx[3]), 3);
    ck_assert_uint_eq(t->reclaimed, 0);

    for (int k = 0; k < 3; k++)
        room_table_leave(t, (uint32_t)idx[3]);
    ck_assert_uint_eq(room_table_occupied(t), CAP - 1);
    int n = join("newcomer", 1, 0);
    ck_assert_int_eq(n, idx[3]);
    ck_assert_int_eq(find("room-3"), -ENOENT);
    ck_assert_int_eq(find("newcomer"), n);
    ck_assert(room_table_is(t, (uint32_t)n, "newcomer", 8));
    ck_assert_int_eq(room_table_online(t, (uint32_t)n), 1);
    ck_assert_uint_eq(room_table_entry(t, (uint32_t)n)->last_id, 0);
    ck_assert_uint_eq(room_table_entry(t, (uint32_t)n)->last_pos, RING_NO_POS);
    ck_assert_uint_eq(t->reclaimed, 1);
    ck_assert_uint_eq(room_table_occupied(t), CAP);
    for (int k = 0; k < CAP; k++) {
        if (k == 3)
            continue;
        name_of(name, sizeof name, k);
        ck_assert_int_eq(find(name), idx[k]);
        ck_assert_int_eq(room_table_online(t, (uint32_t)idx[k]), 1);
    }
    /* Full again; the old name comes back only when a room empties. */
    ck_assert_int_eq(join("room-3", 1, 0), -ENOSPC);
    room_table_leave(t, (uint32_t)idx[6]);
    ck_assert_int_eq(join("room-3", 1, 0), idx[6]);
    ck_assert_int_eq(find("room-6"), -ENOENT);
    ck_assert_uint_eq(t->reclaimed, 2);
    free_table();
}
END_TEST

/*
 * CAP rooms, each with one message at POS[k] (0: none) and members except
 * for the EMPTY ones; returns their indexes in IDX.
 */
static void fill_rooms(int cap, const uint64_t *pos, const int *empty, int *idx)
{
    char name[16];
    for (int k = 0; k < cap; k++) {
        name_of(name, sizeof name, k);
        idx[k] = join(name, 1, 0);
        ck_assert_int_ge(idx[k], 0);
        if (pos[k] != 0)
            room_table_note_message(t, (uint32_t)idx[k], pos[k], (uint64_t)k + 1);
    }
    for (int k = 0; k < cap; k++)
        if (empty[k])
            room_table_leave(t, (uint32_t)idx[k]);
}

START_TEST(hand_prefers_history_gone)
{
    enum { CAP = 8 };
    make_table(CAP);
    /* Room 2 empty with its message still in the ring (tail 4000), room 5 empty and gone. */
    const uint64_t pos[CAP] = { 1000, 2000, 6000, 4000, 5000, 3000, 7000, 8000 };
    const int empty[CAP] = { 0, 0, 1, 0, 0, 1, 0, 0 };
    int idx[CAP];
    fill_rooms(CAP, pos, empty, idx);
    /* Whichever the hand meets first, the gone one is taken. */
    int a = join("fresh-a", 1, 4000);
    ck_assert_int_eq(a, idx[5]);
    ck_assert_int_eq(find("room-5"), -ENOENT);
    ck_assert_int_eq(find("room-2"), idx[2]);
    ck_assert_int_eq(room_table_chain_complete(t, (uint32_t)a, 4000), 1);
    ck_assert_int_eq(room_table_chain_complete(t, (uint32_t)a, 0), 1);
    free_table();

    /* The gone one first in the hand's way: taken as well (not just "the later one"). */
    make_table(CAP);
    const uint64_t pos2[CAP] = { 1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000 };
    fill_rooms(CAP, pos2, empty, idx);
    a = join("fresh-a", 1, 4000);
    ck_assert_int_eq(a, idx[2]);
    ck_assert_int_eq(find("room-5"), idx[5]);
    ck_assert_int_eq(room_table_chain_complete(t, (uint32_t)a, 4000), 1);
    free_table();
}
END_TEST

START_TEST(reclaim_in_ring_raises_horizon)
{
    enum { CAP = 8 };
    make_table(CAP);
    const uint64_t pos[CAP] = { 1000, 2000, 6000, 4000, 5000, 3000, 7000, 8000 };
    const int empty[CAP] = { 0, 0, 1, 0, 0, 1, 0, 0 };
    int idx[CAP];
    fill_rooms(CAP, pos, empty, idx);
    ck_assert_int_eq(join("fresh-a", 1, 4000), idx[5]);
    ck_assert_uint_eq(t->reclaimed, 1);
    for (int k = 0; k < CAP; k++)
        ck_assert_int_eq(room_table_chain_complete(t, (uint32_t)idx[k], 0), 1);

    /* Only room 2 is empty, and its message at 6000 is still in the ring. */
    int b = join("fresh-b", 1, 4000);
    ck_assert_int_eq(b, idx[2]);
    ck_assert_uint_eq(t->reclaimed, 2);
    ck_assert_int_eq(room_table_chain_complete(t, (uint32_t)b, 4000), 0);
    ck_assert_int_eq(room_table_chain_complete(t, (uint32_t)b, 6000), 0);
    ck_assert_int_eq(room_table_chain_complete(t, (uint32_t)b, 6001), 1);
    ck_assert_int_eq(room_table_chain_complete(t, (uint32_t)b, 1u << 30), 1);
    /* Rooms made before that reclaim are complete whatever the tail. */
    ck_assert_int_eq(room_table_chain_complete(t, (uint32_t)idx[0], 0), 1);
    ck_assert_int_eq(room_table_chain_complete(t, (uint32_t)idx[5], 4000), 1);

    /* A room made later, while the ring may still hold those messages: unsure too. */
    room_table_leave(t, (uint32_t)idx[0]);     /* its message at 1000 is gone */
    int c = join("room-2", 1, 5000);           /* the reclaimed name itself comes back */
    ck_assert_int_eq(c, idx[0]);
    ck_assert_int_eq(room_table_chain_complete(t, (uint32_t)c, 5000), 0);
    ck_assert_int_eq(room_table_chain_complete(t, (uint32_t)c, 6001), 1);

    /* Once the tail has passed the horizon, new rooms are complete again. */
    room_table_leave(t, (uint32_t)idx[1]);     /* message at 2000 */
    int d = join("fresh-d", 1, 6001);
    ck_assert_int_eq(d, idx[1]);
    ck_assert_int_eq(room_table_chain_complete(t, (uint32_t)d, 0), 1);
    ck_assert_uint_eq(t->reclaimed, 4);
    free_table();
}
END_TEST

/* ---- resets --------------------------------------------------------------- */

START_TEST(reset_and_settle)
{
    make_table(16);
    char name[16];
    int idx[10];
    for (int k = 0; k < 10; k++) {
        name_of(name, sizeof name, k);
        idx[k] = join(name, k, 0);
        ck_assert_int_ge(idx[k], 0);
    }
    ck_assert_uint_eq(room_table_occupied(t), 9);

    /* Nothing asked: settle changes nothing. */
    uint32_t e0 = room_table_settle(t);
    ck_assert_int_eq(room_table_behind(t, e0), 0);
    ck_assert_uint_eq(room_table_settle(t), e0);
    for (int k = 0; k < 10; k++)
        ck_assert_int_eq(room_table_online(t, (uint32_t)idx[k]), k);
    ck_assert_uint_eq(room_table_occupied(t), 9);

    room_table_request_reset(t);
    ck_assert_int_eq(room_table_behind(t, e0), 1);
    /* Asked, not done yet: counts are untouched until someone settles. */
    ck_assert_int_eq(room_table_online(t, (uint32_t)idx[9]), 9);
    uint32_t e1 = room_table_settle(t);
    ck_assert_uint_eq(e1, e0 + 1);
    ck_assert_int_eq(room_table_behind(t, e1), 0);
    ck_assert_int_eq(room_table_behind(t, e0), 1);
    ck_assert_uint_eq(room_table_occupied(t), 0);
    for (int k = 0; k < 10; k++) {
        ck_assert_int_eq(room_table_online(t, (uint32_t)idx[k]), 0);
        name_of(name, sizeof name, k);
        ck_assert_int_eq(find(name), idx[k]);
    }
    ck_assert_uint_eq(room_table_settle(t), e1);
    ck_assert_uint_eq(room_table_settle(t), e1);

    /* A leave for a member counted before the reset cannot drive counts below 0. */
    room_table_leave(t, (uint32_t)idx[5]);
    ck_assert_int_eq(room_table_online(t, (uint32_t)idx[5]), 0);
    ck_assert_uint_eq(room_table_occupied(t), 0);
    /* Members are added back by name. */
    ck_assert_int_eq(join("room-5", 5, 0), idx[5]);
    ck_assert_int_eq(room_table_online(t, (uint32_t)idx[5]), 5);
    ck_assert_uint_eq(room_table_occupied(t), 1);

    /* Two requests before anyone settles: one reset, then quiet. */
    room_table_request_reset(t);
    room_table_request_reset(t);
    uint32_t e2 = room_table_settle(t);
    ck_assert_uint_gt(e2, e1);
    ck_assert_uint_eq(room_table_occupied(t), 0);
    ck_assert_int_eq(room_table_online(t, (uint32_t)idx[5]), 0);
    ck_assert_uint_eq(room_table_settle(t), e2);
    ck_assert_int_eq(room_table_behind(t, e2), 0);
    free_table();
}
END_TEST

/* ---- a random workload against a reference model ------------------------- */

#define MODEL_GROUPS 24
#define MODEL_NAMES  (MODEL_GROUPS * RING_ROOM_MAX)
#define MODEL_CAP    257u
#define MODEL_OPS    100000

struct model_room {
    char name[RING_ROOM_MAX];
    uint8_t len;
    int idx;                    /* -1: not in the table */
    int count;
    uint64_t last_pos, last_id;
    uint64_t unsure_below;
};

static struct model_room mr[MODEL_NAMES];
static int nnames;
static int model_owner[MODEL_CAP];     /* name holding each entry, -1 */

static uint64_t rng_state;

static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/*
 * Names: every prefix (1..32 bytes) of MODEL_GROUPS random strings over a
 * small alphabet that includes NUL, so many names are prefixes of others.
 */
static void model_names(void)
{
    nnames = 0;
    for (int g = 0; g < MODEL_GROUPS; g++) {
        char s[RING_ROOM_MAX];
        for (int k = 0; k < RING_ROOM_MAX; k++)
            s[k] = "ab\0Zz"[rnd() % 5];
        for (int len = 1; len <= RING_ROOM_MAX; len++) {
            int dup = 0;
            for (int j = 0; j < nnames && !dup; j++)
                dup = mr[j].len == len && memcmp(mr[j].name, s, (size_t)len) == 0;
            if (dup)
                continue;
            struct model_room *m = &mr[nnames++];
            memset(m, 0, sizeof *m);
            memcpy(m->name, s, (size_t)len);
            m->len = (uint8_t)len;
            m->idx = -1;
        }
    }
}

/*
 * Every name against the model. Plain tests with ck_abort_msg on a
 * mismatch: each passing ck_assert costs Check a write (its mark point),
 * and this runs 12 500 times over ~750 names.
 */
static void model_check_all(uint64_t tail, uint64_t reclaimed)
{
    uint32_t occupied = 0;
    for (int j = 0; j < nnames; j++) {
        const struct model_room *m = &mr[j];
        int got = room_table_find(t, m->name, m->len);
        if (m->idx < 0) {
            if (got != -ENOENT)
                ck_abort_msg("name %d found at %d, the model has it gone", j, got);
            continue;
        }
        if (got != m->idx)
            ck_abort_msg("name %d: find %d, model %d", j, got, m->idx);
        int online = room_table_online(t, (uint32_t)got);
        if (online != m->count)
            ck_abort_msg("name %d: online %d, model %d", j, online, m->count);
        const struct room_entry *e = room_table_entry(t, (uint32_t)got);
        if (e->last_pos != m->last_pos || e->last_id != m->last_id)
            ck_abort_msg("name %d: head %llu/%llu, model %llu/%llu", j,
                         (unsigned long long)e->last_pos, (unsigned long long)e->last_id,
                         (unsigned long long)m->last_pos, (unsigned long long)m->last_id);
        int complete = m->unsure_below == 0 || m->unsure_below <= tail;
        if (room_table_chain_complete(t, (uint32_t)got, tail) != complete)
            ck_abort_msg("name %d: chain_complete at tail %llu should be %d", j,
                         (unsigned long long)tail, complete);
        occupied += m->count > 0;
    }
    ck_assert_uint_eq(room_table_occupied(t), occupied);
    ck_assert_uint_eq(t->reclaimed, reclaimed);
}

START_TEST(random_against_model)
{
    rng_state = 0x9E3779B97F4A7C15ull;
    make_table(MODEL_CAP);
    model_names();
    ck_assert_int_gt(nnames, 2 * (int)MODEL_CAP);
    for (uint32_t i = 0; i < MODEL_CAP; i++)
        model_owner[i] = -1;
    uint32_t used = 0;
    uint64_t tail = 0, head = 0, next_id = 1, horizon = 0, reclaimed = 0;
    uint64_t nospc = 0, resets = 0;

    for (int op = 1; op <= MODEL_OPS; op++) {
        /* Skewed toward the first names, so some rooms stay busy. */
        int j = (int)(rnd() % 4 == 0 ? rnd() % (uint64_t)nnames : rnd() % (MODEL_CAP / 2));
        struct model_room *m = &mr[j];
        uint64_t what = rnd() % 10000;
        if (what < 4500) {
            int n = (int)(rnd() % 3);
            int got = room_table_join(t, m->name, m->len, n, tail);
            if (m->idx >= 0) {
                ck_assert_int_eq(got, m->idx);
                m->count += n;
                continue;
            }
            int empty = used < MODEL_CAP;
            for (uint32_t i = 0; i < MODEL_CAP && !empty; i++)
                empty = mr[model_owner[i]].count == 0;
            if (!empty) {
                ck_assert_int_eq(got, -ENOSPC);
                nospc++;
                continue;
            }
            ck_assert_int_ge(got, 0);
            ck_assert_int_lt(got, (int)MODEL_CAP);
            int old = model_owner[got];
            if (old < 0) {
                ck_assert_uint_lt(used, MODEL_CAP);
                used++;
            } else {
                /* Only an empty room gives up its entry. */
                struct model_room *o = &mr[old];
                ck_assert_int_eq(o->count, 0);
                if (o->last_id != 0 && o->last_pos >= tail && o->last_pos + 1 > horizon)
                    horizon = o->last_pos + 1;
                o->idx = -1;
                reclaimed++;
            }
            model_owner[got] = j;
            m->idx = got;
            m->count = n;
            m->last_pos = RING_NO_POS;
            m->last_id = 0;
            m->unsure_below = horizon > tail ? horizon : 0;
        } else if (what < 7800) {
            if (m->idx < 0)
                continue;
            room_table_leave(t, (uint32_t)m->idx);
            if (m->count > 0)
                m->count--;
        } else if (what < 9980) {
            if (m->idx < 0)
                continue;
            /* A message: the ring grows by one entry, the tail follows at a distance. */
            head += 8 * (1 + rnd() % 64);
            room_table_note_message(t, (uint32_t)m->idx, head, next_id);
            m->last_pos = head;
            m->last_id = next_id++;
            if (head > 8192 && tail < head - 8192)
                tail = head - 8192 + 8 * (rnd() % 16);
        } else if (what < 9984) {
            room_table_request_reset(t);
            room_table_settle(t);
            for (int k = 0; k < nnames; k++)
                mr[k].count = 0;
            resets++;
        } else {
            ck_assert_int_eq(room_table_join(t, m->name, 0, 1, tail), -EINVAL);
            ck_assert_int_eq(room_table_join(t, m->name, RING_ROOM_MAX + 1, 1, tail), -EINVAL);
        }
        if (op % 8 == 0)
            model_check_all(tail, reclaimed);
    }
    model_check_all(tail, reclaimed);
    /* The workload did what it is for. */
    ck_assert_uint_eq(used, MODEL_CAP);
    ck_assert_uint_gt(reclaimed, 1000);
    ck_assert_uint_gt(nospc, 10);
    ck_assert_uint_gt(resets, 10);
    ck_assert_uint_gt(horizon, 0);
    free_table();
}
END_TEST

/* ---- sizes ---------------------------------------------------------------- */

static size_t expected_size(uint32_t cap)
{
    size_t buckets = 1;
    while (buckets < cap)
        buckets *= 2;
    size_t off = sizeof(struct room_table) + buckets * sizeof(uint32_t);
    off = (off + 63) & ~(size_t)63;
    return off + (size_t)cap * sizeof(struct room_entry);
}

START_TEST(small_caps)
{
    static const uint32_t caps[] = { 1, 2, 3, 1000 };
    uint32_t cap = caps[_i];
    ck_assert_uint_eq(room_table_size(cap), expected_size(cap));
    make_table(cap);
    char name[16];
    for (uint32_t k = 0; k < cap; k++) {
        name_of(name, sizeof name, (int)k);
        int i = join(name, 1, 0);
        ck_assert_int_ge(i, 0);
        ck_assert_int_lt(i, (int)cap);
    }
    ck_assert_uint_eq(room_table_occupied(t), cap);
    ck_assert_int_eq(join("one-too-many", 1, 0), -ENOSPC);
    /* Every room is found, at distinct indexes. */
    static unsigned char seen[1000];
    memset(seen, 0, sizeof seen);
    for (uint32_t k = 0; k < cap; k++) {
        name_of(name, sizeof name, (int)k);
        int i = find(name);
        ck_assert_int_ge(i, 0);
        ck_assert(!seen[i]);
        seen[i] = 1;
    }
    name_of(name, sizeof name, (int)(cap - 1));
    int last = find(name);
    room_table_leave(t, (uint32_t)last);
    ck_assert_int_eq(join("one-too-many", 1, 0), last);
    ck_assert_int_eq(find(name), -ENOENT);
    ck_assert_uint_eq(t->reclaimed, 1);
    free_table();
}
END_TEST

START_TEST(max_cap)
{
    ck_assert_uint_eq(sizeof(struct room_entry), 72);
    size_t size = room_table_size(ROOM_TABLE_MAX);
    ck_assert_uint_eq(size, expected_size(ROOM_TABLE_MAX));
    /* 72 MiB of entries, 4 MiB of buckets, the header rounded up to 64. */
    ck_assert_uint_ge(size, (size_t)76 << 20);
    ck_assert_uint_le(size, ((size_t)76 << 20) + 128);
    make_table(ROOM_TABLE_MAX);
    ck_assert_int_eq(find("lobby"), -ENOENT);
    int a = join("lobby", 2, 0);
    ck_assert_int_ge(a, 0);
    ck_assert_int_eq(find("lobby"), a);
    room_table_leave(t, (uint32_t)a);
    ck_assert_int_eq(room_table_online(t, (uint32_t)a), 1);
    /* Fill it: the last entries must lie inside the size (the guard checks). */
    char name[16];
    for (uint32_t k = 1; k < ROOM_TABLE_MAX; k++) {
        name_of(name, sizeof name, (int)k);
        ck_assert(join(name, 1, 0) >= 0);
    }
    ck_assert_int_eq(join("one-too-many", 1, 0), -ENOSPC);
    name_of(name, sizeof name, ROOM_TABLE_MAX - 1);
    int last = find(name);
    ck_assert_int_ge(last, 0);
    ck_assert_uint_eq(room_table_occupied(t), ROOM_TABLE_MAX);
    ck_assert_int_eq(find("lobby"), a);
    free_table();
}
END_TEST

/* While held, a new name only gets a never-used entry, never an empty room's. */
START_TEST(hold_reclaim)
{
    make_table(2);
    int a = join("a", 1, 0);
    ck_assert_int_ge(join("b", 1, 0), 0);
    room_table_leave(t, (uint32_t)a);           /* a reads empty */
    room_table_hold_reclaim(t, 1);
    ck_assert_int_eq(join("c", 1, 0), -ENOSPC);
    ck_assert_int_eq(find("a"), a);             /* a keeps its entry */
    room_table_hold_reclaim(t, 0);
    ck_assert_int_eq(join("c", 1, 0), a);
    ck_assert_int_eq(find("a"), -ENOENT);
    free_table();
}
END_TEST

Suite *room_table_suite(void)
{
    Suite *s = suite_create("room_table");
    TCase *tc = tcase_create("basics");
    tcase_add_test(tc, join_find_leave);
    tcase_add_test(tc, hold_reclaim);
    tcase_add_test(tc, name_bounds);
    tcase_add_test(tc, zero_join_makes_entry_only);
    tcase_add_test(tc, note_message_sets_head);
    tcase_add_test(tc, reset_and_settle);
    suite_add_tcase(s, tc);

    tc = tcase_create("reclaim");
    tcase_add_test(tc, full_then_reclaim);
    tcase_add_test(tc, hand_prefers_history_gone);
    tcase_add_test(tc, reclaim_in_ring_raises_horizon);
    suite_add_tcase(s, tc);

    tc = tcase_create("model");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, random_against_model);
    suite_add_tcase(s, tc);

    tc = tcase_create("sizes");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, small_caps, 0, 4);
    tcase_add_test(tc, max_cap);
    suite_add_tcase(s, tc);
    return s;
}

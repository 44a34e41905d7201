/*
 * check_chat_rooms: one worker's rooms (server/chat_rooms.c): thousands of
 * rooms through several doublings of the hash, every one found by name and
 * on the `all` list exactly once, freed in random order; and
 * chat_rooms_sync() against a real room table: after a reset the table
 * counts are exactly the local members, each index names its room, a sync
 * without a new reset changes nothing, and two workers re-add their own.
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_rooms.h"
#include "room_table.h"
#include "siphash.h"

#define NROOMS 5000
#define SMALL_STREAM 64

static struct chat_rooms rs;

static void setup(void)
{
    ck_assert_int_eq(chat_rooms_init(&rs), 0);
}

static void teardown(void)
{
    chat_rooms_fini(&rs);
    ck_assert_ptr_null(rs.all);
}

/*
 * Room K's name: its number padded with dots and a letter to 1..32 bytes.
 * A bare number ("12") is a prefix of other rooms' names ("120....x").
 */
static size_t room_name(char *buf, int k)
{
    char num[16];
    int n = snprintf(num, sizeof num, "%d", k);
    size_t len = (size_t)n + (size_t)(k % (RING_ROOM_MAX - n + 1));
    memset(buf, '.', len);
    memcpy(buf, num, (size_t)n);
    if (len > (size_t)n)
        buf[len - 1] = (char)('a' + k % 26);
    return len;
}

static struct local_room *room_k[NROOMS];

static void make_rooms(int n)
{
    char name[RING_ROOM_MAX];
    for (int k = 0; k < n; k++) {
        size_t len = room_name(name, k);
        struct local_room *lr = chat_rooms_get(&rs, name, len, SMALL_STREAM);
        ck_assert_ptr_nonnull(lr);
        ck_assert_uint_eq(lr->name_len, len);
        ck_assert_mem_eq(lr->name, name, len);
        ck_assert_int_eq(lr->name[len], '\0');
        ck_assert_uint_eq(lr->idx, ROOM_NONE);
        ck_assert_int_eq(lr->presence_sent, -1);
        ck_assert_uint_eq(chat_room_members(lr), 0);
        ck_assert_uint_eq(rs.count, (uint32_t)k + 1);
        room_k[k] = lr;
    }
}

/* Exactly the rooms K with alive[K] are found and on the list, once each. */
static void check_rooms(int n, const unsigned char *alive)
{
    static unsigned char seen[NROOMS];
    memset(seen, 0, sizeof seen);
    uint32_t live = 0;
    char name[RING_ROOM_MAX];
    for (int k = 0; k < n; k++) {
        size_t len = room_name(name, k);
        struct local_room *lr = chat_rooms_find(&rs, name, len);
        if (!alive[k]) {
            if (lr != NULL)
                ck_abort_msg("room %d found after its free", k);
            continue;
        }
        if (lr != room_k[k])
            ck_abort_msg("room %d: find gives %p, made %p", k, (void *)lr, (void *)room_k[k]);
        live++;
    }
    ck_assert_uint_eq(rs.count, live);
    uint32_t listed = 0;
    const struct local_room *prev = NULL;
    for (struct local_room *lr = rs.all; lr != NULL; lr = lr->next) {
        if (lr->prev != prev)
            ck_abort_msg("list: back link broken after %u rooms", listed);
        int k = atoi(lr->name);
        if (k < 0 || k >= n || room_k[k] != lr || !alive[k] || seen[k])
            ck_abort_msg("list: room %d unexpected (or twice)", k);
        seen[k] = 1;
        prev = lr;
        if (++listed > live)
            ck_abort_msg("list longer than the count");
    }
    ck_assert_uint_eq(listed, live);
}

START_TEST(many_rooms_found_and_listed)
{
    uint32_t buckets0 = rs.mask + 1;
    make_rooms(NROOMS);
    /* Several doublings: the hash keeps no more rooms than buckets. */
    ck_assert_uint_ge(rs.mask + 1, NROOMS);
    ck_assert_uint_ge(rs.mask + 1, buckets0 * 256);
    ck_assert_uint_eq((rs.mask + 1) & rs.mask, 0);
    static unsigned char alive[NROOMS];
    memset(alive, 1, sizeof alive);
    check_rooms(NROOMS, alive);

    /* Getting an existing name gives the same room. */
    char name[RING_ROOM_MAX + 2];
    for (int k = 0; k < NROOMS; k += 97) {
        size_t len = room_name(name, k);
        ck_assert_ptr_eq(chat_rooms_get(&rs, name, len, SMALL_STREAM), room_k[k]);
    }
    ck_assert_uint_eq(rs.count, NROOMS);

    /* Names that are not rooms: a prefix, an extension, bad lengths. */
    size_t len = room_name(name, 4999);
    ck_assert_uint_gt(len, 5);
    ck_assert_ptr_null(chat_rooms_find(&rs, name, len - 1));
    name[len] = 'z';
    ck_assert_ptr_null(chat_rooms_find(&rs, name, len + 1));
    memset(name, 'q', sizeof name);
    ck_assert_ptr_null(chat_rooms_get(&rs, name, 0, SMALL_STREAM));
    ck_assert_ptr_null(chat_rooms_get(&rs, name, RING_ROOM_MAX + 1, SMALL_STREAM));
    struct local_room *full = chat_rooms_get(&rs, name, RING_ROOM_MAX, SMALL_STREAM);
    ck_assert_ptr_nonnull(full);
    ck_assert_ptr_eq(chat_rooms_find(&rs, name, RING_ROOM_MAX), full);
    ck_assert_ptr_null(chat_rooms_find(&rs, name, RING_ROOM_MAX - 1));
    ck_assert_uint_eq(rs.count, NROOMS + 1);
    chat_rooms_free(&rs, full);
    check_rooms(NROOMS, alive);
}
END_TEST

/*
 * A name and its own prefix in one bucket (keys fixed for the test, the
 * pair searched for): find must compare lengths, not just bytes.
 */
START_TEST(prefix_in_same_bucket)
{
    rs.k0 = 0x0123456789abcdefull;
    rs.k1 = 0xfedcba9876543210ull;
    char name[RING_ROOM_MAX];
    size_t plen = 0;
    for (int tries = 0; plen == 0; tries++) {
        ck_assert_int_lt(tries, 1000);
        snprintf(name, sizeof name, "collide-%d-", tries);
        memset(name + strlen(name), 'x', RING_ROOM_MAX - strlen(name));
        uint32_t full = (uint32_t)siphash24(rs.k0, rs.k1, name, RING_ROOM_MAX) & rs.mask;
        for (size_t p = 1; p < RING_ROOM_MAX && plen == 0; p++)
            if (((uint32_t)siphash24(rs.k0, rs.k1, name, p) & rs.mask) == full)
                plen = p;
    }
    struct local_room *full = chat_rooms_get(&rs, name, RING_ROOM_MAX, SMALL_STREAM);
    ck_assert_ptr_nonnull(full);
    ck_assert_ptr_null(chat_rooms_find(&rs, name, plen));
    struct local_room *pre = chat_rooms_get(&rs, name, plen, SMALL_STREAM);
    ck_assert_ptr_nonnull(pre);
    ck_assert_ptr_ne(pre, full);
    ck_assert_uint_eq(pre->name_len, plen);
    ck_assert_ptr_eq(chat_rooms_find(&rs, name, plen), pre);
    ck_assert_ptr_eq(chat_rooms_find(&rs, name, RING_ROOM_MAX), full);
    /* Freeing one leaves the other reachable, whichever is first in the chain. */
    chat_rooms_free(&rs, pre);
    ck_assert_ptr_eq(chat_rooms_find(&rs, name, RING_ROOM_MAX), full);
    ck_assert_ptr_null(chat_rooms_find(&rs, name, plen));
    pre = chat_rooms_get(&rs, name, plen, SMALL_STREAM);
    chat_rooms_free(&rs, full);
    ck_assert_ptr_eq(chat_rooms_find(&rs, name, plen), pre);
    ck_assert_ptr_null(chat_rooms_find(&rs, name, RING_ROOM_MAX));
    ck_assert_uint_eq(rs.count, 1);
}
END_TEST

static uint64_t rng_state;

static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

START_TEST(free_in_random_order)
{
    make_rooms(NROOMS);
    static int order[NROOMS];
    static unsigned char alive[NROOMS];
    for (int k = 0; k < NROOMS; k++)
        order[k] = k;
    rng_state = 0x9E3779B97F4A7C15ull;
    for (int k = NROOMS - 1; k > 0; k--) {
        int j = (int)(rnd() % (uint64_t)(k + 1));
        int tmp = order[k];
        order[k] = order[j];
        order[j] = tmp;
    }
    memset(alive, 1, sizeof alive);
    char name[RING_ROOM_MAX];
    for (int i = 0; i < NROOMS; i++) {
        int k = order[i];
        chat_rooms_free(&rs, room_k[k]);
        alive[k] = 0;
        room_k[k] = NULL;
        size_t len = room_name(name, k);
        ck_assert_ptr_null(chat_rooms_find(&rs, name, len));
        if (i % 250 == 0 || i > NROOMS - 20)
            check_rooms(NROOMS, alive);
    }
    ck_assert_uint_eq(rs.count, 0);
    ck_assert_ptr_null(rs.all);
    /* The names can be made again, as new rooms. */
    make_rooms(100);
    memset(alive, 0, sizeof alive);
    memset(alive, 1, 100);
    check_rooms(NROOMS, alive);
}
END_TEST

/* ---- chat_rooms_sync against a room table --------------------------------- */

/*
 * The table and a second worker's rooms belong to the fixture, so a failed
 * assertion (which leaves the test body early) leaks nothing under
 * CK_FORK=no with LeakSanitizer.
 */
static struct room_table *t;
static struct chat_rooms other;
static struct stream_cursor cur[2];

static void sync_setup(void)
{
    setup();
    ck_assert_int_eq(chat_rooms_init(&other), 0);
    memset(cur, 0, sizeof cur);
    t = NULL;
}

static void sync_teardown(void)
{
    for (int k = 0; k < 2; k++)
        if (cur[k].s != NULL)
            stream_detach(&cur[k]);
    chat_rooms_fini(&other);
    teardown();
    free(t);
    t = NULL;
}

static void make_table(uint32_t cap)
{
    size_t bytes = (room_table_size(cap) + 63) & ~(size_t)63;
    t = aligned_alloc(64, bytes);
    ck_assert_ptr_nonnull(t);
    room_table_init(t, cap, 0x1122334455667788ull, 0x99aabbccddeeff00ull);
}

static struct local_room *local(struct chat_rooms *w, const char *name, uint32_t replaying)
{
    struct local_room *lr = chat_rooms_get(w, name, strlen(name), SMALL_STREAM);
    ck_assert_ptr_nonnull(lr);
    lr->replaying = replaying;
    return lr;
}

static int table_count(const char *name)
{
    int i = room_table_find(t, name, strlen(name));
    return i < 0 ? -1 : room_table_online(t, (uint32_t)i);
}

/* LR's index names LR's room and holds WANT members. */
static void check_indexed(const struct local_room *lr, int want)
{
    ck_assert_uint_ne(lr->idx, ROOM_NONE);
    ck_assert(room_table_is(t, lr->idx, lr->name, lr->name_len));
    ck_assert_int_eq(room_table_find(t, lr->name, lr->name_len), (int)lr->idx);
    ck_assert_int_eq(room_table_online(t, lr->idx), want);
}

START_TEST(sync_after_reset)
{
    make_table(64);
    /* Stale counts from before: ours, and a room only another worker has. */
    ck_assert_int_ge(room_table_join(t, "lobby", 5, 10, 0), 0);
    ck_assert_int_ge(room_table_join(t, "empty", 5, 4, 0), 0);
    ck_assert_int_ge(room_table_join(t, "theirs", 6, 4, 0), 0);

    struct local_room *lobby = local(&rs, "lobby", 3);
    struct local_room *dev = local(&rs, "dev", 0);
    struct local_room *empty = local(&rs, "empty", 0);
    /* Live members are the stream's cursors. */
    stream_attach(&dev->stream, &cur[0]);
    stream_attach(&dev->stream, &cur[1]);
    dev->replaying = 1;
    ck_assert_uint_eq(chat_room_members(dev), 3);
    ck_assert_uint_eq(chat_room_members(lobby), 3);

    /* Same epoch as the table, nothing asked: the first sync does nothing. */
    chat_rooms_sync(&rs, t, 0);
    ck_assert_int_eq(table_count("lobby"), 10);
    ck_assert_int_eq(table_count("dev"), -1);
    ck_assert_uint_eq(lobby->idx, ROOM_NONE);

    room_table_request_reset(t);
    chat_rooms_sync(&rs, t, 0);
    ck_assert_uint_eq(rs.epoch, room_table_settle(t));
    check_indexed(lobby, 3);
    check_indexed(dev, 3);
    /* No members here: not added, and its index reads as empty. */
    ck_assert_uint_eq(empty->idx, ROOM_NONE);
    ck_assert_int_eq(table_count("empty"), 0);
    ck_assert_int_eq(table_count("theirs"), 0);
    ck_assert_uint_eq(room_table_occupied(t), 2);

    /* A second sync without a reset changes nothing, even if members changed here. */
    uint32_t lobby_idx = lobby->idx, dev_idx = dev->idx, epoch = rs.epoch;
    lobby->replaying = 7;
    chat_rooms_sync(&rs, t, 0);
    ck_assert_uint_eq(rs.epoch, epoch);
    ck_assert_uint_eq(lobby->idx, lobby_idx);
    ck_assert_uint_eq(dev->idx, dev_idx);
    ck_assert_int_eq(room_table_online(t, lobby_idx), 3);
    ck_assert_int_eq(room_table_online(t, dev_idx), 3);
    ck_assert_uint_eq(room_table_occupied(t), 2);

    /* The other worker syncs later: it adds its own, ours stay as they are. */
    struct local_room *theirs = local(&other, "theirs", 4);
    struct local_room *shared = local(&other, "lobby", 2);
    chat_rooms_sync(&other, t, 0);
    ck_assert_uint_eq(other.epoch, epoch);
    check_indexed(theirs, 4);
    ck_assert_uint_eq(shared->idx, lobby_idx);
    ck_assert_int_eq(room_table_online(t, lobby_idx), 5);
    ck_assert_int_eq(room_table_online(t, dev_idx), 3);
    ck_assert_uint_eq(room_table_occupied(t), 3);

    /* Another reset: both add back exactly their members again. */
    lobby->replaying = 3;
    room_table_request_reset(t);
    chat_rooms_sync(&other, t, 0);
    chat_rooms_sync(&rs, t, 0);
    ck_assert_uint_eq(rs.epoch, other.epoch);
    ck_assert_uint_gt(rs.epoch, epoch);
    ck_assert_int_eq(room_table_online(t, lobby_idx), 5);
    ck_assert_int_eq(room_table_online(t, dev_idx), 3);
    check_indexed(theirs, 4);
    ck_assert_uint_eq(room_table_occupied(t), 3);
}
END_TEST

/* A table too small for every room: the ones left out keep ROOM_NONE. */
START_TEST(sync_table_full)
{
    make_table(2);
    struct local_room *lr[3];
    lr[0] = local(&rs, "a", 1);
    lr[1] = local(&rs, "b", 2);
    lr[2] = local(&rs, "c", 3);
    room_table_request_reset(t);
    chat_rooms_sync(&rs, t, 0);
    int indexed = 0;
    for (int k = 0; k < 3; k++) {
        if (lr[k]->idx == ROOM_NONE)
            continue;
        indexed++;
        check_indexed(lr[k], (int)chat_room_members(lr[k]));
    }
    ck_assert_int_eq(indexed, 2);
    ck_assert_uint_eq(room_table_occupied(t), 2);
}
END_TEST

/*
 * chat_rooms.h: "A room the table cannot take keeps ROOM_NONE as its index
 * (it reads as empty) until the next sync." Once the table has room again,
 * the next sync must count the room's members; today a sync without a new
 * reset returns before looking at any room.
 */
START_TEST(sync_retries_room_left_out)
{
    make_table(1);
    struct local_room *theirs = local(&other, "theirs", 1);
    struct local_room *ours = local(&rs, "ours", 2);
    room_table_request_reset(t);
    chat_rooms_sync(&other, t, 0);     /* does the reset, takes the only entry */
    chat_rooms_sync(&rs, t, 0);
    check_indexed(theirs, 1);
    ck_assert_uint_eq(ours->idx, ROOM_NONE);

    /* Their member leaves: the entry is free for our room. */
    room_table_leave(t, theirs->idx);
    theirs->replaying = 0;
    ck_assert_uint_eq(room_table_occupied(t), 0);
    chat_rooms_sync(&rs, t, 0);
    ck_assert_msg(ours->idx != ROOM_NONE,
                  "a room left out of the table is never retried without a new reset");
    check_indexed(ours, 2);
}
END_TEST

Suite *chat_rooms_suite(void)
{
    Suite *s = suite_create("chat_rooms");
    TCase *tc = tcase_create("hash");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, many_rooms_found_and_listed);
    tcase_add_test(tc, free_in_random_order);
    tcase_add_test(tc, prefix_in_same_bucket);
    suite_add_tcase(s, tc);

    tc = tcase_create("sync");
    tcase_add_checked_fixture(tc, sync_setup, sync_teardown);
    tcase_add_test(tc, sync_after_reset);
    tcase_add_test(tc, sync_table_full);
    tcase_add_test(tc, sync_retries_room_left_out);
    suite_add_tcase(s, tc);
    return s;
}

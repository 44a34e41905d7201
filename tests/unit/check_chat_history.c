/*
 * chat_history: the per-worker index of recent message positions. Each test
 * feeds synthetic ring entries and checks which positions a join would
 * replay, and when the index must refuse (so the caller scans the ring).
 */
#include <check.h>
#include <string.h>

#include "chat_history.h"

static struct ring_entry entry(uint64_t id, int kind, int slot, const char *room)
{
    struct ring_entry e;
    memset(&e, 0, sizeof e);
    e.id = id;
    e.kind = (uint8_t)kind;
    e.room_slot = (uint64_t)slot;
    e.room_len = (uint8_t)strlen(room);
    memcpy(e.room, room, e.room_len);
    return e;
}

/* Note message ID of ROOM in SLOT at position id * 100. */
static void note(struct chat_history *h, uint64_t id, int slot, const char *room)
{
    struct ring_entry e = entry(id, RING_KIND_MESSAGE, slot, room);
    chat_history_note(h, &e, id * 100);
}

static long sel(const struct chat_history *h, int slot, const char *room, int have_since,
                uint64_t since, uint64_t *out)
{
    return chat_history_select(h, slot, room, strlen(room), have_since, since, out);
}

START_TEST(last_messages_oldest_first)
{
    struct chat_history h;
    uint64_t out[4];
    chat_history_init(&h, 4);
    for (uint64_t id = 1; id <= 3; id++)
        note(&h, id, 0, "lobby");
    ck_assert_int_eq(sel(&h, 0, "lobby", 0, 0, out), 3);
    ck_assert_uint_eq(out[0], 100);
    ck_assert_uint_eq(out[2], 300);
    for (uint64_t id = 4; id <= 9; id++)
        note(&h, id, 0, "lobby");
    /* Only the last four, still oldest first, after wrapping the array. */
    ck_assert_int_eq(sel(&h, 0, "lobby", 0, 0, out), 4);
    ck_assert_uint_eq(out[0], 600);
    ck_assert_uint_eq(out[3], 900);
    chat_history_fini(&h);
}
END_TEST

START_TEST(other_kinds_rooms_and_slots_are_apart)
{
    struct chat_history h;
    uint64_t out[4];
    chat_history_init(&h, 4);
    note(&h, 1, 0, "a");
    struct ring_entry presence = entry(2, RING_KIND_PRESENCE, 0, "a");
    chat_history_note(&h, &presence, 200);
    note(&h, 3, 1, "b");
    ck_assert_int_eq(sel(&h, 0, "a", 0, 0, out), 1);
    ck_assert_uint_eq(out[0], 100);
    ck_assert_int_eq(sel(&h, 1, "b", 0, 0, out), 1);
    ck_assert_uint_eq(out[0], 300);
    /* A slot never seen, or asked under another name: the ring must be scanned. */
    ck_assert_int_eq(sel(&h, 2, "c", 0, 0, out), -1);
    ck_assert_int_eq(sel(&h, 0, "b", 0, 0, out), -1);
    chat_history_fini(&h);
}
END_TEST

START_TEST(since_from_a_complete_index)
{
    struct chat_history h;
    uint64_t out[8];
    chat_history_init(&h, 8);
    for (uint64_t id = 10; id <= 14; id++)
        note(&h, id, 3, "ops");
    ck_assert_int_eq(sel(&h, 3, "ops", 1, 12, out), 2);
    ck_assert_uint_eq(out[0], 1300);
    ck_assert_uint_eq(out[1], 1400);
    /* Complete: even a since older than everything is answered from the index. */
    ck_assert_int_eq(sel(&h, 3, "ops", 1, 0, out), 5);
    ck_assert_int_eq(sel(&h, 3, "ops", 1, 14, out), 0);
    chat_history_fini(&h);
}
END_TEST

START_TEST(eviction_limits_what_since_can_answer)
{
    struct chat_history h;
    uint64_t out[4];
    chat_history_init(&h, 4);
    for (uint64_t id = 1; id <= 10; id++)
        note(&h, id, 0, "r");
    /* Holds 7..10: since >= 6 is answerable, older is not. */
    ck_assert_int_eq(sel(&h, 0, "r", 1, 6, out), 4);
    ck_assert_int_eq(sel(&h, 0, "r", 1, 8, out), 2);
    ck_assert_uint_eq(out[0], 900);
    ck_assert_int_eq(sel(&h, 0, "r", 1, 5, out), -1);
    /* The last four are still known exactly. */
    ck_assert_int_eq(sel(&h, 0, "r", 0, 0, out), 4);
    chat_history_fini(&h);
}
END_TEST

START_TEST(slot_reuse_makes_it_incomplete)
{
    struct chat_history h;
    uint64_t out[4];
    chat_history_init(&h, 4);
    note(&h, 5, 1, "x");
    note(&h, 6, 1, "y");            /* slot 1 now belongs to y */
    ck_assert_int_eq(sel(&h, 1, "x", 0, 0, out), -1);
    /* Older y messages may sit in the ring under an earlier life of the slot. */
    ck_assert_int_eq(sel(&h, 1, "y", 0, 0, out), -1);
    ck_assert_int_eq(sel(&h, 1, "y", 1, 0, out), -1);
    /* Since within what is held is still exact. */
    ck_assert_int_eq(sel(&h, 1, "y", 1, 5, out), 1);
    ck_assert_uint_eq(out[0], 600);
    chat_history_fini(&h);
}
END_TEST

START_TEST(zero_history_size)
{
    struct chat_history h;
    uint64_t out[1];
    chat_history_init(&h, 0);
    note(&h, 1, 0, "r");
    ck_assert_int_eq(sel(&h, 0, "r", 0, 0, out), 0);
    ck_assert_int_eq(sel(&h, 0, "r", 1, 0, out), -1);
    chat_history_fini(&h);
}
END_TEST

Suite *chat_history_suite(void)
{
    Suite *s = suite_create("chat_history");
    TCase *tc = tcase_create("select");
    tcase_add_test(tc, last_messages_oldest_first);
    tcase_add_test(tc, other_kinds_rooms_and_slots_are_apart);
    tcase_add_test(tc, since_from_a_complete_index);
    tcase_add_test(tc, eviction_limits_what_since_can_answer);
    tcase_add_test(tc, slot_reuse_makes_it_incomplete);
    tcase_add_test(tc, zero_history_size);
    suite_add_tcase(s, tc);
    return s;
}

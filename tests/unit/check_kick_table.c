/*
 * kick_table: the shm table of POST /api/disconnect requests. Posting
 * names the slots that must act; each slot finds, in seq order, only the
 * requests that name it and that are still posted; acks count and clear
 * bits only on the request they read (never on one freed and reused);
 * settling ignores slots no longer live; the table refuses a 17th request
 * and a slot that restarts frees what its predecessor left.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "kick_table.h"

static struct kick_table *fresh(void)
{
    struct kick_table *t = calloc(1, sizeof *t);
    ck_assert_ptr_nonnull(t);
    return t;
}

static struct kick_slots slots_of(const int *s, int n)
{
    struct kick_slots k;
    memset(&k, 0, sizeof k);
    for (int i = 0; i < n; i++)
        kick_slots_add(&k, s[i]);
    return k;
}

START_TEST(post_next_ack_settle)
{
    struct kick_table *t = fresh();
    int who_s[] = { 1, 70, 127 };
    struct kick_slots who = slots_of(who_s, 3);
    uint64_t seq;
    int idx = kick_post(t, 0, &who, "alice", 5, &seq);
    ck_assert_int_ge(idx, 0);
    ck_assert_uint_eq(seq, 1);
    ck_assert_uint_eq(kick_last_seq(t), 1);

    /* The poster (slot 0) and slot 2 are not named: nothing for them. */
    struct kick_req r;
    uint64_t seen0 = 0, seen2 = 0;
    ck_assert_int_eq(kick_next(t, 0, &seen0, &r), -ENOENT);
    ck_assert_int_eq(kick_next(t, 2, &seen2, &r), -ENOENT);
    ck_assert_uint_eq(seen2, 1);
    /* Slot 70 finds it once. */
    uint64_t seen = 0;
    ck_assert_int_eq(kick_next(t, 70, &seen, &r), idx);
    ck_assert_uint_eq(r.seq, seq);
    ck_assert_uint_eq(r.user_len, 5);
    ck_assert_mem_eq(r.user, "alice", 5);
    ck_assert_int_eq(r.origin, 0);
    ck_assert_int_eq(kick_next(t, 70, &seen, &r), -ENOENT);

    struct kick_slots live = who;
    kick_slots_add(&live, 0);
    uint32_t closed = 99;
    ck_assert_int_eq(kick_settled(t, idx, seq, &live, &closed), 0);
    ck_assert_uint_eq(closed, 0);
    ck_assert_int_eq(kick_ack(t, idx, seq, 70, 3), 1);
    ck_assert_int_eq(kick_ack(t, idx, seq, 1, 2), 1);
    ck_assert_int_eq(kick_settled(t, idx, seq, &live, &closed), 0);   /* 127 is left */
    ck_assert_uint_eq(closed, 5);
    /* Slot 127 dies: it is no longer waited for. */
    int live_s[] = { 0, 1, 70 };
    live = slots_of(live_s, 3);
    ck_assert_int_eq(kick_settled(t, idx, seq, &live, &closed), 1);
    ck_assert_uint_eq(closed, 5);
    kick_free(t, idx, seq);
    ck_assert_int_eq(kick_settled(t, idx, seq, &live, &closed), -ENOENT);
    free(t);
}
END_TEST

START_TEST(freed_requests_are_skipped_and_never_counted_into)
{
    struct kick_table *t = fresh();
    int one[] = { 1 };
    struct kick_slots who = slots_of(one, 1);
    uint64_t s1, s2, s3;
    int a = kick_post(t, 0, &who, "a", 1, &s1);
    int b = kick_post(t, 0, &who, "bb", 2, &s2);
    ck_assert_int_ne(a, b);
    kick_free(t, a, s1);
    /* Reuse of a's entry by a later request. */
    int c = kick_post(t, 0, &who, "ccc", 3, &s3);
    ck_assert_int_eq(c, a);
    ck_assert_uint_lt(s2, s3);
    /* An ack for the freed s1 lands nowhere. */
    ck_assert_int_eq(kick_ack(t, a, s1, 1, 7), 0);
    struct kick_slots live = who;
    uint32_t closed;
    ck_assert_int_eq(kick_settled(t, c, s3, &live, &closed), 0);
    ck_assert_uint_eq(closed, 0);
    /* Slot 1 sees b then c, in seq order, whatever their entries. */
    struct kick_req r;
    uint64_t seen = 0;
    ck_assert_int_eq(kick_next(t, 1, &seen, &r), b);
    ck_assert_mem_eq(r.user, "bb", 2);
    ck_assert_int_eq(kick_next(t, 1, &seen, &r), c);
    ck_assert_mem_eq(r.user, "ccc", 3);
    ck_assert_int_eq(kick_next(t, 1, &seen, &r), -ENOENT);
    ck_assert_uint_eq(seen, s3);
    free(t);
}
END_TEST

START_TEST(full_table_bad_input_and_a_restarted_origin)
{
    struct kick_table *t = fresh();
    int one[] = { 1 };
    struct kick_slots who = slots_of(one, 1);
    uint64_t seq;
    char user[KICK_USER_MAX + 1];
    memset(user, 'u', sizeof user);
    ck_assert_int_eq(kick_post(t, 0, &who, user, 0, &seq), -EINVAL);
    ck_assert_int_eq(kick_post(t, 0, &who, user, KICK_USER_MAX + 1, &seq), -EINVAL);
    ck_assert_int_eq(kick_post(t, -1, &who, user, 1, &seq), -EINVAL);
    ck_assert_int_eq(kick_post(t, KICK_SLOT_WORDS * 64, &who, user, 1, &seq), -EINVAL);
    for (int i = 0; i < KICK_REQS; i++)
        ck_assert_int_ge(kick_post(t, i % 2 ? 5 : 6, &who, user, KICK_USER_MAX, &seq), 0);
    ck_assert_int_eq(kick_post(t, 6, &who, user, 1, &seq), -EBUSY);
    /* Slot 5 restarts: its half of the table is free again. */
    kick_free_origin(t, 5);
    for (int i = 0; i < KICK_REQS / 2; i++)
        ck_assert_int_ge(kick_post(t, 6, &who, user, 1, &seq), 0);
    ck_assert_int_eq(kick_post(t, 6, &who, user, 1, &seq), -EBUSY);
    ck_assert_int_eq(kick_ack(t, -1, seq, 1, 1), 0);
    ck_assert_int_eq(kick_ack(t, KICK_REQS, seq, 1, 1), 0);
    ck_assert_int_eq(kick_ack(t, 0, t->req[0].seq, KICK_SLOT_WORDS * 64, 1), 0);
    free(t);
}
END_TEST

Suite *kick_table_suite(void)
{
    Suite *s = suite_create("kick_table");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, post_next_ack_settle);
    tcase_add_test(tc, freed_requests_are_skipped_and_never_counted_into);
    tcase_add_test(tc, full_table_bad_input_and_a_restarted_origin);
    suite_add_tcase(s, tc);
    return s;
}

/*
 * check_cluster_gate: what workers ask of the cluster bridge
 * (server/cluster_gate.c), on a real shm segment with an outbox.
 *
 * The outbox must never overwrite what Redis has not confirmed: the tests
 * fill it until it refuses, check that every entry from out_done on is
 * still readable and whole, move out_done as the bridge would and fill it
 * again, many times round the ring with entries of varied sizes.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "cluster_gate.h"
#include "lock.h"
#include "ring.h"
#include "shm.h"

#define OUTBOX (64 * 1024)

static struct shm_segment *seg;

static void setup(void)
{
    char label[64], err[256] = "";
    snprintf(label, sizeof label, "wschat-gatetest-%d", (int)getpid());
    seg = shm_create(label, 1 << 20, 64, OUTBOX, err, sizeof err);
    ck_assert_msg(seg != NULL, "shm_create: %s", err);
    ck_assert_ptr_nonnull(shm_outbox(seg));
    seg->cluster.on = 1;
}

static void teardown(void)
{
    shm_destroy(seg);
    seg = NULL;
}

static void set_up(uint32_t v)
{
    __atomic_store_n(&seg->cluster.up, v, __ATOMIC_RELEASE);
}

static void set_done(uint64_t pos)
{
    __atomic_store_n(&seg->cluster.out_done, pos, __ATOMIC_RELEASE);
}

/* Queue under the lock, as a worker does. */
static int queue(const char *room, const char *type, const char *body, size_t body_len)
{
    ck_assert_int_eq(lock_acquire(&seg->lock), 0);
    int rc = cluster_gate_queue(seg, RING_KIND_MESSAGE, room, strlen(room), type, body,
                                body_len);
    lock_release(&seg->lock);
    return rc;
}

/* Body N of SIZE bytes: its number, then a pattern derived from it. */
static size_t make_body(char *out, uint32_t n, size_t size)
{
    int k = snprintf(out, size + 1, "#%u:", n);
    for (size_t i = (size_t)k; i < size; i++)
        out[i] = (char)('a' + (n + i) % 26);
    return size;
}

/* Read the entry at *pos and check it is body N (type "msg", room "r"). */
static void expect_entry(uint64_t *pos, uint32_t n, size_t size)
{
    static uint8_t buf[OUTBOX];
    static char want[OUTBOX];
    struct ring_entry meta;
    ssize_t len = ring_read(shm_outbox(seg), pos, &meta, buf, sizeof buf);
    ck_assert_msg(len >= 0, "entry %u at %llu: %zd", n, (unsigned long long)*pos, len);
    const char *type, *body;
    size_t type_len, body_len;
    ck_assert_int_eq(cluster_gate_split(buf, (size_t)len, &type, &type_len, &body, &body_len), 0);
    ck_assert_uint_eq(type_len, 3);
    ck_assert_mem_eq(type, "msg", 3);
    ck_assert_int_eq(meta.kind, RING_KIND_MESSAGE);
    ck_assert_uint_eq(meta.room_len, 1);
    ck_assert_int_eq(meta.room[0], 'r');
    make_body(want, n, size);
    ck_assert_uint_eq(body_len, size);
    ck_assert_mem_eq(body, want, size);
}

START_TEST(on_and_ready)
{
    seg->cluster.on = 0;
    ck_assert_int_eq(cluster_gate_on(seg), 0);
    ck_assert_int_eq(cluster_gate_ready(seg), 1);
    seg->cluster.on = 1;
    ck_assert_int_eq(cluster_gate_on(seg), 1);
    ck_assert_int_eq(cluster_gate_ready(seg), 0);
    __atomic_store_n(&seg->cluster.synced, 1, __ATOMIC_RELEASE);
    ck_assert_int_eq(cluster_gate_ready(seg), 1);
}
END_TEST

START_TEST(refused_while_down)
{
    struct ring *r = shm_outbox(seg);
    ck_assert_int_eq(queue("r", "msg", "hello", 5), -EAGAIN);
    ck_assert_uint_eq(ring_head(r), 0);
    set_up(1);
    ck_assert_int_eq(queue("r", "msg", "hello", 5), 0);
    uint64_t head = ring_head(r);
    ck_assert_uint_gt(head, 0);
    set_up(0);
    ck_assert_int_eq(queue("r", "msg", "again", 5), -EAGAIN);
    ck_assert_uint_eq(ring_head(r), head);

    uint64_t pos = 0;
    static uint8_t buf[256];
    struct ring_entry meta;
    ssize_t n = ring_read(r, &pos, &meta, buf, sizeof buf);
    ck_assert_int_eq(n, 1 + 3 + 5);
    ck_assert_mem_eq(buf, "\003msghello", 9);
    ck_assert_uint_eq(meta.len, 9);
    ck_assert_int_eq(meta.kind, RING_KIND_MESSAGE);
    ck_assert_int_eq(ring_read(r, &pos, &meta, buf, sizeof buf), RING_EMPTY);
}
END_TEST

START_TEST(queue_fields)
{
    set_up(1);
    struct ring *r = shm_outbox(seg);
    ck_assert_int_eq(lock_acquire(&seg->lock), 0);
    ck_assert_int_eq(cluster_gate_queue(seg, RING_KIND_PRESENCE, "lobby", 5, "join", "", 0), 0);
    lock_release(&seg->lock);
    uint64_t pos = 0;
    static uint8_t buf[256];
    struct ring_entry meta;
    ck_assert_int_eq(ring_read(r, &pos, &meta, buf, sizeof buf), 5);
    ck_assert_int_eq(meta.kind, RING_KIND_PRESENCE);
    ck_assert_uint_eq(meta.room_len, 5);
    ck_assert_mem_eq(meta.room, "lobby", 5);
    const char *type, *body;
    size_t tl, bl;
    ck_assert_int_eq(cluster_gate_split(buf, 5, &type, &tl, &body, &bl), 0);
    ck_assert_uint_eq(tl, 4);
    ck_assert_mem_eq(type, "join", 4);
    ck_assert_uint_eq(bl, 0);
}
END_TEST

START_TEST(size_limits)
{
    set_up(1);
    struct ring *r = shm_outbox(seg);
    static char body[OUTBOX];
    memset(body, 'b', sizeof body);
    size_t max = (size_t)ring_max_entry(r);
    /* The largest entry: 1 + type + body == ring_max_entry. */
    ck_assert_int_eq(queue("r", "msg", body, max - 4), 0);
    ck_assert_int_eq(queue("r", "msg", body, max - 3), -EMSGSIZE);
    /* A type longer than 255 bytes, a room longer than a ring entry's. */
    static char type[300];
    memset(type, 't', 256);
    ck_assert_int_eq(queue("r", type, "x", 1), -EINVAL);
    type[255] = '\0';
    ck_assert_int_eq(queue("r", type, "x", 1), 0);
    static char room[RING_ROOM_MAX + 2];
    memset(room, 'r', RING_ROOM_MAX + 1);
    ck_assert_int_eq(queue(room, "msg", "x", 1), -EINVAL);
    room[RING_ROOM_MAX] = '\0';
    ck_assert_int_eq(queue(room, "msg", "x", 1), 0);
    /* Too large is said even while the link is down. */
    set_up(0);
    ck_assert_int_eq(queue("r", "msg", body, max), -EMSGSIZE);
}
END_TEST

START_TEST(no_outbox)
{
    char label[64], err[256] = "";
    snprintf(label, sizeof label, "wschat-gatetest-%d-none", (int)getpid());
    struct shm_segment *plain = shm_create(label, 1 << 20, 64, 0, err, sizeof err);
    ck_assert_msg(plain != NULL, "%s", err);
    ck_assert_ptr_null(shm_outbox(plain));
    plain->cluster.on = 1;
    plain->cluster.up = 1;
    ck_assert_int_eq(cluster_gate_queue(plain, RING_KIND_MESSAGE, "r", 1, "msg", "x", 1),
                     -EINVAL);
    shm_destroy(plain);
}
END_TEST

/*
 * Fill to refusal, check nothing from out_done on was lost, confirm part of
 * it, fill again: round the ring many times, entries from 1 to ~3 KiB.
 */
START_TEST(full_never_overwrites)
{
    set_up(1);
    struct ring *r = shm_outbox(seg);
    static char body[OUTBOX];
    uint32_t next = 0, oldest = 0;      /* bodies queued; first not confirmed */
    uint64_t done = 0;
    static size_t sizes[1 << 16];
    unsigned refusals = 0;
    for (int round = 0; round < 60; round++) {
        size_t size;
        for (;;) {
            size = 1 + (next * 2654435761u >> 7) % (round % 3 == 0 ? 3000 : 200);
            make_body(body, next, size);
            int rc = queue("r", "msg", body, size);
            if (rc == -EAGAIN)
                break;
            ck_assert_int_eq(rc, 0);
            sizes[next % (1 << 16)] = size;
            next++;
        }
        refusals++;
        ck_assert_msg(next > oldest, "an empty outbox refused");
        ck_assert_uint_le(ring_tail(r), done);
        /* Refused again without changing anything. */
        uint64_t head = ring_head(r);
        ck_assert_int_eq(queue("r", "msg", body, size), -EAGAIN);
        ck_assert_uint_eq(ring_head(r), head);
        /* Refused only when nearly full (an entry's footprint is < 7 KiB here). */
        ck_assert_uint_gt(head - done, r->capacity - 8192);
        /* Everything unconfirmed is intact, in order. */
        uint64_t pos = done;
        for (uint32_t n = oldest; n < next; n++)
            expect_entry(&pos, n, sizes[n % (1 << 16)]);
        ck_assert_uint_eq(pos, head);
        /* The bridge confirms part (a third, or all on every fourth round). */
        uint32_t confirm = round % 4 == 3 ? next - oldest : (next - oldest) / 3 + 1;
        pos = done;
        for (uint32_t n = oldest; n < oldest + confirm; n++)
            expect_entry(&pos, n, sizes[n % (1 << 16)]);
        oldest += confirm;
        done = pos;
        set_done(done);
    }
    ck_assert_uint_eq(refusals, 60);
    ck_assert_uint_gt(ring_head(r), 10 * r->capacity);     /* it did go round */
}
END_TEST

/*
 * The pad that ends the data area counts: an entry that does not fit
 * before the end starts over at the beginning, so it reaches further back
 * than its own size. Here it would fit by its size alone but, placed after
 * the pad, would overwrite the first unconfirmed entry.
 */
START_TEST(wrap_pad_counted)
{
    set_up(1);
    struct ring *r = shm_outbox(seg);
    const uint64_t hdr = sizeof(struct ring_entry), cap = r->capacity;
    static char body[OUTBOX];
    memset(body, 'w', sizeof body);
    /* Frame bytes are 1 + "m" + body: body B gives need hdr + align8(2 + B). */
    const size_t big_body = 1000 - hdr - 2;          /* need 1000 */
    ck_assert_int_eq(queue("r", "m", body, 6), 0);    /* need hdr + 8, ends at 88 */
    const uint64_t first_end = ring_head(r);
    ck_assert_uint_eq(first_end, hdr + 8);
    /* Fill up to cap - 992, so 992 bytes (< 1000) are left before the end. */
    const uint64_t target = cap - 992;
    while (target - ring_head(r) >= 2 * (hdr + 8))
        ck_assert_int_eq(queue("r", "m", body, 6), 0);
    uint64_t last = target - ring_head(r);            /* one more entry of this need */
    ck_assert_uint_ge(last, hdr + 8);
    ck_assert_int_eq(queue("r", "m", body, (size_t)(last - hdr - 2)), 0);
    ck_assert_uint_eq(ring_head(r), target);

    /* Only the first entry is confirmed: head - done + 1000 <= cap, yet refused. */
    set_done(first_end);
    ck_assert_uint_le(ring_head(r) - first_end + 1000, cap);
    ck_assert_int_eq(queue("r", "m", body, big_body), -EAGAIN);
    ck_assert_uint_eq(ring_head(r), target);
    ck_assert_uint_eq(ring_tail(r), 0);
    /* Everything confirmed: it is taken, after the pad. */
    set_done(target);
    ck_assert_int_eq(queue("r", "m", body, big_body), 0);
    ck_assert_uint_eq(ring_head(r), cap + 1000);
    ck_assert_uint_le(ring_tail(r), target);
}
END_TEST

START_TEST(notify_once_per_wake)
{
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    ck_assert_int_ge(efd, 0);
    uint64_t v = 0;
    cluster_gate_notify(seg, efd);
    cluster_gate_notify(seg, efd);
    ck_assert_int_eq(read(efd, &v, sizeof v), (ssize_t)sizeof v);
    ck_assert_uint_eq(v, 1);
    /* Still pending: no second write. */
    cluster_gate_notify(seg, efd);
    ck_assert_int_eq(read(efd, &v, sizeof v), -1);
    ck_assert_int_eq(errno, EAGAIN);
    /* The bridge clears the flag; the next queue wakes it again. */
    __atomic_store_n(&seg->cluster.wake_pending, 0, __ATOMIC_SEQ_CST);
    cluster_gate_notify(seg, efd);
    ck_assert_int_eq(read(efd, &v, sizeof v), (ssize_t)sizeof v);
    ck_assert_uint_eq(v, 1);
    /* No eventfd: nothing happens, the flag stays as it was. */
    __atomic_store_n(&seg->cluster.wake_pending, 0, __ATOMIC_SEQ_CST);
    cluster_gate_notify(seg, -1);
    ck_assert_uint_eq(seg->cluster.wake_pending, 0);
    close(efd);
}
END_TEST

/* ---- cluster_gate_split -------------------------------------------------- */

START_TEST(split_round_trip)
{
    static uint8_t buf[2 + 255 + 1000];
    static char type[256];
    for (size_t tl = 1; tl <= 255; tl += 127) {
        for (size_t bl = 0; bl <= 1000; bl += 333) {
            memset(type, 'a' + (int)(tl % 26), tl);
            buf[0] = (uint8_t)tl;
            memcpy(buf + 1, type, tl);
            for (size_t i = 0; i < bl; i++)
                buf[1 + tl + i] = (uint8_t)(i * 7);
            const char *t = NULL, *b = NULL;
            size_t got_tl = 0, got_bl = 99;
            ck_assert_int_eq(cluster_gate_split(buf, 1 + tl + bl, &t, &got_tl, &b, &got_bl), 0);
            ck_assert_ptr_eq(t, (const char *)buf + 1);
            ck_assert_uint_eq(got_tl, tl);
            ck_assert_mem_eq(t, type, tl);
            ck_assert_ptr_eq(b, (const char *)buf + 1 + tl);
            ck_assert_uint_eq(got_bl, bl);
        }
    }
}
END_TEST

START_TEST(split_malformed)
{
    const char *t = NULL, *b = NULL;
    size_t tl = 7, bl = 7;
    static const uint8_t zero_type[] = { 0, 'x' };
    static const uint8_t short_type[] = { 4, 'm', 's', 'g' };
    static const uint8_t max_type[] = { 255, 'm' };
    ck_assert_int_eq(cluster_gate_split(zero_type, 0, &t, &tl, &b, &bl), -EINVAL);
    ck_assert_int_eq(cluster_gate_split(zero_type, 1, &t, &tl, &b, &bl), -EINVAL);
    ck_assert_int_eq(cluster_gate_split(zero_type, 2, &t, &tl, &b, &bl), -EINVAL);
    ck_assert_int_eq(cluster_gate_split(short_type, 4, &t, &tl, &b, &bl), -EINVAL);
    ck_assert_int_eq(cluster_gate_split(max_type, 2, &t, &tl, &b, &bl), -EINVAL);
    ck_assert_ptr_null(t);
    ck_assert_ptr_null(b);
    ck_assert_uint_eq(tl, 7);
    ck_assert_uint_eq(bl, 7);
    /* The type alone, no body. */
    static const uint8_t type_only[] = { 3, 'm', 's', 'g' };
    ck_assert_int_eq(cluster_gate_split(type_only, 4, &t, &tl, &b, &bl), 0);
    ck_assert_uint_eq(tl, 3);
    ck_assert_uint_eq(bl, 0);
}
END_TEST

Suite *cluster_gate_suite(void)
{
    Suite *s = suite_create("cluster_gate");
    TCase *tc = tcase_create("outbox");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, on_and_ready);
    tcase_add_test(tc, refused_while_down);
    tcase_add_test(tc, queue_fields);
    tcase_add_test(tc, size_limits);
    tcase_add_test(tc, no_outbox);
    tcase_add_test(tc, full_never_overwrites);
    tcase_add_test(tc, wrap_pad_counted);
    tcase_add_test(tc, notify_once_per_wake);
    suite_add_tcase(s, tc);

    tc = tcase_create("split");
    tcase_add_test(tc, split_round_trip);
    tcase_add_test(tc, split_malformed);
    suite_add_tcase(s, tc);
    return s;
}

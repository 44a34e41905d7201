/*
 * check_ring: the shm message ring (shared/ring.c). In-process tests drive
 * the index math (wrap, pad, implicit gap, lapping, limits) against exact
 * positions; a property test replays thousands of random sizes against a
 * model; a fork test races a writer child against the reading parent over
 * a real shm_open mapping and checks every accepted frame's checksum. The
 * per-room chain (prev_pos/prev_id at commit, next_pos by ring_link()) is
 * tested link by link, then walked both ways over a random multi-room run.
 *
 * Sizes derive from the header size: SPAN_LEN is the frame whose entry
 * spans exactly 1000 bytes, so four of them leave 96 bytes before the end
 * of a 4096-byte ring (more than a header: room for a pad).
 */
#include <check.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ring.h"

#define HDR ((uint64_t)sizeof(struct ring_entry))

static uint64_t align8(uint64_t n) { return (n + 7) & ~(uint64_t)7; }

#define SPAN_LEN ((uint32_t)(1000 - HDR))

static void *ring_mem;

/* A heap ring whose data area is exactly CAP bytes (CAP % 8 == 0). */
static struct ring *make_ring(size_t cap)
{
    size_t bytes = sizeof(struct ring) + cap;
    ring_mem = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
    ck_assert_ptr_nonnull(ring_mem);
    struct ring *r = ring_init(ring_mem, bytes);
    ck_assert_ptr_nonnull(r);
    ck_assert_uint_eq(r->capacity, cap);
    return r;
}

static void free_ring(void)
{
    free(ring_mem);
    ring_mem = NULL;
}

/* Deterministic frame content for entry ID. */
static void fill(unsigned char *p, size_t len, uint64_t id)
{
    uint32_t x = (uint32_t)(id * 2654435761u) | 1;
    for (size_t k = 0; k < len; k++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[k] = (unsigned char)x;
    }
}

static int frame_ok(const unsigned char *p, size_t len, uint64_t id)
{
    static unsigned char want[65536];
    ck_assert_uint_le(len, sizeof want);
    fill(want, len, id);
    return memcmp(p, want, len) == 0;
}

static uint64_t publish(struct ring *r, uint32_t len, const char *room)
{
    unsigned char *p = ring_reserve(r, len, NULL);
    ck_assert_ptr_nonnull(p);
    uint64_t id = ring_next_id(r);
    fill(p, len, id);
    struct ring_entry m;
    memset(&m, 0, sizeof m);
    m.len = len;
    m.kind = RING_KIND_MESSAGE;
    m.ts_ms = (int64_t)id * 1000 + 7;
    m.room_len = (uint8_t)strlen(room);
    memcpy(m.room, room, m.room_len);
    uint64_t got = ring_commit(r, &m);
    ck_assert_uint_eq(got, id);
    return got;
}

static struct ring_entry *raw_entry(struct ring *r, uint64_t pos)
{
    return (struct ring_entry *)(r->data + pos % r->capacity);
}

/* ---- basics ------------------------------------------------------------ */

START_TEST(init_state)
{
    struct ring *r = make_ring(4096);
    ck_assert_uint_eq(ring_head(r), 0);
    ck_assert_uint_eq(ring_tail(r), 0);
    ck_assert_uint_eq(ring_last_id(r), 0);
    ck_assert_uint_eq(ring_next_id(r), 1);
    ck_assert_uint_eq(ring_max_entry(r), 1024 - HDR);
    uint64_t pos = 0;
    struct ring_entry m;
    char buf[16];
    ck_assert_int_eq(ring_read(r, &pos, &m, buf, sizeof buf), RING_EMPTY);
    ck_assert_int_eq(ring_peek(r, &pos, &m), RING_EMPTY);
    ck_assert_uint_eq(pos, 0);
    free_ring();

    /* Odd sizes round the data area down to a multiple of 8. */
    void *mem = aligned_alloc(64, sizeof(struct ring) + 4160);
    r = ring_init(mem, sizeof(struct ring) + 4100);
    ck_assert_ptr_nonnull(r);
    ck_assert_uint_eq(r->capacity, 4096);
    ck_assert_ptr_null(ring_init(mem, sizeof(struct ring) + 4095));
    ck_assert_ptr_null(ring_init((char *)mem + 8, sizeof(struct ring) + 4096));
    ck_assert_ptr_null(ring_init(NULL, 1 << 20));
    free(mem);
}
END_TEST

START_TEST(append_read)
{
    struct ring *r = make_ring(4096);
    /* The last one is the largest a 4096-byte ring takes (1024 - header). */
    const uint32_t lens[] = { 5, 0, 64, 1, (uint32_t)ring_max_entry(r) };
    ck_assert_uint_eq(lens[4], 1024 - HDR);
    const char *rooms[] = { "lobby", "a", "dev", "0123456789abcdef0123456789abcdef",
                            "x" };
    uint64_t expect_head = 0;
    for (int k = 0; k < 5; k++) {
        ck_assert_uint_eq(publish(r, lens[k], rooms[k]), (uint64_t)k + 1);
        expect_head += HDR + align8(lens[k]);
        ck_assert_uint_eq(ring_head(r), expect_head);
        ck_assert_uint_eq(ring_last_id(r), (uint64_t)k + 1);
    }
    ck_assert_uint_eq(ring_tail(r), 0);

    uint64_t pos = 0, ppos = 0;
    unsigned char buf[1024];
    for (int k = 0; k < 5; k++) {
        struct ring_entry m, pm;
        memset(buf, 0, sizeof buf);
        uint64_t before = pos;
        ssize_t n = ring_read(r, &pos, &m, buf, sizeof buf);
        ck_assert_int_eq(n, lens[k]);
        ck_assert_uint_eq(m.id, (uint64_t)k + 1);
        ck_assert_uint_eq(m.len, lens[k]);
        ck_assert_int_eq(m.ts_ms, (int64_t)(k + 1) * 1000 + 7);
        ck_assert_uint_eq(m.kind, RING_KIND_MESSAGE);
        ck_assert_uint_eq(m.room_len, strlen(rooms[k]));
        ck_assert_mem_eq(m.room, rooms[k], m.room_len);
        ck_assert(frame_ok(buf, lens[k], m.id));
        ck_assert_uint_eq(pos, before + HDR + align8(lens[k]));

        ck_assert_int_eq(ring_peek(r, &ppos, &pm), lens[k]);
        ck_assert_uint_eq(ppos, pos);
        ck_assert_mem_eq(&pm, &m, sizeof m);
    }
    struct ring_entry m;
    ck_assert_int_eq(ring_read(r, &pos, &m, buf, sizeof buf), RING_EMPTY);
    ck_assert_uint_eq(pos, expect_head);
    /* Zero-length frames can be read without a buffer. */
    pos = HDR + 8;
    ck_assert_int_eq(ring_read(r, &pos, &m, NULL, 0), 0);
    ck_assert_uint_eq(m.id, 2);
    free_ring();
}
END_TEST

/* ---- wrap-around ------------------------------------------------------- */

/* Four entries of 1000 bytes each: head at 4000, 96 bytes before the end. */
static void fill_to_4000(struct ring *r)
{
    for (int k = 0; k < 4; k++)
        publish(r, SPAN_LEN, "lobby");
    ck_assert_uint_eq(ring_head(r), 4000);
}

START_TEST(wrap_with_pad)
{
    struct ring *r = make_ring(4096);
    memset(r->data, 0xAB, 4096);
    fill_to_4000(r);
    /* 96 bytes left (>= a header), the next entry needs more: a pad covers the rest. */
    uint64_t need = HDR + align8(100);
    ck_assert_uint_ge(96, HDR);
    ck_assert_uint_gt(need, 96);
    ck_assert_uint_eq(publish(r, 100, "lobby"), 5);
    struct ring_entry *pad = raw_entry(r, 4000);
    ck_assert_uint_eq(pad->kind, RING_KIND_PAD);
    ck_assert_uint_eq(pad->len, 96 - HDR);
    ck_assert_uint_eq(raw_entry(r, 4096)->id, 5);
    ck_assert_uint_eq(ring_head(r), 4096 + need);
    /* [4000, 4096 + need) reused [0, need) of the first lap: entry 1 is gone. */
    ck_assert_uint_eq(ring_tail(r), 1000);

    unsigned char buf[1024];
    struct ring_entry m;
    uint64_t pos = 0;
    ck_assert_int_eq(ring_read(r, &pos, &m, buf, sizeof buf), RING_LAPPED);
    ck_assert_uint_eq(pos, 0);
    pos = ring_tail(r);
    for (uint64_t id = 2; id <= 5; id++) {
        ssize_t n = ring_read(r, &pos, &m, buf, sizeof buf);
        ck_assert_int_eq(n, id == 5 ? 100 : SPAN_LEN);
        ck_assert_uint_eq(m.id, id);
        ck_assert(frame_ok(buf, (size_t)n, id));
    }
    ck_assert_uint_eq(pos, 4096 + need);
    ck_assert_int_eq(ring_read(r, &pos, &m, buf, sizeof buf), RING_EMPTY);
    free_ring();
}
END_TEST

/*
 * A remainder smaller than a header (GAP bytes) holds no pad: the writer
 * leaves it untouched and both sides step over it by arithmetic.
 */
START_TEST(wrap_small_gap)
{
    enum { GAP = 24 };
    ck_assert_uint_lt(GAP, HDR);
    struct ring *r = make_ring(4096);
    memset(r->data, 0xAB, 4096);
    for (int k = 0; k < 3; k++)
        publish(r, SPAN_LEN, "lobby");
    /* Entry 4 is sized so that entry 5 (8 bytes of frame) ends GAP before the end. */
    uint64_t at5 = 4096 - GAP - (HDR + 8);
    publish(r, (uint32_t)(at5 - 3000 - HDR), "lobby");
    ck_assert_uint_eq(ring_head(r), at5);
    publish(r, 8, "lobby");
    ck_assert_uint_eq(ring_head(r), 4096 - GAP);
    publish(r, 0, "lobby");                   /* GAP < header: no pad */
    ck_assert_uint_eq(ring_head(r), 4096 + HDR);
    for (int k = 4096 - GAP; k < 4096; k++)
        ck_assert_uint_eq(r->data[k], 0xAB);
    ck_assert_uint_eq(raw_entry(r, 0)->id, 6);

    /* A reader parked at the gap (after reading entry 5) steps over it. */
    uint64_t pos = at5;
    struct ring_entry m;
    unsigned char buf[64];
    ck_assert_int_eq(ring_read(r, &pos, &m, buf, sizeof buf), 8);
    ck_assert_uint_eq(m.id, 5);
    ck_assert_uint_eq(pos, 4096 - GAP);
    ck_assert_int_eq(ring_peek(r, &pos, &m), 0);
    ck_assert_uint_eq(m.id, 6);
    ck_assert_uint_eq(pos, 4096 + HDR);
    free_ring();
}
END_TEST

START_TEST(wrap_exact_fit)
{
    struct ring *r = make_ring(4096);
    fill_to_4000(r);
    publish(r, (uint32_t)(96 - HDR), "lobby");  /* exactly the last 96 bytes */
    ck_assert_uint_eq(ring_head(r), 4096);
    ck_assert_uint_eq(raw_entry(r, 4000)->id, 5);
    ck_assert_uint_eq(raw_entry(r, 4000)->kind, RING_KIND_MESSAGE);
    ck_assert_uint_eq(raw_entry(r, 4000)->len, 96 - HDR);
    publish(r, 0, "lobby");
    ck_assert_uint_eq(ring_head(r), 4096 + HDR);
    ck_assert_uint_eq(raw_entry(r, 0)->id, 6);
    ck_assert_uint_eq(ring_tail(r), 1000);
    free_ring();
}
END_TEST

/*
 * A reader must bound a header's len before copying: torn or corrupt
 * headers (simulated by scribbling, the ring lives on the heap under ASan)
 * give RING_LAPPED, never an out-of-bounds copy or a silent skip.
 */
START_TEST(corrupt_header_bounded)
{
    struct ring *r = make_ring(4096);
    fill_to_4000(r);
    publish(r, 100, "lobby");                 /* pad at 4000, entry at 4096 */
    static unsigned char buf[1 << 16];
    struct ring_entry m;

    struct ring_entry *e = raw_entry(r, 2000);
    ck_assert_uint_eq(e->id, 3);
    e->len = UINT32_MAX;
    uint64_t pos = 2000;
    ck_assert_int_eq(ring_read(r, &pos, &m, buf, sizeof buf), RING_LAPPED);
    ck_assert_int_eq(ring_peek(r, &pos, &m), RING_LAPPED);
    e->len = 4096 - 2000 - (uint32_t)HDR + 1;  /* one byte past the end */
    ck_assert_int_eq(ring_read(r, &pos, &m, buf, sizeof buf), RING_LAPPED);
    e->len = SPAN_LEN;
    ck_assert_int_eq(ring_read(r, &pos, &m, buf, sizeof buf), SPAN_LEN);
    ck_assert_uint_eq(m.id, 3);

    /* A pad must cover exactly the rest of the lap. */
    struct ring_entry *pad = raw_entry(r, 4000);
    pad->len = 0;
    pos = 4000;
    ck_assert_int_eq(ring_peek(r, &pos, &m), RING_LAPPED);
    pad->len = 96 - (uint32_t)HDR + 8;
    ck_assert_int_eq(ring_peek(r, &pos, &m), RING_LAPPED);
    pad->len = 96 - (uint32_t)HDR;
    ck_assert_int_eq(ring_peek(r, &pos, &m), 100);
    ck_assert_uint_eq(m.id, 5);
    free_ring();
}
END_TEST

/* ---- property test --------------------------------------------------- */

static uint64_t rng_state;

static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Walk the whole ring from tail: consecutive ids ending at last_id. */
static void check_full_scan(struct ring *r)
{
    uint64_t pos = ring_tail(r), prev = 0;
    struct ring_entry m;
    unsigned char buf[4096];
    ssize_t n;
    while ((n = ring_read(r, &pos, &m, buf, sizeof buf)) >= 0) {
        if (prev != 0)
            ck_assert_uint_eq(m.id, prev + 1);
        ck_assert(frame_ok(buf, (size_t)n, m.id));
        prev = m.id;
    }
    ck_assert_int_eq(n, RING_EMPTY);
    ck_assert_uint_eq(pos, ring_head(r));
    ck_assert_uint_eq(prev, ring_last_id(r));
}

START_TEST(many_sizes)
{
    static const size_t caps[] = { 4096, 4096 + 8 * 37, 16384 };
    size_t cap = caps[_i];
    struct ring *r = make_ring(cap);
    uint64_t max = ring_max_entry(r);
    rng_state = 0x9E3779B97F4A7C15ull + (uint64_t)_i;

    uint64_t rpos = 0, rprev = 0, laps = 0, reads = 0;
    for (uint64_t id = 1; id <= 20000; id++) {
        uint32_t len = (uint32_t)(rnd() % 4 == 0 ? rnd() % (max + 1)
                                                 : rnd() % 80);
        ck_assert_uint_eq(publish(r, len, "p"), id);

        uint64_t head = ring_head(r), tail = ring_tail(r);
        ck_assert_uint_le(tail, head);
        ck_assert_uint_le(head - tail, cap);
        ck_assert_uint_eq(head % 8, 0);
        ck_assert_uint_eq(tail % 8, 0);
        ck_assert_uint_eq(ring_last_id(r), id);
        /* History survives: overwrite only what the new entry needs. */
        if (head >= cap)
            ck_assert_uint_ge(head - tail, cap / 2);

        /* A follower that reads at random moments, sometimes lapped. */
        if (rnd() % 8 == 0) {
            struct ring_entry m;
            unsigned char buf[4096];
            ssize_t n;
            while ((n = ring_read(r, &rpos, &m, buf, sizeof buf)) !=
                   RING_EMPTY) {
                if (n == RING_LAPPED) {
                    ck_assert_uint_lt(rpos, ring_tail(r));
                    rpos = ring_tail(r);
                    laps++;
                    continue;
                }
                ck_assert_int_ge(n, 0);
                ck_assert_uint_gt(m.id, rprev);
                ck_assert(frame_ok(buf, (size_t)n, m.id));
                rprev = m.id;
                reads++;
            }
        }
        if (id % 997 == 0)
            check_full_scan(r);
    }
    ck_assert_uint_gt(laps, 0);
    ck_assert_uint_gt(reads, 1000);
    free_ring();
}
END_TEST

/* ---- lapping and limits ---------------------------------------------- */

START_TEST(lapped_reader_resumes)
{
    struct ring *r = make_ring(4096);
    publish(r, 10, "lobby");
    uint64_t pos = 0;
    for (int k = 0; k < 20; k++)
        publish(r, 500, "lobby");
    struct ring_entry m;
    unsigned char buf[600];
    ck_assert_int_eq(ring_read(r, &pos, &m, buf, sizeof buf), RING_LAPPED);
    ck_assert_int_eq(ring_peek(r, &pos, &m), RING_LAPPED);
    ck_assert_uint_eq(pos, 0);

    pos = ring_tail(r);
    ck_assert_uint_gt(pos, 0);
    ck_assert_int_eq(ring_read(r, &pos, &m, buf, sizeof buf), 500);
    uint64_t first = m.id;
    /* Spans of HDR + 504 bytes (584): at least 5 of them survive in 4096. */
    ck_assert_uint_le(first, 21 - 5 + 1);
    uint64_t prev = first;
    while (ring_read(r, &pos, &m, buf, sizeof buf) == 500) {
        ck_assert_uint_eq(m.id, prev + 1);
        ck_assert(frame_ok(buf, 500, m.id));
        prev = m.id;
    }
    ck_assert_uint_eq(prev, 21);
    ck_assert_uint_eq(pos, ring_head(r));
    free_ring();
}
END_TEST

START_TEST(too_small)
{
    struct ring *r = make_ring(4096);
    publish(r, 100, "lobby");
    uint64_t pos = 0;
    struct ring_entry m;
    unsigned char buf[100];
    ck_assert_int_eq(ring_read(r, &pos, &m, buf, 99), RING_TOO_SMALL);
    ck_assert_uint_eq(pos, 0);
    ck_assert_int_eq(ring_read(r, &pos, &m, NULL, 0), RING_TOO_SMALL);
    ck_assert_uint_eq(pos, 0);
    ck_assert_int_eq(ring_read(r, &pos, &m, buf, 100), 100);
    ck_assert(frame_ok(buf, 100, 1));
    ck_assert_uint_eq(pos, HDR + 104);
    free_ring();
}
END_TEST

START_TEST(max_entry)
{
    static const size_t caps[] = { 4096, 4104, 65536 + 24 };
    struct ring *r = make_ring(caps[_i]);
    uint64_t max = ring_max_entry(r);
    ck_assert_uint_eq(max, ((caps[_i] / 4) & ~(size_t)7) - HDR);
    ck_assert_uint_le(HDR + align8(max), caps[_i] / 4);
    ck_assert_ptr_null(ring_reserve(r, (uint32_t)max + 1, NULL));
    ck_assert_ptr_null(ring_reserve(r, UINT32_MAX, NULL));
    ck_assert_uint_eq(ring_head(r), 0);
    ck_assert_uint_eq(ring_tail(r), 0);

    for (uint64_t id = 1; id <= 50; id++) {
        ck_assert_uint_eq(publish(r, (uint32_t)max, "big"), id);
        /* More than 3/4 of the data stays: three maximal entries... */
        ck_assert_uint_ge(ring_head(r) - ring_tail(r),
                          (id < 3 ? id : 3) * (HDR + max));
    }
    /* ...and each of them reads back intact. */
    uint64_t pos = ring_tail(r), prev = 0;
    struct ring_entry m;
    static unsigned char buf[65536];
    ssize_t n;
    while ((n = ring_read(r, &pos, &m, buf, sizeof buf)) >= 0) {
        ck_assert_int_eq(n, max);
        ck_assert(prev == 0 || m.id == prev + 1);
        ck_assert(frame_ok(buf, (size_t)n, m.id));
        prev = m.id;
    }
    ck_assert_uint_eq(prev, 50);
    free_ring();
}
END_TEST

START_TEST(ids_monotonic)
{
    struct ring *r = make_ring(4096);
    ck_assert_uint_eq(ring_next_id(r), 1);
    for (uint64_t id = 1; id <= 100; id++) {
        ck_assert_uint_eq(ring_next_id(r), id);
        ck_assert_uint_eq(publish(r, (uint32_t)(id * 37 % 300), "ids"), id);
        ck_assert_uint_eq(ring_last_id(r), id);
    }
    /* An abandoned reservation (writer died) is invisible and costs no id. */
    uint64_t head = ring_head(r);
    unsigned char *p = ring_reserve(r, 200, NULL);
    ck_assert_ptr_nonnull(p);
    memset(p, 0xEE, 100);
    ck_assert_uint_eq(ring_head(r), head);
    ck_assert_uint_eq(ring_last_id(r), 100);
    struct ring_entry m;
    unsigned char buf[512];
    uint64_t pos = head;
    ck_assert_int_eq(ring_read(r, &pos, &m, buf, sizeof buf), RING_EMPTY);
    ck_assert_uint_eq(publish(r, 200, "ids"), 101);
    ck_assert_int_eq(ring_read(r, &pos, &m, buf, sizeof buf), 200);
    ck_assert_uint_eq(m.id, 101);
    ck_assert(frame_ok(buf, 200, 101));
    check_full_scan(r);
    free_ring();
}
END_TEST

/* ---- the per-room chain ------------------------------------------------- */

/*
 * Publish the way chat_publish does: reserve (learning the position), link
 * the room's previous message PREV (id PREV_ID) forward to it, commit with
 * the back link. *AT gets the entry's position. A junk next_pos in the
 * meta must not survive the commit.
 */
static uint64_t publish_linked(struct ring *r, uint32_t len, const char *room,
                               uint64_t prev, uint64_t prev_id, uint64_t *at)
{
    uint64_t before = ring_head(r);
    unsigned char *p = ring_reserve(r, len, at);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_ge(*at, before);
    ck_assert_ptr_eq(p, r->data + *at % r->capacity + HDR);
    ring_link(r, prev, prev_id, *at);
    uint64_t id = ring_next_id(r);
    fill(p, len, id);
    struct ring_entry m;
    memset(&m, 0, sizeof m);
    m.len = len;
    m.kind = RING_KIND_MESSAGE;
    m.ts_ms = (int64_t)id;
    m.room_len = (uint8_t)strlen(room);
    memcpy(m.room, room, m.room_len);
    m.prev_pos = prev;
    m.prev_id = prev_id;
    m.next_pos = 0x5555;
    ck_assert_uint_eq(ring_commit(r, &m), id);
    ck_assert_uint_eq(ring_head(r), *at + HDR + align8(len));
    return id;
}

/* The header at POS through ring_peek (asserting it is readable). */
static struct ring_entry peek_at(struct ring *r, uint64_t pos)
{
    struct ring_entry m;
    ck_assert_int_ge(ring_peek(r, &pos, &m), 0);
    return m;
}

START_TEST(reserve_at_is_commit_position)
{
    static const size_t caps[] = { 4096, 4096 + 8 * 37 };
    size_t cap = caps[_i];
    struct ring *r = make_ring(cap);
    uint64_t max = ring_max_entry(r);
    rng_state = 0x2545F4914F6CDD1Dull + (uint64_t)_i;
    uint64_t pads = 0, gaps = 0;
    for (uint64_t id = 1; id <= 5000; id++) {
        uint32_t len = (uint32_t)(rnd() % 3 == 0 ? rnd() % (max + 1) : rnd() % 100);
        uint64_t need = HDR + align8(len), head = ring_head(r);
        uint64_t room = cap - head % cap;
        uint64_t want = room >= need ? head : head + room;
        if (want != head && room >= HDR)
            pads++;
        else if (want != head)
            gaps++;
        uint64_t at = 0, again = 0;
        unsigned char *p = ring_reserve(r, len, &at);
        ck_assert_uint_eq(at, want);
        ck_assert_ptr_eq(p, r->data + at % cap + HDR);
        /* Reserving again (the first writer died) gives the same place; NULL is fine. */
        ck_assert_ptr_eq(ring_reserve(r, len, &again), p);
        ck_assert_uint_eq(again, at);
        ck_assert_ptr_eq(ring_reserve(r, len, NULL), p);
        ck_assert_uint_eq(ring_head(r), head);
        fill(p, len, id);
        struct ring_entry m;
        memset(&m, 0, sizeof m);
        m.len = len;
        m.kind = RING_KIND_MESSAGE;
        m.prev_pos = RING_NO_POS;
        ck_assert_uint_eq(ring_commit(r, &m), id);
        ck_assert_uint_eq(ring_head(r), at + need);
        m = peek_at(r, at);
        ck_assert_uint_eq(m.id, id);
        ck_assert_uint_eq(m.len, len);
    }
    ck_assert_uint_gt(pads, 0);
    ck_assert_uint_gt(gaps, 0);
    check_full_scan(r);
    free_ring();
}
END_TEST

START_TEST(chain_fields_round_trip)
{
    struct ring *r = make_ring(4096);
    uint64_t a, b, c;
    uint64_t ida = publish_linked(r, 10, "lobby", RING_NO_POS, 0, &a);
    uint64_t idx = publish_linked(r, 20, "other", RING_NO_POS, 0, &c);
    uint64_t idb = publish_linked(r, 30, "lobby", a, ida, &b);
    ck_assert_uint_eq(a, 0);
    ck_assert_uint_gt(b, c);

    /* Arbitrary back links round-trip as given (no link is made: >= head). */
    uint64_t d;
    uint64_t idd = publish_linked(r, 0, "far", 0x123456789abcull, 0xfeedull, &d);

    unsigned char buf[64];
    struct ring_entry m, pm;
    uint64_t pos = 0, ppos = 0;
    static const struct { uint64_t prev, prev_id; } want[4] = {
        { RING_NO_POS, 0 }, { RING_NO_POS, 0 }, { 0, 1 }, { 0x123456789abcull, 0xfeedull },
    };
    uint64_t next_want[4] = { b, RING_NO_POS, RING_NO_POS, RING_NO_POS };
    uint64_t ids[4] = { ida, idx, idb, idd };
    for (int k = 0; k < 4; k++) {
        ck_assert_int_ge(ring_read(r, &pos, &m, buf, sizeof buf), 0);
        ck_assert_int_ge(ring_peek(r, &ppos, &pm), 0);
        ck_assert_uint_eq(m.id, ids[k]);
        ck_assert_uint_eq(m.prev_pos, want[k].prev);
        ck_assert_uint_eq(m.prev_id, want[k].prev_id);
        ck_assert_uint_eq(m.next_pos, next_want[k]);
        ck_assert_mem_eq(&pm, &m, sizeof m);
    }
    ck_assert_uint_eq(want[2].prev, a);
    ck_assert_uint_eq(want[2].prev_id, ida);
    free_ring();
}
END_TEST

/* ring_link() on a committed entry is seen at once, before the next commit. */
START_TEST(link_seen_by_reader)
{
    struct ring *r = make_ring(4096);
    uint64_t a;
    uint64_t ida = publish_linked(r, 10, "lobby", RING_NO_POS, 0, &a);
    ck_assert_uint_eq(peek_at(r, a).next_pos, RING_NO_POS);

    uint64_t b;
    ck_assert_ptr_nonnull(ring_reserve(r, 40, &b));
    ring_link(r, a, ida, b);
    ck_assert_uint_eq(peek_at(r, a).next_pos, b);
    ck_assert_uint_eq(raw_entry(r, a)->next_pos, b);
    struct ring_entry m;
    uint64_t pos = b;
    ck_assert_int_eq(ring_peek(r, &pos, &m), RING_EMPTY);

    /*
     * That writer died before its commit; another room's entry takes the
     * place, then the room's real next message re-points the link.
     */
    uint64_t x, c;
    publish_linked(r, 40, "other", RING_NO_POS, 0, &x);
    ck_assert_uint_eq(x, b);
    ck_assert_uint_eq(peek_at(r, a).next_pos, b);
    uint64_t idc = publish_linked(r, 5, "lobby", a, ida, &c);
    ck_assert_uint_ne(c, b);
    m = peek_at(r, a);
    ck_assert_uint_eq(m.next_pos, c);
    ck_assert_uint_eq(m.id, ida);
    ck_assert_uint_eq(m.len, 10);
    m = peek_at(r, c);
    ck_assert_uint_eq(m.id, idc);
    ck_assert_uint_eq(m.prev_pos, a);
    ck_assert_uint_eq(m.prev_id, ida);
    ck_assert_uint_eq(m.next_pos, RING_NO_POS);

    /* The frame bytes of the linked entry are untouched. */
    unsigned char buf[16];
    pos = a;
    ck_assert_int_eq(ring_read(r, &pos, &m, buf, sizeof buf), 10);
    ck_assert(frame_ok(buf, 10, ida));
    free_ring();
}
END_TEST

/* ring_link(PREV...) must leave every byte of data[] as it was. */
static void link_is_noop(struct ring *r, uint64_t prev, uint64_t prev_id, uint64_t next)
{
    static unsigned char before[1 << 16];
    ck_assert_uint_le(r->capacity, sizeof before);
    memcpy(before, r->data, r->capacity);
    uint64_t head = ring_head(r), tail = ring_tail(r);
    ring_link(r, prev, prev_id, next);
    ck_assert_mem_eq(r->data, before, r->capacity);
    ck_assert_uint_eq(ring_head(r), head);
    ck_assert_uint_eq(ring_tail(r), tail);
}

START_TEST(link_noop_cases)
{
    struct ring *r = make_ring(4096);
    uint64_t a;
    uint64_t ida = publish_linked(r, SPAN_LEN, "lobby", RING_NO_POS, 0, &a);
    ck_assert_uint_eq(a, 0);
    for (int k = 0; k < 3; k++)
        publish(r, SPAN_LEN, "lobby");
    ck_assert_uint_eq(ring_head(r), 4000);

    /* No previous message. */
    link_is_noop(r, RING_NO_POS, 0, 4000);
    link_is_noop(r, RING_NO_POS, ida, 4000);
    /* The wrong id: the entry there is not the one named. */
    link_is_noop(r, a, ida + 1, 4000);
    link_is_noop(r, a, 0, 4000);
    ck_assert_uint_eq(peek_at(r, a).next_pos, RING_NO_POS);

    /* At or past head: not committed, even if the bytes there look like an entry. */
    struct ring_entry *forged = raw_entry(r, 4000);
    memcpy(forged, raw_entry(r, a), HDR);
    forged->id = 99;
    link_is_noop(r, 4000, 99, 4000 + HDR);
    link_is_noop(r, 4000 + 4096, ida, 4000 + HDR);
    memset(forged, 0, HDR);

    /*
     * Overwritten: this reservation wraps (pad at 4000) and moves the tail
     * past entry 1, whose header is still intact in memory. Linking it now
     * would scribble into the bytes the new entry is about to own.
     */
    uint64_t e;
    unsigned char *p = ring_reserve(r, 100, &e);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq(e, 4096);
    ck_assert_uint_gt(ring_tail(r), a);
    ck_assert_uint_eq(raw_entry(r, a)->id, ida);
    link_is_noop(r, a, ida, e);
    ck_assert_uint_eq(raw_entry(r, a)->next_pos, RING_NO_POS);

    struct ring_entry m;
    memset(&m, 0, sizeof m);
    m.len = 100;
    m.kind = RING_KIND_MESSAGE;
    m.prev_pos = RING_NO_POS;
    uint64_t ide = ring_commit(r, &m);
    /* The pad at 4000 carries id 0: naming it with id 0 links nothing. */
    ck_assert_uint_eq(raw_entry(r, 4000)->kind, RING_KIND_PAD);
    link_is_noop(r, 4000, 0, ring_head(r));

    /* Lapped many times over: the old position now holds other entries. */
    for (int k = 0; k < 40; k++)
        publish(r, SPAN_LEN, "lobby");
    ck_assert_uint_gt(ring_tail(r), 4 * 4096);
    link_is_noop(r, a, ida, ring_head(r));
    link_is_noop(r, e, ide, ring_head(r));
    /* A real previous entry still links (the checks above are not blanket). */
    uint64_t t = ring_tail(r);
    struct ring_entry last = peek_at(r, t);
    ring_link(r, t, last.id, ring_head(r));
    ck_assert_uint_eq(peek_at(r, t).next_pos, ring_head(r));
    free_ring();
}
END_TEST

#define CHAIN_ROOMS 7
#define CHAIN_N     30000u

struct chain_live {
    uint64_t pos, id;
    int room;
};

static const char *const chain_room[CHAIN_ROOMS] = {
    "r0", "r1", "lobby", "dev", "x", "0123456789abcdef0123456789abcdef", "r6",
};

static int chain_room_of(const struct ring_entry *m)
{
    for (int k = 0; k < CHAIN_ROOMS; k++)
        if (m->room_len == strlen(chain_room[k]) &&
            memcmp(m->room, chain_room[k], m->room_len) == 0)
            return k;
    ck_abort_msg("entry %llu has no known room", (unsigned long long)m->id);
    return -1;
}

static uint64_t chain_stale, chain_cut;

/*
 * From LIVE[J], walk back by prev_pos (checking every id) and forward by
 * next_pos (a reader's checks: the entry found must be of the room and name
 * us as its previous, else a dead writer left the link): the walk must
 * visit exactly LIVE's entries of that room, in order.
 */
static void chain_walk(struct ring *r, const struct chain_live *live, size_t n, size_t j)
{
    uint64_t seq[512];
    size_t len = 0;
    struct ring_entry m = peek_at(r, live[j].pos);
    uint64_t p = m.prev_pos, pid = m.prev_id, from = live[j].pos;
    while (p != RING_NO_POS) {
        uint64_t q = p;
        struct ring_entry e;
        ssize_t rc = ring_peek(r, &q, &e);
        if (rc == RING_LAPPED) {
            ck_assert_uint_lt(p, ring_tail(r));
            chain_cut++;
            break;
        }
        ck_assert_int_ge(rc, 0);
        ck_assert_uint_eq(e.id, pid);
        ck_assert_int_eq(chain_room_of(&e), live[j].room);
        /* Only a room's newest message can hold a dead writer's link. */
        ck_assert_uint_eq(e.next_pos, from);
        ck_assert_uint_lt(len, 512);
        seq[len++] = e.id;
        from = p;
        p = e.prev_pos;
        pid = e.prev_id;
    }
    /* seq holds the older ones newest first: reverse it. */
    for (size_t a = 0, b = len; a + 1 < b; a++, b--) {
        uint64_t t = seq[a];
        seq[a] = seq[b - 1];
        seq[b - 1] = t;
    }
    seq[len++] = m.id;
    uint64_t cur = live[j].pos, cur_id = m.id;
    p = m.next_pos;
    while (p != RING_NO_POS) {
        uint64_t q = p;
        struct ring_entry e;
        ssize_t rc = ring_peek(r, &q, &e);
        ck_assert_int_ne(rc, RING_LAPPED);
        if (rc < 0 || chain_room_of(&e) != live[j].room || e.prev_pos != cur ||
            e.prev_id != cur_id) {
            chain_stale++;
            break;
        }
        ck_assert_uint_lt(len, 512);
        seq[len++] = e.id;
        cur = p;
        cur_id = e.id;
        p = e.next_pos;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (live[i].room != live[j].room)
            continue;
        ck_assert_uint_lt(k, len);
        ck_assert_uint_eq(seq[k], live[i].id);
        k++;
    }
    ck_assert_uint_eq(k, len);
}

/* Every entry from the tail, checked against the model of positions by id. */
static size_t chain_scan(struct ring *r, const uint64_t *pos_of, const int *room_of,
                         struct chain_live *live, size_t max)
{
    uint64_t pos = ring_tail(r), prev = 0;
    size_t n = 0;
    struct ring_entry m;
    for (;;) {
        uint64_t at = pos;
        ssize_t rc = ring_peek(r, &pos, &m);
        if (rc == RING_EMPTY)
            break;
        ck_assert_int_ge(rc, 0);
        /* ring_peek skips pads and gaps: the entry starts where the model put it. */
        ck_assert_uint_eq(pos_of[m.id], pos - HDR - align8(m.len));
        ck_assert_uint_ge(pos_of[m.id], at);
        ck_assert(prev == 0 || m.id == prev + 1);
        ck_assert_int_eq(chain_room_of(&m), room_of[m.id]);
        ck_assert_uint_lt(n, max);
        live[n].pos = pos_of[m.id];
        live[n].id = m.id;
        live[n].room = room_of[m.id];
        n++;
        prev = m.id;
    }
    ck_assert_uint_eq(prev, ring_last_id(r));
    return n;
}

/*
 * Random publishes over CHAIN_ROOMS rooms, each linked to its room's
 * previous message as chat_publish does (a room table reduced to last
 * pos/id per room); now and then a writer "dies" after ring_link() and
 * before its commit. Every few publishes, the walk from every entry still
 * in the ring must visit exactly its room's entries still in the ring.
 */
START_TEST(chain_walks_random)
{
    static const size_t caps[] = { 16384, 4096 + 8 * 37 };
    size_t cap = caps[_i];
    struct ring *r = make_ring(cap);
    uint64_t max = ring_max_entry(r);
    rng_state = 0x853c49e6748fea9bull + (uint64_t)_i;
    static uint64_t pos_of[CHAIN_N + 2];
    static int room_of[CHAIN_N + 2];
    static struct chain_live live[1024];
    uint64_t last_pos[CHAIN_ROOMS], last_id[CHAIN_ROOMS];
    for (int k = 0; k < CHAIN_ROOMS; k++) {
        last_pos[k] = RING_NO_POS;
        last_id[k] = 0;
    }
    chain_stale = chain_cut = 0;
    uint64_t dead = 0, checks = 0;
    while (ring_next_id(r) <= CHAIN_N) {
        /* Skewed: room 0 is busy, room 6 rare, so chains cross the tail. */
        int room = (int)(rnd() % 16);
        room = room < 6 ? 0 : room < 15 ? 1 + room % 5 : 6;
        uint32_t len = (uint32_t)(rnd() % 5 == 0 ? rnd() % (max + 1) : rnd() % 120);
        if (rnd() % 40 == 0) {
            uint64_t at;
            ck_assert_ptr_nonnull(ring_reserve(r, len, &at));
            ring_link(r, last_pos[room], last_id[room], at);
            dead++;
            continue;
        }
        uint64_t at;
        uint64_t id = publish_linked(r, len, chain_room[room], last_pos[room],
                                     last_id[room], &at);
        pos_of[id] = at;
        room_of[id] = room;
        last_pos[room] = at;
        last_id[room] = id;
        if (id % 53 == 0) {
            size_t n = chain_scan(r, pos_of, room_of, live, 1024);
            for (size_t j = 0; j < n; j++)
                chain_walk(r, live, n, j);
            checks++;
        }
    }
    ck_assert_uint_gt(ring_tail(r), 10 * cap);
    ck_assert_uint_gt(dead, 100);
    ck_assert_uint_gt(checks, 100);
    /* Both ends of a chain were met: cut by the tail, and a dead writer's link. */
    ck_assert_uint_gt(chain_cut, 0);
    ck_assert_uint_gt(chain_stale, 0);
    free_ring();
}
END_TEST

/* ---- concurrent writer child, reading parent ---------------------------- */

#define RACE_N   200000u
#define RACE_CAP (64u * 1024)

struct race_shared {
    uint32_t done;
    uint32_t pad[15];
};

static uint64_t fnv1a(const unsigned char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t k = 0; k < n; k++) {
        h ^= p[k];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* Frame: id (8 bytes), filler, fnv1a of everything before (8 bytes). */
static uint32_t race_frame(unsigned char *p, uint64_t id)
{
    uint32_t len = 16 + (uint32_t)(id * 7919 % 1500);
    memcpy(p, &id, 8);
    fill(p + 8, len - 16, id);
    uint64_t h = fnv1a(p, len - 8);
    memcpy(p + len - 8, &h, 8);
    return len;
}

static void race_writer(struct ring *r, struct race_shared *sh)
{
    for (uint64_t id = 1; id <= RACE_N; id++) {
        unsigned char *p = ring_reserve(r, 16 + (uint32_t)(id * 7919 % 1500), NULL);
        if (p == NULL)
            _exit(3);
        struct ring_entry m;
        memset(&m, 0, sizeof m);
        m.len = race_frame(p, id);
        m.kind = RING_KIND_MESSAGE;
        m.room_len = 4;
        memcpy(m.room, "race", 4);
        if (ring_commit(r, &m) != id)
            _exit(4);
    }
    __atomic_store_n(&sh->done, 1, __ATOMIC_RELEASE);
    _exit(0);
}

/* Runner pid, set by an unchecked fixture (inherited by the test child). */
static pid_t runner_pid;

static void race_name(char *buf, size_t len)
{
    snprintf(buf, len, "/wschat-ringtest-%d", (int)runner_pid);
}

static void names_setup(void)
{
    runner_pid = getpid();
}

static void names_teardown(void)
{
    char name[64];
    race_name(name, sizeof name);
    shm_unlink(name);
}

START_TEST(concurrent_reader)
{
    char name[64];
    race_name(name, sizeof name);
    shm_unlink(name);
    int fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0600);
    ck_assert_int_ge(fd, 0);
    size_t bytes = 4096 + sizeof(struct ring) + RACE_CAP;
    ck_assert_int_eq(ftruncate(fd, (off_t)bytes), 0);
    unsigned char *mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                              MAP_SHARED, fd, 0);
    close(fd);
    shm_unlink(name);           /* the mapping outlives the name */
    ck_assert_ptr_ne(mem, MAP_FAILED);
    struct race_shared *sh = (struct race_shared *)mem;
    struct ring *r = ring_init(mem + 4096, bytes - 4096);
    ck_assert_ptr_nonnull(r);

    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        race_writer(r, sh);

    static unsigned char buf[2048];
    uint64_t pos = 0, prev = 0, accepted = 0, laps = 0;
    struct ring_entry m;
    for (;;) {
        ssize_t n = ring_read(r, &pos, &m, buf, sizeof buf);
        if (n == RING_EMPTY) {
            if (__atomic_load_n(&sh->done, __ATOMIC_ACQUIRE) &&
                pos == ring_head(r))
                break;
            sched_yield();
            continue;
        }
        if (n == RING_LAPPED) {
            laps++;
            pos = ring_tail(r);
            continue;
        }
        ck_assert_int_ge(n, 16);
        ck_assert_uint_eq(m.len, (uint64_t)n);
        uint64_t id, h;
        memcpy(&id, buf, 8);
        memcpy(&h, buf + n - 8, 8);
        ck_assert_uint_eq(id, m.id);
        ck_assert_uint_eq(h, fnv1a(buf, (size_t)n - 8));
        ck_assert_uint_eq((uint64_t)n, 16 + id * 7919 % 1500);
        ck_assert_uint_gt(m.id, prev);
        ck_assert_mem_eq(m.room, "race", 4);
        prev = m.id;
        accepted++;
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 0);
    ck_assert_uint_eq(prev, RACE_N);
    ck_assert_uint_gt(accepted, 0);
    ck_assert_uint_le(accepted, RACE_N);
    if (laps == 0)
        ck_assert_uint_eq(accepted, RACE_N);
    munmap(mem, bytes);
}
END_TEST

Suite *ring_suite(void)
{
    Suite *s = suite_create("ring");
    TCase *tc = tcase_create("basics");
    tcase_add_test(tc, init_state);
    tcase_add_test(tc, append_read);
    tcase_add_test(tc, ids_monotonic);
    tcase_add_test(tc, too_small);
    tcase_add_loop_test(tc, max_entry, 0, 3);
    suite_add_tcase(s, tc);

    tc = tcase_create("wrap");
    tcase_add_test(tc, wrap_with_pad);
    tcase_add_test(tc, wrap_small_gap);
    tcase_add_test(tc, wrap_exact_fit);
    tcase_add_test(tc, corrupt_header_bounded);
    tcase_add_test(tc, lapped_reader_resumes);
    suite_add_tcase(s, tc);

    tc = tcase_create("property");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, many_sizes, 0, 3);
    suite_add_tcase(s, tc);

    tc = tcase_create("chain");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, reserve_at_is_commit_position, 0, 2);
    tcase_add_test(tc, chain_fields_round_trip);
    tcase_add_test(tc, link_seen_by_reader);
    tcase_add_test(tc, link_noop_cases);
    tcase_add_loop_test(tc, chain_walks_random, 0, 2);
    suite_add_tcase(s, tc);

    tc = tcase_create("concurrent");
    tcase_set_timeout(tc, 60);
    tcase_add_unchecked_fixture(tc, names_setup, names_teardown);
    tcase_add_test(tc, concurrent_reader);
    suite_add_tcase(s, tc);
    return s;
}

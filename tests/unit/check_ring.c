/*
 * check_ring: the shm message ring (shared/ring.c). In-process tests drive
 * the index math (wrap, pad, implicit gap, lapping, limits) against exact
 * positions; a property test replays thousands of random sizes against a
 * model; a fork test races a writer child against the reading parent over
 * a real shm_open mapping and checks every accepted frame's checksum.
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
    static const uint32_t lens[] = { 5, 0, 64, 1, 960 };
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

START_TEST(wrap_with_pad)
{
    struct ring *r = make_ring(4096);
    memset(r->data, 0xAB, 4096);
    for (int k = 0; k < 4; k++)
        publish(r, 936, "lobby");            /* spans of 1000 */
    ck_assert_uint_eq(ring_head(r), 4000);
    /* 96 bytes left, the next entry needs 168: a pad covers the rest. */
    ck_assert_uint_eq(publish(r, 100, "lobby"), 5);
    struct ring_entry *pad = raw_entry(r, 4000);
    ck_assert_uint_eq(pad->kind, RING_KIND_PAD);
    ck_assert_uint_eq(pad->len, 96 - HDR);
    ck_assert_uint_eq(raw_entry(r, 4096)->id, 5);
    ck_assert_uint_eq(ring_head(r), 4096 + 168);
    /* [4000, 4264) reused [0, 168) of the first lap: entry 1 is gone. */
    ck_assert_uint_eq(ring_tail(r), 1000);

    unsigned char buf[1024];
    struct ring_entry m;
    uint64_t pos = 0;
    ck_assert_int_eq(ring_read(r, &pos, &m, buf, sizeof buf), RING_LAPPED);
    ck_assert_uint_eq(pos, 0);
    pos = ring_tail(r);
    for (uint64_t id = 2; id <= 5; id++) {
        ssize_t n = ring_read(r, &pos, &m, buf, sizeof buf);
        ck_assert_int_eq(n, id == 5 ? 100 : 936);
        ck_assert_uint_eq(m.id, id);
        ck_assert(frame_ok(buf, (size_t)n, id));
    }
    ck_assert_uint_eq(pos, 4264);
    ck_assert_int_eq(ring_read(r, &pos, &m, buf, sizeof buf), RING_EMPTY);
    free_ring();
}
END_TEST

START_TEST(wrap_small_gap)
{
    struct ring *r = make_ring(4096);
    memset(r->data, 0xAB, 4096);
    for (int k = 0; k < 4; k++)
        publish(r, 936, "lobby");
    publish(r, 8, "lobby");                   /* span 72: head at 4072 */
    ck_assert_uint_eq(ring_head(r), 4072);
    publish(r, 0, "lobby");                   /* 24 < header: no pad */
    ck_assert_uint_eq(ring_head(r), 4096 + HDR);
    for (int k = 4072; k < 4096; k++)
        ck_assert_uint_eq(r->data[k], 0xAB);
    ck_assert_uint_eq(raw_entry(r, 0)->id, 6);

    /* A reader parked at the gap (after reading entry 5) steps over it. */
    uint64_t pos = 4000;
    struct ring_entry m;
    unsigned char buf[64];
    ck_assert_int_eq(ring_read(r, &pos, &m, buf, sizeof buf), 8);
    ck_assert_uint_eq(m.id, 5);
    ck_assert_uint_eq(pos, 4072);
    ck_assert_int_eq(ring_peek(r, &pos, &m), 0);
    ck_assert_uint_eq(m.id, 6);
    ck_assert_uint_eq(pos, 4096 + HDR);
    free_ring();
}
END_TEST

START_TEST(wrap_exact_fit)
{
    struct ring *r = make_ring(4096);
    for (int k = 0; k < 4; k++)
        publish(r, 936, "lobby");
    publish(r, 32, "lobby");                  /* exactly the last 96 bytes */
    ck_assert_uint_eq(ring_head(r), 4096);
    ck_assert_uint_eq(raw_entry(r, 4000)->id, 5);
    ck_assert_uint_eq(raw_entry(r, 4000)->kind, RING_KIND_MESSAGE);
    publish(r, 0, "lobby");
    ck_assert_uint_eq(ring_head(r), 4096 + HDR);
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
    for (int k = 0; k < 4; k++)
        publish(r, 936, "lobby");
    publish(r, 100, "lobby");                 /* pad at 4000, entry at 4096 */
    static unsigned char buf[1 << 16];
    struct ring_entry m;

    struct ring_entry *e = raw_entry(r, 2000);
    e->len = UINT32_MAX;
    uint64_t pos = 2000;
    ck_assert_int_eq(ring_read(r, &pos, &m, buf, sizeof buf), RING_LAPPED);
    ck_assert_int_eq(ring_peek(r, &pos, &m), RING_LAPPED);
    e->len = 4096 - 2000 - (uint32_t)HDR + 1;  /* one byte past the end */
    ck_assert_int_eq(ring_read(r, &pos, &m, buf, sizeof buf), RING_LAPPED);
    e->len = 936;
    ck_assert_int_eq(ring_read(r, &pos, &m, buf, sizeof buf), 936);
    ck_assert_uint_eq(m.id, 3);

    /* A pad must cover exactly the rest of the lap. */
    struct ring_entry *pad = raw_entry(r, 4000);
    pad->len = 0;
    pos = 4000;
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
    /* 564-byte spans: at least 5 of them survive in 4096 bytes. */
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

    tc = tcase_create("concurrent");
    tcase_set_timeout(tc, 60);
    tcase_add_unchecked_fixture(tc, names_setup, names_teardown);
    tcase_add_test(tc, concurrent_reader);
    suite_add_tcase(s, tc);
    return s;
}

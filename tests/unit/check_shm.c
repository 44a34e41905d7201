/*
 * check_shm: the shared room segment (shared/shm.c): creation over a stale
 * segment, header fields, error messages, and the room presence table
 * (join/leave across worker slots, a full table, recycling, resetting a
 * dead worker's slot). Segment names carry the runner's pid and are
 * unlinked by the runner even when a test child dies early.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shm.h"

static pid_t runner_pid;

static void seg_name(char *buf, size_t len, int tag)
{
    snprintf(buf, len, "/wschat-shmtest-%d-%d", (int)runner_pid, tag);
}

static void names_setup(void)
{
    runner_pid = getpid();
}

static void names_teardown(void)
{
    char name[64];
    for (int tag = 0; tag < 4; tag++) {
        seg_name(name, sizeof name, tag);
        shm_unlink(name);
    }
}

static struct shm_segment *create(const char *name, uint64_t ring_bytes)
{
    char err[256] = "";
    struct shm_segment *seg = shm_create(name, ring_bytes, err, sizeof err);
    ck_assert_msg(seg != NULL, "shm_create: %s", err);
    return seg;
}

/* stat() of the object behind NAME in /dev/shm; -1 with errno if none. */
static int shm_stat(const char *name, struct stat *st)
{
    char path[128];
    snprintf(path, sizeof path, "/dev/shm%s", name);
    return stat(path, st);
}

/* ---- segment ---------------------------------------------------------- */

START_TEST(create_destroy)
{
    char name[64];
    seg_name(name, sizeof name, 0);
    struct shm_segment *seg = create(name, 65536);
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t ring_off = offsetof(struct shm_segment, ring);

    ck_assert_uint_eq(seg->magic, SHM_MAGIC);
    ck_assert_uint_eq(seg->version, SHM_VERSION);
    ck_assert_uint_eq(seg->nslots, SHM_MAX_SLOTS);
    ck_assert_int_eq(seg->master_pid, getpid());
    ck_assert_uint_eq(seg->total_size % page, 0);
    ck_assert_uint_ge(seg->total_size, ring_off + sizeof(struct ring) + 65536);
    ck_assert_uint_lt(seg->total_size,
                      ring_off + sizeof(struct ring) + 65536 + page);
    /* The ring takes the whole tail of the mapping. */
    ck_assert_uint_eq(seg->ring.capacity,
                      (seg->total_size - ring_off - sizeof(struct ring)) & ~7ull);
    ck_assert_uint_eq(ring_head(&seg->ring), 0);
    ck_assert_uint_eq(ring_next_id(&seg->ring), 1);
    ck_assert_int_eq(seg->slots[7].pid, 0);
    ck_assert_uint_eq(seg->rooms[3].name_len, 0);

    struct stat st;
    ck_assert_int_eq(shm_stat(name, &st), 0);
    ck_assert_uint_eq(st.st_mode & 0777, 0600);
    ck_assert_uint_eq((uint64_t)st.st_size, seg->total_size);

    /* The lock and ring are usable right away. */
    ck_assert_int_eq(lock_acquire(&seg->lock), LOCK_OK);
    char *p = ring_reserve(&seg->ring, 5);
    ck_assert_ptr_nonnull(p);
    memcpy(p, "hello", 5);
    struct ring_entry m;
    memset(&m, 0, sizeof m);
    m.len = 5;
    m.kind = RING_KIND_MESSAGE;
    ck_assert_uint_eq(ring_commit(&seg->ring, &m), 1);
    lock_release(&seg->lock);
    char buf[8];
    uint64_t pos = 0;
    ck_assert_int_eq(ring_read(&seg->ring, &pos, &m, buf, sizeof buf), 5);
    ck_assert_mem_eq(buf, "hello", 5);

    shm_destroy(seg, name);
    ck_assert_int_eq(shm_stat(name, &st), -1);
    ck_assert_int_eq(errno, ENOENT);
}
END_TEST

START_TEST(destroy_keeps_name)
{
    char name[64];
    seg_name(name, sizeof name, 1);
    struct shm_segment *seg = create(name, 4096);
    shm_destroy(seg, NULL);     /* a worker unmapping: the name stays */
    struct stat st;
    ck_assert_int_eq(shm_stat(name, &st), 0);
    ck_assert_int_eq(shm_unlink(name), 0);
}
END_TEST

START_TEST(stale_replaced)
{
    char name[64];
    seg_name(name, sizeof name, 2);
    int fd = shm_open(name, O_CREAT | O_RDWR, 0644);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(fchmod(fd, 0644), 0);    /* whatever the umask */
    ck_assert_int_eq(ftruncate(fd, 8192), 0);
    unsigned char *old = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED,
                              fd, 0);
    ck_assert_ptr_ne(old, MAP_FAILED);
    memset(old, 0x5A, 8192);
    struct stat st_old;
    ck_assert_int_eq(fstat(fd, &st_old), 0);
    close(fd);

    struct shm_segment *seg = create(name, 4096);
    ck_assert_uint_eq(seg->magic, SHM_MAGIC);
    ck_assert_uint_eq(seg->version, SHM_VERSION);
    ck_assert_uint_eq(seg->rooms[0].name_len, 0);
    ck_assert_int_eq(seg->slots[0].pid, 0);
    struct stat st;
    ck_assert_int_eq(shm_stat(name, &st), 0);
    ck_assert_uint_ne(st.st_ino, st_old.st_ino);
    ck_assert_uint_eq(st.st_mode & 0777, 0600);
    /* The stale mapping is a different object, untouched. */
    ck_assert_uint_eq(old[0], 0x5A);
    ck_assert_uint_eq(old[8191], 0x5A);
    munmap(old, 8192);

    /* Creating again replaces the live one as well: no sharing. */
    struct shm_segment *again = create(name, 4096);
    seg->slots[1].pid = 42;
    ck_assert_int_eq(again->slots[1].pid, 0);
    shm_destroy(seg, NULL);
    shm_destroy(again, name);
    ck_assert_int_eq(shm_stat(name, &st), -1);
}
END_TEST

START_TEST(create_errors)
{
    char err[1024] = "";
    ck_assert_ptr_null(shm_create("/wschat/bad", 4096, err, sizeof err));
    ck_assert_msg(strstr(err, "(\"/wschat/bad\") failed: ") != NULL, "%s", err);
    ck_assert_msg(strstr(err, strerror(EINVAL)) != NULL, "%s", err);

    char longname[400];
    memset(longname, 'x', sizeof longname - 1);
    longname[0] = '/';
    longname[sizeof longname - 1] = '\0';
    err[0] = '\0';
    ck_assert_ptr_null(shm_create(longname, 4096, err, sizeof err));
    /* glibc says EINVAL for names longer than NAME_MAX. */
    ck_assert_msg(strstr(err, strerror(ENAMETOOLONG)) != NULL ||
                  strstr(err, strerror(EINVAL)) != NULL, "%s", err);
    ck_assert_msg(strncmp(err, "shm_", 4) == 0, "%s", err);

    char name[64];
    seg_name(name, sizeof name, 3);
    err[0] = '\0';
    ck_assert_ptr_null(shm_create(name, 100, err, sizeof err));
    ck_assert_str_ne(err, "");
    struct stat st;
    ck_assert_int_eq(shm_stat(name, &st), -1);
    /* A NULL or empty error buffer is allowed. */
    ck_assert_ptr_null(shm_create(name, 100, NULL, 0));
}
END_TEST

/* ---- rooms ------------------------------------------------------------- */

static struct shm_segment *room_seg(void)
{
    char name[64];
    seg_name(name, sizeof name, 0);
    struct shm_segment *seg = create(name, 4096);
    shm_unlink(name);           /* the mapping is all these tests need */
    return seg;
}

static int join(struct shm_segment *seg, const char *room, int slot)
{
    return shm_room_join(seg, room, strlen(room), slot);
}

START_TEST(room_presence)
{
    struct shm_segment *seg = room_seg();
    int lobby = join(seg, "lobby", 0);
    ck_assert_int_ge(lobby, 0);
    ck_assert_int_eq(join(seg, "lobby", 0), lobby);
    ck_assert_int_eq(join(seg, "lobby", 5), lobby);
    ck_assert_int_eq(shm_room_online(seg, lobby), 3);
    ck_assert_int_eq(seg->rooms[lobby].online[0], 2);
    ck_assert_int_eq(seg->rooms[lobby].online[5], 1);
    ck_assert_uint_eq(seg->rooms[lobby].name_len, 5);
    ck_assert_mem_eq(seg->rooms[lobby].name, "lobby", 5);

    int lob = join(seg, "lob", 0);            /* a prefix is another room */
    ck_assert_int_ge(lob, 0);
    ck_assert_int_ne(lob, lobby);
    int dev = join(seg, "dev", SHM_MAX_SLOTS - 1);
    ck_assert_int_ge(dev, 0);
    ck_assert_int_ne(dev, lobby);
    ck_assert_int_ne(dev, lob);
    ck_assert_int_eq(shm_room_online(seg, dev), 1);

    shm_room_leave(seg, lobby, 0);
    ck_assert_int_eq(shm_room_online(seg, lobby), 2);
    ck_assert_int_eq(seg->rooms[lobby].online[0], 1);
    shm_room_leave(seg, lobby, 5);
    ck_assert_int_eq(shm_room_online(seg, lobby), 1);
    ck_assert_int_eq(join(seg, "lobby", 9), lobby);
    ck_assert_int_eq(shm_room_online(seg, lobby), 2);

    char full[RING_ROOM_MAX + 1];
    memset(full, 'r', sizeof full);
    ck_assert_int_ge(shm_room_join(seg, full, RING_ROOM_MAX, 1), 0);
    ck_assert_int_eq(shm_room_join(seg, full, RING_ROOM_MAX + 1, 1), -1);
    ck_assert_int_eq(shm_room_join(seg, full, 0, 1), -1);
    ck_assert_int_eq(join(seg, "lobby", -1), -1);
    ck_assert_int_eq(join(seg, "lobby", SHM_MAX_SLOTS), -1);
    ck_assert_int_eq(shm_room_online(seg, lobby), 2);
    ck_assert_int_eq(shm_room_online(seg, -1), 0);
    ck_assert_int_eq(shm_room_online(seg, SHM_MAX_ROOMS), 0);
    shm_room_leave(seg, SHM_MAX_ROOMS, 0);    /* ignored, no crash */
    shm_destroy(seg, NULL);
}
END_TEST

START_TEST(room_table_full)
{
    struct shm_segment *seg = room_seg();
    char room[16];
    for (int k = 0; k < SHM_MAX_ROOMS; k++) {
        snprintf(room, sizeof room, "r%d", k);
        ck_assert_int_eq(join(seg, room, k % 3), k);
    }
    ck_assert_int_eq(join(seg, "one-too-many", 0), -1);
    ck_assert_int_eq(join(seg, "r77", 2), 77);  /* existing rooms still work */
    ck_assert_int_eq(shm_room_online(seg, 77), 2);

    /* Room 500 empties (one member, slot 500 % 3): its entry is reused. */
    shm_room_leave(seg, 500, 500 % 3);
    ck_assert_int_eq(shm_room_online(seg, 500), 0);
    ck_assert_int_eq(join(seg, "newcomer", 1), 500);
    ck_assert_mem_eq(seg->rooms[500].name, "newcomer", 8);
    ck_assert_uint_eq(seg->rooms[500].name_len, 8);
    ck_assert_int_eq(shm_room_online(seg, 500), 1);
    ck_assert_int_eq(seg->rooms[500].online[2], 0);
    /* Its old name is gone and the table is full again. */
    ck_assert_int_eq(join(seg, "r500", 0), -1);
    shm_destroy(seg, NULL);
}
END_TEST

START_TEST(slot_reset)
{
    struct shm_segment *seg = room_seg();
    int a = join(seg, "a", 3);
    join(seg, "a", 3);
    ck_assert_int_eq(join(seg, "a", 4), a);
    int b = join(seg, "b", 3);
    struct shm_slot *s3 = &seg->slots[3], *s4 = &seg->slots[4];
    s3->pid = 1234;
    s3->generation = 2;
    s3->wake_pending = 1;
    s3->counters.conns_accepted = 10;
    s3->counters.rejects_limit = 11;
    s4->pid = 5678;
    s4->wake_pending = 1;
    s4->counters.msgs_in = 12;

    shm_slot_reset(seg, 3);
    ck_assert_int_eq(shm_room_online(seg, a), 1);
    ck_assert_int_eq(shm_room_online(seg, b), 0);
    ck_assert_int_eq(s3->pid, 0);
    ck_assert_uint_eq(s3->generation, 0);
    ck_assert_uint_eq(s3->wake_pending, 0);
    ck_assert_uint_eq(s3->counters.conns_accepted, 0);
    ck_assert_uint_eq(s3->counters.rejects_limit, 0);
    ck_assert_int_eq(s4->pid, 5678);
    ck_assert_uint_eq(s4->wake_pending, 1);
    ck_assert_uint_eq(s4->counters.msgs_in, 12);
    ck_assert_int_eq(seg->rooms[a].online[4], 1);

    /*
     * b has no members left anywhere: its entry could be reused, but while
     * never-used entries remain it stays b's (so b keeps its index).
     */
    int c = join(seg, "c", 0);
    ck_assert_int_ne(c, b);
    ck_assert_int_ne(c, a);
    ck_assert_int_eq(join(seg, "b", 0), b);
    shm_slot_reset(seg, -1);            /* ignored */
    shm_slot_reset(seg, SHM_MAX_SLOTS); /* ignored */
    ck_assert_int_eq(s4->pid, 5678);
    shm_destroy(seg, NULL);
}
END_TEST

#define WORKERS 4
#define JOINS   2000

START_TEST(presence_across_processes)
{
    struct shm_segment *seg = room_seg();
    pid_t pids[WORKERS];
    for (int w = 0; w < WORKERS; w++) {
        pids[w] = fork();
        ck_assert_int_ge(pids[w], 0);
        if (pids[w] == 0) {
            char room[16];
            for (int k = 0; k < JOINS; k++) {
                snprintf(room, sizeof room, "room%d", k % 3);
                if (lock_acquire(&seg->lock) != LOCK_OK)
                    _exit(1);
                int idx = shm_room_join(seg, room, strlen(room), w);
                lock_release(&seg->lock);
                if (idx < 0)
                    _exit(1);
                if (k % 2 == 0)
                    shm_room_leave(seg, idx, w);   /* lock-free */
            }
            _exit(0);
        }
    }
    for (int w = 0; w < WORKERS; w++) {
        int status;
        ck_assert_int_eq(waitpid(pids[w], &status, 0), pids[w]);
        ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    int total = 0;
    for (int k = 0; k < 3; k++) {
        char room[16];
        snprintf(room, sizeof room, "room%d", k);
        ck_assert_int_ge(lock_acquire(&seg->lock), 0);
        int idx = shm_room_join(seg, room, strlen(room), WORKERS);
        lock_release(&seg->lock);
        ck_assert_int_ge(idx, 0);
        total += shm_room_online(seg, idx) - 1;
        for (int w = 0; w < WORKERS; w++)
            ck_assert_int_gt(seg->rooms[idx].online[w], 0);
    }
    ck_assert_int_eq(total, WORKERS * JOINS / 2);
    shm_destroy(seg, NULL);
}
END_TEST

Suite *shm_suite(void)
{
    Suite *s = suite_create("shm");
    TCase *tc = tcase_create("segment");
    tcase_set_timeout(tc, 10);
    tcase_add_unchecked_fixture(tc, names_setup, names_teardown);
    tcase_add_test(tc, create_destroy);
    tcase_add_test(tc, destroy_keeps_name);
    tcase_add_test(tc, stale_replaced);
    tcase_add_test(tc, create_errors);
    suite_add_tcase(s, tc);

    tc = tcase_create("rooms");
    tcase_set_timeout(tc, 20);
    tcase_add_unchecked_fixture(tc, names_setup, names_teardown);
    tcase_add_test(tc, room_presence);
    tcase_add_test(tc, room_table_full);
    tcase_add_test(tc, slot_reset);
    tcase_add_test(tc, presence_across_processes);
    suite_add_tcase(s, tc);
    return s;
}

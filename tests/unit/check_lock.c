/*
 * check_lock: the robust process-shared publish lock (shared/lock.c), and
 * the ring's crash story built on it. Children take the lock and die
 * holding it (SIGKILL or _exit); the parent must get LOCK_RECOVERED well
 * within the 1 s the spec allows, and a ring append killed half-way must
 * leave no visible trace.
 */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lock.h"
#include "ring.h"
#include "shm.h"

struct shared_area {
    struct shm_lock lock;
    volatile uint64_t counter;
};

static struct shared_area *map_area(void)
{
    void *p = mmap(NULL, sizeof(struct shared_area), PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ck_assert_ptr_ne(p, MAP_FAILED);
    struct shared_area *a = p;
    ck_assert_int_eq(lock_init(&a->lock), 0);
    a->counter = 0;
    return a;
}

static void unmap_area(struct shared_area *a)
{
    lock_fini(&a->lock);
    munmap(a, sizeof *a);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void wait_ok(pid_t pid)
{
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 0);
}

/* Fork a child that takes the lock, reports on a pipe, then waits. */
static pid_t spawn_holder(struct shm_lock *l, int *ready_fd)
{
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(p[0]);
        if (lock_acquire(l) != LOCK_OK)
            _exit(1);
        char c = 'L';
        if (write(p[1], &c, 1) != 1)
            _exit(1);
        for (;;)
            pause();
    }
    close(p[1]);
    char c;
    ck_assert_int_eq(read(p[0], &c, 1), 1);
    ck_assert_int_eq(c, 'L');
    *ready_fd = p[0];
    return pid;
}

START_TEST(basic)
{
    struct shared_area *a = map_area();
    ck_assert_int_eq(lock_acquire(&a->lock), LOCK_OK);
    /* Another process sees it held. */
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        _exit(pthread_mutex_trylock(&a->lock.mutex) == EBUSY ? 0 : 1);
    wait_ok(pid);
    lock_release(&a->lock);

    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        if (pthread_mutex_trylock(&a->lock.mutex) != 0)
            _exit(1);
        lock_release(&a->lock);
        _exit(0);
    }
    wait_ok(pid);
    ck_assert_int_eq(lock_acquire(&a->lock), LOCK_OK);
    lock_release(&a->lock);
    unmap_area(a);
}
END_TEST

#define CONTENDERS 4
#define ROUNDS     20000

START_TEST(contention)
{
    struct shared_area *a = map_area();
    pid_t pids[CONTENDERS];
    for (int k = 0; k < CONTENDERS; k++) {
        pids[k] = fork();
        ck_assert_int_ge(pids[k], 0);
        if (pids[k] == 0) {
            for (int n = 0; n < ROUNDS; n++) {
                if (lock_acquire(&a->lock) != LOCK_OK)
                    _exit(1);
                /* A deliberately non-atomic read-modify-write. */
                uint64_t v = a->counter;
                if (n % 64 == 0)
                    sched_yield();
                a->counter = v + 1;
                lock_release(&a->lock);
            }
            _exit(0);
        }
    }
    for (int k = 0; k < CONTENDERS; k++)
        wait_ok(pids[k]);
    ck_assert_uint_eq(a->counter, (uint64_t)CONTENDERS * ROUNDS);
    unmap_area(a);
}
END_TEST

START_TEST(holder_killed)
{
    struct shared_area *a = map_area();
    int fd;
    pid_t pid = spawn_holder(&a->lock, &fd);
    ck_assert_int_eq(kill(pid, SIGKILL), 0);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFSIGNALED(status));

    double t0 = now_s();
    ck_assert_int_eq(lock_acquire(&a->lock), LOCK_RECOVERED);
    ck_assert(now_s() - t0 < 1.0);
    lock_release(&a->lock);
    /* Marked consistent: the next owner finds a normal lock. */
    ck_assert_int_eq(lock_acquire(&a->lock), LOCK_OK);
    lock_release(&a->lock);
    close(fd);
    unmap_area(a);
}
END_TEST

START_TEST(holder_exits)
{
    struct shared_area *a = map_area();
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        if (lock_acquire(&a->lock) != LOCK_OK)
            _exit(1);
        _exit(0);               /* forgets to unlock */
    }
    wait_ok(pid);
    double t0 = now_s();
    ck_assert_int_eq(lock_acquire(&a->lock), LOCK_RECOVERED);
    ck_assert(now_s() - t0 < 1.0);
    lock_release(&a->lock);
    ck_assert_int_eq(lock_acquire(&a->lock), LOCK_OK);
    lock_release(&a->lock);
    unmap_area(a);
}
END_TEST

/* The parent is (most likely) already blocked when the holder dies. */
START_TEST(waiter_woken)
{
    struct shared_area *a = map_area();
    int fd;
    pid_t pid = spawn_holder(&a->lock, &fd);
    pid_t killer = fork();
    ck_assert_int_ge(killer, 0);
    if (killer == 0) {
        struct timespec ts = { 0, 100 * 1000 * 1000 };
        nanosleep(&ts, NULL);
        _exit(kill(pid, SIGKILL) == 0 ? 0 : 1);
    }
    double t0 = now_s();
    ck_assert_int_eq(lock_acquire(&a->lock), LOCK_RECOVERED);
    /* 100 ms until the kill, then the kernel's robust-list wake-up. */
    ck_assert(now_s() - t0 < 1.1);
    lock_release(&a->lock);
    wait_ok(killer);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFSIGNALED(status));
    close(fd);
    unmap_area(a);
}
END_TEST

/* ---- a writer killed inside a ring append ----------------------------- */

/*
 * Set by an unchecked fixture in the runner process, so the forked test
 * sees it too; the runner's teardown unlinks the segment even when a
 * failed assertion ended the test child early.
 */
static pid_t runner_pid;

static void seg_name(char *buf, size_t len)
{
    snprintf(buf, len, "/wschat-locktest-%d", (int)runner_pid);
}

static void names_setup(void)
{
    runner_pid = getpid();
}

static void names_teardown(void)
{
    char name[64];
    seg_name(name, sizeof name);
    shm_unlink(name);
}

static void publish_locked(struct shm_segment *seg, uint32_t len,
                           unsigned char fillc)
{
    int rc = lock_acquire(&seg->lock);
    ck_assert(rc == LOCK_OK || rc == LOCK_RECOVERED);
    unsigned char *p = ring_reserve(&seg->ring, len, NULL);
    ck_assert_ptr_nonnull(p);
    memset(p, fillc, len);
    struct ring_entry m;
    memset(&m, 0, sizeof m);
    m.len = len;
    m.kind = RING_KIND_MESSAGE;
    m.room_len = 5;
    memcpy(m.room, "lobby", 5);
    ring_commit(&seg->ring, &m);
    lock_release(&seg->lock);
}

START_TEST(killed_mid_append)
{
    char name[64], err[256];
    seg_name(name, sizeof name);
    struct shm_segment *seg = shm_create(name, 4096, 64, 0, err, sizeof err);
    ck_assert_msg(seg != NULL, "%s", err);
    struct ring *r = &seg->ring;
    const uint32_t len = 600;
    const uint64_t span = sizeof(struct ring_entry) + 600;

    /* Fill the first lap so that the next reservation must move the tail. */
    uint64_t published = 0;
    while (ring_head(r) + span <= r->capacity) {
        publish_locked(seg, len, (unsigned char)('A' + published));
        published++;
    }
    uint64_t head0 = ring_head(r), tail0 = ring_tail(r);
    ck_assert_uint_eq(tail0, 0);
    ck_assert_uint_eq(ring_last_id(r), published);

    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        if (lock_acquire(&seg->lock) != LOCK_OK)
            _exit(1);
        unsigned char *dst = ring_reserve(r, len, NULL);
        if (dst == NULL)
            _exit(1);
        memset(dst, 0xEE, len / 2);   /* half a frame, then death */
        char c = 'H';
        if (write(p[1], &c, 1) != 1)
            _exit(1);
        for (;;)
            pause();
    }
    char c;
    ck_assert_int_eq(read(p[0], &c, 1), 1);
    kill(pid, SIGKILL);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFSIGNALED(status));

    /* The reservation moved the tail; nothing was published. */
    ck_assert_uint_gt(ring_tail(r), tail0);
    ck_assert_uint_eq(ring_head(r), head0);
    ck_assert_uint_eq(ring_last_id(r), published);
    struct ring_entry m;
    static unsigned char buf[1024];
    uint64_t pos = head0;
    ck_assert_int_eq(ring_read(r, &pos, &m, buf, sizeof buf), RING_EMPTY);
    pos = 0;
    ck_assert_int_eq(ring_read(r, &pos, &m, buf, sizeof buf), RING_LAPPED);

    double t0 = now_s();
    ck_assert_int_eq(lock_acquire(&seg->lock), LOCK_RECOVERED);
    ck_assert(now_s() - t0 < 1.0);
    lock_release(&seg->lock);

    /* The next publish reuses the id the dead writer never committed. */
    publish_locked(seg, len, 'Z');
    ck_assert_uint_eq(ring_last_id(r), published + 1);
    pos = head0;
    ck_assert_int_eq(ring_read(r, &pos, &m, buf, sizeof buf), (ssize_t)len);
    ck_assert_uint_eq(m.id, published + 1);
    for (uint32_t k = 0; k < len; k++)
        ck_assert_uint_eq(buf[k], 'Z');

    /* A reader from the tail sees consecutive, intact entries. */
    pos = ring_tail(r);
    uint64_t prev = 0;
    ssize_t n;
    while ((n = ring_read(r, &pos, &m, buf, sizeof buf)) >= 0) {
        ck_assert_int_eq(n, len);
        ck_assert(prev == 0 || m.id == prev + 1);
        unsigned char want = m.id == published + 1 ? 'Z'
                                                   : (unsigned char)('A' + m.id - 1);
        ck_assert_uint_eq(buf[0], want);
        ck_assert_uint_eq(buf[len - 1], want);
        prev = m.id;
    }
    ck_assert_int_eq(n, RING_EMPTY);
    ck_assert_uint_eq(prev, published + 1);
    close(p[0]);
    close(p[1]);
    shm_destroy(seg);
}
END_TEST

Suite *lock_suite(void)
{
    Suite *s = suite_create("lock");
    TCase *tc = tcase_create("basic");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, basic);
    tcase_add_test(tc, contention);
    suite_add_tcase(s, tc);

    tc = tcase_create("recovery");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, holder_killed);
    tcase_add_test(tc, holder_exits);
    tcase_add_test(tc, waiter_woken);
    suite_add_tcase(s, tc);

    tc = tcase_create("ring_crash");
    tcase_set_timeout(tc, 10);
    tcase_add_unchecked_fixture(tc, names_setup, names_teardown);
    tcase_add_test(tc, killed_mid_append);
    suite_add_tcase(s, tc);
    return s;
}

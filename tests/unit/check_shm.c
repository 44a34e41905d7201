/*
 * check_shm: the shared room segment (shared/shm.c): an unnamed memfd
 * mapping (nothing in /dev/shm, no fd left open, gone from the maps once
 * unmapped), shared with a fork()ed child both ways, header fields, error
 * messages (ring size out of range, more than RAM and swap, a file size
 * limit; the last two in a child under RLIMIT_FSIZE, so a regression can
 * never allocate the machine's memory), the room table in it (counts kept across processes)
 * and resetting a dead worker's slot.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shm.h"

/* A label no other process uses: the runner's pid and a tag. */
static void seg_label(char *buf, size_t len, const char *tag)
{
    snprintf(buf, len, "wschat-shmtest-%d-%s", (int)getpid(), tag);
}

static struct shm_segment *create(const char *label, uint64_t ring_bytes)
{
    char err[256] = "";
    struct shm_segment *seg = shm_create(label, ring_bytes, 64, 0, err, sizeof err);
    ck_assert_msg(seg != NULL, "shm_create: %s", err);
    return seg;
}

/*
 * Mappings of this process whose file is "memfd:LABEL": how many, and
 * their total size into *bytes (may be NULL).
 */
static int maps_count(const char *label, size_t *bytes)
{
    FILE *f = fopen("/proc/self/maps", "r");
    ck_assert_msg(f != NULL, "/proc/self/maps: %s", strerror(errno));
    char want[320], line[512];
    snprintf(want, sizeof want, "/memfd:%s (deleted)\n", label);
    int n = 0;
    size_t total = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        size_t ll = strlen(line), wl = strlen(want);
        if (ll < wl || strcmp(line + ll - wl, want) != 0)
            continue;
        unsigned long lo, hi;
        ck_assert_int_eq(sscanf(line, "%lx-%lx", &lo, &hi), 2);
        total += hi - lo;
        n++;
    }
    fclose(f);
    if (bytes != NULL)
        *bytes = total;
    return n;
}

/* Open fds of this process. */
static int fd_count(void)
{
    DIR *d = opendir("/proc/self/fd");
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1;   /* the one opendir() holds */
}

/* Entries of /dev/shm whose name holds NEEDLE (0 without a /dev/shm). */
static int dev_shm_count(const char *needle)
{
    DIR *d = opendir("/dev/shm");
    if (d == NULL)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += strstr(e->d_name, needle) != NULL;
    closedir(d);
    return n;
}

static void publish(struct shm_segment *seg, const char *text)
{
    ck_assert_int_ge(lock_acquire(&seg->lock), 0);
    char *p = ring_reserve(&seg->ring, (uint32_t)strlen(text), NULL);
    ck_assert_ptr_nonnull(p);
    memcpy(p, text, strlen(text));
    struct ring_entry m;
    memset(&m, 0, sizeof m);
    m.len = (uint32_t)strlen(text);
    m.kind = RING_KIND_MESSAGE;
    ck_assert_uint_gt(ring_commit(&seg->ring, &m), 0);
    lock_release(&seg->lock);
}

/* ---- segment ---------------------------------------------------------- */

START_TEST(create_destroy)
{
    char label[64];
    seg_label(label, sizeof label, "basic");
    int fds = fd_count();
    struct shm_segment *seg = create(label, 65536);
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t ring_off = offsetof(struct shm_segment, ring);

    ck_assert_uint_eq(seg->magic, SHM_MAGIC);
    ck_assert_uint_eq(seg->version, SHM_VERSION);
    ck_assert_uint_eq(seg->nslots, SHM_MAX_SLOTS);
    ck_assert_int_eq(seg->master_pid, getpid());
    ck_assert_uint_eq(seg->total_size % page, 0);
    size_t rooms = room_table_size(64);
    size_t pring = sizeof(struct ring) + (1u << 20);    /* the presence ring's smallest */
    ck_assert_uint_ge(seg->total_size, ring_off + sizeof(struct ring) + 65536 + rooms + pring);
    ck_assert_uint_lt(seg->total_size,
                      ring_off + sizeof(struct ring) + 65536 + rooms + pring + 128 + page);
    /* The ring, then the room table, which ends inside the mapping. */
    ck_assert_uint_ge(seg->ring.capacity, 65536);
    ck_assert_uint_lt(seg->ring.capacity, 65536 + 64);
    ck_assert_uint_ge(seg->rooms_off, ring_off + sizeof(struct ring) + seg->ring.capacity);
    ck_assert_uint_eq(seg->rooms_off % 64, 0);
    ck_assert_uint_le(seg->rooms_off + rooms, seg->total_size);
    ck_assert_uint_eq(shm_rooms(seg)->cap, 64);
    /* The presence ring last, after the rooms, inside the mapping. */
    ck_assert_uint_ge(seg->pring_off, seg->rooms_off + rooms);
    ck_assert_uint_eq(seg->pring_off % 64, 0);
    ck_assert_uint_ge(shm_pring(seg)->capacity, 1u << 20);
    ck_assert_uint_le(seg->pring_off + sizeof(struct ring) + shm_pring(seg)->capacity,
                      seg->total_size);
    ck_assert_uint_eq(ring_head(&seg->ring), 0);
    ck_assert_uint_eq(ring_next_id(&seg->ring), 1);
    ck_assert_int_eq(seg->slots[7].pid, 0);
    ck_assert_int_eq(room_table_find(shm_rooms(seg), "lobby", 5), -ENOENT);

    /* One shared mapping of the whole segment, labelled; no fd kept. */
    size_t mapped = 0;
    ck_assert_int_eq(maps_count(label, &mapped), 1);
    ck_assert_uint_eq(mapped, seg->total_size);
    ck_assert_int_eq(fd_count(), fds);

    /* The lock and ring are usable right away. */
    publish(seg, "hello");
    struct ring_entry m;
    char buf[8];
    uint64_t pos = 0;
    ck_assert_int_eq(ring_read(&seg->ring, &pos, &m, buf, sizeof buf), 5);
    ck_assert_mem_eq(buf, "hello", 5);

    shm_destroy(seg);
    ck_assert_int_eq(maps_count(label, NULL), 0);
    ck_assert_int_eq(fd_count(), fds);
    shm_destroy(NULL);    /* allowed, does nothing */
}
END_TEST

START_TEST(no_name_in_dev_shm)
{
    char label[64];
    seg_label(label, sizeof label, "noname");
    struct shm_segment *seg = create(label, 4096);
    /* Nothing another user could pre-create, open or find left after a crash. */
    ck_assert_int_eq(dev_shm_count(label), 0);
    char path[128];
    snprintf(path, sizeof path, "/dev/shm/%s", label);
    ck_assert_int_eq(shm_open(label, O_RDONLY, 0), -1);
    ck_assert_int_eq(errno, ENOENT);
    ck_assert_int_eq(access(path, F_OK), -1);
    shm_destroy(seg);
    ck_assert_int_eq(dev_shm_count(label), 0);
}
END_TEST

/*
 * A fork()ed child (a worker) and its parent (the master) see each other's
 * writes through the one mapping, in the header and in the ring; the child
 * unmapping its copy leaves the parent's intact.
 */
START_TEST(shared_with_child)
{
    char label[64];
    seg_label(label, sizeof label, "fork");
    struct shm_segment *seg = create(label, 65536);
    int go[2], done[2];
    ck_assert_int_eq(pipe(go), 0);
    ck_assert_int_eq(pipe(done), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        char c;
        if (read(go[0], &c, 1) != 1)
            _exit(10);
        /* The parent wrote these after the fork: a private copy would miss them. */
        if (__atomic_load_n(&seg->slots[2].pid, __ATOMIC_ACQUIRE) != 4242)
            _exit(11);
        struct ring_entry m;
        char buf[32];
        uint64_t pos = 0;
        if (ring_read(&seg->ring, &pos, &m, buf, sizeof buf) != 11 ||
            memcmp(buf, "from parent", 11) != 0)
            _exit(12);
        if (lock_acquire(&seg->lock) < 0)
            _exit(13);
        char *p = ring_reserve(&seg->ring, 10, NULL);
        if (p == NULL)
            _exit(14);
        memcpy(p, "from child", 10);
        memset(&m, 0, sizeof m);
        m.len = 10;
        m.kind = RING_KIND_MESSAGE;
        ring_commit(&seg->ring, &m);
        lock_release(&seg->lock);
        __atomic_store_n(&seg->slots[3].pid, (int32_t)getpid(), __ATOMIC_RELEASE);
        shm_destroy(seg);     /* a worker exiting */
        if (write(done[1], "d", 1) != 1)
            _exit(15);
        _exit(0);
    }
    close(go[0]);
    close(done[1]);     /* a child that dies early then reads as EOF */
    __atomic_store_n(&seg->slots[2].pid, 4242, __ATOMIC_RELEASE);
    publish(seg, "from parent");
    ck_assert_int_eq(write(go[1], "g", 1), 1);
    char c;
    ssize_t got = read(done[0], &c, 1);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "child status 0x%x (exit 1x: it did not see the parent's writes)", status);
    ck_assert_int_eq(got, 1);

    ck_assert_int_eq(__atomic_load_n(&seg->slots[3].pid, __ATOMIC_ACQUIRE), pid);
    ck_assert_int_eq(maps_count(label, NULL), 1);
    struct ring_entry m;
    char buf[32];
    uint64_t pos = 0;
    ck_assert_int_eq(ring_read(&seg->ring, &pos, &m, buf, sizeof buf), 11);
    ck_assert_int_eq(ring_read(&seg->ring, &pos, &m, buf, sizeof buf), 10);
    ck_assert_mem_eq(buf, "from child", 10);
    ck_assert_int_eq(ring_read(&seg->ring, &pos, &m, buf, sizeof buf), RING_EMPTY);
    /* Two creations are two segments: nothing is shared by a name. */
    struct shm_segment *other = create(label, 4096);
    ck_assert_ptr_ne(other, seg);
    ck_assert_int_eq(other->slots[3].pid, 0);
    ck_assert_int_eq(maps_count(label, NULL), 2);
    shm_destroy(other);
    shm_destroy(seg);
    close(go[1]);
    close(done[0]);
}
END_TEST

START_TEST(labels)
{
    /* NULL, a slash, or longer than memfd_create takes: never a failure. */
    int before = maps_count("wschat", NULL);
    struct shm_segment *seg = create(NULL, 4096);
    ck_assert_int_eq(maps_count("wschat", NULL), before + 1);
    shm_destroy(seg);

    char label[64];
    seg_label(label, sizeof label, "a/b");
    seg = create(label, 4096);
    ck_assert_int_eq(maps_count(label, NULL), 1);
    shm_destroy(seg);

    char longlabel[400];
    memset(longlabel, 'x', sizeof longlabel - 1);
    longlabel[sizeof longlabel - 1] = '\0';
    seg = create(longlabel, 4096);
    longlabel[249] = '\0';      /* what the kernel keeps */
    ck_assert_int_eq(maps_count(longlabel, NULL), 1);
    shm_destroy(seg);
}
END_TEST

START_TEST(size_errors)
{
    char label[64], err[1024] = "";
    seg_label(label, sizeof label, "size");
    int fds = fd_count();
    errno = 0;
    ck_assert_ptr_null(shm_create(label, 100, 64, 0, err, sizeof err));
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_msg(strstr(err, "ring size 100 out of range") != NULL, "%s", err);
    err[0] = '\0';
    ck_assert_ptr_null(shm_create(label, UINT64_MAX, 64, 0, err, sizeof err));
    ck_assert_msg(strstr(err, "out of range") != NULL, "%s", err);
    /* A NULL or empty error buffer is allowed. */
    ck_assert_ptr_null(shm_create(label, 100, 64, 0, NULL, 0));
    ck_assert_ptr_null(shm_create(label, 100, 64, 0, err, 0));
    ck_assert_int_eq(maps_count(label, NULL), 0);
    ck_assert_int_eq(fd_count(), fds);
}
END_TEST

/* What create_limited() saw in its child. */
struct limited {
    int  created;               /* shm_create() returned a segment */
    int  err_no;                /* errno after it */
    int  fds_before, fds_after;
    int  maps;                  /* memfd:LABEL mappings left afterwards */
    char err[512];
};

/*
 * shm_create(LABEL, RING_BYTES) in a child under an 8 MiB RLIMIT_FSIZE (the
 * segment's fixed part, ip table included, is under 2 MiB), with
 * SIGXFSZ ignored as the master does. The limit keeps both the runner and
 * the machine safe: a memfd is not bounded by the size of /dev/shm, and
 * posix_fallocate() on one is not interrupted by a signal, so an allocation
 * that slipped past shm_create's checks would otherwise take all memory.
 */
static void create_limited(const char *label, uint64_t ring_bytes, struct limited *out)
{
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct limited r;
        memset(&r, 0, sizeof r);
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = { 8 << 20, 8 << 20 };
        if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
            _exit(3);
        r.fds_before = fd_count();
        errno = 0;
        struct shm_segment *seg = shm_create(label, ring_bytes, 64, 0, r.err, sizeof r.err);
        r.err_no = errno;
        r.created = seg != NULL;
        r.fds_after = fd_count();
        r.maps = maps_count(label, NULL);
        _exit(write(p[1], &r, sizeof r) == (ssize_t)sizeof r ? 0 : 2);
    }
    close(p[1]);
    memset(out, 0, sizeof *out);
    ssize_t n = read(p[0], out, sizeof *out);
    close(p[0]);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0 && n == (ssize_t)sizeof *out,
                  "child status 0x%x, %zd bytes", status, n);
}

/* More than RAM and swap together: refused before a page is taken. */
START_TEST(larger_than_memory)
{
    struct sysinfo si;
    ck_assert_int_eq(sysinfo(&si), 0);
    uint64_t unit = si.mem_unit != 0 ? si.mem_unit : 1;
    uint64_t ram = ((uint64_t)si.totalram + si.totalswap) * unit;
    char label[64];
    seg_label(label, sizeof label, "huge");
    struct limited r;
    create_limited(label, ram + 65536, &r);
    ck_assert_msg(!r.created, "a ring of %llu bytes was created",
                  (unsigned long long)(ram + 65536));
    /* EFBIG here: the check came too late, only the rlimit stopped it. */
    ck_assert_msg(r.err_no == ENOMEM, "errno %d (%s): %s", r.err_no, strerror(r.err_no), r.err);
    ck_assert_msg(strstr(r.err, "RAM and swap") != NULL && strstr(r.err, label) != NULL,
                  "%s", r.err);
    ck_assert_int_eq(r.fds_after, r.fds_before);
    ck_assert_int_eq(r.maps, 0);
}
END_TEST

/*
 * A memfd obeys RLIMIT_FSIZE: with the 8 MiB limit a 16 MiB ring fails at
 * ftruncate() with EFBIG and a message, leaving no fd or mapping behind.
 */
START_TEST(file_size_limit)
{
    char label[64];
    seg_label(label, sizeof label, "fsize");
    struct limited r;
    create_limited(label, 16 << 20, &r);
    ck_assert(!r.created);
    ck_assert_msg(r.err_no == EFBIG, "errno %d: %s", r.err_no, r.err);
    ck_assert_msg(strstr(r.err, "ftruncate() failed") != NULL &&
                  strstr(r.err, strerror(EFBIG)) != NULL && strstr(r.err, label) != NULL,
                  "%s", r.err);
    ck_assert_int_eq(r.fds_after, r.fds_before);
    ck_assert_int_eq(r.maps, 0);
    /* Below the limit the same call works. */
    create_limited(label, 256 << 10, &r);
    ck_assert_msg(r.created, "%s", r.err);
    ck_assert_int_eq(r.maps, 1);
    ck_assert_int_eq(r.fds_after, r.fds_before);
}
END_TEST

/* ---- rooms ------------------------------------------------------------- */

static struct shm_segment *room_seg(void)
{
    char label[64];
    seg_label(label, sizeof label, "rooms");
    return create(label, 4096);
}

static int join(struct shm_segment *seg, const char *room)
{
    return room_table_join(shm_rooms(seg), room, strlen(room), 1, ring_tail(&seg->ring));
}

START_TEST(slot_reset)
{
    struct shm_segment *seg = room_seg();
    int a = join(seg, "a");
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
    /* Counters only: room counts are reset by the table (room_table_request_reset). */
    ck_assert_int_eq(room_table_online(shm_rooms(seg), (uint32_t)a), 1);
    ck_assert_int_eq(s3->pid, 0);
    ck_assert_uint_eq(s3->generation, 0);
    ck_assert_uint_eq(s3->wake_pending, 0);
    ck_assert_uint_eq(s3->counters.conns_accepted, 0);
    ck_assert_uint_eq(s3->counters.rejects_limit, 0);
    ck_assert_int_eq(s4->pid, 5678);
    ck_assert_uint_eq(s4->wake_pending, 1);
    ck_assert_uint_eq(s4->counters.msgs_in, 12);
    shm_slot_reset(seg, -1);            /* ignored */
    shm_slot_reset(seg, SHM_MAX_SLOTS); /* ignored */
    ck_assert_int_eq(s4->pid, 5678);
    shm_destroy(seg);
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
                int idx = join(seg, room);
                if (idx >= 0 && k % 2 == 0)
                    room_table_leave(shm_rooms(seg), (uint32_t)idx);
                lock_release(&seg->lock);
                if (idx < 0)
                    _exit(1);
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
        int idx = room_table_find(shm_rooms(seg), room, strlen(room));
        ck_assert_int_ge(idx, 0);
        total += room_table_online(shm_rooms(seg), (uint32_t)idx);
    }
    ck_assert_int_eq(total, WORKERS * JOINS / 2);
    shm_destroy(seg);
}
END_TEST

Suite *shm_suite(void)
{
    Suite *s = suite_create("shm");
    TCase *tc = tcase_create("segment");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, create_destroy);
    tcase_add_test(tc, no_name_in_dev_shm);
    tcase_add_test(tc, shared_with_child);
    tcase_add_test(tc, labels);
    tcase_add_test(tc, size_errors);
    tcase_add_test(tc, larger_than_memory);
    tcase_add_test(tc, file_size_limit);
    suite_add_tcase(s, tc);

    tc = tcase_create("rooms");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, slot_reset);
    tcase_add_test(tc, presence_across_processes);
    suite_add_tcase(s, tc);
    return s;
}

/*
 * journal: see journal.h. The storage (segments, records, checksums, cuts)
 * is journal_dir.c's; this file is the process that feeds it from the ring
 * and the replay into the ring at start.
 */
#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "chat_publish.h"
#include "config.h"
#include "journal_dir.h"
#include "journal_gate.h"
#include "journal_seg.h"
#include "log.h"
#include "notify.h"
#include "ring.h"
#include "shm.h"
#include "worker.h"

#define RETRY_MS       1000
#define STOP_RETRY_MS  3000     /* a stop waits this long for failing writes */
#define BATCH_MS       10       /* everysec, no: messages gathered per round */
#define SEGMENT_MAX    (64ull * 1024 * 1024)
#define SEGMENT_MIN    (1ull * 1024 * 1024)

static void dir_config(const struct config *cfg, struct journal_config *jc)
{
    memset(jc, 0, sizeof *jc);
    jc->dir = cfg->history_file;
    /* Eight segments or more under history_keep, so deleting one frees an eighth. */
    uint64_t seg = cfg->history_keep / 8;
    jc->segment_bytes = seg > SEGMENT_MAX ? SEGMENT_MAX : seg < SEGMENT_MIN ? SEGMENT_MIN : seg;
    jc->keep_bytes = cfg->history_keep;
    jc->max_frame = JOURNAL_FRAME_MAX;
}

static void log_cuts(const struct journal_report *rep, const char *dir)
{
    for (unsigned i = 0; i < rep->ncuts && i < JOURNAL_CUTS_MAX; i++) {
        const struct journal_cut *c = &rep->cut[i];
        log_write(LOG_LVL_WARN, 0, "history journal %s/%s: %s at offset %llu: %llu bytes cut%s",
                  dir, c->file, c->reason == 0 ? "torn record" : journal_strerror(c->reason),
                  (unsigned long long)c->offset, (unsigned long long)c->bytes,
                  c->removed ? " (file removed)" : "");
    }
    if (rep->ncuts > JOURNAL_CUTS_MAX)
        log_write(LOG_LVL_WARN, 0, "history journal %s: %u more cuts", dir,
                  rep->ncuts - JOURNAL_CUTS_MAX);
}

int journal_check(const struct config *cfg, char *err, size_t errlen)
{
    if (cfg->history_file[0] == '\0')
        return 0;
    /*
     * Without touching anything (-t makes no folder and cuts no tail): the
     * folder, or the nearest folder above it that exists, must be a
     * directory this process can write into.
     */
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s", cfg->history_file);
    for (;;) {
        struct stat st;
        if (stat(path, &st) == 0) {
            if (!S_ISDIR(st.st_mode)) {
                snprintf(err, errlen, "history_file %s: %s is not a folder", cfg->history_file,
                         path);
                return -ENOTDIR;
            }
            if (access(path, W_OK | X_OK) < 0) {
                int e = errno;
                snprintf(err, errlen, "history_file %s: %s is not writable: %s",
                         cfg->history_file, path, strerror(e));
                return -e;
            }
            return 0;
        }
        if (errno != ENOENT) {
            int e = errno;
            snprintf(err, errlen, "history_file %s: %s: %s", cfg->history_file, path,
                     strerror(e));
            return -e;
        }
        char *cut = strrchr(path, '/');
        if (cut == NULL || cut == path) {
            snprintf(path, sizeof path, "/");
            continue;
        }
        *cut = '\0';
    }
}

/*
 * The id of the first record to read back so that what follows fills about
 * RING_BYTES: segments are named by their first id and read newest first
 * until their sizes add up (a ring holds no more; older ones would only be
 * overwritten at once).
 */
static uint64_t restore_from(const char *dir, uint64_t ring_bytes)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    struct journal_seg_list l = { 0 };
    uint64_t from = 0, sum = 0;
    if (journal_seg_list(fd, &l) == 0)
        for (size_t i = l.n; i-- > 0;) {
            sum += l.v[i].size;
            if (sum >= ring_bytes) {
                from = l.v[i].id - 1;
                break;
            }
        }
    free(l.v);
    close(fd);
    return from;
}

int journal_restore(const struct config *cfg, struct shm_segment *seg, uint64_t clock_id,
                    char *err, size_t errlen)
{
    struct ring *r = &seg->ring;
    if (cfg->history_file[0] == '\0') {
        ring_start_ids(r, clock_id);
        return 0;
    }
    /* Open once as the writer: it cuts a torn tail, and says what the journal holds. */
    struct journal_config jc;
    dir_config(cfg, &jc);
    struct journal_report rep;
    struct journal *j;
    int rc = journal_open(&jc, &j, &rep);
    if (rc < 0) {
        snprintf(err, errlen, "history_file %s: %s", cfg->history_file, rep.msg);
        return rc;
    }
    log_cuts(&rep, cfg->history_file);
    journal_close(j);

    uint64_t from = restore_from(cfg->history_file, r->capacity);
    struct journal_reader *rd;
    rc = journal_reader_open(cfg->history_file, from, JOURNAL_FRAME_MAX, &rd);
    if (rc < 0) {
        snprintf(err, errlen, "history_file %s: reading failed: %s", cfg->history_file,
                 strerror(-rc));
        return rc;
    }
    uint64_t restored = 0, skipped = 0, last = rep.last_id, mark = rep.last_mark;
    int started = 0;
    struct journal_record rec;
    while ((rc = journal_reader_next(rd, &rec)) != 0) {
        if (rc == -EBADMSG) {
            const struct journal_cut *c = journal_reader_problem(rd);
            log_write(LOG_LVL_WARN, 0, "history journal %s/%s: %s at offset %llu: "
                      "%llu bytes skipped", cfg->history_file, c->file,
                      c->reason == 0 ? "torn record" : journal_strerror(c->reason),
                      (unsigned long long)c->offset, (unsigned long long)c->bytes);
            continue;
        }
        if (rc < 0) {
            log_write(LOG_LVL_ALERT, -rc, "history journal %s: reading failed after %llu "
                      "messages", cfg->history_file, (unsigned long long)restored);
            break;
        }
        if (rec.id > last)
            last = rec.id;
        if (rec.kind == JOURNAL_MARK) {
            if (rec.id > mark)
                mark = rec.id;
            continue;
        }
        if (!started) {
            ring_start_ids(r, rec.id);
            started = 1;
        }
        if (chat_publish_restore(seg, rec.id, rec.ts_ms, rec.room, rec.room_len, rec.frame,
                                 rec.frame_len) < 0)
            skipped++;      /* larger than this ring's entries, or out of order */
        else
            restored++;
    }
    journal_reader_close(rd);
    uint64_t next = clock_id;
    if (last + 1 > next)
        next = last + 1;
    if (mark + 1 > next)
        next = mark + 1;
    if (!started)
        ring_start_ids(r, next);
    else
        ring_continue_ids(r, next);
    log_write(LOG_LVL_NOTICE, 0, "history journal %s: %llu messages restored%s, ids go on "
              "from %llu", cfg->history_file, (unsigned long long)restored,
              skipped ? " (some too large for this ring_size skipped)" : "",
              (unsigned long long)next);
    __atomic_store_n(&seg->journal.durable_id, next - 1, __ATOMIC_RELEASE);
    seg->journal.always = cfg->history_fsync == CONFIG_FSYNC_ALWAYS;
    __atomic_store_n(&seg->journal.on, 1u, __ATOMIC_RELEASE);
    return 0;
}

/* ---- the journal process ----------------------------------------------------- */

struct follower {
    const struct config *cfg;
    struct shm_segment *seg;
    struct journal_config jc;
    struct journal *j;          /* NULL while it cannot be opened */
    uint64_t pos;               /* ring position of the next entry to look at */
    uint64_t appended;          /* newest id appended (message or mark) */
    uint64_t seen;              /* newest id the ring had given out at the last read */
    uint64_t marked;            /* newest mark appended */
    uint64_t last_sync_ms;
    uint64_t last_mark_ms;
    uint64_t failing_since_ms;  /* 0: writes work */
    uint64_t retry_at_ms;
    int      dirty;             /* appended since the last sync */
    int      sync_failed;       /* the journal must be reopened */
    int      released;          /* the durable id moved this round */
    uint8_t *frame;
    size_t   frame_cap;
};

static uint64_t max_id(const struct shm_segment *seg)
{
    uint64_t a = ring_last_id(&seg->ring);
    uint64_t b = ring_last_id(shm_pring((struct shm_segment *)seg));
    return a > b ? a : b;
}

static void set_failing(struct follower *f, int err, const char *what)
{
    struct shm_journal *sj = &f->seg->journal;
    __atomic_fetch_add(&sj->write_errors, 1, __ATOMIC_RELAXED);
    f->retry_at_ms = worker_clock_ms() + RETRY_MS;
    if (f->failing_since_ms != 0)
        return;         /* once per episode */
    f->failing_since_ms = worker_clock_ms();
    __atomic_store_n(&sj->failing, 1u, __ATOMIC_RELAXED);
    log_write(LOG_LVL_ALERT, err, "history journal %s: %s failed; retrying every second%s",
              f->cfg->history_file, what,
              sj->always ? ", new messages refused meanwhile (history_fsync always)" : "");
}

static void clear_failing(struct follower *f)
{
    if (f->failing_since_ms == 0)
        return;
    log_write(LOG_LVL_NOTICE, 0, "history journal %s: writing again after %llu ms",
              f->cfg->history_file,
              (unsigned long long)(worker_clock_ms() - f->failing_since_ms));
    f->failing_since_ms = 0;
    __atomic_store_n(&f->seg->journal.failing, 0u, __ATOMIC_RELAXED);
}

/* (Re)open the journal: the newest id in it says where to go on in the ring. */
static int reopen(struct follower *f)
{
    if (f->j != NULL) {
        journal_close(f->j);
        f->j = NULL;
    }
    struct journal_report rep;
    int rc = journal_open(&f->jc, &f->j, &rep);
    if (rc < 0) {
        f->j = NULL;
        set_failing(f, -rc, "opening");
        return rc;
    }
    log_cuts(&rep, f->cfg->history_file);
    f->appended = rep.last_id;
    f->marked = rep.last_mark;
    /* From the oldest entry the ring holds, skip what the journal has. */
    struct ring *r = &f->seg->ring;
    uint64_t p = ring_tail(r);
    for (;;) {
        uint64_t q = p;
        struct ring_entry e;
        ssize_t n = ring_peek(r, &q, &e);
        if (n == RING_LAPPED) {
            p = ring_tail(r);
            continue;
        }
        if (n < 0 || e.id > f->appended)
            break;
        p = q;
    }
    f->pos = p;
    return 0;
}

static int append(struct follower *f, const struct journal_record *rec)
{
    int rc = journal_append(f->j, rec);
    if (rc < 0)
        return rc;
    f->appended = rec->id;
    f->dirty = 1;
    __atomic_fetch_add(&f->seg->journal.records, 1, __ATOMIC_RELAXED);
    return 0;
}

/* Append every message the ring has past f->pos. 0, or a write's -errno. */
static int follow(struct follower *f)
{
    struct ring *r = &f->seg->ring;
    /* Read first: every id up to it was committed before it, so the entries
     * up to the ring's head then hold every message with a smaller id. */
    uint64_t seen = max_id(f->seg);
    for (;;) {
        uint64_t q = f->pos;
        struct ring_entry e;
        ssize_t n = ring_read(r, &q, &e, f->frame, f->frame_cap);
        if (n == RING_EMPTY)
            break;
        if (n == RING_LAPPED) {
            uint64_t t = ring_tail(r);
            __atomic_fetch_add(&f->seg->journal.lost, 1, __ATOMIC_RELAXED);
            log_write(LOG_LVL_ALERT, 0, "history journal %s: the ring lapped it; messages "
                      "after id %llu are missing from the journal", f->cfg->history_file,
                      (unsigned long long)f->appended);
            f->pos = t;
            continue;
        }
        if (n < 0) {
            log_write(LOG_LVL_ALERT, 0, "ring entry at %llu unreadable (%zd): skipped",
                      (unsigned long long)f->pos, n);
            f->pos = q;
            continue;
        }
        if (e.kind == RING_KIND_MESSAGE && e.id > f->appended) {
            struct journal_record rec = {
                .id = e.id, .ts_ms = e.ts_ms, .kind = JOURNAL_MESSAGE, .room_len = e.room_len,
                .frame_len = (uint32_t)n, .room = e.room, .frame = f->frame,
            };
            int rc = append(f, &rec);
            if (rc == -EMSGSIZE) {
                log_write(LOG_LVL_ALERT, 0, "message %llu of %zd bytes is too large for the "
                          "history journal: not kept", (unsigned long long)e.id, n);
            } else if (rc < 0) {
                return rc;      /* f->pos stays: it is appended again on retry */
            } else {
                __atomic_store_n(&f->seg->journal.written_id, e.id, __ATOMIC_RELAXED);
            }
        }
        f->pos = q;
    }
    if (seen > f->seen)
        f->seen = seen;
    return 0;
}

/* The newest id given out, as a mark, when it is past every record (ids of presence). */
static int mark(struct follower *f)
{
    if (f->seen <= f->appended || f->seen <= f->marked)
        return 0;
    struct journal_record rec = { .id = f->seen, .ts_ms = 0, .kind = JOURNAL_MARK };
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    rec.ts_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    int rc = append(f, &rec);
    if (rc == 0)
        f->marked = rec.id;
    return rc;
}

static void set_durable(struct follower *f, uint64_t id)
{
    struct shm_journal *sj = &f->seg->journal;
    if (id > __atomic_load_n(&sj->durable_id, __ATOMIC_RELAXED)) {
        __atomic_store_n(&sj->durable_id, id, __ATOMIC_RELEASE);
        f->released = 1;
    }
}

/*
 * Write, mark once a second, and sync as history_fsync says (and for a
 * stop, FINAL); once all that was appended is synced, every id up to what
 * the ring had given out is durable. 0, or -errno (f->sync_failed says
 * whether the sync failed, which needs a reopen).
 */
static int commit(struct follower *f, int final)
{
    uint64_t now = worker_clock_ms();
    int mode = f->cfg->history_fsync;
    /* Under always, every round: a presence id delivered is above a mark on disk. */
    if (final || mode == CONFIG_FSYNC_ALWAYS || now - f->last_mark_ms >= 1000) {
        int rc = mark(f);
        if (rc < 0)
            return rc;
        f->last_mark_ms = now;
    }
    int sync_due = final || mode == CONFIG_FSYNC_ALWAYS ||
                   (mode == CONFIG_FSYNC_EVERYSEC && now - f->last_sync_ms >= 1000);
    if (!(sync_due && f->dirty)) {
        int rc = journal_flush(f->j);
        if (rc == 0 && !f->dirty)
            set_durable(f, f->seen);
        return rc;
    }
    int rc = journal_sync(f->j);
    if (rc < 0) {
        f->sync_failed = 1;
        return rc;
    }
    f->dirty = 0;
    f->last_sync_ms = now;
    __atomic_fetch_add(&f->seg->journal.syncs, 1, __ATOMIC_RELAXED);
    /* Every message up to f->seen is on disk now; the ids between are presence. */
    set_durable(f, f->seen);
    return 0;
}

static int open_signals(void)
{
    sigset_t set;
    sigemptyset(&set);
    int sigs[] = { SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2 };
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        sigaddset(&set, sigs[i]);
    return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

/* Run one round; 1 when everything is written and synced for a stop. */
static int round_trip(struct follower *f, int stopping)
{
    uint64_t now = worker_clock_ms();
    if (f->failing_since_ms != 0 && now < f->retry_at_ms)
        return 0;
    /* A failed sync is sticky in journal_dir: start over from what is on disk. */
    if ((f->j == NULL || f->sync_failed) && reopen(f) < 0)
        return 0;
    f->sync_failed = 0;
    int rc = follow(f);
    if (rc == 0)
        rc = commit(f, stopping);
    if (rc < 0) {
        set_failing(f, -rc, f->sync_failed ? "syncing" : "writing");
        return 0;
    }
    clear_failing(f);
    return stopping;
}

void journal_run(const struct config *cfg, struct shm_segment *seg, const int *eventfds,
                 int wakefd)
{
    /* Named apart from the workers in ps and /proc (comm: 15 bytes at most). */
    prctl(PR_SET_NAME, JOURNAL_COMM, 0, 0, 0);
    int sigfd = open_signals();
    struct follower f;
    memset(&f, 0, sizeof f);
    f.cfg = cfg;
    f.seg = seg;
    dir_config(cfg, &f.jc);
    f.frame_cap = ring_max_entry(&seg->ring);
    f.frame = malloc(f.frame_cap);
    if (sigfd < 0 || f.frame == NULL) {
        log_write(LOG_LVL_ALERT, errno, "history journal: cannot start");
        exit(2);
    }
    f.last_sync_ms = f.last_mark_ms = worker_clock_ms();
    log_write(LOG_LVL_NOTICE, 0, "history journal %s: following the ring (history_fsync %s)",
              cfg->history_file, cfg->history_fsync == CONFIG_FSYNC_ALWAYS ? "always"
              : cfg->history_fsync == CONFIG_FSYNC_EVERYSEC ? "everysec" : "no");
    reopen(&f);
    uint64_t stop_by = 0;       /* 0: not stopping */
    for (;;) {
        struct pollfd pfd[2] = { { .fd = wakefd, .events = POLLIN },
                                 { .fd = sigfd, .events = POLLIN } };
        /* Wake for the once-a-second sync and mark even when nothing is published. */
        int timeout = f.failing_since_ms ? RETRY_MS / 5 : stop_by ? 0 : f.dirty ? 200 : 1000;
        int rc = poll(pfd, 2, timeout);
        if (rc < 0 && errno != EINTR) {
            log_write(LOG_LVL_ALERT, errno, "history journal: poll() failed");
            exit(1);
        }
        /*
         * Woken by a publisher: under everysec and no, let more messages
         * come first (the flag stays set, so publishers write no eventfd
         * meanwhile): one round per BATCH_MS instead of one per message,
         * which would take the worker's core from it at every publish.
         */
        if (rc > 0 && (pfd[0].revents & POLLIN) && stop_by == 0 &&
            cfg->history_fsync != CONFIG_FSYNC_ALWAYS) {
            struct pollfd sp = { .fd = sigfd, .events = POLLIN };
            if (poll(&sp, 1, BATCH_MS) < 0 && errno != EINTR)
                log_write(LOG_LVL_ALERT, errno, "history journal: poll() failed");
        }
        uint64_t v;
        if (read(wakefd, &v, sizeof v) < 0) { /* nothing pending */ }
        /* Re-armed before the ring is read: a commit after this wakes us again. */
        __atomic_store_n(&seg->journal.wake_pending, 0u, __ATOMIC_SEQ_CST);
        struct signalfd_siginfo si;
        while (read(sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
            if ((si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT || si.ssi_signo == SIGQUIT)
                && stop_by == 0)
                stop_by = worker_clock_ms() + STOP_RETRY_MS;
            else if (si.ssi_signo == SIGUSR1 && log_reopen() < 0)
                log_write(LOG_LVL_ALERT, errno, "reopening the log failed");
        }
        f.released = 0;
        if (round_trip(&f, stop_by != 0)) {
            journal_close(f.j);
            log_write(LOG_LVL_NOTICE, 0, "history journal %s: synced up to id %llu, exiting",
                      cfg->history_file, (unsigned long long)seg->journal.durable_id);
            exit(0);
        }
        if (stop_by != 0 && worker_clock_ms() >= stop_by) {
            log_write(LOG_LVL_ALERT, 0, "history journal %s: stopping with writes failing: "
                      "messages after id %llu are not kept", cfg->history_file,
                      (unsigned long long)seg->journal.durable_id);
            exit(1);
        }
        /* Under always, workers deliver up to the durable id: tell them it moved. */
        if (seg->journal.always && f.released)
            notify_all_except(seg, eventfds, -1);
    }
}

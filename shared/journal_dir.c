/*
 * journal_dir: segment files of the history journal (see journal_dir.h).
 *
 * The writer owns the newest segment: bytes appended go to a buffer that
 * belongs to it and are pwrite()n at the segment's written size, so a short
 * or failed write resumes exactly where it stopped. A new segment is only
 * created once the buffer of the previous one is on disk, and its header
 * travels in the buffer with its first record, so a crash leaves either
 * nothing, a torn header (removed at open) or a torn record (cut at open).
 * Reading (the recovery walk at open and the reader) goes through the
 * chunked segment cursor of journal_seg.c.
 */
#include "journal_dir.h"

#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_BUFFER (256u * 1024)
#define MIN_BUFFER     4096u

/* ---- the writer */

struct journal {
    struct journal_config cfg;  /* cfg.dir points at dir */
    char          *dir;
    int            dirfd;
    int            fd;          /* newest segment, -1 before the first append */
    int            prev_fd;     /* the one before it, until its data is synced */
    struct journal_seg_list segs;
    uint64_t       seg_written; /* bytes of the newest segment on disk */
    uint64_t       seg_records;
    uint64_t       total;       /* all segments, buffered bytes included */
    unsigned char *buf;         /* bytes for the end of the newest segment */
    size_t         len, cap;
    uint64_t       last_id, flushed_id, synced_id;
    int            data_dirty;  /* written since the last fdatasync */
    int            dir_dirty;   /* segments created or deleted since the last dir fsync */
    int            failed;      /* sticky -errno of a failed fdatasync */
};

static int say(struct journal_report *rep, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int say(struct journal_report *rep, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rep->msg, sizeof rep->msg, fmt, ap);
    va_end(ap);
    return err;
}

static void add_cut(struct journal_report *rep, uint64_t id, uint64_t offset, uint64_t bytes,
                    int reason, int removed)
{
    if (rep->ncuts < JOURNAL_CUTS_MAX) {
        struct journal_cut *c = &rep->cut[rep->ncuts];
        journal_seg_name(c->file, id);
        c->offset = offset;
        c->bytes = bytes;
        c->reason = reason;
        c->removed = removed;
    }
    rep->ncuts++;
}

/* mkdir -p, each missing component mode 0750. */
static int make_dirs(const char *dir)
{
    char path[PATH_MAX];
    size_t n = strlen(dir);
    if (n >= sizeof path)
        return -ENAMETOOLONG;
    memcpy(path, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (path[i] != '/' && path[i] != '\0')
            continue;
        char c = path[i];
        path[i] = '\0';
        if (mkdir(path, 0750) != 0 && errno != EEXIST)
            return -errno;
        path[i] = c;
    }
    return 0;
}

static int open_dir(struct journal *j, struct journal_report *rep)
{
    const char *dir = j->dir;
    j->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (j->dirfd < 0 && errno == ENOENT) {
        int rc = make_dirs(dir);
        if (rc < 0)
            return say(rep, rc, "journal directory \"%s\": mkdir() failed: %s", dir,
                       strerror(-rc));
        j->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    }
    if (j->dirfd < 0)
        return say(rep, -errno, "journal directory \"%s\": open() failed: %s", dir,
                   strerror(errno));
    if (faccessat(AT_FDCWD, dir, W_OK | X_OK, AT_EACCESS) != 0)
        return say(rep, -errno, "journal directory \"%s\" is not writable: %s", dir,
                   strerror(errno));
    if (flock(j->dirfd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK)
            return say(rep, -EBUSY, "journal directory \"%s\" is in use by another writer",
                       dir);
        return say(rep, -errno, "journal directory \"%s\": flock() failed: %s", dir,
                   strerror(errno));
    }
    return 0;
}

static int all_zero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

/*
 * Check the header of segment S: 0 good, 1 a torn creation (shorter than
 * a header but a valid start of one, or all zeros) when NEWEST allows it,
 * else a negative errno with rep->msg.
 */
static int check_header(struct journal *j, const struct journal_seg *s, int newest,
                        struct journal_report *rep)
{
    char name[JOURNAL_NAME_LEN + 1];
    unsigned char h[JOURNAL_HEADER_LEN];
    struct journal_header hd;
    journal_seg_name(name, s->id);
    int fd = openat(j->dirfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return say(rep, -errno, "%s/%s: open() failed: %s", j->dir, name, strerror(errno));
    ssize_t n;
    do
        n = pread(fd, h, sizeof h, 0);
    while (n < 0 && errno == EINTR);
    int e = errno;
    close(fd);
    if (n < 0)
        return say(rep, -e, "%s/%s: read() failed: %s", j->dir, name, strerror(e));
    ssize_t rc = journal_header_decode(h, (size_t)n, &hd);
    if (rc == JOURNAL_HEADER_LEN && hd.first_id != s->id)
        return say(rep, -EBADMSG, "%s/%s: its header names first id %" PRIu64, j->dir, name,
                   hd.first_id);
    if (rc == JOURNAL_HEADER_LEN)
        return 0;
    if (rc == JOURNAL_ERR_VERSION)
        return say(rep, -ENOTSUP, "%s/%s: journal format version %" PRIu32
                   ", this build reads version %u only", j->dir, name, hd.version,
                   JOURNAL_VERSION);
    if (newest && (rc == 0 || all_zero(h, (size_t)n)))
        return 1;
    return say(rep, -EBADMSG, "%s/%s: not a journal segment: %s", j->dir, name,
               rc == 0 ? "truncated header" : journal_strerror((int)rc));
}

/* Forget the newest segment, deleting its file (it holds no record). */
static int drop_newest(struct journal *j, struct journal_report *rep)
{
    char name[JOURNAL_NAME_LEN + 1];
    struct journal_seg *s = &j->segs.v[j->segs.n - 1];
    journal_seg_name(name, s->id);
    if (unlinkat(j->dirfd, name, 0) != 0 && errno != ENOENT)
        return say(rep, -errno, "%s/%s: unlink() failed: %s", j->dir, name, strerror(errno));
    j->total -= s->size;
    j->segs.n--;
    j->dir_dirty = 1;
    return 0;
}

/*
 * Walk the newest segment's records and cut what follows the last good one.
 * Returns 1 when records are left (j->fd is the segment, open for writing),
 * 0 when none were (the file was removed), or a negative errno.
 */
static int walk_newest(struct journal *j, struct journal_report *rep)
{
    char name[JOURNAL_NAME_LEN + 1];
    struct journal_seg *s = &j->segs.v[j->segs.n - 1];
    struct journal_seg_cursor c;
    struct journal_record rec;
    struct stat st;
    journal_seg_name(name, s->id);
    int fd = openat(j->dirfd, name, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return say(rep, -errno, "%s/%s: open() failed: %s", j->dir, name, strerror(errno));
    int rc = journal_seg_cursor_init(&c, fd, j->cfg.max_frame);
    uint64_t records = 0, last = 0, mark = 0;
    while (rc == 0 && (rc = journal_seg_cursor_next(&c, &rec)) == JOURNAL_SEG_ITEM) {
        rc = 0;
        if (rec.kind == JOURNAL_HEADER)
            continue;
        records++;
        last = rec.id;
        if (rec.kind == JOURNAL_MARK)
            mark = rec.id;
    }
    c.fd = -1;
    journal_seg_cursor_fini(&c);
    if (rc < 0) {
        close(fd);
        return say(rep, rc, "%s/%s: read() failed: %s", j->dir, name, strerror(-rc));
    }
    int reason = rc == JOURNAL_SEG_BAD ? c.d.err : 0;
    uint64_t good = c.d.offset;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return say(rep, -e, "%s/%s: fstat() failed: %s", j->dir, name, strerror(e));
    }
    uint64_t size = (uint64_t)st.st_size;
    if (records == 0) {
        close(fd);
        add_cut(rep, s->id, good, size - good, reason, 1);
        return drop_newest(j, rep);
    }
    if (good < size && ftruncate(fd, (off_t)good) != 0) {
        int e = errno;
        close(fd);
        return say(rep, -e, "%s/%s: cutting the torn tail at %" PRIu64 " failed: %s",
                   j->dir, name, good, strerror(e));
    }
    if (good < size)
        add_cut(rep, s->id, good, size - good, reason, 0);
    /* What a crashed writer left may still be only in the page cache: make
     * it (and the cut) durable, so synced_id starts out true. */
    if (fdatasync(fd) != 0) {
        int e = errno;
        close(fd);
        return say(rep, -e, "%s/%s: fdatasync() failed: %s", j->dir, name, strerror(e));
    }
    j->total = j->total - s->size + good;
    s->size = good;
    j->fd = fd;
    j->seg_written = good;
    j->seg_records = records;
    j->last_id = j->flushed_id = j->synced_id = last;
    rep->last_mark = mark;
    rep->records = records;
    return 1;
}

/* Delete the oldest segments while the total plus INCOMING exceeds keep_bytes. */
static int trim(struct journal *j, uint64_t incoming, unsigned *deleted)
{
    if (j->cfg.keep_bytes == 0)
        return 0;
    while (j->segs.n > 1 && j->total + incoming > j->cfg.keep_bytes) {
        char name[JOURNAL_NAME_LEN + 1];
        journal_seg_name(name, j->segs.v[0].id);
        if (unlinkat(j->dirfd, name, 0) != 0 && errno != ENOENT)
            return -errno;
        j->total -= j->segs.v[0].size;
        memmove(j->segs.v, j->segs.v + 1, (j->segs.n - 1) * sizeof *j->segs.v);
        j->segs.n--;
        j->dir_dirty = 1;
        if (deleted)
            (*deleted)++;
    }
    return 0;
}

static int check_config(const struct journal_config *cfg, struct journal_report *rep)
{
    if (cfg->dir == NULL || cfg->dir[0] == '\0')
        return say(rep, -EINVAL, "journal: no directory given");
    if (cfg->segment_bytes <= JOURNAL_HEADER_LEN)
        return say(rep, -EINVAL, "journal: segment size %" PRIu64 " is too small",
                   cfg->segment_bytes);
    if (cfg->max_frame > JOURNAL_FRAME_LIMIT)
        return say(rep, -EINVAL, "journal: max frame %" PRIu32 " is over the format's limit",
                   cfg->max_frame);
    return 0;
}

static int open_segments(struct journal *j, struct journal_report *rep)
{
    int rc = journal_seg_list(j->dirfd, &j->segs);
    if (rc < 0)
        return say(rep, rc, "journal directory \"%s\": listing failed: %s", j->dir,
                   strerror(-rc));
    for (size_t i = 0; i < j->segs.n; i++)
        j->total += j->segs.v[i].size;
    for (size_t i = 0; i + 1 < j->segs.n; i++)
        if ((rc = check_header(j, &j->segs.v[i], 0, rep)) < 0)
            return rc;
    while (j->segs.n > 0) {
        struct journal_seg *s = &j->segs.v[j->segs.n - 1];
        rc = check_header(j, s, 1, rep);
        if (rc == 1) {
            add_cut(rep, s->id, 0, s->size, 0, 1);
            rc = drop_newest(j, rep);
            if (rc < 0)
                return rc;
            continue;
        }
        if (rc == 0)
            rc = walk_newest(j, rep);
        if (rc != 0)
            return rc < 0 ? rc : 0;
    }
    return 0;
}

int journal_open(const struct journal_config *cfg, struct journal **out,
                 struct journal_report *rep)
{
    struct journal_report local;
    if (rep == NULL)
        rep = &local;
    memset(rep, 0, sizeof *rep);
    *out = NULL;
    int rc = check_config(cfg, rep);
    if (rc < 0)
        return rc;
    struct journal *j = calloc(1, sizeof *j);
    if (j == NULL)
        return say(rep, -ENOMEM, "journal: out of memory");
    j->cfg = *cfg;
    if (j->cfg.buffer_bytes == 0)
        j->cfg.buffer_bytes = DEFAULT_BUFFER;
    if (j->cfg.buffer_bytes < MIN_BUFFER)
        j->cfg.buffer_bytes = MIN_BUFFER;
    j->fd = j->prev_fd = j->dirfd = -1;
    j->dir = strdup(cfg->dir);
    j->cap = j->cfg.buffer_bytes;
    j->buf = malloc(j->cap);
    if (j->dir == NULL || j->buf == NULL) {
        journal_close(j);
        return say(rep, -ENOMEM, "journal: out of memory");
    }
    j->cfg.dir = j->dir;
    if ((rc = open_dir(j, rep)) < 0 || (rc = open_segments(j, rep)) < 0) {
        journal_close(j);
        return rc;
    }
    rc = trim(j, 0, &rep->deleted);
    if (rc == 0 && j->dir_dirty && fsync(j->dirfd) != 0)
        rc = -errno;
    if (rc < 0) {
        journal_close(j);
        return say(rep, rc, "journal directory \"%s\": deleting old segments failed: %s",
                   cfg->dir, strerror(-rc));
    }
    j->dir_dirty = 0;
    rep->first_id = j->segs.n ? j->segs.v[0].id : 0;
    rep->last_id = j->last_id;
    rep->bytes = j->total;
    rep->segments = (unsigned)j->segs.n;
    *out = j;
    return 0;
}

static void shrink_buffer(struct journal *j)
{
    if (j->cap <= j->cfg.buffer_bytes)
        return;
    unsigned char *b = realloc(j->buf, j->cfg.buffer_bytes);
    if (b != NULL) {
        j->buf = b;
        j->cap = j->cfg.buffer_bytes;
    }
}

int journal_flush(struct journal *j)
{
    if (j->failed)
        return j->failed;
    size_t done = 0;
    int rc = 0;
    while (done < j->len) {
        ssize_t n = pwrite(j->fd, j->buf + done, j->len - done, (off_t)j->seg_written);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = n < 0 ? -errno : -EIO;
            break;
        }
        done += (size_t)n;
        j->seg_written += (uint64_t)n;
        j->data_dirty = 1;
    }
    if (done > 0) {
        memmove(j->buf, j->buf + done, j->len - done);
        j->len -= done;
    }
    if (j->len == 0) {
        j->flushed_id = j->last_id;
        shrink_buffer(j);
    }
    return rc;
}

static int fail(struct journal *j, int err)
{
    j->failed = err;
    return err;
}

/* Start the segment that REC (id) opens: the current one is flushed first. */
static int rotate(struct journal *j, uint64_t id)
{
    char name[JOURNAL_NAME_LEN + 1];
    int rc;
    if (j->fd >= 0 && (rc = journal_flush(j)) < 0)
        return rc;
    if (j->prev_fd >= 0) {          /* two rotations without a sync in between */
        if (fdatasync(j->prev_fd) != 0)
            return fail(j, -errno);
        close(j->prev_fd);
        j->prev_fd = -1;
    }
    if ((rc = journal_seg_reserve(&j->segs, 1)) < 0)
        return rc;
    journal_seg_name(name, id);
    int fd = openat(j->dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (fd < 0)
        return -errno;
    j->prev_fd = j->fd;
    j->fd = fd;
    j->segs.v[j->segs.n].id = id;
    j->segs.v[j->segs.n++].size = JOURNAL_HEADER_LEN;
    j->total += JOURNAL_HEADER_LEN;
    j->seg_written = 0;
    j->seg_records = 0;
    j->dir_dirty = 1;
    /* the buffer is empty (flushed above) and at least MIN_BUFFER long */
    j->len = (size_t)journal_header_encode(j->buf, j->cap, id);
    return 0;
}

int journal_append(struct journal *j, const struct journal_record *rec)
{
    if (j->failed)
        return j->failed;
    size_t size = journal_record_size(rec);
    if (size == 0 || rec->id <= j->last_id)
        return -EINVAL;
    if (rec->kind == JOURNAL_MESSAGE && rec->frame_len > j->cfg.max_frame)
        return -EMSGSIZE;
    int rc;
    struct journal_seg *cur = j->segs.n ? &j->segs.v[j->segs.n - 1] : NULL;
    if (j->fd < 0 || (j->seg_records > 0 && cur->size + size > j->cfg.segment_bytes)) {
        if ((rc = rotate(j, rec->id)) < 0)
            return rc;
        cur = &j->segs.v[j->segs.n - 1];
    }
    if ((rc = trim(j, size, NULL)) < 0)
        return rc;
    cur = &j->segs.v[j->segs.n - 1];
    if (j->cap - j->len < size && j->len > 0 && (rc = journal_flush(j)) < 0)
        return rc;
    if (j->cap - j->len < size) {
        unsigned char *b = realloc(j->buf, j->len + size);
        if (b == NULL)
            return -ENOMEM;
        j->buf = b;
        j->cap = j->len + size;
    }
    journal_record_encode(j->buf + j->len, size, rec);
    j->len += size;
    cur->size += size;
    j->total += size;
    j->seg_records++;
    j->last_id = rec->id;
    return 0;
}

int journal_sync(struct journal *j)
{
    int rc = journal_flush(j);
    if (rc < 0)
        return rc;
    if (j->prev_fd >= 0) {
        if (fdatasync(j->prev_fd) != 0)
            return fail(j, -errno);
        close(j->prev_fd);
        j->prev_fd = -1;
    }
    if (j->data_dirty && j->fd >= 0 && fdatasync(j->fd) != 0)
        return fail(j, -errno);
    j->data_dirty = 0;
    if (j->dir_dirty && fsync(j->dirfd) != 0)
        return fail(j, -errno);
    j->dir_dirty = 0;
    j->synced_id = j->last_id;
    return 0;
}

void journal_stat(const struct journal *j, struct journal_stat *st)
{
    memset(st, 0, sizeof *st);
    st->first_id = j->segs.n ? j->segs.v[0].id : 0;
    st->last_id = j->last_id;
    st->flushed_id = j->flushed_id;
    st->synced_id = j->synced_id;
    st->bytes = j->total;
    st->buffered = j->len;
    st->segments = (unsigned)j->segs.n;
}

int journal_close(struct journal *j)
{
    if (j == NULL)
        return 0;
    int rc = j->failed;
    if (rc == 0 && j->len > 0)
        rc = journal_flush(j);
    if (j->fd >= 0)
        close(j->fd);
    if (j->prev_fd >= 0)
        close(j->prev_fd);
    if (j->dirfd >= 0)
        close(j->dirfd);
    free(j->segs.v);
    free(j->buf);
    free(j->dir);
    free(j);
    return rc;
}

/* ---- the reader */

struct journal_reader {
    int             dirfd;
    struct journal_seg_list segs;
    struct journal_seg_cursor   cur;        /* cur.fd >= 0 while a segment is open */
    uint64_t        cur_id;     /* the open segment's first id */
    uint64_t        seek_id;    /* none open: the next is the first with id >= this */
    uint64_t        from_id;
    uint64_t        last_id;    /* newest id seen (returned or skipped) */
    int             recheck;    /* at the end of a segment with a newer one: read once more */
    int             done;       /* the segment named UINT64_MAX was read */
    uint32_t        max_frame;
    struct journal_cut problem;
};

int journal_reader_open(const char *dir, uint64_t from_id, uint32_t max_frame,
                        struct journal_reader **out)
{
    *out = NULL;
    struct journal_reader *r = calloc(1, sizeof *r);
    if (r == NULL)
        return -ENOMEM;
    r->cur.fd = -1;
    r->from_id = from_id;
    r->max_frame = max_frame < JOURNAL_FRAME_LIMIT ? max_frame : JOURNAL_FRAME_LIMIT;
    r->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = r->dirfd < 0 ? -errno : journal_seg_list(r->dirfd, &r->segs);
    if (rc < 0) {
        journal_reader_close(r);
        return rc;
    }
    /* ids in a segment are >= its name and < the next one's: the newest
     * segment named <= from_id + 1 is the first that can hold from_id + 1 */
    size_t k = journal_seg_after(&r->segs, from_id == UINT64_MAX ? from_id : from_id + 1);
    r->seek_id = k > 0 ? r->segs.v[k - 1].id : 0;
    *out = r;
    return 0;
}

static void reader_close_seg(struct journal_reader *r)
{
    journal_seg_cursor_fini(&r->cur);
    r->recheck = 0;
    if (r->cur_id == UINT64_MAX)
        r->done = 1;
    else
        r->seek_id = r->cur_id + 1;
}

/* The segment after the open one is known, after listing again if needed. */
static int reader_has_next(struct journal_reader *r)
{
    if (journal_seg_after(&r->segs, r->cur_id) < r->segs.n)
        return 1;
    int rc = journal_seg_list(r->dirfd, &r->segs);
    if (rc < 0)
        return rc;
    return journal_seg_after(&r->segs, r->cur_id) < r->segs.n;
}

static int reader_problem(struct journal_reader *r, int reason, uint64_t offset)
{
    struct stat st;
    struct journal_cut *p = &r->problem;
    journal_seg_name(p->file, r->cur_id);
    p->offset = offset;
    p->bytes = fstat(r->cur.fd, &st) == 0 && (uint64_t)st.st_size > offset
                   ? (uint64_t)st.st_size - offset : 0;
    p->reason = reason;
    p->removed = 0;
    reader_close_seg(r);
    return -EBADMSG;
}

/* Open the first segment with id >= seek_id: 1, 0 when there is none, or -errno. */
static int reader_open_seg(struct journal_reader *r)
{
    for (int relisted = 0;;) {
        size_t k = r->seek_id ? journal_seg_after(&r->segs, r->seek_id - 1) : 0;
        if (k == r->segs.n) {
            if (relisted++)
                return 0;
            int rc = journal_seg_list(r->dirfd, &r->segs);
            if (rc < 0)
                return rc;
            continue;
        }
        char name[JOURNAL_NAME_LEN + 1];
        journal_seg_name(name, r->segs.v[k].id);
        int fd = openat(r->dirfd, name, O_RDONLY | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT) {        /* deleted by the writer's trim */
            if (r->segs.v[k].id == UINT64_MAX) {
                r->done = 1;
                return 0;
            }
            r->seek_id = r->segs.v[k].id + 1;
            continue;
        }
        if (fd < 0)
            return -errno;
        int rc = journal_seg_cursor_init(&r->cur, fd, r->max_frame);
        if (rc < 0) {
            journal_seg_cursor_fini(&r->cur);
            return rc;
        }
        r->cur_id = r->segs.v[k].id;
        return 1;
    }
}

int journal_reader_next(struct journal_reader *r, struct journal_record *rec)
{
    for (;;) {
        int rc;
        if (r->done)
            return 0;
        if (r->cur.fd < 0 && (rc = reader_open_seg(r)) <= 0)
            return rc;
        rc = journal_seg_cursor_next(&r->cur, rec);
        if (rc == JOURNAL_SEG_ITEM) {
            if (rec->kind == JOURNAL_HEADER) {
                if (rec->id != r->cur_id)
                    return reader_problem(r, JOURNAL_ERR_HEADER, 0);
                continue;
            }
            if (rec->id <= r->last_id)
                return reader_problem(r, JOURNAL_ERR_ORDER,
                                      r->cur.d.offset - journal_record_size(rec));
            r->last_id = rec->id;
            r->recheck = 0;
            if (rec->id > r->from_id)
                return 1;
            continue;
        }
        if (rc == JOURNAL_SEG_BAD)
            return reader_problem(r, r->cur.d.err, r->cur.d.offset);
        if (rc < 0)
            return rc;
        /* the end of this segment's bytes, for now */
        if ((rc = reader_has_next(r)) <= 0)
            return rc;
        /* A writer finishes a segment before it creates the next: read this
         * one again now that the next is seen, then judge its tail. */
        if (!r->recheck) {
            r->recheck = 1;
            continue;
        }
        if (r->cur.len > r->cur.pos || !r->cur.d.have_header)
            return reader_problem(r, 0, r->cur.d.offset);
        reader_close_seg(r);
    }
}

const struct journal_cut *journal_reader_problem(const struct journal_reader *r)
{
    return &r->problem;
}

uint64_t journal_reader_first_id(const struct journal_reader *r)
{
    return r->segs.n > 0 ? r->segs.v[0].id : 0;
}

void journal_reader_close(struct journal_reader *r)
{
    if (r == NULL)
        return;
    journal_seg_cursor_fini(&r->cur);
    if (r->dirfd >= 0)
        close(r->dirfd);
    free(r->segs.v);
    free(r);
}

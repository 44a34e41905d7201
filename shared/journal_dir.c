/*
 * journal_dir: segment files of the history journal (see journal_dir.h).
 *
 * The writer owns the newest segment: bytes appended go to a buffer that
 * belongs to it and are pwrite()n at the segment's written size, so a short
 * or failed write resumes exactly where it stopped. A new segment is only
 * created once the buffer of the previous one is on disk, and its header
 * travels in the buffer with its first record, so a crash leaves either
 * nothing, a torn header (removed at open) or a torn record (cut at open).
 * Reading (the recovery walk at open and the reader) goes through a cursor
 * that pread()s a segment in chunks into a buffer of at most one record
 * (or one chunk) and hands the bytes to the incremental decoder.
 */
#include "journal_dir.h"

#include <dirent.h>
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
#define READ_CHUNK     (64u * 1024)

/* ---- the list of segments, oldest first */

struct seg {
    uint64_t id;            /* first id: the file's name */
    uint64_t size;          /* bytes (the writer's newest: buffered ones included) */
};

struct seg_list {
    struct seg *v;
    size_t n, cap;
};

static int list_reserve(struct seg_list *l, size_t more)
{
    if (l->n + more <= l->cap)
        return 0;
    size_t cap = l->cap ? l->cap * 2 : 16;
    while (cap < l->n + more)
        cap *= 2;
    struct seg *v = realloc(l->v, cap * sizeof *v);
    if (v == NULL)
        return -ENOMEM;
    l->v = v;
    l->cap = cap;
    return 0;
}

static void seg_name(char *out, uint64_t id)
{
    snprintf(out, JOURNAL_NAME_LEN + 1, "%020" PRIu64 ".wsj", id);
}

/* 1 with *id when NAME is a segment's ("%020llu.wsj", within 64 bits). */
static int parse_name(const char *name, uint64_t *id)
{
    if (strlen(name) != JOURNAL_NAME_LEN || strcmp(name + 20, ".wsj") != 0)
        return 0;
    uint64_t v = 0;
    for (int i = 0; i < 20; i++) {
        if (name[i] < '0' || name[i] > '9')
            return 0;
        uint64_t d = (uint64_t)(name[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return 0;
        v = v * 10 + d;
    }
    *id = v;
    return v > 0;
}

static int seg_cmp(const void *a, const void *b)
{
    uint64_t x = ((const struct seg *)a)->id, y = ((const struct seg *)b)->id;
    return x < y ? -1 : x > y;
}

/* Replace L with the regular files of DIRFD named like segments, sorted. */
static int list_segments(int dirfd, struct seg_list *l)
{
    int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    DIR *d = fdopendir(fd);
    if (d == NULL) {
        int e = errno;
        close(fd);
        return -e;
    }
    int rc = 0;
    l->n = 0;
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(d);
        if (e == NULL) {
            rc = -errno;
            break;
        }
        uint64_t id;
        struct stat st;
        if (!parse_name(e->d_name, &id))
            continue;
        if (fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
            if (errno == ENOENT)            /* deleted since readdir() saw it */
                continue;
            rc = -errno;
            break;
        }
        if (!S_ISREG(st.st_mode))
            continue;
        if ((rc = list_reserve(l, 1)) < 0)
            break;
        l->v[l->n].id = id;
        l->v[l->n++].size = (uint64_t)st.st_size;
    }
    closedir(d);
    if (rc == 0 && l->n > 1)
        qsort(l->v, l->n, sizeof *l->v, seg_cmp);
    return rc;
}

/* Index of the first segment whose id is > ID (l->n when none). */
static size_t first_after(const struct seg_list *l, uint64_t id)
{
    size_t lo = 0, hi = l->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (l->v[mid].id <= id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* ---- cursor: one segment through the decoder, in bounded chunks */

enum { CUR_END = 0, CUR_ITEM = 1, CUR_BAD = 2 };

struct cursor {
    int            fd;
    unsigned char *buf;
    size_t         cap, len, pos, max;  /* unconsumed bytes: buf[pos..len) */
    uint64_t       read_off;            /* file bytes read so far */
    struct journal_decoder d;
};

static int cursor_init(struct cursor *c, int fd, uint32_t max_frame)
{
    memset(c, 0, sizeof *c);
    uint64_t max = JOURNAL_RECORD_MAX(max_frame);
    c->max = max > READ_CHUNK ? (size_t)max : READ_CHUNK;
    c->cap = READ_CHUNK;
    c->buf = malloc(c->cap);
    c->fd = fd;
    journal_decoder_init(&c->d, max_frame);
    return c->buf != NULL ? 0 : -ENOMEM;
}

static void cursor_fini(struct cursor *c)
{
    free(c->buf);
    if (c->fd >= 0)
        close(c->fd);
    c->buf = NULL;
    c->fd = -1;
}

/*
 * CUR_ITEM with *rec (pointing into the cursor's buffer), CUR_END at the end
 * of the file (c->len - c->pos bytes of an unfinished item left; a later
 * call reads on from there), CUR_BAD at a decode error (c->d.err, at
 * c->d.offset), or -errno.
 */
static int cursor_next(struct cursor *c, struct journal_record *rec)
{
    for (;;) {
        ssize_t n = journal_decode(&c->d, c->buf + c->pos, c->len - c->pos, rec);
        if (n > 0) {
            c->pos += (size_t)n;
            return CUR_ITEM;
        }
        if (n < 0)
            return CUR_BAD;
        if (c->pos > 0) {
            memmove(c->buf, c->buf + c->pos, c->len - c->pos);
            c->len -= c->pos;
            c->pos = 0;
        }
        if (c->len == c->cap) {
            /* the decoder bounds a record to c->max bytes, so this ends */
            size_t cap = c->cap * 2 < c->max ? c->cap * 2 : c->max;
            if (cap <= c->cap)
                return -EOVERFLOW;
            unsigned char *b = realloc(c->buf, cap);
            if (b == NULL)
                return -ENOMEM;
            c->buf = b;
            c->cap = cap;
        }
        ssize_t r = pread(c->fd, c->buf + c->len, c->cap - c->len, (off_t)c->read_off);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r == 0)
            return CUR_END;
        c->len += (size_t)r;
        c->read_off += (uint64_t)r;
    }
}

/* ---- the writer */

struct journal {
    struct journal_config cfg;  /* cfg.dir points at dir */
    char          *dir;
    int            dirfd;
    int            fd;          /* newest segment, -1 before the first append */
    int            prev_fd;     /* the one before it, until its data is synced */
    struct seg_list segs;
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
        seg_name(c->file, id);
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
static int check_header(struct journal *j, const struct seg *s, int newest,
                        struct journal_report *rep)
{
    char name[JOURNAL_NAME_LEN + 1];
    unsigned char h[JOURNAL_HEADER_LEN];
    struct journal_header hd;
    seg_name(name, s->id);
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
    struct seg *s = &j->segs.v[j->segs.n - 1];
    seg_name(name, s->id);
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
    struct seg *s = &j->segs.v[j->segs.n - 1];
    struct cursor c;
    struct journal_record rec;
    struct stat st;
    seg_name(name, s->id);
    int fd = openat(j->dirfd, name, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return say(rep, -errno, "%s/%s: open() failed: %s", j->dir, name, strerror(errno));
    int rc = cursor_init(&c, fd, j->cfg.max_frame);
    uint64_t records = 0, last = 0, mark = 0;
    while (rc == 0 && (rc = cursor_next(&c, &rec)) == CUR_ITEM) {
        rc = 0;
        if (rec.kind == JOURNAL_HEADER)
            continue;
        records++;
        last = rec.id;
        if (rec.kind == JOURNAL_MARK)
            mark = rec.id;
    }
    c.fd = -1;
    cursor_fini(&c);
    if (rc < 0) {
        close(fd);
        return say(rep, rc, "%s/%s: read() failed: %s", j->dir, name, strerror(-rc));
    }
    int reason = rc == CUR_BAD ? c.d.err : 0;
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
    if (good < size) {
        if (ftruncate(fd, (off_t)good) != 0 || fdatasync(fd) != 0) {
            int e = errno;
            close(fd);
            return say(rep, -e, "%s/%s: cutting the torn tail at %" PRIu64 " failed: %s",
                       j->dir, name, good, strerror(e));
        }
        add_cut(rep, s->id, good, size - good, reason, 0);
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
        seg_name(name, j->segs.v[0].id);
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
    int rc = list_segments(j->dirfd, &j->segs);
    if (rc < 0)
        return say(rep, rc, "journal directory \"%s\": listing failed: %s", j->dir,
                   strerror(-rc));
    for (size_t i = 0; i < j->segs.n; i++)
        j->total += j->segs.v[i].size;
    for (size_t i = 0; i + 1 < j->segs.n; i++)
        if ((rc = check_header(j, &j->segs.v[i], 0, rep)) < 0)
            return rc;
    while (j->segs.n > 0) {
        struct seg *s = &j->segs.v[j->segs.n - 1];
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
    if ((rc = list_reserve(&j->segs, 1)) < 0)
        return rc;
    seg_name(name, id);
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
    struct seg *cur = j->segs.n ? &j->segs.v[j->segs.n - 1] : NULL;
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
    struct seg_list segs;
    struct cursor   cur;        /* cur.fd >= 0 while a segment is open */
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
    int rc = r->dirfd < 0 ? -errno : list_segments(r->dirfd, &r->segs);
    if (rc < 0) {
        journal_reader_close(r);
        return rc;
    }
    /* ids in a segment are >= its name and < the next one's: the newest
     * segment named <= from_id + 1 is the first that can hold from_id + 1 */
    size_t k = first_after(&r->segs, from_id == UINT64_MAX ? from_id : from_id + 1);
    r->seek_id = k > 0 ? r->segs.v[k - 1].id : 0;
    *out = r;
    return 0;
}

static void reader_close_seg(struct journal_reader *r)
{
    cursor_fini(&r->cur);
    r->recheck = 0;
    if (r->cur_id == UINT64_MAX)
        r->done = 1;
    else
        r->seek_id = r->cur_id + 1;
}

/* The segment after the open one is known, after listing again if needed. */
static int reader_has_next(struct journal_reader *r)
{
    if (first_after(&r->segs, r->cur_id) < r->segs.n)
        return 1;
    int rc = list_segments(r->dirfd, &r->segs);
    if (rc < 0)
        return rc;
    return first_after(&r->segs, r->cur_id) < r->segs.n;
}

static int reader_problem(struct journal_reader *r, int reason, uint64_t offset)
{
    struct stat st;
    struct journal_cut *p = &r->problem;
    seg_name(p->file, r->cur_id);
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
        size_t k = r->seek_id ? first_after(&r->segs, r->seek_id - 1) : 0;
        if (k == r->segs.n) {
            if (relisted++)
                return 0;
            int rc = list_segments(r->dirfd, &r->segs);
            if (rc < 0)
                return rc;
            continue;
        }
        char name[JOURNAL_NAME_LEN + 1];
        seg_name(name, r->segs.v[k].id);
        int fd = openat(r->dirfd, name, O_RDONLY | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT) {        /* deleted by the writer's trim */
            r->seek_id = r->segs.v[k].id + 1;
            continue;
        }
        if (fd < 0)
            return -errno;
        int rc = cursor_init(&r->cur, fd, r->max_frame);
        if (rc < 0) {
            cursor_fini(&r->cur);
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
        rc = cursor_next(&r->cur, rec);
        if (rc == CUR_ITEM) {
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
        if (rc == CUR_BAD)
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

void journal_reader_close(struct journal_reader *r)
{
    if (r == NULL)
        return;
    cursor_fini(&r->cur);
    if (r->dirfd >= 0)
        close(r->dirfd);
    free(r->segs.v);
    free(r);
}

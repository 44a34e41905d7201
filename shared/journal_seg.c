/*
 * journal_seg: segment names, the directory listing and the chunked
 * segment cursor (see journal_seg.h). The cursor hands the decoder every
 * byte it has kept plus what one pread() adds, growing its buffer only up
 * to one whole record; a file that grows under it (a live writer) is read
 * on from where it stopped. Callers: journal_dir.c.
 */
#include "journal_seg.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define READ_CHUNK (64u * 1024)

int journal_seg_reserve(struct journal_seg_list *l, size_t more)
{
    if (l->n + more <= l->cap)
        return 0;
    size_t cap = l->cap ? l->cap * 2 : 16;
    while (cap < l->n + more)
        cap *= 2;
    struct journal_seg *v = realloc(l->v, cap * sizeof *v);
    if (v == NULL)
        return -ENOMEM;
    l->v = v;
    l->cap = cap;
    return 0;
}

void journal_seg_name(char *out, uint64_t id)
{
    snprintf(out, JOURNAL_NAME_LEN + 1, "%020" PRIu64 ".wsj", id);
}

/* 1 with *id when NAME is a segment's ("%020llu.wsj", within 64 bits). */
int journal_seg_parse_name(const char *name, uint64_t *id)
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
    uint64_t x = ((const struct journal_seg *)a)->id, y = ((const struct journal_seg *)b)->id;
    return x < y ? -1 : x > y;
}

/* Replace L with the regular files of DIRFD named like segments, sorted. */
int journal_seg_list(int dirfd, struct journal_seg_list *l)
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
        if (!journal_seg_parse_name(e->d_name, &id))
            continue;
        if (fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
            if (errno == ENOENT)            /* deleted since readdir() saw it */
                continue;
            rc = -errno;
            break;
        }
        if (!S_ISREG(st.st_mode))
            continue;
        if ((rc = journal_seg_reserve(l, 1)) < 0)
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
size_t journal_seg_after(const struct journal_seg_list *l, uint64_t id)
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


int journal_seg_cursor_init(struct journal_seg_cursor *c, int fd, uint32_t max_frame)
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

void journal_seg_cursor_fini(struct journal_seg_cursor *c)
{
    free(c->buf);
    if (c->fd >= 0)
        close(c->fd);
    c->buf = NULL;
    c->fd = -1;
}

/*
 * JOURNAL_SEG_ITEM with *rec (pointing into the cursor's buffer), JOURNAL_SEG_END at the end
 * of the file (c->len - c->pos bytes of an unfinished item left; a later
 * call reads on from there), JOURNAL_SEG_BAD at a decode error (c->d.err, at
 * c->d.offset), or -errno.
 */
int journal_seg_cursor_next(struct journal_seg_cursor *c, struct journal_record *rec)
{
    for (;;) {
        ssize_t n = journal_decode(&c->d, c->buf + c->pos, c->len - c->pos, rec);
        if (n > 0) {
            c->pos += (size_t)n;
            return JOURNAL_SEG_ITEM;
        }
        if (n < 0)
            return JOURNAL_SEG_BAD;
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
            return JOURNAL_SEG_END;
        c->len += (size_t)r;
        c->read_off += (uint64_t)r;
    }
}


/*
 * journal_seg: the segment files of a journal directory, as the writer and
 * the reader of journal_dir.c both see them: names ("%020llu.wsj", the
 * first id, zero-padded so they sort), the sorted listing, and a cursor
 * that reads one segment through the incremental decoder in bounded
 * chunks. No policy here (what to cut, skip or refuse is journal_dir's).
 */
#ifndef WSM_JOURNAL_SEG_H
#define WSM_JOURNAL_SEG_H

#include <stddef.h>
#include <stdint.h>

#include "journal_format.h"

#define JOURNAL_NAME_LEN 24     /* 20 digits + ".wsj" */

struct journal_seg {
    uint64_t id;            /* first id: the file's name */
    uint64_t size;          /* bytes (the writer's newest: buffered ones included) */
};

/* Segments, oldest first. */
struct journal_seg_list {
    struct journal_seg *v;
    size_t n, cap;
};

/* Room for MORE entries after the n there are: 0 or -ENOMEM. */
int journal_seg_reserve(struct journal_seg_list *l, size_t more);

/* The file name of segment ID into out[JOURNAL_NAME_LEN + 1]. */
void journal_seg_name(char *out, uint64_t id);

/* 1 with *id when NAME is a segment's (20 digits, an id from 1 to 2^64-1, ".wsj"). */
int journal_seg_parse_name(const char *name, uint64_t *id);

/*
 * Replace L's entries with the regular files of directory DIRFD named like
 * segments, with their sizes, sorted by id. 0 or -errno (L then partial).
 */
int journal_seg_list(int dirfd, struct journal_seg_list *l);

/* Index of the first segment whose id is > ID (l->n when none): a binary search. */
size_t journal_seg_after(const struct journal_seg_list *l, uint64_t id);

enum { JOURNAL_SEG_END = 0, JOURNAL_SEG_ITEM = 1, JOURNAL_SEG_BAD = 2 };

/*
 * A segment read front to back. It holds at most one chunk (64 KiB) or one
 * record of up to JOURNAL_RECORD_MAX(max_frame) bytes, whichever is more.
 */
struct journal_seg_cursor {
    int            fd;                  /* owned: closed by _fini */
    unsigned char *buf;
    size_t         cap, len, pos, max;  /* unconsumed bytes: buf[pos..len) */
    uint64_t       read_off;            /* file bytes read so far */
    struct journal_decoder d;           /* d.offset: end of the last good item */
};

/* Take FD (even on failure: _fini closes it). 0 or -ENOMEM. */
int journal_seg_cursor_init(struct journal_seg_cursor *c, int fd, uint32_t max_frame);
void journal_seg_cursor_fini(struct journal_seg_cursor *c);

/*
 * The next item: JOURNAL_SEG_ITEM with *rec (the header, or a record whose
 * room and frame point into the cursor, valid until the next call);
 * JOURNAL_SEG_END at the end of the file, with c->len - c->pos bytes of an
 * unfinished item kept (a later call reads on from there, so a cursor can
 * follow a file that grows); JOURNAL_SEG_BAD at a decode error (c->d.err,
 * at c->d.offset; sticky); or -errno from pread().
 */
int journal_seg_cursor_next(struct journal_seg_cursor *c, struct journal_record *rec);

#endif

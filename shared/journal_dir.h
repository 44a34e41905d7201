/*
 * journal_dir: the history journal on disk, a directory of segment files
 * (journal_format.h) named by their first id, "%020llu.wsj", so they sort.
 * One writer per directory (an flock on it; a second journal_open() gets
 * -EBUSY), any number of readers. No logging: failures come back as
 * negative errno with a message, recoveries as a report for the caller to
 * log (at warn).
 *
 * Invariants the writer keeps: ids strictly increase across all segments;
 * every segment but the newest is complete and no longer written; a
 * segment holds at least one record (one left empty by a crash: no bytes,
 * a torn or all-zero header, no whole record, is removed at open); the
 * newest segment ends at a record boundary once journal_open() walked it.
 */
#ifndef WSM_JOURNAL_DIR_H
#define WSM_JOURNAL_DIR_H

#include <stddef.h>
#include <stdint.h>

#include "journal_format.h"
#include "journal_seg.h"

#define JOURNAL_CUTS_MAX 4

struct journal_config {
    const char *dir;        /* created (mode 0750, parents too) when missing */
    uint64_t segment_bytes; /* a record that would take a segment past this starts
                               a new one (> 32; a bigger record gets one to itself) */
    uint64_t keep_bytes;    /* delete the oldest segments while the total exceeds
                               this (never the newest); 0: keep everything */
    uint32_t max_frame;     /* largest frame appended or read (<= JOURNAL_FRAME_LIMIT) */
    size_t   buffer_bytes;  /* append buffer, 0: 256 KiB; a bigger record grows it
                               until the next complete flush */
};

/* Bytes removed from a segment: by journal_open(), or skipped by a reader. */
struct journal_cut {
    char     file[JOURNAL_NAME_LEN + 1];
    uint64_t offset;        /* where the torn or bad bytes start */
    uint64_t bytes;         /* from there to the end of the file */
    int      reason;        /* 0: torn (a record cut short), else enum journal_error */
    int      removed;       /* the whole file went: nothing valid was left in it */
};

struct journal_report {
    uint64_t first_id;      /* first id of the oldest segment, 0 when empty */
    uint64_t last_id;       /* newest record (message or mark), 0 when empty: the
                               next id appended must be greater */
    uint64_t last_mark;     /* newest mark of the newest segment, 0 if it has none */
    uint64_t records;       /* records in the newest segment */
    uint64_t bytes;         /* all segments, after cuts and deletions */
    unsigned segments;
    unsigned deleted;       /* oldest segments deleted to honour keep_bytes */
    unsigned ncuts;         /* cuts made; the first JOURNAL_CUTS_MAX in cut[] */
    struct journal_cut cut[JOURNAL_CUTS_MAX];
    char     msg[256];      /* journal_open() failed: why, naming the file */
};

struct journal;

/*
 * Open (creating) the journal in cfg->dir: list the segments, check every
 * header (another format version: -ENOTSUP; not a journal, a corrupt header
 * or a name that disagrees with its header: -EBADMSG), walk the newest
 * segment's records and cut a torn or corrupt tail (ftruncate, then
 * fdatasync; a segment left with no record is removed and the one before
 * walked instead), then delete for keep_bytes. Returns 0 with *out, or a
 * negative errno with rep->msg (-EACCES/-EROFS unwritable, -EBUSY another
 * writer, -EINVAL bad config, -ENOMEM, -EIO...). REP may be NULL.
 */
int journal_open(const struct journal_config *cfg, struct journal **out,
                 struct journal_report *rep);

/*
 * Append REC (its id greater than every id before it: -EINVAL otherwise;
 * frame over max_frame: -EMSGSIZE). The bytes go to the buffer; write()s
 * happen only when it is full, or to finish the current segment before
 * starting a new one. All or nothing: on failure REC is not in the journal
 * (bytes buffered before it are kept) and the call may be retried.
 */
int journal_append(struct journal *j, const struct journal_record *rec);

/*
 * write() the buffer, resuming short writes. Returns 0 when it is empty,
 * else -errno (-ENOSPC, -EFBIG, -EIO...) keeping the bytes not written, in
 * order, for the next call: a retry after space is freed loses nothing.
 */
int journal_flush(struct journal *j);

/*
 * Flush, then make everything appended so far durable: fdatasync of the
 * segments written since the last sync and fsync of the directory after
 * segments were created or deleted. A failed fdatasync can lose data the
 * kernel already dropped, so it is sticky: every later call on J returns
 * it, and the caller closes and reopens the journal (which re-walks it).
 */
int journal_sync(struct journal *j);

struct journal_stat {
    uint64_t first_id, last_id;     /* as in the report; last_id counts buffered records */
    uint64_t flushed_id;            /* newest id handed to the kernel */
    uint64_t synced_id;             /* newest id known durable (journal_sync) */
    uint64_t bytes;                 /* all segments, buffered bytes included */
    size_t   buffered;
    unsigned segments;
};

void journal_stat(const struct journal *j, struct journal_stat *st);

/* Flush, close and free (no sync). Returns the flush's result: on failure
 * the buffered bytes are lost (journal_open() cuts any torn record). */
int journal_close(struct journal *j);

/*
 * Reader: the records with id > from_id, in order, across segments, read
 * in bounded chunks (at most JOURNAL_RECORD_MAX(max_frame) bytes held). It
 * starts at the newest segment whose first id is <= from_id + 1 (binary
 * search on the names) and, at the end of the newest one, looks for newer
 * segments, so it can follow a live writer. Segments deleted meanwhile are
 * skipped. Returns 0 with *out or -errno (-ENOENT: no such directory).
 */
struct journal_reader;

int journal_reader_open(const char *dir, uint64_t from_id, uint32_t max_frame,
                        struct journal_reader **out);

/*
 * The next record (room and frame point into the reader's buffer, valid
 * until the next call): 1; 0 at the end for now (a torn tail of the newest
 * segment is "the end": a later call resumes there, seeing what a writer
 * added); -EBADMSG at a damaged segment (a bad header, a bad record, or a
 * torn tail in a segment that is not the newest), described by
 * journal_reader_problem(). The rest of that segment is skipped: the next
 * call goes on with the next segment, whose ids are all greater, so a
 * replay loses only the damaged part. Other -errno: an I/O error.
 */
int journal_reader_next(struct journal_reader *r, struct journal_record *rec);

const struct journal_cut *journal_reader_problem(const struct journal_reader *r);

/* The first id of the oldest segment the reader has listed, 0 when there is none. */
uint64_t journal_reader_first_id(const struct journal_reader *r);

void journal_reader_close(struct journal_reader *r);

#endif

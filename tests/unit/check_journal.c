/*
 * check_journal: the journal's segment directory (shared/journal_dir.c),
 * on real files in temporary directories under /tmp (mkdtemp; the whole
 * tree is removed by an unchecked fixture, so even a failed test leaves
 * nothing behind).
 *
 * Covered: append + reopen round trip; rotation and keep_bytes (oldest
 * deleted, total bounded) at run time and at open; a torn tail at every
 * truncation length of the last record and a flipped byte at every offset
 * of it (exact offset and byte count reported, the records before it
 * intact, appends go on after the cut); empty, zeroed and torn-header
 * newest segments removed; other versions, foreign files and misnamed
 * segments refused with a message naming the file; the reader from ids
 * before, inside and after the journal, following a live writer across a
 * rotation, stopping at damage in an older segment and going on after it;
 * a full disk simulated with RLIMIT_FSIZE in a child (EFBIG kept and
 * retried; a kill after a partial write cut at reopen); an unwritable or
 * locked directory; bad appends; records bigger than the buffer.
 */
#include <check.h>
#include <fcntl.h>
#include <ftw.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crc32c.h"
#include "journal_dir.h"

static char base[64];

static void base_setup(void)
{
    strcpy(base, "/tmp/wsj-test-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(base));
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void base_teardown(void)
{
    nftw(base, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A fresh directory path inside base (not created: journal_open() does). */
static void fresh_dir(char *out, size_t len)
{
    char tmp[128];
    snprintf(tmp, sizeof tmp, "%s/t-XXXXXX", base);
    ck_assert_ptr_nonnull(mkdtemp(tmp));
    snprintf(out, len, "%s/journal", tmp);
}

#define MAXF (1u << 20)

static struct journal_config config(const char *dir, uint64_t seg, uint64_t keep)
{
    struct journal_config c = { .dir = dir, .segment_bytes = seg, .keep_bytes = keep,
                                .max_frame = MAXF, .buffer_bytes = 0 };
    return c;
}

/* ---- deterministic records: the content follows from the id */

static unsigned char frame_buf[8192];
static char room_buf[8];

static uint32_t frame_len_of(uint64_t id)
{
    return (uint32_t)(id * 37 % 200 + (id % 50 == 7 ? 3000 : 0));
}

static struct journal_record make(uint64_t id)
{
    struct journal_record r = { .id = id, .ts_ms = (int64_t)id * 10 };
    if (id % 10 == 0) {
        r.kind = JOURNAL_MARK;
        return r;
    }
    r.kind = JOURNAL_MESSAGE;
    snprintf(room_buf, sizeof room_buf, "room%u", (unsigned)(id % 3));
    r.room = room_buf;
    r.room_len = (uint8_t)strlen(room_buf);
    r.frame_len = frame_len_of(id);
    for (uint32_t i = 0; i < r.frame_len; i++)
        frame_buf[i] = (unsigned char)(id * 131 + i);
    r.frame = frame_buf;
    return r;
}

static void check_record(const struct journal_record *got)
{
    uint64_t id = got->id;
    struct journal_record w = make(id);
    ck_assert_int_eq(got->kind, w.kind);
    ck_assert_int_eq(got->ts_ms, w.ts_ms);
    ck_assert_uint_eq(got->room_len, w.kind == JOURNAL_MESSAGE ? w.room_len : 0);
    ck_assert_uint_eq(got->frame_len, w.kind == JOURNAL_MESSAGE ? w.frame_len : 0);
    if (got->room_len)
        ck_assert_mem_eq(got->room, w.room, w.room_len);
    if (got->frame_len)
        ck_assert_mem_eq(got->frame, w.frame, w.frame_len);
}

static struct journal *open_ok(const struct journal_config *cfg, struct journal_report *rep)
{
    struct journal *j;
    int rc = journal_open(cfg, &j, rep);
    ck_assert_msg(rc == 0, "journal_open: %d %s", rc, rep->msg);
    return j;
}

static void append_ok(struct journal *j, uint64_t id)
{
    struct journal_record r = make(id);
    int rc = journal_append(j, &r);
    ck_assert_msg(rc == 0, "append %llu: %d", (unsigned long long)id, rc);
}

static void append_range(struct journal *j, uint64_t from, uint64_t to, uint64_t step)
{
    for (uint64_t id = from; id <= to; id += step)
        append_ok(j, id);
}

/* Read every record with id > from_id: their ids into ids[] (n of them). */
static size_t read_ids(const char *dir, uint64_t from_id, uint64_t *ids, size_t max)
{
    struct journal_reader *r;
    ck_assert_int_eq(journal_reader_open(dir, from_id, MAXF, &r), 0);
    size_t n = 0;
    struct journal_record rec;
    int rc;
    while ((rc = journal_reader_next(r, &rec)) == 1) {
        ck_assert_uint_lt(n, max);
        ck_assert_uint_gt(rec.id, from_id);
        if (n > 0)
            ck_assert_uint_gt(rec.id, ids[n - 1]);
        check_record(&rec);
        ids[n++] = rec.id;
    }
    ck_assert_int_eq(rc, 0);
    journal_reader_close(r);
    return n;
}

static void seg_path(char *out, size_t len, const char *dir, uint64_t id)
{
    snprintf(out, len, "%s/%020llu.wsj", dir, (unsigned long long)id);
}

static uint64_t file_size(const char *dir, uint64_t id)
{
    char p[512];
    struct stat st;
    seg_path(p, sizeof p, dir, id);
    ck_assert_int_eq(stat(p, &st), 0);
    return (uint64_t)st.st_size;
}

static int seg_exists(const char *dir, uint64_t id)
{
    char p[512];
    seg_path(p, sizeof p, dir, id);
    return access(p, F_OK) == 0;
}

static void write_file(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0640);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
    close(fd);
}

static void flip_byte(const char *dir, uint64_t id, uint64_t off, unsigned char x)
{
    char p[512];
    unsigned char c;
    seg_path(p, sizeof p, dir, id);
    int fd = open(p, O_RDWR);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(pread(fd, &c, 1, (off_t)off), 1);
    c ^= x;
    ck_assert_int_eq(pwrite(fd, &c, 1, (off_t)off), 1);
    close(fd);
}

static size_t rec_size(uint64_t id)
{
    struct journal_record r = make(id);
    return journal_record_size(&r);
}

/* ---- round trip */

START_TEST(append_reopen)
{
    char dir[160];
    struct journal_report rep;
    struct journal_stat st;
    uint64_t ids[400];
    fresh_dir(dir, sizeof dir);
    struct journal_config cfg = config(dir, 1 << 20, 0);
    struct journal *j = open_ok(&cfg, &rep);
    ck_assert_uint_eq(rep.last_id, 0);
    ck_assert_uint_eq(rep.segments, 0);
    struct stat ds;
    ck_assert_int_eq(stat(dir, &ds), 0);
    ck_assert(S_ISDIR(ds.st_mode));
    ck_assert_uint_eq(ds.st_mode & 0027, 0);            /* 0750 under any umask */

    append_range(j, 5, 104, 1);
    journal_stat(j, &st);
    ck_assert_uint_eq(st.last_id, 104);
    ck_assert_uint_eq(st.segments, 1);
    ck_assert_uint_gt(st.buffered, 0);
    ck_assert_uint_eq(st.flushed_id, 0);
    ck_assert_int_eq(journal_flush(j), 0);
    journal_stat(j, &st);
    ck_assert_uint_eq(st.buffered, 0);
    ck_assert_uint_eq(st.flushed_id, 104);
    ck_assert_uint_eq(st.bytes, file_size(dir, 5));
    ck_assert_int_eq(journal_sync(j), 0);
    journal_stat(j, &st);
    ck_assert_uint_eq(st.synced_id, 104);
    ck_assert_int_eq(journal_close(j), 0);

    j = open_ok(&cfg, &rep);
    ck_assert_uint_eq(rep.first_id, 5);
    ck_assert_uint_eq(rep.last_id, 104);
    ck_assert_uint_eq(rep.last_mark, 100);
    ck_assert_uint_eq(rep.records, 100);
    ck_assert_uint_eq(rep.segments, 1);
    ck_assert_uint_eq(rep.ncuts, 0);
    ck_assert_uint_eq(rep.bytes, file_size(dir, 5));
    append_range(j, 105, 150, 1);
    ck_assert_int_eq(journal_close(j), 0);              /* close flushes */

    size_t n = read_ids(dir, 0, ids, 400);
    ck_assert_uint_eq(n, 146);
    for (size_t i = 0; i < n; i++)
        ck_assert_uint_eq(ids[i], 5 + i);
    j = open_ok(&cfg, &rep);
    ck_assert_uint_eq(rep.last_id, 150);
    ck_assert_uint_eq(rep.records, 146);
    journal_close(j);
}
END_TEST

START_TEST(bad_appends)
{
    char dir[160];
    struct journal_report rep;
    struct journal_stat a, b;
    fresh_dir(dir, sizeof dir);
    struct journal_config cfg = config(dir, 1 << 20, 0);
    cfg.max_frame = 100;
    struct journal *j = open_ok(&cfg, &rep);
    struct journal_record r = make(1);
    r.frame_len = 50;
    ck_assert_int_eq(journal_append(j, &r), 0);
    journal_stat(j, &a);
    r.id = 0;
    ck_assert_int_eq(journal_append(j, &r), -EINVAL);
    r.id = 1;
    ck_assert_int_eq(journal_append(j, &r), -EINVAL);   /* not increasing */
    r.id = 2;
    r.frame_len = 101;
    ck_assert_int_eq(journal_append(j, &r), -EMSGSIZE);
    r.frame_len = 100;
    r.kind = 7;
    ck_assert_int_eq(journal_append(j, &r), -EINVAL);
    r.kind = JOURNAL_MESSAGE;
    r.room_len = 33;
    ck_assert_int_eq(journal_append(j, &r), -EINVAL);
    journal_stat(j, &b);
    ck_assert_mem_eq(&a, &b, sizeof a);
    r.room_len = 0;
    ck_assert_int_eq(journal_append(j, &r), 0);         /* frame exactly max_frame */
    journal_close(j);

    struct journal *k;
    cfg.segment_bytes = 32;
    ck_assert_int_eq(journal_open(&cfg, &k, &rep), -EINVAL);
    ck_assert_ptr_null(k);
    cfg.segment_bytes = 4096;
    cfg.max_frame = UINT32_MAX;
    ck_assert_int_eq(journal_open(&cfg, &k, &rep), -EINVAL);
    cfg.dir = "";
    cfg.max_frame = 10;
    ck_assert_int_eq(journal_open(&cfg, &k, NULL), -EINVAL);
}
END_TEST

/* ---- rotation and keep */

START_TEST(rotation_and_keep)
{
    char dir[160];
    struct journal_report rep;
    struct journal_stat st;
    static uint64_t ids[3000];
    fresh_dir(dir, sizeof dir);
    struct journal_config cfg = config(dir, 2048, 16384);
    cfg.buffer_bytes = 4096;
    struct journal *j = open_ok(&cfg, &rep);
    unsigned max_segs = 0;
    for (uint64_t id = 1; id <= 2000; id++) {
        append_ok(j, id);
        journal_stat(j, &st);
        if (st.segments > 1)
            ck_assert_uint_le(st.bytes, cfg.keep_bytes);
        if (st.segments > max_segs)
            max_segs = st.segments;
        if (id % 97 == 0)
            ck_assert_int_eq(journal_sync(j), 0);
    }
    ck_assert_int_eq(journal_flush(j), 0);
    journal_stat(j, &st);
    ck_assert_uint_ge(max_segs, 7);
    ck_assert_uint_gt(st.first_id, 1);
    ck_assert(!seg_exists(dir, 1));                     /* oldest went first */

    /* on disk: the segments the writer lists, each within segment_bytes
     * unless it holds a single record, adding up to the total */
    size_t n = read_ids(dir, 0, ids, 3000);
    ck_assert_uint_gt(n, 0);
    ck_assert_uint_eq(ids[0], st.first_id);
    ck_assert_uint_eq(ids[n - 1], 2000);
    for (size_t i = 1; i < n; i++)
        ck_assert_uint_eq(ids[i], ids[i - 1] + 1);      /* a suffix, nothing missing */
    uint64_t total = 0, prev = 0;
    unsigned segs = 0;
    for (size_t i = 0; i < n; i++) {
        if (!seg_exists(dir, ids[i]))
            continue;
        uint64_t sz = file_size(dir, ids[i]);
        total += sz;
        segs++;
        if (prev)
            ck_assert_uint_gt(ids[i], prev);
        prev = ids[i];
        if (sz > cfg.segment_bytes)
            ck_assert_uint_eq(sz, 32 + rec_size(ids[i]));
    }
    ck_assert_uint_eq(segs, st.segments);
    ck_assert_uint_eq(total, st.bytes);
    ck_assert_int_eq(journal_close(j), 0);

    j = open_ok(&cfg, &rep);
    ck_assert_uint_eq(rep.bytes, total);
    ck_assert_uint_eq(rep.first_id, st.first_id);
    ck_assert_uint_eq(rep.last_id, 2000);
    ck_assert_uint_eq(rep.deleted, 0);
    journal_close(j);

    /* a smaller keep_bytes at the next start deletes at open */
    cfg.keep_bytes = 5000;
    j = open_ok(&cfg, &rep);
    ck_assert_uint_gt(rep.deleted, 0);
    ck_assert_uint_le(rep.bytes, 5000);
    ck_assert_uint_eq(rep.last_id, 2000);
    ck_assert_uint_eq(rep.segments, segs - rep.deleted);
    journal_close(j);
}
END_TEST

START_TEST(big_records)
{
    char dir[160];
    struct journal_report rep;
    struct journal_stat st;
    fresh_dir(dir, sizeof dir);
    struct journal_config cfg = config(dir, 4096, 0);
    cfg.buffer_bytes = 4096;
    struct journal *j = open_ok(&cfg, &rep);
    static unsigned char big[300000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (unsigned char)(i * 7);
    struct journal_record r = { .id = 1, .kind = JOURNAL_MESSAGE, .room = "x", .room_len = 1,
                                .frame = big, .frame_len = sizeof big };
    ck_assert_int_eq(journal_append(j, &r), 0);
    journal_stat(j, &st);
    ck_assert_uint_eq(st.buffered, journal_record_size(&r));    /* the header went first */
    r.id = 2;
    r.frame_len = 10;
    ck_assert_int_eq(journal_append(j, &r), 0);     /* a new segment: 1 is over 4096 */
    r.id = 3;
    r.frame_len = 200000;
    ck_assert_int_eq(journal_append(j, &r), 0);     /* over the buffer, 2 flushed first */
    ck_assert_int_eq(journal_flush(j), 0);
    journal_stat(j, &st);
    ck_assert_uint_eq(st.segments, 3);
    ck_assert_uint_eq(st.buffered, 0);
    ck_assert_int_eq(journal_close(j), 0);
    ck_assert_uint_eq(file_size(dir, 1), 32 + 8 + 22 + 1 + sizeof big);

    struct journal_reader *rd;
    struct journal_record got;
    ck_assert_int_eq(journal_reader_open(dir, 0, MAXF, &rd), 0);
    ck_assert_int_eq(journal_reader_next(rd, &got), 1);
    ck_assert_uint_eq(got.frame_len, sizeof big);
    ck_assert_mem_eq(got.frame, big, sizeof big);
    ck_assert_int_eq(journal_reader_next(rd, &got), 1);
    ck_assert_uint_eq(got.id, 2);
    ck_assert_int_eq(journal_reader_next(rd, &got), 1);
    ck_assert_uint_eq(got.frame_len, 200000);
    ck_assert_mem_eq(got.frame, big, 200000);
    ck_assert_int_eq(journal_reader_next(rd, &got), 0);
    journal_reader_close(rd);

    /* a reader with a smaller max_frame sees the big record as damage */
    ck_assert_int_eq(journal_reader_open(dir, 0, 1000, &rd), 0);
    ck_assert_int_eq(journal_reader_next(rd, &got), -EBADMSG);
    ck_assert_int_eq(journal_reader_problem(rd)->reason, JOURNAL_ERR_LENGTH);
    ck_assert_int_eq(journal_reader_next(rd, &got), 1);
    ck_assert_uint_eq(got.id, 2);
    journal_reader_close(rd);
}
END_TEST

/* ---- recovery of the newest segment */

/* A journal of ids 1..n in one segment, flushed and closed; returns its size. */
static uint64_t build(const char *dir, uint64_t n)
{
    struct journal_report rep;
    struct journal_config cfg = config(dir, 1 << 20, 0);
    struct journal *j = open_ok(&cfg, &rep);
    append_range(j, 1, n, 1);
    ck_assert_int_eq(journal_close(j), 0);
    return file_size(dir, 1);
}

static void truncate_seg(const char *dir, uint64_t id, uint64_t len)
{
    char p[512];
    seg_path(p, sizeof p, dir, id);
    ck_assert_int_eq(truncate(p, (off_t)len), 0);
}

/* After a cut at AT: ids 1..n-1 intact, and an append of id n goes on from there. */
static void after_cut(const char *dir, uint64_t n, uint64_t at)
{
    struct journal_report rep;
    struct journal_config cfg = config(dir, 1 << 20, 0);
    uint64_t ids[64];
    ck_assert_uint_eq(file_size(dir, 1), at);
    struct journal *j = open_ok(&cfg, &rep);
    ck_assert_uint_eq(rep.ncuts, 0);
    ck_assert_uint_eq(rep.last_id, n - 1);
    append_ok(j, n);
    ck_assert_int_eq(journal_close(j), 0);
    ck_assert_uint_eq(read_ids(dir, 0, ids, 64), n);
    ck_assert_uint_eq(ids[n - 1], n);
    j = open_ok(&cfg, &rep);
    ck_assert_uint_eq(rep.ncuts, 0);
    ck_assert_uint_eq(rep.last_id, n);
    journal_close(j);
}

/* Id 7 has a 3000-byte frame: a long last record, cut at every length. */
START_TEST(torn_tail_every_length)
{
    enum { N = 7 };
    size_t last = rec_size(N);
    ck_assert_uint_gt(last, 3000);
    for (size_t keep = 0; keep < last; keep++) {
        char dir[160];
        struct journal_report rep;
        struct journal *j;
        fresh_dir(dir, sizeof dir);
        uint64_t size = build(dir, N), start = size - last;
        truncate_seg(dir, 1, start + keep);
        struct journal_config cfg = config(dir, 1 << 20, 0);
        ck_assert_int_eq(journal_open(&cfg, &j, &rep), 0);
        ck_assert_uint_eq(rep.last_id, N - 1);
        ck_assert_uint_eq(rep.records, N - 1);
        if (keep == 0) {
            ck_assert_uint_eq(rep.ncuts, 0);    /* cut on a record boundary: nothing torn */
        } else {
            ck_assert_uint_eq(rep.ncuts, 1);
            ck_assert_str_eq(rep.cut[0].file, "00000000000000000001.wsj");
            ck_assert_uint_eq(rep.cut[0].offset, start);
            ck_assert_uint_eq(rep.cut[0].bytes, keep);
            ck_assert_int_eq(rep.cut[0].reason, 0);
            ck_assert_int_eq(rep.cut[0].removed, 0);
        }
        journal_close(j);
        after_cut(dir, N, start);
    }
}
END_TEST

static const unsigned char xors[] = { 0x01, 0x80, 0xff };

START_TEST(flipped_byte_in_last_record)
{
    enum { N = 7 };
    size_t last = rec_size(N);
    for (size_t at = 0; at < last; at += at < 64 ? 1 : 97) {
        for (size_t x = 0; x < sizeof xors; x++) {
            char dir[160];
            struct journal_report rep;
            fresh_dir(dir, sizeof dir);
            uint64_t size = build(dir, N), start = size - last;
            flip_byte(dir, 1, start + at, xors[x]);
            struct journal_config cfg = config(dir, 1 << 20, 0);
            struct journal *j = open_ok(&cfg, &rep);
            ck_assert_uint_eq(rep.ncuts, 1);
            ck_assert_uint_eq(rep.cut[0].offset, start);
            ck_assert_uint_eq(rep.cut[0].bytes, last);
            int why = rep.cut[0].reason;
            /* the length word: out of bounds, or longer than the file (torn) */
            ck_assert_msg(why == JOURNAL_ERR_CRC || (at < 4 && (why == JOURNAL_ERR_LENGTH ||
                                                                  why == 0)),
                          "flip at %zu: reason %d", at, why);
            journal_close(j);
            after_cut(dir, N, start);
        }
    }
}
END_TEST

/* Damage in the middle of the newest segment: everything from it is cut. */
START_TEST(flipped_byte_mid_segment)
{
    char dir[160];
    struct journal_report rep;
    uint64_t ids[64];
    fresh_dir(dir, sizeof dir);
    uint64_t size = build(dir, 20);
    uint64_t off = 32;
    for (uint64_t id = 1; id < 12; id++)
        off += rec_size(id);
    flip_byte(dir, 1, off + 20, 0x04);
    struct journal_config cfg = config(dir, 1 << 20, 0);
    struct journal *j = open_ok(&cfg, &rep);
    ck_assert_uint_eq(rep.ncuts, 1);
    ck_assert_uint_eq(rep.cut[0].offset, off);
    ck_assert_uint_eq(rep.cut[0].bytes, size - off);
    ck_assert_int_eq(rep.cut[0].reason, JOURNAL_ERR_CRC);
    ck_assert_uint_eq(rep.last_id, 11);
    ck_assert_uint_eq(rep.last_mark, 10);
    journal_close(j);
    ck_assert_uint_eq(read_ids(dir, 0, ids, 64), 11);
}
END_TEST

/* The newest segment's only record is torn: the file goes, the one before is walked. */
START_TEST(torn_single_record_segment)
{
    char dir[160];
    struct journal_report rep;
    uint64_t ids[64];
    fresh_dir(dir, sizeof dir);
    struct journal_config cfg = config(dir, 1 << 20, 0);
    struct journal *j = open_ok(&cfg, &rep);
    append_range(j, 1, 5, 1);
    ck_assert_int_eq(journal_close(j), 0);
    cfg.segment_bytes = 64;                 /* every record after this: its own segment */
    j = open_ok(&cfg, &rep);
    append_ok(j, 6);
    append_ok(j, 7);
    ck_assert_int_eq(journal_close(j), 0);
    ck_assert(seg_exists(dir, 6) && seg_exists(dir, 7));
    uint64_t s7 = file_size(dir, 7);
    truncate_seg(dir, 7, s7 - 1);

    j = open_ok(&cfg, &rep);
    ck_assert_uint_eq(rep.ncuts, 1);
    ck_assert_str_eq(rep.cut[0].file, "00000000000000000007.wsj");
    ck_assert_uint_eq(rep.cut[0].offset, 32);
    ck_assert_uint_eq(rep.cut[0].bytes, s7 - 1 - 32);
    ck_assert_int_eq(rep.cut[0].removed, 1);
    ck_assert(!seg_exists(dir, 7));
    ck_assert_uint_eq(rep.last_id, 6);
    ck_assert_uint_eq(rep.segments, 2);
    append_ok(j, 7);
    ck_assert_int_eq(journal_close(j), 0);
    ck_assert_uint_eq(read_ids(dir, 0, ids, 64), 7);

    /* torn and then the only segment: the journal is empty again */
    char dir2[160];
    fresh_dir(dir2, sizeof dir2);
    cfg = config(dir2, 1 << 20, 0);
    j = open_ok(&cfg, &rep);
    append_ok(j, 1);
    ck_assert_int_eq(journal_close(j), 0);
    truncate_seg(dir2, 1, 40);
    j = open_ok(&cfg, &rep);
    ck_assert_uint_eq(rep.ncuts, 1);
    ck_assert_int_eq(rep.cut[0].removed, 1);
    ck_assert_uint_eq(rep.last_id, 0);
    ck_assert_uint_eq(rep.segments, 0);
    append_ok(j, 1);
    ck_assert_int_eq(journal_close(j), 0);
    ck_assert_uint_eq(read_ids(dir2, 0, ids, 64), 1);
}
END_TEST

/* A crash right after creating a segment: empty, a torn header, zeros. */
START_TEST(empty_newest_segments_removed)
{
    static const struct { size_t len; int zero; } cases[] = {
        { 0, 0 }, { 1, 0 }, { 11, 0 }, { 31, 0 }, { 32, 1 }, { 4096, 1 }, { 7, 1 },
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char dir[160], p[512];
        struct journal_report rep;
        uint64_t ids[64];
        fresh_dir(dir, sizeof dir);
        build(dir, 9);
        unsigned char h[4096];
        memset(h, 0, sizeof h);
        if (!cases[c].zero)
            ck_assert_int_eq(journal_header_encode(h, sizeof h, 10), 32);
        seg_path(p, sizeof p, dir, 10);
        write_file(p, h, cases[c].len);

        struct journal_config cfg = config(dir, 1 << 20, 0);
        struct journal *j = open_ok(&cfg, &rep);
        ck_assert_uint_eq(rep.ncuts, 1);
        ck_assert_str_eq(rep.cut[0].file, "00000000000000000010.wsj");
        ck_assert_int_eq(rep.cut[0].removed, 1);
        ck_assert_uint_eq(rep.cut[0].offset, 0);
        ck_assert_uint_eq(rep.cut[0].bytes, cases[c].len);
        ck_assert(!seg_exists(dir, 10));
        ck_assert_uint_eq(rep.last_id, 9);
        append_ok(j, 10);
        ck_assert_int_eq(journal_close(j), 0);
        ck_assert_uint_eq(read_ids(dir, 0, ids, 64), 10);
    }
}
END_TEST

/* ---- refused files */

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void header_v(unsigned char h[32], uint32_t version, uint64_t first)
{
    ck_assert_int_eq(journal_header_encode(h, 32, first), 32);
    put32(h + 8, version);
    put32(h + 28, crc32c(h, 28));
}

static void expect_refused(const char *dir, int err, const char *what)
{
    struct journal_report rep;
    struct journal *j = (struct journal *)&rep;
    struct journal_config cfg = config(dir, 1 << 20, 0);
    ck_assert_int_eq(journal_open(&cfg, &j, &rep), err);
    ck_assert_ptr_null(j);
    ck_assert_msg(strstr(rep.msg, what) != NULL, "message \"%s\" lacks \"%s\"", rep.msg, what);
}

START_TEST(other_version_refused)
{
    char dir[160], p[512];
    unsigned char h[32];
    fresh_dir(dir, sizeof dir);
    build(dir, 3);
    header_v(h, 2, 4);
    seg_path(p, sizeof p, dir, 4);
    write_file(p, h, sizeof h);
    expect_refused(dir, -ENOTSUP, "00000000000000000004.wsj: journal format version 2, "
                                  "this build reads version 1 only");
    ck_assert_uint_eq(file_size(dir, 4), 32);          /* left alone */

    /* an older segment of another version: refused as well */
    struct journal_report rep;
    struct journal_config cfg = config(dir, 64, 0);
    ck_assert_int_eq(unlink(p), 0);
    struct journal *j = open_ok(&cfg, &rep);
    append_ok(j, 4);
    ck_assert_int_eq(journal_close(j), 0);
    ck_assert(seg_exists(dir, 4));
    header_v(h, 3, 1);
    seg_path(p, sizeof p, dir, 1);
    int fd = open(p, O_WRONLY);
    ck_assert_int_eq(pwrite(fd, h, 32, 0), 32);
    close(fd);
    expect_refused(dir, -ENOTSUP, "00000000000000000001.wsj: journal format version 3");
}
END_TEST

START_TEST(foreign_files_refused)
{
    char dir[160], p[512];
    unsigned char h[32];
    fresh_dir(dir, sizeof dir);
    build(dir, 3);
    seg_path(p, sizeof p, dir, 5);
    write_file(p, "hello, this is not a journal segment", 36);
    expect_refused(dir, -EBADMSG, "00000000000000000005.wsj: not a journal segment");
    ck_assert_int_eq(unlink(p), 0);

    ck_assert_int_eq(journal_header_encode(h, sizeof h, 6), 32);    /* named 5, says 6 */
    write_file(p, h, sizeof h);
    expect_refused(dir, -EBADMSG, "00000000000000000005.wsj: its header names first id 6");
    ck_assert_int_eq(unlink(p), 0);

    h[20] ^= 1;                                         /* header CRC no longer matches */
    seg_path(p, sizeof p, dir, 6);
    write_file(p, h, sizeof h);
    expect_refused(dir, -EBADMSG, "not a journal segment: corrupt file header");
    ck_assert_int_eq(unlink(p), 0);

    /* names that are not segments are ignored */
    char q[512];
    snprintf(q, sizeof q, "%s/notes.txt", dir);
    write_file(q, "x", 1);
    snprintf(q, sizeof q, "%s/0000000000000000001.wsj", dir);
    write_file(q, "x", 1);
    snprintf(q, sizeof q, "%s/99999999999999999999.wsj", dir);
    write_file(q, "x", 1);
    snprintf(q, sizeof q, "%s/00000000000000000000.wsj", dir);
    write_file(q, "x", 1);
    struct journal_report rep;
    struct journal_config cfg = config(dir, 1 << 20, 0);
    struct journal *j = open_ok(&cfg, &rep);
    ck_assert_uint_eq(rep.segments, 1);
    ck_assert_uint_eq(rep.last_id, 3);
    journal_close(j);
}
END_TEST

/* ---- the reader */

/* Ids 2, 4, .. 2n over segments of about SEG bytes. */
static struct journal *build_even(const char *dir, uint64_t n, uint64_t seg, uint64_t keep)
{
    struct journal_report rep;
    struct journal_config cfg = config(dir, seg, keep);
    struct journal *j = open_ok(&cfg, &rep);
    append_range(j, 2, 2 * n, 2);
    ck_assert_int_eq(journal_flush(j), 0);
    return j;
}

START_TEST(reader_from_anywhere)
{
    char dir[160];
    static uint64_t ids[1000];
    struct journal_stat st;
    fresh_dir(dir, sizeof dir);
    struct journal *j = build_even(dir, 400, 3000, 0);
    journal_stat(j, &st);
    ck_assert_uint_ge(st.segments, 10);
    uint64_t froms[] = { 0, 1, 2, 3, 199, 200, 201, 555, 798, 799, 800, 801, 5000, UINT64_MAX };
    for (size_t f = 0; f < sizeof froms / sizeof froms[0]; f++) {
        uint64_t from = froms[f];
        size_t n = read_ids(dir, from, ids, 1000);
        uint64_t want = from >= 800 ? 0 : 400 - from / 2;
        ck_assert_msg(n == want, "from %llu: %zu records", (unsigned long long)from, n);
        if (n)
            ck_assert_uint_eq(ids[0], from / 2 * 2 + 2);
    }
    /* from every segment boundary: the first id of each segment, and the one before */
    for (uint64_t id = 2; id <= 800; id += 2) {
        if (!seg_exists(dir, id))
            continue;
        ck_assert_uint_eq(read_ids(dir, id - 1, ids, 1000), 400 - (id - 2) / 2);
        ck_assert_uint_eq(read_ids(dir, id, ids, 1000), 400 - id / 2);
    }
    journal_close(j);
}
END_TEST

START_TEST(reader_before_first_segment)
{
    char dir[160];
    static uint64_t ids[1000];
    struct journal_stat st;
    fresh_dir(dir, sizeof dir);
    struct journal *j = build_even(dir, 400, 2000, 6000);
    journal_stat(j, &st);
    ck_assert_uint_gt(st.first_id, 100);
    size_t n = read_ids(dir, 10, ids, 1000);
    ck_assert_uint_eq(ids[0], st.first_id);
    ck_assert_uint_eq(ids[n - 1], 800);
    journal_close(j);

    char empty[160];
    fresh_dir(empty, sizeof empty);
    struct journal_reader *r;
    ck_assert_int_eq(journal_reader_open(empty, 0, MAXF, &r), -ENOENT);
    ck_assert_ptr_null(r);
    ck_assert_int_eq(mkdir(empty, 0750), 0);
    ck_assert_uint_eq(read_ids(empty, 0, ids, 1000), 0);
}
END_TEST

/* A reader at the end sees what a live writer adds, across a rotation. */
START_TEST(reader_follows_writer)
{
    char dir[160];
    struct journal_report rep;
    struct journal_record rec;
    struct journal_reader *r;
    fresh_dir(dir, sizeof dir);
    struct journal_config cfg = config(dir, 1500, 0);
    struct journal *j = open_ok(&cfg, &rep);
    ck_assert_int_eq(journal_reader_open(dir, 0, MAXF, &r), 0);
    ck_assert_int_eq(journal_reader_next(r, &rec), 0);
    uint64_t next = 1;
    for (uint64_t id = 1; id <= 200; id++) {
        append_ok(j, id);
        if (id % 13 == 0 || id == 200) {
            ck_assert_int_eq(journal_flush(j), 0);
            int rc;
            while ((rc = journal_reader_next(r, &rec)) == 1) {
                ck_assert_uint_eq(rec.id, next);
                check_record(&rec);
                next++;
            }
            ck_assert_int_eq(rc, 0);
            ck_assert_uint_eq(next, id + 1);
        }
    }
    struct journal_stat st;
    journal_stat(j, &st);
    ck_assert_uint_gt(st.segments, 3);
    journal_reader_close(r);
    journal_close(j);
}
END_TEST

/* Half a record at the end of the newest segment is "the end for now". */
START_TEST(reader_stops_at_torn_tail)
{
    char dir[160];
    struct journal_record rec;
    struct journal_reader *r;
    fresh_dir(dir, sizeof dir);
    uint64_t size = build(dir, 7);
    truncate_seg(dir, 1, size - 100);
    ck_assert_int_eq(journal_reader_open(dir, 0, MAXF, &r), 0);
    for (uint64_t id = 1; id <= 6; id++) {
        ck_assert_int_eq(journal_reader_next(r, &rec), 1);
        ck_assert_uint_eq(rec.id, id);
    }
    ck_assert_int_eq(journal_reader_next(r, &rec), 0);
    ck_assert_int_eq(journal_reader_next(r, &rec), 0);
    journal_reader_close(r);
}
END_TEST

/* Damage inside an older segment: reported, the rest of it skipped, then on. */
START_TEST(reader_skips_damaged_segment)
{
    char dir[160];
    struct journal_record rec;
    struct journal_reader *r;
    struct journal_report rep;
    fresh_dir(dir, sizeof dir);
    struct journal *j = build_even(dir, 60, 1000, 0);
    journal_close(j);
    uint64_t segs[64], nseg = 0;
    for (uint64_t id = 2; id <= 120; id += 2)
        if (seg_exists(dir, id))
            segs[nseg++] = id;
    ck_assert_uint_ge(nseg, 4);
    /* flip a byte in the second record of the second segment */
    uint64_t off = 32 + rec_size(segs[1]) + 12;
    flip_byte(dir, segs[1], off, 0x10);
    truncate_seg(dir, segs[2], file_size(dir, segs[2]) - 5);   /* and tear the third */

    struct journal_config cfg = config(dir, 1000, 0);
    j = open_ok(&cfg, &rep);                    /* only the newest is walked */
    ck_assert_uint_eq(rep.ncuts, 0);
    ck_assert_uint_eq(rep.last_id, 120);
    journal_close(j);

    ck_assert_int_eq(journal_reader_open(dir, 0, MAXF, &r), 0);
    uint64_t want = 2;
    int problems = 0;
    for (;;) {
        int rc = journal_reader_next(r, &rec);
        if (rc == 0)
            break;
        if (rc == -EBADMSG) {
            const struct journal_cut *p = journal_reader_problem(r);
            char name[32];
            if (problems == 0) {
                snprintf(name, sizeof name, "%020llu.wsj", (unsigned long long)segs[1]);
                ck_assert_str_eq(p->file, name);
                ck_assert_uint_eq(p->offset, 32 + rec_size(segs[1]));
                ck_assert_int_eq(p->reason, JOURNAL_ERR_CRC);
                ck_assert_uint_eq(p->bytes, file_size(dir, segs[1]) - p->offset);
                want = segs[2];
            } else {
                snprintf(name, sizeof name, "%020llu.wsj", (unsigned long long)segs[2]);
                ck_assert_str_eq(p->file, name);
                ck_assert_int_eq(p->reason, 0);
                ck_assert_uint_eq(p->bytes, file_size(dir, segs[2]) - p->offset);
                want = segs[3];
            }
            problems++;
            continue;
        }
        ck_assert_int_eq(rc, 1);
        if (problems == 0 && want == segs[1] + 2)
            ck_abort_msg("read past the damaged record");
        ck_assert_uint_eq(rec.id, want);
        check_record(&rec);
        want += 2;
    }
    ck_assert_int_eq(problems, 2);
    ck_assert_uint_eq(want, 122);
    journal_reader_close(r);
}
END_TEST

/* ---- a full disk, simulated: RLIMIT_FSIZE in a child, SIGXFSZ ignored */

#define FSIZE_LIMIT 20000

/*
 * The child appends until the limit stops a write. KILL_AFTER: _exit at
 * once, leaving a partial record on disk; else check that the bytes are
 * kept, lift the limit, flush them and close. Writes the number of records
 * appended successfully to DIR/../count. Exit status 0 when all went as
 * expected.
 */
static void fsize_child(const char *dir, int kill_after)
{
    struct rlimit rl;
    struct journal_report rep;
    struct journal_stat st;
    signal(SIGXFSZ, SIG_IGN);
    struct journal_config cfg = config(dir, 1 << 20, 0);
    cfg.buffer_bytes = 4096;
    struct journal *j;
    if (journal_open(&cfg, &j, &rep) != 0)
        _exit(10);
    getrlimit(RLIMIT_FSIZE, &rl);
    rlim_t hard = rl.rlim_max;
    rl.rlim_cur = FSIZE_LIMIT;
    if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
        _exit(11);
    uint64_t id = 1;
    int rc;
    for (;; id++) {
        struct journal_record r = make(id);
        if ((rc = journal_append(j, &r)) != 0)
            break;
        if (id > 10000)
            _exit(12);
    }
    uint64_t appended = id - 1;
    if (rc != -EFBIG)
        _exit(14);
    /* the failed flush wrote what it could, so the next record may fit */
    struct journal_record r = make(id);
    if ((rc = journal_append(j, &r)) == 0)
        appended++;
    else if (rc != -EFBIG)
        _exit(17);
    char p[300];
    snprintf(p, sizeof p, "%s/../count", dir);
    FILE *f = fopen(p, "w");
    if (f == NULL)
        _exit(13);
    fprintf(f, "%llu\n", (unsigned long long)appended);
    fclose(f);
    if (kill_after)
        _exit(0);
    journal_stat(j, &st);
    if (st.buffered == 0 || st.last_id != appended || st.flushed_id >= appended)
        _exit(15);
    if (journal_flush(j) != -EFBIG || journal_sync(j) != -EFBIG)
        _exit(16);
    rl.rlim_cur = hard;
    if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
        _exit(18);
    if (journal_flush(j) != 0 || journal_sync(j) != 0)
        _exit(19);
    journal_stat(j, &st);
    if (st.buffered != 0 || st.synced_id != appended)
        _exit(20);
    if (journal_close(j) != 0)
        _exit(21);
    _exit(0);
}

static uint64_t run_fsize_child(const char *dir, int kill_after)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        fsize_child(dir, kill_after);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
    char p[300];
    snprintf(p, sizeof p, "%s/../count", dir);
    FILE *f = fopen(p, "r");
    ck_assert_ptr_nonnull(f);
    unsigned long long n = 0;
    ck_assert_int_eq(fscanf(f, "%llu", &n), 1);
    fclose(f);
    return n;
}

START_TEST(disk_full_kept_and_retried)
{
    char dir[160];
    static uint64_t ids[10000];
    struct journal_report rep;
    fresh_dir(dir, sizeof dir);
    uint64_t n = run_fsize_child(dir, 0);
    ck_assert_uint_gt(n, 10);
    ck_assert_uint_gt(file_size(dir, 1), FSIZE_LIMIT);
    struct journal_config cfg = config(dir, 1 << 20, 0);
    struct journal *j = open_ok(&cfg, &rep);
    ck_assert_uint_eq(rep.ncuts, 0);
    ck_assert_uint_eq(rep.last_id, n);
    journal_close(j);
    ck_assert_uint_eq(read_ids(dir, 0, ids, 10000), n);
}
END_TEST

START_TEST(disk_full_then_killed)
{
    char dir[160];
    static uint64_t ids[10000];
    struct journal_report rep;
    fresh_dir(dir, sizeof dir);
    run_fsize_child(dir, 1);
    uint64_t size = file_size(dir, 1);
    ck_assert_uint_eq(size, FSIZE_LIMIT);               /* written up to the limit */
    struct journal_config cfg = config(dir, 1 << 20, 0);
    struct journal *j = open_ok(&cfg, &rep);
    uint64_t n = rep.last_id, end = 32;
    for (uint64_t id = 1; id <= n; id++)
        end += rec_size(id);
    ck_assert_uint_gt(n, 10);
    if (end < size) {
        ck_assert_uint_eq(rep.ncuts, 1);
        ck_assert_uint_eq(rep.cut[0].offset, end);
        ck_assert_uint_eq(rep.cut[0].bytes, size - end);
        ck_assert_int_eq(rep.cut[0].reason, 0);
    }
    ck_assert_uint_eq(file_size(dir, 1), end);
    append_ok(j, n + 1);
    ck_assert_int_eq(journal_close(j), 0);
    ck_assert_uint_eq(read_ids(dir, 0, ids, 10000), n + 1);
}
END_TEST

/* ---- the directory */

START_TEST(creates_parents)
{
    char dir[160], deep[300];
    struct journal_report rep;
    fresh_dir(dir, sizeof dir);
    snprintf(deep, sizeof deep, "%s/a/b/c", dir);
    struct journal_config cfg = config(deep, 1 << 20, 0);
    struct journal *j = open_ok(&cfg, &rep);
    append_ok(j, 1);
    ck_assert_int_eq(journal_close(j), 0);
    ck_assert(seg_exists(deep, 1));

    /* a file where a directory should be */
    char file[300], under[320];
    snprintf(file, sizeof file, "%s/plain", dir);
    write_file(file, "x", 1);
    snprintf(under, sizeof under, "%s/sub", file);
    cfg = config(under, 1 << 20, 0);
    struct journal *k;
    ck_assert_int_eq(journal_open(&cfg, &k, &rep), -ENOTDIR);
    ck_assert_ptr_nonnull(strstr(rep.msg, under));
}
END_TEST

START_TEST(unwritable_directory)
{
    char dir[160];
    fresh_dir(dir, sizeof dir);
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    ck_assert_int_eq(chmod(dir, 0555), 0);
    char parent[160];
    snprintf(parent, sizeof parent, "%s", dir);
    *strrchr(parent, '/') = '\0';
    ck_assert_int_eq(chmod(parent, 0755), 0);       /* mkdtemp made them 0700 */
    ck_assert_int_eq(chmod(base, 0755), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        if (geteuid() == 0) {                   /* root writes anywhere: be nobody */
            struct passwd *pw = getpwnam("nobody");
            uid_t uid = pw ? pw->pw_uid : 65534;
            gid_t gid = pw ? pw->pw_gid : 65534;
            if (setgid(gid) != 0 || setuid(uid) != 0)
                _exit(10);
        }
        struct journal_report rep;
        struct journal *j;
        struct journal_config cfg = config(dir, 1 << 20, 0);
        int rc = journal_open(&cfg, &j, &rep);
        if (rc != -EACCES) {
            fprintf(stderr, "journal_open: %d %s\n", rc, rep.msg);
            _exit(11);
        }
        if (strstr(rep.msg, "is not writable") == NULL || strstr(rep.msg, dir) == NULL) {
            fprintf(stderr, "unexpected message: %s\n", rep.msg);
            _exit(12);
        }
        _exit(0);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    chmod(dir, 0755);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
}
END_TEST

START_TEST(one_writer_only)
{
    char dir[160];
    struct journal_report rep;
    fresh_dir(dir, sizeof dir);
    struct journal_config cfg = config(dir, 1 << 20, 0);
    struct journal *j = open_ok(&cfg, &rep), *k;
    ck_assert_int_eq(journal_open(&cfg, &k, &rep), -EBUSY);
    ck_assert_ptr_nonnull(strstr(rep.msg, "in use by another writer"));
    journal_close(j);
    k = open_ok(&cfg, &rep);
    journal_close(k);
}
END_TEST

/* Sync after rotations: every segment synced, ids reported durable. */
START_TEST(sync_across_rotations)
{
    char dir[160];
    struct journal_report rep;
    struct journal_stat st;
    fresh_dir(dir, sizeof dir);
    struct journal_config cfg = config(dir, 600, 0);
    struct journal *j = open_ok(&cfg, &rep);
    for (uint64_t id = 1; id <= 60; id++) {
        append_ok(j, id);
        if (id % 7 == 0) {
            ck_assert_int_eq(journal_sync(j), 0);
            journal_stat(j, &st);
            ck_assert_uint_eq(st.synced_id, id);
            ck_assert_uint_eq(st.flushed_id, id);
        }
    }
    journal_stat(j, &st);
    ck_assert_uint_eq(st.synced_id, 56);
    ck_assert_uint_gt(st.segments, 5);
    ck_assert_int_eq(journal_sync(j), 0);
    ck_assert_int_eq(journal_sync(j), 0);               /* nothing new: still fine */
    ck_assert_int_eq(journal_close(j), 0);
}
END_TEST

Suite *journal_suite(void)
{
    Suite *s = suite_create("journal");
    TCase *tc = tcase_create("write");
    tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, append_reopen);
    tcase_add_test(tc, bad_appends);
    tcase_add_test(tc, rotation_and_keep);
    tcase_add_test(tc, big_records);
    tcase_add_test(tc, sync_across_rotations);
    suite_add_tcase(s, tc);

    tc = tcase_create("recover");
    tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, torn_tail_every_length);
    tcase_add_test(tc, flipped_byte_in_last_record);
    tcase_add_test(tc, flipped_byte_mid_segment);
    tcase_add_test(tc, torn_single_record_segment);
    tcase_add_test(tc, empty_newest_segments_removed);
    tcase_add_test(tc, other_version_refused);
    tcase_add_test(tc, foreign_files_refused);
    suite_add_tcase(s, tc);

    tc = tcase_create("read");
    tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, reader_from_anywhere);
    tcase_add_test(tc, reader_before_first_segment);
    tcase_add_test(tc, reader_follows_writer);
    tcase_add_test(tc, reader_stops_at_torn_tail);
    tcase_add_test(tc, reader_skips_damaged_segment);
    suite_add_tcase(s, tc);

    tc = tcase_create("system");
    tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, disk_full_kept_and_retried);
    tcase_add_test(tc, disk_full_then_killed);
    tcase_add_test(tc, creates_parents);
    tcase_add_test(tc, unwritable_directory);
    tcase_add_test(tc, one_writer_only);
    suite_add_tcase(s, tc);
    return s;
}

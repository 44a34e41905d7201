/*
 * check_journal_format: the journal segment codec (shared/journal_format.c).
 *
 * Golden bytes pin the on-disk format (it is an ABI). Decoder vectors are
 * fed as a file reader would: whole, one byte at a time and split in two
 * at every offset, unconsumed bytes kept and the next chunk appended, each
 * call's input flush against a guard page; every feed must render the same
 * outcome and consume the same bytes. Generated streams are also cut at
 * every length (a torn tail is "need more", never an error or a record)
 * and hit with a flipped byte at every offset (the damaged record never
 * decodes). Records with a good CRC but bad content exercise every error.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "guard.h"
#include "journal_format.h"

#define REQUIRE(c) \
    do { \
        if (!(c)) \
            ck_abort_msg("%s:%d: %s", __FILE__, __LINE__, #c); \
    } while (0)

/* ---- growable byte buffer (tests only) */

struct sbuf {
    unsigned char *p;
    size_t len, cap;
};

static void sb_put(struct sbuf *b, const void *d, size_t n)
{
    if (b->p == NULL || b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n)
            cap *= 2;
        b->p = realloc(b->p, cap);
        REQUIRE(b->p != NULL);
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, d, n);
    b->len += n;
}

static void sb_str(struct sbuf *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

static void sb_fmt(struct sbuf *b, const char *fmt, unsigned long long v)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, fmt, v);
    sb_put(b, tmp, (size_t)n);
}

static void sb_int(struct sbuf *b, const char *fmt, long long v)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, fmt, v);
    sb_put(b, tmp, (size_t)n);
}

static void sb_free(struct sbuf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

static const char *cstr(struct sbuf *b)
{
    sb_put(b, "", 1);
    b->len--;
    return (const char *)b->p;
}

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* ---- stream builders */

static void add_header(struct sbuf *b, uint64_t first_id)
{
    unsigned char h[JOURNAL_HEADER_LEN];
    REQUIRE(journal_header_encode(h, sizeof h, first_id) == JOURNAL_HEADER_LEN);
    sb_put(b, h, sizeof h);
}

static void add_msg(struct sbuf *b, uint64_t id, int64_t ts, const char *room,
                    const void *frame, uint32_t flen)
{
    struct journal_record r = {
        .id = id, .ts_ms = ts, .kind = JOURNAL_MESSAGE, .room_len = (uint8_t)strlen(room),
        .room = room, .frame_len = flen, .frame = frame,
    };
    size_t n = journal_record_size(&r);
    REQUIRE(n > 0);
    unsigned char *tmp = malloc(n);
    REQUIRE(tmp != NULL);
    REQUIRE(journal_record_encode(tmp, n, &r) == (ssize_t)n);
    sb_put(b, tmp, n);
    free(tmp);
}

static void add_mark(struct sbuf *b, uint64_t id, int64_t ts)
{
    struct journal_record r = { .id = id, .ts_ms = ts, .kind = JOURNAL_MARK };
    unsigned char tmp[JOURNAL_RECORD_HEAD + JOURNAL_MARK_PAYLOAD];
    REQUIRE(journal_record_encode(tmp, sizeof tmp, &r) == (ssize_t)sizeof tmp);
    sb_put(b, tmp, sizeof tmp);
}

/* A record around any payload, with a correct length and CRC. */
static void add_raw_record(struct sbuf *b, const void *payload, uint32_t plen)
{
    unsigned char head[8];
    put32(head, plen);
    put32(head + 4, crc32c_update(crc32c(head, 4), payload, plen));
    sb_put(b, head, 8);
    sb_put(b, payload, plen);
}

/* A header with any version and reserved words, with a correct CRC. */
static void add_raw_header(struct sbuf *b, uint32_t version, uint32_t res1, uint64_t first,
                           uint32_t res2)
{
    unsigned char h[32];
    memcpy(h, JOURNAL_MAGIC, 8);
    put32(h + 8, version);
    put32(h + 12, res1);
    put64(h + 16, first);
    put32(h + 24, res2);
    put32(h + 28, crc32c(h, 28));
    sb_put(b, h, 32);
}

/* ---- the feeding harness */

static const char *err_name(int e)
{
    switch (e) {
    case JOURNAL_ERR_MAGIC:   return "MAGIC";
    case JOURNAL_ERR_VERSION: return "VERSION";
    case JOURNAL_ERR_HEADER:  return "HEADER";
    case JOURNAL_ERR_LENGTH:  return "LENGTH";
    case JOURNAL_ERR_CRC:     return "CRC";
    case JOURNAL_ERR_FORMAT:  return "FORMAT";
    case JOURNAL_ERR_ORDER:   return "ORDER";
    }
    return "?";
}

struct run {
    struct journal_decoder d;
    struct sbuf log;
    struct sbuf acc;        /* unconsumed input */
    size_t consumed;
    int err;
};

static void render(struct sbuf *l, const struct journal_record *r)
{
    if (l->len)
        sb_str(l, " ");
    switch (r->kind) {
    case JOURNAL_HEADER:
        sb_fmt(l, "H%llu", r->id);
        return;
    case JOURNAL_MARK:
        sb_fmt(l, "K%llu", r->id);
        sb_int(l, "@%lld", r->ts_ms);
        REQUIRE(r->room_len == 0 && r->frame_len == 0);
        return;
    case JOURNAL_MESSAGE:
        sb_fmt(l, "M%llu", r->id);
        sb_int(l, "@%lld/", r->ts_ms);
        sb_put(l, r->room, r->room_len);
        sb_fmt(l, "/%llu:", r->frame_len);
        for (uint32_t i = 0; i < r->frame_len && i < 16; i++) {
            unsigned char c = r->frame[i];
            if (c >= 0x21 && c < 0x7f && c != '\\')
                sb_put(l, &c, 1);
            else
                sb_fmt(l, "\\x%02x", c);
        }
        if (r->frame_len > 16)
            sb_fmt(l, "..%08llx", crc32c(r->frame, r->frame_len));
        return;
    }
    REQUIRE(0);
}

static void feed(struct run *r, const void *d, size_t n)
{
    if (r->err)
        return;
    sb_put(&r->acc, d, n);
    const unsigned char *g = guard_copy(r->acc.p, r->acc.len);
    size_t pos = 0;
    for (;;) {
        struct journal_decoder before = r->d;
        struct journal_record rec;
        ssize_t k = journal_decode(&r->d, g + pos, r->acc.len - pos, &rec);
        if (k < 0) {
            r->err = (int)k;
            REQUIRE(r->d.offset == r->consumed);
            REQUIRE(journal_decode(&r->d, g + pos, r->acc.len - pos, &rec) == k);
            if (k == JOURNAL_ERR_VERSION)
                REQUIRE(r->d.version != JOURNAL_VERSION);
            break;
        }
        if (k == 0) {
            before.version = r->d.version;
            REQUIRE(memcmp(&before, &r->d, sizeof before) == 0);
            break;
        }
        REQUIRE((size_t)k <= r->acc.len - pos);
        if (rec.kind == JOURNAL_MESSAGE) {
            REQUIRE((const unsigned char *)rec.room >= g + pos);
            REQUIRE(rec.frame + rec.frame_len <= g + pos + (size_t)k);
            REQUIRE(journal_record_size(&rec) == (size_t)k);
        }
        render(&r->log, &rec);
        pos += (size_t)k;
        r->consumed += (size_t)k;
        REQUIRE(r->d.offset == r->consumed);
    }
    memmove(r->acc.p, r->acc.p + pos, r->acc.len - pos);
    r->acc.len -= pos;
}

static struct sbuf finish(struct run *r)
{
    struct sbuf out = r->log;
    if (r->err) {
        sb_str(&out, out.len ? " ERR(" : "ERR(");
        sb_str(&out, err_name(r->err));
        sb_fmt(&out, ")@%llu", r->d.offset);
    } else if (r->acc.len) {
        sb_fmt(&out, out.len ? " L%llu" : "L%llu", r->acc.len);
    }
    sb_free(&r->acc);
    return out;
}

static void run_init(struct run *r, uint32_t max_frame)
{
    memset(r, 0, sizeof *r);
    journal_decoder_init(&r->d, max_frame);
}

static void expect(struct sbuf *got, const char *want, const char *name, const char *how,
                   size_t split, size_t consumed, size_t want_consumed)
{
    if (consumed != want_consumed)
        ck_abort_msg("%s, %s feed (split %zu): consumed %zu, whole feed %zu", name, how,
                     split, consumed, want_consumed);
    if (strcmp(cstr(got), want) != 0)
        ck_abort_msg("%s, %s feed (split %zu): got \"%s\" want \"%s\"", name, how, split,
                     cstr(got), want);
    sb_free(got);
}

/*
 * Feed in[0..len) whole, byte by byte and at every split; all must render
 * WANT (NULL: whatever the whole feed gives). Returns the whole outcome.
 */
static struct sbuf run_feeds(const char *name, const unsigned char *in, size_t len,
                             uint32_t max_frame, const char *want)
{
    struct run r;
    run_init(&r, max_frame);
    feed(&r, in, len);
    size_t whole = r.consumed;
    struct sbuf ref = finish(&r), out;
    if (want != NULL && strcmp(cstr(&ref), want) != 0)
        ck_abort_msg("%s, whole feed: got \"%s\" want \"%s\"", name, cstr(&ref), want);

    run_init(&r, max_frame);
    for (size_t i = 0; i < len; i++)
        feed(&r, in + i, 1);
    out = finish(&r);
    expect(&out, cstr(&ref), name, "bytewise", 0, r.consumed, whole);

    for (size_t k = 1; k < len; k++) {
        run_init(&r, max_frame);
        feed(&r, in, k);
        feed(&r, in + k, len - k);
        out = finish(&r);
        expect(&out, cstr(&ref), name, "split", k, r.consumed, whole);
    }
    return ref;
}

static void check_feeds(const char *name, const struct sbuf *in, uint32_t max_frame,
                        const char *want)
{
    struct sbuf ref = run_feeds(name, in->p, in->len, max_frame, want);
    sb_free(&ref);
}

#define MAXF (16u << 20)

/* ---- golden bytes: the format as documented in journal_format.h */

START_TEST(golden_header)
{
    unsigned char h[40];
    memset(h, 0xee, sizeof h);
    ck_assert_int_eq(journal_header_encode(h, sizeof h, 0x0102030405060708ull), 32);
    static const unsigned char want[28] = {
        0x89, 'W', 'S', 'J', 'R', 'N', 'L', '\n',   1, 0, 0, 0,   0, 0, 0, 0,
        0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,   0, 0, 0, 0,
    };
    ck_assert_mem_eq(h, want, 28);
    uint32_t crc = crc32c(want, 28);
    unsigned char c[4] = { (unsigned char)crc, (unsigned char)(crc >> 8),
                           (unsigned char)(crc >> 16), (unsigned char)(crc >> 24) };
    ck_assert_mem_eq(h + 28, c, 4);
    ck_assert_uint_eq(h[32], 0xee);             /* nothing past the header */

    struct journal_header hd;
    ck_assert_int_eq(journal_header_decode(h, 32, &hd), 32);
    ck_assert_uint_eq(hd.version, 1);
    ck_assert_uint_eq(hd.first_id, 0x0102030405060708ull);
}
END_TEST

START_TEST(golden_message)
{
    static const unsigned char payload[] = {
        5, 0, 0, 0, 0, 0, 0, 0,                         /* id 5 */
        0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, /* ts_ms */
        1,                                              /* message */
        5, 'l', 'o', 'b', 'b', 'y',                     /* room */
        4, 0, 0, 0, 0x81, 0x02, 'h', 'i',               /* frame */
    };
    unsigned char want[8 + sizeof payload];
    put32(want, sizeof payload);
    put32(want + 4, crc32c_update(crc32c(want, 4), payload, sizeof payload));
    memcpy(want + 8, payload, sizeof payload);

    struct journal_record r = {
        .id = 5, .ts_ms = 0x0102030405060708ll, .kind = JOURNAL_MESSAGE,
        .room_len = 5, .room = "lobby", .frame_len = 4, .frame = (const unsigned char *)"\x81\x02hi",
    };
    unsigned char got[64];
    ck_assert_uint_eq(journal_record_size(&r), sizeof want);
    ck_assert_int_eq(journal_record_encode(got, sizeof got, &r), (ssize_t)sizeof want);
    ck_assert_mem_eq(got, want, sizeof want);
    ck_assert_uint_eq(want[0], 31);
}
END_TEST

START_TEST(golden_mark)
{
    static const unsigned char payload[] = {
        9, 0, 0, 0, 0, 0, 0, 0,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, /* ts_ms -1 */
        2,
    };
    unsigned char want[8 + sizeof payload];
    put32(want, sizeof payload);
    put32(want + 4, crc32c_update(crc32c(want, 4), payload, sizeof payload));
    memcpy(want + 8, payload, sizeof payload);
    struct journal_record r = { .id = 9, .ts_ms = -1, .kind = JOURNAL_MARK,
                                .room_len = 7, .frame_len = 99 };   /* ignored for a mark */
    unsigned char got[32];
    ck_assert_int_eq(journal_record_encode(got, sizeof got, &r), 25);
    ck_assert_mem_eq(got, want, 25);
}
END_TEST

/* ---- decoder vectors */

struct dvec {
    const char *name;
    void (*build)(struct sbuf *b);
    uint32_t max_frame;
    const char *want;
};

static const unsigned char big[300] = { 1, 2, 3 };
static const char room32[] = "abcdefghijklmnopqrstuvwxyz012345";

static void b_header(struct sbuf *b) { add_header(b, 1); }
static void b_one(struct sbuf *b) { add_header(b, 1); add_msg(b, 1, 1700000000000, "lobby", "hi", 2); }
static void b_mixed(struct sbuf *b)
{
    add_header(b, 10);
    add_msg(b, 10, 5, "lobby", "a\x81", 2);
    add_mark(b, 12, 6);
    add_msg(b, 13, -7, "", "", 0);
    add_msg(b, 20, 8, room32, big, sizeof big);
    add_mark(b, 21, 0);
}
static void b_magic0(struct sbuf *b) { add_header(b, 1); b->p[0] = 'W'; }
static void b_magic7(struct sbuf *b) { add_header(b, 1); b->p[7] = '\r'; }
static void b_magic_short(struct sbuf *b) { sb_put(b, "\x89WSX", 4); }
static void b_prefix(struct sbuf *b) { sb_put(b, "\x89WSJRNL\n\x01\x00", 10); }
static void b_text(struct sbuf *b) { sb_str(b, "hello world, not a journal at all"); }
static void b_zeros(struct sbuf *b) { static const unsigned char z[64]; sb_put(b, z, sizeof z); }
static void b_version2(struct sbuf *b) { add_raw_header(b, 2, 0, 1, 0); add_mark(b, 1, 0); }
static void b_version_short(struct sbuf *b) { add_raw_header(b, 7, 0, 1, 0); b->len = 12; }
static void b_res1(struct sbuf *b) { add_raw_header(b, 1, 1, 1, 0); }
static void b_res2(struct sbuf *b) { add_raw_header(b, 1, 0, 1, 0x100); }
static void b_first0(struct sbuf *b) { add_raw_header(b, 1, 0, 0, 0); }
static void b_hcrc(struct sbuf *b) { add_header(b, 1); b->p[31] ^= 1; }
static void b_hfirst_flip(struct sbuf *b) { add_header(b, 1); b->p[17] ^= 0x10; }
static void b_len_zero(struct sbuf *b) { b_one(b); b_zeros(b); }
static void b_len_16(struct sbuf *b)
{
    add_header(b, 1);
    unsigned char p[16] = { 1 };
    add_raw_record(b, p, sizeof p);
}
static void b_len_over(struct sbuf *b)
{
    add_header(b, 1);
    unsigned char h[4];
    put32(h, 22 + 32 + 64 + 1);
    sb_put(b, h, 4);
}
static void b_len_max(struct sbuf *b)
{
    static unsigned char f[64];
    add_header(b, 1);
    add_msg(b, 1, 0, room32, f, sizeof f);
}
static void b_frame_over(struct sbuf *b)
{   /* len within bounds (short room), but the frame is longer than max_frame */
    static unsigned char f[65];
    add_header(b, 1);
    add_msg(b, 1, 0, "r", f, sizeof f);
}
static void b_rec_crc(struct sbuf *b) { b_one(b); b->p[b->len - 1] ^= 0x20; }
static void b_rec_crcfield(struct sbuf *b) { b_one(b); b->p[32 + 4] ^= 1; }
static void b_kind3(struct sbuf *b)
{
    add_header(b, 1);
    unsigned char p[17] = { 1, 0, 0, 0, 0, 0, 0, 0,  0, 0, 0, 0, 0, 0, 0, 0, 3 };
    add_raw_record(b, p, sizeof p);
}
static void b_kind0(struct sbuf *b)
{
    add_header(b, 1);
    unsigned char p[22] = { 1, 0, 0, 0, 0, 0, 0, 0,  0, 0, 0, 0, 0, 0, 0, 0, 0 };
    add_raw_record(b, p, sizeof p);
}
static void b_mark_long(struct sbuf *b)
{
    add_header(b, 1);
    unsigned char p[18] = { 1, 0, 0, 0, 0, 0, 0, 0,  0, 0, 0, 0, 0, 0, 0, 0, 2 };
    add_raw_record(b, p, sizeof p);
}
static void b_msg_short(struct sbuf *b)
{   /* a message needs 22 bytes: this one stops after room_len */
    add_header(b, 1);
    unsigned char p[21] = { 1, 0, 0, 0, 0, 0, 0, 0,  0, 0, 0, 0, 0, 0, 0, 0, 1, 0 };
    add_raw_record(b, p, sizeof p);
}
static void b_room33(struct sbuf *b)
{
    add_header(b, 1);
    unsigned char p[22 + 33] = { 1, 0, 0, 0, 0, 0, 0, 0,  0, 0, 0, 0, 0, 0, 0, 0, 1, 33 };
    add_raw_record(b, p, sizeof p);
}
static void b_room_past(struct sbuf *b)
{   /* room_len 10 in a 22-byte payload */
    add_header(b, 1);
    unsigned char p[22] = { 1, 0, 0, 0, 0, 0, 0, 0,  0, 0, 0, 0, 0, 0, 0, 0, 1, 10 };
    add_raw_record(b, p, sizeof p);
}
static void b_frame_disagree(struct sbuf *b)
{   /* frame_len says 3, the record holds 2 */
    add_header(b, 1);
    unsigned char p[24] = { 1, 0, 0, 0, 0, 0, 0, 0,  0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 3, 0, 0, 0,
                            'h', 'i' };
    add_raw_record(b, p, sizeof p);
}
static void b_frame_disagree_less(struct sbuf *b)
{
    add_header(b, 1);
    unsigned char p[24] = { 1, 0, 0, 0, 0, 0, 0, 0,  0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0,
                            'h', 'i' };
    add_raw_record(b, p, sizeof p);
}
static void b_id_equal(struct sbuf *b) { b_one(b); add_mark(b, 1, 0); }
static void b_id_back(struct sbuf *b) { b_one(b); add_mark(b, 5, 0); add_msg(b, 4, 0, "x", "", 0); }
static void b_id_below_first(struct sbuf *b) { add_header(b, 100); add_mark(b, 99, 0); }
static void b_id_first(struct sbuf *b) { add_header(b, 100); add_mark(b, 100, 0); }
static void b_id_above_first(struct sbuf *b) { add_header(b, 100); add_mark(b, 250, 0); }
static void b_id_max(struct sbuf *b)
{
    add_header(b, UINT64_MAX - 1);
    add_mark(b, UINT64_MAX - 1, 0);
    add_mark(b, UINT64_MAX, 0);
    add_mark(b, UINT64_MAX, 0);
}
static void b_two_headers(struct sbuf *b) { b_one(b); add_header(b, 2); }
static void b_torn(struct sbuf *b) { b_one(b); add_mark(b, 2, 0); b->len -= 3; }
static void b_after_error(struct sbuf *b) { b_rec_crc(b); add_mark(b, 9, 0); }

static const struct dvec dvecs[] = {
    { "empty", NULL, MAXF, "" },
    { "header", b_header, MAXF, "H1" },
    { "one message", b_one, MAXF, "H1 M1@1700000000000/lobby/2:hi" },
    { "mixed", b_mixed, MAXF,
      "H10 M10@5/lobby/2:a\\x81 K12@6 M13@-7//0: "
      "M20@8/abcdefghijklmnopqrstuvwxyz012345/300:\\x01\\x02\\x03\\x00\\x00\\x00\\x00\\x00"
      "\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00..40d8e715 K21@0" },
    { "bad magic first byte", b_magic0, MAXF, "ERR(MAGIC)@0" },
    { "bad magic last byte", b_magic7, MAXF, "ERR(MAGIC)@0" },
    { "bad magic, short", b_magic_short, MAXF, "ERR(MAGIC)@0" },
    { "header prefix", b_prefix, MAXF, "L10" },
    { "text file", b_text, MAXF, "ERR(MAGIC)@0" },
    { "zero-filled file", b_zeros, MAXF, "ERR(MAGIC)@0" },
    { "version 2", b_version2, MAXF, "ERR(VERSION)@0" },
    { "version 7, 12 bytes", b_version_short, MAXF, "ERR(VERSION)@0" },
    { "reserved word 1 set", b_res1, MAXF, "ERR(HEADER)@0" },
    { "reserved word 2 set", b_res2, MAXF, "ERR(HEADER)@0" },
    { "first id 0", b_first0, MAXF, "ERR(HEADER)@0" },
    { "header crc", b_hcrc, MAXF, "ERR(HEADER)@0" },
    { "header first id flipped", b_hfirst_flip, MAXF, "ERR(HEADER)@0" },
    { "zeroed tail", b_len_zero, MAXF, "H1 M1@1700000000000/lobby/2:hi ERR(LENGTH)@69" },
    { "len 16", b_len_16, MAXF, "H1 ERR(LENGTH)@32" },
    { "len over max", b_len_over, 64, "H1 ERR(LENGTH)@32" },
    { "len at max", b_len_max, 64,
      "H1 M1@0/abcdefghijklmnopqrstuvwxyz012345/64:\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00"
      "\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00..03c8eb67" },
    { "frame over max", b_frame_over, 64, "H1 ERR(LENGTH)@32" },
    { "record crc", b_rec_crc, MAXF, "H1 ERR(CRC)@32" },
    { "record crc field", b_rec_crcfield, MAXF, "H1 ERR(CRC)@32" },
    { "kind 3", b_kind3, MAXF, "H1 ERR(FORMAT)@32" },
    { "kind 0", b_kind0, MAXF, "H1 ERR(FORMAT)@32" },
    { "mark with a byte more", b_mark_long, MAXF, "H1 ERR(FORMAT)@32" },
    { "message too short", b_msg_short, MAXF, "H1 ERR(FORMAT)@32" },
    { "room 33", b_room33, MAXF, "H1 ERR(FORMAT)@32" },
    { "room past the end", b_room_past, MAXF, "H1 ERR(FORMAT)@32" },
    { "frame_len too big", b_frame_disagree, MAXF, "H1 ERR(FORMAT)@32" },
    { "frame_len too small", b_frame_disagree_less, MAXF, "H1 ERR(FORMAT)@32" },
    { "id repeated", b_id_equal, MAXF, "H1 M1@1700000000000/lobby/2:hi ERR(ORDER)@69" },
    { "id backwards", b_id_back, MAXF,
      "H1 M1@1700000000000/lobby/2:hi K5@0 ERR(ORDER)@94" },
    { "id below first_id", b_id_below_first, MAXF, "H100 ERR(ORDER)@32" },
    { "id at first_id", b_id_first, MAXF, "H100 K100@0" },
    { "id above first_id", b_id_above_first, MAXF, "H100 K250@0" },
    { "ids up to UINT64_MAX", b_id_max, MAXF,
      "H18446744073709551614 K18446744073709551614@0 K18446744073709551615@0 ERR(ORDER)@82" },
    { "a second header is a bad record", b_two_headers, MAXF,
      "H1 M1@1700000000000/lobby/2:hi ERR(LENGTH)@69" },
    { "torn tail", b_torn, MAXF, "H1 M1@1700000000000/lobby/2:hi L22" },
    { "nothing after an error", b_after_error, MAXF, "H1 ERR(CRC)@32" },
};

#define NDVEC (sizeof dvecs / sizeof dvecs[0])

START_TEST(decode_vector)
{
    const struct dvec *v = &dvecs[_i];
    struct sbuf in = { 0 };
    if (v->build)
        v->build(&in);
    check_feeds(v->name, &in, v->max_frame, v->want);
    sb_free(&in);
}
END_TEST

START_TEST(version_found)
{
    struct sbuf in = { 0 };
    add_raw_header(&in, 0x01000000u, 0, 1, 0);
    struct journal_decoder d;
    struct journal_record r;
    journal_decoder_init(&d, MAXF);
    ck_assert_int_eq(journal_decode(&d, in.p, 11, &r), 0);
    ck_assert_int_eq(journal_decode(&d, in.p, 12, &r), JOURNAL_ERR_VERSION);
    ck_assert_uint_eq(d.version, 0x01000000u);
    ck_assert_uint_eq(d.offset, 0);

    struct journal_header h;
    ck_assert_int_eq(journal_header_decode(in.p, in.len, &h), JOURNAL_ERR_VERSION);
    ck_assert_uint_eq(h.version, 0x01000000u);
    sb_free(&in);
}
END_TEST

/* ---- every truncation and every flipped byte of a generated stream */

struct item {
    size_t start, end;
    char text[200];
};

/* The items of a valid stream and their renderings, from one whole feed. */
static size_t items_of(const struct sbuf *in, struct item *it, size_t max)
{
    struct journal_decoder d;
    journal_decoder_init(&d, MAXF);
    size_t n = 0, pos = 0;
    for (;;) {
        struct journal_record r;
        ssize_t k = journal_decode(&d, in->p + pos, in->len - pos, &r);
        REQUIRE(k >= 0);
        if (k == 0)
            break;
        REQUIRE(n < max);
        struct sbuf t = { 0 };
        render(&t, &r);
        REQUIRE(t.len < sizeof it[n].text);
        memcpy(it[n].text, t.p, t.len);
        it[n].text[t.len] = '\0';
        sb_free(&t);
        it[n].start = pos;
        pos += (size_t)k;
        it[n++].end = pos;
    }
    REQUIRE(pos == in->len);
    return n;
}

/* The rendering of the items that end at or before LEN. */
static void prefix_text(struct sbuf *w, const struct item *it, size_t n, size_t len)
{
    w->len = 0;
    for (size_t i = 0; i < n && it[i].end <= len; i++) {
        if (w->len)
            sb_str(w, " ");
        sb_str(w, it[i].text);
    }
}

START_TEST(every_truncation)
{
    struct sbuf in = { 0 }, want = { 0 };
    b_mixed(&in);
    struct item it[16];
    size_t n = items_of(&in, it, 16);
    ck_assert_uint_eq(n, 6);
    for (size_t len = 0; len <= in.len; len++) {
        prefix_text(&want, it, n, len);
        size_t done = 0;
        for (size_t i = 0; i < n && it[i].end <= len; i++)
            done = it[i].end;
        if (len > done)
            sb_fmt(&want, want.len ? " L%llu" : "L%llu", len - done);
        char name[64];
        snprintf(name, sizeof name, "cut at %zu", len);
        struct sbuf ref = run_feeds(name, in.p, len, MAXF, cstr(&want));
        sb_free(&ref);
    }
    sb_free(&in);
    sb_free(&want);
}
END_TEST

START_TEST(every_flipped_byte)
{
    static const unsigned char xors[] = { 0x01, 0x80, 0xff };
    struct sbuf in = { 0 }, want = { 0 }, bad = { 0 };
    b_mixed(&in);
    struct item it[16];
    size_t n = items_of(&in, it, 16);
    for (size_t at = 0; at < in.len; at++) {
        size_t k = 0;
        while (it[k].end <= at)
            k++;
        for (size_t x = 0; x < sizeof xors; x++) {
            bad.len = 0;
            sb_put(&bad, in.p, in.len);
            bad.p[at] ^= xors[x];
            char name[64];
            snprintf(name, sizeof name, "byte %zu ^ %02x", at, xors[x]);
            struct sbuf got = run_feeds(name, bad.p, bad.len, MAXF, NULL);
            prefix_text(&want, it, n, it[k].start);
            const char *g = cstr(&got), *w = cstr(&want);
            size_t wl = strlen(w);
            ck_assert_msg(strncmp(g, w, wl) == 0, "%s: got \"%s\", want it to start \"%s\"",
                          name, g, w);
            const char *rest = g + wl + (wl > 0);
            char tail[3][40];
            snprintf(tail[0], sizeof tail[0], "ERR(LENGTH)@%zu", it[k].start);
            snprintf(tail[1], sizeof tail[1], "ERR(CRC)@%zu", it[k].start);
            snprintf(tail[2], sizeof tail[2], "L%zu", in.len - it[k].start);
            int ok = k == 0 ? strncmp(rest, "ERR(", 4) == 0 && strstr(rest, ")@0") != NULL
                            : strcmp(rest, tail[0]) == 0 || strcmp(rest, tail[1]) == 0 ||
                                  strcmp(rest, tail[2]) == 0;
            ck_assert_msg(ok, "%s: damaged item %zu gave \"%s\"", name, k, rest);
            sb_free(&got);
        }
    }
    sb_free(&in);
    sb_free(&want);
    sb_free(&bad);
}
END_TEST

/* ---- encoder */

START_TEST(encode_errors)
{
    unsigned char buf[128];
    struct journal_record r = { .id = 1, .kind = JOURNAL_MESSAGE, .room_len = 3, .room = "abc",
                                .frame_len = 2, .frame = (const unsigned char *)"hi" };
    ck_assert_uint_eq(journal_record_size(&r), 8 + 22 + 3 + 2);
    memset(buf, 0x5a, sizeof buf);
    ck_assert_int_eq(journal_record_encode(buf, 34, &r), -ENOSPC);
    for (size_t i = 0; i < sizeof buf; i++)
        ck_assert_uint_eq(buf[i], 0x5a);
    ck_assert_int_eq(journal_record_encode(buf, 35, &r), 35);

    r.id = 0;
    ck_assert_int_eq(journal_record_encode(buf, sizeof buf, &r), -EINVAL);
    r.id = 1;
    r.room_len = 33;
    ck_assert_uint_eq(journal_record_size(&r), 0);
    ck_assert_int_eq(journal_record_encode(buf, sizeof buf, &r), -EINVAL);
    r.room_len = 3;
    r.kind = JOURNAL_HEADER;
    ck_assert_int_eq(journal_record_encode(buf, sizeof buf, &r), -EINVAL);
    r.kind = 3;
    ck_assert_int_eq(journal_record_encode(buf, sizeof buf, &r), -EINVAL);
    r.kind = JOURNAL_MESSAGE;
    r.frame_len = JOURNAL_FRAME_LIMIT + 1;
    ck_assert_uint_eq(journal_record_size(&r), 0);
    ck_assert_int_eq(journal_record_encode(buf, sizeof buf, &r), -EINVAL);
    r.frame_len = JOURNAL_FRAME_LIMIT;
    ck_assert_uint_eq(journal_record_size(&r), (size_t)JOURNAL_RECORD_MAX(JOURNAL_FRAME_LIMIT) - 29);
    ck_assert_int_eq(journal_record_encode(buf, sizeof buf, &r), -ENOSPC);

    r.kind = JOURNAL_MARK;
    ck_assert_uint_eq(journal_record_size(&r), 25);
    ck_assert_int_eq(journal_record_encode(buf, 24, &r), -ENOSPC);
    ck_assert_int_eq(journal_record_encode(buf, 25, &r), 25);

    ck_assert_int_eq(journal_header_encode(buf, 31, 1), -ENOSPC);
    ck_assert_int_eq(journal_header_encode(buf, 32, 0), -EINVAL);
    ck_assert_int_eq(journal_header_encode(buf, 32, UINT64_MAX), 32);
}
END_TEST

START_TEST(strerror_names)
{
    for (int e = JOURNAL_ERR_ORDER; e <= 0; e++) {
        const char *s = journal_strerror(e);
        ck_assert_ptr_nonnull(s);
        for (int f = JOURNAL_ERR_ORDER; f < e; f++)
            ck_assert_str_ne(s, journal_strerror(f));
    }
    ck_assert_str_eq(journal_strerror(-99), "unknown journal error");
}
END_TEST

START_TEST(decoder_init_clamps)
{
    struct journal_decoder d;
    journal_decoder_init(&d, UINT32_MAX);
    ck_assert_uint_eq(d.max_frame, JOURNAL_FRAME_LIMIT);
    ck_assert_int_eq(d.have_header, 0);
    ck_assert_int_eq(d.err, 0);
    struct journal_record r;
    ck_assert_int_eq(journal_decode(&d, "", 0, &r), 0);
}
END_TEST

/* Random records encoded into a stream come back field for field, in any pieces. */
START_TEST(round_trip)
{
    unsigned seed = (unsigned)_i * 7919u + 1;
    struct sbuf in = { 0 };
    enum { N = 200 };
    static struct journal_record recs[N];
    static char rooms[N][JOURNAL_ROOM_MAX];
    static unsigned char frames[N][700];
    uint64_t id = 1 + (uint64_t)rand_r(&seed) * 1000;
    add_header(&in, id);
    for (int i = 0; i < N; i++) {
        struct journal_record *r = &recs[i];
        r->id = id;
        id += 1 + (uint64_t)(rand_r(&seed) % 3 == 0 ? rand_r(&seed) % 100 : 0);
        r->ts_ms = (int64_t)rand_r(&seed) << 20 ^ -(int64_t)(rand_r(&seed) & 1);
        r->kind = rand_r(&seed) % 5 == 0 ? JOURNAL_MARK : JOURNAL_MESSAGE;
        if (r->kind == JOURNAL_MESSAGE) {
            r->room_len = (uint8_t)(rand_r(&seed) % (JOURNAL_ROOM_MAX + 1));
            r->frame_len = (uint32_t)(rand_r(&seed) % 3 == 0 ? rand_r(&seed) % 700 : rand_r(&seed) % 40);
            for (int k = 0; k < r->room_len; k++)
                rooms[i][k] = (char)rand_r(&seed);
            for (uint32_t k = 0; k < r->frame_len; k++)
                frames[i][k] = (unsigned char)rand_r(&seed);
            r->room = rooms[i];
            r->frame = frames[i];
        }
        size_t sz = journal_record_size(r);
        unsigned char *tmp = malloc(sz);
        ck_assert_ptr_nonnull(tmp);
        ck_assert_int_eq(journal_record_encode(tmp, sz, r), (ssize_t)sz);
        sb_put(&in, tmp, sz);
        free(tmp);
    }

    struct journal_decoder d;
    journal_decoder_init(&d, 700);
    size_t have = 0, pos = 0;
    int next = -1;
    while (next < N) {
        size_t more = 1 + (size_t)rand_r(&seed) % 900;
        have = have + more < in.len ? have + more : in.len;
        const unsigned char *g = guard_copy(in.p + pos, have - pos);
        size_t used = 0;
        for (;;) {
            struct journal_record r;
            ssize_t k = journal_decode(&d, g + used, have - pos - used, &r);
            ck_assert_int_ge(k, 0);
            if (k == 0)
                break;
            used += (size_t)k;
            if (next < 0) {
                ck_assert_int_eq(r.kind, JOURNAL_HEADER);
                ck_assert_uint_eq(r.id, recs[0].id);
            } else {
                const struct journal_record *w = &recs[next];
                ck_assert_uint_eq(r.id, w->id);
                ck_assert_int_eq(r.ts_ms, w->ts_ms);
                ck_assert_int_eq(r.kind, w->kind);
                ck_assert_uint_eq(r.room_len, w->kind == JOURNAL_MESSAGE ? w->room_len : 0);
                ck_assert_uint_eq(r.frame_len, w->kind == JOURNAL_MESSAGE ? w->frame_len : 0);
                if (r.room_len)
                    ck_assert_mem_eq(r.room, w->room, r.room_len);
                if (r.frame_len)
                    ck_assert_mem_eq(r.frame, w->frame, r.frame_len);
            }
            next++;
        }
        pos += used;
        if (have == in.len && used == 0)
            break;
    }
    ck_assert_int_eq(next, N);
    ck_assert_uint_eq(pos, in.len);
    ck_assert_uint_eq(d.records, N);
    ck_assert_uint_eq(d.last_id, recs[N - 1].id);
    sb_free(&in);
}
END_TEST

Suite *journal_format_suite(void)
{
    Suite *s = suite_create("journal_format");
    TCase *tc = tcase_create("golden");
    tcase_add_test(tc, golden_header);
    tcase_add_test(tc, golden_message);
    tcase_add_test(tc, golden_mark);
    suite_add_tcase(s, tc);

    tc = tcase_create("decoder");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, decode_vector, 0, (int)NDVEC);
    tcase_add_test(tc, version_found);
    tcase_add_test(tc, decoder_init_clamps);
    suite_add_tcase(s, tc);

    tc = tcase_create("damage");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, every_truncation);
    tcase_add_test(tc, every_flipped_byte);
    suite_add_tcase(s, tc);

    tc = tcase_create("encoder");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, encode_errors);
    tcase_add_test(tc, strerror_names);
    tcase_add_loop_test(tc, round_trip, 0, 20);
    suite_add_tcase(s, tc);
    return s;
}

/*
 * fuzz_journal: journal_decode() never crashes, never reads past what it
 * is given, and gives the same answer however the bytes arrive. Each
 * stream is fed whole, in data-chosen steps, cut once at a data-chosen
 * point and (when short) one byte at a time; every call gets an exact-size
 * heap copy of the unconsumed bytes, so ASan sees any read past len. The
 * outcome (a hash of every item, the error, bytes consumed) must match.
 *
 * Three streams per input, so the CRC does not hide the payload checks
 * from the fuzzer: the raw bytes; a valid header then the raw bytes; a
 * valid header then the input cut into payloads, each framed with a
 * correct length and CRC. Finally the input, read as a list of records,
 * is encoded and must decode back field for field.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "journal_format.h"

#define FNV_OFFSET 14695981039346656037ull
#define FNV_PRIME  1099511628211ull

static uint64_t mix(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * FNV_PRIME;
    return h;
}

static uint64_t mix_u64(uint64_t h, uint64_t v)
{
    return mix(h, &v, sizeof v);
}

struct feed {
    struct journal_decoder d;
    uint64_t h;
    size_t   start;         /* input bytes consumed */
    int      err;
};

static void feed_init(struct feed *f, uint32_t max_frame)
{
    memset(f, 0, sizeof *f);
    journal_decoder_init(&f->d, max_frame);
    f->h = FNV_OFFSET;
}

static void on_item(struct feed *f, const struct journal_record *r, const unsigned char *at,
                    size_t k)
{
    assert(k >= JOURNAL_RECORD_HEAD + JOURNAL_MARK_PAYLOAD || r->kind == JOURNAL_HEADER);
    f->h = mix_u64(f->h, r->kind);
    f->h = mix_u64(f->h, r->id);
    f->h = mix_u64(f->h, (uint64_t)r->ts_ms);
    if (r->kind == JOURNAL_HEADER) {
        assert(k == JOURNAL_HEADER_LEN && f->d.first_id == r->id && r->id > 0);
        return;
    }
    assert(r->kind == JOURNAL_MESSAGE || r->kind == JOURNAL_MARK);
    assert(r->id == f->d.last_id && r->id >= f->d.first_id);
    assert(journal_record_size(r) == k);
    if (r->kind == JOURNAL_MESSAGE) {
        assert(r->room_len <= JOURNAL_ROOM_MAX && r->frame_len <= f->d.max_frame);
        assert((const unsigned char *)r->room >= at && r->frame + r->frame_len == at + k);
        f->h = mix(f->h, r->room, r->room_len);
        f->h = mix(f->h, r->frame, r->frame_len);
    }
}

/* The stream now extends to END: decode what is unconsumed until stuck. */
static void feed_to(struct feed *f, const unsigned char *data, size_t end)
{
    if (f->err || end == f->start)
        return;
    size_t n = end - f->start, pos = 0;
    unsigned char *b = malloc(n);
    assert(b != NULL);
    memcpy(b, data + f->start, n);
    for (;;) {
        struct journal_record r;
        struct journal_decoder before = f->d;
        ssize_t k = journal_decode(&f->d, b + pos, n - pos, &r);
        if (k < 0) {
            f->err = (int)k;
            assert(k >= JOURNAL_ERR_ORDER);
            assert(f->d.offset == f->start + pos);
            assert(journal_decode(&f->d, b + pos, n - pos, &r) == k);
            break;
        }
        if (k == 0) {
            before.version = f->d.version;
            assert(memcmp(&before, &f->d, sizeof before) == 0);
            break;
        }
        assert((size_t)k <= n - pos);
        on_item(f, &r, b + pos, (size_t)k);
        pos += (size_t)k;
    }
    free(b);
    f->start += pos;
}

static void same(const struct feed *a, const struct feed *b)
{
    assert(a->err == b->err && a->h == b->h && a->start == b->start);
    assert(a->d.records == b->d.records && a->d.last_id == b->d.last_id);
}

static void run(const unsigned char *data, size_t size, uint32_t max_frame, unsigned step)
{
    struct feed whole, part;
    feed_init(&whole, max_frame);
    feed_to(&whole, data, size);

    feed_init(&part, max_frame);
    for (size_t i = 0, k = 0; k < size; i++) {
        k += 1 + (size_t)(data[i % size] + step) % 61;
        feed_to(&part, data, k < size ? k : size);
    }
    same(&whole, &part);

    if (size > 1) {
        feed_init(&part, max_frame);
        feed_to(&part, data, 1 + ((size_t)data[size / 2] * 131 + step) % (size - 1));
        feed_to(&part, data, size);
        same(&whole, &part);
    }

    if (size <= 512) {
        feed_init(&part, max_frame);
        for (size_t k = 1; k <= size; k++)
            feed_to(&part, data, k);
        same(&whole, &part);
    }
}

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* Input bytes 0..1 choose the frame limit and the first id; the rest is the body. */
static void streams(const uint8_t *data, size_t size)
{
    uint32_t max_frame = size > 0 ? (uint32_t)data[0] * 4 : 64;
    uint64_t first = size > 1 ? 1 + data[1] % 4 : 1;
    run(data, size, max_frame, 0);

    size_t cap = JOURNAL_HEADER_LEN + size + 8 * (size + 1);
    unsigned char *s = malloc(cap);
    assert(s != NULL);
    size_t n = (size_t)journal_header_encode(s, cap, first);
    memcpy(s + n, data, size);
    run(s, n + size, max_frame, 1);

    /* framed payloads: each takes 1 + data[pos] % 64 input bytes */
    n = JOURNAL_HEADER_LEN;
    for (size_t pos = 2; pos < size;) {
        size_t len = 1 + data[pos] % 64;
        pos++;
        if (len > size - pos)
            len = size - pos;
        put32(s + n, (uint32_t)len);
        memcpy(s + n + 8, data + pos, len);
        put32(s + n + 4, crc32c_update(crc32c(s + n, 4), data + pos, len));
        n += 8 + len;
        pos += len;
    }
    assert(n <= cap);
    run(s, n, max_frame, 2);
    free(s);
}

/* The input as records: each takes a kind/room byte, an id gap and a frame length. */
static void round_trip(const uint8_t *data, size_t size)
{
    enum { MAXR = 64 };
    struct journal_record recs[MAXR];
    size_t nrec = 0, pos = 0;
    uint64_t id = 1 + (size > 0 ? data[0] : 0);
    while (nrec < MAXR && pos + 3 <= size) {
        struct journal_record *r = &recs[nrec];
        memset(r, 0, sizeof *r);
        uint8_t a = data[pos], gap = data[pos + 1], fl = data[pos + 2];
        pos += 3;
        r->id = id;
        id += 1 + gap;
        r->ts_ms = (int64_t)((uint64_t)a << 56 | (uint64_t)gap << 8 | fl);
        r->kind = a & 1 ? JOURNAL_MARK : JOURNAL_MESSAGE;
        if (r->kind == JOURNAL_MESSAGE) {
            size_t rl = (size_t)(a >> 1) % (JOURNAL_ROOM_MAX + 1);
            size_t take = rl + fl;
            if (take > size - pos)
                break;
            r->room_len = (uint8_t)rl;
            r->room = (const char *)data + pos;
            r->frame_len = fl;
            r->frame = data + pos + rl;
            pos += take;
        }
        nrec++;
    }
    size_t total = JOURNAL_HEADER_LEN;
    for (size_t i = 0; i < nrec; i++)
        total += journal_record_size(&recs[i]);
    unsigned char *s = malloc(total);
    assert(s != NULL);
    size_t n = (size_t)journal_header_encode(s, total, nrec ? recs[0].id : 1);
    for (size_t i = 0; i < nrec; i++) {
        size_t want = journal_record_size(&recs[i]);
        assert(journal_record_encode(s + n, want - 1, &recs[i]) == -ENOSPC);
        ssize_t w = journal_record_encode(s + n, total - n, &recs[i]);
        assert(w > 0 && (size_t)w == want);
        n += want;
    }
    assert(n == total);

    struct journal_decoder d;
    struct journal_record r;
    journal_decoder_init(&d, 255);
    size_t at = 0;
    ssize_t k = journal_decode(&d, s, n, &r);
    assert(k == JOURNAL_HEADER_LEN && r.kind == JOURNAL_HEADER);
    at += (size_t)k;
    for (size_t i = 0; i < nrec; i++) {
        const struct journal_record *w = &recs[i];
        k = journal_decode(&d, s + at, n - at, &r);
        assert(k > 0 && r.kind == w->kind && r.id == w->id && r.ts_ms == w->ts_ms);
        assert(r.room_len == w->room_len && r.frame_len == w->frame_len);
        assert(r.room_len == 0 || memcmp(r.room, w->room, r.room_len) == 0);
        assert(r.frame_len == 0 || memcmp(r.frame, w->frame, r.frame_len) == 0);
        at += (size_t)k;
    }
    assert(at == n && journal_decode(&d, s + at, 0, &r) == 0);
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    streams(data, size);
    round_trip(data, size);
    return 0;
}

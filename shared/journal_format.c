/*
 * journal_format: the journal segment codec (see journal_format.h for the
 * byte layout).
 *
 * journal_decode() is a step function like resp_parse(): a call consumes
 * the whole header or one whole record, or nothing. Every error is decided
 * by bytes at a fixed position once they are present (a magic byte, the
 * version word, a record's length word, its CRC once the record is all
 * there), never by where the buffer ends, so the outcome and the bytes
 * consumed are the same for every split of the stream. The CRC is checked
 * before any payload field is trusted. Callers: journal_dir.c (writer,
 * recovery walk and reader) and the fuzz target.
 */
#include "journal_format.h"

#include <limits.h>
#include <string.h>

#include "crc32c.h"

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

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const unsigned char *p)
{
    return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

const char *journal_strerror(int err)
{
    switch (err) {
    case 0:                   return "ok";
    case JOURNAL_ERR_MAGIC:   return "not a journal file (bad magic)";
    case JOURNAL_ERR_VERSION: return "unsupported format version";
    case JOURNAL_ERR_HEADER:  return "corrupt file header";
    case JOURNAL_ERR_LENGTH:  return "record length out of bounds";
    case JOURNAL_ERR_CRC:     return "record checksum mismatch";
    case JOURNAL_ERR_FORMAT:  return "malformed record";
    case JOURNAL_ERR_ORDER:   return "record ids not increasing";
    }
    return "unknown journal error";
}

ssize_t journal_header_encode(void *buf, size_t cap, uint64_t first_id)
{
    unsigned char *p = buf;
    if (first_id == 0)
        return -EINVAL;
    if (cap < JOURNAL_HEADER_LEN)
        return -ENOSPC;
    memset(p, 0, JOURNAL_HEADER_LEN);
    memcpy(p, JOURNAL_MAGIC, JOURNAL_MAGIC_LEN);
    put32(p + 8, JOURNAL_VERSION);
    put64(p + 16, first_id);
    put32(p + 28, crc32c(p, 28));
    return JOURNAL_HEADER_LEN;
}

ssize_t journal_header_decode(const void *buf, size_t len, struct journal_header *h)
{
    const unsigned char *p = buf;
    memset(h, 0, sizeof *h);
    for (size_t i = 0; i < len && i < JOURNAL_MAGIC_LEN; i++)
        if (p[i] != (unsigned char)JOURNAL_MAGIC[i])
            return JOURNAL_ERR_MAGIC;
    if (len < 12)
        return 0;
    h->version = get32(p + 8);
    if (h->version != JOURNAL_VERSION)
        return JOURNAL_ERR_VERSION;
    if (len >= 16 && get32(p + 12) != 0)
        return JOURNAL_ERR_HEADER;
    if (len >= 24 && get64(p + 16) == 0)
        return JOURNAL_ERR_HEADER;
    if (len >= 28 && get32(p + 24) != 0)
        return JOURNAL_ERR_HEADER;
    if (len < JOURNAL_HEADER_LEN)
        return 0;
    if (get32(p + 28) != crc32c(p, 28))
        return JOURNAL_ERR_HEADER;
    h->first_id = get64(p + 16);
    return JOURNAL_HEADER_LEN;
}

static uint64_t record_size64(const struct journal_record *rec)
{
    if (rec->kind == JOURNAL_MARK)
        return JOURNAL_RECORD_HEAD + JOURNAL_MARK_PAYLOAD;
    if (rec->kind != JOURNAL_MESSAGE || rec->room_len > JOURNAL_ROOM_MAX ||
        rec->frame_len > JOURNAL_FRAME_LIMIT)
        return 0;
    return (uint64_t)JOURNAL_RECORD_HEAD + JOURNAL_MSG_PAYLOAD + rec->room_len + rec->frame_len;
}

size_t journal_record_size(const struct journal_record *rec)
{
    uint64_t n = record_size64(rec);
    return n <= SIZE_MAX ? (size_t)n : 0;
}

ssize_t journal_record_encode(void *buf, size_t cap, const struct journal_record *rec)
{
    unsigned char *p = buf;
    size_t n = journal_record_size(rec);
    if (n == 0 || n > SSIZE_MAX || rec->id == 0)
        return -EINVAL;
    if (cap < n)
        return -ENOSPC;
    put32(p, (uint32_t)(n - JOURNAL_RECORD_HEAD));
    put64(p + 8, rec->id);
    put64(p + 16, (uint64_t)rec->ts_ms);
    p[24] = rec->kind;
    if (rec->kind == JOURNAL_MESSAGE) {
        p[25] = rec->room_len;
        if (rec->room_len)
            memcpy(p + 26, rec->room, rec->room_len);
        put32(p + 26 + rec->room_len, rec->frame_len);
        if (rec->frame_len)
            memcpy(p + 30 + rec->room_len, rec->frame, rec->frame_len);
    }
    uint32_t crc = crc32c(p, 4);
    put32(p + 4, crc32c_update(crc, p + 8, n - 8));
    return (ssize_t)n;
}

void journal_decoder_init(struct journal_decoder *d, uint32_t max_frame)
{
    memset(d, 0, sizeof *d);
    d->max_frame = max_frame < JOURNAL_FRAME_LIMIT ? max_frame : JOURNAL_FRAME_LIMIT;
}

static ssize_t decode_header(struct journal_decoder *d, const unsigned char *p, size_t len,
                             struct journal_record *rec)
{
    struct journal_header h;
    ssize_t n = journal_header_decode(p, len, &h);
    d->version = h.version;
    if (n <= 0)
        return n;
    d->have_header = 1;
    d->first_id = h.first_id;
    d->last_id = h.first_id - 1;
    rec->kind = JOURNAL_HEADER;
    rec->id = h.first_id;
    return n;
}

/* Payload fields of a record whose CRC matched; p points at the payload. */
static int decode_payload(const struct journal_decoder *d, const unsigned char *p,
                          uint32_t len, struct journal_record *rec)
{
    rec->id = get64(p);
    rec->ts_ms = (int64_t)get64(p + 8);
    rec->kind = p[16];
    if (rec->kind == JOURNAL_MARK) {
        if (len != JOURNAL_MARK_PAYLOAD)
            return JOURNAL_ERR_FORMAT;
    } else if (rec->kind == JOURNAL_MESSAGE) {
        if (len < JOURNAL_MSG_PAYLOAD)
            return JOURNAL_ERR_FORMAT;
        rec->room_len = p[17];
        if (rec->room_len > JOURNAL_ROOM_MAX || len < JOURNAL_MSG_PAYLOAD + rec->room_len)
            return JOURNAL_ERR_FORMAT;
        rec->room = (const char *)p + 18;
        rec->frame_len = get32(p + 18 + rec->room_len);
        rec->frame = p + 22 + rec->room_len;
        if ((uint64_t)JOURNAL_MSG_PAYLOAD + rec->room_len + rec->frame_len != len)
            return JOURNAL_ERR_FORMAT;
        if (rec->frame_len > d->max_frame)
            return JOURNAL_ERR_LENGTH;
    } else {
        return JOURNAL_ERR_FORMAT;
    }
    if (rec->id <= d->last_id)
        return JOURNAL_ERR_ORDER;
    return 0;
}

static ssize_t decode_record(struct journal_decoder *d, const unsigned char *p, size_t len,
                             struct journal_record *rec)
{
    if (len < 4)
        return 0;
    uint32_t plen = get32(p);
    if (plen < JOURNAL_MARK_PAYLOAD ||
        (uint64_t)plen > (uint64_t)JOURNAL_MSG_PAYLOAD + JOURNAL_ROOM_MAX + d->max_frame)
        return JOURNAL_ERR_LENGTH;
    uint64_t total = (uint64_t)JOURNAL_RECORD_HEAD + plen;
    if ((uint64_t)len < total)
        return 0;
    uint32_t crc = crc32c_update(crc32c(p, 4), p + 8, plen);
    if (crc != get32(p + 4))
        return JOURNAL_ERR_CRC;
    int rc = decode_payload(d, p + 8, plen, rec);
    if (rc < 0)
        return rc;
    d->last_id = rec->id;
    d->records++;
    return (ssize_t)total;
}

ssize_t journal_decode(struct journal_decoder *d, const void *buf, size_t len,
                       struct journal_record *rec)
{
    memset(rec, 0, sizeof *rec);
    if (d->err)
        return d->err;
    ssize_t n = d->have_header ? decode_record(d, buf, len, rec)
                               : decode_header(d, buf, len, rec);
    if (n < 0) {
        d->err = (int)n;
        memset(rec, 0, sizeof *rec);
    } else if (n > 0) {
        d->offset += (uint64_t)n;
    } else {
        memset(rec, 0, sizeof *rec);
    }
    return n;
}

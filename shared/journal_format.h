/*
 * journal_format: the bytes of a history journal segment. Pure: no I/O, no
 * allocation, no logging. journal_dir.c writes and reads files with it.
 *
 * On-disk format, version 1 (an ABI: a change bumps JOURNAL_VERSION, and
 * a reader refuses a version it does not know). All integers little-endian.
 *
 *   File header, 32 bytes, once at offset 0:
 *     0  u8[8]  magic      89 57 53 4A 52 4E 4C 0A  ("\x89WSJRNL\n": the high
 *                          byte and the LF catch 7-bit and newline mangling)
 *     8  u32    version    1 (stays at offset 8 in every version)
 *    12  u32    reserved   0
 *    16  u64    first_id   the id of the segment's first record (>= 1); the
 *                          file is named after it
 *    24  u32    reserved   0
 *    28  u32    hcrc       CRC-32C of bytes 0..27
 *
 *   Records, back to back after the header until the end of the file:
 *     0  u32    len        payload bytes (17 .. 54 + max_frame)
 *     4  u32    crc        CRC-32C of the len field's 4 bytes, then the payload
 *     8  payload:
 *        u64 id            strictly greater than the previous record's id
 *                          (>= first_id for the first record of a segment)
 *        i64 ts_ms         unix time in ms
 *        u8  kind          1 message, 2 mark
 *      message only:
 *        u8  room_len      0..32
 *        u8  room[room_len]
 *        u32 frame_len     len == 22 + room_len + frame_len
 *        u8  frame[frame_len]   the server frame bytes, as the ring holds them
 *      a mark has no more (len == 17): its id is an id high-water mark (ids
 *      the ring gave to entries that are not journaled, e.g. presence).
 *
 * A torn tail (a record cut short) is "need more" to the decoder; a zeroed or
 * overwritten one fails its length bound or its CRC. */
#ifndef WSM_JOURNAL_FORMAT_H
#define WSM_JOURNAL_FORMAT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "result.h"

#define JOURNAL_MAGIC          "\x89WSJRNL\n"
#define JOURNAL_MAGIC_LEN      8u
#define JOURNAL_VERSION        1u
#define JOURNAL_HEADER_LEN     32u
#define JOURNAL_ROOM_MAX       32u
#define JOURNAL_RECORD_HEAD    8u                   /* len + crc */
#define JOURNAL_MARK_PAYLOAD   17u                  /* id, ts_ms, kind */
#define JOURNAL_MSG_PAYLOAD    22u                  /* ... room_len, frame_len */
#define JOURNAL_FRAME_LIMIT    (UINT32_MAX - JOURNAL_MSG_PAYLOAD - JOURNAL_ROOM_MAX)

/* The largest encoded record a decoder with this max_frame accepts. */
#define JOURNAL_RECORD_MAX(max_frame) \
    ((uint64_t)JOURNAL_RECORD_HEAD + JOURNAL_MSG_PAYLOAD + JOURNAL_ROOM_MAX + (max_frame))

enum journal_kind {
    JOURNAL_HEADER  = 0,    /* decoder event for the file header; never stored */
    JOURNAL_MESSAGE = 1,
    JOURNAL_MARK    = 2
};

/* Negative results of the decoder: never "need more", sticky once returned. */
enum journal_error {
    JOURNAL_ERR_MAGIC   = -1,   /* not a journal file */
    JOURNAL_ERR_VERSION = -2,   /* another format version (the decoder's .version) */
    JOURNAL_ERR_HEADER  = -3,   /* header CRC mismatch, reserved field set, first_id 0 */
    JOURNAL_ERR_LENGTH  = -4,   /* record len outside 17 .. 54 + max_frame */
    JOURNAL_ERR_CRC     = -5,   /* record CRC mismatch */
    JOURNAL_ERR_FORMAT  = -6,   /* CRC good, payload inconsistent: kind, room_len, frame_len */
    JOURNAL_ERR_ORDER   = -7    /* id not greater than the previous one (or < first_id) */
};

/* A short name for an enum journal_error ("bad crc"), for log lines. */
const char *journal_strerror(int err);

/*
 * One record. Decoded: room and frame point into the caller's buffer and
 * live as long as it does (zero copy). To encode: the caller's own.
 */
struct journal_record {
    uint64_t             id;
    int64_t              ts_ms;
    uint8_t              kind;          /* enum journal_kind */
    uint8_t              room_len;      /* message: 0..JOURNAL_ROOM_MAX */
    uint32_t             frame_len;     /* message only */
    const char          *room;          /* not NUL-terminated */
    const unsigned char *frame;
};

struct journal_header {
    uint32_t version;
    uint64_t first_id;
};

/* Write the 32-byte header into buf[0..cap). Returns 32, -ENOSPC, -EINVAL (id 0). */
ssize_t journal_header_encode(void *buf, size_t cap, uint64_t first_id);

/*
 * Decode a header from buf[0..len). Returns 32 with *h filled, 0 when the
 * bytes present are a valid beginning of a header (need more), or
 * JOURNAL_ERR_MAGIC / _VERSION (h->version is the one found) / _HEADER.
 * Each is decided by bytes at a fixed offset: the same for any len that has
 * them.
 */
ssize_t journal_header_decode(const void *buf, size_t len, struct journal_header *h);

/* Bytes journal_record_encode() writes for REC (0 when REC is invalid).
 * A mark's room and frame fields are ignored. */
size_t journal_record_size(const struct journal_record *rec);

/*
 * Encode REC into buf[0..cap). Returns the bytes written (> 0), -ENOSPC when
 * cap is short (nothing written), -EINVAL for a kind other than message or
 * mark, room_len > 32, frame_len > JOURNAL_FRAME_LIMIT, or id 0. The id
 * order is the caller's business (the decoder checks it). */
ssize_t journal_record_encode(void *buf, size_t cap, const struct journal_record *rec);

/* Incremental decoder of one segment's byte stream: the header, then records. */
struct journal_decoder {
    uint32_t max_frame;     /* frames longer than this fail as JOURNAL_ERR_LENGTH */
    uint32_t version;       /* the header's (the one found on JOURNAL_ERR_VERSION) */
    uint64_t first_id;      /* the header's */
    uint64_t last_id;       /* the last record's id; first_id - 1 before any */
    uint64_t offset;        /* stream bytes consumed so far: where the next one starts */
    uint64_t records;       /* records decoded */
    int      have_header;
    int      err;           /* sticky enum journal_error, 0 while fine */
};

void journal_decoder_init(struct journal_decoder *d, uint32_t max_frame);

/*
 * Decode the next item of buf[0..len), the bytes that follow what was
 * consumed so far. Returns
 *   > 0  bytes consumed: the header (rec->kind JOURNAL_HEADER, rec->id its
 *        first_id) or one record (room, frame point into buf),
 *   0    need more: nothing consumed; keep the bytes, append more and call
 *        again from the same start,
 *   < 0  enum journal_error, at d->offset; every later call returns it too.
 * Consumed counts and errors never depend on how the stream is split. A
 * record is consumed whole, so the caller's buffer must hold
 * JOURNAL_RECORD_MAX(max_frame) bytes.
 */
ssize_t journal_decode(struct journal_decoder *d, const void *buf, size_t len,
                       struct journal_record *rec);

#endif

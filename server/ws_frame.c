/*
 * ws_frame: RFC 6455 §5 frame codec. Pure: no I/O, no allocation, no logging.
 *
 * Decoding is a resumable step function: ws_parse() either commits a whole
 * header (§5.2), a slice of data payload, or a whole control frame (§5.5), or
 * returns 0 having touched neither the buffer nor the parser. Protocol errors
 * are detected as soon as the bytes that prove them are present (the first
 * two header bytes, then the extended length), so the result never depends
 * on how TCP split the stream. Callers: the worker's read path (server side)
 * and the test/bench clients (client side). Encoding writes minimal-length
 * headers into the caller's headroom.
 */
#include "ws_frame.h"

#include <limits.h>
#include <string.h>

#include "utf8.h"

#define FIN_BIT   0x80
#define RSV_BITS  0x70  /* RSV1..RSV3 */
#define MASK_BIT  0x80

static int is_control(unsigned opcode) { return (opcode & 0x8) != 0; }

void ws_parser_init(struct ws_parser *p, uint64_t max_message, int server_side)
{
    memset(p, 0, sizeof *p);
    p->max_message = max_message;
    p->server_side = server_side ? 1 : 0;
    p->utf8_state = UTF8_ACCEPT;
}

/* A decoded, validated header that has not been committed to the parser. */
struct header {
    uint64_t       len;     /* payload length */
    size_t         size;    /* header bytes, mask key included */
    unsigned       opcode;
    unsigned       fin;
    const uint8_t *key;     /* NULL when unmasked */
};

/* Checks that need only the first two bytes (§5.2, §5.4, §5.5, §5.1). */
static ssize_t check_first_bytes(const struct ws_parser *p, uint8_t b0, uint8_t b1)
{
    /* No extension is ever negotiated, so any RSV bit is an error (§5.2). */
    if (b0 & RSV_BITS)
        return -WS_CLOSE_PROTOCOL_ERROR;
    switch (b0 & 0x0F) {
    case WS_OP_CONT:
        if (p->msg_opcode == 0)         /* nothing to continue (§5.4) */
            return -WS_CLOSE_PROTOCOL_ERROR;
        break;
    case WS_OP_TEXT:
    case WS_OP_BINARY:
        if (p->msg_opcode != 0)         /* fragments may not interleave (§5.4) */
            return -WS_CLOSE_PROTOCOL_ERROR;
        break;
    case WS_OP_CLOSE:
    case WS_OP_PING:
    case WS_OP_PONG:
        if (!(b0 & FIN_BIT))            /* control frames are never fragmented (§5.5) */
            return -WS_CLOSE_PROTOCOL_ERROR;
        break;
    default:                            /* reserved opcodes 3-7, B-F (§5.2) */
        return -WS_CLOSE_PROTOCOL_ERROR;
    }
    /* Client-to-server frames MUST be masked, server-to-client MUST NOT
     * (§5.1); a mismatch fails the connection either way. */
    if (((b1 & MASK_BIT) != 0) != (p->server_side != 0))
        return -WS_CLOSE_PROTOCOL_ERROR;
    return 0;
}

/*
 * Decode the header at buf without changing anything. Returns its size when
 * complete and valid, 0 when more bytes are needed, or a negative close code.
 *
 * Non-minimal length encodings (e.g. 126 + 0x0005) are accepted: §5.2's
 * "minimal number of bytes MUST be used" binds the sender, the value is
 * unambiguous, and a control frame is judged by its real length. Rejecting
 * them would buy nothing but interop failures with sloppy clients.
 */
static ssize_t header_decode(const struct ws_parser *p, const uint8_t *buf,
                             size_t len, struct header *h)
{
    if (len < 2)
        return 0;
    ssize_t rc = check_first_bytes(p, buf[0], buf[1]);
    if (rc < 0)
        return rc;

    unsigned len7 = buf[1] & 0x7F;
    size_t ext = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
    if (len < 2 + ext)
        return 0;
    uint64_t plen = len7;
    if (ext != 0) {
        plen = 0;
        for (size_t i = 0; i < ext; i++)
            plen = (plen << 8) | buf[2 + i];
    }
    if (plen >> 63)                     /* §5.2: the MSB MUST be 0 */
        return -WS_CLOSE_PROTOCOL_ERROR;

    h->opcode = buf[0] & 0x0F;
    h->fin = (buf[0] & FIN_BIT) != 0;
    h->len = plen;
    if (is_control(h->opcode)) {
        if (plen > WS_CONTROL_MAX)      /* §5.5 */
            return -WS_CLOSE_PROTOCOL_ERROR;
    } else if (p->max_message != 0) {
        /* Fail at the header, before any of an oversize payload is read.
         * msg_len <= max_message holds here, so the subtraction is safe. */
        uint64_t before = h->opcode == WS_OP_CONT ? p->msg_len : 0;
        if (plen > p->max_message - before)
            return -WS_CLOSE_TOO_BIG;
    }

    size_t size = 2 + ext + (p->server_side ? 4 : 0);
    if (len < size)
        return 0;
    h->key = p->server_side ? buf + 2 + ext : NULL;
    h->size = size;
    return (ssize_t)size;
}

/*
 * Deliver up to len bytes of the current data frame's payload at buf.
 * Returns the bytes consumed (0 with WS_EV_NONE when the frame still waits
 * for payload) or a negative close code.
 */
static ssize_t deliver(struct ws_parser *p, uint8_t *buf, size_t len,
                       struct ws_event *ev)
{
    size_t n = p->frame_left < len ? (size_t)p->frame_left : len;

    if (n == 0 && p->frame_left != 0)
        return 0;
    if (p->frame_masked) {
        ws_mask(buf, n, p->mask, p->mask_off);
        p->mask_off = (uint8_t)((p->mask_off + n) & 3);
    }
    /* §8.1: fail as soon as the text can no longer be valid, not at the end. */
    if (p->msg_opcode == WS_OP_TEXT &&
        utf8_validate(&p->utf8_state, buf, n) != n)
        return -WS_CLOSE_INVALID_DATA;
    p->frame_left -= n;

    int opcode = p->msg_opcode;
    int end = 0;
    if (p->frame_left == 0) {
        p->in_frame = 0;
        if (p->frame_fin) {
            if (opcode == WS_OP_TEXT && !utf8_complete(p->utf8_state))
                return -WS_CLOSE_INVALID_DATA;  /* message ends mid code point */
            end = 1;
            p->msg_opcode = 0;
            p->msg_len = 0;
        }
    }
    /* An empty non-final slice carries nothing the caller must act on. */
    if (n == 0 && !end)
        return 0;
    ev->type = WS_EV_DATA;
    ev->opcode = opcode;
    ev->data = buf;
    ev->len = n;
    ev->msg_end = end;
    return (ssize_t)n;
}

ssize_t ws_parse(struct ws_parser *p, uint8_t *buf, size_t len, struct ws_event *ev)
{
    memset(ev, 0, sizeof *ev);
    /* Keep every sum below SSIZE_MAX; no real buffer comes close. */
    if (len > (size_t)SSIZE_MAX - WS_HEADER_MAX)
        len = (size_t)SSIZE_MAX - WS_HEADER_MAX;
    if (p->in_frame)
        return deliver(p, buf, len, ev);

    struct header h;
    ssize_t hs = header_decode(p, buf, len, &h);
    if (hs <= 0)
        return hs;

    if (is_control(h.opcode)) {
        /* Whole frame or nothing, so the caller never tracks a half ping. */
        if (len - h.size < h.len)
            return 0;
        uint8_t *data = buf + h.size;
        if (h.key != NULL)
            ws_mask(data, (size_t)h.len, h.key, 0);
        ev->type = WS_EV_CONTROL;
        ev->opcode = (int)h.opcode;
        ev->data = data;
        ev->len = (size_t)h.len;
        return (ssize_t)(h.size + h.len);
    }

    if (h.opcode != WS_OP_CONT) {
        p->msg_opcode = (uint8_t)h.opcode;
        p->msg_len = 0;
        p->utf8_state = UTF8_ACCEPT;
    }
    /* Saturate: with max_message = 0 nothing bounds the sum. */
    p->msg_len = p->msg_len > UINT64_MAX - h.len ? UINT64_MAX : p->msg_len + h.len;
    p->frame_left = h.len;
    p->frame_fin = (uint8_t)h.fin;
    p->frame_masked = h.key != NULL;
    if (h.key != NULL)
        memcpy(p->mask, h.key, 4);
    p->mask_off = 0;
    p->in_frame = 1;

    /* Hand over whatever payload came with the header in the same call. */
    ssize_t n = deliver(p, buf + h.size, len - h.size, ev);
    if (n < 0)
        return n;
    return (ssize_t)h.size + n;
}

/* §7.4.1 defined codes that may be sent, plus §7.4.2's 3000-4999 range. */
int ws_close_code_valid(unsigned code)
{
    if (code >= 1000 && code <= 1003)
        return 1;
    /* 1004 reserved; 1005, 1006 and 1015 are never put on the wire. */
    if (code >= 1007 && code <= 1014)
        return 1;
    return code >= 3000 && code <= 4999;
}

int ws_close_parse(const uint8_t *payload, size_t len, uint16_t *code,
                   const uint8_t **reason, size_t *reason_len)
{
    if (len == 0) {                     /* §5.5.1: the body is optional */
        *code = WS_CLOSE_NO_STATUS;
        *reason = payload;
        *reason_len = 0;
        return 0;
    }
    if (len == 1)                       /* a code is two bytes or absent */
        return -WS_CLOSE_PROTOCOL_ERROR;
    unsigned c = (unsigned)payload[0] << 8 | payload[1];
    if (!ws_close_code_valid(c))
        return -WS_CLOSE_PROTOCOL_ERROR;
    if (!utf8_valid(payload + 2, len - 2))  /* §5.5.1: reason is UTF-8 */
        return -WS_CLOSE_INVALID_DATA;
    *code = (uint16_t)c;
    *reason = payload + 2;
    *reason_len = len - 2;
    return 0;
}

size_t ws_frame_header_size(uint64_t len)
{
    return len <= 125 ? 2 : len <= 0xFFFF ? 4 : 10;
}

uint64_t ws_frame_length(const uint8_t *hdr, size_t avail)
{
    if (avail < 2)
        return 0;
    uint64_t len = hdr[1] & 0x7F;
    size_t ext = len == 126 ? 2 : len == 127 ? 8 : 0;
    if (avail < 2 + ext)
        return 0;
    if (ext > 0) {
        len = 0;
        for (size_t i = 0; i < ext; i++)
            len = len << 8 | hdr[2 + i];
    }
    return 2 + ext + len;
}

size_t ws_frame_header_encode(uint8_t *dst, int opcode, int fin, uint64_t len)
{
    size_t size = ws_frame_header_size(len);

    dst[0] = (uint8_t)((fin ? FIN_BIT : 0) | (opcode & 0x0F));
    if (size == 2) {
        dst[1] = (uint8_t)len;
    } else if (size == 4) {
        dst[1] = 126;
        dst[2] = (uint8_t)(len >> 8);
        dst[3] = (uint8_t)len;
    } else {
        dst[1] = 127;
        for (size_t i = 0; i < 8; i++)
            dst[2 + i] = (uint8_t)(len >> (56 - 8 * i));
    }
    return size;
}

size_t ws_frame_header_encode_masked(uint8_t *dst, int opcode, int fin,
                                     uint64_t len, const uint8_t key[4])
{
    size_t size = ws_frame_header_encode(dst, opcode, fin, len);
    dst[1] |= MASK_BIT;
    memcpy(dst + size, key, 4);
    return size + 4;
}

void ws_mask(uint8_t *data, size_t len, const uint8_t key[4], size_t offset)
{
    uint8_t pat[8];
    uint64_t k;
    size_t i;

    /* Eight key bytes rotated to OFFSET: a multiple of 4 per step keeps the
     * rotation, so one pattern serves the whole buffer. Building it in memory
     * order makes the XOR independent of host endianness. */
    for (i = 0; i < 8; i++)
        pat[i] = key[(offset + i) & 3];
    memcpy(&k, pat, sizeof k);
    for (i = 0; len - i >= 8; i += 8) {
        uint64_t w;
        memcpy(&w, data + i, sizeof w);     /* unaligned-safe load/store */
        w ^= k;
        memcpy(data + i, &w, sizeof w);
    }
    for (; i < len; i++)
        data[i] ^= pat[i & 7];
}

size_t ws_close_payload_encode(uint8_t *dst, uint16_t code, const char *reason)
{
    size_t room = WS_CONTROL_MAX - 2;
    size_t n = reason != NULL ? strnlen(reason, room + 1) : 0;

    dst[0] = (uint8_t)(code >> 8);
    dst[1] = (uint8_t)code;
    if (n > room) {
        /* Cut before the code point that straddles the limit, so the peer
         * does not fail us with 1007 for a reason we truncated. */
        n = room;
        while (n > 0 && ((uint8_t)reason[n] & 0xC0) == 0x80)
            n--;
    }
    if (n != 0)
        memcpy(dst + 2, reason, n);
    return 2 + n;
}

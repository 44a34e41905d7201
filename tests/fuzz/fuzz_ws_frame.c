/*
 * fuzz_ws_frame: libFuzzer target for the RFC 6455 frame parser.
 *
 * Input: byte 0 picks max_message (bits 0-1), the side (bit 2: 0 = server,
 * which requires masked frames) and the largest chunk size (bits 3-7);
 * byte 1 seeds the chunk sizes; the rest is the byte stream. The stream is
 * parsed whole, one byte at a time and in pseudo-random chunks, keeping
 * unconsumed bytes as a server does, and the three outcomes (messages,
 * controls, error code, leftover) must be identical. Also checked: "need
 * more" changes nothing, text messages are valid UTF-8, limits hold, and
 * every message survives an encode/decode round trip.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"
#include "ws_frame.h"

#define CHECK(c) \
    do { \
        if (!(c)) { \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
            abort(); \
        } \
    } while (0)

struct buf {
    uint8_t *p;
    size_t len, cap;
};

static void put(struct buf *b, const void *d, size_t n)
{
    if (b->p == NULL || b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n)
            cap *= 2;
        b->p = realloc(b->p, cap);
        CHECK(b->p != NULL);
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, d, n);
    b->len += n;
}

static void put_u64(struct buf *b, uint64_t v)
{
    uint8_t x[8];
    for (int i = 0; i < 8; i++)
        x[i] = (uint8_t)(v >> (8 * i));
    put(b, x, sizeof x);
}

struct run {
    struct ws_parser p;
    uint64_t max;
    struct buf log;     /* tag, opcode, length, bytes per completed record */
    struct buf msg;     /* open data message */
    int msg_op;
    int err;
    struct buf acc;     /* unconsumed input */
};

static void record(struct run *r, uint8_t tag, int opcode, const uint8_t *d, size_t n)
{
    uint8_t h[2] = { tag, (uint8_t)opcode };
    put(&r->log, h, 2);
    put_u64(&r->log, n);
    put(&r->log, d, n);
}

/* Parse msg back after encoding it as a masked client frame. */
static void round_trip(int opcode, const uint8_t *d, size_t n)
{
    static const uint8_t key[4] = { 0xa5, 0x01, 0x7e, 0xc3 };
    uint8_t *f = malloc(WS_HEADER_MAX + n + 1);
    CHECK(f != NULL);
    size_t h = ws_frame_header_encode_masked(f, opcode, 1, n, key);
    CHECK(h == ws_frame_header_size(n) + 4);
    if (n)
        memcpy(f + h, d, n);
    ws_mask(f + h, n, key, 0);

    struct ws_parser p;
    struct ws_event ev;
    ws_parser_init(&p, 0, 1);
    ssize_t k = ws_parse(&p, f, h + n, &ev);
    CHECK(k == (ssize_t)(h + n));
    CHECK(ev.opcode == opcode && ev.len == n);
    CHECK(ev.type == (opcode & 8 ? WS_EV_CONTROL : WS_EV_DATA));
    CHECK(n == 0 || memcmp(ev.data, d, n) == 0);
    free(f);
}

static void on_event(struct run *r, const struct ws_event *ev)
{
    if (ev->type == WS_EV_NONE)
        return;
    if (ev->type == WS_EV_CONTROL) {
        CHECK(ev->len <= WS_CONTROL_MAX);
        CHECK(ev->opcode == WS_OP_CLOSE || ev->opcode == WS_OP_PING ||
              ev->opcode == WS_OP_PONG);
        record(r, 'c', ev->opcode, ev->data, ev->len);
        if (ev->opcode == WS_OP_CLOSE) {
            uint16_t code = 0;
            const uint8_t *reason;
            size_t rlen;
            int rc = ws_close_parse(ev->data, ev->len, &code, &reason, &rlen);
            CHECK(rc == 0 || rc == -WS_CLOSE_PROTOCOL_ERROR || rc == -WS_CLOSE_INVALID_DATA);
            if (rc == 0) {
                CHECK(ev->len == 0 ? code == WS_CLOSE_NO_STATUS : ws_close_code_valid(code));
                CHECK(utf8_valid(reason, rlen));
            }
            record(r, 'k', rc, (const uint8_t *)&code, sizeof code);
        }
        return;
    }
    CHECK(ev->type == WS_EV_DATA);
    CHECK(ev->opcode == WS_OP_TEXT || ev->opcode == WS_OP_BINARY);
    if (r->msg_op == 0)
        r->msg_op = ev->opcode;
    CHECK(ev->opcode == r->msg_op);
    CHECK(ev->len > 0 || ev->msg_end);
    put(&r->msg, ev->data, ev->len);
    CHECK(r->max == 0 || r->msg.len <= r->max);
    if (ev->msg_end) {
        if (r->msg_op == WS_OP_TEXT)
            CHECK(utf8_valid(r->msg.p, r->msg.len));
        record(r, 'm', r->msg_op, r->msg.p, r->msg.len);
        r->msg.len = 0;
        r->msg_op = 0;
    }
}

static void feed(struct run *r, const uint8_t *d, size_t n)
{
    if (r->err)
        return;
    put(&r->acc, d, n);
    size_t pos = 0;
    for (;;) {
        struct ws_parser before;
        struct ws_event ev;
        size_t left = r->acc.len - pos;
        uint8_t *save = malloc(left + 1);
        CHECK(save != NULL);
        memcpy(save, r->acc.p + pos, left);
        memcpy(&before, &r->p, sizeof before);
        ssize_t k = ws_parse(&r->p, r->acc.p + pos, left, &ev);
        if (k == 0) {
            CHECK(memcmp(&before, &r->p, sizeof before) == 0);
            CHECK(memcmp(save, r->acc.p + pos, left) == 0);
        }
        free(save);
        if (k < 0) {
            CHECK(k == -WS_CLOSE_PROTOCOL_ERROR || k == -WS_CLOSE_INVALID_DATA ||
                  k == -WS_CLOSE_TOO_BIG);
            r->err = (int)-k;
            return;
        }
        if (k == 0)
            break;
        CHECK((size_t)k <= left);
        if (ev.type != WS_EV_NONE)
            CHECK(ev.data >= r->acc.p + pos && ev.data + ev.len <= r->acc.p + pos + k);
        on_event(r, &ev);
        pos += (size_t)k;
    }
    memmove(r->acc.p, r->acc.p + pos, r->acc.len - pos);
    r->acc.len -= pos;
}

static void run_init(struct run *r, uint64_t max, int server_side)
{
    memset(r, 0, sizeof *r);
    r->max = max;
    ws_parser_init(&r->p, max, server_side);
    put(&r->log, "", 0);
    put(&r->acc, "", 0);
}

/* Outcome bytes in r->log; frees the rest. */
static void finish(struct run *r)
{
    uint8_t tail[3] = { 'e', (uint8_t)(r->err >> 8), (uint8_t)r->err };
    put(&r->log, tail, sizeof tail);
    if (!r->err) {
        if (r->msg_op)
            record(r, 'o', r->msg_op, r->msg.p, r->msg.len);
        put_u64(&r->log, r->acc.len);
    }
    free(r->msg.p);
    free(r->acc.p);
}

static void same(const struct run *a, const struct run *b)
{
    CHECK(a->log.len == b->log.len);
    CHECK(memcmp(a->log.p, b->log.p, a->log.len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint64_t maxes[4] = { 0, 7, 125, 4096 };
    if (size < 2)
        return 0;
    uint64_t max = maxes[data[0] & 3];
    int server_side = !(data[0] & 4);
    size_t max_chunk = (size_t)(data[0] >> 3) + 1;
    uint32_t seed = (uint32_t)data[1] * 2654435761u | 1;
    const uint8_t *in = data + 2;
    size_t n = size - 2;
    struct run whole, bytes, chunks;

    run_init(&whole, max, server_side);
    feed(&whole, in, n);
    finish(&whole);

    run_init(&bytes, max, server_side);
    for (size_t i = 0; i < n; i++)
        feed(&bytes, in + i, 1);
    finish(&bytes);
    same(&whole, &bytes);

    run_init(&chunks, max, server_side);
    for (size_t i = 0; i < n;) {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        size_t c = 1 + seed % max_chunk;
        if (c > n - i)
            c = n - i;
        feed(&chunks, in + i, c);
        i += c;
    }
    finish(&chunks);
    same(&whole, &chunks);

    /* Every completed record decodes again after encoding. */
    for (size_t i = 0; i + 10 <= whole.log.len;) {
        uint8_t tag = whole.log.p[i];
        if (tag != 'm' && tag != 'c' && tag != 'k')
            break;
        uint64_t len = 0;
        for (int j = 7; j >= 0; j--)
            len = len << 8 | whole.log.p[i + 2 + j];
        if (tag != 'k')
            round_trip(whole.log.p[i + 1], whole.log.p + i + 10, (size_t)len);
        i += 10 + (size_t)len;
    }

    free(whole.log.p);
    free(bytes.log.p);
    free(chunks.log.p);
    return 0;
}

/*
 * check_ws_frame: RFC 6455 §5 codec — parser vectors, error rules, encoder,
 * masking and close payloads.
 *
 * Parser vectors are fed the way a server reads a socket: whole, one byte at
 * a time, and split at every point, unconsumed bytes kept and the next chunk
 * appended, each buffer placed against a guard page. Every feed must produce
 * the same outcome string (completed messages and controls, the error code,
 * leftover bytes). Unmasked vectors also run through the server-side parser
 * after mask_stream() masks each frame, so both directions share one table.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guard.h"
#include "utf8.h"
#include "ws_frame.h"

/*
 * ck_assert() reports every passing check to the runner (a write per call);
 * the feeding harness runs millions of checks, so it only calls into Check
 * when one fails.
 */
#define REQUIRE(c) \
    do { \
        if (!(c)) \
            ck_abort_msg("%s:%d: %s", __FILE__, __LINE__, #c); \
    } while (0)

/* ---- growable byte buffer (tests only) */

struct sbuf {
    uint8_t *p;
    size_t len, cap;
};

/* Always leaves b->p non-NULL, so empty buffers can go to memcmp/memmove. */
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

static void sb_fmt(struct sbuf *b, const char *fmt, size_t v)
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

/* Printable rendering of an outcome for failure messages. */
static const char *esc(const uint8_t *s, size_t n)
{
    static char out[400];
    size_t o = 0;
    for (size_t i = 0; i < n && o + 8 < sizeof out; i++) {
        if (s[i] >= 0x20 && s[i] < 0x7F && s[i] != '\\')
            out[o++] = (char)s[i];
        else
            o += (size_t)snprintf(out + o, sizeof out - o, "\\x%02x", s[i]);
    }
    if (o + 8 >= sizeof out)
        o += (size_t)snprintf(out + o, sizeof out - o, "...");
    out[o] = '\0';
    return out;
}

/* ---- the feeding harness */

struct run {
    struct ws_parser p;
    struct sbuf log;    /* completed records: letter, length, ':', bytes */
    struct sbuf msg;    /* payload of the data message still open */
    int msg_op;
    int err;
    struct sbuf acc;    /* unconsumed input, as a connection would keep it */
};

static char record_letter(int opcode, int open)
{
    switch (opcode) {
    case WS_OP_TEXT:   return open ? 't' : 'T';
    case WS_OP_BINARY: return open ? 'b' : 'B';
    case WS_OP_CLOSE:  return 'C';
    case WS_OP_PING:   return 'P';
    case WS_OP_PONG:   return 'O';
    }
    ck_abort_msg("unexpected opcode %d", opcode);
    return '?';
}

static void record(struct sbuf *log, int opcode, int open, const uint8_t *d, size_t n)
{
    char c = record_letter(opcode, open);
    sb_put(log, &c, 1);
    sb_fmt(log, "%zu:", n);
    sb_put(log, d, n);
}

static void on_event(struct run *r, const struct ws_event *ev,
                     const uint8_t *at, size_t consumed)
{
    if (ev->type == WS_EV_NONE)
        return;
    /* The slice lies inside what this call consumed. */
    REQUIRE(ev->data >= at && ev->data + ev->len <= at + consumed);
    if (ev->type == WS_EV_CONTROL) {
        REQUIRE(ev->len <= WS_CONTROL_MAX);
        REQUIRE(ev->msg_end == 0);
        record(&r->log, ev->opcode, 0, ev->data, ev->len);
        return;
    }
    REQUIRE(ev->type == WS_EV_DATA);
    REQUIRE(ev->opcode == WS_OP_TEXT || ev->opcode == WS_OP_BINARY);
    if (r->msg_op == 0)
        r->msg_op = ev->opcode;
    REQUIRE(ev->opcode == r->msg_op);
    /* Empty slices appear only to end a message. */
    REQUIRE(ev->len > 0 || ev->msg_end);
    sb_put(&r->msg, ev->data, ev->len);
    if (ev->msg_end) {
        if (r->msg_op == WS_OP_TEXT)
            REQUIRE(utf8_valid(r->msg.p, r->msg.len));
        record(&r->log, r->msg_op, 0, r->msg.p, r->msg.len);
        r->msg.len = 0;
        r->msg_op = 0;
    }
}

static void run_init(struct run *r, int server_side, uint64_t max)
{
    memset(r, 0, sizeof *r);
    ws_parser_init(&r->p, max, server_side);
}

/* Append a chunk and parse until the parser needs more or fails. */
static void feed(struct run *r, const uint8_t *d, size_t n)
{
    if (r->err)
        return;
    sb_put(&r->acc, d, n);
    uint8_t *g = guard_copy(r->acc.p, r->acc.len);
    size_t pos = 0;
    for (;;) {
        struct ws_parser before;
        struct ws_event ev;
        memcpy(&before, &r->p, sizeof before);
        ssize_t k = ws_parse(&r->p, g + pos, r->acc.len - pos, &ev);
        if (k < 0) {
            r->err = (int)-k;
            return;
        }
        if (k == 0) {
            /* "Need more" leaves parser and bytes exactly as they were. */
            REQUIRE(memcmp(&before, &r->p, sizeof before) == 0);
            REQUIRE(memcmp(g + pos, r->acc.p + pos, r->acc.len - pos) == 0);
            break;
        }
        REQUIRE((size_t)k <= r->acc.len - pos);
        on_event(r, &ev, g + pos, (size_t)k);
        pos += (size_t)k;
    }
    memmove(r->acc.p, r->acc.p + pos, r->acc.len - pos);
    r->acc.len -= pos;
}

/* The outcome string; caller frees. */
static struct sbuf finish(struct run *r)
{
    struct sbuf out = r->log;
    sb_put(&out, "", 0);
    if (r->err) {
        sb_fmt(&out, "!%zu", (size_t)r->err);
    } else {
        if (r->msg_op)
            record(&out, r->msg_op, 1, r->msg.p, r->msg.len);
        if (r->acc.len)
            sb_fmt(&out, "L%zu", r->acc.len);
    }
    sb_free(&r->msg);
    sb_free(&r->acc);
    return out;
}

static void check_outcome(struct sbuf *got, const char *want, size_t want_len,
                          const char *how, size_t split, int server_side)
{
    if (got->len != want_len || memcmp(got->p, want, want_len) != 0) {
        char g[400];
        snprintf(g, sizeof g, "%s", esc(got->p, got->len));
        ck_abort_msg("%s side, %s feed (split %zu): got \"%s\" want \"%s\"",
                     server_side ? "server" : "client", how, split, g,
                     esc((const uint8_t *)want, want_len));
    }
    sb_free(got);
}

/*
 * Large inputs get every split in the first and last 300 bytes and a stride
 * in between: all header and mask phases are covered without a quadratic
 * run over 64 KiB.
 */
static int split_wanted(size_t k, size_t len)
{
    if (len <= 1024)
        return 1;
    return k <= 300 || k >= len - 300 || k % 997 == 0;
}

/* Feed in[0..len) whole, byte by byte and at every split; all must match. */
static void run_feeds(const uint8_t *in, size_t len, int server_side, uint64_t max,
                      const char *want, size_t want_len)
{
    struct run r;
    struct sbuf out;

    run_init(&r, server_side, max);
    feed(&r, in, len);
    out = finish(&r);
    check_outcome(&out, want, want_len, "whole", 0, server_side);

    run_init(&r, server_side, max);
    for (size_t i = 0; i < len; i++)
        feed(&r, in + i, 1);
    out = finish(&r);
    check_outcome(&out, want, want_len, "bytewise", 0, server_side);

    for (size_t k = 1; k < len; k++) {
        if (!split_wanted(k, len))
            continue;
        run_init(&r, server_side, max);
        feed(&r, in, k);
        feed(&r, in + k, len - k);
        out = finish(&r);
        check_outcome(&out, want, want_len, "split", k, server_side);
    }
}

static const uint8_t rfc_key[4] = { 0x37, 0xfa, 0x21, 0x3d };

/*
 * Re-encode an unmasked client-bound stream as a masked server-bound one:
 * same frames, mask bit set, rfc_key inserted, payload XORed. Written
 * without the codec so the codec is not tested against itself. A trailing
 * partial frame is carried over as far as it goes.
 */
static void mask_stream(const uint8_t *in, size_t len, struct sbuf *out)
{
    size_t i = 0;
    while (i < len) {
        if (len - i < 2) {
            sb_put(out, in + i, len - i);
            return;
        }
        uint8_t h[2] = { in[i], (uint8_t)(in[i + 1] | 0x80) };
        unsigned code = in[i + 1] & 0x7F;
        size_t ext = code == 126 ? 2 : code == 127 ? 8 : 0;
        sb_put(out, h, 2);
        i += 2;
        if (len - i < ext) {
            sb_put(out, in + i, len - i);
            return;
        }
        uint64_t plen = code;
        if (ext) {
            plen = 0;
            for (size_t j = 0; j < ext; j++)
                plen = plen << 8 | in[i + j];
        }
        sb_put(out, in + i, ext);
        i += ext;
        sb_put(out, rfc_key, 4);
        for (uint64_t j = 0; j < plen && i < len; j++, i++) {
            uint8_t b = in[i] ^ rfc_key[j % 4];
            sb_put(out, &b, 1);
        }
    }
}

/* ---- table of parser vectors */

enum {
    BOTH = 0,           /* unmasked: client side as is, server side via mask_stream */
    CLIENT = 1,         /* client-side parser only, input as is */
    SERVER = 2          /* server-side parser only, input as is (already masked) */
};

struct fvec {
    const char *name;
    int side;
    uint64_t max;
    const char *in;
    size_t in_len;
    const char *out;
    size_t out_len;
};

#define FV(name, side, max, in, out) \
    { name, side, max, in, sizeof(in) - 1, out, sizeof(out) - 1 }

/* Outcome grammar: T/B/t/b (data, lower case = still open), P/O/C controls,
 * each "<len>:<bytes>"; then "!<code>" on error or "L<n>" leftover bytes. */
static const struct fvec fvecs[] = {
    /* RFC 6455 §5.7 */
    FV("rfc single unmasked text", BOTH, 0, "\x81\x05Hello", "T5:Hello"),
    FV("rfc fragmented text", BOTH, 0, "\x01\x03Hel\x80\x02lo", "T5:Hello"),
    FV("rfc unmasked ping", BOTH, 0, "\x89\x05Hello", "P5:Hello"),
    FV("rfc masked text", SERVER, 0,
       "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", "T5:Hello"),
    FV("rfc masked pong", SERVER, 0,
       "\x8a\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", "O5:Hello"),
    FV("all-zero mask key", SERVER, 0, "\x81\x82\x00\x00\x00\x00hi", "T2:hi"),

    FV("pong", BOTH, 0, "\x8a\x05Hello", "O5:Hello"),
    FV("close 1000", BOTH, 0, "\x88\x02\x03\xe8", "C2:\x03\xe8"),
    FV("close empty", BOTH, 0, "\x88\x00", "C0:"),
    FV("bad close body still delivered", BOTH, 0, "\x88\x01\x03", "C1:\x03"),
    FV("empty text", BOTH, 0, "\x81\x00", "T0:"),
    FV("empty binary", BOTH, 0, "\x82\x00", "B0:"),
    FV("empty fragments", BOTH, 0, "\x01\x00\x00\x00\x80\x00", "T0:"),
    FV("empty first fragment", BOTH, 0, "\x01\x00\x80\x05Hello", "T5:Hello"),
    FV("empty last fragment", BOTH, 0, "\x02\x02hi\x80\x00", "B2:hi"),
    FV("two messages", BOTH, 0, "\x81\x01" "a" "\x82\x02\x00\xff", "T1:aB2:\x00\xff"),
    FV("ping between fragments", BOTH, 0, "\x01\x03Hel\x89\x00\x80\x02lo", "P0:T5:Hello"),
    FV("controls between fragments", BOTH, 0,
       "\x02\x01" "A" "\x89\x01x\x00\x01" "B" "\x8a\x02yz\x80\x01" "C",
       "P1:xO2:yzB3:ABC"),
    FV("close between fragments", BOTH, 0, "\x01\x01" "a" "\x88\x02\x03\xe8",
       "C2:\x03\xe8t1:a"),
    FV("utf8 split over fragments", BOTH, 0, "\x01\x01\xce\x80\x01\xba", "T2:\xce\xba"),
    FV("4-byte utf8 over 3 fragments", BOTH, 0,
       "\x01\x01\xf0\x00\x02\x9f\x98\x89\x00\x80\x01\x80",
       "P0:T4:\xf0\x9f\x98\x80"),
    FV("binary need not be utf8", BOTH, 0, "\x82\x03\xff\xfe\xed", "B3:\xff\xfe\xed"),
    FV("non-minimal 16-bit length", BOTH, 0, "\x81\x7e\x00\x05Hello", "T5:Hello"),
    FV("non-minimal 64-bit length", BOTH, 0,
       "\x81\x7f\x00\x00\x00\x00\x00\x00\x00\x05Hello", "T5:Hello"),
    FV("non-minimal control length", BOTH, 0, "\x89\x7e\x00\x02hi", "P2:hi"),
    FV("largest legal 64-bit length", BOTH, 0,
       "\x82\x7f\x7f\xff\xff\xff\xff\xff\xff\xff" "ab", "b2:ab"),
    FV("data still arriving", BOTH, 0, "\x81\x05Hel", "t3:Hel"),
    FV("header only", BOTH, 0, "\x81\x05", ""),
    FV("empty input", BOTH, 0, "", ""),
    FV("partial header", CLIENT, 0, "\x81\x7e\x01", "L3"),
    FV("partial header", SERVER, 0, "\x81\xfe\x01\x00\x37\xfa", "L6"),
    FV("partial 64-bit length", CLIENT, 0, "\x82\x7f\x00\x00\x00", "L5"),
    FV("partial control", CLIENT, 0, "\x89\x05Hel", "L5"),
    FV("partial control", SERVER, 0, "\x89\x85\x37\xfa\x21\x3d\x7f", "L7"),
    FV("message then partial ping", CLIENT, 0, "\x81\x01" "a" "\x89\x02x", "T1:aL3"),
    FV("partial ping inside message", CLIENT, 0, "\x01\x01" "a" "\x89\x02x", "t1:aL3"),

    /* §5.2 RSV bits: no extension is negotiated */
    FV("rsv1", BOTH, 0, "\xc1\x01" "a", "!1002"),
    FV("rsv2", BOTH, 0, "\xa1\x01" "a", "!1002"),
    FV("rsv3", BOTH, 0, "\x91\x01" "a", "!1002"),
    FV("rsv on control", BOTH, 0, "\xc9\x00", "!1002"),
    FV("rsv on continuation", BOTH, 0, "\x01\x01" "a" "\xc0\x01" "b", "!1002"),
    FV("rsv after a message", BOTH, 0, "\x81\x05Hello\xc1\x00", "T5:Hello!1002"),

    /* §5.5 control frames */
    FV("ping 126 bytes", BOTH, 0, "\x89\x7e\x00\x7e", "!1002"),
    FV("close 126 bytes", BOTH, 0, "\x88\x7e\x00\x7e", "!1002"),
    FV("pong 64-bit length", BOTH, 0,
       "\x8a\x7f\x00\x00\x00\x00\x00\x01\x00\x00", "!1002"),
    FV("ping without fin", BOTH, 0, "\x09\x00", "!1002"),
    FV("pong without fin", BOTH, 0, "\x0a\x00", "!1002"),
    FV("close without fin", BOTH, 0, "\x08\x02\x03\xe8", "!1002"),
    FV("ping without fin inside message", BOTH, 0,
       "\x01\x01" "a" "\x09\x00\x80\x01" "b", "!1002"),

    /* §5.4 fragmentation */
    FV("continuation with nothing open", BOTH, 0, "\x80\x01" "a", "!1002"),
    FV("non-fin continuation with nothing open", BOTH, 0, "\x00\x00", "!1002"),
    FV("continuation after final frame", BOTH, 0,
       "\x81\x01" "a" "\x80\x01" "b", "T1:a!1002"),
    FV("text while text open", BOTH, 0, "\x01\x01" "a" "\x81\x01" "b", "!1002"),
    FV("binary while text open", BOTH, 0, "\x01\x01" "a" "\x82\x01" "b", "!1002"),
    FV("text while binary open", BOTH, 0, "\x02\x01" "a" "\x01\x01" "b", "!1002"),

    /* §5.2 64-bit length MSB */
    FV("64-bit length msb", BOTH, 0,
       "\x82\x7f\x80\x00\x00\x00\x00\x00\x00\x00", "!1002"),
    FV("64-bit length all ones", BOTH, 0,
       "\x82\x7f\xff\xff\xff\xff\xff\xff\xff\xff", "!1002"),

    /* §5.1 masking */
    FV("client gets masked frame", CLIENT, 0,
       "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", "!1002"),
    FV("client gets masked ping", CLIENT, 0, "\x89\x80\x00\x00\x00\x00", "!1002"),
    FV("server gets unmasked frame", SERVER, 0, "\x81\x05Hello", "!1002"),
    FV("server gets unmasked ping", SERVER, 0, "\x89\x00", "!1002"),
    FV("server gets unmasked continuation", SERVER, 0,
       "\x01\x81\x00\x00\x00\x00" "a" "\x80\x01" "b", "!1002"),

    /* §8.1 text must be UTF-8 */
    FV("invalid utf8", BOTH, 0, "\x81\x02\xc3\x28", "!1007"),
    FV("surrogate", BOTH, 0, "\x81\x03\xed\xa0\x80", "!1007"),
    FV("rfc fail-fast vector", BOTH, 0,
       "\x81\x0c\xce\xba\xe1\xbd\xb9\xce\xbc\xce\xb5\xed\xa0\x80", "!1007"),
    FV("truncated utf8 at message end", BOTH, 0, "\x81\x02\xe2\x82", "!1007"),
    FV("truncated utf8 at last fragment", BOTH, 0,
       "\x01\x01\xe2\x80\x01\x82", "!1007"),
    FV("bad utf8 in first fragment", BOTH, 0, "\x01\x01\xff", "!1007"),
    FV("bad text after a ping", BOTH, 0, "\x89\x00\x81\x01\xff", "P0:!1007"),

    /* max_message: checked at the header, before any payload */
    FV("max exactly", BOTH, 5, "\x81\x05Hello", "T5:Hello"),
    FV("max plus one", BOTH, 5, "\x81\x06Hello!", "!1009"),
    FV("max plus one, header only", BOTH, 5, "\x81\x06", "!1009"),
    FV("max over fragments exactly", BOTH, 5, "\x01\x03Hel\x80\x02lo", "T5:Hello"),
    FV("max over fragments plus one", BOTH, 5, "\x01\x03Hel\x80\x03lo!", "!1009"),
    FV("max ignores controls", BOTH, 5,
       "\x01\x03Hel\x89\x05Hello\x80\x02lo", "P5:HelloT5:Hello"),
    FV("max is per message", BOTH, 5, "\x81\x05Hello\x82\x05World", "T5:HelloB5:World"),
    FV("max vs 16-bit length", BOTH, 300, "\x82\x7e\x01\x2d", "!1009"),
    FV("max vs 64-bit length", BOTH, 5,
       "\x82\x7f\x00\x00\x00\x01\x00\x00\x00\x00", "!1009"),
    FV("max vs huge 64-bit length", BOTH, 5,
       "\x82\x7f\x7f\xff\xff\xff\xff\xff\xff\xff", "!1009"),
};

#define NFVEC (sizeof fvecs / sizeof fvecs[0])

START_TEST(parser_vector)
{
    const struct fvec *v = &fvecs[_i];
    const uint8_t *in = (const uint8_t *)v->in;

    if (v->side == BOTH || v->side == CLIENT)
        run_feeds(in, v->in_len, 0, v->max, v->out, v->out_len);
    if (v->side == SERVER)
        run_feeds(in, v->in_len, 1, v->max, v->out, v->out_len);
    if (v->side == BOTH) {
        struct sbuf m = { 0 };
        mask_stream(in, v->in_len, &m);
        run_feeds(m.p, m.len, 1, v->max, v->out, v->out_len);
        sb_free(&m);
    }
}
END_TEST

/* Reserved opcodes 3-7 and B-F fail at the first two bytes, FIN or not. */
START_TEST(reserved_opcode)
{
    static const int ops[] = { 3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF };
    int op = ops[_i];
    for (int fin = 0; fin <= 1; fin++) {
        uint8_t in[3] = { (uint8_t)((fin ? 0x80 : 0) | op), 0x01, 'x' };
        run_feeds(in, 2, 0, 0, "!1002", 5);
        run_feeds(in, 3, 0, 0, "!1002", 5);
        in[1] |= 0x80;
        run_feeds(in, 2, 1, 0, "!1002", 5);
    }
}
END_TEST

/* ---- big frames: RFC §5.7 256-byte and 64 KiB binary */

static void big_binary(size_t n, const uint8_t *hdr, size_t hdr_len)
{
    struct sbuf in = { 0 }, want = { 0 }, m = { 0 };
    uint8_t *payload = malloc(n);
    ck_assert_ptr_nonnull(payload);
    for (size_t i = 0; i < n; i++)
        payload[i] = (uint8_t)(i * 7 + (i >> 8));
    sb_put(&in, hdr, hdr_len);
    sb_put(&in, payload, n);
    sb_put(&want, "B", 1);
    sb_fmt(&want, "%zu:", n);
    sb_put(&want, payload, n);

    run_feeds(in.p, in.len, 0, 0, (const char *)want.p, want.len);
    mask_stream(in.p, in.len, &m);
    run_feeds(m.p, m.len, 1, 0, (const char *)want.p, want.len);
    /* One byte short of the limit fails at the header. */
    run_feeds(m.p, m.len, 1, n - 1, "!1009", 5);
    run_feeds(m.p, m.len, 1, n, (const char *)want.p, want.len);
    sb_free(&in);
    sb_free(&want);
    sb_free(&m);
    free(payload);
}

START_TEST(rfc_256_binary)
{
    big_binary(256, (const uint8_t *)"\x82\x7e\x01\x00", 4);
}
END_TEST

START_TEST(rfc_64k_binary)
{
    big_binary(65536, (const uint8_t *)"\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10);
}
END_TEST

/* Largest and smallest control payloads. */
START_TEST(control_125_and_126)
{
    uint8_t in[2 + 126];
    struct sbuf want = { 0 };
    in[0] = 0x89;
    in[1] = 125;
    for (int i = 0; i < 126; i++)
        in[2 + i] = (uint8_t)('a' + i % 26);
    sb_put(&want, "P125:", 5);
    sb_put(&want, in + 2, 125);
    run_feeds(in, 2 + 125, 0, 0, (const char *)want.p, want.len);
    ck_assert_uint_eq(ws_frame_header_size(126), 4);
    uint8_t in2[4 + 126] = { 0x89, 126, 0, 126 };
    memcpy(in2 + 4, in + 2, 126);
    run_feeds(in2, sizeof in2, 0, 0, "!1002", 5);
    sb_free(&want);
}
END_TEST

/* ---- UTF-8 across fragment boundaries, at every split of the text */

struct tvec {
    const char *s;
    size_t len;
    int valid;
};

#define TV(s, ok) { s, sizeof(s) - 1, ok }

static const struct tvec tvecs[] = {
    TV("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", 1),
    TV("a\xf0\x9f\x98\x80" "b\xf4\x8f\xbf\xbf", 1),
    TV("\xe0\xa0\x80\xef\xbf\xbf\xc2\x80", 1),
    TV("\xce\xba\xe1\xbd\xb9\xce\xbc\xce\xb5\xed\xa0\x80", 0),
    TV("ok\xe0\x9f\xbf", 0),
    TV("ok\xf4\x90\x80\x80", 0),
    TV("ok\xc2", 0),                  /* ends mid code point */
    TV("ok\x80", 0),
};

#define NTVEC (sizeof tvecs / sizeof tvecs[0])

/* Two fragments split at every byte, then one fragment per byte. */
START_TEST(utf8_across_fragments)
{
    const struct tvec *t = &tvecs[_i];
    struct sbuf want = { 0 };
    if (t->valid) {
        sb_fmt(&want, "T%zu:", t->len);
        sb_put(&want, t->s, t->len);
    } else {
        sb_put(&want, "!1007", 5);
    }
    for (size_t k = 0; k <= t->len; k++) {
        struct sbuf in = { 0 }, m = { 0 };
        uint8_t h[2] = { WS_OP_TEXT, (uint8_t)k };
        sb_put(&in, h, 2);
        sb_put(&in, t->s, k);
        h[0] = 0x80 | WS_OP_CONT;
        h[1] = (uint8_t)(t->len - k);
        sb_put(&in, h, 2);
        sb_put(&in, t->s + k, t->len - k);
        run_feeds(in.p, in.len, 0, 0, (const char *)want.p, want.len);
        mask_stream(in.p, in.len, &m);
        run_feeds(m.p, m.len, 1, 0, (const char *)want.p, want.len);
        sb_free(&in);
        sb_free(&m);
    }
    struct sbuf in = { 0 };
    for (size_t i = 0; i < t->len; i++) {
        uint8_t h[3] = { (uint8_t)(i == 0 ? WS_OP_TEXT : WS_OP_CONT), 1, (uint8_t)t->s[i] };
        if (i == t->len - 1)
            h[0] |= 0x80;
        sb_put(&in, h, 3);
    }
    run_feeds(in.p, in.len, 0, 0, (const char *)want.p, want.len);
    sb_free(&in);
    sb_free(&want);
}
END_TEST

/*
 * Fail-fast (§8.1): a server reading the RFC vector one chunk at a time
 * gets -1007 from the call that delivers the A0 byte, while the frame (and
 * message) still has bytes to come.
 */
START_TEST(fail_fast_position)
{
    static const uint8_t text[] = "\xce\xba\xe1\xbd\xb9\xce\xbc\xce\xb5\xed\xa0\x80" "abc";
    const size_t n = sizeof text - 1, bad = 10;
    size_t upto = (size_t)_i;   /* payload bytes available in the second call */
    uint8_t in[2 + sizeof text];
    struct ws_parser p;
    struct ws_event ev;

    in[0] = WS_OP_TEXT;         /* not even FIN: no end-of-message check yet */
    in[1] = (uint8_t)n;
    memcpy(in + 2, text, n);
    ws_parser_init(&p, 0, 0);
    uint8_t *g = guard_copy(in, 2);
    ck_assert_int_eq(ws_parse(&p, g, 2, &ev), 2);
    ck_assert_int_eq(ev.type, WS_EV_NONE);
    g = guard_copy(in + 2, upto);
    ssize_t k = ws_parse(&p, g, upto, &ev);
    if (upto <= bad) {
        ck_assert_int_eq(k, (ssize_t)upto);
        if (upto > 0) {
            ck_assert_int_eq(ev.type, WS_EV_DATA);
            ck_assert_int_eq(ev.msg_end, 0);
        }
    } else {
        ck_assert_int_eq(k, -WS_CLOSE_INVALID_DATA);
    }
}
END_TEST

/* The same in a later fragment: the first one was fine and delivered. */
START_TEST(fail_fast_second_fragment)
{
    struct ws_parser p;
    struct ws_event ev;
    ws_parser_init(&p, 0, 1);
    uint8_t f1[] = { 0x01, 0x82, 1, 2, 3, 4, 'o' ^ 1, 'k' ^ 2 };
    uint8_t f2[] = { 0x00, 0x84, 0, 0, 0, 0, 'x', 0xed, 0xa0 };
    uint8_t *g = guard_copy(f1, sizeof f1);
    ck_assert_int_eq(ws_parse(&p, g, sizeof f1, &ev), (ssize_t)sizeof f1);
    ck_assert_int_eq(ev.type, WS_EV_DATA);
    ck_assert_mem_eq(ev.data, "ok", 2);
    g = guard_copy(f2, sizeof f2);
    /* Two of four payload bytes still to come, FIN not even set. */
    ck_assert_int_eq(ws_parse(&p, g, sizeof f2, &ev), -WS_CLOSE_INVALID_DATA);
}
END_TEST

/* ---- direct API behaviour */

START_TEST(zero_length_events)
{
    struct ws_parser p;
    struct ws_event ev;
    uint8_t *g;
    ws_parser_init(&p, 0, 0);

    g = guard_copy("\x01\x00", 2);          /* non-FIN, empty: nothing to act on */
    ck_assert_int_eq(ws_parse(&p, g, 2, &ev), 2);
    ck_assert_int_eq(ev.type, WS_EV_NONE);
    g = guard_copy("\x80\x00", 2);          /* FIN, empty: ends the message */
    ck_assert_int_eq(ws_parse(&p, g, 2, &ev), 2);
    ck_assert_int_eq(ev.type, WS_EV_DATA);
    ck_assert_int_eq(ev.opcode, WS_OP_TEXT);
    ck_assert_uint_eq(ev.len, 0);
    ck_assert_int_eq(ev.msg_end, 1);
    g = guard_copy("\x82\x00", 2);
    ck_assert_int_eq(ws_parse(&p, g, 2, &ev), 2);
    ck_assert_int_eq(ev.type, WS_EV_DATA);
    ck_assert_int_eq(ev.opcode, WS_OP_BINARY);
    ck_assert_int_eq(ev.msg_end, 1);
}
END_TEST

START_TEST(need_more_consumes_nothing)
{
    struct ws_parser p, before;
    struct ws_event ev;
    ws_parser_init(&p, 0, 1);
    memcpy(&before, &p, sizeof p);
    ck_assert_int_eq(ws_parse(&p, guard_copy("", 0), 0, &ev), 0);
    ck_assert_int_eq(ws_parse(&p, guard_copy("\x81", 1), 1, &ev), 0);
    ck_assert_int_eq(ws_parse(&p, guard_copy("\x81\x85\x37\xfa\x21", 5), 5, &ev), 0);
    ck_assert(memcmp(&before, &p, sizeof p) == 0);
    /* A masked ping short of its last byte is neither consumed nor unmasked. */
    static const uint8_t ping[] = "\x89\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51";
    uint8_t *g = guard_copy(ping, sizeof ping - 1);
    ck_assert_int_eq(ws_parse(&p, g, sizeof ping - 1, &ev), 0);
    ck_assert_mem_eq(g, ping, sizeof ping - 1);
    ck_assert(memcmp(&before, &p, sizeof p) == 0);
}
END_TEST

/* Payload is unmasked in place and the event points at it. */
START_TEST(unmask_in_place)
{
    static const uint8_t rfc[] = "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58";
    struct ws_parser p;
    struct ws_event ev;
    ws_parser_init(&p, 0, 1);
    uint8_t *g = guard_copy(rfc, 11);
    ck_assert_int_eq(ws_parse(&p, g, 11, &ev), 11);
    ck_assert_int_eq(ev.type, WS_EV_DATA);
    ck_assert_ptr_eq(ev.data, g + 6);
    ck_assert_uint_eq(ev.len, 5);
    ck_assert_int_eq(ev.msg_end, 1);
    ck_assert_mem_eq(g + 6, "Hello", 5);

    /* Header first, then payload in pieces: key offset carries over. */
    ws_parser_init(&p, 0, 1);
    g = guard_copy(rfc, 6);
    ck_assert_int_eq(ws_parse(&p, g, 6, &ev), 6);
    ck_assert_int_eq(ev.type, WS_EV_NONE);
    g = guard_copy(rfc + 6, 3);
    ck_assert_int_eq(ws_parse(&p, g, 3, &ev), 3);
    ck_assert_mem_eq(ev.data, "Hel", 3);
    ck_assert_int_eq(ev.msg_end, 0);
    g = guard_copy(rfc + 9, 2);
    ck_assert_int_eq(ws_parse(&p, g, 2, &ev), 2);
    ck_assert_mem_eq(ev.data, "lo", 2);
    ck_assert_int_eq(ev.msg_end, 1);
}
END_TEST

/* A data chunk stops at its frame's end; the next frame is a new call. */
START_TEST(stops_at_frame_end)
{
    struct ws_parser p;
    struct ws_event ev;
    ws_parser_init(&p, 0, 0);
    uint8_t *g = guard_copy("\x01\x02" "ab" "\x80\x01" "c", 7);
    ck_assert_int_eq(ws_parse(&p, g, 7, &ev), 4);
    ck_assert_int_eq(ev.msg_end, 0);
    ck_assert_mem_eq(ev.data, "ab", 2);
    ck_assert_int_eq(ws_parse(&p, g + 4, 3, &ev), 3);
    ck_assert_int_eq(ev.msg_end, 1);
    ck_assert_mem_eq(ev.data, "c", 1);
}
END_TEST

/* ---- encoder */

struct evec {
    uint64_t len;
    size_t size;
    const char *hdr;        /* expected bytes for a FIN binary frame */
};

static const struct evec evecs[] = {
    { 0, 2, "\x82\x00" },
    { 1, 2, "\x82\x01" },
    { 125, 2, "\x82\x7d" },
    { 126, 4, "\x82\x7e\x00\x7e" },
    { 127, 4, "\x82\x7e\x00\x7f" },
    { 65535, 4, "\x82\x7e\xff\xff" },
    { 65536, 10, "\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00" },
    { 70000, 10, "\x82\x7f\x00\x00\x00\x00\x00\x01\x11\x70" },
};

#define NEVEC (sizeof evecs / sizeof evecs[0])

START_TEST(encode_header)
{
    const struct evec *e = &evecs[_i];
    uint8_t buf[WS_HEADER_MAX + 1];
    memset(buf, 0xAA, sizeof buf);
    ck_assert_uint_eq(ws_frame_header_size(e->len), e->size);
    ck_assert_uint_eq(ws_frame_header_encode(buf, WS_OP_BINARY, 1, e->len), e->size);
    ck_assert_mem_eq(buf, e->hdr, e->size);
    ck_assert_uint_eq(buf[e->size], 0xAA);          /* nothing past the header */

    memset(buf, 0xAA, sizeof buf);
    ck_assert_uint_eq(ws_frame_header_encode_masked(buf, WS_OP_BINARY, 1, e->len, rfc_key),
                      e->size + 4);
    ck_assert_uint_eq(buf[0], 0x82);
    ck_assert_uint_eq(buf[1], (uint8_t)e->hdr[1] | 0x80);
    ck_assert_mem_eq(buf + 2, e->hdr + 2, e->size - 2);
    ck_assert_mem_eq(buf + e->size, rfc_key, 4);
    ck_assert_uint_eq(buf[e->size + 4], 0xAA);
}
END_TEST

/* The stream's length decode: the whole frame once the header is there, 0 before. */
START_TEST(frame_length_of_header)
{
    const struct evec *e = &evecs[_i];
    uint8_t buf[WS_HEADER_MAX];
    memcpy(buf, e->hdr, e->size);
    for (size_t avail = 0; avail < e->size; avail++)
        ck_assert_uint_eq(ws_frame_length(buf, avail), 0);
    ck_assert_uint_eq(ws_frame_length(buf, e->size), e->size + e->len);
    ck_assert_uint_eq(ws_frame_length(buf, sizeof buf), e->size + e->len);
}
END_TEST

/* Decode what we encode: unmasked through the client parser, masked through the server's. */
START_TEST(encode_round_trip)
{
    const struct evec *e = &evecs[_i];
    size_t n = (size_t)e->len;
    uint8_t *frame = malloc(WS_HEADER_MAX + n + 1);
    struct sbuf want = { 0 };
    ck_assert_ptr_nonnull(frame);
    for (int op = WS_OP_TEXT; op <= WS_OP_BINARY; op++) {
        size_t h = ws_frame_header_encode(frame, op, 1, n);
        for (size_t i = 0; i < n; i++)
            frame[h + i] = (uint8_t)('a' + i % 26);
        want.len = 0;
        sb_put(&want, op == WS_OP_TEXT ? "T" : "B", 1);
        sb_fmt(&want, "%zu:", n);
        sb_put(&want, frame + h, n);
        run_feeds(frame, h + n, 0, 0, (const char *)want.p, want.len);

        h = ws_frame_header_encode_masked(frame, op, 1, n, rfc_key);
        for (size_t i = 0; i < n; i++)
            frame[h + i] = (uint8_t)('a' + i % 26);
        ws_mask(frame + h, n, rfc_key, 0);
        run_feeds(frame, h + n, 1, 0, (const char *)want.p, want.len);
    }
    sb_free(&want);
    free(frame);
}
END_TEST

START_TEST(encode_fin_and_opcodes)
{
    uint8_t buf[WS_SERVER_HEADER_MAX];
    ck_assert_uint_eq(ws_frame_header_encode(buf, WS_OP_TEXT, 0, 3), 2);
    ck_assert_mem_eq(buf, "\x01\x03", 2);
    ck_assert_uint_eq(ws_frame_header_encode(buf, WS_OP_CONT, 1, 3), 2);
    ck_assert_mem_eq(buf, "\x80\x03", 2);
    ck_assert_uint_eq(ws_frame_header_encode(buf, WS_OP_CLOSE, 1, 2), 2);
    ck_assert_mem_eq(buf, "\x88\x02", 2);
    ck_assert_uint_eq(ws_frame_header_encode(buf, WS_OP_PONG, 1, 125), 2);
    ck_assert_mem_eq(buf, "\x8a\x7d", 2);

    /* A fragmented message built by the encoder parses as one. */
    uint8_t s[32];
    size_t n = ws_frame_header_encode(s, WS_OP_TEXT, 0, 3);
    memcpy(s + n, "Hel", 3);
    n += 3;
    n += ws_frame_header_encode(s + n, WS_OP_PING, 1, 0);
    n += ws_frame_header_encode(s + n, WS_OP_CONT, 1, 2);
    memcpy(s + n, "lo", 2);
    n += 2;
    run_feeds(s, n, 0, 0, "P0:T5:Hello", 11);
}
END_TEST

/* ---- ws_mask */

START_TEST(mask_matches_bytewise)
{
    size_t off = (size_t)_i;
    uint8_t buf[80], ref[80];
    for (size_t align = 0; align < 8; align++) {
        for (size_t len = 0; len + align <= 72; len++) {
            for (size_t i = 0; i < sizeof buf; i++)
                buf[i] = ref[i] = (uint8_t)(i * 31 + 5);
            for (size_t i = 0; i < len; i++)
                ref[align + i] ^= rfc_key[(off + i) % 4];
            ws_mask(buf + align, len, rfc_key, off);
            ck_assert_msg(memcmp(buf, ref, sizeof buf) == 0,
                          "offset %zu align %zu len %zu", off, align, len);
        }
    }
}
END_TEST

START_TEST(mask_split_and_involution)
{
    uint8_t once[100], pieces[100], orig[100];
    for (size_t i = 0; i < sizeof orig; i++)
        orig[i] = (uint8_t)(i ^ 0x5c);
    memcpy(once, orig, sizeof once);
    ws_mask(once, sizeof once, rfc_key, 0);
    ck_assert(memcmp(once, orig, sizeof once) != 0);
    for (size_t k = 0; k <= sizeof orig; k++) {
        memcpy(pieces, orig, sizeof pieces);
        ws_mask(pieces, k, rfc_key, 0);
        ws_mask(pieces + k, sizeof pieces - k, rfc_key, k % 4);
        ck_assert_msg(memcmp(pieces, once, sizeof once) == 0, "split %zu", k);
    }
    ws_mask(once, sizeof once, rfc_key, 0);
    ck_assert_mem_eq(once, orig, sizeof orig);
    /* RFC §5.7: "Hello" under 37 fa 21 3d. */
    uint8_t hello[5] = { 'H', 'e', 'l', 'l', 'o' };
    ws_mask(hello, 5, rfc_key, 0);
    ck_assert_mem_eq(hello, "\x7f\x9f\x4d\x51\x58", 5);
}
END_TEST

/* ---- close codes and payloads */

static const struct {
    unsigned lo, hi;
    int valid;
} close_rules[] = {
    { 0, 999, 0 },          /* §7.4.2: not used */
    { 1000, 1003, 1 },
    { 1004, 1006, 0 },      /* reserved; 1005/1006 never sent */
    { 1007, 1014, 1 },
    { 1015, 2999, 0 },      /* 1015 never sent; rest reserved for the spec */
    { 3000, 4999, 1 },      /* registered / private use */
    { 5000, 65535, 0 },
};

static int close_rule(unsigned code)
{
    for (size_t i = 0; i < sizeof close_rules / sizeof close_rules[0]; i++)
        if (code >= close_rules[i].lo && code <= close_rules[i].hi)
            return close_rules[i].valid;
    ck_abort_msg("no rule for %u", code);
    return -1;
}

/* Codes 100*_i .. 100*_i+99, so 0..5099 in 51 iterations. */
START_TEST(close_code_table)
{
    for (unsigned code = 100u * (unsigned)_i; code < 100u * ((unsigned)_i + 1); code++) {
        int want = close_rule(code);
        uint8_t pl[4] = { (uint8_t)(code >> 8), (uint8_t)code, 'o', 'k' };
        uint16_t got_code = 0;
        const uint8_t *reason = NULL;
        size_t rlen = 99;
        if (ws_close_code_valid(code) != want)
            ck_abort_msg("ws_close_code_valid(%u) != %d", code, want);
        int rc = ws_close_parse(pl, sizeof pl, &got_code, &reason, &rlen);
        if (rc != (want ? 0 : -WS_CLOSE_PROTOCOL_ERROR))
            ck_abort_msg("ws_close_parse(code %u) = %d", code, rc);
        if (want && (got_code != code || reason != pl + 2 || rlen != 2))
            ck_abort_msg("ws_close_parse(code %u) outputs wrong", code);
    }
}
END_TEST

START_TEST(close_code_extremes)
{
    ck_assert(!ws_close_code_valid(65535));
    ck_assert(!ws_close_code_valid(65536 + 1000));
    ck_assert(!ws_close_code_valid(~0u));
}
END_TEST

START_TEST(close_parse_cases)
{
    uint16_t code = 0;
    const uint8_t *reason = NULL;
    size_t rlen = 99;
    static const uint8_t body[] = "\x03\xe8" "bye \xe2\x82\xac";

    ck_assert_int_eq(ws_close_parse(body, 0, &code, &reason, &rlen), 0);
    ck_assert_uint_eq(code, WS_CLOSE_NO_STATUS);
    ck_assert_uint_eq(rlen, 0);

    for (unsigned b = 0; b < 256; b++) {
        uint8_t one = (uint8_t)b;
        ck_assert_int_eq(ws_close_parse(&one, 1, &code, &reason, &rlen),
                         -WS_CLOSE_PROTOCOL_ERROR);
    }

    ck_assert_int_eq(ws_close_parse(body, sizeof body - 1, &code, &reason, &rlen), 0);
    ck_assert_uint_eq(code, 1000);
    ck_assert_ptr_eq(reason, body + 2);
    ck_assert_uint_eq(rlen, sizeof body - 3);

    ck_assert_int_eq(ws_close_parse(body, 2, &code, &reason, &rlen), 0);
    ck_assert_uint_eq(rlen, 0);

    /* Cut inside the euro sign: incomplete reason. */
    ck_assert_int_eq(ws_close_parse(body, sizeof body - 2, &code, &reason, &rlen),
                     -WS_CLOSE_INVALID_DATA);
    ck_assert_int_eq(ws_close_parse((const uint8_t *)"\x03\xe8\xff", 3, &code, &reason, &rlen),
                     -WS_CLOSE_INVALID_DATA);
    ck_assert_int_eq(ws_close_parse((const uint8_t *)"\x03\xe8" "a\xed\xa0\x80", 6,
                                    &code, &reason, &rlen),
                     -WS_CLOSE_INVALID_DATA);
    /* A bad code is reported before a bad reason. */
    ck_assert_int_eq(ws_close_parse((const uint8_t *)"\x03\xed\xff", 3, &code, &reason, &rlen),
                     -WS_CLOSE_PROTOCOL_ERROR);
}
END_TEST

START_TEST(close_encode_simple)
{
    uint8_t buf[WS_CONTROL_MAX];
    ck_assert_uint_eq(ws_close_payload_encode(buf, 1000, "bye"), 5);
    ck_assert_mem_eq(buf, "\x03\xe8" "bye", 5);
    ck_assert_uint_eq(ws_close_payload_encode(buf, 4999, NULL), 2);
    ck_assert_mem_eq(buf, "\x13\x87", 2);
    ck_assert_uint_eq(ws_close_payload_encode(buf, WS_CLOSE_SERVICE_RESTART, ""), 2);
    ck_assert_mem_eq(buf, "\x03\xf4", 2);

    char reason[200];
    memset(reason, 'r', sizeof reason);
    reason[123] = '\0';
    ck_assert_uint_eq(ws_close_payload_encode(buf, 1001, reason), 125);
    ck_assert_mem_eq(buf + 2, reason, 123);
    reason[123] = 'r';
    reason[199] = '\0';
    ck_assert_uint_eq(ws_close_payload_encode(buf, 1001, reason), 125);
    ck_assert_mem_eq(buf + 2, reason, 123);
}
END_TEST

/*
 * Truncation on a code point boundary: _i ASCII bytes of lead-in (118..123),
 * then a run of one multi-byte character, so the 123-byte cut lands at every
 * position inside a 2-, 3- and 4-byte sequence.
 */
START_TEST(close_encode_truncates_on_boundary)
{
    static const char *chars[] = { "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80" };
    size_t lead = 118 + (size_t)_i;
    for (size_t c = 0; c < 3; c++) {
        char reason[256];
        size_t cl = strlen(chars[c]), n = lead;
        memset(reason, 'x', lead);
        while (n + cl < sizeof reason) {
            memcpy(reason + n, chars[c], cl);
            n += cl;
        }
        reason[n] = '\0';
        uint8_t buf[WS_CONTROL_MAX + 1];
        buf[WS_CONTROL_MAX] = 0xAA;
        size_t len = ws_close_payload_encode(buf, 1000, reason);
        ck_assert_uint_eq(buf[WS_CONTROL_MAX], 0xAA);
        /* Longest whole-character prefix that fits in 123 bytes. */
        size_t want = lead > 123 ? 123 : lead + (123 - lead) / cl * cl;
        ck_assert_msg(len == 2 + want, "lead %zu char %zu: len %zu want %zu",
                      lead, cl, len, 2 + want);
        ck_assert_mem_eq(buf + 2, reason, want);
        uint16_t code;
        const uint8_t *r;
        size_t rl;
        ck_assert_int_eq(ws_close_parse(buf, len, &code, &r, &rl), 0);
        ck_assert_uint_eq(code, 1000);
    }
}
END_TEST

Suite *ws_frame_suite(void)
{
    Suite *s = suite_create("ws_frame");
    TCase *tc;

    tc = tcase_create("parser_vectors");
    tcase_add_loop_test(tc, parser_vector, 0, (int)NFVEC);
    tcase_add_loop_test(tc, reserved_opcode, 0, 10);
    tcase_add_test(tc, control_125_and_126);
    suite_add_tcase(s, tc);

    tc = tcase_create("big_frames");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, rfc_256_binary);
    tcase_add_test(tc, rfc_64k_binary);
    suite_add_tcase(s, tc);

    tc = tcase_create("utf8_fragments");
    tcase_add_loop_test(tc, utf8_across_fragments, 0, (int)NTVEC);
    tcase_add_loop_test(tc, fail_fast_position, 0, 16);
    tcase_add_test(tc, fail_fast_second_fragment);
    suite_add_tcase(s, tc);

    tc = tcase_create("parser_api");
    tcase_add_test(tc, zero_length_events);
    tcase_add_test(tc, need_more_consumes_nothing);
    tcase_add_test(tc, unmask_in_place);
    tcase_add_test(tc, stops_at_frame_end);
    suite_add_tcase(s, tc);

    tc = tcase_create("encoder");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, encode_header, 0, (int)NEVEC);
    tcase_add_loop_test(tc, frame_length_of_header, 0, (int)NEVEC);
    tcase_add_loop_test(tc, encode_round_trip, 0, (int)NEVEC);
    tcase_add_test(tc, encode_fin_and_opcodes);
    suite_add_tcase(s, tc);

    tc = tcase_create("mask");
    tcase_add_loop_test(tc, mask_matches_bytewise, 0, 4);
    tcase_add_test(tc, mask_split_and_involution);
    suite_add_tcase(s, tc);

    tc = tcase_create("close");
    tcase_add_loop_test(tc, close_code_table, 0, 51);
    tcase_add_test(tc, close_code_extremes);
    tcase_add_test(tc, close_parse_cases);
    tcase_add_test(tc, close_encode_simple);
    tcase_add_loop_test(tc, close_encode_truncates_on_boundary, 0, 6);
    suite_add_tcase(s, tc);

    return s;
}

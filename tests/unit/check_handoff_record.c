/*
 * check_handoff_record: the reload hand-over record (server/handoff_record.c)
 * as an adopter sees it: round trips of the decoder states a connection can
 * be in, every truncation, magic/version/type, every field's bound and
 * every impossible combination of fields (patched into an encoded record
 * byte by byte, at the documented offsets), the adopter's limits at and
 * past their edge, the body check and the ACK/NACK answers. Records are
 * decoded from a guard page, so a read past the datagram faults.
 */
#include <check.h>
#include <stdint.h>
#include <string.h>

#include "guard.h"
#include "handoff_record.h"
#include "utf8.h"

static const struct handoff_limits lim = {
    .max_message = 1 << 20, .max_in = 4096, .max_out = 1 << 16, .max_msg_age_s = 90,
    .nendpoints = 2, .nslots = 128,
};

static const uint8_t reasm[] = "ab\xc3";    /* a text message cut inside "é" */
#define REASM_LEN 3

/* A text message in its second frame: 3 bytes delivered, 10 to come, more queued. */
static void busy(struct handoff_conn *h)
{
    memset(h, 0, sizeof *h);
    h->id = (struct handoff_id){ .pid = 1234, .seq = 7, .conn = 42, .slot = 5, .endpoint = 1 };
    for (int i = 0; i < 16; i++)
        h->peer[i] = (uint8_t)(0xa0 + i);
    h->via = 2;
    ws_parser_init(&h->parser, 0, 1);
    h->parser.msg_opcode = WS_OP_TEXT;
    h->parser.in_frame = 1;
    h->parser.frame_fin = 1;
    h->parser.frame_masked = 1;
    h->parser.frame_left = 10;
    h->parser.msg_len = REASM_LEN + 10;
    memcpy(h->parser.mask, "\x01\x02\x03\x04", 4);
    h->parser.mask_off = 3;
    h->parser.utf8_state = UTF8_ACCEPT;
    utf8_validate(&h->parser.utf8_state, reasm, REASM_LEN);
    h->msg_timed = 1;
    h->msg_age_s = 5;
    h->in_len = 7;
    h->reasm_len = REASM_LEN;
    h->out_len = 20;
    h->ep_len = 3;
    memcpy(h->ep, "xyz", 3);
}

/* Between messages, nothing in flight: the plain idle connection. */
static void idle(struct handoff_conn *h)
{
    memset(h, 0, sizeof *h);
    h->id = (struct handoff_id){ .pid = 99, .seq = 1, .conn = 0, .slot = 0, .endpoint = 0 };
    ws_parser_init(&h->parser, 0, 1);
}

static uint8_t rec[HANDOFF_CONN_MAX + 8];

static size_t encode(const struct handoff_conn *h)
{
    size_t n = handoff_conn_encode(h, rec, sizeof rec);
    ck_assert_uint_eq(n, HANDOFF_CONN_FIXED + h->ep_len);
    return n;
}

static int decode(size_t len, struct handoff_conn *out)
{
    const uint8_t *g = guard_copy(rec, len);
    return handoff_conn_decode(g, len, &lim, out);
}

static void put(size_t off, int width, uint64_t v)
{
    for (int i = 0; i < width; i++)
        rec[off + (size_t)i] = (uint8_t)(v >> (8 * i));
}

static void assert_same(const struct handoff_conn *a, const struct handoff_conn *b)
{
    ck_assert_uint_eq(a->id.pid, b->id.pid);
    ck_assert_uint_eq(a->id.seq, b->id.seq);
    ck_assert_uint_eq(a->id.conn, b->id.conn);
    ck_assert_uint_eq(a->id.slot, b->id.slot);
    ck_assert_uint_eq(a->id.endpoint, b->id.endpoint);
    ck_assert_mem_eq(a->peer, b->peer, 16);
    ck_assert_uint_eq(a->via, b->via);
    const struct ws_parser *p = &a->parser, *q = &b->parser;
    ck_assert_uint_eq(p->frame_left, q->frame_left);
    ck_assert_uint_eq(p->msg_len, q->msg_len);
    ck_assert_uint_eq(p->utf8_state, q->utf8_state);
    ck_assert_uint_eq(p->msg_opcode, q->msg_opcode);
    ck_assert_uint_eq(p->in_frame, q->in_frame);
    ck_assert_uint_eq(p->in_frame ? p->frame_fin : 0, q->frame_fin);
    if (p->in_frame) {
        ck_assert_mem_eq(p->mask, q->mask, 4);
        ck_assert_uint_eq(p->mask_off, q->mask_off);
        ck_assert_uint_eq(q->frame_masked, 1);
    }
    ck_assert_uint_eq(q->server_side, 1);
    ck_assert_uint_eq(q->max_message, lim.max_message);
    ck_assert_uint_eq(a->msg_timed, b->msg_timed);
    ck_assert_uint_eq(a->msg_age_s, b->msg_age_s);
    ck_assert_uint_eq(a->in_len, b->in_len);
    ck_assert_uint_eq(a->reasm_len, b->reasm_len);
    ck_assert_uint_eq(a->out_len, b->out_len);
    ck_assert_uint_eq(a->ep_len, b->ep_len);
    ck_assert_mem_eq(a->ep, b->ep, a->ep_len);
}

/* ---- round trips ---------------------------------------------------------- */

START_TEST(round_trip_busy)
{
    struct handoff_conn h, got;
    busy(&h);
    ck_assert_int_eq(decode(encode(&h), &got), 0);
    assert_same(&h, &got);
}
END_TEST

START_TEST(round_trip_idle)
{
    struct handoff_conn h, got;
    idle(&h);
    /* Leftovers of the last frame (FIN, key) mean nothing between frames. */
    h.parser.frame_fin = 1;
    memcpy(h.parser.mask, "\x09\x09\x09\x09", 4);
    h.parser.mask_off = 2;
    ck_assert_int_eq(decode(encode(&h), &got), 0);
    ck_assert_uint_eq(got.parser.frame_fin, 0);
    ck_assert_uint_eq(got.parser.mask_off, 0);
    h.parser.mask_off = 0;
    assert_same(&h, &got);
}
END_TEST

/* A message open between two of its frames, and one whose header only has come. */
START_TEST(round_trip_between_fragments)
{
    struct handoff_conn h, got;
    busy(&h);
    h.parser.in_frame = 0;
    h.parser.frame_left = 0;
    h.parser.msg_len = REASM_LEN;
    ck_assert_int_eq(decode(encode(&h), &got), 0);
    assert_same(&h, &got);

    busy(&h);
    h.parser.msg_opcode = WS_OP_BINARY;
    h.parser.utf8_state = UTF8_ACCEPT;
    h.reasm_len = 0;
    h.msg_timed = 0;
    h.msg_age_s = 0;
    h.parser.msg_len = h.parser.frame_left = 1000;
    ck_assert_int_eq(decode(encode(&h), &got), 0);
    assert_same(&h, &got);
}
END_TEST

START_TEST(encode_refuses)
{
    struct handoff_conn h;
    busy(&h);
    uint8_t small[HANDOFF_CONN_FIXED + 2];
    ck_assert_uint_eq(handoff_conn_encode(&h, small, sizeof small), 0);
    h.ep_len = HANDOFF_EP_MAX + 1;
    ck_assert_uint_eq(handoff_conn_encode(&h, rec, sizeof rec), 0);
}
END_TEST

/* ---- truncation, identity of the record ------------------------------------ */

START_TEST(every_truncation)
{
    struct handoff_conn h, got;
    busy(&h);
    size_t n = encode(&h);
    for (size_t len = 0; len < n; len++)
        ck_assert_msg(decode(len, &got) == -HANDOFF_E_SHORT, "length %zu of %zu", len, n);
    rec[n] = 0;
    ck_assert_int_eq(decode(n + 1, &got), -HANDOFF_E_FIELD);   /* trailing byte */
}
END_TEST

START_TEST(magic_version_type)
{
    struct handoff_conn h, got;
    busy(&h);
    size_t n = encode(&h);
    static const struct { size_t off; int width; uint64_t v; int want; } bad[] = {
        { 0, 4, 0x34687377u, -HANDOFF_E_MAGIC }, { 3, 1, 0, -HANDOFF_E_MAGIC },
        { 4, 2, 0, -HANDOFF_E_VERSION }, { 4, 2, HANDOFF_VERSION + 1, -HANDOFF_E_VERSION },
        { 4, 2, 0xffff, -HANDOFF_E_VERSION },
        { 6, 2, 0, -HANDOFF_E_TYPE }, { 6, 2, 4, -HANDOFF_E_TYPE },
        { 6, 2, HANDOFF_ACK, -HANDOFF_E_TYPE }, { 6, 2, HANDOFF_NACK, -HANDOFF_E_TYPE },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        encode(&h);
        put(bad[i].off, bad[i].width, bad[i].v);
        ck_assert_msg(decode(n, &got) == bad[i].want, "case %zu", i);
    }
}
END_TEST

/* ---- fields and their combinations --------------------------------------- */

/* Offsets (handoff_record.c's layout) and flag bits. */
enum { O_SLOT = 20, O_EP = 22, O_VIA = 40, O_FLAGS = 41, O_OPCODE = 42, O_MASK_OFF = 43,
       O_MASK = 44, O_UTF8 = 48, O_AGE = 52, O_LEFT = 56, O_MSG = 64, O_IN = 72, O_REASM = 80,
       O_OUT = 88, O_EP_LEN = 96 };
enum { IN_FRAME = 1, FIN = 2, TIMED = 4 };

struct patch { size_t off; int width; uint64_t v; };
struct bad_case {
    const char *what;
    int idle_base;              /* 0: busy(), 1: idle() */
    struct patch p[3];
    int want;
};

#define P(o, w, v) { o, w, v }
static const struct bad_case bad_fields[] = {
    { "slot past the table", 0, { P(O_SLOT, 2, 128) }, -HANDOFF_E_FIELD },
    { "endpoint past the table", 0, { P(O_EP, 2, 2) }, -HANDOFF_E_FIELD },
    { "via past forwarded", 0, { P(O_VIA, 1, 3) }, -HANDOFF_E_FIELD },
    { "unknown flag", 0, { P(O_FLAGS, 1, IN_FRAME | FIN | TIMED | 0x10) }, -HANDOFF_E_FIELD },
    { "opcode continuation", 0, { P(O_OPCODE, 1, WS_OP_CONT + 3) }, -HANDOFF_E_FIELD },
    { "opcode close", 0, { P(O_OPCODE, 1, WS_OP_CLOSE) }, -HANDOFF_E_FIELD },
    { "mask offset 4", 0, { P(O_MASK_OFF, 1, 4) }, -HANDOFF_E_FIELD },
    { "endpoint bytes past the cap", 0, { P(O_EP_LEN, 4, HANDOFF_EP_MAX + 1) }, -HANDOFF_E_FIELD },
    { "endpoint bytes longer than sent", 0, { P(O_EP_LEN, 4, 4) }, -HANDOFF_E_SHORT },
    { "endpoint bytes shorter than sent", 0, { P(O_EP_LEN, 4, 2) }, -HANDOFF_E_FIELD },
    { "an age without a clock", 1, { P(O_AGE, 4, 3) }, -HANDOFF_E_FIELD },
    /* the frame under way */
    { "in a frame with nothing left", 0, { P(O_LEFT, 8, 0), P(O_MSG, 8, REASM_LEN) },
      -HANDOFF_E_STATE },
    { "bytes left outside a frame", 0, { P(O_FLAGS, 1, FIN | TIMED) }, -HANDOFF_E_STATE },
    { "FIN outside a frame", 1, { P(O_FLAGS, 1, FIN) }, -HANDOFF_E_STATE },
    { "a key outside a frame", 1, { P(O_MASK, 4, 0x01000000) }, -HANDOFF_E_STATE },
    { "a key offset outside a frame", 1, { P(O_MASK_OFF, 1, 1) }, -HANDOFF_E_STATE },
    { "more left in the frame than the message", 0, { P(O_LEFT, 8, 100) }, -HANDOFF_E_STATE },
    /* the open message */
    { "no message, announced bytes", 1, { P(O_MSG, 8, 5) }, -HANDOFF_E_STATE },
    { "no message, reassembled bytes", 1, { P(O_REASM, 8, 1), P(O_MSG, 8, 1) },
      -HANDOFF_E_STATE },
    { "no message, mid code point", 1, { P(O_UTF8, 4, 2) }, -HANDOFF_E_STATE },
    { "no message, in a frame", 1, { P(O_FLAGS, 1, IN_FRAME), P(O_LEFT, 8, 4) },
      -HANDOFF_E_STATE },
    { "no message, a clock", 1, { P(O_FLAGS, 1, TIMED) }, -HANDOFF_E_STATE },
    { "reassembled more than delivered", 0, { P(O_REASM, 8, REASM_LEN + 1) },
      -HANDOFF_E_STATE },
    { "reassembled less than delivered", 0, { P(O_REASM, 8, REASM_LEN - 1) },
      -HANDOFF_E_STATE },
    { "data and no clock", 0, { P(O_FLAGS, 1, IN_FRAME | FIN), P(O_AGE, 4, 0) },
      -HANDOFF_E_STATE },
    { "a clock and no data", 0, { P(O_REASM, 8, 0), P(O_MSG, 8, 10) }, -HANDOFF_E_STATE },
    { "binary mid code point", 0, { P(O_OPCODE, 1, WS_OP_BINARY) }, -HANDOFF_E_STATE },
    { "text already rejected", 0, { P(O_UTF8, 4, UTF8_REJECT) }, -HANDOFF_E_STATE },
    /* the adopter's limits */
    { "message over max_message", 0, { P(O_MSG, 8, (1 << 20) + 1),
                                       P(O_LEFT, 8, (1 << 20) + 1 - REASM_LEN) },
      -HANDOFF_E_LIMIT },
    { "input over max_in", 0, { P(O_IN, 8, 4097) }, -HANDOFF_E_LIMIT },
    { "input far over", 0, { P(O_IN, 8, UINT64_MAX) }, -HANDOFF_E_LIMIT },
    { "output over max_out", 0, { P(O_OUT, 8, (1 << 16) + 1) }, -HANDOFF_E_LIMIT },
    { "message too old", 0, { P(O_AGE, 4, 91) }, -HANDOFF_E_LIMIT },
};
#undef P

START_TEST(bad_field)
{
    const struct bad_case *bc = &bad_fields[_i];
    struct handoff_conn h, got;
    if (bc->idle_base)
        idle(&h);
    else
        busy(&h);
    size_t n = encode(&h);
    for (int k = 0; k < 3 && bc->p[k].width > 0; k++)
        put(bc->p[k].off, bc->p[k].width, bc->p[k].v);
    int rc = decode(n, &got);
    ck_assert_msg(rc == bc->want, "%s: %d, want %d", bc->what, rc, bc->want);
}
END_TEST

/* Each limit reached exactly is still accepted. */
START_TEST(limits_at_the_edge)
{
    struct handoff_conn h, got;
    busy(&h);
    h.in_len = lim.max_in;
    h.out_len = lim.max_out;
    h.msg_age_s = lim.max_msg_age_s;
    h.parser.msg_len = lim.max_message;
    h.parser.frame_left = lim.max_message - REASM_LEN;
    ck_assert_int_eq(decode(encode(&h), &got), 0);
    assert_same(&h, &got);
}
END_TEST

/* ---- the body -------------------------------------------------------------- */

static uint8_t body[64];

static size_t make_body(const struct handoff_conn *h)
{
    memset(body, 'i', (size_t)h->in_len);
    memcpy(body + h->in_len, reasm, (size_t)h->reasm_len);
    memset(body + h->in_len + h->reasm_len, 'o', (size_t)h->out_len);
    return (size_t)(h->in_len + h->reasm_len + h->out_len);
}

START_TEST(body_check)
{
    struct handoff_conn h, got;
    busy(&h);
    ck_assert_int_eq(decode(encode(&h), &got), 0);
    size_t n = make_body(&got);
    ck_assert_int_eq(handoff_body_check(&got, guard_copy(body, n), n), 0);
    ck_assert_int_eq(handoff_body_check(&got, guard_copy(body, n - 1), n - 1), -HANDOFF_E_BODY);
    ck_assert_int_eq(handoff_body_check(&got, body, n + 1), -HANDOFF_E_BODY);
    ck_assert_int_eq(handoff_body_check(&got, body, 0), -HANDOFF_E_BODY);

    /* The recorded validator state must be what the reassembled text gives. */
    got.parser.utf8_state = UTF8_ACCEPT;
    ck_assert_int_eq(handoff_body_check(&got, body, n), -HANDOFF_E_BODY);
    busy(&h);
    ck_assert_int_eq(decode(encode(&h), &got), 0);
    body[got.in_len + 1] = 0xff;                        /* invalid UTF-8 inside */
    ck_assert_int_eq(handoff_body_check(&got, body, n), -HANDOFF_E_BODY);

    /* Binary data is not text: any bytes. */
    got.parser.msg_opcode = WS_OP_BINARY;
    ck_assert_int_eq(handoff_body_check(&got, body, n), 0);
}
END_TEST

/* Section lengths whose sum wraps around 2^64 never pass. */
START_TEST(body_lengths_do_not_wrap)
{
    struct handoff_conn h;
    idle(&h);
    h.in_len = UINT64_MAX;
    h.out_len = 2;
    ck_assert_int_eq(handoff_body_check(&h, body, 1), -HANDOFF_E_BODY);
    h.in_len = 1;
    h.reasm_len = UINT64_MAX;
    h.out_len = 1;
    ck_assert_int_eq(handoff_body_check(&h, body, 1), -HANDOFF_E_BODY);
}
END_TEST

/* ---- answers --------------------------------------------------------------- */

START_TEST(answers)
{
    struct handoff_id id = { .pid = 77, .seq = 0xfffffffe, .conn = 9999, .slot = 127,
                             .endpoint = 1 }, got;
    uint8_t buf[HANDOFF_ANSWER_LEN + 1];
    for (int type = HANDOFF_ACK; type <= HANDOFF_NACK; type++) {
        ck_assert_uint_eq(handoff_answer_encode(type, &id, buf), HANDOFF_ANSWER_LEN);
        const uint8_t *g = guard_copy(buf, HANDOFF_ANSWER_LEN);
        ck_assert_int_eq(handoff_peek(g, HANDOFF_ANSWER_LEN, NULL), type);
        ck_assert_int_eq(handoff_answer_decode(g, HANDOFF_ANSWER_LEN, &got), type);
        ck_assert_uint_eq(got.pid, 77);
        ck_assert_uint_eq(got.seq, 0xfffffffe);
        ck_assert_uint_eq(got.conn, 9999);
        ck_assert_uint_eq(got.slot, 127);
        ck_assert_uint_eq(got.endpoint, 0);
        for (size_t len = 0; len < HANDOFF_ANSWER_LEN; len++)
            ck_assert_int_eq(handoff_answer_decode(guard_copy(buf, len), len, &got),
                             -HANDOFF_E_SHORT);
        buf[HANDOFF_ANSWER_LEN] = 0;
        ck_assert_int_eq(handoff_answer_decode(buf, HANDOFF_ANSWER_LEN + 1, &got),
                         -HANDOFF_E_FIELD);
        buf[22] = 1;                                    /* an endpoint in an answer */
        ck_assert_int_eq(handoff_answer_decode(buf, HANDOFF_ANSWER_LEN, &got),
                         -HANDOFF_E_FIELD);
    }
    /* A connection record is no answer, and an answer no connection record. */
    struct handoff_conn h, hc;
    busy(&h);
    size_t n = encode(&h);
    ck_assert_int_eq(handoff_answer_decode(rec, n, &got), -HANDOFF_E_TYPE);
    handoff_answer_encode(HANDOFF_ACK, &id, buf);
    ck_assert_int_eq(handoff_conn_decode(buf, HANDOFF_ANSWER_LEN, &lim, &hc), -HANDOFF_E_TYPE);
}
END_TEST

/* The head of an invalid record still names its sender, so it can be refused. */
START_TEST(peek_names_the_sender)
{
    struct handoff_conn h;
    struct handoff_id id;
    busy(&h);
    size_t n = encode(&h);
    put(O_VIA, 1, 200);
    ck_assert_int_eq(handoff_peek(guard_copy(rec, n), n, &id), HANDOFF_CONN);
    ck_assert_uint_eq(id.pid, 1234);
    ck_assert_uint_eq(id.seq, 7);
    ck_assert_uint_eq(id.conn, 42);
    ck_assert_uint_eq(id.slot, 5);
}
END_TEST

static void teardown(void)
{
    guard_release();
}

/*
 * The access log trailer: the session so far comes back as it went, every
 * cut of it is short, an over-long path or user is refused, and a byte
 * after it is trailing.
 */
START_TEST(access_log_trailer)
{
    struct handoff_conn h, got;
    busy(&h);
    h.log = (struct handoff_log){ .present = 1, .path_len = 10, .user_len = 5, .code = 1000,
                                  .start_ms = 123456789, .bytes_in = 4242, .bytes_out = 99 };
    memcpy(h.log.path, "/chat/room", 10);
    memcpy(h.log.user, "alice", 5);
    size_t n = handoff_conn_encode(&h, rec, sizeof rec);
    size_t tail = HANDOFF_CONN_FIXED + h.ep_len;
    ck_assert_uint_eq(n, tail + HANDOFF_LOG_FIXED + 15);
    ck_assert_int_eq(decode(n, &got), 0);
    ck_assert_int_eq(got.log.present, 1);
    ck_assert_uint_eq(got.log.start_ms, 123456789);
    ck_assert_uint_eq(got.log.bytes_in, 4242);
    ck_assert_uint_eq(got.log.bytes_out, 99);
    ck_assert_uint_eq(got.log.code, 1000);
    ck_assert_mem_eq(got.log.path, "/chat/room", 10);
    ck_assert_mem_eq(got.log.user, "alice", 5);
    for (size_t k = tail; k < n; k++)
        ck_assert_int_eq(decode(k, &got), -HANDOFF_E_SHORT);
    rec[n] = 0;
    ck_assert_int_eq(decode(n + 1, &got), -HANDOFF_E_FIELD);
    rec[tail + 26] = HANDOFF_LOG_PATH_MAX + 1;
    ck_assert_int_eq(decode(n, &got), -HANDOFF_E_FIELD);
    rec[tail + 26] = 10;
    rec[tail + 27] = HANDOFF_LOG_USER_MAX + 1;
    ck_assert_int_eq(decode(n, &got), -HANDOFF_E_FIELD);
    /* Without the trailer a record decodes with no session. */
    busy(&h);
    n = encode(&h);
    ck_assert_int_eq(decode(n, &got), 0);
    ck_assert_int_eq(got.log.present, 0);
    h.log.present = 1;
    h.log.path_len = HANDOFF_LOG_PATH_MAX + 1;
    ck_assert_uint_eq(handoff_conn_encode(&h, rec, sizeof rec), 0);
}
END_TEST

Suite *handoff_record_suite(void)
{
    Suite *s = suite_create("handoff_record");
    TCase *tc = tcase_create("encode_decode");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, round_trip_busy);
    tcase_add_test(tc, access_log_trailer);
    tcase_add_test(tc, round_trip_idle);
    tcase_add_test(tc, round_trip_between_fragments);
    tcase_add_test(tc, encode_refuses);
    tcase_add_test(tc, every_truncation);
    tcase_add_test(tc, magic_version_type);
    tcase_add_test(tc, peek_names_the_sender);
    suite_add_tcase(s, tc);

    tc = tcase_create("validate");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_loop_test(tc, bad_field, 0, (int)(sizeof bad_fields / sizeof bad_fields[0]));
    tcase_add_test(tc, limits_at_the_edge);
    tcase_add_test(tc, body_check);
    tcase_add_test(tc, body_lengths_do_not_wrap);
    tcase_add_test(tc, answers);
    suite_add_tcase(s, tc);
    return s;
}

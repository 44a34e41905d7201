/*
 * handoff_record: see handoff_record.h. Layout (offsets in bytes):
 *
 *   0 magic u32   4 version u16   6 type u16   8 pid u32   12 seq u32
 *  16 conn u32   20 slot u16     22 endpoint u16          (an answer ends here)
 *  24 peer[16]   40 via u8       41 flags u8   42 msg_opcode u8   43 mask_off u8
 *  44 mask[4]    48 utf8_state u32   52 msg_age_s u32
 *  56 frame_left u64   64 msg_len u64   72 in_len u64   80 reasm_len u64
 *  88 out_len u64      96 ep_len u32   100 ep[ep_len]
 *  then, with flag F_LOGGED, the access log trailer at L = 100 + ep_len:
 *  L start_ms u64  L+8 bytes_in u64  L+16 bytes_out u64  L+24 code u16
 *  L+26 path_len u8  L+27 user_len u8  L+28 path[path_len] user[user_len]
 */
#include "handoff_record.h"

#include <string.h>

#include "utf8.h"

#define F_IN_FRAME   0x01
#define F_FRAME_FIN  0x02
#define F_MSG_TIMED  0x04
#define F_LOGGED     0x08
#define F_ALL        (F_IN_FRAME | F_FRAME_FIN | F_MSG_TIMED | F_LOGGED)

_Static_assert(HANDOFF_CONN_FIXED == 100, "layout above");

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

static uint32_t get32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static void put_head(uint8_t *buf, int type, const struct handoff_id *id)
{
    put32(buf, HANDOFF_MAGIC);
    put16(buf + 4, HANDOFF_VERSION);
    put16(buf + 6, (uint16_t)type);
    put32(buf + 8, id->pid);
    put32(buf + 12, id->seq);
    put32(buf + 16, id->conn);
    put16(buf + 20, id->slot);
    put16(buf + 22, id->endpoint);
}

size_t handoff_conn_encode(const struct handoff_conn *h, uint8_t *buf, size_t cap)
{
    const struct ws_parser *p = &h->parser;
    const struct handoff_log *lg = &h->log;
    if (h->ep_len > HANDOFF_EP_MAX || lg->path_len > HANDOFF_LOG_PATH_MAX ||
        lg->user_len > HANDOFF_LOG_USER_MAX)
        return 0;
    size_t len = HANDOFF_CONN_FIXED + h->ep_len +
                 (lg->present ? HANDOFF_LOG_FIXED + lg->path_len + lg->user_len : 0);
    if (cap < len)
        return 0;
    memset(buf, 0, HANDOFF_CONN_FIXED);
    put_head(buf, HANDOFF_CONN, &h->id);
    memcpy(buf + 24, h->peer, 16);
    buf[40] = h->via;
    /* Between frames the frame fields are stale leftovers: send zeros. */
    int in_frame = p->in_frame != 0;
    buf[41] = (uint8_t)((in_frame ? F_IN_FRAME : 0) | (in_frame && p->frame_fin ? F_FRAME_FIN : 0) |
                        (h->msg_timed ? F_MSG_TIMED : 0) | (lg->present ? F_LOGGED : 0));
    buf[42] = p->msg_opcode;
    if (in_frame) {
        buf[43] = p->mask_off;
        memcpy(buf + 44, p->mask, 4);
        put64(buf + 56, p->frame_left);
    }
    put32(buf + 48, p->utf8_state);
    put32(buf + 52, h->msg_timed ? h->msg_age_s : 0);
    put64(buf + 64, p->msg_len);
    put64(buf + 72, h->in_len);
    put64(buf + 80, h->reasm_len);
    put64(buf + 88, h->out_len);
    put32(buf + 96, h->ep_len);
    memcpy(buf + HANDOFF_CONN_FIXED, h->ep, h->ep_len);
    if (lg->present) {
        uint8_t *t = buf + HANDOFF_CONN_FIXED + h->ep_len;
        put64(t, lg->start_ms);
        put64(t + 8, lg->bytes_in);
        put64(t + 16, lg->bytes_out);
        put16(t + 24, lg->code);
        t[26] = lg->path_len;
        t[27] = lg->user_len;
        memcpy(t + HANDOFF_LOG_FIXED, lg->path, lg->path_len);
        memcpy(t + HANDOFF_LOG_FIXED + lg->path_len, lg->user, lg->user_len);
    }
    return len;
}

int handoff_peek(const uint8_t *buf, size_t len, struct handoff_id *id)
{
    if (len < HANDOFF_ANSWER_LEN)
        return -HANDOFF_E_SHORT;
    if (get32(buf) != HANDOFF_MAGIC)
        return -HANDOFF_E_MAGIC;
    if (get16(buf + 4) != HANDOFF_VERSION)
        return -HANDOFF_E_VERSION;
    unsigned type = get16(buf + 6);
    if (type < HANDOFF_CONN || type > HANDOFF_NACK)
        return -HANDOFF_E_TYPE;
    if (id != NULL) {
        id->pid = get32(buf + 8);
        id->seq = get32(buf + 12);
        id->conn = get32(buf + 16);
        id->slot = get16(buf + 20);
        id->endpoint = get16(buf + 22);
    }
    return (int)type;
}

/* The decoder states a server-side parser can be in, given the record's fields. */
static int state_valid(const struct handoff_conn *h, unsigned flags)
{
    const struct ws_parser *p = &h->parser;
    int in_frame = (flags & F_IN_FRAME) != 0;
    /* A data frame is under way exactly while payload is left (ws_frame.c's deliver). */
    if (in_frame != (p->frame_left > 0))
        return 0;
    if (!in_frame && ((flags & F_FRAME_FIN) || p->mask_off != 0 ||
                      memcmp(p->mask, "\0\0\0\0", 4) != 0))
        return 0;
    if (p->msg_opcode == 0)
        return !in_frame && p->msg_len == 0 && h->reasm_len == 0 &&
               p->utf8_state == UTF8_ACCEPT && !(flags & F_MSG_TIMED);
    /* Every payload byte delivered so far is in the reassembly buffer. */
    if (p->frame_left > p->msg_len || h->reasm_len != p->msg_len - p->frame_left)
        return 0;
    /* Its clock starts with its first reassembled byte (ws_conn.c's reassemble). */
    if (((flags & F_MSG_TIMED) != 0) != (h->reasm_len > 0))
        return 0;
    if (p->utf8_state == UTF8_REJECT)
        return 0;
    return p->msg_opcode == WS_OP_TEXT || p->utf8_state == UTF8_ACCEPT;
}

int handoff_conn_decode(const uint8_t *buf, size_t len, const struct handoff_limits *lim,
                        struct handoff_conn *h)
{
    int type = handoff_peek(buf, len, &h->id);
    if (type < 0)
        return type;
    if (type != HANDOFF_CONN)
        return -HANDOFF_E_TYPE;
    if (len < HANDOFF_CONN_FIXED)
        return -HANDOFF_E_SHORT;
    h->ep_len = get32(buf + 96);
    if (h->ep_len > HANDOFF_EP_MAX)
        return -HANDOFF_E_FIELD;
    if (len < HANDOFF_CONN_FIXED + h->ep_len)
        return -HANDOFF_E_SHORT;
    size_t want = HANDOFF_CONN_FIXED + h->ep_len;
    struct handoff_log *lg = &h->log;
    memset(lg, 0, sizeof *lg);
    if (buf[41] & F_LOGGED) {
        const uint8_t *t = buf + want;
        if (len < want + HANDOFF_LOG_FIXED)
            return -HANDOFF_E_SHORT;
        lg->present = 1;
        lg->start_ms = get64(t);
        lg->bytes_in = get64(t + 8);
        lg->bytes_out = get64(t + 16);
        lg->code = get16(t + 24);
        lg->path_len = t[26];
        lg->user_len = t[27];
        if (lg->path_len > HANDOFF_LOG_PATH_MAX || lg->user_len > HANDOFF_LOG_USER_MAX)
            return -HANDOFF_E_FIELD;
        want += HANDOFF_LOG_FIXED + lg->path_len + lg->user_len;
        if (len < want)
            return -HANDOFF_E_SHORT;
        memcpy(lg->path, t + HANDOFF_LOG_FIXED, lg->path_len);
        memcpy(lg->user, t + HANDOFF_LOG_FIXED + lg->path_len, lg->user_len);
    }
    if (len > want)
        return -HANDOFF_E_FIELD;
    memcpy(h->ep, buf + HANDOFF_CONN_FIXED, h->ep_len);
    memcpy(h->peer, buf + 24, 16);
    h->via = buf[40];
    unsigned flags = buf[41];
    struct ws_parser *p = &h->parser;
    ws_parser_init(p, lim->max_message, 1);
    p->msg_opcode = buf[42];
    p->mask_off = buf[43];
    memcpy(p->mask, buf + 44, 4);
    p->utf8_state = get32(buf + 48);
    h->msg_age_s = get32(buf + 52);
    p->frame_left = get64(buf + 56);
    p->msg_len = get64(buf + 64);
    h->in_len = get64(buf + 72);
    h->reasm_len = get64(buf + 80);
    h->out_len = get64(buf + 88);
    if (h->id.slot >= lim->nslots || h->id.endpoint >= lim->nendpoints ||
        h->via > HANDOFF_VIA_MAX || (flags & ~(unsigned)F_ALL) != 0 || p->mask_off > 3 ||
        (p->msg_opcode != 0 && p->msg_opcode != WS_OP_TEXT && p->msg_opcode != WS_OP_BINARY) ||
        (!(flags & F_MSG_TIMED) && h->msg_age_s != 0))
        return -HANDOFF_E_FIELD;
    p->in_frame = (flags & F_IN_FRAME) != 0;
    p->frame_fin = (flags & F_FRAME_FIN) != 0;
    p->frame_masked = p->in_frame;     /* a client's frames are always masked (§5.1) */
    h->msg_timed = (flags & F_MSG_TIMED) != 0;
    if (!state_valid(h, flags))
        return -HANDOFF_E_STATE;
    if ((lim->max_message != 0 && p->msg_len > lim->max_message) ||
        h->in_len > lim->max_in || h->out_len > lim->max_out ||
        h->msg_age_s > lim->max_msg_age_s)
        return -HANDOFF_E_LIMIT;
    return 0;
}

int handoff_body_check(const struct handoff_conn *h, const uint8_t *body, size_t len)
{
    uint64_t n64 = len;
    /* Section by section, so that no sum of untrusted lengths can wrap. */
    if (h->in_len > n64 || h->reasm_len > n64 - h->in_len ||
        h->out_len != n64 - h->in_len - h->reasm_len)
        return -HANDOFF_E_BODY;
    if (h->parser.msg_opcode == WS_OP_TEXT) {
        uint32_t st = UTF8_ACCEPT;
        size_t n = (size_t)h->reasm_len;
        if (utf8_validate(&st, body + h->in_len, n) != n || st != h->parser.utf8_state)
            return -HANDOFF_E_BODY;
    }
    return 0;
}

size_t handoff_answer_encode(int type, const struct handoff_id *id,
                             uint8_t buf[HANDOFF_ANSWER_LEN])
{
    struct handoff_id a = *id;
    a.endpoint = 0;
    put_head(buf, type, &a);
    return HANDOFF_ANSWER_LEN;
}

int handoff_answer_decode(const uint8_t *buf, size_t len, struct handoff_id *id)
{
    int type = handoff_peek(buf, len, id);
    if (type < 0)
        return type;
    if (type == HANDOFF_CONN)
        return -HANDOFF_E_TYPE;
    if (len != HANDOFF_ANSWER_LEN || id->endpoint != 0)
        return -HANDOFF_E_FIELD;
    return type;
}

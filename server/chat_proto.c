/*
 * chat_proto: see chat_proto.h. Every string that came from a client goes
 * through json_escape() (strbuf_put_json), so no event is ever invalid
 * JSON. Builders append with the bounded strbuf writer and report -ENOSPC
 * when the buffer is too small, never a cut event.
 */
#include "chat_proto.h"

#include <string.h>

#include "ascii.h"
#include "json.h"
#include "ring.h"
#include "strbuf.h"
#include "utf8.h"
#include "ws_frame.h"

int chat_room_name_valid(const char *name, size_t len)
{
    if (len == 0 || len > RING_ROOM_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char ch = name[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              (ch >= '0' && ch <= '9') || ch == '_' || ch == '-'))
            return 0;
    }
    return 1;
}

/* The code point of the valid UTF-8 sequence at S (N bytes left); its length in *LEN. */
static uint32_t decode_one(const uint8_t *s, size_t n, size_t *len)
{
    if (s[0] < 0x80 || n < 2) {
        *len = 1;
        return s[0];
    }
    if (s[0] < 0xE0) {
        *len = 2;
        return (uint32_t)(s[0] & 0x1F) << 6 | (s[1] & 0x3F);
    }
    if (s[0] < 0xF0 || n < 4) {
        *len = 3;
        return (uint32_t)(s[0] & 0x0F) << 12 | (uint32_t)(s[1] & 0x3F) << 6 | (s[2] & 0x3F);
    }
    *len = 4;
    return (uint32_t)(s[0] & 0x07) << 18 | (uint32_t)(s[1] & 0x3F) << 12 |
           (uint32_t)(s[2] & 0x3F) << 6 | (s[3] & 0x3F);
}

/*
 * Code points a nick may not hold anywhere: controls, and the characters
 * that render as nothing or reorder their neighbours, with which "alice"
 * and "al\u200Bice" or "\u202Eecila" would look alike: soft hyphen,
 * combining grapheme joiner, Arabic letter mark, Hangul fillers, Khmer
 * inherent vowels, Mongolian selectors, zero-width and bidi marks,
 * embeddings, overrides and isolates, invisible operators, variation
 * selectors, BOM, interlinear annotations, musical formatting, tags.
 */
static int nick_forbidden(uint32_t cp)
{
    return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) || cp == 0xAD || cp == 0x34F ||
           cp == 0x61C || cp == 0x115F || cp == 0x1160 || cp == 0x17B4 || cp == 0x17B5 ||
           (cp >= 0x180B && cp <= 0x180F) || (cp >= 0x200B && cp <= 0x200F) ||
           (cp >= 0x2028 && cp <= 0x202E) || (cp >= 0x2060 && cp <= 0x206F) ||
           cp == 0x3164 || (cp >= 0xFE00 && cp <= 0xFE0F) || cp == 0xFEFF || cp == 0xFFA0 ||
           (cp >= 0xFFF0 && cp <= 0xFFFB) || (cp >= 0x1D173 && cp <= 0x1D17A) ||
           (cp >= 0xE0000 && cp <= 0xE0FFF);
}

/* Spaces a nick may hold inside but not at either end ("bob" vs "bob "). */
static int nick_space(uint32_t cp)
{
    return cp == ' ' || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
           cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

int chat_nick_valid(const char *nick, size_t len)
{
    const uint8_t *s = (const uint8_t *)nick;
    if (len == 0 || len > CHAT_NICK_MAX_BYTES || !utf8_valid(s, len))
        return 0;
    size_t chars = 0, step;
    uint32_t cp = 0, prev = 0;
    for (size_t i = 0; i < len; i += step, prev = cp) {
        cp = decode_one(s + i, len - i, &step);
        /* A zero-width joiner is how emoji sequences are spelt: allowed
         * between two pictographs, never next to a letter it could hide in. */
        size_t next_len;
        int zwj_ok = cp == 0x200D && prev >= 0x2600 && i + step < len &&
                     decode_one(s + i + step, len - i - step, &next_len) >= 0x2600;
        if ((nick_forbidden(cp) && !zwj_ok) || (i == 0 && nick_space(cp)))
            return 0;
        chars++;
    }
    return !nick_space(cp) && chars <= CHAT_NICK_MAX_CHARS;
}

void chat_uuid4(const uint8_t rnd[16], char out[37])
{
    static const char hex[] = "0123456789abcdef";
    uint8_t b[16];
    memcpy(b, rnd, 16);
    b[6] = (uint8_t)((b[6] & 0x0F) | 0x40);     /* version 4 */
    b[8] = (uint8_t)((b[8] & 0x3F) | 0x80);     /* variant 10 */
    size_t o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 15];
    }
    out[o] = '\0';
}

size_t chat_guest_nick(const char *uid, char *out)
{
    memcpy(out, "guest-", 6);
    memcpy(out + 6, uid, 4);
    return 10;
}

/* Percent-decode (and '+' → space) into out; -1 on a bad escape or overflow. */
static long form_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '+') {
            ch = ' ';
        } else if (ch == '%') {
            if (i + 2 >= n)
                return -1;
            int hi = ascii_hex_value(s[i + 1]), lo = ascii_hex_value(s[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            ch = (char)(hi << 4 | lo);
            i += 2;
        }
        if (o >= cap)
            return -1;
        out[o++] = ch;
    }
    return (long)o;
}

void chat_query_parse(const char *q, size_t len, struct chat_query *out)
{
    memset(out, 0, sizeof *out);
    size_t i = 0;
    while (i < len) {
        size_t end = i;
        while (end < len && q[end] != '&')
            end++;
        const char *eq = memchr(q + i, '=', end - i);
        size_t klen = eq ? (size_t)(eq - (q + i)) : end - i;
        const char *v = eq ? eq + 1 : q + end;
        size_t vlen = eq ? (size_t)(q + end - v) : 0;
        if (klen == 4 && memcmp(q + i, "nick", 4) == 0) {
            long n = form_decode(v, vlen, out->nick, CHAT_NICK_MAX_BYTES);
            out->nick_present = 1;
            out->nick_ok = n > 0 && chat_nick_valid(out->nick, (size_t)n);
            out->nick_len = out->nick_ok ? (size_t)n : 0;
        } else if (klen == 5 && memcmp(q + i, "since", 5) == 0) {
            uint64_t val = 0;
            int ok = vlen > 0 && vlen <= 20;
            for (size_t k = 0; ok && k < vlen; k++) {
                if (v[k] < '0' || v[k] > '9' || val > (UINT64_MAX - 9) / 10)
                    ok = 0;
                else
                    val = val * 10 + (uint64_t)(v[k] - '0');
            }
            out->since_present = 1;
            out->since_ok = ok;
            out->since = ok ? val : 0;
        } else if (klen == 5 && memcmp(q + i, "token", 5) == 0) {
            out->token_present = 1;
            out->token = v;
            out->token_len = vlen;
        }
        i = end + 1;
    }
}

int chat_input_parse(const char *data, size_t len, char *scratch, size_t cap,
                     struct chat_input *in)
{
    size_t i = 0;
    while (i < len && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r'))
        i++;
    in->kind = CHAT_INPUT_MESSAGE;
    in->value = data;
    in->value_len = len;
    if (i == len || data[i] != '{' || len > cap)
        return 0;
    memcpy(scratch, data, len);
    struct json_field f[JSON_MAX_FIELDS];
    int n = json_parse_object(scratch, len, f, JSON_MAX_FIELDS);
    if (n < 0)
        return 0;       /* not a JSON object: the text itself is the message */
    const struct json_field *type = json_get(f, n, "type");
    if (type == NULL || type->type != JSON_STRING)
        return CHAT_INPUT_BAD_TYPE;
    const char *key;
    if (type->val_len == 7 && memcmp(type->val, "message", 7) == 0) {
        in->kind = CHAT_INPUT_MESSAGE;
        key = "text";
    } else if (type->val_len == 4 && memcmp(type->val, "nick", 4) == 0) {
        in->kind = CHAT_INPUT_NICK;
        key = "nick";
    } else {
        return CHAT_INPUT_BAD_TYPE;
    }
    const struct json_field *v = json_get(f, n, key);
    if (v == NULL || v->type != JSON_STRING)
        return CHAT_INPUT_MISSING;
    in->value = v->val;
    in->value_len = v->val_len;
    return 0;
}

const char *chat_input_error_code(int err)
{
    return err == CHAT_INPUT_BAD_TYPE ? "bad_type" : "bad_request";
}

const char *chat_input_error_reason(int err)
{
    return err == CHAT_INPUT_BAD_TYPE
        ? "\"type\" must be \"message\" or \"nick\""
        : "a message needs a string \"text\", a nick change a string \"nick\"";
}

ssize_t chat_proto_welcome(char *buf, size_t cap, const struct chat_identity *id,
                          const char *room, size_t room_len, int online, uint64_t last_id)
{
    struct strbuf o;
    strbuf_init(&o, buf, cap);
    strbuf_puts(&o, "{\"type\":\"welcome\",\"uid\":");
    strbuf_put_json(&o, id->uid, strlen(id->uid));
    strbuf_puts(&o, ",\"nick\":");
    strbuf_put_json(&o, id->nick, id->nick_len);
    if (id->user_len > 0) {
        strbuf_puts(&o, ",\"user\":");
        strbuf_put_json(&o, id->user, id->user_len);
    }
    strbuf_puts(&o, ",\"room\":");
    strbuf_put_json(&o, room, room_len);
    strbuf_puts(&o, ",\"online\":");
    strbuf_put_u64(&o, (uint64_t)(online < 0 ? 0 : online));
    strbuf_puts(&o, ",\"last_id\":");
    strbuf_put_u64(&o, last_id);
    strbuf_puts(&o, "}");
    return strbuf_result(&o);
}

ssize_t chat_proto_error(char *buf, size_t cap, const char *code, const char *reason)
{
    struct strbuf o;
    strbuf_init(&o, buf, cap);
    strbuf_puts(&o, "{\"type\":\"error\",\"code\":");
    strbuf_put_json(&o, code, strlen(code));
    strbuf_puts(&o, ",\"reason\":");
    strbuf_put_json(&o, reason, strlen(reason));
    strbuf_puts(&o, "}");
    return strbuf_result(&o);
}

ssize_t chat_proto_simple(char *buf, size_t cap, const char *type)
{
    struct strbuf o;
    strbuf_init(&o, buf, cap);
    strbuf_puts(&o, "{\"type\":");
    strbuf_put_json(&o, type, strlen(type));
    strbuf_puts(&o, "}");
    return strbuf_result(&o);
}

/*
 * One complete text frame (header included) of the payload PUT writes
 * from ARG, into BUF[0..cap): its length, or -ENOSPC. The payload is
 * measured first, because the header's size depends on the payload's
 * length; with BUF NULL only the length is returned.
 */
static ssize_t text_frame(uint8_t *buf, size_t cap,
                          void (*put)(struct strbuf *, const void *), const void *arg)
{
    struct strbuf m;
    strbuf_init(&m, NULL, SIZE_MAX);
    put(&m, arg);
    size_t n = m.len;
    size_t h = ws_frame_header_size(n);
    if (buf == NULL)
        return (ssize_t)(h + n);
    if (cap < h || cap - h < n)
        return -ENOSPC;
    struct strbuf o;
    strbuf_init(&o, (char *)buf + h, n);
    put(&o, arg);
    ws_frame_header_encode(buf, WS_OP_TEXT, 1, n);
    return (ssize_t)(h + n);
}

struct gap_args { const char *room; size_t room_len; uint64_t from, to; };

static void put_gap(struct strbuf *o, const void *arg)
{
    const struct gap_args *a = arg;
    strbuf_puts(o, "{\"type\":\"gap\",\"room\":");
    strbuf_put_json(o, a->room, a->room_len);
    strbuf_puts(o, ",\"from\":");
    strbuf_put_u64(o, a->from);
    strbuf_puts(o, ",\"to\":");
    strbuf_put_u64(o, a->to);
    strbuf_puts(o, "}");
}

ssize_t chat_proto_gap(uint8_t *buf, size_t cap, const char *room, size_t room_len,
                       uint64_t from, uint64_t to)
{
    const struct gap_args a = { room, room_len, from, to };
    return text_frame(buf, cap, put_gap, &a);
}

struct presence_args { const char *room; size_t room_len; int online; };

static void put_presence(struct strbuf *o, const void *arg)
{
    const struct presence_args *a = arg;
    strbuf_puts(o, "{\"type\":\"presence\",\"room\":");
    strbuf_put_json(o, a->room, a->room_len);
    strbuf_puts(o, ",\"online\":");
    strbuf_put_u64(o, (uint64_t)(a->online < 0 ? 0 : a->online));
    strbuf_puts(o, "}");
}

ssize_t chat_proto_presence_frame(uint8_t *buf, size_t cap, const char *room, size_t room_len,
                                  int online)
{
    const struct presence_args a = { room, room_len, online };
    return text_frame(buf, cap, put_presence, &a);
}

static void put_identity(struct strbuf *o, const char *room, size_t room_len,
                         const struct chat_identity *id)
{
    strbuf_puts(o, ",\"room\":");
    strbuf_put_json(o, room, room_len);
    strbuf_puts(o, ",\"uid\":");
    strbuf_put_json(o, id->uid, strlen(id->uid));
    strbuf_puts(o, ",\"nick\":");
    strbuf_put_json(o, id->nick, id->nick_len);
    if (id->user_len > 0) {
        strbuf_puts(o, ",\"user\":");
        strbuf_put_json(o, id->user, id->user_len);
    }
}

ssize_t chat_proto_message_body(char *buf, size_t cap, const char *room, size_t room_len,
                               const struct chat_identity *id, const char *text, size_t len)
{
    struct strbuf o;
    strbuf_init(&o, buf, cap);
    put_identity(&o, room, room_len, id);
    strbuf_puts(&o, ",\"text\":");
    strbuf_put_json(&o, text, len);
    strbuf_puts(&o, "}");
    return strbuf_result(&o);
}

ssize_t chat_proto_presence_body(char *buf, size_t cap, const char *room, size_t room_len,
                                const struct chat_identity *id, const char *old_nick,
                                size_t old_len, int online)
{
    struct strbuf o;
    strbuf_init(&o, buf, cap);
    put_identity(&o, room, room_len, id);
    if (old_nick != NULL) {
        strbuf_puts(&o, ",\"old\":");
        strbuf_put_json(&o, old_nick, old_len);
    }
    strbuf_puts(&o, ",\"online\":");
    strbuf_put_u64(&o, (uint64_t)(online < 0 ? 0 : online));
    strbuf_puts(&o, "}");
    return strbuf_result(&o);
}

struct event_args { const char *type; uint64_t id; int64_t ts; const char *body; size_t len; };

/* `{"type":TYPE,"id":ID,"ts":TS` and then the body, which closes the object. */
static void put_event(struct strbuf *o, const void *arg)
{
    const struct event_args *a = arg;
    strbuf_puts(o, "{\"type\":\"");
    strbuf_puts(o, a->type);
    strbuf_puts(o, "\",\"id\":");
    strbuf_put_u64(o, a->id);
    strbuf_puts(o, ",\"ts\":");
    strbuf_put_u64(o, (uint64_t)(a->ts < 0 ? 0 : a->ts));
    strbuf_put(o, a->body, a->len);
}

size_t chat_proto_event_frame_len(const char *type, uint64_t id, int64_t ts, size_t body_len)
{
    /* Measuring never reads the body: only its length counts. */
    const struct event_args a = { type, id, ts, NULL, body_len };
    return (size_t)text_frame(NULL, 0, put_event, &a);
}

ssize_t chat_proto_event_frame(uint8_t *dst, size_t cap, const char *type, uint64_t id,
                               int64_t ts, const char *body, size_t body_len)
{
    if (body_len == 0)
        return -EINVAL;
    const struct event_args a = { type, id, ts, body, body_len };
    return text_frame(dst, cap, put_event, &a);
}

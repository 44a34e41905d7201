/*
 * chat_event: see chat_event.h. Every string that came from a client goes
 * through json_escape(), so no event is ever invalid JSON. Builders append
 * with a small bounded writer and report 0 when the buffer is too small.
 */
#include "chat_event.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ascii.h"
#include "json.h"
#include "utf8.h"
#include "ws_frame.h"

/*
 * A bounded append-only writer; `ok` drops to 0 on the first overflow.
 * With buf == NULL it only measures (len counts what would be written).
 */
struct out {
    char  *buf;
    size_t cap, len;
    int    ok;
};

static void put_raw(struct out *o, const char *s, size_t n)
{
    if (!o->ok || o->cap - o->len < n) {
        o->ok = 0;
        return;
    }
    if (o->buf != NULL)
        memcpy(o->buf + o->len, s, n);
    o->len += n;
}

static void put(struct out *o, const char *s) { put_raw(o, s, strlen(s)); }

static void put_u64(struct out *o, uint64_t v)
{
    char d[24];
    int n = snprintf(d, sizeof d, "%llu", (unsigned long long)v);
    put_raw(o, d, (size_t)n);
}

static void put_str(struct out *o, const char *s, size_t n)
{
    size_t need = json_escaped_len(s, n);
    put_raw(o, "\"", 1);
    if (!o->ok || o->cap - o->len < need) {
        o->ok = 0;
        return;
    }
    o->len += o->buf != NULL ? json_escape(o->buf + o->len, s, n) : need;
    put_raw(o, "\"", 1);
}

static size_t done(const struct out *o) { return o->ok ? o->len : 0; }

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

int chat_nick_valid(const char *nick, size_t len)
{
    const uint8_t *s = (const uint8_t *)nick;
    if (len == 0 || len > CHAT_NICK_MAX_BYTES || !utf8_valid(s, len))
        return 0;
    size_t chars = 0;
    for (size_t i = 0; i < len; i++) {
        if ((s[i] & 0xC0) == 0x80)
            continue;
        chars++;
        if (s[i] < 0x20 || s[i] == 0x7F)
            return 0;
        /* C1 controls U+0080..U+009F are encoded C2 80..C2 9F. */
        if (s[i] == 0xC2 && i + 1 < len && s[i + 1] < 0xA0)
            return 0;
    }
    return chars <= CHAT_NICK_MAX_CHARS;
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

size_t chat_event_welcome(char *buf, size_t cap, const struct chat_identity *id,
                          const char *room, size_t room_len, int online, uint64_t last_id)
{
    struct out o = { buf, cap, 0, 1 };
    put(&o, "{\"type\":\"welcome\",\"uid\":");
    put_str(&o, id->uid, strlen(id->uid));
    put(&o, ",\"nick\":");
    put_str(&o, id->nick, id->nick_len);
    put(&o, ",\"room\":");
    put_str(&o, room, room_len);
    put(&o, ",\"online\":");
    put_u64(&o, (uint64_t)(online < 0 ? 0 : online));
    put(&o, ",\"last_id\":");
    put_u64(&o, last_id);
    put(&o, "}");
    return done(&o);
}

size_t chat_event_error(char *buf, size_t cap, const char *code, const char *reason)
{
    struct out o = { buf, cap, 0, 1 };
    put(&o, "{\"type\":\"error\",\"code\":");
    put_str(&o, code, strlen(code));
    put(&o, ",\"reason\":");
    put_str(&o, reason, strlen(reason));
    put(&o, "}");
    return done(&o);
}

size_t chat_event_simple(char *buf, size_t cap, const char *type)
{
    struct out o = { buf, cap, 0, 1 };
    put(&o, "{\"type\":");
    put_str(&o, type, strlen(type));
    put(&o, "}");
    return done(&o);
}

static void put_gap(struct out *o, const char *room, size_t room_len,
                    uint64_t from, uint64_t to)
{
    put(o, "{\"type\":\"gap\",\"room\":");
    put_str(o, room, room_len);
    put(o, ",\"from\":");
    put_u64(o, from);
    put(o, ",\"to\":");
    put_u64(o, to);
    put(o, "}");
}

size_t chat_event_gap(uint8_t *buf, size_t cap, const char *room, size_t room_len,
                      uint64_t from, uint64_t to)
{
    /* Measure first: the header size depends on the payload length. */
    struct out m = { NULL, SIZE_MAX, 0, 1 };
    put_gap(&m, room, room_len, from, to);
    size_t n = done(&m);
    size_t h = ws_frame_header_size(n);
    if (n == 0 || cap < h || cap - h < n)
        return 0;
    struct out o = { (char *)buf + h, n, 0, 1 };
    put_gap(&o, room, room_len, from, to);
    if (done(&o) != n)
        return 0;
    ws_frame_header_encode(buf, WS_OP_TEXT, 1, n);
    return h + n;
}

static void put_identity(struct out *o, const char *room, size_t room_len,
                         const struct chat_identity *id)
{
    put(o, ",\"room\":");
    put_str(o, room, room_len);
    put(o, ",\"uid\":");
    put_str(o, id->uid, strlen(id->uid));
    put(o, ",\"nick\":");
    put_str(o, id->nick, id->nick_len);
}

size_t chat_event_message_body(char *buf, size_t cap, const char *room, size_t room_len,
                               const struct chat_identity *id, const char *text, size_t len)
{
    struct out o = { buf, cap, 0, 1 };
    put_identity(&o, room, room_len, id);
    put(&o, ",\"text\":");
    put_str(&o, text, len);
    put(&o, "}");
    return done(&o);
}

size_t chat_event_presence_body(char *buf, size_t cap, const char *room, size_t room_len,
                                const struct chat_identity *id, const char *old_nick,
                                size_t old_len, int online)
{
    struct out o = { buf, cap, 0, 1 };
    put_identity(&o, room, room_len, id);
    if (old_nick != NULL) {
        put(&o, ",\"old\":");
        put_str(&o, old_nick, old_len);
    }
    put(&o, ",\"online\":");
    put_u64(&o, (uint64_t)(online < 0 ? 0 : online));
    put(&o, "}");
    return done(&o);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int chat_event_commit(struct ring *r, int kind, int room_idx, const char *room,
                      size_t room_len, const char *type, const char *body, size_t body_len)
{
    char head[96];
    uint64_t id = ring_next_id(r);
    int64_t ts = now_ms();
    int hn = snprintf(head, sizeof head, "{\"type\":\"%s\",\"id\":%llu,\"ts\":%lld", type,
                      (unsigned long long)id, (long long)ts);
    if (hn < 0 || (size_t)hn >= sizeof head || body_len == 0)
        return -1;
    uint64_t payload = (uint64_t)hn + body_len;
    size_t h = ws_frame_header_size(payload);
    if (h + payload > ring_max_entry(r))
        return -1;
    uint8_t *dst = ring_reserve(r, (uint32_t)(h + payload));
    if (dst == NULL)
        return -1;
    ws_frame_header_encode(dst, WS_OP_TEXT, 1, payload);
    memcpy(dst + h, head, (size_t)hn);
    memcpy(dst + h + hn, body, body_len);
    struct ring_entry meta;
    memset(&meta, 0, sizeof meta);
    meta.ts_ms = ts;
    meta.len = (uint32_t)(h + payload);
    meta.kind = (uint8_t)kind;
    meta.room_len = (uint8_t)room_len;
    memcpy(meta.room, room, room_len);
    meta.room_slot = (uint64_t)room_idx;
    ring_commit(r, &meta);
    return 0;
}

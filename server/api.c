/*
 * api: see api.h. History is read along the room's chain in the ring
 * (ring.h, room_table.h), as a joining member's replay is: back from the
 * room's newest message to the first one after since, then forward.
 */
#include "api.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "chat_chain.h"
#include "chat_proto.h"
#include "chat_publish.h"
#include "cidr.h"
#include "config.h"
#include "http.h"
#include "journal_gate.h"
#include "json.h"
#include "kick_table.h"
#include "ring.h"
#include "room_table.h"
#include "shm.h"
#include "strbuf.h"
#include "worker.h"

#define HISTORY_DEFAULT 100
#define HISTORY_MAX     1000
#define BODY_MAX        (4u * 1024u * 1024u)    /* one answer; a caller pages for more */

int api_route(const char *path, size_t len)
{
    return len >= 5 && memcmp(path, "/api/", 5) == 0;
}

static int bearer_ok(const struct config *cfg, const struct http_request *req)
{
    const struct http_header *h = http_find_header(req, "Authorization");
    if (h == NULL || http_count_header(req, "Authorization") != 1 || h->value_len < 7 ||
        strncasecmp(h->value, "Bearer ", 7) != 0)
        return 0;
    const char *k = h->value + 7;
    size_t n = h->value_len - 7;
    /* Length first (it is not the secret), then every byte in constant time. */
    return n == cfg->api_key_len && CRYPTO_memcmp(k, cfg->api_key, n) == 0;
}

/* The value of KEY in QUERY (not decoded: the values used here need none). */
static const char *query_value(const char *q, size_t qlen, const char *key, size_t *vlen)
{
    size_t klen = strlen(key);
    for (size_t i = 0; i < qlen;) {
        size_t end = i;
        while (end < qlen && q[end] != '&')
            end++;
        if (end - i > klen && memcmp(q + i, key, klen) == 0 && q[i + klen] == '=') {
            *vlen = end - i - klen - 1;
            return q + i + klen + 1;
        }
        i = end + 1;
    }
    return NULL;
}

/* A decimal of 1..19 digits; 0 on anything else. */
static int parse_u64(const char *s, size_t n, uint64_t *out)
{
    if (n == 0 || n > 19)
        return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return 1;
}

/* The JSON payload of the server frame F (the frame is always our own). */
static const char *frame_payload(const uint8_t *f, size_t len, size_t *plen)
{
    size_t h = (f[1] & 0x7f) < 126 ? 2 : (f[1] & 0x7f) == 126 ? 4 : 10;
    *plen = len > h ? len - h : 0;
    return (const char *)f + h;
}

static char out[BODY_MAX];
static uint8_t *frame;          /* one ring entry's frame: ring_max_entry() bytes */
static size_t frame_cap;

/*
 * Append to O the messages of ROOM after SINCE, oldest first, at most
 * LIMIT; 1 when some after SINCE are no longer kept.
 */
static int put_history(struct strbuf *o, struct shm_segment *seg, const char *room, size_t len,
                       uint64_t since, uint64_t limit)
{
    struct ring *r = &seg->ring;
    if (frame == NULL) {
        frame_cap = ring_max_entry(r);
        frame = malloc(frame_cap);
        if (frame == NULL)
            return -1;
    }
    struct room_table *t = shm_rooms(seg);
    int idx = room_table_find(t, room, len);
    if (idx < 0)
        return since != 0 && since + 1 < ring_first_id(r);
    const struct room_entry *re = room_table_entry(t, (uint32_t)idx);
    /* Back to the first message after since, as a joiner's replay goes. */
    struct chat_chain_back back;
    chat_chain_walk_back(r, re->last_pos, re->last_id, room, len, 1, since, 0, UINT64_MAX,
                         &back);
    /* Lost along the way, or older ids from before a restart. */
    int gap = back.lost != 0 ||
              (back.first_reached && since != 0 && since + 1 < ring_first_id(r));
    /* The chain may not reach older messages of this name (api.h): say they may be missing. */
    if (!room_table_chain_complete(t, (uint32_t)idx, ring_tail(r)))
        gap = 1;
    uint64_t sent = 0, prev = RING_NO_POS;
    uint64_t deliverable = journal_deliverable(seg);    /* history_fsync always */
    for (uint64_t at = back.start; sent < limit;) {
        struct ring_entry e;
        int got = chat_chain_peek(r, at, prev, room, len, &e);
        if (got > 0 && e.id > deliverable)
            break;
        uint64_t q = at;
        ssize_t n = got > 0 ? ring_read(r, &q, &e, frame, frame_cap) : got;
        if (n == RING_LAPPED) {
            gap = 1;        /* overwritten while we read: say so, the caller pages again */
            break;
        }
        if (got == 0 || n < 0)
            break;          /* the chain ends here */
        size_t pl;
        const char *payload = frame_payload(frame, (size_t)n, &pl);
        size_t mark = o->len;
        if (sent > 0)
            strbuf_puts(o, ",");
        strbuf_put(o, payload, pl);
        if (o->overflow) {      /* a full answer ends early; the caller pages on */
            o->len = mark;
            o->overflow = 0;
            break;
        }
        sent++;
        prev = at;
        at = e.next_pos;
    }
    return gap;
}

static int serve_history(struct shm_segment *seg, const char *query, size_t qlen,
                         struct strbuf *o)
{
    size_t rl = 0, sl = 0, ll = 0;
    const char *room = query_value(query, qlen, "room", &rl);
    const char *since_s = query_value(query, qlen, "since", &sl);
    const char *limit_s = query_value(query, qlen, "limit", &ll);
    uint64_t since = 0, limit = HISTORY_DEFAULT;
    if (room == NULL || !chat_room_name_valid(room, rl) ||
        (since_s != NULL && !parse_u64(since_s, sl, &since)) ||
        (limit_s != NULL && (!parse_u64(limit_s, ll, &limit) || limit == 0)))
        return -400;
    if (limit > HISTORY_MAX)
        limit = HISTORY_MAX;
    strbuf_puts(o, "{\"room\":");
    strbuf_put_json(o, room, rl);
    strbuf_puts(o, ",\"messages\":[");
    /* Leave room for the tail of the object whatever the messages take. */
    o->cap -= 32;
    int gap = put_history(o, seg, room, rl, since, limit);
    o->cap += 32;
    if (gap < 0)
        return -500;
    strbuf_puts(o, gap ? "],\"gap\":true}" : "],\"gap\":false}");
    return 0;
}

static int serve_rooms(struct shm_segment *seg, struct strbuf *o)
{
    const struct room_table *t = shm_rooms(seg);
    strbuf_puts(o, "{\"rooms\":[");
    o->cap -= 8;
    int first = 1;
    for (uint32_t i = 0; i < t->used; i++) {
        const struct room_entry *re = room_table_entry(t, i);
        int online = room_table_online(t, i);
        if (re->name_len == 0 || (online == 0 && re->last_id == 0))
            continue;
        size_t mark = o->len;
        strbuf_puts(o, first ? "{\"room\":" : ",{\"room\":");
        strbuf_put_json(o, re->name, re->name_len);
        strbuf_puts(o, ",\"online\":");
        strbuf_put_u64(o, (uint64_t)(online > 0 ? online : 0));
        strbuf_puts(o, ",\"last_id\":");
        strbuf_put_u64(o, re->last_id);
        strbuf_puts(o, "}");
        if (o->overflow) {
            o->len = mark;
            o->overflow = 0;
            break;
        }
        first = 0;
    }
    o->cap += 8;
    strbuf_puts(o, "]}");
    return 0;
}

/* The nil UUID: API messages come from no connection. */
#define API_UID "00000000-0000-0000-0000-000000000000"

#define INPUT_MAX (4u * 1024u * 1024u)     /* the largest max_api_body */
#define TEXT_MAX  (1024u * 1024u)           /* the largest max_text */
static char input[INPUT_MAX];               /* a body, decoded in place */
static char event[TEXT_MAX * 6 + 4096];     /* its event body: text escaped, at worst \u00XX */

/* POST /api/publish. */
static int serve_publish(struct worker *w, const uint8_t *body, size_t len, struct strbuf *o)
{
    if (len > sizeof input)
        return -413;
    memcpy(input, body, len);
    struct json_field f[JSON_MAX_FIELDS];
    int n = json_parse_object(input, len, f, JSON_MAX_FIELDS);
    if (n < 0)
        return -400;
    const struct json_field *room = json_get(f, n, "room"), *text = json_get(f, n, "text");
    const struct json_field *nick = json_get(f, n, "nick");
    if (room == NULL || room->type != JSON_STRING || !chat_room_name_valid(room->val, room->val_len)
        || text == NULL || text->type != JSON_STRING || text->val_len == 0 ||
        text->val_len > w->cfg->max_text ||
        (nick != NULL && (nick->type != JSON_STRING || !chat_nick_valid(nick->val, nick->val_len))))
        return -400;
    struct chat_identity id;
    memset(&id, 0, sizeof id);
    memcpy(id.uid, API_UID, sizeof API_UID);
    const char *nk = nick != NULL ? nick->val : "system";
    size_t nl = nick != NULL ? nick->val_len : 6;
    memcpy(id.nick, nk, nl);
    id.nick_len = (uint8_t)nl;
    id.user = "api";
    id.user_len = 3;
    ssize_t bn = chat_proto_message_body(event, sizeof event, room->val, room->val_len, &id,
                                         text->val, text->val_len);
    if (bn < 0)
        return -413;
    int64_t mid = chat_publish(w, RING_KIND_MESSAGE, room->val, room->val_len, "message", event,
                               (size_t)bn);
    if (mid < 0)
        return mid == -EMSGSIZE ? -413 : mid == -EAGAIN ? -503 : -500;
    if (mid == 0) {
        /* Cluster mode: Redis gives the id when the message reaches the stream. */
        strbuf_puts(o, "{\"queued\":true}");
        return 0;
    }
    strbuf_puts(o, "{\"id\":");
    strbuf_put_u64(o, (uint64_t)mid);
    strbuf_puts(o, "}");
    return 0;
}

/* POST /api/disconnect: check the body, name the user. */
static int parse_disconnect(const uint8_t *body, size_t len, struct api_call *call)
{
    if (len > sizeof input)
        return -413;
    memcpy(input, body, len);
    struct json_field f[JSON_MAX_FIELDS];
    int n = json_parse_object(input, len, f, JSON_MAX_FIELDS);
    if (n < 0)
        return -400;
    const struct json_field *user = json_get(f, n, "user");
    if (user == NULL || user->type != JSON_STRING || user->val_len == 0 ||
        user->val_len > KICK_USER_MAX)
        return -400;
    call->user = user->val;
    call->user_len = user->val_len;
    return API_DISCONNECT;
}

int api_disconnect_answer(uint32_t closed, int complete, struct http_response *resp)
{
    struct strbuf o;
    strbuf_init(&o, out, sizeof out);
    strbuf_puts(&o, "{\"closed\":");
    strbuf_put_u64(&o, closed);
    if (!complete)
        strbuf_puts(&o, ",\"complete\":false");
    strbuf_puts(&o, "}");
    ssize_t n = strbuf_result(&o);
    if (n < 0)
        return -500;
    http_response_init(resp);
    resp->status = 200;
    resp->ctype = "application/json";
    resp->body = out;
    resp->length = (size_t)n;
    return 0;
}

int api_serve(struct worker *w, const struct http_request *req, const uint8_t peer[16],
              const char *path, size_t path_len, const char *query, size_t query_len,
              const uint8_t *body, size_t body_len, struct http_response *resp,
              struct api_call *call)
{
    const struct config *cfg = w->cfg;
    struct shm_segment *seg = w->ctx.seg;
    if (cfg->api_key_len == 0)
        return -404;
    if (!cidr_match(&cfg->api_allow, peer))
        return -403;
    if (!bearer_ok(cfg, req))
        return -401;
    int get = http_slice_ieq(req->method, req->method_len, "GET");
    int post = http_slice_ieq(req->method, req->method_len, "POST");
    if (!post && body_len > 0)
        return -400;
    struct strbuf o;
    strbuf_init(&o, out, sizeof out);
    int rc;
    if (path_len == 10 && memcmp(path, "/api/rooms", 10) == 0)
        rc = get ? serve_rooms(seg, &o) : -405;
    else if (path_len == 12 && memcmp(path, "/api/history", 12) == 0)
        rc = get ? serve_history(seg, query, query_len, &o) : -405;
    else if (path_len == 12 && memcmp(path, "/api/publish", 12) == 0)
        rc = post ? serve_publish(w, body, body_len, &o) : -405;
    else if (path_len == 15 && memcmp(path, "/api/disconnect", 15) == 0)
        return post ? parse_disconnect(body, body_len, call) : -405;
    else
        return -404;
    if (rc < 0)
        return rc;
    ssize_t n = strbuf_result(&o);
    if (n < 0)
        return -500;
    http_response_init(resp);
    resp->status = 200;
    resp->ctype = "application/json";
    resp->body = out;
    resp->length = (size_t)n;
    return 0;
}

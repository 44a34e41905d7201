/*
 * fuzz_chat_proto: libFuzzer target for server/chat_proto.c, the three
 * places where client bytes enter the chat protocol.
 *
 *  - A message frame's payload through chat_input_parse(): the result is 0
 *    or one of its two errors, the value lies inside the input or the
 *    scratch buffer, and whatever text comes out, the message event built
 *    from it parses back as one strict JSON object of seven fields.
 *  - The same bytes as a /chat query string through chat_query_parse(): a
 *    nick it accepts passes chat_nick_valid(), a refused one has length 0.
 *  - The same bytes as a nick: if chat_nick_valid() accepts them, the
 *    welcome and nick events built with it parse back with the nick intact.
 * Every builder writes into an exact-size heap buffer (ASan catches one
 * byte too many) after being asked for -ENOSPC one byte short.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chat_proto.h"
#include "json.h"

#define CHECK(cond) do { if (!(cond)) abort(); } while (0)

static const struct chat_identity *identity(const char *nick, size_t len)
{
    static struct chat_identity id;
    memcpy(id.uid, "0f0e0d0c-0b0a-4908-8706-050403020100", 37);
    memcpy(id.nick, nick, len);
    id.nick_len = (uint8_t)len;
    return &id;
}

/* Parse an event back; the number of fields (or < 0). */
static int fields_of(const char *buf, size_t n, struct json_field *f)
{
    char *copy = malloc(n ? n : 1);
    CHECK(copy != NULL);
    memcpy(copy, buf, n);
    int nf = json_parse_object(copy, n, f, JSON_MAX_FIELDS);
    free(copy);
    return nf;
}

static void message_event(const char *text, size_t len)
{
    const struct chat_identity *id = identity("n", 1);
    size_t cap = len * 6 + 256;
    char *big = malloc(cap);
    CHECK(big != NULL);
    ssize_t n = chat_proto_message_body(big, cap, "r", 1, id, text, len);
    CHECK(n > 0);
    /* One byte short fails cleanly; the exact size succeeds byte for byte. */
    char *exact = malloc((size_t)n);
    CHECK(exact != NULL);
    CHECK(chat_proto_message_body(exact, (size_t)n - 1, "r", 1, id, text, len) == -ENOSPC);
    CHECK(chat_proto_message_body(exact, (size_t)n, "r", 1, id, text, len) == n);
    CHECK(memcmp(exact, big, (size_t)n) == 0);
    size_t flen = chat_proto_event_frame_len("message", 1, 2, (size_t)n);
    uint8_t *frame = malloc(flen);
    CHECK(frame != NULL);
    CHECK(chat_proto_event_frame(frame, flen, "message", 1, 2, exact, (size_t)n) ==
          (ssize_t)flen);
    size_t h = flen - ((size_t)n + strlen("{\"type\":\"message\",\"id\":1,\"ts\":2"));
    struct json_field f[JSON_MAX_FIELDS];
    CHECK(fields_of((const char *)frame + h, flen - h, f) == 7);
    free(frame);
    free(exact);
    free(big);
}

static void as_input(const uint8_t *data, size_t size)
{
    char *in = malloc(size ? size : 1);
    char *scratch = malloc(size ? size : 1);
    CHECK(in != NULL && scratch != NULL);
    memcpy(in, data, size);
    struct chat_input ci;
    int rc = chat_input_parse(in, size, scratch, size, &ci);
    CHECK(rc == 0 || rc == CHAT_INPUT_BAD_TYPE || rc == CHAT_INPUT_MISSING);
    CHECK(memcmp(in, data, size) == 0);         /* the input is never modified */
    if (rc == 0) {
        int in_data = ci.value >= in && ci.value + ci.value_len <= in + size;
        int in_scratch = ci.value >= scratch && ci.value + ci.value_len <= scratch + size;
        CHECK(in_data || in_scratch);
        CHECK(ci.kind == CHAT_INPUT_MESSAGE || ci.kind == CHAT_INPUT_NICK);
        message_event(ci.value, ci.value_len);
    } else {
        CHECK(chat_input_error_code(rc)[0] != '\0');
    }
    free(scratch);
    free(in);
}

static void as_query(const uint8_t *data, size_t size)
{
    char *q = malloc(size ? size : 1);
    CHECK(q != NULL);
    memcpy(q, data, size);
    struct chat_query cq;
    memset(&cq, 0, sizeof cq);
    chat_query_parse(q, size, &cq);
    if (cq.nick_ok)
        CHECK(cq.nick_present && chat_nick_valid(cq.nick, cq.nick_len));
    else
        CHECK(cq.nick_len == 0);
    if (!cq.since_ok)
        CHECK(cq.since == 0);
    free(q);
}

static void as_nick(const uint8_t *data, size_t size)
{
    if (size > CHAT_NICK_MAX_BYTES)
        size = CHAT_NICK_MAX_BYTES;
    char *nick = malloc(size ? size : 1);
    CHECK(nick != NULL);
    memcpy(nick, data, size);
    if (chat_nick_valid(nick, size)) {
        const struct chat_identity *id = identity(nick, size);
        char buf[2048];
        struct json_field f[JSON_MAX_FIELDS];
        ssize_t n = chat_proto_welcome(buf, sizeof buf, id, "room", 4, 3, 9);
        CHECK(n > 0 && fields_of(buf, (size_t)n, f) == 6);
        n = chat_proto_presence_body(buf, sizeof buf, "room", 4, id, nick, size, 2);
        CHECK(n > 0);
        /* "{" + the body is an object of room, uid, nick, old, online. */
        char obj[2100] = "{\"t\":0";
        memcpy(obj + 6, buf, (size_t)n);
        CHECK(fields_of(obj, (size_t)n + 6, f) == 6);
    }
    free(nick);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    as_input(data, size);
    as_query(data, size);
    as_nick(data, size);
    return 0;
}

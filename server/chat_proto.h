/*
 * chat_proto: the chat wire protocol as pure functions (DESIGN.md "Chat
 * protocol"): building every server event as JSON text, framing a
 * published event, parsing client input and the /chat query string,
 * validating room names and nicks. No I/O, no clock, no allocation: Check
 * tests drive it directly; chat.c owns the lock, the ring and the time.
 */
#ifndef WSM_CHAT_PROTO_H
#define WSM_CHAT_PROTO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "result.h"

#define CHAT_NICK_MAX_CHARS 32
#define CHAT_NICK_MAX_BYTES (CHAT_NICK_MAX_CHARS * 4)

struct chat_identity {
    char    uid[37];                        /* uuid4, NUL-terminated */
    char    nick[CHAT_NICK_MAX_BYTES + 1];  /* valid UTF-8, not NUL-terminated */
    uint8_t nick_len;
    uint8_t user_len;                       /* 0: a guest (no "user" in its events) */
    const char *user;                       /* an authenticated member's token sub */
};

/* [A-Za-z0-9_-]{1,32} */
int chat_room_name_valid(const char *name, size_t len);
/*
 * 1-32 code points of valid UTF-8: no control, invisible or bidi-control
 * character anywhere, no space at either end.
 */
int chat_nick_valid(const char *nick, size_t len);

/* Format 16 random bytes as a version 4 UUID (RFC 9562 §5.4). */
void chat_uuid4(const uint8_t rnd[16], char out[37]);
/* "guest-" + the first 4 hex digits of uid. Returns the length (10). */
size_t chat_guest_nick(const char *uid, char *out);

struct chat_query {
    char     nick[CHAT_NICK_MAX_BYTES + 1];  /* percent-decoded */
    size_t   nick_len;                       /* 0 unless nick_ok */
    int      nick_present, nick_ok;
    int      since_present, since_ok;
    uint64_t since;
    int      token_present;
    const char *token;                       /* into the query, as sent */
    size_t   token_len;
};

/* Parse "nick=..&since=..&token=.." (application/x-www-form-urlencoded; a token's
 * base64url and dots need no decoding, so it is taken as sent). */
void chat_query_parse(const char *q, size_t len, struct chat_query *out);

enum chat_input_kind { CHAT_INPUT_MESSAGE, CHAT_INPUT_NICK };
enum chat_input_error { CHAT_INPUT_BAD_TYPE = -1, CHAT_INPUT_MISSING = -2 };

struct chat_input {
    int kind;
    const char *value;      /* message text or new nick, in the caller's buffer */
    size_t value_len;
};

/*
 * Classify a client text message: a JSON object {"type":"message","text":..}
 * or {"type":"nick","nick":..}, or else the whole text as a message. JSON is
 * decoded in SCRATCH (cap bytes; text longer than that is taken as plain
 * text), so DATA is never modified. in->value points into DATA or SCRATCH.
 * Returns 0 or a negative enum chat_input_error.
 */
int chat_input_parse(const char *data, size_t len, char *scratch, size_t cap,
                     struct chat_input *in);
const char *chat_input_error_code(int err);
const char *chat_input_error_reason(int err);

/*
 * Event payloads (JSON text, no frame header) into buf of cap bytes; each
 * returns the length, or -ENOSPC when cap is too small.
 */
ssize_t chat_proto_welcome(char *buf, size_t cap, const struct chat_identity *id,
                           const char *room, size_t room_len, int online, uint64_t last_id);
ssize_t chat_proto_error(char *buf, size_t cap, const char *code, const char *reason);
ssize_t chat_proto_simple(char *buf, size_t cap, const char *type);

/*
 * A complete text frame (header included) of
 * {"type":"presence","room":ROOM,"online":N}: a large room's member count,
 * sent instead of individual join and leave events.
 */
ssize_t chat_proto_presence_frame(uint8_t *buf, size_t cap, const char *room, size_t room_len,
                                  int online);

/* A complete text frame (header included) of {"type":"gap",...}. */
ssize_t chat_proto_gap(uint8_t *buf, size_t cap, const char *room, size_t room_len,
                       uint64_t from, uint64_t to);

/*
 * The part of a published event after its type, id and ts: for a message
 * `,"room":..,"uid":..,"nick":..,"text":..}`; for presence (join, leave,
 * nick) `,"room":..,"uid":..,"nick":..[,"old":..],"online":N}`.
 */
ssize_t chat_proto_message_body(char *buf, size_t cap, const char *room, size_t room_len,
                                const struct chat_identity *id, const char *text, size_t len);
ssize_t chat_proto_presence_body(char *buf, size_t cap, const char *room, size_t room_len,
                                 const struct chat_identity *id, const char *old_nick,
                                 size_t old_len, int online);

/* Bytes chat_proto_event_frame() writes for these arguments. */
size_t chat_proto_event_frame_len(const char *type, uint64_t id, int64_t ts, size_t body_len);

/*
 * A published event as the one text frame the ring stores and every member
 * receives: `{"type":TYPE,"id":ID,"ts":TS` + BODY (a *_body() result, which
 * closes the object). TYPE is a literal of ours (never escaped). Length,
 * -ENOSPC when it does not fit CAP, -EINVAL for an empty BODY.
 */
ssize_t chat_proto_event_frame(uint8_t *dst, size_t cap, const char *type, uint64_t id,
                               int64_t ts, const char *body, size_t body_len);

#endif

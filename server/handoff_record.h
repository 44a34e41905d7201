/*
 * handoff_record: the wire form of a WebSocket handed over at reload, and
 * of the adopter's answer. Pure: no I/O, no allocation, no logging.
 *
 * A connection travels as one SOCK_SEQPACKET datagram (this record) with
 * SCM_RIGHTS carrying its socket and, when it has any bytes in flight, a
 * sealed memfd with the body: the unparsed input tail, then the data of
 * the open message reassembled so far, then the queued output (a frame's
 * unsent rest first, then whole frames), each section as long as the
 * record says. The record holds what the frame decoder knows (a data frame
 * under way: bytes left, FIN, mask key and offset; the open message:
 * opcode and announced length), the message's age, the client address and
 * the endpoint's own bytes, and, when the sender keeps an access log, a
 * trailer with the session so far (its start, bytes, close code, path and
 * user), so that its one line is written by whoever ends it.
 *
 * Every multi-byte field is little-endian at a fixed offset; the version
 * changes with any change of layout or meaning. The decoder takes the
 * record as untrusted: it checks the size, the magic and the version,
 * every field against its range and the adopter's limits, and the
 * combinations the decoder can actually be in; handoff_body_check() then
 * checks the body against the record (its length, and that the text
 * reassembled so far leaves the UTF-8 validator in the state recorded).
 *
 * An answer (ACK: adopted; NACK: not adopted, the sender still owns the
 * connection) names the sender's pid, sequence number and connection id.
 */
#ifndef WSM_HANDOFF_RECORD_H
#define WSM_HANDOFF_RECORD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "result.h"
#include "ws_frame.h"

#define HANDOFF_MAGIC        0x35687377u    /* "wsh5" */
#define HANDOFF_VERSION      1u
#define HANDOFF_EP_MAX       512            /* endpoint bytes (ws_conn.h WS_HANDOFF_MAX) */
#define HANDOFF_ANSWER_LEN   24             /* an ACK/NACK datagram */
#define HANDOFF_CONN_FIXED   100            /* a connection record without its endpoint bytes */
#define HANDOFF_LOG_PATH_MAX 48             /* access_log.h ACCESS_SESSION_PATH_MAX */
#define HANDOFF_LOG_USER_MAX 64             /* access_log.h ACCESS_SESSION_USER_MAX */
#define HANDOFF_LOG_FIXED    28             /* the log trailer without its path and user */
#define HANDOFF_CONN_MAX     (HANDOFF_CONN_FIXED + HANDOFF_EP_MAX + HANDOFF_LOG_FIXED + \
                              HANDOFF_LOG_PATH_MAX + HANDOFF_LOG_USER_MAX)
#define HANDOFF_VIA_MAX      2              /* enum conn_via's last value */

enum handoff_type { HANDOFF_CONN = 1, HANDOFF_ACK = 2, HANDOFF_NACK = 3 };

/* Decoding failures (negative). */
enum handoff_error {
    HANDOFF_E_SHORT = 1,    /* truncated: fewer bytes than the record needs */
    HANDOFF_E_MAGIC,        /* not a hand-over record */
    HANDOFF_E_VERSION,      /* another layout */
    HANDOFF_E_TYPE,         /* unknown or unexpected message type */
    HANDOFF_E_FIELD,        /* a field out of its range, or trailing bytes */
    HANDOFF_E_STATE,        /* fields no decoder state can combine */
    HANDOFF_E_LIMIT,        /* well formed, but over the adopter's limits */
    HANDOFF_E_BODY          /* the body does not match the record */
};

/* Who sent a message and about which connection: what an answer echoes. */
struct handoff_id {
    uint32_t pid;           /* the sender's */
    uint32_t seq;           /* the sender's number for this hand-over */
    uint32_t conn;          /* the connection's id in the sender's table */
    uint16_t slot;          /* the sender's shm slot: where answers go */
    uint16_t endpoint;      /* endpoints_index(); 0 in answers */
};

/* The session so far, for its one access log line (when the sender keeps one). */
struct handoff_log {
    uint8_t  present;
    uint8_t  path_len, user_len;
    uint16_t code;
    uint64_t start_ms, bytes_in, bytes_out;
    char     path[HANDOFF_LOG_PATH_MAX];
    char     user[HANDOFF_LOG_USER_MAX];
};

struct handoff_conn {
    struct handoff_id id;
    uint8_t  peer[16];
    uint8_t  via;
    struct ws_parser parser;    /* decoded: max_message and server_side from the limits */
    uint8_t  msg_timed;         /* the open message's clock runs (data reassembled) */
    uint32_t msg_age_s;         /* its age then, seconds */
    uint64_t in_len;            /* body sections, in this order */
    uint64_t reasm_len;
    uint64_t out_len;
    uint32_t ep_len;
    uint8_t  ep[HANDOFF_EP_MAX];
    struct handoff_log log;
};

/* The adopter's bounds (its configuration). */
struct handoff_limits {
    uint64_t max_message;       /* announced length of a message; 0: none */
    uint64_t max_in;            /* unparsed input tail */
    uint64_t max_out;           /* queued output */
    uint32_t max_msg_age_s;
    uint32_t nendpoints;        /* endpoint index below this */
    uint32_t nslots;            /* sender slot below this */
};

/*
 * Encode H into BUF[0..cap). Returns the record's length, or 0 when CAP is
 * too small (HANDOFF_CONN_MAX always suffices) or H->ep_len is too large.
 * Fields of the parser that mean nothing between frames are written as 0.
 */
size_t handoff_conn_encode(const struct handoff_conn *h, uint8_t *buf, size_t cap);

/*
 * The message type of BUF[0..len) after checking its common head (size,
 * magic, version): HANDOFF_CONN/ACK/NACK, or -HANDOFF_E_SHORT/MAGIC/
 * VERSION/TYPE. With a valid head, *ID (may be NULL) gets the sender's
 * identity even when the rest turns out invalid, so that it can be
 * answered.
 */
int handoff_peek(const uint8_t *buf, size_t len, struct handoff_id *id);

/* Decode and validate a connection record. 0, or a -HANDOFF_E_* code. */
int handoff_conn_decode(const uint8_t *buf, size_t len, const struct handoff_limits *lim,
                        struct handoff_conn *h);

/*
 * The body BODY[0..len) against H (decoded): its length is the sum of the
 * sections, and an open text message's reassembled bytes take the UTF-8
 * validator from its start to H's state. 0 or -HANDOFF_E_BODY.
 */
int handoff_body_check(const struct handoff_conn *h, const uint8_t *body, size_t len);

/* An answer of TYPE (ACK/NACK) about ID into BUF; returns HANDOFF_ANSWER_LEN. */
size_t handoff_answer_encode(int type, const struct handoff_id *id,
                             uint8_t buf[HANDOFF_ANSWER_LEN]);

/* Decode an answer: its type (ACK/NACK) with *ID, or a -HANDOFF_E_* code. */
int handoff_answer_decode(const uint8_t *buf, size_t len, struct handoff_id *id);

#endif

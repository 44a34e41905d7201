/*
 * resp: the Redis protocol (RESP2 and RESP3) for the cluster bridge. Pure:
 * no I/O, no allocation, no logging.
 *
 * Replies become a token stream, one event per resp_parse() call: BEGIN for
 * an aggregate header (array, map, set, push, attribute), VALUE for a
 * scalar or a piece of a bulk. A stream rather than a tree: the bridge acts
 * on each reply as it arrives, and a tree of unknown size needs allocation.
 * Each event says how many aggregates it completes (`closes`) and whether
 * it ends a top-level reply (`reply_end`, with its byte count): what the
 * bridge needs to match replies to its pipelined commands, in order. Lines
 * and bulks up to whole_bulk bytes arrive as one slice of the caller's
 * buffer (zero copy); longer bulks stream in pieces as their bytes arrive,
 * so nobody buffers max_bulk bytes. Values, errors and bytes consumed never
 * depend on the TCP split; only where the pieces of a long bulk fall does.
 * Not supported: RESP3 streamed strings and aggregates ($?, *?), which
 * Redis does not send (they fail as RESP_ERR_LENGTH).
 *
 * Commands are arrays of bulk strings, appended whole into a strbuf so many
 * can be pipelined into one write.
 */
#ifndef WSM_RESP_H
#define WSM_RESP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "result.h"
#include "strbuf.h"

/* Value types, named by their type byte on the wire. */
enum resp_type {
    RESP_SIMPLE = '+', RESP_ERROR = '-', RESP_INTEGER = ':', RESP_BULK = '$', RESP_ARRAY = '*',
    RESP_NULL = '_', RESP_BOOLEAN = '#', RESP_DOUBLE = ',', RESP_BIGNUM = '(',
    RESP_BULK_ERROR = '!', RESP_VERBATIM = '=', RESP_MAP = '%', RESP_SET = '~',
    RESP_ATTRIBUTE = '|', RESP_PUSH = '>'
};

/* Protocol errors: negative results of resp_parse(), never "need more". */
enum resp_error {
    RESP_ERR_TYPE     = -1,   /* unknown type byte */
    RESP_ERR_CRLF     = -2,   /* CR not followed by LF, bare LF, no CRLF after a bulk */
    RESP_ERR_LENGTH   = -3,   /* length or count empty, non-digit, leading zero */
    RESP_ERR_NEGATIVE = -4,   /* negative length other than the RESP2 nulls $-1, *-1 */
    RESP_ERR_OVERFLOW = -5,   /* integer or length beyond 64 bits */
    RESP_ERR_SYNTAX   = -6,   /* bad integer, boolean, double, big number, null, verbatim */
    RESP_ERR_LINE     = -7,   /* simple line longer than max_line */
    RESP_ERR_BULK     = -8,   /* bulk payload longer than max_bulk */
    RESP_ERR_COUNT    = -9,   /* aggregate announces more than max_elements */
    RESP_ERR_DEPTH    = -10   /* aggregates nested deeper than max_depth */
};

#define RESP_DEPTH_MAX      16
#define RESP_LENGTH_MAX_LEN 20          /* longest length text: 19 digits, or "-1" */
#define RESP_HEADER_MAX     (1 + RESP_LENGTH_MAX_LEN + 2)

struct resp_limits {
    uint64_t max_bulk;      /* longest $ ! = payload (default 512 MiB) */
    uint64_t max_elements;  /* largest count of one aggregate, map: pairs (1 Mi) */
    size_t   max_line;      /* longest simple line, w/o type byte, CRLF (64 KiB) */
    size_t   whole_bulk;    /* bulks up to this long arrive in one event (64 KiB) */
    unsigned max_depth;     /* 1..RESP_DEPTH_MAX open aggregates (default 16) */
    int      skip_attributes;   /* 1: attribute tokens give RESP_EV_NONE */
};

void resp_limits_default(struct resp_limits *lim);     /* the defaults above */
/* Least receive buffer that holds any token resp_parse() waits for whole. */
size_t resp_buffer_min(const struct resp_limits *lim);

enum resp_event_kind {
    RESP_EV_NONE = 0,   /* bytes consumed, nothing to act on (skipped attribute) */
    RESP_EV_VALUE,      /* a scalar, or a piece of a bulk payload */
    RESP_EV_BEGIN };    /* an aggregate header; its elements follow */

struct resp_event {
    int         kind;       /* enum resp_event_kind */
    int         type;       /* enum resp_type; the three nulls are RESP_NULL */
    int         wire;       /* the type byte as sent: '$', '*' or '_' for a null */
    const char *data;       /* VALUE: line text or payload piece, in the caller's buffer */
    size_t      len;
    uint64_t    offset;     /* VALUE: where data starts within the payload */
    uint64_t    total;      /* VALUE: whole payload length (line length for lines) */
    int         last;       /* VALUE: the value is complete with this piece */
    int64_t     integer;    /* INTEGER value; BOOLEAN 1/0; BEGIN: announced count */
    unsigned    depth;      /* aggregates open around this token (0: top level) */
    unsigned    closes;     /* aggregates this token completes (an empty one: itself) */
    int         in_attr;    /* the token belongs to an attribute */
    int         top_type;   /* type of the top-level value being parsed */
    int         reply_end;  /* this token completes one top-level reply */
    uint64_t    reply_len;  /* reply_end: bytes of that reply, attributes included */
};

struct resp_parser {
    struct resp_limits lim;
    /* open aggregates: elements still to come (a map's pairs count twice) */
    struct resp_frame { uint64_t left; uint8_t type; } stack[RESP_DEPTH_MAX];
    unsigned depth, attrs;  /* open aggregates; how many of them are attributes */
    int      top_type;
    int      err;           /* sticky: once failed, always failed */
    size_t   scanned;       /* bytes of the pending line already searched for CRLF */
    uint64_t bulk_left, bulk_total;     /* streamed bulk: bytes to come, of all */
    uint8_t  bulk_type, bulk_open;
    uint64_t reply_bytes;   /* consumed so far by the current top-level reply */
};

/* LIM NULL: the defaults. -EINVAL when max_depth is outside 1..RESP_DEPTH_MAX. */
int resp_parser_init(struct resp_parser *p, const struct resp_limits *lim);

/*
 * Parse the next token of buf[0..len). Returns
 *   > 0  bytes consumed; *ev describes them (kind RESP_EV_NONE: nothing to do),
 *   0    need more input: nothing consumed; keep the bytes, append more and
 *        call again with the same start (the parser remembers how far it
 *        searched for CRLF, so a long line arriving in pieces is scanned once),
 *   < 0  enum resp_error; the stream is unusable and every later call
 *        returns the same error.
 * A line is consumed only when whole, as is a bulk up to whole_bulk bytes;
 * so the caller needs resp_buffer_min() bytes of buffer. ev->data points into
 * buf and is valid while buf is.
 */
ssize_t resp_parse(struct resp_parser *p, const char *buf, size_t len,
                   struct resp_event *ev);

/*
 * Consume tokens up to the end of one top-level reply, for replies whose
 * content the caller ignores (+OK). Returns bytes consumed (> 0) with
 * *done = 1 when a reply ended there (of type *type: RESP_PUSH is an
 * out-of-band message) or 0 when the input ran out inside it; 0 when
 * nothing could be consumed; or an enum resp_error.
 */
ssize_t resp_skip_reply(struct resp_parser *p, const char *buf, size_t len,
                        int *done, int *type);

/* 1 between replies: no aggregate, bulk or attribute open. */
int resp_parser_idle(const struct resp_parser *p);

size_t resp_command_len(size_t argc, const char *const *argv, const size_t *lens);
/*
 * Append the command argv[0..argc) (lens[i] bytes each, binary-safe; LENS
 * NULL: strlen) as "*argc" and one "$len" bulk per argument. All or
 * nothing: returns the bytes appended, or -ENOSPC leaving B untouched (not
 * marked overflowed, so the caller can send what B holds and retry), or
 * -EINVAL for argc 0. resp_command_len(): the bytes it writes.
 */
ssize_t resp_command(struct strbuf *b, size_t argc, const char *const *argv,
                     const size_t *lens);

#endif

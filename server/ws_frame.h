/*
 * ws_frame: RFC 6455 §5 frame codec. Pure: no I/O, no allocation, no logging.
 *
 * Decoding is incremental over any TCP split. ws_parse() consumes a frame
 * header only when all of it (2..14 bytes) is in the buffer, delivers data
 * payload in chunks as it arrives (unmasked in place, §5.3), and delivers a
 * control frame (§5.5) only when the whole frame is buffered, so the caller
 * keeps at most one partial header or control frame between reads. Message
 * state (§5.4 fragmentation, text UTF-8 across fragments, max_message) lives
 * in struct ws_parser. Errors are negative close codes (§7.4.1).
 * Encoding writes unmasked server headers (minimal length form) into the
 * caller's headroom so one buffer holds a whole frame for many sockets.
 */
#ifndef WSM_WS_FRAME_H
#define WSM_WS_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum ws_opcode {
    WS_OP_CONT = 0x0, WS_OP_TEXT = 0x1, WS_OP_BINARY = 0x2,
    WS_OP_CLOSE = 0x8, WS_OP_PING = 0x9, WS_OP_PONG = 0xA
};

enum ws_close_code {
    WS_CLOSE_NORMAL = 1000, WS_CLOSE_GOING_AWAY = 1001,
    WS_CLOSE_PROTOCOL_ERROR = 1002, WS_CLOSE_UNSUPPORTED = 1003,
    WS_CLOSE_NO_STATUS = 1005, WS_CLOSE_ABNORMAL = 1006,
    WS_CLOSE_INVALID_DATA = 1007, WS_CLOSE_POLICY = 1008,
    WS_CLOSE_TOO_BIG = 1009, WS_CLOSE_MANDATORY_EXT = 1010,
    WS_CLOSE_INTERNAL = 1011, WS_CLOSE_SERVICE_RESTART = 1012,
    WS_CLOSE_TRY_AGAIN = 1013
};

#define WS_HEADER_MAX     14   /* 2 + 8 (64-bit length) + 4 (mask key) */
#define WS_SERVER_HEADER_MAX 10
#define WS_CONTROL_MAX    125

enum ws_event_type {
    WS_EV_NONE = 0,     /* bytes consumed (a header), nothing to act on */
    WS_EV_DATA,         /* a chunk of a text/binary message */
    WS_EV_CONTROL       /* a complete ping, pong or close frame */
};

struct ws_event {
    int      type;      /* enum ws_event_type */
    int      opcode;    /* DATA: WS_OP_TEXT/BINARY of the message; CONTROL: its opcode */
    uint8_t *data;      /* into the caller's buffer, already unmasked */
    size_t   len;
    int      msg_end;   /* DATA: this chunk completes the message */
};

struct ws_parser {
    uint64_t max_message;   /* 0 = unlimited */
    uint64_t frame_left;    /* payload bytes of the current data frame not yet delivered */
    uint64_t msg_len;       /* announced payload bytes of the open message */
    uint32_t utf8_state;    /* carried across fragments of a text message */
    uint8_t  mask[4];
    uint8_t  mask_off;      /* position in the key for the next payload byte */
    uint8_t  in_frame;      /* between a data frame's header and its last byte */
    uint8_t  frame_fin;     /* FIN bit of the current data frame */
    uint8_t  frame_masked;
    uint8_t  msg_opcode;    /* 0 = no message open, else WS_OP_TEXT/BINARY */
    uint8_t  server_side;   /* 1: peer frames must be masked; 0: must not be */
};

void ws_parser_init(struct ws_parser *p, uint64_t max_message, int server_side);

/*
 * Parse buf[0..len). Returns
 *   > 0  bytes consumed; ev->type tells whether there is an event
 *        (WS_EV_NONE when only a header was consumed),
 *   0    need more input: nothing consumed, keep the bytes, call again later,
 *   < 0  minus the close code to fail the connection with:
 *        -WS_CLOSE_PROTOCOL_ERROR, -WS_CLOSE_INVALID_DATA, -WS_CLOSE_TOO_BIG.
 * Payload bytes are unmasked in place, so buf must be writable. ev->data
 * points into buf and is valid until buf changes. Text is UTF-8 validated as
 * it arrives: the call that sees an invalid byte returns -1007 at once.
 * max_message is checked against each frame's announced length, so an
 * oversize message fails at the header (-1009) before its payload arrives.
 */
ssize_t ws_parse(struct ws_parser *p, uint8_t *buf, size_t len, struct ws_event *ev);

/*
 * Validate a close frame's payload (§5.5.1, §7.4). Returns 0 with *code
 * (WS_CLOSE_NO_STATUS for an empty payload) and the reason slice, or
 * -WS_CLOSE_PROTOCOL_ERROR (1-byte payload, code not allowed on the wire) or
 * -WS_CLOSE_INVALID_DATA (reason not UTF-8).
 */
int ws_close_parse(const uint8_t *payload, size_t len, uint16_t *code,
                   const uint8_t **reason, size_t *reason_len);

/* 1 if CODE may appear in a close frame: 1000-1003, 1007-1014, 3000-4999. */
int ws_close_code_valid(unsigned code);

/* Header size of an unmasked frame carrying LEN payload bytes: 2, 4 or 10. */
size_t ws_frame_header_size(uint64_t len);

/*
 * Total length (header + payload) of the unmasked frame whose first bytes
 * are HDR[0..avail): what a buffer of frames the server built itself (the
 * room stream) needs to step from one frame to the next. Returns the
 * length, or 0 when avail is too short to know it yet.
 */
uint64_t ws_frame_length(const uint8_t *hdr, size_t avail);

/*
 * Write an unmasked header (minimal length encoding, network byte order) at
 * dst, which has room for ws_frame_header_size(len) bytes. Returns its size.
 */
size_t ws_frame_header_encode(uint8_t *dst, int opcode, int fin, uint64_t len);

/* Client side (tests, bench): masked header, ws_frame_header_size(len) + 4 bytes. */
size_t ws_frame_header_encode_masked(uint8_t *dst, int opcode, int fin,
                                     uint64_t len, const uint8_t key[4]);

/* XOR data with key starting at key position OFFSET (0..3); word at a time. */
void ws_mask(uint8_t *data, size_t len, const uint8_t key[4], size_t offset);

/*
 * Close payload: 2-byte code then reason truncated to fit 125 bytes on a
 * UTF-8 boundary. dst has room for WS_CONTROL_MAX bytes. Returns its length.
 */
size_t ws_close_payload_encode(uint8_t *dst, uint16_t code, const char *reason);

#endif

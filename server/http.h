/*
 * http: HTTP/1.1 request head parser (RFC 9112 §3, §5) and response heads.
 * Pure, picohttpparser-shaped: no I/O, no allocation; header name/value
 * slices point into the caller's buffer.
 *
 * The caller accumulates bytes and calls http_parse_request() with the whole
 * buffer and the length it had at the previous call, so the search for the
 * blank line that ends the head resumes where it stopped instead of
 * re-scanning (any TCP split, including one byte at a time, stays linear).
 */
#ifndef WSM_HTTP_H
#define WSM_HTTP_H

#include <stddef.h>
#include <sys/types.h>

#include "result.h"

#define HTTP_MAX_HEADERS 100

/* Negative results, each mapped to one HTTP status by http_error_status(). */
enum http_error {
    HTTP_ERR_BAD_REQUEST   = -1,    /* 400: malformed line, bad token, bare LF... */
    HTTP_ERR_HEAD_TOO_BIG  = -2,    /* 431: head longer than max_head */
    HTTP_ERR_TOO_MANY_HDRS = -3,    /* 431: more than HTTP_MAX_HEADERS lines */
    HTTP_ERR_URI_TOO_LONG  = -4,    /* 414: request-target alone exceeds max_head */
    HTTP_ERR_VERSION       = -5     /* 505: not HTTP/1.x */
};

struct http_header {
    const char *name;  size_t name_len;
    const char *value; size_t value_len;    /* surrounding OWS trimmed */
};

struct http_request {
    const char *method; size_t method_len;
    const char *target; size_t target_len;  /* raw request-target, e.g. "/chat?since=4" */
    int minor_version;                      /* HTTP/1.<minor> */
    size_t num_headers;
    struct http_header headers[HTTP_MAX_HEADERS];
};

/*
 * Parse buf[0..len), which holds the request head received so far; prev_len
 * is len at the previous call (0 the first time). Returns the head's length
 * (> 0, through the blank line) once complete, 0 if more bytes are needed,
 * or a negative enum http_error. Fails with HTTP_ERR_HEAD_TOO_BIG as soon as
 * len exceeds max_head without a complete head. Bytes after the head (a
 * request body, or WebSocket frames pipelined after an Upgrade) are not
 * touched: they start at buf + return value.
 */
ssize_t http_parse_request(const char *buf, size_t len, size_t prev_len,
                           size_t max_head, struct http_request *req);

/* The status for a negative http_parse_request() result. */
int http_error_status(ssize_t err);

/* Header value by case-insensitive name, or NULL (first occurrence). */
const struct http_header *http_find_header(const struct http_request *req,
                                           const char *name);

/* Count of headers named NAME (case-insensitive). */
size_t http_count_header(const struct http_request *req, const char *name);

/*
 * 1 if the comma-separated VALUE lists TOKEN (case-insensitive, OWS around
 * elements ignored), e.g. "keep-alive, Upgrade" has "upgrade".
 */
int http_has_token(const char *value, size_t value_len, const char *token);

/* Case-insensitive compare of a slice with a NUL-terminated literal. */
int http_slice_ieq(const char *s, size_t len, const char *lit);

/* The reason phrase for STATUS ("Not Found"), or "Unknown". */
const char *http_reason(int status);

#define HTTP_RESPONSE_HEADERS_MAX 4096   /* a 301 Location of a 1 KiB path, encoded */

/*
 * A response as a handler decides it (static files, stats): http_conn
 * writes its head with http_response_head() and queues head and body.
 * HEAD and 304 state LENGTH (what a 200 would carry) and send no body.
 */
struct http_response {
    int         status;
    const char *ctype;                  /* Content-Type */
    size_t      length;                 /* Content-Length */
    const void *body;                   /* BODY[0..length) to send, or NULL: none */
    void       *owned;                  /* malloc'd block BODY lives in, or NULL;
                                           whoever queues the response frees it */
    char        headers[HTTP_RESPONSE_HEADERS_MAX];  /* extra lines, each ending
                                                        in CRLF; "" for none */
};

/* R with no body and no extra headers (status 0: not decided yet). */
void http_response_init(struct http_response *r);

/*
 * The one response-head writer: status line, Server, Content-Type,
 * Content-Length, Connection (keep-alive or close), HEADERS (lines each
 * ending in CRLF, may be NULL), the blank line. Length written into
 * DST[0..cap), or -ENOSPC.
 */
ssize_t http_response_head(char *dst, size_t cap, int status, const char *ctype,
                           size_t length, int keep, const char *headers);

/*
 * A complete error response: http_response_head() with text/plain,
 * Connection: close and EXTRA, then the one-line body "STATUS Reason\n".
 * Length, or -ENOSPC.
 */
ssize_t http_error_response(char *dst, size_t cap, int status, const char *extra);

#endif

/*
 * http: request head parser and error responses (see http.h).
 *
 * Parsing is two-phase. A cheap scan over only the bytes that arrived since
 * the last call looks for the blank line ending the head (RFC 9112 §2.1) and
 * rejects bytes no head may contain (CTLs, a CR not followed by LF), so a
 * byte-at-a-time sender costs linear time and garbage fails before the head
 * completes. Once the blank line is in, the head is parsed whole (§3, §5).
 * Everything the result depends on lies in buf[0..min(len, max_head)), so
 * any split of the same bytes gives the same answer. Leniencies, all allowed
 * by RFC 9112: bare LF ends a line (§2.2), up to LEADING_EMPTY_MAX empty
 * lines before the request-line are skipped (§2.2), and absolute-form
 * targets "http[s]://..." are accepted and reported raw (§3.2.2).
 */
#include "http.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "ascii.h"
#include "strbuf.h"

/* §2.2 asks to ignore "at least one" empty line; a few covers every
 * keep-alive client that ends a body with an extra CRLF, and the cap keeps
 * the per-call skip O(1). */
#define LEADING_EMPTY_MAX 4

/* tchar, RFC 9110 §5.6.2: the characters of a method or a field name. */
static int is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return 1;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Visible ASCII: what a request-target may hold (RFC 3986 is stricter; the
 * router judges the path, we only bound the alphabet). */
static int is_target_char(unsigned char c)
{
    return c >= 0x21 && c <= 0x7e;
}

/* field-content, RFC 9110 §5.5: VCHAR, obs-text, SP, HTAB. */
static int is_value_char(unsigned char c)
{
    return c == ' ' || c == '\t' || (c >= 0x21 && c != 0x7f);
}

/* Bytes that can appear nowhere in a head (line ends are CR/LF, HTAB is OWS). */
static int is_bad_ctl(unsigned char c)
{
    return (c < 0x20 && c != '\t' && c != '\r' && c != '\n') || c == 0x7f;
}

static int ieq_n(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (ascii_lower(a[i]) != ascii_lower(b[i]))
            return 0;
    return 1;
}

/*
 * Length of the empty lines in front of the request-line, within buf[0..lim).
 * Stops before a trailing lone CR (its LF may be next). -1 on a bare CR or
 * on more than LEADING_EMPTY_MAX empty lines.
 */
static ssize_t skip_leading(const unsigned char *buf, size_t lim)
{
    size_t p = 0;
    for (int lines = 0; p < lim; lines++) {
        size_t eol;
        if (buf[p] == '\n')
            eol = 1;
        else if (buf[p] == '\r' && p + 1 == lim)
            break;
        else if (buf[p] == '\r' && buf[p + 1] == '\n')
            eol = 2;
        else if (buf[p] == '\r')
            return -1;
        else
            break;
        if (lines == LEADING_EMPTY_MAX)
            return -1;
        p += eol;
    }
    return (ssize_t)p;
}

/* Consume CRLF or bare LF at *p; 0 if something else is there. */
static int eat_eol(const unsigned char *buf, size_t end, size_t *p)
{
    if (*p < end && buf[*p] == '\n') {
        *p += 1;
        return 1;
    }
    if (*p + 1 < end && buf[*p] == '\r' && buf[*p + 1] == '\n') {
        *p += 2;
        return 1;
    }
    return 0;
}

/* "*" is for OPTIONS only (§3.2.4); authority-form is CONNECT's, and we are
 * not a proxy. */
static int target_ok(const char *m, size_t mlen, const char *t, size_t tlen)
{
    if (t[0] == '/')
        return 1;
    if (tlen == 1 && t[0] == '*')
        return mlen == 7 && memcmp(m, "OPTIONS", 7) == 0;
    size_t s = 0;
    if (tlen > 7 && ieq_n(t, "http://", 7))
        s = 7;
    else if (tlen > 8 && ieq_n(t, "https://", 8))
        s = 8;
    /* absolute-form needs a non-empty authority */
    return s != 0 && t[s] != '/' && t[s] != '?' && t[s] != '#';
}

/*
 * request-line = method SP request-target SP HTTP-version (§3). Exactly one
 * SP each: §3 lets us accept other whitespace, and we do not.
 */
static ssize_t parse_request_line(const unsigned char *buf, size_t end,
                                  size_t *pp, struct http_request *req)
{
    size_t p = *pp, m0 = p, t0;

    while (p < end && is_tchar(buf[p]))
        p++;
    if (p == m0 || p == end || buf[p] != ' ')
        return HTTP_ERR_BAD_REQUEST;
    req->method = (const char *)buf + m0;
    req->method_len = p - m0;

    t0 = ++p;
    while (p < end && is_target_char(buf[p]))
        p++;
    if (p == t0 || p == end || buf[p] != ' ')
        return HTTP_ERR_BAD_REQUEST;
    req->target = (const char *)buf + t0;
    req->target_len = p - t0;
    if (!target_ok(req->method, req->method_len, req->target, req->target_len))
        return HTTP_ERR_BAD_REQUEST;

    /* HTTP-version = "HTTP/" DIGIT "." DIGIT, name case-sensitive (§2.3) */
    p++;
    const unsigned char *v = buf + p;
    if (end - p < 8 || memcmp(v, "HTTP/", 5) != 0 || v[5] < '0' || v[5] > '9'
        || v[6] != '.' || v[7] < '0' || v[7] > '9')
        return HTTP_ERR_BAD_REQUEST;
    p += 8;
    if (!eat_eol(buf, end, &p))
        return HTTP_ERR_BAD_REQUEST;
    /* well-formed but not 1.x: that is what 505 is for (RFC 9110 §15.6.6) */
    if (v[5] != '1')
        return HTTP_ERR_VERSION;
    req->minor_version = v[7] - '0';
    *pp = p;
    return 0;
}

/* field-line = field-name ":" OWS field-value OWS (§5). */
static ssize_t parse_headers(const unsigned char *buf, size_t end, size_t p,
                             struct http_request *req)
{
    req->num_headers = 0;
    for (;;) {
        if (eat_eol(buf, end, &p))
            return p == end ? 0 : HTTP_ERR_BAD_REQUEST;
        if (req->num_headers == HTTP_MAX_HEADERS)
            return HTTP_ERR_TOO_MANY_HDRS;
        /* A line opening with whitespace is obs-fold (§5.2) or junk between
         * the start-line and the first field (§2.2): reject both. */
        size_t n0 = p;
        while (p < end && is_tchar(buf[p]))
            p++;
        if (p == n0 || p == end || buf[p] != ':')
            return HTTP_ERR_BAD_REQUEST;   /* incl. SP before ':' (§5.1) */
        struct http_header *h = &req->headers[req->num_headers];
        h->name = (const char *)buf + n0;
        h->name_len = p - n0;

        p++;
        while (p < end && (buf[p] == ' ' || buf[p] == '\t'))
            p++;
        size_t v0 = p, v_end = p;
        while (p < end && is_value_char(buf[p])) {
            if (buf[p] != ' ' && buf[p] != '\t')
                v_end = p + 1;
            p++;
        }
        if (!eat_eol(buf, end, &p))
            return HTTP_ERR_BAD_REQUEST;
        h->value = (const char *)buf + v0;
        h->value_len = v_end - v0;
        req->num_headers++;
    }
}

/*
 * The head did not end within max_head bytes. 414 when what overflowed is
 * the request-target (the first line is still open and, after one SP, holds
 * nothing but target characters); 431 otherwise.
 */
static ssize_t overflow_error(const unsigned char *buf, size_t skip, size_t max_head)
{
    size_t n = max_head - skip;
    const unsigned char *line = buf + skip;
    if (n == 0 || memchr(line, '\n', n) != NULL)
        return HTTP_ERR_HEAD_TOO_BIG;
    const unsigned char *sp = memchr(line, ' ', n);
    if (sp == NULL || sp == line || sp + 1 == line + n)
        return HTTP_ERR_HEAD_TOO_BIG;   /* no method, or no target byte yet */
    for (const unsigned char *c = line; c < sp; c++)
        if (!is_tchar(*c))
            return HTTP_ERR_HEAD_TOO_BIG;
    for (const unsigned char *c = sp + 1; c < line + n; c++)
        if (!is_target_char(*c))
            return HTTP_ERR_HEAD_TOO_BIG;
    return HTTP_ERR_URI_TOO_LONG;
}

ssize_t http_parse_request(const char *cbuf, size_t len, size_t prev_len,
                           size_t max_head, struct http_request *req)
{
    const unsigned char *buf = (const unsigned char *)cbuf;
    size_t lim = len < max_head ? len : max_head;
    size_t end = 0;

    if (prev_len > len)
        prev_len = 0;
    ssize_t skip = skip_leading(buf, lim);
    if (skip < 0)
        return HTTP_ERR_BAD_REQUEST;
    size_t s = (size_t)skip;

    /* Bytes below prev_len were scanned by earlier calls; the look-behind
     * (two bytes at most) covers a CRLF CRLF split across calls. */
    for (size_t i = prev_len > s ? prev_len : s; i < lim; i++) {
        unsigned char c = buf[i];
        if (i > 0 && buf[i - 1] == '\r' && c != '\n')
            return HTTP_ERR_BAD_REQUEST;
        if (c == '\n') {
            /* An empty line ends the head only after a non-empty line, whose
             * LF is at or after s: everything before s was empty lines. */
            if ((i >= s + 1 && buf[i - 1] == '\n')
                || (i >= s + 2 && buf[i - 1] == '\r' && buf[i - 2] == '\n')) {
                end = i + 1;
                break;
            }
        } else if (is_bad_ctl(c)) {
            return HTTP_ERR_BAD_REQUEST;
        }
    }
    if (end == 0)
        return len > max_head ? overflow_error(buf, s, max_head) : 0;

    size_t p = s;
    ssize_t rc = parse_request_line(buf, end, &p, req);
    if (rc == 0)
        rc = parse_headers(buf, end, p, req);
    return rc < 0 ? rc : (ssize_t)end;
}

int http_error_status(ssize_t err)
{
    switch (err) {
    case HTTP_ERR_BAD_REQUEST:   return 400;
    case HTTP_ERR_HEAD_TOO_BIG:  return 431;
    case HTTP_ERR_TOO_MANY_HDRS: return 431;
    case HTTP_ERR_URI_TOO_LONG:  return 414;
    case HTTP_ERR_VERSION:       return 505;
    default:                     return 500;  /* not a parser error: our bug */
    }
}

int http_slice_ieq(const char *s, size_t len, const char *lit)
{
    return strlen(lit) == len && ieq_n(s, lit, len);
}

const struct http_header *http_find_header(const struct http_request *req,
                                           const char *name)
{
    for (size_t i = 0; i < req->num_headers; i++) {
        const struct http_header *h = &req->headers[i];
        if (http_slice_ieq(h->name, h->name_len, name))
            return h;
    }
    return NULL;
}

size_t http_count_header(const struct http_request *req, const char *name)
{
    size_t n = 0;
    for (size_t i = 0; i < req->num_headers; i++)
        n += (size_t)http_slice_ieq(req->headers[i].name, req->headers[i].name_len, name);
    return n;
}

/* #rule lists, RFC 9110 §5.6.1: elements split on ',', OWS around each, and
 * empty elements allowed and ignored. */
int http_has_token(const char *value, size_t value_len, const char *token)
{
    size_t p = 0;
    while (p < value_len) {
        while (p < value_len && (value[p] == ' ' || value[p] == '\t' || value[p] == ','))
            p++;
        size_t e0 = p, e_end = p;
        while (p < value_len && value[p] != ',') {
            if (value[p] != ' ' && value[p] != '\t')
                e_end = p + 1;
            p++;
        }
        if (e_end > e0 && http_slice_ieq(value + e0, e_end - e0, token))
            return 1;
    }
    return 0;
}

const char *http_reason(int status)
{
    switch (status) {
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 416: return "Range Not Satisfiable";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default:  return "Unknown";
    }
}

void http_response_init(struct http_response *r)
{
    r->status = 0;
    r->ctype = "text/plain; charset=utf-8";
    r->length = 0;
    r->body = NULL;
    r->owned = NULL;
    r->headers[0] = '\0';
}

ssize_t http_response_head(char *dst, size_t cap, int status, const char *ctype,
                           size_t length, int keep, const char *headers)
{
    struct strbuf b;
    strbuf_init(&b, dst, cap);
    strbuf_puts(&b, "HTTP/1.1 ");
    strbuf_put_u64(&b, (uint64_t)(status >= 100 && status <= 999 ? status : 500));
    strbuf_puts(&b, " ");
    strbuf_puts(&b, http_reason(status));
    strbuf_puts(&b, "\r\nServer: wschat\r\nContent-Type: ");
    strbuf_puts(&b, ctype);
    strbuf_puts(&b, "\r\nContent-Length: ");
    strbuf_put_u64(&b, length);
    strbuf_puts(&b, keep ? "\r\nConnection: keep-alive\r\n" : "\r\nConnection: close\r\n");
    if (headers != NULL)
        strbuf_puts(&b, headers);
    strbuf_puts(&b, "\r\n");
    return strbuf_result(&b);
}

ssize_t http_error_response(char *dst, size_t cap, int status, const char *extra)
{
    char body[48];
    int blen = snprintf(body, sizeof body, "%d %s\n", status, http_reason(status));
    ssize_t n = http_response_head(dst, cap, status, "text/plain; charset=utf-8",
                                   (size_t)blen, 0, extra);
    if (n < 0)
        return n;
    /* Exact fit allowed: the result is a byte count, not a C string. */
    if ((size_t)blen > cap - (size_t)n)
        return -ENOSPC;
    memcpy(dst + n, body, (size_t)blen);
    return n + blen;
}

/*
 * resp: RESP2/RESP3 reply parser and command encoder (see resp.h).
 *
 * resp_parse() is a step function over the caller's buffer: a call either
 * commits one whole token (a line, a small bulk with its CRLF, an aggregate
 * header, a piece of a long bulk) or returns 0 having consumed nothing. The
 * only state kept between "need more" calls is how far the pending line was
 * searched for CRLF. Every protocol error is decided by bytes that are
 * present, at a fixed position in the stream (a type byte, the byte after a
 * CR, the 21st byte of a length), never by where the buffer ends, so the
 * outcome cannot depend on the TCP split. Called by the cluster bridge;
 * the encoder writes the commands it pipelines.
 */
#include "resp.h"

#include <string.h>

#define KIB 1024u
#define MIB (1024u * 1024u)

void resp_limits_default(struct resp_limits *lim)
{
    lim->max_bulk = 512ull * MIB;       /* Redis's own proto-max-bulk-len */
    lim->max_elements = 1u << 20;
    lim->max_line = 64 * KIB;
    lim->whole_bulk = 64 * KIB;
    lim->max_depth = RESP_DEPTH_MAX;
    lim->skip_attributes = 0;
}

size_t resp_buffer_min(const struct resp_limits *lim)
{
    size_t line = 1 + lim->max_line + 2;
    size_t bulk = RESP_HEADER_MAX + lim->whole_bulk + 2;
    return line > bulk ? line : bulk;
}

int resp_parser_init(struct resp_parser *p, const struct resp_limits *lim)
{
    memset(p, 0, sizeof *p);
    if (lim == NULL)
        resp_limits_default(&p->lim);
    else
        p->lim = *lim;
    if (p->lim.max_depth < 1 || p->lim.max_depth > RESP_DEPTH_MAX)
        return -EINVAL;
    return 0;
}

int resp_parser_idle(const struct resp_parser *p)
{
    return p->depth == 0 && !p->bulk_open;
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int all_digits(const char *s, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!is_digit(s[i]))
            return 0;
    return 1;
}

/* Digits S[0..n) as a magnitude of at most LIMIT, or RESP_ERR_OVERFLOW. */
static int magnitude(const char *s, size_t n, uint64_t limit, uint64_t *out)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (limit - d) / 10)
            return RESP_ERR_OVERFLOW;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/*
 * A length or count: canonical decimal (no sign, no leading zero), or "-1"
 * where ALLOW_NULL (the RESP2 null bulk and null array). *out = -1 for it.
 */
static int parse_length(const char *s, size_t n, int allow_null, int64_t *out)
{
    if (n > 0 && s[0] == '-') {
        if (!all_digits(s + 1, n - 1))
            return RESP_ERR_LENGTH;
        if (!allow_null || n != 2 || s[1] != '1')
            return RESP_ERR_NEGATIVE;
        *out = -1;
        return 0;
    }
    if (!all_digits(s, n) || (n > 1 && s[0] == '0'))
        return RESP_ERR_LENGTH;
    uint64_t v;
    int rc = magnitude(s, n, INT64_MAX, &v);
    if (rc < 0)
        return rc;
    *out = (int64_t)v;
    return 0;
}

/* RESP3 integer: an optional sign and one or more digits, within int64. */
static int parse_integer(const char *s, size_t n, int64_t *out)
{
    int neg = n > 0 && s[0] == '-';
    size_t sign = n > 0 && (s[0] == '-' || s[0] == '+');
    if (!all_digits(s + sign, n - sign))
        return RESP_ERR_SYNTAX;
    uint64_t v;
    int rc = magnitude(s + sign, n - sign, neg ? (uint64_t)INT64_MAX + 1 : INT64_MAX, &v);
    if (rc < 0)
        return rc;
    /* -2^63 has no positive int64 twin: negate in unsigned arithmetic. */
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

static size_t skip_digits(const char *s, size_t n, size_t i)
{
    while (i < n && is_digit(s[i]))
        i++;
    return i;
}

/* [+-]digits[.digits][(e|E)[+-]digits], or inf, +inf, -inf, nan. */
static int double_valid(const char *s, size_t n)
{
    size_t i = n > 0 && (s[0] == '+' || s[0] == '-');
    if ((n - i == 3 && memcmp(s + i, "inf", 3) == 0) || (n == 3 && memcmp(s, "nan", 3) == 0))
        return 1;
    size_t j = skip_digits(s, n, i);
    if (j == i)
        return 0;
    if (j < n && s[j] == '.') {
        i = j + 1;
        j = skip_digits(s, n, i);
        if (j == i)
            return 0;
    }
    if (j < n && (s[j] == 'e' || s[j] == 'E')) {
        i = j + 1;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        j = skip_digits(s, n, i);
        if (j == i)
            return 0;
    }
    return j == n;
}

static int is_line_type(char c)
{
    return c == RESP_SIMPLE || c == RESP_ERROR || c == RESP_INTEGER || c == RESP_NULL ||
           c == RESP_BOOLEAN || c == RESP_DOUBLE || c == RESP_BIGNUM;
}

static int is_bulk_type(char c)
{
    return c == RESP_BULK || c == RESP_BULK_ERROR || c == RESP_VERBATIM;
}

static int is_aggregate_type(char c)
{
    return c == RESP_ARRAY || c == RESP_MAP || c == RESP_SET || c == RESP_ATTRIBUTE ||
           c == RESP_PUSH;
}

/*
 * The CR index (> 0) of the CRLF ending the line that starts at buf[0], 0
 * if it is not all here yet, or an error. A line whose content (after the
 * type byte) grows past CAP fails at its (CAP+1)th content byte: for a
 * length line with what parse_length() says of those bytes, which is always
 * an error, so the code does not depend on how much of the line is present.
 */
static ssize_t find_eol(struct resp_parser *p, const char *buf, size_t len, size_t cap,
                        int is_length)
{
    size_t i = p->scanned >= 1 && p->scanned <= len ? p->scanned : 1;
    for (; i < len; i++) {
        if (buf[i] == '\r') {
            if (i + 1 == len)
                break;
            return buf[i + 1] == '\n' ? (ssize_t)i : RESP_ERR_CRLF;
        }
        if (buf[i] == '\n')
            return RESP_ERR_CRLF;
        if (i > cap) {
            int64_t unused;
            return is_length ? parse_length(buf + 1, i, 1, &unused) : RESP_ERR_LINE;
        }
    }
    p->scanned = i;
    return 0;
}

/* A value (not an attribute) is complete: count it in the aggregates around it. */
static void value_done(struct resp_parser *p, struct resp_event *ev)
{
    for (;;) {
        if (p->depth == 0) {
            ev->reply_end = 1;
            return;
        }
        struct resp_frame *f = &p->stack[p->depth - 1];
        if (--f->left > 0)
            return;
        p->depth--;
        ev->closes++;
        /* An attribute annotates the value after it and is not one of its
         * parent's elements, nor a reply by itself. */
        if (f->type == RESP_ATTRIBUTE) {
            p->attrs--;
            return;
        }
    }
}

static ssize_t line_token(struct resp_parser *p, const char *buf, size_t len,
                          struct resp_event *ev)
{
    ssize_t eol = find_eol(p, buf, len, p->lim.max_line, 0);
    if (eol <= 0)
        return eol;
    const char *s = buf + 1;
    size_t n = (size_t)eol - 1;
    int rc = 0;
    switch (buf[0]) {
    case RESP_INTEGER:
        rc = parse_integer(s, n, &ev->integer);
        break;
    case RESP_NULL:
        rc = n == 0 ? 0 : RESP_ERR_SYNTAX;
        break;
    case RESP_BOOLEAN:
        rc = n == 1 && (s[0] == 't' || s[0] == 'f') ? 0 : RESP_ERR_SYNTAX;
        ev->integer = n == 1 && s[0] == 't';
        break;
    case RESP_DOUBLE:
        rc = double_valid(s, n) ? 0 : RESP_ERR_SYNTAX;
        break;
    case RESP_BIGNUM: {
        size_t sign = n > 0 && (s[0] == '-' || s[0] == '+');
        rc = all_digits(s + sign, n - sign) ? 0 : RESP_ERR_SYNTAX;
        break;
    }
    }
    if (rc < 0)
        return rc;
    ev->kind = RESP_EV_VALUE;
    ev->data = s;
    ev->len = ev->total = n;
    ev->last = 1;
    value_done(p, ev);
    return eol + 2;
}

/* A verbatim payload is "xxx:text": its fourth byte must be the colon. */
static int verbatim_bad(int type, uint64_t offset, const char *d, size_t n)
{
    return type == RESP_VERBATIM && offset <= 3 && offset + n > 3 && d[3 - offset] != ':';
}

/* Deliver K payload bytes at BUF; LAST: they end the payload (CRLF included in USED). */
static ssize_t piece(struct resp_parser *p, struct resp_event *ev, const char *buf, size_t k,
                     size_t used, int last)
{
    ev->data = buf;
    ev->len = k;
    ev->last = last;
    p->bulk_left -= k;
    if (last) {
        p->bulk_open = 0;
        value_done(p, ev);
    }
    return (ssize_t)used;
}

/*
 * The next piece of a streamed bulk payload, and its CRLF once all is here.
 * A piece stops short of a byte that is wrong (the verbatim colon, the CR
 * LF), so the error comes from the call that starts at that byte and the
 * bytes consumed before it are the same for every split.
 */
static ssize_t bulk_piece(struct resp_parser *p, const char *buf, size_t len,
                          struct resp_event *ev)
{
    uint64_t left = p->bulk_left;
    size_t k = (uint64_t)len < left ? len : (size_t)left;
    ev->kind = RESP_EV_VALUE;
    ev->type = ev->wire = p->bulk_type;
    ev->total = p->bulk_total;
    ev->offset = p->bulk_total - left;
    if (verbatim_bad(ev->type, ev->offset, buf, k)) {
        if (ev->offset < 3)
            return piece(p, ev, buf, (size_t)(3 - ev->offset), (size_t)(3 - ev->offset), 0);
        return RESP_ERR_SYNTAX;
    }
    if ((uint64_t)len >= left + 2) {
        if (buf[left] == '\r' && buf[left + 1] == '\n')
            return piece(p, ev, buf, k, k + 2, 1);
        return k > 0 ? piece(p, ev, buf, k, k, 0) : RESP_ERR_CRLF;
    }
    if (left == 0)      /* all payload delivered, CRLF incomplete: check the CR now */
        return len > 0 && buf[0] != '\r' ? RESP_ERR_CRLF : 0;
    return piece(p, ev, buf, k, k, 0);
}

static ssize_t bulk_token(struct resp_parser *p, const char *buf, size_t len,
                          struct resp_event *ev, size_t eol, int64_t n)
{
    int type = buf[0];
    size_t hdr = eol + 2;
    if ((uint64_t)n > p->lim.max_bulk)
        return RESP_ERR_BULK;
    if (type == RESP_VERBATIM && n < 4)
        return RESP_ERR_SYNTAX;
    if ((uint64_t)n > p->lim.whole_bulk) {
        p->bulk_open = 1;
        p->bulk_type = (uint8_t)type;
        p->bulk_left = p->bulk_total = (uint64_t)n;
        ssize_t k = bulk_piece(p, buf + hdr, len - hdr, ev);
        return k < 0 ? k : (ssize_t)hdr + k;
    }
    size_t size = (size_t)n, avail = len - hdr;
    const char *d = buf + hdr;
    if (verbatim_bad(type, 0, d, avail < size ? avail : size))
        return RESP_ERR_SYNTAX;
    if ((avail > size && d[size] != '\r') || (avail > size + 1 && d[size + 1] != '\n'))
        return RESP_ERR_CRLF;
    if (avail < size + 2) {
        p->scanned = eol;   /* the header is re-read (<= 23 bytes), not re-searched */
        return 0;
    }
    ev->kind = RESP_EV_VALUE;
    ev->data = d;
    ev->len = size;
    ev->total = size;
    ev->last = 1;
    value_done(p, ev);
    return (ssize_t)(hdr + size + 2);
}

static int aggregate_token(struct resp_parser *p, struct resp_event *ev, int type, int64_t n)
{
    if ((uint64_t)n > p->lim.max_elements)
        return RESP_ERR_COUNT;
    if (p->depth >= p->lim.max_depth)
        return RESP_ERR_DEPTH;
    ev->kind = RESP_EV_BEGIN;
    ev->integer = n;
    if (n == 0) {
        ev->closes = 1;
        if (type != RESP_ATTRIBUTE)
            value_done(p, ev);
        return 0;
    }
    struct resp_frame *f = &p->stack[p->depth++];
    f->type = (uint8_t)type;
    f->left = (uint64_t)n * (type == RESP_MAP || type == RESP_ATTRIBUTE ? 2 : 1);
    if (type == RESP_ATTRIBUTE)
        p->attrs++;
    return 0;
}

/* A token that starts with its type byte at buf[0]. */
static ssize_t token(struct resp_parser *p, const char *buf, size_t len, struct resp_event *ev)
{
    char c = buf[0];
    if (is_line_type(c))
        return line_token(p, buf, len, ev);
    if (!is_bulk_type(c) && !is_aggregate_type(c))
        return RESP_ERR_TYPE;
    ssize_t eol = find_eol(p, buf, len, RESP_LENGTH_MAX_LEN, 1);
    if (eol <= 0)
        return eol;
    int64_t n;
    int rc = parse_length(buf + 1, (size_t)eol - 1, c == RESP_BULK || c == RESP_ARRAY, &n);
    if (rc < 0)
        return rc;
    if (n < 0) {                        /* RESP2 null bulk string or null array */
        ev->kind = RESP_EV_VALUE;
        ev->type = RESP_NULL;
        ev->last = 1;
        value_done(p, ev);
        return eol + 2;
    }
    if (is_bulk_type(c))
        return bulk_token(p, buf, len, ev, (size_t)eol, n);
    rc = aggregate_token(p, ev, c, n);
    return rc < 0 ? rc : eol + 2;
}

ssize_t resp_parse(struct resp_parser *p, const char *buf, size_t len, struct resp_event *ev)
{
    memset(ev, 0, sizeof *ev);
    if (p->err)
        return p->err;
    if (len == 0)
        return 0;
    ev->depth = p->depth;
    ev->in_attr = p->attrs > 0;
    ssize_t n;
    if (p->bulk_open) {
        n = bulk_piece(p, buf, len, ev);
    } else {
        ev->type = ev->wire = (unsigned char)buf[0];
        ev->in_attr |= buf[0] == RESP_ATTRIBUTE;
        n = token(p, buf, len, ev);
        /* A top-level attribute is the top until the value it annotates. */
        if (n > 0 && ev->depth == 0)
            p->top_type = ev->type;
    }
    if (n < 0) {
        p->err = (int)n;
        return n;
    }
    if (n == 0)
        return 0;
    p->scanned = 0;
    p->reply_bytes += (uint64_t)n;
    ev->top_type = p->top_type;
    if (ev->reply_end) {
        ev->reply_len = p->reply_bytes;
        p->reply_bytes = 0;
    }
    if (ev->in_attr && p->lim.skip_attributes) {
        ev->kind = RESP_EV_NONE;
        ev->closes = 0;
    }
    return n;
}

ssize_t resp_skip_reply(struct resp_parser *p, const char *buf, size_t len, int *done,
                        int *type)
{
    size_t pos = 0;
    *done = 0;
    while (pos < len) {
        struct resp_event ev;
        ssize_t n = resp_parse(p, buf + pos, len - pos, &ev);
        if (n < 0)
            return n;
        if (n == 0)
            break;
        pos += (size_t)n;
        if (ev.reply_end) {
            *done = 1;
            if (type != NULL)
                *type = ev.top_type;
            break;
        }
    }
    return (ssize_t)pos;
}

/* ---- command encoding */

static size_t decimal_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 10) {
        v /= 10;
        n++;
    }
    return n;
}

/* "<type><decimal>\r\n", formatted without stdio: this runs per command. */
static void put_header(struct strbuf *b, char type, uint64_t v)
{
    char tmp[1 + 20 + 2];
    size_t n = decimal_len(v), i = 1 + n;
    tmp[0] = type;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    tmp[1 + n] = '\r';
    tmp[2 + n] = '\n';
    strbuf_put(b, tmp, n + 3);
}

static size_t arg_len(const char *const *argv, const size_t *lens, size_t i)
{
    return lens != NULL ? lens[i] : strlen(argv[i]);
}

size_t resp_command_len(size_t argc, const char *const *argv, const size_t *lens)
{
    size_t total = 1 + decimal_len(argc) + 2;
    for (size_t i = 0; i < argc; i++) {
        size_t n = arg_len(argv, lens, i);
        total += 1 + decimal_len(n) + 2 + n + 2;
    }
    return total;
}

ssize_t resp_command(struct strbuf *b, size_t argc, const char *const *argv,
                     const size_t *lens)
{
    if (argc == 0)
        return -EINVAL;
    size_t need = resp_command_len(argc, argv, lens);
    if (b->overflow || b->cap - b->len < need)
        return -ENOSPC;
    put_header(b, '*', argc);
    for (size_t i = 0; i < argc; i++) {
        size_t n = arg_len(argv, lens, i);
        put_header(b, '$', n);
        strbuf_put(b, argv[i], n);
        strbuf_put(b, "\r\n", 2);
    }
    return (ssize_t)need;
}

/*
 * check_resp: the RESP2/RESP3 reply parser and the command encoder
 * (server/resp.c).
 *
 * Parser vectors are fed as the bridge will read a socket: whole, one byte
 * at a time and split in two at every offset, unconsumed bytes kept and the
 * next chunk appended, each call's input against a guard page. Every feed
 * must render the same outcome string, and the harness checks each event
 * against its own model (depth, closes, piece offsets, reply byte counts).
 * Complete vectors also run with whole_bulk 0, so every bulk is streamed
 * in pieces and must still render the same. The property test encodes
 * random commands with resp_command() and parses them back.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guard.h"
#include "resp.h"

/* Check's ck_assert talks to the runner on every call; the harness makes
 * millions of checks, so it only calls into Check when one fails. */
#define REQUIRE(c) \
    do { \
        if (!(c)) \
            ck_abort_msg("%s:%d: %s", __FILE__, __LINE__, #c); \
    } while (0)

/* ---- growable byte buffer (tests only) */

struct sbuf {
    char  *p;
    size_t len, cap;
};

static void sb_put(struct sbuf *b, const void *d, size_t n)
{
    if (b->p == NULL || b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n)
            cap *= 2;
        b->p = realloc(b->p, cap);
        REQUIRE(b->p != NULL);
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, d, n);
    b->len += n;
}

static void sb_fmt(struct sbuf *b, const char *fmt, long long v)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, fmt, v);
    sb_put(b, tmp, (size_t)n);
}

static void sb_free(struct sbuf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

static const char *esc(const char *s, size_t n)
{
    static char out[600];
    size_t o = 0;
    for (size_t i = 0; i < n && o + 8 < sizeof out; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7F && c != '\\')
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, sizeof out - o, "\\x%02x", c);
    }
    if (o + 8 >= sizeof out)
        o += (size_t)snprintf(out + o, sizeof out - o, "...");
    out[o] = '\0';
    return out;
}

static const char *err_name(int e)
{
    switch (e) {
    case RESP_ERR_TYPE:     return "TYPE";
    case RESP_ERR_CRLF:     return "CRLF";
    case RESP_ERR_LENGTH:   return "LENGTH";
    case RESP_ERR_NEGATIVE: return "NEGATIVE";
    case RESP_ERR_OVERFLOW: return "OVERFLOW";
    case RESP_ERR_SYNTAX:   return "SYNTAX";
    case RESP_ERR_LINE:     return "LINE";
    case RESP_ERR_BULK:     return "BULK";
    case RESP_ERR_COUNT:    return "COUNT";
    case RESP_ERR_DEPTH:    return "DEPTH";
    }
    return "?";
}

/* ---- the feeding harness */

struct run {
    struct resp_parser p;
    struct sbuf log;        /* rendered tokens, see the vector table */
    struct sbuf bulk;       /* pieces of the bulk still streaming */
    int bulk_open;
    unsigned depth;         /* the harness's own count of open aggregates */
    unsigned attrs;
    int attr_at[RESP_DEPTH_MAX + 1];
    uint64_t since_reply;   /* bytes consumed since the last reply ended */
    size_t consumed;        /* in all; must not depend on the split, errors included */
    int err;
    struct sbuf acc;        /* unconsumed input, as a connection keeps it */
};

static void run_init(struct run *r, const struct resp_limits *lim)
{
    memset(r, 0, sizeof *r);
    REQUIRE(resp_parser_init(&r->p, lim) == 0);
}

static void render_value(struct run *r, const struct resp_event *ev, const char *d, size_t n)
{
    struct sbuf *l = &r->log;
    char t = (char)ev->type;
    sb_put(l, &t, 1);
    switch (ev->type) {
    case RESP_INTEGER:
        sb_fmt(l, "%lld", (long long)ev->integer);
        break;
    case RESP_BOOLEAN:
        sb_put(l, ev->integer ? "t" : "f", 1);
        break;
    case RESP_NULL:
        t = (char)ev->wire;
        sb_put(l, &t, 1);
        REQUIRE(n == 0);
        break;
    default:
        sb_fmt(l, "%lld:", (long long)n);
        sb_put(l, d, n);
    }
}

/* Check one event against the model, then render it. */
static void on_event(struct run *r, const struct resp_event *ev, const char *at, size_t k)
{
    REQUIRE(ev->top_type != 0);
    r->since_reply += k;
    if (ev->kind == RESP_EV_NONE) {
        REQUIRE(r->p.lim.skip_attributes && ev->in_attr && ev->closes == 0 && !ev->reply_end);
        return;
    }
    REQUIRE(ev->depth == r->depth);
    REQUIRE(ev->in_attr == (r->attrs > 0 || (ev->kind == RESP_EV_BEGIN &&
                                             ev->type == RESP_ATTRIBUTE)));
    if (ev->len > 0)
        REQUIRE(ev->data >= at && ev->data + ev->len <= at + k);
    if (ev->kind == RESP_EV_BEGIN) {
        if (r->log.len > 0)
            sb_put(&r->log, " ", 1);
        REQUIRE(!r->bulk_open && ev->integer >= 0);
        char t = (char)ev->type;
        sb_put(&r->log, &t, 1);
        sb_fmt(&r->log, "%lld{", (long long)ev->integer);
        REQUIRE(r->depth < RESP_DEPTH_MAX);
        r->attr_at[r->depth++] = ev->type == RESP_ATTRIBUTE;
        r->attrs += ev->type == RESP_ATTRIBUTE;
    } else {
        REQUIRE(ev->kind == RESP_EV_VALUE);
        int streamed = ev->type == RESP_BULK || ev->type == RESP_BULK_ERROR ||
                       ev->type == RESP_VERBATIM;
        REQUIRE(ev->offset == (r->bulk_open ? r->bulk.len : 0));
        REQUIRE(ev->offset + ev->len <= ev->total);
        REQUIRE(!ev->last || ev->offset + ev->len == ev->total);
        if (!streamed || ev->total <= r->p.lim.whole_bulk)
            REQUIRE(ev->offset == 0 && ev->last);     /* small ones come whole */
        if (!ev->last) {
            REQUIRE(ev->closes == 0 && !ev->reply_end);
            sb_put(&r->bulk, ev->data, ev->len);
            r->bulk_open = 1;
            return;
        }
        if (r->log.len > 0)
            sb_put(&r->log, " ", 1);
        if (r->bulk_open) {
            sb_put(&r->bulk, ev->data, ev->len);
            render_value(r, ev, r->bulk.p, r->bulk.len);
            r->bulk.len = 0;
            r->bulk_open = 0;
        } else {
            render_value(r, ev, ev->data, ev->len);
        }
    }
    for (unsigned i = 0; i < ev->closes; i++) {
        REQUIRE(r->depth > 0);
        r->attrs -= r->attr_at[--r->depth];
        sb_put(&r->log, "}", 1);
    }
    if (ev->reply_end) {
        REQUIRE(r->depth == 0 && ev->reply_len == r->since_reply);
        REQUIRE(resp_parser_idle(&r->p));
        char t = (char)ev->top_type;
        sb_put(&r->log, ";", 1);
        sb_put(&r->log, &t, 1);
        r->since_reply = 0;
    }
}

/* Append a chunk and parse until the parser needs more or fails. */
static void feed(struct run *r, const char *d, size_t n)
{
    if (r->err)
        return;
    sb_put(&r->acc, d, n);
    const char *g = guard_copy(r->acc.p, r->acc.len);
    size_t pos = 0;
    for (;;) {
        struct resp_parser before = r->p;
        struct resp_event ev;
        ssize_t k = resp_parse(&r->p, g + pos, r->acc.len - pos, &ev);
        if (k < 0) {
            r->err = (int)k;
            /* sticky */
            REQUIRE(resp_parse(&r->p, g + pos, r->acc.len - pos, &ev) == k);
            break;
        }
        if (k == 0) {
            /* "Need more" changes nothing but how far the line was searched. */
            before.scanned = r->p.scanned;
            REQUIRE(memcmp(&before, &r->p, sizeof before) == 0);
            REQUIRE(r->p.scanned <= r->acc.len - pos);
            break;
        }
        REQUIRE((size_t)k <= r->acc.len - pos);
        on_event(r, &ev, g + pos, (size_t)k);
        pos += (size_t)k;
        r->consumed += (size_t)k;
    }
    memmove(r->acc.p, r->acc.p + pos, r->acc.len - pos);
    r->acc.len -= pos;
}

/* The outcome string; caller frees. */
static struct sbuf finish(struct run *r)
{
    struct sbuf out = r->log;
    const char *sep = out.len ? " " : "";
    sb_put(&out, "", 0);
    if (r->err) {
        sb_put(&out, sep, strlen(sep));
        sb_put(&out, "ERR(", 4);
        sb_put(&out, err_name(r->err), strlen(err_name(r->err)));
        sb_put(&out, ")", 1);
    } else {
        if (r->depth)
            sb_fmt(&out, r->log.len ? " D%lld" : "D%lld", (long long)r->depth);
        if (r->bulk_open)
            sb_fmt(&out, out.len ? " ~%lld" : "~%lld", (long long)r->bulk.len);
        if (r->acc.len)
            sb_fmt(&out, out.len ? " L%lld" : "L%lld", (long long)r->acc.len);
    }
    sb_free(&r->bulk);
    sb_free(&r->acc);
    return out;
}

static void check_outcome(struct sbuf *got, const char *want, size_t want_len,
                          const char *name, const char *how, size_t split,
                          size_t consumed, size_t want_consumed)
{
    if (consumed != want_consumed)
        ck_abort_msg("%s, %s feed (split %zu): consumed %zu, whole feed %zu", name, how,
                     split, consumed, want_consumed);
    if (got->len != want_len || memcmp(got->p, want, want_len) != 0) {
        char g[600];
        snprintf(g, sizeof g, "%s", esc(got->p, got->len));
        ck_abort_msg("%s, %s feed (split %zu): got \"%s\" want \"%s\"", name, how, split,
                     g, esc(want, want_len));
    }
    sb_free(got);
}

/* Long inputs: every split near both ends and a stride between. */
static int split_wanted(size_t k, size_t len)
{
    return len <= 2048 || k <= 300 || k >= len - 300 || k % 997 == 0;
}

/* Feed in[0..len) whole, byte by byte and at every split; all must match. */
static void run_feeds(const char *name, const char *in, size_t len,
                      const struct resp_limits *lim, const char *want, size_t want_len)
{
    struct run r;
    struct sbuf out;

    run_init(&r, lim);
    feed(&r, in, len);
    size_t whole = r.consumed;
    out = finish(&r);
    check_outcome(&out, want, want_len, name, "whole", 0, whole, whole);

    run_init(&r, lim);
    for (size_t i = 0; i < len; i++)
        feed(&r, in + i, 1);
    out = finish(&r);
    check_outcome(&out, want, want_len, name, "bytewise", 0, r.consumed, whole);

    for (size_t k = 1; k < len; k++) {
        if (!split_wanted(k, len))
            continue;
        run_init(&r, lim);
        feed(&r, in, k);
        feed(&r, in + k, len - k);
        out = finish(&r);
        check_outcome(&out, want, want_len, name, "split", k, r.consumed, whole);
    }
}

/* ---- table of parser vectors */

static const struct resp_limits small_lim = {
    .max_bulk = 16, .max_elements = 3, .max_line = 8, .whole_bulk = 16, .max_depth = 3,
};

enum { BOTH = 0, WHOLE_ONLY = 1 };     /* WHOLE_ONLY: output depends on whole_bulk */

struct pvec {
    const char *name;
    const struct resp_limits *lim;      /* NULL: the defaults */
    int modes;
    const char *in;
    size_t in_len;
    const char *out;
    size_t out_len;
};

#define PV(name, lim, modes, in, out) \
    { name, lim, modes, in, sizeof(in) - 1, out, sizeof(out) - 1 }

/*
 * Outcome grammar, tokens separated by spaces: a value is its type byte then
 * <len>:<bytes> (integers and booleans their parsed value, nulls the type
 * byte they were sent as); an aggregate header is <type><count>{ and each
 * aggregate it completes adds "}"; the end of a top-level reply adds ";"
 * and the reply's type. Then ERR(<name>) on error, or D<n> open aggregates,
 * ~<n> bytes of a bulk still streaming, L<n> bytes left unconsumed.
 */
static const struct pvec pvecs[] = {
    /* simple types */
    PV("simple", NULL, BOTH, "+OK\r\n", "+2:OK;+"),
    PV("simple empty", NULL, BOTH, "+\r\n", "+0:;+"),
    PV("error", NULL, BOTH, "-ERR unknown command 'foo'\r\n", "-25:ERR unknown command 'foo';-"),
    PV("integer", NULL, BOTH, ":1000\r\n", ":1000;:"),
    PV("integer signs", NULL, BOTH, ":-42\r\n:+7\r\n:007\r\n:-0\r\n", ":-42;: :7;: :7;: :0;:"),
    PV("int64 max", NULL, BOTH, ":9223372036854775807\r\n", ":9223372036854775807;:"),
    PV("int64 min", NULL, BOTH, ":-9223372036854775808\r\n", ":-9223372036854775808;:"),
    PV("int64 over", NULL, BOTH, ":9223372036854775808\r\n", "ERR(OVERFLOW)"),
    PV("int64 under", NULL, BOTH, ":-9223372036854775809\r\n", "ERR(OVERFLOW)"),
    PV("int empty", NULL, BOTH, ":\r\n", "ERR(SYNTAX)"),
    PV("int sign only", NULL, BOTH, ":-\r\n", "ERR(SYNTAX)"),
    PV("int junk", NULL, BOTH, ":12a\r\n", "ERR(SYNTAX)"),
    PV("int space", NULL, BOTH, ": 1\r\n", "ERR(SYNTAX)"),
    PV("bulk", NULL, BOTH, "$5\r\nhello\r\n", "$5:hello;$"),
    PV("bulk empty", NULL, BOTH, "$0\r\n\r\n", "$0:;$"),
    PV("bulk binary", NULL, BOTH, "$8\r\na\r\nb\0\xff\n\r\r\n", "$8:a\r\nb\0\xff\n\r;$"),
    PV("null bulk", NULL, BOTH, "$-1\r\n", "_$;_"),
    PV("null array", NULL, BOTH, "*-1\r\n", "_*;_"),
    PV("resp3 null", NULL, BOTH, "_\r\n", "__;_"),
    PV("null junk", NULL, BOTH, "_x\r\n", "ERR(SYNTAX)"),
    PV("booleans", NULL, BOTH, "#t\r\n#f\r\n", "#t;# #f;#"),
    PV("boolean junk", NULL, BOTH, "#x\r\n", "ERR(SYNTAX)"),
    PV("boolean long", NULL, BOTH, "#tt\r\n", "ERR(SYNTAX)"),
    PV("boolean empty", NULL, BOTH, "#\r\n", "ERR(SYNTAX)"),
    PV("double", NULL, BOTH, ",3.14\r\n,-1.5e-10\r\n,10\r\n,1E+5\r\n",
       ",4:3.14;, ,8:-1.5e-10;, ,2:10;, ,4:1E+5;,"),
    PV("double specials", NULL, BOTH, ",inf\r\n,-inf\r\n,nan\r\n", ",3:inf;, ,4:-inf;, ,3:nan;,"),
    PV("double no fraction digits", NULL, BOTH, ",1.\r\n", "ERR(SYNTAX)"),
    PV("double no integral", NULL, BOTH, ",.5\r\n", "ERR(SYNTAX)"),
    PV("double no exponent digits", NULL, BOTH, ",1e\r\n", "ERR(SYNTAX)"),
    PV("double word", NULL, BOTH, ",abc\r\n", "ERR(SYNTAX)"),
    PV("double empty", NULL, BOTH, ",\r\n", "ERR(SYNTAX)"),
    PV("double signed nan", NULL, BOTH, ",-nan\r\n", "ERR(SYNTAX)"),
    PV("big number", NULL, BOTH, "(3492890328409238509324850943850943825024385\r\n(-1\r\n",
       "(43:3492890328409238509324850943850943825024385;( (2:-1;("),
    PV("big number empty", NULL, BOTH, "(\r\n", "ERR(SYNTAX)"),
    PV("big number sign only", NULL, BOTH, "(+\r\n", "ERR(SYNTAX)"),
    PV("big number junk", NULL, BOTH, "(1x\r\n", "ERR(SYNTAX)"),
    PV("bulk error", NULL, BOTH, "!21\r\nSYNTAX invalid syntax\r\n", "!21:SYNTAX invalid syntax;!"),
    PV("verbatim", NULL, BOTH, "=15\r\ntxt:Some string\r\n", "=15:txt:Some string;="),
    PV("verbatim empty text", NULL, BOTH, "=4\r\ntxt:\r\n", "=4:txt:;="),
    PV("verbatim too short", NULL, BOTH, "=3\r\ntxt\r\n", "ERR(SYNTAX)"),
    PV("verbatim no colon", NULL, BOTH, "=5\r\ntxtx1\r\n", "ERR(SYNTAX)"),
    PV("verbatim colon early", NULL, BOTH, "=5\r\ntx:x1\r\n", "ERR(SYNTAX)"),
    PV("verbatim no colon, long", NULL, BOTH, "=20\r\ntxt-0123456789abcdef\r\n", "ERR(SYNTAX)"),
    PV("bulk too long, long", NULL, BOTH, "$20\r\n0123456789abcdefghijX\r\n", "ERR(CRLF)"),
    PV("bulk bad LF, long", NULL, BOTH, "$20\r\n0123456789abcdefghij\rX", "ERR(CRLF)"),

    /* aggregates */
    PV("array", NULL, BOTH, "*2\r\n$3\r\nfoo\r\n:1\r\n", "*2{ $3:foo :1};*"),
    PV("empty array", NULL, BOTH, "*0\r\n", "*0{};*"),
    PV("array of mixed", NULL, BOTH, "*3\r\n:1\r\n*0\r\n_\r\n", "*3{ :1 *0{} __};*"),
    PV("nested", NULL, BOTH, "*2\r\n*2\r\n:1\r\n:2\r\n*1\r\n*0\r\n",
       "*2{ *2{ :1 :2} *1{ *0{}}};*"),
    PV("array with nulls", NULL, BOTH, "*3\r\n$-1\r\n*-1\r\n$0\r\n\r\n", "*3{ _$ _* $0:};*"),
    PV("map", NULL, BOTH, "%2\r\n+server\r\n+redis\r\n+proto\r\n:3\r\n",
       "%2{ +6:server +5:redis +5:proto :3};%"),
    PV("empty map", NULL, BOTH, "%0\r\n", "%0{};%"),
    PV("map of aggregates", NULL, BOTH, "%1\r\n*1\r\n:1\r\n~1\r\n#f\r\n",
       "%1{ *1{ :1} ~1{ #f}};%"),
    PV("set", NULL, BOTH, "~3\r\n+a\r\n+b\r\n+c\r\n", "~3{ +1:a +1:b +1:c};~"),
    PV("push", NULL, BOTH, ">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n",
       ">3{ $7:message $2:ch $2:hi};>"),
    PV("attribute before reply", NULL, BOTH,
       "|1\r\n+key-popularity\r\n%2\r\n$1\r\na\r\n,0.1923\r\n$1\r\nb\r\n,0.0012\r\n"
       "*2\r\n:2039123\r\n:9543892\r\n",
       "|1{ +14:key-popularity %2{ $1:a ,6:0.1923 $1:b ,6:0.0012}} *2{ :2039123 :9543892};*"),
    PV("attribute inside array", NULL, BOTH, "*2\r\n|1\r\n+ttl\r\n:3600\r\n+v\r\n:5\r\n",
       "*2{ |1{ +3:ttl :3600} +1:v :5};*"),
    PV("empty attribute", NULL, BOTH, "|0\r\n+OK\r\n", "|0{} +2:OK;+"),
    PV("attribute before last element", NULL, BOTH, "*1\r\n|0\r\n:1\r\n", "*1{ |0{} :1};*"),
    PV("attribute on an attribute value", NULL, BOTH, "|1\r\n+k\r\n|1\r\n+a\r\n+b\r\n+v\r\n:1\r\n",
       "|1{ +1:k |1{ +1:a +1:b} +1:v} :1;:"),

    /* pipelined replies */
    PV("pipeline resp2", NULL, BOTH,
       "+OK\r\n:1\r\n$3\r\nbar\r\n*2\r\n$1\r\na\r\n_\r\n-ERR x\r\n$-1\r\n",
       "+2:OK;+ :1;: $3:bar;$ *2{ $1:a __};* -5:ERR x;- _$;_"),
    PV("pipeline resp3 with push", NULL, BOTH,
       "+OK\r\n>3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$5\r\nhello\r\n:2\r\n%1\r\n+k\r\n#t\r\n",
       "+2:OK;+ >3{ $7:message $1:c $5:hello};> :2;: %1{ +1:k #t};%"),
    PV("pipeline subscribe", NULL, BOTH,
       "*3\r\n$9\r\nsubscribe\r\n$4\r\nroom\r\n:1\r\n"
       "*3\r\n$7\r\nmessage\r\n$4\r\nroom\r\n$8\r\n{\"id\":1}\r\n",
       "*3{ $9:subscribe $4:room :1};* *3{ $7:message $4:room $8:{\"id\":1}};*"),
    PV("pipeline then bad type", NULL, BOTH, "+OK\r\n:1\r\n?", "+2:OK;+ :1;: ERR(TYPE)"),
    PV("pipeline then truncated bulk", NULL, WHOLE_ONLY, "+OK\r\n*2\r\n:1\r\n$5\r\nhel",
       "+2:OK;+ *2{ :1 D1 L7"),

    /* framing errors */
    PV("unknown type", NULL, BOTH, "?x\r\n", "ERR(TYPE)"),
    PV("unknown type alone", NULL, BOTH, "x", "ERR(TYPE)"),
    PV("blank line", NULL, BOTH, "\r\n", "ERR(TYPE)"),
    PV("bare LF", NULL, BOTH, "+OK\n", "ERR(CRLF)"),
    PV("CR without LF", NULL, BOTH, "+OK\rX", "ERR(CRLF)"),
    PV("LF inside line", NULL, BOTH, "+O\nK\r\n", "ERR(CRLF)"),
    PV("bulk too long", NULL, BOTH, "$3\r\nfooX\r\n", "ERR(CRLF)"),
    PV("bulk CR without LF", NULL, BOTH, "$3\r\nfoo\rX", "ERR(CRLF)"),
    PV("bulk bare LF", NULL, BOTH, "$3\r\nfoo\n", "ERR(CRLF)"),
    PV("length junk", NULL, BOTH, "$x\r\n", "ERR(LENGTH)"),
    PV("length empty", NULL, BOTH, "$\r\n", "ERR(LENGTH)"),
    PV("length leading zero", NULL, BOTH, "$01\r\nx\r\n", "ERR(LENGTH)"),
    PV("count leading zero", NULL, BOTH, "*00\r\n", "ERR(LENGTH)"),
    PV("length minus only", NULL, BOTH, "$-\r\n", "ERR(LENGTH)"),
    PV("length minus junk", NULL, BOTH, "$-x\r\n", "ERR(LENGTH)"),
    PV("length plus", NULL, BOTH, "$+1\r\nx\r\n", "ERR(LENGTH)"),
    PV("streamed string unsupported", NULL, BOTH, "$?\r\n;4\r\nHell\r\n;0\r\n", "ERR(LENGTH)"),
    PV("bulk -2", NULL, BOTH, "$-2\r\n", "ERR(NEGATIVE)"),
    PV("array -2", NULL, BOTH, "*-2\r\n", "ERR(NEGATIVE)"),
    PV("null map", NULL, BOTH, "%-1\r\n", "ERR(NEGATIVE)"),
    PV("null set", NULL, BOTH, "~-1\r\n", "ERR(NEGATIVE)"),
    PV("null push", NULL, BOTH, ">-1\r\n", "ERR(NEGATIVE)"),
    PV("null attribute", NULL, BOTH, "|-1\r\n", "ERR(NEGATIVE)"),
    PV("null bulk error", NULL, BOTH, "!-1\r\n", "ERR(NEGATIVE)"),
    PV("null verbatim", NULL, BOTH, "=-1\r\n", "ERR(NEGATIVE)"),
    PV("bulk -01", NULL, BOTH, "$-01\r\n", "ERR(NEGATIVE)"),
    PV("count 20 digits", NULL, BOTH, "*99999999999999999999\r\n", "ERR(OVERFLOW)"),
    PV("bulk int64 max", NULL, BOTH, "$9223372036854775807\r\n", "ERR(BULK)"),
    PV("count int64 max", NULL, BOTH, "*9223372036854775807\r\n", "ERR(COUNT)"),
    PV("bulk over int64", NULL, BOTH, "$9223372036854775808\r\n", "ERR(OVERFLOW)"),
    PV("length 21 digits", NULL, BOTH, "$123456789012345678901\r\n", "ERR(OVERFLOW)"),
    PV("length 21 digits, no CRLF yet", NULL, BOTH, "$123456789012345678901", "ERR(OVERFLOW)"),
    PV("length 20 digits, no CRLF yet", NULL, BOTH, "$12345678901234567890", "L21"),
    PV("length 21 chars negative", NULL, BOTH, "$-12345678901234567890\r\n", "ERR(NEGATIVE)"),
    PV("length 21 chars junk", NULL, BOTH, "$12345678901234567890x\r\n", "ERR(LENGTH)"),

    /* incomplete input */
    PV("empty input", NULL, BOTH, "", ""),
    PV("line without LF", NULL, BOTH, "+OK\r", "L4"),
    PV("line without CR", NULL, BOTH, "+OK", "L3"),
    PV("array open", NULL, BOTH, "*2\r\n:1\r\n", "*2{ :1 D1"),
    PV("bulk header only", NULL, WHOLE_ONLY, "$1\r\n", "L4"),
    PV("bulk payload without CRLF", NULL, WHOLE_ONLY, "$1\r\nx", "L5"),
    PV("bulk payload without LF", NULL, WHOLE_ONLY, "$1\r\nx\r", "L6"),

    /* limits exactly at and just over (small_lim) */
    PV("line at max_line", &small_lim, BOTH, "+12345678\r\n", "+8:12345678;+"),
    PV("line over max_line", &small_lim, BOTH, "+123456789\r\n", "ERR(LINE)"),
    PV("line over max_line, no CRLF yet", &small_lim, BOTH, "+123456789", "ERR(LINE)"),
    PV("line at max_line, no CRLF yet", &small_lim, BOTH, "+12345678", "L9"),
    PV("line at max_line, CR only", &small_lim, BOTH, "+12345678\r", "L10"),
    PV("error over max_line", &small_lim, BOTH, "-123456789\r\n", "ERR(LINE)"),
    PV("integer over max_line", &small_lim, BOTH, ":123456789\r\n", "ERR(LINE)"),
    PV("big number over max_line", &small_lim, BOTH, "(123456789\r\n", "ERR(LINE)"),
    PV("length line not bound by max_line", &small_lim, BOTH, "*0000000001\r\n", "ERR(LENGTH)"),
    PV("bulk at max_bulk", &small_lim, BOTH, "$16\r\n0123456789abcdef\r\n",
       "$16:0123456789abcdef;$"),
    PV("bulk over max_bulk", &small_lim, BOTH, "$17\r\n", "ERR(BULK)"),
    PV("bulk error over max_bulk", &small_lim, BOTH, "!17\r\n", "ERR(BULK)"),
    PV("verbatim over max_bulk", &small_lim, BOTH, "=17\r\n", "ERR(BULK)"),
    PV("array at max_elements", &small_lim, BOTH, "*3\r\n:1\r\n:2\r\n:3\r\n", "*3{ :1 :2 :3};*"),
    PV("array over max_elements", &small_lim, BOTH, "*4\r\n", "ERR(COUNT)"),
    PV("map at max_elements", &small_lim, BOTH, "%3\r\n", "%3{ D1"),
    PV("map over max_elements", &small_lim, BOTH, "%4\r\n", "ERR(COUNT)"),
    PV("set over max_elements", &small_lim, BOTH, "~4\r\n", "ERR(COUNT)"),
    PV("push over max_elements", &small_lim, BOTH, ">4\r\n", "ERR(COUNT)"),
    PV("attribute over max_elements", &small_lim, BOTH, "|4\r\n", "ERR(COUNT)"),
    PV("depth at max_depth", &small_lim, BOTH, "*1\r\n*1\r\n*1\r\n:1\r\n", "*1{ *1{ *1{ :1}}};*"),
    PV("depth over max_depth", &small_lim, BOTH, "*1\r\n*1\r\n*1\r\n*1\r\n",
       "*1{ *1{ *1{ ERR(DEPTH)"),
    PV("empty aggregate over max_depth", &small_lim, BOTH, "*1\r\n*1\r\n*1\r\n*0\r\n",
       "*1{ *1{ *1{ ERR(DEPTH)"),
    PV("attribute counts in depth", &small_lim, BOTH, "*1\r\n*1\r\n*1\r\n|1\r\n",
       "*1{ *1{ *1{ ERR(DEPTH)"),
};

#define NPVEC (sizeof pvecs / sizeof pvecs[0])

START_TEST(parse_vector)
{
    const struct pvec *v = &pvecs[_i];
    run_feeds(v->name, v->in, v->in_len, v->lim, v->out, v->out_len);
}
END_TEST

/* The same vectors with every bulk streamed in pieces: the same values. */
START_TEST(parse_vector_streamed)
{
    const struct pvec *v = &pvecs[_i];
    if (v->modes == WHOLE_ONLY)
        return;
    struct resp_limits lim;
    if (v->lim)
        lim = *v->lim;
    else
        resp_limits_default(&lim);
    lim.whole_bulk = 0;
    run_feeds(v->name, v->in, v->in_len, &lim, v->out, v->out_len);
}
END_TEST

/* With skip_attributes, attributes vanish and nothing else changes. */
static const struct pvec skipvecs[] = {
    PV("attribute before reply", NULL, BOTH,
       "|1\r\n+key-popularity\r\n%2\r\n$1\r\na\r\n,0.1923\r\n$1\r\nb\r\n,0.0012\r\n"
       "*2\r\n:2039123\r\n:9543892\r\n", "*2{ :2039123 :9543892};*"),
    PV("attribute inside array", NULL, BOTH, "*2\r\n|1\r\n+ttl\r\n:3600\r\n+v\r\n:5\r\n",
       "*2{ +1:v :5};*"),
    PV("empty attribute", NULL, BOTH, "|0\r\n+OK\r\n", "+2:OK;+"),
    PV("nested attributes", NULL, BOTH, "|1\r\n+k\r\n|1\r\n+a\r\n$3\r\nbig\r\n+v\r\n:1\r\n", ":1;:"),
    PV("attribute then pipeline", NULL, BOTH, "*1\r\n|0\r\n:1\r\n+OK\r\n", "*1{ :1};* +2:OK;+"),
};

#define NSKIPVEC (sizeof skipvecs / sizeof skipvecs[0])

START_TEST(parse_skipping_attributes)
{
    const struct pvec *v = &skipvecs[_i];
    struct resp_limits lim;
    resp_limits_default(&lim);
    lim.skip_attributes = 1;
    run_feeds(v->name, v->in, v->in_len, &lim, v->out, v->out_len);
    lim.whole_bulk = 0;
    run_feeds(v->name, v->in, v->in_len, &lim, v->out, v->out_len);
}
END_TEST

/* ---- limits at their defaults, built programmatically */

static char *repeat(const char *head, char fill, size_t n, const char *tail, size_t *len)
{
    size_t h = strlen(head), t = strlen(tail);
    char *s = malloc(h + n + t + 1);
    REQUIRE(s != NULL);
    memcpy(s, head, h);
    memset(s + h, fill, n);
    memcpy(s + h + n, tail, t + 1);
    *len = h + n + t;
    return s;
}

START_TEST(default_max_line)
{
    size_t len;
    char *in = repeat("+", 'a', 64 * 1024, "\r\n", &len);
    struct sbuf want = { 0 };
    sb_put(&want, "+65536:", 7);
    sb_put(&want, in + 1, 64 * 1024);
    sb_put(&want, ";+", 2);
    run_feeds("64 KiB line", in, len, NULL, want.p, want.len);
    free(in);
    sb_free(&want);

    in = repeat("-", 'a', 64 * 1024 + 1, "\r\n", &len);
    run_feeds("64 KiB + 1 line", in, len, NULL, "ERR(LINE)", 9);
    free(in);
}
END_TEST

START_TEST(default_max_depth)
{
    struct sbuf in = { 0 }, want = { 0 };
    for (int i = 0; i < RESP_DEPTH_MAX; i++) {
        sb_put(&in, "*1\r\n", 4);
        sb_put(&want, i ? " *1{" : "*1{", i ? 4 : 3);
    }
    sb_put(&in, "+x\r\n", 4);
    sb_put(&want, " +1:x", 5);
    for (int i = 0; i < RESP_DEPTH_MAX; i++)
        sb_put(&want, "}", 1);
    sb_put(&want, ";*", 2);
    run_feeds("depth 16", in.p, in.len, NULL, want.p, want.len);

    /* one level more fails at the 17th header, whatever follows */
    in.len -= 4;
    want.len = 0;
    for (int i = 0; i < RESP_DEPTH_MAX; i++)
        sb_put(&want, i ? " *1{" : "*1{", i ? 4 : 3);
    sb_put(&in, "*0\r\n", 4);
    sb_put(&want, " ERR(DEPTH)", 11);
    run_feeds("depth 17", in.p, in.len, NULL, want.p, want.len);
    sb_free(&in);
    sb_free(&want);
}
END_TEST

/* A caller's own max_bulk, exactly at and one over, streamed past whole_bulk. */
START_TEST(caller_max_bulk)
{
    struct resp_limits lim;
    resp_limits_default(&lim);
    lim.max_bulk = 100000;
    size_t len;
    char *in = repeat("$100000\r\n", 'z', 100000, "\r\n", &len);
    struct sbuf want = { 0 };
    sb_put(&want, "$100000:", 8);
    sb_put(&want, in + 9, 100000);
    sb_put(&want, ";$", 2);
    run_feeds("bulk at max_bulk", in, len, &lim, want.p, want.len);
    free(in);
    sb_free(&want);
    run_feeds("bulk over max_bulk", "$100001\r\n", 9, &lim, "ERR(BULK)", 9);
}
END_TEST

/* Exactly whole_bulk bytes arrive in one event; one more byte streams. */
START_TEST(whole_bulk_threshold)
{
    struct resp_parser p;
    struct resp_event ev;
    size_t len;
    ck_assert_int_eq(resp_parser_init(&p, NULL), 0);
    char *in = repeat("$65536\r\n", 'q', 65536, "\r\n", &len);
    /* the header and half the payload: nothing consumed yet */
    ck_assert_int_eq(resp_parse(&p, in, 8 + 30000, &ev), 0);
    ck_assert_int_eq(resp_parse(&p, in, len - 1, &ev), 0);
    ck_assert_int_eq(resp_parse(&p, in, len, &ev), (ssize_t)len);
    ck_assert(ev.kind == RESP_EV_VALUE && ev.last && ev.offset == 0);
    ck_assert(ev.data == in + 8 && ev.len == 65536 && ev.total == 65536);
    ck_assert(ev.reply_end && ev.reply_len == len);
    free(in);

    in = repeat("$65537\r\n", 'q', 65537, "\r\n", &len);
    ck_assert_int_eq(resp_parse(&p, in, 8 + 100, &ev), 8 + 100);
    ck_assert(ev.kind == RESP_EV_VALUE && !ev.last && ev.offset == 0);
    ck_assert(ev.data == in + 8 && ev.len == 100 && ev.total == 65537);
    ck_assert(!ev.reply_end && !resp_parser_idle(&p));
    /* the rest of the payload, the CR held back: a piece, not the end */
    ck_assert_int_eq(resp_parse(&p, in + 108, len - 108 - 1, &ev), (ssize_t)(len - 108 - 2));
    ck_assert(!ev.last && ev.offset == 100 && ev.len == 65437);
    ck_assert_int_eq(resp_parse(&p, in + len - 2, 1, &ev), 0);
    ck_assert_int_eq(resp_parse(&p, in + len - 2, 2, &ev), 2);
    ck_assert(ev.last && ev.len == 0 && ev.offset == 65537 && ev.reply_end);
    ck_assert(ev.reply_len == len && resp_parser_idle(&p));
    free(in);
}
END_TEST

/* ---- property: resp_command() output parses back to the same arguments */

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

START_TEST(command_round_trip)
{
    uint64_t seed = 0x9E3779B97F4A7C15ull * (uint64_t)(_i + 1);
    static char store[64 * 1024], wire[128 * 1024];
    struct strbuf b;
    struct sbuf want = { 0 };
    size_t used = 0;
    strbuf_init(&b, wire, sizeof wire);

    int ncmd = 1 + (int)(rng_next(&seed) % 8);
    for (int c = 0; c < ncmd; c++) {
        size_t argc = 1 + rng_next(&seed) % 6;
        const char *argv[6];
        size_t lens[6];
        for (size_t a = 0; a < argc; a++) {
            /* mostly short arguments, sometimes one past the whole_bulk used below */
            size_t n = rng_next(&seed) % 8 == 0 ? rng_next(&seed) % 200 : rng_next(&seed) % 12;
            for (size_t k = 0; k < n; k++) {
                /* bytes that matter to the framing are over-represented */
                static const char special[] = "\r\n$*:+-0";
                uint64_t r = rng_next(&seed);
                store[used + k] = r % 3 ? special[r / 3 % 8] : (char)(r >> 8);
            }
            argv[a] = store + used;
            lens[a] = n;
            used += n;
        }
        size_t before = b.len;
        ck_assert_int_eq(resp_command(&b, argc, argv, lens),
                         (ssize_t)resp_command_len(argc, argv, lens));
        ck_assert_uint_eq(b.len - before, resp_command_len(argc, argv, lens));

        sb_fmt(&want, c ? " *%lld{" : "*%lld{", (long long)argc);
        for (size_t a = 0; a < argc; a++) {
            sb_fmt(&want, " $%lld:", (long long)lens[a]);
            sb_put(&want, argv[a], lens[a]);
        }
        sb_put(&want, "};*", 3);
    }
    ck_assert_int_eq(strbuf_result(&b), (ssize_t)b.len);
    run_feeds("round trip", wire, b.len, NULL, want.p, want.len);
    struct resp_limits lim;
    resp_limits_default(&lim);
    lim.whole_bulk = 8;
    run_feeds("round trip streamed", wire, b.len, &lim, want.p, want.len);
    sb_free(&want);
}
END_TEST

/* ---- parser API */

START_TEST(init_and_limits)
{
    struct resp_parser p;
    struct resp_limits lim, def;
    resp_limits_default(&def);
    ck_assert_int_eq(resp_parser_init(&p, NULL), 0);
    ck_assert(memcmp(&p.lim, &def, sizeof def) == 0);
    ck_assert_uint_eq(def.max_bulk, 512ull * 1024 * 1024);
    ck_assert_uint_eq(def.max_line, 64 * 1024);
    ck_assert_uint_eq(def.max_depth, 16);
    ck_assert(resp_parser_idle(&p));
    lim = def;
    lim.max_depth = 0;
    ck_assert_int_eq(resp_parser_init(&p, &lim), -EINVAL);
    lim.max_depth = RESP_DEPTH_MAX + 1;
    ck_assert_int_eq(resp_parser_init(&p, &lim), -EINVAL);
    lim.max_depth = 1;
    ck_assert_int_eq(resp_parser_init(&p, &lim), 0);
    /* a line of max_line, or a header plus whole_bulk plus CRLF */
    ck_assert_uint_eq(resp_buffer_min(&def), RESP_HEADER_MAX + 64 * 1024 + 2);
    lim.max_line = 1000000;
    ck_assert_uint_eq(resp_buffer_min(&lim), 1 + 1000000 + 2);
}
END_TEST

START_TEST(errors_are_sticky_and_distinct)
{
    struct resp_parser p;
    struct resp_event ev;
    resp_parser_init(&p, NULL);
    ck_assert_int_eq(resp_parse(&p, "", 0, &ev), 0);
    ck_assert_int_eq(resp_parse(&p, "+", 1, &ev), 0);   /* need more is not an error */
    ck_assert_int_eq(resp_parse(&p, "x", 1, &ev), RESP_ERR_TYPE);
    ck_assert_int_eq(resp_parse(&p, "+OK\r\n", 5, &ev), RESP_ERR_TYPE);
    ck_assert_int_eq(resp_parse(&p, "", 0, &ev), RESP_ERR_TYPE);
    /* every code is its own negative value */
    int codes[] = { RESP_ERR_TYPE, RESP_ERR_CRLF, RESP_ERR_LENGTH, RESP_ERR_NEGATIVE,
                    RESP_ERR_OVERFLOW, RESP_ERR_SYNTAX, RESP_ERR_LINE, RESP_ERR_BULK,
                    RESP_ERR_COUNT, RESP_ERR_DEPTH };
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        ck_assert_int_lt(codes[i], 0);
        for (size_t j = 0; j < i; j++)
            ck_assert_int_ne(codes[i], codes[j]);
    }
}
END_TEST

/* A line arriving a byte at a time is searched once: the scan resumes. */
START_TEST(scan_resumes)
{
    struct resp_parser p;
    struct resp_event ev;
    static char line[1000];
    resp_parser_init(&p, NULL);
    line[0] = '+';
    memset(line + 1, 'a', sizeof line - 3);
    line[sizeof line - 2] = '\r';
    line[sizeof line - 1] = '\n';
    for (size_t n = 1; n < sizeof line; n++) {
        ck_assert_int_eq(resp_parse(&p, line, n, &ev), 0);
        /* stops on the CR, which needs the next byte to be judged */
        ck_assert_uint_eq(p.scanned, n < sizeof line - 1 ? n : sizeof line - 2);
    }
    ck_assert_int_eq(resp_parse(&p, line, sizeof line, &ev), (ssize_t)sizeof line);
    ck_assert(ev.data == line + 1 && ev.len == sizeof line - 3);
    ck_assert_uint_eq(p.scanned, 0);
}
END_TEST

START_TEST(event_fields)
{
    struct resp_parser p;
    struct resp_event ev;
    const char *in = "*2\r\n|1\r\n+a\r\n+b\r\n:-5\r\n";
    resp_parser_init(&p, NULL);
    ck_assert_int_eq(resp_parse(&p, in, strlen(in), &ev), 4);
    ck_assert(ev.kind == RESP_EV_BEGIN && ev.type == RESP_ARRAY && ev.integer == 2);
    ck_assert(ev.depth == 0 && ev.closes == 0 && !ev.in_attr && ev.top_type == RESP_ARRAY);
    in += 4;
    ck_assert_int_eq(resp_parse(&p, in, strlen(in), &ev), 4);
    ck_assert(ev.kind == RESP_EV_BEGIN && ev.type == RESP_ATTRIBUTE && ev.depth == 1);
    ck_assert(ev.in_attr && ev.top_type == RESP_ARRAY);
    in += 4;
    ck_assert_int_eq(resp_parse(&p, in, strlen(in), &ev), 4);
    ck_assert(ev.in_attr && ev.depth == 2 && ev.closes == 0);
    in += 4;
    ck_assert_int_eq(resp_parse(&p, in, strlen(in), &ev), 4);
    ck_assert(ev.in_attr && ev.depth == 2 && ev.closes == 1 && !ev.reply_end);
    in += 4;
    ck_assert_int_eq(resp_parse(&p, in, strlen(in), &ev), 5);
    ck_assert(!ev.in_attr && ev.depth == 1 && ev.closes == 0 && ev.integer == -5);
    ck_assert(ev.data == in + 1 && ev.len == 2 && !ev.reply_end);
    ck_assert(!resp_parser_idle(&p));
}
END_TEST

START_TEST(skip_reply_matches_pipeline)
{
    struct resp_parser p;
    int done, type;
    const char *in = "+OK\r\n>2\r\n+a\r\n+b\r\n$3\r\nfoo\r\n*2\r\n:1\r\n";
    size_t len = strlen(in), pos = 0;
    resp_parser_init(&p, NULL);
    ck_assert_int_eq(resp_skip_reply(&p, in, len, &done, &type), 5);
    ck_assert(done && type == RESP_SIMPLE);
    pos += 5;
    ck_assert_int_eq(resp_skip_reply(&p, in + pos, len - pos, &done, &type), 12);
    ck_assert(done && type == RESP_PUSH);
    pos += 12;
    ck_assert_int_eq(resp_skip_reply(&p, in + pos, len - pos, &done, &type), 9);
    ck_assert(done && type == RESP_BULK);
    pos += 9;
    /* the array is cut short: consumed, but not done */
    ck_assert_int_eq(resp_skip_reply(&p, in + pos, len - pos, &done, &type), 8);
    ck_assert(!done);
    ck_assert_int_eq(resp_skip_reply(&p, ":2\r\n", 4, &done, &type), 4);
    ck_assert(done && type == RESP_ARRAY);
    ck_assert_int_eq(resp_skip_reply(&p, ":", 1, &done, &type), 0);
    ck_assert(!done);
    ck_assert_int_eq(resp_skip_reply(&p, "?", 1, &done, &type), RESP_ERR_TYPE);
}
END_TEST

/* ---- command encoder */

START_TEST(command_bytes)
{
    char out[128];
    struct strbuf b;
    const char *argv[] = { "SET", "k", "v" };
    strbuf_init(&b, out, sizeof out);
    ck_assert_int_eq(resp_command(&b, 3, argv, NULL), 27);
    ck_assert_uint_eq(b.len, 27);
    ck_assert_mem_eq(out, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n", 27);

    /* binary-safe: NUL, CR, LF inside, an empty argument */
    const char *bin[] = { "PUBLISH", "r\0m", "a\r\nb", "" };
    const size_t lens[] = { 7, 3, 4, 0 };
    strbuf_init(&b, out, sizeof out);
    static const char want[] = "*4\r\n$7\r\nPUBLISH\r\n$3\r\nr\0m\r\n$4\r\na\r\nb\r\n$0\r\n\r\n";
    ck_assert_int_eq(resp_command(&b, 4, bin, lens), (ssize_t)sizeof want - 1);
    ck_assert_mem_eq(out, want, sizeof want - 1);
    ck_assert_uint_eq(resp_command_len(4, bin, lens), sizeof want - 1);
}
END_TEST

START_TEST(command_long_argument)
{
    static char arg[123456], out[124000];
    struct strbuf b;
    const char *argv[] = { arg };
    size_t len = sizeof arg;
    memset(arg, 'x', sizeof arg);
    strbuf_init(&b, out, sizeof out);
    ck_assert_int_eq(resp_command(&b, 1, argv, &len), 4 + 9 + (ssize_t)sizeof arg + 2);
    ck_assert_mem_eq(out, "*1\r\n$123456\r\nxxx", 16);
}
END_TEST

START_TEST(command_all_or_nothing)
{
    char out[64];
    struct strbuf b;
    const char *argv[] = { "GET", "key" };
    size_t need = resp_command_len(2, argv, NULL);
    ck_assert_uint_eq(need, 22);

    strbuf_init(&b, out, need);                 /* exactly fits */
    ck_assert_int_eq(resp_command(&b, 2, argv, NULL), 22);
    ck_assert_int_eq(strbuf_result(&b), 22);

    strbuf_init(&b, out, need - 1);             /* one short: untouched, not overflowed */
    ck_assert_int_eq(resp_command(&b, 2, argv, NULL), -ENOSPC);
    ck_assert_uint_eq(b.len, 0);
    ck_assert_int_eq(b.overflow, 0);

    strbuf_init(&b, out, sizeof out);           /* pipelining until full */
    ck_assert_int_eq(resp_command(&b, 2, argv, NULL), 22);
    ck_assert_int_eq(resp_command(&b, 2, argv, NULL), 22);
    ck_assert_int_eq(resp_command(&b, 2, argv, NULL), -ENOSPC);
    ck_assert_uint_eq(b.len, 44);
    ck_assert_int_eq(strbuf_result(&b), 44);

    b.overflow = 1;                             /* an earlier append failed */
    b.len = 0;
    ck_assert_int_eq(resp_command(&b, 2, argv, NULL), -ENOSPC);

    strbuf_init(&b, out, sizeof out);
    ck_assert_int_eq(resp_command(&b, 0, argv, NULL), -EINVAL);
    ck_assert_uint_eq(b.len, 0);

    strbuf_init(&b, NULL, SIZE_MAX);            /* measuring */
    ck_assert_int_eq(resp_command(&b, 2, argv, NULL), 22);
    ck_assert_uint_eq(b.len, 22);
}
END_TEST

START_TEST(command_pipeline_parses)
{
    char out[256];
    struct strbuf b;
    const char *a1[] = { "SUBSCRIBE", "room:lobby" };
    const char *a2[] = { "XADD", "s", "*", "m", "hi" };
    const char *a3[] = { "PING" };
    strbuf_init(&b, out, sizeof out);
    ck_assert_int_gt(resp_command(&b, 2, a1, NULL), 0);
    ck_assert_int_gt(resp_command(&b, 5, a2, NULL), 0);
    ck_assert_int_gt(resp_command(&b, 1, a3, NULL), 0);
    static const char want[] = "*2{ $9:SUBSCRIBE $10:room:lobby};* "
                               "*5{ $4:XADD $1:s $1:* $1:m $2:hi};* *1{ $4:PING};*";
    run_feeds("pipeline", out, b.len, NULL, want, sizeof want - 1);
}
END_TEST

Suite *resp_suite(void)
{
    Suite *s = suite_create("resp");
    TCase *tc = tcase_create("vectors");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, parse_vector, 0, (int)NPVEC);
    tcase_add_loop_test(tc, parse_vector_streamed, 0, (int)NPVEC);
    tcase_add_loop_test(tc, parse_skipping_attributes, 0, (int)NSKIPVEC);
    suite_add_tcase(s, tc);

    tc = tcase_create("limits");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, default_max_line);
    tcase_add_test(tc, default_max_depth);
    tcase_add_test(tc, caller_max_bulk);
    tcase_add_test(tc, whole_bulk_threshold);
    suite_add_tcase(s, tc);

    tc = tcase_create("api");
    tcase_add_test(tc, init_and_limits);
    tcase_add_test(tc, errors_are_sticky_and_distinct);
    tcase_add_test(tc, scan_resumes);
    tcase_add_test(tc, event_fields);
    tcase_add_test(tc, skip_reply_matches_pipeline);
    suite_add_tcase(s, tc);

    tc = tcase_create("encoder");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, command_bytes);
    tcase_add_test(tc, command_long_argument);
    tcase_add_test(tc, command_all_or_nothing);
    tcase_add_test(tc, command_pipeline_parses);
    tcase_add_loop_test(tc, command_round_trip, 0, 40);
    suite_add_tcase(s, tc);
    return s;
}

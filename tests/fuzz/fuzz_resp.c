/*
 * fuzz_resp: resp_parse() must give the same answer however the bytes
 * arrive. Each input is fed whole, in data-chosen steps, cut once at a
 * data-chosen point and (when short) one byte at a time; every call gets an
 * exact-size copy of the unconsumed bytes, so ASan sees any read past len.
 * The outcome (a hash of every value, with bulk pieces hashed as one
 * payload; the error; bytes consumed and left) must match across feeds, and
 * every event is checked against a model of the nesting. Each input runs
 * under the default limits and under small ones. The input's bytes are also
 * encoded as a command with resp_command() and parsed back.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "resp.h"

#define FNV_OFFSET 14695981039346656037ull
#define FNV_PRIME  1099511628211ull

static uint64_t mix(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * FNV_PRIME;
    return h;
}

static uint64_t mix_u64(uint64_t h, uint64_t v)
{
    return mix(h, &v, sizeof v);
}

struct feed {
    struct resp_parser p;
    uint64_t h;             /* every completed token */
    uint64_t ph;            /* payload of the bulk still streaming */
    uint64_t have;          /* its bytes so far */
    int      piece_open;
    unsigned depth, attrs;
    int      attr_at[RESP_DEPTH_MAX];
    uint64_t since_reply;
    size_t   start;         /* input bytes consumed */
    int      err;
};

static void feed_init(struct feed *f, const struct resp_limits *lim)
{
    memset(f, 0, sizeof *f);
    int rc = resp_parser_init(&f->p, lim);
    assert(rc == 0);
    (void)rc;
    f->h = FNV_OFFSET;
    f->ph = FNV_OFFSET;
}

static void on_event(struct feed *f, const struct resp_event *ev, const char *at, size_t k)
{
    f->since_reply += k;
    if (ev->kind == RESP_EV_NONE) {
        assert(f->p.lim.skip_attributes && ev->in_attr && !ev->closes && !ev->reply_end);
        return;
    }
    assert(ev->depth == f->depth);
    assert(ev->in_attr == (f->attrs > 0 || (ev->kind == RESP_EV_BEGIN &&
                                            ev->type == RESP_ATTRIBUTE)));
    assert(ev->len == 0 || (ev->data >= at && ev->data + ev->len <= at + k));
    if (ev->kind == RESP_EV_BEGIN) {
        assert(!f->piece_open && ev->integer >= 0);
        assert((uint64_t)ev->integer <= f->p.lim.max_elements);
        assert(f->depth < f->p.lim.max_depth);
        f->h = mix_u64(f->h, 'B' | (uint64_t)ev->type << 8 | (uint64_t)ev->in_attr << 16);
        f->h = mix_u64(f->h, (uint64_t)ev->integer);
        f->attr_at[f->depth++] = ev->type == RESP_ATTRIBUTE;
        f->attrs += ev->type == RESP_ATTRIBUTE;
    } else {
        assert(ev->kind == RESP_EV_VALUE);
        assert(ev->offset == f->have && ev->offset + ev->len <= ev->total);
        assert(!ev->last || ev->offset + ev->len == ev->total);
        if (ev->type == RESP_BULK || ev->type == RESP_BULK_ERROR || ev->type == RESP_VERBATIM)
            assert(ev->total <= f->p.lim.max_bulk);
        else
            assert(ev->offset == 0 && ev->last && ev->total <= f->p.lim.max_line);
        f->ph = mix(f->ph, ev->data, ev->len);
        f->have += ev->len;
        f->piece_open = !ev->last;
        if (!ev->last) {
            assert(!ev->closes && !ev->reply_end);
            return;
        }
        f->h = mix_u64(f->h, 'V' | (uint64_t)ev->type << 8 | (uint64_t)ev->wire << 16 |
                                 (uint64_t)ev->in_attr << 24);
        f->h = mix_u64(f->h, (uint64_t)ev->integer);
        f->h = mix_u64(f->h, f->ph);
        f->h = mix_u64(f->h, ev->total);
        f->ph = FNV_OFFSET;
        f->have = 0;
    }
    assert(ev->closes <= f->depth);
    for (unsigned i = 0; i < ev->closes; i++)
        f->attrs -= f->attr_at[--f->depth];
    assert(ev->in_attr || f->attrs == 0);
    f->h = mix_u64(f->h, ev->closes);
    if (ev->reply_end) {
        assert(f->depth == 0 && resp_parser_idle(&f->p));
        assert(ev->reply_len == f->since_reply);
        f->h = mix_u64(f->h, (uint64_t)ev->top_type << 32 | ev->reply_len);
        f->since_reply = 0;
    }
}

/* The input now extends to END: parse what is unconsumed until stuck. */
static void feed_to(struct feed *f, const uint8_t *data, size_t end)
{
    if (f->err || end == f->start)
        return;
    size_t n = end - f->start, pos = 0;
    char *b = malloc(n);
    assert(b != NULL);
    memcpy(b, data + f->start, n);
    for (;;) {
        struct resp_event ev;
        ssize_t k = resp_parse(&f->p, b + pos, n - pos, &ev);
        if (k < 0) {
            f->err = (int)k;
            assert(k >= RESP_ERR_DEPTH);
            assert(resp_parse(&f->p, b + pos, n - pos, &ev) == k);
            break;
        }
        if (k == 0)
            break;
        assert((size_t)k <= n - pos);
        on_event(f, &ev, b + pos, (size_t)k);
        pos += (size_t)k;
    }
    free(b);
    f->start += pos;
}

struct outcome {
    uint64_t h, ph, have;
    size_t   start;
    unsigned depth;
    int      err;
};

static struct outcome result(const struct feed *f)
{
    struct outcome o = { f->h, f->ph, f->have, f->start, f->depth, f->err };
    return o;
}

static void same(const struct outcome *a, const struct outcome *b)
{
    assert(a->err == b->err && a->h == b->h && a->start == b->start);
    if (a->err == 0)
        assert(a->ph == b->ph && a->have == b->have && a->depth == b->depth);
}

static void run(const uint8_t *data, size_t size, const struct resp_limits *lim)
{
    struct feed f;
    feed_init(&f, lim);
    feed_to(&f, data, size);
    struct outcome whole = result(&f), part;

    /* growing prefixes, step sizes taken from the data */
    feed_init(&f, lim);
    for (size_t i = 0, k = 0; k < size; i++) {
        k += 1 + (size_t)(data[i % size] % 7);
        feed_to(&f, data, k < size ? k : size);
    }
    part = result(&f);
    same(&whole, &part);

    /* one cut, then the rest */
    if (size > 1) {
        feed_init(&f, lim);
        feed_to(&f, data, 1 + (size_t)data[0] * 31 % (size - 1));
        feed_to(&f, data, size);
        part = result(&f);
        same(&whole, &part);
    }

    if (size <= 256) {
        feed_init(&f, lim);
        for (size_t k = 1; k <= size; k++)
            feed_to(&f, data, k);
        part = result(&f);
        same(&whole, &part);
    }
}

/* Any bytes, cut into arguments, survive resp_command() and the parser. */
static void round_trip(const uint8_t *data, size_t size)
{
    const char *argv[8];
    size_t lens[8], argc = 0, pos = 0;
    while (argc < 8 && pos < size) {
        size_t n = data[pos] % 16;
        pos++;
        n = n < size - pos ? n : size - pos;
        argv[argc] = (const char *)data + pos;
        lens[argc++] = n;
        pos += n;
    }
    if (argc == 0)
        return;
    static char wire[2048];
    struct strbuf b;
    strbuf_init(&b, wire, sizeof wire);
    ssize_t w = resp_command(&b, argc, argv, lens);
    assert(w > 0 && (size_t)w == resp_command_len(argc, argv, lens));

    struct resp_parser p;
    struct resp_event ev;
    resp_parser_init(&p, NULL);
    size_t at = 0;
    ssize_t k = resp_parse(&p, wire, b.len, &ev);
    assert(k > 0 && ev.kind == RESP_EV_BEGIN && ev.type == RESP_ARRAY &&
           (size_t)ev.integer == argc);
    at += (size_t)k;
    for (size_t i = 0; i < argc; i++) {
        k = resp_parse(&p, wire + at, b.len - at, &ev);
        assert(k > 0 && ev.type == RESP_BULK && ev.last && ev.len == lens[i]);
        assert(ev.len == 0 || memcmp(ev.data, argv[i], ev.len) == 0);
        assert(ev.reply_end == (i + 1 == argc));
        at += (size_t)k;
    }
    assert(at == b.len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct resp_limits lim;
    resp_limits_default(&lim);
    run(data, size, &lim);

    /* small limits, so every bound is reachable from a short input */
    lim.max_bulk = 64;
    lim.max_elements = 8;
    lim.max_line = 16;
    lim.whole_bulk = size > 0 && data[0] % 3 == 0 ? 0 : 8;
    lim.max_depth = 1 + (unsigned)(size % RESP_DEPTH_MAX);
    lim.skip_attributes = (int)(size & 1);
    run(data, size, &lim);

    round_trip(data, size);
    return 0;
}

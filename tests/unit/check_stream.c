/*
 * check_stream: the room stream (server/stream.c). A writer model plays the
 * connection: it concatenates what stream_iov() offers, "writes" only the
 * first k bytes of it to a peer buffer, reports them with stream_consumed()
 * and drops the private bytes that call says were written. Tests compare the
 * peer's bytes with the exact frames it must have received, so a frame cut by
 * a private frame, a byte lost at the ring end or in a growth, or a wrong
 * private count shows as a byte mismatch, not just a wrong count.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "stream.h"
#include "ws_frame.h"

#define MAXIOV 8

struct bytes { uint8_t *p; size_t len, cap; };

struct conn {
    struct stream_cursor cur;
    struct bytes priv;      /* the connection's own output, not yet written */
    struct bytes peer;      /* everything the peer has received, in order */
    int max;                /* iovecs per writev; 0 = MAXIOV */
};

/* A run of frames: their concatenation and where each one ends. */
struct batch { struct bytes all; size_t end[8]; int n; };

/* Per-test state at file scope, so the teardown frees it even after a failure. */
static struct stream S;
static struct conn cn[3];
static struct bytes f1, f2, want, got, p1, p2;
static struct batch batch;

/* ---- byte sequences ------------------------------------------------------ */

static void put(struct bytes *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap != 0 ? b->cap : 256;
        while (cap < b->len + n)
            cap *= 2;
        b->p = realloc(b->p, cap);
        ck_assert_ptr_nonnull(b->p);
        b->cap = cap;
    }
    if (n > 0)
        memcpy(b->p + b->len, p, n);
    b->len += n;
}

static void release(struct bytes *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* Exact comparison that names the first differing byte. */
static void expect_eq(const struct bytes *g, const struct bytes *w)
{
    size_t n = g->len < w->len ? g->len : w->len, i = 0;
    while (i < n && g->p[i] == w->p[i])
        i++;
    ck_assert_msg(i == n && g->len == w->len,
                  "got %zu bytes, expected %zu; first difference at byte %zu", g->len, w->len, i);
}

/*
 * B := one unmasked server frame of PLEN payload bytes. The payload is an
 * LCG seeded by SEED, so no two frames of a test look alike and a byte read
 * from the wrong place cannot match by chance.
 */
static struct bytes *mk(struct bytes *b, int opcode, uint64_t plen, uint32_t seed)
{
    uint8_t hdr[WS_SERVER_HEADER_MAX];
    b->len = 0;
    put(b, hdr, ws_frame_header_encode(hdr, opcode, 1, plen));
    uint32_t x = seed * 40503u + 1;
    for (uint64_t i = 0; i < plen; i++) {
        x = x * 1664525u + 1013904223u;
        uint8_t c = (uint8_t)(x >> 24);
        put(b, &c, 1);
    }
    return b;
}

/* Append F to the stream and, when ALSO is given, to what a member must get. */
static void push(const struct bytes *f, struct bytes *also)
{
    ck_assert_int_eq(stream_append(&S, f->p, f->len), 0);
    if (also != NULL)
        put(also, f->p, f->len);
}

static void concat(struct bytes *out, const struct iovec *iov, int n)
{
    for (int i = 0; i < n; i++)
        put(out, iov[i].iov_base, iov[i].iov_len);
}

/* ---- the writer model ---------------------------------------------------- */

/*
 * One writev that the socket accepts only K bytes of. The private count
 * stream_consumed() returns is checked against where the written bytes
 * really came from. Returns the bytes written.
 */
static size_t conn_write(struct conn *c, size_t k)
{
    struct iovec iov[MAXIOV];
    int max = c->max != 0 ? c->max : MAXIOV;
    int n = stream_iov(&c->cur, c->priv.p, c->priv.len, iov, max);
    ck_assert_int_ge(n, 0);
    ck_assert_int_le(n, max);
    size_t done = 0, priv = 0, offered = 0;
    uintptr_t lo = (uintptr_t)c->priv.p, hi = lo + c->priv.len;
    for (int i = 0; i < n; i++) {
        offered += iov[i].iov_len;
        size_t take = iov[i].iov_len < k - done ? iov[i].iov_len : k - done;
        put(&c->peer, iov[i].iov_base, take);
        uintptr_t at = (uintptr_t)iov[i].iov_base;
        priv += at >= lo && at < hi ? take : 0;     /* bytes from the private buffer */
        done += take;
    }
    /* With iovecs to spare, everything pending must have been offered. */
    if (n < max)
        ck_assert_uint_eq(offered, c->priv.len + stream_pending(&c->cur));
    ck_assert_uint_eq(stream_consumed(&c->cur, c->priv.len, done), priv);
    if (priv > 0)
        memmove(c->priv.p, c->priv.p + priv, c->priv.len - priv);
    c->priv.len -= priv;
    return done;
}

/* Write exactly K bytes, in as many writevs as the iovec limit needs. */
static void write_upto(struct conn *c, size_t k)
{
    for (size_t done = 0; done < k;) {
        size_t w = conn_write(c, k - done);
        ck_assert_uint_gt(w, 0);
        done += w;
    }
}

/* Write everything, CHUNK bytes per writev at most. */
static void drain(struct conn *c, size_t chunk)
{
    while (stream_pending(&c->cur) > 0 || c->priv.len > 0)
        ck_assert_uint_gt(conn_write(c, chunk), 0);
}

static void reset_stream(void)
{
    for (int i = 0; i < 3; i++) {
        if (cn[i].cur.s != NULL)
            stream_detach(&cn[i].cur);
        release(&cn[i].priv);
        release(&cn[i].peer);
        memset(&cn[i], 0, sizeof cn[i]);
    }
    if (S.buf != NULL)
        stream_fini(&S);
}

static void teardown(void)
{
    reset_stream();
    struct bytes *all[] = { &f1, &f2, &want, &got, &p1, &p2, &batch.all };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        release(all[i]);
    batch.n = 0;
}

/*
 * A fresh stream with cn[0] attached and head at SKIP, reached with filler
 * frames cn[0] writes at once (so the ring never needs to grow for them):
 * what follows starts at SKIP % cap of the ring.
 */
static void start(uint64_t min_cap, uint64_t skip)
{
    reset_stream();
    ck_assert_int_eq(stream_init(&S, min_cap), 0);
    stream_attach(&S, &cn[0].cur);
    ck_assert_uint_ne(skip, 1);
    for (uint32_t seed = 9000; S.head < skip; seed++) {
        uint64_t r = skip - S.head;
        push(mk(&f2, WS_OP_BINARY, (r > 127 ? 100 : r) - 2, seed), NULL);
        drain(&cn[0], SIZE_MAX);
    }
    cn[0].peer.len = 0;
}

/* ---- basics -------------------------------------------------------------- */

/*
 * Exact for real sizes; a tiny ask (want 0) gets any power of two holding
 * it. No buffer until the first append, which makes one of that size.
 */
START_TEST(init_rounds_up)
{
    static const uint64_t asks[][2] = {
        { 0, 0 }, { 1, 0 }, { 3, 0 }, { 64, 64 }, { 65, 128 }, { 256, 256 }, { 257, 512 },
        { 1000, 1024 }, { 65536, 65536 },
    };
    static const uint8_t frame[] = { 0x82, 0x01, 'x' };
    for (size_t i = 0; i < sizeof asks / sizeof asks[0]; i++) {
        ck_assert_int_eq(stream_init(&S, asks[i][0]), 0);
        ck_assert(S.buf == NULL && S.cap == 0 && S.head == 0 && S.cursors == NULL &&
                  S.ncursors == 0);
        ck_assert_int_eq(stream_append(&S, frame, sizeof frame), 0);
        if (asks[i][1] != 0)
            ck_assert_uint_eq(S.cap, asks[i][1]);
        ck_assert(S.cap >= asks[i][0] && S.cap > 0 && (S.cap & (S.cap - 1)) == 0);
        ck_assert(S.buf != NULL && S.head == sizeof frame);
        stream_fini(&S);
    }
}
END_TEST

/*
 * The buffer goes back only once every cursor has written everything; the
 * next append makes a new one and positions go on from where they were.
 */
START_TEST(release_when_drained)
{
    reset_stream();
    want.len = 0;
    ck_assert_int_eq(stream_init(&S, 256), 0);
    ck_assert_int_eq(stream_release_drained(&S), 0);     /* no buffer yet */
    stream_attach(&S, &cn[0].cur);
    stream_attach(&S, &cn[1].cur);
    push(mk(&f1, WS_OP_TEXT, 100, 1), &want);
    ck_assert_int_eq(stream_release_drained(&S), 0);     /* both still owe it */
    drain(&cn[0], SIZE_MAX);
    write_upto(&cn[1], 50);                               /* half a frame */
    ck_assert_int_eq(stream_release_drained(&S), 0);
    drain(&cn[1], SIZE_MAX);
    uint64_t head = S.head;
    ck_assert_int_eq(stream_release_drained(&S), 1);
    ck_assert(S.buf == NULL && S.cap == 0 && S.head == head);
    /* A later frame reaches both, after the first, byte for byte. */
    push(mk(&f2, WS_OP_BINARY, 300, 2), &want);
    ck_assert_uint_ge(S.cap, 512);
    drain(&cn[0], 7);
    drain(&cn[1], SIZE_MAX);
    for (int i = 0; i < 2; i++) {
        ck_assert_uint_eq(cn[i].peer.len, want.len);
        ck_assert_mem_eq(cn[i].peer.p, want.p, want.len);
    }
    ck_assert_int_eq(stream_release_drained(&S), 1);
    reset_stream();
}
END_TEST

/* ---- every split point --------------------------------------------------- */

/*
 * Private frame p1 is queued, the socket takes K bytes, then p2 is queued (a
 * pong made while a stream frame is half written), then the rest goes out
 * CHUNK bytes per writev. The peer must see p1, the stream up to the end of
 * the frame K fell in, p2, the rest of the stream: p2 never inside a frame.
 */
struct split_case {
    uint64_t min_cap, skip;         /* SKIP: where the batch starts in the ring */
    size_t chunk;
    int max;
    int large;                      /* big frames: only k near edges */
};

/* The first frame end at or after J (0 for 0). */
static size_t batch_boundary(size_t j)
{
    for (int i = 0; j > 0 && i < batch.n; i++)
        if (batch.end[i] >= j)
            return batch.end[i];
    return 0;
}

static void split_one(const struct split_case *sc, size_t k)
{
    start(sc->min_cap, sc->skip);
    struct conn *c = &cn[0];
    c->max = sc->max;
    for (int i = 0, from = 0; i < batch.n; from = (int)batch.end[i++])
        ck_assert_int_eq(stream_append(&S, batch.all.p + from, batch.end[i] - (size_t)from), 0);
    put(&c->priv, p1.p, p1.len);
    write_upto(c, k);
    put(&c->priv, p2.p, p2.len);
    drain(c, sc->chunk);

    size_t at = batch_boundary(k > p1.len ? k - p1.len : 0);
    want.len = 0;
    put(&want, p1.p, p1.len);
    put(&want, batch.all.p, at);
    put(&want, p2.p, p2.len);
    put(&want, batch.all.p + at, batch.all.len - at);
    ck_assert_msg(c->peer.len == want.len && memcmp(c->peer.p, want.p, want.len) == 0,
                  "split at k=%zu (skip %llu, chunk %zu, max %d)", k,
                  (unsigned long long)sc->skip, sc->chunk, sc->max);
    /* The batch fits: every wrap must have been a wrap, not a growth. */
    if (batch.all.len <= sc->min_cap)
        ck_assert_uint_eq(S.cap, sc->min_cap);
}

static void make_batch(const uint64_t *payloads, int n, uint32_t seed)
{
    for (int i = 0; i < n; i++) {
        mk(&f1, WS_OP_TEXT, payloads[i], seed + (uint32_t)i);
        put(&batch.all, f1.p, f1.len);
        batch.end[batch.n++] = batch.all.len;
    }
    mk(&p1, WS_OP_PONG, 4, 501);
    mk(&p2, WS_OP_PONG, 10, 502);
}

/* K close to a frame end or inside a header, plus a stride through payloads. */
static int near_edge(size_t k)
{
    for (int i = 0; i < batch.n; i++)
        if (k + 24 >= batch.end[i] && k <= batch.end[i] + 24)
            return 1;
    return k < 40 || k % 4099 == 0;
}

static const struct split_case split_cases[] = {
    { 1024, 0, SIZE_MAX, 0, 0 },    /* the rest written at once */
    { 1024, 0, 1, 0, 0 },           /* one byte per writev */
    { 1024, 1023, 5, 0, 0 },        /* the first header split by the ring end */
    { 1024, 1022, SIZE_MAX, 0, 0 }, /* a frame ending exactly at the ring end */
    { 1024, 890, 3, 0, 0 },         /* the 4-byte header of the 126 frame split */
    { 1024, 900, 1, 0, 0 },         /* the 125 frame straddles the end */
    { 1024, 0, SIZE_MAX, 1, 0 },    /* one iovec per writev */
    { 1024, 900, 2, 2, 0 },         /* two iovecs, across the wrap */
    { 64, 0, SIZE_MAX, 0, 1 },      /* large frames, in a ring that must grow */
    { 64, 0, 4093, 0, 1 },
    { 64, 0, 4093, 2, 1 },
};

START_TEST(split_every_k)
{
    static const uint64_t small[] = { 0, 1, 125, 126, 300 };
    /* 2-, 4- and 10-byte headers at their limits; every k would be 10^10 bytes. */
    static const uint64_t large[] = { 65535, 65536, 0, 126, 125 };
    const struct split_case *sc = &split_cases[_i];
    make_batch(sc->large ? large : small, 5, sc->large ? 200 : 100);
    size_t runs = 0;
    for (size_t k = 0; k <= p1.len + batch.all.len; k++)
        if (!sc->large || near_edge(k)) {
            split_one(sc, k);
            runs++;
        }
    ck_assert_uint_gt(runs, 200);
}
END_TEST

/* ---- wrap-around --------------------------------------------------------- */

START_TEST(wrap_splits_iov)
{
    start(64, 60);
    push(mk(&f1, WS_OP_TEXT, 18, 7), NULL);     /* [60, 80): 4 bytes, then 16 at 0 */
    mk(&p1, WS_OP_PONG, 0, 8);
    ck_assert_uint_eq(S.cap, 64);
    struct iovec iov[MAXIOV];
    ck_assert_int_eq(stream_iov(&cn[0].cur, p1.p, p1.len, iov, MAXIOV), 3);
    ck_assert(iov[0].iov_base == p1.p && iov[1].iov_len == 4 && iov[2].iov_len == 16);
    concat(&got, iov + 1, 2);
    expect_eq(&got, &f1);
    put(&cn[0].priv, p1.p, p1.len);
    drain(&cn[0], 3);
    put(&want, p1.p, p1.len);
    put(&want, f1.p, f1.len);
    expect_eq(&cn[0].peer, &want);
    ck_assert_uint_eq(S.cap, 64);
}
END_TEST

/* ---- members joining ----------------------------------------------------- */

START_TEST(join_mid_stream)
{
    struct conn *a = &cn[0], *b = &cn[1];
    struct iovec iov[MAXIOV];
    start(256, 0);
    push(mk(&f1, WS_OP_TEXT, 20, 300), &want);
    push(mk(&f1, WS_OP_TEXT, 50, 301), &want);
    write_upto(a, 7);                       /* A is inside the first frame */
    stream_attach(&S, &b->cur);
    ck_assert_uint_eq(stream_pending(&b->cur), 0);
    ck_assert_int_eq(stream_iov(&b->cur, NULL, 0, iov, MAXIOV), 0);
    for (uint32_t i = 0; i < 2; i++) {
        push(mk(&f1, WS_OP_TEXT, 80 + i * 30, 302 + i), &want);
        put(&got, f1.p, f1.len);            /* B's expected sequence */
    }
    ck_assert_uint_eq(S.head, want.len);
    ck_assert_uint_eq(stream_pending(&b->cur), got.len);
    ck_assert_uint_eq(stream_pending(&a->cur), want.len - 7);
    /* Writing nothing changes nothing. */
    ck_assert_uint_eq(stream_consumed(&b->cur, 0, 0), 0);
    ck_assert_uint_eq(stream_pending(&b->cur), got.len);
    /* Interleaved, at different paces: each cursor is its own. */
    while (stream_pending(&a->cur) > 0 || stream_pending(&b->cur) > 0) {
        conn_write(a, 11);
        conn_write(b, 1);
    }
    expect_eq(&a->peer, &want);
    expect_eq(&b->peer, &got);
}
END_TEST

/* ---- growth and the rest of a half-written frame ------------------------- */

/* stream_rest_of_frame(C) is exactly F minus its first WRITTEN bytes. */
static void expect_rest(const struct conn *c, const struct bytes *f, size_t written)
{
    struct iovec iov[2];
    struct bytes r = { 0 };
    concat(&r, iov, stream_rest_of_frame(&c->cur, iov));
    ck_assert_uint_eq(r.len, f->len - written);
    ck_assert(r.len == 0 || memcmp(r.p, f->p + written, r.len) == 0);
    release(&r);
}

START_TEST(growth_keeps_slow_cursor)
{
    struct conn *slow = &cn[0], *fast = &cn[1];
    start(256, 0);
    stream_attach(&S, &fast->cur);
    push(mk(&f2, WS_OP_TEXT, 60, 400), &want);
    write_upto(slow, 10);                   /* slow stays mid-frame: off > 0 */
    uint64_t cap = S.cap;
    int grew = 0;
    for (uint32_t i = 0; i < 200; i++) {
        push(mk(&f1, WS_OP_TEXT, i * 37 % 300, 401 + i), &want);
        drain(fast, 1 + i % 50);
        grew += S.cap != cap;
        cap = S.cap;
    }
    ck_assert_int_ge(grew, 3);
    ck_assert_uint_eq(S.cap & (S.cap - 1), 0);
    expect_eq(&fast->peer, &want);
    expect_rest(slow, &f2, 10);
    ck_assert_uint_eq(stream_pending(&slow->cur), want.len - 10);
    drain(slow, 7);
    expect_eq(&slow->peer, &want);
}
END_TEST

START_TEST(growth_with_wrapped_range)
{
    struct conn *slow = &cn[0], *fast = &cn[1];
    start(64, 40);
    stream_attach(&S, &fast->cur);
    push(mk(&f2, WS_OP_TEXT, 30, 500), &want);  /* [40, 72): wraps at 64 */
    write_upto(slow, 5);
    push(mk(&f1, WS_OP_TEXT, 20, 501), &want);  /* [72, 94): still fits */
    drain(fast, SIZE_MAX);
    ck_assert_uint_eq(S.cap, 64);
    /* The live range [40, 94) wraps; the next frames force growths. */
    for (uint32_t i = 0; i < 6; i++) {
        push(mk(&f1, WS_OP_TEXT, 50 + i * 40, 502 + i), &want);
        drain(fast, 13);
        expect_rest(slow, &f2, 5);
    }
    ck_assert_uint_gt(S.cap, 64);
    expect_eq(&fast->peer, &want);
    drain(slow, 9);
    expect_eq(&slow->peer, &want);
}
END_TEST

/*
 * K bytes of a frame at [50, 90) of a 64-byte ring are written, a pong is
 * queued, then the member leaves as chat_close() does: the rest of the frame
 * goes in front of its private output, then it detaches.
 */
static void rest_at(size_t k)
{
    struct conn *c = &cn[0];
    start(64, 50);
    push(mk(&f1, WS_OP_TEXT, 38, 600), NULL);
    push(mk(&f2, WS_OP_TEXT, 8, 601), NULL);   /* the rest must stop before it */
    write_upto(c, k);
    put(&c->priv, "\x8a\x00", 2);
    struct iovec iov[2];
    int n = stream_rest_of_frame(&c->cur, iov);
    if (k == 0 || k == f1.len) {
        ck_assert_int_eq(n, 0);             /* between frames */
    } else {
        ck_assert_int_eq(n, 50 + k < 64 ? 2 : 1);
        expect_rest(c, &f1, k);
    }
    got.len = 0;
    concat(&got, iov, n);
    put(&got, "\x8a\x00", 2);
    c->priv.len = 0;
    put(&c->priv, got.p, got.len);
    stream_detach(&c->cur);
    drain(c, 4);
    want.len = 0;
    put(&want, f1.p, k > 0 ? f1.len : 0);
    put(&want, "\x8a\x00", 2);
    expect_eq(&c->peer, &want);
}

START_TEST(rest_of_frame_every_k)
{
    for (size_t k = 0; k <= 40; k++)
        rest_at(k);
}
END_TEST

/* ---- detach -------------------------------------------------------------- */

START_TEST(detach_only_cursor)
{
    struct conn *c = &cn[0];
    start(64, 0);
    push(mk(&f1, WS_OP_TEXT, 20, 700), NULL);
    mk(&p1, WS_OP_PONG, 3, 701);
    write_upto(c, 4);
    stream_detach(&c->cur);
    ck_assert(c->cur.s == NULL && S.cursors == NULL && S.ncursors == 0);
    struct iovec iov[2];
    ck_assert(stream_pending(&c->cur) == 0 && stream_rest_of_frame(&c->cur, iov) == 0);
    ck_assert_int_eq(stream_iov(&c->cur, NULL, 0, iov, 2), 0);
    ck_assert_int_eq(stream_iov(&c->cur, p1.p, p1.len, iov, 2), 1);
    ck_assert(iov[0].iov_base == p1.p && iov[0].iov_len == p1.len);
    /* Detached, whatever is written is private. */
    ck_assert_uint_eq(stream_consumed(&c->cur, p1.len, 2), 2);
    push(&f1, NULL);                        /* nobody listens */
    /* Re-attached: only what is appended from now on. */
    stream_attach(&S, &c->cur);
    ck_assert(stream_pending(&c->cur) == 0 && S.ncursors == 1);
    c->peer.len = 0;
    push(mk(&f1, WS_OP_TEXT, 30, 702), NULL);
    drain(c, 3);
    expect_eq(&c->peer, &f1);
}
END_TEST

/* The cursor list holds exactly W[0..n), linked both ways. */
static void check_list(struct conn *const *w, int n)
{
    ck_assert_uint_eq(S.ncursors, (uint32_t)n);
    int seen = 0;
    const struct stream_cursor *prev = NULL;
    for (const struct stream_cursor *c = S.cursors; c != NULL; prev = c, c = c->next) {
        ck_assert_int_lt(seen++, n);
        ck_assert(c->prev == prev && c->s == &S);
        int found = 0;
        for (int i = 0; i < n; i++)
            found |= &w[i]->cur == c;
        ck_assert(found);
    }
    ck_assert_int_eq(seen, n);
}

START_TEST(detach_one_of_three)
{
    start(64, 0);
    stream_attach(&S, &cn[1].cur);
    stream_attach(&S, &cn[2].cur);
    push(mk(&f1, WS_OP_TEXT, 40, 800), &want);
    write_upto(&cn[1], 3);
    drain(&cn[2], SIZE_MAX);
    stream_detach(&cn[_i].cur);             /* _i: first, middle or last attached */
    struct conn *left[3];
    for (int i = 0, j = 0; i < 3; i++)
        if (i != _i)
            left[j++] = &cn[i];
    check_list(left, 2);
    for (uint32_t i = 0; i < 20; i++) {     /* enough to wrap and grow */
        push(mk(&f1, WS_OP_TEXT, 10 + i * 9, 801 + i), &want);
        drain(left[i % 2], 5);
    }
    for (int j = 0; j < 2; j++) {
        drain(left[j], 17);
        expect_eq(&left[j]->peer, &want);
    }
    /* Back in: the list takes it again and it gets only new frames. */
    stream_attach(&S, &cn[_i].cur);
    left[2] = &cn[_i];
    check_list(left, 3);
    cn[_i].peer.len = 0;
    push(&f1, NULL);
    drain(&cn[_i], 2);
    expect_eq(&cn[_i].peer, &f1);
}
END_TEST

/* A detached laggard must not hold bytes: the ring keeps its size. */
START_TEST(detach_releases_space)
{
    start(64, 0);
    stream_attach(&S, &cn[1].cur);
    push(mk(&f1, WS_OP_TEXT, 28, 900), NULL);
    write_upto(&cn[0], 1);
    stream_detach(&cn[0].cur);
    for (int i = 0; i < 100; i++) {
        drain(&cn[1], SIZE_MAX);
        push(&f1, NULL);
    }
    ck_assert_uint_eq(S.cap, 64);
}
END_TEST

/* ---- iovec limit --------------------------------------------------------- */

/* For every MAX: a prefix of the full layout, and nothing written past iov[MAX). */
static void check_prefixes(const struct conn *c, const struct bytes *full)
{
    static uint8_t mark;
    for (int max = 0; max <= 5; max++) {
        struct iovec iov[MAXIOV];
        for (int i = 0; i < MAXIOV; i++)
            iov[i] = (struct iovec){ .iov_base = &mark, .iov_len = 12345 };
        int n = stream_iov(&c->cur, c->priv.p, c->priv.len, iov, max);
        ck_assert_int_le(n, max);
        ck_assert_int_ge(n, max > 0 ? 1 : 0);
        for (int i = max; i < MAXIOV; i++)
            ck_assert(iov[i].iov_base == &mark && iov[i].iov_len == 12345);
        got.len = 0;
        concat(&got, iov, n);
        ck_assert_uint_le(got.len, full->len);
        ck_assert(got.len == 0 || memcmp(got.p, full->p, got.len) == 0);
    }
}

/* Frames F [skip, +30) and G (20 bytes): skip 50 wraps F's rest, skip 20 wraps G. */
START_TEST(max_iov_prefix)
{
    struct conn *c = &cn[0];
    start(64, _i == 0 ? 50 : 20);
    push(mk(&f1, WS_OP_TEXT, 28, 1000), NULL);
    push(mk(&f2, WS_OP_TEXT, 18, 1001), NULL);
    write_upto(c, 5);
    put(&c->priv, "\x8a\x01z", 3);
    /* The whole layout: rest of F, the private bytes, G. */
    put(&want, f1.p + 5, 25);
    put(&want, "\x8a\x01z", 3);
    put(&want, f2.p, f2.len);
    struct iovec iov[MAXIOV];
    ck_assert_int_eq(stream_iov(&c->cur, c->priv.p, c->priv.len, iov, MAXIOV), 4);
    check_prefixes(c, &want);
    /* And one iovec per writev still delivers it all, in order. */
    c->max = 1;
    drain(c, SIZE_MAX);
    ck_assert_uint_eq(S.cap, 64);
    got.len = 0;
    put(&got, f1.p, 5);
    put(&got, want.p, want.len);
    expect_eq(&c->peer, &got);
}
END_TEST

Suite *stream_suite(void)
{
    Suite *s = suite_create("stream");
    TCase *tc = tcase_create("cursors");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, init_rounds_up);
    tcase_add_test(tc, release_when_drained);
    tcase_add_test(tc, wrap_splits_iov);
    tcase_add_test(tc, join_mid_stream);
    tcase_add_test(tc, growth_keeps_slow_cursor);
    tcase_add_test(tc, growth_with_wrapped_range);
    tcase_add_test(tc, rest_of_frame_every_k);
    tcase_add_test(tc, detach_only_cursor);
    tcase_add_loop_test(tc, detach_one_of_three, 0, 3);
    tcase_add_test(tc, detach_releases_space);
    tcase_add_loop_test(tc, max_iov_prefix, 0, 2);
    suite_add_tcase(s, tc);

    /* Hundreds of fresh streams each: minutes under sanitizers, seconds without. */
    tc = tcase_create("split");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_loop_test(tc, split_every_k, 0, (int)(sizeof split_cases / sizeof split_cases[0]));
    suite_add_tcase(s, tc);
    return s;
}

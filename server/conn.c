/*
 * conn: see conn.h. The table is one calloc'd array, so a connection struct
 * costs nothing until first touched, and the free list hands back the most
 * recently freed (cache-warm) struct first.
 */
#include "conn.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define OUT_MIN      4096u
#define SPARE_MAX    (256u * 1024u)   /* larger buffers go back to malloc */

int conn_table_init(struct conn_table *t, uint32_t cap)
{
    memset(t, 0, sizeof *t);
    /*
     * calloc of a large array maps zero pages: a struct costs memory only
     * once a connection first uses it, so an idle worker stays small and the
     * benchmark's per-connection figure includes the struct itself.
     */
    t->conns = calloc(cap, sizeof *t->conns);
    if (t->conns == NULL)
        return -1;
    t->cap = cap;
    return 0;
}

void conn_table_fini(struct conn_table *t)
{
    for (uint32_t i = 0; i < t->fresh; i++)
        if (t->conns[i].state != CONN_FREE)
            conn_release(t, &t->conns[i]);
    free(t->conns);
    free(t->spare);
    memset(t, 0, sizeof *t);
}

struct conn *conn_alloc(struct conn_table *t, int fd)
{
    struct conn *c = t->free_list;
    if (c != NULL)
        t->free_list = c->next_free;
    else if (t->fresh < t->cap)
        c = &t->conns[t->fresh++];  /* never used yet: still a zero page */
    else
        return NULL;
    uint32_t id = (uint32_t)(c - t->conns);
    memset(c, 0, sizeof *c);
    c->id = id;
    c->fd = fd;
    c->state = CONN_HTTP;
    t->used++;
    return c;
}

void conn_release(struct conn_table *t, struct conn *c)
{
    free(c->in);
    conn_msg_clear(t, c);
    if (c->out != NULL) {
        c->out_off = c->out_len;
        conn_out_consume(t, c, 0);
    }
    uint32_t id = c->id;
    memset(c, 0, sizeof *c);
    c->id = id;
    c->fd = -1;
    c->state = CONN_FREE;
    c->next_free = t->free_list;
    t->free_list = c;
    t->used--;
}

static int out_grow(struct conn_table *t, struct conn *c, size_t need)
{
    size_t want = (size_t)c->out_len + need;
    if (want > UINT32_MAX) {
        errno = ENOMEM;
        return -1;
    }
    if (c->out == NULL && t->spare != NULL && t->spare_cap >= want) {
        c->out = t->spare;
        c->out_cap = t->spare_cap;
        t->spare = NULL;
        t->spare_cap = 0;
        return 0;
    }
    /* Written bytes at the front are dead: slide before growing. */
    if (c->out_off > 0) {
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
        want = (size_t)c->out_len + need;
        if (want <= c->out_cap)
            return 0;
    }
    size_t cap = c->out_cap ? c->out_cap : OUT_MIN;
    while (cap < want)
        cap = cap * 2 > UINT32_MAX ? UINT32_MAX : cap * 2;
    uint8_t *p = realloc(c->out, cap);
    if (p == NULL)
        return -1;
    c->out = p;
    c->out_cap = (uint32_t)cap;
    return 0;
}

uint8_t *conn_out_reserve(struct conn_table *t, struct conn *c, size_t n)
{
    if (c->out == NULL || (size_t)c->out_cap - c->out_len < n)
        if (out_grow(t, c, n) < 0)
            return NULL;
    uint8_t *p = c->out + c->out_len;
    c->out_len += (uint32_t)n;
    return p;
}

int conn_out_append(struct conn_table *t, struct conn *c, const void *p, size_t n)
{
    uint8_t *dst = conn_out_reserve(t, c, n);
    if (dst == NULL)
        return -1;
    memcpy(dst, p, n);
    return 0;
}

int conn_out_insert(struct conn_table *t, struct conn *c, size_t at, const void *p, size_t n)
{
    size_t tail = conn_out_pending(c) - at;
    /* Reserving may slide or move the buffer: positions are taken after it. */
    if (conn_out_reserve(t, c, n) == NULL)
        return -1;
    uint8_t *dst = c->out + c->out_off + at;
    memmove(dst + n, dst, tail);
    memcpy(dst, p, n);
    return 0;
}

void conn_out_consume(struct conn_table *t, struct conn *c, size_t n)
{
    c->out_off += (uint32_t)n;
    if (c->out_off < c->out_len)
        return;
    /*
     * Drained: an idle connection keeps no buffer. One buffer is cached per
     * worker so a busy request/response connection does not malloc each time.
     */
    if (c->out != NULL) {
        if (t->spare == NULL && c->out_cap <= SPARE_MAX) {
            t->spare = c->out;
            t->spare_cap = c->out_cap;
        } else {
            free(c->out);
        }
    }
    c->out = NULL;
    c->out_off = c->out_len = c->out_cap = 0;
}

int conn_in_keep(struct conn *c, const uint8_t *data, size_t n)
{
    if (n == 0) {
        conn_in_clear(c);
        return 0;
    }
    if (n > c->in_cap) {
        uint8_t *p = malloc(n);
        if (p == NULL)
            return -1;
        free(c->in);
        c->in = p;
        c->in_cap = (uint32_t)n;
    }
    memmove(c->in, data, n);
    c->in_len = (uint32_t)n;
    return 0;
}

void conn_in_clear(struct conn *c)
{
    free(c->in);
    c->in = NULL;
    c->in_len = c->in_cap = 0;
}

int conn_msg_append(struct conn_table *t, struct conn *c, const uint8_t *p, size_t n,
                    uint64_t budget)
{
    if (c->msg_len + n > c->msg_cap) {
        uint64_t cap = c->msg_cap ? c->msg_cap : 1024;
        while (cap < c->msg_len + n)
            cap *= 2;
        if (t->msg_bytes - c->msg_cap + cap > budget)
            return -ENOSPC;
        uint8_t *m = realloc(c->msg, cap);
        if (m == NULL)
            return -ENOMEM;
        t->msg_bytes += cap - c->msg_cap;
        c->msg = m;
        c->msg_cap = cap;
    }
    memcpy(c->msg + c->msg_len, p, n);
    c->msg_len += n;
    return 0;
}

void conn_msg_clear(struct conn_table *t, struct conn *c)
{
    t->msg_bytes -= c->msg_cap;
    if (c->msg_since_s != 0)
        t->msg_open--;
    c->msg_since_s = 0;
    free(c->msg);
    c->msg = NULL;
    c->msg_len = c->msg_cap = 0;
}

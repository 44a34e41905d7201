/*
 * strbuf: a bounded append-only writer into a caller's buffer, shared by
 * every builder of wire text (HTTP response heads, chat events, /stats).
 * Appends never write past the capacity; the first one that does not fit
 * marks the writer as overflowed, later appends are ignored, and
 * strbuf_result() reports -ENOSPC, so a builder checks once at the end.
 * With buf == NULL the writer only measures.
 */
#ifndef WSM_STRBUF_H
#define WSM_STRBUF_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "result.h"

struct strbuf {
    char  *buf;
    size_t cap, len;
    int    overflow;
};

static inline void strbuf_init(struct strbuf *b, char *buf, size_t cap)
{
    b->buf = buf;
    b->cap = cap;
    b->len = 0;
    b->overflow = 0;
}

void strbuf_put(struct strbuf *b, const void *p, size_t n);
void strbuf_puts(struct strbuf *b, const char *s);
void strbuf_put_u64(struct strbuf *b, uint64_t v);
/* S[0..n) as a JSON string, quotes included (json_escape). */
void strbuf_put_json(struct strbuf *b, const char *s, size_t n);
/* One formatted piece of at most STRBUF_PRINTF_MAX - 1 bytes. */
#define STRBUF_PRINTF_MAX 512
void strbuf_printf(struct strbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The length written, or -ENOSPC when anything did not fit. */
static inline ssize_t strbuf_result(const struct strbuf *b)
{
    return b->overflow ? -ENOSPC : (ssize_t)b->len;
}

#endif

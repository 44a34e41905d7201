/*
 * strbuf: see strbuf.h.
 */
#include "strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "json.h"

void strbuf_put(struct strbuf *b, const void *p, size_t n)
{
    if (b->overflow || b->cap - b->len < n) {
        b->overflow = 1;
        return;
    }
    if (b->buf != NULL && n > 0)
        memcpy(b->buf + b->len, p, n);
    b->len += n;
}

void strbuf_puts(struct strbuf *b, const char *s)
{
    strbuf_put(b, s, strlen(s));
}

void strbuf_put_u64(struct strbuf *b, uint64_t v)
{
    char d[24];
    int n = snprintf(d, sizeof d, "%llu", (unsigned long long)v);
    strbuf_put(b, d, (size_t)n);
}

void strbuf_put_json(struct strbuf *b, const char *s, size_t n)
{
    size_t need = json_escaped_len(s, n);
    strbuf_put(b, "\"", 1);
    if (b->overflow || b->cap - b->len < need) {
        b->overflow = 1;
        return;
    }
    b->len += b->buf != NULL ? json_escape(b->buf + b->len, s, n) : need;
    strbuf_put(b, "\"", 1);
}

void strbuf_printf(struct strbuf *b, const char *fmt, ...)
{
    /* Through a scratch line so that measuring and writing agree byte for
     * byte (vsnprintf into the buffer would need room for its NUL). */
    char line[STRBUF_PRINTF_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof line) {
        b->overflow = 1;
        return;
    }
    strbuf_put(b, line, (size_t)n);
}

/*
 * redis_url: see redis_url.h.
 */
#include "redis_url.h"

#include <errno.h>
#include <string.h>

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decode S[0..n) into OUT (cap bytes + NUL). Bytes written, or -1. */
static long decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            if (n - i < 3)
                return -1;
            int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (k == cap)
            return -1;
        out[k++] = c;
    }
    out[k] = '\0';
    return (long)k;
}

/* Decimal digits S[0..n) no greater than MAX into *OUT: 0 or -1. */
static int number(const char *s, size_t n, uint32_t max, uint32_t *out)
{
    uint32_t v = 0;
    if (n == 0 || n > 10)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        uint64_t next = (uint64_t)v * 10 + (uint32_t)(s[i] - '0');
        if (next > max)
            return -1;
        v = (uint32_t)next;
    }
    *out = v;
    return 0;
}

static int host_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_';
}

static int fail(const char **why, const char *reason)
{
    if (why != NULL)
        *why = reason;
    return -EINVAL;
}

int redis_url_parse(struct redis_url *u, const char *text, size_t len, const char **why)
{
    static const char scheme[] = "redis://";
    memset(u, 0, sizeof *u);
    u->port = 6379;
    if (len < sizeof scheme - 1 || memcmp(text, scheme, sizeof scheme - 1) != 0)
        return fail(why, "expected redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]");
    const char *p = text + sizeof scheme - 1, *end = text + len;
    /* The authority ends at the first '/'; a password may hold '/' only escaped. */
    const char *auth_end = memchr(p, '/', (size_t)(end - p));
    if (auth_end == NULL)
        auth_end = end;
    const char *at = NULL;
    for (const char *q = p; q < auth_end; q++)
        if (*q == '@')
            at = q;
    if (at != NULL) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (colon == NULL)
            return fail(why, "credentials need a ':' before the password (redis://:PASSWORD@HOST)");
        /* The user is a C string (redis_link sends strlen bytes): no %00 in it. */
        long un = decode(p, (size_t)(colon - p), u->user, REDIS_URL_SECRET_MAX);
        if (un < 0 || memchr(u->user, '\0', (size_t)un) != NULL)
            return fail(why, "bad or too long user name");
        long n = decode(colon + 1, (size_t)(at - colon - 1), u->password, REDIS_URL_SECRET_MAX);
        if (n < 0)
            return fail(why, "bad %-escape or too long password");
        if (n == 0)
            return fail(why, "empty password");
        u->password_len = (size_t)n;
        p = at + 1;
    }
    const char *host_end;
    if (p < auth_end && *p == '[') {
        const char *close = memchr(p, ']', (size_t)(auth_end - p));
        if (close == NULL || close == p + 1)
            return fail(why, "unterminated or empty [IPv6] host");
        for (const char *q = p + 1; q < close; q++)
            if (!(hex_value(*q) >= 0 || *q == ':' || *q == '.'))
                return fail(why, "bad character in [IPv6] host");
        if ((size_t)(close - p - 1) > REDIS_URL_HOST_MAX)
            return fail(why, "host is too long");
        memcpy(u->host, p + 1, (size_t)(close - p - 1));
        host_end = close + 1;
    } else {
        host_end = p;
        while (host_end < auth_end && *host_end != ':')
            host_end++;
        if (host_end == p)
            return fail(why, "no host");
        if ((size_t)(host_end - p) > REDIS_URL_HOST_MAX)
            return fail(why, "host is too long");
        for (const char *q = p; q < host_end; q++)
            if (!host_char(*q))
                return fail(why, "bad character in host");
        memcpy(u->host, p, (size_t)(host_end - p));
    }
    if (host_end < auth_end) {
        uint32_t port;
        if (*host_end != ':' ||
            number(host_end + 1, (size_t)(auth_end - host_end - 1), 65535, &port) < 0 || port == 0)
            return fail(why, "port must be 1..65535");
        u->port = (uint16_t)port;
    }
    if (auth_end < end) {
        const char *db = auth_end + 1;
        if (db < end && number(db, (size_t)(end - db), REDIS_DB_MAX, &u->db) < 0)
            return fail(why, "database must be a number 0..16383");
    }
    return 0;
}

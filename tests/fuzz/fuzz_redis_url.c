/*
 * fuzz_redis_url: libFuzzer target for server/redis_url.c. The input is
 * parsed from an exact-size heap copy (ASan sees any read past len). A
 * refusal has a reason; an accepted URL keeps every bound (host 1..255
 * bytes of its alphabet, port 1..65535, db <= 16383, user and password
 * within 511 bytes, no NUL in the user, the password NUL-terminated after
 * password_len). Each accepted URL is written back in one canonical form
 * (every user and password byte %-escaped, an IPv6 host in brackets) and
 * must parse to the same fields.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis_url.h"

#define CHECK(cond) do { if (!(cond)) abort(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t escape(char *out, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        out[3 * i] = '%';
        out[3 * i + 1] = hex[c >> 4];
        out[3 * i + 2] = hex[c & 15];
    }
    return 3 * n;
}

static int host_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == ':';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct redis_url u, v;
    static char canon[8 + 2 * 3 * (REDIS_URL_SECRET_MAX + 1) + REDIS_URL_HOST_MAX + 32];
    char *text = malloc(size ? size : 1);
    CHECK(text != NULL);
    memcpy(text, data, size);
    const char *why = NULL;
    int rc = redis_url_parse(&u, text, size, &why);
    free(text);
    if (rc != 0) {
        CHECK(rc == -EINVAL);
        CHECK(why != NULL && why[0] != '\0');
        return 0;
    }

    size_t hl = strlen(u.host), ul = strlen(u.user);
    CHECK(hl >= 1 && hl <= REDIS_URL_HOST_MAX);
    for (size_t i = 0; i < hl; i++)
        CHECK(host_byte((unsigned char)u.host[i]));
    CHECK(u.port >= 1);
    CHECK(u.db <= REDIS_DB_MAX);
    CHECK(ul <= REDIS_URL_SECRET_MAX);
    CHECK(u.password_len <= REDIS_URL_SECRET_MAX);
    CHECK(u.password[u.password_len] == '\0');
    if (ul > 0)
        CHECK(u.password_len > 0);      /* a user always comes with a password */

    /* The canonical form parses to the same fields. */
    size_t n = (size_t)snprintf(canon, sizeof canon, "redis://");
    if (u.password_len > 0) {
        n += escape(canon + n, u.user, ul);
        canon[n++] = ':';
        n += escape(canon + n, u.password, u.password_len);
        canon[n++] = '@';
    }
    int v6 = strchr(u.host, ':') != NULL;
    n += (size_t)snprintf(canon + n, sizeof canon - n, v6 ? "[%s]:%u/%u" : "%s:%u/%u", u.host,
                          (unsigned)u.port, (unsigned)u.db);
    CHECK(n < sizeof canon);
    why = NULL;
    rc = redis_url_parse(&v, canon, n, &why);
    CHECK(rc == 0);
    CHECK(strcmp(u.host, v.host) == 0);
    CHECK(u.port == v.port && u.db == v.db);
    CHECK(strcmp(u.user, v.user) == 0);
    CHECK(u.password_len == v.password_len);
    CHECK(memcmp(u.password, v.password, u.password_len) == 0);
    return 0;
}

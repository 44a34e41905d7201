/*
 * redis_url: the `cluster` directive's value, redis://[[USER]:PASSWORD@]HOST[:PORT][/DB].
 * Pure: no I/O, no allocation. HOST is a name, an IPv4 address or an IPv6
 * address in brackets; PORT defaults to 6379, DB to 0. USER and PASSWORD
 * may carry %XX escapes (a password with '@' or ':' in it).
 */
#ifndef WSM_REDIS_URL_H
#define WSM_REDIS_URL_H

#include <stddef.h>
#include <stdint.h>

#define REDIS_URL_HOST_MAX     255
#define REDIS_URL_SECRET_MAX   511
#define REDIS_DB_MAX           16383

struct redis_url {
    char     host[REDIS_URL_HOST_MAX + 1];       /* without brackets */
    uint16_t port;
    uint32_t db;
    char     user[REDIS_URL_SECRET_MAX + 1];     /* "": AUTH with the password alone */
    char     password[REDIS_URL_SECRET_MAX + 1]; /* "": no AUTH */
    size_t   password_len;                        /* may hold NUL bytes (%00) */
};

/*
 * Parse TEXT[0..len) into *U. 0, or -EINVAL with a short reason (a static
 * string) in *WHY.
 */
int redis_url_parse(struct redis_url *u, const char *text, size_t len, const char **why);

#endif

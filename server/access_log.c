/*
 * access_log: see access_log.h. The line is built left to right by small
 * appenders into the caller's buffer; the bounds of the fields add up to
 * less than ACCESS_LINE_MAX (checked at compile time below), so only the
 * cap test at the top can fail.
 */
#include "access_log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* "[03/Dec/2026:14:30:00 +0000]" */
#define TIME_FIELD 28
#define ADDR_FIELD INET6_ADDRSTRLEN
#define U64_FIELD  20

_Static_assert(ADDR_FIELD + 3 + ACCESS_USER_FIELD + 1 + TIME_FIELD + 2 + ACCESS_METHOD_FIELD +
               1 + ACCESS_PATH_FIELD + 1 + 4 * (1 + U64_FIELD) + 1 <= ACCESS_LINE_MAX,
               "every field at its bound fits in ACCESS_LINE_MAX");

struct out {
    char  *p;
    size_t n;
};

static void put(struct out *o, const char *s, size_t len)
{
    memcpy(o->p + o->n, s, len);
    o->n += len;
}

static void put_str(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

static void put_u64(struct out *o, uint64_t v)
{
    char tmp[U64_FIELD];
    size_t i = sizeof tmp;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    put(o, tmp + i, sizeof tmp - i);
}

/* Two digits, zero-padded (0..99). */
static void put_2(struct out *o, unsigned v)
{
    char d[2] = { (char)('0' + v / 10 % 10), (char)('0' + v % 10) };
    put(o, d, 2);
}

/* Bytes a client may choose that are written as they are. */
static int plain(unsigned char ch)
{
    return ch > 0x20 && ch < 0x7f && ch != '"' && ch != '\\';
}

/*
 * S[0..len) escaped, at most MAX bytes of it: when the rest does not fit,
 * as much as fits in MAX - 3 is written, then "...". NULL or empty: "-".
 */
static void put_field(struct out *o, const char *s, size_t len, size_t max)
{
    static const char hex[] = "0123456789abcdef";
    if (s == NULL || len == 0) {
        put(o, "-", 1);
        return;
    }
    size_t need = 0, i;
    for (i = 0; i < len && need <= max; i++)
        need += plain((unsigned char)s[i]) ? 1 : 4;
    size_t room = need <= max ? max : max - 3;
    size_t used = 0;
    for (i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        size_t w = plain(ch) ? 1 : 4;
        if (used + w > room)
            break;
        if (w == 1) {
            o->p[o->n++] = (char)ch;
        } else {
            char e[4] = { '\\', 'x', hex[ch >> 4], hex[ch & 15] };
            put(o, e, 4);
        }
        used += w;
    }
    if (i < len)
        put(o, "...", 3);
}

static void put_addr(struct out *o, const uint8_t *a)
{
    static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
    char buf[ADDR_FIELD];
    if (a == NULL) {
        put(o, "-", 1);
        return;
    }
    int v4 = memcmp(a, mapped, sizeof mapped) == 0;
    if (inet_ntop(v4 ? AF_INET : AF_INET6, v4 ? a + 12 : a, buf, sizeof buf) == NULL)
        put(o, "-", 1);
    else
        put_str(o, buf);
}

/* nginx's $time_local: "[03/Dec/2026:14:30:00 +0100]". */
static void put_time(struct out *o, int64_t unix_s, int32_t off_s)
{
    static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
    /* Offsets beyond ±24h are not real time zones: clamp rather than garble. */
    if (off_s > 86400 || off_s < -86400)
        off_s = 0;
    time_t t = (time_t)(unix_s + off_s);
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL || tm.tm_year + 1900 < 0 || tm.tm_year + 1900 > 9999) {
        t = 0;
        gmtime_r(&t, &tm);
    }
    put(o, "[", 1);
    put_2(o, (unsigned)tm.tm_mday);
    put(o, "/", 1);
    put(o, months[tm.tm_mon], 3);
    put(o, "/", 1);
    unsigned y = (unsigned)(tm.tm_year + 1900);
    put_2(o, y / 100);
    put_2(o, y % 100);
    put(o, ":", 1);
    put_2(o, (unsigned)tm.tm_hour);
    put(o, ":", 1);
    put_2(o, (unsigned)tm.tm_min);
    put(o, ":", 1);
    put_2(o, (unsigned)tm.tm_sec);
    unsigned a = (unsigned)(off_s < 0 ? -off_s : off_s) / 60;
    put(o, off_s < 0 ? " -" : " +", 2);
    put_2(o, a / 60);
    put_2(o, a % 60);
    put(o, "]", 1);
}

ssize_t access_log_format(char *buf, size_t cap, const struct access_entry *e)
{
    if (cap < ACCESS_LINE_MAX)
        return -ENOSPC;
    struct out o = { buf, 0 };
    put_addr(&o, e->addr);
    put(&o, " - ", 3);
    /* A user named "-" must not read as a guest. */
    if (e->user_len == 1 && e->user[0] == '-')
        put(&o, "\\x2d", 4);
    else
        put_field(&o, e->user, e->user_len, ACCESS_USER_FIELD);
    put(&o, " ", 1);
    put_time(&o, e->unix_s, e->utc_offset_s);
    put(&o, " \"", 2);
    put_field(&o, e->method, e->method_len, ACCESS_METHOD_FIELD);
    put(&o, " ", 1);
    put_field(&o, e->path, e->path_len, ACCESS_PATH_FIELD);
    put(&o, "\" ", 2);
    put_u64(&o, e->status);
    put(&o, " ", 1);
    put_u64(&o, e->bytes_in);
    put(&o, " ", 1);
    put_u64(&o, e->bytes_out);
    put(&o, " ", 1);
    put_u64(&o, e->duration_ms);
    put(&o, "\n", 1);
    return (ssize_t)o.n;
}

int access_log_open(const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
    return fd < 0 ? -errno : fd;
}

int access_log_reopen(int *fd, const char *path)
{
    int nfd = access_log_open(path);
    if (nfd < 0)
        return nfd;
    if (*fd >= 0)
        close(*fd);
    *fd = nfd;
    return 0;
}

int access_log_write(int fd, const char *line, size_t len)
{
    ssize_t rc;
    do {
        rc = write(fd, line, len);
    } while (rc < 0 && errno == EINTR);
    if (rc < 0)
        return -errno;
    return (size_t)rc == len ? 0 : -EIO;
}

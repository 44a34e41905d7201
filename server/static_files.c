/*
 * static_files: GET/HEAD of the browser client under web_root.
 *
 * Safety model (never read outside web_root):
 *   1. The raw path is percent-decoded once into a bounded buffer. A bad
 *      escape is 400; a decoded path over STATIC_PATH_MAX (1024) bytes is 414.
 *      Bytes that no file we serve has in its name are refused with 404:
 *      NUL, other control bytes, backslashes, and an encoded '/' (%2f), so a
 *      segment boundary only ever comes from a literal '/'.
 *   2. The decoded path is split on '/'; empty and "." segments are dropped,
 *      ".." is refused with 403 (never resolved: a browser normalises it
 *      away, so only a probe sends one), and a segment starting with '.'
 *      (".git", ".env") is 404.
 *   3. Each segment is opened with openat() relative to a fresh dirfd of
 *      web_root with O_NOFOLLOW, so no symlink inside web_root is ever
 *      followed, whether it points in or out (403), and nothing can be
 *      swapped in between a check and the open. web_root itself may be a
 *      symlink: that is the administrator's choice, not the client's.
 *   4. fstat() on the opened fd must say regular file. A directory is served
 *      through its index.html (named without its trailing slash: 301 to the
 *      slash form, so relative links in it work); without one it is 404,
 *      never a listing. FIFOs, devices and sockets are 404.
 * Validators: ETag "inode-size-mtime_ns" and Last-Modified; If-None-Match
 * (weak comparison, lists, "*") or else If-Modified-Since gives 304.
 * Files are small, so each one is read whole per request (capped at
 * STATIC_FILE_MAX; larger ones are 403 with a warn line) into the
 * response's owned buffer; HEAD and 304 never read the file at all.
 * Called from http_conn.c dispatch() for every GET/HEAD that no other route
 * took; method checks (405) are done there.
 */
#include "static_files.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ascii.h"
#include "http.h"
#include "log.h"

#define STATIC_PATH_MAX  1024               /* decoded path bytes; beyond: 414 */
#define STATIC_FILE_MAX  (4u * 1024 * 1024) /* bytes read per request; beyond: 403 */
#define STATIC_SEG_MAX   255                /* NAME_MAX on every Linux filesystem */

/*
 * Sent with every static response. 'self' alone does not cover ws: in every
 * browser, hence the explicit schemes in connect-src; inline script and style
 * stay forbidden, which is the point of rendering user text as text only.
 */
#define STATIC_HEADERS                                                        \
    "Cache-Control: no-cache\r\n"                                             \
    "X-Content-Type-Options: nosniff\r\n"                                     \
    "Referrer-Policy: no-referrer\r\n"                                        \
    "Content-Security-Policy: default-src 'self'; script-src 'self'; "        \
    "style-src 'self'; img-src 'self' data:; connect-src 'self' ws: wss:; "   \
    "object-src 'none'; base-uri 'none'; form-action 'self'; "                \
    "frame-ancestors 'none'\r\n"

static const struct {
    const char *ext;
    const char *type;
} mime_types[] = {
    { "html", "text/html; charset=utf-8" },
    { "htm",  "text/html; charset=utf-8" },
    { "js",   "text/javascript; charset=utf-8" },
    { "mjs",  "text/javascript; charset=utf-8" },
    { "css",  "text/css; charset=utf-8" },
    { "svg",  "image/svg+xml" },
    { "png",  "image/png" },
    { "ico",  "image/x-icon" },
    { "json", "application/json" },
    { "webmanifest", "application/manifest+json" },
    { "txt",  "text/plain; charset=utf-8" },
    { "jpg",  "image/jpeg" },
    { "jpeg", "image/jpeg" },
    { "webp", "image/webp" },
    { "woff2", "font/woff2" },
};

static const char wdays[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

static const char *mime_for(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (dot == NULL)
        return "application/octet-stream";
    for (size_t i = 0; i < sizeof mime_types / sizeof mime_types[0]; i++)
        if (strcasecmp(dot + 1, mime_types[i].ext) == 0)
            return mime_types[i].type;
    return "application/octet-stream";
}

/*
 * Percent-decode SRC[0..len) into DST (STATIC_PATH_MAX + 1 bytes), NUL-
 * terminated, length in *OUT_LEN. 0, or the HTTP status refusing the path
 * (see the file top). The whole input is scanned before anything is
 * decided, so a bad escape (400) wins over length (414), which wins over a
 * refused byte (404), wherever in the path each one sits.
 */
static int path_decode(const char *src, size_t len, char *dst, size_t *out_len)
{
    size_t n = 0;
    int refuse = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)src[i];
        if (ch == '%') {
            if (len - i < 3 || ascii_hex_value(src[i + 1]) < 0 || ascii_hex_value(src[i + 2]) < 0)
                return 400;
            ch = (unsigned char)(ascii_hex_value(src[i + 1]) << 4 | ascii_hex_value(src[i + 2]));
            i += 2;
            /* A decoded '/' would hide a segment boundary from step 2. */
            if (ch == '/')
                refuse = 404;
        }
        if (ch < 0x20 || ch == 0x7f || ch == '\\')
            refuse = 404;
        if (n < STATIC_PATH_MAX)
            dst[n] = (char)ch;
        n++;
    }
    if (n > STATIC_PATH_MAX)
        return 414;
    if (refuse)
        return refuse;
    dst[n] = '\0';
    *out_len = n;
    return 0;
}

/* The decoded path cut into segments (pointers into the decode buffer). */
struct segments {
    char  *v[STATIC_PATH_MAX / 2 + 1];
    size_t n;
    int    trailing_slash;          /* the path ended in '/': must be a directory */
};

/* Split P in place; 0, or 403 for "..", 404 for a hidden or over-long name. */
static int path_split(char *p, size_t len, struct segments *s)
{
    char *save = NULL;
    s->n = 0;
    s->trailing_slash = len > 0 && p[len - 1] == '/';
    for (char *t = strtok_r(p, "/", &save); t != NULL; t = strtok_r(NULL, "/", &save)) {
        if (strcmp(t, ".") == 0)
            continue;
        if (strcmp(t, "..") == 0)
            return 403;
        if (t[0] == '.' || strlen(t) > STATIC_SEG_MAX)
            return 404;
        s->v[s->n++] = t;
    }
    return 0;
}

/* The status for an open/openat failure. */
static int open_status(int err, const char *what)
{
    switch (err) {
    case ENOENT: case ENOTDIR: case ENAMETOOLONG: case ENXIO:
        return 404;
    case ELOOP:             /* O_NOFOLLOW met a symlink */
    case EACCES: case EPERM:
        return 403;
    case EMFILE: case ENFILE: case ENOMEM:
        log_at(LOG_LVL_WARN, err, "static: openat(\"%s\") failed", what);
        return 503;
    default:
        log_at(LOG_LVL_ERR, err, "static: openat(\"%s\") failed", what);
        return 500;
    }
}

/* openat (never following a symlink) + fstat of NAME under DFD. fd, or -1 + *status. */
static int open_node(int dfd, const char *name, int flags, struct stat *st, int *status)
{
    int fd = openat(dfd, name, flags | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        int err = errno;
        struct stat lst;
        /* With O_DIRECTORY the kernel reports a symlink as ENOTDIR, not ELOOP:
         * look, so every symlink gets the same 403 whatever its position. */
        if (err == ENOTDIR && (flags & O_DIRECTORY) &&
            fstatat(dfd, name, &lst, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(lst.st_mode))
            err = ELOOP;
        *status = open_status(err, name);
        return -1;
    }
    if (fstat(fd, st) < 0) {
        *status = open_status(errno, name);
        close(fd);
        return -1;
    }
    return fd;
}

/*
 * Walk S from a fresh dirfd of ROOT, every component O_NOFOLLOW. On success
 * returns an fd of a regular file (st filled, *name its last component for
 * the MIME type). A directory yields its index.html; *redirect is set when
 * the directory was named without its trailing slash. -1 + *status if not.
 */
static int open_target(const char *root, const struct segments *s, struct stat *st,
                       const char **name, int *redirect, int *status)
{
    /* O_NONBLOCK: a FIFO planted in web_root must not block the worker's open. */
    const int file_flags = O_RDONLY | O_NONBLOCK;
    int dfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    *redirect = 0;
    if (dfd < 0) {
        int err = errno;
        log_at(LOG_LVL_ERR, err, "static: open(\"%s\") (web_root) failed", root);
        *status = err == EMFILE || err == ENFILE ? 503 : 404;
        return -1;
    }
    if (fstat(dfd, st) < 0) {
        *status = open_status(errno, root);
        close(dfd);
        return -1;
    }
    int fd = dfd;
    *name = "index.html";
    for (size_t i = 0; i < s->n; i++) {
        int last = i + 1 == s->n;
        int next = open_node(fd, s->v[i], last ? file_flags : O_RDONLY | O_DIRECTORY,
                             st, status);
        close(fd);
        if (next < 0)
            return -1;
        fd = next;
        *name = s->v[i];
    }
    if (S_ISDIR(st->st_mode)) {
        int idx = open_node(fd, "index.html", file_flags, st, status);
        close(fd);
        if (idx < 0 || !S_ISREG(st->st_mode)) {
            if (idx >= 0)
                close(idx);
            if (idx >= 0 || *status < 500)
                *status = 404;      /* no index: no listing either */
            return -1;
        }
        if (s->n > 0 && !s->trailing_slash) {
            /* Relative links in that index resolve against the slash form. */
            close(idx);
            *redirect = 1;
            return -1;
        }
        fd = idx;
        *name = "index.html";
    } else if (s->trailing_slash) {
        close(fd);                  /* "/file.js/" names a directory that is not one */
        *status = 404;
        return -1;
    }
    if (!S_ISREG(st->st_mode)) {
        close(fd);
        *status = 404;
        return -1;
    }
    return fd;
}

/* IMF-fixdate (RFC 9110 §5.6.7) of T into OUT (29 bytes + NUL; room for odd years). */
static void http_date(time_t t, char out[48])
{
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(out, 48, "%s, %02d %s %04d %02d:%02d:%02d GMT", wdays[tm.tm_wday % 7],
             tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900,
             tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static int two_digits(const char *p)
{
    if (p[0] < '0' || p[0] > '9' || p[1] < '0' || p[1] > '9')
        return -1;
    return (p[0] - '0') * 10 + (p[1] - '0');
}

/*
 * Parse an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"). Returns 0 and *T,
 * or -1. The obsolete RFC 850 and asctime forms are not understood: the
 * header is then ignored, which only costs a full 200 (RFC 9110 §13.1.3
 * tells a recipient to ignore a date it cannot parse).
 */
static int http_date_parse(const char *v, size_t len, time_t *t)
{
    if (len != 29 || v[3] != ',' || v[4] != ' ' || v[7] != ' ' || v[11] != ' ' ||
        v[16] != ' ' || v[19] != ':' || v[22] != ':' || memcmp(v + 25, " GMT", 4) != 0)
        return -1;
    struct tm tm = { 0 };
    int mon = -1;
    for (int i = 0; i < 12; i++)
        if (memcmp(v + 8, months[i], 3) == 0)
            mon = i;
    int day = two_digits(v + 5), y1 = two_digits(v + 12), y2 = two_digits(v + 14);
    int hh = two_digits(v + 17), mm = two_digits(v + 20), ss = two_digits(v + 23);
    if (mon < 0 || day < 1 || day > 31 || y1 < 0 || y2 < 0 || hh < 0 || hh > 23 ||
        mm < 0 || mm > 59 || ss < 0 || ss > 60)
        return -1;
    tm.tm_mday = day;
    tm.tm_mon = mon;
    tm.tm_year = y1 * 100 + y2 - 1900;
    tm.tm_hour = hh;
    tm.tm_min = mm;
    tm.tm_sec = ss;
    *t = timegm(&tm);
    return 0;
}

/*
 * 1 if the If-None-Match list V matches ETAG by the weak comparison that
 * RFC 9110 §13.1.2 prescribes for this header ("W/" ignored), or is "*".
 * A malformed element ends the scan with what matched so far (nothing).
 */
static int etag_listed(const char *v, size_t len, const char *etag)
{
    size_t elen = strlen(etag), i = 0;
    while (i < len) {
        while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        if (i == len)
            break;
        if (v[i] == '*')
            return 1;
        if (len - i >= 2 && v[i] == 'W' && v[i + 1] == '/')
            i += 2;
        if (i == len || v[i] != '"')
            return 0;
        const char *close = memchr(v + i + 1, '"', len - i - 1);
        if (close == NULL)
            return 0;
        size_t tlen = (size_t)(close - (v + i)) + 1;
        if (tlen == elen && memcmp(v + i, etag, elen) == 0)
            return 1;
        i += tlen;
    }
    return 0;
}

/* 1 when the client's cached copy (validators in REQ) is still current. */
static int not_modified(const struct http_request *req, const char *etag, time_t mtime)
{
    const struct http_header *h = http_find_header(req, "If-None-Match");
    if (h != NULL)      /* when present, If-Modified-Since is ignored (§13.1.3) */
        return etag_listed(h->value, h->value_len, etag);
    h = http_find_header(req, "If-Modified-Since");
    time_t since;
    if (h != NULL && http_date_parse(h->value, h->value_len, &since) == 0)
        return mtime <= since;
    return 0;
}

/* Read exactly LEN bytes of FD into a malloc'd buffer. NULL + *status. */
static char *read_whole(int fd, size_t len, const char *name, int *status)
{
    char *buf = malloc(len > 0 ? len : 1);
    if (buf == NULL) {
        *status = 503;
        return NULL;
    }
    size_t got = 0;
    while (got < len) {
        ssize_t n = pread(fd, buf + got, len - got, (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            /* 0: truncated under us (a deploy in progress); the head is not sent yet. */
            log_at(LOG_LVL_WARN, n < 0 ? errno : 0, "static: read of \"%s\" %s", name,
                   n < 0 ? "failed" : "came up short");
            free(buf);
            *status = 500;
            return NULL;
        }
        got += (size_t)n;
    }
    return buf;
}

/*
 * 301 to the directory's URL with its trailing slash. The Location is built
 * from the normalised segments, percent-encoded, so it always starts with a
 * single '/' (never "//host", an open redirect) and cannot carry a CR/LF.
 */
static int redirect_dir(const struct segments *s, struct http_response *resp)
{
    static const char hex[] = "0123456789ABCDEF";
    /* Every decoded path (STATIC_PATH_MAX bytes) fits, each byte encoded as %XX. */
    char extra[HTTP_RESPONSE_HEADERS_MAX];
    _Static_assert(sizeof extra >= 3 * STATIC_PATH_MAX + 64, "any Location fits");
    size_t n = (size_t)snprintf(extra, sizeof extra, "Cache-Control: no-cache\r\nLocation: ");
    for (size_t i = 0; i < s->n; i++) {
        if (n + 2 > sizeof extra)
            return 414;
        extra[n++] = '/';
        for (const unsigned char *p = (const unsigned char *)s->v[i]; *p; p++) {
            if (n + 3 + 4 > sizeof extra)
                return 414;
            if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' || *p == '~') {
                extra[n++] = (char)*p;
            } else {
                extra[n++] = '%';
                extra[n++] = hex[*p >> 4];
                extra[n++] = hex[*p & 15];
            }
        }
    }
    memcpy(extra + n, "/\r\n", 4);
    resp->status = 301;
    memcpy(resp->headers, extra, n + 4);
    return 0;
}

int static_files_serve(const char *web_root, const struct http_request *req,
                       const char *path, size_t path_len, int head_only,
                       struct http_response *resp)
{
    char decoded[STATIC_PATH_MAX + 1];
    size_t dlen = 0;
    struct segments segs;
    int status = path_decode(path, path_len, decoded, &dlen);
    if (status == 0)
        status = path_split(decoded, dlen, &segs);
    if (status != 0)
        return -status;

    struct stat st;
    const char *name;
    int redirect;
    int fd = open_target(web_root, &segs, &st, &name, &redirect, &status);
    if (redirect) {
        struct http_response r;
        http_response_init(&r);
        if (redirect_dir(&segs, &r) != 0)
            return -500;    /* cannot happen: the assertion above sizes the buffer */
        *resp = r;
        return 0;
    }
    if (fd < 0)
        return -status;
    if ((unsigned long long)st.st_size > STATIC_FILE_MAX) {
        log_at(LOG_LVL_WARN, 0, "static: \"%s\" is %lld bytes, over the %u-byte limit",
               name, (long long)st.st_size, STATIC_FILE_MAX);
        close(fd);
        return -403;
    }

    /* inode-size-mtime(ns): changes whenever a deploy replaces or edits the file. */
    char etag[80], lastmod[48], date[48];
    snprintf(etag, sizeof etag, "\"%llx-%llx-%llx\"", (unsigned long long)st.st_ino,
             (unsigned long long)st.st_size,
             (unsigned long long)st.st_mtim.tv_sec * 1000000000ull +
             (unsigned long long)st.st_mtim.tv_nsec);
    http_date(st.st_mtim.tv_sec, lastmod);
    http_date(time(NULL), date);
    size_t size = (size_t)st.st_size;
    http_response_init(resp);
    resp->ctype = mime_for(name);
    /* A 304 carries no body; Content-Length states what a 200 would (RFC 9110 §8.6). */
    resp->length = size;
    int hn = snprintf(resp->headers, sizeof resp->headers,
                      "Date: %s\r\nLast-Modified: %s\r\nETag: %s\r\n" STATIC_HEADERS,
                      date, lastmod, etag);
    if (hn < 0 || (size_t)hn >= sizeof resp->headers) {
        close(fd);
        return -500;        /* cannot happen with the sizes above; never send a cut head */
    }

    if (not_modified(req, etag, st.st_mtim.tv_sec)) {
        close(fd);
        resp->status = 304;
        return 0;
    }
    resp->status = 200;
    if (head_only) {
        close(fd);
        return 0;
    }
    char *body = read_whole(fd, size, name, &status);
    close(fd);
    if (body == NULL)
        return -status;
    log_at(LOG_LVL_DEBUG, 0, "static \"%s\" %zu bytes", name, size);
    resp->body = body;
    resp->owned = body;
    return 0;
}

/*
 * static: the static file handler of the real wsmaster, against a temp
 * web_root built per test (regular files of every MIME type, a directory
 * with and one without index.html, symlinks pointing out of and inside the
 * root, a FIFO, a hidden file, an oversize sparse file) next to a "secret"
 * directory outside the root that no request may ever read.
 *
 * Covers 200 with headers and exact bodies, HEAD, 304 through ETag and
 * through If-Modified-Since, 301 for a directory without its slash, 404,
 * 403/404 for every traversal spelling, 400 for bad escapes, 405 + Allow,
 * 414, keep-alive across requests and pipelining. Responses are read with a
 * small reader of our own (head + Content-Length body), so the suite only
 * needs the harness for starting the server and the raw socket.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define SECRET     "TOP-SECRET-OUTSIDE-WEB-ROOT"
#define INDEX_HTML "<!doctype html><title>st</title><p>index</p>\n"
#define SUB_HTML   "<!doctype html><p>sub index</p>\n"
#define APP_JS     "console.log('app');\n"
/* Thu, 02 Jan 2020 03:04:05 GMT: a fixed mtime makes Last-Modified predictable. */
#define FIXED_MTIME 1577934245
#define FIXED_DATE  "Thu, 02 Jan 2020 03:04:05 GMT"

/* ---- fixture: a web_root and a secret outside it ------------------------------ */

struct fixture {
    char base[64];              /* mkdtemp: base/web is the root, base/outside the secret */
    char root[128];
    struct server s;
};

static void put_file(const char *dir, const char *name, const char *text, size_t len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert_msg(fd >= 0, "create %s: %s", path, strerror(errno));
    ck_assert_msg(write(fd, text, len) == (ssize_t)len, "write %s", path);
    close(fd);
}

static void put_text(const char *dir, const char *name, const char *text)
{
    put_file(dir, name, text, strlen(text));
}

static void set_mtime(const char *dir, const char *name, time_t t)
{
    char path[512];
    struct timespec ts[2] = { { t, 0 }, { t, 0 } };
    snprintf(path, sizeof path, "%s/%s", dir, name);
    ck_assert_msg(utimensat(AT_FDCWD, path, ts, 0) == 0, "utimensat %s", path);
}

static void fx_start(struct fixture *f)
{
    char p[256], extra[512];
    snprintf(f->base, sizeof f->base, "/tmp/wschat-st-XXXXXX");
    ck_assert_msg(mkdtemp(f->base) != NULL, "mkdtemp: %s", strerror(errno));
    snprintf(f->root, sizeof f->root, "%s/web", f->base);
    snprintf(p, sizeof p, "%s/outside", f->base);
    ck_assert(mkdir(f->root, 0755) == 0 && mkdir(p, 0755) == 0);
    put_text(p, "secret.txt", SECRET "\n");

    put_text(f->root, "index.html", INDEX_HTML);
    put_text(f->root, "app.js", APP_JS);
    put_text(f->root, "style.css", "body { color: red; }\n");
    put_text(f->root, "logo.svg", "<svg xmlns=\"http://www.w3.org/2000/svg\"/>\n");
    put_file(f->root, "img.png", "\x89PNG\r\n\x1a\n\0\0", 10);
    put_file(f->root, "favicon.ico", "\0\0\1\0", 4);
    put_text(f->root, "data.json", "{\"ok\":true}\n");
    put_text(f->root, "notes.txt", "plain text\n");
    put_text(f->root, "blob.bin", "binary?\n");
    put_text(f->root, "noext", "no extension\n");
    put_text(f->root, ".hidden", SECRET "\n");
    set_mtime(f->root, "app.js", FIXED_MTIME);

    snprintf(p, sizeof p, "%s/sub", f->root);
    ck_assert(mkdir(p, 0755) == 0);
    put_text(p, "index.html", SUB_HTML);
    snprintf(p, sizeof p, "%s/empty", f->root);
    ck_assert(mkdir(p, 0755) == 0);

    /* Symlinks: to a file outside, to a directory outside, and one inside. */
    char target[256];
    snprintf(p, sizeof p, "%s/out", f->root);
    snprintf(target, sizeof target, "%s/outside/secret.txt", f->base);
    ck_assert(symlink(target, p) == 0);
    snprintf(p, sizeof p, "%s/outdir", f->root);
    snprintf(target, sizeof target, "%s/outside", f->base);
    ck_assert(symlink(target, p) == 0);
    snprintf(p, sizeof p, "%s/link.html", f->root);
    ck_assert(symlink("index.html", p) == 0);
    snprintf(p, sizeof p, "%s/rel", f->root);
    ck_assert(symlink("../outside/secret.txt", p) == 0);

    snprintf(p, sizeof p, "%s/fifo", f->root);
    ck_assert(mkfifo(p, 0644) == 0);
    /* Sparse: over the 4 MiB cap without writing 4 MiB. */
    snprintf(p, sizeof p, "%s/big.bin", f->root);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert(fd >= 0 && ftruncate(fd, 5 * 1024 * 1024) == 0);
    close(fd);

    snprintf(extra, sizeof extra, "workers 1\nweb_root %s", f->root);
    srv_start(&f->s, extra);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st; (void)flag; (void)ftw;
    remove(path);
    return 0;
}

/* Whole file into a malloc'd buffer (the test fails if it cannot be read). */
static char *slurp(const char *path, size_t *len)
{
    struct stat st;
    int fd = open(path, O_RDONLY);
    ck_assert_msg(fd >= 0 && fstat(fd, &st) == 0, "open %s: %s", path, strerror(errno));
    char *buf = malloc((size_t)st.st_size + 1);
    ck_assert(buf != NULL);
    ck_assert(read(fd, buf, (size_t)st.st_size) == (ssize_t)st.st_size);
    close(fd);
    *len = (size_t)st.st_size;
    return buf;
}

static void fx_stop(struct fixture *f)
{
    srv_stop(&f->s);
    nftw(f->base, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- a minimal HTTP/1.1 response reader ---------------------------------------- */

struct resp {
    int    status;              /* -1 closed before a head, -2 timeout, -3 garbage */
    char   head[8192];
    char  *body;                /* malloc'd, NUL-terminated; free with resp_free */
    size_t body_len;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Header NAME of R into BUF (case-insensitive), or NULL. */
static const char *hdr(const struct resp *r, const char *name, char *buf, size_t n)
{
    size_t nl = strlen(name);
    for (const char *p = strstr(r->head, "\r\n"); p != NULL && p[2] != '\r'; p = strstr(p + 2, "\r\n")) {
        const char *line = p + 2;
        if (strncasecmp(line, name, nl) != 0 || line[nl] != ':')
            continue;
        const char *v = line + nl + 1, *eol = strstr(v, "\r\n");
        while (*v == ' ')
            v++;
        size_t k = (size_t)(eol - v) < n - 1 ? (size_t)(eol - v) : n - 1;
        memcpy(buf, v, k);
        buf[k] = '\0';
        return buf;
    }
    return NULL;
}

/*
 * Read one response from C: the head, then Content-Length body bytes unless
 * NO_BODY (a HEAD request) or the status carries none (304, 1xx). Returns
 * the status. Bytes after the body stay in C for the next call.
 */
static int read_resp(struct client *c, struct resp *r, int no_body)
{
    int64_t end = mono_ms() + 5000;
    memset(r, 0, sizeof *r);
    for (;;) {
        size_t n = cli_pending(c);
        const uint8_t *b = c->rx + c->off;
        const uint8_t *e = n >= 4 ? memmem(b, n, "\r\n\r\n", 4) : NULL;
        if (e != NULL) {
            size_t hl = (size_t)(e - b) + 4;
            ck_assert_msg(hl < sizeof r->head, "response head too long");
            memcpy(r->head, b, hl);
            c->off += hl;
            break;
        }
        int64_t left = end - mono_ms();
        ssize_t got = left > 0 ? cli_fill(c, (int)left) : -1;
        if (got <= 0)
            return r->status = got == 0 ? -1 : -2;
    }
    if (strncmp(r->head, "HTTP/1.1 ", 9) != 0)
        return r->status = -3;
    r->status = atoi(r->head + 9);
    char v[64];
    size_t want = 0;
    if (!no_body && r->status != 304 && r->status >= 200 && hdr(r, "Content-Length", v, sizeof v))
        want = strtoul(v, NULL, 10);
    while (cli_pending(c) < want) {
        int64_t left = end - mono_ms();
        ck_assert_msg(left > 0 && cli_fill(c, (int)left) > 0,
                      "body cut short: %zu of %zu bytes\n%s", cli_pending(c), want, r->head);
    }
    r->body = malloc(want + 1);
    ck_assert(r->body != NULL);
    memcpy(r->body, c->rx + c->off, want);
    r->body[want] = '\0';
    r->body_len = want;
    c->off += want;
    return r->status;
}

static void resp_free(struct resp *r)
{
    free(r->body);
    r->body = NULL;
}

/* One request on a fresh connection; the connection is closed after. */
static int fetch(const struct fixture *f, const char *req, struct resp *r, int no_body)
{
    struct client c;
    ck_assert_msg(cli_connect(&c, f->s.port) == 0, "connect: %s", strerror(errno));
    ck_assert_msg(cli_sendstr(&c, req) == 0, "send: %s", strerror(errno));
    int st = read_resp(&c, r, no_body);
    cli_close(&c);
    return st;
}

/* "GET <path>" with Host and optional EXTRA header lines. */
static int get(const struct fixture *f, const char *method, const char *path,
               const char *extra, struct resp *r)
{
    char req[8192];
    snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\n",
             method, path, extra ? extra : "");
    return fetch(f, req, r, strcmp(method, "HEAD") == 0);
}

static void expect_header(const struct resp *r, const char *name, const char *want)
{
    char v[1024];
    ck_assert_msg(hdr(r, name, v, sizeof v) != NULL, "no %s header\n%s", name, r->head);
    ck_assert_msg(strcmp(v, want) == 0, "%s: \"%s\", want \"%s\"", name, v, want);
}

static void expect_no_secret(const struct resp *r)
{
    ck_assert_msg(strstr(r->head, SECRET) == NULL &&
                  (r->body == NULL || strstr(r->body, SECRET) == NULL),
                  "the secret outside web_root leaked");
}

/* ---- 200, headers, MIME types ------------------------------------------------- */

START_TEST(index_and_headers)
{
    struct fixture f;
    struct resp r;
    char v[1024];
    fx_start(&f);
    ck_assert_int_eq(get(&f, "GET", "/", NULL, &r), 200);
    ck_assert_str_eq(r.body, INDEX_HTML);
    expect_header(&r, "Content-Type", "text/html; charset=utf-8");
    snprintf(v, sizeof v, "%zu", strlen(INDEX_HTML));
    expect_header(&r, "Content-Length", v);
    expect_header(&r, "Cache-Control", "no-cache");
    expect_header(&r, "X-Content-Type-Options", "nosniff");
    expect_header(&r, "Connection", "keep-alive");
    ck_assert_msg(hdr(&r, "Content-Security-Policy", v, sizeof v) &&
                  strstr(v, "default-src 'self'") && strstr(v, "connect-src 'self' ws: wss:"),
                  "CSP: %s", r.head);
    ck_assert_msg(hdr(&r, "ETag", v, sizeof v) && v[0] == '"' && v[strlen(v) - 1] == '"',
                  "ETag must be a quoted strong tag\n%s", r.head);
    ck_assert_msg(hdr(&r, "Last-Modified", v, sizeof v) && strstr(v, " GMT"), "%s", r.head);
    ck_assert_msg(hdr(&r, "Date", v, sizeof v) != NULL, "no Date\n%s", r.head);
    resp_free(&r);

    ck_assert_int_eq(get(&f, "GET", "/index.html", NULL, &r), 200);
    ck_assert_str_eq(r.body, INDEX_HTML);
    resp_free(&r);
    /* The query is not part of the file name; dot segments and // normalise. */
    ck_assert_int_eq(get(&f, "GET", "/app.js?v=123", NULL, &r), 200);
    ck_assert_str_eq(r.body, APP_JS);
    resp_free(&r);
    ck_assert_int_eq(get(&f, "GET", "/./sub/./index.html", NULL, &r), 200);
    ck_assert_str_eq(r.body, SUB_HTML);
    resp_free(&r);
    ck_assert_int_eq(get(&f, "GET", "//app.js", NULL, &r), 200);
    resp_free(&r);
    /* Absolute-form target (RFC 9112 §3.2.2). */
    ck_assert_int_eq(get(&f, "GET", "http://127.0.0.1/app.js", NULL, &r), 200);
    ck_assert_str_eq(r.body, APP_JS);
    resp_free(&r);
    /* Percent-encoded ordinary characters are decoded. */
    ck_assert_int_eq(get(&f, "GET", "/%61pp.js", NULL, &r), 200);
    ck_assert_str_eq(r.body, APP_JS);
    resp_free(&r);
    fx_stop(&f);
}
END_TEST

static const struct { const char *path, *type; } types[] = {
    { "/app.js",      "text/javascript; charset=utf-8" },
    { "/style.css",   "text/css; charset=utf-8" },
    { "/logo.svg",    "image/svg+xml" },
    { "/img.png",     "image/png" },
    { "/favicon.ico", "image/x-icon" },
    { "/data.json",   "application/json" },
    { "/notes.txt",   "text/plain; charset=utf-8" },
    { "/blob.bin",    "application/octet-stream" },
    { "/noext",       "application/octet-stream" },
};

START_TEST(content_types)
{
    struct fixture f;
    struct resp r;
    fx_start(&f);
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        ck_assert_msg(get(&f, "GET", types[i].path, NULL, &r) == 200, "%s: %d", types[i].path,
                      r.status);
        expect_header(&r, "Content-Type", types[i].type);
        char path[256];
        size_t len;
        snprintf(path, sizeof path, "%s%s", f.root, types[i].path);
        char *want = slurp(path, &len);
        ck_assert_msg(r.body_len == len && memcmp(r.body, want, len) == 0, "%s body", types[i].path);
        free(want);
        resp_free(&r);
    }
    fx_stop(&f);
}
END_TEST

/* HEAD: the same head as GET (Content-Length of the file), and no body. */
START_TEST(head_has_no_body)
{
    struct fixture f;
    struct resp r, g;
    char a[256], b[256];
    fx_start(&f);
    struct client c;
    ck_assert(cli_connect(&c, f.s.port) == 0);
    /* HEAD then GET pipelined: a body after HEAD would be read as the GET's head. */
    ck_assert(cli_sendstr(&c, "HEAD /app.js HTTP/1.1\r\nHost: x\r\n\r\n"
                              "GET /style.css HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n") == 0);
    ck_assert_int_eq(read_resp(&c, &r, 1), 200);
    ck_assert_int_eq(read_resp(&c, &g, 0), 200);
    ck_assert_str_eq(g.body, "body { color: red; }\n");
    ck_assert_msg(cli_expect_closed(&c, 2000), "Connection: close not honoured");
    ck_assert_uint_eq(cli_pending(&c), 0);
    cli_close(&c);
    snprintf(a, sizeof a, "%zu", strlen(APP_JS));
    expect_header(&r, "Content-Length", a);
    expect_header(&r, "Content-Type", "text/javascript; charset=utf-8");
    expect_header(&r, "Last-Modified", FIXED_DATE);
    ck_assert(hdr(&r, "ETag", a, sizeof a) != NULL);
    resp_free(&r);
    resp_free(&g);
    /* ... and the GET of the same file carries the same validators. */
    ck_assert_int_eq(get(&f, "GET", "/app.js", NULL, &g), 200);
    ck_assert(hdr(&g, "ETag", b, sizeof b) != NULL);
    ck_assert_str_eq(a, b);
    resp_free(&g);
    fx_stop(&f);
}
END_TEST

/* ---- conditional requests ----------------------------------------------------- */

START_TEST(not_modified_by_etag)
{
    struct fixture f;
    struct resp r;
    char etag[256], line[512];
    fx_start(&f);
    ck_assert_int_eq(get(&f, "GET", "/app.js", NULL, &r), 200);
    ck_assert(hdr(&r, "ETag", etag, sizeof etag) != NULL);
    resp_free(&r);

    snprintf(line, sizeof line, "If-None-Match: %s\r\n", etag);
    ck_assert_int_eq(get(&f, "GET", "/app.js", line, &r), 304);
    expect_header(&r, "ETag", etag);
    expect_header(&r, "Cache-Control", "no-cache");
    resp_free(&r);
    /* Weak comparison and lists (RFC 9110 §13.1.2). */
    snprintf(line, sizeof line, "If-None-Match: \"nope\", W/%s\r\n", etag);
    ck_assert_int_eq(get(&f, "GET", "/app.js", line, &r), 304);
    resp_free(&r);
    ck_assert_int_eq(get(&f, "GET", "/app.js", "If-None-Match: *\r\n", &r), 304);
    resp_free(&r);
    ck_assert_int_eq(get(&f, "HEAD", "/app.js", line, &r), 304);
    resp_free(&r);
    ck_assert_int_eq(get(&f, "GET", "/app.js", "If-None-Match: \"nope\"\r\n", &r), 200);
    ck_assert_str_eq(r.body, APP_JS);
    resp_free(&r);
    /* If-None-Match wins over a matching If-Modified-Since (§13.1.3). */
    ck_assert_int_eq(get(&f, "GET", "/app.js", "If-None-Match: \"nope\"\r\n"
                         "If-Modified-Since: " FIXED_DATE "\r\n", &r), 200);
    resp_free(&r);

    /* A changed file gets a new tag: the old one no longer matches. */
    put_text(f.root, "app.js", "console.log('app v2');\n");
    snprintf(line, sizeof line, "If-None-Match: %s\r\n", etag);
    ck_assert_int_eq(get(&f, "GET", "/app.js", line, &r), 200);
    ck_assert_str_eq(r.body, "console.log('app v2');\n");
    char etag2[256];
    ck_assert(hdr(&r, "ETag", etag2, sizeof etag2) != NULL);
    ck_assert_str_ne(etag, etag2);
    resp_free(&r);
    fx_stop(&f);
}
END_TEST

START_TEST(not_modified_by_date)
{
    struct fixture f;
    struct resp r;
    fx_start(&f);
    ck_assert_int_eq(get(&f, "GET", "/app.js", NULL, &r), 200);
    expect_header(&r, "Last-Modified", FIXED_DATE);
    resp_free(&r);
    ck_assert_int_eq(get(&f, "GET", "/app.js", "If-Modified-Since: " FIXED_DATE "\r\n", &r), 304);
    expect_header(&r, "Last-Modified", FIXED_DATE);
    resp_free(&r);
    ck_assert_int_eq(get(&f, "GET", "/app.js",
                         "If-Modified-Since: Sat, 01 Jan 2022 00:00:00 GMT\r\n", &r), 304);
    resp_free(&r);
    ck_assert_int_eq(get(&f, "GET", "/app.js",
                         "If-Modified-Since: Wed, 01 Jan 2020 00:00:00 GMT\r\n", &r), 200);
    ck_assert_str_eq(r.body, APP_JS);
    resp_free(&r);
    /* A date we cannot parse is ignored: full response. */
    ck_assert_int_eq(get(&f, "GET", "/app.js", "If-Modified-Since: yesterday\r\n", &r), 200);
    ck_assert_str_eq(r.body, APP_JS);
    resp_free(&r);
    fx_stop(&f);
}
END_TEST

/* ---- directories, missing files ----------------------------------------------- */

START_TEST(directories_and_missing)
{
    struct fixture f;
    struct resp r;
    fx_start(&f);
    ck_assert_int_eq(get(&f, "GET", "/sub/", NULL, &r), 200);
    ck_assert_str_eq(r.body, SUB_HTML);
    expect_header(&r, "Content-Type", "text/html; charset=utf-8");
    resp_free(&r);
    ck_assert_int_eq(get(&f, "GET", "/sub", NULL, &r), 301);
    expect_header(&r, "Location", "/sub/");
    resp_free(&r);
    ck_assert_int_eq(get(&f, "GET", "/empty/", NULL, &r), 404);   /* no listing */
    resp_free(&r);
    ck_assert_int_eq(get(&f, "GET", "/empty", NULL, &r), 404);
    resp_free(&r);
    ck_assert_int_eq(get(&f, "GET", "/nope.html", NULL, &r), 404);
    resp_free(&r);
    ck_assert_int_eq(get(&f, "GET", "/index.html/", NULL, &r), 404);
    resp_free(&r);
    ck_assert_int_eq(get(&f, "GET", "/index.html/x", NULL, &r), 404);
    resp_free(&r);
    ck_assert_int_eq(get(&f, "GET", "/.hidden", NULL, &r), 404);
    expect_no_secret(&r);
    resp_free(&r);
    /* A FIFO must neither block the worker nor be served. */
    ck_assert_int_eq(get(&f, "GET", "/fifo", NULL, &r), 404);
    resp_free(&r);
    /* Over the size cap: refused without reading it. */
    ck_assert_int_eq(get(&f, "GET", "/big.bin", NULL, &r), 403);
    resp_free(&r);
    /* The server is still serving after all that. */
    ck_assert_int_eq(get(&f, "GET", "/", NULL, &r), 200);
    resp_free(&r);
    fx_stop(&f);
}
END_TEST

/* ---- traversal and malformed paths -------------------------------------------- */

static const struct { const char *path; int lo, hi; } attacks[] = {
    { "/../outside/secret.txt",                403, 404 },
    { "/..",                                   403, 404 },
    { "/sub/../../outside/secret.txt",         403, 404 },
    { "/%2e%2e/outside/secret.txt",            403, 404 },
    { "/%2E%2E/outside/secret.txt",            403, 404 },
    { "/.%2e/outside/secret.txt",              403, 404 },
    { "/sub/%2e%2e/%2e%2e/outside/secret.txt", 403, 404 },
    { "/..%2foutside%2fsecret.txt",            403, 404 },
    { "/%2e%2e%2foutside%2fsecret.txt",        403, 404 },
    { "/sub%2findex.html",                     403, 404 },    /* encoded slash, even inside */
    { "/%2f..%2foutside",                      403, 404 },
    { "/index.html%00",                        403, 404 },
    { "/index.html%00.txt",                    403, 404 },
    { "/%00",                                  403, 404 },
    { "/..\\outside\\secret.txt",              403, 404 },
    { "/%5c..%5coutside%5csecret.txt",         403, 404 },
    { "/sub\\index.html",                      403, 404 },
    { "/out",                                  403, 404 },    /* symlink to a file outside */
    { "/outdir/secret.txt",                    403, 404 },    /* symlink to a dir outside */
    { "/outdir/",                              403, 404 },
    { "/rel",                                  403, 404 },    /* relative ../ symlink */
    { "/link.html",                            403, 404 },    /* no symlink is followed */
    { "/%0d%0aX-Injected:%20yes",              403, 404 },
    { "/%",                                    400, 400 },
    { "/%4",                                   400, 400 },
    { "/%zz",                                  400, 400 },
    { "/%g0/index.html",                       400, 400 },
};

START_TEST(traversal_refused)
{
    struct fixture f;
    struct resp r;
    fx_start(&f);
    for (size_t i = 0; i < sizeof attacks / sizeof attacks[0]; i++) {
        int st = get(&f, "GET", attacks[i].path, NULL, &r);
        ck_assert_msg(st >= attacks[i].lo && st <= attacks[i].hi, "%s: %d, want %d..%d",
                      attacks[i].path, st, attacks[i].lo, attacks[i].hi);
        ck_assert_msg(strstr(r.head, "X-Injected") == NULL, "header injected");
        expect_no_secret(&r);
        resp_free(&r);
    }
    fx_stop(&f);
}
END_TEST

/* Exact statuses chosen (and documented in static_files.c) for each class. */
START_TEST(traversal_statuses)
{
    struct fixture f;
    struct resp r;
    fx_start(&f);
    ck_assert_int_eq(get(&f, "GET", "/%2e%2e/outside/secret.txt", NULL, &r), 403);
    resp_free(&r);
    ck_assert_int_eq(get(&f, "GET", "/../outside/secret.txt", NULL, &r), 403);
    resp_free(&r);
    ck_assert_int_eq(get(&f, "GET", "/..%2foutside", NULL, &r), 404);
    resp_free(&r);
    ck_assert_int_eq(get(&f, "GET", "/a%00b", NULL, &r), 404);
    resp_free(&r);
    ck_assert_int_eq(get(&f, "GET", "/out", NULL, &r), 403);
    resp_free(&r);
    ck_assert_int_eq(get(&f, "GET", "/outdir/secret.txt", NULL, &r), 403);
    resp_free(&r);
    fx_stop(&f);
}
END_TEST

/* ---- methods, URI length ------------------------------------------------------ */

START_TEST(method_not_allowed)
{
    struct fixture f;
    struct resp r;
    fx_start(&f);
    ck_assert_int_eq(get(&f, "POST", "/index.html", "Content-Length: 0\r\n", &r), 405);
    expect_header(&r, "Allow", "GET, HEAD");
    resp_free(&r);
    ck_assert_int_eq(get(&f, "DELETE", "/app.js", NULL, &r), 405);
    expect_header(&r, "Allow", "GET, HEAD");
    resp_free(&r);
    ck_assert_int_eq(get(&f, "PUT", "/new.txt", "Content-Length: 0\r\n", &r), 405);
    resp_free(&r);
    fx_stop(&f);
}
END_TEST

START_TEST(uri_too_long)
{
    struct fixture f;
    struct resp r;
    char path[4096];
    fx_start(&f);
    /* 1024 decoded bytes is the limit: 1024 is an ordinary miss, 1025 is 414. */
    path[0] = '/';
    memset(path + 1, 'a', 1023);
    path[1024] = '\0';
    ck_assert_int_eq(get(&f, "GET", path, NULL, &r), 404);
    resp_free(&r);
    path[1024] = 'a';
    path[1025] = '\0';
    ck_assert_int_eq(get(&f, "GET", path, NULL, &r), 414);
    resp_free(&r);
    /* The limit counts decoded bytes: 1025 of them spelled as %41 escapes. */
    size_t n = 0;
    path[n++] = '/';
    for (int i = 0; i < 1024; i++)
        n += (size_t)snprintf(path + n, sizeof path - n, "%%41");
    ck_assert_int_eq(get(&f, "GET", path, NULL, &r), 414);
    resp_free(&r);
    fx_stop(&f);
}
END_TEST

/* ---- keep-alive and pipelining ------------------------------------------------ */

START_TEST(keepalive_two_requests)
{
    struct fixture f;
    struct resp r;
    fx_start(&f);
    struct client c;
    ck_assert(cli_connect(&c, f.s.port) == 0);
    ck_assert(cli_sendstr(&c, "GET /app.js HTTP/1.1\r\nHost: x\r\n\r\n") == 0);
    ck_assert_int_eq(read_resp(&c, &r, 0), 200);
    ck_assert_str_eq(r.body, APP_JS);
    expect_header(&r, "Connection", "keep-alive");
    resp_free(&r);
    /* Same socket, after the first answer is complete. */
    ck_assert(cli_sendstr(&c, "GET /sub/ HTTP/1.1\r\nHost: x\r\n\r\n") == 0);
    ck_assert_int_eq(read_resp(&c, &r, 0), 200);
    ck_assert_str_eq(r.body, SUB_HTML);
    resp_free(&r);
    /* A 304 keeps the connection too. */
    ck_assert(cli_sendstr(&c, "GET /app.js HTTP/1.1\r\nHost: x\r\nIf-None-Match: *\r\n\r\n") == 0);
    ck_assert_int_eq(read_resp(&c, &r, 0), 304);
    expect_header(&r, "Connection", "keep-alive");
    resp_free(&r);
    ck_assert(cli_sendstr(&c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n") == 0);
    ck_assert_int_eq(read_resp(&c, &r, 0), 200);
    expect_header(&r, "Connection", "close");
    ck_assert_str_eq(r.body, INDEX_HTML);
    resp_free(&r);
    ck_assert_msg(cli_expect_closed(&c, 2000), "server kept a Connection: close socket open");
    cli_close(&c);
    fx_stop(&f);
}
END_TEST

START_TEST(pipelined)
{
    struct fixture f;
    struct resp r;
    fx_start(&f);
    struct client c;
    ck_assert(cli_connect(&c, f.s.port) == 0);
    /* Four requests in one write; the answers come back whole and in order. */
    ck_assert(cli_sendstr(&c,
        "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
        "HEAD /app.js HTTP/1.1\r\nHost: x\r\n\r\n"
        "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
        "GET /style.css HTTP/1.1\r\nHost: x\r\n\r\n") == 0);
    ck_assert_int_eq(read_resp(&c, &r, 0), 200);
    ck_assert_str_eq(r.body, INDEX_HTML);
    resp_free(&r);
    ck_assert_int_eq(read_resp(&c, &r, 1), 200);
    resp_free(&r);
    /* An error answer closes the connection: what was pipelined behind it is dropped. */
    ck_assert_int_eq(read_resp(&c, &r, 0), 404);
    expect_header(&r, "Connection", "close");
    resp_free(&r);
    ck_assert_msg(cli_expect_closed(&c, 2000), "no close after the 404");
    cli_close(&c);

    /* Without the error: three GETs, then the server keeps the socket. */
    ck_assert(cli_connect(&c, f.s.port) == 0);
    ck_assert(cli_sendstr(&c,
        "GET /app.js HTTP/1.1\r\nHost: x\r\n\r\n"
        "GET /sub/ HTTP/1.1\r\nHost: x\r\n\r\n"
        "GET /data.json HTTP/1.1\r\nHost: x\r\n\r\n") == 0);
    ck_assert_int_eq(read_resp(&c, &r, 0), 200);
    ck_assert_str_eq(r.body, APP_JS);
    resp_free(&r);
    ck_assert_int_eq(read_resp(&c, &r, 0), 200);
    ck_assert_str_eq(r.body, SUB_HTML);
    resp_free(&r);
    ck_assert_int_eq(read_resp(&c, &r, 0), 200);
    ck_assert_str_eq(r.body, "{\"ok\":true}\n");
    resp_free(&r);
    ck_assert_msg(!cli_expect_closed(&c, 300), "keep-alive connection closed");
    cli_close(&c);
    fx_stop(&f);
}
END_TEST

START_TEST(http10_closes)
{
    struct fixture f;
    struct resp r;
    fx_start(&f);
    struct client c;
    ck_assert(cli_connect(&c, f.s.port) == 0);
    ck_assert(cli_sendstr(&c, "GET /app.js HTTP/1.0\r\n\r\n") == 0);
    ck_assert_int_eq(read_resp(&c, &r, 0), 200);
    expect_header(&r, "Connection", "close");
    ck_assert_str_eq(r.body, APP_JS);
    resp_free(&r);
    ck_assert(cli_expect_closed(&c, 2000));
    cli_close(&c);
    fx_stop(&f);
}
END_TEST

Suite *static_suite(void)
{
    Suite *s = suite_create("static");
    TCase *serve = tcase_create("serve");
    tcase_set_timeout(serve, 30);
    tcase_add_test(serve, index_and_headers);
    tcase_add_test(serve, content_types);
    tcase_add_test(serve, head_has_no_body);
    tcase_add_test(serve, directories_and_missing);
    suite_add_tcase(s, serve);

    TCase *cond = tcase_create("conditional");
    tcase_set_timeout(cond, 30);
    tcase_add_test(cond, not_modified_by_etag);
    tcase_add_test(cond, not_modified_by_date);
    suite_add_tcase(s, cond);

    TCase *refuse = tcase_create("refuse");
    tcase_set_timeout(refuse, 30);
    tcase_add_test(refuse, traversal_refused);
    tcase_add_test(refuse, traversal_statuses);
    tcase_add_test(refuse, method_not_allowed);
    tcase_add_test(refuse, uri_too_long);
    suite_add_tcase(s, refuse);

    TCase *conn = tcase_create("connection");
    tcase_set_timeout(conn, 30);
    tcase_add_test(conn, keepalive_two_requests);
    tcase_add_test(conn, pipelined);
    tcase_add_test(conn, http10_closes);
    suite_add_tcase(s, conn);
    return s;
}

/*
 * check_static_files: static_files_serve() against a real web root.
 *
 * One tree per test case is built under a mkdtemp() directory by an
 * unchecked fixture (run in the runner process, so the teardown removes it
 * even when a forked test fails): regular files with a fixed mtime, a
 * directory with and one without index.html, a hidden file, symlinks in and
 * out, a FIFO, names that need percent-encoding. Requests are real request
 * heads parsed by http_parse_request(); the path served is their target.
 * Every refusal is checked to leave the response exactly as it was.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "http.h"
#include "static_files.h"

#define MTIME_SEC  1577934245L      /* Thu, 02 Jan 2020 03:04:05 GMT */
#define MTIME_NSEC 123456789L
#define LASTMOD    "Last-Modified: Thu, 02 Jan 2020 03:04:05 GMT\r\n"
#define FILE_MAX   (4u * 1024 * 1024)
#define E_ACUTE    "\xc3\xa9"
#define LONG_DIR_REPEAT 100         /* 200 bytes, 600 once percent-encoded */

static char top[64];                /* mkdtemp() result */
static char www[96];                /* top/www: the web root */

static const struct { const char *rel, *data; size_t len; } files[] = {
    { "index.html", "<!doctype html><title>root</title>\n", 35 },
    { "app.js", "console.log(1);\n", 16 },
    { "style.css", "body { margin: 0 }\n", 19 },
    { "sub/index.html", "<p>sub index</p>\n", 17 },
    { "a b/index.html", "<p>a b</p>\n", 11 },
    { "d " E_ACUTE "/index.html", "<p>d e</p>\n", 11 },
    { "noindex/readme.txt", "no index here\n", 14 },
    { "my file.txt", "spaced name\n", 12 },
    { "h" E_ACUTE "llo.txt", "utf-8 name\n", 11 },
    { "blob.bin", "\x00\x01\x02\xff", 4 },
    { "empty.txt", "", 0 },
    { ".env", "SECRET=1\n", 9 },
};

static void at(char *out, size_t cap, const char *rel)
{
    int n = snprintf(out, cap, "%s/%s", www, rel);
    ck_assert(n > 0 && (size_t)n < cap);
}

static void make_dir(const char *rel)
{
    char p[1024];
    at(p, sizeof p, rel);
    ck_assert_int_eq(mkdir(p, 0755), 0);
}

static void make_file(const char *p, const char *data, size_t len)
{
    int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0644);
    ck_assert_int_ge(fd, 0);
    if (len > 0)
        ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
    close(fd);
    struct timespec ts[2] = { { MTIME_SEC, MTIME_NSEC }, { MTIME_SEC, MTIME_NSEC } };
    ck_assert_int_eq(utimensat(AT_FDCWD, p, ts, 0), 0);
}

static void make_sparse(const char *rel, off_t size)
{
    char p[1024];
    at(p, sizeof p, rel);
    make_file(p, "", 0);
    ck_assert_int_eq(truncate(p, size), 0);
}

static char *long_dir_name(void)
{
    static char name[2 * LONG_DIR_REPEAT + 1];
    for (int i = 0; i < LONG_DIR_REPEAT; i++)
        memcpy(name + 2 * i, E_ACUTE, 2);
    name[2 * LONG_DIR_REPEAT] = '\0';
    return name;
}

static void tree_setup(void)
{
    char p[1024];
    strcpy(top, "/tmp/wschat-static-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(top));
    snprintf(www, sizeof www, "%s/www", top);
    ck_assert_int_eq(mkdir(www, 0755), 0);
    const char *dirs[] = { "sub", "a b", "d " E_ACUTE, "noindex", long_dir_name() };
    for (size_t i = 0; i < 5; i++)
        make_dir(dirs[i]);
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        at(p, sizeof p, files[i].rel);
        make_file(p, files[i].data, files[i].len);
    }
    snprintf(p, sizeof p, "%s/%s/index.html", www, long_dir_name());
    make_file(p, "long\n", 5);
    snprintf(p, sizeof p, "%s/outside.txt", top);
    make_file(p, "outside the root\n", 17);
    static const char *links[][2] = {
        { "link_in", "app.js" }, { "link_out", "../outside.txt" }, { "linkdir", "sub" },
    };
    for (size_t i = 0; i < 3; i++) {
        at(p, sizeof p, links[i][0]);
        ck_assert_int_eq(symlink(links[i][1], p), 0);
    }
    at(p, sizeof p, "fifo");
    ck_assert_int_eq(mkfifo(p, 0644), 0);
    make_sparse("max.bin", FILE_MAX);
    make_sparse("big.bin", FILE_MAX + 1);
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st; (void)flag; (void)ftw;
    return remove(p);
}

static void tree_teardown(void)
{
    if (top[0] != '\0')
        nftw(top, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    top[0] = '\0';
}

/* ---- requests ------------------------------------------------------------ */

static char head_buf[16384];
static struct http_request req;

/* Parse "METHOD TARGET HTTP/1.1" + HDRS (CRLF-terminated lines) and serve it. */
static int serve_from(const char *root, const char *method, const char *target,
                      const char *hdrs, struct http_response *resp)
{
    int n = snprintf(head_buf, sizeof head_buf, "%s %s HTTP/1.1\r\nHost: t\r\n%s\r\n",
                     method, target, hdrs);
    ck_assert(n > 0 && (size_t)n < sizeof head_buf);
    ssize_t rc = http_parse_request(head_buf, (size_t)n, 0, sizeof head_buf, &req);
    ck_assert_int_eq(rc, n);
    ck_assert_uint_eq(req.target_len, strlen(target));
    return static_files_serve(root, &req, req.target, req.target_len,
                              strcmp(method, "HEAD") == 0, resp);
}

static int serve(const char *method, const char *target, const char *hdrs,
                 struct http_response *resp)
{
    return serve_from(www, method, target, hdrs, resp);
}

/* The call must fail with WANT and leave a sentinel-filled response as it was. */
static void expect_refused(const char *root, const char *target, int want)
{
    struct http_response resp, before;
    memset(&resp, 0x5a, sizeof resp);
    memcpy(&before, &resp, sizeof resp);
    int rc = serve_from(root, "GET", target, "", &resp);
    ck_assert_msg(rc == want, "%.80s: got %d, expected %d", target, rc, want);
    ck_assert_msg(memcmp(&resp, &before, sizeof resp) == 0,
                  "%.80s: response touched by a refusal", target);
}

/* The ETag line's value in RESP's headers, into OUT. */
static void etag_of(const struct http_response *resp, char *out, size_t cap)
{
    const char *p = strstr(resp->headers, "\r\nETag: ");
    ck_assert_ptr_nonnull(p);
    p += 8;
    const char *e = strstr(p, "\r\n");
    ck_assert_ptr_nonnull(e);
    ck_assert_uint_lt((size_t)(e - p), cap);
    memcpy(out, p, (size_t)(e - p));
    out[e - p] = '\0';
}

/* ---- 200 ----------------------------------------------------------------- */

#define HTML "text/html; charset=utf-8"
#define JS   "text/javascript; charset=utf-8"
#define TXT  "text/plain; charset=utf-8"
static const struct { const char *target; int file; const char *ctype; } oks[] = {
    { "/app.js", 1, JS }, { "/style.css", 2, "text/css; charset=utf-8" },
    { "/", 0, HTML }, { "/index.html", 0, HTML },
    { "/sub/", 3, HTML }, { "/sub/index.html", 3, HTML }, { "/sub//", 3, HTML },
    { "/a%20b/", 4, HTML }, { "/d%20%c3%a9/", 5, HTML },
    { "/my%20file.txt", 7, TXT }, { "/h%C3%A9llo.txt", 8, TXT },
    { "/blob.bin", 9, "application/octet-stream" }, { "/empty.txt", 10, TXT },
    { "//app.js", 1, JS }, { "/./app.js", 1, JS }, { "/%2e/app.js", 1, JS },
    { "/%61pp.js", 1, JS },
};

START_TEST(get_ok)
{
    struct http_response resp;
    int f = oks[_i].file;
    ck_assert_int_eq(serve("GET", oks[_i].target, "", &resp), 0);
    ck_assert_int_eq(resp.status, 200);
    ck_assert_str_eq(resp.ctype, oks[_i].ctype);
    ck_assert_uint_eq(resp.length, files[f].len);
    ck_assert_ptr_nonnull(resp.owned);
    ck_assert_ptr_eq(resp.body, resp.owned);
    ck_assert_mem_eq(resp.body, files[f].data, files[f].len);
    ck_assert_ptr_eq(strstr(resp.headers, "Date: "), resp.headers);
    ck_assert_ptr_nonnull(strstr(resp.headers, LASTMOD));
    ck_assert_ptr_nonnull(strstr(resp.headers, "\r\nETag: \""));
    ck_assert_ptr_nonnull(strstr(resp.headers, "Cache-Control: no-cache\r\n"));
    ck_assert_ptr_nonnull(strstr(resp.headers, "X-Content-Type-Options: nosniff\r\n"));
    ck_assert_ptr_nonnull(strstr(resp.headers, "Content-Security-Policy: default-src 'self'"));
    ck_assert_str_eq(resp.headers + strlen(resp.headers) - 24, "frame-ancestors 'none'\r\n");
    free(resp.owned);
}
END_TEST

START_TEST(etag_is_inode_size_mtime)
{
    struct http_response resp;
    struct stat st;
    char p[1024], want[96], got[96];
    at(p, sizeof p, "app.js");
    ck_assert_int_eq(stat(p, &st), 0);
    snprintf(want, sizeof want, "\"%llx-%llx-%llx\"", (unsigned long long)st.st_ino,
             (unsigned long long)st.st_size,
             (unsigned long long)MTIME_SEC * 1000000000ull + MTIME_NSEC);
    ck_assert_int_eq(serve("GET", "/app.js", "", &resp), 0);
    etag_of(&resp, got, sizeof got);
    ck_assert_str_eq(got, want);
    free(resp.owned);
}
END_TEST

START_TEST(head_has_length_no_body)
{
    struct http_response resp;
    ck_assert_int_eq(serve("HEAD", "/app.js", "", &resp), 0);
    ck_assert_int_eq(resp.status, 200);
    ck_assert_str_eq(resp.ctype, JS);
    ck_assert_uint_eq(resp.length, 16);
    ck_assert_ptr_null(resp.body);
    ck_assert_ptr_null(resp.owned);
    ck_assert_ptr_nonnull(strstr(resp.headers, LASTMOD));
}
END_TEST

/* The largest file allowed: HEAD states it, GET reads all of it. */
START_TEST(largest_file)
{
    struct http_response resp;
    ck_assert_int_eq(serve("HEAD", "/max.bin", "", &resp), 0);
    ck_assert_int_eq(resp.status, 200);
    ck_assert_uint_eq(resp.length, FILE_MAX);
    ck_assert_ptr_null(resp.body);
    ck_assert_int_eq(serve("GET", "/max.bin", "", &resp), 0);
    ck_assert_uint_eq(resp.length, FILE_MAX);
    ck_assert_ptr_nonnull(resp.owned);
    size_t nonzero = 0;
    for (size_t i = 0; i < FILE_MAX; i++)
        nonzero += ((const unsigned char *)resp.body)[i] != 0;
    ck_assert_uint_eq(nonzero, 0);
    free(resp.owned);
}
END_TEST

/* ---- 304 ----------------------------------------------------------------- */

/* RESP is STATUS (200 or 304) for files[F]; a 200 carries its bytes. */
static void expect_status(struct http_response *resp, int status, int f, const char *what)
{
    ck_assert_msg(resp->status == status, "%s gave %d", what, resp->status);
    ck_assert_uint_eq(resp->length, files[f].len);
    if (status == 304) {
        ck_assert_ptr_null(resp->body);
        ck_assert_ptr_null(resp->owned);
    } else {
        ck_assert_ptr_nonnull(resp->owned);
        ck_assert_mem_eq(resp->body, files[f].data, files[f].len);
        free(resp->owned);
    }
}

static const struct { const char *fmt; int status; } inm[] = {
    { "%s", 304 }, { "\"nope\", %s", 304 }, { "\"nope\",%s", 304 },
    { "  W/%s  ", 304 }, { "W/\"nope\", W/%s", 304 }, { "*", 304 },
    { "\"nope\"", 200 }, { "W/\"nope\", \"other\"", 200 },
    { "nope, %s", 200 },            /* a malformed element ends the scan */
};

START_TEST(if_none_match)
{
    struct http_response resp;
    char etag[96], value[256], hdr[320];
    ck_assert_int_eq(serve("GET", "/app.js", "", &resp), 0);
    etag_of(&resp, etag, sizeof etag);
    free(resp.owned);

    snprintf(value, sizeof value, inm[_i].fmt, etag);
    snprintf(hdr, sizeof hdr, "If-None-Match: %s\r\n", value);
    ck_assert_int_eq(serve("GET", "/app.js", hdr, &resp), 0);
    ck_assert_str_eq(resp.ctype, JS);
    etag_of(&resp, value, sizeof value);
    ck_assert_str_eq(value, etag);
    expect_status(&resp, inm[_i].status, 1, hdr);
}
END_TEST

START_TEST(if_none_match_other_file)
{
    struct http_response resp;
    char etag[96], hdr[160];
    ck_assert_int_eq(serve("GET", "/index.html", "", &resp), 0);
    etag_of(&resp, etag, sizeof etag);
    free(resp.owned);
    snprintf(hdr, sizeof hdr, "If-None-Match: %s\r\n", etag);
    ck_assert_int_eq(serve("GET", "/app.js", hdr, &resp), 0);
    expect_status(&resp, 200, 1, "index.html's tag on app.js");
    ck_assert_int_eq(serve("HEAD", "/", hdr, &resp), 0);     /* HEAD revalidates too */
    expect_status(&resp, 304, 0, "HEAD with the tag");
    /* If-None-Match present: If-Modified-Since is not looked at. */
    ck_assert_int_eq(serve("GET", "/app.js", "If-None-Match: \"nope\"\r\n"
                           "If-Modified-Since: Sat, 01 Jan 2050 00:00:00 GMT\r\n", &resp), 0);
    expect_status(&resp, 200, 1, "If-None-Match mismatch with a recent date");
}
END_TEST

/* The first is the mtime's own second (the file has 123456789 ns more). */
static const struct { const char *date; int status; } ims[] = {
    { "Thu, 02 Jan 2020 03:04:05 GMT", 304 }, { "Thu, 02 Jan 2020 03:04:06 GMT", 304 },
    { "Sat, 01 Jan 2050 00:00:00 GMT", 304 }, { "Thu, 02 Jan 2020 03:04:04 GMT", 200 },
    { "Wed, 01 Jan 2020 23:59:59 GMT", 200 }, { "Sun, 06 Nov 1994 08:49:37 GMT", 200 },
    /* Malformed, or a form not understood: ignored, so a full 200. */
    { "Thursday, 02-Jan-50 03:04:05 GMT", 200 }, { "Thu Jan  2 03:04:05 2050", 200 },
    { "Sat, 01 Jan 2050 00:00:00 UTC", 200 }, { "Sat, 32 Jan 2050 00:00:00 GMT", 200 },
    { "Sat, 01 Foo 2050 00:00:00 GMT", 200 }, { "Sat, 01 Jan 2050 24:00:00 GMT", 200 },
    { "Sat, 01 Jan 20x0 00:00:00 GMT", 200 }, { "Sat, 01 Jan 2050 00:00:00 GMTx", 200 },
    { "garbage", 200 },
};

START_TEST(if_modified_since)
{
    struct http_response resp;
    char hdr[128];
    snprintf(hdr, sizeof hdr, "If-Modified-Since: %s\r\n", ims[_i].date);
    ck_assert_int_eq(serve("GET", "/style.css", hdr, &resp), 0);
    expect_status(&resp, ims[_i].status, 2, hdr);
}
END_TEST

/* ---- 301 ----------------------------------------------------------------- */

static const struct { const char *target, *location; } redirects[] = {
    { "/sub", "/sub/" }, { "/./sub", "/sub/" }, { "//sub", "/sub/" },
    { "/a%20b", "/a%20b/" }, { "//d%20%c3%a9", "/d%20%C3%A9/" }, { "/%2e//a%20b", "/a%20b/" },
};

START_TEST(dir_redirect)
{
    struct http_response resp;
    char want[96];
    memset(&resp, 0x5a, sizeof resp);
    ck_assert_int_eq(serve("GET", redirects[_i].target, "", &resp), 0);
    ck_assert_int_eq(resp.status, 301);
    ck_assert_ptr_null(resp.body);
    ck_assert_ptr_null(resp.owned);
    ck_assert_uint_eq(resp.length, 0);
    snprintf(want, sizeof want, "Location: %s\r\n", redirects[_i].location);
    const char *loc = strstr(resp.headers, "Location: ");
    ck_assert_ptr_nonnull(loc);
    ck_assert_str_eq(loc, want);
    ck_assert(loc[10] == '/' && loc[11] != '/');
    ck_assert_ptr_nonnull(strstr(resp.headers, "Cache-Control: no-cache\r\n"));
}
END_TEST

/*
 * A directory whose encoded name does not fit the Location buffer. Either a
 * 301 with the whole encoded Location, or a refusal that, like every other,
 * leaves the response untouched (static_files.h).
 */
START_TEST(dir_redirect_too_long)
{
    struct http_response resp, before;
    char target[8 + 6 * LONG_DIR_REPEAT];
    size_t n = 0;
    target[n++] = '/';
    for (int i = 0; i < LONG_DIR_REPEAT; i++)
        n += (size_t)sprintf(target + n, "%%C3%%A9");
    memset(&resp, 0x5a, sizeof resp);
    memcpy(&before, &resp, sizeof resp);
    int rc = serve("GET", target, "", &resp);
    if (rc == 0) {
        ck_assert_int_eq(resp.status, 301);
        const char *loc = strstr(resp.headers, "Location: ");
        ck_assert_ptr_nonnull(loc);
        ck_assert_uint_eq(strlen(loc), 10 + n + 1 + 2);
        ck_assert_mem_eq(loc + 10, target, n);
    } else {
        ck_assert_int_eq(rc, -414);
        ck_assert_msg(memcmp(&resp, &before, sizeof resp) == 0,
                      "-414 for a long redirect, but the response was reset");
    }
    /* The slash form of the same directory is served. */
    target[n] = '/';
    target[n + 1] = '\0';
    ck_assert_int_eq(serve("GET", target, "", &resp), 0);
    ck_assert_int_eq(resp.status, 200);
    ck_assert_mem_eq(resp.body, "long\n", 5);
    free(resp.owned);
}
END_TEST

/* ---- refusals ------------------------------------------------------------ */

static const struct { const char *target; int rc; } refusals[] = {
    { "/noindex/", -404 }, { "/noindex", -404 },
    { "/..", -403 }, { "/../outside.txt", -403 }, { "/sub/../app.js", -403 },
    { "/%2e%2e/outside.txt", -403 }, { "/sub/%2E%2E/app.js", -403 }, { "/.%2e", -403 },
    { "/sub%2findex.html", -404 }, { "/sub%2Findex.html", -404 },
    { "/%zz", -400 }, { "/app.js%4", -400 }, { "/app.js%", -400 }, { "/%g0", -400 },
    { "/.env", -404 }, { "/%2eenv", -404 }, { "/sub/.git/config", -404 },
    { "/link_in", -403 }, { "/link_out", -403 },
    { "/linkdir/index.html", -403 }, { "/linkdir/", -403 },
    { "/fifo", -404 }, { "/app.js/", -404 }, { "/app.js/x", -404 },
    { "/nope.html", -404 }, { "/sub/nope", -404 }, { "/APP.JS", -404 },
    { "/%01", -404 }, { "/app%01.js", -404 }, { "/a%7fb", -404 }, { "/a%5cb", -404 },
    { "/a%00b", -404 }, { "/big.bin", -403 },
};

START_TEST(refused)
{
    alarm(5);       /* a blocking open (the FIFO) fails here without a fork too */
    expect_refused(www, refusals[_i].target, refusals[_i].rc);
    alarm(0);
}
END_TEST

/* "/" then LEN - 1 bytes of nonexistent short segments: LEN decoded bytes. */
static char *segments_path(char *t, size_t len)
{
    t[0] = '/';
    for (size_t i = 1; i < len; i++)
        t[i] = i % 8 == 0 ? '/' : 'a';
    t[len] = '\0';
    return t;
}

START_TEST(path_length_limit)
{
    static char t[4096];
    expect_refused(www, segments_path(t, 1024), -404);
    expect_refused(www, segments_path(t, 1025), -414);
    expect_refused(www, segments_path(t, 3000), -414);
    /* The decoded length counts, not the raw one: 1 + 1023 escapes. */
    t[0] = '/';
    for (size_t i = 0; i < 1023; i++)
        memcpy(t + 1 + 3 * i, "%61", 4);
    expect_refused(www, t, -404);
    memcpy(t + 1 + 3 * 1023, "%61", 4);
    expect_refused(www, t, -414);
}
END_TEST

/* A 2000-byte path with PUT written at byte 3 (or appended when AT < 0). */
static const struct { int at; const char *put; int rc; } precedence[] = {
    { -1, "%zz", -400 }, { -1, "%4", -400 }, { 3, "%x1", -400 },  /* escape beats length */
    { 3, "%01", -414 }, { 3, "%2f", -414 },                       /* length beats a byte */
};

START_TEST(bad_escape_wins_over_length)
{
    static char t[4096];
    segments_path(t, 2000);
    if (precedence[_i].at < 0)
        strcat(t, precedence[_i].put);
    else
        memcpy(t + precedence[_i].at, precedence[_i].put, strlen(precedence[_i].put));
    expect_refused(www, t, precedence[_i].rc);
}
END_TEST

START_TEST(missing_root)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/no-such-root", top);
    expect_refused(p, "/", -404);
    expect_refused(p, "/app.js", -404);
    at(p, sizeof p, "app.js");          /* a root that is a file */
    expect_refused(p, "/", -404);
    expect_refused(p, "/x", -404);
}
END_TEST

/* A case over the tree: built once before its tests, removed after them. */
static TCase *tree_case(Suite *s, const char *name)
{
    TCase *tc = tcase_create(name);
    tcase_add_unchecked_fixture(tc, tree_setup, tree_teardown);
    tcase_set_timeout(tc, 10);
    suite_add_tcase(s, tc);
    return tc;
}

Suite *static_files_suite(void)
{
    Suite *s = suite_create("static_files");
    TCase *tc;

    tc = tree_case(s, "ok");
    tcase_add_loop_test(tc, get_ok, 0, sizeof oks / sizeof oks[0]);
    tcase_add_test(tc, etag_is_inode_size_mtime);
    tcase_add_test(tc, head_has_length_no_body);
    tcase_add_test(tc, largest_file);

    tc = tree_case(s, "conditional");
    tcase_add_loop_test(tc, if_none_match, 0, sizeof inm / sizeof inm[0]);
    tcase_add_test(tc, if_none_match_other_file);
    tcase_add_loop_test(tc, if_modified_since, 0, sizeof ims / sizeof ims[0]);

    tc = tree_case(s, "redirect");
    tcase_add_loop_test(tc, dir_redirect, 0, sizeof redirects / sizeof redirects[0]);
    tcase_add_test(tc, dir_redirect_too_long);

    tc = tree_case(s, "refuse");
    tcase_add_loop_test(tc, refused, 0, sizeof refusals / sizeof refusals[0]);
    tcase_add_test(tc, path_length_limit);
    tcase_add_loop_test(tc, bad_escape_wins_over_length, 0,
                        sizeof precedence / sizeof precedence[0]);
    tcase_add_test(tc, missing_root);
    return s;
}

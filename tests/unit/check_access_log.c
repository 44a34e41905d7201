/*
 * check_access_log: the access log line (server/access_log.c). Every field
 * in its place, nginx's time with each sign of offset, hostile bytes in the
 * client-chosen fields (path, method, user) escaped so that a line can
 * never be split or its quotes unbalanced, each field cut at its bound and
 * the whole line within ACCESS_LINE_MAX, inputs flush against a guard page;
 * then the file helpers: 0640, O_APPEND, close-on-exec, reopen after a
 * rename, and a failed reopen keeping the old file.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "access_log.h"
#include "guard.h"

/* 2026-12-03 14:30:00 UTC */
#define T0 INT64_C(1796308200)

static const uint8_t v4[16] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 203, 0, 113, 7 };
static const uint8_t v6[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x42 };

static char line[ACCESS_LINE_MAX + 1];

/* Format E into `line` (NUL-terminated for the string asserts); its length. */
static size_t fmt(const struct access_entry *e)
{
    memset(line, 0x55, sizeof line);
    ssize_t n = access_log_format(line, ACCESS_LINE_MAX, e);
    ck_assert_int_gt(n, 0);
    ck_assert_int_le(n, ACCESS_LINE_MAX);
    line[n] = '\0';
    return (size_t)n;
}

static struct access_entry base(void)
{
    struct access_entry e = {
        .unix_s = T0, .utc_offset_s = 0, .addr = v4,
        .user = "alice", .user_len = 5, .method = "GET", .method_len = 3,
        .path = "/chat/lobby", .path_len = 11, .status = 200,
        .bytes_in = 123, .bytes_out = 4567, .duration_ms = 89,
    };
    return e;
}

/* A line may hold printable ASCII only, two quotes, and one '\n' at its end. */
static void assert_one_clean_line(size_t n)
{
    int quotes = 0;
    ck_assert_int_eq(line[n - 1], '\n');
    for (size_t i = 0; i + 1 < n; i++) {
        unsigned char ch = (unsigned char)line[i];
        ck_assert_msg(ch >= 0x20 && ch < 0x7f, "byte 0x%02x at %zu", ch, i);
        quotes += ch == '"';
    }
    ck_assert_int_eq(quotes, 2);
}

START_TEST(every_field)
{
    struct access_entry e = base();
    size_t n = fmt(&e);
    ck_assert_str_eq(line,
        "203.0.113.7 - alice [03/Dec/2026:14:30:00 +0000] \"GET /chat/lobby\" 200 123 4567 89\n");
    ck_assert_uint_eq(n, strlen(line));
}
END_TEST

START_TEST(websocket_session)
{
    struct access_entry e = base();
    e.method = "WS";
    e.method_len = 2;
    e.status = 1000;
    e.addr = v6;
    e.bytes_in = UINT64_MAX;
    e.bytes_out = 0;
    e.duration_ms = 3600000;
    fmt(&e);
    ck_assert_str_eq(line, "2001:db8::42 - alice [03/Dec/2026:14:30:00 +0000] "
                           "\"WS /chat/lobby\" 1000 18446744073709551615 0 3600000\n");
}
END_TEST

static const struct { int32_t off; int64_t t; const char *want; } times[] = {
    { 0, T0, "[03/Dec/2026:14:30:00 +0000]" },
    { 3600, T0, "[03/Dec/2026:15:30:00 +0100]" },
    { 5 * 3600 + 1800, T0, "[03/Dec/2026:20:00:00 +0530]" },
    { -8 * 3600, T0, "[03/Dec/2026:06:30:00 -0800]" },
    { -(3 * 3600 + 1800), INT64_C(1798762509), "[31/Dec/2026:20:45:09 -0330]" },
    { 14 * 3600, INT64_C(1798762509), "[01/Jan/2027:14:15:09 +1400]" },
    { 0, 0, "[01/Jan/1970:00:00:00 +0000]" },
    /* Not a real zone: the offset is dropped rather than garbling the line. */
    { 90000, T0, "[03/Dec/2026:14:30:00 +0000]" },
};

START_TEST(local_time)
{
    struct access_entry e = base();
    e.unix_s = times[_i].t;
    e.utc_offset_s = times[_i].off;
    fmt(&e);
    ck_assert_ptr_nonnull(strstr(line, times[_i].want));
}
END_TEST

START_TEST(absent_fields)
{
    struct access_entry e = base();
    e.addr = NULL;
    e.user = NULL;
    e.user_len = 0;
    e.method = NULL;
    e.method_len = 0;
    e.path = NULL;
    e.path_len = 0;
    e.status = 400;
    fmt(&e);
    ck_assert_str_eq(line, "- - - [03/Dec/2026:14:30:00 +0000] \"- -\" 400 123 4567 89\n");
    /* An empty slice is as absent as NULL. */
    e.user = "";
    e.path = "";
    fmt(&e);
    ck_assert_str_eq(line, "- - - [03/Dec/2026:14:30:00 +0000] \"- -\" 400 123 4567 89\n");
}
END_TEST

START_TEST(user_named_dash)
{
    struct access_entry e = base();
    e.user = "-";
    e.user_len = 1;
    fmt(&e);
    ck_assert_ptr_nonnull(strstr(line, " - \\x2d ["));
    e.user = "--";
    e.user_len = 2;
    fmt(&e);
    ck_assert_ptr_nonnull(strstr(line, " - -- ["));
}
END_TEST

START_TEST(hostile_bytes_escaped)
{
    static const char path[] = "/a\"b\\c\nd\re f\x01\x7f\xff\x80g";
    static const char user[] = "bob\" 200 1 1 1\n1.2.3.4 - x";
    struct access_entry e = base();
    e.path = path;
    e.path_len = sizeof path - 1;
    e.user = user;
    e.user_len = sizeof user - 1;
    size_t n = fmt(&e);
    assert_one_clean_line(n);
    ck_assert_ptr_nonnull(strstr(line, "\"GET /a\\x22b\\x5cc\\x0ad\\x0de\\x20f\\x01\\x7f\\xff\\x80g\""));
    ck_assert_ptr_nonnull(strstr(line, " - bob\\x22\\x20200\\x201\\x201\\x201\\x0a1.2.3.4\\x20-\\x20x ["));
}
END_TEST

/* Each byte value alone, in every client-chosen field. */
START_TEST(every_byte)
{
    char b = (char)_i;
    struct access_entry e = base();
    e.path = e.user = e.method = &b;
    e.path_len = e.user_len = e.method_len = 1;
    size_t n = fmt(&e);
    assert_one_clean_line(n);
    int plain = _i > 0x20 && _i < 0x7f && _i != '"' && _i != '\\';
    char want[8];
    if (plain)
        snprintf(want, sizeof want, "%c", _i);
    else
        snprintf(want, sizeof want, "\\x%02x", _i);
    char full[64];
    snprintf(full, sizeof full, "\"%s %s\"", want, want);
    ck_assert_ptr_nonnull(strstr(line, full));
}
END_TEST

/* The escaped text of the quoted request's path (between the space and the closing quote). */
static size_t path_field(const char **start)
{
    const char *q = strchr(line, '"');
    ck_assert_ptr_nonnull(q);
    const char *sp = strchr(q, ' ');
    const char *end = strchr(sp + 1, '"');
    ck_assert_ptr_nonnull(end);
    *start = sp + 1;
    return (size_t)(end - sp - 1);
}

START_TEST(path_cut_at_bound)
{
    char *p = malloc(ACCESS_PATH_FIELD + 1);
    memset(p, 'a', ACCESS_PATH_FIELD + 1);
    struct access_entry e = base();
    const char *f;

    /* Exactly the bound: whole, no marker. */
    e.path = guard_copy(p, ACCESS_PATH_FIELD);
    e.path_len = ACCESS_PATH_FIELD;
    fmt(&e);
    ck_assert_uint_eq(path_field(&f), ACCESS_PATH_FIELD);
    ck_assert_int_ne(memcmp(f + ACCESS_PATH_FIELD - 3, "...", 3), 0);

    /* One more: cut, and the marker ends it within the bound. */
    e.path = guard_copy(p, ACCESS_PATH_FIELD + 1);
    e.path_len = ACCESS_PATH_FIELD + 1;
    fmt(&e);
    ck_assert_uint_eq(path_field(&f), ACCESS_PATH_FIELD);
    ck_assert_int_eq(memcmp(f + ACCESS_PATH_FIELD - 3, "...", 3), 0);
    ck_assert_int_eq(f[ACCESS_PATH_FIELD - 4], 'a');
    guard_release();
    free(p);
}
END_TEST

/* A cut never leaves half an escape: "\x4" would read as another byte. */
START_TEST(cut_keeps_escapes_whole)
{
    size_t len = ACCESS_PATH_FIELD;     /* escapes to 4x the bound */
    char *p = malloc(len);
    memset(p, '"', len);
    p[0] = '/';
    struct access_entry e = base();
    e.path = guard_copy(p, len);
    e.path_len = len;
    size_t n = fmt(&e);
    assert_one_clean_line(n);
    const char *f;
    size_t flen = path_field(&f);
    ck_assert_uint_le(flen, ACCESS_PATH_FIELD);
    ck_assert_int_eq(memcmp(f + flen - 3, "...", 3), 0);
    ck_assert_int_eq((flen - 3 - 1) % 4, 0);     /* "/" then whole \x22 escapes */
    for (size_t i = 1; i + 3 < flen; i += 4)
        ck_assert_int_eq(memcmp(f + i, "\\x22", 4), 0);
    guard_release();
    free(p);
}
END_TEST

/* Every client field at its worst at once: still one line within ACCESS_LINE_MAX. */
START_TEST(line_bound)
{
    size_t len = 100000;
    char *p = malloc(len);
    for (size_t i = 0; i < len; i++)
        p[i] = (char)(i % 3 == 0 ? '\n' : i % 3 == 1 ? '"' : 0xfe);
    struct access_entry e = base();
    e.path = e.user = e.method = p;
    e.path_len = e.user_len = e.method_len = len;
    e.addr = v6;
    e.status = 65535;
    e.bytes_in = e.bytes_out = e.duration_ms = UINT64_MAX;
    size_t n = fmt(&e);
    assert_one_clean_line(n);
    ck_assert_uint_le(n, ACCESS_LINE_MAX);
    ck_assert_ptr_nonnull(strstr(line, "... ["));
    ck_assert_ptr_nonnull(strstr(line, "...\" 65535 "));
    free(p);
}
END_TEST

START_TEST(buffer_too_small)
{
    struct access_entry e = base();
    char small[ACCESS_LINE_MAX - 1];
    ck_assert_int_eq(access_log_format(small, sizeof small, &e), -ENOSPC);
    /* The guaranteed size is enough even for the worst line. */
    char *exact = guard_copy(line, ACCESS_LINE_MAX);
    ck_assert_int_gt(access_log_format(exact, ACCESS_LINE_MAX, &e), 0);
    guard_release();
}
END_TEST

/* ---- file helpers ---- */

static char dir[64];

static void dir_setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/check_alog.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void dir_teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) { /* best effort */ }
}

static char *slurp(const char *path)
{
    static char buf[4096];
    int fd = open(path, O_RDONLY);
    ck_assert_int_ge(fd, 0);
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    ck_assert_int_ge(n, 0);
    buf[n] = '\0';
    return buf;
}

START_TEST(open_mode_append_cloexec)
{
    char path[128];
    snprintf(path, sizeof path, "%s/access.log", dir);
    umask(022);
    int fd = access_log_open(path);
    ck_assert_int_ge(fd, 0);
    struct stat st;
    ck_assert_int_eq(fstat(fd, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0640);
    ck_assert_int_ne(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
    ck_assert_int_ne(fcntl(fd, F_GETFL) & O_APPEND, 0);
    ck_assert_int_eq(access_log_write(fd, "one\n", 4), 0);
    close(fd);
    /* Appended, never truncated, by the next open. */
    fd = access_log_open(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(access_log_write(fd, "two\n", 4), 0);
    close(fd);
    ck_assert_str_eq(slurp(path), "one\ntwo\n");
}
END_TEST

START_TEST(reopen_after_rename)
{
    char path[128], old[128];
    snprintf(path, sizeof path, "%s/access.log", dir);
    snprintf(old, sizeof old, "%s/access.log.1", dir);
    int fd = access_log_open(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(access_log_write(fd, "before\n", 7), 0);
    ck_assert_int_eq(rename(path, old), 0);
    ck_assert_int_eq(access_log_write(fd, "late\n", 5), 0);    /* still the old file */
    int before = fd;
    ck_assert_int_eq(access_log_reopen(&fd, path), 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_ne(fd, before);
    ck_assert_int_eq(fcntl(before, F_GETFD), -1);      /* the old fd is closed */
    ck_assert_int_eq(access_log_write(fd, "after\n", 6), 0);
    close(fd);
    ck_assert_str_eq(slurp(old), "before\nlate\n");
    ck_assert_str_eq(slurp(path), "after\n");
}
END_TEST

START_TEST(failed_reopen_keeps_old)
{
    char path[128], bad[160];
    snprintf(path, sizeof path, "%s/access.log", dir);
    snprintf(bad, sizeof bad, "%s/missing/access.log", dir);
    int fd = access_log_open(path);
    ck_assert_int_ge(fd, 0);
    int keep = fd;
    ck_assert_int_eq(access_log_reopen(&fd, bad), -ENOENT);
    ck_assert_int_eq(fd, keep);
    ck_assert_int_eq(access_log_write(fd, "still\n", 6), 0);
    close(fd);
    ck_assert_str_eq(slurp(path), "still\n");
    ck_assert_int_eq(access_log_open(bad), -ENOENT);
    ck_assert_int_eq(access_log_open(dir), -EISDIR);
}
END_TEST

START_TEST(write_errors)
{
    ck_assert_int_eq(access_log_write(-1, "x\n", 2), -EBADF);
}
END_TEST

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

Suite *access_log_suite(void)
{
    Suite *s = suite_create("access_log");
    TCase *tc = tcase_create("format");
    tcase_add_test(tc, every_field);
    tcase_add_test(tc, websocket_session);
    tcase_add_loop_test(tc, local_time, 0, N(times));
    tcase_add_test(tc, absent_fields);
    tcase_add_test(tc, user_named_dash);
    tcase_add_test(tc, hostile_bytes_escaped);
    tcase_add_loop_test(tc, every_byte, 0, 256);
    tcase_add_test(tc, path_cut_at_bound);
    tcase_add_test(tc, cut_keeps_escapes_whole);
    tcase_add_test(tc, line_bound);
    tcase_add_test(tc, buffer_too_small);
    suite_add_tcase(s, tc);

    tc = tcase_create("file");
    tcase_add_checked_fixture(tc, dir_setup, dir_teardown);
    tcase_add_test(tc, open_mode_append_cloexec);
    tcase_add_test(tc, reopen_after_rename);
    tcase_add_test(tc, failed_reopen_keeps_old);
    tcase_add_test(tc, write_errors);
    suite_add_tcase(s, tc);
    return s;
}

/*
 * Unit tests of server/config.c: every directive and its default, the line
 * syntax (comments, CRLF, ';', quotes), size and duration units, listen
 * address forms, path anchoring on real temporary files, and every error
 * path with the exact "FILE:LINE:" it must report, and the cluster
 * directives (URL, password file, prefix, timeout, no journal in cluster
 * mode). Error cases are tables run with tcase_add_loop_test so each
 * vector is its own test.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cidr.h"
#include "config.h"
#include "log.h"

#define KIB ((uint64_t)1024)
#define MIB (KIB * 1024)
#define GIB (MIB * 1024)
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static struct config cfg, cfg2;     /* ~25 KB each: keep them off the stack */
static char err[CONFIG_ERR_LEN];

static int parse(struct config *c, const char *text)
{
    return config_parse(c, text, strlen(text), "t.conf", err, sizeof(err));
}

/* Assert that text parses, showing the error message if it does not. */
static void parse_ok(struct config *c, const char *text)
{
    int rc = parse(c, text);
    ck_assert_msg(rc == 0, "parse failed: %s", err);
}

/* Assert a failure reported as "t.conf:LINE: ..." that contains want. */
static void parse_fails(const char *text, size_t len, unsigned line, const char *want)
{
    char prefix[64];
    if (line)
        snprintf(prefix, sizeof(prefix), "t.conf:%u: ", line);
    else
        snprintf(prefix, sizeof(prefix), "t.conf: ");
    int rc = config_parse(&cfg, text, len, "t.conf", err, sizeof(err));
    ck_assert_msg(rc == -1, "accepted: %.60s", text);
    ck_assert_msg(strncmp(err, prefix, strlen(prefix)) == 0,
                  "error \"%s\" does not start with \"%s\"", err, prefix);
    ck_assert_msg(strstr(err, want) != NULL,
                  "error \"%s\" lacks \"%s\"", err, want);
}

static int expected_auto_workers(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > CONFIG_MAX_WORKERS ? CONFIG_MAX_WORKERS : (int)n;
}

/* Parent of the current directory, as "<confdir>/.." folds for "t.conf". */
static void cwd_parent(char *out, size_t len)
{
    char cwd[PATH_MAX];
    ck_assert_ptr_nonnull(realpath(".", cwd));
    char *slash = strrchr(cwd, '/');
    if (slash == cwd)
        slash[1] = '\0';
    else
        *slash = '\0';
    snprintf(out, len, "%s", cwd);
}

static void join(char *out, size_t len, const char *a, const char *b)
{
    int n = snprintf(out, len, "%s%s%s", a, a[strlen(a) - 1] == '/' ? "" : "/", b);
    ck_assert_int_lt(n, (int)len);
}

/* ---- defaults ----------------------------------------------------------- */

START_TEST(defaults_struct)
{
    memset(&cfg, 0xA5, sizeof(cfg));
    config_defaults(&cfg);
    ck_assert_int_eq(cfg.nlisten, 0);
    ck_assert_int_eq(cfg.workers_auto, 1);
    ck_assert_int_eq(cfg.workers, expected_auto_workers());
    ck_assert_int_eq(cfg.max_connections, 10000);
    ck_assert_str_eq(cfg.web_root, "../web");
    ck_assert_str_eq(cfg.pid_file, "../run/wschat.pid");
    ck_assert_str_eq(cfg.error_log, "stderr");
    ck_assert_int_eq(cfg.log_level, LOG_LVL_INFO);
    ck_assert_uint_eq(cfg.handshake_timeout_ms, 10000);
    ck_assert_uint_eq(cfg.idle_timeout_ms, 60000);
    ck_assert_uint_eq(cfg.close_timeout_ms, 5000);
    ck_assert_uint_eq(cfg.shutdown_timeout_ms, 10000);
    ck_assert_uint_eq(cfg.max_request_head, 8 * KIB);
    ck_assert_uint_eq(cfg.max_message, MIB);
    ck_assert_uint_eq(cfg.max_send_queue, 4 * MIB);
    ck_assert_uint_eq(cfg.max_text, 4 * KIB);
    ck_assert_uint_eq(cfg.history_size, 100);
    ck_assert_uint_eq(cfg.ring_size, 16 * MIB);
    ck_assert_int_eq(cfg.norigins, 0);
}
END_TEST

START_TEST(reload_handoff_flag)
{
    config_defaults(&cfg);
    ck_assert_int_eq(cfg.reload_handoff, 1);
    parse_ok(&cfg, "reload_handoff off\n");
    ck_assert_int_eq(cfg.reload_handoff, 0);
    parse_ok(&cfg, "reload_handoff on;\n");
    ck_assert_int_eq(cfg.reload_handoff, 1);
    const char *bad = "\nreload_handoff yes\n";
    const char *twice = "reload_handoff on\nreload_handoff off\n";
    const char *bare = "reload_handoff\n";
    parse_fails(bad, strlen(bad), 2, "takes on or off");
    parse_fails(twice, strlen(twice), 2, "duplicate");
    parse_fails(bare, strlen(bare), 1, "needs a value");
}
END_TEST

START_TEST(defaults_empty_file)
{
    char parent[PATH_MAX], want[PATH_MAX + 32];
    memset(&cfg, 0xA5, sizeof(cfg));
    parse_ok(&cfg, "# nothing but a comment\n\n");
    ck_assert_int_eq(cfg.nlisten, 1);
    ck_assert_int_eq(cfg.listen[0].family, AF_INET);
    ck_assert_str_eq(cfg.listen[0].host, "127.0.0.1");
    ck_assert_uint_eq(cfg.listen[0].port, 8000);
    ck_assert_int_eq(cfg.workers_auto, 1);
    ck_assert_int_eq(cfg.max_connections, 10000);
    ck_assert_uint_eq(cfg.max_text, 4 * KIB);
    ck_assert_int_eq(cfg.norigins, 0);
    cwd_parent(parent, sizeof(parent));
    join(want, sizeof(want), parent, "web");
    ck_assert_str_eq(cfg.web_root, want);
    join(want, sizeof(want), parent, "run/wschat.pid");
    ck_assert_str_eq(cfg.pid_file, want);
    ck_assert_str_eq(cfg.error_log, "stderr");
    ck_assert_str_eq(err, "");
}
END_TEST

START_TEST(defaults_zero_length)
{
    ck_assert_int_eq(config_parse(&cfg, "", 0, "t.conf", err, sizeof(err)), 0);
    ck_assert_int_eq(cfg.nlisten, 1);
    ck_assert_uint_eq(cfg.idle_timeout_ms, 60000);
}
END_TEST

/* ---- directives --------------------------------------------------------- */

START_TEST(all_directives)
{
    parse_ok(&cfg,
        "listen 10.0.0.1:81\n"
        "listen [::1]:82\n"
        "workers 3\n"
        "max_connections 12345\n"
        "web_root /srv/web\n"
        "pid_file /var/run/w.pid\n"
        "error_log /var/log/w.log\n"
        "log_level debug\n"
        "handshake_timeout 1500ms\n"
        "idle_timeout 2m\n"
        "close_timeout 7\n"
        "worker_shutdown_timeout 1h\n"
        "max_request_head 16k\n"
        "max_message 2M\n"
        "max_send_queue 1g\n"
        "max_text 100\n"
        "history_size 0\n"
        "ring_size 4g\n"
        "origins https://a.example http://b.example:8080\n");
    ck_assert_int_eq(cfg.nlisten, 2);
    ck_assert_int_eq(cfg.listen[0].family, AF_INET);
    ck_assert_str_eq(cfg.listen[0].host, "10.0.0.1");
    ck_assert_uint_eq(cfg.listen[0].port, 81);
    ck_assert_int_eq(cfg.listen[1].family, AF_INET6);
    ck_assert_str_eq(cfg.listen[1].host, "::1");
    ck_assert_uint_eq(cfg.listen[1].port, 82);
    ck_assert_int_eq(cfg.workers, 3);
    ck_assert_int_eq(cfg.workers_auto, 0);
    ck_assert_int_eq(cfg.max_connections, 12345);
    ck_assert_str_eq(cfg.web_root, "/srv/web");
    ck_assert_str_eq(cfg.pid_file, "/var/run/w.pid");
    ck_assert_str_eq(cfg.error_log, "/var/log/w.log");
    ck_assert_int_eq(cfg.log_level, LOG_LVL_DEBUG);
    ck_assert_uint_eq(cfg.handshake_timeout_ms, 1500);
    ck_assert_uint_eq(cfg.idle_timeout_ms, 120000);
    ck_assert_uint_eq(cfg.close_timeout_ms, 7000);
    ck_assert_uint_eq(cfg.shutdown_timeout_ms, 3600000);
    ck_assert_uint_eq(cfg.max_request_head, 16384);
    ck_assert_uint_eq(cfg.max_message, 2 * MIB);
    ck_assert_uint_eq(cfg.max_send_queue, GIB);
    ck_assert_uint_eq(cfg.max_text, 100);
    ck_assert_uint_eq(cfg.history_size, 0);
    ck_assert_uint_eq(cfg.ring_size, 4 * GIB);
    ck_assert_int_eq(cfg.norigins, 2);
    ck_assert_str_eq(cfg.origins[0], "https://a.example");
    ck_assert_str_eq(cfg.origins[1], "http://b.example:8080");
}
END_TEST

START_TEST(range_edges)
{
    /* The inclusive ends of every range are accepted. */
    parse_ok(&cfg, "workers 1\nmax_connections 1\nhandshake_timeout 1ms\n"
                   "idle_timeout 1s\nclose_timeout 1ms\nworker_shutdown_timeout 1ms\n"
                   "max_request_head 1k\nmax_message 1\nmax_text 1\n"
                   "max_send_queue 64k\nhistory_size 0\nring_size 1m\n");
    ck_assert_int_eq(cfg.workers, 1);
    ck_assert_int_eq(cfg.max_connections, 1);
    ck_assert_uint_eq(cfg.handshake_timeout_ms, 1);
    ck_assert_uint_eq(cfg.idle_timeout_ms, 1000);
    ck_assert_uint_eq(cfg.max_request_head, 1024);
    ck_assert_uint_eq(cfg.max_message, 1);
    ck_assert_uint_eq(cfg.max_send_queue, 64 * KIB);
    ck_assert_uint_eq(cfg.ring_size, MIB);
    parse_ok(&cfg, "workers 64\nmax_connections 1000000\nhandshake_timeout 24h\n"
                   "idle_timeout 24h\nclose_timeout 24h\nworker_shutdown_timeout 24h\n"
                   "max_request_head 1m\nmax_message 1g\nmax_text 1m\n"
                   "max_send_queue 1g\nhistory_size 100000\nring_size 4g\n");
    ck_assert_int_eq(cfg.workers, 64);
    ck_assert_int_eq(cfg.max_connections, 1000000);
    ck_assert_uint_eq(cfg.idle_timeout_ms, 86400000);
    ck_assert_uint_eq(cfg.max_message, GIB);
    ck_assert_uint_eq(cfg.max_text, MIB);
    ck_assert_uint_eq(cfg.history_size, 100000);
    ck_assert_uint_eq(cfg.ring_size, 4 * GIB);
    /* max_text may equal max_message. */
    parse_ok(&cfg, "max_message 100\nmax_text 100\n");
    ck_assert_uint_eq(cfg.max_text, 100);
}
END_TEST

START_TEST(workers_auto)
{
    parse_ok(&cfg, "workers auto\n");
    ck_assert_int_eq(cfg.workers_auto, 1);
    ck_assert_int_eq(cfg.workers, expected_auto_workers());
    ck_assert_int_ge(cfg.workers, 1);
    ck_assert_int_le(cfg.workers, CONFIG_MAX_WORKERS);
}
END_TEST

static const char *const level_names[] = {
    "alert", "crit", "error", "warn", "notice", "info", "debug"
};

START_TEST(log_levels)
{
    char text[64];
    snprintf(text, sizeof(text), "log_level %s\n", level_names[_i]);
    parse_ok(&cfg, text);
    ck_assert_int_eq(cfg.log_level, _i);
    ck_assert_str_eq(log_level_name(_i), level_names[_i]);
}
END_TEST

START_TEST(log_level_name_out_of_range)
{
    ck_assert_str_eq(log_level_name(-1), "unknown");
    ck_assert_str_eq(log_level_name(LOG_LVL_DEBUG + 1), "unknown");
    ck_assert_int_eq(LOG_LVL_ERR, 2);
    ck_assert_str_eq(log_level_name(LOG_LVL_ERR), "error");
}
END_TEST

/* Every directive that may appear only once, with a valid value. */
static const struct { const char *name, *value; } once[] = {
    { "workers", "2" }, { "max_connections", "5" }, { "web_root", "/w" },
    { "pid_file", "/p" }, { "error_log", "/e" }, { "log_level", "debug" },
    { "handshake_timeout", "1s" }, { "idle_timeout", "2s" },
    { "close_timeout", "3s" }, { "worker_shutdown_timeout", "4s" },
    { "max_request_head", "2k" }, { "max_message", "2m" },
    { "max_send_queue", "128k" }, { "max_text", "100" },
    { "history_size", "7" }, { "ring_size", "2m" }, { "origins", "http://a" },
};

START_TEST(directive_arity)
{
    char text[256], want[128];
    const char *n = once[_i].name, *v = once[_i].value;

    snprintf(text, sizeof(text), "%s %s\n", n, v);
    parse_ok(&cfg, text);

    snprintf(text, sizeof(text), "# one\n%s %s;\n%s %s\n", n, v, n, v);
    snprintf(want, sizeof(want), "\"%s\" directive is duplicate", n);
    parse_fails(text, strlen(text), 3, want);

    snprintf(text, sizeof(text), "\n%s\n", n);
    snprintf(want, sizeof(want), "\"%s\" directive needs a value", n);
    parse_fails(text, strlen(text), 2, want);

    snprintf(text, sizeof(text), "%s ;\n", n);
    parse_fails(text, strlen(text), 1, want);

    if (strcmp(n, "origins") != 0) {
        snprintf(text, sizeof(text), "%s %s %s\n", n, v, v);
        snprintf(want, sizeof(want), "\"%s\" directive takes one value", n);
        parse_fails(text, strlen(text), 1, want);
    }
}
END_TEST

/* ---- line syntax -------------------------------------------------------- */

START_TEST(syntax_comments_crlf_semicolons)
{
    parse_ok(&cfg,
        "\xEF\xBB\xBF# a byte order mark, then a comment\r\n"
        "\r\n"
        "   \t  \r\n"
        "workers 3;   # trailing comment\r\n"
        "\tmax_connections\t7 ;\n"
        "history_size 5#right after the value\n"
        ";\n"
        "web_root \"/tmp/a b#c;\"; # quoted: blanks, # and ; kept\n"
        "origins \"http://a\" http://b;\n"
        "   # indented comment with \"quote and ; semicolon\n"
        "log_level warn");                     /* no final newline */
    ck_assert_int_eq(cfg.workers, 3);
    ck_assert_int_eq(cfg.max_connections, 7);
    ck_assert_uint_eq(cfg.history_size, 5);
    ck_assert_str_eq(cfg.web_root, "/tmp/a b#c;");
    ck_assert_int_eq(cfg.norigins, 2);
    ck_assert_str_eq(cfg.origins[0], "http://a");
    ck_assert_str_eq(cfg.origins[1], "http://b");
    ck_assert_int_eq(cfg.log_level, LOG_LVL_WARN);
}
END_TEST

START_TEST(syntax_long_lines)
{
    static char text[3 * 4096];
    /* A 4096-byte comment and a 4096-byte directive line are both fine. */
    memset(text, '#', 4096);
    text[4096] = '\n';
    size_t off = 4097;
    off += (size_t)sprintf(text + off, "web_root /");
    memset(text + off, 'a', 4096 - 10);
    off += 4096 - 10;
    memcpy(text + off, "\r\n", 3);
    ck_assert_uint_eq(strlen(text), 4097 + 4096 + 2);
    parse_ok(&cfg, text);
    ck_assert_uint_eq(strlen(cfg.web_root), 4087);
    ck_assert_int_eq(cfg.web_root[4086], 'a');

    /* One byte more is refused, with the line it is on. */
    memset(text, ' ', 4096);
    text[4096] = '\n';
    memset(text + 4097, '#', 4097);
    memcpy(text + 4097 + 4097, "\n", 2);
    parse_fails(text, strlen(text), 2, "line is longer than 4096 bytes");
}
END_TEST

START_TEST(syntax_nul_byte)
{
    static const char text[] = "workers 2\nworkers\0 3\n";
    parse_fails(text, sizeof(text) - 1, 2, "NUL byte");
}
END_TEST

START_TEST(syntax_length_bounds_text)
{
    /* Only len bytes are read: what follows (an unknown directive) is ignored. */
    static const char text[] = "workers 2\nbogus 1\n";
    ck_assert_int_eq(config_parse(&cfg, text, 10, "t.conf", err, sizeof(err)), 0);
    ck_assert_int_eq(cfg.workers, 2);
}
END_TEST

/* ---- units -------------------------------------------------------------- */

static const struct { const char *s; int rc; uint64_t v; } sizes[] = {
    { "0", 0, 0 }, { "1", 0, 1 }, { "1023", 0, 1023 }, { "1k", 0, 1024 },
    { "1K", 0, 1024 }, { "16k", 0, 16384 }, { "3m", 0, 3 * MIB },
    { "3M", 0, 3 * MIB }, { "2g", 0, 2 * GIB }, { "2G", 0, 2 * GIB },
    { "007k", 0, 7 * KIB },
    { "18446744073709551615", 0, UINT64_MAX },
    { "17179869183g", 0, 17179869183ull * GIB },
    { "18446744073709551616", -1, 0 }, { "17179869184g", -1, 0 },
    { "18014398509481984k", -1, 0 }, { "99999999999999999999999", -1, 0 },
    { "", -1, 0 }, { "k", -1, 0 }, { "1kk", -1, 0 }, { "1 k", -1, 0 },
    { " 1", -1, 0 }, { "1 ", -1, 0 }, { "-1", -1, 0 }, { "+1", -1, 0 },
    { "1.5k", -1, 0 }, { "0x10", -1, 0 }, { "1t", -1, 0 }, { "1kb", -1, 0 },
    { "1b", -1, 0 }, { "1e3", -1, 0 },
};

START_TEST(size_units)
{
    uint64_t v = 0xDEADBEEF;
    int rc = config_parse_size(sizes[_i].s, &v);
    ck_assert_msg(rc == sizes[_i].rc, "\"%s\": rc %d", sizes[_i].s, rc);
    if (rc == 0)
        ck_assert_uint_eq(v, sizes[_i].v);
    else
        ck_assert_uint_eq(v, 0xDEADBEEF);     /* untouched on failure */
}
END_TEST

static const struct { const char *s; int rc; uint64_t ms; } durations[] = {
    { "0", 0, 0 }, { "10", 0, 10000 }, { "10s", 0, 10000 },
    { "1500ms", 0, 1500 }, { "0ms", 0, 0 }, { "5m", 0, 300000 },
    { "1h", 0, 3600000 }, { "24h", 0, 86400000 }, { "90m", 0, 5400000 },
    { "18446744073709551615ms", 0, UINT64_MAX },
    { "18446744073709551", 0, 18446744073709551000ull },
    { "5124095576030h", 0, 5124095576030ull * 3600000 },
    { "18446744073709552", -1, 0 }, { "18446744073709552s", -1, 0 },
    { "5124095576031h", -1, 0 }, { "18446744073709551616ms", -1, 0 },
    { "", -1, 0 }, { "s", -1, 0 }, { "ms", -1, 0 }, { "1H", -1, 0 },
    { "1S", -1, 0 }, { "1MS", -1, 0 }, { "1sm", -1, 0 }, { "1mss", -1, 0 },
    { "1 s", -1, 0 }, { "-1s", -1, 0 }, { "+1s", -1, 0 }, { "1.5s", -1, 0 },
    { "1d", -1, 0 }, { "1us", -1, 0 }, { "1k", -1, 0 }, { "s1", -1, 0 },
};

START_TEST(duration_units)
{
    uint64_t v = 0xDEADBEEF;
    int rc = config_parse_duration(durations[_i].s, &v);
    ck_assert_msg(rc == durations[_i].rc, "\"%s\": rc %d", durations[_i].s, rc);
    if (rc == 0)
        ck_assert_uint_eq(v, durations[_i].ms);
    else
        ck_assert_uint_eq(v, 0xDEADBEEF);
}
END_TEST

/* ---- listen ------------------------------------------------------------- */

static const struct {
    const char *value;
    int family;
    const char *host;
    unsigned port;
} listens[] = {
    { "8000", AF_INET, "0.0.0.0", 8000 },
    { "0", AF_INET, "0.0.0.0", 0 },
    { "*:80", AF_INET, "0.0.0.0", 80 },
    { "127.0.0.1:0", AF_INET, "127.0.0.1", 0 },
    { "10.1.2.3:65535", AF_INET, "10.1.2.3", 65535 },
    { "0.0.0.0:1", AF_INET, "0.0.0.0", 1 },
    { "192.168.1.1:00080", AF_INET, "192.168.1.1", 80 },
    { "[::1]:8000", AF_INET6, "::1", 8000 },
    { "[::]:1", AF_INET6, "::", 1 },
    { "[0:0:0:0:0:0:0:1]:9", AF_INET6, "::1", 9 },
    { "[2001:DB8::1]:443", AF_INET6, "2001:db8::1", 443 },
    { "[::ffff:127.0.0.1]:5", AF_INET6, "::ffff:127.0.0.1", 5 },
};

START_TEST(listen_forms)
{
    char text[128];
    snprintf(text, sizeof(text), "listen %s;\n", listens[_i].value);
    parse_ok(&cfg, text);
    ck_assert_int_eq(cfg.nlisten, 1);
    ck_assert_int_eq(cfg.listen[0].family, listens[_i].family);
    ck_assert_str_eq(cfg.listen[0].host, listens[_i].host);
    ck_assert_uint_eq(cfg.listen[0].port, listens[_i].port);
}
END_TEST

START_TEST(listen_many)
{
    static char text[1024];
    size_t off = 0;
    for (int i = 0; i < CONFIG_MAX_LISTEN; i++)
        off += (size_t)snprintf(text + off, sizeof(text) - off,
                                "listen 127.0.0.%d:%d\n", i + 1, 9000 + i);
    parse_ok(&cfg, text);
    ck_assert_int_eq(cfg.nlisten, CONFIG_MAX_LISTEN);
    ck_assert_str_eq(cfg.listen[0].host, "127.0.0.1");
    ck_assert_str_eq(cfg.listen[7].host, "127.0.0.8");
    ck_assert_uint_eq(cfg.listen[7].port, 9007);

    snprintf(text + off, sizeof(text) - off, "listen 127.0.0.9:1\n");
    parse_fails(text, strlen(text), 9, "too many \"listen\" directives (at most 8)");
}
END_TEST

START_TEST(listen_same_port_other_host)
{
    parse_ok(&cfg, "listen 127.0.0.1:80\nlisten 127.0.0.2:80\nlisten 127.0.0.1:81\n"
                   "listen [::1]:80\n");
    ck_assert_int_eq(cfg.nlisten, 4);
}
END_TEST

/* ---- errors, each with the line it must name ---------------------------- */

static const struct { const char *text; unsigned line; const char *want; } errors[] = {
    /* unknown, arity, duplicates */
    { "foo 1\n", 1, "unknown directive \"foo\"" },
    { "# c\n\r\n  Workers 2\n", 3, "unknown directive \"Workers\"" },
    { "\r\n\r\nfoo\r\n", 3, "unknown directive \"foo\"" },
    { "workers 1 2\n", 1, "\"workers\" directive takes one value" },
    { "idle_timeout 10 s\n", 1, "\"idle_timeout\" directive takes one value" },
    { "listen\n", 1, "\"listen\" directive needs a value" },
    { "listen 1 2\n", 1, "\"listen\" directive takes one value" },
    { "workers 1\n# c\nworkers 2\n", 3, "\"workers\" directive is duplicate (first on line 1)" },
    { "origins a\norigins b\n", 2, "\"origins\" directive is duplicate" },
    /* quotes */
    { "web_root \"/a b\n", 1, "unterminated quoted string" },
    { "web_root \"/a\"b\n", 1, "unexpected \"b\" after a quoted string" },
    { "web_root \"\"\n", 1, "empty path in \"web_root\"" },
    { "pid_file \"\";\n", 1, "empty path in \"pid_file\"" },
    { "error_log \"\"\n", 1, "empty path in \"error_log\"" },
    /* numbers */
    { "workers 0\n", 1, "\"workers\" must be between 1 and 64 or auto, not \"0\"" },
    { "workers 65\n", 1, "\"workers\" must be between 1 and 64 or auto" },
    { "workers -1\n", 1, "invalid number \"-1\" in \"workers\" directive" },
    { "workers 4x\n", 1, "invalid number \"4x\"" },
    { "workers Auto\n", 1, "invalid number \"Auto\"" },
    { "workers \"\"\n", 1, "invalid number \"\"" },
    { "max_connections 0\n", 1, "\"max_connections\" must be between 1 and 1000000" },
    { "max_connections 1000001\n", 1, "must be between 1 and 1000000" },
    { "max_connections 99999999999999999999999\n", 1, "must be between 1 and 1000000" },
    { "max_connections 1e3\n", 1, "invalid number \"1e3\"" },
    { "max_connections +5\n", 1, "invalid number \"+5\"" },
    { "max_connections 10k\n", 1, "invalid number \"10k\"" },
    { "history_size 100001\n", 1, "\"history_size\" must be between 0 and 100000" },
    { "history_size 1k\n", 1, "invalid number \"1k\"" },
    { "log_level loud\n", 1, "invalid log level \"loud\"" },
    { "log_level INFO\n", 1, "invalid log level \"INFO\"" },
    /* durations */
    { "handshake_timeout 0\n", 1, "\"handshake_timeout\" must be between 1ms and 24h" },
    { "handshake_timeout 25h\n", 1, "must be between 1ms and 24h, not \"25h\"" },
    { "idle_timeout 999ms\n", 1, "\"idle_timeout\" must be between 1s and 24h" },
    { "idle_timeout 10x\n", 1, "invalid duration \"10x\" in \"idle_timeout\" directive" },
    { "close_timeout 0ms\n", 1, "\"close_timeout\" must be between 1ms and 24h" },
    { "worker_shutdown_timeout 0\n", 1, "\"worker_shutdown_timeout\" must be between" },
    { "worker_shutdown_timeout 99999999999999999999h\n", 1, "must be between 1ms and 24h" },
    { "worker_shutdown_timeout 5124095576031h\n", 1, "must be between 1ms and 24h" },
    { "close_timeout 1.5s\n", 1, "invalid duration \"1.5s\"" },
    /* sizes */
    { "max_request_head 1023\n", 1, "\"max_request_head\" must be between 1k and 1m" },
    { "max_request_head 1025k\n", 1, "must be between 1k and 1m" },
    { "max_message 0\n", 1, "\"max_message\" must be between 1 and 1g" },
    { "max_message 1025m\n", 1, "must be between 1 and 1g" },
    { "max_send_queue 65535\n", 1, "\"max_send_queue\" must be between 64k and 1g" },
    { "max_text 0\n", 1, "\"max_text\" must be between 1 and 1m" },
    { "max_text 2m\n", 1, "must be between 1 and 1m" },
    { "ring_size 1023k\n", 1, "\"ring_size\" must be between 1m and 4g" },
    { "ring_size 5g\n", 1, "must be between 1m and 4g" },
    { "ring_size 17179869184g\n", 1, "must be between 1m and 4g" },
    { "ring_size 16q\n", 1, "invalid size \"16q\" in \"ring_size\" directive" },
    { "ring_size 16kb\n", 1, "invalid size \"16kb\"" },
    { "ring_size -16m\n", 1, "invalid size \"-16m\"" },
    /* max_text against max_message: the later line is named */
    { "max_text 8k\n\nmax_message 4k\n", 3, "\"max_text\" (8k) must not exceed \"max_message\" (4k)" },
    { "max_message 4k\n# c\n# c\nmax_text 5000\n", 4, "\"max_text\" (5000) must not exceed" },
    { "max_message 2k\n", 1, "\"max_text\" (4k) must not exceed \"max_message\" (2k)" },
    { "max_message 3k\nworkers 2\n", 1, "must not exceed \"max_message\" (3k)" },
    /* origins */
    { "origins\n", 1, "\"origins\" directive needs a value" },
    { "origins http://a \"\"\n", 1, "empty origin" },
    /* listen */
    { "listen localhost:80\n", 1, "invalid listen address \"localhost:80\": host must be a numeric" },
    { "listen 127.0.0.1\n", 1, "invalid listen address \"127.0.0.1\": missing port" },
    { "listen 127.0.0.1:\n", 1, "missing port" },
    { "listen [::1]:\n", 1, "missing port" },
    { "listen 127.0.0.1:65536\n", 1, "port must be a number from 0 to 65535" },
    { "listen 65536\n", 1, "port must be a number from 0 to 65535" },
    { "listen 127.0.0.1:-1\n", 1, "port must be a number" },
    { "listen 127.0.0.1:8o\n", 1, "port must be a number" },
    { "listen 127.0.0.1:99999999999999999999999\n", 1, "port must be a number" },
    { "listen ::1:80\n", 1, "IPv6 addresses must be written in brackets" },
    { "listen [::1]80\n", 1, "expected \":port\" after \"]\"" },
    { "listen [::1:80\n", 1, "missing \"]\"" },
    { "listen [127.0.0.1]:80\n", 1, "host must be a numeric" },
    { "listen [fe80::1%eth0]:80\n", 1, "host must be a numeric" },
    { "listen []:80\n", 1, "host must be a numeric" },
    { "listen 256.0.0.1:80\n", 1, "host must be a numeric" },
    { "listen :80\n", 1, "host must be a numeric" },
    { "listen **:80\n", 1, "host must be a numeric" },
    { "listen 127.0.0.1:80\nlisten 127.0.0.1:80\n", 2, "duplicate listen address \"127.0.0.1:80\"" },
    { "listen *:80\nlisten 0.0.0.0:80\n", 2, "duplicate listen address \"0.0.0.0:80\"" },
    { "listen 80\nlisten *:80\n", 2, "duplicate listen address" },
    { "listen [::1]:80\nlisten [0:0::1]:80\n", 2, "duplicate listen address \"[0:0::1]:80\"" },
};

START_TEST(error_lines)
{
    parse_fails(errors[_i].text, strlen(errors[_i].text), errors[_i].line,
                errors[_i].want);
}
END_TEST

START_TEST(error_origins_limits)
{
    static char text[8192];
    size_t off = (size_t)sprintf(text, "\norigins");
    for (int i = 0; i < CONFIG_MAX_ORIGINS; i++)
        off += (size_t)sprintf(text + off, " http://h%d", i);
    strcpy(text + off, "\n");
    parse_ok(&cfg, text);
    ck_assert_int_eq(cfg.norigins, CONFIG_MAX_ORIGINS);
    ck_assert_str_eq(cfg.origins[CONFIG_MAX_ORIGINS - 1], "http://h31");

    strcpy(text + off, " http://one-too-many\n");
    parse_fails(text, strlen(text), 2, "\"origins\" directive takes at most 32 values, got 33");

    /* 255 bytes fit, 256 do not. */
    off = (size_t)sprintf(text, "origins http://");
    memset(text + off, 'o', 255 - 7);
    strcpy(text + off + 255 - 7, "\n");
    parse_ok(&cfg, text);
    ck_assert_uint_eq(strlen(cfg.origins[0]), 255);
    memset(text + off, 'o', 256 - 7);
    strcpy(text + off + 256 - 7, "\n");
    parse_fails(text, strlen(text), 1, "is longer than 255 bytes");
}
END_TEST

START_TEST(error_buffer_small)
{
    /* A short buffer gets a truncated but terminated message, never more. */
    char small[12];
    memset(small, 'X', sizeof(small));
    ck_assert_int_eq(config_parse(&cfg, "foo 1\n", 6, "t.conf", small, 8), -1);
    ck_assert_str_eq(small, "t.conf:");
    ck_assert_int_eq(small[8], 'X');
    ck_assert_int_eq(config_parse(&cfg, "foo 1\n", 6, "t.conf", NULL, 0), -1);
}
END_TEST

/* ---- files and paths ---------------------------------------------------- */

static char tmpdir[PATH_MAX];       /* realpath of a fresh mkdtemp folder */

static void make_tmpdir(void)
{
    char templ[] = "/tmp/wschat-config-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(templ));
    ck_assert_ptr_nonnull(realpath(templ, tmpdir));
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st; (void)flag; (void)ftw;
    return remove(path);
}

/* Teardown of the "files" case: leave nothing behind in /tmp. */
static void remove_tmpdir(void)
{
    if (tmpdir[0] != '\0')
        nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    tmpdir[0] = '\0';
}

/* Write text to a new mkstemp file in dir; its path goes to out. */
static void write_temp(char *out, size_t len, const char *dir, const char *text, size_t n)
{
    snprintf(out, len, "%s/cfgXXXXXX", dir);
    int fd = mkstemp(out);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, n), (ssize_t)n);
    close(fd);
}

START_TEST(paths_relative_to_file)
{
    char conf[PATH_MAX], file[PATH_MAX + 16], want[PATH_MAX + 32];
    make_tmpdir();
    join(conf, sizeof(conf), tmpdir, "conf");
    ck_assert_int_eq(mkdir(conf, 0700), 0);
    static const char text[] =
        "web_root www\npid_file ./p/x.pid\nerror_log ../log/e.log\n";
    write_temp(file, sizeof(file), conf, text, sizeof(text) - 1);

    ck_assert_msg(config_load(&cfg, file, err, sizeof(err)) == 0, "%s", err);
    ck_assert_str_eq(cfg.path, file);
    join(want, sizeof(want), conf, "www");
    ck_assert_str_eq(cfg.web_root, want);
    join(want, sizeof(want), conf, "p/x.pid");
    ck_assert_str_eq(cfg.pid_file, want);
    join(want, sizeof(want), tmpdir, "log/e.log");
    ck_assert_str_eq(cfg.error_log, want);

    /* The same file named relative to the cwd anchors the same way. */
    char old[PATH_MAX];
    ck_assert_ptr_nonnull(getcwd(old, sizeof(old)));
    ck_assert_int_eq(chdir(tmpdir), 0);
    const char *rel = file + strlen(tmpdir) + 1;      /* "conf/cfgXXXXXX" */
    int rc = config_load(&cfg2, rel, err, sizeof(err));
    ck_assert_int_eq(chdir(old), 0);
    ck_assert_msg(rc == 0, "%s", err);
    ck_assert_str_eq(cfg2.path, file);
    ck_assert_str_eq(cfg2.web_root, cfg.web_root);
    ck_assert_str_eq(cfg2.error_log, cfg.error_log);

    /* Defaults follow the file too: <confdir>/../web, <confdir>/../run. */
    write_temp(file, sizeof(file), conf, "", 0);
    ck_assert_msg(config_load(&cfg, file, err, sizeof(err)) == 0, "%s", err);
    join(want, sizeof(want), tmpdir, "web");
    ck_assert_str_eq(cfg.web_root, want);
    join(want, sizeof(want), tmpdir, "run/wschat.pid");
    ck_assert_str_eq(cfg.pid_file, want);
    ck_assert_str_eq(cfg.error_log, "stderr");
}
END_TEST

static const struct { const char *value, *want; } path_vectors[] = {
    { "/srv/x/../y", "/srv/x/../y" },       /* absolute: kept verbatim */
    { "/", "/" },
    { ".", "@" },                           /* @ = the config's folder */
    { "./", "@" },
    { "..", "^" },                          /* ^ = its parent */
    { "../", "^" },
    { "../x/..", "^/x/.." },
    { "a", "@/a" },
    { "./a/../b", "@/a/../b" },             /* only leading dots are folded */
    { ".//./a", "@/a" },
    { "../../../../../../../../../../../../../../../../../../..", "/" },
    { "../../../../../../../../../../../../../../../../../../../etc", "/etc" },
    { "..a", "@/..a" },
    { ".a/b", "@/.a/b" },
    { "./stderr", "@/stderr" },
};

START_TEST(paths_folding)
{
    char text[256], want[PATH_MAX + 64], dir[PATH_MAX], file[PATH_MAX + 16];
    make_tmpdir();
    join(dir, sizeof(dir), tmpdir, "c");
    ck_assert_int_eq(mkdir(dir, 0700), 0);
    snprintf(text, sizeof(text), "web_root %s\n", path_vectors[_i].value);
    write_temp(file, sizeof(file), dir, text, strlen(text));
    ck_assert_msg(config_load(&cfg, file, err, sizeof(err)) == 0, "%s", err);

    const char *w = path_vectors[_i].want;
    if (w[0] == '^')
        snprintf(want, sizeof(want), "%s%s", tmpdir, w + 1);
    else if (w[0] == '@')
        snprintf(want, sizeof(want), "%s%s", dir, w + 1);
    else
        snprintf(want, sizeof(want), "%s", w);
    ck_assert_str_eq(cfg.web_root, want);
}
END_TEST

/* access_log: off by default and with "off"; relative to the file; opened (created, 0640) at load. */
START_TEST(paths_access_log)
{
    char conf[PATH_MAX], file[PATH_MAX + 16], want[PATH_MAX + 32];
    make_tmpdir();
    parse_ok(&cfg, "");
    ck_assert_str_eq(cfg.access_log, "");
    parse_ok(&cfg, "access_log off\n");
    ck_assert_str_eq(cfg.access_log, "");

    join(conf, sizeof(conf), tmpdir, "conf");
    ck_assert_int_eq(mkdir(conf, 0700), 0);
    static const char text[] = "access_log ../access.log\n";
    write_temp(file, sizeof(file), conf, text, sizeof(text) - 1);
    mode_t old = umask(022);
    int rc = config_load(&cfg, file, err, sizeof(err));
    umask(old);
    ck_assert_msg(rc == 0, "%s", err);
    join(want, sizeof(want), tmpdir, "access.log");
    ck_assert_str_eq(cfg.access_log, want);
    struct stat st;
    ck_assert_int_eq(stat(want, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0640);

    /* A file that cannot be opened is the directive's line, with the reason. */
    static const char bad[] = "# log\n\naccess_log missing/dir/a.log\n";
    write_temp(file, sizeof(file), conf, bad, sizeof(bad) - 1);
    static char prefix[3 * PATH_MAX];
    snprintf(prefix, sizeof(prefix), "%s:3: \"access_log\" \"%s/missing/dir/a.log\": ", file, conf);
    ck_assert_int_eq(config_load(&cfg, file, err, sizeof(err)), -1);
    ck_assert_msg(strncmp(err, prefix, strlen(prefix)) == 0, "error \"%s\"", err);
    ck_assert_ptr_nonnull(strstr(err, strerror(ENOENT)));
    static const char dir[] = "access_log .\n";
    write_temp(file, sizeof(file), conf, dir, sizeof(dir) - 1);
    ck_assert_int_eq(config_load(&cfg, file, err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, ":1: \"access_log\""));
    ck_assert_ptr_nonnull(strstr(err, strerror(EISDIR)));
}
END_TEST

START_TEST(paths_error_log_stderr)
{
    parse_ok(&cfg, "error_log stderr\n");
    ck_assert_str_eq(cfg.error_log, "stderr");
    parse_ok(&cfg, "error_log \"stderr\";\n");
    ck_assert_str_eq(cfg.error_log, "stderr");
    parse_ok(&cfg, "error_log /dev/stderr\n");
    ck_assert_str_eq(cfg.error_log, "/dev/stderr");
}
END_TEST

START_TEST(paths_in_memory_file)
{
    /* A folder that does not exist is used as written, without folding. */
    ck_assert_int_eq(config_parse(&cfg, "", 0, "/nonexistent-wschat/q/t.conf",
                                  err, sizeof(err)), 0);
    ck_assert_str_eq(cfg.path, "/nonexistent-wschat/q/t.conf");
    ck_assert_str_eq(cfg.web_root, "/nonexistent-wschat/q/../web");
    ck_assert_str_eq(cfg.pid_file, "/nonexistent-wschat/q/../run/wschat.pid");

    /* A bare file name lives in the cwd. */
    char cwd[PATH_MAX], want[PATH_MAX + 16];
    ck_assert_ptr_nonnull(realpath(".", cwd));
    parse_ok(&cfg, "");
    join(want, sizeof(want), cwd, "t.conf");
    ck_assert_str_eq(cfg.path, want);

    /* A file in the root folder. */
    ck_assert_int_eq(config_parse(&cfg, "web_root w\n", 11, "/t.conf",
                                  err, sizeof(err)), 0);
    ck_assert_str_eq(cfg.path, "/t.conf");
    ck_assert_str_eq(cfg.web_root, "/w");
    ck_assert_str_eq(cfg.pid_file, "/run/wschat.pid");
}
END_TEST

START_TEST(paths_too_long)
{
    /* A 4090-byte file name: the anchored default pid_file cannot fit. */
    static char file[PATH_MAX];
    strcpy(file, "/nonexistent-wschat/");
    size_t n = strlen(file);
    memset(file + n, 'd', 4090 - n - 7);
    strcpy(file + 4090 - 7, "/t.conf");
    ck_assert_uint_eq(strlen(file), 4090);
    int rc = config_parse(&cfg, "web_root /w\n", 12, file, err, sizeof(err));
    ck_assert_int_eq(rc, -1);
    ck_assert_msg(strstr(err, ": \"pid_file\" path is too long") != NULL, "%s", err);
    ck_assert_int_eq(strncmp(err, file, strlen(file)), 0);

    /* Written in the file, the same problem names its line. */
    static const char text[] = "web_root /w\n\npid_file abcdefghijklmnopqrst\n";
    rc = config_parse(&cfg, text, sizeof(text) - 1, file, err, sizeof(err));
    ck_assert_int_eq(rc, -1);
    ck_assert_msg(strstr(err, ":3: \"pid_file\" path is too long") != NULL, "%s", err);
}
END_TEST

START_TEST(load_missing_file)
{
    make_tmpdir();
    char file[PATH_MAX + 32];
    join(file, sizeof(file), tmpdir, "nope.conf");
    ck_assert_int_eq(config_load(&cfg, file, err, sizeof(err)), -1);
    char want[PATH_MAX + 64];
    snprintf(want, sizeof(want), "%s: %s", file, strerror(ENOENT));
    ck_assert_str_eq(err, want);

    /* A folder opens but cannot be read. */
    ck_assert_int_eq(config_load(&cfg, tmpdir, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "%s: %s", tmpdir, strerror(EISDIR));
    ck_assert_str_eq(err, want);
}
END_TEST

START_TEST(load_error_names_file_and_line)
{
    char file[PATH_MAX + 16], want[PATH_MAX + 64];
    make_tmpdir();
    static const char text[] = "workers 2\r\n\r\nworkers 3\r\n";
    write_temp(file, sizeof(file), tmpdir, text, sizeof(text) - 1);
    ck_assert_int_eq(config_load(&cfg, file, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "%s:3: \"workers\" directive is duplicate", file);
    ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "%s", err);
}
END_TEST

START_TEST(load_size_limit)
{
    /* Exactly 1 MiB of comments loads; one byte more is refused. */
    static char text[1024 * 1024 + 1];
    char file[PATH_MAX + 16];
    make_tmpdir();
    memset(text, '#', sizeof(text));
    for (size_t i = 63; i < sizeof(text); i += 64)
        text[i] = '\n';
    write_temp(file, sizeof(file), tmpdir, text, sizeof(text) - 1);
    ck_assert_msg(config_load(&cfg, file, err, sizeof(err)) == 0, "%s", err);
    write_temp(file, sizeof(file), tmpdir, text, sizeof(text));
    ck_assert_int_eq(config_load(&cfg, file, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, "file is larger than 1048576 bytes") != NULL, "%s", err);
}
END_TEST

START_TEST(shipped_conf_is_defaults)
{
    const char *root = getenv("WSCHAT_ROOT");
    char file[PATH_MAX + 32], rroot[PATH_MAX], want[PATH_MAX + 16];
    snprintf(file, sizeof(file), "%s/conf/wschat.conf", root ? root : ".");
    ck_assert_msg(config_load(&cfg, file, err, sizeof(err)) == 0, "%s", err);
    /* Defaults anchored at the same folder, for a field-by-field compare. */
    ck_assert_int_eq(config_parse(&cfg2, "", 0, file, err, sizeof(err)), 0);

    ck_assert_ptr_nonnull(realpath(root ? root : ".", rroot));
    join(want, sizeof(want), rroot, "conf/wschat.conf");
    ck_assert_str_eq(cfg.path, want);
    join(want, sizeof(want), rroot, "web");
    ck_assert_str_eq(cfg.web_root, want);

    ck_assert_int_eq(cfg.nlisten, cfg2.nlisten);
    ck_assert_int_eq(cfg.listen[0].family, cfg2.listen[0].family);
    ck_assert_str_eq(cfg.listen[0].host, cfg2.listen[0].host);
    ck_assert_uint_eq(cfg.listen[0].port, cfg2.listen[0].port);
    ck_assert_int_eq(cfg.workers, cfg2.workers);
    ck_assert_int_eq(cfg.workers_auto, cfg2.workers_auto);
    ck_assert_int_eq(cfg.max_connections, cfg2.max_connections);
    ck_assert_str_eq(cfg.web_root, cfg2.web_root);
    ck_assert_str_eq(cfg.pid_file, cfg2.pid_file);
    ck_assert_str_eq(cfg.error_log, cfg2.error_log);
    ck_assert_int_eq(cfg.log_level, cfg2.log_level);
    ck_assert_uint_eq(cfg.handshake_timeout_ms, cfg2.handshake_timeout_ms);
    ck_assert_uint_eq(cfg.idle_timeout_ms, cfg2.idle_timeout_ms);
    ck_assert_uint_eq(cfg.close_timeout_ms, cfg2.close_timeout_ms);
    ck_assert_uint_eq(cfg.shutdown_timeout_ms, cfg2.shutdown_timeout_ms);
    ck_assert_uint_eq(cfg.max_request_head, cfg2.max_request_head);
    ck_assert_uint_eq(cfg.max_message, cfg2.max_message);
    ck_assert_uint_eq(cfg.max_send_queue, cfg2.max_send_queue);
    ck_assert_uint_eq(cfg.max_text, cfg2.max_text);
    ck_assert_uint_eq(cfg.history_size, cfg2.history_size);
    ck_assert_uint_eq(cfg.ring_size, cfg2.ring_size);
    ck_assert_int_eq(cfg.norigins, cfg2.norigins);
}
END_TEST

/* worker_watchdog: a duration from 1s, or off. */
START_TEST(watchdog_values)
{
    parse_ok(&cfg, "");
    ck_assert_uint_eq(cfg.worker_watchdog_ms, 10000);
    parse_ok(&cfg, "worker_watchdog off\n");
    ck_assert_uint_eq(cfg.worker_watchdog_ms, 0);
    parse_ok(&cfg, "worker_watchdog 1s\n");
    ck_assert_uint_eq(cfg.worker_watchdog_ms, 1000);
    parse_ok(&cfg, "worker_watchdog 1h\n");
    ck_assert_uint_eq(cfg.worker_watchdog_ms, 3600000);
    static const char low[] = "worker_watchdog 500ms\n";
    parse_fails(low, strlen(low), 1, "or off");
    static const char word[] = "\nworker_watchdog never\n";
    parse_fails(word, strlen(word), 2, "invalid duration");
}
END_TEST

/* Parse TEXT as DIR/t.conf; 0 or -1 with err set. */
static int parse_in(const char *dir, const char *text)
{
    char file[PATH_MAX + 16];
    snprintf(file, sizeof file, "%s/t.conf", dir);
    return config_parse(&cfg, text, strlen(text), file, err, sizeof(err));
}

/*
 * auth: the key is the file's bytes with one trailing newline stripped,
 * relative to the conf's folder; a missing, empty, short or world-readable
 * file, or auth without a file, is an error naming the line.
 */
START_TEST(auth_key_file)
{
    char key[PATH_MAX], text[PATH_MAX * 2];
    make_tmpdir();
    const char secret[] = "0123456789abcdef0123456789abcdef-key\n\n";
    write_temp(key, sizeof key, tmpdir, secret, strlen(secret));
    ck_assert_int_eq(chmod(key, 0600), 0);
    const char *base = strrchr(key, '/') + 1;

    snprintf(text, sizeof text, "auth required\nauth_secret_file %s\n", base);
    ck_assert_msg(parse_in(tmpdir, text) == 0, "%s", err);
    ck_assert_int_eq(cfg.auth, CONFIG_AUTH_REQUIRED);
    ck_assert_str_eq(cfg.auth_secret_file, key);
    /* One newline stripped, the second is key material. */
    ck_assert_uint_eq(cfg.auth_key_len, strlen(secret) - 1);
    ck_assert_mem_eq(cfg.auth_key, secret, cfg.auth_key_len);
    ck_assert_uint_eq(cfg.auth_leeway_ms, 30000);

    snprintf(text, sizeof text, "auth optional\nauth_leeway 0s\nauth_secret_file %s\n", key);
    ck_assert_msg(parse_in(tmpdir, text) == 0, "%s", err);
    ck_assert_int_eq(cfg.auth, CONFIG_AUTH_OPTIONAL);
    ck_assert_uint_eq(cfg.auth_leeway_ms, 0);

    /* off never reads the file, so a missing one is fine there. */
    ck_assert_msg(parse_in(tmpdir, "auth off\nauth_secret_file nowhere\n") == 0, "%s", err);
    ck_assert_uint_eq(cfg.auth_key_len, 0);

    ck_assert_int_eq(parse_in(tmpdir, "\nauth required\n"), -1);
    ck_assert_msg(strstr(err, "t.conf:2: ") && strstr(err, "auth_secret_file"), "%s", err);
    ck_assert_int_eq(parse_in(tmpdir, "auth maybe\n"), -1);
    ck_assert_msg(strstr(err, "t.conf:1: ") && strstr(err, "off, optional or required"), "%s", err);
    ck_assert_int_eq(parse_in(tmpdir, "auth required\nauth_secret_file nowhere\n"), -1);
    ck_assert_msg(strstr(err, "t.conf:2: ") && strstr(err, "No such file"), "%s", err);

    ck_assert_int_eq(chmod(key, 0604), 0);
    ck_assert_int_eq(parse_in(tmpdir, text), -1);
    ck_assert_msg(strstr(err, "t.conf:3: ") && strstr(err, "world-readable"), "%s", err);

    char shortkey[PATH_MAX], empty[PATH_MAX];
    write_temp(shortkey, sizeof shortkey, tmpdir, "short\n", 6);
    snprintf(text, sizeof text, "auth required\nauth_secret_file %s\n", shortkey);
    ck_assert_int_eq(parse_in(tmpdir, text), -1);
    ck_assert_msg(strstr(err, "t.conf:2: ") && strstr(err, "at least 32"), "%s", err);
    write_temp(empty, sizeof empty, tmpdir, "\n", 1);
    snprintf(text, sizeof text, "auth required\nauth_secret_file %s\n", empty);
    ck_assert_int_eq(parse_in(tmpdir, text), -1);
    ck_assert_msg(strstr(err, "t.conf:2: ") && strstr(err, "empty"), "%s", err);
}
END_TEST

/*
 * cluster_password_file: the password for AUTH, the file's bytes with one
 * trailing newline stripped (so a password may hold any byte), replacing
 * any in the URL; it must not be world-readable, and means nothing without
 * cluster.
 */
START_TEST(cluster_password_from_file)
{
    char pw[PATH_MAX], text[PATH_MAX * 2];
    make_tmpdir();
    const char secret[] = "s3cret:@/\0pw\n";
    write_temp(pw, sizeof pw, tmpdir, secret, sizeof secret - 1);
    ck_assert_int_eq(chmod(pw, 0600), 0);
    const char *base = strrchr(pw, '/') + 1;

    snprintf(text, sizeof text, "cluster redis://alice:url-pw@127.0.0.1:7000/2\n"
                                "cluster_password_file %s\n", base);
    ck_assert_msg(parse_in(tmpdir, text) == 0, "%s", err);
    ck_assert_int_eq(cfg.cluster, 1);
    ck_assert_str_eq(cfg.cluster_password_file, pw);
    ck_assert_str_eq(cfg.cluster_url.user, "alice");
    ck_assert_str_eq(cfg.cluster_url.host, "127.0.0.1");
    ck_assert_uint_eq(cfg.cluster_url.port, 7000);
    ck_assert_uint_eq(cfg.cluster_url.db, 2);
    ck_assert_uint_eq(cfg.cluster_url.password_len, sizeof secret - 2);
    ck_assert_mem_eq(cfg.cluster_url.password, secret, sizeof secret - 2);
    ck_assert_int_eq(cfg.cluster_url.password[cfg.cluster_url.password_len], '\0');

    /* The longest password the file may hold, without a newline. */
    static char big[REDIS_URL_SECRET_MAX + 1];
    memset(big, 'p', sizeof big);
    write_temp(pw, sizeof pw, tmpdir, big, REDIS_URL_SECRET_MAX);
    ck_assert_int_eq(chmod(pw, 0600), 0);
    snprintf(text, sizeof text, "cluster redis://h\ncluster_password_file %s\n", pw);
    ck_assert_msg(parse_in(tmpdir, text) == 0, "%s", err);
    ck_assert_uint_eq(cfg.cluster_url.password_len, REDIS_URL_SECRET_MAX);
    write_temp(pw, sizeof pw, tmpdir, big, sizeof big);
    ck_assert_int_eq(chmod(pw, 0600), 0);
    snprintf(text, sizeof text, "cluster redis://h\n\ncluster_password_file %s\n", pw);
    ck_assert_int_eq(parse_in(tmpdir, text), -1);
    ck_assert_msg(strstr(err, "t.conf:3: ") && strstr(err, "longer than 511 bytes"), "%s", err);

    /* World-readable: refused, naming the directive's line. */
    write_temp(pw, sizeof pw, tmpdir, "pw\n", 3);
    ck_assert_int_eq(chmod(pw, 0604), 0);
    snprintf(text, sizeof text, "cluster redis://h\n# c\ncluster_password_file %s\n", pw);
    ck_assert_int_eq(parse_in(tmpdir, text), -1);
    ck_assert_msg(strstr(err, "t.conf:3: ") && strstr(err, "world-readable"), "%s", err);

    /* Missing or empty. */
    ck_assert_int_eq(parse_in(tmpdir, "cluster redis://h\ncluster_password_file nowhere\n"), -1);
    ck_assert_msg(strstr(err, "t.conf:2: ") && strstr(err, "No such file"), "%s", err);
    write_temp(pw, sizeof pw, tmpdir, "\n", 1);
    ck_assert_int_eq(chmod(pw, 0600), 0);
    snprintf(text, sizeof text, "cluster redis://h\ncluster_password_file %s\n", pw);
    ck_assert_int_eq(parse_in(tmpdir, text), -1);
    ck_assert_msg(strstr(err, "t.conf:2: ") && strstr(err, "empty"), "%s", err);

    /* Without cluster (absent or off) the file is refused, even a good one. */
    write_temp(pw, sizeof pw, tmpdir, "pw\n", 3);
    ck_assert_int_eq(chmod(pw, 0600), 0);
    snprintf(text, sizeof text, "\ncluster_password_file %s\n", pw);
    ck_assert_int_eq(parse_in(tmpdir, text), -1);
    ck_assert_msg(strstr(err, "t.conf:2: ") &&
                  strstr(err, "\"cluster_password_file\" needs \"cluster\""), "%s", err);
    snprintf(text, sizeof text, "cluster off\ncluster_password_file %s\n", pw);
    ck_assert_int_eq(parse_in(tmpdir, text), -1);
    ck_assert_msg(strstr(err, "t.conf:2: ") && strstr(err, "needs \"cluster\""), "%s", err);
}
END_TEST

/* ---- cluster mode --------------------------------------------------------- */

START_TEST(cluster_defaults)
{
    memset(&cfg, 0xA5, sizeof(cfg));
    config_defaults(&cfg);
    ck_assert_int_eq(cfg.cluster, 0);
    ck_assert_str_eq(cfg.cluster_prefix, "wschat");
    ck_assert_uint_eq(cfg.cluster_timeout_ms, 2000);
    ck_assert_str_eq(cfg.cluster_password_file, "");
    parse_ok(&cfg, "");
    ck_assert_int_eq(cfg.cluster, 0);
    ck_assert_str_eq(cfg.cluster_prefix, "wschat");
    ck_assert_uint_eq(cfg.cluster_timeout_ms, 2000);
}
END_TEST

START_TEST(cluster_url_values)
{
    parse_ok(&cfg, "cluster off\n");
    ck_assert_int_eq(cfg.cluster, 0);
    parse_ok(&cfg, "cluster redis://127.0.0.1\n");
    ck_assert_int_eq(cfg.cluster, 1);
    ck_assert_str_eq(cfg.cluster_url.host, "127.0.0.1");
    ck_assert_uint_eq(cfg.cluster_url.port, 6379);
    ck_assert_uint_eq(cfg.cluster_url.db, 0);
    ck_assert_uint_eq(cfg.cluster_url.password_len, 0);
    parse_ok(&cfg, "cluster \"redis://u:p%40ss@[::1]:6380/9\";\n");
    ck_assert_int_eq(cfg.cluster, 1);
    ck_assert_str_eq(cfg.cluster_url.host, "::1");
    ck_assert_uint_eq(cfg.cluster_url.port, 6380);
    ck_assert_uint_eq(cfg.cluster_url.db, 9);
    ck_assert_str_eq(cfg.cluster_url.user, "u");
    ck_assert_str_eq(cfg.cluster_url.password, "p@ss");
    ck_assert_uint_eq(cfg.cluster_url.password_len, 4);
}
END_TEST

/* The journal is not run in cluster mode: history_file is cleared. */
START_TEST(cluster_clears_history_file)
{
    parse_ok(&cfg, "");
    ck_assert_str_ne(cfg.history_file, "");
    parse_ok(&cfg, "history_file /var/lib/wschat/h\n");
    ck_assert_str_eq(cfg.history_file, "/var/lib/wschat/h");
    parse_ok(&cfg, "history_file /var/lib/wschat/h\ncluster redis://h\n");
    ck_assert_str_eq(cfg.history_file, "");
    parse_ok(&cfg, "cluster redis://h\n");
    ck_assert_str_eq(cfg.history_file, "");
    parse_ok(&cfg, "cluster off\nhistory_file /h\n");
    ck_assert_str_eq(cfg.history_file, "/h");
}
END_TEST

START_TEST(cluster_prefix_values)
{
    char text[128];
    parse_ok(&cfg, "cluster_prefix a-b_c.d:E9\n");
    ck_assert_str_eq(cfg.cluster_prefix, "a-b_c.d:E9");
    /* 64 bytes fit, 65 do not. */
    int n = snprintf(text, sizeof text, "cluster_prefix ");
    memset(text + n, 'p', 64);
    strcpy(text + n + 64, "\n");
    parse_ok(&cfg, text);
    ck_assert_uint_eq(strlen(cfg.cluster_prefix), 64);
    strcpy(text + n + 64, "q\n");
    parse_fails(text, strlen(text), 1, "\"cluster_prefix\" is longer than 64 bytes");
}
END_TEST

START_TEST(cluster_timeout_range)
{
    parse_ok(&cfg, "cluster_timeout 100ms\n");
    ck_assert_uint_eq(cfg.cluster_timeout_ms, 100);
    parse_ok(&cfg, "cluster_timeout 10m\n");
    ck_assert_uint_eq(cfg.cluster_timeout_ms, 600000);
    parse_ok(&cfg, "cluster_timeout 5\n");
    ck_assert_uint_eq(cfg.cluster_timeout_ms, 5000);
}
END_TEST

static const struct { const char *text; unsigned line; const char *want; } cluster_errors[] = {
    { "cluster\n", 1, "\"cluster\" directive needs a value" },
    { "cluster redis://a redis://b\n", 1, "\"cluster\" directive takes one value" },
    { "cluster off\ncluster redis://h\n", 2, "\"cluster\" directive is duplicate" },
    { "cluster on\n", 1, "invalid \"cluster\" URL \"on\": expected redis://" },
    { "\ncluster http://h\n", 2, "invalid \"cluster\" URL \"http://h\": expected redis://" },
    { "cluster OFF\n", 1, "invalid \"cluster\" URL \"OFF\"" },
    { "cluster redis://\n", 1, "invalid \"cluster\" URL \"redis://\": no host" },
    { "cluster redis://h:0\n", 1, "\"redis://h:0\": port must be 1..65535" },
    { "cluster redis://h:65536\n", 1, "port must be 1..65535" },
    { "cluster redis://h/16384\n", 1, "database must be a number 0..16383" },
    { "cluster redis://:%zz@h\n", 1, "bad %-escape or too long password" },
    { "cluster redis://pw@h\n", 1, "credentials need a ':'" },
    { "cluster redis://:@h\n", 1, "empty password" },
    { "cluster_prefix a/b\n", 1, "\"cluster_prefix\" takes letters, digits and _-.: only, not \"a/b\"" },
    { "\n\ncluster_prefix \"a b\"\n", 3, "takes letters, digits and _-.: only" },
    { "cluster_prefix a*\n", 1, "takes letters, digits and _-.: only" },
    { "cluster_prefix {x}\n", 1, "takes letters, digits and _-.: only" },
    { "cluster_prefix w\xc3\xa9\n", 1, "takes letters, digits and _-.: only" },
    { "cluster_prefix a\ncluster_prefix b\n", 2, "\"cluster_prefix\" directive is duplicate" },
    { "cluster_timeout 99ms\n", 1, "\"cluster_timeout\" must be between 100ms and 10m, not \"99ms\"" },
    { "cluster_timeout 0\n", 1, "\"cluster_timeout\" must be between 100ms and 10m" },
    { "cluster_timeout 600001ms\n", 1, "must be between 100ms and 10m, not \"600001ms\"" },
    { "cluster_timeout 1h\n", 1, "must be between 100ms and 10m" },
    { "cluster_timeout off\n", 1, "invalid duration \"off\" in \"cluster_timeout\" directive" },
    { "cluster_password_file \"\"\n", 1, "empty path in \"cluster_password_file\"" },
};

START_TEST(cluster_error_lines)
{
    const char *t = cluster_errors[_i].text;
    parse_fails(t, strlen(t), cluster_errors[_i].line, cluster_errors[_i].want);
}
END_TEST

/* ---- address lists (real_ip_from, stats_allow) --------------------------- */

static void addr16(uint8_t out[16], const char *text)
{
    ck_assert_int_eq(cidr_parse_addr(text, strlen(text), out), 0);
}

static int list_has(const struct cidr_list *l, const char *text)
{
    uint8_t a[16];
    addr16(a, text);
    return cidr_match(l, a);
}

START_TEST(cidr_defaults)
{
    memset(&cfg, 0xA5, sizeof(cfg));
    config_defaults(&cfg);
    ck_assert_int_eq(cfg.real_ip_from.n, 0);
    ck_assert_int_eq(cfg.stats_allow.n, 2);
    ck_assert(list_has(&cfg.stats_allow, "127.0.0.1"));
    ck_assert(list_has(&cfg.stats_allow, "::1"));
    ck_assert(list_has(&cfg.stats_allow, "::ffff:127.0.0.1"));
    ck_assert(!list_has(&cfg.stats_allow, "127.0.0.2"));
    ck_assert(!list_has(&cfg.stats_allow, "::2"));
    parse_ok(&cfg, "");
    ck_assert_int_eq(cfg.real_ip_from.n, 0);
    ck_assert_int_eq(cfg.stats_allow.n, 2);
}
END_TEST

START_TEST(cidr_values)
{
    parse_ok(&cfg, "real_ip_from 127.0.0.1/32\nstats_allow 10.0.0.0/8 fd00::/8 192.0.2.7;\n");
    ck_assert_int_eq(cfg.real_ip_from.n, 1);
    ck_assert(list_has(&cfg.real_ip_from, "127.0.0.1"));
    ck_assert(!list_has(&cfg.real_ip_from, "127.0.0.2"));
    ck_assert_int_eq(cfg.stats_allow.n, 3);
    ck_assert(list_has(&cfg.stats_allow, "10.200.3.4"));
    ck_assert(list_has(&cfg.stats_allow, "fd12::1"));
    ck_assert(list_has(&cfg.stats_allow, "192.0.2.7"));
    ck_assert(!list_has(&cfg.stats_allow, "127.0.0.1"));     /* the default is replaced */
    ck_assert(!list_has(&cfg.stats_allow, "192.0.2.8"));

    /* A quoted list is the same list; host bits are masked off. */
    parse_ok(&cfg, "real_ip_from \"10.1.2.3/8  ::1\" 172.16.0.0/12\n");
    ck_assert_int_eq(cfg.real_ip_from.n, 3);
    ck_assert(list_has(&cfg.real_ip_from, "10.9.9.9"));
    ck_assert(list_has(&cfg.real_ip_from, "172.31.255.255"));

    /* none: an empty list (no proxy trusted; /stats answers no one). */
    parse_ok(&cfg, "real_ip_from none\nstats_allow none\n");
    ck_assert_int_eq(cfg.real_ip_from.n, 0);
    ck_assert_int_eq(cfg.stats_allow.n, 0);
    ck_assert(!list_has(&cfg.stats_allow, "127.0.0.1"));

    /* Everyone: ::/0 covers the IPv4-mapped range too. */
    parse_ok(&cfg, "stats_allow 0.0.0.0/0 ::/0\n");
    ck_assert(list_has(&cfg.stats_allow, "203.0.113.9"));
    ck_assert(list_has(&cfg.stats_allow, "2001:db8::1"));
}
END_TEST

START_TEST(cidr_most_entries)
{
    static char text[CIDR_MAX * 24 + 64];
    size_t n = (size_t)snprintf(text, sizeof text, "real_ip_from");
    for (int i = 0; i < CIDR_MAX; i++)
        n += (size_t)snprintf(text + n, sizeof text - n, " 10.0.%d.0/24", i);
    snprintf(text + n, sizeof text - n, "\n");
    parse_ok(&cfg, text);
    ck_assert_int_eq(cfg.real_ip_from.n, CIDR_MAX);
    ck_assert(list_has(&cfg.real_ip_from, "10.0.63.200"));
    ck_assert(!list_has(&cfg.real_ip_from, "10.0.64.1"));

    snprintf(text + n, sizeof text - n, " 10.1.0.0/16\n");
    parse_fails(text, strlen(text), 1, "\"real_ip_from\" directive takes at most 64 values");
    /* The same count inside one quoted value: cidr_parse_list's own limit. */
    n = (size_t)snprintf(text, sizeof text, "stats_allow \"");
    for (int i = 0; i <= CIDR_MAX; i++)
        n += (size_t)snprintf(text + n, sizeof text - n, " 10.0.%d.0/24", i);
    snprintf(text + n, sizeof text - n, "\"\n");
    parse_fails(text, strlen(text), 1, "\"stats_allow\" address list: more than 64 addresses");
}
END_TEST

static const struct { const char *text; unsigned line; const char *want; } cidr_errors[] = {
    { "real_ip_from\n", 1, "\"real_ip_from\" directive needs a value" },
    { "\n\nstats_allow ;\n", 3, "\"stats_allow\" directive needs a value" },
    { "real_ip_from 127.0.0.1\nreal_ip_from ::1\n", 2,
      "\"real_ip_from\" directive is duplicate (first on line 1)" },
    { "real_ip_from 127.0.0.1/33\n", 1,
      "invalid \"real_ip_from\" address list: prefix length over 32 in \"127.0.0.1/33\"" },
    { "stats_allow ::1/129\n", 1,
      "invalid \"stats_allow\" address list: prefix length over 128 in \"::1/129\"" },
    { "# c\nstats_allow 127.0.0.1 localhost\n", 2,
      "invalid \"stats_allow\" address list: invalid address \"localhost\"" },
    { "real_ip_from 10.0.0.0/08\n", 1, "invalid prefix length in \"10.0.0.0/08\"" },
    { "real_ip_from 10.0.0.0/\n", 1, "invalid prefix length in \"10.0.0.0/\"" },
    { "real_ip_from 10.0.0/8\n", 1, "invalid address \"10.0.0/8\"" },
    { "real_ip_from [::1]\n", 1, "invalid address \"[::1]\"" },
    { "real_ip_from 127.0.0.1:80\n", 1, "invalid address \"127.0.0.1:80\"" },
    { "stats_allow fe80::1%eth0\n", 1, "invalid address \"fe80::1%eth0\"" },
    { "stats_allow \"\"\n", 1, "invalid \"stats_allow\" address list: no address given" },
    { "stats_allow none ::1\n", 1, "invalid address \"none\"" },
    { "real_ip_from 127.0.0.1,10.0.0.1\n", 1, "invalid address \"127.0.0.1,10.0.0.1\"" },
};

START_TEST(cidr_error_lines)
{
    const char *t = cidr_errors[_i].text;
    parse_fails(t, strlen(t), cidr_errors[_i].line, cidr_errors[_i].want);
}
END_TEST

START_TEST(cidr_shipped_conf)
{
    const char *root = getenv("WSCHAT_ROOT");
    char file[PATH_MAX + 32];
    snprintf(file, sizeof(file), "%s/conf/wschat.conf", root ? root : ".");
    ck_assert_msg(config_load(&cfg, file, err, sizeof(err)) == 0, "%s", err);
    config_defaults(&cfg2);
    ck_assert_int_eq(cfg.real_ip_from.n, 0);
    ck_assert_int_eq(cfg.stats_allow.n, cfg2.stats_allow.n);
    ck_assert_mem_eq(cfg.stats_allow.e, cfg2.stats_allow.e,
                     sizeof(cfg.stats_allow.e[0]) * (size_t)cfg.stats_allow.n);
}
END_TEST

Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc;

    tc = tcase_create("defaults");
    tcase_add_test(tc, defaults_struct);
    tcase_add_test(tc, defaults_empty_file);
    tcase_add_test(tc, reload_handoff_flag);
    tcase_add_test(tc, defaults_zero_length);
    suite_add_tcase(s, tc);

    tc = tcase_create("directives");
    tcase_add_test(tc, all_directives);
    tcase_add_test(tc, range_edges);
    tcase_add_test(tc, workers_auto);
    tcase_add_loop_test(tc, log_levels, 0, (int)NELEM(level_names));
    tcase_add_test(tc, log_level_name_out_of_range);
    tcase_add_loop_test(tc, directive_arity, 0, (int)NELEM(once));
    suite_add_tcase(s, tc);

    tc = tcase_create("syntax");
    tcase_add_test(tc, syntax_comments_crlf_semicolons);
    tcase_add_test(tc, syntax_long_lines);
    tcase_add_test(tc, syntax_nul_byte);
    tcase_add_test(tc, syntax_length_bounds_text);
    suite_add_tcase(s, tc);

    tc = tcase_create("units");
    tcase_add_loop_test(tc, size_units, 0, (int)NELEM(sizes));
    tcase_add_loop_test(tc, duration_units, 0, (int)NELEM(durations));
    suite_add_tcase(s, tc);

    tc = tcase_create("listen");
    tcase_add_loop_test(tc, listen_forms, 0, (int)NELEM(listens));
    tcase_add_test(tc, listen_many);
    tcase_add_test(tc, listen_same_port_other_host);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_add_loop_test(tc, error_lines, 0, (int)NELEM(errors));
    tcase_add_test(tc, error_origins_limits);
    tcase_add_test(tc, error_buffer_small);
    suite_add_tcase(s, tc);

    tc = tcase_create("files");
    tcase_add_checked_fixture(tc, NULL, remove_tmpdir);
    tcase_add_test(tc, paths_relative_to_file);
    tcase_add_loop_test(tc, paths_folding, 0, (int)NELEM(path_vectors));
    tcase_add_test(tc, paths_error_log_stderr);
    tcase_add_test(tc, paths_access_log);
    tcase_add_test(tc, paths_in_memory_file);
    tcase_add_test(tc, paths_too_long);
    tcase_add_test(tc, load_missing_file);
    tcase_add_test(tc, load_error_names_file_and_line);
    tcase_add_test(tc, load_size_limit);
    tcase_add_test(tc, shipped_conf_is_defaults);
    tcase_add_test(tc, auth_key_file);
    tcase_add_test(tc, cluster_password_from_file);
    tcase_add_test(tc, watchdog_values);
    suite_add_tcase(s, tc);

    tc = tcase_create("cluster");
    tcase_add_test(tc, cluster_defaults);
    tcase_add_test(tc, cluster_url_values);
    tcase_add_test(tc, cluster_clears_history_file);
    tcase_add_test(tc, cluster_prefix_values);
    tcase_add_test(tc, cluster_timeout_range);
    tcase_add_loop_test(tc, cluster_error_lines, 0, (int)NELEM(cluster_errors));
    suite_add_tcase(s, tc);

    tc = tcase_create("address lists");
    tcase_add_test(tc, cidr_defaults);
    tcase_add_test(tc, cidr_values);
    tcase_add_test(tc, cidr_most_entries);
    tcase_add_loop_test(tc, cidr_error_lines, 0, (int)NELEM(cidr_errors));
    tcase_add_test(tc, cidr_shipped_conf);
    suite_add_tcase(s, tc);

    return s;
}

/*
 * check_redis_url: the `cluster` directive's URL (server/redis_url.c).
 *
 * Every vector is parsed from a copy that ends flush against a guard page,
 * so a parser that reads past the length it was given faults. Accepted
 * forms check every field (password_len counts a %00); refusals check the
 * static reason. Every accepted URL is also parsed with each shorter
 * length, which must never read past it either (most prefixes are refused,
 * some are other valid URLs).
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "guard.h"
#include "redis_url.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static struct redis_url u;

static int parse_guarded(const char *text, size_t len, const char **why)
{
    const char *p = guard_copy(text, len);
    *why = NULL;
    return redis_url_parse(&u, p, len, why);
}

/* ---- accepted forms ------------------------------------------------------ */

static const struct {
    const char *text;
    const char *host;
    unsigned port, db;
    const char *user;
    const char *password;
    size_t password_len;
} good[] = {
    { "redis://localhost", "localhost", 6379, 0, "", "", 0 },
    { "redis://127.0.0.1", "127.0.0.1", 6379, 0, "", "", 0 },
    { "redis://redis-1.internal_x.example", "redis-1.internal_x.example", 6379, 0, "", "", 0 },
    { "redis://h:1", "h", 1, 0, "", "", 0 },
    { "redis://h:65535", "h", 65535, 0, "", "", 0 },
    { "redis://h:00080", "h", 80, 0, "", "", 0 },
    { "redis://10.0.0.7:7000", "10.0.0.7", 7000, 0, "", "", 0 },
    { "redis://[::1]", "::1", 6379, 0, "", "", 0 },
    { "redis://[::1]:6380", "::1", 6380, 0, "", "", 0 },
    { "redis://[2001:DB8::a]:1/2", "2001:DB8::a", 1, 2, "", "", 0 },
    { "redis://[::ffff:127.0.0.1]:7", "::ffff:127.0.0.1", 7, 0, "", "", 0 },
    { "redis://:secret@h", "h", 6379, 0, "", "secret", 6 },
    { "redis://:secret@h:6390/3", "h", 6390, 3, "", "secret", 6 },
    { "redis://alice:secret@h", "h", 6379, 0, "alice", "secret", 6 },
    { "redis://alice:s:e:c@[::1]:9", "::1", 9, 0, "alice", "s:e:c", 5 },
    /* The last '@' of the authority ends the credentials. */
    { "redis://:a@b@h", "h", 6379, 0, "", "a@b", 3 },
    /* %XX escapes, both cases, in user and password. */
    { "redis://%61l%2Ace:p%40%3a%2F%25@h", "h", 6379, 0, "al*ce", "p@:/%", 5 },
    { "redis://:%ff%FE@h", "h", 6379, 0, "", "\xff\xfe", 2 },
    /* A NUL byte in the password is counted. */
    { "redis://:a%00b@h", "h", 6379, 0, "", "a\0b", 3 },
    { "redis://:%00@h", "h", 6379, 0, "", "\0", 1 },
    { "redis://h/0", "h", 6379, 0, "", "", 0 },
    { "redis://h/16383", "h", 6379, 16383, "", "", 0 },
    { "redis://h:6379/15", "h", 6379, 15, "", "", 0 },
    { "redis://h/007", "h", 6379, 7, "", "", 0 },
    /* A trailing slash with no database: db 0. */
    { "redis://h/", "h", 6379, 0, "", "", 0 },
    { "redis://u:p@h:2/", "h", 2, 0, "u", "p", 1 },
};

START_TEST(accepted)
{
    const char *why;
    const char *t = good[_i].text;
    memset(&u, 0xA5, sizeof u);
    int rc = parse_guarded(t, strlen(t), &why);
    ck_assert_msg(rc == 0, "\"%s\" refused: %s", t, why ? why : "(no reason)");
    ck_assert_str_eq(u.host, good[_i].host);
    ck_assert_uint_eq(u.port, good[_i].port);
    ck_assert_uint_eq(u.db, good[_i].db);
    ck_assert_str_eq(u.user, good[_i].user);
    ck_assert_uint_eq(u.password_len, good[_i].password_len);
    ck_assert_mem_eq(u.password, good[_i].password, good[_i].password_len);
    ck_assert_int_eq(u.password[u.password_len], '\0');
}
END_TEST

/* Each prefix of an accepted URL: either result, never a read past it. */
START_TEST(accepted_prefixes)
{
    const char *t = good[_i].text, *why;
    size_t n = strlen(t);
    for (size_t k = 0; k < n; k++) {
        int rc = parse_guarded(t, k, &why);
        ck_assert_msg(rc == 0 || rc == -EINVAL, "\"%.*s\": %d", (int)k, t, rc);
        if (rc < 0)
            ck_assert_msg(why != NULL && why[0] != '\0', "\"%.*s\": no reason", (int)k, t);
    }
}
END_TEST

/* Only LEN bytes count: what follows the length is not the parser's. */
START_TEST(length_bounds_text)
{
    const char *why;
    static const char text[] = "redis://h:12/3junk";
    ck_assert_int_eq(redis_url_parse(&u, text, 14, &why), 0);
    ck_assert_str_eq(u.host, "h");
    ck_assert_uint_eq(u.port, 12);
    ck_assert_uint_eq(u.db, 3);
    /* A NULL reason pointer is allowed. */
    ck_assert_int_eq(redis_url_parse(&u, "http://h", 8, NULL), -EINVAL);
}
END_TEST

START_TEST(longest_fields)
{
    static char text[4096], want[1024];
    const char *why;
    /* A 255-byte host fits; 256 do not. */
    memset(want, 'h', 255);
    want[255] = '\0';
    snprintf(text, sizeof text, "redis://%s", want);
    ck_assert_int_eq(parse_guarded(text, strlen(text), &why), 0);
    ck_assert_str_eq(u.host, want);
    snprintf(text, sizeof text, "redis://%sh:1", want);
    ck_assert_int_eq(parse_guarded(text, strlen(text), &why), -EINVAL);
    ck_assert_str_eq(why, "host is too long");
    /* The same in brackets (hex digits). */
    memset(want, 'a', 256);
    want[256] = '\0';
    snprintf(text, sizeof text, "redis://[%s]", want);
    ck_assert_int_eq(parse_guarded(text, strlen(text), &why), -EINVAL);
    ck_assert_str_eq(why, "host is too long");
    want[255] = '\0';
    snprintf(text, sizeof text, "redis://[%s]", want);
    ck_assert_int_eq(parse_guarded(text, strlen(text), &why), 0);
    ck_assert_uint_eq(strlen(u.host), 255);

    /* 511 password bytes fit, counted after decoding; 512 do not. */
    size_t n = (size_t)snprintf(text, sizeof text, "redis://:");
    for (int i = 0; i < 511; i++)
        n += (size_t)snprintf(text + n, sizeof text - n, i % 2 ? "%%40" : "x");
    snprintf(text + n, sizeof text - n, "@h");
    ck_assert_msg(parse_guarded(text, strlen(text), &why) == 0, "%s", why);
    ck_assert_uint_eq(u.password_len, REDIS_URL_SECRET_MAX);
    ck_assert_int_eq(u.password[1], '@');
    snprintf(text + n, sizeof text - n, "y@h");
    ck_assert_int_eq(parse_guarded(text, strlen(text), &why), -EINVAL);
    ck_assert_str_eq(why, "bad %-escape or too long password");

    /* 511 user bytes fit; 512 do not. */
    n = (size_t)snprintf(text, sizeof text, "redis://");
    memset(text + n, 'u', 511);
    n += 511;
    snprintf(text + n, sizeof text - n, ":p@h");
    ck_assert_msg(parse_guarded(text, strlen(text), &why) == 0, "%s", why);
    ck_assert_uint_eq(strlen(u.user), 511);
    snprintf(text + n, sizeof text - n, "u:p@h");
    ck_assert_int_eq(parse_guarded(text, strlen(text), &why), -EINVAL);
    ck_assert_str_eq(why, "bad or too long user name");
}
END_TEST

/* ---- refusals, each with its reason -------------------------------------- */

#define R_SCHEME  "expected redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]"
#define R_HOST    "no host"
#define R_PORT    "port must be 1..65535"
#define R_DB      "database must be a number 0..16383"
#define R_PASS    "bad %-escape or too long password"
#define R_USER    "bad or too long user name"
#define R_COLON   "credentials need a ':' before the password (redis://:PASSWORD@HOST)"
#define R_EMPTYPW "empty password"
#define R_V6      "unterminated or empty [IPv6] host"
#define R_V6CHAR  "bad character in [IPv6] host"
#define R_CHAR    "bad character in host"

static const struct { const char *text; const char *why; } bad[] = {
    { "", R_SCHEME },
    { "redis:/", R_SCHEME },
    { "redis:/h", R_SCHEME },
    { "rediss://h", R_SCHEME },
    { "REDIS://h", R_SCHEME },
    { "http://h", R_SCHEME },
    { " redis://h", R_SCHEME },
    { "unix:///tmp/redis.sock", R_SCHEME },
    { "redis://", R_HOST },
    { "redis://:6379", R_HOST },
    { "redis:///0", R_HOST },
    { "redis://:pw@", R_HOST },
    { "redis://:pw@:1", R_HOST },
    { "redis://:pw@/1", R_HOST },
    { "redis://h:0", R_PORT },
    { "redis://h:65536", R_PORT },
    { "redis://h:99999999999", R_PORT },
    { "redis://h:", R_PORT },
    { "redis://h:-1", R_PORT },
    { "redis://h:+1", R_PORT },
    { "redis://h:8o", R_PORT },
    { "redis://h: 1", R_PORT },
    { "redis://h:1:2", R_PORT },
    { "redis://[::1]:", R_PORT },
    { "redis://[::1]x", R_PORT },
    { "redis://[::1]:0", R_PORT },
    { "redis://h/16384", R_DB },
    { "redis://h/4294967296", R_DB },
    { "redis://h/-1", R_DB },
    { "redis://h/1x", R_DB },
    { "redis://h/x", R_DB },
    { "redis://h//", R_DB },
    { "redis://h/1/", R_DB },
    { "redis://h/ 1", R_DB },
    { "redis://:%4@h", R_PASS },
    { "redis://:%@h", R_PASS },
    { "redis://:ab%@h", R_PASS },
    { "redis://:%g0@h", R_PASS },
    { "redis://:%0g@h", R_PASS },
    { "redis://:% 1@h", R_PASS },
    { "redis://u%2:p@h", R_USER },
    { "redis://%zz:p@h", R_USER },
    { "redis://a%00b:p@h", R_USER },    /* would AUTH as "a" */
    { "redis://%00:p@h", R_USER },      /* would AUTH as the default user */
    { "redis://secret@h", R_COLON },
    { "redis://a%3Ab@h", R_COLON },      /* an escaped ':' does not separate */
    { "redis://:@h", R_EMPTYPW },
    { "redis://alice:@h", R_EMPTYPW },
    { "redis://[]", R_V6 },
    { "redis://[::1", R_V6 },
    { "redis://[::1/0]", R_V6 },
    { "redis://[fe80::1%eth0]", R_V6CHAR },
    { "redis://[::g]", R_V6CHAR },
    { "redis://[ ::1]", R_V6CHAR },
    { "redis://h?db=1", R_CHAR },
    { "redis://h#x", R_CHAR },
    { "redis://h h", R_CHAR },
    { "redis://h%41", R_CHAR },
    { "redis://[h", R_V6 },
    { "redis://h]", R_CHAR },
    { "redis://:p/w@h", R_HOST },       /* an unescaped '/' ends the authority */
};

START_TEST(refused)
{
    const char *why;
    const char *t = bad[_i].text;
    int rc = parse_guarded(t, strlen(t), &why);
    ck_assert_msg(rc == -EINVAL, "\"%s\": %d (host \"%s\")", t, rc, u.host);
    ck_assert_msg(why != NULL, "\"%s\": no reason", t);
    ck_assert_msg(strcmp(why, bad[_i].why) == 0, "\"%s\": \"%s\", not \"%s\"", t, why,
                  bad[_i].why);
}
END_TEST

/* A NUL inside the host or the port, given with its length: refused. */
START_TEST(refused_nul_bytes)
{
    const char *why;
    static const char host[] = "redis://h\0x";
    ck_assert_int_eq(parse_guarded(host, sizeof host - 1, &why), -EINVAL);
    ck_assert_str_eq(why, R_CHAR);
    static const char port[] = "redis://h:1\0";
    ck_assert_int_eq(parse_guarded(port, sizeof port - 1, &why), -EINVAL);
    ck_assert_str_eq(why, R_PORT);
    static const char db[] = "redis://h/1\0";
    ck_assert_int_eq(parse_guarded(db, sizeof db - 1, &why), -EINVAL);
    ck_assert_str_eq(why, R_DB);
}
END_TEST

Suite *redis_url_suite(void)
{
    Suite *s = suite_create("redis_url");
    TCase *tc = tcase_create("accepted");
    tcase_add_loop_test(tc, accepted, 0, (int)NELEM(good));
    tcase_add_loop_test(tc, accepted_prefixes, 0, (int)NELEM(good));
    tcase_add_test(tc, length_bounds_text);
    tcase_add_test(tc, longest_fields);
    suite_add_tcase(s, tc);

    tc = tcase_create("refused");
    tcase_add_loop_test(tc, refused, 0, (int)NELEM(bad));
    tcase_add_test(tc, refused_nul_bytes);
    suite_add_tcase(s, tc);
    return s;
}

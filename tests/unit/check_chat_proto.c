/*
 * check_chat_proto: the chat wire protocol as pure functions
 * (server/chat_proto.c). Names and nicks are fed from copies flush against
 * a PROT_NONE page (guard.h) so an over-read faults; client input is fed
 * from a read-only mapping so a write into it faults too. Every event the
 * builders produce is parsed back with the strict flat-object reader of
 * server/json.c (which rejects raw control characters and invalid UTF-8)
 * or compared byte for byte; every builder is run at every too-small
 * capacity (-ENOSPC, nothing written past it); framed events are checked
 * byte for byte and read back out of a heap ring.
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "chat_proto.h"
#include "guard.h"
#include "json.h"
#include "ring.h"

#define S(lit) lit, sizeof(lit) - 1
#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* ---- helpers ------------------------------------------------------------- */

/*
 * DATA[0..len) in a read-only page run that ends flush against a
 * PROT_NONE page: reading past the end or writing anywhere faults.
 * Valid until the next call.
 */
static const char *ro_copy(const void *data, size_t len)
{
    static unsigned char *map;
    static size_t map_len;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    if (map != NULL)
        munmap(map, map_len);
    size_t span = (len + page - 1) / page * page;
    if (span == 0)
        span = page;
    map_len = span + page;
    map = mmap(NULL, map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert(map != MAP_FAILED);
    ck_assert_int_eq(mprotect(map + span, page, PROT_NONE), 0);
    unsigned char *p = map + span - len;
    if (len)
        memcpy(p, data, len);
    ck_assert_int_eq(mprotect(map, span, PROT_READ), 0);
    return (const char *)p;
}

/* xorshift32: deterministic bytes for property loops. */
static uint32_t rnd_next(uint32_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
    return *x;
}

static char parse_buf[1 << 18];

/*
 * Parse S[0..n) as one strict flat JSON object; fields point into a
 * static copy. Returns the field count (< 0 on a parse failure).
 */
static int parse(const char *s, size_t n, struct json_field *f)
{
    ck_assert_uint_le(n, sizeof parse_buf);
    memcpy(parse_buf, s, n);
    return json_parse_object(parse_buf, n, f, JSON_MAX_FIELDS);
}

static const struct json_field *need_field(const struct json_field *f, int n,
                                           const char *key, int type)
{
    const struct json_field *x = json_get(f, n, key);
    ck_assert_msg(x != NULL, "field \"%s\" missing", key);
    ck_assert_msg(x->type == type, "field \"%s\" has type %d, want %d", key, x->type, type);
    return x;
}

static void expect_str(const struct json_field *f, int n, const char *key,
                       const char *val, size_t len)
{
    const struct json_field *x = need_field(f, n, key, JSON_STRING);
    ck_assert_msg(x->val_len == len && memcmp(x->val, val, len) == 0,
                  "field \"%s\" = \"%.*s\" (%zu bytes), want %zu bytes", key,
                  (int)x->val_len, x->val, x->val_len, len);
}

static void expect_num(const struct json_field *f, int n, const char *key, uint64_t v)
{
    const struct json_field *x = need_field(f, n, key, JSON_NUMBER);
    char want[24];
    int k = snprintf(want, sizeof want, "%llu", (unsigned long long)v);
    ck_assert_msg(x->val_len == (size_t)k && memcmp(x->val, want, (size_t)k) == 0,
                  "field \"%s\" = %.*s, want %s", key, (int)x->val_len, x->val, want);
}

/* No raw byte below 0x20 and no raw U+2028/U+2029 in S[0..n). */
static void expect_js_safe(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        ck_assert_msg((unsigned char)s[i] >= 0x20, "raw control 0x%02x at %zu",
                      (unsigned char)s[i], i);
        if (i + 2 < n && (unsigned char)s[i] == 0xE2 && (unsigned char)s[i + 1] == 0x80)
            ck_assert_msg((unsigned char)s[i + 2] != 0xA8 && (unsigned char)s[i + 2] != 0xA9,
                          "raw U+2028/U+2029 at %zu", i);
    }
}

static struct chat_identity ident(const char *nick, size_t len)
{
    struct chat_identity id;
    memset(&id, 0, sizeof id);
    uint8_t r[16];
    for (int i = 0; i < 16; i++)
        r[i] = (uint8_t)(i * 37 + 11);
    chat_uuid4(r, id.uid);
    ck_assert_uint_le(len, CHAT_NICK_MAX_BYTES);
    memcpy(id.nick, nick, len);
    id.nick_len = (uint8_t)len;
    return id;
}

/* The payload of an event as chat_proto_event_frame() writes it, from a body. */
static size_t with_head(char *out, size_t cap, const char *type, uint64_t id, int64_t ts,
                        const char *body, size_t n)
{
    int h = snprintf(out, cap, "{\"type\":\"%s\",\"id\":%llu,\"ts\":%lld", type,
                     (unsigned long long)id, (long long)ts);
    ck_assert(h > 0 && (size_t)h + n <= cap);
    memcpy(out + h, body, n);
    return (size_t)h + n;
}

/* ---- room names ------------------------------------------------------------ */

struct name_vec { const char *s; size_t len; int ok; };

static const struct name_vec rooms[] = {
    { S("lobby"), 1 },
    { S("a"), 1 },
    { S("Z"), 1 },
    { S("0"), 1 },
    { S("-"), 1 },
    { S("_"), 1 },
    { S("Room_42-b"), 1 },
    { S("abcdefghijklmnopqrstuvwxyzABCDEF"), 1 },            /* 32 */
    { S("0123456789-_0123456789-_01234567"), 1 },            /* 32 */
    { S(""), 0 },
    { S("abcdefghijklmnopqrstuvwxyzABCDEFG"), 0 },           /* 33 */
    { S("a b"), 0 },
    { S("a/b"), 0 },
    { S("a.b"), 0 },
    { S(".."), 0 },
    { S("a%20b"), 0 },
    { S("a+b"), 0 },
    { S("caf\xC3\xA9"), 0 },
    { S("a\0b"), 0 },
    { S("a\n"), 0 },
    { S("lobby?"), 0 },
    { S("lobby#"), 0 },
    { S("@"), 0 },
    { S("["), 0 },
    { S("`"), 0 },
    { S("{"), 0 },
    { S("/"), 0 },
    { S(":"), 0 },
    { S("\x80"), 0 },
    { S("\xFF"), 0 },
};

START_TEST(room_name_vectors)
{
    const struct name_vec *v = &rooms[_i];
    const char *p = guard_copy(v->s, v->len);
    ck_assert_msg(chat_room_name_valid(p, v->len) == v->ok,
                  "room \"%.*s\" (%zu bytes): want %d", (int)v->len, v->s, v->len, v->ok);
}
END_TEST

START_TEST(room_name_every_byte)
{
    /* Exactly [A-Za-z0-9_-] is allowed, at the start, middle and end. */
    for (int b = 0; b < 256; b++) {
        int want = (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') ||
                   (b >= '0' && b <= '9') || b == '_' || b == '-';
        char s[3] = { (char)b, 'x', 'x' };
        for (int at = 0; at < 3; at++) {
            char t[3] = { 'x', 'x', 'x' };
            t[at] = s[0];
            const char *p = guard_copy(t, 3);
            ck_assert_msg(chat_room_name_valid(p, 3) == want, "byte 0x%02x at %d", b, at);
        }
        const char *p = guard_copy(s, 1);
        ck_assert_msg(chat_room_name_valid(p, 1) == want, "byte 0x%02x alone", b);
    }
}
END_TEST

/* ---- nicks ------------------------------------------------------------------ */

static char nick_buf[64][160];

/* REP repeated COUNT times into a static slot; length in *len. */
static const char *rep(int slot, const char *r, size_t rl, int count, size_t *len)
{
    size_t n = 0;
    for (int i = 0; i < count; i++) {
        memcpy(nick_buf[slot] + n, r, rl);
        n += rl;
    }
    *len = n;
    return nick_buf[slot];
}

struct nick_vec { const char *s; size_t len; int ok; const char *what; };

static const struct nick_vec nicks[] = {
    { S("bob"), 1, "ascii" },
    { S("a"), 1, "one char" },
    { S("a b"), 1, "space inside" },
    { S("Zo\xC3\xAB"), 1, "latin-1 letter" },
    { S("\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E"), 1, "CJK" },
    { S("\xF0\x9F\x99\x82"), 1, "emoji" },
    { S("\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x92\xBB"), 1, "ZWJ sequence" },
    { S("a\xC2\xA0" "b"), 1, "U+00A0 inside" },
    { S("\xC2\xA0"), 0, "U+00A0 alone" },
    { S(" bob"), 0, "leading space" },
    { S("bob "), 0, "trailing space" },
    { S(" "), 0, "one space" },
    { S("bob\xE3\x80\x80"), 0, "trailing ideographic space" },
    { S("\xE2\x80\x83" "bob"), 0, "leading em space" },
    { S("al\xE2\x80\x8B" "ice"), 0, "zero-width space" },
    { S("al\xE2\x80\x8D" "ice"), 0, "ZWJ between letters" },
    { S("\xE2\x80\x8D\xF0\x9F\x92\xBB"), 0, "ZWJ first" },
    { S("\xF0\x9F\x91\xA9\xE2\x80\x8D"), 0, "ZWJ last" },
    { S("\xE2\x80\xAE" "ecila"), 0, "RTL override U+202E" },
    { S("a\xE2\x81\xA6" "b"), 0, "LTR isolate U+2066" },
    { S("a\xE2\x80\x8F"), 0, "RLM U+200F" },
    { S("a\xD8\x9C"), 0, "Arabic letter mark" },
    { S("\xEF\xBB\xBF" "bob"), 0, "BOM" },
    { S("bo\xC2\xAD" "b"), 0, "soft hyphen" },
    { S("\xE3\x85\xA4"), 0, "Hangul filler" },
    { S("a\xEF\xB8\x8F"), 0, "variation selector" },
    { S("a\xF3\xA0\x80\x81"), 0, "tag character" },
    { S("a\xE2\x81\xA0" "b"), 0, "word joiner" },
    { S("\xC2\xBF"), 1, "U+00BF" },
    { S("~"), 1, "tilde" },
    { S("\xF4\x8F\xBF\xBF"), 1, "U+10FFFF" },
    { S(""), 0, "empty" },
    { S("\t"), 0, "tab" },
    { S("a\nb"), 0, "newline" },
    { S("a\rb"), 0, "CR" },
    { S("\x1F"), 0, "U+001F" },
    { S("\x7F"), 0, "DEL" },
    { S("a\0b"), 0, "NUL" },
    { S("\xC2\x80"), 0, "C1 U+0080" },
    { S("\xC2\x85"), 0, "C1 NEL" },
    { S("x\xC2\x9F"), 0, "C1 U+009F" },
    { S("\xC3"), 0, "truncated" },
    { S("ab\xE6\x97"), 0, "truncated CJK" },
    { S("\x80"), 0, "stray continuation" },
    { S("\xC0\xAF"), 0, "overlong /" },
    { S("\xE0\x80\xAF"), 0, "overlong 3-byte" },
    { S("\xED\xA0\x80"), 0, "surrogate" },
    { S("\xF4\x90\x80\x80"), 0, "above U+10FFFF" },
    { S("\xFF"), 0, "0xFF" },
    { S("\xF8\x88\x80\x80\x80"), 0, "5-byte form" },
};

START_TEST(nick_vectors)
{
    const struct nick_vec *v = &nicks[_i];
    const char *p = guard_copy(v->s, v->len);
    ck_assert_msg(chat_nick_valid(p, v->len) == v->ok, "%s: want %d", v->what, v->ok);
}
END_TEST

START_TEST(nick_lengths)
{
    static const struct { const char *r; size_t rl; } chars[] = {
        { S("a") }, { S("\xC3\xA9") }, { S("\xE4\xB8\xAD") }, { S("\xF0\x9F\x98\x80") },
    };
    for (int k = 0; k < N(chars); k++) {
        for (int count = 1; count <= 34; count++) {
            size_t len;
            const char *s = rep(0, chars[k].r, chars[k].rl, count, &len);
            const char *p = guard_copy(s, len);
            ck_assert_msg(chat_nick_valid(p, len) == (count <= 32),
                          "%d chars of %zu bytes each", count, chars[k].rl);
        }
    }
    /* 31 ASCII + one emoji: 32 code points, 35 bytes. */
    size_t len;
    const char *s = rep(1, "b", 1, 31, &len);
    memcpy(nick_buf[1] + len, "\xF0\x9F\x98\x80", 4);
    ck_assert(chat_nick_valid(guard_copy(s, len + 4), len + 4));
    /* A control character at the very end of a 32-char nick. */
    s = rep(2, "c", 1, 31, &len);
    nick_buf[2][len] = '\x1B';
    ck_assert(!chat_nick_valid(guard_copy(s, len + 1), len + 1));
}
END_TEST

START_TEST(nick_every_code_point_below_0x800)
{
    /* Exactly the C0 and C1 controls, DEL and the invisible U+00AD, U+034F and
     * U+061C are refused; spaces only at the ends. */
    for (unsigned cp = 0; cp < 0x800; cp++) {
        char b[4];
        size_t n;
        if (cp < 0x80) {
            b[0] = (char)cp;
            n = 1;
        } else {
            b[0] = (char)(0xC0 | (cp >> 6));
            b[1] = (char)(0x80 | (cp & 0x3F));
            n = 2;
        }
        int want = !(cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) || cp == 0xAD || cp == 0x34F ||
                     cp == 0x61C);
        /* A space is fine inside a nick, not as the whole of one. */
        int space = cp == ' ' || cp == 0xA0;
        b[n] = 'x';
        ck_assert_msg(chat_nick_valid(guard_copy(b, n), n) == (want && !space), "U+%04X alone",
                      cp);
        ck_assert_msg(chat_nick_valid(guard_copy(b, n + 1), n + 1) == (want && !space),
                      "U+%04X + x", cp);
        char m[5] = { 'x' };
        memcpy(m + 1, b, n);
        m[n + 1] = 'x';
        ck_assert_msg(chat_nick_valid(guard_copy(m, n + 2), n + 2) == want, "x + U+%04X + x", cp);
    }
}
END_TEST

/* ---- uuid and guest nick --------------------------------------------------- */

static int hexdig(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;     /* uppercase is not what we emit */
}

/* Check OUT is RFC 9562 v4 text of RND (version and variant bits forced). */
static void expect_uuid4(const uint8_t rnd[16], const char out[37])
{
    ck_assert_uint_eq(strlen(out), 36);
    uint8_t b[16];
    int k = 0;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            ck_assert_msg(out[i] == '-', "no hyphen at %d: %s", i, out);
            continue;
        }
        int hi = hexdig(out[i]), lo = hexdig(out[i + 1]);
        ck_assert_msg(hi >= 0 && lo >= 0, "not lowercase hex at %d: %s", i, out);
        b[k++] = (uint8_t)(hi << 4 | lo);
        i++;
    }
    ck_assert_int_eq(k, 16);
    ck_assert_msg(out[14] == '4', "version nibble %c: %s", out[14], out);
    ck_assert_msg(strchr("89ab", out[19]) != NULL, "variant nibble %c: %s", out[19], out);
    for (int i = 0; i < 16; i++) {
        uint8_t want = rnd[i];
        if (i == 6)
            want = (uint8_t)((want & 0x0F) | 0x40);
        if (i == 8)
            want = (uint8_t)((want & 0x3F) | 0x80);
        ck_assert_msg(b[i] == want, "byte %d: 0x%02x, want 0x%02x (%s)", i, b[i], want, out);
    }
}

START_TEST(uuid4_known)
{
    uint8_t zero[16], ones[16];
    char out[37];
    memset(zero, 0, sizeof zero);
    memset(ones, 0xFF, sizeof ones);
    memset(out, 'Q', sizeof out);
    chat_uuid4(zero, out);
    ck_assert_str_eq(out, "00000000-0000-4000-8000-000000000000");
    chat_uuid4(ones, out);
    ck_assert_str_eq(out, "ffffffff-ffff-4fff-bfff-ffffffffffff");
    static const uint8_t seq[16] = { 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
                                     0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef };
    chat_uuid4(seq, out);
    ck_assert_str_eq(out, "01234567-89ab-4def-8123-456789abcdef");
    /* The input is not modified. */
    ck_assert_uint_eq(seq[6], 0xcd);
}
END_TEST

START_TEST(uuid4_random)
{
    uint32_t x = 0x12345679u;
    char prev[37] = "";
    for (int n = 0; n < 5000; n++) {
        uint8_t r[16];
        for (int i = 0; i < 16; i++)
            r[i] = (uint8_t)(rnd_next(&x) >> 11);
        char out[37];
        chat_uuid4(r, out);
        expect_uuid4(r, out);
        ck_assert_str_ne(out, prev);
        memcpy(prev, out, sizeof out);
    }
}
END_TEST

START_TEST(guest_nick)
{
    uint8_t r[16] = { 0xde, 0xad, 0xbe, 0xef };
    char uid[37], nick[CHAT_NICK_MAX_BYTES + 1];
    chat_uuid4(r, uid);
    memset(nick, 0, sizeof nick);
    ck_assert_uint_eq(chat_guest_nick(uid, nick), 10);
    ck_assert_mem_eq(nick, "guest-dead", 10);
    ck_assert(chat_nick_valid(nick, 10));
}
END_TEST

/* ---- query string ----------------------------------------------------------- */

struct query_vec {
    const char *q; size_t len;
    int nick_present, nick_ok;
    const char *nick; size_t nick_len;
    int since_present, since_ok;
    uint64_t since;
};

#define NO_NICK 0, 0, "", 0
#define BAD_NICK 1, 0, "", 0
#define NICK(s) 1, 1, S(s)
#define NO_SINCE 0, 0, 0
#define BAD_SINCE 1, 0, 0
#define SINCE(v) 1, 1, v

static const struct query_vec queries[] = {
    { S(""), NO_NICK, NO_SINCE },
    { S("&&&"), NO_NICK, NO_SINCE },
    { S("nick=bob"), NICK("bob"), NO_SINCE },
    { S("nick=a+b"), NICK("a b"), NO_SINCE },
    { S("nick=a%20b"), NICK("a b"), NO_SINCE },
    { S("nick=%2B"), NICK("+"), NO_SINCE },
    { S("nick=a%26b"), NICK("a&b"), NO_SINCE },
    { S("nick=a%3Db"), NICK("a=b"), NO_SINCE },
    { S("nick=a=b"), NICK("a=b"), NO_SINCE },
    { S("nick=%E6%97%A5%E6%9C%AC"), NICK("\xE6\x97\xA5\xE6\x9C\xAC"), NO_SINCE },
    { S("nick=%e6%97%a5"), NICK("\xE6\x97\xA5"), NO_SINCE },
    { S("nick=%F0%9F%99%82x"), NICK("\xF0\x9F\x99\x82x"), NO_SINCE },
    { S("nick=%41"), NICK("A"), NO_SINCE },
    { S("nick="), BAD_NICK, NO_SINCE },
    { S("nick"), BAD_NICK, NO_SINCE },
    { S("nick=%"), BAD_NICK, NO_SINCE },
    { S("nick=%4"), BAD_NICK, NO_SINCE },
    { S("nick=ab%4"), BAD_NICK, NO_SINCE },
    { S("nick=%zz"), BAD_NICK, NO_SINCE },
    { S("nick=%4g"), BAD_NICK, NO_SINCE },
    { S("nick=%g4"), BAD_NICK, NO_SINCE },
    { S("nick=%%41"), BAD_NICK, NO_SINCE },
    { S("nick=%00"), BAD_NICK, NO_SINCE },
    { S("nick=a%0Ab"), BAD_NICK, NO_SINCE },
    { S("nick=%7F"), BAD_NICK, NO_SINCE },
    { S("nick=%C2%85"), BAD_NICK, NO_SINCE },
    { S("nick=%FF"), BAD_NICK, NO_SINCE },
    { S("nick=%C3"), BAD_NICK, NO_SINCE },
    { S("nick=%ED%A0%80"), BAD_NICK, NO_SINCE },
    { S("nick=abcdefghijklmnopqrstuvwxyz012345"), NICK("abcdefghijklmnopqrstuvwxyz012345"),
      NO_SINCE },
    { S("nick=abcdefghijklmnopqrstuvwxyz0123456"), BAD_NICK, NO_SINCE },
    { S("nickname=bob"), NO_NICK, NO_SINCE },
    { S("nic=bob"), NO_NICK, NO_SINCE },
    { S("xnick=bob"), NO_NICK, NO_SINCE },
    { S("NICK=bob"), NO_NICK, NO_SINCE },
    { S("since=0"), NO_NICK, SINCE(0) },
    { S("since=42"), NO_NICK, SINCE(42) },
    { S("since=007"), NO_NICK, SINCE(7) },
    { S("since=4294967296"), NO_NICK, SINCE(4294967296ull) },
    { S("since=18446744073709551609"), NO_NICK, SINCE(18446744073709551609ull) },
    { S("since=18446744073709551616"), NO_NICK, BAD_SINCE },
    { S("since=99999999999999999999"), NO_NICK, BAD_SINCE },
    { S("since=100000000000000000000"), NO_NICK, BAD_SINCE },
    { S("since=184467440737095516150"), NO_NICK, BAD_SINCE },
    { S("since="), NO_NICK, BAD_SINCE },
    { S("since"), NO_NICK, BAD_SINCE },
    { S("since=-1"), NO_NICK, BAD_SINCE },
    { S("since=+1"), NO_NICK, BAD_SINCE },
    { S("since=1a"), NO_NICK, BAD_SINCE },
    { S("since=a1"), NO_NICK, BAD_SINCE },
    { S("since=1.5"), NO_NICK, BAD_SINCE },
    { S("since=%20"), NO_NICK, BAD_SINCE },
    { S("since= 1"), NO_NICK, BAD_SINCE },
    { S("since=0x10"), NO_NICK, BAD_SINCE },
    { S("sinceX=5"), NO_NICK, NO_SINCE },
    { S("nick=al&since=12"), NICK("al"), SINCE(12) },
    { S("since=12&nick=al"), NICK("al"), SINCE(12) },
    { S("x=1&nick=al&&y&since=3&z="), NICK("al"), SINCE(3) },
    { S("nick=%zz&since=5"), BAD_NICK, SINCE(5) },
    { S("nick=ok&since=x"), NICK("ok"), BAD_SINCE },
};

START_TEST(query_vectors)
{
    const struct query_vec *v = &queries[_i];
    struct chat_query q;
    memset(&q, 0xA5, sizeof q);
    chat_query_parse(guard_copy(v->q, v->len), v->len, &q);
    ck_assert_msg(q.nick_present == v->nick_present, "\"%s\": nick_present %d",
                  v->q, q.nick_present);
    ck_assert_msg(q.nick_ok == v->nick_ok, "\"%s\": nick_ok %d", v->q, q.nick_ok);
    ck_assert_msg(q.nick_len == v->nick_len, "\"%s\": nick_len %zu, want %zu", v->q,
                  q.nick_len, v->nick_len);
    if (v->nick_ok)
        ck_assert_msg(memcmp(q.nick, v->nick, v->nick_len) == 0, "\"%s\": nick \"%.*s\"",
                      v->q, (int)q.nick_len, q.nick);
    ck_assert_msg(q.since_present == v->since_present, "\"%s\": since_present %d",
                  v->q, q.since_present);
    ck_assert_msg(q.since_ok == v->since_ok, "\"%s\": since_ok %d", v->q, q.since_ok);
    ck_assert_msg(q.since == v->since, "\"%s\": since %llu", v->q,
                  (unsigned long long)q.since);
}
END_TEST

START_TEST(query_long_nicks)
{
    /* 32 emoji percent-encoded (128 decoded bytes) fit; 33 do not. */
    char q[1024];
    for (int count = 31; count <= 33; count++) {
        size_t n = (size_t)snprintf(q, sizeof q, "since=1&nick=");
        for (int i = 0; i < count; i++)
            n += (size_t)snprintf(q + n, sizeof q - n, "%%F0%%9F%%98%%80");
        n += (size_t)snprintf(q + n, sizeof q - n, "&x=y");
        struct chat_query cq;
        chat_query_parse(guard_copy(q, n), n, &cq);
        ck_assert_int_eq(cq.nick_present, 1);
        ck_assert_msg(cq.nick_ok == (count <= 32), "%d emoji: nick_ok %d", count, cq.nick_ok);
        ck_assert_uint_eq(cq.nick_len, count <= 32 ? (size_t)count * 4 : 0);
        if (cq.nick_ok)
            for (int i = 0; i < count; i++)
                ck_assert_mem_eq(cq.nick + 4 * i, "\xF0\x9F\x98\x80", 4);
        ck_assert(cq.since_ok && cq.since == 1);
    }
    /* A very long value never overflows the nick buffer. */
    size_t n = (size_t)snprintf(q, sizeof q, "nick=");
    while (n < 1000)
        q[n++] = 'w';
    struct chat_query cq;
    chat_query_parse(guard_copy(q, n), n, &cq);
    ck_assert(cq.nick_present && !cq.nick_ok && cq.nick_len == 0);
}
END_TEST

/* ---- client input ------------------------------------------------------------- */

#define MSG CHAT_INPUT_MESSAGE
#define NICKK CHAT_INPUT_NICK
#define PLAIN -100       /* expect: a message whose value is the whole input */

struct input_vec {
    const char *in; size_t len;
    int rc;              /* 0 or a CHAT_INPUT_* error */
    int kind;            /* MSG, NICKK or PLAIN */
    const char *val; size_t val_len;
};

static const struct input_vec inputs[] = {
    { S("{\"type\":\"message\",\"text\":\"hello\"}"), 0, MSG, S("hello") },
    { S("{\"text\":\"hello\",\"type\":\"message\"}"), 0, MSG, S("hello") },
    { S(" \t\r\n{ \"type\" : \"message\" , \"text\" : \"hi\" } \n"), 0, MSG, S("hi") },
    { S("{\"type\":\"message\",\"text\":\"a\\\"b\\\\c\\u00e9\\n\\u2028\"}"), 0, MSG,
      S("a\"b\\c\xC3\xA9\n\xE2\x80\xA8") },
    { S("{\"type\":\"message\",\"text\":\"\"}"), 0, MSG, S("") },
    { S("{\"type\":\"message\",\"text\":\"x\",\"extra\":1,\"more\":null}"), 0, MSG, S("x") },
    { S("{\"type\":\"message\",\"text\":\"\\uD83D\\uDE00\"}"), 0, MSG, S("\xF0\x9F\x98\x80") },
    { S("{\"type\":\"nick\",\"nick\":\"bob\"}"), 0, NICKK, S("bob") },
    { S("{\"nick\":\"\\u65e5\",\"type\":\"nick\"}"), 0, NICKK, S("\xE6\x97\xA5") },
    { S("{\"type\":\"nick\",\"nick\":\"\"}"), 0, NICKK, S("") },
    /* plain text, including text that looks like JSON but is not */
    { S("hello world"), 0, PLAIN, NULL, 0 },
    { S(""), 0, PLAIN, NULL, 0 },
    { S("   "), 0, PLAIN, NULL, 0 },
    { S("{"), 0, PLAIN, NULL, 0 },
    { S("}"), 0, PLAIN, NULL, 0 },
    { S("{not json}"), 0, PLAIN, NULL, 0 },
    { S("{\"type\":\"message\",\"text\":\"unterminated"), 0, PLAIN, NULL, 0 },
    { S("{\"type\":\"message\",\"text\":\"x\"} trailing"), 0, PLAIN, NULL, 0 },
    { S("{\"type\":\"message\",\"text\":\"x\"}{}"), 0, PLAIN, NULL, 0 },
    { S("{\"type\":\"message\",\"text\":\"x\",}"), 0, PLAIN, NULL, 0 },
    { S("{\"type\":\"message\",\"text\":\"\\x\"}"), 0, PLAIN, NULL, 0 },
    { S("{\"type\":\"message\",\"text\":\"\\uD800\"}"), 0, PLAIN, NULL, 0 },
    { S("{\"type\":\"message\",\"text\":\"a\tb\"}"), 0, PLAIN, NULL, 0 },
    { S("{\"type\":\"message\",\"text\":\"\xFF\"}"), 0, PLAIN, NULL, 0 },
    { S("{'type':'message','text':'x'}"), 0, PLAIN, NULL, 0 },
    { S("{type:\"message\",text:\"x\"}"), 0, PLAIN, NULL, 0 },
    { S("[\"type\",\"message\"]"), 0, PLAIN, NULL, 0 },
    { S("\"{\\\"type\\\":\\\"nick\\\"}\""), 0, PLAIN, NULL, 0 },
    { S("x{\"type\":\"nick\",\"nick\":\"bob\"}"), 0, PLAIN, NULL, 0 },
    { S("{\"type\":\"message\",\"text\":\"x\"\0}"), 0, PLAIN, NULL, 0 },
    /* JSON objects with a wrong or missing type */
    { S("{}"), CHAT_INPUT_BAD_TYPE, 0, NULL, 0 },
    { S("{\"text\":\"x\"}"), CHAT_INPUT_BAD_TYPE, 0, NULL, 0 },
    { S("{\"type\":\"shout\",\"text\":\"x\"}"), CHAT_INPUT_BAD_TYPE, 0, NULL, 0 },
    { S("{\"type\":\"Message\",\"text\":\"x\"}"), CHAT_INPUT_BAD_TYPE, 0, NULL, 0 },
    { S("{\"type\":\"message \",\"text\":\"x\"}"), CHAT_INPUT_BAD_TYPE, 0, NULL, 0 },
    { S("{\"type\":\"messag\",\"text\":\"x\"}"), CHAT_INPUT_BAD_TYPE, 0, NULL, 0 },
    { S("{\"type\":\"message\\u0000\",\"text\":\"x\"}"), CHAT_INPUT_BAD_TYPE, 0, NULL, 0 },
    { S("{\"type\":1,\"text\":\"x\"}"), CHAT_INPUT_BAD_TYPE, 0, NULL, 0 },
    { S("{\"type\":null,\"text\":\"x\"}"), CHAT_INPUT_BAD_TYPE, 0, NULL, 0 },
    { S("{\"type\":true}"), CHAT_INPUT_BAD_TYPE, 0, NULL, 0 },
    { S("{\"Type\":\"message\",\"text\":\"x\"}"), CHAT_INPUT_BAD_TYPE, 0, NULL, 0 },
    /* the right type without its string field */
    { S("{\"type\":\"message\"}"), CHAT_INPUT_MISSING, 0, NULL, 0 },
    { S("{\"type\":\"message\",\"text\":5}"), CHAT_INPUT_MISSING, 0, NULL, 0 },
    { S("{\"type\":\"message\",\"text\":null}"), CHAT_INPUT_MISSING, 0, NULL, 0 },
    { S("{\"type\":\"message\",\"text\":false}"), CHAT_INPUT_MISSING, 0, NULL, 0 },
    { S("{\"type\":\"message\",\"nick\":\"x\"}"), CHAT_INPUT_MISSING, 0, NULL, 0 },
    { S("{\"type\":\"nick\"}"), CHAT_INPUT_MISSING, 0, NULL, 0 },
    { S("{\"type\":\"nick\",\"text\":\"bob\"}"), CHAT_INPUT_MISSING, 0, NULL, 0 },
    { S("{\"type\":\"nick\",\"nick\":7}"), CHAT_INPUT_MISSING, 0, NULL, 0 },
};

START_TEST(input_vectors)
{
    const struct input_vec *v = &inputs[_i];
    const char *data = ro_copy(v->in, v->len);
    size_t cap = 4096;
    char *scratch = malloc(cap);
    ck_assert_ptr_nonnull(scratch);
    struct chat_input in;
    memset(&in, 0, sizeof in);
    int rc = chat_input_parse(data, v->len, scratch, cap, &in);
    ck_assert_msg(rc == v->rc, "\"%s\": rc %d, want %d", v->in, rc, v->rc);
    /* DATA is read-only: had the parser written into it, we had faulted. */
    ck_assert_mem_eq(data, v->in, v->len);
    if (rc == 0) {
        if (v->kind == PLAIN) {
            ck_assert_int_eq(in.kind, CHAT_INPUT_MESSAGE);
            ck_assert_msg(in.value == data && in.value_len == v->len,
                          "\"%s\": plain text must be the input itself", v->in);
        } else {
            ck_assert_int_eq(in.kind, v->kind);
            ck_assert_msg(in.value_len == v->val_len &&
                          memcmp(in.value, v->val, v->val_len) == 0,
                          "\"%s\": value \"%.*s\"", v->in, (int)in.value_len, in.value);
            /* The value lives where the caller can keep using it. */
            ck_assert((in.value >= data && in.value + in.value_len <= data + v->len) ||
                      (in.value >= scratch && in.value + in.value_len <= scratch + cap));
        }
    }
    free(scratch);
}
END_TEST

START_TEST(input_scratch_too_small)
{
    /* Valid JSON longer than the scratch space is taken as plain text. */
    static const char j[] = "{\"type\":\"nick\",\"nick\":\"bob\"}";
    size_t len = sizeof j - 1;
    char scratch[64];
    struct chat_input in;
    const char *data = ro_copy(j, len);
    ck_assert_int_eq(chat_input_parse(data, len, scratch, len, &in), 0);
    ck_assert_int_eq(in.kind, CHAT_INPUT_NICK);
    ck_assert_int_eq(chat_input_parse(data, len, scratch, len - 1, &in), 0);
    ck_assert_int_eq(in.kind, CHAT_INPUT_MESSAGE);
    ck_assert(in.value == data && in.value_len == len);
}
END_TEST

START_TEST(input_random_never_writes)
{
    /* Random brace-led inputs: never a fault, never a write into data. */
    uint32_t x = 0xC0FFEEu;
    static const char alphabet[] = "{}\":,\\u0aAtxyemsg ni\n\xC3\xA9\xFF";
    char *scratch = malloc(512);
    for (int n = 0; n < 3000; n++) {
        char buf[256];
        size_t len = 1 + rnd_next(&x) % 120;
        buf[0] = '{';
        for (size_t i = 1; i < len; i++)
            buf[i] = alphabet[rnd_next(&x) % (sizeof alphabet - 1)];
        const char *data = ro_copy(buf, len);
        struct chat_input in;
        int rc = chat_input_parse(data, len, scratch, 512, &in);
        ck_assert(rc == 0 || rc == CHAT_INPUT_BAD_TYPE || rc == CHAT_INPUT_MISSING);
        if (rc == 0 && in.value == data)
            ck_assert_uint_eq(in.value_len, len);
        ck_assert_mem_eq(data, buf, len);
    }
    free(scratch);
}
END_TEST

START_TEST(input_error_texts)
{
    ck_assert_str_eq(chat_input_error_code(CHAT_INPUT_BAD_TYPE), "bad_type");
    ck_assert_str_eq(chat_input_error_code(CHAT_INPUT_MISSING), "bad_request");
    int errs[] = { CHAT_INPUT_BAD_TYPE, CHAT_INPUT_MISSING };
    for (int i = 0; i < 2; i++) {
        const char *code = chat_input_error_code(errs[i]);
        const char *reason = chat_input_error_reason(errs[i]);
        ck_assert_uint_gt(strlen(reason), 0);
        char buf[512];
        ssize_t n = chat_proto_error(buf, sizeof buf, code, reason);
        ck_assert_uint_gt(n, 0);
        struct json_field f[JSON_MAX_FIELDS];
        int nf = parse(buf, n, f);
        ck_assert_int_eq(nf, 3);
        expect_str(f, nf, "type", S("error"));
        expect_str(f, nf, "code", code, strlen(code));
        expect_str(f, nf, "reason", reason, strlen(reason));
    }
}
END_TEST

/* ---- event builders ------------------------------------------------------------ */

START_TEST(welcome_exact)
{
    struct chat_identity id = ident(S("bob"));
    char buf[512];
    ssize_t n = chat_proto_welcome(buf, sizeof buf, &id, S("lobby"), 3, 12345678901234ull);
    char want[512];
    int wn = snprintf(want, sizeof want, "{\"type\":\"welcome\",\"uid\":\"%s\",\"nick\":\"bob\","
                      "\"room\":\"lobby\",\"online\":3,\"last_id\":12345678901234}", id.uid);
    ck_assert_uint_eq(n, (size_t)wn);
    ck_assert_mem_eq(buf, want, n);

    struct json_field f[JSON_MAX_FIELDS];
    int nf = parse(buf, n, f);
    ck_assert_int_eq(nf, 6);
    expect_str(f, nf, "uid", id.uid, 36);
    expect_num(f, nf, "last_id", 12345678901234ull);

    /* Extremes: no members is 0, never negative; the largest id prints whole. */
    n = chat_proto_welcome(buf, sizeof buf, &id, S("r"), -5, UINT64_MAX);
    nf = parse(buf, n, f);
    ck_assert_int_eq(nf, 6);
    expect_num(f, nf, "online", 0);
    expect_num(f, nf, "last_id", UINT64_MAX);
    expect_str(f, nf, "room", S("r"));
}
END_TEST

START_TEST(welcome_hostile_nick)
{
    static const char nick[] = "\"}\\,\"type\":\"x\xE2\x80\xA8\xF0\x9F\x98\x80";
    struct chat_identity id = ident(nick, sizeof nick - 1);
    char buf[1024];
    ssize_t n = chat_proto_welcome(buf, sizeof buf, &id, S("lobby"), 1, 0);
    ck_assert_uint_gt(n, 0);
    expect_js_safe(buf, n);
    struct json_field f[JSON_MAX_FIELDS];
    int nf = parse(buf, n, f);
    ck_assert_int_eq(nf, 6);
    expect_str(f, nf, "type", S("welcome"));
    expect_str(f, nf, "nick", nick, sizeof nick - 1);
    ck_assert_ptr_nonnull(strstr(buf, "\\u2028"));
}
END_TEST

START_TEST(simple_and_error_exact)
{
    char buf[256];
    ssize_t n = chat_proto_simple(buf, sizeof buf, "history_end");
    ck_assert_uint_eq(n, strlen("{\"type\":\"history_end\"}"));
    ck_assert_mem_eq(buf, "{\"type\":\"history_end\"}", n);

    n = chat_proto_error(buf, sizeof buf, "too_long", "message text is longer than max_text");
    static const char want[] = "{\"type\":\"error\",\"code\":\"too_long\","
                               "\"reason\":\"message text is longer than max_text\"}";
    ck_assert_uint_eq(n, sizeof want - 1);
    ck_assert_mem_eq(buf, want, n);

    n = chat_proto_error(buf, sizeof buf, "x", "say \"hi\"\\ \n now");
    static const char want2[] = "{\"type\":\"error\",\"code\":\"x\","
                                "\"reason\":\"say \\\"hi\\\"\\\\ \\n now\"}";
    ck_assert_uint_eq(n, sizeof want2 - 1);
    ck_assert_mem_eq(buf, want2, n);
}
END_TEST

START_TEST(gap_frame)
{
    uint8_t buf[256];
    ssize_t n = chat_proto_gap(buf, sizeof buf, S("lobby"), 5, 9);
    static const char json[] = "{\"type\":\"gap\",\"room\":\"lobby\",\"from\":5,\"to\":9}";
    size_t jl = sizeof json - 1;
    ck_assert_uint_eq(n, 2 + jl);
    ck_assert_uint_eq(buf[0], 0x81);               /* FIN + text */
    ck_assert_uint_eq(buf[1], jl);                 /* unmasked, 7-bit length */
    ck_assert_mem_eq(buf + 2, json, jl);

    /* Large ids and the longest room still make one valid text frame. */
    n = chat_proto_gap(buf, sizeof buf, S("abcdefghijklmnopqrstuvwxyz012345"),
                       UINT64_MAX - 1, UINT64_MAX);
    ck_assert_uint_gt(n, 2);
    ck_assert_uint_eq(buf[0], 0x81);
    size_t pl = buf[1] & 0x7F, hl = 2;
    if (pl == 126) {
        pl = (size_t)buf[2] << 8 | buf[3];
        hl = 4;
    }
    ck_assert_uint_eq(buf[1] & 0x80, 0);
    ck_assert_uint_eq(hl + pl, n);
    struct json_field f[JSON_MAX_FIELDS];
    int nf = parse((const char *)buf + hl, pl, f);
    ck_assert_int_eq(nf, 4);
    expect_str(f, nf, "type", S("gap"));
    expect_str(f, nf, "room", S("abcdefghijklmnopqrstuvwxyz012345"));
    expect_num(f, nf, "from", UINT64_MAX - 1);
    expect_num(f, nf, "to", UINT64_MAX);
}
END_TEST

START_TEST(gap_frame_long_payload)
{
    /* A payload past 64 KiB takes the 10-byte header, exactly sized. */
    size_t rl = 40000;
    char *room = malloc(rl);
    memset(room, '"', rl);
    size_t pl = strlen("{\"type\":\"gap\",\"room\":\"\",\"from\":1,\"to\":2}") + 2 * rl;
    size_t total = 10 + pl;
    uint8_t *buf = malloc(total + 16);
    memset(buf, 0x5A, total + 16);
    ck_assert_int_eq(chat_proto_gap(buf, total - 1, room, rl, 1, 2), -ENOSPC);
    for (size_t i = total - 1; i < total + 16; i++)
        ck_assert_uint_eq(buf[i], 0x5A);
    ck_assert_int_eq(chat_proto_gap(buf, total, room, rl, 1, 2), (ssize_t)total);
    ck_assert_uint_eq(buf[total], 0x5A);
    size_t got;
    ck_assert_uint_eq(buf[1], 127);
    uint64_t len = 0;
    for (int i = 0; i < 8; i++)
        len = len << 8 | buf[2 + i];
    ck_assert_uint_eq(len, pl);
    got = (size_t)len;
    struct json_field f[JSON_MAX_FIELDS];
    int nf = parse((const char *)buf + 10, got, f);
    ck_assert_int_eq(nf, 4);
    expect_str(f, nf, "room", room, rl);
    expect_num(f, nf, "to", 2);
    free(buf);
    free(room);
}
END_TEST

START_TEST(message_body_exact)
{
    struct chat_identity id = ident(S("al"));
    char body[512], ev[1024];
    ssize_t n = chat_proto_message_body(body, sizeof body, S("lobby"), &id, S("hi there"));
    char want[512];
    int wn = snprintf(want, sizeof want,
                      ",\"room\":\"lobby\",\"uid\":\"%s\",\"nick\":\"al\",\"text\":\"hi there\"}",
                      id.uid);
    ck_assert_uint_eq(n, (size_t)wn);
    ck_assert_mem_eq(body, want, n);

    size_t en = with_head(ev, sizeof ev, "message", 17, 1700000000123, body, n);
    struct json_field f[JSON_MAX_FIELDS];
    int nf = parse(ev, en, f);
    ck_assert_int_eq(nf, 7);
    expect_str(f, nf, "type", S("message"));
    expect_num(f, nf, "id", 17);
    expect_num(f, nf, "ts", 1700000000123ull);
    expect_str(f, nf, "room", S("lobby"));
    expect_str(f, nf, "uid", id.uid, 36);
    expect_str(f, nf, "nick", S("al"));
    expect_str(f, nf, "text", S("hi there"));
}
END_TEST

START_TEST(presence_body_exact)
{
    struct chat_identity id = ident(S("new\"one"));
    char body[512], ev[1024];
    ssize_t n = chat_proto_presence_body(body, sizeof body, S("r1"), &id, NULL, 0, 4);
    char want[512];
    int wn = snprintf(want, sizeof want, ",\"room\":\"r1\",\"uid\":\"%s\",\"nick\":\"new\\\"one\","
                      "\"online\":4}", id.uid);
    ck_assert_uint_eq(n, (size_t)wn);
    ck_assert_mem_eq(body, want, n);

    struct json_field f[JSON_MAX_FIELDS];
    size_t en = with_head(ev, sizeof ev, "join", 3, 1, body, n);
    int nf = parse(ev, en, f);
    ck_assert_int_eq(nf, 7);
    expect_str(f, nf, "nick", S("new\"one"));
    expect_num(f, nf, "online", 4);
    ck_assert_ptr_null(json_get(f, nf, "old"));

    n = chat_proto_presence_body(body, sizeof body, S("r1"), &id, S("old\\one\n"), 2);
    en = with_head(ev, sizeof ev, "nick", 4, 2, body, n);
    nf = parse(ev, en, f);
    ck_assert_int_eq(nf, 8);
    expect_str(f, nf, "type", S("nick"));
    expect_str(f, nf, "nick", S("new\"one"));
    expect_str(f, nf, "old", S("old\\one\n"));
    expect_str(f, nf, "room", S("r1"));
    expect_str(f, nf, "uid", id.uid, 36);
    expect_num(f, nf, "online", 2);

    /* An empty old nick is still a field; a negative count prints as 0. */
    n = chat_proto_presence_body(body, sizeof body, S("r1"), &id, "", 0, -1);
    en = with_head(ev, sizeof ev, "nick", 5, 3, body, n);
    nf = parse(ev, en, f);
    ck_assert_int_eq(nf, 8);
    expect_str(f, nf, "old", "", 0);
    expect_num(f, nf, "online", 0);
}
END_TEST

struct hostile_vec { const char *s; size_t len; int valid_utf8; };

static const struct hostile_vec hostile[] = {
    { S("\""), 1 },
    { S("\\"), 1 },
    { S("\\\""), 1 },
    { S("\"},{\"type\":\"join\""), 1 },
    { S("</script><script>alert(1)</script>"), 1 },
    { S("\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0A\x0B\x0C\x0D\x0E\x0F"
        "\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1A\x1B\x1C\x1D\x1E\x1F\x7F"), 1 },
    { S("line\xE2\x80\xA8sep\xE2\x80\xA9para"), 1 },
    { S("\xE2\x80\xA8"), 1 },
    { S("\xC2\x85\xC2\x80\xC2\x9F"), 1 },
    { S("\xEF\xBF\xBD\xEF\xBB\xBF"), 1 },
    { S("\xF0\x9F\x98\x80\xE6\x97\xA5\xC3\xA9"), 1 },
    { S("\\u0022\\n"), 1 },
    { S("\x80"), 0 },
    { S("ab\xC3"), 0 },
    { S("\xC3("), 0 },
    { S("\xC0\xAF"), 0 },
    { S("\xED\xA0\x80\xED\xB0\x80"), 0 },
    { S("\xF4\x90\x80\x80"), 0 },
    { S("\xF8\x88\x80\x80\x80"), 0 },
    { S("\xFE\xFF"), 0 },
    { S("\xE2\x80"), 0 },
    { S("ok\xE2\x80\"\\"), 0 },
};

static void check_escaped_text(const char *t, size_t tl, int valid)
{
    struct chat_identity id = ident(S("n"));
    size_t cap = tl * 6 + 512;
    char *body = malloc(cap), *ev = malloc(cap + 128);
    ssize_t n = chat_proto_message_body(body, cap, S("lobby"), &id, t, tl);
    ck_assert_uint_gt(n, 0);
    size_t en = with_head(ev, cap + 128, "message", 1, 2, body, n);
    expect_js_safe(ev, en);
    struct json_field f[JSON_MAX_FIELDS];
    int nf = parse(ev, en, f);
    ck_assert_msg(nf == 7, "escaped text of %zu bytes is not a valid object (%d)", tl, nf);
    const struct json_field *x = need_field(f, nf, "text", JSON_STRING);
    int same = x->val_len == tl && memcmp(x->val, t, tl) == 0;
    int fffd = memmem(x->val, x->val_len, "\xEF\xBF\xBD", 3) != NULL;
    if (valid == 1)
        ck_assert_msg(same, "text did not round-trip (%zu -> %zu bytes)", tl, x->val_len);
    else if (valid == 0)
        ck_assert_msg(fffd, "invalid UTF-8 of %zu bytes not replaced by U+FFFD", tl);
    else
        ck_assert_msg(same || fffd, "random text changed without a U+FFFD");
    /* The other fields were not disturbed by the text. */
    expect_str(f, nf, "room", S("lobby"));
    expect_str(f, nf, "nick", S("n"));

    /* Same text as an error reason and a nick-change old nick. */
    n = chat_proto_presence_body(body, cap, S("lobby"), &id, t, tl, 1);
    en = with_head(ev, cap + 128, "nick", 1, 2, body, n);
    nf = parse(ev, en, f);
    ck_assert_int_eq(nf, 8);
    if (valid == 1)
        expect_str(f, nf, "old", t, tl);
    free(body);
    free(ev);
}

START_TEST(escape_hostile)
{
    check_escaped_text(hostile[_i].s, hostile[_i].len, hostile[_i].valid_utf8);
}
END_TEST

START_TEST(escape_random_bytes)
{
    uint32_t x = 0xBADC0DEu;
    char t[4096];
    for (int n = 0; n < 400; n++) {
        size_t len = rnd_next(&x) % sizeof t;
        for (size_t i = 0; i < len; i++) {
            uint32_t r = rnd_next(&x);
            /* Bias towards the interesting bytes. */
            static const char pick[] = "\"\\\x00\x1f\x7f\xe2\x80\xa8\xc2\xed\xf0\x9f";
            t[i] = (r & 3) ? (char)(r >> 8) : pick[(r >> 8) % (sizeof pick - 1)];
        }
        check_escaped_text(t, len, -1);   /* validity unknown */
    }
}
END_TEST

START_TEST(escape_every_byte)
{
    /* Every single byte value on its own, in the middle of valid text. */
    for (int b = 0; b < 256; b++) {
        char t[3] = { 'a', (char)b, 'z' };
        check_escaped_text(t, 3, b < 0x80);
    }
}
END_TEST

/* ---- too-small buffers ---------------------------------------------------------- */

enum { B_WELCOME, B_ERROR, B_SIMPLE, B_GAP, B_MESSAGE, B_PRESENCE, B_NICK, B_COUNT };

static ssize_t build(int which, char *buf, size_t cap)
{
    static const char nick[] = "n\xC3\xA9\"ck";
    struct chat_identity id = ident(nick, sizeof nick - 1);
    switch (which) {
    case B_WELCOME:
        return chat_proto_welcome(buf, cap, &id, S("lobby"), 12, 345);
    case B_ERROR:
        return chat_proto_error(buf, cap, "bad_type", "\"type\" must be \"message\"");
    case B_SIMPLE:
        return chat_proto_simple(buf, cap, "history_end");
    case B_GAP:
        return chat_proto_gap((uint8_t *)buf, cap, S("lobby"), 10, 20000);
    case B_MESSAGE:
        return chat_proto_message_body(buf, cap, S("room"), &id, S("te\"xt\n\xE2\x80\xA8!"));
    case B_PRESENCE:
        return chat_proto_presence_body(buf, cap, S("room"), &id, NULL, 0, 7);
    default:
        return chat_proto_presence_body(buf, cap, S("room"), &id, S("o\\ld"), 7);
    }
}

START_TEST(builders_too_small)
{
    char full[1024], buf[1024 + 64];
    ssize_t sn = build(_i, full, sizeof full);
    ck_assert_int_gt(sn, 0);
    size_t n = (size_t)sn;
    for (size_t cap = 0; cap <= n + 2; cap++) {
        memset(buf, 0x5A, sizeof buf);
        ssize_t got = build(_i, buf, cap);
        if (cap < n) {
            ck_assert_msg(got == -ENOSPC, "builder %d: cap %zu < %zu returned %zd", _i, cap, n,
                          got);
        } else {
            ck_assert_msg(got == sn, "builder %d: cap %zu >= %zu returned %zd", _i, cap, n, got);
            ck_assert_mem_eq(buf, full, n);
        }
        /* Nothing is written past the capacity, whatever the outcome. */
        for (size_t i = cap; i < sizeof buf; i++)
            ck_assert_msg((unsigned char)buf[i] == 0x5A, "builder %d: cap %zu, byte %zu "
                          "written", _i, cap, i);
    }
}
END_TEST

/* ---- framed events, and in a ring ----------------------------------------------------------- */

static void *ring_mem;

static struct ring *heap_ring(size_t bytes)
{
    bytes = (bytes + 63) & ~(size_t)63;
    ring_mem = aligned_alloc(64, bytes);
    ck_assert_ptr_nonnull(ring_mem);
    struct ring *r = ring_init(ring_mem, bytes);
    ck_assert_ptr_nonnull(r);
    return r;
}

/* Decode a server text frame; returns the payload and sets *plen. */
static const char *frame_payload(const uint8_t *f, size_t n, size_t *plen)
{
    ck_assert_uint_ge(n, 2);
    ck_assert_uint_eq(f[0], 0x81);
    ck_assert_uint_eq(f[1] & 0x80, 0);
    uint64_t len = f[1] & 0x7F;
    size_t hl = 2;
    if (len == 126) {
        len = (uint64_t)f[2] << 8 | f[3];
        hl = 4;
        ck_assert_uint_ge(len, 126);
    } else if (len == 127) {
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | f[2 + i];
        hl = 10;
        ck_assert_uint_gt(len, 0xFFFF);
    }
    ck_assert_uint_eq(hl + len, n);
    *plen = (size_t)len;
    return (const char *)f + hl;
}

/* Frame BODY as event TYPE into R the way a publisher does (the lock is the caller's). */
static uint64_t ring_put(struct ring *r, int kind, const char *room, size_t room_len,
                         int room_idx, const char *type, const char *body, size_t bn, int64_t ts)
{
    uint64_t id = ring_next_id(r);
    size_t len = chat_proto_event_frame_len(type, id, ts, bn);
    ck_assert_uint_le(len, ring_max_entry(r));
    uint8_t *dst = ring_reserve(r, (uint32_t)len, NULL);
    ck_assert_ptr_nonnull(dst);
    ck_assert_int_eq(chat_proto_event_frame(dst, len, type, id, ts, body, bn), (ssize_t)len);
    struct ring_entry meta;
    memset(&meta, 0, sizeof meta);
    meta.ts_ms = ts;
    meta.len = (uint32_t)len;
    meta.kind = (uint8_t)kind;
    meta.room_len = (uint8_t)room_len;
    memcpy(meta.room, room, room_len);
    meta.prev_pos = RING_NO_POS;
    meta.prev_id = (uint64_t)room_idx;     /* carried through as is */
    return ring_commit(r, &meta);
}

START_TEST(event_frame_exact)
{
    struct chat_identity id = ident(S("writer"));
    static char text[70000], body[80000], want[80100];
    static uint8_t frame[100000];
    for (size_t i = 0; i < sizeof text; i++)
        text[i] = (char)('a' + i % 26);
    /* Payloads that need the 7-bit, the 16-bit and the 64-bit length forms. */
    static const size_t sizes[] = { 1, 5, 20, 100, 200, 1000, 65000, 70000 };
    for (int k = 0; k < N(sizes); k++) {
        ssize_t bn = chat_proto_message_body(body, sizeof body, S("lobby"), &id, text, sizes[k]);
        ck_assert_int_gt(bn, 0);
        uint64_t eid = 9007199254740991ull - (uint64_t)k;     /* 2^53 - 1 and below */
        int64_t ts = 1700000000123 + k;
        size_t len = chat_proto_event_frame_len("message", eid, ts, (size_t)bn);
        ssize_t fn = chat_proto_event_frame(frame, sizeof frame, "message", eid, ts, body,
                                            (size_t)bn);
        ck_assert_int_eq(fn, (ssize_t)len);
        size_t pl;
        const char *p = frame_payload(frame, (size_t)fn, &pl);
        size_t wl = with_head(want, sizeof want, "message", eid, ts, body, (size_t)bn);
        ck_assert_uint_eq(pl, wl);
        ck_assert_mem_eq(p, want, wl);
        struct json_field f[JSON_MAX_FIELDS];
        int nf = parse(p, pl, f);
        ck_assert_int_eq(nf, 7);
        expect_num(f, nf, "id", eid);
        expect_num(f, nf, "ts", (uint64_t)ts);
        expect_str(f, nf, "text", text, sizes[k]);
    }
}
END_TEST

START_TEST(event_frame_too_small)
{
    struct chat_identity id = ident(S("p"));
    char body[512];
    uint8_t buf[1024];
    ssize_t bn = chat_proto_presence_body(body, sizeof body, S("r"), &id, S("q"), 3);
    ck_assert_int_gt(bn, 0);
    size_t len = chat_proto_event_frame_len("nick", 12, 34, (size_t)bn);
    for (size_t cap = 0; cap < len; cap++) {
        memset(buf, 0x5A, sizeof buf);
        ck_assert_int_eq(chat_proto_event_frame(buf, cap, "nick", 12, 34, body, (size_t)bn),
                         -ENOSPC);
        for (size_t i = cap; i < sizeof buf; i++)
            ck_assert_uint_eq(buf[i], 0x5A);
    }
    ck_assert_int_eq(chat_proto_event_frame(buf, len, "nick", 12, 34, body, (size_t)bn),
                     (ssize_t)len);
    /* An event needs a body (it closes the object). */
    ck_assert_int_eq(chat_proto_event_frame(buf, sizeof buf, "nick", 12, 34, body, 0), -EINVAL);
    /* A negative clock reading is written as 0, never as "-". */
    ssize_t n = chat_proto_event_frame(buf, sizeof buf, "nick", 1, -5, body, (size_t)bn);
    size_t pl;
    const char *p = frame_payload(buf, (size_t)n, &pl);
    ck_assert_ptr_nonnull(memmem(p, pl, "\"ts\":0,", 7));
}
END_TEST

START_TEST(event_frames_in_ring)
{
    struct ring *r = heap_ring(sizeof(struct ring) + 64 * 1024);
    struct chat_identity id = ident(S("p"));
    char body[512];
    static uint8_t frame[65536];
    ssize_t bn = chat_proto_presence_body(body, sizeof body, S("abcdefghijklmnopqrstuvwxyz012345"),
                                          &id, S("q"), 3);
    ck_assert_int_gt(bn, 0);
    ck_assert_uint_eq(ring_put(r, RING_KIND_PRESENCE, S("abcdefghijklmnopqrstuvwxyz012345"),
                               1023, "nick", body, (size_t)bn, 42), 1);
    uint64_t pos = ring_tail(r);
    struct ring_entry e;
    ssize_t fn = ring_read(r, &pos, &e, frame, sizeof frame);
    ck_assert_int_gt(fn, 0);
    ck_assert_int_eq(e.kind, RING_KIND_PRESENCE);
    ck_assert_uint_eq(e.room_len, 32);
    ck_assert_mem_eq(e.room, "abcdefghijklmnopqrstuvwxyz012345", 32);
    ck_assert_uint_eq(e.prev_id, 1023);
    ck_assert_uint_eq(e.prev_pos, RING_NO_POS);
    ck_assert_uint_eq(e.next_pos, RING_NO_POS);
    size_t pl;
    const char *p = frame_payload(frame, (size_t)fn, &pl);
    struct json_field f[JSON_MAX_FIELDS];
    int nf = parse(p, pl, f);
    ck_assert_int_eq(nf, 8);
    expect_str(f, nf, "type", S("nick"));
    expect_num(f, nf, "id", 1);
    expect_num(f, nf, "ts", 42);
    expect_str(f, nf, "old", S("q"));
    expect_num(f, nf, "online", 3);
    free(ring_mem);
}
END_TEST

START_TEST(event_frames_lapping)
{
    /* Many more events than the ring holds: every readable one is intact. */
    struct ring *r = heap_ring(sizeof(struct ring) + 16 * 1024);
    struct chat_identity id = ident(S("lap"));
    static char body[8192];
    static uint8_t frame[16384];
    uint32_t x = 99;
    uint64_t pos = ring_tail(r), last = 0;
    for (int n = 1; n <= 2000; n++) {
        char text[1500];
        size_t tl = 1 + rnd_next(&x) % sizeof text;
        for (size_t i = 0; i < tl; i++)
            text[i] = (char)('0' + (n + (int)i) % 10);
        ssize_t bn = chat_proto_message_body(body, sizeof body, S("lobby"), &id, text, tl);
        ck_assert_int_gt(bn, 0);
        ck_assert_uint_eq(ring_put(r, RING_KIND_MESSAGE, S("lobby"), 0, "message", body,
                                   (size_t)bn, n), (uint64_t)n);
        if (n % 23 != 0)
            continue;
        for (;;) {
            struct ring_entry e;
            ssize_t fn = ring_read(r, &pos, &e, frame, sizeof frame);
            if (fn == RING_LAPPED) {
                pos = ring_tail(r);
                continue;
            }
            if (fn == RING_EMPTY)
                break;
            ck_assert_int_gt(fn, 0);
            ck_assert_uint_gt(e.id, last);
            last = e.id;
            size_t pl;
            const char *p = frame_payload(frame, (size_t)fn, &pl);
            struct json_field f[JSON_MAX_FIELDS];
            int nf = parse(p, pl, f);
            ck_assert_int_eq(nf, 7);
            expect_num(f, nf, "id", e.id);
            expect_num(f, nf, "ts", e.id);
        }
        ck_assert_uint_eq(last, (uint64_t)n);
    }
    free(ring_mem);
}
END_TEST

Suite *chat_proto_suite(void)
{
    Suite *s = suite_create("chat_proto");
    TCase *tc = tcase_create("names");
    tcase_add_loop_test(tc, room_name_vectors, 0, N(rooms));
    tcase_add_test(tc, room_name_every_byte);
    tcase_add_loop_test(tc, nick_vectors, 0, N(nicks));
    tcase_add_test(tc, nick_lengths);
    tcase_add_test(tc, nick_every_code_point_below_0x800);
    suite_add_tcase(s, tc);

    tc = tcase_create("uuid");
    tcase_add_test(tc, uuid4_known);
    tcase_add_test(tc, uuid4_random);
    tcase_add_test(tc, guest_nick);
    suite_add_tcase(s, tc);

    tc = tcase_create("query");
    tcase_add_loop_test(tc, query_vectors, 0, N(queries));
    tcase_add_test(tc, query_long_nicks);
    suite_add_tcase(s, tc);

    tc = tcase_create("input");
    tcase_add_loop_test(tc, input_vectors, 0, N(inputs));
    tcase_add_test(tc, input_scratch_too_small);
    tcase_add_test(tc, input_random_never_writes);
    tcase_add_test(tc, input_error_texts);
    suite_add_tcase(s, tc);

    tc = tcase_create("events");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, welcome_exact);
    tcase_add_test(tc, welcome_hostile_nick);
    tcase_add_test(tc, simple_and_error_exact);
    tcase_add_test(tc, gap_frame);
    tcase_add_test(tc, gap_frame_long_payload);
    tcase_add_test(tc, message_body_exact);
    tcase_add_test(tc, presence_body_exact);
    tcase_add_loop_test(tc, escape_hostile, 0, N(hostile));
    tcase_add_test(tc, escape_random_bytes);
    tcase_add_test(tc, escape_every_byte);
    tcase_add_loop_test(tc, builders_too_small, 0, B_COUNT);
    suite_add_tcase(s, tc);

    tc = tcase_create("frame");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, event_frame_exact);
    tcase_add_test(tc, event_frame_too_small);
    tcase_add_test(tc, event_frames_in_ring);
    tcase_add_test(tc, event_frames_lapping);
    suite_add_tcase(s, tc);
    return s;
}

/*
 * check_jwt: HS256 compact JWS verification and signing (server/jwt.c).
 * RFC 7515 Appendix A.1 (its payload has no "sub", so a correct verifier
 * gets past the signature and stops at the claims; the same bytes re-signed
 * must give the RFC's token exactly); tokens minted with jwt_sign_hs256()
 * from claim vectors; every header and claim rejection; clock boundaries;
 * every one-bit flip and every truncation of a good token. Tokens are
 * verified from a copy flush against a guard page.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "b64url.h"
#include "guard.h"
#include "jwt.h"

#define S(lit) lit, sizeof(lit) - 1

static const uint8_t key[] = "wschat unit-test key: 32+ bytes of secret";
#define KEY_LEN (sizeof key - 1)

#define HDR "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"

static char tok[2 * JWT_MAX_TOKEN];

static size_t mint(const char *hdr, const char *claims)
{
    ssize_t n = jwt_sign_hs256(tok, sizeof tok, hdr, strlen(hdr), claims, strlen(claims),
                               key, KEY_LEN);
    ck_assert_int_gt(n, 0);
    ck_assert_uint_eq(strlen(tok), (size_t)n);
    return (size_t)n;
}

static int verify_at(const char *t, size_t len, int64_t now, int64_t leeway,
                     struct jwt_claims *c)
{
    const char *in = guard_copy(t, len);
    return jwt_verify(in, len, key, KEY_LEN, now, leeway, c);
}

static int verify(const char *t, size_t len, struct jwt_claims *c)
{
    return verify_at(t, len, 1000, 0, c);
}

/* ---- RFC 7515 Appendix A.1 --------------------------------------------- */

static const char a1_key[] =
    "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";
static const char a1_token[] =
    "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9"
    ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
    ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

START_TEST(rfc7515_a1)
{
    uint8_t k[64];
    ck_assert_int_eq(b64url_decode(k, sizeof k, a1_key, strlen(a1_key)), 64);
    struct jwt_claims c;
    size_t len = strlen(a1_token);
    /* The signature passes; then "sub" is missing. */
    const char *in = guard_copy(a1_token, len);
    ck_assert_int_eq(jwt_verify(in, len, k, 64, 1300819380, 0, &c), JWT_ERR_CLAIMS);
    /* The same token under any other key fails at the signature. */
    for (size_t i = 0; i < 64; i++) {
        k[i] ^= 0x01;
        ck_assert_int_eq(jwt_verify(in, len, k, 64, 0, 0, &c), JWT_ERR_SIGNATURE);
        k[i] ^= 0x01;
    }
    /* Re-signing the RFC's header and payload octets gives its token. */
    static const char h[] = "{\"typ\":\"JWT\",\r\n \"alg\":\"HS256\"}";
    static const char p[] = "{\"iss\":\"joe\",\r\n \"exp\":1300819380,\r\n"
                            " \"http://example.com/is_root\":true}";
    char out[512];
    ck_assert_int_eq(jwt_sign_hs256(out, sizeof out, S(h), S(p), k, 64), (ssize_t)len);
    ck_assert_str_eq(out, a1_token);
}
END_TEST

/* ---- valid tokens -------------------------------------------------------- */

struct good {
    const char *claims;
    const char *sub, *name;
    int64_t exp;
    int have_rooms, nrooms;
    const char *room0;
};

static const char *emoji32 =
    "\xF0\x9F\x98\x80\xF0\x9F\x98\x80\xF0\x9F\x98\x80\xF0\x9F\x98\x80"
    "\xF0\x9F\x98\x80\xF0\x9F\x98\x80\xF0\x9F\x98\x80\xF0\x9F\x98\x80"
    "\xF0\x9F\x98\x80\xF0\x9F\x98\x80\xF0\x9F\x98\x80\xF0\x9F\x98\x80"
    "\xF0\x9F\x98\x80\xF0\x9F\x98\x80\xF0\x9F\x98\x80\xF0\x9F\x98\x80"
    "\xF0\x9F\x98\x80\xF0\x9F\x98\x80\xF0\x9F\x98\x80\xF0\x9F\x98\x80"
    "\xF0\x9F\x98\x80\xF0\x9F\x98\x80\xF0\x9F\x98\x80\xF0\x9F\x98\x80"
    "\xF0\x9F\x98\x80\xF0\x9F\x98\x80\xF0\x9F\x98\x80\xF0\x9F\x98\x80"
    "\xF0\x9F\x98\x80\xF0\x9F\x98\x80\xF0\x9F\x98\x80\xF0\x9F\x98\x80";

#define SUB64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define ROOM32 "abcdefghijklmnopqrstuvwxyz-_0123"
#define NAME32 "Abcdefghijklmnopqrstuvwxyz 12345"

static const struct good goods[] = {
    { "{\"sub\":\"alice\",\"exp\":2000}", "alice", "alice", 2000, 0, 0, NULL },
    { "{\"sub\":\"alice\",\"name\":\"Alice \\u00e9\",\"exp\":1000,\"rooms\":[\"lobby\",\"dev\"]}",
      "alice", "Alice \xC3\xA9", 1000, 1, 2, "lobby" },
    { "{\"rooms\":[],\"exp\":9007199254740992,\"sub\":\"\\u0062ob\"}", "bob", "bob",
      INT64_C(9007199254740992), 1, 0, NULL },
    { "{\"sub\":\"" SUB64 "\",\"name\":\"" NAME32 "\",\"exp\":1000,\"rooms\":[\"" ROOM32 "\"]}",
      SUB64, NAME32, 1000, 1, 1, ROOM32 },
    { " {\n \"iat\": 5, \"iss\": \"x\", \"aud\": [\"a\", 1, null], \"jti\": \"j\", \"ok\": true,"
      " \"nbf\": 1000, \"sub\": \"u\", \"exp\": 1000 } ", "u", "u", 1000, 0, 0, NULL },
    { "{\"sub\":\"a b\",\"exp\":0,\"nbf\":0,\"iat\":1.5e3,\"n\":null}", "a b", "a b", 0, 0, 0,
      NULL },
};

static void check_good(const struct good *g, const struct jwt_claims *c, const char *name)
{
    ck_assert_str_eq(c->sub, g->sub);
    ck_assert_uint_eq(c->sub_len, strlen(g->sub));
    ck_assert_str_eq(c->name, name);
    ck_assert_uint_eq(c->name_len, strlen(name));
    ck_assert(c->exp == g->exp);
    ck_assert_int_eq(c->have_rooms, g->have_rooms);
    ck_assert_int_eq(c->nrooms, g->nrooms);
    if (g->room0 != NULL) {
        ck_assert_str_eq(c->rooms[0].name, g->room0);
        ck_assert_uint_eq(c->rooms[0].len, strlen(g->room0));
    }
}

START_TEST(round_trip)
{
    const struct good *g = &goods[_i];
    size_t len = mint(HDR, g->claims);
    struct jwt_claims c;
    int64_t now = g->exp < 1000 ? g->exp : 1000;
    ck_assert_int_eq(verify_at(tok, len, now, 0, &c), 0);
    check_good(g, &c, g->name);
}
END_TEST

START_TEST(name_of_128_bytes)
{
    char claims[512];
    snprintf(claims, sizeof claims, "{\"sub\":\"s\",\"name\":\"%s\",\"exp\":1000}", emoji32);
    size_t len = mint(HDR, claims);
    struct jwt_claims c;
    ck_assert_int_eq(verify(tok, len, &c), 0);
    ck_assert_uint_eq(c.name_len, 128);
    ck_assert_str_eq(c.name, emoji32);
    /* one more character is one too many */
    snprintf(claims, sizeof claims, "{\"sub\":\"s\",\"name\":\"%s\\u00e9\",\"exp\":1000}",
             emoji32);
    len = mint(HDR, claims);
    ck_assert_int_eq(verify(tok, len, &c), JWT_ERR_CLAIMS);
}
END_TEST

static size_t rooms_claims(char *buf, size_t cap, int n)
{
    size_t w = (size_t)snprintf(buf, cap, "{\"sub\":\"s\",\"exp\":1000,\"rooms\":[");
    for (int k = 0; k < n; k++)
        w += (size_t)snprintf(buf + w, cap - w, "%s\"r%d\"", k ? "," : "", k);
    w += (size_t)snprintf(buf + w, cap - w, "]}");
    return w;
}

START_TEST(rooms_limit)
{
    char claims[2048];
    struct jwt_claims c;
    rooms_claims(claims, sizeof claims, JWT_MAX_ROOMS);
    size_t len = mint(HDR, claims);
    ck_assert_int_eq(verify(tok, len, &c), 0);
    ck_assert_int_eq(c.nrooms, JWT_MAX_ROOMS);
    ck_assert(jwt_room_allowed(&c, S("r0")));
    ck_assert(jwt_room_allowed(&c, S("r63")));
    ck_assert(!jwt_room_allowed(&c, S("r64")));
    rooms_claims(claims, sizeof claims, JWT_MAX_ROOMS + 1);
    len = mint(HDR, claims);
    ck_assert_int_eq(verify(tok, len, &c), JWT_ERR_CLAIMS);
}
END_TEST

START_TEST(room_allowed)
{
    struct jwt_claims c;
    size_t len = mint(HDR, "{\"sub\":\"a\",\"exp\":1000,\"rooms\":[\"lobby\",\"dev\"]}");
    ck_assert_int_eq(verify(tok, len, &c), 0);
    ck_assert_int_eq(jwt_room_allowed(&c, S("lobby")), 1);
    ck_assert_int_eq(jwt_room_allowed(&c, S("dev")), 1);
    ck_assert_int_eq(jwt_room_allowed(&c, S("lobb")), 0);
    ck_assert_int_eq(jwt_room_allowed(&c, S("lobbyx")), 0);
    ck_assert_int_eq(jwt_room_allowed(&c, S("Lobby")), 0);
    ck_assert_int_eq(jwt_room_allowed(&c, S("")), 0);
    len = mint(HDR, "{\"sub\":\"a\",\"exp\":1000,\"rooms\":[]}");
    ck_assert_int_eq(verify(tok, len, &c), 0);
    ck_assert_int_eq(jwt_room_allowed(&c, S("lobby")), 0);
    len = mint(HDR, "{\"sub\":\"a\",\"exp\":1000}");
    ck_assert_int_eq(verify(tok, len, &c), 0);
    ck_assert_int_eq(jwt_room_allowed(&c, S("lobby")), 1);
    ck_assert_int_eq(jwt_room_allowed(&c, S("anything-at-all")), 1);
}
END_TEST

/* ---- rejections, by header and by claims ------------------------------- */

struct bad {
    const char *hdr, *claims;
    int err;
};

#define OKC "{\"sub\":\"a\",\"exp\":1000}"

static const struct bad bads[] = {
    /* alg */
    { "{\"alg\":\"none\"}", OKC, JWT_ERR_ALG },
    { "{\"alg\":\"HS512\"}", OKC, JWT_ERR_ALG },
    { "{\"alg\":\"hs256\"}", OKC, JWT_ERR_ALG },
    { "{\"alg\":\"HS256 \"}", OKC, JWT_ERR_ALG },
    { "{\"alg\":\"HS25\"}", OKC, JWT_ERR_ALG },
    { "{\"alg\":\"RS256\"}", OKC, JWT_ERR_ALG },
    { "{\"alg\":\"HS256\\u0000\"}", OKC, JWT_ERR_ALG },
    { "{}", OKC, JWT_ERR_ALG },
    { "{\"typ\":\"JWT\"}", OKC, JWT_ERR_ALG },
    { "{\"alg\":null}", OKC, JWT_ERR_ALG },
    { "{\"alg\":[\"HS256\"]}", OKC, JWT_ERR_ALG },
    { "{\"Alg\":\"HS256\"}", OKC, JWT_ERR_ALG },
    /* other header rules */
    { "{\"alg\":\"HS256\",\"crit\":[\"exp\"]}", OKC, JWT_ERR_HEADER },
    { "{\"alg\":\"HS256\",\"crit\":[]}", OKC, JWT_ERR_HEADER },
    { "{\"alg\":\"HS256\",\"typ\":1}", OKC, JWT_ERR_HEADER },
    { "{\"alg\":\"HS256\",\"typ\":null}", OKC, JWT_ERR_HEADER },
    { "{\"alg\":\"HS256\",\"alg\":\"HS256\"}", OKC, JWT_ERR_MALFORMED },
    { "{\"alg\":\"HS256\",\"jwk\":{}}", OKC, JWT_ERR_MALFORMED },
    { "\"HS256\"", OKC, JWT_ERR_MALFORMED },
    { "", OKC, JWT_ERR_MALFORMED },
    { "{\"alg\":\"HS256\"", OKC, JWT_ERR_MALFORMED },
    /* sub */
    { HDR, "{\"exp\":1000}", JWT_ERR_CLAIMS },
    { HDR, "{\"sub\":\"\",\"exp\":1000}", JWT_ERR_CLAIMS },
    { HDR, "{\"sub\":\"" SUB64 "x\",\"exp\":1000}", JWT_ERR_CLAIMS },
    { HDR, "{\"sub\":\"a\\nb\",\"exp\":1000}", JWT_ERR_CLAIMS },
    { HDR, "{\"sub\":\"a\\u0000\",\"exp\":1000}", JWT_ERR_CLAIMS },
    { HDR, "{\"sub\":\"\\u007f\",\"exp\":1000}", JWT_ERR_CLAIMS },
    { HDR, "{\"sub\":\"x\\u0085\",\"exp\":1000}", JWT_ERR_CLAIMS },
    { HDR, "{\"sub\":\"\\u009f\",\"exp\":1000}", JWT_ERR_CLAIMS },
    { HDR, "{\"sub\":1,\"exp\":1000}", JWT_ERR_CLAIMS },
    { HDR, "{\"sub\":null,\"exp\":1000}", JWT_ERR_CLAIMS },
    { HDR, "{\"sub\":[\"a\"],\"exp\":1000}", JWT_ERR_CLAIMS },
    /* name */
    { HDR, "{\"sub\":\"a\",\"name\":\"\",\"exp\":1000}", JWT_ERR_CLAIMS },
    { HDR, "{\"sub\":\"a\",\"name\":\"" NAME32 "x\",\"exp\":1000}", JWT_ERR_CLAIMS },
    { HDR, "{\"sub\":\"a\",\"name\":\"a\\tb\",\"exp\":1000}", JWT_ERR_CLAIMS },
    { HDR, "{\"sub\":\"a\",\"name\":7,\"exp\":1000}", JWT_ERR_CLAIMS },
    /* exp */
    { HDR, "{\"sub\":\"a\"}", JWT_ERR_CLAIMS },
    { HDR, "{\"sub\":\"a\",\"exp\":\"2000\"}", JWT_ERR_CLAIMS },
    { HDR, "{\"sub\":\"a\",\"exp\":2000.0}", JWT_ERR_CLAIMS },
    { HDR, "{\"sub\":\"a\",\"exp\":2000.5}", JWT_ERR_CLAIMS },
    { HDR, "{\"sub\":\"a\",\"exp\":2e3}", JWT_ERR_CLAIMS },
    { HDR, "{\"sub\":\"a\",\"exp\":2E+3}", JWT_ERR_CLAIMS },
    { HDR, "{\"sub\":\"a\",\"exp\":-1}", JWT_ERR_CLAIMS },
    { HDR, "{\"sub\":\"a\",\"exp\":-0}", JWT_ERR_CLAIMS },
    { HDR, "{\"sub\":\"a\",\"exp\":9007199254740993}", JWT_ERR_CLAIMS },
    { HDR, "{\"sub\":\"a\",\"exp\":18446744073709551617}", JWT_ERR_CLAIMS },
    { HDR, "{\"sub\":\"a\",\"exp\":1234567890123456789012345678901234567890}", JWT_ERR_CLAIMS },
    { HDR, "{\"sub\":\"a\",\"exp\":true}", JWT_ERR_CLAIMS },
    { HDR, "{\"sub\":\"a\",\"exp\":null}", JWT_ERR_CLAIMS },
    { HDR, "{\"sub\":\"a\",\"exp\":[1000]}", JWT_ERR_CLAIMS },
    { HDR, "{\"sub\":\"a\",\"exp\":01000}", JWT_ERR_MALFORMED },
    /* nbf */
    { HDR, "{\"sub\":\"a\",\"exp\":1000,\"nbf\":\"0\"}", JWT_ERR_CLAIMS },
    { HDR, "{\"sub\":\"a\",\"exp\":1000,\"nbf\":0.5}", JWT_ERR_CLAIMS },
    { HDR, "{\"sub\":\"a\",\"exp\":1000,\"nbf\":-5}", JWT_ERR_CLAIMS },
    { HDR, "{\"sub\":\"a\",\"exp\":1000,\"nbf\":null}", JWT_ERR_CLAIMS },
    { HDR, "{\"sub\":\"a\",\"exp\":1000,\"nbf\":1001}", JWT_ERR_NOT_YET },
    /* rooms */
    { HDR, "{\"sub\":\"a\",\"exp\":1000,\"rooms\":\"lobby\"}", JWT_ERR_CLAIMS },
    { HDR, "{\"sub\":\"a\",\"exp\":1000,\"rooms\":null}", JWT_ERR_CLAIMS },
    { HDR, "{\"sub\":\"a\",\"exp\":1000,\"rooms\":[1]}", JWT_ERR_CLAIMS },
    { HDR, "{\"sub\":\"a\",\"exp\":1000,\"rooms\":[\"a\",null]}", JWT_ERR_CLAIMS },
    { HDR, "{\"sub\":\"a\",\"exp\":1000,\"rooms\":[true]}", JWT_ERR_CLAIMS },
    { HDR, "{\"sub\":\"a\",\"exp\":1000,\"rooms\":[\"\"]}", JWT_ERR_CLAIMS },
    { HDR, "{\"sub\":\"a\",\"exp\":1000,\"rooms\":[\"" ROOM32 "x\"]}", JWT_ERR_CLAIMS },
    { HDR, "{\"sub\":\"a\",\"exp\":1000,\"rooms\":[\"a\\u0001\"]}", JWT_ERR_CLAIMS },
    { HDR, "{\"sub\":\"a\",\"exp\":1000,\"rooms\":[[\"a\"]]}", JWT_ERR_MALFORMED },
    { HDR, "{\"sub\":\"a\",\"exp\":1000,\"rooms\":{\"a\":1}}", JWT_ERR_MALFORMED },
    /* duplicates, shape, size */
    { HDR, "{\"sub\":\"a\",\"sub\":\"b\",\"exp\":1000}", JWT_ERR_MALFORMED },
    { HDR, "{\"sub\":\"a\",\"exp\":1000,\"exp\":5000}", JWT_ERR_MALFORMED },
    { HDR, "{\"sub\":\"a\",\"exp\":1000,\"\\u0065xp\":5000}", JWT_ERR_MALFORMED },
    { HDR, "{\"sub\":\"a\",\"exp\":1000,\"x\":{}}", JWT_ERR_MALFORMED },
    { HDR, "[\"sub\",\"exp\"]", JWT_ERR_MALFORMED },
    { HDR, "", JWT_ERR_MALFORMED },
    { HDR, "{\"sub\":\"a\",\"exp\":1000}x", JWT_ERR_MALFORMED },
    { HDR, "{\"sub\":\"a\",\"exp\":1000,\"1\":1,\"2\":2,\"3\":3,\"4\":4,\"5\":5,\"6\":6,"
           "\"7\":7,\"8\":8,\"9\":9,\"10\":10,\"11\":11,\"12\":12,\"13\":13,\"14\":14,"
           "\"15\":15}", JWT_ERR_CLAIMS },
};

START_TEST(reject)
{
    const struct bad *b = &bads[_i];
    size_t len = mint(b->hdr, b->claims);
    struct jwt_claims c;
    int rc = verify(tok, len, &c);
    ck_assert_msg(rc == b->err, "vector %d (%s %s): %d (%s), want %d", _i, b->hdr, b->claims,
                  rc, jwt_strerror(rc), b->err);
}
END_TEST

/* 16 members is the limit, not an error. */
START_TEST(sixteen_claims)
{
    size_t len = mint(HDR, "{\"sub\":\"a\",\"exp\":1000,\"1\":1,\"2\":2,\"3\":3,\"4\":4,\"5\":5,"
                           "\"6\":6,\"7\":7,\"8\":8,\"9\":9,\"10\":10,\"11\":11,\"12\":12,"
                           "\"13\":13,\"14\":14}");
    struct jwt_claims c;
    ck_assert_int_eq(verify(tok, len, &c), 0);
}
END_TEST

/* alg "none" is refused before the signature is even looked at. */
START_TEST(alg_none_unsigned)
{
    char t[256], h[64], p[64];
    ssize_t hl = b64url_encode(h, sizeof h, S("{\"alg\":\"none\"}"));
    ssize_t pl = b64url_encode(p, sizeof p, S(OKC));
    int n = snprintf(t, sizeof t, "%.*s.%.*s.", (int)hl, h, (int)pl, p);
    struct jwt_claims c;
    ck_assert_int_eq(verify(t, (size_t)n, &c), JWT_ERR_ALG);
}
END_TEST

/* ---- the clock ----------------------------------------------------------- */

struct when {
    int64_t exp, nbf;           /* nbf < 0: absent */
    int64_t now, leeway;
    int err;
};

static const struct when whens[] = {
    { 1000, -1, 1000, 0, 0 },
    { 1000, -1, 1001, 0, JWT_ERR_EXPIRED },
    { 1000, -1, 999, 0, 0 },
    { 1000, -1, 1005, 5, 0 },
    { 1000, -1, 1006, 5, JWT_ERR_EXPIRED },
    { 1000, -1, 1000, -10, 0 },
    { 1000, -1, 1001, -10, JWT_ERR_EXPIRED },
    { 0, -1, 0, 0, 0 },
    { 0, -1, 1, 0, JWT_ERR_EXPIRED },
    { 1000, -1, INT64_MAX, 0, JWT_ERR_EXPIRED },
    { 1000, -1, INT64_MAX, INT64_MAX, JWT_ERR_EXPIRED },
    { 1000, -1, INT64_MIN, 0, 0 },
    { 0, -1, INT64_C(9007199254740992), INT64_MAX, 0 },
    { 0, -1, INT64_C(9007199254740993), INT64_MAX, JWT_ERR_EXPIRED },
    { 2000, 500, 500, 0, 0 },
    { 2000, 500, 499, 0, JWT_ERR_NOT_YET },
    { 2000, 500, 495, 5, 0 },
    { 2000, 500, 494, 5, JWT_ERR_NOT_YET },
    { 2000, 500, 499, -1, JWT_ERR_NOT_YET },
    { 2000, 0, INT64_MIN, 0, JWT_ERR_NOT_YET },
    { 2000, 0, INT64_MIN, INT64_MAX, JWT_ERR_NOT_YET },
    { 2000, 2000, 2000, 0, 0 },
    { 1000, 2000, 500, 0, JWT_ERR_NOT_YET },       /* nbf after exp: never valid */
    { 1000, 2000, 1500, 0, JWT_ERR_EXPIRED },      /* (expiry is checked first) */
    { 1000, 2000, 2000, 0, JWT_ERR_EXPIRED },
};

START_TEST(clock)
{
    const struct when *w = &whens[_i];
    char claims[128];
    if (w->nbf < 0)
        snprintf(claims, sizeof claims, "{\"sub\":\"a\",\"exp\":%lld}", (long long)w->exp);
    else
        snprintf(claims, sizeof claims, "{\"sub\":\"a\",\"exp\":%lld,\"nbf\":%lld}",
                 (long long)w->exp, (long long)w->nbf);
    size_t len = mint(HDR, claims);
    struct jwt_claims c;
    int rc = verify_at(tok, len, w->now, w->leeway, &c);
    ck_assert_msg(rc == w->err, "vector %d: %d (%s)", _i, rc, jwt_strerror(rc));
    if (rc == 0)
        ck_assert(c.exp == w->exp);
}
END_TEST

/* ---- tampering ----------------------------------------------------------- */

#define GOOD "{\"sub\":\"alice\",\"name\":\"Alice\",\"exp\":1000,\"rooms\":[\"lobby\"]}"

START_TEST(bit_flips)
{
    size_t len = mint(HDR, GOOD);
    char t[512];
    memcpy(t, tok, len);
    struct jwt_claims c;
    ck_assert_int_eq(verify(t, len, &c), 0);
    for (size_t i = 0; i < len; i++) {
        for (int b = 0; b < 8; b++) {
            t[i] ^= (char)(1 << b);
            int rc = verify(t, len, &c);
            ck_assert_msg(rc < 0, "flip of bit %d of byte %zu verified", b, i);
            ck_assert_int_ge(rc, JWT_ERR_CRYPTO);
            t[i] ^= (char)(1 << b);
        }
    }
}
END_TEST

START_TEST(truncations)
{
    size_t len = mint(HDR, GOOD);
    char t[512];
    memcpy(t, tok, len);
    struct jwt_claims c;
    for (size_t k = 0; k < len; k++) {
        int rc = verify(t, k, &c);
        ck_assert_msg(rc == JWT_ERR_MALFORMED || rc == JWT_ERR_SIGNATURE,
                      "prefix %zu gave %d", k, rc);
    }
    ck_assert_int_eq(verify(t, len, &c), 0);
}
END_TEST

/* Swap in another header or payload, keep the signature. */
START_TEST(spliced)
{
    char a[512], b[512], t[1024];
    size_t la = mint(HDR, GOOD);
    memcpy(a, tok, la + 1);
    size_t lb = mint("{\"alg\":\"HS256\"}", "{\"sub\":\"mallory\",\"exp\":99999}");
    memcpy(b, tok, lb + 1);
    const char *a1 = strchr(a, '.'), *a2 = strrchr(a, '.');
    const char *b1 = strchr(b, '.'), *b2 = strrchr(b, '.');
    struct jwt_claims c;
    /* b's payload with a's header and signature */
    int n = snprintf(t, sizeof t, "%.*s%.*s%s", (int)(a1 - a), a, (int)(b2 - b1), b1, a2);
    ck_assert_int_eq(verify(t, (size_t)n, &c), JWT_ERR_SIGNATURE);
    /* b's header with a's payload and signature */
    n = snprintf(t, sizeof t, "%.*s%s", (int)(b1 - b), b, a1);
    ck_assert_int_eq(verify(t, (size_t)n, &c), JWT_ERR_SIGNATURE);
    /* a's token with b's signature */
    n = snprintf(t, sizeof t, "%.*s%s", (int)(a2 - a), a, b2);
    ck_assert_int_eq(verify(t, (size_t)n, &c), JWT_ERR_SIGNATURE);
}
END_TEST

/* Shape and spelling of the three parts. */
START_TEST(structure)
{
    size_t len = mint(HDR, GOOD);
    char base[512], t[600];
    memcpy(base, tok, len + 1);
    const char *d2 = strrchr(base, '.');
    size_t sig_at = (size_t)(d2 - base) + 1;
    struct jwt_claims c;
    static const char *shapes[] = { "", ".", "..", "...", "a", "a.b", "a.b.c.d", "..x" };
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++)
        ck_assert_int_eq(verify(shapes[k], strlen(shapes[k]), &c), JWT_ERR_MALFORMED);

    /* a fourth part */
    int n = snprintf(t, sizeof t, "%s.", base);
    ck_assert_int_eq(verify(t, (size_t)n, &c), JWT_ERR_MALFORMED);
    n = snprintf(t, sizeof t, "%s.AAAA", base);
    ck_assert_int_eq(verify(t, (size_t)n, &c), JWT_ERR_MALFORMED);
    /* padding on the signature */
    n = snprintf(t, sizeof t, "%s=", base);
    ck_assert_int_eq(verify(t, (size_t)n, &c), JWT_ERR_MALFORMED);
    /* padding on the header */
    n = snprintf(t, sizeof t, "%.*s=%s", (int)(strchr(base, '.') - base), base,
                 strchr(base, '.'));
    ck_assert_int_eq(verify(t, (size_t)n, &c), JWT_ERR_MALFORMED);
    /* a signature of 33 or 30 bytes; 45 or 41 characters cannot be base64url */
    n = snprintf(t, sizeof t, "%sA", base);
    ck_assert_int_eq(verify(t, (size_t)n, &c), JWT_ERR_SIGNATURE);
    n = snprintf(t, sizeof t, "%.*s", (int)(len - 3), base);
    ck_assert_int_eq(verify(t, (size_t)n, &c), JWT_ERR_SIGNATURE);
    n = snprintf(t, sizeof t, "%sAA", base);
    ck_assert_int_eq(verify(t, (size_t)n, &c), JWT_ERR_MALFORMED);
    n = snprintf(t, sizeof t, "%.*s", (int)(len - 2), base);
    ck_assert_int_eq(verify(t, (size_t)n, &c), JWT_ERR_MALFORMED);
    /* no signature at all */
    n = snprintf(t, sizeof t, "%.*s", (int)sig_at, base);
    ck_assert_int_eq(verify(t, (size_t)n, &c), JWT_ERR_SIGNATURE);
    /* standard-alphabet characters, whitespace */
    memcpy(t, base, len + 1);
    t[sig_at] = '+';
    ck_assert_int_eq(verify(t, len, &c), JWT_ERR_MALFORMED);
    t[sig_at] = '/';
    ck_assert_int_eq(verify(t, len, &c), JWT_ERR_MALFORMED);
    n = snprintf(t, sizeof t, " %s", base);
    ck_assert_int_eq(verify(t, (size_t)n, &c), JWT_ERR_MALFORMED);
    n = snprintf(t, sizeof t, "%s\n", base);
    ck_assert_int_eq(verify(t, (size_t)n, &c), JWT_ERR_MALFORMED);
}
END_TEST

/*
 * 43 characters carry 258 bits for a 256-bit MAC: the last character's two
 * low bits are unused. Setting them re-spells the same bytes, which a
 * canonical decoder refuses: one token, one text.
 */
START_TEST(non_canonical_signature)
{
    static const char alpha[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t len = mint(HDR, GOOD);
    char t[512];
    memcpy(t, tok, len + 1);
    const char *last = strchr(alpha, t[len - 1]);
    ck_assert_ptr_nonnull(last);
    int v = (int)(last - alpha);
    ck_assert_int_eq(v & 3, 0);
    struct jwt_claims c;
    for (int low = 1; low < 4; low++) {
        t[len - 1] = alpha[v | low];
        ck_assert_int_eq(verify(t, len, &c), JWT_ERR_MALFORMED);
    }
}
END_TEST

/* The largest token that fits JWT_MAX_TOKEN verifies; one byte more does not. */
START_TEST(max_token)
{
    static char claims[4096];
    size_t last_ok = 0, first_over = 0;
    for (size_t pad = 2900; pad < 3100 && first_over == 0; pad++) {
        int n = snprintf(claims, sizeof claims, "{\"sub\":\"a\",\"exp\":1000,\"p\":\"%*s\"}",
                         (int)pad, "");
        ck_assert_int_lt(n, (int)sizeof claims);
        size_t len = mint(HDR, claims);
        struct jwt_claims c;
        int rc = verify(tok, len, &c);
        if (len <= JWT_MAX_TOKEN) {
            ck_assert_int_eq(rc, 0);
            last_ok = len;
        } else {
            ck_assert_int_eq(rc, JWT_ERR_MALFORMED);
            first_over = len;
        }
    }
    ck_assert_uint_ge(last_ok, JWT_MAX_TOKEN - 2);
    ck_assert_uint_gt(first_over, JWT_MAX_TOKEN);
}
END_TEST

/* ---- keys, signer, strings ----------------------------------------------- */

START_TEST(keys)
{
    size_t len = mint(HDR, GOOD);
    struct jwt_claims c;
    static const uint8_t other[] = "another key, also 32 bytes or more";
    const char *in = guard_copy(tok, len);
    ck_assert_int_eq(jwt_verify(in, len, other, sizeof other - 1, 1000, 0, &c),
                     JWT_ERR_SIGNATURE);
    /* a prefix of the right key is a different key */
    ck_assert_int_eq(jwt_verify(in, len, key, KEY_LEN - 1, 1000, 0, &c), JWT_ERR_SIGNATURE);
    ck_assert_int_eq(jwt_verify(in, len, key, JWT_MIN_KEY - 1, 1000, 0, &c), JWT_ERR_KEY);
    ck_assert_int_eq(jwt_verify(in, len, key, 0, 1000, 0, &c), JWT_ERR_KEY);
    char out[512];
    ck_assert_int_eq(jwt_sign_hs256(out, sizeof out, S(HDR), S(GOOD), key, JWT_MIN_KEY - 1),
                     -EINVAL);
    ck_assert_int_gt(jwt_sign_hs256(out, sizeof out, S(HDR), S(GOOD), key, JWT_MIN_KEY), 0);
}
END_TEST

START_TEST(sign_capacity)
{
    size_t len = mint(HDR, GOOD);
    char zero[512] = { 0 };
    /* exactly len + 1 (the NUL) fits, flush against the guard page */
    char *dst = guard_copy(zero, len + 1);
    ck_assert_int_eq(jwt_sign_hs256(dst, len + 1, S(HDR), S(GOOD), key, KEY_LEN), (ssize_t)len);
    ck_assert_str_eq(dst, tok);
    dst = guard_copy(zero, len);
    ck_assert_int_eq(jwt_sign_hs256(dst, len, S(HDR), S(GOOD), key, KEY_LEN), -ENOSPC);
    ck_assert_int_eq(jwt_sign_hs256(dst, 0, S(HDR), S(GOOD), key, KEY_LEN), -ENOSPC);
}
END_TEST

START_TEST(strerror_distinct)
{
    static const int codes[] = { 0, JWT_ERR_MALFORMED, JWT_ERR_ALG, JWT_ERR_HEADER,
                                 JWT_ERR_SIGNATURE, JWT_ERR_EXPIRED, JWT_ERR_NOT_YET,
                                 JWT_ERR_CLAIMS, JWT_ERR_KEY, JWT_ERR_CRYPTO, -100 };
    int n = (int)(sizeof codes / sizeof codes[0]);
    for (int i = 0; i < n; i++) {
        ck_assert_ptr_nonnull(jwt_strerror(codes[i]));
        ck_assert_uint_gt(strlen(jwt_strerror(codes[i])), 0);
        for (int j = 0; j < i; j++)
            ck_assert_str_ne(jwt_strerror(codes[i]), jwt_strerror(codes[j]));
    }
}
END_TEST

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

Suite *jwt_suite(void)
{
    Suite *s = suite_create("jwt");
    TCase *tc = tcase_create("valid");
    tcase_add_test(tc, rfc7515_a1);
    tcase_add_loop_test(tc, round_trip, 0, N(goods));
    tcase_add_test(tc, name_of_128_bytes);
    tcase_add_test(tc, rooms_limit);
    tcase_add_test(tc, room_allowed);
    tcase_add_test(tc, sixteen_claims);
    suite_add_tcase(s, tc);

    tc = tcase_create("reject");
    tcase_add_loop_test(tc, reject, 0, N(bads));
    tcase_add_test(tc, alg_none_unsigned);
    tcase_add_loop_test(tc, clock, 0, N(whens));
    suite_add_tcase(s, tc);

    tc = tcase_create("tamper");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, bit_flips);
    tcase_add_test(tc, truncations);
    tcase_add_test(tc, spliced);
    tcase_add_test(tc, structure);
    tcase_add_test(tc, non_canonical_signature);
    tcase_add_test(tc, max_token);
    suite_add_tcase(s, tc);

    tc = tcase_create("api");
    tcase_add_test(tc, keys);
    tcase_add_test(tc, sign_capacity);
    tcase_add_test(tc, strerror_distinct);
    suite_add_tcase(s, tc);
    return s;
}

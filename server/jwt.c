/*
 * jwt: HS256 compact JWS verification (RFC 7515 §5.2) and signing.
 *
 * Order of work, so that hostile input costs little and learns nothing:
 * bound the length, split at the two dots, decode and check the header
 * (alg before any HMAC: "none" or another algorithm never reaches the
 * signature step), then HMAC-SHA256 over "header.payload" compared in
 * constant time, and only then parse the claims.
 *
 * The claims are read with json.c's reader in its JSON_ARRAYS mode rather
 * than with a reader of our own: a claims set is a flat object plus the one
 * array "rooms", and reusing the reader keeps a single implementation of
 * JSON strings (escapes, surrogates, UTF-8) that is already tested and
 * fuzzed; the iterator copies each room into the fixed-size claims.
 */
#include "jwt.h"

#include <limits.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "b64url.h"
#include "json.h"

#define MAC_LEN 32                                  /* SHA-256 */
#define PART_MAX B64URL_DECODED_MAX(JWT_MAX_TOKEN)  /* a decoded header or payload */

static int key_ok(size_t key_len)
{
    return key_len >= JWT_MIN_KEY && key_len <= INT_MAX;
}

static int hmac(uint8_t mac[MAC_LEN], const uint8_t *key, size_t key_len,
                const char *msg, size_t len)
{
    unsigned int n = 0;
    if (HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)msg, len, mac, &n) == NULL ||
        n != MAC_LEN)
        return -EIO;
    return 0;
}

static int str_is(const struct json_field *f, const char *lit)
{
    size_t n = strlen(lit);
    return f->type == JSON_STRING && f->val_len == n && memcmp(f->val, lit, n) == 0;
}

/* RFC 7515 §4.1: the header, decoded into buf. 0 or a jwt_error. */
static int check_header(char *buf, size_t len)
{
    struct json_field f[JWT_MAX_CLAIMS];
    int n = json_parse_object_ex(buf, len, f, JWT_MAX_CLAIMS, JSON_ARRAYS);
    if (n < 0)
        return JWT_ERR_MALFORMED;
    const struct json_field *alg = json_get(f, n, "alg");
    if (alg == NULL || !str_is(alg, "HS256"))
        return JWT_ERR_ALG;
    /* §4.1.11: we understand no extension, so any "crit" is a reject. */
    if (json_get(f, n, "crit") != NULL)
        return JWT_ERR_HEADER;
    const struct json_field *typ = json_get(f, n, "typ");
    if (typ != NULL && typ->type != JSON_STRING)
        return JWT_ERR_HEADER;
    return 0;
}

/*
 * 1 if s[0..len) (valid UTF-8, as the JSON reader guarantees) has no C0
 * control, DEL or C1 control (U+0080..U+009F, encoded C2 80..C2 9F).
 */
static int printable(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < len; i++) {
        if (u[i] < 0x20 || u[i] == 0x7F)
            return 0;
        if (u[i] == 0xC2 && i + 1 < len && u[i + 1] <= 0x9F)
            return 0;
    }
    return 1;
}

/* Code points in valid UTF-8: the bytes that are not continuation bytes. */
static size_t utf8_chars(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += ((unsigned char)s[i] & 0xC0) != 0x80;
    return n;
}

/*
 * A NumericDate (RFC 7519 §2) as wschat takes it: the raw JSON number text
 * of an integer 0..JWT_MAX_SECONDS. The JSON grammar already excludes
 * leading zeros; a sign, fraction or exponent is refused here. 0 or -1.
 */
static int seconds(const struct json_field *f, int64_t *out)
{
    if (f->type != JSON_NUMBER || f->val_len == 0 || f->val_len > 16)
        return -1;
    int64_t v = 0;
    for (size_t i = 0; i < f->val_len; i++) {
        char ch = f->val[i];
        if (ch < '0' || ch > '9')
            return -1;
        v = v * 10 + (ch - '0');            /* 16 digits cannot overflow */
    }
    if (v > JWT_MAX_SECONDS)
        return -1;
    *out = v;
    return 0;
}

static int text_claim(const struct json_field *f, size_t max_bytes, size_t max_chars,
                      char *dst, size_t *dst_len)
{
    if (f->type != JSON_STRING || f->val_len == 0 || f->val_len > max_bytes ||
        !printable(f->val, f->val_len) || utf8_chars(f->val, f->val_len) > max_chars)
        return -1;
    memcpy(dst, f->val, f->val_len);
    dst[f->val_len] = '\0';
    *dst_len = f->val_len;
    return 0;
}

static int read_rooms(const struct json_field *f, struct jwt_claims *out)
{
    if (f->type != JSON_ARRAY)
        return -1;
    struct json_array_iter it;
    json_array_begin(&it, f);
    out->have_rooms = 1;
    out->nrooms = 0;
    for (;;) {
        char name[JWT_ROOM_MAX];
        size_t len;
        int type;
        int rc = json_array_next(&it, name, sizeof name, &len, &type);
        if (rc == 0)
            return 0;
        if (rc < 0 || type != JSON_STRING || len == 0 || !printable(name, len) ||
            out->nrooms == JWT_MAX_ROOMS)
            return -1;
        struct jwt_room *r = &out->rooms[out->nrooms++];
        memcpy(r->name, name, len);
        r->name[len] = '\0';
        r->len = (uint8_t)len;
    }
}

/* The claims, decoded into buf, into *out; then the clock. 0 or a jwt_error. */
static int check_claims(char *buf, size_t len, int64_t now, int64_t leeway,
                        struct jwt_claims *out)
{
    struct json_field f[JWT_MAX_CLAIMS];
    int n = json_parse_object_ex(buf, len, f, JWT_MAX_CLAIMS, JSON_ARRAYS);
    if (n == -2)
        return JWT_ERR_CLAIMS;
    if (n < 0)
        return JWT_ERR_MALFORMED;
    const struct json_field *sub = json_get(f, n, "sub");
    const struct json_field *name = json_get(f, n, "name");
    const struct json_field *exp = json_get(f, n, "exp");
    const struct json_field *nbf = json_get(f, n, "nbf");
    const struct json_field *rooms = json_get(f, n, "rooms");
    int64_t nbf_s = 0;
    if (sub == NULL || text_claim(sub, JWT_SUB_MAX, JWT_SUB_MAX, out->sub, &out->sub_len) != 0)
        return JWT_ERR_CLAIMS;
    if (name == NULL) {
        memcpy(out->name, out->sub, out->sub_len + 1);
        out->name_len = out->sub_len;
    } else if (text_claim(name, JWT_NAME_MAX_BYTES, JWT_NAME_MAX, out->name,
                          &out->name_len) != 0) {
        return JWT_ERR_CLAIMS;
    }
    if (exp == NULL || seconds(exp, &out->exp) != 0)
        return JWT_ERR_CLAIMS;
    if (nbf != NULL && seconds(nbf, &nbf_s) != 0)
        return JWT_ERR_CLAIMS;
    if (rooms != NULL && read_rooms(rooms, out) != 0)
        return JWT_ERR_CLAIMS;
    /* Both sides stay within +-2^54: no overflow for any NOW. */
    if (now > out->exp + leeway)
        return JWT_ERR_EXPIRED;
    if (nbf != NULL && nbf_s - leeway > now)
        return JWT_ERR_NOT_YET;
    return 0;
}

int jwt_verify(const char *token, size_t len, const uint8_t *key, size_t key_len,
               int64_t now, int64_t leeway, struct jwt_claims *out)
{
    char header[PART_MAX], payload[PART_MAX];
    uint8_t sig[MAC_LEN], mac[MAC_LEN];
    if (!key_ok(key_len))
        return JWT_ERR_KEY;
    memset(out, 0, sizeof *out);
    if (len == 0 || len > JWT_MAX_TOKEN)
        return JWT_ERR_MALFORMED;
    const char *dot1 = memchr(token, '.', len);
    if (dot1 == NULL)
        return JWT_ERR_MALFORMED;
    const char *p = dot1 + 1;
    const char *end = token + len;
    const char *dot2 = memchr(p, '.', (size_t)(end - p));
    if (dot2 == NULL || memchr(dot2 + 1, '.', (size_t)(end - dot2 - 1)) != NULL)
        return JWT_ERR_MALFORMED;

    ssize_t hlen = b64url_decode(header, sizeof header, token, (size_t)(dot1 - token));
    if (hlen < 0)
        return JWT_ERR_MALFORMED;
    int rc = check_header(header, (size_t)hlen);
    if (rc != 0)
        return rc;

    ssize_t slen = b64url_decode(sig, sizeof sig, dot2 + 1, (size_t)(end - dot2 - 1));
    if (slen == -EINVAL)
        return JWT_ERR_MALFORMED;
    if (slen != MAC_LEN)
        return JWT_ERR_SIGNATURE;       /* also -ENOSPC: longer than a MAC */
    if (hmac(mac, key, key_len, token, (size_t)(dot2 - token)) != 0)
        return JWT_ERR_CRYPTO;
    if (CRYPTO_memcmp(sig, mac, MAC_LEN) != 0)
        return JWT_ERR_SIGNATURE;

    ssize_t plen = b64url_decode(payload, sizeof payload, p, (size_t)(dot2 - p));
    if (plen < 0)
        return JWT_ERR_MALFORMED;
    if (leeway < 0)
        leeway = 0;
    if (leeway > JWT_MAX_SECONDS)
        leeway = JWT_MAX_SECONDS;
    return check_claims(payload, (size_t)plen, now, leeway, out);
}

ssize_t jwt_sign_hs256(char *dst, size_t cap, const char *header, size_t hlen,
                       const char *claims, size_t clen, const uint8_t *key, size_t key_len)
{
    if (!key_ok(key_len))
        return -EINVAL;
    if (hlen > SSIZE_MAX / 4 || clen > SSIZE_MAX / 4)
        return -ENOSPC;
    size_t eh = B64URL_ENCODED_LEN(hlen), ec = B64URL_ENCODED_LEN(clen);
    size_t total = eh + 1 + ec + 1 + B64URL_ENCODED_LEN(MAC_LEN);
    if (total >= cap)
        return -ENOSPC;                 /* the NUL needs a byte too */
    size_t w = 0;
    w += (size_t)b64url_encode(dst + w, cap - w, header, hlen);
    dst[w++] = '.';
    w += (size_t)b64url_encode(dst + w, cap - w, claims, clen);
    uint8_t mac[MAC_LEN];
    int rc = hmac(mac, key, key_len, dst, w);
    if (rc != 0)
        return rc;
    dst[w++] = '.';
    w += (size_t)b64url_encode(dst + w, cap - w, mac, MAC_LEN);
    dst[w] = '\0';
    return (ssize_t)w;
}

int jwt_room_allowed(const struct jwt_claims *c, const char *room, size_t len)
{
    if (!c->have_rooms)
        return 1;
    for (int k = 0; k < c->nrooms; k++)
        if (c->rooms[k].len == len && memcmp(c->rooms[k].name, room, len) == 0)
            return 1;
    return 0;
}

const char *jwt_strerror(int err)
{
    switch (err) {
    case 0:                 return "ok";
    case JWT_ERR_MALFORMED: return "malformed token";
    case JWT_ERR_ALG:       return "unsupported alg";
    case JWT_ERR_HEADER:    return "unsupported header";
    case JWT_ERR_SIGNATURE: return "bad signature";
    case JWT_ERR_EXPIRED:   return "expired";
    case JWT_ERR_NOT_YET:   return "not yet valid";
    case JWT_ERR_CLAIMS:    return "bad claims";
    case JWT_ERR_KEY:       return "key too short";
    case JWT_ERR_CRYPTO:    return "HMAC failed";
    default:                return "unknown error";
    }
}

/*
 * jwt: verification of compact JWS tokens signed with HS256 (RFC 7515,
 * RFC 7519, RFC 7518 §3.2) that let a client in as a given user, and the
 * signing that mints them (tests, tooling). Pure: no I/O, no clock (the
 * caller passes the time), no allocation; the claims land in a fixed-size
 * struct. HMAC-SHA256 comes from libcrypto.
 *
 * Only what wschat needs is accepted: the header must say "alg":"HS256"
 * exactly (never "none", never another algorithm: the key decides nothing
 * by itself) and carry no "crit"; the claims are read strictly (see
 * jwt_verify()). The header is checked before any HMAC is computed, the
 * signature before the claims are parsed.
 */
#ifndef WSM_JWT_H
#define WSM_JWT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "result.h"

#define JWT_MAX_TOKEN     4096  /* bytes of a whole token */
#define JWT_MIN_KEY       32    /* RFC 7518 §3.2: at least the hash size */
#define JWT_SUB_MAX       64    /* bytes */
#define JWT_NAME_MAX      32    /* characters (code points) */
#define JWT_NAME_MAX_BYTES 128
#define JWT_ROOM_MAX      32    /* bytes of one room name */
#define JWT_MAX_ROOMS     64
#define JWT_MAX_CLAIMS    16    /* members of the header or the claims object */
#define JWT_MAX_SECONDS   (INT64_C(1) << 53)    /* exp, nbf, leeway: exact in a double */

/* Negative results of jwt_verify(), each a distinct reason for the log. */
enum jwt_error {
    JWT_ERR_MALFORMED = -1,     /* too long, not 3 parts, bad base64url, bad JSON, dup keys */
    JWT_ERR_ALG       = -2,     /* header alg missing or not exactly "HS256" */
    JWT_ERR_HEADER    = -3,     /* header has "crit", or a "typ" that is not a string */
    JWT_ERR_SIGNATURE = -4,     /* signature is not the HMAC of the token under the key */
    JWT_ERR_EXPIRED   = -5,     /* now > exp + leeway */
    JWT_ERR_NOT_YET   = -6,     /* nbf > now + leeway */
    JWT_ERR_CLAIMS    = -7,     /* a required claim missing, or one out of its rules */
    JWT_ERR_KEY       = -8,     /* the caller's key is shorter than JWT_MIN_KEY */
    JWT_ERR_CRYPTO    = -9      /* libcrypto failed to compute the HMAC */
};

struct jwt_room {
    char    name[JWT_ROOM_MAX + 1]; /* NUL-terminated */
    uint8_t len;
};

struct jwt_claims {
    char    sub[JWT_SUB_MAX + 1];   /* NUL-terminated (no NUL inside: no controls) */
    size_t  sub_len;
    char    name[JWT_NAME_MAX_BYTES + 1];   /* "name", or a copy of sub */
    size_t  name_len;
    int64_t exp;                    /* unix seconds */
    int     have_rooms;             /* 0: "rooms" absent, every room allowed */
    int     nrooms;                 /* with have_rooms: rooms[0..nrooms), maybe none */
    struct jwt_room rooms[JWT_MAX_ROOMS];
};

/*
 * Verify TOKEN[0..len) under KEY[0..key_len) at NOW (unix seconds), allowing
 * LEEWAY seconds of clock skew (clamped to 0..JWT_MAX_SECONDS), and fill
 * *out. Returns 0 or a negative enum jwt_error (never an errno value); *out
 * is unspecified after a failure.
 *
 * Header: a JSON object, "alg":"HS256", no "crit", "typ" a string if there.
 * Claims: a JSON object of at most JWT_MAX_CLAIMS members, no duplicates;
 *   "sub"   string, 1..JWT_SUB_MAX bytes, no control characters (required);
 *   "name"  string, 1..JWT_NAME_MAX characters, no control characters;
 *   "exp"   integer 0..2^53, digits only: no sign, fraction or exponent
 *           (required); expired when now > exp + leeway;
 *   "nbf"   the same form if present; not yet valid when nbf > now + leeway;
 *   "rooms" array of at most JWT_MAX_ROOMS strings, each 1..JWT_ROOM_MAX
 *           bytes without control characters; [] allows no room at all.
 * Other members (iat, iss, aud, jti...) may be any flat value (strings,
 * numbers, literals, flat arrays of those) and are ignored; objects are
 * not accepted anywhere.
 */
int jwt_verify(const char *token, size_t len, const uint8_t *key, size_t key_len,
               int64_t now, int64_t leeway, struct jwt_claims *out);

/*
 * Mint a token from the JSON texts HEADER[0..hlen) and CLAIMS[0..clen),
 * taken as they are (not checked, so tests can sign anything), signed with
 * HMAC-SHA256 under KEY. Writes the token and a NUL into dst[0..cap).
 * Returns the token's length, -ENOSPC when it does not fit, -EINVAL when
 * the key is shorter than JWT_MIN_KEY, -EIO if libcrypto fails.
 */
ssize_t jwt_sign_hs256(char *dst, size_t cap, const char *header, size_t hlen,
                       const char *claims, size_t clen, const uint8_t *key, size_t key_len);

/* 1 if C lets its holder into ROOM[0..len): no "rooms" claim, or listed. */
int jwt_room_allowed(const struct jwt_claims *c, const char *room, size_t len);

/* A short reason for a jwt_verify() result, for log lines ("expired"). */
const char *jwt_strerror(int err);

#endif

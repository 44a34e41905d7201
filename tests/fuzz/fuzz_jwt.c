/*
 * fuzz_jwt: libFuzzer target for server/jwt.c (and b64url.c under it).
 *
 * 1. The input as a token, in an exact-size heap copy, under a fixed key:
 *    any result is one of the documented codes; a success has claims that
 *    keep their bounds and rules.
 * 2. Round trip: the input split into a claims JSON text (signed with
 *    jwt_sign_hs256 under a good header) must either verify to the claims
 *    the signed text says (sub, exp) or be rejected for its claims or
 *    shape, never for its signature or alg.
 * 3. b64url: decode(encode(x)) == x.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "b64url.h"
#include "jwt.h"

#define CHECK(cond) do { if (!(cond)) abort(); } while (0)

static const uint8_t key[] = "fuzzing key, thirty-two bytes or more";
#define KEY_LEN (sizeof key - 1)

static void check_claims(const struct jwt_claims *c)
{
    CHECK(c->sub_len >= 1 && c->sub_len <= JWT_SUB_MAX && c->sub[c->sub_len] == '\0');
    CHECK(strlen(c->sub) == c->sub_len);
    CHECK(c->name_len >= 1 && c->name_len <= JWT_NAME_MAX_BYTES);
    CHECK(strlen(c->name) == c->name_len);
    CHECK(c->exp >= 0 && c->exp <= JWT_MAX_SECONDS);
    CHECK(c->nrooms >= 0 && c->nrooms <= JWT_MAX_ROOMS);
    CHECK(c->have_rooms || c->nrooms == 0);
    for (int k = 0; k < c->nrooms; k++) {
        CHECK(c->rooms[k].len >= 1 && c->rooms[k].len <= JWT_ROOM_MAX);
        CHECK(jwt_room_allowed(c, c->rooms[k].name, c->rooms[k].len));
    }
}

static void as_token(const uint8_t *data, size_t size)
{
    char *t = malloc(size ? size : 1);
    CHECK(t != NULL);
    memcpy(t, data, size);
    struct jwt_claims c;
    int rc = jwt_verify(t, size, key, KEY_LEN, 1000, 30, &c);
    CHECK(rc <= 0 && rc >= JWT_ERR_CRYPTO && rc != JWT_ERR_KEY && rc != JWT_ERR_CRYPTO);
    if (rc == 0)
        check_claims(&c);
    free(t);
}

static void round_trip(const uint8_t *data, size_t size)
{
    static const char hdr[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    char tok[JWT_MAX_TOKEN + 64];
    ssize_t n = jwt_sign_hs256(tok, sizeof tok, hdr, sizeof hdr - 1, (const char *)data, size,
                               key, KEY_LEN);
    if (n < 0) {
        CHECK(n == -ENOSPC);
        return;
    }
    struct jwt_claims c;
    int rc = jwt_verify(tok, (size_t)n, key, KEY_LEN, 1000, 30, &c);
    if ((size_t)n > JWT_MAX_TOKEN) {
        CHECK(rc == JWT_ERR_MALFORMED);
        return;
    }
    CHECK(rc != JWT_ERR_SIGNATURE && rc != JWT_ERR_ALG && rc != JWT_ERR_HEADER);
    if (rc != 0)
        return;
    check_claims(&c);
    /* The signed text holds the verified sub and exp. JSON may spell any
     * character of the sub as an escape ("b\u004e" is "bN"), so the sub
     * must appear verbatim only when the text has no escape at all. */
    int plain = memchr(data, '\\', size) == NULL;
    for (size_t i = 0; i < c.sub_len; i++)
        if (c.sub[i] == '"' || c.sub[i] == '\\' || c.sub[i] == '/' || (unsigned char)c.sub[i] >= 0x80)
            plain = 0;
    if (plain)
        CHECK(memmem(data, size, c.sub, c.sub_len) != NULL);
    CHECK(c.exp + 30 >= 1000);
    /* Verifying again gives the same claims. */
    struct jwt_claims d;
    CHECK(jwt_verify(tok, (size_t)n, key, KEY_LEN, 1000, 30, &d) == 0);
    CHECK(memcmp(&c, &d, sizeof c) == 0);
}

static void b64(const uint8_t *data, size_t size)
{
    if (size > 3000)
        return;
    char txt[4096];
    uint8_t back[3000];
    ssize_t n = b64url_encode(txt, sizeof txt, data, size);
    CHECK(n == (ssize_t)B64URL_ENCODED_LEN(size));
    CHECK(b64url_decode(back, sizeof back, txt, (size_t)n) == (ssize_t)size);
    CHECK(memcmp(back, data, size) == 0);
    /* and the raw input as text: whatever decodes re-encodes to itself */
    ssize_t m = b64url_decode(back, sizeof back, (const char *)data, size);
    if (m >= 0) {
        CHECK(b64url_encode(txt, sizeof txt, back, (size_t)m) == (ssize_t)size);
        CHECK(memcmp(txt, data, size) == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    as_token(data, size);
    round_trip(data, size);
    b64(data, size);
    return 0;
}

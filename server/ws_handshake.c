/*
 * ws_handshake: validate an upgrade request and build the 101 (RFC 6455 §4.2).
 *
 * Checks run in a fixed order so a request with several faults always gets
 * the same status: method (405), version and headers (400), then
 * Sec-WebSocket-Version (426) before the key (400), since a client speaking
 * another version may shape its key differently and 426 tells it what we
 * speak (§4.2.2 item 4), and Origin (403) last. Called by the worker once
 * the router has picked a WebSocket path; nothing here does I/O or logs.
 */
#include "ws_handshake.h"

#include <string.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "ascii.h"

#define GUID_LEN (sizeof WS_GUID - 1)
#define KEY_STACK_MAX 128   /* every real key is 24; longer ones take EVP */

/* Does any field named NAME list TOKEN? Repeated fields form one list
 * (RFC 9110 §5.3), so "Connection: keep-alive" + "Connection: Upgrade" counts. */
static int any_has_token(const struct http_request *req, const char *name,
                         const char *token)
{
    for (size_t i = 0; i < req->num_headers; i++) {
        const struct http_header *h = &req->headers[i];
        if (http_slice_ieq(h->name, h->name_len, name)
            && http_has_token(h->value, h->value_len, token))
            return 1;
    }
    return 0;
}

static int is_b64_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
        || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

/*
 * §4.1: the key is base64 (RFC 4648 §4, standard alphabet, padded) of 16
 * bytes, which is always 22 characters plus "==". The unused low bits of
 * the last character are not checked: the key still decodes to 16 bytes.
 */
static int key_ok(const char *key, size_t len)
{
    if (len != 24 || key[22] != '=' || key[23] != '=')
        return 0;
    for (size_t i = 0; i < 22; i++)
        if (!is_b64_char((unsigned char)key[i]))
            return 0;
    return 1;
}

/* §4.2.2 item 1 / §10.2: the Origin is compared as a whole, ASCII
 * case-insensitively, against the configured list. */
static int origin_ok(const struct http_request *req, const struct ws_origins *origins)
{
    if (origins == NULL || origins->count <= 0)
        return 1;
    /* Browsers send exactly one Origin (RFC 6454 §7); two is not a browser. */
    if (http_count_header(req, "Origin") != 1)
        return 0;
    const struct http_header *o = http_find_header(req, "Origin");
    for (int i = 0; i < origins->count; i++) {
        const char *allowed = origins->list[i];
        size_t n = strnlen(allowed, sizeof origins->list[i]);
        if (n != o->value_len)
            continue;
        size_t j = 0;
        while (j < n && ascii_lower(allowed[j]) == ascii_lower(o->value[j]))
            j++;
        if (j == n)
            return 1;
    }
    return 0;
}

int ws_handshake_check(const struct http_request *req,
                       const struct ws_origins *origins,
                       char accept[WS_ACCEPT_LEN + 1])
{
    /* §4.2.1 items 1-6 in order, version (item 6) moved after item 5. */
    if (!(req->method_len == 3 && memcmp(req->method, "GET", 3) == 0))
        return 405;
    if (req->minor_version < 1)
        return 400;
    if (http_count_header(req, "Host") != 1)
        return 400;
    if (!any_has_token(req, "Upgrade", "websocket"))
        return 400;
    if (!any_has_token(req, "Connection", "upgrade"))
        return 400;

    /* Missing is treated like a wrong version: either way the client needs
     * to learn that we speak 13 (the caller adds Sec-WebSocket-Version). */
    const struct http_header *v = http_find_header(req, "Sec-WebSocket-Version");
    if (v == NULL || http_count_header(req, "Sec-WebSocket-Version") != 1
        || !(v->value_len == 2 && memcmp(v->value, "13", 2) == 0))
        return 426;

    const struct http_header *k = http_find_header(req, "Sec-WebSocket-Key");
    if (k == NULL || http_count_header(req, "Sec-WebSocket-Key") != 1
        || !key_ok(k->value, k->value_len))
        return 400;

    if (!origin_ok(req, origins))
        return 403;

    ws_accept_key(k->value, k->value_len, accept);
    return 0;
}

void ws_accept_key(const char *key, size_t key_len, char out[WS_ACCEPT_LEN + 1])
{
    unsigned char md[SHA_DIGEST_LENGTH];

    if (key_len <= KEY_STACK_MAX) {
        unsigned char cat[KEY_STACK_MAX + GUID_LEN];
        if (key_len > 0)
            memcpy(cat, key, key_len);
        memcpy(cat + key_len, WS_GUID, GUID_LEN);
        SHA1(cat, key_len + GUID_LEN, md);
    } else {
        /* Only direct callers get here; the handshake admits 24-char keys. */
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        unsigned int mdlen = 0;
        if (ctx == NULL || !EVP_DigestInit_ex(ctx, EVP_sha1(), NULL)
            || !EVP_DigestUpdate(ctx, key, key_len)
            || !EVP_DigestUpdate(ctx, WS_GUID, GUID_LEN)
            || !EVP_DigestFinal_ex(ctx, md, &mdlen))
            memset(md, 0, sizeof md);   /* out of memory: a wrong accept
                                         * makes the client fail closed */
        EVP_MD_CTX_free(ctx);
    }
    /* 20 bytes encode to 28 characters; EVP_EncodeBlock adds the NUL. */
    EVP_EncodeBlock((unsigned char *)out, md, SHA_DIGEST_LENGTH);
}

size_t ws_handshake_response(char *dst, size_t cap, const char accept[WS_ACCEPT_LEN + 1])
{
    static const char head[] =
        "HTTP/1.1 101 Switching Protocols\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        "Sec-WebSocket-Accept: ";
    static const char tail[] = "\r\n\r\n";
    size_t hl = sizeof head - 1, tl = sizeof tail - 1;
    size_t n = hl + WS_ACCEPT_LEN + tl;

    /* Exact fit allowed: the result is a byte count, not a C string. */
    if (cap < n)
        return 0;
    memcpy(dst, head, hl);
    memcpy(dst + hl, accept, WS_ACCEPT_LEN);
    memcpy(dst + hl + WS_ACCEPT_LEN, tail, tl);
    return n;
}

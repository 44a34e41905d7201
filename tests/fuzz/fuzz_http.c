/*
 * fuzz_http: http_parse_request() must give the same answer however the
 * bytes arrive. Each input is parsed whole and then fed as growing prefixes
 * (each in its own exact-size allocation, so ASan sees any read past len)
 * with prev_len; return value and every slice, as an offset, must match.
 * Successful parses are also checked for shape and run through
 * ws_handshake_check() and the response builders.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "ws_handshake.h"
#include "http_norm.h"

static ssize_t parse_copy(const uint8_t *data, size_t len, size_t prev, size_t max,
                          struct http_request *req, struct norm *n)
{
    char *b = malloc(len ? len : 1);
    assert(b != NULL);
    memcpy(b, data, len);
    ssize_t rc = http_parse_request(b, len, prev, max, req);
    normalize(b, rc, req, n);
    free(b);
    return rc;
}

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static void check_shape(const char *b, size_t len, size_t max, ssize_t rc,
                        const struct http_request *r)
{
    if (rc == 0) {
        assert(len <= max);
        return;
    }
    if (rc < 0) {
        int st = http_error_status(rc);
        assert(st == 400 || st == 414 || st == 431 || st == 505);
        return;
    }
    size_t end = (size_t)rc;
    assert(end <= len && end <= max && b[end - 1] == '\n');
    assert(r->method_len > 0 && r->target_len > 0);
    assert(r->method >= b && r->method + r->method_len <= b + end);
    assert(r->target > r->method && r->target + r->target_len <= b + end);
    assert(r->minor_version >= 0 && r->minor_version <= 9);
    assert(r->num_headers <= HTTP_MAX_HEADERS);
    for (size_t i = 0; i < r->num_headers; i++) {
        const struct http_header *h = &r->headers[i];
        assert(h->name_len > 0 && h->name > r->target);
        assert(h->value >= h->name + h->name_len + 1 && h->value + h->value_len <= b + end);
        assert(memchr(h->name, ':', h->name_len) == NULL);
        if (h->value_len > 0)
            assert(!is_ows(h->value[0]) && !is_ows(h->value[h->value_len - 1]));
        assert(memchr(h->value, '\r', h->value_len) == NULL);
        assert(memchr(h->value, '\n', h->value_len) == NULL);
    }
}

static void handshake(const struct http_request *r)
{
    static const char allowed[][256] = { "http://example.com" };
    const struct ws_origins any = { NULL, 0 }, one = { allowed, 1 };
    char accept[WS_ACCEPT_LEN + 1], out[512];

    int st = ws_handshake_check(r, &any, accept);
    assert(st == 0 || st == 400 || st == 405 || st == 426);
    if (st == 0) {
        assert(strlen(accept) == WS_ACCEPT_LEN);
        assert(ws_handshake_response(out, sizeof out, accept) > 0);
    }
    int st2 = ws_handshake_check(r, &one, accept);
    /* the origin list can only turn a success into 403 */
    assert(st2 == st || (st == 0 && st2 == 403));
    assert(http_error_response(out, sizeof out, st2 ? st2 : 400,
                               "Sec-WebSocket-Version: 13\r\n") > 0);
}

static void run(const uint8_t *data, size_t size, size_t max)
{
    static struct norm whole, part;
    struct http_request req;

    char *b = malloc(size ? size : 1);
    assert(b != NULL);
    memcpy(b, data, size);
    ssize_t rc = http_parse_request(b, size, 0, max, &req);
    normalize(b, rc, &req, &whole);
    check_shape(b, size, max, rc, &req);
    if (rc > 0)
        handshake(&req);
    free(b);

    /* growing prefixes; step sizes taken from the data so splits vary */
    size_t prev = 0, k = 0;
    for (size_t i = 0; k < size; i++) {
        k += 1 + (size_t)(data[i % size] % 7);
        if (k > size)
            k = size;
        ssize_t r = parse_copy(data, k, prev, max, &req, &part);
        if (r != 0 || k == size) {
            assert(memcmp(&whole, &part, sizeof whole) == 0);
            break;
        }
        prev = k;
    }

    /* one split point: a prefix, then the whole */
    if (size > 1) {
        size_t cut = 1 + (size_t)data[0] * 31 % (size - 1);
        ssize_t r = parse_copy(data, cut, 0, max, &req, &part);
        if (r == 0)
            parse_copy(data, size, cut, max, &req, &part);
        assert(memcmp(&whole, &part, sizeof whole) == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    run(data, size, 1024);
    /* a limit inside the input exercises 414/431 at every length */
    if (size > 0)
        run(data, size, size - 1 - (size_t)data[size - 1] % size);
    return 0;
}

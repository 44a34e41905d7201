/*
 * http_norm: an http_parse_request() result with its slices turned into
 * offsets from the buffer start, so results parsed from buffers at
 * different addresses (whole, byte by byte, every split) compare with
 * memcmp. Shared by the unit suite and the fuzz target.
 */
#ifndef WSM_TEST_HTTP_NORM_H
#define WSM_TEST_HTTP_NORM_H

#include <string.h>
#include <sys/types.h>
#include "http.h"

struct norm {
    ssize_t rc;
    size_t moff, mlen, toff, tlen, nh;
    int minor;
    size_t h[HTTP_MAX_HEADERS][4];
};

static inline void normalize(const char *base, ssize_t rc, const struct http_request *r,
                             struct norm *n)
{
    memset(n, 0, sizeof *n);
    n->rc = rc;
    if (rc <= 0)
        return;
    n->moff = (size_t)(r->method - base);
    n->mlen = r->method_len;
    n->toff = (size_t)(r->target - base);
    n->tlen = r->target_len;
    n->minor = r->minor_version;
    n->nh = r->num_headers;
    for (size_t i = 0; i < r->num_headers; i++) {
        n->h[i][0] = (size_t)(r->headers[i].name - base);
        n->h[i][1] = r->headers[i].name_len;
        n->h[i][2] = (size_t)(r->headers[i].value - base);
        n->h[i][3] = r->headers[i].value_len;
    }
}

#endif

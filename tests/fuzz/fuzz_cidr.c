/*
 * fuzz_cidr: libFuzzer target for server/cidr.c and server/real_ip.c.
 * The input's first byte picks a split: the first part is parsed as an
 * allow-list (exact-size heap copy), the rest is an X-Forwarded-For value
 * walked with the parsed list as the trusted proxies. A parsed list keeps
 * its bounds and masks; every entry's own network address matches it; the
 * real_ip answer is the peer or an address that appears in the header.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cidr.h"
#include "real_ip.h"

#define CHECK(cond) do { if (!(cond)) abort(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t cut = data[0] < size - 1 ? data[0] : size - 1;
    const uint8_t *rest = data + 1;
    size_t rlen = size - 1;
    char *list = malloc(cut ? cut : 1);
    char *xff = malloc(rlen - cut ? rlen - cut : 1);
    CHECK(list != NULL && xff != NULL);
    memcpy(list, rest, cut);
    memcpy(xff, rest + cut, rlen - cut);

    struct cidr_list l;
    char err[96];
    int n = cidr_parse_list(&l, list, cut, err, sizeof err);
    if (n < 0) {
        CHECK(n == -EINVAL || n == -ENOSPC);
        CHECK(strlen(err) < sizeof err);
        l.n = 0;
    } else {
        CHECK(n >= 1 && n <= CIDR_MAX && n == l.n);
        for (int k = 0; k < n; k++) {
            CHECK(l.e[k].prefix <= 128);
            CHECK(cidr_match(&l, l.e[k].addr));
        }
    }

    static const uint8_t peer[16] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 10, 0, 0, 1 };
    uint8_t out[16];
    real_ip(out, peer, &l, xff, rlen - cut, NULL, 0);
    if (!cidr_match(&l, peer))
        CHECK(memcmp(out, peer, 16) == 0);
    free(list);
    free(xff);
    return 0;
}

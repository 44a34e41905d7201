/*
 * real_ip: X-Forwarded-For walked right to left. Each step looks back for
 * the previous comma over at most CIDR_ADDR_MAX + padding bytes, so a
 * header of any size costs O(REAL_IP_MAX_HOPS * CIDR_ADDR_MAX).
 */
#include "real_ip.h"

#include <string.h>

#define SCAN_MAX (CIDR_ADDR_MAX + 16)   /* an entry with some OWS around it */

static int is_ows(char ch)
{
    return ch == ' ' || ch == '\t';
}

/* s[0..len) with OWS trimmed, parsed as one address. 0 or -EINVAL. */
static int parse_trimmed(const char *s, size_t len, uint8_t out[16])
{
    while (len > 0 && is_ows(s[0])) {
        s++;
        len--;
    }
    while (len > 0 && is_ows(s[len - 1]))
        len--;
    return cidr_parse_addr(s, len, out);
}

/* 1 if s[0..len) is only OWS (an absent or empty header). */
static int blank(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!is_ows(s[i]))
            return 0;
    return 1;
}

/*
 * Walk XFF from the right starting from CUR (the trusted peer); leaves in
 * cur the answer by the rule in real_ip.h. 0, or -1 when the header holds
 * nothing but OWS (as good as absent; then cur is untouched).
 */
static int walk_xff(uint8_t cur[16], const struct cidr_list *trusted, const char *xff,
                    size_t end)
{
    for (int hop = 0; hop < REAL_IP_MAX_HOPS; hop++) {
        size_t start = end, scanned = 0;
        while (start > 0 && xff[start - 1] != ',') {
            if (++scanned > SCAN_MAX)
                return 0;               /* too long to be an address */
            start--;
        }
        uint8_t a[16];
        if (parse_trimmed(xff + start, end - start, a) != 0)
            return hop == 0 && start == 0 && blank(xff, end) ? -1 : 0;
        memcpy(cur, a, 16);
        if (!cidr_match(trusted, a) || start == 0)
            return 0;
        end = start - 1;                /* before the comma */
    }
    return 0;
}

void real_ip(uint8_t out[16], const uint8_t peer[16], const struct cidr_list *trusted,
             const char *xff, size_t xff_len, const char *xri, size_t xri_len)
{
    uint8_t cur[16];
    memcpy(cur, peer, 16);
    if (cidr_match(trusted, cur)) {
        if (xff != NULL && walk_xff(cur, trusted, xff, xff_len) == 0) {
            /* decided by X-Forwarded-For */
        } else if (xri != NULL) {
            uint8_t a[16];
            if (parse_trimmed(xri, xri_len, a) == 0)
                memcpy(cur, a, 16);
        }
    }
    memcpy(out, cur, 16);
}

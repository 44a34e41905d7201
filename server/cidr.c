/*
 * cidr: allow-list parsing and matching. Each entry is split at '/', the
 * address goes through inet_pton (a NUL-terminated copy, bounded by
 * CIDR_ADDR_MAX), the prefix through a strict decimal reader; then the
 * host bits are cleared so that matching is a prefix compare.
 */
#include "cidr.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

static const uint8_t v4_mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF };

int cidr_parse_addr(const char *s, size_t len, uint8_t out[16])
{
    char buf[CIDR_ADDR_MAX + 1];
    if (len == 0 || len > CIDR_ADDR_MAX || memchr(s, '\0', len) != NULL)
        return -EINVAL;
    memcpy(buf, s, len);
    buf[len] = '\0';
    if (memchr(buf, ':', len) != NULL)
        return inet_pton(AF_INET6, buf, out) == 1 ? 0 : -EINVAL;
    uint8_t v4[4];
    if (inet_pton(AF_INET, buf, v4) != 1)
        return -EINVAL;
    memcpy(out, v4_mapped, 12);
    memcpy(out + 12, v4, 4);
    return 0;
}

/* Clear every bit of a[16] after the first PREFIX. */
static void mask(uint8_t a[16], int prefix)
{
    for (int i = 0; i < 16; i++) {
        int keep = prefix - i * 8;
        if (keep <= 0)
            a[i] = 0;
        else if (keep < 8)
            a[i] &= (uint8_t)(0xFF << (8 - keep));
    }
}

static int is_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' || ch == '\f';
}

/* "0".."999" without sign or leading zero, or -1. */
static int read_prefix(const char *s, size_t len)
{
    if (len == 0 || len > 3 || (len > 1 && s[0] == '0'))
        return -1;
    int v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* "REASON \"ENTRY\"" into err, the entry cut short and made printable. */
static void fail(char *err, size_t errlen, const char *reason, const char *s, size_t len)
{
    char shown[CIDR_ADDR_MAX + 8];
    size_t n = len < sizeof shown - 4 ? len : sizeof shown - 4;
    for (size_t i = 0; i < n; i++)
        shown[i] = s[i] > 0x20 && s[i] < 0x7F ? s[i] : '?';
    if (n < len) {
        memcpy(shown + n, "...", 3);
        n += 3;
    }
    shown[n] = '\0';
    if (errlen > 0)
        snprintf(err, errlen, "%s \"%s\"", reason, shown);
}

/* One entry s[0..len) (no whitespace) into *e. 0 or -EINVAL with err set. */
static int parse_entry(struct cidr *e, const char *s, size_t len, char *err, size_t errlen)
{
    const char *slash = memchr(s, '/', len);
    size_t alen = slash != NULL ? (size_t)(slash - s) : len;
    if (cidr_parse_addr(s, alen, e->addr) != 0) {
        fail(err, errlen, "invalid address", s, len);
        return -EINVAL;
    }
    int v4 = memchr(s, ':', alen) == NULL;
    int max = v4 ? 32 : 128;
    int prefix = max;
    if (slash != NULL) {
        prefix = read_prefix(slash + 1, len - alen - 1);
        if (prefix < 0) {
            fail(err, errlen, "invalid prefix length in", s, len);
            return -EINVAL;
        }
        if (prefix > max) {
            fail(err, errlen, v4 ? "prefix length over 32 in" : "prefix length over 128 in",
                 s, len);
            return -EINVAL;
        }
    }
    e->prefix = (uint8_t)(v4 ? 96 + prefix : prefix);
    mask(e->addr, e->prefix);
    return 0;
}

int cidr_parse_list(struct cidr_list *l, const char *s, size_t len, char *err, size_t errlen)
{
    l->n = 0;
    size_t i = 0;
    for (;;) {
        while (i < len && is_space(s[i]))
            i++;
        if (i == len)
            break;
        size_t start = i;
        while (i < len && !is_space(s[i]))
            i++;
        if (l->n == CIDR_MAX) {
            if (errlen > 0)
                snprintf(err, errlen, "more than %d addresses", CIDR_MAX);
            return -ENOSPC;
        }
        int rc = parse_entry(&l->e[l->n], s + start, i - start, err, errlen);
        if (rc != 0)
            return rc;
        l->n++;
    }
    if (l->n == 0) {
        if (errlen > 0)
            snprintf(err, errlen, "no address given");
        return -EINVAL;
    }
    return l->n;
}

int cidr_match(const struct cidr_list *l, const uint8_t addr[16])
{
    for (int k = 0; k < l->n; k++) {
        const struct cidr *e = &l->e[k];
        int whole = e->prefix / 8, bits = e->prefix % 8;
        if (memcmp(addr, e->addr, (size_t)whole) != 0)
            continue;
        if (bits == 0 || ((addr[whole] ^ e->addr[whole]) & (uint8_t)(0xFF << (8 - bits))) == 0)
            return 1;
    }
    return 0;
}

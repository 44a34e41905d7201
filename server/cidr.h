/*
 * cidr: address allow-lists ("127.0.0.1/32 ::1/128 10.0.0.0/8 fd00::/8")
 * for directives such as real_ip_from, and the match against a client
 * address. Pure: no I/O, no allocation, fixed-size list.
 *
 * Addresses are 16 bytes, IPv4 as IPv4-mapped ::ffff:a.b.c.d (the form
 * shared/ip_limit.h uses). An IPv4 rule a.b.c.d/p is stored as the mapped
 * address with prefix 96 + p, so it matches mapped addresses and nothing
 * else, and one comparison serves both families. Consequently an IPv6 rule
 * covering ::ffff:0:0/96 (e.g. ::/0) matches IPv4 clients too.
 *
 * Host bits set below the prefix (10.1.2.3/8) are accepted and masked
 * off, as nginx does (it warns; we have no logger here): the rule means
 * the network the address is in.
 */
#ifndef WSM_CIDR_H
#define WSM_CIDR_H

#include <stddef.h>
#include <stdint.h>

#include "result.h"

#define CIDR_MAX 64             /* entries of one list */
#define CIDR_ADDR_MAX 45        /* characters of one address (INET6_ADDRSTRLEN - 1) */

struct cidr {
    uint8_t addr[16];           /* masked to prefix */
    uint8_t prefix;             /* 0..128 bits over the 16-byte form */
};

struct cidr_list {
    int n;
    struct cidr e[CIDR_MAX];
};

/*
 * Parse one address, IPv4 dotted quad or IPv6 text (inet_pton rules, no
 * zone, no brackets, no port), from s[0..len) (no NUL needed) into out,
 * IPv4 mapped. 0, or -EINVAL.
 */
int cidr_parse_addr(const char *s, size_t len, uint8_t out[16]);

/*
 * Parse a whitespace-separated list of ADDR or ADDR/PREFIX (a bare address
 * is /32 or /128; PREFIX is decimal without sign or leading zero, at most
 * 32 for IPv4 and 128 for IPv6) from s[0..len) into *l. Returns the number
 * of entries (>= 1), -EINVAL for bad syntax or an empty list, -ENOSPC for
 * more than CIDR_MAX entries; on failure ERR[0..errlen) gets a one-line
 * reason naming the offending entry (printable ASCII only).
 */
int cidr_parse_list(struct cidr_list *l, const char *s, size_t len, char *err, size_t errlen);

/* 1 if ADDR (16 bytes, IPv4 mapped) falls inside an entry of L. */
int cidr_match(const struct cidr_list *l, const uint8_t addr[16]);

#endif

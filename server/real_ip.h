/*
 * real_ip: the client address of a request that came through trusted
 * proxies (nginx's real_ip module with real_ip_recursive on), from the
 * peer address and the raw X-Forwarded-For / X-Real-IP values. Pure and
 * bounded: hostile header values cost at most REAL_IP_MAX_HOPS entries of
 * CIDR_ADDR_MAX characters, whatever their length.
 *
 * The rule: a peer outside TRUSTED is the client (its headers are not
 * believed). From a trusted peer, X-Forwarded-For is walked from the right
 * (the entry the nearest proxy added) leftwards, skipping trusted
 * addresses; the first untrusted one is the client. When every entry is
 * trusted, the leftmost is. An entry that is not one bare address (empty,
 * a port, brackets, garbage, too long), or the hop limit, stops the walk:
 * the answer is then the last good address reached (the peer if none),
 * never a guess past what a trusted proxy vouched for. With no
 * X-Forwarded-For entry at all, a well-formed X-Real-IP is the client;
 * otherwise the peer is.
 */
#ifndef WSM_REAL_IP_H
#define WSM_REAL_IP_H

#include <stddef.h>
#include <stdint.h>

#include "cidr.h"

#define REAL_IP_MAX_HOPS 16     /* X-Forwarded-For entries looked at, at most */

/*
 * The client address into out[16] (IPv4 mapped), by the rule above. PEER
 * is the TCP peer; XFF[0..xff_len) and XRI[0..xri_len) are the header
 * values as received (OWS allowed around entries), or NULL when absent.
 * Several X-Forwarded-For lines must be joined with "," first (RFC 9110
 * §5.3). out may alias peer.
 */
void real_ip(uint8_t out[16], const uint8_t peer[16], const struct cidr_list *trusted,
             const char *xff, size_t xff_len, const char *xri, size_t xri_len);

#endif

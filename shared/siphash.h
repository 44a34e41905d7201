/*
 * siphash: SipHash-2-4 (Aumasson and Bernstein, 2012), a keyed hash for
 * tables whose keys come from clients. With a secret random key, a client
 * that picks room names cannot aim them at one bucket, which a plain
 * multiplicative hash would let it do whatever the seed.
 */
#ifndef WSM_SIPHASH_H
#define WSM_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

/* The 64-bit SipHash-2-4 of data[0..len) under the 128-bit key (k0, k1). */
uint64_t siphash24(uint64_t k0, uint64_t k1, const void *data, size_t len);

#endif

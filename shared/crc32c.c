/*
 * crc32c: table-driven CRC-32C (see crc32c.h).
 *
 * table[0] is the classic byte-at-a-time table of the reflected polynomial;
 * table[k][b] is the CRC contribution of byte b followed by k zero bytes, so
 * eight input bytes fold into the register with eight independent lookups
 * (slice-by-8) instead of eight dependent ones. The byte loads are explicit
 * little-endian, so the result does not depend on the host's byte order or
 * on the buffer's alignment.
 */
#include "crc32c.h"

#include <pthread.h>

#define CRC32C_POLY 0x82F63B78u

static uint32_t table[8][256];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void table_build(void)
{
    for (uint32_t b = 0; b < 256; b++) {
        uint32_t c = b;
        for (int i = 0; i < 8; i++)
            c = (c >> 1) ^ (CRC32C_POLY & (0u - (c & 1u)));
        table[0][b] = c;
    }
    for (uint32_t b = 0; b < 256; b++)
        for (int k = 1; k < 8; k++) {
            uint32_t c = table[k - 1][b];
            table[k][b] = (c >> 8) ^ table[0][c & 0xffu];
        }
}

static uint32_t load32le(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

uint32_t crc32c_update(uint32_t crc, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    uint32_t c = ~crc;

    pthread_once(&table_once, table_build);
    while (len >= 8) {
        uint32_t lo = c ^ load32le(p);
        uint32_t hi = load32le(p + 4);
        c = table[7][lo & 0xffu] ^ table[6][(lo >> 8) & 0xffu] ^
            table[5][(lo >> 16) & 0xffu] ^ table[4][lo >> 24] ^
            table[3][hi & 0xffu] ^ table[2][(hi >> 8) & 0xffu] ^
            table[1][(hi >> 16) & 0xffu] ^ table[0][hi >> 24];
        p += 8;
        len -= 8;
    }
    while (len-- > 0)
        c = (c >> 8) ^ table[0][(c ^ *p++) & 0xffu];
    return ~c;
}

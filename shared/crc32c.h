/*
 * crc32c: CRC-32C (Castagnoli; reflected polynomial 0x82F63B78, the one
 * iSCSI, ext4 and LevelDB use), in software, slice-by-8. Pure: no I/O, no
 * allocation; the tables are built once per process (pthread_once), so any
 * thread may call it.
 *
 * The value carried between calls is the finished CRC (the bit inversions
 * happen inside), so crc32c_update(crc32c(a), b) == crc32c(a || b) and the
 * CRC of nothing is 0 (the zlib crc32() convention).
 */
#ifndef WSM_CRC32C_H
#define WSM_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* The CRC of (the bytes CRC was computed over) followed by buf[0..len). */
uint32_t crc32c_update(uint32_t crc, const void *buf, size_t len);

/* The CRC-32C of buf[0..len): "123456789" gives 0xE3069283. */
static inline uint32_t crc32c(const void *buf, size_t len)
{
    return crc32c_update(0, buf, len);
}

#endif

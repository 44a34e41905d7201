/*
 * b64url: base64url without padding (RFC 4648 §5, as JWS compact
 * serialization uses it, RFC 7515 §2 and Appendix C). Pure, bounded, no
 * allocation.
 *
 * The decoder is strict so that one byte string has exactly one accepted
 * text: '=' and any character outside A-Z a-z 0-9 - _ are rejected, a
 * length of 4k+1 cannot be the end of any byte string, and the unused low
 * bits of a final partial group must be zero (RFC 4648 §3.5). A signed
 * token then cannot be re-spelled into a different text that verifies.
 */
#ifndef WSM_B64URL_H
#define WSM_B64URL_H

#include <stddef.h>
#include <sys/types.h>

#include "result.h"

/* Characters b64url_encode() writes for N bytes (no padding, no NUL). */
#define B64URL_ENCODED_LEN(n) ((n) / 3 * 4 + ((n) % 3 == 0 ? 0 : (n) % 3 + 1))

/* Bytes at most that LEN characters decode to (exact for valid input). */
#define B64URL_DECODED_MAX(len) ((len) / 4 * 3 + ((len) % 4 <= 1 ? 0 : (len) % 4 - 1))

/*
 * Encode src[0..len) into dst[0..cap). Returns the text's length
 * (B64URL_ENCODED_LEN(len)), or -ENOSPC when it does not fit; dst is not
 * NUL-terminated.
 */
ssize_t b64url_encode(char *dst, size_t cap, const void *src, size_t len);

/*
 * Decode src[0..len) into dst[0..cap). Returns the number of bytes written
 * (>= 0; an empty text is zero bytes), -EINVAL when the text is not
 * canonical unpadded base64url (whatever its length), or -ENOSPC when it
 * is but decodes to more than cap bytes. Nothing is written on failure.
 * src and dst may not overlap.
 */
ssize_t b64url_decode(void *dst, size_t cap, const char *src, size_t len);

#endif

/*
 * utf8: incremental UTF-8 validator (RFC 3629) for WebSocket text messages
 * and close reasons (RFC 6455 §5.6, §8.1).
 *
 * The state is one uint32_t carried across calls, so a code point may be split
 * over any number of fragments or reads. Validation fails on the first byte
 * that can no longer start or continue a valid sequence (overlongs,
 * surrogates U+D800..DFFF, > U+10FFFF, 0xC0/0xC1/0xF5..0xFF, stray
 * continuation bytes), which is what RFC 6455 fail-fast (close 1007) needs.
 * Pure: no I/O, no allocation.
 */
#ifndef WSM_UTF8_H
#define WSM_UTF8_H

#include <stddef.h>
#include <stdint.h>

#define UTF8_ACCEPT 0u
#define UTF8_REJECT 1u

/*
 * Validate s[0..len) continuing from *state (start with UTF8_ACCEPT).
 * Returns len when no invalid byte was seen (*state may be mid-sequence), or
 * the index of the first offending byte, with *state set to UTF8_REJECT.
 * Once rejected, every later call returns 0.
 */
size_t utf8_validate(uint32_t *state, const uint8_t *s, size_t len);

/* True when the text seen so far ends on a code point boundary. */
static inline int utf8_complete(uint32_t state) { return state == UTF8_ACCEPT; }

/* Whole-buffer convenience: 1 if s[0..len) is complete valid UTF-8. */
int utf8_valid(const uint8_t *s, size_t len);

#endif

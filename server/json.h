/*
 * json: the two JSON pieces the chat needs (RFC 8259), pure and allocation-free.
 *
 * Reader: one flat object of client input, e.g. {"type":"message","text":"…"}.
 * Values may be strings, numbers, true, false or null; nested objects or
 * arrays, duplicate keys, trailing garbage, invalid escapes, unpaired
 * surrogates, raw control characters and invalid UTF-8 are rejected.
 * Strings are decoded in place (an escape is never shorter than what it
 * decodes to), so the buffer must be writable.
 *
 * Writer: a JSON string body from arbitrary bytes that is always valid JSON:
 * `"` `\` and control characters escaped, U+2028/U+2029 escaped (so the text
 * is also valid JavaScript), invalid UTF-8 replaced by U+FFFD.
 */
#ifndef WSM_JSON_H
#define WSM_JSON_H

#include <stddef.h>

#define JSON_MAX_FIELDS 8

enum json_type { JSON_STRING, JSON_NUMBER, JSON_TRUE, JSON_FALSE, JSON_NULL };

struct json_field {
    const char *key;  size_t key_len;   /* decoded, into the caller's buffer */
    const char *val;  size_t val_len;   /* strings decoded; other types raw text */
    int type;                           /* enum json_type */
};

/*
 * Parse buf[0..len) as one flat JSON object (surrounding whitespace allowed).
 * Returns the number of fields (>= 0), or -1 if the text is not such an
 * object, or -2 if it has more than max fields.
 */
int json_parse_object(char *buf, size_t len, struct json_field *fields, int max);

/* The field named KEY, or NULL. */
const struct json_field *json_get(const struct json_field *fields, int n, const char *key);

/* Bytes json_escape() writes for s[0..len) (without quotes). */
size_t json_escaped_len(const char *s, size_t len);

/*
 * Write s[0..len) escaped as a JSON string body (no surrounding quotes) to
 * dst, which has room for json_escaped_len(s, len) bytes. Returns that length.
 */
size_t json_escape(char *dst, const char *s, size_t len);

#endif

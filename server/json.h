/*
 * json: the two JSON pieces the chat needs (RFC 8259), pure and allocation-free.
 *
 * Reader: one flat object of client input, e.g. {"type":"message","text":"…"}.
 * Values may be strings, numbers, true, false or null; nested objects or
 * arrays, duplicate keys, trailing garbage, invalid escapes, unpaired
 * surrogates, raw control characters and invalid UTF-8 are rejected.
 * Strings are decoded in place (an escape is never shorter than what it
 * decodes to), so the buffer must be writable. On request (JSON_ARRAYS) a
 * value may also be a flat array of those scalars, kept as raw text and read
 * with json_array_next(): signed-token claims carry one ("rooms"), and the
 * array is the one nesting they need, so arrays in arrays and objects stay
 * rejected and the reader stays a single flat pass.
 *
 * Writer: a JSON string body from arbitrary bytes that is always valid JSON:
 * `"` `\` and control characters escaped, U+2028/U+2029 escaped (so the text
 * is also valid JavaScript), invalid UTF-8 replaced by U+FFFD.
 */
#ifndef WSM_JSON_H
#define WSM_JSON_H

#include <stddef.h>

#define JSON_MAX_FIELDS 8

enum json_type { JSON_STRING, JSON_NUMBER, JSON_TRUE, JSON_FALSE, JSON_NULL, JSON_ARRAY };

struct json_field {
    const char *key;  size_t key_len;   /* decoded, into the caller's buffer */
    const char *val;  size_t val_len;   /* strings decoded; other types raw text
                                           (an array from '[' through ']') */
    int type;                           /* enum json_type */
};

/*
 * Parse buf[0..len) as one flat JSON object (surrounding whitespace allowed).
 * Returns the number of fields (>= 0), or -1 if the text is not such an
 * object, or -2 if it has more than max fields.
 */
int json_parse_object(char *buf, size_t len, struct json_field *fields, int max);

#define JSON_ARRAYS 1u    /* json_parse_object_ex(): accept flat arrays of scalars */

/*
 * json_parse_object() with FLAGS. With JSON_ARRAYS, a value may be an array
 * whose elements are strings, numbers, true, false or null (no arrays or
 * objects inside); it is checked as strictly as any value, but its strings
 * are not decoded: the field is JSON_ARRAY and its val is the raw text.
 */
int json_parse_object_ex(char *buf, size_t len, struct json_field *fields, int max,
                         unsigned flags);

/* A read cursor over the elements of one JSON_ARRAY field. */
struct json_array_iter {
    const char *text;  size_t len;
    size_t i;                           /* next byte to read */
    int n;                              /* elements returned so far */
};

/* Start at the first element of F, a JSON_ARRAY field (its text must live on). */
void json_array_begin(struct json_array_iter *it, const struct json_field *f);

/*
 * The next element: 1 with *type its enum json_type and its value in
 * dst[0..*len) (a string decoded, other scalars their raw text); 0 after the
 * last one (and on every later call); -2 when it is longer than cap bytes;
 * -1 when the text is not a checked array. After a negative result the
 * cursor is lost: stop iterating. Never writes past dst[cap - 1].
 */
int json_array_next(struct json_array_iter *it, char *dst, size_t cap, size_t *len,
                    int *type);

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

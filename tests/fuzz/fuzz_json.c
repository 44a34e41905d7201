/*
 * fuzz_json: libFuzzer target for server/json.c.
 *
 * Reader: any bytes, in an exact-size heap copy (ASan catches over-reads);
 * every returned field must lie inside the buffer, strings must be valid
 * UTF-8. Writer: json_escape() of the same bytes, wrapped as {"k":"..."},
 * must always parse back to one string field equal to the input, with
 * invalid UTF-8 replaced by U+FFFD per maximal subpart (checked against a
 * reference built on textbook decoding, independent of json.c).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "utf8_ref.h"

#define CHECK(cond) do { if (!(cond)) abort(); } while (0)

static int utf8_ok(const unsigned char *s, size_t len)
{
    int valid;
    unsigned char *tmp = malloc(len * 3 + 1);
    CHECK(tmp != NULL);
    size_t n = ref_substitute(tmp, s, len, &valid);
    (void)n;
    free(tmp);
    return valid;
}

static void fuzz_reader(const uint8_t *data, size_t size)
{
    char *buf = malloc(size ? size : 1);
    CHECK(buf != NULL);
    memcpy(buf, data, size);
    struct json_field f[JSON_MAX_FIELDS];
    int n = json_parse_object(buf, size, f, JSON_MAX_FIELDS);
    CHECK(n >= -2 && n <= JSON_MAX_FIELDS);
    for (int k = 0; k < n; k++) {
        CHECK(f[k].key >= buf && f[k].key + f[k].key_len <= buf + size);
        CHECK(f[k].val >= buf && f[k].val + f[k].val_len <= buf + size);
        CHECK(utf8_ok((const unsigned char *)f[k].key, f[k].key_len));
        CHECK(f[k].type >= JSON_STRING && f[k].type <= JSON_NULL);
        if (f[k].type == JSON_STRING)
            CHECK(utf8_ok((const unsigned char *)f[k].val, f[k].val_len));
        else
            CHECK(f[k].val_len > 0);
        for (int j = 0; j < k; j++)
            CHECK(f[j].key_len != f[k].key_len ||
                  memcmp(f[j].key, f[k].key, f[k].key_len) != 0);
        if (memchr(f[k].key, 0, f[k].key_len) == NULL) {
            char *key = malloc(f[k].key_len + 1);
            CHECK(key != NULL);
            memcpy(key, f[k].key, f[k].key_len);
            key[f[k].key_len] = '\0';
            CHECK(json_get(f, n, key) == &f[k]);   /* keys are unique */
            free(key);
        }
    }
    free(buf);
}

/* JSON_ARRAYS mode: the same checks hold, and every array iterates to its end. */
static void fuzz_arrays(const uint8_t *data, size_t size)
{
    char *buf = malloc(size ? size : 1);
    CHECK(buf != NULL);
    memcpy(buf, data, size);
    struct json_field f[JSON_MAX_FIELDS];
    int n = json_parse_object_ex(buf, size, f, JSON_MAX_FIELDS, JSON_ARRAYS);
    CHECK(n >= -2 && n <= JSON_MAX_FIELDS);
    for (int k = 0; k < n; k++) {
        CHECK(f[k].val >= buf && f[k].val + f[k].val_len <= buf + size);
        if (f[k].type != JSON_ARRAY)
            continue;
        CHECK(f[k].val_len >= 2 && f[k].val[0] == '[' && f[k].val[f[k].val_len - 1] == ']');
        struct json_array_iter it;
        json_array_begin(&it, &f[k]);
        char *el = malloc(f[k].val_len);
        CHECK(el != NULL);
        size_t len;
        int type, rc, count = 0;
        while ((rc = json_array_next(&it, el, f[k].val_len, &len, &type)) == 1) {
            CHECK(len <= f[k].val_len && type != JSON_ARRAY);
            if (type == JSON_STRING)
                CHECK(utf8_ok((const unsigned char *)el, len));
            CHECK(++count <= (int)f[k].val_len);
        }
        CHECK(rc == 0);
        free(el);
    }
    free(buf);
}

static void fuzz_writer(const uint8_t *data, size_t size)
{
    size_t el = json_escaped_len((const char *)data, size);
    CHECK(el >= size);
    char *w = malloc(el + 8);
    CHECK(w != NULL);
    memcpy(w, "{\"k\":\"", 6);
    CHECK(json_escape(w + 6, (const char *)data, size) == el);
    memcpy(w + 6 + el, "\"}", 2);
    for (size_t k = 6; k < 6 + el; k++) {
        unsigned char c = (unsigned char)w[k];
        CHECK(c >= 0x20);
        /* no raw U+2028/U+2029 */
        CHECK(!(c == 0xE2 && k + 2 < 6 + el && (unsigned char)w[k + 1] == 0x80 &&
                ((unsigned char)w[k + 2] == 0xA8 || (unsigned char)w[k + 2] == 0xA9)));
    }

    struct json_field f[JSON_MAX_FIELDS];
    int n = json_parse_object(w, el + 8, f, JSON_MAX_FIELDS);
    CHECK(n == 1);
    CHECK(f[0].key_len == 1 && f[0].key[0] == 'k');
    CHECK(f[0].type == JSON_STRING);

    unsigned char *want = malloc(size * 3 + 1);
    CHECK(want != NULL);
    int valid;
    size_t wl = ref_substitute(want, data, size, &valid);
    CHECK(f[0].val_len == wl);
    CHECK(memcmp(f[0].val, want, wl) == 0);
    if (valid)
        CHECK(wl == size && memcmp(f[0].val, data, size) == 0);
    free(want);
    free(w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_reader(data, size);
    fuzz_arrays(data, size);
    fuzz_writer(data, size);
    return 0;
}

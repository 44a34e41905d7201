/*
 * wsb_selftest: known-answer checks of wsbench's own codec, run by
 * `wsbench selftest` (and first thing in bench-smoke), so a failing
 * benchmark points at the server and not at a broken client.
 *
 * Vectors: SHA-1 (FIPS 180 examples), base64 (RFC 4648 §10), the accept
 * key of RFC 6455 §1.3, frame headers of every length form (§5.2) and the
 * rules a client enforces, UTF-8 edge cases, histogram quantiles, the
 * --ports list parser.
 */
#include <string.h>

#include "wsb.h"

static int failures;

static void expect(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "selftest: FAIL %s\n", what);
        failures++;
    }
}

static void test_sha1_base64(void)
{
    static const struct { const char *in, *hex; } v[] = {
        { "", "da39a3ee5e6b4b0d3255bfef95601890afd80709" },
        { "abc", "a9993e364706816aba3e25717850c26c9cd0d89d" },
        { "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
          "84983e441c3bd26ebaae4aa1f95129e5e54670f1" },
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        uint8_t d[20];
        char hex[41];
        wsb_sha1(v[i].in, strlen(v[i].in), d);
        for (int k = 0; k < 20; k++)
            snprintf(hex + 2 * k, 3, "%02x", d[k]);
        expect(strcmp(hex, v[i].hex) == 0, "sha1 vector");
    }
    static const char *b64[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==",
                                 "Zm9vYmE=", "Zm9vYmFy" };
    for (size_t n = 0; n <= 6; n++) {
        char out[16];
        wsb_base64((const uint8_t *)"foobar", n, out);
        expect(strcmp(out, b64[n]) == 0, "base64 vector");
    }
    char acc[29];
    wsb_accept_key("dGhlIHNhbXBsZSBub25jZQ==", acc);
    expect(strcmp(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == 0,
           "RFC 6455 §1.3 accept key");
}

static void test_response(void)
{
    const char *key = "dGhlIHNhbXBsZSBub25jZQ==";
    char ok[256];
    int n = snprintf(ok, sizeof ok, "HTTP/1.1 101 Switching Protocols\r\n"
                     "upgrade: WebSocket\r\nConnection: keep-alive, Upgrade"
                     "\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
                     "\r\n\r\n\x81\x02hi");
    int st;
    expect(wsb_ws_response(ok, (size_t)n, key, &st) == n - 4 && st == 101,
           "valid 101 head");
    expect(wsb_ws_response(ok, 40, key, &st) == 0, "partial head");
    char bad[256];
    memcpy(bad, ok, (size_t)n);
    bad[strstr(bad, "s3pP") - bad] = 't';
    expect(wsb_ws_response(bad, (size_t)n, key, &st) == -WSB_FAIL_ACCEPT,
           "wrong accept");
    const char *forbidden = "HTTP/1.1 403 Forbidden\r\n\r\n";
    expect(wsb_ws_response(forbidden, strlen(forbidden), key, &st) ==
           -WSB_FAIL_STATUS && st == 403, "403");
    const char *noup = "HTTP/1.1 101 OK\r\nConnection: Upgrade\r\n"
                       "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
                       "\r\n\r\n";
    expect(wsb_ws_response(noup, strlen(noup), key, &st) == -WSB_FAIL_STATUS,
           "missing Upgrade");
}

static void test_frames(void)
{
    struct wsb_frame f;
    const uint8_t small[] = { 0x81, 0x05 };
    expect(wsb_ws_frame_head(small, 2, &f) == 2 && f.len == 5 && f.fin &&
           f.opcode == WSB_OP_TEXT, "7-bit length");
    const uint8_t mid[] = { 0x82, 126, 0x01, 0x00 };
    expect(wsb_ws_frame_head(mid, 4, &f) == 4 && f.len == 256, "16-bit");
    expect(wsb_ws_frame_head(mid, 3, &f) == 0, "16-bit needs more");
    const uint8_t big[] = { 0x02, 127, 0, 0, 0, 0, 0, 1, 0, 0 };
    expect(wsb_ws_frame_head(big, 10, &f) == 10 && f.len == 65536 && !f.fin,
           "64-bit");
    const uint8_t loose[] = { 0x81, 126, 0x00, 0x05 };
    expect(wsb_ws_frame_head(loose, 4, &f) < 0, "non-minimal 16-bit");
    const uint8_t huge[] = { 0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0 };
    expect(wsb_ws_frame_head(huge, 10, &f) < 0, "64-bit top bit");

    f = (struct wsb_frame){ .fin = 1, .opcode = WSB_OP_PING, .len = 126 };
    expect(!wsb_ws_frame_valid(0, &f), "control frame > 125");
    f = (struct wsb_frame){ .fin = 0, .opcode = WSB_OP_CLOSE, .len = 2 };
    expect(!wsb_ws_frame_valid(0, &f), "fragmented control frame");
    f = (struct wsb_frame){ .fin = 1, .opcode = WSB_OP_CONT, .len = 1 };
    expect(!wsb_ws_frame_valid(0, &f), "continuation with no message");
    expect(wsb_ws_frame_valid(WSB_OP_TEXT, &f), "continuation in message");
    f = (struct wsb_frame){ .fin = 1, .opcode = WSB_OP_TEXT, .masked = 1 };
    expect(!wsb_ws_frame_valid(0, &f), "masked server frame");
    f = (struct wsb_frame){ .fin = 1, .opcode = 3 };
    expect(!wsb_ws_frame_valid(0, &f), "reserved opcode");

    /* Our own frame: header decodes, masking round-trips (§5.3). */
    static char buf[70000 + 14];
    static char payload[70000];
    memset(payload, 'a', sizeof payload);
    const uint8_t key[4] = { 0x37, 0xfa, 0x21, 0x3d };
    size_t len = wsb_ws_frame_build(buf, WSB_OP_TEXT, payload,
                                    sizeof payload, key);
    ssize_t h = wsb_ws_frame_head((uint8_t *)buf, len, &f);
    expect(h == 14 && f.masked && f.len == sizeof payload, "build 64-bit");
    int same = 1;
    for (size_t i = 0; i < sizeof payload; i++)
        same &= ((uint8_t)buf[h + i] ^ key[i & 3]) == 'a';
    expect(same, "mask round trip");
    len = wsb_ws_frame_build(buf, WSB_OP_TEXT, "Hello", 5, key);
    expect(len == 11 && (uint8_t)buf[1] == 0x85 &&
           ((uint8_t)buf[6] ^ 0x37) == 'H', "RFC 6455 §5.7 masked Hello");
}

static void test_utf8(void)
{
    static const struct { const char *s; int ok; } v[] = {
        { "plain", 1 }, { "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", 1 },
        { "\xf0\x9f\x98\x80", 1 }, { "\xf4\x8f\xbf\xbf", 1 },
        { "\xc0\xaf", 0 }, { "\xe0\x80\xaf", 0 }, { "\xed\xa0\x80", 0 },
        { "\xf4\x90\x80\x80", 0 }, { "\xce", 0 }, { "\x80", 0 },
        { "\xff", 0 },
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        expect(wsb_ws_utf8_ok((const uint8_t *)v[i].s, strlen(v[i].s)) ==
               v[i].ok, "utf8 vector");
}

static void test_hist(void)
{
    static struct wsb_hist h;
    wsb_hist_init(&h);
    for (uint64_t i = 1; i <= 100000; i++)
        wsb_hist_add(&h, i * 1000);
    uint64_t p50 = wsb_hist_quantile(&h, 0.5);
    uint64_t p99 = wsb_hist_quantile(&h, 0.99);
    expect(p50 > 49000000 && p50 < 51000000, "hist p50 within 2%");
    expect(p99 > 97000000 && p99 < 101000000, "hist p99 within 2%");
    expect(wsb_hist_quantile(&h, 1.0) == 100000000, "hist max exact");
    wsb_hist_add(&h, UINT64_MAX);
    expect(wsb_hist_quantile(&h, 1.0) == UINT64_MAX, "hist top bucket");
}

/* --ports lists: the cluster scenario's nodes. */
static void test_ports(void)
{
    uint16_t p[WSB_MAX_PORTS];
    expect(wsb_parse_ports("8000", p, WSB_MAX_PORTS) == 1 && p[0] == 8000,
           "ports: one");
    expect(wsb_parse_ports("1,65535,42", p, WSB_MAX_PORTS) == 3 &&
           p[0] == 1 && p[1] == 65535 && p[2] == 42, "ports: three");
    static const char *bad[] = { "", ",", "1,", ",1", "1,,2", "0", "65536",
                                 "99999999999", "1;2", "1 ,2", "-1", "x" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect(wsb_parse_ports(bad[i], p, WSB_MAX_PORTS) == -1,
               "ports: malformed list refused");
    expect(wsb_parse_ports("1,2,3", p, 2) == -1, "ports: more than max");
}

int wsb_selftest(void)
{
    test_sha1_base64();
    test_response();
    test_frames();
    test_utf8();
    test_hist();
    test_ports();
    printf("selftest: %s (%d failures)\n", failures ? "FAIL" : "ok",
           failures);
    return failures ? 1 : 0;
}

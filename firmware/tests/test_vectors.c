/* The core against the shared golden vectors (tests/vectors/wire-v1.json, the same file
 * the Python tests read) and the published crypto vectors: CRC check values, SHA-256
 * (FIPS 180-4 examples), HMAC-SHA-256 (RFC 4231), COBS/CRC/length framing of every
 * valid and malformed frame, and the wire 1.1 exchanges replayed against a fresh device
 * byte for byte. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fake_board.h"
#include "json_min.h"
#include "ll_sha256.h"

static jval_t *V;

static const char *vectors_path(void)
{
    const char *p = getenv("LLLT_VECTORS");
    return p ? p : "../tests/vectors/wire-v1.json";
}

static void hex_to(const char *hex, uint8_t *out, size_t *n)
{
    size_t len;
    uint8_t *b = json_hex(hex, &len);
    memcpy(out, b, len);
    free(b);
    *n = len;
}

/* --- CRC, SHA-256, HMAC ------------------------------------------------------------- */

static void test_crc_check_values(void **state)
{
    (void)state;
    const uint8_t s[] = "123456789";
    assert_int_equal(ll_crc16(LL_CRC16_INIT, s, 9), 0x29B1);
    assert_int_equal(ll_crc32(0, s, 9), 0xCBF43926u);
}

static void sha_hex(const uint8_t *d, size_t n, size_t repeat, char *out)
{
    ll_sha256_t s;
    uint8_t h[32];
    ll_sha256_init(&s);
    for (size_t i = 0; i < repeat; i++) {
        ll_sha256_update(&s, d, (uint32_t)n);
    }
    ll_sha256_final(&s, h);
    for (int i = 0; i < 32; i++) {
        sprintf(out + 2 * i, "%02x", h[i]);
    }
}

static void test_sha256_fips180_4(void **state)
{
    (void)state;
    char out[65];
    sha_hex((const uint8_t *)"abc", 3, 1, out);
    assert_string_equal(out, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    sha_hex((const uint8_t *)"", 0, 1, out);
    assert_string_equal(out, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    const char *m448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sha_hex((const uint8_t *)m448, strlen(m448), 1, out);
    assert_string_equal(out, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    const char *m896 = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";
    sha_hex((const uint8_t *)m896, strlen(m896), 1, out);
    assert_string_equal(out, "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
    uint8_t a[1000];
    memset(a, 'a', sizeof a);
    sha_hex(a, sizeof a, 1000, out); /* one million 'a' */
    assert_string_equal(out, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

static void hmac_case(const uint8_t *key, size_t klen, const uint8_t *data, size_t dlen,
                      const char *expect, size_t nbytes)
{
    ll_hmac_t m;
    uint8_t mac[32];
    char out[65];
    ll_hmac_init(&m, key, (uint32_t)klen);
    ll_hmac_update(&m, data, (uint32_t)dlen);
    ll_hmac_final(&m, mac);
    for (size_t i = 0; i < nbytes; i++) {
        sprintf(out + 2 * i, "%02x", mac[i]);
    }
    out[2 * nbytes] = 0;
    assert_string_equal(out, expect);
}

static void test_hmac_rfc4231(void **state)
{
    (void)state;
    uint8_t k[131], d[50];
    memset(k, 0x0b, 20);
    hmac_case(k, 20, (const uint8_t *)"Hi There", 8,
              "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7", 32);
    hmac_case((const uint8_t *)"Jefe", 4, (const uint8_t *)"what do ya want for nothing?", 28,
              "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843", 32);
    memset(k, 0xaa, 20);
    memset(d, 0xdd, 50);
    hmac_case(k, 20, d, 50, "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
              32);
    for (int i = 0; i < 25; i++) {
        k[i] = (uint8_t)(i + 1);
    }
    memset(d, 0xcd, 50);
    hmac_case(k, 25, d, 50, "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
              32);
    memset(k, 0x0c, 20);
    hmac_case(k, 20, (const uint8_t *)"Test With Truncation", 20,
              "a3b6167473100ee06e0c796c2955552b", 16);
    memset(k, 0xaa, 131);
    const char *t6 = "Test Using Larger Than Block-Size Key - Hash Key First";
    hmac_case(k, 131, (const uint8_t *)t6, strlen(t6),
              "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54", 32);
    const char *t7 = "This is a test using a larger than block-size key and a larger than "
                     "block-size data. The key needs to be hashed before being used by the "
                     "HMAC algorithm.";
    hmac_case(k, 131, (const uint8_t *)t7, strlen(t7),
              "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2", 32);
}

/* --- framing ------------------------------------------------------------------------ */

/* decode an encoded frame (delimiter included) with the core's decoder */
static int decode_all(const uint8_t *enc, size_t n, uint8_t *out, uint32_t *out_len,
                      int *bad)
{
    ll_cobs_dec_t d;
    static uint8_t buf[9 + 4096];
    ll_cobs_dec_init(&d, buf, sizeof buf, 9 + 4096 + 4105 / 254 + 1);
    int frames = 0;
    *bad = 0;
    for (size_t i = 0; i < n; i++) {
        ll_cobs_result_t r = ll_cobs_dec_feed(&d, enc[i]);
        if (r == LL_COBS_FRAME) {
            uint32_t len = d.len;
            bool ok = len >= 9 &&
                      ll_crc16(LL_CRC16_INIT, buf, len - 2) == ((buf[len - 2] << 8) | buf[len - 1]) &&
                      ll_get16(buf + 5) <= 4096 && ll_get16(buf + 5) == len - 9;
            if (ok) {
                frames++;
                memcpy(out, buf, len);
                *out_len = len;
            } else {
                (*bad)++;
            }
        } else if (r == LL_COBS_BAD || r == LL_COBS_OVERSIZE) {
            (*bad)++;
        }
    }
    return frames;
}

typedef struct {
    uint8_t *p;
    size_t n;
} sink_t;
static void sink(void *s, const uint8_t *d, uint32_t n)
{
    sink_t *k = s;
    memcpy(k->p + k->n, d, n);
    k->n += n;
}

static void test_valid_frames_decode_and_reencode(void **state)
{
    (void)state;
    const jval_t *valid = json_get(V, "valid");
    assert_non_null(valid);
    assert_true(valid->n >= 20);
    for (size_t i = 0; i < valid->n; i++) {
        const jval_t *v = json_at(valid, i);
        static uint8_t enc[9000], dec[5000], again[9000];
        size_t n;
        hex_to(json_str(v, "hex"), enc, &n);
        uint32_t len = 0;
        int bad;
        int frames = decode_all(enc, n, dec, &len, &bad);
        if (frames != 1 || bad != 0) {
            fail_msg("valid vector %s: %d frames, %d bad", json_str(v, "name"), frames, bad);
        }
        assert_int_equal(ll_get16(dec + 3), json_int(v, "seq", -1));
        sink_t s = {again, 0};
        ll_ostream_t os = {sink, &s};
        ll_cobs_encode(dec, len, &os);
        if (s.n != n || memcmp(again, enc, n) != 0) {
            fail_msg("valid vector %s: re-encoding differs", json_str(v, "name"));
        }
    }
}

static void test_malformed_frames_are_dropped_and_counted(void **state)
{
    (void)state;
    const jval_t *mal = json_get(V, "malformed");
    assert_true(mal && mal->n >= 5);
    for (size_t i = 0; i < mal->n; i++) {
        const jval_t *v = json_at(mal, i);
        const char *err = json_str(v, "error");
        static uint8_t enc[9000], dec[5000];
        size_t n;
        hex_to(json_str(v, "hex"), enc, &n);
        uint32_t len;
        int bad;
        int frames = decode_all(enc, n, dec, &len, &bad);
        if (!strcmp(err, "payload")) {
            /* decodes, but its payload does not parse for its type: the device NACKs */
            assert_int_equal(frames, 1);
            fb_setup(NULL, NULL);
            fb_hello(1);
            fb_frame_t *f;
            fb_take(&f);
            fb_rx(enc, n);
            int k = fb_take(&f);
            assert_int_equal(k, 1);
            assert_int_equal(f[0].type, LL_MT_NACK);
            uint8_t code = f[0].payload[0];
            assert_true(code == LL_NC_BAD_LENGTH || code == LL_NC_UNKNOWN_TYPE);
            continue;
        }
        if (frames != 0) {
            fail_msg("malformed vector %s (%s) decoded as a frame", json_str(v, "name"), err);
        }
        /* and the device drops it: no answer, counted */
        fb_setup(NULL, NULL);
        uint32_t before = CORE.stats.frames_bad;
        fb_frame_t *f;
        fb_take(&f);
        fb_rx(enc, n);
        static const uint8_t zero = 0;
        fb_rx(&zero, 1);
        assert_int_equal(fb_take(&f), 0);
        if (strcmp(err, "short") == 0 || bad) {
            assert_true(CORE.stats.frames_bad > before);
        }
    }
}

static void test_resync_after_garbage(void **state)
{
    (void)state;
    const jval_t *r = json_get(V, "resync");
    static uint8_t enc[1000], dec[5000];
    size_t n;
    hex_to(json_str(r, "hex"), enc, &n);
    uint32_t len;
    int bad;
    assert_int_equal(decode_all(enc, n, dec, &len, &bad), json_int(r, "frames", -1));
}

/* --- codec 1.1 ---------------------------------------------------------------------- */

static void test_codec_1_1(void **state)
{
    (void)state;
    const jval_t *cv = json_get(V, "codec_1_1");
    assert_non_null(cv);
    for (size_t i = 0; i < cv->n; i++) {
        const jval_t *v = json_at(cv, i);
        const jval_t *fl = json_get(v, "fields");
        static uint8_t expect[1000];
        size_t n;
        hex_to(json_str(v, "hex"), expect, &n);
        fb_setup(NULL, NULL);
        fb_frame_t *f;
        fb_take(&f);
        uint16_t seq = (uint16_t)json_int(v, "seq", 0);
        if (!strcmp(json_str(v, "type"), "NACK")) {
            ll_nack_t nk;
            ll_nack_set(&nk, LL_NC_BAD_VALUE, json_str(fl, "detail"));
            nk.channel = (uint8_t)json_int(fl, "channel", 0);
            nk.limit = (int32_t)json_int(fl, "limit", 0);
            nk.observed = (int32_t)json_int(fl, "observed", 0);
            uint8_t p[80];
            p[0] = nk.code;
            p[1] = nk.channel;
            ll_put32(p + 2, (uint32_t)nk.limit);
            ll_put32(p + 6, (uint32_t)nk.observed);
            memcpy(p + 10, nk.detail, nk.len);
            assert_int_equal(nk.len, json_int(v, "detail_bytes", -1));
            ll_send_frame(&CORE, LL_MT_NACK, seq, p, 10u + nk.len);
        } else {
            /* EVENT with "—" fields: b 0xFF, the others 0 (the core's event encoder) */
            CORE.useq = (uint16_t)(seq - 1);
            ll_event(&CORE, LL_EV_HEAD, (uint32_t)json_int(fl, "time_ms", 0), 0, LL_NO_INDEX,
                     0, 0);
        }
        int k = fb_take(&f);
        assert_int_equal(k, 1);
        if (f[0].raw_len != n || memcmp(f[0].raw, expect, n) != 0) {
            fail_msg("codec vector %s: bytes differ", json_str(v, "name"));
        }
    }
}

/* --- exchanges ---------------------------------------------------------------------- */

static uint8_t type_code(const char *name)
{
    static const struct {
        const char *n;
        uint8_t t;
    } T[] = {{"ACK", 0x40},    {"NACK", 0x41},    {"HELLO_INFO", 0x42}, {"STARTED", 0x43},
             {"STATUS", 0x44}, {"RECORDS", 0x45}, {"TELEMETRY", 0x60},  {"EVENT", 0x61}};
    for (size_t i = 0; i < sizeof T / sizeof T[0]; i++) {
        if (!strcmp(T[i].n, name)) {
            return T[i].t;
        }
    }
    fail_msg("unknown type %s", name);
    return 0;
}

static void test_exchanges_1_1(void **state)
{
    (void)state;
    const jval_t *ex = json_get(V, "exchanges_1_1");
    assert_true(ex && ex->n >= 10);
    for (size_t e = 0; e < ex->n; e++) {
        const jval_t *x = json_at(ex, e);
        const char *name = json_str(x, "name");
        assert_string_equal(json_str(json_get(x, "device"), "profile"), "reference-cap");
        fb_setup("reference-cap", NULL);
        size_t nn;
        hex_to(json_str(x, "nonce_hex"), FB.nonce, &nn);
        FB.nonce_fixed = true;
        const jval_t *steps = json_get(x, "steps");
        for (size_t s = 0; s < steps->n; s++) {
            const jval_t *st = json_at(steps, s);
            static uint8_t send[5000];
            size_t n;
            hex_to(json_str(st, "send"), send, &n);
            fb_frame_t *f;
            fb_take(&f);
            fb_rx(send, n);
            int k = fb_take(&f);
            const jval_t *expect = json_get(st, "expect");
            const jval_t *types = json_get(st, "expect_types");
            if ((size_t)k != expect->n) {
                fail_msg("%s, step '%s': %d frames, expected %zu", name, json_str(st, "note"),
                         k, expect->n);
            }
            for (int i = 0; i < k; i++) {
                const jval_t *tt = json_at(types, (size_t)i);
                uint8_t t = type_code(json_at(tt, 0)->str);
                uint16_t seq = (uint16_t)json_at(tt, 1)->num;
                if (f[i].type != t || f[i].seq != seq) {
                    fail_msg("%s, step '%s', frame %d: type 0x%02x seq %u, expected %s seq %u",
                             name, json_str(st, "note"), i, f[i].type, f[i].seq,
                             json_at(tt, 0)->str, seq);
                }
                static uint8_t want[5000];
                size_t wn;
                hex_to(json_at(expect, (size_t)i)->str, want, &wn);
                /* ACK, NACK, STARTED, EVENT and HELLO_INFO byte for byte (time stands
                 * still at 0 on both, and the board is the simulator's profile) */
                bool exact = t == LL_MT_ACK || t == LL_MT_NACK || t == LL_MT_STARTED ||
                             t == LL_MT_EVENT || t == LL_MT_HELLO_INFO;
                if (exact && (f[i].raw_len != wn || memcmp(f[i].raw, want, wn) != 0)) {
                    fail_msg("%s, step '%s', frame %d (type 0x%02x): bytes differ", name,
                             json_str(st, "note"), i, t);
                }
            }
        }
    }
}

int main(void)
{
    V = json_load_file(vectors_path());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc_check_values),
        cmocka_unit_test(test_sha256_fips180_4),
        cmocka_unit_test(test_hmac_rfc4231),
        cmocka_unit_test(test_valid_frames_decode_and_reencode),
        cmocka_unit_test(test_malformed_frames_are_dropped_and_counted),
        cmocka_unit_test(test_resync_after_garbage),
        cmocka_unit_test(test_codec_1_1),
        cmocka_unit_test(test_exchanges_1_1),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

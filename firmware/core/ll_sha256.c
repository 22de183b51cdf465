/* SHA-256 and HMAC-SHA-256 (see ll_sha256.h). Written for clarity and small code; a
 * 100-byte request is hashed in a few tens of microseconds on a Cortex-M3. */
#include "ll_sha256.h"

#include <string.h>

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2,
};

static inline uint32_t ror(uint32_t x, unsigned n) { return (x >> n) | (x << (32u - n)); }

static void compress(uint32_t h[8], const uint8_t *p)
{
    uint32_t w[16];
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
    for (unsigned i = 0; i < 64; i++) {
        uint32_t wi;
        if (i < 16) {
            wi = ((uint32_t)p[4 * i] << 24) | ((uint32_t)p[4 * i + 1] << 16) |
                 ((uint32_t)p[4 * i + 2] << 8) | p[4 * i + 3];
        } else {
            uint32_t w15 = w[(i + 1) & 15], w2 = w[(i + 14) & 15];
            uint32_t s0 = ror(w15, 7) ^ ror(w15, 18) ^ (w15 >> 3);
            uint32_t s1 = ror(w2, 17) ^ ror(w2, 19) ^ (w2 >> 10);
            wi = w[i & 15] + s0 + w[(i + 9) & 15] + s1;
        }
        w[i & 15] = wi;
        uint32_t t1 = k + (ror(e, 6) ^ ror(e, 11) ^ ror(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + wi;
        uint32_t t2 = (ror(a, 2) ^ ror(a, 13) ^ ror(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        k = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
    h[5] += f;
    h[6] += g;
    h[7] += k;
}

void ll_sha256_init(ll_sha256_t *s)
{
    static const uint32_t H0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(s->h, H0, sizeof H0);
    s->bytes = 0;
    s->fill = 0;
}

void ll_sha256_update(ll_sha256_t *s, const uint8_t *data, uint32_t len)
{
    s->bytes += len;
    while (len) {
        uint32_t n = LL_SHA256_BLOCK - s->fill;
        if (n > len) {
            n = len;
        }
        memcpy(s->block + s->fill, data, n);
        s->fill += n;
        data += n;
        len -= n;
        if (s->fill == LL_SHA256_BLOCK) {
            compress(s->h, s->block);
            s->fill = 0;
        }
    }
}

void ll_sha256_final(ll_sha256_t *s, uint8_t out[LL_SHA256_SIZE])
{
    uint64_t bits = s->bytes * 8u;
    uint8_t pad = 0x80;
    ll_sha256_update(s, &pad, 1);
    pad = 0;
    while (s->fill != 56) {
        ll_sha256_update(s, &pad, 1);
    }
    uint8_t len_be[8];
    for (int i = 0; i < 8; i++) {
        len_be[i] = (uint8_t)(bits >> (56 - 8 * i));
    }
    ll_sha256_update(s, len_be, 8);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(s->h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(s->h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(s->h[i] >> 8);
        out[4 * i + 3] = (uint8_t)s->h[i];
    }
    memset(s, 0, sizeof *s); /* no key material left behind */
}

void ll_hmac_init(ll_hmac_t *m, const uint8_t *key, uint32_t key_len)
{
    uint8_t k[LL_SHA256_BLOCK];
    memset(k, 0, sizeof k);
    if (key_len > LL_SHA256_BLOCK) {
        ll_sha256_t s;
        ll_sha256_init(&s);
        ll_sha256_update(&s, key, key_len);
        ll_sha256_final(&s, k);
    } else {
        memcpy(k, key, key_len);
    }
    uint8_t ikey[LL_SHA256_BLOCK];
    for (unsigned i = 0; i < LL_SHA256_BLOCK; i++) {
        ikey[i] = (uint8_t)(k[i] ^ 0x36);
        m->okey[i] = (uint8_t)(k[i] ^ 0x5c);
    }
    ll_sha256_init(&m->inner);
    ll_sha256_update(&m->inner, ikey, LL_SHA256_BLOCK);
    memset(k, 0, sizeof k);
    memset(ikey, 0, sizeof ikey);
}

void ll_hmac_update(ll_hmac_t *m, const uint8_t *data, uint32_t len)
{
    ll_sha256_update(&m->inner, data, len);
}

void ll_hmac_final(ll_hmac_t *m, uint8_t out[LL_SHA256_SIZE])
{
    uint8_t ih[LL_SHA256_SIZE];
    ll_sha256_final(&m->inner, ih);
    ll_sha256_t o;
    ll_sha256_init(&o);
    ll_sha256_update(&o, m->okey, LL_SHA256_BLOCK);
    ll_sha256_update(&o, ih, LL_SHA256_SIZE);
    ll_sha256_final(&o, out);
    memset(m, 0, sizeof *m);
}

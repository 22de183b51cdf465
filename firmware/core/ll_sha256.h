/*
 * SHA-256 (FIPS 180-4) and HMAC-SHA-256 (RFC 2104), small and allocation-free.
 * Tested against the FIPS 180-4 examples and the RFC 4231 vectors (firmware/tests/).
 */
#ifndef LL_SHA256_H
#define LL_SHA256_H

#include <stdint.h>

#define LL_SHA256_SIZE 32u
#define LL_SHA256_BLOCK 64u

typedef struct ll_sha256 {
    uint32_t h[8];
    uint64_t bytes;
    uint8_t block[LL_SHA256_BLOCK];
    uint32_t fill;
} ll_sha256_t;

void ll_sha256_init(ll_sha256_t *s);
void ll_sha256_update(ll_sha256_t *s, const uint8_t *data, uint32_t len);
void ll_sha256_final(ll_sha256_t *s, uint8_t out[LL_SHA256_SIZE]);

typedef struct ll_hmac {
    ll_sha256_t inner;
    uint8_t okey[LL_SHA256_BLOCK];
} ll_hmac_t;

void ll_hmac_init(ll_hmac_t *m, const uint8_t *key, uint32_t key_len);
void ll_hmac_update(ll_hmac_t *m, const uint8_t *data, uint32_t len);
void ll_hmac_final(ll_hmac_t *m, uint8_t out[LL_SHA256_SIZE]);

#endif

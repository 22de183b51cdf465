/*
 * Little helpers shared by the core: little-endian access, checks, saturating casts.
 *
 * LL_VERIFY is for bad input: the caller answers with a refusal (NACK) and carries on.
 * LL_ASSERT is for broken invariants (bugs): hal_trap() switches the emitters off and
 * resets. Neither hides control flow beyond one `return`.
 */
#ifndef LL_UTIL_H
#define LL_UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define LL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* a fallible function whose result must be looked at */
#define LL_MUST_CHECK __attribute__((warn_unused_result))

/* bad input: return `ret` from the current function when `cond` is false */
#define LL_VERIFY(cond, ret)                                                                 \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            return ret;                                                                      \
        }                                                                                    \
    } while (0)

/* a broken invariant: trap (emitters off, reset) */
#define LL_ASSERT(core, cond)                                                                \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            hal_trap((core)->board, __FILE__, __LINE__);                                     \
        }                                                                                    \
    } while (0)

static inline uint16_t ll_get16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t ll_get32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}
static inline void ll_put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline void ll_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* wrap-safe "a is at or after b" for u32 millisecond times */
static inline bool ll_time_reached(uint32_t now, uint32_t when)
{
    return (int32_t)(now - when) >= 0;
}

static inline int32_t ll_sat_i32(int64_t v)
{
    return v > INT32_MAX ? INT32_MAX : v < INT32_MIN ? INT32_MIN : (int32_t)v;
}

/* constant-time comparison for authentication tags */
static inline bool ll_equal_ct(const uint8_t *a, const uint8_t *b, uint32_t n)
{
    uint8_t d = 0;
    for (uint32_t i = 0; i < n; i++) {
        d |= (uint8_t)(a[i] ^ b[i]);
    }
    return d == 0;
}

/* CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no final XOR */
uint16_t ll_crc16(uint16_t crc, const uint8_t *data, uint32_t len);
#define LL_CRC16_INIT 0xFFFFu

/* CRC-32 (IEEE, reflected, as zlib) for the persistent image */
uint32_t ll_crc32(uint32_t crc, const uint8_t *data, uint32_t len);

#endif

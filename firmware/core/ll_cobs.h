/*
 * COBS framing (Cheshire & Baker) as docs/wire-protocol.md §2 gives it: a byte-fed
 * decoder that never blocks and resynchronises at every 0x00, and an encoder that
 * writes through a {callback, state} stream.
 */
#ifndef LL_COBS_H
#define LL_COBS_H

#include <stdbool.h>
#include <stdint.h>

typedef struct ll_ostream {
    void (*write)(void *state, const uint8_t *data, uint32_t len);
    void *state;
} ll_ostream_t;

/* COBS of data[0..len) then the 0x00 delimiter, to `out` */
void ll_cobs_encode(const uint8_t *data, uint32_t len, const ll_ostream_t *out);

typedef enum {
    LL_COBS_MORE = 0, /* byte taken, frame not complete */
    LL_COBS_IDLE,     /* a delimiter with nothing before it: idle fill */
    LL_COBS_FRAME,    /* a frame is complete: buf[0..len) */
    LL_COBS_BAD,      /* a frame ended that did not decode (COBS error) */
    LL_COBS_OVERSIZE, /* a frame ended that was longer than the buffer or the limit */
} ll_cobs_result_t;

typedef struct ll_cobs_dec {
    uint8_t *buf;      /* decoded bytes of the frame being received */
    uint32_t cap;      /* room in buf */
    uint32_t len;      /* decoded so far */
    uint32_t enc_len;  /* encoded bytes so far */
    uint32_t max_enc;  /* longest encoding taken before the delimiter */
    uint8_t code;      /* code byte of the current block */
    uint8_t left;      /* data bytes left in the current block */
    bool overflow;
} ll_cobs_dec_t;

void ll_cobs_dec_init(ll_cobs_dec_t *d, uint8_t *buf, uint32_t cap, uint32_t max_enc);
/* drop whatever partial frame is held (a new connection) */
void ll_cobs_dec_reset(ll_cobs_dec_t *d);
/* one byte from the link; LL_COBS_FRAME leaves the frame in buf until the next call */
ll_cobs_result_t ll_cobs_dec_feed(ll_cobs_dec_t *d, uint8_t byte);

#endif

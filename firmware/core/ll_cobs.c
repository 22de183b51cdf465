/* COBS encoder and byte-fed decoder (see ll_cobs.h and wire spec §2). */
#include "ll_cobs.h"

void ll_cobs_encode(const uint8_t *data, uint32_t len, const ll_ostream_t *out)
{
    uint32_t i = 0;
    for (;;) {
        uint32_t start = i;
        uint32_t n = 0;
        while (i < len && data[i] != 0 && n < 254) {
            i++;
            n++;
        }
        uint8_t code = (uint8_t)(n == 254 ? 0xFF : n + 1);
        out->write(out->state, &code, 1);
        if (n) {
            out->write(out->state, data + start, n);
        }
        if (n == 254) {
            if (i == len) {
                break; /* ended exactly after a full run: no final code byte */
            }
            continue; /* a full run implies no zero */
        }
        if (i == len) {
            break;
        }
        i++; /* the zero this block stood for */
    }
    static const uint8_t delim = 0;
    out->write(out->state, &delim, 1);
}

void ll_cobs_dec_init(ll_cobs_dec_t *d, uint8_t *buf, uint32_t cap, uint32_t max_enc)
{
    d->buf = buf;
    d->cap = cap;
    d->max_enc = max_enc;
    ll_cobs_dec_reset(d);
}

void ll_cobs_dec_reset(ll_cobs_dec_t *d)
{
    d->len = 0;
    d->enc_len = 0;
    d->code = 0;
    d->left = 0;
    d->overflow = false;
}

static void push(ll_cobs_dec_t *d, uint8_t b)
{
    if (d->len >= d->cap) {
        d->overflow = true;
        return;
    }
    d->buf[d->len++] = b;
}

ll_cobs_result_t ll_cobs_dec_feed(ll_cobs_dec_t *d, uint8_t byte)
{
    if (byte == 0) {
        ll_cobs_result_t r;
        if (d->enc_len == 0) {
            r = LL_COBS_IDLE;
        } else if (d->overflow) {
            r = LL_COBS_OVERSIZE;
        } else if (d->left != 0) {
            r = LL_COBS_BAD; /* the last block runs past the end of the frame */
        } else {
            r = LL_COBS_FRAME;
        }
        uint32_t len = d->len;
        ll_cobs_dec_reset(d);
        d->len = (r == LL_COBS_FRAME) ? len : 0;
        return r;
    }
    if (d->enc_len == 0) {
        d->len = 0; /* the previous frame's bytes are no longer needed */
    }
    d->enc_len++;
    if (d->overflow) {
        return LL_COBS_MORE;
    }
    if (d->enc_len > d->max_enc) {
        d->overflow = true;
        return LL_COBS_MORE;
    }
    if (d->left == 0) {
        if (d->enc_len > 1 && d->code != 0xFF) {
            push(d, 0);
        }
        d->code = byte;
        d->left = (uint8_t)(byte - 1);
    } else {
        push(d, byte);
        d->left--;
    }
    return LL_COBS_MORE;
}

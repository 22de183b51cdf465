/* NACK details: short English text with a few numbers, formatted like the simulator's
 * (Python's "{:.2f}" and "{:g}") so both implementations give the same bytes. */
#include "ll_internal.h"

void ll_nack_str(ll_nack_t *n, const char *s)
{
    while (*s && n->len < sizeof n->detail && !n->full) {
        n->detail[n->len++] = *s++;
    }
    if (*s && !n->full) {
        /* cut: never inside a UTF-8 character (wire spec §4, NACK detail) */
        uint8_t next = (uint8_t)*s;
        while (n->len > 0 && (next & 0xC0) == 0x80) {
            n->len--;
            next = (uint8_t)n->detail[n->len];
        }
        n->full = true;
    }
}

void ll_nack_set(ll_nack_t *n, uint8_t code, const char *text)
{
    n->code = code;
    n->channel = LL_NO_INDEX;
    n->limit = 0;
    n->observed = 0;
    n->len = 0;
    n->full = false;
    ll_nack_str(n, text);
}

static void put_digits(ll_nack_t *n, uint64_t v, unsigned min_digits)
{
    char tmp[21];
    unsigned k = 0;
    do {
        tmp[k++] = (char)('0' + v % 10);
        v /= 10;
    } while (v || k < min_digits);
    while (k && n->len < sizeof n->detail && !n->full) {
        n->detail[n->len++] = tmp[--k];
    }
}

void ll_nack_u32(ll_nack_t *n, uint32_t v) { put_digits(n, v, 1); }

void ll_nack_i32(ll_nack_t *n, int32_t v)
{
    if (v < 0) {
        ll_nack_str(n, "-");
        put_digits(n, (uint64_t)(-(int64_t)v), 1);
    } else {
        put_digits(n, (uint64_t)v, 1);
    }
}

static uint64_t pow10u(unsigned d)
{
    uint64_t p = 1;
    while (d--) {
        p *= 10;
    }
    return p;
}

void ll_nack_fixed(ll_nack_t *n, int64_t v, unsigned decimals)
{
    uint64_t a = v < 0 ? (uint64_t)(-v) : (uint64_t)v;
    if (v < 0) {
        ll_nack_str(n, "-");
    }
    uint64_t p = pow10u(decimals);
    put_digits(n, a / p, 1);
    if (decimals) {
        ll_nack_str(n, ".");
        put_digits(n, a % p, decimals);
    }
}

void ll_nack_g(ll_nack_t *n, uint64_t v, unsigned decimals)
{
    /* six significant digits, trailing zeros dropped, as Python's "{:g}" */
    uint64_t p = pow10u(decimals);
    unsigned digits = 0;
    for (uint64_t t = v; t; t /= 10) {
        digits++;
    }
    if (digits > 6) {
        uint64_t cut = pow10u(digits - 6);
        uint64_t q = v / cut, r = v % cut;
        if (2 * r > cut || (2 * r == cut && (q & 1))) {
            q++;
        }
        v = q * cut;
    }
    uint64_t ip = v / p, fp = v % p;
    if (ip >= 1000000) { /* exponent form: d.ddddde+XX */
        unsigned e = 0;
        uint64_t m = ip;
        while (m >= 10) {
            m /= 10;
            e++;
        }
        uint64_t mant = ip / pow10u(e > 5 ? e - 5 : 0); /* 6 digits */
        uint64_t lead = mant / 100000, rest = mant % 100000;
        put_digits(n, lead, 1);
        if (rest) {
            unsigned w = 5;
            while (rest % 10 == 0) {
                rest /= 10;
                w--;
            }
            ll_nack_str(n, ".");
            put_digits(n, rest, w);
        }
        ll_nack_str(n, "e+");
        put_digits(n, e, 2);
        return;
    }
    put_digits(n, ip, 1);
    if (fp) {
        unsigned w = decimals;
        while (fp % 10 == 0) {
            fp /= 10;
            w--;
        }
        ll_nack_str(n, ".");
        put_digits(n, fp, w);
    }
}

/* The fake board of the unit tests (see fake_board.h). */
#include "fake_board.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lllt_boards.h"
#include "ll_sha256.h"

fake_board_t FB;
lllt_core_t CORE;
const uint8_t FB_DEV_KEY[32] = "lllt-development-key-not-secret!";
uint32_t FB_COUNTER;
const uint8_t *FB_KEY = FB_DEV_KEY;
static uint8_t host_nonce[16];
static ll_board_t hw;
static fb_frame_t frames_buf[FB_MAX_FRAMES];
static size_t out_taken;

/* --- HAL ---------------------------------------------------------------------------- */

uint32_t hal_now_ms(void *b)
{
    (void)b;
    return FB.now;
}
void hal_sense(void *b, lllt_sense_t *s)
{
    (void)b;
    *s = FB.sense;
}
static uint16_t measured(uint8_t i)
{
    if (!FB.master || FB.open[i]) {
        return 0;
    }
    if (FB.stuck_q[i]) {
        return FB.stuck_q[i];
    }
    return (uint16_t)((uint32_t)FB.pwm[i].level_q * FB.gain_permille[i] / 1000u);
}
void hal_output_sense(void *b, uint16_t *q, uint8_t n)
{
    (void)b;
    for (uint8_t i = 0; i < n; i++) {
        q[i] = measured(i);
    }
}
void hal_pwm_apply(void *b, const lllt_pwm_t *p, uint8_t n)
{
    (void)b;
    memcpy(FB.pwm, p, n * sizeof *p);
    FB.pwm_calls++;
}
void hal_master_set(void *b, bool on)
{
    (void)b;
    FB.master = on;
}
bool hal_driver_test(void *b)
{
    (void)b;
    return FB.driver_ok;
}
void hal_uart_write(void *b, const uint8_t *d, uint32_t n)
{
    (void)b;
    if (FB.out_len + n > FB_OUT_MAX) {
        fprintf(stderr, "fake board: output buffer full\n");
        abort();
    }
    memcpy(FB.out + FB.out_len, d, n);
    FB.out_len += n;
}
bool hal_link_wired(void *b)
{
    (void)b;
    return FB.wired;
}
bool hal_nv_read(void *b, uint32_t off, uint8_t *buf, uint32_t len)
{
    (void)b;
    if (FB.nv_fail || off + len > LLLT_NV_SIZE) {
        return false;
    }
    memcpy(buf, FB.nv + off, len);
    return true;
}
bool hal_nv_write(void *b, uint32_t off, const uint8_t *buf, uint32_t len)
{
    (void)b;
    if (FB.nv_fail || off + len > LLLT_NV_SIZE) {
        return false;
    }
    FB.nv_writes++;
    if (FB.tear_after >= 0) {
        uint32_t k = (uint32_t)FB.tear_after < len ? (uint32_t)FB.tear_after : len;
        memcpy(FB.nv + off, buf, k);
        FB.tear_after = -1;
        return true; /* the reset comes before anyone learns the write was cut */
    }
    memcpy(FB.nv + off, buf, len);
    return true;
}
bool hal_random(void *b, uint8_t *buf, uint32_t len)
{
    (void)b;
    if (!FB.random_ok) {
        return false;
    }
    FB.draws++;
    for (uint32_t i = 0; i < len; i++) {
        buf[i] = FB.nonce_fixed ? FB.nonce[i % 16] : (uint8_t)(FB.draws * 37u + i * 11u);
    }
    return true;
}
bool hal_button_held(void *b)
{
    (void)b;
    return FB.button;
}
void hal_watchdog_kick(void *b)
{
    (void)b;
    FB.kicks++;
}
void hal_trap(void *b, const char *file, int line)
{
    (void)b;
    FB.traps++;
    if (FB.trap_jmp) {
        longjmp(*FB.trap_jmp, 1);
    }
    fprintf(stderr, "trap at %s:%d\n", file, line);
    abort();
}

/* --- set-up --------------------------------------------------------------------------- */

void fb_setup(const char *name, const ll_config_t *cfg)
{
    uint8_t *out = FB.out;
    memset(&FB, 0, sizeof FB);
    FB.out = out ? out : malloc(FB_OUT_MAX);
    FB.out_len = 0;
    out_taken = 0;
    memset(FB.nv, 0xFF, sizeof FB.nv);
    FB.tear_after = -1;
    FB.random_ok = true;
    FB.master = true;
    FB.driver_ok = true;
    FB.wired = true;
    for (int i = 0; i < LLLT_MAX_CHANNELS; i++) {
        FB.gain_permille[i] = 1000;
    }
    for (int z = 0; z < 8; z++) {
        FB.sense.temp_q[z] = 3300;
    }
    FB.sense.ambient_q = 2500;
    FB.sense.supply_mv = 5000;
    FB.sense.head_present = 1;
    const lllt_board_desc_t *d = &lllt_boards[0];
    for (unsigned i = 0; name && i < lllt_board_count; i++) {
        if (!strcmp(lllt_boards[i].name, name)) {
            d = &lllt_boards[i];
        }
    }
    if (!core_board_parse(&hw, d->hello, d->hello_len)) {
        fprintf(stderr, "board %s does not parse\n", d->name);
        abort();
    }
    ll_config_t c = {.tick_ms = 10, .brownout_mv = 4300, .quiet_power_on = true};
    if (cfg) {
        c = *cfg;
    }
    core_init(&CORE, &FB, &hw, &c);
    core_boot(&CORE, LL_BOOT_POWER_ON);
    FB_COUNTER = 0;
    FB_KEY = FB_DEV_KEY;
}

void fb_reboot(uint8_t cause)
{
    FB.now = 0;
    core_boot(&CORE, cause);
}

void fb_rx(const uint8_t *data, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!core_rx_isr(&CORE, data[i])) {
            core_task(&CORE); /* drain, as a main loop would between interrupts */
            core_rx_isr(&CORE, data[i]);
        }
    }
    core_task(&CORE);
}

void fb_run_ms(uint32_t ms)
{
    uint32_t end = FB.now + ms;
    while (FB.now < end) {
        uint32_t next = core_next_due(&CORE);
        FB.now = next < end ? next : end;
        core_task(&CORE);
    }
}

int fb_take(fb_frame_t **frames)
{
    ll_cobs_dec_t dec;
    static uint8_t buf[5000];
    ll_cobs_dec_init(&dec, buf, sizeof buf, 5000);
    int n = 0;
    size_t start = out_taken;
    for (size_t i = out_taken; i < FB.out_len; i++) {
        ll_cobs_result_t r = ll_cobs_dec_feed(&dec, FB.out[i]);
        if (r == LL_COBS_FRAME && n < FB_MAX_FRAMES) {
            fb_frame_t *f = &frames_buf[n++];
            f->version = buf[0];
            f->flags = buf[1];
            f->type = buf[2];
            f->seq = ll_get16(buf + 3);
            f->len = ll_get16(buf + 5);
            memcpy(f->payload, buf + 7, dec.len - 9);
            f->raw_len = (uint32_t)(i + 1 - start);
            memcpy(f->raw, FB.out + start, f->raw_len < sizeof f->raw ? f->raw_len : sizeof f->raw);
            start = i + 1;
        } else if (r != LL_COBS_MORE) {
            start = i + 1;
        }
    }
    out_taken = FB.out_len;
    *frames = frames_buf;
    return n;
}

/* --- host ------------------------------------------------------------------------------- */

typedef struct {
    uint8_t *p;
    size_t n;
} sink_t;
static void sink_write(void *s, const uint8_t *d, uint32_t n)
{
    sink_t *k = s;
    memcpy(k->p + k->n, d, n);
    k->n += n;
}

size_t fb_build(uint8_t *out, uint8_t version, uint8_t type, uint16_t seq,
                const uint8_t *payload, size_t len, const uint8_t *key, const uint8_t *nonce,
                uint32_t counter)
{
    static uint8_t f[4200];
    size_t plen = len + (key ? 20 : 0);
    f[0] = version;
    f[1] = key ? 1 : 0;
    f[2] = type;
    ll_put16(f + 3, seq);
    ll_put16(f + 5, (uint16_t)plen);
    if (len) {
        memcpy(f + 7, payload, len);
    }
    if (key) {
        uint8_t cb[4], mac[32];
        ll_put32(cb, counter);
        ll_hmac_t h;
        ll_hmac_init(&h, key, 32);
        ll_hmac_update(&h, (const uint8_t *)"lllt-auth-1", 11);
        ll_hmac_update(&h, nonce, 16);
        ll_hmac_update(&h, cb, 4);
        ll_hmac_update(&h, f, 7);
        ll_hmac_update(&h, payload, (uint32_t)len);
        ll_hmac_final(&h, mac);
        memcpy(f + 7 + len, cb, 4);
        memcpy(f + 11 + len, mac, 16);
    }
    uint16_t crc = ll_crc16(LL_CRC16_INIT, f, (uint32_t)(7 + plen));
    f[7 + plen] = (uint8_t)(crc >> 8);
    f[8 + plen] = (uint8_t)crc;
    sink_t s = {out, 0};
    ll_ostream_t os = {sink_write, &s};
    ll_cobs_encode(f, (uint32_t)(9 + plen), &os);
    return s.n;
}

int fb_request(uint8_t type, uint16_t seq, const uint8_t *payload, size_t len, bool sign,
               fb_frame_t **frames)
{
    static uint8_t buf[4400];
    size_t n = fb_build(buf, 1, type, seq, payload, len, sign ? FB_KEY : NULL, host_nonce,
                        sign ? ++FB_COUNTER : 0);
    fb_frame_t *dummy;
    fb_take(&dummy); /* forget what came before */
    fb_rx(buf, n);
    return fb_take(frames);
}

const fb_frame_t *fb_hello(uint16_t seq)
{
    uint8_t p[2] = {1, 1};
    fb_frame_t *f;
    int n = fb_request(LL_MT_HELLO, seq, p, 2, false, &f);
    const fb_frame_t *hi = fb_find_type(f, n, LL_MT_HELLO_INFO);
    if (hi) {
        memcpy(host_nonce, hi->payload + 17, 16);
    }
    FB_COUNTER = 0;
    return hi;
}

size_t fb_plan(uint8_t *o, uint32_t plan_id, uint8_t policy, uint32_t lease_ms,
               uint32_t duration_ms, uint32_t ramp_ms, const uint8_t *channels, int n_ch,
               uint16_t irr_q)
{
    ll_put32(o, plan_id);
    o[4] = policy;
    ll_put32(o + 5, lease_ms);
    o[9] = 1;
    uint8_t *s = o + 10;
    s[0] = 0;
    ll_put32(s + 1, duration_ms);
    ll_put32(s + 5, ramp_ms);
    ll_put32(s + 9, 0);
    ll_put16(s + 13, 10000);
    s[15] = (uint8_t)n_ch;
    for (int i = 0; i < n_ch; i++) {
        uint8_t *q = s + 16 + 7 * i;
        q[0] = channels[i];
        ll_put16(q + 1, irr_q);
        ll_put32(q + 3, 0);
    }
    return 26 + 7u * (unsigned)n_ch;
}

const fb_frame_t *fb_find_event(fb_frame_t *frames, int n, uint8_t kind)
{
    for (int i = 0; i < n; i++) {
        if (frames[i].type == LL_MT_EVENT && frames[i].payload[4] == kind) {
            return &frames[i];
        }
    }
    return NULL;
}

const fb_frame_t *fb_find_type(fb_frame_t *frames, int n, uint8_t type)
{
    for (int i = 0; i < n; i++) {
        if (frames[i].type == type) {
            return &frames[i];
        }
    }
    return NULL;
}

/* A fake board for the core's unit tests: every sensor and actuator is a field the test
 * sets or reads, the link is a byte buffer, persistent storage is RAM that can tear a
 * write, and hal_trap() jumps back to the test. Plus a small host: frame building,
 * signing, and a parser for what the core sent. */
#ifndef FAKE_BOARD_H
#define FAKE_BOARD_H

#include <setjmp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ll_internal.h"
#include "lllt_core.h"

#define FB_OUT_MAX (1 << 20)
#define FB_MAX_FRAMES 4096

typedef struct fb_frame {
    uint8_t version, flags, type;
    uint16_t seq;
    uint16_t len;
    uint8_t payload[4200];
    uint8_t raw[4300]; /* the encoded frame as sent, delimiter included */
    uint32_t raw_len;
} fb_frame_t;

typedef struct fake_board {
    uint32_t now;
    lllt_sense_t sense;
    /* output model: measured = commanded level × gain_permille/1000, unless open/stuck */
    uint16_t gain_permille[LLLT_MAX_CHANNELS];
    bool open[LLLT_MAX_CHANNELS];
    uint16_t stuck_q[LLLT_MAX_CHANNELS]; /* nonzero: emits this whatever is commanded */
    lllt_pwm_t pwm[LLLT_MAX_CHANNELS];
    bool master;
    int pwm_calls;
    int kicks;
    bool driver_ok;
    bool wired;
    bool button;
    /* link */
    uint8_t *out;
    size_t out_len;
    /* persistent */
    uint8_t nv[LLLT_NV_SIZE];
    int nv_writes;
    int tear_after; /* >= 0: the next write stores only this many bytes, then "resets" */
    bool nv_fail;
    /* randomness */
    bool random_ok;
    uint8_t nonce[16];
    bool nonce_fixed; /* else a counter pattern: every draw differs */
    uint32_t draws;
    /* trap */
    jmp_buf *trap_jmp;
    int traps;
} fake_board_t;

extern fake_board_t FB;
extern lllt_core_t CORE;

/* fresh board and core for `board_name` (NULL: reference-cap), booted at time 0 */
void fb_setup(const char *board_name, const ll_config_t *cfg);
/* reboot the same board (RAM lost, NV kept) */
void fb_reboot(uint8_t cause);
/* bytes from the host, then one core_task at the current time */
void fb_rx(const uint8_t *data, size_t n);
/* advance time by ms, running core_task at every tick (10 ms) */
void fb_run_ms(uint32_t ms);
/* the frames the core sent since the last call (decoded), count returned */
int fb_take(fb_frame_t **frames);
/* build one request frame (signed with key/nonce/counter when key != NULL) */
size_t fb_build(uint8_t *out, uint8_t version, uint8_t type, uint16_t seq,
                const uint8_t *payload, size_t len, const uint8_t *key, const uint8_t *nonce,
                uint32_t counter);
/* send one request and return the frames that came back */
int fb_request(uint8_t type, uint16_t seq, const uint8_t *payload, size_t len, bool sign,
               fb_frame_t **frames);
/* the development key; the signing counter used by fb_request (reset by fb_hello) */
extern const uint8_t FB_DEV_KEY[32];
extern uint32_t FB_COUNTER;
extern const uint8_t *FB_KEY; /* key fb_request signs with */
/* HELLO; remembers the nonce for signing. Returns the HELLO_INFO frame. */
const fb_frame_t *fb_hello(uint16_t seq);
/* a plan payload: one DURATION step with every given channel at irr_q */
size_t fb_plan(uint8_t *out, uint32_t plan_id, uint8_t policy, uint32_t lease_ms,
               uint32_t duration_ms, uint32_t ramp_ms, const uint8_t *channels, int n_ch,
               uint16_t irr_q);
/* find the first EVENT of a kind among frames; NULL when none */
const fb_frame_t *fb_find_event(fb_frame_t *frames, int n, uint8_t kind);
const fb_frame_t *fb_find_type(fb_frame_t *frames, int n, uint8_t type);

#endif

/*
 * libFuzzer harness of the frame decoder, the dispatcher and the control tick.
 *
 * An input is a script of operations on a fresh device (the fake board):
 *   0 LEN BYTES        raw bytes on the link (anything: garbage, cut frames, delimiters)
 *   1 TYPE LEN BYTES   a well-formed request with that payload, signed with the device's
 *                      current nonce and the next counter (so fuzzing reaches past the
 *                      authentication into plan checks, sessions and interlocks)
 *   2 N                advance time by N × 7 ms (ticks, telemetry, leases, reports)
 *   3 WHAT VALUE       change the plant: a zone's temperature, the head sensor, the
 *                      supply, a stuck-on or open channel, the output gain
 *   4                  reboot (RAM lost, persistent storage kept)
 * After every operation the safety invariants are checked: no channel is commanded
 * unless a session is running, nothing above a channel's maximum, no light commanded
 * while a fault is latched, and never a trap. A violation aborts (a finding).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_board.h"

static void invariants(void)
{
    for (uint8_t i = 0; i < CORE.hw.n_ch; i++) {
        const lllt_pwm_t *p = &FB.pwm[i];
        if (p->level_q && !(CORE.session && CORE.state == LL_ST_RUNNING && CORE.iv_running)) {
            fprintf(stderr, "channel %u commanded %u outside a running session (state %u)\n",
                    i, p->level_q, CORE.state);
            abort();
        }
        if (p->level_q > CORE.hw.ch_max_q[i] || p->level_q > CORE.hw.max_irr_q) {
            fprintf(stderr, "channel %u commanded %u above its maximum\n", i, p->level_q);
            abort();
        }
        if (p->level_q && CORE.n_latched) {
            fprintf(stderr, "channel %u lit with a fault latched\n", i);
            abort();
        }
    }
    if (CORE.state == LL_ST_FAULT && CORE.session) {
        fprintf(stderr, "a session survived a latched fault\n");
        abort();
    }
    if (FB.out_len > FB_OUT_MAX / 2) {
        FB.out_len = 0; /* forget the output: only the invariants matter here */
        fb_frame_t *f;
        fb_take(&f);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fb_setup(NULL, NULL);
    fb_hello(1);
    size_t i = 0;
    uint16_t seq = 100;
    static uint8_t frame[5000];
    while (i < size) {
        uint8_t op = data[i++] % 5;
        if (op == 0 && i < size) {
            size_t n = data[i++] * 4u;
            if (n > size - i) {
                n = size - i;
            }
            fb_rx(data + i, n);
            i += n;
        } else if (op == 1 && i + 1 < size) {
            uint8_t type = data[i++] & 0x3F;
            size_t n = data[i++] * 2u;
            if (n > size - i) {
                n = size - i;
            }
            extern const uint8_t *FB_KEY;
            size_t m = fb_build(frame, 1, type, seq++, data + i, n,
                                (type & 1) ? FB_KEY : NULL, CORE.nonce, ++FB_COUNTER);
            fb_rx(frame, m);
            i += n;
        } else if (op == 2 && i < size) {
            fb_run_ms(data[i++] * 7u);
        } else if (op == 3 && i + 1 < size) {
            uint8_t what = data[i++], v = data[i++];
            switch (what % 6) {
            case 0: FB.sense.temp_q[v % 4] = (int16_t)(2000 + v * 12); break;
            case 1: FB.sense.head_present = v & 1; break;
            case 2: FB.sense.supply_mv = (uint16_t)(4000 + v * 4); break;
            case 3: FB.stuck_q[v % 8] = (uint16_t)(v & 0xF0); break;
            case 4: FB.open[v % 8] = v & 1; break;
            default: FB.gain_permille[v % 8] = (uint16_t)(800 + v * 2); break;
            }
        } else if (op == 4) {
            fb_reboot(LL_BOOT_WATCHDOG);
            fb_hello(2);
        }
        invariants();
    }
    return 0;
}

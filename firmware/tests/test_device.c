/* The core as a device: sessions, ramps, pulsing, fluence targets, every interlock,
 * lease policies, records across reboots, authentication, duplicate memory, telemetry,
 * record access and key provisioning, against the fake board, and a fault-injecting
 * link. Built twice: as a development build and with LLLT_RELEASE=1, where the
 * development key must be refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fake_board.h"

static const uint8_t CH0[] = {0};
static const uint8_t ALL8[] = {0, 1, 2, 3, 4, 5, 6, 7};
static const uint8_t OWN_KEY[32] = "0123456789abcdef0123456789abcdef";

/* a device that authenticates: the development key, or in a release build its own */
static void setup_device(void)
{
    if (LLLT_RELEASE) {
        ll_config_t c = {.tick_ms = 10, .brownout_mv = 4300, .quiet_power_on = true,
                         .key = OWN_KEY};
        fb_setup(NULL, &c);
        FB_KEY = OWN_KEY;
    } else {
        fb_setup(NULL, NULL);
    }
    assert_non_null(fb_hello(1));
}

static uint16_t SEQ = 10;

static const fb_frame_t *reply_of(fb_frame_t *f, int n, uint16_t seq)
{
    for (int i = 0; i < n; i++) {
        if (f[i].type >= 0x40 && f[i].type < 0x60 && f[i].seq == seq) {
            return &f[i];
        }
    }
    return NULL;
}

/* send, expect exactly one reply to it; returns its type (NACK code in *code) */
static uint8_t req(uint8_t type, const uint8_t *p, size_t n, bool sign, uint8_t *code,
                   fb_frame_t **frames, int *count)
{
    fb_frame_t *f;
    uint16_t seq = SEQ++;
    int k = fb_request(type, seq, p, n, sign, &f);
    const fb_frame_t *r = reply_of(f, k, seq);
    assert_non_null(r);
    assert_ptr_equal(r, &f[0]); /* replies come before any event the request causes */
    if (code) {
        *code = r->type == LL_MT_NACK ? r->payload[0] : 0;
    }
    if (frames) {
        *frames = f;
        *count = k;
    }
    return r->type;
}

static void upload_start(const uint8_t *plan, size_t n)
{
    uint8_t code;
    assert_int_equal(req(LL_MT_UPLOAD_PLAN, plan, n, true, &code, NULL, NULL), LL_MT_ACK);
    uint8_t id[4];
    memcpy(id, plan, 4);
    fb_frame_t *f;
    int k;
    assert_int_equal(req(LL_MT_START, id, 4, true, &code, &f, &k), LL_MT_STARTED);
    assert_int_equal(f[0].payload[4], 0);
    assert_int_equal(CORE.state, LL_ST_RUNNING);
}

static void run_plan_ch0(uint32_t id, uint8_t policy, uint32_t lease, uint32_t dur,
                         uint32_t ramp, uint16_t irr)
{
    uint8_t plan[100];
    size_t n = fb_plan(plan, id, policy, lease, dur, ramp, CH0, 1, irr);
    upload_start(plan, n);
}

static void heartbeat(void) { req(LL_MT_HEARTBEAT, NULL, 0, false, NULL, NULL, NULL); }

/* run ms with a heartbeat every 200 ms */
static void run_alive(uint32_t ms)
{
    for (uint32_t t = 0; t < ms; t += 200) {
        fb_run_ms(200);
        heartbeat();
    }
}

static void tel_off(void)
{
    uint8_t p[2] = {0, 0};
    req(LL_MT_SET_TELEMETRY, p, 2, false, NULL, NULL, NULL);
}

static uint8_t last_outcome(void) { return CORE.records[0].outcome; }

/* --- sessions ----------------------------------------------------------------------- */

static void test_session_completes_with_its_fluence(void **s)
{
    (void)s;
    setup_device();
    run_plan_ch0(1, LL_POLICY_FINISH, 1000, 10000, 0, 300); /* 3 mW/cm² × 10 s */
    run_alive(10400);
    assert_int_equal(CORE.state, LL_ST_IDLE);
    assert_int_equal(last_outcome(), LL_OUT_COMPLETED);
    assert_int_equal(CORE.records[0].fluence_uj[0], 30000); /* 0.03 J/cm² */
    assert_int_equal(CORE.records[0].emitting_ms, 10000);
    for (int i = 1; i < 8; i++) {
        assert_int_equal(CORE.records[0].fluence_uj[i], 0);
    }
    assert_int_equal(FB.pwm[0].level_q, 0); /* off at the end */
    assert_int_equal(FB.traps, 0);
}

static void test_fluence_follows_the_measured_output(void **s)
{
    (void)s;
    setup_device();
    FB.gain_permille[0] = 900; /* the LEDs give 90 % of what is commanded */
    run_plan_ch0(2, LL_POLICY_FINISH, 1000, 10000, 0, 300);
    run_alive(10400);
    assert_int_equal(CORE.records[0].fluence_uj[0], 27000);
}

static void test_ramp_delivers_half_its_fluence(void **s)
{
    (void)s;
    setup_device();
    run_plan_ch0(3, LL_POLICY_FINISH, 1000, 10000, 4000, 1000); /* 10 mW/cm², 4 s ramp */
    fb_run_ms(1010);
    assert_true(FB.pwm[0].level_q > 0 && FB.pwm[0].level_q < 1000); /* ramping */
    assert_true(CORE.iv_ramping);
    run_alive(9400);
    assert_int_equal(last_outcome(), LL_OUT_COMPLETED);
    /* 10 mW/cm² × (10 s − 4 s / 2) = 80 mJ/cm² */
    assert_int_equal(CORE.records[0].fluence_uj[0], 80000);
}

static void test_pulsing_is_duty_and_frequency(void **s)
{
    (void)s;
    setup_device();
    uint8_t plan[100];
    size_t n = fb_plan(plan, 4, LL_POLICY_FINISH, 1000, 10000, 0, CH0, 1, 400);
    ll_put32(plan + 10 + 9, 10000); /* 10 Hz */
    ll_put16(plan + 10 + 13, 5000); /* 50 % */
    upload_start(plan, n);
    fb_run_ms(20);
    assert_int_equal(FB.pwm[0].level_q, 400); /* the peak, not the average */
    assert_int_equal(FB.pwm[0].duty, 5000);
    assert_int_equal(FB.pwm[0].pulse_mhz, 10000);
    run_alive(10400);
    assert_int_equal(CORE.records[0].fluence_uj[0], 20000); /* 4 mW × 50 % × 10 s */
}

static void test_pulse_outside_range_is_refused(void **s)
{
    (void)s;
    setup_device();
    uint8_t plan[100], code;
    size_t n = fb_plan(plan, 5, LL_POLICY_FINISH, 1000, 10000, 0, CH0, 1, 400);
    ll_put32(plan + 19, 1000); /* 1 Hz: below the 2 Hz minimum */
    ll_put16(plan + 23, 5000);
    assert_int_equal(req(LL_MT_UPLOAD_PLAN, plan, n, true, &code, NULL, NULL), LL_MT_NACK);
    assert_int_equal(code, LL_NC_PULSE_RANGE);
    ll_put32(plan + 19, 0); /* continuous with duty 50 % */
    assert_int_equal(req(LL_MT_UPLOAD_PLAN, plan, n, true, &code, NULL, NULL), LL_MT_NACK);
    assert_int_equal(code, LL_NC_PULSE_RANGE);
}

static void test_fluence_step_stops_each_channel_at_its_target(void **s)
{
    (void)s;
    setup_device();
    uint8_t plan[100];
    size_t n = fb_plan(plan, 6, LL_POLICY_FINISH, 1000, 60000, 0, ALL8, 2, 500);
    plan[10] = LL_STEP_FLUENCE;
    ll_put32(plan + 26 + 3, 10000); /* channel 0: 10 mJ/cm² (2 s at 5 mW) */
    ll_put32(plan + 33 + 3, 20000); /* channel 1: 20 mJ/cm² (4 s) */
    upload_start(plan, n);
    fb_frame_t *f;
    fb_take(&f);
    fb_run_ms(2100);
    int k = fb_take(&f);
    const fb_frame_t *e = fb_find_event(f, k, LL_EV_TARGET_REACHED);
    assert_non_null(e);
    assert_int_equal(e->payload[6], 0);
    assert_int_equal(FB.pwm[0].level_q, 0);
    assert_int_equal(FB.pwm[1].level_q, 500);
    run_alive(2200);
    assert_int_equal(last_outcome(), LL_OUT_COMPLETED);
    assert_int_equal(CORE.records[0].fluence_uj[0], 10000);
    assert_int_equal(CORE.records[0].fluence_uj[1], 20000);
}

static void test_fluence_target_not_reached_ends_max_duration(void **s)
{
    (void)s;
    setup_device();
    uint8_t plan[100];
    size_t n = fb_plan(plan, 7, LL_POLICY_FINISH, 1000, 3000, 0, CH0, 1, 500);
    plan[10] = LL_STEP_FLUENCE;
    ll_put32(plan + 26 + 3, 100000);
    upload_start(plan, n);
    run_alive(3400);
    assert_int_equal(last_outcome(), LL_OUT_MAX_DURATION);
}

static void test_start_is_idempotent(void **s)
{
    (void)s;
    setup_device();
    run_plan_ch0(8, LL_POLICY_FINISH, 1000, 2000, 0, 300);
    uint8_t id[4] = {8, 0, 0, 0};
    fb_frame_t *f;
    int k;
    assert_int_equal(req(LL_MT_START, id, 4, true, NULL, &f, &k), LL_MT_STARTED);
    assert_int_equal(f[0].payload[4], 1); /* ALREADY_RUNNING */
    assert_int_equal(k, 1);               /* and nothing else happened */
    run_alive(2400);
    assert_int_equal(req(LL_MT_START, id, 4, true, NULL, &f, &k), LL_MT_STARTED);
    assert_int_equal(f[0].payload[4], 2); /* ALREADY_FINISHED */
    assert_int_equal(CORE.n_records, 1);
}

static void test_upload_checks_in_order(void **s)
{
    (void)s;
    setup_device();
    uint8_t plan[200], code;
    size_t n = fb_plan(plan, 9, LL_POLICY_FINISH, 1000, 10000, 0, CH0, 1, 1001);
    assert_int_equal(req(LL_MT_UPLOAD_PLAN, plan, n, true, &code, NULL, NULL), LL_MT_NACK);
    assert_int_equal(code, LL_NC_LIMIT_IRRADIANCE);
    n = fb_plan(plan, 9, LL_POLICY_FINISH, 100, 10000, 0, CH0, 1, 100);
    req(LL_MT_UPLOAD_PLAN, plan, n, true, &code, NULL, NULL);
    assert_int_equal(code, LL_NC_BAD_VALUE); /* lease below 500 ms */
    n = fb_plan(plan, 9, LL_POLICY_FINISH, 1000, 3600001, 0, CH0, 1, 100);
    req(LL_MT_UPLOAD_PLAN, plan, n, true, &code, NULL, NULL);
    assert_int_equal(code, LL_NC_LIMIT_DURATION);
    n = fb_plan(plan, 9, LL_POLICY_FINISH, 1000, 3600000, 0, CH0, 1, 1000); /* 36 J */
    req(LL_MT_UPLOAD_PLAN, plan, n, true, &code, NULL, NULL);
    assert_int_equal(code, LL_NC_LIMIT_FLUENCE);
    uint8_t bad_ch[] = {9};
    n = fb_plan(plan, 9, LL_POLICY_FINISH, 1000, 1000, 0, bad_ch, 1, 100);
    req(LL_MT_UPLOAD_PLAN, plan, n, true, &code, NULL, NULL);
    assert_int_equal(code, LL_NC_UNKNOWN_CHANNEL);
    uint8_t twice[] = {3, 3};
    n = fb_plan(plan, 9, LL_POLICY_FINISH, 1000, 1000, 0, twice, 2, 100);
    req(LL_MT_UPLOAD_PLAN, plan, n, true, &code, NULL, NULL);
    assert_int_equal(code, LL_NC_BAD_VALUE);
    n = fb_plan(plan, 9, LL_POLICY_FINISH, 1000, 1000, 2000, CH0, 1, 100);
    req(LL_MT_UPLOAD_PLAN, plan, n, true, &code, NULL, NULL);
    assert_int_equal(code, LL_NC_BAD_VALUE); /* ramp longer than the step */
    n = fb_plan(plan, 9, LL_POLICY_FINISH, 1000, 1000, 0, CH0, 1, 100);
    req(LL_MT_UPLOAD_PLAN, plan, n - 1, true, &code, NULL, NULL);
    assert_int_equal(code, LL_NC_BAD_LENGTH);
    /* exactly at the fluence limit is accepted: 15 J/cm² = 10 mW/cm² × 1500 s */
    n = fb_plan(plan, 9, LL_POLICY_FINISH, 1000, 1500000, 0, CH0, 1, 1000);
    assert_int_equal(req(LL_MT_UPLOAD_PLAN, plan, n, true, &code, NULL, NULL), LL_MT_ACK);
    assert_int_equal(CORE.state, LL_ST_READY);
}

static void test_energy_needs_authentication(void **s)
{
    (void)s;
    setup_device();
    uint8_t plan[100], code;
    size_t n = fb_plan(plan, 10, LL_POLICY_FINISH, 1000, 1000, 0, CH0, 1, 100);
    req(LL_MT_UPLOAD_PLAN, plan, n, false, &code, NULL, NULL);
    assert_int_equal(code, LL_NC_AUTH_REQUIRED);
    const uint8_t *saved = FB_KEY;
    static const uint8_t wrong[32] = "not-the-key-not-the-key-not-the!";
    FB_KEY = wrong;
    req(LL_MT_UPLOAD_PLAN, plan, n, true, &code, NULL, NULL);
    assert_int_equal(code, LL_NC_AUTH_FAILED);
    FB_KEY = saved;
    assert_int_equal(req(LL_MT_UPLOAD_PLAN, plan, n, true, &code, NULL, NULL), LL_MT_ACK);
    uint8_t id[4] = {10, 0, 0, 0};
    req(LL_MT_START, id, 4, false, &code, NULL, NULL);
    assert_int_equal(code, LL_NC_AUTH_REQUIRED);
    /* a replayed counter is refused */
    FB_COUNTER = 0;
    req(LL_MT_START, id, 4, true, &code, NULL, NULL);
    assert_int_equal(code, LL_NC_AUTH_FAILED);
    assert_int_equal(CORE.state, LL_ST_READY);
    /* ABORT needs nothing */
    assert_int_equal(req(LL_MT_ABORT, NULL, 0, false, NULL, NULL, NULL), LL_MT_ACK);
    assert_int_equal(CORE.state, LL_ST_IDLE);
}

static void test_a_new_hello_draws_a_new_nonce_and_old_signatures_fail(void **s)
{
    (void)s;
    setup_device();
    uint8_t n1[16];
    memcpy(n1, CORE.nonce, 16);
    const fb_frame_t *hi = fb_hello(2);
    assert_non_null(hi);
    assert_memory_not_equal(n1, CORE.nonce, 16);
    /* a frame signed under the old nonce does not verify */
    uint8_t plan[100], buf[300], code = 0;
    size_t n = fb_plan(plan, 11, LL_POLICY_FINISH, 1000, 1000, 0, CH0, 1, 100);
    size_t m = fb_build(buf, 1, LL_MT_UPLOAD_PLAN, 77, plan, n, FB_KEY, n1, 5);
    fb_frame_t *f;
    fb_take(&f);
    fb_rx(buf, m);
    assert_int_equal(fb_take(&f), 1);
    code = f[0].payload[0];
    assert_int_equal(code, LL_NC_AUTH_FAILED);
}

static void test_no_randomness_no_authentication(void **s)
{
    (void)s;
    setup_device();
    FB.random_ok = false;
    fb_hello(3);
    uint8_t plan[100], code;
    size_t n = fb_plan(plan, 12, LL_POLICY_FINISH, 1000, 1000, 0, CH0, 1, 100);
    req(LL_MT_UPLOAD_PLAN, plan, n, true, &code, NULL, NULL);
    assert_int_equal(code, LL_NC_AUTH_FAILED);
}

static void test_development_key_only_in_a_development_build(void **s)
{
    (void)s;
    fb_setup(NULL, NULL); /* a fresh device, board says DEV_KEY */
    const fb_frame_t *hi = fb_hello(1);
    uint16_t caps = ll_get16(hi->payload + 5);
    uint8_t plan[100], code;
    size_t n = fb_plan(plan, 13, LL_POLICY_FINISH, 1000, 1000, 0, CH0, 1, 100);
    FB_KEY = FB_DEV_KEY;
    req(LL_MT_UPLOAD_PLAN, plan, n, true, &code, NULL, NULL);
    if (LLLT_RELEASE) {
        assert_false(caps & LL_CAP_DEV_KEY);
        assert_int_equal(code, LL_NC_AUTH_FAILED);
    } else {
        assert_true(caps & LL_CAP_DEV_KEY);
        assert_int_equal(code, 0);
    }
    /* a device with its own key refuses the development key in any build */
    ll_config_t c = {.tick_ms = 10, .brownout_mv = 4300, .quiet_power_on = true, .key = OWN_KEY};
    fb_setup(NULL, &c);
    hi = fb_hello(1);
    assert_false(ll_get16(hi->payload + 5) & LL_CAP_DEV_KEY);
    FB_KEY = FB_DEV_KEY;
    req(LL_MT_UPLOAD_PLAN, plan, n, true, &code, NULL, NULL);
    assert_int_equal(code, LL_NC_AUTH_FAILED);
}

/* --- interlocks ----------------------------------------------------------------------- */

static void test_overtemperature_emitters_off_in_one_tick(void **s)
{
    (void)s;
    setup_device();
    run_plan_ch0(20, LL_POLICY_FINISH, 1000, 600000, 0, 500);
    fb_run_ms(500);
    assert_int_equal(FB.pwm[0].level_q, 500);
    fb_frame_t *f;
    fb_take(&f);
    FB.sense.temp_q[0] = 4250; /* the cut-off reading of reference-cap */
    uint32_t t0 = FB.now;
    FB.now = (CORE.tick_n + 1) * 10; /* exactly one tick */
    core_task(&CORE);
    assert_int_equal(CORE.tick_n * 10, FB.now);
    assert_true(FB.now - t0 <= 10);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(FB.pwm[i].level_q, 0);
    }
    int k = fb_take(&f);
    const fb_frame_t *e = fb_find_event(f, k, LL_EV_INTERLOCK);
    assert_non_null(e);
    assert_int_equal(e->payload[5], LL_IL_THERMAL_CUTOFF);
    assert_int_equal(ll_get32(e->payload), FB.now);
    assert_int_equal(CORE.state, LL_ST_FAULT);
    assert_int_equal(last_outcome(), LL_OUT_INTERLOCK);
    assert_int_equal(CORE.records[0].reason, LL_IL_THERMAL_CUTOFF);
    /* the telemetry sample right after SESSION_END shows the emitters off */
    const fb_frame_t *tel = fb_find_type(f, k, LL_MT_TELEMETRY);
    assert_non_null(tel);
    assert_false(ll_get16(tel->payload + 12) & LL_TF_EMITTING);
    assert_true(ll_get16(tel->payload + 12) & LL_TF_FAULT_THERMAL);
    /* latched: CLEAR_FAULT refused while hot, accepted below cut-off − 1 °C */
    uint8_t code;
    req(LL_MT_CLEAR_FAULT, NULL, 0, false, &code, NULL, NULL);
    assert_int_equal(code, LL_NC_FAULT_LATCHED);
    FB.sense.temp_q[0] = 4160;
    fb_run_ms(20);
    req(LL_MT_CLEAR_FAULT, NULL, 0, false, &code, NULL, NULL);
    assert_int_equal(code, LL_NC_FAULT_LATCHED);
    FB.sense.temp_q[0] = 4100;
    fb_run_ms(20);
    assert_int_equal(req(LL_MT_CLEAR_FAULT, NULL, 0, false, &code, NULL, NULL), LL_MT_ACK);
    assert_int_equal(CORE.state, LL_ST_IDLE);
}

static void test_too_hot_to_start(void **s)
{
    (void)s;
    setup_device();
    FB.sense.temp_q[2] = 4160; /* within 1 °C of the cut-off */
    fb_run_ms(20);
    uint8_t plan[100], code;
    size_t n = fb_plan(plan, 21, LL_POLICY_FINISH, 1000, 1000, 0, CH0, 1, 100);
    req(LL_MT_UPLOAD_PLAN, plan, n, true, &code, NULL, NULL);
    uint8_t id[4] = {21, 0, 0, 0};
    req(LL_MT_START, id, 4, true, &code, NULL, NULL);
    assert_int_equal(code, LL_NC_TOO_HOT);
}

static void test_sensor_fault(void **s)
{
    (void)s;
    setup_device();
    run_plan_ch0(22, LL_POLICY_FINISH, 1000, 60000, 0, 500);
    fb_run_ms(100);
    FB.sense.temp_q[1] = LLLT_HAL_NO_READING;
    fb_run_ms(10);
    assert_int_equal(FB.pwm[0].level_q, 0);
    assert_int_equal(CORE.state, LL_ST_FAULT);
    assert_int_equal(CORE.records[0].reason, LL_IL_SENSOR_FAULT);
}

static void test_over_output_opens_the_master_switch(void **s)
{
    (void)s;
    setup_device();
    run_plan_ch0(23, LL_POLICY_FINISH, 1000, 60000, 0, 300);
    fb_run_ms(100);
    FB.stuck_q[5] = 800; /* channel 5 emits while commanded off */
    fb_run_ms(10);
    assert_int_equal(CORE.state, LL_ST_RUNNING); /* one tick is not enough */
    fb_run_ms(10);
    assert_int_equal(CORE.state, LL_ST_FAULT);
    assert_false(FB.master);
    assert_int_equal(CORE.records[0].reason, LL_IL_OVER_OUTPUT);
    uint8_t code;
    FB.driver_ok = false;
    req(LL_MT_CLEAR_FAULT, NULL, 0, false, &code, NULL, NULL);
    assert_int_equal(code, LL_NC_FAULT_LATCHED);
    FB.driver_ok = true;
    FB.stuck_q[5] = 0;
    assert_int_equal(req(LL_MT_CLEAR_FAULT, NULL, 0, false, &code, NULL, NULL), LL_MT_ACK);
    assert_true(FB.master);
}

static void test_a_stuck_driver_counts_at_full_duty(void **s)
{
    /* a pulsed session (10 Hz, 50 %) whose driver sticks on: it may conduct through the
     * off-time too, so each tick it reads over its allowed output counts at full duty; at
     * the commanded duty the record would hold less than the channel delivered */
    (void)s;
    setup_device();
    tel_off();
    uint8_t plan[100];
    size_t n = fb_plan(plan, 29, LL_POLICY_FINISH, 1000, 60000, 0, CH0, 1, 300);
    ll_put32(plan + 10 + 9, 10000); /* pulse 10 Hz */
    ll_put16(plan + 10 + 13, 5000); /* duty 50 % */
    upload_start(plan, n);
    fb_run_ms(1000);
    assert_int_equal(CORE.state, LL_ST_RUNNING);
    uint64_t before = CORE.fl[0];
    assert_int_equal(before % (300ull * 5000u * 10u), 0); /* so far at the commanded duty */
    FB.stuck_q[0] = 800; /* over 120 % of 3 mW/cm² + 0.05 */
    fb_run_ms(30);
    assert_int_equal(CORE.state, LL_ST_FAULT);
    assert_int_equal(CORE.records[0].reason, LL_IL_OVER_OUTPUT);
    /* the two ticks read over the limit before the trip: 8 mW/cm², full duty, 10 ms */
    assert_true(CORE.fl[0] - before == 2ull * 800u * 10000u * 10u);
}

static void test_output_above_120_percent_is_over_output(void **s)
{
    (void)s;
    setup_device();
    run_plan_ch0(24, LL_POLICY_FINISH, 1000, 60000, 0, 300);
    FB.gain_permille[0] = 1190; /* 119 %: tolerated */
    fb_run_ms(200);
    assert_int_equal(CORE.state, LL_ST_RUNNING);
    FB.gain_permille[0] = 1250; /* 125 % */
    fb_run_ms(30);
    assert_int_equal(CORE.state, LL_ST_FAULT);
}

static void test_brownout(void **s)
{
    (void)s;
    setup_device();
    run_plan_ch0(25, LL_POLICY_FINISH, 1000, 60000, 0, 300);
    fb_run_ms(100);
    FB.sense.supply_mv = 4000;
    fb_run_ms(10);
    assert_int_equal(FB.pwm[0].level_q, 0);
    assert_int_equal(CORE.records[0].reason, LL_IL_BROWNOUT);
    uint8_t code;
    req(LL_MT_CLEAR_FAULT, NULL, 0, false, &code, NULL, NULL);
    assert_int_equal(code, LL_NC_FAULT_LATCHED);
    FB.sense.supply_mv = 5000;
    fb_run_ms(10);
    assert_int_equal(req(LL_MT_CLEAR_FAULT, NULL, 0, false, &code, NULL, NULL), LL_MT_ACK);
}

static void test_head_off_pauses_and_aborts_after_five_minutes(void **s)
{
    (void)s;
    setup_device();
    tel_off();
    run_plan_ch0(26, LL_POLICY_FINISH, 600000, 1200000, 0, 300);
    fb_run_ms(1000);
    FB.sense.head_present = 0;
    fb_run_ms(10);
    assert_int_equal(CORE.state, LL_ST_PAUSED);
    assert_int_equal(FB.pwm[0].level_q, 0);
    uint32_t el = CORE.el;
    FB.sense.head_present = 1;
    fb_run_ms(10);
    assert_int_equal(CORE.state, LL_ST_RUNNING); /* back by itself */
    fb_run_ms(100);
    assert_true(CORE.el > el);
    FB.sense.head_present = 0;
    fb_run_ms(299990);
    assert_int_equal(CORE.state, LL_ST_PAUSED);
    fb_run_ms(20);
    assert_int_equal(CORE.state, LL_ST_IDLE);
    assert_int_equal(last_outcome(), LL_OUT_INTERLOCK);
    assert_int_equal(CORE.records[0].reason, LL_IL_HEAD_OFF_TIMEOUT);
}

static void test_lease_finish_runs_to_the_end(void **s)
{
    (void)s;
    setup_device();
    run_plan_ch0(27, LL_POLICY_FINISH, 1000, 5000, 0, 300);
    fb_frame_t *f;
    fb_take(&f);
    fb_run_ms(1500); /* no heartbeat */
    int k = fb_take(&f);
    const fb_frame_t *e = fb_find_event(f, k, LL_EV_LEASE_EXPIRED);
    assert_non_null(e);
    assert_int_equal(e->payload[5], LL_POLICY_FINISH);
    assert_int_equal(CORE.state, LL_ST_RUNNING);
    fb_run_ms(4000);
    assert_int_equal(last_outcome(), LL_OUT_COMPLETED);
    assert_int_equal(CORE.records[0].fluence_uj[0], 15000);
}

static void test_lease_stop_switches_off(void **s)
{
    (void)s;
    setup_device();
    run_plan_ch0(28, LL_POLICY_STOP, 1000, 5000, 0, 300);
    fb_run_ms(990);
    assert_int_equal(CORE.state, LL_ST_RUNNING);
    fb_run_ms(20);
    assert_int_equal(CORE.state, LL_ST_IDLE);
    assert_int_equal(last_outcome(), LL_OUT_LEASE_STOP);
    assert_int_equal(FB.pwm[0].level_q, 0);
    /* a heartbeat afterwards restores the lease (event) */
    fb_frame_t *f;
    int k;
    req(LL_MT_HEARTBEAT, NULL, 0, false, NULL, &f, &k);
    assert_non_null(fb_find_event(f, k, LL_EV_LEASE_RESTORED));
}

static void test_paused_by_host_then_lease_lost_is_lease_stop(void **s)
{
    (void)s;
    setup_device();
    run_plan_ch0(29, LL_POLICY_FINISH, 1000, 5000, 0, 300);
    fb_run_ms(100);
    req(LL_MT_PAUSE, NULL, 0, false, NULL, NULL, NULL);
    fb_run_ms(10);
    assert_int_equal(FB.pwm[0].level_q, 0);
    fb_run_ms(1000);
    assert_int_equal(last_outcome(), LL_OUT_LEASE_STOP);
}

static void test_max_fluence_interlock(void **s)
{
    (void)s;
    setup_device();
    /* planned exactly at the 15 J/cm² limit; the LEDs give 110 %: the device stops */
    tel_off();
    run_plan_ch0(30, LL_POLICY_FINISH, 3000000, 1500000, 0, 1000);
    FB.gain_permille[0] = 1100;
    fb_run_ms(1400000);
    assert_int_equal(CORE.state, LL_ST_IDLE);
    assert_int_equal(last_outcome(), LL_OUT_INTERLOCK);
    assert_int_equal(CORE.records[0].reason, LL_IL_MAX_FLUENCE);
    assert_true(CORE.records[0].fluence_uj[0] >= 15000000);
    assert_true(CORE.records[0].fluence_uj[0] < 15000000 + 200);
}

static void test_max_duration_interlock(void **s)
{
    (void)s;
    setup_device();
    run_plan_ch0(31, LL_POLICY_FINISH, 3000000, 3600000, 0, 10);
    /* the plan is at the limit; the interlock is the device's own count of running
     * time, checked every tick: make it reach the limit */
    CORE.el = 3600000 - 20;
    fb_run_ms(30);
    assert_int_equal(last_outcome(), LL_OUT_INTERLOCK);
    assert_int_equal(CORE.records[0].reason, LL_IL_MAX_DURATION);
}

static void test_abort_stops_at_once_and_status_follows(void **s)
{
    (void)s;
    setup_device();
    run_plan_ch0(32, LL_POLICY_FINISH, 1000, 60000, 0, 300);
    fb_run_ms(505);
    assert_int_equal(FB.pwm[0].level_q, 300);
    fb_frame_t *f;
    int k;
    uint8_t reason = 1;
    uint16_t seq = SEQ;
    req(LL_MT_ABORT, &reason, 1, false, NULL, &f, &k);
    assert_int_equal(FB.pwm[0].level_q, 0); /* not waiting for the tick */
    assert_int_equal(f[k - 1].type, LL_MT_STATUS);
    assert_int_equal(f[k - 1].seq, seq);
    assert_false(ll_get16(f[k - 1].payload + 12) & LL_TF_EMITTING);
    assert_int_equal(last_outcome(), LL_OUT_ABORTED);
    assert_int_equal(CORE.records[0].reason, 1);
    /* output from the tick after START (10 ms) to the last tick before the ABORT (500
     * ms): 49 ticks at 3 mW/cm²; the part of the interval cut by the ABORT is not
     * counted, as in the simulator */
    assert_int_equal(CORE.records[0].fluence_uj[0], 1470);
}

static void test_derate_lowers_freely_raising_needs_auth(void **s)
{
    (void)s;
    setup_device();
    run_plan_ch0(33, LL_POLICY_FINISH, 100000, 60000, 0, 1000);
    uint8_t p[2], code;
    ll_put16(p, 500);
    assert_int_equal(req(LL_MT_DERATE, p, 2, false, &code, NULL, NULL), LL_MT_ACK);
    fb_run_ms(20);
    assert_int_equal(FB.pwm[0].level_q, 500);
    ll_put16(p, 800);
    req(LL_MT_DERATE, p, 2, false, &code, NULL, NULL);
    assert_int_equal(code, LL_NC_AUTH_REQUIRED);
    assert_int_equal(req(LL_MT_DERATE, p, 2, true, &code, NULL, NULL), LL_MT_ACK);
    fb_run_ms(20);
    assert_int_equal(FB.pwm[0].level_q, 800);
}

/* --- records and reboots ------------------------------------------------------------ */

static void test_reboot_mid_session_leaves_power_loss_with_its_checkpoint(void **s)
{
    (void)s;
    setup_device();
    run_plan_ch0(40, LL_POLICY_FINISH, 100000, 60000, 0, 500);
    fb_run_ms(3500);
    uint32_t boots = CORE.boot_count;
    uint32_t seq = CORE.records[0].seq;
    fb_reboot(LL_BOOT_WATCHDOG);
    assert_int_equal(CORE.boot_count, boots + 1);
    assert_int_equal(CORE.state, LL_ST_IDLE);
    assert_int_equal(FB.pwm[0].level_q, 0);
    assert_int_equal(CORE.records[0].outcome, LL_OUT_POWER_LOSS);
    assert_int_equal(CORE.records[0].seq, seq);
    /* the last checkpoint (3 s into the session at most 1 s old) */
    uint32_t fl = CORE.records[0].fluence_uj[0];
    assert_true(fl >= 12000 && fl <= 17500);
    fb_frame_t *f;
    int k = fb_take(&f);
    const fb_frame_t *e = fb_find_event(f, k, LL_EV_BOOT);
    assert_non_null(e);
    assert_int_equal(e->payload[5], LL_BOOT_WATCHDOG);
    /* the host may not START it again as if nothing happened */
    fb_hello(2);
    uint8_t id[4] = {40, 0, 0, 0};
    assert_int_equal(req(LL_MT_START, id, 4, true, NULL, &f, &k), LL_MT_STARTED);
    assert_int_equal(f[0].payload[4], 2);
    /* and a new session gets the next sequence number */
    run_plan_ch0(41, LL_POLICY_FINISH, 100000, 1000, 0, 500);
    assert_int_equal(CORE.records[0].seq, seq + 1);
}

static void test_records_keep_the_last_16(void **s)
{
    (void)s;
    setup_device();
    for (uint32_t i = 0; i < 18; i++) {
        run_plan_ch0(100 + i, LL_POLICY_FINISH, 100000, 100, 0, 100);
        fb_run_ms(150);
    }
    assert_int_equal(CORE.n_records, 16);
    assert_int_equal(CORE.records[0].plan_id, 117);
    assert_int_equal(CORE.records[15].plan_id, 102);
    fb_reboot(LL_BOOT_POWER_ON);
    assert_int_equal(CORE.n_records, 16);
    assert_int_equal(CORE.records[0].seq, 18);
    uint8_t max = 16;
    fb_frame_t *f;
    int k;
    fb_hello(3);
    assert_int_equal(req(LL_MT_GET_RECORDS, &max, 1, false, NULL, &f, &k), LL_MT_RECORDS);
    assert_int_equal(f[0].payload[0], 16);
    assert_int_equal(f[0].len, 1 + 16 * (21 + 4 * 8));
}

static void test_a_torn_nv_write_keeps_the_previous_copy(void **s)
{
    (void)s;
    setup_device();
    run_plan_ch0(50, LL_POLICY_FINISH, 100000, 100, 0, 100);
    fb_run_ms(200);
    assert_int_equal(last_outcome(), LL_OUT_COMPLETED);
    FB.tear_after = 30; /* the next save is cut after 30 bytes by a reset */
    run_plan_ch0(51, LL_POLICY_FINISH, 100000, 100000, 0, 100);
    fb_reboot(LL_BOOT_POWER_ON);
    /* the start of session 51 was lost with the torn write; session 50 is intact */
    assert_int_equal(CORE.records[0].plan_id, 50);
    assert_int_equal(CORE.records[0].outcome, LL_OUT_COMPLETED);
    /* and a damaged copy never loads: corrupt the newest half */
    uint32_t gen = CORE.nv_gen;
    FB.nv[(gen & 1) * (LLLT_NV_SIZE / 2) + 60] ^= 0x55;
    fb_reboot(LL_BOOT_POWER_ON);
    assert_int_equal(CORE.records[0].plan_id, 50);
}

static void test_nv_blank_is_a_fresh_device(void **s)
{
    (void)s;
    setup_device();
    assert_int_equal(CORE.boot_count, 1);
    assert_int_equal(CORE.next_seq, 1);
    assert_int_equal(CORE.n_records, 0);
    fb_reboot(LL_BOOT_POWER_ON);
    assert_int_equal(CORE.boot_count, 2);
}

/* --- conversation ------------------------------------------------------------------- */

static void test_duplicate_memory_answers_retries_without_executing(void **s)
{
    (void)s;
    setup_device();
    uint8_t plan[100];
    size_t n = fb_plan(plan, 60, LL_POLICY_FINISH, 1000, 10000, 0, CH0, 1, 300);
    req(LL_MT_UPLOAD_PLAN, plan, n, true, NULL, NULL, NULL);
    static uint8_t frame[300];
    size_t m = fb_build(frame, 1, LL_MT_START, 500, plan, 4, FB_KEY, CORE.nonce, ++FB_COUNTER);
    fb_frame_t *f;
    fb_take(&f);
    fb_rx(frame, m);
    int k = fb_take(&f);
    assert_true(k >= 2); /* STARTED + events */
    uint8_t first[64];
    uint32_t first_len = f[0].raw_len;
    memcpy(first, f[0].raw, first_len);
    fb_run_ms(500);
    fb_take(&f);
    fb_rx(frame, m); /* the same bytes again */
    k = fb_take(&f);
    assert_int_equal(k, 1);
    assert_int_equal(f[0].raw_len, first_len);
    assert_memory_equal(f[0].raw, first, first_len); /* byte for byte */
    assert_int_equal(CORE.stats.dedup_hits, 1);
    assert_int_equal(CORE.n_records, 1);
    /* eight other requests push it out of the memory: then it is a new request */
    for (int i = 0; i < 8; i++) {
        req(LL_MT_GET_STATUS, NULL, 0, false, NULL, NULL, NULL);
    }
    fb_rx(frame, m);
    k = fb_take(&f);
    assert_int_equal(f[0].type, LL_MT_NACK); /* its counter is used up */
}

static void test_version_and_unknown_types(void **s)
{
    (void)s;
    setup_device();
    uint8_t buf[64];
    fb_frame_t *f;
    size_t m = fb_build(buf, 2, LL_MT_GET_STATUS, 7, NULL, 0, NULL, NULL, 0);
    fb_take(&f);
    fb_rx(buf, m);
    assert_int_equal(fb_take(&f), 1);
    assert_int_equal(f[0].type, LL_MT_NACK);
    assert_int_equal(f[0].payload[0], LL_NC_VERSION);
    uint8_t code;
    req(0x3E, NULL, 0, false, &code, NULL, NULL);
    assert_int_equal(code, LL_NC_UNKNOWN_TYPE);
    /* a reply sent to the device is ignored, not answered */
    m = fb_build(buf, 1, LL_MT_ACK, 8, NULL, 0, NULL, NULL, 0);
    fb_rx(buf, m);
    assert_int_equal(fb_take(&f), 0);
    /* a HELLO of another major still gets HELLO_INFO */
    uint8_t hello[2] = {9, 0};
    m = fb_build(buf, 9, LL_MT_HELLO, 9, hello, 2, NULL, NULL, 0);
    fb_rx(buf, m);
    assert_int_equal(fb_take(&f), 1);
    assert_int_equal(f[0].type, LL_MT_HELLO_INFO);
}

static void test_telemetry_at_10_hz_and_its_period(void **s)
{
    (void)s;
    setup_device();
    fb_frame_t *f;
    fb_take(&f);
    fb_run_ms(1000);
    int k = fb_take(&f);
    int tel = 0;
    for (int i = 0; i < k; i++) {
        tel += f[i].type == LL_MT_TELEMETRY;
    }
    assert_int_equal(tel, 10);
    uint8_t p[2], code;
    ll_put16(p, 4); /* 250 Hz: above the 200 Hz the board takes */
    req(LL_MT_SET_TELEMETRY, p, 2, false, &code, NULL, NULL);
    assert_int_equal(code, LL_NC_BAD_VALUE);
    ll_put16(p, 0);
    req(LL_MT_SET_TELEMETRY, p, 2, false, &code, NULL, NULL);
    fb_take(&f);
    fb_run_ms(1000);
    assert_int_equal(fb_take(&f), 0);
    ll_put16(p, 5);
    req(LL_MT_SET_TELEMETRY, p, 2, false, &code, NULL, NULL);
    fb_run_ms(1000);
    assert_int_equal(fb_take(&f), 200);
}

static void test_record_access_report_one_per_tick(void **s)
{
    (void)s;
    setup_device();
    for (uint32_t i = 0; i < 3; i++) {
        run_plan_ch0(200 + i, LL_POLICY_FINISH, 100000, 100, 0, 100);
        fb_run_ms(150);
    }
    uint8_t p[5] = {1, 2, 0, 0, 0};
    fb_frame_t *f;
    int k;
    assert_int_equal(req(LL_MT_RECORD_ACCESS, p, 5, false, NULL, &f, &k), LL_MT_RECORD_COUNT);
    assert_int_equal(ll_get16(f[0].payload), 2);
    p[0] = 2;
    uint8_t code;
    ll_put16(p + 1, 0);
    p[1] = 1;
    assert_int_equal(req(LL_MT_RECORD_ACCESS, p, 5, false, &code, NULL, NULL), LL_MT_ACK);
    req(LL_MT_RECORD_ACCESS, p, 5, false, &code, NULL, NULL);
    assert_int_equal(code, LL_NC_BUSY);
    fb_run_ms(10);
    k = fb_take(&f);
    assert_int_equal(k, 1);
    assert_int_equal(f[0].type, LL_MT_RECORD);
    assert_int_equal(ll_get32(f[0].payload), 1);
    fb_run_ms(30);
    k = fb_take(&f);
    int recs = 0;
    const fb_frame_t *end = NULL;
    for (int i = 0; i < k; i++) {
        recs += f[i].type == LL_MT_RECORD;
        if (f[i].type == LL_MT_RECORDS_END) {
            end = &f[i];
        }
    }
    assert_int_equal(recs, 2);
    assert_non_null(end);
    assert_int_equal(end->payload[0], 0);
    assert_int_equal(ll_get16(end->payload + 1), 3);
    assert_int_equal(ll_get32(end->payload + 3), 3);
}

static void test_provisioning_wired_only_and_by_button(void **s)
{
    (void)s;
    fb_setup(NULL, NULL);
    fb_hello(1);
    uint8_t code;
    FB.wired = false;
    req(LL_MT_PROVISION_KEY, OWN_KEY, 32, false, &code, NULL, NULL);
    assert_int_equal(code, LL_NC_WIRED_ONLY);
    FB.wired = true;
    req(LL_MT_PROVISION_KEY, FB_DEV_KEY, 32, false, &code, NULL, NULL);
    assert_int_equal(code, LL_NC_BAD_VALUE);
    assert_int_equal(req(LL_MT_PROVISION_KEY, OWN_KEY, 32, false, &code, NULL, NULL), LL_MT_ACK);
    /* now provisioned: a new key only with the button held; the key survives reboots */
    static const uint8_t other[32] = "another-key-another-key-another!";
    req(LL_MT_PROVISION_KEY, other, 32, false, &code, NULL, NULL);
    assert_int_equal(code, LL_NC_BAD_STATE);
    fb_reboot(LL_BOOT_POWER_ON);
    const fb_frame_t *hi = fb_hello(2);
    assert_false(ll_get16(hi->payload + 5) & LL_CAP_DEV_KEY);
    FB_KEY = OWN_KEY;
    uint8_t plan[100];
    size_t n = fb_plan(plan, 70, LL_POLICY_FINISH, 1000, 1000, 0, CH0, 1, 100);
    assert_int_equal(req(LL_MT_UPLOAD_PLAN, plan, n, true, &code, NULL, NULL), LL_MT_ACK);
    FB.button = true;
    assert_int_equal(req(LL_MT_PROVISION_KEY, other, 32, false, &code, NULL, NULL), LL_MT_ACK);
}

/* --- the link ----------------------------------------------------------------------- */

static uint32_t rng = 12345;
static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

/* a link that flips bits and drops bytes: nothing corrupted is ever executed, and
 * retries of the same bytes get through with the session run exactly once */
static void test_fault_injecting_link(void **s)
{
    (void)s;
    setup_device();
    uint8_t plan[100];
    size_t n = fb_plan(plan, 80, LL_POLICY_FINISH, 100000, 5000, 0, CH0, 1, 300);
    static uint8_t frame[400], noisy[800];
    int attempts = 0;
    uint16_t seq = 900;
    for (int phase = 0; phase < 2; phase++) {
        const uint8_t *pl = phase == 0 ? plan : plan; /* UPLOAD then START(80) */
        uint8_t type = phase == 0 ? LL_MT_UPLOAD_PLAN : LL_MT_START;
        size_t plen = phase == 0 ? n : 4;
        size_t m = fb_build(frame, 1, type, seq, pl, plen, FB_KEY, CORE.nonce, ++FB_COUNTER);
        for (;;) {
            attempts++;
            size_t k = 0;
            noisy[k++] = 0;
            for (size_t i = 0; i < m; i++) {
                uint32_t r = rnd() % 1000;
                if (r < 5) {
                    continue; /* dropped */
                }
                noisy[k++] = r < 15 ? (uint8_t)(frame[i] ^ (1u << (rnd() % 8))) : frame[i];
            }
            fb_frame_t *f;
            fb_take(&f);
            fb_rx(noisy, k);
            fb_run_ms(10);
            int got = fb_take(&f);
            const fb_frame_t *rep = reply_of(f, got, seq);
            if (rep) {
                assert_true(rep->type == LL_MT_ACK || rep->type == LL_MT_STARTED);
                break;
            }
            assert_true(attempts < 200);
        }
        seq++;
    }
    assert_true(attempts >= 2); /* the link really lost some */
    assert_int_equal(CORE.n_records, 1);
    assert_true(CORE.stats.frames_bad > 0);
    fb_run_ms(5100);
    assert_int_equal(last_outcome(), LL_OUT_COMPLETED);
    assert_int_equal(CORE.records[0].fluence_uj[0], 15000);
    assert_int_equal(FB.traps, 0);
}

static void test_random_bytes_never_crash_or_emit(void **s)
{
    (void)s;
    setup_device();
    static uint8_t junk[20000];
    for (size_t i = 0; i < sizeof junk; i++) {
        junk[i] = (uint8_t)rnd();
        if (rnd() % 50 == 0) {
            junk[i] = 0;
        }
    }
    fb_rx(junk, sizeof junk);
    fb_run_ms(100);
    assert_int_equal(CORE.state, LL_ST_IDLE);
    assert_int_equal(FB.pwm[0].level_q, 0);
    assert_int_equal(FB.traps, 0);
    assert_non_null(fb_hello(5)); /* and it still talks */
}

static void test_watchdog_kicked_every_tick(void **s)
{
    (void)s;
    setup_device();
    int k0 = FB.kicks;
    fb_run_ms(1000);
    assert_int_equal(FB.kicks - k0, 100);
}

static void test_broken_invariant_traps(void **s)
{
    (void)s;
    setup_device();
    jmp_buf jb;
    FB.trap_jmp = &jb;
    if (setjmp(jb) == 0) {
        ll_end_session(&CORE, LL_OUT_COMPLETED, 0, LL_ST_IDLE, 0); /* no session: a bug */
        fail_msg("no trap");
    }
    FB.trap_jmp = NULL;
    assert_int_equal(FB.traps, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_session_completes_with_its_fluence),
        cmocka_unit_test(test_fluence_follows_the_measured_output),
        cmocka_unit_test(test_ramp_delivers_half_its_fluence),
        cmocka_unit_test(test_pulsing_is_duty_and_frequency),
        cmocka_unit_test(test_pulse_outside_range_is_refused),
        cmocka_unit_test(test_fluence_step_stops_each_channel_at_its_target),
        cmocka_unit_test(test_fluence_target_not_reached_ends_max_duration),
        cmocka_unit_test(test_start_is_idempotent),
        cmocka_unit_test(test_upload_checks_in_order),
        cmocka_unit_test(test_energy_needs_authentication),
        cmocka_unit_test(test_a_new_hello_draws_a_new_nonce_and_old_signatures_fail),
        cmocka_unit_test(test_no_randomness_no_authentication),
        cmocka_unit_test(test_development_key_only_in_a_development_build),
        cmocka_unit_test(test_overtemperature_emitters_off_in_one_tick),
        cmocka_unit_test(test_too_hot_to_start),
        cmocka_unit_test(test_sensor_fault),
        cmocka_unit_test(test_over_output_opens_the_master_switch),
        cmocka_unit_test(test_a_stuck_driver_counts_at_full_duty),
        cmocka_unit_test(test_output_above_120_percent_is_over_output),
        cmocka_unit_test(test_brownout),
        cmocka_unit_test(test_head_off_pauses_and_aborts_after_five_minutes),
        cmocka_unit_test(test_lease_finish_runs_to_the_end),
        cmocka_unit_test(test_lease_stop_switches_off),
        cmocka_unit_test(test_paused_by_host_then_lease_lost_is_lease_stop),
        cmocka_unit_test(test_max_fluence_interlock),
        cmocka_unit_test(test_max_duration_interlock),
        cmocka_unit_test(test_abort_stops_at_once_and_status_follows),
        cmocka_unit_test(test_derate_lowers_freely_raising_needs_auth),
        cmocka_unit_test(test_reboot_mid_session_leaves_power_loss_with_its_checkpoint),
        cmocka_unit_test(test_records_keep_the_last_16),
        cmocka_unit_test(test_a_torn_nv_write_keeps_the_previous_copy),
        cmocka_unit_test(test_nv_blank_is_a_fresh_device),
        cmocka_unit_test(test_duplicate_memory_answers_retries_without_executing),
        cmocka_unit_test(test_version_and_unknown_types),
        cmocka_unit_test(test_telemetry_at_10_hz_and_its_period),
        cmocka_unit_test(test_record_access_report_one_per_tick),
        cmocka_unit_test(test_provisioning_wired_only_and_by_button),
        cmocka_unit_test(test_fault_injecting_link),
        cmocka_unit_test(test_random_bytes_never_crash_or_emit),
        cmocka_unit_test(test_watchdog_kicked_every_tick),
        cmocka_unit_test(test_broken_invariant_traps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

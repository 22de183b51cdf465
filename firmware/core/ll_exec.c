/* The control tick: sensors, fluence from the measured output, hardware interlocks, the
 * plan (ramps, steps, fluence targets), policy interlocks (maximum duration and fluence,
 * head-off timeout, lease), then the outputs of the next interval (wire spec §8).
 *
 * The order within a tick is the simulator's (lllt_sim.engine), so that the two
 * implementations can be compared step by step: an interlock that trips in a tick
 * switches the emitters off in that same tick, because the outputs are computed last. */
#include "ll_internal.h"

static const uint16_t FAULT_FLAG[11] = {
    [LL_IL_THERMAL_CUTOFF] = LL_TF_FAULT_THERMAL,
    [LL_IL_SENSOR_FAULT] = LL_TF_FAULT_SENSOR,
    [LL_IL_OVER_OUTPUT] = LL_TF_FAULT_OUTPUT,
    [LL_IL_BROWNOUT] = LL_TF_FAULT_SUPPLY,
};

static bool hardware_kind(uint8_t kind)
{
    return kind == LL_IL_THERMAL_CUTOFF || kind == LL_IL_SENSOR_FAULT ||
           kind == LL_IL_OVER_OUTPUT || kind == LL_IL_BROWNOUT;
}

uint32_t core_units_to_uj(uint64_t units)
{
    uint64_t uj = (units + LL_UNITS_PER_UJ / 2) / LL_UNITS_PER_UJ;
    return uj > UINT32_MAX ? UINT32_MAX : (uint32_t)uj;
}

void ll_set_state(lllt_core_t *c, uint8_t st, int32_t reason, uint32_t t)
{
    uint8_t old = c->state;
    if (st == old) {
        return;
    }
    c->state = st;
    ll_event(c, LL_EV_STATE, t, st, old, reason, 0);
}

void ll_reset_counters(lllt_core_t *c)
{
    memset(c->fl, 0, sizeof c->fl);
    memset(c->sfl, 0, sizeof c->sfl);
    c->el = c->sel = c->emit = 0;
    c->ck_ms = c->tick_ms_now;
    c->ck_emit = 0;
    memset(c->ck_fl_uj, 0, sizeof c->ck_fl_uj);
}

static bool is_latched(const lllt_core_t *c, uint8_t kind, uint8_t index)
{
    for (uint8_t i = 0; i < c->n_latched; i++) {
        if (c->latched[i].kind == kind && c->latched[i].index == index) {
            return true;
        }
    }
    return false;
}

void ll_start_session(lllt_core_t *c, uint32_t now)
{
    /* the new record goes first; the oldest falls off the end */
    if (c->n_records == LLLT_MAX_RECORDS) {
        c->n_records--;
    }
    memmove(&c->records[1], &c->records[0], c->n_records * sizeof c->records[0]);
    c->n_records++;
    ll_record_t *r = &c->records[0];
    memset(r, 0, sizeof *r);
    r->seq = c->next_seq++;
    r->plan_id = c->plan.plan_id;
    r->boot_count = (uint16_t)c->boot_count;
    r->start_ms = now;
    r->outcome = LL_OUT_RUNNING;
    c->session = true;
    c->tel_plan = c->plan.plan_id;
    c->step = 0;
    c->done = 0;
    c->maxdur_hit = false;
    c->paused_host = false;
    c->paused_head = false;
    c->derate = 1000;
    c->lease_renew = now;
    c->lease_deadline = now + c->plan.lease_ms;
    c->lease_armed = true;
    c->lease_expired = false;
    ll_reset_counters(c);
    ll_set_state(c, LL_ST_RUNNING, 0, now);
    ll_event(c, LL_EV_STEP, now, 0, LL_NO_INDEX, c->plan.plan_id & 0x7FFFFFFF, 0);
    ll_nv_save(c);
}

void ll_end_session(lllt_core_t *c, uint8_t outcome, uint8_t reason, uint8_t new_state,
                    uint32_t t)
{
    LL_ASSERT(c, c->session && c->n_records > 0);
    ll_record_t *r = &c->records[0];
    r->end_ms = t;
    r->outcome = outcome;
    r->reason = reason;
    r->emitting_ms = c->emit;
    for (uint8_t i = 0; i < c->hw.n_ch; i++) {
        r->fluence_uj[i] = core_units_to_uj(c->fl[i]);
    }
    c->session = false;
    c->plan_loaded = false;
    c->paused_host = c->paused_head = false;
    c->lease_armed = false;
    c->derate = 1000;
    c->done = 0;
    if (c->state == LL_ST_FAULT) {
        new_state = LL_ST_FAULT;
    }
    ll_set_state(c, new_state, reason, t);
    ll_event(c, LL_EV_SESSION_END, t, outcome, reason, c->emit, r->plan_id);
    ll_nv_save(c);
    c->end_sample = true; /* wire 1.1: a TELEMETRY sample right after SESSION_END */
}

static void trip(lllt_core_t *c, uint8_t kind, uint8_t index, uint8_t b, int64_t value,
                 int64_t limit, uint32_t t)
{
    ll_event(c, LL_EV_INTERLOCK, t, kind, b, value, limit);
    bool hw = hardware_kind(kind);
    if (hw) {
        LL_ASSERT(c, c->n_latched < LLLT_MAX_LATCHED);
        c->latched[c->n_latched++] = (ll_latch_t){kind, index, b};
        c->fault_flags |= FAULT_FLAG[kind];
        ll_event(c, LL_EV_FAULT, t, kind, b, 1, 0);
    }
    uint8_t new_state = hw ? LL_ST_FAULT : LL_ST_IDLE;
    if (c->session) {
        uint8_t outcome = kind == LL_IL_LEASE_STOP ? LL_OUT_LEASE_STOP : LL_OUT_INTERLOCK;
        ll_end_session(c, outcome, kind, new_state, t);
    } else if (hw) {
        c->plan_loaded = false;
        ll_set_state(c, LL_ST_FAULT, kind, t);
    }
    /* the emitters go off in this very tick: the outputs are computed after this */
}

static void set_head(lllt_core_t *c, bool present, uint32_t t)
{
    if (present == c->head) {
        return;
    }
    c->head = present;
    ll_event(c, LL_EV_HEAD, t, present ? 1 : 0, LL_NO_INDEX, 0, 0);
    if (!present) {
        c->head_off_ms = t;
        if (c->session) {
            c->paused_head = true;
            ll_set_state(c, LL_ST_PAUSED, 0, t);
        }
    } else if (c->session && c->paused_head) {
        c->paused_head = false;
        if (!c->paused_host) {
            ll_set_state(c, LL_ST_RUNNING, 0, t);
        }
    }
}

/* most a channel may measure before OVER_OUTPUT counts it: 120 % of the setpoint +
 * 0.05 mW/cm², nothing when commanded off; in 0.01 mW/cm² (rounded, for the event) */
static int32_t allowed_q(uint16_t sp) { return sp == 0 ? 0 : (int32_t)((12u * sp + 50u + 5u) / 10u); }
static bool over_output(uint16_t sp, uint16_t meas)
{
    if (sp == 0) {
        return meas > 0;
    }
    return 5u * meas > 6u * sp + 25u; /* meas/100 > 1.2 sp/100 + 0.05 */
}

static void advance_plan(lllt_core_t *c, uint32_t t)
{
    const ll_plan_t *pl = &c->plan;
    const ll_step_t *st = &pl->steps[c->step];
    bool ended;
    if (st->kind == LL_STEP_FLUENCE) {
        bool all_done = true;
        for (uint8_t k = 0; k < st->n_sp; k++) {
            const ll_setpoint_t *s = &st->sp[k];
            uint32_t bit = 1u << s->index;
            uint64_t target = (uint64_t)s->target_uj * LL_UNITS_PER_UJ;
            if (!(c->done & bit) && c->sfl[s->index] >= target) {
                c->done |= bit;
                ll_event(c, LL_EV_TARGET_REACHED, t, 0, s->index,
                         core_units_to_uj(c->sfl[s->index]), s->target_uj);
            }
            if (!(c->done & bit)) {
                all_done = false;
            }
        }
        if (!all_done && c->sel >= st->duration_ms) {
            c->maxdur_hit = true;
        }
        ended = all_done || c->sel >= st->duration_ms;
    } else {
        ended = c->sel >= st->duration_ms;
    }
    if (!ended) {
        return;
    }
    if (c->step + 1 < pl->n_steps) {
        c->step++;
        c->done = 0;
        memset(c->sfl, 0, sizeof c->sfl);
        c->sel = 0;
        ll_event(c, LL_EV_STEP, t, c->step, LL_NO_INDEX, pl->plan_id & 0x7FFFFFFF, 0);
    } else {
        ll_end_session(c, c->maxdur_hit ? LL_OUT_MAX_DURATION : LL_OUT_COMPLETED, 0,
                       LL_ST_IDLE, t);
    }
}

static void policy_checks(lllt_core_t *c, uint32_t t)
{
    const ll_board_t *hw = &c->hw;
    if (c->el >= hw->max_session_ms) {
        trip(c, LL_IL_MAX_DURATION, LL_NO_INDEX, LL_NO_INDEX, c->el, hw->max_session_ms, t);
        return;
    }
    uint64_t max_units = (uint64_t)hw->max_fluence_uj * LL_UNITS_PER_UJ;
    for (uint8_t i = 0; i < hw->n_ch; i++) {
        if (c->fl[i] >= max_units) {
            trip(c, LL_IL_MAX_FLUENCE, i, i, core_units_to_uj(c->fl[i]), hw->max_fluence_uj, t);
            return;
        }
    }
    if (!c->head && ll_time_reached(t, c->head_off_ms + hw->head_off_abort_ms)) {
        trip(c, LL_IL_HEAD_OFF_TIMEOUT, LL_NO_INDEX, LL_NO_INDEX, t - c->head_off_ms,
             hw->head_off_abort_ms, t);
        return;
    }
    uint32_t lease = c->plan.lease_ms;
    if (!c->lease_expired && c->lease_armed && ll_time_reached(t, c->lease_deadline)) {
        c->lease_expired = true;
        uint32_t since = t - c->lease_renew;
        bool stop = c->plan.policy == LL_POLICY_STOP || c->paused_host;
        ll_event(c, LL_EV_LEASE_EXPIRED, t, stop ? LL_POLICY_STOP : LL_POLICY_FINISH,
                 LL_NO_INDEX, since, lease);
        if (stop) {
            trip(c, LL_IL_LEASE_STOP, LL_NO_INDEX, LL_NO_INDEX, since, lease, t);
        }
        return;
    }
    if (c->lease_expired && c->paused_host) {
        trip(c, LL_IL_LEASE_STOP, LL_NO_INDEX, LL_NO_INDEX, t - c->lease_renew, lease, t);
    }
}

/* round(num / den), halves to even (as the simulator's Python round()) */
static uint32_t div_round_even(uint64_t num, uint64_t den)
{
    uint64_t q = num / den, r = num % den;
    if (2 * r > den || (2 * r == den && (q & 1))) {
        q++;
    }
    return (uint32_t)q;
}

void ll_outputs_off(lllt_core_t *c)
{
    for (uint8_t i = 0; i < c->hw.n_ch; i++) {
        c->pwm[i] = (lllt_pwm_t){0, LL_FULL_DUTY, 0};
    }
    c->iv_session = c->session;
    c->iv_running = false;
    c->iv_ramping = false;
    hal_pwm_apply(c->board, c->pwm, c->hw.n_ch);
}

void ll_apply_outputs(lllt_core_t *c)
{
    uint32_t T = c->cfg.tick_ms;
    bool running = c->session && c->state == LL_ST_RUNNING;
    bool ramping = false;
    for (uint8_t i = 0; i < c->hw.n_ch; i++) {
        c->pwm[i] = (lllt_pwm_t){0, LL_FULL_DUTY, 0};
    }
    if (running) {
        const ll_step_t *st = &c->plan.steps[c->step];
        uint64_t fnum = 1, fden = 1;
        if (st->ramp_ms && c->sel < st->ramp_ms) {
            ramping = true;
            /* the middle of the tick: a linear ramp delivers exactly half its fluence */
            uint64_t num = 2ull * c->sel + T;
            uint64_t den = 2ull * st->ramp_ms;
            fnum = num < den ? num : den;
            fden = den;
        }
        for (uint8_t k = 0; k < st->n_sp; k++) {
            const ll_setpoint_t *s = &st->sp[k];
            if (st->kind == LL_STEP_FLUENCE && (c->done & (1u << s->index))) {
                continue;
            }
            uint32_t v = s->irr_q;
            if (fnum != fden || c->derate != 1000) {
                v = div_round_even((uint64_t)s->irr_q * fnum * c->derate, fden * 1000u);
            }
            c->pwm[s->index] = (lllt_pwm_t){(uint16_t)v, st->duty, st->pulse_mhz};
        }
    }
    c->iv_session = c->session;
    c->iv_running = running;
    c->iv_ramping = ramping;
    hal_pwm_apply(c->board, c->pwm, c->hw.n_ch);
}

bool ll_fault_cause(lllt_core_t *c, const ll_latch_t *l, int32_t *limit, int32_t *observed)
{
    switch (l->kind) {
    case LL_IL_THERMAL_CUTOFF: {
        /* hysteresis: cool enough to START again, not a noisy dip under the cut-off */
        int32_t r = c->temp_q[l->index];
        int32_t lim = c->hw.cutoff_q - LL_TOO_HOT_MARGIN_Q;
        *limit = lim;
        *observed = r;
        return r >= lim;
    }
    case LL_IL_SENSOR_FAULT: {
        int32_t r = c->temp_q[l->index];
        *limit = LL_SENSOR_MAX_Q;
        *observed = r;
        return r < LL_SENSOR_MIN_Q || r > LL_SENSOR_MAX_Q;
    }
    case LL_IL_BROWNOUT:
        *limit = c->cfg.brownout_mv;
        *observed = c->supply_mv;
        return c->supply_mv < c->cfg.brownout_mv;
    case LL_IL_OVER_OUTPUT:
        /* the drivers are re-tested with the master switch open */
        *limit = 0;
        *observed = 1;
        return !hal_driver_test(c->board);
    default:
        return false;
    }
}

/* a tick's sensors, and what the channels emitted over the interval that ended */
static void read_sensors(lllt_core_t *c, lllt_sense_t *s)
{
    memset(s, 0, sizeof *s);
    hal_sense(c->board, s);
    hal_output_sense(c->board, c->meas_q, c->hw.n_ch);
    memcpy(c->temp_q, s->temp_q, sizeof c->temp_q);
    c->ambient_q = s->ambient_q;
    c->supply_mv = s->supply_mv;
}

void ll_tick(lllt_core_t *c)
{
    const ll_board_t *hw = &c->hw;
    uint32_t T = c->cfg.tick_ms;
    c->tick_n++;
    uint32_t t = c->tick_n * T;
    c->tick_ms_now = t;
    c->now = t;
    c->stats.ticks++;

    /* 1. sensors, and what the channels emitted over the interval that ended */
    lllt_sense_t s;
    read_sensors(c, &s);

    /* 2. fluence from the measured output: irradiance × duty × dt. A channel over its
     * allowed output does not follow its commands (a driver stuck on): it may conduct
     * through the off-time of its PWM too, so it counts at full duty, and the record never
     * counts less than the channel delivered. */
    bool emitting = false;
    for (uint8_t i = 0; i < hw->n_ch; i++) {
        uint16_t m = c->meas_q[i];
        bool over = over_output(c->pwm[i].level_q, m);
        if (m) {
            emitting = true;
        }
        if (c->iv_session && m) {
            uint64_t u = (uint64_t)m * (over ? LL_FULL_DUTY : c->pwm[i].duty) * T;
            c->fl[i] += u;
            if (c->iv_running) {
                c->sfl[i] += u;
            }
        }
        c->oo[i] = over ? (uint8_t)(c->oo[i] < 255 ? c->oo[i] + 1 : 255) : 0;
    }
    if (c->iv_session && emitting) {
        c->emit += T;
    }
    if (c->iv_running) {
        c->el += T;
        c->sel += T;
    }

    /* 3. the head sensor: off the head the session pauses at once */
    set_head(c, s.head_present != 0, t);

    /* 4. hardware interlocks: fault latched, emitters off in this tick */
    for (uint8_t z = 0; z < hw->n_z; z++) {
        int16_t r = c->temp_q[z];
        uint8_t kind = 0;
        int32_t lim = 0;
        if (r < LL_SENSOR_MIN_Q || r > LL_SENSOR_MAX_Q) {
            kind = LL_IL_SENSOR_FAULT; /* the reading means nothing */
            lim = r < LL_SENSOR_MIN_Q ? LL_SENSOR_MIN_Q : LL_SENSOR_MAX_Q;
        } else if (r >= hw->cutoff_q) {
            kind = LL_IL_THERMAL_CUTOFF;
            lim = hw->cutoff_q;
        }
        if (kind && !is_latched(c, kind, z)) {
            trip(c, kind, z, z, r, lim, t);
        }
    }
    if (c->supply_mv < c->cfg.brownout_mv && !is_latched(c, LL_IL_BROWNOUT, LL_NO_INDEX)) {
        trip(c, LL_IL_BROWNOUT, LL_NO_INDEX, LL_NO_INDEX, c->supply_mv, c->cfg.brownout_mv, t);
    }
    if (!is_latched(c, LL_IL_OVER_OUTPUT, LL_NO_INDEX)) {
        for (uint8_t i = 0; i < hw->n_ch; i++) {
            if (c->oo[i] >= 2) {
                /* the master switch cuts every channel: latched under no index */
                c->master_on = false;
                hal_master_set(c->board, false);
                trip(c, LL_IL_OVER_OUTPUT, LL_NO_INDEX, i, c->meas_q[i],
                     allowed_q(c->pwm[i].level_q), t);
                break;
            }
        }
    }

    /* 5. the plan, 6. policy interlocks */
    if (c->session && c->iv_running) {
        advance_plan(c, t);
    }
    if (c->session) {
        policy_checks(c, t);
    }

    /* 7. outputs of the next interval */
    ll_apply_outputs(c);

    /* 8. checkpoint once a second: what a power cut leaves of a running session */
    uint32_t ck_ticks = 1000u / T;
    if (ck_ticks == 0) {
        ck_ticks = 1;
    }
    if (c->tick_n % ck_ticks == 0) {
        c->ck_ms = t;
        c->ck_emit = c->emit;
        for (uint8_t i = 0; i < hw->n_ch; i++) {
            c->ck_fl_uj[i] = core_units_to_uj(c->fl[i]);
        }
        if (c->session) {
            ll_nv_save(c);
        }
    }
    hal_watchdog_kick(c->board);
    if (c->end_sample) {
        c->end_sample = false;
        ll_send_status(c, LL_MT_TELEMETRY, 0, t);
    }
}

/* --- idle stretches in closed form (a port on a virtual clock) ------------------------ */

uint32_t core_idle_room(const lllt_core_t *c)
{
    if (c->session || c->iv_session || c->iv_running || c->n_latched || c->end_sample) {
        return 0;
    }
    for (uint8_t i = 0; i < c->hw.n_ch; i++) {
        if (c->pwm[i].level_q) {
            return 0;
        }
    }
    /* ticks strictly before the next sample or record step (one due at a tick's own ms
     * comes after that tick, as in advance_to), up to 2^24 */
    uint32_t T = c->cfg.tick_ms;
    uint32_t now = c->tick_n * T;
    uint32_t room = 1u << 24;
    if (c->tel_period) {
        int32_t left = (int32_t)(c->tel_due - now);
        uint32_t r = left <= 0 ? 0 : (uint32_t)left / T;
        room = r < room ? r : room;
    }
    if (c->report_on) {
        int32_t left = (int32_t)(c->report_due - now);
        uint32_t r = left <= 0 ? 0 : (uint32_t)left / T;
        room = r < room ? r : room;
    }
    return room;
}

void core_idle_ticks(lllt_core_t *c, uint32_t n)
{
    const ll_board_t *hw = &c->hw;
    uint32_t T = c->cfg.tick_ms;
    LL_ASSERT(c, n >= 1 && n <= core_idle_room(c));
    uint32_t before = c->tick_n;
    c->tick_n += n;
    uint32_t t = c->tick_n * T;
    c->tick_ms_now = t;
    c->now = t;
    c->stats.ticks += n;

    /* 1. the last tick's sensors; every tick passed was dark and tripped nothing */
    lllt_sense_t s;
    read_sensors(c, &s);
    for (uint8_t i = 0; i < hw->n_ch; i++) {
        LL_ASSERT(c, c->meas_q[i] == 0);
        c->oo[i] = 0; /* commanded off and dark: never over the output */
    }
    LL_ASSERT(c, (s.head_present != 0) == c->head);
    for (uint8_t z = 0; z < hw->n_z; z++) {
        int16_t r = c->temp_q[z];
        LL_ASSERT(c, r >= LL_SENSOR_MIN_Q && r <= LL_SENSOR_MAX_Q && r < hw->cutoff_q);
    }
    LL_ASSERT(c, c->supply_mv >= c->cfg.brownout_mv);

    /* 7. the outputs stay off; 8. the last checkpoint passed (no session: nothing saved) */
    ll_apply_outputs(c);
    uint32_t ck_ticks = 1000u / T;
    if (ck_ticks == 0) {
        ck_ticks = 1;
    }
    uint32_t last_ck = c->tick_n - c->tick_n % ck_ticks;
    if (last_ck > before) {
        c->ck_ms = last_ck * T;
        c->ck_emit = c->emit;
        for (uint8_t i = 0; i < hw->n_ch; i++) {
            c->ck_fl_uj[i] = core_units_to_uj(c->fl[i]);
        }
    }
    hal_watchdog_kick(c->board);
}

const ll_record_t *ll_record_now(const lllt_core_t *c, uint8_t i, ll_record_t *tmp)
{
    const ll_record_t *r = &c->records[i];
    if (!(c->session && i == 0)) {
        return r;
    }
    *tmp = *r;
    tmp->end_ms = 0;
    tmp->outcome = LL_OUT_RUNNING;
    tmp->reason = 0;
    tmp->emitting_ms = c->emit;
    for (uint8_t k = 0; k < c->hw.n_ch; k++) {
        tmp->fluence_uj[k] = core_units_to_uj(c->fl[k]);
    }
    return tmp;
}

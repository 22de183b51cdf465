/* UPLOAD_PLAN: parse and check in the order of wire spec §6, then store.
 *
 * The payload is walked twice: once for its structure (BAD_LENGTH before anything
 * else), once for the checks, in the spec's order, with the first failure as the NACK.
 * Only a plan that passes every check is copied into the plan store, so a step can
 * hold at most one setpoint per channel (duplicates and unknown channels are refused
 * before anything is stored). Dose arithmetic is exact integer arithmetic. */
#include "ll_internal.h"

#define PLAN_HEAD 10 /* plan_id u32, policy u8, lease u32, n_steps u8 */
#define STEP_HEAD 16 /* kind u8, duration u32, ramp u32, pulse u32, duty u16, n u8 */
#define SETPOINT 7   /* channel u8, irradiance u16, target u32 */
#define WIRE_MAX_SETPOINTS 32
#define MAX_PLAN_ID 0x7FFFFFFFu

bool ll_plan_parse(const uint8_t *p, uint32_t len, ll_nack_t *n)
{
    if (len < PLAN_HEAD) {
        ll_nack_set(n, LL_NC_BAD_LENGTH, "plan payload is truncated");
        return false;
    }
    uint32_t off = PLAN_HEAD;
    uint8_t steps = p[9];
    for (uint8_t s = 0; s < steps; s++) {
        if (off + STEP_HEAD > len) {
            ll_nack_set(n, LL_NC_BAD_LENGTH, "plan payload is truncated");
            return false;
        }
        uint32_t nsp = p[off + 15];
        off += STEP_HEAD;
        if (off + nsp * SETPOINT > len) {
            ll_nack_set(n, LL_NC_BAD_LENGTH, "plan payload is truncated");
            return false;
        }
        off += nsp * SETPOINT;
    }
    if (off != len) {
        ll_nack_set(n, LL_NC_BAD_LENGTH, "plan has ");
        ll_nack_u32(n, len - off);
        ll_nack_str(n, " bytes after its last step");
        n->limit = (int32_t)off;
        n->observed = (int32_t)len;
        return false;
    }
    return true;
}

static int channel_index(const ll_board_t *hw, uint8_t id)
{
    for (uint8_t i = 0; i < hw->n_ch; i++) {
        if (hw->ch_id[i] == id) {
            return i;
        }
    }
    return -1;
}

static void step_prefix(ll_nack_t *n, uint8_t code, uint32_t si)
{
    ll_nack_set(n, code, "step ");
    ll_nack_u32(n, si);
    ll_nack_str(n, ": ");
}

static uint64_t add_sat(uint64_t a, uint64_t b) { return a + b < a ? UINT64_MAX : a + b; }

bool ll_plan_check(lllt_core_t *c, const uint8_t *p, uint32_t len, ll_nack_t *n)
{
    const ll_board_t *hw = &c->hw;
    if (!ll_plan_parse(p, len, n)) {
        return false;
    }
    if (c->state == LL_ST_FAULT) {
        ll_nack_set(n, LL_NC_FAULT_LATCHED, "a fault is latched; clear it first");
        return false;
    }
    if (c->state == LL_ST_RUNNING || c->state == LL_ST_PAUSED) {
        ll_nack_set(n, LL_NC_BAD_STATE, "a session is running; abort it first");
        n->observed = c->state;
        return false;
    }
    uint32_t plan_id = ll_get32(p);
    uint8_t policy = p[4];
    uint32_t lease = ll_get32(p + 5);
    uint8_t n_steps = p[9];
    if (plan_id < 1 || plan_id > MAX_PLAN_ID) {
        ll_nack_set(n, LL_NC_BAD_VALUE, "plan id must be 1 to 2^31-1");
        n->observed = (int32_t)plan_id;
        return false;
    }
    if (policy > LL_POLICY_STOP) {
        ll_nack_set(n, LL_NC_BAD_VALUE, "unknown link-loss policy ");
        ll_nack_u32(n, policy);
        n->observed = policy;
        return false;
    }
    if (n_steps < 1 || n_steps > LLLT_MAX_STEPS) {
        ll_nack_set(n, LL_NC_TOO_LARGE, "a plan has 1 to 16 steps");
        n->limit = LLLT_MAX_STEPS;
        n->observed = n_steps;
        return false;
    }
    uint32_t off = PLAN_HEAD;
    for (uint8_t s = 0; s < n_steps; s++) {
        uint8_t nsp = p[off + 15];
        if (nsp < 1 || nsp > WIRE_MAX_SETPOINTS) {
            step_prefix(n, LL_NC_TOO_LARGE, s);
            ll_nack_str(n, "a step has 1 to 32 setpoints");
            n->limit = WIRE_MAX_SETPOINTS;
            n->observed = nsp;
            return false;
        }
        off += STEP_HEAD + (uint32_t)nsp * SETPOINT;
    }
    if (lease < hw->min_lease_ms) {
        ll_nack_set(n, LL_NC_BAD_VALUE, "lease ");
        ll_nack_u32(n, lease);
        ll_nack_str(n, " ms is below the device's ");
        ll_nack_u32(n, hw->min_lease_ms);
        ll_nack_str(n, " ms");
        n->limit = (int32_t)hw->min_lease_ms;
        n->observed = ll_sat_i32(lease);
        return false;
    }
    uint64_t total_ms = 0;
    uint64_t planned[LLLT_MAX_CHANNELS];
    memset(planned, 0, sizeof planned);
    off = PLAN_HEAD;
    for (uint8_t s = 0; s < n_steps; s++) {
        const uint8_t *st = p + off;
        uint8_t kind = st[0];
        uint32_t dur = ll_get32(st + 1), ramp = ll_get32(st + 5), mhz = ll_get32(st + 9);
        uint16_t duty = ll_get16(st + 13);
        uint8_t nsp = st[15];
        const uint8_t *sp = st + STEP_HEAD;
        if (kind > LL_STEP_FLUENCE) {
            step_prefix(n, LL_NC_BAD_VALUE, s);
            ll_nack_str(n, "unknown step kind ");
            ll_nack_u32(n, kind);
            n->observed = kind;
            return false;
        }
        for (uint8_t k = 0; k < nsp; k++) {
            uint8_t ch = sp[k * SETPOINT];
            if (channel_index(hw, ch) < 0) {
                step_prefix(n, LL_NC_UNKNOWN_CHANNEL, s);
                ll_nack_str(n, "no channel ");
                ll_nack_u32(n, ch);
                n->channel = ch;
                n->observed = ch;
                return false;
            }
        }
        uint32_t seen = 0;
        for (uint8_t k = 0; k < nsp; k++) {
            uint8_t ch = sp[k * SETPOINT];
            uint32_t bit = 1u << channel_index(hw, ch);
            if (seen & bit) {
                step_prefix(n, LL_NC_BAD_VALUE, s);
                ll_nack_str(n, "channel ");
                ll_nack_u32(n, ch);
                ll_nack_str(n, " given twice");
                n->channel = ch;
                return false;
            }
            seen |= bit;
        }
        for (uint8_t k = 0; k < nsp; k++) {
            uint8_t ch = sp[k * SETPOINT];
            uint16_t irr = ll_get16(sp + k * SETPOINT + 1);
            uint16_t cap = hw->ch_max_q[channel_index(hw, ch)];
            if (hw->max_irr_q < cap) {
                cap = hw->max_irr_q;
            }
            if (irr > cap) {
                step_prefix(n, LL_NC_LIMIT_IRRADIANCE, s);
                ll_nack_str(n, "channel ");
                ll_nack_u32(n, ch);
                ll_nack_str(n, " ");
                ll_nack_fixed(n, irr, 2);
                ll_nack_str(n, " > ");
                ll_nack_fixed(n, cap, 2);
                ll_nack_str(n, " mW/cm2");
                n->channel = ch;
                n->limit = cap;
                n->observed = irr;
                return false;
            }
        }
        if (dur == 0) {
            step_prefix(n, LL_NC_BAD_VALUE, s);
            ll_nack_str(n, "duration must be > 0");
            return false;
        }
        if (ramp > dur) {
            step_prefix(n, LL_NC_BAD_VALUE, s);
            ll_nack_str(n, "ramp longer than the step");
            n->limit = ll_sat_i32(dur);
            n->observed = ll_sat_i32(ramp);
            return false;
        }
        if (mhz == 0) {
            if (duty != LL_FULL_DUTY) {
                step_prefix(n, LL_NC_PULSE_RANGE, s);
                ll_nack_str(n, "continuous wave needs duty 100 %");
                n->limit = LL_FULL_DUTY;
                n->observed = duty;
                return false;
            }
        } else {
            if (mhz < hw->min_pulse_mhz || mhz > hw->max_pulse_mhz) {
                uint32_t lim = mhz < hw->min_pulse_mhz ? hw->min_pulse_mhz : hw->max_pulse_mhz;
                step_prefix(n, LL_NC_PULSE_RANGE, s);
                ll_nack_str(n, "pulse ");
                ll_nack_g(n, mhz, 3);
                ll_nack_str(n, " Hz outside ");
                ll_nack_g(n, hw->min_pulse_mhz, 3);
                ll_nack_str(n, "-");
                ll_nack_g(n, hw->max_pulse_mhz, 3);
                ll_nack_str(n, " Hz");
                n->limit = ll_sat_i32(lim);
                n->observed = ll_sat_i32(mhz);
                return false;
            }
            if (duty < 100 || duty > LL_FULL_DUTY) {
                step_prefix(n, LL_NC_PULSE_RANGE, s);
                ll_nack_str(n, "duty ");
                ll_nack_g(n, duty, 2);
                ll_nack_str(n, " % outside 1-100 %");
                n->limit = duty < 100 ? 100 : LL_FULL_DUTY;
                n->observed = duty;
                return false;
            }
        }
        for (uint8_t k = 0; k < nsp; k++) {
            uint8_t ch = sp[k * SETPOINT];
            uint32_t tgt = ll_get32(sp + k * SETPOINT + 3);
            if (kind == LL_STEP_DURATION && tgt != 0) {
                step_prefix(n, LL_NC_BAD_VALUE, s);
                ll_nack_str(n, "a duration step takes no fluence target (channel ");
                ll_nack_u32(n, ch);
                ll_nack_str(n, ")");
                n->channel = ch;
                n->observed = ll_sat_i32(tgt);
                return false;
            }
            if (kind == LL_STEP_FLUENCE && tgt == 0) {
                step_prefix(n, LL_NC_BAD_VALUE, s);
                ll_nack_str(n, "a fluence step needs a target for channel ");
                ll_nack_u32(n, ch);
                n->channel = ch;
                return false;
            }
        }
        /* planned fluence in units of 5e-13 J/cm² (µJ/cm² × 2,000,000), as the spec's
         * irradiance × duty × (duration − ramp/2) */
        for (uint8_t k = 0; k < nsp; k++) {
            int ci = channel_index(hw, sp[k * SETPOINT]);
            uint16_t irr = ll_get16(sp + k * SETPOINT + 1);
            uint32_t tgt = ll_get32(sp + k * SETPOINT + 3);
            uint64_t amount;
            if (kind == LL_STEP_DURATION) {
                uint64_t t2 = 2ull * dur - ramp;
                uint64_t a = (uint64_t)irr * duty;
                amount = (a != 0 && t2 > UINT64_MAX / a) ? UINT64_MAX : a * t2;
            } else {
                amount = (uint64_t)tgt * 2000000ull;
            }
            planned[ci] = add_sat(planned[ci], amount);
        }
        total_ms += dur;
        off += STEP_HEAD + (uint32_t)nsp * SETPOINT;
    }
    if (total_ms > hw->max_session_ms) {
        ll_nack_set(n, LL_NC_LIMIT_DURATION, "plan runs ");
        ll_nack_g(n, total_ms, 3);
        ll_nack_str(n, " s, above the device's ");
        ll_nack_g(n, hw->max_session_ms, 3);
        ll_nack_str(n, " s");
        n->limit = ll_sat_i32(hw->max_session_ms);
        n->observed = ll_sat_i32((int64_t)total_ms);
        return false;
    }
    uint64_t max_amount = (uint64_t)hw->max_fluence_uj * 2000000ull;
    for (uint8_t i = 0; i < hw->n_ch; i++) {
        if (planned[i] > max_amount) {
            uint64_t uj = planned[i] / 2000000ull + (planned[i] % 2000000ull != 0);
            ll_nack_set(n, LL_NC_LIMIT_FLUENCE, "channel ");
            ll_nack_u32(n, hw->ch_id[i]);
            ll_nack_str(n, ": ");
            ll_nack_fixed(n, (int64_t)(uj / 1000 + ((uj % 1000) >= 500)), 3);
            ll_nack_str(n, " > ");
            ll_nack_g(n, hw->max_fluence_uj, 6);
            ll_nack_str(n, " J/cm2");
            n->channel = hw->ch_id[i];
            n->limit = ll_sat_i32(hw->max_fluence_uj);
            n->observed = ll_sat_i32((int64_t)(uj > INT32_MAX ? INT32_MAX : uj));
            return false;
        }
    }
    /* store */
    ll_plan_t *pl = &c->plan;
    memset(pl, 0, sizeof *pl);
    pl->plan_id = plan_id;
    pl->policy = policy;
    pl->lease_ms = lease;
    pl->n_steps = n_steps;
    off = PLAN_HEAD;
    for (uint8_t s = 0; s < n_steps; s++) {
        const uint8_t *st = p + off;
        ll_step_t *d = &pl->steps[s];
        d->kind = st[0];
        d->duration_ms = ll_get32(st + 1);
        d->ramp_ms = ll_get32(st + 5);
        d->pulse_mhz = ll_get32(st + 9);
        d->duty = ll_get16(st + 13);
        d->n_sp = st[15];
        LL_ASSERT(c, d->n_sp <= hw->n_ch);
        for (uint8_t k = 0; k < d->n_sp; k++) {
            const uint8_t *q = st + STEP_HEAD + k * SETPOINT;
            d->sp[k].index = (uint8_t)channel_index(hw, q[0]);
            d->sp[k].irr_q = ll_get16(q + 1);
            d->sp[k].target_uj = ll_get32(q + 3);
        }
        off += STEP_HEAD + (uint32_t)d->n_sp * SETPOINT;
    }
    return true;
}

/* The C plant of the simulated ports (see plant.h). */
#include "plant.h"

#include <string.h>

enum { PF_OVERTEMP = 1, PF_THERM_OPEN, PF_THERM_SHORT, PF_LED_OPEN, PF_STUCK_ON, PF_BROWNOUT,
       PF_LINK_DROP, PF_CORRUPT, PF_REBOOT, PF_HEAD_OFF };

static float f32_at(const uint8_t *p)
{
    float f;
    memcpy(&f, p, 4); /* little-endian, as the host and Cortex-M are */
    return f;
}

uint32_t plant_rand(plant_t *p)
{
    uint32_t x = p->rng;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    p->rng = x ? x : 0x9E3779B9u;
    return p->rng;
}

/* roughly normal, clipped to ±3: the sum of 12 uniforms less 6 */
static float gauss(plant_t *p)
{
    float s = 0;
    for (int i = 0; i < 12; i++) {
        s += (float)(plant_rand(p) >> 8) / 16777216.0f;
    }
    s -= 6.0f;
    return s > 3.0f ? 3.0f : s < -3.0f ? -3.0f : s;
}

static bool bit(uint32_t m, int i) { return (m >> i) & 1u; }

void plant_init(plant_t *p, const lllt_board_desc_t *d, const ll_board_t *hw, float ambient_c,
                uint32_t seed)
{
    memset(p, 0, sizeof *p);
    p->desc = d;
    p->hw = hw;
    p->ambient_c = ambient_c;
    p->rng = seed * 2654435761u + 12345u;
    p->master = true;
    p->head = true;
    p->noise_c = d->sensor_noise_c;
    const uint8_t *h = hw->hello;
    for (uint8_t z = 0; z < hw->n_z; z++) {
        const uint8_t *f = h + hw->zone_name[z] + 1 + h[hw->zone_name[z]];
        p->cb[z] = f32_at(f + 4);
        p->cs[z] = f32_at(f + 8);
        p->ga[z] = f32_at(f + 12);
        p->gc[z] = f32_at(f + 16);
        p->gt[z] = f32_at(f + 20);
        p->tcore[z] = f32_at(f + 24);
        /* idle steady state: ga (Ta - Tb) + gc (Ts - Tb) = 0, gc (Tb - Ts) + gt (Tc - Ts) = 0 */
        float a = p->ga[z], c = p->gc[z], t = p->gt[z];
        float det = (a + c) * (c + t) - c * c;
        p->tb[z] = ((c + t) * a * ambient_c + c * t * p->tcore[z]) / det;
        p->ts[z] = (c * a * ambient_c + (a + c) * t * p->tcore[z]) / det;
    }
    /* channel records follow the zones: find them from the end of the last zone */
    uint32_t off = hw->zone_name[hw->n_z - 1];
    off += 1 + h[off] + 28;
    off += 1; /* n_channels */
    for (uint8_t i = 0; i < hw->n_ch; i++, off += 21) {
        const uint8_t *c = h + off;
        p->kco[i] = (float)(int16_t)(c[6] | (c[7] << 8)) / 100000.0f; /* 0.001 %/K */
        p->hb[i] = f32_at(c + 13);
        p->hs[i] = f32_at(c + 17);
        p->dmax[i] = (float)hw->ch_max_q[i] / 100.0f * d->headroom;
        p->pwm[i] = (lllt_pwm_t){0, 10000, 0};
    }
}

/* --- faults ------------------------------------------------------------------------------ */

static const struct {
    const char *name;
    uint8_t kind;
    char arg; /* 'z' zone, 'c' channel, 'r' rate, 0 none */
} FAULTS[] = {
    {"overtemp", PF_OVERTEMP, 'z'},     {"thermistor_open", PF_THERM_OPEN, 'z'},
    {"thermistor_short", PF_THERM_SHORT, 'z'}, {"led_open", PF_LED_OPEN, 'c'},
    {"stuck_on", PF_STUCK_ON, 'c'},     {"brownout", PF_BROWNOUT, 0},
    {"link_drop", PF_LINK_DROP, 0},     {"corrupt", PF_CORRUPT, 'r'},
    {"reboot", PF_REBOOT, 0},           {"head_off", PF_HEAD_OFF, 0},
};

static void say(char *err, uint32_t n, const char *a, const char *b)
{
    uint32_t k = 0;
    for (const char *s = a; *s && k + 1 < n; s++) {
        err[k++] = *s;
    }
    for (const char *s = b; s && *s && k + 1 < n; s++) {
        err[k++] = *s;
    }
    if (n) {
        err[k] = 0;
    }
}

/* a decimal number: digits, optional fraction; *end past it */
static bool number(const char *s, const char *e, double *v, const char **end)
{
    double x = 0, scale = 0;
    const char *q = s;
    bool any = false;
    while (q < e && ((*q >= '0' && *q <= '9') || *q == '.')) {
        if (*q == '.') {
            if (scale) {
                return false;
            }
            scale = 1;
        } else {
            x = x * 10 + (*q - '0');
            if (scale) {
                scale *= 10;
            }
            any = true;
        }
        q++;
    }
    if (!any) {
        return false;
    }
    *v = scale ? x / scale : x;
    *end = q;
    return true;
}

static bool duration(const char *s, const char *e, uint32_t *ms)
{
    double v;
    const char *u;
    if (!number(s, e, &v, &u)) {
        return false;
    }
    size_t n = (size_t)(e - u);
    double f;
    if (n == 2 && !memcmp(u, "ms", 2)) {
        f = 1;
    } else if (n == 1 && *u == 's') {
        f = 1000;
    } else if (n == 3 && !memcmp(u, "min", 3)) {
        f = 60000;
    } else if (n == 1 && *u == 'h') {
        f = 3600000;
    } else {
        return false;
    }
    *ms = (uint32_t)(v * f + 0.5);
    return true;
}

bool plant_parse_faults(plant_t *p, const char *spec, char *err, uint32_t err_len)
{
    const char *s = spec;
    while (s && *s) {
        const char *e = s;
        while (*e && *e != ',') {
            e++;
        }
        const char *name_end = s;
        while (name_end < e && *name_end != ':' && *name_end != '@' && *name_end != '+') {
            name_end++;
        }
        int which = -1;
        for (unsigned i = 0; i < sizeof FAULTS / sizeof FAULTS[0]; i++) {
            if (strlen(FAULTS[i].name) == (size_t)(name_end - s) &&
                !memcmp(FAULTS[i].name, s, (size_t)(name_end - s))) {
                which = (int)i;
            }
        }
        if (which < 0) {
            say(err, err_len, "unknown fault in: ", s);
            return false;
        }
        if (p->n_faults == PLANT_MAX_FAULTS) {
            say(err, err_len, "too many faults (16 at most)", NULL);
            return false;
        }
        plant_fault_t *f = &p->faults[p->n_faults];
        memset(f, 0, sizeof *f);
        f->kind = FAULTS[which].kind;
        f->arg = FAULTS[which].arg == 'z' ? 0 : -1;
        const char *q = name_end;
        if (q < e && *q == ':') {
            const char *a = ++q;
            while (q < e && *q != '@' && *q != '+') {
                q++;
            }
            double v;
            const char *end;
            int named = -1; /* a zone may be given by name, as in the simulator */
            for (uint8_t z = 0; FAULTS[which].arg == 'z' && z < p->hw->n_z; z++) {
                const uint8_t *nm = p->hw->hello + p->hw->zone_name[z];
                if ((size_t)nm[0] == (size_t)(q - a) && !memcmp(nm + 1, a, nm[0])) {
                    named = z;
                }
            }
            if (named >= 0) {
                v = -1;
                end = q;
                f->arg = (int16_t)named;
            } else if (!FAULTS[which].arg || !number(a, q, &v, &end) || end != q) {
                say(err, err_len, "bad fault argument in: ", s);
                return false;
            }
            if (named >= 0) {
                /* the zone's index, set above */
            } else if (FAULTS[which].arg == 'r') {
                f->rate = (float)v;
            } else {
                int id = (int)v, idx = -1;
                if (FAULTS[which].arg == 'c') {
                    for (uint8_t i = 0; i < p->hw->n_ch; i++) {
                        if (p->hw->ch_id[i] == id) {
                            idx = i;
                        }
                    }
                } else if (id < p->hw->n_z) {
                    idx = id; /* zone ids of the shipped boards are their positions */
                }
                if (idx < 0) {
                    say(err, err_len, "no such zone or channel in: ", s);
                    return false;
                }
                f->arg = (int16_t)idx;
            }
        } else if (FAULTS[which].arg == 'c' || FAULTS[which].arg == 'r') {
            say(err, err_len, "this fault needs an argument: ", s);
            return false;
        }
        if (q < e && *q == '@') {
            const char *a = ++q;
            while (q < e && *q != '+') {
                q++;
            }
            if (!duration(a, q, &f->at_ms)) {
                say(err, err_len, "bad time (use 1500ms, 2.5s, 5min) in: ", s);
                return false;
            }
        }
        if (q < e && *q == '+') {
            if (!duration(q + 1, e, &f->dur_ms) || f->kind == PF_REBOOT) {
                say(err, err_len, "bad duration in: ", s);
                return false;
            }
            q = e;
        }
        if (q != e) {
            say(err, err_len, "cannot read fault: ", s);
            return false;
        }
        p->n_faults++;
        s = *e ? e + 1 : e;
    }
    return true;
}

void plant_arm(plant_t *p, uint32_t t_ms)
{
    if (!p->armed) {
        p->armed = true;
        p->armed_at = t_ms;
    }
}

static bool active(const plant_t *p, const plant_fault_t *f, uint32_t t)
{
    if (!p->armed || (int32_t)(t - (p->armed_at + f->at_ms)) < 0) {
        return false;
    }
    return f->dur_ms == 0 || (int32_t)(t - (p->armed_at + f->at_ms + f->dur_ms)) < 0;
}

static void apply_faults(plant_t *p)
{
    uint32_t t = p->t_ms;
    p->overtemp_mask = p->open_mask = p->stuck_mask = 0;
    p->therm_open_mask = p->therm_short_mask = 0;
    p->brownout = false;
    p->head = true;
    for (uint8_t i = 0; i < p->n_faults; i++) {
        plant_fault_t *f = &p->faults[i];
        if (f->kind == PF_REBOOT) {
            if (!f->fired && p->armed && (int32_t)(t - (p->armed_at + f->at_ms)) >= 0) {
                f->fired = true;
                p->reboot_pending = true;
            }
            continue;
        }
        if (!active(p, f, t)) {
            continue;
        }
        uint32_t m = f->arg >= 0 ? 1u << f->arg : 0;
        switch (f->kind) {
        case PF_OVERTEMP: p->overtemp_mask |= m; break;
        case PF_THERM_OPEN: p->therm_open_mask |= m; break;
        case PF_THERM_SHORT: p->therm_short_mask |= m; break;
        case PF_LED_OPEN: p->open_mask |= m; break;
        case PF_STUCK_ON: p->stuck_mask |= m; break;
        case PF_BROWNOUT: p->brownout = true; break;
        case PF_HEAD_OFF: p->head = false; break;
        default: break;
        }
    }
}

bool plant_take_reboot(plant_t *p)
{
    bool r = p->reboot_pending;
    p->reboot_pending = false;
    return r;
}

bool plant_link_dropped(const plant_t *p, uint32_t t)
{
    for (uint8_t i = 0; i < p->n_faults; i++) {
        if (p->faults[i].kind == PF_LINK_DROP && active(p, &p->faults[i], t)) {
            return true;
        }
    }
    return false;
}

float plant_corrupt_rate(const plant_t *p, uint32_t t)
{
    float r = 0;
    for (uint8_t i = 0; i < p->n_faults; i++) {
        if (p->faults[i].kind == PF_CORRUPT && active(p, &p->faults[i], t)) {
            r += p->faults[i].rate;
        }
    }
    return r;
}

/* --- physics --------------------------------------------------------------------------- */

/* on-state output of channel i (mW/cm²) at board temperature tb, and its drive mode */
static float output(const plant_t *p, uint8_t i, float tb, bool *full_drive)
{
    *full_drive = false;
    if (!p->master || p->brownout || bit(p->open_mask, i)) {
        return 0;
    }
    float cap = p->dmax[i] * (1.0f + p->kco[i] * (tb - 25.0f));
    if (cap < 0) {
        cap = 0;
    }
    if (bit(p->stuck_mask, i)) {
        *full_drive = true;
        return cap;
    }
    float want = (float)p->pwm[i].level_q / 100.0f;
    if (want <= cap) {
        return want; /* optical feedback holds the output */
    }
    *full_drive = true;
    return cap;
}

static uint16_t q16(float mw)
{
    float q = mw * 100.0f + 0.5f;
    return q <= 0 ? 0 : q >= 65535.0f ? 65535 : (uint16_t)q;
}

void plant_advance(plant_t *p, uint32_t t_ms)
{
    const ll_board_t *hw = p->hw;
    while ((int32_t)(t_ms - p->t_ms) > 0) {
        uint32_t step = t_ms - p->t_ms;
        if (step > p->desc->tick_ms) {
            step = p->desc->tick_ms;
        }
        float dt = (float)step / 1000.0f;
        float qb[LLLT_MAX_ZONES] = {0}, qs[LLLT_MAX_ZONES] = {0};
        for (uint8_t i = 0; i < hw->n_ch; i++) {
            uint8_t z = hw->ch_zone[i];
            bool full;
            float out = output(p, i, p->tb[z], &full);
            float d = bit(p->stuck_mask, i) ? 1.0f : (float)p->pwm[i].duty / 10000.0f;
            p->interval_q[i] = q16(out);
            if (out <= 0) {
                continue;
            }
            float drive = full ? p->dmax[i] /* full drive */
                               : out * (1.0f + p->kco[i] * (25.0f - p->tb[z]));
            qb[z] += p->hb[i] * d * drive;
            qs[z] += p->hs[i] * d * out;
        }
        for (uint8_t z = 0; z < hw->n_z; z++) {
            if (bit(p->overtemp_mask, z)) {
                qb[z] += p->desc->overtemp_w;
            }
            float tb = p->tb[z], ts = p->ts[z];
            float db = (qb[z] + p->gc[z] * (ts - tb) + p->ga[z] * (p->ambient_c - tb)) / p->cb[z];
            float ds = (qs[z] + p->gc[z] * (tb - ts) + p->gt[z] * (p->tcore[z] - ts)) / p->cs[z];
            p->tb[z] = tb + db * dt;
            p->ts[z] = ts + ds * dt;
        }
        p->t_ms += step;
        apply_faults(p);
    }
}

/* --- the HAL side ------------------------------------------------------------------------- */

void plant_sense(plant_t *p, lllt_sense_t *s)
{
    memset(s, 0, sizeof *s);
    for (uint8_t z = 0; z < p->hw->n_z; z++) {
        if (bit(p->therm_open_mask, z)) {
            s->temp_q[z] = -5500; /* an open NTC reads very cold */
        } else if (bit(p->therm_short_mask, z)) {
            s->temp_q[z] = 15000;
        } else {
            float r = p->ts[z] * 100.0f + gauss(p) * p->noise_c * 100.0f;
            s->temp_q[z] = (int16_t)(r < 0 ? r - 0.5f : r + 0.5f);
        }
    }
    s->ambient_q = (int16_t)(p->ambient_c * 100.0f + 0.5f);
    float load = 0;
    for (uint8_t i = 0; i < p->hw->n_ch; i++) {
        load += (float)p->pwm[i].level_q / 100.0f / (p->dmax[i] > 0 ? p->dmax[i] : 1.0f) *
                (float)p->pwm[i].duty / 10000.0f;
    }
    load /= (float)p->hw->n_ch;
    s->supply_mv = p->brownout ? (uint16_t)(p->desc->brownout_mv - 300)
                               : (uint16_t)(p->desc->supply_mv - (uint16_t)(40.0f * load));
    s->head_present = p->head ? 1 : 0;
    p->in_sample = true; /* the next output_sense describes the interval that ended */
}

void plant_output_sense(plant_t *p, uint16_t *q, uint8_t n)
{
    if (p->in_sample) {
        memcpy(q, p->interval_q, n * sizeof *q);
        return;
    }
    for (uint8_t i = 0; i < n; i++) {
        bool full;
        q[i] = q16(output(p, i, p->tb[p->hw->ch_zone[i]], &full));
    }
}

void plant_pwm_apply(plant_t *p, const lllt_pwm_t *pwm, uint8_t n)
{
    memcpy(p->pwm, pwm, n * sizeof *pwm);
    p->in_sample = false;
}

void plant_master_set(plant_t *p, bool on) { p->master = on; }

bool plant_driver_test(const plant_t *p) { return p->stuck_mask == 0; }

/* The core's main loop, its frame input and output, and the request dispatcher (wire
 * spec §4 "Order of checks"). */
#include "ll_internal.h"
#include "ll_sha256.h"

static const uint8_t DEV_KEY[LLLT_KEY_SIZE] = "lllt-development-key-not-secret!";
_Static_assert(sizeof "lllt-development-key-not-secret!" == LLLT_KEY_SIZE + 1, "dev key");

#define MAX_ENCODED(n) ((n) + (n) / 254 + 1)

/* --- output ----------------------------------------------------------------------------- */

static void tx_flush(lllt_core_t *c)
{
    if (c->txo_len) {
        hal_uart_write(c->board, c->txo, c->txo_len);
        c->txo_len = 0;
    }
}

static void tx_write(void *state, const uint8_t *d, uint32_t n)
{
    lllt_core_t *c = state;
    while (n) {
        uint32_t room = sizeof c->txo - c->txo_len;
        uint32_t k = n < room ? n : room;
        memcpy(c->txo + c->txo_len, d, k);
        c->txo_len += k;
        d += k;
        n -= k;
        if (c->txo_len == sizeof c->txo) {
            tx_flush(c);
        }
    }
}

/* the frame whose payload is at txp + 7 */
static void send_txp(lllt_core_t *c, uint8_t type, uint16_t seq, uint32_t len)
{
    LL_ASSERT(c, len <= LLLT_TX_MAX);
    uint8_t *f = c->txp;
    f[0] = LL_PROTOCOL_MAJOR;
    f[1] = 0;
    f[2] = type;
    ll_put16(f + 3, seq);
    ll_put16(f + 5, (uint16_t)len);
    uint16_t crc = ll_crc16(LL_CRC16_INIT, f, 7 + len);
    f[7 + len] = (uint8_t)(crc >> 8);
    f[8 + len] = (uint8_t)crc;
    ll_ostream_t out = {tx_write, c};
    ll_cobs_encode(f, 9 + len, &out);
    tx_flush(c);
}

void ll_send_frame(lllt_core_t *c, uint8_t type, uint16_t seq, const uint8_t *payload,
                   uint32_t len)
{
    LL_ASSERT(c, len <= LLLT_TX_MAX);
    if (len) {
        memmove(c->txp + 7, payload, len);
    }
    send_txp(c, type, seq, len);
}

void ll_send_unsolicited(lllt_core_t *c, uint8_t type, const uint8_t *payload, uint32_t len)
{
    c->useq++;
    if (c->in_request) {
        /* after the reply to the request being handled (wire spec §4) */
        LL_ASSERT(c, c->n_pending < LLLT_PENDING_MAX && len <= sizeof c->pending[0].payload);
        ll_pending_t *p = &c->pending[c->n_pending++];
        p->type = type;
        p->seq = c->useq;
        p->len = (uint8_t)len;
        memcpy(p->payload, payload, len);
        return;
    }
    ll_send_frame(c, type, c->useq, payload, len);
}

void ll_event(lllt_core_t *c, uint8_t kind, uint32_t t, uint8_t a, uint8_t b, int64_t value,
              int64_t limit)
{
    uint8_t p[15];
    ll_put32(p, t);
    p[4] = kind;
    p[5] = a;
    p[6] = b;
    ll_put32(p + 7, (uint32_t)ll_sat_i32(value));
    ll_put32(p + 11, (uint32_t)ll_sat_i32(limit));
    ll_send_unsolicited(c, LL_MT_EVENT, p, sizeof p);
}

uint32_t ll_status_payload(lllt_core_t *c, uint8_t *out, uint32_t time_ms)
{
    const ll_board_t *hw = &c->hw;
    uint16_t meas[LLLT_MAX_CHANNELS];
    hal_output_sense(c->board, meas, hw->n_ch); /* the output now */
    uint16_t flags = c->fault_flags;
    bool emitting = false;
    for (uint8_t i = 0; i < hw->n_ch; i++) {
        emitting |= meas[i] != 0;
    }
    if (c->head) {
        flags |= LL_TF_HEAD_PRESENT;
    }
    if (c->lease_expired) {
        flags |= LL_TF_LEASE_EXPIRED;
    } else if (c->session) {
        flags |= LL_TF_LEASE_ACTIVE;
    }
    if (c->paused_host) {
        flags |= LL_TF_PAUSED_BY_HOST;
    }
    if (c->paused_head) {
        flags |= LL_TF_PAUSED_HEAD_OFF;
    }
    if (c->derate < 1000) {
        flags |= LL_TF_DERATED;
    }
    if (emitting) {
        flags |= LL_TF_EMITTING;
    }
    if (c->authed) {
        flags |= LL_TF_AUTHENTICATED;
    }
    if (c->iv_ramping) {
        flags |= LL_TF_RAMPING;
    }
    uint8_t *p = out;
    ll_put32(p, time_ms);
    ll_put16(p + 4, (uint16_t)c->boot_count);
    p[6] = c->state;
    p[7] = c->session ? c->step : 0xFF;
    ll_put32(p + 8, c->tel_plan);
    ll_put16(p + 12, flags);
    ll_put16(p + 14, c->derate);
    ll_put16(p + 16, c->supply_mv);
    ll_put32(p + 18, c->el);
    ll_put32(p + 22, c->sel);
    p[26] = hw->n_ch;
    p[27] = hw->n_z;
    p += 28;
    for (uint8_t i = 0; i < hw->n_ch; i++) {
        ll_put16(p, c->pwm[i].level_q);
        ll_put16(p + 2, meas[i]);
        ll_put32(p + 4, core_units_to_uj(c->fl[i]));
        p += 8;
    }
    for (uint8_t z = 0; z < hw->n_z; z++) {
        ll_put16(p, (uint16_t)c->temp_q[z]);
        p += 2;
    }
    ll_put16(p, (uint16_t)c->ambient_q);
    p += 2;
    return (uint32_t)(p - out);
}

void ll_send_status(lllt_core_t *c, uint8_t type, uint16_t seq, uint32_t time_ms)
{
    uint32_t n = ll_status_payload(c, c->txp + 7, time_ms);
    if (type == LL_MT_TELEMETRY) {
        seq = ++c->useq;
    }
    send_txp(c, type, seq, n);
}

uint32_t ll_record_payload(const lllt_core_t *c, const ll_record_t *r, uint8_t *p)
{
    ll_put32(p, r->plan_id);
    ll_put16(p + 4, r->boot_count);
    ll_put32(p + 6, r->start_ms);
    ll_put32(p + 10, r->end_ms);
    p[14] = r->outcome;
    p[15] = r->reason;
    ll_put32(p + 16, r->emitting_ms);
    p[20] = c->hw.n_ch;
    for (uint8_t k = 0; k < c->hw.n_ch; k++) {
        ll_put32(p + 21 + 4 * k, r->fluence_uj[k]);
    }
    return 21u + 4u * c->hw.n_ch;
}

/* --- set-up ----------------------------------------------------------------------------- */

static void new_nonce(lllt_core_t *c)
{
    c->nonce_ok = hal_random(c->board, c->nonce, LLLT_NONCE_SIZE);
    if (!c->nonce_ok) {
        memset(c->nonce, 0, sizeof c->nonce);
    }
    c->last_counter = 0;
    c->authed = false;
}

void core_init(lllt_core_t *c, void *board, const ll_board_t *hw, const ll_config_t *cfg)
{
    memset(c, 0, sizeof *c);
    c->board = board;
    c->hw = *hw;
    c->cfg = *cfg;
    if (c->cfg.tick_ms == 0) {
        c->cfg.tick_ms = 10;
    }
    LL_ASSERT(c, c->cfg.tick_ms <= 1000);
}

void core_boot(lllt_core_t *c, uint8_t cause)
{
    /* RAM is lost: everything but the configuration starts again */
    void *board = c->board;
    ll_board_t hw = c->hw;
    ll_config_t cfg = c->cfg;
    ll_stats_t stats = c->stats;
    memset(c, 0, sizeof *c);
    c->board = board;
    c->hw = hw;
    c->cfg = cfg;
    c->stats = stats;

    /* emitters off before anything else */
    ll_outputs_off(c);
    c->master_on = true;
    hal_master_set(board, true);

    ll_cobs_dec_init(&c->dec, c->frame, sizeof c->frame, MAX_ENCODED(9 + LLLT_MAX_PAYLOAD));
    c->head = true;
    c->derate = 1000;
    c->tel_period = LL_TEL_DEFAULT_MS;
    c->tel_due = LL_TEL_DEFAULT_MS;
    c->state = LL_ST_IDLE;
    /* the sensors now, so that a STATUS before the first tick reports real readings (a
     * placeholder would let a host's pre-flight check trust a scalp it has not measured);
     * the head is assumed present until the first tick, whose reading sends HEAD if not */
    lllt_sense_t s;
    memset(&s, 0, sizeof s);
    hal_sense(board, &s);
    memcpy(c->temp_q, s.temp_q, sizeof c->temp_q);
    c->ambient_q = s.ambient_q;
    c->supply_mv = s.supply_mv;

    ll_nv_load(c);
    /* a session found running was cut by the reset: POWER_LOSS with its checkpoint */
    for (uint8_t i = 0; i < c->n_records; i++) {
        if (c->records[i].outcome == LL_OUT_RUNNING) {
            c->records[i].outcome = LL_OUT_POWER_LOSS;
        }
    }
    if (!c->provisioned && cfg.key != NULL) {
        memcpy(c->key, cfg.key, LLLT_KEY_SIZE);
        c->have_key = c->provisioned = true;
    }
    c->caps = hw.caps;
    if (c->provisioned || LLLT_RELEASE) {
        c->caps &= (uint16_t)~LL_CAP_DEV_KEY; /* the published key is refused */
    }
    if (!c->provisioned && (c->caps & LL_CAP_DEV_KEY)) {
        memcpy(c->key, DEV_KEY, LLLT_KEY_SIZE);
        c->have_key = true;
    }
    c->boot_count++;
    ll_nv_save(c);
    new_nonce(c);
    if (!(cause == LL_BOOT_POWER_ON && cfg.quiet_power_on)) {
        ll_event(c, LL_EV_BOOT, 0, cause, LL_NO_INDEX, c->boot_count & 0xFFFF, 0);
    }
}

/* --- receive ---------------------------------------------------------------------------- */

bool core_rx_isr(lllt_core_t *c, uint8_t byte)
{
    uint32_t head = c->rx_head;
    if (head - c->rx_tail >= LLLT_RX_QUEUE) {
        c->rx_lost++;
        return false;
    }
    c->rxq[head & (LLLT_RX_QUEUE - 1)] = byte;
    c->rx_head = head + 1;
    return true;
}

uint32_t core_rx_room(const lllt_core_t *c) { return LLLT_RX_QUEUE - (c->rx_head - c->rx_tail); }

void core_link_closed(lllt_core_t *c)
{
    c->rx_tail = c->rx_head;
    ll_cobs_dec_reset(&c->dec);
    c->report_on = false;
}

/* --- requests --------------------------------------------------------------------------- */

typedef struct req {
    uint8_t version, flags, type;
    uint16_t seq;
    const uint8_t *payload; /* without the trailer once checked */
    uint32_t len;
    bool authed;
} req_t;

/* the reply being built: type and payload length at txp + 7 */
typedef struct reply {
    uint8_t type;
    uint32_t len;
} reply_t;

static reply_t nack(lllt_core_t *c, const ll_nack_t *n)
{
    uint8_t *p = c->txp + 7;
    p[0] = n->code;
    p[1] = n->channel;
    ll_put32(p + 2, (uint32_t)n->limit);
    ll_put32(p + 6, (uint32_t)n->observed);
    memcpy(p + 10, n->detail, n->len);
    c->stats.nacks++;
    return (reply_t){LL_MT_NACK, 10u + n->len};
}

static reply_t nack_simple(lllt_core_t *c, uint8_t code, const char *text, int32_t limit,
                           int32_t observed)
{
    ll_nack_t n;
    ll_nack_set(&n, code, text);
    n.limit = limit;
    n.observed = observed;
    return nack(c, &n);
}

static reply_t ack(void) { return (reply_t){LL_MT_ACK, 0}; }

static const char *type_name(uint8_t t)
{
    switch (t) {
    case LL_MT_UPLOAD_PLAN: return "UPLOAD_PLAN";
    case LL_MT_START: return "START";
    case LL_MT_PAUSE: return "PAUSE";
    case LL_MT_RESUME: return "RESUME";
    case LL_MT_ABORT: return "ABORT";
    case LL_MT_HEARTBEAT: return "HEARTBEAT";
    case LL_MT_SET_TELEMETRY: return "SET_TELEMETRY";
    case LL_MT_DERATE: return "DERATE";
    case LL_MT_GET_STATUS: return "GET_STATUS";
    case LL_MT_GET_RECORDS: return "GET_RECORDS";
    case LL_MT_CLEAR_FAULT: return "CLEAR_FAULT";
    case LL_MT_PROVISION_KEY: return "PROVISION_KEY";
    case LL_MT_RECORD_ACCESS: return "RECORD_ACCESS";
    default: return NULL;
    }
}

/* the payload size each fixed-size request takes (-1: not fixed) */
static int fixed_size(uint8_t t)
{
    switch (t) {
    case LL_MT_START: return 4;
    case LL_MT_PAUSE: case LL_MT_RESUME: case LL_MT_HEARTBEAT: case LL_MT_GET_STATUS:
    case LL_MT_CLEAR_FAULT: return 0;
    case LL_MT_SET_TELEMETRY: case LL_MT_DERATE: return 2;
    case LL_MT_GET_RECORDS: return 1;
    case LL_MT_PROVISION_KEY: return LLLT_KEY_SIZE;
    case LL_MT_RECORD_ACCESS: return 5;
    default: return -1;
    }
}

static reply_t started(lllt_core_t *c, uint32_t pid, uint8_t result, uint32_t start_ms)
{
    uint8_t *p = c->txp + 7;
    ll_put32(p, pid);
    p[4] = result;
    ll_put32(p + 5, start_ms);
    return (reply_t){LL_MT_STARTED, 9};
}

static reply_t on_upload(lllt_core_t *c, const req_t *r)
{
    ll_nack_t n;
    bool need_auth = (c->caps & LL_CAP_AUTH_REQUIRED) && !r->authed;
    if (need_auth) {
        if (!ll_plan_parse(r->payload, r->len, &n)) {
            return nack(c, &n);
        }
        return nack_simple(c, LL_NC_AUTH_REQUIRED, "UPLOAD_PLAN needs authentication", 0, 0);
    }
    if (!ll_plan_check(c, r->payload, r->len, &n)) {
        return nack(c, &n);
    }
    c->plan_loaded = true;
    c->tel_plan = c->plan.plan_id;
    ll_reset_counters(c);
    ll_set_state(c, LL_ST_READY, 0, c->now);
    return ack();
}

static reply_t on_start(lllt_core_t *c, const req_t *r)
{
    uint32_t pid = ll_get32(r->payload);
    if (c->session && c->records[0].plan_id == pid) {
        return started(c, pid, 1, c->records[0].start_ms); /* ALREADY_RUNNING */
    }
    for (uint8_t i = 0; i < c->n_records; i++) {
        const ll_record_t *rec = &c->records[i];
        if (rec->plan_id == pid && !(c->session && i == 0) && rec->outcome != LL_OUT_RUNNING) {
            return started(c, pid, 2, rec->start_ms); /* ALREADY_FINISHED */
        }
    }
    if (c->state == LL_ST_FAULT) {
        return nack_simple(c, LL_NC_FAULT_LATCHED, "a fault is latched; clear it first", 0, 0);
    }
    if (c->session) {
        return nack_simple(c, LL_NC_PLAN_MISMATCH, "another plan is running",
                           (int32_t)c->records[0].plan_id, (int32_t)pid);
    }
    if (!c->plan_loaded) {
        return nack_simple(c, LL_NC_NO_PLAN, "no plan is loaded", 0, (int32_t)pid);
    }
    if (c->plan.plan_id != pid) {
        ll_nack_t n;
        ll_nack_set(&n, LL_NC_PLAN_MISMATCH, "loaded plan is ");
        ll_nack_u32(&n, c->plan.plan_id);
        n.limit = (int32_t)c->plan.plan_id;
        n.observed = (int32_t)pid;
        return nack(c, &n);
    }
    if (!c->head) {
        return nack_simple(c, LL_NC_HEAD_NOT_PRESENT, "the cap is not on a head", 0, 0);
    }
    int32_t limit = c->hw.cutoff_q - LL_TOO_HOT_MARGIN_Q;
    for (uint8_t z = 0; z < c->hw.n_z; z++) {
        if (c->temp_q[z] >= limit) {
            ll_nack_t n;
            ll_nack_set(&n, LL_NC_TOO_HOT, "zone ");
            const uint8_t *name = c->hw.hello + c->hw.zone_name[z];
            char buf[64];
            uint8_t k = name[0] < sizeof buf - 1 ? name[0] : (uint8_t)(sizeof buf - 1);
            memcpy(buf, name + 1, k);
            buf[k] = 0;
            ll_nack_str(&n, buf);
            ll_nack_str(&n, " reads ");
            ll_nack_fixed(&n, c->temp_q[z], 2);
            ll_nack_str(&n, " C");
            n.limit = limit;
            n.observed = c->temp_q[z];
            return nack(c, &n);
        }
    }
    ll_start_session(c, c->now);
    return started(c, pid, 0, c->now);
}

static reply_t on_abort(lllt_core_t *c, const req_t *r)
{
    /* wire 1.1: stopping is never refused, whatever the payload or trailer says; the
     * reason is the first byte when there is one (a trailer alone carries none) */
    uint32_t len = r->len;
    if ((r->flags & LL_FLAG_AUTH) && len >= LL_TRAILER) {
        len -= LL_TRAILER;
    }
    uint8_t reason = len ? r->payload[0] : 0;
    if (reason > 4) {
        reason = 0;
    }
    if (c->session) {
        ll_end_session(c, LL_OUT_ABORTED, reason, LL_ST_IDLE, c->now);
    } else if (c->plan_loaded) {
        c->plan_loaded = false;
        if (c->state == LL_ST_READY) {
            ll_set_state(c, LL_ST_IDLE, reason, c->now);
        }
    }
    ll_outputs_off(c); /* emitters off now, not at the next tick */
    c->end_sample = false;  /* the STATUS below is that sample */
    c->status_after = true; /* wire 1.1: STATUS with the ABORT's seq after the events */
    return ack();
}

static reply_t on_clear_fault(lllt_core_t *c)
{
    if (c->state != LL_ST_FAULT) {
        return ack(); /* nothing latched: clearing is a no-op */
    }
    for (uint8_t i = 0; i < c->n_latched; i++) {
        int32_t lim, obs;
        if (ll_fault_cause(c, &c->latched[i], &lim, &obs)) {
            static const char *const names[] = {
                [LL_IL_THERMAL_CUTOFF] = "thermal_cutoff", [LL_IL_SENSOR_FAULT] = "sensor_fault",
                [LL_IL_OVER_OUTPUT] = "over_output", [LL_IL_BROWNOUT] = "brownout"};
            ll_nack_t n;
            ll_nack_set(&n, LL_NC_FAULT_LATCHED, names[c->latched[i].kind]);
            ll_nack_str(&n, " persists");
            n.limit = lim;
            n.observed = obs;
            return nack(c, &n);
        }
    }
    for (uint8_t i = 0; i < c->n_latched; i++) {
        ll_event(c, LL_EV_FAULT, c->now, c->latched[i].kind, c->latched[i].b, 0, 0);
    }
    c->n_latched = 0;
    c->fault_flags = 0;
    if (!c->master_on) {
        c->master_on = true;
        hal_master_set(c->board, true);
    }
    ll_set_state(c, LL_ST_IDLE, 0, c->now);
    return ack();
}

static reply_t on_provision(lllt_core_t *c, const req_t *r)
{
    if (!hal_link_wired(c->board)) {
        return nack_simple(c, LL_NC_WIRED_ONLY, "keys are provisioned over USB only", 0, 0);
    }
    if (c->session) {
        return nack_simple(c, LL_NC_BAD_STATE, "not during a session", 0, c->state);
    }
    if (c->provisioned && !hal_button_held(c->board)) {
        return nack_simple(c, LL_NC_BAD_STATE, "hold the button to provision a new key", 0, 0);
    }
    static const uint8_t zero[LLLT_KEY_SIZE];
    if (memcmp(r->payload, zero, LLLT_KEY_SIZE) == 0 ||
        memcmp(r->payload, DEV_KEY, LLLT_KEY_SIZE) == 0) {
        return nack_simple(c, LL_NC_BAD_VALUE, "not a usable key", 0, 0);
    }
    memcpy(c->key, r->payload, LLLT_KEY_SIZE);
    c->have_key = c->provisioned = true;
    c->caps &= (uint16_t)~LL_CAP_DEV_KEY;
    ll_nv_save(c);
    new_nonce(c); /* a new conversation under the new key: the host says HELLO again */
    return ack();
}

static uint8_t count_from(const lllt_core_t *c, uint32_t from)
{
    uint8_t n = 0;
    for (uint8_t i = 0; i < c->n_records; i++) {
        n = (uint8_t)(n + (c->records[i].seq >= from && c->records[i].seq > 0));
    }
    return n;
}

static void end_report(lllt_core_t *c, uint8_t status)
{
    c->report_on = false;
    uint8_t p[7];
    p[0] = status;
    ll_put16(p + 1, c->report_sent);
    ll_put32(p + 3, c->report_last);
    ll_send_unsolicited(c, LL_MT_RECORDS_END, p, sizeof p);
}

/* one RECORD of a report under way (one per control tick) */
static void report_step(lllt_core_t *c)
{
    int best = -1;
    for (uint8_t i = 0; i < c->n_records; i++) {
        uint32_t s = c->records[i].seq;
        if (s >= c->report_from && s > 0 && s <= c->report_upto &&
            (best < 0 || s < c->records[best].seq)) {
            best = i;
        }
    }
    if (best < 0) {
        end_report(c, 0);
        return;
    }
    ll_record_t tmp;
    const ll_record_t *r = ll_record_now(c, (uint8_t)best, &tmp);
    uint8_t *p = c->txp + 7;
    ll_put32(p, r->seq);
    uint32_t n = 4 + ll_record_payload(c, r, p + 4);
    c->report_from = r->seq + 1;
    c->report_sent++;
    c->report_last = r->seq;
    send_txp(c, LL_MT_RECORD, ++c->useq, n);
    c->report_due = c->now + c->cfg.tick_ms;
}

static reply_t on_record_access(lllt_core_t *c, const req_t *r)
{
    uint8_t op = r->payload[0];
    uint32_t from = ll_get32(r->payload + 1);
    if (op == 3) {
        if (c->report_on) {
            end_report(c, 1);
        }
        return ack();
    }
    if (op == 1) {
        ll_put16(c->txp + 7, count_from(c, from));
        return (reply_t){LL_MT_RECORD_COUNT, 2};
    }
    if (c->report_on) {
        return nack_simple(c, LL_NC_BUSY, "a report is under way; abort it first", 0, 0);
    }
    c->report_on = true;
    c->report_from = from;
    c->report_upto = c->next_seq - 1; /* the records there are now */
    c->report_sent = 0;
    c->report_last = 0;
    c->report_due = c->now + c->cfg.tick_ms;
    return ack();
}

static reply_t handle_parsed(lllt_core_t *c, const req_t *r)
{
    const uint8_t *p = r->payload;
    switch (r->type) {
    case LL_MT_START:
        return on_start(c, r);
    case LL_MT_PAUSE:
        if (!c->session) {
            return nack_simple(c, LL_NC_BAD_STATE, "no session to pause", 0, c->state);
        }
        c->paused_host = true;
        ll_set_state(c, LL_ST_PAUSED, 0, c->now);
        return ack();
    case LL_MT_RESUME:
        if (!c->session || !c->paused_host) {
            return nack_simple(c, LL_NC_BAD_STATE, "not paused by the host", 0, c->state);
        }
        c->paused_host = false;
        if (!c->paused_head) {
            ll_set_state(c, LL_ST_RUNNING, 0, c->now);
        }
        return ack();
    case LL_MT_HEARTBEAT:
        if (c->session) {
            c->lease_renew = c->now;
            c->lease_deadline = c->now + c->plan.lease_ms;
            c->lease_armed = true;
        }
        if (c->lease_expired) {
            c->lease_expired = false;
            ll_event(c, LL_EV_LEASE_RESTORED, c->now, 0, LL_NO_INDEX, 0, 0);
        }
        return ack();
    case LL_MT_SET_TELEMETRY: {
        uint16_t period = ll_get16(p);
        uint32_t min_ms = (1000u + c->hw.max_tel_hz - 1) / c->hw.max_tel_hz;
        if (period == 0) {
            c->tel_period = 0;
            return ack();
        }
        if (period < min_ms) {
            ll_nack_t n;
            ll_nack_set(&n, LL_NC_BAD_VALUE, "period below ");
            ll_nack_u32(&n, min_ms);
            ll_nack_str(&n, " ms");
            n.limit = (int32_t)min_ms;
            n.observed = period;
            return nack(c, &n);
        }
        c->tel_period = period;
        c->tel_due = c->now + period;
        return ack();
    }
    case LL_MT_DERATE: {
        uint16_t pm = ll_get16(p);
        if (pm < 1 || pm > 1000) {
            return nack_simple(c, LL_NC_BAD_VALUE, "derate is 1 to 1000 permille", 1000, pm);
        }
        if (!c->session) {
            return nack_simple(c, LL_NC_BAD_STATE, "no session to derate", 0, c->state);
        }
        uint16_t old = c->derate;
        if (pm > old && (c->caps & LL_CAP_AUTH_REQUIRED) && !r->authed) {
            return nack_simple(c, LL_NC_AUTH_REQUIRED, "raising the output needs authentication",
                               old, pm);
        }
        c->derate = pm;
        ll_event(c, LL_EV_DERATE, c->now, 0, LL_NO_INDEX, pm, old);
        return ack();
    }
    case LL_MT_GET_STATUS:
        return (reply_t){LL_MT_STATUS, ll_status_payload(c, c->txp + 7, c->now)};
    case LL_MT_GET_RECORDS: {
        uint8_t max = p[0];
        uint8_t *o = c->txp + 7;
        uint32_t n = 1;
        uint8_t count = 0;
        for (uint8_t i = 0; i < c->n_records && count < max; i++, count++) {
            ll_record_t tmp;
            n += ll_record_payload(c, ll_record_now(c, i, &tmp), o + n);
        }
        o[0] = count;
        return (reply_t){LL_MT_RECORDS, n};
    }
    case LL_MT_CLEAR_FAULT:
        return on_clear_fault(c);
    case LL_MT_PROVISION_KEY:
        return on_provision(c, r);
    case LL_MT_RECORD_ACCESS:
        return on_record_access(c, r);
    default:
        LL_ASSERT(c, false);
        return ack();
    }
}

static bool verify_trailer(lllt_core_t *c, const uint8_t *frame, req_t *r, ll_nack_t *n)
{
    if (r->len < LL_TRAILER || !c->have_key || !c->nonce_ok) {
        ll_nack_set(n, LL_NC_AUTH_FAILED, "wrong authentication tag");
        return false;
    }
    uint32_t body = r->len - LL_TRAILER;
    uint32_t counter = ll_get32(r->payload + body);
    const uint8_t *tag = r->payload + body + 4;
    uint8_t cbuf[4], mac[LL_SHA256_SIZE];
    ll_put32(cbuf, counter);
    ll_hmac_t h;
    ll_hmac_init(&h, c->key, LLLT_KEY_SIZE);
    ll_hmac_update(&h, (const uint8_t *)"lllt-auth-1", 11);
    ll_hmac_update(&h, c->nonce, LLLT_NONCE_SIZE);
    ll_hmac_update(&h, cbuf, 4);
    ll_hmac_update(&h, frame, 7); /* the header as received: AUTH set, length with trailer */
    ll_hmac_update(&h, r->payload, body);
    ll_hmac_final(&h, mac);
    if (!ll_equal_ct(mac, tag, 16)) {
        ll_nack_set(n, LL_NC_AUTH_FAILED, "wrong authentication tag");
        return false;
    }
    if (counter <= c->last_counter) {
        ll_nack_set(n, LL_NC_AUTH_FAILED, "counter not above the last accepted");
        n->limit = (int32_t)c->last_counter;
        n->observed = (int32_t)counter;
        return false;
    }
    c->last_counter = counter; /* used up now, even if a later check refuses */
    c->authed = true;
    r->len = body;
    r->authed = true;
    return true;
}

static reply_t dispatch(lllt_core_t *c, const uint8_t *frame, req_t *r)
{
    const char *name = type_name(r->type);
    if (name == NULL) {
        ll_nack_t n;
        static const char hex[] = "0123456789abcdef";
        char t[5] = {'0', 'x', hex[r->type >> 4], hex[r->type & 15], 0};
        ll_nack_set(&n, LL_NC_UNKNOWN_TYPE, "unknown request ");
        ll_nack_str(&n, t);
        n.observed = r->type;
        return nack(c, &n);
    }
    if (r->type == LL_MT_ABORT) {
        return on_abort(c, r);
    }
    if (r->flags & LL_FLAG_AUTH) {
        ll_nack_t n;
        if (!verify_trailer(c, frame, r, &n)) {
            return nack(c, &n);
        }
    }
    if (r->type == LL_MT_UPLOAD_PLAN) {
        return on_upload(c, r);
    }
    int size = fixed_size(r->type);
    if ((int)r->len != size) {
        ll_nack_t n;
        ll_nack_set(&n, LL_NC_BAD_LENGTH, name);
        if (size == 0) {
            ll_nack_str(&n, " takes no payload, got ");
            ll_nack_u32(&n, r->len);
            ll_nack_str(&n, " bytes");
        } else {
            ll_nack_str(&n, " payload must be ");
            ll_nack_u32(&n, (uint32_t)size);
            ll_nack_str(&n, " bytes, got ");
            ll_nack_u32(&n, r->len);
        }
        return nack(c, &n);
    }
    if (r->type == LL_MT_RECORD_ACCESS && (r->payload[0] < 1 || r->payload[0] > 3)) {
        ll_nack_t n;
        ll_nack_set(&n, LL_NC_BAD_LENGTH, "unknown record access op ");
        ll_nack_u32(&n, r->payload[0]);
        return nack(c, &n);
    }
    if ((c->caps & LL_CAP_AUTH_REQUIRED) && !r->authed &&
        (r->type == LL_MT_START || r->type == LL_MT_RESUME)) {
        ll_nack_t n;
        ll_nack_set(&n, LL_NC_AUTH_REQUIRED, name);
        ll_nack_str(&n, " needs authentication");
        return nack(c, &n);
    }
    return handle_parsed(c, r);
}

static void flush_pending(lllt_core_t *c)
{
    for (uint8_t i = 0; i < c->n_pending; i++) {
        const ll_pending_t *p = &c->pending[i];
        ll_send_frame(c, p->type, p->seq, p->payload, p->len);
    }
    c->n_pending = 0;
}

static void handle_frame(lllt_core_t *c, const uint8_t *f, uint32_t flen)
{
    req_t r = {f[0], f[1], f[2], ll_get16(f + 3), f + 7, flen - 9, false};
    if (r.type >= 0x40) {
        c->stats.unexpected++; /* replies and device messages are not for us */
        return;
    }
    if (r.type == LL_MT_HELLO) {
        reply_t rep;
        if (r.flags & LL_FLAG_AUTH) {
            /* HELLO is never signed: refuse and keep the conversation as it is */
            rep = nack_simple(c, LL_NC_AUTH_FAILED, "HELLO is never signed", 0, 0);
        } else {
            memset(c->dedup, 0, sizeof c->dedup); /* a new conversation */
            c->dedup_next = 0;
            if (r.len < 2) {
                rep = nack_simple(c, LL_NC_BAD_LENGTH, "HELLO needs major and minor", 0, 0);
            } else {
                new_nonce(c);
                uint8_t *p = c->txp + 7;
                uint32_t n = c->hw.hello_len;
                LL_ASSERT(c, n <= LLLT_TX_MAX);
                memcpy(p, c->hw.hello, n);
                p[0] = LL_PROTOCOL_MAJOR;
                p[1] = LL_PROTOCOL_MINOR;
                ll_put16(p + 5, c->caps);
                ll_put32(p + 7, c->cfg.clock_rate);
                ll_put16(p + 11, (uint16_t)c->boot_count);
                ll_put32(p + 13, c->now);
                memcpy(p + 17, c->nonce, LLLT_NONCE_SIZE);
                ll_put16(p + 33, LLLT_MAX_PAYLOAD);
                rep = (reply_t){LL_MT_HELLO_INFO, n};
            }
        }
        send_txp(c, rep.type, r.seq, rep.len);
        return;
    }
    if (r.version != LL_PROTOCOL_MAJOR) {
        reply_t rep = nack_simple(c, LL_NC_VERSION, "device speaks protocol 1",
                                  LL_PROTOCOL_MAJOR, r.version);
        send_txp(c, rep.type, r.seq, rep.len);
        return;
    }
    uint16_t crc = ll_crc16(LL_CRC16_INIT, r.payload, r.len);
    for (uint8_t i = 0; i < LLLT_DEDUP_SIZE; i++) {
        ll_dedup_t *d = &c->dedup[i];
        if (d->used && d->type == r.type && d->seq == r.seq && d->crc == crc && d->fits) {
            /* a retry: the same answer, not executed again */
            c->stats.dedup_hits++;
            ll_send_frame(c, d->reply_type, r.seq, d->reply, d->reply_len);
            return;
        }
    }
    c->in_request = true;
    c->status_after = false;
    c->n_pending = 0;
    reply_t rep = dispatch(c, f, &r);
    c->in_request = false;
    ll_dedup_t *d = &c->dedup[c->dedup_next];
    c->dedup_next = (uint8_t)((c->dedup_next + 1) % LLLT_DEDUP_SIZE);
    d->used = 1;
    d->type = r.type;
    d->seq = r.seq;
    d->crc = crc;
    d->reply_type = rep.type;
    d->reply_len = (uint16_t)rep.len;
    d->fits = rep.len <= LLLT_DEDUP_REPLY;
    if (d->fits) {
        memcpy(d->reply, c->txp + 7, rep.len);
    } else {
        /* too large to keep: only read-only replies are that large, and a retry of a
         * read-only request may be answered afresh */
        LL_ASSERT(c, rep.type == LL_MT_RECORDS || rep.type == LL_MT_STATUS);
    }
    send_txp(c, rep.type, r.seq, rep.len);
    flush_pending(c);
    if (c->status_after) {
        c->status_after = false;
        ll_send_status(c, LL_MT_STATUS, r.seq, c->now);
    }
}

static void frame_in(lllt_core_t *c, ll_cobs_result_t res)
{
    if (res == LL_COBS_IDLE || res == LL_COBS_MORE) {
        return;
    }
    if (res != LL_COBS_FRAME) {
        c->stats.frames_bad++;
        return;
    }
    uint32_t n = c->dec.len;
    const uint8_t *f = c->frame;
    if (n < 9) {
        c->stats.frames_bad++;
        return;
    }
    uint16_t crc = ll_crc16(LL_CRC16_INIT, f, n - 2);
    if (crc != (uint16_t)((f[n - 2] << 8) | f[n - 1])) {
        c->stats.frames_bad++;
        return;
    }
    uint16_t length = ll_get16(f + 5);
    if (length > LLLT_MAX_PAYLOAD || length != n - 9) {
        c->stats.frames_bad++; /* a length that does not match: cut by a false delimiter */
        return;
    }
    c->stats.frames_ok++;
    handle_frame(c, f, n);
}

/* --- the main loop -------------------------------------------------------------------- */

static void advance_to(lllt_core_t *c, uint32_t now)
{
    for (;;) {
        uint32_t next_tick = (c->tick_n + 1) * c->cfg.tick_ms;
        uint32_t when = next_tick;
        int what = 0; /* 0 tick, 1 telemetry, 2 record */
        if (c->tel_period && (int32_t)(c->tel_due - when) < 0) {
            when = c->tel_due;
            what = 1;
        }
        if (c->report_on && (int32_t)(c->report_due - when) < 0) {
            when = c->report_due;
            what = 2;
        }
        if (!ll_time_reached(now, when)) {
            return;
        }
        if (what == 0) {
            ll_tick(c);
        } else if (what == 1) {
            c->now = when;
            ll_send_status(c, LL_MT_TELEMETRY, 0, when);
            c->tel_due = when + c->tel_period;
        } else {
            c->now = when;
            report_step(c);
        }
    }
}

void core_task(lllt_core_t *c)
{
    uint32_t now = hal_now_ms(c->board);
    advance_to(c, now);
    c->now = now;
    if (c->rx_lost) {
        c->stats.rx_overflow += c->rx_lost;
        c->rx_lost = 0;
    }
    while (c->rx_tail != c->rx_head) {
        uint8_t b = c->rxq[c->rx_tail & (LLLT_RX_QUEUE - 1)];
        c->rx_tail++;
        frame_in(c, ll_cobs_dec_feed(&c->dec, b));
    }
}

uint32_t core_next_due(const lllt_core_t *c)
{
    uint32_t when = (c->tick_n + 1) * c->cfg.tick_ms;
    if (c->tel_period && (int32_t)(c->tel_due - when) < 0) {
        when = c->tel_due;
    }
    if (c->report_on && (int32_t)(c->report_due - when) < 0) {
        when = c->report_due;
    }
    return when;
}

/* Declarations shared between the core's own files (not for ports). */
#ifndef LL_INTERNAL_H
#define LL_INTERNAL_H

#include "ll_util.h"
#include "lllt_core.h"

/* message types */
enum {
    LL_MT_HELLO = 0x01, LL_MT_UPLOAD_PLAN = 0x10, LL_MT_START = 0x11, LL_MT_PAUSE = 0x12,
    LL_MT_RESUME = 0x13, LL_MT_ABORT = 0x14, LL_MT_HEARTBEAT = 0x15, LL_MT_SET_TELEMETRY = 0x16,
    LL_MT_DERATE = 0x17, LL_MT_GET_STATUS = 0x18, LL_MT_GET_RECORDS = 0x19,
    LL_MT_CLEAR_FAULT = 0x1A, LL_MT_PROVISION_KEY = 0x1B, LL_MT_RECORD_ACCESS = 0x1C,
    LL_MT_ACK = 0x40, LL_MT_NACK = 0x41, LL_MT_HELLO_INFO = 0x42, LL_MT_STARTED = 0x43,
    LL_MT_STATUS = 0x44, LL_MT_RECORDS = 0x45, LL_MT_RECORD_COUNT = 0x46,
    LL_MT_TELEMETRY = 0x60, LL_MT_EVENT = 0x61, LL_MT_RECORD = 0x62, LL_MT_RECORDS_END = 0x63
};
enum {
    LL_NC_UNKNOWN_TYPE = 1, LL_NC_BAD_LENGTH, LL_NC_BAD_VALUE, LL_NC_BAD_STATE, LL_NC_NO_PLAN,
    LL_NC_PLAN_MISMATCH, LL_NC_LIMIT_IRRADIANCE, LL_NC_LIMIT_DURATION, LL_NC_LIMIT_FLUENCE,
    LL_NC_UNKNOWN_CHANNEL, LL_NC_AUTH_REQUIRED, LL_NC_AUTH_FAILED, LL_NC_FAULT_LATCHED,
    LL_NC_TOO_LARGE, LL_NC_HEAD_NOT_PRESENT, LL_NC_VERSION, LL_NC_PULSE_RANGE, LL_NC_TOO_HOT,
    LL_NC_BUSY, LL_NC_WIRED_ONLY
};
enum {
    LL_EV_BOOT = 1, LL_EV_STATE, LL_EV_STEP, LL_EV_INTERLOCK, LL_EV_FAULT, LL_EV_LEASE_EXPIRED,
    LL_EV_LEASE_RESTORED, LL_EV_HEAD, LL_EV_DERATE, LL_EV_TARGET_REACHED, LL_EV_SESSION_END
};
enum {
    LL_TF_HEAD_PRESENT = 0x0001, LL_TF_LEASE_ACTIVE = 0x0002, LL_TF_LEASE_EXPIRED = 0x0004,
    LL_TF_PAUSED_BY_HOST = 0x0008, LL_TF_PAUSED_HEAD_OFF = 0x0010, LL_TF_DERATED = 0x0020,
    LL_TF_FAULT_THERMAL = 0x0040, LL_TF_FAULT_SENSOR = 0x0080, LL_TF_FAULT_OUTPUT = 0x0100,
    LL_TF_FAULT_SUPPLY = 0x0200, LL_TF_EMITTING = 0x0400, LL_TF_AUTHENTICATED = 0x0800,
    LL_TF_RAMPING = 0x1000
};

#define LL_PROTOCOL_MAJOR 1
#define LL_PROTOCOL_MINOR 1
#define LL_NO_INDEX 0xFF
#define LL_FLAG_AUTH 0x01
#define LL_TRAILER 20 /* counter u32 + tag[16] */
#define LL_FULL_DUTY 10000
#define LL_POLICY_FINISH 0
#define LL_POLICY_STOP 1
#define LL_STEP_DURATION 0
#define LL_STEP_FLUENCE 1
#define LL_SENSOR_MIN_Q 0
#define LL_SENSOR_MAX_Q 8000
#define LL_TOO_HOT_MARGIN_Q 100
#define LL_TEL_DEFAULT_MS 100
/* 0.01 mW/cm² × 0.01 % × 1 ms = 1e-12 J/cm² = 1e-6 µJ/cm² */
#define LL_UNITS_PER_UJ 1000000ull

/* a refusal being built */
typedef struct ll_nack {
    uint8_t code;
    uint8_t channel;
    int32_t limit;
    int32_t observed;
    uint8_t len;
    bool full; /* cut at 64 bytes: nothing more is appended */
    char detail[64];
} ll_nack_t;

void ll_nack_set(ll_nack_t *n, uint8_t code, const char *text);
void ll_nack_str(ll_nack_t *n, const char *s);
void ll_nack_u32(ll_nack_t *n, uint32_t v);
void ll_nack_i32(ll_nack_t *n, int32_t v);
void ll_nack_fixed(ll_nack_t *n, int64_t v, unsigned decimals); /* v / 10^decimals, %.Nf */
void ll_nack_g(ll_nack_t *n, uint64_t v, unsigned decimals);    /* v / 10^decimals, %g */

/* output */
void ll_send_frame(lllt_core_t *c, uint8_t type, uint16_t seq, const uint8_t *payload,
                   uint32_t len);
void ll_send_unsolicited(lllt_core_t *c, uint8_t type, const uint8_t *payload, uint32_t len);
void ll_event(lllt_core_t *c, uint8_t kind, uint32_t t, uint8_t a, uint8_t b, int64_t value,
              int64_t limit);
uint32_t ll_status_payload(lllt_core_t *c, uint8_t *out, uint32_t time_ms);
void ll_send_status(lllt_core_t *c, uint8_t type, uint16_t seq, uint32_t time_ms);
uint32_t ll_record_payload(const lllt_core_t *c, const ll_record_t *r, uint8_t *out);

/* execution (ll_exec.c) */
void ll_tick(lllt_core_t *c);
void ll_apply_outputs(lllt_core_t *c);
void ll_outputs_off(lllt_core_t *c);
void ll_set_state(lllt_core_t *c, uint8_t st, int32_t reason, uint32_t t);
void ll_start_session(lllt_core_t *c, uint32_t now);
void ll_end_session(lllt_core_t *c, uint8_t outcome, uint8_t reason, uint8_t new_state,
                    uint32_t t);
void ll_reset_counters(lllt_core_t *c);
bool ll_fault_cause(lllt_core_t *c, const ll_latch_t *l, int32_t *limit, int32_t *observed);
const ll_record_t *ll_record_now(const lllt_core_t *c, uint8_t i, ll_record_t *tmp);

/* plans (ll_plan.c): parse only, or parse and check; false with *n set on refusal */
bool ll_plan_parse(const uint8_t *p, uint32_t len, ll_nack_t *n);
bool ll_plan_check(lllt_core_t *c, const uint8_t *p, uint32_t len, ll_nack_t *n);

/* persistent state (ll_nv.c) */
void ll_nv_load(lllt_core_t *c);
void ll_nv_save(lllt_core_t *c);

#endif

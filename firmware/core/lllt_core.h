/*
 * lllt_core.h - the portable firmware core of an lllt cap (wire protocol 1.1).
 *
 * A port owns one lllt_core_t per device (static storage: the core never allocates),
 * calls core_init() once, core_boot() at every reset, core_rx_isr() from its UART
 * receive interrupt (it only queues bytes), and core_task() from its main loop as often
 * as it can (at least once per control tick). Everything else happens inside
 * core_task(): received frames are decoded and answered, the control tick runs, the
 * interlocks are checked, telemetry and events are sent. The board is reached only
 * through lllt_hal.h.
 *
 * Build-time configuration (define before compiling the core, e.g. with -D):
 *   LLLT_MAX_CHANNELS   channels a board may have (default 16)
 *   LLLT_MAX_ZONES      zones a board may have (default 8)
 *   LLLT_MAX_PAYLOAD    largest request payload taken (default 4096, the wire maximum);
 *                       advertised as max_payload in HELLO_INFO
 *   LLLT_TX_MAX         largest reply payload (default 1536)
 *   LLLT_RX_QUEUE       bytes queued between the interrupt and core_task (default 8192)
 *   LLLT_DEDUP_REPLY    payload bytes remembered per reply in the duplicate memory
 *                       (default LLLT_TX_MAX; a larger reply of a read-only request is
 *                       answered afresh on a retry)
 *   LLLT_RELEASE        1: a release build, which never accepts the development key
 */
#ifndef LLLT_CORE_H
#define LLLT_CORE_H

#include <stdbool.h>
#include <stdint.h>

#include "ll_cobs.h"
#include "lllt_hal.h"

#ifndef LLLT_MAX_CHANNELS
#define LLLT_MAX_CHANNELS 16
#endif
#ifndef LLLT_MAX_ZONES
#define LLLT_MAX_ZONES 8
#endif
#ifndef LLLT_MAX_PAYLOAD
#define LLLT_MAX_PAYLOAD 4096
#endif
#ifndef LLLT_TX_MAX
#define LLLT_TX_MAX 1536
#endif
#ifndef LLLT_RX_QUEUE
#define LLLT_RX_QUEUE 8192
#endif
#ifndef LLLT_DEDUP_REPLY
#define LLLT_DEDUP_REPLY LLLT_TX_MAX
#endif
#ifndef LLLT_RELEASE
#define LLLT_RELEASE 0
#endif
#define LLLT_NV_SIZE 4096u

#define LLLT_MAX_STEPS 16
#define LLLT_MAX_RECORDS 16
#define LLLT_DEDUP_SIZE 8
#define LLLT_KEY_SIZE 32
#define LLLT_NONCE_SIZE 16
#define LLLT_MAX_LATCHED (2 * LLLT_MAX_ZONES + 2)
#define LLLT_PENDING_MAX (LLLT_MAX_LATCHED + 6)

_Static_assert(LLLT_MAX_CHANNELS >= 1 && LLLT_MAX_CHANNELS <= 32, "1 to 32 channels");
_Static_assert(LLLT_MAX_ZONES >= 1 && LLLT_MAX_ZONES <= 8, "1 to 8 zones (lllt_sense_t)");
_Static_assert(LLLT_MAX_PAYLOAD >= 256 && LLLT_MAX_PAYLOAD <= 4096, "max payload 256-4096");
_Static_assert(LLLT_RELEASE == 0 || LLLT_RELEASE == 1, "LLLT_RELEASE is 0 or 1");
_Static_assert((LLLT_RX_QUEUE & (LLLT_RX_QUEUE - 1)) == 0, "LLLT_RX_QUEUE: a power of two");
/* the reply a device must always be able to build: a full RECORDS */
_Static_assert(LLLT_TX_MAX >= 1 + LLLT_MAX_RECORDS * (24 + 4 * LLLT_MAX_CHANNELS),
               "LLLT_TX_MAX too small for RECORDS");
_Static_assert(LLLT_DEDUP_REPLY >= 80, "the duplicate memory must hold any ACK/NACK");

/* wire enumerations (docs/wire-protocol.md) */
enum {
    LL_ST_IDLE = 0, LL_ST_READY = 1, LL_ST_RUNNING = 2, LL_ST_PAUSED = 3, LL_ST_FAULT = 4
};
enum {
    LL_IL_THERMAL_CUTOFF = 1, LL_IL_IRRADIANCE_CAP, LL_IL_MAX_DURATION, LL_IL_MAX_FLUENCE,
    LL_IL_HEAD_OFF_TIMEOUT, LL_IL_LEASE_STOP, LL_IL_BROWNOUT, LL_IL_SENSOR_FAULT,
    LL_IL_OVER_OUTPUT, LL_IL_WATCHDOG
};
enum { LL_BOOT_POWER_ON = 0, LL_BOOT_WATCHDOG = 1, LL_BOOT_BROWNOUT = 2, LL_BOOT_SOFTWARE = 3 };
enum {
    LL_OUT_RUNNING = 0, LL_OUT_COMPLETED, LL_OUT_ABORTED, LL_OUT_INTERLOCK, LL_OUT_LEASE_STOP,
    LL_OUT_POWER_LOSS, LL_OUT_MAX_DURATION
};
enum {
    LL_CAP_AUTH_REQUIRED = 0x0001, LL_CAP_SIMULATED = 0x0002, LL_CAP_PULSE = 0x0004,
    LL_CAP_FLUENCE_TARGET = 0x0008, LL_CAP_HEAD_SENSOR = 0x0010, LL_CAP_DEV_KEY = 0x0020,
    LL_CAP_AMBIENT_SENSOR = 0x0040
};

/* the board, parsed from a HELLO_INFO payload (its template for the reply) */
typedef struct ll_board {
    const uint8_t *hello; /* the HELLO_INFO template; must outlive the core */
    uint16_t hello_len;
    uint16_t caps;
    uint16_t max_irr_q;
    int16_t cutoff_q;
    uint32_t max_session_ms;
    uint32_t max_fluence_uj;
    uint32_t head_off_abort_ms;
    uint32_t min_lease_ms;
    uint32_t min_pulse_mhz;
    uint32_t max_pulse_mhz;
    uint16_t max_tel_hz;
    uint8_t n_ch;
    uint8_t n_z;
    uint8_t ch_id[LLLT_MAX_CHANNELS];
    uint8_t ch_zone[LLLT_MAX_CHANNELS]; /* zone index */
    uint16_t ch_max_q[LLLT_MAX_CHANNELS];
    uint16_t zone_name[LLLT_MAX_ZONES]; /* offset of the zone's name (u8 length + utf-8) */
} ll_board_t;

typedef struct ll_config {
    uint32_t tick_ms;     /* control tick, 1-100 (10 in lllt) */
    uint32_t clock_rate;  /* HELLO_INFO clock_rate */
    uint16_t brownout_mv; /* supply below this trips BROWNOUT */
    bool quiet_power_on;  /* no EVENT BOOT at a power-on boot */
    const uint8_t *key;   /* the device's own key (32 bytes) or NULL: a fresh device */
} ll_config_t;

typedef struct ll_setpoint {
    uint8_t index; /* channel's position in the board table */
    uint8_t reserved;
    uint16_t irr_q;
    uint32_t target_uj;
} ll_setpoint_t;

typedef struct ll_step {
    uint8_t kind;
    uint8_t n_sp;
    uint16_t duty;
    uint32_t duration_ms;
    uint32_t ramp_ms;
    uint32_t pulse_mhz;
    ll_setpoint_t sp[LLLT_MAX_CHANNELS];
} ll_step_t;

typedef struct ll_plan {
    uint32_t plan_id;
    uint32_t lease_ms;
    uint8_t policy;
    uint8_t n_steps;
    ll_step_t steps[LLLT_MAX_STEPS];
} ll_plan_t;

typedef struct ll_record {
    uint32_t seq;
    uint32_t plan_id;
    uint32_t start_ms;
    uint32_t end_ms;
    uint32_t emitting_ms;
    uint16_t boot_count;
    uint8_t outcome;
    uint8_t reason;
    uint32_t fluence_uj[LLLT_MAX_CHANNELS];
} ll_record_t;

typedef struct ll_dedup {
    uint16_t seq;
    uint16_t crc;
    uint8_t type;
    uint8_t used;
    uint8_t reply_type;
    uint8_t fits; /* 0: the reply was too large to keep (read-only request: answer afresh) */
    uint16_t reply_len;
    uint8_t reply[LLLT_DEDUP_REPLY];
} ll_dedup_t;

typedef struct ll_pending {
    uint8_t type;
    uint8_t len;
    uint16_t seq;
    uint8_t payload[16];
} ll_pending_t;

typedef struct ll_latch {
    uint8_t kind;
    uint8_t index; /* zone index, or 0xFF */
    uint8_t b;     /* index reported in events (the channel for OVER_OUTPUT) */
} ll_latch_t;

typedef struct ll_stats {
    uint32_t frames_ok;
    uint32_t frames_bad;
    uint32_t rx_overflow;
    uint32_t dedup_hits;
    uint32_t nacks;
    uint32_t ticks;
    uint32_t unexpected;
    uint32_t nv_errors;
} ll_stats_t;

typedef struct lllt_core {
    void *board;
    ll_config_t cfg;
    ll_board_t hw;

    /* --- receive: the interrupt side (single producer, single consumer) --- */
    volatile uint32_t rx_head;
    volatile uint32_t rx_tail;
    volatile uint32_t rx_lost;
    uint8_t rxq[LLLT_RX_QUEUE];
    ll_cobs_dec_t dec;
    uint8_t frame[9 + LLLT_MAX_PAYLOAD];

    /* --- transmit --- */
    uint8_t txp[9 + LLLT_TX_MAX]; /* header | payload | crc of the frame being sent */
    uint8_t txo[128];             /* encoded bytes staged for hal_uart_write */
    uint32_t txo_len;
    uint16_t useq;  /* the device's own seq for unsolicited messages */
    bool in_request;
    bool status_after; /* a STATUS with the request's seq after the events (ABORT) */
    uint8_t n_pending;
    ll_pending_t pending[LLLT_PENDING_MAX];

    /* --- conversation --- */
    ll_dedup_t dedup[LLLT_DEDUP_SIZE];
    uint8_t dedup_next;
    uint8_t key[LLLT_KEY_SIZE];
    bool have_key;    /* a usable key (own, or the development key) */
    bool provisioned; /* the key is the device's own */
    bool nonce_ok;
    bool authed;
    uint8_t nonce[LLLT_NONCE_SIZE];
    uint32_t last_counter;
    uint16_t caps; /* capabilities advertised now */

    /* --- time and telemetry --- */
    uint32_t now;      /* device ms of the request or tick being handled */
    uint32_t tick_n;   /* control ticks since boot */
    uint32_t tick_ms_now; /* device ms of the last tick */
    uint16_t tel_period;
    uint32_t tel_due;
    bool report_on;
    uint32_t report_due;
    uint32_t report_from;
    uint32_t report_upto;
    uint16_t report_sent;
    uint32_t report_last;

    /* --- the device state --- */
    uint8_t state;
    bool plan_loaded;
    bool session;
    ll_plan_t plan;
    uint8_t step;
    uint32_t done; /* FLUENCE step: channels (bit = index) that reached their target */
    bool maxdur_hit;
    bool paused_host;
    bool paused_head;
    bool head;
    uint32_t head_off_ms;
    bool lease_armed;
    uint32_t lease_deadline;
    uint32_t lease_renew;
    bool lease_expired;
    uint16_t derate;
    uint32_t tel_plan;
    uint8_t n_latched;
    ll_latch_t latched[LLLT_MAX_LATCHED];
    uint16_t fault_flags;
    bool master_on;
    bool end_sample;

    /* --- counters of the session (fluence in units of 1e-6 µJ/cm²) --- */
    uint64_t fl[LLLT_MAX_CHANNELS];
    uint64_t sfl[LLLT_MAX_CHANNELS];
    uint32_t el;
    uint32_t sel;
    uint32_t emit;
    uint8_t oo[LLLT_MAX_CHANNELS];
    uint32_t ck_ms; /* the last checkpoint: what survives a power cut */
    uint32_t ck_emit;
    uint32_t ck_fl_uj[LLLT_MAX_CHANNELS];

    /* --- outputs of the current interval --- */
    lllt_pwm_t pwm[LLLT_MAX_CHANNELS];
    bool iv_session;
    bool iv_running;
    bool iv_ramping;

    /* --- last readings --- */
    int16_t temp_q[LLLT_MAX_ZONES];
    int16_t ambient_q;
    uint16_t supply_mv;
    uint16_t meas_q[LLLT_MAX_CHANNELS];

    /* --- persistent --- */
    uint32_t boot_count;
    uint32_t next_seq;
    uint32_t nv_gen;
    uint8_t n_records;
    ll_record_t records[LLLT_MAX_RECORDS]; /* newest first */

    ll_stats_t stats;
} lllt_core_t;

/* Parse a HELLO_INFO payload as the board description. false: it does not parse, or has
 * more channels or zones than this build takes. */
bool core_board_parse(ll_board_t *hw, const uint8_t *hello, uint32_t len)
    __attribute__((warn_unused_result));

/* Set up a core: `board` is passed to every hal_* call; hw from core_board_parse. */
void core_init(lllt_core_t *c, void *board, const ll_board_t *hw, const ll_config_t *cfg);
/* A reset: RAM state is lost, persistent state loaded, EVENT BOOT(cause) sent. */
void core_boot(lllt_core_t *c, uint8_t cause);
/* From the UART receive interrupt: queue bytes; false when the queue is full (the byte
 * is dropped and counted, or a port may hold it in its UART and retry). */
bool core_rx_isr(lllt_core_t *c, uint8_t byte);
/* Room left in the receive queue (for ports that apply back-pressure). */
uint32_t core_rx_room(const lllt_core_t *c);
/* The main loop's work: ticks, telemetry, received frames. */
void core_task(lllt_core_t *c);
/* Device ms of the next tick, sample or record due (for a port that sleeps). */
uint32_t core_next_due(const lllt_core_t *c);
/* The host's connection ended: partial input dropped, a record report stops. */
void core_link_closed(lllt_core_t *c);

/* Idle ticks in closed form, for a port that steps the core on a virtual clock (the host
 * library under the fault explorer; a cap never needs it). core_idle_room(): how many of
 * the next ticks the core could pass at once, 0 unless it is idle (no session, nothing
 * latched, the emitters commanded off) and no sample, record or end sample falls within
 * them. core_idle_ticks(n), n <= that room: the core state of n ticks of core_task(),
 * reading the sensors once, at the last of them. The port promises that the plant stays
 * dark and that no reading of the ticks passed would have tripped anything or changed the
 * head sensor or the supply; the core checks the last reading and traps if it breaks
 * that promise. */
uint32_t core_idle_room(const lllt_core_t *c);
void core_idle_ticks(lllt_core_t *c, uint32_t n);

/* fluence units of a session counter (1e-6 µJ/cm²) to whole µJ/cm², rounded half up */
uint32_t core_units_to_uj(uint64_t units);

#endif

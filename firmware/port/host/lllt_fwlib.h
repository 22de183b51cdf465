/*
 * lllt_fwlib.h - the C ABI of liblllt_fw.so, the firmware core as a shared library.
 *
 * The same core that runs on a cap runs here at CPU speed, stepped on the caller's clock
 * (lllt's virtual clock), with every sensor and actuator supplied by the caller through a
 * table of function pointers (struct lllt_fwlib_hal). Python loads it with ctypes; the
 * fw:// transport is written against this header.
 *
 * ABI VERSION 1. This header is a contract: fields are only ever appended, and any
 * change bumps LLLT_FWLIB_ABI_VERSION and is said here and in the commit message.
 * Changes within version 1 (before any release): hal.driver_test was added at the end
 * of lllt_fwlib_hal, 40 minutes after the first commit of this header; later the new
 * functions lllt_fw_traps(), lllt_fw_idle_room() and lllt_fw_idle() (no struct changed).
 * lllt_fw_abi_version() returns the version the library was built with; a caller checks
 * it before anything else.
 *
 * Conventions
 * - All integers are fixed width; booleans are uint8_t (0/1), never C bool, so ctypes
 *   declarations are unambiguous. Structs have no hidden padding (every field is
 *   naturally aligned, sizes are multiples of 4) and their sizes are asserted below.
 * - Units are the wire units of docs/wire-protocol.md §4: irradiance 0.01 mW/cm² ("_q"),
 *   temperature 0.01 °C ("_q", INT16_MIN = no reading), duty 0.01 %, pulse mHz, supply
 *   mV, time ms.
 * - No allocation: the caller provides the instance memory (lllt_fw_size() bytes, any
 *   alignment up to 8 is handled by the caller allocating e.g. a ctypes c_uint64 array).
 * - Single-threaded: every function of one instance must be called from one thread at a
 *   time, and the callbacks are called only from inside lllt_fw_boot()/lllt_fw_poll()
 *   (never from lllt_fw_rx(), which only queues, like a UART interrupt).
 * - Several instances may live in one process; they share nothing.
 *
 * How a caller steps it (one control tick is cfg.tick_ms, 10 ms):
 *
 *     mem = bytes(lllt_fw_size()); lllt_fw_init(mem, size, &cfg, &hal);
 *     lllt_fw_boot(fw, LLLT_FWLIB_BOOT_POWER_ON, t0);
 *     loop:
 *         advance the plant to the next tick time t, then lllt_fw_poll(fw, t)
 *         when bytes arrive at time t: lllt_fw_rx(fw, data, n); lllt_fw_poll(fw, t)
 *     a reboot fault (watchdog reset) at t: lllt_fw_boot(fw, LLLT_FWLIB_BOOT_WATCHDOG, t)
 *
 * lllt_fw_poll(fw, now) is the firmware's main loop iteration (core_task): it first runs
 * every control tick whose time is <= now (tick k is at boot time + k * tick_ms, k >= 1)
 * and every telemetry sample due <= now, in time order (a tick before a sample at the
 * same ms), then handles the frames queued by lllt_fw_rx() as arriving at `now`: each
 * reply is written at once, followed by the events the request caused. Effects on the
 * outputs of a request start at the next tick, except ABORT (emitters off at once).
 * lllt_fw_next_due() says when the next tick or sample is due, so a caller on a virtual
 * clock can sleep until then.
 *
 * What the firmware calls during one control tick, in this order:
 *     1. hal.sense()          temperatures, ambient, head sensor, supply, at the tick;
 *     2. hal.output_sense()   measured on-state output per channel over the control
 *                             interval that just ended (under the last pwm_apply), used
 *                             for fluence (irradiance x duty x tick) and over-output;
 *     3. interlocks, plan, lease, in the order of docs/wire-protocol.md §8;
 *     4. hal.master_set()     only when the master emitter switch changes;
 *     5. hal.pwm_apply()      the commands for the next interval, every channel at once;
 *     6. hal.watchdog_kick();
 *     7. hal.output_sense()   again, only when a TELEMETRY/STATUS sample is built:
 *                             the output *now*, under the commands just applied.
 * So a plant that advances its physics once per tick between polls answers (2) with the
 * interval that ended and (7) with the output under the new commands.
 */
#ifndef LLLT_FWLIB_H
#define LLLT_FWLIB_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LLLT_FWLIB_ABI_VERSION 1u

#if defined(LLLT_FWLIB_EXPORT)
#define LLLT_FWLIB_API __attribute__((visibility("default")))
#else
#define LLLT_FWLIB_API
#endif

#define LLLT_FWLIB_MAX_CHANNELS 16u /* channels a board description may have */
#define LLLT_FWLIB_MAX_ZONES 8u     /* zones a board description may have */
#define LLLT_FWLIB_NV_SIZE 4096u    /* bytes of persistent storage the firmware uses */
#define LLLT_FWLIB_KEY_SIZE 32u

/* boot causes (wire EVENT BOOT, field a) */
#define LLLT_FWLIB_BOOT_POWER_ON 0u
#define LLLT_FWLIB_BOOT_WATCHDOG 1u
#define LLLT_FWLIB_BOOT_BROWNOUT 2u
#define LLLT_FWLIB_BOOT_SOFTWARE 3u

/* lllt_fwlib_config.flags */
#define LLLT_FWLIB_QUIET_POWER_ON 0x0001u /* no EVENT BOOT at a power-on boot (the simulator
                                           * sends none: nobody listens before the link
                                           * opens); other boot causes still send it */
#define LLLT_FWLIB_BLE_LINK 0x0002u       /* the link is BLE, not wired: PROVISION_KEY is
                                           * answered NACK WIRED_ONLY */

/* What the firmware reads at each control tick (hal.sense fills it). */
typedef struct lllt_fwlib_sense {
    int16_t temp_q[LLLT_FWLIB_MAX_ZONES]; /* per zone, HELLO_INFO order; INT16_MIN: none */
    int16_t ambient_q;                    /* ambient sensor, 0.01 °C */
    uint16_t supply_mv;                   /* supply voltage now */
    uint8_t head_present;                 /* 1: the cap is on a head */
    uint8_t reserved[3];                  /* zero */
} lllt_fwlib_sense; /* 24 bytes */

/* What the firmware commands for one channel over the next control interval. */
typedef struct lllt_fwlib_pwm {
    uint16_t level_q;   /* on-state irradiance at the scalp, 0.01 mW/cm² (0 = off); the
                         * board's calibration turns it into drive current */
    uint16_t duty;      /* 0.01 %, 10000 = continuous */
    uint32_t pulse_mhz; /* pulse frequency, 0 = continuous */
} lllt_fwlib_pwm; /* 8 bytes */

/*
 * The board, implemented by the caller. `ctx` is passed back unchanged to every call.
 * Callbacks marked optional may be NULL.
 */
typedef struct lllt_fwlib_hal {
    void *ctx;
    /* sensors at the current tick */
    void (*sense)(void *ctx, lllt_fwlib_sense *out);
    /* measured on-state output per channel (n = number of channels), 0.01 mW/cm²; see
     * the call order above for which interval it describes */
    void (*output_sense)(void *ctx, uint16_t *irr_q, uint32_t n);
    /* drive every channel (n = number of channels) for the next interval */
    void (*pwm_apply)(void *ctx, const lllt_fwlib_pwm *pwm, uint32_t n);
    /* the master emitter switch: 0 opens it (every channel dark whatever pwm says; the
     * firmware opens it on OVER_OUTPUT). Optional. Closed (1) after boot. */
    void (*master_set)(void *ctx, uint8_t on);
    /* bytes to the host; must take them all (the firmware does not retry) */
    void (*uart_write)(void *ctx, const uint8_t *data, uint32_t len);
    /* persistent storage of LLLT_FWLIB_NV_SIZE bytes, offsets within it; erased or
     * never-written storage reads as 0xFF. Return 1 on success. The firmware makes its
     * own updates atomic (two copies with a generation number and a CRC), so a write
     * torn by a reboot loses at most the update it was making. */
    uint8_t (*nv_read)(void *ctx, uint32_t offset, uint8_t *buf, uint32_t len);
    uint8_t (*nv_write)(void *ctx, uint32_t offset, const uint8_t *buf, uint32_t len);
    /* `len` random bytes for nonces (len <= 64). Return 1 on success; on 0 the firmware
     * refuses authentication for that conversation rather than use a weak nonce. */
    uint8_t (*random_bytes)(void *ctx, uint8_t *buf, uint32_t len);
    /* optional: called once per control tick that ran to its end */
    void (*watchdog_kick)(void *ctx);
    /* optional: 1 while the provisioning button is held (PROVISION_KEY, §7.1) */
    uint8_t (*button_held)(void *ctx);
    /* optional: the driver self-test CLEAR_FAULT runs before clearing OVER_OUTPUT, with
     * the master switch open: 1 when no channel driver conducts while commanded off (a
     * stuck-on driver returns 0). NULL: the board has no such test and OVER_OUTPUT
     * clears like any fault whose cause is gone. */
    uint8_t (*driver_test)(void *ctx);
} lllt_fwlib_hal;

/* The device this instance is. */
typedef struct lllt_fwlib_config {
    uint32_t abi_version; /* LLLT_FWLIB_ABI_VERSION */
    uint32_t flags;       /* LLLT_FWLIB_* flags above */
    /* The board description: a HELLO_INFO payload (docs/wire-protocol.md §5) giving
     * firmware version, capabilities, limits, model, serial, zones and channels. Its
     * nonce, uptime, boot count, clock rate and max_payload are ignored (the firmware
     * fills them). The bytes are copied at init. NULL: the built-in reference-cap. */
    const uint8_t *board;
    uint32_t board_len;
    uint32_t clock_rate;  /* HELLO_INFO clock_rate: 0 = lockstep virtual clock */
    uint32_t tick_ms;     /* control tick; 0 means 10 */
    uint16_t brownout_mv; /* supply below this trips BROWNOUT; 0 means 4300 */
    uint16_t reserved;    /* zero */
    /* The device's own 32-byte key, or NULL. With NULL the device is *fresh*: it accepts
     * the development key only if the board description has capability DEV_KEY (and the
     * library was not built with LLLT_RELEASE), and PROVISION_KEY works without the
     * button. A key stored in persistent storage by an earlier PROVISION_KEY wins over
     * both. Copied at init. */
    const uint8_t *key;
} lllt_fwlib_config;

/* A read-only view for tests (the differential test compares it with the simulator). */
typedef struct lllt_fwlib_snapshot {
    uint32_t now_ms;      /* device ms since boot */
    uint32_t plan_id;     /* loaded or running plan, 0 none */
    uint32_t elapsed_ms;  /* running time this session */
    uint32_t step_elapsed_ms;
    uint32_t emitting_ms;
    uint16_t boot_count;
    uint16_t flags;       /* TELEMETRY flags */
    uint16_t derate_permille;
    uint8_t state;        /* 0 IDLE, 1 READY, 2 RUNNING, 3 PAUSED, 4 FAULT */
    uint8_t step;         /* 0xFF: no session */
    uint8_t n_channels;
    uint8_t n_zones;
    uint8_t master_on;
    uint8_t reserved;
    uint32_t fluence_uj[LLLT_FWLIB_MAX_CHANNELS]; /* delivered this session, µJ/cm² */
    uint16_t setpoint_q[LLLT_FWLIB_MAX_CHANNELS]; /* commanded now */
    /* counters since boot */
    uint32_t frames_ok;
    uint32_t frames_bad;  /* COBS, CRC, length or size errors: dropped */
    uint32_t rx_overflow; /* bytes lost because the receive queue was full */
    uint32_t dedup_hits;
    uint32_t nacks;
    uint32_t ticks;
} lllt_fwlib_snapshot;

/* results of lllt_fw_init */
#define LLLT_FWLIB_OK 0
#define LLLT_FWLIB_E_ABI (-1)       /* cfg.abi_version differs from the library's */
#define LLLT_FWLIB_E_MEMORY (-2)    /* mem NULL or size < lllt_fw_size() */
#define LLLT_FWLIB_E_HAL (-3)       /* a mandatory callback is NULL */
#define LLLT_FWLIB_E_BOARD (-4)     /* the board description does not parse or exceeds
                                     * the maxima above */
#define LLLT_FWLIB_E_CONFIG (-5)    /* tick_ms, flags or reserved fields out of range */

typedef struct lllt_fw lllt_fw; /* opaque */

LLLT_FWLIB_API uint32_t lllt_fw_abi_version(void);
LLLT_FWLIB_API uint32_t lllt_fw_size(void);
/* A one-line English explanation of an lllt_fw_init result (static storage). */
LLLT_FWLIB_API const char *lllt_fw_strerror(int32_t code);
/* 1 when the library was built as a release build (no development key at all). */
LLLT_FWLIB_API uint32_t lllt_fw_is_release(void);

/* Set up an instance in `mem`; it does not boot. Returns LLLT_FWLIB_OK or an error. */
LLLT_FWLIB_API int32_t lllt_fw_init(void *mem, uint32_t size, const lllt_fwlib_config *cfg,
                     const lllt_fwlib_hal *hal);
/* (Re)boot at caller time `now_ms`: RAM state is lost (queued bytes, plan, nonce,
 * duplicate memory), persistent storage is read, a session found running is recorded
 * as POWER_LOSS with its last checkpoint, boot_count increments, emitters are off and
 * EVENT BOOT(cause) is sent (unless QUIET_POWER_ON and cause is POWER_ON). Device time
 * restarts at 0. */
LLLT_FWLIB_API void lllt_fw_boot(lllt_fw *fw, uint32_t cause, uint64_t now_ms);
/* Bytes from the host (any chunking). Only queues: safe to call at any time between
 * other calls. Bytes beyond the queue's room are dropped and counted. */
LLLT_FWLIB_API void lllt_fw_rx(lllt_fw *fw, const uint8_t *data, uint32_t len);
/* The main loop iteration at caller time `now_ms` (never earlier than the last call). */
LLLT_FWLIB_API void lllt_fw_poll(lllt_fw *fw, uint64_t now_ms);
/* Caller time of the next control tick or telemetry sample. */
LLLT_FWLIB_API uint64_t lllt_fw_next_due(const lllt_fw *fw);
/* The link ended (host closed the port): a record report under way stops, partial
 * input is discarded. */
LLLT_FWLIB_API void lllt_fw_link_closed(lllt_fw *fw);
LLLT_FWLIB_API void lllt_fw_snapshot_get(const lllt_fw *fw, lllt_fwlib_snapshot *out);
/* Broken invariants (hal_trap) since init: each switched the emitters off and rebooted
 * the instance with cause SOFTWARE. A test expects 0. (Added within version 1: a new
 * function, no struct changed.) */
LLLT_FWLIB_API uint32_t lllt_fw_traps(const lllt_fw *fw);
/* Idle stretches at CPU speed (added within version 1: two new functions, no struct
 * changed). lllt_fw_idle_room(): how many of the next control ticks the firmware could
 * pass at once: 0 unless it is idle (no session, no fault latched, emitters off), and
 * only ticks before the next telemetry sample or record step. lllt_fw_idle(fw, n): those
 * n ticks as n lllt_fw_poll() calls at their times would leave the firmware, with one
 * hal.sense() and hal.output_sense() at the last of them; returns n, or 0 (nothing done)
 * when n is 0 or above the room. The caller promises what a plant that the caller can
 * solve in closed form knows: every tick passed is dark, no reading in them reaches the
 * cut-off or leaves the sensor range, and the head sensor and the supply do not change.
 * A last reading that breaks the promise traps (the instance reboots, 0 is returned). */
LLLT_FWLIB_API uint32_t lllt_fw_idle_room(const lllt_fw *fw);
LLLT_FWLIB_API uint32_t lllt_fw_idle(lllt_fw *fw, uint32_t n);

#ifdef __cplusplus
}
#endif

#endif /* LLLT_FWLIB_H */

/*
 * lllt_hal.h - the one contract between the lllt firmware core and a board.
 *
 * The core (firmware/core/) calls these functions and nothing else of the board; a port
 * implements them (firmware/port/template/ shows what to fill in). Every function gets
 * back the `board` pointer the port gave to core_init(), so one process may run several
 * cores (the host library does); a single-board port ignores it.
 *
 * Context. Every hal_* function is called from task context, from inside core_boot() or
 * core_task(), never from an interrupt, and never re-entered. The only entry point an
 * interrupt handler may call is core_rx_isr() (lllt_core.h), which only queues bytes.
 *
 * Units are the wire units of docs/wire-protocol.md §4: irradiance 0.01 mW/cm² ("_q"),
 * temperature 0.01 °C ("_q"), duty 0.01 %, pulse frequency mHz, supply mV, time ms.
 * firmware/README.md says what each function must guarantee; the short version is here.
 */
#ifndef LLLT_HAL_H
#define LLLT_HAL_H

#include <stdbool.h>
#include <stdint.h>

#define LLLT_HAL_NO_READING INT16_MIN /* a temperature the sensor could not give */

/* What the core reads at the start of each control tick. */
typedef struct lllt_sense {
    int16_t temp_q[8];  /* per zone (index = zone's position in the board description) */
    int16_t ambient_q;  /* ambient temperature */
    uint16_t supply_mv; /* supply voltage */
    uint8_t head_present;
    uint8_t reserved[3];
} lllt_sense_t;

/* What the core commands for one channel over the next control interval. */
typedef struct lllt_pwm {
    uint16_t level_q;   /* on-state irradiance at the scalp; 0 = off */
    uint16_t duty;      /* 0.01 %; 10000 = continuous */
    uint32_t pulse_mhz; /* 0 = continuous */
} lllt_pwm_t;

/* --- time ---------------------------------------------------------------------------- */

/* Milliseconds since this boot, monotonic, wrapping at 2^32. Must advance by real time
 * (or by the port's simulated time) with at most 1 ms of jitter; the core runs its
 * control tick from it. */
uint32_t hal_now_ms(void *board);

/* --- sensors and emitters (once per control tick, in this order) -------------------------- */

/* Fill *s with the readings at this tick: one temperature per zone (LLLT_HAL_NO_READING
 * when the sensor failed to convert), ambient, supply, head sensor. Must not block for
 * longer than a small part of the tick (start ADC conversions early, return the latest). */
void hal_sense(void *board, lllt_sense_t *s);

/* Measured on-state output of each of the n channels, 0.01 mW/cm², from the board's
 * optical or current feedback. Called at the start of a tick it describes the interval
 * that just ended (what the core integrates into fluence and checks for over-output);
 * called for a TELEMETRY/STATUS sample it describes the output now. A channel that is
 * pulsed reports its on-state value, not the average. */
void hal_output_sense(void *board, uint16_t *irr_q, uint8_t n);

/* Drive all n channels for the next interval, in one consistent update (no channel may
 * keep its old setting while another has its new one for longer than a PWM period).
 * level 0 must mean dark, whatever the duty. */
void hal_pwm_apply(void *board, const lllt_pwm_t *pwm, uint8_t n);

/* The master emitter switch, in hardware independent of the PWM path: false makes every
 * channel dark. The core opens it on OVER_OUTPUT and closes it again only when the fault
 * is cleared. Closed after core_boot(). */
void hal_master_set(void *board, bool on);

/* Driver self-test with the master switch open: true when no driver conducts while
 * commanded off. A board without such a test returns true. */
bool hal_driver_test(void *board);

/* --- byte link ------------------------------------------------------------------------ */

/* Send bytes to the host. Must accept all of them (queue them, or block until sent);
 * bytes the host is not there to read may be dropped, as a UART drops them. */
void hal_uart_write(void *board, const uint8_t *data, uint32_t len);

/* True when the host is on the wired link (USB serial): PROVISION_KEY is allowed there
 * only (wire spec §7.1). A BLE link returns false. */
bool hal_link_wired(void *board);

/* --- persistent storage --------------------------------------------------------------- */

/* LLLT_NV_SIZE bytes (lllt_core.h) of storage that keeps its content across resets and
 * power loss; offsets are within it. Never-written storage reads as 0xFF (or anything:
 * the core checks a CRC). Return false on a hardware error. The core writes one half of
 * the area at a time and keeps the other half intact until the new one is complete, so
 * the board needs no atomicity of its own; a flash port erases as needed. */
bool hal_nv_read(void *board, uint32_t offset, uint8_t *buf, uint32_t len);
bool hal_nv_write(void *board, uint32_t offset, const uint8_t *buf, uint32_t len);

/* --- security ------------------------------------------------------------------------- */

/* len (<= 64) bytes from a cryptographically secure random source, for the
 * authentication nonce. Nonces must never repeat across power cycles; a board without a
 * true random generator must say what it does instead (firmware/README.md). Return false
 * when no good randomness is available: the core then refuses every signed request of
 * that conversation rather than use a guessable nonce. */
bool hal_random(void *board, uint8_t *buf, uint32_t len);

/* True while the provisioning button is held (PROVISION_KEY on a provisioned device). */
bool hal_button_held(void *board);

/* --- supervision ---------------------------------------------------------------------- */

/* Kick the hardware watchdog. The core calls it once per control tick that ran to its
 * end; the watchdog period must be a few ticks (say 100 ms), and its reset must leave
 * the emitters dark (drivers default off) before the core boots again. */
void hal_watchdog_kick(void *board);

/* A broken invariant (a bug, not bad input): emitters dark at once by the fastest path,
 * then reset. Must not return. */
void hal_trap(void *board, const char *file, int line) __attribute__((noreturn));

#endif /* LLLT_HAL_H */

/*
 * A small plant model in C for the simulated ports (host executable, QEMU): the cap's
 * emitters, its two-node thermal model per zone, the head sensor, the supply, and the
 * simulator's named faults (docs/simulator.md), so a firmware port runs real sessions
 * with no hardware. It reads the board's constants from its HELLO_INFO description.
 *
 * It is a plant, not a second simulator: the Python simulator (lllt_sim) remains the
 * reference model; this one integrates the same equations with a simple explicit step
 * per control tick and seeded noise. Portable C11 with floats, no libc beyond string.h.
 */
#ifndef LLLT_PLANT_H
#define LLLT_PLANT_H

#include <stdbool.h>
#include <stdint.h>

#include "lllt_boards.h"
#include "lllt_core.h"

#define PLANT_MAX_FAULTS 16

typedef struct plant_fault {
    uint8_t kind;   /* PF_* */
    int16_t arg;    /* zone or channel index, -1 none */
    float rate;     /* corrupt */
    uint32_t at_ms; /* after the first START */
    uint32_t dur_ms; /* 0: for good */
    bool fired;
} plant_fault_t;

typedef struct plant {
    const lllt_board_desc_t *desc;
    const ll_board_t *hw;
    float ambient_c;
    uint32_t rng;
    /* per zone */
    float cb[LLLT_MAX_ZONES], cs[LLLT_MAX_ZONES], ga[LLLT_MAX_ZONES], gc[LLLT_MAX_ZONES],
        gt[LLLT_MAX_ZONES], tcore[LLLT_MAX_ZONES];
    float tb[LLLT_MAX_ZONES], ts[LLLT_MAX_ZONES];
    /* per channel */
    float kco[LLLT_MAX_CHANNELS], hb[LLLT_MAX_CHANNELS], hs[LLLT_MAX_CHANNELS],
        dmax[LLLT_MAX_CHANNELS];
    lllt_pwm_t pwm[LLLT_MAX_CHANNELS];
    uint16_t interval_q[LLLT_MAX_CHANNELS]; /* output over the interval that ended */
    bool in_sample;
    bool master;
    uint32_t t_ms; /* plant time: ms since the plant started (continues across reboots) */
    /* faults */
    plant_fault_t faults[PLANT_MAX_FAULTS];
    uint8_t n_faults;
    bool armed;
    uint32_t armed_at;
    bool head;
    bool brownout;
    uint32_t overtemp_mask, open_mask, stuck_mask, therm_open_mask, therm_short_mask;
    bool reboot_pending;
    float noise_c;
} plant_t;

void plant_init(plant_t *p, const lllt_board_desc_t *d, const ll_board_t *hw, float ambient_c,
                uint32_t seed);
/* "overtemp@300s,led_open:3@10s+5s,reboot@2min,corrupt:0.01": false with a message in err */
bool plant_parse_faults(plant_t *p, const char *spec, char *err, uint32_t err_len);
/* the faults count from the first START of a session */
void plant_arm(plant_t *p, uint32_t t_ms);
/* physics from the last call to plant time t_ms, under the outputs applied so far */
void plant_advance(plant_t *p, uint32_t t_ms);
/* a fault that resets the device fired: true once */
bool plant_take_reboot(plant_t *p);
/* link faults at plant time t: bytes dropped, or each bit flipped with this rate */
bool plant_link_dropped(const plant_t *p, uint32_t t_ms);
float plant_corrupt_rate(const plant_t *p, uint32_t t_ms);
uint32_t plant_rand(plant_t *p);

/* the HAL side */
void plant_sense(plant_t *p, lllt_sense_t *s);
void plant_output_sense(plant_t *p, uint16_t *q, uint8_t n);
void plant_pwm_apply(plant_t *p, const lllt_pwm_t *pwm, uint8_t n);
void plant_master_set(plant_t *p, bool on);
bool plant_driver_test(const plant_t *p);

#endif

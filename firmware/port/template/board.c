/*
 * A new board's port: fill in every function of include/lllt_hal.h, then call the core
 * from main() as below. firmware/README.md ("Porting to a new board") says what each
 * function must guarantee; port/qemu-mps2-an385/main.c is a complete example on a
 * Cortex-M3. This file compiles as it is (make -C firmware template) so that the
 * contract and the template cannot drift apart, but it drives no hardware.
 */
#include <stddef.h>
#include <string.h>

#include "lllt_boards.h"
#include "lllt_core.h"

static lllt_core_t core; /* static storage: the core never allocates */

uint32_t hal_now_ms(void *board)
{
    (void)board;
    return 0; /* TODO: ms since boot from a free-running timer (or a 1 ms tick count) */
}

void hal_sense(void *board, lllt_sense_t *s)
{
    (void)board;
    memset(s, 0, sizeof *s);
    /* TODO: the latest converted NTC readings per zone in 0.01 °C (LLLT_HAL_NO_READING
     * when a conversion failed), ambient, supply in mV, the head sensor */
    for (unsigned z = 0; z < 8; z++) {
        s->temp_q[z] = LLLT_HAL_NO_READING;
    }
}

void hal_output_sense(void *board, uint16_t *irr_q, uint8_t n)
{
    (void)board;
    /* TODO: measured on-state output per channel, calibrated at the scalp */
    memset(irr_q, 0, n * sizeof *irr_q);
}

void hal_pwm_apply(void *board, const lllt_pwm_t *pwm, uint8_t n)
{
    (void)board;
    (void)pwm;
    (void)n;
    /* TODO: level (0.01 mW/cm² on-state) -> drive current via calibration; duty and
     * pulse frequency -> the PWM timer; update every channel at the same PWM period */
}

void hal_master_set(void *board, bool on)
{
    (void)board;
    (void)on; /* TODO: the hardware enable of every emitter driver */
}

bool hal_driver_test(void *board)
{
    (void)board;
    return true; /* TODO: with the master open, no driver may conduct while commanded off */
}

void hal_uart_write(void *board, const uint8_t *data, uint32_t len)
{
    (void)board;
    (void)data;
    (void)len; /* TODO: queue for the USB CDC / UART transmitter */
}

bool hal_link_wired(void *board)
{
    (void)board;
    return true; /* TODO: false while the host is on BLE */
}

bool hal_nv_read(void *board, uint32_t offset, uint8_t *buf, uint32_t len)
{
    (void)board;
    (void)offset;
    memset(buf, 0xFF, len); /* TODO: read the NV area (erased flash reads 0xFF) */
    return true;
}

bool hal_nv_write(void *board, uint32_t offset, const uint8_t *buf, uint32_t len)
{
    (void)board;
    (void)offset;
    (void)buf;
    (void)len; /* TODO: erase as needed and program; the core keeps two copies */
    return false;
}

bool hal_random(void *board, uint8_t *buf, uint32_t len)
{
    (void)board;
    (void)buf;
    (void)len;
    return false; /* TODO: the TRNG. Until then every signed request is refused */
}

bool hal_button_held(void *board)
{
    (void)board;
    return false; /* TODO: the provisioning button */
}

void hal_watchdog_kick(void *board)
{
    (void)board; /* TODO: reload the independent watchdog (period ~100 ms) */
}

void hal_trap(void *board, const char *file, int line)
{
    (void)board;
    (void)file;
    (void)line;
    /* TODO: open the master switch and zero the PWM outputs, then reset */
    for (;;) {
    }
}

/* TODO: the UART receive interrupt */
void uart_rx_isr(uint8_t byte);
void uart_rx_isr(uint8_t byte) { (void)core_rx_isr(&core, byte); }

int template_main(void);
int template_main(void)
{
    ll_board_t hw;
    /* TODO: your board's HELLO_INFO description (here: the reference cap's) */
    if (!core_board_parse(&hw, lllt_boards[0].hello, lllt_boards[0].hello_len)) {
        hal_trap(NULL, __FILE__, __LINE__);
    }
    ll_config_t cfg = {
        .tick_ms = 10,
        .clock_rate = 1000, /* a real cap runs in real time */
        .brownout_mv = 4300,
        .quiet_power_on = false,
        .key = NULL, /* TODO: the factory key, or NULL for a fresh device */
    };
    core_init(&core, NULL, &hw, &cfg);
    core_boot(&core, LL_BOOT_POWER_ON); /* TODO: the reset cause from the reset controller */
    for (;;) {
        core_task(&core);
        /* TODO: sleep until the next interrupt */
    }
}

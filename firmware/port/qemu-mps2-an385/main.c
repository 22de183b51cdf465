/*
 * The lllt firmware on a Cortex-M3: QEMU's mps2-an385 board, with the C plant of a
 * simulated cap in place of emitters and sensors.
 *
 *   UART0 (CMSDK APB UART at 0x40004000, CTRL = TX | RX | RX interrupt): the link. The
 *     receive interrupt only queues bytes (core_rx_isr); when the queue is full it masks
 *     itself and the main loop unmasks it after draining, so no byte is ever lost.
 *   SysTick every 10 ms of device time: the control tick (the interrupt counts it and
 *     wakes the main loop; milliseconds in between are read from SysTick's counter), and
 *     a software watchdog: 100 ms without a kick and the interrupt switches the
 *     emitters off and resets the system.
 *   Semihosting: the command line (--speed N, --seed N, --faults SPEC, --state FILE) and
 *     a host file that keeps the persistent storage across runs.
 *
 * Run it with port/qemu-mps2-an385/serve.py, which prints the socket:// address.
 */
#include <stddef.h>
#include <string.h>

#include "ll_sha256.h"
#include "ll_util.h"
#include "lllt_boards.h"
#include "lllt_core.h"
#include "plant.h"

#define REG(a) (*(volatile uint32_t *)(a))
#define UART0 0x40004000u
#define UART_DATA REG(UART0 + 0x00)
#define UART_STATE REG(UART0 + 0x04)
#define UART_CTRL REG(UART0 + 0x08)
#define UART_INTCLR REG(UART0 + 0x0C)
#define UART_BAUDDIV REG(UART0 + 0x10)
#define SYST_CSR REG(0xE000E010u)
#define SYST_RVR REG(0xE000E014u)
#define SYST_CVR REG(0xE000E018u)
#define NVIC_ISER0 REG(0xE000E100u)
#define SCB_AIRCR REG(0xE000ED0Cu)
#define SYSCLK_HZ 25000000u
#define WATCHDOG_MS 100u
/* the emulated flash of the persistent storage: SSRAM1 beyond the 64 KB of code */
#define NV_BASE ((uint8_t *)0x00300000u)
#define NV_PORT (NV_BASE + LLLT_NV_SIZE) /* the port's own: the device secret */
/* Two words after them that a system reset keeps, as it keeps the rest of SSRAM1, and a
 * power-on does not (QEMU starts with RAM zeroed): WARM_MAGIC once the board has booted,
 * and the cause of the last reset. A watchdog reset thus keeps the storage, as flash
 * would; only a power-on without --state starts from blank storage. */
#define NV_WARM REG((uintptr_t)NV_PORT + 32u)
#define NV_RESET_CAUSE REG((uintptr_t)NV_PORT + 36u)
#define WARM_MAGIC 0x544C4C4Cu

static lllt_core_t CORE;
static plant_t PLANT;
static ll_board_t HW;
static volatile uint32_t ticks10; /* SysTick interrupts: 10 ms of device time each */
static volatile uint32_t ms_since_kick;
static volatile uint32_t jitter;
static uint32_t speed = 1;
static uint32_t draws;
static int state_fd = -1;
static char cmdline[256];

/* --- semihosting ----------------------------------------------------------------------- */

static int semi(int op, void *arg)
{
    register int r0 __asm__("r0") = op;
    register void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

static void semi_write0(const char *s) { semi(0x04, (void *)s); }

/* --- interrupts ---------------------------------------------------------------------------- */

static void emitters_off_now(void)
{
    lllt_pwm_t off[LLLT_MAX_CHANNELS];
    for (unsigned i = 0; i < LLLT_MAX_CHANNELS; i++) {
        off[i] = (lllt_pwm_t){0, 10000, 0};
    }
    plant_master_set(&PLANT, false);
    plant_pwm_apply(&PLANT, off, HW.n_ch);
}

void systick_handler(void);
void systick_handler(void)
{
    ticks10++;
    ms_since_kick += 10;
    if (ms_since_kick > WATCHDOG_MS) {
        /* the main loop stalled: dark first, then reset */
        emitters_off_now();
        NV_RESET_CAUSE = LL_BOOT_WATCHDOG;
        SCB_AIRCR = 0x05FA0004u;
        for (;;) {
        }
    }
}

/* Move the byte the UART holds into the core's queue, while there is room. */
static void uart_drain(void)
{
    while (UART_STATE & 2u) {
        if (core_rx_room(&CORE) == 0) {
            UART_CTRL &= ~8u; /* full: hold the byte in the UART until the loop drains */
            return;
        }
        jitter = (jitter << 7 | jitter >> 25) ^ SYST_CVR; /* arrival time: host timing */
        (void)core_rx_isr(&CORE, (uint8_t)UART_DATA);
    }
}

void uart0_rx_handler(void);
void uart0_rx_handler(void)
{
    /* Clear first, then drain: a byte that lands after the last read raises the interrupt
     * again. Clearing after the drain lost that byte's interrupt, and with the byte held
     * (RX full) the UART took no more: the link went deaf (seen as a handshake that
     * never answered, about one boot in ten). */
    UART_INTCLR = 2u;
    uart_drain();
}

/* A HardFault: a semihosting call (BKPT 0xAB) on a QEMU started without semihosting
 * comes here; it returns -1 in r0 and carries on after the BKPT, so the image also runs
 * with no options (speed 1, no faults, no state file). Anything else is a real fault:
 * emitters off, reset. */
void hard_fault_c(uint32_t *frame);
void hard_fault_c(uint32_t *frame)
{
    uint16_t insn = *(const uint16_t *)(uintptr_t)frame[6];
    if (insn == 0xBEABu) {
        frame[0] = (uint32_t)-1; /* r0 */
        frame[6] += 2;           /* pc past the BKPT */
        return;
    }
    emitters_off_now();
    NV_RESET_CAUSE = LL_BOOT_SOFTWARE;
    SCB_AIRCR = 0x05FA0004u;
    for (;;) {
    }
}

void hard_fault_handler(void);
__attribute__((naked)) void hard_fault_handler(void)
{
    __asm__ volatile("tst lr, #4\n"
                     "ite eq\n"
                     "mrseq r0, msp\n"
                     "mrsne r0, psp\n"
                     "b hard_fault_c\n");
}

/* --- HAL ------------------------------------------------------------------------------- */

/* device ms since power-on: whole ticks from the interrupt, the rest from the counter */
static uint32_t now_ms(void)
{
    uint32_t t, v;
    do {
        t = ticks10;
        v = SYST_CVR;
    } while (t != ticks10);
    uint32_t reload = SYST_RVR + 1u;
    return t * 10u + (uint32_t)((uint64_t)(reload - 1u - v) * 10u / reload);
}
#define ms_now now_ms()

static uint32_t plant_time;  /* ms of device time since the first boot of this run */
static uint32_t boot_at;

uint32_t hal_now_ms(void *b)
{
    (void)b;
    return ms_now - boot_at;
}
void hal_sense(void *b, lllt_sense_t *s)
{
    (void)b;
    plant_time = boot_at + CORE.tick_ms_now;
    plant_advance(&PLANT, plant_time);
    plant_sense(&PLANT, s);
}
void hal_output_sense(void *b, uint16_t *q, uint8_t n)
{
    (void)b;
    plant_output_sense(&PLANT, q, n);
}
void hal_pwm_apply(void *b, const lllt_pwm_t *p, uint8_t n)
{
    (void)b;
    plant_pwm_apply(&PLANT, p, n);
}
void hal_master_set(void *b, bool on)
{
    (void)b;
    plant_master_set(&PLANT, on);
}
bool hal_driver_test(void *b)
{
    (void)b;
    return plant_driver_test(&PLANT);
}
void hal_uart_write(void *b, const uint8_t *d, uint32_t n)
{
    (void)b;
    if (plant_link_dropped(&PLANT, ms_now)) {
        return;
    }
    float rate = plant_corrupt_rate(&PLANT, ms_now);
    for (uint32_t i = 0; i < n; i++) {
        uint8_t c = d[i];
        for (int k = 0; rate > 0 && k < 8; k++) {
            if ((float)(plant_rand(&PLANT) >> 8) / 16777216.0f < rate) {
                c ^= (uint8_t)(1u << k);
            }
        }
        while (UART_STATE & 1u) {
        }
        UART_DATA = c;
    }
}
bool hal_link_wired(void *b)
{
    (void)b;
    return true;
}
bool hal_nv_read(void *b, uint32_t off, uint8_t *buf, uint32_t len)
{
    (void)b;
    if (off + len > LLLT_NV_SIZE) {
        return false;
    }
    memcpy(buf, NV_BASE + off, len);
    return true;
}
static bool file_write(uint32_t off, const uint8_t *buf, uint32_t len)
{
    if (state_fd < 0) {
        return true;
    }
    uint32_t seek[2] = {(uint32_t)state_fd, off};
    uint32_t wr[3] = {(uint32_t)state_fd, (uint32_t)(uintptr_t)buf, len};
    return semi(0x0A, seek) == 0 && semi(0x05, wr) == 0;
}
bool hal_nv_write(void *b, uint32_t off, const uint8_t *buf, uint32_t len)
{
    (void)b;
    if (off + len > LLLT_NV_SIZE) {
        return false;
    }
    memcpy(NV_BASE + off, buf, len);
    return file_write(off, buf, len);
}

/* Nonces: this board has no true random generator. Each draw is SHA-256 of the device
 * secret (32 bytes made at the first boot and kept in persistent storage), the boot
 * count (persistent, incremented before the first draw of a boot), a draw counter and
 * the arrival times of received bytes (SysTick's counter when each byte came, which
 * depends on the host's timing). The boot count and the counter make every nonce
 * unique across power cycles; unpredictability rests on the secret and the jitter. */
bool hal_random(void *b, uint8_t *buf, uint32_t len)
{
    (void)b;
    uint8_t h[32], m[12];
    ll_put32(m, CORE.boot_count);
    ll_put32(m + 4, ++draws);
    ll_put32(m + 8, jitter ^ SYST_CVR);
    for (uint32_t off = 0; off < len; off += 32) {
        ll_sha256_t s;
        ll_sha256_init(&s);
        ll_sha256_update(&s, NV_PORT, 32);
        ll_sha256_update(&s, m, sizeof m);
        uint8_t blk = (uint8_t)(off / 32);
        ll_sha256_update(&s, &blk, 1);
        ll_sha256_final(&s, h);
        memcpy(buf + off, h, len - off < 32 ? len - off : 32);
    }
    return true;
}
bool hal_button_held(void *b)
{
    (void)b;
    return false;
}
void hal_watchdog_kick(void *b)
{
    (void)b;
    ms_since_kick = 0;
}
void hal_trap(void *b, const char *file, int line)
{
    (void)b;
    (void)file;
    (void)line;
    emitters_off_now();
    SCB_AIRCR = 0x05FA0004u;
    for (;;) {
    }
}

/* --- start-up -------------------------------------------------------------------------- */

static const char *arg_after(const char *name)
{
    const char *p = strstr(cmdline, name);
    if (!p) {
        return NULL;
    }
    p += strlen(name);
    while (*p == ' ') {
        p++;
    }
    return p;
}

static void copy_word(const char *p, char *out, size_t n)
{
    size_t k = 0;
    while (p && *p && *p != ' ' && k + 1 < n) {
        out[k++] = *p++;
    }
    out[k] = 0;
}

static uint32_t to_u32(const char *p)
{
    uint32_t v = 0;
    while (p && *p >= '0' && *p <= '9') {
        v = v * 10 + (uint32_t)(*p++ - '0');
    }
    return v;
}

static void make_secret(void)
{
    static const uint8_t blank[32] = {0};
    uint8_t *sec = NV_PORT;
    bool erased = true;
    for (int i = 0; i < 32; i++) {
        erased &= sec[i] == 0xFF || sec[i] == 0;
    }
    if (!erased && memcmp(sec, blank, 32) != 0) {
        return;
    }
    /* first boot: the host's clock (semihosting SYS_TIME, SYS_ELAPSED) and timing jitter */
    uint32_t seedbuf[4] = {(uint32_t)semi(0x11, NULL), SYST_CVR, jitter, ms_now};
    uint32_t el[2] = {0, 0};
    semi(0x30, el);
    ll_sha256_t s;
    ll_sha256_init(&s);
    ll_sha256_update(&s, (const uint8_t *)seedbuf, sizeof seedbuf);
    ll_sha256_update(&s, (const uint8_t *)el, sizeof el);
    uint8_t h[32];
    ll_sha256_final(&s, h);
    memcpy(sec, h, 32);
    (void)file_write(LLLT_NV_SIZE, h, 32);
}

int main(void);
int main(void)
{
    uint32_t cl[2] = {(uint32_t)(uintptr_t)cmdline, sizeof cmdline - 1};
    if (semi(0x15, cl) != 0) {
        cmdline[0] = 0;
    }
    const char *v;
    if ((v = arg_after("--speed")) != NULL && to_u32(v) >= 1 && to_u32(v) <= 100) {
        speed = to_u32(v);
    }
    uint32_t seed = (v = arg_after("--seed")) != NULL ? to_u32(v) : 0;
    const char *profile = "reference-cap";
    const lllt_board_desc_t *desc = &lllt_boards[0];
    (void)profile;
    if (!core_board_parse(&HW, desc->hello, desc->hello_len)) {
        hal_trap(NULL, __FILE__, __LINE__);
    }
    plant_init(&PLANT, desc, &HW, 25.0f, seed);
    static char faults[128], path[128], err[96];
    if ((v = arg_after("--faults")) != NULL) {
        copy_word(v, faults, sizeof faults);
        if (!plant_parse_faults(&PLANT, faults, err, sizeof err)) {
            semi_write0("lllt-fw-an385: bad --faults: ");
            semi_write0(err);
            semi_write0("\n");
        }
    }
    const bool warm = NV_WARM == WARM_MAGIC;
    if (!warm) {
        memset(NV_BASE, 0xFF, LLLT_NV_SIZE + 32);
        NV_WARM = WARM_MAGIC;
        NV_RESET_CAUSE = LL_BOOT_POWER_ON;
    }
    if ((v = arg_after("--state")) != NULL) {
        copy_word(v, path, sizeof path);
        /* semihosting open modes: 1 "rb", 3 "r+b", 9 "ab" */
        uint32_t op[3] = {(uint32_t)(uintptr_t)path, 1, strlen(path)};
        int fd = semi(0x01, op);
        if (fd >= 0) {
            uint32_t rd[3] = {(uint32_t)fd, (uint32_t)(uintptr_t)NV_BASE, LLLT_NV_SIZE + 32};
            semi(0x06, rd);
            uint32_t c[1] = {(uint32_t)fd};
            semi(0x02, c);
        }
        op[1] = 9; /* create it if new, without truncating, then reopen "r+b" */
        fd = semi(0x01, op);
        if (fd >= 0) {
            uint32_t c[1] = {(uint32_t)fd};
            semi(0x02, c);
        }
        op[1] = 3;
        state_fd = semi(0x01, op);
        (void)file_write(0, NV_BASE, LLLT_NV_SIZE + 32);
    }
    make_secret();

    UART_BAUDDIV = SYSCLK_HZ / 115200u;
    UART_CTRL = 0x3u | 0x8u; /* TX, RX, RX interrupt */
    SYST_RVR = SYSCLK_HZ / 100u / speed - 1u; /* 10 ms of device time */
    SYST_CVR = 0;
    SYST_CSR = 0x7u; /* processor clock, interrupt, enable */

    ll_config_t cfg = {
        .tick_ms = 10,
        .clock_rate = speed * 1000u,
        .brownout_mv = desc->brownout_mv,
        .quiet_power_on = true,
        .key = NULL,
    };
    core_init(&CORE, NULL, &HW, &cfg);
    core_boot(&CORE, warm ? (uint8_t)NV_RESET_CAUSE : (uint8_t)LL_BOOT_POWER_ON);
    NV_RESET_CAUSE = LL_BOOT_SOFTWARE; /* a reset by anything else (a debugger, SYSRESETREQ) */
    NVIC_ISER0 = 1u << 0; /* UART0 RX */

    for (;;) {
        core_task(&CORE);
        if (!(UART_CTRL & 8u) && core_rx_room(&CORE) > 0) {
            UART_CTRL |= 8u; /* room again: take bytes */
        }
        if (UART_STATE & 2u) {
            /* a byte held while the queue was full raises no interrupt of its own */
            __asm__ volatile("cpsid i" ::: "memory");
            uart_drain();
            __asm__ volatile("cpsie i" ::: "memory");
        }
        if (CORE.session && !PLANT.armed) {
            plant_arm(&PLANT, boot_at + CORE.records[0].start_ms);
        }
        if (plant_take_reboot(&PLANT)) {
            /* the reboot fault: a watchdog reset of the device (the plant keeps running) */
            boot_at = (ms_now / 10u) * 10u;
            core_boot(&CORE, LL_BOOT_WATCHDOG);
        }
        /* sleep with interrupts masked between the check and the WFI (a pending one still
         * wakes it): a byte that arrives in between is handled now, not a tick later */
        __asm__ volatile("cpsid i" ::: "memory");
        if ((int32_t)(core_next_due(&CORE) - hal_now_ms(NULL)) > 0 && core_rx_room(&CORE) == LLLT_RX_QUEUE) {
            __asm__ volatile("wfi");
        }
        __asm__ volatile("cpsie i" ::: "memory");
    }
}

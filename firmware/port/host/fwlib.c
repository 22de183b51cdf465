/* liblllt_fw.so: the firmware core behind the C ABI of lllt_fwlib.h.
 *
 * The board is the caller's table of callbacks; time is whatever the caller passes to
 * lllt_fw_poll(), so Python can step the firmware on lllt's virtual clock. Each instance
 * lives in caller-provided memory and shares nothing with another. A broken invariant
 * (hal_trap) switches the emitters off through the callbacks, and the instance reboots
 * with cause SOFTWARE at the next poll, as a cap's reset would; lllt_fw_traps() counts
 * them (a test should expect zero). */
#include <setjmp.h>
#include <stddef.h>
#include <string.h>

#include "lllt_boards.h"
#include "lllt_core.h"
#include "lllt_fwlib.h"

#define BOARD_MAX 2048

struct lllt_fw {
    lllt_core_t core;
    lllt_fwlib_hal hal;
    uint32_t flags;
    uint64_t boot_at;
    uint64_t now;
    uint8_t key[LLLT_FWLIB_KEY_SIZE];
    uint8_t blob[BOARD_MAX];
    ll_board_t hw;
    jmp_buf *trap_jmp;
    uint32_t traps;
    const char *trap_file;
    int trap_line;
    uint32_t magic;
};

#define FW_MAGIC 0x6C6C7466u

_Static_assert(sizeof(lllt_fwlib_sense) == 24, "ABI: lllt_fwlib_sense is 24 bytes");
_Static_assert(sizeof(lllt_fwlib_pwm) == 8, "ABI: lllt_fwlib_pwm is 8 bytes");
_Static_assert(sizeof(lllt_fwlib_sense) == sizeof(lllt_sense_t), "sense layouts agree");
_Static_assert(sizeof(lllt_fwlib_pwm) == sizeof(lllt_pwm_t), "pwm layouts agree");
_Static_assert(offsetof(lllt_fwlib_sense, head_present) == offsetof(lllt_sense_t, head_present),
               "sense layouts agree");
_Static_assert(LLLT_FWLIB_MAX_CHANNELS == LLLT_MAX_CHANNELS, "channel maxima agree");
_Static_assert(LLLT_FWLIB_MAX_ZONES == LLLT_MAX_ZONES, "zone maxima agree");
_Static_assert(LLLT_FWLIB_NV_SIZE == LLLT_NV_SIZE, "NV sizes agree");

/* --- the HAL over the caller's callbacks --------------------------------------------- */

uint32_t hal_now_ms(void *b)
{
    lllt_fw *fw = b;
    return (uint32_t)(fw->now - fw->boot_at);
}
void hal_sense(void *b, lllt_sense_t *s)
{
    lllt_fw *fw = b;
    fw->hal.sense(fw->hal.ctx, (lllt_fwlib_sense *)s);
}
void hal_output_sense(void *b, uint16_t *q, uint8_t n)
{
    lllt_fw *fw = b;
    fw->hal.output_sense(fw->hal.ctx, q, n);
}
void hal_pwm_apply(void *b, const lllt_pwm_t *p, uint8_t n)
{
    lllt_fw *fw = b;
    fw->hal.pwm_apply(fw->hal.ctx, (const lllt_fwlib_pwm *)p, n);
}
void hal_master_set(void *b, bool on)
{
    lllt_fw *fw = b;
    if (fw->hal.master_set) {
        fw->hal.master_set(fw->hal.ctx, on ? 1 : 0);
    }
}
bool hal_driver_test(void *b)
{
    lllt_fw *fw = b;
    return fw->hal.driver_test ? fw->hal.driver_test(fw->hal.ctx) != 0 : true;
}
void hal_uart_write(void *b, const uint8_t *d, uint32_t n)
{
    lllt_fw *fw = b;
    fw->hal.uart_write(fw->hal.ctx, d, n);
}
bool hal_link_wired(void *b)
{
    lllt_fw *fw = b;
    return !(fw->flags & LLLT_FWLIB_BLE_LINK);
}
bool hal_nv_read(void *b, uint32_t off, uint8_t *buf, uint32_t len)
{
    lllt_fw *fw = b;
    return fw->hal.nv_read(fw->hal.ctx, off, buf, len) != 0;
}
bool hal_nv_write(void *b, uint32_t off, const uint8_t *buf, uint32_t len)
{
    lllt_fw *fw = b;
    return fw->hal.nv_write(fw->hal.ctx, off, buf, len) != 0;
}
bool hal_random(void *b, uint8_t *buf, uint32_t len)
{
    lllt_fw *fw = b;
    return fw->hal.random_bytes(fw->hal.ctx, buf, len) != 0;
}
bool hal_button_held(void *b)
{
    lllt_fw *fw = b;
    return fw->hal.button_held ? fw->hal.button_held(fw->hal.ctx) != 0 : false;
}
void hal_watchdog_kick(void *b)
{
    lllt_fw *fw = b;
    if (fw->hal.watchdog_kick) {
        fw->hal.watchdog_kick(fw->hal.ctx);
    }
}
void hal_trap(void *b, const char *file, int line)
{
    lllt_fw *fw = b;
    /* emitters dark by the fastest path, then "reset" */
    lllt_fwlib_pwm off[LLLT_FWLIB_MAX_CHANNELS];
    for (unsigned i = 0; i < LLLT_FWLIB_MAX_CHANNELS; i++) {
        off[i] = (lllt_fwlib_pwm){0, 10000, 0};
    }
    if (fw->hal.master_set) {
        fw->hal.master_set(fw->hal.ctx, 0);
    }
    fw->hal.pwm_apply(fw->hal.ctx, off, fw->hw.n_ch);
    fw->traps++;
    fw->trap_file = file;
    fw->trap_line = line;
    if (fw->trap_jmp) {
        longjmp(*fw->trap_jmp, 1);
    }
    for (;;) {
        /* a trap outside an entry point cannot happen; never return */
    }
}

/* --- the ABI -------------------------------------------------------------------------- */

uint32_t lllt_fw_abi_version(void) { return LLLT_FWLIB_ABI_VERSION; }
uint32_t lllt_fw_size(void) { return (uint32_t)sizeof(lllt_fw); }
uint32_t lllt_fw_is_release(void) { return LLLT_RELEASE; }
uint32_t lllt_fw_traps(const lllt_fw *fw) { return fw->traps; }

const char *lllt_fw_strerror(int32_t code)
{
    switch (code) {
    case LLLT_FWLIB_OK: return "ok";
    case LLLT_FWLIB_E_ABI: return "the caller was written for another ABI version of liblllt_fw";
    case LLLT_FWLIB_E_MEMORY: return "instance memory missing or smaller than lllt_fw_size()";
    case LLLT_FWLIB_E_HAL:
        return "a mandatory callback is missing (sense, output_sense, pwm_apply, uart_write, "
               "nv_read, nv_write, random_bytes)";
    case LLLT_FWLIB_E_BOARD:
        return "the board description is not a HELLO_INFO payload this build takes "
               "(at most 16 channels, 8 zones, 2048 bytes)";
    case LLLT_FWLIB_E_CONFIG: return "tick_ms above 100, or unknown flags or reserved fields set";
    default: return "unknown result";
    }
}

int32_t lllt_fw_init(void *mem, uint32_t size, const lllt_fwlib_config *cfg,
                     const lllt_fwlib_hal *hal)
{
    if (cfg == NULL || cfg->abi_version != LLLT_FWLIB_ABI_VERSION) {
        return LLLT_FWLIB_E_ABI;
    }
    if (mem == NULL || size < sizeof(lllt_fw)) {
        return LLLT_FWLIB_E_MEMORY;
    }
    if (hal == NULL || !hal->sense || !hal->output_sense || !hal->pwm_apply ||
        !hal->uart_write || !hal->nv_read || !hal->nv_write || !hal->random_bytes) {
        return LLLT_FWLIB_E_HAL;
    }
    if (cfg->tick_ms > 100 || cfg->reserved != 0 ||
        (cfg->flags & ~(uint32_t)(LLLT_FWLIB_QUIET_POWER_ON | LLLT_FWLIB_BLE_LINK))) {
        return LLLT_FWLIB_E_CONFIG;
    }
    lllt_fw *fw = mem;
    memset(fw, 0, sizeof *fw);
    fw->hal = *hal;
    fw->flags = cfg->flags;
    const uint8_t *board = cfg->board;
    uint32_t blen = cfg->board_len;
    if (board == NULL) {
        board = lllt_boards[0].hello;
        blen = lllt_boards[0].hello_len;
    }
    if (blen > BOARD_MAX) {
        return LLLT_FWLIB_E_BOARD;
    }
    memcpy(fw->blob, board, blen);
    if (!core_board_parse(&fw->hw, fw->blob, blen)) {
        return LLLT_FWLIB_E_BOARD;
    }
    ll_config_t c = {
        .tick_ms = cfg->tick_ms ? cfg->tick_ms : 10,
        .clock_rate = cfg->clock_rate,
        .brownout_mv = cfg->brownout_mv ? cfg->brownout_mv : 4300,
        .quiet_power_on = (cfg->flags & LLLT_FWLIB_QUIET_POWER_ON) != 0,
        .key = NULL,
    };
    if (cfg->key) {
        memcpy(fw->key, cfg->key, LLLT_FWLIB_KEY_SIZE);
        c.key = fw->key;
    }
    core_init(&fw->core, fw, &fw->hw, &c);
    fw->magic = FW_MAGIC;
    return LLLT_FWLIB_OK;
}

void lllt_fw_boot(lllt_fw *fw, uint32_t cause, uint64_t now_ms)
{
    jmp_buf jb;
    fw->boot_at = now_ms;
    fw->now = now_ms;
    if (setjmp(jb)) {
        fw->trap_jmp = NULL;
        return; /* a trap while booting: emitters are off; the next boot starts over */
    }
    fw->trap_jmp = &jb;
    core_boot(&fw->core, (uint8_t)(cause <= LLLT_FWLIB_BOOT_SOFTWARE ? cause : LLLT_FWLIB_BOOT_SOFTWARE));
    fw->trap_jmp = NULL;
}

void lllt_fw_rx(lllt_fw *fw, const uint8_t *data, uint32_t len)
{
    for (uint32_t i = 0; i < len; i++) {
        (void)core_rx_isr(&fw->core, data[i]);
    }
}

void lllt_fw_poll(lllt_fw *fw, uint64_t now_ms)
{
    jmp_buf jb;
    if (now_ms > fw->now) {
        fw->now = now_ms;
    }
    if (setjmp(jb)) {
        fw->trap_jmp = NULL;
        lllt_fw_boot(fw, LLLT_FWLIB_BOOT_SOFTWARE, fw->now);
        return;
    }
    fw->trap_jmp = &jb;
    core_task(&fw->core);
    fw->trap_jmp = NULL;
}

uint64_t lllt_fw_next_due(const lllt_fw *fw)
{
    uint32_t dev_now = (uint32_t)(fw->now - fw->boot_at);
    uint32_t due = core_next_due(&fw->core);
    int32_t ahead = (int32_t)(due - dev_now);
    return fw->now + (uint64_t)(ahead > 0 ? ahead : 0);
}

uint32_t lllt_fw_idle_room(const lllt_fw *fw) { return core_idle_room(&fw->core); }

uint32_t lllt_fw_idle(lllt_fw *fw, uint32_t n)
{
    jmp_buf jb;
    lllt_core_t *c = &fw->core;
    if (n == 0 || n > core_idle_room(c)) {
        return 0;
    }
    if (setjmp(jb)) {
        fw->trap_jmp = NULL;
        lllt_fw_boot(fw, LLLT_FWLIB_BOOT_SOFTWARE, fw->now);
        return 0;
    }
    fw->trap_jmp = &jb;
    core_idle_ticks(c, n);
    fw->trap_jmp = NULL;
    uint64_t t = fw->boot_at + c->tick_ms_now;
    if (t > fw->now) {
        fw->now = t;
    }
    return n;
}

void lllt_fw_link_closed(lllt_fw *fw) { core_link_closed(&fw->core); }

void lllt_fw_snapshot_get(const lllt_fw *fw, lllt_fwlib_snapshot *out)
{
    const lllt_core_t *c = &fw->core;
    memset(out, 0, sizeof *out);
    out->now_ms = (uint32_t)(fw->now - fw->boot_at);
    out->plan_id = (c->plan_loaded || c->session) ? c->plan.plan_id : 0;
    out->elapsed_ms = c->el;
    out->step_elapsed_ms = c->sel;
    out->emitting_ms = c->emit;
    out->boot_count = (uint16_t)c->boot_count;
    out->derate_permille = c->derate;
    out->state = c->state;
    out->step = c->session ? c->step : 0xFF;
    out->n_channels = c->hw.n_ch;
    out->n_zones = c->hw.n_z;
    out->master_on = c->master_on;
    uint16_t flags = c->fault_flags;
    if (c->head) flags |= 0x0001;
    if (c->lease_expired) flags |= 0x0004;
    else if (c->session) flags |= 0x0002;
    if (c->paused_host) flags |= 0x0008;
    if (c->paused_head) flags |= 0x0010;
    if (c->derate < 1000) flags |= 0x0020;
    if (c->authed) flags |= 0x0800;
    if (c->iv_ramping) flags |= 0x1000;
    for (uint8_t i = 0; i < c->hw.n_ch; i++) {
        out->fluence_uj[i] = core_units_to_uj(c->fl[i]);
        out->setpoint_q[i] = c->pwm[i].level_q;
        if (c->meas_q[i]) flags |= 0x0400;
    }
    out->flags = flags;
    out->frames_ok = c->stats.frames_ok;
    out->frames_bad = c->stats.frames_bad;
    out->rx_overflow = c->stats.rx_overflow + c->rx_lost;
    out->dedup_hits = c->stats.dedup_hits;
    out->nacks = c->stats.nacks;
    out->ticks = c->stats.ticks;
}

/* The board description: a HELLO_INFO payload (wire spec §5) read once at start-up.
 * The device answers HELLO with this template, its live fields filled in. */
#include "ll_internal.h"

#define OFF_LIMITS 35
#define OFF_STRINGS 67

static bool take_str(const uint8_t *p, uint32_t len, uint32_t *off)
{
    LL_VERIFY(*off < len, false);
    uint32_t n = p[*off];
    LL_VERIFY(*off + 1 + n <= len, false);
    *off += 1 + n;
    return true;
}

bool core_board_parse(ll_board_t *hw, const uint8_t *p, uint32_t len)
{
    memset(hw, 0, sizeof *hw);
    LL_VERIFY(p != NULL && len >= OFF_STRINGS && len <= 0xFFFF, false);
    hw->hello = p;
    hw->hello_len = (uint16_t)len;
    hw->caps = ll_get16(p + 5);
    hw->max_irr_q = ll_get16(p + OFF_LIMITS);
    hw->max_session_ms = ll_get32(p + OFF_LIMITS + 2);
    hw->max_fluence_uj = ll_get32(p + OFF_LIMITS + 6);
    hw->cutoff_q = (int16_t)ll_get16(p + OFF_LIMITS + 10);
    hw->head_off_abort_ms = ll_get32(p + OFF_LIMITS + 14);
    hw->min_lease_ms = ll_get32(p + OFF_LIMITS + 18);
    hw->max_tel_hz = ll_get16(p + OFF_LIMITS + 22);
    hw->min_pulse_mhz = ll_get32(p + OFF_LIMITS + 24);
    hw->max_pulse_mhz = ll_get32(p + OFF_LIMITS + 28);
    uint32_t off = OFF_STRINGS;
    LL_VERIFY(take_str(p, len, &off), false); /* model */
    LL_VERIFY(take_str(p, len, &off), false); /* serial */
    LL_VERIFY(off < len, false);
    uint8_t nz = p[off++];
    LL_VERIFY(nz >= 1 && nz <= LLLT_MAX_ZONES, false);
    uint8_t zone_id[LLLT_MAX_ZONES];
    for (uint8_t z = 0; z < nz; z++) {
        LL_VERIFY(off < len, false);
        zone_id[z] = p[off++];
        hw->zone_name[z] = (uint16_t)off;
        LL_VERIFY(take_str(p, len, &off), false);
        LL_VERIFY(off + 28 <= len, false);
        off += 28;
    }
    LL_VERIFY(off < len, false);
    uint8_t nc = p[off++];
    LL_VERIFY(nc >= 1 && nc <= LLLT_MAX_CHANNELS, false);
    for (uint8_t i = 0; i < nc; i++) {
        LL_VERIFY(off + 21 <= len, false);
        hw->ch_id[i] = p[off];
        uint8_t zid = p[off + 1];
        hw->ch_max_q[i] = ll_get16(p + off + 4);
        bool found = false;
        for (uint8_t z = 0; z < nz; z++) {
            if (zone_id[z] == zid) {
                hw->ch_zone[i] = z;
                found = true;
                break;
            }
        }
        LL_VERIFY(found, false);
        for (uint8_t j = 0; j < i; j++) {
            LL_VERIFY(hw->ch_id[j] != hw->ch_id[i], false);
        }
        off += 21;
    }
    LL_VERIFY(hw->max_tel_hz >= 1, false);
    hw->n_ch = nc;
    hw->n_z = nz;
    return true;
}

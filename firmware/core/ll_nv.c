/* Persistent state: boot count, record sequence numbers, the provisioned key and the
 * last 16 session records, in two copies (halves of the NV area) with a generation
 * number and a CRC-32. A save writes the half not holding the newest good copy, so a
 * reset in the middle of a save leaves the previous copy to boot from.
 *
 * A running session is saved as its last checkpoint (end_ms = checkpoint time, the
 * checkpoint's fluence, outcome RUNNING); the boot that finds it so makes it
 * POWER_LOSS (wire spec §8, Reboot). */
#include "ll_internal.h"

#define NV_MAGIC 0x564E4C4Cu /* "LLNV" */
#define NV_VERSION 1u
#define NV_HALF (LLLT_NV_SIZE / 2)
#define NV_HEAD 56
#define NV_REC_HEAD 24

#define NV_IMAGE_MAX (NV_HEAD + LLLT_MAX_RECORDS * (NV_REC_HEAD + 4 * LLLT_MAX_CHANNELS) + 4)
_Static_assert(NV_IMAGE_MAX <= NV_HALF, "records do not fit half of the NV area");
_Static_assert(NV_IMAGE_MAX <= sizeof(((lllt_core_t *)0)->txp),
               "the transmit buffer doubles as the NV scratch buffer");

/* header: magic u32, version u16, n_ch u8, count u8, generation u32, boot_count u32,
 * next_seq u32, flags u8 (bit 0: own key), reserved [3], key [32] */

static bool parse_half(lllt_core_t *c, const uint8_t *img, uint32_t *gen_out, bool apply)
{
    if (ll_get32(img) != NV_MAGIC || ll_get16(img + 4) != NV_VERSION) {
        return false;
    }
    uint8_t n_ch = img[6], count = img[7];
    if (n_ch != c->hw.n_ch || count > LLLT_MAX_RECORDS) {
        return false;
    }
    uint32_t size = NV_HEAD + count * (NV_REC_HEAD + 4u * n_ch);
    if (ll_crc32(0, img, size) != ll_get32(img + size)) {
        return false;
    }
    *gen_out = ll_get32(img + 8);
    if (!apply) {
        return true;
    }
    c->nv_gen = *gen_out;
    c->boot_count = ll_get32(img + 12);
    c->next_seq = ll_get32(img + 16);
    if (img[20] & 1) {
        memcpy(c->key, img + 24, LLLT_KEY_SIZE);
        c->have_key = true;
        c->provisioned = true;
    }
    c->n_records = count;
    const uint8_t *r = img + NV_HEAD;
    for (uint8_t i = 0; i < count; i++) {
        ll_record_t *d = &c->records[i];
        memset(d, 0, sizeof *d);
        d->seq = ll_get32(r);
        d->plan_id = ll_get32(r + 4);
        d->boot_count = ll_get16(r + 8);
        d->outcome = r[10];
        d->reason = r[11];
        d->start_ms = ll_get32(r + 12);
        d->end_ms = ll_get32(r + 16);
        d->emitting_ms = ll_get32(r + 20);
        for (uint8_t k = 0; k < n_ch; k++) {
            d->fluence_uj[k] = ll_get32(r + NV_REC_HEAD + 4 * k);
        }
        r += NV_REC_HEAD + 4u * n_ch;
    }
    return true;
}

void ll_nv_load(lllt_core_t *c)
{
    uint8_t *img = c->txp; /* scratch: nothing is being sent during a boot */
    uint32_t gen[2] = {0, 0};
    bool ok[2];
    for (int h = 0; h < 2; h++) {
        ok[h] = hal_nv_read(c->board, (uint32_t)h * NV_HALF, img, NV_IMAGE_MAX) &&
                parse_half(c, img, &gen[h], false);
    }
    c->nv_gen = 0;
    c->boot_count = 0;
    c->next_seq = 1;
    c->n_records = 0;
    if (!ok[0] && !ok[1]) {
        return; /* blank (or both copies damaged): a fresh device */
    }
    int h = (ok[0] && ok[1]) ? ((int32_t)(gen[1] - gen[0]) > 0 ? 1 : 0) : (ok[1] ? 1 : 0);
    if (hal_nv_read(c->board, (uint32_t)h * NV_HALF, img, NV_IMAGE_MAX)) {
        (void)parse_half(c, img, &gen[h], true);
    } else {
        c->stats.nv_errors++;
    }
    if (c->next_seq == 0) {
        c->next_seq = 1;
    }
}

void ll_nv_save(lllt_core_t *c)
{
    uint8_t *img = c->txp;
    uint8_t n_ch = c->hw.n_ch;
    memset(img, 0, NV_HEAD);
    ll_put32(img, NV_MAGIC);
    ll_put16(img + 4, NV_VERSION);
    img[6] = n_ch;
    img[7] = c->n_records;
    uint32_t gen = c->nv_gen + 1;
    ll_put32(img + 8, gen);
    ll_put32(img + 12, c->boot_count);
    ll_put32(img + 16, c->next_seq);
    if (c->provisioned) {
        img[20] = 1;
        memcpy(img + 24, c->key, LLLT_KEY_SIZE);
    }
    uint8_t *r = img + NV_HEAD;
    for (uint8_t i = 0; i < c->n_records; i++) {
        const ll_record_t *s = &c->records[i];
        bool running = c->session && i == 0;
        ll_put32(r, s->seq);
        ll_put32(r + 4, s->plan_id);
        ll_put16(r + 8, s->boot_count);
        r[10] = running ? LL_OUT_RUNNING : s->outcome;
        r[11] = running ? 0 : s->reason;
        ll_put32(r + 12, s->start_ms);
        ll_put32(r + 16, running ? c->ck_ms : s->end_ms);
        ll_put32(r + 20, running ? c->ck_emit : s->emitting_ms);
        for (uint8_t k = 0; k < n_ch; k++) {
            ll_put32(r + NV_REC_HEAD + 4 * k, running ? c->ck_fl_uj[k] : s->fluence_uj[k]);
        }
        r += NV_REC_HEAD + 4u * n_ch;
    }
    uint32_t size = (uint32_t)(r - img);
    ll_put32(r, ll_crc32(0, img, size));
    /* the half that does not hold the newest copy: generation parity picks it */
    uint32_t half = (gen & 1u) * NV_HALF;
    if (hal_nv_write(c->board, half, img, size + 4)) {
        c->nv_gen = gen;
    } else {
        c->stats.nv_errors++;
    }
}

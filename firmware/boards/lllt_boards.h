/* The shipped device profiles as board tables (generated: lllt_boards.c). */
#ifndef LLLT_BOARDS_H
#define LLLT_BOARDS_H

#include <stdint.h>

typedef struct lllt_board_desc {
    const char *name;     /* the profile name, as in lllt_sim */
    const uint8_t *hello; /* HELLO_INFO payload: the board description of the core */
    uint32_t hello_len;
    /* physics of the C plant (simulated boards only) */
    uint16_t supply_mv;
    uint16_t brownout_mv;
    float headroom;       /* drive reaches this × the calibrated maximum at 25 °C */
    float overtemp_w;     /* extra board heat of the overtemp fault */
    float sensor_noise_c; /* sigma of the temperature noise */
    uint16_t tick_ms;
} lllt_board_desc_t;

extern const lllt_board_desc_t lllt_boards[];
extern const unsigned lllt_board_count;

#endif

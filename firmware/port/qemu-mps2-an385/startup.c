/* Vector table and reset for the Cortex-M3 of mps2-an385. */
#include <stdint.h>
#include <string.h>

extern uint32_t _stack_top, _data_load, _data_start, _data_end, _bss_start, _bss_end;
int main(void);
void reset_handler(void);
void default_handler(void);
void systick_handler(void);
void uart0_rx_handler(void);
void hard_fault_handler(void);

void default_handler(void)
{
    for (;;) {
    }
}

void reset_handler(void)
{
    memcpy(&_data_start, &_data_load, (size_t)((char *)&_data_end - (char *)&_data_start));
    memset(&_bss_start, 0, (size_t)((char *)&_bss_end - (char *)&_bss_start));
    main();
    for (;;) {
    }
}

#define V(f) ((uintptr_t)(f))
__attribute__((section(".vectors"), used)) static const uintptr_t vectors[16 + 16] = {
    (uintptr_t)&_stack_top,
    V(reset_handler),
    V(default_handler),    /* NMI */
    V(hard_fault_handler), /* HardFault */
    V(hard_fault_handler), /* MemManage */
    V(hard_fault_handler), /* BusFault */
    V(hard_fault_handler), /* UsageFault */
    0, 0, 0, 0,
    V(default_handler), /* SVCall */
    V(default_handler), /* DebugMon */
    0,
    V(default_handler), /* PendSV */
    V(systick_handler),
    V(uart0_rx_handler), /* IRQ 0: UART0 RX */
    V(default_handler), V(default_handler), V(default_handler), V(default_handler), V(default_handler),
    V(default_handler), V(default_handler), V(default_handler), V(default_handler), V(default_handler),
    V(default_handler), V(default_handler), V(default_handler), V(default_handler), V(default_handler),
};

/* edgeprune: minimal start-up for running generated models on emulated Cortex-M boards (QEMU's
 * MPS2 AN385/AN386/AN500). A vector table at address 0, .data copied and .bss cleared, then
 * main(); its return value leaves QEMU as the exit status through semihosting. */
#include <stdint.h>

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;
int main(void);
int ep_semihost(int op, void *arg);

static void ep_exit(int code)
{
    uint32_t args[2] = {0x20026u, (uint32_t)code}; /* ADP_Stopped_ApplicationExit, exit status */
    ep_semihost(0x20, args);                      /* SYS_EXIT_EXTENDED */
    for (;;) {
    }
}

void Reset_Handler(void)
{
    uint32_t *src = &_sidata, *dst = &_sdata;
    while (dst < &_edata)
        *dst++ = *src++;
    for (dst = &_sbss; dst < &_ebss;)
        *dst++ = 0;
    ep_exit(main());
}

void Fault_Handler(void) { ep_exit(90); } /* a hard fault, bus fault or usage fault */

__attribute__((section(".vectors"), used)) void (*const ep_vectors[16])(void) = {
    (void (*)(void))(&_estack), Reset_Handler, Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler,
    Fault_Handler, 0, 0, 0, 0, Fault_Handler, Fault_Handler, 0, Fault_Handler, Fault_Handler,
};

int ep_semihost(int op, void *arg)
{
    register int r0 __asm__("r0") = op;
    register void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

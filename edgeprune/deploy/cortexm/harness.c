/* edgeprune: test harness for an emulated Cortex-M. Reads in.bin (int32 count, then count int8
 * inputs) and writes out.bin (the outputs) and ticks.bin (per mark, the timer ticks summed over
 * all inputs, uint64; then two calibration slots) through semihosting files. The CMSDK APB timer 0 of the MPS2 boards
 * counts down at 25 MHz of QEMU's virtual clock; run under -icount, every executed instruction
 * advances that clock by a fixed time, so ticks are instruction counts in a known ratio. */
#include <stdint.h>
#include "model.h"

int ep_semihost(int op, void *arg);

#define EP_TIMER ((volatile uint32_t *)0x40000000u) /* CTRL, VALUE, RELOAD */
#ifndef EP_MARKS
#define EP_MARKS 1
#endif

static uint64_t ticks[EP_MARKS + 2]; /* the layers, then two calibration slots */
static uint32_t last;
static int open_file(const char *name, int mode)
{
    int len = 0;
    while (name[len])
        len++;
    uint32_t args[3] = {(uint32_t)name, (uint32_t)mode, (uint32_t)len};
    return ep_semihost(0x01, args); /* SYS_OPEN */
}
static int xfer(int op, int fd, void *buf, int n)
{
    uint32_t args[3] = {(uint32_t)fd, (uint32_t)buf, (uint32_t)n};
    return ep_semihost(op, args); /* SYS_READ / SYS_WRITE: bytes not transferred */
}
static void close_file(int fd)
{
    uint32_t args[1] = {(uint32_t)fd};
    ep_semihost(0x02, args);
}

/* called before layer k (and with k = EP_MARKS - 1 at the end): the ticks since the last mark
 * go to the layer before */
__attribute__((noinline)) void ep_mark(int k)
{
    uint32_t now = EP_TIMER[1];
    ticks[k] += (uint64_t)(last - now);
    last = EP_TIMER[1];
}

int main(void)
{
    static int8_t in[EP_INPUT_SIZE], out[EP_OUTPUT_SIZE];
    int32_t n = 0;
    int fi = open_file("in.bin", 1), fo = open_file("out.bin", 5), ft = open_file("ticks.bin", 5);
    if (fi < 0 || fo < 0 || ft < 0)
        return 3;
    if (xfer(0x06, fi, &n, 4) != 0)
        return 4;
    EP_TIMER[2] = 0xffffffffu;
    EP_TIMER[1] = 0xffffffffu;
    EP_TIMER[0] = 1;
    for (int32_t i = 0; i < n; i++) {
        if (xfer(0x06, fi, in, EP_INPUT_SIZE) != 0)
            return 5;
        last = EP_TIMER[1];
        ep_mark(EP_MARKS);     /* calibration: the gap between two marks in a row is the cost */
        ep_mark(EP_MARKS + 1); /* one mark adds to every layer's count, removed in Python */
        ep_run(in, out);
        if (xfer(0x05, fo, out, EP_OUTPUT_SIZE) != 0)
            return 6;
    }
    xfer(0x05, ft, ticks, (int)sizeof ticks);
    close_file(fi);
    close_file(fo);
    close_file(ft);
    return 0;
}

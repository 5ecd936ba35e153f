/* edgeprune int8 kernels: portable C99, no dynamic allocation, no floating point.
 * Activations are int8 with a per-tensor zero point; weights int8 per output channel;
 * accumulation in int32; rescaling by a 32-bit multiplier and a rounding right shift. */
#include <stdint.h>
#include <string.h>

/* The layer kernels are neither inlined nor specialised per call site: a model calls each with
 * many shapes, and a kernel's cost must not depend on how many layers share it (the stored
 * kernel costs, edgeprune.deploy.kernel_costs, are measured on one-layer models). */
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 8
/* noipa: not even a single call site's constants propagate into the body (noclone alone lets
 * gcc specialise a static function with one caller); and their short copy loops (a kernel row
 * of im2col) stay loops: as memcpy calls their cost would depend on the buffers' alignment,
 * i.e. on the model around them */
#define EP_KERNEL __attribute__((noipa, optimize("no-tree-loop-distribute-patterns")))
#else
#define EP_KERNEL __attribute__((noinline))
#endif
/* their helpers are always inlined, for the same reason: how gcc would decide depends on which
 * other kernels the model uses */
#define EP_INLINE static inline __attribute__((always_inline))

EP_INLINE int32_t ep_requant(int32_t acc, int32_t m0, int32_t shift)
{
    /* floor((acc * m0 + 2^(shift-1)) / 2^shift) from the high word of acc * m0: for shift = 32 + t,
     * t > 0 (every multiplier below 1/2), it is (hi + 2^(t-1)) >> t, because the low word cannot
     * carry into it, so the cost does not depend on the shift. Right shifts of negative values
     * are arithmetic in gcc and clang (implementation-defined in C99, documented by both). */
#if defined(__ARM_ARCH_6M__)
    /* no 32x32->64 multiply on ARMv6-M (gcc would call a 64x64 routine): 16-bit halves,
     * acc = ah 2^16 + al, m0 = mh 2^16 + ml (0 <= m0 < 2^31, so mh < 2^15); with p = ah ml,
     * q = al mh, r = al ml, acc m0 = ah mh 2^32 + (p + q) 2^16 + r, and the sum
     * (p mod 2^16) + q + r / 2^16 < 2^31 + 2^17 carries into the high word without overflow */
    uint32_t al = (uint32_t)acc & 0xffffu, ml = (uint32_t)m0 & 0xffffu;
    int32_t ah = acc >> 16, mh = m0 >> 16;
    int32_t p = ah * (int32_t)ml;
    uint32_t r = al * ml, mid = ((uint32_t)p & 0xffffu) + al * (uint32_t)mh + (r >> 16);
    int32_t hi = ah * mh + (p >> 16) + (int32_t)(mid >> 16);
    uint32_t lo = (mid << 16) | (r & 0xffffu);
#else
    int64_t prod = (int64_t)acc * (int64_t)m0; /* one SMULL */
    int32_t hi = (int32_t)(prod >> 32);
    uint32_t lo = (uint32_t)prod;
#endif
    if (shift > 32)
        return (hi + (1 << (shift - 33))) >> (shift - 32);
    if (shift == 32)
        return hi + (int32_t)(lo >> 31);
    return (int32_t)(((int64_t)hi * 4294967296LL + lo + ((int64_t)1 << (shift - 1))) >> shift);
}

EP_INLINE int8_t ep_clamp(int32_t v, int32_t lo)
{
    if (v < lo) v = lo;
    if (v > 127) v = 127;
    return (int8_t)v;
}

/* Dense kernels (conv and linear with groups == 1): each output position's receptive field is
 * copied once into a column (padding filled with the input zero point zi), then dotted with two
 * weight rows at a time. The zero point is folded into the bias by the generator:
 * bias' = bias - zi * sum(w row), so sum((x - zi) w) = sum(x w) + (bias' - bias): the same
 * integers as the direct form, without a subtraction or a bounds check per tap. On cores with
 * the DSP extension (M4, M7) four int8 products go through two SMLADs. */
#if defined(__ARM_FEATURE_SIMD32) && __ARM_FEATURE_SIMD32
#define EP_SIMD 1
#include <arm_acle.h>
static inline uint32_t ep_ld4(const int8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4); /* an unaligned word load on M4/M7 */
    return v;
}
/* the odd bytes, sign-extended to two halfwords: one SXTB16 with its rotation (gcc does not
 * fold a separate rotate into it) */
static inline int32_t ep_sxtb16_ror8(uint32_t v)
{
    int32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
    return r;
}
#endif

#if defined(__ARM_ARCH_6M__)
/* acc[r] += sum_i col[i] * w[r * n + i] for r = 0..3, n > 0, in Thumb-1 assembly: gcc cannot keep
 * five byte streams, a shared index and four accumulators in registers (ARMv6-M loads bytes
 * with a register offset only, from the eight low registers), so the accumulators live in
 * r8-r11 (ADD reaches them) and the loop runs four steps per branch: 13 instructions per four
 * MACs plus 1.25 of loop, against 5 per MAC for two rows in C. */
#define EP_DOT4 1
void ep_dot4_v6m(const int8_t *col, const int8_t *w, int n, int32_t *acc);
#define EP_DOT4_STEP                                                                  \
    "ldrsb r3, [r0, r2]\n\t"                                                          \
    "ldrsb r7, [r4, r2]\n\tmuls r7, r3, r7\n\tadd r8, r8, r7\n\t"                     \
    "ldrsb r7, [r5, r2]\n\tmuls r7, r3, r7\n\tadd r9, r9, r7\n\t"                     \
    "ldrsb r7, [r6, r2]\n\tmuls r7, r3, r7\n\tadd r10, r10, r7\n\t"                   \
    "ldrsb r7, [r1, r2]\n\tmuls r7, r3, r7\n\tadd r11, r11, r7\n\t"
__asm__(
    "\t.text\n\t.syntax unified\n\t.thumb\n\t.align 1\n\t.weak ep_dot4_v6m\n\t.hidden ep_dot4_v6m\n"
    "\t.type ep_dot4_v6m, %function\n\t.thumb_func\n"
    "ep_dot4_v6m:\n\t"
    "push {r4, r5, r6, r7, lr}\n\t"
    "mov r4, r8\n\tmov r5, r9\n\tmov r6, r10\n\tmov r7, r11\n\tpush {r4, r5, r6, r7}\n\t"
    "push {r3}\n\t"
    "ldr r4, [r3, #0]\n\tmov r8, r4\n\tldr r4, [r3, #4]\n\tmov r9, r4\n\t"
    "ldr r4, [r3, #8]\n\tmov r10, r4\n\tldr r4, [r3, #12]\n\tmov r11, r4\n\t"
    /* streams end at col + n and w + (r + 1) n; the index j runs from -n up to 0 */
    "adds r0, r0, r2\n\tadds r4, r1, r2\n\tadds r5, r4, r2\n\tadds r6, r5, r2\n\tadds r1, r6, r2\n\t"
    "rsbs r2, r2, #0\n"
    "1:\n\t" /* single steps until the steps left are a multiple of four */
    "lsls r3, r2, #30\n\tbeq 2f\n\t" EP_DOT4_STEP "adds r2, r2, #1\n\tb 1b\n"
    "2:\n\t"
    "cmp r2, #0\n\tbeq 4f\n"
    "3:\n\t" EP_DOT4_STEP "adds r2, r2, #1\n\t" EP_DOT4_STEP "adds r2, r2, #1\n\t" EP_DOT4_STEP
    "adds r2, r2, #1\n\t" EP_DOT4_STEP "adds r2, r2, #1\n\tbne 3b\n"
    "4:\n\t"
    "pop {r3}\n\t"
    "mov r4, r8\n\tstr r4, [r3, #0]\n\tmov r4, r9\n\tstr r4, [r3, #4]\n\t"
    "mov r4, r10\n\tstr r4, [r3, #8]\n\tmov r4, r11\n\tstr r4, [r3, #12]\n\t"
    "pop {r4, r5, r6, r7}\n\tmov r8, r4\n\tmov r9, r5\n\tmov r10, r6\n\tmov r11, r7\n\t"
    "pop {r4, r5, r6, r7, pc}\n\t"
    ".size ep_dot4_v6m, .-ep_dot4_v6m\n");
#endif

#if defined(__ARM_ARCH_6M__)
__attribute__((noinline)) static /* inlined into a convolution, its pointers spill to the stack */
#else
EP_INLINE
#endif
void ep_dot2(const int8_t *col, const int8_t *w0, const int8_t *w1, int n, int32_t *a0, int32_t *a1)
{
    int32_t s0 = *a0, s1 = *a1;
    int i = 0;
#if defined(EP_SIMD)
    for (; i + 4 <= n; i += 4) {
        uint32_t c = ep_ld4(col + i), u = ep_ld4(w0 + i), v = ep_ld4(w1 + i);
        int32_t ce = __sxtb16(c), co = ep_sxtb16_ror8(c);
        s0 = __smlad(__sxtb16(u), ce, s0);
        s0 = __smlad(ep_sxtb16_ror8(u), co, s0);
        s1 = __smlad(__sxtb16(v), ce, s1);
        s1 = __smlad(ep_sxtb16_ror8(v), co, s1);
    }
#elif defined(__ARM_ARCH_6M__)
    /* Thumb-1 loads bytes only with a register offset: one index, counting up to zero from -n,
     * serves all three streams and ends the loop with its own flags (no compare) */
    {
        const int8_t *c = col + n, *u = w0 + n, *v = w1 + n;
        for (int j = -n; j < 0; j++) { /* unrolled, j + 1 needs a second index register */
            int32_t x = c[j];
            s0 += x * u[j];
            s1 += x * v[j];
        }
        i = n;
    }
#else
    for (; i + 4 <= n; i += 4) {
        int32_t c0 = col[i], c1 = col[i + 1], c2 = col[i + 2], c3 = col[i + 3];
        s0 += c0 * w0[i] + c1 * w0[i + 1] + c2 * w0[i + 2] + c3 * w0[i + 3];
        s1 += c0 * w1[i] + c1 * w1[i + 1] + c2 * w1[i + 2] + c3 * w1[i + 3];
    }
#endif
    for (; i < n; i++) {
        s0 += (int32_t)col[i] * w0[i];
        s1 += (int32_t)col[i] * w1[i];
    }
    *a0 = s0;
    *a1 = s1;
}

/* a[0..3] += (w0, c0), (w1, c0), (w0, c1), (w1, c1): two columns share each weight load */
EP_INLINE void ep_dot2x2(const int8_t *c0, const int8_t *c1, const int8_t *w0, const int8_t *w1, int n, int32_t *a)
{
    int32_t s00 = a[0], s10 = a[1], s01 = a[2], s11 = a[3];
    int i = 0;
#if defined(EP_SIMD)
    for (; i + 4 <= n; i += 4) {
        uint32_t x0 = ep_ld4(c0 + i), x1 = ep_ld4(c1 + i);
        int32_t x0e = __sxtb16(x0), x0o = ep_sxtb16_ror8(x0), x1e = __sxtb16(x1), x1o = ep_sxtb16_ror8(x1);
        uint32_t u = ep_ld4(w0 + i);
        int32_t ue = __sxtb16(u), uo = ep_sxtb16_ror8(u);
        s00 = __smlad(ue, x0e, s00);
        s00 = __smlad(uo, x0o, s00);
        s01 = __smlad(ue, x1e, s01);
        s01 = __smlad(uo, x1o, s01);
        u = ep_ld4(w1 + i);
        ue = __sxtb16(u);
        uo = ep_sxtb16_ror8(u);
        s10 = __smlad(ue, x0e, s10);
        s10 = __smlad(uo, x0o, s10);
        s11 = __smlad(ue, x1e, s11);
        s11 = __smlad(uo, x1o, s11);
    }
#elif defined(__ARM_ARCH_6M__)
    /* Thumb-1 has 8 low registers: four accumulators and four streams spill, so one column at a time */
    a[0] = s00;
    a[1] = s10;
    a[2] = s01;
    a[3] = s11;
    ep_dot2(c0, w0, w1, n, &a[0], &a[1]);
    ep_dot2(c1, w0, w1, n, &a[2], &a[3]);
    return;
#else
    for (; i + 2 <= n; i += 2) {
        int32_t p0 = c0[i], p1 = c0[i + 1], q0 = c1[i], q1 = c1[i + 1];
        int32_t u0 = w0[i], u1 = w0[i + 1], v0 = w1[i], v1 = w1[i + 1];
        s00 += p0 * u0 + p1 * u1;
        s10 += p0 * v0 + p1 * v1;
        s01 += q0 * u0 + q1 * u1;
        s11 += q0 * v0 + q1 * v1;
    }
#endif
    for (; i < n; i++) {
        s00 += (int32_t)c0[i] * w0[i];
        s10 += (int32_t)c0[i] * w1[i];
        s01 += (int32_t)c1[i] * w0[i];
        s11 += (int32_t)c1[i] * w1[i];
    }
    a[0] = s00;
    a[1] = s10;
    a[2] = s01;
    a[3] = s11;
}

EP_INLINE int32_t ep_dot1(const int8_t *col, const int8_t *w0, int n)
{
    int32_t s0 = 0;
    int i = 0;
#if defined(EP_SIMD)
    for (; i + 4 <= n; i += 4) {
        uint32_t c = ep_ld4(col + i), u = ep_ld4(w0 + i);
        s0 = __smlad(__sxtb16(u), __sxtb16(c), s0);
        s0 = __smlad(ep_sxtb16_ror8(u), ep_sxtb16_ror8(c), s0);
    }
#endif
    for (; i < n; i++)
        s0 += (int32_t)col[i] * w0[i];
    return s0;
}

/* every output channel for one column: y[co * step] */
EP_INLINE void ep_column_out(const int8_t *col, int n, int8_t *y, int step, int cout, const int8_t *w,
                          const int32_t *bias, const int32_t *m0, const int32_t *sh, int32_t zo, int32_t lo)
{
    int co = 0;
#if defined(EP_DOT4)
    for (; co + 4 <= cout; co += 4) {
        int32_t a[4] = {bias[co], bias[co + 1], bias[co + 2], bias[co + 3]};
        ep_dot4_v6m(col, w + co * n, n, a);
        for (int r = 0; r < 4; r++)
            y[(co + r) * step] = ep_clamp(ep_requant(a[r], m0[co + r], sh[co + r]) + zo, lo);
    }
#endif
    for (; co + 2 <= cout; co += 2) {
        int32_t a0 = bias[co], a1 = bias[co + 1];
        ep_dot2(col, w + co * n, w + (co + 1) * n, n, &a0, &a1);
        y[co * step] = ep_clamp(ep_requant(a0, m0[co], sh[co]) + zo, lo);
        y[(co + 1) * step] = ep_clamp(ep_requant(a1, m0[co + 1], sh[co + 1]) + zo, lo);
    }
    if (co < cout) {
        int32_t a0 = bias[co] + ep_dot1(col, w + co * n, n);
        y[co * step] = ep_clamp(ep_requant(a0, m0[co], sh[co]) + zo, lo);
    }
}

/* every output channel for two columns (output positions y0[co * step], y1[co * step]) */
EP_INLINE void ep_columns_out2(const int8_t *col, int n, int8_t *y0, int8_t *y1, int step, int cout, const int8_t *w,
                            const int32_t *bias, const int32_t *m0, const int32_t *sh, int32_t zo, int32_t lo)
{
#if defined(EP_DOT4)
    /* four rows of one column beat two rows of two columns when the accumulators must sit in r8-r11 */
    ep_column_out(col, n, y0, step, cout, w, bias, m0, sh, zo, lo);
    ep_column_out(col + n, n, y1, step, cout, w, bias, m0, sh, zo, lo);
    return;
#endif
    int co = 0;
    for (; co + 2 <= cout; co += 2) {
        int32_t a[4] = {bias[co], bias[co + 1], bias[co], bias[co + 1]};
        ep_dot2x2(col, col + n, w + co * n, w + (co + 1) * n, n, a);
        y0[co * step] = ep_clamp(ep_requant(a[0], m0[co], sh[co]) + zo, lo);
        y0[(co + 1) * step] = ep_clamp(ep_requant(a[1], m0[co + 1], sh[co + 1]) + zo, lo);
        y1[co * step] = ep_clamp(ep_requant(a[2], m0[co], sh[co]) + zo, lo);
        y1[(co + 1) * step] = ep_clamp(ep_requant(a[3], m0[co + 1], sh[co + 1]) + zo, lo);
    }
    if (co < cout) {
        int32_t a0 = bias[co] + ep_dot1(col, w + co * n, n), a1 = bias[co] + ep_dot1(col + n, w + co * n, n);
        y0[co * step] = ep_clamp(ep_requant(a0, m0[co], sh[co]) + zo, lo);
        y1[co * step] = ep_clamp(ep_requant(a1, m0[co], sh[co]) + zo, lo);
    }
}

#if defined(EP_SIMD) && defined(__thumb2__)
/* Convolutions on cores with the DSP extension widen each column once to int16, as pairs that
 * match SXTB16 of a weight word: for inputs 4g..4g+3, words (c0, c2) and (c1, c3). The two
 * columns of a pair of positions interleave per four inputs (x0, x1 of column 0, then of
 * column 1), so every weight word, sign-extended once, meets both columns. Inputs beyond the
 * last multiple of four sit after the pairs, one int32 each (column j at slot 4 j + r). This
 * scratch layout is edgeprune.deploy.cgen.dense_scratch_bytes. */
#define EP_WIDE 1
EP_INLINE int ep_wide_bytes(int n) { return 16 * (n >> 2) + 32; } /* the pairs and the leftovers */

/* a[0..3] += (w0, column 0), (w1, column 0), (w0, column 1), (w1, column 1) over the pairs from
 * c16 to end (at least one group of four inputs); w1 = w0 + n. Thumb-2 assembly: the loop needs
 * all fourteen registers (four accumulators, four column words, two weight temporaries, three
 * pointers and the row offset), which gcc spills: 18 instructions per 16 MACs here, 21 or more
 * from C. */
void ep_dot2x2_wide(const int32_t *c16, const int32_t *end, const int8_t *w0, int n, int32_t *a);
#define EP_WIDE_ROW(acc0, acc1)                                                                 \
    "sxtb16 r12, lr\n\tsmlad " acc0 ", r12, r8, " acc0 "\n\tsmlad " acc1 ", r12, r10, " acc1 "\n\t" \
    "sxtb16 lr, lr, ror #8\n\tsmlad " acc0 ", lr, r9, " acc0 "\n\tsmlad " acc1 ", lr, r11, " acc1 "\n\t"
__asm__(
    "\t.text\n\t.syntax unified\n\t.thumb\n\t.align 2\n\t.weak ep_dot2x2_wide\n\t.hidden ep_dot2x2_wide\n"
    "\t.type ep_dot2x2_wide, %function\n\t.thumb_func\n"
    "ep_dot2x2_wide:\n\t"
    "push {r4, r5, r6, r7, r8, r9, r10, r11, lr}\n\t"
    "ldr r12, [sp, #36]\n\t" /* a: the fifth argument */
    "ldm r12, {r4, r5, r6, r7}\n\t"
    "subs r3, r3, #4\n" /* w1's word, from w0 after its post-increment */
    "1:\n\t"
    "ldmia r0!, {r8, r9, r10, r11}\n\t"
    "ldr lr, [r2], #4\n\t" EP_WIDE_ROW("r4", "r6")
    "ldr lr, [r2, r3]\n\t" EP_WIDE_ROW("r5", "r7")
    "cmp r0, r1\n\tbne 1b\n\t"
    "ldr r12, [sp, #36]\n\t"
    "stm r12, {r4, r5, r6, r7}\n\t"
    "pop {r4, r5, r6, r7, r8, r9, r10, r11, pc}\n\t"
    ".size ep_dot2x2_wide, .-ep_dot2x2_wide\n");

/* column j (0 or 1) of the pair, from its n bytes c, into the widened scratch c16 */
EP_INLINE void ep_widen(const int8_t *c, int n, int32_t *c16, int j)
{
    int n4 = n >> 2;
    for (int g = 0; g < n4; g++, c += 4) {
        uint32_t v = ep_ld4(c);
        c16[4 * g + 2 * j] = __sxtb16(v);
        c16[4 * g + 2 * j + 1] = ep_sxtb16_ror8(v);
    }
    for (int r = 0; r < (n & 3); r++)
        c16[4 * n4 + 4 * j + r] = c[r];
}

/* every output channel for the two widened columns: y0[co * step], y1[co * step]; a function of
 * its own (called once per pair of positions), so that its loop keeps its values in registers */
EP_KERNEL static void ep_wide_out2(const int32_t *c16, int n, int8_t *y0, int8_t *y1, int step, int cout, const int8_t *w,
                            const int32_t *bias, const int32_t *m0, const int32_t *sh, int32_t zo, int32_t lo)
{
    int n4 = n >> 2, left = n & 3;
    const int32_t *tail = c16 + 4 * n4;
    for (int co = 0; co < cout; co += 2) {
        int two = co + 1 < cout; /* the last channel of an odd count goes alone */
        const int8_t *w0 = w + co * n, *w1 = two ? w0 + n : w0;
        int32_t a[4] = {bias[co], bias[co + two], bias[co], bias[co + two]};
        if (n4)
            ep_dot2x2_wide(c16, tail, w0, two ? n : 0, a);
        for (int r = 0; r < left; r++) {
            int32_t u = w0[4 * n4 + r], v = w1[4 * n4 + r];
            a[0] += tail[r] * u;
            a[1] += tail[r] * v;
            a[2] += tail[4 + r] * u;
            a[3] += tail[4 + r] * v;
        }
        y0[co * step] = ep_clamp(ep_requant(a[0], m0[co], sh[co]) + zo, lo);
        y1[co * step] = ep_clamp(ep_requant(a[2], m0[co], sh[co]) + zo, lo);
        if (two) {
            y0[(co + 1) * step] = ep_clamp(ep_requant(a[1], m0[co + 1], sh[co + 1]) + zo, lo);
            y1[(co + 1) * step] = ep_clamp(ep_requant(a[3], m0[co + 1], sh[co + 1]) + zo, lo);
        }
    }
}
#endif

/* the kh x kw window at src of each of `planes` input planes (plane_stride apart, rows wd apart)
 * into c, in (plane, row, column) order: an output position's column where its window lies
 * inside the input. A function of its own: inlined into a convolution, its loops spill. */
EP_KERNEL static void ep_gather(const int8_t *src, int8_t *c, int planes, int plane_stride, int kh, int wd, int kw)
{
    if (kh == 1 && kw == 1) { /* 1x1: one byte per plane */
        int p = 0;
        for (; p + 4 <= planes; p += 4, c += 4) {
            int8_t a = src[0], b = src[plane_stride];
            src += 2 * plane_stride;
            c[0] = a;
            c[1] = b;
            a = src[0];
            b = src[plane_stride];
            src += 2 * plane_stride;
            c[2] = a;
            c[3] = b;
        }
        for (; p < planes; p++, src += plane_stride)
            *c++ = *src;
        return;
    }
    for (int p = 0; p < planes; p++, src += plane_stride) {
        const int8_t *r = src;
        if (kw == 3) {
            for (int ky = 0; ky < kh; ky++, r += wd, c += 3) {
                int8_t a = r[0], b = r[1], d = r[2];
                c[0] = a;
                c[1] = b;
                c[2] = d;
            }
        } else {
            for (int ky = 0; ky < kh; ky++, r += wd)
                for (int kx = 0; kx < kw; kx++)
                    *c++ = r[kx];
        }
    }
}

/* Dense convolutions build one column per output position, in pairs of positions. Where
 * position p's n bytes go in the scratch buffer `col`: */
EP_INLINE int8_t *ep_column_at(int8_t *col, int n, int p)
{
#if defined(EP_WIDE)
    (void)p;
    return col + ep_wide_bytes(n); /* one byte column, widened into the pairs when complete */
#else
    return col + (p & 1) * n; /* the two columns side by side */
#endif
}

/* position p's column is complete: every output channel of positions p - 1 and p once p is
 * odd, of p alone when it is the last (npos outputs per channel) */
EP_INLINE void ep_column_done(int8_t *col, int n, int p, int npos, int8_t *y, int cout, const int8_t *w,
                              const int32_t *bias, const int32_t *m0, const int32_t *sh, int32_t zo, int32_t lo)
{
#if defined(EP_WIDE)
    int8_t *c = ep_column_at(col, n, p);
    if (!(p & 1) && p == npos - 1) {
        ep_column_out(c, n, y + p, npos, cout, w, bias, m0, sh, zo, lo);
        return;
    }
    ep_widen(c, n, (int32_t *)(void *)col, p & 1);
    if (p & 1)
        ep_wide_out2((const int32_t *)(const void *)col, n, y + p - 1, y + p, npos, cout, w, bias, m0, sh, zo, lo);
#else
    if (p & 1)
        ep_columns_out2(col, n, y + p - 1, y + p, npos, cout, w, bias, m0, sh, zo, lo);
    else if (p == npos - 1)
        ep_column_out(col, n, y + p, npos, cout, w, bias, m0, sh, zo, lo);
#endif
}

/* Depthwise convolutions read each input plane (row) from a copy with its padding, so that no
 * tap needs a bounds check. On ARMv6-M, which loads signed bytes only with a register offset,
 * the copy flips every sign bit: it holds x + 128 as unsigned bytes, which LDRB reads with an
 * immediate offset, and -128 sum(w) joins the bias. Cores with the DSP extension copy only
 * planes that have padding; the others copy every plane (one scratch size for all of them:
 * edgeprune.deploy.cgen sizes it so). */
#if defined(__ARM_ARCH_6M__)
typedef uint8_t ep_px;
#define EP_PX_FLIP 128
#else
typedef int8_t ep_px;
#define EP_PX_FLIP 0
#endif

#if defined(__ARM_ARCH_6M__)
/* out[0], out[1] += the 3x3 windows at r and r + 1 (rows wp apart; bytes x + 128) times k[0..8]
 * (int32), in Thumb-1 assembly: rows unrolled, each weight loaded once for both windows, every
 * tap LDRB (immediate offset), MULS, ADDS; gcc's version spills (27 instructions a row, 22 here) */
void ep_dw3x3_pair_v6m(const uint8_t *r, int wp, const int32_t *k, int32_t *out);
#define EP_DW_TAP(off, acc) "ldrb r7, [r0, #" off "]\n\tmuls r7, r6, r7\n\tadds " acc ", " acc ", r7\n\t"
#define EP_DW_ROW(k0, k1, k2)                                                                          \
    "ldr r6, [r2, #" k0 "]\n\t" EP_DW_TAP("0", "r4") EP_DW_TAP("1", "r5")                            \
    "ldr r6, [r2, #" k1 "]\n\t" EP_DW_TAP("1", "r4") EP_DW_TAP("2", "r5")                            \
    "ldr r6, [r2, #" k2 "]\n\t" EP_DW_TAP("2", "r4") EP_DW_TAP("3", "r5")
__asm__(
    "\t.text\n\t.syntax unified\n\t.thumb\n\t.align 1\n\t.weak ep_dw3x3_pair_v6m\n\t.hidden ep_dw3x3_pair_v6m\n"
    "\t.type ep_dw3x3_pair_v6m, %function\n\t.thumb_func\n"
    "ep_dw3x3_pair_v6m:\n\t"
    "push {r4, r5, r6, r7}\n\t"
    "ldr r4, [r3, #0]\n\tldr r5, [r3, #4]\n\t"
    EP_DW_ROW("0", "4", "8") "adds r0, r0, r1\n\t"
    EP_DW_ROW("12", "16", "20") "adds r0, r0, r1\n\t"
    EP_DW_ROW("24", "28", "32")
    "str r4, [r3, #0]\n\tstr r5, [r3, #4]\n\t"
    "pop {r4, r5, r6, r7}\n\tbx lr\n\t"
    ".size ep_dw3x3_pair_v6m, .-ep_dw3x3_pair_v6m\n");
#endif

EP_INLINE int ep_dw_copies(int padded)
{
#if defined(EP_WIDE)
    return padded;
#else
    (void)padded;
    return 1;
#endif
}

/* an h x wd plane into dst with py rows and px columns of the zero point zi around it (rows
 * wd + 2 px apart), every byte's sign bit flipped where EP_PX_FLIP says so; a function of its
 * own (once per plane), whose copy loop keeps its values in registers */
EP_KERNEL static void ep_pad_plane(const int8_t *src, int h, int wd, int py, int px, int8_t *dst, int32_t zi)
{
    int wp = wd + 2 * px;
    int8_t pad = (int8_t)(zi ^ EP_PX_FLIP);
    memset(dst, pad, (size_t)(py * wp + px));
    for (int iy = 0; iy < h; iy++, src += wd) {
        int8_t *row = dst + (py + iy) * wp + px;
#if EP_PX_FLIP
        for (int i = 0; i < wd; i++)
            row[i] = (int8_t)(src[i] ^ EP_PX_FLIP);
#else
        memcpy(row, src, (size_t)wd);
#endif
        memset(row + wd, pad, (size_t)(iy + 1 < h ? 2 * px : px + py * wp));
    }
}

/* y[co][o] for a 1-D convolution, dense weights w[co][ci_in_group][k]; groups == 1 takes the
 * column path (bias with the zero point folded in, col: 2 cin k bytes), grouped convolutions
 * the direct one (plain bias), with the padding cut out of the tap loop */
EP_KERNEL static void ep_conv1d(const int8_t *x, int cin, int lin, int8_t *y, int cout, int lout,
                      const int8_t *w, const int32_t *bias, const int32_t *m0, const int32_t *sh,
                      int k, int stride, int pad, int groups, int32_t zi, int32_t zo, int relu, int8_t *col)
{
    int32_t lo = relu ? zo : -128;
    if (groups == 1) {
        int n = cin * k;
        for (int o = 0; o < lout; o++) {
            int8_t *c = ep_column_at(col, n, o);
            int start = o * stride - pad;
            if (start >= 0 && start + k <= lin) {
                ep_gather(x + start, c, cin, lin, 1, 0, k);
            } else {
                for (int ci = 0; ci < cin; ci++)
                    for (int kk = 0; kk < k; kk++) {
                        int pos = start + kk;
                        c[ci * k + kk] = (pos >= 0 && pos < lin) ? x[ci * lin + pos] : (int8_t)zi;
                    }
            }
            ep_column_done(col, n, o, lout, y, cout, w, bias, m0, sh, zo, lo);
        }
        return;
    }
    int cig = cin / groups, cog = cout / groups;
    if (cig == 1 && col) {
        /* depthwise: each input row from its padded copy (see ep_pad_plane), the zero point
         * folded into the bias, no bounds check per tap */
        int copy = ep_dw_copies(pad > 0);
        for (int co = 0; co < cout; co++) {
            const int8_t *src = x + (co / cog) * lin, *wc = w + co * k;
            if (copy && co % cog == 0)
                ep_pad_plane(src, 1, lin, 0, pad, col, zi);
            const ep_px *row = (const ep_px *)(copy ? col : src);
            int32_t wsum = 0;
            for (int i = 0; i < k; i++)
                wsum += wc[i];
            int32_t inner = bias[co] - (zi + (copy ? EP_PX_FLIP : 0)) * wsum, mc = m0[co], sc = sh[co];
            int8_t *yr = y + co * lout;
            if (k == 3) {
                int32_t k0 = wc[0], k1 = wc[1], k2 = wc[2];
                for (int o = 0; o < lout; o++, row += stride)
                    yr[o] = ep_clamp(ep_requant(inner + row[0] * k0 + row[1] * k1 + row[2] * k2, mc, sc) + zo, lo);
            } else {
                for (int o = 0; o < lout; o++, row += stride) {
                    int32_t acc = inner;
                    for (int kk = 0; kk < k; kk++)
                        acc += (int32_t)row[kk] * wc[kk];
                    yr[o] = ep_clamp(ep_requant(acc, mc, sc) + zo, lo);
                }
            }
        }
        return;
    }
    for (int co = 0; co < cout; co++) {
        const int8_t *xg = x + (co / cog) * cig * lin;
        const int8_t *wc = w + co * cig * k;
        for (int o = 0; o < lout; o++) {
            int32_t acc = bias[co];
            int start = o * stride - pad;
            int k0 = start < 0 ? -start : 0, k1 = start + k > lin ? lin - start : k;
            for (int ci = 0; ci < cig; ci++) {
                const int8_t *xr = xg + ci * lin;
                const int8_t *wr = wc + ci * k;
                for (int kk = k0; kk < k1; kk++)
                    acc += ((int32_t)xr[start + kk] - zi) * (int32_t)wr[kk];
            }
            y[co * lout + o] = ep_clamp(ep_requant(acc, m0[co], sh[co]) + zo, lo);
        }
    }
}

/* the same with CSR weights: row co holds (column = ci * k + kk, value) pairs; acc is int32[lout] */
EP_KERNEL static void ep_conv1d_sparse(const int8_t *x, int cin, int lin, int8_t *y, int cout, int lout,
                             const int8_t *vals, const uint16_t *cols, const uint32_t *rows,
                             const int32_t *bias, const int32_t *m0, const int32_t *sh,
                             int k, int stride, int pad, int groups, int32_t zi, int32_t zo, int relu,
                             int32_t *acc)
{
    int cig = cin / groups, cog = cout / groups;
    for (int co = 0; co < cout; co++) {
        const int8_t *xg = x + (co / cog) * cig * lin;
        for (int o = 0; o < lout; o++)
            acc[o] = bias[co];
        for (uint32_t j = rows[co]; j < rows[co + 1]; j++) {
            int ci = cols[j] / k, kk = cols[j] % k;
            int32_t wv = vals[j];
            const int8_t *xr = xg + ci * lin;
            for (int o = 0; o < lout; o++) {
                int pos = o * stride - pad + kk;
                if (pos >= 0 && pos < lin)
                    acc[o] += ((int32_t)xr[pos] - zi) * wv;
            }
        }
        for (int o = 0; o < lout; o++)
            y[co * lout + o] = ep_clamp(ep_requant(acc[o], m0[co], sh[co]) + zo, relu ? zo : -128);
    }
}

/* one depthwise output plane from an input plane (row stride wp) that holds every window:
 * sum x w with the zero point folded into `inner`; 3x3 windows unrolled with the taps in
 * registers or on the stack, two outputs per step on ARMv6-M (each byte loaded serves both) */
EP_INLINE void ep_dw_plane(const ep_px *xp, int wp, int8_t *yr, int oh, int ow, int kh, int kw, int sy, int sx,
                           const int8_t *wc, int32_t inner, int32_t m0, int32_t sh, int32_t zo, int32_t lo)
{
    if (kh == 3 && kw == 3) {
        int32_t k0 = wc[0], k1 = wc[1], k2 = wc[2], k3 = wc[3], k4 = wc[4], k5 = wc[5], k6 = wc[6], k7 = wc[7],
                k8 = wc[8];
        for (int oy = 0; oy < oh; oy++, yr += ow) {
            const ep_px *r0 = xp + oy * sy * wp;
            int ox = 0;
#if defined(__ARM_ARCH_6M__)
            const int32_t kk[9] = {k0, k1, k2, k3, k4, k5, k6, k7, k8};
            for (; sx == 1 && ox + 2 <= ow; ox += 2, r0 += 2) {
                int32_t a[2] = {inner, inner};
                ep_dw3x3_pair_v6m(r0, wp, kk, a);
                yr[ox] = ep_clamp(ep_requant(a[0], m0, sh) + zo, lo);
                yr[ox + 1] = ep_clamp(ep_requant(a[1], m0, sh) + zo, lo);
            }
#endif
            for (; ox < ow; ox++, r0 += sx) {
                const ep_px *r1 = r0 + wp, *r2 = r1 + wp;
                int32_t acc = inner + r0[0] * k0 + r0[1] * k1 + r0[2] * k2 + r1[0] * k3 + r1[1] * k4 + r1[2] * k5
                            + r2[0] * k6 + r2[1] * k7 + r2[2] * k8;
                yr[ox] = ep_clamp(ep_requant(acc, m0, sh) + zo, lo);
            }
        }
        return;
    }
    for (int oy = 0; oy < oh; oy++, yr += ow)
        for (int ox = 0; ox < ow; ox++) {
            const ep_px *r = xp + oy * sy * wp + ox * sx;
            int32_t acc = inner;
            for (int ky = 0; ky < kh; ky++, r += wp)
                for (int kx = 0; kx < kw; kx++)
                    acc += (int32_t)r[kx] * wc[ky * kw + kx];
            yr[ox] = ep_clamp(ep_requant(acc, m0, sh) + zo, lo);
        }
}

EP_KERNEL static void ep_conv2d(const int8_t *x, int cin, int h, int wd, int8_t *y, int cout, int oh, int ow,
                      const int8_t *w, const int32_t *bias, const int32_t *m0, const int32_t *sh,
                      int kh, int kw, int sy, int sx, int py, int px, int groups, int32_t zi, int32_t zo,
                      int relu, int8_t *col)
{
    int32_t lo = relu ? zo : -128;
    if (groups == 1) {
        int n = cin * kh * kw, npos = oh * ow;
        for (int oy = 0; oy < oh; oy++) {
            for (int ox = 0; ox < ow; ox++) {
                int iy0 = oy * sy - py, ix0 = ox * sx - px, p = oy * ow + ox;
                int8_t *c = ep_column_at(col, n, p);
                if (iy0 >= 0 && iy0 + kh <= h && ix0 >= 0 && ix0 + kw <= wd) {
                    ep_gather(x + iy0 * wd + ix0, c, cin, h * wd, kh, wd, kw);
                } else {
                    for (int ci = 0; ci < cin; ci++)
                        for (int ky = 0; ky < kh; ky++) {
                            int iy = iy0 + ky;
                            for (int kx = 0; kx < kw; kx++, c++) {
                                int ix = ix0 + kx;
                                *c = (iy >= 0 && iy < h && ix >= 0 && ix < wd) ? x[(ci * h + iy) * wd + ix] : (int8_t)zi;
                            }
                        }
                }
                ep_column_done(col, n, p, npos, y, cout, w, bias, m0, sh, zo, lo);
            }
        }
        return;
    }
    int cig = cin / groups, cog = cout / groups, taps = kh * kw;
    if (cig == 1 && col) {
        /* depthwise: each input plane from its padded copy (see ep_pad_plane), so that every
         * window lies inside and none needs a bounds check */
        int wp = wd + 2 * px, copy = ep_dw_copies(py || px);
        for (int co = 0; co < cout; co++) {
            const int8_t *src = x + (co / cog) * h * wd, *wc = w + co * taps;
            if (copy && co % cog == 0)
                ep_pad_plane(src, h, wd, py, px, col, zi);
            int32_t wsum = 0;
            for (int i = 0; i < taps; i++)
                wsum += wc[i];
            ep_dw_plane((const ep_px *)(copy ? col : src), wp, y + co * oh * ow, oh, ow, kh, kw, sy, sx, wc,
                        bias[co] - (zi + (copy ? EP_PX_FLIP : 0)) * wsum, m0[co], sh[co], zo, lo);
        }
        return;
    }
    /* output columns whose window lies inside the input row: ox in [oxa, oxb) */
    int oxa = (px + sx - 1) / sx, oxb = wd - kw + px < 0 ? 0 : (wd - kw + px) / sx + 1;
    if (oxb > ow) oxb = ow;
    if (oxa > oxb) oxa = oxb;
    for (int co = 0; co < cout; co++) {
        const int8_t *xg = x + (co / cog) * cig * h * wd;
        const int8_t *wc = w + co * cig * taps;
        /* inside the input the zero point folds into the bias: sum (x - zi) w = sum x w - zi sum w */
        int32_t wsum = 0;
        for (int i = 0; i < cig * taps; i++)
            wsum += wc[i];
        int32_t inner = bias[co] - zi * wsum;
        for (int oy = 0; oy < oh; oy++) {
            int iy0 = oy * sy - py;
            int ky0 = iy0 < 0 ? -iy0 : 0, ky1 = iy0 + kh > h ? h - iy0 : kh;
            int8_t *yr = y + (co * oh + oy) * ow;
            for (int ox = 0; ox < ow; ox++) {
                int ix0 = ox * sx - px;
                if (ky0 == 0 && ky1 == kh && ox == oxa && oxa < oxb) {
                    /* the run of windows wholly inside the input */
                    const int8_t *xr = xg + iy0 * wd + ix0;
                    for (; ox < oxb; ox++, xr += sx) {
                        int32_t acc = inner;
                        for (int ci = 0; ci < cig; ci++)
                            for (int ky = 0; ky < kh; ky++) {
                                const int8_t *xq = xr + (ci * h + ky) * wd;
                                const int8_t *wq = wc + ci * taps + ky * kw;
                                for (int kx = 0; kx < kw; kx++)
                                    acc += (int32_t)xq[kx] * wq[kx];
                            }
                        yr[ox] = ep_clamp(ep_requant(acc, m0[co], sh[co]) + zo, lo);
                    }
                    ox--;
                    continue;
                }
                int kx0 = ix0 < 0 ? -ix0 : 0, kx1 = ix0 + kw > wd ? wd - ix0 : kw;
                int32_t acc = bias[co];
                for (int ci = 0; ci < cig; ci++) {
                    const int8_t *xp = xg + ci * h * wd;
                    const int8_t *wp = wc + ci * taps;
                    for (int ky = ky0; ky < ky1; ky++) {
                        const int8_t *xr = xp + (iy0 + ky) * wd + ix0;
                        const int8_t *wr = wp + ky * kw;
                        for (int kx = kx0; kx < kx1; kx++)
                            acc += ((int32_t)xr[kx] - zi) * (int32_t)wr[kx];
                    }
                }
                yr[ox] = ep_clamp(ep_requant(acc, m0[co], sh[co]) + zo, lo);
            }
        }
    }
}

EP_KERNEL static void ep_conv2d_sparse(const int8_t *x, int cin, int h, int wd, int8_t *y, int cout, int oh, int ow,
                             const int8_t *vals, const uint16_t *cols, const uint32_t *rows,
                             const int32_t *bias, const int32_t *m0, const int32_t *sh,
                             int kh, int kw, int sy, int sx, int py, int px, int groups, int32_t zi,
                             int32_t zo, int relu, int32_t *acc)
{
    int cig = cin / groups, cog = cout / groups;
    for (int co = 0; co < cout; co++) {
        const int8_t *xg = x + (co / cog) * cig * h * wd;
        for (int o = 0; o < oh * ow; o++)
            acc[o] = bias[co];
        for (uint32_t j = rows[co]; j < rows[co + 1]; j++) {
            int ci = cols[j] / (kh * kw), r = cols[j] % (kh * kw);
            int ky = r / kw, kx = r % kw;
            int32_t wv = vals[j];
            const int8_t *xp = xg + ci * h * wd;
            for (int oy = 0; oy < oh; oy++) {
                int iy = oy * sy - py + ky;
                if (iy < 0 || iy >= h) continue;
                for (int ox = 0; ox < ow; ox++) {
                    int ix = ox * sx - px + kx;
                    if (ix >= 0 && ix < wd)
                        acc[oy * ow + ox] += ((int32_t)xp[iy * wd + ix] - zi) * wv;
                }
            }
        }
        for (int o = 0; o < oh * ow; o++)
            y[co * oh * ow + o] = ep_clamp(ep_requant(acc[o], m0[co], sh[co]) + zo, relu ? zo : -128);
    }
}

/* bias with the zero point folded in (see above) */
EP_KERNEL static void ep_linear(const int8_t *x, int n, int8_t *y, int m, const int8_t *w, const int32_t *bias,
                      const int32_t *m0, const int32_t *sh, int32_t zi, int32_t zo, int relu)
{
    (void)zi;
    ep_column_out(x, n, y, 1, m, w, bias, m0, sh, zo, relu ? zo : -128);
}

EP_KERNEL static void ep_linear_sparse(const int8_t *x, int8_t *y, int m, const int8_t *vals, const uint16_t *cols,
                             const uint32_t *rows, const int32_t *bias, const int32_t *m0, const int32_t *sh,
                             int32_t zi, int32_t zo, int relu)
{
    for (int r = 0; r < m; r++) {
        int32_t acc = bias[r];
        for (uint32_t j = rows[r]; j < rows[r + 1]; j++)
            acc += ((int32_t)x[cols[j]] - zi) * (int32_t)vals[j];
        y[r] = ep_clamp(ep_requant(acc, m0[r], sh[r]) + zo, relu ? zo : -128);
    }
}

EP_KERNEL static void ep_relu(const int8_t *x, int8_t *y, int n, int32_t z)
{
    for (int i = 0; i < n; i++)
        y[i] = x[i] < z ? (int8_t)z : x[i];
}

/* max pooling with the window clipped to the input once per output (padding counts as -128,
 * below every value, so a clipped tap changes nothing) */
EP_KERNEL static void ep_maxpool1d(const int8_t *x, int c, int lin, int8_t *y, int lout, int k, int stride, int pad)
{
    for (int ch = 0; ch < c; ch++, x += lin, y += lout)
        for (int o = 0; o < lout; o++) {
            int start = o * stride - pad;
            int k0 = start < 0 ? -start : 0, k1 = start + k > lin ? lin - start : k;
            int32_t best = -128;
            for (int kk = k0; kk < k1; kk++)
                if (x[start + kk] > best)
                    best = x[start + kk];
            y[o] = (int8_t)best;
        }
}

EP_KERNEL static void ep_maxpool2d(const int8_t *x, int c, int h, int wd, int8_t *y, int oh, int ow,
                         int kh, int kw, int sy, int sx, int py, int px)
{
    for (int ch = 0; ch < c; ch++, x += h * wd)
        for (int oy = 0; oy < oh; oy++) {
            int iy0 = oy * sy - py;
            int ky0 = iy0 < 0 ? -iy0 : 0, ky1 = iy0 + kh > h ? h - iy0 : kh;
            for (int ox = 0; ox < ow; ox++, y++) {
                int ix0 = ox * sx - px;
                int kx0 = ix0 < 0 ? -ix0 : 0, kx1 = ix0 + kw > wd ? wd - ix0 : kw;
                int32_t best = -128;
                for (int ky = ky0; ky < ky1; ky++) {
                    const int8_t *r = x + (iy0 + ky) * wd + ix0;
                    for (int kx = kx0; kx < kx1; kx++)
                        if (r[kx] > best)
                            best = r[kx];
                }
                *y = (int8_t)best;
            }
        }
}

EP_KERNEL static void ep_gap(const int8_t *x, int c, int n, int8_t *y, int32_t zi, int32_t zo, int32_t m0, int32_t sh)
{
    for (int ch = 0; ch < c; ch++) {
        int32_t acc = 0;
        for (int i = 0; i < n; i++)
            acc += (int32_t)x[ch * n + i] - zi;
        y[ch] = ep_clamp(ep_requant(acc, m0, sh) + zo, -128);
    }
}

EP_KERNEL static void ep_add(const int8_t *a, const int8_t *b, int8_t *y, int n, int32_t za, int32_t zb, int32_t zo,
                   int32_t ma, int32_t sa, int32_t mb, int32_t sb, int relu)
{
    for (int i = 0; i < n; i++) {
        int32_t v = ep_requant((int32_t)a[i] - za, ma, sa) + ep_requant((int32_t)b[i] - zb, mb, sb) + zo;
        y[i] = ep_clamp(v, relu ? zo : -128);
    }
}

/* edgeprune int8 kernels: portable C99, no dynamic allocation, no floating point.
 * Activations are int8 with a per-tensor zero point; weights int8 per output channel;
 * accumulation in int32; rescaling by a 32-bit multiplier and a rounding right shift. */
#include <stdint.h>
#include <string.h>

/* The layer kernels are neither inlined nor specialised per call site: a model calls each with
 * many shapes, and a kernel's cost must not depend on how many layers share it (the stored
 * kernel costs, edgeprune.deploy.kernel_costs, are measured on one-layer models). */
#if defined(__GNUC__) && !defined(__clang__)
/* and their short copy loops (a kernel row of im2col) stay loops: as memcpy calls their cost
 * would depend on the buffers' alignment, i.e. on the model around them */
#define EP_KERNEL __attribute__((noinline, noclone, optimize("no-tree-loop-distribute-patterns")))
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
    /* no 32x32->64 multiply on ARMv6-M (gcc would call a 64x64 routine): four 16-bit partial
     * products, each exact in 32 bits as 2^30 <= m0 < 2^31 */
    uint32_t al = (uint32_t)acc & 0xffffu, ml = (uint32_t)m0 & 0xffffu;
    int32_t ah = acc >> 16, mh = m0 >> 16;
    uint32_t ll = al * ml;
    int32_t x1 = ah * (int32_t)ml, x2 = (int32_t)(al * (uint32_t)mh);
    uint32_t mid = (ll >> 16) + ((uint32_t)x1 & 0xffffu) + ((uint32_t)x2 & 0xffffu);
    int32_t hi = ah * mh + (x1 >> 16) + (x2 >> 16) + (int32_t)(mid >> 16);
    uint32_t lo = (mid << 16) | (ll & 0xffffu);
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
            int8_t *c = col + (o & 1) * n; /* positions in pairs: columns o and o + 1 side by side */
            int start = o * stride - pad;
            if (start >= 0 && start + k <= lin) {
                for (int ci = 0; ci < cin; ci++)
                    for (int kk = 0; kk < k; kk++)
                        c[ci * k + kk] = x[ci * lin + start + kk];
            } else {
                for (int ci = 0; ci < cin; ci++)
                    for (int kk = 0; kk < k; kk++) {
                        int pos = start + kk;
                        c[ci * k + kk] = (pos >= 0 && pos < lin) ? x[ci * lin + pos] : (int8_t)zi;
                    }
            }
            if (o & 1)
                ep_columns_out2(col, n, y + o - 1, y + o, lout, cout, w, bias, m0, sh, zo, lo);
            else if (o == lout - 1)
                ep_column_out(col, n, y + o, lout, cout, w, bias, m0, sh, zo, lo);
        }
        return;
    }
    int cig = cin / groups, cog = cout / groups;
    if (cig == 1 && (col || pad == 0)) {
        /* depthwise: each input row copied once into col with its padding (the zero point), the
         * zero point folded into the bias, no bounds check per tap */
        for (int co = 0; co < cout; co++) {
            const int8_t *row = x + (co / cog) * lin, *wc = w + co * k;
            if (pad) {
                if (co % cog == 0) {
                    memset(col, (int8_t)zi, (size_t)pad);
                    memcpy(col + pad, row, (size_t)lin);
                    memset(col + pad + lin, (int8_t)zi, (size_t)pad);
                }
                row = col;
            }
            int32_t wsum = 0;
            for (int i = 0; i < k; i++)
                wsum += wc[i];
            int32_t inner = bias[co] - zi * wsum, mc = m0[co], sc = sh[co];
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
 * registers or on the stack */
EP_INLINE void ep_dw_plane(const int8_t *xp, int wp, int8_t *yr, int oh, int ow, int kh, int kw, int sy, int sx,
                        const int8_t *wc, int32_t inner, int32_t m0, int32_t sh, int32_t zo, int32_t lo)
{
    if (kh == 3 && kw == 3) {
        int32_t k0 = wc[0], k1 = wc[1], k2 = wc[2], k3 = wc[3], k4 = wc[4], k5 = wc[5], k6 = wc[6], k7 = wc[7],
                k8 = wc[8];
        for (int oy = 0; oy < oh; oy++, yr += ow) {
            const int8_t *r0 = xp + oy * sy * wp;
            for (int ox = 0; ox < ow; ox++, r0 += sx) {
                const int8_t *r1 = r0 + wp, *r2 = r1 + wp;
                int32_t acc = inner + r0[0] * k0 + r0[1] * k1 + r0[2] * k2 + r1[0] * k3 + r1[1] * k4 + r1[2] * k5
                            + r2[0] * k6 + r2[1] * k7 + r2[2] * k8;
                yr[ox] = ep_clamp(ep_requant(acc, m0, sh) + zo, lo);
            }
        }
        return;
    }
    for (int oy = 0; oy < oh; oy++, yr += ow)
        for (int ox = 0; ox < ow; ox++) {
            const int8_t *r = xp + oy * sy * wp + ox * sx;
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
                int8_t *c = col + (p & 1) * n; /* positions in pairs, as in ep_conv1d */
                if (iy0 >= 0 && iy0 + kh <= h && ix0 >= 0 && ix0 + kw <= wd) {
                    for (int ci = 0; ci < cin; ci++)
                        for (int ky = 0; ky < kh; ky++, c += kw) {
                            const int8_t *r = x + (ci * h + iy0 + ky) * wd + ix0;
                            for (int kx = 0; kx < kw; kx++)
                                c[kx] = r[kx];
                        }
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
                if (p & 1)
                    ep_columns_out2(col, n, y + p - 1, y + p, npos, cout, w, bias, m0, sh, zo, lo);
                else if (p == npos - 1)
                    ep_column_out(col, n, y + p, npos, cout, w, bias, m0, sh, zo, lo);
            }
        }
        return;
    }
    int cig = cin / groups, cog = cout / groups, taps = kh * kw;
    if (cig == 1 && (col || (py == 0 && px == 0))) {
        /* depthwise: each input plane copied once into col with its padding (the zero point), so
         * every window lies inside and none needs a bounds check */
        int wp = wd + 2 * px;
        for (int co = 0; co < cout; co++) {
            const int8_t *xg = x + (co / cog) * h * wd, *wc = w + co * taps, *plane = xg;
            if (py || px) {
                if (co % cog == 0) {
                    memset(col, (int8_t)zi, (size_t)(py * wp + px));
                    for (int iy = 0; iy < h; iy++) {
                        int8_t *row = col + (py + iy) * wp + px;
                        memcpy(row, xg + iy * wd, (size_t)wd);
                        memset(row + wd, (int8_t)zi, (size_t)(iy + 1 < h ? 2 * px : px + py * wp));
                    }
                }
                plane = col;
            }
            int32_t wsum = 0;
            for (int i = 0; i < taps; i++)
                wsum += wc[i];
            ep_dw_plane(plane, wp, y + co * oh * ow, oh, ow, kh, kw, sy, sx, wc, bias[co] - zi * wsum, m0[co], sh[co],
                        zo, lo);
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

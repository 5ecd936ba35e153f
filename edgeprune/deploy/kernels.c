/* edgeprune int8 kernels: portable C99, no dynamic allocation, no floating point.
 * Activations are int8 with a per-tensor zero point; weights int8 per output channel;
 * accumulation in int32; rescaling by a 32-bit multiplier and a rounding right shift. */
#include <stdint.h>
#include <string.h>

static int32_t ep_requant(int32_t acc, int32_t m0, int32_t shift)
{
    /* floor((acc * m0 + 2^(shift-1)) / 2^shift), written so that it does not rely on the
     * implementation-defined right shift of negative numbers */
    int64_t p = (int64_t)acc * (int64_t)m0 + ((int64_t)1 << (shift - 1));
    if (p >= 0)
        return (int32_t)(p >> shift);
    return (int32_t)(-((-p + ((int64_t)1 << shift) - 1) >> shift));
}

static int8_t ep_clamp(int32_t v, int32_t lo)
{
    if (v < lo) v = lo;
    if (v > 127) v = 127;
    return (int8_t)v;
}

/* y[co][o] for a 1-D convolution, dense weights w[co][ci_in_group][k] */
static void ep_conv1d(const int8_t *x, int cin, int lin, int8_t *y, int cout, int lout,
                      const int8_t *w, const int32_t *bias, const int32_t *m0, const int32_t *sh,
                      int k, int stride, int pad, int groups, int32_t zi, int32_t zo, int relu)
{
    int cig = cin / groups, cog = cout / groups;
    for (int co = 0; co < cout; co++) {
        const int8_t *xg = x + (co / cog) * cig * lin;
        const int8_t *wc = w + co * cig * k;
        for (int o = 0; o < lout; o++) {
            int32_t acc = bias[co];
            int start = o * stride - pad;
            for (int ci = 0; ci < cig; ci++) {
                const int8_t *xr = xg + ci * lin;
                const int8_t *wr = wc + ci * k;
                for (int kk = 0; kk < k; kk++) {
                    int pos = start + kk;
                    if (pos >= 0 && pos < lin)
                        acc += ((int32_t)xr[pos] - zi) * (int32_t)wr[kk];
                }
            }
            y[co * lout + o] = ep_clamp(ep_requant(acc, m0[co], sh[co]) + zo, relu ? zo : -128);
        }
    }
}

/* the same with CSR weights: row co holds (column = ci * k + kk, value) pairs; acc is int32[lout] */
static void ep_conv1d_sparse(const int8_t *x, int cin, int lin, int8_t *y, int cout, int lout,
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

static void ep_conv2d(const int8_t *x, int cin, int h, int wd, int8_t *y, int cout, int oh, int ow,
                      const int8_t *w, const int32_t *bias, const int32_t *m0, const int32_t *sh,
                      int kh, int kw, int sy, int sx, int py, int px, int groups, int32_t zi, int32_t zo,
                      int relu)
{
    int cig = cin / groups, cog = cout / groups;
    for (int co = 0; co < cout; co++) {
        const int8_t *xg = x + (co / cog) * cig * h * wd;
        const int8_t *wc = w + co * cig * kh * kw;
        for (int oy = 0; oy < oh; oy++) {
            for (int ox = 0; ox < ow; ox++) {
                int32_t acc = bias[co];
                for (int ci = 0; ci < cig; ci++) {
                    const int8_t *xp = xg + ci * h * wd;
                    const int8_t *wp = wc + ci * kh * kw;
                    for (int ky = 0; ky < kh; ky++) {
                        int iy = oy * sy - py + ky;
                        if (iy < 0 || iy >= h) continue;
                        for (int kx = 0; kx < kw; kx++) {
                            int ix = ox * sx - px + kx;
                            if (ix >= 0 && ix < wd)
                                acc += ((int32_t)xp[iy * wd + ix] - zi) * (int32_t)wp[ky * kw + kx];
                        }
                    }
                }
                y[(co * oh + oy) * ow + ox] = ep_clamp(ep_requant(acc, m0[co], sh[co]) + zo, relu ? zo : -128);
            }
        }
    }
}

static void ep_conv2d_sparse(const int8_t *x, int cin, int h, int wd, int8_t *y, int cout, int oh, int ow,
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

static void ep_linear(const int8_t *x, int n, int8_t *y, int m, const int8_t *w, const int32_t *bias,
                      const int32_t *m0, const int32_t *sh, int32_t zi, int32_t zo, int relu)
{
    for (int r = 0; r < m; r++) {
        int32_t acc = bias[r];
        const int8_t *wr = w + r * n;
        for (int c = 0; c < n; c++)
            acc += ((int32_t)x[c] - zi) * (int32_t)wr[c];
        y[r] = ep_clamp(ep_requant(acc, m0[r], sh[r]) + zo, relu ? zo : -128);
    }
}

static void ep_linear_sparse(const int8_t *x, int8_t *y, int m, const int8_t *vals, const uint16_t *cols,
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

static void ep_relu(const int8_t *x, int8_t *y, int n, int32_t z)
{
    for (int i = 0; i < n; i++)
        y[i] = x[i] < z ? (int8_t)z : x[i];
}

static void ep_maxpool1d(const int8_t *x, int c, int lin, int8_t *y, int lout, int k, int stride, int pad)
{
    for (int ch = 0; ch < c; ch++)
        for (int o = 0; o < lout; o++) {
            int32_t best = -128;
            for (int kk = 0; kk < k; kk++) {
                int pos = o * stride - pad + kk;
                if (pos >= 0 && pos < lin && x[ch * lin + pos] > best)
                    best = x[ch * lin + pos];
            }
            y[ch * lout + o] = (int8_t)best;
        }
}

static void ep_maxpool2d(const int8_t *x, int c, int h, int wd, int8_t *y, int oh, int ow,
                         int kh, int kw, int sy, int sx, int py, int px)
{
    for (int ch = 0; ch < c; ch++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                int32_t best = -128;
                for (int ky = 0; ky < kh; ky++) {
                    int iy = oy * sy - py + ky;
                    if (iy < 0 || iy >= h) continue;
                    for (int kx = 0; kx < kw; kx++) {
                        int ix = ox * sx - px + kx;
                        if (ix >= 0 && ix < wd && x[(ch * h + iy) * wd + ix] > best)
                            best = x[(ch * h + iy) * wd + ix];
                    }
                }
                y[(ch * oh + oy) * ow + ox] = (int8_t)best;
            }
}

static void ep_gap(const int8_t *x, int c, int n, int8_t *y, int32_t zi, int32_t zo, int32_t m0, int32_t sh)
{
    for (int ch = 0; ch < c; ch++) {
        int32_t acc = 0;
        for (int i = 0; i < n; i++)
            acc += (int32_t)x[ch * n + i] - zi;
        y[ch] = ep_clamp(ep_requant(acc, m0, sh) + zo, -128);
    }
}

static void ep_add(const int8_t *a, const int8_t *b, int8_t *y, int n, int32_t za, int32_t zb, int32_t zo,
                   int32_t ma, int32_t sa, int32_t mb, int32_t sb, int relu)
{
    for (int i = 0; i < n; i++) {
        int32_t v = ep_requant((int32_t)a[i] - za, ma, sa) + ep_requant((int32_t)b[i] - zb, mb, sb) + zo;
        y[i] = ep_clamp(v, relu ? zo : -128);
    }
}

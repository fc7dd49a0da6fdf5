/* The LTC recurrence with the fused semi-implicit solver, forward and backward (float32).
 *
 * One call runs the whole sequence. Per step t and unfold u, for every batch row b and
 * neuron i (h = dt[t, b] / unfolds):
 *
 *   s_ji = sigmoid(sigma_ji (v_j - mu_ji))                     over the presynaptic j
 *   a_i  = a_leak_i + a_in[t, b, i] + sum_j s_ji we_ji         we = w * mask * erev
 *   g_i  = gleak_i  + b_in[t, b, i] + sum_j s_ji wm_ji         wm = w * mask
 *   v_i' = (cm_i v_i + h a_i) / (cm_i + h (g_i + eps))
 *
 * and the sensory terms a_in, b_in are the same sums over the inputs x[t, b, c] (once per
 * step). Synapses are stored by rows (CSR): row i lists its presynaptic columns, so a sparse
 * NCP wiring costs its synapse count, not N^2; a dense wiring is the full CSR. The parameters
 * of each synapse (we, wm, sigma, mu) are the values of its entry, in the same order.
 *
 * ln_ltc_fwd takes one sample at a time (the streaming step at a small batch);
 * ln_ltc_fwd_lanes and ln_ltc_bwd_lanes take LANES samples side by side (the training scan).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#else
static int omp_get_thread_num(void) { return 0; }
#endif

/* Whether the lane kernels split their blocks over threads themselves. They are built with
 * -fopenmp where the compiler allows; libgomp.so.1 then resolves to the copy PyTorch has
 * already loaded, so these threads are PyTorch's own OpenMP team. */
int ln_openmp(void) {
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

/* exp(x) written out so that the compiler inlines and vectorises it (a call to the vector
 * expf of libm per 8 lanes costs more than the arithmetic): x = n ln2 + r with |r| <= ln2/2,
 * exp(r) by a degree-7 polynomial (relative error ~1e-7), 2^n through the exponent bits. */
static inline float exp_(float x) {
    x = x < -87.f ? -87.f : (x > 87.f ? 87.f : x);
    float n = floorf(x * 1.44269504f + 0.5f);
    float r = x - n * 0.693359375f; /* ln2 split in two for an exact reduction */
    r = r + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static inline float sig_(float x) { return 1.f / (1.f + exp_(-x)); }

/* One block of synapses in CSR form, and per synapse the accumulators of lanes_bwd. */
typedef struct {
    long ncols;
    const long *row, *col;
    const float *we, *wm, *sig, *mu;
    const float *ea, *eb; /* lane kernels: -sig * log2(e) and sig * mu * log2(e) */
} Syn;
typedef struct {
    float *we, *wm, *sig, *mu;
} DSyn;

/* a_i = sum_k s_k we_k, g_i = sum_k s_k wm_k over row i, s_k = sigmoid(sig_k (v[col_k] - mu_k)). */
static inline void row_fwd(const Syn *y, long i, const float *v, float *a_out,
                           float *g_out) {
    long lo = y->row[i], hi = y->row[i + 1];
    const long *col = y->col;
    const float *sg = y->sig + lo, *mu = y->mu + lo, *we = y->we + lo, *wm = y->wm + lo;
    float a = 0.f, g = 0.f;
    if (hi - lo == y->ncols) { /* a full row: columns 0..ncols-1 in order, no gather */
#pragma omp simd reduction(+ : a, g)
        for (long k = 0; k < hi - lo; k++) {
            float s = sig_(sg[k] * (v[k] - mu[k]));
            a += s * we[k];
            g += s * wm[k];
        }
    } else {
#pragma omp simd reduction(+ : a, g)
        for (long k = 0; k < hi - lo; k++) {
            float s = sig_(sg[k] * (v[col[lo + k]] - mu[k]));
            a += s * we[k];
            g += s * wm[k];
        }
    }
    *a_out = a;
    *g_out = g;
}

#define SYN(p, n) {n, p##row, p##col, p##we, p##wm, p##sig, p##mu, 0, 0}
#define SYN_ARGS(p)                                                                          \
    const long *p##row, const long *p##col, const float *p##we, const float *p##wm,          \
        const float *p##sig, const float *p##mu

/* x: (T, B, C) mapped inputs; vs: (T, U, B, N) state before each unfold; out: (T, B, N)
 * state after each step. r*: recurrent synapses (N rows over N columns), s*: sensory
 * synapses (N rows over C columns). */
static void ln_ltc_fwd(long T, long B, long N, long C, long U, float eps, const float *x,
                const float *v0, const float *dt, const float *a_leak, const float *gleak,
                const float *cm, SYN_ARGS(r), SYN_ARGS(s), float *vs, float *out) {
    Syn rec = SYN(r, N), sen = SYN(s, C);
    float *ain = malloc(sizeof(float) * B * N), *bin = malloc(sizeof(float) * B * N);
    const float *v = v0;
    for (long t = 0; t < T; t++) {
        for (long b = 0; b < B; b++)
            for (long i = 0; i < N; i++)
                row_fwd(&sen, i, x + (t * B + b) * C, ain + b * N + i, bin + b * N + i);
        for (long u = 0; u < U; u++) {
            float *cur = vs + ((t * U + u) * B) * N;
            memcpy(cur, v, sizeof(float) * B * N);
            float *next = u + 1 < U ? vs + ((t * U + u + 1) * B) * N : out + t * B * N;
            for (long b = 0; b < B; b++) {
                const float *vb = cur + b * N;
                float h = dt[t * B + b] / (float)U;
                for (long i = 0; i < N; i++) {
                    float a, g;
                    row_fwd(&rec, i, vb, &a, &g);
                    a += a_leak[i] + ain[b * N + i];
                    g += gleak[i] + bin[b * N + i];
                    next[b * N + i] = (cm[i] * vb[i] + h * a) / (cm[i] + h * (g + eps));
                }
            }
            v = next;
        }
    }
    free(ain);
    free(bin);
}

/* ---- Batch lanes: the training scan ---------------------------------------------------
 * The kernels above vectorise over the synapses of one row, which suits one sample (the
 * streaming step) but pays a horizontal sum per row and reloads every synapse parameter for
 * every sample. For a batch, the kernels below put LANES samples side by side instead: a
 * state is stored neuron-major, v[j * LANES + l] for sample l, every synapse parameter is
 * loaded once for LANES samples, and the inner loops over l vectorise whatever the wiring
 * (a sparse row costs its synapses, with no gather). A batch that is not a multiple of LANES
 * is padded with lanes of zero input and state and dt = 1: their denominators stay positive
 * even where explicit constraints clip cm to 0, so they stay finite, and their zero output
 * gradient adds nothing to any gradient. They are never written back.
 */
#define LANES 16
#define HALF (LANES / 2)

long ln_ltc_lanes(void) { return LANES; }

/* sigmoid(x) = 1 / (1 + 2^y) with y = -x log2(e): the synapse computes y with one
 * multiply-add from the coefficients of with_exp2, and 2^y = 2^n 2^f with n = round(y),
 * |f| <= 1/2 and 2^f by a degree-5 polynomial (a least-squares fit of the relative error on
 * Chebyshev nodes; at most 2.2e-7 relative, evaluated in float32). This is shorter than sig_,
 * and the lane loops are bound by the length of this chain. */
static inline float sig2_(float y) {
    y = y < -126.f ? -126.f : (y > 126.f ? 126.f : y);
    float n = __builtin_rintf(y), f = y - n;
    float p = 1.3266970386e-03f;
    p = p * f + 9.6754597455e-03f;
    p = p * f + 5.5507426160e-02f;
    p = p * f + 2.4022121754e-01f;
    p = p * f + 6.9314694916e-01f;
    p = p * f + 1.0000000710e+00f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return 1.f / (1.f + p * scale);
}

/* Fill the coefficients of y = ea v + eb for the nnz synapses of y, in buf (2 nnz floats). */
static void with_exp2(Syn *y, long nnz, float *buf) {
    const float log2e = 1.44269504088896341f;
    for (long k = 0; k < nnz; k++) {
        buf[k] = -y->sig[k] * log2e;
        buf[nnz + k] = y->sig[k] * y->mu[k] * log2e;
    }
    y->ea = buf;
    y->eb = buf + nnz;
}

/* dst[j * LANES + l] = src[l * ld + j] for the n valid samples, 0 for the padding. */
static void pack(const float *src, long ld, long width, long n, float *dst) {
    for (long j = 0; j < width; j++)
        for (long l = 0; l < LANES; l++) dst[j * LANES + l] = l < n ? src[l * ld + j] : 0.f;
}

static void unpack_add(const float *src, long width, long n, float *dst, long ld) {
    for (long l = 0; l < n; l++)
        for (long j = 0; j < width; j++) dst[l * ld + j] += src[j * LANES + l];
}

/* a[l] = sum_k s_kl we_k, g[l] = sum_k s_kl wm_k over row i of y, for every lane. */
static inline void lanes_fwd(const Syn *y, long i, const float *v, float *a, float *g) {
    long lo = y->row[i], hi = y->row[i + 1];
    float acc_a[LANES] = {0}, acc_g[LANES] = {0};
    for (long k = lo; k < hi; k++) {
        const float *vj = v + y->col[k] * LANES;
        float ea = y->ea[k], eb = y->eb[k], we = y->we[k], wm = y->wm[k];
#pragma omp simd
        for (long l = 0; l < LANES; l++) {
            float s = sig2_(ea * vj[l] + eb);
            acc_a[l] += s * we;
            acc_g[l] += s * wm;
        }
    }
    for (long l = 0; l < LANES; l++) {
        a[l] = acc_a[l];
        g[l] = acc_g[l];
    }
}

/* The backward of lanes_fwd for da[l] = d a[l], dg[l] = d g[l]. It recomputes s (the forward
 * kept the row sums, not the B x N x N sigmoids), adds dv[col * LANES + l], and per synapse
 * the sums over the lanes of da s, dg s, dpre v and dpre, lanes l and l + HALF folded into one
 * accumulator. finish_syn turns the last two into the gradients of sigma and mu:
 * d sigma = sum dpre (v - mu), d mu = -sigma sum dpre. */
static inline void lanes_bwd(const Syn *y, const DSyn *acc, long i, const float *v,
                             const float *da, const float *dg, float *dv) {
    long lo = y->row[i], hi = y->row[i + 1];
    for (long k = lo; k < hi; k++) {
        long j = y->col[k];
        const float *vj = v + j * LANES;
        float *dvj = dv + j * LANES;
        float ea = y->ea[k], eb = y->eb[k], sg = y->sig[k], we = y->we[k], wm = y->wm[k];
        float *awe = acc->we + k * HALF, *awm = acc->wm + k * HALF;
        float *apv = acc->sig + k * HALF, *ap = acc->mu + k * HALF;
#pragma omp simd
        for (long l = 0; l < HALF; l++) {
            float v0 = vj[l], v1 = vj[l + HALF];
            float s0 = sig2_(ea * v0 + eb), s1 = sig2_(ea * v1 + eb);
            float p0 = (da[l] * we + dg[l] * wm) * s0 * (1.f - s0);
            float p1 = (da[l + HALF] * we + dg[l + HALF] * wm) * s1 * (1.f - s1);
            dvj[l] += p0 * sg;
            dvj[l + HALF] += p1 * sg;
            awe[l] += da[l] * s0 + da[l + HALF] * s1;
            awm[l] += dg[l] * s0 + dg[l + HALF] * s1;
            apv[l] += p0 * v0 + p1 * v1;
            ap[l] += p0 + p1;
        }
    }
}

static float lane_sum(const float *acc, long width) {
    float sum = 0.f;
    for (long l = 0; l < width; l++) sum += acc[l];
    return sum;
}

/* Add the lane sums of lanes_bwd's accumulators to the gradients of the nnz synapses. */
static void finish_syn(const Syn *y, const DSyn *acc, long nnz, float *dwe, float *dwm,
                       float *dsig, float *dmu) {
    for (long k = 0; k < nnz; k++) {
        float pv = lane_sum(acc->sig + k * HALF, HALF), p = lane_sum(acc->mu + k * HALF, HALF);
        dwe[k] += lane_sum(acc->we + k * HALF, HALF);
        dwm[k] += lane_sum(acc->wm + k * HALF, HALF);
        dsig[k] += pv - y->mu[k] * p;
        dmu[k] -= y->sig[k] * p;
    }
}

/* As ln_ltc_fwd, with vs laid out (T, U, ceil(B / LANES), N, LANES). sums, unless NULL,
 * receives beside every saved state the full a_i and g_i + eps of the unfold (the same
 * layout, a then g), so that the backward needs no second pass over the synapses. The blocks
 * of LANES samples are independent: with OpenMP they are shared among `threads` threads. */
void ln_ltc_fwd_lanes(long T, long B, long N, long C, long U, float eps, const float *x,
                      const float *v0, const float *dt, const float *a_leak, const float *gleak,
                      const float *cm, SYN_ARGS(r), SYN_ARGS(s), float *vs, float *sums,
                      float *out, long threads) {
    Syn rec = SYN(r, N), sen = SYN(s, C);
    long nblk = (B + LANES - 1) / LANES, NL = N * LANES;
    float *coef = malloc(sizeof(float) * 2 * (rrow[N] + srow[N]));
    with_exp2(&rec, rrow[N], coef);
    with_exp2(&sen, srow[N], coef + 2 * rrow[N]);
#pragma omp parallel num_threads(threads) if (threads > 1 && nblk > 1)
    {
        float *xl = malloc(sizeof(float) * C * LANES), *v = malloc(sizeof(float) * NL);
        float *ain = malloc(sizeof(float) * NL), *bin = malloc(sizeof(float) * NL);
        float a[LANES], g[LANES], h[LANES];
#pragma omp for schedule(static)
        for (long blk = 0; blk < nblk; blk++) {
            long b0 = blk * LANES, n = B - b0 < LANES ? B - b0 : LANES;
            pack(v0 + b0 * N, N, N, n, v);
            for (long t = 0; t < T; t++) {
                pack(x + (t * B + b0) * C, C, C, n, xl);
                for (long i = 0; i < N; i++)
                    lanes_fwd(&sen, i, xl, ain + i * LANES, bin + i * LANES);
                for (long l = 0; l < LANES; l++)
                    h[l] = (l < n ? dt[t * B + b0 + l] : 1.f) / (float)U;
                for (long u = 0; u < U; u++) {
                    long at = (t * U + u) * nblk + blk;
                    float *cur = vs + at * NL, *sa = sums ? sums + 2 * at * NL : 0;
                    memcpy(cur, v, sizeof(float) * NL);
                    for (long i = 0; i < N; i++) {
                        lanes_fwd(&rec, i, cur, a, g);
                        long o = i * LANES;
                        float al = a_leak[i], gl = gleak[i] + eps, c = cm[i];
#pragma omp simd
                        for (long l = 0; l < LANES; l++) {
                            a[l] += al + ain[o + l];
                            g[l] += gl + bin[o + l];
                            v[o + l] = (c * cur[o + l] + h[l] * a[l]) / (c + h[l] * g[l]);
                        }
                        if (sa) {
                            memcpy(sa + o, a, sizeof a);
                            memcpy(sa + NL + o, g, sizeof g);
                        }
                    }
                }
                float *o = out + (t * B + b0) * N;
                for (long l = 0; l < n; l++)
                    for (long j = 0; j < N; j++) o[l * N + j] = v[j * LANES + l];
            }
        }
        free(xl);
        free(v);
        free(ain);
        free(bin);
    }
    free(coef);
}

static float *zeros(long n) { return calloc(n, sizeof(float)); }

/* Gradients, accumulated (+=) into the d* outputs, which the caller zeroes. dout: (T, B, N)
 * gradient of every step's output state; dv0 receives the gradient of the initial state; vs
 * and sums as ln_ltc_fwd_lanes wrote them. */
void ln_ltc_bwd_lanes(long T, long B, long N, long C, long U, float eps, const float *x,
                      const float *dt, const float *a_leak, const float *gleak, const float *cm,
                      SYN_ARGS(r), SYN_ARGS(s), const float *vs, const float *sums,
                      const float *out, const float *dout, float *dv0, float *dx, float *ddt,
                      float *da_leak, float *dgleak, float *dcm, float *drwe, float *drwm,
                      float *drsig, float *drmu, float *dswe, float *dswm, float *dssig,
                      float *dsmu, long threads) {
    (void)eps; /* inside the saved g */
    Syn rec = SYN(r, N), sen = SYN(s, C);
    long nblk = (B + LANES - 1) / LANES, NL = N * LANES, CL = C * LANES;
    long nr = rrow[N], ns = srow[N];
    float *coef = malloc(sizeof(float) * 2 * (nr + ns));
    with_exp2(&rec, nr, coef);
    with_exp2(&sen, ns, coef + 2 * nr);
    /* one set of accumulators per thread, added to the outputs after the parallel part */
    long nt = ln_openmp() && threads > 1 && nblk > 1 ? threads : 1;
    long per = 4 * (nr + ns) * HALF + 3 * NL;
    float *accs = zeros(nt * per);
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        float *racc = accs + omp_get_thread_num() * per, *sacc = racc + 4 * nr * HALF;
        float *nacc = sacc + 4 * ns * HALF; /* a_leak, gleak, cm */
        DSyn dr = {racc, racc + nr * HALF, racc + 2 * nr * HALF, racc + 3 * nr * HALF};
        DSyn ds = {sacc, sacc + ns * HALF, sacc + 2 * ns * HALF, sacc + 3 * ns * HALF};
        float *xl = malloc(sizeof(float) * CL), *dxl = malloc(sizeof(float) * CL);
        float *dain = malloc(sizeof(float) * NL), *dbin = malloc(sizeof(float) * NL);
        float *g_next = malloc(sizeof(float) * NL), *g_prev = malloc(sizeof(float) * NL);
        float *v_out = malloc(sizeof(float) * NL);
        float h[LANES], dh[LANES], da[LANES], dg[LANES];
#pragma omp for schedule(static)
        for (long blk = 0; blk < nblk; blk++) {
            long b0 = blk * LANES, n = B - b0 < LANES ? B - b0 : LANES;
            memset(g_next, 0, sizeof(float) * NL);
            for (long t = T - 1; t >= 0; t--) {
                memset(dain, 0, sizeof(float) * NL);
                memset(dbin, 0, sizeof(float) * NL);
                pack(dout + (t * B + b0) * N, N, N, n, g_prev);
                for (long k = 0; k < NL; k++) g_next[k] += g_prev[k];
                pack(out + (t * B + b0) * N, N, N, n, v_out);
                for (long l = 0; l < LANES; l++) {
                    h[l] = (l < n ? dt[t * B + b0 + l] : 1.f) / (float)U;
                    dh[l] = 0.f;
                }
                for (long u = U - 1; u >= 0; u--) {
                    long at = (t * U + u) * nblk + blk;
                    const float *cur = vs + at * NL, *sa = sums + 2 * at * NL, *sg = sa + NL;
                    const float *next = u + 1 < U ? cur + nblk * NL : v_out;
                    memset(g_prev, 0, sizeof(float) * NL);
                    for (long i = 0; i < N; i++) {
                        long o = i * LANES;
                        float c = cm[i];
#pragma omp simd
                        for (long l = 0; l < LANES; l++) {
                            float den = c + h[l] * sg[o + l], gy = g_next[o + l];
                            float dnum = gy / den, dden = -gy * next[o + l] / den;
                            da[l] = dnum * h[l];
                            dg[l] = dden * h[l];
                            g_prev[o + l] += dnum * c;
                            nacc[2 * NL + o + l] += dnum * cur[o + l] + dden;
                            dh[l] += dnum * sa[o + l] + dden * sg[o + l];
                            dain[o + l] += da[l];
                            dbin[o + l] += dg[l];
                            nacc[o + l] += da[l];
                            nacc[NL + o + l] += dg[l];
                        }
                        lanes_bwd(&rec, &dr, i, cur, da, dg, g_prev);
                    }
                    float *swap = g_next;
                    g_next = g_prev;
                    g_prev = swap;
                }
                for (long l = 0; l < n; l++) ddt[t * B + b0 + l] += dh[l] / (float)U;
                pack(x + (t * B + b0) * C, C, C, n, xl);
                memset(dxl, 0, sizeof(float) * CL);
                for (long i = 0; i < N; i++)
                    lanes_bwd(&sen, &ds, i, xl, dain + i * LANES, dbin + i * LANES, dxl);
                unpack_add(dxl, C, n, dx + (t * B + b0) * C, C);
            }
            unpack_add(g_next, N, n, dv0 + b0 * N, N);
        }
        free(xl);
        free(dxl);
        free(dain);
        free(dbin);
        free(g_next);
        free(g_prev);
        free(v_out);
    }
    for (long k = 0; k < nt; k++) {
        float *racc = accs + k * per, *sacc = racc + 4 * nr * HALF, *nacc = sacc + 4 * ns * HALF;
        DSyn dr = {racc, racc + nr * HALF, racc + 2 * nr * HALF, racc + 3 * nr * HALF};
        DSyn ds = {sacc, sacc + ns * HALF, sacc + 2 * ns * HALF, sacc + 3 * ns * HALF};
        finish_syn(&rec, &dr, nr, drwe, drwm, drsig, drmu);
        finish_syn(&sen, &ds, ns, dswe, dswm, dssig, dsmu);
        for (long i = 0; i < N; i++) {
            da_leak[i] += lane_sum(nacc + i * LANES, LANES);
            dgleak[i] += lane_sum(nacc + NL + i * LANES, LANES);
            dcm[i] += lane_sum(nacc + 2 * NL + i * LANES, LANES);
        }
    }
    free(accs);
    free(coef);
}

/* One streaming step, the LTC cell's input and output mappings included, in one call: x (B, C)
 * raw inputs, mapped as x in_w + in_b (either NULL: no scale, no shift); the elapsed time is
 * dts[b], or dt for every sample when dts is NULL; out (B, N) the new state; y (B, M) the
 * motor neurons (the first M) mapped the same way by out_w, out_b. A batch of LANES / 2 or
 * more runs in the lane layout, the rest sample by sample. */
void ln_ltc_step(long B, long N, long C, long U, float eps, const float *x, const float *in_w,
                 const float *in_b, const float *v0, float dt, const float *dts,
                 const float *a_leak, const float *gleak, const float *cm, SYN_ARGS(r),
                 SYN_ARGS(s), long M, const float *out_w, const float *out_b, float *out,
                 float *y, long threads) {
    long rows = (B + LANES - 1) / LANES * LANES;
    float *xm = malloc(sizeof(float) * (B * C + B + U * rows * N));
    float *dtb = xm + B * C, *vs = dtb + B;
    for (long b = 0; b < B; b++) {
        for (long c = 0; c < C; c++) {
            float v = x[b * C + c];
            xm[b * C + c] = (in_w ? v * in_w[c] : v) + (in_b ? in_b[c] : 0.f);
        }
        dtb[b] = dts ? dts[b] : dt;
    }
    if (2 * B >= LANES)
        ln_ltc_fwd_lanes(1, B, N, C, U, eps, xm, v0, dtb, a_leak, gleak, cm, rrow, rcol, rwe,
                         rwm, rsig, rmu, srow, scol, swe, swm, ssig, smu, vs, 0, out, threads);
    else
        ln_ltc_fwd(1, B, N, C, U, eps, xm, v0, dtb, a_leak, gleak, cm, rrow, rcol, rwe, rwm,
                   rsig, rmu, srow, scol, swe, swm, ssig, smu, vs, out);
    for (long b = 0; b < B; b++)
        for (long m = 0; m < M; m++) {
            float v = out[b * N + m];
            y[b * M + m] = (out_w ? v * out_w[m] : v) + (out_b ? out_b[m] : 0.f);
        }
    free(xm);
}

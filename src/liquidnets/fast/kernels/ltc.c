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
 * of each synapse (we, wm, sigma, mu) are the values of its entry, in the same order. The
 * backward recomputes s from the saved states (B x N per unfold) instead of storing B x N x N
 * values per unfold.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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

/* One block of synapses in CSR form, and the gradients of its per-synapse values. */
typedef struct {
    long ncols;
    const long *row, *col;
    const float *we, *wm, *sig, *mu;
} Syn;
typedef struct {
    float *we, *wm, *sig, *mu;
} DSyn;

/* a_i = sum_k s_k we_k, g_i = sum_k s_k wm_k over row i, s_k = sigmoid(sig_k (v[col_k] - mu_k));
 * the s_k are kept in s_row for the backward. */
static inline void row_fwd(const Syn *y, long i, const float *v, float *s_row, float *a_out,
                           float *g_out) {
    long lo = y->row[i], hi = y->row[i + 1];
    const long *col = y->col;
    const float *sg = y->sig + lo, *mu = y->mu + lo, *we = y->we + lo, *wm = y->wm + lo;
    float a = 0.f, g = 0.f;
    if (hi - lo == y->ncols) { /* a full row: columns 0..ncols-1 in order, no gather */
#pragma omp simd reduction(+ : a, g)
        for (long k = 0; k < hi - lo; k++) {
            float s = sig_(sg[k] * (v[k] - mu[k]));
            if (s_row) s_row[k] = s;
            a += s * we[k];
            g += s * wm[k];
        }
    } else {
#pragma omp simd reduction(+ : a, g)
        for (long k = 0; k < hi - lo; k++) {
            float s = sig_(sg[k] * (v[col[lo + k]] - mu[k]));
            if (s_row) s_row[k] = s;
            a += s * we[k];
            g += s * wm[k];
        }
    }
    *a_out = a;
    *g_out = g;
}

/* Backward of row_fwd for da = d a_i, dg = d g_i: parameter gradients and dv += ... */
static inline void row_bwd(const Syn *y, const DSyn *d, long i, const float *v,
                           const float *s_row, float da, float dg, float *dv) {
    long lo = y->row[i], hi = y->row[i + 1], n = hi - lo;
    const long *col = y->col + lo;
    const float *sg = y->sig + lo, *mu = y->mu + lo, *we = y->we + lo, *wm = y->wm + lo;
    float *dwe = d->we + lo, *dwm = d->wm + lo, *dsg = d->sig + lo, *dmu = d->mu + lo;
    if (n == y->ncols) { /* a full row: v and dv indexed directly */
#pragma omp simd
        for (long k = 0; k < n; k++) {
            float s = s_row[k];
            dwe[k] += da * s;
            dwm[k] += dg * s;
            float dpre = (da * we[k] + dg * wm[k]) * s * (1.f - s);
            dsg[k] += dpre * (v[k] - mu[k]);
            dmu[k] -= dpre * sg[k];
            dv[k] += dpre * sg[k];
        }
        return;
    }
    for (long k = 0; k < n; k++) {
        float s = s_row[k];
        dwe[k] += da * s;
        dwm[k] += dg * s;
        float dpre = (da * we[k] + dg * wm[k]) * s * (1.f - s);
        dsg[k] += dpre * (v[col[k]] - mu[k]);
        dmu[k] -= dpre * sg[k];
        dv[col[k]] += dpre * sg[k];
    }
}

#define SYN(p, n) {n, p##row, p##col, p##we, p##wm, p##sig, p##mu}
#define SYN_ARGS(p)                                                                          \
    const long *p##row, const long *p##col, const float *p##we, const float *p##wm,          \
        const float *p##sig, const float *p##mu

/* x: (T, B, C) mapped inputs; vs: (T, U, B, N) state before each unfold; out: (T, B, N)
 * state after each step. r*: recurrent synapses (N rows over N columns), s*: sensory
 * synapses (N rows over C columns). */
void ln_ltc_fwd(long T, long B, long N, long C, long U, float eps, const float *x,
                const float *v0, const float *dt, const float *a_leak, const float *gleak,
                const float *cm, SYN_ARGS(r), SYN_ARGS(s), float *vs, float *out) {
    Syn rec = SYN(r, N), sen = SYN(s, C);
    float *ain = malloc(sizeof(float) * B * N), *bin = malloc(sizeof(float) * B * N);
    const float *v = v0;
    for (long t = 0; t < T; t++) {
        for (long b = 0; b < B; b++)
            for (long i = 0; i < N; i++)
                row_fwd(&sen, i, x + (t * B + b) * C, 0, ain + b * N + i, bin + b * N + i);
        for (long u = 0; u < U; u++) {
            float *cur = vs + ((t * U + u) * B) * N;
            memcpy(cur, v, sizeof(float) * B * N);
            float *next = u + 1 < U ? vs + ((t * U + u + 1) * B) * N : out + t * B * N;
            for (long b = 0; b < B; b++) {
                const float *vb = cur + b * N;
                float h = dt[t * B + b] / (float)U;
                for (long i = 0; i < N; i++) {
                    float a, g;
                    row_fwd(&rec, i, vb, 0, &a, &g);
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

/* Gradients, accumulated (+=) into the d* outputs, which the caller zeroes. dout: (T, B, N)
 * gradient of every step's output state; dv0 receives the gradient of the initial state. */
void ln_ltc_bwd(long T, long B, long N, long C, long U, float eps, const float *x,
                const float *dt, const float *a_leak, const float *gleak, const float *cm,
                SYN_ARGS(r), SYN_ARGS(s), const float *vs, const float *out, const float *dout,
                float *dv0, float *dx, float *ddt, float *da_leak, float *dgleak, float *dcm,
                float *drwe, float *drwm, float *drsig, float *drmu, float *dswe, float *dswm,
                float *dssig, float *dsmu) {
    Syn rec = SYN(r, N), sen = SYN(s, C);
    DSyn drec = {drwe, drwm, drsig, drmu}, dsen = {dswe, dswm, dssig, dsmu};
    long width = N > C ? N : C;
    float *g_next = calloc(B * N, sizeof(float)); /* d loss / d state after current unfold */
    float *g_prev = calloc(B * N, sizeof(float));
    float *ain = malloc(sizeof(float) * B * N), *bin = malloc(sizeof(float) * B * N);
    float *dain = malloc(sizeof(float) * B * N), *dbin = malloc(sizeof(float) * B * N);
    float *s_row = malloc(sizeof(float) * width);
    for (long t = T - 1; t >= 0; t--) {
        const float *xt = x + t * B * C;
        for (long b = 0; b < B; b++)
            for (long i = 0; i < N; i++)
                row_fwd(&sen, i, xt + b * C, 0, ain + b * N + i, bin + b * N + i);
        memset(dain, 0, sizeof(float) * B * N);
        memset(dbin, 0, sizeof(float) * B * N);
        for (long k = 0; k < B * N; k++) g_next[k] += dout[t * B * N + k];
        for (long u = U - 1; u >= 0; u--) {
            const float *cur = vs + ((t * U + u) * B) * N;
            const float *next = u + 1 < U ? vs + ((t * U + u + 1) * B) * N : out + t * B * N;
            memset(g_prev, 0, sizeof(float) * B * N);
            for (long b = 0; b < B; b++) {
                const float *vb = cur + b * N;
                float h = dt[t * B + b] / (float)U;
                float dh = 0.f;
                for (long i = 0; i < N; i++) {
                    float a, g;
                    row_fwd(&rec, i, vb, s_row, &a, &g);
                    a += a_leak[i] + ain[b * N + i];
                    g += gleak[i] + bin[b * N + i];
                    float den = cm[i] + h * (g + eps);
                    float gy = g_next[b * N + i];
                    float dnum = gy / den;
                    float dden = -gy * next[b * N + i] / den;
                    float da = dnum * h, dg = dden * h;
                    g_prev[b * N + i] += dnum * cm[i];
                    dcm[i] += dnum * vb[i] + dden;
                    dh += dnum * a + dden * (g + eps);
                    dain[b * N + i] += da;
                    dbin[b * N + i] += dg;
                    da_leak[i] += da;
                    dgleak[i] += dg;
                    row_bwd(&rec, &drec, i, vb, s_row, da, dg, g_prev + b * N);
                }
                ddt[t * B + b] += dh / (float)U;
            }
            float *swap = g_next;
            g_next = g_prev;
            g_prev = swap;
        }
        for (long b = 0; b < B; b++) {
            for (long i = 0; i < N; i++) {
                float a, g;
                row_fwd(&sen, i, xt + b * C, s_row, &a, &g);
                row_bwd(&sen, &dsen, i, xt + b * C, s_row, dain[b * N + i], dbin[b * N + i],
                        dx + (t * B + b) * C);
            }
        }
    }
    memcpy(dv0, g_next, sizeof(float) * B * N);
    free(g_next);
    free(g_prev);
    free(ain);
    free(bin);
    free(dain);
    free(dbin);
    free(s_row);
}

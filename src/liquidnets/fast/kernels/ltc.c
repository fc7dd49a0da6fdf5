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
 * The sensory terms a_in, b_in depend only on the input, so PyTorch computes them for all
 * steps at once. Synapse matrices are passed transposed, [i][j], so that the inner loop over j
 * reads contiguous memory and vectorises. The backward recomputes s from the saved states
 * (B x N per unfold) instead of storing B x N x N values per unfold.
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

/* The sensory synapses of one step: ain[b, i] = sum_c s_ci swe_ci, bin[b, i] = sum_c s_ci swm_ci
 * with s_ci = sigmoid(ssig_ci (x[b, c] - smu_ci)); matrices transposed, [i][c]. */
static void sensory_fwd(long B, long N, long C, const float *x, const float *sweT,
                        const float *swmT, const float *ssigT, const float *smuT, float *ain,
                        float *bin) {
    for (long b = 0; b < B; b++) {
        const float *xb = x + b * C;
        for (long i = 0; i < N; i++) {
            const float *sg = ssigT + i * C, *m = smuT + i * C;
            const float *we = sweT + i * C, *wm = swmT + i * C;
            float a = 0.f, g = 0.f;
#pragma omp simd reduction(+ : a, g)
            for (long c = 0; c < C; c++) {
                float s = sig_(sg[c] * (xb[c] - m[c]));
                a += s * we[c];
                g += s * wm[c];
            }
            ain[b * N + i] = a;
            bin[b * N + i] = g;
        }
    }
}

static void sensory_bwd(long B, long N, long C, const float *x, const float *sweT,
                        const float *swmT, const float *ssigT, const float *smuT,
                        const float *dain, const float *dbin, float *dx, float *dsweT,
                        float *dswmT, float *dssigT, float *dsmuT) {
    for (long b = 0; b < B; b++) {
        const float *xb = x + b * C;
        float *dxb = dx + b * C;
        for (long i = 0; i < N; i++) {
            const float *sg = ssigT + i * C, *m = smuT + i * C;
            const float *we = sweT + i * C, *wm = swmT + i * C;
            float da = dain[b * N + i], dg = dbin[b * N + i];
            float *dwe = dsweT + i * C, *dwm = dswmT + i * C;
            float *dsg = dssigT + i * C, *dm = dsmuT + i * C;
#pragma omp simd
            for (long c = 0; c < C; c++) {
                float s = sig_(sg[c] * (xb[c] - m[c]));
                dwe[c] += da * s;
                dwm[c] += dg * s;
                float dpre = (da * we[c] + dg * wm[c]) * s * (1.f - s);
                dsg[c] += dpre * (xb[c] - m[c]);
                dm[c] -= dpre * sg[c];
                dxb[c] += dpre * sg[c];
            }
        }
    }
}

/* x: (T, B, C) mapped inputs; vs: (T, U, B, N) state before each unfold; out: (T, B, N)
 * state after each step. */
void ln_ltc_fwd(long T, long B, long N, long C, long U, float eps, const float *x,
                const float *v0, const float *dt, const float *a_leak, const float *gleak,
                const float *cm, const float *weT, const float *wmT, const float *sigmaT,
                const float *muT, const float *sweT, const float *swmT, const float *ssigT,
                const float *smuT, float *vs, float *out) {
    float *ain = malloc(sizeof(float) * B * N), *bin = malloc(sizeof(float) * B * N);
    const float *v = v0;
    for (long t = 0; t < T; t++) {
        sensory_fwd(B, N, C, x + t * B * C, sweT, swmT, ssigT, smuT, ain, bin);
        for (long u = 0; u < U; u++) {
            float *cur = vs + ((t * U + u) * B) * N;
            memcpy(cur, v, sizeof(float) * B * N);
            float *next = u + 1 < U ? vs + ((t * U + u + 1) * B) * N : out + t * B * N;
            for (long b = 0; b < B; b++) {
                const float *vb = cur + b * N;
                float h = dt[t * B + b] / (float)U;
                for (long i = 0; i < N; i++) {
                    const float *sg = sigmaT + i * N, *m = muT + i * N;
                    const float *we = weT + i * N, *wm = wmT + i * N;
                    float a = 0.f, g = 0.f;
#pragma omp simd reduction(+ : a, g)
                    for (long j = 0; j < N; j++) {
                        float s = sig_(sg[j] * (vb[j] - m[j]));
                        a += s * we[j];
                        g += s * wm[j];
                    }
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
                const float *weT, const float *wmT, const float *sigmaT, const float *muT,
                const float *sweT, const float *swmT, const float *ssigT, const float *smuT,
                const float *vs, const float *out, const float *dout, float *dv0, float *dx,
                float *ddt, float *da_leak, float *dgleak, float *dcm, float *dweT,
                float *dwmT, float *dsigmaT, float *dmuT, float *dsweT, float *dswmT,
                float *dssigT, float *dsmuT) {
    float *g_next = calloc(B * N, sizeof(float)); /* d loss / d state after current unfold */
    float *g_prev = calloc(B * N, sizeof(float));
    float *ain = malloc(sizeof(float) * B * N), *bin = malloc(sizeof(float) * B * N);
    float *dain = malloc(sizeof(float) * B * N), *dbin = malloc(sizeof(float) * B * N);
    float *s_row = malloc(sizeof(float) * N);
    for (long t = T - 1; t >= 0; t--) {
        const float *xt = x + t * B * C;
        sensory_fwd(B, N, C, xt, sweT, swmT, ssigT, smuT, ain, bin);
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
                    const float *sg = sigmaT + i * N, *m = muT + i * N;
                    const float *we = weT + i * N, *wm = wmT + i * N;
                    float a = 0.f, g = 0.f;
#pragma omp simd reduction(+ : a, g)
                    for (long j = 0; j < N; j++) {
                        float s = sig_(sg[j] * (vb[j] - m[j]));
                        s_row[j] = s;
                        a += s * we[j];
                        g += s * wm[j];
                    }
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
                    float *dwe = dweT + i * N, *dwm = dwmT + i * N;
                    float *dsg = dsigmaT + i * N, *dm = dmuT + i * N;
                    float *gp = g_prev + b * N;
#pragma omp simd
                    for (long j = 0; j < N; j++) {
                        float s = s_row[j];
                        dwe[j] += da * s;
                        dwm[j] += dg * s;
                        float dpre = (da * we[j] + dg * wm[j]) * s * (1.f - s);
                        dsg[j] += dpre * (vb[j] - m[j]);
                        dm[j] -= dpre * sg[j];
                        gp[j] += dpre * sg[j];
                    }
                }
                ddt[t * B + b] += dh / (float)U;
            }
            float *swap = g_next;
            g_next = g_prev;
            g_prev = swap;
        }
        sensory_bwd(B, N, C, xt, sweT, swmT, ssigT, smuT, dain, dbin, dx + t * B * C, dsweT,
                    dswmT, dssigT, dsmuT);
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

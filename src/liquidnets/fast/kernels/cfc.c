/* The CfC scan (float32): fused elementwise steps, and the whole dense scan in one call.
 *
 * Compiled on first use by liquidnets/fast/native.py with the system C compiler; when none
 * is available the scan runs the same math as PyTorch ops instead. The per-step kernels
 * replace the five to ten small elementwise ops around the matmuls, whose dispatch overhead
 * dominates at the sizes liquid networks use. ln_cfc_scan_fwd/bwd go further for a dense cell:
 * the whole recurrence in one call, its small matmuls included, with the batch rows shared
 * among threads (the rows of a batch never interact, so no thread waits for another).
 *
 * Layouts are row-major and contiguous unless a stride is given. `heads` is
 * [f1 | f2 | t_a | t_b], each H wide (nh = 4); `ts` is read at ts[b * ts_sb + j * ts_sh] so
 * that (1, 1), (B, 1) and (B, H) timespans all work. With one timespan c for every step and
 * sample, t_a c + t_b is a single head [f1 | f2 | t] (nh = 3): its weights are c W_a + W_b,
 * one matmul a quarter narrower, and ts is not read.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* Clamped so that expf never overflows: -ffast-math assumes no infinities. */
static inline float sigmoidf_(float x) {
    x = x < -80.f ? -80.f : (x > 80.f ? 80.f : x);
    return 1.f / (1.f + expf(-x));
}

static inline float tanhf_(float x) {
    x = x < -40.f ? -40.f : (x > 40.f ? 40.f : x);
    return 2.f / (1.f + expf(-2.f * x)) - 1.f;
}

/* y = tanh(x + p): the matmul before it writes x with no bias, so no copy of p comes first. */
static void ln_tanh_fwd(long n, const float *x, const float *p, float *y) {
#pragma omp simd
    for (long i = 0; i < n; i++) y[i] = tanhf_(x[i] + p[i]);
}

/* dx = dy * (1 - y^2) */
static void ln_tanh_bwd(long n, const float *dy, const float *y, float *dx) {
#pragma omp simd
    for (long i = 0; i < n; i++) dx[i] = dy[i] * (1.f - y[i] * y[i]);
}

/* In place on each row of heads = [f1 | f2 | t_a | t_b] (B x 4H, or [f1 | f2 | t] with nh = 3),
 * after adding add[b * add_sb + .] to row b when add is not NULL (add_sb = 0: a bias):
 *   f1, f2 <- tanh(f1), tanh(f2);  the last head <- s = sigmoid(t_a * ts + t_b) (or sigmoid(t));
 *   h = f1 + s (f2 - f1)  (no_gate: f1 + s f2).
 * The backward needs tanh(f1), tanh(f2), t_a and s, which is what the row then holds: the raw
 * heads are not kept, which saves 3 H floats per step and sample. */
void ln_cfc_gate_fwd(long B, long H, int no_gate, int nh, float *heads, const float *add,
                     long add_sb, const float *ts, long ts_sb, long ts_sh, float *h) {
    for (long b = 0; b < B; b++) {
        float *hd = heads + b * nh * H, *hb = h + b * H, *hs = hd + (nh - 1) * H;
        const float *tb = nh == 4 ? ts + b * ts_sb : 0;
        if (add) {
            const float *ab = add + b * add_sb;
#pragma omp simd
            for (long j = 0; j < nh * H; j++) hd[j] += ab[j];
        }
#pragma omp simd
        for (long j = 0; j < 2 * H; j++) hd[j] = tanhf_(hd[j]);
        if (nh == 4) {
#pragma omp simd
            for (long j = 0; j < H; j++) hs[j] = hd[2 * H + j] * tb[j * ts_sh] + hs[j];
        }
#pragma omp simd
        for (long j = 0; j < H; j++) {
            float g = sigmoidf_(hs[j]);
            hs[j] = g;
            hb[j] = no_gate ? hd[j] + g * hd[H + j] : hd[j] + g * (hd[H + j] - hd[j]);
        }
    }
}

/* Backward of ln_cfc_gate_fwd for g = dout + gh (dout may be NULL), from the rows it left.
 * Writes d heads (B x nh H; it may be heads itself) and, if dts is not NULL (nh = 4), the
 * per-element d s_pre * t_a (B x H). */
static void ln_cfc_gate_bwd(long B, long H, int no_gate, int nh, const float *dout, const float *gh,
                     const float *heads, const float *ts, long ts_sb, long ts_sh,
                     float *dheads, float *dts) {
    for (long b = 0; b < B; b++) {
        const float *hd = heads + b * nh * H, *hs = hd + (nh - 1) * H;
        const float *gb = gh + b * H, *ob = dout ? dout + b * H : 0;
        float *d = dheads + b * nh * H, *dt = dts ? dts + b * H : 0;
        if (nh == 3) {
#pragma omp simd
            for (long j = 0; j < H; j++) {
                float g = gb[j] + (ob ? ob[j] : 0.f);
                float f1 = hd[j], f2 = hd[H + j], sg = hs[j];
                float dgate = no_gate ? g * f2 : g * (f2 - f1);
                float df1 = no_gate ? g : g * (1.f - sg);
                d[j] = df1 * (1.f - f1 * f1);
                d[H + j] = g * sg * (1.f - f2 * f2);
                d[2 * H + j] = dgate * sg * (1.f - sg);
            }
            continue;
        }
        const float *tb = ts + b * ts_sb;
#pragma omp simd
        for (long j = 0; j < H; j++) {
            float g = gb[j] + (ob ? ob[j] : 0.f);
            /* every value of the row is read before any is written: d may alias heads */
            float f1 = hd[j], f2 = hd[H + j], ta = hd[2 * H + j], sg = hs[j];
            float dgate = no_gate ? g * f2 : g * (f2 - f1);
            float df1 = no_gate ? g : g * (1.f - sg);
            float df2 = g * sg;
            float dpre = dgate * sg * (1.f - sg);
            d[j] = df1 * (1.f - f1 * f1);
            d[H + j] = df2 * (1.f - f2 * f2);
            d[2 * H + j] = dpre * tb[j * ts_sh];
            d[3 * H + j] = dpre;
            if (dt) dt[j] = dpre * ta;
        }
    }
}

/* One inference step of a wired CfC cell whose layers run one after the other.
 * h: (B, sum_l n_l) the old state, layer-major; wown: every layer's weights from its own old
 * state, layer l an (n_l x 4 n_l) row-major block (a layer reads no other layer's old state);
 * bias: (sum_l 4 n_l); win: the input weights, layer l an (in_l x 4 n_l) row-major block;
 * x: (B, C) the input of layer 0; layer l > 0 reads layer l-1's new state.
 * Writes the new state, layer-major, to state (B, sum_l n_l); work: (B, max 4 n_l). */
void ln_cfc_wired_step(long B, long L, const long *sizes, long C, int no_gate, const float *h,
                       const float *wown, const float *bias, const float *win, const float *x,
                       const float *ts, long ts_sb, float *state, float *work) {
    long n_total = 0;
    for (long l = 0; l < L; l++) n_total += sizes[l];
    long own_off = 0, wown_off = 0, st_off = 0, w_off = 0, in_off = 0, in_w = C;
    for (long l = 0; l < L; l++) {
        long n = sizes[l], w4 = 4 * n;
        for (long b = 0; b < B; b++) {
            float *hd = work + b * w4;
            const float *old = h + b * n_total + st_off;
            const float *in = l == 0 ? x + b * C : state + b * n_total + in_off;
            memcpy(hd, bias + own_off, sizeof(float) * w4);
            for (long c = 0; c < n; c++) {
                const float *wr = wown + wown_off + c * w4;
                float v = old[c];
#pragma omp simd
                for (long k = 0; k < w4; k++) hd[k] += v * wr[k];
            }
            for (long c = 0; c < in_w; c++) {
                const float *wr = win + w_off + c * w4;
                float v = in[c];
#pragma omp simd
                for (long k = 0; k < w4; k++) hd[k] += v * wr[k];
            }
            ln_cfc_gate_fwd(1, n, no_gate, 4, hd, 0, 0, ts + b * ts_sb, 0, 0,
                            state + b * n_total + st_off);
        }
        w_off += in_w * w4;
        wown_off += n * w4;
        own_off += w4;
        in_off = st_off;
        st_off += n;
        in_w = n;
    }
}

/* One inference step of a dense CfC cell for a small batch, with the matmuls done here:
 * at batch 1 they are matrix-vector products, too small for a BLAS call to pay off.
 *   z = tanh([x, h] W1 + b1)      W1: (C + H) x U row-major  (U = 0: no backbone, z = [x, h])
 *   heads = z Wh + bh             Wh: width(z) x 4H row-major
 *   h_out = gate(heads)           as ln_cfc_gate_fwd
 * work: U + 4H floats. */
void ln_cfc_dense_step(long B, long C, long H, long U, int no_gate, const float *x,
                       const float *h, const float *W1, const float *b1, const float *Wh,
                       const float *bh, const float *ts, long ts_sb, float *work,
                       float *h_out) {
    long in_w = C + H, z_w = U ? U : in_w, w4 = 4 * H;
    float *z = work, *heads = work + (U ? U : 0);
    for (long b = 0; b < B; b++) {
        const float *xb = x + b * C, *hb = h + b * H;
        const float *zin;
        if (U) {
            memset(z, 0, sizeof(float) * U);
            for (long c = 0; c < in_w; c++) {
                float v = c < C ? xb[c] : hb[c - C];
                const float *wr = W1 + c * U;
#pragma omp simd
                for (long k = 0; k < U; k++) z[k] += v * wr[k];
            }
            ln_tanh_fwd(U, z, b1, z);
            zin = z;
        } else {
            zin = 0;
        }
        memcpy(heads, bh, sizeof(float) * w4);
        for (long c = 0; c < z_w; c++) {
            float v = U ? zin[c] : (c < C ? xb[c] : hb[c - C]);
            const float *wr = Wh + c * w4;
#pragma omp simd
            for (long k = 0; k < w4; k++) heads[k] += v * wr[k];
        }
        ln_cfc_gate_fwd(1, H, no_gate, 4, heads, 0, 0, ts + b * ts_sb, 0, 0, h_out + b * H);
    }
}

/* C (M x N, row stride ldc) = A (M x K, lda) B (K x N, ldb), all row-major: blocks of 4 rows
 * by 16 columns held in registers over the whole K loop (the compiler vectorises the
 * columns), the rest row by row. The matrices here are a few dozen rows of 64 to 256. */
enum { MR = 4, NR = 16 };

static void gemm(long M, long N, long K, const float *A, long lda, const float *B, long ldb,
                 float *C, long ldc) {
    long i = 0, n_full = N - N % NR;
    for (; i + MR <= M; i += MR) {
        for (long j = 0; j < n_full; j += NR) {
            float acc[MR][NR] = {{0}};
            for (long k = 0; k < K; k++) {
                const float *b = B + k * ldb + j;
                for (long r = 0; r < MR; r++) {
                    float a = A[(i + r) * lda + k];
#pragma omp simd
                    for (long c = 0; c < NR; c++) acc[r][c] += a * b[c];
                }
            }
            for (long r = 0; r < MR; r++) memcpy(C + (i + r) * ldc + j, acc[r], sizeof acc[r]);
        }
    }
    /* the rows left over (all columns), then the columns left over (the blocked rows) */
    for (long r = i; r < M; r++) {
        float *c = C + r * ldc;
        memset(c, 0, sizeof(float) * N);
        for (long k = 0; k < K; k++) {
            float a = A[r * lda + k];
            const float *b = B + k * ldb;
#pragma omp simd
            for (long j = 0; j < N; j++) c[j] += a * b[j];
        }
    }
    if (n_full == N) return;
    for (long r = 0; r < i; r++) {
        float *c = C + r * ldc;
        memset(c + n_full, 0, sizeof(float) * (N - n_full));
        for (long k = 0; k < K; k++) {
            float a = A[r * lda + k];
            const float *b = B + k * ldb;
#pragma omp simd
            for (long j = n_full; j < N; j++) c[j] += a * b[j];
        }
    }
}

/* The rows [r0, r1) of this thread when B rows are shared among the team. */
static void my_rows(long B, long *r0, long *r1) {
#ifdef _OPENMP
    long n = omp_get_num_threads(), id = omp_get_thread_num();
#else
    long n = 1, id = 0;
#endif
    *r0 = B * id / n;
    *r1 = B * (id + 1) / n;
}

/* The dense scan forward (see liquidnets/fast/cfc_scan.py for the normal form):
 *   U > 0:  z_t = tanh(P[t] + h_{t-1} Wr);  heads_t = z_t Wh + bh
 *   U = 0:  heads_t = P[t] + h_{t-1} Wr
 *   h_t = gate(heads_t, ts[t])                                     as ln_cfc_gate_fwd
 * P (T, B, K) with K = U, or nh H without a backbone; h0 (B, H); Wr (H, K); Wh (U, nh H);
 * bh (nh H); ts[t] at ts + t * ts_t (strides in floats). active, unless NULL, freezes the
 * units it marks 0 at step t: h_t = h_{t-1} there (the wavefront of a wired cell, padded
 * steps); unit j of row b at step t is active[t * act_st + b * act_sb + j] (act_sb = 0: the
 * same for every row). Writes Hs (T, B, H), heads (T, B, nh H) as ln_cfc_gate_fwd leaves them, and
 * Z (T, B, U). */
void ln_cfc_scan_fwd(long T, long B, long H, long U, long nh, int no_gate, const float *P,
                     long K, const float *h0, const float *Wr, const float *Wh,
                     const float *bh, const float *ts, long ts_t, long ts_sb, long ts_sh,
                     const unsigned char *active, long act_st, long act_sb, float *Hs,
                     float *heads, float *Z, long threads) {
    long nH = nh * H;
#pragma omp parallel num_threads(threads) if (threads > 1)
    {
        long r0, r1;
        my_rows(B, &r0, &r1);
        long m = r1 - r0;
        const float *h = h0 + r0 * H;
        for (long t = 0; t < T && m > 0; t++) {
            long row = t * B + r0;
            float *hd = heads + row * nH, *out = Hs + row * H;
            const float *tt = ts + t * ts_t + r0 * ts_sb;
            if (U) {
                float *z = Z + row * U;
                gemm(m, U, H, h, H, Wr, U, z, U);
                ln_tanh_fwd(m * U, z, P + row * K, z);
                gemm(m, nH, U, z, U, Wh, nH, hd, nH);
                ln_cfc_gate_fwd(m, H, no_gate, (int)nh, hd, bh, 0, tt, ts_sb, ts_sh, out);
            } else {
                gemm(m, nH, H, h, H, Wr, nH, hd, nH);
                ln_cfc_gate_fwd(m, H, no_gate, (int)nh, hd, P + row * K, K, tt, ts_sb, ts_sh,
                                out);
            }
            if (active)
                for (long b = 0; b < m; b++) {
                    const unsigned char *on = active + t * act_st + (r0 + b) * act_sb;
                    for (long j = 0; j < H; j++)
                        if (!on[j]) out[b * H + j] = h[b * H + j];
                }
            h = out;
        }
    }
}

/* The dense scan backward (active as in the forward). dHs (T, B, H) the gradient of every state; WrT (K, H) and WhT
 * (nh H, U) the transposed weights; heads, Z as the forward left them. heads is overwritten
 * with d heads; dP (T, B, K) receives d P (without a backbone it is heads itself); dts, unless
 * NULL, the per-element d s_pre * t_a (T, B, H); dh0 (B, H) the gradient of h0. */
void ln_cfc_scan_bwd(long T, long B, long H, long U, long nh, int no_gate, long K,
                     const float *dHs, const float *WrT, const float *WhT, const float *ts,
                     long ts_t, long ts_sb, long ts_sh, const unsigned char *active,
                     long act_st, long act_sb, float *heads, const float *Z, float *dP, float *dts, float *dh0,
                     long threads) {
    long nH = nh * H;
#pragma omp parallel num_threads(threads) if (threads > 1)
    {
        long r0, r1;
        my_rows(B, &r0, &r1);
        long m = r1 - r0;
        float *gh = calloc(m * H + 1, sizeof(float)), *dz = U ? malloc(sizeof(float) * m * U) : 0;
        float *carry = active ? malloc(sizeof(float) * (m * H + 1)) : 0;
        for (long t = T - 1; t >= 0 && m > 0; t--) {
            long row = t * B + r0;
            float *hd = heads + row * nH, *dp = dP + row * K;
            const float *dout = dHs + row * H;
            if (active) { /* frozen units pass their whole gradient on to h_{t-1} */
                for (long b = 0; b < m; b++)
                    for (long j = 0; j < H; j++) {
                        float g = gh[b * H + j] + dout[b * H + j];
                        int on = active[t * act_st + (r0 + b) * act_sb + j];
                        gh[b * H + j] = on ? g : 0.f;
                        carry[b * H + j] = on ? 0.f : g;
                    }
                dout = 0;
            }
            ln_cfc_gate_bwd(m, H, no_gate, (int)nh, dout, gh, hd, ts + t * ts_t + r0 * ts_sb,
                            ts_sb, ts_sh, hd, dts ? dts + row * H : 0);
            if (U) {
                gemm(m, U, nH, hd, nH, WhT, U, dz, U);
                ln_tanh_bwd(m * U, dz, Z + row * U, dp);
            }
            gemm(m, H, K, dp, K, WrT, H, gh, H);
            if (active)
                for (long k = 0; k < m * H; k++) gh[k] += carry[k];
        }
        free(carry);
        if (m > 0) memcpy(dh0 + r0 * H, gh, sizeof(float) * m * H);
        free(gh);
        free(dz);
    }
}

/* The pieces of a GRU4Rec training step that eager PyTorch runs as many small passes, each as
 * one pass of native code (built and loaded by gru4rec/compiled.py; see its docstring).
 *
 *   unique_ids    the touched items of a step, in order of first use, with each use's position
 *   gather_rows   the parameter slot of the touched rows of a row table (not the optimiser state)
 *   xe_loss       cross-entropy over the score matrix: value and gradient in one sweep per row
 *   bprmax_loss   BPR-max over elu(O) (or linear O): the same
 *   adagrad_rows  Adagrad with momentum on the touched rows, in place in the row table
 *   adagrad_dense the same over a dense parameter
 *   dropout_draw, sample_draw
 *                 the training's counter-based random numbers (gru4rec/rng.py): dropout masks,
 *                 negative samples
 *   embed_rows, add_rows   the input embedding's gather and dropout, and its gradient's scatter
 *   gru_gates, gru_output, gru_backward_out, gru_backward_r
 *                 a GRU layer's element-wise passes forward and backward (the dropout mask drawn
 *                 and applied in gru_output)
 *
 * The losses read the scores of the unique items, O_u (b x u), and write dLoss/dO_u: column j of
 * the score matrix is O_u[:, scored[j]], and a sampled item's columns are all alike, so they are
 * summed once per item (times their count) and no score matrix is ever spread out. Every
 * function is plain C on float32 / int64 arrays; rows are shared among OpenMP threads (the runtime
 * torch itself uses), and each row is written by one thread, so results do not depend on the
 * thread count.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define EPS 1e-24f /* inside the logarithms, as in the eager losses */

#define VW 16 /* floats per vector: one AVX-512 register, or several narrower ones */
typedef float vf __attribute__((vector_size(VW * sizeof(float))));
typedef int32_t vi __attribute__((vector_size(VW * sizeof(float))));

static inline vf splat(float x) { return (vf){0} + x; }
static inline vf vselect(vi mask, vf a, vf b) { return (vf)((mask & (vi)a) | (~mask & (vi)b)); }

/* exp(x) per lane (Cephes' expf: range reduction by ln 2, a degree-6 polynomial, about 1 ulp); 0
 * below -87.3, where float's normal range ends; NaN stays NaN. Written with vector types, since
 * compilers do not vectorise the bit cast that makes 2^n. */
static inline vf exp_v(vf v) {
    vi under = v < -87.3f;
    v = vselect(v > 88.7f, splat(88.7f), v);
    v = vselect(under, splat(-87.3f), v);
    vf t = v * 1.44269504088896341f + 0.5f;
    vf n = __builtin_convertvector(__builtin_convertvector(t, vi), vf); /* t truncated, */
    n -= (vf)((n > t) & (vi)splat(1.0f));                               /* then floored */
    vf r = v - n * 0.693359375f + n * 2.12194440e-4f;
    vf p = r * 0.0f + 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    vi bits = (__builtin_convertvector(n, vi) + 127) << 23; /* 2^n */
    return (vf)((vi)(p * (vf)bits) & ~under);
}

static inline float exp_scalar(float x) { return exp_v(splat(x))[0]; }

/* Loads and stores of len <= VW floats (a row's tail: the lanes past it load as 0). */
static inline vf vload(const float *p, int64_t len) {
    vf v = {0};
    if (len == VW)
        memcpy(&v, p, sizeof v);
    else
        memcpy(&v, p, len * sizeof(float));
    return v;
}
static inline void vstore(float *p, vf v, int64_t len) {
    if (len == VW)
        memcpy(p, &v, sizeof v);
    else
        memcpy(p, &v, len * sizeof(float));
}
static inline float hsum(vf v) {
    float s = 0.0f;
    for (int k = 0; k < VW; k++) s += v[k];
    return s;
}
static inline float hmax(vf v, float m) {
    for (int k = 0; k < VW; k++) m = v[k] > m ? v[k] : m;
    return m;
}
static inline int64_t padded(int64_t n) { return (n + VW - 1) / VW * VW; }

/* Threads of the parallel loops: torch's count, set when a training starts (the OpenMP runtime
 * may be another copy than torch's, whose own setting would then not reach it). */
static int threads = 1;
void set_threads(int n) { threads = n > 0 ? n : 1; }

/* Rows of at least this many elements (b * n) make a loss worth sharing among threads. */
#define PARALLEL_ELEMENTS 32768

/* ids (m) -> unique ids (returned count u, in order of first use) and where (m): position of each
 * use in the unique ids. pos (n_items) is scratch that must hold -1 everywhere, and does again
 * on return. */
int64_t unique_ids(const int64_t *ids, int64_t m, int32_t *pos, int64_t *uniq, int64_t *where) {
    int64_t u = 0;
    for (int64_t k = 0; k < m; k++) {
        int64_t id = ids[k];
        int32_t p = pos[id];
        if (p < 0) {
            p = (int32_t)u;
            pos[id] = p;
            uniq[u++] = id;
        }
        where[k] = p;
    }
    for (int64_t k = 0; k < u; k++) pos[uniq[k]] = -1;
    return u;
}

/* out[r] = table[ids[r], 0]: the parameter of each touched row (table rows: slots x dim). */
void gather_rows(const float *table, int64_t slots, int64_t dim, const int64_t *ids, int64_t u, float *out) {
#pragma omp parallel for num_threads(threads) if (u * dim > 65536) schedule(static)
    for (int64_t r = 0; r < u; r++) memcpy(out + r * dim, table + ids[r] * slots * dim, dim * sizeof(float));
}

/* The columns of a step's score matrix, by unique item. The first b columns score the targets
 * (column j scores unique item scored[j]); the other n - b score the samples, cnt[r] of them
 * unique item r. A sample column's value depends only on its item (its score and its log-Q
 * offset), so the losses sweep the samples once per unique item with weight cnt, in contiguous
 * vector passes over a row of O_u, and the target columns, gathered, with weight 1. Both are
 * padded to whole vectors with weight 0. A weight-0 lane is no column of the row (an unscored
 * item, padding, a row's own target among its negatives) and is selected out of every sum, so
 * not even a NaN score of it is read. Returns NULL if out of memory. */
static float *sample_counts(const int64_t *scored, int64_t b, int64_t n, int64_t u) {
    float *cnt = calloc(padded(u) > 0 ? padded(u) : 1, sizeof(float));
    if (cnt)
        for (int64_t j = b; j < n; j++) cnt[scored[j]] += 1.0f;
    return cnt;
}

/* out[r] = o[r] - off[r] (off NULL: none) for r < u, and 0 up to padded(u). */
static inline void shifted(const float *o, const float *off, int64_t u, float *out) {
    for (int64_t r = 0; r < u; r += VW) {
        int64_t len = u - r < VW ? u - r : VW;
        vf x = vload(o + r, len);
        if (off) x -= vload(off + r, len);
        memcpy(out + r, &x, sizeof x);
    }
}

/* out[j] = o[scored[j]] - off_t[j] for the b target columns (the padding stays 0). */
static inline void gathered(const float *o, const int64_t *scored, const float *off_t, int64_t b, float *out) {
    for (int64_t j = 0; j < b; j++) out[j] = o[scored[j]] - (off_t ? off_t[j] : 0.0f);
}

/* max(m, the largest v over the lanes with w > 0) */
static inline float weighted_max(const float *v, const float *w, int64_t len, float m) {
    vf vm = splat(m);
    for (int64_t k = 0; k < len; k += VW) {
        vf x = vload(v + k, VW), c = vload(w + k, VW);
        vm = vselect((c > 0.0f) & (x > vm), x, vm);
    }
    return hmax(vm, m);
}

/* A loss's buffers for the whole call: the samples' counts per item and the per-row losses.
 * Returns 0, or 1 if out of memory (nothing left allocated). */
static int loss_buffers(const int64_t *scored, int64_t b, int64_t n, int64_t u, float **cnt, double **row_loss) {
    *cnt = sample_counts(scored, b, n, u);
    *row_loss = malloc(b * sizeof(double));
    if (*cnt && *row_loss) return 0;
    free(*cnt);
    free(*row_loss);
    return 1;
}

/* A thread's scratch of `size` floats, zeroed, whose last bp hold the target columns' weights (1
 * for the b columns, 0 for the padding); NULL if out of memory, which sets *failed. */
static float *row_scratch(int64_t size, int64_t b, int64_t bp, int *failed) {
    float *s = calloc(size, sizeof(float));
    if (!s) {
#pragma omp atomic write
        *failed = 1;
        return NULL;
    }
    for (int64_t j = 0; j < b; j++) s[size - bp + j] = 1.0f;
    return s;
}

/* The end of a loss call: the loss summed over the rows in row order (the same sum for any
 * thread count) unless a thread ran out of memory; frees the buffers; returns failed. */
static int loss_done(int failed, float *cnt, double *row_loss, int64_t b, double *loss) {
    if (!failed) {
        double total = 0.0;
        for (int64_t i = 0; i < b; i++) total += row_loss[i];
        *loss = total;
    }
    free(cnt);
    free(row_loss);
    return failed;
}

/* v = w exp(v - m), 0 where w = 0; returns the sum (softmax's denominator). */
static inline float xe_exp(float *v, const float *w, int64_t len, float m) {
    vf z = {0};
    for (int64_t k = 0; k < len; k += VW) {
        vf c = vload(w + k, VW), x = exp_v(vload(v + k, VW) - m);
        x = vselect(c > 0.0f, c * x, splat(0.0f));
        memcpy(v + k, &x, sizeof x);
        z += x;
    }
    return hsum(z);
}

/* Cross-entropy: loss_i = -log(softmax(o_i)_i + eps); dO = scale * (X - I) * x_ii / (x_ii + eps)
 * (the eager cross_entropy's gradient), where o_ij = O_u[i, item of j] - offset of column j:
 * off_t[j] for the target columns, off_u[r] for the sample columns of item r (NULL: none).
 * Writes dO_u (b x u) and the loss summed over rows; returns 0, or 1 if out of memory. */
int xe_loss(const float *Ou, int64_t b, int64_t u, const int64_t *scored, int64_t n, const float *off_t,
            const float *off_u, float scale, float *dOu, double *loss) {
    const int64_t up = padded(u), bp = padded(b);
    float *cnt;
    double *row_loss;
    if (loss_buffers(scored, b, n, u, &cnt, &row_loss)) return 1;
    int failed = 0;
#pragma omp parallel num_threads(threads) if (b * n >= PARALLEL_ELEMENTS)
    {
        /* per thread: the sample columns by item (T), the target columns (tv) and their weights */
        float *T = row_scratch(up + 2 * bp, b, bp, &failed);
        float *tv = T + up, *wt = tv + bp;
#pragma omp for schedule(static)
        for (int64_t i = 0; i < b; i++) {
            if (!T) continue;
            const float *o = Ou + i * u;
            float *d = dOu + i * u;
            shifted(o, off_u, u, T);
            gathered(o, scored, off_t, b, tv);
            float m = weighted_max(tv, wt, bp, weighted_max(T, cnt, up, -INFINITY));
            float z = xe_exp(T, cnt, up, m) + xe_exp(tv, wt, bp, m);
            float inv_z = 1.0f / z;
            float xd = tv[i] * inv_z;
            row_loss[i] = -log((double)(xd + EPS));
            float w = xd * scale / (xd + EPS);
            float c = w * inv_z;
            for (int64_t r = 0; r < u; r += VW) {
                int64_t len = u - r < VW ? u - r : VW;
                vstore(d + r, vload(T + r, VW) * c, len);
            }
            for (int64_t j = 0; j < b; j++) d[scored[j]] += c * tv[j];
            d[scored[i]] -= w;
        }
        free(T);
    }
    return loss_done(failed, cnt, row_loss, b, loss);
}

/* f(x) per lane: elu with alpha (alpha > 0; NaN stays NaN) or the identity (alpha = 0) */
static inline vf act_v(vf x, float alpha) {
    if (alpha <= 0.0f) return x;
    vf neg = vselect(x < 0.0f, x, splat(0.0f));
    return vselect(x <= 0.0f, alpha * (exp_v(neg) - 1.0f), x);
}
/* f'(x) given a = f(x) */
static inline vf act_grad_v(vf a, float alpha) {
    return alpha > 0.0f ? vselect(a <= 0.0f, a + alpha, splat(1.0f)) : splat(1.0f);
}

/* BPR-max's sweep of one segment, given the row's max m over its negatives and the target's
 * activation a_ii: x = exp(A - m), e = w x, sig = sigmoid(a_ii - A) = 1 / (1 + x K) with
 * K = exp(m - a_ii) (one exponential per lane; K < 0: exp(A - a_ii) itself, where K would
 * overflow); e and sig are 0 where w = 0. Writes e and sig; adds the sums of e, e sig, e A^2,
 * e sig^2 to s. */
static inline void bpr_sweep(const float *A, const float *w, float *e, float *sig, int64_t len, float m, float a_ii,
                             float K, vf s[4]) {
    for (int64_t k = 0; k < len; k += VW) {
        vf a = vload(A + k, VW), c = vload(w + k, VW);
        vi on = c > 0.0f; /* a weight-0 lane's x may be inf (a - m large) and K 0: no 0 * inf */
        vf x = exp_v(a - m);
        vf y = K >= 0.0f ? x * K : exp_v(a - a_ii);
        vf g = vselect(on, 1.0f / (1.0f + y), splat(0.0f));
        x = vselect(on, c * x, splat(0.0f));
        memcpy(e + k, &x, sizeof x);
        memcpy(sig + k, &g, sizeof g);
        s[0] += x;
        s[1] += x * g;
        s[2] += x * a * a;
        s[3] += x * g * g;
    }
}

/* BPR-max's gradient of one segment: s = e / z; dA = s (c (A^2 + 2 A) - sig^2 inv + k), times f'; 0
 * where w = 0. Written over sig. */
static inline void bpr_grad(const float *A, const float *w, const float *e, float *sig, int64_t len, float inv_z,
                            float c, float inv, float k, float alpha) {
    for (int64_t q = 0; q < len; q += VW) {
        vf a = vload(A + q, VW), g = vload(sig + q, VW);
        vf d = vload(e + q, VW) * inv_z * (c * (a * a + 2.0f * a) - g * g * inv + k) * act_grad_v(a, alpha);
        d = vselect(vload(w + q, VW) > 0.0f, d, splat(0.0f));
        memcpy(sig + q, &d, sizeof d);
    }
}

/* BPR-max over A = f(o), f = elu with alpha (elu_alpha > 0) or the identity (elu_alpha = 0):
 *   s_i = softmax of row i over its negatives (j != i),  sig_ij = sigmoid(A_ii - A_ij),
 *   P = sum_j s sig,  Q = sum_j s A^2,  R = sum_j s sig^2,
 *   loss_i = -log(P + eps) + bpreg Q,
 *   dA_ij = s_ij [bpreg (A_ij^2 + 2 A_ij - Q) + (P - sig_ij^2) / (P + eps)]  (j != i),
 *   dA_ii = (R - P) / (P + eps),  dO = scale * dA * f'(o)  (elu: 1 where A > 0, else A + alpha).
 * The eager bpr_max and elu compute the same, pass by pass. Columns, offsets and the return
 * value as in xe_loss; the negatives of row i are every column but its own target column i (the
 * other target columns, and samples of its target item, included). */
int bprmax_loss(const float *Ou, int64_t b, int64_t u, const int64_t *scored, int64_t n, const float *off_t,
                const float *off_u, float elu_alpha, float bpreg, float scale, float *dOu, double *loss) {
    const int64_t up = padded(u), bp = padded(b);
    float *cnt;
    double *row_loss;
    if (loss_buffers(scored, b, n, u, &cnt, &row_loss)) return 1;
    int failed = 0;
#pragma omp parallel num_threads(threads) if (b * n >= PARALLEL_ELEMENTS)
    {
        /* per thread, for the sample columns by item and for the target columns: activations A,
         * softmax weights e (times the weight), sigmoids and then the gradient; the targets' weights */
        float *A = row_scratch(3 * up + 4 * bp, b, bp, &failed);
        float *e = A + up, *sig = e + up, *At = sig + up, *et = At + bp, *st = et + bp, *wt = st + bp;
#pragma omp for schedule(static)
        for (int64_t i = 0; i < b; i++) {
            if (!A) continue;
            const float *o = Ou + i * u;
            float *d = dOu + i * u;
            shifted(o, off_u, u, A);
            gathered(o, scored, off_t, b, At);
            for (int64_t k = 0; k < up; k += VW) {
                vf x = act_v(vload(A + k, VW), elu_alpha);
                x = vselect(vload(cnt + k, VW) > 0.0f, x, splat(0.0f)); /* unscored items: no NaN */
                memcpy(A + k, &x, sizeof x);
            }
            for (int64_t k = 0; k < bp; k += VW) {
                vf x = act_v(vload(At + k, VW), elu_alpha);
                memcpy(At + k, &x, sizeof x);
            }
            float a_ii = At[i];
            wt[i] = 0.0f; /* the target is not among its negatives */
            float m = weighted_max(At, wt, bp, weighted_max(A, cnt, up, -INFINITY));
            float K = m - a_ii <= 80.0f ? exp_scalar(m - a_ii) : -1.0f; /* (NaN: -1) */
            vf sums[4] = {{0}, {0}, {0}, {0}};
            bpr_sweep(A, cnt, e, sig, up, m, a_ii, K, sums);
            bpr_sweep(At, wt, et, st, bp, m, a_ii, K, sums);
            float inv_z = 1.0f / hsum(sums[0]);
            float P = hsum(sums[1]) * inv_z, Q = hsum(sums[2]) * inv_z, R = hsum(sums[3]) * inv_z;
            P += 0.0f * (a_ii - a_ii); /* NaN if the target's score is not finite, as eagerly (its own sigmoid) */
            row_loss[i] = -log((double)(P + EPS)) + (double)bpreg * Q;
            float inv = scale / (P + EPS), c = bpreg * scale, k = P * inv - c * Q;
            bpr_grad(A, cnt, e, sig, up, inv_z, c, inv, k, elu_alpha);
            bpr_grad(At, wt, et, st, bp, inv_z, c, inv, k, elu_alpha);
            for (int64_t r = 0; r < u; r += VW) vstore(d + r, vload(sig + r, VW), u - r < VW ? u - r : VW);
            for (int64_t j = 0; j < b; j++) d[scored[j]] += st[j];
            d[scored[i]] += (R - P) * inv * act_grad_v(splat(a_ii), elu_alpha)[0];
            wt[i] = 1.0f;
        }
        free(A);
    }
    return loss_done(failed, cnt, row_loss, b, loss);
}

/* The training's counter-based random numbers (gru4rec/rng.py, which draws the same with NumPy):
 * number j of the draw with keys (k1, k2) is the top 24 bits of mix(mix(j + k1) ^ k2). */
static inline uint32_t mix32(uint32_t x) {
    x ^= x >> 16;
    x *= 0x21F0AAADu;
    x ^= x >> 15;
    x *= 0x735A2D97u;
    return x ^ (x >> 15);
}

/* mask[j] = scale where number j < threshold, else 0: inverted dropout */
void dropout_draw(uint32_t k1, uint32_t k2, int64_t n, uint32_t threshold, float scale, float *mask) {
#pragma omp parallel for simd num_threads(threads) if (parallel : n > 32768) schedule(static)
    for (int64_t j = 0; j < n; j++) mask[j] = (mix32(mix32((uint32_t)j + k1) ^ k2) >> 8) < threshold ? scale : 0.0f;
}

/* out[j] = the first item whose cumulative probability cdf (n_items, the last 1) exceeds number j
 * of the draw / 2^24 (the last item at most): torch.searchsorted(cdf, u, right=True). The
 * search starts at guide[floor(u G)], the first item whose cdf exceeds g / G (a guide table, G a
 * power of two up to 2^24), so that a draw costs a step or two. */
void sample_draw(uint32_t k1, uint32_t k2, int64_t n, const float *cdf, int64_t n_items, const int32_t *guide,
                 int64_t G, int64_t *out) {
#pragma omp parallel for num_threads(threads) if (n > 32768) schedule(static)
    for (int64_t j = 0; j < n; j++) {
        uint32_t bits = mix32(mix32((uint32_t)j + k1) ^ k2) >> 8;
        float u = (float)bits * 0x1p-24f;
        int64_t i = guide[(int64_t)(u * (float)G)];
        while (i < n_items - 1 && cdf[i] <= u) i++;
        out[j] = i;
    }
}

/* ---- the input embedding (GRU4RecNetwork.embed_rows, add_rows) ---- */

/* x[i] = rows[where[i]] for i < b (rows of dim floats, `stride` apart), times the inverted-dropout
 * mask of the draw (k1, k2) where mask is not NULL (the mask written to mask). */
void embed_rows(const float *rows, int64_t stride, const int64_t *where, int64_t b, int64_t dim, uint32_t k1,
                uint32_t k2, uint32_t threshold, float scale, float *mask, float *x) {
    if (mask) dropout_draw(k1, k2, b * dim, threshold, scale, mask);
    for (int64_t i = 0; i < b; i++) {
        const float *row = rows + where[i] * stride;
        float *xi = x + i * dim;
        if (mask) {
            const float *mi = mask + i * dim;
#pragma omp simd
            for (int64_t k = 0; k < dim; k++) xi[k] = row[k] * mi[k];
        } else {
            memcpy(xi, row, dim * sizeof(float));
        }
    }
}

/* dst[where[i]] += d[i] (times mask[i]; mask NULL: none) for i < b in order: rows of dim floats,
 * dst's `stride` apart. */
void add_rows(float *dst, int64_t stride, const int64_t *where, int64_t b, int64_t dim, const float *d,
              const float *mask) {
    for (int64_t i = 0; i < b; i++) {
        float *row = dst + where[i] * stride;
        const float *di = d + i * dim;
        if (mask) {
            const float *mi = mask + i * dim;
#pragma omp simd
            for (int64_t k = 0; k < dim; k++) row[k] += di[k] * mi[k];
        } else {
#pragma omp simd
            for (int64_t k = 0; k < dim; k++) row[k] += di[k];
        }
    }
}

/* ---- the GRU layers' element-wise passes, around torch's products (see GRU4RecNetwork._gru) ---- */

static inline vf sigmoid_v(vf x) { return 1.0f / (1.0f + exp_v(-x)); }

/* tanh: sign(x) (1 - t) / (1 + t) with t = exp(-2|x|); an odd polynomial near 0, where 1 - t
 * would cancel */
static inline vf tanh_v(vf x) {
    vf ax = vselect(x < 0.0f, -x, x), t = exp_v(-2.0f * ax);
    vf big = (1.0f - t) / (1.0f + t);
    vf x2 = x * x;
    vf small = ax * (1.0f + x2 * (-1.0f / 3.0f + x2 * (2.0f / 15.0f + x2 * (-17.0f / 315.0f))));
    vf y = vselect(ax < 0.125f, small, big);
    return vselect(x < 0.0f, -y, y + 0.0f * x); /* (+ 0 x: NaN stays NaN) */
}

/* Rows of at least this many elements make a layer's pass worth sharing among threads. */
#define PARALLEL_LAYER 65536

/* On entry rz (b x 2n) holds h Wrz; on return [r | z] = sigmoid(a_rz + h Wrz), and rh = r * h.
 * a_rz: the preactivation's [r | z] part, rows `lda` apart (a slice of a = x Wx + Bh). */
void gru_gates(float *rz, const float *a_rz, int64_t lda, const float *h, float *rh, int64_t b, int64_t n) {
#pragma omp parallel for num_threads(threads) if (b * n > PARALLEL_LAYER) schedule(static)
    for (int64_t i = 0; i < b; i++) {
        float *g = rz + i * 2 * n;
        for (int64_t k = 0; k < 2 * n; k += VW) {
            int64_t len = 2 * n - k < VW ? 2 * n - k : VW;
            vstore(g + k, sigmoid_v(vload(a_rz + i * lda + k, len) + vload(g + k, len)), len);
        }
        for (int64_t k = 0; k < n; k += VW) {
            int64_t len = n - k < VW ? n - k : VW;
            vstore(rh + i * n + k, vload(g + k, len) * vload(h + i * n + k, len), len);
        }
    }
}

/* On entry c (b x n) holds (r h) Wh; on return c = tanh(a_c + (r h) Wh) (a_c: the preactivation's
 * candidate part, rows `lda` apart), and out = h + z (c - h), times the inverted-dropout mask of
 * the draw with keys (k1, k2) (rng.py; written to mask) where mask is not NULL: the layer's next
 * hidden state. */
void gru_output(float *c, const float *a_c, int64_t lda, const float *h, const float *rz, int64_t b, int64_t n,
                float *out, uint32_t k1, uint32_t k2, uint32_t threshold, float scale, float *mask) {
    if (mask) dropout_draw(k1, k2, b * n, threshold, scale, mask);
#pragma omp parallel for num_threads(threads) if (b * n > PARALLEL_LAYER) schedule(static)
    for (int64_t i = 0; i < b; i++) {
        for (int64_t k = 0; k < n; k += VW) {
            int64_t len = n - k < VW ? n - k : VW, at = i * n + k;
            vf cv = tanh_v(vload(a_c + i * lda + k, len) + vload(c + at, len)), hv = vload(h + at, len);
            vf o = hv + vload(rz + i * 2 * n + n + k, len) * (cv - hv);
            if (mask) o *= vload(mask + at, len);
            vstore(c + at, cv, len);
            vstore(out + at, o, len);
        }
    }
}

/* The layer's backward from d_out (b x n), the gradient of its (dropped-out) output, to the
 * element-wise parts of d_a = [d_ac | d_r | d_z] (b x 3n): with d = d_out mask (mask NULL: none),
 * d_ac = d z (1 - c^2) and d_z = d (c - h) z (1 - z); d_r needs d_ac Wh^T first (gru_backward_r). */
void gru_backward_out(const float *d_out, const float *mask, const float *rz, const float *c, const float *h,
                      int64_t b, int64_t n, float *d_a) {
#pragma omp parallel for num_threads(threads) if (b * n > PARALLEL_LAYER) schedule(static)
    for (int64_t i = 0; i < b; i++) {
        for (int64_t k = 0; k < n; k += VW) {
            int64_t len = n - k < VW ? n - k : VW, at = i * n + k;
            vf d = vload(d_out + at, len);
            if (mask) d *= vload(mask + at, len);
            vf z = vload(rz + i * 2 * n + n + k, len), cv = vload(c + at, len), hv = vload(h + at, len);
            vstore(d_a + i * 3 * n + k, d * z * (1.0f - cv * cv), len);
            vstore(d_a + i * 3 * n + 2 * n + k, d * (cv - hv) * z * (1.0f - z), len);
        }
    }
}

/* d_r = d_rh h r (1 - r) into d_a's middle third, then dBh (3n) = the column sums of d_a (in row order). */
void gru_backward_r(const float *d_rh, const float *rz, const float *h, int64_t b, int64_t n, float *d_a,
                    float *dBh) {
    for (int64_t i = 0; i < b; i++) {
        for (int64_t k = 0; k < n; k += VW) {
            int64_t len = n - k < VW ? n - k : VW, at = i * n + k;
            vf r = vload(rz + i * 2 * n + k, len);
            vstore(d_a + i * 3 * n + n + k, vload(d_rh + at, len) * vload(h + at, len) * r * (1.0f - r), len);
        }
    }
    memset(dBh, 0, 3 * n * sizeof(float));
    for (int64_t i = 0; i < b; i++)
#pragma omp simd
        for (int64_t k = 0; k < 3 * n; k++) dBh[k] += d_a[i * 3 * n + k];
}

/* Adagrad with momentum on one row: p slot 0, accumulator slot 1, velocity slot 2 (momentum > 0). */
static inline void adagrad_row(float *restrict p, float *restrict acc, float *restrict vel, const float *restrict g,
                               int64_t dim, float lr, float momentum, float eps) {
    if (momentum > 0.0f) {
        for (int64_t j = 0; j < dim; j++) {
            acc[j] += g[j] * g[j];
            vel[j] = momentum * vel[j] - lr * g[j] / sqrtf(acc[j] + eps);
            p[j] += vel[j];
        }
    } else {
        for (int64_t j = 0; j < dim; j++) {
            acc[j] += g[j] * g[j];
            p[j] -= lr * g[j] / sqrtf(acc[j] + eps);
        }
    }
}

/* The touched rows ids (u) of a row table (rows of slots x dim) take one Adagrad step with their
 * summed gradients g (u x dim), in place. idle (u, or NULL): rows whose last column must not move
 * (the output bias of items that were only inputs). */
void adagrad_rows(float *table, int64_t slots, int64_t dim, const int64_t *ids, int64_t u, const float *g,
                  const uint8_t *idle, float lr, float momentum, float eps) {
#pragma omp parallel for num_threads(threads) if (u * dim > 65536) schedule(static)
    for (int64_t r = 0; r < u; r++) {
        float *p = table + ids[r] * slots * dim;
        int64_t d = idle && idle[r] ? dim - 1 : dim;
        adagrad_row(p, p + dim, momentum > 0.0f ? p + 2 * dim : NULL, g + r * dim, d, lr, momentum, eps);
    }
}

/* A dense parameter p (size) takes one Adagrad step with gradient g. */
void adagrad_dense(float *p, const float *g, float *acc, float *vel, int64_t size, float lr, float momentum,
                   float eps) {
    const int64_t chunk = 4096;
#pragma omp parallel for num_threads(threads) if (size > 65536) schedule(static)
    for (int64_t k = 0; k < size; k += chunk) {
        int64_t len = size - k < chunk ? size - k : chunk;
        adagrad_row(p + k, acc + k, vel ? vel + k : NULL, g + k, len, lr, momentum, eps);
    }
}

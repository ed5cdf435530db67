/* The pieces of a GRU4Rec training step that eager PyTorch runs as many small passes, each as
 * one pass of native code (built and loaded by gru4rec/compiled.py; see its docstring).
 *
 *   unique_ids    the touched items of a step, in order of first use, with each use's position
 *   gather_rows   the parameter slot of the touched rows of a row table (not the optimiser state)
 *   xe_loss       cross-entropy over the score matrix: value and gradient in one sweep per row
 *   bprmax_loss   BPR-max over elu(O) (or linear O): the same
 *   adagrad_rows  Adagrad with momentum on the touched rows, in place in the row table
 *   adagrad_dense the same over a dense parameter
 *
 * The losses read the scores of the unique items, O_u (b x u), through `scored` (column j of
 * the score matrix is O_u[:, scored[j]]) and write dLoss/dO_u, so repeated items never get a
 * score matrix of their own. Every function is plain C on float32 / int64 arrays; rows are
 * shared among OpenMP threads (the runtime torch itself uses), and each row is written by one
 * thread, so results do not depend on the thread count.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define EPS 1e-24f /* inside the logarithms, as in the eager losses */

/* exp(x) (Cephes' expf: range reduction by ln 2, a degree-6 polynomial, about 1 ulp); 0 below
 * -87.3, where float's normal range ends. The scalar form, and exp_inplace for buffers: written
 * with vector types, since compilers do not vectorise the bit cast that makes 2^n. */
#define EXP_POLY(r, p)                                                                                               \
    p = r * 0.0f + 1.9875691500e-4f;                                                                                 \
    p = p * r + 1.3981999507e-3f;                                                                                    \
    p = p * r + 8.3334519073e-3f;                                                                                    \
    p = p * r + 4.1665795894e-2f;                                                                                    \
    p = p * r + 1.6666665459e-1f;                                                                                    \
    p = p * r + 5.0000001201e-1f;                                                                                    \
    p = p * r * r + r + 1.0f;

static inline float exp_scalar(float x) {
    if (x < -87.3f) return 0.0f;
    float xc = x > 88.7f ? 88.7f : x;
    float n = floorf(xc * 1.44269504088896341f + 0.5f);
    float r = xc - n * 0.693359375f + n * 2.12194440e-4f, p;
    EXP_POLY(r, p)
    union {
        int32_t i;
        float f;
    } scale = {.i = ((int32_t)n + 127) << 23}; /* 2^n */
    return p * scale.f;
}

#define VW 16 /* floats per vector: one AVX-512 register, or several narrower ones */
typedef float vf __attribute__((vector_size(VW * sizeof(float))));
typedef int32_t vi __attribute__((vector_size(VW * sizeof(float))));

static inline vf vselect(vi mask, vf a, vf b) { return (vf)((mask & (vi)a) | (~mask & (vi)b)); }

/* x[j] = exp(x[j]) for j < n */
static void exp_inplace(float *x, int64_t n) {
    int64_t j = 0;
    for (; j + VW <= n; j += VW) {
        vf v, p;
        memcpy(&v, x + j, sizeof v);
        vi under = v < -87.3f;
        v = vselect(v > 88.7f, (vf){0} + 88.7f, v);
        v = vselect(under, (vf){0} - 87.3f, v);
        vf t = v * 1.44269504088896341f + 0.5f;
        vf n = __builtin_convertvector(__builtin_convertvector(t, vi), vf); /* t truncated, */
        n -= (vf)((n > t) & (vi)((vf){0} + 1.0f));                          /* then floored */
        vf r = v - n * 0.693359375f + n * 2.12194440e-4f;
        EXP_POLY(r, p)
        vi bits = (__builtin_convertvector(n, vi) + 127) << 23; /* 2^n */
        p = p * (vf)bits;
        p = (vf)((vi)p & ~under);
        memcpy(x + j, &p, sizeof p);
    }
    for (; j < n; j++) x[j] = exp_scalar(x[j]);
}

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

/* The columns of a step's score matrix and the unique items they score: column j scores item
 * item[j]; first[r] is the first column of item r (n where no column scores it: a shared-mode
 * input); the other columns of repeated items are the pairs (rep_col, rep_item). */
typedef struct {
    int64_t n, u, n_rep;
    int32_t *item, *first, *rep_col, *rep_item;
} Columns;

static Columns columns_of(const int64_t *scored, int64_t n, int64_t u) {
    Columns c = {n, u, 0, NULL, NULL, NULL, NULL};
    c.item = malloc((3 * n + u) * sizeof(int32_t));
    c.first = c.item + n;
    c.rep_col = c.first + u;
    c.rep_item = c.rep_col + n;
    for (int64_t r = 0; r < u; r++) c.first[r] = (int32_t)n;
    for (int64_t j = 0; j < n; j++) {
        int32_t r = (int32_t)scored[j];
        c.item[j] = r;
        if (c.first[r] == n) {
            c.first[r] = (int32_t)j;
        } else {
            c.rep_col[c.n_rep] = (int32_t)j;
            c.rep_item[c.n_rep++] = r;
        }
    }
    return c;
}

/* Gathers and scatters stay scalar: vector gathers are slow on many x86 CPUs (microcode
 * mitigations), and these loops are bound by loads anyway. */
#if defined(__GNUC__) && !defined(__clang__)
#define SCALAR __attribute__((optimize("no-tree-vectorize")))
#else
#define SCALAR
#endif

/* Row i of the score matrix, o_j = O_u[i, item[j]] - offset[j], into t (n). */
SCALAR static inline void score_row(const float *Ou_i, const Columns *c, const float *offset, float *t) {
    const int32_t *item = c->item;
    if (offset) {
        for (int64_t j = 0; j < c->n; j++) t[j] = Ou_i[item[j]] - offset[j];
    } else {
        for (int64_t j = 0; j < c->n; j++) t[j] = Ou_i[item[j]];
    }
}

/* dO_u[i, r] = sum of d[j] over the columns j of item r; d[n] must be 0 (unscored items). */
SCALAR static inline void spread_back(float *dOu_i, const Columns *c, const float *d) {
    const int32_t *first = c->first;
    for (int64_t r = 0; r < c->u; r++) dOu_i[r] = d[first[r]];
    for (int64_t k = 0; k < c->n_rep; k++) dOu_i[c->rep_item[k]] += d[c->rep_col[k]];
}

/* The loss summed over the rows in row order (the same sum for any thread count); frees the
 * per-row losses and the column map. */
static double total_loss(double *row_loss, int64_t b, Columns *cols) {
    double loss = 0.0;
    for (int64_t i = 0; i < b; i++) loss += row_loss[i];
    free(row_loss);
    free(cols->item);
    return loss;
}

/* Cross-entropy: loss_i = -log(softmax(o_i)_i + eps); dO = scale * (X - I) * x_ii / (x_ii + eps)
 * (the eager cross_entropy's gradient). Writes dO_u (b x u), returns the loss summed over rows. */
double xe_loss(const float *Ou, int64_t b, int64_t u, const int64_t *scored, int64_t n, const float *offset,
               float scale, float *dOu) {
    double *row_loss = malloc(b * sizeof(double));
    Columns cols = columns_of(scored, n, u);
#pragma omp parallel num_threads(threads) if (b * n >= PARALLEL_ELEMENTS)
    {
        float *t = malloc((n + 1) * sizeof(float));
        t[n] = 0.0f;
#pragma omp for schedule(static)
        for (int64_t i = 0; i < b; i++) {
            score_row(Ou + i * u, &cols, offset, t);
            float m = t[0], z = 0.0f;
#pragma omp simd reduction(max : m)
            for (int64_t j = 1; j < n; j++) m = t[j] > m ? t[j] : m;
#pragma omp simd
            for (int64_t j = 0; j < n; j++) t[j] -= m;
            exp_inplace(t, n);
#pragma omp simd reduction(+ : z)
            for (int64_t j = 0; j < n; j++) z += t[j];
            float inv_z = 1.0f / z;
            float xd = t[i] * inv_z;
            row_loss[i] = -log((double)(xd + EPS));
            float w = xd * scale / (xd + EPS);
            float c = w * inv_z;
            for (int64_t j = 0; j < n; j++) t[j] *= c;
            t[i] -= w;
            spread_back(dOu + i * u, &cols, t);
        }
        free(t);
    }
    return total_loss(row_loss, b, &cols);
}

/* BPR-max over A = f(o), f = elu with alpha (elu_alpha > 0) or the identity (elu_alpha = 0):
 *   s_i = softmax of row i over its negatives (j != i),  sig_ij = sigmoid(A_ii - A_ij),
 *   P = sum_j s sig,  Q = sum_j s A^2,  R = sum_j s sig^2,
 *   loss_i = -log(P + eps) + bpreg Q,
 *   dA_ij = s_ij [bpreg (A_ij^2 + 2 A_ij - Q) + (P - sig_ij^2) / (P + eps)]  (j != i),
 *   dA_ii = (R - P) / (P + eps),  dO = scale * dA * f'(o)  (elu: 1 where A > 0, else A + alpha).
 * The eager bpr_max and elu compute the same, pass by pass. */
double bprmax_loss(const float *Ou, int64_t b, int64_t u, const int64_t *scored, int64_t n, const float *offset,
                   float elu_alpha, float bpreg, float scale, float *dOu) {
    double *row_loss = malloc(b * sizeof(double));
    Columns cols = columns_of(scored, n, u);
#pragma omp parallel num_threads(threads) if (b * n >= PARALLEL_ELEMENTS)
    {
        float *A = malloc((3 * n + 1) * sizeof(float));
        float *e = A + n, *sig = A + 2 * n; /* e: exp, then softmax weights; sig: sigmoids, then dO */
#pragma omp for schedule(static)
        for (int64_t i = 0; i < b; i++) {
            score_row(Ou + i * u, &cols, offset, A);
            if (elu_alpha > 0.0f) {
#pragma omp simd
                for (int64_t j = 0; j < n; j++) e[j] = A[j] < 0.0f ? A[j] : 0.0f;
                exp_inplace(e, n);
#pragma omp simd
                for (int64_t j = 0; j < n; j++) A[j] = A[j] <= 0.0f ? elu_alpha * (e[j] - 1.0f) : A[j]; /* NaN stays */
            }
            float a_ii = A[i];
            A[i] = -INFINITY; /* the target is not among its negatives */
            float m = A[0];
#pragma omp simd reduction(max : m)
            for (int64_t j = 1; j < n; j++) m = A[j] > m ? A[j] : m;
            A[i] = a_ii;
#pragma omp simd
            for (int64_t j = 0; j < n; j++) {
                e[j] = A[j] - m;
                sig[j] = A[j] - a_ii;
            }
            exp_inplace(e, n);
            exp_inplace(sig, n);
#pragma omp simd
            for (int64_t j = 0; j < n; j++) sig[j] = 1.0f / (1.0f + sig[j]);
            e[i] = 0.0f;
            float z = 0.0f;
#pragma omp simd reduction(+ : z)
            for (int64_t j = 0; j < n; j++) z += e[j];
            float inv_z = 1.0f / z, P = 0.0f, Q = 0.0f, R = 0.0f;
#pragma omp simd reduction(+ : P, Q, R)
            for (int64_t j = 0; j < n; j++) {
                float s = e[j] * inv_z;
                e[j] = s;
                P += s * sig[j];
                Q += s * A[j] * A[j];
                R += s * sig[j] * sig[j];
            }
            row_loss[i] = -log((double)(P + EPS)) + (double)bpreg * Q;
            float inv = scale / (P + EPS), c = bpreg * scale, k = P * inv - c * Q;
#pragma omp simd
            for (int64_t j = 0; j < n; j++) {
                float d = e[j] * (c * (A[j] * A[j] + 2.0f * A[j]) - sig[j] * sig[j] * inv + k);
                if (elu_alpha > 0.0f && A[j] <= 0.0f) d *= A[j] + elu_alpha;
                sig[j] = d;
            }
            sig[i] = (R - P) * inv * (elu_alpha > 0.0f && a_ii <= 0.0f ? a_ii + elu_alpha : 1.0f);
            sig[n] = 0.0f;
            spread_back(dOu + i * u, &cols, sig);
        }
        free(A);
    }
    return total_loss(row_loss, b, &cols);
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

/* tensor/fastmath.h: exp, log, sin and cos that vectorize.
 *
 *   for (i...) y[i] = nb_exp(x[i]);   // the compiler turns this into AVX code
 *
 * libm's expf/logf are calls the compiler cannot vectorize; these are inline arithmetic on
 * float bits, so element-wise loops over them run 8 or 16 lanes at a time. Both use the classic
 * Cephes scheme (range reduction plus a minimax polynomial): nb_exp is within 2 ulp of expf
 * over its whole range, nb_log within 2 ulp of logf for every positive normal or denormal
 * input (tests/test_tensor.c sweeps both). Special values follow IEEE: exp(-inf) = 0,
 * exp(x > 88.72) = inf, log(0) = -inf, log(x < 0) = NaN, log(inf) = inf, NaN stays NaN.
 * nb_expm1, nb_tanh and nb_normal_cdf (the standard normal CDF, for GELU) are built on them:
 * within 2e-7 relative of expm1, 4e-7 of tanh and 4e-7 of Phi, in both tails (tests/test_ops_more.c
 * sweeps them; libm's 0.5 (1 + erff(x / sqrt 2)) has no correct digit left below x = -6).
 * nb_sin and nb_cos are within 2 ulp of sinf and cosf for |x| <= NB_TRIG_FAST_MAX (2^22; tests/
 * test_ops_more.c sweeps them), with sin(+-inf) = NaN and NaN staying NaN; beyond 2^22 their
 * reduction is not exact, and tensor/kernels.c sends any row holding such an x to libm.
 * In a double build (NB_DOUBLE) they are simply libm's exp, log, expm1, tanh, erfc, sin and cos. */
#ifndef NB_FASTMATH_H
#define NB_FASTMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "tensor/base.h"

/* Always inlined: a loop over these vectorizes only when the call is gone, and GCC's inliner,
 * once a file has many such loops (kernels.c has one per op), stops inlining some of them. */
#if defined(__GNUC__)
#define NB_MATH_INLINE static inline __attribute__((always_inline))
#else
#define NB_MATH_INLINE static inline
#endif

#ifdef NB_DOUBLE
NB_MATH_INLINE real nb_exp(real x) {
    return exp(x);
}
NB_MATH_INLINE real nb_log(real x) {
    return log(x);
}
NB_MATH_INLINE real nb_log1p(real x) {
    return log1p(x);
}
NB_MATH_INLINE real nb_log1p_unit(real x) {
    return log1p(x);
}
NB_MATH_INLINE real nb_expm1(real x) {
    return expm1(x);
}
NB_MATH_INLINE real nb_normal_cdf(real x) {
    return 0.5 * erfc(x * -0.70710678118654752440); /* erfc(-x / sqrt 2): no cancellation */
}
NB_MATH_INLINE real nb_tanh(real x) {
    return tanh(x);
}
NB_MATH_INLINE real nb_sin(real x) {
    return sin(x);
}
NB_MATH_INLINE real nb_cos(real x) {
    return cos(x);
}
#else

NB_MATH_INLINE float nb_bits_to_float(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}
NB_MATH_INLINE uint32_t nb_float_to_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* v rounded to the nearest integer for |v| < 2^22, as rintf in the default rounding mode: adding
 * and subtracting 1.5 * 2^23 leaves no fraction bits. Unlike rintf, which is a libm call on
 * baseline x86-64 (no SSE4.1 roundps), it vectorizes, and so does every loop over nb_exp. */
NB_MATH_INLINE float nb_round_small(float v) {
#ifdef __FAST_MATH__
    return rintf(v); /* reassociation would fold the two additions away */
#else
    return (v + 12582912.0f) - 12582912.0f;
#endif
}

/* e^x = 2^n e^r with n = round(x / ln 2) and r = x - n ln 2 (ln 2 split in two parts so r is
 * exact), e^r from a degree-6 polynomial on |r| <= ln 2 / 2, 2^n built in the exponent bits. */
NB_MATH_INLINE float nb_exp(float x) {
    float xc = x > 88.72283f ? 88.72283f : (x < -103.97f ? -103.97f : x);
    float n = nb_round_small(xc * 1.44269504088896341f);
    float r = xc - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float er = p * r * r + r + 1.0f;
    /* 2^n in two halves so n down to -150 (denormal results) stays representable */
    int32_t ni = (int32_t)n, n1 = ni / 2, n2 = ni - n1;
    float s1 = nb_bits_to_float((uint32_t)(n1 + 127) << 23);
    float s2 = nb_bits_to_float((uint32_t)(n2 + 127) << 23);
    float y = er * s1 * s2;
    y = x > 88.72283f ? INFINITY : y;
    y = x < -103.97f ? 0.0f : y;
    return x != x ? x : y;
}

/* log(1 + f) + e ln 2 for f in [sqrt(1/2) - 1, sqrt(2) - 1] from a degree-9 polynomial: the
 * core of nb_log and nb_log1p_unit. */
NB_MATH_INLINE float nb_log_core(float f, float e) {
    float z = f * f;
    float p = 7.0376836292e-2f;
    p = p * f - 1.1514610310e-1f;
    p = p * f + 1.1676998740e-1f;
    p = p * f - 1.2420140846e-1f;
    p = p * f + 1.4249322787e-1f;
    p = p * f - 1.6668057665e-1f;
    p = p * f + 2.0000714765e-1f;
    p = p * f - 2.4999993993e-1f;
    p = p * f + 3.3333331174e-1f;
    float y = p * f * z + e * -2.12194440e-4f - 0.5f * z;
    return f + y + e * 0.693359375f;
}

/* log x = e ln 2 + log m with x = m 2^e and m in [sqrt(1/2), sqrt(2)); log(1 + f) for
 * f = m - 1 from nb_log_core. Denormals are scaled by 2^23 first. */
NB_MATH_INLINE float nb_log(float x) {
    int tiny = x < 1.17549435e-38f;
    float xs = tiny ? x * 8388608.0f : x;
    uint32_t u = nb_float_to_bits(xs);
    float e = (float)((int32_t)((u >> 23) & 0xff) - 126) - (tiny ? 23.0f : 0.0f);
    float m = nb_bits_to_float((u & 0x007fffffu) | 0x3f000000u); /* [0.5, 1) */
    int lo = m < 0.707106781186547524f;
    e = lo ? e - 1.0f : e;
    float f = lo ? m + m - 1.0f : m - 1.0f;
    float y = nb_log_core(f, e);
    y = x == INFINITY ? INFINITY : y;
    y = x == 0.0f ? -INFINITY : y;
    y = x < 0.0f ? NAN : y;
    return x != x ? x : y;
}

/* log(1 + u) for u in [0, 1] only (log(1 + exp(-|x|)) in softplus and BCE with logits): no
 * special values, no division. 1 + u is m 2^e with e 0 or 1, and m - 1 is u itself or (u - 1) / 2,
 * so the rounding of 1 + u never enters; within 2 ulp of log1p (tests/test_tensor.c). */
NB_MATH_INLINE float nb_log1p_unit(float u) {
    int hi = u > 0.414213562373095049f; /* 1 + u > sqrt(2) */
    return nb_log_core(hi ? (u - 1.0f) * 0.5f : u, hi ? 1.0f : 0.0f);
}

/* log(1 + u) for -1 <= u <= 1 (its callers: BCE's log(1 - p)), accurate for tiny |u| too: with
 * w = 1 + u rounded, log(w) * u / (w - 1) cancels the rounding of w (Goldberg, 1991). Beyond
 * about 1e38, log(w) * u overflows. */
NB_MATH_INLINE float nb_log1p(float u) {
    float w = 1.0f + u;
    return w == 1.0f ? u : nb_log(w) * u / (w - 1.0f);
}

/* e^x - 1: x + x^2 E(x) for |x| <= 1/2 (E of degree 6, fitted by tools/fit_fastmath.py, so small
 * x keep their digits), nb_exp(x) - 1 beyond. */
NB_MATH_INLINE float nb_expm1(float x) {
    float e = 2.481461888e-05f;
    e = e * x + 1.995261555e-04f;
    e = e * x + 1.388909761e-03f;
    e = e * x + 8.333207108e-03f;
    e = e * x + 4.166666418e-02f;
    e = e * x + 1.666666716e-01f;
    e = e * x + 5.000000000e-01f;
    float near = x + x * x * e;
    return fabsf(x) <= 0.5f ? near : nb_exp(x) - 1.0f;
}

/* tanh x = -expm1(-2|x|) / (2 + expm1(-2|x|)) with x's sign: no cancellation for small |x|, and
 * exactly +-1 once exp(-2|x|) is below half an ulp of 1. */
NB_MATH_INLINE float nb_tanh(float x) {
    float em = nb_expm1(-2.0f * fabsf(x));
    return copysignf(-em / (2.0f + em), x);
}

/* The largest |x| whose reduction nb_sin and nb_cos do exactly. */
#define NB_TRIG_FAST_MAX 4194304.0f

/* sin(x + quarter pi/2): x = n pi/2 + r with n = round(x 2/pi) and |r| <= pi/4, in double: pi/2
 * is split as P1 + P2 with P1 of 31 bits, so n P1 is exact for n < 2^22 and x - n P1 too
 * (Sterbenz); what P1 + P2 misses of pi/2 (3.5e-27) times n stays below 1e-20. Then sin r or cos r
 * from polynomials of r^2 (S and C fitted by tools/fit_fastmath.py), the quadrant (n + quarter)
 * mod 4 choosing which and its sign. n's low bits are read from the bits of v + 1.5 * 2^52, the
 * sum that rounds v (as nb_round_small does in float); no float-to-int conversion, so an inf or
 * NaN x only makes r NaN. */
NB_MATH_INLINE float nb_sin_quadrant(float x, uint32_t quarter) {
    double v = (double)x * 0.63661977236758134308;
    double shifted = v + 6755399441055744.0;
#ifdef __FAST_MATH__
    double n = rint(v); /* reassociation would fold the two additions away */
#else
    double n = shifted - 6755399441055744.0;
#endif
    uint64_t bits;
    memcpy(&bits, &shifted, sizeof bits);
    uint32_t q = ((uint32_t)bits + quarter) & 3u;
    float r = (float)(((double)x - n * 1.5707963267341256) - n * 6.077100506506192e-11);
    float r2 = r * r;
    float s = -1.958721696e-04f;
    s = s * r2 + 8.332744241e-03f;
    s = s * r2 - 1.666666418e-01f;
    float c = 2.477500675e-05f;
    c = c * r2 - 1.389005804e-03f;
    c = c * r2 + 4.166669026e-02f;
    float sin_r = r + r * r2 * s;
    float cos_r = 1.0f - 0.5f * r2 + r2 * r2 * c;
    float y = (q & 1u) ? cos_r : sin_r;
    return (q & 2u) ? -y : y;
}

/* sin x for |x| <= NB_TRIG_FAST_MAX and +-inf, NaN; sin(-0) = -0. */
NB_MATH_INLINE float nb_sin(float x) {
    return x == 0 ? x : nb_sin_quadrant(x, 0);
}

/* cos x for |x| <= NB_TRIG_FAST_MAX and +-inf, NaN. */
NB_MATH_INLINE float nb_cos(float x) {
    return nb_sin_quadrant(x, 1);
}

/* u * u - u2 for u2 = u * u rounded to float: exactly, as fmaf(u, u, -u2) gives it (the error
 * of a float product is a float), but through double, where u * u is exact (48 bits): fmaf is a
 * libm call on baseline x86-64, without FMA, and kept every loop over nb_normal_cdf scalar. */
NB_MATH_INLINE float nb_square_error(float u, float u2) {
    return (float)((double)u * u - u2);
}

/* Phi(x), the standard normal CDF, accurate in both tails (where 0.5 (1 + erf(x / sqrt 2)) loses
 * its digits): 0.5 + x P(x^2) for |x| <= 1, and beyond it the smaller tail
 * Phi(-|x|) = exp(-x^2 / 2) Q(1 / (1 + |x| / 2)). P and Q (degrees 6 and 8) are least-squares
 * fits of the relative error by tools/fit_fastmath.py. */
NB_MATH_INLINE float nb_normal_cdf(float x) {
    float t = fabsf(x), x2 = x * x;
    float p = 5.367287486e-07f;
    p = p * x2 - 9.272785974e-06f;
    p = p * x2 + 1.153189151e-04f;
    p = p * x2 - 1.187287737e-03f;
    p = p * x2 + 9.973550215e-03f;
    p = p * x2 - 6.649038196e-02f;
    p = p * x2 + 3.989422917e-01f;
    float u = t > 15.0f ? 15.0f : t; /* the tail is 0 in float beyond 14.5; NaN stays NaN */
    float w = 1.0f / (1.0f + 0.5f * u);
    float q = -1.283091158e-01f;
    q = q * w + 3.735906780e-01f;
    q = q * w - 3.375454843e-01f;
    q = q * w + 1.093098661e-03f;
    q = q * w + 4.151889682e-02f;
    q = q * w + 1.495580077e-01f;
    q = q * w + 1.996319592e-01f;
    q = q * w + 1.994522661e-01f;
    q = q * w + 7.195976650e-07f;
    /* u^2 = u2 + e exactly; exp(-e / 2) = 1 - e / 2 to float precision. Without the correction
     * the rounding of x2 alone costs 4e-6 relative at x = -11. */
    float u2 = u * u, e = nb_square_error(u, u2);
    float tail = nb_exp(-0.5f * u2) * (1.0f - 0.5f * e) * q;
    float far = x < 0 ? tail : 1.0f - tail;
    return t <= 1.0f ? 0.5f + x * p : far;
}
#endif

#endif

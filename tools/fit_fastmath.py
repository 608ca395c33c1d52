#!/usr/bin/python3
"""Fits the polynomial coefficients of nb_normal_cdf and nb_expm1 (tensor/fastmath.h, float build).

Least squares on the relative error, on dense grids, in float64 (numpy), against Python's
math.erfc and math.expm1; the coefficients are then rounded to float and the float evaluation
(Horner in float32, as the C code does it) is checked on a finer grid. Prints the C lines and the
largest relative errors seen.

  nb_normal_cdf:  |x| <= 1:    Phi(x) = 0.5 + x P(x^2)                    (P of degree 6)
                  |x| >  1:    Phi(-|x|) = exp(-x^2 / 2) Q(1 / (1 + |x| / 2))   (Q of degree 8)
  nb_expm1:       |x| <= 0.5:  expm1(x) = x + x^2 E(x)                    (E of degree 6)
  nb_sin, nb_cos: |r| <= pi/4: sin(r) = r + r^3 S(r^2), cos(r) = 1 - r^2 / 2 + r^4 C(r^2)
                                                                          (S, C of degree 2)

Usage: /usr/bin/python3 tools/fit_fastmath.py
"""

import math

import numpy as np

SPLIT, TMAX = 1.0, 15.0


def phi_cdf(x):
    return 0.5 * math.erfc(-x / math.sqrt(2))


def fit(basis, target, xs, deg):
    """Coefficients c (float32) minimizing max-ish relative error of sum c_k basis(x)^k."""
    f = np.array([target(x) for x in xs])
    b = np.array([basis(x) for x in xs])
    a = np.vstack([b ** k for k in range(deg + 1)]).T
    c, *_ = np.linalg.lstsq(a / f[:, None], np.ones_like(f), rcond=None)
    return c.astype(np.float32)


def horner32(c, u):
    u = np.float32(u)
    p = np.float32(c[-1])
    for k in range(len(c) - 2, -1, -1):
        p = np.float32(p * u + c[k])
    return p


def main():
    # Phi near 0: (Phi(x) - 0.5) / x = P(x^2)
    xs = [SPLIT * math.cos(t) for t in np.linspace(0, math.pi / 2, 4000)]
    xs = [x for x in xs if x > 1e-4]
    p = fit(lambda x: x * x, lambda x: (phi_cdf(x) - 0.5) / x, xs, 6)
    # the tail: Phi(-t) exp(t^2 / 2) = Q(1 / (1 + t / 2))
    ts = np.linspace(SPLIT, TMAX, 6000)
    q = fit(lambda t: 1 / (1 + 0.5 * t), lambda t: phi_cdf(-t) * math.exp(t * t / 2), ts, 8)
    # expm1 near 0: (expm1(x) - x) / x^2 = E(x)
    es = [x for x in np.linspace(-0.5, 0.5, 4001) if abs(x) > 1e-4]
    e = fit(lambda x: x, lambda x: (math.expm1(x) - x) / (x * x), es, 6)

    # sin and cos on the reduced interval: (sin r - r) / r^3 = S(r^2), (cos r - 1 + r^2/2) / r^4 = C
    rs = [math.pi / 4 * math.cos(t) for t in np.linspace(0, math.pi / 2, 4000)]
    rs = [r for r in rs if r > 1e-3]
    s = fit(lambda r: r * r, lambda r: (math.sin(r) - r) / r ** 3, rs, 2)
    c = fit(lambda r: r * r, lambda r: (math.cos(r) - 1 + r * r / 2) / r ** 4, rs, 2)

    worst = 0.0
    for x in np.linspace(-SPLIT, SPLIT, 20001):
        x32 = np.float32(x)
        got = np.float32(0.5) + x32 * horner32(p, x32 * x32)
        want = phi_cdf(float(x32))
        worst = max(worst, abs(float(got) - want) / want)
    print('/* Phi, |x| <= %g: largest relative error in float %.2e */' % (SPLIT, worst))
    worst = 0.0
    for t in np.linspace(SPLIT, 13.0, 20001):
        t32 = np.float32(t)
        w = np.float32(1) / (np.float32(1) + np.float32(0.5) * t32)
        got = np.float32(math.exp(-float(t32) * float(t32) / 2)) * horner32(q, w)
        want = phi_cdf(-float(t32))
        worst = max(worst, abs(float(got) - want) / want)
    print('/* Phi, tail to -13 (exp exact): largest relative error in float %.2e */' % worst)
    worst = 0.0
    for x in np.linspace(-0.5, 0.5, 20001):
        x32 = np.float32(x)
        if x32 == 0:
            continue
        got = x32 + x32 * x32 * horner32(e, x32)
        want = math.expm1(float(x32))
        worst = max(worst, abs(float(got) - want) / abs(want))
    print('/* expm1, |x| <= 0.5: largest relative error in float %.2e */' % worst)
    worst_s = worst_c = 0.0
    for r in np.linspace(-math.pi / 4, math.pi / 4, 20001):
        r32 = np.float32(r)
        if r32 == 0:
            continue
        r2 = np.float32(r32 * r32)
        got_s = r32 + r32 * r2 * horner32(s, r2)
        got_c = np.float32(1) - np.float32(0.5) * r2 + r2 * r2 * horner32(c, r2)
        worst_s = max(worst_s, abs(float(got_s) - math.sin(float(r32))) / abs(math.sin(float(r32))))
        worst_c = max(worst_c, abs(float(got_c) - math.cos(float(r32))) / math.cos(float(r32)))
    print('/* sin, cos, |r| <= pi/4: largest relative errors in float %.2e, %.2e */' %
          (worst_s, worst_c))
    for name, k in (('P', p), ('Q', q), ('E', e), ('S', s), ('C', c)):
        print('%s (constant term first): %s' % (name, ', '.join('%.9ef' % v for v in k)))


if __name__ == '__main__':
    main()

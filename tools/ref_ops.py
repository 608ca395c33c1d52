#!/usr/bin/python3
"""Writes tests/ops_ref.h: PyTorch forward values and gradients for nabla's element-wise ops.

Each case applies one op to fixed float64 inputs, then backpropagates a fixed upstream gradient w
(of the output's shape), so the header holds the output and d sum(out * w) / d input for every
differentiable input. Values that ties and comparisons depend on sit on a grid of quarters, so a
float build reads them exactly. pow is also run at x == 0 for several exponents (PyTorch's
gradient of x^0 is 0 there; p x^(p-1) would be NaN).

Usage: /usr/bin/python3 tools/ref_ops.py [OUT]      (OUT defaults to tests/ops_ref.h)
"""

import math
import os
import sys

import torch
import torch.nn.functional as F

torch.manual_seed(0)
D = torch.float64


def uniform(shape, lo, hi):
    return lo + (hi - lo) * torch.rand(shape, dtype=D)


def quarters(shape, lo, hi):
    """Random multiples of 0.25 in [lo, hi]: exact in float, and ties are likely."""
    n = int(round((hi - lo) * 4)) + 1
    return lo + 0.25 * torch.randint(0, n, shape).to(D)


def where(c, a, b):
    return torch.where(c != 0, a, b)


# name, C op, scalar argument, inputs, which inputs get gradients, transpose in[0] first
UNARY = [('gelu', 'OPS_REF_GELU', F.gelu), ('silu', 'OPS_REF_SILU', F.silu),
         ('sin', 'OPS_REF_SIN', torch.sin), ('cos', 'OPS_REF_COS', torch.cos)]
CMP = [('gt', torch.gt), ('ge', torch.ge), ('lt', torch.lt), ('le', torch.le), ('eq', torch.eq),
       ('ne', torch.ne)]


def cases():
    out = []
    wide = torch.tensor([[-6.0, -3.0, -1.0, -0.5, 0.0], [0.25, 0.75, 1.5, 3.0, 6.0]], dtype=D)
    for name, op, fn in UNARY:
        out.append((name, op, 0.0, [wide], [True], False, lambda x, fn=fn: fn(x)))
        out.append((name + ' random', op, 0.0, [uniform((3, 4), -3, 3)], [True], False,
                    lambda x, fn=fn: fn(x)))
        out.append((name + ' transposed', op, 0.0, [uniform((4, 3), -3, 3)], [True], True,
                    lambda x, fn=fn: fn(x)))
    for alpha in (1.0, 0.5, 2.0):
        out.append(('elu alpha %g' % alpha, 'OPS_REF_ELU', alpha, [wide], [True], False,
                    lambda x, a=alpha: F.elu(x, a)))
    out.append(('elu transposed', 'OPS_REF_ELU', 1.0, [uniform((4, 3), -3, 3)], [True], True,
                lambda x: F.elu(x, 1.0)))
    for name, op, fn in [('maximum', 'OPS_REF_MAXIMUM', torch.maximum),
                         ('minimum', 'OPS_REF_MINIMUM', torch.minimum)]:
        out.append((name, op, 0.0, [quarters((3, 4), -1, 1), quarters((3, 4), -1, 1)],
                    [True, True], False, fn))
        out.append((name + ' broadcast', op, 0.0, [quarters((3, 1), -1, 1), quarters((4,), -1, 1)],
                    [True, True], False, fn))
        out.append((name + ' transposed', op, 0.0, [quarters((4, 3), -1, 1),
                                                   quarters((1, 4), -1, 1)],
                    [True, True], True, fn))
        # every tie in both orders, and NaN on either side (both inputs then get all of g)
        out.append((name + ' ties and NaN', op, 0.0,
                    [torch.tensor([[1.0, 2.0, -3.0, 0.0], [0.5, math.nan, 1.0, math.nan]], dtype=D),
                     torch.tensor([[1.0, 1.0, -3.0, 0.5], [0.5, 1.0, math.nan, math.nan]], dtype=D)],
                    [True, True], False, fn))
    out.append(('where', 'OPS_REF_WHERE', 0.0,
                [quarters((3, 4), -1, 1), uniform((3, 4), -2, 2), uniform((3, 4), -2, 2)],
                [False, True, True], False, where))
    out.append(('where broadcast', 'OPS_REF_WHERE', 0.0,
                [quarters((3, 1), -0.5, 0.5), uniform((2, 1, 4), -2, 2), uniform((4,), -2, 2)],
                [False, True, True], False, where))
    out.append(('where transposed cond', 'OPS_REF_WHERE', 0.0,
                [quarters((4, 3), -0.5, 0.5), uniform((3, 4), -2, 2), uniform((3, 1), -2, 2)],
                [False, True, True], True, where))
    for name, fn in CMP:
        out.append((name, 'OPS_REF_' + name.upper(), 0.0,
                    [quarters((3, 4), -1, 1), quarters((4,), -1, 1)], [False, False], False,
                    lambda a, b, fn=fn: fn(a, b).to(D)))
    px = torch.tensor([[0.0, 0.5, 1.5], [2.0, 3.0, 0.25]], dtype=D)
    for p in (0.0, 1.0, 2.0, 3.0, 0.5, 1.5, -1.0, 2.5):
        out.append(('pow %g at 0' % p, 'OPS_REF_POW', p, [px], [True], False,
                    lambda x, p=p: torch.pow(x, p)))
    for p in (0.0, 1.0, 2.0, 3.0):  # integer exponents also on negative inputs
        out.append(('pow %g negative' % p, 'OPS_REF_POW', p, [uniform((2, 3), -2, 0)], [True],
                    False, lambda x, p=p: torch.pow(x, p)))
    return out


def num(x):
    if math.isnan(x):
        return 'NAN'
    if math.isinf(x):
        return 'INFINITY' if x > 0 else '-INFINITY'
    s = '%.17g' % x
    if not any(c in s for c in '.en'):
        s += '.0'
    return s


def arr(name, t):
    vals = t.detach().reshape(-1).tolist()
    body = ', '.join(num(v) for v in vals)
    return 'static const double %s[%d] = {%s};' % (name, max(len(vals), 1), body)


def shape_init(shapes):
    rows = []
    for s in shapes:
        rows.append('{' + ', '.join(str(d) for d in s) + '}' if len(s) else '{0}')
    while len(rows) < 3:
        rows.append('{0}')
    return '{' + ', '.join(rows) + '}'


def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    out_path = argv[0] if argv else os.path.join(here, '..', 'tests', 'ops_ref.h')
    all_cases = cases()
    ops = []
    for c in all_cases:
        if c[1] not in ops:
            ops.append(c[1])
    data, rows = [], []
    for i, (name, op, p, ins, grads, transpose, fn) in enumerate(all_cases):
        leaves = [t.clone().requires_grad_(g) for t, g in zip(ins, grads)]
        args = list(leaves)
        if transpose:
            args[0] = args[0].t()
        y = fn(*args)
        pre = 'ops_ref_%d' % i
        for k, t in enumerate(leaves):
            data.append(arr('%s_in%d' % (pre, k), t))
        data.append(arr('%s_out' % pre, y))
        grad_names = ['NULL'] * 3
        w_name = 'NULL'
        if any(grads):
            w = uniform(tuple(y.shape), -1, 1)
            y.backward(w)
            w_name = pre + '_w'
            data.append(arr(w_name, w))
            for k, t in enumerate(leaves):
                if grads[k]:
                    grad_names[k] = '%s_grad%d' % (pre, k)
                    data.append(arr(grad_names[k], t.grad))
        in_names = ['%s_in%d' % (pre, k) for k in range(len(ins))] + ['NULL'] * (3 - len(ins))
        rows.append('    {"%s", %s, %s, %d, {%s}, %s, %d,\n     {%s}, %s, %s, {%s}},'
                    % (name, op, num(p), len(ins),
                       ', '.join(str(t.dim()) for t in ins) + ', 0' * (3 - len(ins)),
                       shape_init([tuple(t.shape) for t in ins]), int(transpose),
                       ', '.join(in_names), pre + '_out', w_name, ', '.join(grad_names)))
    lines = [
        '/* ops_ref.h: PyTorch reference values for the element-wise op tests (tests/test_ops_more.c).',
        ' *',
        ' * GENERATED by tools/ref_ops.py with PyTorch %s (float64); do not edit.' % torch.__version__,
        ' * Each case applies `op` (with scalar argument p: elu alpha, pow exponent) to inputs in[k]',
        ' * (row-major, shape[k]); with transpose0 the op reads in[0] transposed (dims 0 and 1). out',
        ' * is the result (row-major, the broadcast shape); grad[k] is d sum(out * w) / d in[k] for',
        ' * the differentiable inputs (NULL for the others, and w is NULL when there are none).',
        ' * where(c, a, b) is torch.where(c != 0, a, b); comparisons are 0/1 masks.',
        ' */',
        '#ifndef NABLA_TESTS_OPS_REF_H',
        '#define NABLA_TESTS_OPS_REF_H',
        '',
        '#include <math.h>',
        '#include <stddef.h>',
        '#include <stdint.h>',
        '',
        '/* clang-format off */',
        'enum ops_ref_op { %s };' % ', '.join(ops),
        '',
        'typedef struct {',
        '    const char *name;',
        '    enum ops_ref_op op;',
        '    double p;',
        '    int nin;',
        '    int ndim[3];',
        '    int64_t shape[3][4];',
        '    int transpose0;',
        '    const double *in[3];',
        '    const double *out;',
        '    const double *w;',
        '    const double *grad[3];',
        '} ops_ref_case;',
        '',
    ]
    lines += data
    lines += ['', 'static const ops_ref_case ops_ref_cases[] = {']
    lines += rows
    lines += ['};', '',
              '#define OPS_REF_NCASES ((int)(sizeof ops_ref_cases / sizeof ops_ref_cases[0]))',
              '/* clang-format on */', '', '#endif', '']
    with open(out_path, 'w') as f:
        f.write('\n'.join(lines))
    print('wrote %s: %d cases' % (out_path, len(rows)))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))

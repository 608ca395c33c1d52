#!/usr/bin/python3
"""Writes tests/norm_ref.h and tests/index_ref.h: PyTorch values and gradients for nabla's
normalization and statistics tests (tests/test_norm.c) and lookup tests (tests/test_ops_index.c).

Every input is drawn from a seeded generator and rounded to float32, so the float and double
builds of nabla read the same numbers; PyTorch then computes in float64. Each case lists its
inputs, an upstream gradient gy, the output y and the gradients that y.backward(gy) gives.
Batch norm cases in training run two steps (two inputs) and list the running statistics after
each; y and the gradients are those of the last step.

Usage: /usr/bin/python3 tools/ref_norm.py [DIR]      (DIR defaults to tests/)
"""

import math
import os
import sys

import torch
import torch.nn.functional as F

GEN = torch.Generator().manual_seed(1234)


def randn(*shape, scale=1.0, shift=0.0):
    """Seeded normal values rounded to float32, as float64."""
    x = torch.randn(tuple(shape), generator=GEN, dtype=torch.float64) * scale + shift
    return x.float().double()


def num(x):
    """%.17g spelled as a C double literal; NaN as NAN."""
    if math.isnan(x):
        return 'NAN'
    s = '%.17g' % x
    if not any(c in s for c in '.en'):
        s += '.0'
    return s


class Header:
    def __init__(self, prefix):
        self.prefix = prefix
        self.arrays = []  # C definitions of the data arrays
        self.count = 0

    def array(self, prefix, t):
        """Defines a static double array with t's values (row-major); returns its name."""
        if t is None:
            return 'NULL'
        self.count += 1
        name = '%s_%s_%d' % (self.prefix, prefix, self.count)
        vals = [num(v) for v in t.detach().reshape(-1).tolist()]
        lines = []
        for i in range(0, len(vals), 6):
            lines.append('    ' + ', '.join(vals[i:i + 6]) + ',')
        self.arrays.append('static const double %s[] = {\n%s\n};' % (name, '\n'.join(lines)))
        return name


def shape4(s):
    s = list(s)
    return '{' + ', '.join(str(v) for v in (s + [0] * (4 - len(s)))[:4]) + '}'


def grads(y, gy, *ts):
    """Backpropagates gy from y; returns each tensor's gradient (None for None)."""
    y.backward(gy)
    return [None if t is None else t.grad for t in ts]


def leaf(t):
    return None if t is None else t.clone().requires_grad_(True)


# ---- layer norm ------------------------------------------------------------------------------
# name, x shape, normalized_ndim, with w, with b, eps, shift of x (a large shift tests stability)
LAYER = [
    ('x [3, 5] w b', (3, 5), 1, True, True, 1e-5, 0.0),
    ('x [2, 3, 4] over 2 dims, no w b', (2, 3, 4), 2, False, False, 1e-5, 0.0),
    ('x [4, 7] shifted by 300, w', (4, 7), 1, True, False, 1e-5, 300.0),
    ('x [2, 3, 5] over all 3, b, eps 0.1', (2, 3, 5), 3, False, True, 0.1, 0.0),
]


def layer_cases(h):
    out = []
    for name, shape, nd, hw, hb, eps, shift in LAYER:
        ns = shape[len(shape) - nd:]
        x = leaf(randn(*shape, shift=shift))
        w = leaf(randn(*ns, scale=0.5, shift=1.0)) if hw else None
        b = leaf(randn(*ns)) if hb else None
        gy = randn(*shape)
        y = F.layer_norm(x, ns, w, b, eps)
        dx, dw, db = grads(y, gy, x, w, b)
        out.append('    {"%s", %d, %s, %d, %d, %d, %s,\n     %s, %s, %s, %s,\n     %s, %s, %s, %s},'
                   % (name, len(shape), shape4(shape), nd, hw, hb, num(eps),
                      h.array('ln_x', x), h.array('ln_w', w), h.array('ln_b', b),
                      h.array('ln_gy', gy), h.array('ln_y', y), h.array('ln_dx', dx),
                      h.array('ln_dw', dw), h.array('ln_db', db)))
    return out


# ---- batch norm ------------------------------------------------------------------------------
# name, x shape, with w, with b, training, with running stats, momentum, eps, shift of x
BATCH = [
    ('[6, 4] train w b running, 2 steps', (6, 4), True, True, True, True, 0.1, 1e-5, 0.5),
    ('[3, 2, 5, 3] train w b running, 2 steps', (3, 2, 5, 3), True, True, True, True, 0.3, 1e-5,
     0.5),
    ('[3, 2, 5, 3] eval w b', (3, 2, 5, 3), True, True, False, True, 0.1, 1e-5, 0.5),
    ('[4, 3] train, no w b, no running', (4, 3), False, False, True, False, 0.1, 1e-5, 0.5),
    ('[5, 3, 4] eval, no w b', (5, 3, 4), False, False, False, True, 0.1, 1e-3, 0.5),
    ('[2, 3, 2, 2] train w, running, 2 steps', (2, 3, 2, 2), True, False, True, True, 0.5, 1e-5,
     0.5),
    ('[16, 3, 5] train w b, x shifted by 500', (16, 3, 5), True, True, True, True, 0.1, 1e-5,
     500.0),
]


def batch_cases(h):
    out = []
    for name, shape, hw, hb, training, running, momentum, eps, shift in BATCH:
        C = shape[1]
        steps = 2 if training else 1
        xs = [randn(*shape, scale=1.5, shift=shift) for _ in range(steps)]
        w = randn(C, scale=0.5, shift=1.0) if hw else None
        b = randn(C) if hb else None
        rm0 = randn(C, scale=0.3) if running else None
        rv0 = (randn(C, scale=0.3).abs() + 0.5).float().double() if running else None
        rm = rm0.clone() if running else None
        rv = rv0.clone() if running else None
        after_m, after_v = [], []
        for t in range(steps):
            xt, wt, bt = leaf(xs[t]), leaf(w), leaf(b)
            y = F.batch_norm(xt, rm, rv, wt, bt, training, momentum, eps)
            if running:
                after_m.append(rm.clone())
                after_v.append(rv.clone())
        gy = randn(*shape)
        dx, dw, db = grads(y, gy, xt, wt, bt)
        am = [h.array('bn_rm', m) for m in after_m] + ['NULL'] * (2 - len(after_m))
        av = [h.array('bn_rv', v) for v in after_v] + ['NULL'] * (2 - len(after_v))
        out.append('    {"%s", %d, %s, %d, %d, %d, %d, %d, %s, %s,\n'
                   '     {%s, %s}, %s, %s, %s,\n     %s, %s, {%s, %s}, {%s, %s},\n'
                   '     %s, %s, %s, %s},'
                   % (name, len(shape), shape4(shape), hw, hb, training, running, steps,
                      num(momentum), num(eps), h.array('bn_x', xs[0]),
                      h.array('bn_x', xs[1]) if steps > 1 else 'NULL', h.array('bn_w', w),
                      h.array('bn_b', b), h.array('bn_gy', gy), h.array('bn_rm0', rm0),
                      h.array('bn_rv0', rv0), am[0], am[1], av[0], av[1], h.array('bn_y', y),
                      h.array('bn_dx', dx), h.array('bn_dw', dw), h.array('bn_db', db)))
    return out


# ---- var, std, cumsum ------------------------------------------------------------------------
# name, kind (0 var, 1 std, 2 cumsum), x shape, dims (None: all), correction, keepdim
STAT = [
    ('var [3, 4, 5] dims (0, 2)', 0, (3, 4, 5), (0, 2), 1, False),
    ('var [3, 4, 5] all, correction 0, keepdim', 0, (3, 4, 5), None, 0, True),
    ('var [4, 6] dim -1, correction 2', 0, (4, 6), (-1,), 2, False),
    ('std [3, 4, 5] dim 1, correction 2, keepdim', 1, (3, 4, 5), (1,), 2, True),
    ('std [3, 4, 5] all', 1, (3, 4, 5), None, 1, False),
    ('std [5, 3] dim 0, correction 0', 1, (5, 3), (0,), 0, False),
    ('cumsum [3, 4, 5] dim 1', 2, (3, 4, 5), (1,), 0, False),
    ('cumsum [3, 4, 5] dim -1', 2, (3, 4, 5), (-1,), 0, False),
    ('cumsum [6, 2] dim 0', 2, (6, 2), (0,), 0, False),
]


def stat_cases(h):
    out = []
    for name, kind, shape, dims, corr, keep in STAT:
        x = leaf(randn(*shape, scale=2.0, shift=1.0))
        if kind == 2:
            y = torch.cumsum(x, dims[0])
        else:
            d = dims if dims is not None else tuple(range(len(shape)))
            fn = torch.var if kind == 0 else torch.std
            y = fn(x, dim=d, correction=corr, keepdim=keep)
        gy = randn(*y.shape)
        (dx,) = grads(y, gy, x)
        dl = list(dims) if dims is not None else []
        out.append('    {"%s", %d, %d, %s, %d, {%s}, %d, %d, %d, %s,\n     %s, %s, %s, %s},'
                   % (name, kind, len(shape), shape4(shape), len(dl),
                      ', '.join(str(v) for v in (dl + [0] * (4 - len(dl)))), corr, int(keep),
                      y.dim(), shape4(y.shape), h.array('st_x', x), h.array('st_gy', gy),
                      h.array('st_y', y), h.array('st_dx', dx)))
    return out


# ---- argmax / argmin: ties and NaN -----------------------------------------------------------
NAN = float('nan')
ARG_X = [
    [1.0, NAN, 3.0, NAN, 2.0],
    [2.0, 5.0, 5.0, 1.0, 1.0],
    [1.0, 1.0, 0.0, 0.0, 7.0],
    [4.0, 4.0, 4.0, 4.0, NAN],
]


def arg_lines(h):
    x = torch.tensor(ARG_X, dtype=torch.float64)
    rows = ['static const double norm_ref_arg_x[4][5] = {']
    rows += ['    {%s},' % ', '.join(num(v) for v in r) for r in ARG_X]
    rows.append('};')
    for fname, fn in (('argmax', torch.argmax), ('argmin', torch.argmin)):
        for d in (0, 1):
            r = fn(x, dim=d).tolist()
            rows.append('static const int64_t norm_ref_%s%d[%d] = {%s};'
                        % (fname, d, len(r), ', '.join(str(v) for v in r)))
    return rows


# ---- embedding -------------------------------------------------------------------------------
EMB_V, EMB_E = 7, 3
EMB_IDS = [[3, 0, 6, 3], [3, 1, 0, 5]]  # repeated ids: their gradients add


def emb_lines(h):
    wt = leaf(randn(EMB_V, EMB_E))
    ids = torch.tensor(EMB_IDS)
    y = F.embedding(ids, wt)
    gy = randn(*y.shape)
    (dw,) = grads(y, gy, wt)
    return ['#define INDEX_REF_EMB_V %d' % EMB_V, '#define INDEX_REF_EMB_E %d' % EMB_E,
            'static const int64_t index_ref_emb_ids[2][4] = {%s};'
            % ', '.join('{%s}' % ', '.join(str(v) for v in r) for r in EMB_IDS),
            'static const double *const index_ref_emb_w = %s;' % h.array('emb_w', wt),
            'static const double *const index_ref_emb_gy = %s;' % h.array('emb_gy', gy),
            'static const double *const index_ref_emb_y = %s;' % h.array('emb_y', y),
            'static const double *const index_ref_emb_dw = %s;' % h.array('emb_dw', dw)]


def write(path, guard, title, body):
    lines = [
        '/* %s' % title,
        ' *',
        ' * GENERATED by tools/ref_norm.py with PyTorch %s (float64); do not edit.' % torch.__version__,
        ' * Inputs are float32 values (exact in both builds); gy is the upstream gradient and dx,',
        ' * dw, db what y.backward(gy) gives. Arrays are row-major; NULL where a case has none.',
        ' */',
        '#ifndef %s' % guard,
        '#define %s' % guard,
        '',
        '#include <math.h>',
        '#include <stddef.h>',
        '#include <stdint.h>',
        '',
        '/* clang-format off */',
    ] + body + ['/* clang-format on */', '', '#endif', '']
    with open(path, 'w') as f:
        f.write('\n'.join(lines))


def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    out_dir = argv[0] if argv else os.path.join(here, '..', 'tests')
    h = Header('norm_ref')
    layer = layer_cases(h)
    batch = batch_cases(h)
    stat = stat_cases(h)
    arg = arg_lines(h)
    body = h.arrays + [
        '',
        'typedef struct {',
        '    const char *name;',
        '    int ndim;',
        '    int64_t shape[4];',
        '    int normalized_ndim, has_w, has_b;',
        '    double eps;',
        '    const double *x, *w, *b, *gy;',
        '    const double *y, *dx, *dw, *db;',
        '} norm_ref_layer;',
        '',
        'static const norm_ref_layer norm_ref_layers[] = {',
    ] + layer + [
        '};',
        '',
        '/* Training runs `steps` steps (inputs x[0], x[1]) from running statistics rm0, rv0;',
        ' * rm[t], rv[t] are those after step t; y and the gradients are the last step\'s. */',
        'typedef struct {',
        '    const char *name;',
        '    int ndim;',
        '    int64_t shape[4];',
        '    int has_w, has_b, training, has_running, steps;',
        '    double momentum, eps;',
        '    const double *x[2], *w, *b, *gy;',
        '    const double *rm0, *rv0, *rm[2], *rv[2];',
        '    const double *y, *dx, *dw, *db;',
        '} norm_ref_batch;',
        '',
        'static const norm_ref_batch norm_ref_batches[] = {',
    ] + batch + [
        '};',
        '',
        'enum { NORM_REF_VAR, NORM_REF_STD, NORM_REF_CUMSUM };',
        '',
        'typedef struct {',
        '    const char *name;',
        '    int kind; /* NORM_REF_VAR, _STD or _CUMSUM */',
        '    int ndim;',
        '    int64_t shape[4];',
        '    int ndims, dims[4]; /* var, std: ndims 0 means every dim; cumsum: dims[0] */',
        '    int correction, keepdim;',
        '    int out_ndim;',
        '    int64_t out_shape[4];',
        '    const double *x, *gy, *y, *dx;',
        '} norm_ref_stat;',
        '',
        'static const norm_ref_stat norm_ref_stats[] = {',
    ] + stat + [
        '};',
        '',
        '#define NORM_REF_COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))',
        '',
        '/* argmax and argmin of norm_ref_arg_x along dim 0 and dim 1: ties and NaN */',
    ] + arg + ['']
    write(os.path.join(out_dir, 'norm_ref.h'), 'NABLA_TESTS_NORM_REF_H',
          'norm_ref.h: PyTorch references for layer norm, batch norm, var, std, cumsum, argmax.', body)
    hi = Header('index_ref')
    emb = emb_lines(hi)
    write(os.path.join(out_dir, 'index_ref.h'), 'NABLA_TESTS_INDEX_REF_H',
          'index_ref.h: PyTorch references for the embedding tests.', hi.arrays + [''] + emb + [''])
    print('wrote norm_ref.h (%d layer norm, %d batch norm, %d statistics cases) and index_ref.h'
          ' in %s' % (len(layer), len(batch), len(stat), out_dir))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))

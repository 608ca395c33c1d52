#!/usr/bin/python3
"""Writes tests/conv_ref.h: PyTorch's conv, pooling and upsampling values and gradients.

Each case runs one op (conv2d, conv_transpose2d, conv1d, max_pool2d, avg_pool2d, upsample
nearest) in float64 on inputs made by a rule both sides compute the same way (conv_ref_value
below: integers, then one division), takes the backward of sum(y * g) with g made by the same
rule, and records y and the gradients of x, w and b. The C test (tests/test_conv.c) rebuilds the
inputs, runs nabla's op (through a strided view of x where `view` says so: 1 a transposed
[N, H, C, W] tensor, 2 a narrowed one; the values are the same) and compares.

Usage: /usr/bin/python3 tools/ref_conv.py [OUT]      (OUT defaults to tests/conv_ref.h)
"""

import os
import sys

import torch
import torch.nn.functional as F

# seeds of the value rule for each tensor
SEED_X, SEED_W, SEED_B, SEED_G = 1, 2, 3, 4


def value(i, seed):
    """Element i of a tensor: distinct steps of 2/211 in [-1, 1), repeating every 211."""
    return ((i * 37 + seed * 101) % 211) / 105.5 - 1.0


def make(shape, seed):
    n = 1
    for s in shape:
        n *= s
    return torch.tensor([value(i, seed) for i in range(n)], dtype=torch.float64).reshape(shape)


# name, op, view, x shape, w shape (None for pooling), bias, options
# options: stride, padding, dilation, output_padding, groups (conv); kernel, stride, padding
# (pooling); scale (upsampling)
CASES = [
    ('conv2d_plain', 'CONV2D', 0, (2, 3, 7, 6), (5, 3, 3, 3), True, {}),
    ('conv2d_s2_p1', 'CONV2D', 0, (2, 3, 7, 6), (4, 3, 3, 2), True,
     dict(stride=(2, 1), padding=(1, 2))),
    ('conv2d_dil2', 'CONV2D', 1, (2, 3, 9, 8), (4, 3, 3, 3), True,
     dict(padding=(1, 0), dilation=(2, 2))),
    ('conv2d_groups2_nobias', 'CONV2D', 2, (2, 4, 7, 6), (6, 2, 3, 3), False,
     dict(stride=(2, 2), padding=(1, 1), groups=2)),
    ('conv2d_1x1', 'CONV2D', 0, (2, 3, 5, 4), (4, 3, 1, 1), True, {}),
    ('conv2d_vae_like', 'CONV2D', 0, (3, 2, 8, 8), (4, 2, 3, 3), True,
     dict(stride=(2, 2), padding=(1, 1))),
    ('conv2d_one_channel_dil', 'CONV2D', 2, (2, 3, 7, 6), (1, 3, 3, 3), True,
     dict(padding=(1, 2), dilation=(2, 1))),
    ('conv2d_narrow_groups2', 'CONV2D', 1, (2, 4, 6, 5), (2, 2, 3, 2), True,
     dict(padding=(1, 1), groups=2)),
    # more samples than the weight gradient's 8 slots: slots sum several samples
    ('conv2d_batch10', 'CONV2D', 0, (10, 3, 5, 6), (5, 3, 3, 3), True,
     dict(stride=(2, 1), padding=(1, 1))),
    ('conv2d_batch10_one_channel', 'CONV2D', 0, (10, 2, 5, 4), (1, 2, 3, 3), True,
     dict(padding=(1, 1))),
    ('convT_plain', 'CONVT', 0, (2, 3, 4, 5), (3, 4, 3, 3), True, {}),
    ('convT_s2_p1_op1', 'CONVT', 1, (2, 4, 4, 3), (4, 3, 3, 3), True,
     dict(stride=(2, 2), padding=(1, 1), output_padding=(1, 1))),
    ('convT_dil2_op', 'CONVT', 0, (2, 3, 4, 4), (3, 2, 3, 2), True,
     dict(stride=(1, 2), padding=(2, 1), dilation=(2, 1), output_padding=(1, 1))),
    ('convT_groups2_nobias', 'CONVT', 2, (2, 4, 3, 4), (4, 3, 3, 2), False,
     dict(stride=(2, 2), groups=2)),
    ('convT_1x1', 'CONVT', 0, (2, 3, 3, 4), (3, 5, 1, 1), True, {}),
    ('conv1d_s2_p1_d2', 'CONV1D', 1, (2, 3, 11), (4, 3, 3), True,
     dict(stride=(2,), padding=(1,), dilation=(2,))),
    ('conv1d_groups3_nobias', 'CONV1D', 0, (2, 6, 9), (3, 2, 2), False,
     dict(groups=3)),
    ('max_pool_k3_s2_p1', 'MAXPOOL', 0, (2, 3, 7, 6), None, False,
     dict(kernel=3, stride=2, padding=1)),
    ('max_pool_k2_s2', 'MAXPOOL', 1, (2, 3, 6, 5), None, False, dict(kernel=2, stride=2)),
    ('avg_pool_k3_s2_p1', 'AVGPOOL', 0, (2, 3, 7, 6), None, False,
     dict(kernel=3, stride=2, padding=1)),
    ('avg_pool_k2_s1', 'AVGPOOL', 2, (2, 3, 5, 6), None, False, dict(kernel=2, stride=1)),
    ('upsample_2', 'UPSAMPLE', 0, (2, 3, 3, 4), None, False, dict(scale=2)),
    ('upsample_3', 'UPSAMPLE', 1, (1, 2, 2, 3), None, False, dict(scale=3)),
]


def num(x):
    s = '%.17g' % x
    if not any(c in s for c in '.en'):
        s += '.0'
    return s


def pair(opts, key, default):
    """The option as two ints; a 1-D option (conv1d) fills index 0 and leaves the default."""
    v = opts.get(key, default)
    if not isinstance(v, (tuple, list)):
        return (v, v)
    return (v[0], v[1] if len(v) > 1 else default)


def run(op, xs, ws, bias, o):
    x = make(xs, SEED_X).requires_grad_()
    w = make(ws, SEED_W).requires_grad_() if ws else None
    b = make((ws[1] * o.get('groups', 1) if op == 'CONVT' else ws[0],), SEED_B).requires_grad_() \
        if bias else None
    if op == 'CONV2D':
        y = F.conv2d(x, w, b, o.get('stride', 1), o.get('padding', 0), o.get('dilation', 1),
                     o.get('groups', 1))
    elif op == 'CONVT':
        y = F.conv_transpose2d(x, w, b, o.get('stride', 1), o.get('padding', 0),
                               o.get('output_padding', 0), o.get('groups', 1),
                               o.get('dilation', 1))
    elif op == 'CONV1D':
        y = F.conv1d(x, w, b, o.get('stride', 1), o.get('padding', 0), o.get('dilation', 1),
                     o.get('groups', 1))
    elif op == 'MAXPOOL':
        y = F.max_pool2d(x, o['kernel'], o['stride'], o.get('padding', 0))
    elif op == 'AVGPOOL':
        y = F.avg_pool2d(x, o['kernel'], o['stride'], o.get('padding', 0), count_include_pad=True)
    else:
        y = F.interpolate(x, scale_factor=o['scale'], mode='nearest')
    g = make(tuple(y.shape), SEED_G)
    (y * g).sum().backward()
    return y, x, w, b


def arr(name, t):
    vals = t.detach().reshape(-1).tolist()
    lines = ['static const double %s[%d] = {' % (name, len(vals))]
    for i in range(0, len(vals), 6):
        lines.append('    ' + ', '.join(num(v) for v in vals[i:i + 6]) + ',')
    lines.append('};')
    return lines


def dims(shape):
    s = list(shape) + [0] * (4 - len(shape))
    return '%d, {%s}' % (len(shape), ', '.join(str(v) for v in s))


def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    out_path = argv[0] if argv else os.path.join(here, '..', 'tests', 'conv_ref.h')
    head = [
        '/* conv_ref.h: PyTorch reference values and gradients for the conv, pooling and',
        ' * upsampling tests (tests/test_conv.c).',
        ' *',
        ' * GENERATED by tools/ref_conv.py with PyTorch %s (float64); do not edit.' % torch.__version__,
        ' * Inputs: element i of x, w, b (row-major) is conv_ref_value(i, seed) with seeds',
        ' * CONV_REF_SEED_X, _W, _B; the upstream gradient of y is made the same way with',
        ' * CONV_REF_SEED_G. y, dx, dw, db are row-major; dw and db are NULL when absent.',
        ' * view: 0 x contiguous; 1 x read through a transpose of dims 1 and 2; 2 x narrowed.',
        ' */',
        '#ifndef NABLA_TESTS_CONV_REF_H',
        '#define NABLA_TESTS_CONV_REF_H',
        '',
        '#include <stdint.h>',
        '',
        '/* clang-format off */',
        '#define CONV_REF_SEED_X %d' % SEED_X,
        '#define CONV_REF_SEED_W %d' % SEED_W,
        '#define CONV_REF_SEED_B %d' % SEED_B,
        '#define CONV_REF_SEED_G %d' % SEED_G,
        '',
        '/* distinct steps of 2/211 in [-1, 1), repeating every 211 (tools/ref_conv.py: value) */',
        'static inline double conv_ref_value(int64_t i, int seed) {',
        '    return (double)((i * 37 + seed * 101) % 211) / 105.5 - 1.0;',
        '}',
        '',
        'enum conv_ref_op { CONV_REF_CONV2D, CONV_REF_CONVT, CONV_REF_CONV1D, CONV_REF_MAXPOOL,',
        '                   CONV_REF_AVGPOOL, CONV_REF_UPSAMPLE };',
        '',
        'typedef struct {',
        '    const char *name;',
        '    enum conv_ref_op op;',
        '    int view;',
        '    int xnd; int64_t x[4];',
        '    int wnd; int64_t w[4];     /* wnd 0: no weight (pooling, upsampling) */',
        '    int bias;',
        '    int stride[2], padding[2], dilation[2], output_padding[2], groups;',
        '    int kernel, scale;         /* pooling: kernel, stride[0], padding[0]; upsampling */',
        '    int ynd; int64_t y[4];',
        '    const double *y_vals, *dx, *dw, *db;',
        '} conv_ref_case;',
        '',
    ]
    body, table = [], []
    for name, op, view, xs, ws, bias, o in CASES:
        y, x, w, b = run(op, xs, ws, bias, o)
        body += arr('%s_y' % name, y) + arr('%s_dx' % name, x.grad)
        if w is not None:
            body += arr('%s_dw' % name, w.grad)
        if b is not None:
            body += arr('%s_db' % name, b.grad)
        st, pd = pair(o, 'stride', 1), pair(o, 'padding', 0)
        dl, op_ = pair(o, 'dilation', 1), pair(o, 'output_padding', 0)
        if op in ('MAXPOOL', 'AVGPOOL'):
            st, pd = (o['stride'], o['stride']), (o.get('padding', 0), o.get('padding', 0))
        table.append('    {"%s", CONV_REF_%s, %d, %s, %s, %d, {%d, %d}, {%d, %d}, {%d, %d}, '
                     '{%d, %d}, %d, %d, %d, %s, %s_y, %s_dx, %s, %s},'
                     % (name, op, view, dims(xs), dims(ws or ()), int(bias), st[0], st[1],
                        pd[0], pd[1], dl[0], dl[1], op_[0], op_[1], o.get('groups', 1),
                        o.get('kernel', 0), o.get('scale', 0), dims(tuple(y.shape)), name, name,
                        name + '_dw' if w is not None else 'NULL',
                        name + '_db' if b is not None else 'NULL'))
    lines = head + body + ['', 'static const conv_ref_case conv_ref_cases[] = {'] + table + [
        '};', '',
        '#define CONV_REF_NCASES ((int)(sizeof conv_ref_cases / sizeof conv_ref_cases[0]))',
        '/* clang-format on */', '', '#endif', '']
    with open(out_path, 'w') as f:
        f.write('\n'.join(lines))
    print('wrote %s: %d cases' % (out_path, len(CASES)))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/python3
"""bench/torch_ops.py: PyTorch's side of the per-op benchmark (bench/bench_ops.c is nabla's).

    /usr/bin/python3 bench/torch_ops.py [--threads N] [--reps R] [--op NAME]

The same ops, shapes, order and timing as bench_ops.c: each op, then y.sum().backward(), with
the inputs' gradients set to None each step (zero_grad(set_to_none=True)); the comparison,
argmax and one_hot run forward only. 3 untimed steps, then R timed ones in 5 batches
(bench/torch_bench.py); one JSON line per op with the fastest and the median batch's
milliseconds per step and the fastest batch's process CPU time per step.
"""

import argparse
import json

import torch
import torch.nn.functional as F

from torch_bench import time_batches


def inputs():
    torch.manual_seed(1)
    g = lambda *s: torch.randn(*s, requires_grad=True)  # noqa: E731
    t = {
        'x': g(128, 784), 'y': g(128, 784),
        'pos': (torch.rand(128, 784) + 0.5).requires_grad_(),  # log's input, in [0.5, 1.5)
        'mask': torch.rand(128, 784) < 0.5,  # where's condition
        'table': g(1000, 64), 'ids': torch.randint(0, 1000, (128, 32)),
        'W': g(784, 400),
        'xl': g(128, 6272), 'wl': g(6272), 'bl': g(6272),
        'xb': g(128, 32, 14, 14), 'wb': g(32), 'bb': g(32),
        'rm': torch.zeros(32), 'rv': torch.ones(32),
        'xp': g(128, 32, 28, 28),
    }
    t['ids_flat'] = t['ids'].reshape(-1)
    return t


# name, shape, the op (on the dict of inputs), backward: the rows of bench_ops.c, in its order.
CASES = [
    ('add', '[128, 784]', lambda t: t['x'] + t['y'], True),
    ('mul', '[128, 784]', lambda t: t['x'] * t['y'], True),
    ('exp', '[128, 784]', lambda t: t['x'].exp(), True),
    ('log', '[128, 784]', lambda t: t['pos'].log(), True),
    ('relu', '[128, 784]', lambda t: F.relu(t['x']), True),
    ('sigmoid', '[128, 784]', lambda t: torch.sigmoid(t['x']), True),
    ('tanh', '[128, 784]', lambda t: torch.tanh(t['x']), True),
    ('gelu', '[128, 784]', lambda t: F.gelu(t['x']), True),
    ('silu', '[128, 784]', lambda t: F.silu(t['x']), True),
    ('elu', '[128, 784]', lambda t: F.elu(t['x'], 1.0), True),
    ('sin', '[128, 784]', lambda t: t['x'].sin(), True),
    ('cos', '[128, 784]', lambda t: t['x'].cos(), True),
    ('maximum', '[128, 784]', lambda t: torch.maximum(t['x'], t['y']), True),
    ('where', '[128, 784]', lambda t: torch.where(t['mask'], t['x'], t['y']), True),
    ('gt (fwd)', '[128, 784]', lambda t: t['x'] > t['y'], False),
    ('dropout 0.5', '[128, 784]', lambda t: F.dropout(t['x'], 0.5, training=True), True),
    ('pow 3', '[128, 784]', lambda t: t['x'].pow(3), True),
    ('sum dim 1', '[128, 784]', lambda t: t['x'].sum(1), True),
    ('mean dim 1', '[128, 784]', lambda t: t['x'].mean(1), True),
    ('var dim 1', '[128, 784]', lambda t: t['x'].var(1), True),
    ('std dim 1', '[128, 784]', lambda t: t['x'].std(1), True),
    ('cumsum dim 1', '[128, 784]', lambda t: t['x'].cumsum(1), True),
    ('softmax dim 1', '[128, 784]', lambda t: F.softmax(t['x'], 1), True),
    ('log_softmax dim 1', '[128, 784]', lambda t: F.log_softmax(t['x'], 1), True),
    ('logsumexp dim 1', '[128, 784]', lambda t: t['x'].logsumexp(1), True),
    ('max dim 1', '[128, 784]', lambda t: t['x'].max(1).values, True),
    ('argmax dim 1 (fwd)', '[128, 784]', lambda t: t['x'].argmax(1), False),
    ('stack 2 dim 0', '2 x [128, 784]', lambda t: torch.stack([t['x'], t['y']], 0), True),
    ('transpose+contiguous', '[128, 784]', lambda t: t['x'].t().contiguous(), True),
    ('embedding', '[1000, 64][128, 32]', lambda t: F.embedding(t['ids'], t['table']), True),
    ('one_hot (fwd)', '[4096] -> 1000', lambda t: F.one_hot(t['ids_flat'], 1000), False),
    ('matmul', '[128, 784][784, 400]', lambda t: t['x'] @ t['W'], True),
    ('layer_norm', '[128, 6272]', lambda t: F.layer_norm(t['xl'], (6272,), t['wl'], t['bl'], 1e-5),
     True),
    ('batch_norm2d train', '[128, 32, 14, 14]',
     lambda t: F.batch_norm(t['xb'], t['rm'], t['rv'], t['wb'], t['bb'], True, 0.1, 1e-5), True),
    ('max_pool2d k2 s2', '[128, 32, 28, 28]', lambda t: F.max_pool2d(t['xp'], 2, 2), True),
    ('avg_pool2d k2 s2', '[128, 32, 28, 28]', lambda t: F.avg_pool2d(t['xp'], 2, 2), True),
    ('upsample_nearest2d x2', '[128, 32, 14, 14]',
     lambda t: F.interpolate(t['xb'], scale_factor=2, mode='nearest'), True),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--reps', type=int, default=50)
    ap.add_argument('--op', default=None, help='one row, by name')
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    t = inputs()
    grads = [v for v in t.values() if v.requires_grad]
    for name, shape, op, backward in CASES:
        if a.op is not None and a.op != name:
            continue

        def step():
            for v in grads:
                v.grad = None
            y = op(t)
            if backward:
                y.sum().backward()

        r = time_batches(step, 3, a.reps)
        print(json.dumps({'op': name, 'shape': shape, 'threads': a.threads, **r}), flush=True)


if __name__ == '__main__':
    main()

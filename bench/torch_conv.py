#!/usr/bin/python3
"""bench/torch_conv.py: PyTorch's side of the convolution benchmark (bench/bench_conv.c is nabla's).

    /usr/bin/python3 bench/torch_conv.py [--threads N] [--reps R]

The same five layers, steps and timing as bench_conv.c: forward plus backward of each conv VAE
layer at batch 128 (the input's gradient for every layer but the first), gradients set to None
each step; 3 untimed steps, then R timed ones in 5 batches (bench/torch_bench.py); one JSON
line per layer with the fastest and the median batch's milliseconds per step, and the fastest
batch's process CPU time per step (all threads).
"""

import argparse
import json

import torch
import torch.nn.functional as F

from torch_bench import time_batches

LAYERS = [
    ('conv 1->32 s2 28x28', False, 1, 32, 28, 2, 1, 0, False),
    ('conv 32->64 s2 14x14', False, 32, 64, 14, 2, 1, 0, True),
    ('convT 64->64 s2 7x7', True, 64, 64, 7, 2, 1, 1, True),
    ('convT 64->32 s2 14x14', True, 64, 32, 14, 2, 1, 1, True),
    ('conv 32->1 s1 28x28', False, 32, 1, 28, 1, 1, 0, True),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--reps', type=int, default=20)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    B = 128
    for name, transposed, C, O, H, stride, padding, opad, x_grad in LAYERS:
        x = torch.randn(B, C, H, H, requires_grad=x_grad)
        w = torch.randn(*((C, O, 3, 3) if transposed else (O, C, 3, 3)), requires_grad=True)
        b = torch.randn(O, requires_grad=True)
        g = None

        def step():
            nonlocal g
            x.grad = w.grad = b.grad = None
            if transposed:
                y = F.conv_transpose2d(x, w, b, stride, padding, opad)
            else:
                y = F.conv2d(x, w, b, stride, padding)
            if g is None:
                g = torch.randn_like(y)
            y.backward(g)

        r = time_batches(step, 3, a.reps)
        print(json.dumps({'layer': name, 'threads': a.threads, **r}), flush=True)


if __name__ == '__main__':
    main()

#!/usr/bin/python3
"""Reference VAE in PyTorch: the pytorch/examples `vae/main.py` model, reading IDX files directly.

Model: 784 -> 400 (ReLU) -> 20 mu, 20 logvar; decoder 20 -> 400 (ReLU) -> 784 (sigmoid).
Loss: BCE summed over pixels + analytic KL summed; reported per example. Adam lr 1e-3, batch 128,
unbinarized pixels in [0,1], shuffled training order, one z sample per example at test time too.
Like torchvision's dataset, the images are held as uint8 and converted per batch.

The random-number stream is consumed in the same order as the original script (DataLoader base
seed, RandomSampler seed, the reparameterization noise, the 64 samples drawn after each test), so
with the same seed and PyTorch version the losses follow the original script's curve.

Usage:
  OPENBLAS_NUM_THREADS=2 /usr/bin/python3 bench/torch_vae.py \
      --data /usr/share/datasets/fashion-mnist --epochs 10 --seed 1 --threads 1 --json

With --json, one line per epoch: epoch, train_loss, test_loss (nats per example), epoch_seconds
(training loop only: excludes reading the files and the test pass), samples_per_second,
peak_rss_mb (process peak resident set so far).
"""

import argparse
import gzip
import json
import os
import resource
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn, optim

IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype('>i2'), 0x0C: np.dtype('>i4'),
             0x0D: np.dtype('>f4'), 0x0E: np.dtype('>f8')}


def read_idx(path):
    """Reads an IDX file (gzip or plain); returns a numpy array. Raises ValueError on bad input."""
    with open(path, 'rb') as f:
        raw = f.read()
    if raw[:2] == b'\x1f\x8b':
        raw = gzip.decompress(raw)
    if len(raw) < 4:
        raise ValueError('%s: shorter than the 4-byte IDX magic' % path)
    zero, code, ndim = struct.unpack('>HBB', raw[:4])
    if zero != 0 or code not in IDX_TYPES:
        raise ValueError('%s: bad IDX magic %s' % (path, raw[:4].hex()))
    if ndim == 0 or len(raw) < 4 + 4 * ndim:
        raise ValueError('%s: bad dimension count %d' % (path, ndim))
    dims = struct.unpack('>%dI' % ndim, raw[4:4 + 4 * ndim])
    dtype = np.dtype(IDX_TYPES[code])
    need = int(np.prod(dims, dtype=object)) * dtype.itemsize
    body = raw[4 + 4 * ndim:]
    if len(body) != need:
        raise ValueError('%s: payload is %d bytes, dims %s need %d' % (path, len(body), dims, need))
    return np.frombuffer(body, dtype=dtype).reshape(dims)


def load_images(directory, prefix):
    """Loads `<prefix>-images-idx3-ubyte[.gz]` as a uint8 tensor [N, 784] (raw pixels)."""
    for name in (prefix + '-images-idx3-ubyte.gz', prefix + '-images-idx3-ubyte'):
        path = os.path.join(directory, name)
        if os.path.exists(path):
            a = read_idx(path)
            if a.ndim != 3 or a.dtype != np.uint8:
                raise ValueError('%s: expected uint8 images [N, rows, cols]' % path)
            return torch.from_numpy(a.reshape(a.shape[0], -1).copy())
    raise FileNotFoundError('no %s-images-idx3-ubyte[.gz] in %s' % (prefix, directory))


class VAE(nn.Module):
    def __init__(self, hidden=400):
        super().__init__()
        self.fc1 = nn.Linear(784, hidden)
        self.fc21 = nn.Linear(hidden, 20)
        self.fc22 = nn.Linear(hidden, 20)
        self.fc3 = nn.Linear(20, hidden)
        self.fc4 = nn.Linear(hidden, 784)

    def encode(self, x):
        h1 = F.relu(self.fc1(x))
        return self.fc21(h1), self.fc22(h1)

    def reparameterize(self, mu, logvar):
        std = torch.exp(0.5 * logvar)
        eps = torch.randn_like(std)
        return mu + eps * std

    def decode(self, z):
        h3 = F.relu(self.fc3(z))
        return torch.sigmoid(self.fc4(h3))

    def forward(self, x):
        mu, logvar = self.encode(x.view(-1, 784))
        z = self.reparameterize(mu, logvar)
        return self.decode(z), mu, logvar


def loss_function(recon_x, x, mu, logvar):
    bce = F.binary_cross_entropy(recon_x, x.view(-1, 784), reduction='sum')
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return bce + kld


def to_unit(pixels):
    """uint8 [B, 784] -> float32 in [0, 1], the same arithmetic as torchvision's ToTensor."""
    return pixels.float().div_(255)


def draw_loader_seed():
    """Consumes one int64 draw from the global generator, as DataLoader and RandomSampler do."""
    return int(torch.empty((), dtype=torch.int64).random_().item())


def train_epoch(model, optimizer, x, batch):
    model.train()
    draw_loader_seed()                       # DataLoader iterator's base seed
    g = torch.Generator()
    g.manual_seed(draw_loader_seed())        # RandomSampler's seed
    order = torch.randperm(x.shape[0], generator=g)
    total = 0.0
    for start in range(0, x.shape[0], batch):
        data = to_unit(x.index_select(0, order[start:start + batch]))
        optimizer.zero_grad()
        recon, mu, logvar = model(data)
        loss = loss_function(recon, data, mu, logvar)
        loss.backward()
        total += loss.item()
        optimizer.step()
    return total / x.shape[0]


def test_epoch(model, x, batch):
    model.eval()
    draw_loader_seed()                       # DataLoader iterator's base seed (sequential sampler)
    total = 0.0
    with torch.no_grad():
        for start in range(0, x.shape[0], batch):
            data = to_unit(x[start:start + batch])
            recon, mu, logvar = model(data)
            total += loss_function(recon, data, mu, logvar).item()
    return total / x.shape[0]


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--data', default='/usr/share/datasets/fashion-mnist')
    p.add_argument('--epochs', type=int, default=10)
    p.add_argument('--seed', type=int, default=1)
    p.add_argument('--threads', type=int, default=0, help='torch.set_num_threads (0: leave)')
    p.add_argument('--batch-size', type=int, default=128)
    p.add_argument('--hidden', type=int, default=400, help='hidden width (the reference is 400)')
    p.add_argument('--json', action='store_true')
    args = p.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    torch.manual_seed(args.seed)
    train_x = load_images(args.data, 'train')
    test_x = load_images(args.data, 't10k')
    model = VAE(args.hidden)
    optimizer = optim.Adam(model.parameters(), lr=1e-3)

    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        train_loss = train_epoch(model, optimizer, train_x, args.batch_size)
        seconds = time.perf_counter() - t0
        test_loss = test_epoch(model, test_x, args.batch_size)
        with torch.no_grad():                # the original saves 64 samples after each epoch
            model.decode(torch.randn(64, 20))
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        rec = {'epoch': epoch, 'train_loss': round(train_loss, 4), 'test_loss': round(test_loss, 4),
               'epoch_seconds': round(seconds, 3),
               'samples_per_second': round(train_x.shape[0] / seconds, 1),
               'peak_rss_mb': round(rss, 1)}
        if args.json:
            print(json.dumps(rec), flush=True)
        else:
            print('epoch %d  train %.4f  test %.4f  %.2f s  %.0f samples/s  peak RSS %.0f MB'
                  % (epoch, train_loss, test_loss, seconds, rec['samples_per_second'], rss),
                  flush=True)
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main(sys.argv[1:]))
    except (ValueError, OSError) as e:
        print('torch_vae: %s' % e, file=sys.stderr)
        sys.exit(1)

#!/usr/bin/python3
"""The convolutional VAE of `vae train --arch conv` in PyTorch, for side-by-side curves and speed.

Model (models/vae_nets.c, the same names and layouts): encoder.conv1 Conv2d 1->32 3x3 s2 p1, ReLU;
encoder.conv2 32->64 the same, ReLU; flatten; encoder.out Linear 3136 -> 2Z (mu, then logvar).
decoder.fc Linear Z -> 3136, ReLU, [64, 7, 7]; decoder.deconv1 ConvTranspose2d 64->64 3x3 s2 p1
op1, ReLU; decoder.deconv2 64->32 the same, ReLU; decoder.out Conv2d 32->1 3x3 p1: logits.
Loss: BCE-with-logits summed + analytic KL, per example; Adam lr 1e-3, batch 128, Z 16, pixels in
[0, 1], a fresh shuffle each epoch, one z sample per example at test time too.

Usage:
  /usr/bin/python3 bench/torch_conv_vae.py --data data/digits --epochs 10 --seed 1 --threads 2

Prints one line per epoch (with --json, a JSON object): train and test loss (nats per example),
the training loop's seconds and samples per second, peak RSS.
"""

import argparse
import json
import os
import resource
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn, optim

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_vae import load_images, to_unit  # noqa: E402


class Encoder(nn.Module):
    def __init__(self, z, c1, c2):
        super().__init__()
        self.conv1 = nn.Conv2d(1, c1, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(c1, c2, 3, stride=2, padding=1)
        self.out = nn.Linear(c2 * 7 * 7, 2 * z)

    def forward(self, x):
        h = F.relu(self.conv2(F.relu(self.conv1(x.view(-1, 1, 28, 28)))))
        return self.out(torch.flatten(h, 1)).chunk(2, dim=1)


class Decoder(nn.Module):
    def __init__(self, z, c1, c2):
        super().__init__()
        self.c2 = c2
        self.fc = nn.Linear(z, c2 * 7 * 7)
        self.deconv1 = nn.ConvTranspose2d(c2, c2, 3, stride=2, padding=1, output_padding=1)
        self.deconv2 = nn.ConvTranspose2d(c2, c1, 3, stride=2, padding=1, output_padding=1)
        self.out = nn.Conv2d(c1, 1, 3, padding=1)

    def forward(self, z):
        g = F.relu(self.fc(z)).view(-1, self.c2, 7, 7)
        return torch.flatten(self.out(F.relu(self.deconv2(F.relu(self.deconv1(g))))), 1)


class ConvVAE(nn.Module):
    def __init__(self, z=16, c1=32, c2=64):
        super().__init__()
        self.encoder = Encoder(z, c1, c2)
        self.decoder = Decoder(z, c1, c2)

    def loss(self, x):
        mu, logvar = self.encoder(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        recon = F.binary_cross_entropy_with_logits(self.decoder(z), x, reduction='sum')
        kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
        return recon + kl


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--data', default='data/digits')
    p.add_argument('--epochs', type=int, default=10)
    p.add_argument('--seed', type=int, default=1)
    p.add_argument('--threads', type=int, default=0, help='torch.set_num_threads (0: leave)')
    p.add_argument('--batch-size', type=int, default=128)
    p.add_argument('--latent', type=int, default=16)
    p.add_argument('--limit', type=int, default=0, help='use only the first N examples')
    p.add_argument('--json', action='store_true')
    args = p.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    train_x = load_images(args.data, 'train')
    test_x = load_images(args.data, 't10k')
    if args.limit:
        train_x, test_x = train_x[:args.limit], test_x[:args.limit]
    model = ConvVAE(args.latent)
    opt = optim.Adam(model.parameters(), lr=1e-3)
    B = args.batch_size
    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        order = torch.randperm(train_x.shape[0])
        total = 0.0
        model.train()
        for s in range(0, train_x.shape[0], B):
            x = to_unit(train_x.index_select(0, order[s:s + B]))
            opt.zero_grad()
            loss = model.loss(x)
            (loss / x.shape[0]).backward()
            opt.step()
            total += loss.item()
        seconds = time.perf_counter() - t0
        model.eval()
        test = 0.0
        with torch.no_grad():
            for s in range(0, test_x.shape[0], B):
                test += model.loss(to_unit(test_x[s:s + B])).item()
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        rec = {'epoch': epoch, 'train_loss': round(total / train_x.shape[0], 4),
               'test_loss': round(test / test_x.shape[0], 4), 'epoch_seconds': round(seconds, 3),
               'samples_per_second': round(train_x.shape[0] / seconds, 1),
               'peak_rss_mb': round(rss, 1)}
        if args.json:
            print(json.dumps(rec), flush=True)
        else:
            print('epoch %d  train %.4f  test %.4f  %.2f s  %.0f samples/s  peak RSS %.0f MB'
                  % (epoch, rec['train_loss'], rec['test_loss'], seconds,
                     rec['samples_per_second'], rss), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))

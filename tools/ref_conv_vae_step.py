#!/usr/bin/python3
"""Writes tests/data/conv_vae_step.safetensors and conv_cvae_step.safetensors: one training step
of the convolutional VAE (vae train --arch conv) computed by PyTorch in float64.

The layout of models/vae_nets.c, small: images 8x8 (D 64), channels C1 2, C2 3, Z 3, batch B 4;
the conditional file has K 3 classes (one-hot label joined to the flattened features before
encoder.out and to z before decoder.fc):
  h      = relu(conv1(x [B, 1, 8, 8]))          encoder.conv1: 3x3 stride 2 pad 1  (B, C1, 4, 4)
  h      = relu(conv2(h))                        encoder.conv2: the same            (B, C2, 2, 2)
  s      = out([flatten(h) | y])                 encoder.out: Linear C2*4 + K -> 2Z (B, 2Z)
  mu     = s[:, :Z], logvar = s[:, Z:];  z = mu + exp(0.5 logvar) * eps           (B, Z)
  g      = relu(fc([z | y])) -> (B, C2, 2, 2)    decoder.fc: Linear Z + K -> C2*4
  g      = relu(deconv1(g))                      ConvTranspose2d C2->C2 3x3 s2 p1 op1 (B, C2, 4, 4)
  g      = relu(deconv2(g))                      ConvTranspose2d C2->C1, the same    (B, C1, 8, 8)
  logits = out(g)                                decoder.out: Conv2d C1->1 3x3 pad 1 (B, 1, 8, 8)
  loss   = sum BCE-with-logits(logits, x) / B + KL(q || N(0, I)) / B

Tensors stored (F64): the parameters under their names, x (B, 64), y (B, K: the one-hot labels,
conditional file only), eps, loss, recon, kl, grad.<param> and adam1.<param> (after one Adam step,
lr 1e-3, other settings default).

Usage: /usr/bin/python3 tools/ref_conv_vae_step.py [DIR]   (default tests/data)
"""

import os
import sys

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ref_vae_step import read_safetensors, write_safetensors  # noqa: E402

R, C1, C2, Z, B = 8, 2, 3, 3, 4
F64 = torch.float64


class Encoder(nn.Module):
    def __init__(self, K):
        super().__init__()
        self.conv1 = nn.Conv2d(1, C1, 3, stride=2, padding=1, dtype=F64)
        self.conv2 = nn.Conv2d(C1, C2, 3, stride=2, padding=1, dtype=F64)
        self.out = nn.Linear(C2 * (R // 4) ** 2 + K, 2 * Z, dtype=F64)

    def forward(self, x, y):
        h = F.relu(self.conv2(F.relu(self.conv1(x.reshape(-1, 1, R, R)))))
        h = torch.flatten(h, 1)
        if y is not None:
            h = torch.cat([h, y], 1)
        s = self.out(h)
        return s[:, :Z], s[:, Z:]


class Decoder(nn.Module):
    def __init__(self, K):
        super().__init__()
        self.fc = nn.Linear(Z + K, C2 * (R // 4) ** 2, dtype=F64)
        self.deconv1 = nn.ConvTranspose2d(C2, C2, 3, stride=2, padding=1, output_padding=1,
                                          dtype=F64)
        self.deconv2 = nn.ConvTranspose2d(C2, C1, 3, stride=2, padding=1, output_padding=1,
                                          dtype=F64)
        self.out = nn.Conv2d(C1, 1, 3, padding=1, dtype=F64)

    def forward(self, z, y):
        if y is not None:
            z = torch.cat([z, y], 1)
        g = F.relu(self.fc(z)).reshape(-1, C2, R // 4, R // 4)
        g = F.relu(self.deconv2(F.relu(self.deconv1(g))))
        return torch.flatten(self.out(g), 1)


class ConvVAE(nn.Module):
    def __init__(self, K):
        super().__init__()
        self.encoder = Encoder(K)
        self.decoder = Decoder(K)


def write(path, K, seed):
    torch.manual_seed(seed)
    model = ConvVAE(K)
    x = torch.rand(B, R * R, dtype=F64)
    eps = torch.randn(B, Z, dtype=F64)
    y = F.one_hot(torch.tensor([0, 2, 1, 2])[:B], K).to(F64) if K else None
    names = [n for n, _ in model.named_parameters()]
    params = {n: p.detach().clone() for n, p in model.named_parameters()}

    mu, logvar = model.encoder(x, y)
    z = mu + torch.exp(0.5 * logvar) * eps
    logits = model.decoder(z, y)
    recon = F.binary_cross_entropy_with_logits(logits, x, reduction='sum') / B
    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / B
    loss = recon + kl
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
    torch.optim.Adam(model.parameters(), lr=1e-3).step()
    adam1 = {n: p.detach().clone() for n, p in model.named_parameters()}

    tensors = dict(params)
    tensors.update(x=x, eps=eps, loss=loss, recon=recon, kl=kl)
    if K:
        tensors['y'] = y
    tensors.update({'grad.' + n: grads[n] for n in names})
    tensors.update({'adam1.' + n: adam1[n] for n in names})
    metadata = {'generator': 'tools/ref_conv_vae_step.py', 'torch': torch.__version__,
                'rows': str(R), 'channels': '%d,%d' % (C1, C2), 'Z': str(Z), 'B': str(B),
                'K': str(K)}
    write_safetensors(path, tensors, metadata)
    back = read_safetensors(path)
    assert set(back) == set(tensors)
    print('wrote %s: %d tensors; loss %.17g recon %.17g kl %.17g'
          % (path, len(tensors), loss.item(), recon.item(), kl.item()))


def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    out = argv[0] if argv else os.path.join(here, '..', 'tests', 'data')
    os.makedirs(out, exist_ok=True)
    write(os.path.join(out, 'conv_vae_step.safetensors'), 0, 0)
    write(os.path.join(out, 'conv_cvae_step.safetensors'), 3, 1)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/python3
"""Writes tests/data/vae_step.safetensors: one VAE training step computed by PyTorch in float64.

A tiny VAE with the reference structure (ReLU MLP encoder giving mu and logvar, reparameterized z,
ReLU MLP decoder giving logits), D=12, H=8, Z=3, batch B=4:
  h      = relu(x @ encoder.fc1.weight^T + encoder.fc1.bias)          (B, H)
  s      = h @ encoder.fc2.weight^T + encoder.fc2.bias                 (B, 2Z)
  mu     = s[:, :Z], logvar = s[:, Z:]                                 (B, Z)
  z      = mu + exp(0.5 logvar) * eps                                  (B, Z)
  g      = relu(z @ decoder.fc1.weight^T + decoder.fc1.bias)           (B, H)
  logits = g @ decoder.fc2.weight^T + decoder.fc2.bias                 (B, D)
  recon  = sum BCE-with-logits(logits, x) / B
  kl     = -0.5 sum(1 + logvar - mu^2 - exp(logvar)) / B
  loss   = recon + kl                                  (nats per example)

Tensors stored (all F64, row-major): the parameters under their names, `x`, `eps`, the
intermediates `mu`, `logvar`, `z`, `logits`, the scalars `loss`, `recon`, `kl` (shape []),
`grad.<param>` (d loss / d param), and `adam1.<param>` (the parameters after one
torch.optim.Adam step, lr 1e-3, other settings default, on that gradient).

Usage: /usr/bin/python3 tools/ref_vae_step.py [OUT]   (default tests/data/vae_step.safetensors)
"""

import json
import os
import struct
import sys

import torch
import torch.nn.functional as F
from torch import nn

D, H, Z, B = 12, 8, 3, 4
F64 = torch.float64


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(D, H, dtype=F64)
        self.fc2 = nn.Linear(H, 2 * Z, dtype=F64)

    def forward(self, x):
        s = self.fc2(F.relu(self.fc1(x)))
        return s[:, :Z], s[:, Z:]


class Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(Z, H, dtype=F64)
        self.fc2 = nn.Linear(H, D, dtype=F64)

    def forward(self, z):
        return self.fc2(F.relu(self.fc1(z)))


class TinyVAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = Encoder()
        self.decoder = Decoder()


def vae_loss(model, x, eps):
    """Returns (loss, recon, kl, mu, logvar, z, logits); losses are per example."""
    mu, logvar = model.encoder(x)
    z = mu + torch.exp(0.5 * logvar) * eps
    logits = model.decoder(z)
    recon = F.binary_cross_entropy_with_logits(logits, x, reduction='sum') / x.shape[0]
    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / x.shape[0]
    return recon + kl, recon, kl, mu, logvar, z, logits


def write_safetensors(path, tensors, metadata):
    """Writes float64 tensors (name -> tensor, in order) as a safetensors file."""
    header = {'__metadata__': metadata}
    blobs = []
    offset = 0
    for name, t in tensors.items():
        t = t.detach().to(F64).contiguous()
        data = struct.pack('<%dd' % t.numel(), *t.reshape(-1).tolist())
        header[name] = {'dtype': 'F64', 'shape': list(t.shape),
                        'data_offsets': [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(',', ':')).encode('utf-8')
    text += b' ' * (-len(text) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    """Reads back a file written above; returns name -> tensor. Used as a round-trip check."""
    with open(path, 'rb') as f:
        raw = f.read()
    (n,) = struct.unpack('<Q', raw[:8])
    header = json.loads(raw[8:8 + n].decode('utf-8'))
    base = 8 + n
    out = {}
    end = 0
    for name, e in header.items():
        if name == '__metadata__':
            continue
        a, b = e['data_offsets']
        vals = struct.unpack('<%dd' % ((b - a) // 8), raw[base + a:base + b])
        out[name] = torch.tensor(vals, dtype=F64).reshape(e['shape'])
        end = max(end, b)
    assert base + end == len(raw) and n % 8 == 0
    return out


def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    out_path = argv[0] if argv else os.path.join(here, '..', 'tests', 'data', 'vae_step.safetensors')

    torch.manual_seed(0)
    model = TinyVAE()
    x = torch.rand(B, D, dtype=F64)
    eps = torch.randn(B, Z, dtype=F64)
    names = [n for n, _ in model.named_parameters()]
    params = {n: p.detach().clone() for n, p in model.named_parameters()}

    loss, recon, kl, mu, logvar, z, logits = vae_loss(model, x, eps)
    model.zero_grad()
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()}

    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    opt.step()
    adam1 = {n: p.detach().clone() for n, p in model.named_parameters()}

    tensors = dict(params)
    tensors.update(x=x, eps=eps, mu=mu, logvar=logvar, z=z, logits=logits,
                   loss=loss, recon=recon, kl=kl)
    tensors.update({'grad.' + n: grads[n] for n in names})
    tensors.update({'adam1.' + n: adam1[n] for n in names})
    metadata = {'generator': 'tools/ref_vae_step.py', 'torch': torch.__version__,
                'D': str(D), 'H': str(H), 'Z': str(Z), 'B': str(B),
                'loss': 'recon + kl, per example; BCE-with-logits on decoder logits',
                'adam': 'lr=1e-3 betas=(0.9,0.999) eps=1e-8 one step'}
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    write_safetensors(out_path, tensors, metadata)

    back = read_safetensors(out_path)
    assert set(back) == set(tensors)
    for n, t in tensors.items():
        assert torch.equal(back[n], t.detach()), n
    print('wrote %s: %d tensors, %d bytes; loss %.17g recon %.17g kl %.17g'
          % (out_path, len(tensors), os.path.getsize(out_path), loss.item(), recon.item(),
             kl.item()))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/python3
"""Writes tests/data/torch_conv_weights.safetensors: the weights of a PyTorch conv VAE (the model
of bench/torch_conv_vae.py with channels 4,8 and Z 4, PyTorch's default init after
torch.manual_seed(2)) and nothing else: F32 tensors under PyTorch's state_dict names, and in
`__metadata__` the architecture as `vae.config` ("arch=conv;channels=4,8;latent=4"; every other
key takes its default) plus reference numbers computed here in float64 from those F32 weights:
`ref.loss_at_mu`, `ref.recon_at_mu` and `ref.kl`: the negative ELBO with z at the posterior mean
(eps = 0), its BCE part and the KL, per example, over the first 8 test digits of data/digits.

The file has no optimizer state and no training position: `vae sample`, `vae eval` and
`vae train --resume` must still load it (tests/test_vae.c, tests/test_vae_cli.c).

Usage: /usr/bin/python3 tools/ref_torch_conv_weights.py [OUT]
"""

import json
import os
import struct
import sys

import torch
import torch.nn.functional as F

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, '..', 'bench'))
from torch_conv_vae import ConvVAE  # noqa: E402
from torch_vae import load_images, to_unit  # noqa: E402


def main(argv):
    out = argv[0] if argv else os.path.join(here, '..', 'tests', 'data',
                                            'torch_conv_weights.safetensors')
    torch.manual_seed(2)
    model = ConvVAE(4, 4, 8)
    x = to_unit(load_images(os.path.join(here, '..', 'data', 'digits'), 't10k')[:8]).double()
    m64 = ConvVAE(4, 4, 8).double()
    m64.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
    with torch.no_grad():
        mu, logvar = m64.encoder(x)
        recon = F.binary_cross_entropy_with_logits(m64.decoder(mu), x, reduction='sum') / 8
        kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / 8
    meta = {'vae.config': 'arch=conv;channels=4,8;latent=4',
            'ref.loss_at_mu': '%.17g' % (recon + kl).item(),
            'ref.recon_at_mu': '%.17g' % recon.item(), 'ref.kl': '%.17g' % kl.item(),
            'generator': 'tools/ref_torch_conv_weights.py', 'torch': torch.__version__}
    header, blobs, offset = {'__metadata__': meta}, [], 0
    for name, t in model.state_dict().items():
        data = t.detach().float().contiguous().numpy().astype('<f4').tobytes()
        header[name] = {'dtype': 'F32', 'shape': list(t.shape),
                        'data_offsets': [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(',', ':')).encode('utf-8')
    text += b' ' * (-len(text) % 8)
    with open(out, 'wb') as f:
        f.write(struct.pack('<Q', len(text)) + text + b''.join(blobs))
    print('wrote %s: %d tensors, %d bytes; loss at mu %s (recon %s, kl %s)'
          % (out, len(header) - 1, os.path.getsize(out), meta['ref.loss_at_mu'],
             meta['ref.recon_at_mu'], meta['ref.kl']))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))

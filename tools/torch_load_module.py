#!/usr/bin/python3
"""Loads a nabla module checkpoint into the equivalent PyTorch module with load_state_dict.

Usage: /usr/bin/python3 tools/torch_load_module.py ARCH MODEL IO [BACK]

MODEL is a checkpoint nabla wrote (nn_checkpoint_save of nn_module_params, no optimizer) for the
architecture ARCH, built the same way in tests/test_module.c; IO is a safetensors file with "x",
an input, and "y", nabla's output for it in evaluation mode. The script builds ARCH in torch,
calls load_state_dict(strict=True) (every key present, no key left over, every shape equal),
runs x through it in eval mode and compares with y. Prints what it checked; exits 1 on any
difference. With BACK, also writes the torch module's state_dict there as safetensors in torch's
own dtypes (F32, and I64 for num_batches_tracked), for nabla to load in turn. Run by
tests/test_module.c when /usr/bin/python3 has torch.
"""

import collections
import json
import struct
import sys

import torch
from torch import nn

DTYPES = {"F32": ("f", torch.float32), "F64": ("d", torch.float64), "I64": ("q", torch.int64)}
NAMES = {dtype: (name, fmt) for name, (fmt, dtype) in DTYPES.items()}


def read_safetensors(path):
    """The tensors of a safetensors file as a dict of torch tensors (json and struct only)."""
    buf = open(path, "rb").read()
    (n,) = struct.unpack_from("<Q", buf)
    header = json.loads(buf[8:8 + n].decode("utf-8"))
    header.pop("__metadata__", None)
    out = {}
    for name, t in header.items():
        (begin, end), (fmt, dtype) = t["data_offsets"], DTYPES[t["dtype"]]
        count = (end - begin) // struct.calcsize(fmt)
        values = struct.unpack_from("<%d%s" % (count, fmt), buf, 8 + n + begin)
        out[name] = torch.tensor(values, dtype=dtype).reshape(t["shape"])
    return out


def write_safetensors(path, tensors):
    """Writes a dict of torch tensors (F32, F64 or I64) as a safetensors file."""
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        dtype, fmt = NAMES[t.dtype]
        values = t.detach().reshape(-1).tolist()
        blob = struct.pack("<%d%s" % (len(values), fmt), *values)
        header[name] = {"dtype": dtype, "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def build(arch):
    """The torch twin of the network test_module.c builds under the same name."""
    if arch == "mlp":
        return nn.Sequential(collections.OrderedDict([
            ("0", nn.Linear(4, 6)), ("1", nn.ReLU()), ("head", nn.Linear(6, 2))]))
    if arch == "cnn":
        features = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
            nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1), nn.Flatten(),
            nn.LayerNorm(72), nn.Unflatten(1, (2, 36)), nn.Conv1d(2, 3, 5), nn.Flatten())
        return nn.Sequential(collections.OrderedDict([
            ("features", features), ("head", nn.Linear(96, 3))]))
    if arch == "emb":
        return nn.Sequential(
            nn.Embedding(10, 6), nn.Dropout(0.3), nn.GELU(), nn.Flatten(), nn.Linear(18, 8),
            nn.SiLU(), nn.LayerNorm(8), nn.ELU(0.5), nn.Linear(8, 4, bias=False), nn.LeakyReLU(0.2),
            nn.Tanh(), nn.Sigmoid())
    raise SystemExit("torch_load_module.py: unknown architecture '%s'" % arch)


def main():
    if len(sys.argv) not in (4, 5):
        raise SystemExit(__doc__)
    arch, model_path, io_path = sys.argv[1:4]
    model = build(arch)
    state = read_safetensors(model_path)
    model.load_state_dict(state, strict=True)  # raises on a missing, extra or misshapen key
    model.eval()
    io = read_safetensors(io_path)
    with torch.no_grad():
        x = io["x"].long() if arch == "emb" else io["x"]  # nabla's ids are integer-valued reals
        y = model(x)
    err = (y - io["y"]).abs().max().item()
    scale = max(1.0, io["y"].abs().max().item())
    print("torch_load_module.py: %s: %d keys loaded strictly, max |torch - nabla| = %.3g"
          % (arch, len(state), err))
    if tuple(y.shape) != tuple(io["y"].shape) or not err <= 1e-5 * scale:
        print("torch_load_module.py: %s: outputs differ" % arch)
        sys.exit(1)
    if len(sys.argv) == 5:
        write_safetensors(sys.argv[4], model.state_dict())


if __name__ == "__main__":
    main()

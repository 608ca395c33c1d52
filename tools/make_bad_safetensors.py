#!/usr/bin/env python3
"""tools/make_bad_safetensors.py [DIR]: writes one small malformed safetensors file per kind of
damage the reader must reject (default DIR: tests/data/safetensors). tests/test_safetensors.c
opens each and checks the error code and message. Standard library only."""
import json
import os
import struct
import sys


def st(header, data=b"", n=None, pad=True):
    """A file: 8-byte length, header (str or bytes; padded with spaces to 8), data."""
    h = header.encode() if isinstance(header, str) else header
    if pad:
        h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h) if n is None else n) + h + data


def entry(dtype="F32", shape=(2,), offsets=(0, 8)):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


def js(obj):
    return json.dumps(obj, separators=(",", ":"))


GOOD = js({"__metadata__": {"epoch": "1"}, "a": entry(), "b": entry("I64", (1,), (8, 16))})
GOOD_DATA = struct.pack("<2fq", 1.5, -2.0, 7)
deep = "[" * 100 + "]" * 100

CASES = {
    "too_short": b"\x08\x00\x00\x00\x00",
    "header_too_large": struct.pack("<Q", 100_000_001) + b"{}      ",
    "header_past_eof": st("{}", n=64),
    "bad_utf8": st(b'{"a\xff":' + js(entry()).encode() + b"}", bytes(8)),
    "overlong_utf8": st(b'{"a\xc0\xaf":' + js(entry()).encode() + b"}", bytes(8)),
    "bad_json": st('{"a":{"dtype":"F32",,"shape":[2],"data_offsets":[0,8]}}', bytes(8)),
    "trailing_comma": st('{"a":' + js(entry()) + ",}", bytes(8)),
    "lone_surrogate": st('{"a\\ud800":' + js(entry()) + "}", bytes(8)),
    "too_deep": st('{"a":{"dtype":"F32","shape":' + deep + ',"data_offsets":[0,0]}}'),
    "not_object": st("[1,2,3]"),
    "leading_space": st(" {}"),
    "entry_not_object": st('{"w":[1,2]}'),
    "missing_field": st('{"w":{"dtype":"F32","shape":[2]}}', bytes(8)),
    "dtype_not_string": st('{"w":{"dtype":32,"shape":[2],"data_offsets":[0,8]}}', bytes(8)),
    "shape_not_array": st('{"w":{"dtype":"F32","shape":"2","data_offsets":[0,8]}}', bytes(8)),
    "unknown_field": st('{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"strides":[1]}}', bytes(8)),
    "duplicate_field": st('{"w":{"dtype":"F32","dtype":"F32","shape":[2],"data_offsets":[0,8]}}', bytes(8)),
    "unknown_dtype": st(js({"w": entry("F33")}), bytes(8)),
    "negative_shape": st('{"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}', bytes(8)),
    "fractional_shape": st('{"w":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}}', bytes(8)),
    "offsets_three": st(js({"w": entry(offsets=(0, 4, 8))}), bytes(8)),
    "offsets_negative": st('{"w":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}}', bytes(8)),
    "shape_overflow": st(js({"w": entry(shape=(2**32, 2**32, 2**32), offsets=(0, 0))})),
    "bytes_overflow": st(js({"w": entry("F64", (2**62,), (0, 0))})),
    "offsets_backward": st(js({"w": entry(offsets=(8, 0))}), bytes(8)),
    "size_mismatch": st(js({"w": entry(offsets=(0, 12))}), bytes(12)),
    "offsets_overlap": st(js({"a": entry(), "b": entry(offsets=(4, 12))}), bytes(12)),
    "offsets_gap": st(js({"a": entry(), "b": entry(offsets=(12, 20))}), bytes(20)),
    "offsets_past_end": st(js({"w": entry(shape=(4,), offsets=(0, 16))}), bytes(8)),
    "truncated": st(GOOD, GOOD_DATA)[:-3],
    "trailing_bytes": st(GOOD, GOOD_DATA) + b"junk",
    "duplicate_name": st('{"a":' + js(entry()) + ',"a":' + js(entry(offsets=(8, 16))) + "}", bytes(16)),
    "duplicate_meta_key": st('{"__metadata__":{"k":"1","k":"2"}}'),
    "metadata_not_strings": st('{"__metadata__":{"epoch":3}}'),
    "metadata_not_object": st('{"__metadata__":"epoch 3"}'),
    "nul_in_name": st('{"a\\u0000b":' + js(entry()) + "}", bytes(8)),
}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join("tests", "data", "safetensors")
    os.makedirs(out, exist_ok=True)
    for name, blob in CASES.items():
        with open(os.path.join(out, name + ".safetensors"), "wb") as f:
            f.write(blob)
    with open(os.path.join(out, "good.safetensors"), "wb") as f:
        f.write(st(GOOD, GOOD_DATA))
    print("wrote %d files to %s" % (len(CASES) + 1, out))


if __name__ == "__main__":
    main()

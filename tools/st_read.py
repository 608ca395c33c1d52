#!/usr/bin/env python3
"""tools/st_read.py FILE: reads a safetensors file with nothing but json and struct and prints
'meta "key" "value"' lines, then one line per tensor: "name" DTYPE [shape] values..."""
import json, struct, sys

FMT = {"F64": "d", "F32": "f", "I64": "q", "I32": "i", "I16": "h", "I8": "b", "U8": "B", "BOOL": "?"}
buf = open(sys.argv[1], "rb").read()
(n,) = struct.unpack_from("<Q", buf)
header = json.loads(buf[8:8 + n].decode("utf-8"))
for key, value in sorted(header.pop("__metadata__", {}).items()):
    print("meta", json.dumps(key), json.dumps(value))
for name, t in sorted(header.items(), key=lambda item: item[1]["data_offsets"]):
    (begin, end), fmt = t["data_offsets"], FMT[t["dtype"]]
    values = struct.unpack_from("<%d%s" % ((end - begin) // struct.calcsize(fmt), fmt), buf, 8 + n + begin)
    print(json.dumps(name), t["dtype"], json.dumps(t["shape"]), *[repr(v) for v in values])

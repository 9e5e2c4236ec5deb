"""The float tensors of a safetensors file as flat tuples, by name, for the shell tests'
checks written in Python (no numpy): load(path) -> {name: (v0, v1, ...)}; {} when the file
cannot be read."""
import json
import struct


def load(path):
    try:
        raw = open(path, 'rb').read()
    except OSError:
        return {}
    n = struct.unpack('<Q', raw[:8])[0]
    head, out = json.loads(raw[8:8 + n]), {}
    for name, v in head.items():
        if name == '__metadata__':
            continue
        a, b = v['data_offsets']
        f = {'F64': 'd', 'F32': 'f'}.get(v['dtype'])
        if f:
            out[name] = struct.unpack('<%d%s' % ((b - a) // struct.calcsize(f), f), raw[8 + n + a:8 + n + b])
    return out

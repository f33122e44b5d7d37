"""Reads an ONNX TensorProto .pb file into a numpy array without the onnx package.

Only what the shared test data uses: dims (field 1), data_type (2) and raw_data (9)."""
import numpy as np

DTYPES = {1: np.float32, 6: np.int32, 7: np.int64, 9: np.bool_, 10: np.float16, 11: np.float64, 2: np.uint8, 3: np.int8}


def _varint(buf, i):
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, i
        shift += 7


def read_tensor(path):
    buf = open(path, "rb").read()
    i, dims, dtype, raw = 0, [], 1, b""
    while i < len(buf):
        key, i = _varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
            if field == 1:
                dims.append(value)
            elif field == 2:
                dtype = value
        elif wire == 2:
            length, i = _varint(buf, i)
            chunk = buf[i:i + length]
            i += length
            if field == 1:  # packed dims
                j = 0
                while j < len(chunk):
                    v, j = _varint(chunk, j)
                    dims.append(v)
            elif field == 9:
                raw = chunk
        elif wire == 5:
            i += 4
        elif wire == 1:
            i += 8
        else:
            raise ValueError(f"{path}: unsupported wire type {wire}")
    return np.frombuffer(raw, dtype=DTYPES[dtype]).reshape(dims)

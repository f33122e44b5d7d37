#!/usr/bin/env python3
"""Writes a test data set for each public model that scripts/fetch-public-models.sh unpacked:
seeded random inputs and ONNX Runtime's outputs for them, as `test_data_set_0/{input,output}_N.pb`
beside the model, the layout of the shared models. The backend suites run each model on nnc and
compare with these outputs (`public_models_match_onnx_runtime`).

Usage: scripts/public_models_reference.py DIR   (DIR holds one folder per model, each with
model.onnx; needs numpy and onnxruntime, which the fetch script unpacks; the .pb files are
written by hand, so the onnx package is not needed)
"""
import os
import sys

import numpy as np
import onnxruntime as ort

# Each model's inputs: name -> (shape, dtype, how to fill). The shapes are those the model's
# package feeds it (nudenet: 320x320 images; ddddocr: 416x416 detection, 64-pixel-high text
# lines; basic-pitch: its 43,844-sample window).
INPUTS = {
    "nudenet_320n": {"images": ((1, 3, 320, 320), "uniform")},
    "ddddocr_common_det": {"images": ((1, 3, 416, 416), "uniform")},
    "ddddocr_common": {"input1": ((1, 1, 64, 160), "uniform")},
    "basic_pitch_nmp": {"serving_default_input_2:0": ((1, 43844, 1), "audio")},
    # silero-vad's default model branches on the sample rate, an input: one data set per rate,
    # each with its window (512 samples at 16 kHz, 256 at 8 kHz) and a zero recurrent state.
    "silero_vad_16k": {"input": ((1, 512), "audio"), "state": ((2, 1, 128), "zeros"), "sr": ((), 16000)},
    "silero_vad_8k": {"input": ((1, 256), "audio"), "state": ((2, 1, 128), "zeros"), "sr": ((), 8000)},
}


def fill(rng, shape, how):
    if isinstance(how, int):
        return np.array(how, dtype=np.int64).reshape(shape)
    if how == "zeros":
        return np.zeros(shape, dtype=np.float32)
    if how == "uniform":
        return rng.random(shape, dtype=np.float32)
    # A chord of three tones with a little noise, at the level basic-pitch's audio has.
    t = np.arange(shape[1], dtype=np.float64) / 22050.0
    wave = sum(0.2 * np.sin(2 * np.pi * f * t) for f in (261.63, 329.63, 392.0))
    wave = wave + 0.01 * rng.standard_normal(shape[1])
    return wave.astype(np.float32).reshape(shape)


def varint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field(number, wire, payload):
    return varint(number << 3 | wire) + payload


def tensor_proto(name, array):
    """A serialized onnx.TensorProto (dims, data_type, name, raw_data) without the onnx package."""
    codes = {np.dtype(np.float32): 1, np.dtype(np.int64): 7, np.dtype(np.int32): 6, np.dtype(np.bool_): 9}
    out = b"".join(field(1, 0, varint(d)) for d in array.shape)
    out += field(2, 0, varint(codes[array.dtype]))
    encoded = name.encode()
    out += field(8, 2, varint(len(encoded)) + encoded)
    raw = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()
    out += field(9, 2, varint(len(raw)) + raw)
    return out


def main():
    root = sys.argv[1]
    for model, inputs in INPUTS.items():
        folder = os.path.join(root, model)
        path = os.path.join(folder, "model.onnx")
        if not os.path.exists(path):
            sys.exit(f"{path} is missing: run scripts/fetch-public-models.sh")
        options = ort.SessionOptions()
        options.intra_op_num_threads = 2
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        rng = np.random.default_rng(0)
        feeds = {name: fill(rng, shape, how) for name, (shape, how) in inputs.items()}
        order = [i.name for i in session.get_inputs()]
        outputs = session.run(None, feeds)
        data = os.path.join(folder, "test_data_set_0")
        os.makedirs(data, exist_ok=True)
        for i, name in enumerate(order):
            with open(os.path.join(data, f"input_{i}.pb"), "wb") as f:
                f.write(tensor_proto(name, feeds[name]))
        for i, (meta, value) in enumerate(zip(session.get_outputs(), outputs)):
            with open(os.path.join(data, f"output_{i}.pb"), "wb") as f:
                f.write(tensor_proto(meta.name, np.asarray(value)))
        shapes = ", ".join(str(np.asarray(v).shape) for v in outputs)
        print(f"[public-models] {model}: ONNX Runtime {ort.__version__} outputs {shapes}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Writes a small convolutional network with SiLU activations and squeeze-and-excitation blocks
(the shape of EfficientNet/MobileNetV3 stages) as ONNX, with random weights, plus one test input
and ONNX Runtime's outputs for it: the model issue 17 asks nnc to run within 1.3x of ONNX Runtime.

Stem 3x3/2 conv to 32 channels, then blocks of: 1x1 expand, SiLU, 3x3 depthwise, SiLU,
squeeze-and-excitation (global average pool, 1x1 reduce, SiLU, 1x1 expand, sigmoid, scale),
1x1 project (+ residual where shapes allow); global average pool and a linear classifier.

Usage: scripts/make_silu_se_net.py OUT_DIR   (writes OUT_DIR/model.onnx, OUT_DIR/test_data_set_0/)
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

RNG = np.random.default_rng(17)
nodes, inits = [], []


def weight(name, shape, fan_in):
    w = (RNG.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
    inits.append(numpy_helper.from_array(w, name))
    return name


def conv(x, name, cin, cout, k, stride=1, groups=1):
    w = weight(f"{name}.w", [cout, cin // groups, k, k], cin // groups * k * k)
    b = weight(f"{name}.b", [cout], cout)
    p = k // 2
    nodes.append(helper.make_node("Conv", [x, w, b], [name], kernel_shape=[k, k], strides=[stride, stride],
                                  pads=[p, p, p, p], group=groups))
    return name


def silu(x):
    s = f"{x}.sigmoid"
    nodes.append(helper.make_node("Sigmoid", [x], [s]))
    nodes.append(helper.make_node("Mul", [x, s], [f"{x}.silu"]))
    return f"{x}.silu"


def squeeze_excite(x, name, c, reduced):
    pooled = f"{name}.pool"
    nodes.append(helper.make_node("GlobalAveragePool", [x], [pooled]))
    r = silu(conv(pooled, f"{name}.reduce", c, reduced, 1))
    e = conv(r, f"{name}.expand", reduced, c, 1)
    gate = f"{name}.gate"
    nodes.append(helper.make_node("Sigmoid", [e], [gate]))
    nodes.append(helper.make_node("Mul", [x, gate], [f"{name}.out"]))
    return f"{name}.out"


def block(x, name, cin, cout, expand, stride):
    mid = cin * expand
    h = silu(conv(x, f"{name}.expand", cin, mid, 1))
    h = silu(conv(h, f"{name}.dw", mid, mid, 3, stride, groups=mid))
    h = squeeze_excite(h, f"{name}.se", mid, max(8, cin // 4))
    h = conv(h, f"{name}.project", mid, cout, 1)
    if stride == 1 and cin == cout:
        nodes.append(helper.make_node("Add", [x, h], [f"{name}.out"]))
        return f"{name}.out"
    return h


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "silu_se_net"
    x = silu(conv("input", "stem", 3, 32, 3, 2))
    spec = [(32, 16, 1, 1), (16, 24, 6, 2), (24, 24, 6, 1), (24, 40, 6, 2), (40, 40, 6, 1), (40, 80, 6, 2),
            (80, 80, 6, 1)]
    for i, (cin, cout, expand, stride) in enumerate(spec):
        x = block(x, f"b{i}", cin, cout, expand, stride)
    x = silu(conv(x, "head", 80, 320, 1))
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["pooled"]))
    nodes.append(helper.make_node("Flatten", ["pooled"], ["flat"]))
    fc = weight("fc.w", [320, 100], 320)
    nodes.append(helper.make_node("MatMul", ["flat", fc], ["logits"]))
    graph = helper.make_graph(nodes, "silu_se_net",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 160, 160])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 100])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    data = os.path.join(out, "test_data_set_0")
    os.makedirs(data, exist_ok=True)
    onnx.save(model, os.path.join(out, "model.onnx"))
    x = RNG.standard_normal([1, 3, 160, 160]).astype(np.float32)
    with open(os.path.join(data, "input_0.pb"), "wb") as f:
        f.write(numpy_helper.from_array(x, "input").SerializeToString())
    import onnxruntime as ort
    y = ort.InferenceSession(os.path.join(out, "model.onnx")).run(None, {"input": x})[0]
    with open(os.path.join(data, "output_0.pb"), "wb") as f:
        f.write(numpy_helper.from_array(y, "logits").SerializeToString())
    print(f"wrote {out}/model.onnx ({len(nodes)} nodes) and {data}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Runs an ONNX model with ONNX Runtime on inputs stored as ONNX TensorProto `.pb` files: the
check that a model nnc wrote (an export, a quantized model) runs elsewhere and computes what nnc
computes.

Usage: PYTHONPATH=.nnc-data/py:scripts scripts/ort_run.py MODEL.onnx DIR
DIR holds `input_<k>.pb` for the model's k-th input; the outputs are written to DIR as
`output_<k>.npy`, in the model's output order.
"""
import os
import sys

import numpy as np
import onnxruntime as ort
from onnx_pb_reader import read_tensor

model, folder = sys.argv[1], sys.argv[2]
session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
feeds = {i.name: read_tensor(os.path.join(folder, f"input_{k}.pb")) for k, i in enumerate(session.get_inputs())}
for k, value in enumerate(session.run(None, feeds)):
    np.save(os.path.join(folder, f"output_{k}.npy"), value)

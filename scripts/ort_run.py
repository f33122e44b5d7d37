#!/usr/bin/env python3
"""Runs an ONNX model with ONNX Runtime on inputs stored as .npy files: the check that a model
nnc exported (`nnc_onnx::export`) runs elsewhere and computes what nnc computes.

Usage: PYTHONPATH=.nnc-data/py scripts/ort_run.py MODEL.onnx DIR
DIR holds one `<input name>.npy` per model input; the outputs are written to DIR as
`output_<k>.npy`, in the model's output order.
"""
import os
import sys

import numpy as np
import onnxruntime as ort

model, folder = sys.argv[1], sys.argv[2]
session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
feeds = {i.name: np.load(os.path.join(folder, i.name + ".npy")) for i in session.get_inputs()}
for k, value in enumerate(session.run(None, feeds)):
    np.save(os.path.join(folder, f"output_{k}.npy"), value)

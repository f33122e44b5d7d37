#!/usr/bin/env python3
"""Runs nnc's front-end benchmarks and ONNX Runtime on the same machine in the same run, and
prints one Markdown table of median times with the ratio nnc / peer.

Usage: scripts/bench.py            (needs the shared models beside the checkout)
It installs onnxruntime and numpy from PyPI if they are missing.
"""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_cpu import ensure, median_ms  # noqa: E402  (shared with the CPU benchmark)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = os.environ.get("NNC_SHARED_DIR", os.path.join(ROOT, "..", "shared")) + "/models"


def criterion_median_ms(group, name):
    path = os.path.join(ROOT, "target", "criterion", group, name, "new", "estimates.json")
    with open(path) as f:
        return json.load(f)["median"]["point_estimate"] / 1e6


def main():
    ensure("onnxruntime", "onnxruntime")
    ensure("numpy", "numpy")
    import numpy as np
    import onnxruntime as ort
    from onnx_pb_reader import read_tensor  # noqa: E402  (local helper below)

    subprocess.check_call(["cargo", "bench", "--bench", "import", "--", "--noplot"], cwd=ROOT)
    threads = os.cpu_count() or 1
    rows = []
    for name in ["resnet18", "mobilenet_v2", "transformer_encoder", "silero_vad_16k_op15"]:
        path = os.path.join(MODELS, name, "model.onnx")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        load = median_ms(lambda: ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"]), 10, warmup=0)
        nnc = criterion_median_ms("import", name)
        rows.append((f"import {name}", nnc, f"ORT session load ({threads} threads)", load))
    for name in ["digits_cnn", "transformer_encoder", "resnet18"]:
        path = os.path.join(MODELS, name, "model.onnx")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        x = read_tensor(os.path.join(MODELS, name, "test_data_set_0", "input_0.pb"))
        feed = {sess.get_inputs()[0].name: x}
        sess.run(None, feed)
        run = median_ms(lambda: sess.run(None, feed), 20, warmup=0)
        nnc = criterion_median_ms("interpret", name)
        rows.append((f"run {name} (reference interpreter)", nnc, f"ORT run ({threads} threads)", run))
    print("| what | nnc (ms) | peer | peer (ms) | nnc / peer |")
    print("|---|---|---|---|---|")
    for what, nnc, peer, peer_ms in rows:
        print(f"| {what} | {nnc:.2f} | {peer} | {peer_ms:.2f} | {nnc / peer_ms:.2f}× |")


if __name__ == "__main__":
    main()

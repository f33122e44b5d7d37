#!/usr/bin/env python3
"""Quantized models against f32, in nnc and in ONNX Runtime, measured in one run.

For each shared model and each layout: `nnc quantize --per-channel` (int8 weights per channel,
uint8 activations, calibrated on the model's test data set) writes a QDQ model, with pairs on
the quantized nodes' operands only (layout `inputs`) or, with `--quantize-outputs`, on their
results too (layout `outputs`, which ONNX Runtime fuses into integer kernels); then, in alternating rounds, `nnc bench` of
the f32 and the QDQ model and ONNX Runtime's CPU provider on both (same thread count, medians).
Prints a Markdown table: times in ms and the ratios that matter (QDQ / f32 in each runtime, nnc
QDQ / ONNX Runtime QDQ). Lower is better.

Usage: PYTHONPATH=.nnc-data/py:scripts scripts/bench_quantized.py [--threads N] [--iters N] [--rounds N] [--models a,b]
Uses the `nnc` binary NNC_BIN names (target/release/nnc by default).
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_cpu  # noqa: E402

DEFAULT = "digits_mlp,digits_cnn,resnet18,mobilenet_v2,transformer_encoder"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--iters", type=int, default=50)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--models", default=DEFAULT)
    args = p.parse_args()
    work = tempfile.mkdtemp()
    rows = []
    host = ""
    for name in args.models.split(","):
        for layout in ("inputs", "outputs"):
            folder = os.path.join(bench_cpu.MODELS, name)
            data = os.path.join(folder, "test_data_set_0")
            quantized = os.path.join(work, f"{name}_{layout}.onnx")
            extra = ["--quantize-outputs"] if layout == "outputs" else []
            report = subprocess.run(
                [bench_cpu.NNC, "quantize", os.path.join(folder, "model.onnx"), "-o", quantized,
                 "--calibration", data, "--per-channel"] + extra,
                check=True, capture_output=True, text=True,
            ).stdout
            # `nnc quantize` says how this CPU runs the integer products (dot products or not).
            host = next((line for line in report.splitlines() if "CPU" in line), host)
            models = {"f32": os.path.join(folder, "model.onnx"), "qdq": quantized}
            sessions = {k: bench_cpu.ort_session(v, args.threads) for k, v in models.items()}
            feeds = {k: bench_cpu.ort_feed(s, data) for k, s in sessions.items()}
            times = {(who, k): [] for who in ("nnc", "ort") for k in models}
            for _ in range(args.rounds):
                for k, path in models.items():
                    times[("nnc", k)].append(bench_cpu.nnc_bench(path, args.threads, args.iters, data)["median_ms"])
                    s, f = sessions[k], feeds[k]
                    times[("ort", k)].append(bench_cpu.median_ms(lambda: s.run(None, f), args.iters))
            m = {key: statistics.median(v) for key, v in times.items()}
            rows.append((name, layout, m))
    print(host)
    print(f"threads {args.threads}, medians of {args.rounds} alternating rounds of {args.iters} runs; ms")
    print()
    print("| model | layout | nnc f32 | nnc QDQ | nnc QDQ / f32 | ORT f32 | ORT QDQ | ORT QDQ / f32 | nnc QDQ / ORT QDQ |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, layout, m in rows:
        nf, nq, of, oq = m[("nnc", "f32")], m[("nnc", "qdq")], m[("ort", "f32")], m[("ort", "qdq")]
        print(f"| {name} | {layout} | {nf:.3f} | {nq:.3f} | {nq / nf:.2f}× | {of:.3f} | {oq:.3f} | {oq / of:.2f}× | {nq / oq:.2f}× |")


if __name__ == "__main__":
    main()

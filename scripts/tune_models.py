#!/usr/bin/env python3
"""`nnc tune` on every shared model, and what it bought, measured in one run on this machine.

For each model: `nnc tune MODEL --data test_data_set_0 --budget B` into a fresh cache (its wall
time and search time), then ROUNDS rounds that each run `nnc bench --no-tuning`, `nnc bench
--tuning CACHE` (alternating which goes first) and ONNX Runtime's CPU provider on the same inputs
with the same thread count. Prints Markdown tables: latency untuned / tuned / ORT (medians over
rounds of each round's median, and the fastest run of all rounds, which a noisy shared machine
disturbs least), compile time untuned and with the warm cache, the kernels tuned (default vs
tuned time and GFLOP/s of the contraction kernels, from the tune report), and square matmuls
default vs tuned vs numpy (OpenBLAS).

Usage: scripts/tune_models.py [--threads N] [--budget S] [--rounds N] [--models a,b]
It uses the release `nnc` (or the binary NNC_BIN names); onnxruntime and numpy from PyPI.
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_cpu import MATMUL_NNIR, MODELS, NNC, NUMPY_MATMUL, ORT_TIME, ensure  # noqa: E402

SCRIPTS = os.path.dirname(os.path.abspath(__file__))


def nnc(args):
    return json.loads(subprocess.run([NNC] + args, check=True, capture_output=True, text=True).stdout)


def ort_ms(model_dir, threads, iters):
    # In a process of its own: ONNX Runtime's threads keep spinning for a while after its last
    # run and slow whatever runs next on the cores (see bench_cpu.py).
    out = subprocess.run(
        [sys.executable, "-c", ORT_TIME, model_dir, str(threads), str(iters), SCRIPTS],
        check=True, capture_output=True, text=True,
    ).stdout
    return float(out)


def matmul_table(threads, budget, rounds):
    """Square f32 matmuls, default and tuned schedules, next to numpy (OpenBLAS)."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in [256, 512, 1024]:
            path = os.path.join(tmp, f"matmul{n}.nnir")
            cache = os.path.join(tmp, f"matmul{n}.jsonl")
            with open(path, "w") as f:
                f.write(MATMUL_NNIR.format(n=n))
            t = str(threads)
            nnc(["tune", path, "--threads", t, "--budget", str(budget), "--cache", cache, "--json"])
            bench = ["bench", path, "--threads", t, "--iters", "20", "--json"]
            runs = {"default": [], "tuned": [], "numpy": []}
            for _ in range(rounds):
                runs["default"].append(nnc(bench + ["--no-tuning"])["median_ms"])
                runs["tuned"].append(nnc(bench + ["--tuning", cache])["median_ms"])
                out = subprocess.run([sys.executable, "-c", NUMPY_MATMUL, str(n), "20"], check=True,
                                     capture_output=True, text=True, env=env).stdout
                runs["numpy"].append(float(out))
            gf = lambda ms: 2 * n**3 / (ms * 1e6)
            d, tu, p = (gf(statistics.median(runs[k])) for k in ("default", "tuned", "numpy"))
            lines.append(f"| {n}³ | {d:.1f} | {tu:.1f} | {p:.1f} | {tu / d:.2f} | {tu / p * 100:.0f}% |")
    return lines


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--budget", type=float, default=60.0)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--models", default=None)
    args = p.parse_args()
    ensure("onnxruntime", "onnxruntime")
    names = args.models.split(",") if args.models else sorted(
        d for d in os.listdir(MODELS) if os.path.isfile(os.path.join(MODELS, d, "model.onnx"))
    )
    cache_dir = tempfile.mkdtemp(prefix="nnc-tune-")
    t = str(args.threads)
    rows, kernels, ratios, min_ratios = [], [], [], []
    for name in names:
        model = os.path.join(MODELS, name, "model.onnx")
        data = os.path.join(MODELS, name, "test_data_set_0")
        cache = os.path.join(cache_dir, f"{name}.jsonl")
        start = time.perf_counter()
        report = nnc(["tune", model, "--data", data, "--threads", t, "--budget", str(args.budget), "--cache", cache, "--json"])
        wall = time.perf_counter() - start
        iters = "200" if os.path.getsize(model) < 4_000_000 else "30"
        bench = ["bench", model, "--data", data, "--threads", t, "--iters", iters, "--json"]
        runs = {"untuned": [], "tuned": [], "ort": []}
        fastest = {"untuned": [], "tuned": []}
        compiles = {"untuned": [], "tuned": []}
        for r in range(args.rounds):
            order = ["untuned", "tuned"] if r % 2 == 0 else ["tuned", "untuned"]
            for which in order:
                flag = ["--no-tuning"] if which == "untuned" else ["--tuning", cache]
                out = nnc(bench + flag)
                runs[which].append(out["median_ms"])
                fastest[which].append(out["min_ms"])
                compiles[which].append(out["compile_ms"])
            runs["ort"].append(ort_ms(os.path.join(MODELS, name), args.threads, int(iters)))
        u, tu, o = (statistics.median(runs[k]) for k in ("untuned", "tuned", "ort"))
        cu, ct = statistics.median(compiles["untuned"]), statistics.median(compiles["tuned"])
        fu, ft = min(fastest["untuned"]), min(fastest["tuned"])
        ratios.append(tu / u)
        min_ratios.append(ft / fu)
        rows.append(
            f"| {name} | {o:.3f} | {u:.3f} | {tu:.3f} | {tu / u:.2f} | {fu:.3f} | {ft:.3f} | {ft / fu:.2f} | {tu / o:.2f} "
            f"| {report['search_s']:.0f} / {wall:.0f} | {cu:.0f} | {ct:.0f} | {ct / cu:.2f} |"
        )
        print(rows[-1], file=sys.stderr, flush=True)
        for k in report["kernels"]:
            if k["best_ms"] and k["flops"] and k["default"] and k["default"].startswith("tiled_matmul") and k["share"] >= 0.03:
                gd, gt = k["flops"] / (k["default_ms"] * 1e6), k["flops"] / (k["best_ms"] * 1e6)
                kernels.append(
                    f"| {name} | {k['kernel']} | {k['share'] * 100:.0f}% | {k['default']} | {k['best']} | {k['default_ms']:.3f} | {k['best_ms']:.3f} | {gd:.0f} | {gt:.0f} | {k['default_ms'] / k['best_ms']:.2f} |"
                )
    print(f"{args.threads} threads, tuning budget {args.budget:.0f} s, {args.rounds} rounds; medians over rounds\n")
    print(
        "| model | ORT ms | untuned ms | tuned ms | tuned / untuned | untuned fastest ms | tuned fastest ms "
        "| ratio | tuned / ORT | search / tune wall s | compile untuned ms | compile warm cache ms | ratio |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))

    def geomean(xs):
        return math.exp(sum(math.log(x) for x in xs) / len(xs))

    print(f"\ngeomean tuned / untuned: {geomean(ratios):.3f} of medians, {geomean(min_ratios):.3f} of fastest runs\n")
    print("| model | kernel | share | default schedule | tuned schedule | default ms | tuned ms | default GFLOP/s | tuned GFLOP/s | speedup |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(kernels))
    print("\n| matmul f32 | default GFLOP/s | tuned GFLOP/s | numpy GFLOP/s | tuned / default | tuned / numpy |")
    print("|---|---|---|---|---|---|")
    print("\n".join(matmul_table(args.threads, min(args.budget, 20.0), 3)))


if __name__ == "__main__":
    main()

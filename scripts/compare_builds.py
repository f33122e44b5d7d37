#!/usr/bin/env python3
"""Two builds of nnc side by side on every shared model: run time and compile time.

For a change that must not slow nnc down (a refactor, a code-generator upgrade): each round runs
`nnc bench MODEL --data test_data_set_0 --json` with the "before" binary and the "after" binary,
alternating which goes first, so drift of a shared machine falls on both. Prints one Markdown
table: the median over rounds of each binary's median run time and of its compile time, and the
after/before ratios (below 1: the change made it faster).

Usage: scripts/compare_builds.py BEFORE_NNC AFTER_NNC [--rounds N] [--threads N] [--models a,b]
"""
import argparse
import json
import os
import statistics
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = os.path.join(os.environ.get("NNC_SHARED_DIR", os.path.join(ROOT, "..", "shared")), "models")


def bench(nnc, model_dir, threads):
    model = os.path.join(model_dir, "model.onnx")
    data = os.path.join(model_dir, "test_data_set_0")
    # Small models get more timed runs, so each round's median is as steady as a large model's.
    size = os.path.getsize(model) + sum(
        os.path.getsize(os.path.join(model_dir, f)) for f in os.listdir(model_dir) if f.endswith(".data")
    )
    iters = 200 if size < 4_000_000 else 30
    cmd = [nnc, "bench", model, "--data", data, "--threads", str(threads), "--iters", str(iters), "--json"]
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("before")
    p.add_argument("after")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--models", default=None, help="comma-separated model names (default: all shared models)")
    args = p.parse_args()
    names = args.models.split(",") if args.models else sorted(
        d for d in os.listdir(MODELS) if os.path.isfile(os.path.join(MODELS, d, "model.onnx"))
    )
    print(f"{args.rounds} rounds, {args.threads} threads; medians over rounds\n")
    print("| model | before run (ms) | after run (ms) | after / before | before compile (ms) | after compile (ms) | after / before |")
    print("|---|---|---|---|---|---|---|")
    for name in names:
        runs = {"before": [], "after": []}
        compiles = {"before": [], "after": []}
        for r in range(args.rounds):
            order = ["before", "after"] if r % 2 == 0 else ["after", "before"]
            for which in order:
                out = bench(getattr(args, which), os.path.join(MODELS, name), args.threads)
                runs[which].append(out["median_ms"])
                compiles[which].append(out["compile_ms"])
        rb, ra = statistics.median(runs["before"]), statistics.median(runs["after"])
        cb, ca = statistics.median(compiles["before"]), statistics.median(compiles["after"])
        print(f"| {name} | {rb:.2f} | {ra:.2f} | {ra / rb:.2f} | {cb:.0f} | {ca:.0f} | {ca / cb:.2f} |", flush=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The CPU backend next to its peers, measured in one run on this machine.

For every shared model: `nnc bench MODEL --data test_data_set_0 --json` (compile once, warm up,
median of timed runs) next to ONNX Runtime's CPU provider on the same inputs with the same
thread count; and compile time with an empty compiled-code cache (cold) and with every kernel
in it (warm), next to ONNX Runtime's session load (median of 5). For matmul 256/512/1024 (f32): nnc on a one-node graph next to numpy's matmul
(OpenBLAS) with the same thread count, in GFLOP/s. Then the peak and running resident memory of a resnet18
run in each (a fresh process each). Prints Markdown tables; the ratio is nnc / peer (lower is
better for times, higher for GFLOP/s).

Usage: scripts/bench_cpu.py [--threads N] [--iters N] [--models a,b]
It builds `nnc` in release mode (or uses the binary NNC_BIN names) and installs onnxruntime and numpy from PyPI if missing.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("NNC_SHARED_DIR", os.path.join(ROOT, "..", "shared"))
MODELS = os.path.join(SHARED, "models")
NNC = os.environ.get("NNC_BIN", os.path.join(ROOT, "target", "release", "nnc"))


def ensure(pkg, module):
    try:
        __import__(module)
    except ImportError:
        subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", pkg])


def nnc_bench(model, threads, iters, data=None, code_cache=None):
    """`nnc bench --json`; with `code_cache`, compiled code is read from and kept in that folder
    (NNC_CODE_CACHE) instead of the user's cache."""
    cmd = [NNC, "bench", model, "--threads", str(threads), "--iters", str(iters), "--json"]
    if data:
        cmd += ["--data", data]
    env = dict(os.environ, NNC_CODE_CACHE=code_cache) if code_cache else None
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out)


def median_ms(fn, runs, warmup=3):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def ort_session(path, threads):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def ort_feed(sess, data_dir):
    from onnx_pb_reader import read_tensor

    return {
        inp.name: read_tensor(os.path.join(data_dir, f"input_{i}.pb")) for i, inp in enumerate(sess.get_inputs())
    }


NUMPY_MATMUL = """
import os, sys, time, statistics
import numpy as np
n, runs = int(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(0)
a = rng.standard_normal((n, n), dtype=np.float32)
b = rng.standard_normal((n, n), dtype=np.float32)
for _ in range(3):
    a @ b
t = []
for _ in range(runs):
    s = time.perf_counter(); a @ b; t.append((time.perf_counter() - s) * 1e3)
print(statistics.median(t))
"""

MATMUL_NNIR = """graph matmul(%a: f32[{n}, {n}], %b: f32[{n}, {n}]) {{
  %c: f32[{n}, {n}] = matmul(%a, %b)
  return %c
}}
"""

ORT_TIME = """
import os, sys, statistics, time
sys.path.insert(0, sys.argv[4])
import bench_cpu
model, threads, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
loads = []
for _ in range(5):
    start = time.perf_counter()
    sess = bench_cpu.ort_session(os.path.join(model, "model.onnx"), threads)
    loads.append((time.perf_counter() - start) * 1e3)
feed = bench_cpu.ort_feed(sess, os.path.join(model, "test_data_set_0"))
print(bench_cpu.median_ms(lambda: sess.run(None, feed), runs), statistics.median(loads))
"""

ORT_RSS = """
import sys
sys.path.insert(0, sys.argv[3])
import onnxruntime as ort
from onnx_pb_reader import read_tensor
opts = ort.SessionOptions()
opts.intra_op_num_threads = int(sys.argv[2])
sess = ort.InferenceSession(sys.argv[1] + "/model.onnx", opts, providers=["CPUExecutionProvider"])
feed = {sess.get_inputs()[0].name: read_tensor(sys.argv[1] + "/test_data_set_0/input_0.pb")}
for _ in range(20):
    sess.run(None, feed)
"""


def rss_mb(cmd):
    """Resident memory of a child process: the peak (the largest VmHWM, the high-water mark of
    its own address space since exec) and the median VmRSS over the second half of its life
    (while it runs, after loading and compiling), polling /proc every few milliseconds, with the
    anonymous part of it (RssAnon: heap, weights, arena; the rest is pages of mapped files such
    as shared libraries' code).
    rusage's ru_maxrss would not do: on Linux it keeps the high-water mark of the memory the
    child replaced at exec, which is this Python process's."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak_kib, samples, anon = 0, [], []
    while proc.poll() is None:
        try:
            with open(f"/proc/{proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        peak_kib = max(peak_kib, int(line.split()[1]))
                    elif line.startswith("VmRSS:"):
                        samples.append(int(line.split()[1]))
                    elif line.startswith("RssAnon:"):
                        anon.append(int(line.split()[1]))
        except (FileNotFoundError, ProcessLookupError, ValueError):
            pass
        time.sleep(0.002)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd} failed")
    running = statistics.median(samples[len(samples) // 2:]) if samples else 0
    running_anon = statistics.median(anon[len(anon) // 2:]) if anon else 0
    return peak_kib / 1024, running / 1024, running_anon / 1024


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--models", default="")
    args = parser.parse_args()
    ensure("onnxruntime", "onnxruntime")
    ensure("numpy", "numpy")
    import onnxruntime as ort

    if "NNC_BIN" not in os.environ:
        subprocess.check_call(["cargo", "build", "--release", "-q", "-p", "nnc-cli"], cwd=ROOT)
    names = args.models.split(",") if args.models else sorted(
        d for d in os.listdir(MODELS) if os.path.isfile(os.path.join(MODELS, d, "model.onnx"))
    )
    t = args.threads
    print(f"CPU: {os.cpu_count()} cores, {t} threads for every runner; ONNX Runtime {ort.__version__}\n")
    print("| model | nnc (ms) | ONNX Runtime (ms) | nnc / ORT | nnc compile, cold (ms) | nnc compile, warm (ms) "
          "| ORT session load (ms) | warm / load |")
    print("|---|---|---|---|---|---|---|---|")
    for name in names:
        d = os.path.join(MODELS, name)
        data = os.path.join(d, "test_data_set_0")
        # Compile time from an empty code cache (cold), then the median of three compiles that
        # find every kernel in it (warm).
        with tempfile.TemporaryDirectory() as cache:
            nnc = nnc_bench(os.path.join(d, "model.onnx"), t, args.iters, data, code_cache=cache)
            warm = statistics.median(
                nnc_bench(os.path.join(d, "model.onnx"), t, 1, data, code_cache=cache)["compile_ms"] for _ in range(3)
            )
        # ONNX Runtime runs in a process of its own: its threads keep spinning on the cores for
        # a while after its last run, even once the session is freed, and slowed whatever ran
        # next in this process (they doubled nnc's times on small models).
        out = subprocess.run(
            [sys.executable, "-c", ORT_TIME, d, str(t), str(args.iters), os.path.dirname(os.path.abspath(__file__))],
            check=True, capture_output=True, text=True,
        ).stdout
        peer, load = map(float, out.split())
        ratio = nnc["median_ms"] / peer
        print(f"| {name} | {nnc['median_ms']:.2f} | {peer:.2f} | {ratio:.2f}× | {nnc['compile_ms']:.0f} | {warm:.1f} "
              f"| {load:.1f} | {warm / load:.2f}× |", flush=True)

    print("\n| matmul f32 | nnc (ms) | nnc GFLOP/s | numpy (ms) | numpy GFLOP/s | nnc / numpy GFLOP/s |")
    print("|---|---|---|---|---|---|")
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(t), OMP_NUM_THREADS=str(t), MKL_NUM_THREADS=str(t))
    with tempfile.TemporaryDirectory() as tmp:
        for n in [256, 512, 1024]:
            path = os.path.join(tmp, f"matmul{n}.nnir")
            with open(path, "w") as f:
                f.write(MATMUL_NNIR.format(n=n))
            nnc = nnc_bench(path, t, args.iters)["median_ms"]
            out = subprocess.run(
                [sys.executable, "-c", NUMPY_MATMUL, str(n), str(args.iters)],
                check=True, capture_output=True, text=True, env=env,
            ).stdout
            peer = float(out)
            gf = lambda ms: 2 * n**3 / (ms * 1e6)
            print(f"| {n}³ | {nnc:.2f} | {gf(nnc):.1f} | {peer:.2f} | {gf(peer):.1f} | {gf(nnc) / gf(peer) * 100:.0f}% |",
                  flush=True)

    r18 = os.path.join(MODELS, "resnet18")
    if os.path.isdir(r18):
        nnc_rss = rss_mb([NNC, "bench", r18 + "/model.onnx", "--data", r18 + "/test_data_set_0",
                          "--iters", "20", "--threads", str(t)])
        ort_rss = rss_mb([sys.executable, "-c", ORT_RSS, r18, str(t), os.path.dirname(os.path.abspath(__file__))])
        print("\n| resnet18 | peak resident memory (MB) | resident while running (MB) | of which anonymous (MB) |")
        print("|---|---|---|---|")
        for name, (peak, running, anon) in [("nnc (compile, then 20 runs)", nnc_rss),
                                            ("ONNX Runtime (load, then 20 runs)", ort_rss)]:
            print(f"| {name} | {peak:.0f} | {running:.0f} | {anon:.0f} |")

if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    main()

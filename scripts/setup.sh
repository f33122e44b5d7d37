#!/usr/bin/env bash
# Installs everything nnc needs on a fresh Debian machine, then fetches the test data.
# Idempotent: running it again only checks that everything is there.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# System packages: a C toolchain for -sys crates, Python to fetch wheels, unzip for them,
# a software Vulkan driver and LLVM.
need=()
command -v cc >/dev/null || need+=(build-essential)
command -v python3 >/dev/null || need+=(python3)
python3 -m pip --version >/dev/null 2>&1 || need+=(python3-pip)
command -v unzip >/dev/null || need+=(unzip)
command -v curl >/dev/null || need+=(curl)
# Vulkan with Mesa's software rasterizer (lavapipe): the adapter the WGSL backend's tests run on;
# LLVM 19's static libraries (with Polly, which its static link names), the CPU backend's code
# generator for wide vectors; nnc links them in through inkwell, so no libLLVM is needed at run time.
# The static link also names zstd and zlib (`llvm-config --system-libs`), which llvm-19-dev does
# not depend on. Open MPI (library, headers and mpirun) is the engine of multi-process training
# (nnc-dist), and its Rust bindings are generated with libclang. Chromium and chromedriver run
# the WebGPU runtime (web/) headless, on the SwiftShader Vulkan driver they ship, which Node's
# WebGPU (Dawn) also uses.
for pkg in mesa-vulkan-drivers libvulkan1 llvm-19-dev libpolly-19-dev libzstd-dev zlib1g-dev \
  libopenmpi-dev openmpi-bin libclang-dev chromium chromium-driver; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
# Node.js and npm for the WebGPU runtime's tests (any Node 18 or newer; Debian's if none).
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
if [ ${#need[@]} -gt 0 ]; then
  say "installing Debian packages: ${need[*]}"
  as_root apt-get update -qq
  as_root apt-get install -y -qq "${need[@]}"
fi

# Rust (1.95 or newer) comes through rustup if it is missing.
if ! command -v cargo >/dev/null; then
  say "installing Rust through rustup"
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
  # shellcheck disable=SC1091
  . "$HOME/.cargo/env"
fi
say "$(cargo --version)"

# The CUDA backend's checks without a GPU: NVRTC (CUDA C++ -> PTX) and ptxas (PTX -> SASS, with
# register and spill counts) from NVIDIA's PyPI wheels, unpacked into .nnc-data/cuda/ where
# nnc-cuda finds them (no pip install, so no virtualenv or --break-system-packages needed).
cuda=.nnc-data/cuda
if [ -x "$cuda/nvidia/cuda_nvcc/bin/ptxas" ] && [ -f "$cuda/nvidia/cuda_nvrtc/lib/libnvrtc.so.12" ]; then
  say "NVRTC and ptxas already in $cuda"
else
  say "fetching NVRTC and ptxas (nvidia-cuda-nvrtc-cu12, nvidia-cuda-nvcc-cu12 12.9.86) into $cuda"
  tmp=$(mktemp -d)
  python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
    --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 --platform manylinux_2_12_x86_64 \
    nvidia-cuda-nvrtc-cu12==12.9.86 nvidia-cuda-nvcc-cu12==12.9.86 -d "$tmp"
  mkdir -p "$cuda"
  unzip -q -o "$tmp"/nvidia_cuda_nvrtc_cu12-*.whl 'nvidia/cuda_nvrtc/*' -d "$cuda"
  unzip -q -o "$tmp"/nvidia_cuda_nvcc_cu12-*.whl 'nvidia/cuda_nvcc/bin/ptxas' -d "$cuda"
  chmod +x "$cuda/nvidia/cuda_nvcc/bin/ptxas"
  rm -rf "$tmp"
fi

# The npm package `webgpu` (Dawn for Node), pinned by web/package-lock.json, for the runtime's
# tests under Node.
if [ -f web/node_modules/webgpu/package.json ]; then
  say "the npm package webgpu already in web/node_modules"
else
  say "installing the npm package webgpu into web/node_modules"
  npm ci --prefix web --no-audit --no-fund --loglevel=error
fi

# Test data and the quick start's model from the package registries.
scripts/fetch-onnx-tests.sh
scripts/fetch-magika.sh
scripts/fetch-public-models.sh
say "done"

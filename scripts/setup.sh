#!/usr/bin/env bash
# Installs everything nnc needs on a fresh Debian machine, then fetches the test data.
# Idempotent: running it again only checks that everything is there.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# System packages: a C toolchain for -sys crates, Python to fetch wheels, unzip for them,
# and a software Vulkan driver.
need=()
command -v cc >/dev/null || need+=(build-essential)
command -v python3 >/dev/null || need+=(python3)
python3 -m pip --version >/dev/null 2>&1 || need+=(python3-pip)
command -v unzip >/dev/null || need+=(unzip)
command -v curl >/dev/null || need+=(curl)
# Vulkan with Mesa's software rasterizer (lavapipe): the adapter the WGSL backend's tests run on.
for pkg in mesa-vulkan-drivers libvulkan1; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
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

# Test data from the package registries.
scripts/fetch-onnx-tests.sh
say "done"

#!/usr/bin/env bash
# Fetches the ONNX backend node tests (1,765 cases) from the onnx==1.22.0 wheel, the last
# release that ships them on disk, into .nnc-data/onnx-node/. Skips work already done.
set -euo pipefail
cd "$(dirname "$0")/.."

dest=.nnc-data/onnx-node
if [ -f "$dest/.complete" ]; then
  echo "[fetch-onnx-tests] $(find "$dest" -mindepth 1 -maxdepth 1 -type d | wc -l) cases already in $dest"
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "[fetch-onnx-tests] downloading the onnx==1.22.0 wheel"
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
  --platform manylinux_2_28_x86_64 onnx==1.22.0 -d "$tmp"
unzip -q "$tmp"/onnx-1.22.0-*.whl 'onnx/backend/test/data/node/*' -d "$tmp/x"
rm -rf "$dest"
mkdir -p "$(dirname "$dest")"
mv "$tmp/x/onnx/backend/test/data/node" "$dest"
touch "$dest/.complete"
echo "[fetch-onnx-tests] $(find "$dest" -mindepth 1 -maxdepth 1 -type d | wc -l) cases in $dest"

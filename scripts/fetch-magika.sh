#!/usr/bin/env bash
# Fetches Google's Magika file-type model (Apache-2.0) from the magika==1.0.3 wheel on PyPI into
# .nnc-data/models/magika/: the ONNX model, its configuration (labels, thresholds) and the
# descriptions of the content types. The quick start and tests/first_contact.rs run it.
set -euo pipefail
cd "$(dirname "$0")/.."

dest=.nnc-data/models/magika
if [ -f "$dest/.complete" ]; then
  echo "[fetch-magika] Magika's model already in $dest"
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "[fetch-magika] downloading the magika==1.0.3 wheel"
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
  --platform manylinux_2_28_x86_64 magika==1.0.3 -d "$tmp"
unzip -q "$tmp"/magika-1.0.3-*.whl 'magika/models/standard_v3_3/*' 'magika/config/content_types_kb.min.json' \
  'magika-1.0.3.dist-info/*' -d "$tmp/x"
rm -rf "$dest"
mkdir -p "$dest"
cp "$tmp"/x/magika/models/standard_v3_3/{model.onnx,config.min.json} "$tmp"/x/magika/config/content_types_kb.min.json "$dest"/
cp "$tmp"/x/magika-1.0.3.dist-info/METADATA "$dest"/METADATA
touch "$dest/.complete"
echo "[fetch-magika] model.onnx, config.min.json and content_types_kb.min.json in $dest"

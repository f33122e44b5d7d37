#!/usr/bin/env bash
# Fetches public ONNX models that users bring, from their packages on PyPI, into
# .nnc-data/models/public/<name>/model.onnx, and writes each a test data set with ONNX Runtime's
# outputs (scripts/public_models_reference.py). The backend suites run them on nnc and compare
# (`public_models_match_onnx_runtime`). ONNX Runtime and numpy are unpacked from their wheels into
# .nnc-data/py (no pip install: no virtualenv or --break-system-packages needed).
#   nudenet==3.4.2      320n.onnx           YOLOv8n detector (MIT)
#   ddddocr==1.6.1      common_det.onnx     YOLOX text detector, common.onnx OCR (MIT)
#   basic-pitch==0.4.0  nmp.onnx            audio-to-MIDI (Apache-2.0)
#   silero-vad==6.2.3   silero_vad.onnx     voice activity detection, `If` on its sample-rate input (MIT)
set -euo pipefail
cd "$(dirname "$0")/.."

dest=.nnc-data/models/public
py=.nnc-data/py
if [ -f "$dest/.complete-2" ]; then
  echo "[fetch-public-models] the public models are already in $dest"
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "[fetch-public-models] downloading nudenet, ddddocr, basic-pitch and silero-vad, ONNX Runtime and numpy"
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
  nudenet==3.4.2 ddddocr==1.6.1 basic-pitch==0.4.0 silero-vad==6.2.3 -d "$tmp/models"
# Binary wheels for the Python that runs the reference script.
python3 -m pip download --quiet --no-deps --only-binary=:all: onnxruntime==1.22.1 numpy==2.2.6 -d "$tmp/py"
rm -rf "$dest" "$py"
mkdir -p "$dest" "$py"
for whl in "$tmp"/py/*.whl; do unzip -q -o "$whl" -d "$py"; done
unpack() { # wheel-glob path-inside name
  mkdir -p "$dest/$3"
  unzip -q -o -j "$tmp"/models/$1 "$2" -d "$tmp/x"
  mv "$tmp/x/$(basename "$2")" "$dest/$3/model.onnx"
}
unpack 'nudenet-*.whl' nudenet/320n.onnx nudenet_320n
unpack 'ddddocr-*.whl' ddddocr/common_det.onnx ddddocr_common_det
unpack 'ddddocr-*.whl' ddddocr/common.onnx ddddocr_common
unpack 'basic_pitch-*.whl' basic_pitch/saved_models/icassp_2022/nmp.onnx basic_pitch_nmp
unpack 'silero_vad-*.whl' silero_vad/data/silero_vad.onnx silero_vad_16k
unpack 'silero_vad-*.whl' silero_vad/data/silero_vad.onnx silero_vad_8k
PYTHONPATH="$py" python3 scripts/public_models_reference.py "$dest"
touch "$dest/.complete-2"
echo "[fetch-public-models] models and ONNX Runtime's outputs in $dest"

#!/usr/bin/env python3
"""Writes data/magika/reference.json: what Google's Magika (its own Python package, with ONNX
Runtime) says of every file in data/magika/samples/. `tests/first_contact.rs` checks that nnc,
running the same model through `examples/identify`, says the same.

For each sample: the label Magika outputs (after its confidence thresholds and overwrite map),
the model's own top label and score, and the model's five best labels with their scores, taken
from ONNX Runtime on the same features Magika extracts.

Usage: scripts/magika_reference.py   (installs magika==1.0.3 from PyPI if missing)
"""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLES = os.path.join(ROOT, "data", "magika", "samples")
VERSION = "1.0.3"


def ensure_magika():
    try:
        import magika  # noqa: F401
    except ImportError:
        subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", f"magika=={VERSION}"])


def main():
    ensure_magika()
    import magika
    import numpy as np
    import onnxruntime as ort
    from magika.types.seekable import Seekable

    m = magika.Magika()
    config = m._model_config
    session = ort.InferenceSession(str(m._model_path), providers=["CPUExecutionProvider"])
    labels = config.target_labels_space
    reference = {"magika": magika.__version__, "onnxruntime": ort.__version__, "samples": {}}
    for name in sorted(os.listdir(SAMPLES)):
        path = os.path.join(SAMPLES, name)
        result = m.identify_path(path)
        with open(path, "rb") as f:
            features = magika.Magika._extract_features_from_seekable(
                Seekable(f), config.beg_size, config.mid_size, config.end_size,
                config.padding_token, config.block_size, config.use_inputs_at_offsets)
        x = np.array([features.beg + features.end], dtype=np.int32)
        probs = session.run(["target_label"], {"bytes": x})[0][0]
        top = np.argsort(-probs)[:5]
        reference["samples"][name] = {
            "output": str(result.prediction.output.label),
            "dl": str(result.prediction.dl.label),
            "score": float(result.prediction.score),
            "top5": [[labels[i], float(probs[i])] for i in top],
        }
        print(f"{name}: {result.prediction.output.label} ({result.prediction.score:.3f})")
    with open(os.path.join(ROOT, "data", "magika", "reference.json"), "w") as f:
        json.dump(reference, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()

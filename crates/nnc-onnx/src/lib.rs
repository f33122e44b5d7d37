//! ONNX front end (being written).

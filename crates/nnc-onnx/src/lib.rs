//! nnc's ONNX front end.
//!
//! - [`proto`]: the ONNX protobuf messages, generated from the vendored `onnx.proto`;
//! - [`tensor`]: `TensorProto` ↔ [`nnc_ir::TensorData`], and `.pb` tensor files;
//! - [`import`]: ONNX models to Graph IR, with the op converters in `ops/`;
//! - [`export`]: Graph IR back to ONNX (trained models, for inference elsewhere);
//! - [`qdq`]: post-training quantization of an ONNX model into QDQ form (`nnc quantize`);
//! - [`staged`]: models whose control flow or shapes are decided at run time, run as compiled
//!   graphs with control flow, sequences and data-shaped ops on the host between them.

pub mod error;
pub mod export;
pub mod import;
mod ops;
pub mod qdq;
pub mod staged;
pub mod tensor;

/// The ONNX protobuf schema (`onnx.proto`, ONNX 1.22), generated at build time.
#[allow(clippy::all, missing_docs)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/onnx.rs"));
}

pub use error::{NodeProblem, OnnxError};
pub use export::{export_bytes, export_model, ExportError};
pub use import::{
    import_bytes, import_file, import_file_with, import_model, inputs_of, read_inputs, read_model, ImportOptions,
};
pub use ops::supported_ops;
pub use tensor::{read_tensor_file, tensor_from_proto, tensor_to_proto};

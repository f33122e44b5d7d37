//! nnc: a neural-network compiler and kernel-generation toolkit.
//!
//! This facade re-exports the crates a framework author needs: the Graph IR ([`ir`]) with
//! its builder and text form, the reference interpreter ([`interp`]), the ONNX importer
//! ([`onnx`]) and the graph optimizer ([`opt`]).

pub use nnc_interp as interp;
pub use nnc_ir as ir;
pub use nnc_onnx as onnx;
pub use nnc_opt as opt;

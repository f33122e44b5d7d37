//! nnc: a neural-network compiler and kernel-generation toolkit.
//!
//! This facade re-exports the crates a framework author needs: the Graph IR ([`ir`]) with
//! its builder and text form, the reference interpreter ([`interp`]), the ONNX importer
//! ([`onnx`]), the graph optimizer ([`opt`]), fusion and scheduling ([`lower`]), the Kernel IR
//! with its interpreter ([`kernel`]), the CPU backend ([`cpu`]), automatic differentiation with
//! training steps ([`autodiff`]), distributed execution with collectives, data- and tensor-parallel
//! training and checkpoints ([`dist`]), and the host API ([`runtime`]): a [`Session`] compiles a graph
//! for a target once per input shape and runs it on caller data.

pub use nnc_autodiff as autodiff;
pub use nnc_cpu as cpu;
pub use nnc_dist as dist;
pub use nnc_interp as interp;
pub use nnc_ir as ir;
pub use nnc_kernel as kernel;
pub use nnc_lower as lower;
pub use nnc_onnx as onnx;
pub use nnc_opt as opt;
pub use nnc_runtime as runtime;
pub use nnc_runtime::{Session, SessionOptions, Target};

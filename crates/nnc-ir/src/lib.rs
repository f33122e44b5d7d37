//! nnc's Graph IR: the dataflow graph every other part of the compiler reads and writes.
//!
//! - [`DType`] ([`lowp`]: the float8/float4/4-bit encodings), [`Dim`] (integers or symbolic expressions) and [`TensorType`] describe values;
//! - [`Op`] is the closed set of operations, [`infer`] their shape rules;
//! - [`Graph`] holds values and nodes in SSA form, [`GraphBuilder`] builds one with typed calls;
//! - [`collective`]: communication between the ranks of an SPMD program (`all_reduce`, ...);
//! - [`verify`] rejects malformed graphs; [`composite`] expands composites into primitives;
//! - [`size`] bounds tensor sizes and allocates fallibly;
//! - [`text`] prints and parses the `.nnir` text form.
//!
//! This crate depends on no other nnc crate.

pub mod builder;
pub mod collective;
pub mod composite;
pub mod dim;
pub mod dtype;
pub mod error;
pub mod graph;
pub mod infer;
pub mod lowp;
pub mod op;
pub mod shape;
pub mod size;
pub mod tensor;
pub mod text;
pub mod verify;

pub use builder::GraphBuilder;
pub use collective::{Collective, CollectiveReduce};
pub use dim::Dim;
pub use dtype::DType;
pub use error::IrError;
pub use graph::{Graph, Node, ValueId, ValueInfo};
pub use infer::infer;
pub use op::{
    ArgKind, AttrMap, AttrValue, BinaryOp, CoordMode, CumKind, GeluApprox, NearestMode, Op, PadMode, PoolKind,
    ReduceKind, ResizeAttrs, ResizeMode, RnnCell, RnnDirection, ScatterReduction, UnaryOp, Window,
};
pub use shape::{broadcast_shapes, Shape, TensorType};
pub use tensor::{Element, TensorData};
pub use verify::verify;

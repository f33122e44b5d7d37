//! From an optimized graph to scheduled Kernel IR (`nnc-kernel`): the passes.
//!
//! - [`lower`]: each primitive op as a compute definition;
//! - [`fuse`]: groups of nodes that become one kernel each, decided by cost;
//! - [`lower_reduce`]: reductions as loops and accumulators;
//! - [`schedule`]: a template per group for a [`Device`](nnc_kernel::Device), as Kernel IR;
//! - [`space`]: the schedules a group can have on a device (what the tuner searches) and the
//!   structural key of its computation;
//! - [`simplify`]: index arithmetic decided by value ranges;
//! - [`legalize`]: scheduled kernels made fit for a device (limits, lazy effects, loop limits,
//!   index width);
//! - [`layout`]: weight and operand layouts chosen for a device's vector tiles;
//! - [`pipeline`]: the whole pipeline ([`compile`]) and the binding of symbolic dimensions.

pub mod fuse;
pub mod layout;
pub mod legalize;
pub mod lower;
pub mod lower_reduce;
pub mod pipeline;
pub mod schedule;
pub mod simplify;
pub mod space;

pub use pipeline::{bind_input_shapes, bind_shapes, bind_symbols, compile, fuse_for, CompileError};

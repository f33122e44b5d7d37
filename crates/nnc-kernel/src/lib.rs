//! nnc's Kernel IR: the contract between the compiler's passes and its backends.
//!
//! Everything a backend needs, and nothing of how it is made (the passes that produce Kernel IR
//! from a graph are `nnc-lower`'s):
//! - [`expr`]: scalar expressions, shared by compute definitions and scheduled kernels;
//! - [`kernel`]: scheduled kernels (loops, loads/stores, locals, workgroup memory, barriers,
//!   a launch and a schedule as data), and [`kernel::Compute`], what a node computes;
//! - [`device`]: what a target offers kernels, as data;
//! - [`program`]: a fused, scheduled program and its buffers, run by the Kernel-IR interpreter
//!   ([`interp`]), the oracle every backend is checked against;
//! - [`visit`]: walks over statements; [`cost`] and [`stats`]: what kernels cost;
//! - [`backend`]: the contract every target implements ([`interpreted`]: the interpreter's);
//! - [`plan`]: where intermediates live in one arena; [`bundle`]: a compiled program on disk;
//! - [`print`]: the text form.

pub mod backend;
pub mod bundle;
pub mod cost;
pub mod device;
pub mod expr;
pub mod interp;
pub mod interpreted;
pub mod kernel;
pub mod plan;
pub mod print;
pub mod program;
pub mod stats;
pub mod visit;

pub use backend::{Backend, BackendError, Checked, ErrorKind, Executable, Interface, Port};
pub use device::{Device, DeviceKind, IndexWidth};
pub use expr::{BufId, Combine, Expr, Literal, Reduction, Special, Var, VarGen};
pub use kernel::{Access, Buffer, Compute, Kernel, Launch, LoopKind, Schedule, Space, Stmt, Strategy};

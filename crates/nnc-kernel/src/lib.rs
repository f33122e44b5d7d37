//! nnc's Kernel IR and everything between the optimized graph and a backend.
//!
//! - [`expr`]: scalar expressions, shared by compute definitions and scheduled kernels;
//! - [`kernel`]: scheduled kernels (loops, loads/stores, locals, workgroup memory, barriers,
//!   a launch and a schedule as data), and [`kernel::Compute`], what a node computes;
//! - [`print`]: the text form.

pub mod bundle;
pub mod expr;
pub mod fuse;
pub mod interp;
pub mod kernel;
pub mod layout;
pub mod lower;
pub mod lower_reduce;
pub mod plan;
pub mod print;
pub mod program;
pub mod schedule;
pub mod simplify;
pub mod stats;

pub use expr::{BufId, Combine, Expr, Literal, Reduction, Special, Var, VarGen};
pub use kernel::{Access, Buffer, Compute, Kernel, Launch, LoopKind, Schedule, Space, Stmt, Strategy};

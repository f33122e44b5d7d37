//! nnc's host API for framework authors: a [`Session`] compiles a graph for a [`Target`] and runs
//! it on caller data as often as needed, recompiling only when the inputs bring a shape it has
//! not seen (symbolic dimensions are bound at run time; compiled programs are cached per shape).
//!
//! - [`target`]: the backends a session can use and what they need;
//! - [`session`]: [`Session`], its options, errors and compile reports;
//! - [`pipeline`]: the compile pipeline (optimize, fuse, schedule) with the time of each phase,
//!   shared by sessions and by `nnc compile`.

pub mod pipeline;
pub mod session;
pub mod target;

pub use pipeline::{compile_timed, Phases};
pub use session::{CompileReport, Session, SessionError, SessionOptions};
pub use target::Target;

//! nnc's host API for framework authors: a [`Session`] compiles a graph for a [`Target`] and runs
//! it on caller data as often as needed, recompiling only when the inputs bring a shape it has
//! not seen (symbolic dimensions are bound at run time; compiled programs are cached per shape).
//!
//! - [`target`]: the backends a session can use and what they need;
//! - [`session`]: [`Session`], its options, errors and compile reports;
//! - [`pipeline`]: the compile pipeline (optimize, fuse, schedule) with the time of each phase,
//!   shared by sessions and by `nnc compile`;
//! - [`tuning`]: tuned schedules (the search behind `nnc tune`, and the cache every compile
//!   reads);
//! - [`profile`]: the time of each kernel of a compiled program, with its counts;
//! - [`staged`]: ONNX models whose control flow or shapes are decided at run time, each compiled
//!   stretch a session of the same target.

pub mod pipeline;
pub mod profile;
pub mod session;
pub mod staged;
pub mod target;
pub mod tuning;

pub use pipeline::{compile_timed, Phases};
pub use session::{CompileReport, Session, SessionError, SessionOptions};
pub use staged::{staged_session, SessionRunner, StagedSession};
pub use target::Target;
pub use tuning::TuningSource;

//! The subcommands of `nnc`, one module each: its clap arguments and a `run` function that returns
//! the process exit code or an error for `main` to report.

pub mod bench;
pub mod compile;
pub mod conformance;
pub mod dump;
pub mod grad;
pub mod quantize;
pub mod run;
pub mod serve;
pub mod tune;

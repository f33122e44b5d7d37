//! The flags of the commands that time a model (`bench`, `tune`): where it runs (CPU threads, a
//! wgpu adapter) and on what inputs (`--shape`, `--data`).

use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug, Clone, Default)]
pub struct TimedArgs {
    /// Threads for the CPU target (all cores by default; tuned schedules are kept per thread
    /// count).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub threads: Option<u32>,

    /// Input shapes: SYMBOL=SIZE binds a symbolic dimension, INPUT=D0,D1,... gives an input's
    /// shape (repeatable). Dimensions left open are bound to 1, with a note.
    #[arg(long, value_name = "NAME=SIZE")]
    pub shape: Vec<String>,

    /// Read the inputs from DIR/input_N.pb instead of generating them (pseudo-random, seed 0).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,

    /// With `--target wgsl`: the adapter whose name contains NAME.
    #[arg(long, value_name = "NAME")]
    pub adapter: Option<String>,
}

impl TimedArgs {
    pub fn threads(&self) -> Option<usize> {
        self.threads.map(|t| t as usize)
    }
}

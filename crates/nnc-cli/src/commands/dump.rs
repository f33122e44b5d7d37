//! `nnc dump FILE`: print a model as verified `.nnir` text.
//!
//! The printer annotates every value with its inferred type. Large constants are elided by default
//! so weights do not drown the graph; `--full` prints them all (the output then parses back to the
//! same graph).

use crate::model::load_model;
use anyhow::Context;
use clap::Args;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct DumpArgs {
    /// The model file (.nnir or .onnx).
    pub file: PathBuf,

    /// Elide constants with more than N elements (printed as `<elided N elements>`, which does not
    /// parse back).
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub elide: usize,

    /// Print every constant in full, however large (overrides --elide).
    #[arg(long, conflicts_with = "elide")]
    pub full: bool,
}

pub fn run(args: DumpArgs) -> anyhow::Result<ExitCode> {
    let graph = load_model(&args.file)?;
    let options = nnc_ir::text::PrintOptions { elide_constants_over: (!args.full).then_some(args.elide) };
    let text = nnc_ir::text::print_with(&graph, &options);
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes()).and_then(|()| out.flush()).context("cannot write to stdout")?;
    Ok(ExitCode::SUCCESS)
}

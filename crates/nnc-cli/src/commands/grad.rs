//! `nnc grad FILE --loss NAME --wrt A,B`: print the graph extended with the gradients of a
//! scalar loss value with respect to the named values (reverse-mode autodiff, `nnc-autodiff`).

use crate::model::load_model;
use anyhow::{anyhow, bail, Context};
use clap::Args;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct GradArgs {
    /// The model file (.nnir or .onnx).
    pub file: PathBuf,

    /// The scalar floating-point value to differentiate (its name, without `%`).
    #[arg(long, value_name = "NAME")]
    pub loss: String,

    /// The values to differentiate with respect to, comma-separated names (inputs, weights or
    /// intermediates).
    #[arg(long, value_name = "A,B,...", value_delimiter = ',', required = true)]
    pub wrt: Vec<String>,

    /// Elide constants with more than N elements.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub elide: usize,

    /// Print every constant in full (the output then parses back).
    #[arg(long, conflicts_with = "elide")]
    pub full: bool,
}

pub fn run(args: GradArgs) -> anyhow::Result<ExitCode> {
    let shown = args.file.display().to_string();
    let graph = load_model(&args.file)?;
    let find = |name: &str| {
        let name = name.trim().trim_start_matches('%');
        graph.find(name).ok_or_else(|| anyhow!("{shown}: no value `%{name}` in graph `{}`", graph.name))
    };
    let loss = find(&args.loss)?;
    let wrt = args.wrt.iter().map(|n| find(n)).collect::<anyhow::Result<Vec<_>>>()?;
    if wrt.is_empty() {
        bail!("--wrt names no value");
    }
    let backward = nnc_autodiff::grad(&graph, loss, &wrt).map_err(|e| anyhow!("{shown}: {e}"))?;
    let options = nnc_ir::text::PrintOptions { elide_constants_over: (!args.full).then_some(args.elide) };
    let text = nnc_ir::text::print_with(&backward, &options);
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes()).and_then(|()| out.flush()).context("cannot write to stdout")?;
    Ok(ExitCode::SUCCESS)
}

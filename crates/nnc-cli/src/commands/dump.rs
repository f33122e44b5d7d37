//! `nnc dump FILE`: print a model as verified `.nnir` text, after a chosen pass.
//!
//! The printer annotates every value with its inferred type. Large constants are elided by default
//! so weights do not drown the graph; `--full` prints them all (the output then parses back to the
//! same graph). `--after opt` prints the graph the optimizer (`nnc-opt`) makes of it; `--explain`
//! adds, as `#` comment lines before the graph, the rules that changed it and the cost before and
//! after.

use crate::model::load_model;
use crate::target::TargetArg;
use anyhow::{anyhow, bail, Context};
use clap::{Args, ValueEnum};
use std::fmt::Write as _;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// The passes whose result `dump` can print, in pipeline order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Pass {
    /// The graph as imported and verified.
    Import,
    /// Extended with the gradient of the sum of its outputs with respect to every weight
    /// (reverse-mode autodiff, before rewriting).
    Grad,
    /// After e-graph rewriting (nnc-opt).
    Opt,
    /// After fusion (nnc-lower): the groups, each one kernel's compute definition.
    Fuse,
    /// After scheduling: the Kernel IR of every kernel.
    Schedule,
    /// After legalization for the target's device: the Kernel IR its code generator reads.
    Legalize,
}

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

    /// Print the graph after this pass [default: import, or opt with --explain].
    #[arg(long, value_enum, value_name = "PASS")]
    pub after: Option<Pass>,

    /// Before the graph, list (as `#` comments) the rules that changed it, with counts, and its
    /// cost (bytes moved, floating-point work) before and after optimization. Implies `--after opt`.
    /// With `--after fuse`, the fusion decision for every value and the cost it weighed.
    #[arg(long)]
    pub explain: bool,

    /// Input shapes for the kernels of `--after fuse|schedule|legalize`: SYMBOL=SIZE binds a symbolic
    /// dimension, INPUT=D0,D1,... gives an input's shape (repeatable). Dimensions left open are
    /// bound to 1, with a note.
    #[arg(long, value_name = "NAME=SIZE")]
    pub shape: Vec<String>,

    /// The target whose device kernels are fused and scheduled for (`--after fuse|schedule|legalize`).
    #[arg(long, value_enum, default_value_t)]
    pub target: TargetArg,
}

pub fn run(args: DumpArgs) -> anyhow::Result<ExitCode> {
    let pass = args.after.unwrap_or(if args.explain { Pass::Opt } else { Pass::Import });
    if args.explain && !matches!(pass, Pass::Opt | Pass::Fuse) {
        bail!("--explain describes the `opt` and `fuse` passes; it cannot be used with --after {pass:?}");
    }
    let mut text = String::new();
    let device = match (pass, args.target.0.device()) {
        (Pass::Fuse | Pass::Schedule | Pass::Legalize, None) => {
            bail!("target {} has no kernels: give --target with a device (cpu, wgsl, ...)", args.target)
        }
        (_, device) => device.unwrap_or_else(nnc_kernel::Device::cpu),
    };
    let mut graph = if matches!(pass, Pass::Fuse | Pass::Schedule | Pass::Legalize) {
        let spec = crate::model::load_for_shapes(&args.file, &args.shape, None)?;
        eprint!("{}", spec.resolved.note());
        let _ = writeln!(text, "# inputs: {}", spec.describe_shapes());
        spec.graph
    } else {
        load_model(&args.file)?
    };
    if pass == Pass::Grad {
        graph = nnc_autodiff::grad_of_output_sum(&graph, None)
            .map_err(|e| anyhow!(e))
            .with_context(|| format!("cannot differentiate {}", args.file.display()))?;
    }
    if !matches!(pass, Pass::Import | Pass::Grad) {
        let before = graph.nodes.len();
        let options = nnc_opt::OptOptions::default();
        let opt = nnc_opt::optimize(&graph, &options)
            .map_err(|e| anyhow!(e))
            .with_context(|| format!("cannot optimize {}", args.file.display()))?;
        if args.explain && pass == Pass::Opt {
            text = explain(&opt, before, &options.cost);
        }
        graph = opt.graph;
    }
    if matches!(pass, Pass::Fuse | Pass::Schedule | Pass::Legalize) {
        let fused = nnc_lower::fuse_for(&graph, &device, None)
            .map_err(|e| anyhow!(e))
            .with_context(|| format!("cannot fuse {}", args.file.display()))?;
        if args.explain {
            for d in &fused.decisions {
                let _ = writeln!(text, "# {d}");
            }
        }
        if pass == Pass::Fuse {
            let _ = write!(text, "{fused}");
        } else {
            let mut kernels = nnc_lower::schedule::schedule_all(&fused, &device)
                .map_err(|e| anyhow!(e))
                .with_context(|| format!("cannot schedule {}", args.file.display()))?;
            if pass == Pass::Legalize {
                kernels = nnc_lower::legalize::legalize_all(&kernels, &device)
                    .map_err(|e| anyhow!(e))
                    .with_context(|| format!("cannot legalize {}", args.file.display()))?;
            }
            for k in &kernels {
                let _ = writeln!(text, "{k}");
            }
        }
        return write_stdout(&text);
    }
    let options = nnc_ir::text::PrintOptions { elide_constants_over: (!args.full).then_some(args.elide) };
    text.push_str(&nnc_ir::text::print_with(&graph, &options));
    write_stdout(&text)
}

fn write_stdout(text: &str) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes()).and_then(|()| out.flush()).context("cannot write to stdout")?;
    Ok(ExitCode::SUCCESS)
}

/// The `--explain` report, as comment lines (so the dump still parses).
fn explain(opt: &nnc_opt::Optimized, nodes_before: usize, model: &nnc_opt::CostModel) -> String {
    let mut s = String::new();
    let stop = match &opt.stop {
        nnc_opt::Stop::Saturated => "saturated".to_string(),
        nnc_opt::Stop::IterationLimit(n) => format!("stopped at the iteration limit ({n})"),
        nnc_opt::Stop::NodeLimit(n) => format!("stopped at the e-node limit ({n})"),
        nnc_opt::Stop::TimeLimit => "stopped at the time limit (results may vary between runs)".to_string(),
        nnc_opt::Stop::Other(m) => format!("stopped: {m}"),
    };
    let _ = writeln!(
        s,
        "# opt: {nodes_before} -> {} nodes; {stop} after {} iterations, {} e-nodes",
        opt.graph.nodes.len(),
        opt.iterations,
        opt.egraph_nodes
    );
    let (b, a) = (opt.cost_before.total(model), opt.cost_after.total(model));
    let change = if b > 0.0 { format!(" ({:+.1}%)", 100.0 * (a - b) / b) } else { String::new() };
    let _ = writeln!(
        s,
        "# cost before: {b:.4e} ({:.4e} bytes, {:.4e} flops)",
        opt.cost_before.bytes, opt.cost_before.flops
    );
    let _ = writeln!(
        s,
        "# cost after:  {a:.4e} ({:.4e} bytes, {:.4e} flops){change}",
        opt.cost_after.bytes, opt.cost_after.flops
    );
    if opt.applied.is_empty() {
        let _ = writeln!(s, "# no rule changed the graph");
    } else {
        let _ = writeln!(s, "# rules that changed the graph:");
        let width = opt.applied.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
        for (name, count) in &opt.applied {
            let _ = writeln!(s, "#   {name:width$}  {count}");
        }
    }
    s
}

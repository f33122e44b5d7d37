//! `nnc compile FILE`: run the compiler's passes (import, rewrite, fuse, schedule) on a model and,
//! with `--stats`, report what they achieved: nodes before and after rewriting, kernels, bytes
//! moved and arithmetic per kernel and in total, against one kernel per node of the imported
//! graph, and the time each pass took.

use crate::commands::dump::DeviceArg;
use crate::model::load_model_static;
use anyhow::{anyhow, Context};
use clap::Args;
use nnc_kernel::fuse::{fuse, FuseOptions};
use nnc_kernel::schedule::schedule_all;
use nnc_kernel::stats::{NodeBaseline, ProgramStats};
use std::fmt::Write as _;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[derive(Args, Debug)]
pub struct CompileArgs {
    /// The model file (.nnir or .onnx).
    pub file: PathBuf,

    /// Print the compile report: nodes, kernels, bytes moved and FLOPs, per kernel and in
    /// total, against one kernel per node; and the time of each pass.
    #[arg(long)]
    pub stats: bool,

    /// Input shapes: NAME=D0,D1,... (repeatable); symbolic dimensions not given are bound to 1.
    #[arg(long, value_name = "NAME=DIMS")]
    pub shape: Vec<String>,

    /// The device kernels are scheduled for.
    #[arg(long, value_enum, default_value = "gpu")]
    pub device: DeviceArg,

    /// Compile forward and backward: the model extended with the gradient of the sum of its
    /// outputs with respect to every weight.
    #[arg(long)]
    pub grad: bool,
}

pub fn run(args: CompileArgs) -> anyhow::Result<ExitCode> {
    let shown = args.file.display().to_string();
    let t = Instant::now();
    let mut graph = load_model_static(&args.file, &args.shape)?;
    if args.grad {
        graph = nnc_autodiff::grad_of_output_sum(&graph, None)
            .map_err(|e| anyhow!(e))
            .with_context(|| format!("cannot differentiate {shown}"))?;
    }
    let import_ms = ms(t);

    let t = Instant::now();
    let opt = nnc_opt::optimize(&graph, &nnc_opt::OptOptions::default())
        .map_err(|e| anyhow!(e))
        .with_context(|| format!("cannot optimize {shown}"))?;
    let opt_ms = ms(t);

    let t = Instant::now();
    let fused = fuse(&opt.graph, &args.device.device().fuse_options())
        .map_err(|e| anyhow!(e))
        .with_context(|| format!("cannot fuse {shown}"))?;
    let fuse_ms = ms(t);

    let t = Instant::now();
    let kernels = schedule_all(&fused, &args.device.device())
        .map_err(|e| anyhow!(e))
        .with_context(|| format!("cannot schedule {shown}"))?;
    let schedule_ms = ms(t);

    let mut out = String::new();
    if args.stats {
        let stats = ProgramStats::of(&fused);
        let baseline = match crate::model::extension(&args.file).as_deref() {
            Some("onnx") if !args.grad => onnx_baseline(&args.file, &graph)?,
            _ => NodeBaseline::of(&graph),
        };
        let unfused = fuse(&graph, &FuseOptions { fuse: false, ..Default::default() })
            .map(|f| ProgramStats::of(&f).flops())
            .map_err(|e| anyhow!(e))
            .with_context(|| format!("cannot lower {shown} unfused"))?;
        let count = |g: &nnc_ir::Graph| g.nodes.iter().filter(|n| !matches!(n.op, nnc_ir::Op::Constant(_))).count();
        let _ = writeln!(out, "model {shown} ({} device)", format!("{:?}", args.device).to_lowercase());
        let _ = writeln!(out, "nodes: {} imported, {} after rewriting", count(&graph), count(&opt.graph));
        let per = if args.grad { "graph node" } else { "ONNX node" };
        let _ = writeln!(
            out,
            "kernels: {} ({} with one per {per}: {})",
            kernels.len(),
            baseline.kernels,
            change(kernels.len() as f64, baseline.kernels as f64)
        );
        let _ = writeln!(
            out,
            "bytes moved: {} ({} with one kernel per {per}: {})",
            mb(stats.bytes()),
            mb(baseline.bytes),
            change(stats.bytes() as f64, baseline.bytes as f64)
        );
        let (act, base_act) = (stats.activation_bytes(), baseline.bytes - baseline.weight_bytes);
        let _ = writeln!(
            out,
            "  of which not weights: {} ({}: {})",
            mb(act),
            mb(base_act),
            change(act as f64, base_act as f64)
        );
        let _ =
            writeln!(out, "FLOPs: {:.4e} ({:.4e} unfused: {})", stats.flops(), unfused, change(stats.flops(), unfused));
        let _ = writeln!(
            out,
            "time: import {import_ms:.1} ms, rewrite {opt_ms:.1} ms, fuse {fuse_ms:.1} ms, schedule {schedule_ms:.1} ms"
        );
        let _ = writeln!(out);
        let strategies: Vec<&str> = kernels.iter().map(|k| k.schedule.strategy.name()).collect();
        let _ = write!(out, "{}", stats.table_with(&strategies));
    } else {
        let _ = writeln!(
            out,
            "compiled {shown}: {} kernels in {:.1} ms (checked; nothing written: code generation comes with the backends)",
            kernels.len(),
            import_ms + opt_ms + fuse_ms + schedule_ms
        );
    }
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(out.as_bytes()).and_then(|()| stdout.flush()).context("cannot write to stdout")?;
    Ok(ExitCode::SUCCESS)
}

/// One kernel per node of the ONNX file (`Constant` nodes aside), each reading its inputs and
/// writing its outputs; sizes come from the initializers and from the imported graph's values
/// of the same names (values the importer folded away, such as shape arithmetic, count as 0).
fn onnx_baseline(path: &std::path::Path, graph: &nnc_ir::Graph) -> anyhow::Result<NodeBaseline> {
    use prost::Message;
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let model = nnc_onnx::proto::ModelProto::decode(bytes.as_slice())
        .with_context(|| format!("{}: not an ONNX model", path.display()))?;
    let g = model.graph.unwrap_or_default();
    let mut sizes: std::collections::HashMap<&str, (u64, bool)> = std::collections::HashMap::new();
    for init in &g.initializer {
        let n: u64 = init.dims.iter().map(|&d| d.max(0) as u64).product();
        let elem =
            nnc_onnx::tensor::dtype_from_onnx(init.data_type.unwrap_or(0)).map(|d| d.size_bytes()).unwrap_or(4) as u64;
        sizes.insert(init.name(), (n * elem, true));
    }
    let value_bytes = |name: &str| -> (u64, bool) {
        if let Some(&s) = sizes.get(name) {
            return s;
        }
        let size = graph.find(name).and_then(|v| {
            let ty = graph.ty(v);
            ty.static_shape().map(|s| (s.iter().product::<usize>() * ty.dtype.size_bytes()) as u64)
        });
        (size.unwrap_or(0), false)
    };
    let mut base = NodeBaseline { kernels: 0, bytes: 0, weight_bytes: 0 };
    for node in g.node.iter().filter(|n| n.op_type() != "Constant") {
        base.kernels += 1;
        for name in node.input.iter().chain(&node.output).filter(|n| !n.is_empty()) {
            let (b, weight) = value_bytes(name);
            base.bytes += b;
            if weight {
                base.weight_bytes += b;
            }
        }
    }
    Ok(base)
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

fn mb(bytes: u64) -> String {
    format!("{:.2} MB", bytes as f64 / 1e6)
}

/// `-53.1%`: how `now` compares with `before`.
fn change(now: f64, before: f64) -> String {
    if before == 0.0 {
        return "n/a".into();
    }
    format!("{:+.1}%", (now / before - 1.0) * 100.0)
}

//! `nnc compile FILE`: compile a model for a target (the host CPU by default) and write the
//! result as a bundle folder: the generated code, the execution plan (`manifest.json`) and the
//! weights (see `nnc_kernel::bundle`). A CPU bundle runs with `nnc run DIR`.
//!
//! The folder is `-o DIR`, or `<model file stem>.<target>.nnc` in the working directory;
//! `--check` compiles and checks the code without writing anything. With `--stats` it reports
//! what the passes achieved: nodes before and after rewriting, kernels, bytes moved and
//! arithmetic per kernel and in total, against one kernel per node of the imported graph, the
//! arena of intermediates against its lower bound, and the time each phase took.

use crate::model::load_for_shapes;
use crate::target::TargetArg;
use anyhow::{anyhow, bail, Context};
use clap::Args;
use nnc_kernel::bundle::Manifest;
use nnc_kernel::plan::MemoryPlan;
use nnc_kernel::stats::{NodeBaseline, ProgramStats};
use nnc_lower::fuse::{fuse, FuseOptions};
use nnc_runtime::{compile_timed, Phases, Target};
use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct CompileArgs {
    /// The model file (.nnir or .onnx).
    pub file: PathBuf,

    /// The target to generate code for (kernels are scheduled for its device).
    #[arg(long, value_enum, default_value_t)]
    pub target: TargetArg,

    /// Write the bundle to this folder [default: <model file stem>.<target>.nnc in the working
    /// directory]. An existing folder is overwritten only if it holds a bundle.
    #[arg(long, short = 'o', value_name = "DIR")]
    pub output: Option<PathBuf>,

    /// Compile and check the code (and report, with --stats), but write nothing.
    #[arg(long, conflicts_with = "output")]
    pub check: bool,

    /// Print the compile report: nodes, kernels, bytes moved and FLOPs, per kernel and in
    /// total, against one kernel per node; the arena of intermediates against its lower bound;
    /// and the time of each phase.
    #[arg(long)]
    pub stats: bool,

    /// Input shapes: SYMBOL=SIZE binds a symbolic dimension, INPUT=D0,D1,... gives an input's
    /// shape (repeatable). Dimensions left open are bound to 1, with a note.
    #[arg(long, value_name = "NAME=SIZE")]
    pub shape: Vec<String>,

    /// Take input shapes from the ONNX test data in DIR (input_N.pb is the N-th input).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,

    /// Compile forward and backward: the model extended with the gradient of the sum of its
    /// outputs with respect to every weight.
    #[arg(long)]
    pub grad: bool,

    /// With --target wgsl, the device to schedule for: `adapter` (the local wgpu adapter's
    /// limits, the default), `webgpu` (WebGPU's default limits, which every browser offers), or
    /// FILE.json (an adapter's `{"limits": {...}, "features": [...]}`, as the example page of
    /// `nnc serve` prints them). A bundle that needs more is refused, naming what exceeds.
    #[arg(long, value_name = "DEVICE")]
    pub device: Option<String>,

    #[command(flatten)]
    pub tuning: crate::tuning::TuningArgs,
}

/// The WebGPU device `--device` names (`None` for the local adapter).
fn webgpu_device(device: Option<&str>, target: Target) -> anyhow::Result<Option<nnc_wgsl::WebGpuDevice>> {
    match device {
        None => Ok(None),
        Some(_) if target != Target::Wgsl => bail!("--device chooses a WebGPU device: it needs --target wgsl"),
        Some("adapter") => Ok(None),
        Some("webgpu") => Ok(Some(nnc_wgsl::WebGpuDevice::default())),
        Some(file) => {
            let text = std::fs::read_to_string(file).with_context(|| format!("cannot read --device {file}"))?;
            nnc_wgsl::WebGpuDevice::from_json(&text).map(Some).map_err(|e| anyhow!("{file}: {e}"))
        }
    }
}

pub fn run(args: CompileArgs) -> anyhow::Result<ExitCode> {
    let shown = args.file.display().to_string();
    let target = args.target.0;
    let options = nnc_runtime::target::BackendOptions {
        webgpu: webgpu_device(args.device.as_deref(), target)?,
        ..Default::default()
    };
    let backend = target.backend(&options).filter(|_| target.writes_bundle());
    let Some(backend) = backend else {
        let compiling: Vec<&str> = Target::ALL.iter().filter(|t| t.writes_bundle()).map(|t| t.name()).collect();
        bail!(
            "target {target} has nothing to compile to (it runs graphs with `nnc run --target {target}`); code is \
             generated for {}",
            compiling.join(", ")
        );
    };
    let output = match (&args.output, args.check) {
        (_, true) => None,
        (Some(dir), false) => Some(dir.clone()),
        (None, false) => Some(default_output(&args.file, target)?),
    };
    if let Some(dir) = &output {
        check_output_folder(dir)?;
    }
    let mut phases = Phases::default();
    let spec = phases.time("import", || load_for_shapes(&args.file, &args.shape, args.data.as_deref()))?;
    eprint!("{}", spec.resolved.note());
    let mut graph = spec.graph.clone();
    if args.grad {
        graph = phases
            .time("grad", || nnc_autodiff::grad_of_output_sum(&graph, None))
            .map_err(|e| anyhow!(e))
            .with_context(|| format!("cannot differentiate {shown}"))?;
    }
    let opt = phases
        .time("optimize", || nnc_opt::optimize(&graph, &nnc_opt::OptOptions::default()))
        .map_err(|e| anyhow!(e))
        .with_context(|| format!("cannot optimize {shown}"))?;
    let device = backend.device();
    args.tuning.check()?;
    let tuned = args.tuning.source().load(&backend.fingerprint());
    let (program, tuning) = compile_timed(&opt.graph, &device, false, tuned.as_deref(), &mut phases)
        .map_err(|e| anyhow!("{shown}: {e}"))?;
    crate::tuning::report(&tuning, program.kernels.len());
    let kernel_count = program.kernels.len();
    let (written, notes) = match &output {
        Some(dir) => {
            let (manifest, notes) = phases
                .time("codegen", || backend.write_bundle(&program, dir))
                .map_err(|e| anyhow!(e).context(format!("cannot write {}", dir.display())))?;
            (Some(describe_files(&manifest)), notes)
        }
        None => (None, phases.time("codegen", || backend.check(&program)).map_err(|e| anyhow!("{shown}: {e}"))?),
    };

    let mut out = String::new();
    if args.stats {
        let fused = &program.fused;
        let stats = ProgramStats::of(fused);
        let baseline = match crate::model::extension(&args.file).as_deref() {
            Some("onnx") if !args.grad => onnx_baseline(&args.file, &graph)?,
            _ => NodeBaseline::of(&graph),
        };
        let unfused = fuse(&graph, &FuseOptions { fuse: false, ..Default::default() })
            .map(|f| ProgramStats::of(&f).flops())
            .map_err(|e| anyhow!(e))
            .with_context(|| format!("cannot lower {shown} unfused"))?;
        let count = |g: &nnc_ir::Graph| g.nodes.iter().filter(|n| !matches!(n.op, nnc_ir::Op::Constant(_))).count();
        let device_kind = format!("{:?}", device.kind).to_lowercase();
        let _ = writeln!(out, "model {shown} (target {target}, {device_kind} device)");
        let _ = writeln!(out, "inputs: {}", spec.describe_shapes());
        let _ = writeln!(out, "nodes: {} imported, {} after rewriting", count(&graph), count(&opt.graph));
        let per = if args.grad { "graph node" } else { "ONNX node" };
        let _ = writeln!(
            out,
            "kernels: {} ({} with one per {per}: {})",
            kernel_count,
            baseline.kernels,
            change(kernel_count as f64, baseline.kernels as f64)
        );
        let _ = writeln!(
            out,
            "bytes moved: {} ({} with one kernel per {per}: {})",
            mb(stats.bytes()),
            mb(baseline.bytes),
            change(stats.bytes() as f64, baseline.bytes as f64)
        );
        let (act, base_act) = (stats.activation_bytes(), baseline.bytes.saturating_sub(baseline.weight_bytes));
        let _ = writeln!(
            out,
            "  of which not weights: {} ({}: {})",
            mb(act),
            mb(base_act),
            change(act as f64, base_act as f64)
        );
        let _ =
            writeln!(out, "FLOPs: {:.4e} ({:.4e} unfused: {})", stats.flops(), unfused, change(stats.flops(), unfused));
        let plan = MemoryPlan::of(fused);
        let _ = writeln!(
            out,
            "arena: {} peak for intermediates (lower bound {}: {:.2}x)",
            mb(plan.arena_bytes),
            mb(plan.lower_bound),
            plan.arena_bytes as f64 / plan.lower_bound.max(1) as f64
        );
        let _ = writeln!(out, "time: {} (total {:.1} ms)", phases, phases.total_ms());
        for note in &notes {
            let _ = writeln!(out, "{note}");
        }
        let _ = writeln!(out);
        let strategies: Vec<&str> = program.kernels.iter().map(|k| k.schedule.strategy.name()).collect();
        let _ = write!(out, "{}", stats.table_with(&strategies));
    }
    let _ = writeln!(
        out,
        "compiled {shown} for {target} (inputs {}): {kernel_count} kernels in {:.1} ms",
        spec.describe_shapes(),
        phases.total_ms()
    );
    match (&written, &output) {
        (Some(files), Some(dir)) => {
            let _ = writeln!(out, "wrote {} ({files})", dir.display());
            let _ = match target {
                Target::Cpu => writeln!(
                    out,
                    "run it with: nnc run {} --random-inputs (or --data DIR, --input NAME=FILE)",
                    dir.display()
                ),
                Target::Wgsl => writeln!(
                    out,
                    "run it in a browser with: nnc serve {} (the WebGPU runtime web/nnc-webgpu.js loads it)",
                    dir.display()
                ),
                _ => writeln!(out, "(`nnc run` executes CPU bundles; this folder is for a {target} runtime)"),
            };
        }
        _ => {
            let _ = writeln!(out, "nothing written (--check)");
        }
    }
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(out.as_bytes()).and_then(|()| stdout.flush()).context("cannot write to stdout")?;
    Ok(ExitCode::SUCCESS)
}

/// `<model file stem>.<target>.nnc` in the working directory.
fn default_output(model: &Path, target: Target) -> anyhow::Result<PathBuf> {
    let stem = model
        .file_stem()
        .and_then(|s| s.to_str())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| anyhow!("{}: cannot name the output after it; give -o DIR", model.display()))?;
    Ok(PathBuf::from(format!("{stem}.{target}.nnc")))
}

/// Refuses to write into an existing folder that is not a bundle (or into a file).
fn check_output_folder(dir: &Path) -> anyhow::Result<()> {
    let shown = dir.display();
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(anyhow!(e).context(format!("cannot write {shown}"))),
        Ok(meta) if !meta.is_dir() => bail!("cannot write the bundle to {shown}: it is a file"),
        Ok(_) => {
            let empty = std::fs::read_dir(dir).with_context(|| format!("cannot read {shown}"))?.next().is_none();
            if empty || dir.join(nnc_kernel::bundle::MANIFEST_FILE).is_file() {
                Ok(())
            } else {
                bail!("{shown} exists and does not hold a bundle: give another folder with -o")
            }
        }
    }
}

/// The files of a bundle, for the summary line (the first few, then how many more).
fn describe_files(manifest: &Manifest) -> String {
    let mut names = vec!["manifest.json".to_string(), "weights.bin".to_string()];
    names.extend(manifest.files.iter().map(|f| f.path.clone()));
    if names.len() > 6 {
        let more = names.len() - 5;
        names.truncate(5);
        names.push(format!("{more} more"));
    }
    names.join(", ")
}

/// One kernel per node of the ONNX file (`Constant` nodes aside), each reading its inputs and
/// writing its outputs; sizes come from the initializers and from the imported graph's values
/// of the same names (values the importer folded away, such as shape arithmetic, count as 0).
fn onnx_baseline(path: &std::path::Path, graph: &nnc_ir::Graph) -> anyhow::Result<NodeBaseline> {
    use prost::Message;
    let bytes = nnc_ir::size::read_file(path).with_context(|| format!("cannot read {}", path.display()))?;
    let model = nnc_onnx::proto::ModelProto::decode(bytes.as_slice())
        .with_context(|| format!("{}: not an ONNX model", path.display()))?;
    let g = model.graph.unwrap_or_default();
    let mut sizes: std::collections::HashMap<&str, (u64, bool)> = std::collections::HashMap::new();
    for init in &g.initializer {
        let elem =
            nnc_onnx::tensor::dtype_from_onnx(init.data_type.unwrap_or(0)).map(|d| d.size_bytes()).unwrap_or(4) as u64;
        let bytes = init.dims.iter().fold(elem, |acc, &d| acc.saturating_mul(d.max(0) as u64));
        sizes.insert(init.name(), (bytes, true));
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
            base.bytes = base.bytes.saturating_add(b);
            if weight {
                base.weight_bytes = base.weight_bytes.saturating_add(b);
            }
        }
    }
    Ok(base)
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

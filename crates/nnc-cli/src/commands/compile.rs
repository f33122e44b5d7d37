//! `nnc compile FILE`: run the compiler's passes (import, rewrite, fuse, schedule) on a model and,
//! with `--stats`, report what they achieved: nodes before and after rewriting, kernels, bytes
//! moved and arithmetic per kernel and in total, against one kernel per node of the imported
//! graph, the arena of intermediates against its lower bound, and the time each phase took.
//! With `--target T -o DIR` it writes the generated code, the execution plan and the weights
//! (see `nnc_kernel::bundle`); a CPU bundle runs with `nnc run DIR`.

use crate::commands::dump::DeviceArg;
use crate::model::{load_model_static, shapes_from_data};
use anyhow::{anyhow, Context};
use clap::{Args, ValueEnum};
use nnc_kernel::bundle::{Code, Manifest};
use nnc_kernel::fuse::{fuse, FuseOptions};
use nnc_kernel::plan::MemoryPlan;
use nnc_kernel::program::Program;
use nnc_kernel::schedule::Device;
use nnc_kernel::stats::{NodeBaseline, ProgramStats};
use nnc_runtime::{compile_timed, Phases};
use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The code `nnc compile --target` generates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CompileTarget {
    /// Native machine code for this CPU (Cranelift): a bundle `nnc run DIR` executes.
    Cpu,
    /// WGSL compute shaders, one `.wgsl` file per kernel, validated by naga.
    Wgsl,
    /// CUDA C++ (`kernels.cu`) and its PTX for sm_80 and sm_90, compiled by NVRTC.
    Cuda,
}

impl CompileTarget {
    fn device(self) -> Device {
        match self {
            CompileTarget::Cpu => nnc_cpu::jit_device(),
            CompileTarget::Wgsl | CompileTarget::Cuda => Device::gpu(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            CompileTarget::Cpu => "cpu",
            CompileTarget::Wgsl => "wgsl",
            CompileTarget::Cuda => "cuda",
        }
    }
}

#[derive(Args, Debug)]
pub struct CompileArgs {
    /// The model file (.nnir or .onnx).
    pub file: PathBuf,

    /// Print the compile report: nodes, kernels, bytes moved and FLOPs, per kernel and in
    /// total, against one kernel per node; the arena of intermediates against its lower bound;
    /// and the time of each phase.
    #[arg(long)]
    pub stats: bool,

    /// Input shapes: NAME=D0,D1,... (repeatable); symbolic dimensions not given are bound to 1.
    #[arg(long, value_name = "NAME=DIMS")]
    pub shape: Vec<String>,

    /// Take input shapes from the ONNX test data in DIR (input_N.pb is the N-th input).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,

    /// Generate code for this target (kernels are scheduled for its device).
    #[arg(long, value_enum)]
    pub target: Option<CompileTarget>,

    /// Write the compiled program to this folder: the kernels, the execution plan
    /// (manifest.json) and the weights (weights.bin). Needs --target.
    #[arg(long, short = 'o', value_name = "DIR", requires = "target")]
    pub output: Option<PathBuf>,

    /// The device kernels are scheduled for, without --target.
    #[arg(long, value_enum, default_value = "gpu", conflicts_with = "target")]
    pub device: DeviceArg,

    /// Compile forward and backward: the model extended with the gradient of the sum of its
    /// outputs with respect to every weight.
    #[arg(long)]
    pub grad: bool,
}

pub fn run(args: CompileArgs) -> anyhow::Result<ExitCode> {
    let shown = args.file.display().to_string();
    let device = args.target.map(CompileTarget::device).unwrap_or_else(|| args.device.device());
    let mut phases = Phases::default();
    let shapes = match &args.data {
        Some(dir) => shapes_from_data(&args.file, dir, &args.shape)?,
        None => args.shape.clone(),
    };
    let mut graph = phases.time("import", || load_model_static(&args.file, &shapes))?;
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
    let program = compile_timed(&opt.graph, &device, false, &mut phases).map_err(|e| anyhow!("{shown}: {e}"))?;
    let kernel_count = program.kernels.len();
    let mut code_note = None;
    let written = match (args.target, &args.output) {
        (Some(target), Some(dir)) => Some(write_output(target, &program, dir, &mut phases)?),
        (Some(CompileTarget::Cpu), None) => {
            let code = phases
                .time("codegen", || nnc_cpu::compile_kernels(&program.kernels, &Default::default()))
                .map_err(|e| anyhow!("{shown}: {e}"))?;
            code_note = Some(cpu_code_note(&code, device.vector));
            None
        }
        (Some(CompileTarget::Wgsl), None) => {
            phases.time("codegen", || nnc_wgsl::print_program(&program)).map_err(|e| anyhow!("{shown}: {e}"))?;
            None
        }
        (Some(CompileTarget::Cuda), None) => {
            cuda_code(&program, &mut phases).map_err(|e| anyhow!("{shown}: {e}"))?;
            None
        }
        (None, _) => None,
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
        let for_what = args.target.map(CompileTarget::name).map(|t| format!("target {t}, ")).unwrap_or_default();
        let _ = writeln!(out, "model {shown} ({for_what}{} device)", format!("{:?}", device.kind).to_lowercase());
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
        let plan = MemoryPlan::of(fused);
        let _ = writeln!(
            out,
            "arena: {} peak for intermediates (lower bound {}: {:.2}x)",
            mb(plan.arena_bytes),
            mb(plan.lower_bound),
            plan.arena_bytes as f64 / plan.lower_bound.max(1) as f64
        );
        let _ = writeln!(out, "time: {} (total {:.1} ms)", phases, phases.total_ms());
        if let Some(note) = &code_note {
            let _ = write!(out, "{note}");
        }
        let _ = writeln!(out);
        let strategies: Vec<&str> = program.kernels.iter().map(|k| k.schedule.strategy.name()).collect();
        let _ = write!(out, "{}", stats.table_with(&strategies));
    }
    match (&written, &args.output) {
        (Some(files), Some(dir)) => {
            let _ = writeln!(
                out,
                "compiled {shown}: {kernel_count} kernels in {:.1} ms; wrote {} ({files})",
                phases.total_ms(),
                dir.display()
            );
        }
        _ if !args.stats => {
            let note = if args.target.is_some() { "" } else { " (checked; give --target T -o DIR to write code)" };
            let _ = writeln!(out, "compiled {shown}: {kernel_count} kernels in {:.1} ms{note}", phases.total_ms());
        }
        _ => {}
    }
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(out.as_bytes()).and_then(|()| stdout.flush()).context("cannot write to stdout")?;
    Ok(ExitCode::SUCCESS)
}

/// Which code generator compiled the CPU kernels, and why any went to Cranelift.
fn cpu_code_note(code: &nnc_cpu::JitCode, lanes: u32) -> String {
    let mut note = format!(
        "code: {} of {} kernels by LLVM ({lanes} f32 lanes), the others by Cranelift\n",
        code.llvm_kernels,
        code.len()
    );
    for reason in &code.llvm_notes {
        let _ = writeln!(note, "  {reason}");
    }
    note
}

/// Writes `program`'s code for `target` into `dir` with the manifest and the weights; returns
/// a description of the files written.
fn write_output(target: CompileTarget, program: &Program, dir: &Path, phases: &mut Phases) -> anyhow::Result<String> {
    let shown = dir.display();
    match target {
        CompileTarget::Cpu => {
            let before = phases.0.clone();
            let manifest = nnc_cpu::write_bundle(program, dir, before).map_err(|e| anyhow!(e))?;
            *phases = Phases(manifest.compile_ms.clone());
            // LLVM's kernels are in one linked image, Cranelift's (if any) in kernels.bin.
            let image = if dir.join("kernels.image").exists() { ", kernels.image" } else { "" };
            Ok(format!("manifest.json, weights.bin, kernels.bin{image}; run it with `nnc run DIR`"))
        }
        CompileTarget::Wgsl => {
            let texts = phases.time("codegen", || nnc_wgsl::print_program(program)).map_err(|e| anyhow!(e))?;
            let files: Vec<String> = program.kernels.iter().map(|k| format!("kernels/{}.wgsl", k.name)).collect();
            let code = files.iter().map(|f| Code::File { path: f.clone(), entry: "main".into() }).collect();
            let (mut manifest, weights) = Manifest::of(program, "wgsl", code);
            manifest.compile_ms = phases.0.clone();
            manifest.target_info.insert(
                "bindings".into(),
                "binding k of group 0 = params[k], a storage buffer; bool and 8/16-bit integers are \
                 widened to 32 bits, 64-bit integers are pairs of u32 words (low first)"
                    .into(),
            );
            manifest.write(dir, &weights).with_context(|| format!("cannot write {shown}"))?;
            std::fs::create_dir_all(dir.join("kernels")).with_context(|| format!("cannot write {shown}/kernels"))?;
            for (file, text) in files.iter().zip(&texts) {
                std::fs::write(dir.join(file), text).with_context(|| format!("cannot write {shown}/{file}"))?;
            }
            Ok(format!("manifest.json, weights.bin, {} kernels/*.wgsl", files.len()))
        }
        CompileTarget::Cuda => {
            let (source, ptx) = cuda_code(program, phases)?;
            let code = program
                .kernels
                .iter()
                .enumerate()
                .map(|(g, k)| Code::File { path: "kernels.cu".into(), entry: nnc_cuda::entry_name(g, k) })
                .collect();
            let (mut manifest, weights) = Manifest::of(program, "cuda", code);
            // CUDA launches a grid whose y or z exceeds 65,535 flattened along x.
            for (entry, kernel) in manifest.kernels.iter_mut().zip(&program.kernels) {
                let dims = nnc_cuda::launch_dims(kernel).map_err(|e| anyhow!(e))?;
                (entry.grid, entry.workgroup) = (dims.grid, dims.block);
            }
            manifest.compile_ms = phases.0.clone();
            let archs: Vec<&str> = ptx.iter().map(|(a, _)| *a).collect();
            manifest
                .target_info
                .insert("ptx".into(), archs.iter().map(|a| format!("kernels.{a}.ptx")).collect::<Vec<_>>().join(","));
            manifest.write(dir, &weights).with_context(|| format!("cannot write {shown}"))?;
            std::fs::write(dir.join("kernels.cu"), &source)
                .with_context(|| format!("cannot write {shown}/kernels.cu"))?;
            for (arch, text) in &ptx {
                let file = format!("kernels.{arch}.ptx");
                std::fs::write(dir.join(&file), text).with_context(|| format!("cannot write {shown}/{file}"))?;
            }
            Ok(format!("manifest.json, weights.bin, kernels.cu, PTX for {}", archs.join(" and ")))
        }
    }
}

/// The program's CUDA C++ and its PTX for each architecture nnc targets, timed as codegen.
fn cuda_code(program: &Program, phases: &mut Phases) -> anyhow::Result<(String, Vec<(&'static str, String)>)> {
    phases
        .time("codegen", || {
            let source = nnc_cuda::print_program(program)?;
            let ptx = ["sm_80", "sm_90"]
                .into_iter()
                .map(|arch| nnc_cuda::compile_ptx(&source, arch).map(|p| (arch, p)))
                .collect::<Result<Vec<_>, _>>()?;
            Ok::<_, nnc_cuda::CudaError>((source, ptx))
        })
        .map_err(|e| anyhow!(e))
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

//! `nnc bench MODEL`: compile once, warm up, then time repeated runs on fixed inputs and print
//! the compile time and the run time's minimum, median, mean, 90th percentile and standard
//! deviation (`--json`: one object on one line, with the input shapes, the thread count, the
//! nnc version and the host CPU).
//!
//! Inputs are pseudo-random with a fixed seed (as `nnc run --random-inputs`), shaped by
//! `--shape`, or read from `--data DIR` (`input_N.pb`). MODEL may be a bundle folder from
//! `nnc compile`; its "compile" time is then the time to load it. `--profile` adds the time of
//! each kernel alone ([`nnc_runtime::profile`]). A model whose control flow is decided at run
//! time runs staged (see `nnc_onnx::staged`): its "compile" time is then the first run's, which
//! compiles the graphs the inputs take, and the report says what each run does.

use crate::inputs::timing_inputs;
use crate::model::{load_or_stage_for_shapes, Loaded};
use crate::target::TargetArg;
use anyhow::{anyhow, bail};
use clap::Args;
use nnc_ir::{TensorData, TensorType};
use nnc_onnx::staged::{HostValue, StagedModel, StagedStats};
use nnc_runtime::profile::Profile;
use nnc_runtime::{staged_session, Session, SessionOptions, Target};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// The model file (.nnir or .onnx), or a bundle folder written by `nnc compile`.
    pub file: PathBuf,

    /// Where to run the model.
    #[arg(long, value_enum, default_value_t)]
    pub target: TargetArg,

    /// Timed runs (after the warm-up).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub iters: u32,

    /// Untimed runs before timing.
    #[arg(long, default_value_t = 3)]
    pub warmup: u32,

    #[command(flatten)]
    pub on: crate::timed::TimedArgs,

    #[command(flatten)]
    pub tuning: crate::tuning::TuningArgs,

    /// Also time each kernel (median of --iters samples: inside whole runs on the CPU, alone
    /// after a whole run elsewhere) and print them slowest first: share of the run, GFLOP/s and
    /// GB/s from the kernel's own counts, schedule, and the model's nodes it covers (with
    /// --json: a `profile` member).
    #[arg(long)]
    pub profile: bool,

    /// Print one JSON object: model, target, compile_ms, min_ms, median_ms, mean_ms, p90_ms,
    /// stddev_ms, iters, warmup, threads, input_shapes, nnc_version, host_cpu, tuned_kernels,
    /// profile (null without --profile), staged (null unless the model runs staged).
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let shown = args.file.display().to_string();
    let threads = args.on.threads();
    let start = Instant::now();
    let (mut session, shapes) = if args.file.is_dir() {
        if !args.on.shape.is_empty() {
            bail!("{shown} is a bundle: it runs the shapes it was compiled for (give --shape to `nnc compile`)");
        }
        let session = Session::from_bundle(&args.file, threads).map_err(|e| anyhow!(e))?;
        let shapes = session.inputs().iter().map(|(_, ty)| ty.static_shape().unwrap_or_default()).collect();
        (session, shapes)
    } else {
        let options = args.tuning.session_options(args.target.0, args.on.adapter.clone(), threads)?;
        match load_or_stage_for_shapes(&args.file, &args.on.shape, args.on.data.as_deref())? {
            Loaded::Graph(spec) => {
                eprint!("{}", spec.resolved.note());
                (Session::new(spec.graph, options).map_err(|e| anyhow!("{shown}: {e}"))?, spec.resolved.shapes)
            }
            Loaded::Staged { model, interface, resolved } => {
                eprint!("{}", resolved.note());
                let inputs = timing_inputs(&interface, &resolved.shapes, args.on.data.as_deref(), false)?;
                return bench_staged(&args, *model, options, &interface, inputs, start);
            }
        }
    };
    let interface = session.inputs().to_vec();
    let inputs = timing_inputs(&interface, &shapes, args.on.data.as_deref(), args.file.is_dir())?;
    let shapes: Vec<Vec<usize>> = inputs.iter().map(|t| t.shape().to_vec()).collect();
    let report = session.prepare(&shapes).map_err(|e| anyhow!("{shown}: {e}"))?;
    crate::tuning::report(&report.tuning, report.kernels);
    let tuned_kernels = report.tuning.tuned_kernels();
    let compile = start.elapsed();
    let stats = time_runs(&args, || session.run(&inputs).map(drop).map_err(|e| anyhow!("{shown}: {e}")))?;
    let profile = match args.profile {
        true => Some(session.profile(&inputs, args.iters).map_err(|e| anyhow!("{shown}: {e}"))?),
        false => None,
    };
    let phases = session.report().map(|r| format!(" ({})", r.phases)).unwrap_or_default();
    let measured = Measured { target: session.target(), compile, phases, stats, tuned_kernels, staged: None };
    print_report(&args, &interface, &inputs, &measured, profile.as_ref())
}

/// [`run`] for a model that runs staged (its control flow decided at run time): "compile" is
/// the first run, which compiles the graphs the inputs take; the report adds what each run does.
fn bench_staged(
    args: &BenchArgs,
    model: StagedModel,
    options: SessionOptions,
    interface: &[(String, TensorType)],
    inputs: Vec<TensorData>,
    start: Instant,
) -> anyhow::Result<ExitCode> {
    let shown = args.file.display().to_string();
    if args.profile {
        bail!("{shown}: --profile is not supported for a model that runs staged (its control flow is decided at run time)");
    }
    let target = options.target;
    let values: Vec<HostValue> = inputs.iter().cloned().map(HostValue::Tensor).collect();
    let mut staged = staged_session(model, options);
    let mut run = || staged.run(values.clone()).map(drop).map_err(|e| anyhow!(e));
    run()?;
    let compile = start.elapsed();
    let stats = time_runs(args, &mut run)?;
    let counts = staged.stats();
    // Every run after the first repeats the first's graph runs and host nodes (same inputs).
    let runs = 1 + args.warmup as usize + args.iters as usize;
    let per_run = StagedStats {
        compiled: counts.compiled,
        graph_runs: counts.graph_runs / runs,
        host_nodes: counts.host_nodes / runs,
    };
    let measured = Measured { target, compile, phases: String::new(), stats, tuned_kernels: 0, staged: Some(per_run) };
    print_report(args, interface, &inputs, &measured, None)
}

/// `--warmup` untimed runs, then `--iters` timed ones.
fn time_runs(args: &BenchArgs, mut run: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<Stats> {
    for _ in 0..args.warmup {
        run()?;
    }
    let mut times: Vec<Duration> = Vec::with_capacity(args.iters as usize);
    for _ in 0..args.iters {
        let t = Instant::now();
        run()?;
        times.push(t.elapsed());
    }
    Ok(Stats::of(&times))
}

/// What a benchmark measured, for [`print_report`].
struct Measured {
    target: Target,
    compile: Duration,
    /// ` (optimize 8.1 ms, ...)`, or empty.
    phases: String,
    stats: Stats,
    tuned_kernels: usize,
    /// For a staged model: graphs compiled, and graph runs and host nodes per run.
    staged: Option<StagedStats>,
}

/// Prints the report, as text or (`--json`) one JSON object.
fn print_report(
    args: &BenchArgs,
    interface: &[(String, TensorType)],
    inputs: &[TensorData],
    m: &Measured,
    profile: Option<&Profile>,
) -> anyhow::Result<ExitCode> {
    let shown = args.file.display().to_string();
    let compile_ms = m.compile.as_secs_f64() * 1e3;
    let stats = &m.stats;
    let thread_count = (m.target == Target::Cpu)
        .then(|| args.on.threads().unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())));
    let mut out = std::io::stdout().lock();
    if args.json {
        let input_shapes: serde_json::Map<String, serde_json::Value> =
            interface.iter().zip(inputs).map(|((name, _), t)| (name.clone(), serde_json::json!(t.shape()))).collect();
        let staged = m.staged.map(|s| {
            serde_json::json!({"graphs_compiled": s.compiled, "graph_runs": s.graph_runs, "host_nodes": s.host_nodes})
        });
        let report = serde_json::json!({
            "model": shown,
            "target": m.target.name(),
            "compile_ms": compile_ms,
            "min_ms": stats.min,
            "median_ms": stats.median,
            "mean_ms": stats.mean,
            "p90_ms": stats.p90,
            "stddev_ms": stats.stddev,
            "iters": args.iters,
            "warmup": args.warmup,
            "threads": thread_count,
            "input_shapes": input_shapes,
            "nnc_version": env!("CARGO_PKG_VERSION"),
            "host_cpu": nnc_cpu::host_cpu_name(),
            "tuned_kernels": m.tuned_kernels,
            "profile": profile,
            "staged": staged,
        });
        writeln!(out, "{report}")?;
    } else {
        let described: Vec<String> =
            interface.iter().zip(inputs).map(|((n, _), t)| format!("%{n}: {}", crate::inputs::type_of(t))).collect();
        let on = thread_count.map(|n| format!(", {n} threads")).unwrap_or_default();
        writeln!(out, "{shown} on {}{on}, inputs {}", m.target.name(), described.join(", "))?;
        match m.staged {
            Some(s) => writeln!(
                out,
                "staged (control flow decided at run time): compile and first run {compile_ms:.1} ms, {} graphs \
                 compiled; each run: {} graph runs, {} host nodes",
                s.compiled, s.graph_runs, s.host_nodes
            )?,
            None => writeln!(out, "compile: {compile_ms:.1} ms{}", m.phases)?,
        }
        writeln!(
            out,
            "run: median {:.3} ms, min {:.3} ms, mean {:.3} ms, p90 {:.3} ms, std dev {:.3} ms over {} runs",
            stats.median, stats.min, stats.mean, stats.p90, stats.stddev, args.iters
        )?;
        if let Some(profile) = profile {
            write!(out, "{profile}")?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Summary of the timed runs, in milliseconds.
#[derive(Debug, PartialEq)]
struct Stats {
    min: f64,
    median: f64,
    mean: f64,
    /// The 90th percentile (nearest rank).
    p90: f64,
    /// The sample standard deviation (0 for one run).
    stddev: f64,
}

impl Stats {
    fn of(times: &[Duration]) -> Stats {
        let mut ms: Vec<f64> = times.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        ms.sort_by(f64::total_cmp);
        let n = ms.len().max(1);
        let at = |q: f64| ms.get(((q * n as f64).ceil() as usize).clamp(1, n) - 1).copied().unwrap_or(0.0);
        let mean = ms.iter().sum::<f64>() / n as f64;
        let var = if n > 1 { ms.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64 } else { 0.0 };
        Stats {
            min: ms.first().copied().unwrap_or(0.0),
            median: ms[ms.len() / 2],
            mean,
            p90: at(0.9),
            stddev: var.sqrt(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_of_runs() {
        let times: Vec<Duration> = [3, 1, 2, 4, 10].iter().map(|&ms| Duration::from_millis(ms)).collect();
        let s = Stats::of(&times);
        assert_eq!((s.min, s.median, s.mean, s.p90), (1.0, 3.0, 4.0, 10.0));
        assert!((s.stddev - 3.5355).abs() < 1e-3, "{s:?}");
        let one = Stats::of(&[Duration::from_millis(2)]);
        assert_eq!((one.min, one.median, one.p90, one.stddev), (2.0, 2.0, 2.0, 0.0));
    }
}

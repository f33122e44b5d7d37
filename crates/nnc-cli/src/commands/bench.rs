//! `nnc bench MODEL`: compile once, warm up, then time repeated runs on fixed inputs and print
//! the compile time and the run time's minimum, median, mean, 90th percentile and standard
//! deviation (`--json`: one object on one line, with the input shapes, the thread count, the
//! nnc version and the host CPU).
//!
//! Inputs are pseudo-random with a fixed seed (as `nnc run --random-inputs`), shaped by
//! `--shape`, or read from `--data DIR` (`input_N.pb`). MODEL may be a bundle folder from
//! `nnc compile`; its "compile" time is then the time to load it. `--profile` adds the time of
//! each kernel alone ([`nnc_runtime::profile`]).

use crate::inputs::timing_inputs;
use crate::model::load_for_shapes;
use crate::target::TargetArg;
use anyhow::{anyhow, bail};
use clap::Args;
use nnc_runtime::{Session, Target};
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
    /// profile (null without --profile).
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
        let spec = load_for_shapes(&args.file, &args.on.shape, args.on.data.as_deref())?;
        eprint!("{}", spec.resolved.note());
        let options = args.tuning.session_options(args.target.0, args.on.adapter.clone(), threads)?;
        (Session::new(spec.graph, options).map_err(|e| anyhow!("{shown}: {e}"))?, spec.resolved.shapes)
    };
    let interface = session.inputs().to_vec();
    let inputs = timing_inputs(&interface, &shapes, args.on.data.as_deref(), args.file.is_dir())?;
    let shapes: Vec<Vec<usize>> = inputs.iter().map(|t| t.shape().to_vec()).collect();
    let report = session.prepare(&shapes).map_err(|e| anyhow!("{shown}: {e}"))?;
    crate::tuning::report(&report.tuning, report.kernels);
    let tuned_kernels = report.tuning.tuned_kernels();
    let compile = start.elapsed();

    for _ in 0..args.warmup {
        session.run(&inputs).map_err(|e| anyhow!("{shown}: {e}"))?;
    }
    let mut times: Vec<Duration> = Vec::with_capacity(args.iters as usize);
    for _ in 0..args.iters {
        let t = Instant::now();
        session.run(&inputs).map_err(|e| anyhow!("{shown}: {e}"))?;
        times.push(t.elapsed());
    }
    let stats = Stats::of(&times);
    let profile = match args.profile {
        true => Some(session.profile(&inputs, args.iters).map_err(|e| anyhow!("{shown}: {e}"))?),
        false => None,
    };
    let compile_ms = compile.as_secs_f64() * 1e3;
    let thread_count = (session.target() == Target::Cpu)
        .then(|| threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())));
    let mut out = std::io::stdout().lock();
    if args.json {
        let input_shapes: serde_json::Map<String, serde_json::Value> =
            interface.iter().zip(&shapes).map(|((name, _), s)| (name.clone(), serde_json::json!(s))).collect();
        let report = serde_json::json!({
            "model": shown,
            "target": session.target().name(),
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
            "tuned_kernels": tuned_kernels,
            "profile": profile,
        });
        writeln!(out, "{report}")?;
    } else {
        let phases = session.report().map(|r| format!(" ({})", r.phases)).unwrap_or_default();
        let described: Vec<String> =
            interface.iter().zip(&inputs).map(|((n, _), t)| format!("%{n}: {}", crate::inputs::type_of(t))).collect();
        let on = thread_count.map(|n| format!(", {n} threads")).unwrap_or_default();
        writeln!(out, "{shown} on {}{on}, inputs {}", session.target().name(), described.join(", "))?;
        writeln!(out, "compile: {compile_ms:.1} ms{phases}")?;
        writeln!(
            out,
            "run: median {:.3} ms, min {:.3} ms, mean {:.3} ms, p90 {:.3} ms, std dev {:.3} ms over {} runs",
            stats.median, stats.min, stats.mean, stats.p90, stats.stddev, args.iters
        )?;
        if let Some(profile) = &profile {
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

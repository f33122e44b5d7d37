//! `nnc bench MODEL`: compile once, warm up, then time repeated runs on fixed inputs and print
//! the compile time and the minimum and median latency (`--json`: one object on one line).
//!
//! Inputs are pseudo-random with a fixed seed (floats in [-1, 1), integers in [0, 10) so they
//! are valid indices of any embedding, booleans half true), or read from `--data DIR`
//! (`input_N.pb`). MODEL may be a bundle folder from `nnc compile --target cpu -o DIR`; its
//! "compile" time is then the time to load it.

use crate::model::{load_model_static, shapes_from_data};
use crate::target::Target;
use crate::tensor_io::read_pb;
use anyhow::{anyhow, bail, Context};
use clap::Args;
use nnc_ir::{DType, TensorData, TensorType};
use nnc_runtime::{Session, SessionOptions};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// The model file (.nnir or .onnx), or a CPU bundle folder.
    pub file: PathBuf,

    /// Where to run the model.
    #[arg(long, value_enum, default_value_t = Target::Cpu)]
    pub target: Target,

    /// Timed runs (after the warm-up).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub iters: u32,

    /// Untimed runs before timing.
    #[arg(long, default_value_t = 3)]
    pub warmup: u32,

    /// Threads for the CPU target (all cores by default).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub threads: Option<u32>,

    /// Input shapes: NAME=D0,D1,... (repeatable); symbolic dimensions not given are bound to 1.
    #[arg(long, value_name = "NAME=DIMS")]
    pub shape: Vec<String>,

    /// Read the inputs from DIR/input_N.pb instead of generating them.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,

    /// With `--target wgsl`: the adapter whose name contains NAME.
    #[arg(long, value_name = "NAME")]
    pub adapter: Option<String>,

    /// Print one JSON object: compile_ms, median_ms, min_ms, iters, target (and model).
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let shown = args.file.display().to_string();
    let threads = args.threads.map(|t| t as usize);
    let start = Instant::now();
    let mut session = if args.file.is_dir() {
        if args.target != Target::Cpu {
            bail!("{shown} is a folder: a CPU bundle runs with --target cpu, not {}", args.target.name());
        }
        Session::from_cpu_bundle(&args.file, threads).map_err(|e| anyhow!("{shown}: {e}"))?
    } else {
        let shapes = match &args.data {
            Some(dir) => shapes_from_data(&args.file, dir, &args.shape)?,
            None => args.shape.clone(),
        };
        let graph = load_model_static(&args.file, &shapes)?;
        let options =
            SessionOptions { target: args.target.runtime(), adapter: args.adapter.clone(), threads, optimize: true };
        Session::new(graph, options).map_err(|e| anyhow!("{shown}: {e}"))?
    };
    let inputs = match &args.data {
        Some(dir) => (0..session.inputs().len())
            .map(|i| read_pb(&dir.join(format!("input_{i}.pb"))).with_context(|| format!("input {i}")))
            .collect::<anyhow::Result<Vec<_>>>()?,
        None => session.inputs().iter().enumerate().map(|(i, (_, ty))| random_input(ty, i as u64)).collect(),
    };
    let shapes: Vec<Vec<usize>> = inputs.iter().map(|t| t.shape().to_vec()).collect();
    session.prepare(&shapes).map_err(|e| anyhow!("{shown}: {e}"))?;
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
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let (min, median) = (ms(times[0]), ms(times[times.len() / 2]));
    let compile_ms = ms(compile);
    let mut out = std::io::stdout().lock();
    if args.json {
        let report = serde_json::json!({
            "model": shown,
            "target": args.target.name(),
            "compile_ms": compile_ms,
            "median_ms": median,
            "min_ms": min,
            "iters": args.iters,
        });
        writeln!(out, "{report}")?;
    } else {
        let phases = session.report().map(|r| format!(" ({})", r.phases)).unwrap_or_default();
        writeln!(out, "{shown} on {}", args.target.name())?;
        writeln!(out, "compile: {compile_ms:.1} ms{phases}")?;
        writeln!(out, "run: median {median:.3} ms, min {min:.3} ms over {} runs", args.iters)?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Input `index` of type `ty` (static shape), from a generator seeded by the index.
fn random_input(ty: &TensorType, index: u64) -> TensorData {
    let shape: Vec<usize> = ty.shape.iter().map(|d| d.as_usize().unwrap_or(1)).collect();
    let n: usize = shape.iter().product();
    let mut rng = fastrand::Rng::with_seed(0x6e6e63 + index);
    match ty.dtype {
        DType::Bool => {
            let v: Vec<bool> = (0..n).map(|_| rng.bool()).collect();
            TensorData::from_vec(shape, &v)
        }
        d if d.is_float() => {
            let v: Vec<f64> = (0..n).map(|_| rng.f64() * 2.0 - 1.0).collect();
            TensorData::from_f64(d, shape, &v)
        }
        d => {
            let v: Vec<i64> = (0..n).map(|_| rng.i64(0..10)).collect();
            TensorData::from_i64(d, shape, &v)
        }
    }
}

//! `nnc tune MODEL`: search the schedules of a model's kernels on this machine
//! ([`nnc_runtime::tuning::search`]), append the winners to the tuning cache that `compile`,
//! `run` and `bench` read, and print, per kernel, the default and best times and the model's
//! latency before and after (measured alternately in this run).
//!
//! `--cache FILE` names the cache (default: `NNC_TUNING_CACHE`, else the user's cache
//! directory); `-o FILE` also writes this model's records alone, to ship with it (`--tuning
//! FILE` on the other commands).

use crate::inputs::timing_inputs;
use crate::model::load_for_shapes;
use crate::target::TargetArg;
use anyhow::{anyhow, bail, Context};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use nnc_runtime::target::BackendOptions;
use nnc_runtime::tuning::cache::{append, default_path};
use nnc_runtime::tuning::search::{tune, Event, TuneOptions, TuneReport};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct TuneArgs {
    /// The model file (.nnir or .onnx).
    pub file: PathBuf,

    /// The target whose kernels to tune.
    #[arg(long, value_enum, default_value_t)]
    pub target: TargetArg,

    /// Seconds for the search (the before/after comparison adds a few runs of the model).
    #[arg(long, default_value_t = 60.0, value_name = "SECONDS")]
    pub budget: f64,

    /// The tuning cache to append the records to [default: NNC_TUNING_CACHE, else
    /// ~/.cache/nnc/tuning.jsonl].
    #[arg(long, value_name = "FILE")]
    pub cache: Option<PathBuf>,

    /// Also write this model's records alone to FILE (replaced), to ship with the model.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Timed samples per candidate (at least 5).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(5..))]
    pub samples: u32,

    #[command(flatten)]
    pub on: crate::timed::TimedArgs,

    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: TuneArgs) -> anyhow::Result<ExitCode> {
    let shown = args.file.display().to_string();
    if !(args.budget.is_finite() && args.budget > 0.0 && args.budget <= 86_400.0) {
        bail!("--budget {}: give seconds between 0 and 86400", args.budget);
    }
    let target = args.target.0;
    let options = BackendOptions { adapter: args.on.adapter.clone(), threads: args.on.threads(), webgpu: None };
    let Some(backend) = target.backend(&options) else {
        bail!("target {target} runs the graph itself: it has no kernels to tune");
    };
    let cache = match &args.cache {
        Some(file) => file.clone(),
        None => default_path().context("no cache directory here: give --cache FILE")?,
    };
    let spec = load_for_shapes(&args.file, &args.on.shape, args.on.data.as_deref())?;
    eprint!("{}", spec.resolved.note());
    let inputs = timing_inputs(&spec.interface, &spec.resolved.shapes, args.on.data.as_deref(), false)?;

    let budget = Duration::from_secs_f64(args.budget);
    let bar = ProgressBar::new(budget.as_millis() as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{bar:30}] {elapsed}/{msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let mut started: Option<Instant> = None;
    let (mut kernels, mut measured) = (0, 0);
    let mut progress = |event: Event| {
        match event {
            Event::Profiled { kernels: n, default_ms } => {
                kernels = n;
                started = Some(Instant::now());
                bar.println(format!(
                    "{shown}: {n} distinct kernels, {default_ms:.3} ms per run with default schedules"
                ));
            }
            Event::Kernel { index, name, candidates } => {
                bar.set_message(format!(
                    "{:.0}s kernel {}/{kernels} {name} ({candidates} candidates)",
                    args.budget,
                    index + 1
                ));
            }
            Event::Candidate => measured += 1,
        }
        if let Some(t) = started {
            bar.set_position(t.elapsed().as_millis() as u64);
        }
    };
    let search = TuneOptions { budget, samples: args.samples, ..TuneOptions::default() };
    let report =
        tune(&spec.graph, backend.as_ref(), &inputs, &search, &mut progress).map_err(|e| anyhow!("{shown}: {e}"))?;
    bar.finish_and_clear();
    if let Some(why) = &report.outputs_differ {
        eprintln!("warning: {shown}: the tuned model's outputs differ from the default's ({why}); please report this");
    }

    let records = report.records();
    append(&cache, &records).with_context(|| format!("cannot write the tuning cache {}", cache.display()))?;
    if let Some(file) = &args.output {
        let _ = std::fs::remove_file(file);
        append(file, &records).with_context(|| format!("cannot write {}", file.display()))?;
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", json(&report, &shown, target.name(), measured, &cache))?;
    } else {
        write!(out, "{}", table(&report, &shown, target.name(), args.budget, measured))?;
        writeln!(out, "records: {} appended to {}", records.len(), cache.display())?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The closing table: one line per distinct kernel, then the model before and after.
fn table(report: &TuneReport, model: &str, target: &str, budget: f64, measured: usize) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(s, "{model} on {target} ({})", report.fingerprint);
    let _ = writeln!(
        s,
        "{:<32} {:>6} {:>4} {:>10} {:>10} {:>8} {:>8}  best schedule (default)",
        "kernel", "share", "x", "default ms", "best ms", "speedup", "in model"
    );
    for k in &report.kernels {
        let name: String = k.name.chars().take(32).collect();
        let _ = write!(s, "{name:<32} {:>5.1}% {:>4}", k.share * 100.0, k.instances);
        match (&k.record, k.default_ms, k.best_ms) {
            (Some(r), Some(d), Some(b)) => {
                let in_model = k.in_model_ms.map_or("-".to_string(), |(d, t)| format!("{:.2}x", d / t.max(1e-9)));
                let _ = writeln!(s, " {d:>10.4} {b:>10.4} {:>7.2}x {in_model:>8}  {} ({})", d / b, r.best, r.default);
            }
            _ => {
                let why = k.skipped.as_deref().unwrap_or("not tuned");
                let _ = writeln!(s, " {:>10} {:>10} {:>8} {:>8}  {why}", "-", "-", "-", "-");
            }
        }
    }
    let _ = writeln!(
        s,
        "model: {:.3} ms with default schedules, {:.3} ms tuned ({:.2}x), medians of 15 runs each, alternating",
        report.before_ms,
        report.after_ms,
        report.before_ms / report.after_ms.max(1e-9)
    );
    let ran_out = if report.budget_ran_out { "; the budget ran out before every kernel was tuned" } else { "" };
    let _ = writeln!(
        s,
        "search: {measured} candidates measured in {:.1} s of a {budget:.0} s budget{ran_out}",
        report.search.as_secs_f64()
    );
    s
}

fn json(report: &TuneReport, model: &str, target: &str, measured: usize, cache: &std::path::Path) -> serde_json::Value {
    let kernels: Vec<serde_json::Value> = report
        .kernels
        .iter()
        .map(|k| {
            serde_json::json!({
                "kernel": k.name,
                "instances": k.instances,
                "share": k.share,
                "flops": k.flops,
                "default_ms": k.default_ms,
                "best_ms": k.best_ms,
                "in_model_ms": k.in_model_ms,
                "default": k.record.as_ref().map(|r| r.default.to_string()),
                "best": k.record.as_ref().map(|r| r.best.to_string()),
                "skipped": k.skipped,
            })
        })
        .collect();
    serde_json::json!({
        "model": model,
        "target": target,
        "device": report.fingerprint,
        "before_ms": report.before_ms,
        "after_ms": report.after_ms,
        "search_s": report.search.as_secs_f64(),
        "budget_ran_out": report.budget_ran_out,
        "outputs_differ": report.outputs_differ,
        "candidates_measured": measured,
        "kernels": kernels,
        "cache": cache.display().to_string(),
    })
}

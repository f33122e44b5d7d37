//! `nnc-fuzz`: a structure-aware fuzzer of everything a user hands `nnc`.
//!
//! It mutates real inputs of every kind — ONNX models, `.nnir` text, `.npy`/`.pb` tensors and
//! bundle folders — knowing their structure (see [`mutate`]), and runs each mutant through the
//! `nnc` command line (import, verification, compilation and a run on the cpu target, a
//! compile-then-run of a bundle, a benchmark or a dump) in a child process with a memory cap
//! and a time limit. Each case ends ok, in a clean error (one `error:` line), over memory, in a
//! timeout, or in a crash (a panic, a signal, an error without a message); crashes and timeouts
//! are kept in `OUT/cases/` with what was done and a script that reruns them, and make the run
//! exit 1. Case `i` of seed `s` is the same case on every run.
//!
//! ```text
//! nnc-fuzz --cases 2000 --jobs 2                 # the CI run
//! nnc-fuzz --cases 100000 --seed 7 --json f.json # a long run; figures as a table and JSON
//! ```

mod cases;
mod child;
mod corpus;
mod mutate;
mod report;

use cases::Kind;
use child::{Limits, Outcome};
use clap::Parser;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(name = "nnc-fuzz", max_term_width = 100)]
struct Args {
    /// Cases to run.
    #[arg(long, default_value_t = 1000)]
    cases: u64,

    /// Seed of the case generator.
    #[arg(long, default_value_t = 1)]
    seed: u64,

    /// Number of the first case (cases are numbered from 0 and made from the seed and their
    /// number alone: `--first N --cases 1` makes case N of a logged run again).
    #[arg(long, default_value_t = 0)]
    first: u64,

    /// Cases run at once.
    #[arg(long, default_value_t = 2)]
    jobs: usize,

    /// Address space each nnc process may use, in MiB (`setrlimit(RLIMIT_AS)`).
    #[arg(long, default_value_t = 4096)]
    memory_mib: u64,

    /// Seconds each nnc command may run.
    #[arg(long, default_value_t = 60)]
    timeout_s: u64,

    /// The nnc binary [default: `nnc` beside this program].
    #[arg(long)]
    nnc: Option<PathBuf>,

    /// Folders searched for seeds [default: .nnc-data/onnx-node, ../shared/models, ir].
    #[arg(long = "corpus", value_name = "DIR")]
    corpus: Vec<PathBuf>,

    /// Only these input kinds (comma-separated) [default: all].
    #[arg(long, value_enum, value_delimiter = ',')]
    kinds: Vec<Kind>,

    /// Where crashing and hanging cases are kept (and the work folders while running).
    #[arg(long, default_value = "fuzz-out")]
    out: PathBuf,

    /// Also write the figures as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,

    /// Write one line per case to this file: number, kind, outcome, seconds, seed file, and
    /// the last line on stderr.
    #[arg(long, value_name = "FILE")]
    log: Option<PathBuf>,
}

fn main() -> std::process::ExitCode {
    match run(Args::parse()) {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

/// Runs the fuzz campaign; returns whether no case crashed or hung.
fn run(args: Args) -> anyhow::Result<bool> {
    let nnc = match &args.nnc {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("nnc"),
    };
    anyhow::ensure!(nnc.is_file(), "{}: no nnc binary (build it, or give --nnc)", nnc.display());
    let nnc = std::fs::canonicalize(&nnc)?;
    let roots = if args.corpus.is_empty() {
        [".nnc-data/onnx-node", "../shared/models", "ir"].iter().map(PathBuf::from).collect()
    } else {
        args.corpus.clone()
    };
    let limits = Limits { memory_bytes: args.memory_mib << 20, timeout: Duration::from_secs(args.timeout_s) };
    std::fs::create_dir_all(&args.out)?;
    let out = std::fs::canonicalize(&args.out)?;
    let mut corpus = corpus::Corpus::discover(&roots);
    corpus.bundles = compile_seed_bundles(&nnc, &corpus, &out.join("bundles"), limits)?;
    let mut kinds: Vec<Kind> = if args.kinds.is_empty() { Kind::ALL.to_vec() } else { args.kinds.clone() };
    kinds.retain(|k| match k {
        Kind::Onnx => !corpus.onnx.is_empty(),
        Kind::Nnir => !corpus.nnir.is_empty(),
        Kind::Tensor => !corpus.tensors.is_empty(),
        Kind::Bundle => !corpus.bundles.is_empty(),
    });
    anyhow::ensure!(!kinds.is_empty(), "no seeds under {roots:?}");
    eprintln!(
        "nnc-fuzz: {} cases, seed {}, {} jobs; seeds: {} onnx, {} nnir, {} tensor, {} bundle; limits {} MiB, {} s",
        args.cases,
        args.seed,
        args.jobs,
        corpus.onnx.len(),
        corpus.nnir.len(),
        corpus.tensors.len(),
        corpus.bundles.len(),
        args.memory_mib,
        args.timeout_s
    );

    let corpus = Arc::new(corpus);
    let kinds = Arc::new(kinds);
    let next = Arc::new(AtomicU64::new(args.first));
    let (send, receive) = mpsc::channel();
    let start = Instant::now();
    let mut workers = Vec::new();
    for job in 0..args.jobs.max(1) {
        let (corpus, kinds, next, send, nnc, out) =
            (corpus.clone(), kinds.clone(), next.clone(), send.clone(), nnc.clone(), out.clone());
        let (end, seed) = (args.first.saturating_add(args.cases), args.seed);
        workers.push(std::thread::spawn(move || loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= end {
                break;
            }
            let work = out.join(format!("work-{job}"));
            let result = run_case(&nnc, &corpus, &kinds, seed, i, &work, &out, limits);
            if send.send((i, result)).is_err() {
                break;
            }
        }));
    }
    drop(send);
    let mut report = report::Report::default();
    let mut failures = Vec::new();
    let mut log = args.log.as_ref().map(std::fs::File::create).transpose()?;
    for (i, result) in receive {
        let (kind, outcome, peak, line) = result?;
        if let Some(log) = log.as_mut() {
            use std::io::Write;
            writeln!(log, "{i}\t{}\t{}\t{line}", kind.name(), outcome.name())?;
        }
        report.add(kind, &outcome, peak);
        if outcome.is_failure() {
            eprintln!("case {i} ({}): {}: {outcome:?}", kind.name(), outcome.name());
            failures.push(i);
        }
        let done = report.cases();
        if done % 500 == 0 {
            eprintln!(
                "{done}/{} cases, {} failures, {:.0} s",
                args.cases,
                report.failures(),
                start.elapsed().as_secs_f64()
            );
        }
    }
    for w in workers {
        let _ = w.join();
    }
    report.seconds = start.elapsed().as_secs_f64();
    println!("{}", report.table());
    println!(
        "{} cases in {:.0} s; {} crashed or hung (kept in {})",
        report.cases(),
        report.seconds,
        failures.len(),
        out.join("cases").display()
    );
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report.json())?)?;
    }
    Ok(failures.is_empty())
}

/// Makes and runs case `i`; keeps it in `out/cases/` if it crashed or hung. Returns its kind,
/// its worst outcome, its largest peak memory, and its seed and last line on stderr.
#[allow(clippy::too_many_arguments)]
fn run_case(
    nnc: &Path,
    corpus: &corpus::Corpus,
    kinds: &[Kind],
    seed: u64,
    i: u64,
    work: &Path,
    out: &Path,
    limits: Limits,
) -> anyhow::Result<(Kind, Outcome, u64, String)> {
    let mut rng = fastrand::Rng::with_seed(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ i);
    let kind = kinds[rng.usize(..kinds.len())];
    if work.exists() {
        std::fs::remove_dir_all(work)?;
    }
    std::fs::create_dir_all(work)?;
    let case = cases::build(kind, &mut rng, corpus, work)?;
    let (mut worst, mut peak, mut line) = (Outcome::Ok, 0, String::new());
    let start = Instant::now();
    for command in &case.commands {
        let ran = child::run(nnc, command, work, limits)?;
        peak = peak.max(ran.peak_kib);
        line = format!("{:.2}\t{}\t{}", start.elapsed().as_secs_f64(), case.seed, ran.last_error);
        let failed = ran.outcome != Outcome::Ok;
        worst = worst.max(ran.outcome);
        if failed {
            break;
        }
    }
    if worst.is_failure() {
        keep(&case, &worst, i, seed, nnc, work, &out.join("cases").join(format!("{}-{seed}-{i}", kind.name())))?;
    }
    Ok((kind, worst, peak, line))
}

/// Moves the case folder to `to` with `case.txt` (seed, mutations, commands, outcome) and
/// `repro.sh`.
fn keep(
    case: &cases::Case,
    outcome: &Outcome,
    i: u64,
    seed: u64,
    nnc: &Path,
    work: &Path,
    to: &Path,
) -> anyhow::Result<()> {
    if to.exists() {
        std::fs::remove_dir_all(to)?;
    }
    std::fs::create_dir_all(to.parent().unwrap_or(to))?;
    cases::copy_dir(work, to)?;
    let commands: Vec<String> = case.commands.iter().map(|c| format!("\"$NNC\" {}", c.join(" "))).collect();
    let text = format!(
        "case {i} of seed {seed} ({})\nseed file: {}\nmutations:\n  {}\ncommands:\n  {}\noutcome: {outcome:?}\n",
        case.kind.name(),
        case.seed,
        case.mutations.join("\n  "),
        commands.join("\n  ")
    );
    std::fs::write(to.join("case.txt"), text)?;
    let script = format!(
        "#!/bin/sh\n# Reruns the case in this folder.\nNNC=${{NNC:-{}}}\ncd \"$(dirname \"$0\")\"\n{}\n",
        nnc.display(),
        commands.join(" &&\n")
    );
    std::fs::write(to.join("repro.sh"), script)?;
    Ok(())
}

/// Bundles compiled from a few seed models, the seeds of bundle cases.
fn compile_seed_bundles(
    nnc: &Path,
    corpus: &corpus::Corpus,
    dir: &Path,
    limits: Limits,
) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut bundles = Vec::new();
    for (k, model) in corpus.bundle_sources(8).iter().enumerate() {
        let bundle = dir.join(format!("seed-{k}.nnc"));
        let model = std::fs::canonicalize(model)?;
        let args = vec!["compile".to_string(), model.display().to_string(), "-o".into(), bundle.display().to_string()];
        let ran = child::run(nnc, &args, dir, limits)?;
        if ran.outcome == Outcome::Ok && bundle.join("manifest.json").is_file() {
            bundles.push(bundle);
        }
    }
    Ok(bundles)
}

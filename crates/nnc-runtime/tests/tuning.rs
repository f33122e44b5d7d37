//! The tuner and the tuning cache end to end on the CPU target: a planted wrong candidate is
//! never chosen, a budget that runs out stops cleanly, records make compiles deterministic and
//! are skipped with a warning when they no longer build, and tuned models compute what
//! untuned ones do.

use nnc_ir::{Graph, TensorData};
use nnc_kernel::expr::Expr;
use nnc_kernel::kernel::{Kernel, Schedule, Stmt};
use nnc_kernel::program::Fused;
use nnc_kernel::{Backend, Device};
use nnc_lower::space::candidates;
use nnc_runtime::target::BackendOptions;
use nnc_runtime::tuning::cache::{append, Record, TunedSchedules};
use nnc_runtime::tuning::search::{tune, TuneOptions, TuneReport};
use nnc_runtime::{compile_timed, Phases, Session, SessionOptions, Target, TuningSource};
use nnc_testkit::graphs::matmul_bias_relu;
use std::time::Duration;

fn cpu() -> Box<dyn Backend> {
    Target::Cpu.backend(&BackendOptions { threads: Some(2), ..Default::default() }).expect("the cpu target")
}

fn input(graph: &Graph) -> Vec<TensorData> {
    graph
        .inputs
        .iter()
        .map(|&v| {
            let shape = graph.ty(v).static_shape().expect("static");
            let n: usize = shape.iter().product();
            TensorData::from_f64(
                graph.ty(v).dtype,
                shape,
                &(0..n).map(|i| ((i % 13) as f64 - 6.0) / 7.0).collect::<Vec<_>>(),
            )
        })
        .collect()
}

fn tune_with(graph: &Graph, budget: Duration, space: &nnc_runtime::tuning::search::Space) -> TuneReport {
    let options = TuneOptions { budget, samples: 5, space };
    tune(graph, cpu().as_ref(), &input(graph), &options, &mut |_| {}).expect("tunes")
}

/// Every store of `body` writes zero: a kernel that is fast and wrong.
fn zero_stores(body: &mut [Stmt]) {
    for st in body {
        match st {
            Stmt::Store { value, .. } => *value = Expr::lit(0.0, value.dtype()),
            Stmt::For { body, .. } => zero_stores(body),
            Stmt::If { then, els, .. } => {
                zero_stores(then);
                zero_stores(els);
            }
            _ => {}
        }
    }
}

/// The space with one more candidate: the default kernel storing zeros, under a schedule no
/// template makes.
fn with_planted(fused: &Fused, g: usize, device: &Device) -> Vec<(Schedule, Kernel)> {
    let mut all = candidates(fused, g, device);
    if let Some((_, kernel)) = all.first().cloned() {
        let mut wrong = kernel;
        zero_stores(&mut wrong.body);
        wrong.schedule.unroll = 77;
        all.push((wrong.schedule, wrong));
    }
    all
}

#[test]
fn a_planted_wrong_candidate_is_measured_and_never_chosen() {
    let graph = matmul_bias_relu(64, 96, 128);
    let report = tune_with(&graph, Duration::from_secs(30), &with_planted);
    let records = report.records();
    assert!(!records.is_empty(), "{report:?}");
    for r in &records {
        assert_ne!(r.best.unroll, 77, "the wrong candidate won: {r:?}");
        let planted = r.candidates.iter().find(|m| m.schedule.unroll == 77).expect("the planted candidate was tried");
        assert!(planted.outcome.starts_with("wrong result"), "{planted:?}");
        assert!(r.candidates.iter().filter(|m| m.outcome == "best").count() == 1, "{r:?}");
        assert!(r.candidates.iter().any(|m| m.samples >= 5), "{r:?}");
    }
}

#[test]
fn a_budget_that_runs_out_stops_cleanly_and_keeps_the_defaults() {
    let graph = nnc_testkit::families::block(3);
    let report = tune_with(&graph, Duration::from_nanos(1), &candidates);
    assert!(report.budget_ran_out, "{report:?}");
    assert!(report.records().is_empty());
    assert!(report.kernels.iter().all(|k| k.skipped.as_deref() == Some("the budget was spent")), "{report:?}");
    assert!(report.before_ms > 0.0 && report.after_ms > 0.0);
}

/// A compile of `graph` for the CPU with `tuned`: the program's bundle files and how the
/// records were used.
fn bundle_with(
    graph: &Graph,
    tuned: Option<&TunedSchedules>,
) -> (Vec<(String, Vec<u8>)>, nnc_runtime::tuning::TuningUse) {
    let backend = cpu();
    let (program, usage) =
        compile_timed(graph, &backend.device(), true, tuned, &mut Phases::default()).expect("compiles");
    let dir = tempfile::tempdir().expect("temp dir");
    backend.write_bundle(&program, dir.path()).expect("writes a bundle");
    let mut files: Vec<(String, Vec<u8>)> = walk(dir.path())
        .into_iter()
        .map(|p| (p.strip_prefix(dir.path()).unwrap().display().to_string(), std::fs::read(&p).unwrap()))
        .collect();
    files.sort();
    (files, usage)
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("reads").flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn records_make_compiles_deterministic_and_stale_ones_fall_back_with_a_warning() {
    let graph = matmul_bias_relu(48, 64, 96);
    let report = tune_with(&graph, Duration::from_secs(20), &candidates);
    let records = report.records();
    assert!(!records.is_empty());
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("tuning.jsonl");
    append(&file, &records).expect("writes records");
    let fingerprint = cpu().fingerprint();
    let tuned = TunedSchedules::load(&file, &fingerprint);
    let (first, usage) = bundle_with(&graph, Some(&tuned));
    let (second, _) = bundle_with(&graph, Some(&tuned));
    assert_eq!(first, second, "two compiles with one cache differ");
    assert_eq!(usage.tuned_kernels(), records.len(), "{usage:?}");

    // A record whose schedule no template builds any more: skipped, with a warning.
    let mut stale: Record = records[0].clone();
    stale.best.tile = [0, 0, 0];
    let stale_file = dir.path().join("stale.jsonl");
    append(&stale_file, &[stale]).expect("writes");
    let (_, usage) = bundle_with(&graph, Some(&TunedSchedules::load(&stale_file, &fingerprint)));
    assert_eq!(usage.tuned_kernels(), 0);
    assert!(usage.warnings.iter().any(|w| w.contains("no longer builds")), "{usage:?}");
}

/// Tuned and untuned sessions of every shared model agree (a short budget each).
#[test]
fn tuned_shared_models_compute_what_untuned_ones_do() {
    let Some(dir) = nnc_testkit::models::shared_models() else { return };
    let scratch = tempfile::tempdir().expect("temp dir");
    for name in nnc_testkit::models::selected("NNC_MODELS", &nnc_testkit::models::MODELS) {
        let model = nnc_testkit::models::load(&dir.join(&name));
        let graph = nnc_lower::bind_input_shapes(&model.graph, &model.inputs);
        let options = TuneOptions { budget: Duration::from_secs(1), ..TuneOptions::default() };
        let report = tune(&graph, cpu().as_ref(), &model.inputs, &options, &mut |_| {})
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(report.outputs_differ, None, "{name}");
        let file = scratch.path().join(format!("{name}.jsonl"));
        append(&file, &report.records()).expect("writes records");
        let run = |tuning: TuningSource| {
            let options = SessionOptions { threads: Some(2), tuning, ..SessionOptions::target(Target::Cpu) };
            let mut session = Session::new(model.graph.clone(), options).expect("a session");
            let out = session.run(&model.inputs).unwrap_or_else(|e| panic!("{name}: {e}"));
            (out, session.report().map(|r| r.tuning.tuned_kernels()).unwrap_or(0))
        };
        let (untuned, none) = run(TuningSource::Off);
        let (tuned, used) = run(TuningSource::File(file));
        assert_eq!(none, 0);
        // Each record names a computation of the model: every kernel with it is tuned.
        assert!(used >= report.records().len(), "{name}: {used} tuned kernels for {} records", report.records().len());
        for (i, (a, b)) in untuned.iter().zip(&tuned).enumerate() {
            nnc_testkit::compare::compare(&format!("{name} output {i}"), a, b).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

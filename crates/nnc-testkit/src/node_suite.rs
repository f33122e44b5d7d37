//! A target's line in the ONNX node suite (the 1,765 cases of the onnx 1.22 wheel, fetched by
//! `scripts/fetch-onnx-tests.sh`): every case the reference interpreter passes passes on the
//! target, through a session as `nnc conformance --target` runs it, except the target's listed
//! differences, each of which must be needed.
//!
//! Where the line asks ([`Line::timed_against_interpreter`]), each case both pass is also timed
//! on both (the fastest of [`TIMED_RUNS`] runs, compile excluded, as `nnc conformance
//! --against-interpreter` does), and the target may not take more than
//! [`SLOWER_FACTOR`] times the interpreter's time plus [`SLOWER_SLACK_S`] ([`too_slow`]),
//! except on the line's listed cases; a case over the margin is timed again with more runs
//! before it counts (another test process may hold a core). This guards the runtime's fixed
//! costs (a thread-pool hand-over made every one-node case 30 µs against the interpreter's 1)
//! with a margin wide enough for a shared machine's noise; it is not a benchmark.

use crate::suite::Line;
use nnc_conformance::{discover_cases, run_case_timed, CaseOutcome, Interpreter, OnTarget};

/// Timed runs of each case on each side.
pub const TIMED_RUNS: usize = 5;
/// How much slower than the interpreter a timed case may run...
pub const SLOWER_FACTOR: f64 = 2.0;
/// ...plus this much (seconds), for timer and scheduling noise on microsecond runs.
pub const SLOWER_SLACK_S: f64 = 20e-6;
/// Timed runs of a case found too slow, on each side, before it counts.
const RETIMED_RUNS: usize = 20;

/// Whether `target` seconds are over the margin against the interpreter's `reference`.
pub fn too_slow(target: f64, reference: f64) -> bool {
    target > SLOWER_FACTOR * reference + SLOWER_SLACK_S
}

/// What a target's run of the node suite came to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeSuiteFigures {
    pub cases: usize,
    /// Cases passing on the target.
    pub passed: usize,
    /// Cases passing on the reference interpreter.
    pub reference_passed: usize,
    /// Cases the interpreter passes and the target fails as a listed difference allows.
    pub listed: usize,
}

/// Runs the node suite on the line's target (a loud skip where the tests or the target are not
/// here), prints `X of 1765 pass` and what each listed difference covered, and fails on a case
/// the interpreter passes that the target fails unlisted, or on a listed difference no case
/// needs.
pub fn node_suite_line(line: &Line) -> Option<NodeSuiteFigures> {
    let dir = crate::skip::onnx_node_tests()?;
    line.available_backend()?;
    let target = OnTarget { target: line.target, adapter: None, threads: None };
    let cases = discover_cases(&dir).expect("the node test folder");
    let differences = line.node_suite_differences;
    let mut figures = NodeSuiteFigures { cases: cases.len(), ..NodeSuiteFigures::default() };
    let mut used = vec![0; differences.len()];
    let mut regressions = Vec::new();
    let runs = if line.timed_against_interpreter { TIMED_RUNS } else { 0 };
    let mut slower = Vec::new();
    for case in &cases {
        let result = run_case_timed(case, &target, runs);
        let pass = matches!(result.outcome, CaseOutcome::Pass);
        figures.passed += pass as usize;
        let reference = run_case_timed(case, &Interpreter, if pass { runs } else { 0 });
        if !matches!(reference.outcome, CaseOutcome::Pass) {
            continue;
        }
        figures.reference_passed += 1;
        if pass {
            if let (Some(t), Some(i)) = (result.run_seconds, reference.run_seconds) {
                let listed = line.slower_than_interpreter.iter().any(|(pattern, _)| result.name.contains(pattern));
                if !listed && too_slow(t, i) {
                    // Timed again, with more runs, before it counts: another test process can
                    // hold a core for a while, and a run split across threads waits for it.
                    let again = |backend: &dyn nnc_conformance::Backend| {
                        run_case_timed(case, backend, RETIMED_RUNS).run_seconds.unwrap_or(f64::INFINITY)
                    };
                    let (t, i) = (t.min(again(&target)), i.min(again(&Interpreter)));
                    if too_slow(t, i) {
                        slower.push(format!("{}: {:.1} µs, the interpreter {:.1} µs", result.name, t * 1e6, i * 1e6));
                    }
                }
            }
            continue;
        }
        let message = match &result.outcome {
            CaseOutcome::Fail(m) | CaseOutcome::Skip(m) => m.as_str(),
            CaseOutcome::Pass => "",
        };
        let listed =
            differences.iter().position(|(pattern, reason)| result.name.contains(pattern) && message.contains(reason));
        match listed {
            Some(k) => {
                used[k] += 1;
                figures.listed += 1;
            }
            None => regressions.push(format!("{}: {message}", result.name)),
        }
    }
    eprintln!(
        "{}: {} of {} pass (the interpreter passes {}; {} listed differences)",
        line.target, figures.passed, figures.cases, figures.reference_passed, figures.listed
    );
    for ((pattern, reason), n) in differences.iter().zip(&used) {
        eprintln!("  listed: {n:>2} case(s) named like `{pattern}`: {reason}");
    }
    assert!(
        regressions.is_empty(),
        "{} fails {} cases the interpreter passes, and its line lists no such difference:\n{}",
        line.target,
        regressions.len(),
        regressions.join("\n")
    );
    assert!(
        slower.is_empty(),
        "{} runs {} node cases more than {SLOWER_FACTOR}x the interpreter's time (+{:.0} µs), and its line does not list them:\n{}",
        line.target,
        slower.len(),
        SLOWER_SLACK_S * 1e6,
        slower.join("\n")
    );
    let stale: Vec<_> = differences.iter().zip(&used).filter(|(_, &n)| n == 0).map(|(d, _)| d).collect();
    assert!(stale.is_empty(), "listed differences of {} that no failing case needs: {stale:?}", line.target);
    Some(figures)
}

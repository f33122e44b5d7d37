//! A backend's suite: the [`Line`] that names a registry target and its known differences, and
//! the checks [`crate::backend_suite!`] makes a `#[test]` of each: the random graph families
//! and the fixed graphs against the interpreters, the shared models against their stored
//! references (and through a bundle where the target loads its own), and the ONNX node suite
//! against the reference interpreter's results.

use crate::check::{availability, check_on, Oracles};
use crate::compare::{close, NonFinite, Tolerance, MODEL_TOLERANCE};
use crate::families::family;
use crate::graphs::fixed_graphs;
use crate::inputs::inputs_for;
use crate::models::{program_for, selected, try_load, SharedModel, MODELS, PUBLIC_MODELS, STAGED_PUBLIC_MODELS};
use crate::skip::skip;
use nnc_ir::TensorData;
use nnc_kernel::backend::{run_to_tensors, Backend, ErrorKind, Executable};
use nnc_kernel::bundle::Manifest;
use nnc_kernel::Device;
use nnc_runtime::target::BackendOptions;
use nnc_runtime::Target;
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use std::path::Path;
use std::time::Instant;

/// One backend's line: the registry target it tests and what it is known to do differently.
/// [`crate::backend_suite!`] takes its fields by name; those left out keep [`Line::new`]'s values.
#[derive(Clone, Copy, Debug)]
pub struct Line {
    pub target: Target,
    /// Whether CI machines can run the target (lavapipe gives them a wgpu adapter; they have no
    /// CUDA driver). Where they can, the suite's skips fail when `CI` is set.
    pub runs_in_ci: bool,
    /// What the target promises where a random graph's exact result is infinite or NaN.
    pub non_finite: NonFinite,
    /// Random graphs per family (`PROPTEST_CASES` overrides it, for longer bug hunts).
    pub cases: u32,
    /// The shared models the suite runs (`NNC_MODELS=a,b` narrows it while debugging).
    pub models: &'static [&'static str],
    /// Whether the suite runs the public models ([`PUBLIC_MODELS`]; `NNC_MODELS=a,b` narrows
    /// them too). Off by default: they are large for the interpreters.
    pub public_models: bool,
    /// Node-suite cases the interpreter passes that the target does not: (a substring of the
    /// case's name, text its failure must contain). Every entry must be needed.
    pub node_suite_differences: &'static [(&'static str, &'static str)],
    /// Whether the node suite also times each case both pass against the interpreter (see
    /// [`crate::node_suite`]): the target must not be much slower than the interpreter on any.
    pub timed_against_interpreter: bool,
    /// Node-suite cases that may run slower than the interpreter: (a substring of the case's
    /// name, why). Unlike the differences above, an entry no case needed in a run is not an
    /// error: near the margin, times move between runs.
    pub slower_than_interpreter: &'static [(&'static str, &'static str)],
}

impl Line {
    /// A target with no known differences: it runs in CI, keeps IEEE infinities and NaNs, runs
    /// 16 random graphs per family and every shared model, and passes every node case the
    /// interpreter passes.
    pub const fn new(target: Target) -> Line {
        Line {
            target,
            runs_in_ci: true,
            non_finite: NonFinite::Ieee,
            cases: 16,
            models: &MODELS,
            public_models: false,
            node_suite_differences: &[],
            timed_against_interpreter: false,
            slower_than_interpreter: &[],
        }
    }

    /// The target's backend, as the registry makes it with default options.
    pub fn backend(&self) -> Box<dyn Backend> {
        self.target
            .backend(&BackendOptions::default())
            .unwrap_or_else(|| panic!("`{}` compiles no programs: it has no suite line", self.target))
    }

    /// The backend if it can run here; otherwise `None` after a loud skip (a failure in CI for
    /// a target CI runs).
    pub fn available_backend(&self) -> Option<Box<dyn Backend>> {
        let backend = self.backend();
        match availability(backend.as_ref()) {
            Ok(()) => Some(backend),
            Err(why) => {
                skip(&format!("{} cannot run here: {why}", self.target), self.runs_in_ci);
                None
            }
        }
    }

    /// What outputs are compared with: the Kernel-IR interpreter is not compared with itself.
    pub fn oracles(&self) -> Oracles {
        match self.target {
            Target::KernelInterp(_) => Oracles::GraphInterpreter,
            _ => Oracles::Both,
        }
    }
}

/// Runs `check` on `cases` random seeds (`PROPTEST_CASES` overrides the count); a failure
/// panics with proptest's report, which holds the seed (and the smallest failing seed found).
pub fn for_random_seeds(cases: u32, check: impl Fn(u64) -> Result<(), String>) {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(cases);
    let config = ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() };
    let mut runner = TestRunner::new(config);
    if let Err(e) = runner.run(&any::<u64>(), |seed| check(seed).map_err(TestCaseError::fail)) {
        panic!("{e}");
    }
}

/// Random graphs of the family named `family_name` (see [`crate::families::FAMILIES`]) match
/// the interpreters on the line's target.
pub fn random_family(line: &Line, family_name: &str) {
    let Some(backend) = line.available_backend() else { return };
    let device = backend.device();
    let build = family(family_name);
    for_random_seeds(line.cases, |seed| {
        let graph = build(seed);
        let inputs = inputs_for(&graph, seed.wrapping_add(1));
        check_on(backend.as_ref(), &device, &graph, &inputs, line.oracles(), line.non_finite)
            .map(|_| ())
            .map_err(|e| format!("{family_name}({seed:#x}) on {}: {e}", line.target))
    });
}

/// Every graph of [`fixed_graphs`] matches the interpreters on the line's target.
pub fn fixed(line: &Line) {
    let Some(backend) = line.available_backend() else { return };
    let device = backend.device();
    let failures: Vec<String> = fixed_graphs()
        .iter()
        .filter_map(|graph| {
            let inputs = inputs_for(graph, 5);
            check_on(backend.as_ref(), &device, graph, &inputs, line.oracles(), line.non_finite)
                .err()
                .map(|e| format!("{} on {}: {e}", graph.name, line.target))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Every shared model of the line matches its stored references on the target
/// ([`MODEL_TOLERANCE`]); see [`shared_model_on`].
pub fn shared_models(line: &Line) {
    let Some(root) = crate::models::shared_models() else { return };
    let Some(backend) = line.available_backend() else { return };
    let device = backend.device();
    let failures: Vec<String> = selected("NNC_MODELS", line.models)
        .iter()
        .filter_map(|name| {
            let dir = root.join(name);
            shared_model_on(backend.as_ref(), &device, &dir, line.timed_against_interpreter, MODEL_TOLERANCE).err()
        })
        .collect();
    assert!(failures.is_empty(), "on {}:\n{}", line.target, failures.join("\n"));
}

/// Every public model of the line (fetched from PyPI by `scripts/fetch-public-models.sh`)
/// matches ONNX Runtime's outputs on the target, each within its [`PUBLIC_MODELS`] tolerance, as
/// [`shared_model_on`] checks the shared models.
pub fn public_models(line: &Line) {
    if !line.public_models {
        return;
    }
    let Some(root) = crate::models::public_models() else { return };
    let Some(backend) = line.available_backend() else { return };
    let device = backend.device();
    let names: Vec<&str> = PUBLIC_MODELS.iter().chain(&STAGED_PUBLIC_MODELS).map(|&(name, _)| name).collect();
    let chosen = selected("NNC_MODELS", &names);
    let failures: Vec<String> = PUBLIC_MODELS
        .iter()
        .filter(|(name, _)| chosen.iter().any(|c| c == name))
        .filter_map(|&(name, tolerance)| {
            shared_model_on(backend.as_ref(), &device, &root.join(name), false, tolerance).err()
        })
        .chain(
            STAGED_PUBLIC_MODELS
                .iter()
                .filter(|(name, _)| chosen.iter().any(|c| c == name))
                .filter_map(|&(name, tolerance)| staged_model_on(line.target, &root.join(name), tolerance).err()),
        )
        .collect();
    assert!(failures.is_empty(), "on {}:\n{}", line.target, failures.join("\n"));
}

/// The model in `dir`, which cannot be one graph (the importer says it needs run-time values),
/// runs staged on `target` to its stored references.
fn staged_model_on(target: Target, dir: &Path, tolerance: Tolerance) -> Result<(), String> {
    use nnc_onnx::staged::{needs_staging, HostValue, StagedModel};
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let (proto, inputs, expected) = crate::models::read_case(dir)?;
    let what = dir.join("model.onnx").display().to_string();
    match nnc_onnx::import_model(&proto, &what, Some(dir), &Default::default()) {
        Err(e) if needs_staging(&e) => {}
        Err(e) => return Err(format!("{name}: {e}")),
        Ok(_) => return Err(format!("{name}: imports as one graph; it was meant to run staged")),
    }
    let model = StagedModel::new(proto, &what, Some(dir)).map_err(|e| format!("{name}: {e}"))?;
    let mut session = nnc_runtime::staged_session(model, nnc_runtime::SessionOptions::target(target));
    let start = Instant::now();
    let outputs =
        session.run(inputs.into_iter().map(HostValue::Tensor).collect()).map_err(|e| format!("{name}: {e}"))?;
    let stats = session.stats();
    eprintln!(
        "{name} staged on {target}: {} graphs compiled, {} runs of them, {} host nodes, {:.2?}",
        stats.compiled,
        stats.graph_runs,
        stats.host_nodes,
        start.elapsed()
    );
    let found: Vec<TensorData> = outputs
        .into_iter()
        .map(|v| v.into_tensor().map_err(|what| format!("{name}: an output is {what}, the reference a tensor")))
        .collect::<Result<_, _>>()?;
    matches_references(&name, &expected, &found, tolerance)
}

/// The model runs on `executable` (the fastest of 3 runs, compile excluded) in at most the
/// node suite's margin over one run of the reference interpreter.
fn not_slower_than_the_interpreter(executable: &mut dyn Executable, model: &SharedModel) -> Result<(), String> {
    use crate::node_suite::{too_slow, SLOWER_FACTOR};
    let name = &model.name;
    let mut fastest = f64::INFINITY;
    for _ in 0..3 {
        let start = Instant::now();
        run_to_tensors(executable, &model.inputs).map_err(|e| format!("{name}: {e}"))?;
        fastest = fastest.min(start.elapsed().as_secs_f64());
    }
    let start = Instant::now();
    nnc_interp::run(&model.graph, &model.inputs).map_err(|e| format!("{name} (interpreter): {e}"))?;
    let reference = start.elapsed().as_secs_f64();
    eprintln!("{name}: {:.3} ms against the interpreter's {:.3} ms", fastest * 1e3, reference * 1e3);
    if too_slow(fastest, reference) {
        return Err(format!(
            "{name}: {:.3} ms a run, more than {SLOWER_FACTOR}x the interpreter's {:.3} ms",
            fastest * 1e3,
            reference * 1e3
        ));
    }
    Ok(())
}

/// The shared model in `dir`, compiled for `device` as a session would, run once on `backend`:
/// its outputs match the stored references; a target that counts queue submissions makes one
/// per run; with `timed`, it is not slower than the reference interpreter (see
/// [`crate::node_suite`] for the margin); and where the target writes bundles, the bundle reads
/// back with the same manifest and, where the target also loads its bundles, runs to the same
/// references.
pub fn shared_model_on(
    backend: &dyn Backend,
    device: &Device,
    dir: &Path,
    timed: bool,
    tolerance: Tolerance,
) -> Result<(), String> {
    let model = try_load(dir)?;
    let name = &model.name;
    let start = Instant::now();
    let program = program_for(&model.graph, &model.inputs, device).map_err(|e| format!("{name}: {e}"))?;
    let passes = start.elapsed();
    let start = Instant::now();
    let mut executable = backend.compile(&program).map_err(|e| format!("{name}: {e}"))?;
    let code = start.elapsed();
    let submitted = executable.submissions();
    let start = Instant::now();
    let found = run_to_tensors(executable.as_mut(), &model.inputs).map_err(|e| format!("{name}: {e}"))?;
    eprintln!(
        "{name} on {}: {} kernels; passes {passes:.2?}, code {code:.2?}, run {:.2?}",
        executable.device_name(),
        program.kernels.len(),
        start.elapsed()
    );
    if let (Some(before), Some(after)) = (submitted, executable.submissions()) {
        if after != before + 1 {
            return Err(format!("{name}: one run made {} queue submissions, not one", after - before));
        }
    }
    matches_references(name, &model.expected, &found, tolerance)?;
    if timed {
        not_slower_than_the_interpreter(executable.as_mut(), &model)?;
    }

    let bundle = std::env::temp_dir().join(format!("nnc-testkit-{}-{name}-{}", backend.name(), std::process::id()));
    let result = bundle_matches(backend, &program, &bundle, name, &model.inputs, &model.expected, tolerance);
    let _ = std::fs::remove_dir_all(&bundle);
    result
}

fn matches_references(
    what: &str,
    expected: &[nnc_ir::TensorData],
    found: &[nnc_ir::TensorData],
    tolerance: Tolerance,
) -> Result<(), String> {
    if found.len() != expected.len() {
        return Err(format!("{what}: {} outputs, the references have {}", found.len(), expected.len()));
    }
    let failures: Vec<String> = expected
        .iter()
        .zip(found)
        .enumerate()
        .filter_map(|(k, (e, f))| close(&format!("{what} output {k}"), e, f, tolerance).err())
        .collect();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("\n"))
    }
}

/// `program` written as a bundle into `dir` (if the target writes bundles), read back, and run
/// (if the target loads bundles).
fn bundle_matches(
    backend: &dyn Backend,
    program: &nnc_kernel::program::Program,
    dir: &Path,
    name: &str,
    inputs: &[nnc_ir::TensorData],
    expected: &[nnc_ir::TensorData],
    tolerance: Tolerance,
) -> Result<(), String> {
    let written = match backend.write_bundle(program, dir) {
        Ok((manifest, _notes)) => manifest,
        Err(e) if e.kind == ErrorKind::Unsupported => return Ok(()),
        Err(e) => return Err(format!("{name}: writing a bundle: {e}")),
    };
    let read = Manifest::read(dir).map_err(|e| format!("{name}: reading its bundle: {e}"))?;
    if read.manifest != written {
        return Err(format!("{name}: the bundle's manifest reads back differently"));
    }
    let mut loaded = match backend.load_bundle(dir) {
        Ok(executable) => executable,
        Err(e) if e.kind == ErrorKind::Unsupported => return Ok(()),
        Err(e) => return Err(format!("{name}: loading its bundle: {e}")),
    };
    let found = run_to_tensors(loaded.as_mut(), inputs).map_err(|e| format!("{name} (bundle): {e}"))?;
    matches_references(&format!("{name} (bundle)"), expected, &found, tolerance)
}

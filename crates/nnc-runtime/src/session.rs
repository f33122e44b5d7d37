//! [`Session`]: a graph compiled for one target and run repeatedly on caller data.
//!
//! The session keeps the graph as given, symbolic dimensions included. The first run with a new
//! set of input shapes binds the symbols from those shapes, compiles (optimize, fuse, schedule,
//! legalize, then the target's backend generates code) and caches the result under the shapes;
//! later runs with the same shapes reuse it, so a server answering batches of a few sizes
//! compiles once per size. Inputs are checked against the graph's declared types before anything
//! runs, once, here: backends get them checked. Every error names the input or phase at fault.

use crate::pipeline::{compile_timed, Phases};
use crate::profile::{KernelInfo, Profile};
use crate::target::{BackendOptions, Target};
use crate::tuning::{TuningSource, TuningUse};
use nnc_ir::{DType, Graph, TensorData, TensorType};
use nnc_kernel::backend::{run_to_tensors, BackendError, Executable, RunError};
use nnc_lower::bind_shapes;
use std::collections::HashMap;
use std::path::Path;

/// How a [`Session`] compiles and runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionOptions {
    pub target: Target,
    /// With [`Target::Wgsl`]: the adapter whose name contains this (the first one otherwise).
    pub adapter: Option<String>,
    /// With [`Target::Cpu`]: threads to run kernels on (one per core by default), from a pool the
    /// process keeps per thread count.
    pub threads: Option<usize>,
    /// Rewrite the graph with the e-graph optimizer before fusing (on by default).
    pub optimize: bool,
    /// Where tuned schedules come from (the user's tuning cache by default).
    pub tuning: TuningSource,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            target: Target::DEFAULT,
            adapter: None,
            threads: None,
            optimize: true,
            tuning: TuningSource::default(),
        }
    }
}

impl SessionOptions {
    pub fn target(target: Target) -> SessionOptions {
        SessionOptions { target, ..SessionOptions::default() }
    }

    fn backend_options(&self) -> BackendOptions {
        BackendOptions { adapter: self.adapter.clone(), threads: self.threads, webgpu: None }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SessionError {
    #[error("the graph is invalid: {0}")]
    Graph(String),
    #[error("`{graph}` takes {expected} input(s), {found} given")]
    InputCount { graph: String, expected: usize, found: usize },
    #[error("input %{name}: expected {expected}, found {found}")]
    Input { name: String, expected: String, found: String },
    #[error("`{graph}` has {expected} output(s), {found} output buffer(s) given")]
    OutputCount { graph: String, expected: usize, found: usize },
    #[error("output %{name}: {found} bytes of buffer given, it needs {expected}")]
    OutputBuffer { name: String, expected: usize, found: usize },
    #[error("cannot compile for {target}: {message}")]
    Compile { target: &'static str, message: String },
    #[error("{target}: {message}")]
    Run { target: &'static str, message: String },
    /// A bundle that cannot be loaded (the message names the file), or inputs it was not
    /// compiled for.
    #[error("{0}")]
    Bundle(String),
}

/// What compiling for one set of input shapes did.
#[derive(Clone, Debug, PartialEq)]
pub struct CompileReport {
    pub shapes: Vec<Vec<usize>>,
    pub phases: Phases,
    pub kernels: usize,
    /// Bytes of the arena of intermediates, and the least any plan could use.
    pub arena_bytes: u64,
    pub arena_lower_bound: u64,
    /// Which kernels had tuned schedules, and what was wrong with the records skipped.
    pub tuning: TuningUse,
    /// Each kernel's schedule, nodes and counts (empty for a bundle), for profiles.
    pub kernel_info: Vec<KernelInfo>,
}

/// A graph's inputs (name, declared type) and output names.
#[derive(Clone, Debug)]
struct Interface {
    name: String,
    inputs: Vec<(String, TensorType)>,
    outputs: Vec<String>,
}

impl Interface {
    fn of(g: &Graph) -> Interface {
        Interface {
            name: g.name.clone(),
            inputs: g.inputs.iter().map(|&v| (g.name_of(v).to_string(), g.ty(v).clone())).collect(),
            outputs: g.outputs.iter().map(|&v| g.name_of(v).to_string()).collect(),
        }
    }
}

/// A compiled program of one target.
enum Compiled {
    /// The graph interpreter runs the graph itself (bound to the shapes).
    Interp(Graph),
    /// Every other target: what its backend compiled.
    Program(Box<dyn Executable>),
}

/// A graph compiled for a target once per input shape, run on caller data.
///
/// ```no_run
/// # use nnc_runtime::{Session, SessionOptions, Target};
/// # fn demo(graph: nnc_ir::Graph, x: nnc_ir::TensorData) -> Result<(), nnc_runtime::SessionError> {
/// let mut session = Session::new(graph, SessionOptions::target(Target::Cpu))?;
/// let outputs = session.run(&[x.clone()])?; // compiles for x's shape, then runs
/// let again = session.run(&[x])?; // runs the cached program
/// # Ok(()) }
/// ```
pub struct Session {
    /// The graph as given (for the CPU, with weights in the layouts its kernels read: see
    /// [`nnc_lower::layout::prepack_weights`]); `None` for a bundle, which runs only the shapes
    /// it was compiled for.
    graph: Option<Graph>,
    interface: Interface,
    options: SessionOptions,
    cache: HashMap<Vec<Vec<usize>>, (Compiled, CompileReport)>,
    last: Option<Vec<Vec<usize>>>,
}

impl Session {
    /// A session for `graph` (checked here, compiled at the first run or [`Self::prepare`]).
    pub fn new(graph: Graph, options: SessionOptions) -> Result<Session, SessionError> {
        nnc_ir::verify(&graph).map_err(|e| SessionError::Graph(e.to_string()))?;
        let interface = Interface::of(&graph);
        // The CPU reads weights in layouts of its own: the session keeps them in those (and
        // in memory of its own), so the caller's graph, and the file it came from, can go.
        let graph = match (options.target, options.target.device()) {
            (Target::Cpu, Some(device)) => nnc_lower::layout::prepack_weights(&graph, &device),
            _ => graph,
        };
        Ok(Session { graph: Some(graph), interface, options, cache: HashMap::new(), last: None })
    }

    /// A session over a bundle written by `nnc compile -o DIR`, run by the backend of the
    /// target it was compiled for, for the shapes it was compiled for.
    pub fn from_bundle(dir: &Path, threads: Option<usize>) -> Result<Session, SessionError> {
        let start = std::time::Instant::now();
        let bundle = nnc_kernel::bundle::Manifest::read(dir).map_err(|e| SessionError::Bundle(e.to_string()))?;
        let manifest = bundle.manifest;
        let target = Target::from_name(&manifest.target).ok_or_else(|| {
            SessionError::Bundle(format!("{}: a bundle for an unknown target `{}`", dir.display(), manifest.target))
        })?;
        let options = SessionOptions { threads, ..SessionOptions::target(target) };
        let backend = target
            .backend(&options.backend_options())
            .ok_or_else(|| SessionError::Bundle(format!("{}: target {target} has no bundles", dir.display())))?;
        let exec = backend.load_bundle(dir).map_err(|e| SessionError::Bundle(format!("{}: {e}", dir.display())))?;
        let ports = exec.interface().clone();
        let interface = Interface {
            name: ports.program.clone(),
            inputs: ports.inputs.iter().map(|p| (p.name.clone(), p.ty())).collect(),
            outputs: ports.outputs.iter().map(|p| p.name.clone()).collect(),
        };
        let shapes: Vec<Vec<usize>> = ports.inputs.iter().map(|p| p.shape.clone()).collect();
        let report = CompileReport {
            shapes: shapes.clone(),
            phases: Phases(vec![("load".into(), start.elapsed().as_secs_f64() * 1e3)]),
            kernels: exec.kernel_names().len(),
            arena_bytes: manifest.arena_bytes,
            arena_lower_bound: manifest.arena_lower_bound,
            tuning: TuningUse::default(),
            kernel_info: Vec::new(),
        };
        let mut cache = HashMap::new();
        cache.insert(shapes, (Compiled::Program(exec), report));
        Ok(Session { graph: None, interface, options, cache, last: None })
    }

    /// [`Self::from_bundle`] for a CPU bundle.
    pub fn from_cpu_bundle(dir: &Path, threads: Option<usize>) -> Result<Session, SessionError> {
        Session::from_bundle(dir, threads)
    }

    /// The graph the session compiles (`None` for a bundle): the graph as given, for the CPU
    /// with its weights pre-laid-out.
    pub fn graph(&self) -> Option<&Graph> {
        self.graph.as_ref()
    }

    /// The inputs' names (without `%`) and declared types, in order.
    pub fn inputs(&self) -> &[(String, TensorType)] {
        &self.interface.inputs
    }

    /// The outputs' names, in order.
    pub fn outputs(&self) -> &[String] {
        &self.interface.outputs
    }

    pub fn target(&self) -> Target {
        self.options.target
    }

    /// How many input shapes have a compiled program.
    pub fn compiled_shapes(&self) -> usize {
        self.cache.len()
    }

    /// The report of the program the last run used (or the last one prepared).
    pub fn report(&self) -> Option<&CompileReport> {
        self.last.as_ref().and_then(|k| self.cache.get(k)).map(|(_, r)| r)
    }

    /// Compiles for `shapes` (one per input, checked against the declared types) unless
    /// already compiled, and returns the report.
    pub fn prepare(&mut self, shapes: &[Vec<usize>]) -> Result<&CompileReport, SessionError> {
        let key = shapes.to_vec();
        if !self.cache.contains_key(&key) {
            self.check_shapes(&key, None)?;
            let compiled = self.compile(&key)?;
            self.cache.insert(key.clone(), compiled);
        }
        self.last = Some(key.clone());
        Ok(&self.cache[&key].1)
    }

    /// Runs the graph on `inputs` (in graph input order), compiling first if their shapes are new.
    pub fn run(&mut self, inputs: &[TensorData]) -> Result<Vec<TensorData>, SessionError> {
        let (compiled, target) = self.prepared(inputs)?;
        match compiled {
            Compiled::Interp(g) => nnc_interp::run(g, inputs).map_err(|e| run_error(target, e)),
            Compiled::Program(exec) => run_to_tensors(exec.as_mut(), inputs).map_err(|e| run_error(target, e)),
        }
    }

    /// Runs like [`Self::run`] and writes each output's bytes (row-major, the output's dtype)
    /// into the caller's buffer `outputs[i]`, which must have exactly that size: a compiled
    /// program writes them there directly.
    pub fn run_into(&mut self, inputs: &[TensorData], outputs: &mut [&mut [u8]]) -> Result<(), SessionError> {
        let names = self.interface.outputs.clone();
        if outputs.len() != names.len() {
            return Err(SessionError::OutputCount {
                graph: self.interface.name.clone(),
                expected: names.len(),
                found: outputs.len(),
            });
        }
        let (compiled, target) = self.prepared(inputs)?;
        let exec = match compiled {
            Compiled::Program(exec) => exec,
            Compiled::Interp(g) => {
                let results = nnc_interp::run(g, inputs).map_err(|e| run_error(target, e))?;
                for ((buffer, t), name) in outputs.iter_mut().zip(&results).zip(&names) {
                    check_buffer(name, buffer.len(), t.bytes().len())?;
                    buffer.copy_from_slice(t.bytes());
                }
                return Ok(());
            }
        };
        for ((buffer, port), name) in outputs.iter().zip(&exec.interface().outputs).zip(&names) {
            check_buffer(name, buffer.len(), port.bytes())?;
        }
        let interface = exec.interface().clone();
        let checked = interface.check(inputs).map_err(|e| run_error(target, e))?;
        exec.run(checked, outputs).map_err(|e| run_error(target, e))
    }

    /// The compiled program for `inputs` (checked, and compiled if their shapes are new).
    fn prepared(&mut self, inputs: &[TensorData]) -> Result<(&mut Compiled, &'static str), SessionError> {
        let shapes = self.check_inputs(inputs)?;
        self.prepare(&shapes)?;
        let target = self.options.target.name();
        let (compiled, _) = self.cache.get_mut(&shapes).ok_or_else(|| SessionError::Run {
            target,
            message: "internal error: the prepared program is gone".into(),
        })?;
        Ok((compiled, target))
    }

    /// Runs the program for `inputs` once, then its kernel `k` alone `repeats` times; returns
    /// each repetition's time (for profiles and tuning). The graph interpreter has no kernels.
    pub fn time_kernel(
        &mut self,
        inputs: &[TensorData],
        k: usize,
        repeats: u32,
    ) -> Result<Vec<std::time::Duration>, SessionError> {
        let (compiled, target) = self.prepared(inputs)?;
        let Compiled::Program(exec) = compiled else {
            return Err(SessionError::Run { target, message: "the graph interpreter runs no kernels".into() });
        };
        let interface = exec.interface().clone();
        let checked = interface.check(inputs).map_err(|e| run_error(target, e))?;
        exec.time_kernel(checked, k, repeats).map_err(|e| run_error(target, e))
    }

    /// Times every kernel of the program for `inputs`, `samples` times each (see
    /// [`crate::profile::profile`]), with each kernel's schedule, nodes and counts: slowest
    /// first.
    pub fn profile(&mut self, inputs: &[TensorData], samples: u32) -> Result<Profile, SessionError> {
        let shapes = self.check_inputs(inputs)?;
        self.prepare(&shapes)?;
        let target = self.options.target.name();
        let Some((Compiled::Program(exec), report)) = self.cache.get_mut(&shapes) else {
            return Err(SessionError::Run {
                target,
                message: "the graph interpreter runs no kernels to profile".into(),
            });
        };
        crate::profile::profile(exec.as_mut(), inputs, &report.kernel_info, samples).map_err(|e| run_error(target, e))
    }

    /// The names of the kernels of the last program run or prepared.
    pub fn kernel_names(&self) -> Vec<String> {
        match self.last.as_ref().and_then(|k| self.cache.get(k)) {
            Some((Compiled::Program(exec), _)) => exec.kernel_names(),
            _ => Vec::new(),
        }
    }

    /// Checks count, dtype, rank and fixed dimensions of every input; returns their shapes.
    fn check_inputs(&self, inputs: &[TensorData]) -> Result<Vec<Vec<usize>>, SessionError> {
        let shapes: Vec<Vec<usize>> = inputs.iter().map(|t| t.shape().to_vec()).collect();
        let dtypes: Vec<DType> = inputs.iter().map(|t| t.dtype()).collect();
        self.check_shapes(&shapes, Some(&dtypes))?;
        Ok(shapes)
    }

    /// Checks count, rank and fixed dimensions of input shapes (and dtypes when given), and
    /// that each symbol takes one size.
    fn check_shapes(&self, shapes: &[Vec<usize>], dtypes: Option<&[DType]>) -> Result<(), SessionError> {
        let ports = &self.interface.inputs;
        if shapes.len() != ports.len() {
            return Err(SessionError::InputCount {
                graph: self.interface.name.clone(),
                expected: ports.len(),
                found: shapes.len(),
            });
        }
        let mut bound: HashMap<String, usize> = HashMap::new();
        for (k, ((name, ty), shape)) in ports.iter().zip(shapes).enumerate() {
            let dtype = dtypes.map_or(ty.dtype, |d| d[k]);
            let found = TensorType::new(dtype, shape.iter().copied());
            let mismatch = || match self.graph {
                Some(_) => {
                    SessionError::Input { name: name.clone(), expected: ty.to_string(), found: found.to_string() }
                }
                None => SessionError::Bundle(format!(
                    "input %{name}: the bundle was compiled for {ty}, not {found} (compile the model again \
                     for these shapes, with --shape)"
                )),
            };
            if dtype != ty.dtype || shape.len() != ty.rank() {
                return Err(mismatch());
            }
            for (d, &n) in ty.shape.iter().zip(shape) {
                if let Some(c) = d.as_usize() {
                    if c != n {
                        return Err(mismatch());
                    }
                } else if let [s] = d.symbols().as_slice() {
                    // One symbol, one size: `batch` bound to 2 by one input cannot be 3 in another.
                    if *bound.entry(s.to_string()).or_insert(n) != n {
                        return Err(mismatch());
                    }
                }
            }
        }
        Ok(())
    }

    fn compile(&self, shapes: &[Vec<usize>]) -> Result<(Compiled, CompileReport), SessionError> {
        let target = self.options.target;
        let fail = |message: String| SessionError::Compile { target: target.name(), message };
        let Some(graph) = &self.graph else {
            let compiled: Vec<String> = self.cache.keys().map(|k| format!("{k:?}")).collect();
            return Err(fail(format!(
                "a bundle runs only the input shapes it was compiled for ({}), not {shapes:?}",
                compiled.join(", ")
            )));
        };
        let mut phases = Phases::default();
        let graph = phases.time("bind", || bind_shapes(graph, shapes, None));
        let mut report = CompileReport {
            shapes: shapes.to_vec(),
            phases: Phases::default(),
            kernels: 0,
            arena_bytes: 0,
            arena_lower_bound: 0,
            tuning: TuningUse::default(),
            kernel_info: Vec::new(),
        };
        let Some(backend) = target.backend(&self.options.backend_options()) else {
            report.phases = phases;
            return Ok((Compiled::Interp(graph), report));
        };
        let tuned = self.options.tuning.load(&backend.fingerprint());
        let (program, tuning) =
            compile_timed(&graph, &backend.device(), self.options.optimize, tuned.as_deref(), &mut phases)
                .map_err(fail)?;
        report.kernel_info = KernelInfo::of(&program, &tuning.tuned);
        report.tuning = tuning;
        let plan = nnc_kernel::plan::MemoryPlan::of(&program.fused);
        report.kernels = program.kernels.len();
        report.arena_bytes = plan.arena_bytes;
        report.arena_lower_bound = plan.lower_bound;
        let exec = phases.time("codegen", || backend.compile(&program)).map_err(|e| fail(e.message))?;
        report.phases = phases;
        Ok((Compiled::Program(exec), report))
    }

    /// The name of the device the last compiled program runs on (a GPU adapter, a CUDA device,
    /// this CPU).
    pub fn adapter_name(&self) -> Option<String> {
        self.cache.values().find_map(|(c, _)| match c {
            Compiled::Program(exec) if self.options.target != Target::Cpu => Some(exec.device_name()),
            _ => None,
        })
    }

    /// Queue submissions made so far by the program of the last run, where the target counts
    /// them (WGSL: one per run).
    pub fn submissions(&self) -> Option<u64> {
        match self.last.as_ref().and_then(|k| self.cache.get(k)) {
            Some((Compiled::Program(exec), _)) => exec.submissions(),
            _ => None,
        }
    }
}

/// A run's error under the session's target (a backend's error already names it).
fn run_error(target: &'static str, e: impl Into<RunFailure>) -> SessionError {
    let message = match e.into() {
        RunFailure::Backend(b) => b.message,
        RunFailure::Other(m) => m,
    };
    SessionError::Run { target, message }
}

/// What a run can fail with.
enum RunFailure {
    Backend(BackendError),
    Other(String),
}

impl From<BackendError> for RunFailure {
    fn from(e: BackendError) -> RunFailure {
        RunFailure::Backend(e)
    }
}

impl From<RunError> for RunFailure {
    fn from(e: RunError) -> RunFailure {
        match e {
            RunError::Backend(b) => RunFailure::Backend(b),
            other => RunFailure::Other(other.to_string()),
        }
    }
}

impl From<nnc_kernel::backend::InputError> for RunFailure {
    fn from(e: nnc_kernel::backend::InputError) -> RunFailure {
        RunFailure::Other(e.to_string())
    }
}

impl From<nnc_interp::InterpError> for RunFailure {
    fn from(e: nnc_interp::InterpError) -> RunFailure {
        RunFailure::Other(e.to_string())
    }
}

fn check_buffer(name: &str, found: usize, expected: usize) -> Result<(), SessionError> {
    if found != expected {
        return Err(SessionError::OutputBuffer { name: name.to_string(), expected, found });
    }
    Ok(())
}

//! Runs a compiled [`Program`] natively: every kernel JIT-compiled once, one arena per
//! [`MemoryPlan`] for the intermediates, weights and inputs bound in place, and each large
//! kernel's grid split across the threads of a persistent pool, which spin beside the run as
//! its team (`team`) while it lasts.

use crate::abi::{KernelFn, Status};
use crate::aot::{LoadedCode, LoadedImage};
use crate::driver::{compile_kernels, EmitError, EmitOptions, JitCode};
use crate::team::{EndsRun, Team};
use nnc_ir::TensorData;
use nnc_kernel::backend::{BackendError, Checked, ErrorKind, Executable, Interface};
use nnc_kernel::plan::MemoryPlan;
use nnc_kernel::program::BufferKind;
use nnc_kernel::program::Program;
use nnc_kernel::DeviceKind;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The process's thread pool for `threads` threads (`None`: one per core), started on first
/// use and shared by every program after: no thread is spawned per program or per kernel.
fn shared_pool(threads: Option<usize>) -> Result<Arc<rayon::ThreadPool>, String> {
    static POOLS: OnceLock<Mutex<HashMap<usize, Arc<rayon::ThreadPool>>>> = OnceLock::new();
    let n = threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let mut pools = POOLS.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = pools.get(&n) {
        return Ok(p.clone());
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .thread_name(|i| format!("nnc-cpu-{i}"))
        .build()
        .map_err(|e| format!("cannot start {n} threads: {e}"))?;
    let pool = Arc::new(pool);
    pools.insert(n, pool.clone());
    Ok(pool)
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CpuError {
    #[error(transparent)]
    Emit(#[from] EmitError),
    #[error("program `{program}`: {message}")]
    Program { program: String, message: String },
    #[error("program `{program}` takes {expected} input(s), {found} given")]
    InputCount { program: String, expected: usize, found: usize },
    #[error("input `%{name}`: expected {expected}, found {found}")]
    Input { name: String, expected: String, found: String },
    #[error("kernel `{kernel}`: {message}")]
    Kernel { kernel: String, message: String },
    #[error("{path}: {message}")]
    Bundle { path: String, message: String },
    #[error(transparent)]
    Memory(#[from] nnc_ir::size::OutOfMemory),
}

/// Options of [`CpuProgram`].
#[derive(Clone, Debug, Default)]
pub struct CpuOptions {
    pub emit: EmitOptions,
    /// Threads to run kernels on (`None`: one per core); programs with the same count share one
    /// process-wide pool.
    pub threads: Option<usize>,
}

pub(crate) struct KernelRun {
    pub(crate) name: String,
    pub(crate) function: KernelFn,
    pub(crate) groups: u64,
    /// Program buffer ids bound to the kernel's global parameters, in order.
    pub(crate) params: Vec<usize>,
    /// Arithmetic plus bytes moved: below [`INLINE_WORK`] the kernel runs on the calling thread.
    pub(crate) work: f64,
}

/// Kernels with less work than this (FLOPs + bytes, about 10–30 µs on one core) run on the
/// calling thread: handing them to the pool costs more than it saves.
const INLINE_WORK: f64 = 100_000.0;

/// What keeps the kernels' code alive.
pub(crate) enum CodeOwner {
    Jit(Box<JitCode>),
    // Held, never read: dropping them unmaps the code.
    Loaded(#[allow(dead_code)] LoadedCode, #[allow(dead_code)] Option<LoadedImage>),
}

/// A program compiled to native code.
pub struct CpuProgram {
    name: String,
    buffers: Vec<nnc_kernel::program::ProgramBuffer>,
    outputs: Vec<usize>,
    interface: Interface,
    kernels: Vec<KernelRun>,
    plan: MemoryPlan,
    code: CodeOwner,
    vectorized_loops: usize,
    pool: Arc<rayon::ThreadPool>,
    compile_time: Duration,
    arena: std::sync::Mutex<Vec<Line>>,
}

/// What a run measures besides running.
enum Probe<'a> {
    None,
    /// The wall time of every kernel, in launch order.
    EachKernel(&'a mut Vec<Duration>),
    /// After the run, kernel `index` again `repeats` times, each timed.
    Kernel {
        index: usize,
        repeats: u32,
        times: &'a mut Vec<Duration>,
    },
}

#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Line([u8; 64]);

impl CpuProgram {
    /// Compiles every kernel of `program` (scheduled for a CPU device).
    pub fn new(program: &Program) -> Result<CpuProgram, CpuError> {
        CpuProgram::with_options(program, &CpuOptions::default())
    }

    pub fn with_options(program: &Program, options: &CpuOptions) -> Result<CpuProgram, CpuError> {
        let start = Instant::now();
        let fused = &program.fused;
        let err = |message: String| CpuError::Program { program: fused.name.clone(), message };
        if program.device.kind != DeviceKind::Cpu {
            return Err(err("the program was scheduled for a GPU; compile it for Device::cpu()".into()));
        }
        for g in &fused.groups {
            for w in &g.writes {
                if !matches!(fused.buffers[w.index()].kind, BufferKind::Intermediate) {
                    return Err(err(format!("group `{}` writes a buffer that is not an intermediate", g.name)));
                }
            }
        }
        let code = compile_kernels(&program.kernels, &options.emit)?;
        let stats = nnc_kernel::stats::ProgramStats::of(fused);
        let kernels = fused
            .groups
            .iter()
            .zip(&program.kernels)
            .zip(&stats.kernels)
            .enumerate()
            .map(|(i, ((g, k), s))| KernelRun {
                name: k.name.clone(),
                function: code.function(i),
                groups: k.launch.workgroups(),
                params: g.reads.iter().chain(&g.writes).map(|b| b.index()).collect(),
                work: s.flops + s.bytes() as f64,
            })
            .collect();
        let mut p = CpuProgram::from_parts(
            fused.name.clone(),
            Interface::of(fused),
            fused.buffers.clone(),
            fused.outputs.iter().map(|b| b.index()).collect(),
            kernels,
            MemoryPlan::of(fused),
            CodeOwner::Jit(Box::new(code)),
            options.threads,
        )?;
        p.compile_time = start.elapsed();
        Ok(p)
    }

    /// Assembles a program from compiled kernels (`kernels[k].params` index `buffers`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn from_parts(
        name: String,
        interface: Interface,
        buffers: Vec<nnc_kernel::program::ProgramBuffer>,
        outputs: Vec<usize>,
        kernels: Vec<KernelRun>,
        plan: MemoryPlan,
        code: CodeOwner,
        threads: Option<usize>,
    ) -> Result<CpuProgram, CpuError> {
        let pool = shared_pool(threads).map_err(|message| CpuError::Program { program: name.clone(), message })?;
        let vectorized_loops = match &code {
            CodeOwner::Jit(c) => c.vectorized_loops,
            CodeOwner::Loaded(..) => 0,
        };
        Ok(CpuProgram {
            interface,
            name,
            buffers,
            outputs,
            kernels,
            plan,
            code,
            vectorized_loops,
            pool,
            compile_time: Duration::ZERO,
            arena: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// Time spent compiling the kernels (or loading a bundle).
    pub fn compile_time(&self) -> Duration {
        self.compile_time
    }

    pub(crate) fn set_compile_time(&mut self, t: Duration) {
        self.compile_time = t;
    }

    /// Bytes of the intermediates' arena.
    pub fn arena_bytes(&self) -> u64 {
        self.plan.arena_bytes
    }

    pub fn memory_plan(&self) -> &MemoryPlan {
        &self.plan
    }

    pub fn kernel_count(&self) -> usize {
        self.kernels.len()
    }

    /// `vector` loops that became vector code (0 for code loaded from a bundle).
    pub fn vectorized_loops(&self) -> usize {
        self.vectorized_loops
    }

    /// Kernels whose code LLVM generated (the others are Cranelift's; 0 for a bundle).
    pub fn llvm_kernels(&self) -> usize {
        match &self.code {
            CodeOwner::Jit(c) => c.llvm_kernels,
            CodeOwner::Loaded(..) => 0,
        }
    }

    /// The program's inputs and outputs.
    pub fn interface(&self) -> &Interface {
        &self.interface
    }

    /// Runs the program on `inputs` (in graph input order, checked against [`Self::interface`])
    /// and returns its outputs.
    pub fn run(&self, inputs: &[TensorData]) -> Result<Vec<TensorData>, CpuError> {
        if profiling() {
            let (out, times) = self.profile(inputs)?;
            self.print_profile(&times.iter().map(|t| t.1).collect::<Vec<_>>());
            return Ok(out);
        }
        self.run_probed(inputs, Probe::None)
    }

    /// Prints the time of every kernel of one run, slowest first (`NNC_CPU_PROFILE=1`).
    fn print_profile(&self, times: &[Duration]) {
        let total: Duration = times.iter().sum();
        let mut sorted: Vec<(&str, Duration)> =
            self.kernels.iter().map(|k| k.name.as_str()).zip(times.iter().copied()).collect();
        sorted.sort_by_key(|t| std::cmp::Reverse(t.1));
        eprintln!("{}: {:.3} ms in {} kernels", self.name, total.as_secs_f64() * 1e3, sorted.len());
        for (name, t) in sorted.iter().take(20) {
            eprintln!(
                "  {:9.3} ms {:5.1}%  {name}",
                t.as_secs_f64() * 1e3,
                100.0 * t.as_secs_f64() / total.as_secs_f64().max(1e-12)
            );
        }
    }

    /// Runs the program like [`Self::run`] and also returns the wall time of every kernel (in
    /// launch order, by kernel name). `NNC_CPU_PROFILE=1` makes [`Self::run`] print them.
    #[allow(clippy::type_complexity)]
    pub fn profile(&self, inputs: &[TensorData]) -> Result<(Vec<TensorData>, Vec<(String, Duration)>), CpuError> {
        let mut times = Vec::with_capacity(self.kernels.len());
        let out = self.run_probed(inputs, Probe::EachKernel(&mut times))?;
        Ok((out, self.kernels.iter().map(|k| k.name.clone()).zip(times).collect()))
    }

    /// Checks `inputs`, runs, and returns the outputs as tensors.
    fn run_probed(&self, inputs: &[TensorData], probe: Probe<'_>) -> Result<Vec<TensorData>, CpuError> {
        let checked = self
            .interface
            .check(inputs)
            .map_err(|e| CpuError::Program { program: self.name.clone(), message: e.to_string() })?;
        let ports = &self.interface.outputs;
        let mut buffers = ports
            .iter()
            .map(|p| nnc_ir::size::try_vec(p.bytes(), 0u8, || format!("output %{}", p.name)))
            .collect::<Result<Vec<Vec<u8>>, _>>()?;
        let mut slices: Vec<&mut [u8]> = buffers.iter_mut().map(Vec::as_mut_slice).collect();
        self.execute(checked, &mut slices, probe)?;
        ports
            .iter()
            .zip(buffers)
            .map(|(p, bytes)| {
                TensorData::from_bytes(p.dtype, p.shape.clone(), bytes.into())
                    .map_err(|e| CpuError::Program { program: self.name.clone(), message: e.to_string() })
            })
            .collect()
    }

    /// Runs every kernel on checked inputs and copies the outputs into `outputs` (one slice of
    /// the output's size each); `probe` times kernels on the way.
    fn execute(&self, inputs: Checked<'_>, outputs: &mut [&mut [u8]], mut probe: Probe<'_>) -> Result<(), CpuError> {
        let inputs = inputs.tensors();
        let lines = usize::try_from(self.plan.arena_bytes.div_ceil(64)).unwrap_or(usize::MAX).max(1);
        // The program's own arena, allocated once; a run that overlaps another (from another
        // thread) gets a fresh one. Kernels write every intermediate before reading it (the
        // Kernel-IR interpreter poisons them to check), so old contents do not matter.
        let mut kept = self.arena.try_lock().ok();
        let mut fresh = Vec::new();
        let arena: &mut Vec<Line> = match kept.as_deref_mut() {
            Some(a) => a,
            None => &mut fresh,
        };
        if arena.len() < lines {
            let what = || format!("the arena of intermediates of program `{}`", self.name);
            *arena = nnc_ir::size::try_vec(lines, Line([0; 64]), what)?;
        }
        let arena_ptr = arena.as_mut_ptr() as *mut u8;
        // Inputs were checked against the interface, so each has its buffer's type and size.
        let ptrs: Vec<*mut u8> = self
            .buffers
            .iter()
            .enumerate()
            .map(|(i, b)| match &b.kind {
                BufferKind::Input(n) => inputs[*n].bytes().as_ptr() as *mut u8,
                BufferKind::Constant(t) => t.bytes().as_ptr() as *mut u8,
                BufferKind::Intermediate => match self.plan.offsets[i] {
                    // SAFETY: the plan keeps every offset + size within the arena.
                    Some(off) => unsafe { arena_ptr.add(off as usize) },
                    None => arena_ptr,
                },
            })
            .collect();
        // A run with parallel kernels gets a team (see `team`): the other threads of the pool
        // spin beside this one for the run's length, so a launch is not a wake-up.
        let team = self.kernels.iter().any(|k| self.uses_pool(k)).then(|| Arc::new(Team::new()));
        if let Some(team) = &team {
            for _ in 1..self.pool.current_num_threads() {
                let helper = team.clone();
                self.pool.spawn(move || helper.help());
            }
        }
        let run_kernel = |k: &KernelRun| -> Result<Duration, CpuError> {
            let args: Vec<*mut u8> = k.params.iter().map(|&b| ptrs[b]).collect();
            let start = Instant::now();
            let status = self.launch(k, &args, team.as_deref());
            let took = start.elapsed();
            if status != 0 {
                let message = Status::from_code(status).map(Status::message).unwrap_or("unknown status");
                return Err(CpuError::Kernel { kernel: k.name.clone(), message: message.into() });
            }
            Ok(took)
        };
        let mut run_all = || -> Result<(), CpuError> {
            for k in &self.kernels {
                let took = run_kernel(k)?;
                if let Probe::EachKernel(times) = &mut probe {
                    times.push(took);
                }
            }
            if let Probe::Kernel { index, repeats, times } = &mut probe {
                let k = self.kernels.get(*index).ok_or_else(|| CpuError::Program {
                    program: self.name.clone(),
                    message: format!("no kernel {index} (the program has {})", self.kernels.len()),
                })?;
                for _ in 0..*repeats {
                    times.push(run_kernel(k)?);
                }
            }
            Ok(())
        };
        let ends = team.as_deref().map(EndsRun);
        run_all()?;
        drop(ends);
        for (out, &o) in outputs.iter_mut().zip(&self.outputs) {
            let b = &self.buffers[o];
            let len = b.bytes() as usize;
            if out.len() != len {
                return Err(CpuError::Program {
                    program: self.name.clone(),
                    message: format!("output `{}` needs {len} bytes, the buffer given has {}", b.name, out.len()),
                });
            }
            let source: &[u8] = match &b.kind {
                BufferKind::Input(n) => inputs[*n].bytes(),
                BufferKind::Constant(t) => t.bytes(),
                BufferKind::Intermediate => {
                    let off = self.plan.offsets[o].unwrap_or(0) as usize;
                    // SAFETY: the buffer lies within the arena, which lives until `kept` drops.
                    unsafe { std::slice::from_raw_parts(arena_ptr.add(off), len) }
                }
            };
            out.copy_from_slice(source);
        }
        drop(kept);
        Ok(())
    }

    /// Whether kernel `k` is split across the pool: it has several workgroups, there are
    /// several threads, and enough work to pay for the hand-over.
    fn uses_pool(&self, k: &KernelRun) -> bool {
        k.groups > 1 && self.pool.current_num_threads() > 1 && k.work >= INLINE_WORK
    }

    /// Runs every workgroup of kernel `k`, in pieces across the run's team where it has one
    /// and the kernel is worth splitting; the first nonzero status wins.
    fn launch(&self, k: &KernelRun, args: &[*mut u8], team: Option<&Team>) -> u32 {
        let n = k.groups;
        if n == 0 {
            return 0;
        }
        match team.filter(|_| self.uses_pool(k)) {
            // SAFETY: the pointers cover every buffer the kernel accesses; pieces are disjoint
            // ranges of workgroups, which write disjoint elements.
            Some(team) => unsafe { team.run(k.function, args, n, n.min(self.pool.current_num_threads() as u64 * 4)) },
            // SAFETY: as above.
            None => unsafe { (k.function)(args.as_ptr(), 0, n) },
        }
    }
}

impl std::fmt::Debug for CpuProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CpuProgram({}, {} kernels)", self.name, self.kernels.len())
    }
}

/// Whether every run prints the time of each kernel (`NNC_CPU_PROFILE` set).
impl CpuProgram {
    /// Runs with `probe`, the outputs going to scratch buffers (for timing).
    fn run_into_scratch(&self, inputs: Checked<'_>, probe: Probe<'_>) -> Result<(), BackendError> {
        let mut scratch: Vec<Vec<u8>> = self.interface.outputs.iter().map(|p| vec![0u8; p.bytes()]).collect();
        let mut slices: Vec<&mut [u8]> = scratch.iter_mut().map(Vec::as_mut_slice).collect();
        self.execute(inputs, &mut slices, probe).map_err(run_error)
    }
}

fn profiling() -> bool {
    std::env::var_os("NNC_CPU_PROFILE").is_some()
}

impl Executable for CpuProgram {
    fn interface(&self) -> &Interface {
        &self.interface
    }

    fn run(&mut self, inputs: Checked<'_>, outputs: &mut [&mut [u8]]) -> Result<(), BackendError> {
        if profiling() {
            let mut times = Vec::with_capacity(self.kernels.len());
            self.execute(inputs, outputs, Probe::EachKernel(&mut times)).map_err(run_error)?;
            self.print_profile(&times);
            return Ok(());
        }
        self.execute(inputs, outputs, Probe::None).map_err(run_error)
    }

    fn time_kernel(&mut self, inputs: Checked<'_>, k: usize, repeats: u32) -> Result<Vec<Duration>, BackendError> {
        let mut times = Vec::with_capacity(repeats as usize);
        self.run_into_scratch(inputs, Probe::Kernel { index: k, repeats, times: &mut times })?;
        Ok(times)
    }

    fn time_each_kernel(&mut self, inputs: Checked<'_>) -> Result<Option<Vec<Duration>>, BackendError> {
        let mut times = Vec::with_capacity(self.kernels.len());
        self.run_into_scratch(inputs, Probe::EachKernel(&mut times))?;
        Ok(Some(times))
    }

    fn kernel_names(&self) -> Vec<String> {
        self.kernels.iter().map(|k| k.name.clone()).collect()
    }

    fn device_name(&self) -> String {
        format!("this CPU, {} threads", self.pool.current_num_threads())
    }
}

fn run_error(e: CpuError) -> BackendError {
    BackendError::new("cpu", ErrorKind::Run, e.to_string())
}

//! Runs a compiled [`Program`] natively: every kernel JIT-compiled once, one arena per
//! [`MemoryPlan`] for the intermediates, weights and inputs bound in place, and each kernel's
//! grid split across a persistent rayon pool.

use crate::aot::{LoadedCode, LoadedImage};
use crate::emit::{compile_kernels, EmitError, EmitOptions, JitCode, KernelFn, Status};
use nnc_ir::TensorData;
use nnc_kernel::plan::MemoryPlan;
use nnc_kernel::program::BufferKind;
use nnc_kernel::program::Program;
use nnc_kernel::DeviceKind;
use rayon::prelude::*;
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
    inputs: usize,
    kernels: Vec<KernelRun>,
    plan: MemoryPlan,
    code: CodeOwner,
    vectorized_loops: usize,
    pool: Arc<rayon::ThreadPool>,
    compile_time: Duration,
    arena: std::sync::Mutex<Vec<Line>>,
}

/// Pointers handed to kernels running on other threads.
struct Ptrs(Vec<*mut u8>);
// SAFETY: kernels of one launch write disjoint elements (the scheduler's contract, checked by the
// Kernel-IR interpreter) and read only what no invocation of the launch writes.
unsafe impl Sync for Ptrs {}
unsafe impl Send for Ptrs {}

impl Ptrs {
    fn at(&self, i: usize) -> *mut u8 {
        self.0[i]
    }
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
    pub(crate) fn from_parts(
        name: String,
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
            inputs: buffers.iter().filter(|b| matches!(b.kind, BufferKind::Input(_))).count(),
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

    /// Runs the program on `inputs` (in graph input order) and returns its outputs.
    pub fn run(&self, inputs: &[TensorData]) -> Result<Vec<TensorData>, CpuError> {
        if std::env::var_os("NNC_CPU_PROFILE").is_some() {
            let (out, times) = self.profile(inputs)?;
            let total: Duration = times.iter().map(|t| t.1).sum();
            let mut sorted = times;
            sorted.sort_by_key(|t| std::cmp::Reverse(t.1));
            eprintln!("{}: {:.3} ms in {} kernels", self.name, total.as_secs_f64() * 1e3, sorted.len());
            for (name, t) in sorted.iter().take(20) {
                eprintln!(
                    "  {:9.3} ms {:5.1}%  {name}",
                    t.as_secs_f64() * 1e3,
                    100.0 * t.as_secs_f64() / total.as_secs_f64().max(1e-12)
                );
            }
            return Ok(out);
        }
        self.run_timed(inputs, None)
    }

    /// Runs the program like [`Self::run`] and also returns the wall time of every kernel (in
    /// launch order, by kernel name). `NNC_CPU_PROFILE=1` makes [`Self::run`] print them.
    #[allow(clippy::type_complexity)]
    pub fn profile(&self, inputs: &[TensorData]) -> Result<(Vec<TensorData>, Vec<(String, Duration)>), CpuError> {
        let mut times = Vec::with_capacity(self.kernels.len());
        let out = self.run_timed(inputs, Some(&mut times))?;
        Ok((out, self.kernels.iter().map(|k| k.name.clone()).zip(times).collect()))
    }

    fn run_timed(
        &self,
        inputs: &[TensorData],
        mut times: Option<&mut Vec<Duration>>,
    ) -> Result<Vec<TensorData>, CpuError> {
        if inputs.len() != self.inputs {
            return Err(CpuError::InputCount {
                program: self.name.clone(),
                expected: self.inputs,
                found: inputs.len(),
            });
        }
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
        let mut ptrs: Vec<*mut u8> = Vec::with_capacity(self.buffers.len());
        for (i, b) in self.buffers.iter().enumerate() {
            let p = match &b.kind {
                BufferKind::Input(n) => {
                    let t = &inputs[*n];
                    let shape: Vec<i64> = t.shape().iter().map(|&d| d as i64).collect();
                    if t.dtype() != b.dtype || shape != b.shape {
                        return Err(CpuError::Input {
                            name: b.name.clone(),
                            expected: format!("{}{:?}", b.dtype.name(), b.shape),
                            found: format!("{}{:?}", t.dtype().name(), shape),
                        });
                    }
                    t.bytes().as_ptr() as *mut u8
                }
                BufferKind::Constant(t) => t.bytes().as_ptr() as *mut u8,
                BufferKind::Intermediate => match self.plan.offsets[i] {
                    // SAFETY: the plan keeps every offset + size within the arena.
                    Some(off) => unsafe { arena_ptr.add(off as usize) },
                    None => arena_ptr,
                },
            };
            ptrs.push(p);
        }
        // The whole run is one job on the pool: each kernel's parallel loop is then a nested
        // rayon call on a pool thread, not a hand-over from a thread that sleeps until the
        // pool wakes it (tens of microseconds per kernel).
        let ptrs = Ptrs(ptrs);
        let run_all = || -> Result<(), CpuError> {
            for k in &self.kernels {
                let args = Ptrs(k.params.iter().map(|&b| ptrs.at(b)).collect());
                let start = Instant::now();
                let status = self.launch(k, &args);
                if let Some(t) = times.as_deref_mut() {
                    t.push(start.elapsed());
                }
                if status != 0 {
                    let message = Status::from_code(status).map(Status::message).unwrap_or("unknown status");
                    return Err(CpuError::Kernel { kernel: k.name.clone(), message: message.into() });
                }
            }
            Ok(())
        };
        self.pool.install(run_all)?;
        let out = self
            .outputs
            .iter()
            .map(|&o| {
                let b = &self.buffers[o];
                let shape: Vec<usize> = b.shape.iter().map(|&d| d as usize).collect();
                match &b.kind {
                    BufferKind::Input(n) => Ok(inputs[*n].clone()),
                    BufferKind::Constant(t) => Ok(t.clone()),
                    BufferKind::Intermediate => {
                        let off = self.plan.offsets[o].unwrap_or(0) as usize;
                        let len = b.bytes() as usize;
                        // SAFETY: the buffer lies within the arena.
                        let bytes = unsafe { std::slice::from_raw_parts(arena_ptr.add(off), len) };
                        let mut copy = nnc_ir::size::try_with_capacity(len, || format!("output `{}`", b.name))?;
                        copy.extend_from_slice(bytes);
                        TensorData::from_bytes(b.dtype, shape, bytes::Bytes::from(copy)).map_err(|e| {
                            CpuError::Program {
                                program: self.name.clone(),
                                message: format!("output `{}`: {e}", b.name),
                            }
                        })
                    }
                }
            })
            .collect();
        drop(kept);
        out
    }

    /// Runs every workgroup of kernel `k`, split in chunks across the pool; the first nonzero
    /// status wins.
    fn launch(&self, k: &KernelRun, args: &Ptrs) -> u32 {
        let n = k.groups;
        if n == 0 {
            return 0;
        }
        let f = k.function;
        let threads = self.pool.current_num_threads() as u64;
        let chunks = n.min(threads * 4);
        if chunks <= 1 || threads <= 1 || k.work < INLINE_WORK {
            // SAFETY: the pointers cover every buffer the kernel accesses.
            return unsafe { f(args.0.as_ptr(), 0, n) };
        }
        (0..chunks)
            .into_par_iter()
            .map(|c| {
                let (lo, hi) = (n * c / chunks, n * (c + 1) / chunks);
                // SAFETY: as above; chunks are disjoint ranges of workgroups.
                unsafe { f(args.0.as_ptr(), lo, hi) }
            })
            .reduce(|| 0, |a, b| if a != 0 { a } else { b })
    }
}

impl std::fmt::Debug for CpuProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CpuProgram({}, {} kernels)", self.name, self.kernels.len())
    }
}

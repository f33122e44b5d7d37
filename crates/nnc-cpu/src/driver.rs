//! The CPU code generation driver: plans each kernel and hands it to LLVM (the host's widest
//! vectors) where LLVM is built, asked for and covers the kernel, to Cranelift otherwise, and
//! returns the executable code ([`JitCode`]) with, on request, the machine code a bundle keeps.

use crate::abi::KernelFn;
use crate::aot::{LoadedImage, MachineCode};
use crate::cranelift::CraneliftJit;
use crate::link::{Image, LinkedKernels};
use cranelift_jit::JITModule;
use nnc_kernel::kernel::Kernel;

/// Why a kernel could not be compiled.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("kernel `{kernel}`: {message}")]
pub struct EmitError {
    pub kernel: String,
    pub message: String,
}

/// Options of the emitter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EmitOptions {
    /// Emit `vector(4)` loops over `f32` as 128-bit vector code where the body allows it.
    pub vectorize: bool,
    /// Run Cranelift's verifier on every function (slower compiles; on in debug builds).
    pub verify: bool,
    /// Contract `c + a * b` in vector loops to a fused multiply-add where the host has one
    /// (AVX + FMA); one rounding instead of two.
    pub fma: bool,
    /// Keep each kernel's machine code and relocations in [`JitCode::machine`], for an
    /// ahead-of-time bundle (Cranelift's per kernel, LLVM's as one image in [`JitCode::linked`]).
    pub keep_machine_code: bool,
    /// Compile kernels with LLVM for the host's widest vectors where LLVM covers them (see
    /// [`crate::llvm`]); the others, and every kernel when off, with Cranelift.
    pub llvm: bool,
    /// Take LLVM's code for kernels compiled before from the user's compiled-code cache, and
    /// keep what is compiled now in it ([`crate::code_cache`]; `NNC_CODE_CACHE=off` turns it
    /// off for every compile).
    pub code_cache: bool,
}

impl Default for EmitOptions {
    fn default() -> Self {
        EmitOptions {
            vectorize: true,
            verify: cfg!(debug_assertions),
            fma: true,
            keep_machine_code: false,
            llvm: cfg!(feature = "llvm"),
            code_cache: true,
        }
    }
}

/// JIT-compiled kernels: the code lives as long as this value.
pub struct JitCode {
    module: Option<JITModule>,
    /// Held, never read: dropping it unmaps LLVM's kernels.
    #[allow(dead_code)]
    image: Option<LoadedImage>,
    functions: Vec<KernelFn>,
    /// Kernels compiled by LLVM (the others by Cranelift).
    pub llvm_kernels: usize,
    /// Of those, kernels whose code came from the compiled-code cache.
    pub cached_kernels: usize,
    /// Why kernels went to Cranelift although LLVM was asked for (per kernel, or for all).
    pub llvm_notes: Vec<String>,
    /// Kernels whose `vector` loops became real vector code.
    pub vectorized_loops: usize,
    /// Per kernel, with [`EmitOptions::keep_machine_code`]: its code, for a bundle.
    pub machine: Vec<KernelCode>,
    /// With [`EmitOptions::keep_machine_code`]: LLVM's linked image of kernels and the CPU
    /// features (LLVM's names) it was built for.
    pub linked: Option<(Image, String)>,
}

/// Where a kernel's machine code is, for a bundle.
#[derive(Clone, Debug, PartialEq)]
pub enum KernelCode {
    /// Cranelift's code for this kernel alone.
    Cranelift(MachineCode),
    /// The entry point in LLVM's image ([`JitCode::linked`]).
    Linked { entry: u64 },
}

// SAFETY: the module only owns executable memory and symbol tables; after finalization it is
// never mutated until it is dropped, and the function pointers are plain code.
unsafe impl Send for JitCode {}
unsafe impl Sync for JitCode {}

impl JitCode {
    /// The entry point of the `i`-th compiled kernel.
    pub fn function(&self, i: usize) -> KernelFn {
        self.functions[i]
    }

    pub fn len(&self) -> usize {
        self.functions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.functions.is_empty()
    }
}

impl Drop for JitCode {
    fn drop(&mut self) {
        if let Some(m) = self.module.take() {
            // SAFETY: every function pointer handed out lives inside `self`.
            unsafe { m.free_memory() };
        }
    }
}

impl std::fmt::Debug for JitCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JitCode({} kernels)", self.functions.len())
    }
}

/// Compiles `kernels`: LLVM's where it takes them, Cranelift's for the rest.
pub fn compile_kernels(kernels: &[Kernel], options: &EmitOptions) -> Result<JitCode, EmitError> {
    let top = |message: String| EmitError { kernel: "<jit>".into(), message };
    // LLVM failing as a whole (an unexpected relocation, say) leaves every kernel to Cranelift.
    let mut llvm_notes = Vec::new();
    let llvm = compile_with_llvm(kernels, options)
        .and_then(|c| c.map(|c| LoadedImage::load(&c.image.bytes, &c.image.relocations).map(|i| (c, i))).transpose())
        .unwrap_or_else(|e| {
            llvm_notes.push(format!("LLVM: {e}; every kernel compiled by Cranelift"));
            None
        });
    let (llvm, image) = llvm.unzip();
    if let Some(c) = &llvm {
        for (kernel, entry) in kernels.iter().zip(&c.entries) {
            if let Err(reason) = entry {
                llvm_notes.push(format!("{}: {reason}", kernel.name));
            }
        }
    }
    let llvm_entry = |i: usize| llvm.as_ref().and_then(|c| c.entries[i].as_ref().ok().copied());
    let mut cranelift: Option<CraneliftJit> = None;
    let mut cranelift_ids = Vec::new();
    let mut machine = Vec::new();
    let mut vectorized_loops = llvm.as_ref().map_or(0, |c| c.vectorized_loops);
    for (i, kernel) in kernels.iter().enumerate() {
        let err = |message: String| EmitError { kernel: kernel.name.clone(), message };
        if let Some(entry) = llvm_entry(i) {
            if options.keep_machine_code {
                machine.push(KernelCode::Linked { entry });
            }
            continue;
        }
        let plan = crate::cranelift::plan(kernel, options.vectorize).map_err(err)?;
        let jit = match &mut cranelift {
            Some(jit) => jit,
            None => cranelift.insert(CraneliftJit::new(options.verify, options.fma).map_err(top)?),
        };
        let (id, code) = jit.compile(i, &plan, options.keep_machine_code).map_err(err)?;
        vectorized_loops += plan.vectorized_loops;
        machine.extend(code.map(KernelCode::Cranelift));
        cranelift_ids.push((i, id));
    }
    let (module, cranelift_functions) = match cranelift {
        Some(jit) => {
            let ids: Vec<_> = cranelift_ids.iter().map(|&(_, id)| id).collect();
            let (module, functions) = jit.finish(&ids).map_err(top)?;
            (Some(module), functions)
        }
        None => (None, Vec::new()),
    };
    let mut functions: Vec<Option<KernelFn>> = vec![None; kernels.len()];
    for (&(i, _), f) in cranelift_ids.iter().zip(cranelift_functions) {
        functions[i] = Some(f);
    }
    for (i, slot) in functions.iter_mut().enumerate() {
        if let (None, Some(image), Some(entry)) = (&slot, &image, llvm_entry(i)) {
            *slot = Some(image.function(entry).map_err(top)?);
        }
    }
    let functions =
        functions.into_iter().map(|f| f.ok_or_else(|| top("a kernel has no code".into()))).collect::<Result<_, _>>()?;
    let llvm_kernels = (0..kernels.len()).filter(|&i| llvm_entry(i).is_some()).count();
    let cached_kernels = llvm.as_ref().map_or(0, |c| c.cached);
    let linked = llvm.filter(|_| options.keep_machine_code && llvm_kernels > 0).map(|c| (c.image, c.features));
    Ok(JitCode {
        module,
        image,
        functions,
        llvm_kernels,
        cached_kernels,
        llvm_notes,
        vectorized_loops,
        machine,
        linked,
    })
}

/// LLVM's image of the kernels it covers, when the options and the host allow.
#[cfg(feature = "llvm")]
fn compile_with_llvm(kernels: &[Kernel], options: &EmitOptions) -> Result<Option<LinkedKernels>, String> {
    match crate::llvm::host_lanes() {
        Some(_) if options.llvm && options.vectorize => {
            let cache = options.code_cache.then(crate::code_cache::CodeCache::from_env).flatten();
            crate::llvm::compile(kernels, cache.as_ref()).map(Some)
        }
        _ => Ok(None),
    }
}

/// Without the `llvm` feature every kernel is Cranelift's.
#[cfg(not(feature = "llvm"))]
fn compile_with_llvm(_: &[Kernel], _: &EmitOptions) -> Result<Option<LinkedKernels>, String> {
    Ok(None)
}

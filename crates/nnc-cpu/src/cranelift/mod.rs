//! Kernel IR → native code with Cranelift (JIT), for every kernel LLVM does not take and as the
//! whole backend without the `llvm` feature.
//!
//! Each kernel becomes one function of the kernel ABI ([`crate::abi`]) in one JIT module.
//! Semantics are the graph interpreter's, on one element:
//! - `f32`/`f64` compute natively where that is exact (`+ - * /`, `sqrt`, `floor`, `ceil`,
//!   `round` half to even, NaN-propagating `max`/`min`); transcendentals, float `rem` (fmod) and
//!   `pow` call the `f64` helpers and round to the dtype, as the interpreter does (except `erf`
//!   and `exp` in vector loops: [`crate::vmath`]);
//! - `f16`/`bf16` are held in registers as `f32` values that are exactly representable in the
//!   dtype: every op rounds its result to the dtype (directly from `f64` for transcendentals),
//!   loads and stores convert exactly;
//! - integers wrap at their width; `div` truncates, `rem` has the sign of the dividend, `MIN / -1`
//!   wraps; division or remainder by zero and `pow` with a negative exponent return a status code
//!   instead of trapping; casts float → int saturate with NaN → 0 (Rust `as`);
//! - `select` evaluates only the chosen side when either side loads, divides or calls out, and a
//!   masked load branches around the access; loads whose index depends on loaded data are
//!   bounds-checked ([`Status::OutOfBounds`](crate::Status::OutOfBounds)).
//!
//! Vector loops of the plan are `f32x4` code (Cranelift's widest vectors).

mod emitter;

use crate::abi::{helper, Arg, Lib, ALL_LIBS};
use crate::aot::{capture, MachineCode};
use crate::plan::KernelPlan;
use crate::KernelFn;
use cranelift_codegen::ir::{types, AbiParam, FuncRef, Signature, Type};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_codegen::Context;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{FuncId, Linkage, Module};
use nnc_kernel::kernel::Kernel;
use std::collections::HashMap;

/// The helpers' references inside the function being emitted.
pub(crate) type CraneliftHelpers = HashMap<Lib, FuncRef>;

/// The `f32` lanes of Cranelift's vectors.
pub(crate) const LANES: u32 = 4;

/// A JIT module being filled with kernels.
pub(crate) struct CraneliftJit {
    module: JITModule,
    helpers: HashMap<Lib, FuncId>,
    /// Helper names by function index, to name the relocations of kept machine code.
    imports: HashMap<u32, &'static str>,
    kernel_signature: Signature,
    context: Context,
    builder_context: FunctionBuilderContext,
    /// Whether `fma` is a real fused instruction here (with AVX and FMA; otherwise a libcall).
    fma: bool,
    /// `NNC_CPU_DISASM`: print each function's IR and machine code.
    disassemble: bool,
}

/// A helper's argument type in Cranelift.
fn arg_type(a: Arg) -> Type {
    match a {
        Arg::F64 => types::F64,
        Arg::F32 => types::F32,
        Arg::I64 => types::I64,
        Arg::I32 => types::I32,
    }
}

impl CraneliftJit {
    /// A module for this host, with every helper declared; `verify` runs Cranelift's verifier on
    /// each function, `fma` allows fused multiply-adds where the host has them.
    pub fn new(verify: bool, fma: bool) -> Result<CraneliftJit, String> {
        let mut flags = settings::builder();
        flags.set("opt_level", "speed").map_err(|e| e.to_string())?;
        flags.set("is_pic", "false").map_err(|e| e.to_string())?;
        flags.set("enable_verifier", if verify { "true" } else { "false" }).map_err(|e| e.to_string())?;
        let isa = cranelift_native::builder()
            .map_err(|e| e.to_string())?
            .finish(settings::Flags::new(flags))
            .map_err(|e| e.to_string())?;
        let flag = |name: &str| isa.isa_flags().iter().any(|f| f.name == name && f.as_bool() == Some(true));
        let fma = fma && flag("has_avx") && flag("has_fma");
        let mut jit = JITBuilder::with_isa(isa, cranelift_module::default_libcall_names());
        let all: Vec<_> = ALL_LIBS.iter().filter_map(|&lib| Some((lib, helper(lib)?))).collect();
        for (_, h) in &all {
            jit.symbol(h.name, h.address);
        }
        let mut module = JITModule::new(jit);
        let (mut helpers, mut imports) = (HashMap::new(), HashMap::new());
        for (lib, h) in all {
            let mut sig = module.make_signature();
            sig.params.extend(h.params.iter().map(|&a| AbiParam::new(arg_type(a))));
            sig.returns.push(AbiParam::new(arg_type(h.ret)));
            let id = module.declare_function(h.name, Linkage::Import, &sig).map_err(|e| e.to_string())?;
            helpers.insert(lib, id);
            imports.insert(id.as_u32(), h.name);
        }
        let pointer = module.target_config().pointer_type();
        let mut kernel_signature = module.make_signature();
        kernel_signature.params.extend([AbiParam::new(pointer), AbiParam::new(types::I64), AbiParam::new(types::I64)]);
        kernel_signature.returns.push(AbiParam::new(types::I32));
        let context = module.make_context();
        Ok(CraneliftJit {
            module,
            helpers,
            imports,
            kernel_signature,
            context,
            builder_context: FunctionBuilderContext::new(),
            fma,
            disassemble: std::env::var_os("NNC_CPU_DISASM").is_some(),
        })
    }

    /// Compiles kernel `index` by its plan; with `keep_machine_code`, also returns its code for
    /// a bundle.
    pub fn compile(
        &mut self,
        index: usize,
        plan: &KernelPlan<'_>,
        keep_machine_code: bool,
    ) -> Result<(FuncId, Option<MachineCode>), String> {
        let id = self
            .module
            .declare_function(&format!("k{index}"), Linkage::Local, &self.kernel_signature)
            .map_err(|e| e.to_string())?;
        self.context.func.signature = self.kernel_signature.clone();
        {
            let mut b = FunctionBuilder::new(&mut self.context.func, &mut self.builder_context);
            let refs =
                self.helpers.iter().map(|(&lib, &f)| (lib, self.module.declare_func_in_func(f, b.func))).collect();
            emitter::emit_function(plan, &mut b, refs, self.fma)?;
            b.seal_all_blocks();
            b.finalize(self.module.target_config());
        }
        if self.disassemble {
            self.context.set_disasm(true);
            eprintln!("{}", self.context.func.display());
        }
        self.module.define_function(id, &mut self.context).map_err(|e| format!("cranelift: {e:?}"))?;
        let code = self.context.compiled_code().ok_or("cranelift kept no code")?;
        if self.disassemble {
            if let Some(vcode) = &code.vcode {
                eprintln!("{vcode}");
            }
        }
        let machine = match keep_machine_code {
            true => Some(capture(&self.context.func, &code.buffer, &self.imports)?),
            false => None,
        };
        self.module.clear_context(&mut self.context);
        Ok((id, machine))
    }

    /// Makes the module's code executable; returns it and each kernel's entry point.
    pub fn finish(mut self, ids: &[FuncId]) -> Result<(JITModule, Vec<KernelFn>), String> {
        self.module.finalize_definitions().map_err(|e| e.to_string())?;
        let functions = ids
            .iter()
            .map(|&id| {
                let p = self.module.get_finalized_function(id);
                // SAFETY: the function was defined with exactly the signature of `KernelFn`.
                unsafe { std::mem::transmute::<*const u8, KernelFn>(p) }
            })
            .collect();
        Ok((self.module, functions))
    }
}

/// Whether Cranelift compiles `kernel` (its plan is the check).
pub(crate) fn plan(kernel: &Kernel, vectorize: bool) -> Result<KernelPlan<'_>, String> {
    KernelPlan::new(kernel, if vectorize { LANES } else { 1 }, false)
}

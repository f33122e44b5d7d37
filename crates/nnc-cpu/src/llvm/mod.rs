//! Kernel IR → native code through LLVM (inkwell, LLVM 19), for the host's widest vectors
//! (AVX-512 or AVX2).
//!
//! The same functions as the Cranelift generator (the kernel ABI of [`crate::abi`], same
//! semantics), for kernels scheduled with vector loops of [`host_lanes`] `f32` lanes: Cranelift
//! stops at 128-bit vectors, LLVM uses the full width of the host's registers (16 lanes with
//! AVX-512: four times the arithmetic per instruction).
//!
//! The emitter stays simple and leaves the classic clean-ups to LLVM's `default<O3>` pipeline:
//! every private buffer is a stack array (SROA turns tiles indexed by constants into
//! registers), every mutable variable a stack slot (mem2reg), repeated loads and invariant
//! address arithmetic are GVN's and LICM's. What LLVM would not find by itself is spelled out
//! by the kernel's plan ([`crate::plan`]): loops marked `unroll` (and vector loops over a
//! register tile) are unrolled here, and `vector(w)` loops become `<w x float>` code directly
//! (loads contiguous in the lane are vector loads, masked where the kernel masks them; `c + a *
//! b` is one fused multiply-add, as in the Cranelift generator).
//!
//! Kernels using what this emitter does not cover (`f16`/`bf16`) come back with the reason and
//! are compiled by Cranelift instead. Each distinct kernel is a module of its own, which
//! becomes an object file (large code model) that [`crate::link`] turns into an image, kept in
//! the compiled-code cache ([`crate::code_cache`]); the kernels' images are concatenated into
//! one: the JIT and bundles load the same bytes. Everything goes through inkwell except one GEP
//! (see `Emitter::lane_addresses`).

use crate::code_cache::{CachedKernel, CodeCache, KeyParts};
use crate::link::{Image, LinkedKernels};
use crate::plan::KernelPlan;
use inkwell::attributes::AttributeLoc;
use inkwell::context::Context;
use inkwell::passes::PassBuilderOptions;
use inkwell::targets::{CodeModel, FileType, InitializationConfig, RelocMode, Target, TargetMachine};
use inkwell::OptimizationLevel;
use nnc_kernel::kernel::{Kernel, LoopKind, Stmt};
use std::collections::HashMap;
use std::sync::OnceLock;

mod emitter;

use emitter::{Cx, Emitter};

type R<X> = Result<X, String>;

/// The `f32` lanes of the host's widest vector registers LLVM can use (16 with AVX-512F, 8 with
/// AVX2, else 4), or `None` where LLVM cannot run.
pub fn host_lanes() -> Option<u32> {
    static LANES: OnceLock<Option<u32>> = OnceLock::new();
    *LANES.get_or_init(|| {
        if std::env::var_os("NNC_CPU_NO_LLVM").is_some() || !init() {
            return None;
        }
        let features = host_features();
        let has = |f: &str| features.split(',').any(|x| x == format!("+{f}"));
        Some(if has("avx512f") && has("avx512vl") && has("avx512dq") {
            16
        } else if has("avx2") && has("fma") {
            8
        } else {
            4
        })
    })
}

/// Whether vectors of `lanes` `i32` have a four-deep `u8 × i8` dot product here: AVX-512 VNNI
/// for 16 lanes; AVX-VNNI, or AVX-512 VNNI with VL, for 8.
pub fn host_int8_dot(lanes: u32) -> bool {
    let features = host_features();
    let has = |f: &str| features.split(',').any(|x| x == format!("+{f}"));
    match lanes {
        16 => has("avx512vnni"),
        8 => has("avxvnni") || (has("avx512vnni") && has("avx512vl")),
        _ => false,
    }
}

fn init() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| Target::initialize_native(&InitializationConfig::default()).is_ok())
}

/// The host's CPU features as LLVM names them (`+avx2,-avx512f,...`).
pub fn host_features() -> String {
    static FEATURES: OnceLock<String> = OnceLock::new();
    FEATURES.get_or_init(|| TargetMachine::get_host_cpu_features().to_string()).clone()
}

fn host_cpu() -> String {
    TargetMachine::get_host_cpu_name().to_string()
}

/// Compiles `kernels` (vector loops as wide as each kernel's schedule says), taking the code of
/// those `cache` has from it and adding the others; kernels the emitter does not cover come
/// back with the reason.
pub fn compile(kernels: &[Kernel], cache: Option<&CodeCache>) -> R<LinkedKernels> {
    if !init() {
        return Err("LLVM could not initialize the native target".into());
    }
    let (cpu, features) = (host_cpu(), host_features());
    let (major, minor, patch) = inkwell::support::get_llvm_version();
    let generator = format!("llvm {major}.{minor}.{patch}");
    let parts = KeyParts { cpu: &cpu, features: &features, generator: &generator };
    // `NNC_CPU_LLVM_IR` prints the IR of what is compiled: nothing comes from the cache then.
    let cache = cache.filter(|_| std::env::var_os("NNC_CPU_LLVM_IR").is_none());
    // Kernels with equal keys (a transformer's layers, a ResNet's blocks) are compiled once.
    let keys: Vec<String> = kernels.iter().map(|k| CodeCache::key(k, parts)).collect();
    let mut first_of: HashMap<&str, usize> = HashMap::new();
    let unique: Vec<usize> = (0..kernels.len()).filter(|&i| *first_of.entry(&keys[i]).or_insert(i) == i).collect();
    let mut code: HashMap<usize, R<CachedKernel>> =
        unique.iter().filter_map(|&i| Some((i, Ok(cache?.get(&keys[i])?)))).collect();
    let missing: Vec<usize> = unique.iter().copied().filter(|i| !code.contains_key(i)).collect();
    for (i, compiled) in compile_each(kernels, &missing, &cpu, &features) {
        if let (Some(cache), Ok(kernel)) = (cache, &compiled) {
            cache.put(&keys[i], kernel);
        }
        code.insert(i, compiled);
    }
    if let (Some(cache), true) = (cache, !missing.is_empty()) {
        cache.evict();
    }
    let cached = (0..kernels.len()).filter(|&i| !missing.contains(&first_of[keys[i].as_str()])).count();
    let mut whole = LinkedKernels {
        image: Image::default(),
        entries: Vec::with_capacity(kernels.len()),
        vectorized_loops: 0,
        features,
        cached,
    };
    // Kernels sharing code share its place in the image (and count its vector loops each).
    let mut placed: HashMap<usize, (R<u64>, usize)> = HashMap::new();
    for key in &keys {
        let first = first_of[key.as_str()];
        let (entry, vectorized_loops) = placed.entry(first).or_insert_with(|| {
            match code.remove(&first).unwrap_or_else(|| Err("not compiled".into())) {
                Ok(kernel) => (Ok(whole.image.append(kernel.image) + kernel.entry), kernel.vectorized_loops),
                Err(reason) => (Err(reason), 0),
            }
        });
        whole.vectorized_loops += *vectorized_loops;
        whole.entries.push(entry.clone());
    }
    release_freed_memory();
    Ok(whole)
}

/// Compiles the kernels at `indices`, each in a module of its own (so each can be cached
/// alone), on one thread per core taking the next kernel as it finishes one (LLVM contexts are
/// independent).
fn compile_each(kernels: &[Kernel], indices: &[usize], cpu: &str, features: &str) -> Vec<(usize, R<CachedKernel>)> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let worker = || -> Vec<(usize, R<CachedKernel>)> {
        let machine = target_machine(cpu, features);
        let mut done = Vec::new();
        loop {
            let j = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Some(&i) = indices.get(j) else { return done };
            let compiled = match &machine {
                Ok(machine) => compile_one(machine, &kernels[i], cpu, features),
                Err(e) => Err(e.clone()),
            };
            done.push((i, compiled));
        }
    };
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..cores.min(indices.len())).map(|_| s.spawn(worker)).collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect()
    })
}

/// Hands the memory LLVM freed back to the system: glibc keeps freed blocks in its arenas (one
/// per compile thread), tens of megabytes that a program running for hours would hold for
/// nothing.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn malloc_trim(pad: usize) -> i32;
        }
        // SAFETY: glibc's malloc_trim only returns unused memory to the system.
        unsafe { malloc_trim(0) };
    }
}

/// A target machine for this host: the large code model, so every address the code needs from
/// outside an instruction is an 8-byte absolute one (see `crate::link`) and the image loads
/// anywhere.
fn target_machine(cpu: &str, features: &str) -> R<TargetMachine> {
    let triple = TargetMachine::get_default_triple();
    let target = Target::from_triple(&triple).map_err(|e| format!("LLVM target: {e}"))?;
    target
        .create_target_machine(
            &triple,
            cpu,
            features,
            OptimizationLevel::Aggressive,
            RelocMode::Static,
            CodeModel::Large,
        )
        .ok_or_else(|| "LLVM could not create a target machine for this host".into())
}

/// Compiles one kernel in a module of its own; an error says why LLVM does not take it.
fn compile_one(machine: &TargetMachine, kernel: &Kernel, cpu: &str, features: &str) -> R<CachedKernel> {
    let context = Context::create();
    let (module, vectorized_loops) = optimized_module(&context, machine, kernel, cpu, features)?;
    if std::env::var_os("NNC_CPU_LLVM_IR").is_some() {
        eprintln!("{}", module.print_to_string().to_string_lossy());
    }
    let object =
        machine.write_to_memory_buffer(&module, FileType::Object).map_err(|e| format!("LLVM code generation: {e}"))?;
    let image = crate::link::link(object.as_slice())?;
    let entry = image.symbols.get(KERNEL_NAME).copied().ok_or_else(|| format!("LLVM lost {KERNEL_NAME}"))?;
    Ok(CachedKernel { image, entry, vectorized_loops })
}

/// The symbol of a kernel's function in its module.
const KERNEL_NAME: &str = "nnc_kernel";

/// One kernel's module, emitted and optimized, and how many of its loops became vector code.
fn optimized_module<'c>(
    context: &'c Context,
    machine: &TargetMachine,
    kernel: &Kernel,
    cpu: &str,
    features: &str,
) -> R<(inkwell::module::Module<'c>, usize)> {
    let plan = KernelPlan::new(kernel, vector_width(kernel), true)?;
    let module = context.create_module("nnc");
    module.set_triple(&machine.get_triple());
    module.set_data_layout(&machine.get_target_data().get_data_layout());
    let cx = Cx::new(context, module);
    let func = cx.module.add_function(KERNEL_NAME, cx.kernel_type, None);
    let vector_bits = (plan.width * 32).to_string();
    for (k, v) in [
        ("target-cpu", cpu),
        ("target-features", features),
        ("prefer-vector-width", vector_bits.as_str()),
        ("min-legal-vector-width", vector_bits.as_str()),
    ] {
        func.add_attribute(AttributeLoc::Function, context.create_string_attribute(k, v));
    }
    Emitter::new(&cx, &plan, func).function()?;
    let options = PassBuilderOptions::create();
    // The plan already vectorizes the loops that profit (`vector(w)`); LLVM's loop vectorizer
    // only adds runtime checks and remainder copies to the scalar loops left (digits_cnn: the
    // same run time, 15% less compile time without it).
    options.set_loop_vectorization(false);
    cx.module.run_passes("default<O3>", machine, options).map_err(|e| format!("LLVM passes: {e}"))?;
    Ok((cx.module, plan.vectorized_loops))
}

/// The lanes of a kernel's vector loops (the first one's; 1 without any).
fn vector_width(kernel: &Kernel) -> u32 {
    let mut width = 1;
    nnc_kernel::visit::visit_stmts(&kernel.body, &mut |s| {
        if let (1, Stmt::For { kind: LoopKind::Vector(w), .. }) = (width, s) {
            width = (*w).max(1);
        }
    });
    width
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::IMAGE_BASE;

    fn kernels(text: &str) -> Vec<Kernel> {
        let graph = nnc_ir::text::parse(text, "test.nnir").unwrap();
        let device = nnc_kernel::Device::cpu_with_vector(16);
        nnc_lower::compile(&graph, &device, None).unwrap().kernels
    }

    #[test]
    fn kernels_become_one_image_with_entry_points_and_relocations() {
        if host_lanes().is_none() {
            eprintln!("SKIPPED: LLVM cannot run on this host");
            return;
        }
        let ks = kernels(
            "graph g(%x: f32[64]) {\n  %e: f32[64] = exp(%x)\n  %t: f32[64] = sin(%e)\n  %s: f32[] = reduce_sum(%t) {axes = [0], keep_dims = false}\n  return %t, %s\n}\n",
        );
        let code = compile(&ks, None).unwrap();
        let entries: Vec<u64> = code.entries.iter().map(|e| *e.as_ref().unwrap()).collect();
        assert_eq!(entries.len(), ks.len());
        assert!(entries.iter().all(|&e| (e as usize) < code.image.bytes.len()));
        // `exp`'s constants come from the image's own constant pool, `sin` through a helper.
        let symbols: Vec<&str> = code.image.relocations.iter().map(|r| r.symbol.as_str()).collect();
        assert!(symbols.contains(&IMAGE_BASE), "{symbols:?}");
        assert!(symbols.iter().any(|s| s.starts_with("nnc_")), "{symbols:?}");
        assert!(code.vectorized_loops > 0);
    }

    #[test]
    fn integer_contractions_use_dot_product_instructions_where_the_host_has_them() {
        if !host_lanes().is_some_and(host_int8_dot) {
            eprintln!("SKIPPED: this host has no u8 x i8 dot products (VNNI) for LLVM to use");
            return;
        }
        let lanes = host_lanes().expect("checked");
        let device = nnc_kernel::Device { int8_dot: true, ..nnc_kernel::Device::cpu_with_vector(lanes) };
        let graph = nnc_testkit::graphs::quantized_linear(37, 64, 48);
        let program = nnc_lower::compile(&graph, &device, None).unwrap();
        let grouped: Vec<&Kernel> = program.kernels.iter().filter(|k| k.schedule.tile[2] == 4).collect();
        assert_eq!(grouped.len(), 1, "one contraction grouped four steps at a time");
        let (cpu, features) = (host_cpu(), host_features());
        let machine = target_machine(&cpu, &features).unwrap();
        let context = Context::create();
        let (module, _) = optimized_module(&context, &machine, grouped[0], &cpu, &features).unwrap();
        let ir = module.print_to_string().to_string();
        assert!(ir.contains("vpdpbusd"), "no dot-product instruction in\n{ir}");
    }

    #[test]
    fn half_precision_kernels_are_left_to_cranelift_with_the_reason() {
        if host_lanes().is_none() {
            eprintln!("SKIPPED: LLVM cannot run on this host");
            return;
        }
        let ks = kernels("graph g(%x: f16[8]) {\n  %y: f16[8] = add(%x, %x)\n  return %y\n}\n");
        let code = compile(&ks, None).unwrap();
        let reason = code.entries[0].as_ref().unwrap_err();
        assert!(reason.contains("f16"), "{reason}");
    }
}

//! CPU bundles: a program's machine code, memory plan and weights written to a folder by
//! [`write_bundle`] (`nnc compile MODEL --target cpu -o DIR`), and loaded by [`load_bundle`]
//! (`nnc run DIR`) without importing, optimizing, scheduling or generating code again.
//!
//! The folder holds the target-independent `manifest.json` and `weights.bin` of
//! [`nnc_kernel::bundle`], `kernels.bin` with Cranelift's machine code per kernel (see
//! [`crate::aot`]) and `kernels.image` with LLVM's linked image of the others (see
//! [`crate::link`]). The manifest records the architecture and instruction-set extensions the
//! code was built for; loading refuses a host that lacks any of them.

use crate::aot::{host_isa, LoadedCode, LoadedImage};
use crate::driver::{compile_kernels, EmitOptions, JitCode, KernelCode};
use crate::exec::{CodeOwner, CpuError, CpuOptions, CpuProgram, KernelRun};
use nnc_kernel::bundle::{invalid, BundleError, Code, Manifest, Relocation};
use nnc_kernel::program::Program;
use nnc_kernel::DeviceKind;
use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

const CODE_FILE: &str = "kernels.bin";
/// LLVM's linked image of kernels (see [`crate::link`]).
const IMAGE_FILE: &str = "kernels.image";
/// The manifest's `target_info` key of the CPU features LLVM's code was built for.
const LLVM_FEATURES: &str = "llvm_features";

fn bundle_error(e: BundleError) -> CpuError {
    match e {
        BundleError::Io { path, source } => CpuError::Bundle { path, message: source.to_string() },
        BundleError::Invalid { path, message } => CpuError::Bundle { path, message },
    }
}

/// Compiles `program` (scheduled for the CPU) to machine code and writes the bundle into `dir`.
/// Returns the manifest written.
pub fn write_bundle(program: &Program, dir: &Path) -> Result<Manifest, CpuError> {
    write_bundle_with(program, dir, &EmitOptions::default())
}

/// [`write_bundle`] with the code generator's options (`llvm: false`: Cranelift's code only).
pub fn write_bundle_with(program: &Program, dir: &Path, options: &EmitOptions) -> Result<Manifest, CpuError> {
    if program.device.kind != DeviceKind::Cpu {
        let message = "the program was scheduled for a GPU; compile it for Device::cpu()".to_string();
        return Err(CpuError::Program { program: program.fused.name.clone(), message });
    }
    let options = EmitOptions { keep_machine_code: true, ..*options };
    let jit = compile_kernels(&program.kernels, &options)?;
    write_bundle_from(program, &jit, dir)
}

/// Writes the bundle of `program` into `dir` from its code `jit`, compiled with
/// `keep_machine_code` (so the bytes are there to write).
pub fn write_bundle_from(program: &Program, jit: &JitCode, dir: &Path) -> Result<Manifest, CpuError> {
    if program.device.kind != DeviceKind::Cpu || jit.machine.len() != program.kernels.len() {
        let message = "the code was not compiled for this program's CPU kernels with `keep_machine_code`".to_string();
        return Err(CpuError::Program { program: program.fused.name.clone(), message });
    }
    let mut text: Vec<u8> = Vec::new();
    let mut code = Vec::with_capacity(jit.machine.len());
    let mut image_relocations = relocations_by_kernel(jit);
    for (i, m) in jit.machine.iter().enumerate() {
        code.push(match m {
            KernelCode::Cranelift(m) => {
                let offset = text.len().div_ceil(m.alignment as usize) * m.alignment as usize;
                text.resize(offset, 0);
                text.extend_from_slice(&m.bytes);
                Code::Machine { offset: offset as u64, bytes: m.bytes.len() as u64, relocations: m.relocations.clone() }
            }
            KernelCode::Linked { entry } => {
                Code::Linked { entry: *entry, relocations: image_relocations.remove(&i).unwrap_or_default() }
            }
        });
    }
    let (mut manifest, weights) = Manifest::of(program, "cpu", code);
    let (arch, flags) = host_isa().map_err(|message| CpuError::Bundle { path: dir.display().to_string(), message })?;
    manifest.target_info.insert("arch".into(), arch);
    manifest.target_info.insert("isa_flags".into(), flags.join(","));
    let mut files = vec![(CODE_FILE.to_string(), text)];
    if let Some((image, features)) = &jit.linked {
        let used: Vec<&str> = features.split(',').filter(|f| f.starts_with('+')).collect();
        manifest.target_info.insert(LLVM_FEATURES.into(), used.join(","));
        files.push((IMAGE_FILE.to_string(), image.bytes.clone()));
    }
    manifest.write(dir, &weights, &files).map_err(bundle_error)
}

/// LLVM's image relocations, each given to the kernel whose function holds it (the one with the
/// last entry point at or before it; the first kernel for any before every function).
fn relocations_by_kernel(jit: &crate::driver::JitCode) -> HashMap<usize, Vec<Relocation>> {
    let mut entries: Vec<(u64, usize)> = (jit.machine.iter().enumerate())
        .filter_map(|(i, m)| match m {
            KernelCode::Linked { entry } => Some((*entry, i)),
            KernelCode::Cranelift(_) => None,
        })
        .collect();
    entries.sort_unstable();
    let mut by_kernel: HashMap<usize, Vec<Relocation>> = HashMap::new();
    let Some((image, _)) = &jit.linked else { return by_kernel };
    for r in &image.relocations {
        let owner = match entries.partition_point(|&(e, _)| e <= r.offset) {
            0 => entries[0].1,
            k => entries[k - 1].1,
        };
        by_kernel.entry(owner).or_default().push(r.clone());
    }
    by_kernel
}

/// Loads a bundle written by [`write_bundle`]: its program, ready to run, and its manifest
/// (which names the inputs and outputs).
pub fn load_bundle(dir: &Path, options: &CpuOptions) -> Result<(CpuProgram, Manifest), CpuError> {
    let start = Instant::now();
    let bundle = Manifest::read(dir).map_err(bundle_error)?;
    let manifest = bundle.manifest.clone();
    let mpath = dir.join(nnc_kernel::bundle::MANIFEST_FILE);
    let fail = |message: String| bundle_error(invalid(&mpath, message));
    if manifest.target != "cpu" {
        return Err(fail(format!("a bundle for target `{}`, not `cpu`", manifest.target)));
    }
    check_isa(&manifest).map_err(&fail)?;
    let cpath = dir.join(CODE_FILE);
    let text = bundle.file(dir, CODE_FILE).map_err(bundle_error)?;
    let mut ranges = Vec::new();
    let mut image_relocations = Vec::new();
    for k in &manifest.kernels {
        match &k.code {
            Code::Machine { offset, bytes, relocations } => ranges.push((*offset, *bytes, relocations.as_slice())),
            Code::Linked { relocations, .. } => image_relocations.push(relocations),
            Code::File { .. } => return Err(fail(format!("kernel `{}` has no machine code", k.name))),
        }
    }
    let code = LoadedCode::load(text, &ranges)
        .map_err(|message| CpuError::Bundle { path: cpath.display().to_string(), message })?;
    let image = if image_relocations.is_empty() {
        None
    } else {
        check_llvm_features(&manifest).map_err(&fail)?;
        let ipath = dir.join(IMAGE_FILE);
        let bad = |message: String| CpuError::Bundle { path: ipath.display().to_string(), message };
        let bytes = bundle.file(dir, IMAGE_FILE).map_err(bundle_error)?;
        Some(LoadedImage::load(bytes, image_relocations.into_iter().flatten()).map_err(bad)?)
    };
    let (buffers, plan) = manifest.buffers(&bundle.weights).map_err(&fail)?;
    // Cranelift's kernels were loaded in manifest order; LLVM's are found by entry point.
    let mut machine = 0..;
    let mut kernels = Vec::with_capacity(manifest.kernels.len());
    for k in &manifest.kernels {
        let function = match (&k.code, &image) {
            (Code::Linked { entry, .. }, Some(image)) => image.function(*entry).map_err(&fail)?,
            _ => code.function(machine.next().expect("an unbounded range")),
        };
        kernels.push(KernelRun {
            name: k.name.clone(),
            function,
            groups: k.grid.iter().map(|&g| g as u64).product(),
            params: k.params.clone(),
            work: k.work,
        });
    }
    let outputs = manifest.outputs.iter().map(|o| o.buffer).collect();
    let interface = manifest.interface().map_err(&fail)?;
    let mut program = CpuProgram::from_parts(
        manifest.program.clone(),
        interface,
        buffers,
        outputs,
        kernels,
        plan,
        CodeOwner::Loaded(code, image),
        options.threads,
    )?;
    program.set_compile_time(start.elapsed());
    Ok((program, manifest))
}

/// LLVM's code runs only where every CPU feature it was built for is present.
fn check_llvm_features(manifest: &Manifest) -> Result<(), String> {
    let needed = manifest.target_info.get(LLVM_FEATURES).map(String::as_str).unwrap_or("");
    #[cfg(feature = "llvm")]
    {
        let host = crate::llvm::host_features();
        let missing: Vec<&str> = needed
            .split(',')
            .filter(|f| !f.is_empty() && !host.split(',').any(|h| h == *f))
            .map(|f| f.trim_start_matches('+'))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        Err(format!(
            "the code uses {} which this CPU lacks; compile the model again on this machine",
            missing.join(", ")
        ))
    }
    #[cfg(not(feature = "llvm"))]
    Err(format!(
        "the bundle's kernels were compiled by LLVM (for {needed}); this nnc was built without the `llvm` \
         feature and cannot check the CPU for them: compile the model again with this nnc"
    ))
}

/// The code runs only where the architecture is the same and every extension it was built
/// with (SSE4.1, AVX, FMA, ...) is present.
fn check_isa(manifest: &Manifest) -> Result<(), String> {
    let (arch, flags) = host_isa()?;
    let built = manifest.target_info.get("arch").map(String::as_str).unwrap_or("unknown");
    if built != arch {
        return Err(format!("the code is for {built}, this machine is {arch}"));
    }
    let needed = manifest.target_info.get("isa_flags").map(String::as_str).unwrap_or("");
    let missing: Vec<&str> = needed.split(',').filter(|f| !f.is_empty() && !flags.iter().any(|h| h == f)).collect();
    if !missing.is_empty() {
        return Err(format!(
            "the code uses {} which this CPU lacks; compile the model again on this machine",
            missing.join(", ")
        ));
    }
    Ok(())
}

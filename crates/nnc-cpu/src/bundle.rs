//! CPU bundles: a program's machine code, memory plan and weights written to a folder by
//! [`write_bundle`] (`nnc compile MODEL --target cpu -o DIR`), and loaded by [`load_bundle`]
//! (`nnc run DIR`) without importing, optimizing, scheduling or running Cranelift again.
//!
//! The folder holds the target-independent `manifest.json` and `weights.bin` of
//! [`nnc_kernel::bundle`], and `kernels.bin`, every kernel's machine code (see [`crate::aot`]).
//! The manifest records the architecture and instruction-set extensions the code was built for;
//! loading refuses a host that lacks any of them.

use crate::aot::{host_isa, LoadedCode};
use crate::emit::{compile_kernels, EmitOptions};
use crate::exec::{CodeOwner, CpuError, CpuOptions, CpuProgram, KernelRun};
use nnc_kernel::bundle::{invalid, BundleError, Code, Manifest};
use nnc_kernel::program::Program;
use nnc_kernel::schedule::DeviceKind;
use std::path::Path;
use std::time::Instant;

const CODE_FILE: &str = "kernels.bin";

fn bundle_error(e: BundleError) -> CpuError {
    match e {
        BundleError::Io { path, source } => CpuError::Bundle { path, message: source.to_string() },
        BundleError::Invalid { path, message } => CpuError::Bundle { path, message },
    }
}

/// Compiles `program` (scheduled for the CPU) to machine code and writes the bundle into `dir`.
/// `compile_ms` lists the time of the phases before this one; code generation is added.
/// Returns the manifest written.
pub fn write_bundle(program: &Program, dir: &Path, mut compile_ms: Vec<(String, f64)>) -> Result<Manifest, CpuError> {
    if program.device.kind != DeviceKind::Cpu {
        let message = "the program was scheduled for a GPU; compile it for Device::cpu()".to_string();
        return Err(CpuError::Program { program: program.fused.name.clone(), message });
    }
    let start = Instant::now();
    let options = EmitOptions { keep_machine_code: true, ..EmitOptions::default() };
    let jit = compile_kernels(&program.kernels, &options)?;
    compile_ms.push(("codegen".into(), start.elapsed().as_secs_f64() * 1e3));
    let mut text: Vec<u8> = Vec::new();
    let mut code = Vec::with_capacity(jit.machine.len());
    for m in &jit.machine {
        let offset = text.len().div_ceil(m.alignment as usize) * m.alignment as usize;
        text.resize(offset, 0);
        text.extend_from_slice(&m.bytes);
        code.push(Code::Machine {
            offset: offset as u64,
            bytes: m.bytes.len() as u64,
            relocations: m.relocations.clone(),
        });
    }
    let (mut manifest, weights) = Manifest::of(program, "cpu", code);
    let (arch, flags) = host_isa().map_err(|message| CpuError::Bundle { path: dir.display().to_string(), message })?;
    manifest.target_info.insert("arch".into(), arch);
    manifest.target_info.insert("isa_flags".into(), flags.join(","));
    manifest.compile_ms = compile_ms;
    manifest.write(dir, &weights).map_err(bundle_error)?;
    nnc_kernel::bundle::write_file(&dir.join(CODE_FILE), &text).map_err(bundle_error)?;
    Ok(manifest)
}

/// Loads a bundle written by [`write_bundle`]: its program, ready to run, and its manifest
/// (which names the inputs and outputs).
pub fn load_bundle(dir: &Path, options: &CpuOptions) -> Result<(CpuProgram, Manifest), CpuError> {
    let start = Instant::now();
    let (manifest, weights) = Manifest::read(dir).map_err(bundle_error)?;
    let mpath = dir.join("manifest.json");
    let fail = |message: String| bundle_error(invalid(&mpath, message));
    if manifest.target != "cpu" {
        return Err(fail(format!("a bundle for target `{}`, not `cpu`", manifest.target)));
    }
    check_isa(&manifest).map_err(&fail)?;
    let cpath = dir.join(CODE_FILE);
    let text = std::fs::read(&cpath)
        .map_err(|e| CpuError::Bundle { path: cpath.display().to_string(), message: e.to_string() })?;
    let mut ranges = Vec::with_capacity(manifest.kernels.len());
    for k in &manifest.kernels {
        match &k.code {
            Code::Machine { offset, bytes, relocations } => ranges.push((*offset, *bytes, relocations.as_slice())),
            Code::File { .. } => return Err(fail(format!("kernel `{}` has no machine code", k.name))),
        }
    }
    let code = LoadedCode::load(&text, &ranges)
        .map_err(|message| CpuError::Bundle { path: cpath.display().to_string(), message })?;
    let (buffers, plan) = manifest.buffers(&weights).map_err(&fail)?;
    let kernels = manifest
        .kernels
        .iter()
        .enumerate()
        .map(|(i, k)| KernelRun {
            name: k.name.clone(),
            function: code.function(i),
            groups: k.grid.iter().map(|&g| g as u64).product(),
            params: k.params.clone(),
            work: k.work,
        })
        .collect();
    let outputs = manifest.outputs.iter().map(|o| o.buffer).collect();
    let mut program = CpuProgram::from_parts(
        manifest.program.clone(),
        buffers,
        outputs,
        kernels,
        plan,
        CodeOwner::Loaded(code),
        options.threads,
    )?;
    program.set_compile_time(start.elapsed());
    Ok((program, manifest))
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

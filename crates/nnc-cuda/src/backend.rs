//! The CUDA target behind the backend contract: kernels compiled by NVRTC and run through the
//! driver where one exists, and bundles of CUDA C++ with its PTX everywhere.

use crate::runtime::CudaProgram;
use crate::CudaError;
use nnc_kernel::backend::{Backend, BackendError, Checked, ErrorKind, Executable, Interface};
use nnc_kernel::bundle::{Code, Manifest};
use nnc_kernel::program::Program;
use nnc_kernel::{Device, IndexWidth};
use std::path::Path;
use std::time::Duration;

/// The architectures a bundle carries PTX for.
pub const BUNDLE_ARCHS: [&str; 2] = ["sm_80", "sm_90"];

/// CUDA C++ through NVRTC, run on device 0.
#[derive(Clone, Debug, Default)]
pub struct CudaBackend;

fn error(e: CudaError) -> BackendError {
    let kind = match &e {
        CudaError::NoNvrtc(_) | CudaError::NoPtxas(_) | CudaError::NoDriver(_) => ErrorKind::Unavailable,
        CudaError::Unsupported { .. } => ErrorKind::Unsupported,
        CudaError::Nvrtc { .. } | CudaError::Ptxas { .. } => ErrorKind::Compile,
        _ => ErrorKind::Run,
    };
    BackendError::new("cuda", kind, e.to_string())
}

impl Backend for CudaBackend {
    fn name(&self) -> &'static str {
        "cuda"
    }

    /// The portable GPU baseline without WebGPU's limits: no cap on storage buffers or loop
    /// iterations, 64-bit indices where 32 bits may not do, and C's lazy `?:`.
    fn device(&self) -> Device {
        Device {
            max_buffers: u32::MAX,
            max_loop_iterations: 0,
            index_width: IndexWidth::PreferNarrow,
            lazy_select: true,
            ..Device::gpu()
        }
    }

    fn compile(&self, program: &Program) -> Result<Box<dyn Executable>, BackendError> {
        Ok(Box::new(CudaProgram::new(program).map_err(error)?))
    }

    /// `manifest.json`, `weights.bin`, `kernels.cu` (one translation unit) and its PTX for
    /// sm_80 and sm_90 (`kernels.sm_80.ptx`, ...); grids whose y or z exceed CUDA's limits are
    /// recorded linearised, as the kernels expect them launched.
    fn check(&self, program: &Program) -> Result<Vec<String>, BackendError> {
        generate(program).map(|_| vec![format!("code: CUDA C++ compiled by NVRTC for {}", BUNDLE_ARCHS.join(" and "))])
    }

    fn write_bundle(&self, program: &Program, dir: &Path) -> Result<(Manifest, Vec<String>), BackendError> {
        let files = generate(program)?;
        let code = program
            .kernels
            .iter()
            .enumerate()
            .map(|(g, k)| Code::File { path: "kernels.cu".into(), entry: crate::entry_name(g, k) })
            .collect();
        let (mut manifest, weights) = Manifest::of(program, self.name(), code);
        for (entry, kernel) in manifest.kernels.iter_mut().zip(&program.kernels) {
            let dims = crate::launch_dims(kernel).map_err(error)?;
            (entry.grid, entry.workgroup) = (dims.grid, dims.block);
        }
        let manifest = manifest
            .write(dir, &weights, &files)
            .map_err(|e| BackendError::new("cuda", ErrorKind::Compile, e.to_string()))?;
        Ok((manifest, Vec::new()))
    }
}

/// `kernels.cu` and its PTX for each of [`BUNDLE_ARCHS`], as bundle files.
fn generate(program: &Program) -> Result<Vec<(String, Vec<u8>)>, BackendError> {
    let source = crate::print_program(program).map_err(error)?;
    let mut files = vec![("kernels.cu".to_string(), source.clone().into_bytes())];
    for arch in BUNDLE_ARCHS {
        let ptx = crate::compile_ptx(&source, arch).map_err(error)?;
        files.push((format!("kernels.{arch}.ptx"), ptx.into_bytes()));
    }
    Ok(files)
}

impl Executable for CudaProgram {
    fn interface(&self) -> &Interface {
        CudaProgram::interface(self)
    }

    fn run(&mut self, inputs: Checked<'_>, outputs: &mut [&mut [u8]]) -> Result<(), BackendError> {
        let results = CudaProgram::run(self, inputs.tensors()).map_err(error)?;
        for (out, t) in outputs.iter_mut().zip(&results) {
            if out.len() != t.bytes().len() {
                return Err(BackendError::new("cuda", ErrorKind::Run, "an output buffer of the wrong size"));
            }
            out.copy_from_slice(t.bytes());
        }
        Ok(())
    }

    fn time_kernel(&mut self, inputs: Checked<'_>, k: usize, repeats: u32) -> Result<Vec<Duration>, BackendError> {
        CudaProgram::time_kernel(self, inputs.tensors(), k, repeats).map_err(error)
    }

    fn kernel_names(&self) -> Vec<String> {
        CudaProgram::kernel_names(self)
    }

    fn device_name(&self) -> String {
        CudaProgram::device_name(self)
    }

    fn timing_method(&self) -> &'static str {
        "host clock around each launch and a stream synchronization (no CUDA events yet)"
    }
}

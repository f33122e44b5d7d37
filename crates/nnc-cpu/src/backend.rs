//! The CPU target behind the backend contract: native code for this host, run on a thread pool,
//! and bundles of that code.

use crate::exec::{CpuError, CpuOptions, CpuProgram};
use nnc_kernel::backend::{Backend, BackendError, ErrorKind, Executable};
use nnc_kernel::bundle::Manifest;
use nnc_kernel::program::Program;
use nnc_kernel::Device;
use std::path::Path;

/// Native code for this CPU (LLVM for its widest vectors, Cranelift for the rest).
#[derive(Clone, Debug, Default)]
pub struct CpuBackend {
    pub options: CpuOptions,
}

fn error(e: CpuError) -> BackendError {
    let kind = match &e {
        CpuError::Kernel { .. } | CpuError::Memory(_) => ErrorKind::Run,
        CpuError::Emit(_) => ErrorKind::Unsupported,
        _ => ErrorKind::Compile,
    };
    BackendError::new("cpu", kind, e.to_string())
}

impl Backend for CpuBackend {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn device(&self) -> Device {
        crate::jit_device()
    }

    /// The processor's model and the features code is generated for, the vector width, and
    /// the threads kernels run on.
    fn fingerprint(&self) -> String {
        let threads =
            self.options.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        format!(
            "cpu {} [{}] {} lanes, {threads} threads",
            crate::host_cpu_name(),
            crate::host_features(),
            self.device().vector
        )
    }

    fn compile(&self, program: &Program) -> Result<Box<dyn Executable>, BackendError> {
        Ok(Box::new(CpuProgram::with_options(program, &self.options).map_err(error)?))
    }

    fn check(&self, program: &Program) -> Result<Vec<String>, BackendError> {
        let code = crate::compile_kernels(&program.kernels, &self.options.emit).map_err(|e| error(e.into()))?;
        Ok(code_notes(&code, program.device.vector))
    }

    fn write_bundle(&self, program: &Program, dir: &Path) -> Result<(Manifest, Vec<String>), BackendError> {
        let options = crate::EmitOptions { keep_machine_code: true, ..self.options.emit };
        let code = crate::compile_kernels(&program.kernels, &options).map_err(|e| error(e.into()))?;
        let manifest = crate::bundle::write_bundle_from(program, &code, dir).map_err(error)?;
        Ok((manifest, code_notes(&code, program.device.vector)))
    }

    fn load_bundle(&self, dir: &Path) -> Result<Box<dyn Executable>, BackendError> {
        Ok(Box::new(crate::bundle::load_bundle(dir, &self.options).map_err(error)?.0))
    }
}

/// Which code generator compiled the kernels, and why any went to Cranelift.
fn code_notes(code: &crate::JitCode, lanes: u32) -> Vec<String> {
    let cached = match code.cached_kernels {
        0 => String::new(),
        n => format!(", {n} from the code cache"),
    };
    let mut notes = vec![format!(
        "code: {} of {} kernels by LLVM ({lanes} f32 lanes{cached}), the others by Cranelift",
        code.llvm_kernels,
        code.len()
    )];
    notes.extend(code.llvm_notes.iter().map(|reason| format!("  {reason}")));
    notes
}

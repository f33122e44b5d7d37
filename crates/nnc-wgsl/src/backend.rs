//! The WGSL target behind the backend contract: shaders run with wgpu, and bundles of them.

use crate::runtime::WgslProgram;
use crate::webgpu::{requirements, WebGpuDevice};
use crate::WgslError;
use nnc_kernel::backend::{Backend, BackendError, Checked, ErrorKind, Executable, Interface};
use nnc_kernel::bundle::{Code, Manifest};
use nnc_kernel::program::Program;
use nnc_kernel::Device;
use std::path::Path;
use std::time::Duration;

/// WGSL compute shaders on a wgpu adapter: the first one, or the first whose name contains
/// `adapter`. With `webgpu`, kernels are scheduled for that WebGPU device's limits instead of
/// the local adapter's, and a bundle that needs more than it offers is refused.
#[derive(Clone, Debug, Default)]
pub struct WgslBackend {
    pub adapter: Option<String>,
    pub webgpu: Option<WebGpuDevice>,
}

fn error(e: WgslError) -> BackendError {
    let kind = match &e {
        WgslError::NoAdapter(_) => ErrorKind::Unavailable,
        WgslError::Unsupported { .. } => ErrorKind::Unsupported,
        WgslError::Naga { .. } => ErrorKind::Compile,
        WgslError::Wgpu(_) | WgslError::Data(_) => ErrorKind::Run,
    };
    BackendError::new("wgsl", kind, e.to_string())
}

impl Backend for WgslBackend {
    fn name(&self) -> &'static str {
        "wgsl"
    }

    /// The portable GPU baseline, with as many storage buffers per kernel as the adapter binds
    /// (WebGPU's default 8 where there is no adapter).
    fn device(&self) -> Device {
        if let Some(webgpu) = &self.webgpu {
            return webgpu.device();
        }
        let limits = crate::runtime::adapter_limits(self.adapter.as_deref());
        let max_buffers = limits.map_or(8, |l| l.max_storage_buffers_per_shader_stage);
        Device { max_buffers, ..Device::gpu() }
    }

    /// The adapter, its backend and driver (the device data derive from them).
    fn fingerprint(&self) -> String {
        if let Some(webgpu) = &self.webgpu {
            return format!("wgsl for WebGPU {:?} {:?}", webgpu.limits.entries(), webgpu.features);
        }
        match crate::runtime::adapter_fingerprint(self.adapter.as_deref()) {
            Ok(adapter) => format!("wgsl {adapter}"),
            Err(e) => format!("wgsl without an adapter ({e})"),
        }
    }

    fn compile(&self, program: &Program) -> Result<Box<dyn Executable>, BackendError> {
        Ok(Box::new(WgslProgram::new(program, self.adapter.as_deref()).map_err(error)?))
    }

    /// Every shader validated by naga, and the program within the WebGPU device's limits where
    /// there is one.
    fn check(&self, program: &Program) -> Result<Vec<String>, BackendError> {
        self.needs(program)?;
        crate::print_program(program).map_err(error)?;
        Ok(vec![format!("code: {} shaders validated by naga", program.kernels.len())])
    }

    /// `manifest.json`, `weights.bin` and `kernels/<kernel>.wgsl`, each shader validated by naga
    /// and runnable on any adapter (see [`crate::print_program`]); the manifest's `requires`
    /// lists the WebGPU features and limits the kernels need.
    fn write_bundle(&self, program: &Program, dir: &Path) -> Result<(Manifest, Vec<String>), BackendError> {
        let needs = self.needs(program)?;
        let texts = crate::print_program(program).map_err(error)?;
        let files: Vec<(String, Vec<u8>)> = program
            .kernels
            .iter()
            .zip(texts)
            .map(|(k, text)| (format!("kernels/{}.wgsl", k.name), text.into_bytes()))
            .collect();
        let code = files.iter().map(|(f, _)| Code::File { path: f.clone(), entry: "main".into() }).collect();
        let (mut manifest, weights) = Manifest::of(program, self.name(), code);
        manifest.requires = Some(needs.requirements);
        manifest.target_info.insert(
            "bindings".into(),
            "binding k of group 0 = params[k], a storage buffer; bool and 8/16-bit integers are widened to 32 \
             bits, 64-bit integers are pairs of u32 words (low first)"
                .into(),
        );
        let manifest = manifest
            .write(dir, &weights, &files)
            .map_err(|e| BackendError::new("wgsl", ErrorKind::Compile, e.to_string()))?;
        Ok((manifest, Vec::new()))
    }
}

impl WgslBackend {
    /// What `program` needs of a WebGPU device; an error listing everything it needs beyond the
    /// backend's WebGPU device, where it has one.
    fn needs(&self, program: &Program) -> Result<crate::webgpu::Needs, BackendError> {
        let needs = requirements(program);
        match self.webgpu.as_ref().map(|w| w.unmet(&needs)).filter(|u| !u.is_empty()) {
            None => Ok(needs),
            Some(unmet) => Err(BackendError::new(
                "wgsl",
                ErrorKind::Unsupported,
                format!(
                    "the program needs more than the WebGPU device offers: {} (give the adapter's limits and \
                     features with --device FILE.json)",
                    unmet.join("; ")
                ),
            )),
        }
    }
}

impl Executable for WgslProgram {
    fn interface(&self) -> &Interface {
        WgslProgram::interface(self)
    }

    fn run(&mut self, inputs: Checked<'_>, outputs: &mut [&mut [u8]]) -> Result<(), BackendError> {
        let results = WgslProgram::run(self, inputs.tensors()).map_err(error)?;
        for (out, t) in outputs.iter_mut().zip(&results) {
            if out.len() != t.bytes().len() {
                return Err(BackendError::new("wgsl", ErrorKind::Run, "an output buffer of the wrong size"));
            }
            out.copy_from_slice(t.bytes());
        }
        Ok(())
    }

    fn time_kernel(&mut self, inputs: Checked<'_>, k: usize, repeats: u32) -> Result<Vec<Duration>, BackendError> {
        WgslProgram::time_kernel(self, inputs.tensors(), k, repeats).map_err(error)
    }

    fn kernel_names(&self) -> Vec<String> {
        WgslProgram::kernel_names(self)
    }

    fn device_name(&self) -> String {
        self.adapter_name()
    }

    fn submissions(&self) -> Option<u64> {
        Some(WgslProgram::submissions(self))
    }

    /// Timestamp queries where the adapter has them; otherwise each kernel is its own
    /// submission, waited for on the host, so the times include a submission's cost.
    fn timing_method(&self) -> &'static str {
        if self.timestamps() {
            "GPU timestamps at the start and end of each kernel's compute pass"
        } else {
            "one queue submission per kernel, waited for on the host (the adapter has no timestamp queries)"
        }
    }
}

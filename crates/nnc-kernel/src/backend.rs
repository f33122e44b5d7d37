//! The backend contract: what every target implements, so that the runtime's sessions, the
//! command line, the conformance suite and the tuner drive any of them the same way.
//!
//! A [`Backend`] states its [`Device`] as data (what the passes schedule and legalize for),
//! compiles a [`Program`] scheduled for that device into an [`Executable`], and, where the
//! target has an artifact on disk, writes and loads bundles. An [`Executable`] runs on inputs
//! checked once, above every backend, by [`Interface::check`] (the only maker of [`Checked`]),
//! writes its outputs into the caller's buffers, and times one kernel at a time for profiles and
//! the tuner.

use crate::bundle::Manifest;
use crate::device::Device;
use crate::program::{BufferKind, Fused, Program};
use nnc_ir::{DType, TensorData, TensorType};
use std::path::Path;
use std::time::Duration;

/// An input or output of a compiled program: its name (without `%`), dtype and concrete shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Port {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
}

impl Port {
    /// The bytes of a tensor of this port's type.
    pub fn bytes(&self) -> usize {
        self.shape.iter().product::<usize>() * self.dtype.size_bytes()
    }

    pub fn ty(&self) -> TensorType {
        TensorType::new(self.dtype, self.shape.iter().copied())
    }
}

/// A compiled program's inputs and outputs, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    pub program: String,
    pub inputs: Vec<Port>,
    pub outputs: Vec<Port>,
}

/// Inputs that do not match an [`Interface`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("`{program}` takes {expected} input(s), {found} given")]
    Count { program: String, expected: usize, found: usize },
    #[error("input %{name}: expected {expected}, found {found}")]
    Type { name: String, expected: String, found: String },
}

/// Inputs checked against an [`Interface`]: only [`Interface::check`] makes one, so a backend
/// given a `Checked` may rely on every input's dtype and shape.
#[derive(Clone, Copy, Debug)]
pub struct Checked<'a>(&'a [TensorData]);

impl<'a> Checked<'a> {
    /// The inputs, in interface order.
    pub fn tensors(&self) -> &'a [TensorData] {
        self.0
    }
}

impl Interface {
    /// The interface of a fused program: its graph inputs (by input number) and outputs.
    pub fn of(fused: &Fused) -> Interface {
        let port = |b: &crate::program::ProgramBuffer, name: &str| Port {
            name: name.to_string(),
            dtype: b.dtype,
            shape: b.shape.iter().map(|&d| d.max(0) as usize).collect(),
        };
        let mut inputs: Vec<(usize, Port)> = fused
            .buffers
            .iter()
            .filter_map(|b| match b.kind {
                BufferKind::Input(n) => Some((n, port(b, &b.name))),
                _ => None,
            })
            .collect();
        inputs.sort_by_key(|(n, _)| *n);
        let outputs = fused
            .outputs
            .iter()
            .zip(&fused.output_names)
            .map(|(id, name)| port(&fused.buffers[id.index()], name))
            .collect();
        Interface { program: fused.name.clone(), inputs: inputs.into_iter().map(|(_, p)| p).collect(), outputs }
    }

    /// Checks the count, dtypes and shapes of `inputs`: the one check every run goes through.
    pub fn check<'a>(&self, inputs: &'a [TensorData]) -> Result<Checked<'a>, InputError> {
        if inputs.len() != self.inputs.len() {
            return Err(InputError::Count {
                program: self.program.clone(),
                expected: self.inputs.len(),
                found: inputs.len(),
            });
        }
        for (port, t) in self.inputs.iter().zip(inputs) {
            if t.dtype() != port.dtype || t.shape() != port.shape.as_slice() {
                return Err(InputError::Type {
                    name: port.name.clone(),
                    expected: port.ty().to_string(),
                    found: TensorType::new(t.dtype(), t.shape().iter().copied()).to_string(),
                });
            }
        }
        Ok(Checked(inputs))
    }
}

/// What went wrong in a backend, with the target's name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{target}: {message}")]
pub struct BackendError {
    pub target: &'static str,
    pub kind: ErrorKind,
    pub message: String,
}

/// The kinds of [`BackendError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The target is not available here (no GPU, no driver, no adapter, no NVRTC).
    Unavailable,
    /// The program uses something the target cannot express.
    Unsupported,
    /// Compiling, writing or loading failed.
    Compile,
    /// Running failed (a kernel's status, a lost device, memory).
    Run,
}

impl BackendError {
    pub fn new(target: &'static str, kind: ErrorKind, message: impl Into<String>) -> BackendError {
        BackendError { target, kind, message: message.into() }
    }
}

/// A target: a code generator and the runtime that runs its code.
pub trait Backend {
    /// The name the registry, the command line and reports use (`cpu`, `wgsl`, ...).
    fn name(&self) -> &'static str;

    /// What the target offers kernels, as data: the passes schedule and legalize for it.
    fn device(&self) -> Device;

    /// What a measured schedule depends on besides the kernel, as one line: the processor and
    /// its features, the thread count, the adapter and driver. Tuned schedules are kept per
    /// fingerprint; by default the target's name and its [`Device`] data.
    fn fingerprint(&self) -> String {
        format!("{} {:?}", self.name(), self.device())
    }

    /// Compiles `program`, scheduled and legalized for [`Self::device`], into code ready to run.
    fn compile(&self, program: &Program) -> Result<Box<dyn Executable>, BackendError>;

    /// Generates and checks the code of `program` without loading it onto a device (what
    /// `nnc compile --check` does); returns notes on how the code was made.
    fn check(&self, program: &Program) -> Result<Vec<String>, BackendError> {
        self.compile(program).map(|_| Vec::new())
    }

    /// Writes `program`'s code, plan and weights as a bundle into `dir`; returns the manifest
    /// and notes on how the code was made.
    fn write_bundle(&self, _program: &Program, _dir: &Path) -> Result<(Manifest, Vec<String>), BackendError> {
        Err(BackendError::new(self.name(), ErrorKind::Unsupported, "this target writes no bundle"))
    }

    /// Loads a bundle this target wrote, ready to run.
    fn load_bundle(&self, _dir: &Path) -> Result<Box<dyn Executable>, BackendError> {
        Err(BackendError::new(self.name(), ErrorKind::Unsupported, "nnc cannot run this target's bundles itself"))
    }
}

/// A compiled program, ready to run as often as needed.
pub trait Executable {
    /// Its inputs and outputs.
    fn interface(&self) -> &Interface;

    /// Runs on `inputs` and writes each output's bytes (row-major, little-endian, the output's
    /// dtype) into `outputs[k]`, which has exactly [`Port::bytes`] bytes.
    fn run(&mut self, inputs: Checked<'_>, outputs: &mut [&mut [u8]]) -> Result<(), BackendError>;

    /// Runs the whole program on `inputs` once (so every buffer holds real data), then kernel
    /// `k` alone `repeats` times; returns each repetition's time.
    fn time_kernel(&mut self, inputs: Checked<'_>, k: usize, repeats: u32) -> Result<Vec<Duration>, BackendError>;

    /// The names of the kernels, in launch order.
    fn kernel_names(&self) -> Vec<String>;

    /// What it runs on, for messages (`llvmpipe (Vulkan)`, `NVIDIA H100 (sm_90)`, `cpu`).
    fn device_name(&self) -> String;

    /// Command submissions to the device made so far, for targets that count them (a GPU queue).
    fn submissions(&self) -> Option<u64> {
        None
    }

    /// Runs the whole program once and returns each kernel's time in launch order, each
    /// measured where it runs in the program (its inputs as the kernels before left them), or
    /// `None` where the target cannot time kernels inside a run (a GPU queue, one submission).
    fn time_each_kernel(&mut self, _inputs: Checked<'_>) -> Result<Option<Vec<Duration>>, BackendError> {
        Ok(None)
    }

    /// How [`Self::time_kernel`] measures, for profiles to say.
    fn timing_method(&self) -> &'static str {
        "host clock around each kernel"
    }
}

/// Runs `exec` on `inputs` (checked here) and returns the outputs as tensors, their memory
/// allocated fallibly.
pub fn run_to_tensors(exec: &mut dyn Executable, inputs: &[TensorData]) -> Result<Vec<TensorData>, RunError> {
    let interface = exec.interface().clone();
    let checked = interface.check(inputs)?;
    let mut buffers = interface
        .outputs
        .iter()
        .map(|p| nnc_ir::size::try_vec(p.bytes(), 0u8, || format!("output %{}", p.name)))
        .collect::<Result<Vec<Vec<u8>>, _>>()?;
    let mut slices: Vec<&mut [u8]> = buffers.iter_mut().map(Vec::as_mut_slice).collect();
    exec.run(checked, &mut slices)?;
    interface
        .outputs
        .iter()
        .zip(buffers)
        .map(|(p, bytes)| {
            TensorData::from_bytes(p.dtype, p.shape.clone(), bytes.into())
                .map_err(|e| RunError::Backend(BackendError::new("run", ErrorKind::Run, e.to_string())))
        })
        .collect()
}

/// Why [`run_to_tensors`] failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Memory(#[from] nnc_ir::size::OutOfMemory),
    #[error(transparent)]
    Backend(#[from] BackendError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interfaces_check_inputs_once() {
        let program = crate::program::testing::add_relu();
        let interface = Interface::of(&program.fused);
        assert_eq!(interface.inputs, vec![Port { name: "x".into(), dtype: DType::F32, shape: vec![2, 3] }]);
        assert_eq!(interface.outputs[0].bytes(), 24);
        let good = [TensorData::from_vec(vec![2, 3], &[0f32; 6])];
        assert_eq!(interface.check(&good).unwrap().tensors().len(), 1);
        let wrong = [TensorData::from_vec(vec![3, 2], &[0f32; 6])];
        let e = interface.check(&wrong).unwrap_err();
        assert_eq!(e.to_string(), "input %x: expected f32[2, 3], found f32[3, 2]");
        assert!(matches!(interface.check(&[]), Err(InputError::Count { expected: 1, found: 0, .. })));
    }
}

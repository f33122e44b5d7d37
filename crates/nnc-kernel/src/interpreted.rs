//! The Kernel-IR interpreter as a backend: kernels scheduled for a GPU or a CPU run with their
//! parallel semantics checked (races, out-of-bounds accesses, divergent barriers), slowly. It
//! is the oracle the compiled backends are compared with, behind the same contract.

use crate::backend::{Backend, BackendError, Checked, ErrorKind, Executable, Interface};
use crate::device::{Device, DeviceKind};
use crate::program::Program;
use std::time::Duration;

/// The interpreter, for kernels scheduled for `device`.
pub struct InterpretedBackend {
    pub device: Device,
}

impl Backend for InterpretedBackend {
    fn name(&self) -> &'static str {
        match self.device.kind {
            DeviceKind::Gpu => "kernel-interp",
            DeviceKind::Cpu => "kernel-interp-cpu",
        }
    }

    fn device(&self) -> Device {
        self.device
    }

    fn compile(&self, program: &Program) -> Result<Box<dyn Executable>, BackendError> {
        Ok(Box::new(Interpreted {
            name: self.name(),
            interface: Interface::of(&program.fused),
            program: program.clone(),
        }))
    }
}

struct Interpreted {
    name: &'static str,
    interface: Interface,
    program: Program,
}

impl Interpreted {
    fn fail(&self, e: impl std::fmt::Display) -> BackendError {
        BackendError::new(self.name, ErrorKind::Run, e.to_string())
    }
}

impl Executable for Interpreted {
    fn interface(&self) -> &Interface {
        &self.interface
    }

    fn run(&mut self, inputs: Checked<'_>, outputs: &mut [&mut [u8]]) -> Result<(), BackendError> {
        let results = self.program.run_interpreted(inputs.tensors()).map_err(|e| self.fail(e))?;
        for (out, t) in outputs.iter_mut().zip(&results) {
            if out.len() != t.bytes().len() {
                return Err(self.fail("an output buffer of the wrong size"));
            }
            out.copy_from_slice(t.bytes());
        }
        Ok(())
    }

    fn time_kernel(&mut self, inputs: Checked<'_>, k: usize, repeats: u32) -> Result<Vec<Duration>, BackendError> {
        self.program.time_kernel_interpreted(inputs.tensors(), k, repeats).map_err(|e| self.fail(e))
    }

    fn kernel_names(&self) -> Vec<String> {
        self.program.kernels.iter().map(|k| k.name.clone()).collect()
    }

    fn device_name(&self) -> String {
        format!("the Kernel-IR interpreter ({:?} schedules)", self.program.device.kind).to_lowercase()
    }
}

//! Running a graph on a backend, through the backend contract (`nnc_kernel::backend`), and
//! comparing its outputs with the graph interpreter's (the oracle) and with the Kernel-IR
//! interpreter's for the very same program (which tells a code-generation bug from a lowering
//! one).

use crate::compare::{close_under, NonFinite, PROGRAM_TOLERANCE};
use nnc_ir::{Graph, TensorData};
use nnc_kernel::backend::{run_to_tensors, Backend, ErrorKind};
use nnc_kernel::program::Program;
use nnc_kernel::Device;

/// The graph in its text form, for failure messages.
pub fn text(graph: &Graph) -> String {
    nnc_ir::text::print(graph)
}

/// The fused program and every kernel, printed, for failure messages.
pub fn dump(program: &Program) -> String {
    let mut s = format!("{}", program.fused);
    for k in &program.kernels {
        s.push_str(&format!("{k}"));
    }
    s
}

/// `graph` compiled for `device` (fusion priced for it), panicking with the graph on failure.
pub fn compile_for(graph: &Graph, device: &Device) -> Program {
    nnc_lower::compile(graph, device, None)
        .unwrap_or_else(|e| panic!("compile `{}` for {:?}: {e}\n{}", graph.name, device.kind, text(graph)))
}

/// Whether `backend` can run programs here: `Err` says why not (no adapter, no driver). Found
/// by compiling a one-kernel program, so every other error is the backend's to report.
pub fn availability(backend: &dyn Backend) -> Result<(), String> {
    let program = compile_for(&crate::graphs::softmax(&[2, 8], -1), &backend.device());
    match backend.compile(&program) {
        Err(e) if e.kind == ErrorKind::Unavailable => Err(e.to_string()),
        _ => Ok(()),
    }
}

/// Runs `program` on `backend`: compiled into an executable, run once on `inputs`.
pub fn run_on(backend: &dyn Backend, program: &Program, inputs: &[TensorData]) -> Result<Vec<TensorData>, String> {
    let mut executable = backend.compile(program).map_err(|e| e.to_string())?;
    run_to_tensors(executable.as_mut(), inputs).map_err(|e| e.to_string())
}

/// What a graph's outputs on a backend are compared with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Oracles {
    /// The graph interpreter, and the Kernel-IR interpreter running the same program.
    Both,
    /// The graph interpreter only: the backend *is* the Kernel-IR interpreter.
    GraphInterpreter,
}

/// Compiles `graph` for `device`, runs it on `backend` and compares every output with the
/// [`Oracles`] (within [`PROGRAM_TOLERANCE`], under the target's [`NonFinite`] promise).
/// Returns the program; the error holds the graph and the program.
pub fn check_on(
    backend: &dyn Backend,
    device: &Device,
    graph: &Graph,
    inputs: &[TensorData],
    oracles: Oracles,
    non_finite: NonFinite,
) -> Result<Program, String> {
    let name = backend.name();
    let expected = nnc_interp::run(graph, inputs).map_err(|e| format!("graph interpreter: {e}\n{}", text(graph)))?;
    let program =
        nnc_lower::compile(graph, device, None).map_err(|e| format!("compile for {name}: {e}\n{}", text(graph)))?;
    let context = || format!("\n{}\n{}", text(graph), dump(&program));
    let found = run_on(backend, &program, inputs).map_err(|e| format!("run on {name}: {e}{}", context()))?;
    if found.len() != expected.len() {
        return Err(format!("{name}: {} outputs, expected {}", found.len(), expected.len()));
    }
    for (k, (e, f)) in expected.iter().zip(&found).enumerate() {
        close_under(&format!("{name} output {k} vs the graph interpreter"), e, f, PROGRAM_TOLERANCE, non_finite)
            .map_err(|m| m + &context())?;
    }
    if oracles == Oracles::Both {
        let interpreted =
            program.run_interpreted(inputs).map_err(|e| format!("kernel interpreter: {e}{}", context()))?;
        for (k, (i, f)) in interpreted.iter().zip(&found).enumerate() {
            let what = format!("{name} output {k} vs the Kernel-IR interpreter");
            close_under(&what, i, f, PROGRAM_TOLERANCE, non_finite).map_err(|m| m + &context())?;
        }
    }
    Ok(program)
}

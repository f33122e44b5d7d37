//! Helpers of the passes' tests: the test kit's deterministic inputs, fixed graphs and
//! comparisons (`nnc-testkit`), and checking a graph's programs for the GPU and the CPU on the
//! Kernel-IR interpreter, where the kernels' structure can then be inspected.

// Not every test binary uses every helper.
#![allow(dead_code, unused_imports)]

pub use nnc_testkit::check::{compile_for, dump, text};
pub use nnc_testkit::compare::compare;
pub use nnc_testkit::graphs::*;
pub use nnc_testkit::inputs::{inputs_for, tensor, Rng};

use nnc_ir::{Graph, TensorData};
use nnc_kernel::interpreted::InterpretedBackend;
use nnc_kernel::kernel::{Kernel, Stmt, Strategy};
use nnc_kernel::program::Program;
use nnc_kernel::Device;
use nnc_lower::compile;
use nnc_lower::fuse::FuseOptions;
use nnc_testkit::check::{check_on, Oracles};
use nnc_testkit::NonFinite;

/// [`compile`] with fusion off: one kernel per node.
pub fn compile_unfused(graph: &Graph, device: &Device) -> Program {
    let options = FuseOptions { fuse: false, ..FuseOptions::default() };
    compile(graph, device, Some(&options)).unwrap_or_else(|e| panic!("compile unfused: {e}"))
}

/// The program compiled for `device`, run by the Kernel-IR interpreter (which reports races and
/// out-of-bounds accesses), matches the graph interpreter.
pub fn check_device(graph: &Graph, inputs: &[TensorData], device: &Device) -> Result<Program, String> {
    let interpreter = InterpretedBackend { device: *device };
    check_on(&interpreter, device, graph, inputs, Oracles::GraphInterpreter, NonFinite::Ieee)
}

/// [`check_device`] on the GPU and the CPU; returns the two programs.
pub fn check(graph: &Graph, inputs: &[TensorData]) -> Result<(Program, Program), String> {
    let gpu = check_device(graph, inputs, &Device::gpu())?;
    let cpu = check_device(graph, inputs, &Device::cpu())?;
    Ok((gpu, cpu))
}

/// Every kernel of `program`, printed, separated by blank lines.
pub fn kernels_text(program: &Program) -> String {
    program.kernels.iter().map(|k| format!("{k}")).collect::<Vec<_>>().join("\n")
}

pub fn strategies(program: &Program) -> Vec<Strategy> {
    program.kernels.iter().map(|k| k.schedule.strategy).collect()
}

/// The single kernel of `program` (panics with a dump otherwise).
pub fn only_kernel(program: &Program) -> &Kernel {
    assert_eq!(program.kernels.len(), 1, "expected one kernel:\n{}", dump(program));
    &program.kernels[0]
}

/// How many statements of `stmts` (recursively) satisfy `pred`.
pub fn count_stmts(stmts: &[Stmt], pred: &mut impl FnMut(&Stmt) -> bool) -> usize {
    let mut n = 0;
    nnc_kernel::visit::visit_stmts(stmts, &mut |s| {
        if pred(s) {
            n += 1;
        }
    });
    n
}

/// An upper bound of the transcendental operations (`nnc_kernel::cost::is_transcendental`)
/// `program` executes: each counted once per iteration of the loops around it (the costlier
/// side of every branch and `select`), times the invocations its kernel launches. What the
/// scheduler really runs, where the fusion cost model only predicts it.
pub fn executed_transcendentals(program: &Program) -> f64 {
    fn count(e: &nnc_kernel::expr::Expr) -> f64 {
        use nnc_kernel::expr::Expr;
        let transcendental = matches!(e, Expr::Unary(op, _) if nnc_kernel::cost::is_transcendental(*op));
        let own = if transcendental { 1.0 } else { 0.0 };
        match e {
            Expr::Select(c, a, b) => own + count(c) + count(a).max(count(b)),
            _ => {
                let mut n = own;
                e.for_each_child(|c| n += count(c));
                n
            }
        }
    }
    fn go(stmts: &[Stmt]) -> f64 {
        stmts
            .iter()
            .map(|s| match s {
                Stmt::For { extent, body, .. } => extent.as_int().unwrap_or(1) as f64 * go(body),
                Stmt::Let { value, .. } | Stmt::Assign { value, .. } | Stmt::Store { value, .. } => count(value),
                Stmt::Local { init, .. } => count(init),
                Stmt::If { cond, then, els } => count(cond) + go(then).max(go(els)),
                Stmt::Barrier => 0.0,
            })
            .sum()
    }
    program
        .kernels
        .iter()
        .map(|k| {
            let invocations: u64 = k.launch.grid.iter().chain(&k.launch.workgroup).map(|&n| n as u64).product();
            invocations as f64 * go(&k.body)
        })
        .sum()
}

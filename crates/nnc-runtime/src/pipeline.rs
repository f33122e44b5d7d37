//! The compile pipeline from a graph with static shapes to a scheduled [`Program`], timed per
//! phase so `nnc compile --stats`, `nnc bench` and [`crate::Session`] report the same figures.

use crate::tuning::cache::TunedSchedules;
use crate::tuning::{schedule_kernels, TuningUse};
use nnc_ir::Graph;
use nnc_kernel::program::Program;
use nnc_kernel::Device;
use nnc_lower::fuse_for;
use std::time::Instant;

/// Milliseconds per compile phase, in order (`optimize`, `fuse`, `schedule`, then the
/// backend's own such as `codegen`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Phases(pub Vec<(String, f64)>);

impl Phases {
    /// Runs `f`, recording its time under `name`.
    pub fn time<T>(&mut self, name: &str, f: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = f();
        self.0.push((name.to_string(), start.elapsed().as_secs_f64() * 1e3));
        out
    }

    pub fn total_ms(&self) -> f64 {
        self.0.iter().map(|p| p.1).sum()
    }
}

impl std::fmt::Display for Phases {
    /// `optimize 8.1 ms, fuse 2.0 ms, ...`
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|(n, ms)| format!("{n} {ms:.1} ms")).collect();
        write!(f, "{}", parts.join(", "))
    }
}

/// Optimizes (e-graph rewriting, unless `optimize` is false), fuses, schedules (with the
/// `tuned` schedules where they apply) and legalizes `graph` for `device`, timing each phase
/// into `phases`; returns the program and how tuned records were used. Errors name the phase
/// that failed.
pub fn compile_timed(
    graph: &Graph,
    device: &Device,
    optimize: bool,
    tuned: Option<&TunedSchedules>,
    phases: &mut Phases,
) -> Result<(Program, TuningUse), String> {
    let optimized = if optimize {
        let o = phases.time("optimize", || nnc_opt::optimize(graph, &nnc_opt::OptOptions::default()));
        o.map_err(|e| format!("cannot optimize: {e}"))?.graph
    } else {
        graph.clone()
    };
    let fused = phases.time("fuse", || fuse_for(&optimized, device, None)).map_err(|e| format!("cannot fuse: {e}"))?;
    let (kernels, usage) = phases.time("schedule", || schedule_kernels(&fused, device, tuned))?;
    Ok((Program { fused, kernels, device: *device }, usage))
}

//! Per-kernel profiles: each kernel of a compiled program timed where it runs inside whole runs
//! (where the backend can: the CPU), or else alone after a whole run that leaves its inputs in
//! place, with its share of the run, the arithmetic rate and memory rate its own counts give, its
//! schedule and the graph nodes it covers. `nnc bench --profile` prints one; the tuner spends its
//! budget by the shares. Timing inside whole runs costs `samples` runs whatever the number of
//! kernels (a model whose run takes a minute is profiled in minutes, not hours).

use nnc_ir::TensorData;
use nnc_kernel::backend::{BackendError, Executable};
use nnc_kernel::program::Program;
use nnc_kernel::stats::ProgramStats;
use serde::Serialize;
use std::time::Duration;

/// What a profile says about a kernel besides its time: known at compile time.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KernelInfo {
    pub name: String,
    /// Its schedule, in short form (`tiled_matmul tile=4x16x1 v=8`).
    pub schedule: String,
    /// Whether the schedule came from tuned records.
    pub tuned: bool,
    /// The graph nodes it computes (ONNX node names for an imported model).
    pub covers: Vec<String>,
    pub flops: f64,
    /// Bytes read and written, as an ideal cache would move them.
    pub bytes: u64,
}

impl KernelInfo {
    /// One per kernel of `program`; `tuned[k]` says whether kernel k's schedule was tuned.
    pub fn of(program: &Program, tuned: &[bool]) -> Vec<KernelInfo> {
        let stats = ProgramStats::of(&program.fused);
        program
            .kernels
            .iter()
            .zip(&stats.kernels)
            .enumerate()
            .map(|(k, (kernel, s))| KernelInfo {
                name: kernel.name.clone(),
                schedule: kernel.schedule.to_string(),
                tuned: tuned.get(k).copied().unwrap_or(false),
                covers: kernel.covers.clone(),
                flops: s.flops,
                bytes: s.bytes(),
            })
            .collect()
    }
}

/// One kernel's line of a profile.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KernelProfile {
    /// Launch order.
    pub index: usize,
    pub median_ms: f64,
    /// Of the sum of all kernels' medians.
    pub share: f64,
    pub gflops: Option<f64>,
    pub gbytes_per_s: Option<f64>,
    #[serde(flatten)]
    pub info: KernelInfo,
}

/// Every kernel of a program, slowest first.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Profile {
    pub kernels: Vec<KernelProfile>,
    /// The sum of the kernels' medians.
    pub total_ms: f64,
    /// Timed samples per kernel.
    pub samples: u32,
    /// How the backend measures a kernel.
    pub timing: String,
}

/// The median of `times`, in milliseconds (0 for none).
pub fn median_ms(times: &[Duration]) -> f64 {
    let mut ms: Vec<f64> = times.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    ms.get(ms.len() / 2).copied().unwrap_or(0.0)
}

/// Times each kernel of `exec` `samples` times on `inputs` (checked here): inside whole runs
/// where the backend can, else alone. `info` is [`KernelInfo::of`] the program (empty for a
/// bundle: names only).
pub fn profile(
    exec: &mut dyn Executable,
    inputs: &[TensorData],
    info: &[KernelInfo],
    samples: u32,
) -> Result<Profile, BackendError> {
    let names = exec.kernel_names();
    let interface = exec.interface().clone();
    let checked = interface
        .check(inputs)
        .map_err(|e| BackendError::new("profile", nnc_kernel::backend::ErrorKind::Run, e.to_string()))?;
    let samples = samples.max(1);
    let mut in_runs: Vec<Vec<Duration>> = Vec::new();
    while in_runs.len() < samples as usize {
        match exec.time_each_kernel(checked)? {
            Some(times) if times.len() == names.len() => in_runs.push(times),
            _ => break,
        }
    }
    let inside_runs = in_runs.len() == samples as usize;
    let mut kernels = Vec::with_capacity(names.len());
    for (k, name) in names.iter().enumerate() {
        let times = match inside_runs {
            true => in_runs.iter().map(|run| run[k]).collect(),
            false => exec.time_kernel(checked, k, samples)?,
        };
        let info = info.get(k).cloned().unwrap_or_else(|| KernelInfo {
            name: name.clone(),
            schedule: String::new(),
            tuned: false,
            covers: Vec::new(),
            flops: 0.0,
            bytes: 0,
        });
        let median_ms = median_ms(&times);
        let rate = |amount: f64| (amount > 0.0 && median_ms > 0.0).then(|| amount / (median_ms * 1e6));
        kernels.push(KernelProfile {
            index: k,
            median_ms,
            share: 0.0,
            gflops: rate(info.flops),
            gbytes_per_s: rate(info.bytes as f64),
            info,
        });
    }
    let total_ms: f64 = kernels.iter().map(|k| k.median_ms).sum();
    for k in &mut kernels {
        k.share = if total_ms > 0.0 { k.median_ms / total_ms } else { 0.0 };
    }
    kernels.sort_by(|a, b| b.median_ms.total_cmp(&a.median_ms));
    let timing = match inside_runs {
        true => format!("each kernel where it runs in whole runs; {}", exec.timing_method()),
        false => format!("each kernel alone after a whole run; {}", exec.timing_method()),
    };
    Ok(Profile { kernels, total_ms, samples, timing })
}

impl std::fmt::Display for Profile {
    /// A table, slowest kernel first.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} kernels, {:.3} ms in all (median of {} runs each; {})",
            self.kernels.len(),
            self.total_ms,
            self.samples,
            self.timing
        )?;
        writeln!(
            f,
            "{:>9} {:>6} {:>8} {:>7}  {:<28} {:<34} covers",
            "ms", "share", "GFLOP/s", "GB/s", "kernel", "schedule"
        )?;
        for k in &self.kernels {
            let rate = |r: Option<f64>| r.map_or("-".to_string(), |r| format!("{r:.1}"));
            let covers = match k.info.covers.len() {
                0..=3 => k.info.covers.join(", "),
                n => format!("{}, ... {} ({n} nodes)", k.info.covers[0], k.info.covers[n - 1]),
            };
            let schedule = if k.info.tuned { format!("{} (tuned)", k.info.schedule) } else { k.info.schedule.clone() };
            writeln!(
                f,
                "{:>9.3} {:>5.1}% {:>8} {:>7}  {:<28} {:<34} {covers}",
                k.median_ms,
                k.share * 100.0,
                rate(k.gflops),
                rate(k.gbytes_per_s),
                k.info.name,
                schedule,
            )?;
        }
        Ok(())
    }
}

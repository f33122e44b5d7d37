//! The search behind `nnc tune`: measure the schedules of a model's kernels and keep the
//! fastest that computes what the default computes.
//!
//! 1. The model is compiled with default schedules and profiled: each kernel's share of the run
//!    decides how much of the budget it gets. Kernels with equal computations (equal
//!    [`structural_key`]s) are tuned once.
//! 2. For each kernel, slowest share first, the candidates of the schedule space are ranked by a
//!    cost estimate and measured, each compiled as a program of that one kernel whose operands
//!    are the model's weights and pseudo-random inputs: one run whose outputs must match the
//!    default schedule's (tolerance by dtype), two samples after which a candidate a quarter
//!    slower than the best so far stops, then at least five in all (more for kernels shorter
//!    than a fifth of a millisecond), compared by their median. The fastest is timed again in
//!    alternation with the default and wins only if it is still 2% faster.
//! 3. The model is compiled again with the winners. Where the backend can time each kernel
//!    inside a run (the CPU), both programs are run alternately and a winner that is not also
//!    faster in the model (its inputs as the kernels before it leave them in the caches) goes
//!    back to its default. The tuned model's outputs are compared with the default program's,
//!    and both are timed in alternation, so the before and after latencies come from the same
//!    minutes of the same machine.
//!
//! The budget bounds the search (step 2); when it runs out the kernels measured so far keep
//! their results and the rest their defaults.

use super::cache::{kernel_key, Measurement, Record, TunedSchedules, NNC_VERSION};
use super::schedule_kernels;
use crate::profile::{median_ms, profile, KernelInfo};
use nnc_ir::{DType, Graph, TensorData};
use nnc_kernel::backend::{run_to_tensors, Backend, Executable};
use nnc_kernel::expr::BufId;
use nnc_kernel::kernel::{Compute, Kernel, Schedule, Strategy};
use nnc_kernel::program::{BufferKind, Fused, Group, Program};
use nnc_kernel::Device;
use nnc_lower::space::{candidates, structural_key, SPACE_VERSION};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Makes the candidate schedules (each with its legalized kernel) of a group; the default
/// first. [`candidates`] unless a test plants its own.
pub type Space = dyn Fn(&Fused, usize, &Device) -> Vec<(Schedule, Kernel)>;

/// How `tune` searches.
pub struct TuneOptions<'a> {
    /// Time for the search (step 2).
    pub budget: Duration,
    /// Timed samples per candidate that is not stopped early (at least 5).
    pub samples: u32,
    pub space: &'a Space,
}

impl Default for TuneOptions<'_> {
    fn default() -> Self {
        TuneOptions { budget: Duration::from_secs(60), samples: 5, space: &candidates }
    }
}

/// What the search reports as it goes, for a progress bar.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// The default program is compiled and profiled; `kernels` distinct kernels to tune.
    Profiled { kernels: usize, default_ms: f64 },
    /// Kernel `index` of `kernels` starts, with so many candidates.
    Kernel { index: usize, name: String, candidates: usize },
    /// One more candidate measured.
    Candidate,
}

/// One distinct kernel's outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelResult {
    pub name: String,
    /// Kernels of the model with this computation.
    pub instances: usize,
    /// Of the default program's kernel time.
    pub share: f64,
    /// Floating-point operations of one run of the kernel (for rates).
    pub flops: f64,
    pub default_ms: Option<f64>,
    pub best_ms: Option<f64>,
    /// Where the backend times kernels inside a run and the tuned schedule is kept: the
    /// kernel's time in the model (summed over its instances), default and tuned schedule.
    pub in_model_ms: Option<(f64, f64)>,
    /// The record to keep (none where the kernel was not tuned).
    pub record: Option<Record>,
    /// Why it was not tuned (one schedule, budget spent, its default fails on synthetic
    /// inputs, ...).
    pub skipped: Option<String>,
}

/// What `tune` found.
#[derive(Clone, Debug, PartialEq)]
pub struct TuneReport {
    pub kernels: Vec<KernelResult>,
    /// Median latency of the whole model, default and tuned schedules, measured alternately.
    pub before_ms: f64,
    pub after_ms: f64,
    /// Time the search took (step 2), against the budget.
    pub search: Duration,
    pub budget_ran_out: bool,
    pub fingerprint: String,
    /// Where the tuned model's outputs differ from the default's beyond the tolerance (each
    /// kernel was checked alone, so this would be a bug to report).
    pub outputs_differ: Option<String>,
}

impl TuneReport {
    /// The records of the kernels tuned.
    pub fn records(&self) -> Vec<Record> {
        self.kernels.iter().filter_map(|k| k.record.clone()).collect()
    }
}

/// Tunes the kernels of `graph` (static shapes, already optimized or not: it is optimized
/// here) for `backend`, running the model on `inputs`.
pub fn tune(
    graph: &Graph,
    backend: &dyn Backend,
    inputs: &[TensorData],
    options: &TuneOptions<'_>,
    progress: &mut dyn FnMut(Event),
) -> Result<TuneReport, String> {
    let device = backend.device();
    let fingerprint = backend.fingerprint();
    let (default_program, _) = crate::compile_timed(graph, &device, true, None, &mut crate::Phases::default())?;
    let fused = default_program.fused.clone();
    let mut default_exec = backend.compile(&default_program).map_err(|e| e.to_string())?;
    let info = KernelInfo::of(&default_program, &[]);
    let shares: Vec<f64> = {
        let p = profile(default_exec.as_mut(), inputs, &info, 3).map_err(|e| e.to_string())?;
        let mut by_index = vec![0.0; info.len()];
        p.kernels.iter().for_each(|k| by_index[k.index] = k.share);
        by_index
    };

    // Distinct computations, largest share first.
    let mut distinct: Vec<(String, usize, f64, usize)> = Vec::new(); // key, first group, share, instances
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut results = Vec::new();
    let keys: Vec<Option<String>> =
        (0..fused.groups.len()).map(|g| structural_key(&fused, g).map(|k| kernel_key(&k))).collect();
    for (g, key) in keys.iter().enumerate() {
        let Some(key) = key.clone() else { continue };
        match seen.get(&key) {
            Some(&i) => {
                distinct[i].2 += shares[g];
                distinct[i].3 += 1;
            }
            None => {
                seen.insert(key.clone(), distinct.len());
                distinct.push((key, g, shares[g], 1));
            }
        }
    }
    distinct.sort_by(|a, b| b.2.total_cmp(&a.2));
    progress(Event::Profiled {
        kernels: distinct.len(),
        default_ms: median_ms(&time_runs(default_exec.as_mut(), inputs, 3)?),
    });

    let start = Instant::now();
    let mut share_left: f64 = distinct.iter().map(|d| d.2).sum();
    let mut budget_ran_out = false;
    for (index, (key, g, share, instances)) in distinct.iter().enumerate() {
        let name = fused.groups[*g].name.clone();
        let mut result = KernelResult {
            name: name.clone(),
            instances: *instances,
            share: *share,
            flops: info[*g].flops,
            default_ms: None,
            best_ms: None,
            in_model_ms: None,
            record: None,
            skipped: None,
        };
        let left = options.budget.saturating_sub(start.elapsed());
        if left.is_zero() {
            budget_ran_out = true;
            result.skipped = Some("the budget was spent".into());
            results.push(result);
            continue;
        }
        // This kernel's part of what is left, by its share of what is left to tune.
        let part = if share_left > 0.0 { left.mul_f64((share / share_left).clamp(0.0, 1.0)) } else { left };
        share_left -= share;
        let deadline = Instant::now() + part.max(Duration::from_millis(200)).min(left);
        let cands = (options.space)(&fused, *g, &device);
        progress(Event::Kernel { index, name: name.clone(), candidates: cands.len() });
        if cands.len() < 2 {
            result.skipped = Some("its template has one schedule".into());
            results.push(result);
            continue;
        }
        match tune_kernel(&fused, *g, cands, backend, &device, options, deadline, progress) {
            Ok((default_ms, best_ms, measured)) => {
                let best = measured.iter().find(|m| m.outcome == "best").map(|m| m.schedule);
                result.default_ms = Some(default_ms);
                result.best_ms = Some(best_ms);
                result.record = best.map(|best| Record {
                    key: key.clone(),
                    kernel: name,
                    device: fingerprint.clone(),
                    space_version: SPACE_VERSION,
                    nnc_version: NNC_VERSION.to_string(),
                    default: measured[0].schedule,
                    best,
                    candidates: measured,
                });
            }
            Err(why) => result.skipped = Some(why),
        }
        if Instant::now() >= deadline && start.elapsed() >= options.budget {
            budget_ran_out = true;
        }
        results.push(result);
    }
    let search = start.elapsed();

    // The model with the winners. Where the backend times kernels inside a run, each winner
    // must also be faster there (a kernel alone misses how the kernels before it leave the
    // caches); those that are not go back to their defaults.
    let compile_tuned = |results: &[KernelResult]| -> Result<Box<dyn Executable>, String> {
        let mut tuned = TunedSchedules::default();
        tuned.insert(&results.iter().filter_map(|r| r.record.clone()).collect::<Vec<_>>());
        let (kernels, _) = schedule_kernels(&fused, &device, Some(&tuned))?;
        backend.compile(&Program { fused: fused.clone(), kernels, device }).map_err(|e| e.to_string())
    };
    let mut tuned_exec = compile_tuned(&results)?;
    if confirm_in_model(default_exec.as_mut(), tuned_exec.as_mut(), inputs, &keys, &mut results)? {
        tuned_exec = compile_tuned(&results)?;
    }
    let outputs_differ = mismatch(
        &run_to_tensors(tuned_exec.as_mut(), inputs).map_err(|e| e.to_string())?,
        &run_to_tensors(default_exec.as_mut(), inputs).map_err(|e| e.to_string())?,
    );
    let (mut before, mut after) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        before.extend(time_runs(default_exec.as_mut(), inputs, 3)?);
        after.extend(time_runs(tuned_exec.as_mut(), inputs, 3)?);
    }
    Ok(TuneReport {
        kernels: results,
        before_ms: median_ms(&before),
        after_ms: median_ms(&after),
        search,
        budget_ran_out,
        fingerprint,
        outputs_differ,
    })
}

/// Times every kernel of both programs inside whole runs (alternately, seven each) and reverts
/// the record of each kernel whose tuned schedule is not 2% faster there than its default;
/// returns whether any was reverted. Does nothing where the backend cannot time kernels inside
/// a run.
fn confirm_in_model(
    default: &mut dyn Executable,
    tuned: &mut dyn Executable,
    inputs: &[TensorData],
    keys: &[Option<String>],
    results: &mut [KernelResult],
) -> Result<bool, String> {
    fn each(exec: &mut dyn Executable, inputs: &[TensorData]) -> Result<Option<Vec<Duration>>, String> {
        let interface = exec.interface().clone();
        let checked = interface.check(inputs).map_err(|e| e.to_string())?;
        exec.time_each_kernel(checked).map_err(|e| e.to_string())
    }
    let (mut d, mut t): (Vec<Vec<Duration>>, Vec<Vec<Duration>>) = (Vec::new(), Vec::new());
    for _ in 0..7 {
        let (Some(a), Some(b)) = (each(default, inputs)?, each(tuned, inputs)?) else { return Ok(false) };
        d.push(a);
        t.push(b);
    }
    // The median of kernel k's times, summed over the kernels with `key`.
    let in_model = |runs: &[Vec<Duration>], key: &str| -> f64 {
        keys.iter()
            .enumerate()
            .filter(|(_, k)| k.as_deref() == Some(key))
            .map(|(g, _)| median_ms(&runs.iter().filter_map(|r| r.get(g).copied()).collect::<Vec<_>>()))
            .sum()
    };
    let mut reverted = false;
    for result in results.iter_mut() {
        let Some(record) = result.record.as_mut() else { continue };
        if record.best == record.default {
            continue;
        }
        let (before, after) = (in_model(&d, &record.key), in_model(&t, &record.key));
        if after < 0.98 * before {
            result.in_model_ms = Some((before, after));
            continue;
        }
        for m in &mut record.candidates {
            if m.schedule == record.best {
                m.outcome = format!("not faster in the model ({after:.4} ms against {before:.4} ms)");
            } else if m.schedule == record.default {
                m.outcome = "best".into();
            }
        }
        record.best = record.default;
        result.best_ms = result.default_ms;
        reverted = true;
    }
    Ok(reverted)
}

/// Times `n` whole runs (after one untimed).
fn time_runs(exec: &mut dyn Executable, inputs: &[TensorData], n: u32) -> Result<Vec<Duration>, String> {
    run_to_tensors(exec, inputs).map_err(|e| e.to_string())?;
    (0..n)
        .map(|_| {
            let t = Instant::now();
            run_to_tensors(exec, inputs).map_err(|e| e.to_string())?;
            Ok(t.elapsed())
        })
        .collect()
}

/// Measures the candidates of group `g` (the default first) until `deadline`, then times the
/// default and the fastest again in alternation: the fastest wins only if it is still faster
/// there (by 2%). Returns the default's and the winner's median from that confirmation, and
/// every candidate's measurement, the winner marked `best`.
#[allow(clippy::too_many_arguments)]
fn tune_kernel(
    fused: &Fused,
    g: usize,
    mut cands: Vec<(Schedule, Kernel)>,
    backend: &dyn Backend,
    device: &Device,
    options: &TuneOptions<'_>,
    deadline: Instant,
    progress: &mut dyn FnMut(Event),
) -> Result<(f64, f64, Vec<Measurement>), String> {
    let (default, others) = cands.split_first_mut().ok_or("no candidates")?;
    others.sort_by(|a, b| estimate(&a.1).total_cmp(&estimate(&b.1)));
    let inputs = synthetic_inputs(fused, g);
    let mut default_exec = backend
        .compile(&kernel_program(fused, g, default.1.clone(), device))
        .map_err(|e| format!("its default schedule does not compile alone: {e}"))?;
    let reference = run_to_tensors(default_exec.as_mut(), &inputs)
        .map_err(|e| format!("its default schedule fails on synthetic inputs: {e}"))?;
    // Enough samples for a millisecond of timed work (tiny kernels are noisy), at least
    // `options.samples`.
    let quick = time_samples(default_exec.as_mut(), &inputs, 2)?;
    let samples = samples_for(min_ms(&quick), options.samples);
    let default_ms = median_ms(&time_samples(default_exec.as_mut(), &inputs, samples)?);
    let mut measured =
        vec![Measurement { schedule: default.0, median_ms: Some(default_ms), samples, outcome: "ok".into() }];
    progress(Event::Candidate);
    let mut best: Option<(usize, f64, Box<dyn Executable>)> = None;
    for (schedule, kernel) in others.iter() {
        if Instant::now() >= deadline {
            break;
        }
        let best_ms = best.as_ref().map_or(default_ms, |b| b.1);
        let (m, exec) = measure(fused, g, kernel.clone(), backend, device, &inputs, &reference, samples, best_ms);
        let m = Measurement { schedule: *schedule, ..m };
        if let (Some(ms), Some(exec)) = (m.median_ms.filter(|_| m.outcome == "ok"), exec) {
            if ms < best_ms {
                best = Some((measured.len(), ms, exec));
            }
        }
        measured.push(m);
        progress(Event::Candidate);
    }
    let Some((index, _, mut best_exec)) = best else {
        measured[0].outcome = "best".into();
        return Ok((default_ms, default_ms, measured));
    };
    let (mut d, mut b) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        d.extend(time_samples(default_exec.as_mut(), &inputs, samples)?);
        b.extend(time_samples(best_exec.as_mut(), &inputs, samples)?);
    }
    let (default_ms, best_ms) = (median_ms(&d), median_ms(&b));
    if best_ms < 0.98 * default_ms {
        measured[index].outcome = "best".into();
        Ok((default_ms, best_ms, measured))
    } else {
        measured[index].outcome = "not faster when timed again".into();
        measured[0].outcome = "best".into();
        Ok((default_ms, default_ms, measured))
    }
}

/// Samples that give about a millisecond of timed work for a kernel of `ms`, between `min` and
/// 100.
fn samples_for(ms: f64, min: u32) -> u32 {
    let wanted = if ms > 0.0 { (1.0 / ms).ceil() as u32 } else { 100 };
    wanted.clamp(min.max(5), 100.max(min))
}

fn min_ms(times: &[Duration]) -> f64 {
    times.iter().map(|d| d.as_secs_f64() * 1e3).fold(f64::INFINITY, f64::min)
}

/// Compiles, checks and times one candidate kernel; returns its measurement and, where it ran
/// correctly and was timed in full, its executable.
#[allow(clippy::too_many_arguments)]
fn measure(
    fused: &Fused,
    g: usize,
    kernel: Kernel,
    backend: &dyn Backend,
    device: &Device,
    inputs: &[TensorData],
    reference: &[TensorData],
    samples: u32,
    best_ms: f64,
) -> (Measurement, Option<Box<dyn Executable>>) {
    let schedule = kernel.schedule;
    let fail = |outcome: String| (Measurement { schedule, median_ms: None, samples: 0, outcome }, None);
    let mut exec = match backend.compile(&kernel_program(fused, g, kernel, device)) {
        Ok(e) => e,
        Err(e) => return fail(format!("failed: {e}")),
    };
    match run_to_tensors(exec.as_mut(), inputs) {
        Ok(out) => {
            if let Some(why) = mismatch(&out, reference) {
                return fail(format!("wrong result: {why}"));
            }
        }
        Err(e) => return fail(format!("failed: {e}")),
    }
    // Two samples first: a candidate a quarter slower than the best stops there.
    let first = match time_samples(exec.as_mut(), inputs, 2) {
        Ok(t) => t,
        Err(e) => return fail(format!("failed: {e}")),
    };
    if min_ms(&first) > 1.25 * best_ms {
        let m = Measurement {
            schedule,
            median_ms: Some(median_ms(&first)),
            samples: 2,
            outcome: "slower (stopped early)".into(),
        };
        return (m, None);
    }
    match time_samples(exec.as_mut(), inputs, samples) {
        Ok(t) => (Measurement { schedule, median_ms: Some(median_ms(&t)), samples, outcome: "ok".into() }, Some(exec)),
        Err(e) => fail(format!("failed: {e}")),
    }
}

fn time_samples(exec: &mut dyn Executable, inputs: &[TensorData], samples: u32) -> Result<Vec<Duration>, String> {
    let interface = exec.interface().clone();
    let checked = interface.check(inputs).map_err(|e| e.to_string())?;
    exec.time_kernel(checked, 0, samples).map_err(|e| e.to_string())
}

/// Why `out` differs from `reference` beyond the tolerance of its dtype, if it does.
fn mismatch(out: &[TensorData], reference: &[TensorData]) -> Option<String> {
    for (o, r) in out.iter().zip(reference) {
        if o.dtype() != r.dtype() || o.shape() != r.shape() {
            return Some("a different type".into());
        }
        let (rtol, atol) = match r.dtype() {
            DType::F16 | DType::BF16 => (1e-2, 1e-3),
            d if d.is_float() => (1e-3, 1e-4),
            _ => (0.0, 0.0),
        };
        for (i, (a, b)) in o.to_f64_vec().iter().zip(r.to_f64_vec()).enumerate() {
            let same = a == &b || (a.is_nan() && b.is_nan()) || (a - b).abs() <= atol + rtol * b.abs();
            if !same {
                return Some(format!("element {i} is {a}, the default schedule gives {b}"));
            }
        }
    }
    None
}

/// The cost the search ranks candidates by (lower first): for a CPU register tile, the
/// instructions of one reduction step over the whole output (multiply-adds, broadcasts and
/// vector loads, partial tiles counted whole); other templates keep the space's order.
fn estimate(kernel: &Kernel) -> f64 {
    let s = &kernel.schedule;
    if s.strategy != Strategy::TiledMatmul || s.workgroup_size > 1 {
        return 0.0;
    }
    let (rows, vectors) = (s.tile[0] as f64, (s.tile[1] / s.vector.max(1)) as f64);
    kernel.launch.workgroups() as f64 * (rows * vectors + rows + vectors)
}

/// Group `g` as a program of its own: its operands are inputs (constants keep their values),
/// its result the output, and `kernel` (scheduled for it) the one kernel.
fn kernel_program(fused: &Fused, g: usize, kernel: Kernel, device: &Device) -> Program {
    let group = &fused.groups[g];
    let mut buffers = Vec::with_capacity(group.reads.len() + 1);
    let mut inputs = 0;
    for &b in &group.reads {
        let mut buffer = fused.buffers[b.index()].clone();
        if !matches!(buffer.kind, BufferKind::Constant(_)) {
            buffer.kind = BufferKind::Input(inputs);
            inputs += 1;
        }
        buffers.push(buffer);
    }
    let mut out = fused.buffers[group.writes[0].index()].clone();
    out.kind = BufferKind::Intermediate;
    let out_name = out.name.clone();
    buffers.push(out);
    let out_id = BufId(group.reads.len() as u32);
    let compute = match &group.compute {
        Compute::Map(e) => Compute::Map(nnc_lower::schedule::remap_loads(e.clone(), group)),
        program => program.clone(),
    };
    let sub = Group {
        name: group.name.clone(),
        covers: group.covers.clone(),
        compute,
        reads: (0..group.reads.len() as u32).map(BufId).collect(),
        writes: vec![out_id],
    };
    let fused = Fused {
        name: format!("tune_{}", group.name),
        buffers,
        groups: vec![sub],
        outputs: vec![out_id],
        output_names: vec![out_name],
        decisions: Vec::new(),
    };
    Program { fused, kernels: vec![kernel], device: *device }
}

/// Pseudo-random values for group `g`'s non-constant operands (fixed seed): floats in
/// [-1, 1), integers 0 or 1 (valid indices of any axis longer than one), booleans.
fn synthetic_inputs(fused: &Fused, g: usize) -> Vec<TensorData> {
    let mut rng = fastrand::Rng::with_seed(0x006e_6e63_7475_6e65);
    fused.groups[g]
        .reads
        .iter()
        .map(|b| &fused.buffers[b.index()])
        .filter(|b| !matches!(b.kind, BufferKind::Constant(_)))
        .map(|b| {
            let shape: Vec<usize> = b.shape.iter().map(|&d| d.max(0) as usize).collect();
            let n = shape.iter().product::<usize>();
            match b.dtype {
                DType::Bool => TensorData::from_vec(shape, &(0..n).map(|_| rng.bool()).collect::<Vec<bool>>()),
                d if d.is_float() => {
                    TensorData::from_f64(d, shape, &(0..n).map(|_| rng.f64() * 2.0 - 1.0).collect::<Vec<f64>>())
                }
                d => TensorData::from_i64(d, shape, &(0..n).map(|_| rng.i64(0..2)).collect::<Vec<i64>>()),
            }
        })
        .collect()
}

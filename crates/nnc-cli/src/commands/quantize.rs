//! `nnc quantize MODEL -o OUT.onnx --calibration DIR`: post-training static quantization into a
//! QDQ ONNX model (`nnc_onnx::qdq`), which nnc and ONNX Runtime both run.
//!
//! Calibration runs the f32 model on every sample of DIR (on `--target`, the CPU by default),
//! with the inputs of each `Conv`/`MatMul`/`Gemm` added to its outputs, and keeps each one's
//! range: `minmax` the smallest and largest value seen; `percentile` the `--percentile`-th
//! percentile of each sample's values from both ends (the outermost over the samples), which
//! ignores rare outliers; `entropy` runs the samples a second time to build each tensor's
//! histogram of magnitudes and clips at the threshold whose quantization diverges least from it
//! (KL divergence, [`crate::entropy`]). Then it writes OUT and a report: the error of each output of the
//! quantized model against the f32 model on the calibration samples (largest and mean absolute
//! error, relative to the output's range) and, for outputs of rank 2, how often both pick the
//! same largest entry per row (the top-1 agreement of a classifier). With `--max-error F`, the
//! nodes whose quantization alone costs the most stay in float, one at a time, until every
//! output's largest error is within `F` of its range.
//!
//! DIR holds the samples as ONNX test data (`input_N.pb` for the N-th input, directly in DIR for
//! one sample or in subfolders for several), or, for a model with one input, `.npy`/`.pb` files
//! directly in DIR, one sample each.

use crate::entropy::Magnitudes;
use crate::target::TargetArg;
use crate::tensor_io::read_tensor;
use anyhow::{anyhow, bail, Context};
use clap::{Args, ValueEnum};
use nnc_ir::{Graph, TensorData};
use nnc_onnx::proto::ModelProto;
use nnc_onnx::qdq::{activation_tensors, quantize, with_outputs, QuantizeOptions};
use nnc_onnx::ImportOptions;
use nnc_runtime::{Session, SessionOptions};
use prost::Message;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Method {
    /// The smallest and largest value calibration saw.
    #[default]
    Minmax,
    /// The `--percentile`-th percentile from both ends (outliers clipped).
    Percentile,
    /// The clipping threshold whose quantized histogram diverges least (KL) from the values'
    /// (calibration runs the samples twice).
    Entropy,
}

#[derive(Args, Debug)]
pub struct QuantizeArgs {
    /// The f32 ONNX model.
    pub model: PathBuf,

    /// Where to write the quantized (QDQ) model.
    #[arg(short, long, value_name = "OUT.onnx")]
    pub output: PathBuf,

    /// The calibration samples (see `nnc quantize --help` above).
    #[arg(long, value_name = "DIR")]
    pub calibration: PathBuf,

    /// How activation ranges are taken from the calibration runs.
    #[arg(long, value_enum, default_value_t)]
    pub method: Method,

    /// With `--method percentile`: the percentile kept at each end.
    #[arg(long, default_value_t = 99.99)]
    pub percentile: f64,

    /// One weight scale per output channel (needs opset 13) instead of one per tensor.
    #[arg(long)]
    pub per_channel: bool,

    /// Quantize each quantized node's result as well (a QuantizeLinear/DequantizeLinear pair
    /// after it), the layout ONNX Runtime fuses into integer kernels.
    #[arg(long)]
    pub quantize_outputs: bool,

    /// Nodes to leave in float, by node name or first output name (comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "NODE,...")]
    pub keep_float: Vec<String>,

    /// Leave the nodes whose quantization costs the most in float until every output's largest
    /// error is at most this fraction of its f32 range (for instance 0.01).
    #[arg(long, value_name = "FRACTION")]
    pub max_error: Option<f64>,

    /// Where calibration and the report run.
    #[arg(long, value_enum, default_value_t)]
    pub target: TargetArg,

    /// Threads for the CPU target (all cores by default).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub threads: Option<u32>,
}

pub fn run(args: QuantizeArgs) -> anyhow::Result<ExitCode> {
    if args.method == Method::Percentile && !(50.0..=100.0).contains(&args.percentile) {
        bail!("--percentile {} must be between 50 and 100", args.percentile);
    }
    if args.max_error.is_some_and(|e| e.is_nan() || e <= 0.0) {
        bail!("--max-error must be a positive fraction of an output's range");
    }
    let model = nnc_onnx::read_model(&args.model)?;
    let base_dir = args.model.parent();
    let input_names = graph_input_names(&model);
    let samples = read_samples(&args.calibration, &input_names)?;
    let mut options = QuantizeOptions {
        per_channel: args.per_channel,
        keep_float: args.keep_float.iter().cloned().collect(),
        outputs: args.quantize_outputs,
    };
    let session_options =
        SessionOptions { threads: args.threads.map(|t| t as usize), ..SessionOptions::target(args.target.0) };
    let what = args.model.display().to_string();
    let run_on_samples = |model: &ModelProto, what: &str| -> anyhow::Result<Vec<Vec<TensorData>>> {
        let mut session = compile(model, what, base_dir, &samples[0], &input_names, &session_options)?;
        samples.iter().map(|s| session.run(s).with_context(|| format!("running {what}"))).collect()
    };

    // Calibration: the f32 model, reporting every quantizable node's operands as extra outputs
    // (all of them, so that nodes `--max-error` keeps in float need no second run).
    let everything = QuantizeOptions { keep_float: Default::default(), ..options.clone() };
    let targets = activation_tensors(&model, &everything).map_err(|e| anyhow!("{what}: {e}"))?;
    let outputs = model.graph.as_ref().map_or(0, |g| g.output.len());
    let probe = with_outputs(&model, &targets);
    // Where each target is among the probe's outputs (a target may be a model output already).
    let probe_outputs: Vec<String> =
        probe.graph.iter().flat_map(|g| g.output.iter().map(|o| o.name.clone().unwrap_or_default())).collect();
    let at: Vec<Option<usize>> = targets.iter().map(|t| probe_outputs.iter().position(|o| o == t)).collect();
    let mut ranges: BTreeMap<String, (f32, f32)> = BTreeMap::new();
    let mut float_outputs = Vec::new();
    for mut results in run_on_samples(&probe, &format!("{what} (calibrating)"))? {
        for (name, t) in targets.iter().zip(&at).filter_map(|(n, k)| Some((n, results.get((*k)?)?))) {
            let (lo, hi) = sample_range(t, args.method, args.percentile);
            let r = ranges.entry(name.clone()).or_insert((lo, hi));
            *r = (r.0.min(lo), r.1.max(hi));
        }
        results.truncate(outputs);
        float_outputs.push(results);
    }
    if args.method == Method::Entropy {
        let mut histograms: BTreeMap<String, Magnitudes> = ranges
            .iter()
            .map(|(name, &(lo, hi))| (name.clone(), Magnitudes::new(f64::from(lo.abs().max(hi.abs())))))
            .collect();
        for results in run_on_samples(&probe, &format!("{what} (entropy histograms)"))? {
            for (name, t) in targets.iter().zip(&at).filter_map(|(n, k)| Some((n, results.get((*k)?)?))) {
                if let Some(h) = histograms.get_mut(name) {
                    h.add(t.to_f64_vec());
                }
            }
        }
        for (name, (lo, hi)) in ranges.iter_mut() {
            // uint8 spends all 255 steps on a range that starts at 0, half of them on each side
            // of 0 otherwise.
            let levels = if *lo >= 0.0 { 255 } else { 128 };
            let threshold = histograms[name.as_str()].threshold(levels) as f32;
            (*lo, *hi) = (lo.max(-threshold), hi.min(threshold));
        }
    }
    let errors_of = |q: &ModelProto| -> anyhow::Result<Vec<Error>> {
        let mut errors: Vec<Error> = Vec::new();
        for (f, g) in float_outputs.iter().zip(run_on_samples(q, &args.output.display().to_string())?) {
            errors.resize_with(f.len(), Error::default);
            for (e, (a, b)) in errors.iter_mut().zip(f.iter().zip(&g)) {
                e.add(a, b);
            }
        }
        Ok(errors)
    };
    let quantize_with =
        |options: &QuantizeOptions| quantize(&model, &ranges, options, base_dir).map_err(|e| anyhow!("{what}: {e}"));

    let mut q = quantize_with(&options)?;
    let mut errors = errors_of(&q.model)?;
    // Nodes `--max-error` left in float, with the error quantizing each alone costs.
    let mut auto_kept: BTreeMap<String, f64> = BTreeMap::new();
    if let Some(limit) = args.max_error {
        // Leave the most sensitive nodes in float, one at a time, until every output is within
        // the limit: each node's sensitivity is the error of quantizing it alone.
        if worst(&errors) > limit {
            let mut sensitivity = Vec::new();
            for node in q.quantized.clone() {
                let alone: BTreeSet<String> = q.quantized.iter().filter(|n| **n != node).cloned().collect();
                let only =
                    quantize_with(&QuantizeOptions { keep_float: &options.keep_float | &alone, ..options.clone() })?;
                sensitivity.push((worst(&errors_of(&only.model)?), node));
            }
            sensitivity.sort_by(|a, b| b.0.total_cmp(&a.0));
            for (cost, node) in sensitivity {
                if worst(&errors) <= limit {
                    break;
                }
                auto_kept.insert(node.clone(), cost);
                options.keep_float.insert(node);
                q = quantize_with(&options)?;
                errors = errors_of(&q.model)?;
            }
        }
    }
    std::fs::write(&args.output, q.model.encode_to_vec())
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    println!(
        "quantized {} of {} Conv/MatMul/Gemm nodes of {what} (int8 weights{}, uint8 activations from {} calibration sample(s), {:?}); wrote {}",
        q.quantized.len(),
        q.quantized.len() + q.kept_float.len(),
        if args.per_channel { " per channel" } else { " per tensor" },
        samples.len(),
        args.method,
        args.output.display()
    );
    // What nnc's CPU target makes of the integer products on this host.
    if nnc_cpu::jit_device().int8_dot {
        println!(
            "on this CPU nnc runs the quantized MatMul/Gemm and Conv nodes with u8 x i8 dot products (VNNI) \
             (convolutions of 16 input channels or more; depthwise ones in f32 arithmetic on the integers)"
        );
    } else {
        println!(
            "this CPU has no u8 x i8 dot-product instructions (VNNI) that nnc uses: the quantized MatMul/Gemm and Conv \
             nodes run as i32 vector arithmetic, slower than with them (and, for convolutions, than in f32)"
        );
    }
    for (node, why) in &q.kept_float {
        match auto_kept.get(node) {
            Some(cost) => println!(
                "  kept in float: {node}: quantized alone, its error is {cost:.3e} of an output's range (--max-error)"
            ),
            None => println!("  kept in float: {node}: {why}"),
        }
    }
    // The report: the quantized model against the f32 model on the calibration samples.
    let names: Vec<String> = model.graph.iter().flat_map(|g| g.output.iter().filter_map(|o| o.name.clone())).collect();
    println!("| output | max abs error | mean abs error | f32 range | top-1 agreement |");
    println!("|---|---|---|---|---|");
    for (name, e) in names.iter().zip(&errors) {
        let agreement = e
            .rows
            .map_or("-".to_string(), |(same, all)| format!("{:.2}% of {all} rows", 100.0 * same as f64 / all as f64));
        println!(
            "| {name} | {:.3e} | {:.3e} | [{:.3}, {:.3}] | {agreement} |",
            e.max_abs,
            e.sum_abs / e.count.max(1) as f64,
            e.lo,
            e.hi
        );
    }
    if let Some(limit) = args.max_error.filter(|&l| worst(&errors) > l) {
        println!("note: even with every quantizable node in float but the kept ones, the error is {:.3e} of an output's range (--max-error {limit})", worst(&errors));
    }
    Ok(ExitCode::SUCCESS)
}

/// The largest error of any output, as a fraction of that output's f32 range.
fn worst(errors: &[Error]) -> f64 {
    errors.iter().map(|e| e.max_abs / (e.hi - e.lo).max(f64::MIN_POSITIVE)).fold(0.0, f64::max)
}

/// The model's graph inputs that are not initializers, in order.
fn graph_input_names(model: &ModelProto) -> Vec<String> {
    let Some(g) = &model.graph else { return Vec::new() };
    let init: std::collections::BTreeSet<&str> = g.initializer.iter().filter_map(|t| t.name.as_deref()).collect();
    g.input.iter().filter_map(|i| i.name.clone()).filter(|n| !init.contains(n.as_str())).collect()
}

/// `model` imported for the shapes of `sample` and prepared as a session.
fn compile(
    model: &ModelProto,
    what: &str,
    base_dir: Option<&Path>,
    sample: &[TensorData],
    input_names: &[String],
    options: &SessionOptions,
) -> anyhow::Result<Session> {
    let shapes: HashMap<String, Vec<usize>> =
        input_names.iter().cloned().zip(sample.iter().map(|t| t.shape().to_vec())).collect();
    let graph: Graph =
        nnc_onnx::import_model(model, what, base_dir, &ImportOptions { input_shapes: shapes, ..Default::default() })
            .map_err(|e| anyhow!("{e}"))?;
    Ok(Session::new(graph, options.clone())?)
}

/// The calibration samples in `dir` (see the module documentation), each the model's inputs in
/// order.
fn read_samples(dir: &Path, inputs: &[String]) -> anyhow::Result<Vec<Vec<TensorData>>> {
    let data_set = |d: &Path| -> anyhow::Result<Vec<TensorData>> {
        (0..inputs.len()).map(|k| read_tensor(&d.join(format!("input_{k}.pb")))).collect()
    };
    if dir.join("input_0.pb").is_file() {
        return Ok(vec![data_set(dir)?]);
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("--calibration {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    let folders: Vec<&PathBuf> = entries.iter().filter(|p| p.join("input_0.pb").is_file()).collect();
    let samples: Vec<Vec<TensorData>> = if !folders.is_empty() {
        folders.iter().map(|d| data_set(d)).collect::<anyhow::Result<_>>()?
    } else {
        let files: Vec<&PathBuf> =
            entries.iter().filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("npy" | "pb"))).collect();
        if !files.is_empty() && inputs.len() != 1 {
            bail!(
                "--calibration {}: loose tensor files are samples of a one-input model, and this model has {} inputs; put each sample's input_N.pb files in a folder",
                dir.display(),
                inputs.len()
            );
        }
        files.iter().map(|f| read_tensor(f).map(|t| vec![t])).collect::<anyhow::Result<_>>()?
    };
    if samples.is_empty() {
        bail!("--calibration {}: no samples (input_N.pb files, folders of them, or .npy/.pb files)", dir.display());
    }
    Ok(samples)
}

/// The range of `t`'s values that calibration keeps for one sample.
fn sample_range(t: &TensorData, method: Method, percentile: f64) -> (f32, f32) {
    let mut values: Vec<f64> = t.to_f64_vec().into_iter().filter(|v| v.is_finite()).collect();
    if values.is_empty() {
        return (0.0, 0.0);
    }
    if method == Method::Percentile {
        values.sort_by(f64::total_cmp);
        let at = |q: f64| values[((q / 100.0) * (values.len() - 1) as f64).round() as usize] as f32;
        return (at(100.0 - percentile), at(percentile));
    }
    values.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| (lo.min(v as f32), hi.max(v as f32)))
}

/// The error of one output over the samples.
#[derive(Default)]
struct Error {
    max_abs: f64,
    sum_abs: f64,
    count: usize,
    lo: f64,
    hi: f64,
    /// Rows whose largest entry is the same in both, and rows, for outputs of rank 2.
    rows: Option<(usize, usize)>,
}

impl Error {
    fn add(&mut self, float: &TensorData, quant: &TensorData) {
        let (a, b) = (float.to_f64_vec(), quant.to_f64_vec());
        if self.count == 0 {
            (self.lo, self.hi) = (f64::INFINITY, f64::NEG_INFINITY);
        }
        for (x, y) in a.iter().zip(&b) {
            let d = (x - y).abs();
            self.max_abs = self.max_abs.max(d);
            self.sum_abs += d;
            self.lo = self.lo.min(*x);
            self.hi = self.hi.max(*x);
        }
        self.count += a.len();
        if let [_, cols] = float.shape() {
            let argmax =
                |row: &[f64]| row.iter().enumerate().fold(0, |best, (i, v)| if *v > row[best] { i } else { best });
            let cols = (*cols).max(1);
            let same = a.chunks(cols).zip(b.chunks(cols)).filter(|(r, s)| argmax(r) == argmax(s)).count();
            let (s, n) = self.rows.unwrap_or((0, 0));
            self.rows = Some((s + same, n + a.len() / cols));
        }
    }
}

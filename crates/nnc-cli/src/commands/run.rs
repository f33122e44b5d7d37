//! `nnc run FILE`: run a model on inputs from files (or pseudo-random ones), then print or save
//! its outputs and compare them with expected outputs.
//!
//! Inputs come from `--input NAME=PATH` (`.npy` or ONNX `.pb`), from `--data DIR`, which holds
//! `input_N.pb` for the N-th graph input as in ONNX test data sets (an explicit `--input` wins),
//! and, with `--random-inputs [SEED]`, from a seeded generator for the inputs no file gives.
//! Where `DIR/output_N.pb` exists, output N is compared with it (see [`crate::compare`]): one
//! line per output, then a summary; any failure exits 3. With `--output-dir` every output is
//! written as `<name>.npy`; otherwise the first few values of each are printed. The time to
//! compile (or load) and the time of the run are reported apart, on stderr.
//!
//! FILE may also be a bundle folder written by `nnc compile MODEL`: its machine code is loaded
//! and run as is, for the input shapes it was compiled for.

use crate::inputs::{missing, random_input, read_given, type_of, InputSources};
use crate::model::{open_model, Imported};
use crate::shapes::{resolve, ShapeFlags};
use crate::target::TargetArg;
use crate::tensor_io::{read_pb, write_npy};
use crate::EXIT_MISMATCH;
use anyhow::{anyhow, bail, Context};
use clap::Args;
use nnc_conformance::{compare, Tolerance};
use nnc_ir::{DType, TensorData, TensorType};
use nnc_onnx::staged::HostValue;
use nnc_runtime::{staged_session, Session};
use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The model file (.nnir or .onnx), or a bundle folder written by `nnc compile`.
    pub file: PathBuf,

    /// Where to run the model.
    #[arg(long, value_enum, default_value_t)]
    pub target: TargetArg,

    /// With `--target wgsl`: the GPU adapter to run on (the first whose name contains NAME).
    #[arg(long, value_name = "NAME")]
    pub adapter: Option<String>,

    #[command(flatten)]
    pub tuning: crate::tuning::TuningArgs,

    /// Threads for the CPU target (all cores by default).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub threads: Option<u32>,

    /// A graph input from a file: NAME is the input's name without `%`, PATH a .npy or .pb file.
    /// Repeat for several inputs.
    #[arg(long = "input", short = 'i', value_name = "NAME=PATH", value_parser = parse_input)]
    pub inputs: Vec<(String, PathBuf)>,

    /// A folder of ONNX test data: input_N.pb is the N-th graph input (unless given with --input);
    /// each output N is compared with output_N.pb where that file exists.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,

    /// Run the inputs no file gives on pseudo-random values from SEED (0 if not given): floats
    /// in [-1, 1), integers in [0, 10), booleans half true.
    #[arg(long, value_name = "SEED", num_args = 0..=1, default_missing_value = "0")]
    pub random_inputs: Option<u64>,

    /// Shapes of random inputs: SYMBOL=SIZE binds a symbolic dimension, INPUT=D0,D1,... gives
    /// an input's shape (repeatable); dimensions left open are 1.
    #[arg(long, value_name = "NAME=SIZE", requires = "random_inputs")]
    pub shape: Vec<String>,

    /// Write each output to DIR/<name>.npy (created if needed) instead of printing its values.
    #[arg(long, short = 'o', value_name = "DIR")]
    pub output_dir: Option<PathBuf>,

    /// Relative tolerance of comparisons: |actual - expected| <= atol + rtol * |expected|.
    #[arg(long, value_name = "X", default_value_t = 1e-3, value_parser = parse_tolerance)]
    pub rtol: f64,

    /// Absolute tolerance of comparisons.
    #[arg(long, value_name = "Y", default_value_t = 1e-4, value_parser = parse_tolerance)]
    pub atol: f64,
}

/// How many values of each output are printed without `--output-dir`.
const PREVIEW: usize = 8;

pub(crate) fn parse_input(s: &str) -> Result<(String, PathBuf), String> {
    let (name, path) = s.split_once('=').ok_or_else(|| format!("`{s}` is not of the form NAME=PATH"))?;
    let name = name.strip_prefix('%').unwrap_or(name);
    if name.is_empty() || path.is_empty() {
        return Err(format!("`{s}` is not of the form NAME=PATH"));
    }
    Ok((name.to_string(), PathBuf::from(path)))
}

fn parse_tolerance(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("`{s}` is not a non-negative number")),
    }
}

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let shown = args.file.display().to_string();
    let sources = InputSources {
        files: args.inputs.clone(),
        data: args.data.clone(),
        random_seed: args.random_inputs,
        bundle: args.file.is_dir(),
    };
    let threads = args.threads.map(|t| t as usize);
    let start = Instant::now();
    let (mut session, inputs, what) = if args.file.is_dir() {
        let session = Session::from_bundle(&args.file, threads).map_err(|e| anyhow!(e))?;
        let interface = session.inputs().to_vec();
        let inputs = gather(&interface, &sources, &args.shape)?;
        (session, inputs, "loaded")
    } else {
        let model = open_model(&args.file)?;
        let interface = model.inputs();
        let inputs = gather(&interface, &sources, &args.shape)?;
        let shapes: HashMap<String, Vec<usize>> =
            interface.iter().zip(&inputs).map(|((name, _), t)| (name.clone(), t.shape().to_vec())).collect();
        let options = args.tuning.session_options(args.target.0, args.adapter.clone(), threads)?;
        match model.import(shapes)? {
            Imported::Graph(graph) => {
                (Session::new(graph, options).map_err(|e| anyhow!("{shown}: {e}"))?, inputs, "compiled")
            }
            Imported::Staged(model) => return run_staged(&args, *model, inputs, options),
        }
    };
    let names: Vec<String> = session.outputs().iter().map(|n| format!("%{n}")).collect();
    // Read expected outputs before running, so a bad file fails fast.
    let expected = match &args.data {
        Some(dir) => read_expected(dir, names.len())?,
        None => Vec::new(),
    };
    let shapes: Vec<Vec<usize>> = inputs.iter().map(|t| t.shape().to_vec()).collect();
    let report = session.prepare(&shapes).map_err(|e| anyhow!("{shown}: {e}"))?;
    crate::tuning::report(&report.tuning, report.kernels);
    let prepared = start.elapsed();
    let run_start = Instant::now();
    let outputs = session.run(&inputs).map_err(|e| anyhow!("{shown}: {e}"))?;
    let ran = run_start.elapsed();
    let phases = session.report().map(|r| format!(" ({})", r.phases)).unwrap_or_default();
    let on = session.adapter_name().map(|a| format!(" ({a})")).unwrap_or_default();
    let described: Vec<String> =
        session.inputs().iter().zip(&inputs).map(|((n, _), t)| format!("%{n}: {}", type_of(t))).collect();
    eprintln!("{what} {shown} for {}{on} in {:.1} ms{phases}", session.target().name(), prepared.as_secs_f64() * 1e3);
    eprintln!("ran on {} in {:.3} ms", described.join(", "), ran.as_secs_f64() * 1e3);
    if outputs.len() != names.len() {
        bail!("internal error: the graph has {} outputs, the run returned {}", names.len(), outputs.len());
    }

    report_outputs(&args, session.outputs(), &outputs, &expected)
}

/// Runs a model whose control flow or shapes are decided at run time, staged (see
/// `nnc_onnx::staged`): compiled graphs for the target, control flow on the host between them.
/// Sequence outputs are shown, saved and compared element by element (`name[k]`).
fn run_staged(
    args: &RunArgs,
    model: nnc_onnx::staged::StagedModel,
    inputs: Vec<TensorData>,
    options: nnc_runtime::SessionOptions,
) -> anyhow::Result<ExitCode> {
    let shown = args.file.display().to_string();
    let described: Vec<String> =
        model.inputs().iter().zip(&inputs).map(|((n, _), t)| format!("%{n}: {}", type_of(t))).collect();
    let names = model.outputs().to_vec();
    let expected = match &args.data {
        Some(dir) => read_expected(dir, names.len())?,
        None => Vec::new(),
    };
    let target = options.target;
    let mut staged = staged_session(model, options);
    let start = Instant::now();
    let inputs: Vec<HostValue> = inputs.into_iter().map(HostValue::Tensor).collect();
    let values = staged.run(inputs.clone()).map_err(|e| anyhow!(e))?;
    let first = start.elapsed();
    // Again, with every graph it takes compiled: the run's own time.
    let start = Instant::now();
    staged.run(inputs).map_err(|e| anyhow!(e))?;
    let again = start.elapsed();
    let stats = staged.stats();
    eprintln!(
        "ran {shown} staged on {} (control flow decided at run time): {} graphs compiled, {} graph runs and {} \
         host nodes per run",
        target.name(),
        stats.compiled,
        stats.graph_runs / 2,
        stats.host_nodes / 2
    );
    eprintln!(
        "ran on {} in {:.3} ms (the first run, compiling, in {:.1} ms)",
        described.join(", "),
        again.as_secs_f64() * 1e3,
        first.as_secs_f64() * 1e3
    );
    let (mut flat_names, mut flat) = (Vec::new(), Vec::new());
    let mut flat_expected = Vec::new();
    for (k, (name, value)) in names.iter().zip(values).enumerate() {
        let mut items = Vec::new();
        flatten(name, value, &mut items);
        if items.len() != 1 || items[0].0 != *name {
            // Expected outputs are tensors: a sequence or optional output is not compared.
            flat_expected.extend(items.iter().map(|_| None));
        } else {
            flat_expected.push(expected.get(k).cloned().flatten());
        }
        for (n, t) in items {
            flat_names.push(n);
            flat.push(t);
        }
    }
    report_outputs(args, &flat_names, &flat, &flat_expected)
}

/// A staged output as named tensors: a tensor as itself, a sequence's elements as `name[k]`,
/// an optional's value (nothing for an empty one).
fn flatten(name: &str, value: HostValue, out: &mut Vec<(String, TensorData)>) {
    match value {
        HostValue::Tensor(t) => out.push((name.to_string(), t)),
        HostValue::Sequence(items) => {
            out.extend(items.into_iter().enumerate().map(|(k, t)| (format!("{name}[{k}]"), t)));
        }
        HostValue::Optional(Some(v)) => flatten(name, *v, out),
        HostValue::Optional(None) => eprintln!("%{name} is an empty optional value"),
    }
}

/// Prints or saves `outputs` (named `names`, without `%`) and compares them with `expected`
/// where there is a value; the exit code says whether all matched.
fn report_outputs(
    args: &RunArgs,
    names: &[String],
    outputs: &[TensorData],
    expected: &[Option<TensorData>],
) -> anyhow::Result<ExitCode> {
    let shown: Vec<String> = names.iter().map(|n| format!("%{n}")).collect();
    let mut out = std::io::stdout().lock();
    if let Some(dir) = &args.output_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create output folder {}", dir.display()))?;
        save_outputs(&mut out, dir, names, outputs)?;
    } else {
        for (name, t) in shown.iter().zip(outputs) {
            writeln!(out, "{name}: {} = {}", type_of(t), preview(t, PREVIEW))?;
        }
    }

    let mut code = ExitCode::SUCCESS;
    if let Some(dir) = &args.data {
        let tol = Tolerance { rtol: args.rtol, atol: args.atol };
        if !check_outputs(&mut out, dir, &shown, outputs, expected, tol)? {
            code = ExitCode::from(EXIT_MISMATCH);
        }
    }
    out.flush()?;
    Ok(code)
}

/// The tensor for every input (`interface` lists their names and types in order): from files,
/// and with `--random-inputs` the rest from the generator, shaped by `--shape` and the given
/// inputs (symbols they bind), each dimension left open being 1.
fn gather(
    interface: &[(String, TensorType)],
    sources: &InputSources,
    shape_flags: &[String],
) -> anyhow::Result<Vec<TensorData>> {
    let given = read_given(interface, sources)?;
    let Some(seed) = sources.random_seed else {
        missing(interface, &given)?;
        return Ok(given.into_iter().flatten().collect());
    };
    let mut flags = ShapeFlags::parse(shape_flags, interface)?;
    for ((name, _), t) in interface.iter().zip(&given) {
        if let Some(t) = t {
            if flags.inputs.insert(name.clone(), t.shape().to_vec()).is_some() {
                bail!("--shape {name}: the input is given by a file");
            }
        }
    }
    let resolved = resolve(interface, &flags)?;
    eprint!("{}", resolved.note());
    interface
        .iter()
        .zip(given)
        .zip(&resolved.shapes)
        .enumerate()
        .map(|(i, (((name, ty), t), shape))| match t {
            Some(t) => Ok(t),
            None => random_input(name, ty.dtype, shape, seed, i),
        })
        .collect()
}

/// Writes every output to `dir/<sanitized name>.npy` (`names` without `%`).
fn save_outputs(out: &mut impl Write, dir: &Path, names: &[String], outputs: &[TensorData]) -> anyhow::Result<()> {
    let mut used = BTreeSet::new();
    for (i, (name, t)) in names.iter().zip(outputs).enumerate() {
        let base = file_stem_for(name, i);
        let mut stem = base.clone();
        let mut n = 1;
        while !used.insert(stem.to_ascii_lowercase()) {
            stem = format!("{base}_{n}");
            n += 1;
        }
        let path = dir.join(format!("{stem}.npy"));
        write_npy(&path, t)?;
        let note = match t.dtype() {
            d if d == DType::BF16 || d.is_minifloat() => format!(" ({d} saved as f32)"),
            d if d.is_sub_byte_int() => format!(" ({d} saved as {})", if d.is_signed_int() { "i8" } else { "u8" }),
            _ => String::new(),
        };
        writeln!(out, "%{name}: {} -> {}{note}", type_of(t), path.display())?;
    }
    Ok(())
}

/// A file name stem for output `index` named `name`: characters other than ASCII letters, digits,
/// `_`, `-` and `.` become `_`, and the stem never starts with `.` (no hidden files, no `..`).
pub fn file_stem_for(name: &str, index: usize) -> String {
    let mut s: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') { c } else { '_' }).collect();
    if s.starts_with('.') {
        s.replace_range(0..1, "_");
    }
    s.truncate(200);
    if s.is_empty() {
        s = format!("output_{index}");
    }
    s
}

/// For each of `count` outputs, the tensor in `dir/output_N.pb` if that file exists.
pub(crate) fn read_expected(dir: &Path, count: usize) -> anyhow::Result<Vec<Option<TensorData>>> {
    let expected = (0..count)
        .map(|i| {
            let path = dir.join(format!("output_{i}.pb"));
            path.exists().then(|| read_pb(&path)).transpose()
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let extra = dir.join(format!("output_{count}.pb"));
    if extra.exists() {
        eprintln!("warning: {} ignored: the graph has {count} outputs", extra.display());
    }
    Ok(expected)
}

/// Compares each output with its expected value where there is one; prints a line per output and a
/// summary. Returns whether every compared output passed.
fn check_outputs(
    out: &mut impl Write,
    dir: &Path,
    names: &[String],
    outputs: &[TensorData],
    expected: &[Option<TensorData>],
    tol: Tolerance,
) -> anyhow::Result<bool> {
    let width = names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
    let types: Vec<String> = outputs.iter().map(type_of).collect();
    let twidth = types.iter().map(|t| t.len()).max().unwrap_or(0);
    let (mut compared, mut failed) = (0, 0);
    for (i, ((name, t), ty)) in names.iter().zip(outputs).zip(&types).enumerate() {
        let Some(Some(expected)) = expected.get(i) else {
            writeln!(out, "{name:width$}  {ty:twidth$}  not compared (no output_{i}.pb)")?;
            continue;
        };
        compared += 1;
        let line = match compare(t, expected, tol) {
            Ok(c) if c.passed() => format!("max abs err {:<9.3e}  max rel err {:<9.3e}  PASS", c.max_abs, c.max_rel),
            Ok(c) => {
                failed += 1;
                format!(
                    "max abs err {:<9.3e}  max rel err {:<9.3e}  FAIL ({} of {} differ)",
                    c.max_abs, c.max_rel, c.mismatches, c.total
                )
            }
            Err(why) => {
                failed += 1;
                format!("FAIL ({why})")
            }
        };
        writeln!(out, "{name:width$}  {ty:twidth$}  {line}")?;
    }
    let tol_text = format!("rtol {}, atol {}", tol.rtol, tol.atol);
    if compared == 0 {
        writeln!(out, "summary: nothing compared (no output_N.pb in {})", dir.display())?;
    } else if failed == 0 {
        writeln!(out, "summary: PASS, {compared} of {compared} outputs match ({tol_text})")?;
    } else {
        writeln!(out, "summary: FAIL, {failed} of {compared} outputs differ ({tol_text})")?;
    }
    Ok(failed == 0)
}

/// The first `n` values of a tensor in row-major order: `[1, 2.5, ...]`.
fn preview(t: &TensorData, n: usize) -> String {
    let size = t.dtype().size_bytes();
    let bytes = t.bytes();
    let shown = t.len().min(n);
    // Convert only the values shown: outputs can be large.
    let head = TensorData::from_bytes(t.dtype(), vec![shown], bytes.slice(..shown * size));
    let Ok(head) = head else { return "[?]".to_string() };
    let mut items: Vec<String> = match t.dtype() {
        DType::F32 => head.to_vec::<f32>().unwrap_or_default().iter().map(|v| v.to_string()).collect(),
        DType::Bool => head.to_vec::<bool>().unwrap_or_default().iter().map(|v| v.to_string()).collect(),
        DType::U64 => head.to_vec::<u64>().unwrap_or_default().iter().map(|v| v.to_string()).collect(),
        d if d.is_int() => head.to_i64_vec().iter().map(|v| v.to_string()).collect(),
        _ => head.to_f64_vec().iter().map(|v| v.to_string()).collect(),
    };
    if t.len() > shown {
        items.push(format!("... ({} values)", t.len()));
    }
    format!("[{}]", items.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems_are_safe() {
        assert_eq!(file_stem_for("logits", 0), "logits");
        assert_eq!(file_stem_for("onnx/Add:0", 0), "onnx_Add_0");
        assert_eq!(file_stem_for("../x", 0), "_._x");
        assert_eq!(file_stem_for("..", 0), "_.");
        assert_eq!(file_stem_for("a b\\c", 3), "a_b_c");
        assert_eq!(file_stem_for("", 3), "output_3");
    }

    #[test]
    fn previews() {
        let t = TensorData::from_vec(vec![2, 2], &[0.5f32, 1.0, -2.0, 0.1]);
        assert_eq!(preview(&t, 8), "[0.5, 1, -2, 0.1]");
        assert_eq!(preview(&t, 2), "[0.5, 1, ... (4 values)]");
        let b = TensorData::from_vec(vec![2], &[true, false]);
        assert_eq!(preview(&b, 8), "[true, false]");
        let i = TensorData::from_vec(vec![1], &[-7i8]);
        assert_eq!(preview(&i, 8), "[-7]");
        assert_eq!(type_of(&i), "i8[1]");
        assert_eq!(type_of(&TensorData::scalar(1.0f64)), "f64[]");
    }

    #[test]
    fn input_flags() {
        assert_eq!(parse_input("%x=a.npy").unwrap(), ("x".to_string(), PathBuf::from("a.npy")));
        assert_eq!(parse_input("x=a=b.npy").unwrap(), ("x".to_string(), PathBuf::from("a=b.npy")));
        assert!(parse_input("x").is_err());
        assert!(parse_input("=a.npy").is_err());
        assert!(parse_input("x=").is_err());
        assert!(parse_tolerance("-1").is_err());
        assert!(parse_tolerance("nan").is_err());
        assert_eq!(parse_tolerance("1e-5"), Ok(1e-5));
    }
}

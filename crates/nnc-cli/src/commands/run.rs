//! `nnc run FILE`: run a model on inputs from files, then print or save its outputs and compare
//! them with expected outputs.
//!
//! Inputs come from `--input NAME=PATH` (`.npy` or ONNX `.pb`) and from `--data DIR`, which holds
//! `input_N.pb` for the N-th graph input, as in ONNX test data sets; an explicit `--input` wins.
//! Where `DIR/output_N.pb` exists, output N is compared with it (see [`crate::compare`]): one line
//! per output, then a summary; any failure exits 1. With `--output-dir` every output is written as
//! `<name>.npy`; otherwise the first few values of each are printed.
//!
//! FILE may also be a bundle folder written by `nnc compile MODEL --target cpu -o DIR`: its
//! machine code is loaded and run as is, for the input shapes it was compiled for.

use crate::model::open_model;
use crate::target::Target;
use crate::tensor_io::{read_pb, read_tensor, write_npy};
use anyhow::{anyhow, bail, Context};
use clap::Args;
use nnc_conformance::{compare, Tolerance};
use nnc_ir::{DType, TensorData, TensorType};
use nnc_runtime::{Session, SessionOptions};
use std::collections::BTreeSet;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The model file (.nnir or .onnx), or a bundle folder from `nnc compile --target cpu -o`.
    /// An ONNX model is specialized to the shapes of the given inputs.
    pub file: PathBuf,

    /// Where to run the model.
    #[arg(long, value_enum, default_value_t = Target::Cpu)]
    pub target: Target,

    /// With `--target wgsl`: the GPU adapter to run on (the first whose name contains NAME).
    #[arg(long, value_name = "NAME")]
    pub adapter: Option<String>,

    /// A graph input from a file: NAME is the input's name without `%`, PATH a .npy or .pb file.
    /// Repeat for several inputs.
    #[arg(long = "input", short = 'i', value_name = "NAME=PATH", value_parser = parse_input)]
    pub inputs: Vec<(String, PathBuf)>,

    /// A folder of ONNX test data: input_N.pb is the N-th graph input (unless given with --input);
    /// each output N is compared with output_N.pb where that file exists.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,

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

fn parse_input(s: &str) -> Result<(String, PathBuf), String> {
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
    let (mut session, inputs) = if args.file.is_dir() {
        if args.target != Target::Cpu {
            bail!("{shown} is a folder: a CPU bundle runs with --target cpu, not {}", args.target.name());
        }
        let session = Session::from_cpu_bundle(&args.file, None).map_err(|e| anyhow!("{shown}: {e}"))?;
        let inputs = gather_inputs(session.inputs(), &args)?;
        (session, inputs)
    } else {
        let model = open_model(&args.file)?;
        let interface = model.inputs();
        let inputs = gather_inputs(&interface, &args)?;
        let shapes: HashMap<String, Vec<usize>> =
            interface.iter().zip(&inputs).map(|((name, _), t)| (name.clone(), t.shape().to_vec())).collect();
        let graph = model.into_graph(shapes)?;
        let options =
            SessionOptions { target: args.target.runtime(), adapter: args.adapter.clone(), ..Default::default() };
        (Session::new(graph, options).map_err(|e| anyhow!("{shown}: {e}"))?, inputs)
    };
    if session.inputs().len() != inputs.len() {
        bail!("internal error: the graph has {} inputs, {} were gathered", session.inputs().len(), inputs.len());
    }
    let names: Vec<String> = session.outputs().iter().map(|n| format!("%{n}")).collect();
    // Read expected outputs before running, so a bad file fails fast.
    let expected = match &args.data {
        Some(dir) => read_expected(dir, names.len())?,
        None => Vec::new(),
    };
    if let Some(dir) = &args.output_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create output folder {}", dir.display()))?;
    }

    let start = Instant::now();
    let outputs = session.run(&inputs).map_err(|e| anyhow!("{shown}: {e}"))?;
    let elapsed = start.elapsed();
    let compile = session.report().map(|r| format!(" (of which compile: {})", r.phases)).unwrap_or_default();
    let on = session.adapter_name().map(|a| format!(" ({a})")).unwrap_or_default();
    eprintln!("ran {shown} on {}{on} in {:.3} ms{compile}", args.target.name(), elapsed.as_secs_f64() * 1e3);
    if outputs.len() != names.len() {
        bail!("internal error: the graph has {} outputs, the run returned {}", names.len(), outputs.len());
    }

    let mut out = std::io::stdout().lock();
    if let Some(dir) = &args.output_dir {
        save_outputs(&mut out, dir, session.outputs(), &outputs)?;
    } else {
        for (name, t) in names.iter().zip(&outputs) {
            writeln!(out, "{name}: {} = {}", type_of(t), preview(t, PREVIEW))?;
        }
    }

    let mut code = ExitCode::SUCCESS;
    if let Some(dir) = &args.data {
        let tol = Tolerance { rtol: args.rtol, atol: args.atol };
        if !check_outputs(&mut out, dir, &names, &outputs, &expected, tol)? {
            code = ExitCode::FAILURE;
        }
    }
    out.flush()?;
    Ok(code)
}

/// The tensor for every graph input (`interface` lists their names and types in order), from
/// `--data` and `--input`.
fn gather_inputs(interface: &[(String, TensorType)], args: &RunArgs) -> anyhow::Result<Vec<TensorData>> {
    let mut given: Vec<Option<(TensorData, String)>> = vec![None; interface.len()];

    if let Some(dir) = &args.data {
        check_dir(dir)?;
        for (i, slot) in given.iter_mut().enumerate() {
            let path = dir.join(format!("input_{i}.pb"));
            if path.exists() && !args.inputs.iter().any(|(n, _)| *n == interface[i].0) {
                let t = read_pb(&path).with_context(|| format!("input %{}", interface[i].0))?;
                *slot = Some((t, path.display().to_string()));
            }
        }
        let extra = dir.join(format!("input_{}.pb", interface.len()));
        if extra.exists() {
            eprintln!("warning: {} ignored: the graph has {} inputs", extra.display(), interface.len());
        }
    }

    let mut seen = BTreeSet::new();
    for (name, path) in &args.inputs {
        if !seen.insert(name.as_str()) {
            bail!("--input {name} is given more than once");
        }
        let index = interface.iter().position(|(n, _)| n == name).ok_or_else(|| {
            let names: Vec<String> = interface.iter().map(|(n, _)| format!("%{n}")).collect();
            let names = if names.is_empty() { "none".to_string() } else { names.join(", ") };
            anyhow!("--input {name}: the graph has no input %{name} (its inputs: {names})")
        })?;
        let t = read_tensor(path).with_context(|| format!("input %{name}"))?;
        given[index] = Some((t, path.display().to_string()));
    }

    let missing: Vec<String> =
        interface.iter().zip(&given).filter(|(_, g)| g.is_none()).map(|((n, ty), _)| format!("%{n}: {ty}")).collect();
    if !missing.is_empty() {
        bail!(
            "missing input{} {} (give each with --input NAME=PATH, or all with --data DIR)",
            if missing.len() == 1 { "" } else { "s" },
            missing.join(", ")
        );
    }

    let mut inputs = Vec::with_capacity(given.len());
    for ((name, ty), g) in interface.iter().zip(given) {
        let (t, source) = g.ok_or_else(|| anyhow!("internal error: input %{name} lost"))?;
        check_input(name, ty, &t, &source)?;
        inputs.push(t);
    }
    Ok(inputs)
}

/// Rejects a tensor whose dtype, rank or concrete dimensions differ from the input's declared type
/// (symbolic dimensions are bound and checked by the interpreter).
fn check_input(name: &str, ty: &TensorType, t: &TensorData, source: &str) -> anyhow::Result<()> {
    let fits = t.dtype() == ty.dtype
        && t.shape().len() == ty.rank()
        && ty.shape.iter().zip(t.shape()).all(|(d, &n)| d.as_usize().is_none_or(|c| c == n));
    if !fits {
        bail!("input %{name} from {source}: expected {ty}, found {}", type_of(t));
    }
    Ok(())
}

fn check_dir(dir: &Path) -> anyhow::Result<()> {
    let meta = std::fs::metadata(dir).with_context(|| format!("cannot read data folder {}", dir.display()))?;
    if !meta.is_dir() {
        bail!("{} is not a folder", dir.display());
    }
    Ok(())
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
        let note = if t.dtype() == DType::BF16 { " (bf16 saved as f32)" } else { "" };
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
fn read_expected(dir: &Path, count: usize) -> anyhow::Result<Vec<Option<TensorData>>> {
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

/// `f32[2, 3]`: a tensor's dtype and concrete shape.
fn type_of(t: &TensorData) -> String {
    let dims: Vec<String> = t.shape().iter().map(|d| d.to_string()).collect();
    format!("{}[{}]", t.dtype(), dims.join(", "))
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

//! File tests for the Graph IR: every `.nnir` file under `ir/` is a test case, and each directory
//! kind is one `#[test]` that runs all of its files and reports every failing file at once.
//!
//! | directory        | the file must ...                                                   | expectation              |
//! |------------------|---------------------------------------------------------------------|--------------------------|
//! | `ir/parse/ok`    | parse, and print back byte for byte (after its leading comments)     | the file itself          |
//! | `ir/parse/err`   | fail to parse with exactly the expected message                     | `# error: <message>`     |
//! | `ir/verify/ok`   | parse and verify, round-trip print → parse to an equal graph, and    | none                     |
//! |                  | decompose (composites to primitives) into a graph that verifies     |                          |
//! |                  | with the same output types                                          |                          |
//! | `ir/verify/err`  | fail to parse or verify with exactly the expected message           | `# error: <message>`     |
//! | `ir/run`         | run on the given inputs and give the expected outputs               | `# output` or `# error:` |
//! | `ir/opt`         | optimize (`nnc::opt`, all rules or those a `# rules:` line names)   | `# applied:` and the     |
//! |                  | into the expected graph, which must print, parse back, and agree    | `# optimized:` block     |
//! |                  | with the input graph in the interpreter on deterministic inputs     |                          |
//! | `ir/fuse`        | fuse (GPU pricing) and schedule for the GPU and the CPU, and run    | sections from            |
//! |                  | both compiled programs in the Kernel-IR interpreter, which must     | `# decisions:` on        |
//! |                  | agree with the reference interpreter on deterministic inputs        | (see below)              |
//!
//! Error messages are compared after removing the file path the parser was given (the path
//! relative to the repository, e.g. `ir/parse/err/x.nnir`) from their start, so `# error:` lines
//! read `3:7: expected ...`. A message that spans lines is stored with `\n` escapes.
//!
//! A run file binds every graph input with a comment line
//!
//! ```text
//! # input %x = [1.0, 2.0, 3.0, 4.0]           (shape and dtype from the graph's declaration)
//! # input %x: f32[2, 2] = [1.0, 2.0, 3.0, 4.0] (concrete type: needed when the declared
//!                                                 shape has symbols; the interpreter binds
//!                                                 them from it and checks it against the
//!                                                 declaration)
//! ```
//!
//! with the elements flat in row-major order (floats, integers, `true`/`false`, `inf`, `-inf`,
//! `nan`). It expects one `# output %name: dtype[dims] = [...]` line per graph output, in order,
//! or a `# error: <message>` line if running must fail. Integers and bools compare exactly;
//! floats within `|found - expected| <= atol + rtol * |expected|` (NaN matches NaN), with
//! defaults per dtype that a `# tolerance: rtol = X, atol = Y` line overrides.
//!
//! An opt file ends with its expectation: a `# applied: rule count, ...` line (the rules that
//! changed the graph, or `none`) and a `# optimized:` line followed by the optimized graph's
//! printed form, each line commented out with `# `.
//!
//! A fuse file (static shapes) ends with its expectation, every line commented out with `# `:
//! `# decisions:` and the fusion decisions under GPU pricing (`fuse_options(&Device::gpu())`), one
//! per line; `# fused:` and the fused program; `# gpu kernels:` and the scheduled GPU kernels;
//! `# cpu kernels:` and the CPU kernels, which come from fusing under CPU pricing (preceded by
//! `# cpu decisions:` and the CPU decisions that differ from the GPU ones, if any). Whatever the
//! text, the case fails unless both compiled programs, run by the Kernel-IR interpreter on
//! deterministic inputs, agree with the reference interpreter (rtol 1e-4, atol 1e-5; integers
//! and bools exactly).
//!
//! `NNC_BLESS=1 cargo test --test filetests` rewrites the expectations from what the code does
//! now: the `# error:` lines, the printed form of `parse/ok` files, the `# output` lines of run
//! files, the `# applied:` and `# optimized:` sections of opt files, the expectation sections of
//! fuse files (never a numerical mismatch). Review the diff before committing it: blessing
//! records behaviour, it does not check it.

use nnc::interp;
use nnc::ir::{self, DType, Graph, TensorData};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;

/// What checking one file gave: a pass, or (when blessing) new file contents to write.
type Outcome = Result<Option<String>, String>;

fn blessing() -> bool {
    std::env::var("NNC_BLESS").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Checks every `.nnir` file in `ir/<kind>` and fails listing every file that failed.
fn run_dir(kind: &str, check: fn(&str, &str, bool) -> Outcome) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("ir").join(kind);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "nnir"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .nnir files in {}", dir.display());
    let bless = blessing();
    let mut failures = Vec::new();
    for path in &files {
        let rel = path.strip_prefix(&root).unwrap_or(path).to_string_lossy().replace('\\', "/");
        let src = match std::fs::read_to_string(path) {
            Ok(s) => s,
            Err(e) => {
                failures.push(format!("{rel}: cannot read: {e}"));
                continue;
            }
        };
        // A panic in the code under test is a failure of this file, not of the whole run.
        let result = std::panic::catch_unwind(|| check(&rel, &src, bless))
            .unwrap_or_else(|p| Err(format!("panicked: {}", panic_message(&p))));
        match result {
            Ok(None) => {}
            Ok(Some(new)) => {
                if new != src {
                    std::fs::write(path, new).unwrap_or_else(|e| panic!("cannot write {rel}: {e}"));
                    eprintln!("blessed {rel}");
                }
            }
            Err(message) => failures.push(format!("{rel}: {message}")),
        }
    }
    if !failures.is_empty() {
        panic!(
            "{} of {} file(s) in ir/{kind} failed{}:\n\n{}\n",
            failures.len(),
            files.len(),
            if bless { "" } else { " (NNC_BLESS=1 rewrites expectations)" },
            failures.join("\n\n")
        );
    }
}

fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default()
}

#[test]
fn parse_ok() {
    run_dir("parse/ok", check_parse_ok);
}

#[test]
fn parse_err() {
    run_dir("parse/err", check_error);
}

#[test]
fn verify_ok() {
    run_dir("verify/ok", check_verify_ok);
}

#[test]
fn verify_err() {
    run_dir("verify/err", check_error);
}

#[test]
fn run() {
    run_dir("run", check_run);
}

#[test]
fn opt() {
    run_dir("opt", check_opt);
}

#[test]
fn fuse() {
    run_dir("fuse", check_fuse);
}

// ---- expectations in comments ----

/// The text of an error with the file path the parser was given removed from its start, and line
/// breaks escaped so that it fits on one comment line.
fn error_text(err: &dyn std::fmt::Display, rel: &str) -> String {
    let s = err.to_string();
    let s = s.strip_prefix(rel).and_then(|r| r.strip_prefix(':')).unwrap_or(&s);
    s.trim().replace('\n', "\\n")
}

/// The value of the single `# <key>:` line, if any.
fn directive<'a>(src: &'a str, key: &str) -> Result<Option<&'a str>, String> {
    let prefix = format!("# {key}:");
    let mut found = src.lines().filter_map(|l| l.strip_prefix(&prefix).map(str::trim));
    let first = found.next();
    if found.next().is_some() {
        return Err(format!("more than one `{prefix}` line"));
    }
    Ok(first)
}

/// Replaces the `# error:` line of `src` by one stating `message` (inserting it as the first line
/// if there is none).
fn with_error_line(src: &str, message: &str) -> String {
    let line = format!("# error: {message}");
    let mut replaced = false;
    let mut out = String::new();
    for l in src.lines() {
        if l.starts_with("# error:") {
            out.push_str(&line);
            replaced = true;
        } else {
            out.push_str(l);
        }
        out.push('\n');
    }
    if !src.ends_with('\n') {
        out.pop();
    }
    if replaced {
        out
    } else {
        format!("{line}\n{src}")
    }
}

/// Compares a failure with the file's `# error:` line (or, blessing, records it).
fn compare_error(
    rel: &str,
    src: &str,
    found: String,
    bless: bool,
    reparse: fn(&str, &str) -> Option<String>,
) -> Outcome {
    let expected = directive(src, "error")?;
    if expected == Some(found.as_str()) {
        return Ok(None);
    }
    if bless {
        let mut new = with_error_line(src, &found);
        if expected.is_none() {
            // The inserted line moved everything down: take the message again so that line
            // numbers in it are right.
            if let Some(again) = reparse(rel, &new) {
                new = with_error_line(&new, &again);
            }
        }
        return Ok(Some(new));
    }
    match expected {
        None => Err(format!("no `# error:` line; the error is:\n  {found}")),
        Some(e) => Err(format!("wrong error\n  expected: {e}\n  found:    {found}")),
    }
}

// ---- parse and verify ----

fn parse_error(rel: &str, src: &str) -> Option<String> {
    ir::text::parse(src, rel).err().map(|e| error_text(&e, rel))
}

fn check_error(rel: &str, src: &str, bless: bool) -> Outcome {
    match ir::text::parse(src, rel) {
        Ok(_) => Err("parsed and verified, but an error was expected".into()),
        Err(e) => compare_error(rel, src, error_text(&e, rel), bless, parse_error),
    }
}

/// Splits a file into its leading comment block (with blank lines) and the rest.
fn split_header(src: &str) -> (&str, &str) {
    let mut end = 0;
    for line in src.split_inclusive('\n') {
        let t = line.trim();
        if !(t.is_empty() || t.starts_with('#')) {
            break;
        }
        end += line.len();
    }
    src.split_at(end)
}

fn parse(rel: &str, src: &str) -> Result<Graph, String> {
    ir::text::parse(src, rel).map_err(|e| format!("does not parse: {}", error_text(&e, rel)))
}

/// Printing and parsing again gives an equal graph.
fn check_round_trip(rel: &str, g: &Graph) -> Result<String, String> {
    let printed = ir::text::print(g);
    let again = ir::text::parse(&printed, rel)
        .map_err(|e| format!("the printed form does not parse: {}\n{printed}", error_text(&e, rel)))?;
    if &again != g {
        return Err(format!("printing and parsing again gives a different graph; printed:\n{printed}"));
    }
    Ok(printed)
}

fn check_parse_ok(rel: &str, src: &str, bless: bool) -> Outcome {
    let g = parse(rel, src)?;
    let printed = check_round_trip(rel, &g)?;
    let (header, body) = split_header(src);
    if body == printed {
        Ok(None)
    } else if bless {
        Ok(Some(format!("{header}{printed}")))
    } else {
        Err(format!("prints differently:\n{}", diff(body, &printed)))
    }
}

fn check_verify_ok(rel: &str, src: &str, _bless: bool) -> Outcome {
    let g = parse(rel, src)?;
    ir::verify(&g).map_err(|e| format!("parses but does not verify: {e}"))?;
    check_round_trip(rel, &g)?;
    let d = ir::composite::decompose(&g).map_err(|e| format!("does not decompose: {e}"))?;
    ir::verify(&d).map_err(|e| format!("the decomposed graph does not verify: {e}"))?;
    if let Some(n) = d.nodes.iter().find(|n| n.op.is_composite()) {
        return Err(format!("the decomposed graph still has a `{}`", n.op.name()));
    }
    let types = |g: &Graph| g.outputs.iter().map(|&o| g.ty(o).clone()).collect::<Vec<_>>();
    if types(&g) != types(&d) {
        return Err(format!("decomposing changed the output types: {:?} to {:?}", types(&g), types(&d)));
    }
    Ok(None)
}

/// A line-by-line comparison, marking lines that differ.
fn diff(expected: &str, found: &str) -> String {
    let (e, f): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), found.lines().collect());
    let mut out = String::new();
    for i in 0..e.len().max(f.len()) {
        match (e.get(i), f.get(i)) {
            (Some(a), Some(b)) if a == b => writeln!(out, "    {a}").unwrap(),
            (a, b) => {
                if let Some(a) = a {
                    writeln!(out, "  - {a}").unwrap();
                }
                if let Some(b) = b {
                    writeln!(out, "  + {b}").unwrap();
                }
            }
        }
    }
    if expected.ends_with('\n') != found.ends_with('\n') {
        out.push_str("  (the final newline differs)\n");
    }
    out
}

// ---- run ----

/// One `# input` / `# output` line: a value name, an optional concrete type and the elements.
struct Literal {
    name: String,
    ty: Option<(DType, Vec<usize>)>,
    elems: Vec<String>,
}

/// Parses the text after `# input` or `# output`: `%name[: dtype[d, ...]] = [e, ...]`.
fn parse_literal(text: &str) -> Result<Literal, String> {
    let text = text.trim();
    let rest = text.strip_prefix('%').ok_or("expected `%name`")?;
    let (name, rest) = if let Some(quoted) = rest.strip_prefix('"') {
        let mut name = String::new();
        let mut chars = quoted.char_indices();
        let end = loop {
            match chars.next() {
                Some((i, '"')) => break i,
                Some((_, '\\')) => name.push(chars.next().ok_or("unterminated name")?.1),
                Some((_, c)) => name.push(c),
                None => return Err("unterminated name".into()),
            }
        };
        (name, &quoted[end + 1..])
    } else {
        let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.')).unwrap_or(rest.len());
        (rest[..end].to_string(), &rest[end..])
    };
    let (ty_text, list) = rest.split_once('=').ok_or("expected `= [...]`")?;
    let ty = match ty_text.trim() {
        "" => None,
        t => Some(parse_concrete_type(t.strip_prefix(':').ok_or("expected `:` before the type")?.trim())?),
    };
    let list = list.trim();
    let inner = list.strip_prefix('[').and_then(|l| l.strip_suffix(']')).ok_or("expected `[...]`")?;
    let elems =
        if inner.trim().is_empty() { Vec::new() } else { inner.split(',').map(|e| e.trim().to_string()).collect() };
    Ok(Literal { name, ty, elems })
}

fn parse_concrete_type(t: &str) -> Result<(DType, Vec<usize>), String> {
    let (dtype, dims) = t.split_once('[').ok_or_else(|| format!("expected `dtype[dims]`, found `{t}`"))?;
    let dtype = DType::from_name(dtype.trim()).ok_or_else(|| format!("unknown dtype `{dtype}`"))?;
    let dims = dims.strip_suffix(']').ok_or_else(|| format!("expected `]` in `{t}`"))?;
    let dims = if dims.trim().is_empty() {
        Vec::new()
    } else {
        dims.split(',')
            .map(|d| d.trim().parse::<usize>().map_err(|_| format!("`{}` is not a concrete dimension", d.trim())))
            .collect::<Result<_, _>>()?
    };
    Ok((dtype, dims))
}

/// Builds the tensor a literal describes.
fn literal_tensor(dtype: DType, shape: Vec<usize>, elems: &[String]) -> Result<TensorData, String> {
    let n: usize = shape.iter().product();
    if elems.len() != n {
        return Err(format!("{dtype}{shape:?} needs {n} elements, found {}", elems.len()));
    }
    let bad = |e: &str| format!("`{e}` is not a {dtype} element");
    if dtype.is_float() {
        let v = elems.iter().map(|e| parse_float(e).ok_or_else(|| bad(e))).collect::<Result<Vec<_>, _>>()?;
        Ok(TensorData::from_f64(dtype, shape, &v))
    } else if dtype == DType::Bool {
        let v = elems
            .iter()
            .map(|e| match e.as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(bad(e)),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TensorData::from_vec(shape, &v))
    } else {
        let v = elems.iter().map(|e| e.parse::<i64>().map_err(|_| bad(e))).collect::<Result<Vec<_>, _>>()?;
        Ok(TensorData::from_i64(dtype, shape, &v))
    }
}

fn parse_float(e: &str) -> Option<f64> {
    match e {
        "nan" => Some(f64::NAN),
        "inf" => Some(f64::INFINITY),
        "-inf" => Some(f64::NEG_INFINITY),
        _ if e.chars().all(|c| c.is_ascii_digit() || "+-.eE".contains(c)) => e.parse().ok(),
        _ => None,
    }
}

/// The concrete type of an input: its literal's type if given, else the declared type, which
/// must then be concrete. Whether it matches the declaration is for the interpreter to check.
fn input_type(declared: &ir::TensorType, lit: &Literal) -> Result<(DType, Vec<usize>), String> {
    match &lit.ty {
        Some(ty) => Ok(ty.clone()),
        None => declared.static_shape().map(|shape| (declared.dtype, shape)).ok_or_else(|| {
            format!("input %{} is declared {declared}: give a concrete type (`# input %{}: ...`)", lit.name, lit.name)
        }),
    }
}

fn format_elem(dtype: DType, v: f64, i: i64, b: bool) -> String {
    let float = |s: String| if s == "NaN" { "nan".to_string() } else { s };
    if dtype == DType::F64 {
        float(format!("{v:?}"))
    } else if dtype.is_float() {
        // f32, and the narrower floats through their exact f32 value.
        float(format!("{:?}", v as f32))
    } else if dtype == DType::Bool {
        b.to_string()
    } else {
        i.to_string()
    }
}

/// `%name: dtype[dims] = [e, ...]`, as an output line states a tensor.
fn format_tensor(name: &str, t: &TensorData) -> String {
    let dims = t.shape().iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ");
    let (fs, is) = (t.to_f64_vec(), t.to_i64_vec());
    let elems: Vec<String> =
        (0..t.len()).map(|k| format_elem(t.dtype(), fs[k], is[k], t.dtype() == DType::Bool && is[k] != 0)).collect();
    format!("{}: {}[{dims}] = [{}]", value_name(name), t.dtype(), elems.join(", "))
}

/// A value name as the text form writes it.
fn value_name(name: &str) -> String {
    if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.') {
        format!("%{name}")
    } else {
        format!("%\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

fn default_tolerance(dtype: DType) -> (f64, f64) {
    match dtype {
        DType::F64 => (1e-9, 1e-12),
        DType::F32 => (1e-5, 1e-6),
        DType::F16 => (2e-3, 1e-3),
        DType::BF16 => (1e-2, 1e-2),
        // Integers and bools compare exactly.
        _ => (0.0, 0.0),
    }
}

fn parse_tolerance(text: &str) -> Result<(f64, f64), String> {
    let (mut rtol, mut atol) = (None, None);
    for part in text.split(',') {
        let (k, v) = part.split_once('=').ok_or_else(|| format!("bad tolerance `{part}`"))?;
        let v: f64 = v.trim().parse().map_err(|_| format!("bad tolerance `{part}`"))?;
        match k.trim() {
            "rtol" => rtol = Some(v),
            "atol" => atol = Some(v),
            other => return Err(format!("unknown tolerance `{other}`")),
        }
    }
    Ok((rtol.ok_or("tolerance needs rtol")?, atol.ok_or("tolerance needs atol")?))
}

/// Compares one output with its expectation; `None` when they agree.
fn compare_output(found: &TensorData, name: &str, want: &Literal, tol: Option<(f64, f64)>) -> Option<String> {
    let mismatch = || {
        format!(
            "output {}:\n  expected: {}\n  found:    {}",
            value_name(name),
            want_text(want),
            format_tensor(name, found)
        )
    };
    if want.name != name {
        return Some(format!("expected output %{}, the graph returns {}", want.name, value_name(name)));
    }
    let Some((dtype, shape)) = &want.ty else {
        return Some(format!("output %{name} needs its type (`# output %{name}: dtype[dims] = ...`)"));
    };
    if *dtype != found.dtype() || shape.as_slice() != found.shape() {
        return Some(mismatch());
    }
    let Ok(expected) = literal_tensor(*dtype, shape.clone(), &want.elems) else {
        return Some(format!("output %{name}: bad expected literal"));
    };
    if dtype.is_float() {
        let (rtol, atol) = tol.unwrap_or_else(|| default_tolerance(*dtype));
        // The expected values rounded to the dtype, so that `0.1` stands for the f32 nearest 0.1.
        for (f, e) in found.to_f64_vec().into_iter().zip(expected.to_f64_vec()) {
            let ok = if e.is_nan() || f.is_nan() {
                e.is_nan() && f.is_nan()
            } else if e.is_infinite() || f.is_infinite() {
                e == f
            } else {
                (f - e).abs() <= atol + rtol * e.abs()
            };
            if !ok {
                return Some(mismatch());
            }
        }
        None
    } else if expected.to_i64_vec() != found.to_i64_vec() {
        Some(mismatch())
    } else {
        None
    }
}

fn want_text(l: &Literal) -> String {
    let ty = match &l.ty {
        Some((d, s)) => format!(": {d}[{}]", s.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
        None => String::new(),
    };
    format!("{}{ty} = [{}]", value_name(&l.name), l.elems.join(", "))
}

/// Replaces the `# output` lines of `src` by `lines` (where the first old one was, else after the
/// last `# input` line, else at the top), and drops any `# error:` line.
fn with_output_lines(src: &str, lines: &[String]) -> String {
    let all: Vec<&str> = src.lines().collect();
    let at = all
        .iter()
        .position(|l| l.starts_with("# output %"))
        .or_else(|| all.iter().rposition(|l| l.starts_with("# input %")).map(|i| i + 1))
        .unwrap_or(0);
    let mut out = String::new();
    for (i, l) in all.iter().enumerate() {
        if i == at {
            lines.iter().for_each(|o| writeln!(out, "{o}").unwrap());
        }
        if !l.starts_with("# output %") && !l.starts_with("# error:") {
            writeln!(out, "{l}").unwrap();
        }
    }
    if at >= all.len() {
        lines.iter().for_each(|o| writeln!(out, "{o}").unwrap());
    }
    out
}

fn check_run(rel: &str, src: &str, bless: bool) -> Outcome {
    let g = parse(rel, src)?;
    let tol = directive(src, "tolerance")?.map(parse_tolerance).transpose()?;
    let mut inputs: HashMap<String, Literal> = HashMap::new();
    let mut outputs: Vec<Literal> = Vec::new();
    for line in src.lines() {
        if line.starts_with("# input %") {
            let rest = &line["# input ".len()..];
            let lit = parse_literal(rest).map_err(|e| format!("bad `# input` line `{line}`: {e}"))?;
            if g.find(&lit.name).is_none_or(|id| !g.inputs.contains(&id)) {
                return Err(format!("`# input %{}`: the graph has no such input", lit.name));
            }
            if let Some(old) = inputs.insert(lit.name.clone(), lit) {
                return Err(format!("input %{} is given twice", old.name));
            }
        } else if line.starts_with("# output %") {
            let rest = &line["# output ".len()..];
            outputs.push(parse_literal(rest).map_err(|e| format!("bad `# output` line `{line}`: {e}"))?);
        }
    }
    let mut tensors = Vec::new();
    for &id in &g.inputs {
        let v = g.value(id);
        let lit = inputs.get(&v.name).ok_or_else(|| format!("no `# input %{}` line", v.name))?;
        let (dtype, shape) = input_type(&v.ty, lit)?;
        tensors.push(literal_tensor(dtype, shape, &lit.elems).map_err(|e| format!("input %{}: {e}", v.name))?);
    }
    let expected_error = directive(src, "error")?;
    let results = match interp::run(&g, &tensors) {
        Ok(r) => r,
        Err(e) => {
            let found = error_text(&e, rel);
            if !outputs.is_empty() {
                // Outputs were expected: a failure is a failure, blessing or not.
                return Err(format!("running failed: {found}"));
            }
            let rerun = |_: &str, _: &str| None;
            return compare_error(rel, src, found, bless, rerun);
        }
    };
    if results.len() != g.outputs.len() {
        return Err(format!("the interpreter gave {} results for {} outputs", results.len(), g.outputs.len()));
    }
    let names: Vec<&str> = g.outputs.iter().map(|&o| g.name_of(o)).collect();
    let mut problems = Vec::new();
    if let Some(e) = expected_error {
        problems.push(format!("expected the error `{e}`, but running succeeded"));
    }
    if outputs.len() != results.len() {
        problems.push(format!("{} `# output` line(s) for {} graph output(s)", outputs.len(), results.len()));
    } else {
        for ((t, name), want) in results.iter().zip(&names).zip(&outputs) {
            problems.extend(compare_output(t, name, want, tol));
        }
    }
    if problems.is_empty() {
        Ok(None)
    } else if bless {
        let lines: Vec<String> =
            results.iter().zip(&names).map(|(t, name)| format!("# output {}", format_tensor(name, t))).collect();
        Ok(Some(with_output_lines(src, &lines)))
    } else {
        Err(problems.join("\n"))
    }
}

// ---- opt ----

/// Splits an opt file into the input (everything before the expectation) and the expectation
/// section (from the first `# applied:` or `# optimized:` line to the end).
fn split_expectation(src: &str) -> (&str, &str) {
    let mut at = 0;
    for line in src.split_inclusive('\n') {
        if line.starts_with("# applied:") || line.starts_with("# optimized:") {
            return src.split_at(at);
        }
        at += line.len();
    }
    (src, "")
}

/// Deterministic inputs for a graph whose input shapes are concrete: floats in [-3, 3), integers
/// in [-10, 10) ([0, 20) unsigned), bools alternating.
fn opt_inputs(g: &Graph) -> Option<Vec<TensorData>> {
    let mut state = 0x2545f4914f6cdd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    g.inputs
        .iter()
        .map(|&id| {
            let ty = g.ty(id);
            let shape = ty.static_shape()?;
            let n: usize = shape.iter().product();
            let v: Vec<f64> = (0..n)
                .map(|k| {
                    let u = next();
                    match ty.dtype {
                        d if d.is_float() => u * 6.0 - 3.0,
                        DType::Bool => (k % 2) as f64,
                        d if d.is_unsigned_int() => (u * 20.0).floor(),
                        _ => (u * 20.0).floor() - 10.0,
                    }
                })
                .collect();
            Some(TensorData::from_f64(ty.dtype, shape, &v))
        })
        .collect()
}

fn check_opt(rel: &str, src: &str, bless: bool) -> Outcome {
    let (input, expectation) = split_expectation(src);
    let g = parse(rel, input)?;
    let mut options = nnc::opt::OptOptions::default();
    if let Some(list) = directive(input, "rules")? {
        options.only = Some(list.split(',').map(|r| r.trim().to_string()).collect());
    }
    let opt = nnc::opt::optimize(&g, &options).map_err(|e| format!("does not optimize: {e}"))?;
    let printed = check_round_trip(rel, &opt.graph)?;
    if let Some(inputs) = opt_inputs(&g) {
        if let Ok(want) = interp::run(&g, &inputs) {
            let got = interp::run(&opt.graph, &inputs).map_err(|e| format!("the optimized graph fails to run: {e}"))?;
            for (k, (w, f)) in want.iter().zip(&got).enumerate() {
                let name = g.name_of(g.outputs[k]);
                let same = w.dtype() == f.dtype()
                    && w.shape() == f.shape()
                    && if w.dtype().is_float() {
                        w.to_f64_vec().iter().zip(f.to_f64_vec()).all(|(&a, b)| {
                            (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= 1e-5 + 1e-4 * a.abs()
                        })
                    } else {
                        w.to_i64_vec() == f.to_i64_vec()
                    };
                if !same {
                    return Err(format!(
                        "the optimized graph computes another {}:\n  input graph: {}\n  optimized:   {}",
                        value_name(name),
                        format_tensor(name, w),
                        format_tensor(name, f)
                    ));
                }
            }
        }
    }
    let applied = if opt.applied.is_empty() {
        "none".to_string()
    } else {
        opt.applied.iter().map(|(n, c)| format!("{n} {c}")).collect::<Vec<_>>().join(", ")
    };
    let mut want = format!("# applied: {applied}\n# optimized:\n");
    for line in printed.lines() {
        want.push_str(format!("# {line}").trim_end());
        want.push('\n');
    }
    if expectation == want {
        Ok(None)
    } else if bless {
        let mut input = input.to_string();
        if !input.ends_with('\n') {
            input.push('\n');
        }
        Ok(Some(format!("{input}{want}")))
    } else {
        Err(format!("optimizes differently:\n{}", diff(expectation, &want)))
    }
}

// ---- fuse ----

/// The lines that start a fuse file's expectation sections, in order.
const FUSE_SECTIONS: [&str; 5] = ["# decisions:", "# fused:", "# gpu kernels:", "# cpu decisions:", "# cpu kernels:"];

/// Splits a fuse file into the input graph and the expectation (from the first section line on).
fn split_fuse_expectation(src: &str) -> (&str, &str) {
    let mut at = 0;
    for line in src.split_inclusive('\n') {
        if FUSE_SECTIONS.iter().any(|s| line.trim_end() == *s) {
            return src.split_at(at);
        }
        at += line.len();
    }
    (src, "")
}

/// Appends `# <title>` and `text`, each of its lines commented out with `# `.
fn push_section(out: &mut String, title: &str, text: &str) {
    out.push_str(title);
    out.push('\n');
    for line in text.lines() {
        out.push_str(format!("# {line}").trim_end());
        out.push('\n');
    }
}

/// Whether two tensors agree: same dtype and shape; floats within `atol + rtol * |want|` (NaN
/// matches NaN, infinities must be equal), integers and bools exactly.
fn agree(want: &TensorData, found: &TensorData, rtol: f64, atol: f64) -> bool {
    want.dtype() == found.dtype()
        && want.shape() == found.shape()
        && if want.dtype().is_float() {
            want.to_f64_vec().iter().zip(found.to_f64_vec()).all(|(&w, f)| {
                if w.is_nan() || f.is_nan() {
                    w.is_nan() && f.is_nan()
                } else if w.is_infinite() || f.is_infinite() {
                    w == f
                } else {
                    (f - w).abs() <= atol + rtol * w.abs()
                }
            })
        } else {
            want.to_i64_vec() == found.to_i64_vec()
        }
}

fn check_fuse(rel: &str, src: &str, bless: bool) -> Outcome {
    use nnc::kernel::Device;
    use nnc::lower::fuse::fuse;
    use nnc::lower::schedule::{fuse_options, schedule_all};
    let (input, expectation) = split_fuse_expectation(src);
    let g = parse(rel, input)?;
    let (gpu, cpu) = (Device::gpu(), Device::cpu());

    // The compiled programs must compute what the reference interpreter does, blessing or not.
    let inputs = opt_inputs(&g).ok_or("fuse files need static input shapes")?;
    let want = interp::run(&g, &inputs).map_err(|e| format!("the reference interpreter fails: {e}"))?;
    for (device, label) in [(&gpu, "gpu"), (&cpu, "cpu")] {
        let program =
            nnc::lower::compile(&g, device, None).map_err(|e| format!("does not compile for the {label}: {e}"))?;
        let got = program.run_interpreted(&inputs).map_err(|e| format!("the {label} program fails to run: {e}"))?;
        if got.len() != want.len() {
            return Err(format!("the {label} program gives {} outputs for {}", got.len(), want.len()));
        }
        for (k, (w, f)) in want.iter().zip(&got).enumerate() {
            if !agree(w, f, 1e-4, 1e-5) {
                let name = g.name_of(g.outputs[k]);
                return Err(format!(
                    "the {label} program computes another {}:\n  interpreter: {}\n  {label} kernels: {}",
                    value_name(name),
                    format_tensor(name, w),
                    format_tensor(name, f)
                ));
            }
        }
    }

    let fused = fuse(&g, &fuse_options(&gpu)).map_err(|e| format!("does not fuse: {e}"))?;
    // The CPU's as compiled: weights re-laid-out for its vector tiles first.
    let fused_cpu = nnc::lower::fuse_for(&g, &cpu, None).map_err(|e| format!("does not fuse for the cpu: {e}"))?;
    let kernels = |f: &nnc::kernel::program::Fused, device: &Device, label: &str| {
        schedule_all(f, device)
            .map(|ks| ks.iter().map(|k| k.to_string()).collect::<String>())
            .map_err(|e| format!("does not schedule for the {label}: {e}"))
    };
    let lines = |ds: &[nnc::kernel::program::Decision]| ds.iter().map(|d| format!("{d}\n")).collect::<String>();
    let mut found = String::new();
    push_section(&mut found, "# decisions:", &lines(&fused.decisions));
    push_section(&mut found, "# fused:", &format!("{fused}"));
    push_section(&mut found, "# gpu kernels:", &kernels(&fused, &gpu, "gpu")?);
    let differing: Vec<_> = fused_cpu
        .decisions
        .iter()
        .filter(|d| !fused.decisions.iter().any(|g| g.value == d.value && g.inlined == d.inlined))
        .cloned()
        .collect();
    if !differing.is_empty() {
        push_section(&mut found, "# cpu decisions:", &lines(&differing));
    }
    push_section(&mut found, "# cpu kernels:", &kernels(&fused_cpu, &cpu, "cpu")?);
    if expectation == found {
        Ok(None)
    } else if bless {
        let mut input = input.to_string();
        if !input.ends_with('\n') {
            input.push('\n');
        }
        Ok(Some(format!("{input}{found}")))
    } else {
        Err(format!("fuses or schedules differently:\n{}", diff(expectation, &found)))
    }
}

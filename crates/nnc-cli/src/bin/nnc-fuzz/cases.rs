//! One fuzz case: a mutant written into its own folder, and the `nnc` commands that take it
//! through import, verification, compilation and a run on the cpu target.

use crate::corpus::Corpus;
use crate::mutate;
use clap::ValueEnum;
use std::path::Path;

/// The kinds of input a user hands `nnc`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum Kind {
    /// ONNX models.
    Onnx,
    /// `.nnir` text.
    Nnir,
    /// `.npy` and `.pb` tensor files given as inputs.
    Tensor,
    /// Bundle folders written by `nnc compile`.
    Bundle,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Onnx, Kind::Nnir, Kind::Tensor, Kind::Bundle];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Onnx => "onnx",
            Kind::Nnir => "nnir",
            Kind::Tensor => "tensor",
            Kind::Bundle => "bundle",
        }
    }
}

/// A case ready to run in its folder.
#[derive(Debug)]
pub struct Case {
    pub kind: Kind,
    /// The seed it was made from.
    pub seed: String,
    /// What the mutators did.
    pub mutations: Vec<String>,
    /// `nnc` argument lists, run in order in the case's folder while each succeeds.
    pub commands: Vec<Vec<String>>,
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// The commands that take the model file `model` (in the case folder) through the pipeline:
/// mostly a run on the cpu target, sometimes compile-then-run of a bundle, a benchmark, a
/// dump of the scheduled kernels, or the reference interpreter.
fn model_commands(rng: &mut fastrand::Rng, model: &str) -> Vec<Vec<String>> {
    let run = ["run", model, "--random-inputs", "--threads", "1"];
    match rng.u8(..20) {
        0..=11 => vec![args(&run)],
        12..=14 => vec![
            args(&["compile", model, "-o", "out.nnc"]),
            args(&["run", "out.nnc", "--random-inputs", "--threads", "1"]),
        ],
        15 | 16 => vec![args(&["bench", model, "--iters", "1", "--warmup", "0", "--threads", "1"])],
        17 | 18 => vec![args(&["dump", model, "--after", "schedule"])],
        _ => vec![args(&["run", model, "--random-inputs", "--target", "interp"])],
    }
}

/// Makes case `kind` from `rng` in the empty folder `dir`.
pub fn build(kind: Kind, rng: &mut fastrand::Rng, corpus: &Corpus, dir: &Path) -> std::io::Result<Case> {
    let pick = |rng: &mut fastrand::Rng, n: usize| rng.usize(..n.max(1));
    match kind {
        Kind::Onnx => {
            let seed = &corpus.onnx[pick(rng, corpus.onnx.len())];
            let (bytes, mutations) = mutate::onnx::mutate(rng, &std::fs::read(seed)?);
            std::fs::write(dir.join("model.onnx"), bytes)?;
            Ok(Case { kind, seed: seed.display().to_string(), mutations, commands: model_commands(rng, "model.onnx") })
        }
        Kind::Nnir => {
            let seed = &corpus.nnir[pick(rng, corpus.nnir.len())];
            let text = std::fs::read_to_string(seed)?;
            let (text, mutations) = mutate::text::mutate(rng, &text);
            std::fs::write(dir.join("model.nnir"), text)?;
            Ok(Case { kind, seed: seed.display().to_string(), mutations, commands: model_commands(rng, "model.nnir") })
        }
        Kind::Tensor => tensor_case(rng, corpus, dir),
        Kind::Bundle => {
            let seed = &corpus.bundles[pick(rng, corpus.bundles.len())];
            let bundle = dir.join("b.nnc");
            copy_dir(seed, &bundle)?;
            let mutations = mutate::bundle::mutate(rng, seed, &bundle)?;
            let command = if rng.u8(..4) == 0 {
                args(&["bench", "b.nnc", "--iters", "1", "--warmup", "0", "--threads", "1"])
            } else {
                args(&["run", "b.nnc", "--random-inputs", "--threads", "1"])
            };
            Ok(Case { kind, seed: seed.display().to_string(), mutations, commands: vec![command] })
        }
    }
}

/// A model with its test data, one input file mutated as `.pb` or rewritten as a mutated
/// `.npy` given with `--input`.
fn tensor_case(rng: &mut fastrand::Rng, corpus: &Corpus, dir: &Path) -> std::io::Result<Case> {
    let (model, data) = &corpus.tensors[rng.usize(..corpus.tensors.len().max(1))];
    std::fs::copy(model, dir.join("model.onnx"))?;
    copy_dir(data, &dir.join("data"))?;
    let inputs: Vec<String> = std::fs::read_dir(data)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("input_") && n.ends_with(".pb"))
        .collect();
    let mut inputs = inputs;
    inputs.sort();
    let file = inputs[rng.usize(..inputs.len().max(1))].clone();
    let pb = std::fs::read(data.join(&file))?;
    let mut command = args(&["run", "model.onnx", "--data", "data", "--threads", "1"]);
    // The same values as a .npy file given by name, where nnc reads the seed's input names and
    // tensor (a seed of an unsupported dtype is mutated as .pb).
    let index: usize = file.trim_start_matches("input_").trim_end_matches(".pb").parse().unwrap_or(0);
    let as_npy = rng.bool().then(|| {
        let names = nnc_onnx::read_inputs(model).ok()?;
        let (name, _) = names.get(index)?.clone();
        let (_, t) = nnc_onnx::read_tensor_file(&data.join(&file)).ok()?;
        Some((name, t))
    });
    let mutations = match as_npy.flatten() {
        Some((name, t)) => {
            let (bytes, done) = mutate::tensor::mutate_npy(rng, npy_descr(t.dtype()), t.shape(), t.bytes());
            std::fs::write(dir.join("x.npy"), bytes)?;
            command.extend(["--input".to_string(), format!("{name}=x.npy")]);
            done.into_iter().map(|d| format!("x.npy for input {name}: {d}")).collect()
        }
        None => {
            let (bytes, done) = mutate::tensor::mutate_pb(rng, &pb);
            std::fs::write(dir.join("data").join(&file), bytes)?;
            done.into_iter().map(|d| format!("{file}: {d}")).collect()
        }
    };
    Ok(Case { kind: Kind::Tensor, seed: model.display().to_string(), mutations, commands: vec![command] })
}

/// numpy's little-endian name of `dtype` (bf16, float8/float4 and the 4- and 2-bit integers,
/// which numpy lacks, as raw words and bytes).
fn npy_descr(dtype: nnc_ir::DType) -> &'static str {
    use nnc_ir::DType::*;
    match dtype {
        F32 => "<f4",
        F64 => "<f8",
        F16 => "<f2",
        BF16 => "<u2",
        I64 => "<i8",
        I32 => "<i4",
        I16 => "<i2",
        I8 => "|i1",
        U64 => "<u8",
        U32 => "<u4",
        U16 => "<u2",
        U8 => "|u1",
        Bool => "|b1",
        F8E4M3FN | F8E4M3FNUZ | F8E5M2 | F8E5M2FNUZ | F8E8M0 | F4E2M1 | U4 | U2 => "|u1",
        I4 | I2 => "|i1",
    }
}

/// Copies the folder `from` to `to` (files and folders; nothing else).
pub fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()))?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name()))?;
        }
    }
    Ok(())
}

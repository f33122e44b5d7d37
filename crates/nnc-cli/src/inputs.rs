//! The inputs a model runs on: files named by `--input NAME=PATH`, an ONNX test-data folder
//! (`--data DIR`, `input_N.pb` is the N-th input), or pseudo-random values from a seed
//! (`--random-inputs`), shared by `nnc run` and `nnc bench`.

use crate::tensor_io::{read_pb, read_tensor};
use anyhow::{anyhow, bail, Context};
use nnc_ir::{DType, TensorData, TensorType};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Where each input comes from.
#[derive(Clone, Debug, Default)]
pub struct InputSources {
    /// `--input NAME=PATH` (a `.npy` or `.pb` file).
    pub files: Vec<(String, PathBuf)>,
    /// `--data DIR`.
    pub data: Option<PathBuf>,
    /// `--random-inputs SEED`: inputs no file gives are pseudo-random.
    pub random_seed: Option<u64>,
    /// The inputs are a bundle's, compiled for their shapes (messages say so).
    pub bundle: bool,
}

/// The tensors from files for each input (`None` where no file gives one), in `interface`
/// order. Errors name the input and file.
pub fn read_given(
    interface: &[(String, TensorType)],
    sources: &InputSources,
) -> anyhow::Result<Vec<Option<TensorData>>> {
    let mut given: Vec<Option<TensorData>> = vec![None; interface.len()];
    let mut seen = BTreeSet::new();
    for (name, path) in &sources.files {
        if !seen.insert(name.as_str()) {
            bail!("--input {name} is given more than once");
        }
        let index = interface.iter().position(|(n, _)| n == name).ok_or_else(|| {
            let names: Vec<String> = interface.iter().map(|(n, _)| format!("%{n}")).collect();
            let names = if names.is_empty() { "none".to_string() } else { names.join(", ") };
            anyhow!("--input {name}: the graph has no input %{name} (its inputs: {names})")
        })?;
        let t = read_tensor(path).with_context(|| format!("input %{name}"))?;
        check_input(name, &interface[index].1, &t, &path.display().to_string(), sources.bundle)?;
        given[index] = Some(t);
    }
    if let Some(dir) = &sources.data {
        check_dir(dir)?;
        for (i, slot) in given.iter_mut().enumerate() {
            let path = dir.join(format!("input_{i}.pb"));
            if slot.is_none() && path.exists() {
                let (name, ty) = &interface[i];
                let t = read_pb(&path).with_context(|| format!("input %{name}"))?;
                check_input(name, ty, &t, &path.display().to_string(), sources.bundle)?;
                *slot = Some(t);
            }
        }
        let extra = dir.join(format!("input_{}.pb", interface.len()));
        if extra.exists() {
            eprintln!("warning: {} ignored: the graph has {} inputs", extra.display(), interface.len());
        }
    }
    Ok(given)
}

/// An error naming the inputs no source gave.
pub fn missing(interface: &[(String, TensorType)], given: &[Option<TensorData>]) -> anyhow::Result<()> {
    let missing: Vec<String> =
        interface.iter().zip(given).filter(|(_, g)| g.is_none()).map(|((n, ty), _)| format!("%{n}: {ty}")).collect();
    if !missing.is_empty() {
        bail!(
            "missing input{} {} (give each with --input NAME=PATH, all with --data DIR, or use --random-inputs)",
            if missing.len() == 1 { "" } else { "s" },
            missing.join(", ")
        );
    }
    Ok(())
}

/// Rejects a tensor whose dtype, rank or fixed dimensions differ from the input's declared type
/// (symbolic dimensions are bound and checked when the graph runs); for a bundle's input, the
/// message says that the bundle was compiled for that type.
pub fn check_input(name: &str, ty: &TensorType, t: &TensorData, source: &str, bundle: bool) -> anyhow::Result<()> {
    let fits = t.dtype() == ty.dtype
        && t.shape().len() == ty.rank()
        && ty.shape.iter().zip(t.shape()).all(|(d, &n)| d.as_usize().is_none_or(|c| c == n));
    match (fits, bundle) {
        (true, _) => Ok(()),
        (false, false) => bail!("input %{name} from {source}: expected {ty}, found {}", type_of(t)),
        (false, true) => bail!(
            "input %{name} from {source}: the bundle was compiled for {ty}, not {} (compile the model again for \
             these shapes, with --shape)",
            type_of(t)
        ),
    }
}

fn check_dir(dir: &Path) -> anyhow::Result<()> {
    let meta = std::fs::metadata(dir).with_context(|| format!("cannot read data folder {}", dir.display()))?;
    if !meta.is_dir() {
        bail!("{} is not a folder", dir.display());
    }
    Ok(())
}

/// The inputs a timing command runs on: read from `--data DIR` (every one must be there) or
/// pseudo-random with seed 0, shaped by `shapes`, in `interface` order.
pub fn timing_inputs(
    interface: &[(String, TensorType)],
    shapes: &[Vec<usize>],
    data: Option<&Path>,
    bundle: bool,
) -> anyhow::Result<Vec<TensorData>> {
    let sources =
        InputSources { data: data.map(Path::to_path_buf), random_seed: Some(0), bundle, ..Default::default() };
    let given = read_given(interface, &sources)?;
    if data.is_some() {
        missing(interface, &given)?;
    }
    interface
        .iter()
        .zip(given)
        .zip(shapes)
        .enumerate()
        .map(|(i, (((name, ty), t), shape))| match t {
            Some(t) => Ok(t),
            None => random_input(name, ty.dtype, shape, 0, i),
        })
        .collect()
}

/// A pseudo-random tensor of `dtype` and `shape` from a generator seeded by `seed` and the
/// input's position: floats uniform in [-1, 1), integers in [0, 10) (valid indices of any
/// embedding), booleans half true. The size is checked before anything is allocated.
pub fn random_input(name: &str, dtype: DType, shape: &[usize], seed: u64, index: usize) -> anyhow::Result<TensorData> {
    let bytes = nnc_ir::size::checked_tensor_bytes(dtype, shape).map_err(|e| anyhow!("input %{name}: {e}"))?;
    let n = (bytes / dtype.size_bytes() as u64) as usize;
    // The values are made as f64 or i64 (8 bytes), then converted to the dtype.
    nnc_ir::size::ensure_available(n as u64 * 8 + bytes, || format!("random input %{name}"))?;
    let mut rng =
        fastrand::Rng::with_seed(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(0x6e6e63 + index as u64));
    let shape = shape.to_vec();
    Ok(match dtype {
        DType::Bool => {
            let v: Vec<bool> = (0..n).map(|_| rng.bool()).collect();
            TensorData::from_vec(shape, &v)
        }
        d if d.is_float() => {
            let v: Vec<f64> = (0..n).map(|_| rng.f64() * 2.0 - 1.0).collect();
            TensorData::from_f64(d, shape, &v)
        }
        d => {
            let v: Vec<i64> = (0..n).map(|_| rng.i64(0..10)).collect();
            TensorData::from_i64(d, shape, &v)
        }
    })
}

/// `f32[2, 3]`: a tensor's dtype and concrete shape.
pub fn type_of(t: &TensorData) -> String {
    TensorType::new(t.dtype(), t.shape().iter().copied()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_inputs_are_seeded_and_checked() {
        let a = random_input("x", DType::F32, &[4, 5], 1, 0).unwrap();
        assert_eq!(a, random_input("x", DType::F32, &[4, 5], 1, 0).unwrap());
        assert_ne!(a, random_input("x", DType::F32, &[4, 5], 2, 0).unwrap());
        assert_ne!(a, random_input("x", DType::F32, &[4, 5], 1, 1).unwrap());
        assert!(a.to_f64_vec().iter().all(|v| (-1.0..1.0).contains(v)));
        let i = random_input("i", DType::I64, &[100], 0, 0).unwrap();
        assert!(i.to_i64_vec().iter().all(|v| (0..10).contains(v)));
        let e = random_input("big", DType::F32, &[1 << 32, 1 << 32], 0, 0).unwrap_err();
        assert!(e.to_string().contains("input %big") && e.to_string().contains("too large"), "{e}");
        let e = random_input("huge", DType::F32, &[1_000_000, 1_000_000, 10], 0, 0).unwrap_err();
        assert!(e.to_string().contains("cannot allocate"), "{e}");
    }
}

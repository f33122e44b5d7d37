//! `--shape`: the input shapes a command compiles or runs for.
//!
//! `--shape NAME=SIZE` binds a symbolic dimension (`--shape batch=8`); `--shape INPUT=D0,D1,..`
//! gives one input's whole shape. Every dimension no flag decides, and no input file gives, is
//! bound to 1 and said so on stderr, so a bundle is never frozen to a batch size in silence.

use anyhow::{anyhow, bail};
use nnc_ir::{Dim, TensorType};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

/// What the `--shape` flags say.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ShapeFlags {
    /// Whole shapes of inputs, by input name.
    pub inputs: BTreeMap<String, Vec<usize>>,
    /// Sizes of symbolic dimensions, by symbol.
    pub symbols: BTreeMap<String, i64>,
}

impl ShapeFlags {
    /// Parses `--shape` values for a model whose inputs are `interface`: a name that is an
    /// input takes a shape, any other a size for the symbol of that name.
    pub fn parse(flags: &[String], interface: &[(String, TensorType)]) -> anyhow::Result<ShapeFlags> {
        let mut out = ShapeFlags::default();
        let symbols = symbols_of(interface);
        for flag in flags {
            let (name, value) = flag
                .split_once('=')
                .ok_or_else(|| anyhow!("--shape `{flag}`: expected SYMBOL=SIZE or INPUT=D0,D1,..."))?;
            let name = name.trim().trim_start_matches('%');
            let dims = value
                .split(',')
                .map(str::trim)
                .filter(|d| !d.is_empty())
                .map(|d| d.parse::<usize>().map_err(|_| anyhow!("--shape `{flag}`: `{d}` is not a size")))
                .collect::<anyhow::Result<Vec<usize>>>()?;
            if interface.iter().any(|(n, _)| n == name) {
                if out.inputs.insert(name.to_string(), dims).is_some() {
                    bail!("--shape {name} is given more than once");
                }
            } else if symbols.iter().any(|s| s == name) {
                let [size] = dims[..] else { bail!("--shape `{flag}`: a symbol takes one size") };
                let size = i64::try_from(size).map_err(|_| anyhow!("--shape `{flag}`: {size} is too large"))?;
                if out.symbols.insert(name.to_string(), size).is_some() {
                    bail!("--shape {name} is given more than once");
                }
            } else {
                let inputs: Vec<&str> = interface.iter().map(|(n, _)| n.as_str()).collect();
                let symbols = if symbols.is_empty() { "none".to_string() } else { symbols.join(", ") };
                bail!(
                    "--shape {name}: the model has no input and no symbolic dimension `{name}` (inputs: {}; symbols: {symbols})",
                    inputs.join(", ")
                );
            }
        }
        Ok(out)
    }
}

/// The symbols the inputs' declared shapes mention, sorted.
pub fn symbols_of(interface: &[(String, TensorType)]) -> Vec<String> {
    let mut out: Vec<String> =
        interface.iter().flat_map(|(_, ty)| ty.shape.iter().flat_map(Dim::symbols)).map(|s| s.to_string()).collect();
    out.sort();
    out.dedup();
    out
}

/// Concrete shapes for every input, and the symbols that were bound to 1 for want of a flag.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolved {
    pub shapes: Vec<Vec<usize>>,
    /// The size of every symbol the inputs' declared shapes mention.
    pub bindings: BTreeMap<String, i64>,
    pub defaulted: Vec<String>,
}

impl Resolved {
    /// Each input's shape by name (`interface` lists the inputs in order).
    pub fn by_name(&self, interface: &[(String, TensorType)]) -> HashMap<String, Vec<usize>> {
        interface.iter().map(|(n, _)| n.clone()).zip(self.shapes.iter().cloned()).collect()
    }

    /// `%x: f32[1, 64]`, one per input, for messages.
    pub fn describe(&self, interface: &[(String, TensorType)]) -> String {
        let parts: Vec<String> = interface
            .iter()
            .zip(&self.shapes)
            .map(|((name, ty), shape)| format!("%{name}: {}", TensorType::new(ty.dtype, shape.iter().copied())))
            .collect();
        parts.join(", ")
    }

    /// The note printed when symbols were bound to 1 by default (empty if none was).
    pub fn note(&self) -> String {
        let mut s = String::new();
        for sym in &self.defaulted {
            let _ = writeln!(s, "note: symbolic dimension `{sym}` bound to 1 (give --shape {sym}=N for another size)");
        }
        s
    }
}

/// Every input's shape: given whole by a flag, or its declared shape with symbols bound by
/// flags, by the inputs given whole, and otherwise to 1. Checks ranks and fixed dimensions.
pub fn resolve(interface: &[(String, TensorType)], flags: &ShapeFlags) -> anyhow::Result<Resolved> {
    let mut bound: BTreeMap<String, i64> = flags.symbols.clone();
    // Inputs given whole bind the symbols their declared dimensions are.
    for (name, ty) in interface {
        if let Some(shape) = flags.inputs.get(name) {
            check_rank_and_fixed(name, ty, shape)?;
            for (d, &n) in ty.shape.iter().zip(shape) {
                if let [s] = d.symbols().as_slice() {
                    if d == &Dim::sym(s) {
                        bound.entry(s.to_string()).or_insert(n as i64);
                    }
                }
            }
        }
    }
    let mut defaulted = Vec::new();
    for s in symbols_of(interface) {
        if !bound.contains_key(&s) {
            bound.insert(s.clone(), 1);
            defaulted.push(s);
        }
    }
    let mut shapes = Vec::with_capacity(interface.len());
    for (name, ty) in interface {
        let shape = match flags.inputs.get(name) {
            Some(shape) => shape.clone(),
            None => ty
                .shape
                .iter()
                .map(|d| {
                    let v = d
                        .eval(&|s| bound.get(s).copied())
                        .ok_or_else(|| anyhow!("input %{name}: cannot evaluate {d}"))?;
                    usize::try_from(v).map_err(|_| anyhow!("input %{name}: dimension {d} is {v} with these sizes"))
                })
                .collect::<anyhow::Result<Vec<usize>>>()?,
        };
        nnc_ir::size::checked_tensor_bytes(ty.dtype, &shape).map_err(|e| anyhow!("input %{name}: {e}"))?;
        shapes.push(shape);
    }
    Ok(Resolved { shapes, bindings: bound, defaulted })
}

/// An error unless `shape` has `ty`'s rank and its fixed dimensions.
pub fn check_rank_and_fixed(name: &str, ty: &TensorType, shape: &[usize]) -> anyhow::Result<()> {
    let fits =
        shape.len() == ty.rank() && ty.shape.iter().zip(shape).all(|(d, &n)| d.as_usize().is_none_or(|c| c == n));
    if !fits {
        let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
        bail!("input %{name} is declared {ty}; shape [{}] does not fit it", dims.join(", "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use nnc_ir::DType;

    fn interface() -> Vec<(String, TensorType)> {
        vec![
            ("x".into(), TensorType::new(DType::F32, [Dim::sym("batch"), Dim::from(64)])),
            ("m".into(), TensorType::new(DType::F32, [Dim::sym("batch"), Dim::sym("seq")])),
        ]
    }

    fn flags(v: &[&str]) -> anyhow::Result<ShapeFlags> {
        ShapeFlags::parse(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>(), &interface())
    }

    #[test]
    fn symbols_and_inputs_resolve() {
        let r = resolve(&interface(), &flags(&["batch=4"]).unwrap()).unwrap();
        assert_eq!(r.shapes, vec![vec![4, 64], vec![4, 1]]);
        assert_eq!(r.defaulted, vec!["seq".to_string()]);
        assert!(r.note().contains("--shape seq=N"));
        let r = resolve(&interface(), &flags(&["x=3,64", "seq=7"]).unwrap()).unwrap();
        assert_eq!(r.shapes, vec![vec![3, 64], vec![3, 7]]);
        assert!(r.defaulted.is_empty());
        assert_eq!(r.describe(&interface()), "%x: f32[3, 64], %m: f32[3, 7]");
    }

    #[test]
    fn bad_flags_are_errors() {
        assert!(flags(&["nope=1"]).unwrap_err().to_string().contains("no input and no symbolic dimension `nope`"));
        assert!(flags(&["batch=1,2"]).unwrap_err().to_string().contains("one size"));
        assert!(flags(&["batch"]).is_err());
        assert!(flags(&["batch=-1"]).is_err());
        let e = resolve(&interface(), &flags(&["x=3,63"]).unwrap()).unwrap_err();
        assert!(e.to_string().contains("declared f32[batch, 64]"), "{e}");
        let e = resolve(&interface(), &flags(&["batch=4294967296", "seq=4294967296"]).unwrap()).unwrap_err();
        assert!(e.to_string().contains("too large"), "{e}");
    }
}

//! A compiled program on disk: what `nnc compile MODEL --target T -o DIR` writes and `nnc run DIR`
//! (or another program) loads without importing, optimizing, fusing or scheduling again.
//!
//! A bundle is a folder with
//! - `manifest.json` ([`Manifest`]): the interface (inputs and outputs with their types), every
//!   buffer and where it lives (an input, a range of `weights.bin`, or an offset in the one arena
//!   of intermediates from the [`MemoryPlan`]), and the kernels in launch order with the buffers
//!   bound to their parameters and their launch sizes;
//! - `weights.bin`: every constant, each at a 64-byte-aligned offset, stored once;
//! - the target's code, named by the manifest (`kernels.bin` of machine code for the CPU, a
//!   `.wgsl` or `.cu`/`.ptx` file per kernel for the GPU targets).

use crate::fuse::{BufferKind, ProgramBuffer};
use crate::plan::{MemoryPlan, ALIGN};
use crate::program::Program;
use nnc_ir::{DType, TensorData};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The version of the format this build writes and reads.
pub const FORMAT: u32 = 1;

/// Everything about a compiled program except the weights' bytes and the code.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// The nnc version that wrote the bundle.
    pub nnc_version: String,
    /// `cpu`, `wgsl` or `cuda`.
    pub target: String,
    pub program: String,
    pub inputs: Vec<Interface>,
    pub outputs: Vec<Interface>,
    pub buffers: Vec<BufferEntry>,
    pub kernels: Vec<KernelEntry>,
    pub arena_bytes: u64,
    /// The largest total size of intermediates live at one time.
    pub arena_lower_bound: u64,
    pub weights_bytes: u64,
    /// Milliseconds per compile phase, in order.
    pub compile_ms: Vec<(String, f64)>,
    /// What the target needs beyond this (the CPU: the instruction set the code was built for).
    #[serde(default)]
    pub target_info: BTreeMap<String, String>,
}

/// A graph input or output: name (without `%`), dtype and shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interface {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<i64>,
    /// For outputs: the buffer that holds it.
    #[serde(default)]
    pub buffer: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BufferEntry {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<i64>,
    pub place: Place,
}

/// Where a buffer's bytes are.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Place {
    /// The n-th graph input.
    Input(usize),
    /// `bytes` bytes at `offset` in `weights.bin`.
    Weight { offset: u64, bytes: u64 },
    /// At this offset in the arena of intermediates.
    Arena(u64),
    /// An intermediate no kernel touches: it has no place in the arena.
    Unplaced,
}

/// One kernel launch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KernelEntry {
    pub name: String,
    /// Buffers bound to the kernel's global parameters, in order (indices into `buffers`).
    pub params: Vec<usize>,
    pub grid: [u32; 3],
    pub workgroup: [u32; 3],
    /// Arithmetic plus bytes moved (the cost model of [`crate::stats`]): a runtime may run
    /// kernels with little work on one thread rather than pay for dispatching to a pool.
    #[serde(default)]
    pub work: f64,
    /// Where the code is: a file of the bundle, or a range of `kernels.bin`.
    pub code: Code,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    /// A source or assembly file of the bundle and the function's name in it.
    File { path: String, entry: String },
    /// Machine code at `offset..offset + bytes` of `kernels.bin`, and the absolute addresses
    /// to patch in when it is loaded.
    Machine { offset: u64, bytes: u64, relocations: Vec<Relocation> },
    /// The entry point at `entry` of the bundle's linked image (`kernels.image` for the CPU),
    /// loaded whole; `relocations` are the image's that lie in this kernel's function (symbol
    /// `@image`: the image's own start).
    Linked { entry: u64, relocations: Vec<Relocation> },
}

/// An 8-byte absolute address of `symbol` + `addend` at `offset` in the kernel's code.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Relocation {
    pub offset: u64,
    pub symbol: String,
    pub addend: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

impl Manifest {
    /// The manifest of `program` for `target`, with the weights laid out in one blob (returned
    /// alongside) and `code[k]` saying where kernel k's code is.
    pub fn of(program: &Program, target: &str, code: Vec<Code>) -> (Manifest, Vec<u8>) {
        let fused = &program.fused;
        let plan = MemoryPlan::of(fused);
        let mut weights: Vec<u8> = Vec::new();
        let buffers = fused
            .buffers
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let place = match &b.kind {
                    BufferKind::Input(n) => Place::Input(*n),
                    BufferKind::Constant(t) => {
                        let offset = weights.len().div_ceil(ALIGN as usize) * ALIGN as usize;
                        weights.resize(offset, 0);
                        weights.extend_from_slice(t.bytes());
                        Place::Weight { offset: offset as u64, bytes: t.bytes().len() as u64 }
                    }
                    BufferKind::Intermediate => plan.offsets[i].map_or(Place::Unplaced, Place::Arena),
                };
                BufferEntry { name: b.name.clone(), dtype: b.dtype.name().into(), shape: b.shape.clone(), place }
            })
            .collect();
        let interface = |i: usize, name: &str| {
            let b = &fused.buffers[i];
            Interface { name: name.into(), dtype: b.dtype.name().into(), shape: b.shape.clone(), buffer: i }
        };
        let mut inputs: Vec<(usize, Interface)> = fused
            .buffers
            .iter()
            .enumerate()
            .filter_map(|(i, b)| match b.kind {
                BufferKind::Input(n) => Some((n, interface(i, &b.name))),
                _ => None,
            })
            .collect();
        inputs.sort_by_key(|(n, _)| *n);
        let outputs =
            fused.outputs.iter().zip(&fused.output_names).map(|(b, name)| interface(b.index(), name)).collect();
        let work = crate::stats::ProgramStats::of(fused)
            .kernels
            .iter()
            .map(|k| k.flops + k.bytes() as f64)
            .collect::<Vec<_>>();
        let kernels = fused
            .groups
            .iter()
            .zip(&program.kernels)
            .zip(code)
            .zip(work)
            .map(|(((g, k), code), work)| KernelEntry {
                name: k.name.clone(),
                params: g.reads.iter().chain(&g.writes).map(|b| b.index()).collect(),
                grid: k.launch.grid,
                workgroup: k.launch.workgroup,
                work,
                code,
            })
            .collect();
        let manifest = Manifest {
            format: FORMAT,
            nnc_version: env!("CARGO_PKG_VERSION").into(),
            target: target.into(),
            program: fused.name.clone(),
            inputs: inputs.into_iter().map(|(_, i)| i).collect(),
            outputs,
            buffers,
            kernels,
            arena_bytes: plan.arena_bytes,
            arena_lower_bound: plan.lower_bound,
            weights_bytes: weights.len() as u64,
            compile_ms: Vec::new(),
            target_info: BTreeMap::new(),
        };
        (manifest, weights)
    }

    /// Writes `manifest.json` and `weights.bin` into `dir` (created if needed).
    pub fn write(&self, dir: &Path, weights: &[u8]) -> Result<(), BundleError> {
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let json = serde_json::to_string_pretty(self).expect("a manifest always serializes");
        write_file(&dir.join("manifest.json"), json.as_bytes())?;
        write_file(&dir.join("weights.bin"), weights)
    }

    /// Reads `dir/manifest.json` and `dir/weights.bin`, checking the format, every buffer's
    /// dtype and size, and every index the manifest holds.
    pub fn read(dir: &Path) -> Result<(Manifest, bytes::Bytes), BundleError> {
        let path = dir.join("manifest.json");
        let text = std::fs::read_to_string(&path).map_err(|e| io(&path, e))?;
        let manifest: Manifest = serde_json::from_str(&text).map_err(|e| invalid(&path, e.to_string()))?;
        if manifest.format != FORMAT {
            return Err(invalid(
                &path,
                format!("bundle format {} (this nnc reads format {FORMAT}; compile the model again)", manifest.format),
            ));
        }
        let wpath = dir.join("weights.bin");
        let weights = bytes::Bytes::from(std::fs::read(&wpath).map_err(|e| io(&wpath, e))?);
        if weights.len() as u64 != manifest.weights_bytes {
            return Err(invalid(
                &wpath,
                format!("{} bytes, the manifest says {}", weights.len(), manifest.weights_bytes),
            ));
        }
        manifest.check().map_err(|m| invalid(&path, m))?;
        Ok((manifest, weights))
    }

    /// Checks that every index and range in the manifest is in bounds.
    fn check(&self) -> Result<(), String> {
        let n = self.buffers.len();
        for b in &self.buffers {
            let dtype =
                DType::from_name(&b.dtype).ok_or_else(|| format!("buffer `{}`: dtype `{}`", b.name, b.dtype))?;
            let bytes = buffer_bytes(dtype, &b.shape).ok_or_else(|| format!("buffer `{}`: bad shape", b.name))?;
            match b.place {
                Place::Input(i) if i >= self.inputs.len() => {
                    return Err(format!("buffer `{}` is input {i} of {}", b.name, self.inputs.len()))
                }
                Place::Weight { offset, bytes: len }
                    if len != bytes || offset.checked_add(len).is_none_or(|end| end > self.weights_bytes) =>
                {
                    return Err(format!("buffer `{}`: weight range out of bounds", b.name))
                }
                Place::Arena(offset) if offset.checked_add(bytes).is_none_or(|end| end > self.arena_bytes) => {
                    return Err(format!("buffer `{}`: arena offset out of bounds", b.name))
                }
                _ => {}
            }
        }
        for k in &self.kernels {
            if k.params.iter().any(|&p| p >= n) {
                return Err(format!("kernel `{}` binds a buffer that does not exist", k.name));
            }
        }
        if self.inputs.iter().chain(&self.outputs).any(|i| i.buffer >= n) {
            return Err("an input or output names a buffer that does not exist".into());
        }
        Ok(())
    }

    /// The program's buffers as the runtimes use them, constants as slices of `weights` (shared,
    /// not copied), and the arena plan.
    pub fn buffers(&self, weights: &bytes::Bytes) -> Result<(Vec<ProgramBuffer>, MemoryPlan), String> {
        let mut offsets = Vec::with_capacity(self.buffers.len());
        let buffers = self
            .buffers
            .iter()
            .map(|b| {
                let dtype = DType::from_name(&b.dtype).ok_or_else(|| format!("buffer `{}`: dtype", b.name))?;
                let (kind, offset) = match b.place {
                    Place::Input(n) => (BufferKind::Input(n), None),
                    Place::Weight { offset, bytes } => {
                        let shape = b.shape.iter().map(|&d| d as usize).collect();
                        let slice = weights.slice(offset as usize..(offset + bytes) as usize);
                        let t =
                            TensorData::from_bytes(dtype, shape, slice).map_err(|e| format!("`{}`: {e}", b.name))?;
                        (BufferKind::Constant(t), None)
                    }
                    Place::Arena(offset) => (BufferKind::Intermediate, Some(offset)),
                    Place::Unplaced => (BufferKind::Intermediate, None),
                };
                offsets.push(offset);
                Ok(ProgramBuffer { name: b.name.clone(), dtype, shape: b.shape.clone(), kind })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let plan = MemoryPlan { offsets, arena_bytes: self.arena_bytes, lower_bound: self.arena_lower_bound };
        Ok((buffers, plan))
    }
}

fn buffer_bytes(dtype: DType, shape: &[i64]) -> Option<u64> {
    shape.iter().try_fold(dtype.size_bytes() as u64, |acc, &d| u64::try_from(d).ok().and_then(|d| acc.checked_mul(d)))
}

/// Writes `bytes` to `path`.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), BundleError> {
    std::fs::write(path, bytes).map_err(|e| io(path, e))
}

fn io(path: &Path, source: std::io::Error) -> BundleError {
    BundleError::Io { path: path.display().to_string(), source }
}

/// An error about the file at `path`.
pub fn invalid(path: &Path, message: impl Into<String>) -> BundleError {
    BundleError::Invalid { path: path.display().to_string(), message: message.into() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::Device;
    use nnc_ir::text::parse;

    fn program() -> Program {
        let text = "graph g(%x: f32[2, 3]) {\n  %w: f32[3] = constant [1.0, 2.0, 3.0]\n  %a: f32[2, 3] = add(%x, %w)\n  %y: f32[2, 3] = relu(%a)\n  return %y\n}\n";
        let g = parse(text, "bundle-test").unwrap();
        crate::program::compile(&g, &Device::cpu(), None).unwrap()
    }

    #[test]
    fn round_trips_through_a_folder() {
        let p = program();
        let code = p.kernels.iter().map(|k| Code::File { path: format!("{}.txt", k.name), entry: "main".into() });
        let (m, w) = Manifest::of(&p, "cpu", code.collect());
        assert_eq!(m.inputs.len(), 1);
        assert_eq!(m.inputs[0].shape, vec![2, 3]);
        let dir = std::env::temp_dir().join(format!("nnc-bundle-test-{}", std::process::id()));
        m.write(&dir, &w).unwrap();
        let (back, weights) = Manifest::read(&dir).unwrap();
        assert_eq!(back, m);
        let (buffers, plan) = back.buffers(&weights).unwrap();
        assert_eq!(buffers, p.fused.buffers);
        assert_eq!(plan, MemoryPlan::of(&p.fused));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn rejects_out_of_bounds_manifests() {
        let p = program();
        let (mut m, _) = Manifest::of(&p, "cpu", vec![]);
        m.kernels.clear();
        assert!(m.check().is_ok());
        m.arena_bytes = 0;
        let broken = m.buffers.iter().any(|b| matches!(b.place, Place::Arena(_)));
        assert_eq!(m.check().is_err(), broken);
        let (mut m, _) = Manifest::of(&p, "cpu", vec![]);
        m.weights_bytes = 1;
        assert!(m.check().is_err());
    }
}

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

use crate::plan::{MemoryPlan, ALIGN};
use crate::program::Program;
use crate::program::{BufferKind, ProgramBuffer};
use nnc_ir::{DType, TensorData};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The version of the format this build writes and reads.
pub const FORMAT: u32 = 2;

/// The manifest's file name in a bundle folder.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The weights' file name in a bundle folder.
pub const WEIGHTS_FILE: &str = "weights.bin";
/// The largest `manifest.json` read (a manifest nnc writes is a few hundred bytes a kernel).
const MAX_MANIFEST_BYTES: u64 = 256 << 20;

/// Everything about a compiled program except the weights' bytes and the code.
///
/// The same program and options give the same manifest, byte for byte: it holds no time,
/// path or other fact of the compile itself (`nnc compile --stats` reports those).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Manifest {
    pub format: u32,
    /// The nnc version that wrote the bundle.
    pub nnc_version: String,
    /// `cpu`, `wgsl` or `cuda`.
    pub target: String,
    pub program: String,
    /// The inputs with the shapes the program was compiled for (symbols bound).
    pub inputs: Vec<Interface>,
    pub outputs: Vec<Interface>,
    pub buffers: Vec<BufferEntry>,
    pub kernels: Vec<KernelEntry>,
    pub arena_bytes: u64,
    /// The largest total size of intermediates live at one time.
    pub arena_lower_bound: u64,
    pub weights_bytes: u64,
    /// What the target needs beyond this (the CPU: the instruction set the code was built for).
    #[serde(default)]
    pub target_info: BTreeMap<String, String>,
    /// What a device must offer to run the code (for WGSL: the WebGPU features and limits the
    /// kernels use), checked by a runtime before it creates anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requires: Option<Requirements>,
    /// The target's code files (paths relative to the folder) and their sizes, in the order the
    /// checksum covers them.
    pub files: Vec<FileEntry>,
    /// The XXH3-64 checksum, in hex, of this manifest (serialized with this field empty), then
    /// `weights.bin`, then `files` in order: a bundle damaged or edited after it was written is
    /// refused. It guards against accidents, not attacks: a bundle holds machine code, so
    /// running one is trusting whoever wrote it.
    pub checksum: String,
}

/// The device features and limits a bundle's code needs, named as the target's API names them
/// (WebGPU's `shader-f16`, `maxStorageBuffersPerShaderStage`, ...).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Requirements {
    pub features: Vec<String>,
    /// The least value each limit must have (every limit here is a maximum the device allows).
    pub limits: BTreeMap<String, u64>,
}

/// The manifest's JSON Schema (draft 2020-12), generated from these types: the one definition
/// of the format, which `web/manifest.schema.js` holds for the JavaScript runtime (a test keeps
/// the file current).
pub fn manifest_schema() -> String {
    let schema = schemars::schema_for!(Manifest);
    serde_json::to_string_pretty(&schema).expect("a schema always serializes") + "\n"
}

/// [`manifest_schema`] as the ES module the JavaScript runtime imports (a module rather than a
/// `.json` file, so that no JSON import attribute is needed: older Node and browsers read it).
pub fn manifest_schema_module() -> String {
    format!(
        "// The JSON Schema of a bundle's manifest.json, generated from nnc's Rust types\n// \
         (nnc_kernel::bundle::manifest_schema); do not edit: `NNC_BLESS=1 cargo test -p nnc-kernel` rewrites it.\n\
         export default {};\n",
        manifest_schema().trim_end()
    )
}

/// A code file of a bundle.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FileEntry {
    pub path: String,
    pub bytes: u64,
}

/// A bundle read from its folder and checked: the manifest, the weights and the code files.
#[derive(Clone, Debug)]
pub struct Bundle {
    pub manifest: Manifest,
    pub weights: bytes::Bytes,
    /// The contents of each of `manifest.files`, by path.
    pub files: BTreeMap<String, Vec<u8>>,
}

impl Bundle {
    /// The contents of code file `path` (one the manifest lists).
    pub fn file(&self, dir: &Path, path: &str) -> Result<&[u8], BundleError> {
        self.files
            .get(path)
            .map(Vec::as_slice)
            .ok_or_else(|| invalid(&dir.join(MANIFEST_FILE), format!("the manifest does not list `{path}`")))
    }
}

/// A graph input or output: name (without `%`), dtype and shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Interface {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<i64>,
    /// For outputs: the buffer that holds it.
    #[serde(default)]
    pub buffer: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BufferEntry {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<i64>,
    pub place: Place,
}

/// Where a buffer's bytes are.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
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

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
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
            target_info: BTreeMap::new(),
            requires: None,
            files: Vec::new(),
            checksum: String::new(),
        };
        (manifest, weights)
    }

    /// Writes the bundle into `dir` (created if needed): `weights.bin`, each of `files` (path
    /// relative to `dir`, contents) and `manifest.json` listing them with their checksum.
    /// Returns the manifest as written.
    pub fn write(mut self, dir: &Path, weights: &[u8], files: &[(String, Vec<u8>)]) -> Result<Manifest, BundleError> {
        if let Some((path, _)) = files.iter().find(|(path, _)| !is_plain_relative(path)) {
            return Err(invalid(dir, format!("`{path}` is not a path inside the bundle")));
        }
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        self.files =
            files.iter().map(|(path, bytes)| FileEntry { path: path.clone(), bytes: bytes.len() as u64 }).collect();
        self.checksum = self.checksum_of(weights, files.iter().map(|(_, b)| b.as_slice()));
        write_file(&dir.join(WEIGHTS_FILE), weights)?;
        for (path, bytes) in files {
            let at = dir.join(path);
            if let Some(parent) = at.parent() {
                std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
            }
            write_file(&at, bytes)?;
        }
        write_file(&dir.join(MANIFEST_FILE), self.to_json().as_bytes())?;
        Ok(self)
    }

    fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a manifest always serializes") + "\n"
    }

    /// The checksum of this manifest (its `checksum` field left out), the weights and the files.
    fn checksum_of<'a>(&self, weights: &[u8], files: impl Iterator<Item = &'a [u8]>) -> String {
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        let blank = Manifest { checksum: String::new(), ..self.clone() };
        hasher.update(blank.to_json().as_bytes());
        hasher.update(weights);
        for f in files {
            hasher.update(f);
        }
        format!("{:016x}", hasher.digest())
    }

    /// Reads the bundle in `dir`: checks the manifest's format, that every file it lists is
    /// there with its size, the checksum, and every index, range and size in the manifest.
    pub fn read(dir: &Path) -> Result<Bundle, BundleError> {
        let path = dir.join(MANIFEST_FILE);
        let meta = std::fs::metadata(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                invalid(dir, "not a bundle (it has no manifest.json; `nnc compile MODEL -o DIR` writes one)")
            }
            _ => io(&path, e),
        })?;
        if meta.len() > MAX_MANIFEST_BYTES {
            return Err(invalid(&path, format!("{} bytes: not a manifest nnc wrote", meta.len())));
        }
        let text = std::fs::read_to_string(&path).map_err(|e| io(&path, e))?;
        let manifest: Manifest = serde_json::from_str(&text).map_err(|e| invalid(&path, e.to_string()))?;
        if manifest.format != FORMAT {
            return Err(invalid(
                &path,
                format!("bundle format {} (this nnc reads format {FORMAT}; compile the model again)", manifest.format),
            ));
        }
        let weights = read_listed(dir, WEIGHTS_FILE, manifest.weights_bytes)?;
        let mut files = BTreeMap::new();
        for f in &manifest.files {
            if !is_plain_relative(&f.path) {
                return Err(invalid(&path, format!("file `{}` is not a path inside the bundle", f.path)));
            }
            files.insert(f.path.clone(), read_listed(dir, &f.path, f.bytes)?);
        }
        let sum = manifest.checksum_of(&weights, manifest.files.iter().map(|f| files[&f.path].as_slice()));
        if sum != manifest.checksum {
            return Err(invalid(
                dir,
                "the bundle does not match its checksum: a file was changed or damaged after it was written (compile the model again)",
            ));
        }
        manifest.check().map_err(|m| invalid(&path, m))?;
        Ok(Bundle { manifest, weights: bytes::Bytes::from(weights), files })
    }

    /// Checks that every index and range in the manifest is in bounds and every size is one
    /// nnc could have written.
    fn check(&self) -> Result<(), String> {
        let n = self.buffers.len();
        let mut arena_total: u64 = 0;
        let mut sizes = Vec::with_capacity(n);
        for b in &self.buffers {
            let dtype =
                DType::from_name(&b.dtype).ok_or_else(|| format!("buffer `{}`: dtype `{}`", b.name, b.dtype))?;
            let bytes =
                buffer_bytes(dtype, &b.shape).ok_or_else(|| format!("buffer `{}`: bad shape {:?}", b.name, b.shape))?;
            sizes.push(bytes);
            match b.place {
                Place::Input(i) if i >= self.inputs.len() => {
                    return Err(format!("buffer `{}` is input {i} of {}", b.name, self.inputs.len()))
                }
                // Kernels index a buffer by its own type: bound to an input's memory, it must be
                // that input's type, or they would reach past the caller's data.
                Place::Input(i) if self.inputs[i].dtype != b.dtype || self.inputs[i].shape != b.shape => {
                    return Err(format!(
                        "buffer `{}` is {}{:?} but is bound to input `{}`, which is {}{:?}",
                        b.name, b.dtype, b.shape, self.inputs[i].name, self.inputs[i].dtype, self.inputs[i].shape
                    ))
                }
                Place::Weight { offset, bytes: len }
                    if len != bytes || offset.checked_add(len).is_none_or(|end| end > self.weights_bytes) =>
                {
                    return Err(format!("buffer `{}`: weight range out of bounds", b.name))
                }
                Place::Arena(offset) if offset.checked_add(bytes).is_none_or(|end| end > self.arena_bytes) => {
                    return Err(format!("buffer `{}`: arena offset out of bounds", b.name))
                }
                Place::Arena(_) => arena_total = arena_total.saturating_add(bytes.div_ceil(ALIGN) * ALIGN),
                _ => {}
            }
        }
        // A plan never needs more than every intermediate side by side.
        if self.arena_bytes > arena_total.max(ALIGN) {
            return Err(format!(
                "an arena of {} bytes for intermediates of {arena_total} bytes in all",
                self.arena_bytes
            ));
        }
        for k in &self.kernels {
            if k.params.iter().any(|&p| p >= n) {
                return Err(format!("kernel `{}` binds a buffer that does not exist", k.name));
            }
            let groups = k.grid.iter().chain(&k.workgroup).try_fold(1u64, |acc, &d| acc.checked_mul(d as u64));
            if groups.is_none_or(|g| g > u64::from(u32::MAX) * u64::from(u32::MAX)) {
                return Err(format!("kernel `{}`: launch size out of range", k.name));
            }
        }
        for (k, port) in self.inputs.iter().chain(&self.outputs).enumerate() {
            let b = self.buffers.get(port.buffer).ok_or("an input or output names a buffer that does not exist")?;
            if port.dtype != b.dtype || port.shape != b.shape {
                return Err(format!(
                    "`{}` is {}{:?} but its buffer is {}{:?}",
                    port.name, port.dtype, port.shape, b.dtype, b.shape
                ));
            }
            if k < self.inputs.len() && b.place != Place::Input(k) {
                return Err(format!("input `{}` is bound to a buffer that is not input {k}", port.name));
            }
        }
        Ok(())
    }

    /// The program's inputs and outputs.
    pub fn interface(&self) -> Result<crate::backend::Interface, String> {
        let port = |i: &Interface| {
            let dtype = DType::from_name(&i.dtype).ok_or_else(|| format!("`{}`: dtype `{}`", i.name, i.dtype))?;
            let shape = i.shape.iter().map(|&d| usize::try_from(d).map_err(|_| format!("`{}`: shape", i.name)));
            Ok(crate::backend::Port { name: i.name.clone(), dtype, shape: shape.collect::<Result<_, String>>()? })
        };
        Ok(crate::backend::Interface {
            program: self.program.clone(),
            inputs: self.inputs.iter().map(port).collect::<Result<_, String>>()?,
            outputs: self.outputs.iter().map(port).collect::<Result<_, String>>()?,
        })
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

/// The bytes of a buffer, if its shape is one nnc accepts (no negative dimension, within
/// [`nnc_ir::size::MAX_TENSOR_BYTES`]).
fn buffer_bytes(dtype: DType, shape: &[i64]) -> Option<u64> {
    let shape = shape.iter().map(|&d| usize::try_from(d).ok()).collect::<Option<Vec<usize>>>()?;
    nnc_ir::size::checked_tensor_bytes(dtype, &shape).ok()
}

/// Reads file `name` of the bundle in `dir`, which the manifest says has `expected` bytes
/// (checked before reading, so a damaged manifest cannot ask for a huge allocation).
fn read_listed(dir: &Path, name: &str, expected: u64) -> Result<Vec<u8>, BundleError> {
    let path = dir.join(name);
    let meta = std::fs::metadata(&path).map_err(|e| io(&path, e))?;
    if !meta.is_file() || meta.len() != expected {
        let found = if meta.is_file() { format!("{} bytes", meta.len()) } else { "not a file".into() };
        return Err(invalid(&path, format!("{found}, the manifest says {expected} bytes")));
    }
    nnc_ir::size::read_file(&path).map_err(|e| io(&path, e))
}

/// A path inside the bundle folder: relative, made of plain names (no `..`, no root).
fn is_plain_relative(path: &str) -> bool {
    let p = Path::new(path);
    !path.is_empty() && p.components().all(|c| matches!(c, std::path::Component::Normal(_)))
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

    fn program() -> Program {
        crate::program::testing::add_relu()
    }

    /// `web/manifest.schema.js` is what these types generate (`NNC_BLESS=1` rewrites it): the
    /// JavaScript runtime validates manifests against that schema.
    #[test]
    fn the_javascript_runtime_reads_the_current_schema() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web/manifest.schema.js");
        let schema = manifest_schema_module();
        if std::env::var_os("NNC_BLESS").is_some() {
            std::fs::write(&path, &schema).unwrap();
        }
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            on_disk == schema,
            "{} is not the schema of the manifest types: run NNC_BLESS=1 cargo test -p nnc-kernel",
            path.display()
        );
    }

    #[test]
    fn round_trips_through_a_folder() {
        let p = program();
        let code = p.kernels.iter().map(|k| Code::File { path: format!("{}.txt", k.name), entry: "main".into() });
        let (m, w) = Manifest::of(&p, "cpu", code.collect());
        assert_eq!(m.inputs.len(), 1);
        assert_eq!(m.inputs[0].shape, vec![2, 3]);
        let dir = temp_dir("round-trip");
        let files = vec![("code/k.txt".to_string(), b"kernel".to_vec())];
        let written = m.write(&dir, &w, &files).unwrap();
        let back = Manifest::read(&dir).unwrap();
        assert_eq!(back.manifest, written);
        assert_eq!(back.file(&dir, "code/k.txt").unwrap(), b"kernel");
        let (buffers, plan) = back.manifest.buffers(&back.weights).unwrap();
        assert_eq!(buffers, p.fused.buffers);
        assert_eq!(plan, MemoryPlan::of(&p.fused));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn temp_dir(what: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("nnc-bundle-test-{what}-{}", std::process::id()))
    }

    fn read_error(dir: &Path) -> String {
        Manifest::read(dir).unwrap_err().to_string()
    }

    /// Any change to a file after writing is caught by the checksum; a manifest changed and
    /// signed again is still checked for sizes nnc could not have written.
    #[test]
    fn refuses_damaged_and_impossible_bundles() {
        let p = program();
        let (m, w) = Manifest::of(&p, "cpu", vec![]);
        let dir = temp_dir("damaged");
        let written = m.write(&dir, &w, &[("k.bin".into(), vec![1, 2, 3])]).unwrap();
        std::fs::write(dir.join("k.bin"), [1, 2, 4]).unwrap();
        assert!(read_error(&dir).contains("does not match its checksum"), "{}", read_error(&dir));
        std::fs::write(dir.join("k.bin"), [1, 2]).unwrap();
        assert!(read_error(&dir).contains("2 bytes, the manifest says 3"), "{}", read_error(&dir));
        let manifest = std::fs::read_to_string(dir.join(MANIFEST_FILE)).unwrap();
        std::fs::write(dir.join("k.bin"), [1, 2, 3]).unwrap();
        std::fs::write(dir.join(MANIFEST_FILE), manifest.replace("\"arena_bytes\": ", "\"arena_bytes\": 1")).unwrap();
        assert!(read_error(&dir).contains("does not match its checksum"), "{}", read_error(&dir));

        // Signed again: the arena of 10^15 bytes is refused by the checks behind the checksum.
        let huge = Manifest { arena_bytes: 1_000_000_000_000_000, ..written.clone() };
        huge.write(&dir, &w, &[("k.bin".into(), vec![1, 2, 3])]).unwrap();
        assert!(read_error(&dir).contains("an arena of 1000000000000000 bytes"), "{}", read_error(&dir));
        let mut escaping = written.clone();
        escaping.buffers[0].shape = vec![1 << 40, 1 << 40];
        escaping.write(&dir, &w, &[]).unwrap();
        assert!(read_error(&dir).contains("bad shape"), "{}", read_error(&dir));
        assert!(written.clone().write(&dir, &w, &[("../outside".into(), vec![])]).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(read_error(&dir).contains("not a bundle"), "{}", read_error(&dir));
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
        let (mut m, _) = Manifest::of(&p, "cpu", vec![]);
        m.inputs[0].shape = vec![4, 3];
        assert!(m.check().unwrap_err().contains("but is bound to input"), "{:?}", m.check());
        let (mut m, _) = Manifest::of(&p, "cpu", vec![]);
        m.outputs[0].shape = vec![4, 3];
        assert!(m.check().unwrap_err().contains("its buffer is"), "{:?}", m.check());
        // Found by nnc-fuzz: another buffer (here the output) bound to input 0's memory, though
        // of another type, would let a kernel write past the caller's input.
        let (mut m, _) = Manifest::of(&p, "cpu", vec![]);
        let output = m.outputs[0].buffer;
        m.buffers[output].place = Place::Input(0);
        m.buffers[output].shape = vec![3, 3];
        m.outputs[0].shape = vec![3, 3];
        assert!(m.check().unwrap_err().contains("is bound to input"), "{:?}", m.check());
        assert!(!is_plain_relative("../x") && !is_plain_relative("/x") && !is_plain_relative(""));
        assert!(is_plain_relative("kernels/k0.wgsl"));
    }
}

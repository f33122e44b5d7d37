//! Bundle folders mutated: `manifest.json` edited field by field, files damaged, removed or
//! replaced by folders, and manifests edited *and signed again* (as a tool that rewrites
//! bundles would) in the fields the loader is responsible for checking.
//!
//! A bundle holds machine code, and its manifest says how to call it (which buffers each
//! kernel gets, how many workgroups it runs): a manifest whose call contract was changed and
//! signed again is a different program, which can do anything the code can. So the re-signed
//! mutations leave the kernels' entries and the buffers' shapes alone and change what the loader
//! checks: sizes, offsets, the interface, the target and its requirements.

use super::interesting;
use nnc_kernel::bundle::{Manifest, Place};
use std::path::Path;

/// Mutates the bundle copied into `dir` (a copy of the valid bundle `original`).
pub fn mutate(rng: &mut fastrand::Rng, original: &Path, dir: &Path) -> std::io::Result<Vec<String>> {
    let mut done = Vec::new();
    for _ in 0..rng.usize(1..=2) {
        done.push(match rng.u8(..10) {
            0..=3 => resigned(rng, original, dir)?,
            4 | 5 => edit_manifest_json(rng, dir)?,
            6 | 7 => damage_file(rng, dir)?,
            _ => replace_file(rng, dir)?,
        });
    }
    Ok(done)
}

/// The bundle's files (relative paths), manifest first.
fn files_of(dir: &Path) -> Vec<String> {
    let mut out = vec!["manifest.json".to_string(), "weights.bin".to_string()];
    let mut rest: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    rest.sort();
    out.extend(rest.into_iter().filter(|f| f != "manifest.json" && f != "weights.bin"));
    out
}

fn damage_file(rng: &mut fastrand::Rng, dir: &Path) -> std::io::Result<String> {
    let files = files_of(dir);
    let name = &files[rng.usize(..files.len())];
    let path = dir.join(name);
    let Ok(mut bytes) = std::fs::read(&path) else { return Ok(format!("{name} is not a readable file")) };
    let what = super::bytes::damage(rng, &mut bytes);
    std::fs::write(&path, bytes)?;
    Ok(format!("{name}: {what}"))
}

fn replace_file(rng: &mut fastrand::Rng, dir: &Path) -> std::io::Result<String> {
    let files = files_of(dir);
    let name = &files[rng.usize(..files.len())];
    let path = dir.join(name);
    if path.is_dir() {
        std::fs::remove_dir_all(&path)?;
    } else {
        let _ = std::fs::remove_file(&path);
    }
    if rng.bool() {
        std::fs::create_dir_all(&path)?;
        Ok(format!("replaced {name} by a folder"))
    } else {
        Ok(format!("removed {name}"))
    }
}

/// Changes one value anywhere in `manifest.json`, without signing it again.
fn edit_manifest_json(rng: &mut fastrand::Rng, dir: &Path) -> std::io::Result<String> {
    let path = dir.join("manifest.json");
    let Ok(text) = std::fs::read_to_string(&path) else { return Ok("no readable manifest".into()) };
    let Ok(mut json) = serde_json::from_str::<serde_json::Value>(&text) else {
        return Ok("the manifest is not JSON".into());
    };
    let mut leaves = Vec::new();
    collect_leaves(&json, String::new(), &mut leaves);
    if leaves.is_empty() {
        return Ok("no value in the manifest".into());
    }
    let pointer = leaves[rng.usize(..leaves.len())].clone();
    let new = match rng.u8(..4) {
        0 => serde_json::json!(interesting(rng)),
        1 => serde_json::json!(1e15),
        2 => serde_json::json!(["", "../x", "kernels.bin", "\u{0}"][rng.usize(..4)]),
        _ => serde_json::Value::Null,
    };
    if let Some(v) = json.pointer_mut(&pointer) {
        *v = new.clone();
    }
    std::fs::write(&path, serde_json::to_vec_pretty(&json).unwrap_or_default())?;
    Ok(format!("manifest.json: set {pointer} to {new} (not signed again)"))
}

fn collect_leaves(v: &serde_json::Value, at: String, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                collect_leaves(v, format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")), out);
            }
        }
        serde_json::Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                collect_leaves(v, format!("{at}/{i}"), out);
            }
        }
        _ => out.push(at),
    }
}

/// Changes a field the loader checks, and signs the manifest again.
fn resigned(rng: &mut fastrand::Rng, original: &Path, dir: &Path) -> std::io::Result<String> {
    let Ok(bundle) = Manifest::read(original) else { return Ok("the original bundle does not load".into()) };
    let mut m = bundle.manifest.clone();
    let v = interesting(rng);
    let what = match rng.u8(..9) {
        0 => {
            m.arena_bytes = v as u64;
            format!("arena_bytes = {}", v as u64)
        }
        1 => {
            m.weights_bytes = v as u64;
            format!("weights_bytes = {}", v as u64)
        }
        2 if !m.buffers.is_empty() => {
            let i = rng.usize(..m.buffers.len());
            m.buffers[i].place = match rng.u8(..3) {
                0 => Place::Arena(v as u64),
                1 => Place::Weight { offset: v as u64, bytes: interesting(rng) as u64 },
                _ => Place::Input(v as usize),
            };
            format!("the place of buffer {i} = {:?}", m.buffers[i].place)
        }
        3 if !m.inputs.is_empty() => {
            let i = rng.usize(..m.inputs.len());
            let port = &mut m.inputs[i];
            match rng.u8(..3) {
                0 => port.shape.push(v),
                1 => port.dtype = ["f32", "bool", "u64", "x", ""][rng.usize(..5)].into(),
                _ => port.buffer = v as usize,
            }
            format!("input {i} = {port:?}")
        }
        4 if !m.outputs.is_empty() => {
            let i = rng.usize(..m.outputs.len());
            m.outputs[i].buffer = if rng.bool() { v as usize } else { rng.usize(..m.buffers.len().max(1)) };
            format!("output {i} reads buffer {}", m.outputs[i].buffer)
        }
        5 => {
            m.target = ["wgsl", "cuda", "", "cpu "][rng.usize(..4)].into();
            format!("target = `{}`", m.target)
        }
        6 => {
            let key = ["isa_flags", "llvm_features", "arch"][rng.usize(..3)];
            let value = ["", "+avx512f,+imaginary", "aarch64", "has_avx,has_nothing"][rng.usize(..4)];
            m.target_info.insert(key.into(), value.into());
            format!("target_info.{key} = `{value}`")
        }
        7 => {
            m.inputs.clear();
            "no inputs".into()
        }
        _ => {
            m.format = v as u32;
            format!("format = {}", m.format)
        }
    };
    let files: Vec<(String, Vec<u8>)> = bundle.files.into_iter().collect();
    if m.write(dir, &bundle.weights, &files).is_err() {
        return Ok(format!("{what} (could not be written)"));
    }
    Ok(format!("manifest signed again with {what}"))
}

//! Fingerprints the code generator for the compiled-code cache (`src/code_cache.rs`): a hash
//! of this crate's sources and Kernel IR's (what decides the machine code a kernel becomes)
//! and nnc's version. Code cached by a build with another fingerprint is never used.

use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let roots = [manifest.join("src"), manifest.join("../nnc-kernel/src")];
    let mut files = Vec::new();
    for root in &roots {
        println!("cargo:rerun-if-changed={}", root.display());
        collect(root, &mut files);
    }
    files.sort();
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    hasher.update(std::env::var("CARGO_PKG_VERSION").unwrap_or_default().as_bytes());
    for file in &files {
        // A source missing from a packaged crate is left out of the hash, not a build failure.
        if let Ok(text) = std::fs::read(file) {
            hasher.update(file.strip_prefix(&manifest).unwrap_or(file).to_string_lossy().as_bytes());
            hasher.update(&text);
        }
    }
    println!("cargo:rustc-env=NNC_CPU_CODEGEN_FINGERPRINT={:032x}", hasher.digest128());
}

/// Every file under `dir`, recursively.
fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, files);
        } else {
            files.push(path);
        }
    }
}

//! The compiled-code cache end to end with LLVM: a second compile takes every kernel's code
//! from the cache, byte for byte what LLVM produced; kernels equal but for their names are
//! compiled once; an entry that is damaged on disk is compiled again, not loaded; a change to
//! a kernel's computation is a different key. Skipped with a message where LLVM cannot run.
#![cfg(feature = "llvm")]

use nnc_cpu::code_cache::{CodeCache, KeyParts};
use nnc_kernel::kernel::Kernel;

/// Three layers: two of the same shape (equal kernels, different weights and names), then one
/// of another width.
const LAYERS: &str = "graph g(%x: f32[16, 32], %w1: f32[32, 32], %w2: f32[32, 32], %w3: f32[32, 8]) {
  %a: f32[16, 32] = matmul(%x, %w1)
  %b: f32[16, 32] = exp(%a)
  %c: f32[16, 32] = matmul(%b, %w2)
  %d: f32[16, 32] = exp(%c)
  %e: f32[16, 8] = matmul(%d, %w3)
  %f: f32[16, 8] = exp(%e)
  return %f
}
";

fn kernels() -> Option<Vec<Kernel>> {
    let Some(lanes) = nnc_cpu::llvm::host_lanes() else {
        eprintln!("SKIPPED: LLVM cannot run on this host");
        return None;
    };
    let graph = nnc_ir::text::parse(LAYERS, "layers.nnir").unwrap();
    let device = nnc_kernel::Device::cpu_with_vector(lanes);
    Some(nnc_lower::compile(&graph, &device, None).unwrap().kernels)
}

fn cache(name: &str) -> CodeCache {
    let dir = std::env::temp_dir().join(format!("nnc-code-cache-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    CodeCache { dir, max_bytes: 64 << 20 }
}

fn entries(cache: &CodeCache) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(&cache.dir).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default()
}

#[test]
fn a_second_compile_takes_every_kernel_from_the_cache_byte_for_byte() {
    let Some(kernels) = kernels() else { return };
    let cache = cache("second");
    let first = nnc_cpu::llvm::compile(&kernels, Some(&cache)).unwrap();
    assert_eq!(first.cached, 0);
    assert!(first.entries.iter().all(|e| e.is_ok()), "{:?}", first.entries);
    let second = nnc_cpu::llvm::compile(&kernels, Some(&cache)).unwrap();
    assert_eq!(second.cached, kernels.len());
    assert_eq!(second.image.bytes, first.image.bytes);
    assert_eq!(second.image.relocations, first.image.relocations);
    assert_eq!(second.entries, first.entries);
    assert_eq!(second.vectorized_loops, first.vectorized_loops);
    let _ = std::fs::remove_dir_all(&cache.dir);
}

#[test]
fn kernels_equal_but_for_their_names_are_compiled_once() {
    let Some(kernels) = kernels() else { return };
    let cache = cache("equal");
    let code = nnc_cpu::llvm::compile(&kernels, Some(&cache)).unwrap();
    let keys: Vec<String> = kernels.iter().map(|k| CodeCache::key(k, parts())).collect();
    let mut unique = keys.clone();
    unique.sort();
    unique.dedup();
    assert!(unique.len() < kernels.len(), "the two layers' kernels are equal: {keys:?}");
    assert_eq!(entries(&cache).len(), unique.len(), "one entry per distinct kernel");
    for i in 0..kernels.len() {
        for j in 0..i {
            let same_code = code.entries[i] == code.entries[j];
            assert_eq!(same_code, keys[i] == keys[j], "kernels {j} and {i}: one entry point exactly when equal");
        }
    }
    let _ = std::fs::remove_dir_all(&cache.dir);
}

#[test]
fn a_damaged_entry_is_compiled_again() {
    let Some(kernels) = kernels() else { return };
    let cache = cache("damaged");
    let first = nnc_cpu::llvm::compile(&kernels, Some(&cache)).unwrap();
    for path in entries(&cache) {
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
    }
    let again = nnc_cpu::llvm::compile(&kernels, Some(&cache)).unwrap();
    assert_eq!(again.cached, 0, "no damaged entry is used");
    assert_eq!(again.image.bytes, first.image.bytes);
    let third = nnc_cpu::llvm::compile(&kernels, Some(&cache)).unwrap();
    assert_eq!(third.cached, kernels.len(), "the entries were written again");
    let _ = std::fs::remove_dir_all(&cache.dir);
}

#[test]
fn the_key_follows_the_computation_not_the_names() {
    let Some(kernels) = kernels() else { return };
    let kernel = &kernels[0];
    let key = CodeCache::key(kernel, parts());
    let mut renamed = kernel.clone();
    renamed.name = "another".into();
    for b in &mut renamed.buffers {
        b.name = format!("{}_renamed", b.name);
    }
    assert_eq!(CodeCache::key(&renamed, parts()), key);
    let mut other_shape = kernel.clone();
    other_shape.buffers[0].shape[0] += 1;
    assert_ne!(CodeCache::key(&other_shape, parts()), key);
    let mut other_launch = kernel.clone();
    other_launch.launch.grid[0] += 1;
    assert_ne!(CodeCache::key(&other_launch, parts()), key);
    let other_host = KeyParts { features: "+avx2,-avx512f", ..parts() };
    assert_ne!(CodeCache::key(kernel, other_host), key);
}

fn parts() -> KeyParts<'static> {
    KeyParts { cpu: "test-cpu", features: "+avx2,+fma", generator: "llvm test" }
}

//! The C-family printer's dialects side by side: every fusion file test's graph (`ir/fuse`)
//! compiled for the CUDA backend's device and for WebGPU's default limits, and printed through
//! the CUDA dialect and the WGSL dialect; the texts are insta snapshots
//! (`tests/snapshots/gpu_dialects__<file>_{cuda,wgsl}.snap`), so a change to the shared walk
//! shows in both at once. The WGSL backend's `print_program` also validates each shader with naga.

use nnc::ir::{text, Graph};
use nnc::kernel::backend::Backend;
use nnc::kernel::Device;
use std::path::PathBuf;

fn fuse_files() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("ir/fuse");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("ir/fuse")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "nnir"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "ir/fuse has {} files", files.len());
    files
}

fn graph(path: &PathBuf) -> Graph {
    let source = std::fs::read_to_string(path).expect("read");
    text::parse(&source, &path.display().to_string()).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_fuse_file_prints_through_both_dialects() {
    let cuda_device = nnc_cuda::CudaBackend.device();
    // What the WGSL backend gets from an adapter that reports WebGPU's default limits.
    let wgsl_device = Device::gpu();
    for path in fuse_files() {
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let graph = graph(&path);

        let program =
            nnc::lower::compile(&graph, &cuda_device, None).unwrap_or_else(|e| panic!("{name} for CUDA: {e}"));
        let cuda = nnc_cuda::print_program(&program).unwrap_or_else(|e| panic!("{name} as CUDA: {e}"));
        insta::assert_snapshot!(format!("{name}_cuda"), cuda);

        let program =
            nnc::lower::compile(&graph, &wgsl_device, None).unwrap_or_else(|e| panic!("{name} for WGSL: {e}"));
        let shaders = nnc_wgsl::print_program(&program).unwrap_or_else(|e| panic!("{name} as WGSL: {e}"));
        insta::assert_snapshot!(format!("{name}_wgsl"), shaders.join("\n"));
    }
}

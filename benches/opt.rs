//! Optimizer benchmarks: `nnc::opt::optimize` (translation to an e-graph, saturation, extraction
//! and translation back) on real models, imported with their test data's input shapes.
//!
//! `cargo bench --bench opt`. Needs the shared models beside the checkout (`../shared`).

use criterion::{criterion_group, criterion_main, Criterion};
use nnc::onnx::{import_file_with, read_inputs, read_tensor_file, ImportOptions};
use nnc::opt::{optimize, OptOptions};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn models_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("NNC_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"))
        .join("models");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("SKIPPED: shared models not found at {}", dir.display());
        None
    }
}

/// The model specialized to the shapes of its test data, as `nnc run --data` imports it.
fn import(dir: &Path) -> nnc::ir::Graph {
    let model = dir.join("model.onnx");
    let names = read_inputs(&model).expect("inputs");
    let shapes: HashMap<String, Vec<usize>> = names
        .iter()
        .enumerate()
        .map(|(i, (n, _))| {
            let t = read_tensor_file(&dir.join(format!("test_data_set_0/input_{i}.pb"))).expect("input").1;
            (n.clone(), t.shape().to_vec())
        })
        .collect();
    import_file_with(&model, &ImportOptions { input_shapes: shapes, ..Default::default() }).expect("import")
}

fn opt(c: &mut Criterion) {
    let Some(models) = models_dir() else { return };
    let mut group = c.benchmark_group("optimize");
    group.sample_size(10).measurement_time(Duration::from_secs(10));
    for name in ["resnet18", "transformer_encoder", "mobilenet_v2"] {
        let graph = import(&models.join(name));
        let options = OptOptions::default();
        group.bench_function(name, |b| b.iter(|| optimize(&graph, &options).expect("optimize")));
    }
    group.finish();
}

criterion_group!(benches, opt);
criterion_main!(benches);

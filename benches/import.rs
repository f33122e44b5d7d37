//! Front-end benchmarks: importing real ONNX models (decode + convert + verify), and running the
//! small ones in the reference interpreter.
//!
//! `cargo bench --bench import`. Needs the shared models beside the checkout (`../shared`).

use criterion::{criterion_group, criterion_main, Criterion};
use std::path::PathBuf;
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

/// Import options fixing the model's input shapes to those of its test data (as `nnc run --data`
/// does), so models with symbolic dimensions import too.
fn shapes_of_test_data(dir: &std::path::Path) -> nnc::onnx::ImportOptions {
    let inputs = nnc::onnx::read_inputs(&dir.join("model.onnx")).expect("model inputs");
    let input_shapes = inputs
        .iter()
        .enumerate()
        .map(|(i, (name, _))| {
            let (_, t) =
                nnc::onnx::read_tensor_file(&dir.join(format!("test_data_set_0/input_{i}.pb"))).expect("input");
            (name.clone(), t.shape().to_vec())
        })
        .collect();
    nnc::onnx::ImportOptions { input_shapes, ..Default::default() }
}

fn import(c: &mut Criterion) {
    let Some(models) = models_dir() else { return };
    let mut group = c.benchmark_group("import");
    group.sample_size(20).measurement_time(Duration::from_secs(5));
    for name in ["resnet18", "mobilenet_v2", "transformer_encoder", "silero_vad_16k_op15"] {
        let path = models.join(name).join("model.onnx");
        let options = shapes_of_test_data(&models.join(name));
        // Reading the file is part of importing: the weights are read once, then shared.
        group.bench_function(name, |b| b.iter(|| nnc::onnx::import_file_with(&path, &options).expect("import")));
    }
    group.finish();
}

fn interpret(c: &mut Criterion) {
    let Some(models) = models_dir() else { return };
    let mut group = c.benchmark_group("interpret");
    group.sample_size(10).measurement_time(Duration::from_secs(10));
    for name in ["digits_cnn", "transformer_encoder", "resnet18"] {
        let dir = models.join(name);
        let graph = nnc::onnx::import_file_with(&dir.join("model.onnx"), &shapes_of_test_data(&dir)).expect("import");
        let (_, input) = nnc::onnx::read_tensor_file(&dir.join("test_data_set_0/input_0.pb")).expect("input");
        group.bench_function(name, |b| b.iter(|| nnc::interp::run(&graph, std::slice::from_ref(&input)).expect("run")));
    }
    group.finish();
}

criterion_group!(benches, import, interpret);
criterion_main!(benches);

//! Front-end benchmarks: importing real ONNX models (decode + convert + verify), and running the
//! small ones in the reference interpreter.
//!
//! `cargo bench --bench import`. Needs the shared models beside the checkout (`../shared`).

mod common;

use common::{models_dir, shapes_of_test_data};
use criterion::{criterion_group, criterion_main, Criterion};
use std::time::Duration;

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
        let graph = common::import_specialized(&dir);
        let (_, input) = nnc::onnx::read_tensor_file(&dir.join("test_data_set_0/input_0.pb")).expect("input");
        group.bench_function(name, |b| b.iter(|| nnc::interp::run(&graph, std::slice::from_ref(&input)).expect("run")));
    }
    group.finish();
}

criterion_group!(benches, import, interpret);
criterion_main!(benches);

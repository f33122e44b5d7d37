//! CPU backend benchmarks: a compiled [`nnc::Session`] run on fixed inputs (matmul 256/512/1024
//! f32, and the shared models on their test data), and compiling resnet18 from the imported graph
//! to machine code. Peers (ONNX Runtime, numpy) are timed in the same run by
//! `scripts/bench_cpu.py`, which prints the table in the README.
//!
//! `cargo bench --bench cpu`. The model benchmarks need the shared models beside the checkout.

mod common;

use common::{import_specialized as import, models_dir};
use criterion::{criterion_group, criterion_main, Criterion};
use nnc::ir::TensorData;
use nnc::{Session, SessionOptions, Target};
use std::time::Duration;

fn matmul(c: &mut Criterion) {
    let mut group = c.benchmark_group("cpu_matmul");
    group.sample_size(10).measurement_time(Duration::from_secs(5));
    for n in [256usize, 512, 1024] {
        let text = format!(
            "graph matmul(%a: f32[{n}, {n}], %b: f32[{n}, {n}]) {{\n  %c: f32[{n}, {n}] = matmul(%a, %b)\n  return %c\n}}\n"
        );
        let graph = nnc::ir::text::parse(&text, "matmul.nnir").expect("parse");
        let values: Vec<f32> = (0..n * n).map(|i| ((i * 7919 % 1000) as f32 - 500.0) / 500.0).collect();
        let inputs = vec![TensorData::from_vec(vec![n, n], &values), TensorData::from_vec(vec![n, n], &values)];
        let mut session = Session::new(graph, SessionOptions::target(Target::Cpu)).expect("session");
        session.run(&inputs).expect("compile and run");
        group.bench_function(format!("{n}"), |b| b.iter(|| session.run(&inputs).expect("run")));
    }
    group.finish();
}

fn models(c: &mut Criterion) {
    let Some(models) = models_dir() else { return };
    let mut group = c.benchmark_group("cpu_run");
    group.sample_size(10).measurement_time(Duration::from_secs(5));
    for name in ["digits_cnn", "transformer_encoder", "mobilenet_v2", "resnet18"] {
        let dir = models.join(name);
        let graph = import(&dir);
        let inputs: Vec<TensorData> = (0..graph.inputs.len())
            .map(|i| {
                let path = dir.join(format!("test_data_set_0/input_{i}.pb"));
                nnc::onnx::read_tensor_file(&path).expect("input").1
            })
            .collect();
        let mut session = Session::new(graph, SessionOptions::target(Target::Cpu)).expect("session");
        session.run(&inputs).expect("compile and run");
        group.bench_function(name, |b| b.iter(|| session.run(&inputs).expect("run")));
    }
    group.finish();

    let mut group = c.benchmark_group("cpu_compile");
    group.sample_size(10).measurement_time(Duration::from_secs(10));
    let graph = import(&models.join("resnet18"));
    group.bench_function("resnet18", |b| {
        b.iter(|| {
            let mut session = Session::new(graph.clone(), SessionOptions::target(Target::Cpu)).expect("session");
            let shapes: Vec<Vec<usize>> =
                graph.inputs.iter().map(|&v| graph.ty(v).static_shape().expect("static")).collect();
            session.prepare(&shapes).expect("compile").kernels
        })
    });
    group.finish();
}

criterion_group!(benches, matmul, models);
criterion_main!(benches);

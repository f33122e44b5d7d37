//! Optimizer benchmarks on real models, imported with their test data's input shapes:
//! `nnc::opt::optimize` (translation to an e-graph, saturation, extraction and translation
//! back), and fusion plus scheduling of the optimized graph into Kernel IR (`nnc::kernel`).
//!
//! `cargo bench --bench opt`. Needs the shared models beside the checkout (`../shared`).

mod common;

use common::{import_specialized as import, models_dir};
use criterion::{criterion_group, criterion_main, Criterion};
use nnc::kernel::Device;
use nnc::lower::compile;
use nnc::opt::{optimize, OptOptions};
use std::time::Duration;

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

fn fuse_and_schedule(c: &mut Criterion) {
    let Some(models) = models_dir() else { return };
    let mut group = c.benchmark_group("fuse_schedule");
    group.sample_size(10).measurement_time(Duration::from_secs(5));
    for name in ["resnet18", "transformer_encoder", "mobilenet_v2"] {
        let graph = optimize(&import(&models.join(name)), &OptOptions::default()).expect("optimize").graph;
        let device = Device::gpu();
        group.bench_function(name, |b| b.iter(|| compile(&graph, &device, None).expect("compile")));
    }
    group.finish();
}

criterion_group!(benches, opt, fuse_and_schedule);
criterion_main!(benches);

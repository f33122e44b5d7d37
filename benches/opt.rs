//! Optimizer benchmarks: `nnc::opt::optimize` (translation to an e-graph, saturation, extraction
//! and translation back) on real models, imported with their test data's input shapes.
//!
//! `cargo bench --bench opt`. Needs the shared models beside the checkout (`../shared`).

mod common;

use common::{import_specialized as import, models_dir};
use criterion::{criterion_group, criterion_main, Criterion};
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

criterion_group!(benches, opt);
criterion_main!(benches);

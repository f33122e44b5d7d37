//! Backward graphs of real models: transformer_encoder and resnet18 extended with the gradient
//! of the sum of their outputs with respect to every weight (`nnc-autodiff`), optimized, fused
//! and compiled, give the reference interpreter's gradients.

mod common;

use nnc::kernel::DeviceKind;
use nnc::runtime::Target;
use nnc_conformance::{compare, Backend, OnTarget, Tolerance};
use std::time::Instant;

/// The registry's `target` with its default options, run through a session.
fn on(target: Target) -> OnTarget {
    OnTarget { target, adapter: None, threads: None }
}

/// `relative_atol` bounds each gradient's error relative to its tensor's largest magnitude.
fn check(name: &str, backend: &dyn Backend, relative_atol: f64) {
    let Some(models) = common::shared_models() else { return };
    let (graph, inputs, _) = common::load_with_data(&models.join(name));
    let backward = nnc_autodiff::grad_of_output_sum(&graph, None).unwrap_or_else(|e| panic!("{name}: {e}"));
    let start = Instant::now();
    let want = nnc::interp::run(&backward, &inputs).unwrap_or_else(|e| panic!("{name}: {e}"));
    let interp_time = start.elapsed();
    let start = Instant::now();
    let got = backend.run(&backward, &inputs).unwrap_or_else(|e| panic!("{name} on {}: {e}", backend.name()));
    eprintln!(
        "{name}: {} outputs (loss and {} gradients); interpreter {interp_time:.2?}, {} {:.2?}",
        want.len(),
        want.len() - graph.outputs.len() - 1,
        backend.name(),
        start.elapsed()
    );
    assert_eq!(got.len(), want.len());
    let mut failures = Vec::new();
    for (k, (g, w)) in got.iter().zip(&want).enumerate() {
        // Gradients sum many terms in f32, in another order than the interpreter (which sums
        // in f64): compare relative to each tensor's largest magnitude.
        let scale = w.to_f64_vec().iter().fold(0.0f64, |m, x| m.max(x.abs()));
        let tol = Tolerance { rtol: 1e-3, atol: relative_atol * scale.max(1.0) };
        match compare(g, w, tol) {
            Ok(c) if c.passed() => {}
            // Relu and max-pool gradients are discontinuous: where an activation is within
            // rounding of 0, or two pooled values within rounding of each other, f32 and f64
            // forward passes can route a gradient differently. A few such elements are allowed,
            // and they must still be close.
            Ok(c) if c.mismatches <= (c.total / 500).max(1) && c.max_abs <= 0.05 * scale => {}
            Ok(c) => failures.push(format!(
                "output {k} (%{}): {} of {} differ, max abs {:.3e} (scale {scale:.3e})",
                backward.name_of(backward.outputs[k]),
                c.mismatches,
                c.total,
                c.max_abs
            )),
            Err(e) => failures.push(format!("output {k}: {e}")),
        }
    }
    assert!(failures.is_empty(), "{name} on {}:\n{}", backend.name(), failures.join("\n"));
}

#[test]
fn transformer_encoder_gradients_on_the_kernel_interpreter() {
    check("transformer_encoder", &on(Target::KernelInterp(DeviceKind::Gpu)), 1e-4);
}

#[test]
fn transformer_encoder_gradients_on_the_cpu_backend() {
    check("transformer_encoder", &on(Target::Cpu), 1e-4);
}

#[test]
fn resnet18_gradients_on_the_cpu_backend() {
    // Weight gradients of the first layers sum 12,544 products (112 x 112 positions) in f32,
    // with cancellation: errors up to about 0.5% of the largest gradient were measured.
    check("resnet18", &on(Target::Cpu), 1e-2);
}

//! Programs compiled for WebGPU's default limits (`nnc compile --target wgsl --device webgpu`)
//! need no more than those limits: every shared model, and every case of the ONNX node suite
//! that compiles at all, measured by what the bundle's manifest would require.

use nnc_testkit::models::{program_for, shared_models, try_load, MODELS};
use nnc_testkit::skip::onnx_node_tests;
use nnc_wgsl::webgpu::requirements;
use nnc_wgsl::WebGpuDevice;
use std::path::Path;

/// What `dir`'s model (with its first data set's shapes) needs beyond WebGPU's defaults, or
/// `None` where it does not import or compile.
fn unmet(dir: &Path) -> Option<Vec<String>> {
    let webgpu = WebGpuDevice::default();
    let model = try_load(dir).ok()?;
    let program = program_for(&model.graph, &model.inputs, &webgpu.device()).ok()?;
    Some(webgpu.unmet(&requirements(&program)))
}

#[test]
fn every_shared_model_fits_webgpus_default_limits() {
    let Some(models) = shared_models() else { return };
    for name in MODELS {
        let unmet = unmet(&models.join(name)).unwrap_or_else(|| panic!("{name} does not compile for WebGPU"));
        assert!(unmet.is_empty(), "{name} needs {unmet:?}");
    }
}

#[test]
fn every_node_suite_case_that_compiles_fits_webgpus_default_limits() {
    let Some(root) = onnx_node_tests() else { return };
    let cases = nnc_conformance::discover_cases(&root).unwrap();
    let (mut compiled, mut half) = (0, 0);
    let mut over = Vec::new();
    for case in &cases {
        let Some(mut unmet) = unmet(case) else { continue };
        compiled += 1;
        // Half-precision tensors need `shader-f16`, which a bundle uses only when the device
        // description allows it (`nnc compile` refuses them otherwise, saying so).
        let before = unmet.len();
        unmet.retain(|u| !u.starts_with("feature `shader-f16`"));
        half += usize::from(unmet.len() < before);
        if !unmet.is_empty() {
            over.push(format!("{}: {unmet:?}", case.display()));
        }
    }
    eprintln!(
        "{compiled} of {} node-suite cases compile for WebGPU's default limits and fit them ({half} of them need \
         shader-f16)",
        cases.len()
    );
    assert!(compiled > 1000, "only {compiled} cases compiled");
    assert!(over.is_empty(), "cases over WebGPU's default limits:\n{}", over.join("\n"));
}

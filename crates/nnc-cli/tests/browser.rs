//! nnc's WebGPU runtime (`web/nnc-webgpu.js`) on the shared models. Each model is compiled for
//! WebGPU's default limits (`nnc compile --target wgsl --device webgpu`) and then
//! - served with its test data by `nnc serve` and run by the example page in headless Chromium
//!   (WebGPU on SwiftShader, driven through WebDriver);
//! - run by the same runtime under Node with Dawn (the `webgpu` npm package);
//!
//! and its outputs are compared with ONNX Runtime's (the data set's `output_N.pb`). The
//! runtime's own unit tests (`web/test/*.test.mjs`) run under Node on real manifests.

mod common;

use base64::Engine as _;
use bytes::Bytes;
use common::*;
use nnc_ir::{DType, TensorData};
use nnc_testkit::browser::{node_command, node_with_webgpu, Browser};
use nnc_testkit::compare::{close, MODEL_TOLERANCE};
use nnc_testkit::models::selected;
use nnc_testkit::skip::{required_dir, shared_dir, skip};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The models the browser runs: a convolutional network on a batch, the transformer, and two
/// ImageNet networks (SwiftShader takes seconds per run of those).
const BROWSER_MODELS: [&str; 4] = ["digits_cnn", "transformer_encoder", "squeezenet1_1", "mobilenet_v2"];
/// The models Node runs.
const NODE_MODELS: [&str; 3] = ["digits_mlp", "transformer_encoder", "squeezenet1_1"];

fn models() -> Option<PathBuf> {
    required_dir(shared_dir().join("models"), "the shared models (../shared)")
}

/// `nnc compile` of shared model `name` for WebGPU's default limits into `out`.
fn compile_for_webgpu(models: &Path, name: &str, out: &Path) -> PathBuf {
    let bundle = out.join(format!("{name}.nnc"));
    let output = nnc()
        .arg("compile")
        .arg(models.join(name).join("model.onnx"))
        .arg("--data")
        .arg(models.join(name).join("test_data_set_0"))
        .args(["--target", "wgsl", "--device", "webgpu", "-o"])
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(output.status.success(), "{name}: {}{}", stdout_of(&output), stderr_of(&output));
    bundle
}

/// The data set's expected outputs, in order.
fn expected_outputs(data: &Path) -> Vec<TensorData> {
    (0..).map(|i| data.join(format!("output_{i}.pb"))).take_while(|p| p.exists()).map(read_pb).collect()
}

fn read_pb(path: PathBuf) -> TensorData {
    nnc_onnx::read_tensor_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).1
}

/// The tensor of `port` (JSON with `dtype` and `shape`, as the manifest and the page give an
/// output) holding `bytes` (host layout).
fn tensor_of(port: &Value, bytes: Vec<u8>) -> TensorData {
    let dtype = DType::from_name(port["dtype"].as_str().unwrap()).unwrap();
    let shape = port["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
    TensorData::from_bytes(dtype, shape, Bytes::from(bytes)).unwrap()
}

/// Compares each output with the expected one.
fn check_outputs(name: &str, expected: &[TensorData], found: Vec<TensorData>) {
    assert_eq!(found.len(), expected.len(), "{name}: outputs");
    for (e, t) in expected.iter().zip(&found) {
        close(name, e, t, MODEL_TOLERANCE).unwrap();
    }
}

#[test]
fn shared_models_run_in_headless_chromium() {
    let Some(models) = models() else { return };
    let browser = match Browser::start() {
        Ok(browser) => browser,
        Err(why) => {
            let why = format!("no headless Chromium with WebGPU here: {why} (the Node test still runs the runtime)");
            return skip(&why, true);
        }
    };
    let out = tempfile::tempdir().unwrap();
    for name in selected("NNC_BROWSER_MODELS", &BROWSER_MODELS) {
        let name = name.as_str();
        let bundle = compile_for_webgpu(&models, name, out.path());
        let data = models.join(name).join("test_data_set_0");
        let server = Server::start(&bundle, &["--data".as_ref(), data.as_os_str()]);
        browser.navigate(&format!("{}?runs=2", server.url)).unwrap();
        let result = browser.wait_for("window.nncResult", Duration::from_secs(300)).unwrap();
        assert_eq!(result["ok"], Value::Bool(true), "{name}: {}", result["error"]);
        let found = result["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                tensor_of(o, base64::engine::general_purpose::STANDARD.decode(o["base64"].as_str().unwrap()).unwrap())
            })
            .collect();
        check_outputs(name, &expected_outputs(&data), found);
        // SwiftShader has timestamp queries: the page profiles every kernel.
        let profile = result["profile"].as_array().unwrap_or_else(|| panic!("{name}: no profile in {result}"));
        assert_eq!(Some(profile.len() as u64), result["kernels"].as_u64(), "{name}: {profile:?}");
        assert!(profile.iter().all(|k| k["ms"].as_f64().is_some_and(|ms| ms >= 0.0)), "{name}: {profile:?}");
        assert!(profile[0]["ms"].as_f64().unwrap() > 0.0, "{name}: {profile:?}");
        eprintln!("{name}: slowest kernel {} ({:.1} ms)", profile[0]["name"], profile[0]["ms"]);
        eprintln!(
            "{name} in Chromium on {}: {} kernels, bundle {} bytes, GPU memory {} bytes ({} unshared), loaded in \
             {:.0} ms, {:.1} ms per run",
            result["adapter"],
            result["kernels"],
            result["bundleBytes"],
            result["gpuBytes"],
            result["gpuBytesUnshared"],
            result["loadMs"],
            result["msPerRun"]
        );
    }
}

/// Node and Dawn, or a loud skip (a failure in CI).
fn node() -> Option<PathBuf> {
    node_with_webgpu().map_err(|why| skip(&why, true)).ok()
}

#[test]
fn shared_models_run_under_node() {
    let (Some(models), Some(node)) = (models(), node()) else { return };
    let out = tempfile::tempdir().unwrap();
    for name in selected("NNC_NODE_MODELS", &NODE_MODELS) {
        let name = name.as_str();
        let bundle = compile_for_webgpu(&models, name, out.path());
        let data = models.join(name).join("test_data_set_0");
        let (inputs, outputs) = (out.path().join(format!("{name}.in")), out.path().join(format!("{name}.out")));
        std::fs::create_dir_all(&inputs).unwrap();
        for i in 0.. {
            let path = data.join(format!("input_{i}.pb"));
            if !path.exists() {
                break;
            }
            std::fs::write(inputs.join(format!("{i}.bin")), read_pb(path).bytes()).unwrap();
        }
        let run = node_command(&node)
            .unwrap()
            .arg("test/run-node.mjs")
            .args([&bundle, &inputs, &outputs])
            .arg("1")
            .output()
            .unwrap();
        assert!(run.status.success(), "{name}: {}{}", stdout_of(&run), stderr_of(&run));
        let manifest: Value = serde_json::from_slice(&std::fs::read(bundle.join("manifest.json")).unwrap()).unwrap();
        let found = manifest["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
            .map(|(i, o)| tensor_of(o, std::fs::read(outputs.join(format!("{i}.bin"))).unwrap()))
            .collect();
        check_outputs(name, &expected_outputs(&data), found);
        eprintln!("{name} under Node: {}", stdout_of(&run).trim());
    }
}

/// The runtime's unit tests (`node --test`), given a wgsl bundle and a CPU bundle to check
/// their manifests against the schema the Rust types generate.
#[test]
fn the_runtime_passes_its_unit_tests_under_node() {
    let (Some(models), Some(node)) = (models(), node()) else { return };
    let out = tempfile::tempdir().unwrap();
    let wgsl = compile_for_webgpu(&models, "digits_mlp", out.path());
    let cpu = out.path().join("digits_mlp.cpu.nnc");
    let compiled = nnc().arg("compile").arg(models.join("digits_mlp/model.onnx")).arg("-o").arg(&cpu).output().unwrap();
    assert!(compiled.status.success(), "{}", stderr_of(&compiled));
    let run = node_command(&node)
        .unwrap()
        .env("NNC_WGSL_BUNDLE", &wgsl)
        .env("NNC_CPU_BUNDLE", &cpu)
        .env("NNC_FORMAT", nnc_kernel::bundle::FORMAT.to_string())
        .args(["--test", "test/runtime.test.mjs"])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}{}", stdout_of(&run), stderr_of(&run));
}

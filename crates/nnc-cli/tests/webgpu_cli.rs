//! `nnc compile --target wgsl --device ...` and `nnc serve` from the command line: what a
//! bundle for a browser requires, what is refused and how, and what the server answers.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;

/// `nnc compile FILE --target wgsl ARGS -o OUT`.
fn compile_wgsl(file: &Path, out: &Path, args: &[&str]) -> std::process::Output {
    nnc().arg("compile").arg(file).args(["--target", "wgsl"]).args(args).arg("-o").arg(out).output().unwrap()
}

#[test]
fn a_webgpu_bundle_records_the_limits_it_needs_within_the_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let model = write(dir.path(), "mlp.nnir", mlp_text());
    let out = dir.path().join("mlp.nnc");
    let output = compile_wgsl(&model, &out, &["--device", "webgpu", "--shape", "batch=5"]);
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert!(stdout_of(&output).contains("nnc serve"), "{}", stdout_of(&output));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    let requires = &manifest["requires"];
    assert_eq!(requires["features"], serde_json::json!([]));
    let buffers = requires["limits"]["maxStorageBuffersPerShaderStage"].as_u64().unwrap();
    assert!((2..=8).contains(&buffers), "{requires}");
    assert!(requires["limits"]["maxComputeInvocationsPerWorkgroup"].as_u64().unwrap() <= 256, "{requires}");
}

#[test]
fn half_precision_needs_a_device_that_allows_shader_f16() {
    let dir = tempfile::tempdir().unwrap();
    let model = write(dir.path(), "half.nnir", "graph half(%x: f16[4]) {\n  %y = relu(%x)\n  return %y\n}\n");
    let refused = compile_wgsl(&model, &dir.path().join("a.nnc"), &["--device", "webgpu"]);
    assert!(!refused.status.success());
    let err = stderr_of(&refused);
    assert!(err.contains("feature `shader-f16` (needed by buffer `x` of f16), which was not allowed"), "{err}");
    assert!(err.contains("--device FILE.json"), "{err}");
    let checked =
        nnc().arg("compile").arg(&model).args(["--target", "wgsl", "--device", "webgpu", "--check"]).output().unwrap();
    assert!(stderr_of(&checked).contains("feature `shader-f16`"), "--check: {}", stderr_of(&checked));
    let adapter = write(dir.path(), "adapter.json", r#"{"features": ["shader-f16"]}"#);
    let out = dir.path().join("b.nnc");
    let allowed = compile_wgsl(&model, &out, &["--device", adapter.to_str().unwrap()]);
    assert!(allowed.status.success(), "{}", stderr_of(&allowed));
    let manifest = std::fs::read_to_string(out.join("manifest.json")).unwrap();
    assert!(manifest.contains("\"shader-f16\""), "{manifest}");
}

#[test]
fn device_errors_name_the_flag_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let model = write(dir.path(), "mlp.nnir", mlp_text());
    let cpu = nnc().arg("compile").arg(&model).args(["--device", "webgpu", "--check"]).output().unwrap();
    assert!(
        stderr_of(&cpu).contains("--device chooses a WebGPU device: it needs --target wgsl"),
        "{}",
        stderr_of(&cpu)
    );
    let bad = write(dir.path(), "bad.json", r#"{"limits": {"maxBufferSize": "big"}}"#);
    let output = compile_wgsl(&model, &dir.path().join("x.nnc"), &["--device", bad.to_str().unwrap()]);
    let err = stderr_of(&output);
    assert!(err.contains("bad.json: not a WebGPU adapter description"), "{err}");
    let tight = write(dir.path(), "tight.json", r#"{"limits": {"maxStorageBuffersPerShaderStage": 2}}"#);
    let output = compile_wgsl(&model, &dir.path().join("y.nnc"), &["--device", tight.to_str().unwrap()]);
    let err = stderr_of(&output);
    assert!(err.contains("binds 3 storage buffers; the device allows 2"), "{err}");
}

/// The status line and body of `GET path` from the server at `address`.
fn get(address: &str, path: &str) -> (String, Vec<u8>) {
    let mut stream = TcpStream::connect(address).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {address}\r\n\r\n").unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).unwrap();
    let split = reply.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&reply[..split]).into_owned();
    (head.lines().next().unwrap().to_string(), reply[split + 4..].to_vec())
}

#[test]
fn serve_answers_the_page_the_bundle_and_the_data_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let model = write(dir.path(), "mlp.nnir", mlp_text());
    let bundle = dir.path().join("mlp.nnc");
    assert!(compile_wgsl(&model, &bundle, &["--device", "webgpu", "--shape", "batch=2"]).status.success());
    let x = write_npy(dir.path(), "x.npy", &[2, 3], &[1f32, 2., 3., 4., 5., 6.]);
    let input = format!("x={}", x.display());
    let server = Server::start(&bundle, &["--input".as_ref(), input.as_ref()]);
    let address = server.address().to_string();
    let (status, page) = get(&address, "/");
    assert!(status.contains("200") && String::from_utf8_lossy(&page).contains("nnc-webgpu.js"), "{status}");
    let (status, manifest) = get(&address, "/bundle/manifest.json");
    assert!(status.contains("200"), "{status}");
    assert_eq!(manifest, std::fs::read(bundle.join("manifest.json")).unwrap());
    let (_, index) = get(&address, "/data/index.json");
    assert_eq!(String::from_utf8_lossy(&index), r#"{"expected":[],"inputs":[0]}"#);
    let (_, input) = get(&address, "/data/input_0.bin");
    let values: Vec<f32> = input.chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
    assert_eq!(values, [1., 2., 3., 4., 5., 6.]);
    for outside in ["/bundle/../mlp.nnir", "/Cargo.toml", "/bundle/weights.bin.bak"] {
        assert!(get(&address, outside).0.contains("404"), "{outside}");
    }
}

#[test]
fn serve_refuses_what_a_browser_cannot_run() {
    let dir = tempfile::tempdir().unwrap();
    let model = write(dir.path(), "mlp.nnir", mlp_text());
    let cpu = dir.path().join("cpu.nnc");
    assert!(nnc()
        .arg("compile")
        .arg(&model)
        .args(["--shape", "batch=2", "-o"])
        .arg(&cpu)
        .output()
        .unwrap()
        .status
        .success());
    let output = nnc().arg("serve").arg(&cpu).output().unwrap();
    assert!(
        stderr_of(&output).contains("a bundle for the cpu target; a browser runs wgsl bundles"),
        "{}",
        stderr_of(&output)
    );
    let output = nnc().arg("serve").arg(dir.path().join("missing")).output().unwrap();
    assert!(stderr_of(&output).contains("not a bundle"), "{}", stderr_of(&output));
    let wgsl = dir.path().join("wgsl.nnc");
    assert!(compile_wgsl(&model, &wgsl, &["--device", "webgpu", "--shape", "batch=2"]).status.success());
    let wrong = write_npy(dir.path(), "x.npy", &[3, 3], &[0f32; 9]);
    let output = nnc().arg("serve").arg(&wgsl).arg("--input").arg(format!("x={}", wrong.display())).output().unwrap();
    assert!(stderr_of(&output).contains("the bundle was compiled for f32[2, 3]"), "{}", stderr_of(&output));
}

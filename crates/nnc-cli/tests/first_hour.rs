//! The first hour of a new user, as issue 14 saw it: every input that once killed the process,
//! printed a cause twice or said the wrong thing, and the defaults of `nnc compile`, each a
//! test that failed before the fix.

mod common;

use common::*;
use nnc_kernel::bundle::Manifest;
use nnc_onnx::proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, ValueInfoProto,
};
use predicates::prelude::*;
use prost::Message;
use std::path::Path;

/// Runs `nnc args` in `dir` and returns (exit code, stdout, stderr).
fn nnc_in(dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = nnc().current_dir(dir).args(args).output().unwrap();
    (out.status.code(), stdout_of(&out), stderr_of(&out))
}

/// One clean error: exit 1, one `error:` line that is the last one, naming `needle`.
fn assert_clean_error(result: &(Option<i32>, String, String), needle: &str) {
    let (code, _, err) = result;
    assert_eq!(*code, Some(1), "{err}");
    assert_eq!(err.lines().filter(|l| l.starts_with("error: ")).count(), 1, "{err}");
    assert!(err.contains(needle) && !err.contains("internal error"), "expected `{needle}` in: {err}");
}

fn relu_of(dims: &str) -> String {
    format!("graph g(%x: f32[{dims}]) {{\n  %y: f32[{dims}] = relu(%x)\n  return %y\n}}\n")
}

/// Inputs whose size overflows, or is beyond any machine, are refused by the verifier before
/// anything is allocated: they once aborted (`memory allocation of 8000000000000000 bytes
/// failed`), segfaulted (an element count wrapping to 0), or compiled to "0 bytes".
#[test]
fn huge_declared_sizes_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (name, dims) in [
        ("e15.nnir", "1000000, 1000000, 1000"),
        ("wraps.nnir", "4294967296, 4294967296"),
        ("max.nnir", "9223372036854775807, 9223372036854775807"),
    ] {
        write(d, name, relu_of(dims));
        for args in [
            &["bench", name, "--iters", "1"][..],
            &["compile", name, "--stats", "--check"],
            &["run", name, "--random-inputs"],
        ] {
            let result = nnc_in(d, args);
            assert_clean_error(&result, "value `%x`");
            assert!(result.2.contains("too large"), "{}", result.2);
        }
    }
}

/// A model that asks for 10^15 elements through shape arithmetic (`ConstantOfShape` of a shape
/// fed to `Expand`), the 117-byte model that once aborted the cpu target.
fn expand_model(shape: &[i64]) -> Vec<u8> {
    let shape = TensorProto {
        dims: vec![shape.len() as i64],
        data_type: Some(7),
        int64_data: shape.to_vec(),
        ..Default::default()
    };
    let constant = NodeProto {
        output: vec!["shape".into()],
        op_type: Some("Constant".into()),
        attribute: vec![AttributeProto {
            name: Some("value".into()),
            r#type: Some(4),
            t: Some(shape),
            ..Default::default()
        }],
        ..Default::default()
    };
    let expand = NodeProto {
        input: vec!["x".into(), "shape".into()],
        output: vec!["y".into()],
        op_type: Some("Expand".into()),
        ..Default::default()
    };
    let value = |name: &str, dims: Option<Vec<i64>>| {
        use nnc_onnx::proto::tensor_shape_proto::{dimension::Value, Dimension};
        use nnc_onnx::proto::type_proto::{Tensor, Value as TypeValue};
        use nnc_onnx::proto::{TensorShapeProto, TypeProto};
        let shape = dims.map(|d| TensorShapeProto {
            dim: d.into_iter().map(|v| Dimension { value: Some(Value::DimValue(v)), denotation: None }).collect(),
        });
        ValueInfoProto {
            name: Some(name.into()),
            r#type: Some(TypeProto {
                value: Some(TypeValue::TensorType(Tensor { elem_type: Some(1), shape })),
                denotation: None,
            }),
            ..Default::default()
        }
    };
    let graph = GraphProto {
        node: vec![constant, expand],
        name: Some("g".into()),
        input: vec![value("x", Some(vec![1]))],
        output: vec![value("y", None)],
        ..Default::default()
    };
    let opset = OperatorSetIdProto { domain: Some(String::new()), version: Some(13) };
    ModelProto { ir_version: Some(8), opset_import: vec![opset], graph: Some(graph), ..Default::default() }
        .encode_to_vec()
}

#[test]
fn shape_arithmetic_that_asks_for_too_much_is_an_error_on_every_target() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // 10^15 elements: beyond the size limit.
    write(d, "e15.onnx", expand_model(&[1000, 1_000_000, 1_000_000]));
    // 10^13 elements (36 TiB): within the limit, beyond the machine; the arena allocation fails.
    write(d, "e13.onnx", expand_model(&[1000, 1_000_000, 10_000]));
    for target in ["cpu", "interp", "kernel-interp"] {
        assert_clean_error(&nnc_in(d, &["run", "e15.onnx", "--random-inputs", "--target", target]), "too large");
        let result = nnc_in(d, &["run", "e13.onnx", "--random-inputs", "--target", target]);
        assert_clean_error(&result, "e13.onnx");
        let refused = ["cannot allocate", "too large", "indices are 32-bit"];
        assert!(refused.iter().any(|r| result.2.contains(r)), "{target}: {}", result.2);
    }
}

/// A bundle whose manifest asks for a 10^15-byte arena: refused by the checksum when edited by
/// hand, and by the loader's checks when signed again; it once aborted `nnc run DIR`.
#[test]
fn a_bundle_asking_for_a_huge_arena_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "mlp.nnir", mlp_text());
    let (code, _, err) = nnc_in(d, &["compile", "mlp.nnir", "--shape", "batch=2", "-o", "b"]);
    assert_eq!(code, Some(0), "{err}");
    let manifest = std::fs::read_to_string(d.join("b/manifest.json")).unwrap();
    let edited = manifest.replacen("\"arena_bytes\": ", "\"arena_bytes\": 1000000000000000", 1);
    std::fs::write(d.join("b/manifest.json"), edited).unwrap();
    assert_clean_error(&nnc_in(d, &["run", "b", "--random-inputs"]), "does not match its checksum");

    std::fs::write(d.join("b/manifest.json"), manifest).unwrap();
    let bundle = Manifest::read(&d.join("b")).unwrap();
    let huge = Manifest { arena_bytes: 1_000_000_000_000_000, ..bundle.manifest.clone() };
    let files: Vec<(String, Vec<u8>)> = bundle.files.clone().into_iter().collect();
    huge.write(&d.join("b"), &bundle.weights, &files).unwrap();
    assert_clean_error(&nnc_in(d, &["run", "b", "--random-inputs"]), "an arena of 1000000000000000 bytes");
}

/// Errors whose cause is part of their own text print it once.
#[test]
fn causes_are_printed_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "bad.onnx", b"\x0f\xff\xff not a protobuf");
    let (_, _, err) = nnc_in(d, &["run", "bad.onnx"]);
    assert_clean_error(&(Some(1), String::new(), err.clone()), "bad.onnx");
    let line = err.lines().find(|l| l.starts_with("error: ")).unwrap();
    let cause = line.rsplit(": ").next().unwrap();
    assert_eq!(line.matches(cause).count(), 1, "{line}");
    std::fs::create_dir(d.join("folder.onnx")).unwrap();
    for command in ["run", "dump"] {
        let (_, _, err) = nnc_in(d, &[command, "folder.onnx"]);
        assert_clean_error(&(Some(1), String::new(), err.clone()), "folder.onnx");
        let line = err.lines().find(|l| l.starts_with("error: ")).unwrap().to_lowercase();
        assert!(line.matches("folder").count() <= 2 && line.matches("directory").count() <= 1, "{line}");
    }
}

/// `nnc run DIR` on a folder that is not a bundle says so (it once said "cannot compile for
/// cpu"); the help describes the CPU target as it is.
#[test]
fn a_folder_that_is_not_a_bundle_is_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("notabundle")).unwrap();
    let result = nnc_in(dir.path(), &["run", "notabundle"]);
    assert_clean_error(&result, "notabundle: not a bundle (it has no manifest.json");
    assert!(!result.2.contains("compile for"), "{}", result.2);
    let help = stdout_of(&nnc().args(["run", "--help"]).output().unwrap());
    assert!(help.contains("LLVM") && !help.contains("compiled with Cranelift"), "{help}");
}

/// A WGSL run on a machine without a display prints nothing of the Vulkan driver's on stderr
/// (Mesa's device-selection layer once printed `error: XDG_RUNTIME_DIR is invalid`).
#[test]
fn wgsl_runs_without_driver_noise() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "mlp.nnir", mlp_text());
    let out = nnc()
        .current_dir(dir.path())
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("NODEVICE_SELECT")
        .args(["run", "mlp.nnir", "--random-inputs", "--target", "wgsl"])
        .output()
        .unwrap();
    let err = stderr_of(&out);
    if !out.status.success() && err.contains("adapter") && std::env::var_os("CI").is_none() {
        eprintln!("SKIPPED: no wgpu adapter ({err})");
        return;
    }
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("XDG_RUNTIME_DIR") && !err.contains("error"), "{err}");
}

/// `nnc compile MODEL` with no flags writes a CPU bundle, `<stem>.cpu.nnc` in the working
/// directory, says how to run it, and `nnc run` runs it; symbolic dimensions bound to 1 are
/// said so, and the bundle refuses other shapes by saying what it was compiled for.
#[test]
fn compile_without_flags_writes_a_bundle_that_runs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "mlp.nnir", mlp_text());
    let (code, out, err) = nnc_in(d, &["compile", "mlp.nnir"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("note: symbolic dimension `batch` bound to 1 (give --shape batch=N"), "{err}");
    assert!(out.contains("compiled mlp.nnir for cpu (inputs %x: f32[1, 3])"), "{out}");
    assert!(out.contains("wrote mlp.cpu.nnc") && out.contains("run it with: nnc run mlp.cpu.nnc"), "{out}");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("mlp.cpu.nnc/manifest.json")).unwrap()).unwrap();
    let kernels = out.split(" kernels in").next().unwrap().rsplit(' ').next().unwrap().parse::<usize>().unwrap();
    assert_eq!(manifest["kernels"].as_array().unwrap().len(), kernels, "the count printed is the bundle's");
    let (code, out, err) = nnc_in(d, &["run", "mlp.cpu.nnc", "--random-inputs"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("%y: f32[1, 2] = ["), "{out}");
    assert!(err.contains("loaded mlp.cpu.nnc for cpu in") && err.contains("ran on %x: f32[1, 3] in"), "{err}");

    // Compiled for batch 4, it says so when given batch 2.
    let (code, _, err) = nnc_in(d, &["compile", "mlp.nnir", "--shape", "batch=4", "-o", "b4"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains("note:"), "{err}");
    write_npy(d, "x.npy", &[2, 3], &[0.5f32; 6]);
    let result = nnc_in(d, &["run", "b4", "--input", "x=x.npy"]);
    assert_clean_error(&result, "the bundle was compiled for f32[4, 3], not f32[2, 3]");
    // An existing folder that is not a bundle is not overwritten.
    std::fs::create_dir(d.join("precious")).unwrap();
    write(&d.join("precious"), "notes.txt", "keep me");
    assert_clean_error(&nnc_in(d, &["compile", "mlp.nnir", "-o", "precious"]), "does not hold a bundle");
    assert_clean_error(&nnc_in(d, &["compile", "mlp.nnir", "--target", "interp"]), "nothing to compile");
}

/// `compile`, `dump`, `run` and `bench` start from the same target: the host CPU.
#[test]
fn every_command_defaults_to_the_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "mlp.nnir", mlp_text());
    let (_, out, _) = nnc_in(d, &["dump", "mlp.nnir", "--after", "schedule", "--shape", "batch=2"]);
    let (_, cpu, _) = nnc_in(d, &["dump", "mlp.nnir", "--after", "schedule", "--shape", "batch=2", "--target", "cpu"]);
    let (_, gpu, _) = nnc_in(d, &["dump", "mlp.nnir", "--after", "schedule", "--shape", "batch=2", "--target", "wgsl"]);
    assert_eq!(out, cpu);
    assert_ne!(out, gpu);
    let (_, out, _) = nnc_in(d, &["bench", "mlp.nnir", "--iters", "1"]);
    assert!(out.contains("on cpu"), "{out}");
    let (_, _, err) = nnc_in(d, &["run", "mlp.nnir", "--random-inputs"]);
    assert!(err.contains("for cpu"), "{err}");
}

/// The same model and options give byte-identical bundles (no compile times in them).
#[test]
fn bundles_are_reproducible() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "mlp.nnir", mlp_text());
    for out in ["a", "b"] {
        let (code, _, err) = nnc_in(d, &["compile", "mlp.nnir", "-o", out]);
        assert_eq!(code, Some(0), "{err}");
    }
    assert_same_folders(&d.join("a"), &d.join("b"));
}

/// `run` with `--random-inputs` and `--shape`: seeded, so the same seed gives the same outputs.
#[test]
fn random_inputs_are_seeded_and_shaped() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "mlp.nnir", mlp_text());
    let run = |seed: &str| nnc_in(d, &["run", "mlp.nnir", "--random-inputs", seed, "--shape", "batch=3"]);
    let (code, first, err) = run("7");
    assert_eq!(code, Some(0), "{err}");
    assert!(first.starts_with("%y: f32[3, 2] = ["), "{first}");
    assert_eq!(run("7").1, first);
    assert_ne!(run("8").1, first);
    let result = nnc_in(d, &["run", "mlp.nnir", "--random-inputs", "--shape", "nope=3"]);
    assert_clean_error(&result, "no input and no symbolic dimension `nope`");
    nnc()
        .current_dir(d)
        .args(["run", "mlp.nnir", "--shape", "batch=3"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--random-inputs"));
}

/// `bench --json` carries what a comparison needs.
#[test]
fn bench_json_has_statistics_and_context() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "mlp.nnir", mlp_text());
    let (code, out, err) =
        nnc_in(d, &["bench", "mlp.nnir", "--iters", "5", "--threads", "1", "--json", "--shape", "batch=2"]);
    assert_eq!(code, Some(0), "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    for key in ["compile_ms", "min_ms", "median_ms", "mean_ms", "p90_ms", "stddev_ms"] {
        assert!(v[key].as_f64().is_some_and(|x| x >= 0.0), "{key}: {out}");
    }
    assert_eq!(v["threads"], 1);
    assert_eq!(v["input_shapes"]["x"], serde_json::json!([2, 3]));
    assert_eq!(v["nnc_version"], env!("CARGO_PKG_VERSION"));
    assert!(v["host_cpu"].as_str().is_some_and(|s| !s.is_empty()));
}

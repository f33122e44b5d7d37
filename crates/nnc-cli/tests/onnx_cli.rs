//! End-to-end tests of `nnc` on ONNX: real models from the shared folder and the ONNX node tests
//! (skipped with a message where that data is absent, failing in CI where it must be present).

mod common;

use common::*;
use std::path::PathBuf;

fn data_dir(relative: &str, what: &str) -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").join(relative);
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(std::env::var_os("CI").is_none(), "{what} must be present in CI ({})", dir.display());
    eprintln!("SKIPPED: {what} not found at {}", dir.display());
    None
}

/// `nnc run DIR/model.onnx --data DIR/test_data_set_0`.
fn run_with_its_data(dir: &std::path::Path) -> std::process::Output {
    let data = dir.join("test_data_set_0");
    nnc().arg("run").arg(dir.join("model.onnx")).arg("--data").arg(data).output().unwrap()
}

#[test]
fn run_onnx_model_against_its_reference_outputs() {
    let Some(models) = data_dir("../shared/models", "the shared models") else { return };
    for name in ["digits_mlp", "silero_vad_16k_op15"] {
        let out = run_with_its_data(&models.join(name));
        let text = stdout_of(&out);
        assert!(out.status.success(), "{name}: {text}{}", stderr_of(&out));
        assert!(text.contains("summary: PASS"), "{name}: {text}");
    }
}

/// silero-vad's default model branches on its sample-rate input: at 16 kHz the other branch
/// cannot be built for its window, so `nnc run` runs it staged (the branch taken, compiled); at
/// 8 kHz both can, and one graph selects. Both match ONNX Runtime; a command that needs one
/// graph says why it cannot have one.
#[test]
fn run_time_control_flow_runs_staged() {
    let Some(public) = data_dir(".nnc-data/models/public", "the public models (scripts/fetch-public-models.sh)") else {
        return;
    };
    for name in ["silero_vad_16k", "silero_vad_8k"] {
        let out = run_with_its_data(&public.join(name));
        let (text, err) = (stdout_of(&out), stderr_of(&out));
        assert!(out.status.success(), "{name}: {text}{err}");
        assert!(text.contains("summary: PASS, 2 of 2"), "{name}: {text}");
        assert_eq!(err.contains("staged on cpu"), name == "silero_vad_16k", "{name}: {err}");
    }
    // `nnc bench` times staged runs and says what each does.
    let dir = public.join("silero_vad_16k");
    let data = dir.join("test_data_set_0");
    let mut bench = nnc();
    bench.arg("bench").arg(dir.join("model.onnx")).arg("--data").arg(&data).args(["--iters", "3", "--json"]);
    let out = bench.output().unwrap();
    let text = stdout_of(&out);
    assert!(out.status.success(), "{text}{}", stderr_of(&out));
    let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert!(v["median_ms"].as_f64().is_some_and(|x| x > 0.0), "{text}");
    assert!(v["staged"]["graph_runs"].as_u64().is_some_and(|n| n > 1), "{text}");
    let out = nnc().arg("compile").arg(public.join("silero_vad_16k/model.onnx")).arg("--check").output().unwrap();
    let err = stderr_of(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("values known only at run time") && err.contains("`nnc run` runs such a model staged"),
        "{err}"
    );
}

#[test]
fn dump_onnx_model_prints_the_imported_graph() {
    let Some(models) = data_dir("../shared/models", "the shared models") else { return };
    let out = nnc().arg("dump").arg(models.join("digits_cnn/model.onnx")).output().unwrap();
    let text = stdout_of(&out);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(text.contains("= conv(") && text.contains("= max_pool(") && text.contains("<elided"), "{text}");
}

#[test]
fn conformance_reports_per_op_and_totals_last() {
    let Some(cases) = data_dir(".nnc-data/onnx-node", "the ONNX node tests (scripts/fetch-onnx-tests.sh)") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("ops.md");
    let out = nnc()
        .arg("conformance")
        .arg(&cases)
        .args(["--filter", "test_relu", "--filter", "test_string_concat", "--report"])
        .arg(&report)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let text = stdout_of(&out);
    let last = text.lines().last().unwrap_or_default();
    assert!(text.contains("Relu"), "{text}");
    // test_relu and test_relu_expanded_ver18 pass; the string cases fail on their dtype.
    assert!(last.starts_with("2 passed, ") && last.ends_with(" skipped"), "{text}");
    assert!(!last.contains(" 0 failed"), "{text}");
    let md = std::fs::read_to_string(&report).unwrap();
    assert!(md.contains("| Relu | 2/2 |") && md.contains("STRING is not supported"), "{md}");
}

#[test]
fn conformance_times_passing_cases_against_the_interpreter() {
    let Some(cases) = data_dir(".nnc-data/onnx-node", "the ONNX node tests (scripts/fetch-onnx-tests.sh)") else {
        return;
    };
    let out = nnc()
        .arg("conformance")
        .arg(&cases)
        .args(["--filter", "test_relu", "--filter", "test_string_concat", "--against-interpreter", "3"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let text = stdout_of(&out);
    // Only the two cases both pass are timed; the list names the slower ones, if any.
    let first = text.lines().next().unwrap_or_default();
    assert!(first.starts_with("cpu against the interpreter (fastest of 3 runs each, compile excluded): "), "{text}");
    assert!(first.ends_with(" of 2 cases both pass run slower on cpu"), "{text}");
    assert!(!text.contains("test_string_concat:"), "{text}");
}

#[test]
fn unsupported_onnx_ops_are_all_reported() {
    let Some(cases) = data_dir(".nnc-data/onnx-node", "the ONNX node tests (scripts/fetch-onnx-tests.sh)") else {
        return;
    };
    let out = nnc().arg("dump").arg(cases.join("test_bernoulli/model.onnx")).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    assert!(err.contains("1 node(s) cannot be imported") && err.contains("(Bernoulli): unsupported op"), "{err}");
    // A data-shaped op is supported, staged: a command that needs one graph says so.
    let out = nnc().arg("dump").arg(cases.join("test_nonzero_example/model.onnx")).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    assert!(err.contains("(NonZero): its output's shape depends on its input's values"), "{err}");
    assert!(err.contains("`nnc run` runs such a model staged"), "{err}");
}

/// The percentage `nnc compile --stats` prints on the line starting with `label`.
fn stats_change(text: &str, label: &str) -> f64 {
    let line =
        text.lines().find(|l| l.trim_start().starts_with(label)).unwrap_or_else(|| panic!("no `{label}`:\n{text}"));
    let pct = line.rsplit(": ").next().and_then(|p| p.trim_end_matches(")").trim_end_matches('%').parse().ok());
    pct.unwrap_or_else(|| panic!("no percentage in `{line}`"))
}

/// Fusion's targets, against one kernel per ONNX node: at least 50% fewer kernels and 40% fewer
/// bytes moved. ResNet-18 reads 46.8 MB of weights once in any schedule (48% of its unfused
/// traffic), so for it the byte target applies to the traffic fusion can remove (all but the
/// weight reads); its total is checked to shrink by a quarter.
#[test]
fn compile_stats_meet_the_fusion_targets() {
    let Some(models) = data_dir("../shared/models", "the shared models") else { return };
    for (name, total_bytes_target) in [("resnet18", -25.0), ("mobilenet_v2", -40.0), ("transformer_encoder", -40.0)] {
        let model = models.join(name).join("model.onnx");
        let out = nnc().arg("compile").arg(model).args(["--stats", "--check", "--target", "wgsl"]).output().unwrap();
        let text = stdout_of(&out);
        assert!(out.status.success(), "{name}: {}", stderr_of(&out));
        eprintln!("{name}:\n{}", text.lines().take(7).collect::<Vec<_>>().join("\n"));
        let kernels = stats_change(&text, "kernels:");
        let bytes = stats_change(&text, "bytes moved:");
        let not_weights = stats_change(&text, "of which not weights:");
        assert!(kernels <= -50.0, "{name}: kernels {kernels}%\n{text}");
        assert!(bytes <= total_bytes_target, "{name}: bytes {bytes}%\n{text}");
        assert!(not_weights <= -40.0, "{name}: bytes other than weights {not_weights}%\n{text}");
    }
}

#[test]
fn dump_after_fuse_and_schedule_prints_groups_and_kernels() {
    let Some(models) = data_dir("../shared/models", "the shared models") else { return };
    let model = models.join("digits_cnn/model.onnx");
    let out =
        nnc().arg("dump").arg(&model).args(["--after", "fuse", "--explain", "--shape", "x=2,1,8,8"]).output().unwrap();
    let text = stdout_of(&out);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(text.contains("# inline %") && text.contains("# materialize %") && text.contains("group k0_"), "{text}");
    for target in ["wgsl", "cpu"] {
        let out = nnc().arg("dump").arg(&model).args(["--after", "schedule", "--target", target]).output().unwrap();
        let text = stdout_of(&out);
        assert!(out.status.success(), "{}", stderr_of(&out));
        assert!(text.contains("kernel k0_") && text.contains("launch grid="), "{text}");
    }
    let out = nnc().arg("dump").arg(&model).args(["--after", "fuse", "--shape", "nope=1"]).output().unwrap();
    assert!(!out.status.success());
    assert!(stderr_of(&out).contains("no input and no symbolic dimension `nope`"), "{}", stderr_of(&out));
}

#[test]
fn run_on_the_kernel_interpreter_passes_the_reference() {
    let Some(models) = data_dir("../shared/models", "the shared models") else { return };
    let dir = models.join("digits_mlp");
    for target in ["kernel-interp", "kernel-interp-cpu"] {
        let out = nnc()
            .arg("run")
            .arg(dir.join("model.onnx"))
            .args(["--target", target, "--data"])
            .arg(dir.join("test_data_set_0"))
            .output()
            .unwrap();
        let text = stdout_of(&out);
        assert!(out.status.success() && text.contains("summary: PASS"), "{target}: {text}{}", stderr_of(&out));
    }
}

/// Every shared model compiled by `nnc compile MODEL --data DIR` (no other flag: a CPU bundle
/// in the working directory) and run from the folder by `nnc run BUNDLE --data DIR` matches its
/// reference outputs; a second compile gives the same bundle, byte for byte.
#[test]
fn cpu_bundles_of_every_shared_model_pass_their_references() {
    let Some(models) = data_dir("../shared/models", "the shared models") else { return };
    let mut names: Vec<String> = std::fs::read_dir(&models)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("model.onnx").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(names.len() >= 8, "shared models: {names:?}");
    for name in &names {
        let dir = models.join(name);
        let data = dir.join("test_data_set_0");
        let tmp = tempfile::tempdir().unwrap();
        let out = nnc()
            .current_dir(tmp.path())
            .arg("compile")
            .arg(dir.join("model.onnx"))
            .args(["--stats", "--data"])
            .arg(&data)
            .output()
            .unwrap();
        let text = stdout_of(&out);
        assert!(out.status.success(), "{name}: {text}{}", stderr_of(&out));
        assert!(
            text.contains("codegen") && text.contains("arena:") && text.contains("wrote model.cpu.nnc"),
            "{name}: {text}"
        );
        let bundle = tmp.path().join("model.cpu.nnc");
        let out = nnc().arg("run").arg(&bundle).arg("--data").arg(&data).output().unwrap();
        let text = stdout_of(&out);
        assert!(out.status.success() && text.contains("summary: PASS"), "{name}: {text}{}", stderr_of(&out));
        let again = tmp.path().join("again");
        let out = nnc()
            .arg("compile")
            .arg(dir.join("model.onnx"))
            .arg("--data")
            .arg(&data)
            .arg("-o")
            .arg(&again)
            .output()
            .unwrap();
        assert!(out.status.success(), "{name}: {}", stderr_of(&out));
        assert_same_folders(&bundle, &again);
    }
}

#[test]
fn bench_reports_json_with_the_documented_keys() {
    let Some(models) = data_dir("../shared/models", "the shared models") else { return };
    let model = models.join("digits_cnn/model.onnx");
    let out = nnc().arg("bench").arg(&model).args(["--iters", "3", "--threads", "1", "--json"]).output().unwrap();
    let text = stdout_of(&out);
    assert!(out.status.success(), "{text}{}", stderr_of(&out));
    let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"));
    for key in ["compile_ms", "median_ms", "min_ms"] {
        assert!(v[key].as_f64().is_some_and(|x| x > 0.0), "{key}: {text}");
    }
    assert!(v["min_ms"].as_f64() <= v["median_ms"].as_f64());
    assert_eq!(v["iters"], 3);
    assert_eq!(v["target"], "cpu");
    let out = nnc().arg("bench").arg(&model).args(["--iters", "2"]).output().unwrap();
    let text = stdout_of(&out);
    assert!(text.contains("compile:") && text.contains("median"), "{text}");
}

#[test]
fn wgsl_compile_writes_one_shader_per_kernel() {
    let Some(models) = data_dir("../shared/models", "the shared models") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let out = nnc()
        .arg("compile")
        .arg(models.join("digits_cnn/model.onnx"))
        .args(["--target", "wgsl", "-o"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("manifest.json")).unwrap()).unwrap();
    let kernels = manifest["kernels"].as_array().unwrap();
    assert!(!kernels.is_empty());
    for k in kernels {
        let file = k["code"]["file"]["path"].as_str().unwrap();
        let text = std::fs::read_to_string(tmp.path().join(file)).unwrap();
        assert!(text.contains("@compute"), "{file}");
    }
    // A WGSL folder is not something `nnc run` executes.
    let out = nnc().arg("run").arg(tmp.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr_of(&out).contains("nnc cannot run this target's bundles itself"), "{}", stderr_of(&out));
}

/// `nnc compile --target cuda -o DIR` writes CUDA C++ and PTX for sm_80 and sm_90 (NVRTC from
/// the wheel `scripts/setup.sh` fetches); `nnc run --target cuda` without a driver is a one-line
/// error, not a panic.
#[test]
fn cuda_compile_writes_source_and_ptx_and_run_needs_a_driver() {
    let Some(models) = data_dir("../shared/models", "the shared models") else { return };
    let dir = models.join("digits_cnn");
    let tmp = tempfile::tempdir().unwrap();
    let out = nnc()
        .arg("compile")
        .arg(dir.join("model.onnx"))
        .args(["--target", "cuda", "-o"])
        .arg(tmp.path())
        .output()
        .unwrap();
    let err = stderr_of(&out);
    if !out.status.success() && err.contains("NVRTC") && std::env::var_os("CI").is_none() {
        eprintln!("SKIPPED: NVRTC is not installed ({err}); run scripts/setup.sh");
    } else {
        assert!(out.status.success(), "{err}");
        let source = std::fs::read_to_string(tmp.path().join("kernels.cu")).unwrap();
        assert!(source.contains("__global__"));
        for arch in ["sm_80", "sm_90"] {
            let ptx = std::fs::read_to_string(tmp.path().join(format!("kernels.{arch}.ptx"))).unwrap();
            assert!(ptx.contains(&format!(".target {arch}")), "{arch}");
        }
        let manifest = std::fs::read_to_string(tmp.path().join("manifest.json")).unwrap();
        assert!(manifest.contains("\"target\": \"cuda\"") && manifest.contains("nnc_k0_"), "{manifest}");
    }
    let out = nnc()
        .arg("run")
        .arg(dir.join("model.onnx"))
        .args(["--target", "cuda", "--data"])
        .arg(dir.join("test_data_set_0"))
        .output()
        .unwrap();
    if out.status.success() {
        assert!(stdout_of(&out).contains("summary: PASS"), "{}", stdout_of(&out));
    } else {
        assert_eq!(out.status.code(), Some(1), "an error, not a panic: {}", stderr_of(&out));
        assert!(stderr_of(&out).contains("cuda"), "{}", stderr_of(&out));
    }
}

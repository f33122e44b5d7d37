//! `nnc tune`, the records it writes, and the commands that read them (`--tuning`,
//! `--no-tuning`, `bench --profile`), end to end.

mod common;

use common::*;
use std::path::Path;

const MODEL: &str = "graph mm(%x: f32[64, 96]) {
  %w: f32[96, 128] = iota() {dtype = f32, shape = [96, 128], axis = 1}
  %y: f32[64, 128] = matmul(%x, %w)
  %r: f32[64, 128] = relu(%y)
  return %r
}
";

fn run(dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = nnc().current_dir(dir).args(args).output().unwrap();
    (out.status.code(), stdout_of(&out), stderr_of(&out))
}

#[test]
fn tune_writes_records_that_compile_run_and_bench_use() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "mm.nnir", MODEL);
    let tuned =
        run(d, &["tune", "mm.nnir", "--budget", "10", "--threads", "2", "--cache", "cache.jsonl", "-o", "ship.jsonl"]);
    assert_eq!(tuned.0, Some(0), "{}", tuned.2);
    let out = &tuned.1;
    assert!(
        out.contains("best schedule (default)") && out.contains("model: ") && out.contains("records: 2 appended"),
        "{out}"
    );
    let cache = std::fs::read_to_string(d.join("cache.jsonl")).unwrap();
    assert_eq!(cache, std::fs::read_to_string(d.join("ship.jsonl")).unwrap());
    let record: serde_json::Value = serde_json::from_str(cache.lines().next().unwrap()).unwrap();
    assert!(
        record["best"]["tile"].is_array() && record["candidates"].as_array().is_some_and(|c| c.len() > 2),
        "{record}"
    );

    // bench reads the shipped records and profiles each kernel.
    let bench = run(d, &["bench", "mm.nnir", "--tuning", "ship.jsonl", "--profile", "--iters", "5", "--json"]);
    assert_eq!(bench.0, Some(0), "{}", bench.2);
    let report: serde_json::Value = serde_json::from_str(bench.1.trim()).unwrap();
    assert_eq!(report["tuned_kernels"], 2, "{report}");
    let kernel = &report["profile"]["kernels"][0];
    assert!(kernel["median_ms"].as_f64().is_some_and(|t| t > 0.0), "{report}");
    assert!(kernel["gflops"].as_f64().is_some_and(|r| r > 0.0) && kernel["tuned"] == true, "{report}");
    assert!(kernel["covers"].as_array().is_some_and(|c| !c.is_empty()), "{report}");
    assert!(bench.2.contains("2 of 2 kernels scheduled from tuned records"), "{}", bench.2);

    // The same records give the same bundle; --no-tuning ignores them.
    for out in ["a", "b"] {
        let c = run(d, &["compile", "mm.nnir", "--tuning", "ship.jsonl", "-o", out]);
        assert_eq!(c.0, Some(0), "{}", c.2);
    }
    assert_same_folders(&d.join("a"), &d.join("b"));
    let plain = run(d, &["bench", "mm.nnir", "--no-tuning", "--iters", "2", "--json"]);
    let report: serde_json::Value = serde_json::from_str(plain.1.trim()).unwrap();
    assert_eq!(report["tuned_kernels"], 0, "{report}");
    assert!(report["profile"].is_null());
}

#[test]
fn bad_tuning_records_are_warnings_and_a_missing_file_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "mm.nnir", MODEL);
    write(d, "bad.jsonl", "{\"key\": 1}\nnot json\n");
    let r = run(d, &["run", "mm.nnir", "--tuning", "bad.jsonl", "--random-inputs", "1"]);
    assert_eq!(r.0, Some(0), "{}", r.2);
    assert!(
        r.2.contains("bad.jsonl:1: not a tuning record") && r.2.contains("bad.jsonl:2: not a tuning record"),
        "{}",
        r.2
    );
    let missing = run(d, &["run", "mm.nnir", "--tuning", "none.jsonl", "--random-inputs", "1"]);
    assert_eq!(missing.0, Some(1));
    assert!(missing.2.contains("--tuning none.jsonl: no such file"), "{}", missing.2);
    let budget = run(d, &["tune", "mm.nnir", "--budget=0", "--cache", "c.jsonl"]);
    assert_eq!(budget.0, Some(1), "{}", budget.2);
}

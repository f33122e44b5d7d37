//! End-to-end tests of `nnc dump` and `nnc run` on small graphs written to temporary folders.

mod common;

use common::*;
use nnc_ir::TensorData;
use predicates::prelude::*;

const X: [f32; 6] = [1.0, 2.0, -1.0, 0.5, -0.5, 3.0];

fn mlp_dir() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let model = write(dir.path(), "mlp.nnir", mlp_text());
    (dir, model)
}

#[test]
fn dump_prints_the_verified_graph_with_types() {
    let (_dir, model) = mlp_dir();
    let out = nnc().arg("dump").arg(&model).arg("--full").output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let text = stdout_of(&out);
    assert!(text.starts_with("graph mlp(%x: f32[batch, 3]) {"), "{text}");
    assert!(text.contains("%h: f32[batch, 4] = matmul(%x, %w1)"), "{text}");
    assert!(text.contains("%r: f32[batch, 4] = relu(%hb)"), "{text}");
    assert!(text.contains("return %y"), "{text}");
    // The full dump is a .nnir file that dumps to itself.
    let dir = tempfile::tempdir().unwrap();
    let again = write(dir.path(), "again.nnir", &text);
    nnc().arg("dump").arg(&again).arg("--full").assert().success().stdout(text);
}

#[test]
fn dump_elides_large_constants() {
    let (_dir, model) = mlp_dir();
    // Default: elide over 64 elements, and these constants are small.
    let full = stdout_of(&nnc().arg("dump").arg(&model).output().unwrap());
    assert!(full.contains("0.5, -1.0") || full.contains("0.5, -1"), "{full}");
    let elided = nnc().arg("dump").arg(&model).args(["--elide", "4"]).output().unwrap();
    assert!(elided.status.success());
    let elided = stdout_of(&elided);
    assert!(elided.contains("elided"), "{elided}");
    assert!(!elided.contains("-0.25"), "{elided}");
    // --full and --elide together are a usage error.
    nnc().arg("dump").arg(&model).args(["--elide", "4", "--full"]).assert().code(2);
}

#[test]
fn run_with_npy_input_prints_outputs() {
    let (dir, model) = mlp_dir();
    let x = write_npy(dir.path(), "x.npy", &[2, 3], &X);
    let input = format!("x={}", x.display());
    let out = nnc().arg("run").arg(&model).args(["--target", "interp", "--input", &input]).output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let expect = mlp_reference(&X, 2);
    let values = expect.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", ");
    assert_eq!(stdout_of(&out), format!("%y: f32[2, 2] = [{values}]\n"));
    let err = stderr_of(&out);
    assert!(err.contains("for interp in") && err.contains("ran on %x: f32[2, 3] in"), "{err}");

    // The default target is the CPU backend: the same values up to rounding.
    let out = nnc().arg("run").arg(&model).args(["--input", &input]).output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("for cpu in") && stderr_of(&out).contains("codegen"), "{}", stderr_of(&out));
    let text = stdout_of(&out);
    let found: Vec<f32> = text
        .trim()
        .trim_start_matches("%y: f32[2, 2] = [")
        .trim_end_matches(']')
        .split(", ")
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(found.len(), expect.len(), "{text}");
    for (f, e) in found.iter().zip(&expect) {
        assert!((f - e).abs() <= 1e-5 * e.abs().max(1.0), "{f} vs {e}");
    }
}

#[test]
fn run_writes_outputs_as_npy() {
    let dir = tempfile::tempdir().unwrap();
    let model = write(dir.path(), "two.nnir", TWO_IO);
    let a = write_npy(dir.path(), "a.npy", &[2, 2], &[1.0f32, 2.0, 3.0, 4.0]);
    let b = write_pb(dir.path(), "b.pb", &TensorData::from_vec(vec![3], &[1i64, -2, 3]));
    let outdir = dir.path().join("out").join("nested");
    let out = nnc()
        .arg("run")
        .arg(&model)
        .args(["--target", "interp"])
        .arg("--input")
        .arg(format!("%a={}", a.display()))
        .arg("-i")
        .arg(format!("b={}", b.display()))
        .arg("--output-dir")
        .arg(&outdir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let sum = outdir.join("out_sum_0.npy");
    assert_eq!(read_npy_f32(&sum), (vec![2, 2], vec![2.0, 8.0, 18.0, 32.0]));
    let bytes = std::fs::read(outdir.join("n.npy")).unwrap();
    let n = npyz::NpyFile::new(&bytes[..]).unwrap();
    assert_eq!(n.shape(), &[3]);
    assert_eq!(n.into_vec::<i64>().unwrap(), vec![-1, 2, -3]);
    assert!(stdout_of(&out).contains("out_sum_0.npy"), "{}", stdout_of(&out));
}

fn data_dir(expected: &[f32]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_pb(dir.path(), "input_0.pb", &TensorData::from_vec(vec![2, 3], &X));
    write_pb(dir.path(), "output_0.pb", &TensorData::from_vec(vec![2, 2], expected));
    dir
}

#[test]
fn run_with_data_dir_passes() {
    let (_dir, model) = mlp_dir();
    let data = data_dir(&mlp_reference(&X, 2));
    let out = nnc().arg("run").arg(&model).arg("--data").arg(data.path()).output().unwrap();
    assert!(out.status.success(), "{}\n{}", stdout_of(&out), stderr_of(&out));
    let text = stdout_of(&out);
    assert!(text.contains("%y  f32[2, 2]  max abs err"), "{text}");
    assert!(text.contains("PASS"), "{text}");
    assert!(text.contains("summary: PASS, 1 of 1 outputs match"), "{text}");
}

#[test]
fn run_with_data_dir_fails_on_a_wrong_expectation() {
    let (_dir, model) = mlp_dir();
    let mut expected = mlp_reference(&X, 2);
    expected[3] += 0.5;
    let data = data_dir(&expected);
    let out = nnc().arg("run").arg(&model).arg("--data").arg(data.path()).output().unwrap();
    // Outputs outside the tolerance exit 3, apart from errors (1) and usage errors (2).
    assert_eq!(out.status.code(), Some(3));
    let text = stdout_of(&out);
    assert!(text.contains("max abs err 5.000e-1"), "{text}");
    assert!(text.contains("FAIL (1 of 4 differ)"), "{text}");
    assert!(text.contains("summary: FAIL, 1 of 1 outputs differ"), "{text}");
    // A looser tolerance passes.
    nnc().arg("run").arg(&model).arg("--data").arg(data.path()).args(["--atol", "0.6"]).assert().success();
    // The wrong shape is a FAIL too, with the reason.
    let bad = tempfile::tempdir().unwrap();
    write_pb(bad.path(), "input_0.pb", &TensorData::from_vec(vec![2, 3], &X));
    write_pb(bad.path(), "output_0.pb", &TensorData::from_vec(vec![4], &mlp_reference(&X, 2)));
    nnc()
        .arg("run")
        .arg(&model)
        .arg("--data")
        .arg(bad.path())
        .assert()
        .code(3)
        .stdout(predicate::str::contains("FAIL (shape [2, 2] differs from the expected [4])"));
}

#[test]
fn explicit_input_overrides_data_dir() {
    let (dir, model) = mlp_dir();
    let data = data_dir(&mlp_reference(&X, 2));
    // Other values for x: the comparison must now fail.
    let x = write_npy(dir.path(), "x.npy", &[2, 3], &[0.0f32; 6]);
    nnc()
        .arg("run")
        .arg(&model)
        .arg("--data")
        .arg(data.path())
        .arg("--input")
        .arg(format!("x={}", x.display()))
        .assert()
        .code(3)
        .stdout(predicate::str::contains("FAIL"));
}

#[test]
fn missing_inputs_are_listed() {
    let dir = tempfile::tempdir().unwrap();
    let model = write(dir.path(), "two.nnir", TWO_IO);
    nnc().arg("run").arg(&model).assert().code(1).stderr(
        "error: missing inputs %a: f32[2, 2], %b: i64[3] (give each with --input NAME=PATH, all with --data DIR, \
         or use --random-inputs)\n",
    );
    let a = write_npy(dir.path(), "a.npy", &[2, 2], &[1.0f32; 4]);
    nnc()
        .arg("run")
        .arg(&model)
        .arg("--input")
        .arg(format!("a={}", a.display()))
        .assert()
        .code(1)
        .stderr(predicate::str::starts_with("error: missing input %b: i64[3] "));
}

#[test]
fn wrong_inputs_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let model = write(dir.path(), "two.nnir", TWO_IO);
    let good_b = write_npy(dir.path(), "b.npy", &[3], &[1i64, 2, 3]);
    let b_arg = format!("b={}", good_b.display());
    let cases: [(&str, Vec<u8>, &str); 3] = [
        ("f64.npy", npy_bytes(&[2, 2], &[1.0f64; 4]), "input %a from"),
        ("shape.npy", npy_bytes(&[4], &[1.0f32; 4]), "expected f32[2, 2], found f32[4]"),
        ("bad.txt", b"1 2 3 4".to_vec(), "unknown tensor file format"),
    ];
    for (file, bytes, message) in cases {
        let a = write(dir.path(), file, bytes);
        nnc()
            .arg("run")
            .arg(&model)
            .args(["--input", &format!("a={}", a.display()), "--input", &b_arg])
            .assert()
            .code(1)
            .stderr(predicate::str::contains(message));
    }
    nnc()
        .arg("run")
        .arg(&model)
        .args(["--input", &format!("zz={}", good_b.display())])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("the graph has no input %zz (its inputs: %a, %b)"));
}

#[test]
fn bad_model_paths() {
    let dir = tempfile::tempdir().unwrap();
    let txt = write(dir.path(), "model.txt", "graph g() {}");
    nnc()
        .arg("dump")
        .arg(&txt)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("model.txt: unknown model format (expected a file ending in .nnir, .onnx)"));
    let missing = dir.path().join("nope.nnir");
    nnc()
        .arg("run")
        .arg(&missing)
        .assert()
        .code(1)
        .stderr(predicate::str::starts_with("error: cannot read").and(predicate::str::contains("nope.nnir")));
    nnc().arg("dump").arg(dir.path().join("nope.onnx")).assert().code(1);
    // A parse error names file:line:col.
    let bad = write(dir.path(), "bad.nnir", "graph g(%x: f32[2]) {\n  return %nothing\n}\n");
    nnc().arg("dump").arg(&bad).assert().code(1).stderr(predicate::str::contains("bad.nnir:"));
    // Usage errors exit 2 (clap's); the help documents the exit codes.
    nnc().args(["run", "--target", "gpu9000"]).arg(&bad).assert().code(2);
    nnc().arg("frobnicate").assert().code(2);
    nnc().arg("--help").assert().success().stdout(predicate::str::contains("dump").and(predicate::str::contains(
        "Exit codes: 0 success; 1 error (one `error:` line on stderr); 2 usage error; 3 outputs outside the",
    )));
}

/// A graph with work for the optimizer: a unit, a double negation and a spelled-out GELU.
const OPTIMIZABLE: &str = "graph opt(%x: f32[2, 4]) {
  %one: f32[] = constant [1.0]
  %a: f32[2, 4] = mul(%x, %one)
  %n: f32[2, 4] = neg(%a)
  %nn: f32[2, 4] = neg(%n)
  %s: f32[] = constant [1.4142135]
  %h: f32[] = constant [0.5]
  %d: f32[2, 4] = div(%nn, %s)
  %e: f32[2, 4] = erf(%d)
  %e1: f32[2, 4] = add(%e, %one)
  %he: f32[2, 4] = mul(%h, %e1)
  %y: f32[2, 4] = mul(%nn, %he)
  return %y
}
";

#[test]
fn dump_after_opt_prints_the_optimized_graph() {
    let dir = tempfile::tempdir().unwrap();
    let model = write(dir.path(), "opt.nnir", OPTIMIZABLE);
    // The default pass is the import: the graph as written.
    let imported = stdout_of(&nnc().arg("dump").arg(&model).output().unwrap());
    assert!(imported.contains("erf(%d)"), "{imported}");
    let same = stdout_of(&nnc().arg("dump").arg(&model).args(["--after", "import"]).output().unwrap());
    assert_eq!(imported, same);
    let out = nnc().arg("dump").arg(&model).args(["--after", "opt", "--full"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let text = stdout_of(&out);
    assert_eq!(
        text, "graph opt(%x: f32[2, 4]) {\n  %y: f32[2, 4] = gelu(%x) {approximate = none}\n  return %y\n}\n",
        "{text}"
    );
    // The optimized dump is a .nnir file, which optimizes to itself.
    let again = write(dir.path(), "again.nnir", &text);
    nnc().arg("dump").arg(&again).args(["--after", "opt", "--full"]).assert().success().stdout(text);
}

#[test]
fn dump_explain_lists_rules_and_costs() {
    let dir = tempfile::tempdir().unwrap();
    let model = write(dir.path(), "opt.nnir", OPTIMIZABLE);
    let out = nnc().arg("dump").arg(&model).arg("--explain").output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let text = stdout_of(&out);
    assert!(text.starts_with("# opt: 11 -> 1 nodes; saturated after"), "{text}");
    assert!(text.contains("# cost before: "), "{text}");
    assert!(text.contains("# cost after:  ") && text.contains("%)"), "{text}");
    assert!(text.contains("# rules that changed the graph:"), "{text}");
    for rule in ["mul_one", "neg_neg", "gelu_erf"] {
        assert!(text.lines().any(|l| l.starts_with("#   ") && l.contains(rule)), "{rule} missing:\n{text}");
    }
    assert!(text.contains("gelu(%x)"), "{text}");
    // Twice the same, and the explanation is comments: the dump still parses.
    nnc().arg("dump").arg(&model).arg("--explain").assert().success().stdout(text.clone());
    let again = write(dir.path(), "again.nnir", &text);
    nnc().arg("dump").arg(&again).assert().success();
    // Nothing to do is said so.
    let plain = write(dir.path(), "plain.nnir", "graph p(%x: f32[2]) {\n  %y: f32[2] = exp(%x)\n  return %y\n}\n");
    nnc()
        .arg("dump")
        .arg(&plain)
        .args(["--explain", "--after", "opt"])
        .assert()
        .success()
        .stdout(predicate::str::contains("# no rule changed the graph"));
}

#[test]
fn dump_pass_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let model = write(dir.path(), "opt.nnir", OPTIMIZABLE);
    nnc()
        .arg("dump")
        .arg(&model)
        .args(["--after", "import", "--explain"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("--explain describes the `opt` and `fuse` passes"));
    nnc().arg("dump").arg(&model).args(["--after", "schedule", "--explain"]).assert().code(1);
    nnc().arg("dump").arg(&model).args(["--after", "lower"]).assert().code(2);
    nnc().arg("dump").arg(&model).args(["--after", "fuse"]).assert().success();
}

/// A second compile of a model takes every kernel from the compiled-code cache
/// (`NNC_CODE_CACHE`) and says so, and runs to the same outputs; `NNC_CODE_CACHE=off` compiles
/// every kernel again. Skipped where LLVM compiles nothing (no cache is used then).
#[test]
fn a_second_compile_takes_its_kernels_from_the_code_cache() {
    let (dir, model) = mlp_dir();
    let cache = dir.path().join("code cache");
    let code_line = |cache: &std::ffi::OsStr| {
        let out = nnc()
            .env("NNC_CODE_CACHE", cache)
            .arg("compile")
            .arg(&model)
            .args(["--check", "--stats", "--shape", "batch=2"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr_of(&out));
        stdout_of(&out).lines().find(|l| l.starts_with("code:")).unwrap_or_default().to_string()
    };
    let first = code_line(cache.as_os_str());
    if first.starts_with("code: 0 of") {
        eprintln!("SKIPPED: LLVM compiles no kernel on this host ({first})");
        return;
    }
    assert!(!first.contains("code cache"), "{first}");
    let kernels = first.split_whitespace().nth(3).unwrap().to_string();
    let second = code_line(cache.as_os_str());
    assert!(second.contains(&format!(", {kernels} from the code cache)")), "{second}");
    assert!(!code_line("off".as_ref()).contains("code cache"));

    let x = write_npy(dir.path(), "x.npy", &[2, 3], &X);
    let input = format!("x={}", x.display());
    let run = |cache: &std::ffi::OsStr| {
        let out = nnc().env("NNC_CODE_CACHE", cache).arg("run").arg(&model).args(["--input", &input]).output().unwrap();
        assert!(out.status.success(), "{}", stderr_of(&out));
        stdout_of(&out)
    };
    assert_eq!(run(cache.as_os_str()), run("off".as_ref()));
}

#[test]
fn collectives_run_on_one_rank_and_say_how_to_run_more() {
    let dir = tempfile::tempdir().unwrap();
    let graph = |world: u32| {
        format!(
            "graph g(%x: f32[2]) {{\n  %y: f32[2] = all_reduce(%x) {{op = sum, world = {world}}}\n  %z: f32[2] = mul(%y, %x)\n  return %z\n}}\n"
        )
    };
    let x = write_npy(dir.path(), "x.npy", &[2], &[3.0f32, -2.0]);
    let one = write(dir.path(), "one.nnir", graph(1));
    let out = nnc().arg("run").arg(&one).arg("--input").arg(format!("x={}", x.display())).output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(stdout_of(&out).contains("[9, 4]"), "{}", stdout_of(&out));
    let two = write(dir.path(), "two.nnir", graph(2));
    let out = nnc().arg("run").arg(&two).arg("--input").arg(format!("x={}", x.display())).output().unwrap();
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("communicates between ranks") && stderr_of(&out).contains("nnc-dist"),
        "{}",
        stderr_of(&out)
    );
}

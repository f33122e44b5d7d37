//! The fuzzer's CI run: 2,000 mutants of real inputs of every kind (ONNX node-test models and
//! the shared models, the `.nnir` file tests, their tensors, bundles compiled from them) through
//! `nnc`, each in a child process under a memory cap and a time limit; none may crash or hang.
//! `NNC_FUZZ_CASES` sets another count; `nnc-fuzz --help` runs longer campaigns by hand.

use std::path::PathBuf;

#[test]
fn fuzz_cases_end_cleanly() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut corpus = vec![root.join("ir")];
    for (dir, what) in
        [(".nnc-data/onnx-node", "the ONNX node tests (scripts/setup.sh)"), ("../shared/models", "the shared models")]
    {
        let dir = root.join(dir);
        if dir.is_dir() {
            corpus.push(dir);
        } else {
            assert!(std::env::var_os("CI").is_none(), "{what} must be present in CI ({})", dir.display());
            eprintln!("note: {what} not found at {}; fuzzing without them", dir.display());
        }
    }
    let cases = std::env::var("NNC_FUZZ_CASES").unwrap_or_else(|_| "2000".into());
    let out = tempfile::tempdir().unwrap();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_nnc-fuzz"));
    command.args(["--nnc", env!("CARGO_BIN_EXE_nnc"), "--cases", &cases, "--jobs", "2", "--seed", "14"]);
    command.arg("--out").arg(out.path());
    for dir in &corpus {
        command.arg("--corpus").arg(dir);
    }
    let result = command.output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&result.stdout), String::from_utf8_lossy(&result.stderr));
    eprintln!("{stdout}");
    assert!(result.status.success(), "crashes or hangs (cases kept in {}):\n{stderr}\n{stdout}", out.keep().display());
    assert!(stdout.contains(&format!("{cases} cases in")), "{stdout}");
}

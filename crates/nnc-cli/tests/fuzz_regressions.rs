//! Every input `nnc-fuzz` found crashing or hanging `nnc` (files in `tests/fuzz-regressions/`),
//! run through the command that failed: each must now end in a clean error or a result.

mod common;

use common::*;
use std::path::PathBuf;

/// (file, what the fuzzer did to its seed, the failure it found, the command, what is said now)
const CASES: [(&str, &str, &str, &[&str], &str); 9] = [
    (
        "onnx-2-4730.onnx",
        "fed a ConstantOfShape of shape [2^62, 2^62, 59] into an AveragePool",
        "index out of bounds in the pooling window (input of rank 3 for 2 spatial axes)",
        &["run", "--random-inputs", "--threads", "1"],
        "the input must be [N, C, 2 spatial axes]",
    ),
    (
        "onnx-2-7602.onnx",
        "fed a ConstantOfShape of shape [2^62, 2^32] into a MaxPool",
        "index out of bounds in the pooling window (input of rank 2)",
        &["run", "--random-inputs", "--threads", "1"],
        "the input must be [N, C, 2 spatial axes]",
    ),
    (
        "onnx-2-9036.onnx",
        "removed NegativeLogLikelihoodLoss.reduction and dimension 0 of the labels",
        "insertion index out of bounds (labels of rank 0)",
        &["run", "--random-inputs", "--threads", "1"],
        "labels must be [N, d...]",
    ),
    (
        "onnx-2-10053.onnx",
        "set Split.num_outputs to 2^62",
        "capacity overflow building 2^62 split sizes",
        &["compile", "-o", "out.nnc"],
        "num_outputs = 4611686018427387904, but the node has 3 outputs",
    ),
    (
        "onnx-3-4085.onnx",
        "fed a ConstantOfShape of shape [25, 2^63 - 1] into a Split in equal parts",
        "min > max in clamp: the part length overflowed computing ceil(len / parts)",
        &["run", "--random-inputs", "--threads", "1"],
        "is too large (more than 2^48 bytes)",
    ),
    (
        "onnx-2-17062.onnx",
        "set LRN.size to 2^31 - 1",
        "a timeout: a pooling window of 2^31 channels",
        &["run", "--random-inputs", "--threads", "1"],
        "",
    ),
    (
        "onnx-7-80500.onnx",
        "fed a ConstantOfShape of shape [2^31 - 1, 4, 0] into a Split",
        "out of memory (16 GiB): the interpreter's slice built an offset list per index of an empty tensor's dimensions",
        &["run", "--random-inputs", "--threads", "1"],
        "",
    ),
    (
        "onnx-14-206.onnx",
        "fed a ConstantOfShape of shape [3, 2^32, 2^32 + 1] into a QuantizeLinear's zero point",
        "multiply with overflow counting the zero point's elements",
        &["run", "--random-inputs", "--threads", "1"],
        "the scale or zero point: the element count overflows",
    ),
    (
        "onnx-404-1796.onnx",
        "set LpPool.kernel_shape[0] to 2^31 with auto_pad SAME_LOWER",
        "a timeout: every output element summed a window of 2^31 (mostly padding)",
        &["run", "--random-inputs", "--threads", "1"],
        "more than nnc pools",
    ),
];

#[test]
fn fuzz_findings_end_cleanly() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions");
    for (file, mutation, failure, args, says) in CASES {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::copy(dir.join(file), tmp.path().join("model.onnx")).unwrap();
        let mut command = nnc();
        command.current_dir(tmp.path()).arg(args[0]).arg("model.onnx").args(&args[1..]);
        let out = command.timeout(std::time::Duration::from_secs(60)).output().unwrap();
        let err = stderr_of(&out);
        let what = format!("{file} ({mutation}; once: {failure})");
        match out.status.code() {
            Some(0) => assert!(says.is_empty(), "{what}: succeeded, expected `{says}`"),
            Some(1) => {
                assert!(!says.is_empty() && err.contains(says), "{what}: {err}");
                assert!(!err.contains("internal error"), "{what}: {err}");
            }
            code => panic!("{what}: exit {code:?}: {err}"),
        }
    }
}

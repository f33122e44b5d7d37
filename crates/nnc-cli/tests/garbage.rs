//! Feeds `nnc dump` and `nnc run` garbage: random bytes, truncated and mutated models, corrupt
//! `.npy` and `.pb` tensors. Every run must end in a clean error (exit 1, one `error:` line), or
//! for a mutation that happens to stay valid, in success; never in a panic.

mod common;

use common::*;
use nnc_ir::TensorData;
use std::path::{Path, PathBuf};

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// One invocation and whether a success is acceptable (a mutation may leave a valid file).
struct Case {
    what: String,
    args: Vec<String>,
    may_succeed: bool,
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn check(case: &Case) {
    let out = nnc().args(&case.args).output().unwrap();
    let (stdout, stderr) = (stdout_of(&out), stderr_of(&out));
    let code = out.status.code();
    assert!(!stderr.contains("panicked") && !stderr.contains("internal error"), "{}: {stderr}", case.what);
    match code {
        Some(1) => {
            // One error line, last (a FAIL of a comparison prints its report on stdout instead).
            assert!(stderr.lines().last().is_some_and(|l| l.starts_with("error: ")), "{}: {stderr:?}", case.what);
            assert!(stderr.lines().filter(|l| l.starts_with("error: ")).count() == 1, "{}: {stderr}", case.what);
        }
        Some(0) if case.may_succeed => {}
        _ => panic!("{}: exit {code:?}\nstdout: {stdout}\nstderr: {stderr}", case.what),
    }
}

fn mutate(rng: &mut Rng, text: &[u8]) -> Vec<u8> {
    let mut v = text.to_vec();
    for _ in 0..1 + rng.below(4) {
        let i = rng.below(v.len());
        match rng.below(4) {
            0 => v[i] = rng.next() as u8,
            1 => {
                v.remove(i);
            }
            2 => v.insert(i, b"{}[]()%,:=-0123456789efx\"#\n"[rng.below(27)]),
            _ => {
                // Duplicate a slice, as a bad merge would.
                let j = (i + rng.below(40)).min(v.len());
                let chunk = v[i..j].to_vec();
                v.splice(i..i, chunk);
            }
        }
    }
    v
}

#[test]
fn garbage_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mlp = mlp_text();
    let model = write(d, "mlp.nnir", &mlp);
    let x = write_npy(d, "x.npy", &[2, 3], &[1.0f32; 6]);
    let good_x = format!("x={}", s(&x));
    let mut cases = Vec::new();
    let mut add = |what: String, args: Vec<String>, may_succeed: bool| cases.push(Case { what, args, may_succeed });
    let run_with = |input: &Path| vec!["run".into(), s(&model), "--input".into(), format!("x={}", s(input))];

    // Random bytes as models, in both formats and both commands.
    for i in 0..10 {
        let len = rng.below(400);
        let f = write(d, &format!("random{i}.nnir"), rng.bytes(len));
        let cmd = if i % 2 == 0 { "dump" } else { "run" };
        add(format!("random model {i}"), vec![cmd.into(), s(&f)], false);
    }
    for i in 0..3 {
        let f = write(d, &format!("random{i}.onnx"), rng.bytes(64 + i * 100));
        add(format!("random onnx {i}"), vec!["dump".into(), s(&f)], false);
    }
    // Truncated models: every prefix that stops before the closing brace is invalid.
    let close = mlp.rfind('}').unwrap();
    for i in 0..10 {
        let cut = if i == 0 { 0 } else { rng.below(close) };
        let f = write(d, &format!("trunc{i}.nnir"), &mlp.as_bytes()[..cut]);
        add(format!("model cut at {cut}"), vec!["dump".into(), s(&f)], false);
    }
    // Mutated models, dumped and run.
    for i in 0..12 {
        let f = write(d, &format!("mutated{i}.nnir"), mutate(&mut rng, mlp.as_bytes()));
        let args = if i % 2 == 0 {
            vec!["dump".into(), s(&f)]
        } else {
            vec!["run".into(), s(&f), "--input".into(), good_x.clone()]
        };
        add(format!("mutated model {i}"), args, true);
    }
    // Corrupt .npy inputs: random bytes, truncations, bad headers.
    let good_npy = npy_bytes(&[2, 3], &[1.0f32; 6]);
    for i in 0..4 {
        let len = rng.below(200);
        let f = write(d, &format!("random{i}.npy"), rng.bytes(len));
        add(format!("random npy {i}"), run_with(&f), false);
    }
    for i in 0..5 {
        let cut = rng.below(good_npy.len() - 1);
        let f = write(d, &format!("trunc{i}.npy"), &good_npy[..cut]);
        add(format!("npy cut at {cut}"), run_with(&f), false);
    }
    let headers = [
        "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999, 99999999999, 99999999999), }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (-2, 3), }",
        "{'descr': '<c8', 'fortran_order': False, 'shape': (2, 3), }",
        "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2, 3), }",
        "{'descr': '<f4', 'fortran_order': maybe, 'shape': (2, 3), }",
        "{'descr': '<f4', 'shape': (2, 3), }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': ((((((((((((((((, }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)",
        "['descr', '<f4']",
        "",
    ];
    for (i, h) in headers.iter().enumerate() {
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(h.len() as u16).to_le_bytes());
        bytes.extend_from_slice(h.as_bytes());
        bytes.extend_from_slice(&[0u8; 24]);
        let f = write(d, &format!("header{i}.npy"), bytes);
        add(format!("npy header {h:?}"), run_with(&f), false);
    }
    // A header length that points past the end of the file.
    let f = write(d, "longheader.npy", b"\x93NUMPY\x02\x00\xff\xff\xff\x7f{'descr'");
    add("npy header length past the end".into(), run_with(&f), false);
    // A valid .npy of the wrong type and shape.
    let f = write_npy(d, "wrong.npy", &[6], &[1i32; 6]);
    add("npy of the wrong type".into(), run_with(&f), false);

    // Corrupt .pb inputs, via --input and via --data.
    let good_pb = pb_bytes("x", &TensorData::from_vec(vec![2, 3], &[1.0f32; 6]));
    for i in 0..6 {
        let bytes = match i {
            0..=2 => {
                let len = rng.below(300);
                rng.bytes(len)
            }
            _ => good_pb[..rng.below(good_pb.len() - 1)].to_vec(),
        };
        let f = write(d, &format!("bad{i}.pb"), &bytes);
        add(format!("bad pb {i}"), run_with(&f), false);
        let data = d.join(format!("data{i}"));
        std::fs::create_dir(&data).unwrap();
        write(&data, "input_0.pb", &bytes);
        add(format!("bad input_0.pb {i}"), vec!["run".into(), s(&model), "--data".into(), s(&data)], false);
    }
    // A good input with a corrupt expected output.
    for i in 0..3 {
        let data = d.join(format!("outdata{i}"));
        std::fs::create_dir(&data).unwrap();
        write(&data, "input_0.pb", &good_pb);
        let len = 1 + rng.below(100);
        write(&data, "output_0.pb", rng.bytes(len));
        add(format!("bad output_0.pb {i}"), vec!["run".into(), s(&model), "--data".into(), s(&data)], false);
    }
    // Paths that are not files.
    let folder: PathBuf = d.join("folder.nnir");
    std::fs::create_dir(&folder).unwrap();
    add("a folder as model".into(), vec!["dump".into(), s(&folder)], false);
    add("a folder as data".into(), vec!["run".into(), s(&model), "--data".into(), s(&x)], false);
    add("a missing data folder".into(), vec!["run".into(), s(&model), "--data".into(), s(&d.join("nope"))], false);
    add(
        "a folder as input".into(),
        vec!["run".into(), s(&model), "--input".into(), format!("x={}", s(&folder))],
        false,
    );
    let f = write(d, "latin1.nnir", b"graph g(%x: f32[2]) {\n  return %x \xe9\n}\n");
    add("not UTF-8".into(), vec!["dump".into(), s(&f)], false);
    // An output folder that cannot be created (a file is in the way).
    add(
        "output dir is a file".into(),
        vec!["run".into(), s(&model), "--input".into(), good_x.clone(), "--output-dir".into(), s(&x)],
        false,
    );

    assert!(cases.len() >= 50, "only {} cases", cases.len());
    for case in &cases {
        check(case);
    }
}

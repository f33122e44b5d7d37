//! Helpers shared by the `nnc` end-to-end tests: model texts, tensor files, running the binary.

#![allow(dead_code)]

use assert_cmd::Command;
use nnc_ir::TensorData;
use npyz::WriterBuilder;
use prost::Message;
use std::path::{Path, PathBuf};

/// The `nnc` binary, with a clean environment for its panic hook, and a tuning cache that does
/// not exist (so the records of whoever runs the tests do not change what they compile).
pub fn nnc() -> Command {
    let mut cmd = Command::cargo_bin("nnc").expect("the nnc binary is built");
    cmd.env_remove("RUST_BACKTRACE");
    cmd.env("NNC_TUNING_CACHE", "/nonexistent/nnc-tests/tuning.jsonl");
    cmd
}

pub const W1: [f32; 12] = [0.5, -1.0, 0.25, 2.0, 1.5, 0.75, -0.5, 1.0, -2.0, 0.5, 1.25, -0.25];
pub const B1: [f32; 4] = [0.1, -0.2, 0.3, 0.0];
pub const W2: [f32; 8] = [1.0, -1.0, 0.5, 2.0, -0.75, 0.25, 1.5, -0.5];

fn list(v: &[f32]) -> String {
    v.iter().map(|x| format!("{x:?}")).collect::<Vec<_>>().join(", ")
}

/// A two-layer MLP: `relu(x @ w1 + b1) @ w2`, x: f32[batch, 3], result f32[batch, 2].
pub fn mlp_text() -> String {
    format!(
        "# a two-layer MLP
graph mlp(%x: f32[batch, 3]) {{
  %w1: f32[3, 4] = constant [{}]
  %b1: f32[4] = constant [{}]
  %h = matmul(%x, %w1)
  %hb = add(%h, %b1)
  %r = relu(%hb)
  %w2: f32[4, 2] = constant [{}]
  %y: f32[batch, 2] = matmul(%r, %w2)
  return %y
}}
",
        list(&W1),
        list(&B1),
        list(&W2)
    )
}

/// The MLP computed directly, row-major x of `rows` rows.
pub fn mlp_reference(x: &[f32], rows: usize) -> Vec<f32> {
    let mut out = Vec::new();
    for r in 0..rows {
        let mut h = [0f64; 4];
        for (j, hj) in h.iter_mut().enumerate() {
            let mut s = 0f64;
            for k in 0..3 {
                s += x[r * 3 + k] as f64 * W1[k * 4 + j] as f64;
            }
            *hj = ((s as f32) + B1[j]).max(0.0) as f64;
        }
        for j in 0..2 {
            let s: f64 = (0..4).map(|k| h[k] * W2[k * 2 + j] as f64).sum();
            out.push(s as f32);
        }
    }
    out
}

/// Two inputs and two outputs, one with a name that is unsafe as a file name.
pub const TWO_IO: &str = "graph two(%a: f32[2, 2], %b: i64[3]) {
  %s = add(%a, %a)
  %\"out/sum:0\" = mul(%s, %a)
  %n = neg(%b)
  return %\"out/sum:0\", %n
}
";

pub fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write test file");
    path
}

/// A `.npy` file written with npyz (the format numpy writes).
pub fn npy_bytes<T: npyz::AutoSerialize + Copy>(shape: &[u64], values: &[T]) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut w = npyz::WriteOptions::new().default_dtype().shape(shape).writer(&mut buf).begin_nd().unwrap();
    w.extend(values.iter().copied()).unwrap();
    w.finish().unwrap();
    buf
}

pub fn write_npy<T: npyz::AutoSerialize + Copy>(dir: &Path, name: &str, shape: &[u64], values: &[T]) -> PathBuf {
    write(dir, name, npy_bytes(shape, values))
}

/// Reads a `.npy` file with npyz: shape and f32 values.
pub fn read_npy_f32(path: &Path) -> (Vec<u64>, Vec<f32>) {
    let bytes = std::fs::read(path).expect("read npy");
    let file = npyz::NpyFile::new(&bytes[..]).expect("valid npy");
    let shape = file.shape().to_vec();
    (shape, file.into_vec::<f32>().expect("f32 data"))
}

/// An ONNX `TensorProto` `.pb` file.
pub fn pb_bytes(name: &str, t: &TensorData) -> Vec<u8> {
    nnc_onnx::tensor_to_proto(name, t).encode_to_vec()
}

pub fn write_pb(dir: &Path, name: &str, t: &TensorData) -> PathBuf {
    write(dir, name, pb_bytes("t", t))
}

pub fn stdout_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every file under `dir`, as paths relative to it, sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read folder") {
            let path = entry.expect("folder entry").path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.push(path.strip_prefix(root).expect("under root").to_path_buf());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Asserts that two folders hold the same files with the same bytes.
pub fn assert_same_folders(a: &Path, b: &Path) {
    let files = files_under(a);
    assert_eq!(files, files_under(b), "{} and {} hold different files", a.display(), b.display());
    for f in &files {
        let (x, y) = (std::fs::read(a.join(f)).unwrap(), std::fs::read(b.join(f)).unwrap());
        assert!(x == y, "{} differs between {} and {}", f.display(), a.display(), b.display());
    }
}

/// `nnc serve BUNDLE ARGS --port 0`, killed on drop.
pub struct Server {
    child: std::process::Child,
    /// `http://127.0.0.1:PORT/`, as the server printed it.
    pub url: String,
}

impl Server {
    pub fn start(bundle: &Path, args: &[&std::ffi::OsStr]) -> Server {
        use std::io::BufRead;
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("nnc"))
            .arg("serve")
            .arg(bundle)
            .args(args)
            .args(["--port", "0"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line.split_whitespace().find(|w| w.starts_with("http://")).unwrap_or_else(|| panic!("{line}"));
        Server { url: url.to_string(), child }
    }

    /// `host:port`.
    pub fn address(&self) -> &str {
        self.url.trim_start_matches("http://").trim_end_matches('/')
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

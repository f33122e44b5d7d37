//! `nnc quantize` end to end on the shared models: the digits MLP and CNN, calibrated on digits
//! that are not in the held-out set, keep their held-out accuracy within one point of f32, in
//! nnc and in ONNX Runtime; resnet18, mobilenet_v2 and the transformer encoder, quantized per
//! channel, run in both, and nnc's outputs differ from ONNX Runtime's by less than the
//! quantization changes them.

mod common;

use common::*;
use nnc_ir::TensorData;
use nnc_testkit::skip::{required_dir, shared_dir};
use std::io::Read;
use std::path::{Path, PathBuf};

fn models() -> Option<PathBuf> {
    required_dir(shared_dir().join("models"), "the shared models (../shared)")
}

/// Runs `nnc quantize` and returns its report.
fn quantize(model: &Path, out: &Path, calibration: &Path, extra: &[&str]) -> String {
    let output = run_quantize(model, out, calibration, extra);
    assert!(output.status.success(), "{}{}", stdout_of(&output), stderr_of(&output));
    stdout_of(&output)
}

/// `nnc quantize MODEL -o OUT --calibration DIR EXTRA`, whatever it ends with.
fn run_quantize(model: &Path, out: &Path, calibration: &Path, extra: &[&str]) -> std::process::Output {
    let mut command = nnc();
    command.arg("quantize").arg(model).arg("-o").arg(out).arg("--calibration").arg(calibration);
    command.args(extra).output().unwrap()
}

/// `nnc run`'s first output for `model` on the inputs of the test data set `data` (not compared
/// with its expected outputs: a quantized model's differ).
fn nnc_output(model: &Path, data: &Path) -> Vec<f32> {
    let inputs = tempfile::tempdir().unwrap();
    std::fs::copy(data.join("input_0.pb"), inputs.path().join("input_0.pb")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let output = nnc()
        .arg("run")
        .arg(model)
        .arg("--data")
        .arg(inputs.path())
        .arg("--output-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    let file = std::fs::read_dir(dir.path()).unwrap().next().unwrap().unwrap().path();
    read_npy_f32(&file).1
}

/// The outputs of one quantized shared model on its test data set.
struct Outputs {
    /// nnc's, on the quantized model.
    ours: Vec<f32>,
    /// ONNX Runtime's, on the quantized model.
    theirs: Vec<f32>,
    /// The f32 model's (the data set's expected output).
    float: Vec<f32>,
    /// What `nnc quantize` printed.
    report: String,
}

/// Quantizes shared model `name` (calibrated on its test data set) with `flags` and runs the
/// result in nnc and in ONNX Runtime; `None` where ONNX Runtime is missing (a loud skip).
fn quantized_outputs(models: &Path, name: &str, flags: &[&str]) -> Option<Outputs> {
    let dir = models.join(name);
    let data = dir.join("test_data_set_0");
    let scratch = tempfile::tempdir().unwrap();
    let quantized = scratch.path().join("q.onnx");
    let report = quantize(&dir.join("model.onnx"), &quantized, &data, flags);
    let ours = nnc_output(&quantized, &data);
    let input = nnc_onnx::read_tensor_file(&data.join("input_0.pb")).unwrap().1;
    let float = nnc_onnx::read_tensor_file(&data.join("output_0.pb")).unwrap().1.to_vec::<f32>().unwrap();
    let theirs = nnc_testkit::onnx_runtime::run_first_output(&quantized, &[input])?;
    Some(Outputs { ours, theirs, float, report })
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()))
}

fn accuracy(logits: &[f32], labels: &[i64]) -> f64 {
    let classes = logits.len() / labels.len();
    let correct = logits
        .chunks(classes)
        .zip(labels)
        .filter(|(row, &l)| row.iter().enumerate().fold(0, |b, (i, v)| if *v > row[b] { i } else { b }) as i64 == l)
        .count();
    correct as f64 / labels.len() as f64
}

/// Digits from `digits.csv.gz` (pixels scaled to 0..1, as the models take them) that are not
/// among the held-out `test` rows: `count` of them, flattened.
fn calibration_digits(test: &[f32], count: usize) -> Vec<f32> {
    let mut text = String::new();
    let file = std::fs::File::open(shared_dir().join("data/digits.csv.gz")).unwrap();
    flate2::read::GzDecoder::new(file).read_to_string(&mut text).unwrap();
    let held_out: std::collections::HashSet<Vec<u32>> =
        test.chunks(64).map(|row| row.iter().map(|v| v.to_bits()).collect()).collect();
    let mut rows = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let values: Vec<f32> = line.split(',').take(64).map(|v| v.trim().parse::<f32>().unwrap() / 16.0).collect();
        if !held_out.contains(&values.iter().map(|v| v.to_bits()).collect::<Vec<_>>()) {
            rows.extend(values);
        }
        if rows.len() == count * 64 {
            break;
        }
    }
    assert_eq!(rows.len(), count * 64, "enough digits outside the held-out set");
    rows
}

#[test]
fn digits_models_keep_their_accuracy_within_one_point() {
    let Some(models) = models() else { return };
    let entropy = ["--per-channel", "--method", "entropy"];
    for (name, extra) in
        [("digits_mlp", vec![]), ("digits_cnn", vec!["--per-channel"]), ("digits_cnn", entropy.to_vec())]
    {
        let dir = models.join(name);
        let data = dir.join("test_data_set_0");
        let test = nnc_onnx::read_tensor_file(&data.join("input_0.pb")).unwrap().1;
        let labels: Vec<i64> =
            npyz::NpyFile::new(&std::fs::read(dir.join("labels.npy")).unwrap()[..]).unwrap().into_vec().unwrap();
        let scratch = tempfile::tempdir().unwrap();
        let calibration = scratch.path().join("calibration");
        std::fs::create_dir(&calibration).unwrap();
        let digits = calibration_digits(&test.to_vec::<f32>().unwrap(), test.shape()[0]);
        write_pb(&calibration, "sample.pb", &TensorData::from_vec(test.shape().to_vec(), &digits));
        let quantized = scratch.path().join("q.onnx");
        let report = quantize(&dir.join("model.onnx"), &quantized, &calibration, &extra);
        assert!(report.contains("quantized 3 of 3"), "{report}");
        let float = accuracy(&nnc_output(&dir.join("model.onnx"), &data), &labels);
        let int8 = accuracy(&nnc_output(&quantized, &data), &labels);
        eprintln!("{name} {extra:?}: f32 {float:.4}, int8 {int8:.4}\n{report}");
        assert!((float - int8).abs() <= 0.01, "{name}: f32 {float} vs int8 {int8}");
        if let Some(ort) = nnc_testkit::onnx_runtime::run_first_output(&quantized, std::slice::from_ref(&test)) {
            let in_ort = accuracy(&ort, &labels);
            assert!((float - in_ort).abs() <= 0.01, "{name}: f32 {float} vs int8 in ONNX Runtime {in_ort}");
        }
    }
}

#[test]
fn larger_models_quantize_and_agree_with_onnx_runtime() {
    let Some(models) = models() else { return };
    for name in ["resnet18", "mobilenet_v2", "transformer_encoder"] {
        let Some(Outputs { ours, theirs, float, .. }) = quantized_outputs(&models, name, &["--per-channel"]) else {
            return;
        };
        let (between, quantization) = (max_diff(&ours, &theirs), max_diff(&theirs, &float));
        eprintln!("{name}: nnc vs ONNX Runtime {between:.3e}, quantized vs f32 {quantization:.3e}");
        // Both round the same operands; where an activation sits on a rounding boundary, the two
        // may round it to neighbouring steps (their float sums differ in order), so the outputs
        // differ by less than quantizing changes them, not bit for bit.
        assert!(
            between <= quantization,
            "{name}: nnc and ONNX Runtime differ by {between}, quantization by {quantization}"
        );
    }
}

#[test]
fn unusable_calibration_and_methods_are_clear_errors() {
    let Some(models) = models() else { return };
    let model = models.join("digits_mlp/model.onnx");
    let empty = tempfile::tempdir().unwrap();
    let out = empty.path().join("q.onnx");
    let run = |args: &[&str], calibration: &Path| run_quantize(&model, &out, calibration, args);
    let none = run(&[], empty.path());
    assert!(!none.status.success() && stderr_of(&none).contains("no samples"), "{}", stderr_of(&none));
    let percentile = run(&["--method", "percentile", "--percentile", "20"], &models.join("digits_mlp/test_data_set_0"));
    assert!(stderr_of(&percentile).contains("between 50 and 100"), "{}", stderr_of(&percentile));
}

#[test]
fn max_error_leaves_the_most_sensitive_nodes_in_float() {
    let Some(models) = models() else { return };
    let dir = models.join("digits_cnn");
    let scratch = tempfile::tempdir().unwrap();
    let out = scratch.path().join("q.onnx");
    let data = dir.join("test_data_set_0");
    let loose = quantize(&dir.join("model.onnx"), &out, &data, &["--max-error", "0.5"]);
    assert!(loose.contains("quantized 3 of 3") && !loose.contains("kept in float"), "{loose}");
    // No error at all is only reached with every node in float.
    let strict = quantize(&dir.join("model.onnx"), &out, &data, &["--max-error", "1e-12"]);
    assert!(strict.contains("quantized 0 of 3"), "{strict}");
    assert_eq!(strict.matches("(--max-error)").count(), 3, "{strict}");
}

#[test]
fn quantized_results_in_onnx_runtime_s_layout_run_in_both_as_accurately() {
    // With --quantize-outputs every quantized node's result is quantized too (ONNX Runtime then
    // runs integer kernels, which requantize with their own rounding): nnc's outputs are as close
    // to the f32 model's as ONNX Runtime's.
    let Some(models) = models() else { return };
    let flags = ["--per-channel", "--quantize-outputs"];
    let Some(Outputs { ours, theirs, float, report }) = quantized_outputs(&models, "resnet18", &flags) else { return };
    assert!(report.contains("quantized 21 of 21"), "{report}");
    let (ours_error, theirs_error) = (max_diff(&ours, &float), max_diff(&theirs, &float));
    eprintln!("nnc vs f32 {ours_error:.3e}, ONNX Runtime vs f32 {theirs_error:.3e}");
    assert!(ours_error <= 2.0 * theirs_error, "nnc {ours_error} vs ONNX Runtime {theirs_error}");
}

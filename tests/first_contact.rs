//! The README's quick start, minus the installation: Google's Magika model, fetched from PyPI by
//! `scripts/setup.sh`, compiled by nnc for this CPU, names the content of the sample files in
//! `data/magika/samples/` as Magika's own package does with ONNX Runtime
//! (`data/magika/reference.json`, written by `scripts/magika_reference.py`). Needs nothing from
//! `../shared`.

#[path = "../examples/identify/magika.rs"]
mod magika;

use magika::{Input, Magika};
use nnc::ir::TensorData;
use nnc::onnx::ImportOptions;
use nnc::{Session, SessionOptions, Target};
use std::path::{Path, PathBuf};

#[test]
fn magika_names_the_samples_as_its_own_package_does() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join(".nnc-data/models/magika");
    if !dir.join("model.onnx").is_file() {
        assert!(std::env::var_os("CI").is_none(), "{} must be fetched in CI (scripts/setup.sh)", dir.display());
        eprintln!("SKIPPED: Magika's model is not in {}; run scripts/fetch-magika.sh", dir.display());
        return;
    }
    let magika = Magika::load(&dir).unwrap();
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("data/magika/reference.json")).unwrap()).unwrap();
    let samples = reference["samples"].as_object().unwrap();
    assert!(samples.len() >= 10, "{samples:?}");
    let names: Vec<&String> = samples.keys().collect();
    let files: Vec<PathBuf> = names.iter().map(|n| root.join("data/magika/samples").join(n)).collect();
    let features: Vec<Vec<i32>> = files
        .iter()
        .map(|f| match magika.input(&std::fs::read(f).unwrap()) {
            Input::Features(x) => x,
            Input::Decided(label) => panic!("{}: decided by a rule ({label}), not the model", f.display()),
        })
        .collect();

    // One compiled batch of every sample, as the example runs it.
    let (rows, width) = (features.len(), features[0].len());
    let options =
        ImportOptions { input_shapes: [("bytes".to_string(), vec![rows, width])].into(), ..Default::default() };
    let graph = nnc::onnx::import_file_with(&dir.join("model.onnx"), &options).unwrap();
    let mut session = Session::new(graph, SessionOptions::target(Target::Cpu)).unwrap();
    let x = TensorData::from_vec(vec![rows, width], &features.concat());
    let probabilities = session.run(&[x]).unwrap()[0].to_vec::<f32>().unwrap();

    let classes = magika.labels.len();
    for (row, name) in names.iter().enumerate() {
        let expected = &samples[name.as_str()];
        let p = &probabilities[row * classes..(row + 1) * classes];
        let prediction = magika.predict(p);
        let (label, score) = prediction.model.clone().unwrap();
        assert_eq!(prediction.output, expected["output"].as_str().unwrap(), "{name}");
        assert_eq!(label, expected["dl"].as_str().unwrap(), "{name}");
        let want = expected["score"].as_f64().unwrap();
        assert!((score as f64 - want).abs() <= 1e-3, "{name}: score {score} vs Magika's {want}");
        // The five most likely labels have Magika's probabilities too.
        for pair in expected["top5"].as_array().unwrap() {
            let (label, want) = (pair[0].as_str().unwrap(), pair[1].as_f64().unwrap());
            let k = magika.labels.iter().position(|l| l == label).unwrap();
            assert!((p[k] as f64 - want).abs() <= 1e-3, "{name}: p({label}) = {} vs Magika's {want}", p[k]);
        }
        eprintln!("{name}: {} ({score:.3}) — {}", prediction.output, magika.describe(&prediction.output));
    }
}

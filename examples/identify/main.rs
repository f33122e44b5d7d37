//! Tells what kind of content files hold, with Google's Magika model (Apache-2.0, from the
//! `magika` wheel on PyPI) compiled by nnc for this CPU.
//!
//! ```text
//! scripts/fetch-magika.sh            # once (scripts/setup.sh does it)
//! cargo run --release --example identify -- data/magika/samples/*
//! ```
//!
//! The model is imported from ONNX, compiled once for a batch of all the files given, and run
//! once; each file gets a label (`python`, `png`, `csv`, ... 214 of them), the model's
//! confidence, and a description. `data/magika/reference.json` holds what Magika's own Python
//! package says of the sample files, and `tests/first_contact.rs` checks nnc says the same.

mod magika;

use magika::{Input, Magika};
use nnc::ir::TensorData;
use nnc::onnx::ImportOptions;
use nnc::{Session, SessionOptions, Target};
use std::path::{Path, PathBuf};
use std::time::Instant;

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let files: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    if files.is_empty() {
        return Err("give the files to identify: cargo run --release --example identify -- FILE...".into());
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(".nnc-data/models/magika");
    if !dir.join("model.onnx").is_file() {
        return Err(format!("{} has no model: run scripts/fetch-magika.sh (or scripts/setup.sh)", dir.display()));
    }
    let magika = Magika::load(&dir)?;
    let mut inputs = Vec::new();
    for file in &files {
        let content = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
        inputs.push(magika.input(&content));
    }
    let batch: Vec<&[i32]> =
        inputs.iter().filter_map(|i| if let Input::Features(f) = i { Some(f.as_slice()) } else { None }).collect();
    let (probabilities, timing) = if batch.is_empty() { (Vec::new(), String::new()) } else { classify(&dir, &batch)? };
    println!("Magika (Google, Apache-2.0) by nnc: {timing}");
    let width = files.iter().map(|f| f.display().to_string().len()).max().unwrap_or(0);
    let mut row = 0;
    for (file, input) in files.iter().zip(&inputs) {
        let (label, score) = match input {
            Input::Decided(label) => (label.clone(), "(rule)".to_string()),
            Input::Features(_) => {
                let n = magika.labels.len();
                let p = magika.predict(&probabilities[row * n..(row + 1) * n]);
                row += 1;
                let score = p.model.map(|(_, s)| format!("{s:.3}")).unwrap_or_default();
                (p.output, score)
            }
        };
        println!("{:width$}  {label:<10} {score:>6}  {}", file.display(), magika.describe(&label));
    }
    Ok(())
}

/// Runs the model on `batch` (one row of features per file): imported for that batch size,
/// compiled for this CPU, run once. Returns the probabilities, row after row, and the times.
fn classify(dir: &Path, batch: &[&[i32]]) -> Result<(Vec<f32>, String), String> {
    let start = Instant::now();
    let (rows, width) = (batch.len(), batch[0].len());
    let options =
        ImportOptions { input_shapes: [("bytes".to_string(), vec![rows, width])].into(), ..Default::default() };
    let graph = nnc::onnx::import_file_with(&dir.join("model.onnx"), &options).map_err(|e| e.to_string())?;
    let mut session = Session::new(graph, SessionOptions::target(Target::Cpu)).map_err(|e| e.to_string())?;
    let x = TensorData::from_vec(vec![rows, width], &batch.concat());
    session.prepare(&[x.shape().to_vec()]).map_err(|e| e.to_string())?;
    let compiled = start.elapsed();
    let ran = Instant::now();
    let out = session.run(&[x]).map_err(|e| e.to_string())?;
    let probabilities = out[0].to_vec::<f32>().ok_or("the model's output is not f32")?;
    let timing = format!(
        "compiled for this CPU in {:.0} ms, ran on {rows} files in {:.2} ms",
        compiled.as_secs_f64() * 1e3,
        ran.elapsed().as_secs_f64() * 1e3
    );
    Ok((probabilities, timing))
}

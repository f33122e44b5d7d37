//! Builds a two-layer MLP with the typed builder, prints it in `.nnir` text form and runs it
//! in the reference interpreter on a batch of three inputs.
//!
//! `cargo run --example mlp`

use nnc::interp;
use nnc::ir::{text, DType, Dim, GraphBuilder, IrError, TensorData};

/// Deterministic pseudo-random weights in [-0.5, 0.5), so the example prints the same every run.
fn weights(shape: [usize; 2], seed: u64) -> TensorData {
    let mut state = seed;
    let values: Vec<f32> = (0..shape[0] * shape[1])
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect();
    TensorData::from_vec(shape.to_vec(), &values)
}

fn build_mlp() -> Result<nnc::ir::Graph, IrError> {
    let mut b = GraphBuilder::new("mlp");
    // `batch` is symbolic: one graph serves every batch size.
    let x = b.input("x", DType::F32, [Dim::sym("batch"), Dim::from(4)])?;
    let w1 = b.constant(weights([4, 8], 1));
    let b1 = b.constant(TensorData::from_vec(vec![8], &[0.1f32; 8]));
    let w2 = b.constant(weights([8, 3], 2));

    let h = b.matmul(x, w1)?;
    let h = b.add(h, b1)?;
    let h = b.relu(h)?;
    let logits = b.matmul(h, w2)?;
    let probs = b.softmax(logits, -1)?;
    b.set_name(probs, "probs")?;
    b.output(probs);
    b.finish()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let graph = build_mlp()?;
    print!("{}", text::print(&graph));

    let x = TensorData::from_vec(vec![3, 4], &[1.0f32, 0.0, -1.0, 2.0, 0.5, 0.5, 0.5, 0.5, -2.0, 1.0, 0.0, 3.0]);
    let outputs = interp::run(&graph, &[x])?;
    let probs = outputs[0].to_vec::<f32>().ok_or("expected f32 output")?;
    for (row, p) in probs.chunks(3).enumerate() {
        println!("row {row}: probabilities {p:?} (sum {:.6})", p.iter().sum::<f32>());
    }
    Ok(())
}

//! Trains an MLP on scikit-learn's 8×8 digits (`data/digits.csv.gz`) through nnc's compiled CPU
//! path: one graph does forward, backward and the Adam update (`nnc_autodiff::training_step`),
//! compiled once by the Cranelift backend and run for every batch with no host-side math.
//!
//! `cargo run --release --example train_digits [mlp|cnn] [EPOCHS]` prints the loss and test
//! accuracy per epoch, with a progress bar; the last line states the final test accuracy. The
//! train/test split is fixed (450 test images, as the shared digits models were evaluated on).
//! The MLP is 64-64-10; the CNN is a 3x3 convolution to 8 channels, relu, 2x2 max pooling and a
//! dense layer.

use anyhow::{anyhow, Context, Result};
use nnc::autodiff::train::{softmax_cross_entropy, training_step, Optimizer};
use nnc::ir::{DType, Dim, Graph, GraphBuilder, PoolKind, TensorData, Window};
use std::io::Read;

pub const PIXELS: usize = 64;
pub const HIDDEN: usize = 64;
pub const CLASSES: usize = 10;
pub const BATCH: usize = 64;
pub const TEST: usize = 450;
/// The CNN's convolution channels.
pub const CHANNELS: usize = 8;

/// Which network to train.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Model {
    Mlp,
    Cnn,
}

impl Model {
    /// The trained parameters' names and shapes, in input order.
    pub fn params(self) -> Vec<(&'static str, Vec<usize>)> {
        match self {
            Model::Mlp => vec![
                ("w1", vec![PIXELS, HIDDEN]),
                ("b1", vec![HIDDEN]),
                ("w2", vec![HIDDEN, CLASSES]),
                ("b2", vec![CLASSES]),
            ],
            Model::Cnn => vec![
                ("w1", vec![CHANNELS, 1, 3, 3]),
                ("b1", vec![1, CHANNELS, 1, 1]),
                ("w2", vec![CHANNELS * 16, CLASSES]),
                ("b2", vec![CLASSES]),
            ],
        }
    }
}

/// Images (scaled to 0..1) and labels.
pub struct Digits {
    pub x: Vec<f32>,
    pub y: Vec<i64>,
}

impl Digits {
    pub fn len(&self) -> usize {
        self.y.len()
    }

    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    fn rows(&self, idx: &[usize]) -> Digits {
        Digits {
            x: idx.iter().flat_map(|&i| self.x[i * PIXELS..(i + 1) * PIXELS].iter().copied()).collect(),
            y: idx.iter().map(|&i| self.y[i]).collect(),
        }
    }
}

/// Reads `digits.csv.gz`: 64 pixel values (0..16) then the label, per row.
pub fn load(path: &std::path::Path) -> Result<Digits> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut text = String::new();
    flate2::read::GzDecoder::new(file).read_to_string(&mut text).with_context(|| format!("{}", path.display()))?;
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for (line_no, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let values: Vec<f32> = line
            .split(',')
            .map(|v| v.trim().parse::<f32>())
            .collect::<Result<_, _>>()
            .map_err(|e| anyhow!("{}:{}: {e}", path.display(), line_no + 1))?;
        if values.len() != PIXELS + 1 {
            return Err(anyhow!("{}:{}: {} values, expected 65", path.display(), line_no + 1, values.len()));
        }
        x.extend(values[..PIXELS].iter().map(|v| v / 16.0));
        y.push(values[PIXELS] as i64);
    }
    Ok(Digits { x, y })
}

/// A fixed shuffle (a linear congruential generator) into training and test sets.
pub fn split(d: &Digits) -> (Digits, Digits) {
    let mut order: Vec<usize> = (0..d.len()).collect();
    let mut state: u64 = 0x5eed;
    for i in (1..order.len()).rev() {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        order.swap(i, (state >> 33) as usize % (i + 1));
    }
    let (test, train) = order.split_at(TEST);
    (d.rows(train), d.rows(test))
}

/// The forward graph on a batch of `rows`: the logits (MLP: `relu(x·w1 + b1)·w2 + b2`; CNN:
/// `flatten(max_pool(relu(conv(x, w1) + b1)))·w2 + b2`) and the mean softmax cross-entropy
/// `loss` against `labels`.
pub fn forward(model: Model, rows: usize) -> Result<Graph> {
    let mut b = GraphBuilder::new("digits");
    let x = b.input("x", DType::F32, [rows, PIXELS])?;
    let labels = b.input("labels", DType::I64, [rows])?;
    let params = model.params();
    let mut p = Vec::new();
    for (name, shape) in &params {
        p.push(b.input(name, DType::F32, shape.iter().copied())?);
    }
    let (w1, b1, w2, b2) = (p[0], p[1], p[2], p[3]);
    let h = match model {
        Model::Mlp => {
            let h = b.matmul(x, w1)?;
            let h = b.add(h, b1)?;
            b.relu(h)?
        }
        Model::Cnn => {
            let image = b.reshape(x, vec![Dim::from(rows), 1.into(), 8.into(), 8.into()])?;
            let same = Window { strides: vec![1, 1], dilations: vec![1, 1], pads: vec![1, 1, 1, 1] };
            let c = b.conv(image, w1, same, 1)?;
            let c = b.add(c, b1)?;
            let c = b.relu(c)?;
            let halve = Window { strides: vec![2, 2], dilations: vec![1, 1], pads: vec![0; 4] };
            let pooled = b.pool(PoolKind::Max, c, vec![2, 2], halve)?;
            b.reshape(pooled, vec![Dim::from(rows), Dim::from(CHANNELS * 16)])?
        }
    };
    let logits = b.matmul(h, w2)?;
    let logits = b.add(logits, b2)?;
    b.set_name(logits, "logits")?;
    let loss = softmax_cross_entropy(&mut b, logits, labels)?;
    b.set_name(loss, "loss")?;
    b.output(logits);
    b.output(loss);
    Ok(b.finish()?)
}

/// The parameters' starting values (uniform in ±1/sqrt(fan_in), fixed seed) and Adam's state.
pub fn initial_state(model: Model) -> Vec<TensorData> {
    let mut state: u64 = 42;
    let mut uniform = |n: usize, bound: f32| -> Vec<f32> {
        (0..n)
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * bound
            })
            .collect()
    };
    let shapes = model.params();
    // Fan-in, the inputs per output unit (a bias shares its weight's): 3x3 taps of one channel
    // for the convolution, the features for a dense layer.
    let dense = match model {
        Model::Mlp => [PIXELS, HIDDEN],
        Model::Cnn => [9, CHANNELS * 16],
    };
    let fans = [dense[0], dense[0], dense[1], dense[1]].map(|f| f as f32);
    let params: Vec<TensorData> = shapes
        .iter()
        .zip(fans)
        .map(|((_, shape), fan)| {
            let n = shape.iter().product();
            TensorData::from_vec(shape.clone(), &uniform(n, 1.0 / fan.sqrt()))
        })
        .collect();
    let zeros = |t: &TensorData| TensorData::from_vec(t.shape().to_vec(), &vec![0.0f32; t.len()]);
    let mut all = params.clone();
    all.extend(params.iter().map(zeros)); // m
    all.extend(params.iter().map(zeros)); // v
    all.push(TensorData::scalar(0.0f32)); // adam.step
    all
}

/// Something that runs a graph: the compiled CPU path or the reference interpreter.
pub trait Exec {
    fn run(&self, inputs: &[TensorData]) -> Result<Vec<TensorData>>;
}

/// The graph compiled once for the CPU (optimized, fused, scheduled, JIT-compiled).
pub struct Compiled(nnc::cpu::CpuProgram);

impl Compiled {
    pub fn new(graph: &Graph) -> Result<Compiled> {
        let optimized = nnc::opt::optimize(graph, &Default::default()).map_err(|e| anyhow!("{e}"))?;
        let program =
            nnc::lower::compile(&optimized.graph, &nnc::cpu::jit_device(), None).map_err(|e| anyhow!("{e}"))?;
        Ok(Compiled(nnc::cpu::CpuProgram::new(&program).map_err(|e| anyhow!("{e}"))?))
    }
}

impl Exec for Compiled {
    fn run(&self, inputs: &[TensorData]) -> Result<Vec<TensorData>> {
        self.0.run(inputs).map_err(|e| anyhow!("{e}"))
    }
}

/// The reference interpreter, for checking.
pub struct Interpreted(pub Graph);

impl Exec for Interpreted {
    fn run(&self, inputs: &[TensorData]) -> Result<Vec<TensorData>> {
        nnc::interp::run(&self.0, inputs).map_err(|e| anyhow!("{e}"))
    }
}

/// The training step (forward, backward, Adam) for one batch.
pub fn step_graph(model: Model) -> Result<Graph> {
    let optimizer = Optimizer::Adam { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8 };
    training_step(&forward(model, BATCH)?, "loss", &["w1", "b1", "w2", "b2"], &optimizer).map_err(|e| anyhow!("{e}"))
}

/// The test set's logits graph (the forward graph on all test rows, without the loss).
pub fn eval_graph(model: Model, rows: usize) -> Result<Graph> {
    let mut g = forward(model, rows)?;
    g.outputs.truncate(1);
    Ok(g)
}

/// Trains for `epochs` over the whole batches of `train` (in order), calling `on_epoch(epoch,
/// mean loss, test accuracy)`; returns the per-epoch mean losses and the final test accuracy.
#[allow(clippy::too_many_arguments)]
pub fn train(
    model: Model,
    step: &dyn Exec,
    eval: &dyn Exec,
    train: &Digits,
    test: &Digits,
    epochs: usize,
    mut on_batch: impl FnMut(),
    mut on_epoch: impl FnMut(usize, f32, f64),
) -> Result<(Vec<f32>, f64)> {
    let mut state = initial_state(model);
    let batches = train.len() / BATCH;
    let (mut losses, mut accuracy) = (Vec::new(), 0.0);
    for epoch in 1..=epochs {
        let mut total = 0.0;
        for k in 0..batches {
            let rows: Vec<usize> = (k * BATCH..(k + 1) * BATCH).collect();
            let batch = train.rows(&rows);
            let mut inputs =
                vec![TensorData::from_vec(vec![BATCH, PIXELS], &batch.x), TensorData::from_vec(vec![BATCH], &batch.y)];
            inputs.extend(state.iter().cloned());
            let mut out = step.run(&inputs)?;
            total += out[0].to_vec::<f32>().ok_or_else(|| anyhow!("loss is not f32"))?[0];
            state = out.split_off(1);
            on_batch();
        }
        losses.push(total / batches as f32);
        accuracy = evaluate(eval, &state[..4], test)?;
        on_epoch(epoch, losses[epoch - 1], accuracy);
    }
    Ok((losses, accuracy))
}

/// The share of `test` images whose largest logit is their label.
pub fn evaluate(eval: &dyn Exec, params: &[TensorData], test: &Digits) -> Result<f64> {
    let mut inputs =
        vec![TensorData::from_vec(vec![test.len(), PIXELS], &test.x), TensorData::from_vec(vec![test.len()], &test.y)];
    inputs.extend(params.iter().cloned());
    let logits = eval.run(&inputs)?[0].to_vec::<f32>().ok_or_else(|| anyhow!("logits are not f32"))?;
    let correct = logits
        .chunks(CLASSES)
        .zip(&test.y)
        .filter(|(row, &label)| {
            let best = row.iter().enumerate().fold(0, |best, (i, v)| if *v > row[best] { i } else { best });
            best as i64 == label
        })
        .count();
    Ok(correct as f64 / test.len() as f64)
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let model = match args.next().as_deref() {
        None | Some("mlp") => Model::Mlp,
        Some("cnn") => Model::Cnn,
        Some(other) => return Err(anyhow!("unknown model `{other}` (expected mlp or cnn)")),
    };
    let epochs: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(60);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/digits.csv.gz");
    let (train_set, test_set) = split(&load(&path)?);
    println!("digits: {} training images, {} test images", train_set.len(), test_set.len());
    let started = std::time::Instant::now();
    let step = Compiled::new(&step_graph(model)?)?;
    let eval = Compiled::new(&eval_graph(model, test_set.len())?)?;
    println!("compiled the training step and the evaluation in {:.0} ms", started.elapsed().as_secs_f64() * 1e3);
    let batches = (train_set.len() / BATCH) as u64;
    let bar = indicatif::ProgressBar::new(batches * epochs as u64);
    let (_, accuracy) = train(
        model,
        &step,
        &eval,
        &train_set,
        &test_set,
        epochs,
        || bar.inc(1),
        |epoch, loss, acc| {
            let line = format!("epoch {epoch:>3}: loss {loss:.4}, test accuracy {acc:.3}");
            // A hidden bar (output not a terminal) prints nothing: print the line itself.
            if bar.is_hidden() {
                println!("{line}");
            } else {
                bar.println(line);
            }
        },
    )?;
    bar.finish_and_clear();
    println!("trained the {model:?} for {epochs} epochs in {:.1} s", started.elapsed().as_secs_f64());
    println!("final test accuracy: {accuracy:.3}");
    Ok(())
}

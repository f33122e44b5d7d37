//! Trains an MLP on scikit-learn's 8×8 digits (`data/digits.csv.gz`) through nnc's compiled CPU
//! path: one graph does forward, backward and the Adam update (`nnc_autodiff::training_step`),
//! compiled once by the Cranelift backend and run for every batch with no host-side math.
//!
//! `cargo run --release --example train_digits [mlp|cnn] [EPOCHS] [--save F] [--resume F] [--export F]`
//! prints the loss and test accuracy per epoch, with a progress bar; the last line states the
//! final test accuracy. The train/test split is fixed (450 test images, as the shared digits
//! models were evaluated on). The MLP is 64-64-10; the CNN is a 3x3 convolution to 8 channels,
//! relu, 2x2 max pooling and a dense layer. `--save` writes the parameters and Adam's state after
//! every epoch (safetensors), `--resume` starts from such a file, `--export FILE.onnx` writes the
//! trained network (one image batch of the test set's size in, logits out) as ONNX.
//!
//! Data-parallel: `mpirun -np N target/release/examples/train_digits ...` trains on N processes,
//! each on 64/N rows of every batch of 64, with gradients averaged over MPI in the step's graph
//! (`nnc_dist::data_parallel`); the batches, the steps and (within rounding) the result are the
//! one-process run's.

use anyhow::{anyhow, Context, Result};
use nnc::autodiff::train::{softmax_cross_entropy, training_step, Optimizer};
use nnc::dist::checkpoint::{self, Checkpoint};
use nnc::dist::data_parallel::{self, shard_rows, DataParallel};
use nnc::dist::{Communicator, DistSession};
use nnc::ir::{DType, Dim, Graph, GraphBuilder, PoolKind, TensorData, Window};
use std::cell::RefCell;
use std::io::Read;
use std::path::Path;

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

const OPTIMIZER: Optimizer = Optimizer::Adam { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8 };
const PARAMS: [&str; 4] = ["w1", "b1", "w2", "b2"];

/// The training step (forward, backward, Adam) for one batch.
pub fn step_graph(model: Model) -> Result<Graph> {
    training_step(&forward(model, BATCH)?, "loss", &PARAMS, &OPTIMIZER).map_err(|e| anyhow!("{e}"))
}

/// Which rows of every batch this process trains on: slice `rank` of `world`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub rank: usize,
    pub world: usize,
}

impl Shard {
    /// One process, whole batches.
    pub const WHOLE: Shard = Shard { rank: 0, world: 1 };
}

/// The training step of one of `world` data-parallel ranks: the forward pass on its `BATCH /
/// world` rows, gradients and loss averaged over the ranks, then the update.
pub fn data_parallel_step_graph(model: Model, world: usize) -> Result<Graph> {
    if world == 0 || !BATCH.is_multiple_of(world) {
        return Err(anyhow!("a batch of {BATCH} rows does not split evenly over {world} ranks"));
    }
    let forward = forward(model, BATCH / world)?;
    Ok(data_parallel::step_graph(&forward, "loss", &PARAMS, &OPTIMIZER, &DataParallel::new(world))?)
}

/// One rank's part of a data-parallel step, its collectives run by an engine (MPI).
pub struct Distributed(pub RefCell<DistSession>);

impl Exec for Distributed {
    fn run(&self, inputs: &[TensorData]) -> Result<Vec<TensorData>> {
        Ok(self.0.borrow_mut().run(inputs)?)
    }
}

/// The names of the training state (parameters, then Adam's `m`, `v` and step), in the step
/// graph's input order.
pub fn state_names(model: Model) -> Vec<String> {
    let params: Vec<&str> = model.params().iter().map(|(n, _)| *n).collect();
    let mut names: Vec<String> = params.iter().map(|p| p.to_string()).collect();
    names.extend(params.iter().map(|p| format!("{p}.m")));
    names.extend(params.iter().map(|p| format!("{p}.v")));
    names.push("adam.step".into());
    names
}

/// Writes the training state after `steps` steps to `path`.
pub fn save_state(path: &Path, model: Model, state: &[TensorData], steps: usize) -> Result<()> {
    let checkpoint = Checkpoint {
        tensors: state_names(model).into_iter().zip(state.iter().cloned()).collect(),
        metadata: [("steps".to_string(), steps.to_string()), ("model".to_string(), format!("{model:?}"))].into(),
    };
    Ok(checkpoint::save(path, &checkpoint)?)
}

/// Reads a state written by [`save_state`] for `model`: the state and the steps done.
pub fn load_state(path: &Path, model: Model) -> Result<(Vec<TensorData>, usize)> {
    let checkpoint = checkpoint::load(path)?;
    let fresh = initial_state(model);
    let mut state = Vec::new();
    for (name, like) in state_names(model).iter().zip(&fresh) {
        let t = checkpoint.get(name).ok_or_else(|| anyhow!("{}: no tensor `{name}`", path.display()))?;
        if t.shape() != like.shape() || t.dtype() != like.dtype() {
            return Err(anyhow!(
                "{}: `{name}` is {}{:?}, the {model:?} needs {}{:?}",
                path.display(),
                t.dtype(),
                t.shape(),
                like.dtype(),
                like.shape()
            ));
        }
        state.push(t.clone());
    }
    let steps = checkpoint
        .metadata
        .get("steps")
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("{}: no `steps` metadata", path.display()))?;
    Ok((state, steps))
}

/// The logits graph on `rows` images with the trained `params` (the first four tensors of a
/// state) frozen in as constants: it takes the images `x` only, ready to export.
pub fn inference_graph(model: Model, rows: usize, params: &[TensorData]) -> Result<Graph> {
    let names: Vec<&str> = model.params().iter().map(|(n, _)| *n).collect();
    let frozen: Vec<(&str, TensorData)> = names.iter().copied().zip(params.iter().cloned()).collect();
    let mut g = eval_graph(model, rows)?.freeze_inputs(&frozen)?;
    g.prune();
    let labels = g.find("labels").ok_or_else(|| anyhow!("the evaluation graph has no labels input"))?;
    g.inputs.retain(|&i| i != labels);
    Ok(g)
}

/// Runs `count` steps from global step `first` (step `k` trains on batch `k mod batches`, this
/// shard's rows of it) and returns the new state and each step's loss; `after_step(k, state)`
/// sees the state after every step.
pub fn run_steps(
    step: &dyn Exec,
    mut state: Vec<TensorData>,
    train: &Digits,
    shard: Shard,
    first: usize,
    count: usize,
    mut after_step: impl FnMut(usize, &[TensorData]) -> Result<()>,
) -> Result<(Vec<TensorData>, Vec<f32>)> {
    let batches = train.len() / BATCH;
    let mut losses = Vec::with_capacity(count);
    for k in first..first + count {
        let b = k % batches;
        let rows: Vec<usize> = (b * BATCH..(b + 1) * BATCH).collect();
        let batch = train.rows(&rows);
        let x = TensorData::from_vec(vec![BATCH, PIXELS], &batch.x);
        let y = TensorData::from_vec(vec![BATCH], &batch.y);
        let mut inputs = vec![shard_rows(&x, shard.rank, shard.world)?, shard_rows(&y, shard.rank, shard.world)?];
        inputs.extend(state.iter().cloned());
        let mut out = step.run(&inputs)?;
        losses.push(out[0].to_vec::<f32>().ok_or_else(|| anyhow!("loss is not f32"))?[0]);
        state = out.split_off(1);
        after_step(k, &state)?;
    }
    Ok((state, losses))
}

/// The test set's logits graph (the forward graph on all test rows, without the loss).
pub fn eval_graph(model: Model, rows: usize) -> Result<Graph> {
    let mut g = forward(model, rows)?;
    g.outputs.truncate(1);
    Ok(g)
}

/// Trains for `epochs` over the whole batches of `train` (in order), this shard's rows of each,
/// from `state` (`initial_state` for a fresh run) and `done` steps already taken, calling
/// `on_epoch(epoch, mean loss, test accuracy, state)`; returns the per-epoch mean losses and the
/// final test accuracy.
#[allow(clippy::too_many_arguments)]
pub fn train(
    step: &dyn Exec,
    eval: &dyn Exec,
    train: &Digits,
    test: &Digits,
    epochs: usize,
    shard: Shard,
    (mut state, done): (Vec<TensorData>, usize),
    mut on_batch: impl FnMut(),
    mut on_epoch: impl FnMut(usize, f32, f64, &[TensorData]) -> Result<()>,
) -> Result<(Vec<f32>, f64)> {
    let batches = train.len() / BATCH;
    if done % batches != 0 {
        return Err(anyhow!("{done} steps done is not a whole number of epochs of {batches} steps"));
    }
    let (mut losses, mut accuracy) = (Vec::new(), 0.0);
    for epoch in done / batches + 1..=epochs {
        let first = (epoch - 1) * batches;
        let (next, batch_losses) = run_steps(step, state, train, shard, first, batches, |_, _| {
            on_batch();
            Ok(())
        })?;
        state = next;
        losses.push(batch_losses.iter().sum::<f32>() / batches as f32);
        accuracy = evaluate(eval, &state[..4], test)?;
        on_epoch(epoch, *losses.last().unwrap_or(&0.0), accuracy, &state)?;
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

/// The MPI world this process is a rank of, if `mpirun` (or another MPI launcher) started it.
fn launched_by_mpi() -> bool {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"].iter().any(|v| std::env::var_os(v).is_some())
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut model, mut epochs, mut save, mut resume, mut export) = (Model::Mlp, 60, None, None, None);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "mlp" => model = Model::Mlp,
            "cnn" => model = Model::Cnn,
            "--save" => save = Some(args.next().ok_or_else(|| anyhow!("--save needs a file"))?),
            "--resume" => resume = Some(args.next().ok_or_else(|| anyhow!("--resume needs a file"))?),
            "--export" => export = Some(args.next().ok_or_else(|| anyhow!("--export needs a file"))?),
            n => epochs = n.parse().map_err(|_| anyhow!("unknown argument `{n}` (expected mlp, cnn, a number of epochs, --save FILE, --resume FILE or --export FILE)"))?,
        }
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/digits.csv.gz");
    let (train_set, test_set) = split(&load(&path)?);
    let started = std::time::Instant::now();
    let eval = Compiled::new(&eval_graph(model, test_set.len())?)?;
    let (mut distributed, mut single) = (None, None);
    let shard = if launched_by_mpi() {
        let comm = nnc::dist::MpiCommunicator::init()?;
        let shard = Shard { rank: comm.rank(), world: comm.world() };
        // The cores of this machine, shared by the ranks on it.
        let local: usize =
            std::env::var("OMPI_COMM_WORLD_LOCAL_SIZE").ok().and_then(|v| v.parse().ok()).unwrap_or(shard.world);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let options = nnc::SessionOptions {
            threads: Some((cores / local).max(1)),
            ..nnc::SessionOptions::target(nnc::Target::Cpu)
        };
        let session = DistSession::new(data_parallel_step_graph(model, shard.world)?, options, Box::new(comm))?;
        distributed = Some(Distributed(RefCell::new(session)));
        shard
    } else {
        single = Some(Compiled::new(&step_graph(model)?)?);
        Shard::WHOLE
    };
    let step: &dyn Exec = match (&distributed, &single) {
        (Some(d), _) => d,
        (_, Some(s)) => s,
        _ => unreachable!("one of the two was made above"),
    };
    // Rank 0 speaks for all.
    let lead = shard.rank == 0;
    if lead {
        println!(
            "digits: {} training images, {} test images, {} rank(s)",
            train_set.len(),
            test_set.len(),
            shard.world
        );
        println!("compiled the training step and the evaluation in {:.0} ms", started.elapsed().as_secs_f64() * 1e3);
    }
    let start = match &resume {
        Some(file) => load_state(Path::new(file), model)?,
        None => (initial_state(model), 0),
    };
    let batches = train_set.len() / BATCH;
    let mut trained = start.0[..4].to_vec();
    let done = start.1.min(batches * epochs);
    let bar =
        if lead { indicatif::ProgressBar::new((batches * epochs) as u64) } else { indicatif::ProgressBar::hidden() };
    bar.set_position(done as u64);
    let training = std::time::Instant::now();
    let (_, accuracy) = train(
        step,
        &eval,
        &train_set,
        &test_set,
        epochs,
        shard,
        start,
        || bar.inc(1),
        |epoch, loss, acc, state| {
            trained = state[..4].to_vec();
            if !lead {
                return Ok(());
            }
            if let Some(file) = &save {
                save_state(Path::new(file), model, state, epoch * batches)?;
            }
            let line = format!("epoch {epoch:>3}: loss {loss:.4}, test accuracy {acc:.3}");
            // A hidden bar (output not a terminal) prints nothing: print the line itself.
            if bar.is_hidden() {
                println!("{line}");
            } else {
                bar.println(line);
            }
            Ok(())
        },
    )?;
    bar.finish_and_clear();
    let steps = batches * epochs - done;
    if lead && steps > 0 {
        let ms = training.elapsed().as_secs_f64() * 1e3;
        println!(
            "training: {steps} steps of {BATCH} images in {ms:.0} ms, {:.3} ms per step (evaluations included)",
            ms / steps as f64
        );
    }
    if let (Some(d), true) = (&distributed, lead) {
        let session = d.0.borrow();
        let stats = session.stats();
        let per_step = |t: std::time::Duration| t.as_secs_f64() * 1e3 / stats.runs.max(1) as f64;
        println!(
            "rank 0: {} steps; per step {:.3} ms computing, {:.3} ms in {} collectives ({} bytes sent)",
            stats.runs,
            per_step(stats.compute),
            per_step(stats.communication),
            stats.collectives / stats.runs.max(1),
            stats.bytes_sent / stats.runs.max(1)
        );
    }
    if lead {
        println!("trained the {model:?} for {epochs} epochs in {:.1} s", started.elapsed().as_secs_f64());
        println!("final test accuracy: {accuracy:.3}");
        if let Some(file) = &export {
            let bytes = nnc::onnx::export_bytes(&inference_graph(model, test_set.len(), &trained)?)?;
            std::fs::write(file, bytes).with_context(|| format!("cannot write {file}"))?;
            println!("wrote the trained {model:?} as ONNX to {file}");
        }
    }
    Ok(())
}

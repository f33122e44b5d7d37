//! Helpers shared by the integration tests: compiling a graph for a device, deterministic
//! inputs, and comparing a program's outputs with the graph interpreter's.

#![allow(dead_code)]

pub mod families;

use nnc_ir::{DType, Graph, TensorData};
use nnc_kernel::kernel::{Kernel, Stmt, Strategy};
use nnc_kernel::program::Program;
use nnc_kernel::Device;
use nnc_lower::compile;
use nnc_lower::fuse::FuseOptions;

pub const RTOL: f64 = 1e-4;
pub const ATOL: f64 = 1e-5;

pub fn devices() -> [(&'static str, Device); 2] {
    [("gpu", Device::gpu()), ("cpu", Device::cpu())]
}

/// The one place tests call [`compile`]: fusion priced for the device.
pub fn try_compile(graph: &Graph, device: &Device) -> Result<Program, nnc_lower::CompileError> {
    compile(graph, device, None)
}

/// [`compile`] with fusion off: one kernel per node.
pub fn compile_unfused(graph: &Graph, device: &Device) -> Program {
    let options = FuseOptions { fuse: false, ..FuseOptions::default() };
    compile(graph, device, Some(&options)).unwrap_or_else(|e| panic!("compile unfused: {e}"))
}

pub fn compile_for(graph: &Graph, device: &Device) -> Program {
    try_compile(graph, device)
        .unwrap_or_else(|e| panic!("compile `{}` for {:?}: {e}\n{}", graph.name, device.kind, text(graph)))
}

/// A tiny deterministic generator (SplitMix64), so inputs need no extra dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        let u = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        lo + (hi - lo) * u
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// An f32 tensor of `shape` with values in `[lo, hi)`.
pub fn tensor(rng: &mut Rng, shape: &[usize], lo: f64, hi: f64) -> TensorData {
    let n: usize = shape.iter().product();
    let values: Vec<f64> = (0..n).map(|_| rng.uniform(lo, hi)).collect();
    TensorData::from_f64(DType::F32, shape.to_vec(), &values)
}

/// Inputs for every graph input, uniform in `[-2, 2)`.
pub fn inputs_for(graph: &Graph, seed: u64) -> Vec<TensorData> {
    let mut rng = Rng::new(seed);
    graph
        .inputs
        .iter()
        .map(|&v| {
            let ty = graph.ty(v);
            let shape = ty.static_shape().expect("test graphs have static shapes");
            assert_eq!(ty.dtype, DType::F32, "test inputs are f32");
            tensor(&mut rng, &shape, -2.0, 2.0)
        })
        .collect()
}

/// Compares `found` with `expected` elementwise: `|f - e| <= atol + rtol * |e|` (NaNs must agree).
pub fn compare(what: &str, expected: &TensorData, found: &TensorData) -> Result<(), String> {
    if expected.dtype() != found.dtype() || expected.shape() != found.shape() {
        return Err(format!(
            "{what}: expected {}{:?}, found {}{:?}",
            expected.dtype().name(),
            expected.shape(),
            found.dtype().name(),
            found.shape()
        ));
    }
    if expected.dtype().is_float() {
        let (e, f) = (expected.to_f64_vec(), found.to_f64_vec());
        for (i, (&x, &y)) in e.iter().zip(&f).enumerate() {
            let ok = if x.is_nan() || y.is_nan() {
                x.is_nan() && y.is_nan()
            } else if x.is_infinite() || y.is_infinite() {
                x == y
            } else {
                (x - y).abs() <= ATOL + RTOL * x.abs()
            };
            if !ok {
                return Err(format!("{what}: element {i} (of {}): expected {x}, found {y}", e.len()));
            }
        }
    } else {
        let (e, f) = (expected.to_i64_vec(), found.to_i64_vec());
        if let Some(i) = (0..e.len()).find(|&i| e[i] != f[i]) {
            return Err(format!("{what}: element {i}: expected {}, found {}", e[i], f[i]));
        }
    }
    Ok(())
}

/// Runs `graph` through the graph interpreter and through the program compiled for `device`,
/// and compares every output.
pub fn check_device(graph: &Graph, inputs: &[TensorData], name: &str, device: &Device) -> Result<Program, String> {
    let expected = nnc_interp::run(graph, inputs).map_err(|e| format!("graph interpreter: {e}\n{}", text(graph)))?;
    let program = try_compile(graph, device).map_err(|e| format!("compile for {name}: {e}\n{}", text(graph)))?;
    let found = program
        .run_interpreted(inputs)
        .map_err(|e| format!("run on {name}: {e}\n{}\n{}", text(graph), dump(&program)))?;
    if found.len() != expected.len() {
        return Err(format!("{name}: {} outputs, expected {}", found.len(), expected.len()));
    }
    for (k, (e, f)) in expected.iter().zip(&found).enumerate() {
        compare(&format!("{name} output {k}"), e, f)
            .map_err(|m| format!("{m}\n{}\n{}", text(graph), dump(&program)))?;
    }
    Ok(program)
}

/// [`check_device`] on the GPU and the CPU; returns the two programs.
pub fn check(graph: &Graph, inputs: &[TensorData]) -> Result<(Program, Program), String> {
    let gpu = check_device(graph, inputs, "gpu", &Device::gpu())?;
    let cpu = check_device(graph, inputs, "cpu", &Device::cpu())?;
    Ok((gpu, cpu))
}

/// The graph in its text form.
pub fn text(graph: &Graph) -> String {
    nnc_ir::text::print(graph)
}

/// The fused program and every kernel, printed.
pub fn dump(program: &Program) -> String {
    let mut s = format!("{}", program.fused);
    for k in &program.kernels {
        s.push_str(&format!("{k}"));
    }
    s
}

/// Every kernel of `program`, printed, separated by blank lines.
pub fn kernels_text(program: &Program) -> String {
    program.kernels.iter().map(|k| format!("{k}")).collect::<Vec<_>>().join("\n")
}

pub fn strategies(program: &Program) -> Vec<Strategy> {
    program.kernels.iter().map(|k| k.schedule.strategy).collect()
}

/// The single kernel of `program` (panics with a dump otherwise).
pub fn only_kernel(program: &Program) -> &Kernel {
    assert_eq!(program.kernels.len(), 1, "expected one kernel:\n{}", dump(program));
    &program.kernels[0]
}

/// How many statements of `stmts` (recursively) satisfy `pred`.
pub fn count_stmts(stmts: &[Stmt], pred: &mut impl FnMut(&Stmt) -> bool) -> usize {
    let mut n = 0;
    nnc_kernel::visit::visit_stmts(stmts, &mut |s| {
        if pred(s) {
            n += 1;
        }
    });
    n
}

// ---------------------------------------------------------------- graphs used by several tests

use nnc_ir::{Dim, GraphBuilder, Op, UnaryOp, Window};

pub fn dims(shape: &[usize]) -> Vec<Dim> {
    shape.iter().map(|&d| Dim::from(d as i64)).collect()
}

/// A deterministic f32 constant of `shape`.
pub fn weight(b: &mut GraphBuilder, seed: u64, shape: &[usize]) -> nnc_ir::ValueId {
    let mut rng = Rng::new(seed);
    b.constant(tensor(&mut rng, shape, -1.0, 1.0))
}

/// `tanh(relu(x * y + bias) - x) ...`: five elementwise ops over `[4, 8]`, `[4, 1]` and `[8]`.
pub fn elementwise_chain() -> Graph {
    let mut b = GraphBuilder::new("chain");
    let x = b.input("x", DType::F32, [4, 8]).unwrap();
    let y = b.input("y", DType::F32, [4, 1]).unwrap();
    let bias = b.input("bias", DType::F32, [8]).unwrap();
    let t = b.mul(x, y).unwrap();
    let t = b.add(t, bias).unwrap();
    let t = b.relu(t).unwrap();
    let t = b.sub(t, x).unwrap();
    let t = b.tanh(t).unwrap();
    b.output(t);
    b.finish().unwrap()
}

pub fn softmax(shape: &[usize], axis: i64) -> Graph {
    let mut b = GraphBuilder::new("softmax");
    let x = b.input("x", DType::F32, dims(shape)).unwrap();
    let y = b.softmax(x, axis).unwrap();
    b.output(y);
    b.finish().unwrap()
}

pub fn layer_norm(shape: &[usize], axis: i64) -> Graph {
    let mut b = GraphBuilder::new("layer_norm");
    let x = b.input("x", DType::F32, dims(shape)).unwrap();
    let rank = shape.len() as i64;
    let a = if axis < 0 { rank + axis } else { axis } as usize;
    let scale = weight(&mut b, 1, &shape[a..]);
    let bias = weight(&mut b, 2, &shape[a..]);
    let y = b.layer_norm(x, scale, bias, axis, 1e-5).unwrap();
    b.output(y);
    b.finish().unwrap()
}

/// `relu(x @ w + bias)` with `x: [m, k]`, `w: [k, n]` constant.
pub fn matmul_bias_relu(m: usize, k: usize, n: usize) -> Graph {
    let mut b = GraphBuilder::new("matmul_bias_relu");
    let x = b.input("x", DType::F32, [m as i64, k as i64]).unwrap();
    let w = weight(&mut b, 3, &[k, n]);
    let bias = weight(&mut b, 4, &[n]);
    let y = b.matmul(x, w).unwrap();
    let y = b.add(y, bias).unwrap();
    let y = b.relu(y).unwrap();
    b.output(y);
    b.finish().unwrap()
}

/// `relu(conv(x, w) + bias)` over NCHW, bias per output channel.
pub fn conv_bias_relu(x_shape: [usize; 4], out_channels: usize, kernel: usize, pad: i64) -> Graph {
    let mut b = GraphBuilder::new("conv_bias_relu");
    let x = b.input("x", DType::F32, dims(&x_shape)).unwrap();
    let w = weight(&mut b, 5, &[out_channels, x_shape[1], kernel, kernel]);
    let bias = weight(&mut b, 6, &[out_channels, 1, 1]);
    let window = Window { strides: vec![1, 1], dilations: vec![1, 1], pads: vec![pad; 4] };
    let y = b.conv(x, w, window, 1).unwrap();
    let y = b.add(y, bias).unwrap();
    let y = b.relu(y).unwrap();
    b.output(y);
    b.finish().unwrap()
}

pub fn argmax(shape: &[usize], axis: i64) -> Graph {
    let mut b = GraphBuilder::new("argmax");
    let x = b.input("x", DType::F32, dims(shape)).unwrap();
    let y = b.argmax(x, axis, false).unwrap();
    b.output(y);
    b.finish().unwrap()
}

pub fn topk(shape: &[usize], k: usize) -> Graph {
    let mut b = GraphBuilder::new("topk");
    let x = b.input("x", DType::F32, dims(shape)).unwrap();
    let axis = shape.len() - 1;
    let r = b.op(Op::TopK { axis, k, largest: true }, &[x]).unwrap();
    b.output(r[0]);
    b.output(r[1]);
    b.finish().unwrap()
}

pub fn unary(b: &mut GraphBuilder, op: UnaryOp, x: nnc_ir::ValueId) -> nnc_ir::ValueId {
    b.unary(op, x).unwrap()
}

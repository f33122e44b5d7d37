//! Small fixed graphs that many tests use: one of each kind of kernel the passes generate
//! (elementwise chains, row reductions, tiled matmuls, convolutions, arg-reductions, top-k).

use crate::inputs::{tensor, Rng};
use nnc_ir::{
    BinaryOp, DType, Dim, Graph, GraphBuilder, Op, PadMode, ReduceKind, TensorData, UnaryOp, ValueId, Window,
};

pub fn dims(shape: &[usize]) -> Vec<Dim> {
    shape.iter().map(|&d| Dim::from(d as i64)).collect()
}

/// A deterministic f32 constant of `shape`, uniform in `[-1, 1)`.
pub fn weight(b: &mut GraphBuilder, seed: u64, shape: &[usize]) -> ValueId {
    let mut rng = Rng::new(seed);
    b.constant(tensor(&mut rng, shape, -1.0, 1.0))
}

/// `x` quantized in the graph to `to` (`u8` or `i8`): `saturate(round(x * 64 + zero))`. The
/// scale is a power of two, so `x * 64` is exact and a fused multiply-add rounds as the
/// interpreter's two steps do: values on a rounding boundary go the same way everywhere.
pub fn quantize(b: &mut GraphBuilder, x: ValueId, zero: f64, to: DType) -> ValueId {
    let (lo, hi) = if to == DType::U8 { (0.0, 255.0) } else { (-128.0, 127.0) };
    let y = b.binary_scalar(BinaryOp::Mul, x, 64.0).unwrap();
    let y = b.binary_scalar(BinaryOp::Add, y, zero).unwrap();
    let y = b.unary(UnaryOp::Round, y).unwrap();
    let y = b.binary_scalar(BinaryOp::Max, y, lo).unwrap();
    let y = b.binary_scalar(BinaryOp::Min, y, hi).unwrap();
    b.cast(y, to).unwrap()
}

/// A quantized linear layer as nnc imports one: `f32` activations `[m, k]` quantized to `u8`,
/// `i8` constant weights `[k, n]`, the product accumulated in `i32`, a zero-point correction
/// per column, scaled back to `f32`. With `k` a multiple of four, CPUs with `u8 × i8` dot
/// products take its reduction four steps at a time.
pub fn quantized_linear(m: usize, k: usize, n: usize) -> Graph {
    let mut b = GraphBuilder::new(&format!("quantized_linear_{m}x{k}x{n}"));
    let x = b.input("x", DType::F32, [m as i64, k as i64]).unwrap();
    let xq = quantize(&mut b, x, 128.0, DType::U8);
    let mut rng = Rng::new((m * 1000 + k * 10 + n) as u64);
    let values: Vec<i64> = (0..k * n).map(|_| rng.below(256) as i64 - 128).collect();
    let w = b.constant(TensorData::from_i64(DType::I8, vec![k, n], &values));
    let (xi, wi) = (b.cast(xq, DType::I32).unwrap(), b.cast(w, DType::I32).unwrap());
    let y = b.matmul(xi, wi).unwrap();
    let sums: Vec<i64> = (0..n).map(|c| 128 * (0..k).map(|r| values[r * n + c]).sum::<i64>()).collect();
    let correction = b.constant(TensorData::from_i64(DType::I32, vec![n], &sums));
    let y = b.sub(y, correction).unwrap();
    let y = b.cast(y, DType::F32).unwrap();
    let y = b.binary_scalar(BinaryOp::Mul, y, 1.0 / 4096.0).unwrap();
    b.output(y);
    b.finish().unwrap()
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

/// A YOLO-style stem: a stride-2 convolution, SiLU, then a padded 3x3 convolution. The second's
/// padding is fused into the first's output, whose border the first computes and zeroes: its
/// loads there must be masked (they lie before the input's first row and past its last).
pub fn conv_silu_conv(x_shape: [usize; 4], channels: usize) -> Graph {
    let mut b = GraphBuilder::new("conv_silu_conv");
    let x = b.input("x", DType::F32, dims(&x_shape)).unwrap();
    let w1 = weight(&mut b, 11, &[channels, x_shape[1], 3, 3]);
    let stride2 = Window { strides: vec![2, 2], dilations: vec![1, 1], pads: vec![1; 4] };
    let y = b.conv(x, w1, stride2, 1).unwrap();
    let gate = b.sigmoid(y).unwrap();
    let y = b.mul(y, gate).unwrap();
    let w2 = weight(&mut b, 12, &[channels, channels, 3, 3]);
    let same = Window { strides: vec![1, 1], dilations: vec![1, 1], pads: vec![1; 4] };
    let y = b.conv(y, w2, same, 1).unwrap();
    b.output(y);
    b.finish().unwrap()
}

/// `concat([x0, relu(conv(x))], channels)`: the convolution fused into the concatenation, whose
/// first channel comes from `x0`; the tile computing it must not load the weights' row "-1".
pub fn concat_conv(x_shape: [usize; 4], channels: usize) -> Graph {
    let mut b = GraphBuilder::new("concat_conv");
    let x = b.input("x", DType::F32, dims(&x_shape)).unwrap();
    let x0 = b.input("x0", DType::F32, dims(&[x_shape[0], 1, x_shape[2], x_shape[3]])).unwrap();
    let w = weight(&mut b, 13, &[channels, x_shape[1], 3, 3]);
    let window = Window { strides: vec![1, 1], dilations: vec![1, 1], pads: vec![1; 4] };
    let y = b.conv(x, w, window, 1).unwrap();
    let y = b.relu(y).unwrap();
    let y = b.concat(&[x0, y], 1).unwrap();
    b.output(y);
    b.finish().unwrap()
}

/// The front end of an audio model (shaped like basic-pitch's): a log-magnitude spectrogram
/// `[1, 1, h, w]` normalized by its whole-tensor minimum and maximum, stacked with copies of
/// itself shifted along frequency (4 channels), then a 3x3 convolution to 8 channels and relu.
/// A whole-tensor reduction inlined into the large stacked copy was once computed per element.
pub fn spectrogram_stack_conv(h: usize, w: usize) -> Graph {
    let mut b = GraphBuilder::new("spectrogram_stack_conv");
    let x = b.input("x", DType::F32, dims(&[1, 1, h, w])).unwrap();
    let power = b.binary(BinaryOp::Mul, x, x).unwrap();
    let power = b.binary_scalar(BinaryOp::Add, power, 1e-10).unwrap();
    let db = b.unary(UnaryOp::Log, power).unwrap();
    let db = b.binary_scalar(BinaryOp::Mul, db, 4.342_944_5).unwrap();
    let all = [0, 1, 2, 3];
    let low = b.reduce(ReduceKind::Min, db, &all, true).unwrap();
    let shifted = b.binary(BinaryOp::Sub, db, low).unwrap();
    let high = b.reduce(ReduceKind::Max, shifted, &all, true).unwrap();
    let normalized = b.binary(BinaryOp::Div, shifted, high).unwrap();
    let harmonics: Vec<ValueId> = [0, 7, 12, 19]
        .iter()
        .map(|&shift| {
            let s = b.slice_axis(normalized, 3, shift, w as i64).unwrap();
            b.pad(s, vec![0, 0, 0, 0, 0, 0, 0, shift], PadMode::Constant, 0.0).unwrap()
        })
        .collect();
    let stacked = b.concat(&harmonics, 1).unwrap();
    let kernel = weight(&mut b, 7, &[8, 4, 3, 3]);
    let window = Window { strides: vec![1, 1], dilations: vec![1, 1], pads: vec![1; 4] };
    let y = b.conv(stacked, kernel, window, 1).unwrap();
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

pub fn unary(b: &mut GraphBuilder, op: UnaryOp, x: ValueId) -> ValueId {
    b.unary(op, x).unwrap()
}

/// The fixed graphs every backend's suite runs: each kind of kernel at a size that fits one
/// workgroup and at one that needs several (a 600-wide layer norm, a 700-wide argmax, matmul
/// and conv tiles with ragged edges), and reductions over inner and outer axes.
pub fn fixed_graphs() -> Vec<Graph> {
    vec![
        quantized_linear(37, 64, 48),
        quantized_linear(5, 30, 9),
        elementwise_chain(),
        softmax(&[3, 17], -1),
        softmax(&[4, 32], -1),
        softmax(&[2, 5, 7], 1),
        softmax(&[3, 5, 7], 1),
        layer_norm(&[4, 32], -1),
        layer_norm(&[2, 600], -1),
        matmul_bias_relu(5, 7, 9),
        matmul_bias_relu(33, 17, 9),
        conv_bias_relu([1, 3, 8, 8], 4, 3, 1),
        conv_bias_relu([1, 3, 9, 9], 4, 3, 1),
        conv_silu_conv([1, 3, 32, 32], 16),
        concat_conv([1, 8, 6, 6], 32),
        argmax(&[3, 9], -1),
        argmax(&[3, 7], 1),
        argmax(&[3, 700], 1),
        topk(&[2, 10], 3),
        topk(&[2, 9], 3),
    ]
}

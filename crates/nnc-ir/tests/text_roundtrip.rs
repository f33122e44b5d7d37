//! Property test of the `.nnir` text form: for random well-typed graphs built with
//! `GraphBuilder`, `parse(print(g)) == g` and printing is stable.
//!
//! A graph is described by a recipe (inputs, then steps of random kinds with random bits), so
//! proptest can shrink a failure to a short recipe. Steps the builder rejects are skipped, so
//! every recipe yields a valid graph.

use half::{bf16, f16};
use nnc_ir::op::{ArgKind, BinaryClass, GeluApprox, PadMode, PoolKind, ReduceKind, UnaryClass};
use nnc_ir::{text, BinaryOp, DType, Dim, Graph, GraphBuilder, Op, TensorData, UnaryOp, ValueId, Window};
use proptest::prelude::*;
use proptest::strategy::ValueTree;

/// A tiny deterministic generator for a step's parameters.
struct Bits(u64);

impl Bits {
    fn next(&mut self) -> u64 {
        // xorshift64*, seeded so that 0 still moves.
        let mut x = self.0 ^ 0x9E37_79B9_7F4A_7C15;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn flip(&mut self) -> bool {
        self.next() & 1 == 1
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())].clone()
    }
}

fn dim_pool() -> Vec<Dim> {
    vec![
        1.into(),
        2.into(),
        3.into(),
        4.into(),
        Dim::sym("batch"),
        Dim::sym("seq"),
        Dim::sym("batch") * 2.into(),
        Dim::sym("batch") + 1.into(),
    ]
}

const NAMES: &[&str] = &[
    "w",
    "x.1",
    "/layer1/Conv_output_0",
    "onnx::Gemm_12",
    "a\"b\\c",
    "with space",
    "ünïcödé",
    "#not a comment",
    "%pct",
    "multi\nline",
    "return",
    "graph",
    "7",
];

const GRAPH_NAMES: &[&str] = &["g", "mlp.v2", "_private", "my graph", "", "2x", "quote\"d\\"];

fn float_values<T: Copy>(bits: &mut Bits, n: usize, special: &[T], random: impl Fn(u64) -> T) -> Vec<T> {
    (0..n).map(|_| if bits.flip() { bits.pick(special) } else { random(bits.next()) }).collect()
}

/// A random constant of `dtype` and static `shape`: special floats (±0, ±inf, NaN, subnormals,
/// extremes) and random bit patterns, NaNs made canonical since the text has one `nan`.
fn random_tensor(bits: &mut Bits, dtype: DType, shape: Vec<usize>) -> TensorData {
    let n: usize = shape.iter().product();
    match dtype {
        DType::F32 => {
            let special = [0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, 1e-45, f32::MAX, f32::MIN, 0.1];
            let v = float_values(bits, n, &special, |b| canonical_f32(f32::from_bits(b as u32)));
            TensorData::from_vec(shape, &v)
        }
        DType::F64 => {
            let special = [0.0, -0.0, f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 5e-324, f64::MAX, 0.1];
            let v = float_values(bits, n, &special, |b| {
                let v = f64::from_bits(b);
                if v.is_nan() {
                    f64::NAN
                } else {
                    v
                }
            });
            TensorData::from_vec(shape, &v)
        }
        DType::F16 => {
            let special = [f16::ZERO, f16::NEG_ZERO, f16::INFINITY, f16::NAN, f16::MAX, f16::from_bits(1)];
            let v = float_values(bits, n, &special, |b| {
                let v = f16::from_bits(b as u16);
                if v.is_nan() {
                    f16::NAN
                } else {
                    v
                }
            });
            TensorData::from_vec(shape, &v)
        }
        DType::BF16 => {
            let special = [bf16::ZERO, bf16::NEG_ZERO, bf16::NEG_INFINITY, bf16::NAN, bf16::MIN_POSITIVE_SUBNORMAL];
            let v = float_values(bits, n, &special, |b| {
                let v = bf16::from_bits(b as u16);
                if v.is_nan() {
                    bf16::NAN
                } else {
                    v
                }
            });
            TensorData::from_vec(shape, &v)
        }
        DType::I64 => {
            let v: Vec<i64> = (0..n)
                .map(|_| if bits.flip() { bits.pick(&[i64::MIN, i64::MAX, 0, -1]) } else { bits.next() as i64 })
                .collect();
            TensorData::from_vec(shape, &v)
        }
        DType::I32 => TensorData::from_vec(shape, &(0..n).map(|_| bits.next() as i32).collect::<Vec<_>>()),
        DType::I16 => TensorData::from_vec(shape, &(0..n).map(|_| bits.next() as i16).collect::<Vec<_>>()),
        DType::I8 => TensorData::from_vec(shape, &(0..n).map(|_| bits.next() as i8).collect::<Vec<_>>()),
        DType::U64 => {
            let v: Vec<u64> =
                (0..n).map(|_| if bits.flip() { bits.pick(&[u64::MAX, 1 << 63, 0]) } else { bits.next() }).collect();
            TensorData::from_vec(shape, &v)
        }
        DType::U32 => TensorData::from_vec(shape, &(0..n).map(|_| bits.next() as u32).collect::<Vec<_>>()),
        DType::U16 => TensorData::from_vec(shape, &(0..n).map(|_| bits.next() as u16).collect::<Vec<_>>()),
        DType::U8 => TensorData::from_vec(shape, &(0..n).map(|_| bits.next() as u8).collect::<Vec<_>>()),
        DType::Bool => TensorData::from_vec(shape, &(0..n).map(|_| bits.flip()).collect::<Vec<_>>()),
        // Every pattern but the NaNs (which read back as the format's one NaN of their sign).
        d if d.is_minifloat() => {
            let v: Vec<f64> = (0..n)
                .map(|_| nnc_ir::lowp::decode(d, bits.next() as u8).unwrap())
                .map(|v| if v.is_nan() { f64::NAN.copysign(v) } else { v })
                .collect();
            TensorData::from_f64(d, shape, &v)
        }
        d => TensorData::from_i64(d, shape, &(0..n).map(|_| bits.next() as i64).collect::<Vec<_>>()),
    }
}

fn canonical_f32(v: f32) -> f32 {
    if v.is_nan() {
        f32::NAN
    } else {
        v
    }
}

/// A finite attribute float (attributes compare with `==`, so no NaN).
fn finite(bits: &mut Bits) -> f64 {
    let v = f64::from_bits(bits.next());
    if v.is_finite() {
        v
    } else {
        bits.pick(&[1e-5, -0.0, 0.5, 1e300])
    }
}

/// `shape` with symbolic dims replaced by 1 and some dims set to 1, keeping a random suffix:
/// a static shape that broadcasts against `shape`.
fn broadcastable(bits: &mut Bits, shape: &[Dim]) -> Vec<usize> {
    let keep = bits.below(shape.len() + 1);
    shape[shape.len() - keep..].iter().map(|d| if bits.flip() { 1 } else { d.as_usize().unwrap_or(1) }).collect()
}

#[derive(Debug, Clone)]
struct Recipe {
    graph_name: usize,
    inputs: Vec<(usize, Vec<usize>)>,
    steps: Vec<(u8, u16, u64)>,
    outputs: Vec<u16>,
    renames: Vec<(u16, usize)>,
}

const STEP_KINDS: u8 = 24;

fn recipe() -> impl Strategy<Value = Recipe> {
    (
        0..GRAPH_NAMES.len(),
        prop::collection::vec((0..DType::ALL.len(), prop::collection::vec(0..8usize, 0..4)), 0..4),
        prop::collection::vec((0..STEP_KINDS, any::<u16>(), any::<u64>()), 1..24),
        prop::collection::vec(any::<u16>(), 0..3),
        prop::collection::vec((any::<u16>(), 0..NAMES.len()), 0..4),
    )
        .prop_map(|(graph_name, inputs, steps, outputs, renames)| Recipe {
            graph_name,
            inputs,
            steps,
            outputs,
            renames,
        })
}

fn build(r: &Recipe) -> Graph {
    let pool = dim_pool();
    let mut b = GraphBuilder::new(GRAPH_NAMES[r.graph_name]);
    let mut vals: Vec<ValueId> = Vec::new();
    for (i, (dtype, dims)) in r.inputs.iter().enumerate() {
        let shape: Vec<Dim> = dims.iter().map(|&d| pool[d].clone()).collect();
        vals.push(b.input(&format!("in{i}"), DType::ALL[*dtype], shape).unwrap());
    }
    for &(kind, pick, seed) in &r.steps {
        let mut bits = Bits(seed);
        if vals.is_empty() || kind == 0 {
            let dtype = bits.pick(&DType::ALL);
            // Mostly non-empty, sometimes a zero-size axis.
            let shape: Vec<usize> =
                (0..bits.below(4)).map(|_| if bits.below(8) == 0 { 0 } else { 1 + bits.below(3) }).collect();
            let t = random_tensor(&mut bits, dtype, shape);
            vals.push(b.constant(t));
            continue;
        }
        let x = vals[pick as usize % vals.len()];
        if let Ok(v) = step(&mut b, &mut bits, kind, x, &pool) {
            vals.push(v);
        }
    }
    b.output(*vals.last().unwrap());
    for &o in &r.outputs {
        b.output(vals[o as usize % vals.len()]);
    }
    for &(v, name) in &r.renames {
        let _ = b.set_name(vals[v as usize % vals.len()], NAMES[name]);
    }
    b.finish().expect("a recipe always builds a valid graph")
}

/// One random step applied to operand `x`; an `Err` (the builder refusing) skips the step.
fn step(b: &mut GraphBuilder, bits: &mut Bits, kind: u8, x: ValueId, pool: &[Dim]) -> Result<ValueId, nnc_ir::IrError> {
    let ty = b.ty(x).clone();
    let rank = ty.rank();
    let axis = bits.below(rank.max(1)) as i64;
    match kind {
        1 => {
            let ops: Vec<UnaryOp> = UnaryOp::ALL
                .iter()
                .copied()
                .filter(|u| match u.class() {
                    UnaryClass::Numeric => ty.dtype.is_numeric(),
                    UnaryClass::Float | UnaryClass::FloatPredicate => ty.dtype.is_float(),
                    UnaryClass::Logical => ty.dtype == DType::Bool,
                })
                .collect();
            if ops.is_empty() {
                return b.cast(x, DType::F32);
            }
            let u = bits.pick(&ops);
            b.unary(u, x)
        }
        2 => {
            let ops: Vec<BinaryOp> = BinaryOp::ALL
                .iter()
                .copied()
                .filter(|op| match op.class() {
                    BinaryClass::Arithmetic => ty.dtype.is_numeric(),
                    BinaryClass::Logical => ty.dtype == DType::Bool,
                    BinaryClass::Comparison => true,
                })
                .collect();
            let op = bits.pick(&ops);
            let other = if bits.flip() {
                x
            } else {
                let shape = broadcastable(bits, &ty.shape);
                let t = random_tensor(bits, ty.dtype, shape);
                b.constant(t)
            };
            if bits.flip() {
                b.binary(op, x, other)
            } else {
                b.binary(op, other, x)
            }
        }
        3 => {
            let axes: Vec<i64> = (0..rank as i64).filter(|_| bits.flip()).collect();
            let kind = bits.pick(ReduceKind::ALL);
            b.reduce(kind, x, &axes, bits.flip())
        }
        4 => {
            let op = Op::ArgReduce {
                kind: bits.pick(ArgKind::ALL),
                axis: axis as usize,
                keep_dims: bits.flip(),
                select_last: bits.flip(),
            };
            b.op1(op, &[x])
        }
        5 => {
            if rank >= 2 && bits.flip() {
                let t = b.transpose_last2(x)?;
                b.matmul(x, t)
            } else {
                let k = ty.shape.last().and_then(Dim::as_usize).unwrap_or(1);
                let n = 1 + bits.below(3);
                let w = random_tensor(bits, ty.dtype, vec![k, n]);
                let w = b.constant(w);
                b.matmul(x, w)
            }
        }
        6 => {
            let n = ty.num_elements();
            let shape = if bits.flip() { vec![n] } else { vec![1.into(), n, 1.into()] };
            b.reshape(x, shape)
        }
        7 => {
            let mut perm: Vec<usize> = (0..rank).collect();
            for i in (1..rank).rev() {
                perm.swap(i, bits.below(i + 1));
            }
            b.transpose(x, perm)
        }
        8 => {
            let copies = vec![x; 1 + bits.below(3)];
            b.concat(&copies, axis)
        }
        9 => {
            if rank == 0 {
                return b.relu(x);
            }
            let a = axis as usize;
            let op = if ty.shape[a].is_const() {
                let step = bits.pick(&[1, 2, -1, -3, i64::MAX, i64::MIN]);
                let start = bits.pick(&[0, 1, -1, i64::MIN, i64::MAX]);
                let end = bits.pick(&[0, 2, -1, i64::MIN, i64::MAX]);
                Op::Slice { axes: vec![a], starts: vec![start], ends: vec![end], steps: vec![step] }
            } else {
                let start = bits.below(3) as i64;
                let end = if bits.flip() { i64::MAX } else { start + bits.below(3) as i64 };
                Op::Slice { axes: vec![a], starts: vec![start], ends: vec![end], steps: vec![1] }
            };
            b.op1(op, &[x])
        }
        10 => b.cast(x, bits.pick(&DType::ALL)),
        11 => {
            let cond = b.binary(BinaryOp::Ne, x, x)?;
            b.select(cond, x, x)
        }
        12 => {
            let pads: Vec<i64> = (0..2 * rank).map(|_| bits.below(3) as i64).collect();
            let mode = bits.pick(PadMode::ALL);
            b.pad(x, pads, mode, finite(bits))
        }
        13 => {
            let len = 1 + bits.below(2);
            let idx = random_tensor(bits, DType::I64, vec![len]);
            let idx = b.constant(idx);
            if bits.flip() {
                b.gather(x, idx, axis)
            } else {
                let upd = b.gather(x, idx, axis)?;
                b.op1(Op::ScatterAdd { axis: axis as usize }, &[x, idx, upd])
            }
        }
        14 => {
            let shape: Vec<Dim> = (0..1 + bits.below(3)).map(|_| bits.pick(pool)).collect();
            let axis = bits.below(shape.len()) as i64;
            b.iota(bits.pick(&[DType::I64, DType::F32, DType::U8]), shape, axis)
        }
        15 => {
            if bits.flip() {
                b.softmax(x, axis)
            } else {
                b.log_softmax(x, axis)
            }
        }
        16 => {
            let scale = b.scalar(ty.dtype, finite(bits));
            let bias = b.scalar(ty.dtype, finite(bits));
            b.layer_norm(x, scale, bias, axis, finite(bits).abs())
        }
        17 => b.gelu(x, bits.pick(GeluApprox::ALL)),
        18 => {
            let mask = if bits.flip() { Some(b.scalar(ty.dtype, 0.0)) } else { None };
            let scale = if bits.flip() { Some(finite(bits)) } else { None };
            b.attention(x, x, x, mask, scale, bits.flip())
        }
        19 => {
            let c = ty.shape.get(1).and_then(Dim::as_usize).unwrap_or(1);
            let params: Vec<ValueId> =
                (0..4).map(|_| random_tensor(bits, ty.dtype, vec![c])).map(|t| b.constant(t)).collect();
            let mut operands = vec![x];
            operands.extend(params);
            b.op1(Op::BatchNorm { epsilon: 1e-5 }, &operands)
        }
        20 | 21 => {
            // Conv and pooling need concrete spatial sizes: use a fresh constant input.
            let dtype = bits.pick(&[DType::F32, DType::F64, DType::F16]);
            let height = 4 + bits.below(3);
            let input = random_tensor(bits, dtype, vec![1, 2, height, 5]);
            let input = b.constant(input);
            let stride = 1 + bits.below(2) as i64;
            let pad = bits.below(2) as i64;
            let window = Window {
                strides: vec![stride, 1],
                dilations: vec![1, 1 + bits.below(2) as i64],
                pads: vec![pad, 0, pad, 1],
            };
            if kind == 20 {
                let groups = 1 + bits.below(2) as i64;
                let w = random_tensor(bits, dtype, vec![2, (2 / groups) as usize, 2, 2]);
                let w = b.constant(w);
                b.conv(input, w, window, groups)
            } else {
                let op = Op::Pool {
                    kind: bits.pick(PoolKind::ALL),
                    kernel: vec![2, 1 + bits.below(2) as i64],
                    window,
                    ceil_mode: bits.flip(),
                    count_include_pad: bits.flip(),
                };
                b.op1(op, &[input])
            }
        }
        22 => {
            let mut shape = vec![bits.pick(pool)];
            shape.extend(ty.shape.iter().cloned());
            b.expand(x, shape)
        }
        _ => {
            let shape: Vec<usize> = ty.shape.iter().map(|d| d.as_usize().unwrap_or(2)).collect();
            let t = random_tensor(bits, ty.dtype, shape);
            Ok(b.constant(t))
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn print_then_parse_is_the_identity(r in recipe()) {
        let g = build(&r);
        let text = text::print(&g);
        let back = text::parse(&text, "prop.nnir").map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(&back, &g, "{}", text);
        prop_assert_eq!(text::print(&back), text);
    }
}

/// The generator reaches every kind of op (so the property covers them all).
#[test]
fn recipes_cover_every_op() {
    let mut seen = std::collections::BTreeSet::new();
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    for _ in 0..300 {
        let r = recipe().new_tree(&mut runner).unwrap().current();
        for node in build(&r).nodes {
            seen.insert(node.op.name());
        }
    }
    let all = [
        "constant",
        "iota",
        "neg",
        "add",
        "select",
        "cast",
        "reduce_sum",
        "argmax",
        "matmul",
        "conv",
        "max_pool",
        "avg_pool",
        "reshape",
        "transpose",
        "expand",
        "slice",
        "concat",
        "pad",
        "gather",
        "scatter_add",
        "softmax",
        "log_softmax",
        "layer_norm",
        "batch_norm",
        "gelu",
        "attention",
    ];
    let missing: Vec<&str> = all.iter().copied().filter(|op| !seen.contains(op)).collect();
    assert!(missing.is_empty(), "never generated: {missing:?}");
}

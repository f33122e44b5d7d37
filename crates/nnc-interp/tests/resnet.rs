//! ResNet-sized convolutions: the first layer of ResNet-18 checked against a naive reference at
//! sampled positions, and (ignored by default, for timing) a whole ResNet-18.

use nnc_ir::{DType, GraphBuilder, PoolKind, TensorData, ValueId, Window};
use std::time::Instant;

/// A deterministic stream of values in [-1, 1).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    fn tensor(&mut self, shape: &[usize], scale: f32) -> TensorData {
        let n: usize = shape.iter().product();
        TensorData::from_vec(shape.to_vec(), &(0..n).map(|_| self.next() * scale).collect::<Vec<_>>())
    }
}

fn window(stride: i64, pad: i64) -> Window {
    Window { strides: vec![stride; 2], dilations: vec![1; 2], pads: vec![pad; 4] }
}

#[test]
fn resnet18_first_layer_matches_naive_reference() {
    let mut rng = Lcg(7);
    let x = rng.tensor(&[1, 3, 224, 224], 1.0);
    let w = rng.tensor(&[64, 3, 7, 7], 0.1);
    let mut b = GraphBuilder::new("conv1");
    let xi = b.input("x", DType::F32, [1, 3, 224, 224]).unwrap();
    let wc = b.constant(w.clone());
    let y = b.conv(xi, wc, window(2, 3), 1).unwrap();
    b.output(y);
    let g = b.finish().unwrap();
    let start = Instant::now();
    let out = nnc_interp::run(&g, std::slice::from_ref(&x)).unwrap();
    eprintln!("conv 1x3x224x224 * 64x3x7x7 / 2: {:?}", start.elapsed());
    assert_eq!(out[0].shape(), &[1, 64, 112, 112]);
    let got = out[0].to_vec::<f32>().unwrap();
    let (xs, ws) = (x.to_vec::<f32>().unwrap(), w.to_vec::<f32>().unwrap());
    let samples = [(0, 0, 0), (5, 0, 111), (17, 111, 0), (63, 111, 111), (31, 56, 57), (40, 1, 1), (2, 110, 3)];
    for (m, oy, ox) in samples {
        let mut acc = 0.0f64;
        for c in 0..3 {
            for ky in 0..7 {
                for kx in 0..7 {
                    let (iy, ix) = (oy as i64 * 2 - 3 + ky, ox as i64 * 2 - 3 + kx);
                    if (0..224).contains(&iy) && (0..224).contains(&ix) {
                        let xv = xs[(c * 224 + iy as usize) * 224 + ix as usize] as f64;
                        let wv = ws[((m * 3 + c) * 7 + ky as usize) * 7 + kx as usize] as f64;
                        acc += xv * wv;
                    }
                }
            }
        }
        let v = got[(m * 112 + oy) * 112 + ox];
        assert!((v as f64 - acc).abs() <= 1e-6 * acc.abs().max(1.0), "out[{m}, {oy}, {ox}] = {v}, want {acc}");
    }
}

/// A graph under construction with a source of random weights.
struct Net {
    b: GraphBuilder,
    rng: Lcg,
}

impl Net {
    /// conv (no bias) with a `k x k` kernel + batch_norm, optionally followed by relu.
    fn conv_bn(&mut self, x: ValueId, (cin, cout): (usize, usize), k: usize, stride: i64, relu: bool) -> ValueId {
        let (b, rng) = (&mut self.b, &mut self.rng);
        let w = b.constant(rng.tensor(&[cout, cin, k, k], (2.0 / (cin * k * k) as f32).sqrt()));
        let y = b.conv(x, w, window(stride, (k / 2) as i64), 1).unwrap();
        let scale = b.constant(TensorData::from_vec(vec![cout], &vec![1.0f32; cout]));
        let bias = b.constant(rng.tensor(&[cout], 0.1));
        let mean = b.constant(rng.tensor(&[cout], 0.1));
        let var = b.constant(TensorData::from_vec(vec![cout], &vec![1.0f32; cout]));
        let y = b.op1(nnc_ir::Op::BatchNorm { epsilon: 1e-5 }, &[y, scale, bias, mean, var]).unwrap();
        if relu {
            b.relu(y).unwrap()
        } else {
            y
        }
    }

    fn basic_block(&mut self, x: ValueId, cin: usize, cout: usize, stride: i64) -> ValueId {
        let h = self.conv_bn(x, (cin, cout), 3, stride, true);
        let h = self.conv_bn(h, (cout, cout), 3, 1, false);
        let skip = if stride != 1 || cin != cout { self.conv_bn(x, (cin, cout), 1, stride, false) } else { x };
        let s = self.b.add(h, skip).unwrap();
        self.b.relu(s).unwrap()
    }
}

/// A whole ResNet-18 (random weights): about 1.8 GFLOP of convolution.
#[test]
#[ignore = "timing run: cargo test -p nnc-interp --test resnet -- --ignored --nocapture"]
fn resnet18_runs() {
    let mut net = Net { b: GraphBuilder::new("resnet18"), rng: Lcg(1) };
    let x = net.b.input("x", DType::F32, [1, 3, 224, 224]).unwrap();
    let mut h = net.conv_bn(x, (3, 64), 7, 2, true);
    let mp = Window { strides: vec![2, 2], dilations: vec![1, 1], pads: vec![1; 4] };
    h = net.b.pool(PoolKind::Max, h, vec![3, 3], mp).unwrap();
    let mut c = 64;
    for (i, cout) in [64, 128, 256, 512].into_iter().enumerate() {
        let stride = if i == 0 { 1 } else { 2 };
        h = net.basic_block(h, c, cout, stride);
        h = net.basic_block(h, cout, cout, 1);
        c = cout;
    }
    let Net { mut b, mut rng } = net;
    let pooled = b.reduce_mean(h, &[2, 3], false).unwrap();
    let fc = b.constant(rng.tensor(&[512, 1000], 0.05));
    let logits = b.matmul(pooled, fc).unwrap();
    b.output(logits);
    let g = b.finish().unwrap();
    let input = rng.tensor(&[1, 3, 224, 224], 1.0);
    let start = Instant::now();
    let out = nnc_interp::run(&g, &[input]).unwrap();
    eprintln!("resnet18: {:?}", start.elapsed());
    assert_eq!(out[0].shape(), &[1, 1000]);
    assert!(out[0].to_vec::<f32>().unwrap().iter().all(|v| v.is_finite()));
}

//! Deterministic test data: a tiny seeded generator (so no test depends on a random-number
//! crate's stream staying the same) and f32 tensors drawn from it.

use nnc_ir::{DType, Graph, TensorData};

/// A tiny deterministic generator (SplitMix64).
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

    /// Uniform in `0..n` (0 when `n` is 0).
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

/// Inputs for every graph input, uniform in `[-2, 2)`; the graph's inputs must be f32 of
/// static shape (as every graph of [`crate::families`] and [`crate::graphs`] is).
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

//! Gradient checking: the gradient graph (run by the reference interpreter) against central
//! finite differences of the forward graph computed in f64.
#![allow(dead_code)]

use nnc_autodiff::grad;
use nnc_ir::{DType, Dim, GraphBuilder, IrError, TensorData, ValueId};

/// A small deterministic generator (splitmix64): proptest supplies the seed.
pub struct Gen(u64);

impl Gen {
    pub fn new(seed: u64) -> Gen {
        Gen(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..=hi`.
    pub fn int(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % ((hi - lo + 1) as u64)) as i64
    }
    pub fn usize(&mut self, lo: usize, hi: usize) -> usize {
        self.int(lo as i64, hi as i64) as usize
    }
    pub fn bool(&mut self) -> bool {
        self.next() & 1 == 1
    }
    /// Uniform in `[lo, hi)`, rounded to f32 so f32 and f64 graphs see the same inputs.
    pub fn f(&mut self, lo: f64, hi: f64) -> f64 {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        (lo + (hi - lo) * u) as f32 as f64
    }
    pub fn vals(&mut self, shape: &[usize], lo: f64, hi: f64) -> Vec<f64> {
        (0..shape.iter().product::<usize>()).map(|_| self.f(lo, hi)).collect()
    }
    /// Values in `[lo, hi)` with a random sign.
    pub fn signed(&mut self, shape: &[usize], lo: f64, hi: f64) -> Vec<f64> {
        (0..shape.iter().product::<usize>())
            .map(|_| if self.bool() { self.f(lo, hi) } else { -self.f(lo, hi) })
            .collect()
    }
    /// `n` values in `[lo, hi)`, shuffled, no two closer than `(hi - lo) / (2 n)`: for ops that
    /// pick one operand (min, max, top-k), where two values closer than the finite-difference
    /// step would make the difference straddle a kink that the gradient, rightly, does not see.
    pub fn distinct(&mut self, n: usize, lo: f64, hi: f64) -> Vec<f64> {
        let slot = (hi - lo) / n as f64;
        let mut v: Vec<f64> =
            (0..n).map(|i| (lo + slot * (i as f64 + 0.25 + 0.5 * self.f(0.0, 1.0))) as f32 as f64).collect();
        for i in (1..n).rev() {
            v.swap(i, self.usize(0, i));
        }
        v
    }
    pub fn pick<T: Clone>(&mut self, xs: &[T]) -> T {
        xs[self.usize(0, xs.len() - 1)].clone()
    }
    pub fn shape(&mut self, min_rank: usize, max_rank: usize, max_dim: usize) -> Vec<usize> {
        let r = self.usize(min_rank, max_rank);
        (0..r).map(|_| self.usize(1, max_dim)).collect()
    }
}

pub enum Inp {
    /// A float input (in the graph's float dtype) with its values.
    Float(Vec<usize>, Vec<f64>),
    /// A non-float input (indices, conditions).
    Other(DType, Vec<usize>, Vec<i64>),
}

pub type Build = Box<dyn Fn(&mut GraphBuilder, &[ValueId]) -> Result<Vec<ValueId>, IrError>>;

pub struct Case {
    pub name: String,
    pub inputs: Vec<Inp>,
    pub build: Build,
}

impl Case {
    pub fn new(
        name: impl Into<String>,
        inputs: Vec<Inp>,
        build: impl Fn(&mut GraphBuilder, &[ValueId]) -> Result<Vec<ValueId>, IrError> + 'static,
    ) -> Case {
        Case { name: name.into(), inputs, build: Box::new(build) }
    }
}

pub fn f(shape: &[usize], values: Vec<f64>) -> Inp {
    Inp::Float(shape.to_vec(), values)
}

pub fn idx(shape: &[usize], values: Vec<i64>) -> Inp {
    Inp::Other(DType::I64, shape.to_vec(), values)
}

pub fn dims(shape: &[usize]) -> Vec<Dim> {
    shape.iter().map(|&d| Dim::from(d)).collect()
}

/// The forward graph of a case in `dtype`: its results weighted by fixed random tensors and
/// summed into a scalar loss (the last output). Returns the graph and the float inputs' ids.
fn forward(case: &Case, dtype: DType, weights_seed: u64) -> Result<(nnc_ir::Graph, Vec<ValueId>), String> {
    let mut b = GraphBuilder::new("case");
    let mut ids = Vec::new();
    let mut float_ids = Vec::new();
    for (i, inp) in case.inputs.iter().enumerate() {
        let id = match inp {
            Inp::Float(s, _) => {
                let id = b.input(&format!("in{i}"), dtype, dims(s)).map_err(|e| e.to_string())?;
                float_ids.push(id);
                id
            }
            Inp::Other(dt, s, _) => b.input(&format!("in{i}"), *dt, dims(s)).map_err(|e| e.to_string())?,
        };
        ids.push(id);
    }
    let outs = (case.build)(&mut b, &ids).map_err(|e| format!("{}: build: {e}", case.name))?;
    let mut rng = Gen::new(weights_seed);
    let mut total: Option<ValueId> = None;
    for o in outs {
        let t = b.ty(o).clone();
        if !t.dtype.is_float() {
            continue;
        }
        let o = if t.dtype == dtype { o } else { b.cast(o, dtype).unwrap() };
        let shape: Vec<usize> = t.shape.iter().map(|d| d.as_usize().unwrap()).collect();
        let w = rng.vals(&shape, -1.0, 1.0);
        let w = b.constant(TensorData::from_f64(dtype, shape, &w));
        let p = b.mul(o, w).unwrap();
        let axes: Vec<i64> = (0..t.rank() as i64).collect();
        let s = b.reduce_sum(p, &axes, false).unwrap();
        total = Some(match total {
            Some(acc) => b.add(acc, s).unwrap(),
            None => s,
        });
    }
    let loss = total.ok_or_else(|| format!("{}: no float result", case.name))?;
    b.output(loss);
    let g = b.finish().map_err(|e| e.to_string())?;
    // After finish, values are renumbered: find the float inputs by name.
    let float_ids = float_ids.iter().map(|&id| id_by_input_position(&g, &ids, id)).collect();
    Ok((g, float_ids))
}

fn id_by_input_position(g: &nnc_ir::Graph, ids: &[ValueId], id: ValueId) -> ValueId {
    let pos = ids.iter().position(|&x| x == id).unwrap();
    g.inputs[pos]
}

fn tensors(case: &Case, dtype: DType) -> Vec<TensorData> {
    case.inputs
        .iter()
        .map(|inp| match inp {
            Inp::Float(s, v) => TensorData::from_f64(dtype, s.clone(), v),
            Inp::Other(dt, s, v) => TensorData::from_i64(*dt, s.clone(), v),
        })
        .collect()
}

/// Checks every float input's gradient against central differences (f64 forward), for the
/// gradient graph in f64 (tight) and in f32 (loose).
pub fn check(case: &Case) -> Result<(), String> {
    check_with(case, 1.0)
}

pub fn check_with(case: &Case, tol_scale: f64) -> Result<(), String> {
    let seed = case.name.bytes().fold(7u64, |a, c| a.wrapping_mul(31).wrapping_add(c as u64));
    let (fwd, _) = forward(case, DType::F64, seed)?;
    // Finite differences in f64.
    let base = tensors(case, DType::F64);
    let h = 1e-5;
    let mut fds: Vec<Vec<f64>> = Vec::new();
    let run_loss = |inputs: &[TensorData]| -> Result<f64, String> {
        let out = nnc_interp::run(&fwd, inputs).map_err(|e| format!("{}: forward run: {e}", case.name))?;
        Ok(out.last().unwrap().to_f64_vec()[0])
    };
    for (i, inp) in case.inputs.iter().enumerate() {
        let Inp::Float(s, v) = inp else { continue };
        let mut fd = Vec::with_capacity(v.len());
        for k in 0..v.len() {
            let mut plus = base.clone();
            let mut vp = v.clone();
            vp[k] += h;
            plus[i] = TensorData::from_f64(DType::F64, s.clone(), &vp);
            let mut minus = base.clone();
            let mut vm = v.clone();
            vm[k] -= h;
            minus[i] = TensorData::from_f64(DType::F64, s.clone(), &vm);
            fd.push((run_loss(&plus)? - run_loss(&minus)?) / (2.0 * h));
        }
        fds.push(fd);
    }
    for (dtype, rtol, atol) in [(DType::F64, 1e-5, 1e-6), (DType::F32, 2e-3, 2e-3)] {
        let (g, wrt) = forward(case, dtype, seed)?;
        let loss = *g.outputs.last().unwrap();
        let gg = grad(&g, loss, &wrt).map_err(|e| format!("{}: grad: {e}", case.name))?;
        let out = nnc_interp::run(&gg, &tensors(case, dtype))
            .map_err(|e| format!("{}: grad run ({dtype}): {e}", case.name))?;
        let n = out.len();
        let grads = &out[n - wrt.len()..];
        let scale = fds.iter().flatten().fold(1.0f64, |m, v| m.max(v.abs()));
        for (j, (gr, fd)) in grads.iter().zip(&fds).enumerate() {
            let gr = gr.to_f64_vec();
            for (k, (&a, &e)) in gr.iter().zip(fd).enumerate() {
                let tol = tol_scale * (atol * scale + rtol * e.abs());
                let ok = (a - e).abs() <= tol;
                if !ok {
                    return Err(format!(
                        "{} ({dtype}): d loss / d input {j} [{k}] = {a}, finite differences give {e} (tolerance {tol})\n{}",
                        case.name,
                        nnc_ir::text::print(&gg)
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Runs every case, collecting failures.
pub fn check_all(cases: Vec<Case>) -> Result<(), String> {
    if std::env::var("AD_VERBOSE").is_ok() {
        for c in &cases {
            eprintln!("case {}", c.name);
        }
    }
    let errors: Vec<String> = cases.iter().filter_map(|c| check(c).err()).collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("\n\n"))
    }
}

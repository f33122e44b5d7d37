//! Contractions and windows: `matmul`, `conv`, `max_pool`/`avg_pool`.
//!
//! - `matmul` is numpy's: the last two axes multiply, leading axes broadcast; a 1-D left operand
//!   is a row vector and a 1-D right operand a column vector, their promoted axis dropped from
//!   the result. Floats accumulate in `f64` (rounded once per result element), integers in
//!   wrapping `i64`.
//! - `conv` is ONNX's `Conv` without bias: input `[N, C, S..]`, weight `[M, C/groups, K..]`,
//!   output `[N, M, O..]` with `O = floor((S + pads - dilation*(K-1) - 1) / stride) + 1`;
//!   padding reads zeros (so it contributes `0 * w`). Sums accumulate in `f64` in the order of
//!   the weight's `(c, k..)` elements. It runs as im2col plus a register-blocked dot product,
//!   in output-position chunks so the scratch buffer stays small.
//! - `conv_transpose` is ONNX's `ConvTranspose` without bias: input `[N, C, S..]`, weight
//!   `[C, M/groups, K..]`; each input element times each kernel tap adds into output position
//!   `i*stride - pad_begin + k*dilation` (dropped outside the output), in `f64`, rounded once.
//! - Pools: the same window geometry, `ceil_mode` as in shape inference (a last window that would
//!   start in the end padding is dropped). `max_pool` takes the maximum of the in-bounds elements
//!   (padding never wins; NaN propagates; a window with no input element gives `-inf`, or the
//!   dtype's minimum for integers). `avg_pool` divides the sum of the in-bounds elements by their
//!   count, or with `count_include_pad` by the count of window elements inside the padded input
//!   (input plus begin and end pads), so elements hanging past the end padding in `ceil_mode`
//!   never count, as in ONNX Runtime and PyTorch. Integer averages truncate. (`u64` compares and
//!   divides as `u64`.)

use crate::value::{
    broadcast_strides, for_each_offset, int_range, internal, strides, with_int, Data, Int, Value, FILL,
};
use nnc_ir::{PoolKind, Window};

// ---------------------------------------------------------------- matmul

/// `acc + a*b` in the accumulator type of a dtype class.
trait Mac: Copy {
    const ZERO: Self;
    fn mac(self, a: Self, b: Self) -> Self;
}

impl Mac for f64 {
    const ZERO: f64 = 0.0;
    fn mac(self, a: f64, b: f64) -> f64 {
        self + a * b
    }
}

impl Mac for i64 {
    const ZERO: i64 = 0;
    fn mac(self, a: i64, b: i64) -> i64 {
        self.wrapping_add(a.wrapping_mul(b))
    }
}

/// The geometry of a (possibly batched, possibly promoted) matmul.
struct MatMulShape {
    batch: Vec<usize>,
    a_batch_strides: Vec<usize>,
    b_batch_strides: Vec<usize>,
    m: usize,
    k: usize,
    n: usize,
}

fn matmul_shape(a: &[usize], b: &[usize]) -> Result<MatMulShape, String> {
    let sa: Vec<usize> = if a.len() == 1 { vec![1, a[0]] } else { a.to_vec() };
    let sb: Vec<usize> = if b.len() == 1 { vec![b[0], 1] } else { b.to_vec() };
    if sa.len() < 2 || sb.len() < 2 {
        return Err(internal("matmul of a scalar"));
    }
    let (ba, mk) = sa.split_at(sa.len() - 2);
    let (bb, kn) = sb.split_at(sb.len() - 2);
    let (m, k, k2, n) = (mk[0], mk[1], kn[0], kn[1]);
    if k != k2 {
        return Err(internal("matmul contraction mismatch"));
    }
    let rank = ba.len().max(bb.len());
    let dim = |s: &[usize], i: usize| if i + s.len() >= rank { s[i + s.len() - rank] } else { 1 };
    let batch: Vec<usize> = (0..rank).map(|i| dim(ba, i).max(dim(bb, i))).collect();
    let scale = |v: Vec<usize>, by: usize| v.into_iter().map(|s| s * by).collect::<Vec<_>>();
    Ok(MatMulShape {
        a_batch_strides: scale(broadcast_strides(ba, &batch)?, m * k),
        b_batch_strides: scale(broadcast_strides(bb, &batch)?, k * n),
        batch,
        m,
        k,
        n,
    })
}

fn matmul_kernel<T: Mac>(a: &[T], b: &[T], g: &MatMulShape) -> Vec<T> {
    let (m, k, n) = (g.m, g.k, g.n);
    let batches: usize = g.batch.iter().product();
    let mut out = vec![T::ZERO; batches * m * n];
    let mut rows = out.chunks_exact_mut(n.max(1));
    for_each_offset(&g.batch, [&g.a_batch_strides, &g.b_batch_strides], |[oa, ob]| {
        for i in 0..m {
            // Empty rows (n == 0) have no chunk; there is nothing to compute for them.
            let Some(acc) = rows.next() else { return };
            for p in 0..k {
                let av = a[oa + i * k + p];
                let brow = &b[ob + p * n..ob + (p + 1) * n];
                for (o, &bv) in acc.iter_mut().zip(brow) {
                    *o = o.mac(av, bv);
                }
            }
        }
    });
    out
}

pub fn matmul(a: &Value, b: &Value, out_shape: &[usize]) -> Result<Value, String> {
    let g = matmul_shape(&a.shape, &b.shape)?;
    match (&a.data, &b.data) {
        (Data::Float(x), Data::Float(y)) => Ok(Value::float(a.dtype, out_shape.to_vec(), matmul_kernel(x, y, &g))),
        (Data::Int(x), Data::Int(y)) => Ok(Value::int(a.dtype, out_shape.to_vec(), matmul_kernel(x, y, &g))),
        _ => Err(internal("matmul of non-numbers")),
    }
}

// ---------------------------------------------------------------- window geometry

/// For spatial axis `a`: where kernel tap `k` of output position `o` reads, as an offset in
/// the input plane (`coord * stride`), or [`FILL`] if it falls in the padding; plus how many
/// taps of each output position lie inside the padded input.
struct AxisTaps {
    kernel: usize,
    out_len: usize,
    /// `offsets[k * out_len + o]`
    offsets: Vec<usize>,
    /// Per output position, taps inside `[-pad_begin, len + pad_end)`.
    padded_count: Vec<usize>,
}

fn axis_taps(
    len: usize,
    plane_stride: usize,
    kernel: usize,
    out_len: usize,
    window: &Window,
    axis: usize,
) -> Result<AxisTaps, String> {
    let n = window.strides.len();
    let get = |v: &[i64], i: usize| v.get(i).map(|&x| x as i128).ok_or_else(|| internal("window lists too short"));
    let (stride, dil) = (get(&window.strides, axis)?, get(&window.dilations, axis)?);
    let (pb, pe) = (get(&window.pads, axis)?, get(&window.pads, axis + n)?);
    let len_i = len as i128;
    let mut offsets = Vec::with_capacity(kernel * out_len);
    for k in 0..kernel as i128 {
        for o in 0..out_len as i128 {
            let i = o * stride - pb + k * dil;
            offsets.push(if (0..len_i).contains(&i) { i as usize * plane_stride } else { FILL });
        }
    }
    let padded_count = (0..out_len as i128)
        .map(|o| (0..kernel as i128).filter(|k| (-pb..len_i + pe).contains(&(o * stride - pb + k * dil))).count())
        .collect();
    Ok(AxisTaps { kernel, out_len, offsets, padded_count })
}

/// The per-axis taps of a window over the spatial axes of an `[N, C, S..]` input.
fn window_taps(
    in_shape: &[usize],
    kernel: &[usize],
    out_spatial: &[usize],
    window: &Window,
) -> Result<Vec<AxisTaps>, String> {
    let spatial = in_shape.get(2..).ok_or_else(|| internal("window input rank"))?;
    let plane_strides = strides(spatial);
    (0..spatial.len())
        .map(|a| match (kernel.get(a), out_spatial.get(a)) {
            (Some(&k), Some(&o)) => axis_taps(spatial[a], plane_strides[a], k, o, window, a),
            _ => Err(internal("window lists of different lengths")),
        })
        .collect()
}

/// Row-major coordinates of flat index `t` in `shape`, written into `coords`.
fn unravel(mut t: usize, shape: &[usize], coords: &mut [usize]) {
    for (c, &d) in coords.iter_mut().zip(shape).rev() {
        *c = t % d.max(1);
        t /= d.max(1);
    }
}

// ---------------------------------------------------------------- conv

/// Output positions per im2col chunk are chosen so the chunk holds about this many elements.
const CHUNK_ELEMENTS: usize = 1 << 16;

/// `out[t] = dot(w_row, col[t])` for every row of `w` (`rows x r`) and every column of `col`
/// (`cols x r`), writing `out[row * out_stride + t]`. Blocks of 4 rows x 2 columns keep eight
/// sums in registers.
fn dot_rows(w: &[f64], col: &[f64], r: usize, out: &mut [f64], out_stride: usize) {
    if r == 0 {
        return; // every sum is empty: `out` already holds zeros
    }
    let (rows, cols) = (w.len() / r, col.len() / r);
    let row = |i: usize| &w[i * r..(i + 1) * r];
    let column = |t: usize| &col[t * r..(t + 1) * r];
    let mut t = 0;
    while t + 2 <= cols {
        let (x0, x1) = (column(t), column(t + 1));
        let mut i = 0;
        while i + 4 <= rows {
            let (w0, w1, w2, w3) = (row(i), row(i + 1), row(i + 2), row(i + 3));
            let mut s = [0.0f64; 8];
            for (((((&a, &b), &p), &q), &u), &v) in x0.iter().zip(x1).zip(w0).zip(w1).zip(w2).zip(w3) {
                s[0] += p * a;
                s[1] += p * b;
                s[2] += q * a;
                s[3] += q * b;
                s[4] += u * a;
                s[5] += u * b;
                s[6] += v * a;
                s[7] += v * b;
            }
            for j in 0..4 {
                out[(i + j) * out_stride + t] = s[2 * j];
                out[(i + j) * out_stride + t + 1] = s[2 * j + 1];
            }
            i += 4;
        }
        for i in i..rows {
            let (mut s0, mut s1) = (0.0, 0.0);
            for ((&a, &b), &p) in x0.iter().zip(x1).zip(row(i)) {
                s0 += p * a;
                s1 += p * b;
            }
            out[i * out_stride + t] = s0;
            out[i * out_stride + t + 1] = s1;
        }
        t += 2;
    }
    for t in t..cols {
        let x = column(t);
        for i in 0..rows {
            out[i * out_stride + t] = x.iter().zip(row(i)).fold(0.0, |s, (&a, &p)| s + p * a);
        }
    }
}

pub fn conv(x: &Value, w: &Value, window: &Window, groups: i64, out_shape: &[usize]) -> Result<Value, String> {
    let (xs, ws) = (x.floats()?, w.floats()?);
    let (&[n_batch, c_in, ..], &[m_out, c_group, ..]) = (x.shape.as_slice(), w.shape.as_slice()) else {
        return Err(internal("conv operand rank"));
    };
    let groups = usize::try_from(groups).map_err(|_| internal("conv groups"))?;
    if groups == 0 || m_out % groups != 0 || c_in != c_group * groups {
        return Err(internal("conv channel counts"));
    }
    let m_group = m_out / groups;
    let kernel = &w.shape[2..];
    let out_spatial = out_shape.get(2..).ok_or_else(|| internal("conv output rank"))?;
    let taps = window_taps(&x.shape, kernel, out_spatial, window)?;
    let plane: usize = x.shape[2..].iter().product();
    let kp: usize = kernel.iter().product();
    let p: usize = out_spatial.iter().product();
    let r = c_group * kp;
    let d = kernel.len();

    // Per kernel tap, its coordinate on each spatial axis.
    let mut kcoords = vec![0usize; kp * d];
    for (t, c) in kcoords.chunks_exact_mut(d.max(1)).enumerate().take(kp) {
        unravel(t, kernel, c);
    }

    let mut out = vec![0.0f64; n_batch * m_out * p];
    let chunk = (CHUNK_ELEMENTS / r.max(1)).clamp(2, p.max(2));
    let mut col = vec![0.0f64; chunk * r];
    let mut ocoords = vec![0usize; d];
    for nb in 0..n_batch {
        for g in 0..groups {
            let x_base = (nb * c_in + g * c_group) * plane;
            let w_group = &ws[g * m_group * r..(g + 1) * m_group * r];
            let out_base = (nb * m_out + g * m_group) * p;
            for t0 in (0..p).step_by(chunk) {
                let t1 = (t0 + chunk).min(p);
                // im2col: col[(t - t0) * r + c * kp + k] = x[c, input position of tap k at t].
                for t in t0..t1 {
                    unravel(t, out_spatial, &mut ocoords);
                    let dst = &mut col[(t - t0) * r..(t - t0 + 1) * r];
                    for k in 0..kp {
                        let mut off = 0usize;
                        for (a, tap) in taps.iter().enumerate() {
                            let o = tap.offsets[kcoords[k * d + a] * tap.out_len + ocoords[a]];
                            if o == FILL {
                                off = FILL;
                                break;
                            }
                            off += o;
                        }
                        for c in 0..c_group {
                            dst[c * kp + k] = if off == FILL { 0.0 } else { xs[x_base + c * plane + off] };
                        }
                    }
                }
                let cols = &col[..(t1 - t0) * r];
                dot_rows(w_group, cols, r, &mut out[out_base + t0..], p);
            }
        }
    }
    Ok(Value::float(x.dtype, out_shape.to_vec(), out))
}

/// `conv_transpose`: every input element, times every kernel tap, adds into the output
/// position `i*s - p_b + k*d` (per spatial axis) of each output channel of its group. Sums
/// accumulate in `f64` and are rounded once.
pub fn conv_transpose(
    x: &Value,
    w: &Value,
    window: &Window,
    groups: i64,
    out_shape: &[usize],
) -> Result<Value, String> {
    let (xs, ws) = (x.floats()?, w.floats()?);
    let (&[n_batch, c_in, ..], &[c_w, m_group, ..]) = (x.shape.as_slice(), w.shape.as_slice()) else {
        return Err(internal("conv_transpose operand rank"));
    };
    let groups = usize::try_from(groups).map_err(|_| internal("conv_transpose groups"))?;
    if groups == 0 || c_in % groups != 0 || c_in != c_w {
        return Err(internal("conv_transpose channel counts"));
    }
    let (c_group, m_out) = (c_in / groups, m_group * groups);
    let kernel = &w.shape[2..];
    let in_spatial = &x.shape[2..];
    let out_spatial = out_shape.get(2..).ok_or_else(|| internal("conv_transpose output rank"))?;
    let d = kernel.len();
    if in_spatial.len() != d || out_spatial.len() != d || window.strides.len() != d || window.pads.len() != 2 * d {
        return Err(internal("conv_transpose window lists"));
    }
    let (plane, kp, p) =
        (in_spatial.iter().product::<usize>(), kernel.iter().product::<usize>(), out_spatial.iter().product::<usize>());
    let out_strides = strides(out_spatial);
    let mut kcoords = vec![0usize; kp * d];
    for (k, c) in kcoords.chunks_exact_mut(d.max(1)).enumerate().take(kp) {
        unravel(k, kernel, c);
    }
    // The output offset of tap k of input position t (coordinates ic), or FILL.
    let target = |ic: &[usize], k: usize| -> usize {
        let mut off = 0usize;
        for a in 0..d {
            let o = ic[a] as i128 * window.strides[a] as i128 - window.pads[a] as i128
                + kcoords[k * d + a] as i128 * window.dilations[a] as i128;
            if !(0..out_spatial[a] as i128).contains(&o) {
                return FILL;
            }
            off += o as usize * out_strides[a];
        }
        off
    };
    let mut ic = vec![0usize; d];
    let mut out = vec![0.0f64; n_batch * m_out * p];
    for nb in 0..n_batch {
        for g in 0..groups {
            let out_base = (nb * m_out + g * m_group) * p;
            for c in g * c_group..(g + 1) * c_group {
                let x_plane = &xs[(nb * c_in + c) * plane..(nb * c_in + c + 1) * plane];
                let w_c = &ws[c * m_group * kp..(c + 1) * m_group * kp];
                for (t, &xv) in x_plane.iter().enumerate() {
                    unravel(t, in_spatial, &mut ic);
                    for k in 0..kp {
                        let o = target(&ic, k);
                        if o == FILL {
                            continue;
                        }
                        for m in 0..m_group {
                            out[out_base + m * p + o] += xv * w_c[m * kp + k];
                        }
                    }
                }
            }
        }
    }
    Ok(Value::float(x.dtype, out_shape.to_vec(), out))
}

// ---------------------------------------------------------------- pools

/// Fills `buf` with the plane offsets of the in-bounds taps of the window at `ocoords`.
fn window_offsets(taps: &[AxisTaps], ocoords: &[usize], buf: &mut Vec<usize>, scratch: &mut Vec<usize>) {
    buf.clear();
    buf.push(0);
    for (tap, &o) in taps.iter().zip(ocoords) {
        scratch.clear();
        for &base in buf.iter() {
            for k in 0..tap.kernel {
                let off = tap.offsets[k * tap.out_len + o];
                if off != FILL {
                    scratch.push(base + off);
                }
            }
        }
        std::mem::swap(buf, scratch);
    }
}

/// Called per output position `t` with the window's in-bounds plane offsets and padded count.
type WindowFn<'a> = dyn FnMut(usize, &[usize], usize) -> Result<(), String> + 'a;

/// The windows of a pooling op over an `[N, C, spatial...]` input.
struct PoolWindows {
    taps: Vec<AxisTaps>,
    out_spatial: Vec<usize>,
    /// `N * C`: the planes the windows slide over independently.
    planes: usize,
    /// Elements per input plane.
    plane: usize,
    /// Output positions per plane.
    positions: usize,
}

impl PoolWindows {
    fn new(x: &Value, kernel: &[i64], window: &Window, out_shape: &[usize]) -> Result<PoolWindows, String> {
        let kernel: Vec<usize> = kernel
            .iter()
            .map(|&k| usize::try_from(k).map_err(|_| internal("pool kernel")))
            .collect::<Result<_, _>>()?;
        let out_spatial = out_shape.get(2..).ok_or_else(|| internal("pool output rank"))?.to_vec();
        let taps = window_taps(&x.shape, &kernel, &out_spatial, window)?;
        Ok(PoolWindows {
            taps,
            planes: x.shape.iter().take(2).product(),
            plane: x.shape[2..].iter().product(),
            positions: out_spatial.iter().product(),
            out_spatial,
        })
    }

    /// Calls `f` for every output position with the window's in-bounds plane offsets and
    /// padded count.
    fn for_each(&self, f: &mut WindowFn<'_>) -> Result<(), String> {
        let mut ocoords = vec![0usize; self.out_spatial.len()];
        let (mut buf, mut scratch) = (Vec::new(), Vec::new());
        for t in 0..self.positions {
            unravel(t, &self.out_spatial, &mut ocoords);
            window_offsets(&self.taps, &ocoords, &mut buf, &mut scratch);
            let padded: usize = self.taps.iter().zip(&ocoords).map(|(tap, &o)| tap.padded_count[o]).product();
            f(t, &buf, padded)?;
        }
        Ok(())
    }
}

pub fn pool(
    kind: PoolKind,
    x: &Value,
    kernel: &[i64],
    window: &Window,
    count_include_pad: bool,
    out_shape: &[usize],
) -> Result<Value, String> {
    let w = PoolWindows::new(x, kernel, window, out_shape)?;
    let (planes, plane, p) = (w.planes, w.plane, w.positions);
    match &x.data {
        Data::Float(v) => {
            let mut out = vec![0.0f64; planes * p];
            w.for_each(&mut |t, offs, padded| {
                for pl in 0..planes {
                    let src = &v[pl * plane..(pl + 1) * plane];
                    out[pl * p + t] = match kind {
                        PoolKind::Max => offs.iter().fold(f64::NEG_INFINITY, |m, &o| {
                            let e = src[o];
                            if m.is_nan() || e.is_nan() {
                                f64::NAN
                            } else {
                                m.max(e)
                            }
                        }),
                        PoolKind::Avg => {
                            let sum: f64 = offs.iter().map(|&o| src[o]).sum();
                            sum / if count_include_pad { padded } else { offs.len() } as f64
                        }
                    };
                }
                Ok(())
            })?;
            Ok(Value::float(x.dtype, out_shape.to_vec(), out))
        }
        Data::Int(v) => {
            let out = with_int!(x.dtype, T => {
                let (min, _) = int_range::<T>(x.dtype);
                let mut out = vec![0i64; planes * p];
                w.for_each(&mut |t, offs, padded| {
                    for pl in 0..planes {
                        let src = |o: usize| T::from_held(v[pl * plane + o]);
                        let r = match kind {
                            PoolKind::Max => offs.iter().fold(min, |m, &o| m.max(src(o))),
                            PoolKind::Avg => {
                                let sum = offs.iter().fold(<T as Int>::ZERO, |s, &o| s.add(src(o)));
                                let count = if count_include_pad { padded } else { offs.len() };
                                if count == 0 {
                                    return Err(
                                        "avg_pool window with no input elements (integer division by zero)".into()
                                    );
                                }
                                sum.div(T::from_count(count))
                            }
                        };
                        out[pl * p + t] = r.held();
                    }
                    Ok(())
                })?;
                out
            });
            Ok(Value::int(x.dtype, out_shape.to_vec(), out))
        }
        Data::Bool(_) => Err(internal("pool of bool")),
    }
}

/// The flat input index of each max-pool window's first maximum (NaN never wins; a window of
/// only NaNs or of no input elements points at its first in-bounds element, or is an error).
pub fn argmax_pool(x: &Value, kernel: &[i64], window: &Window, out_shape: &[usize]) -> Result<Value, String> {
    let w = PoolWindows::new(x, kernel, window, out_shape)?;
    let (planes, plane, p) = (w.planes, w.plane, w.positions);
    let mut out = vec![0i64; planes * p];
    // The first offset whose value beats every earlier one under `greater`.
    fn first_max(offs: &[usize], greater: impl Fn(usize, usize) -> bool) -> Option<usize> {
        offs.iter().copied().fold(None, |best, o| match best {
            Some(b) if !greater(o, b) => Some(b),
            _ => Some(o),
        })
    }
    let mut record = |pl: usize, t: usize, best: Option<usize>| -> Result<(), String> {
        let o = best.ok_or("argmax_pool window with no input elements")?;
        out[pl * p + t] = i64::try_from(pl * plane + o).map_err(|_| internal("argmax_pool index"))?;
        Ok(())
    };
    match &x.data {
        Data::Float(v) => w.for_each(&mut |t, offs, _| {
            for pl in 0..planes {
                let src = &v[pl * plane..(pl + 1) * plane];
                let valid: Vec<usize> = offs.iter().copied().filter(|&o| !src[o].is_nan()).collect();
                let pick = if valid.is_empty() { offs } else { &valid };
                record(pl, t, first_max(pick, |a, b| src[a] > src[b]))?;
            }
            Ok(())
        })?,
        Data::Int(v) => with_int!(x.dtype, T => {
            w.for_each(&mut |t, offs, _| {
                for pl in 0..planes {
                    let src = |o: usize| T::from_held(v[pl * plane + o]);
                    record(pl, t, first_max(offs, |a, b| src(a) > src(b)))?;
                }
                Ok(())
            })?
        }),
        Data::Bool(_) => return Err(internal("argmax_pool of bool")),
    }
    Ok(Value::int(nnc_ir::DType::I64, out_shape.to_vec(), out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nnc_ir::DType;

    #[test]
    fn conv_transpose_scatters_each_input_through_the_kernel() {
        let x = Value::float(DType::F32, vec![1, 1, 3], vec![1.0, 2.0, 3.0]);
        let w = Value::float(DType::F32, vec![1, 1, 2], vec![1.0, 10.0]);
        let r = conv_transpose(&x, &w, &win(&[2], &[1], &[0, 0]), 1, &[1, 1, 6]).unwrap();
        assert_eq!(r.floats().unwrap(), [1.0, 10.0, 2.0, 20.0, 3.0, 30.0]);
        // Overlapping taps add; a begin pad crops the start, and a longer output is zero there.
        let r = conv_transpose(&x, &w, &win(&[1], &[1], &[1, 0]), 1, &[1, 1, 4]).unwrap();
        assert_eq!(r.floats().unwrap(), [12.0, 23.0, 30.0, 0.0]);
        // Two groups of one channel each, two output channels per group.
        let x = Value::float(DType::F32, vec![1, 2, 1], vec![1.0, 2.0]);
        let w = Value::float(DType::F32, vec![2, 2, 1], vec![1.0, 2.0, 3.0, 4.0]);
        let r = conv_transpose(&x, &w, &win(&[1], &[1], &[0, 0]), 2, &[1, 4, 1]).unwrap();
        assert_eq!(r.floats().unwrap(), [1.0, 2.0, 6.0, 8.0]);
    }

    #[test]
    fn argmax_pool_gives_flat_input_indices_first_on_ties() {
        // Two planes of [1, 4]; windows of 2 with stride 2.
        let x = Value::float(DType::F32, vec![1, 2, 4], vec![1.0, 3.0, 3.0, 2.0, 5.0, f64::NAN, 0.0, 0.0]);
        let w = win(&[2], &[1], &[0, 0]);
        let r = argmax_pool(&x, &[2], &w, &[1, 2, 2]).unwrap();
        let Data::Int(idx) = &r.data else { panic!("indices are integers") };
        assert_eq!(idx, &[1, 2, 4, 6]);
    }

    fn f(shape: &[usize], v: &[f64]) -> Value {
        Value::float(DType::F64, shape.to_vec(), v.to_vec())
    }

    fn range(shape: &[usize]) -> Value {
        let n: usize = shape.iter().product();
        f(shape, &(0..n).map(|i| i as f64).collect::<Vec<_>>())
    }

    fn win(strides: &[i64], dilations: &[i64], pads: &[i64]) -> Window {
        Window { strides: strides.to_vec(), dilations: dilations.to_vec(), pads: pads.to_vec() }
    }

    #[test]
    fn matmul_promotes_and_broadcasts() {
        let a = range(&[2, 3]);
        let b = range(&[3, 2]);
        assert_eq!(matmul(&a, &b, &[2, 2]).unwrap().floats().unwrap(), [10.0, 13.0, 28.0, 40.0]);
        let v = f(&[3], &[1.0, 1.0, 1.0]);
        assert_eq!(matmul(&v, &b, &[2]).unwrap().floats().unwrap(), [6.0, 9.0]);
        assert_eq!(matmul(&a, &v, &[2]).unwrap().floats().unwrap(), [3.0, 12.0]);
        assert_eq!(matmul(&v, &v, &[]).unwrap().floats().unwrap(), [3.0]);
        // [2, 1, 1, 3] x [2, 3, 1] -> [2, 2, 1, 1]
        let a = range(&[2, 1, 1, 3]);
        let b = range(&[2, 3, 1]);
        let r = matmul(&a, &b, &[2, 2, 1, 1]).unwrap();
        assert_eq!(r.floats().unwrap(), [5.0, 14.0, 14.0, 50.0]);
        let e = matmul(&range(&[2, 0]), &range(&[0, 3]), &[2, 3]).unwrap();
        assert_eq!(e.floats().unwrap(), [0.0; 6]);
        assert!(matmul(&range(&[2, 3]), &range(&[3, 0]), &[2, 0]).unwrap().floats().unwrap().is_empty());
    }

    #[test]
    fn conv_1d_with_padding_stride_dilation() {
        // x = [0, 1, 2, 3, 4], w = [1, 10], dilation 2, pads 1/1, stride 2.
        let x = range(&[1, 1, 5]);
        let w = f(&[1, 1, 2], &[1.0, 10.0]);
        // padded: [p, 0, 1, 2, 3, 4, p]; taps at i and i+2: starts -1, 1, 3 -> out len 3.
        let r = conv(&x, &w, &win(&[2], &[2], &[1, 1]), 1, &[1, 1, 3]).unwrap();
        assert_eq!(r.floats().unwrap(), [10.0, 1.0 + 30.0, 3.0]);
    }

    #[test]
    fn grouped_conv_2d() {
        // Two groups of one channel each, two output channels per group.
        let x = range(&[1, 2, 3, 3]);
        let w = f(&[4, 1, 2, 2], &[1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, -1.0, 0.0, 0.0, 0.0]);
        let r = conv(&x, &w, &win(&[1, 1], &[1, 1], &[0, 0, 0, 0]), 2, &[1, 4, 2, 2]).unwrap();
        let ch1: Vec<f64> = (9..18).map(|i| i as f64).collect();
        let sum4 = |i: usize, j: usize| ch1[i * 3 + j] + ch1[i * 3 + j + 1] + ch1[i * 3 + j + 3] + ch1[i * 3 + j + 4];
        assert_eq!(
            r.floats().unwrap(),
            [
                0.0,
                1.0,
                3.0,
                4.0,
                4.0,
                5.0,
                7.0,
                8.0,
                sum4(0, 0),
                sum4(0, 1),
                sum4(1, 0),
                sum4(1, 1),
                -9.0,
                -10.0,
                -12.0,
                -13.0
            ]
        );
    }

    #[test]
    fn max_pool_padding_never_wins() {
        let x = f(&[1, 1, 3], &[-5.0, -2.0, -7.0]);
        let r = pool(PoolKind::Max, &x, &[2], &win(&[1], &[1], &[1, 1]), false, &[1, 1, 4]).unwrap();
        assert_eq!(r.floats().unwrap(), [-5.0, -2.0, -2.0, -7.0]);
    }

    #[test]
    fn avg_pool_ceil_mode_divisors() {
        // Length 5, kernel 2, stride 2, pads 1/0, ceil_mode: padded length 6,
        // windows start at -1, 1, 3 and 5 would start past the input... shape inference gives 3.
        let x = f(&[1, 1, 5], &[1.0, 2.0, 3.0, 4.0, 5.0]);
        let w = win(&[2], &[1], &[1, 0]);
        let ex = pool(PoolKind::Avg, &x, &[2], &w, false, &[1, 1, 3]).unwrap();
        assert_eq!(ex.floats().unwrap(), [1.0, 2.5, 4.5]);
        let inc = pool(PoolKind::Avg, &x, &[2], &w, true, &[1, 1, 3]).unwrap();
        assert_eq!(inc.floats().unwrap(), [0.5, 2.5, 4.5]);
        // Length 4, kernel 3, stride 2, no pads, ceil_mode: windows [0,3) and [2,5): the second
        // hangs one element past the end, which never counts.
        let x = f(&[1, 1, 4], &[1.0, 2.0, 3.0, 4.0]);
        let w = win(&[2], &[1], &[0, 0]);
        for include in [false, true] {
            let r = pool(PoolKind::Avg, &x, &[3], &w, include, &[1, 1, 2]).unwrap();
            assert_eq!(r.floats().unwrap(), [2.0, 3.5]);
        }
    }

    #[test]
    fn dilated_max_pool_2d_and_int_avg() {
        let x = range(&[1, 1, 4, 4]);
        let r = pool(PoolKind::Max, &x, &[2, 2], &win(&[1, 1], &[2, 2], &[0, 0, 0, 0]), false, &[1, 1, 2, 2]).unwrap();
        assert_eq!(r.floats().unwrap(), [10.0, 11.0, 14.0, 15.0]);
        let xi = Value::int(DType::I32, vec![1, 1, 3], vec![1, 2, 4]);
        let r = pool(PoolKind::Avg, &xi, &[2], &win(&[1], &[1], &[0, 0]), false, &[1, 1, 2]).unwrap();
        assert_eq!(r.ints().unwrap(), [1, 3]);
    }

    #[test]
    fn u64_pools_compare_and_divide_unsigned() {
        let top = 1u64 << 63;
        let t = nnc_ir::TensorData::from_vec(vec![1, 1, 3], &[top, 2u64, u64::MAX]);
        let x = Value::from_tensor(&t);
        let w = win(&[1], &[1], &[0, 0]);
        let u64s = |v: Value| v.to_tensor().unwrap().to_vec::<u64>().unwrap();
        assert_eq!(u64s(pool(PoolKind::Max, &x, &[2], &w, false, &[1, 1, 2]).unwrap()), [top, u64::MAX]);
        // Sums wrap: (2 + 2^64 - 1) mod 2^64 = 1.
        assert_eq!(u64s(pool(PoolKind::Avg, &x, &[2], &w, false, &[1, 1, 2]).unwrap()), [top / 2 + 1, 0]);
        let xi = Value::int(DType::I16, vec![1, 1, 2], vec![-5, -7]);
        let r = pool(PoolKind::Max, &xi, &[1], &win(&[1], &[1], &[1, 0]), false, &[1, 1, 3]).unwrap();
        assert_eq!(r.ints().unwrap(), [-32768, -5, -7]);
    }
}

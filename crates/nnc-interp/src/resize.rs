//! `resize`: ONNX `Resize` with static sizes, one axis at a time.
//!
//! For each resized axis (input length `L`, output length `O`, scale `s`) every output position
//! `o` maps to an input coordinate `x` by the coordinate transformation mode, computed in `f64`
//! exactly as the ONNX reference does (with `out_w = s * L`, which need not equal `O`):
//!
//! - `half_pixel`: `(o + 0.5) / s - 0.5`; `pytorch_half_pixel` the same, but `-0.5` when
//!   `out_w == 1`; `half_pixel_symmetric`: `L/2 * (1 - O/out_w) + (o + 0.5) / s - 0.5`;
//! - `align_corners`: `o * (L - 1) / (out_w - 1)`, `0` when `out_w == 1`;
//! - `asymmetric`: `o / s`;
//! - `tf_crop_and_resize` with `roi = (a, b)`: `o * (b - a) * (L - 1) / (out_w - 1) + a * (L - 1)`
//!   (`(b - a) * (L - 1) / 2 + a * (L - 1)` when `out_w == 1`); a coordinate outside
//!   `[0, L - 1]` makes every output element at `o` the extrapolation value.
//!
//! With `f = floor(x)` and `r = x - f` (when `x` is an integer, `f = x - 1` and `r = 1`), the
//! taps are `n` consecutive input positions starting at `f - n/2 + 1`, with weights: `linear`
//! `[1 - r, r]`; `cubic` Keys' kernel with `a = cubic_coeff_a` at distances `r + 1, r, 1 - r,
//! 2 - r`; with `antialias` (downsampling, `s < 1`) the kernels stretched by `1/s` and
//! normalised to sum 1. `exclude_outside` zeroes the weights of taps outside `[0, L)` and
//! renormalises; otherwise such taps read the nearest edge element. `nearest` takes one tap:
//! `f + 1` if `r = 1`, else `f` or `f + 1` by `nearest_mode` (`round_prefer_floor`: `f` when
//! `r <= 0.5`; `round_prefer_ceil`: `f` when `r < 0.5`; `floor`; `ceil`), clamped to the axis.
//!
//! `nearest` copies elements (any dtype, exact). `linear`/`cubic` apply the axes one after
//! another in `f64` (taps of weight 0 are skipped, so an infinite neighbour with weight 0 does
//! not make a NaN), and round once at the end.

use crate::value::{internal, separable_offsets, strides, Value, FILL};
use nnc_ir::{CoordMode, NearestMode, ResizeAttrs, ResizeMode};

/// One axis's taps: `weights[o * n + t]` for input position `index[o * n + t]`.
struct AxisPlan {
    taps: usize,
    weights: Vec<f64>,
    index: Vec<usize>,
    extrapolated: Vec<bool>,
}

/// The input coordinate of output position `o`, and whether it lies outside the input
/// (`tf_crop_and_resize` only).
fn source_coordinate(
    r: &ResizeAttrs,
    o: usize,
    len: usize,
    out_len: usize,
    scale: f64,
    roi: (f64, f64),
) -> (f64, bool) {
    let (y, l) = (o as f64, len as f64);
    let out_w = scale * l;
    let x = match r.coordinate_transformation_mode {
        CoordMode::HalfPixel => (y + 0.5) / scale - 0.5,
        CoordMode::PytorchHalfPixel if out_w == 1.0 => -0.5,
        CoordMode::PytorchHalfPixel => (y + 0.5) / scale - 0.5,
        CoordMode::HalfPixelSymmetric => {
            let adjustment = out_len as f64 / out_w;
            let center = l / 2.0;
            center * (1.0 - adjustment) + (y + 0.5) / scale - 0.5
        }
        CoordMode::AlignCorners if out_w == 1.0 => 0.0,
        CoordMode::AlignCorners => y * (l - 1.0) / (out_w - 1.0),
        CoordMode::Asymmetric => y / scale,
        CoordMode::TfCropAndResize => {
            let (a, b) = roi;
            let x = if out_w == 1.0 { (b - a) * (l - 1.0) / 2.0 } else { y * (b - a) * (l - 1.0) / (out_w - 1.0) };
            let x = x + a * (l - 1.0);
            return (x, x < 0.0 || x > l - 1.0);
        }
    };
    (x, false)
}

/// Keys' cubic convolution kernel with parameter `a` at distance `x`.
fn cubic(a: f64, x: f64) -> f64 {
    let x = x.abs();
    if x <= 1.0 {
        ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a
    } else {
        0.0
    }
}

fn plan_axis(r: &ResizeAttrs, len: usize, out_len: usize, scale: f64, roi: (f64, f64)) -> Result<AxisPlan, String> {
    if len == 0 && out_len > 0 {
        return Err("cannot resize an empty axis to a non-empty one".into());
    }
    // Antialiasing widens the kernels when downsampling.
    let aa_scale = if r.antialias { scale.min(1.0) } else { 1.0 };
    // In f64, so a tiny scale gives a huge count (refused below), not an overflow.
    let taps = match r.mode {
        ResizeMode::Nearest => 1.0,
        ResizeMode::Linear if r.antialias => 2.0 - 2.0 * ((-1.0 / aa_scale).floor() + 1.0),
        ResizeMode::Cubic if r.antialias => 2.0 - 2.0 * ((-2.0 / aa_scale).floor() + 1.0),
        ResizeMode::Linear => 2.0,
        ResizeMode::Cubic => 4.0,
    };
    if taps > 4.0 * (len as f64 + 2.0) {
        return Err(format!("the antialiasing kernel ({taps} taps) is wider than the axis allows"));
    }
    let taps = taps as usize;
    let mut plan = AxisPlan {
        taps,
        weights: Vec::with_capacity(out_len * taps),
        index: Vec::with_capacity(out_len * taps),
        extrapolated: Vec::with_capacity(out_len),
    };
    let last = len as i64 - 1;
    let mut w = vec![0.0; taps];
    for o in 0..out_len {
        let (x, outside) = source_coordinate(r, o, len, out_len, scale, roi);
        plan.extrapolated.push(outside);
        let mut f = x.floor();
        let ratio = if x == f {
            f -= 1.0;
            1.0
        } else {
            x - f
        };
        let f = f as i64;
        if r.mode == ResizeMode::Nearest {
            let pick = ratio == 1.0
                || match r.nearest_mode {
                    NearestMode::RoundPreferFloor => ratio > 0.5,
                    NearestMode::RoundPreferCeil => ratio >= 0.5,
                    NearestMode::Floor => false,
                    NearestMode::Ceil => true,
                };
            let p = if pick { f.saturating_add(1) } else { f };
            plan.weights.push(1.0);
            plan.index.push(p.clamp(0, last.max(0)) as usize);
            continue;
        }
        let start = f.saturating_sub(taps as i64 / 2).saturating_add(1);
        match (r.mode, r.antialias) {
            (ResizeMode::Linear, false) => w.copy_from_slice(&[1.0 - ratio, ratio]),
            (ResizeMode::Cubic, false) => {
                // Keys' kernel at distances r + 1, r, 1 - r, 2 - r, written as ONNX's reference
                // writes it (so the f64 rounding agrees).
                let a = r.cubic_coeff_a;
                w[0] = ((a * (ratio + 1.0) - 5.0 * a) * (ratio + 1.0) + 8.0 * a) * (ratio + 1.0) - 4.0 * a;
                w[1] = ((a + 2.0) * ratio - (a + 3.0)) * ratio * ratio + 1.0;
                w[2] = ((a + 2.0) * (1.0 - ratio) - (a + 3.0)) * (1.0 - ratio) * (1.0 - ratio) + 1.0;
                w[3] = ((a * ((1.0 - ratio) + 1.0) - 5.0 * a) * ((1.0 - ratio) + 1.0) + 8.0 * a)
                    * ((1.0 - ratio) + 1.0)
                    - 4.0 * a;
            }
            (ResizeMode::Linear, true) => {
                let first = 1 - taps as i64 / 2;
                for (t, wt) in w.iter_mut().enumerate() {
                    let arg = ((first + t as i64) as f64 - ratio) * aa_scale;
                    *wt = (1.0 - arg.abs()).clamp(0.0, 1.0);
                }
                normalize(&mut w);
            }
            (ResizeMode::Cubic, true) => {
                let first = 1 - taps as i64 / 2;
                for (t, wt) in w.iter_mut().enumerate() {
                    *wt = cubic(r.cubic_coeff_a, aa_scale * ((first + t as i64) as f64 - ratio));
                }
                normalize(&mut w);
            }
            (ResizeMode::Nearest, _) => return Err(internal("nearest taps")),
        }
        if r.exclude_outside {
            for (t, wt) in w.iter_mut().enumerate() {
                if !(0..=last).contains(&start.saturating_add(t as i64)) {
                    *wt = 0.0;
                }
            }
            let sum: f64 = w.iter().sum();
            if sum != 0.0 {
                w.iter_mut().for_each(|x| *x /= sum);
            }
        }
        plan.weights.extend_from_slice(&w);
        plan.index.extend((0..taps).map(|t| start.saturating_add(t as i64).clamp(0, last.max(0)) as usize));
    }
    Ok(plan)
}

fn normalize(w: &mut [f64]) {
    let sum: f64 = w.iter().sum();
    w.iter_mut().for_each(|x| *x /= sum);
}

pub fn resize(x: &Value, r: &ResizeAttrs, out_shape: &[usize]) -> Result<Value, String> {
    if r.axes.len() != r.scales.len() || r.roi.len() != 2 * r.axes.len() {
        return Err(internal("resize attribute lengths"));
    }
    let n = r.axes.len();
    let mut plans = Vec::with_capacity(n);
    for (k, &a) in r.axes.iter().enumerate() {
        let (Some(&len), Some(&out_len)) = (x.shape.get(a), out_shape.get(a)) else {
            return Err(internal("resize axis out of range"));
        };
        let plan =
            plan_axis(r, len, out_len, r.scales[k], (r.roi[k], r.roi[n + k])).map_err(|e| format!("axis {a}: {e}"))?;
        plans.push((a, plan));
    }
    // Elements whose coordinate lies outside the input on some axis take the extrapolation
    // value: FILL in these per-axis lists.
    let fill_lists: Vec<Vec<usize>> = (0..out_shape.len())
        .map(|a| {
            let out_len = out_shape[a];
            match plans.iter().find(|(p, _)| *p == a) {
                Some((_, plan)) => plan.extrapolated.iter().map(|&e| if e { FILL } else { 0 }).collect(),
                None => vec![0; out_len],
            }
        })
        .collect();
    let extrapolate = plans.iter().any(|(_, p)| p.extrapolated.contains(&true));
    if r.mode == ResizeMode::Nearest {
        let st = strides(&x.shape);
        let lists: Vec<Vec<usize>> = (0..out_shape.len())
            .map(|a| match plans.iter().find(|(p, _)| *p == a) {
                Some((_, plan)) => {
                    plan.index.iter().zip(&plan.extrapolated).map(|(&i, &e)| if e { FILL } else { i * st[a] }).collect()
                }
                None => (0..out_shape[a]).map(|i| i * st[a]).collect(),
            })
            .collect();
        let idx = separable_offsets(&lists);
        let fill = Value::scalar_like(x.dtype, r.extrapolation_value);
        return Ok(Value { dtype: x.dtype, shape: out_shape.to_vec(), data: x.data.take(&idx, Some(fill))? });
    }
    let mut cur = x.floats()?.to_vec();
    let mut shape = x.shape.clone();
    for (a, plan) in &plans {
        let (len, out_len) = (shape[*a], out_shape[*a]);
        let outer: usize = shape[..*a].iter().product();
        let inner: usize = shape[a + 1..].iter().product();
        let mut next = vec![0.0f64; outer * out_len * inner];
        for ou in 0..outer {
            for o in 0..out_len {
                let dst = &mut next[(ou * out_len + o) * inner..(ou * out_len + o + 1) * inner];
                for t in 0..plan.taps {
                    let w = plan.weights[o * plan.taps + t];
                    if w == 0.0 {
                        continue;
                    }
                    let src = (ou * len + plan.index[o * plan.taps + t]) * inner;
                    for (d, &v) in dst.iter_mut().zip(&cur[src..src + inner]) {
                        *d += w * v;
                    }
                }
            }
        }
        cur = next;
        shape[*a] = out_len;
    }
    if extrapolate {
        for (v, off) in cur.iter_mut().zip(separable_offsets(&fill_lists)) {
            if off == FILL {
                *v = r.extrapolation_value;
            }
        }
    }
    Ok(Value::float(x.dtype, out_shape.to_vec(), cur))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nnc_ir::DType;

    fn attrs(mode: ResizeMode, coord: CoordMode, sizes: &[i64], scales: &[f64]) -> ResizeAttrs {
        let n = sizes.len();
        ResizeAttrs {
            mode,
            coordinate_transformation_mode: coord,
            nearest_mode: NearestMode::RoundPreferFloor,
            cubic_coeff_a: -0.75,
            exclude_outside: false,
            extrapolation_value: 0.0,
            antialias: false,
            axes: (0..n).collect(),
            sizes: sizes.to_vec(),
            scales: scales.to_vec(),
            roi: [vec![0.0; n], vec![1.0; n]].concat(),
        }
    }

    #[test]
    fn nearest_modes_pick_by_ratio() {
        let x = Value::int(DType::I64, vec![4], vec![10, 11, 12, 13]);
        // asymmetric 4 -> 6: x = o / 1.5 = 0, 0.67, 1.33, 2, 2.67, 3.33.
        let mut r = attrs(ResizeMode::Nearest, CoordMode::Asymmetric, &[6], &[1.5]);
        let run = |r: &ResizeAttrs| resize(&x, r, &[6]).unwrap().ints().unwrap().to_vec();
        assert_eq!(run(&r), [10, 11, 11, 12, 13, 13]);
        r.nearest_mode = NearestMode::Floor;
        assert_eq!(run(&r), [10, 10, 11, 12, 12, 13]);
        r.nearest_mode = NearestMode::Ceil;
        assert_eq!(run(&r), [10, 11, 12, 12, 13, 13]);
    }

    #[test]
    fn linear_identity_skips_zero_weights_and_extrapolates() {
        let x = Value::float(DType::F32, vec![3], vec![f64::INFINITY, 1.0, 2.0]);
        let r = attrs(ResizeMode::Linear, CoordMode::HalfPixel, &[3], &[1.0]);
        let y = resize(&x, &r, &[3]).unwrap();
        assert_eq!(y.floats().unwrap(), [f64::INFINITY, 1.0, 2.0]);
        let mut crop = attrs(ResizeMode::Linear, CoordMode::TfCropAndResize, &[2], &[1.0]);
        crop.roi = vec![0.5, 1.5];
        crop.extrapolation_value = 7.0;
        // x = o * 1.0 * 2 / (3 - 1) + 1 = 1, 2 -> in range; the roi end 1.5 is never reached.
        let x = Value::float(DType::F32, vec![3], vec![0.0, 1.0, 2.0]);
        assert_eq!(resize(&x, &crop, &[2]).unwrap().floats().unwrap(), [1.0, 2.0]);
        crop.roi = vec![-0.5, 1.0];
        assert_eq!(resize(&x, &crop, &[2]).unwrap().floats().unwrap(), [7.0, 0.5]);
    }

    #[test]
    fn a_tiny_antialias_scale_is_an_error_not_an_overflow() {
        let x = Value::float(DType::F32, vec![4], vec![1.0; 4]);
        let mut r = attrs(ResizeMode::Linear, CoordMode::HalfPixel, &[0], &[1e-300]);
        r.antialias = true;
        assert!(resize(&x, &r, &[0]).unwrap_err().contains("wider than the axis allows"));
        // Asymmetric coordinates run to infinity: clamped, not overflowed.
        let mut r = attrs(ResizeMode::Nearest, CoordMode::Asymmetric, &[2], &[1e-300]);
        r.nearest_mode = NearestMode::Ceil;
        assert_eq!(resize(&x, &r, &[2]).unwrap().floats().unwrap(), [1.0, 1.0]);
    }

    #[test]
    fn empty_axis_to_non_empty_is_an_error() {
        let x = Value::float(DType::F32, vec![0], vec![]);
        let r = attrs(ResizeMode::Linear, CoordMode::HalfPixel, &[2], &[2.0]);
        assert!(resize(&x, &r, &[2]).unwrap_err().contains("empty axis"));
    }
}

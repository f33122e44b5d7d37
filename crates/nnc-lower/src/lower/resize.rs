//! `resize`: ONNX `Resize` with static sizes, as one map.
//!
//! Per resized axis the input coordinate `x` of output position `o` is computed in `f64` with
//! the same operations, in the same order, as the interpreter (`nnc-interp/src/resize.rs`), so
//! the taps and weights agree bit for bit: `f = floor(x)`, `r = x - f` (`f = x - 1`, `r = 1`
//! when `x` is an integer).
//!
//! - `nearest` loads one element at `f` or `f + 1` (by `nearest_mode`) clamped to the axis.
//! - `linear`/`cubic` are nested sums over a tap variable per axis (the first listed axis
//!   innermost, as the interpreter applies them): `select(w == 0, 0, w * inner)` with the tap's
//!   weight `w` (Keys' cubic written as ONNX writes it; with `antialias`, the stretched kernel
//!   divided by its sum over the taps; with `exclude_outside`, taps outside the axis zeroed and
//!   the rest renormalised) and the tap's position `f - taps/2 + 1 + t` clamped to the axis. The
//!   sums run in `f64` and the result is cast to the dtype once.
//! - `tf_crop_and_resize`: where some axis's coordinate is outside `[0, L - 1]`, the element
//!   is `extrapolation_value`.

use super::{bin, literal, Ctx, LowerError};
use nnc_ir::{BinaryOp, CoordMode, DType, NearestMode, ResizeAttrs, ResizeMode, UnaryOp};
use nnc_kernel::expr::{Combine, Expr, Literal, Var, VarGen};
use nnc_kernel::kernel::Compute;

fn f(v: f64) -> Expr {
    Expr::Lit(Literal::Float(v, DType::F64))
}

fn add(a: Expr, b: Expr) -> Expr {
    bin(BinaryOp::Add, a, b)
}
fn sub(a: Expr, b: Expr) -> Expr {
    bin(BinaryOp::Sub, a, b)
}
fn mul(a: Expr, b: Expr) -> Expr {
    bin(BinaryOp::Mul, a, b)
}
fn div(a: Expr, b: Expr) -> Expr {
    bin(BinaryOp::Div, a, b)
}

/// One resized axis's coordinate pieces.
struct Coord {
    /// `floor(x)`, or `x - 1` when `x` is an integer (`f64`).
    f: Expr,
    /// `x - f` (`f64`, in `(0, 1]`).
    ratio: Expr,
    /// `x` lies outside the input (`tf_crop_and_resize` only).
    outside: Option<Expr>,
}

fn coordinate(r: &ResizeAttrs, axis: usize, len: i64, out_len: i64, scale: f64, roi: (f64, f64)) -> Coord {
    let y = Expr::cast(DType::F64, Expr::Axis(axis as u8));
    let l = len as f64;
    let out_w = scale * l;
    let mut outside = None;
    let x = match r.coordinate_transformation_mode {
        CoordMode::HalfPixel => sub(div(add(y, f(0.5)), f(scale)), f(0.5)),
        CoordMode::PytorchHalfPixel if out_w == 1.0 => f(-0.5),
        CoordMode::PytorchHalfPixel => sub(div(add(y, f(0.5)), f(scale)), f(0.5)),
        CoordMode::HalfPixelSymmetric => {
            let adjustment = out_len as f64 / out_w;
            let center = l / 2.0;
            sub(add(f(center * (1.0 - adjustment)), div(add(y, f(0.5)), f(scale))), f(0.5))
        }
        CoordMode::AlignCorners if out_w == 1.0 => f(0.0),
        CoordMode::AlignCorners => div(mul(y, f(l - 1.0)), f(out_w - 1.0)),
        CoordMode::Asymmetric => div(y, f(scale)),
        CoordMode::TfCropAndResize => {
            let (a, b) = roi;
            let x = if out_w == 1.0 {
                f((b - a) * (l - 1.0) / 2.0)
            } else {
                div(mul(mul(y, f(b - a)), f(l - 1.0)), f(out_w - 1.0))
            };
            let x = add(x, f(a * (l - 1.0)));
            outside =
                Some(bin(BinaryOp::Or, bin(BinaryOp::Lt, x.clone(), f(0.0)), bin(BinaryOp::Gt, x.clone(), f(l - 1.0))));
            x
        }
    };
    let fl = Expr::unary(UnaryOp::Floor, x.clone());
    let is_int = bin(BinaryOp::Eq, x.clone(), fl.clone());
    Coord {
        f: Expr::select(is_int.clone(), sub(fl.clone(), f(1.0)), fl.clone()),
        ratio: Expr::select(is_int, f(1.0), sub(x, fl)),
        outside,
    }
}

fn clamp_index(i: Expr, len: i64) -> Expr {
    bin(BinaryOp::Min, bin(BinaryOp::Max, i, Expr::i64(0)), Expr::i64((len - 1).max(0)))
}

/// Keys' cubic kernel with parameter `a` at distance `x` (`f64`).
fn cubic(a: f64, x: Expr) -> Expr {
    let x = Expr::unary(UnaryOp::Abs, x);
    let near = add(mul(mul(sub(mul(f(a + 2.0), x.clone()), f(a + 3.0)), x.clone()), x.clone()), f(1.0));
    let far = sub(mul(add(mul(sub(mul(f(a), x.clone()), f(5.0 * a)), x.clone()), f(8.0 * a)), x.clone()), f(4.0 * a));
    Expr::select(bin(BinaryOp::Le, x.clone(), f(1.0)), near, Expr::select(bin(BinaryOp::Lt, x, f(2.0)), far, f(0.0)))
}

/// The weight of tap `t` (an `i64` expression) before `exclude_outside`.
fn raw_weight(r: &ResizeAttrs, taps: i64, aa_scale: f64, ratio: &Expr, t: Expr, vars: &mut VarGen) -> Expr {
    let a = r.cubic_coeff_a;
    let first = 1 - taps / 2;
    // The stretched kernel of the antialiased modes at tap `t`.
    let stretched = |t: Expr| {
        let arg = mul(sub(Expr::cast(DType::F64, Expr::add_index(t, Expr::i64(first))), ratio.clone()), f(aa_scale));
        match r.mode {
            ResizeMode::Linear => {
                bin(BinaryOp::Min, bin(BinaryOp::Max, sub(f(1.0), Expr::unary(UnaryOp::Abs, arg)), f(0.0)), f(1.0))
            }
            _ => cubic(a, arg),
        }
    };
    if r.antialias {
        let u = vars.index();
        let sum = Expr::reduce(Combine::Sum, vec![(u, taps)], stretched(Expr::Var(u)));
        return div(stretched(t), sum);
    }
    let is = |k: i64| bin(BinaryOp::Eq, t.clone(), Expr::i64(k));
    let rt = ratio.clone();
    match r.mode {
        ResizeMode::Linear => Expr::select(is(0), sub(f(1.0), rt.clone()), rt),
        _ => {
            let r1 = add(rt.clone(), f(1.0));
            let w0 = sub(mul(add(mul(sub(mul(f(a), r1.clone()), f(5.0 * a)), r1.clone()), f(8.0 * a)), r1), f(4.0 * a));
            let w1 = add(mul(mul(sub(mul(f(a + 2.0), rt.clone()), f(a + 3.0)), rt.clone()), rt.clone()), f(1.0));
            let q = sub(f(1.0), rt);
            let w2 = add(mul(mul(sub(mul(f(a + 2.0), q.clone()), f(a + 3.0)), q.clone()), q.clone()), f(1.0));
            let q1 = add(q, f(1.0));
            let w3 = sub(mul(add(mul(sub(mul(f(a), q1.clone()), f(5.0 * a)), q1.clone()), f(8.0 * a)), q1), f(4.0 * a));
            Expr::select(is(0), w0, Expr::select(is(1), w1, Expr::select(is(2), w2, w3)))
        }
    }
}

pub(super) fn lower(cx: &Ctx, r: &ResizeAttrs, vars: &mut VarGen) -> Result<Compute, LowerError> {
    let x = cx.in_shape(0)?.to_vec();
    let out = cx.out_shape().to_vec();
    let dtype = cx.in_dtype(0)?;
    let n = r.axes.len();
    if r.scales.len() != n || r.roi.len() != 2 * n {
        return Err(cx.err("resize attribute lists of different lengths".into()));
    }
    let mut index: Vec<Expr> = (0..x.len()).map(|a| Expr::Axis(a as u8)).collect();
    let mut outside = Vec::new();
    // Per resized axis (in `r.axes` order): its tap variable and the tap's weight.
    let mut sums: Vec<((Var, i64), Expr)> = Vec::new();
    for (k, &a) in r.axes.iter().enumerate() {
        let (len, out_len, scale) = (x[a], out[a], r.scales[k]);
        if len == 0 && out_len > 0 {
            return Err(cx.err(format!("axis {a}: cannot resize an empty axis to a non-empty one")));
        }
        let c = coordinate(r, a, len, out_len, scale, (r.roi[k], r.roi[n + k]));
        outside.extend(c.outside.clone());
        let fi = Expr::cast(DType::I64, c.f.clone());
        if r.mode == ResizeMode::Nearest {
            let pick = match r.nearest_mode {
                NearestMode::RoundPreferFloor => Some(bin(BinaryOp::Gt, c.ratio.clone(), f(0.5))),
                NearestMode::RoundPreferCeil => Some(bin(BinaryOp::Ge, c.ratio.clone(), f(0.5))),
                NearestMode::Floor => None,
                NearestMode::Ceil => Some(Expr::bool(true)),
            };
            let is_one = bin(BinaryOp::Eq, c.ratio.clone(), f(1.0));
            let pick = match pick {
                Some(Expr::Lit(Literal::Bool(true))) => Expr::bool(true),
                Some(p) => bin(BinaryOp::Or, is_one, p),
                None => is_one,
            };
            let p = match pick {
                Expr::Lit(Literal::Bool(true)) => Expr::add_index(fi, Expr::i64(1)),
                pick => Expr::select(pick, Expr::add_index(fi.clone(), Expr::i64(1)), fi),
            };
            index[a] = clamp_index(p, len);
            continue;
        }
        let aa_scale = if r.antialias { scale.min(1.0) } else { 1.0 };
        let taps = match r.mode {
            ResizeMode::Linear if r.antialias => 2.0 - 2.0 * ((-1.0 / aa_scale).floor() + 1.0),
            ResizeMode::Cubic if r.antialias => 2.0 - 2.0 * ((-2.0 / aa_scale).floor() + 1.0),
            ResizeMode::Linear => 2.0,
            _ => 4.0,
        };
        if taps > 4.0 * (len as f64 + 2.0) {
            return Err(
                cx.err(format!("axis {a}: the antialiasing kernel ({taps} taps) is wider than the axis allows"))
            );
        }
        let taps = taps as i64;
        let t = vars.index();
        let start = |t: Expr| Expr::add_index(Expr::add_index(fi.clone(), Expr::i64(1 - taps / 2)), t);
        let mut w = raw_weight(r, taps, aa_scale, &c.ratio, Expr::Var(t), vars);
        if r.exclude_outside {
            let inside = |t: Expr| {
                let p = start(t);
                Expr::and(bin(BinaryOp::Ge, p.clone(), Expr::i64(0)), bin(BinaryOp::Lt, p, Expr::i64(len)))
            };
            let u = vars.index();
            let wu = raw_weight(r, taps, aa_scale, &c.ratio, Expr::Var(u), vars);
            let sum = Expr::reduce(Combine::Sum, vec![(u, taps)], Expr::select(inside(Expr::Var(u)), wu, f(0.0)));
            let wt = Expr::select(inside(Expr::Var(t)), w, f(0.0));
            w = Expr::select(bin(BinaryOp::Ne, sum.clone(), f(0.0)), div(wt.clone(), sum), wt);
        }
        index[a] = clamp_index(start(Expr::Var(t)), len);
        sums.push(((t, taps), w));
    }
    let load = cx.load(0, index)?;
    let mut e = if r.mode == ResizeMode::Nearest {
        load
    } else {
        let mut v = Expr::cast(DType::F64, load);
        for ((t, taps), w) in sums {
            let term = Expr::select(bin(BinaryOp::Eq, w.clone(), f(0.0)), f(0.0), mul(w, v));
            v = Expr::reduce(Combine::Sum, vec![(t, taps)], term);
        }
        Expr::cast(dtype, v)
    };
    if let Some(any) = outside.into_iter().reduce(|a, b| bin(BinaryOp::Or, a, b)) {
        e = Expr::select(any, literal(r.extrapolation_value, dtype), e);
    }
    Ok(Compute::Map(e))
}

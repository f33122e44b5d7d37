//! Spatial sampling: `AffineGrid` (the sampling grid of an affine transform), `GridSample`
//! (reading an image at a grid's coordinates), `DeformConv` (a convolution whose taps read at
//! learned offsets) and `RoiAlign` (pooling regions of interest), built on one gather of
//! interpolation taps.

use super::{built_size, product, within_index_range, Fail, NodeCx, Out};
use nnc_ir::{BinaryOp, DType, Dim, Op, ReduceKind, TensorData, UnaryOp, ValueId};

/// `AffineGrid(theta [N, 2, 3] or [N, 3, 4], size [N, C, (D,) H, W])`: the normalized
/// coordinates `(x, y(, z), 1)` of each output position (pixel centres in `[-1, 1]`, or the
/// corners with `align_corners`), a constant built at import time, times `thetaᵀ`:
/// `[N, (D,) H, W, 2 or 3]`.
pub fn affine_grid(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&["align_corners"])?;
    let theta = cx.input(0)?;
    let size = cx.const_ints(1)?;
    let spatial: Vec<i64> = size.get(2..).map(<[i64]>::to_vec).unwrap_or_default();
    let n = spatial.len();
    if !(n == 2 || n == 3) || spatial.iter().any(|&d| d <= 0) {
        return Err(format!("size {size:?} must be [N, C, H, W] or [N, C, D, H, W] with positive sizes").into());
    }
    let positions = built_size(spatial.iter().copied(), "the base grid")?;
    let align = cx.attr_int_or("align_corners", 0)? != 0;
    let coordinate = |i: i64, len: i64| -> f64 {
        if align {
            -1.0 + i as f64 * (2.0 / (len - 1) as f64)
        } else {
            let step = 2.0 / len as f64;
            -1.0 + step / 2.0 + i as f64 * step
        }
    };
    // Rows (x, y(, z), 1) in row-major order of the spatial axes; x is the last axis.
    let mut base = Vec::with_capacity((positions * (n as i64 + 1)) as usize);
    for p in 0..positions {
        let mut rest = p;
        let mut coords = vec![0.0; n];
        for a in (0..n).rev() {
            coords[n - 1 - a] = coordinate(rest % spatial[a], spatial[a]);
            rest /= spatial[a];
        }
        base.extend(coords);
        base.push(1.0);
    }
    let dtype = cx.ty(theta).dtype;
    let base = cx.b.constant(TensorData::from_f64(dtype, vec![positions as usize, n + 1], &base));
    let theta_t = cx.b.transpose(theta, vec![0, 2, 1])?;
    let grid = cx.b.matmul(base, theta_t)?;
    let mut shape = vec![cx.ty(theta).shape[0].clone()];
    shape.extend(spatial.iter().map(|&d| Dim::from(d)));
    shape.push(Dim::from(n));
    Ok(vec![NodeCx::value(cx.b.reshape(grid, shape)?)])
}

/// One tap of a sampling kernel along one axis: the source index (`i64`), its weight, and
/// (zero padding) whether the index is inside the input.
struct Tap {
    index: ValueId,
    weight: Option<ValueId>,
    inside: Option<ValueId>,
}

/// `GridSample(X [N, C, spatial...], grid [N, out..., n])` (2-D and 3-D): each output position
/// reads `X` at the grid's normalized coordinates (`grid[..., 0]` is the last axis), denormalized
/// as `align_corners` says, by `nearest`, `linear` or `cubic` (Keys, α = −0.75) interpolation, with
/// `zeros`, `border` or `reflection` padding, step for step as ONNX's reference: the coordinate
/// clamped or reflected when outside, then each tap's index mapped by the padding rule. The taps'
/// products of weights over the axes multiply `GatherElements` reads of the flattened input.
pub fn grid_sample(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&["align_corners", "mode", "padding_mode"])?;
    let (x, grid) = (cx.input(0)?, cx.input(1)?);
    let mode = cx.attr_string("mode")?.unwrap_or_else(|| "linear".into());
    let mode = match mode.as_str() {
        "bilinear" => "linear".to_string(),
        "bicubic" => "cubic".to_string(),
        _ => mode,
    };
    if !matches!(mode.as_str(), "nearest" | "linear" | "cubic") {
        return Err(format!("mode `{mode}` is not nearest, linear or cubic").into());
    }
    let padding = cx.attr_string("padding_mode")?.unwrap_or_else(|| "zeros".into());
    if !matches!(padding.as_str(), "zeros" | "border" | "reflection") {
        return Err(format!("padding_mode `{padding}` is not zeros, border or reflection").into());
    }
    let align = cx.attr_int_or("align_corners", 0)? != 0;
    let (x_ty, g_ty) = (cx.ty(x), cx.ty(grid));
    let xd: Vec<i64> =
        x_ty.shape.iter().map(|d| d.as_const().ok_or("X's shape must be static")).collect::<Result<_, _>>()?;
    let gd: Vec<i64> =
        g_ty.shape.iter().map(|d| d.as_const().ok_or("the grid's shape must be static")).collect::<Result<_, _>>()?;
    let n = xd.len().saturating_sub(2);
    if !(n == 2 || n == 3) || gd.len() != n + 2 || gd[n + 1] != n as i64 || gd[0] != xd[0] {
        return Err(
            format!("X {x_ty} and grid {g_ty} must be [N, C, spatial...] and [N, out..., {n}] with n 2 or 3").into()
        );
    }
    let (batch, channels) = (xd[0], xd[1]);
    let dims = &xd[2..];
    let outputs = product(gd[1..=n].iter().copied(), "the grid")?;
    let positions = product(dims.iter().copied(), "X")?;
    let grid = cx.b.reshape(grid, vec![Dim::from(batch), Dim::from(outputs), Dim::from(n)])?;
    let mut per_axis = Vec::new();
    for (axis, &d) in dims.iter().enumerate() {
        // grid[..., n - 1 - axis] as [N, 1, outputs].
        let c = cx.b.slice_axis(grid, 2, (n - 1 - axis) as i64, (n - axis) as i64)?;
        let c = cx.b.reshape(c, vec![Dim::from(batch), Dim::from(1usize), Dim::from(outputs)])?;
        let x = denormalize(cx, c, d, align)?;
        per_axis.push(axis_taps(cx, x, d, align, &mode, &padding)?);
    }
    let flat = cx.b.reshape(x, vec![Dim::from(batch), Dim::from(channels), Dim::from(positions)])?;
    let sampled = gather_taps(cx, flat, &per_axis, dims, false)?;
    let mut shape = vec![Dim::from(batch), Dim::from(channels)];
    shape.extend(gd[1..=n].iter().map(|&d| Dim::from(d)));
    Ok(vec![NodeCx::value(cx.b.reshape(sampled, shape)?)])
}

/// `Σ_taps Π_axes weight · flat[n, c, Σ_axes index · stride]` over every combination of one tap
/// per axis (the largest term instead of the sum with `largest`), where `flat` is `[N, C, ∏dims]`
/// and each tap's values are `[N, 1, Q]`: `[N, C, Q]`. A tap outside the input reads 0.
fn gather_taps(
    cx: &mut NodeCx,
    flat: ValueId,
    per_axis: &[Vec<Tap>],
    dims: &[i64],
    largest: bool,
) -> Result<ValueId, Fail> {
    let n = per_axis.len();
    let strides: Vec<i64> =
        (0..n).map(|a| product(dims[a + 1..].iter().copied(), "the input")).collect::<Result<_, _>>()?;
    let f = cx.ty(flat);
    let dtype = f.dtype;
    let (batch, channels) = (f.shape[0].clone(), f.shape[1].clone());
    let mut total: Option<ValueId> = None;
    let mut choice = vec![0usize; n];
    loop {
        let mut index: Option<ValueId> = None;
        let mut weight: Option<ValueId> = None;
        let mut inside: Option<ValueId> = None;
        for a in 0..n {
            let tap = &per_axis[a][choice[a]];
            let term = cx.b.binary_scalar(BinaryOp::Mul, tap.index, strides[a] as f64)?;
            index = Some(match index {
                Some(i) => cx.b.add(i, term)?,
                None => term,
            });
            weight = match (weight, tap.weight) {
                (Some(w), Some(t)) => Some(cx.b.mul(w, t)?),
                (w, t) => w.or(t),
            };
            inside = match (inside, tap.inside) {
                (Some(v), Some(t)) => Some(cx.b.binary(BinaryOp::And, v, t)?),
                (v, t) => v.or(t),
            };
        }
        let index = index.ok_or("no axes")?;
        let outputs = cx.ty(index).shape[2].clone();
        let index = cx.b.expand(index, vec![batch.clone(), channels.clone(), outputs])?;
        let mut value = cx.b.op1(Op::GatherElements { axis: 2 }, &[flat, index])?;
        if let Some(inside) = inside {
            let zero = cx.scalar(dtype, 0.0);
            value = cx.b.select(inside, value, zero)?;
        }
        if let Some(w) = weight {
            value = cx.b.mul(value, w)?;
        }
        total = Some(match total {
            Some(t) if largest => cx.b.max(t, value)?,
            Some(t) => cx.b.add(t, value)?,
            None => value,
        });
        // The next combination of taps (an odometer over the axes, the last fastest).
        let mut a = n;
        loop {
            if a == 0 {
                return Ok(total.ok_or("no taps")?);
            }
            a -= 1;
            choice[a] += 1;
            if choice[a] < per_axis[a].len() {
                break;
            }
            choice[a] = 0;
        }
    }
}

/// `x` (float) reflected into `[low, high]` as the reference's `_gs_reflect` does: by whole
/// periods of the range, from the border it crossed.
fn reflect(cx: &mut NodeCx, x: ValueId, low: f64, high: f64) -> Result<ValueId, Fail> {
    let range = high - low;
    let side = |cx: &mut NodeCx, beyond: ValueId, near: f64, far: f64| -> Result<ValueId, Fail> {
        // beyond = distance past the near border (≥ 0 where used).
        let periods = cx.b.binary_scalar(BinaryOp::Div, beyond, range)?;
        let periods = cx.b.unary(UnaryOp::Floor, periods)?;
        let whole = cx.b.binary_scalar(BinaryOp::Mul, periods, range)?;
        let rest = cx.b.sub(beyond, whole)?;
        let half = cx.b.binary_scalar(BinaryOp::Div, periods, 2.0)?;
        let half = cx.b.unary(UnaryOp::Floor, half)?;
        let twice = cx.b.binary_scalar(BinaryOp::Mul, half, 2.0)?;
        let even = cx.b.binary(BinaryOp::Eq, twice, periods)?;
        // From the near border inwards when even, from the far one when odd.
        let direction = if near < far { 1.0 } else { -1.0 };
        let toward = cx.b.binary_scalar(BinaryOp::Mul, rest, direction)?;
        let from_near = cx.b.binary_scalar(BinaryOp::Add, toward, near)?;
        let back = cx.b.binary_scalar(BinaryOp::Mul, rest, -direction)?;
        let from_far = cx.b.binary_scalar(BinaryOp::Add, back, far)?;
        Ok(cx.b.select(even, from_near, from_far)?)
    };
    let dtype = cx.ty(x).dtype;
    let low_v = cx.scalar(dtype, low);
    let below_by = cx.b.sub(low_v, x)?;
    let from_low = side(cx, below_by, low, high)?;
    let above_by = cx.b.binary_scalar(BinaryOp::Sub, x, high)?;
    let from_high = side(cx, above_by, high, low)?;
    let below = cx.b.binary_scalar(BinaryOp::Lt, x, low)?;
    let above = cx.b.binary_scalar(BinaryOp::Gt, x, high)?;
    let inner = cx.b.select(above, from_high, x)?;
    Ok(cx.b.select(below, from_low, inner)?)
}

/// Normalized coordinates `c` (−1 to 1) along an axis of length `d` as pixel coordinates:
/// `align_corners` maps ±1 to the corner pixels' centres, else to the outer edges.
fn denormalize(cx: &mut NodeCx, c: ValueId, d: i64, align: bool) -> Result<ValueId, Fail> {
    let plus_one = cx.b.binary_scalar(BinaryOp::Add, c, 1.0)?;
    Ok(if align {
        let half = cx.b.binary_scalar(BinaryOp::Div, plus_one, 2.0)?;
        cx.b.binary_scalar(BinaryOp::Mul, half, (d - 1) as f64)?
    } else {
        let scaled = cx.b.binary_scalar(BinaryOp::Mul, plus_one, d as f64)?;
        let shifted = cx.b.binary_scalar(BinaryOp::Sub, scaled, 1.0)?;
        cx.b.binary_scalar(BinaryOp::Div, shifted, 2.0)?
    })
}

/// The taps along one axis of length `d` for pixel coordinates `x`.
fn axis_taps(cx: &mut NodeCx, x: ValueId, d: i64, align: bool, mode: &str, padding: &str) -> Result<Vec<Tap>, Fail> {
    let mut x = x;
    if mode == "nearest" {
        x = cx.b.unary(UnaryOp::Round, x)?;
    }
    let (low, high) = if align { (0.0, (d - 1) as f64) } else { (-0.5, d as f64 - 0.5) };
    match padding {
        "border" => {
            let below = cx.b.binary_scalar(BinaryOp::Lt, x, low)?;
            let above = cx.b.binary_scalar(BinaryOp::Gt, x, high)?;
            let outside = cx.b.binary(BinaryOp::Or, below, above)?;
            let clamped = cx.b.binary_scalar(BinaryOp::Max, x, 0.0)?;
            let clamped = cx.b.binary_scalar(BinaryOp::Min, clamped, (d - 1) as f64)?;
            x = cx.b.select(outside, clamped, x)?;
        }
        "reflection" => x = reflect(cx, x, low, high)?,
        _ => {}
    }
    // (offset from floor(x), weight) of each tap; nearest reads trunc(x) itself.
    let dtype = cx.ty(x).dtype;
    let (base, taps): (ValueId, Vec<(i64, Option<ValueId>)>) = match mode {
        "nearest" => (cx.b.cast(x, DType::I64)?, vec![(0, None)]),
        _ => {
            let floor = cx.b.unary(UnaryOp::Floor, x)?;
            let f = cx.b.sub(x, floor)?;
            let base = cx.b.cast(floor, DType::I64)?;
            if mode == "linear" {
                let one = cx.scalar(dtype, 1.0);
                let w0 = cx.b.sub(one, f)?;
                (base, vec![(0, Some(w0)), (1, Some(f))])
            } else {
                let w = cubic_weights(cx, f)?;
                (base, vec![(-1, Some(w[0])), (0, Some(w[1])), (1, Some(w[2])), (2, Some(w[3]))])
            }
        }
    };
    let mut out = Vec::new();
    for (offset, weight) in taps {
        let i = if offset == 0 { base } else { cx.b.binary_scalar(BinaryOp::Add, base, offset as f64)? };
        let clamp = |cx: &mut NodeCx, i: ValueId| -> Result<ValueId, Fail> {
            let i = cx.b.binary_scalar(BinaryOp::Max, i, 0.0)?;
            Ok(cx.b.binary_scalar(BinaryOp::Min, i, (d - 1) as f64)?)
        };
        let (index, inside) = match padding {
            "zeros" => {
                let ge = cx.b.binary_scalar(BinaryOp::Ge, i, 0.0)?;
                let lt = cx.b.binary_scalar(BinaryOp::Lt, i, d as f64)?;
                (clamp(cx, i)?, Some(cx.b.binary(BinaryOp::And, ge, lt)?))
            }
            "border" => (clamp(cx, i)?, None),
            _ => {
                let fi = cx.b.cast(i, dtype)?;
                let r = reflect(cx, fi, low, high)?;
                let r = cx.b.cast(r, DType::I64)?;
                (clamp(cx, r)?, None)
            }
        };
        out.push(Tap { index, weight, inside });
    }
    Ok(out)
}

/// Keys' cubic convolution weights (α = −0.75) of the taps at −1, 0, 1, 2 for a fraction `f`.
fn cubic_weights(cx: &mut NodeCx, f: ValueId) -> Result<[ValueId; 4], Fail> {
    const A: f64 = -0.75;
    // Far taps: ((A·t − 5A)·t + 8A)·t − 4A at t = f + 1 and t = 2 − f.
    let far = |cx: &mut NodeCx, t: ValueId| -> Result<ValueId, Fail> {
        let v = cx.b.binary_scalar(BinaryOp::Mul, t, A)?;
        let v = cx.b.binary_scalar(BinaryOp::Sub, v, 5.0 * A)?;
        let v = cx.b.mul(v, t)?;
        let v = cx.b.binary_scalar(BinaryOp::Add, v, 8.0 * A)?;
        let v = cx.b.mul(v, t)?;
        Ok(cx.b.binary_scalar(BinaryOp::Sub, v, 4.0 * A)?)
    };
    // Near taps: ((A + 2)·t − (A + 3))·t·t + 1 at t = f and t = 1 − f.
    let near = |cx: &mut NodeCx, t: ValueId| -> Result<ValueId, Fail> {
        let v = cx.b.binary_scalar(BinaryOp::Mul, t, A + 2.0)?;
        let v = cx.b.binary_scalar(BinaryOp::Sub, v, A + 3.0)?;
        let v = cx.b.mul(v, t)?;
        let v = cx.b.mul(v, t)?;
        Ok(cx.b.binary_scalar(BinaryOp::Add, v, 1.0)?)
    };
    let dtype = cx.ty(f).dtype;
    let (one, two) = (cx.scalar(dtype, 1.0), cx.scalar(dtype, 2.0));
    let f_plus_one = cx.b.binary_scalar(BinaryOp::Add, f, 1.0)?;
    let one_minus = cx.b.sub(one, f)?;
    let two_minus = cx.b.sub(two, f)?;
    Ok([far(cx, f_plus_one)?, near(cx, f)?, near(cx, one_minus)?, far(cx, two_minus)?])
}

/// `DeformConv(X [N, C, H, W], W [OC, C/group, kh, kw], offset [N, og·kh·kw·2, OH, OW], B?,
/// mask?)` (2-D): a convolution whose every kernel tap reads `X` bilinearly (zeros outside) at
/// its usual position plus a learned `(dy, dx)` offset, per offset group of input channels,
/// times the mask. The samples `[N, C, kh·kw, OH·OW]` are gathered as `GridSample` gathers,
/// then contracted with the weight group by group as matrix products.
pub fn deform_conv(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&["dilations", "group", "kernel_shape", "offset_group", "pads", "strides"])?;
    let (x, w, offset) = (cx.input(0)?, cx.input(1)?, cx.input(2)?);
    let (bias, mask) = (cx.opt_input(3)?, cx.opt_input(4)?);
    let dims = |cx: &NodeCx, v: ValueId, what: &str| -> Result<Vec<i64>, Fail> {
        let ty = cx.ty(v);
        Ok(ty
            .shape
            .iter()
            .map(|d| d.as_const().ok_or(format!("{what}'s shape must be static, found {ty}")))
            .collect::<Result<_, _>>()?)
    };
    let (xd, wd, od) = (dims(cx, x, "X")?, dims(cx, w, "W")?, dims(cx, offset, "offset")?);
    if xd.len() != 4 || wd.len() != 4 || od.len() != 4 {
        return Err("only 2-D DeformConv (4-D X, W and offset) is supported".into());
    }
    let (batch, channels, height, width) = (xd[0], xd[1], xd[2], xd[3]);
    let (out_channels, group_channels, kh, kw) = (wd[0], wd[1], wd[2], wd[3]);
    let group = cx.attr_int_or("group", 1)?;
    let offset_group = cx.attr_int_or("offset_group", 1)?;
    let taps = product([kh, kw], "the kernel")?;
    if group <= 0 || channels != group_channels * group || out_channels % group != 0 {
        return Err(format!("X {xd:?}, W {wd:?} and group {group} do not agree").into());
    }
    if offset_group <= 0 || channels % offset_group != 0 || Some(od[1]) != offset_group.checked_mul(taps * 2) {
        return Err(format!("offset {od:?} does not fit offset_group {offset_group} and a {kh}x{kw} kernel").into());
    }
    let strides = cx.attr_ints("strides")?.unwrap_or_else(|| vec![1, 1]);
    let dilations = cx.attr_ints("dilations")?.unwrap_or_else(|| vec![1, 1]);
    let pads = cx.attr_ints("pads")?.unwrap_or_else(|| vec![0; 4]);
    if strides.len() != 2 || dilations.len() != 2 || pads.len() != 4 {
        return Err("strides, dilations and pads need 2, 2 and 4 entries".into());
    }
    for (values, what) in [(&strides, "strides"), (&dilations, "dilations"), (&pads, "pads")] {
        within_index_range(values, what)?;
    }
    let (oh, ow) = (od[2], od[3]);
    let outputs = product([oh, ow], "the output")?;
    built_size([taps, outputs], "the taps' base positions")?;
    let dtype = cx.ty(x).dtype;
    // Each tap's position before its offset: [taps, OH·OW] per axis.
    let mut base = [Vec::new(), Vec::new()];
    for k in 0..taps {
        for p in 0..outputs {
            base[0].push((-pads[0] + strides[0] * (p / ow) + dilations[0] * (k / kw)) as f64);
            base[1].push((-pads[1] + strides[1] * (p % ow) + dilations[1] * (k % kw)) as f64);
        }
    }
    let offsets = cx.b.reshape(offset, [batch, offset_group, taps, 2, outputs].map(Dim::from).to_vec())?;
    let masks = match mask {
        Some(m) => Some(cx.b.reshape(m, [batch, offset_group, taps, outputs].map(Dim::from).to_vec())?),
        None => None,
    };
    let per_group = channels / offset_group;
    let flat = cx.b.reshape(x, [batch, channels, height * width].map(Dim::from).to_vec())?;
    let mut samples = Vec::new();
    for g in 0..offset_group {
        let mut per_axis = Vec::new();
        for (axis, len) in [height, width].into_iter().enumerate() {
            // [N, 1, taps·OH·OW] pixel coordinates of this group's taps along `axis`.
            let o = cx.b.slice_axis(offsets, 1, g, g + 1)?;
            let o = cx.b.slice_axis(o, 3, axis as i64, axis as i64 + 1)?;
            let o = cx.b.reshape(o, [batch, 1, taps * outputs].map(Dim::from).to_vec())?;
            let b = cx.b.constant(TensorData::from_f64(dtype, vec![(taps * outputs) as usize], &base[axis]));
            let at = cx.b.add(o, b)?;
            per_axis.push(axis_taps(cx, at, len, true, "linear", "zeros")?);
        }
        let channels_of_group = cx.b.slice_axis(flat, 1, g * per_group, (g + 1) * per_group)?;
        let sampled = gather_taps(cx, channels_of_group, &per_axis, &[height, width], false)?;
        let mut sampled = cx.b.reshape(sampled, [batch, per_group, taps, outputs].map(Dim::from).to_vec())?;
        if let Some(m) = masks {
            let m = cx.b.slice_axis(m, 1, g, g + 1)?;
            sampled = cx.b.mul(sampled, m)?;
        }
        samples.push(sampled);
    }
    let samples = if samples.len() == 1 { samples[0] } else { cx.b.concat(&samples, 1)? };
    // Group by group: W_g [OC/group, C/group·taps] @ S_g [N, C/group·taps, OH·OW].
    let per_out = out_channels / group;
    let mut ys = Vec::new();
    for g in 0..group {
        let s = cx.b.slice_axis(samples, 1, g * group_channels, (g + 1) * group_channels)?;
        let s = cx.b.reshape(s, [batch, group_channels * taps, outputs].map(Dim::from).to_vec())?;
        let wg = cx.b.slice_axis(w, 0, g * per_out, (g + 1) * per_out)?;
        let wg = cx.b.reshape(wg, [per_out, group_channels * taps].map(Dim::from).to_vec())?;
        ys.push(cx.b.matmul(wg, s)?);
    }
    let y = if ys.len() == 1 { ys[0] } else { cx.b.concat(&ys, 1)? };
    let mut y = cx.b.reshape(y, [batch, out_channels, oh, ow].map(Dim::from).to_vec())?;
    if let Some(b) = bias {
        let b = cx.b.reshape(b, [1, out_channels, 1, 1].map(Dim::from).to_vec())?;
        y = cx.b.add(y, b)?;
    }
    Ok(vec![NodeCx::value(y)])
}

/// `RoiAlign(X [N, C, H, W], rois [R, 4], batch_indices [R])` with a fixed `sampling_ratio`:
/// each region's `output_height × output_width` bins, each the average (or the largest weighted
/// corner, `mode = max`) of `sampling_ratio²` bilinear samples, as ONNX's reference computes
/// them: a sample outside `[-1, size]` reads 0, one past the last pixel reads the last. The
/// regions are run-time data; only the sample count must be known (an adaptive
/// `sampling_ratio = 0` depends on the regions' sizes).
pub fn roi_align(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&[
        "coordinate_transformation_mode",
        "mode",
        "output_height",
        "output_width",
        "sampling_ratio",
        "spatial_scale",
    ])?;
    let (x, rois, indices) = (cx.input(0)?, cx.input(1)?, cx.input(2)?);
    let xd: Vec<i64> =
        cx.ty(x).shape.iter().map(|d| d.as_const().ok_or("X's shape must be static")).collect::<Result<_, _>>()?;
    let regions = cx.ty(rois).shape.first().and_then(Dim::as_const).ok_or("the number of regions must be static")?;
    if xd.len() != 4 || cx.ty(rois).shape.get(1).and_then(Dim::as_const) != Some(4) {
        return Err(format!("X {} and rois {} must be [N, C, H, W] and [R, 4]", cx.ty(x), cx.ty(rois)).into());
    }
    let (channels, height, width) = (xd[1], xd[2], xd[3]);
    let grid = cx.attr_int_or("sampling_ratio", 0)?;
    if grid <= 0 {
        return Err("sampling_ratio 0 (adaptive: a sample count per region from its size) is not supported".into());
    }
    let (out_h, out_w) = (cx.attr_int_or("output_height", 1)?, cx.attr_int_or("output_width", 1)?);
    let scale = cx.attr_float_or("spatial_scale", 1.0)? as f64;
    let half_pixel = match cx.attr_string("coordinate_transformation_mode")?.as_deref() {
        None | Some("half_pixel") => true,
        Some("output_half_pixel") => false,
        Some(m) => {
            return Err(format!("coordinate_transformation_mode `{m}` is not half_pixel or output_half_pixel").into())
        }
    };
    let largest = match cx.attr_string("mode")?.as_deref() {
        None | Some("avg") => false,
        Some("max") => true,
        Some(m) => return Err(format!("mode `{m}` is not avg or max").into()),
    };
    let dtype = cx.ty(x).dtype;
    // Per axis (y from rois[:, 1] and [:, 3], x from [:, 0] and [:, 2]): sample coordinates
    // [R, bins·grid] = start + bin_size · (bin + (sample + 0.5) / grid).
    let mut per_axis = Vec::new();
    let mut counts = Vec::new();
    for (first, bins, len) in [(1, out_h, height), (0, out_w, width)] {
        let corner = |cx: &mut NodeCx, col: i64| -> Result<ValueId, Fail> {
            let c = cx.b.slice_axis(rois, 1, col, col + 1)?;
            let c = cx.b.binary_scalar(BinaryOp::Mul, c, scale)?;
            Ok(cx.b.binary_scalar(BinaryOp::Sub, c, if half_pixel { 0.5 } else { 0.0 })?)
        };
        let (start, end) = (corner(cx, first)?, corner(cx, first + 2)?);
        let mut extent = cx.b.sub(end, start)?;
        if !half_pixel {
            extent = cx.b.binary_scalar(BinaryOp::Max, extent, 1.0)?;
        }
        let bin = cx.b.binary_scalar(BinaryOp::Div, extent, bins as f64)?;
        built_size([bins, grid], "the sample offsets")?;
        let steps: Vec<f64> =
            (0..bins).flat_map(|b| (0..grid).map(move |s| b as f64 + (s as f64 + 0.5) / grid as f64)).collect();
        let steps = cx.b.constant(TensorData::from_f64(dtype, vec![1, (bins * grid) as usize], &steps));
        let offsets = cx.b.mul(bin, steps)?;
        per_axis.push((cx.b.add(start, offsets)?, len));
        counts.push(bins * grid);
    }
    // Both axes over the whole [R, 1, (out_h·grid)·(out_w·grid)] sample grid.
    let (rows, cols) = (counts[0], counts[1]);
    product([regions, rows, cols], "the samples")?;
    let spread = |cx: &mut NodeCx, c: ValueId, shape: [i64; 3]| -> Result<ValueId, Fail> {
        let c = cx.b.reshape(c, shape.map(Dim::from).to_vec())?;
        let c = cx.b.expand(c, [regions, rows, cols].map(Dim::from).to_vec())?;
        Ok(cx.b.reshape(c, [regions, 1, rows * cols].map(Dim::from).to_vec())?)
    };
    let ys = spread(cx, per_axis[0].0, [regions, rows, 1])?;
    let xs = spread(cx, per_axis[1].0, [regions, 1, cols])?;
    let taps = vec![roi_taps(cx, ys, height)?, roi_taps(cx, xs, width)?];
    let batch_indices = cx.b.cast(indices, DType::I64)?;
    let picked = cx.b.gather(x, batch_indices, 0)?;
    let flat = cx.b.reshape(picked, [regions, channels, height * width].map(Dim::from).to_vec())?;
    let sampled = gather_taps(cx, flat, &taps, &[height, width], largest)?;
    let sampled = cx.b.reshape(sampled, [regions, channels, out_h, grid, out_w, grid].map(Dim::from).to_vec())?;
    let kind = if largest { ReduceKind::Max } else { ReduceKind::Mean };
    Ok(vec![NodeCx::value(cx.b.reduce(kind, sampled, &[3, 5], false)?)])
}

/// RoiAlign's two bilinear taps along an axis of length `len` for coordinates `c`: nothing
/// outside `[-1, len]`, negative coordinates read at 0, those at or past the last pixel read it.
fn roi_taps(cx: &mut NodeCx, c: ValueId, len: i64) -> Result<Vec<Tap>, Fail> {
    let ge = cx.b.binary_scalar(BinaryOp::Ge, c, -1.0)?;
    let le = cx.b.binary_scalar(BinaryOp::Le, c, len as f64)?;
    let inside = cx.b.binary(BinaryOp::And, ge, le)?;
    let c = cx.b.binary_scalar(BinaryOp::Max, c, 0.0)?;
    let low = cx.b.unary(UnaryOp::Floor, c)?;
    let last = (len - 1) as f64;
    let at_end = cx.b.binary_scalar(BinaryOp::Ge, low, last)?;
    let dtype = cx.ty(c).dtype;
    let last_v = cx.scalar(dtype, last);
    let low = cx.b.select(at_end, last_v, low)?;
    let c = cx.b.select(at_end, low, c)?;
    let next = cx.b.binary_scalar(BinaryOp::Add, low, 1.0)?;
    let high = cx.b.select(at_end, low, next)?;
    let l = cx.b.sub(c, low)?;
    let one = cx.scalar(dtype, 1.0);
    let h = cx.b.sub(one, l)?;
    let (low, high) = (cx.b.cast(low, DType::I64)?, cx.b.cast(high, DType::I64)?);
    Ok(vec![
        Tap { index: low, weight: Some(h), inside: Some(inside) },
        Tap { index: high, weight: Some(l), inside: Some(inside) },
    ])
}

//! `Resize` (opsets 10–19) and `Upsample`: one IR `resize` with every input fixed at import.
//!
//! Scales, sizes, roi and axes must be constants. The output size is computed here as ONNX
//! specifies (`floor(L * scale)` from scales; from sizes, `scale = size / L`, adjusted by
//! `keep_aspect_ratio_policy`), so the IR op has static sizes. Axes that stay the same (scale 1,
//! same length, no crop) are left out of the IR op.

use super::{Fail, NodeCx, Out};
use nnc_ir::shape::normalize_axis;
use nnc_ir::{CoordMode, NearestMode, Op, ResizeAttrs, ResizeMode, TensorType};

/// An attribute string looked up in a mode enum, or an error naming the attribute.
fn named<T>(cx: &NodeCx, attr: &str, default: &str, parse: fn(&str) -> Option<T>) -> Result<T, Fail> {
    let v = cx.attr_string(attr)?.unwrap_or_else(|| default.into());
    parse(&v).ok_or_else(|| format!("{attr} = `{v}` is not supported").into())
}

fn floats(cx: &NodeCx, i: usize) -> Result<Option<Vec<f64>>, Fail> {
    Ok(cx.opt_const_input(i)?.map(|t| t.to_f64_vec()).filter(|v| !v.is_empty()))
}

/// The concrete length of axis `a`, which computing an output size needs.
fn concrete_len(ty: &TensorType, a: usize) -> Result<i64, Fail> {
    ty.shape[a].as_const().ok_or_else(|| format!("axis {a} of {ty} must be concrete to resize it").into())
}

pub fn resize(cx: &mut NodeCx) -> Out {
    let legacy = cx.node.op_type() == "Upsample" || cx.opset < 11;
    if legacy {
        cx.only_attrs(&["mode", "scales"])?;
    } else {
        cx.only_attrs(&[
            "antialias",
            "axes",
            "coordinate_transformation_mode",
            "cubic_coeff_a",
            "exclude_outside",
            "extrapolation_value",
            "keep_aspect_ratio_policy",
            "mode",
            "nearest_mode",
        ])?;
    }
    let x = cx.input(0)?;
    let ty = cx.ty(x);
    let rank = ty.rank();
    let mode = named(cx, "mode", "nearest", ResizeMode::from_name)?;
    if mode != ResizeMode::Nearest && !ty.dtype.is_float() {
        return Err(format!("mode = {} needs a floating-point input, found {}", mode.name(), ty.dtype).into());
    }
    let axes: Vec<usize> = match cx.attr_ints("axes")? {
        Some(a) => a.iter().map(|&a| normalize_axis(a, rank)).collect::<Result<_, _>>()?,
        None => (0..rank).collect(),
    };
    let (scales, sizes, roi) = if legacy {
        // Upsample-7 has its scales as an attribute; Upsample-9 and Resize-10 as operand 1.
        let scales = match cx.attr_floats("scales")? {
            Some(s) => s.into_iter().map(f64::from).collect(),
            None => floats(cx, 1)?.ok_or("scales are required")?,
        };
        (Some(scales), None, None)
    } else {
        (floats(cx, 2)?, cx.opt_const_ints(3)?.filter(|s| !s.is_empty()), floats(cx, 1)?)
    };
    let n = axes.len();
    let mut out_sizes = vec![0i64; n];
    let mut used_scales = vec![1.0f64; n];
    match (scales, sizes) {
        (Some(s), None) => {
            if s.len() != n {
                return Err(format!("scales needs {n} entries, found {}", s.len()).into());
            }
            for (k, &a) in axes.iter().enumerate() {
                used_scales[k] = s[k];
                if s[k] == 1.0 && ty.shape[a].as_const().is_none() {
                    out_sizes[k] = -1; // an unchanged symbolic axis, left out below
                    continue;
                }
                out_sizes[k] = (s[k] * concrete_len(&ty, a)? as f64) as i64;
            }
        }
        (None, Some(sz)) => {
            if sz.len() != n {
                return Err(format!("sizes needs {n} entries, found {}", sz.len()).into());
            }
            let lens: Vec<i64> = axes.iter().map(|&a| concrete_len(&ty, a)).collect::<Result<_, _>>()?;
            let policy = cx.attr_string("keep_aspect_ratio_policy")?.unwrap_or_else(|| "stretch".into());
            let ratios: Vec<f64> = sz.iter().zip(&lens).map(|(&s, &l)| s as f64 / l as f64).collect();
            let common = match policy.as_str() {
                "stretch" => None,
                "not_larger" => ratios.iter().copied().reduce(f64::min),
                "not_smaller" => ratios.iter().copied().reduce(f64::max),
                other => return Err(format!("keep_aspect_ratio_policy = `{other}` is not supported").into()),
            };
            for k in 0..n {
                match common {
                    None => (used_scales[k], out_sizes[k]) = (ratios[k], sz[k]),
                    // Rounded half up, as ONNX specifies.
                    Some(c) => (used_scales[k], out_sizes[k]) = (c, (c * lens[k] as f64 + 0.5) as i64),
                }
            }
        }
        (Some(_), Some(_)) => return Err("only one of scales and sizes may be given".into()),
        (None, None) => return Err("one of scales and sizes is required".into()),
    }
    let coord = if legacy {
        CoordMode::Asymmetric
    } else {
        named(cx, "coordinate_transformation_mode", "half_pixel", CoordMode::from_name)?
    };
    let nearest_mode = if legacy {
        // ONNX Runtime's "simple" rule: floor when upsampling, ceil when downsampling.
        let down = used_scales.iter().any(|&s| s < 1.0);
        let up = used_scales.iter().any(|&s| s > 1.0);
        match (mode, down, up) {
            (ResizeMode::Nearest, true, true) => {
                return Err("nearest resizing that upsamples some axes and downsamples others needs opset 11".into())
            }
            (_, true, _) => NearestMode::Ceil,
            _ => NearestMode::Floor,
        }
    } else {
        named(cx, "nearest_mode", "round_prefer_floor", NearestMode::from_name)?
    };
    let exclude_outside = cx.attr_int_or("exclude_outside", 0)? != 0;
    let antialias = cx.attr_int_or("antialias", 0)? != 0;
    if mode == ResizeMode::Nearest && (exclude_outside || antialias) {
        let attr = if exclude_outside { "exclude_outside" } else { "antialias" };
        return Err(format!("{attr} = 1 is not supported with mode = nearest").into());
    }
    let roi = match roi {
        Some(roi) if coord == CoordMode::TfCropAndResize => {
            if roi.len() != 2 * n {
                return Err(format!("roi needs {} entries (starts, then ends), found {}", 2 * n, roi.len()).into());
            }
            roi
        }
        _ => [vec![0.0; n], vec![1.0; n]].concat(),
    };
    // Keep the axes that change.
    let mut attrs = ResizeAttrs {
        mode,
        coordinate_transformation_mode: coord,
        nearest_mode,
        cubic_coeff_a: f64::from(cx.attr_float_or("cubic_coeff_a", -0.75)?),
        exclude_outside,
        extrapolation_value: f64::from(cx.attr_float_or("extrapolation_value", 0.0)?),
        antialias,
        axes: vec![],
        sizes: vec![],
        scales: vec![],
        roi: vec![],
    };
    let mut ends = Vec::new();
    for (k, &a) in axes.iter().enumerate() {
        let same_len = out_sizes[k] == -1 || ty.shape[a].as_const() == Some(out_sizes[k]);
        let crops = coord == CoordMode::TfCropAndResize && (roi[k] != 0.0 || roi[n + k] != 1.0);
        if used_scales[k] == 1.0 && same_len && !crops {
            continue;
        }
        if out_sizes[k] < 0 {
            return Err(format!("the output size of axis {a} is negative").into());
        }
        attrs.axes.push(a);
        attrs.sizes.push(out_sizes[k]);
        attrs.scales.push(used_scales[k]);
        attrs.roi.push(roi[k]);
        ends.push(roi[n + k]);
    }
    attrs.roi.extend(ends);
    if attrs.axes.is_empty() {
        return Ok(vec![NodeCx::value(x)]);
    }
    Ok(vec![NodeCx::value(cx.b.op1(Op::Resize(attrs), &[x])?)])
}

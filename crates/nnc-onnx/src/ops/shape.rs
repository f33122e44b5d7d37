//! ONNX ops that build, inspect or rearrange shapes: constants, `Shape`, `Reshape`, `Slice`,
//! `Concat`, `Gather`, `Pad`, ...

use super::{Fail, NodeCx, Out};
use nnc_ir::shape::normalize_axis;
use nnc_ir::{Dim, PadMode, TensorData};

/// Largest constant the importer materializes from a `ConstantOfShape` or `Range`; a larger
/// `ConstantOfShape` becomes a broadcast in the graph instead.
const MAX_CONSTANT_ELEMENTS: usize = 1 << 16;

pub fn constant(cx: &mut NodeCx) -> Out {
    let attr = cx.node.attribute.first().map(|a| a.name().to_string()).ok_or("`Constant` has no value attribute")?;
    cx.only_attrs(&[attr.as_str()])?;
    let data = match attr.as_str() {
        "value" => cx.attr_tensor("value")?.ok_or("missing value")?,
        "value_float" => TensorData::scalar(cx.attr_float_or("value_float", 0.0)?),
        "value_floats" => {
            let v = cx.attr_floats("value_floats")?.unwrap_or_default();
            TensorData::from_vec(vec![v.len()], &v)
        }
        "value_int" => TensorData::scalar(cx.attr_int_or("value_int", 0)?),
        "value_ints" => {
            let v = cx.attr_ints("value_ints")?.unwrap_or_default();
            TensorData::from_vec(vec![v.len()], &v)
        }
        other => return Err(format!("`Constant` with `{other}` is not supported").into()),
    };
    Ok(vec![NodeCx::known(data)])
}

fn checked_count(shape: &[usize]) -> Result<usize, Fail> {
    shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&n| n <= MAX_CONSTANT_ELEMENTS)
        .ok_or_else(|| Fail(format!("a constant of shape {shape:?} is too large")))
}

fn usize_shape(dims: &[i64]) -> Result<Vec<usize>, Fail> {
    dims.iter().map(|&d| usize::try_from(d).map_err(|_| Fail(format!("negative dimension {d}")))).collect()
}

pub fn constant_of_shape(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&["value"])?;
    let shape = usize_shape(&cx.const_ints(0)?)?;
    let fill = cx.attr_tensor("value")?.unwrap_or_else(|| TensorData::scalar(0.0f32));
    if fill.len() != 1 {
        return Err("`value` must hold one element".into());
    }
    let Ok(n) = checked_count(&shape) else {
        let scalar = cx.b.constant(fill.reshaped(vec![]).ok_or("`value` must hold one element")?);
        let dims = shape.iter().map(|&d| Dim::from(d)).collect();
        return Ok(vec![NodeCx::value(cx.b.expand(scalar, dims)?)]);
    };
    let one = fill.bytes().clone();
    let mut bytes = Vec::with_capacity(n * one.len());
    for _ in 0..n {
        bytes.extend_from_slice(&one);
    }
    let data = TensorData::from_bytes(fill.dtype(), shape, bytes.into()).map_err(|e| e.to_string())?;
    Ok(vec![NodeCx::known(data)])
}

/// `Shape` is known at import time when the operand's shape is concrete.
pub fn shape(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&["start", "end"])?;
    let ty = cx.input_type(0)?;
    let rank = ty.rank() as i64;
    let clamp = |v: i64| if v < 0 { (v + rank).max(0) } else { v.min(rank) };
    let start = clamp(cx.attr_int_or("start", 0)?) as usize;
    let end = clamp(cx.attr_int_or("end", rank)?) as usize;
    let dims: Vec<i64> = ty.shape[start..end.max(start)]
        .iter()
        .map(|d| d.as_const().ok_or_else(|| Fail(format!("`Shape` of {ty} has symbolic dimension {d}"))))
        .collect::<Result<_, _>>()?;
    Ok(vec![NodeCx::known(TensorData::from_vec(vec![dims.len()], &dims))])
}

pub fn size(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&[])?;
    let ty = cx.input_type(0)?;
    let n = ty.num_elements().as_const().ok_or_else(|| Fail(format!("`Size` of {ty} is symbolic")))?;
    Ok(vec![NodeCx::known(TensorData::scalar(n))])
}

/// `Reshape`: 0 copies the input's dimension (unless `allowzero`), -1 is inferred.
pub fn reshape(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&["allowzero"])?;
    let x = cx.input(0)?;
    let spec = cx.const_ints(1)?;
    let shape = resolve_reshape(&cx.ty(x).shape, &spec, cx.attr_int_or("allowzero", 0)? != 0)?;
    Ok(vec![NodeCx::value(cx.b.reshape(x, shape)?)])
}

fn resolve_reshape(input: &[Dim], spec: &[i64], allow_zero: bool) -> Result<Vec<Dim>, Fail> {
    let mut out: Vec<Option<Dim>> = Vec::with_capacity(spec.len());
    for (i, &s) in spec.iter().enumerate() {
        out.push(match s {
            -1 => None,
            0 if !allow_zero => Some(
                input
                    .get(i)
                    .cloned()
                    .ok_or_else(|| Fail(format!("shape entry {i} is 0 but the input has rank {}", input.len())))?,
            ),
            s if s >= 0 => Some(Dim::constant(s)),
            s => return Err(format!("invalid shape entry {s}").into()),
        });
    }
    if out.iter().filter(|d| d.is_none()).count() > 1 {
        return Err("shape has more than one -1".into());
    }
    let total = input.iter().cloned().fold(Dim::constant(1), |a, b| a * b);
    let known = out.iter().flatten().cloned().fold(Dim::constant(1), |a, b| a * b);
    let mut shape = Vec::with_capacity(out.len());
    for d in out {
        shape.push(match d {
            Some(d) => d,
            None => total
                .div_exact_dim(&known)
                .ok_or_else(|| Fail(format!("cannot infer -1: {total} elements are not divisible by {known}")))?,
        });
    }
    Ok(shape)
}

pub fn flatten(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&["axis"])?;
    let x = cx.input(0)?;
    let ty = cx.ty(x);
    let r = ty.rank() as i64;
    let axis = cx.attr_int_or("axis", 1)?;
    let axis = if axis < 0 { axis + r } else { axis };
    if !(0..=r).contains(&axis) {
        return Err(format!("axis {axis} is out of range for rank {r}").into());
    }
    let product = |dims: &[Dim]| dims.iter().cloned().fold(Dim::constant(1), |a, b| a * b);
    let shape = vec![product(&ty.shape[..axis as usize]), product(&ty.shape[axis as usize..])];
    Ok(vec![NodeCx::value(cx.b.reshape(x, shape)?)])
}

/// Axes from the `axes` attribute (older opsets) or the second operand (opset 13 on).
fn axes_attr_or_input(cx: &NodeCx) -> Result<Option<Vec<i64>>, Fail> {
    Ok(match cx.attr_ints("axes")? {
        Some(a) => Some(a),
        None => cx.opt_const_ints(1)?,
    })
}

pub fn squeeze(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&["axes"])?;
    let x = cx.input(0)?;
    let ty = cx.ty(x);
    let axes: Vec<usize> = match axes_attr_or_input(cx)? {
        Some(a) => a.iter().map(|&a| normalize_axis(a, ty.rank())).collect::<Result<_, _>>()?,
        None => (0..ty.rank()).filter(|&a| ty.shape[a] == Dim::constant(1)).collect(),
    };
    for &a in &axes {
        if ty.shape[a] != Dim::constant(1) {
            return Err(format!("cannot squeeze axis {a} of {ty}: its size is not 1").into());
        }
    }
    let shape: Vec<Dim> =
        ty.shape.iter().enumerate().filter(|(a, _)| !axes.contains(a)).map(|(_, d)| d.clone()).collect();
    Ok(vec![NodeCx::value(cx.b.reshape(x, shape)?)])
}

pub fn unsqueeze(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&["axes"])?;
    let x = cx.input(0)?;
    let ty = cx.ty(x);
    let axes = axes_attr_or_input(cx)?.ok_or("axes are required")?;
    let out_rank = ty.rank() + axes.len();
    let mut axes: Vec<usize> = axes.iter().map(|&a| normalize_axis(a, out_rank)).collect::<Result<_, _>>()?;
    axes.sort_unstable();
    let mut dims = ty.shape.iter().cloned();
    let shape: Vec<Dim> = (0..out_rank)
        .map(|a| if axes.contains(&a) { Dim::constant(1) } else { dims.next().unwrap_or(Dim::constant(1)) })
        .collect();
    Ok(vec![NodeCx::value(cx.b.reshape(x, shape)?)])
}

pub fn transpose(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&["perm"])?;
    let x = cx.input(0)?;
    let rank = cx.rank(x);
    let perm: Vec<usize> = match cx.attr_ints("perm")? {
        Some(p) => p.iter().map(|&a| normalize_axis(a, rank)).collect::<Result<_, _>>()?,
        None => (0..rank).rev().collect(),
    };
    Ok(vec![NodeCx::value(cx.b.transpose(x, perm)?)])
}

pub fn concat(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&["axis"])?;
    let axis = cx.attr_int("axis")?.ok_or("axis is required")?;
    let mut xs = Vec::new();
    for i in 0..cx.num_inputs() {
        if cx.has_input(i) {
            xs.push(cx.input(i)?);
        }
    }
    Ok(vec![NodeCx::value(cx.b.concat(&xs, axis)?)])
}

/// `Split` into slices along `axis`: sizes from the `split` operand/attribute, or equal parts
/// (the last one smaller if `num_outputs` does not divide the length).
pub fn split(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&["axis", "split", "num_outputs"])?;
    let x = cx.input(0)?;
    let ty = cx.ty(x);
    let axis = normalize_axis(cx.attr_int_or("axis", 0)?, ty.rank())?;
    let len = ty.shape[axis].as_const().ok_or("Split needs a concrete length on its axis")?;
    let parts = cx.node.output.len() as i64;
    let sizes: Vec<i64> = match cx.attr_ints("split")? {
        Some(s) => s,
        None => match cx.opt_const_ints(1)? {
            Some(s) => s,
            None => {
                let n = cx.attr_int_or("num_outputs", parts)?;
                if n != parts {
                    return Err(format!("num_outputs = {n}, but the node has {parts} outputs").into());
                }
                let n = n.max(1);
                let chunk = len / n + i64::from(len % n != 0);
                (0..n).map(|i| (len - i * chunk).clamp(0, chunk)).collect()
            }
        },
    };
    let total = sizes.iter().try_fold(0i64, |a, &s| if s < 0 { None } else { a.checked_add(s) });
    if total != Some(len) || sizes.len() as i64 != parts {
        return Err(format!("split sizes {sizes:?} do not cover length {len} in {parts} outputs").into());
    }
    let mut start = 0;
    let mut outs = Vec::new();
    for s in sizes {
        let op = nnc_ir::Op::Slice { axes: vec![axis], starts: vec![start], ends: vec![start + s], steps: vec![1] };
        outs.push(NodeCx::value(cx.b.op1(op, &[x])?));
        start += s;
    }
    Ok(outs)
}

/// `Slice`: bounds are attributes before opset 10, operands after.
pub fn slice(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&["axes", "starts", "ends"])?;
    let x = cx.input(0)?;
    let rank = cx.rank(x);
    let (starts, ends, axes, steps) = if cx.opset < 10 {
        (
            cx.attr_ints("starts")?.ok_or("starts is required")?,
            cx.attr_ints("ends")?.ok_or("ends is required")?,
            cx.attr_ints("axes")?,
            None,
        )
    } else {
        (cx.const_ints(1)?, cx.const_ints(2)?, cx.opt_const_ints(3)?, cx.opt_const_ints(4)?)
    };
    let n = starts.len();
    let axes: Vec<usize> = axes
        .unwrap_or_else(|| (0..n as i64).collect())
        .iter()
        .map(|&a| normalize_axis(a, rank))
        .collect::<Result<_, _>>()?;
    let steps = steps.unwrap_or_else(|| vec![1; n]);
    let op = nnc_ir::Op::Slice { axes, starts, ends, steps };
    Ok(vec![NodeCx::value(cx.b.op1(op, &[x])?)])
}

pub fn gather(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&["axis"])?;
    let (data, idx) = (cx.input(0)?, cx.input(1)?);
    let axis = cx.attr_int_or("axis", 0)?;
    Ok(vec![NodeCx::value(cx.b.gather(data, idx, axis)?)])
}

pub fn expand(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&[])?;
    let x = cx.input(0)?;
    let shape: Vec<Dim> = cx.const_ints(1)?.into_iter().map(Dim::constant).collect();
    Ok(vec![NodeCx::value(cx.b.expand(x, shape)?)])
}

/// `Tile`: each axis `d` becomes `[r, d]` by broadcasting a new leading axis, then merges.
pub fn tile(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&[])?;
    let x = cx.input(0)?;
    let ty = cx.ty(x);
    let repeats = cx.const_ints(1)?;
    if repeats.len() != ty.rank() || repeats.iter().any(|&r| r < 0) {
        return Err(format!("repeats {repeats:?} must have one non-negative entry per axis of {ty}").into());
    }
    let interleaved: Vec<Dim> = ty.shape.iter().flat_map(|d| [Dim::constant(1), d.clone()]).collect();
    let expanded: Vec<Dim> = ty.shape.iter().zip(&repeats).flat_map(|(d, &r)| [Dim::constant(r), d.clone()]).collect();
    let merged: Vec<Dim> = ty.shape.iter().zip(&repeats).map(|(d, &r)| Dim::constant(r) * d.clone()).collect();
    let v = cx.b.reshape(x, interleaved)?;
    let v = cx.b.expand(v, expanded)?;
    Ok(vec![NodeCx::value(cx.b.reshape(v, merged)?)])
}

/// `Pad`: pads and value are attributes before opset 11, operands after; opset 18 adds `axes`.
pub fn pad(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&["mode", "pads", "value"])?;
    let x = cx.input(0)?;
    let rank = cx.rank(x);
    let mode = match cx.attr_string("mode")?.as_deref().unwrap_or("constant") {
        "constant" => PadMode::Constant,
        "reflect" => PadMode::Reflect,
        "edge" => PadMode::Edge,
        "wrap" => PadMode::Wrap,
        other => return Err(format!("mode `{other}` is not supported").into()),
    };
    let (raw, value, axes) = if cx.opset < 11 {
        (cx.attr_ints("pads")?.ok_or("pads is required")?, cx.attr_float_or("value", 0.0)? as f64, None)
    } else {
        let value = match cx.opt_const_input(2)? {
            Some(v) => v.to_f64_vec().first().copied().unwrap_or(0.0),
            None => 0.0,
        };
        (cx.const_ints(1)?, value, cx.opt_const_ints(3)?)
    };
    let axes: Vec<usize> = match axes {
        Some(a) => a.iter().map(|&a| normalize_axis(a, rank)).collect::<Result<_, _>>()?,
        None => (0..rank).collect(),
    };
    if raw.len() != 2 * axes.len() {
        return Err(format!("pads has {} entries for {} axes", raw.len(), axes.len()).into());
    }
    let mut pads = vec![0; 2 * rank];
    for (k, &a) in axes.iter().enumerate() {
        pads[a] = raw[k];
        pads[a + rank] = raw[k + axes.len()];
    }
    Ok(vec![NodeCx::value(cx.b.pad(x, pads, mode, value)?)])
}

/// `Range(start, limit, delta)`: computed at import time, so all three must be constants.
/// `CenterCropPad(input, shape)`: each of `axes` (all by default) cropped or zero-padded to
/// the size `shape` gives, centred (an odd difference leaves the extra element at the end), as
/// one `pad` whose negative pads crop.
pub fn center_crop_pad(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&["axes"])?;
    let x = cx.input(0)?;
    let sizes = cx.const_ints(1)?;
    let ty = cx.ty(x);
    let rank = ty.rank();
    let axes = match cx.attr_ints("axes")? {
        Some(axes) => axes.iter().map(|&a| normalize_axis(a, rank)).collect::<Result<Vec<_>, _>>()?,
        None => (0..rank).collect(),
    };
    if axes.len() != sizes.len() {
        return Err(format!("{} sizes for {} axes", sizes.len(), axes.len()).into());
    }
    let mut pads = vec![0i64; 2 * rank];
    for (&axis, &want) in axes.iter().zip(&sizes) {
        let have = ty.shape[axis].as_const().ok_or_else(|| format!("axis {axis} of {ty} must be static"))?;
        if want < 0 {
            return Err(format!("size {want} for axis {axis} is negative").into());
        }
        // Grow by `diff` (crop where negative): half before, the odd one after.
        let diff = want - have;
        let before = if diff >= 0 { diff / 2 } else { -((-diff) / 2) };
        pads[axis] = before;
        pads[rank + axis] = diff - before;
    }
    Ok(vec![NodeCx::value(cx.b.pad(x, pads, PadMode::Constant, 0.0)?)])
}

pub fn range(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&[])?;
    let (start, limit, delta) = (cx.const_input(0)?, cx.const_input(1)?, cx.const_input(2)?);
    let dtype = start.dtype();
    let first =
        |t: &TensorData| t.to_f64_vec().first().copied().ok_or_else(|| Fail("Range operands must be scalars".into()));
    let (s, l, d) = (first(&start)?, first(&limit)?, first(&delta)?);
    if d == 0.0 {
        return Err("delta must not be 0".into());
    }
    let n = ((l - s) / d).ceil().max(0.0);
    if !n.is_finite() || n > MAX_CONSTANT_ELEMENTS as f64 {
        return Err(format!("Range({s}, {l}, {d}) has too many elements").into());
    }
    let n = n as usize;
    let data = if dtype.is_int() {
        let (s, d) = (start.to_i64_vec()[0], delta.to_i64_vec()[0]);
        TensorData::from_i64(dtype, vec![n], &(0..n as i64).map(|i| s + i * d).collect::<Vec<_>>())
    } else {
        TensorData::from_f64(dtype, vec![n], &(0..n).map(|i| s + i as f64 * d).collect::<Vec<_>>())
    };
    Ok(vec![NodeCx::known(data)])
}

/// `DepthToSpace`: moves channel blocks into `blocksize`×`blocksize` spatial tiles, in DCR
/// (depth-column-row, the default) or CRD order.
pub fn depth_to_space(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&["blocksize", "mode"])?;
    let x = cx.input(0)?;
    let [n, c, h, w] = four_dims(cx, x)?;
    let b = cx.attr_int("blocksize")?.ok_or("blocksize is required")?;
    let bd = Dim::constant(b);
    let c_out =
        c.div_exact(b * b).ok_or_else(|| Fail(format!("{c} channels are not divisible by blocksize² = {}", b * b)))?;
    let crd = cx.attr_string("mode")?.as_deref() == Some("CRD");
    let (split, perm) = if crd {
        (vec![n.clone(), c_out.clone(), bd.clone(), bd.clone(), h.clone(), w.clone()], vec![0, 1, 4, 2, 5, 3])
    } else {
        (vec![n.clone(), bd.clone(), bd.clone(), c_out.clone(), h.clone(), w.clone()], vec![0, 3, 4, 1, 5, 2])
    };
    let v = cx.b.reshape(x, split)?;
    let v = cx.b.transpose(v, perm)?;
    Ok(vec![NodeCx::value(cx.b.reshape(v, vec![n, c_out, h * bd.clone(), w * bd])?)])
}

/// `SpaceToDepth`: the inverse of `DepthToSpace` in DCR order.
pub fn space_to_depth(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&["blocksize"])?;
    let x = cx.input(0)?;
    let [n, c, h, w] = four_dims(cx, x)?;
    let b = cx.attr_int("blocksize")?.ok_or("blocksize is required")?;
    let bd = Dim::constant(b);
    let (ho, wo) = (h.div_exact(b), w.div_exact(b));
    let (Some(ho), Some(wo)) = (ho, wo) else {
        return Err(format!("spatial size {h}×{w} is not divisible by {b}").into());
    };
    let v = cx.b.reshape(x, vec![n.clone(), c.clone(), ho.clone(), bd.clone(), wo.clone(), bd.clone()])?;
    let v = cx.b.transpose(v, vec![0, 3, 5, 1, 2, 4])?;
    Ok(vec![NodeCx::value(cx.b.reshape(v, vec![n, c * bd.clone() * bd, ho, wo])?)])
}

fn four_dims(cx: &NodeCx, x: nnc_ir::ValueId) -> Result<[Dim; 4], Fail> {
    let ty = cx.ty(x);
    match ty.shape.as_slice() {
        [n, c, h, w] => Ok([n.clone(), c.clone(), h.clone(), w.clone()]),
        _ => Err(format!("input must be [N, C, H, W], found {ty}").into()),
    }
}

//! Normalization ops: layer, RMS, group, instance, Lp, mean-variance, local response.

use super::{blend, Fail, NodeCx, Out};
use nnc_ir::shape::normalize_axis;
use nnc_ir::{BinaryOp, Dim, Op, TensorData, UnaryOp, ValueId};

/// `BatchNormalization` → the IR's `batch_norm` composite (training mode: see below).
pub fn batch_norm(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&["epsilon", "momentum", "spatial", "training_mode", "is_test", "consumed_inputs"])?;
    let epsilon = cx.attr_float_or("epsilon", 1e-5)? as f64;
    let inputs = (0..5).map(|i| cx.input(i)).collect::<Result<Vec<_>, _>>()?;
    if cx.attr_int_or("training_mode", 0)? == 0 {
        if cx.node.output.iter().skip(1).any(|o| !o.is_empty()) {
            return Err("the running statistics outputs need training_mode = 1 (opset 15)".into());
        }
        return Ok(vec![NodeCx::value(cx.b.op1(Op::BatchNorm { epsilon }, &inputs)?)]);
    }
    // Training mode (opset 15): normalized by the batch's own statistics (the population
    // variance), with the running statistics moved towards them by `1 - momentum`.
    let x = inputs[0];
    let axes: Vec<i64> = (0..cx.rank(x) as i64).filter(|&a| a != 1).collect();
    let batch_mean = cx.b.reduce_mean(x, &axes, false)?;
    let keep = cx.b.reduce_mean(x, &axes, true)?;
    let centered = cx.b.sub(x, keep)?;
    let squared = cx.b.mul(centered, centered)?;
    let batch_var = cx.b.reduce_mean(squared, &axes, false)?;
    let y = cx.b.op1(Op::BatchNorm { epsilon }, &[x, inputs[1], inputs[2], batch_mean, batch_var])?;
    let momentum = cx.attr_float_or("momentum", 0.9)? as f64;
    let running_mean = blend(cx, inputs[3], batch_mean, momentum)?;
    let running_var = blend(cx, inputs[4], batch_var, momentum)?;
    Ok(vec![NodeCx::value(y), NodeCx::value(running_mean), NodeCx::value(running_var)])
}

/// `LayerNormalization(X, Scale, B?)` → the IR's `layer_norm` composite; when the `Mean` and
/// `InvStdDev` outputs are wanted, the same computation is spelled out to expose them.
pub fn layer_norm(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&["axis", "epsilon", "stash_type"])?;
    let x = cx.input(0)?;
    let scale = cx.input(1)?;
    let bias = match cx.opt_input(2)? {
        Some(b) => b,
        None => cx.scalar(cx.ty(x).dtype, 0.0),
    };
    let axis = cx.attr_int_or("axis", -1)?;
    let epsilon = cx.attr_float_or("epsilon", 1e-5)? as f64;
    if cx.node.output.iter().skip(1).all(|o| o.is_empty()) {
        return Ok(vec![NodeCx::value(cx.b.layer_norm(x, scale, bias, axis, epsilon)?)]);
    }
    let rank = cx.rank(x);
    let axis = normalize_axis(axis, rank)?;
    let axes: Vec<i64> = (axis as i64..rank as i64).collect();
    let mean = cx.b.reduce_mean(x, &axes, true)?;
    let centered = cx.b.sub(x, mean)?;
    let sq = cx.b.mul(centered, centered)?;
    let var = cx.b.reduce_mean(sq, &axes, true)?;
    let var_eps = cx.b.binary_scalar(BinaryOp::Add, var, epsilon)?;
    let inv_std = cx.b.unary(UnaryOp::Rsqrt, var_eps)?;
    let normed = cx.b.mul(centered, inv_std)?;
    let scaled = cx.b.mul(normed, scale)?;
    let y = cx.b.add(scaled, bias)?;
    Ok(vec![NodeCx::value(y), NodeCx::value(mean), NodeCx::value(inv_std)])
}

/// `x * rsqrt(mean(x², axes from axis) + epsilon) * scale`.
pub fn rms_norm(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&["axis", "epsilon", "stash_type"])?;
    let (x, scale) = (cx.input(0)?, cx.input(1)?);
    let rank = cx.rank(x);
    let axis = normalize_axis(cx.attr_int_or("axis", -1)?, rank)?;
    let axes: Vec<i64> = (axis as i64..rank as i64).collect();
    let epsilon = cx.attr_float_or("epsilon", 1e-5)? as f64;
    let sq = cx.b.mul(x, x)?;
    let ms = cx.b.reduce_mean(sq, &axes, true)?;
    let ms_eps = cx.b.binary_scalar(BinaryOp::Add, ms, epsilon)?;
    let inv = cx.b.unary(UnaryOp::Rsqrt, ms_eps)?;
    let normed = cx.b.mul(x, inv)?;
    Ok(vec![NodeCx::value(cx.b.mul(normed, scale)?)])
}

/// Reshapes a per-channel `[C]` vector to broadcast against `[N, C, ...]` of rank `rank`.
fn per_channel(cx: &mut NodeCx, v: ValueId, rank: usize) -> Result<ValueId, Fail> {
    let mut shape = cx.ty(v).shape;
    shape.extend(std::iter::repeat_n(Dim::constant(1), rank.saturating_sub(2)));
    Ok(cx.b.reshape(v, shape)?)
}

/// `InstanceNormalization(x, scale, bias)`: normalise each channel over its spatial axes.
pub fn instance_norm(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&["epsilon"])?;
    let (x, scale, bias) = (cx.input(0)?, cx.input(1)?, cx.input(2)?);
    let epsilon = cx.attr_float_or("epsilon", 1e-5)? as f64;
    let rank = cx.rank(x);
    let dtype = cx.ty(x).dtype;
    let one = cx.b.constant(TensorData::from_f64(dtype, vec![], &[1.0]));
    let zero = cx.scalar(dtype, 0.0);
    let normed = cx.b.layer_norm(x, one, zero, 2, epsilon)?;
    let s = per_channel(cx, scale, rank)?;
    let b = per_channel(cx, bias, rank)?;
    let scaled = cx.b.mul(normed, s)?;
    Ok(vec![NodeCx::value(cx.b.add(scaled, b)?)])
}

/// `GroupNormalization`: normalise groups of channels; scale and bias are per channel
/// (opset 21) or per group (opset 18).
pub fn group_norm(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&["epsilon", "num_groups", "stash_type"])?;
    let (x, scale, bias) = (cx.input(0)?, cx.input(1)?, cx.input(2)?);
    let ty = cx.ty(x);
    let groups = cx.attr_int("num_groups")?.ok_or("num_groups is required")?;
    let epsilon = cx.attr_float_or("epsilon", 1e-5)? as f64;
    let channels = ty.shape.get(1).cloned().ok_or("input must be [N, C, ...]")?;
    let per_group = channels
        .div_exact(groups)
        .ok_or_else(|| Fail(format!("{channels} channels do not split into {groups} groups")))?;
    let mut grouped = vec![ty.shape[0].clone(), Dim::constant(groups), per_group.clone()];
    grouped.extend(ty.shape[2..].iter().cloned());
    let g = cx.b.reshape(x, grouped)?;
    let one = cx.b.constant(TensorData::from_f64(ty.dtype, vec![], &[1.0]));
    let zero = cx.scalar(ty.dtype, 0.0);
    let normed = cx.b.layer_norm(g, one, zero, 2, epsilon)?;
    let normed = cx.b.reshape(normed, ty.shape.clone())?;
    let (scale, bias) = if cx.ty(scale).shape == [channels.clone()] {
        (scale, bias)
    } else {
        // Per-group parameters: repeat each across its group's channels.
        let repeat = |cx: &mut NodeCx, v: ValueId| -> Result<ValueId, Fail> {
            let col = cx.b.reshape(v, vec![Dim::constant(groups), Dim::constant(1)])?;
            let wide = cx.b.expand(col, vec![Dim::constant(groups), per_group.clone()])?;
            Ok(cx.b.reshape(wide, vec![channels.clone()])?)
        };
        (repeat(cx, scale)?, repeat(cx, bias)?)
    };
    let s = per_channel(cx, scale, ty.rank())?;
    let b = per_channel(cx, bias, ty.rank())?;
    let scaled = cx.b.mul(normed, s)?;
    Ok(vec![NodeCx::value(cx.b.add(scaled, b)?)])
}

/// `LpNormalization`: `x / ||x||_p` along `axis` (p = 1 or 2).
pub fn lp_norm(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&["axis", "p"])?;
    let x = cx.input(0)?;
    let axis = cx.attr_int_or("axis", -1)?;
    let norm = match cx.attr_int_or("p", 2)? {
        1 => {
            let a = cx.b.unary(UnaryOp::Abs, x)?;
            cx.b.reduce_sum(a, &[axis], true)?
        }
        2 => {
            let sq = cx.b.mul(x, x)?;
            let s = cx.b.reduce_sum(sq, &[axis], true)?;
            cx.b.unary(UnaryOp::Sqrt, s)?
        }
        p => return Err(format!("p = {p} is not supported (1 or 2)").into()),
    };
    Ok(vec![NodeCx::value(cx.b.div(x, norm)?)])
}

/// `MeanVarianceNormalization`: `(x - mean) / sqrt(var + 1e-9)` over `axes` (default N, H, W).
pub fn mean_variance_norm(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&["axes"])?;
    let x = cx.input(0)?;
    let axes = cx.attr_ints("axes")?.unwrap_or_else(|| vec![0, 2, 3]);
    let mean = cx.b.reduce_mean(x, &axes, true)?;
    let centered = cx.b.sub(x, mean)?;
    let sq = cx.b.mul(centered, centered)?;
    let var = cx.b.reduce_mean(sq, &axes, true)?;
    let var_eps = cx.b.binary_scalar(BinaryOp::Add, var, 1e-9)?;
    let std = cx.b.unary(UnaryOp::Sqrt, var_eps)?;
    Ok(vec![NodeCx::value(cx.b.div(centered, std)?)])
}

/// `LRN`: `x / (bias + alpha / size * sum of x² over `size` neighbouring channels)^beta`.
/// The channel-window sum is an average pool over a `[N, 1, C, rest]` view.
pub fn lrn(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&["alpha", "beta", "bias", "size"])?;
    let x = cx.input(0)?;
    let ty = cx.ty(x);
    let size = cx.attr_int("size")?.ok_or("size is required")?;
    if ty.rank() < 2 || size < 1 {
        return Err(format!("LRN needs an input [N, C, ...] and size >= 1, found {ty} and size {size}").into());
    }
    let (alpha, beta, bias) = (
        cx.attr_float_or("alpha", 1e-4)? as f64,
        cx.attr_float_or("beta", 0.75)? as f64,
        cx.attr_float_or("bias", 1.0)? as f64,
    );
    let rest = ty.shape[2..].iter().cloned().fold(Dim::constant(1), |a, b| a * b);
    let sq = cx.b.mul(x, x)?;
    let view = cx.b.reshape(sq, vec![ty.shape[0].clone(), Dim::constant(1), ty.shape[1].clone(), rest])?;
    let (mut before, mut after) = ((size - 1) / 2, size - 1 - (size - 1) / 2);
    // Channels beyond the first and last add nothing to the sum: a window wider than the
    // channels is cut to them (only the `alpha / size` below keeps the size asked for).
    if let Some(channels) = ty.shape[1].as_const() {
        before = before.min((channels - 1).max(0));
        after = after.min((channels - 1).max(0));
    }
    let width = before + after + 1;
    let window = nnc_ir::Window { strides: vec![1, 1], dilations: vec![1, 1], pads: vec![before, 0, after, 0] };
    let pool = Op::Pool {
        kind: nnc_ir::PoolKind::Avg,
        kernel: vec![width, 1],
        window,
        ceil_mode: false,
        count_include_pad: true,
    };
    let avg = cx.b.op1(pool, &[view])?;
    let sum = cx.b.binary_scalar(BinaryOp::Mul, avg, width as f64)?;
    let sum = cx.b.reshape(sum, ty.shape.clone())?;
    let scaled = cx.b.binary_scalar(BinaryOp::Mul, sum, alpha / size as f64)?;
    let base = cx.b.binary_scalar(BinaryOp::Add, scaled, bias)?;
    let denom = cx.b.binary_scalar(BinaryOp::Pow, base, beta)?;
    Ok(vec![NodeCx::value(cx.b.div(x, denom)?)])
}

//! Neural-network ONNX ops: convolution, pooling, Gemm/MatMul, normalizations, softmax.

use super::integer_matmul::integer_matmul;
use super::{built_size, product, within_index_range, Fail, NodeCx, Out};
use nnc_ir::{BinaryOp, Dim, Op, PoolKind, ReduceKind, TensorData, TensorType, UnaryOp, ValueId, Window};

/// The most elements a pooling window may cover: a window is all summed (or compared) for every
/// output element, and nothing real pools over a million values at once, while a mutated
/// `kernel_shape` of 2^31 with `SAME` padding would run for hours.
const MAX_POOL_WINDOW: i64 = 1 << 20;

/// `Err` unless the pooling `kernel` covers at most [`MAX_POOL_WINDOW`] elements.
fn check_pool_window(kernel: &[i64]) -> Result<(), Fail> {
    match product(kernel.iter().copied(), "kernel_shape") {
        Ok(n) if n <= MAX_POOL_WINDOW => Ok(()),
        _ => {
            Err(format!("kernel_shape {kernel:?} covers more than {MAX_POOL_WINDOW} elements, more than nnc pools")
                .into())
        }
    }
}

/// Reads `strides`, `dilations` and `pads` (resolving `auto_pad`) for `n` spatial axes of an
/// input of type `x`.
pub(super) fn window(cx: &NodeCx, x: &TensorType, kernel: &[i64]) -> Result<Window, Fail> {
    let n = kernel.len();
    let strides = cx.attr_ints("strides")?.unwrap_or_else(|| vec![1; n]);
    let dilations = cx.attr_ints("dilations")?.unwrap_or_else(|| vec![1; n]);
    if strides.len() != n || dilations.len() != n {
        return Err(format!("strides and dilations need {n} entries").into());
    }
    if strides.iter().chain(&dilations).chain(kernel).any(|&v| v < 1) {
        return Err(
            format!("kernel {kernel:?}, strides {strides:?} and dilations {dilations:?} must be positive").into()
        );
    }
    if x.rank() != n + 2 {
        return Err(format!("the input must be [N, C, {n} spatial axes], found {x}").into());
    }
    let auto_pad = cx.attr_string("auto_pad")?.unwrap_or_else(|| "NOTSET".into());
    let pads = match auto_pad.as_str() {
        "NOTSET" => cx.attr_ints("pads")?.unwrap_or_else(|| vec![0; 2 * n]),
        "VALID" => vec![0; 2 * n],
        "SAME_UPPER" | "SAME_LOWER" => {
            // Output length ceil(len / stride); the padding that needs is split evenly, the odd
            // element going at the end (UPPER) or the beginning (LOWER).
            let ty = x;
            let mut pads = vec![0; 2 * n];
            for i in 0..n {
                let len = ty.shape[2 + i].as_const().ok_or("auto_pad SAME needs concrete spatial sizes")?;
                let out = (len as i128 + strides[i] as i128 - 1) / strides[i] as i128;
                // In i128: every factor is an i64 read from the file.
                let total =
                    (out - 1) * strides[i] as i128 + (kernel[i] as i128 - 1) * dilations[i] as i128 + 1 - len as i128;
                let total = i64::try_from(total.max(0)).map_err(|_| "auto_pad SAME: the padding is too large")?;
                let small = total / 2;
                let (begin, end) =
                    if auto_pad == "SAME_UPPER" { (small, total - small) } else { (total - small, small) };
                pads[i] = begin;
                pads[i + n] = end;
            }
            pads
        }
        other => return Err(format!("auto_pad = `{other}` is not supported").into()),
    };
    if pads.len() != 2 * n {
        return Err(format!("pads needs {} entries", 2 * n).into());
    }
    Ok(Window { strides, dilations, pads })
}

/// `Conv(X, W, B?)`: an IR `conv`, plus a bias add broadcast over the channel axis.
pub fn conv(cx: &mut NodeCx) -> Out {
    let mut y = match super::integer_conv::integer_conv(cx)? {
        Some(y) => y,
        None => {
            let (x, w) = (cx.input(0)?, cx.input(1)?);
            conv_of(cx, x, w)?
        }
    };
    if let Some(bias) = cx.opt_input(2)? {
        y = add_channel_bias(cx, y, bias)?;
    }
    Ok(vec![NodeCx::value(y)])
}

/// The convolution of `x` by `w` with the node's `Conv` attributes (shared by the quantized
/// convolutions, whose operands are not the node's inputs as they are).
pub(super) fn conv_of(cx: &mut NodeCx, x: ValueId, w: ValueId) -> Result<ValueId, Fail> {
    cx.only_attrs(&["auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"])?;
    let w_ty = cx.ty(w);
    let kernel: Vec<i64> = w_ty.shape[2.min(w_ty.rank())..]
        .iter()
        .map(|d| d.as_const().ok_or("kernel sizes must be concrete"))
        .collect::<Result<_, _>>()?;
    let window = window(cx, &cx.ty(x), &kernel)?;
    let groups = cx.attr_int_or("group", 1)?;
    Ok(cx.b.conv(x, w, window, groups)?)
}

/// `ConvTranspose(X, W, B?)`: an IR `conv_transpose` plus the bias. With `output_shape` (or
/// `auto_pad = SAME_*`, whose output is `input * stride`) the pads are derived from the wanted
/// size as ONNX specifies, the odd unit going to the beginning (`SAME_UPPER`: the end); a
/// negative end pad (an output larger than the full result) becomes extra `output_padding`.
pub fn conv_transpose(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&[
        "auto_pad",
        "dilations",
        "group",
        "kernel_shape",
        "output_padding",
        "output_shape",
        "pads",
        "strides",
    ])?;
    let (x, w) = (cx.input(0)?, cx.input(1)?);
    let (x_ty, w_ty) = (cx.ty(x), cx.ty(w));
    if w_ty.rank() < 3 || x_ty.rank() != w_ty.rank() {
        return Err(format!("input {x_ty} and weight {w_ty} must have the same rank, 3 or more").into());
    }
    let n = w_ty.rank() - 2;
    let kernel: Vec<i64> = w_ty.shape[2..]
        .iter()
        .map(|d| d.as_const().ok_or("kernel sizes must be concrete"))
        .collect::<Result<_, _>>()?;
    if let Some(k) = cx.attr_ints("kernel_shape")? {
        if k != kernel {
            return Err(format!("kernel_shape {k:?} differs from the weight's spatial shape {kernel:?}").into());
        }
    }
    let strides = cx.attr_ints("strides")?.unwrap_or_else(|| vec![1; n]);
    let dilations = cx.attr_ints("dilations")?.unwrap_or_else(|| vec![1; n]);
    let mut output_padding = cx.attr_ints("output_padding")?.unwrap_or_else(|| vec![0; n]);
    if strides.len() != n || dilations.len() != n || output_padding.len() != n {
        return Err(format!("strides, dilations and output_padding need {n} entries").into());
    }
    let auto_pad = cx.attr_string("auto_pad")?.unwrap_or_else(|| "NOTSET".into());
    let same = matches!(auto_pad.as_str(), "SAME_UPPER" | "SAME_LOWER");
    if !same && !matches!(auto_pad.as_str(), "NOTSET" | "VALID") {
        return Err(format!("auto_pad = `{auto_pad}` is not supported").into());
    }
    let input_len = |i: usize| -> Result<i64, Fail> {
        x_ty.shape[2 + i].as_const().ok_or_else(|| "output_shape and auto_pad SAME need concrete spatial sizes".into())
    };
    let wanted: Option<Vec<i64>> = match cx.attr_ints("output_shape")? {
        Some(mut s) => {
            if s.len() == n + 2 {
                s.drain(..2);
            }
            if s.len() != n {
                return Err(format!("output_shape needs {n} entries, found {s:?}").into());
            }
            Some(s)
        }
        None if same => Some(
            (0..n)
                .map(|i| input_len(i)?.checked_mul(strides[i]).ok_or_else(|| "output size overflows 64 bits".into()))
                .collect::<Result<_, Fail>>()?,
        ),
        None => None,
    };
    let pads = match wanted {
        Some(out) => {
            let mut pads = vec![0; 2 * n];
            for i in 0..n {
                // i128: attribute values come from the file and must not overflow.
                let w = |v: i64| i128::from(v);
                let full = w(strides[i]) * (w(input_len(i)?) - 1)
                    + w(output_padding[i])
                    + (w(kernel[i]) - 1) * w(dilations[i])
                    + 1;
                let total = full - w(out[i]);
                let half = total.div_euclid(2);
                let (begin, end) = if auto_pad == "SAME_UPPER" { (half, total - half) } else { (total - half, half) };
                if begin < 0 {
                    return Err(format!("output_shape {out:?} needs padding before the start of axis {i}").into());
                }
                let fit = |v: i128| i64::try_from(v).map_err(|_| Fail::from("ConvTranspose padding overflows 64 bits"));
                pads[i] = fit(begin)?;
                if end < 0 {
                    output_padding[i] = fit(w(output_padding[i]) - end)?;
                } else {
                    pads[i + n] = fit(end)?;
                }
            }
            pads
        }
        None if auto_pad == "VALID" => vec![0; 2 * n],
        None => cx.attr_ints("pads")?.unwrap_or_else(|| vec![0; 2 * n]),
    };
    if pads.len() != 2 * n {
        return Err(format!("pads needs {} entries", 2 * n).into());
    }
    let groups = cx.attr_int_or("group", 1)?;
    let op = Op::ConvTranspose { window: Window { strides, dilations, pads }, output_padding, groups };
    let mut y = cx.b.op1(op, &[x, w])?;
    if let Some(bias) = cx.opt_input(2)? {
        y = add_channel_bias(cx, y, bias)?;
    }
    Ok(vec![NodeCx::value(y)])
}

/// Adds a per-channel `[C]` vector to an `[N, C, ...]` tensor.
pub(super) fn add_channel_bias(cx: &mut NodeCx, y: ValueId, bias: ValueId) -> Result<ValueId, Fail> {
    let rank = cx.rank(y);
    let mut shape = cx.ty(bias).shape;
    shape.extend(std::iter::repeat_n(Dim::constant(1), rank.saturating_sub(2)));
    let b = cx.b.reshape(bias, shape)?;
    Ok(cx.b.add(y, b)?)
}

pub fn pool(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&[
        "auto_pad",
        "ceil_mode",
        "dilations",
        "kernel_shape",
        "pads",
        "strides",
        "storage_order",
        "count_include_pad",
    ])?;
    let wants_indices = cx.node.output.get(1).is_some_and(|o| !o.is_empty());
    let column_major = cx.attr_int_or("storage_order", 0)? != 0;
    let x = cx.input(0)?;
    let kernel = cx.attr_ints("kernel_shape")?.ok_or("kernel_shape is required")?;
    check_pool_window(&kernel)?;
    let window = window(cx, &cx.ty(x), &kernel)?;
    let kind = if cx.node.op_type() == "MaxPool" { PoolKind::Max } else { PoolKind::Avg };
    let ceil_mode = cx.attr_int_or("ceil_mode", 0)? != 0;
    let op = Op::Pool {
        kind,
        kernel: kernel.clone(),
        window: window.clone(),
        ceil_mode,
        count_include_pad: cx.attr_int_or("count_include_pad", 0)? != 0,
    };
    let mut outs = vec![NodeCx::value(cx.b.op1(op, &[x])?)];
    if wants_indices {
        let mut idx = cx.b.op1(Op::ArgMaxPool { kernel, window, ceil_mode }, &[x])?;
        if column_major {
            idx = column_major_index(cx, idx, &cx.ty(x).shape[2..])?;
        }
        outs.push(NodeCx::value(idx));
    }
    Ok(outs)
}

/// `LpPool`: `(Σ_window |x|^p)^(1/p)`, padding counting as zeros: the average pool of `|x|^p`
/// over whole windows (padding included) times the kernel's element count, to the `1/p`.
pub fn lp_pool(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&["auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads", "strides", "p"])?;
    let p = cx.attr_int_or("p", 2)?;
    if p <= 0 {
        return Err(format!("p = {p} must be positive").into());
    }
    let x = cx.input(0)?;
    let kernel = cx.attr_ints("kernel_shape")?.ok_or("kernel_shape is required")?;
    check_pool_window(&kernel)?;
    let window = window(cx, &cx.ty(x), &kernel)?;
    let magnitude = cx.b.unary(UnaryOp::Abs, x)?;
    let powered = cx.b.binary_scalar(BinaryOp::Pow, magnitude, p as f64)?;
    let op = Op::Pool {
        kind: PoolKind::Avg,
        kernel: kernel.clone(),
        window,
        ceil_mode: cx.attr_int_or("ceil_mode", 0)? != 0,
        count_include_pad: true,
    };
    let average = cx.b.op1(op, &[powered])?;
    let window_size = product(kernel.iter().copied(), "the kernel")?;
    let sum = cx.b.binary_scalar(BinaryOp::Mul, average, window_size as f64)?;
    Ok(vec![NodeCx::value(cx.b.binary_scalar(BinaryOp::Pow, sum, 1.0 / p as f64)?)])
}

/// `Col2Im(input [N, C·∏block, L], image_shape, block_shape)`: the columns summed back into
/// `[N, C, image...]`. That is a transposed convolution, grouped by channel, of the columns laid
/// out over the block positions' grid, whose weight puts column `j` of each channel's block at
/// the `j`-th kernel position (a one-hot kernel); `output_padding` covers the image's last rows
/// that no block reaches.
pub fn col2im(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&["dilations", "pads", "strides"])?;
    let x = cx.input(0)?;
    let image = cx.const_ints(1)?;
    let block = cx.const_ints(2)?;
    let n = image.len();
    if n == 0 || block.len() != n || block.iter().chain(&image).any(|&d| d <= 0) {
        return Err(
            format!("image_shape {image:?} and block_shape {block:?} must be positive and of one length").into()
        );
    }
    let strides = cx.attr_ints("strides")?.unwrap_or_else(|| vec![1; n]);
    let dilations = cx.attr_ints("dilations")?.unwrap_or_else(|| vec![1; n]);
    let pads = cx.attr_ints("pads")?.unwrap_or_else(|| vec![0; 2 * n]);
    if strides.len() != n || dilations.len() != n || pads.len() != 2 * n {
        return Err(format!("strides, dilations and pads need {n}, {n} and {} entries", 2 * n).into());
    }
    for (values, what) in [
        (&image, "image_shape"),
        (&block, "block_shape"),
        (&strides, "strides"),
        (&dilations, "dilations"),
        (&pads, "pads"),
    ] {
        within_index_range(values, what)?;
    }
    if strides.iter().chain(&dilations).any(|&s| s <= 0) {
        return Err("strides and dilations must be positive".into());
    }
    let ty = cx.ty(x);
    let dims: Vec<i64> =
        ty.shape.iter().map(|d| d.as_const().ok_or("the input's shape must be static")).collect::<Result<_, _>>()?;
    let positions = product(block.iter().copied(), "the block")?;
    if dims.len() != 3 || dims[1] % positions != 0 {
        return Err(format!("the input {ty} must be [N, C·{positions}, L]").into());
    }
    let channels = dims[1] / positions;
    // Block positions along each axis, and what the transposed convolution's output misses.
    let mut grid = Vec::new();
    let mut output_padding = Vec::new();
    for a in 0..n {
        let span = dilations[a] * (block[a] - 1) + 1;
        let count = (image[a] + pads[a] + pads[n + a] - span).div_euclid(strides[a]) + 1;
        if count <= 0 {
            return Err(format!("block {} does not fit image axis {a} ({})", block[a], image[a]).into());
        }
        grid.push(count);
        output_padding.push(image[a] - ((count - 1) * strides[a] - pads[a] - pads[n + a] + span));
    }
    let positions_taken = product(grid.iter().copied(), "the block positions")?;
    if positions_taken != dims[2] {
        return Err(format!("{} columns, but the blocks take {positions_taken} positions ({grid:?})", dims[2]).into());
    }
    let mut shape = vec![Dim::from(dims[0]), Dim::from(dims[1])];
    shape.extend(grid.iter().map(|&g| Dim::from(g)));
    let laid_out = cx.b.reshape(x, shape)?;
    // Weight [C·positions, 1, block...]: row c·positions + j is one-hot at kernel position j.
    let dtype = ty.dtype;
    let weight_size = built_size([channels, positions, positions], "the one-hot kernel")?;
    let mut weight = vec![0.0; weight_size as usize];
    for row in 0..channels * positions {
        weight[(row * positions + row % positions) as usize] = 1.0;
    }
    let mut w_shape = vec![(channels * positions) as usize, 1];
    w_shape.extend(block.iter().map(|&b| b as usize));
    let w = cx.b.constant(TensorData::from_f64(dtype, w_shape, &weight));
    let op = Op::ConvTranspose { window: Window { strides, dilations, pads }, output_padding, groups: channels };
    Ok(vec![NodeCx::value(cx.b.op1(op, &[laid_out, w])?)])
}

/// Re-expresses row-major flat indices into `[N, C, spatial...]` with the spatial axes in
/// column-major order (MaxPool's `storage_order = 1`): plane offset + Σ coord_i · stride_i with
/// the strides taken from the first spatial axis outwards.
fn column_major_index(cx: &mut NodeCx, idx: ValueId, spatial: &[Dim]) -> Result<ValueId, Fail> {
    let sizes: Vec<i64> = spatial
        .iter()
        .map(|d| d.as_const().ok_or("column-major indices need concrete spatial sizes"))
        .collect::<Result<_, _>>()?;
    let plane: i64 = sizes.iter().product();
    let mut rest = cx.b.binary_scalar(BinaryOp::Rem, idx, plane as f64)?;
    let plane_start = cx.b.sub(idx, rest)?;
    // Row-major coordinates, last axis first.
    let mut coords = vec![idx; sizes.len()];
    for (axis, &size) in sizes.iter().enumerate().rev() {
        coords[axis] = cx.b.binary_scalar(BinaryOp::Rem, rest, size as f64)?;
        rest = cx.b.binary_scalar(BinaryOp::Div, rest, size as f64)?;
    }
    let mut out = plane_start;
    let mut stride = 1i64;
    for (axis, &size) in sizes.iter().enumerate() {
        let term = cx.b.binary_scalar(BinaryOp::Mul, coords[axis], stride as f64)?;
        out = cx.b.add(out, term)?;
        stride *= size;
    }
    Ok(out)
}

/// Global pooling is a reduction over the spatial axes, keeping them as size 1.
pub fn global_pool(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&[])?;
    let x = cx.input(0)?;
    let axes: Vec<i64> = (2..cx.rank(x) as i64).collect();
    let kind = if cx.node.op_type() == "GlobalMaxPool" { ReduceKind::Max } else { ReduceKind::Mean };
    Ok(vec![NodeCx::value(cx.b.reduce(kind, x, &axes, true)?)])
}

/// `Gemm`: `alpha * A' · B' + beta * C` with optional transposes.
pub fn gemm(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&["alpha", "beta", "transA", "transB"])?;
    let trans_b = cx.attr_int_or("transB", 0)? != 0;
    let integer = if cx.attr_int_or("transA", 0)? == 0 { integer_matmul(cx, trans_b)? } else { None };
    let mut y = match integer {
        Some(y) => y,
        None => {
            let (mut a, mut b) = (cx.input(0)?, cx.input(1)?);
            if cx.attr_int_or("transA", 0)? != 0 {
                a = cx.b.transpose_last2(a)?;
            }
            if trans_b {
                b = cx.b.transpose_last2(b)?;
            }
            cx.b.matmul(a, b)?
        }
    };
    let alpha = cx.attr_float_or("alpha", 1.0)? as f64;
    if alpha != 1.0 {
        y = cx.b.binary_scalar(BinaryOp::Mul, y, alpha)?;
    }
    if let Some(mut c) = cx.opt_input(2)? {
        let beta = cx.attr_float_or("beta", 1.0)? as f64;
        if beta != 1.0 {
            c = cx.b.binary_scalar(BinaryOp::Mul, c, beta)?;
        }
        y = cx.b.add(y, c)?;
    }
    Ok(vec![NodeCx::value(y)])
}

pub fn matmul(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&[])?;
    if let Some(y) = integer_matmul(cx, false)? {
        return Ok(vec![NodeCx::value(y)]);
    }
    let (a, b) = (cx.input(0)?, cx.input(1)?);
    Ok(vec![NodeCx::value(cx.b.matmul(a, b)?)])
}

/// `Softmax`/`LogSoftmax`. Before opset 13 the input is flattened to 2-D at `axis` (default 1)
/// and normalised over the whole second part; from 13 on it is normalised along `axis` (default -1).
pub fn softmax(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&["axis"])?;
    let log = cx.node.op_type() == "LogSoftmax";
    let x = cx.input(0)?;
    let ty = cx.ty(x);
    let apply = |cx: &mut NodeCx, v: ValueId, axis: i64| -> Result<ValueId, Fail> {
        Ok(if log { cx.b.log_softmax(v, axis)? } else { cx.b.softmax(v, axis)? })
    };
    if cx.opset >= 13 {
        let axis = cx.attr_int_or("axis", -1)?;
        return Ok(vec![NodeCx::value(apply(cx, x, axis)?)]);
    }
    let axis = nnc_ir::shape::normalize_axis(cx.attr_int_or("axis", 1)?, ty.rank().max(1))?;
    let outer = ty.shape[..axis].iter().cloned().fold(Dim::constant(1), |a, b| a * b);
    let inner = ty.shape[axis..].iter().cloned().fold(Dim::constant(1), |a, b| a * b);
    let flat = cx.b.reshape(x, vec![outer, inner])?;
    let y = apply(cx, flat, 1)?;
    Ok(vec![NodeCx::value(cx.b.reshape(y, ty.shape)?)])
}

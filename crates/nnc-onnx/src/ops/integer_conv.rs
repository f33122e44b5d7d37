//! QDQ convolutions as integer matrix products: a `Conv` (one group) whose input and weights are
//! both `DequantizeLinear` outputs of the form [`super::integer_matmul`] takes — 8-bit
//! activations with one scale and zero point, constant `int8` weights with a zero zero point and
//! one scale per tensor or per output channel — imports as the integer product of the input's
//! windows (im2col) and the weights:
//!
//! - the input's integers are padded with their zero point (a padded element then counts as a
//!   dequantized zero, as the float convolution's zero padding does);
//! - each of the kernel's taps is a strided slice of the padded input, moved channels-last, and
//!   the taps are concatenated along the channels: `[N, out.., taps · C]`, each output pixel's
//!   window one contiguous row of bytes, kept narrow in memory by fusion (so integer dot
//!   products read four of its channels as one word), extended by zeros to a multiple of four;
//! - that matrix times the weights `[taps · C, O]` is [`centered_product`] (`i32` products less
//!   the zero point times each column's sum), scaled per output channel in `f32` and moved back
//!   to `[N, O, out..]`.
//!
//! The windows cost `taps` bytes per input byte (9 for a 3×3 kernel) where the float
//! convolution reads its input in place; in exchange the product runs as the integer matmul the
//! CPU computes four multiply-adds per lane per instruction. Grouped (depthwise) convolutions
//! keep the float form: each group's product is too small for the copy to pay; so do inputs of
//! few channels (an image's three).

use super::integer_matmul::{centered_product, operand, ZeroPoint};
use super::NodeCx;
use nnc_ir::{DType, Dim, Op, PadMode, TensorData, ValueId};

/// Rows of the window matrix are padded to a multiple of this many bytes: the depth one integer
/// dot-product instruction sums per lane.
const DOT_DEPTH: usize = 4;

/// Inputs of fewer channels keep the float convolution: each tap's run of channels is then
/// shorter than a vector, and copying windows costs more than the integer product saves
/// (resnet18's first convolution, 3 channels by 7×7 taps: 2.4 ms of copies and epilogue
/// against 1.5 ms in `f32`).
const MIN_CHANNELS: i64 = 16;

/// The largest window matrix made, in bytes; a larger one keeps the float convolution, which
/// reads its input in place (a kernel as large as its input would otherwise copy it that many
/// times).
const MAX_WINDOW_BYTES: i64 = 1 << 28;

/// The integer form of the node's `Conv(x, w)` without its bias, or `None` where the operands are
/// not of the form the module docs describe (the caller then imports the float convolution).
pub fn integer_conv(cx: &mut NodeCx) -> Result<Option<ValueId>, super::Fail> {
    if cx.attr_int_or("group", 1)? != 1 {
        return Ok(None);
    }
    let (Some(x), Some(w)) = (operand(cx, 0), operand(cx, 1)) else { return Ok(None) };
    let Some(wq) = w.known.as_ref() else { return Ok(None) };
    let spatial = wq.shape().len().saturating_sub(2);
    let fits = matches!(x.ty.dtype, DType::U8 | DType::I8)
        && x.axis.is_none()
        && wq.dtype() == DType::I8
        && spatial >= 1
        && x.ty.rank() == spatial + 2
        && w.zero_point.iter().all(|&z| z == 0)
        && w.axis.is_none_or(|a| a == 0)
        && (w.scale.len() == 1 || w.scale.len() == wq.shape()[0]);
    let Some(input_shape) = x.ty.shape.iter().map(Dim::as_const).collect::<Option<Vec<i64>>>() else {
        return Ok(None);
    };
    if !fits || input_shape[1] != wq.shape()[1] as i64 || input_shape[1] < MIN_CHANNELS {
        return Ok(None);
    }
    let kernel: Vec<i64> = wq.shape()[2..].iter().map(|&k| k as i64).collect();
    let dequantized_input = cx.input(0)?;
    let window = super::nn::window(cx, dequantized_input, &kernel)?;
    let Some(out) = output_sizes(&input_shape[2..], &kernel, &window) else { return Ok(None) };
    let taps: i64 = kernel.iter().product();
    let bytes =
        [input_shape[0], taps, input_shape[1]].into_iter().chain(out.iter().copied()).try_fold(1i64, i64::checked_mul);
    if window.pads.iter().any(|&p| p < 0) || bytes.is_none_or(|b| b > MAX_WINDOW_BYTES) {
        return Ok(None);
    }
    let zero_point = x.zero_point[0];
    let xq = cx.value_named(&x.integers)?;
    let windows = window_matrix(cx, xq, zero_point, &input_shape, &kernel, &window, &out)?;
    let weights = weight_matrix(wq);
    let acc = centered_product(cx, windows, ZeroPoint::Known(zero_point), &weights)?;
    // `[N, out.., O]` in f32, scaled per output channel, back to `[N, O, out..]`.
    let channels = wq.shape()[0];
    let acc = cx.b.cast(acc, DType::F32)?;
    let scales: Vec<f64> =
        (0..channels).map(|o| x.scale[0] * w.scale[if w.scale.len() == 1 { 0 } else { o }]).collect();
    let scale = cx.b.constant(TensorData::from_f64(DType::F32, vec![channels], &scales));
    let y = cx.b.mul(acc, scale)?;
    let mut perm = vec![0, spatial + 1];
    perm.extend(1..=spatial);
    Ok(Some(cx.b.transpose(y, perm)?))
}

/// The output's spatial sizes, or `None` where a window does not fit (the float convolution
/// then reports it).
fn output_sizes(input: &[i64], kernel: &[i64], window: &nnc_ir::Window) -> Option<Vec<i64>> {
    let n = input.len();
    (0..n)
        .map(|i| {
            let padded = input[i].checked_add(window.pads[i])?.checked_add(window.pads[i + n])?;
            let reach = (kernel[i] - 1).checked_mul(window.dilations[i])?.checked_add(1)?;
            (padded >= reach).then(|| (padded - reach) / window.strides[i] + 1)
        })
        .collect()
}

/// The im2col matrix `[N, out.., taps · C (+ zeros to a multiple of four)]` of 8-bit integers
/// (unflattened, so that its one reader is the product's widening cast): row `(n, p..)` holds, for each kernel tap in row-major order, the `C` channels the tap reads
/// at output pixel `p`.
fn window_matrix(
    cx: &mut NodeCx,
    xq: ValueId,
    zero_point: i64,
    input: &[i64],
    kernel: &[i64],
    window: &nnc_ir::Window,
    out: &[i64],
) -> Result<ValueId, super::Fail> {
    let spatial = kernel.len();
    // Channels-last first, so the padded input and every tap read runs of channels.
    let mut channels_last = vec![0];
    channels_last.extend(2..spatial + 2);
    channels_last.push(1);
    let xq = cx.b.transpose(xq, channels_last)?;
    let mut pads = vec![0];
    pads.extend(&window.pads[..spatial]);
    pads.extend([0, 0]);
    pads.extend(&window.pads[spatial..]);
    pads.push(0);
    let padded =
        if pads.iter().any(|&p| p != 0) { cx.b.pad(xq, pads, PadMode::Constant, zero_point as f64)? } else { xq };
    let taps: usize = kernel.iter().map(|&k| k as usize).product();
    let mut columns = Vec::with_capacity(taps);
    for tap in 0..taps {
        // The tap's offset along each spatial axis (row-major over the kernel).
        let mut rest = tap as i64;
        let mut offsets = vec![0; spatial];
        for a in (0..spatial).rev() {
            offsets[a] = rest % kernel[a];
            rest /= kernel[a];
        }
        let starts: Vec<i64> = (0..spatial).map(|a| offsets[a] * window.dilations[a]).collect();
        let ends: Vec<i64> = (0..spatial).map(|a| starts[a] + (out[a] - 1) * window.strides[a] + 1).collect();
        let slice = Op::Slice { axes: (1..spatial + 1).collect(), starts, ends, steps: window.strides.clone() };
        columns.push(cx.b.op1(slice, &[padded])?);
    }
    let depth = taps as i64 * input[1];
    let extra = (DOT_DEPTH as i64 - depth % DOT_DEPTH as i64) % DOT_DEPTH as i64;
    // Concatenated (or padded) so that the matrix is computed, not a view: fusion keeps a
    // computed 8-bit operand of a widening contraction in memory, in this row-contiguous layout.
    let mut matrix = cx.b.concat(&columns, -1)?;
    if extra > 0 {
        let mut ends = vec![0; spatial + 2];
        ends[spatial + 1] = extra;
        let mut zeros = vec![0; spatial + 2];
        zeros.extend(ends);
        matrix = cx.b.pad(matrix, zeros, PadMode::Constant, 0.0)?;
    }
    Ok(matrix)
}

/// The weights `[O, C, k..]` as the matrix `[taps · C (+ zero rows to a multiple of four), O]`
/// whose row `tap · C + c` multiplies the window matrix's column of the same index.
fn weight_matrix(wq: &TensorData) -> TensorData {
    let shape = wq.shape();
    let (outputs, channels) = (shape[0], shape[1]);
    let taps: usize = shape[2..].iter().product();
    let depth = taps * channels;
    let rows = depth.div_ceil(DOT_DEPTH) * DOT_DEPTH;
    let values = wq.to_i64_vec();
    let mut matrix = vec![0i64; rows * outputs];
    for o in 0..outputs {
        for c in 0..channels {
            for tap in 0..taps {
                matrix[(tap * channels + c) * outputs + o] = values[(o * channels + c) * taps + tap];
            }
        }
    }
    TensorData::from_i64(DType::I8, vec![rows, outputs], &matrix)
}

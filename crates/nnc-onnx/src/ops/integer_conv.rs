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
//! CPU computes four multiply-adds per lane per instruction. Inputs of few channels (an image's
//! three) keep the float convolution, as do grouped convolutions other than depthwise ones.
//!
//! A depthwise convolution (one group per channel) has no product to gather windows for: it
//! imports channels-last as the sum over its taps of each tap's slice of the padded integers
//! times the tap's weight per channel, less the zero point times the channel's weight sum, in
//! `f32` holding integers (exact: 255 · 128 per product, and at most [`MAX_DEPTHWISE_TAPS`] of
//! them stay below 2^24), scaled once per channel. Its point is the layout: between the channels-last products of a network like
//! MobileNet it reads and writes rows of channels, where the float convolution would have the
//! data moved to `[N, C, H, W]` and back around it.

use super::integer_matmul::{centered_product, operand, rescaled, ZeroPoint};
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

/// The most taps a depthwise convolution sums in `f32` exactly (`2^24 / (255 · 128)`, rounded
/// down to a power of two).
const MAX_DEPTHWISE_TAPS: i64 = 256;

/// The integer form of the node's `Conv(x, w)` without its bias, or `None` where the operands are
/// not of the form the module docs describe (the caller then imports the float convolution).
pub fn integer_conv(cx: &mut NodeCx) -> Result<Option<ValueId>, super::Fail> {
    let groups = cx.attr_int_or("group", 1)?;
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
    if !fits || input_shape[1] < MIN_CHANNELS {
        return Ok(None);
    }
    let channels = input_shape[1];
    let (outputs, per_group) = (wq.shape()[0] as i64, wq.shape()[1] as i64);
    let depthwise = groups == channels && outputs == channels && per_group == 1;
    if !(groups == 1 && per_group == channels || depthwise) {
        return Ok(None);
    }
    let kernel: Vec<i64> = wq.shape()[2..].iter().map(|&k| k as i64).collect();
    let window = super::nn::window(cx, &x.ty, &kernel)?;
    let Some(out) = output_sizes(&input_shape[2..], &kernel, &window) else { return Ok(None) };
    let taps: i64 = kernel.iter().product();
    let bytes =
        [input_shape[0], taps, channels].into_iter().chain(out.iter().copied()).try_fold(1i64, i64::checked_mul);
    let too_large = if depthwise { taps > MAX_DEPTHWISE_TAPS } else { bytes.is_none_or(|b| b > MAX_WINDOW_BYTES) };
    if window.pads.iter().any(|&p| p < 0) || too_large {
        return Ok(None);
    }
    let zero_point = x.zero_point[0];
    let xq = cx.value_named(&x.integers)?;
    let padded = channels_last_padded(cx, xq, zero_point, &window)?;
    let taps = tap_slices(cx, padded, &kernel, &window, &out)?;
    // `[N, out.., O]`, integer-valued; scaled per output channel, then back to `[N, O, out..]`.
    let acc = if depthwise {
        depthwise_sum(cx, &taps, zero_point, wq)?
    } else {
        let windows = window_matrix(cx, taps, channels)?;
        centered_product(cx, windows, ZeroPoint::Known(zero_point), &weight_matrix(wq))?
    };
    let y = rescaled(cx, acc, &x, &w, outputs as usize)?;
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

/// The 8-bit input `[N, C, in..]` moved channels-last, so that every tap reads runs of
/// channels, and padded with its zero point (a padded element then counts as a dequantized
/// zero).
fn channels_last_padded(
    cx: &mut NodeCx,
    xq: ValueId,
    zero_point: i64,
    window: &nnc_ir::Window,
) -> Result<ValueId, super::Fail> {
    let spatial = window.strides.len();
    let mut channels_last = vec![0];
    channels_last.extend(2..spatial + 2);
    channels_last.push(1);
    let xq = cx.b.transpose(xq, channels_last)?;
    let mut pads = vec![0];
    pads.extend(&window.pads[..spatial]);
    pads.extend([0, 0]);
    pads.extend(&window.pads[spatial..]);
    pads.push(0);
    if pads.iter().all(|&p| p == 0) {
        return Ok(xq);
    }
    Ok(cx.b.pad(xq, pads, PadMode::Constant, zero_point as f64)?)
}

/// Each kernel tap's view of the padded channels-last input, `[N, out.., C]`: the elements the
/// tap multiplies at every output pixel, taps in row-major order over the kernel.
fn tap_slices(
    cx: &mut NodeCx,
    padded: ValueId,
    kernel: &[i64],
    window: &nnc_ir::Window,
    out: &[i64],
) -> Result<Vec<ValueId>, super::Fail> {
    let spatial = kernel.len();
    let taps: usize = kernel.iter().map(|&k| k as usize).product();
    let mut slices = Vec::with_capacity(taps);
    for tap in 0..taps {
        let mut rest = tap as i64;
        let mut offsets = vec![0; spatial];
        for a in (0..spatial).rev() {
            offsets[a] = rest % kernel[a];
            rest /= kernel[a];
        }
        let starts: Vec<i64> = (0..spatial).map(|a| offsets[a] * window.dilations[a]).collect();
        let ends: Vec<i64> = (0..spatial).map(|a| starts[a] + (out[a] - 1) * window.strides[a] + 1).collect();
        let slice = Op::Slice { axes: (1..spatial + 1).collect(), starts, ends, steps: window.strides.clone() };
        slices.push(cx.b.op1(slice, &[padded])?);
    }
    Ok(slices)
}

/// The im2col matrix `[N, out.., taps · C (+ zeros to a multiple of four)]` of 8-bit integers,
/// the taps side by side (unflattened, so that its one reader is the product's widening cast).
fn window_matrix(cx: &mut NodeCx, taps: Vec<ValueId>, channels: i64) -> Result<ValueId, super::Fail> {
    let rank = cx.ty(taps[0]).rank();
    let depth = taps.len() as i64 * channels;
    let extra = (DOT_DEPTH as i64 - depth % DOT_DEPTH as i64) % DOT_DEPTH as i64;
    // Concatenated (or padded) so that the matrix is computed, not a view: fusion keeps a
    // computed 8-bit operand of a widening contraction in memory, in this row-contiguous layout.
    let matrix = cx.b.concat(&taps, -1)?;
    if extra == 0 {
        return Ok(matrix);
    }
    let mut pads = vec![0; 2 * rank];
    pads[2 * rank - 1] = extra;
    Ok(cx.b.pad(matrix, pads, PadMode::Constant, 0.0)?)
}

/// A depthwise convolution's `Σ_tap (tap − zero_point) · w[c, tap]`, `[N, out.., C]`, in `f32`
/// (exact, see the module docs) as `Σ_tap tap · w[c, tap] − zero_point · Σ_tap w[c, tap]`: the
/// taps read the 8-bit input as it is, and the zero point costs one subtraction per element.
fn depthwise_sum(cx: &mut NodeCx, taps: &[ValueId], zero_point: i64, wq: &TensorData) -> Result<ValueId, super::Fail> {
    let channels = wq.shape()[0];
    let values = wq.to_i64_vec();
    let weight = |c: usize, t: usize| values[c * taps.len() + t];
    let mut sum: Option<ValueId> = None;
    for (t, &tap) in taps.iter().enumerate() {
        let weights: Vec<f64> = (0..channels).map(|c| weight(c, t) as f64).collect();
        let weights = cx.b.constant(TensorData::from_f64(DType::F32, vec![channels], &weights));
        let tap = cx.b.cast(tap, DType::F32)?;
        let product = cx.b.mul(tap, weights)?;
        sum = Some(match sum {
            Some(s) => cx.b.add(s, product)?,
            None => product,
        });
    }
    let sum = sum.expect("a kernel has taps");
    if zero_point == 0 {
        return Ok(sum);
    }
    let correction: Vec<f64> =
        (0..channels).map(|c| (zero_point * (0..taps.len()).map(|t| weight(c, t)).sum::<i64>()) as f64).collect();
    let correction = cx.b.constant(TensorData::from_f64(DType::F32, vec![channels], &correction));
    Ok(cx.b.sub(sum, correction)?)
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

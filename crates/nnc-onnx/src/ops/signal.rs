//! Signal processing: the window functions (`HannWindow`, `HammingWindow`, `BlackmanWindow`)
//! and `MelWeightMatrix`, computed at import time from their sizes, which must be known then, and `DFT` and `STFT`, as
//! products with cosine and sine tables.

use super::{built_size, Fail, NodeCx, Out};
use crate::tensor::dtype_from_onnx;
use nnc_ir::{BinaryOp, DType, Dim, PadMode, TensorData, ValueId};
use std::f64::consts::PI;

/// The largest window nnc computes at import time.
const MAX_WINDOW: i64 = 1 << 24;

/// `HannWindow`, `HammingWindow`, `BlackmanWindow(size)`: the window's `size` samples, of
/// period `size` (`periodic`, the default) or `size - 1`, in `output_datatype` (f32 by default),
/// by the formulas of ONNX's reference (in f64, then rounded).
pub fn window(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&["output_datatype", "periodic"])?;
    let size = *cx.const_ints(0)?.first().ok_or("the size is empty")?;
    if !(0..=MAX_WINDOW).contains(&size) {
        return Err(format!("window size {size} is outside 0..={MAX_WINDOW}").into());
    }
    let dtype = dtype_from_onnx(cx.attr_int_or("output_datatype", 1)? as i32)?;
    let period = if cx.attr_int_or("periodic", 1)? != 0 { size } else { size - 1 } as f64;
    let value = |n: f64| match cx.node.op_type() {
        "HannWindow" => (n * PI / period).sin().powi(2),
        "HammingWindow" => {
            let alpha = 25.0 / 46.0;
            alpha - (n * PI * 2.0 / period).cos() * (1.0 - alpha)
        }
        _ => (n * (PI * 2.0) / period).cos() * -0.5 + (n * (PI * 4.0) / period).cos() * 0.08 + 0.42,
    };
    let values: Vec<f64> = (0..size).map(|n| value(n as f64)).collect();
    Ok(vec![NodeCx::known(TensorData::from_f64(dtype, vec![size as usize], &values))])
}

/// The transform's tables, `[reads, writes]`: cos and sin of `2π·(k·n mod L)/L`, with the
/// inverse's `1/L` and, for a one-sided inverse, the weight 2 of every frequency but the first
/// and the Nyquist one.
fn dft_tables(
    dtype: DType,
    reads: i64,
    writes: i64,
    length: i64,
    inverse: bool,
    onesided: bool,
) -> (TensorData, TensorData) {
    let table = |f: fn(f64) -> f64| -> TensorData {
        let mut t = Vec::with_capacity((reads * writes) as usize);
        for r in 0..reads {
            for w in 0..writes {
                let angle = 2.0 * PI * ((r * w) % length) as f64 / length as f64;
                let mut v = f(angle);
                if inverse {
                    let weight = if onesided && r != 0 && 2 * r != length { 2.0 } else { 1.0 };
                    v *= weight / length as f64;
                }
                t.push(v);
            }
        }
        TensorData::from_f64(dtype, vec![reads as usize, writes as usize], &t)
    };
    (table(f64::cos), table(f64::sin))
}

/// The rows of `(re, im)` (the imaginary part zero if absent) times the `(cos, sin)` tables:
/// forward `Re = re·C + im·S`, `Im = im·C − re·S`; inverse `Re = re·C − im·S`, `Im = re·S + im·C`.
fn transform(
    cx: &mut NodeCx,
    re: ValueId,
    im: Option<ValueId>,
    (cos, sin): (TensorData, TensorData),
    inverse: bool,
) -> Result<(ValueId, ValueId), Fail> {
    let (cos, sin) = (cx.b.constant(cos), cx.b.constant(sin));
    let sign = if inverse { -1.0 } else { 1.0 };
    let re_c = cx.b.matmul(re, cos)?;
    let re_s = cx.b.matmul(re, sin)?;
    let re_s = cx.b.binary_scalar(BinaryOp::Mul, re_s, -sign)?;
    Ok(match im {
        Some(im) => {
            let im_c = cx.b.matmul(im, cos)?;
            let im_s = cx.b.matmul(im, sin)?;
            let im_s = cx.b.binary_scalar(BinaryOp::Mul, im_s, sign)?;
            (cx.b.add(re_c, im_s)?, cx.b.add(im_c, re_s)?)
        }
        None => (re_c, re_s),
    })
}

/// `STFT(signal [B, n, 1 or 2], frame_step, window?, frame_length?)`: the DFT of each frame
/// (`frame_length` samples every `frame_step`, times the window), one-sided by default:
/// `[B, frames, bins, 2]`.
pub fn stft(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&["onesided"])?;
    let x = cx.input(0)?;
    let ty = cx.ty(x);
    let dims: Vec<i64> =
        ty.shape.iter().map(|d| d.as_const().ok_or("the signal's shape must be static")).collect::<Result<_, _>>()?;
    if dims.len() != 3 || !(dims[2] == 1 || dims[2] == 2) {
        return Err(format!("the signal {ty} must be [batch, length, 1 or 2]").into());
    }
    let step = *cx.const_ints(1)?.first().ok_or("frame_step is empty")?;
    let window = cx.opt_input(2)?;
    let frame = match cx.opt_const_ints(3)? {
        Some(l) => *l.first().ok_or("frame_length is empty")?,
        None => match window {
            Some(w) => cx.ty(w).shape[0].as_const().ok_or("the window's length must be static")?,
            None => dims[1],
        },
    };
    if step <= 0 || frame <= 0 || frame > dims[1] || frame > 1 << 16 {
        return Err(format!("frame_step {step} and frame_length {frame} do not fit a signal of {}", dims[1]).into());
    }
    let frames = 1 + (dims[1] - frame) / step;
    if frames > 1 << 16 {
        return Err(format!("{frames} frames are too many").into());
    }
    let onesided = cx.attr_int_or("onesided", 1)? != 0;
    let bins = if onesided { frame / 2 + 1 } else { frame };
    // Each part as [B, frames, frame], windowed.
    let part = |cx: &mut NodeCx, k: i64| -> Result<ValueId, Fail> {
        let p = cx.b.slice_axis(x, 2, k, k + 1)?;
        let p = cx.b.reshape(p, vec![Dim::from(dims[0]), Dim::from(dims[1])])?;
        let mut pieces = Vec::new();
        for f in 0..frames {
            let s = cx.b.slice_axis(p, 1, f * step, f * step + frame)?;
            pieces.push(cx.b.reshape(s, vec![Dim::from(dims[0]), Dim::from(1usize), Dim::from(frame)])?);
        }
        let framed = cx.b.concat(&pieces, 1)?;
        Ok(match window {
            Some(w) => cx.b.mul(framed, w)?,
            None => framed,
        })
    };
    let re = part(cx, 0)?;
    let im = if dims[2] == 2 { Some(part(cx, 1)?) } else { None };
    built_size([frame, bins], "the transform's tables")?;
    let tables = dft_tables(ty.dtype, frame, bins, frame, false, onesided);
    let (out_re, out_im) = transform(cx, re, im, tables, false)?;
    let shape = vec![Dim::from(dims[0]), Dim::from(frames), Dim::from(bins), Dim::from(1usize)];
    let (r, i) = (cx.b.reshape(out_re, shape.clone())?, cx.b.reshape(out_im, shape)?);
    Ok(vec![NodeCx::value(cx.b.concat(&[r, i], -1)?)])
}

/// `DFT(input [..., n, ..., 1 or 2], dft_length?, axis?)` (opsets 17 and 20): the discrete
/// Fourier transform along `axis` (real input with a last axis of 1, complex of 2), forward or
/// `inverse` (scaled by `1/length`), `onesided` (the first `length/2 + 1` frequencies forward; a
/// real signal from them, inverse), the signal zero-padded or cut to `dft_length`. Computed as
/// matrix products with the cosine and sine tables (angles reduced exactly, `2π·(k·n mod L)/L`),
/// which is exact to rounding for the lengths ONNX models use.
pub fn dft(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&["axis", "inverse", "onesided"])?;
    let x = cx.input(0)?;
    let ty = cx.ty(x);
    let rank = ty.rank();
    let dims: Vec<i64> =
        ty.shape.iter().map(|d| d.as_const().ok_or("the input's shape must be static")).collect::<Result<_, _>>()?;
    let parts = *dims.last().ok_or("the input must have a last axis of 1 or 2")?;
    if rank < 2 || !(parts == 1 || parts == 2) {
        return Err(format!("the input {ty} must end with an axis of 1 (real) or 2 (complex)").into());
    }
    let axis = if cx.opset >= 20 {
        match cx.opt_const_ints(2)? {
            Some(a) => *a.first().ok_or("the axis is empty")?,
            None => -2,
        }
    } else {
        cx.attr_int_or("axis", 1)?
    };
    let axis = usize::try_from(if axis < 0 { axis + rank as i64 } else { axis })
        .ok()
        .filter(|&a| a + 1 < rank)
        .ok_or_else(|| format!("axis {axis} must name a signal axis of {ty}, not the last"))?;
    let inverse = cx.attr_int_or("inverse", 0)? != 0;
    let onesided = cx.attr_int_or("onesided", 0)? != 0;
    let given = dims[axis];
    let length = match cx.opt_const_ints(1)? {
        Some(l) => *l.first().ok_or("dft_length is empty")?,
        None if inverse && onesided => 2 * (given - 1),
        None => given,
    };
    if !(1..=1 << 16).contains(&length) {
        return Err(format!("dft_length {length} is outside 1..=65536").into());
    }
    // Real and imaginary parts, the signal axis last: [..., n].
    let mut part_shape: Vec<Dim> = ty.shape[..rank - 1].to_vec();
    let split = |cx: &mut NodeCx, k: i64| -> Result<ValueId, Fail> {
        let p = cx.b.slice_axis(x, rank - 1, k, k + 1)?;
        let p = cx.b.reshape(p, part_shape.clone())?;
        let mut perm: Vec<usize> = (0..rank - 1).filter(|&a| a != axis).collect();
        perm.push(axis);
        Ok(cx.b.transpose(p, perm)?)
    };
    let re = split(cx, 0)?;
    let im = if parts == 2 { Some(split(cx, 1)?) } else { None };
    // The input length the transform reads: `length` samples forward or full inverse, the first
    // `length/2 + 1` frequencies for a one-sided inverse; cut or zero-padded to it.
    let reads = if inverse && onesided { length / 2 + 1 } else { length };
    let fit = |cx: &mut NodeCx, v: ValueId| -> Result<ValueId, Fail> {
        let r = cx.ty(v).rank();
        if given > reads {
            Ok(cx.b.slice_axis(v, r - 1, 0, reads)?)
        } else if given < reads {
            let mut pads = vec![0; 2 * r];
            pads[2 * r - 1] = reads - given;
            Ok(cx.b.pad(v, pads, PadMode::Constant, 0.0)?)
        } else {
            Ok(v)
        }
    };
    let re = fit(cx, re)?;
    let im = match im {
        Some(v) => Some(fit(cx, v)?),
        None => None,
    };
    let writes = if onesided && !inverse { length / 2 + 1 } else { length };
    built_size([reads, writes], "the transform's tables")?;
    let tables = dft_tables(ty.dtype, reads, writes, length, inverse, onesided);
    let (out_re, out_im) = transform(cx, re, im, tables, inverse)?;
    // Back to [..., writes (at axis), ...], real and imaginary in a last axis (real only for a
    // one-sided inverse).
    let mut back: Vec<usize> = (0..rank - 2).collect();
    back.insert(axis, rank - 2);
    part_shape[axis] = Dim::from(writes);
    part_shape.push(Dim::from(1usize));
    let restore = |cx: &mut NodeCx, v: ValueId| -> Result<ValueId, Fail> {
        let v = cx.b.transpose(v, back.clone())?;
        Ok(cx.b.reshape(v, part_shape.clone())?)
    };
    let y = if inverse && onesided {
        restore(cx, out_re)?
    } else {
        let (r, i) = (restore(cx, out_re)?, restore(cx, out_im)?);
        cx.b.concat(&[r, i], -1)?
    };
    Ok(vec![NodeCx::value(y)])
}

/// `MelWeightMatrix(num_mel_bins, dft_length, sample_rate, lower_edge_hertz, upper_edge_hertz)`:
/// the `[dft_length/2 + 1, num_mel_bins]` triangular filters of a mel filter bank, computed at
/// import time as ONNX's reference does (the edges' mel values and step in `f32`, the bins in
/// `f64` then floored).
pub fn mel_weight_matrix(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&["output_datatype"])?;
    let int = |cx: &NodeCx, i: usize| -> Result<i64, Fail> { Ok(*cx.const_ints(i)?.first().ok_or("an empty scalar")?) };
    let float = |cx: &NodeCx, i: usize| -> Result<f32, Fail> {
        Ok(*cx.const_input(i)?.to_f64_vec().first().ok_or("an empty scalar")? as f32)
    };
    let (mels, dft_length, rate) = (int(cx, 0)?, int(cx, 1)?, int(cx, 2)?);
    let (lower, upper) = (float(cx, 3)?, float(cx, 4)?);
    if !(1..=1 << 14).contains(&mels) || !(1..=1 << 20).contains(&dft_length) || rate <= 0 {
        return Err(
            format!("num_mel_bins {mels}, dft_length {dft_length} or sample_rate {rate} is out of range").into()
        );
    }
    let dtype = dtype_from_onnx(cx.attr_int_or("output_datatype", 1)? as i32)?;
    let to_mel = |hz: f32| 2595.0f32 * (1.0f32 + hz / 700.0).log10();
    let (low, high) = (to_mel(lower), to_mel(upper));
    let step = (high - low) / (mels + 2) as f32;
    let bins: Vec<i64> = (0..mels + 2)
        .map(|i| {
            let mel = i as f64 * step as f64 + low as f64;
            let hz = 700.0 * (10f64.powf(mel / 2595.0) - 1.0);
            ((dft_length + 1) as f64 * hz / rate as f64).floor() as i64
        })
        .collect();
    let rows = dft_length / 2 + 1;
    built_size([rows, mels], "the filter bank")?;
    let mut out = vec![0.0; (rows * mels) as usize];
    let mut set = |j: i64, i: i64, v: f64| -> Result<(), Fail> {
        if !(0..rows).contains(&j) {
            return Err(format!("mel bin edge {j} is outside the {rows} spectrogram bins").into());
        }
        out[(j * mels + i) as usize] = v;
        Ok(())
    };
    for i in 0..mels {
        let (left, center, right) = (bins[i as usize], bins[i as usize + 1], bins[i as usize + 2]);
        if center == left {
            set(center, i, 1.0)?;
        } else {
            for j in left..=center {
                set(j, i, (j - left) as f64 / (center - left) as f64)?;
            }
        }
        for j in center..right {
            set(j, i, (right - j) as f64 / (right - center) as f64)?;
        }
    }
    Ok(vec![NodeCx::known(TensorData::from_f64(dtype, vec![rows as usize, mels as usize], &out))])
}

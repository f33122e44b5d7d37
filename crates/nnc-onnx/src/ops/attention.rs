//! `Attention` and `RotaryEmbedding` (opset 23). `Attention`: scaled dot-product attention over 4-D `[batch, heads, seq, head]`
//! inputs or 3-D `[batch, seq, heads * head]` ones (`q_num_heads`/`kv_num_heads`), with a KV
//! cache (`past_key`/`past_value` in, `present_key`/`present_value` out), grouped-query heads,
//! a float or boolean mask (padded to the keys' length), opset 24's `nonpad_kv_seqlen` (without
//! a cache or causal masking), bottom-right causal masking, `softcap`,
//! `softmax_precision` and the `qk_matmul_output` of each `qk_matmul_output_mode`. The graph is
//! ONNX's own function body for the op, step for step (so the result is the same as its
//! `_expanded` form's), built from Graph IR primitives and `softmax`.

use super::{product, Fail, NodeCx, Out};
use crate::tensor::dtype_from_onnx;
use nnc_ir::{BinaryOp, DType, Dim, Op, PadMode, UnaryOp, ValueId};

/// A 3-D `[batch, seq, heads * head]` input as 4-D `[batch, heads, seq, head]`.
fn split_heads(cx: &mut NodeCx, x: ValueId, heads: i64, what: &str) -> Result<ValueId, Fail> {
    let ty = cx.ty(x);
    let hidden = ty.shape[2].as_const().ok_or_else(|| format!("{what}'s hidden size must be static, found {ty}"))?;
    if heads <= 0 || hidden % heads != 0 {
        return Err(format!("{what}'s hidden size {hidden} does not split into {heads} heads").into());
    }
    let dims = vec![ty.shape[0].clone(), ty.shape[1].clone(), Dim::from(heads), Dim::from(hidden / heads)];
    let x = cx.b.reshape(x, dims)?;
    Ok(cx.b.transpose(x, vec![0, 2, 1, 3])?)
}

/// `[batch, kv_heads, seq, d]` with each head repeated `times` times in place (`h0 h0 h1 h1`).
fn repeat_heads(cx: &mut NodeCx, x: ValueId, times: i64) -> Result<ValueId, Fail> {
    if times == 1 {
        return Ok(x);
    }
    let s = cx.ty(x).shape;
    let unsqueezed = vec![s[0].clone(), s[1].clone(), Dim::from(1usize), s[2].clone(), s[3].clone()];
    let x = cx.b.reshape(x, unsqueezed)?;
    let expanded = vec![s[0].clone(), s[1].clone(), Dim::from(times), s[2].clone(), s[3].clone()];
    let x = cx.b.expand(x, expanded)?;
    let heads = s[1].as_const().ok_or("the key's head count must be static")? * times;
    Ok(cx.b.reshape(x, vec![s[0].clone(), Dim::from(heads), s[2].clone(), s[3].clone()])?)
}

pub fn attention(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&[
        "is_causal",
        "kv_num_heads",
        "q_num_heads",
        "qk_matmul_output_mode",
        "scale",
        "softcap",
        "softmax_precision",
    ])?;
    let (mut q, mut k, mut v) = (cx.input(0)?, cx.input(1)?, cx.input(2)?);
    let mask = cx.opt_input(3)?;
    let (past_key, past_value) = (cx.opt_input(4)?, cx.opt_input(5)?);
    let nonpad = cx.opt_input(6)?;
    if past_key.is_some() != past_value.is_some() {
        return Err("past_key and past_value must be given together".into());
    }
    let dtype = cx.ty(q).dtype;
    let rank = cx.ty(q).rank();
    if rank != cx.ty(k).rank() || rank != cx.ty(v).rank() || !(rank == 3 || rank == 4) {
        return Err(
            format!("Q, K and V must all be 3-D or all 4-D, found {}, {}, {}", cx.ty(q), cx.ty(k), cx.ty(v)).into()
        );
    }
    if rank == 3 {
        let heads = |cx: &NodeCx, name: &str| cx.attr_int(name)?.ok_or(format!("3-D inputs need `{name}`"));
        let (qh, kvh) = (heads(cx, "q_num_heads")?, heads(cx, "kv_num_heads")?);
        q = split_heads(cx, q, qh, "Q")?;
        k = split_heads(cx, k, kvh, "K")?;
        v = split_heads(cx, v, kvh, "V")?;
    }
    // The scale's square root multiplies Q and Kᵀ each (as the function body does).
    let head = cx.ty(q).shape[3].as_const().ok_or("the head size must be static")?;
    let scale = if cx.has_attr("scale") { cx.attr_float_or("scale", 1.0)? } else { 1.0 / (head as f32).sqrt() };
    let scale_sqrt = scale.sqrt() as f64;
    if let (Some(pk), Some(pv)) = (past_key, past_value) {
        k = cx.b.concat(&[pk, k], 2)?;
        v = cx.b.concat(&[pv, v], 2)?;
    }
    let (present_key, present_value) = (k, v);
    let q_shape = cx.ty(q).shape;
    let kv_len = cx.ty(k).shape[2].clone();
    let past_len = match past_key {
        Some(pk) => cx.ty(pk).shape[2].as_const().ok_or("the past sequence length must be static")?,
        None => 0,
    };

    // The additive bias: the mask (a boolean one as 0 / -inf), padded with -inf to the keys'
    // length, plus the causal triangle.
    let mut bias = match mask {
        Some(m) => {
            let m_ty = cx.ty(m);
            let m = if m_ty.dtype == DType::Bool {
                let zero = cx.scalar(dtype, 0.0);
                let minus_inf = cx.scalar(dtype, f64::NEG_INFINITY);
                cx.b.select(m, zero, minus_inf)?
            } else {
                m
            };
            let short = m_ty.shape.last().and_then(Dim::as_const);
            match (short, kv_len.as_const()) {
                (Some(have), Some(want)) if have < want => {
                    let r = m_ty.rank();
                    let mut pads = vec![0; 2 * r];
                    pads[2 * r - 1] = want - have;
                    Some(cx.b.pad(m, pads, PadMode::Constant, f64::NEG_INFINITY)?)
                }
                _ => Some(m),
            }
        }
        None => None,
    };
    if let Some(lengths) = nonpad {
        if past_key.is_some() || cx.attr_int_or("is_causal", 0)? != 0 {
            return Err("nonpad_kv_seqlen with a past cache or is_causal is not supported".into());
        }
        // Keys at or past each batch's length are masked: [batch, 1, 1, kv] of 0 / -inf.
        let batch = q_shape[0].clone();
        let cols = cx.b.iota(DType::I64, vec![batch.clone(), kv_len.clone()], 1)?;
        let lengths = cx.b.cast(lengths, DType::I64)?;
        let lengths = cx.b.reshape(lengths, vec![batch.clone(), Dim::from(1usize)])?;
        let valid = cx.b.binary(BinaryOp::Lt, cols, lengths)?;
        let zero = cx.scalar(dtype, 0.0);
        let minus_inf = cx.scalar(dtype, f64::NEG_INFINITY);
        let padding = cx.b.select(valid, zero, minus_inf)?;
        let one = Dim::from(1usize);
        let padding = cx.b.reshape(padding, vec![batch, one.clone(), one, kv_len.clone()])?;
        bias = Some(match bias {
            Some(m) => cx.b.add(m, padding)?,
            None => padding,
        });
    }
    if cx.attr_int_or("is_causal", 0)? != 0 {
        let shape = vec![q_shape[2].clone(), kv_len.clone()];
        let rows = cx.b.iota(DType::I64, shape.clone(), 0)?;
        let rows = cx.b.binary_scalar(BinaryOp::Add, rows, past_len as f64)?;
        let cols = cx.b.iota(DType::I64, shape, 1)?;
        let hidden = cx.b.binary(BinaryOp::Lt, rows, cols)?;
        let minus_inf = cx.scalar(dtype, f64::NEG_INFINITY);
        let zero = cx.scalar(dtype, 0.0);
        let triangle = cx.b.select(hidden, minus_inf, zero)?;
        bias = Some(match bias {
            Some(m) => cx.b.add(m, triangle)?,
            None => triangle,
        });
    }

    // Grouped-query attention: each key/value head serves `q_heads / kv_heads` query heads.
    let q_heads = q_shape[1].as_const().ok_or("the query's head count must be static")?;
    let kv_heads = cx.ty(k).shape[1].as_const().ok_or("the key's head count must be static")?;
    let times = if q_heads != kv_heads && q_heads % kv_heads == 0 { q_heads / kv_heads } else { 1 };
    let (k, v) = (repeat_heads(cx, k, times)?, repeat_heads(cx, v, times)?);

    let qs = cx.b.binary_scalar(BinaryOp::Mul, q, scale_sqrt)?;
    let kt = cx.b.transpose(k, vec![0, 1, 3, 2])?;
    let ks = cx.b.binary_scalar(BinaryOp::Mul, kt, scale_sqrt)?;
    let raw = cx.b.matmul(qs, ks)?;
    let softcap = cx.attr_float_or("softcap", 0.0)? as f64;
    let capped = if softcap > 0.0 {
        let scaled = cx.b.binary_scalar(BinaryOp::Div, raw, softcap)?;
        let t = cx.b.unary(UnaryOp::Tanh, scaled)?;
        cx.b.binary_scalar(BinaryOp::Mul, t, softcap)?
    } else {
        raw
    };
    let biased = match bias {
        Some(bias) => cx.b.add(capped, bias)?,
        None => capped,
    };
    let softmax_dtype = match cx.attr_int("softmax_precision")? {
        Some(code) => dtype_from_onnx(code as i32)?,
        None => dtype,
    };
    let logits = cx.b.cast(biased, softmax_dtype)?;
    let probabilities = cx.b.softmax(logits, -1)?;
    let probabilities = cx.b.cast(probabilities, dtype)?;
    let mut y = cx.b.matmul(probabilities, v)?;
    if rank == 3 {
        let s = cx.ty(y).shape;
        let heads_by_head = match (s[1].as_const(), s[3].as_const()) {
            (Some(h), Some(d)) => product([h, d], "the output's hidden size")?,
            _ => return Err("the output's heads and head size must be static".into()),
        };
        y = cx.b.transpose(y, vec![0, 2, 1, 3])?;
        y = cx.b.reshape(y, vec![s[0].clone(), s[2].clone(), Dim::from(heads_by_head)])?;
    }
    let qk = match cx.attr_int_or("qk_matmul_output_mode", 0)? {
        0 => raw,
        1 => capped,
        2 => biased,
        3 => probabilities,
        m => return Err(format!("qk_matmul_output_mode {m} is not one of 0, 1, 2, 3").into()),
    };
    Ok(vec![NodeCx::value(y), NodeCx::value(present_key), NodeCx::value(present_value), NodeCx::value(qk)])
}

/// `x[..., start::step]` along the last axis (of length `len`).
fn strided_last(cx: &mut NodeCx, x: ValueId, start: i64, end: i64, step: i64) -> Result<ValueId, Fail> {
    let axis = cx.ty(x).rank() - 1;
    Ok(cx.b.op1(Op::Slice { axes: vec![axis], starts: vec![start], ends: vec![end], steps: vec![step] }, &[x])?)
}

/// `RotaryEmbedding(input, cos_cache, sin_cache, position_ids?)` (opset 23): the first
/// `rotary_embedding_dim` features of each head rotated by the cached angles (pairs of halves,
/// or of neighbours when `interleaved`), over 4-D `[batch, heads, seq, head]` or 3-D
/// `[batch, seq, heads * head]` input (`num_heads`); the caches indexed by `position_ids` when
/// given, else already `[batch, seq, rotary_dim / 2]`.
pub fn rotary_embedding(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&["interleaved", "rotary_embedding_dim", "num_heads"])?;
    let (x, cos, sin) = (cx.input(0)?, cx.input(1)?, cx.input(2)?);
    let positions = cx.opt_input(3)?;
    let ty = cx.ty(x);
    let s = ty.shape.clone();
    // [batch, seq, heads, head]
    let x4 = match ty.rank() {
        4 => cx.b.transpose(x, vec![0, 2, 1, 3])?,
        3 => {
            let heads = cx.attr_int_or("num_heads", 0)?;
            let hidden = s[2].as_const().ok_or("the hidden size must be static")?;
            if heads <= 0 || hidden % heads != 0 {
                return Err(format!("hidden size {hidden} does not split into num_heads = {heads} heads").into());
            }
            cx.b.reshape(x, vec![s[0].clone(), s[1].clone(), Dim::from(heads), Dim::from(hidden / heads)])?
        }
        _ => return Err(format!("the input must be 3-D or 4-D, found {ty}").into()),
    };
    let head = cx.ty(x4).shape[3].as_const().ok_or("the head size must be static")?;
    let rotary = match cx.attr_int_or("rotary_embedding_dim", 0)? {
        0 => head,
        r if r > 0 && r <= head && r % 2 == 0 => r,
        r => return Err(format!("rotary_embedding_dim {r} must be even and at most the head size {head}").into()),
    };
    let half = rotary / 2;
    let (cos, sin) = match positions {
        Some(p) => (cx.b.gather(cos, p, 0)?, cx.b.gather(sin, p, 0)?),
        None => (cos, sin),
    };
    // [batch, seq, 1, rotary / 2], to broadcast over the heads.
    let unsqueeze = |cx: &mut NodeCx, c: ValueId| -> Result<ValueId, Fail> {
        let cs = cx.ty(c).shape;
        if cs.len() != 3 || cs[2].as_const() != Some(half) {
            return Err(format!("a cache must be [batch, seq, {half}] (after position_ids), found {}", cx.ty(c)).into());
        }
        Ok(cx.b.reshape(c, vec![cs[0].clone(), cs[1].clone(), Dim::from(1usize), cs[2].clone()])?)
    };
    let (cos, sin) = (unsqueeze(cx, cos)?, unsqueeze(cx, sin)?);
    let interleaved = cx.attr_int_or("interleaved", 0)? != 0;
    let (x1, x2) = if interleaved {
        (strided_last(cx, x4, 0, rotary, 2)?, strided_last(cx, x4, 1, rotary, 2)?)
    } else {
        (strided_last(cx, x4, 0, half, 1)?, strided_last(cx, x4, half, rotary, 1)?)
    };
    let (c1, s2) = (cx.b.mul(cos, x1)?, cx.b.mul(sin, x2)?);
    let real = cx.b.sub(c1, s2)?;
    let (s1, c2) = (cx.b.mul(sin, x1)?, cx.b.mul(cos, x2)?);
    let imag = cx.b.add(s1, c2)?;
    let rotated = if interleaved {
        let pair = |cx: &mut NodeCx, v: ValueId| -> Result<ValueId, Fail> {
            let mut shape = cx.ty(v).shape;
            shape.push(Dim::from(1usize));
            Ok(cx.b.reshape(v, shape)?)
        };
        let (r, i) = (pair(cx, real)?, pair(cx, imag)?);
        let pairs = cx.b.concat(&[r, i], -1)?;
        let mut shape = cx.ty(pairs).shape;
        shape.pop();
        *shape.last_mut().ok_or("empty shape")? = Dim::from(rotary);
        cx.b.reshape(pairs, shape)?
    } else {
        cx.b.concat(&[real, imag], -1)?
    };
    let y4 = if rotary < head {
        let rest = strided_last(cx, x4, rotary, head, 1)?;
        cx.b.concat(&[rotated, rest], -1)?
    } else {
        rotated
    };
    let y = match ty.rank() {
        4 => cx.b.transpose(y4, vec![0, 2, 1, 3])?,
        _ => cx.b.reshape(y4, s)?,
    };
    Ok(vec![NodeCx::value(y)])
}

//! Ops of recurrent sequence models that carry a state between calls (opset 26's streaming
//! blocks): `CausalConvWithState`, a depthwise causal convolution whose left context is the
//! previous call's tail, and `LinearAttention`, whose state is a matrix per head.

use super::nn::add_channel_bias;
use super::{product, Fail, NodeCx, Out};
use nnc_ir::{BinaryOp, DType, Dim, PadMode, ValueId, Window};

/// `CausalConvWithState(input [B, C, L], weight [C, 1, k], bias?, past_state? [B, C, k - 1])`:
/// the input with the past state (zeros without one) before it, convolved depthwise without
/// padding, plus the bias, through SiLU if `activation` is `silu`/`swish` (computed in `f32`);
/// and the padded input's last `k - 1` positions as the next call's state.
pub fn causal_conv_with_state(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&["activation"])?;
    let activation = cx.attr_string("activation")?.unwrap_or_else(|| "none".into());
    if !matches!(activation.as_str(), "none" | "silu" | "swish") {
        return Err(format!("activation `{activation}` is not one of none, silu, swish").into());
    }
    let (x, w) = (cx.input(0)?, cx.input(1)?);
    let (x_ty, w_ty) = (cx.ty(x), cx.ty(w));
    if x_ty.rank() != 3 || w_ty.rank() != 3 {
        return Err(format!("input {x_ty} and weight {w_ty} must be [B, C, L] and [C, 1, k]").into());
    }
    let k = w_ty.shape[2].as_const().ok_or("the kernel size must be static")?;
    let channels = x_ty.shape[1].as_const().ok_or("the channel count must be static")?;
    let padded = match cx.opt_input(3)? {
        Some(past) => cx.b.concat(&[past, x], 2)?,
        None => cx.b.pad(x, vec![0, 0, k - 1, 0, 0, 0], PadMode::Constant, 0.0)?,
    };
    let mut y = cx.b.conv(padded, w, Window::unit(1), channels)?;
    if let Some(bias) = cx.opt_input(2)? {
        y = add_channel_bias(cx, y, bias)?;
    }
    if activation != "none" {
        let dtype = cx.ty(y).dtype;
        let wide = cx.b.cast(y, DType::F32)?;
        let gate = cx.b.sigmoid(wide)?;
        let silu = cx.b.mul(wide, gate)?;
        y = cx.b.cast(silu, dtype)?;
    }
    let total = cx.ty(padded).shape[2].clone();
    let end = total.as_const().ok_or("the sequence length must be static")?;
    let state = cx.b.slice_axis(padded, 2, end - (k - 1), end)?;
    Ok(vec![NodeCx::value(y), NodeCx::value(state)])
}

/// `[batch, seq, heads * d]` as `[batch, heads, seq, d]` in `f32`.
fn heads_f32(cx: &mut NodeCx, x: ValueId, heads: i64, what: &str) -> Result<ValueId, Fail> {
    let ty = cx.ty(x);
    let hidden =
        ty.shape.get(2).and_then(Dim::as_const).ok_or_else(|| format!("{what} must be [B, T, H * D], found {ty}"))?;
    if heads <= 0 || hidden % heads != 0 {
        return Err(format!("{what}'s last axis {hidden} does not split into {heads} heads").into());
    }
    let x =
        cx.b.reshape(x, vec![ty.shape[0].clone(), ty.shape[1].clone(), Dim::from(heads), Dim::from(hidden / heads)])?;
    let x = cx.b.transpose(x, vec![0, 2, 1, 3])?;
    Ok(cx.b.cast(x, DType::F32)?)
}

/// `LinearAttention(query, key, value, past_state?, decay?, beta?)` (opset 26): the recurrent
/// form of linear attention, unrolled over the sequence (its length must be static). Per step,
/// in `f32`: the `[d_k, d_v]` state of each key/value head decays by `exp(decay)` (`gated`,
/// `gated_delta`), the value is corrected by what the state already retrieves for the key,
/// scaled by `beta` (`delta`, `gated_delta`), the key ⊗ value outer product is added, and each
/// query head reads `scale · q · state` from its group's head. `chunk_size` is a tuning hint
/// with no effect on the result.
pub fn linear_attention(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&["chunk_size", "kv_num_heads", "q_num_heads", "scale", "update_rule"])?;
    let rule = cx.attr_string("update_rule")?.unwrap_or_else(|| "gated_delta".into());
    let (gating, delta) = match rule.as_str() {
        "linear" => (false, false),
        "gated" => (true, false),
        "delta" => (false, true),
        "gated_delta" => (true, true),
        r => return Err(format!("update_rule `{r}` is not one of linear, gated, delta, gated_delta").into()),
    };
    let q_heads = cx.attr_int("q_num_heads")?.ok_or("`q_num_heads` is required")?;
    let kv_heads = cx.attr_int("kv_num_heads")?.ok_or("`kv_num_heads` is required")?;
    if q_heads <= 0 || kv_heads <= 0 || q_heads % kv_heads != 0 {
        return Err(format!("q_num_heads {q_heads} must be a positive multiple of kv_num_heads {kv_heads}").into());
    }
    let (query, key, value) = (cx.input(0)?, cx.input(1)?, cx.input(2)?);
    let (past, decay, beta) = (cx.opt_input(3)?, cx.opt_input(4)?, cx.opt_input(5)?);
    if gating != decay.is_some() || delta != beta.is_some() {
        return Err(format!(
            "update_rule `{rule}` needs decay: {gating}, beta: {delta}, which the inputs do not match"
        )
        .into());
    }
    let out_dtype = cx.ty(query).dtype;
    let shape = cx.ty(query).shape;
    let steps = shape
        .get(1)
        .and_then(Dim::as_const)
        .ok_or("the sequence length must be static (nnc unrolls the recurrence)")?;
    let q = heads_f32(cx, query, q_heads, "query")?;
    let k = heads_f32(cx, key, kv_heads, "key")?;
    let v = heads_f32(cx, value, kv_heads, "value")?;
    let d_k = cx.ty(k).shape[3].as_const().ok_or("d_k must be static")?;
    let d_v = cx.ty(v).shape[3].as_const().ok_or("d_v must be static")?;
    let batch = shape[0].clone();
    // decay: [B, T, H] (one per head) or [B, T, H * d_k] -> [B, H, T, 1 or d_k].
    let decay = match decay {
        Some(g) => {
            let last =
                cx.ty(g).shape.get(2).and_then(Dim::as_const).ok_or("decay must be [B, T, H] or [B, T, H * d_k]")?;
            if last != kv_heads && Some(last) != kv_heads.checked_mul(d_k) {
                return Err(format!("decay's last axis {last} must be kv_num_heads or kv_num_heads * d_k").into());
            }
            Some(heads_f32(cx, g, kv_heads, "decay")?)
        }
        None => None,
    };
    // beta: [B, T, H or 1] -> [B, H or 1, T, 1].
    let beta = match beta {
        Some(b) => {
            let last = cx.ty(b).shape.get(2).and_then(Dim::as_const).ok_or("beta must be [B, T, H] or [B, T, 1]")?;
            if last != kv_heads && last != 1 {
                return Err(format!("beta's last axis {last} must be kv_num_heads or 1").into());
            }
            Some(heads_f32(cx, b, last, "beta")?)
        }
        None => None,
    };
    let state_dtype = past.map_or(out_dtype, |p| cx.ty(p).dtype);
    let mut state = match past {
        Some(p) => cx.b.cast(p, DType::F32)?,
        None => {
            let zero = cx.scalar(DType::F32, 0.0);
            let dims = vec![batch.clone(), Dim::from(kv_heads), Dim::from(d_k), Dim::from(d_v)];
            cx.b.expand(zero, dims)?
        }
    };
    let scale = match cx.attr_float_or("scale", 0.0)? {
        s if s != 0.0 => s as f64,
        _ => 1.0 / (d_k as f64).sqrt(),
    };
    let group = q_heads / kv_heads;
    let mut outputs = Vec::new();
    for t in 0..steps {
        let at = |cx: &mut NodeCx, x: ValueId| cx.b.slice_axis(x, 2, t, t + 1);
        let (q_t, k_t, mut v_t) = (at(cx, q)?, at(cx, k)?, at(cx, v)?);
        if let Some(g) = decay {
            // [B, H, 1, 1 or d_k] -> [B, H, 1 or d_k, 1], to scale the state's rows.
            let g_t = at(cx, g)?;
            let g_t = cx.b.transpose(g_t, vec![0, 1, 3, 2])?;
            let factor = cx.b.exp(g_t)?;
            state = cx.b.mul(state, factor)?;
        }
        if let Some(b) = beta {
            let retrieved = cx.b.matmul(k_t, state)?;
            let error = cx.b.sub(v_t, retrieved)?;
            let b_t = at(cx, b)?;
            v_t = cx.b.mul(b_t, error)?;
        }
        let k_col = cx.b.transpose(k_t, vec![0, 1, 3, 2])?;
        let outer = cx.b.mul(k_col, v_t)?;
        state = cx.b.add(state, outer)?;
        let read = if group == 1 {
            state
        } else {
            // Each key/value head serves `group` query heads in a row (h0 h0 h1 h1 ...).
            let five = vec![batch.clone(), Dim::from(kv_heads), Dim::from(1usize), Dim::from(d_k), Dim::from(d_v)];
            let s5 = cx.b.reshape(state, five.clone())?;
            let mut wide = five;
            wide[2] = Dim::from(group);
            let s5 = cx.b.expand(s5, wide)?;
            cx.b.reshape(s5, vec![batch.clone(), Dim::from(q_heads), Dim::from(d_k), Dim::from(d_v)])?
        };
        let o_t = cx.b.matmul(q_t, read)?;
        outputs.push(cx.b.binary_scalar(BinaryOp::Mul, o_t, scale)?);
    }
    let y = cx.b.concat(&outputs, 2)?;
    let y = cx.b.transpose(y, vec![0, 2, 1, 3])?;
    let hidden = product([q_heads, d_v], "the output's hidden size")?;
    let y = cx.b.reshape(y, vec![batch, shape[1].clone(), Dim::from(hidden)])?;
    let y = cx.b.cast(y, out_dtype)?;
    let present = cx.b.cast(state, state_dtype)?;
    Ok(vec![NodeCx::value(y), NodeCx::value(present)])
}

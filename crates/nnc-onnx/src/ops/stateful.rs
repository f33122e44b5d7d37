//! Ops of recurrent sequence models that carry a state between calls (opset 26's streaming
//! blocks): `CausalConvWithState`, a depthwise causal convolution whose left context is the
//! previous call's tail.

use super::nn::add_channel_bias;
use super::{NodeCx, Out};
use nnc_ir::{DType, PadMode, Window};

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

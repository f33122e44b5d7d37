//! Signal processing: the window functions (`HannWindow`, `HammingWindow`, `BlackmanWindow`),
//! computed at import time from their size, which must be known then.

use super::{NodeCx, Out};
use crate::tensor::dtype_from_onnx;
use nnc_ir::TensorData;
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

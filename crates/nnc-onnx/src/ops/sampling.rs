//! Spatial sampling: `AffineGrid` (the sampling grid of an affine transform).

use super::{NodeCx, Out};
use nnc_ir::{Dim, TensorData};

/// The largest grid `AffineGrid` builds at import time.
const MAX_GRID: i64 = 1 << 24;

/// `AffineGrid(theta [N, 2, 3] or [N, 3, 4], size [N, C, (D,) H, W])`: the normalized
/// coordinates `(x, y(, z), 1)` of each output position (pixel centres in `[-1, 1]`, or the
/// corners with `align_corners`), a constant built at import time, times `thetaᵀ`:
/// `[N, (D,) H, W, 2 or 3]`.
pub fn affine_grid(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&["align_corners"])?;
    let theta = cx.input(0)?;
    let size = cx.const_ints(1)?;
    let spatial: Vec<i64> = size.get(2..).map(<[i64]>::to_vec).unwrap_or_default();
    let n = spatial.len();
    if !(n == 2 || n == 3) || spatial.iter().any(|&d| d <= 0) {
        return Err(format!("size {size:?} must be [N, C, H, W] or [N, C, D, H, W] with positive sizes").into());
    }
    let positions: i64 = spatial.iter().product();
    if positions > MAX_GRID {
        return Err(format!("a grid of {positions} positions is too large").into());
    }
    let align = cx.attr_int_or("align_corners", 0)? != 0;
    let coordinate = |i: i64, len: i64| -> f64 {
        if align {
            -1.0 + i as f64 * (2.0 / (len - 1) as f64)
        } else {
            let step = 2.0 / len as f64;
            -1.0 + step / 2.0 + i as f64 * step
        }
    };
    // Rows (x, y(, z), 1) in row-major order of the spatial axes; x is the last axis.
    let mut base = Vec::with_capacity((positions * (n as i64 + 1)) as usize);
    for p in 0..positions {
        let mut rest = p;
        let mut coords = vec![0.0; n];
        for a in (0..n).rev() {
            coords[n - 1 - a] = coordinate(rest % spatial[a], spatial[a]);
            rest /= spatial[a];
        }
        base.extend(coords);
        base.push(1.0);
    }
    let dtype = cx.ty(theta).dtype;
    let base = cx.b.constant(TensorData::from_f64(dtype, vec![positions as usize, n + 1], &base));
    let theta_t = cx.b.transpose(theta, vec![0, 2, 1])?;
    let grid = cx.b.matmul(base, theta_t)?;
    let mut shape = vec![cx.ty(theta).shape[0].clone()];
    shape.extend(spatial.iter().map(|&d| Dim::from(d)));
    shape.push(Dim::from(n));
    Ok(vec![NodeCx::value(cx.b.reshape(grid, shape)?)])
}

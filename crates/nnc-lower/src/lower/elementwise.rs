//! Elementwise ops: `unary`, `binary`, `select`, `cast`, `iota` and `constant`.
//!
//! Each operand is read at the output index with numpy broadcasting (a size-1 axis reads 0,
//! missing leading axes are dropped). `iota` is the output axis cast to its dtype; `constant`
//! reads its own data, bound by the caller as buffer 0.

use super::{axes, broadcast_index, Ctx, LowerError};
use nnc_ir::Op;
use nnc_kernel::expr::{BufId, Expr};
use nnc_kernel::kernel::Compute;

pub(super) fn lower(cx: &Ctx, op: &Op) -> Result<Compute, LowerError> {
    let rank = cx.out_shape().len();
    let operand = |k: usize| -> Result<Expr, LowerError> { cx.load(k, broadcast_index(cx.in_shape(k)?, rank)) };
    let e = match op {
        Op::Constant(t) => Expr::load(BufId(0), t.dtype(), axes(rank)),
        Op::Iota { dtype, axis, .. } => Expr::cast(*dtype, Expr::Axis(*axis as u8)),
        Op::Unary(u) => Expr::unary(*u, operand(0)?),
        Op::Binary(b) => Expr::binary(*b, operand(0)?, operand(1)?),
        Op::Select => Expr::select(operand(0)?, operand(1)?, operand(2)?),
        Op::Cast { to } => Expr::cast(*to, operand(0)?),
        _ => return Err(cx.err(format!("`{}` is not elementwise", op.name()))),
    };
    Ok(Compute::Map(e))
}

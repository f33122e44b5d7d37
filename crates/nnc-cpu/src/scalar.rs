//! The walk over a scalar expression that both code generators share: which operands are
//! evaluated, in what order, and which only on their side of a branch (a `select` whose side
//! may fault or call out, a masked load). Each generator implements [`ScalarCode`] with its own
//! instructions; [`walk`] decides the rest, so the two cannot drift apart on what an expression
//! means.

use crate::plan::needs_branch;
use nnc_ir::{BinaryOp, DType, UnaryOp};
use nnc_kernel::expr::{BufId, Expr, Literal, Special};

/// The variable a workgroup id along `axis` is kept in (beside the kernel's own variables).
pub(crate) fn group_id_variable(axis: usize) -> u32 {
    u32::MAX - axis as u32
}

/// One side of [`ScalarCode::emit_branch`]: code for the value on that path.
pub(crate) type Side<'s, C> = &'s mut dyn FnMut(&mut C) -> Result<<C as ScalarCode>::Value, <C as ScalarCode>::Error>;

/// One generator's scalar instructions.
pub(crate) trait ScalarCode {
    type Value: Copy;
    type Error: From<String>;

    /// Code for a whole expression: [`walk`], or the generator's own path first (LLVM's vector
    /// lanes). Operands are evaluated through it.
    fn expr(&mut self, e: &Expr) -> Result<Self::Value, Self::Error>;
    fn emit_literal(&mut self, l: Literal) -> Result<Self::Value, Self::Error>;
    /// The value of variable `id` (a kernel variable, or [`group_id_variable`]).
    fn emit_variable(&mut self, id: u32) -> Result<Self::Value, Self::Error>;
    fn emit_unary(&mut self, op: UnaryOp, dtype: DType, x: Self::Value) -> Result<Self::Value, Self::Error>;
    fn emit_binary(
        &mut self,
        op: BinaryOp,
        dtype: DType,
        x: Self::Value,
        y: Self::Value,
    ) -> Result<Self::Value, Self::Error>;
    /// `x` where `c` holds, else `y`, both already evaluated.
    fn emit_select(&mut self, c: Self::Value, x: Self::Value, y: Self::Value) -> Result<Self::Value, Self::Error>;
    fn emit_cast(&mut self, x: Self::Value, from: DType, to: DType) -> Result<Self::Value, Self::Error>;
    /// An unmasked load of `buf[index]`.
    fn emit_load(&mut self, buf: BufId, dtype: DType, index: &[Expr]) -> Result<Self::Value, Self::Error>;
    /// A value of `dtype` computed by `then` where `c` holds and by `otherwise` elsewhere, each
    /// only on its own path.
    fn emit_branch(
        &mut self,
        c: Self::Value,
        dtype: DType,
        then: Side<'_, Self>,
        otherwise: Side<'_, Self>,
    ) -> Result<Self::Value, Self::Error>
    where
        Self: Sized;
}

/// Code for `e`, one node at a time. On a CPU each workgroup is one invocation: its thread id
/// is 0.
pub(crate) fn walk<C: ScalarCode>(c: &mut C, e: &Expr) -> Result<C::Value, C::Error> {
    match e {
        Expr::Lit(l) => c.emit_literal(*l),
        Expr::Var(v) => c.emit_variable(v.id),
        Expr::Special(Special::ThreadId(_)) => c.emit_literal(Literal::Int(0, DType::I64)),
        Expr::Special(Special::GroupId(axis)) => c.emit_variable(group_id_variable(usize::from(*axis))),
        Expr::Axis(_) | Expr::Reduce(_) => Err(format!("expression `{e}` is not scheduled").into()),
        Expr::Unary(op, a) => {
            let x = c.expr(a)?;
            c.emit_unary(*op, a.dtype(), x)
        }
        Expr::Binary(op, a, b) => {
            let x = c.expr(a)?;
            let y = c.expr(b)?;
            c.emit_binary(*op, a.dtype(), x, y)
        }
        Expr::Select(cond, a, b) => {
            let cv = c.expr(cond)?;
            if needs_branch(a) || needs_branch(b) {
                c.emit_branch(cv, a.dtype(), &mut |c| c.expr(a), &mut |c| c.expr(b))
            } else {
                let x = c.expr(a)?;
                let y = c.expr(b)?;
                c.emit_select(cv, x, y)
            }
        }
        Expr::Cast(to, a) => {
            let x = c.expr(a)?;
            c.emit_cast(x, a.dtype(), *to)
        }
        Expr::Load { buf, dtype, index, mask: None } => c.emit_load(*buf, *dtype, index),
        Expr::Load { buf, dtype, index, mask: Some(m) } => {
            let mv = c.expr(m)?;
            c.emit_branch(mv, *dtype, &mut |c| c.emit_load(*buf, *dtype, index), &mut |c| {
                c.emit_literal(Literal::zero(*dtype))
            })
        }
    }
}

//! Integer contractions four products at a time: on a device with `u8 × i8` dot products
//! ([`Device::int8_dot`](nnc_kernel::device::Device)), a register tile of a contraction of
//! widened `u8` activations and `i8` weights takes its reduction in steps of four (the
//! schedule's `tile[2]`), each tile update one expression summing four products
//! (`acc + a0*b0 + a1*b1 + a2*b2 + a3*b3`), which the CPU code generator emits as one
//! `vpdpbusd` per vector. Exact in any order: `i32` sums wrap.
//!
//! The instruction reads the four `u8` of a row as one 32-bit word and the four `i8` of each
//! column as one 32-bit lane, so both factors must hold consecutive reduction steps at
//! consecutive addresses: activations along their last axis, weights packed `[K/4, N, 4]` by
//! the layout pass (`crate::layout`). [`groups_of_four`] checks exactly that on the factors'
//! loads.

use super::affine;
use super::shapes::Contraction;
use crate::simplify::simplify_with;
use nnc_ir::{BinaryOp, DType};
use nnc_kernel::expr::{BufId, Expr, Var};
use nnc_kernel::kernel::flat_index;

/// Products one dot-product instruction sums per lane.
pub(super) const GROUP: i64 = 4;

/// The reduction variable and its extent where contraction `c` of an output of `shape` can
/// take its reduction four steps at a time: `i32(u8 or i8 load) * i32(i8 load)`, one reduction
/// variable whose extent is a multiple of four, no masks, and each load reading the four
/// steps of a group at consecutive addresses.
/// `shape_of` gives the shape of each buffer the factors load from.
pub(super) fn groups_of_four(
    c: &Contraction,
    shape: &[i64],
    shape_of: &dyn Fn(BufId) -> Vec<i64>,
) -> Option<(Var, i64)> {
    let [(k, extent)] = c.reduction.vars[..] else { return None };
    if extent % GROUP != 0 || extent == 0 {
        return None;
    }
    let widened = |e: &Expr, from: &[DType]| matches!(e, Expr::Cast(DType::I32, x) if matches!(&**x, Expr::Load { dtype, mask: None, .. } if from.contains(dtype)));
    // Signed activations too: the code generator shifts them to unsigned and corrects.
    if !widened(&c.a, &[DType::U8, DType::I8]) || !widened(&c.b, &[DType::I8]) {
        return None;
    }
    let group = Var { id: u32::MAX - 3, dtype: DType::I64 };
    let ranges = [(group.id, extent / GROUP)];
    let consecutive = |factor: &Expr| {
        let Expr::Cast(_, load) = factor else { return false };
        let Expr::Load { buf, .. } = &**load else { return false };
        let dims = shape_of(*buf);
        let flat = |j: i64| {
            let Expr::Load { index, .. } = at_step(load, k, group, j) else { unreachable!("a load stays a load") };
            let flat = simplify_with(flat_index(&dims, &index), shape, &ranges);
            let mut terms = Vec::new();
            let constant = affine(&flat, 1, &mut terms)?;
            Some((constant, merged(terms)))
        };
        let Some((first, terms)) = flat(0) else { return false };
        (1..GROUP).all(|j| flat(j).is_some_and(|(c, t)| c == first + j && t == terms))
    };
    (consecutive(&c.a) && consecutive(&c.b)).then_some((k, extent))
}

/// Affine terms with equal expressions added up, zero coefficients dropped, in a fixed order.
fn merged(terms: Vec<(i64, Expr)>) -> Vec<(i64, String)> {
    let mut out: Vec<(i64, String)> = Vec::new();
    for (c, e) in terms {
        let key = e.to_string();
        match out.iter_mut().find(|(_, k)| *k == key) {
            Some(entry) => entry.0 += c,
            None => out.push((c, key)),
        }
    }
    out.retain(|(c, _)| *c != 0);
    out.sort_by(|x, y| x.1.cmp(&y.1));
    out
}

/// `e` with reduction variable `k` at step `j` of group `group`: `GROUP * group + j`.
pub(super) fn at_step(e: &Expr, k: Var, group: Var, j: i64) -> Expr {
    let step = Expr::add_index(Expr::mul_index(Expr::Var(group), Expr::i64(GROUP)), Expr::i64(j));
    e.clone().rewrite(&mut |x| match x {
        Expr::Var(v) if v.id == k.id => step.clone(),
        x => x,
    })
}

/// `Σ_j a[j] * b[j]`, the products in order (the form the code generators recognize).
pub(super) fn dot(a: Vec<Expr>, b: Vec<Expr>) -> Expr {
    let mut products = a.into_iter().zip(b).map(|(x, y)| Expr::binary(BinaryOp::Mul, x, y));
    let first = products.next().expect("a group has products");
    products.fold(first, |sum, p| Expr::binary(BinaryOp::Add, sum, p))
}

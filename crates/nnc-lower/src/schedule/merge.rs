//! Merging a CPU kernel's trailing output axes where every access reads them as one run: a
//! `[c, 10, 10]` feature map then has rows of 100 elements, which fill vectors, where rows of 10
//! did not, and a 1x1 convolution's pixels are one column axis that fills register tiles.
//!
//! Two axes `y`, `x` (the last two of the output) merge when each load that reads them indexes
//! two adjacent axes of its buffer with exactly `y` and `x`, of the same extents, and nothing
//! else reads them (a window offset `y + ky`, a bounds check, a stride). Those buffers are
//! viewed with the two axes as one (the same memory, row-major), and every load of them indexes
//! the merged axis with `i * X + j`. Merging stops before it would leave fewer than
//! [`MIN_ROWS`] rows, so the rows still spread over the threads.

use nnc_kernel::expr::{BufId, Expr};
use std::collections::HashMap;

/// Trailing axes are not merged where that leaves fewer rows (elements of the other axes).
const MIN_ROWS: i64 = 64;

/// A CPU kernel's expression and output shape as its templates see them: simplified, and with
/// trailing axes merged where every access allows (below); with the shapes, by the
/// expression's buffer ids, of the buffers it reads and of `out` (`shape_of` gives them), as
/// merged.
pub(super) fn cpu_view(
    expr: Expr,
    shape: &[i64],
    out: BufId,
    shape_of: impl Fn(BufId) -> Vec<i64>,
) -> (Expr, Vec<i64>, HashMap<u32, Vec<i64>>) {
    let expr = crate::simplify::simplify_map(expr, shape);
    let mut buffers = HashMap::from([(out.0, shape.to_vec())]);
    expr.any(&mut |e| {
        if let Expr::Load { buf, .. } = e {
            buffers.entry(buf.0).or_insert_with(|| shape_of(*buf));
        }
        false
    });
    let (expr, shape) = merge_trailing_axes(expr, shape.to_vec(), &mut buffers, out);
    (expr, shape, buffers)
}

/// `expr` over `shape` with trailing output axes merged as far as the module allows, with the
/// shapes of the buffers it reads and of its output `out` (`buffers`, by id: every buffer the
/// expression loads and `out`) changed to match; unchanged where nothing merges.
pub(crate) fn merge_trailing_axes(
    mut expr: Expr,
    mut shape: Vec<i64>,
    buffers: &mut HashMap<u32, Vec<i64>>,
    out: BufId,
) -> (Expr, Vec<i64>) {
    while shape.len() >= 2 {
        let (y, x) = (shape.len() - 2, shape.len() - 1);
        if shape[..y].iter().product::<i64>() < MIN_ROWS || shape[y] == 1 || shape[x] == 1 {
            break;
        }
        let mut positions = HashMap::from([(out.0, y)]);
        if !mergeable(&expr, y as u8, (shape[y], shape[x]), buffers, &mut positions) {
            break;
        }
        let inner = shape[x];
        expr = expr.rewrite(&mut |e| match e {
            Expr::Load { buf, dtype, mut index, mask } if positions.contains_key(&buf.0) => {
                let p = positions[&buf.0];
                let j = index.remove(p + 1);
                index[p] = match (&index[p], &j) {
                    (Expr::Axis(a), Expr::Axis(b)) if *a as usize == y && *b as usize == x => Expr::Axis(y as u8),
                    (i, _) => Expr::add_index(Expr::mul_index(i.clone(), Expr::i64(inner)), j),
                };
                Expr::Load { buf, dtype, index, mask }
            }
            e => e,
        });
        for (b, &p) in &positions {
            if let Some(dims) = buffers.get_mut(b) {
                dims[p] *= dims.remove(p + 1);
            }
        }
        shape[y] *= inner;
        shape.pop();
    }
    (expr, shape)
}

/// Whether every read of output axes `y` and `y + 1` (of extents `extents`) in `e` is a load
/// indexing two adjacent axes of its buffer with exactly them, each buffer always at the same
/// position; fills `positions` (buffer → the first of its two axes).
fn mergeable(
    e: &Expr,
    y: u8,
    extents: (i64, i64),
    buffers: &HashMap<u32, Vec<i64>>,
    positions: &mut HashMap<u32, usize>,
) -> bool {
    let reads = |e: &Expr| e.any(&mut |x| matches!(x, Expr::Axis(a) if *a == y || *a == y + 1));
    match e {
        Expr::Axis(a) => *a != y && *a != y + 1,
        Expr::Load { buf, index, mask, .. } => {
            if mask.as_deref().is_some_and(reads) {
                return false;
            }
            let at =
                index.windows(2).position(|w| matches!(w, [Expr::Axis(a), Expr::Axis(b)] if *a == y && *b == y + 1));
            let Some(p) = at else {
                // Not reading the pair: its other index expressions must not read them either;
                // a buffer merged elsewhere takes `i * X + j` at its merged position.
                return index.iter().all(|i| mergeable(i, y, extents, buffers, positions));
            };
            let Some(dims) = buffers.get(&buf.0) else { return false };
            let fits = dims.get(p) == Some(&extents.0) && dims.get(p + 1) == Some(&extents.1);
            let others_clear = index.iter().enumerate().all(|(k, i)| k == p || k == p + 1 || !reads(i));
            fits && others_clear && *positions.entry(buf.0).or_insert(p) == p
        }
        Expr::Reduce(r) => mergeable(&r.body, y, extents, buffers, positions),
        _ => {
            let mut ok = true;
            e.for_each_child(|c| ok &= mergeable(c, y, extents, buffers, positions));
            ok
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nnc_ir::{BinaryOp, DType};
    use nnc_kernel::expr::{Combine, Var};

    fn axis(a: u8) -> Expr {
        Expr::Axis(a)
    }

    fn load(buf: u32, index: Vec<Expr>) -> Expr {
        Expr::load(BufId(buf), DType::F32, index)
    }

    /// Buffer shapes by id, in order.
    fn shapes(list: Vec<Vec<i64>>) -> HashMap<u32, Vec<i64>> {
        list.into_iter().enumerate().map(|(i, s)| (i as u32, s)).collect()
    }

    /// A 1x1 convolution `out[c, y, x] = sum_k w[k, c] * in[k, y, x]` plus a bias `b[c, 0, 0]`.
    fn pointwise_conv(channels: i64) -> (Expr, HashMap<u32, Vec<i64>>) {
        let k = Var { id: 1, dtype: DType::I64 };
        let body = Expr::binary(
            BinaryOp::Mul,
            load(0, vec![Expr::Var(k), axis(0)]),
            load(1, vec![Expr::Var(k), axis(1), axis(2)]),
        );
        let sum = Expr::reduce(Combine::Sum, vec![(k, 16)], body);
        let expr = Expr::binary(BinaryOp::Add, sum, load(2, vec![axis(0), Expr::i64(0), Expr::i64(0)]));
        let buffers = shapes(vec![vec![16, channels], vec![16, 10, 10], vec![channels, 1, 1], vec![channels, 10, 10]]);
        (expr, buffers)
    }

    #[test]
    fn a_pointwise_convolution_merges_its_pixels() {
        let (expr, mut buffers) = pointwise_conv(96);
        let (expr, shape) = merge_trailing_axes(expr, vec![96, 10, 10], &mut buffers, BufId(3));
        assert_eq!(shape, vec![96, 100]);
        assert_eq!(buffers, shapes(vec![vec![16, 96], vec![16, 100], vec![96, 1, 1], vec![96, 100]]));
        let mut input_index = None;
        expr.any(&mut |e| {
            if let Expr::Load { buf: BufId(1), index, .. } = e {
                input_index = Some(index.clone());
            }
            false
        });
        assert_eq!(input_index.unwrap()[1], axis(1));
    }

    #[test]
    fn too_few_rows_window_offsets_and_masks_do_not_merge() {
        // Eight channels leave too few rows.
        let (expr, mut buffers) = pointwise_conv(8);
        let (_, shape) = merge_trailing_axes(expr, vec![8, 10, 10], &mut buffers, BufId(3));
        assert_eq!(shape, vec![8, 10, 10]);
        // A window offset on the last axis.
        let shifted = load(0, vec![axis(0), axis(1), Expr::add_index(axis(2), Expr::i64(1))]);
        let mut buffers = shapes(vec![vec![96, 10, 11], vec![96, 10, 10]]);
        let (_, shape) = merge_trailing_axes(shifted, vec![96, 10, 10], &mut buffers, BufId(1));
        assert_eq!(shape, vec![96, 10, 10]);
        // A bounds check that reads an axis.
        let masked = Expr::Load {
            buf: BufId(0),
            dtype: DType::F32,
            index: vec![axis(0), axis(1), axis(2)],
            mask: Some(Box::new(Expr::binary(BinaryOp::Lt, axis(2), Expr::i64(5)))),
        };
        let mut buffers = shapes(vec![vec![96, 10, 10], vec![96, 10, 10]]);
        let (_, shape) = merge_trailing_axes(masked, vec![96, 10, 10], &mut buffers, BufId(1));
        assert_eq!(shape, vec![96, 10, 10]);
    }

    #[test]
    fn other_loads_of_a_merged_buffer_index_the_merged_axis() {
        // out[c, y, x] = a[c, y, x] + a[c, 0, 9]: the second load reads `0 * 10 + 9`.
        let expr = Expr::binary(
            BinaryOp::Add,
            load(0, vec![axis(0), axis(1), axis(2)]),
            load(0, vec![axis(0), Expr::i64(0), Expr::i64(9)]),
        );
        let mut buffers = shapes(vec![vec![96, 10, 10], vec![96, 10, 10]]);
        let (expr, shape) = merge_trailing_axes(expr, vec![96, 10, 10], &mut buffers, BufId(1));
        assert_eq!(shape, vec![96, 100]);
        let expected =
            Expr::binary(BinaryOp::Add, load(0, vec![axis(0), axis(1)]), load(0, vec![axis(0), Expr::i64(9)]));
        assert_eq!(expr, expected);
    }
}

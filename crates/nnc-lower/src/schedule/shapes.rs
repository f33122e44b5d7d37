//! Recognizing which template an expression fits: the rows a row kernel splits its output into
//! ([`row_split`]), a matmul's parts for GPU tiles ([`matmul_parts`]) and a contraction's for
//! CPU register tiles ([`contraction_parts`]), and the default shape of those tiles
//! ([`cpu_tile`]).

use super::affine;
use crate::lower_reduce::{canonical_key, contains_reduce, free_vars};
use nnc_ir::{BinaryOp, DType};
use nnc_kernel::device::Device;
use nnc_kernel::expr::{Combine, Expr, Reduction};

/// How a row kernel splits the output: rows over the `shared` axes (those the row's shared
/// reductions depend on), each of `inner` elements over the other axes, and the reductions all
/// elements of a row share.
pub(super) struct RowSplit {
    pub(super) shared: Vec<bool>,
    pub(super) rows: i64,
    pub(super) inner: i64,
    pub(super) reduce_extent: i64,
    pub(super) reductions: usize,
}

impl RowSplit {
    /// The axes (and their extents) that are shared, or not.
    pub(super) fn axes(&self, shape: &[i64], shared: bool) -> (Vec<usize>, Vec<i64>) {
        (0..shape.len()).filter(|&a| self.shared[a] == shared).map(|a| (a, shape[a])).unzip()
    }
}

/// The reductions of `expr` (outside other reductions) and the output axes each depends on.
pub(super) fn top_reductions(expr: &Expr) -> Vec<&Reduction> {
    pub(super) fn go<'a>(e: &'a Expr, out: &mut Vec<&'a Reduction>) {
        match e {
            Expr::Reduce(r) => out.push(r),
            _ => e.for_each_child(|c| go(c, out)),
        }
    }
    let mut out = Vec::new();
    go(expr, &mut out);
    out
}

pub(super) fn axes_used(e: &Expr, rank: usize) -> Vec<bool> {
    let mut used = vec![false; rank];
    e.any(&mut |x| {
        if let Expr::Axis(a) = x {
            if let Some(u) = used.get_mut(*a as usize) {
                *u = true;
            }
        }
        false
    });
    used
}

pub(super) fn row_split(expr: &Expr, shape: &[i64]) -> Option<RowSplit> {
    let reductions = top_reductions(expr);
    if reductions.is_empty() {
        return None;
    }
    let rank = shape.len();
    let used: Vec<Vec<bool>> = reductions.iter().map(|r| axes_used(&r.body, rank)).collect();
    // Reductions that leave some axis out are shared by the elements along it; rows run over
    // the axes those depend on. With none, each element is its own row.
    let mut shared = vec![false; rank];
    let mut any = false;
    for u in used.iter().filter(|u| u.iter().any(|&x| !x)) {
        any = true;
        shared.iter_mut().zip(u).for_each(|(s, &x)| *s |= x);
    }
    if !any {
        shared = vec![true; rank];
    }
    let rows: i64 = shape.iter().zip(&shared).filter(|(_, &s)| s).map(|(d, _)| d).product();
    let inner: i64 = shape.iter().zip(&shared).filter(|(_, &s)| !s).map(|(d, _)| d).product();
    let reduce_extent = reductions.iter().map(|r| r.vars.iter().map(|(_, n)| n).product::<i64>()).max().unwrap_or(1);
    let mut keys: Vec<String> = reductions.iter().map(|r| canonical_key(r)).collect();
    keys.sort();
    keys.dedup();
    Some(RowSplit { shared, rows, inner, reduce_extent, reductions: keys.len() * 2 })
}

/// The one reduction of `expr` outside the others, which an epilogue may read more than once
/// (SiLU: `x * sigmoid(x)`, copies equal up to the names of their variables).
fn single_contraction(expr: &Expr) -> Option<&Reduction> {
    let reductions = top_reductions(expr);
    let (&r, copies) = reductions.split_first()?;
    let key = canonical_key(r);
    copies.iter().all(|c| canonical_key(c) == key).then_some(r)
}

/// Whether tiles take contractions of `dtype`: floats, and `i32` (the integer products of
/// quantized models, which accumulate in it).
fn contracted(dtype: DType) -> bool {
    dtype.is_float() || dtype == DType::I32
}

/// The parts of `epilogue(sum_k a * b)`: the reduction, and which factor depends on which
/// output axis (a on the row axis `rank-2`, b on the column axis `rank-1`).
pub(super) fn matmul_parts(expr: &Expr, rank: usize) -> Option<(&Reduction, bool)> {
    if rank < 2 {
        return None;
    }
    let r = single_contraction(expr)?;
    if r.combine != Combine::Sum || r.vars.len() != 1 || contains_reduce(&r.body) || !contracted(r.body.dtype()) {
        return None;
    }
    let Expr::Binary(BinaryOp::Mul, a, b) = &r.body else { return None };
    let (ua, ub) = (axes_used(a, rank), axes_used(b, rank));
    let (row, col) = (rank - 2, rank - 1);
    let k = r.vars[0].0;
    let uses_k = |e: &Expr| free_vars(e).contains(&k);
    if !uses_k(a) || !uses_k(b) {
        return None;
    }
    if !ua[col] && !ub[row] {
        Some((r, false))
    } else if !ub[col] && !ua[row] {
        Some((r, true))
    } else {
        None
    }
}

/// A contraction `epilogue(sum_r a * b)` (matmul, convolution): the reduction, its two
/// factors, a row axis `i` that only `a` reads and a column axis `j` that only `b` reads (so a
/// register tile of rows x columns reuses each `a` for a vector of `b`).
pub(super) struct Contraction {
    pub(super) reduction: Reduction,
    pub(super) a: Expr,
    pub(super) b: Expr,
    pub(super) i: usize,
    pub(super) j: usize,
}

/// The longest reduction for which a contraction's tiles favour contiguous stores over whole
/// tiles (see [`contraction_parts`]).
const SHORT_REDUCTION: i64 = 64;

/// How well a (column axis, factor order) makes register tiles, best highest (see
/// [`contraction_parts`]).
type TileScore = (bool, bool, bool, bool, bool);

pub(super) fn contraction_parts(expr: &Expr, shape: &[i64], columns: i64) -> Option<Contraction> {
    let rank = shape.len();
    if rank < 2 {
        return None;
    }
    let r = single_contraction(expr)?;
    if r.combine != Combine::Sum || contains_reduce(&r.body) || !contracted(r.body.dtype()) {
        return None;
    }
    let Expr::Binary(BinaryOp::Mul, x, y) = &r.body else { return None };
    // Every (column axis, factor order) that makes a tile, ranked: columns more than one wide
    // (a tile over an axis of extent 1 computes one column of its vectors), then vector loads
    // of `b` along the columns contiguous, then free of masks (a convolution's packed weights
    // rather than its input), then filling the tiles (below), then the last axis (the order
    // the output is stored in).
    // Columns fill the tiles: whole tiles of `columns`, or, for a short reduction (a 1x1
    // convolution of few channels, where a tile stores about as much as it computes), the
    // output's last axis with at most an eighth of the last tile idle, as its stores are then
    // rows of vectors rather than single elements a row apart.
    let depth: i64 = r.vars.iter().map(|(_, n)| n).product();
    let fills_tiles = |j: usize| {
        let columns = columns.max(1);
        let tiles = (shape[j] + columns - 1) / columns;
        let idle = tiles * columns - shape[j];
        shape[j] % columns == 0 || (j == rank - 1 && depth <= SHORT_REDUCTION && idle * 8 <= tiles * columns)
    };
    let mut best: Option<(TileScore, Contraction)> = None;
    for j in (0..rank).rev() {
        for (a, b) in [(x, y), (y, x)] {
            let (ua, ub) = (axes_used(a, rank), axes_used(b, rank));
            if ua[j] || !ub[j] {
                continue;
            }
            // The row axis: the innermost axis `a` reads and `b` does not (each `a` then serves
            // a vector of `b`); else one both read (a depthwise convolution's channels: the tile
            // still keeps vector accumulators over `j`).
            let others = || (0..rank).rev().filter(move |&i| i != j);
            // Else an axis of extent 1 (a matrix-vector product's single row).
            let row = others()
                .find(|&i| ua[i] && !ub[i] && shape[i] > 1)
                .or_else(|| others().find(|&i| ua[i] && !ub[i]))
                .or_else(|| others().find(|&i| ua[i] && shape[i] > 1))
                .or_else(|| others().find(|&i| shape[i] == 1 && !ub[i]));
            let Some(i) = row else { continue };
            let unmasked =
                !b.any(&mut |e| matches!(e, Expr::Load { mask: Some(_), .. }) || matches!(e, Expr::Select(..)));
            let score = (shape[j] > 1, unit_stride(b, j), unmasked, fills_tiles(j), j == rank - 1);
            if best.as_ref().is_none_or(|(s, _)| score > *s) {
                let c = Contraction { reduction: r.clone(), a: (**a).clone(), b: (**b).clone(), i, j };
                best = Some((score, c));
            }
        }
    }
    best.map(|(_, c)| c)
}

/// Whether a load of `e` indexes with output axis `j` and a variable of `reduction` together
/// (a convolution's input at `x * stride + kx`: a window sliding along `j`).
pub(super) fn slides_along(e: &Expr, j: usize, reduction: &Reduction) -> bool {
    let reads_j = |x: &Expr| x.any(&mut |y| matches!(y, Expr::Axis(a) if *a as usize == j));
    let reads_window =
        |x: &Expr| x.any(&mut |y| matches!(y, Expr::Var(v) if reduction.vars.iter().any(|(w, _)| w.id == v.id)));
    e.any(&mut |x| matches!(x, Expr::Load { index, .. } if index.iter().any(|i| reads_j(i) && reads_window(i))))
}

/// Whether every load in `e` that reads output axis `j` has `j` with coefficient one in its last
/// index and nowhere else (consecutive `j` then reads consecutive elements).
pub(super) fn unit_stride(e: &Expr, j: usize) -> bool {
    let reads_j = |x: &Expr| x.any(&mut |y| matches!(y, Expr::Axis(a) if *a as usize == j));
    let mut ok = true;
    e.any(&mut |x| {
        if let Expr::Load { index, .. } = x {
            if let Some((last, rest)) = index.split_last() {
                if let Some(p) = panel_width(index, j) {
                    // Panels of `p` columns (packed weights): consecutive within a tile whose
                    // columns are one panel (see `layout`).
                    ok &= rest
                        .iter()
                        .filter(|i| reads_j(i))
                        .all(|i| *i == Expr::div_index(Expr::Axis(j as u8), Expr::i64(p)));
                } else if rest.iter().any(reads_j) {
                    ok = false;
                } else if reads_j(last) {
                    let mut terms = Vec::new();
                    let coefficient = affine(last, 1, &mut terms).map(|_| {
                        let mut k = 0;
                        for (c, t) in &terms {
                            match t {
                                Expr::Axis(a) if *a as usize == j => k += c,
                                t if reads_j(t) => return 0,
                                _ => {}
                            }
                        }
                        k
                    });
                    ok &= coefficient == Some(1);
                }
            }
        }
        false
    });
    ok
}

/// The width of the panels a load reads axis `j` in: its last index is `j % p` (weights packed
/// as `[O/p, .., p]`, read back through a reshape).
pub(super) fn panel_width(index: &[Expr], j: usize) -> Option<i64> {
    match index.last()? {
        Expr::Binary(BinaryOp::Rem, a, p) if matches!(**a, Expr::Axis(x) if x as usize == j) => p.as_int(),
        _ => None,
    }
}

/// The panel width of the first load of `e` that reads axis `j` in panels, if any.
pub(super) fn panel_of(e: &Expr, j: usize) -> Option<i64> {
    let mut found = None;
    e.any(&mut |x| {
        if let Expr::Load { index, .. } = x {
            found = found.or_else(|| panel_width(index, j));
        }
        false
    });
    found
}

/// Whether every load of `e` that reads axis `j` in panels (see [`panel_width`]) has panels
/// of `columns`: a tile of other columns would read them through divisions, as scalars.
pub(super) fn panels_fit(e: &Expr, j: usize, columns: i64) -> bool {
    !e.any(&mut |x| matches!(x, Expr::Load { index, .. } if panel_width(index, j).is_some_and(|p| p != columns)))
}

/// The default CPU register tile (rows, columns) of a contraction whose row axis has `rows`
/// elements, column axis `columns` and reduction `depth` steps, on `device`; `wide` whether the
/// contraction keeps its orientation in tiles of four vectors of columns (see
/// [`contraction_parts`]). [`crate::layout`] packs convolution weights in panels of these
/// columns, so both must agree: this is the one place that decides.
///
/// 4 rows x 2 vectors: 8 vector accumulators, a broadcast and two loads fit the 16 vector
/// registers of x86-64 and aarch64. Columns that fit one vector (a convolution to 16 channels
/// on 16 lanes) make tiles of one vector and twice the rows: the same 8 accumulators, none of
/// them idle. Fewer rows than the tile's (a matrix-vector product): one tile row per row.
///
/// With 32 vector registers (AVX-512), 7 rows x 4 vectors (28 accumulators, a broadcast and a
/// scratch register) where that tile divides the contraction exactly: about 10% faster than
/// 4 x 2 on resnet18's 3x3 convolutions (212 against 190 GFLOP/s on two Zen 4 cores). Only
/// there: a tile that runs partly outside the output takes the bounds-checked path, far slower
/// than the tile saves (a 32-channel convolution in 64-column tiles ran 20x slower), and rows
/// that do not divide the row axis are flattened over the axes outside it. At least two tiles
/// along the rows, unless the reduction is 2,048 steps or longer: over weight panels,
/// resnet18's 3x3 convolutions on 7x7 maps (4,608 steps, one tile per image row) ran 13-16%
/// faster in the wide tile, mobilenet_v2's 960-to-320 1x1 convolution on the same maps 29-50%
/// slower. Shorter reductions than 512 steps (resnet18's 1x1 and 7x7 stride-2
/// convolutions, 64 to 256 and 147 steps) ran 17-33% slower: more accumulators to clear and
/// store per step.
pub(crate) fn cpu_tile(rows: i64, columns: i64, depth: i64, wide: bool, device: &Device) -> (u32, u32) {
    const WIDE_ROWS: u32 = 7;
    const WIDE_VECTORS: u32 = 4;
    const WIDE_MIN_DEPTH: i64 = 512;
    const WIDE_ONE_ROW_DEPTH: i64 = 2048;
    let v = device.vector;
    let wide_columns = WIDE_VECTORS * v;
    let fits_wide = wide
        && device.vector_registers >= WIDE_ROWS * WIDE_VECTORS + 2
        && rows % WIDE_ROWS as i64 == 0
        && (rows >= 2 * WIDE_ROWS as i64 || depth >= WIDE_ONE_ROW_DEPTH)
        && columns % wide_columns as i64 == 0
        && depth >= WIDE_MIN_DEPTH;
    let (tile_rows, tile_columns) = if fits_wide {
        (WIDE_ROWS, wide_columns)
    } else if columns <= v as i64 {
        (8, v)
    } else {
        (4, 2 * v)
    };
    (if rows < tile_rows as i64 { rows.max(1) as u32 } else { tile_rows }, tile_columns)
}

/// Whether contraction `c` keeps its row and column axes and factor order in tiles of four
/// vectors of columns (the argument `wide` of [`cpu_tile`]).
pub(super) fn keeps_orientation_wide(expr: &Expr, shape: &[i64], c: &Contraction, device: &Device) -> bool {
    contraction_parts(expr, shape, 4 * device.vector as i64).is_some_and(|w| w.i == c.i && w.j == c.j && w.a == c.a)
}

//! Scheduling: a fused group and a [`Schedule`] become a [`Kernel`].
//!
//! Which template applies is decided from the group's expression and the [`Device`]'s
//! capabilities (data, never a branch on a backend):
//! - [`Strategy::TiledMatmul`]: `epilogue(sum_k a(i, k) * b(k, j))` on a GPU: operand tiles are
//!   staged through workgroup memory between barriers. On a CPU any contraction (matmul,
//!   convolution) becomes register tiles: rows of broadcast `a` times vectors of `b` along the
//!   column axis where `b` is contiguous, the reduction innermost, full tiles without checks;
//! - [`Strategy::RowReduce`]: reductions shared by a whole row (softmax, layer norm, a large
//!   reduction with few outputs) on a GPU: one workgroup per row reduces through a tree in
//!   workgroup memory, then writes the row;
//! - [`Strategy::Elementwise`]: everything else. On a GPU one invocation per output element; on
//!   a CPU one invocation per row, whose inner loop runs as vector lanes (reductions a row
//!   shares computed before it, through vector lanes where they can be);
//! - [`Strategy::Serial`]: programs (top-k, ordered scatters), one invocation.

use crate::lower_reduce::{
    arg_better, arg_start, canonical_key, combine_values, free_vars, identity, lower_program, ReductionLowering,
};
use nnc_ir::{BinaryOp, DType};
use nnc_kernel::device::{Device, DeviceKind};
use nnc_kernel::expr::{BufId, Combine, Expr, Reduction, Special, Var, VarGen};
use nnc_kernel::kernel::{
    Access, Buffer, Compute, Kernel, Launch, LoopKind, Schedule, Space, Stmt, Strategy, TileOrder,
};
use nnc_kernel::program::{Fused, Group};
use nnc_kernel::visit::visit_stmts;
use std::collections::HashMap;

mod masks;
use masks::{affine, always_holds, bounds_a_mask, mask_loads, reduction_guard, strip_masks};
mod merge;
use merge::cpu_view;
mod concat_rows;
mod int8_dot;
mod shapes;
pub(crate) use shapes::cpu_tile;
use shapes::{axes_used, contraction_parts, matmul_parts, row_split};
mod window_rows;
use window_rows::{copy_stmts, vectorize_window_row};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("kernel `{kernel}`: {message}")]
pub struct ScheduleError {
    pub kernel: String,
    pub message: String,
}

/// The fewest lanes of the vectors a CPU row narrows to where it is shorter than the device's.
const MIN_ROW_VECTOR: i64 = 4;

/// The schedule the compiler picks for group `g` without tuning.
pub fn default_schedule(fused: &Fused, g: usize, device: &Device) -> Schedule {
    let group = &fused.groups[g];
    let base = Schedule::PLAIN;
    let Compute::Map(expr) = &group.compute else {
        return Schedule { strategy: Strategy::Serial, ..base };
    };
    let shape = &fused.buffers[group.writes[0].index()].shape;
    let numel: i64 = shape.iter().product();
    if device.kind == DeviceKind::Cpu {
        let shape_of = |b: BufId| fused.buffers[b.index()].shape.clone();
        let (expr, shape, merged) = &cpu_view(expr.clone(), shape, group.writes[0], shape_of);
        // Register tiles as `shapes::cpu_tile` says.
        let v = device.vector;
        // A convolution whose factors both read the row axis (a depthwise convolution's
        // channels) reuses neither across the tile's rows: where the output's rows hold a
        // vector (a narrower one for short rows, see `cpu_rows`), it runs as rows of windows,
        // vector lanes over the last axis (see `window_rows`).
        // (A convolution: `b` reads the column axis shifted by the window, unlike a batched
        // matmul's factors, which share their batch axes and keep the tiles.)
        let rows_of_windows = |c: &shapes::Contraction| {
            axes_used(&c.b, shape.len())[c.i]
                && shape.last().is_some_and(|&n| n >= MIN_ROW_VECTOR)
                && shapes::slides_along(&c.b, c.j, &c.reduction)
        };
        let contraction = contraction_parts(expr, shape, 2 * v as i64).filter(|_| v > 1);
        if let Some(c) = contraction.filter(|c| !rows_of_windows(c)) {
            let depth: i64 = c.reduction.vars.iter().map(|(_, n)| n).product();
            let wide = shapes::keeps_orientation_wide(expr, shape, &c, device);
            let (rows, columns) = shapes::cpu_tile(shape[c.i], shape[c.j], depth, wide, device);
            // Weights in panels (see `layout`, which decides by the same function) are read by
            // tiles as wide as a panel, seen as the template will see the contraction (its
            // orientation depends on the columns); where no width reads them whole, rows.
            let fits = |columns: u32| {
                contraction_parts(expr, shape, columns as i64)
                    .map(|c| (shapes::panels_fit(&c.b, c.j, columns as i64), shapes::panel_of(&c.b, c.j)))
            };
            let (rows, columns) = match fits(columns) {
                Some((true, _)) => (rows, columns),
                Some((false, Some(p))) if (p as u32).is_multiple_of(v) && fits(p as u32).is_some_and(|f| f.0) => {
                    (rows.min((device.vector_registers.max(4) - 2) / (p as u32 / v)).max(1), p as u32)
                }
                _ => return Schedule { vector: device.vector, ..base },
            };
            // Integer dot products take the reduction four steps at a time where they can (as
            // the tiles of these columns see the contraction).
            let viewed = |b: BufId| merged.get(&b.0).cloned().unwrap_or_else(|| shape_of(b));
            let grouped = device.int8_dot
                && contraction_parts(expr, shape, columns as i64)
                    .is_some_and(|c| int8_dot::groups_of_four(&c, shape, &viewed).is_some());
            let step = if grouped { int8_dot::GROUP as u32 } else { 1 };
            return Schedule { strategy: Strategy::TiledMatmul, tile: [rows, columns, step], vector: v, ..base };
        }
        // Vector code wherever it fits: rows at least a vector long (with a scalar loop for the
        // rest), and reductions whose innermost variable spans two vectors (a global pool to
        // one value per channel).
        return Schedule { vector: device.vector, ..base };
    }
    if matmul_parts(expr, shape.len()).is_some() && device.workgroup_bytes >= 2 * 16 * 16 * 8 {
        let wg = 16 * 16;
        if wg <= device.max_workgroup {
            return Schedule { strategy: Strategy::TiledMatmul, workgroup_size: wg, tile: [16, 16, 16], ..base };
        }
    }
    if let Some(row) = row_split(expr, shape) {
        let wg = (row.reduce_extent.max(row.inner) as u32).next_power_of_two().clamp(32, device.max_workgroup);
        let shared = row.reductions as u32 * wg * 8;
        if shared <= device.workgroup_bytes && (row.inner > 1 || row.reduce_extent >= 256 && numel <= 4096) {
            return Schedule { strategy: Strategy::RowReduce, workgroup_size: wg, ..base };
        }
    }
    let wg = (numel.max(1) as u32).next_power_of_two().clamp(32, device.max_workgroup.min(256));
    Schedule { workgroup_size: wg, ..base }
}

/// Schedules every group with its default schedule.
pub fn schedule_all(fused: &Fused, device: &Device) -> Result<Vec<Kernel>, ScheduleError> {
    (0..fused.groups.len()).map(|g| schedule_group(fused, g, &default_schedule(fused, g, device), device)).collect()
}

/// Builds the kernel of group `g` under `schedule`.
pub fn schedule_group(fused: &Fused, g: usize, schedule: &Schedule, device: &Device) -> Result<Kernel, ScheduleError> {
    let group = &fused.groups[g];
    let err = |message: String| ScheduleError { kernel: group.name.clone(), message };
    let mut buffers: Vec<Buffer> = Vec::new();
    let global = |id: BufId, access| {
        let b = &fused.buffers[id.index()];
        Buffer { name: b.name.clone(), dtype: b.dtype, shape: b.shape.clone(), space: Space::Global, access }
    };
    buffers.extend(group.reads.iter().map(|&b| global(b, Access::Read)));
    buffers.extend(group.writes.iter().map(|&b| global(b, Access::Write)));
    let mut k = KernelBuilder { buffers, vars: VarGen::after(max_var(&group.compute) + 1) };
    let (body, launch) = match &group.compute {
        Compute::Program(stmts) => {
            if schedule.strategy != Strategy::Serial {
                return Err(err(format!("a program runs serially, not as {}", schedule.strategy.name())));
            }
            (lower_program(stmts.clone(), &mut k.vars), Launch::serial())
        }
        Compute::Map(expr) => {
            let expr = remap_loads(expr.clone(), group);
            let out = BufId(group.reads.len() as u32);
            let shape = k.buffers[out.index()].shape.clone();
            // CPU templates decide from the simplified expression with trailing axes merged (as
            // `default_schedule` does); GPU kernels keep the expression as fused.
            let (expr, shape) = match device.kind {
                DeviceKind::Cpu => {
                    let (expr, shape, merged) = cpu_view(expr, &shape, out, |b| k.buffers[b.index()].shape.clone());
                    for (b, dims) in merged {
                        k.buffers[b as usize].shape = dims;
                    }
                    (expr, shape)
                }
                DeviceKind::Gpu => (expr, shape),
            };
            match schedule.strategy {
                Strategy::Elementwise if device.kind == DeviceKind::Cpu => k.cpu_rows(expr, out, &shape, schedule),
                Strategy::Elementwise => k.gpu_elementwise(expr, out, &shape, schedule, device),
                Strategy::RowReduce => k.gpu_rows(expr, out, &shape, schedule, device).ok_or_else(|| {
                    err("row_reduce needs reductions shared by a row of the output and a power-of-two workgroup".into())
                })?,
                Strategy::TiledMatmul if device.kind == DeviceKind::Cpu => k
                    .cpu_register_tiles(expr, out, &shape, schedule)
                    .ok_or_else(|| err("tiled_matmul needs `epilogue(sum a(.., i, ..) * b(.., j))`".into()))?,
                Strategy::TiledMatmul => k
                    .gpu_tiled_matmul(expr, out, &shape, schedule, device)
                    .ok_or_else(|| err("tiled_matmul needs `epilogue(sum_k a(i, k) * b(k, j))`".into()))?,
                Strategy::Serial => k.serial(expr, out, &shape),
            }
        }
    };
    if launch.threads_per_workgroup() > device.max_workgroup as u64 {
        return Err(err(format!(
            "{} invocations per workgroup exceed the device's {}",
            launch.threads_per_workgroup(),
            device.max_workgroup
        )));
    }
    // The schedule records what the kernel does: no vector width where no loop is vectorized.
    let mut schedule = *schedule;
    let mut vectorized = false;
    visit_stmts(&body, &mut |st| vectorized |= matches!(st, Stmt::For { kind: LoopKind::Vector(_), .. }));
    if !vectorized {
        schedule.vector = 1;
    }
    let mut kernel =
        Kernel { name: group.name.clone(), buffers: k.buffers, launch, body, schedule, covers: group.covers.clone() };
    crate::simplify::simplify(&mut kernel);
    Ok(kernel)
}

/// Renumbers a map group's loads from program buffers to the kernel's own (reads first): the
/// expression as a program of this group alone would hold it.
pub fn remap_loads(expr: Expr, group: &Group) -> Expr {
    expr.rewrite(&mut |e| match e {
        Expr::Load { buf, dtype, index, mask } => {
            let local = group.reads.iter().position(|&b| b == buf).unwrap_or(0);
            Expr::Load { buf: BufId(local as u32), dtype, index, mask }
        }
        e => e,
    })
}

fn max_var(c: &Compute) -> u32 {
    fn in_expr(e: &Expr) -> u32 {
        let mut max = 0;
        e.any(&mut |x| {
            match x {
                Expr::Var(v) => max = max.max(v.id),
                Expr::Reduce(r) => r.vars.iter().for_each(|(v, _)| max = max.max(v.id)),
                _ => {}
            }
            false
        });
        max
    }
    match c {
        Compute::Map(e) => in_expr(e),
        Compute::Program(stmts) => {
            let mut max = 0;
            visit_stmts(stmts, &mut |s| {
                let m = match s {
                    Stmt::For { var, extent, .. } => var.id.max(in_expr(extent)),
                    Stmt::Let { var, value } | Stmt::Local { var, init: value } | Stmt::Assign { var, value } => {
                        var.id.max(in_expr(value))
                    }
                    Stmt::Store { index, value, .. } => {
                        index.iter().map(in_expr).max().unwrap_or(0).max(in_expr(value))
                    }
                    Stmt::If { cond, .. } => in_expr(cond),
                    Stmt::Barrier => 0,
                };
                max = max.max(m);
            });
            max
        }
    }
}

struct KernelBuilder {
    buffers: Vec<Buffer>,
    vars: VarGen,
}

/// Whether `e` computes a transcendental (which vector code computes inline, scalar code by a
/// call per element).
fn has_transcendental(e: &Expr) -> bool {
    e.any(&mut |x| matches!(x, Expr::Unary(op, a) if a.dtype().is_float() && nnc_kernel::cost::is_transcendental(*op)))
}

/// Whether `e` computes a transcendental or converts a float to an integer (a quantization):
/// worth vector code even where its results are stored one by one.
fn costly_per_element(e: &Expr) -> bool {
    has_transcendental(e) || e.any(&mut |x| matches!(x, Expr::Cast(to, a) if to.is_int() && a.dtype().is_float()))
}

fn tid(axis: u8) -> Expr {
    Expr::Special(Special::ThreadId(axis))
}

fn gid(axis: u8) -> Expr {
    Expr::Special(Special::GroupId(axis))
}

fn lt(a: Expr, b: Expr) -> Expr {
    Expr::binary(BinaryOp::Lt, a, b)
}

/// A grid of `groups` workgroups over axes x and y (each at most `max_grid`), and the
/// expression of the flat workgroup index.
fn grid_2d(groups: i64, max_grid: u32) -> ([u32; 3], Expr) {
    let gx = groups.clamp(0, max_grid as i64);
    if groups <= gx {
        return ([gx as u32, 1, 1], gid(0));
    }
    let gy = (groups + gx - 1) / gx;
    ([gx as u32, gy as u32, 1], Expr::add_index(Expr::mul_index(gid(1), Expr::i64(gx)), gid(0)))
}

impl KernelBuilder {
    fn let_(&mut self, l: &mut ReductionLowering<'_>, value: Expr) -> Expr {
        let v = l.vars.fresh(value.dtype());
        l.push(Stmt::Let { var: v, value });
        l.bind(v);
        Expr::Var(v)
    }

    /// Binds output axes `axes` of `shape` from the flat index `flat`, as `let`s.
    fn unflatten(
        &mut self,
        l: &mut ReductionLowering<'_>,
        flat: Expr,
        shape: &[i64],
        axes: std::ops::Range<usize>,
    ) -> Vec<Expr> {
        let dims = &shape[axes.clone()];
        let mut out = Vec::new();
        let mut stride: i64 = dims.iter().product();
        for (i, &d) in dims.iter().enumerate() {
            stride /= d.max(1);
            let mut e = Expr::div_index(flat.clone(), Expr::i64(stride));
            if i > 0 {
                e = Expr::rem_index(e, Expr::i64(d));
            }
            let v = if d == 1 { Expr::i64(0) } else { self.let_(l, e) };
            out.push(v);
        }
        out
    }

    fn store_all(&mut self, l: &mut ReductionLowering<'_>, expr: Expr, out: BufId, axes: &[Expr]) {
        let expr = bind_axes(expr, axes);
        let value = l.lower(expr);
        l.push(Stmt::Store { buf: out, index: axes.to_vec(), value });
    }

    /// One invocation per output element.
    fn gpu_elementwise(
        &mut self,
        expr: Expr,
        out: BufId,
        shape: &[i64],
        s: &Schedule,
        device: &Device,
    ) -> (Vec<Stmt>, Launch) {
        let numel: i64 = shape.iter().product();
        let wg = s.workgroup_size.max(1) as i64;
        let groups = (numel + wg - 1) / wg;
        let (grid, group) = grid_2d(groups, device.max_grid);
        let mut vars = std::mem::take(&mut self.vars);
        let mut l = ReductionLowering::new(&mut vars);
        let flat = self.let_(&mut l, Expr::add_index(Expr::mul_index(group, Expr::i64(wg)), tid(0)));
        l.open_guard();
        let axes = self.unflatten(&mut l, flat.clone(), shape, 0..shape.len());
        self.store_all(&mut l, expr, out, &axes);
        let then = l.close();
        l.push(Stmt::If { cond: lt(flat, Expr::i64(numel)), then, els: vec![] });
        let body = l.finish();
        self.vars = vars;
        (body, Launch { grid, workgroup: [wg as u32, 1, 1] })
    }

    /// One invocation per row (all axes but the last); the last axis is an inner loop, vector
    /// lanes when the schedule says so. Reductions a row shares are hoisted out of the loop.
    fn cpu_rows(&mut self, expr: Expr, out: BufId, shape: &[i64], s: &Schedule) -> (Vec<Stmt>, Launch) {
        let rank = shape.len();
        // Rows over the axes shared reductions depend on (so each is computed once per row);
        // without reductions, over all axes but the last.
        // Reductions each element has to itself (a pooling window) leave rows over all axes
        // but the last too (when there are any, so rows still spread over threads): an
        // invocation per element would spend more on finding its element than on its window.
        let (outer_axes, inner_axes): (Vec<usize>, Vec<usize>) = match row_split(&expr, shape) {
            // (Axes of extent 1 count as outer: no reduction reads them, and they would keep the
            // inner loop from being the last axis alone. Nor do they make a reduction shared: a
            // depthwise convolution's window, which reads every other axis, is its element's own.)
            Some(split) if rank < 2 || !split.shared.iter().zip(shape).all(|(&s, &n)| s || n == 1) => {
                (0..rank).partition(|&a| split.shared[a] || (shape[a] == 1 && a + 1 < rank))
            }
            _ => (0..rank).partition(|&a| a + 1 < rank),
        };
        let dims = |axes: &[usize]| axes.iter().map(|&a| shape[a]).collect::<Vec<i64>>();
        let (outer_dims, inner_dims) = (dims(&outer_axes), dims(&inner_axes));
        let inner_len: i64 = inner_dims.iter().product();
        let (grid, group) = grid_2d(outer_dims.iter().product(), u32::MAX);
        let mut vars = std::mem::take(&mut self.vars);
        let mut l = ReductionLowering::new(&mut vars).with_vector_lanes(s.vector, self.buffers.len() as u32);
        let outer = self.unflatten(&mut l, group, &outer_dims, 0..outer_dims.len());
        let j = l.vars.index();
        l.open(&[j]);
        let inner = self.unflatten(&mut l, Expr::Var(j), &inner_dims, 0..inner_dims.len());
        let axes = merge_axes(rank, (&outer_axes, &outer), (&inner_axes, &inner));
        self.store_all(&mut l, expr, out, &axes);
        let body = l.close();
        self.buffers.append(&mut l.new_buffers);
        // Vector lanes need straight-line code over the contiguous last axis; a row whose
        // length is not a multiple of the lanes ends in a scalar loop over the rest. Elements
        // that each reduce a window of their own run as vector lanes of the window's loops.
        let straight = body.iter().all(|st| matches!(st, Stmt::Let { .. } | Stmt::Store { .. }));
        let contiguous = inner_axes == [rank.wrapping_sub(1)];
        // Rows shorter than the device's vectors take narrower ones (at least 4 lanes): a
        // 4x4 pooled map's rows are one vector of 4, not 4 scalar elements.
        let row_vector = match s.vector {
            v if v <= 1 || inner_len >= v as i64 => v,
            _ if inner_len >= MIN_ROW_VECTOR => 1 << (63 - inner_len.leading_zeros()),
            _ => 1,
        };
        let lanes = row_vector as i64;
        if lanes > 1 && straight && contiguous && inner_len >= lanes {
            // A concatenated row as one loop per source; each loop's length not a multiple of
            // the lanes ends in a scalar loop over the rest.
            let pieces =
                concat_rows::split_row(&body, j, inner_len, lanes).unwrap_or_else(|| vec![(0, inner_len, body)]);
            for (start, end, piece) in pieces {
                let main = (end - start) / lanes * lanes;
                for (from, to, kind) in [(0, main, LoopKind::Vector(row_vector)), (main, end - start, LoopKind::Serial)]
                {
                    if to > from && start + from == 0 {
                        // (The row's first loop keeps its variables.)
                        l.push(Stmt::For { var: j, extent: Expr::i64(to), kind, body: piece.clone() });
                    } else if to > from {
                        let t = l.vars.index();
                        let at = Expr::add_index(Expr::Var(t), Expr::i64(start + from));
                        let body = copy_stmts(&piece, &mut HashMap::from([(j.id, at)]), l.vars);
                        l.push(Stmt::For { var: t, extent: Expr::i64(to - from), kind, body });
                    }
                }
            }
        } else if let Some(chunks) = contiguous
            .then(|| vectorize_window_row(&body, j, inner_len, row_vector, l.vars, &mut self.buffers))
            .flatten()
        {
            chunks.into_iter().for_each(|st| l.push(st));
        } else {
            l.push(Stmt::For { var: j, extent: Expr::i64(inner_len), kind: LoopKind::Serial, body });
        }
        let body = l.finish();
        self.vars = vars;
        (body, Launch { grid, workgroup: [1, 1, 1] })
    }

    /// A map run by one invocation (used when a schedule asks for it).
    fn serial(&mut self, expr: Expr, out: BufId, shape: &[i64]) -> (Vec<Stmt>, Launch) {
        let mut vars = std::mem::take(&mut self.vars);
        let mut l = ReductionLowering::new(&mut vars);
        let loops: Vec<Var> = shape.iter().map(|_| l.vars.index()).collect();
        for v in &loops {
            l.open(&[*v]);
        }
        let axes: Vec<Expr> = loops.iter().map(|v| Expr::Var(*v)).collect();
        self.store_all(&mut l, expr, out, &axes);
        for (v, n) in loops.iter().zip(shape).rev() {
            let body = l.close();
            l.push(Stmt::For { var: *v, extent: Expr::i64(*n), kind: LoopKind::Serial, body });
        }
        let body = l.finish();
        self.vars = vars;
        (body, Launch::serial())
    }

    fn shared(&mut self, name: &str, dtype: DType, shape: Vec<i64>) -> BufId {
        self.buffers.push(Buffer {
            name: name.into(),
            dtype,
            shape,
            space: Space::Workgroup,
            access: Access::ReadWrite,
        });
        BufId(self.buffers.len() as u32 - 1)
    }

    /// One workgroup per row: each reduction the row shares is computed cooperatively (a
    /// strided partial per invocation, then a tree through workgroup memory), then the
    /// invocations write the row's elements in strides.
    fn gpu_rows(
        &mut self,
        expr: Expr,
        out: BufId,
        shape: &[i64],
        s: &Schedule,
        device: &Device,
    ) -> Option<(Vec<Stmt>, Launch)> {
        let split = row_split(&expr, shape)?;
        let wg = s.workgroup_size as i64;
        if wg < 1 || !(wg as u64).is_power_of_two() {
            return None;
        }
        let (grid, group) = grid_2d(split.rows, device.max_grid);
        let mut vars = std::mem::take(&mut self.vars);
        let mut l = ReductionLowering::new(&mut vars);
        let (shared_axes, shared_dims) = split.axes(shape, true);
        let (inner_axes, inner_dims) = split.axes(shape, false);
        let row = self.unflatten(&mut l, group, &shared_dims, 0..shared_dims.len());
        let mut expr = bind_some_axes(expr, &shared_axes, &row);
        // Compute shared reductions innermost first; each is replaced by its result everywhere.
        while let Some(r) = next_row_reduction(&expr, &split.shared) {
            let result = self.cooperative_reduce(&mut l, r.clone(), wg);
            let key = canonical_key(&r);
            expr = expr.rewrite(&mut |e| match e {
                Expr::Reduce(x) if canonical_key(&x) == key => Expr::Var(result),
                e => e,
            });
        }
        // The row's elements, `wg` at a time.
        let t = l.vars.index();
        l.open(&[t]);
        let q = self.let_(&mut l, Expr::add_index(Expr::mul_index(Expr::Var(t), Expr::i64(wg)), tid(0)));
        l.open_guard();
        let inner = self.unflatten(&mut l, q.clone(), &inner_dims, 0..inner_dims.len());
        let axes = merge_axes(shape.len(), (&shared_axes, &row), (&inner_axes, &inner));
        self.store_all(&mut l, expr, out, &axes);
        let then = l.close();
        l.push(Stmt::If { cond: lt(q, Expr::i64(split.inner)), then, els: vec![] });
        let body = l.close();
        l.push(Stmt::For { var: t, extent: Expr::i64((split.inner + wg - 1) / wg), kind: LoopKind::Serial, body });
        let body = l.finish();
        self.vars = vars;
        Some((body, Launch { grid, workgroup: [wg as u32, 1, 1] }))
    }

    /// Emits a workgroup-wide reduction of `r` and returns the variable holding its result.
    fn cooperative_reduce(&mut self, l: &mut ReductionLowering<'_>, r: Reduction, wg: i64) -> Var {
        let dtype = r.body.dtype();
        let arg = matches!(r.combine, Combine::ArgMax { .. } | Combine::ArgMin { .. });
        let extent: i64 = r.vars.iter().map(|(_, n)| n).product();
        let acc = l.vars.fresh(dtype);
        let init = if arg { arg_start(r.combine, dtype) } else { identity(r.combine, dtype) };
        l.push(Stmt::Local { var: acc, init });
        let pos = l.vars.index();
        if arg {
            l.push(Stmt::Local { var: pos, init: Expr::i64(0) });
        }
        // Strided partials: invocation `tid` takes positions tid, tid + wg, ...
        let t = l.vars.index();
        l.open(&[t]);
        let p = self.let_(l, Expr::add_index(Expr::mul_index(Expr::Var(t), Expr::i64(wg)), tid(0)));
        l.open_guard();
        let dims: Vec<i64> = r.vars.iter().map(|(_, n)| *n).collect();
        let idx = self.unflatten(l, p.clone(), &dims, 0..dims.len());
        let body = r.body.rewrite(&mut |e| match e {
            Expr::Var(v) => match r.vars.iter().position(|(x, _)| *x == v) {
                Some(k) => idx[k].clone(),
                None => Expr::Var(v),
            },
            e => e,
        });
        let term = l.lower(body);
        if arg {
            let tv = self.let_(l, term);
            let better = arg_better(r.combine, tv.clone(), p.clone(), Expr::Var(acc), Expr::Var(pos));
            let b = self.let_(l, better);
            l.push(Stmt::Assign { var: acc, value: Expr::select(b.clone(), tv, Expr::Var(acc)) });
            l.push(Stmt::Assign { var: pos, value: Expr::select(b, p.clone(), Expr::Var(pos)) });
        } else {
            l.push(Stmt::Assign { var: acc, value: combine_values(r.combine, Expr::Var(acc), term) });
        }
        let then = l.close();
        l.push(Stmt::If { cond: lt(p, Expr::i64(extent)), then, els: vec![] });
        let body = l.close();
        l.push(Stmt::For { var: t, extent: Expr::i64((extent + wg - 1) / wg), kind: LoopKind::Serial, body });

        // Tree over workgroup memory: halve the active invocations each step.
        let vals = self.shared("partial", dtype, vec![wg]);
        let poss = if arg { Some(self.shared("partial_pos", DType::I64, vec![wg])) } else { None };
        l.push(Stmt::Store { buf: vals, index: vec![tid(0)], value: Expr::Var(acc) });
        if let Some(pb) = poss {
            l.push(Stmt::Store { buf: pb, index: vec![tid(0)], value: Expr::Var(pos) });
        }
        l.push(Stmt::Barrier);
        let mut step = wg / 2;
        while step >= 1 {
            let other = Expr::add_index(tid(0), Expr::i64(step));
            let mine_v = Expr::load(vals, dtype, vec![tid(0)]);
            let theirs_v = Expr::load(vals, dtype, vec![other.clone()]);
            let mut then = Vec::new();
            match poss {
                None => then.push(Stmt::Store {
                    buf: vals,
                    index: vec![tid(0)],
                    value: combine_values(r.combine, mine_v, theirs_v),
                }),
                Some(pb) => {
                    let mine_p = Expr::load(pb, DType::I64, vec![tid(0)]);
                    let theirs_p = Expr::load(pb, DType::I64, vec![other]);
                    let b = l.vars.fresh(DType::Bool);
                    then.push(Stmt::Let {
                        var: b,
                        value: arg_better(
                            r.combine,
                            theirs_v.clone(),
                            theirs_p.clone(),
                            mine_v.clone(),
                            mine_p.clone(),
                        ),
                    });
                    then.push(Stmt::Store {
                        buf: vals,
                        index: vec![tid(0)],
                        value: Expr::select(Expr::Var(b), theirs_v, mine_v),
                    });
                    then.push(Stmt::Store {
                        buf: pb,
                        index: vec![tid(0)],
                        value: Expr::select(Expr::Var(b), theirs_p, mine_p),
                    });
                }
            }
            l.push(Stmt::If { cond: lt(tid(0), Expr::i64(step)), then, els: vec![] });
            l.push(Stmt::Barrier);
            step /= 2;
        }
        let result = l.vars.fresh(if arg { DType::I64 } else { dtype });
        let value = match poss {
            Some(pb) => Expr::load(pb, DType::I64, vec![Expr::i64(0)]),
            None => Expr::load(vals, dtype, vec![Expr::i64(0)]),
        };
        l.push(Stmt::Let { var: result, value });
        l.bind(result);
        // Each reduction has buffers of its own and a workgroup reduces one row, so nothing
        // overwrites them: no barrier is needed after the result is read.
        result
    }

    /// CPU register tiles: each invocation computes `tile[0]` rows x `tile[1]` columns of a
    /// contraction in private accumulators, the reduction outermost, broadcasting one `a` per row
    /// against a vector of `b`s; full tiles take a path without bounds checks.
    fn cpu_register_tiles(
        &mut self,
        expr: Expr,
        out: BufId,
        shape: &[i64],
        s: &Schedule,
    ) -> Option<(Vec<Stmt>, Launch)> {
        let (mr, nr) = (s.tile[0] as i64, s.tile[1] as i64);
        let c = contraction_parts(&expr, shape, nr)?;
        let v = s.vector.max(1);
        if mr < 1 || nr < 1 || nr % v as i64 != 0 || !shapes::panels_fit(&c.b, c.j, nr) {
            return None;
        }
        let rank = shape.len();
        let (ua, ub) = (axes_used(&c.a, rank), axes_used(&c.b, rank));
        // Rows run over the row axis and, where its extent leaves a partial tile, over the axes
        // just outside it that only `a` reads too, flattened (a 7x7 convolution output is 49
        // rows: twelve full tiles of four instead of two tiles per image row, one partial).
        let mut rows = vec![c.i];
        if shape[c.i] % mr != 0 {
            while let Some(&x) = rows.first().filter(|&&x| x > 0) {
                let outer = x - 1;
                if outer == c.j || !ua[outer] || ub[outer] {
                    break;
                }
                rows.insert(0, outer);
            }
        }
        let m: i64 = rows.iter().map(|&x| shape[x]).product();
        let n = shape[c.j];
        let (tiles_i, tiles_j) = ((m + mr - 1) / mr, (n + nr - 1) / nr);
        let batch_axes: Vec<usize> = (0..rank).filter(|&a| !rows.contains(&a) && a != c.j).collect();
        // Workgroups run in order (one thread takes a contiguous range). The slowest tiles keep
        // a panel of one factor in cache while the others stream the other factor past it, once
        // per slow tile. Unless the schedule says (`order`), the column tiles are slowest where
        // no batch axis reads `b` (a convolution's weights) and `a` is the smaller to stream (an
        // image rather than the weights of a wide layer), or where batch axes read `a` only.
        let bytes = |e: &Expr| {
            let mut bufs = Vec::new();
            nnc_kernel::cost::collect_loads(e, &mut bufs);
            bufs.sort();
            bufs.dedup();
            bufs.iter()
                .filter_map(|b| self.buffers.get(b.index()))
                .map(|b| b.len() * b.dtype.size_bytes() as i64)
                .sum::<i64>()
        };
        let b_batched = batch_axes.iter().any(|&x| ub[x]);
        let columns_slowest = match s.order {
            TileOrder::Auto => !b_batched && (batch_axes.iter().any(|&x| ua[x]) || bytes(&c.a) < bytes(&c.b)),
            TileOrder::RowsOuter => false,
            TileOrder::ColumnsOuter => true,
        };
        let mut grid_dims = vec![if columns_slowest { tiles_j } else { tiles_i }];
        grid_dims.extend(batch_axes.iter().map(|&a| shape[a]));
        grid_dims.push(if columns_slowest { tiles_i } else { tiles_j });
        let (grid, group) = grid_2d(grid_dims.iter().product(), u32::MAX);
        let dtype = c.reduction.body.dtype();
        let mut vars = std::mem::take(&mut self.vars);
        let mut l = ReductionLowering::new(&mut vars);
        let mut ids = self.unflatten(&mut l, group, &grid_dims, 0..grid_dims.len());
        let (mut col_tile, mut row_tile) = (ids.pop().expect("fastest tiles"), ids.remove(0));
        if columns_slowest {
            std::mem::swap(&mut col_tile, &mut row_tile);
        }
        let i0 = self.let_(&mut l, Expr::mul_index(row_tile, Expr::i64(mr)));
        let j0 = self.let_(&mut l, Expr::mul_index(col_tile, Expr::i64(nr)));
        let acc = self.buffers.len();
        self.buffers.push(Buffer {
            name: "acc".into(),
            dtype,
            shape: vec![mr, nr],
            space: Space::Private,
            access: Access::ReadWrite,
        });
        let acc = BufId(acc as u32);
        // The output index with rows and columns at `i0 + r`, `j0 + col`.
        let index_at = |r: &Expr, col: &Expr| {
            let mut axes = vec![Expr::i64(0); rank];
            for (k, &a) in batch_axes.iter().enumerate() {
                axes[a] = ids[k].clone();
            }
            let mut row = Expr::add_index(i0.clone(), r.clone());
            for &a in rows.iter().rev() {
                let d = shape[a];
                axes[a] = if a == rows[0] { row.clone() } else { Expr::rem_index(row.clone(), Expr::i64(d)) };
                row = Expr::div_index(row, Expr::i64(d));
            }
            axes[c.j] = Expr::add_index(j0.clone(), col.clone());
            axes
        };
        let (r, col) = (l.vars.index(), l.vars.index());
        let zero_row = vec![Stmt::For {
            var: col,
            extent: Expr::i64(nr),
            kind: LoopKind::Vector(v),
            body: vec![Stmt::Store {
                buf: acc,
                index: vec![Expr::Var(r), Expr::Var(col)],
                value: Expr::lit(0.0, dtype),
            }],
        }];
        l.push(Stmt::For { var: r, extent: Expr::i64(mr), kind: LoopKind::Unroll, body: zero_row });

        // Reduction loops whose variables bound a mask (a convolution's taps, checked against
        // the padding) run outside those that only index (its input channels): the masks are
        // then invariant in the innermost loop, which the backend hoists them out of.
        // Otherwise the longest loop is innermost (a convolution's input channels inside its
        // taps): the fewest loop exits per multiply-add.
        // Rows (or columns) the epilogue discards, a fused `pad`'s border, must not load: their
        // inputs lie outside the contraction's operands (before the first row, past the last).
        let guard = reduction_guard(&expr, &canonical_key(&c.reduction));
        let guards_columns =
            guard.as_ref().is_some_and(|g| g.any(&mut |x| matches!(x, Expr::Axis(a) if *a as usize == c.j)));
        let mut reduce_vars = c.reduction.vars.clone();
        reduce_vars.sort_by_key(|(v, n)| (!bounds_a_mask(&c.b, v.id) && !bounds_a_mask(&c.a, v.id), *n));
        // Interior tiles: a condition on the tile under which every mask of both factors holds
        // for all rows, columns and reduction steps (a convolution tile clear of the padding),
        // so its loads need no masks.
        let interior = {
            let (r, col) = (Var { id: u32::MAX - 1, dtype: DType::I64 }, Var { id: u32::MAX - 2, dtype: DType::I64 });
            let mut inner: HashMap<u32, i64> = c.reduction.vars.iter().map(|(v, n)| (v.id, *n)).collect();
            inner.extend([(r.id, mr), (col.id, nr)]);
            let cols = index_at(&Expr::Var(r), &Expr::Var(col));
            let mut masks = Vec::new();
            for e in [bind_axes(c.a.clone(), &cols), bind_axes(c.b.clone(), &cols)] {
                e.any(&mut |x| {
                    if let Expr::Load { mask: Some(m), .. } = x {
                        masks.push(always_holds(m, &inner));
                    }
                    false
                });
            }
            masks.into_iter().collect::<Option<Vec<Expr>>>().and_then(|m| m.into_iter().reduce(Expr::and))
        };
        // Integer contractions four steps at a time (`tile[2]`, see `int8_dot`).
        let grouped = match s.tile[2] as i64 {
            1 => None,
            int8_dot::GROUP if guard.is_none() => {
                let shape_of = |b: BufId| self.buffers[b.index()].shape.clone();
                Some(int8_dot::groups_of_four(&c, shape, &shape_of)?)
            }
            _ => return None,
        };
        // The reduction loops around one update of the tile (a rank-1 update, or the sum of a
        // group's); `guarded` checks bounds, `unmasked` drops the loads' masks (for interior
        // tiles).
        let update = |this: &mut KernelBuilder, l: &mut ReductionLowering<'_>, guarded: bool, unmasked: bool| {
            let group = grouped.map(|(k, extent)| (k, extent / int8_dot::GROUP, l.vars.index()));
            let loop_var = |var: &Var| group.filter(|g| g.0.id == var.id).map_or(*var, |g| g.2);
            for (var, _) in &reduce_vars {
                l.open(&[loop_var(var)]);
            }
            let steps: Vec<(Expr, Expr)> = match group {
                Some((k, _, g)) => (0..int8_dot::GROUP)
                    .map(|j| (int8_dot::at_step(&c.a, k, g, j), int8_dot::at_step(&c.b, k, g, j)))
                    .collect(),
                None => vec![(c.a.clone(), c.b.clone())],
            };
            let (r, col) = (l.vars.index(), l.vars.index());
            l.open(&[r]);
            let rows = index_at(&Expr::Var(r), &Expr::i64(0));
            let mut a_steps = Vec::new();
            for (a, _) in &steps {
                let mut a = bind_axes(a.clone(), &rows);
                if unmasked {
                    a = strip_masks(a);
                }
                if let Some(g) = guard.as_ref().filter(|_| !guards_columns) {
                    a = mask_loads(a, &bind_axes(g.clone(), &rows));
                }
                if guarded {
                    // A row past the edge neither loads (its loads are masked: a select is
                    // evaluated on both sides, and the row's input may lie past its buffer's
                    // end) nor counts.
                    let row = Expr::add_index(i0.clone(), Expr::Var(r));
                    let inside = lt(row, Expr::i64(m));
                    a = Expr::select(inside.clone(), mask_loads(a, &inside), Expr::lit(0.0, dtype));
                }
                let a = l.lower(a);
                // One step's `a` is broadcast from a `let`; a group's stay loads, which the code
                // generator reads as one word.
                a_steps.push(if steps.len() == 1 { this.let_(l, a) } else { a });
            }
            l.open(&[col]);
            let cols = index_at(&Expr::Var(r), &Expr::Var(col));
            let mut b_steps = Vec::new();
            for (_, b) in &steps {
                let mut b = bind_axes(b.clone(), &cols);
                if unmasked {
                    b = strip_masks(b);
                }
                if let Some(g) = guard.as_ref().filter(|_| guards_columns) {
                    b = mask_loads(b, &bind_axes(g.clone(), &cols));
                }
                if guarded {
                    // The row bound where `b` reads the row axis (a grouped or depthwise
                    // convolution's channels: a row past the edge must not load), the column
                    // bound where some column tile is partial; each is a lane-wise select.
                    let mut bounds = Vec::new();
                    if ub[c.i] {
                        bounds.push(lt(Expr::add_index(i0.clone(), Expr::Var(r)), Expr::i64(m)));
                    }
                    if n % nr != 0 {
                        bounds.push(lt(cols[c.j].clone(), Expr::i64(n)));
                    }
                    if let Some(inside) = bounds.into_iter().reduce(Expr::and) {
                        b = Expr::select(inside.clone(), mask_loads(b, &inside), Expr::lit(0.0, dtype));
                    }
                }
                b_steps.push(l.lower(b));
            }
            let tile_at = vec![Expr::Var(r), Expr::Var(col)];
            let sum =
                Expr::binary(BinaryOp::Add, Expr::load(acc, dtype, tile_at.clone()), int8_dot::dot(a_steps, b_steps));
            l.push(Stmt::Store { buf: acc, index: tile_at, value: sum });
            let body = l.close();
            // Lane-wise bounds checks keep even the edge tile's columns vector lanes.
            l.push(Stmt::For { var: col, extent: Expr::i64(nr), kind: LoopKind::Vector(v), body });
            let body = l.close();
            l.push(Stmt::For { var: r, extent: Expr::i64(mr), kind: LoopKind::Unroll, body });
            for (var, extent) in reduce_vars.iter().rev() {
                let body = l.close();
                let extent = group.filter(|g| g.0.id == var.id).map_or(*extent, |g| g.1);
                l.push(Stmt::For { var: loop_var(var), extent: Expr::i64(extent), kind: LoopKind::Serial, body });
            }
        };
        let full = Expr::and(
            Expr::binary(BinaryOp::Le, Expr::add_index(i0.clone(), Expr::i64(mr)), Expr::i64(m)),
            Expr::binary(BinaryOp::Le, Expr::add_index(j0.clone(), Expr::i64(nr)), Expr::i64(n)),
        );
        l.open_guard();
        update(self, &mut l, false, false);
        let mut fast = l.close();
        if let Some(cond) = interior {
            l.open_guard();
            update(self, &mut l, false, true);
            let clear = l.close();
            fast = vec![Stmt::If { cond, then: clear, els: fast }];
        }
        l.open_guard();
        update(self, &mut l, true, false);
        let edge = l.close();
        l.push(Stmt::If { cond: full.clone(), then: fast, els: edge });
        let full_tile = full;

        // The epilogue, with the reduction replaced by the tile's accumulator: a full tile
        // stores rows of vectors where the columns are the output's last axis; a partial one
        // checks each element.
        let key = canonical_key(&c.reduction);
        let store_tile = |this: &mut KernelBuilder, l: &mut ReductionLowering<'_>, guarded: bool| {
            let (r, col) = (l.vars.index(), l.vars.index());
            l.open(&[r]);
            l.open(&[col]);
            let axes = index_at(&Expr::Var(r), &Expr::Var(col));
            let value = Expr::load(acc, dtype, vec![Expr::Var(r), Expr::Var(col)]);
            let epilogue = expr.clone().rewrite(&mut |e| match e {
                Expr::Reduce(x) if canonical_key(&x) == key => value.clone(),
                e => e,
            });
            // Columns strided in the output store one element at a time; an epilogue with
            // transcendentals (SiLU's sigmoid) or a quantization's round trip is then computed
            // first in place, as vectors over the accumulator's contiguous row, and copied out
            // after.
            let strided = !guarded && c.j != rank - 1;
            let in_place = strided && epilogue.dtype() == dtype && costly_per_element(&epilogue);
            let epilogue = if in_place {
                let value = l.lower(bind_axes(epilogue, &axes));
                l.push(Stmt::Store { buf: acc, index: vec![Expr::Var(r), Expr::Var(col)], value });
                let body = l.close();
                l.push(Stmt::For { var: col, extent: Expr::i64(nr), kind: LoopKind::Vector(v), body });
                l.open(&[col]);
                Expr::load(acc, dtype, vec![Expr::Var(r), Expr::Var(col)])
            } else {
                epilogue
            };
            l.open_guard();
            this.store_all(l, epilogue, out, &axes);
            let then = l.close();
            if guarded {
                let row = Expr::add_index(i0.clone(), Expr::Var(r));
                let inside = Expr::and(lt(row, Expr::i64(m)), lt(axes[c.j].clone(), Expr::i64(n)));
                l.push(Stmt::If { cond: inside, then, els: vec![] });
            } else {
                then.into_iter().for_each(|st| l.push(st));
            }
            let body = l.close();
            // An edge tile of an integer contraction stores element by element with constant
            // indices: LLVM then keeps the whole tile in registers (a loop over its columns
            // made it version the tile's loops with alias checks on the accumulators, which
            // stayed in memory).
            let kind = match () {
                _ if !guarded && c.j == rank - 1 => LoopKind::Vector(v),
                _ if guarded && dtype == DType::I32 => LoopKind::Unroll,
                _ => LoopKind::Serial,
            };
            l.push(Stmt::For { var: col, extent: Expr::i64(nr), kind, body });
            let body = l.close();
            l.push(Stmt::For { var: r, extent: Expr::i64(mr), kind: LoopKind::Unroll, body });
        };
        l.open_guard();
        store_tile(self, &mut l, false);
        let then = l.close();
        l.open_guard();
        store_tile(self, &mut l, true);
        let els = l.close();
        l.push(Stmt::If { cond: full_tile, then, els });
        let body = l.finish();
        self.vars = vars;
        Some((body, Launch { grid, workgroup: [1, 1, 1] }))
    }

    /// Output tiles of `tile[0] x tile[1]` per workgroup, one element per invocation; operand
    /// tiles of depth `tile[2]` are staged through workgroup memory.
    fn gpu_tiled_matmul(
        &mut self,
        expr: Expr,
        out: BufId,
        shape: &[i64],
        s: &Schedule,
        device: &Device,
    ) -> Option<(Vec<Stmt>, Launch)> {
        let rank = shape.len();
        let (r, swapped) = matmul_parts(&expr, rank)?;
        let r = r.clone();
        let [tm, tn, tk] = s.tile.map(|t| t as i64);
        if tm * tn != s.workgroup_size as i64 || tk != tn || tk != tm {
            return None;
        }
        let Expr::Binary(_, a, b) = r.body.clone() else { return None };
        let (a, b) = if swapped { (*b, *a) } else { (*a, *b) };
        let (m, n) = (shape[rank - 2], shape[rank - 1]);
        let k_extent = r.vars[0].1;
        let k = r.vars[0].0;
        let batch: i64 = shape[..rank - 2].iter().product();
        if batch > device.max_grid as i64 {
            return None;
        }
        let dtype = r.body.dtype();
        let mut vars = std::mem::take(&mut self.vars);
        let mut l = ReductionLowering::new(&mut vars);
        let j = self.let_(&mut l, Expr::add_index(Expr::mul_index(gid(0), Expr::i64(tn)), tid(0)));
        let i = self.let_(&mut l, Expr::add_index(Expr::mul_index(gid(1), Expr::i64(tm)), tid(1)));
        let mut axes = self.unflatten(&mut l, gid(2), shape, 0..rank - 2);
        axes.push(i.clone());
        axes.push(j.clone());
        let a_tile = self.shared("a_tile", dtype, vec![tm, tk]);
        let b_tile = self.shared("b_tile", dtype, vec![tk, tn]);
        let acc = l.vars.fresh(dtype);
        l.push(Stmt::Local { var: acc, init: Expr::lit(0.0, dtype) });
        let at = |e: Expr, kv: Expr, axes: &[Expr]| {
            bind_axes(e, axes).rewrite(&mut |x| match x {
                Expr::Var(v) if v == k => kv.clone(),
                x => x,
            })
        };
        let t = l.vars.index();
        l.open(&[t]);
        let ka = self.let_(&mut l, Expr::add_index(Expr::mul_index(Expr::Var(t), Expr::i64(tk)), tid(0)));
        let a_ok = Expr::and(lt(i.clone(), Expr::i64(m)), lt(ka.clone(), Expr::i64(k_extent)));
        let a_val = l.lower(Expr::select(a_ok, at(a, ka, &axes), Expr::lit(0.0, dtype)));
        l.push(Stmt::Store { buf: a_tile, index: vec![tid(1), tid(0)], value: a_val });
        let kb = self.let_(&mut l, Expr::add_index(Expr::mul_index(Expr::Var(t), Expr::i64(tk)), tid(1)));
        let b_ok = Expr::and(lt(kb.clone(), Expr::i64(k_extent)), lt(j.clone(), Expr::i64(n)));
        let b_val = l.lower(Expr::select(b_ok, at(b, kb, &axes), Expr::lit(0.0, dtype)));
        l.push(Stmt::Store { buf: b_tile, index: vec![tid(1), tid(0)], value: b_val });
        l.push(Stmt::Barrier);
        let kk = l.vars.index();
        let product = Expr::binary(
            BinaryOp::Mul,
            Expr::load(a_tile, dtype, vec![tid(1), Expr::Var(kk)]),
            Expr::load(b_tile, dtype, vec![Expr::Var(kk), tid(0)]),
        );
        let step = vec![Stmt::Assign { var: acc, value: Expr::binary(BinaryOp::Add, Expr::Var(acc), product) }];
        let kind = if s.unroll > 1 { LoopKind::Unroll } else { LoopKind::Serial };
        l.push(Stmt::For { var: kk, extent: Expr::i64(tk), kind, body: step });
        l.push(Stmt::Barrier);
        let body = l.close();
        l.push(Stmt::For { var: t, extent: Expr::i64((k_extent + tk - 1) / tk), kind: LoopKind::Serial, body });
        // The epilogue, with the reduction replaced by the accumulator.
        let key = canonical_key(&r);
        let epilogue = expr.rewrite(&mut |e| match e {
            Expr::Reduce(x) if canonical_key(&x) == key => Expr::Var(acc),
            e => e,
        });
        l.open_guard();
        self.store_all(&mut l, epilogue, out, &axes);
        let then = l.close();
        l.push(Stmt::If { cond: Expr::and(lt(i, Expr::i64(m)), lt(j, Expr::i64(n))), then, els: vec![] });
        let body = l.finish();
        self.vars = vars;
        let groups_x = ((n + tn - 1) / tn) as u32;
        let groups_y = ((m + tm - 1) / tm) as u32;
        Some((body, Launch { grid: [groups_x, groups_y, batch as u32], workgroup: [tn as u32, tm as u32, 1] }))
    }
}

/// `expr` with output axis `a` replaced by `axes[a]`.
fn bind_axes(expr: Expr, axes: &[Expr]) -> Expr {
    expr.rewrite(&mut |e| match e {
        Expr::Axis(a) => axes.get(a as usize).cloned().unwrap_or(Expr::i64(0)),
        e => e,
    })
}

/// `expr` with output axis `which[k]` replaced by `values[k]`; other axes stay.
fn bind_some_axes(expr: Expr, which: &[usize], values: &[Expr]) -> Expr {
    expr.rewrite(&mut |e| match e {
        Expr::Axis(a) => match which.iter().position(|&w| w == a as usize) {
            Some(k) => values[k].clone(),
            None => Expr::Axis(a),
        },
        e => e,
    })
}

/// The full index of a `rank`-axis output from two disjoint sets of axes and their values.
fn merge_axes(
    rank: usize,
    (a_axes, a_values): (&[usize], &[Expr]),
    (b_axes, b_values): (&[usize], &[Expr]),
) -> Vec<Expr> {
    let mut out = vec![Expr::i64(0); rank];
    for (&axis, v) in a_axes.iter().zip(a_values).chain(b_axes.iter().zip(b_values)) {
        out[axis] = v.clone();
    }
    out
}

/// The innermost reduction of `expr` that depends on no inner axis (not `shared`) and on
/// no variable of an enclosing reduction, and contains no other such reduction.
fn next_row_reduction(expr: &Expr, shared: &[bool]) -> Option<Reduction> {
    fn go(e: &Expr, shared: &[bool], enclosing: &mut Vec<Var>, found: &mut Option<Reduction>) {
        if found.is_some() {
            return;
        }
        if let Expr::Reduce(r) = e {
            let n = enclosing.len();
            enclosing.extend(r.vars.iter().map(|(v, _)| *v));
            go(&r.body, shared, enclosing, found);
            enclosing.truncate(n);
            if found.is_none() {
                let inner_axis = r
                    .body
                    .any(&mut |x| matches!(x, Expr::Axis(a) if !shared.get(*a as usize).copied().unwrap_or(false)));
                let own: Vec<Var> = r.vars.iter().map(|(v, _)| *v).collect();
                let free = free_vars(&r.body);
                let nested = free.iter().any(|v| !own.contains(v) && enclosing.contains(v));
                if !inner_axis && !nested {
                    *found = Some((**r).clone());
                }
            }
            return;
        }
        e.for_each_child(|c| go(c, shared, enclosing, found));
    }
    let mut found = None;
    go(expr, shared, &mut Vec::new(), &mut found);
    found
}

/// Fusion options priced for `device`: its balance of arithmetic to memory traffic, and the
/// rules its templates need.
pub fn fuse_options(device: &Device) -> crate::fuse::FuseOptions {
    crate::fuse::FuseOptions {
        fuse: true,
        ops_per_byte: device.ops_per_byte,
        nested_reductions: device.kind == DeviceKind::Gpu,
        unmasked_contractions: device.kind == DeviceKind::Cpu,
        max_buffers: device.max_buffers,
        // At most two simple operations (a view, a zero pad's select, a relu6 clip, a bias and
        // relu): about what the load they replace costs.
        reread_cost_limit: (device.kind == DeviceKind::Cpu).then_some(2),
    }
}

//! The memory plan of a program: one arena for the intermediates, with offsets chosen from
//! liveness so buffers whose lifetimes do not overlap share memory. Every runtime (CPU, wgpu,
//! CUDA) allocates the arena once and binds buffers at these offsets.

use crate::program::{BufferKind, Fused};

/// Offsets are multiples of this many bytes (a cache line, and enough for any vector load).
pub const ALIGN: u64 = 64;

/// Where each intermediate lives in the arena.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryPlan {
    /// Per program buffer: its byte offset in the arena, for intermediates only.
    pub offsets: Vec<Option<u64>>,
    /// The arena's size in bytes.
    pub arena_bytes: u64,
    /// The largest total size of intermediates live at one time: no plan can use less.
    pub lower_bound: u64,
}

/// The group index that first writes and last reads each intermediate (outputs live to the end).
fn lifetimes(fused: &Fused) -> Vec<Option<(usize, usize)>> {
    let mut life: Vec<Option<(usize, usize)>> = vec![None; fused.buffers.len()];
    for (g, group) in fused.groups.iter().enumerate() {
        for b in group.writes.iter().chain(&group.reads) {
            let entry = life[b.index()].get_or_insert((g, g));
            entry.0 = entry.0.min(g);
            entry.1 = entry.1.max(g);
        }
    }
    let end = fused.groups.len();
    for b in &fused.outputs {
        if let Some(l) = &mut life[b.index()] {
            l.1 = end;
        }
    }
    for (i, b) in fused.buffers.iter().enumerate() {
        if !matches!(b.kind, BufferKind::Intermediate) {
            life[i] = None;
        }
    }
    life
}

fn aligned(bytes: u64) -> u64 {
    bytes.div_ceil(ALIGN) * ALIGN
}

/// Places buffers in `order`, each at the lowest offset free of the live ones placed before
/// it; returns the offsets and the arena size.
fn place(
    count: usize,
    order: &[usize],
    life: &[Option<(usize, usize)>],
    size: &impl Fn(usize) -> u64,
) -> (Vec<Option<u64>>, u64) {
    let mut offsets: Vec<Option<u64>> = vec![None; count];
    let mut placed: Vec<(u64, u64, (usize, usize))> = Vec::new();
    let mut arena_bytes = 0;
    for &i in order {
        let Some((lo, hi)) = life[i] else { continue };
        let bytes = size(i);
        let mut clashes: Vec<(u64, u64)> = placed
            .iter()
            .filter(|(_, _, (a, b))| *a <= hi && lo <= *b)
            .map(|&(off, len, _)| (off, off.saturating_add(len)))
            .collect();
        clashes.sort();
        let mut offset: u64 = 0;
        for (start, end) in clashes {
            if offset.saturating_add(bytes) <= start {
                break;
            }
            offset = offset.max(end);
        }
        offsets[i] = Some(offset);
        placed.push((offset, bytes, (lo, hi)));
        // Saturating: every buffer is at most 2^48 bytes, but a program may have very many; an
        // arena of u64::MAX bytes then fails to allocate with a clear error.
        arena_bytes = arena_bytes.max(offset.saturating_add(bytes));
    }
    (offsets, arena_bytes)
}

impl MemoryPlan {
    /// Plans the arena: buffers are placed in some order, each at the lowest aligned offset
    /// where it overlaps no buffer already placed whose lifetime overlaps its own. Three orders
    /// are tried (largest first, longest-lived first, first written first) and the smallest
    /// arena is kept: no one greedy order is best for every program.
    pub fn of(fused: &Fused) -> MemoryPlan {
        let life = lifetimes(fused);
        let size = |i: usize| aligned(fused.buffers[i].bytes().max(1) as u64);
        let live: Vec<usize> = (0..fused.buffers.len()).filter(|&i| life[i].is_some()).collect();
        let span = |i: usize| life[i].map_or(0, |(lo, hi)| hi - lo);
        let start = |i: usize| life[i].map_or(0, |(lo, _)| lo);
        let mut best: Option<(Vec<Option<u64>>, u64)> = None;
        // Ties by index, so the plan is deterministic.
        for key in 0..3 {
            let mut order = live.clone();
            match key {
                0 => order.sort_by_key(|&i| (std::cmp::Reverse(size(i)), start(i), i)),
                1 => order.sort_by_key(|&i| (std::cmp::Reverse(span(i)), std::cmp::Reverse(size(i)), i)),
                _ => order.sort_by_key(|&i| (start(i), std::cmp::Reverse(size(i)), i)),
            }
            let (offsets, bytes) = place(fused.buffers.len(), &order, &life, &size);
            if best.as_ref().is_none_or(|(_, b)| bytes < *b) {
                best = Some((offsets, bytes));
            }
        }
        let (offsets, arena_bytes) = best.unwrap_or((vec![None; fused.buffers.len()], 0));
        let steps = fused.groups.len() + 1;
        let lower_bound = (0..steps)
            .map(|t| {
                (0..fused.buffers.len())
                    .filter(|&i| life[i].is_some_and(|(lo, hi)| lo <= t && t <= hi))
                    .map(size)
                    .fold(0u64, u64::saturating_add)
            })
            .max()
            .unwrap_or(0);
        MemoryPlan { offsets, arena_bytes, lower_bound }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chain of materialized values: each lives from its producer to its consumer, so the
    /// arena needs two live buffers at a time, not one per value.
    #[test]
    fn a_chain_reuses_memory() {
        let fused = crate::program::testing::chain(6, 256);
        let plan = MemoryPlan::of(&fused);
        let one = aligned(256 * 4);
        assert_eq!(plan.lower_bound, 2 * one);
        assert_eq!(plan.arena_bytes, 2 * one, "{plan:?}");
        // No two buffers alive together overlap.
        let life = lifetimes(&fused);
        for i in 0..fused.buffers.len() {
            for j in i + 1..fused.buffers.len() {
                let (Some(a), Some(b)) = (life[i], life[j]) else { continue };
                if a.0 <= b.1 && b.0 <= a.1 {
                    let (oa, ob) = (plan.offsets[i].unwrap(), plan.offsets[j].unwrap());
                    assert!(oa + one <= ob || ob + one <= oa, "buffers {i} and {j} overlap");
                }
            }
        }
    }
}

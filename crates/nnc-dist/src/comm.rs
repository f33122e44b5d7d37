//! The [`Communicator`] trait every collective engine implements, the one-rank engine, and the
//! byte layouts that turn `all_gather` and `reduce_scatter` along any axis into the engines'
//! contiguous, rank-major blocks.

use crate::DistError;
use nnc_ir::{Collective, TensorData, TensorType};

/// An engine that runs collectives between the ranks of one world. Every rank calls the same
/// collectives in the same order with operands of the same type (SPMD); each call returns this
/// rank's result.
pub trait Communicator {
    /// This process's rank, `0..world()`.
    fn rank(&self) -> usize;
    /// How many ranks the world has.
    fn world(&self) -> usize;
    /// The engine's name for messages (`single`, `mpi`, `nccl`).
    fn engine(&self) -> &'static str;
    /// Runs `c` on this rank's operand `x` and returns this rank's result. Call
    /// [`check_collective`] first: engines may assume what it checks.
    fn run(&mut self, c: &Collective, x: &TensorData) -> Result<TensorData, DistError>;
    /// Waits until every rank has reached this call.
    fn barrier(&mut self) -> Result<(), DistError>;
    /// This rank's copy of rank `root`'s bytes (for checks that compare ranks, such as
    /// parameters being identical everywhere).
    fn broadcast_bytes(&mut self, root: usize, bytes: &[u8]) -> Result<Vec<u8>, DistError>;
}

/// Checks that `c` spans `comm`'s world and fits operand `x`; returns the result's shape.
pub fn check_collective(comm: &dyn Communicator, c: &Collective, x: &TensorData) -> Result<Vec<usize>, DistError> {
    let fail = |message: String| DistError::Engine { engine: comm.engine(), rank: comm.rank(), message };
    if c.world() != comm.world() {
        return Err(fail(format!("`{}` spans {} ranks but this world has {}", c.name(), c.world(), comm.world())));
    }
    let ty = TensorType::new(x.dtype(), x.shape().iter().copied());
    let out = c.infer(&ty).map_err(|e| fail(format!("`{}` on {ty}: {e}", c.name())))?;
    out.static_shape().ok_or_else(|| fail(format!("`{}` on {ty} gives the symbolic {out}", c.name())))
}

/// The engine of a world of one rank: every collective is the identity, and nothing needs an
/// MPI library or a GPU.
#[derive(Clone, Copy, Debug, Default)]
pub struct SingleRank;

impl Communicator for SingleRank {
    fn rank(&self) -> usize {
        0
    }

    fn world(&self) -> usize {
        1
    }

    fn engine(&self) -> &'static str {
        "single"
    }

    fn run(&mut self, c: &Collective, x: &TensorData) -> Result<TensorData, DistError> {
        check_collective(self, c, x)?;
        Ok(x.clone())
    }

    fn barrier(&mut self) -> Result<(), DistError> {
        Ok(())
    }

    fn broadcast_bytes(&mut self, _root: usize, bytes: &[u8]) -> Result<Vec<u8>, DistError> {
        Ok(bytes.to_vec())
    }
}

/// How a tensor splits around `axis` into `[outer][axis][inner]` bytes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AxisBlocks {
    /// The product of the dimensions before the axis.
    pub outer: usize,
    /// The bytes of one index of the axis and everything after it.
    pub row_bytes: usize,
}

impl AxisBlocks {
    pub fn new(shape: &[usize], axis: usize, elem_bytes: usize) -> AxisBlocks {
        let outer = shape[..axis].iter().product();
        let row_bytes = shape[axis..].iter().product::<usize>() * elem_bytes;
        AxisBlocks { outer, row_bytes }
    }
}

/// `parts` blocks of `[outer][row_bytes]` each, stored part-major (`[part][outer][row]`), as
/// an engine gathers them, reordered to `[outer][part][row]`: the concatenation along the axis.
pub(crate) fn part_major_to_axis(bytes: &[u8], parts: usize, b: AxisBlocks) -> Vec<u8> {
    let mut out = vec![0u8; bytes.len()];
    for p in 0..parts {
        for o in 0..b.outer {
            let from = (p * b.outer + o) * b.row_bytes;
            let to = (o * parts + p) * b.row_bytes;
            out[to..to + b.row_bytes].copy_from_slice(&bytes[from..from + b.row_bytes]);
        }
    }
    out
}

/// The inverse of [`part_major_to_axis`]: a tensor whose axis holds `parts` equal parts,
/// reordered so that each part's `[outer][row]` block is contiguous (as an engine scatters them).
pub(crate) fn axis_to_part_major(bytes: &[u8], parts: usize, b: AxisBlocks) -> Vec<u8> {
    let mut out = vec![0u8; bytes.len()];
    for p in 0..parts {
        for o in 0..b.outer {
            let from = (o * parts + p) * b.row_bytes;
            let to = (p * b.outer + o) * b.row_bytes;
            out[to..to + b.row_bytes].copy_from_slice(&bytes[from..from + b.row_bytes]);
        }
    }
    out
}

/// `x` reordered for an engine's `reduce_scatter` along `axis` into `world` parts (each part's
/// rows contiguous, in rank order); `out` is one part's shape. Its dtype and shape stay `x`'s.
pub(crate) fn scatter_operand(x: &TensorData, out: &[usize], axis: usize, world: usize) -> Result<TensorData, String> {
    let blocks = AxisBlocks::new(out, axis, x.dtype().size_bytes());
    let bytes = axis_to_part_major(x.bytes(), world, blocks);
    TensorData::from_bytes(x.dtype(), x.shape().to_vec(), bytes::Bytes::from(bytes)).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_layouts_invert_each_other() {
        // Two parts of a [2, 3] tensor of one-byte elements, gathered along axis 1.
        let gathered = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
        let blocks = AxisBlocks::new(&[2, 3], 1, 1);
        let along_axis = part_major_to_axis(&gathered, 2, blocks);
        assert_eq!(along_axis, [1, 2, 3, 7, 8, 9, 4, 5, 6, 10, 11, 12]);
        assert_eq!(axis_to_part_major(&along_axis, 2, blocks), gathered);
    }

    #[test]
    fn one_rank_is_the_identity_and_checks_the_world() {
        let x = TensorData::from_vec(vec![2], &[1.0f32, 2.0]);
        let sum = Collective::AllReduce { op: nnc_ir::CollectiveReduce::Sum, world: 1 };
        assert_eq!(SingleRank.run(&sum, &x).unwrap(), x);
        let two = Collective::AllGather { axis: 0, world: 2 };
        let err = SingleRank.run(&two, &x).unwrap_err().to_string();
        assert!(err.contains("spans 2 ranks but this world has 1"), "{err}");
    }
}

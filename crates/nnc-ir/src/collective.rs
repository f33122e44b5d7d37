//! Collective communication as graph ops: `all_reduce`, `all_gather`, `reduce_scatter` and
//! `broadcast` over a world of `world` ranks.
//!
//! A graph that holds collectives is a program every rank runs (SPMD): each rank feeds its own
//! inputs, and a collective combines the operand of every rank. With rank `r`'s operand `x_r`:
//!
//! - `all_reduce {op, world}`: every rank gets `op` over the ranks, elementwise (`sum`, `mean`,
//!   `max`, `min`); the operand's type.
//! - `all_gather {axis, world}`: every rank gets `concat(x_0, .., x_{world-1}, axis)`.
//! - `reduce_scatter {op, axis, world}`: rank `r` gets the `r`-th of `world` equal parts, along
//!   `axis`, of `all_reduce {op}`; the axis must divide by `world`.
//! - `broadcast {root, world}`: every rank gets `x_root`.
//!
//! With `world = 1` every collective is the identity. The reference semantics is
//! `nnc_interp::run_ranks`, which runs all ranks in one process; engines (MPI, NCCL) are
//! `nnc-dist`'s.

use crate::{DType, Dim, TensorType};
use std::fmt;

/// How `all_reduce` and `reduce_scatter` combine the ranks' elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CollectiveReduce {
    Sum,
    Mean,
    Max,
    Min,
}

impl CollectiveReduce {
    pub const ALL: [CollectiveReduce; 4] =
        [CollectiveReduce::Sum, CollectiveReduce::Mean, CollectiveReduce::Max, CollectiveReduce::Min];

    /// The name in the text form.
    pub fn name(self) -> &'static str {
        match self {
            CollectiveReduce::Sum => "sum",
            CollectiveReduce::Mean => "mean",
            CollectiveReduce::Max => "max",
            CollectiveReduce::Min => "min",
        }
    }

    pub fn from_name(s: &str) -> Option<CollectiveReduce> {
        Self::ALL.into_iter().find(|v| v.name() == s)
    }
}

/// A collective operation over `world` ranks (see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Collective {
    AllReduce { op: CollectiveReduce, world: usize },
    AllGather { axis: usize, world: usize },
    ReduceScatter { op: CollectiveReduce, axis: usize, world: usize },
    Broadcast { root: usize, world: usize },
}

impl Collective {
    /// The op's name in the text form.
    pub fn name(&self) -> &'static str {
        match self {
            Collective::AllReduce { .. } => "all_reduce",
            Collective::AllGather { .. } => "all_gather",
            Collective::ReduceScatter { .. } => "reduce_scatter",
            Collective::Broadcast { .. } => "broadcast",
        }
    }

    /// Whether `name` is the text name of a collective.
    pub fn is_name(name: &str) -> bool {
        matches!(name, "all_reduce" | "all_gather" | "reduce_scatter" | "broadcast")
    }

    /// How many ranks the collective spans.
    pub fn world(&self) -> usize {
        match *self {
            Collective::AllReduce { world, .. }
            | Collective::AllGather { world, .. }
            | Collective::ReduceScatter { world, .. }
            | Collective::Broadcast { world, .. } => world,
        }
    }

    /// The result type for operand `x`, or why the operand does not fit.
    pub fn infer(&self, x: &TensorType) -> Result<TensorType, String> {
        let world = self.world();
        if world == 0 {
            return Err("a world of 0 ranks".into());
        }
        let reducible = |op: CollectiveReduce| match (op, x.dtype) {
            (_, DType::Bool) => Err(format!("cannot reduce {} values", x.dtype)),
            (CollectiveReduce::Mean, dt) if !dt.is_float() => Err(format!("`mean` needs floats, found {dt}")),
            _ => Ok(()),
        };
        let axis_in_range = |axis: usize| {
            if axis < x.rank() {
                Ok(())
            } else {
                Err(format!("axis {axis} is out of range for {x}"))
            }
        };
        match *self {
            Collective::AllReduce { op, .. } => {
                reducible(op)?;
                Ok(x.clone())
            }
            Collective::AllGather { axis, world } => {
                axis_in_range(axis)?;
                let mut shape = x.shape.clone();
                shape[axis] = shape[axis]
                    .checked_mul(&Dim::from(world))
                    .ok_or_else(|| format!("axis {axis} of {x} times {world} ranks overflows"))?;
                Ok(TensorType { dtype: x.dtype, shape })
            }
            Collective::ReduceScatter { op, axis, world } => {
                reducible(op)?;
                axis_in_range(axis)?;
                let mut shape = x.shape.clone();
                shape[axis] = shape[axis].div_exact(world as i64).ok_or_else(|| {
                    format!("axis {axis} of {x} does not split into {world} equal parts, one per rank")
                })?;
                Ok(TensorType { dtype: x.dtype, shape })
            }
            Collective::Broadcast { root, world } => {
                if root >= world {
                    return Err(format!("root rank {root} is not in a world of {world} ranks"));
                }
                Ok(x.clone())
            }
        }
    }
}

impl fmt::Display for CollectiveReduce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_rules() {
        let x = TensorType::new(DType::F32, [Dim::sym("n"), Dim::from(6)]);
        let gather = Collective::AllGather { axis: 0, world: 3 };
        assert_eq!(gather.infer(&x).unwrap().to_string(), "f32[3*n, 6]");
        let scatter = Collective::ReduceScatter { op: CollectiveReduce::Sum, axis: 1, world: 3 };
        assert_eq!(scatter.infer(&x).unwrap().to_string(), "f32[n, 2]");
        let uneven = Collective::ReduceScatter { op: CollectiveReduce::Sum, axis: 1, world: 4 };
        assert!(uneven.infer(&x).unwrap_err().contains("does not split into 4 equal parts"));
        let ints = TensorType::new(DType::I32, [4usize]);
        let mean = Collective::AllReduce { op: CollectiveReduce::Mean, world: 2 };
        assert!(mean.infer(&ints).unwrap_err().contains("`mean` needs floats"));
        let root = Collective::Broadcast { root: 2, world: 2 };
        assert!(root.infer(&ints).unwrap_err().contains("root rank 2"));
    }
}

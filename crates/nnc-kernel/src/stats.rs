//! What a fused program costs: kernels, bytes moved through device memory and arithmetic, per
//! kernel and in total — the figures `nnc compile --stats` prints, countable without a device.
//!
//! Bytes are counted as an ideal cache would: every element of global memory a kernel touches
//! moves once per kernel (read or written; a kernel reading a slice of a buffer moves the slice),
//! workgroup memory and registers are free. FLOPs are the expression's floating-point
//! arithmetic (index arithmetic excluded), with each reduction counted as often as the
//! scheduler runs it.

use crate::cost::{elements_read, flops_per_element};
use crate::kernel::Compute;
use crate::program::{BufferKind, Fused};
use std::fmt::Write;

/// The cost of one kernel.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelStats {
    pub name: String,
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// Of the bytes read, those of weights (constants).
    pub weight_bytes: u64,
    pub flops: f64,
}

impl KernelStats {
    pub fn bytes(&self) -> u64 {
        self.bytes_read + self.bytes_written
    }
}

/// The cost of a whole program.
#[derive(Clone, Debug, PartialEq)]
pub struct ProgramStats {
    pub kernels: Vec<KernelStats>,
}

impl ProgramStats {
    pub fn of(fused: &Fused) -> ProgramStats {
        let kernels = fused
            .groups
            .iter()
            .map(|g| {
                let size = |b: &crate::expr::BufId| fused.buffers[b.index()].bytes().max(0) as u64;
                let out = &fused.buffers[g.writes[0].index()];
                // A map reads at most what its loads can address (a slice of a weight, not all
                // of it); a program is taken to read its operands whole.
                let reads: Vec<(crate::expr::BufId, u64)> = match &g.compute {
                    Compute::Map(e) => {
                        let counts = elements_read(e, &out.shape);
                        g.reads
                            .iter()
                            .map(|b| {
                                let elements = counts.get(b).copied().unwrap_or(0.0);
                                let bytes = elements * fused.buffers[b.index()].dtype.size_bytes() as f64;
                                (*b, (bytes as u64).min(size(b)))
                            })
                            .collect()
                    }
                    Compute::Program(_) => g.reads.iter().map(|b| (*b, size(b))).collect(),
                };
                let flops = match &g.compute {
                    Compute::Map(e) => flops_per_element(e, &out.shape) * out.numel() as f64,
                    // A program's work is not modelled; count one FLOP per element written.
                    Compute::Program(_) => g.writes.iter().map(|b| fused.buffers[b.index()].numel() as f64).sum(),
                };
                let weight_bytes = reads
                    .iter()
                    .filter(|(b, _)| matches!(fused.buffers[b.index()].kind, BufferKind::Constant(_)))
                    .map(|(_, n)| n)
                    .sum();
                KernelStats {
                    name: g.name.clone(),
                    bytes_read: reads.iter().map(|(_, n)| n).sum(),
                    bytes_written: g.writes.iter().map(size).sum(),
                    weight_bytes,
                    flops,
                }
            })
            .collect();
        ProgramStats { kernels }
    }

    pub fn bytes(&self) -> u64 {
        self.kernels.iter().map(|k| k.bytes()).sum()
    }

    /// Bytes moved other than reading weights: the traffic fusion can remove.
    pub fn activation_bytes(&self) -> u64 {
        self.kernels.iter().map(|k| k.bytes() - k.weight_bytes).sum()
    }

    pub fn flops(&self) -> f64 {
        self.kernels.iter().map(|k| k.flops).sum()
    }

    /// One line per kernel (with the strategy each was scheduled with), then the total.
    pub fn table_with(&self, strategies: &[&str]) -> String {
        let mut s = String::new();
        let _ =
            writeln!(s, "{:<36} {:<13} {:>12} {:>12} {:>14}", "kernel", "schedule", "bytes read", "written", "flops");
        for (i, k) in self.kernels.iter().enumerate() {
            let strategy = strategies.get(i).copied().unwrap_or("");
            let _ = writeln!(
                s,
                "{:<36} {:<13} {:>12} {:>12} {:>14.0}",
                k.name, strategy, k.bytes_read, k.bytes_written, k.flops
            );
        }
        let _ = writeln!(
            s,
            "{:<50} {:>12} {:>12} {:>14.0}",
            format!("total ({} kernels)", self.kernels.len()),
            self.kernels.iter().map(|k| k.bytes_read).sum::<u64>(),
            self.kernels.iter().map(|k| k.bytes_written).sum::<u64>(),
            self.flops()
        );
        s
    }
}

/// The baseline fusion is measured against: one kernel per graph node (constants excluded),
/// each reading its operands and writing its results.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeBaseline {
    pub kernels: usize,
    pub bytes: u64,
    pub weight_bytes: u64,
}

impl NodeBaseline {
    /// Needs static shapes; a value with a symbolic shape counts as empty.
    pub fn of(graph: &nnc_ir::Graph) -> NodeBaseline {
        let producers = graph.producers();
        let is_constant = |v: &nnc_ir::ValueId| {
            producers[v.index()].is_some_and(|p| matches!(graph.nodes[p].op, nnc_ir::Op::Constant(_)))
        };
        let bytes_of = |v: &nnc_ir::ValueId| {
            let ty = graph.ty(*v);
            ty.static_shape().map(|s| s.iter().product::<usize>() * ty.dtype.size_bytes()).unwrap_or(0) as u64
        };
        let mut base = NodeBaseline { kernels: 0, bytes: 0, weight_bytes: 0 };
        for node in graph.nodes.iter().filter(|n| !matches!(n.op, nnc_ir::Op::Constant(_))) {
            base.kernels += 1;
            base.bytes += node.inputs.iter().chain(&node.outputs).map(bytes_of).sum::<u64>();
            base.weight_bytes += node.inputs.iter().filter(|v| is_constant(v)).map(bytes_of).sum::<u64>();
        }
        base
    }
}

//! The cost model: bytes moved through memory plus floating-point work, weighted per target.
//!
//! Each node reads its operands and writes its results once (`reshape` is a view and moves
//! nothing; constants and inputs are already in memory and cost nothing until read). Work is
//! counted per element: one operation for simple arithmetic, `CostModel::transcendental` for
//! `exp`, `erf` and the like, `2·m·n·k` for a matmul, the window size per output for a conv or
//! pool. Composites are costed as one fused kernel: their operands and results move once, and
//! their work is that of their expansion. Symbolic dimensions count as `symbol_size`.

use nnc_ir::{BinaryOp, Dim, Graph, Op, ReduceKind, RnnCell, TensorType, UnaryOp};

/// Weights of the cost terms, per target. The defaults describe a CPU where moving a byte costs
/// about as much as four simple floating-point operations.
#[derive(Clone, Debug, PartialEq)]
pub struct CostModel {
    /// Cost of moving one byte to or from memory.
    pub byte: f64,
    /// Cost of one simple arithmetic operation.
    pub flop: f64,
    /// Operations charged for one transcendental function (`exp`, `log`, `erf`, `tanh`, ...).
    pub transcendental: f64,
    /// Operations charged for one division, square root or reciprocal.
    pub division: f64,
    /// The size assumed for a symbolic dimension.
    pub symbol_size: i64,
}

impl Default for CostModel {
    fn default() -> Self {
        CostModel { byte: 1.0, flop: 0.25, transcendental: 8.0, division: 4.0, symbol_size: 64 }
    }
}

/// Bytes moved and operations done.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Cost {
    pub bytes: f64,
    pub flops: f64,
}

impl Cost {
    /// The weighted total the extraction minimises.
    pub fn total(&self, model: &CostModel) -> f64 {
        self.bytes * model.byte + self.flops * model.flop
    }
}

impl std::ops::Add for Cost {
    type Output = Cost;
    fn add(self, o: Cost) -> Cost {
        Cost { bytes: self.bytes + o.bytes, flops: self.flops + o.flops }
    }
}

impl CostModel {
    fn dim(&self, d: &Dim) -> f64 {
        let s = self.symbol_size;
        d.eval(&|_| Some(s)).map(|v| v.max(0) as f64).unwrap_or(s as f64)
    }

    /// Elements of a tensor type.
    pub fn elements(&self, ty: &TensorType) -> f64 {
        ty.shape.iter().map(|d| self.dim(d)).product()
    }

    /// Bytes of a tensor type.
    pub fn bytes(&self, ty: &TensorType) -> f64 {
        self.elements(ty) * ty.dtype.size_bytes() as f64
    }

    fn unary_ops(&self, u: UnaryOp) -> f64 {
        use UnaryOp::*;
        match u {
            Neg | Abs | Sign | Relu | Floor | Ceil | Round | Not | IsNan | IsInf => 1.0,
            Sqrt | Rsqrt | Reciprocal => self.division,
            Exp | Log | Sin | Cos | Tan | Asin | Acos | Atan | Sinh | Cosh | Tanh | Asinh | Acosh | Atanh | Sigmoid
            | Erf => self.transcendental,
        }
    }

    fn binary_ops(&self, b: BinaryOp) -> f64 {
        match b {
            BinaryOp::Div | BinaryOp::Rem => self.division,
            BinaryOp::Pow => self.transcendental,
            _ => 1.0,
        }
    }

    /// The cost of one node applying `op` to operands of types `inputs` (distinct operands only:
    /// an operand used twice is read once), giving results of types `outputs`.
    pub fn op_cost(&self, op: &Op, inputs: &[&TensorType], outputs: &[&TensorType]) -> Cost {
        let read: f64 = inputs.iter().map(|t| self.bytes(t)).sum();
        let written: f64 = outputs.iter().map(|t| self.bytes(t)).sum();
        let out_elems = outputs.first().map(|t| self.elements(t)).unwrap_or(0.0);
        let in_elems = |i: usize| inputs.get(i).map(|t| self.elements(t)).unwrap_or(0.0);
        let dim =
            |i: usize, axis: usize| inputs.get(i).and_then(|t| t.shape.get(axis)).map(|d| self.dim(d)).unwrap_or(1.0);
        let flops = match op {
            // Already in memory: reading it is charged to its users.
            Op::Constant(_) => return Cost::default(),
            // A view of its operand.
            Op::Reshape { .. } => return Cost::default(),
            Op::Unary(u) => out_elems * self.unary_ops(*u),
            Op::Binary(b) => out_elems * self.binary_ops(*b),
            Op::Reduce { kind, .. } => {
                in_elems(0) + if *kind == ReduceKind::Mean { out_elems * self.division } else { 0.0 }
            }
            Op::ArgReduce { .. } => in_elems(0),
            Op::MatMul => {
                // Result elements times the contraction length, a multiply and an add each.
                let k = inputs.first().and_then(|t| t.shape.last()).map(|d| self.dim(d)).unwrap_or(1.0);
                2.0 * out_elems * k
            }
            Op::Conv { .. } => {
                // Each output reads C/groups channels times the kernel window: the weight's
                // shape [M, C/groups, K..] without M.
                let w = inputs.get(1);
                let per_out = w.map(|t| t.shape.iter().skip(1).map(|d| self.dim(d)).product::<f64>()).unwrap_or(1.0);
                2.0 * out_elems * per_out
            }
            Op::Pool { kernel, .. } => out_elems * kernel.iter().map(|&k| k.max(1) as f64).product::<f64>(),
            Op::Transpose { .. }
            | Op::Expand { .. }
            | Op::Slice { .. }
            | Op::Concat { .. }
            | Op::Pad { .. }
            | Op::Gather { .. } => 0.0,
            Op::ScatterAdd { .. } => in_elems(2),
            Op::Softmax { .. } | Op::LogSoftmax { .. } => out_elems * (4.0 + self.transcendental + self.division),
            Op::LayerNorm { .. } => out_elems * (8.0 + self.division),
            Op::BatchNorm { .. } => out_elems * 4.0,
            Op::Gelu { .. } => out_elems * (5.0 + self.transcendental),
            Op::Attention { .. } => {
                // scores = q·kᵀ ([.., Lq, Lk]), softmax, then · v.
                let last = |t: Option<&&TensorType>, from_end: usize| {
                    t.and_then(|t| t.shape.len().checked_sub(from_end).and_then(|a| t.shape.get(a)))
                        .map(|d| self.dim(d))
                        .unwrap_or(1.0)
                };
                let (d, lk, dv) = (last(inputs.first(), 1), last(inputs.get(1), 2), last(inputs.get(2), 1));
                let scores = out_elems / dv.max(1.0) * lk;
                scores * (2.0 * d + 4.0 + self.transcendental + self.division + 2.0 * dv)
            }
            Op::Recurrent { cell, hidden, .. } => {
                // Per step and direction: the gate products with x and h, and the gate
                // activations.
                let (s, b, i) = (dim(0, 0), dim(0, 1), dim(0, 2));
                let g = cell.gates() as f64;
                let h = *hidden as f64;
                let dirs = outputs.first().and_then(|t| t.shape.get(1)).map(|d| self.dim(d)).unwrap_or(1.0);
                let act = if *cell == RnnCell::Simple { 1.0 } else { 2.0 };
                s * dirs * b * (2.0 * g * h * (i + h) + g * h * act * self.transcendental)
            }
            // `iota`, `select`, `cast` and anything else: one operation per result element.
            _ => out_elems,
        };
        Cost { bytes: read + written, flops }
    }

    /// The cost of a graph: the sum over its nodes, each counted once.
    pub fn graph_cost(&self, graph: &Graph) -> Cost {
        let mut total = Cost::default();
        for node in &graph.nodes {
            let mut seen = Vec::with_capacity(node.inputs.len());
            for v in &node.inputs {
                if !seen.contains(v) {
                    seen.push(*v);
                }
            }
            let inputs: Vec<&TensorType> = seen.iter().map(|&v| graph.ty(v)).collect();
            let outputs: Vec<&TensorType> = node.outputs.iter().map(|&v| graph.ty(v)).collect();
            total = total + self.op_cost(&node.op, &inputs, &outputs);
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nnc_ir::DType;

    #[test]
    fn matmul_counts_two_flops_per_multiply_add() {
        let m = CostModel::default();
        let a = TensorType::new(DType::F32, [2, 3]);
        let b = TensorType::new(DType::F32, [3, 4]);
        let c = TensorType::new(DType::F32, [2, 4]);
        let cost = m.op_cost(&Op::MatMul, &[&a, &b], &[&c]);
        assert_eq!(cost.flops, 2.0 * 8.0 * 3.0);
        assert_eq!(cost.bytes, (6.0 + 12.0 + 8.0) * 4.0);
    }

    #[test]
    fn reshape_is_free_and_symbols_have_a_size() {
        let m = CostModel::default();
        let a = TensorType::new(DType::F32, [Dim::sym("n"), Dim::from(2)]);
        assert_eq!(m.elements(&a), 128.0);
        assert_eq!(m.op_cost(&Op::Reshape { shape: vec![] }, &[&a], &[&a]), Cost::default());
    }
}

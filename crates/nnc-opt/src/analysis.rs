//! The e-class analysis: every tensor e-class knows its dtype and shape (from `nnc_ir::infer`),
//! the value of a small constant, and whether it is known to be non-negative.
//!
//! The analysis also owns the op and constant tables that attribute and constant leaves index,
//! so rules can read an op's attributes and a constant's elements through the e-graph alone.

use crate::lang::{ConstTable, Head, Nn, OpTable, SMALL_CONST};
use egg::{Analysis, DidMerge, EGraph, Id};
use nnc_ir::{infer, BinaryOp, Op, TensorData, TensorType, UnaryOp};

/// The e-graph of a Graph IR graph.
pub type EG = EGraph<Nn, NnAnalysis>;

/// What an e-class holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    /// An attribute leaf (not a tensor).
    Attr,
    /// A tensor value.
    Tensor(Info),
    /// The results of a multi-result op.
    Tuple(Vec<TensorType>),
    /// An e-node whose operands its op does not accept. Translation and the rules check types
    /// before adding anything, so this only marks a bug; such e-classes are never extracted.
    Invalid,
}

/// What is known about a tensor e-class.
#[derive(Debug, Clone, PartialEq)]
pub struct Info {
    pub ty: TensorType,
    /// The elements, for a constant of at most [`SMALL_CONST`] elements.
    pub value: Option<TensorData>,
    /// Every element is `>= 0` (or NaN, or a zero of either sign): true of `relu`, `abs`, `exp`,
    /// `sqrt`, `sigmoid`, `x * x`, unsigned integers and non-negative constants.
    pub nonneg: bool,
}

impl Data {
    pub fn tensor(&self) -> Option<&Info> {
        match self {
            Data::Tensor(i) => Some(i),
            _ => None,
        }
    }

    pub fn ty(&self) -> Option<&TensorType> {
        self.tensor().map(|i| &i.ty)
    }
}

/// One rewrite that changed the e-graph: the rule, the e-class it matched, and the e-nodes its
/// right side is made of, with their e-classes.
pub type Rewritten = (&'static str, Id, Vec<(Id, Nn)>);

/// The analysis, with the tables the e-graph's leaves refer to.
#[derive(Debug, Clone, Default)]
pub struct NnAnalysis {
    pub ops: OpTable,
    pub consts: ConstTable,
    /// The graph inputs' types, by position.
    pub inputs: Vec<TensorType>,
    /// Every rewrite that changed the e-graph: the rule, the e-class it matched, and the e-nodes
    /// its right side is made of, with their e-classes (none when the right side is an existing
    /// e-class, as in `x * 1 → x`).
    pub log: Vec<Rewritten>,
}

impl NnAnalysis {
    /// The op an e-node applies, with its attributes; `None` for leaves and projections.
    pub fn op_of(&self, egraph: &EG, node: &Nn) -> Option<Op> {
        match &node.head {
            Head::Unary(u) => Some(Op::Unary(*u)),
            Head::Binary(b) => Some(Op::Binary(*b)),
            Head::Select => Some(Op::Select),
            Head::MatMul => Some(Op::MatMul),
            Head::Op(name) => {
                let op = attr_op(egraph, *node.children.first()?)?;
                (op.name() == *name).then(|| op.clone())
            }
            Head::Input(_) | Head::Const(_) | Head::Attr(_) | Head::Result(_) => None,
        }
    }
}

/// The op of the attribute leaf in e-class `id`.
pub fn attr_op(egraph: &EG, id: Id) -> Option<&Op> {
    egraph[id].nodes.iter().find_map(|n| match n.head {
        Head::Attr(k) => egraph.analysis.ops.get(k),
        _ => None,
    })
}

/// The tensor operands of an e-node (its children after the attribute leaf, if any).
pub fn operands(node: &Nn) -> &[Id] {
    match node.head {
        Head::Op(_) => node.children.get(1..).unwrap_or(&[]),
        _ => &node.children,
    }
}

/// The data of a constant.
pub fn const_data(t: &TensorData) -> Data {
    let ty = TensorType::new(t.dtype(), t.shape().iter().copied());
    let small = t.len() <= SMALL_CONST;
    let nonneg = ty.dtype.is_unsigned_int()
        || ty.dtype == nnc_ir::DType::Bool
        || (small && t.to_f64_vec().iter().all(|v| v.partial_cmp(&0.0) != Some(std::cmp::Ordering::Less)));
    Data::Tensor(Info { ty, value: small.then(|| t.clone()), nonneg })
}

/// The data of op `op` applied to operands with the given data.
pub fn op_data(op: &Op, args: &[&Data]) -> Data {
    let mut types = Vec::with_capacity(args.len());
    for a in args {
        match a.ty() {
            Some(t) => types.push(t),
            None => return Data::Invalid,
        }
    }
    let Ok(mut out) = infer(op, &types) else { return Data::Invalid };
    if out.len() != 1 {
        return Data::Tuple(out);
    }
    let ty = out.remove(0);
    let arg_nonneg = |i: usize| args.get(i).and_then(|a| a.tensor()).is_some_and(|t| t.nonneg);
    let nonneg = ty.dtype.is_unsigned_int()
        || match op {
            Op::Unary(u) => match u {
                // Integer `relu` is exact; integer `abs` wraps (`abs(-128) = -128` in i8).
                UnaryOp::Relu | UnaryOp::Exp | UnaryOp::Sqrt | UnaryOp::Sigmoid => true,
                UnaryOp::Abs => ty.dtype.is_float(),
                UnaryOp::Floor | UnaryOp::Ceil | UnaryOp::Round => arg_nonneg(0),
                _ => false,
            },
            // Float products and sums of non-negative values stay non-negative (overflow gives
            // +inf); integer ones may wrap. (Not `div`: `1 / -0` is `-inf`.)
            Op::Binary(BinaryOp::Mul | BinaryOp::Add) if ty.dtype.is_float() => arg_nonneg(0) && arg_nonneg(1),
            Op::Binary(BinaryOp::Max) => arg_nonneg(0) || arg_nonneg(1),
            Op::Binary(BinaryOp::Min) => arg_nonneg(0) && arg_nonneg(1),
            Op::Softmax { .. } => true,
            Op::Reshape { .. }
            | Op::Transpose { .. }
            | Op::Expand { .. }
            | Op::Slice { .. }
            | Op::Reduce { kind: nnc_ir::ReduceKind::Max | nnc_ir::ReduceKind::Min, .. }
            | Op::Pool { .. } => arg_nonneg(0),
            Op::Reduce { kind: nnc_ir::ReduceKind::Sum | nnc_ir::ReduceKind::Mean, .. } if ty.dtype.is_float() => {
                arg_nonneg(0)
            }
            Op::Concat { .. } => (0..args.len()).all(arg_nonneg),
            _ => false,
        };
    Data::Tensor(Info { ty, value: None, nonneg })
}

impl Analysis<Nn> for NnAnalysis {
    type Data = Data;

    fn make(egraph: &mut EG, enode: &Nn, _id: Id) -> Data {
        match &enode.head {
            Head::Attr(_) => Data::Attr,
            Head::Input(k) => match egraph.analysis.inputs.get(*k as usize) {
                Some(ty) => Data::Tensor(Info {
                    ty: ty.clone(),
                    value: None,
                    nonneg: ty.dtype.is_unsigned_int() || ty.dtype == nnc_ir::DType::Bool,
                }),
                None => Data::Invalid,
            },
            Head::Const(k) => match egraph.analysis.consts.get(*k) {
                Some(t) => const_data(t),
                None => Data::Invalid,
            },
            Head::Result(k) => match enode.children.first().map(|&c| &egraph[c].data) {
                Some(Data::Tuple(types)) => match types.get(*k as usize) {
                    Some(ty) => Data::Tensor(Info { ty: ty.clone(), value: None, nonneg: false }),
                    None => Data::Invalid,
                },
                _ => Data::Invalid,
            },
            _ => {
                let Some(op) = egraph.analysis.op_of(egraph, enode) else { return Data::Invalid };
                let args: Vec<&Data> = operands(enode).iter().map(|&c| &egraph[c].data).collect();
                let mut data = op_data(&op, &args);
                // `x * x` is never negative in floating point (it may be NaN or +inf).
                if let (Head::Binary(BinaryOp::Mul), Data::Tensor(info)) = (&enode.head, &mut data) {
                    if enode.children[0] == enode.children[1] && info.ty.dtype.is_float() {
                        info.nonneg = true;
                    }
                }
                data
            }
        }
    }

    fn merge(&mut self, a: &mut Data, b: Data) -> DidMerge {
        match (a, b) {
            (Data::Tensor(a), Data::Tensor(b)) => {
                // The types are equal: every rule checks that before it unions.
                let mut changed_a = false;
                let mut changed_b = false;
                match (&a.value, b.value) {
                    (None, Some(v)) => {
                        a.value = Some(v);
                        changed_a = true;
                    }
                    (Some(_), None) => changed_b = true,
                    _ => {}
                }
                if a.nonneg != b.nonneg {
                    if b.nonneg {
                        changed_a = true;
                    } else {
                        changed_b = true;
                    }
                    a.nonneg = true;
                }
                DidMerge(changed_a, changed_b)
            }
            (a @ Data::Invalid, b) => {
                let changed = b != Data::Invalid;
                *a = b;
                DidMerge(changed, false)
            }
            (_, Data::Invalid) => DidMerge(false, true),
            _ => DidMerge(false, false),
        }
    }
}

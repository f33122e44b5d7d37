//! The e-graph language: one e-node per Graph IR node, with attributes and weights kept out of
//! the e-graph's hash-consing by reference.
//!
//! An e-node is a [`Head`] and its children. Ops without attributes (`add`, `relu`, `select`,
//! `matmul`) are heads of their own, so rules read like the text form: `(mul ?x ?c)`. An op with
//! attributes (`transpose`, `conv`, `reduce_sum`, ...) is `Head::Op(name)` whose child 0 is an
//! attribute leaf, `Head::Attr(k)`, naming entry `k` of the [`OpTable`] (the op with its
//! attributes): `(transpose ?perm ?x)`. Keeping the attributes in a child e-class lets a rule
//! match any attributes with a variable, and rewrite `(reshape ?s (reshape ?t ?x))` to
//! `(reshape ?s ?x)` without looking inside them.
//!
//! Leaves are graph inputs (`Head::Input(k)`, by position) and constants (`Head::Const(k)`, entry
//! `k` of the [`ConstTable`]): a weight is never copied into the e-graph, only its table index.
//! Multi-result ops (`lstm`, `gru`, `rnn`) are one e-node whose e-class holds a tuple;
//! `Head::Result(k)` projects result `k` out of it.

use egg::{FromOp, FromOpError, Id, Language};
use nnc_ir::{BinaryOp, Op, TensorData, UnaryOp};
use std::collections::HashMap;
use std::fmt;

/// What an e-node computes, without its children.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Head {
    /// Graph input number `k`.
    Input(u32),
    /// Constant number `k` of the [`ConstTable`].
    Const(u32),
    /// Attribute leaf: op number `k` of the [`OpTable`]. Not a tensor.
    Attr(u32),
    Unary(UnaryOp),
    Binary(BinaryOp),
    Select,
    MatMul,
    /// An op with attributes, by its text name; child 0 is its [`Head::Attr`] leaf.
    Op(&'static str),
    /// Result `k` of the multi-result node that is child 0.
    Result(u32),
}

/// Names of the ops that carry attributes, so a pattern's `(transpose ...)` finds its
/// `&'static str`. A test checks that every such op is listed.
pub const ATTR_OPS: &[&str] = &[
    "iota",
    "cast",
    "reduce_sum",
    "reduce_mean",
    "reduce_max",
    "reduce_min",
    "reduce_prod",
    "argmax",
    "argmin",
    "conv",
    "max_pool",
    "avg_pool",
    "reshape",
    "transpose",
    "expand",
    "slice",
    "concat",
    "pad",
    "gather",
    "scatter_add",
    "softmax",
    "log_softmax",
    "layer_norm",
    "batch_norm",
    "gelu",
    "attention",
    "lstm",
    "gru",
    "rnn",
    "argmax_pool",
    "conv_transpose",
    "resize",
    "gather_elements",
    "scatter_elements",
    "gather_nd",
    "scatter_nd",
    "topk",
    "cumulative",
];

/// An e-node of the nnc language.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Nn {
    pub head: Head,
    pub children: Vec<Id>,
}

impl Nn {
    pub fn new(head: Head, children: Vec<Id>) -> Nn {
        Nn { head, children }
    }

    pub fn leaf(head: Head) -> Nn {
        Nn { head, children: Vec::new() }
    }
}

/// The head an op gets in the e-graph (constants excepted: they become [`Head::Const`] leaves).
pub fn head_of(op: &Op) -> Head {
    match op {
        Op::Unary(u) => Head::Unary(*u),
        Op::Binary(b) => Head::Binary(*b),
        Op::Select => Head::Select,
        Op::MatMul => Head::MatMul,
        other => Head::Op(other.name()),
    }
}

/// True if the op is represented with an attribute child.
pub fn has_attr_child(op: &Op) -> bool {
    matches!(head_of(op), Head::Op(_))
}

impl Language for Nn {
    type Discriminant = Head;

    fn discriminant(&self) -> Head {
        self.head.clone()
    }

    fn matches(&self, other: &Self) -> bool {
        self.head == other.head && self.children.len() == other.children.len()
    }

    fn children(&self) -> &[Id] {
        &self.children
    }

    fn children_mut(&mut self) -> &mut [Id] {
        &mut self.children
    }
}

impl fmt::Display for Head {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Head::Input(k) => write!(f, "in{k}"),
            Head::Const(k) => write!(f, "const{k}"),
            Head::Attr(k) => write!(f, "attr{k}"),
            Head::Unary(u) => f.write_str(u.name()),
            Head::Binary(b) => f.write_str(b.name()),
            Head::Select => f.write_str("select"),
            Head::MatMul => f.write_str("matmul"),
            Head::Op(name) => f.write_str(name),
            Head::Result(k) => write!(f, "result{k}"),
        }
    }
}

impl fmt::Display for Nn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.head)
    }
}

/// Parses the head of an e-node as patterns write it: an op name, or `inK`, `constK`, `attrK`,
/// `resultK` for leaves and projections.
pub fn parse_head(op: &str) -> Option<Head> {
    if let Some(u) = UnaryOp::from_name(op) {
        return Some(Head::Unary(u));
    }
    if let Some(b) = BinaryOp::from_name(op) {
        return Some(Head::Binary(b));
    }
    match op {
        "select" => return Some(Head::Select),
        "matmul" => return Some(Head::MatMul),
        _ => {}
    }
    if let Some(name) = ATTR_OPS.iter().find(|n| **n == op) {
        return Some(Head::Op(name));
    }
    let numbered = |prefix: &str| op.strip_prefix(prefix).and_then(|k| k.parse::<u32>().ok());
    if let Some(k) = numbered("in") {
        Some(Head::Input(k))
    } else if let Some(k) = numbered("const") {
        Some(Head::Const(k))
    } else if let Some(k) = numbered("attr") {
        Some(Head::Attr(k))
    } else {
        numbered("result").map(Head::Result)
    }
}

impl FromOp for Nn {
    type Error = FromOpError;

    fn from_op(op: &str, children: Vec<Id>) -> Result<Self, Self::Error> {
        match parse_head(op) {
            Some(head) => Ok(Nn { head, children }),
            None => Err(FromOpError::new(op, children)),
        }
    }
}

/// The ops with attributes met so far, interned so that equal attributes get one index (and so
/// one e-class).
#[derive(Debug, Clone, Default)]
pub struct OpTable {
    ops: Vec<Op>,
    index: HashMap<String, u32>,
}

impl OpTable {
    /// The index of `op`, adding it if new. Ops are equal when their name and printed attributes
    /// are, which is exact: floats print so that they read back to the same bits.
    pub fn intern(&mut self, op: &Op) -> u32 {
        let key = op_key(op);
        if let Some(&k) = self.index.get(&key) {
            return k;
        }
        let k = self.ops.len() as u32;
        self.ops.push(op.clone());
        self.index.insert(key, k);
        k
    }

    pub fn get(&self, k: u32) -> Option<&Op> {
        self.ops.get(k as usize)
    }
}

fn op_key(op: &Op) -> String {
    let attrs: Vec<String> = op.attrs().into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{}{{{}}}", op.name(), attrs.join(","))
}

/// Constants by index. Small constants are interned by content, so equal scalars share an
/// e-class; large ones (weights) get one entry per graph constant and are never hashed or
/// copied: a [`TensorData`] clone shares its bytes.
#[derive(Debug, Clone, Default)]
pub struct ConstTable {
    values: Vec<TensorData>,
    small: HashMap<TensorData, u32>,
}

/// Constants with at most this many elements are interned by content and their values are
/// visible to rules (for "is this zero/one" guards and folding).
pub const SMALL_CONST: usize = 4096;

impl ConstTable {
    pub fn intern(&mut self, t: &TensorData) -> u32 {
        if t.len() <= SMALL_CONST {
            if let Some(&k) = self.small.get(t) {
                return k;
            }
        }
        let k = self.values.len() as u32;
        self.values.push(t.clone());
        if t.len() <= SMALL_CONST {
            self.small.insert(t.clone(), k);
        }
        k
    }

    pub fn get(&self, k: u32) -> Option<&TensorData> {
        self.values.get(k as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nnc_ir::{DType, Dim, Window};

    #[test]
    fn every_op_with_attributes_has_a_listed_name() {
        let ops = [
            Op::Iota { dtype: DType::I64, shape: vec![Dim::from(2)], axis: 0 },
            Op::Cast { to: DType::F32 },
            Op::Conv { window: Window::unit(2), groups: 1 },
            Op::Reshape { shape: vec![] },
            Op::Transpose { perm: vec![] },
            Op::Concat { axis: 0 },
            Op::Softmax { axis: 0 },
            Op::Attention { scale: None, causal: false },
        ];
        for op in ops {
            assert_eq!(parse_head(op.name()), Some(head_of(&op)), "{}", op.name());
        }
        for name in ATTR_OPS {
            assert_eq!(parse_head(name), Some(Head::Op(name)));
        }
        assert_eq!(parse_head("add"), Some(Head::Binary(BinaryOp::Add)));
        assert_eq!(parse_head("result2"), Some(Head::Result(2)));
        assert_eq!(parse_head("frob"), None);
    }

    #[test]
    fn equal_attributes_intern_once() {
        let mut t = OpTable::default();
        let a = t.intern(&Op::Transpose { perm: vec![1, 0] });
        let b = t.intern(&Op::Transpose { perm: vec![1, 0] });
        let c = t.intern(&Op::Transpose { perm: vec![0, 1] });
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn small_constants_intern_by_value() {
        let mut t = ConstTable::default();
        let a = t.intern(&TensorData::scalar(1.0f32));
        let b = t.intern(&TensorData::scalar(1.0f32));
        let c = t.intern(&TensorData::scalar(1.0f64));
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}

//! Scalar expressions: the language of kernel bodies and of per-op compute definitions.
//!
//! One expression type serves two levels. A *compute definition* (what one graph node, or one
//! fused group, computes) is an expression of the output's multi-index ([`Expr::Axis`]) that
//! loads operands ([`Expr::Load`] with a multi-dimensional index) and may contain nested
//! reductions ([`Expr::Reduce`]). A *scheduled kernel* (see [`crate::kernel`]) has no `Axis` and
//! no `Reduce`: the scheduler has turned them into loops, locals and thread ids.
//!
//! Every expression knows its dtype without a context: variables, loads and literals carry
//! theirs, and operators derive theirs from their operands.

use nnc_ir::{BinaryOp, DType, UnaryOp};

/// A scalar variable: a loop index, a `let` binding, a mutable local, or a reduction index.
/// Index variables are `i64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Var {
    pub id: u32,
    pub dtype: DType,
}

/// A constant. Floats are held as `f64` and mean the nearest value of their dtype.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Literal {
    Float(f64, DType),
    Int(i64, DType),
    Bool(bool),
}

impl Literal {
    pub fn dtype(self) -> DType {
        match self {
            Literal::Float(_, d) | Literal::Int(_, d) => d,
            Literal::Bool(_) => DType::Bool,
        }
    }

    /// `0` (or `false`) of a dtype.
    pub fn zero(dtype: DType) -> Literal {
        Literal::from_f64(0.0, dtype)
    }

    /// The literal of `dtype` nearest to `v` (integers truncate, bools are `v != 0`).
    pub fn from_f64(v: f64, dtype: DType) -> Literal {
        if dtype.is_float() {
            Literal::Float(v, dtype)
        } else if dtype == DType::Bool {
            Literal::Bool(v != 0.0)
        } else {
            Literal::Int(v as i64, dtype)
        }
    }
}

/// A buffer of the enclosing kernel (or, in a compute definition, the n-th operand).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BufId(pub u32);

impl BufId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Per-invocation ids of the GPU execution model, on axis 0 (x), 1 (y) or 2 (z).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Special {
    /// The invocation's index inside its workgroup (`local_invocation_id`, `threadIdx`).
    ThreadId(u8),
    /// The workgroup's index in the grid (`workgroup_id`, `blockIdx`).
    GroupId(u8),
}

/// How a reduction combines its terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Combine {
    Sum,
    Prod,
    Max,
    Min,
    /// The `i64` position (row-major over the reduction's variables) of the largest term; ties
    /// go to the first position, or the last with `select_last`.
    ArgMax {
        select_last: bool,
    },
    /// As `ArgMax`, for the smallest term.
    ArgMin {
        select_last: bool,
    },
}

impl Combine {
    pub fn name(self) -> &'static str {
        match self {
            Combine::Sum => "sum",
            Combine::Prod => "prod",
            Combine::Max => "max",
            Combine::Min => "min",
            Combine::ArgMax { select_last: false } => "argmax",
            Combine::ArgMax { select_last: true } => "argmax_last",
            Combine::ArgMin { select_last: false } => "argmin",
            Combine::ArgMin { select_last: true } => "argmin_last",
        }
    }
}

/// `combine` over every value of `vars` (each `0..extent`, row-major, last fastest) of `body`.
/// An empty range gives the identity: 0 for sum, 1 for prod, -inf/+inf (or the integer
/// minimum/maximum) for max/min, 0 for the arg reductions.
#[derive(Clone, Debug, PartialEq)]
pub struct Reduction {
    pub combine: Combine,
    pub vars: Vec<(Var, i64)>,
    pub body: Expr,
}

/// A scalar expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Lit(Literal),
    Var(Var),
    /// Compute definitions only: the output index on this axis (`i64`).
    Axis(u8),
    /// Scheduled kernels only: thread and workgroup ids (`i64`).
    Special(Special),
    /// Same semantics as the graph op of the same name, on one element.
    Unary(UnaryOp, Box<Expr>),
    /// Same semantics as the graph op of the same name, on one element; integer `div` and `rem`
    /// are the graph interpreter's (both operands of index arithmetic are never negative).
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    /// `cond ? a : b`; only the chosen side is evaluated (a masked-off load is never made).
    Select(Box<Expr>, Box<Expr>, Box<Expr>),
    Cast(DType, Box<Expr>),
    /// `buf[index]`, with one index per axis of the buffer (row-major). With a `mask`, the load
    /// is made only where the mask is true and is 0 elsewhere.
    Load {
        buf: BufId,
        dtype: DType,
        index: Vec<Expr>,
        mask: Option<Box<Expr>>,
    },
    /// Compute definitions only: a nested reduction.
    Reduce(Box<Reduction>),
}

impl Expr {
    pub fn dtype(&self) -> DType {
        match self {
            Expr::Lit(l) => l.dtype(),
            Expr::Var(v) => v.dtype,
            Expr::Axis(_) | Expr::Special(_) => DType::I64,
            Expr::Unary(op, a) => match op.class() {
                nnc_ir::op::UnaryClass::FloatPredicate => DType::Bool,
                _ => a.dtype(),
            },
            Expr::Binary(op, a, _) => match op.class() {
                nnc_ir::op::BinaryClass::Comparison => DType::Bool,
                _ => a.dtype(),
            },
            Expr::Select(_, a, _) => a.dtype(),
            Expr::Cast(d, _) => *d,
            Expr::Load { dtype, .. } => *dtype,
            Expr::Reduce(r) => match r.combine {
                Combine::ArgMax { .. } | Combine::ArgMin { .. } => DType::I64,
                _ => r.body.dtype(),
            },
        }
    }

    // ---- constructors that keep call sites short ----

    pub fn i64(v: i64) -> Expr {
        Expr::Lit(Literal::Int(v, DType::I64))
    }

    pub fn bool(v: bool) -> Expr {
        Expr::Lit(Literal::Bool(v))
    }

    pub fn lit(v: f64, dtype: DType) -> Expr {
        Expr::Lit(Literal::from_f64(v, dtype))
    }

    pub fn unary(op: UnaryOp, a: Expr) -> Expr {
        Expr::Unary(op, Box::new(a))
    }

    pub fn binary(op: BinaryOp, a: Expr, b: Expr) -> Expr {
        Expr::Binary(op, Box::new(a), Box::new(b))
    }

    pub fn select(cond: Expr, a: Expr, b: Expr) -> Expr {
        Expr::Select(Box::new(cond), Box::new(a), Box::new(b))
    }

    pub fn cast(to: DType, a: Expr) -> Expr {
        if a.dtype() == to {
            a
        } else {
            Expr::Cast(to, Box::new(a))
        }
    }

    pub fn load(buf: BufId, dtype: DType, index: Vec<Expr>) -> Expr {
        Expr::Load { buf, dtype, index, mask: None }
    }

    pub fn reduce(combine: Combine, vars: Vec<(Var, i64)>, body: Expr) -> Expr {
        Expr::Reduce(Box::new(Reduction { combine, vars, body }))
    }

    /// `a + b` on `i64` indices, folding literals so index expressions stay readable.
    pub fn add_index(a: Expr, b: Expr) -> Expr {
        match (a.as_int(), b.as_int()) {
            (Some(x), Some(y)) => Expr::i64(x.wrapping_add(y)),
            (_, Some(0)) => a,
            (Some(0), _) => b,
            _ => Expr::binary(BinaryOp::Add, a, b),
        }
    }

    /// `a - b` on `i64` indices, folding literals.
    pub fn sub_index(a: Expr, b: Expr) -> Expr {
        match (a.as_int(), b.as_int()) {
            (Some(x), Some(y)) => Expr::i64(x.wrapping_sub(y)),
            (_, Some(0)) => a,
            _ => Expr::binary(BinaryOp::Sub, a, b),
        }
    }

    /// `a * b` on `i64` indices, folding literals.
    pub fn mul_index(a: Expr, b: Expr) -> Expr {
        match (a.as_int(), b.as_int()) {
            (Some(x), Some(y)) => Expr::i64(x.wrapping_mul(y)),
            (_, Some(1)) => a,
            (Some(1), _) => b,
            (_, Some(0)) | (Some(0), _) => Expr::i64(0),
            _ => Expr::binary(BinaryOp::Mul, a, b),
        }
    }

    /// `a / b` on non-negative `i64` indices, folding literals.
    pub fn div_index(a: Expr, b: Expr) -> Expr {
        match (a.as_int(), b.as_int()) {
            (Some(x), Some(y)) if y != 0 => Expr::i64(x / y),
            (_, Some(1)) => a,
            _ => Expr::binary(BinaryOp::Div, a, b),
        }
    }

    /// `a % b` on non-negative `i64` indices, folding literals.
    pub fn rem_index(a: Expr, b: Expr) -> Expr {
        match (a.as_int(), b.as_int()) {
            (Some(x), Some(y)) if y != 0 => Expr::i64(x % y),
            (_, Some(1)) => Expr::i64(0),
            _ => Expr::binary(BinaryOp::Rem, a, b),
        }
    }

    /// `a && b`, folding `true`.
    pub fn and(a: Expr, b: Expr) -> Expr {
        match (&a, &b) {
            (Expr::Lit(Literal::Bool(true)), _) => b,
            (_, Expr::Lit(Literal::Bool(true))) => a,
            _ => Expr::binary(BinaryOp::And, a, b),
        }
    }

    /// The value of an integer literal.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Expr::Lit(Literal::Int(v, _)) => Some(*v),
            _ => None,
        }
    }

    /// Calls `f` on every direct sub-expression.
    pub fn for_each_child<'a>(&'a self, mut f: impl FnMut(&'a Expr)) {
        match self {
            Expr::Lit(_) | Expr::Var(_) | Expr::Axis(_) | Expr::Special(_) => {}
            Expr::Unary(_, a) | Expr::Cast(_, a) => f(a),
            Expr::Binary(_, a, b) => {
                f(a);
                f(b);
            }
            Expr::Select(c, a, b) => {
                f(c);
                f(a);
                f(b);
            }
            Expr::Load { index, mask, .. } => {
                index.iter().for_each(&mut f);
                if let Some(m) = mask {
                    f(m);
                }
            }
            Expr::Reduce(r) => f(&r.body),
        }
    }

    /// Rebuilds the expression bottom-up: `f` sees each node after its children were rebuilt,
    /// and returns its replacement.
    pub fn rewrite(self, f: &mut impl FnMut(Expr) -> Expr) -> Expr {
        let e = match self {
            e @ (Expr::Lit(_) | Expr::Var(_) | Expr::Axis(_) | Expr::Special(_)) => e,
            Expr::Unary(op, a) => Expr::Unary(op, Box::new(a.rewrite(f))),
            Expr::Cast(d, a) => Expr::Cast(d, Box::new(a.rewrite(f))),
            Expr::Binary(op, a, b) => Expr::Binary(op, Box::new(a.rewrite(f)), Box::new(b.rewrite(f))),
            Expr::Select(c, a, b) => {
                Expr::Select(Box::new(c.rewrite(f)), Box::new(a.rewrite(f)), Box::new(b.rewrite(f)))
            }
            Expr::Load { buf, dtype, index, mask } => Expr::Load {
                buf,
                dtype,
                index: index.into_iter().map(|i| i.rewrite(f)).collect(),
                mask: mask.map(|m| Box::new(m.rewrite(f))),
            },
            Expr::Reduce(r) => {
                let Reduction { combine, vars, body } = *r;
                Expr::reduce(combine, vars, body.rewrite(f))
            }
        };
        f(e)
    }

    /// Whether any node satisfies `pred`.
    pub fn any(&self, pred: &mut impl FnMut(&Expr) -> bool) -> bool {
        if pred(self) {
            return true;
        }
        let mut found = false;
        self.for_each_child(|c| found = found || c.any(pred));
        found
    }
}

/// Hands out fresh variables. One generator per kernel (or per fusion run) keeps ids unique.
#[derive(Clone, Debug, Default)]
pub struct VarGen {
    next: u32,
}

impl VarGen {
    pub fn new() -> VarGen {
        VarGen::default()
    }

    /// A generator whose variables do not collide with any in `used`.
    pub fn after(used: u32) -> VarGen {
        VarGen { next: used }
    }

    pub fn fresh(&mut self, dtype: DType) -> Var {
        let v = Var { id: self.next, dtype };
        self.next += 1;
        v
    }

    pub fn index(&mut self) -> Var {
        self.fresh(DType::I64)
    }

    /// One more than the largest id handed out.
    pub fn count(&self) -> u32 {
        self.next
    }
}

/// A key equal for two reductions that differ only in the names of their bound variables.
pub fn canonical_key(r: &Reduction) -> String {
    let mut next = 0u32;
    let mut renames: std::collections::BTreeMap<u32, u32> = std::collections::BTreeMap::new();
    let e = Expr::Reduce(Box::new(r.clone()));
    // Bound variables are renumbered in order of binding; free ones keep their ids (shifted
    // out of the way by a marker in the text).
    e.any(&mut |x| {
        if let Expr::Reduce(inner) = x {
            for (v, _) in &inner.vars {
                renames.entry(v.id).or_insert_with(|| {
                    next += 1;
                    next
                });
            }
        }
        false
    });
    let renamed = e.rewrite(&mut |x| match x {
        Expr::Var(v) => match renames.get(&v.id) {
            Some(&k) => Expr::Var(Var { id: u32::MAX - k, dtype: v.dtype }),
            None => Expr::Var(v),
        },
        Expr::Reduce(inner) => {
            let Reduction { combine, vars, body } = *inner;
            let vars =
                vars.into_iter().map(|(v, n)| (Var { id: u32::MAX - renames[&v.id], dtype: v.dtype }, n)).collect();
            Expr::reduce(combine, vars, body)
        }
        x => x,
    });
    renamed.to_string()
}

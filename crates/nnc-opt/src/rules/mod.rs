//! Rewrite rules, one topic per file, and the machinery every rule goes through.
//!
//! A [`Rule`] has a unique name, a left side (an egg pattern over the [`Nn`] language), and a
//! right side that is either a pattern or a function building a [`Term`]. Whatever the right
//! side, the rule is applied through one gate: the right side's type is inferred with
//! `nnc_ir::infer` before anything is added, and the rule does nothing unless it equals the
//! matched e-class's type (dtype and every dimension). That is the shape guard every rule
//! shares: `x + 0 → x` never fires where the zero's broadcast would change `x`'s shape. A rule's
//! own guards (`when`) check what types cannot, such as a constant being all ones.
//!
//! Every rule has a one-line comment stating its identity and guard, a unit test named after it
//! (in its topic file), and a generator in the soundness property test (`crate::soundness`).

use crate::analysis::{attr_op, const_data, op_data, Data, Info, NnAnalysis, EG};
use crate::lang::{has_attr_child, head_of, Head, Nn};
use egg::{Applier, ENodeOrVar, Id, Pattern, PatternAst, Rewrite, Subst, Symbol, Var};
use nnc_ir::{Op, TensorData};
use std::sync::Arc;

pub mod algebra;
pub mod composite;
pub mod constant;
pub mod layout;
pub mod matmul_conv;

/// The topic a rule belongs to (and the file it lives in).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    Algebra,
    Constant,
    Layout,
    MatmulConv,
    Composite,
}

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Family::Algebra => "algebra",
            Family::Constant => "constant",
            Family::Layout => "layout",
            Family::MatmulConv => "matmul_conv",
            Family::Composite => "composite",
        }
    }
}

/// A right side under construction: existing e-classes, new nodes, new constants and attributes.
#[derive(Clone, Debug)]
pub enum Term {
    Class(Id),
    Node(Head, Vec<Term>),
    Const(TensorData),
    Attr(Op),
}

impl Term {
    /// `op(args...)`, with the attribute leaf first when the op has attributes.
    pub fn op(op: Op, args: Vec<Term>) -> Term {
        let head = head_of(&op);
        if has_attr_child(&op) {
            let mut children = Vec::with_capacity(args.len() + 1);
            children.push(Term::Attr(op));
            children.extend(args);
            Term::Node(head, children)
        } else {
            Term::Node(head, args)
        }
    }
}

/// A condition on a match, beyond the type check every rule makes.
pub type Guard = Arc<dyn Fn(&EG, &Subst) -> bool + Send + Sync>;
/// A right side computed from a match; `None` means the rule does not apply.
pub type Build = Arc<dyn Fn(&EG, &Subst) -> Option<Term> + Send + Sync>;

#[derive(Clone)]
enum Rhs {
    Pattern(PatternAst<Nn>),
    Custom(Build),
}

/// A named rewrite rule: one or more alternatives (left side, right side) sharing the name and
/// the guards. Alternatives let one rule cover the spellings of one identity (`x * 0.5` and
/// `0.5 * x`) or one folding over many ops.
#[derive(Clone)]
pub struct Rule {
    pub name: &'static str,
    pub family: Family,
    alts: Vec<(Pattern<Nn>, Rhs)>,
    guards: Vec<Guard>,
}

fn pattern(name: &str, text: &str) -> Pattern<Nn> {
    // Rule patterns are fixed strings in this crate, checked by every rule's unit test.
    text.parse().unwrap_or_else(|e| panic!("rule `{name}`: bad pattern `{text}`: {e}"))
}

impl Rule {
    /// `lhs → rhs`, both patterns.
    pub fn rewrite(family: Family, name: &'static str, lhs: &str, rhs: &str) -> Rule {
        let rhs = Rhs::Pattern(pattern(name, rhs).ast);
        Rule { name, family, alts: vec![(pattern(name, lhs), rhs)], guards: Vec::new() }
    }

    /// `lhs → build(match)`.
    pub fn custom(
        family: Family,
        name: &'static str,
        lhs: &str,
        build: impl Fn(&EG, &Subst) -> Option<Term> + Send + Sync + 'static,
    ) -> Rule {
        Rule { name, family, alts: vec![(pattern(name, lhs), Rhs::Custom(Arc::new(build)))], guards: Vec::new() }
    }

    /// A rule with no alternatives yet (add them with [`Rule::or`] and [`Rule::or_custom`]).
    pub fn named(family: Family, name: &'static str) -> Rule {
        Rule { name, family, alts: Vec::new(), guards: Vec::new() }
    }

    /// Another alternative `lhs → rhs`.
    pub fn or(mut self, lhs: &str, rhs: &str) -> Rule {
        let rhs = Rhs::Pattern(pattern(self.name, rhs).ast);
        self.alts.push((pattern(self.name, lhs), rhs));
        self
    }

    /// Another alternative `lhs → build(match)`.
    pub fn or_custom(mut self, lhs: &str, build: impl Fn(&EG, &Subst) -> Option<Term> + Send + Sync + 'static) -> Rule {
        self.alts.push((pattern(self.name, lhs), Rhs::Custom(Arc::new(build))));
        self
    }

    /// Adds a guard (to every alternative).
    pub fn when(mut self, guard: impl Fn(&EG, &Subst) -> bool + Send + Sync + 'static) -> Rule {
        self.guards.push(Arc::new(guard));
        self
    }

    /// The left sides as text.
    pub fn lhs(&self) -> Vec<String> {
        self.alts.iter().map(|(l, _)| l.to_string()).collect()
    }

    /// The egg rewrites (one per alternative, all with the rule's name) that apply this rule
    /// through the type gate.
    pub fn to_egg(&self) -> Vec<Rewrite<Nn, NnAnalysis>> {
        self.alts
            .iter()
            .enumerate()
            .map(|(i, (lhs, rhs))| {
                let applier = TypedApplier { name: self.name, rhs: rhs.clone(), guards: self.guards.clone() };
                // egg wants unique names: alternatives after the first are `name#i`.
                let name = if i == 0 { self.name.to_string() } else { format!("{}#{i}", self.name) };
                // A right side only uses variables its left side binds (a test checks every rule).
                Rewrite::new(name, lhs.clone(), applier).unwrap_or_else(|e| panic!("rule `{}`: {e}", self.name))
            })
            .collect()
    }
}

/// Every rule, in a fixed order (the order `applied` lists them in).
pub fn all_rules() -> Vec<Rule> {
    let mut rules = Vec::new();
    rules.extend(algebra::rules());
    rules.extend(constant::rules());
    rules.extend(layout::rules());
    rules.extend(matmul_conv::rules());
    rules.extend(composite::rules());
    rules
}

struct TypedApplier {
    name: &'static str,
    rhs: Rhs,
    guards: Vec<Guard>,
}

impl Applier<Nn, NnAnalysis> for TypedApplier {
    fn vars(&self) -> Vec<Var> {
        match &self.rhs {
            Rhs::Pattern(ast) => Pattern::new(ast.clone()).vars(),
            Rhs::Custom(_) => Vec::new(),
        }
    }

    fn apply_one(
        &self,
        egraph: &mut EG,
        eclass: Id,
        subst: &Subst,
        _searcher_ast: Option<&PatternAst<Nn>>,
        _rule_name: Symbol,
    ) -> Vec<Id> {
        if !self.guards.iter().all(|g| g(egraph, subst)) {
            return vec![];
        }
        let term = match &self.rhs {
            Rhs::Pattern(ast) => pattern_term(ast, subst),
            Rhs::Custom(build) => match build(egraph, subst) {
                Some(t) => t,
                None => return vec![],
            },
        };
        let Some(got) = term_data(egraph, &term) else { return vec![] };
        if !same_type(&egraph[eclass].data, &got) {
            return vec![];
        }
        let (id, made) = add_root(egraph, &term);
        if egraph.union(eclass, id) {
            egraph.analysis.log.push((self.name, eclass, made));
            vec![id]
        } else {
            vec![]
        }
    }
}

/// Both are tensors of one type, or tuples of the same types.
pub fn same_type(a: &Data, b: &Data) -> bool {
    match (a, b) {
        (Data::Tensor(a), Data::Tensor(b)) => a.ty == b.ty,
        (Data::Tuple(a), Data::Tuple(b)) => a == b,
        _ => false,
    }
}

/// The term a pattern's right side instantiates to under `subst`.
fn pattern_term(ast: &PatternAst<Nn>, subst: &Subst) -> Term {
    let mut terms: Vec<Term> = Vec::with_capacity(ast.as_ref().len());
    for node in ast.as_ref() {
        let t = match node {
            ENodeOrVar::Var(v) => Term::Class(subst[*v]),
            ENodeOrVar::ENode(n) => {
                Term::Node(n.head.clone(), n.children.iter().map(|c| terms[usize::from(*c)].clone()).collect())
            }
        };
        terms.push(t);
    }
    terms.pop().unwrap_or(Term::Node(Head::Select, vec![]))
}

/// The op a term's node applies (reading its attribute child).
fn term_op(egraph: &EG, head: &Head, children: &[Term]) -> Option<Op> {
    match head {
        Head::Unary(u) => Some(Op::Unary(*u)),
        Head::Binary(b) => Some(Op::Binary(*b)),
        Head::Select => Some(Op::Select),
        Head::MatMul => Some(Op::MatMul),
        Head::Op(name) => {
            let op = match children.first()? {
                Term::Attr(op) => op.clone(),
                Term::Class(id) => attr_op(egraph, *id)?.clone(),
                _ => return None,
            };
            (op.name() == *name).then_some(op)
        }
        _ => None,
    }
}

/// The data a term would have, or `None` if it is ill-formed or ill-typed.
pub fn term_data(egraph: &EG, term: &Term) -> Option<Data> {
    let data = match term {
        Term::Class(id) => egraph[*id].data.clone(),
        Term::Const(t) => const_data(t),
        Term::Attr(_) => Data::Attr,
        Term::Node(Head::Result(k), children) => match term_data(egraph, children.first()?)? {
            Data::Tuple(types) => {
                Data::Tensor(Info { ty: types.get(*k as usize)?.clone(), value: None, nonneg: false })
            }
            _ => return None,
        },
        Term::Node(head, children) => {
            let op = term_op(egraph, head, children)?;
            let args = if matches!(head, Head::Op(_)) { &children[1..] } else { &children[..] };
            let data = args.iter().map(|a| term_data(egraph, a)).collect::<Option<Vec<Data>>>()?;
            op_data(&op, &data.iter().collect::<Vec<_>>())
        }
    };
    (data != Data::Invalid).then_some(data)
}

/// Adds a term to the e-graph and returns its e-class and the operation e-nodes it is made of
/// (root first, leaves left out) with their e-classes.
fn add_root(egraph: &mut EG, term: &Term) -> (Id, Vec<(Id, Nn)>) {
    let mut made = Vec::new();
    let id = add_collect(egraph, term, &mut made);
    made.reverse();
    (id, made)
}

fn add_collect(egraph: &mut EG, term: &Term, made: &mut Vec<(Id, Nn)>) -> Id {
    match term {
        Term::Node(head, children) => {
            let ids = children.iter().map(|c| add_collect(egraph, c, made)).collect();
            let node = Nn::new(head.clone(), ids);
            let id = egraph.add(node.clone());
            made.push((id, node));
            id
        }
        // A new constant is what a folding rule makes: it counts as a made e-node.
        Term::Const(_) => {
            let id = add_term(egraph, term);
            if let Some(n) = egraph[id].nodes.iter().find(|n| matches!(n.head, Head::Const(_))) {
                made.push((id, n.clone()));
            }
            id
        }
        _ => add_term(egraph, term),
    }
}

/// Adds a term to the e-graph and returns its e-class.
pub fn add_term(egraph: &mut EG, term: &Term) -> Id {
    match term {
        Term::Class(id) => *id,
        Term::Const(t) => {
            let k = egraph.analysis.consts.intern(t);
            egraph.add(Nn::leaf(Head::Const(k)))
        }
        Term::Attr(op) => {
            let k = egraph.analysis.ops.intern(op);
            egraph.add(Nn::leaf(Head::Attr(k)))
        }
        Term::Node(head, children) => {
            let ids = children.iter().map(|c| add_term(egraph, c)).collect();
            egraph.add(Nn::new(head.clone(), ids))
        }
    }
}

// ---- helpers for guards and right sides ----

/// A pattern variable (`"?x"`); the names are fixed strings in the rule files.
pub fn var(name: &str) -> Var {
    name.parse().unwrap_or_else(|e| panic!("bad pattern variable `{name}`: {e}"))
}

/// What the analysis knows about the tensor bound to `v`.
pub fn info<'a>(egraph: &'a EG, subst: &Subst, v: Var) -> Option<&'a Info> {
    egraph[*subst.get(v)?].data.tensor()
}

/// The value of the small constant bound to `v`.
pub fn value<'a>(egraph: &'a EG, subst: &Subst, v: Var) -> Option<&'a TensorData> {
    info(egraph, subst, v)?.value.as_ref()
}

/// The one value every element of the constant bound to `v` has (`None` for an empty constant,
/// for a non-constant, and when the elements differ).
pub fn uniform(egraph: &EG, subst: &Subst, v: Var) -> Option<f64> {
    let t = value(egraph, subst, v)?;
    let vals = t.to_f64_vec();
    let first = *vals.first()?;
    vals.iter().all(|x| x.to_bits() == first.to_bits()).then_some(first)
}

/// Guard: the variable is a constant whose every element equals `x` (exactly, in its dtype).
pub fn is_value(name: &str, x: f64) -> impl Fn(&EG, &Subst) -> bool + Send + Sync + 'static {
    let v = var(name);
    move |eg, s| uniform(eg, s, v) == Some(x)
}

/// Guard: the variable's dtype is a float.
pub fn is_float(name: &str) -> impl Fn(&EG, &Subst) -> bool + Send + Sync + 'static {
    let v = var(name);
    move |eg, s| info(eg, s, v).is_some_and(|i| i.ty.dtype.is_float())
}

/// Guard: the variable is a small constant (its value is known).
pub fn is_const(name: &str) -> impl Fn(&EG, &Subst) -> bool + Send + Sync + 'static {
    let v = var(name);
    move |eg, s| value(eg, s, v).is_some()
}

/// Guard: the variable is not a constant (so that a constant-on-the-right rule does not loop).
pub fn not_const(name: &str) -> impl Fn(&EG, &Subst) -> bool + Send + Sync + 'static {
    let v = var(name);
    move |eg, s| subst_class(s, v).is_some_and(|id| !eg[id].nodes.iter().any(|n| matches!(n.head, Head::Const(_))))
}

/// Guard: the variable has exactly one element in every dimension (`[]`, `[1]`, `[1, 1]`...).
pub fn is_single(name: &str) -> impl Fn(&EG, &Subst) -> bool + Send + Sync + 'static {
    let v = var(name);
    move |eg, s| info(eg, s, v).is_some_and(|i| i.ty.shape.iter().all(|d| d.as_const() == Some(1)))
}

fn subst_class(s: &Subst, v: Var) -> Option<Id> {
    s.get(v).copied()
}

/// The e-class bound to `v` as a term.
pub fn class(s: &Subst, v: Var) -> Option<Term> {
    subst_class(s, v).map(Term::Class)
}

/// The op of the attribute leaf bound to `v`.
pub fn attr<'a>(egraph: &'a EG, s: &Subst, v: Var) -> Option<&'a Op> {
    attr_op(egraph, subst_class(s, v)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn rule_names_are_unique_and_patterns_parse() {
        let rules = all_rules();
        let mut names = BTreeSet::new();
        for r in &rules {
            assert!(names.insert(r.name), "duplicate rule name {}", r.name);
            assert!(!r.to_egg().is_empty(), "rule {} has no alternative", r.name);
        }
        for f in [Family::Algebra, Family::Constant, Family::Layout, Family::MatmulConv, Family::Composite] {
            assert!(rules.iter().any(|r| r.family == f), "no rule in family {}", f.name());
        }
    }
}

//! Extraction: the cheapest e-node of every e-class, deterministically.
//!
//! The cost of choosing an e-node is its own cost (from [`CostModel::op_cost`]) plus the costs of
//! its operands' e-classes (whole, or shared among their users: [`Sharing`]), computed to a
//! fixpoint as egg's extractor does. Ties keep the e-node
//! found first, and e-classes and e-nodes are visited in a fixed order (egg's `deterministic`
//! feature keeps e-classes in insertion order; an e-class's e-nodes are sorted), so the same
//! e-graph always gives the same choice.

use crate::analysis::{operands, Data, EG};
use crate::cost::CostModel;
use crate::lang::{Head, Nn};
use egg::{Id, Language};
use nnc_ir::TensorType;
use std::collections::{HashMap, HashSet};

/// Added to the cost of a penalised e-node (see `OptOptions::prefer_rewrites`).
const PENALTY: f64 = 1e15;

/// The own cost of one e-node.
pub fn node_cost(egraph: &EG, model: &CostModel, node: &Nn, data: &Data) -> Option<f64> {
    match node.head {
        Head::Input(_) | Head::Const(_) | Head::Attr(_) | Head::Result(_) => return Some(0.0),
        _ => {}
    }
    let op = egraph.analysis.op_of(egraph, node)?;
    let mut seen: Vec<Id> = Vec::new();
    for &c in operands(node) {
        let c = egraph.find(c);
        if !seen.contains(&c) {
            seen.push(c);
        }
    }
    let inputs: Vec<&TensorType> = seen.iter().map(|&c| egraph[c].data.ty()).collect::<Option<_>>()?;
    let outputs: Vec<&TensorType> = match data {
        Data::Tensor(i) => vec![&i.ty],
        Data::Tuple(types) => types.iter().collect(),
        Data::Attr | Data::Invalid => return None,
    };
    Some(model.op_cost(&op, &inputs, &outputs).total(model))
}

/// How an e-node's operands count in its cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sharing {
    /// Each operand's whole cost, as if nothing were shared (egg's tree cost). Exact for trees;
    /// in a graph where values are used many times, costs grow with the number of paths and
    /// small differences drown in them.
    Tree,
    /// Each operand's cost divided by the number of e-nodes using its e-class, so a shared value
    /// is paid about once. An estimate, but one that does not grow with depth.
    Amortized,
}

/// The chosen e-node of every e-class that has a finite-cost choice, keyed by canonical id.
pub fn extract(egraph: &EG, model: &CostModel, penalized: &HashSet<Nn>, sharing: Sharing) -> HashMap<Id, Nn> {
    // Own costs, computed once.
    let mut own: Vec<(Id, Vec<(f64, Nn)>)> = Vec::with_capacity(egraph.number_of_classes());
    for class in egraph.classes() {
        if class.data == Data::Invalid {
            continue;
        }
        let mut nodes = Vec::with_capacity(class.nodes.len());
        for n in &class.nodes {
            let n = n.clone().map_children(|c| egraph.find(c));
            if let Some(mut c) = node_cost(egraph, model, &n, &class.data) {
                if penalized.contains(&n) {
                    c += PENALTY;
                }
                nodes.push((c, n));
            }
        }
        own.push((class.id, nodes));
    }
    // Users of each e-class: e-nodes (of any e-class) that have it as an operand.
    let mut users: HashMap<Id, f64> = HashMap::new();
    if sharing == Sharing::Amortized {
        for (_, nodes) in &own {
            for (_, n) in nodes {
                let mut seen: Vec<Id> = Vec::new();
                for &c in n.children() {
                    if !seen.contains(&c) {
                        seen.push(c);
                        *users.entry(c).or_default() += 1.0;
                    }
                }
            }
        }
    }
    let share = |c: &Id| users.get(c).copied().unwrap_or(1.0).max(1.0);
    let mut best: HashMap<Id, (f64, usize)> = HashMap::new();
    loop {
        let mut changed = false;
        for (class, nodes) in &own {
            for (i, (c, n)) in nodes.iter().enumerate() {
                let mut total = 0.0;
                // An e-node never costs less than any of its operands: that keeps the choice
                // acyclic when shared operands are amortized.
                let mut largest: f64 = 0.0;
                let mut ok = true;
                for child in n.children() {
                    match best.get(child) {
                        Some((cc, _)) => {
                            total += cc / share(child);
                            largest = largest.max(*cc);
                        }
                        None => {
                            ok = false;
                            break;
                        }
                    }
                }
                if !ok {
                    continue;
                }
                let total = c + total.max(largest);
                let better = match best.get(class) {
                    None => true,
                    Some((old, _)) => total < *old,
                };
                if better {
                    best.insert(*class, (total, i));
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    let mut choice = HashMap::with_capacity(best.len());
    for (class, nodes) in own {
        if let Some(&(_, i)) = best.get(&class) {
            choice.insert(class, nodes[i].1.clone());
        }
    }
    choice
}

//! Graph IR → e-graph, and an extracted choice of e-nodes → Graph IR.
//!
//! Going in, every value becomes an e-class: inputs are `Input(k)` leaves, constants `Const(k)`
//! leaves (the tensor stays in the table, shared), ops their e-node. Coming back, the chosen
//! e-nodes reachable from the outputs are emitted in depth-first post-order from the outputs in
//! order, so the result does not depend on e-class numbering. Inputs keep their names and order;
//! a value keeps the name of the first original value (in definition order, outputs first) of
//! its e-class; every output keeps its name, through an identity `reshape` when its e-class is
//! already named otherwise (an output that became an input, or two outputs that became one).

use crate::analysis::{NnAnalysis, EG};
use crate::lang::{has_attr_child, head_of, Head, Nn};
use crate::OptError;
use egg::Id;
use nnc_ir::{Graph, GraphBuilder, Op, ValueId};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A graph in an e-graph.
pub struct Translation {
    pub egraph: EG,
    /// The e-class of each graph output, in order.
    pub roots: Vec<Id>,
    /// The e-class of every value the graph defines (inputs and node results), by value index.
    pub classes: Vec<Option<Id>>,
    /// The e-node each node result was added as (its e-class's original node), by value index;
    /// `Result(k)` projections for multi-result nodes.
    pub original: Vec<Option<Nn>>,
}

/// Adds `graph` (which must verify) to a new e-graph.
pub fn to_egraph(graph: &Graph) -> Result<Translation, OptError> {
    let analysis =
        NnAnalysis { inputs: graph.inputs.iter().map(|&id| graph.ty(id).clone()).collect(), ..NnAnalysis::default() };
    let mut egraph = EG::new(analysis);
    let mut classes: Vec<Option<Id>> = vec![None; graph.values.len()];
    let mut original: Vec<Option<Nn>> = vec![None; graph.values.len()];
    for (k, &v) in graph.inputs.iter().enumerate() {
        let node = Nn::leaf(Head::Input(k as u32));
        classes[v.index()] = Some(egraph.add(node.clone()));
        original[v.index()] = Some(node);
    }
    for (i, node) in graph.nodes.iter().enumerate() {
        let missing = || OptError::Internal(format!("node {}: an operand is not defined", graph.describe_node(i)));
        let enode = match &node.op {
            Op::Constant(t) => Nn::leaf(Head::Const(egraph.analysis.consts.intern(t))),
            op => {
                let mut children = Vec::with_capacity(node.inputs.len() + 1);
                if has_attr_child(op) {
                    let k = egraph.analysis.ops.intern(op);
                    children.push(egraph.add(Nn::leaf(Head::Attr(k))));
                }
                for v in &node.inputs {
                    children.push(classes.get(v.index()).copied().flatten().ok_or_else(missing)?);
                }
                Nn::new(head_of(op), children)
            }
        };
        let id = egraph.add(enode.clone());
        if node.outputs.len() == 1 {
            classes[node.outputs[0].index()] = Some(id);
            original[node.outputs[0].index()] = Some(enode);
        } else {
            for (k, out) in node.outputs.iter().enumerate() {
                let proj = Nn::new(Head::Result(k as u32), vec![id]);
                classes[out.index()] = Some(egraph.add(proj.clone()));
                original[out.index()] = Some(proj);
            }
        }
    }
    egraph.rebuild();
    let roots = graph
        .outputs
        .iter()
        .map(|v| classes.get(v.index()).copied().flatten())
        .collect::<Option<Vec<Id>>>()
        .ok_or_else(|| OptError::Internal("an output is not defined".into()))?;
    Ok(Translation { egraph, roots, classes, original })
}

/// Builds the graph made of the chosen e-node of each e-class reachable from `roots`.
/// `graph` is the original graph (for its name, inputs and value names), `classes` the e-class of
/// each of its values.
pub fn to_graph(
    graph: &Graph,
    egraph: &EG,
    roots: &[Id],
    classes: &[Option<Id>],
    choice: &HashMap<Id, Nn>,
) -> Result<Graph, OptError> {
    let err = |m: String| OptError::Internal(m);
    let mut b = GraphBuilder::new(&graph.name);
    let mut input_values = Vec::with_capacity(graph.inputs.len());
    for &id in &graph.inputs {
        let v = graph.value(id);
        input_values.push(b.input(&v.name, v.ty.dtype, v.ty.shape.clone()).map_err(OptError::Rebuild)?);
    }

    // Emit in post-order from the outputs, with an explicit stack (graphs can be deep).
    let mut emitted: HashMap<Id, Vec<ValueId>> = HashMap::new();
    for &root in roots {
        let root = egraph.find(root);
        let mut stack: Vec<(Id, bool)> = vec![(root, false)];
        let mut on_path: BTreeSet<Id> = BTreeSet::new();
        while let Some((class, expanded)) = stack.pop() {
            if emitted.contains_key(&class) {
                continue;
            }
            let node = choice.get(&class).ok_or_else(|| err(format!("no e-node chosen for e-class {class}")))?;
            if !expanded {
                if !on_path.insert(class) {
                    return Err(err(format!("the chosen e-nodes form a cycle at e-class {class}")));
                }
                stack.push((class, true));
                for &c in node.children.iter().rev() {
                    let c = egraph.find(c);
                    if !emitted.contains_key(&c) && !is_attr(node, c, egraph) {
                        stack.push((c, false));
                    }
                }
                continue;
            }
            on_path.remove(&class);
            let values = emit(&mut b, egraph, node, &emitted, &input_values)?;
            emitted.insert(class, values);
        }
    }

    // Names: outputs first, then every other value in definition order, each to its e-class's
    // value unless that value is already named.
    let mut wanted: BTreeMap<ValueId, String> = BTreeMap::new();
    let mut outputs = Vec::with_capacity(roots.len());
    for (k, &root) in roots.iter().enumerate() {
        let name = graph.name_of(graph.outputs[k]);
        let v =
            *emitted.get(&egraph.find(root)).and_then(|v| v.first()).ok_or_else(|| err("output not built".into()))?;
        let current = match input_values.iter().position(|&i| i == v) {
            Some(i) => Some(graph.name_of(graph.inputs[i])),
            None => wanted.get(&v).map(String::as_str),
        };
        let out = match current {
            Some(n) if n == name => v,
            None => {
                wanted.insert(v, name.to_string());
                v
            }
            // Named otherwise: return an identity copy under the output's name.
            Some(_) => {
                let shape = b.ty(v).shape.clone();
                let copy = b.reshape(v, shape).map_err(OptError::Rebuild)?;
                wanted.insert(copy, name.to_string());
                copy
            }
        };
        outputs.push(out);
    }
    let named_taken: BTreeSet<String> = wanted.values().cloned().collect();
    for (i, info) in graph.values.iter().enumerate() {
        let Some(class) = classes.get(i).copied().flatten() else { continue };
        if graph.inputs.contains(&ValueId(i as u32)) || named_taken.contains(&info.name) {
            continue;
        }
        // Only single-result values have one value to name.
        if let Some([v]) = emitted.get(&egraph.find(class)).map(|v| v.as_slice()) {
            if !input_values.contains(v) && !wanted.contains_key(v) {
                wanted.insert(*v, info.name.clone());
            }
        }
    }
    for o in outputs {
        b.output(o);
    }
    name_values(&mut b, graph, &input_values, &wanted)?;
    b.finish().map_err(OptError::Rebuild)
}

/// True if child `c` of `node` is its attribute leaf.
fn is_attr(node: &Nn, c: Id, egraph: &EG) -> bool {
    matches!(node.head, Head::Op(_)) && node.children.first().map(|&a| egraph.find(a)) == Some(c)
}

/// Adds the op of one chosen e-node, its operands already emitted.
fn emit(
    b: &mut GraphBuilder,
    egraph: &EG,
    node: &Nn,
    emitted: &HashMap<Id, Vec<ValueId>>,
    inputs: &[ValueId],
) -> Result<Vec<ValueId>, OptError> {
    let err = |m: &str| OptError::Internal(format!("{m} ({node:?})"));
    let operand = |c: &Id| -> Result<ValueId, OptError> {
        emitted.get(&egraph.find(*c)).and_then(|v| v.first().copied()).ok_or_else(|| err("operand not built"))
    };
    match &node.head {
        Head::Input(k) => Ok(vec![*inputs.get(*k as usize).ok_or_else(|| err("no such input"))?]),
        Head::Const(k) => {
            let t = egraph.analysis.consts.get(*k).ok_or_else(|| err("no such constant"))?;
            Ok(vec![b.constant(t.clone())])
        }
        Head::Attr(_) => Err(err("an attribute is not a value")),
        Head::Result(k) => {
            let tuple = node.children.first().ok_or_else(|| err("projection without operand"))?;
            let values = emitted.get(&egraph.find(*tuple)).ok_or_else(|| err("operand not built"))?;
            Ok(vec![*values.get(*k as usize).ok_or_else(|| err("no such result"))?])
        }
        _ => {
            let op = egraph.analysis.op_of(egraph, node).ok_or_else(|| err("no op"))?;
            let args = crate::analysis::operands(node).iter().map(operand).collect::<Result<Vec<_>, _>>()?;
            b.op(op, &args).map_err(OptError::Rebuild)
        }
    }
}

/// Gives values their wanted names and every other non-input value a fresh number that no wanted
/// or input name uses, in definition order.
fn name_values(
    b: &mut GraphBuilder,
    graph: &Graph,
    inputs: &[ValueId],
    wanted: &BTreeMap<ValueId, String>,
) -> Result<(), OptError> {
    let count = b.graph().values.len();
    let reserved: BTreeSet<&str> =
        wanted.values().map(String::as_str).chain(graph.inputs.iter().map(|&i| graph.name_of(i))).collect();
    // Move every non-input value to a name nothing else can have, then give the final names, so
    // that no rename meets a name still in use.
    let others: Vec<ValueId> = (0..count as u32).map(ValueId).filter(|v| !inputs.contains(v)).collect();
    for (k, &v) in others.iter().enumerate() {
        b.set_name(v, &format!("\u{0}opt{k}")).map_err(OptError::Rebuild)?;
    }
    let mut next = 0usize;
    for &v in &others {
        let name = match wanted.get(&v) {
            Some(n) => n.clone(),
            None => loop {
                let candidate = next.to_string();
                next += 1;
                if !reserved.contains(candidate.as_str()) {
                    break candidate;
                }
            },
        };
        b.set_name(v, &name).map_err(OptError::Rebuild)?;
    }
    Ok(())
}

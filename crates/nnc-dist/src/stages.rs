//! Splitting a graph at its collectives into stages: stretches of ordinary ops, each compiled as
//! one program (so fusion and scheduling see everything between two communications), and the
//! collectives between them, run by an engine.
//!
//! A node's stage is the number of collectives on the longest path from the inputs to it: stage
//! 0 computes everything that needs no communication, then the collectives whose operands it
//! made run, then stage 1, and so on. Leaves (constants, `iota`) belong to no stage: each stage
//! that reads one makes its own copy, so weights are not passed between stages.

use nnc_ir::{Collective, Graph, Node, Op, ValueId};
use std::collections::{BTreeSet, HashMap};

/// One step of a split program.
#[derive(Clone, Debug)]
pub enum Step {
    /// A graph of ordinary ops: its inputs and outputs name values of the whole graph by their
    /// ids there (`inputs[k]` is the stage graph's input `k`).
    Compute { graph: Graph, inputs: Vec<ValueId>, outputs: Vec<ValueId> },
    /// A collective reading `input` and writing `output` (ids in the whole graph).
    Collective { collective: Collective, input: ValueId, output: ValueId },
}

/// The steps of `graph` in the order every rank runs them.
pub fn split(graph: &Graph) -> Vec<Step> {
    let producers = graph.producers();
    let is_leaf = |v: ValueId| producers[v.index()].is_some_and(|n| graph.nodes[n].inputs.is_empty());
    // The stage after which each value is available, and each node's stage.
    let mut ready: Vec<usize> = vec![0; graph.values.len()];
    let mut stage_of: Vec<usize> = vec![0; graph.nodes.len()];
    for (i, node) in graph.nodes.iter().enumerate() {
        let s = node.inputs.iter().map(|v| ready[v.index()]).max().unwrap_or(0);
        stage_of[i] = s;
        let after = if matches!(node.op, Op::Collective(_)) { s + 1 } else { s };
        for v in &node.outputs {
            ready[v.index()] = after;
        }
    }
    let stages = stage_of.iter().copied().max().map_or(0, |m| m + 1);
    // Values some later step or the caller reads: what a compute stage must hand out.
    let mut read_outside: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); graph.values.len()];
    for (i, node) in graph.nodes.iter().enumerate() {
        let reader = if matches!(node.op, Op::Collective(_)) { usize::MAX } else { stage_of[i] };
        for v in &node.inputs {
            read_outside[v.index()].insert(reader);
        }
    }
    for v in &graph.outputs {
        read_outside[v.index()].insert(usize::MAX);
    }
    let mut steps = Vec::new();
    for s in 0..stages {
        let members: Vec<usize> = (0..graph.nodes.len())
            .filter(|&i| {
                stage_of[i] == s && !graph.nodes[i].inputs.is_empty() && !matches!(graph.nodes[i].op, Op::Collective(_))
            })
            .collect();
        // Leaves read by collectives or the caller are made by stage 0.
        let leaves_out: Vec<usize> = if s == 0 {
            (0..graph.nodes.len())
                .filter(|&i| graph.nodes[i].inputs.is_empty())
                .filter(|&i| graph.nodes[i].outputs.iter().any(|v| read_outside[v.index()].contains(&usize::MAX)))
                .collect()
        } else {
            Vec::new()
        };
        if let Some(step) = compute_step(graph, s, &members, &leaves_out, &producers, &is_leaf, &read_outside) {
            steps.push(step);
        }
        for (i, node) in graph.nodes.iter().enumerate() {
            if let (Op::Collective(c), true) = (&node.op, stage_of[i] == s) {
                steps.push(Step::Collective { collective: c.clone(), input: node.inputs[0], output: node.outputs[0] });
            }
        }
    }
    steps
}

/// The compute step of stage `s` from its member nodes, or `None` if it has nothing to hand out.
#[allow(clippy::too_many_arguments)]
fn compute_step(
    graph: &Graph,
    s: usize,
    members: &[usize],
    leaves_out: &[usize],
    producers: &[Option<usize>],
    is_leaf: &dyn Fn(ValueId) -> bool,
    read_outside: &[BTreeSet<usize>],
) -> Option<Step> {
    let mut g = Graph::new(&format!("{}_stage{s}", graph.name));
    let mut local: HashMap<ValueId, ValueId> = HashMap::new();
    let mut inputs = Vec::new();
    let copy_value = |g: &mut Graph, v: ValueId| g.add_value(graph.name_of(v).to_string(), graph.ty(v).clone());
    let emit = |g: &mut Graph, local: &mut HashMap<ValueId, ValueId>, inputs: &mut Vec<ValueId>, node: &Node| {
        let mut operands = Vec::new();
        for &v in &node.inputs {
            let id = match local.get(&v) {
                Some(&id) => id,
                None if is_leaf(v) => {
                    // A private copy of the leaf.
                    let leaf = &graph.nodes[producers[v.index()].unwrap_or_default()];
                    let id = copy_value(g, v);
                    g.nodes.push(Node { op: leaf.op.clone(), inputs: vec![], outputs: vec![id] });
                    local.insert(v, id);
                    id
                }
                None => {
                    let id = copy_value(g, v);
                    g.inputs.push(id);
                    inputs.push(v);
                    local.insert(v, id);
                    id
                }
            };
            operands.push(id);
        }
        let outputs: Vec<ValueId> =
            node.outputs.iter().map(|&v| *local.entry(v).or_insert_with(|| copy_value(g, v))).collect();
        g.nodes.push(Node { op: node.op.clone(), inputs: operands, outputs });
    };
    for &i in leaves_out.iter().chain(members) {
        emit(&mut g, &mut local, &mut inputs, &graph.nodes[i]);
    }
    let handed_out = |v: ValueId| read_outside[v.index()].iter().any(|&reader| reader != s);
    let mut outputs = Vec::new();
    for &i in leaves_out.iter().chain(members) {
        for &v in &graph.nodes[i].outputs {
            if handed_out(v) && !outputs.contains(&v) {
                g.outputs.push(local[&v]);
                outputs.push(v);
            }
        }
    }
    (!outputs.is_empty()).then_some(Step::Compute { graph: g, inputs, outputs })
}

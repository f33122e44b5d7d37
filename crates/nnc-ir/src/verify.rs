//! The verifier: rejects malformed graphs with a message naming the node and operand.
//!
//! It checks what every later pass relies on: value ids in range, every value defined exactly
//! once, operands defined before use (reporting cycles as cycles), unique names, arity, and that
//! each node's recorded result types are what shape inference gives for its operands.

use crate::dim::is_symbol_name;
use crate::{infer, Graph, IrError, ValueId};
use std::collections::HashSet;

/// Checks `graph`; `Ok` means every pass and the interpreter may rely on it.
pub fn verify(graph: &Graph) -> Result<(), IrError> {
    let graph_err = |message: String| IrError::Graph { graph: graph.name.clone(), message };
    let n = graph.values.len();
    let in_range = |id: &ValueId| id.index() < n;

    let mut names = HashSet::new();
    for v in &graph.values {
        if v.name.is_empty() {
            return Err(graph_err("a value has an empty name".into()));
        }
        if !names.insert(v.name.as_str()) {
            return Err(graph_err(format!("the value name `%{}` is used twice", v.name)));
        }
        for d in &v.ty.shape {
            if d.as_const().is_some_and(|c| c < 0) {
                return Err(graph_err(format!("value `%{}` has a negative dimension in {}", v.name, v.ty)));
            }
            if let Some(s) = d.symbols().iter().find(|s| !is_symbol_name(s)) {
                return Err(graph_err(format!("value `%{}` has an invalid symbol `{s}`", v.name)));
            }
        }
        crate::size::check_type(&v.ty).map_err(|m| graph_err(format!("value `%{}`: {m}", v.name)))?;
    }

    // Where each value is defined: Some(None) for graph inputs, Some(Some(i)) for node i.
    let mut defined_by: Vec<Option<Option<usize>>> = vec![None; n];
    for id in &graph.inputs {
        if !in_range(id) {
            return Err(graph_err(format!("input {id:?} is not a value of the graph")));
        }
        if defined_by[id.index()].replace(None).is_some() {
            return Err(graph_err(format!("input `%{}` is listed twice", graph.name_of(*id))));
        }
    }
    for (i, node) in graph.nodes.iter().enumerate() {
        let node_err =
            |message: String| IrError::Node { graph: graph.name.clone(), node: graph.describe_node(i), message };
        if node.outputs.is_empty() {
            return Err(node_err("defines no value".into()));
        }
        for id in node.inputs.iter().chain(&node.outputs) {
            if !in_range(id) {
                return Err(node_err(format!("refers to {id:?}, which is not a value of the graph")));
            }
        }
        for id in &node.outputs {
            if defined_by[id.index()].replace(Some(i)).is_some() {
                return Err(node_err(format!("redefines `%{}`", graph.name_of(*id))));
            }
        }
    }

    for (i, node) in graph.nodes.iter().enumerate() {
        let node_err =
            |message: String| IrError::Node { graph: graph.name.clone(), node: graph.describe_node(i), message };
        for (k, id) in node.inputs.iter().enumerate() {
            match defined_by[id.index()] {
                None => return Err(node_err(format!("operand {k} `%{}` is never defined", graph.name_of(*id)))),
                Some(Some(j)) if j >= i => {
                    let what =
                        if depends_on(graph, j, i) { "is part of a cycle" } else { "is used before its definition" };
                    return Err(node_err(format!("operand {k} `%{}` {what}", graph.name_of(*id))));
                }
                _ => {}
            }
        }
        let types: Vec<_> = node.inputs.iter().map(|&v| graph.ty(v)).collect();
        let expected = infer(&node.op, &types).map_err(node_err)?;
        if expected.len() != node.outputs.len() {
            return Err(node_err(format!(
                "`{}` defines {} value(s), the node lists {}",
                node.op.name(),
                expected.len(),
                node.outputs.len()
            )));
        }
        for (k, (want, &id)) in expected.iter().zip(&node.outputs).enumerate() {
            let found = graph.ty(id);
            if want != found {
                return Err(node_err(format!(
                    "result {k} `%{}` is declared {found} but `{}` gives {want}",
                    graph.name_of(id),
                    node.op.name()
                )));
            }
        }
    }

    if graph.outputs.is_empty() {
        return Err(graph_err("has no outputs".into()));
    }
    for id in &graph.outputs {
        if !in_range(id) || defined_by[id.index()].is_none() {
            return Err(graph_err(format!("output {id:?} is never defined")));
        }
    }
    Ok(())
}

/// True if node `from` (transitively) uses a value defined by node `target`.
fn depends_on(graph: &Graph, from: usize, target: usize) -> bool {
    let producers = graph.producers();
    let mut stack = vec![from];
    let mut seen = HashSet::new();
    while let Some(i) = stack.pop() {
        if i == target {
            return true;
        }
        if !seen.insert(i) {
            continue;
        }
        for v in &graph.nodes[i].inputs {
            if let Some(Some(p)) = producers.get(v.index()) {
                stack.push(*p);
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DType, GraphBuilder, Node, Op, TensorType, UnaryOp};

    fn two_node_graph() -> Graph {
        let mut b = GraphBuilder::new("g");
        let x = b.input("x", DType::F32, [2]).unwrap();
        let y = b.exp(x).unwrap();
        let z = b.relu(y).unwrap();
        b.output(z);
        b.finish().unwrap()
    }

    #[test]
    fn accepts_a_built_graph() {
        verify(&two_node_graph()).unwrap();
    }

    #[test]
    fn reports_use_before_definition() {
        let mut g = two_node_graph();
        g.nodes.swap(0, 1);
        let e = verify(&g).unwrap_err().to_string();
        assert!(e.contains("used before its definition"), "{e}");
    }

    #[test]
    fn reports_cycles() {
        let mut g = two_node_graph();
        // exp now reads relu's result, and relu reads exp's.
        g.nodes[0].inputs[0] = g.nodes[1].outputs[0];
        let e = verify(&g).unwrap_err().to_string();
        assert!(e.contains("cycle"), "{e}");
    }

    #[test]
    fn reports_wrong_declared_type() {
        let mut g = two_node_graph();
        let out = g.nodes[0].outputs[0];
        g.values[out.index()].ty = TensorType::new(DType::F32, [3]);
        let e = verify(&g).unwrap_err().to_string();
        assert!(e.contains("declared f32[3] but `exp` gives f32[2]"), "{e}");
    }

    #[test]
    fn reports_wrong_arity_and_dtype() {
        let mut g = two_node_graph();
        g.nodes[0].inputs.push(g.inputs[0]);
        assert!(verify(&g).unwrap_err().to_string().contains("expects 1 operand"));
        let mut g = two_node_graph();
        g.nodes[0].op = Op::Unary(UnaryOp::Not);
        assert!(verify(&g).unwrap_err().to_string().contains("does not accept"));
    }

    #[test]
    fn reports_out_of_range_and_duplicate_definitions() {
        let mut g = two_node_graph();
        g.nodes[1].inputs[0] = ValueId(99);
        assert!(verify(&g).unwrap_err().to_string().contains("not a value"));
        let mut g = two_node_graph();
        let again =
            Node { op: Op::Unary(UnaryOp::Exp), inputs: vec![g.inputs[0]], outputs: g.nodes[0].outputs.clone() };
        g.nodes.push(again);
        assert!(verify(&g).unwrap_err().to_string().contains("redefines"));
    }
}

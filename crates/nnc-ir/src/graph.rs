//! The Graph IR container: values, nodes in definition order, inputs and outputs.
//!
//! A graph is in SSA form: every value is defined once, by a graph input or by one node, and
//! nodes are stored in an order where every operand is defined before it is used.

use crate::{IrError, Op, TensorData, TensorType};
use std::collections::HashMap;
use std::fmt;

/// Index of a value in [`Graph::values`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValueId(pub u32);

impl ValueId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Debug for ValueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.0)
    }
}

/// A value's name (unique in its graph, printed as `%name`) and type.
#[derive(Clone, Debug, PartialEq)]
pub struct ValueInfo {
    pub name: String,
    pub ty: TensorType,
}

/// One operation applied to operands, defining one or more results.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub op: Op,
    pub inputs: Vec<ValueId>,
    pub outputs: Vec<ValueId>,
}

/// A dataflow graph of tensor operations.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Graph {
    pub name: String,
    pub values: Vec<ValueInfo>,
    pub nodes: Vec<Node>,
    pub inputs: Vec<ValueId>,
    pub outputs: Vec<ValueId>,
}

impl Graph {
    pub fn new(name: &str) -> Graph {
        Graph { name: name.to_string(), ..Graph::default() }
    }

    /// Adds a value (not yet defined by anything) and returns its id.
    pub fn add_value(&mut self, name: String, ty: TensorType) -> ValueId {
        self.values.push(ValueInfo { name, ty });
        ValueId((self.values.len() - 1) as u32)
    }

    pub fn value(&self, id: ValueId) -> &ValueInfo {
        &self.values[id.index()]
    }

    pub fn ty(&self, id: ValueId) -> &TensorType {
        &self.values[id.index()].ty
    }

    pub fn name_of(&self, id: ValueId) -> &str {
        &self.values[id.index()].name
    }

    /// The value with this name, if any.
    pub fn find(&self, name: &str) -> Option<ValueId> {
        self.values.iter().position(|v| v.name == name).map(|i| ValueId(i as u32))
    }

    /// For each value, the index of the node that defines it (`None` for inputs and orphans).
    pub fn producers(&self) -> Vec<Option<usize>> {
        let mut out = vec![None; self.values.len()];
        for (i, node) in self.nodes.iter().enumerate() {
            for &o in &node.outputs {
                if let Some(slot) = out.get_mut(o.index()) {
                    *slot = Some(i);
                }
            }
        }
        out
    }

    /// For each value, how many times nodes and graph outputs use it.
    pub fn use_counts(&self) -> Vec<usize> {
        let mut out = vec![0; self.values.len()];
        for id in self.nodes.iter().flat_map(|n| n.inputs.iter()).chain(self.outputs.iter()) {
            if let Some(slot) = out.get_mut(id.index()) {
                *slot += 1;
            }
        }
        out
    }

    /// A short description of node `i` for messages: `%h = matmul(%x, %w)`.
    pub fn describe_node(&self, i: usize) -> String {
        let node = &self.nodes[i];
        let name = |id: &ValueId| {
            self.values
                .get(id.index())
                .map(|v| format!("%{}", v.name))
                .unwrap_or_else(|| format!("<bad value {}>", id.0))
        };
        let outs: Vec<String> = node.outputs.iter().map(name).collect();
        let ins: Vec<String> = node.inputs.iter().map(name).collect();
        format!("{} = {}({})", outs.join(", "), node.op.name(), ins.join(", "))
    }

    /// Renumbers values in definition order (inputs, then node results) and drops values that
    /// nothing defines. Two graphs that differ only in value numbering become equal.
    pub fn canonicalize(&mut self) {
        let mut map: HashMap<ValueId, ValueId> = HashMap::new();
        let mut values = Vec::with_capacity(self.values.len());
        let order = self.inputs.iter().chain(self.nodes.iter().flat_map(|n| n.outputs.iter()));
        for &id in order {
            if let Some(v) = self.values.get(id.index()) {
                map.entry(id).or_insert_with(|| {
                    values.push(v.clone());
                    ValueId((values.len() - 1) as u32)
                });
            }
        }
        let remap = |ids: &mut Vec<ValueId>| {
            for id in ids.iter_mut() {
                if let Some(&new) = map.get(id) {
                    *id = new;
                }
            }
        };
        remap(&mut self.inputs);
        remap(&mut self.outputs);
        for node in &mut self.nodes {
            remap(&mut node.inputs);
            remap(&mut node.outputs);
        }
        self.values = values;
    }

    /// This graph with the named inputs replaced by constants holding `values` (for instance
    /// trained parameters, to export a model that takes only its data). Each tensor must have
    /// its input's dtype and (static) shape.
    pub fn freeze_inputs(&self, values: &[(&str, TensorData)]) -> Result<Graph, IrError> {
        let fail = |message: String| IrError::Graph { graph: self.name.clone(), message };
        let mut g = self.clone();
        let mut constants = Vec::new();
        for (name, t) in values {
            let id = self
                .find(name)
                .filter(|id| g.inputs.contains(id))
                .ok_or_else(|| fail(format!("no input `%{name}`")))?;
            let ty = self.ty(id);
            let fits = ty.dtype == t.dtype() && ty.static_shape().is_some_and(|s| s == t.shape());
            if !fits {
                return Err(fail(format!("input `%{name}` is {ty}; the value given is {}{:?}", t.dtype(), t.shape())));
            }
            g.inputs.retain(|&i| i != id);
            constants.push(Node { op: Op::Constant(t.clone()), inputs: vec![], outputs: vec![id] });
        }
        constants.append(&mut g.nodes);
        g.nodes = constants;
        crate::verify(&g)?;
        Ok(g)
    }

    /// Drops the nodes none of whose results reach an output (the inputs stay: they are the
    /// graph's interface).
    pub fn prune(&mut self) {
        let mut live = vec![false; self.values.len()];
        for v in &self.outputs {
            live[v.index()] = true;
        }
        let mut keep = vec![false; self.nodes.len()];
        for (i, node) in self.nodes.iter().enumerate().rev() {
            if node.outputs.iter().any(|v| live[v.index()]) {
                keep[i] = true;
                for v in &node.inputs {
                    live[v.index()] = true;
                }
            }
        }
        let mut k = keep.into_iter();
        self.nodes.retain(|_| k.next().unwrap_or(false));
    }
}

#[cfg(test)]
mod tests {
    use crate::{DType, GraphBuilder, TensorData};

    #[test]
    fn freezing_inputs_makes_constants_and_checks_their_types() {
        let mut b = GraphBuilder::new("affine");
        let x = b.input("x", DType::F32, [2usize]).unwrap();
        let w = b.input("w", DType::F32, [2usize]).unwrap();
        let y = b.mul(x, w).unwrap();
        let unused = b.add(x, x).unwrap();
        b.output(y);
        let _ = unused;
        let mut g = b.finish().unwrap();
        let frozen = g.freeze_inputs(&[("w", TensorData::from_vec(vec![2], &[3.0f32, 4.0]))]).unwrap();
        assert_eq!(frozen.inputs.len(), 1);
        let err = g.freeze_inputs(&[("w", TensorData::from_vec(vec![3], &[0.0f32; 3]))]).unwrap_err().to_string();
        assert!(err.contains("input `%w` is f32[2]"), "{err}");
        assert!(g
            .freeze_inputs(&[("y", TensorData::scalar(0.0f32))])
            .unwrap_err()
            .to_string()
            .contains("no input `%y`"));
        g.prune();
        assert_eq!(g.nodes.len(), 1, "the add reaches no output");
    }
}

//! ONNX models mutated through their protobuf structure: dimensions, element types, attribute
//! values, initializer sizes and data, external-data references, wiring between nodes, op
//! types, opset versions and the graphs nested in `If`/`Loop`/`Scan` attributes.

use super::{interesting, interesting_float};
use nnc_onnx::proto::tensor_shape_proto::dimension::Value as DimValue;
use nnc_onnx::proto::tensor_shape_proto::Dimension;
use nnc_onnx::proto::type_proto::Value as TypeValue;
use nnc_onnx::proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, StringStringEntryProto, TensorProto, ValueInfoProto,
};
use prost::Message;

/// Op types the mutator may swap in (a node keeps its operands and attributes).
const OP_TYPES: [&str; 24] = [
    "Add",
    "MatMul",
    "Conv",
    "Reshape",
    "Transpose",
    "Gather",
    "Concat",
    "Slice",
    "Expand",
    "ConstantOfShape",
    "Range",
    "Tile",
    "Pad",
    "Resize",
    "TopK",
    "ReduceSum",
    "Softmax",
    "LSTM",
    "Loop",
    "If",
    "Einsum",
    "Split",
    "Squeeze",
    "NonZero",
];

/// Decodes `bytes`, applies one to three structural mutations, and encodes the result; a
/// model that does not decode is damaged as bytes instead.
pub fn mutate(rng: &mut fastrand::Rng, bytes: &[u8]) -> (Vec<u8>, Vec<String>) {
    let Ok(mut model) = ModelProto::decode(bytes) else {
        let mut data = bytes.to_vec();
        let what = super::bytes::damage(rng, &mut data);
        return (data, vec![what]);
    };
    let mut done = Vec::new();
    for _ in 0..rng.usize(1..=3) {
        done.push(mutate_model(rng, &mut model));
    }
    let mut out = model.encode_to_vec();
    if rng.u8(..10) == 0 {
        done.push(super::bytes::damage(rng, &mut out));
    }
    (out, done)
}

fn mutate_model(rng: &mut fastrand::Rng, model: &mut ModelProto) -> String {
    if rng.u8(..12) == 0 {
        let version = interesting(rng).clamp(-1, 1_000_000_000);
        match model.opset_import.first_mut() {
            Some(o) => o.version = Some(version),
            None => return "no opset to change".into(),
        }
        return format!("set the default opset to {version}");
    }
    let Some(graph) = model.graph.as_mut() else { return "no graph".into() };
    mutate_graph(rng, graph, 0)
}

/// One mutation somewhere in `graph` or (sometimes) in a graph nested in its attributes.
fn mutate_graph(rng: &mut fastrand::Rng, graph: &mut GraphProto, depth: usize) -> String {
    if depth < 3 && rng.u8(..4) == 0 {
        let nested: Vec<(usize, usize)> = graph
            .node
            .iter()
            .enumerate()
            .flat_map(|(n, node)| {
                node.attribute.iter().enumerate().filter(|(_, a)| a.g.is_some()).map(move |(a, _)| (n, a))
            })
            .collect();
        if !nested.is_empty() {
            let (n, a) = nested[rng.usize(..nested.len())];
            if let Some(g) = graph.node[n].attribute[a].g.as_mut() {
                return format!("in the subgraph of node {n}: {}", mutate_graph(rng, g, depth + 1));
            }
        }
    }
    match rng.u8(..11) {
        0 | 1 => mutate_value_type(rng, graph),
        2 | 3 => mutate_attribute(rng, graph),
        4 | 5 => mutate_initializer(rng, graph),
        6 => rewire(rng, graph),
        7 => swap_op(rng, graph),
        8 => edit_nodes(rng, graph),
        9 => edit_interface(rng, graph),
        _ => add_constant_of_huge_shape(rng, graph),
    }
}

/// A dimension or element type of a graph input, output or annotated value.
fn mutate_value_type(rng: &mut fastrand::Rng, graph: &mut GraphProto) -> String {
    let count = graph.input.len() + graph.output.len() + graph.value_info.len();
    if count == 0 {
        return "no typed value".into();
    }
    let k = rng.usize(..count);
    let v: &mut ValueInfoProto = if k < graph.input.len() {
        &mut graph.input[k]
    } else if k < graph.input.len() + graph.output.len() {
        &mut graph.output[k - graph.input.len()]
    } else {
        &mut graph.value_info[k - graph.input.len() - graph.output.len()]
    };
    let name = v.name.clone().unwrap_or_default();
    let Some(TypeValue::TensorType(t)) = v.r#type.as_mut().and_then(|t| t.value.as_mut()) else {
        return format!("`{name}` has no tensor type");
    };
    if rng.u8(..4) == 0 {
        let elem = rng.i32(0..26);
        t.elem_type = Some(elem);
        return format!("set the element type of `{name}` to {elem}");
    }
    let shape = t.shape.get_or_insert_with(Default::default);
    match rng.u8(..5) {
        0 if !shape.dim.is_empty() => {
            let i = rng.usize(..shape.dim.len());
            shape.dim.remove(i);
            format!("removed dimension {i} of `{name}`")
        }
        1 => {
            shape.dim.push(Dimension { denotation: None, value: Some(DimValue::DimValue(interesting(rng))) });
            format!("added a dimension to `{name}`")
        }
        2 if !shape.dim.is_empty() => {
            let i = rng.usize(..shape.dim.len());
            shape.dim[i].value = Some(DimValue::DimParam(["N", "batch", "", "0", "a b"][rng.usize(..5)].into()));
            format!("made dimension {i} of `{name}` symbolic")
        }
        _ if !shape.dim.is_empty() => {
            let i = rng.usize(..shape.dim.len());
            let d = interesting(rng);
            shape.dim[i].value = Some(DimValue::DimValue(d));
            format!("set dimension {i} of `{name}` to {d}")
        }
        _ => {
            t.shape = None;
            format!("removed the shape of `{name}`")
        }
    }
}

/// An attribute of a node: its value, its type, or its presence.
fn mutate_attribute(rng: &mut fastrand::Rng, graph: &mut GraphProto) -> String {
    let with: Vec<usize> = (0..graph.node.len()).filter(|&n| !graph.node[n].attribute.is_empty()).collect();
    if with.is_empty() {
        return add_attribute(rng, graph);
    }
    let n = with[rng.usize(..with.len())];
    let node = &mut graph.node[n];
    let a = rng.usize(..node.attribute.len());
    let attr = &mut node.attribute[a];
    let name = format!("{}.{}", node.op_type.clone().unwrap_or_default(), attr.name.clone().unwrap_or_default());
    match rng.u8(..8) {
        0 => {
            node.attribute.remove(a);
            format!("removed attribute {name}")
        }
        1 => {
            let t = rng.i32(0..16);
            attr.r#type = Some(t);
            format!("set the type of attribute {name} to {t}")
        }
        2 => {
            let f = interesting_float(rng) as f32;
            attr.f = Some(f);
            attr.floats.iter_mut().for_each(|x| *x = f);
            format!("set the floats of attribute {name} to {f}")
        }
        3 => {
            let len = [0, 1, 2, 5, 64][rng.usize(..5)];
            attr.ints = (0..len).map(|_| interesting(rng)).collect();
            format!("set attribute {name} to {len} interesting ints")
        }
        4 => {
            if let Some(t) = attr.t.as_mut() {
                return format!("in the tensor of attribute {name}: {}", mutate_tensor(rng, t));
            }
            attr.s = Some(b"\xff\x00nonsense".to_vec().into());
            format!("set the string of attribute {name} to bytes that are not UTF-8")
        }
        _ => {
            let v = interesting(rng);
            attr.i = Some(v);
            if !attr.ints.is_empty() {
                let k = rng.usize(..attr.ints.len());
                attr.ints[k] = v;
            }
            format!("set an int of attribute {name} to {v}")
        }
    }
}

fn add_attribute(rng: &mut fastrand::Rng, graph: &mut GraphProto) -> String {
    let Some(node) = pick_node(rng, graph) else { return "no node".into() };
    let name = ["axis", "perm", "pads", "strides", "to", "value", "group", "then_branch"][rng.usize(..8)];
    let v = interesting(rng);
    node.attribute.push(AttributeProto { name: Some(name.into()), r#type: Some(2), i: Some(v), ..Default::default() });
    format!("added attribute {name} = {v}")
}

/// An initializer's dimensions, element type, data or data location.
fn mutate_initializer(rng: &mut fastrand::Rng, graph: &mut GraphProto) -> String {
    if graph.initializer.is_empty() {
        return mutate_attribute(rng, graph);
    }
    let k = rng.usize(..graph.initializer.len());
    let t = &mut graph.initializer[k];
    let name = t.name.clone().unwrap_or_default();
    format!("in initializer `{name}`: {}", mutate_tensor(rng, t))
}

/// One change to a tensor: dims, type, data length, or external data.
pub fn mutate_tensor(rng: &mut fastrand::Rng, t: &mut TensorProto) -> String {
    match rng.u8(..7) {
        0 | 1 => {
            if t.dims.is_empty() || rng.bool() {
                t.dims.push(interesting(rng));
                "added a dimension".into()
            } else {
                let i = rng.usize(..t.dims.len());
                let d = interesting(rng);
                t.dims[i] = d;
                format!("set dimension {i} to {d}")
            }
        }
        2 => {
            let ty = rng.i32(0..26);
            t.data_type = Some(ty);
            format!("set the data type to {ty}")
        }
        3 => {
            let raw = t.raw_data.get_or_insert_with(Default::default);
            let mut v = raw.to_vec();
            let what = super::bytes::damage(rng, &mut v);
            *raw = v.into();
            format!("raw data: {what}")
        }
        4 => {
            t.raw_data = None;
            t.float_data = (0..rng.usize(0..5)).map(|_| interesting_float(rng) as f32).collect();
            t.int64_data = (0..rng.usize(0..5)).map(|_| interesting(rng)).collect();
            "moved the data into typed fields of another length".into()
        }
        5 => {
            let location =
                ["nonexistent.bin", "/dev/zero", "../../etc/hostname", "model.onnx", "", "/"][rng.usize(..6)];
            let entry = |k: &str, v: String| StringStringEntryProto { key: Some(k.into()), value: Some(v) };
            t.data_location = Some(1);
            t.external_data = vec![
                entry("location", location.into()),
                entry("offset", interesting(rng).to_string()),
                entry("length", interesting(rng).to_string()),
            ];
            t.raw_data = None;
            format!("made the data external, in `{location}`")
        }
        _ => {
            t.segment = Some(nnc_onnx::proto::tensor_proto::Segment {
                begin: Some(interesting(rng)),
                end: Some(interesting(rng)),
            });
            "added a segment".into()
        }
    }
}

/// A node operand or result renamed to another value's name (or a new one, or none).
fn rewire(rng: &mut fastrand::Rng, graph: &mut GraphProto) -> String {
    let names: Vec<String> = graph
        .node
        .iter()
        .flat_map(|n| n.input.iter().chain(&n.output).cloned())
        .chain(graph.input.iter().filter_map(|i| i.name.clone()))
        .collect();
    let Some(node) = pick_node(rng, graph) else { return "no node".into() };
    let new = match rng.u8(..5) {
        0 => String::new(),
        1 => "nowhere".into(),
        _ if !names.is_empty() => names[rng.usize(..names.len())].clone(),
        _ => "nowhere".into(),
    };
    if node.input.is_empty() || rng.u8(..4) == 0 {
        if node.output.is_empty() {
            return "a node without operands or results".into();
        }
        let k = rng.usize(..node.output.len());
        node.output[k] = new.clone();
        format!("renamed result {k} of a {} node to `{new}`", node.op_type())
    } else {
        let k = rng.usize(..node.input.len());
        node.input[k] = new.clone();
        format!("connected operand {k} of a {} node to `{new}`", node.op_type())
    }
}

fn swap_op(rng: &mut fastrand::Rng, graph: &mut GraphProto) -> String {
    let Some(node) = pick_node(rng, graph) else { return "no node".into() };
    let from = node.op_type().to_string();
    let to = OP_TYPES[rng.usize(..OP_TYPES.len())];
    node.op_type = Some(to.into());
    if rng.u8(..8) == 0 {
        node.domain = Some("com.example".into());
    }
    format!("replaced a {from} node by {to}")
}

/// Nodes removed, duplicated or reordered.
fn edit_nodes(rng: &mut fastrand::Rng, graph: &mut GraphProto) -> String {
    if graph.node.is_empty() {
        return "no node".into();
    }
    let i = rng.usize(..graph.node.len());
    match rng.u8(..3) {
        0 => {
            let n = graph.node.remove(i);
            format!("removed node {i} ({})", n.op_type())
        }
        1 => {
            let n: NodeProto = graph.node[i].clone();
            graph.node.insert(i, n);
            format!("duplicated node {i}")
        }
        _ => {
            let j = rng.usize(..graph.node.len());
            graph.node.swap(i, j);
            format!("swapped nodes {i} and {j}")
        }
    }
}

/// Graph inputs or outputs removed or duplicated.
fn edit_interface(rng: &mut fastrand::Rng, graph: &mut GraphProto) -> String {
    let outputs = rng.bool();
    let list = if outputs { &mut graph.output } else { &mut graph.input };
    let what = if outputs { "output" } else { "input" };
    if list.is_empty() {
        return format!("no {what}");
    }
    let i = rng.usize(..list.len());
    if rng.bool() {
        list.remove(i);
        format!("removed graph {what} {i}")
    } else {
        let v = list[i].clone();
        list.push(v);
        format!("listed graph {what} {i} twice")
    }
}

/// A `ConstantOfShape` of a huge shape feeding an existing node: the 117-byte model that once
/// exhausted memory, in every seed.
fn add_constant_of_huge_shape(rng: &mut fastrand::Rng, graph: &mut GraphProto) -> String {
    let dims: Vec<i64> = (0..rng.usize(1..4)).map(|_| interesting(rng)).collect();
    let shape = TensorProto {
        dims: vec![dims.len() as i64],
        data_type: Some(7),
        int64_data: dims.clone(),
        ..Default::default()
    };
    let constant = |output: &str, t: TensorProto| NodeProto {
        output: vec![output.into()],
        op_type: Some("Constant".into()),
        attribute: vec![AttributeProto {
            name: Some("value".into()),
            r#type: Some(4),
            t: Some(t),
            ..Default::default()
        }],
        ..Default::default()
    };
    let fill = NodeProto {
        input: vec!["fuzz_shape".into()],
        output: vec!["fuzz_big".into()],
        op_type: Some("ConstantOfShape".into()),
        ..Default::default()
    };
    graph.node.insert(0, fill);
    graph.node.insert(0, constant("fuzz_shape", shape));
    if let Some(node) = graph.node.get_mut(2..).and_then(|rest| {
        let n = rest.len();
        (n > 0).then(|| &mut rest[rng.usize(..n)])
    }) {
        if !node.input.is_empty() {
            let k = rng.usize(..node.input.len());
            node.input[k] = "fuzz_big".into();
        }
    }
    format!("fed a ConstantOfShape of shape {dims:?} into a node")
}

fn pick_node<'g>(rng: &mut fastrand::Rng, graph: &'g mut GraphProto) -> Option<&'g mut NodeProto> {
    let n = graph.node.len();
    (n > 0).then(|| &mut graph.node[rng.usize(..n)])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> Vec<u8> {
        let input = ValueInfoProto { name: Some("x".into()), ..Default::default() };
        let node = NodeProto {
            input: vec!["x".into()],
            output: vec!["y".into()],
            op_type: Some("Relu".into()),
            ..Default::default()
        };
        let graph = GraphProto { node: vec![node], input: vec![input], ..Default::default() };
        ModelProto { graph: Some(graph), ..Default::default() }.encode_to_vec()
    }

    #[test]
    fn mutants_are_reproducible_and_described() {
        let seed = model();
        for s in 0..300 {
            let (a, what) = mutate(&mut fastrand::Rng::with_seed(s), &seed);
            let (b, _) = mutate(&mut fastrand::Rng::with_seed(s), &seed);
            assert_eq!(a, b);
            assert!(!what.is_empty() && what.iter().all(|w| !w.is_empty()));
        }
    }
}

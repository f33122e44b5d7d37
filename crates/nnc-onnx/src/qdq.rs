//! Post-training static quantization: an f32 ONNX model rewritten in QDQ form, the form ONNX
//! Runtime's tools write and most int8 models in the wild use. Every `Conv`, `MatMul` and `Gemm`
//! (but those kept in float) reads its operands through `QuantizeLinear → DequantizeLinear`
//! pairs: weights (initializers) as `int8`, symmetric (zero point 0), per tensor or per output
//! channel; activations as `uint8`, asymmetric, over the range calibration measured (widened to
//! contain 0, so zero is exact). Biases and all other ops stay float. The model means what the
//! f32 model means up to the rounding of those operands; a compiler that fuses the pairs into
//! integer kernels (ONNX Runtime does) computes the same.
//!
//! Calibration is the caller's: [`activation_tensors`] names the tensors whose ranges are needed,
//! [`with_outputs`] makes a model that reports them, and [`quantize`] takes the ranges.

use crate::export::int;
use crate::proto::{AttributeProto, ModelProto, NodeProto, TensorProto, ValueInfoProto};
use crate::{tensor_from_proto, tensor_to_proto};
use nnc_ir::TensorData;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

/// How to quantize.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QuantizeOptions {
    /// One scale per output channel of each weight (needs opset 13), instead of one per tensor.
    pub per_channel: bool,
    /// Nodes left in float, by node name or by the name of their first output.
    pub keep_float: BTreeSet<String>,
    /// Quantize each quantized node's result too (a pair after it), as ONNX Runtime's tools
    /// do: the layout its integer kernels fuse. Calibration then measures those results.
    pub outputs: bool,
}

/// A quantized model and what was done to it.
#[derive(Clone, Debug)]
pub struct Quantized {
    pub model: ModelProto,
    /// The quantized nodes, by name (or first output where a node has no name).
    pub quantized: Vec<String>,
    /// Quantizable nodes left in float, with why.
    pub kept_float: Vec<(String, String)>,
}

const QUANTIZABLE: [&str; 3] = ["Conv", "MatMul", "Gemm"];

fn node_label(n: &NodeProto) -> String {
    n.name.clone().filter(|s| !s.is_empty()).unwrap_or_else(|| n.output.first().cloned().unwrap_or_default())
}

fn kept(n: &NodeProto, options: &QuantizeOptions) -> bool {
    options.keep_float.contains(&node_label(n)) || n.output.first().is_some_and(|o| options.keep_float.contains(o))
}

fn graph_of(model: &ModelProto) -> Result<&crate::proto::GraphProto, String> {
    model.graph.as_ref().ok_or_else(|| "the model has no graph".to_string())
}

/// The default domain's opset the model imports.
fn opset(model: &ModelProto) -> i64 {
    model
        .opset_import
        .iter()
        .find(|o| o.domain.as_deref().unwrap_or("").is_empty() || o.domain.as_deref() == Some("ai.onnx"))
        .and_then(|o| o.version)
        .unwrap_or(0)
}

/// The operands of `n` that quantization touches: its first two inputs (data and weight).
fn operands(n: &NodeProto) -> &[String] {
    &n.input[..n.input.len().min(2)]
}

/// The activation tensors (operands that are not initializers) of the nodes that will be
/// quantized: the tensors calibration must measure, in first-use order.
pub fn activation_tensors(model: &ModelProto, options: &QuantizeOptions) -> Result<Vec<String>, String> {
    let graph = graph_of(model)?;
    let initializers: BTreeSet<&str> = graph.initializer.iter().filter_map(|t| t.name.as_deref()).collect();
    let mut names = Vec::new();
    for n in &graph.node {
        if !QUANTIZABLE.contains(&n.op_type.as_deref().unwrap_or("")) || kept(n, options) {
            continue;
        }
        let result = n.output.first().filter(|_| options.outputs);
        for x in operands(n).iter().chain(result) {
            if !x.is_empty() && !initializers.contains(x.as_str()) && !names.contains(x) {
                names.push(x.clone());
            }
        }
    }
    Ok(names)
}

/// `model` with `names` added to its graph outputs (with no declared type: the importer infers
/// it), so that a run reports them.
pub fn with_outputs(model: &ModelProto, names: &[String]) -> ModelProto {
    let mut m = model.clone();
    if let Some(graph) = m.graph.as_mut() {
        let present: BTreeSet<String> = graph.output.iter().filter_map(|o| o.name.clone()).collect();
        for name in names.iter().filter(|n| !present.contains(*n)) {
            graph.output.push(ValueInfoProto { name: Some(name.clone()), ..ValueInfoProto::default() });
        }
    }
    m
}

/// The `uint8` scale and zero point of an activation whose values lie in `[lo, hi]`: the range
/// widened to contain 0, so that zero is exact (padding, ReLU outputs).
pub fn activation_params(lo: f32, hi: f32) -> (f32, u8) {
    let (lo, hi) = (lo.min(0.0), hi.max(0.0));
    let scale = if hi > lo { (hi - lo) / 255.0 } else { 1.0 };
    let zero = (-lo / scale).round_ties_even().clamp(0.0, 255.0) as u8;
    (scale, zero)
}

/// `values` as symmetric `int8` with `scale` (round half to even, then clamped to ±127).
fn quantize_weights(values: &[f32], scale: &[f32], channel_of: impl Fn(usize) -> usize) -> Vec<i8> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| (v / scale[channel_of(i)]).round_ties_even().clamp(-127.0, 127.0) as i8)
        .collect()
}

/// The symmetric scale for weights whose largest magnitude is `max_abs`.
fn weight_scale(max_abs: f32) -> f32 {
    if max_abs > 0.0 {
        max_abs / 127.0
    } else {
        1.0
    }
}

fn node(op: &str, name: String, inputs: Vec<String>, output: String, attribute: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        op_type: Some(op.into()),
        name: Some(name),
        input: inputs,
        output: vec![output],
        attribute,
        ..NodeProto::default()
    }
}

/// Fresh names that no tensor or node of the model has.
struct Names {
    taken: BTreeSet<String>,
}

impl Names {
    fn fresh(&mut self, base: &str) -> String {
        let mut name = base.to_string();
        let mut k = 1;
        while self.taken.contains(&name) {
            name = format!("{base}_{k}");
            k += 1;
        }
        self.taken.insert(name.clone());
        name
    }
}

/// The output-channel axis of `n`'s weight (operand 1): `Conv`'s `W [M, C, ...]` 0, `MatMul`'s
/// `B [K, N]` its last, `Gemm`'s `B` 0 with `transB = 1`, else 1.
fn channel_axis(n: &NodeProto, rank: usize) -> usize {
    match n.op_type.as_deref() {
        Some("Conv") => 0,
        Some("Gemm") => {
            let trans_b =
                n.attribute.iter().find(|a| a.name.as_deref() == Some("transB")).and_then(|a| a.i).unwrap_or(0);
            if trans_b != 0 {
                0
            } else {
                1
            }
        }
        _ => rank.saturating_sub(1),
    }
}

/// `QuantizeLinear(input) → DequantizeLinear → output` for the activation `x` (named in the new
/// tensors' names) with `uint8` parameters for `range`, which are added to `initializers`.
fn activation_pair(
    names: &mut Names,
    initializers: &mut Vec<TensorProto>,
    x: &str,
    input: String,
    output: String,
    (lo, hi): (f32, f32),
) -> [NodeProto; 2] {
    let (scale, zero) = activation_params(lo, hi);
    let s_name = names.fresh(&format!("{x}_scale"));
    let z_name = names.fresh(&format!("{x}_zero_point"));
    let q_name = names.fresh(&format!("{x}_quantized"));
    initializers.push(tensor_to_proto(&s_name, &TensorData::scalar(scale)));
    initializers.push(tensor_to_proto(&z_name, &TensorData::scalar(zero)));
    let q_node = names.fresh(&format!("{x}_QuantizeLinear"));
    let dq_node = names.fresh(&format!("{x}_DequantizeLinear"));
    [
        node("QuantizeLinear", q_node, vec![input, s_name.clone(), z_name.clone()], q_name.clone(), vec![]),
        node("DequantizeLinear", dq_node, vec![q_name, s_name, z_name], output, vec![]),
    ]
}

/// Rewrites `model` in QDQ form with the activation `ranges` (`[min, max]` per tensor of
/// [`activation_tensors`]). `base_dir` is where external weight data lives.
pub fn quantize(
    model: &ModelProto,
    ranges: &BTreeMap<String, (f32, f32)>,
    options: &QuantizeOptions,
    base_dir: Option<&Path>,
) -> Result<Quantized, String> {
    let version = opset(model);
    if version < 10 {
        return Err(format!(
            "QuantizeLinear and DequantizeLinear need opset 10 or later; the model imports opset {version}"
        ));
    }
    if options.per_channel && version < 13 {
        return Err(format!(
            "per-channel scales need opset 13 or later; the model imports opset {version} (quantize per tensor)"
        ));
    }
    let graph = graph_of(model)?;
    let mut out = model.clone();
    let new_graph = out.graph.as_mut().ok_or("the model has no graph")?;
    let initializers: HashMap<&str, &TensorProto> =
        graph.initializer.iter().filter_map(|t| t.name.as_deref().map(|n| (n, t))).collect();
    let mut names = Names {
        taken: graph
            .node
            .iter()
            .flat_map(|n| n.output.iter().cloned().chain(n.name.clone()))
            .chain(graph.input.iter().filter_map(|i| i.name.clone()))
            .chain(initializers.keys().map(|k| k.to_string()))
            .collect(),
    };
    let mut nodes = Vec::new();
    let mut dequantized: HashMap<String, String> = HashMap::new();
    let (mut quantized, mut kept_float) = (Vec::new(), Vec::new());
    for n in &graph.node {
        let op = n.op_type.as_deref().unwrap_or("");
        if !QUANTIZABLE.contains(&op) {
            nodes.push(n.clone());
            continue;
        }
        if kept(n, options) {
            kept_float.push((node_label(n), "kept in float as asked".to_string()));
            nodes.push(n.clone());
            continue;
        }
        // Each operand: a weight (its f32 data) or an activation (`None`).
        let mut plan: Vec<(String, Option<TensorData>)> = Vec::new();
        let mut why_not = None;
        for x in operands(n) {
            match initializers.get(x.as_str()) {
                Some(t) => {
                    let data = tensor_from_proto(t, x, base_dir).map_err(|e| e.to_string())?;
                    if data.dtype() == nnc_ir::DType::F32 {
                        plan.push((x.clone(), Some(data)));
                    } else {
                        why_not = Some(format!("weight `{x}` is not f32"));
                    }
                }
                None if ranges.contains_key(x) => plan.push((x.clone(), None)),
                None => why_not = Some(format!("no calibrated range for `{x}`")),
            }
        }
        if let Some(why) = why_not {
            kept_float.push((node_label(n), why));
            nodes.push(n.clone());
            continue;
        }
        let mut rewritten = n.clone();
        for (k, (x, weight)) in plan.into_iter().enumerate() {
            // An activation's pair is shared by its consumers; a weight's is per node (its
            // channel axis depends on the node).
            let key = format!("{}#{}", x, if weight.is_some() { node_label(n) } else { String::new() });
            if let Some(dq) = dequantized.get(&key) {
                rewritten.input[k] = dq.clone();
                continue;
            }
            let dq = if let Some(t) = weight {
                let values = t.to_vec::<f32>().unwrap_or_default();
                let shape = t.shape().to_vec();
                let axis = channel_axis(n, shape.len());
                let per_channel = options.per_channel && shape.len() >= 2;
                let (scales, channel_of): (Vec<f32>, Box<dyn Fn(usize) -> usize>) = if per_channel {
                    let inner: usize = shape[axis + 1..].iter().product();
                    let count = shape[axis];
                    let mut max_abs = vec![0f32; count];
                    let channel = move |i: usize| (i / inner) % count;
                    for (i, v) in values.iter().enumerate() {
                        max_abs[channel(i)] = max_abs[channel(i)].max(v.abs());
                    }
                    (max_abs.into_iter().map(weight_scale).collect(), Box::new(channel))
                } else {
                    (vec![weight_scale(values.iter().fold(0f32, |m, v| m.max(v.abs())))], Box::new(|_| 0))
                };
                let q = quantize_weights(&values, &scales, channel_of);
                let q_name = names.fresh(&format!("{x}_quantized"));
                let s_name = names.fresh(&format!("{x}_scale"));
                let z_name = names.fresh(&format!("{x}_zero_point"));
                let dq_name = names.fresh(&format!("{x}_dequantized"));
                let scale_shape = if per_channel { vec![scales.len()] } else { vec![] };
                new_graph.initializer.push(tensor_to_proto(&q_name, &TensorData::from_vec(shape, &q)));
                new_graph
                    .initializer
                    .push(tensor_to_proto(&s_name, &TensorData::from_vec(scale_shape.clone(), &scales)));
                new_graph
                    .initializer
                    .push(tensor_to_proto(&z_name, &TensorData::from_vec(scale_shape, &vec![0i8; scales.len()])));
                let attrs = if per_channel { vec![int("axis", axis as i64)] } else { vec![] };
                let dq_node = names.fresh(&format!("{x}_DequantizeLinear"));
                nodes.push(node("DequantizeLinear", dq_node, vec![q_name, s_name, z_name], dq_name.clone(), attrs));
                dq_name
            } else {
                let dq_name = names.fresh(&format!("{x}_dequantized"));
                let pair =
                    activation_pair(&mut names, &mut new_graph.initializer, &x, x.clone(), dq_name.clone(), ranges[&x]);
                nodes.extend(pair);
                dq_name
            };
            dequantized.insert(key, dq.clone());
            rewritten.input[k] = dq;
        }
        quantized.push(node_label(n));
        // With `outputs`, the result too goes through a pair (the node then computes into a
        // renamed value): the layout ONNX Runtime fuses into integer kernels.
        let y = rewritten.output.first().cloned().unwrap_or_default();
        match ranges.get(&y).filter(|_| options.outputs) {
            Some(&range) => {
                let float = names.fresh(&format!("{y}_float"));
                rewritten.output[0] = float.clone();
                nodes.push(rewritten);
                nodes.extend(activation_pair(&mut names, &mut new_graph.initializer, &y, float, y.clone(), range));
            }
            None => nodes.push(rewritten),
        }
    }
    new_graph.node = nodes;
    // Weights no float node reads any more are dropped.
    let read: BTreeSet<String> = new_graph.node.iter().flat_map(|n| n.input.iter().cloned()).collect();
    let outputs: BTreeSet<String> = new_graph.output.iter().filter_map(|o| o.name.clone()).collect();
    new_graph.initializer.retain(|t| t.name.as_ref().is_some_and(|n| read.contains(n) || outputs.contains(n)));
    // Weights stored beside the model (external data) are written inline: the quantized model
    // may be saved anywhere.
    for t in new_graph.initializer.iter_mut().filter(|t| !t.external_data.is_empty()) {
        let name = t.name.clone().unwrap_or_default();
        *t = tensor_to_proto(&name, &tensor_from_proto(t, &name, base_dir).map_err(|e| e.to_string())?);
    }
    out.producer_name = Some("nnc quantize".into());
    Ok(Quantized { model: out, quantized, kept_float })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activation_ranges_contain_zero_and_map_it_exactly() {
        let (scale, zero) = activation_params(0.5, 2.0);
        assert_eq!(zero, 0);
        assert!((scale - 2.0 / 255.0).abs() < 1e-9);
        let (scale, zero) = activation_params(-1.0, 3.0);
        assert_eq!(zero, 64);
        assert!((scale - 4.0 / 255.0).abs() < 1e-9);
        assert_eq!(activation_params(0.0, 0.0), (1.0, 0));
    }

    #[test]
    fn weights_round_half_to_even_and_stay_within_127() {
        let q = quantize_weights(&[0.5, 1.5, -2.5, 1000.0], &[1.0], |_| 0);
        assert_eq!(q, vec![0, 2, -2, 127]);
    }
}

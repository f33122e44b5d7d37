//! Operand layouts for vector register tiles, chosen at compile time so a tile loads its
//! vector factor from consecutive addresses and without masks.
//!
//! A CPU register tile (see [`crate::schedule`]) broadcasts one factor of a contraction and
//! loads the other as vectors along the tile's columns, which is fast only where those columns
//! are adjacent in memory, unmasked, and not spread over few cache sets. Weights are constants,
//! so their layout is ours to choose:
//! - a convolution's weights `[O, C, k..]` (one group) are stored in panels of the register
//!   tile's columns, `[O/P, k.., C, P]` (see `Stored::Panels`), and read back through a
//!   `transpose` and a `reshape` to `[O, C, k..]`, which fusion inlines as a view: the tile then
//!   runs over output channels, streaming one contiguous panel of weights as vectors and
//!   broadcasting input pixels. Where the output's shape is not known yet, or one panel would
//!   hold every channel, they are stored `[k.., C, O]` and read through a `transpose`; rows of
//!   a multiple of 512 bytes then get 16 bytes of padding (read around by a slice), or a tile's
//!   column of weights, one row per input channel, would sit in a few L1 sets. The convolution
//!   reads a zero-padded copy of its input, so no load in the tile is masked;
//! - a matmul's right operand computed from a constant by data movement with a transpose
//!   (ONNX `Gemm` with `transB`, an LSTM's gate weights) is computed here once;
//! - a large right operand computed at run time whose rows are a multiple of 512 bytes is
//!   copied once per run into rows one device vector longer, for the same cache-set reason.
//!
//! The graph computes the same values (layouts change, not arithmetic). [`prepack_weights`] is
//! the constant part for a runtime that keeps its graph, in memory of its own, so each weight is
//! held once.

use crate::schedule::cpu_tile;
use nnc_ir::{infer, DType, Dim, Graph, Node, Op, PadMode, TensorData, TensorType, ValueId, Window};
use nnc_kernel::device::Device;
use rayon::prelude::*;
use std::collections::{HashMap, HashSet};

/// `graph` with constant contraction operands laid out for `device`'s vector tiles; the graph
/// itself where the device has no vector lanes (GPU tiles stage operands through workgroup
/// memory and gain nothing).
pub fn pack_weights(graph: &Graph, device: &Device) -> Graph {
    if device.vector <= 1 {
        return graph.clone();
    }
    // Composites (an LSTM's gate matmuls) expanded first, so their weights are seen; an error
    // is left for fusion to report.
    match nnc_ir::composite::decompose(graph) {
        Ok(g) => pack(g, device, false),
        Err(_) => graph.clone(),
    }
}

/// [`pack_weights`] for a graph a runtime keeps (composites stay, for the optimizer to see),
/// with every other constant copied into memory of its own: the graph then shares no buffer
/// with what it was read from (an ONNX file's bytes), which can be freed, and each weight is
/// held once, in the layout the kernels read. Compiling the result packs nothing again.
pub fn prepack_weights(graph: &Graph, device: &Device) -> Graph {
    if device.vector <= 1 {
        return graph.clone();
    }
    pack(graph.clone(), device, true)
}

fn pack(mut g: Graph, device: &Device, own_constants: bool) -> Graph {
    let producers = g.producers();
    let uses = users(&g);
    let constant = |v: ValueId| -> Option<&TensorData> {
        match &g.nodes[producers[v.index()]?].op {
            Op::Constant(t) if t.dtype().is_float() && !g.outputs.contains(&v) => Some(t),
            _ => None,
        }
    };
    // Convolution weights to store channels-last: constants of rank 3 or more used only as
    // the weights of ungrouped convolutions, with at least a vector of output channels.
    let packs = |v: ValueId| {
        let conv_weight = |&(n, k): &(usize, usize)| matches!(g.nodes[n].op, Op::Conv { groups: 1, .. }) && k == 1;
        constant(v).is_some_and(|t| {
            t.shape().len() >= 3
                && t.shape()[0] >= device.vector as usize
                && !uses[v.index()].is_empty()
                && uses[v.index()].iter().all(conv_weight)
        })
    };
    // The panel width of convolution weights stored in panels (see `Stored::Panels`): the
    // columns of the register tile the scheduler will give each convolution reading them
    // (`cpu_tile`, the one place that decides), where all agree and the output channels fill
    // more than one panel: whole panels, or the last padded with zero weights where there are
    // eight or more (a classifier's 1,000 channels in 32 panels of 32); shapes not known here
    // keep channels-last rows.
    let panel_width = |v: ValueId| -> Option<usize> {
        let shape = constant(v)?.shape();
        let outputs = *shape.first()? as i64;
        let depth = shape[1..].iter().product::<usize>() as i64;
        let mut widths = uses[v.index()].iter().map(|&(n, _)| {
            let out: Option<Vec<i64>> = g.ty(g.nodes[n].outputs[0]).shape.iter().map(|d| d.as_const()).collect();
            // The tile's rows run over the innermost output axis longer than one.
            let rows = out?.get(2..)?.iter().rev().copied().find(|&n| n > 1).unwrap_or(1);
            Some(cpu_tile(rows, outputs, depth, true, device).1 as i64)
        });
        let p = widths.next()??;
        let whole = outputs % p == 0 || outputs >= MIN_PADDED_PANELS * p;
        (widths.all(|w| w == Some(p)) && outputs > p && whole).then_some(p as usize)
    };
    // `i8` weights of integer matmuls on a device with `u8 × i8` dot products: `[K, N]` stored
    // as `[K/4, N, 4]`, so the four consecutive `k` one instruction sums per column are one
    // 32-bit lane, and a vector of columns one contiguous load (see `schedule`'s grouped
    // reduction).
    let packs_int8 = |v: ValueId| {
        let matmul_rhs = |&(n, k): &(usize, usize)| matches!(g.nodes[n].op, Op::MatMul) && k == 1;
        let widened = |&(n, _): &(usize, usize)| {
            let node = &g.nodes[n];
            matches!(node.op, Op::Cast { to: DType::I32 })
                && !uses[node.outputs[0].index()].is_empty()
                && uses[node.outputs[0].index()].iter().all(matmul_rhs)
        };
        device.int8_dot
            && !g.outputs.contains(&v)
            && producers[v.index()].is_some_and(|p| {
                matches!(&g.nodes[p].op, Op::Constant(t) if t.dtype() == DType::I8
                    && t.shape().len() == 2
                    && t.shape()[0] % 4 == 0
                    && t.shape()[0] > 0)
            })
            && !uses[v.index()].is_empty()
            && uses[v.index()].iter().all(widened)
    };
    // Each weight stored in panels or channels-last, computed on all cores (a large model's
    // weights are tens of megabytes). Channels-last rows of a multiple of 512 bytes would
    // put a tile's column of weights (one row per input channel) in a few cache sets, evicting
    // each other: such rows get padding in the same pass, read around by a slice.
    let mut stored: HashMap<usize, (TensorData, Stored)> = g
        .nodes
        .par_iter()
        .enumerate()
        .filter_map(|(i, node)| match &node.op {
            Op::Constant(t) if packs(node.outputs[0]) => {
                if let Some(p) = panel_width(node.outputs[0]) {
                    // [O, C, k..] as [C, k.., O] with O padded to whole panels (zeros), split
                    // into [C, k.., O/P, P] and stored [O/P, k.., C, P].
                    let (o, rank) = (t.shape()[0], t.shape().len());
                    let panels = o.div_ceil(p);
                    let channels_last: Vec<usize> = (1..rank).chain([0]).collect();
                    let mut split = t.shape()[1..].to_vec();
                    split.extend([panels, p]);
                    let store: Vec<usize> = [rank - 1].into_iter().chain(1..rank - 1).chain([0, rank]).collect();
                    let padded = t.transposed_padded(&channels_last, panels * p - o)?;
                    return Some((i, (padded.reshaped(split)?.transposed(&store)?, Stored::Panels)));
                }
                let store: Vec<usize> = (2..t.shape().len()).chain([1, 0]).collect();
                let padding = match crowds_cache_sets(t.shape()[0] * t.dtype().size_bytes()) {
                    true => row_padding(t.dtype(), WEIGHT_ROW_PADDING),
                    false => 0,
                };
                Some((i, (t.transposed_padded(&store, padding)?, Stored::ChannelsLast { padding })))
            }
            _ => None,
        })
        .collect();
    // (node index, replacement nodes) in increasing node order.
    let mut edits: Vec<(usize, Vec<Node>)> = Vec::new();
    let mut new_values = NewValues::of(&g);
    // Zero-padded copies of convolution inputs, by input and pads: convolutions of one input
    // with the same padding read one copy.
    let mut padded_inputs: HashMap<(ValueId, Vec<i64>), ValueId> = HashMap::new();
    for (i, node) in g.nodes.iter().enumerate() {
        match &node.op {
            Op::Constant(t) if packs_int8(node.outputs[0]) => {
                let v = node.outputs[0];
                let (k, n) = (t.shape()[0], t.shape()[1]);
                let name = g.value(v).name.clone();
                // [K/4, 4, N] transposed to [K/4, N, 4]; read back through the inverse views.
                let Some(packed) = t.reshaped(vec![k / 4, 4, n]).and_then(|q| q.transposed(&[0, 2, 1])) else {
                    continue;
                };
                let packed_id = new_values.add(format!("{name}_packed"), shaped(DType::I8, packed.shape()));
                let groups_id = new_values.add(format!("{name}_groups"), shaped(DType::I8, &[k / 4, 4, n]));
                let shape = vec![Dim::from(k), Dim::from(n)];
                edits.push((
                    i,
                    vec![
                        Node { op: Op::Constant(packed), inputs: vec![], outputs: vec![packed_id] },
                        Node {
                            op: Op::Transpose { perm: vec![0, 2, 1] },
                            inputs: vec![packed_id],
                            outputs: vec![groups_id],
                        },
                        Node { op: Op::Reshape { shape }, inputs: vec![groups_id], outputs: vec![v] },
                    ],
                ));
            }
            Op::Constant(t) => {
                let v = node.outputs[0];
                if !packs(v) {
                    if own_constants {
                        let owned = TensorData::from_bytes(t.dtype(), t.shape().to_vec(), t.bytes().to_vec().into());
                        let Ok(owned) = owned else { continue };
                        edits.push((i, vec![Node { op: Op::Constant(owned), ..node.clone() }]));
                    }
                    continue;
                }
                let Some((packed, stored_as)) = stored.remove(&i) else { continue };
                let name = g.value(v).name.clone();
                let stored_shape = packed.shape().to_vec();
                let packed_id = new_values.add(format!("{name}_packed"), shaped(t.dtype(), &stored_shape));
                let mut nodes = vec![Node { op: Op::Constant(packed), inputs: vec![], outputs: vec![packed_id] }];
                nodes.extend(stored_as.read_back(t, &stored_shape, packed_id, v, &name, &mut new_values));
                edits.push((i, nodes));
            }
            // A convolution with packed weights reads a zero-padded copy of its input: the
            // tile's loads then need no masks (the copy costs one pass over the input, the
            // masks cost a branch per load in every tile that touches the border).
            Op::Conv { window, groups: 1 } if window.pads.iter().any(|&p| p != 0) && packs(node.inputs[1]) => {
                let x = node.inputs[0];
                let rank = g.ty(x).shape.len();
                let spatial = rank - 2;
                let mut pads = vec![0; 2 * rank];
                for a in 0..spatial {
                    pads[2 + a] = window.pads[a];
                    pads[rank + 2 + a] = window.pads[spatial + a];
                }
                let conv = Op::Conv { window: Window { pads: vec![0; 2 * spatial], ..window.clone() }, groups: 1 };
                let mut nodes = Vec::new();
                let padded = match padded_inputs.get(&(x, pads.clone())) {
                    Some(&copy) => copy,
                    None => {
                        let pad = Op::Pad { pads: pads.clone(), mode: PadMode::Constant, value: 0.0 };
                        let Ok(mut ty) = infer(&pad, &[g.ty(x)]) else { continue };
                        let copy = new_values.add(format!("{}_padded", g.value(x).name), ty.remove(0));
                        nodes.push(Node { op: pad, inputs: vec![x], outputs: vec![copy] });
                        padded_inputs.insert((x, pads), copy);
                        copy
                    }
                };
                let mut inputs = node.inputs.clone();
                inputs[0] = padded;
                nodes.push(Node { op: conv, inputs, outputs: node.outputs.clone() });
                edits.push((i, nodes));
            }
            // A large right matmul operand computed at run time whose rows are a multiple of
            // 512 bytes (a 1024-wide f32 matrix) is copied once into rows one vector longer, read
            // back through a slice: the tile's loads down a column of it then spread over the
            // cache's sets instead of evicting each other.
            Op::MatMul if !own_constants && movement_chain(&g, &producers, node.inputs[1]).is_none() => {
                let rhs = node.inputs[1];
                let ty = g.ty(rhs).clone();
                let dims: Option<Vec<i64>> = ty.shape.iter().map(|d| d.as_const()).collect();
                let Some(dims) = dims else { continue };
                let (Some(&cols), rank) = (dims.last(), dims.len()) else { continue };
                let size = ty.dtype.size_bytes() as i64;
                let bytes: i64 = dims.iter().product::<i64>() * size;
                if rank < 2
                    || !ty.dtype.is_float()
                    || !crowds_cache_sets(cols as usize * size as usize)
                    || bytes < 1 << 18
                {
                    continue;
                }
                // A whole vector of the device, so every row's vector loads stay aligned as the
                // first row's (matmul 1024 with 16 lanes: 5.7 ms, against 7.9 with 16 bytes).
                let f32_lanes = device.vector as usize;
                let extra = row_padding(ty.dtype, f32_lanes * 4) as i64;
                let mut pads = vec![0; 2 * rank];
                pads[2 * rank - 1] = extra;
                let pad = Op::Pad { pads, mode: PadMode::Constant, value: 0.0 };
                let Ok(mut padded_ty) = infer(&pad, &[&ty]) else { continue };
                let padded = new_values.add(format!("{}_rows", g.value(rhs).name), padded_ty.remove(0));
                let rows = new_values.add(format!("{}_view", g.value(rhs).name), ty.clone());
                let slice = Op::Slice { axes: vec![rank - 1], starts: vec![0], ends: vec![cols], steps: vec![1] };
                let mut inputs = node.inputs.clone();
                inputs[1] = rows;
                edits.push((
                    i,
                    vec![
                        Node { op: pad, inputs: vec![rhs], outputs: vec![padded] },
                        Node { op: slice, inputs: vec![padded], outputs: vec![rows] },
                        Node { op: Op::MatMul, inputs, outputs: node.outputs.clone() },
                    ],
                ));
            }
            // A matmul's right operand computed from a constant by data movement that
            // transposes (ONNX `Gemm` with `transB`, an LSTM's gate weights sliced and
            // transposed) is computed here once.
            Op::Transpose { .. } | Op::Reshape { .. } | Op::Slice { .. } => {
                let v = node.outputs[0];
                let matmul_rhs = |&(n, k): &(usize, usize)| matches!(g.nodes[n].op, Op::MatMul) && k == 1;
                if uses[v.index()].is_empty() || !uses[v.index()].iter().all(matmul_rhs) {
                    continue;
                }
                let Some(folded) = fold_movement(&g, &producers, i) else { continue };
                edits.push((i, vec![Node { op: Op::Constant(folded), inputs: vec![], outputs: vec![v] }]));
            }
            _ => {}
        }
    }
    if edits.is_empty() {
        return g;
    }
    for (name, ty) in new_values.list {
        g.add_value(name, ty);
    }
    let mut edits = edits.into_iter().peekable();
    let mut nodes = Vec::with_capacity(g.nodes.len() + 8);
    for (i, node) in std::mem::take(&mut g.nodes).into_iter().enumerate() {
        match edits.next_if(|(at, _)| *at == i) {
            Some((_, replacement)) => nodes.extend(replacement),
            None => nodes.push(node),
        }
    }
    g.nodes = nodes;
    remove_dead_nodes(&mut g);
    g
}

/// Panels a convolution's output channels must fill for the last to be padded with zero
/// weights (fewer, and the padding is a larger share of the work).
const MIN_PADDED_PANELS: i64 = 8;

/// How a convolution's weights `[O, C, k..]` are stored.
enum Stored {
    /// `[k.., C, O]` with rows padded by `padding` elements, read through a slice and a
    /// transpose.
    ChannelsLast { padding: usize },
    /// `[O/P, k.., C, P]`: panels of `P` output channels, each contiguous, read through a
    /// transpose and a reshape. A register tile of `P` columns then streams its weights from
    /// consecutive addresses rather than one row of `O` per reduction step (a 49 x 4608 x 512
    /// product, resnet18's last 3x3 convolutions as a matmul: 60-77 GFLOP/s over `[K, 512]`
    /// rows, 160-180 over 32-column panels), and the tile's load `[o / P, .., o % P]` is a
    /// plain vector load where `P` is the tile's width (`simplify` sees `j0 = tile * P`).
    Panels,
}

impl Stored {
    /// The nodes that read weights `t` (`[O, C, k..]`) back as value `v` from their stored form
    /// (value `packed`, shape `stored`), naming the values between after `name`.
    fn read_back(
        &self,
        t: &TensorData,
        stored: &[usize],
        packed: ValueId,
        v: ValueId,
        name: &str,
        new_values: &mut NewValues,
    ) -> Vec<Node> {
        let (shape, rank) = (t.shape(), t.shape().len());
        let mut add =
            |suffix: &str, dims: &[usize]| new_values.add(format!("{name}_{suffix}"), shaped(t.dtype(), dims));
        let outputs = shape[0];
        let node = |op: Op, input: ValueId, output: ValueId| Node { op, inputs: vec![input], outputs: vec![output] };
        match *self {
            Stored::Panels => {
                // [O/P, k.., C, P] back to [O/P, P, C, k..], then [O, C, k..] (less the padding
                // channels, sliced off).
                let r = rank + 1;
                let back: Vec<usize> = [0, r - 1, r - 2].into_iter().chain(1..r - 2).collect();
                let (panels, p) = (stored[0], stored[r - 1]);
                let panels_id = add("panels", &[&[panels, p][..], &shape[1..]].concat());
                let mut nodes = vec![node(Op::Transpose { perm: back }, packed, panels_id)];
                let whole = [&[panels * p][..], &shape[1..]].concat();
                let reshape = Op::Reshape { shape: whole.iter().map(|&d| Dim::from(d)).collect() };
                if panels * p == outputs {
                    nodes.push(node(reshape, panels_id, v));
                } else {
                    let whole_id = add("whole", &whole);
                    let slice =
                        Op::Slice { axes: vec![0], starts: vec![0], ends: vec![outputs as i64], steps: vec![1] };
                    nodes.extend([node(reshape, panels_id, whole_id), node(slice, whole_id, v)]);
                }
                nodes
            }
            Stored::ChannelsLast { padding } => {
                // [k.., C, O + padding], sliced to [k.., C, O], back to [O, C, k..] by the perm
                // [r-1, r-2, 0..r-2].
                let back: Vec<usize> = [rank - 1, rank - 2].into_iter().chain(0..rank - 2).collect();
                let mut nodes = Vec::new();
                let rows_id = if padding > 0 {
                    let mut rows = stored.to_vec();
                    rows[rank - 1] = outputs;
                    let rows_id = add("rows", &rows);
                    let slice =
                        Op::Slice { axes: vec![rank - 1], starts: vec![0], ends: vec![outputs as i64], steps: vec![1] };
                    nodes.push(node(slice, packed, rows_id));
                    rows_id
                } else {
                    packed
                };
                nodes.push(node(Op::Transpose { perm: back }, rows_id, v));
                nodes
            }
        }
    }
}

/// The type of a tensor of `dtype` and `dims`.
fn shaped(dtype: DType, dims: &[usize]) -> TensorType {
    TensorType::new(dtype, dims.iter().map(|&d| d as i64))
}

/// Whether rows of `bytes` put the same column of consecutive rows into few cache sets: a
/// multiple of 512 bytes maps 64-byte lines of successive rows onto an eighth of the sets or
/// fewer (the L1 data cache of x86-64 and aarch64 cores has 64 sets of 64-byte lines).
fn crowds_cache_sets(bytes: usize) -> bool {
    bytes > 0 && bytes.is_multiple_of(512)
}

/// Elements of padding that move successive rows onto other cache sets: `bytes` of them.
fn row_padding(dtype: nnc_ir::DType, bytes: usize) -> usize {
    bytes / dtype.size_bytes().max(1)
}

/// Padding of convolution weight rows: 16 bytes (measured on resnet18 with 16-lane tiles:
/// 17.4 ms, against 18.4-19.0 with a whole 64-byte vector).
const WEIGHT_ROW_PADDING: usize = 16;

/// Values a pass adds to a graph, numbered after the graph's own.
/// The values a pass adds to a graph, each with a name no other value has.
struct NewValues {
    first: usize,
    list: Vec<(String, TensorType)>,
    taken: HashSet<String>,
}

impl NewValues {
    fn of(g: &Graph) -> NewValues {
        NewValues { first: g.values.len(), list: Vec::new(), taken: g.values.iter().map(|v| v.name.clone()).collect() }
    }

    /// A new value named `name`, or `name_2`, `name_3`, ... where that is taken (two
    /// convolutions of one input, a model whose own values end in `_padded`).
    fn add(&mut self, name: String, ty: TensorType) -> ValueId {
        let unique = (1..)
            .map(|n| if n == 1 { name.clone() } else { format!("{name}_{n}") })
            .find(|candidate| !self.taken.contains(candidate))
            .unwrap_or(name);
        self.taken.insert(unique.clone());
        self.list.push((unique, ty));
        ValueId((self.first + self.list.len() - 1) as u32)
    }
}

/// The data movement (transpose, reshape, slice) nodes from a constant to `v`, last first, and
/// the constant; `None` if `v` is computed otherwise.
fn movement_chain<'g>(g: &'g Graph, producers: &[Option<usize>], v: ValueId) -> Option<(Vec<usize>, &'g TensorData)> {
    let mut chain = Vec::new();
    let mut v = v;
    loop {
        let p = producers[v.index()]?;
        match &g.nodes[p].op {
            Op::Constant(t) => return Some((chain, t)),
            Op::Transpose { .. } | Op::Reshape { .. } | Op::Slice { .. } if g.nodes[p].inputs.len() == 1 => {
                chain.push(p);
                v = g.nodes[p].inputs[0];
            }
            _ => return None,
        }
    }
}

/// The value node `end` computes, when it and its operands back to a float constant are data
/// movement including a transpose: transposes and reshapes moved directly, a chain with a
/// slice evaluated by the interpreter.
fn fold_movement(g: &Graph, producers: &[Option<usize>], end: usize) -> Option<TensorData> {
    let (chain, root) = movement_chain(g, producers, g.nodes[end].outputs[0])?;
    if !root.dtype().is_float() || !chain.iter().any(|&n| matches!(g.nodes[n].op, Op::Transpose { .. })) {
        return None;
    }
    // The interpreter computes in f64 element by element: for a large model's weights, most
    // of a compile that finds its code cached.
    let direct = chain.iter().rev().try_fold(root.clone(), |t, &n| match &g.nodes[n].op {
        Op::Transpose { perm } => t.transposed(perm),
        Op::Reshape { .. } => t.reshaped(g.ty(g.nodes[n].outputs[0]).static_shape()?),
        _ => None,
    });
    if direct.is_some() {
        return direct;
    }
    let mut b = nnc_ir::GraphBuilder::new("fold");
    let mut v = b.constant(root.clone());
    for &n in chain.iter().rev() {
        v = b.op1(g.nodes[n].op.clone(), &[v]).ok()?;
    }
    b.output(v);
    nnc_interp::run(&b.finish().ok()?, &[]).ok()?.pop()
}

/// Drops nodes none of whose results is used (by a node or as a graph output).
fn remove_dead_nodes(g: &mut Graph) {
    loop {
        let uses = g.use_counts();
        let before = g.nodes.len();
        g.nodes.retain(|n| n.outputs.iter().any(|o| uses[o.index()] > 0));
        if g.nodes.len() == before {
            return;
        }
    }
}

/// For each value, the (node, operand position) pairs that read it.
fn users(g: &Graph) -> Vec<Vec<(usize, usize)>> {
    let mut out = vec![Vec::new(); g.values.len()];
    for (n, node) in g.nodes.iter().enumerate() {
        for (k, v) in node.inputs.iter().enumerate() {
            if let Some(list) = out.get_mut(v.index()) {
                list.push((n, k));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use nnc_ir::{DType, GraphBuilder, Window};

    fn weights(shape: &[usize]) -> TensorData {
        let n: usize = shape.iter().product();
        TensorData::from_vec(shape.to_vec(), &(0..n).map(|i| i as f32 * 0.25 - 3.0).collect::<Vec<f32>>())
    }

    fn run(g: &Graph, inputs: &[TensorData]) -> Vec<TensorData> {
        nnc_interp::run(g, inputs).unwrap()
    }

    /// `conv(x, constant weights)` with 1-padding when `padded`.
    fn conv_graph(input: [i64; 4], weight: &[usize], padded: bool) -> Graph {
        let mut b = GraphBuilder::new("conv");
        let x = b.input("x", DType::F32, input).unwrap();
        let w = b.constant(weights(weight));
        let window = Window { pads: vec![padded as i64; 4], ..Window::unit(2) };
        let y = b.conv(x, w, window, 1).unwrap();
        b.output(y);
        b.finish().unwrap()
    }

    /// The ops of `g` in order, after checking that it verifies.
    fn ops(g: &Graph) -> Vec<&'static str> {
        nnc_ir::verify::verify(g).unwrap();
        g.nodes.iter().map(|n| n.op.name()).collect()
    }

    /// Packs a convolution of `input` by constant weights of shape `weight` for the CPU, checks
    /// the packed graph's ops, the stored weights' shape and that it computes what `g` does;
    /// returns `g`.
    fn check_packed_conv(input: [usize; 4], weight: &[usize], padded: bool, want: &[&str], stored: &[usize]) -> Graph {
        let g = conv_graph(input.map(|d| d as i64), weight, padded);
        let packed = pack_weights(&g, &Device::cpu());
        assert_eq!(ops(&packed), want);
        let Op::Constant(t) = &packed.nodes[0].op else { unreachable!() };
        assert_eq!(t.shape(), stored);
        let x = weights(&input);
        assert_eq!(run(&packed, std::slice::from_ref(&x)), run(&g, &[x]));
        g
    }

    /// `i32(x) @ i32(w)` for `u8` activations `[5, k]` and constant `i8` weights `[k, 6]`.
    fn integer_matmul_graph(k: usize) -> Graph {
        let mut b = GraphBuilder::new("integer_matmul");
        let x = b.input("x", DType::U8, [5, k as i64]).unwrap();
        let values: Vec<i64> = (0..k * 6).map(|i| (i as i64 * 37) % 256 - 128).collect();
        let w = b.constant(TensorData::from_i64(DType::I8, vec![k, 6], &values));
        let (xi, wi) = (b.cast(x, DType::I32).unwrap(), b.cast(w, DType::I32).unwrap());
        let y = b.matmul(xi, wi).unwrap();
        b.output(y);
        b.finish().unwrap()
    }

    #[test]
    fn integer_matmul_weights_are_packed_four_deep_only_for_dot_products() {
        let dot = Device { int8_dot: true, ..Device::cpu_with_vector(16) };
        let g = integer_matmul_graph(12);
        let packed = pack_weights(&g, &dot);
        assert_eq!(ops(&packed), ["constant", "transpose", "reshape", "cast", "cast", "matmul"]);
        let Op::Constant(t) = &packed.nodes[0].op else { unreachable!() };
        assert_eq!(t.shape(), [3, 6, 4]);
        let x = TensorData::from_i64(DType::U8, vec![5, 12], &(0..60).map(|i| (i * 53) % 256).collect::<Vec<_>>());
        assert_eq!(run(&packed, std::slice::from_ref(&x)), run(&g, &[x]));
        // Without dot products, or with a depth that is not a multiple of four: left alone.
        assert_eq!(pack_weights(&g, &Device::cpu_with_vector(16)), g);
        let odd = integer_matmul_graph(10);
        assert_eq!(pack_weights(&odd, &dot), odd);
    }

    #[test]
    fn conv_weights_are_stored_channels_last_and_read_through_a_transpose() {
        let want = ["constant", "transpose", "pad", "conv"];
        let g = check_packed_conv([1, 3, 6, 6], &[8, 3, 3, 3], true, &want, &[3, 3, 3, 8]);
        // No vector lanes, no change.
        assert_eq!(pack_weights(&g, &Device::gpu()), g);
    }

    /// YOLOv8n's shape (issue 18): convolutions of one input share its padded copy, and new
    /// values never take a name the graph has (`%x_padded` is the model's own here).
    #[test]
    fn convolutions_of_one_input_share_one_padded_copy_under_a_fresh_name() {
        let mut b = GraphBuilder::new("two_convs");
        let x = b.input("x", DType::F32, [1i64, 3, 6, 6]).unwrap();
        let window = Window { pads: vec![1; 4], ..Window::unit(2) };
        let taken = b.relu(x).unwrap();
        b.set_name(taken, "x_padded").unwrap();
        let mut outs = vec![taken];
        for seed in [8, 16] {
            let w = b.constant(weights(&[seed, 3, 3, 3]));
            outs.push(b.conv(x, w, window.clone(), 1).unwrap());
        }
        let w = b.constant(weights(&[8, 3, 3, 3]));
        let more = b.conv(taken, w, window, 1).unwrap();
        outs.push(more);
        for o in outs {
            b.output(o);
        }
        let g = b.finish().unwrap();
        let packed = pack_weights(&g, &Device::cpu());
        nnc_ir::verify::verify(&packed).unwrap();
        let pads: Vec<&str> = packed
            .nodes
            .iter()
            .filter(|n| matches!(n.op, Op::Pad { .. }))
            .map(|n| packed.value(n.outputs[0]).name.as_str())
            .collect();
        assert_eq!(pads, ["x_padded_2", "x_padded_padded"], "one copy of %x for two convolutions");
        let input = weights(&[1, 3, 6, 6]);
        assert_eq!(run(&packed, std::slice::from_ref(&input)), run(&g, &[input]));
    }

    #[test]
    fn conv_weights_are_stored_in_panels_of_the_tile_columns() {
        // 128 output channels on 4 lanes with 16 registers: tiles of 2 vectors, panels of 8.
        let want = ["constant", "transpose", "reshape", "conv"];
        check_packed_conv([1, 2, 4, 4], &[128, 2, 3, 3], false, &want, &[16, 3, 3, 2, 8]);
    }

    #[test]
    fn output_channels_short_of_whole_panels_are_padded_with_zero_weights_and_sliced_off() {
        // 65 channels in 8-column panels: 9 panels, the last with 7 columns of zeros.
        let want = ["constant", "transpose", "reshape", "slice", "conv"];
        check_packed_conv([1, 2, 4, 4], &[65, 2, 3, 3], false, &want, &[9, 3, 3, 2, 8]);
        // 20 channels would be 3 panels, a third of them padding: channels-last rows instead.
        check_packed_conv([1, 2, 4, 4], &[20, 2, 3, 3], false, &["constant", "transpose", "conv"], &[3, 3, 2, 20]);
    }

    #[test]
    fn weight_rows_of_a_multiple_of_512_bytes_are_padded_where_the_output_shape_is_open() {
        // A symbolic batch: the tiles are not known yet, so channels-last rows, padded.
        let mut b = GraphBuilder::new("conv");
        let x = b.input("x", DType::F32, [Dim::sym("n"), 2.into(), 4.into(), 4.into()]).unwrap();
        let w = b.constant(weights(&[128, 2, 3, 3]));
        let y = b.conv(x, w, Window::unit(2), 1).unwrap();
        b.output(y);
        let g = b.finish().unwrap();
        let packed = pack_weights(&g, &Device::cpu());
        assert_eq!(ops(&packed), ["constant", "slice", "transpose", "conv"]);
        let Op::Constant(t) = &packed.nodes[0].op else { unreachable!() };
        assert_eq!(t.shape(), [3, 3, 2, 132]);
        let x = weights(&[1, 2, 4, 4]);
        assert_eq!(run(&packed, std::slice::from_ref(&x)), run(&g, &[x]));
    }

    #[test]
    fn a_large_matmul_operand_with_512_byte_rows_is_copied_into_longer_rows() {
        let mut b = GraphBuilder::new("mm");
        let x = b.input("x", DType::F32, [3i64, 512]).unwrap();
        let w = b.input("w", DType::F32, [512i64, 128]).unwrap();
        let y = b.matmul(x, w).unwrap();
        b.output(y);
        let g = b.finish().unwrap();
        let packed = pack_weights(&g, &Device::cpu());
        assert_eq!(ops(&packed), ["pad", "slice", "matmul"]);
        // Fusion keeps the padded copy as a buffer and reads it through the slice.
        let program = crate::pipeline::compile(&g, &Device::cpu(), None).unwrap();
        assert_eq!(program.kernels.len(), 2);
        assert!(program.kernels[1].buffers.iter().any(|b| b.shape == [512, 132]), "{}", program.kernels[1]);
        let inputs = [weights(&[3, 512]), weights(&[512, 128])];
        let want = run(&g, &inputs);
        let got = program.run_interpreted(&inputs).unwrap();
        let close =
            want[0].to_f64_vec().iter().zip(got[0].to_f64_vec()).all(|(a, b)| (a - b).abs() <= 1e-3 * a.abs().max(1.0));
        assert!(close);
        // Rows one vector of the device longer: 16 lanes with AVX-512.
        let wide = crate::pipeline::compile(&g, &Device::cpu_with_vector(16), None).unwrap();
        assert!(wide.kernels[1].buffers.iter().any(|b| b.shape == [512, 144]), "{}", wide.kernels[1]);
    }

    #[test]
    fn a_transposed_constant_matmul_operand_is_folded() {
        let mut b = GraphBuilder::new("gemm");
        let x = b.input("x", DType::F32, [2i64, 4]).unwrap();
        let w = b.constant(weights(&[5, 4]));
        let wt = b.transpose(w, vec![1, 0]).unwrap();
        let y = b.matmul(x, wt).unwrap();
        b.output(y);
        let g = b.finish().unwrap();
        let packed = pack_weights(&g, &Device::cpu());
        assert_eq!(ops(&packed), ["constant", "matmul"]);
        let input = weights(&[2, 4]);
        assert_eq!(run(&packed, std::slice::from_ref(&input)), run(&g, &[input]));
    }

    #[test]
    fn a_reshaped_and_transposed_constant_is_folded_as_the_interpreter_computes_it() {
        let mut b = GraphBuilder::new("gemm");
        let x = b.input("x", DType::F32, [2i64, 4]).unwrap();
        let w = b.constant(weights(&[4, 5]));
        let flat = b.reshape(w, vec![5.into(), 4.into()]).unwrap();
        let wt = b.transpose(flat, vec![1, 0]).unwrap();
        let y = b.matmul(x, wt).unwrap();
        b.output(y);
        let g = b.finish().unwrap();
        let producers = g.producers();
        let end = g.nodes.iter().position(|n| matches!(n.op, Op::Transpose { .. })).unwrap();
        let folded = fold_movement(&g, &producers, end).unwrap();
        let mut by_interpreter = g.clone();
        by_interpreter.outputs = vec![g.nodes[end].outputs[0]];
        assert_eq!(folded, run(&by_interpreter, &[weights(&[2, 4])])[0]);
        assert_eq!(ops(&pack_weights(&g, &Device::cpu())), ["constant", "matmul"]);
    }

    #[test]
    fn composites_are_expanded_first_and_new_values_get_fresh_ids() {
        // The softmax expands into several values, so the packed weights' ids must come after
        // the expanded graph's, not the given one's.
        let mut b = GraphBuilder::new("softmax_conv");
        let x = b.input("x", DType::F32, [1i64, 4, 5, 5]).unwrap();
        let s = b.softmax(x, 1).unwrap();
        let w = b.constant(weights(&[8, 4, 3, 3]));
        let y = b.conv(s, w, Window { pads: vec![1; 4], ..Window::unit(2) }, 1).unwrap();
        b.output(y);
        let g = b.finish().unwrap();
        let packed = pack_weights(&g, &Device::cpu());
        nnc_ir::verify::verify(&packed).unwrap();
        assert!(!packed.nodes.iter().any(|n| n.op.is_composite()));
        let input = weights(&[1, 4, 5, 5]);
        let (want, got) = (run(&g, std::slice::from_ref(&input)), run(&packed, &[input]));
        let close =
            want[0].to_f64_vec().iter().zip(got[0].to_f64_vec()).all(|(a, b)| (a - b).abs() <= 1e-4 * a.abs().max(1.0));
        assert!(close);
    }

    #[test]
    fn prepacked_graphs_own_their_constants_and_do_not_pack_again() {
        let mut b = GraphBuilder::new("prepack");
        let x = b.input("x", DType::F32, [1i64, 3, 6, 6]).unwrap();
        let w = b.constant(weights(&[8, 3, 3, 3]));
        let y = b.conv(x, w, Window { pads: vec![1; 4], ..Window::unit(2) }, 1).unwrap();
        let bias = b.constant(weights(&[8, 1, 1]));
        let y = b.add(y, bias).unwrap();
        b.output(y);
        let g = b.finish().unwrap();
        let pre = prepack_weights(&g, &Device::cpu());
        nnc_ir::verify::verify(&pre).unwrap();
        // No constant shares memory with the given graph's.
        let given: Vec<*const u8> = g
            .nodes
            .iter()
            .filter_map(|n| match &n.op {
                Op::Constant(t) => Some(t.bytes().as_ptr()),
                _ => None,
            })
            .collect();
        for n in &pre.nodes {
            if let Op::Constant(t) = &n.op {
                assert!(!given.contains(&t.bytes().as_ptr()), "{}", pre.describe_node(0));
            }
        }
        assert_eq!(pack_weights(&pre, &Device::cpu()).nodes.len(), pre.nodes.len());
        let input = weights(&[1, 3, 6, 6]);
        assert_eq!(run(&pre, std::slice::from_ref(&input)), run(&g, &[input]));
    }

    #[test]
    fn shared_or_grouped_weights_stay() {
        let mut b = GraphBuilder::new("depthwise");
        let x = b.input("x", DType::F32, [1i64, 8, 5, 5]).unwrap();
        let w = b.constant(weights(&[8, 1, 3, 3]));
        let y = b.conv(x, w, Window::unit(2), 8).unwrap();
        let z = b.add(w, w).unwrap();
        b.output(y);
        b.output(z);
        let g = b.finish().unwrap();
        assert_eq!(pack_weights(&g, &Device::cpu()), g);
    }
}

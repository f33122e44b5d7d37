//! The nodes staged execution runs on the host, between compiled graphs: sequences and optional
//! values (which the Graph IR, having tensors only, cannot hold) and the ops whose output shape
//! depends on their input's values (`NonZero`, `Compress`). Each works on whole tensors' bytes;
//! control flow (`If`, `Loop`, `SequenceMap`) is the executor's, in `mod.rs`.

use super::HostValue;
use crate::proto::NodeProto;
use nnc_ir::{DType, TensorData};

/// The ops that run on the host, with why they cannot be part of a compiled graph.
const HOST_OPS: &[(&str, &str)] = &[
    ("SequenceEmpty", SEQUENCE),
    ("SequenceConstruct", SEQUENCE),
    ("SequenceAt", SEQUENCE),
    ("SequenceInsert", SEQUENCE),
    ("SequenceErase", SEQUENCE),
    ("SequenceLength", SEQUENCE),
    ("SplitToSequence", SEQUENCE),
    ("ConcatFromSequence", SEQUENCE),
    ("SequenceMap", SEQUENCE),
    ("Optional", OPTIONAL),
    ("OptionalHasElement", OPTIONAL),
    ("OptionalGetElement", OPTIONAL),
    ("NonZero", DATA_SHAPED),
    ("Compress", DATA_SHAPED),
    ("Unique", DATA_SHAPED),
    ("NonMaxSuppression", DATA_SHAPED),
];

const SEQUENCE: &str = "it works on sequence values, which compiled graphs (tensors only) cannot hold";
const OPTIONAL: &str = "it works on optional values, which compiled graphs (tensors only) cannot hold";
const DATA_SHAPED: &str = "its output's shape depends on its input's values";

/// Whether nodes of type `op` run on the host in staged execution.
pub fn runs_on_host(op: &str) -> bool {
    HOST_OPS.iter().any(|(name, _)| *name == op)
}

/// Why a node of host op `op` cannot be imported into a graph.
pub fn why_on_host(op: &str) -> String {
    let why = HOST_OPS.iter().find(|(name, _)| *name == op).map_or("", |(_, why)| why);
    format!("{why}; staged execution runs it on the host between compiled graphs")
}

/// Runs host node `node` on its operands (`None` for an absent optional input); returns its
/// outputs in order.
pub fn run(node: &NodeProto, operands: &[Option<HostValue>]) -> Result<Vec<HostValue>, String> {
    let operand = |i: usize| operands.get(i).and_then(|v| v.as_ref());
    let tensor = |i: usize| -> Result<&TensorData, String> {
        match operand(i) {
            Some(HostValue::Tensor(t)) => Ok(t),
            Some(other) => Err(format!("operand {i} is {}, not a tensor", other.kind())),
            None => Err(format!("operand {i} is missing")),
        }
    };
    let sequence = |i: usize| -> Result<&Vec<TensorData>, String> {
        match operand(i) {
            Some(HostValue::Sequence(s)) => Ok(s),
            Some(other) => Err(format!("operand {i} is {}, not a sequence", other.kind())),
            None => Err(format!("operand {i} is missing")),
        }
    };
    let int_attr =
        |name: &str, default: i64| node.attribute.iter().find(|a| a.name() == name).map_or(default, |a| a.i());
    let out = match node.op_type() {
        "SequenceEmpty" => HostValue::Sequence(Vec::new()),
        "SequenceConstruct" => {
            let items: Vec<TensorData> = (0..operands.len()).map(|i| tensor(i).cloned()).collect::<Result<_, _>>()?;
            if let Some(first) = items.first() {
                if items.iter().any(|t| t.dtype() != first.dtype()) {
                    return Err("the tensors of a sequence must have one element type".into());
                }
            }
            HostValue::Sequence(items)
        }
        "SequenceAt" => {
            let seq = sequence(0)?;
            let at = position(tensor(1)?, seq.len(), false)?;
            HostValue::Tensor(seq[at].clone())
        }
        "SequenceInsert" => {
            let mut seq = sequence(0)?.clone();
            let item = tensor(1)?.clone();
            if seq.first().is_some_and(|f| f.dtype() != item.dtype()) {
                return Err(format!("inserting a {} tensor into a sequence of {}", item.dtype(), seq[0].dtype()));
            }
            let at = match operand(2) {
                Some(_) => position(tensor(2)?, seq.len(), true)?,
                None => seq.len(),
            };
            seq.insert(at, item);
            HostValue::Sequence(seq)
        }
        "SequenceErase" => {
            let mut seq = sequence(0)?.clone();
            if seq.is_empty() {
                return Err("erasing from an empty sequence".into());
            }
            let at = match operand(1) {
                Some(_) => position(tensor(1)?, seq.len(), false)?,
                None => seq.len() - 1,
            };
            seq.remove(at);
            HostValue::Sequence(seq)
        }
        "SequenceLength" => HostValue::Tensor(TensorData::scalar(sequence(0)?.len() as i64)),
        "SplitToSequence" => {
            let split = match operand(1) {
                Some(_) => Some(tensor(1)?),
                None => None,
            };
            split_to_sequence(tensor(0)?, split, int_attr("axis", 0), int_attr("keepdims", 1) != 0)?
        }
        "ConcatFromSequence" => {
            let axis = node.attribute.iter().find(|a| a.name() == "axis").map(|a| a.i()).ok_or("`axis` is missing")?;
            HostValue::Tensor(concat_from_sequence(sequence(0)?, axis, int_attr("new_axis", 0) != 0)?)
        }
        "Optional" => HostValue::Optional(operand(0).cloned().map(Box::new)),
        "OptionalHasElement" => {
            let has = match operand(0) {
                None | Some(HostValue::Optional(None)) => false,
                Some(_) => true,
            };
            HostValue::Tensor(TensorData::scalar(has))
        }
        "OptionalGetElement" => match operand(0) {
            Some(HostValue::Optional(Some(v))) => (**v).clone(),
            Some(HostValue::Optional(None)) => return Err("the optional value is empty".into()),
            Some(v) => v.clone(),
            None => return Err("operand 0 is missing".into()),
        },
        "Identity" => operand(0).cloned().ok_or("operand 0 is missing")?,
        "NonZero" => HostValue::Tensor(non_zero(tensor(0)?)),
        "Compress" => {
            let axis = node.attribute.iter().find(|a| a.name() == "axis").map(|a| a.i());
            HostValue::Tensor(compress(tensor(0)?, tensor(1)?, axis)?)
        }
        "Unique" => {
            let axis = node.attribute.iter().find(|a| a.name() == "axis").map(|a| a.i());
            return unique(tensor(0)?, axis, int_attr("sorted", 1) != 0);
        }
        "NonMaxSuppression" => {
            let scalar = |i: usize| -> Result<Option<f64>, String> {
                match operand(i) {
                    Some(_) => Ok(tensor(i)?.to_f64_vec().first().copied()),
                    None => Ok(None),
                }
            };
            let limits = NmsLimits {
                max_per_class: scalar(2)?.unwrap_or(0.0).max(0.0) as usize,
                iou: scalar(3)?.unwrap_or(0.0),
                score: scalar(4)?,
                center_point_box: int_attr("center_point_box", 0) != 0,
            };
            HostValue::Tensor(non_max_suppression(tensor(0)?, tensor(1)?, &limits)?)
        }
        op => return Err(format!("`{op}` does not run on the host")),
    };
    if let HostValue::Sequence(items) = &out {
        let bytes = items.iter().fold(0usize, |n, t| n.saturating_add(t.bytes().len()));
        if bytes > MAX_SEQUENCE_BYTES {
            return Err(format!("the sequence would hold more than {} MiB", MAX_SEQUENCE_BYTES >> 20));
        }
    }
    Ok(vec![out])
}

/// Bytes one sequence may hold (a loop appending to one would otherwise grow it without bound).
const MAX_SEQUENCE_BYTES: usize = 1 << 30;

/// A sequence position from a scalar index tensor, negative from the end; `end_ok` admits
/// `len` itself (an insert at the end).
fn position(t: &TensorData, len: usize, end_ok: bool) -> Result<usize, String> {
    let &[p] = t.to_i64_vec().as_slice() else { return Err("the position must be one integer".into()) };
    let limit = len as i64 + i64::from(end_ok);
    let at = if p < 0 { p + len as i64 } else { p };
    if at < 0 || at >= limit {
        return Err(format!("position {p} is outside a sequence of {len}"));
    }
    Ok(at as usize)
}

/// `axis` of a rank-`rank` tensor, negative from the end.
fn axis_of(axis: i64, rank: usize) -> Result<usize, String> {
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    usize::try_from(a).ok().filter(|&a| a < rank).ok_or(format!("axis {axis} is out of range for rank {rank}"))
}

/// Elements before `axis` (outer), and bytes after it per index of `axis` (inner).
fn around(t: &TensorData, axis: usize) -> (usize, usize) {
    let outer = t.shape()[..axis].iter().product();
    let inner = t.shape()[axis + 1..].iter().product::<usize>() * t.dtype().size_bytes();
    (outer, inner)
}

/// The indices `picks` of `axis` of `t`, in that order.
fn take(t: &TensorData, axis: usize, picks: &[usize]) -> TensorData {
    let (outer, inner) = around(t, axis);
    let len = t.shape()[axis];
    let bytes = t.bytes();
    let mut out = Vec::with_capacity(outer * picks.len() * inner);
    for o in 0..outer {
        for &p in picks {
            let at = (o * len + p) * inner;
            out.extend_from_slice(&bytes[at..at + inner]);
        }
    }
    let mut shape = t.shape().to_vec();
    shape[axis] = picks.len();
    TensorData::from_bytes(t.dtype(), shape, out.into()).expect("sizes follow the shape")
}

fn split_to_sequence(
    t: &TensorData,
    split: Option<&TensorData>,
    axis: i64,
    keepdims: bool,
) -> Result<HostValue, String> {
    let axis = axis_of(axis, t.shape().len())?;
    let len = t.shape()[axis];
    let (sizes, squeeze) = match split {
        None => (vec![1; len], !keepdims),
        Some(s) if s.shape().is_empty() => {
            let &[n] = s.to_i64_vec().as_slice() else { unreachable!("a scalar has one value") };
            let n = usize::try_from(n).ok().filter(|&n| n > 0).ok_or(format!("split {n} must be positive"))?;
            ((0..len).step_by(n).map(|start| n.min(len - start)).collect(), false)
        }
        Some(s) => {
            let sizes: Vec<usize> = s
                .to_i64_vec()
                .iter()
                .map(|&n| usize::try_from(n).map_err(|_| format!("split size {n} is negative")))
                .collect::<Result<_, _>>()?;
            if sizes.iter().sum::<usize>() != len {
                return Err(format!("split sizes {sizes:?} do not add up to the axis' {len}"));
            }
            (sizes, false)
        }
    };
    let mut start = 0;
    let mut items = Vec::new();
    for n in sizes {
        let piece = take(t, axis, &(start..start + n).collect::<Vec<_>>());
        start += n;
        items.push(if squeeze {
            let mut shape = piece.shape().to_vec();
            shape.remove(axis);
            piece.reshaped(shape).expect("one element fewer axis of extent 1")
        } else {
            piece
        });
    }
    Ok(HostValue::Sequence(items))
}

fn concat_from_sequence(items: &[TensorData], axis: i64, new_axis: bool) -> Result<TensorData, String> {
    let first = items.first().ok_or("concatenating an empty sequence")?;
    let rank = first.shape().len() + usize::from(new_axis);
    let axis = axis_of(axis, rank)?;
    let pieces: Vec<TensorData> = if new_axis {
        items
            .iter()
            .map(|t| {
                let mut shape = t.shape().to_vec();
                shape.insert(axis, 1);
                t.reshaped(shape).expect("an axis of extent 1 added")
            })
            .collect()
    } else {
        items.to_vec()
    };
    let mut shape = pieces[0].shape().to_vec();
    for p in &pieces[1..] {
        let same = p.dtype() == first.dtype()
            && p.shape().len() == shape.len()
            && p.shape().iter().zip(&shape).enumerate().all(|(k, (a, b))| k == axis || a == b);
        if !same {
            return Err(format!("cannot concatenate {:?} and {:?} along axis {axis}", shape, p.shape()));
        }
    }
    shape[axis] = pieces.iter().map(|p| p.shape()[axis]).sum();
    let outer: usize = shape[..axis].iter().product();
    let mut out = Vec::new();
    for o in 0..outer {
        for p in &pieces {
            let (_, inner) = around(p, axis);
            let chunk = p.shape()[axis] * inner;
            out.extend_from_slice(&p.bytes()[o * chunk..(o + 1) * chunk]);
        }
    }
    TensorData::from_bytes(first.dtype(), shape, out.into()).map_err(|e| e.to_string())
}

/// Tensors of one type stacked along a new first axis.
pub fn stack(items: &[TensorData]) -> Result<TensorData, String> {
    let first = items.first().ok_or("nothing to stack")?;
    if let Some(t) = items.iter().find(|t| t.dtype() != first.dtype() || t.shape() != first.shape()) {
        return Err(format!(
            "the iterations give {}{:?} and {}{:?}, which cannot be stacked",
            first.dtype(),
            first.shape(),
            t.dtype(),
            t.shape()
        ));
    }
    let bytes: Vec<u8> = items.iter().flat_map(|t| t.bytes().iter().copied()).collect();
    let mut shape = vec![items.len()];
    shape.extend_from_slice(first.shape());
    TensorData::from_bytes(first.dtype(), shape, bytes.into()).map_err(|e| e.to_string())
}

/// ONNX `NonZero`: the indices of the non-zero elements, one row per axis, in row-major order.
fn non_zero(t: &TensorData) -> TensorData {
    let values = t.to_f64_vec();
    let hits: Vec<usize> = values.iter().enumerate().filter(|(_, v)| **v != 0.0).map(|(i, _)| i).collect();
    let rank = t.shape().len();
    let mut out = vec![0i64; rank * hits.len()];
    for (j, &flat) in hits.iter().enumerate() {
        let mut rest = flat;
        for axis in (0..rank).rev() {
            out[axis * hits.len() + j] = (rest % t.shape()[axis]) as i64;
            rest /= t.shape()[axis];
        }
    }
    TensorData::from_vec(vec![rank, hits.len()], &out)
}

/// ONNX `Compress`: the slices of `axis` (of the flattened input without one) whose condition
/// is true; the condition may be shorter than the axis.
fn compress(t: &TensorData, condition: &TensorData, axis: Option<i64>) -> Result<TensorData, String> {
    if condition.dtype() != DType::Bool || condition.shape().len() != 1 {
        return Err("the condition must be a 1-D bool tensor".into());
    }
    let (t, axis) = match axis {
        Some(a) => (t.clone(), axis_of(a, t.shape().len())?),
        None => (t.reshaped(vec![t.len()]).expect("same element count"), 0),
    };
    let len = t.shape()[axis];
    if condition.len() > len {
        return Err(format!("the condition has {} entries for an axis of {len}", condition.len()));
    }
    let picks: Vec<usize> =
        condition.to_i64_vec().iter().enumerate().filter(|(_, c)| **c != 0).map(|(i, _)| i).collect();
    Ok(take(&t, axis, &picks))
}

/// ONNX `Unique`: the distinct elements (or slices along `axis`), ascending with `sorted`,
/// else in order of first occurrence; then each one's first index, each input element's (or
/// slice's) index among them, and each one's count.
fn unique(t: &TensorData, axis: Option<i64>, sorted: bool) -> Result<Vec<HostValue>, String> {
    let (t, axis) = match axis {
        Some(a) => (t.clone(), axis_of(a, t.shape().len())?),
        None => (t.reshaped(vec![t.len()]).expect("same element count"), 0),
    };
    let len = t.shape()[axis];
    let outer: usize = t.shape()[..axis].iter().product();
    let inner: usize = t.shape()[axis + 1..].iter().product();
    // Each slice's values, compared exactly (integers as i64, floats as f64).
    let ints = t.dtype().is_int() || t.dtype() == DType::Bool;
    let (as_int, as_float) = if ints { (t.to_i64_vec(), Vec::new()) } else { (Vec::new(), t.to_f64_vec()) };
    let at = |p: usize, o: usize, i: usize| (o * len + p) * inner + i;
    let cmp = |a: usize, b: usize| -> std::cmp::Ordering {
        for o in 0..outer {
            for i in 0..inner {
                let ord = match ints {
                    true => as_int[at(a, o, i)].cmp(&as_int[at(b, o, i)]),
                    false => {
                        as_float[at(a, o, i)].partial_cmp(&as_float[at(b, o, i)]).unwrap_or(std::cmp::Ordering::Equal)
                    }
                };
                if ord.is_ne() {
                    return ord;
                }
            }
        }
        std::cmp::Ordering::Equal
    };
    // Slices sorted by value, ties by position: each run of equal slices starts at its first.
    let mut order: Vec<usize> = (0..len).collect();
    order.sort_by(|&a, &b| cmp(a, b).then(a.cmp(&b)));
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for &p in &order {
        match groups.last_mut() {
            Some(g) if cmp(g[0], p).is_eq() => g.push(p),
            _ => groups.push(vec![p]),
        }
    }
    if !sorted {
        groups.sort_by_key(|g| g[0]);
    }
    let firsts: Vec<usize> = groups.iter().map(|g| g[0]).collect();
    let mut inverse = vec![0i64; len];
    for (k, g) in groups.iter().enumerate() {
        for &p in g {
            inverse[p] = k as i64;
        }
    }
    let ids = |v: Vec<i64>| HostValue::Tensor(TensorData::from_vec(vec![v.len()], &v));
    Ok(vec![
        HostValue::Tensor(take(&t, axis, &firsts)),
        ids(firsts.iter().map(|&f| f as i64).collect()),
        ids(inverse),
        ids(groups.iter().map(|g| g.len() as i64).collect()),
    ])
}

struct NmsLimits {
    max_per_class: usize,
    iou: f64,
    /// Only boxes scoring above this are candidates.
    score: Option<f64>,
    /// Boxes are `[x_center, y_center, width, height]` (else `[y1, x1, y2, x2]`).
    center_point_box: bool,
}

/// ONNX `NonMaxSuppression`: per batch and class, boxes by descending score (ties by index),
/// each kept unless its intersection over union with a kept one exceeds the threshold; rows of
/// `[batch, class, box]`.
fn non_max_suppression(boxes: &TensorData, scores: &TensorData, limits: &NmsLimits) -> Result<TensorData, String> {
    let (&[batches, count, 4], &[score_batches, classes, score_count]) = (boxes.shape(), scores.shape()) else {
        return Err(format!(
            "boxes {:?} and scores {:?} are not [B, N, 4] and [B, C, N]",
            boxes.shape(),
            scores.shape()
        ));
    };
    if score_batches != batches || score_count != count {
        return Err(format!("boxes {:?} and scores {:?} disagree", boxes.shape(), scores.shape()));
    }
    let (b, s) = (boxes.to_f64_vec(), scores.to_f64_vec());
    // A box as (x_min, x_max, y_min, y_max).
    let extent = |batch: usize, i: usize| {
        let v = &b[(batch * count + i) * 4..][..4];
        let span = |a: f64, b: f64| (a.min(b), a.max(b));
        if limits.center_point_box {
            (v[0] - v[2] / 2.0, v[0] + v[2] / 2.0, v[1] - v[3] / 2.0, v[1] + v[3] / 2.0)
        } else {
            let ((x0, x1), (y0, y1)) = (span(v[1], v[3]), span(v[0], v[2]));
            (x0, x1, y0, y1)
        }
    };
    let suppresses = |batch: usize, i: usize, j: usize| {
        let (a, c) = (extent(batch, i), extent(batch, j));
        let (w, h) = (a.1.min(c.1) - a.0.max(c.0), a.3.min(c.3) - a.2.max(c.2));
        if w <= 0.0 || h <= 0.0 {
            return false;
        }
        let (area_a, area_c) = ((a.1 - a.0) * (a.3 - a.2), (c.1 - c.0) * (c.3 - c.2));
        let union = area_a + area_c - w * h;
        area_a > 0.0 && area_c > 0.0 && union > 0.0 && w * h / union > limits.iou
    };
    let mut rows = Vec::new();
    for batch in 0..batches {
        for class in 0..classes {
            let score = |i: usize| s[(batch * classes + class) * count + i];
            let mut candidates: Vec<usize> =
                (0..count).filter(|&i| limits.score.is_none_or(|t| score(i) > t)).collect();
            candidates
                .sort_by(|&i, &j| score(j).partial_cmp(&score(i)).unwrap_or(std::cmp::Ordering::Equal).then(i.cmp(&j)));
            let mut kept: Vec<usize> = Vec::new();
            for i in candidates {
                if kept.len() >= limits.max_per_class {
                    break;
                }
                if !kept.iter().any(|&k| suppresses(batch, i, k)) {
                    kept.push(i);
                    rows.extend([batch as i64, class as i64, i as i64]);
                }
            }
        }
    }
    Ok(TensorData::from_vec(vec![rows.len() / 3, 3], &rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(op: &str) -> NodeProto {
        NodeProto { op_type: Some(op.into()), ..Default::default() }
    }

    fn tensor(v: HostValue) -> TensorData {
        match v {
            HostValue::Tensor(t) => t,
            other => panic!("expected a tensor, got {}", other.kind()),
        }
    }

    #[test]
    fn non_zero_lists_indices_per_axis() {
        let t = TensorData::from_vec(vec![2, 2], &[1.0f32, 0.0, 1.0, 1.0]);
        let got = non_zero(&t);
        assert_eq!(got.shape(), &[2, 3]);
        assert_eq!(got.to_i64_vec(), vec![0, 1, 1, 0, 0, 1]);
    }

    #[test]
    fn compress_selects_slices() {
        let t = TensorData::from_vec(vec![3, 2], &[1i32, 2, 3, 4, 5, 6]);
        let c = TensorData::from_vec(vec![2], &[false, true]);
        assert_eq!(compress(&t, &c, Some(0)).unwrap().to_i64_vec(), vec![3, 4]);
        assert_eq!(compress(&t, &c, Some(1)).unwrap().to_i64_vec(), vec![2, 4, 6]);
        assert_eq!(compress(&t, &c, None).unwrap().to_i64_vec(), vec![2]);
        assert!(compress(&t, &TensorData::from_vec(vec![4], &[true; 4]), Some(0)).is_err());
    }

    #[test]
    fn unique_sorted_and_in_first_occurrence_order() {
        let t = TensorData::from_vec(vec![6], &[2f32, 1.0, 1.0, 3.0, 4.0, 3.0]);
        let sorted = unique(&t, None, true).unwrap();
        let all: Vec<Vec<i64>> = sorted.into_iter().map(|v| tensor(v).to_i64_vec()).collect();
        assert_eq!(all, vec![vec![1, 2, 3, 4], vec![1, 0, 3, 4], vec![1, 0, 0, 2, 3, 2], vec![2, 1, 2, 1]]);
        let first = unique(&t, None, false).unwrap();
        let all: Vec<Vec<i64>> = first.into_iter().map(|v| tensor(v).to_i64_vec()).collect();
        assert_eq!(all, vec![vec![2, 1, 3, 4], vec![0, 1, 3, 4], vec![0, 1, 1, 2, 3, 2], vec![1, 2, 2, 1]]);
        // Rows along axis 0.
        let m = TensorData::from_vec(vec![3, 2], &[1i64, 2, 0, 5, 1, 2]);
        let rows = unique(&m, Some(0), true).unwrap();
        assert_eq!(tensor(rows[0].clone()).to_i64_vec(), vec![0, 5, 1, 2]);
        assert_eq!(tensor(rows[2].clone()).to_i64_vec(), vec![1, 0, 1]);
    }

    #[test]
    fn nms_keeps_the_best_of_overlapping_boxes() {
        // Two overlapping boxes and one apart ([y1, x1, y2, x2]); the first scores lower.
        let boxes = TensorData::from_vec(vec![1, 3, 4], &[0f32, 0., 1., 1., 0., 0.1, 1., 1.1, 0., 5., 1., 6.]);
        let scores = TensorData::from_vec(vec![1, 1, 3], &[0.8f32, 0.9, 0.3]);
        let limits = NmsLimits { max_per_class: 10, iou: 0.5, score: None, center_point_box: false };
        assert_eq!(non_max_suppression(&boxes, &scores, &limits).unwrap().to_i64_vec(), vec![0, 0, 1, 0, 0, 2]);
        let strict = NmsLimits { score: Some(0.5), ..limits };
        assert_eq!(non_max_suppression(&boxes, &scores, &strict).unwrap().to_i64_vec(), vec![0, 0, 1]);
    }

    #[test]
    fn sequences_split_and_concatenate_back() {
        let t = TensorData::from_vec(vec![2, 3], &[1f32, 2., 3., 4., 5., 6.]);
        let HostValue::Sequence(items) = split_to_sequence(&t, None, 1, false).unwrap() else { panic!() };
        assert_eq!(items.len(), 3);
        assert_eq!(items[1].shape(), &[2]);
        assert_eq!(concat_from_sequence(&items, 1, true).unwrap(), t);
        let two = TensorData::scalar(2i64);
        let HostValue::Sequence(items) = split_to_sequence(&t, Some(&two), 1, true).unwrap() else { panic!() };
        assert_eq!(items.iter().map(|i| i.shape()[1]).collect::<Vec<_>>(), vec![2, 1]);
        assert_eq!(concat_from_sequence(&items, -1, false).unwrap(), t);
    }

    #[test]
    fn sequence_positions_and_errors() {
        let a = HostValue::Tensor(TensorData::scalar(1f32));
        let b = HostValue::Tensor(TensorData::scalar(2f32));
        let seq = run(&node("SequenceConstruct"), &[Some(a), Some(b)]).unwrap().remove(0);
        let at =
            |p: i64| run(&node("SequenceAt"), &[Some(seq.clone()), Some(HostValue::Tensor(TensorData::scalar(p)))]);
        assert_eq!(tensor(at(-1).unwrap().remove(0)).to_f64_vec(), vec![2.0]);
        assert!(at(2).unwrap_err().contains("outside a sequence of 2"));
        let len = run(&node("SequenceLength"), &[Some(seq)]).unwrap().remove(0);
        assert_eq!(tensor(len).to_i64_vec(), vec![2]);
        let empty = run(&node("Optional"), &[None]).unwrap().remove(0);
        let has = run(&node("OptionalHasElement"), &[Some(empty.clone())]).unwrap().remove(0);
        assert_eq!(tensor(has).to_i64_vec(), vec![0]);
        assert!(run(&node("OptionalGetElement"), &[Some(empty)]).is_err());
    }
}

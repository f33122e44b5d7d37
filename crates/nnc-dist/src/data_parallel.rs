//! Data-parallel training: every rank runs the same training step on its own slice of the global
//! batch, and the gradients are averaged over the ranks before the update, so every rank ends
//! each step with the same parameters.
//!
//! The averaging is in the step's graph ([`step_graph`]): gradients are packed into buckets of
//! at most `bucket_bytes` (flattened and concatenated), each bucket is one `all_reduce {mean}`,
//! and the results are sliced back. The loss is averaged too, so every rank reports the global
//! batch's loss. With equal slices, the mean of the ranks' mean losses is the global batch's
//! mean loss, so the averaged gradient is the one-process gradient of the global batch (up to
//! the order of the additions).

use crate::DistError;
use nnc_autodiff::train::{training_step_with, Optimizer};
use nnc_autodiff::GradError;
use nnc_ir::{Collective, CollectiveReduce, Dim, Graph, GraphBuilder, Op, TensorData, ValueId};

/// How gradients travel between the ranks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataParallel {
    /// The number of ranks.
    pub world: usize,
    /// The most bytes of gradient in one `all_reduce` (at least one gradient per bucket).
    pub bucket_bytes: usize,
}

impl DataParallel {
    /// `world` ranks, 1 MiB buckets (few collectives for small models, and large models still
    /// split so a bucket can travel while later ones are being packed).
    pub fn new(world: usize) -> DataParallel {
        DataParallel { world, bucket_bytes: 1 << 20 }
    }
}

/// The training step of one rank: `forward` is the model on one rank's slice of the batch (see
/// [`nnc_autodiff::train::training_step`] for inputs, outputs and `params`); its gradients and
/// loss are averaged over `dp.world` ranks before `optimizer`'s update.
pub fn step_graph(
    forward: &Graph,
    loss_name: &str,
    params: &[&str],
    optimizer: &Optimizer,
    dp: &DataParallel,
) -> Result<Graph, DistError> {
    if dp.world == 0 {
        return Err(DistError::Program("data-parallel training over 0 ranks".into()));
    }
    let world = dp.world;
    let mean = move |b: &mut GraphBuilder, v: ValueId| {
        b.op1(Op::Collective(Collective::AllReduce { op: CollectiveReduce::Mean, world }), &[v])
    };
    let mut combine =
        |b: &mut GraphBuilder, loss: ValueId, grads: &[ValueId]| -> Result<(ValueId, Vec<ValueId>), GradError> {
            let loss = mean(b, loss)?;
            let mut averaged = Vec::with_capacity(grads.len());
            for bucket in buckets(b, grads, dp.bucket_bytes)? {
                averaged.extend(average_bucket(b, &bucket, &mean)?);
            }
            Ok((loss, averaged))
        };
    Ok(training_step_with(forward, loss_name, params, optimizer, &mut combine)?)
}

/// Consecutive gradients grouped so that each group holds at most `limit` bytes (a larger
/// gradient travels alone).
fn buckets(b: &GraphBuilder, grads: &[ValueId], limit: usize) -> Result<Vec<Vec<ValueId>>, GradError> {
    let mut out: Vec<Vec<ValueId>> = Vec::new();
    let mut bytes = 0usize;
    for &g in grads {
        let ty = b.ty(g);
        let n = ty.static_shape().ok_or_else(|| {
            GradError::Train(format!(
                "a gradient of symbolic shape {ty}: data-parallel buckets need static parameter shapes"
            ))
        })?;
        let size = n.iter().product::<usize>() * ty.dtype.size_bytes();
        match out.last_mut() {
            Some(last) if bytes + size <= limit => {
                last.push(g);
                bytes += size;
            }
            _ => {
                out.push(vec![g]);
                bytes = size;
            }
        }
    }
    Ok(out)
}

/// One `all_reduce {mean}` over the gradients of `bucket`, flattened and concatenated, then
/// sliced back into their shapes.
fn average_bucket(
    b: &mut GraphBuilder,
    bucket: &[ValueId],
    mean: &dyn Fn(&mut GraphBuilder, ValueId) -> Result<ValueId, nnc_ir::IrError>,
) -> Result<Vec<ValueId>, GradError> {
    if let [g] = bucket {
        return Ok(vec![mean(b, *g)?]);
    }
    let shapes: Vec<Vec<Dim>> = bucket.iter().map(|&g| b.ty(g).shape.clone()).collect();
    let lengths: Vec<i64> =
        bucket.iter().map(|&g| b.ty(g).static_shape().map_or(0, |s| s.iter().product::<usize>() as i64)).collect();
    let flat = bucket
        .iter()
        .zip(&lengths)
        .map(|(&g, &n)| b.reshape(g, vec![Dim::constant(n)]))
        .collect::<Result<Vec<_>, _>>()?;
    let packed = b.op1(Op::Concat { axis: 0 }, &flat)?;
    let averaged = mean(b, packed)?;
    let mut start = 0;
    let mut out = Vec::with_capacity(bucket.len());
    for (shape, n) in shapes.into_iter().zip(lengths) {
        let part = b.op1(
            Op::Slice { axes: vec![0], starts: vec![start], ends: vec![start + n], steps: vec![1] },
            &[averaged],
        )?;
        out.push(b.reshape(part, shape)?);
        start += n;
    }
    Ok(out)
}

/// Rank `rank`'s rows of a global batch `global` (split along axis 0 into `world` equal
/// slices). A batch whose rows do not divide by the world is an error: padding would change the
/// mean loss, and unequal slices would make the average of the ranks' means a different loss.
pub fn shard_rows(global: &TensorData, rank: usize, world: usize) -> Result<TensorData, DistError> {
    let rows = global
        .shape()
        .first()
        .copied()
        .ok_or_else(|| DistError::Program("a batch of rank 0 has no rows to split".into()))?;
    if world == 0 || rows % world != 0 || rank >= world {
        return Err(DistError::Program(format!(
            "a global batch of {rows} rows does not split evenly over {world} ranks: choose a batch size that is a multiple \
             of the rank count"
        )));
    }
    let per = rows / world;
    let row_bytes = global.bytes().len() / rows.max(1);
    let bytes = global.bytes().slice(rank * per * row_bytes..(rank + 1) * per * row_bytes);
    let mut shape = global.shape().to_vec();
    shape[0] = per;
    TensorData::from_bytes(global.dtype(), shape, bytes).map_err(|e| DistError::Program(e.to_string()))
}

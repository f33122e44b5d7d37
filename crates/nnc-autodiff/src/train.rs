//! Training as graph ops: losses, optimizer updates, and [`training_step`], one graph that runs
//! forward, backward and the parameter update (so a compiled step needs no host round trip).

use crate::{backward, copy_graph, name_result, GradError};
use nnc_ir::{BinaryOp, Dim, Graph, GraphBuilder, IrError, UnaryOp, ValueId};
use std::collections::HashSet;

/// Mean squared error: `mean((pred - target)²)` over every element, a scalar. `target`
/// broadcasts against `pred`.
pub fn mse(b: &mut GraphBuilder, pred: ValueId, target: ValueId) -> Result<ValueId, IrError> {
    let d = b.sub(pred, target)?;
    let sq = b.mul(d, d)?;
    let axes: Vec<i64> = (0..b.ty(sq).rank() as i64).collect();
    b.reduce_mean(sq, &axes, false)
}

/// Softmax cross-entropy with integer class labels: `logits [.., K]` (classes on the last
/// axis), `labels [..]` (`i64` or `i32`, one class index per row); the mean over the rows of
/// `-log_softmax(logits)[label]`, a scalar.
pub fn softmax_cross_entropy(b: &mut GraphBuilder, logits: ValueId, labels: ValueId) -> Result<ValueId, IrError> {
    let r = b.ty(logits).rank();
    let lsm = b.log_softmax(logits, -1)?;
    let mut shape = b.ty(labels).shape.clone();
    shape.push(Dim::constant(1));
    let idx = b.reshape(labels, shape)?;
    let picked = b.op1(nnc_ir::Op::GatherElements { axis: r - 1 }, &[lsm, idx])?;
    let axes: Vec<i64> = (0..r as i64).collect();
    let mean = b.reduce_mean(picked, &axes, false)?;
    b.unary(UnaryOp::Neg, mean)
}

/// SGD with momentum (PyTorch's form): `v' = momentum·v + grad`, `param' = param - lr·v'`.
/// Returns `(param', v')`.
pub fn sgd_momentum(
    b: &mut GraphBuilder,
    param: ValueId,
    grad: ValueId,
    velocity: ValueId,
    lr: f64,
    momentum: f64,
) -> Result<(ValueId, ValueId), IrError> {
    let mv = b.binary_scalar(BinaryOp::Mul, velocity, momentum)?;
    let v = b.add(mv, grad)?;
    let step = b.binary_scalar(BinaryOp::Mul, v, lr)?;
    let p = b.sub(param, step)?;
    Ok((p, v))
}

/// Adam: `m' = β1·m + (1-β1)·g`, `v' = β2·v + (1-β2)·g²`,
/// `param' = param - lr · (m' / (1 - β1^t)) / (sqrt(v' / (1 - β2^t)) + eps)`, where `step` is a
/// scalar of the parameter's dtype holding `t`, the 1-based number of this update (a graph
/// value, so the bias correction happens in the graph). Returns `(param', m', v')`.
#[allow(clippy::too_many_arguments)]
pub fn adam(
    b: &mut GraphBuilder,
    param: ValueId,
    grad: ValueId,
    m: ValueId,
    v: ValueId,
    step: ValueId,
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
) -> Result<(ValueId, ValueId, ValueId), IrError> {
    let dt = b.ty(param).dtype;
    let m1 = b.binary_scalar(BinaryOp::Mul, m, beta1)?;
    let g1 = b.binary_scalar(BinaryOp::Mul, grad, 1.0 - beta1)?;
    let m_new = b.add(m1, g1)?;
    let v1 = b.binary_scalar(BinaryOp::Mul, v, beta2)?;
    let g2 = b.mul(grad, grad)?;
    let g2 = b.binary_scalar(BinaryOp::Mul, g2, 1.0 - beta2)?;
    let v_new = b.add(v1, g2)?;
    let correction = |b: &mut GraphBuilder, beta: f64| -> Result<ValueId, IrError> {
        let bt = b.scalar(dt, beta);
        let pw = b.binary(BinaryOp::Pow, bt, step)?;
        let one = b.scalar(dt, 1.0);
        b.sub(one, pw)
    };
    let c1 = correction(b, beta1)?;
    let c2 = correction(b, beta2)?;
    let m_hat = b.div(m_new, c1)?;
    let v_hat = b.div(v_new, c2)?;
    let root = b.unary(UnaryOp::Sqrt, v_hat)?;
    let denom = b.binary_scalar(BinaryOp::Add, root, eps)?;
    let ratio = b.div(m_hat, denom)?;
    let delta = b.binary_scalar(BinaryOp::Mul, ratio, lr)?;
    let p_new = b.sub(param, delta)?;
    Ok((p_new, m_new, v_new))
}

/// The update rule of a [`training_step`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Optimizer {
    /// [`sgd_momentum`]; state: one velocity per parameter.
    Sgd { lr: f64, momentum: f64 },
    /// [`adam`]; state: `m` and `v` per parameter and one step counter.
    Adam { lr: f64, beta1: f64, beta2: f64, eps: f64 },
}

/// One training step as one graph: forward, backward and update.
///
/// `forward` computes the value named `loss_name` (a float scalar); `params` name graph inputs
/// of `forward` that are trained. The result's inputs are the other inputs of `forward` (data,
/// in their order), then the parameters (in `params` order), then the optimizer state:
///
/// - `Sgd`: `<p>.velocity` for each parameter;
/// - `Adam`: `<p>.m` for each parameter, then `<p>.v` for each, then `adam.step` (a scalar of the
///   loss's dtype: the number of updates done so far, 0 at first).
///
/// Its outputs are the loss (computed with the current parameters), the new parameters
/// (`<p>.next`), then the new state in the same order as the state inputs (`<state>.next`), so
/// the outputs after the loss feed the next step's parameter and state inputs as they are.
pub fn training_step(
    forward: &Graph,
    loss_name: &str,
    params: &[&str],
    optimizer: &Optimizer,
) -> Result<Graph, GradError> {
    training_step_with(forward, loss_name, params, optimizer, &mut |_, loss, grads| Ok((loss, grads.to_vec())))
}

/// What a [`training_step_with`] does between the backward pass and the update: given the
/// loss and the parameters' gradients (in `params` order), the loss to report and the gradients
/// to apply. Data-parallel training averages both over the ranks here (`nnc-dist`).
pub type GradientHook<'a> =
    dyn FnMut(&mut GraphBuilder, ValueId, &[ValueId]) -> Result<(ValueId, Vec<ValueId>), GradError> + 'a;

/// [`training_step`], with `combine` applied to the loss and the gradients before the update.
pub fn training_step_with(
    forward: &Graph,
    loss_name: &str,
    params: &[&str],
    optimizer: &Optimizer,
    combine: &mut GradientHook<'_>,
) -> Result<Graph, GradError> {
    let not_found = |what: String| GradError::NotInGraph { what, graph: forward.name.clone() };
    let loss = forward.find(loss_name).ok_or_else(|| not_found(format!("the loss `{loss_name}`")))?;
    let mut param_ids = Vec::new();
    for &p in params {
        let id = forward.find(p).ok_or_else(|| not_found(format!("the parameter `{p}`")))?;
        if !forward.inputs.contains(&id) {
            return Err(GradError::Train(format!("parameter `{p}` must be an input of graph `{}`", forward.name)));
        }
        if param_ids.contains(&id) {
            return Err(GradError::Train(format!("parameter `{p}` is listed twice")));
        }
        param_ids.push(id);
    }
    let mut order: Vec<ValueId> = forward.inputs.iter().copied().filter(|i| !param_ids.contains(i)).collect();
    order.extend(param_ids.iter().copied());
    let mut b = GraphBuilder::new(&format!("{}_train", forward.name));
    let map = copy_graph(&mut b, forward, &order)?;
    let new_params: Vec<ValueId> = param_ids.iter().map(|p| map[p]).collect();
    let loss_v = map[&loss];
    let grads = backward(&mut b, loss_v, &new_params)?;
    let (loss_v, grads) = combine(&mut b, loss_v, &grads)?;
    if grads.len() != new_params.len() {
        return Err(GradError::Train(format!("{} gradients for {} parameters", grads.len(), new_params.len())));
    }
    let state_input = |b: &mut GraphBuilder, name: String, like: ValueId| -> Result<ValueId, GradError> {
        let t = b.ty(like).clone();
        Ok(b.input(&name, t.dtype, t.shape)?)
    };
    let mut outputs: Vec<(ValueId, String)> = Vec::new();
    match *optimizer {
        Optimizer::Sgd { lr, momentum } => {
            let vel: Vec<ValueId> = params
                .iter()
                .zip(&new_params)
                .map(|(p, &v)| state_input(&mut b, format!("{p}.velocity"), v))
                .collect::<Result<_, _>>()?;
            let mut next_v = Vec::new();
            for (k, p) in params.iter().enumerate() {
                let (np, nv) = sgd_momentum(&mut b, new_params[k], grads[k], vel[k], lr, momentum)?;
                outputs.push((np, format!("{p}.next")));
                next_v.push((nv, format!("{p}.velocity.next")));
            }
            outputs.extend(next_v);
        }
        Optimizer::Adam { lr, beta1, beta2, eps } => {
            let ms: Vec<ValueId> = params
                .iter()
                .zip(&new_params)
                .map(|(p, &v)| state_input(&mut b, format!("{p}.m"), v))
                .collect::<Result<_, _>>()?;
            let vs: Vec<ValueId> = params
                .iter()
                .zip(&new_params)
                .map(|(p, &v)| state_input(&mut b, format!("{p}.v"), v))
                .collect::<Result<_, _>>()?;
            let dt = b.ty(loss_v).dtype;
            let step = b.input("adam.step", dt, Vec::<Dim>::new())?;
            let t = b.binary_scalar(BinaryOp::Add, step, 1.0)?;
            let (mut next_m, mut next_v) = (Vec::new(), Vec::new());
            for (k, p) in params.iter().enumerate() {
                let (np, nm, nv) = adam(&mut b, new_params[k], grads[k], ms[k], vs[k], t, lr, beta1, beta2, eps)?;
                outputs.push((np, format!("{p}.next")));
                next_m.push((nm, format!("{p}.m.next")));
                next_v.push((nv, format!("{p}.v.next")));
            }
            outputs.extend(next_m);
            outputs.extend(next_v);
            outputs.push((t, "adam.step.next".to_string()));
        }
    }
    let mut claimed: HashSet<ValueId> = map.values().copied().collect();
    b.output(loss_v);
    for (v, name) in outputs {
        let v = name_result(&mut b, v, &name, &mut claimed)?;
        b.output(v);
    }
    Ok(b.finish()?)
}

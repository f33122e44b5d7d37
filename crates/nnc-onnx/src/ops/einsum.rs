//! `Einsum`, lowered by the importer to `transpose`, `reshape`, `slice`, `reduce_sum`, `expand`
//! and `matmul` (no IR op of its own).
//!
//! The equation's terms label each operand's axes (letters, and `...` for the broadcast axes,
//! aligned from the right across operands). Repeated labels in one term take the diagonal
//! (a strided slice of the two axes flattened); labels in one operand only that the output does
//! not keep are summed at once; operands are then contracted left to right, each pair as one
//! batched `matmul` (shared kept labels are the batch axes, shared dropped labels the contraction);
//! the result is transposed to the output's order. Without `->` the output is the ellipsis axes,
//! then the letters that occur once, in alphabetical order.

use super::{Fail, NodeCx, Out};
use nnc_ir::{Dim, Op, ValueId};

/// An axis label: a letter's code, or `ELLIPSIS + k` for the `k`-th broadcast axis.
type Label = u32;
const ELLIPSIS: Label = 1 << 16;

struct Term {
    v: ValueId,
    labels: Vec<Label>,
}

/// One term of the equation: its letters, and where `...` stands (if it does).
fn parse_term(text: &str) -> Result<(Vec<Label>, Option<usize>), Fail> {
    let mut labels = Vec::new();
    let mut ellipsis = None;
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("...") {
            if ellipsis.is_some() {
                return Err(format!("term `{text}` has `...` twice").into());
            }
            ellipsis = Some(labels.len());
            rest = r;
            continue;
        }
        let c = rest.chars().next().ok_or("empty term")?;
        if !c.is_ascii_alphabetic() {
            return Err(format!("term `{text}`: `{c}` is not a letter").into());
        }
        labels.push(c as Label);
        rest = &rest[c.len_utf8()..];
    }
    Ok((labels, ellipsis))
}

/// Labels with `...` expanded to the last `count` of `total` broadcast labels.
fn expand_ellipsis(letters: &[Label], at: Option<usize>, count: usize, total: usize) -> Vec<Label> {
    let mut out = letters.to_vec();
    if let Some(at) = at {
        let broadcast = (total - count..total).map(|k| ELLIPSIS + k as Label);
        out.splice(at..at, broadcast);
    }
    out
}

fn dims(cx: &NodeCx, t: &Term) -> Vec<Dim> {
    cx.ty(t.v).shape
}

fn transpose_to(cx: &mut NodeCx, t: Term, order: &[Label]) -> Result<Term, Fail> {
    if t.labels == order {
        return Ok(t);
    }
    let perm: Vec<usize> = order
        .iter()
        .map(|l| t.labels.iter().position(|x| x == l).ok_or("einsum: a label went missing"))
        .collect::<Result<_, _>>()?;
    Ok(Term { v: cx.b.transpose(t.v, perm)?, labels: order.to_vec() })
}

fn reshape(cx: &mut NodeCx, v: ValueId, shape: Vec<Dim>) -> Result<ValueId, Fail> {
    Ok(if cx.ty(v).shape == shape { v } else { cx.b.reshape(v, shape)? })
}

/// Sums `t` over the labels `drop` holds.
fn sum_out(cx: &mut NodeCx, t: Term, drop: impl Fn(Label) -> bool) -> Result<Term, Fail> {
    let axes: Vec<i64> = (0..t.labels.len()).filter(|&a| drop(t.labels[a])).map(|a| a as i64).collect();
    if axes.is_empty() {
        return Ok(t);
    }
    let labels = t.labels.iter().copied().filter(|&l| !drop(l)).collect();
    Ok(Term { v: cx.b.reduce_sum(t.v, &axes, false)?, labels })
}

/// Replaces each label repeated within `t` by its diagonal.
fn diagonals(cx: &mut NodeCx, mut t: Term) -> Result<Term, Fail> {
    while let Some((p, q)) =
        (0..t.labels.len()).find_map(|q| t.labels[..q].iter().position(|&l| l == t.labels[q]).map(|p| (p, q)))
    {
        let label = t.labels[p];
        let shape = dims(cx, &t);
        let n = shape[p].as_const().filter(|_| shape[p] == shape[q]).ok_or_else(|| {
            format!("a repeated label needs equal, concrete axes, found {} and {}", shape[p], shape[q])
        })?;
        let nn = n.checked_mul(n).ok_or("a diagonal's axes are too long")?;
        let mut order: Vec<Label> = Vec::new();
        let mut others: Vec<usize> = (0..t.labels.len()).filter(|&a| a != p && a != q).collect();
        order.extend(others.iter().map(|&a| t.labels[a]));
        // Move the two axes last (the label twice), flatten them, and take every (n+1)-th.
        let perm: Vec<usize> = others.iter().copied().chain([p, q]).collect();
        let v = if perm.iter().copied().eq(0..perm.len()) { t.v } else { cx.b.transpose(t.v, perm)? };
        let mut flat: Vec<Dim> = others.iter().map(|&a| shape[a].clone()).collect();
        flat.push(Dim::constant(nn));
        let v = reshape(cx, v, flat)?;
        let last = others.len();
        let op = Op::Slice { axes: vec![last], starts: vec![0], ends: vec![nn], steps: vec![n + 1] };
        let v = cx.b.op1(op, &[v])?;
        order.push(label);
        others.clear();
        t = Term { v, labels: order };
    }
    Ok(t)
}

/// The broadcast size of `label` across `a` and `b` (equal, or one of them 1).
fn joint(label: Label, a: &Dim, b: &Dim) -> Result<Dim, Fail> {
    if a == b || *b == Dim::constant(1) {
        Ok(a.clone())
    } else if *a == Dim::constant(1) {
        Ok(b.clone())
    } else {
        let name =
            if label >= ELLIPSIS { "a `...` axis".to_string() } else { format!("label `{}`", label as u8 as char) };
        Err(format!("{name} has sizes {a} and {b}").into())
    }
}

/// Contracts `a` with `b`, keeping the labels `keep` holds, as one batched matmul.
fn contract(cx: &mut NodeCx, a: Term, b: Term, keep: &dyn Fn(Label) -> bool) -> Result<Term, Fail> {
    let a = sum_out(cx, a, |l| !keep(l) && !b.labels.contains(&l))?;
    let b = sum_out(cx, b, |l| !keep(l) && !a.labels.contains(&l))?;
    let shared = |l: &Label| b.labels.contains(l);
    let batch: Vec<Label> = a.labels.iter().copied().filter(|l| shared(l) && keep(*l)).collect();
    let inner: Vec<Label> = a.labels.iter().copied().filter(|l| shared(l) && !keep(*l)).collect();
    let a_only: Vec<Label> = a.labels.iter().copied().filter(|l| !shared(l)).collect();
    let b_only: Vec<Label> = b.labels.iter().copied().filter(|l| !a.labels.contains(l)).collect();
    let size =
        |cx: &NodeCx, t: &Term, l: Label| dims(cx, t)[t.labels.iter().position(|&x| x == l).unwrap_or(0)].clone();
    // Contracted axes must have one size: broadcast a size-1 side.
    let mut inner_dims = Vec::new();
    for &l in &inner {
        inner_dims.push(joint(l, &size(cx, &a, l), &size(cx, &b, l))?);
    }
    let a = transpose_to(cx, a, &[batch.clone(), a_only.clone(), inner.clone()].concat())?;
    let b = transpose_to(cx, b, &[batch.clone(), inner.clone(), b_only.clone()].concat())?;
    let widen = |cx: &mut NodeCx, t: Term, at: usize| -> Result<Term, Fail> {
        let mut shape = dims(cx, &t);
        shape[at..at + inner.len()].clone_from_slice(&inner_dims);
        if shape == dims(cx, &t) {
            return Ok(t);
        }
        Ok(Term { v: cx.b.expand(t.v, shape)?, labels: t.labels })
    };
    let a = widen(cx, a, batch.len() + a_only.len())?;
    let b = widen(cx, b, batch.len())?;
    let (sa, sb) = (dims(cx, &a), dims(cx, &b));
    let nb = batch.len();
    let product = |ds: &[Dim]| ds.iter().cloned().fold(Dim::constant(1), |x, y| x * y);
    let m = product(&sa[nb..nb + a_only.len()]);
    let k = product(&inner_dims);
    let n = product(&sb[nb + inner.len()..]);
    let av = reshape(cx, a.v, [sa[..nb].to_vec(), vec![m, k.clone()]].concat())?;
    let bv = reshape(cx, b.v, [sb[..nb].to_vec(), vec![k, n]].concat())?;
    let y = cx.b.matmul(av, bv)?;
    let mut shape = Vec::new();
    for (i, &l) in batch.iter().enumerate() {
        shape.push(joint(l, &sa[i], &sb[i])?);
    }
    shape.extend_from_slice(&sa[nb..nb + a_only.len()]);
    shape.extend_from_slice(&sb[nb + inner.len()..]);
    let y = reshape(cx, y, shape)?;
    Ok(Term { v: y, labels: [batch, a_only, b_only].concat() })
}

pub fn einsum(cx: &mut NodeCx) -> Out {
    cx.only_attrs(&["equation"])?;
    let equation: String =
        cx.attr_string("equation")?.ok_or("equation is required")?.chars().filter(|c| !c.is_whitespace()).collect();
    let (lhs, rhs) = match equation.split_once("->") {
        Some((l, r)) => (l, Some(r)),
        None => (equation.as_str(), None),
    };
    let texts: Vec<&str> = lhs.split(',').collect();
    if texts.len() != cx.num_inputs() {
        return Err(format!("equation `{equation}` has {} terms for {} operands", texts.len(), cx.num_inputs()).into());
    }
    let mut parsed = Vec::new();
    for (i, text) in texts.iter().enumerate() {
        let (letters, at) = parse_term(text)?;
        let rank = cx.input_type(i)?.rank();
        let count = match at {
            Some(_) if rank >= letters.len() => rank - letters.len(),
            None if rank == letters.len() => 0,
            _ => return Err(format!("term `{text}` does not fit operand {i} of rank {rank}").into()),
        };
        parsed.push((letters, at, count));
    }
    let total = parsed.iter().map(|p| p.2).max().unwrap_or(0);
    let labels: Vec<Vec<Label>> = parsed.iter().map(|(l, at, c)| expand_ellipsis(l, *at, *c, total)).collect();
    let output: Vec<Label> = match rhs {
        Some(r) => {
            let (letters, at) = parse_term(r)?;
            let out = expand_ellipsis(&letters, at, total, total);
            if let Some(l) = letters.iter().find(|l| !labels.iter().any(|t| t.contains(l))) {
                return Err(format!("output label `{}` is in no input term", *l as u8 as char).into());
            }
            if (1..out.len()).any(|i| out[..i].contains(&out[i])) {
                return Err(format!("output `{r}` repeats a label").into());
            }
            out
        }
        None => {
            let mut once: Vec<Label> = labels
                .iter()
                .flatten()
                .copied()
                .filter(|&l| l < ELLIPSIS && labels.iter().flatten().filter(|&&x| x == l).count() == 1)
                .collect();
            once.sort_unstable();
            (0..total).map(|k| ELLIPSIS + k as Label).chain(once).collect()
        }
    };
    // Each operand: diagonals, then sum the labels no one else needs.
    let mut terms = Vec::new();
    for (i, l) in labels.iter().enumerate() {
        let v = cx.input(i)?;
        let t = diagonals(cx, Term { v, labels: l.clone() })?;
        let elsewhere =
            |x: Label| output.contains(&x) || labels.iter().enumerate().any(|(j, o)| j != i && o.contains(&x));
        terms.push(sum_out(cx, t, |x| !elsewhere(x))?);
    }
    let mut rest = terms.into_iter();
    let mut cur = rest.next().ok_or("Einsum needs an operand")?;
    for (j, next) in rest.enumerate() {
        let later = &labels[j + 2..];
        let keep = |x: Label| output.contains(&x) || later.iter().any(|t| t.contains(&x));
        cur = contract(cx, cur, next, &keep)?;
    }
    let cur = sum_out(cx, cur, |x| !output.contains(&x))?;
    let cur = transpose_to(cx, cur, &output)?;
    Ok(vec![NodeCx::value(cur.v)])
}

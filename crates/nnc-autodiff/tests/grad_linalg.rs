//! Gradient checks: matmul, conv, conv_transpose, pooling.

mod common;
use common::*;
use nnc_ir::{Op, PoolKind, Window};
use proptest::prelude::*;

fn matmul_cases(g: &mut Gen) -> Vec<Case> {
    let (m, k, n) = (g.usize(1, 3), g.usize(1, 3), g.usize(1, 3));
    let bb = g.usize(1, 3);
    let shapes: Vec<(Vec<usize>, Vec<usize>)> = vec![
        (vec![m, k], vec![k, n]),
        (vec![k], vec![k, n]),
        (vec![m, k], vec![k]),
        (vec![k], vec![k]),
        (vec![2, 1, m, k], vec![bb, k, n]),
        (vec![bb, m, k], vec![k, n]),
        (vec![k], vec![bb, k, n]),
    ];
    shapes
        .into_iter()
        .map(|(sa, sb)| {
            let (va, vb) = (g.vals(&sa, -1.0, 1.0), g.vals(&sb, -1.0, 1.0));
            Case::new(format!("matmul {sa:?} {sb:?}"), vec![f(&sa, va), f(&sb, vb)], |b, x| {
                Ok(vec![b.matmul(x[0], x[1])?])
            })
        })
        .collect()
}

/// A random window over `n` spatial axes with kernel `kernel`, and input lengths it fits.
fn window(g: &mut Gen, kernel: &[usize], max_pad: Option<&[usize]>) -> (Window, Vec<usize>) {
    let n = kernel.len();
    let strides: Vec<i64> = (0..n).map(|_| g.int(1, 2)).collect();
    let dilations: Vec<i64> = (0..n).map(|_| g.int(1, 2)).collect();
    let pads: Vec<i64> = (0..2 * n).map(|i| g.int(0, max_pad.map_or(2, |m| m[i % n] as i64).min(2))).collect();
    let lens = (0..n)
        .map(|i| {
            let span = dilations[i] as usize * (kernel[i] - 1) + 1;
            span + g.usize(0, 3)
        })
        .collect();
    (Window { strides, dilations, pads }, lens)
}

fn conv_cases(g: &mut Gen) -> Vec<Case> {
    let mut cases = Vec::new();
    for spatial in [1usize, 2] {
        let groups = g.int(1, 2);
        let cg = g.usize(1, 2);
        let mg = g.usize(1, 2);
        let (c, m) = (cg * groups as usize, mg * groups as usize);
        let kernel: Vec<usize> = (0..spatial).map(|_| g.usize(1, 3)).collect();
        let (w, lens) = window(g, &kernel, None);
        let nb = g.usize(1, 2);
        let mut xs = vec![nb, c];
        xs.extend(&lens);
        let mut ws = vec![m, cg];
        ws.extend(&kernel);
        let (vx, vw) = (g.vals(&xs, -1.0, 1.0), g.vals(&ws, -1.0, 1.0));
        let name = format!("conv x {xs:?} w {ws:?} {w:?} groups {groups}");
        let w2 = w.clone();
        cases.push(Case::new(name, vec![f(&xs, vx), f(&ws, vw)], move |b, x| {
            Ok(vec![b.conv(x[0], x[1], w2.clone(), groups)?])
        }));

        // conv_transpose: weight [C, M/groups, K..]
        let output_padding: Vec<i64> = w.strides.iter().map(|&s| g.int(0, s - 1)).collect();
        let lens: Vec<usize> = (0..spatial).map(|_| g.usize(1, 3)).collect();
        let mut xs = vec![nb, c];
        xs.extend(&lens);
        let mut ws = vec![c, mg];
        ws.extend(&kernel);
        // keep the output non-empty: crop at most what the full result holds
        let mut w3 = w.clone();
        for i in 0..spatial {
            let full = w.strides[i] * (lens[i] as i64 - 1) + w.dilations[i] * (kernel[i] as i64 - 1) + 1;
            let total = w3.pads[i] + w3.pads[spatial + i];
            if total >= full {
                w3.pads[i] = 0;
                w3.pads[spatial + i] = 0;
            }
        }
        let (vx, vw) = (g.vals(&xs, -1.0, 1.0), g.vals(&ws, -1.0, 1.0));
        let name = format!("conv_transpose x {xs:?} w {ws:?} {w3:?} output_padding {output_padding:?} groups {groups}");
        cases.push(Case::new(name, vec![f(&xs, vx), f(&ws, vw)], move |b, x| {
            Ok(vec![b.op1(
                Op::ConvTranspose { window: w3.clone(), output_padding: output_padding.clone(), groups },
                &[x[0], x[1]],
            )?])
        }));
    }
    cases
}

fn pool_cases(g: &mut Gen) -> Vec<Case> {
    let mut cases = Vec::new();
    for kind in [PoolKind::Max, PoolKind::Avg] {
        for spatial in [1usize, 2] {
            let kernel: Vec<usize> = (0..spatial).map(|_| g.usize(1, 3)).collect();
            // pads smaller than the kernel so every window holds an input element
            let max_pad: Vec<usize> = kernel.iter().map(|k| k - 1).collect();
            let (w, lens) = window(g, &kernel, Some(&max_pad));
            let ceil_mode = g.bool();
            let count_include_pad = g.bool();
            let mut xs = vec![g.usize(1, 2), g.usize(1, 2)];
            xs.extend(&lens);
            let v = match kind {
                PoolKind::Max => g.distinct(xs.iter().product(), -2.0, 2.0),
                _ => g.vals(&xs, -2.0, 2.0),
            };
            let kernel: Vec<i64> = kernel.iter().map(|&k| k as i64).collect();
            let name = format!(
                "{} x {xs:?} kernel {kernel:?} {w:?} ceil {ceil_mode} include_pad {count_include_pad}",
                kind.name()
            );
            cases.push(Case::new(name, vec![f(&xs, v)], move |b, x| {
                Ok(vec![b.op1(
                    Op::Pool { kind, kernel: kernel.clone(), window: w.clone(), ceil_mode, count_include_pad },
                    &[x[0]],
                )?])
            }));
        }
    }
    cases
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn matmul_with_promotion_and_batch_broadcasting(seed in any::<u64>()) {
        check_all(matmul_cases(&mut Gen::new(seed))).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn conv_and_conv_transpose(seed in any::<u64>()) {
        check_all(conv_cases(&mut Gen::new(seed))).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn pooling(seed in any::<u64>()) {
        check_all(pool_cases(&mut Gen::new(seed))).map_err(TestCaseError::fail)?;
    }
}

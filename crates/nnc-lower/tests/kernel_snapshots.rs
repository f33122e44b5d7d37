//! Snapshots of the kernels the compiler generates for a few representative graphs, for the GPU
//! and the CPU. Each snapshot is also checked against the graph interpreter first, so a
//! snapshot never records a kernel that computes the wrong thing.

mod common;

use common::*;
use nnc_ir::Graph;

/// Checks `graph` on both devices and returns the printed kernels of each.
fn kernels(graph: &Graph) -> (String, String) {
    let inputs = inputs_for(graph, 7);
    let (gpu, cpu) = check(graph, &inputs).unwrap_or_else(|e| panic!("{e}"));
    (kernels_text(&gpu), kernels_text(&cpu))
}

macro_rules! snapshot_both {
    ($name:ident, $graph:expr) => {
        #[test]
        fn $name() {
            let (gpu, cpu) = kernels(&$graph);
            insta::assert_snapshot!(concat!(stringify!($name), "_gpu"), gpu);
            insta::assert_snapshot!(concat!(stringify!($name), "_cpu"), cpu);
        }
    };
}

snapshot_both!(elementwise_chain_broadcast, elementwise_chain());
snapshot_both!(softmax_row_reduce, softmax(&[4, 64], -1));
snapshot_both!(layer_norm_last_axis, layer_norm(&[4, 32], -1));
snapshot_both!(matmul_bias_relu_tiled, matmul_bias_relu(8, 20, 24));
snapshot_both!(conv_bias_relu_3x3, conv_bias_relu([1, 2, 6, 6], 4, 3, 1));
snapshot_both!(argmax_last_axis, argmax(&[4, 16], -1));
snapshot_both!(topk_program, topk(&[3, 8], 3));

//! Compiling a shared model twice gives the same kernels. (Every shared model compiled by the
//! pipeline and run by the Kernel-IR interpreter against its stored references is the
//! interpreter's suite line: `crates/nnc-kernel/tests/suite.rs`.)

mod common;

use nnc::kernel::Device;

#[test]
fn compiling_twice_gives_the_same_kernels() {
    let Some(models) = common::shared_models() else { return };
    let (graph, _, _) = common::load_with_data(&models.join("transformer_encoder"));
    let print = || {
        let opt = nnc::opt::optimize(&graph, &Default::default()).expect("optimize");
        let program = nnc::lower::compile(&opt.graph, &Device::gpu(), None).expect("compile");
        program.kernels.iter().map(|k| k.to_string()).collect::<String>()
    };
    assert_eq!(print(), print());
}

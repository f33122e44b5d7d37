//! The CPU backend's line of the test kit (`nnc-testkit`): the registry's CPU target (LLVM for
//! the host's widest vectors where built, Cranelift for the rest, run across the cores) on the
//! random graph families, the fixed graphs, the shared models (and their bundles) and the ONNX
//! node suite. `random_graphs.rs` and `models.rs` add the Cranelift-alone configuration.

nnc_testkit::backend_suite!(cpu: Target::Cpu, cases: 64);

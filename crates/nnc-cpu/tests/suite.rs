//! The CPU backend's line of the test kit (`nnc-testkit`): the registry's CPU target (LLVM for
//! the host's widest vectors where built, Cranelift for the rest, run across the cores) on the
//! random graph families, the fixed graphs, the shared and the public models (and their
//! bundles) and the ONNX node suite. `random_graphs.rs` and `models.rs` add the Cranelift-alone configuration.

nnc_testkit::backend_suite!(
    cpu: Target::Cpu,
    cases: 64,
    public_models: true,
    timed_against_interpreter: true,
    slower_than_interpreter: CPU_SLOWER_THAN_INTERPRETER
);

/// Node cases the CPU target runs slower than the interpreter (`nnc conformance --target cpu
/// --against-interpreter` lists them all, with times).
const CPU_SLOWER_THAN_INTERPRETER: &[(&str, &str)] =
    &[("cubic", "cubic Resize: the kernel's index and weight arithmetic per element (about 30 µs against 5)")];

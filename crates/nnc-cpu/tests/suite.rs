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
const CPU_SLOWER_THAN_INTERPRETER: &[(&str, &str)] = &[
    ("cubic", "cubic Resize: the kernel's index and weight arithmetic per element (about 30 µs against 5)"),
    // Measured on a 2-vCPU AMD EPYC with AVX-512: 2.3-3.1x the interpreter (f16 kernels are
    // Cranelift's, converting each element to f32 and back; the interpreter computes in f64).
    ("test_attention_4d_fp16", FP16_ATTENTION),
    ("test_attention_4d_gqa_with_past_and_present_fp16", FP16_ATTENTION),
    ("test_flexattention_fp16", FP16_ATTENTION),
];

const FP16_ATTENTION: &str = "f16 attention: Cranelift's f16 kernels, element by element (170-1000 µs against 75-340)";

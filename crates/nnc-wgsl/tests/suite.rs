//! The WGSL backend's line of the test kit (`nnc-testkit`): the registry's WGSL target on wgpu
//! (lavapipe in CI, where it must run) on the random graph families, the fixed graphs, the
//! shared and the public models and the ONNX node suite, with its known differences: WGSL promises nothing
//! where a result is infinite or NaN, and has no f64, bf16, float8/float4 or 4-/2-bit integer
//! tensors.

/// Node-suite cases the interpreter passes that the WGSL backend does not: (a substring of the
/// case's name, text its failure must contain). Each is a tensor of a dtype WGSL does not have
/// (the data, or an output, is `double`, `bfloat16`, a float8/float4 or a 4-/2-bit integer in these
/// ONNX cases), not a bug; every
/// entry must be needed. `crates/nnc-wgsl/README.md` explains them.
const WGSL_DIFFERENCES: &[(&str, &str)] = &[
    // Cast/CastLike from or to DOUBLE (12 cases).
    ("DOUBLE", "WGSL has no f64"),
    // Cast/CastLike from or to BFLOAT16 (6 cases), Range on bfloat16 (1).
    ("BFLOAT16", "WGSL has no bf16"),
    ("test_range_bfloat16", "WGSL has no bf16"),
    // Ops whose node tests use float64 data.
    ("test_cumsum_", "WGSL has no f64"),
    ("test_cumprod_", "WGSL has no f64"),
    ("test_einsum_", "WGSL has no f64"),
    ("test_eyelike_with_dtype", "WGSL has no f64"),
    ("test_flexattention_double", "WGSL has no f64"),
    ("test_reduce_log_sum_exp_", "WGSL has no f64"),
    // Max, Min, Mod on float64.
    ("_float64", "WGSL has no f64"),
    // Cast/CastLike from or to float8 (E8M0 included) and float4 (56 + 80 cases with the
    // integers below), Quantize/DequantizeLinear to or from them (11).
    ("FLOAT8", "WGSL has no float8 or float4"),
    ("FLOAT4E2M1", "WGSL has no float8 or float4"),
    ("_e4m3fn", "WGSL has no float8 or float4"),
    ("_e5m2", "WGSL has no float8 or float4"),
    ("_float4e2m1", "WGSL has no float8 or float4"),
    // The same for the 4- and 2-bit integers (`INT4` also names `UINT4`).
    ("INT4", "WGSL has no 4- or 2-bit integers"),
    ("INT2", "WGSL has no 4- or 2-bit integers"),
    ("int4", "WGSL has no 4- or 2-bit integers"),
    ("int2", "WGSL has no 4- or 2-bit integers"),
];

nnc_testkit::backend_suite!(
    wgsl: Target::Wgsl,
    non_finite: NonFinite::Undefined,
    public_models: true,
    node_suite_differences: WGSL_DIFFERENCES
);
